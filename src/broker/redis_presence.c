/* redis_presence.c - presence across nodes (RC_REDIS_PRESENCE and
 * RC_REDIS_PRESENCE_LIST): this node's members (topic, user) with their
 * connection counts, kept in Redis by rc_redis_presence_script and refreshed
 * every presence_ttl / 3, so a node that dies has its members expire within
 * presence_ttl (removed, with their presence.left, by the next script any
 * live node runs on the topic, at the latest at its next refresh).
 * Owner: the bridge thread (struct rdb_presence lives in the bridge). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "redis_bridge_internal.h"

struct pmember {
    char *topic;
    size_t tlen;
    char *ukey;
    char *data; /* the joined/left event data JSON */
    uint64_t hash;
    uint32_t conns, maxlen;
    uint64_t key_ttl_ms;
};

static uint64_t member_hash(const char *topic, size_t tlen, const char *ukey)
{
    return XXH3_64bits_withSeed(ukey, strlen(ukey), XXH3_64bits(topic, tlen)) | 1;
}

static size_t find_slot(const struct rdb_presence *p, uint64_t h, const char *topic, size_t tlen,
                        const char *ukey, bool *found)
{
    size_t mask = p->cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        struct pmember *m = p->slots[i];
        if (!m) {
            *found = false;
            return i;
        }
        if (m->hash == h && m->tlen == tlen && memcmp(m->topic, topic, tlen) == 0 &&
            strcmp(m->ukey, ukey) == 0) {
            *found = true;
            return i;
        }
    }
}

static int grow(struct rdb_presence *p)
{
    if (p->cap && (p->n + 1) * 2 <= p->cap)
        return 0;
    size_t ncap = p->cap ? p->cap * 2 : 64;
    struct pmember **ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < p->cap; i++) {
        struct pmember *m = p->slots[i];
        if (!m)
            continue;
        size_t k = m->hash & (ncap - 1);
        while (ns[k])
            k = (k + 1) & (ncap - 1);
        ns[k] = m;
    }
    free(p->slots);
    p->slots = ns;
    p->cap = ncap;
    return 0;
}

static void remove_at(struct rdb_presence *p, size_t i)
{
    size_t mask = p->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        struct pmember *m = p->slots[j];
        if (!m)
            break;
        size_t home = m->hash & mask;
        /* move m back into the hole unless its home lies in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            p->slots[i] = m;
            i = j;
        }
    }
    p->slots[i] = NULL;
    p->n--;
}

static void member_free(struct pmember *m)
{
    if (!m)
        return;
    free(m->topic);
    free(m->ukey);
    free(m->data);
    free(m);
}

static void script_done(void *arg, struct redisReply *r, const char *why)
{
    struct rc_redis_bridge *b = arg;
    (void)why;
    if (!r || r->type == REDIS_REPLY_ERROR)
        b->ctr.presence_failed++;
}

/* Run the presence script for m: "set" (conns > 0) or "del". */
static void send_member(struct rc_redis_bridge *b, const struct pmember *m, bool set)
{
    struct instance *in = &b->inst[rc_redis_instance_for(m->topic, m->tlen, b->cfg.nep)];
    char keys[6][RC_TOPIC_KEY_MAX];
    static const char kinds[6] = {'t', 'h', 'p', 'c', 'd', 'u'};
    for (int k = 0; k < 6; k++)
        if (rc_redis_key(keys[k], sizeof(keys[k]), kinds[k], m->topic, m->tlen) < 0)
            return;
    char ch[RC_TOPIC_KEY_MAX], member[600], conns[16], pttl[24], maxlen[16], ttl[24];
    if (rc_redis_key(ch, sizeof(ch), 'e', m->topic, m->tlen) < 0 ||
        snprintf(member, sizeof(member), "%s\x1f%s", m->ukey, b->cfg.node_id) >=
            (int)sizeof(member))
        return;
    snprintf(conns, sizeof(conns), "%u", m->conns);
    snprintf(pttl, sizeof(pttl), "%u", b->cfg.presence_ttl_ms);
    snprintf(maxlen, sizeof(maxlen), "%u", m->maxlen);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)m->key_ttl_ms);
    const char *argv[] = {"EVAL",  rc_redis_presence_script,
                          "6",     keys[0],
                          keys[1], keys[2],
                          keys[3], keys[4],
                          keys[5], set ? "set" : "del",
                          member,  m->ukey,
                          conns,   pttl,
                          ch,      maxlen,
                          m->data, ttl};
    if (!rc_redis_conn_ready(&in->cmd) ||
        rc_redis_conn_command(&in->cmd, 18, argv, NULL, script_done, b) < 0)
        b->ctr.presence_failed++; /* the next refresh sets it again */
}

void rdb_presence(struct rc_redis_bridge *b, struct rc_redis_req *req)
{
    struct rdb_presence *p = &b->presence;
    const char *ukey = req->key ? req->key : "";
    uint32_t conns = (uint32_t)req->after;
    bool found = false;
    uint64_t h = member_hash(req->topic, req->topic_len, ukey);
    size_t i = p->cap ? find_slot(p, h, req->topic, req->topic_len, ukey, &found) : 0;
    if (!conns) {
        if (found) {
            struct pmember *m = p->slots[i];
            remove_at(p, i);
            send_member(b, m, false);
            member_free(m);
        }
        rc_redis_req_free(req);
        return;
    }
    if (found) {
        struct pmember *m = p->slots[i];
        if (m->conns != conns) {
            m->conns = conns;
            send_member(b, m, true);
        }
        rc_redis_req_free(req);
        return;
    }
    struct pmember *m = calloc(1, sizeof(*m));
    if (!m || grow(p) < 0) {
        free(m);
        b->ctr.presence_failed++;
        rc_redis_req_free(req);
        return;
    }
    /* take the request's strings */
    m->topic = req->topic;
    m->tlen = req->topic_len;
    m->ukey = req->key ? req->key : strdup("");
    m->data = req->data ? req->data : strdup("{}");
    req->topic = req->key = req->data = NULL;
    m->hash = h;
    m->conns = conns;
    m->maxlen = req->maxlen;
    m->key_ttl_ms = req->key_ttl_ms;
    rc_redis_req_free(req);
    if (!m->ukey || !m->data) {
        member_free(m);
        b->ctr.presence_failed++;
        return;
    }
    i = find_slot(p, h, m->topic, m->tlen, m->ukey, &found);
    p->slots[i] = m;
    p->n++;
    send_member(b, m, true);
}

void rdb_presence_tick(struct rc_redis_bridge *b, uint64_t now)
{
    struct rdb_presence *p = &b->presence;
    if (!b->cfg.presence_ttl_ms || now < p->next_refresh_ms)
        return;
    p->next_refresh_ms = now + b->cfg.presence_ttl_ms / 3;
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i])
            send_member(b, p->slots[i], true);
}

uint64_t rdb_presence_wake(const struct rc_redis_bridge *b)
{
    return b->presence.n ? b->presence.next_refresh_ms : UINT64_MAX;
}

void rdb_presence_free(struct rc_redis_bridge *b)
{
    struct rdb_presence *p = &b->presence;
    for (size_t i = 0; i < p->cap; i++)
        member_free(p->slots[i]);
    free(p->slots);
    memset(p, 0, sizeof(*p));
}

/* ---- listing -------------------------------------------------------------------------------- */

static void list_reply(void *arg, struct redisReply *r, const char *why)
{
    struct rc_redis_req *req = arg;
    struct rc_redis_bridge *b = req->bridge_;
    req->bridge_ = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 3) {
        rdb_answer(b, req, 503, "broker_unavailable",
                   !r                             ? why
                   : r->type == REDIS_REPLY_ERROR ? r->str
                                                  : "an unexpected answer");
        return;
    }
    size_t n = r->elements / 3;
    req->entries = n ? calloc(n, sizeof(*req->entries)) : NULL;
    if (n && !req->entries) {
        rdb_answer(b, req, 503, "unavailable", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *u = r->element[3 * i], *c = r->element[3 * i + 1],
                         *d = r->element[3 * i + 2];
        if (u->type != REDIS_REPLY_STRING || c->type != REDIS_REPLY_INTEGER ||
            d->type != REDIS_REPLY_STRING)
            continue;
        struct rc_redis_entry *e = &req->entries[req->nentries];
        e->seq = (uint64_t)c->integer;
        e->type = strndup(u->str, u->len);
        e->data = strndup(d->str, d->len);
        e->targeting = strdup("");
        req->nentries++;
        if (!e->type || !e->data || !e->targeting) {
            rdb_answer(b, req, 503, "unavailable", "out of memory");
            return;
        }
    }
    rdb_answer(b, req, 200, NULL, NULL);
}

void rdb_presence_list(struct instance *in, struct rc_redis_req *req)
{
    struct rc_redis_bridge *b = in->b;
    char z[RC_TOPIC_KEY_MAX], c[RC_TOPIC_KEY_MAX], d[RC_TOPIC_KEY_MAX];
    if (!rc_redis_conn_ready(&in->cmd)) {
        rdb_answer(b, req, 503, "broker_unavailable", "redis is not connected");
        return;
    }
    if (rc_redis_key(z, sizeof(z), 'p', req->topic, req->topic_len) < 0 ||
        rc_redis_key(c, sizeof(c), 'c', req->topic, req->topic_len) < 0 ||
        rc_redis_key(d, sizeof(d), 'd', req->topic, req->topic_len) < 0) {
        rdb_answer(b, req, 503, "broker_unavailable", "topic name too long for a redis key");
        return;
    }
    const char *argv[] = {"EVAL", rc_redis_presence_list_script, "3", z, c, d};
    req->bridge_ = b;
    if (rc_redis_conn_command(&in->cmd, 6, argv, NULL, list_reply, req) < 0) {
        req->bridge_ = NULL;
        rdb_answer(b, req, 503, "broker_unavailable", "too many commands in flight to redis");
    }
}
