/* ws.h - the WebSocket session: opening handshake (RFC 6455 section 4),
 * frames in, the client protocol's actions, heartbeats, the close handshake.
 * Owner: the connection's shard thread. The frame codec is ws_frame.h; the
 *   client message parser is msg.h; this module ties them to a connection. */
#ifndef RINGCAST_WS_H
#define RINGCAST_WS_H

#include <jansson.h>

#include "ringcast/conn.h"
#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Route handler: validate the upgrade request and switch the connection to
 * WebSocket (101), or answer with the right 4xx. */
void rc_ws_handle_upgrade(struct rc_http_ctx *x);

/* Queue one text frame. 0 or -errno (the connection may have been closed). */
int rc_ws_send_text(struct rc_conn *c, const char *txt, size_t len);
/* {"type":"error","data":{"code","message","id"}} */
void rc_ws_send_error(struct rc_conn *c, const json_t *id, const char *code, const char *msg);
/* {"type":T,"id":ID,"data":DATA} */
void rc_ws_send_reply(struct rc_conn *c, const char *type, const json_t *id, const json_t *data);
/* Start the close handshake with this code and reason. */
void rc_ws_close(struct rc_conn *c, uint16_t code, const char *reason);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_WS_H */
