/* api.h - the HTTP routes: /healthz and the /api/realtime/ API.
 * Owner: runs on the shard thread of the connection that made the request. */
#ifndef RINGCAST_API_H
#define RINGCAST_API_H

#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Answer (or defer, or upgrade) one complete request. */
void rc_api_route(struct rc_http_ctx *x);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_API_H */
