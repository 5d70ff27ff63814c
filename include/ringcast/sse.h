/* sse.h - Server-Sent Events streams (GET /api/realtime/events).
 * Owner: the connection's shard thread. After the response head the
 *   connection only sends: records (id/event/data), retry hints and
 *   heartbeats; input from the client is read and discarded. */
#ifndef RINGCAST_SSE_H
#define RINGCAST_SSE_H

#include "ringcast/conn.h"
#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Route handler for GET /api/realtime/events. */
void rc_sse_handle(struct rc_http_ctx *x);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_SSE_H */
