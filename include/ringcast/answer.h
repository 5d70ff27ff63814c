/* answer.h - answering a ticket (ticket.h) through its connection.
 *
 * Owner: the connection's shard thread; a ticket that crossed shards is
 *   answered back on the shard of t->conn_id (rc_shard_conn), and a connection
 *   that is gone (or no longer waits: an HTTP serial already answered, a
 *   connection that switched protocol) drops the answer.
 * The ticket builders below are the only place that turns a connection and a
 *   request (HTTP serial, WebSocket request id) into a ticket.
 * rc_conn_answer (conn.h) writes the answer through the connection's `answer`
 *   op: each session (http.c, ws.c, sse.c) formats the answers for its wire. */
#ifndef RINGCAST_ANSWER_H
#define RINGCAST_ANSWER_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ringcast/conn.h"
#include "ringcast/ticket.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A deferred HTTP answer (serial from rc_http_defer; 0: nobody waits). */
static inline struct rc_ticket rc_ticket_http(const struct rc_conn *c, uint32_t serial)
{
    struct rc_ticket t = {.conn_id = c->id, .serial = serial, .kind = RC_TICKET_HTTP};
    return t;
}

/* Part idx of the batch answer in slot serial (rc_http_defer_parts). */
static inline struct rc_ticket rc_ticket_http_part(const struct rc_conn *c, uint32_t serial,
                                                   uint32_t idx)
{
    struct rc_ticket t = {.conn_id = c->id, .serial = serial, .kind = RC_TICKET_HTTP_PART};
    int n = snprintf(t.req_id, sizeof(t.req_id), "%u", idx);
    t.req_id_len = (uint8_t)(n > 0 ? n : 0);
    return t;
}

/* The answer to a WebSocket client message, echoing id (a string of at most
 * 64 bytes or an integer, as rc_msg_parse checked; anything else: no id). */
static inline struct rc_ticket rc_ticket_ws(const struct rc_conn *c, const json_t *id)
{
    struct rc_ticket t = {.conn_id = c->id, .kind = RC_TICKET_WS};
    if (json_is_integer(id)) {
        int n =
            snprintf(t.req_id, sizeof(t.req_id), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        t.req_id_len = n > 0 && (size_t)n < sizeof(t.req_id) ? (uint8_t)n : 0;
    } else if (json_is_string(id) && json_string_length(id) < sizeof(t.req_id)) {
        t.req_id[0] = '"';
        memcpy(t.req_id + 1, json_string_value(id), json_string_length(id));
        t.req_id_len = (uint8_t)(1 + json_string_length(id));
    }
    return t;
}

/* What a connection gets without a request (announcements, errors about one
 * of its subscriptions): a WebSocket message without id, or an SSE record
 * naming sub_id (NULL = none); nothing on an HTTP connection. */
static inline struct rc_ticket rc_ticket_stream(const struct rc_conn *c, const char *sub_id)
{
    struct rc_ticket t = {.conn_id = c->id};
    if (c->proto == RC_PROTO_WS) {
        t.kind = RC_TICKET_WS;
    } else if (c->proto == RC_PROTO_SSE) {
        t.kind = RC_TICKET_SSE;
        size_t n = sub_id ? strlen(sub_id) : 0;
        if (n < sizeof(t.req_id)) {
            memcpy(t.req_id, sub_id ? sub_id : "", n);
            t.req_id_len = (uint8_t)n;
        }
    }
    return t;
}

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_ANSWER_H */
