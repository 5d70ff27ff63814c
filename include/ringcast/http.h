/* http.h - the HTTP/1.1 session on a connection, and response helpers.
 * Owner: the connection's shard thread.
 * Requests on one connection are answered strictly in order. Up to 64
 *   requests may wait for asynchronous answers (publish, stats) at once;
 *   answers ready early wait in their slot until the ones before them are
 *   written. A WebSocket/SSE request waits for every earlier answer.
 * Backpressure: while 64 answers are pending, a stream request waits, or
 *   max_pending_bytes of answers are unread, no request is taken and the
 *   connection is not read (rc_shard_recv_pause); reading resumes as answers
 *   are written. One answer may be larger than max_pending_bytes.
 * Deadlines: request_timeout bounds one partly received request (408); a
 *   connection that keeps completing requests never meets it.
 * Connection ops: rc_http_conn_ops are the events of a connection until an
 *   upgrade (main registers them as the server's conn_ops); rc_http_switch
 *   installs the WebSocket or SSE session's ops. Requests go to the route
 *   hook (session.h). */
#ifndef RINGCAST_HTTP_H
#define RINGCAST_HTTP_H

#include <jansson.h>

#include "ringcast/common.h"
#include "ringcast/conn.h"
#include "ringcast/http_parse.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_config;

/* A request handed to a route handler: the parsed head plus the whole body. */
struct rc_http_ctx {
    struct rc_conn *conn;
    const struct rc_http_request *req;
    const char *body;
    size_t body_len;
    bool keep_alive;
    bool head_only;
    int cors; /* rc_http_cors_of(the request): which CORS answer it gets */
};

/* ---- CORS (cors.c): browsers on another origin ---------------------------------
 * rc_http_cors_of classifies a request by its Origin against allowed_origins:
 * RC_CORS_NONE (no Origin), RC_CORS_SAME (Origin is the Host), RC_CORS_ANY
 * (empty list: any origin, no credentials), 1 + i (allowed_origins[i]: echoed,
 * with credentials) or RC_CORS_DENIED (a list without it). */
#define RC_CORS_NONE 0
#define RC_CORS_SAME (-1)
#define RC_CORS_ANY (-2)
#define RC_CORS_DENIED (-3)
int rc_http_cors_of(const struct rc_config *cfg, const struct rc_http_request *req);
/* The answer headers for that class into out ("" for none); their length. */
size_t rc_http_cors_headers(const struct rc_config *cfg, int cors, char *out, size_t cap);
/* RC_CORS_DENIED: answers 403 origin_not_allowed (counted) and returns true. */
bool rc_http_origin_refused(struct rc_http_ctx *x);
/* Answer OPTIONS on a resource allowing `methods` ("GET, POST"): a CORS
 * preflight (Allow-Methods, Allow-Headers incl. Authorization, Max-Age) or a
 * plain OPTIONS (Allow). 204 either way. */
void rc_http_preflight(struct rc_http_ctx *x, const char *methods);

/* The HTTP session's connection ops (conn.h). on_sent drives the
 * backpressure above; answer writes a deferred answer (RC_TICKET_HTTP). */
extern const struct rc_conn_ops rc_http_conn_ops;

/* Tell a WebSocket client ({"type":"error",...} echoing req_id) or an SSE
 * client (an "event: error" record naming sub_id) that something failed. */
void rc_conn_send_error(struct rc_conn *c, const json_t *req_id, const char *code, const char *msg,
                        const char *sub_id);

/* Responses. extra_headers: "Name: value\r\n..." or NULL. body may be NULL.
 * On a HEAD request the body is not sent (Content-Length still is). */
void rc_http_respond(struct rc_http_ctx *x, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len);
/* {"error":{"code":C,"message":M}} with the given status. */
void rc_http_error(struct rc_http_ctx *x, int status, const char *code, const char *fmt, ...)
    RC_PRINTF(4, 5);
void rc_http_json(struct rc_http_ctx *x, int status, const char *json, size_t len);

/* Asynchronous answers: the handler calls rc_http_defer() and returns; later
 * (on the same shard) rc_http_deferred_reply() writes the response and resumes
 * the connection's pipeline. serial guards against a reply for a request the
 * connection no longer waits for. */
uint32_t rc_http_defer(struct rc_http_ctx *x);
/* A deferred answer made of n parts (1..RC_HTTP_PARTS_MAX), each answered on
 * its own with a ticket from rc_ticket_http_part(conn, serial, i) (through
 * rc_conn_answer) or rc_http_part_error: once every part has come, the answer
 * is 200 {"results":[part 0, part 1, ...]} in index order, a part being its
 * result's JSON object with "status":N added, or {"error":{...},"status":N}. Returns the serial,
 * or 0 (out of memory: 503 was answered). http_parts.c. */
#define RC_HTTP_PARTS_MAX 100
uint32_t rc_http_defer_parts(struct rc_http_ctx *x, uint32_t n);
void rc_http_part_error(struct rc_conn *c, uint32_t serial, uint32_t idx, int status,
                        const char *code, const char *msg);
void rc_http_deferred_json(struct rc_conn *c, uint32_t serial, int status, const char *json,
                           size_t len);
void rc_http_deferred_error(struct rc_conn *c, uint32_t serial, int status, const char *code,
                            const char *msg);
/* Like rc_http_deferred_json, with extra header lines ("Name: value\r\n..."). */
void rc_http_deferred_respond(struct rc_conn *c, uint32_t serial, int status,
                              const char *extra_headers, const char *json, size_t len);

/* Free pending answers (connection closing). */
void rc_http_release(struct rc_conn *c);

/* Hand the connection over to another protocol after the current request
 * (WebSocket upgrade, SSE stream): the HTTP state is reset, ops (the new
 * protocol's) are installed, and remaining input is passed to them. */
void rc_http_switch(struct rc_conn *c, enum rc_conn_proto proto, const struct rc_conn_ops *ops);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_HTTP_H */
