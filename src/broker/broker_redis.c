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

const char *rc_broker_node_name(const struct rc_server *srv)
{
    return srv->cluster ? srv->cluster->node_name : "";
}

void rc_broker_cluster_stats(const struct rc_server *srv, json_t *obj)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k)
        return;
    struct rc_redis_counters c;
    rc_redis_bridge_counters(k->bridge, &c);
    char why[200] = "";
    bool up = rc_redis_bridge_up(k->bridge, why, sizeof(why));
    json_t *o = json_pack(
        "{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "node_name", k->node_name, "redis_up", up, "published", (json_int_t)c.published,
        "publish_refused", (json_int_t)c.publish_refused, "received", (json_int_t)c.received,
        "duplicates", (json_int_t)c.duplicates, "gaps", (json_int_t)c.gaps, "gap_filled",
        (json_int_t)c.gap_filled, "gap_lost", (json_int_t)c.gap_lost, "malformed",
        (json_int_t)c.malformed, "epochs", (json_int_t)c.epochs, "reconnects",
        (json_int_t)c.reconnects, "send_failed", (json_int_t)c.send_failed, "reads",
        (json_int_t)c.reads, "node_events_sent", (json_int_t)c.node_published,
        "node_events_received", (json_int_t)c.node_received);
    if (o && !up)
        json_object_set_new(o, "reason", json_string(why));
    if (o) {
        json_object_set_new(o, "presence_failed", json_integer((json_int_t)c.presence_failed));
        json_object_set_new(o, "patterns_coarsened",
                            json_integer((json_int_t)c.patterns_coarsened));
    }
    json_object_set_new(obj, "cluster", o);
}

bool rc_broker_cluster_counters(const struct rc_server *srv, struct rc_redis_counters *out)
{
    if (!srv->cluster)
        return false;
    rc_redis_bridge_counters(srv->cluster->bridge, out);
    return true;
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
struct rc_evbuf *brk_redis_evbuf(const char *topic, size_t len, const char *epoch, uint64_t seq,
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
    if (nposts)
        ev->accepted_ns = rc_now_ns(); /* live: received from Redis, for /metrics */
    return ev;
}

static void bridge_event(void *arg, const char *topic, size_t len, const struct rc_redis_event *e)
{
    struct rc_broker_cluster *k = arg;
    struct rc_server *srv = k->srv;
    struct rc_evbuf *ev =
        brk_redis_evbuf(topic, len, e->epoch, e->seq, e->type, e->data, e->targeting, srv->nshards);
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

/* Wire form on RC_REDIS_NODE_CHANNEL: "<node id>\n<meta JSON>\n" then a body.
 * An event for connections: meta {"id","w":ws_len,"s":sse_len,"u":[users]
 * (absent = all),"x":excluded user}, the body its WebSocket then SSE image.
 * A message for an upper layer (rc_broker_cluster_send): meta {"k":kind,
 * "m":message}, no body. node_send: meta is taken; what names the message in
 * the log line of a failure. */
static void node_send(struct rc_broker_cluster *k, json_t *meta, const void *a, size_t al,
                      const void *b, size_t bl, const char *what)
{
    char *txt = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    struct rc_redis_req *req = txt ? rc_redis_req_new(RC_REDIS_NODE_PUBLISH, "", 0) : NULL;
    size_t tl = txt ? strlen(txt) : 0, n = 17 + tl + 1 + al + bl;
    char *msg = req ? malloc(n) : NULL;
    if (!msg) {
        rc_log(RC_LOG_WARN, "cluster_send_failed", "what=\"%.64s\" reason=oom", what);
        free(txt);
        rc_redis_req_free(req);
        return;
    }
    memcpy(msg, k->node_id, 16);
    msg[16] = '\n';
    memcpy(msg + 17, txt, tl);
    msg[17 + tl] = '\n';
    if (al)
        memcpy(msg + 18 + tl, a, al);
    if (bl)
        memcpy(msg + 18 + tl + al, b, bl);
    free(txt);
    req->data = msg;
    req->data_len = n;
    rc_redis_bridge_submit(k->bridge, req);
}

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
    node_send(k, meta, ev->ws, ev->ws_len, ev->sse, ev->sse_len, ev->id);
}

int rc_broker_cluster_on(struct rc_server *srv, const char *kind, rc_broker_cluster_fn fn,
                         void *ctx)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (!k)
        return 0;
    if (k->non == RC_BROKER_CLUSTER_KINDS || strlen(kind) >= sizeof(k->on[0].kind))
        return -ENOSPC;
    snprintf(k->on[k->non].kind, sizeof(k->on[0].kind), "%s", kind);
    k->on[k->non].fn = fn;
    k->on[k->non].ctx = ctx;
    k->non++;
    return 0;
}

void rc_broker_cluster_send(const struct rc_server *srv, const char *kind, const json_t *msg)
{
    struct rc_broker_cluster *k = srv->cluster;
    if (k)
        node_send(k, json_pack("{s:s, s:O}", "k", kind, "m", (json_t *)msg), NULL, 0, NULL, 0,
                  kind);
}

/* Bridge thread: another node's message for an upper layer's handler. */
static void node_message(struct rc_broker_cluster *k, const json_t *meta)
{
    const char *kind = json_string_value(json_object_get(meta, "k"));
    const json_t *m = json_object_get(meta, "m");
    for (unsigned i = 0; kind && json_is_object(m) && i < k->non; i++)
        if (strcmp(k->on[i].kind, kind) == 0) {
            k->on[i].fn(k->on[i].ctx, m);
            return;
        }
    rc_log(RC_LOG_WARN, "cluster_message_dropped", "kind=\"%.32s\" reason=no_handler",
           kind ? kind : "?");
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
    if (meta && json_object_get(meta, "k")) {
        node_message(k, meta);
        json_decref(meta);
        return;
    }
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

struct rpost *brk_rpost_new(struct rc_conn *c, enum rpost_kind kind, struct rc_redis_req *req)
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

struct rpost *brk_rpost_for(struct rc_conn *c, const struct rc_ticket *t, enum rpost_kind kind,
                            enum rc_redis_op op, const char *topic, size_t n)
{
    struct rc_redis_req *req = rc_redis_req_new(op, topic, n);
    struct rpost *p = req ? brk_rpost_new(c, kind, req) : NULL;
    if (!p) {
        rc_redis_req_free(req);
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return NULL;
    }
    p->req = req;
    p->ticket = *t;
    return p;
}

bool brk_rpost_failed(struct rc_conn *c, const struct rpost *p)
{
    const struct rc_redis_req *req = p->req;
    if (req->status < 400)
        return false;
    rc_conn_answer(c, &p->ticket,
                   &(struct rc_answer){.status = 503,
                                       .code = req->code ? req->code : "broker_unavailable",
                                       .msg = req->why});
    return true;
}

void brk_redis_submit(struct rc_shard *s, struct rc_redis_req *req)
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
    struct rpost *p = req ? brk_rpost_new(c, RP_PUBLISH, req) : NULL;
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
    brk_redis_submit(s, req);
}

static void publish_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (brk_rpost_failed(c, p))
        return;
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

static void channel_req(struct rc_conn *c, struct rc_sub *sub, bool on)
{
    struct rc_shard *s = c->shard;
    bool pattern = rc_topic_is_pattern(sub->pattern, sub->pattern_len);
    enum rc_redis_op op = pattern ? (on ? RC_REDIS_PSUBSCRIBE : RC_REDIS_PUNSUBSCRIBE)
                                  : (on ? RC_REDIS_SUBSCRIBE : RC_REDIS_UNSUBSCRIBE);
    struct rc_redis_req *req = rc_redis_req_new(op, sub->pattern, sub->pattern_len);
    if (req && op == RC_REDIS_SUBSCRIBE) {
        /* "subscribed" waits until the channel carries this topic's events to
         * this node (broker.h, rc_broker_reply_held) */
        struct rpost *p = brk_rpost_new(c, RP_CHANNEL, req);
        if (p) {
            memcpy(p->sub_id, sub->id, sizeof(p->sub_id));
            req->want_confirm = true;
            sub->channel_pending = true;
        }
    }
    if (!req) {
        /* a lost SUBSCRIBE leaves sub without events; a lost UNSUBSCRIBE
         * keeps a channel the node no longer needs: both are logged */
        rc_log(RC_LOG_ERROR, "redis_subscription_lost", "topic=\"%.64s\" op=%s reason=oom",
               sub->pattern, on ? "subscribe" : "unsubscribe");
        return;
    }
    brk_redis_submit(s, req);
}

static void redis_subscribed(struct rc_conn *c, struct rc_sub *sub)
{
    brk_mem_subscribed(c, sub); /* node-local: presence, claims */
    channel_req(c, sub, true);
}

static void redis_unsubscribed(struct rc_conn *c, struct rc_sub *sub)
{
    brk_mem_unsubscribed(c, sub);
    channel_req(c, sub, false);
}

static void rpost_run(struct rc_shard *s, struct rc_post *post)
{
    struct rpost *p = RC_CONTAINER_OF(post, struct rpost, post);
    struct rc_conn *c = rc_shard_conn(s, p->conn_id); /* the asking connection (rpost_new) */
    if (c) {
        switch (p->kind) {
        case RP_PUBLISH:
            publish_answer(c, p);
            break;
        case RP_RESUME:
            brk_redis_resume_answer(c, p);
            break;
        case RP_HISTORY:
            brk_redis_history_answer(c, p);
            break;
        case RP_PRESENCE:
            brk_redis_presence_answer(c, p);
            break;
        case RP_CHANNEL: {
            struct rc_sub *sub = brk_find_sub(c, p->sub_id);
            if (sub && sub->channel_pending) {
                sub->channel_pending = false;
                brk_sub_release_reply(c, sub);
            }
            break;
        }
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
    .resume = brk_redis_resume,
    .history = brk_redis_history,
    .presence_list = brk_redis_presence_list,
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
        .max_patterns = cfg->redis_max_patterns,
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
