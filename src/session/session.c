/* session.c - what the three sessions (http.c, ws.c, sse.c) share: the hooks
 * main registers (session.h), the release op of every session's connection
 * ops, and the error record a WebSocket or SSE client gets.
 * Runs on the connection's shard thread; the hook table is set once by main
 * before the shards start and read-only after. */
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/conn_limit.h"
#include "ringcast/http.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/webhook.h"
#include "ringcast/ws.h"
#include "ringcast/ws_deflate.h"

/* ---- the hooks main registers ------------------------------------------------------ */

static const struct rc_session_hooks no_hooks;
static const struct rc_session_hooks *g_hooks = &no_hooks;

void rc_session_set_hooks(const struct rc_session_hooks *h)
{
    g_hooks = h ? h : &no_hooks;
}

const struct rc_session_hooks *rc_session_hooks(void)
{
    return g_hooks;
}

/* ---- shared by every session ---------------------------------------------------- */

void rc_session_release(struct rc_conn *c)
{
    rc_broker_conn_gone(c); /* its unsubscribe events come before its disconnect */
    rc_conn_limit_release(c);
    if (c->proto == RC_PROTO_WS || c->proto == RC_PROTO_SSE)
        rc_webhook_conn(c->shard->srv->webhook, c, RC_WEBHOOK_DISCONNECT, NULL, 0);
    rc_auth_identity_free(c->identity);
    c->identity = NULL;
    json_decref(c->durable_changes);
    c->durable_changes = NULL;
    rc_http_release(c);
    if (c->ws) {
        free(c->ws->msg);
        rc_ws_inflater_free(c->ws->zin);
        json_decref(c->ws->greet_id);
        free(c->ws);
        c->ws = NULL;
    }
}

void rc_conn_send_error(struct rc_conn *c, const json_t *req_id, const char *code, const char *msg,
                        const char *sub_id)
{
    if (c->proto == RC_PROTO_WS) {
        rc_ws_send_error(c, req_id, code, msg);
        return;
    }
    if (c->proto != RC_PROTO_SSE)
        return;
    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (j && sub_id)
        json_object_set_new(j, "subscription", json_string(sub_id));
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt)
        return;
    size_t n = strlen(txt) + 32;
    char *rec = malloc(n);
    if (rec) {
        int k = snprintf(rec, n, "event: error\ndata: %s\n\n", txt);
        /* on failure the connection is closing: nothing more to say */
        (void)!rc_conn_queue_owned(c, rec, (size_t)k);
    }
    free(txt);
}
