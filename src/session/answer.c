/* answer.c - rc_conn_answer: a ticket's answer written as a deferred HTTP
 * response, a WebSocket message or an SSE record (see answer.h, ticket.h).
 * The session layer's half of the answer tickets: the modules that compute
 * answers call only rc_conn_answer, never the HTTP, WebSocket or SSE code. */
#include <stdlib.h>

#include "ringcast/answer.h"
#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/ws.h"

/* The request id of a WebSocket ticket as a json_t (NULL = none). */
static json_t *ticket_id(const struct rc_ticket *t)
{
    if (!t->req_id_len || t->req_id_len > sizeof(t->req_id))
        return NULL;
    if (t->req_id[0] == '"')
        return json_stringn(t->req_id + 1, t->req_id_len - 1u);
    char num[sizeof(t->req_id) + 1];
    memcpy(num, t->req_id, t->req_id_len);
    num[t->req_id_len] = '\0';
    return json_integer((json_int_t)strtoll(num, NULL, 10));
}

static void answer_http(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    if (a->code)
        rc_http_deferred_error(c, t->serial, a->status, a->code, a->msg);
    else
        rc_http_deferred_respond(c, t->serial, a->status, a->extra_headers, a->json ? a->json : "",
                                 a->json ? a->len : 0);
}

static void answer_ws(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    json_t *id = ticket_id(t);
    if (a->code) {
        rc_ws_send_error(c, id, a->code, a->msg);
        json_decref(id);
        return;
    }
    json_t *data = a->json ? json_loadb(a->json, a->len, JSON_DECODE_ANY, NULL) : NULL;
    if (a->json && !data)
        rc_ws_send_error(c, id, "unavailable", "out of memory");
    else
        rc_ws_send_reply(c, a->type, id, data);
    json_decref(data);
    json_decref(id);
}

static void answer_sse(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    if (c->proto != RC_PROTO_SSE)
        return;
    if (a->code) {
        char sub[sizeof(t->req_id) + 1];
        size_t n = t->req_id_len < sizeof(t->req_id) ? t->req_id_len : 0;
        memcpy(sub, t->req_id, n);
        sub[n] = '\0';
        rc_conn_send_error(c, NULL, a->code, a->msg, n ? sub : NULL);
        return;
    }
    char rec[2048];
    int n = snprintf(rec, sizeof(rec), "event: %s\ndata: %.*s\n\n", a->type,
                     a->json ? (int)a->len : 2, a->json ? a->json : "{}");
    if (n > 0 && (size_t)n < sizeof(rec) && rc_conn_queue_copy(c, rec, (size_t)n) < 0)
        rc_log(RC_LOG_DEBUG, "sse_queue_failed", "type=%s", a->type);
}

void rc_conn_answer(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    switch ((enum rc_ticket_kind)t->kind) {
    case RC_TICKET_HTTP:
        answer_http(c, t, a);
        return;
    case RC_TICKET_WS:
        answer_ws(c, t, a);
        return;
    case RC_TICKET_SSE:
        answer_sse(c, t, a);
        return;
    case RC_TICKET_NONE:
        return;
    }
}
