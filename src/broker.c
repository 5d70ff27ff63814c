/* broker.c - subscriptions, topic ownership, publish and fan-out (see
 * broker.h for the message flow and ownership). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>

#include "ringcast/api_store.h"
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

#include "broker_internal.h"

/* ---- subscriptions -------------------------------------------------------------- */

/* rc_segref free: the last reference (the connection's or a queued suffix's) went */
static void sub_free(struct rc_segref *r)
{
    struct rc_sub *sub = RC_CONTAINER_OF(r, struct rc_sub, ref);
    free(sub->pattern);
    free(sub->filter_text);
    /* subs never leave their shard, so this runs on the pool's thread */
    rc_pool_put(&sub->broker->sub_pool, sub);
}

void rc_sub_ref(struct rc_sub *sub)
{
    rc_segref_ref(&sub->ref);
}

void rc_sub_unref(struct rc_sub *sub)
{
    rc_segref_unref(&sub->ref);
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
    sub->ref.refs = 1;
    sub->ref.free = sub_free;
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
    if (!rc_topic_is_pattern(pattern, n)) {
        /* keeps the topic's state (seq, history) from the idle sweep */
        sub->held = true;
        brk_claim_post(s, sub, c, CLAIM_HOLD);
    }
    if (!rc_topic_is_pattern(pattern, n) && brk_presence_on(s, pattern, n)) {
        sub->presence = true;
        brk_presence_post(s, sub, c, PRES_JOIN);
    }
    if (brk_max_subscribers(s, pattern, n)) {
        /* the owner decides; nothing is delivered until it says yes */
        sub->claim_pending = true;
        brk_claim_post(s, sub, c, CLAIM_TAKE);
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
        brk_presence_post(b->shard, sub, c, PRES_LEAVE);
    if (sub->claimed)
        brk_claim_post(b->shard, sub, c, CLAIM_RELEASE);
    if (sub->held)
        brk_claim_post(b->shard, sub, c, CLAIM_UNHOLD);
    rc_trie_remove(b->trie, sub->handle);
    brk_resume_finish(sub);
    json_decref(sub->pending_reply);
    json_decref(sub->pending_req_id);
    sub->pending_reply = sub->pending_req_id = NULL;
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
    free(c->sse_cursor);
    c->sse_cursor = NULL;
}

int rc_broker_stream_start(struct rc_conn *c, size_t ntopics, const struct rc_stream_pos *pos)
{
    if (ntopics > RC_STREAM_TOPICS_MAX)
        return -EINVAL;
    struct rc_sse_cursor *cur = calloc(1, sizeof(*cur) + ntopics * sizeof(cur->pos[0]));
    if (!cur)
        return -ENOMEM;
    cur->n = (uint32_t)ntopics;
    if (pos)
        memcpy(cur->pos, pos, ntopics * sizeof(cur->pos[0]));
    free(c->sse_cursor);
    c->sse_cursor = cur;
    return 0;
}

/* Queue "id: <stream id>" plus end ("\n\n": the end of an event record, or an
 * id-only record, which moves the client's Last-Event-ID without an event). */
static int queue_stream_id(struct rc_conn *c, const char *end)
{
    const struct rc_sse_cursor *cur = c->sse_cursor;
    size_t endn = strlen(end);
    char *buf = malloc(4 + RC_STREAM_ID_MAX + endn);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, "id: ", 4);
    ssize_t n = rc_stream_id_format(buf + 4, RC_STREAM_ID_MAX, cur->pos, cur->n);
    if (n < 0)
        n = 0; /* cannot happen (n <= RC_STREAM_TOPICS_MAX): an empty id, never a wrong one */
    memcpy(buf + 4 + n, end, endn);
    return rc_conn_queue_owned(c, buf, 4 + (size_t)n + endn);
}

int brk_stream_id_record(struct rc_conn *c)
{
    return c->sse_cursor ? queue_stream_id(c, "\n\n") : 0;
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

struct topic_state *brk_topic_find(struct rc_broker *b, const char *name, size_t len)
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

/* Rehash the owned-topic table into ncap slots (a power of two that keeps the
 * load <= 1/2). 0 or -ENOMEM (the old table stays). */
static int table_resize(struct rc_broker *b, size_t ncap)
{
    struct topic_state **nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return -ENOMEM;
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
    b->sweep_pos = 0;
    return 0;
}

/* Empty slot i with backward-shift deletion (no tombstones): every later
 * entry of the probe run whose home is not in (i, j] moves up. */
static void table_delete(struct rc_broker *b, size_t i)
{
    size_t mask = b->topics_cap - 1;
    b->topics[i] = NULL;
    for (size_t j = (i + 1) & mask; b->topics[j]; j = (j + 1) & mask) {
        size_t k = b->topics[j]->hash & mask;
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (stays)
            continue;
        b->topics[i] = b->topics[j];
        b->topics[j] = NULL;
        i = j;
    }
    b->ntopics--;
}

/* A fresh epoch for a new topic incarnation: the wall clock in ms << 20, made
 * strictly increasing per shard, in base 36 (at most 13 digits). A restart
 * (later clock) or a recreated topic never reuses an earlier incarnation's
 * epoch, so a cursor of the old one is answered as a gap, not a wrong replay. */
static void topic_epoch_make(struct rc_broker *b, char out[RC_EPOCH_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t v = ms << 20;
    if (v <= b->epoch_last)
        v = b->epoch_last + 1;
    b->epoch_last = v;
    char tmp[RC_EPOCH_MAX];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v && n < RC_EPOCH_MAX - 1);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

struct topic_state *brk_topic_get(struct rc_broker *b, const char *name, size_t len)
{
    uint64_t h = XXH3_64bits(name, len);
    if (b->ntopics * 2 >= b->topics_cap &&
        table_resize(b, b->topics_cap ? b->topics_cap * 2 : 256) < 0)
        return NULL;
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
    t->last_ms = rc_now_ms();
    topic_epoch_make(b, t->epoch);
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

static void topic_free(struct topic_state *t)
{
    rc_history_fini(&t->hist);
    free(t->name);
    free(t);
}

/* Whether nothing keeps t: no subscription holds it, no presence member, no
 * kept history (after trimming) and no publish for idle ms. */
static bool topic_is_idle(struct rc_broker *b, struct topic_state *t, uint64_t now, uint64_t idle)
{
    if (t->holds || t->subscribers || now < t->last_ms || now - t->last_ms < idle)
        return false;
    rc_history_trim(&t->hist, now);
    if (rc_history_len(&t->hist))
        return false;
    size_t users = 0, conns = 0;
    rc_presence_count(b->presence, (struct rc_slice){t->name, t->len}, &users, &conns);
    return conns == 0;
}

void rc_broker_tick(struct rc_shard *s)
{
    struct rc_broker *b = B(s);
    uint64_t idle = s->cfg->topic_idle_timeout;
    if (!b || !idle || !b->topics_cap || s->now_ms < b->next_sweep_ms)
        return;
    b->next_sweep_ms = s->now_ms + RC_TOPIC_SWEEP_MS;
    unsigned looked = 0, freed = 0;
    while (looked < RC_TOPIC_SWEEP_SLOTS && freed < RC_TOPIC_SWEEP_FREES) {
        if (b->sweep_pos >= b->topics_cap) {
            b->sweep_pos = 0;
            /* a full round: give back table memory once it is mostly empty */
            if (b->topics_cap > 256 && b->ntopics * 8 < b->topics_cap)
                (void)table_resize(b, b->topics_cap / 2);
            break;
        }
        looked++;
        struct topic_state *t = b->topics[b->sweep_pos];
        if (!t || !topic_is_idle(b, t, s->now_ms, idle)) {
            b->sweep_pos++;
            continue;
        }
        /* the slot may receive a shifted entry: look at it again */
        table_delete(b, b->sweep_pos);
        topic_free(t);
        s->ctr.topics_evicted++;
        freed++;
    }
}

size_t rc_broker_owned_topics(const struct rc_shard *s)
{
    return s->broker ? s->broker->ntopics : 0;
}

void brk_event_id_format(const struct topic_state *t, uint64_t seq, char out[RC_EVENT_ID_MAX])
{
    snprintf(out, RC_EVENT_ID_MAX, "%s-%llu", t->epoch, (unsigned long long)seq);
}

/* Owner shard: give the next event of topic t an id, encode it once, keep it
 * in the topic's history and post it to every shard. *data is moved into the
 * event (from then on only the evbuf references it, and the evbuf's atomic
 * refcount decides who frees it). Returns the event's seq (its id in id_out),
 * or 0 when out of memory (*data is then still the caller's). */
uint64_t brk_owner_fanout(struct rc_shard *s, struct topic_state *t, const char *type,
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
    brk_event_id_format(t, seq, ev->id);
    if (!ev->topic || rc_evbuf_encode(ev, type, *data, NULL, NULL) < 0 ||
        rc_evbuf_set_users(ev, users, nusers, exclude) < 0) {
        rc_evbuf_free_(ev);
        return 0;
    }
    ev->data = *data;
    *data = NULL;
    uint64_t now = rc_now_ms();
    t->last_ms = now;
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
    struct topic_state *t = brk_topic_get(b, p->topic, p->topic_len);
    if (!t) {
        p->status = 503;
        return;
    }
    uint64_t key = 0;
    if (p->client_key) {
        key = XXH3_64bits(p->client_key, strlen(p->client_key)) | 1; /* 0 = empty slot */
        for (unsigned i = 0; i < IDEM_KEYS; i++) {
            if (t->idem_hash[i] == key) {
                brk_event_id_format(t, t->idem_seq[i], p->event_id);
                p->duplicate = true;
                p->status = 200;
                return;
            }
        }
    }
    uint64_t seq = brk_owner_fanout(s, t, p->type, &p->data, p->users, p->nusers, p->exclude_user,
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
    unsigned owner = rc_topic_owner(s->srv->nshards, p->topic, p->topic_len);
    rc_shard_post(s->srv->shards[owner], &p->post);
}

/* ---- delivery -------------------------------------------------------------------------- */

/* Queue a topic event through a subscription: the shared frame, then the
 * subscription's suffix. 0 or -errno (the connection may be closing). */
int brk_queue_event(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev)
{
    if (c->proto == RC_PROTO_WS) {
        if (rc_conn_queue_evbuf(c, ev, ev->ws, ev->ws_len) < 0 ||
            rc_conn_queue_sub(c, &sub->ref, sub->ws_suffix, RC_WS_SUFFIX_LEN) < 0)
            return -EPIPE;
    } else if (RC_UNLIKELY(c->sse_cursor != NULL)) {
        /* a stream of several topics: the record ends with its stream id, which
         * overrides the shared image's own id line */
        if (sub->stream_slot && sub->stream_slot <= c->sse_cursor->n)
            memcpy(c->sse_cursor->pos[sub->stream_slot - 1].id, ev->id, RC_EVENT_ID_MAX);
        if (rc_conn_queue_evbuf(c, ev, ev->sse, ev->sse_len) < 0 ||
            rc_conn_queue_sub(c, &sub->ref, sub->sse_suffix, RC_SSE_SUFFIX_LEN - 1) < 0 ||
            queue_stream_id(c, "\n\n") < 0)
            return -EPIPE;
    } else {
        if (rc_conn_queue_evbuf(c, ev, ev->sse, ev->sse_len) < 0 ||
            rc_conn_queue_sub(c, &sub->ref, sub->sse_suffix, RC_SSE_SUFFIX_LEN) < 0)
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
    if (RC_UNLIKELY(sub->claim_pending))
        return; /* max_subscribers: the owner has not admitted it yet */
    if (RC_UNLIKELY(sub->resume != NULL)) {
        /* replaying history or initial state: the seam orders live events */
        rc_resume_live(sub->resume, ev->seq, ev);
        if (sub->resume_done)
            brk_resume_finish(sub);
        b->cur_delivered++;
        return;
    }
    if (brk_queue_event(c, sub, ev) == 0)
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
uint64_t brk_deliver_broadcast(struct rc_shard *s, struct rc_evbuf *ev)
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
        if (rc == 0 && c->proto == RC_PROTO_SSE && c->sse_cursor)
            (void)brk_stream_id_record(c); /* undo the broadcast id's move of Last-Event-ID */
        if (rc == 0)
            reached++;
    }
    s->ctr.deliveries += reached;
    return reached;
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
            brk_job_done(s, j);
        else
            brk_run_job(s, j);
        break;
    }
    case RC_POST_HISTORY: {
        struct hist_post *h = RC_CONTAINER_OF(p, struct hist_post, post);
        if (h->done) {
            brk_history_answer(s, h);
        } else {
            brk_owner_history(s, h);
            h->done = true;
            rc_shard_post(h->origin, &h->post);
        }
        break;
    }
    case RC_POST_PRESENCE: {
        struct pres_post *pp = RC_CONTAINER_OF(p, struct pres_post, post);
        if (pp->kind != PRES_LIST) {
            brk_owner_presence(s, pp);
            brk_pres_free(pp);
        } else if (pp->done) {
            brk_presence_answer(s, pp);
        } else {
            brk_owner_presence(s, pp);
            pp->done = true;
            rc_shard_post(pp->origin, &pp->post);
        }
        break;
    }
    case RC_POST_STORE:
        rc_api_store_on_post(s, p);
        break;
    case RC_POST_CLAIM:
        brk_claim_on_post(s, p);
        break;
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
        brk_hist_free(RC_CONTAINER_OF(p, struct hist_post, post));
        break;
    case RC_POST_PRESENCE:
        brk_pres_free(RC_CONTAINER_OF(p, struct pres_post, post));
        break;
    case RC_POST_STORE:
        rc_api_store_discard_post(p);
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
    for (size_t i = 0; i < b->topics_cap; i++)
        if (b->topics[i])
            topic_free(b->topics[i]);
    free(b->topics);
    rc_trie_free(b->trie);
    rc_presence_free(b->presence);
    rc_pool_fini(&b->sub_pool);
    free(b);
    s->broker = NULL;
}
