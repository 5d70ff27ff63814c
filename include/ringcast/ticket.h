/* ticket.h - where an answer goes, and what it says.
 *
 * A ticket names the request an answer belongs to: the connection (by id, so
 *   it can travel to other shards and back), and on it an HTTP answer slot
 *   (serial, see http.h), a WebSocket request id, or an SSE stream. Whoever
 *   computes an answer (broker, history, presence, the store glue) fills an
 *   rc_answer and hands both to rc_conn_answer() on the connection's shard; the
 *   connection's ops (conn.h) format it for the wire. Nothing below the session
 *   formats HTTP or WebSocket answers itself.
 * Owner: plain values, copied into posts; no pointers into a connection.
 * Lifetime: an rc_answer's strings are borrowed for the call only. */
#ifndef RINGCAST_TICKET_H
#define RINGCAST_TICKET_H

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rc_ticket_kind { RC_TICKET_NONE, RC_TICKET_HTTP, RC_TICKET_WS, RC_TICKET_SSE };

/* How req_id is echoed to a WebSocket client (it sent a string or an integer). */
enum rc_ticket_id { RC_TICKET_ID_NONE, RC_TICKET_ID_STRING, RC_TICKET_ID_INT };

#define RC_TICKET_REQ_ID_MAX 64 /* RC_MSG_MAX_ID (msg.h) */

struct rc_ticket {
    uint64_t conn_id; /* the connection that waits; answers for another are dropped */
    uint32_t serial;  /* RC_TICKET_HTTP: the answer slot (rc_http_defer) */
    uint8_t kind;     /* enum rc_ticket_kind */
    /* RC_TICKET_WS: the request id, a string's bytes or an integer's decimal
     * digits (id_kind says which); not NUL-terminated */
    char req_id[RC_TICKET_REQ_ID_MAX];
    uint8_t req_id_len;
    uint8_t id_kind; /* enum rc_ticket_id */
};

/* An answer. code != NULL: an error (HTTP {"error":{"code","message"}} with
 * status; WebSocket {"type":"error",...}; SSE an "event: error" record).
 * Otherwise a success: HTTP status with the body json[0..len) and
 * extra_headers ("Name: value\r\n..." or NULL); WebSocket a message of this
 * type whose data is json[0..len) (NULL = no data); SSE sends nothing. */
struct rc_answer {
    int status;
    const char *code;
    const char *msg;
    const char *type;
    const char *json;
    size_t len;
    const char *extra_headers;
};

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_TICKET_H */
