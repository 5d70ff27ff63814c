/* broker_gather.c - the gathers that ask every shard and merge the answers:
 * stats (JSON for GET /api/realtime/stats, Prometheus text for GET /metrics),
 * broadcast and user-targeted publish (see broker.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/msg.h"
#include "ringcast/presence.h"
#include "ringcast/shard.h"
#include "ringcast/topic.h"
#include "ringcast/webhook.h"

#include "broker_internal.h"

/* ---- the shard counters, for both renderings ------------------------------------------ */

#define CTR(field, help)                                                                           \
    {                                                                                              \
#field, help, offsetof(struct rc_counters, field)                                          \
    }
#define CTR_AS(field, name, help)                                                                  \
    {                                                                                              \
        name, help, offsetof(struct rc_counters, field)                                            \
    }
const struct brk_counter_field brk_counter_fields[] = {
    CTR(accepted, "Connections accepted."),
    CTR(closed, "Connections closed."),
    CTR(http_requests, "HTTP requests received."),
    CTR(http_errors, "HTTP requests answered with an error status."),
    CTR(ws_upgrades, "WebSocket upgrades completed."),
    CTR(sse_streams, "SSE streams opened."),
    CTR(published, "Events this shard gave ids to as their topic's owner."),
    CTR(deliveries, "Events queued to connections."),
    CTR(drops, "Deliveries refused because the connection was closing."),
    CTR(slow_consumer_disconnects, "Connections closed for exceeding their output cap."),
    CTR(heartbeat_timeouts, "Connections closed for missing heartbeats."),
    CTR(handshake_timeouts, "Connections closed before completing a handshake in time."),
    CTR(request_timeouts, "HTTP requests that did not arrive in time."),
    CTR_AS(refused_max_conns, "refused_max_connections", "Connections refused at max_connections."),
    CTR(refused_per_ip, "Connections refused at max_connections_per_ip."),
    CTR(refused_handshake_rate, "Handshakes refused by the per-IP handshake rate."),
    CTR(refused_origin, "Requests and handshakes refused: Origin not in allowed_origins."),
    CTR(auth_failures, "Authentication failures."),
    CTR(auth_timeouts, "Connections closed for not authenticating in time."),
    CTR(token_expiries, "Connections closed because their token expired."),
    CTR(forbidden, "Requests refused by the authorization rules."),
    CTR(rate_limited, "Client messages refused by the rate limit."),
    CTR(rate_limit_disconnects, "Connections closed for exceeding the rate limit."),
    CTR(recv_enobufs, "Receives that found the provided-buffer ring empty."),
    CTR(http_read_pauses, "HTTP connections that stopped being read while answers were owed."),
    CTR(sends, "Send operations completed."),
    CTR(send_iovecs, "Iovecs in completed send operations."),
    CTR(wakeups, "Inbox wake-ups of the shard loop."),
    CTR(loop_turns, "Turns of the shard loop (an idle shard sleeps until its next timer)."),
    CTR(durable_refused, "Durable subscriptions refused by the rules."),
    CTR(durable_load_timeouts, "Connections greeted before their durable subscriptions loaded."),
    CTR(user_subscription_refusals, "Subscription creates refused at max_user_subscriptions."),
    CTR(accept_fd_exhausted, "Accepts that failed for want of file descriptors or memory."),
    CTR(forwarded_loopback, "Trusted loopback requests carrying X-Forwarded-For."),
    CTR(topics_evicted, "Owned topics freed by the idle sweep."),
    CTR(rearms_deferred, "Accept, receive or wake-up re-arms retried a loop turn later."),
    CTR(proxy_refused, "Connections refused for lacking a valid PROXY header."),
    CTR(conn_limit_refused, "Connections closed past max_connections_per_user."),
    CTR(conn_limit_oldest,
        "Oldest connections closed for a new one (connection_limit_policy oldest)."),
    CTR(store_submitted, "Requests this shard queued to the store."),
    CTR(store_answered, "Store requests of this shard whose answers came back."),
};
#undef CTR
#undef CTR_AS
const size_t brk_ncounter_fields = RC_ARRAY_LEN(brk_counter_fields);

uint64_t brk_counter_value(const struct rc_counters *k, const struct brk_counter_field *f)
{
    uint64_t v;
    memcpy(&v, (const char *)k + f->offset, sizeof(v));
    return v;
}

/* ---- gathers (stats, metrics, broadcast) ------------------------------------------------ */

/* A request that needs every shard: the origin posts one job to each shard
 * (itself included); each fills in its part and posts the job back; the
 * origin merges the parts into the gather and answers once the last is in. */
enum job_kind { JOB_STATS, JOB_METRICS, JOB_BROADCAST };

struct gather {
    enum job_kind kind;
    struct rc_ticket ticket;
    unsigned pending;
    size_t limit;
    struct rc_stats_query q; /* stats */
    /* merged results */
    uint64_t reached;
    json_t *echo; /* broadcast: answer 202 with this object plus "connections" */
    json_t *acc;  /* stats: the answer being built */
    json_t *users;
    json_t *counts; /* stats with q.top: pattern -> subscriptions, summed over the shards */
    size_t listed;
    struct brk_metrics_part *mparts; /* metrics: one per shard, by shard id */
    char *extra;                     /* metrics: text of the layers above (NULL = none) */
};

struct job_post {
    struct rc_post post;
    bool done;
    struct rc_shard *origin;
    struct gather *g;
    enum job_kind kind;
    struct rc_evbuf *ev; /* broadcast */
    struct rc_stats_query q;
    /* results */
    uint64_t reached;
    json_t *part;
    struct brk_metrics_part *mpart;
};

static void job_run(struct rc_shard *s, struct rc_post *p);

/* A job whose origin is gone (shutdown): free the job; its gather is freed by
 * the origin only when it completes, so at shutdown it may leak one small
 * object by design. */
static void job_discard(struct rc_post *p)
{
    struct job_post *j = RC_CONTAINER_OF(p, struct job_post, post);
    if (j->ev)
        rc_evbuf_unref(j->ev);
    json_decref(j->part);
    free(j->mpart);
    free(j);
}

static void gather_start(struct rc_conn *c, struct gather *g, struct rc_evbuf *ev)
{
    struct rc_shard *s = c->shard;
    g->pending = s->srv->nshards;
    for (unsigned i = 0; i < s->srv->nshards; i++) {
        struct job_post *j = calloc(1, sizeof(*j));
        if (!j) {
            /* count it as answered with nothing */
            g->pending--;
            continue;
        }
        j->post.run = job_run;
        j->post.discard = job_discard;
        j->origin = s;
        j->g = g;
        j->kind = g->kind;
        j->q = g->q;
        if (ev) {
            rc_evbuf_ref(ev);
            j->ev = ev;
        }
        rc_shard_post(s->srv->shards[i], &j->post);
    }
}

/* Is c one of the connections q asks to list? */
static bool stats_lists(const struct rc_stats_query *q, const struct rc_conn *c)
{
    if (q->conn_id && c->id != q->conn_id)
        return false;
    return !q->user_id[0] || (c->authenticated && strcmp(c->user_id, q->user_id) == 0);
}

/* This shard's subscriptions per pattern (q.top): every connection's, exactly. */
static json_t *shard_pattern_counts(struct rc_shard *s)
{
    json_t *counts = json_object();
    for (struct rc_conn *c = s->all; c && counts; c = c->all_next) {
        if (c->state == RC_CONN_CLOSED || c->proto == RC_PROTO_HTTP)
            continue;
        for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn) {
            json_t *n = json_object_get(counts, sub->pattern);
            json_object_set_new(counts, sub->pattern,
                                json_integer(n ? json_integer_value(n) + 1 : 1));
        }
    }
    return counts;
}

static json_t *shard_stats_part(struct rc_shard *s, const struct rc_stats_query *q)
{
    size_t limit = q->limit;
    json_t *part = json_object();
    json_t *subs = json_object();
    json_t *detail = json_object(); /* the same connections, with user, transport, queue */
    json_t *users = json_array();
    uint64_t conns = 0, authed = 0, nsubs = 0;
    size_t listed = 0;
    for (struct rc_conn *c = s->all; c; c = c->all_next) {
        if (c->state == RC_CONN_CLOSED || c->proto == RC_PROTO_HTTP)
            continue;
        conns++;
        if (c->authenticated) {
            authed++;
            json_array_append_new(users, json_string(c->user_id));
        }
        nsubs += c->nsubs;
        if (listed < limit && stats_lists(q, c)) {
            char idbuf[RC_CONN_ID_HEX + 1];
            rc_conn_id_format(c->id, idbuf);
            json_t *arr = json_array();
            for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
                json_array_append_new(arr, json_string(sub->pattern));
            json_object_set(subs, idbuf, arr);
            json_object_set_new(
                detail, idbuf,
                json_pack("{s:o, s:s, s:I, s:I, s:o}", "user_id",
                          c->authenticated ? json_string(c->user_id) : json_null(), "transport",
                          c->proto == RC_PROTO_WS ? "websocket" : "sse", "shard", (json_int_t)s->id,
                          "queued_bytes", (json_int_t)c->out.bytes, "subscriptions", arr));
            listed++;
        }
    }
    const struct rc_counters *k = &s->ctr;
    json_t *ctr = json_object();
    for (size_t i = 0; i < brk_ncounter_fields; i++)
        json_object_set_new(ctr, brk_counter_fields[i].name,
                            json_integer((json_int_t)brk_counter_value(k, &brk_counter_fields[i])));
    json_object_set_new(ctr, "refused_connections",
                        json_integer((json_int_t)(k->refused_max_conns + k->refused_per_ip)));
    json_object_set_new(part, "connections", json_integer((json_int_t)conns));
    json_object_set_new(part, "authenticated", json_integer((json_int_t)authed));
    json_object_set_new(part, "subscription_count", json_integer((json_int_t)nsubs));
    json_object_set_new(part, "subscriptions", subs);
    json_object_set_new(part, "detail", detail);
    json_object_set_new(part, "users", users);
    json_object_set_new(part, "counters", ctr);
    json_object_set_new(part, "open_connections", json_integer((json_int_t)s->nconns));
    json_object_set_new(part, "topics", json_integer((json_int_t)rc_broker_owned_topics(s)));
    if (q->top)
        json_object_set_new(part, "pattern_counts", shard_pattern_counts(s));
    return part;
}

/* A copy of this shard's numbers for /metrics (NULL when out of memory). */
static struct brk_metrics_part *shard_metrics_part(struct rc_shard *s)
{
    struct brk_metrics_part *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->present = true;
    m->shard = s->id;
    m->ctr = s->ctr;
    m->hist = s->hist;
    for (struct rc_conn *c = s->all; c; c = c->all_next) {
        if (c->state == RC_CONN_CLOSED)
            continue;
        if (c->proto < RC_ARRAY_LEN(m->conns))
            m->conns[c->proto]++;
        if (c->authenticated && c->proto != RC_PROTO_HTTP)
            m->authenticated++;
        m->subscriptions += c->nsubs;
        m->out_bytes += c->out.bytes;
    }
    struct rc_broker *b = B(s);
    if (b) {
        m->topics = b->ntopics;
        for (size_t i = 0; i < b->topics_cap; i++) {
            const struct topic_state *t = b->topics[i];
            if (t) {
                m->history_events += rc_history_len(&t->hist);
                m->history_bytes += t->hist.bytes;
            }
        }
        m->sub_pool_used = b->sub_pool.in_use;
        m->sub_pool_cap = b->sub_pool.capacity;
    }
    m->conn_pool_used = s->conn_pool.in_use;
    m->conn_pool_cap = s->conn_pool.capacity;
    return m;
}

/* Any shard: run a gather's job and post it back to its origin. */
static void run_job(struct rc_shard *s, struct job_post *j)
{
    if (j->ev) {
        j->reached = brk_deliver_broadcast(s, j->ev);
        rc_evbuf_unref(j->ev);
        j->ev = NULL;
    } else if (j->kind == JOB_METRICS) {
        j->mpart = shard_metrics_part(s);
    } else {
        j->part = shard_stats_part(s, &j->q);
    }
    j->done = true;
    rc_shard_post(j->origin, &j->post);
}

static void add_counter(json_t *into, const char *key, json_t *v)
{
    json_t *cur = json_object_get(into, key);
    json_int_t base = cur ? json_integer_value(cur) : 0;
    json_object_set_new(into, key, json_integer(base + json_integer_value(v)));
}

static void stats_merge(struct gather *g, json_t *part)
{
    if (!g->acc) {
        g->acc = json_object();
        json_object_set_new(g->acc, "total_connections", json_integer(0));
        json_object_set_new(g->acc, "authenticated_connections", json_integer(0));
        json_object_set_new(g->acc, "subscriptions", json_object());
        json_object_set_new(g->acc, "connections", json_object());
        json_object_set_new(g->acc, "counters", json_object());
        json_object_set_new(g->acc, "shards", json_array());
        g->users = json_object();
    }
    add_counter(g->acc, "total_connections", json_object_get(part, "connections"));
    add_counter(g->acc, "authenticated_connections", json_object_get(part, "authenticated"));
    add_counter(g->acc, "total_subscriptions", json_object_get(part, "subscription_count"));
    add_counter(g->acc, "topics", json_object_get(part, "topics"));
    json_t *subs = json_object_get(g->acc, "subscriptions");
    json_t *detail = json_object_get(g->acc, "connections");
    json_t *part_detail = json_object_get(part, "detail");
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(part, "subscriptions"), key, v)
    {
        if (g->listed < g->limit) {
            json_object_set(subs, key, v);
            json_object_set(detail, key, json_object_get(part_detail, key));
            g->listed++;
        }
    }
    size_t i;
    json_array_foreach(json_object_get(part, "users"), i, v)
        json_object_set_new(g->users, json_string_value(v), json_true());
    json_t *ctr = json_object_get(g->acc, "counters");
    json_object_foreach(json_object_get(part, "counters"), key, v) add_counter(ctr, key, v);
    if (g->q.top) {
        if (!g->counts)
            g->counts = json_object();
        json_object_foreach(json_object_get(part, "pattern_counts"), key, v)
            add_counter(g->counts, key, v);
    }
    json_array_append_new(json_object_get(g->acc, "shards"),
                          json_pack("{s:O, s:O, s:O}", "connections",
                                    json_object_get(part, "open_connections"), "topics",
                                    json_object_get(part, "topics"), "counters",
                                    json_object_get(part, "counters")));
}

static void answer_json(struct rc_conn *c, const struct rc_ticket *t, int status, const char *txt,
                        size_t len)
{
    rc_conn_answer(c, t, &(struct rc_answer){.status = status, .json = txt, .len = len});
}

static void answer_no_memory(struct rc_conn *c, const struct rc_ticket *t)
{
    rc_conn_answer(
        c, t, &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
}

/* The metrics answer: Prometheus text (broker_metrics.c). */
static void metrics_finish(struct rc_shard *s, struct rc_conn *c, struct gather *g)
{
    size_t len = 0;
    char *txt = brk_metrics_render(s, g->mparts, s->srv->nshards, g->extra, &len);
    if (txt)
        rc_conn_answer(
            c, &g->ticket,
            &(struct rc_answer){
                .status = 200, .json = txt, .len = len, .content_type = BRK_METRICS_CONTENT_TYPE});
    else
        answer_no_memory(c, &g->ticket);
    free(txt);
}

struct pattern_count {
    const char *pattern;
    json_int_t n;
};

static int by_count_desc(const void *a, const void *b)
{
    const struct pattern_count *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->pattern, y->pattern);
}

/* The q.top most-subscribed patterns of counts, most first (ties by pattern). */
static json_t *top_patterns(const json_t *counts, size_t top)
{
    size_t n = counts ? json_object_size(counts) : 0, i = 0;
    struct pattern_count *all = n ? calloc(n, sizeof(*all)) : NULL;
    json_t *arr = json_array();
    const char *key;
    json_t *v;
    if (!all)
        return arr; /* nothing subscribed (or out of memory: an empty list) */
    json_object_foreach((json_t *)counts, key, v) all[i++] =
        (struct pattern_count){key, json_integer_value(v)};
    qsort(all, n, sizeof(*all), by_count_desc);
    for (i = 0; i < n && i < top; i++)
        json_array_append_new(
            arr, json_pack("{s:s, s:I}", "pattern", all[i].pattern, "subscriptions", all[i].n));
    free(all);
    return arr;
}

static void gather_finish(struct rc_shard *s, struct gather *g)
{
    struct rc_conn *c = rc_shard_conn(s, g->ticket.conn_id);
    if (c && g->kind == JOB_METRICS) {
        metrics_finish(s, c, g);
    } else if (c && g->kind == JOB_BROADCAST && g->echo) {
        json_object_set_new(g->echo, "connections", json_integer((json_int_t)g->reached));
        char *txt = json_dumps(g->echo, JSON_COMPACT);
        if (txt)
            answer_json(c, &g->ticket, 202, txt, strlen(txt));
        free(txt);
    } else if (c && g->kind == JOB_BROADCAST) {
        char txt[32];
        int n = snprintf(txt, sizeof(txt), "%llu", (unsigned long long)g->reached);
        answer_json(c, &g->ticket, 200, txt, (size_t)n);
    } else if (c) {
        json_t *acc = g->acc ? g->acc : json_object();
        json_object_set_new(acc, "unique_users",
                            json_integer((json_int_t)(g->users ? json_object_size(g->users) : 0)));
        json_object_set_new(acc, "pubsub_backend", json_string(B(s)->engine->name));
        if (s->srv->cluster) { /* broker = redis: which node answered, its bridge */
            json_object_set_new(acc, "node_name", json_string(rc_broker_node_name(s->srv)));
            rc_broker_cluster_stats(s->srv, acc);
        }
        json_object_set_new(acc, "shard_count", json_integer((json_int_t)s->srv->nshards));
        if (s->srv->webhook)
            json_object_set_new(acc, "webhook", rc_webhook_stats(s->srv->webhook));
        json_object_set_new(
            acc, "uptime_seconds",
            json_integer((json_int_t)((rc_now_ms() - s->srv->start_mono_ms) / 1000u)));
        json_object_set_new(acc, "subscriptions_limit", json_integer((json_int_t)g->limit));
        if (g->q.top)
            json_object_set_new(acc, "top_subscriptions", top_patterns(g->counts, g->q.top));
        char *txt = json_dumps(acc, JSON_COMPACT);
        if (txt)
            answer_json(c, &g->ticket, 200, txt, strlen(txt));
        else
            answer_no_memory(c, &g->ticket);
        free(txt);
        if (!g->acc)
            json_decref(acc);
    }
    json_decref(g->acc);
    json_decref(g->users);
    json_decref(g->counts);
    json_decref(g->echo);
    free(g->mparts);
    free(g->extra);
    free(g);
}

/* Origin shard: merge a finished job, answering once the last is in. */
static void job_done(struct rc_shard *s, struct job_post *j)
{
    struct gather *g = j->g;
    if (g->kind == JOB_BROADCAST)
        g->reached += j->reached;
    else if (g->kind == JOB_METRICS && j->mpart && j->mpart->shard < s->srv->nshards)
        g->mparts[j->mpart->shard] = *j->mpart;
    else if (j->part)
        stats_merge(g, j->part);
    json_decref(j->part);
    free(j->mpart);
    free(j);
    if (--g->pending == 0)
        gather_finish(s, g);
}

static void job_run(struct rc_shard *s, struct rc_post *p)
{
    struct job_post *j = RC_CONTAINER_OF(p, struct job_post, post);
    if (j->done)
        job_done(s, j);
    else
        run_job(s, j);
}

void brk_mem_broadcast(struct rc_conn *c, const struct rc_ticket *t, struct rc_evbuf *ev)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        rc_evbuf_unref(ev);
        answer_no_memory(c, t);
        return;
    }
    g->kind = JOB_BROADCAST;
    g->ticket = *t;
    rc_broker_cluster_forward(c->shard->srv, ev); /* broker = redis: the other nodes */
    gather_start(c, g, ev);
    rc_evbuf_unref(ev);
    if (g->pending == 0)
        gather_finish(c->shard, g);
}

void brk_mem_publish_users(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub)
{
    static _Thread_local uint64_t counter;
    struct rc_shard *s = c->shard;
    struct rc_evbuf *ev = rc_evbuf_new(1);
    struct gather *g = calloc(1, sizeof(*g));
    if (ev) {
        ev->kind = RC_EVENT_BROADCAST;
        snprintf(ev->id, sizeof(ev->id), "%s-u%u-%llu", s->srv->epoch_str, s->id,
                 (unsigned long long)++counter);
    }
    if (!ev || !g ||
        rc_evbuf_encode(ev, pub->type ? pub->type : "message", pub->data, NULL, NULL) < 0 ||
        rc_evbuf_set_users(ev, pub->users, pub->nusers, pub->exclude_user) < 0) {
        if (ev)
            rc_evbuf_unref(ev);
        free(g);
        json_decref(pub->data);
        pub->data = NULL;
        answer_no_memory(c, t);
        return;
    }
    json_decref(pub->data); /* encoded; user events are not filtered */
    pub->data = NULL;
    g->kind = JOB_BROADCAST;
    g->ticket = *t;
    g->echo = json_pack("{s:s}", "id", ev->id);
    json_t *arr = json_array();
    for (size_t i = 0; i < pub->nusers; i++)
        json_array_append_new(arr, json_string(pub->users[i]));
    json_object_set_new(g->echo, "user_ids", arr);
    rc_broker_cluster_forward(s->srv, ev); /* broker = redis: the other nodes */
    gather_start(c, g, ev);
    rc_evbuf_unref(ev);
    if (g->pending == 0)
        gather_finish(s, g);
}

void brk_mem_stats(struct rc_conn *c, const struct rc_ticket *t, const struct rc_stats_query *q)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        answer_no_memory(c, t);
        return;
    }
    g->kind = JOB_STATS;
    g->ticket = *t;
    g->limit = q->limit;
    g->q = *q;
    gather_start(c, g, NULL);
    if (g->pending == 0)
        gather_finish(c->shard, g);
}

void brk_mem_metrics(struct rc_conn *c, const struct rc_ticket *t, const char *extra)
{
    struct gather *g = calloc(1, sizeof(*g));
    struct brk_metrics_part *parts = calloc(c->shard->srv->nshards, sizeof(*parts));
    char *copy = extra ? strdup(extra) : NULL;
    if (!g || !parts || (extra && !copy)) {
        free(g);
        free(parts);
        free(copy);
        answer_no_memory(c, t);
        return;
    }
    g->kind = JOB_METRICS;
    g->ticket = *t;
    g->mparts = parts;
    g->extra = copy;
    gather_start(c, g, NULL);
    if (g->pending == 0)
        gather_finish(c->shard, g);
}
