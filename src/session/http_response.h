/* http_response.h - private to src/session/http.c and http_response.c: the
 * bytes of one response and of an error body.
 * Owner: the connection's shard thread. */
#ifndef RINGCAST_HTTP_RESPONSE_H
#define RINGCAST_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "ringcast/conn.h"

/* One whole response in a malloc'ed buffer (*total_out bytes), or NULL (out of
 * memory). A 204 has no Content-Length and no body; head_only drops the body but
 * keeps its Content-Length; extra is "Name: value\r\n..." or NULL; cors
 * (rc_http_cors_of) adds the CORS headers. Counts
 * http_errors for a status >= 400. */
char *rc_http_build_response(struct rc_conn *c, int status, const char *ctype, const char *extra,
                             const char *body, size_t blen, bool keep_alive, bool head_only,
                             int cors, size_t *total_out);

/* {"error":{"code":C,"message":M}} into out[0..cap); its length (a fixed
 * "internal" body if it does not fit). */
size_t rc_http_error_json(char *out, size_t cap, const char *code, const char *msg);

#endif /* RINGCAST_HTTP_RESPONSE_H */
