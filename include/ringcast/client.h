/* client.h - the session layer's client flow, shared by both transports:
 * who the client is (the token of the connect request or of an auth action,
 * verified, installed on the connection with its expiry), what it may
 * subscribe to, and the greeting that waits for the user's durable
 * subscriptions. The transports keep only their wire: ws.c answers with
 * frames (connected / authenticated / error, close 1008) and may
 * re-authenticate later; sse.c answers a bad token with a 401 before the
 * stream starts and greets with its connection record.
 *
 * Owner: the connection's shard thread; every function here runs on it, for
 *   a connection of that shard, and takes no lock.
 * Lifetime: no state of its own; the durable subscriptions are loaded through
 *   the session hooks main registers (session.h: after_auth, greet_late,
 *   greet_wait_ms). The identity it installs belongs to the connection (freed
 *   by the session's release op).
 * Counters: auth_failures (a token that fails), forbidden (a topic refused),
 *   counted here so both transports count alike. */
#ifndef RINGCAST_CLIENT_H
#define RINGCAST_CLIENT_H

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/conn.h"
#include "ringcast/http_parse.h"
#include "ringcast/session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The identity of a connect request (WebSocket upgrade, SSE stream): its
 * token from ?token=, else from Authorization: Bearer, verified. 0 with *id
 * (NULL: the request carries no token); -EINVAL with err when the token
 * parameter is malformed or the token fails verification (auth_failures
 * counted). */
RC_MUST_CHECK int rc_client_connect_identity(struct rc_conn *c, const struct rc_http_request *req,
                                             struct rc_auth_identity **id, struct rc_err *err);

/* Verify a token (an auth action): 0 with *id, or -EINVAL with err
 * (auth_failures counted). */
RC_MUST_CHECK int rc_client_verify(struct rc_conn *c, const char *tok, size_t len,
                                   struct rc_auth_identity **id, struct rc_err *err);

/* Adopt a verified identity (takes id, frees the one before): user id,
 * authenticated, the auth deadline cleared, the expiry deadline set. */
void rc_client_set_identity(struct rc_conn *c, struct rc_auth_identity *id);

/* Whether id (NULL: anonymous) may subscribe to topic: 0, or <0 with err
 * (forbidden counted). */
RC_MUST_CHECK int rc_client_may_subscribe(struct rc_conn *c, const struct rc_auth_identity *id,
                                          const char *topic, size_t len, struct rc_err *err);

/* Whether the resume options o (since, include_initial) are valid for topic:
 * 0, or <0 with err. */
RC_MUST_CHECK int rc_client_resume_check(struct rc_conn *c, const char *topic, size_t len,
                                         const struct rc_sub_opts *o, struct rc_err *err);

/* After the first authentication: true when the greeting waits for the user's
 * durable subscriptions (ready sends it; greet_deadline_ms is armed, the
 * transport's timer calls rc_client_greet_timer); false: greet now. */
bool rc_client_hold_greeting(struct rc_conn *c, rc_session_ready_fn ready);

/* From the transport's timer: when the held greeting's wait is over, send it
 * without the durable subscriptions (ready). */
void rc_client_greet_timer(struct rc_conn *c, rc_session_ready_fn ready);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CLIENT_H */
