/* redis_bridge.c - the node's Redis thread: publishes, channel subscriptions,
 * ordered de-duplicated delivery and gap closing (see redis_bridge.h). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ringcast/redis_bridge.h"
#include "ringcast/redis_conn.h"
#include "ringcast/redis_topics.h"
#include "ringcast/timer.h"

#include "redis_bridge_internal.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A command that could not be appended (out of memory, or the connection
 * went down meanwhile: the resubscription sends it again). */
static void sent(struct rc_redis_bridge *b, int rc)
{
    if (rc < 0)
        b->ctr.send_failed++;
}

/* ---- requests ---------------------------------------------------------------------------- */

struct rc_redis_req *rc_redis_req_new(enum rc_redis_op op, const char *topic, size_t len)
{
    struct rc_redis_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->op = op;
    r->topic = strndup(topic, len);
    if (!r->topic) {
        free(r);
        return NULL;
    }
    r->topic_len = len;
    return r;
}

void rc_redis_req_free(struct rc_redis_req *req)
{
    if (!req)
        return;
    free(req->topic);
    free(req->type);
    free(req->data);
    free(req->targeting);
    free(req->key);
    for (size_t i = 0; i < req->nentries; i++) {
        free(req->entries[i].type);
        free(req->entries[i].data);
        free(req->entries[i].targeting);
    }
    free(req->entries);
    free(req);
}

static void answer(struct rc_redis_bridge *b, struct rc_redis_req *req, int status,
                   const char *code, const char *why)
{
    req->status = status;
    req->code = code;
    snprintf(req->why, sizeof(req->why), "%.150s", why ? why : "");
    if ((req->op == RC_REDIS_READ || req->op == RC_REDIS_PUBLISH) && status < 400 && req->sent_ns)
        rc_histo_add(&b->ctr.rtt_ns, rc_now_ns() - req->sent_ns);
    if (req->op == RC_REDIS_READ)
        b->ctr.reads++;
    else if (req->op != RC_REDIS_PUBLISH)
        ; /* a SUBSCRIBE's confirmation, a presence listing */
    else if (status >= 400)
        b->ctr.publish_refused++;
    else
        b->ctr.published++;
    b->cb.done(b->cb.arg, req);
}

void rdb_answer(struct rc_redis_bridge *b, struct rc_redis_req *req, int status, const char *code,
                const char *why)
{
    answer(b, req, status, code, why);
}

/* ---- delivery ------------------------------------------------------------------------------ */

void rdb_deliver(struct instance *in, struct rc_redis_topic *e, const char *topic, size_t len,
                 const struct rc_redis_event *ev)
{
    struct rc_redis_bridge *b = in->b;
    b->cb.event(b->cb.arg, topic, len, ev);
    rc_redis_topics_delivered(&in->topics, e, ev->epoch, ev->seq);
}

static void on_message(struct instance *in, const char *topic, size_t len, const char *msg,
                       size_t n)
{
    struct rc_redis_bridge *b = in->b;
    struct rc_redis_event ev;
    b->ctr.received++;
    if (rc_redis_event_parse(msg, n, &ev) < 0) {
        b->ctr.malformed++;
        return;
    }
    struct rc_redis_topic *e;
    switch (rc_redis_topics_seen(&in->topics, topic, len, ev.epoch, ev.seq, &e)) {
    case RC_REDIS_SEEN_DUP:
        b->ctr.duplicates++;
        return;
    case RC_REDIS_SEEN_GAP:
        if (rdb_catchup_start(in, topic, len, e->last, msg, n))
            return;
        b->ctr.gap_lost += ev.seq - e->last - 1;
        break;
    case RC_REDIS_SEEN_EPOCH:
        b->ctr.epochs++;
        break;
    case RC_REDIS_SEEN_NEW:
    case RC_REDIS_SEEN_NEXT:
        break;
    }
    rdb_deliver(in, e, topic, len, &ev);
}

static void on_push(void *arg, struct redisReply *r, const char *why)
{
    struct instance *in = arg;
    (void)why;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *ch = NULL, *msg = NULL;
    if (strcmp(r->element[0]->str, "message") == 0) {
        ch = r->element[1];
        msg = r->element[2];
    } else if (strcmp(r->element[0]->str, "pmessage") == 0 && r->elements == 4) {
        ch = r->element[2];
        msg = r->element[3];
    } else {
        /* a channel's SUBSCRIBE confirmed: reads parked for it may go */
        const redisReply *c = r->element[1];
        if (strcmp(r->element[0]->str, "subscribe") == 0 && c->type == REDIS_REPLY_STRING &&
            c->len > 5 && memcmp(c->str, "rc:e:", 5) == 0) {
            struct rc_redis_topic *e = rc_redis_topics_find(&in->topics, c->str + 5, c->len - 5);
            if (e && e->refs) {
                e->confirmed = true;
                rdb_read_unpark(in, e->name, e->len);
            }
        }
        return; /* other confirmations */
    }
    if (ch->type == REDIS_REPLY_STRING && msg->type == REDIS_REPLY_STRING &&
        ch->len == sizeof(RC_REDIS_NODE_CHANNEL) - 1 &&
        memcmp(ch->str, RC_REDIS_NODE_CHANNEL, ch->len) == 0) {
        in->b->ctr.node_received++;
        if (in->b->cb.node)
            in->b->cb.node(in->b->cb.arg, msg->str, msg->len);
        return;
    }
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING || ch->len <= 5 ||
        memcmp(ch->str, "rc:e:", 5) != 0) {
        in->b->ctr.malformed++;
        return;
    }
    on_message(in, ch->str + 5, ch->len - 5, msg->str, msg->len);
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static void channel_command(struct instance *in, const char *verb, const char *topic, size_t len)
{
    char ch[RC_TOPIC_KEY_MAX];
    if (!rc_redis_conn_ready(&in->sub) || rc_redis_key(ch, sizeof(ch), 'e', topic, len) < 0)
        return; /* sent again by the resubscription once it is up */
    const char *argv[] = {verb, ch};
    sent(in->b, rc_redis_conn_command(&in->sub, 2, argv, NULL, NULL, NULL));
}

int rc_redis_pattern_glob(char *out, size_t cap, const char *pattern, size_t len)
{
    size_t o = 0;
    if (cap < 6)
        return -ENOSPC;
    memcpy(out, "rc:e:", 5);
    o = 5;
    for (size_t i = 0; i < len; i++) {
        char c = pattern[i];
        bool tok_start = i == 0 || pattern[i - 1] == '.';
        bool tok_end = i + 1 == len || pattern[i + 1] == '.';
        if ((c == '*' || c == '>') && tok_start && tok_end) {
            if (o + 2 > cap)
                return -ENOSPC;
            out[o++] = '*';
            continue;
        }
        if (o + 3 > cap)
            return -ENOSPC;
        if (strchr("?[]\\*^", c))
            out[o++] = '\\';
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static void pattern_command(struct instance *in, const char *verb, const char *glob)
{
    if (!rc_redis_conn_ready(&in->sub))
        return; /* sent again by the resubscription once it is up */
    const char *argv[] = {verb, glob};
    sent(in->b, rc_redis_conn_command(&in->sub, 2, argv, NULL, NULL, NULL));
}

#define CATCH_ALL_GLOB "rc:e:*"

/* The glob a pattern is received through: its own, while the node's distinct
 * globs stay under max_patterns (or the glob is already subscribed), else the
 * catch-all (every event of the instance reaches this node, the trie picks).
 * Redis matches every pattern on every publish, so a few globs keep each
 * publish cheap for the whole cluster (docs/OPERATIONS.md). */
static const char *pattern_glob(struct rc_redis_bridge *b, const char *pattern, size_t len,
                                char out[RC_REDIS_GLOB_MAX], bool *coarse)
{
    struct rc_redis_topics *t = &b->inst[0].patterns;
    *coarse = false;
    if (rc_redis_pattern_glob(out, RC_REDIS_GLOB_MAX, pattern, len) < 0) {
        *coarse = true;
        return CATCH_ALL_GLOB;
    }
    const struct rc_redis_topic *e = rc_redis_topics_find(t, out, strlen(out));
    if ((e && e->refs) || !b->cfg.max_patterns || t->n - t->unreferenced < b->cfg.max_patterns)
        return out;
    *coarse = true;
    b->ctr.patterns_coarsened++;
    return CATCH_ALL_GLOB;
}

/* A pattern subscribed (on) or released by a subscription of this node. */
static void pattern_ref(struct rc_redis_bridge *b, const char *pattern, size_t len, bool on)
{
    bool edge = false, coarse = false;
    char buf[RC_REDIS_GLOB_MAX];
    const char *glob;
    if (on) {
        if (rc_redis_topics_ref(&b->pattern_map, pattern, len, &edge) < 0 || !edge)
            return; /* another subscription of this pattern holds its glob */
        glob = pattern_glob(b, pattern, len, buf, &coarse);
        rc_redis_topics_find(&b->pattern_map, pattern, len)->coarse = coarse;
    } else {
        struct rc_redis_topic *e = rc_redis_topics_find(&b->pattern_map, pattern, len);
        if (!e || !e->refs)
            return;
        coarse = e->coarse;
        if (rc_redis_topics_unref(&b->pattern_map, pattern, len, &edge) < 0 || !edge)
            return;
        glob = coarse || rc_redis_pattern_glob(buf, sizeof(buf), pattern, len) < 0 ? CATCH_ALL_GLOB
                                                                                   : buf;
    }
    /* a pattern's topics may live on any instance */
    for (uint32_t k = 0; k < b->cfg.nep; k++) {
        struct instance *pi = &b->inst[k];
        int rc = on ? rc_redis_topics_ref(&pi->patterns, glob, strlen(glob), &edge)
                    : rc_redis_topics_unref(&pi->patterns, glob, strlen(glob), &edge);
        if (rc == 0 && edge)
            pattern_command(pi, on ? "PSUBSCRIBE" : "PUNSUBSCRIBE", glob);
    }
}

struct resub {
    struct instance *in;
    const char *argv[SUBSCRIBE_BATCH + 1];
    char *names[SUBSCRIBE_BATCH];
    int n;
};

static void resub_flush(struct resub *rs)
{
    if (rs->n)
        sent(rs->in->b, rc_redis_conn_command(&rs->in->sub, rs->n + 1, rs->argv, NULL, NULL, NULL));
    for (int i = 0; i < rs->n; i++)
        free(rs->names[i]);
    rs->n = 0;
}

static void resub_one(void *arg, const struct rc_redis_topic *e)
{
    struct resub *rs = arg;
    if (!e->refs)
        return;
    bool glob = rs->argv[0][0] == 'P'; /* pattern tables hold the globs themselves */
    char *ch = glob ? strndup(e->name, e->len) : malloc(e->len + 6);
    if (!ch || (!glob && rc_redis_key(ch, e->len + 6, 'e', e->name, e->len) < 0)) {
        free(ch);
        return;
    }
    rs->names[rs->n] = ch;
    rs->argv[++rs->n] = ch;
    if (rs->n == SUBSCRIBE_BATCH)
        resub_flush(rs);
}

static void catchup_one(void *arg, const struct rc_redis_topic *e)
{
    struct instance *in = arg;
    if (e->refs && e->known)
        (void)rdb_catchup_start(in, e->name, e->len, e->last, NULL, 0);
}

/* Both connections of in are up after a (re)connect: subscribe every
 * referenced channel again (batched), then read what was missed. */
static void resubscribe(struct instance *in)
{
    if (!rc_redis_conn_ready(&in->sub) || !rc_redis_conn_ready(&in->cmd) || !in->resubscribe)
        return;
    in->resubscribe = false;
    for (size_t i = 0; i < in->topics.cap; i++)
        if (in->topics.slots[i])
            in->topics.slots[i]->confirmed = false;
    if (in->index == 0 && in->b->cb.node) {
        const char *argv[] = {"SUBSCRIBE", RC_REDIS_NODE_CHANNEL};
        sent(in->b, rc_redis_conn_command(&in->sub, 2, argv, NULL, NULL, NULL));
    }
    struct resub rs = {.in = in};
    rs.argv[0] = "SUBSCRIBE";
    rc_redis_topics_each(&in->topics, resub_one, &rs);
    resub_flush(&rs);
    rs.argv[0] = "PSUBSCRIBE";
    rc_redis_topics_each(&in->patterns, resub_one, &rs);
    resub_flush(&rs);
    /* the subscriptions are sent before the reads, and Redis answers the
     * reads after it has started sending the channels' new messages, so
     * nothing falls between the two */
    rc_redis_topics_each(&in->topics, catchup_one, in);
}

static void sub_ready(void *arg)
{
    struct instance *in = arg;
    in->resubscribe = true;
    if (in->sub.connects > 1)
        in->b->ctr.reconnects++;
    resubscribe(in);
}

static void script_loaded(void *arg, struct redisReply *r, const char *why)
{
    struct instance *in = arg;
    (void)why;
    in->script_loaded = r && r->type == REDIS_REPLY_STRING;
}

static void update_up(struct rc_redis_bridge *b)
{
    int down = 0;
    for (uint32_t i = 0; i < b->cfg.nep && !down; i++)
        if (!rc_redis_conn_ready(&b->inst[i].cmd))
            down = (int)i + 1;
    atomic_store_explicit(&b->down, down, memory_order_relaxed);
}

static void cmd_ready(void *arg)
{
    struct instance *in = arg;
    const char *argv[] = {"SCRIPT", "LOAD", rc_redis_publish_script};
    sent(in->b, rc_redis_conn_command(&in->cmd, 3, argv, NULL, script_loaded, in));
    update_up(in->b);
    resubscribe(in);
}

static void cmd_down(void *arg)
{
    struct instance *in = arg;
    in->script_loaded = false;
    while (in->parked) { /* they would wait for the whole outage */
        struct rc_redis_req *req = in->parked;
        in->parked = req->parked_next;
        answer(in->b, req, 503, "broker_unavailable", "the connection to redis was lost");
    }
    update_up(in->b);
}

/* ---- publishes ---------------------------------------------------------------------------------
 */

static void publish(struct rc_redis_bridge *b, struct rc_redis_req *req);

static void publish_reply(void *arg, struct redisReply *r, const char *why)
{
    struct rc_redis_req *req = arg;
    struct rc_redis_bridge *br = req->bridge_;
    req->bridge_ = NULL;
    if (!r) {
        answer(br, req, 503, "broker_unavailable", why);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !req->eval_ && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* Redis lost its script cache (a restart whose SCRIPT LOAD failed,
         * e.g. while it was loading its data): send the text, which caches it
         * again; every publish pipelined behind fails the same way and is sent
         * again in the same order */
        req->eval_ = true;
        publish(br, req);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        answer(br, req, 503, "broker_unavailable", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
        r->element[0]->len >= sizeof(req->epoch) || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER) {
        answer(br, req, 503, "broker_unavailable", "an unexpected answer from redis");
        return;
    }
    memcpy(req->epoch, r->element[0]->str, r->element[0]->len);
    req->epoch[r->element[0]->len] = '\0';
    req->seq = (uint64_t)r->element[1]->integer;
    answer(br, req, r->element[2]->integer ? 200 : 202, NULL, NULL);
}

static void publish(struct rc_redis_bridge *b, struct rc_redis_req *req)
{
    uint32_t i = rc_redis_instance_for(req->topic, req->topic_len, b->cfg.nep);
    struct instance *in = &b->inst[i];
    if (!rc_redis_conn_ready(&in->cmd)) {
        char why[200];
        snprintf(why, sizeof(why), "redis %.60s is not connected (%.100s)", b->names[i],
                 in->cmd.last_error[0] ? in->cmd.last_error : "connecting");
        answer(b, req, 503, "broker_unavailable", why);
        return;
    }
    char m[RC_TOPIC_KEY_MAX], h[RC_TOPIC_KEY_MAX], ch[RC_TOPIC_KEY_MAX];
    char maxlen[16], ttl[24], now[24];
    if (rc_redis_key(m, sizeof(m), 't', req->topic, req->topic_len) < 0 ||
        rc_redis_key(h, sizeof(h), 'h', req->topic, req->topic_len) < 0 ||
        rc_redis_key(ch, sizeof(ch), 'e', req->topic, req->topic_len) < 0) {
        answer(b, req, 503, "broker_unavailable", "topic name too long for a redis key");
        return;
    }
    snprintf(maxlen, sizeof(maxlen), "%u", req->maxlen);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)req->key_ttl_ms);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(now, sizeof(now), "%llu",
             (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull);
    const char *argv[] = {req->eval_ ? "EVAL" : "EVALSHA",
                          req->eval_ ? rc_redis_publish_script : b->sha,
                          "2",
                          m,
                          h,
                          ch,
                          maxlen,
                          req->type ? req->type : "message",
                          req->data ? req->data : "null",
                          req->targeting ? req->targeting : "",
                          req->key ? req->key : "",
                          ttl,
                          now};
    req->bridge_ = b;
    int rc = rc_redis_conn_command(&in->cmd, 13, argv, NULL, publish_reply, req);
    if (rc < 0) {
        req->bridge_ = NULL;
        answer(b, req, 503, "broker_unavailable",
               rc == -ENOBUFS ? "too many publishes in flight to redis" : "out of memory");
    }
}

static void node_published(void *arg, struct redisReply *r, const char *why)
{
    struct rc_redis_bridge *b = arg;
    (void)why;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        b->ctr.send_failed++;
}

/* To every node: fire and forget (a node that is not subscribed misses it,
 * as a disconnected client would). */
static void node_publish(struct rc_redis_bridge *b, struct rc_redis_req *req)
{
    struct instance *in = &b->inst[0];
    const char *argv[] = {"PUBLISH", RC_REDIS_NODE_CHANNEL, req->data ? req->data : ""};
    size_t len[] = {7, sizeof(RC_REDIS_NODE_CHANNEL) - 1, req->data ? req->data_len : 0};
    if (rc_redis_conn_ready(&in->cmd) &&
        rc_redis_conn_command(&in->cmd, 3, argv, len, node_published, b) == 0)
        b->ctr.node_published++;
    else
        b->ctr.send_failed++;
    rc_redis_req_free(req);
}

static void handle(struct rc_redis_bridge *b, struct rc_redis_req *req)
{
    uint32_t i = rc_redis_instance_for(req->topic, req->topic_len, b->cfg.nep);
    struct instance *in = &b->inst[i];
    bool edge = false;
    req->sent_ns = rc_now_ns();
    switch (req->op) {
    case RC_REDIS_PUBLISH:
        publish(b, req);
        return;
    case RC_REDIS_READ:
        rdb_read(in, req);
        return;
    case RC_REDIS_NODE_PUBLISH:
        node_publish(b, req);
        return;
    case RC_REDIS_PRESENCE:
        rdb_presence(b, req);
        return;
    case RC_REDIS_PRESENCE_LIST:
        rdb_presence_list(in, req);
        return;
    case RC_REDIS_SUBSCRIBE: {
        if (rc_redis_topics_ref(&in->topics, req->topic, req->topic_len, &edge) == 0 && edge) {
            struct rc_redis_topic *e =
                rc_redis_topics_find(&in->topics, req->topic, req->topic_len);
            if (e)
                e->confirmed = false;
            channel_command(in, "SUBSCRIBE", req->topic, req->topic_len);
        }
        if (!req->want_confirm)
            break;
        const struct rc_redis_topic *e =
            rc_redis_topics_find(&in->topics, req->topic, req->topic_len);
        /* wait while Redis is reachable (the command connection is up): the
         * subscriber connection, if it is being made again, confirms it once
         * it resubscribes; Redis unreachable, nothing can be published, so
         * there is nothing to wait for (cmd_down answers parked ones) */
        if (e && !e->confirmed && rc_redis_conn_ready(&in->cmd)) {
            req->parked_next = in->parked; /* answered by the confirmation (rdb_read_unpark) */
            in->parked = req;
        } else {
            answer(b, req, 200, NULL, NULL);
        }
        return;
    }
    case RC_REDIS_UNSUBSCRIBE:
        if (rc_redis_topics_unref(&in->topics, req->topic, req->topic_len, &edge) == 0 && edge) {
            channel_command(in, "UNSUBSCRIBE", req->topic, req->topic_len);
            rdb_read_unpark(in, req->topic, req->topic_len); /* nothing left to wait for */
        }
        break;
    case RC_REDIS_PSUBSCRIBE:
    case RC_REDIS_PUNSUBSCRIBE:
        pattern_ref(b, req->topic, req->topic_len, req->op == RC_REDIS_PSUBSCRIBE);
        break;
    }
    rc_redis_req_free(req);
}

/* ---- the thread ---------------------------------------------------------------------------------
 */

/* Thread: the bridge. Owns: its instances (connections, topic tables),
 * every request it has popped until handed back. Drains: b->q. Calls: cb. */
static void *bridge_main(void *arg)
{
    struct rc_redis_bridge *b = arg;
    size_t nfds = 1 + 2 * (size_t)b->cfg.nep;
    struct pollfd *p = calloc(nfds, sizeof(*p));
    if (!p)
        return NULL;
    while (!atomic_load_explicit(&b->stop, memory_order_acquire)) {
        struct rc_mpsc_node *node;
        while ((node = rc_mpsc_pop(&b->q)))
            handle(b, RC_CONTAINER_OF(node, struct rc_redis_req, node));
        uint64_t c[RC_REDIS_NCOUNTERS];
        memcpy(c, &b->ctr, sizeof(c));
        for (size_t i = 0; i < RC_REDIS_NCOUNTERS; i++)
            atomic_store_explicit(&b->live[i], c[i], memory_order_relaxed);
        uint64_t now = mono_ms(), wake = now + 1000;
        rdb_presence_tick(b, now);
        if (rdb_presence_wake(b) < wake)
            wake = rdb_presence_wake(b);
        p[0] = (struct pollfd){.fd = b->efd, .events = POLLIN};
        for (uint32_t i = 0; i < b->cfg.nep; i++) {
            struct rc_redis_conn *cs[2] = {&b->inst[i].cmd, &b->inst[i].sub};
            for (int k = 0; k < 2; k++) {
                p[1 + 2 * i + (uint32_t)k] = (struct pollfd){.fd = rc_redis_conn_fd(cs[k]),
                                                             .events = rc_redis_conn_events(cs[k])};
                uint64_t w = rc_redis_conn_wake_ms(cs[k]);
                if (w < wake)
                    wake = w;
            }
        }
        int timeout = wake <= now ? 0 : (int)(wake - now);
        bool sleep_ok = rc_mpsc_prepare_sleep(&b->q);
        int n = poll(p, nfds, sleep_ok ? timeout : 0);
        rc_mpsc_awake(&b->q);
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            (void)!read(b->efd, &v, sizeof(v));
        }
        now = mono_ms();
        for (uint32_t i = 0; i < b->cfg.nep; i++) {
            struct instance *in = &b->inst[i];
            rc_redis_conn_step(&in->cmd, n > 0 ? p[1 + 2 * i].revents : 0, now);
            rc_redis_conn_step(&in->sub, n > 0 ? p[2 + 2 * i].revents : 0, now);
            /* what step appended leaves now rather than after the next poll */
            rc_redis_conn_step(&in->cmd, 0, now);
            rc_redis_conn_step(&in->sub, 0, now);
        }
    }
    free(p);
    return NULL;
}

int rc_redis_bridge_open(struct rc_redis_bridge **out, const struct rc_redis_bridge_cfg *cfg,
                         const struct rc_redis_bridge_cb *cb, struct rc_err *err)
{
    *out = NULL;
    if (!cfg->nep || cfg->nep > RC_REDIS_INSTANCES_MAX) {
        rc_err_set(err, 400, "bad_value", "redis_url: give 1..%d instances",
                   RC_REDIS_INSTANCES_MAX);
        return -EINVAL;
    }
    struct rc_redis_bridge *b = calloc(1, sizeof(*b));
    if (!b)
        goto nomem;
    b->efd = -1;
    b->cfg = *cfg;
    b->cb = *cb;
    if (!b->cfg.catchup_max)
        b->cfg.catchup_max = 10000;
    b->ep = calloc(cfg->nep, sizeof(*b->ep));
    b->inst = calloc(cfg->nep, sizeof(*b->inst));
    if (!b->ep || !b->inst)
        goto nomem;
    memcpy(b->ep, cfg->ep, cfg->nep * sizeof(*b->ep));
    b->names = calloc(cfg->nep, sizeof(*b->names));
    if (!b->names)
        goto nomem;
    for (uint32_t i = 0; i < cfg->nep; i++)
        rc_redis_endpoint_name(&b->ep[i], b->names[i], sizeof(b->names[i]));
    atomic_init(&b->down, 1);
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)rc_redis_publish_script, strlen(rc_redis_publish_script), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(b->sha + 2 * i, 3, "%02x", d[i]);
    for (uint32_t i = 0; i < cfg->nep; i++) {
        struct instance *in = &b->inst[i];
        in->b = b;
        in->index = i;
        if (rc_redis_conn_init(&in->cmd, &b->ep[i], cfg->timeout_ms, cfg->max_pending) < 0 ||
            rc_redis_conn_init(&in->sub, &b->ep[i], cfg->timeout_ms, cfg->max_pending) < 0 ||
            rc_redis_topics_init(&in->topics, cfg->seen_max) < 0 ||
            rc_redis_topics_init(&in->patterns, 64) < 0)
            goto nomem;
        in->cmd.on_ready = cmd_ready;
        in->cmd.on_down = cmd_down;
        in->cmd.cb_arg = in;
        in->sub.push = on_push;
        in->sub.push_arg = in;
        in->sub.on_ready = sub_ready;
        in->sub.cb_arg = in;
    }
    if (rc_redis_topics_init(&b->pattern_map, 64) < 0)
        goto nomem;
    b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->efd < 0)
        goto nomem;
    rc_mpsc_init(&b->q, b->efd);
    *out = b;
    return 0;
nomem:
    if (b)
        rc_redis_bridge_stop(b);
    rc_err_set(err, 500, "start", "redis bridge: out of memory or descriptors");
    return -ENOMEM;
}

int rc_redis_bridge_start(struct rc_redis_bridge *b, struct rc_err *err)
{
    int rc = pthread_create(&b->thread, NULL, bridge_main, b);
    if (rc) {
        rc_err_set(err, 500, "start", "redis bridge: pthread_create failed: %s", strerror(rc));
        return -rc;
    }
    b->started = true;
    return 0;
}

void rc_redis_bridge_submit(struct rc_redis_bridge *b, struct rc_redis_req *req)
{
    rc_mpsc_push(&b->q, &req->node);
}

void rc_redis_bridge_counters(struct rc_redis_bridge *b, struct rc_redis_counters *out)
{
    uint64_t c[RC_REDIS_NCOUNTERS];
    for (size_t i = 0; i < RC_REDIS_NCOUNTERS; i++)
        c[i] = atomic_load_explicit(&b->live[i], memory_order_relaxed);
    memcpy(out, c, sizeof(c));
}

bool rc_redis_bridge_up(struct rc_redis_bridge *b, char *why, size_t cap)
{
    int down = atomic_load_explicit(&b->down, memory_order_relaxed);
    if (down && why)
        snprintf(why, cap, "redis %s is not connected", b->names[down - 1]);
    return down == 0;
}

void rc_redis_bridge_stop(struct rc_redis_bridge *b)
{
    rc_redis_bridge_stop_counters(b, NULL);
}

void rc_redis_bridge_halt(struct rc_redis_bridge *b)
{
    if (!b || !b->started)
        return;
    atomic_store_explicit(&b->stop, 1, memory_order_release);
    uint64_t one = 1;
    (void)!write(b->efd, &one, sizeof(one));
    pthread_join(b->thread, NULL);
    b->started = false;
}

void rc_redis_bridge_stop_counters(struct rc_redis_bridge *b, struct rc_redis_counters *out)
{
    if (!b)
        return;
    rc_redis_bridge_halt(b);
    /* requests still queued: publishes get their answer, the rest are freed */
    if (b->efd >= 0) {
        struct rc_mpsc_node *node;
        while ((node = rc_mpsc_pop(&b->q))) {
            struct rc_redis_req *req = RC_CONTAINER_OF(node, struct rc_redis_req, node);
            if (req->op == RC_REDIS_PUBLISH || req->op == RC_REDIS_READ ||
                req->op == RC_REDIS_PRESENCE_LIST || req->want_confirm)
                answer(b, req, 503, "broker_unavailable", "shutting down");
            else
                rc_redis_req_free(req);
        }
        close(b->efd);
    }
    for (uint32_t i = 0; b->inst && i < b->cfg.nep; i++) {
        while (b->inst[i].parked) {
            struct rc_redis_req *req = b->inst[i].parked;
            b->inst[i].parked = req->parked_next;
            answer(b, req, 503, "broker_unavailable", "shutting down");
        }
        rc_redis_conn_fini(&b->inst[i].cmd);
        rc_redis_conn_fini(&b->inst[i].sub);
        if (b->inst[i].topics.slots)
            rc_redis_topics_free(&b->inst[i].topics);
        if (b->inst[i].patterns.slots)
            rc_redis_topics_free(&b->inst[i].patterns);
    }
    if (b->pattern_map.slots)
        rc_redis_topics_free(&b->pattern_map);
    rdb_presence_free(b);
    if (out)
        *out = b->ctr;
    free(b->inst);
    free(b->ep);
    free(b->names);
    free(b);
}
