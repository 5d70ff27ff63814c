/* ws.c - the WebSocket session (see ws.h). Frames are decoded by ws_frame.c
 * straight from the receive buffer; a text message that arrives whole in one
 * read is handled in place, only fragmented or split messages are copied. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/answer.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/client.h"
#include "ringcast/log.h"
#include "ringcast/msg.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/webhook.h"
#include "ringcast/ws.h"
#include "ringcast/ws_deflate.h"
#include "ringcast/ws_frame.h"

#define WS_OP_TEXT 0x1
#define WS_OP_CLOSE 0x8
#define WS_OP_PONG 0xA
#define REPLY_MAX (64 * 1024)

/* ---- sending ---------------------------------------------------------------------- */

static int send_frame(struct rc_conn *c, unsigned opcode, const void *payload, size_t len)
{
    uint8_t hdr[10];
    size_t hl = rc_ws_frame_header(hdr, opcode, len, true);
    uint8_t *buf = malloc(hl + len + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, hdr, hl);
    if (len)
        memcpy(buf + hl, payload, len);
    return rc_conn_queue_owned(c, buf, hl + len);
}

int rc_ws_send_text(struct rc_conn *c, const char *txt, size_t len)
{
    if (!c->ws || c->ws->close_sent)
        return -EPIPE;
    return send_frame(c, WS_OP_TEXT, txt, len);
}

void rc_ws_send_error(struct rc_conn *c, const json_t *id, const char *code, const char *msg)
{
    char out[1024];
    ssize_t n = rc_msg_error(out, sizeof(out), id, code, msg);
    if (n > 0)
        (void)rc_ws_send_text(c, out, (size_t)n);
}

void rc_ws_send_reply(struct rc_conn *c, const char *type, const json_t *id, const json_t *data)
{
    char *out = malloc(REPLY_MAX);
    if (!out)
        return;
    ssize_t n = rc_msg_reply(out, REPLY_MAX, type, id, data);
    if (n > 0)
        (void)rc_ws_send_text(c, out, (size_t)n);
    free(out);
}

void rc_ws_close(struct rc_conn *c, uint16_t code, const char *reason)
{
    struct rc_ws_state *ws = c->ws;
    if (!ws || ws->close_sent || c->state != RC_CONN_OPEN)
        return;
    uint8_t payload[125];
    size_t n = rc_ws_close_payload(payload, code, reason);
    (void)send_frame(c, WS_OP_CLOSE, payload, n);
    ws->close_sent = true;
    /* then FIN; the peer answers with its close frame and its own FIN */
    rc_conn_close_after_flush(c);
}

/* ---- heartbeat ---------------------------------------------------------------------- */

static uint64_t min_nonzero(uint64_t a, uint64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

/* The connection's next deadline: ping, silence, auth, token expiry. */
static void arm_heartbeat(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    uint64_t at = c->last_ping_ms + s->cfg->heartbeat_interval;
    at = min_nonzero(at, c->last_rx_ms + s->cfg->heartbeat_timeout);
    at = min_nonzero(at, c->auth_deadline_ms);
    at = min_nonzero(at, c->expire_ms);
    at = min_nonzero(at, c->greet_deadline_ms);
    rc_shard_arm_timer(s, c, at);
}

static void send_connected(struct rc_conn *c)
{
    char idbuf[RC_CONN_ID_HEX + 1], ts[32], msg[160];
    rc_conn_id_format(c->id, idbuf);
    rc_iso_time(ts);
    int n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"connected\",\"data\":{\"connection_id\":\"%s\","
                     "\"server_time\":\"%s\"}}",
                     idbuf, ts);
    (void)rc_ws_send_text(c, msg, (size_t)n);
}

/* The connected message is owed until the token given at connect is settled. */
static void send_owed_connected(struct rc_conn *c)
{
    if (c->ws && c->ws->greet_connected) {
        c->ws->greet_connected = false;
        send_connected(c);
    }
}

static void send_authenticated(struct rc_conn *c, const json_t *req_id)
{
    send_owed_connected(c);
    json_t *data = json_pack("{s:s}", "user_id", c->user_id);
    if (data && c->identity && c->identity->expires_at != INT64_MAX)
        json_object_set_new(data, "expires_at", json_integer(c->identity->expires_at));
    rc_ws_send_reply(c, "authenticated", req_id, data);
    json_decref(data);
}

/* auth actions answered after a held greeting, at most (then answered at once) */
#define GREET_IDS_MAX 16

/* rc_session_ready_fn: the user's durable subscriptions are in (or the wait is
 * over): send the greeting held back for them, once. */
static void greet_ready(struct rc_conn *c)
{
    if (!c->greet_deadline_ms || !c->ws)
        return;
    c->greet_deadline_ms = 0;
    json_t *ids = c->ws->greet_id; /* the auth ids held, in order (NULL: out of memory) */
    c->ws->greet_id = NULL;
    size_t n = json_array_size(ids);
    for (size_t i = 0; i < (n ? n : 1); i++) {
        json_t *req_id = json_array_get(ids, i);
        send_authenticated(c, json_is_null(req_id) ? NULL : req_id);
    }
    json_decref(ids);
}

/* Who is on a topic is visible to those who may subscribe to it (personal topics,
 * rules); else the forbidden error names the rule, as for subscribe. */
static bool presence_allowed(struct rc_conn *c, const struct rc_client_msg *m)
{
    struct rc_err err = {0};
    if (rc_client_may_subscribe(c, c->identity, m->topic, m->topic_len, &err) == 0)
        return true;
    char msg[sizeof(err.msg) + 48];
    snprintf(msg, sizeof(msg), "presence needs the right to subscribe: %s", err.msg);
    rc_ws_send_error(c, m->id, err.code ? err.code : "forbidden", msg);
    return false;
}

/* A token failed (verify counted it): say so; a connection that must
 * authenticate and is not closes. */
static void auth_failed(struct rc_conn *c, const json_t *req_id, const struct rc_err *err)
{
    send_owed_connected(c);
    rc_ws_send_error(c, req_id, err->code ? err->code : "unauthorized", err->msg);
    if (c->shard->cfg->auth_required && !c->authenticated)
        rc_ws_close(c, 1008, "authentication failed");
}

/* Adopt a verified identity (handshake or auth action) and answer. */
static void authenticated(struct rc_conn *c, struct rc_auth_identity *id, const json_t *req_id)
{
    if (c->identity && strcmp(c->identity->sub, id->sub) != 0) {
        rc_auth_identity_free(id);
        send_owed_connected(c);
        rc_ws_send_error(c, req_id, "forbidden",
                         "a connection keeps its user: re-auth with a token for the same sub, "
                         "or open a new connection");
        return;
    }
    bool first = !c->authenticated;
    rc_client_set_identity(c, id);
    /* the greeting waits for the user's durable subscriptions, so that they
     * apply from the first event published after the client sees it */
    json_t *held_id = req_id ? (json_t *)req_id : json_null();
    if (first && rc_client_hold_greeting(c, greet_ready)) {
        c->ws->greet_id = json_array();
        if (c->ws->greet_id && json_array_append(c->ws->greet_id, held_id) < 0)
            json_array_clear(c->ws->greet_id);
    } else if (c->greet_deadline_ms && c->ws->greet_id &&
               json_array_size(c->ws->greet_id) < GREET_IDS_MAX &&
               json_array_append(c->ws->greet_id, held_id) == 0) {
        /* a re-auth while the first greeting waits: answered right after it, in order */
    } else {
        send_authenticated(c, req_id);
    }
    arm_heartbeat(c);
}

/* The auth action: verify its token for this connection. */
static void authenticate(struct rc_conn *c, const char *tok, size_t len, const json_t *req_id)
{
    struct rc_auth_identity *id = NULL;
    struct rc_err err = {0};
    if (rc_client_verify(c, tok, len, &id, &err) < 0)
        auth_failed(c, req_id, &err);
    else
        authenticated(c, id, req_id);
}

static void ws_on_timer(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->state != RC_CONN_OPEN) {
        rc_conn_close_now(c); /* close handshake or flush took too long */
        return;
    }
    rc_client_greet_timer(c, greet_ready);
    if (c->auth_deadline_ms && s->now_ms >= c->auth_deadline_ms) {
        s->ctr.auth_timeouts++;
        rc_ws_send_error(c, NULL, "unauthorized",
                         "no valid token within auth_timeout; this server requires "
                         "authentication");
        rc_ws_close(c, 1008, "authentication required");
        return;
    }
    if (c->expire_ms && s->now_ms >= c->expire_ms) {
        if (!c->expired_notified) {
            s->ctr.token_expiries++;
            c->expired_notified = true;
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the token expired; send a fresh auth within %llu ms or the connection "
                     "closes",
                     (unsigned long long)s->cfg->token_grace);
            rc_ws_send_error(c, NULL, "token_expired", msg);
            c->expire_ms = s->now_ms + s->cfg->token_grace;
            if (!c->expire_ms)
                c->expire_ms = 1;
        } else {
            rc_ws_close(c, 1008, "token expired");
            return;
        }
    }
    if (s->now_ms >= c->last_rx_ms + s->cfg->heartbeat_timeout) {
        s->ctr.heartbeat_timeouts++;
        rc_conn_set_close_reason(c, RC_CLOSE_HEARTBEAT_TIMEOUT);
        rc_log_debug("heartbeat_timeout", "conn=%016llx", (unsigned long long)c->id);
        rc_ws_close(c, 1001, "heartbeat timeout: nothing received within heartbeat_timeout");
        return;
    }
    if (s->now_ms >= c->last_ping_ms + s->cfg->heartbeat_interval) {
        char ts[32], msg[96];
        rc_iso_time(ts);
        int n =
            snprintf(msg, sizeof(msg), "{\"type\":\"ping\",\"data\":{\"timestamp\":\"%s\"}}", ts);
        (void)rc_ws_send_text(c, msg, (size_t)n);
        c->last_ping_ms = s->now_ms;
    }
    arm_heartbeat(c);
}

static void ws_on_drain(struct rc_conn *c)
{
    /* RFC 6455 §7.4.1 / IANA: 1012 = service restart; reconnect with backoff */
    rc_conn_set_close_reason(c, RC_CLOSE_DRAIN);
    rc_ws_close(c, 1012, "server restart; reconnect with backoff");
}

/* ---- client actions ------------------------------------------------------------------- */

static void do_subscribe(struct rc_conn *c, struct rc_client_msg *m)
{
    struct rc_err err = {0};
    struct rc_ticket t = rc_ticket_ws(c, m->id);
    struct rc_sub_opts o = {.since = m->since, .include_initial = m->include_initial, .ticket = &t};
    if (rc_client_may_subscribe(c, c->identity, m->topic, m->topic_len, &err) < 0) {
        rc_ws_send_error(c, m->id, err.code ? err.code : "forbidden", err.msg);
        return;
    }
    if (rc_client_resume_check(c, m->topic, m->topic_len, &o, &err) < 0) {
        rc_ws_send_error(c, m->id, err.code ? err.code : "bad_request", err.msg);
        return;
    }
    struct rc_sub *sub = rc_broker_subscribe(c, m->topic, m->topic_len, m->filter, &err);
    if (!sub) {
        rc_ws_send_error(c, m->id, err.code ? err.code : "bad_request", err.msg);
        return;
    }
    char sub_id[RC_SUB_ID_LEN + 1];
    memcpy(sub_id, sub->id, sizeof(sub_id));
    json_t *data =
        json_pack("{s:s, s:s%}", "subscription", sub->id, "topic", m->topic, m->topic_len);
    if (data && m->via_collection)
        json_object_set_new(data, "collection", json_stringn(m->topic, m->topic_len));
    if (data && m->filter)
        json_object_set(data, "filter", m->filter);
    if (data && m->since)
        json_object_set_new(data, "since", json_string(m->since));
    if (data && m->include_initial)
        json_object_set_new(data, "include_initial", json_true());
    if (rc_broker_reply_held(sub)) {
        /* max_subscribers, a cluster channel: answer once it is settled */
        rc_broker_hold_reply(sub, &t, data);
    } else {
        /* the answer goes first: replayed / initial events follow it */
        rc_ws_send_reply(c, "subscribed", m->id, data);
        json_decref(data);
    }
    if (rc_broker_resume(c, sub, &o, &err) < 0) {
        rc_broker_unsubscribe_id(c, sub_id);
        rc_ws_send_error(c, m->id, err.code ? err.code : "bad_request", err.msg);
    }
}

static void do_unsubscribe(struct rc_conn *c, struct rc_client_msg *m)
{
    size_t n;
    json_t *data;
    if (m->subscription) {
        n = rc_broker_unsubscribe_id(c, m->subscription);
        if (!n) {
            char msg[160];
            snprintf(msg, sizeof(msg), "no subscription \"%.40s\" on this connection",
                     m->subscription);
            rc_ws_send_error(c, m->id, "not_found", msg);
            return;
        }
        data = json_pack("{s:s}", "subscription", m->subscription);
    } else {
        n = rc_broker_unsubscribe_pattern(c, m->topic, m->topic_len);
        if (!n) {
            char msg[400];
            snprintf(msg, sizeof(msg), "this connection has no subscription on \"%.*s\"",
                     (int)m->topic_len, m->topic);
            rc_ws_send_error(c, m->id, "not_found", msg);
            return;
        }
        data = json_pack("{s:s%, s:I}", "topic", m->topic, m->topic_len, "removed", (json_int_t)n);
        if (data && m->via_collection)
            json_object_set_new(data, "collection", json_stringn(m->topic, m->topic_len));
    }
    rc_ws_send_reply(c, "unsubscribed", m->id, data);
    json_decref(data);
}

static void do_publish(struct rc_conn *c, struct rc_client_msg *m)
{
    struct rc_err err = {0};
    if (rc_auth_check_publish(c->shard->srv->auth, c->identity, m->topic, m->topic_len, &err) < 0) {
        c->shard->ctr.forbidden++;
        rc_ws_send_error(c, m->id, err.code ? err.code : "forbidden", err.msg);
        return;
    }
    struct rc_publish pub = {
        .topic = m->topic,
        .topic_len = m->topic_len,
        .type = m->type,
        /* a private copy: m->root is freed here while the owner shard works */
        .data = m->data ? json_deep_copy(m->data) : NULL,
    };
    struct rc_ticket t = rc_ticket_ws(c, m->id);
    rc_broker_publish(c, &t, &pub);
}

/* Count one rate-limited message; true when the connection has had rate_limit_close_after
 * of them within rate_limit_window and must close. A window, not a run: a flood that lets
 * one message through now and then (the bucket refills) is still a flood. */
static bool rate_limit_exhausted(struct rc_conn *c)
{
    const struct rc_config *cfg = c->shard->cfg;
    uint64_t now = c->shard->now_ms;

    if (!c->limited_count || now - c->limited_since_ms >= cfg->rate_limit_window) {
        c->limited_since_ms = now;
        c->limited_count = 0;
    }
    c->limited_count++;
    return cfg->rate_limit_close_after && c->limited_count >= cfg->rate_limit_close_after;
}

static void handle_message(struct rc_conn *c, const uint8_t *p, size_t n)
{
    struct rc_client_msg m;
    struct rc_err err = {0};
    struct rc_msg_limits lim = {.max_bytes = c->shard->cfg->ws_max_message, .max_depth = 0};

    struct rc_shard *s = c->shard;
    if (!rc_bucket_take(&c->bucket, (int64_t)s->now_ms, 1)) {
        s->ctr.rate_limited++;
        if (rate_limit_exhausted(c)) {
            s->ctr.rate_limit_disconnects++;
            char why[200];
            snprintf(why, sizeof(why),
                     "%u messages dropped within %llu ms (rate_limit_close_after); closing: "
                     "send at most %u messages per second",
                     c->limited_count, (unsigned long long)s->cfg->rate_limit_window,
                     s->cfg->message_rate);
            rc_ws_send_error(c, NULL, "rate_limited", why);
            rc_ws_close(c, 1008, "rate limit exceeded");
            return;
        }
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "more than %u messages per second (burst %u); this message was dropped",
                 s->cfg->message_rate, s->cfg->message_burst);
        rc_ws_send_error(c, NULL, "rate_limited", msg);
        return;
    }
    if (rc_msg_parse((const char *)p, n, &lim, &m, &err) < 0) {
        rc_ws_send_error(c, m.id, err.code ? err.code : "bad_request", err.msg);
        rc_msg_fini(&m);
        return;
    }
    switch (m.action) {
    case RC_ACT_SUBSCRIBE:
        do_subscribe(c, &m);
        break;
    case RC_ACT_UNSUBSCRIBE:
        do_unsubscribe(c, &m);
        break;
    case RC_ACT_PUBLISH:
        do_publish(c, &m);
        break;
    case RC_ACT_PONG:
        break; /* activity was recorded when the frame arrived */
    case RC_ACT_PING: {
        json_t *data = json_object();
        char ts[32];
        rc_iso_time(ts);
        json_object_set_new(data, "timestamp", json_string(ts));
        rc_ws_send_reply(c, "pong", m.id, data);
        json_decref(data);
        break;
    }
    case RC_ACT_AUTH:
        authenticate(c, m.token, strlen(m.token), m.id);
        break;
    case RC_ACT_PRESENCE: {
        if (!presence_allowed(c, &m))
            break;
        if (!rc_broker_presence_enabled(c->shard, m.topic, m.topic_len)) {
            rc_ws_send_error(c, m.id, "not_enabled",
                             "presence is not kept for this topic; enable it with presence = "
                             "true or a rule with presence=true");
            break;
        }
        struct rc_ticket t = rc_ticket_ws(c, m.id);
        rc_broker_presence_list(c, &t, m.topic, m.topic_len, 0, 100);
        break;
    }
    case RC_ACT_MESSAGE: {
        char msg[128];
        snprintf(msg, sizeof(msg), "action \"%s\" is not supported by this server yet",
                 rc_action_name(m.action));
        rc_ws_send_error(c, m.id, "not_supported", msg);
        break;
    }
    }
    rc_msg_fini(&m);
}

/* ---- frames in -------------------------------------------------------------------------- */

static int msg_append(struct rc_ws_state *ws, const uint8_t *p, size_t n)
{
    size_t need;
    if (!rc_add_size(ws->msg_len, n, &need))
        return -E2BIG;
    if (need > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(ws->msg, cap);
        if (!nb)
            return -ENOMEM;
        ws->msg = nb;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, p, n);
    ws->msg_len = need;
    return 0;
}

static void msg_reset(struct rc_ws_state *ws)
{
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
}

/* A piece of a compressed message (permessage-deflate): inflated into ws->msg,
 * ws_max_message bounding the inflated size; handled once it ends. */
static void on_compressed(struct rc_conn *c, const struct rc_ws_chunk *ch)
{
    struct rc_ws_state *ws = c->ws;
    if (!ws->zin && !(ws->zin = rc_ws_inflater_new())) {
        rc_ws_close(c, 1011, "out of memory");
        return;
    }
    struct rc_ws_outbuf out = {&ws->msg, &ws->msg_len, &ws->msg_cap};
    int rc = rc_ws_inflate(ws->zin, ch->data, ch->len, ch->msg_end, ws->zin_reset, out,
                           c->shard->cfg->ws_max_message);
    if (rc == -E2BIG) {
        rc_ws_close(c, 1009, "inflated message is over ws_max_message; send smaller messages");
        return;
    }
    if (rc == -EBADMSG) {
        rc_ws_close(c, 1007, "compressed message is not valid deflate data (RFC 7692 7.2.2)");
        return;
    }
    if (rc < 0) {
        rc_ws_close(c, 1011, "out of memory");
        return;
    }
    if (!ch->msg_end)
        return;
    struct rc_utf8 u;
    rc_utf8_init(&u);
    if (ch->kind == RC_WS_CHUNK_TEXT &&
        (!rc_utf8_feed(&u, ws->msg, ws->msg_len) || !rc_utf8_complete(&u))) {
        rc_ws_close(c, 1007, "inflated text message is not valid UTF-8 (RFC 6455 8.1)");
        return;
    }
    if (ch->kind == RC_WS_CHUNK_TEXT)
        handle_message(c, ws->msg, ws->msg_len);
    else
        rc_ws_send_error(c, NULL, "binary_not_supported",
                         "binary frames are not supported; send JSON text frames");
    msg_reset(ws);
}

static void on_chunk(struct rc_conn *c, const struct rc_ws_chunk *ch)
{
    struct rc_ws_state *ws = c->ws;
    if ((ch->kind == RC_WS_CHUNK_TEXT || ch->kind == RC_WS_CHUNK_BINARY) && ch->compressed) {
        on_compressed(c, ch);
        return;
    }
    switch (ch->kind) {
    case RC_WS_CHUNK_TEXT:
        if (ch->msg_end && ws->msg_len == 0) {
            handle_message(c, ch->data, ch->len); /* whole in one piece: no copy */
            return;
        }
        if (msg_append(ws, ch->data, ch->len) < 0) {
            rc_ws_close(c, 1011, "out of memory");
            return;
        }
        if (ch->msg_end) {
            handle_message(c, ws->msg, ws->msg_len);
            msg_reset(ws);
        }
        return;
    case RC_WS_CHUNK_BINARY:
        if (ch->msg_end)
            rc_ws_send_error(c, NULL, "binary_not_supported",
                             "binary frames are not supported; send JSON text frames");
        return;
    case RC_WS_CHUNK_PING:
        if (!ws->close_sent)
            (void)send_frame(c, WS_OP_PONG, ch->data, ch->len);
        return;
    case RC_WS_CHUNK_PONG:
        return;
    case RC_WS_CHUNK_CLOSE:
        ws->close_received = true;
        rc_conn_set_close_reason(c, RC_CLOSE_CLIENT);
        if (ws->close_sent) {
            rc_conn_close_now(c);
            return;
        }
        /* echo the code (RFC 6455 5.5.1); 1005 means none was given */
        rc_ws_close(c, ch->close_code == 1005 ? 1000 : ch->close_code, "");
        return;
    }
}

static void ws_on_data(struct rc_conn *c, char *buf, size_t len)
{
    struct rc_ws_state *ws = c->ws;
    uint8_t *p = (uint8_t *)buf;
    while (len > 0 && c->state == RC_CONN_OPEN && !ws->close_received) {
        struct rc_ws_chunk ch;
        struct rc_err err = {0};
        size_t used = 0;
        enum rc_parse r = rc_ws_read(&ws->reader, p, len, &used, &ch, &err);
        p += used;
        len -= used;
        if (r == RC_PARSE_FAIL) {
            rc_log_debug("ws_protocol_error", "conn=%016llx code=%d reason=\"%s\"",
                         (unsigned long long)c->id, err.status, err.msg);
            rc_ws_close(c, (uint16_t)(err.status ? err.status : 1002), err.msg);
            return;
        }
        if (r == RC_PARSE_MORE) {
            if (used == 0)
                return; /* everything left is buffered inside the reader */
            continue;
        }
        on_chunk(c, &ch);
    }
}

static void ws_on_eof(struct rc_conn *c)
{
    rc_conn_close_soon(c);
}

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

/* The ws ops' answer: {"type":"error",...} or {"type":T,"id":ID,"data":DATA}. */
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

static const struct rc_conn_ops ws_ops = {
    .name = "ws",
    .on_data = ws_on_data,
    .on_eof = ws_on_eof,
    .on_timer = ws_on_timer,
    .on_drain = ws_on_drain,
    .release = rc_session_release,
    .answer = answer_ws,
};

/* ---- opening handshake (RFC 6455 section 4.2) ------------------------------------------------ */

/* permessage-deflate (RFC 7692) when ws_compression is on and the client
 * offers it: ext gets the answer's header line (else stays empty). */
static void negotiate_deflate(struct rc_conn *c, struct rc_ws_state *ws,
                              const struct rc_http_request *req,
                              char ext[RC_WS_DEFLATE_ANSWER_MAX + 32])
{
    struct rc_slice offers[RC_HTTP_MAX_HEADERS];
    size_t n = 0;
    if (!c->shard->cfg->ws_compression)
        return;
    for (unsigned i = 0; i < req->nheaders; i++)
        if (rc_slice_ieq(req->headers[i].name, "Sec-WebSocket-Extensions"))
            offers[n++] = req->headers[i].value;
    struct rc_ws_deflate_agreed a;
    char answer[RC_WS_DEFLATE_ANSWER_MAX];
    if (!rc_ws_deflate_negotiate(offers, n, &a, answer))
        return;
    snprintf(ext, RC_WS_DEFLATE_ANSWER_MAX + 32, "Sec-WebSocket-Extensions: %s\r\n", answer);
    rc_ws_reader_allow_compressed(&ws->reader);
    ws->zin_reset = a.client_no_context_takeover;
    c->ws_deflate_bits = a.server_window_bits;
}

void rc_ws_handle_upgrade(struct rc_http_ctx *x)
{
    struct rc_conn *c = x->conn;
    const struct rc_http_request *req = x->req;
    const struct rc_http_header *ver = rc_http_find_header(req, "Sec-WebSocket-Version");
    const struct rc_http_header *key = rc_http_find_header(req, "Sec-WebSocket-Key");
    char accept[29];

    /* Connection and Upgrade are lists, one list over all their field lines (RFC 9110
     * §5.3); the key and the version must appear once (RFC 6455 §11.3.1, §11.3.5). */
    if (!rc_http_header_has_token(req, "Upgrade", "websocket")) {
        static const char body[] =
            "{\"error\":{\"code\":\"upgrade_required\",\"message\":\"this endpoint speaks "
            "WebSocket: send Upgrade: websocket\"}}";
        rc_http_respond(x, 426, "application/json", "Upgrade: websocket\r\n", body,
                        sizeof(body) - 1);
        return;
    }
    if (!rc_http_header_has_token(req, "Connection", "upgrade")) {
        rc_http_error(x, 400, "bad_handshake",
                      "WebSocket handshake needs a Connection header containing \"Upgrade\"");
        return;
    }
    if (req->minor_version < 1) {
        rc_http_error(x, 400, "bad_handshake", "WebSocket handshake needs HTTP/1.1");
        return;
    }
    if (rc_http_header_count(req, "Sec-WebSocket-Version") > 1) {
        rc_http_error(x, 400, "bad_handshake",
                      "Sec-WebSocket-Version is given more than once; send it once, as 13");
        return;
    }
    if (!ver || !rc_slice_eq(ver->value, "13")) {
        static const char body[] =
            "{\"error\":{\"code\":\"unsupported_version\",\"message\":\"only WebSocket "
            "version 13 (RFC 6455) is supported\"}}";
        rc_http_respond(x, 426, "application/json", "Sec-WebSocket-Version: 13\r\n", body,
                        sizeof(body) - 1);
        return;
    }
    if (rc_http_header_count(req, "Sec-WebSocket-Key") > 1) {
        rc_http_error(x, 400, "bad_handshake",
                      "Sec-WebSocket-Key is given more than once; send exactly one key");
        return;
    }
    if (!key || rc_ws_accept_key(key->value, accept) < 0) {
        rc_http_error(x, 400, "bad_handshake",
                      "Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
        return;
    }
    /* Origin: refused before routing (http.c dispatch, cors.c) when allowed_origins
     * is set and neither lists it nor is it this server's own origin */
    struct rc_shard *s = c->shard;
    if (s->ip_handshakes && rc_iptable_rate_hit(s->ip_handshakes, &c->ipkey, (int64_t)s->now_ms,
                                                s->cfg->handshake_rate_per_ip) < 0) {
        s->ctr.refused_handshake_rate++;
        rc_http_error(x, 503, "too_many_handshakes",
                      "more than %u handshakes per second from your address "
                      "(handshake_rate_per_ip); retry later",
                      s->cfg->handshake_rate_per_ip);
        return;
    }
    struct rc_ws_state *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return;
    }
    struct rc_ws_limits lim = {.max_message = c->shard->cfg->ws_max_message};
    rc_ws_reader_init(&ws->reader, &lim);
    char ext[RC_WS_DEFLATE_ANSWER_MAX + 32] = "";
    negotiate_deflate(c, ws, req, ext);

    char head[256 + sizeof(ext)];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                      accept, ext);
    if (rc_conn_queue_copy(c, head, (size_t)hn) < 0) {
        free(ws);
        return;
    }
    c->ws = ws;
    rc_http_switch(c, RC_PROTO_WS, &ws_ops);
    c->shard->ctr.ws_upgrades++;
    c->last_rx_ms = c->shard->now_ms;
    c->last_ping_ms = c->shard->now_ms;

    rc_bucket_init(&c->bucket, s->cfg->message_rate, s->cfg->message_burst, (int64_t)s->now_ms);
    if (s->cfg->auth_required)
        c->auth_deadline_ms = s->now_ms + s->cfg->auth_timeout;
    /* the token of the request (?token= or Authorization: Bearer), verified */
    struct rc_auth_identity *id = NULL;
    struct rc_err terr = {0};
    if (rc_client_connect_identity(c, req, &id, &terr) < 0) {
        c->ws->greet_connected = true; /* sent before the error */
        auth_failed(c, NULL, &terr);
    } else if (id) {
        c->ws->greet_connected = true; /* sent with authenticated */
        authenticated(c, id, NULL);
    } else {
        send_connected(c);
    }
    if (c->state == RC_CONN_OPEN)
        arm_heartbeat(c);
    rc_webhook_conn(s->srv->webhook, c, RC_WEBHOOK_CONNECT, NULL, 0);
}
