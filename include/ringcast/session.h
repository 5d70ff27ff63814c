/* session.h - what the sessions (HTTP, WebSocket, SSE: http.c, ws.c, sse.c)
 * are handed from above, and what they share.
 *
 * The sessions call the API and the store glue only through these hooks,
 * registered by main (rc_session_set_hooks) before the shards start and
 * read-only after: the HTTP handler (the router) and what runs after a
 * WebSocket or SSE client authenticated (its user's durable subscriptions).
 * Owner: the table is the caller's, immutable and alive until exit; every
 *   hook runs on the shard thread of the connection it is given.
 * Missing hooks (NULL table or member): a request is answered 404, and an
 *   authenticated client is greeted at once. */
#ifndef RINGCAST_SESSION_H
#define RINGCAST_SESSION_H

#include "ringcast/conn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_http_ctx;
struct rc_http_request;

/* Sends a connection's greeting; called at most once per after_auth. */
typedef void (*rc_session_ready_fn)(struct rc_conn *c);

struct rc_session_hooks {
    /* Answer (or defer, or upgrade) one complete HTTP request. */
    void (*route)(struct rc_http_ctx *x);
    /* Does a complete request take the connection over (a WebSocket upgrade,
     * an SSE stream)? Such a request waits until every earlier answer is
     * written. Runs for every request; must not allocate. NULL: none does. */
    bool (*is_stream)(const struct rc_http_request *req);
    /* c (WebSocket or SSE) has just authenticated. true: its greeting waits
     * until ready(c) runs (on c's shard) or greet_wait_ms passed; false:
     * greet now. */
    bool (*after_auth)(struct rc_conn *c, rc_session_ready_fn ready);
    /* The greeting waited greet_wait_ms and goes out anyway. */
    void (*greet_late)(struct rc_conn *c);
    uint64_t greet_wait_ms;
};

/* Main thread, before the shards start. h must outlive them. */
void rc_session_set_hooks(const struct rc_session_hooks *h);
/* The registered hooks (never NULL: an empty table when none were set). */
const struct rc_session_hooks *rc_session_hooks(void);

/* The release op every session's rc_conn_ops share: frees what a connection
 * holds above the loop (subscriptions, identity, held durable changes,
 * pending HTTP answers, WebSocket state). */
void rc_session_release(struct rc_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_SESSION_H */
