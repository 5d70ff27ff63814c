/* http_response.h - private to src/session/http.c, http_response.c and
 * http_parts.c: the bytes of one response and of an error body, and the batch
 * answers' hooks.
 * Owner: the connection's shard thread. */
#ifndef RINGCAST_HTTP_RESPONSE_H
#define RINGCAST_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "ringcast/conn.h"
#include "ringcast/ticket.h"

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

/* http_parts.c: batch answers collecting their parts. The list hangs off the
 * connection's answer ring (rc_http_parts_head: NULL while it has none). */
struct rc_http_parts;
struct rc_http_parts **rc_http_parts_head(struct rc_conn *c);
void rc_http_part_answer(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a);
void rc_http_parts_free(struct rc_http_parts *list);

#endif /* RINGCAST_HTTP_RESPONSE_H */
