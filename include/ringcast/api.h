/* api.h - the HTTP routes: /healthz and the /api/realtime/ API.
 * Owner: runs on the shard thread of the connection that made the request.
 * Every path is one row of one table (src/api/api.c), run by one router (src/api/api_router.c,
 *   rules in src/api/api_router.h). The session hands it each request (rc_api_route) and asks it
 *   which requests take the connection over (rc_api_is_stream); main registers both in the
 *   session hooks (session.h), so the session names no API function. */
#ifndef RINGCAST_API_H
#define RINGCAST_API_H

#include <jansson.h>

#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Answer (or defer, or upgrade) one complete request. */
void rc_api_route(struct rc_http_ctx *x);
/* Does req take the connection over (a GET of a WebSocket or SSE path)? Allocates nothing;
 * the session hooks' is_stream. */
bool rc_api_is_stream(const struct rc_http_request *req);

struct rc_server;
struct rc_err;
/* Main thread, after rc_broker_cluster_open: receive other nodes' disconnects of a user
 * (broker = redis; api_admin.c). 0, or -ENOSPC with err. */
RC_MUST_CHECK int rc_api_admin_cluster(struct rc_server *srv, struct rc_err *err);

/* Shared request helpers (api.c, api_store.c). */
/* Is the client on a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool rc_api_is_loopback(const struct rc_conn *c);
/* The body as a JSON object, or NULL after answering 400 bad_json. */
json_t *rc_api_body_object(struct rc_http_ctx *x);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_API_H */
