/* broker_topic.c - the topics this shard owns and the memory engine's
 * publish: the owned-topic table (open addressing), incarnation epochs, the
 * bounded idle sweep, event ids, and the owner's fan-out of an event to every
 * shard (see broker.h for the message flow and ownership). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/history.h"
#include "ringcast/presence.h"
#include "ringcast/shard.h"

#include "broker_internal.h"

/* ---- owned topics ------------------------------------------------------------------ */

/* History kept for a topic: the config's defaults (history_size,
 * history_ttl, retain), refined by the first topic rule that covers it. */
struct rc_history_cfg brk_history_cfg(const struct rc_shard *s, const char *topic)
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
    struct rc_history_cfg hc = brk_history_cfg(b->shard, t->name);
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

void brk_topics_fini(struct rc_broker *b)
{
    for (size_t i = 0; i < b->topics_cap; i++)
        if (b->topics[i])
            topic_free(b->topics[i]);
    free(b->topics);
    b->topics = NULL;
    b->topics_cap = b->ntopics = 0;
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

uint64_t rc_broker_next_tick_ms(const struct rc_shard *s)
{
    const struct rc_broker *b = s->broker;
    if (!b || !s->cfg->topic_idle_timeout || !b->topics_cap ||
        (b->ntopics == 0 && b->topics_cap <= 256))
        return UINT64_MAX;
    return b->next_sweep_ms;
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
    ev->accepted_ns = rc_now_ns(); /* one clock read per event, for /metrics */
    /* one reference per shard post; the creator's reference is handed over */
    rc_evbuf_ref_n(ev, s->srv->nshards - 1);
    for (unsigned i = 0; i < s->srv->nshards; i++) {
        ev->posts[i].post.run = brk_event_run;
        rc_shard_post(s->srv->shards[i], &ev->posts[i].post);
    }
    return seq;
}

/* ---- publish (memory engine) -------------------------------------------------------- */

/* A publish's trip: origin -> owner (PUB_TO_OWNER: assign the id, fan out)
 * -> origin (PUB_DONE: answer the ticket). */
enum pub_state { PUB_TO_OWNER, PUB_DONE };

struct pub_post {
    struct rc_post post;
    enum pub_state state;
    struct rc_shard *origin;
    struct rc_ticket ticket;
    char *topic;
    size_t topic_len;
    char *type;
    json_t *data;
    char *client_key;
    json_t *echo;
    char **users;
    size_t nusers;
    char *exclude_user;
    /* answer */
    int status;
    char event_id[RC_EVENT_ID_MAX];
    bool duplicate;
};

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
    struct rc_conn *c = rc_shard_conn(s, p->ticket.conn_id);
    if (c) {
        json_t *body = json_pack("{s:s, s:s}", "id", p->event_id, "topic", p->topic);
        if (p->status >= 400 || !body) {
            rc_conn_answer(
                c, &p->ticket,
                &(struct rc_answer){.status = 503,
                                    .code = "unavailable",
                                    .msg = "the event could not be accepted (out of memory)"});
        } else {
            int status = p->duplicate ? 200 : 202;
            if (p->echo) { /* only HTTP callers give one */
                json_object_set_new(p->echo, "id", json_string(p->event_id));
                status = 201;
            }
            char *txt = json_dumps(p->echo ? p->echo : body, JSON_COMPACT);
            if (txt)
                rc_conn_answer(
                    c, &p->ticket,
                    &(struct rc_answer){
                        .status = status, .type = "published", .json = txt, .len = strlen(txt)});
            free(txt);
        }
        json_decref(body);
    }
    pub_free(p);
}

static void pub_run(struct rc_shard *s, struct rc_post *post)
{
    struct pub_post *p = RC_CONTAINER_OF(post, struct pub_post, post);
    if (p->state == PUB_DONE) {
        pub_answer(s, p);
        return;
    }
    owner_publish(s, p);
    p->state = PUB_DONE;
    rc_shard_post(p->origin, &p->post);
}

static void pub_discard(struct rc_post *post)
{
    pub_free(RC_CONTAINER_OF(post, struct pub_post, post));
}

void brk_mem_publish(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub)
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
        pub->data = pub->echo = NULL;
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    p->post.run = pub_run;
    p->post.discard = pub_discard;
    p->state = PUB_TO_OWNER;
    p->origin = s;
    p->ticket = *t;
    p->topic_len = pub->topic_len;
    p->data = pub->data;
    p->echo = pub->echo;
    pub->echo = NULL;
    pub->data = NULL;
    unsigned owner = rc_topic_owner(s->srv->nshards, p->topic, p->topic_len);
    rc_shard_post(s->srv->shards[owner], &p->post);
}
