/* sse.c - Server-Sent Events streams (see sse.h). A stream is an HTTP/1.1
 * response without Content-Length that never ends on its own: records go out
 * as they come, heartbeats keep proxies from timing it out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/client.h"
#include "ringcast/filter.h"
#include "ringcast/history.h"
#include "ringcast/log.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/sse.h"
#include "ringcast/ticket.h"
#include "ringcast/topic.h"
#include "ringcast/webhook.h"

#define MAX_QUERY_VALUE 16384

static void arm_ping(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    uint64_t at = c->last_ping_ms + s->cfg->heartbeat_interval;
    if (c->expire_ms && c->expire_ms < at)
        at = c->expire_ms;
    if (c->greet_deadline_ms && c->greet_deadline_ms < at)
        at = c->greet_deadline_ms;
    rc_shard_arm_timer(s, c, at);
}

static void send_connection_record(struct rc_conn *c)
{
    char rec[96], idbuf[RC_CONN_ID_HEX + 1];
    rc_conn_id_format(c->id, idbuf);
    int n = snprintf(rec, sizeof(rec), "event: connection\ndata: {\"connection_id\":\"%s\"}\n\n",
                     idbuf);
    (void)!rc_conn_queue_copy(c, rec, (size_t)n); /* fails only when closing */
}

/* rc_session_ready_fn: the durable subscriptions are in (or the wait is over):
 * send the connection record held back for them, once. */
static void greet_ready(struct rc_conn *c)
{
    if (!c->greet_deadline_ms)
        return;
    c->greet_deadline_ms = 0;
    send_connection_record(c);
}

static void sse_on_timer(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->state != RC_CONN_OPEN) {
        rc_conn_close_now(c);
        return;
    }
    rc_client_greet_timer(c, greet_ready);
    if (c->expire_ms && s->now_ms >= c->expire_ms) {
        /* an SSE client cannot re-auth on the stream: tell it, then end it */
        if (!c->expired_notified) {
            static const char rec[] =
                "event: error\ndata: {\"code\":\"token_expired\",\"message\":\"the token "
                "expired; reconnect with a fresh one\"}\n\n";
            s->ctr.token_expiries++;
            c->expired_notified = true;
            c->expire_ms = s->now_ms + s->cfg->token_grace + 1;
            if (rc_conn_queue_static(c, rec, sizeof(rec) - 1) < 0)
                return;
            arm_ping(c);
            return;
        }
        rc_conn_close_after_flush(c);
        return;
    }
    if (s->now_ms < c->last_ping_ms + s->cfg->heartbeat_interval) {
        arm_ping(c);
        return;
    }
    char ts[32], rec[96];
    rc_iso_time(ts);
    int n = snprintf(rec, sizeof(rec), "event: ping\ndata: {\"timestamp\":\"%s\"}\n\n", ts);
    if (rc_conn_queue_copy(c, rec, (size_t)n) < 0)
        return;
    c->last_ping_ms = s->now_ms;
    arm_ping(c);
}

static void sse_on_drain(struct rc_conn *c)
{
    static const char bye[] = ": server is shutting down; reconnect later\n\n";
    rc_conn_set_close_reason(c, RC_CLOSE_DRAIN);
    if (rc_conn_queue_static(c, bye, sizeof(bye) - 1) == 0)
        rc_conn_close_after_flush(c);
}

static void sse_on_data(struct rc_conn *c, char *buf, size_t len)
{
    (void)c, (void)buf, (void)len; /* an SSE client has nothing more to say; discard */
}

static void sse_on_eof(struct rc_conn *c)
{
    rc_conn_close_soon(c);
}

/* The sse ops' answer: an error record naming the subscription, or a record
 * of the answer's type. */
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

static const struct rc_conn_ops sse_ops = {
    .name = "sse",
    .on_data = sse_on_data,
    .on_eof = sse_on_eof,
    .on_timer = sse_on_timer,
    .on_drain = sse_on_drain,
    .release = rc_session_release,
    .answer = answer_sse,
};

/* Decode one query value into a fresh NUL-terminated string. */
static char *query_value(struct rc_slice v, struct rc_http_ctx *x, const char *name)
{
    char *out = malloc(v.n + 1);
    if (!out) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return NULL;
    }
    ssize_t n = rc_http_url_decode(v, out, v.n + 1, true);
    if (n < 0) {
        free(out);
        rc_http_error(x, 400, "bad_query", "query parameter %s has a bad %%-escape", name);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

struct sse_req {
    char *topics[64];
    size_t ntopics;
    json_t *filter;
    char *since; /* ?since= or the Last-Event-ID header */
    bool since_from_header;
    bool last_id_too_long; /* a Last-Event-ID of RC_STREAM_ID_MAX bytes or more */
    bool include_initial;
};

static void sse_req_fini(struct sse_req *r)
{
    for (size_t i = 0; i < r->ntopics; i++)
        free(r->topics[i]);
    json_decref(r->filter);
    free(r->since);
}

/* Parse and validate the query; 0, or -EINVAL after answering the error. */
static int parse_query(struct rc_http_ctx *x, struct sse_req *r)
{
    const struct rc_config *cfg = x->conn->shard->cfg;
    struct rc_slice rest = x->req->query, k, v;
    struct rc_err err = {0};
    size_t max_topics = cfg->max_subscriptions < RC_ARRAY_LEN(r->topics) ? cfg->max_subscriptions
                                                                         : RC_ARRAY_LEN(r->topics);
    while (rc_http_query_next(&rest, &k, &v)) {
        if (v.n > MAX_QUERY_VALUE) {
            rc_http_error(x, 400, "bad_query", "a query value is longer than %d bytes",
                          MAX_QUERY_VALUE);
            return -EINVAL;
        }
        if (rc_slice_eq(k, "topic") || rc_slice_eq(k, "collection")) {
            if (r->ntopics >= max_topics) {
                rc_http_error(x, 400, "too_many_subscriptions", "at most %zu topics per SSE stream",
                              max_topics);
                return -EINVAL;
            }
            char *t = query_value(v, x, "topic");
            if (!t)
                return -EINVAL;
            r->topics[r->ntopics++] = t;
            if (rc_topic_validate(t, strlen(t), RC_TOPIC_PATTERN, &err) < 0) {
                rc_http_error(x, 400, "bad_topic", "%s", err.msg);
                return -EINVAL;
            }
        } else if (rc_slice_eq(k, "filter")) {
            char *f = query_value(v, x, "filter");
            if (!f)
                return -EINVAL;
            json_error_t jerr;
            json_decref(r->filter);
            r->filter = json_loads(f, JSON_REJECT_DUPLICATES, &jerr);
            free(f);
            if (!r->filter || !json_is_object(r->filter)) {
                rc_http_error(x, 400, "bad_filter", "filter must be a JSON object%s%s",
                              r->filter ? "" : ": ", r->filter ? "" : jerr.text);
                return -EINVAL;
            }
            struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
            struct rc_filter *cf = rc_filter_compile(r->filter, &lim, &err);
            if (!cf) {
                rc_http_error(x, 400, "bad_filter", "%s", err.msg);
                return -EINVAL;
            }
            rc_filter_free(cf);
        } else if (rc_slice_eq(k, "since")) {
            free(r->since);
            r->since = query_value(v, x, "since");
            if (!r->since)
                return -EINVAL;
        } else if (rc_slice_eq(k, "include_initial")) {
            r->include_initial = rc_slice_eq(v, "true") || rc_slice_eq(v, "1");
            if (!r->include_initial && !rc_slice_eq(v, "false") && !rc_slice_eq(v, "0")) {
                rc_http_error(x, 400, "bad_query", "include_initial must be true or false");
                return -EINVAL;
            }
        }
        /* other parameters (token, ...) are for other layers or ignored */
    }
    if (!r->since) {
        /* a browser reconnecting sends the last id it saw */
        const struct rc_http_header *h = rc_http_find_header(x->req, "Last-Event-ID");
        if (h && h->value.n >= RC_STREAM_ID_MAX) {
            r->last_id_too_long = true;
        } else if (h && h->value.n > 0) {
            r->since = strndup(h->value.p, h->value.n);
            r->since_from_header = true;
        }
    }
    if (r->since && !r->since_from_header &&
        (r->ntopics != 1 || rc_topic_is_pattern(r->topics[0], strlen(r->topics[0])))) {
        rc_http_error(x, 400, "bad_query",
                      "since needs exactly one topic without wildcards: event ids count per "
                      "topic");
        return -EINVAL;
    }
    return 0;
}

/* Whether the stream gets stream ids (history.h): several topics, one of them
 * exact. A stream of one topic keeps plain event ids; one of patterns only has
 * nothing to resume. */
static bool stream_has_id(const struct sse_req *r)
{
    if (r->ntopics < 2 || r->ntopics > RC_STREAM_TOPICS_MAX)
        return false;
    for (size_t i = 0; i < r->ntopics; i++)
        if (!rc_topic_is_pattern(r->topics[i], strlen(r->topics[i])))
            return true;
    return false;
}

/* Say on the stream which patterns a Last-Event-ID cannot resume. */
static void gap_for_patterns(struct rc_conn *c, const struct sse_req *r)
{
    char msg[512];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "events published while disconnected to");
    for (size_t i = 0; i < r->ntopics && n < sizeof(msg); i++)
        if (rc_topic_is_pattern(r->topics[i], strlen(r->topics[i])))
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %.64s", r->topics[i]);
    if (n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - n,
                 " cannot be replayed (only exact topics resume); fetch their current state "
                 "again");
    rc_conn_send_error(c, NULL, "history_gap", msg, NULL);
}

/* A stream of several topics with a stream id: resume every exact topic from
 * its position in Last-Event-ID, or start it from the topic's current
 * position, so the next Last-Event-ID resumes it with no gap and no
 * duplicate. A bad Last-Event-ID is reported and the stream starts from now. */
static void start_multi(struct rc_conn *c, struct sse_req *r)
{
    struct rc_stream_pos pos[RC_STREAM_TOPICS_MAX];
    memset(pos, 0, sizeof(pos));
    struct rc_err err = {0};
    if (r->last_id_too_long) {
        rc_err_set(&err, 400, "bad_event_id",
                   "Last-Event-ID is longer than %d bytes; the stream continues from now",
                   RC_STREAM_ID_MAX - 1);
        rc_conn_send_error(c, NULL, "history_gap", err.msg, NULL);
    } else if (r->since &&
               rc_stream_id_parse(r->since, strlen(r->since), pos, r->ntopics, &err) < 0) {
        memset(pos, 0, sizeof(pos));
        rc_conn_send_error(c, NULL, "history_gap", err.msg, NULL);
    } else if (r->since) {
        bool patterns = false;
        for (size_t i = 0; i < r->ntopics; i++)
            patterns |= rc_topic_is_pattern(r->topics[i], strlen(r->topics[i]));
        if (patterns)
            gap_for_patterns(c, r);
    }
    if (rc_broker_stream_start(c, r->ntopics, pos) < 0) {
        rc_conn_send_error(c, NULL, "unavailable", "out of memory", NULL);
        rc_conn_close_after_flush(c);
        return;
    }
    for (size_t i = 0; i < r->ntopics; i++) {
        size_t tn = strlen(r->topics[i]);
        bool exact = !rc_topic_is_pattern(r->topics[i], tn);
        err = (struct rc_err){0};
        struct rc_sub *sub = rc_broker_subscribe(c, r->topics[i], tn, r->filter, &err);
        if (!sub) {
            rc_conn_send_error(c, NULL, err.code ? err.code : "unavailable", err.msg, NULL);
            rc_conn_close_after_flush(c);
            return;
        }
        sub->stream_slot = (uint8_t)(i + 1);
        struct rc_sub_opts o = {0};
        if (exact && pos[i].id[0])
            o.since = pos[i].id;
        else if (r->include_initial)
            o.include_initial = true;
        else if (exact)
            o.from_now = true;
        if (rc_broker_resume(c, sub, &o, &err) < 0)
            rc_conn_send_error(c, NULL, "history_gap", err.msg, sub->id);
    }
}

void rc_sse_handle(struct rc_http_ctx *x)
{
    struct rc_conn *c = x->conn;
    struct rc_shard *s = c->shard;
    struct sse_req r = {0};

    if (x->req->minor_version < 1) {
        rc_http_error(x, 400, "http11_required", "Server-Sent Events need HTTP/1.1");
        return;
    }
    if (x->head_only) {
        rc_http_respond(x, 200, "text/event-stream", NULL, NULL, 0);
        return;
    }
    if (s->ip_handshakes && rc_iptable_rate_hit(s->ip_handshakes, &c->ipkey, (int64_t)s->now_ms,
                                                s->cfg->handshake_rate_per_ip) < 0) {
        s->ctr.refused_handshake_rate++;
        rc_http_error(x, 503, "too_many_handshakes",
                      "more than %u handshakes per second from your address; retry later",
                      s->cfg->handshake_rate_per_ip);
        return;
    }
    if (parse_query(x, &r) < 0) {
        sse_req_fini(&r);
        return;
    }
    if (r.since && !r.since_from_header) {
        /* an explicit ?since= must be a well-formed id (Last-Event-ID problems are
         * reported on the stream instead: a browser cannot act on a 400) */
        struct rc_sub_opts o = {.since = r.since};
        struct rc_err serr = {0};
        if (rc_client_resume_check(c, r.topics[0], strlen(r.topics[0]), &o, &serr) < 0) {
            rc_http_error(x, 400, serr.code ? serr.code : "bad_query", "%s", serr.msg);
            sse_req_fini(&r);
            return;
        }
    }
    /* identity: ?token= or Authorization: Bearer; an SSE client cannot send an
     * auth message later, so a bad or missing token is answered here */
    struct rc_err terr = {0};
    struct rc_auth_identity *id = NULL;
    if (rc_client_connect_identity(c, x->req, &id, &terr) < 0) {
        rc_http_error(x, 401, terr.code ? terr.code : "unauthorized", "%s", terr.msg);
        sse_req_fini(&r);
        return;
    }
    if (!id && s->cfg->auth_required) {
        s->ctr.auth_failures++;
        rc_http_error(x, 401, "unauthorized",
                      "this server requires a token: ?token=<JWT> or Authorization: Bearer");
        sse_req_fini(&r);
        return;
    }
    for (size_t i = 0; i < r.ntopics; i++) {
        struct rc_err perr = {0};
        if (rc_client_may_subscribe(c, id, r.topics[i], strlen(r.topics[i]), &perr) < 0) {
            rc_http_error(x, perr.status ? perr.status : 403, perr.code ? perr.code : "forbidden",
                          "%s", perr.msg);
            rc_auth_identity_free(id);
            sse_req_fini(&r);
            return;
        }
    }
    if (id)
        rc_client_set_identity(c, id);
    char head[512 + RC_CONFIG_ITEM_MAX + 256], corsh[RC_CONFIG_ITEM_MAX + 256];
    (void)rc_http_cors_headers(s->cfg, x->cors, corsh, sizeof(corsh));
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                      "X-Accel-Buffering: no\r\n%s\r\n"
                      "retry: %llu\n", /* the connection record completes this record */
                      corsh, (unsigned long long)s->cfg->sse_retry);
    if (rc_conn_queue_copy(c, head, (size_t)hn) < 0) {
        sse_req_fini(&r);
        return;
    }
    rc_http_switch(c, RC_PROTO_SSE, &sse_ops);
    s->ctr.sse_streams++;
    rc_webhook_conn(s->srv->webhook, c, RC_WEBHOOK_CONNECT, NULL, 0);
    /* an authenticated stream's connection record waits for the user's durable
     * subscriptions (the after_auth hook, session.h), so they apply from the first event
     * published after the client sees it */
    if (!c->authenticated || !rc_client_hold_greeting(c, greet_ready))
        send_connection_record(c);
    if (stream_has_id(&r)) {
        start_multi(c, &r);
        goto streaming;
    }
    bool resumable = r.ntopics == 1 && !rc_topic_is_pattern(r.topics[0], strlen(r.topics[0]));
    if (r.since && !resumable) {
        /* Last-Event-ID on a stream that cannot resume: say so, do not guess */
        static const char rec[] =
            "event: error\ndata: {\"code\":\"history_gap\",\"message\":\"Last-Event-ID can "
            "only resume a stream of one topic without wildcards; fetch the current state "
            "again\"}\n\n";
        if (rc_conn_queue_static(c, rec, sizeof(rec) - 1) < 0) {
            sse_req_fini(&r);
            return;
        }
    }
    for (size_t i = 0; i < r.ntopics; i++) {
        struct rc_err err = {0};
        struct rc_sub *sub =
            rc_broker_subscribe(c, r.topics[i], strlen(r.topics[i]), r.filter, &err);
        struct rc_sub_opts o = {.since = resumable ? r.since : NULL,
                                .include_initial = r.include_initial};
        if (sub && rc_broker_resume(c, sub, &o, &err) < 0) {
            /* a malformed Last-Event-ID: report it as a gap, keep streaming */
            rc_conn_send_error(c, NULL, "history_gap", err.msg, sub->id);
            continue;
        }
        if (!sub) {
            /* validated above; only memory can fail here */
            char rec[300];
            int n = snprintf(rec, sizeof(rec), "event: error\ndata: {\"code\":\"%s\"}\n\n",
                             err.code ? err.code : "unavailable");
            if (rc_conn_queue_copy(c, rec, (size_t)n) == 0)
                rc_conn_close_after_flush(c);
            break;
        }
    }
streaming:
    sse_req_fini(&r);
    c->last_ping_ms = s->now_ms;
    arm_ping(c);
}
