/* broker.c - subscriptions, topic ownership, publish and fan-out (see
 * broker.h for the message flow and ownership). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/filter.h"
#include "ringcast/history.h"
#include "ringcast/presence.h"
#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/msg.h"
#include "ringcast/shard.h"
#include "ringcast/topic.h"
#include "ringcast/trie.h"
#include "ringcast/ws.h"
#include "ringcast/ws_frame.h"

#define IDEM_KEYS 32 /* idempotency keys remembered per topic */

/* State of a topic this shard owns. */
struct topic_state {
    char *name;
    size_t len;
    uint64_t hash;
    struct rc_history hist; /* also holds the topic's current seq */
    uint64_t idem_hash[IDEM_KEYS];
    uint64_t idem_seq[IDEM_KEYS];
    uint32_t idem_next;
};

struct rc_broker {
    struct rc_shard *shard;
    struct rc_trie *trie;
    struct rc_pool sub_pool;
    uint64_t next_sub;
    /* owned topics: open addressing, linear probing, power-of-two size */
    struct topic_state **topics;
    size_t ntopics, topics_cap;
    struct rc_presence *presence; /* members of the topics this shard owns */
    /* the event being delivered (for the trie callback) */
    struct rc_evbuf *cur;
    size_t cur_delivered;
};

/* ---- inbox messages ---------------------------------------------------------- */

enum pub_state { PUB_TO_OWNER, PUB_DONE };

struct pub_post {
    struct rc_post post;
    enum pub_state state;
    struct rc_shard *origin;
    uint64_t conn_id;
    uint32_t serial;
    enum rc_reply_to to;
    char *topic;
    size_t topic_len;
    char *type;
    json_t *data;
    char *client_key;
    json_t *req_id;
    json_t *echo;
    char **users;
    size_t nusers;
    char *exclude_user;
    /* answer */
    int status;
    char event_id[RC_EVENT_ID_MAX];
    bool duplicate;
};

enum job_kind { JOB_STATS, JOB_BROADCAST };

struct gather {
    enum job_kind kind;
    uint64_t conn_id;
    uint32_t serial;
    unsigned pending;
    size_t limit;
    /* merged results */
    uint64_t reached;
    json_t *echo; /* broadcast: answer 202 with this object plus "connections" */
    json_t *acc;  /* stats: the answer being built */
    json_t *users;
    size_t listed;
};

struct job_post {
    struct rc_post post;
    bool done;
    struct rc_shard *origin;
    struct gather *g;
    struct rc_evbuf *ev; /* broadcast */
    size_t limit;
    /* results */
    uint64_t reached;
    json_t *part;
};

static struct rc_broker *B(struct rc_shard *s)
{
    return s->broker;
}

static void resume_finish(struct rc_sub *sub);
enum pres_kind { PRES_JOIN, PRES_LEAVE, PRES_LIST };
static bool presence_on(const struct rc_shard *s, const char *topic, size_t n);
static void presence_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                          enum pres_kind kind);

/* ---- subscriptions -------------------------------------------------------------- */

void rc_sub_ref(struct rc_sub *sub)
{
    sub->refs++;
}

void rc_sub_unref(struct rc_sub *sub)
{
    if (--sub->refs > 0)
        return;
    free(sub->pattern);
    free(sub->filter_text);
    /* subs never leave their shard, so this runs on the pool's thread */
    rc_pool_put(&sub->broker->sub_pool, sub);
}

static void sub_id_make(struct rc_broker *b, char out[RC_SUB_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = (uint64_t)(b->shard->id & 0xff) << 52 | (b->next_sub++ & 0xfffffffffffffULL);
    out[0] = 's';
    for (int i = RC_SUB_ID_LEN - 1; i >= 1; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
    out[RC_SUB_ID_LEN] = '\0';
}

struct rc_sub *rc_broker_subscribe(struct rc_conn *c, const char *pattern, size_t n,
                                   const json_t *filter, struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct rc_broker *b = B(s);
    struct rc_filter *f = NULL;

    if (c->nsubs >= s->cfg->max_subscriptions) {
        rc_err_set(err, 400, "too_many_subscriptions",
                   "this connection has %u subscriptions, the maximum (max_subscriptions); "
                   "unsubscribe from one first",
                   c->nsubs);
        return NULL;
    }
    if (rc_topic_validate(pattern, n, RC_TOPIC_PATTERN, err) < 0)
        return NULL;
    if (filter) {
        struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
        f = rc_filter_compile(filter, &lim, err);
        if (!f)
            return NULL;
    }
    struct rc_sub *sub = rc_pool_get(&b->sub_pool);
    if (!sub) {
        rc_filter_free(f);
        rc_err_set(err, 503, "no_memory", "out of memory for a subscription");
        return NULL;
    }
    sub->pattern = strndup(pattern, n);
    if (f && f->npreds)
        sub->filter_text = strdup(rc_filter_canonical(f));
    struct rc_trie_sub *h = rc_trie_add(b->trie, pattern, n, f, sub, err);
    rc_filter_free(f);
    if (!h || !sub->pattern) {
        if (h)
            rc_trie_remove(b->trie, h);
        free(sub->pattern);
        free(sub->filter_text);
        rc_pool_put(&b->sub_pool, sub);
        if (!err->code)
            rc_err_set(err, 503, "no_memory", "out of memory for a subscription");
        return NULL;
    }
    sub->handle = h;
    sub->broker = b;
    sub->conn = c;
    sub->refs = 1;
    sub->pattern_len = (uint16_t)n;
    sub_id_make(b, sub->id);
    /* pre-encoded per-subscriber tails of the shared event frame */
    sub->ws_suffix[0] = '"';
    memcpy(sub->ws_suffix + 1, sub->id, RC_SUB_ID_LEN);
    memcpy(sub->ws_suffix + 1 + RC_SUB_ID_LEN, "\"}}", 3);
    sub->sse_suffix[0] = '"';
    memcpy(sub->sse_suffix + 1, sub->id, RC_SUB_ID_LEN);
    memcpy(sub->sse_suffix + 1 + RC_SUB_ID_LEN, "\"}\n\n", 4);
    sub->next_in_conn = c->subs;
    c->subs = sub;
    c->nsubs++;
    if (!rc_topic_is_pattern(pattern, n) && presence_on(s, pattern, n)) {
        sub->presence = true;
        presence_post(s, sub, c, PRES_JOIN);
    }
    return sub;
}

/* Detach sub from its connection's list (pp points at the link to it). */
static void sub_remove(struct rc_broker *b, struct rc_conn *c, struct rc_sub **pp)
{
    struct rc_sub *sub = *pp;
    *pp = sub->next_in_conn;
    c->nsubs--;
    if (sub->presence)
        presence_post(b->shard, sub, c, PRES_LEAVE);
    rc_trie_remove(b->trie, sub->handle);
    resume_finish(sub);
    sub->handle = NULL;
    sub->conn = NULL;
    rc_sub_unref(sub);
}

size_t rc_broker_unsubscribe_id(struct rc_conn *c, const char *sub_id)
{
    struct rc_broker *b = B(c->shard);
    for (struct rc_sub **pp = &c->subs; *pp; pp = &(*pp)->next_in_conn) {
        if (strcmp((*pp)->id, sub_id) == 0) {
            sub_remove(b, c, pp);
            return 1;
        }
    }
    return 0;
}

size_t rc_broker_unsubscribe_pattern(struct rc_conn *c, const char *pattern, size_t n)
{
    struct rc_broker *b = B(c->shard);
    size_t removed = 0;
    struct rc_sub **pp = &c->subs;
    while (*pp) {
        struct rc_sub *sub = *pp;
        if (sub->pattern_len == n && memcmp(sub->pattern, pattern, n) == 0) {
            sub_remove(b, c, pp);
            removed++;
        } else {
            pp = &sub->next_in_conn;
        }
    }
    return removed;
}

void rc_broker_conn_gone(struct rc_conn *c)
{
    struct rc_broker *b = B(c->shard);
    while (c->subs)
        sub_remove(b, c, &c->subs);
}

/* ---- owned topics ------------------------------------------------------------------ */

/* History kept for a topic: the config's defaults (history_size,
 * history_ttl, retain), refined by the first topic rule that covers it. */
static struct rc_history_cfg history_cfg(const struct rc_shard *s, const char *topic)
{
    const struct rc_config *cfg = s->cfg;
    struct rc_history_cfg hc = {
        .size = cfg->history_size,
        .ttl_ms = cfg->history_ttl,
        .retain = cfg->retain,
    };
    const struct rc_auth_rule *r =
        s->srv->auth ? rc_auth_rule_for(s->srv->auth, topic, strlen(topic)) : NULL;
    if (r && (r->set & RC_AUTH_RULE_HISTORY_SIZE))
        hc.size = r->history_size;
    if (r && (r->set & RC_AUTH_RULE_HISTORY_TTL))
        hc.ttl_ms = r->history_ttl_ms;
    if (r && (r->set & RC_AUTH_RULE_RETAIN))
        hc.retain = r->retain;
    if (hc.size > RC_HISTORY_SIZE_MAX)
        hc.size = RC_HISTORY_SIZE_MAX;
    return hc;
}

static struct topic_state *topic_find(struct rc_broker *b, const char *name, size_t len)
{
    if (!b->topics_cap)
        return NULL;
    uint64_t h = XXH3_64bits(name, len);
    size_t k = h & (b->topics_cap - 1);
    while (b->topics[k]) {
        struct topic_state *t = b->topics[k];
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
        k = (k + 1) & (b->topics_cap - 1);
    }
    return NULL;
}

static struct topic_state *topic_get(struct rc_broker *b, const char *name, size_t len)
{
    uint64_t h = XXH3_64bits(name, len);
    if (b->ntopics * 2 >= b->topics_cap) {
        size_t ncap = b->topics_cap ? b->topics_cap * 2 : 256;
        struct topic_state **nt = calloc(ncap, sizeof(*nt));
        if (!nt)
            return NULL;
        for (size_t i = 0; i < b->topics_cap; i++) {
            struct topic_state *t = b->topics[i];
            if (!t)
                continue;
            size_t k = t->hash & (ncap - 1);
            while (nt[k])
                k = (k + 1) & (ncap - 1);
            nt[k] = t;
        }
        free(b->topics);
        b->topics = nt;
        b->topics_cap = ncap;
    }
    size_t k = h & (b->topics_cap - 1);
    while (b->topics[k]) {
        struct topic_state *t = b->topics[k];
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
        k = (k + 1) & (b->topics_cap - 1);
    }
    struct topic_state *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strndup(name, len);
    if (!t->name) {
        free(t);
        return NULL;
    }
    t->len = len;
    t->hash = h;
    struct rc_history_cfg hc = history_cfg(b->shard, t->name);
    if (rc_history_init(&t->hist, &hc) < 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    b->topics[k] = t;
    b->ntopics++;
    return t;
}

static void event_id_format(const struct rc_server *srv, uint64_t seq, char out[RC_EVENT_ID_MAX])
{
    snprintf(out, RC_EVENT_ID_MAX, "%s-%llu", srv->epoch_str, (unsigned long long)seq);
}

/* Owner shard: give the next event of topic t an id, encode it once, keep it
 * in the topic's history and post it to every shard. *data is moved into the
 * event (from then on only the evbuf references it, and the evbuf's atomic
 * refcount decides who frees it). Returns the event's seq (its id in id_out),
 * or 0 when out of memory (*data is then still the caller's). */
static uint64_t owner_fanout(struct rc_shard *s, struct topic_state *t, const char *type,
                             json_t **data, char **users, size_t nusers, const char *exclude,
                             char id_out[RC_EVENT_ID_MAX])
{
    struct rc_evbuf *ev = rc_evbuf_new(s->srv->nshards);
    if (!ev)
        return 0;
    uint64_t seq = rc_history_seq(&t->hist) + 1;
    ev->kind = RC_EVENT_TOPIC;
    ev->seq = seq;
    ev->topic = strndup(t->name, t->len);
    ev->topic_len = t->len;
    event_id_format(s->srv, seq, ev->id);
    if (!ev->topic || rc_evbuf_encode(ev, type, *data, NULL, NULL) < 0 ||
        rc_evbuf_set_users(ev, users, nusers, exclude) < 0) {
        rc_evbuf_free_(ev);
        return 0;
    }
    ev->data = *data;
    *data = NULL;
    uint64_t now = rc_now_ms();
    rc_history_trim(&t->hist, now);
    if (rc_history_append(&t->hist, seq, ev, now) < 0) {
        rc_evbuf_free_(ev);
        return 0;
    }
    memcpy(id_out, ev->id, RC_EVENT_ID_MAX);
    s->ctr.published++;
    /* one reference per shard post; the creator's reference is handed over */
    rc_evbuf_ref_n(ev, s->srv->nshards - 1);
    for (unsigned i = 0; i < s->srv->nshards; i++)
        rc_shard_post(s->srv->shards[i], &ev->posts[i].post);
    return seq;
}

/* Owner shard: assign the id, encode once, post to every shard. */
static void owner_publish(struct rc_shard *s, struct pub_post *p)
{
    struct rc_broker *b = B(s);
    struct topic_state *t = topic_get(b, p->topic, p->topic_len);
    if (!t) {
        p->status = 503;
        return;
    }
    uint64_t key = 0;
    if (p->client_key) {
        key = XXH3_64bits(p->client_key, strlen(p->client_key)) | 1; /* 0 = empty slot */
        for (unsigned i = 0; i < IDEM_KEYS; i++) {
            if (t->idem_hash[i] == key) {
                event_id_format(s->srv, t->idem_seq[i], p->event_id);
                p->duplicate = true;
                p->status = 200;
                return;
            }
        }
    }
    uint64_t seq = owner_fanout(s, t, p->type, &p->data, p->users, p->nusers, p->exclude_user,
                                p->event_id);
    if (!seq) {
        p->status = 503;
        return;
    }
    if (key) {
        t->idem_hash[t->idem_next] = key;
        t->idem_seq[t->idem_next] = seq;
        t->idem_next = (t->idem_next + 1) % IDEM_KEYS;
    }
    p->status = 202;
}

static void pub_free(struct pub_post *p)
{
    free(p->topic);
    free(p->type);
    free(p->client_key);
    json_decref(p->data);
    json_decref(p->req_id);
    json_decref(p->echo);
    for (size_t i = 0; i < p->nusers; i++)
        free(p->users[i]);
    free(p->users);
    free(p->exclude_user);
    free(p);
}

/* Copy the borrowed user targeting of pub into p. 0 or -ENOMEM. */
static int pub_copy_users(struct pub_post *p, const struct rc_publish *pub)
{
    if (pub->exclude_user && !(p->exclude_user = strdup(pub->exclude_user)))
        return -ENOMEM;
    if (!pub->users)
        return 0;
    p->users = calloc(pub->nusers ? pub->nusers : 1, sizeof(*p->users));
    if (!p->users)
        return -ENOMEM;
    for (size_t i = 0; i < pub->nusers; i++) {
        if (!(p->users[i] = strdup(pub->users[i])))
            return -ENOMEM;
        p->nusers = i + 1;
    }
    return 0;
}

/* Origin shard: answer the waiting client. */
static void pub_answer(struct rc_shard *s, struct pub_post *p)
{
    struct rc_conn *c = rc_shard_conn(s, p->conn_id);
    if (c) {
        json_t *body = json_pack("{s:s, s:s}", "id", p->event_id, "topic", p->topic);
        if (p->status >= 400 || !body) {
            if (p->to == RC_REPLY_HTTP)
                rc_http_deferred_error(c, p->serial, 503, "unavailable",
                                       "the event could not be accepted (out of memory)");
            else
                rc_ws_send_error(c, p->req_id, "unavailable",
                                 "the event could not be accepted (out of memory)");
        } else if (p->to == RC_REPLY_HTTP && p->echo) {
            json_object_set_new(p->echo, "id", json_string(p->event_id));
            char *txt = json_dumps(p->echo, JSON_COMPACT);
            if (txt)
                rc_http_deferred_json(c, p->serial, 201, txt, strlen(txt));
            free(txt);
        } else if (p->to == RC_REPLY_HTTP) {
            char *txt = json_dumps(body, JSON_COMPACT);
            if (txt)
                rc_http_deferred_json(c, p->serial, p->duplicate ? 200 : 202, txt, strlen(txt));
            free(txt);
        } else {
            rc_ws_send_reply(c, "published", p->req_id, body);
        }
        json_decref(body);
    }
    pub_free(p);
}

void rc_broker_publish(struct rc_conn *c, uint32_t serial, enum rc_reply_to to,
                       struct rc_publish *pub)
{
    struct rc_shard *s = c->shard;
    struct pub_post *p = calloc(1, sizeof(*p));
    if (p) {
        p->topic = strndup(pub->topic, pub->topic_len);
        p->type = strdup(pub->type ? pub->type : "message");
        p->client_key = pub->client_key ? strdup(pub->client_key) : NULL;
    }
    if (!p || !p->topic || !p->type || (pub->client_key && !p->client_key) ||
        pub_copy_users(p, pub) < 0) {
        if (p)
            pub_free(p);
        json_decref(pub->data);
        json_decref(pub->echo);
        if (to == RC_REPLY_HTTP)
            rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        else
            rc_ws_send_error(c, pub->req_id, "unavailable", "out of memory");
        return;
    }
    p->post.kind = RC_POST_PUBLISH;
    p->state = PUB_TO_OWNER;
    p->origin = s;
    p->conn_id = c->id;
    p->serial = serial;
    p->to = to;
    p->topic_len = pub->topic_len;
    p->data = pub->data;
    p->req_id = pub->req_id ? json_deep_copy(pub->req_id) : NULL;
    p->echo = pub->echo;
    pub->echo = NULL;
    pub->data = NULL;
    unsigned owner = rc_topic_owner(s->srv, p->topic, p->topic_len);
    rc_shard_post(s->srv->shards[owner], &p->post);
}

/* ---- delivery -------------------------------------------------------------------------- */

/* Queue a topic event through a subscription: the shared frame, then the
 * subscription's suffix. 0 or -errno (the connection may be closing). */
static int queue_event(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev)
{
    if (c->proto == RC_PROTO_WS) {
        if (rc_conn_queue_evbuf(c, ev, ev->ws, ev->ws_len) < 0 ||
            rc_conn_queue_sub(c, sub, sub->ws_suffix, RC_WS_SUFFIX_LEN) < 0)
            return -EPIPE;
    } else {
        if (rc_conn_queue_evbuf(c, ev, ev->sse, ev->sse_len) < 0 ||
            rc_conn_queue_sub(c, sub, sub->sse_suffix, RC_SSE_SUFFIX_LEN) < 0)
            return -EPIPE;
    }
    return 0;
}

static void deliver_one(void *ctx, void *owner)
{
    struct rc_broker *b = ctx;
    struct rc_sub *sub = owner;
    struct rc_conn *c = sub->conn;
    struct rc_evbuf *ev = b->cur;

    if (!c || !rc_conn_is_open(c)) {
        b->shard->ctr.drops++;
        return;
    }
    if (RC_UNLIKELY(ev->users || ev->exclude_user) && !rc_evbuf_user_allowed(ev, c->user_id))
        return;
    if (RC_UNLIKELY(sub->resume != NULL)) {
        /* replaying history or initial state: the seam orders live events */
        rc_resume_live(sub->resume, ev->seq, ev);
        if (sub->resume_done)
            resume_finish(sub);
        b->cur_delivered++;
        return;
    }
    if (queue_event(c, sub, ev) == 0)
        b->cur_delivered++;
}

/* The hot path: match one event against this shard's trie and queue it to
 * every matching connection. Allocates nothing once the connections' iovec
 * rings have grown to their working size (tests/test_deliver.c counts).
 * Benchmark before touching: bench/run case i, and bench_trie. */
size_t rc_broker_deliver(struct rc_shard *s, struct rc_evbuf *ev)
{
    struct rc_broker *b = B(s);
    b->cur = ev;
    b->cur_delivered = 0;
    rc_trie_match(b->trie, ev->topic, ev->topic_len, ev->data, deliver_one, b);
    s->ctr.deliveries += b->cur_delivered;
    b->cur = NULL;
    return b->cur_delivered;
}

static bool id_listed(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Broadcast: every WS/SSE connection of this shard named in recipients (or
 * all, when there are none) and not excluded. */
static uint64_t deliver_broadcast(struct rc_shard *s, struct rc_evbuf *ev)
{
    uint64_t reached = 0;
    for (struct rc_conn *c = s->all; c; c = c->all_next) {
        if (!rc_conn_is_open(c) || c->proto == RC_PROTO_HTTP)
            continue;
        if (ev->recipients && !id_listed(ev->recipients, ev->nrecipients, c->id))
            continue;
        if (ev->exclude && id_listed(ev->exclude, ev->nexclude, c->id))
            continue;
        if ((ev->users || ev->exclude_user) && !rc_evbuf_user_allowed(ev, c->user_id))
            continue;
        int rc = c->proto == RC_PROTO_WS ? rc_conn_queue_evbuf(c, ev, ev->ws, ev->ws_len)
                                         : rc_conn_queue_evbuf(c, ev, ev->sse, ev->sse_len);
        if (rc == 0)
            reached++;
    }
    s->ctr.deliveries += reached;
    return reached;
}

/* ---- history, resume and initial state --------------------------------------------------- */

enum hist_kind { HIST_SINCE, HIST_INITIAL, HIST_API };

struct hist_post {
    struct rc_post post;
    bool done;
    enum hist_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char sub_id[RC_SUB_ID_LEN + 1];
    uint32_t serial;
    char *topic; /* topic (SINCE, API) or pattern (INITIAL) */
    size_t topic_len;
    uint64_t after_seq;
    bool stale; /* the cursor is from another run: a gap */
    size_t limit;
    /* answer */
    enum rc_history_result res;
    struct rc_resume_item *items;
    size_t nitems;
    uint64_t cur_seq;
    char *json; /* HIST_API: the rendered answer */
    int status;
};

static void hist_free(struct hist_post *h)
{
    rc_resume_items_release(h->items, h->nitems);
    free(h->items);
    free(h->topic);
    free(h->json);
    free(h);
}

static void send_gap(struct rc_sub *sub, enum rc_resume_gap reason)
{
    struct rc_conn *c = sub->conn;
    static const char *const why[] = {
        [RC_RESUME_GAP_NONE] = "events were missed",
        [RC_RESUME_GAP_TOO_OLD] = "the cursor is older than the retained history (or from an "
                                  "earlier run of the server)",
        [RC_RESUME_GAP_FUTURE] = "the cursor is newer than the topic's last event",
        [RC_RESUME_GAP_OVERFLOW] = "too many live events arrived while replaying",
        [RC_RESUME_GAP_HOLE] = "an event went missing between replay and live delivery",
        [RC_RESUME_GAP_TOO_MANY] = "more retained topics match than include_initial sends",
    };
    char msg[300];
    snprintf(msg, sizeof(msg), "subscription %s: %s; fetch the current state again", sub->id,
             (unsigned)reason < RC_ARRAY_LEN(why) && why[reason] ? why[reason] : why[0]);
    if (c->proto == RC_PROTO_WS) {
        rc_ws_send_error(c, sub->resume_req_id, "history_gap", msg);
    } else {
        json_t *j = json_pack("{s:s, s:s, s:s}", "code", "history_gap", "message", msg,
                              "subscription", sub->id);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (txt) {
            size_t n = strlen(txt);
            char *rec = malloc(n + 32);
            if (rec) {
                int k = snprintf(rec, n + 32, "event: error\ndata: %s\n\n", txt);
                /* on failure the connection is closing: nothing more to say */
                (void)!rc_conn_queue_owned(c, rec, (size_t)k);
            }
            free(txt);
        }
    }
}

/* An initial (retained) event: the same event object with "initial":true, so
 * it is encoded for this delivery (off the hot path). */
static void queue_initial(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev)
{
    static const char mark[] = "\"initial\":true,\"subscription\":";
    const uint8_t *body;
    size_t body_len;
    if (c->proto == RC_PROTO_WS) {
        /* skip the shared frame header (2, 4 or 10 bytes) */
        size_t hl = ev->ws[1] == 126 ? 4 : ev->ws[1] == 127 ? 10 : 2;
        body = ev->ws + hl;
        body_len = ev->ws_len - hl;
    } else {
        body = ev->sse;
        body_len = ev->sse_len;
    }
    /* body ends with "\"subscription\":"; replace that key by mark */
    static const char key[] = "\"subscription\":";
    if (body_len < sizeof(key) - 1)
        return;
    size_t keep = body_len - (sizeof(key) - 1);
    size_t suffix = c->proto == RC_PROTO_WS ? RC_WS_SUFFIX_LEN : RC_SSE_SUFFIX_LEN;
    const uint8_t *suf = c->proto == RC_PROTO_WS ? sub->ws_suffix : sub->sse_suffix;
    size_t payload = keep + sizeof(mark) - 1 + suffix;
    uint8_t *out = malloc(payload + 10);
    if (!out)
        return;
    size_t pos = 0;
    if (c->proto == RC_PROTO_WS)
        pos = rc_ws_frame_header(out, 1, payload, true);
    memcpy(out + pos, body, keep);
    pos += keep;
    memcpy(out + pos, mark, sizeof(mark) - 1);
    pos += sizeof(mark) - 1;
    memcpy(out + pos, suf, suffix);
    pos += suffix;
    if (rc_conn_queue_owned(c, out, pos) < 0)
        return;
}

static void resume_emit(void *ctx, const struct rc_resume_out *out)
{
    struct rc_sub *sub = ctx;
    struct rc_conn *c = sub->conn;
    if (!c || !rc_conn_is_open(c))
        return;
    const struct rc_filter *f = sub->handle ? rc_trie_sub_filter(sub->handle) : NULL;
    switch (out->kind) {
    case RC_RESUME_OUT_REPLAY:
        if (f && !rc_filter_eval(f, out->ev->data))
            return;
        (void)queue_event(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_INITIAL:
        if (f && !rc_filter_eval(f, out->ev->data))
            return;
        queue_initial(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_LIVE:
        (void)queue_event(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_GAP:
        send_gap(sub, out->reason);
        return;
    case RC_RESUME_OUT_CAUGHT_UP:
        sub->resume_done = true;
        return;
    }
}

static void resume_finish(struct rc_sub *sub)
{
    if (!sub->resume)
        return;
    rc_resume_fini(sub->resume);
    free(sub->resume);
    sub->resume = NULL;
    json_decref(sub->resume_req_id);
    sub->resume_req_id = NULL;
    sub->resume_done = false;
}

static struct rc_sub *find_sub(struct rc_conn *c, const char *id)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
        if (strcmp(sub->id, id) == 0)
            return sub;
    return NULL;
}

int rc_broker_resume_check(struct rc_shard *s, const char *pattern, size_t n,
                           const struct rc_sub_opts *o, uint64_t *after, bool *stale,
                           struct rc_err *err)
{
    *after = 0;
    *stale = false;
    if (o->since && o->include_initial) {
        rc_err_set(err, 400, "bad_value",
                   "use either \"since\" (resume) or \"include_initial\" (current state), not "
                   "both");
        return -EINVAL;
    }
    if (!o->since)
        return 0;
    if (rc_topic_is_pattern(pattern, n)) {
        rc_err_set(err, 400, "bad_value",
                   "\"since\" needs an exact topic: event ids count per topic, and %.*s is a "
                   "pattern",
                   (int)n, pattern);
        return -EINVAL;
    }
    int rc = rc_event_cursor(o->since, strlen(o->since), s->srv->epoch_str, after, err);
    if (rc == -ESTALE) {
        *stale = true;
        return 0;
    }
    return rc < 0 ? -EINVAL : 0;
}

int rc_broker_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct rc_resume_cfg rcfg = {0};
    uint64_t after = 0;
    bool stale = false;

    if (!o->since && !o->include_initial)
        return 0;
    if (rc_broker_resume_check(s, sub->pattern, sub->pattern_len, o, &after, &stale, err) < 0)
        return -EINVAL;
    if (o->since) {
        rcfg.mode = RC_RESUME_SINCE;
        rcfg.after_seq = after;
        rcfg.answers = 1;
    } else {
        rcfg.mode = RC_RESUME_INITIAL;
        rcfg.answers = s->srv->nshards;
    }
    rcfg.seqs = sub->handle && rc_trie_sub_filter(sub->handle) ? RC_RESUME_SUBSET
                                                                 : RC_RESUME_EVERY_SEQ;
    struct rc_resume *r = calloc(1, sizeof(*r));
    if (!r || rc_resume_init(r, &rcfg, resume_emit, sub) < 0) {
        free(r);
        rc_err_set(err, 503, "unavailable", "out of memory");
        return -ENOMEM;
    }
    sub->resume = r;
    sub->resume_req_id = o->req_id ? json_deep_copy(o->req_id) : NULL;

    /* the subscription is already in the trie: post the request(s) now */
    unsigned first = 0, last = s->srv->nshards;
    if (rcfg.mode == RC_RESUME_SINCE) {
        first = rc_topic_owner(s->srv, sub->pattern, sub->pattern_len);
        last = first + 1;
    }
    for (unsigned i = first; i < last; i++) {
        struct hist_post *h = calloc(1, sizeof(*h));
        if (h)
            h->topic = strndup(sub->pattern, sub->pattern_len);
        if (!h || !h->topic) {
            free(h);
            /* the seam waits forever for this answer: give up on resuming */
            send_gap(sub, RC_RESUME_GAP_NONE);
            resume_finish(sub);
            return 0;
        }
        h->post.kind = RC_POST_HISTORY;
        h->kind = rcfg.mode == RC_RESUME_SINCE ? HIST_SINCE : HIST_INITIAL;
        h->origin = s;
        h->conn_id = c->id;
        memcpy(h->sub_id, sub->id, sizeof(h->sub_id));
        h->topic_len = sub->pattern_len;
        h->after_seq = after;
        h->stale = stale;
        rc_shard_post(s->srv->shards[i], &h->post);
    }
    return 0;
}

void rc_broker_history(struct rc_conn *c, uint32_t serial, const char *topic, size_t n,
                       const char *since, size_t limit)
{
    struct rc_shard *s = c->shard;
    struct rc_err err = {0};
    uint64_t after = 0;
    bool stale = false, have_since = since != NULL;
    if (since) {
        int rc = rc_event_cursor(since, strlen(since), s->srv->epoch_str, &after, &err);
        if (rc == -ESTALE) {
            stale = true;
        } else if (rc < 0) {
            rc_http_deferred_error(c, serial, 400, "bad_event_id", err.msg);
            return;
        }
    }
    struct hist_post *h = calloc(1, sizeof(*h));
    if (h)
        h->topic = strndup(topic, n);
    if (!h || !h->topic) {
        free(h);
        rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        return;
    }
    h->post.kind = RC_POST_HISTORY;
    h->kind = HIST_API;
    h->origin = s;
    h->conn_id = c->id;
    h->serial = serial;
    h->topic_len = n;
    h->after_seq = have_since ? after : UINT64_MAX; /* MAX: the last `limit` */
    h->stale = stale;
    h->limit = limit;
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv, topic, n)], &h->post);
}

static int api_item(void *ctx, uint64_t seq, struct rc_evbuf *ev, uint64_t at_ms)
{
    (void)seq, (void)at_ms;
    json_t *arr = ctx;
    /* a copy: the evbuf's data is shared with every shard */
    json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "id", ev->id, "type",
                                         ev->type ? ev->type : "message", "data",
                                         ev->data ? json_deep_copy(ev->data) : json_null()));
    return 0;
}

/* Owner shard: answer a history request. */
static void owner_history(struct rc_shard *s, struct hist_post *h)
{
    struct rc_broker *b = B(s);
    uint64_t now = rc_now_ms();
    if (h->kind == HIST_INITIAL) {
        /* every retained topic of this shard that the pattern matches */
        size_t cap = 0;
        for (size_t i = 0; i < b->topics_cap; i++) {
            struct topic_state *t = b->topics[i];
            uint64_t seq;
            struct rc_evbuf *ev = t ? rc_history_latest(&t->hist, &seq) : NULL;
            if (!ev || !rc_topic_match(h->topic, h->topic_len, t->name, t->len))
                continue;
            if (h->nitems == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct rc_resume_item *ni = realloc(h->items, ncap * sizeof(*ni));
                if (!ni)
                    break;
                h->items = ni;
                cap = ncap;
            }
            rc_evbuf_ref(ev);
            h->items[h->nitems].seq = seq;
            h->items[h->nitems].ev = ev;
            h->nitems++;
        }
        return;
    }
    struct topic_state *t = topic_find(b, h->topic, h->topic_len);
    struct rc_history empty = {0};
    struct rc_history *hist = t ? &t->hist : &empty;
    if (t)
        rc_history_trim(hist, now);
    if (h->kind == HIST_SINCE) {
        h->cur_seq = rc_history_seq(hist);
        if (h->stale) {
            h->res = RC_HISTORY_GAP;
            return;
        }
        size_t cap = rc_history_len(hist);
        h->items = cap ? calloc(cap, sizeof(*h->items)) : NULL;
        h->res = rc_history_items_since(hist, h->after_seq, now, h->items, cap, &h->nitems,
                                        &h->cur_seq);
        return;
    }
    /* HIST_API */
    uint64_t after = h->after_seq;
    if (after == UINT64_MAX) {
        uint64_t cur = rc_history_seq(hist);
        uint64_t floor = rc_history_floor(hist);
        after = cur > h->limit ? cur - h->limit : 0;
        if (after < floor)
            after = floor;
    }
    json_t *events = json_array();
    uint64_t cur = 0;
    enum rc_history_result res = h->stale ? RC_HISTORY_GAP : RC_HISTORY_OK;
    if (!h->stale)
        res = rc_history_since(hist, after, now, api_item, events, &cur);
    cur = rc_history_seq(hist);
    while (json_array_size(events) > h->limit)
        json_array_remove(events, json_array_size(events) - 1);
    char last[RC_EVENT_ID_MAX];
    event_id_format(s->srv, cur, last);
    json_t *body = json_pack("{s:s%, s:o, s:s, s:b}", "topic", h->topic, h->topic_len, "events",
                             events, "last_id", last, "gap", res != RC_HISTORY_OK);
    if (body && res == RC_HISTORY_FUTURE)
        json_object_set_new(body, "reason", json_string("cursor is newer than the last event"));
    else if (body && res == RC_HISTORY_GAP)
        json_object_set_new(body, "reason",
                            json_string("events after the cursor are no longer retained"));
    h->json = body ? json_dumps(body, JSON_COMPACT) : NULL;
    h->status = h->json ? 200 : 503;
    json_decref(body);
}

/* Origin shard: hand the answer to the waiting subscription or request. */
static void history_answer(struct rc_shard *s, struct hist_post *h)
{
    struct rc_conn *c = rc_shard_conn(s, h->conn_id);
    if (c && h->kind == HIST_API) {
        if (h->json)
            rc_http_deferred_json(c, h->serial, h->status, h->json, strlen(h->json));
        else
            rc_http_deferred_error(c, h->serial, 503, "unavailable", "out of memory");
    } else if (c) {
        struct rc_sub *sub = find_sub(c, h->sub_id);
        if (sub && sub->resume) {
            if (h->kind == HIST_SINCE)
                rc_resume_answer(sub->resume, h->res, h->items, h->nitems, h->cur_seq);
            else
                rc_resume_initial(sub->resume, h->items, h->nitems);
            if (sub->resume_done)
                resume_finish(sub);
        }
    }
    hist_free(h);
}

/* ---- presence -------------------------------------------------------------------------- */

struct pres_post {
    struct rc_post post;
    bool done;
    enum pres_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t topic_len;
    char user[129]; /* "" = anonymous */
    /* LIST */
    enum rc_reply_to to;
    uint32_t serial;
    json_t *req_id;
    size_t offset, limit;
    char *json;
};

static bool presence_on(const struct rc_shard *s, const char *topic, size_t n)
{
    const struct rc_auth_rule *r = s->srv->auth ? rc_auth_rule_for(s->srv->auth, topic, n) : NULL;
    if (r && (r->set & RC_AUTH_RULE_PRESENCE))
        return r->presence;
    return s->cfg->presence;
}

static void pres_free(struct pres_post *p)
{
    json_decref(p->req_id);
    free(p->json);
    free(p);
}

/* Subscriber shard: tell the owner that sub's connection joined or left. */
static void presence_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                          enum pres_kind kind)
{
    struct pres_post *p = calloc(1, sizeof(*p));
    if (!p)
        return; /* presence counts drift by one; nothing else breaks */
    p->post.kind = RC_POST_PRESENCE;
    p->kind = kind;
    p->origin = s;
    p->conn_id = c->id;
    memcpy(p->topic, sub->pattern, sub->pattern_len);
    p->topic_len = sub->pattern_len;
    /* leave with the identity the join used, even if the connection has
     * authenticated in between */
    if (kind == PRES_JOIN)
        memcpy(sub->presence_user, c->user_id, sizeof(sub->presence_user));
    memcpy(p->user, sub->presence_user, sizeof(p->user));
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv, p->topic, p->topic_len)], &p->post);
}

static int list_user(void *ctx, const struct rc_presence_user *u)
{
    json_t *arr = ctx;
    json_t *o = json_object();
    if (u->user.p) {
        json_object_set_new(o, "user_id", json_stringn(u->user.p, u->user.n));
    } else {
        char idbuf[RC_CONN_ID_HEX + 1];
        rc_conn_id_format(u->conn, idbuf);
        json_object_set_new(o, "user_id", json_null());
        json_object_set_new(o, "connection_id", json_string(idbuf));
    }
    json_object_set_new(o, "connections", json_integer(u->connections));
    json_array_append_new(arr, o);
    return 0;
}

/* Owner shard: apply a join/leave (announcing the user's first/last
 * connection on the topic as an event) or render a listing. */
static void owner_presence(struct rc_shard *s, struct pres_post *p)
{
    struct rc_broker *b = B(s);
    struct rc_slice topic = {p->topic, p->topic_len};
    struct rc_slice user = {p->user, strlen(p->user)};
    if (p->kind == PRES_LIST) {
        json_t *users = json_array();
        size_t nu = 0, nc = 0, next = 0;
        rc_presence_count(b->presence, topic, &nu, &nc);
        rc_presence_list(b->presence, topic, p->offset, p->limit, list_user, users, &next);
        json_t *body = json_pack("{s:s%, s:o, s:I, s:I}", "topic", p->topic, p->topic_len,
                                 "users", users, "total_users", (json_int_t)nu,
                                 "total_connections", (json_int_t)nc);
        if (body && next)
            json_object_set_new(body, "next_offset", json_integer((json_int_t)next));
        p->json = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        return;
    }
    bool changed = false;
    if (p->kind == PRES_JOIN) {
        if (rc_presence_join(b->presence, topic, user, p->conn_id, &changed) < 0)
            return;
    } else if (rc_presence_leave(b->presence, topic, user, p->conn_id, &changed) < 0) {
        return;
    }
    if (!changed)
        return;
    struct topic_state *t = topic_get(b, p->topic, p->topic_len);
    if (!t)
        return;
    json_t *data = json_object();
    json_object_set_new(data, "topic", json_stringn(p->topic, p->topic_len));
    if (user.n) {
        json_object_set_new(data, "user_id", json_string(p->user));
    } else {
        char idbuf[RC_CONN_ID_HEX + 1];
        rc_conn_id_format(p->conn_id, idbuf);
        json_object_set_new(data, "user_id", json_null());
        json_object_set_new(data, "connection_id", json_string(idbuf));
    }
    char id[RC_EVENT_ID_MAX];
    const char *type = p->kind == PRES_JOIN ? "presence.joined" : "presence.left";
    if (!owner_fanout(s, t, type, &data, NULL, 0, NULL, id))
        json_decref(data);
}

static void presence_answer(struct rc_shard *s, struct pres_post *p)
{
    struct rc_conn *c = rc_shard_conn(s, p->conn_id);
    if (c && p->to == RC_REPLY_HTTP) {
        if (p->json)
            rc_http_deferred_json(c, p->serial, 200, p->json, strlen(p->json));
        else
            rc_http_deferred_error(c, p->serial, 503, "unavailable", "out of memory");
    } else if (c) {
        json_t *data = p->json ? json_loads(p->json, 0, NULL) : NULL;
        if (data)
            rc_ws_send_reply(c, "presence", p->req_id, data);
        else
            rc_ws_send_error(c, p->req_id, "unavailable", "out of memory");
        json_decref(data);
    }
    pres_free(p);
}

void rc_broker_presence_list(struct rc_conn *c, uint32_t serial, enum rc_reply_to to,
                             const json_t *req_id, const char *topic, size_t n, size_t offset,
                             size_t limit)
{
    struct rc_shard *s = c->shard;
    struct pres_post *p = calloc(1, sizeof(*p));
    if (!p || n > RC_TOPIC_MAX_LEN) {
        free(p);
        if (to == RC_REPLY_HTTP)
            rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        else
            rc_ws_send_error(c, req_id, "unavailable", "out of memory");
        return;
    }
    p->post.kind = RC_POST_PRESENCE;
    p->kind = PRES_LIST;
    p->origin = s;
    p->conn_id = c->id;
    memcpy(p->topic, topic, n);
    p->topic_len = n;
    p->to = to;
    p->serial = serial;
    p->req_id = req_id ? json_deep_copy(req_id) : NULL;
    p->offset = offset;
    p->limit = limit;
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv, topic, n)], &p->post);
}

bool rc_broker_presence_enabled(const struct rc_shard *s, const char *topic, size_t n)
{
    return presence_on(s, topic, n);
}

/* ---- gathers (stats, broadcast) --------------------------------------------------------- */

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
        j->post.kind = RC_POST_STATS_REQ;
        j->origin = s;
        j->g = g;
        j->limit = g->limit;
        if (ev) {
            rc_evbuf_ref(ev);
            j->ev = ev;
        }
        rc_shard_post(s->srv->shards[i], &j->post);
    }
}

static json_t *shard_stats_part(struct rc_shard *s, size_t limit)
{
    json_t *part = json_object();
    json_t *subs = json_object();
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
        if (listed < limit) {
            char idbuf[RC_CONN_ID_HEX + 1];
            rc_conn_id_format(c->id, idbuf);
            json_t *arr = json_array();
            for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
                json_array_append_new(arr, json_string(sub->pattern));
            json_object_set_new(subs, idbuf, arr);
            listed++;
        }
    }
    const struct rc_counters *k = &s->ctr;
    const struct {
        const char *name;
        uint64_t v;
    } counters[] = {
        {"accepted", k->accepted},
        {"closed", k->closed},
        {"http_requests", k->http_requests},
        {"http_errors", k->http_errors},
        {"ws_upgrades", k->ws_upgrades},
        {"sse_streams", k->sse_streams},
        {"published", k->published},
        {"deliveries", k->deliveries},
        {"drops", k->drops},
        {"slow_consumer_disconnects", k->slow_consumer_disconnects},
        {"heartbeat_timeouts", k->heartbeat_timeouts},
        {"handshake_timeouts", k->handshake_timeouts},
        {"request_timeouts", k->request_timeouts},
        {"refused_connections", k->refused_max_conns + k->refused_per_ip},
        {"refused_max_connections", k->refused_max_conns},
        {"refused_per_ip", k->refused_per_ip},
        {"refused_handshake_rate", k->refused_handshake_rate},
        {"auth_failures", k->auth_failures},
        {"auth_timeouts", k->auth_timeouts},
        {"token_expiries", k->token_expiries},
        {"forbidden", k->forbidden},
        {"rate_limited", k->rate_limited},
        {"rate_limit_disconnects", k->rate_limit_disconnects},
        {"recv_enobufs", k->recv_enobufs},
        {"sends", k->sends},
        {"send_iovecs", k->send_iovecs},
        {"wakeups", k->wakeups},
    };
    json_t *ctr = json_object();
    for (size_t i = 0; i < RC_ARRAY_LEN(counters); i++)
        json_object_set_new(ctr, counters[i].name, json_integer((json_int_t)counters[i].v));
    json_object_set_new(part, "connections", json_integer((json_int_t)conns));
    json_object_set_new(part, "authenticated", json_integer((json_int_t)authed));
    json_object_set_new(part, "subscription_count", json_integer((json_int_t)nsubs));
    json_object_set_new(part, "subscriptions", subs);
    json_object_set_new(part, "users", users);
    json_object_set_new(part, "counters", ctr);
    json_object_set_new(part, "open_connections", json_integer((json_int_t)s->nconns));
    return part;
}

static void run_job(struct rc_shard *s, struct job_post *j)
{
    if (j->ev) {
        j->reached = deliver_broadcast(s, j->ev);
        rc_evbuf_unref(j->ev);
        j->ev = NULL;
    } else {
        j->part = shard_stats_part(s, j->limit);
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
        json_object_set_new(g->acc, "counters", json_object());
        json_object_set_new(g->acc, "shards", json_array());
        g->users = json_object();
    }
    add_counter(g->acc, "total_connections", json_object_get(part, "connections"));
    add_counter(g->acc, "authenticated_connections", json_object_get(part, "authenticated"));
    add_counter(g->acc, "total_subscriptions", json_object_get(part, "subscription_count"));
    json_t *subs = json_object_get(g->acc, "subscriptions");
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(part, "subscriptions"), key, v)
    {
        if (g->listed < g->limit) {
            json_object_set(subs, key, v);
            g->listed++;
        }
    }
    size_t i;
    json_array_foreach(json_object_get(part, "users"), i, v)
        json_object_set_new(g->users, json_string_value(v), json_true());
    json_t *ctr = json_object_get(g->acc, "counters");
    json_object_foreach(json_object_get(part, "counters"), key, v) add_counter(ctr, key, v);
    json_array_append_new(json_object_get(g->acc, "shards"),
                          json_pack("{s:O, s:O}", "connections",
                                    json_object_get(part, "open_connections"), "counters",
                                    json_object_get(part, "counters")));
}

static void gather_finish(struct rc_shard *s, struct gather *g)
{
    struct rc_conn *c = rc_shard_conn(s, g->conn_id);
    if (c && g->kind == JOB_BROADCAST && g->echo) {
        json_object_set_new(g->echo, "connections", json_integer((json_int_t)g->reached));
        char *txt = json_dumps(g->echo, JSON_COMPACT);
        if (txt)
            rc_http_deferred_json(c, g->serial, 202, txt, strlen(txt));
        free(txt);
    } else if (c && g->kind == JOB_BROADCAST) {
        char txt[32];
        int n = snprintf(txt, sizeof(txt), "%llu", (unsigned long long)g->reached);
        rc_http_deferred_json(c, g->serial, 200, txt, (size_t)n);
    } else if (c) {
        json_t *acc = g->acc ? g->acc : json_object();
        json_object_set_new(acc, "unique_users",
                            json_integer((json_int_t)(g->users ? json_object_size(g->users) : 0)));
        json_object_set_new(acc, "pubsub_backend", json_string("memory"));
        json_object_set_new(acc, "shard_count", json_integer((json_int_t)s->srv->nshards));
        json_object_set_new(
            acc, "uptime_seconds",
            json_integer((json_int_t)((rc_now_ms() - s->srv->start_mono_ms) / 1000u)));
        json_object_set_new(acc, "subscriptions_limit", json_integer((json_int_t)g->limit));
        char *txt = json_dumps(acc, JSON_COMPACT);
        if (txt)
            rc_http_deferred_json(c, g->serial, 200, txt, strlen(txt));
        else
            rc_http_deferred_error(c, g->serial, 503, "unavailable", "out of memory");
        free(txt);
        if (!g->acc)
            json_decref(acc);
    }
    json_decref(g->acc);
    json_decref(g->users);
    json_decref(g->echo);
    free(g);
}

static void job_done(struct rc_shard *s, struct job_post *j)
{
    struct gather *g = j->g;
    if (g->kind == JOB_BROADCAST)
        g->reached += j->reached;
    else if (j->part)
        stats_merge(g, j->part);
    json_decref(j->part);
    free(j);
    if (--g->pending == 0)
        gather_finish(s, g);
}

void rc_broker_broadcast(struct rc_conn *c, uint32_t serial, struct rc_evbuf *ev)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        rc_evbuf_unref(ev);
        rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        return;
    }
    g->kind = JOB_BROADCAST;
    g->conn_id = c->id;
    g->serial = serial;
    gather_start(c, g, ev);
    rc_evbuf_unref(ev);
    if (g->pending == 0)
        gather_finish(c->shard, g);
}

void rc_broker_publish_users(struct rc_conn *c, uint32_t serial, struct rc_publish *pub)
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
    if (!ev || !g || rc_evbuf_encode(ev, pub->type ? pub->type : "message", pub->data, NULL,
                                     NULL) < 0 ||
        rc_evbuf_set_users(ev, pub->users, pub->nusers, pub->exclude_user) < 0) {
        if (ev)
            rc_evbuf_unref(ev);
        free(g);
        json_decref(pub->data);
        pub->data = NULL;
        rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        return;
    }
    json_decref(pub->data); /* encoded; user events are not filtered */
    pub->data = NULL;
    g->kind = JOB_BROADCAST;
    g->conn_id = c->id;
    g->serial = serial;
    g->echo = json_pack("{s:s}", "id", ev->id);
    json_t *arr = json_array();
    for (size_t i = 0; i < pub->nusers; i++)
        json_array_append_new(arr, json_string(pub->users[i]));
    json_object_set_new(g->echo, "user_ids", arr);
    gather_start(c, g, ev);
    rc_evbuf_unref(ev);
    if (g->pending == 0)
        gather_finish(s, g);
}

void rc_broker_stats(struct rc_conn *c, uint32_t serial, size_t limit)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        rc_http_deferred_error(c, serial, 503, "unavailable", "out of memory");
        return;
    }
    g->kind = JOB_STATS;
    g->conn_id = c->id;
    g->serial = serial;
    g->limit = limit;
    gather_start(c, g, NULL);
    if (g->pending == 0)
        gather_finish(c->shard, g);
}

/* ---- inbox dispatch ----------------------------------------------------------------------- */

void rc_broker_on_post(struct rc_shard *s, struct rc_post *p)
{
    switch (p->kind) {
    case RC_POST_EVENT: {
        struct rc_evbuf_post *ep = RC_CONTAINER_OF(p, struct rc_evbuf_post, post);
        rc_broker_deliver(s, ep->ev);
        rc_evbuf_unref(ep->ev);
        break;
    }
    case RC_POST_PUBLISH: {
        struct pub_post *pp = RC_CONTAINER_OF(p, struct pub_post, post);
        if (pp->state == PUB_TO_OWNER) {
            owner_publish(s, pp);
            pp->state = PUB_DONE;
            rc_shard_post(pp->origin, &pp->post);
        } else {
            pub_answer(s, pp);
        }
        break;
    }
    case RC_POST_STATS_REQ: {
        struct job_post *j = RC_CONTAINER_OF(p, struct job_post, post);
        if (j->done)
            job_done(s, j);
        else
            run_job(s, j);
        break;
    }
    case RC_POST_HISTORY: {
        struct hist_post *h = RC_CONTAINER_OF(p, struct hist_post, post);
        if (h->done) {
            history_answer(s, h);
        } else {
            owner_history(s, h);
            h->done = true;
            rc_shard_post(h->origin, &h->post);
        }
        break;
    }
    case RC_POST_PRESENCE: {
        struct pres_post *pp = RC_CONTAINER_OF(p, struct pres_post, post);
        if (pp->kind != PRES_LIST) {
            owner_presence(s, pp);
            pres_free(pp);
        } else if (pp->done) {
            presence_answer(s, pp);
        } else {
            owner_presence(s, pp);
            pp->done = true;
            rc_shard_post(pp->origin, &pp->post);
        }
        break;
    }
    case RC_POST_REPLY:
    case RC_POST_DIRECT:
        free(p);
        break;
    case RC_POST_DRAIN:
    case RC_POST_STOP:
        break; /* handled by the shard loop; embedded, never freed */
    }
}

void rc_broker_discard_post(struct rc_post *p)
{
    switch (p->kind) {
    case RC_POST_EVENT:
        rc_evbuf_unref(RC_CONTAINER_OF(p, struct rc_evbuf_post, post)->ev);
        break;
    case RC_POST_PUBLISH:
        pub_free(RC_CONTAINER_OF(p, struct pub_post, post));
        break;
    case RC_POST_HISTORY:
        hist_free(RC_CONTAINER_OF(p, struct hist_post, post));
        break;
    case RC_POST_PRESENCE:
        pres_free(RC_CONTAINER_OF(p, struct pres_post, post));
        break;
    case RC_POST_STATS_REQ: {
        /* a gather whose origin is gone: free the job; the gather itself is
         * freed by its origin shard's teardown only if it completes, so at
         * shutdown it may leak one small object by design */
        struct job_post *j = RC_CONTAINER_OF(p, struct job_post, post);
        if (j->ev)
            rc_evbuf_unref(j->ev);
        json_decref(j->part);
        free(j);
        break;
    }
    default:
        free(p);
        break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int rc_broker_init(struct rc_shard *s)
{
    struct rc_broker *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->shard = s;
    b->trie = rc_trie_new();
    if (!b->trie) {
        free(b);
        return -ENOMEM;
    }
    rc_pool_init(&b->sub_pool, sizeof(struct rc_sub), 256, 0);
    b->presence = rc_presence_new(0);
    if (!b->presence) {
        rc_trie_free(b->trie);
        free(b);
        return -ENOMEM;
    }
    s->broker = b;
    return 0;
}

void rc_broker_fini(struct rc_shard *s)
{
    struct rc_broker *b = s->broker;
    if (!b)
        return;
    for (size_t i = 0; i < b->topics_cap; i++) {
        if (b->topics[i]) {
            rc_history_fini(&b->topics[i]->hist);
            free(b->topics[i]->name);
            free(b->topics[i]);
        }
    }
    free(b->topics);
    rc_trie_free(b->trie);
    rc_presence_free(b->presence);
    rc_pool_fini(&b->sub_pool);
    free(b);
    s->broker = NULL;
}
