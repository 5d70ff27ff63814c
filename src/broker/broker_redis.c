/* broker_redis.c - the cluster engine (broker = redis, see broker.h): the
 * shards' side of the Redis bridge (redis_bridge.h).
 *
 * Threads: the bridge thread runs bridge_event and bridge_done; everything
 *   else runs on a shard thread (the engine ops) or the main thread (open,
 *   start, halt, close). They meet only through the bridge's MPSC queue
 *   (shard -> bridge: struct rc_redis_req) and the shards' inboxes (bridge ->
 *   shard: an evbuf's posts for an event, a struct rpost for an answer).
 * Owner: struct rc_broker_cluster is created and freed by the main thread and
 *   immutable in between (but the bridge, which owns its own state).
 *   A struct rpost belongs to its origin shard, then (with its request) to
 *   the bridge, then to the origin again, which frees both; its discard
 *   frees them when a shard stops with it unread.
 * Hot path: one evbuf per event per node (the event's JSON parsed once),
 *   the shards' delivery is the memory engine's; nothing per delivery. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ringcast/broker.h"
#include "ringcast/log.h"
#include "ringcast/presence.h"
#include "ringcast/redis_bridge.h"
#include "ringcast/server.h"
#include "ringcast/shard.h"
#include "ringcast/timer.h"
#include "ringcast/topic.h"

#include "broker_internal.h"

struct rc_broker_cluster {
    struct rc_server *srv;
    struct rc_redis_bridge *bridge;
    bool halted;      /* main thread: the bridge thread is gone, answers are dropped */
    char node_id[17]; /* random, per process: a node skips its own forwarded events */
    char node_name[RC_CONFIG_CLAIM_MAX];
};

const char *rc_broker_node_name(const struct rc_server *srv)
{
    return srv->cluster ? srv->cluster->node_name : "";
}

bool rc_broker_degraded(const struct rc_shard *s, char *why, size_t cap)
{
    struct rc_broker_cluster *k = s->srv->cluster;
    return k && !rc_redis_bridge_up(k->bridge, why, cap);
}

/* ---- events from Redis (bridge thread) ------------------------------------------------------ */

/* The targeting of an event ({"u":[users],"x":"excluded"}) onto ev. */
static int set_targeting(struct rc_evbuf *ev, const char *txt, size_t n)
{
    if (!n)
        return 0;
    json_t *j = json_loadb(txt, n, 0, NULL);
    if (!j)
        return -EINVAL;
    json_t *u = json_object_get(j, "u");
    const char *x = json_string_value(json_object_get(j, "x"));
    char **users = NULL;
    size_t nu = 0;
    int rc = 0;
    if (json_is_array(u)) {
        users = calloc(json_array_size(u) + 1, sizeof(*users));
        if (!users)
            rc = -ENOMEM;
        for (size_t i = 0; users && i < json_array_size(u); i++)
            if (json_is_string(json_array_get(u, i)))
                users[nu++] = (char *)json_string_value(json_array_get(u, i));
    }
    if (rc == 0)
        rc = rc_evbuf_set_users(ev, users, nu, x);
    free(users);
    json_decref(j);
    return rc;
}

/* One event of topic as an evbuf with nposts posts (the live path: one per
 * shard; a replay: none). NULL when malformed or out of memory. */
static struct rc_evbuf *event_evbuf(const char *topic, size_t len, const char *epoch, uint64_t seq,
                                    struct rc_slice type, struct rc_slice data,
                                    struct rc_slice targeting, uint32_t nposts)
{
    json_t *d = json_loadb(data.p, data.n, JSON_DECODE_ANY, NULL);
    char *t = strndup(type.p ? type.p : "message", type.p ? type.n : 7);
    struct rc_evbuf *ev = d && t ? rc_evbuf_new(nposts) : NULL;
    if (!ev) {
        json_decref(d);
        free(t);
        return NULL;
    }
    ev->kind = RC_EVENT_TOPIC;
    ev->seq = seq;
    ev->topic = strndup(topic, len);
    ev->topic_len = len;
    if (!ev->topic || rc_event_id_format(ev->id, epoch, seq) < 0 ||
        rc_evbuf_encode(ev, t, d, NULL, NULL) < 0 ||
        set_targeting(ev, targeting.p, targeting.n) < 0) {
        free(t);
        json_decref(d);
        rc_evbuf_free_(ev);
        return NULL;
    }
    free(t);
    ev->data = d;
    return ev;
}

static void bridge_event(void *arg, const char *topic, size_t len, const struct rc_redis_event *e)
{
    struct rc_broker_cluster *k = arg;
    struct rc_server *srv = k->srv;
    struct rc_evbuf *ev =
        event_evbuf(topic, len, e->epoch, e->seq, e->type, e->data, e->targeting, srv->nshards);
    if (!ev) {
        rc_log(RC_LOG_WARN, "redis_event_dropped", "topic=\"%.*s\" seq=%llu reason=malformed",
               (int)(len > 64 ? 64 : len), topic, (unsigned long long)e->seq);
        return;
    }
    /* one reference per shard post; the creator's is handed over */
    rc_evbuf_ref_n(ev, srv->nshards - 1);
    for (unsigned i = 0; i < srv->nshards; i++) {
        ev->posts[i].post.run = brk_event_run;
        rc_shard_post(srv->shards[i], &ev->posts[i].post);
    }
}

/* ---- events for connections: user-targeted, broadcasts, notifications ---------------------- */

/* Wire form on RC_REDIS_NODE_CHANNEL: "<node id>\n<meta JSON>\n" then the
 * WebSocket image and the SSE image; meta {"id","w":ws_len,"s":sse_len,
 * "u":[users] (absent = all),"x":excluded user}. */
void rc_broker_cluster_forward(const struct rc_server *srv, const struct rc_evbuf *ev)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k || ev->recipients || ev->exclude)
        return; /* connection ids name connections of this node only */
    json_t *meta = json_pack("{s:s, s:I, s:I}", "id", ev->id, "w", (json_int_t)ev->ws_len, "s",
                             (json_int_t)ev->sse_len);
    if (meta && ev->users) {
        json_t *u = json_array();
        for (size_t i = 0; u && i < ev->nusers; i++)
            json_array_append_new(u, json_string(ev->users[i]));
        json_object_set_new(meta, "u", u);
    }
    if (meta && ev->exclude_user)
        json_object_set_new(meta, "x", json_string(ev->exclude_user));
    char *txt = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    struct rc_redis_req *req = txt ? rc_redis_req_new(RC_REDIS_NODE_PUBLISH, "", 0) : NULL;
    size_t tl = txt ? strlen(txt) : 0, n = 17 + tl + 1 + ev->ws_len + ev->sse_len;
    char *msg = req ? malloc(n) : NULL;
    if (!msg) {
        rc_log(RC_LOG_WARN, "cluster_forward_failed", "id=%s reason=oom", ev->id);
        free(txt);
        rc_redis_req_free(req);
        return;
    }
    memcpy(msg, k->node_id, 16);
    msg[16] = '\n';
    memcpy(msg + 17, txt, tl);
    msg[17 + tl] = '\n';
    memcpy(msg + 18 + tl, ev->ws, ev->ws_len);
    memcpy(msg + 18 + tl + ev->ws_len, ev->sse, ev->sse_len);
    free(txt);
    req->data = msg;
    req->data_len = n;
    rc_redis_bridge_submit(k->bridge, req);
}

static void forwarded_run(struct rc_shard *s, struct rc_post *p)
{
    struct rc_evbuf_post *ep = RC_CONTAINER_OF(p, struct rc_evbuf_post, post);
    (void)brk_deliver_broadcast(s, ep->ev);
    rc_evbuf_unref(ep->ev);
}

/* Another node's event for connections: deliver it on every shard. */
static void bridge_node(void *arg, const char *msg, size_t n)
{
    struct rc_broker_cluster *k = arg;
    struct rc_server *srv = k->srv;
    if (n < 17 || memcmp(msg, k->node_id, 16) == 0)
        return; /* malformed, or this node's own (delivered when it was sent) */
    const char *nl = memchr(msg + 17, '\n', n - 17);
    json_t *meta = nl ? json_loadb(msg + 17, (size_t)(nl - msg - 17), 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(meta, "id"));
    json_int_t wl = json_integer_value(json_object_get(meta, "w"));
    json_int_t sl = json_integer_value(json_object_get(meta, "s"));
    const char *body = nl ? nl + 1 : NULL;
    struct rc_evbuf *ev = NULL;
    if (!id || wl < 0 || sl < 0 || !body || (size_t)(msg + n - body) != (size_t)(wl + sl) ||
        !(ev = rc_evbuf_new(srv->nshards)))
        goto bad;
    ev->kind = RC_EVENT_BROADCAST;
    snprintf(ev->id, sizeof(ev->id), "%s", id);
    ev->ws = malloc((size_t)wl ? (size_t)wl : 1);
    ev->sse = malloc((size_t)sl ? (size_t)sl : 1);
    if (!ev->ws || !ev->sse)
        goto bad;
    memcpy(ev->ws, body, (size_t)wl);
    ev->ws_len = (size_t)wl;
    memcpy(ev->sse, body + wl, (size_t)sl);
    ev->sse_len = (size_t)sl;
    json_t *u = json_object_get(meta, "u");
    char **users = json_is_array(u) ? calloc(json_array_size(u) + 1, sizeof(*users)) : NULL;
    size_t nu = 0;
    for (size_t i = 0; users && i < json_array_size(u); i++)
        if (json_is_string(json_array_get(u, i)))
            users[nu++] = (char *)json_string_value(json_array_get(u, i));
    int rc = (json_is_array(u) && !users)
                 ? -ENOMEM
                 : rc_evbuf_set_users(ev, users, nu, json_string_value(json_object_get(meta, "x")));
    free(users);
    if (rc < 0)
        goto bad;
    json_decref(meta);
    rc_evbuf_ref_n(ev, srv->nshards - 1);
    for (unsigned i = 0; i < srv->nshards; i++) {
        ev->posts[i].post.run = forwarded_run;
        rc_shard_post(srv->shards[i], &ev->posts[i].post);
    }
    return;
bad:
    rc_log(RC_LOG_WARN, "cluster_event_dropped", "reason=malformed bytes=%zu", n);
    if (ev)
        rc_evbuf_free_(ev);
    json_decref(meta);
}

/* ---- answers (bridge -> origin shard) ------------------------------------------------------- */

enum rpost_kind { RP_PUBLISH, RP_RESUME, RP_HISTORY, RP_PRESENCE };

struct rpost {
    struct rc_post post;
    enum rpost_kind kind;
    struct rc_shard *origin;
    struct rc_redis_req *req;
    struct rc_ticket ticket; /* publish, history: who waits */
    uint64_t conn_id;        /* resume: whose subscription */
    char sub_id[RC_SUB_ID_LEN + 1];
    struct brk_resume_plan plan; /* resume */
    json_t *echo;                /* publish: answer 201 with this */
    size_t limit;                /* history, presence */
    size_t offset;               /* presence */
    bool have_since;             /* history */
    uint64_t ttl_ms;             /* history kept this long (0 = no age limit) */
};

static void rpost_free(struct rpost *p)
{
    rc_redis_req_free(p->req);
    json_decref(p->echo);
    free(p);
}

static void rpost_discard(struct rc_post *post)
{
    rpost_free(RC_CONTAINER_OF(post, struct rpost, post));
}

static void rpost_run(struct rc_shard *s, struct rc_post *post);

static void bridge_done(void *arg, struct rc_redis_req *req)
{
    struct rc_broker_cluster *k = arg;
    struct rpost *p = req->user;
    p->req = req;
    if (k->halted) { /* the shards may be gone: nobody waits */
        rpost_free(p);
        return;
    }
    rc_shard_post(p->origin, &p->post);
}

static struct rpost *rpost_new(struct rc_conn *c, enum rpost_kind kind, struct rc_redis_req *req)
{
    struct rpost *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->post.run = rpost_run;
    p->post.discard = rpost_discard;
    p->kind = kind;
    p->origin = c->shard;
    p->conn_id = c->id;
    req->user = p;
    return p;
}

static void submit(struct rc_shard *s, struct rc_redis_req *req)
{
    rc_redis_bridge_submit(s->srv->cluster->bridge, req);
}

/* ---- publish -------------------------------------------------------------------------------- */

static char *targeting_json(const struct rc_publish *pub)
{
    if (!pub->users && !pub->exclude_user)
        return strdup("");
    json_t *j = json_object();
    json_t *u = pub->users ? json_array() : NULL;
    for (size_t i = 0; u && i < pub->nusers; i++)
        json_array_append_new(u, json_string(pub->users[i]));
    if (u)
        json_object_set_new(j, "u", u);
    if (pub->exclude_user)
        json_object_set_new(j, "x", json_string(pub->exclude_user));
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return txt;
}

static void redis_publish(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub)
{
    struct rc_shard *s = c->shard;
    const struct rc_config *cfg = s->cfg;
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_PUBLISH, pub->topic, pub->topic_len);
    struct rpost *p = req ? rpost_new(c, RP_PUBLISH, req) : NULL;
    if (p) {
        req->type = strdup(pub->type ? pub->type : "message");
        req->data = json_dumps(pub->data ? pub->data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        req->targeting = targeting_json(pub);
        req->key = pub->client_key ? strdup(pub->client_key) : NULL;
    }
    json_decref(pub->data);
    pub->data = NULL;
    if (!p || !req->type || !req->data || !req->targeting || (pub->client_key && !req->key)) {
        if (p)
            rpost_free(p);
        else
            rc_redis_req_free(req);
        json_decref(pub->echo);
        pub->echo = NULL;
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    struct rc_history_cfg hc = brk_history_cfg(s, req->topic);
    req->maxlen = hc.size ? hc.size : hc.retain ? 1 : 0;
    /* a topic's keys outlive its history and its idle time; 0 = never expire */
    req->key_ttl_ms = cfg->topic_idle_timeout ? cfg->topic_idle_timeout + hc.ttl_ms : 0;
    p->ticket = *t;
    p->echo = pub->echo;
    pub->echo = NULL;
    submit(s, req);
}

static void publish_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (req->status >= 400) {
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){.status = 503,
                                           .code = req->code ? req->code : "broker_unavailable",
                                           .msg = req->why});
        return;
    }
    char id[RC_EVENT_ID_MAX];
    if (rc_event_id_format(id, req->epoch, req->seq) < 0)
        snprintf(id, sizeof(id), "0-%llu", (unsigned long long)req->seq);
    int status = req->status; /* 202, or 200 for a repeated key */
    json_t *body;
    if (p->echo) {
        json_object_set_new(p->echo, "id", json_string(id));
        body = json_incref(p->echo);
        status = 201;
    } else {
        body = json_pack("{s:s, s:s}", "id", id, "topic", req->topic);
    }
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (txt)
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){
                           .status = status, .type = "published", .json = txt, .len = strlen(txt)});
    else
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    free(txt);
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static void channel_req(struct rc_shard *s, struct rc_sub *sub, bool on)
{
    bool pattern = rc_topic_is_pattern(sub->pattern, sub->pattern_len);
    enum rc_redis_op op = pattern ? (on ? RC_REDIS_PSUBSCRIBE : RC_REDIS_PUNSUBSCRIBE)
                                  : (on ? RC_REDIS_SUBSCRIBE : RC_REDIS_UNSUBSCRIBE);
    struct rc_redis_req *req = rc_redis_req_new(op, sub->pattern, sub->pattern_len);
    if (!req) {
        /* a lost SUBSCRIBE leaves sub without events; a lost UNSUBSCRIBE
         * keeps a channel the node no longer needs: both are logged */
        rc_log(RC_LOG_ERROR, "redis_subscription_lost", "topic=\"%.64s\" op=%s reason=oom",
               sub->pattern, on ? "subscribe" : "unsubscribe");
        return;
    }
    submit(s, req);
}

static void redis_subscribed(struct rc_conn *c, struct rc_sub *sub)
{
    brk_mem_subscribed(c, sub); /* node-local: presence, claims */
    channel_req(c->shard, sub, true);
}

static void redis_unsubscribed(struct rc_conn *c, struct rc_sub *sub)
{
    brk_mem_unsubscribed(c, sub);
    channel_req(c->shard, sub, false);
}

/* ---- history reads: resume, include_initial, GET /history ----------------------------------- */

/* The entries of a read as resume items (evbufs without posts), oldest first,
 * skipping those older than ttl_ms. *n gets the count. NULL when there are
 * none or memory ran out (*n = 0 then). */
static struct rc_resume_item *read_items(const struct rc_redis_req *req, uint64_t ttl_ms, size_t *n)
{
    *n = 0;
    if (!req->nentries)
        return NULL;
    struct rc_resume_item *items = calloc(req->nentries, sizeof(*items));
    if (!items)
        return NULL;
    uint64_t now = rc_wall_ms();
    for (size_t i = 0; i < req->nentries; i++) {
        const struct rc_redis_entry *e = &req->entries[i];
        if (ttl_ms && e->at_ms && e->at_ms + ttl_ms < now)
            continue;
        struct rc_slice type = {e->type, strlen(e->type)}, data = {e->data, strlen(e->data)},
                        tg = {e->targeting, strlen(e->targeting)};
        struct rc_evbuf *ev =
            event_evbuf(req->topic, req->topic_len, req->epoch, e->seq, type, data, tg, 0);
        if (!ev)
            continue;
        items[*n].seq = e->seq;
        items[*n].ev = ev;
        (*n)++;
    }
    return items;
}

/* How a read answers a cursor (after, of epoch cursor_epoch; "" = no cursor). */
static enum rc_history_result read_result(const struct rc_redis_req *req, const char *cursor,
                                          uint64_t after, const struct rc_resume_item *items,
                                          size_t n)
{
    if (cursor[0]) {
        uint64_t a;
        if (!req->epoch[0])
            return after == 0 ? RC_HISTORY_OK : RC_HISTORY_GAP; /* no state: nothing to miss */
        if (rc_event_cursor(cursor, strlen(cursor), req->epoch, &a, NULL) != 0)
            return RC_HISTORY_GAP; /* the topic's history was lost since */
    }
    if (after != UINT64_MAX && after > req->seq)
        return RC_HISTORY_FUTURE;
    if (after == UINT64_MAX || after == req->seq)
        return RC_HISTORY_OK;
    if (!n || items[0].seq > after + 1)
        return RC_HISTORY_GAP; /* trimmed (MAXLEN, TTL) */
    return RC_HISTORY_OK;
}

static int redis_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                        struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct brk_resume_plan
        plan; /* include_initial on a pattern: refused by rc_broker_resume_check */
    if (brk_resume_setup(c, sub, o, 1, &plan, err) < 0)
        return -EINVAL;
    if (!plan.active)
        return 0;
    struct rc_history_cfg hc = brk_history_cfg(s, sub->pattern);
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_READ, sub->pattern, sub->pattern_len);
    struct rpost *p = req ? rpost_new(c, RP_RESUME, req) : NULL;
    if (!p) {
        rc_redis_req_free(req);
        brk_resume_failed(sub);
        return 0;
    }
    memcpy(p->sub_id, sub->id, sizeof(p->sub_id));
    p->plan = plan;
    p->ttl_ms = hc.ttl_ms;
    if (plan.mode == RC_RESUME_INITIAL) {
        req->after = UINT64_MAX;
        req->count = 1;
    } else {
        req->after = plan.after;
        req->count = plan.from_now ? 0 : RC_HISTORY_SIZE_MAX;
        req->wait_subscribed = true; /* later events arrive live */
    }
    submit(s, req);
    return 0;
}

static void resume_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_sub *sub = brk_find_sub(c, p->sub_id);
    if (!sub || !sub->resume)
        return;
    struct rc_redis_req *req = p->req;
    if (req->status >= 400) {
        rc_log(RC_LOG_WARN, "redis_read_failed", "topic=\"%.64s\" reason=\"%s\"", req->topic,
               req->why);
        brk_resume_failed(sub);
        return;
    }
    size_t n = 0;
    struct rc_resume_item *items = read_items(req, p->ttl_ms, &n);
    if (p->plan.mode == RC_RESUME_INITIAL) {
        rc_resume_initial(sub->resume, items, n);
    } else if (p->plan.from_now) {
        brk_resume_from_now(c, sub, req->seq, req->epoch[0] ? req->epoch : RC_EPOCH_NONE);
    } else {
        enum rc_history_result res = read_result(req, p->plan.cursor, p->plan.after, items, n);
        rc_resume_answer(sub->resume, res, items, n, req->seq);
        if (sub->resume_done && req->epoch[0]) {
            /* this node may not have delivered up to req->seq yet: keep
             * dropping what the replay already sent (history.h, linger) */
            sub->resume_done = false;
            sub->resume->linger = true;
            memcpy(sub->resume->linger_epoch, req->epoch, sizeof(req->epoch));
        }
    }
    rc_resume_items_release(items, n);
    free(items);
    if (sub->resume_done)
        brk_resume_finish(sub);
}

static void redis_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                          const char *since, size_t limit)
{
    struct rc_shard *s = c->shard;
    struct rc_err err = {0};
    uint64_t after = UINT64_MAX; /* the last `limit` */
    if (since) {
        char epoch[RC_EPOCH_MAX];
        if (rc_event_id_parse(since, strlen(since), epoch, sizeof(epoch), &after, &err) < 0) {
            rc_conn_answer(
                c, t, &(struct rc_answer){.status = 400, .code = "bad_event_id", .msg = err.msg});
            return;
        }
    }
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_READ, topic, n);
    struct rpost *p = req ? rpost_new(c, RP_HISTORY, req) : NULL;
    if (!p) {
        rc_redis_req_free(req);
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    p->ticket = *t;
    p->limit = limit;
    p->have_since = since != NULL;
    if (since)
        snprintf(p->plan.cursor, sizeof(p->plan.cursor), "%s", since);
    p->plan.after = after;
    p->ttl_ms = brk_history_cfg(s, req->topic).ttl_ms;
    req->after = after;
    req->count = limit > RC_HISTORY_SIZE_MAX ? RC_HISTORY_SIZE_MAX : (uint32_t)limit;
    submit(s, req);
}

static void history_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (req->status >= 400) {
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){.status = 503,
                                           .code = req->code ? req->code : "broker_unavailable",
                                           .msg = req->why});
        return;
    }
    size_t n = 0;
    struct rc_resume_item *items = read_items(req, p->ttl_ms, &n);
    enum rc_history_result res = read_result(req, p->plan.cursor, p->plan.after, items, n);
    json_t *events = json_array();
    for (size_t i = 0; events && res == RC_HISTORY_OK && i < n && i < p->limit; i++) {
        struct rc_evbuf *ev = items[i].ev;
        json_array_append_new(events, json_pack("{s:s, s:s, s:O}", "id", ev->id, "type",
                                                ev->type ? ev->type : "message", "data", ev->data));
    }
    rc_resume_items_release(items, n);
    free(items);
    char *txt = events ? brk_history_page(req->topic, req->topic_len, events,
                                          req->epoch[0] ? req->epoch : RC_EPOCH_NONE, req->seq, res)
                       : NULL;
    if (txt)
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){.status = 200, .json = txt, .len = strlen(txt)});
    else
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    free(txt);
}

/* ---- presence -------------------------------------------------------------------------------- */

/* A user's key in the cluster's presence: "u:<id>", or "a:<connection>@<node>"
 * for an anonymous connection (connection ids are per node). */
void brk_redis_presence(struct rc_shard *s, struct rc_slice topic, struct rc_slice user,
                        uint64_t conn)
{
    struct rc_broker_cluster *k = s->srv->cluster;
    uint32_t n = rc_presence_user_connections(s->broker->presence, topic, user, conn);
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_PRESENCE, topic.p, topic.n);
    json_t *data = json_object();
    char idbuf[RC_CONN_ID_HEX + 1], key[RC_PRESENCE_USER_MAX + 40];
    json_object_set_new(data, "topic", json_stringn(topic.p, topic.n));
    if (user.n) {
        json_object_set_new(data, "user_id", json_stringn(user.p, user.n));
        snprintf(key, sizeof(key), "u:%.*s", (int)user.n, user.p);
    } else {
        rc_conn_id_format(conn, idbuf);
        json_object_set_new(data, "user_id", json_null());
        json_object_set_new(data, "connection_id", json_string(idbuf));
        snprintf(key, sizeof(key), "a:%s@%s", idbuf, k->node_id);
    }
    if (req) {
        req->data = json_dumps(data, JSON_COMPACT);
        req->key = strdup(key);
    }
    json_decref(data);
    if (!req || !req->data || !req->key) {
        rc_log(RC_LOG_WARN, "presence_lost", "topic=\"%.*s\" reason=oom", (int)topic.n, topic.p);
        rc_redis_req_free(req);
        return;
    }
    struct rc_history_cfg hc = brk_history_cfg(s, req->topic);
    req->maxlen = hc.size ? hc.size : hc.retain ? 1 : 0;
    req->key_ttl_ms = s->cfg->topic_idle_timeout ? s->cfg->topic_idle_timeout + hc.ttl_ms : 0;
    req->after = n;
    submit(s, req);
}

static void redis_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                                size_t n, size_t offset, size_t limit)
{
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_PRESENCE_LIST, topic, n);
    struct rpost *p = req ? rpost_new(c, RP_PRESENCE, req) : NULL;
    if (!p) {
        rc_redis_req_free(req);
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    p->ticket = *t;
    p->offset = offset;
    p->limit = limit;
    submit(c->shard, req);
}

static void presence_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (req->status >= 400) {
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){.status = 503,
                                           .code = req->code ? req->code : "broker_unavailable",
                                           .msg = req->why});
        return;
    }
    json_t *users = json_array();
    json_int_t conns = 0;
    for (size_t i = 0; i < req->nentries; i++) {
        const struct rc_redis_entry *e = &req->entries[i];
        conns += (json_int_t)e->seq;
        if (i < p->offset || i - p->offset >= p->limit)
            continue;
        json_t *o = json_object();
        if (strncmp(e->type, "u:", 2) == 0) {
            json_object_set_new(o, "user_id", json_string(e->type + 2));
        } else {
            json_t *d = json_loads(e->data, 0, NULL);
            json_object_set_new(o, "user_id", json_null());
            json_object_set(o, "connection_id", json_object_get(d, "connection_id"));
            json_decref(d);
        }
        json_object_set_new(o, "connections", json_integer((json_int_t)e->seq));
        json_array_append_new(users, o);
    }
    json_t *body = json_pack("{s:s, s:o, s:I, s:I}", "topic", req->topic, "users", users,
                             "total_users", (json_int_t)req->nentries, "total_connections", conns);
    if (body && p->offset + p->limit < req->nentries)
        json_object_set_new(body, "next_offset", json_integer((json_int_t)(p->offset + p->limit)));
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (txt)
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){
                           .status = 200, .type = "presence", .json = txt, .len = strlen(txt)});
    else
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    free(txt);
}

static void rpost_run(struct rc_shard *s, struct rc_post *post)
{
    struct rpost *p = RC_CONTAINER_OF(post, struct rpost, post);
    struct rc_conn *c = rc_shard_conn(s, p->kind == RP_RESUME ? p->conn_id : p->ticket.conn_id);
    if (c) {
        switch (p->kind) {
        case RP_PUBLISH:
            publish_answer(c, p);
            break;
        case RP_RESUME:
            resume_answer(c, p);
            break;
        case RP_HISTORY:
            history_answer(c, p);
            break;
        case RP_PRESENCE:
            presence_answer(c, p);
            break;
        }
    }
    rpost_free(p);
}

/* ---- the engine ----------------------------------------------------------------------------- */

const struct rc_broker_engine_ops rc_broker_redis_engine = {
    .name = "redis",
    .publish = redis_publish,
    .publish_users = brk_mem_publish_users, /* node-local (broker.h) */
    .broadcast = brk_mem_broadcast,         /* node-local */
    .subscribed = redis_subscribed,
    .unsubscribed = redis_unsubscribed,
    .resume = redis_resume,
    .history = redis_history,
    .presence_list = redis_presence_list,
    .stats = brk_mem_stats,
};

/* ---- lifecycle (main thread) ---------------------------------------------------------------- */

int rc_broker_cluster_open(struct rc_server *srv, uint16_t port, struct rc_err *err)
{
    const struct rc_config *cfg = srv->cfg;
    srv->cluster = NULL;
    if (cfg->broker != RC_CONFIG_BROKER_REDIS)
        return 0;
    struct rc_broker_cluster *k = calloc(1, sizeof(*k));
    struct rc_redis_endpoint *ep = calloc(cfg->redis_url.n ? cfg->redis_url.n : 1, sizeof(*ep));
    if (!k || !ep) {
        free(k);
        free(ep);
        rc_err_set(err, 500, "start", "out of memory");
        return -ENOMEM;
    }
    k->srv = srv;
    for (size_t i = 0; i < cfg->redis_url.n; i++) {
        const char *u = cfg->redis_url.items[i];
        if (rc_redis_url_parse(u, strlen(u), &ep[i], err) < 0) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            rc_err_set(err, 0, "bad_config", "config: redis_url item %zu: %s", i + 1, msg);
            free(ep);
            free(k);
            return -EINVAL;
        }
    }
    if (cfg->node_name[0]) {
        snprintf(k->node_name, sizeof(k->node_name), "%s", cfg->node_name);
    } else {
        char host[200] = "localhost";
        (void)gethostname(host, sizeof(host) - 1);
        snprintf(k->node_name, sizeof(k->node_name), "%s:%u", host, (unsigned)port);
    }
    struct rc_redis_bridge_cfg bc = {
        .ep = ep,
        .nep = (uint32_t)cfg->redis_url.n,
        .timeout_ms = (uint32_t)cfg->redis_timeout,
        .max_pending = cfg->redis_max_pending,
        .seen_max = 100000,
        .catchup_max = RC_HISTORY_SIZE_MAX,
        .presence_ttl_ms = (uint32_t)cfg->presence_ttl,
    };
    uint64_t rnd[2] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd[0] = (uint64_t)getpid() ^ rc_wall_ms();
    snprintf(k->node_id, sizeof(k->node_id), "%016llx", (unsigned long long)rnd[0]);
    memcpy(bc.node_id, k->node_id, sizeof(bc.node_id));
    struct rc_redis_bridge_cb cb = {
        .event = bridge_event, .done = bridge_done, .node = bridge_node, .arg = k};
    int rc = rc_redis_bridge_open(&k->bridge, &bc, &cb, err);
    free(ep);
    if (rc < 0) {
        free(k);
        return rc;
    }
    srv->cluster = k;
    return 0;
}

int rc_broker_cluster_start(struct rc_server *srv, struct rc_err *err)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k)
        return 0;
    int rc = rc_redis_bridge_start(k->bridge, err);
    if (rc == 0)
        rc_log(RC_LOG_INFO, "cluster", "broker=redis node=\"%s\" redis_instances=%zu", k->node_name,
               srv->cfg->redis_url.n);
    return rc;
}

void rc_broker_cluster_halt(struct rc_server *srv)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k || k->halted)
        return;
    rc_redis_bridge_halt(k->bridge);
    k->halted = true;
}

void rc_broker_cluster_close(struct rc_server *srv)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k)
        return;
    rc_broker_cluster_halt(srv);
    struct rc_redis_counters ctr;
    rc_redis_bridge_stop_counters(k->bridge, &ctr);
    rc_log(RC_LOG_INFO, "cluster_stopped",
           "published=%llu publish_refused=%llu received=%llu duplicates=%llu gaps=%llu "
           "gap_filled=%llu gap_lost=%llu epochs=%llu reconnects=%llu malformed=%llu",
           (unsigned long long)ctr.published, (unsigned long long)ctr.publish_refused,
           (unsigned long long)ctr.received, (unsigned long long)ctr.duplicates,
           (unsigned long long)ctr.gaps, (unsigned long long)ctr.gap_filled,
           (unsigned long long)ctr.gap_lost, (unsigned long long)ctr.epochs,
           (unsigned long long)ctr.reconnects, (unsigned long long)ctr.malformed);
    free(k);
    srv->cluster = NULL;
}
