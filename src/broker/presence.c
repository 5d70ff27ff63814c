/* presence.c - per-topic sets of (user, connection) on the owner shard (see
 * presence.h for the model and its bounds). */
#include <errno.h>
#include <stdlib.h>
#include <xxhash.h>

#include "ringcast/presence.h"

/* ---- pointer table: hash -> object, linear probing, backward-shift deletion ---- */

struct slot {
    uint64_t h;
    void *p; /* NULL = free */
};

struct ptab {
    struct slot *s;
    uint32_t cap; /* power of two, or 0 */
    uint32_t n;
};

typedef bool (*eq_fn)(const void *obj, const void *key);

static int64_t ptab_find(const struct ptab *t, uint64_t h, eq_fn eq, const void *key)
{
    if (!t->cap)
        return -1;
    uint32_t mask = t->cap - 1;
    for (uint32_t k = (uint32_t)h & mask;; k = (k + 1) & mask) {
        if (!t->s[k].p)
            return -1;
        if (t->s[k].h == h && eq(t->s[k].p, key))
            return k;
    }
}

static void ptab_put(struct ptab *t, uint64_t h, void *p)
{
    uint32_t mask = t->cap - 1;
    uint32_t k = (uint32_t)h & mask;
    while (t->s[k].p)
        k = (k + 1) & mask;
    t->s[k] = (struct slot){h, p};
    t->n++;
}

/* Make room for one more entry at load <= 1/2. 0 or -ENOMEM. */
static int ptab_reserve(struct ptab *t)
{
    if ((size_t)(t->n + 1) * 2 <= t->cap)
        return 0;
    uint32_t cap = t->cap ? t->cap * 2 : 8;
    struct slot *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    struct ptab nt = {ns, cap, 0};
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->s[i].p)
            ptab_put(&nt, t->s[i].h, t->s[i].p);
    free(t->s);
    *t = nt;
    return 0;
}

/* Remove slot i, shifting later members of its probe run back. */
static void ptab_remove_at(struct ptab *t, uint32_t i)
{
    uint32_t mask = t->cap - 1;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->s[j].p)
            break;
        uint32_t home = (uint32_t)t->s[j].h & mask;
        /* the entry at j may stay if its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        t->s[i] = t->s[j];
        i = j;
    }
    t->s[i] = (struct slot){0, NULL};
    t->n--;
}

/* ---- model -------------------------------------------------------------------------------- */

struct user {
    char *id; /* NULL = anonymous */
    uint32_t len;
    uint64_t conn; /* anonymous: its connection */
    uint64_t hash;
    uint32_t nconns; /* members (connections) of this user on the topic */
    uint32_t idx;    /* position in topic.dense */
};

struct member {
    struct user *u;
    uint64_t conn;
    uint32_t nsubs;
};

struct topic {
    char *name;
    size_t len;
    struct ptab users, members;
    struct user **dense; /* users in listing order */
    uint32_t ndense, dense_cap;
};

struct rc_presence {
    struct ptab topics;
    uint32_t max_members;
};

struct user_key {
    struct rc_slice user;
    uint64_t conn;
};

struct member_key {
    const struct user *u;
    uint64_t conn;
};

static bool is_anon(struct rc_slice user)
{
    return !user.p || user.n == 0;
}

static bool topic_eq(const void *obj, const void *key)
{
    const struct topic *t = obj;
    const struct rc_slice *k = key;
    return t->len == k->n && memcmp(t->name, k->p, k->n) == 0;
}

static bool user_eq(const void *obj, const void *key)
{
    const struct user *u = obj;
    const struct user_key *k = key;
    if (is_anon(k->user))
        return !u->id && u->conn == k->conn;
    return u->id && u->len == k->user.n && memcmp(u->id, k->user.p, k->user.n) == 0;
}

static bool member_eq(const void *obj, const void *key)
{
    const struct member *m = obj;
    const struct member_key *k = key;
    return m->u == k->u && m->conn == k->conn;
}

static uint64_t user_hash(struct rc_slice user, uint64_t conn)
{
    if (is_anon(user))
        return XXH3_64bits_withSeed(&conn, sizeof(conn), 0x616e6f6eULL); /* "anon" */
    return XXH3_64bits(user.p, user.n);
}

static uint64_t member_hash(const struct user *u, uint64_t conn)
{
    return XXH3_64bits_withSeed(&conn, sizeof(conn), u->hash);
}

struct rc_presence *rc_presence_new(uint32_t max_members)
{
    struct rc_presence *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_members = max_members ? max_members : RC_PRESENCE_MEMBERS_DEFAULT;
    return p;
}

static void topic_free(struct topic *t)
{
    for (uint32_t i = 0; i < t->members.cap; i++)
        free(t->members.s[i].p);
    for (uint32_t i = 0; i < t->ndense; i++) {
        free(t->dense[i]->id);
        free(t->dense[i]);
    }
    free(t->members.s);
    free(t->users.s);
    free(t->dense);
    free(t->name);
    free(t);
}

void rc_presence_free(struct rc_presence *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->topics.cap; i++)
        if (p->topics.s[i].p)
            topic_free(p->topics.s[i].p);
    free(p->topics.s);
    free(p);
}

static struct topic *topic_find(const struct rc_presence *p, struct rc_slice topic, int64_t *slot)
{
    int64_t k = ptab_find(&p->topics, XXH3_64bits(topic.p, topic.n), topic_eq, &topic);
    if (slot)
        *slot = k;
    return k < 0 ? NULL : p->topics.s[k].p;
}

static struct topic *topic_create(struct rc_presence *p, struct rc_slice topic)
{
    if (ptab_reserve(&p->topics) < 0)
        return NULL;
    struct topic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = malloc(topic.n);
    if (!t->name) {
        free(t);
        return NULL;
    }
    memcpy(t->name, topic.p, topic.n);
    t->len = topic.n;
    ptab_put(&p->topics, XXH3_64bits(topic.p, topic.n), t);
    return t;
}

static void topic_drop_if_empty(struct rc_presence *p, struct rc_slice topic)
{
    int64_t k;
    struct topic *t = topic_find(p, topic, &k);
    if (!t || t->members.n)
        return;
    ptab_remove_at(&p->topics, (uint32_t)k);
    topic_free(t);
}

static struct user *user_new(struct rc_slice user, uint64_t conn, uint64_t h)
{
    struct user *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->hash = h;
    if (is_anon(user)) {
        u->conn = conn;
        return u;
    }
    u->id = malloc(user.n);
    if (!u->id) {
        free(u);
        return NULL;
    }
    memcpy(u->id, user.p, user.n);
    u->len = (uint32_t)user.n;
    return u;
}

/* Add a new (user, conn) pair to t; the user is created if needed. */
static int member_add(struct topic *t, struct user *u, struct rc_slice user, uint64_t conn,
                      uint64_t uh, bool *joined)
{
    /* reserve everything first so a failure leaves t unchanged */
    if (ptab_reserve(&t->members) < 0 || (!u && ptab_reserve(&t->users) < 0))
        return -ENOMEM;
    if (!u && t->ndense == t->dense_cap) {
        uint32_t cap = t->dense_cap ? t->dense_cap * 2 : 8;
        struct user **nd = realloc(t->dense, cap * sizeof(*nd));
        if (!nd)
            return -ENOMEM;
        t->dense = nd;
        t->dense_cap = cap;
    }
    struct member *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    if (!u) {
        u = user_new(user, conn, uh);
        if (!u) {
            free(m);
            return -ENOMEM;
        }
        u->idx = t->ndense;
        t->dense[t->ndense++] = u;
        ptab_put(&t->users, uh, u);
        *joined = true;
    }
    m->u = u;
    m->conn = conn;
    m->nsubs = 1;
    u->nconns++;
    ptab_put(&t->members, member_hash(u, conn), m);
    return 0;
}

int rc_presence_join(struct rc_presence *p, struct rc_slice topic, struct rc_slice user,
                     uint64_t conn, bool *joined)
{
    *joined = false;
    if (topic.n == 0 || topic.n > RC_PRESENCE_TOPIC_MAX || user.n > RC_PRESENCE_USER_MAX)
        return -EINVAL;
    struct topic *t = topic_find(p, topic, NULL);
    if (!t && !(t = topic_create(p, topic)))
        return -ENOMEM;
    uint64_t uh = user_hash(user, conn);
    struct user_key uk = {user, conn};
    int64_t k = ptab_find(&t->users, uh, user_eq, &uk);
    struct user *u = k < 0 ? NULL : t->users.s[k].p;
    int rc = 0;
    if (u) {
        struct member_key mk = {u, conn};
        int64_t mi = ptab_find(&t->members, member_hash(u, conn), member_eq, &mk);
        if (mi >= 0) {
            struct member *m = t->members.s[mi].p;
            if (m->nsubs == UINT32_MAX)
                return -EOVERFLOW;
            m->nsubs++;
            return 0;
        }
    }
    if (t->members.n >= p->max_members)
        rc = -ENOSPC;
    else
        rc = member_add(t, u, user, conn, uh, joined);
    if (rc < 0)
        topic_drop_if_empty(p, topic); /* a topic created just now */
    return rc;
}

/* Remove u from t's users (table and listing order) and free it. */
static void user_remove(struct topic *t, struct user *u)
{
    struct user_key uk = {{u->id, u->len}, u->conn};
    int64_t k = ptab_find(&t->users, u->hash, user_eq, &uk);
    if (k >= 0)
        ptab_remove_at(&t->users, (uint32_t)k);
    struct user *last = t->dense[--t->ndense];
    t->dense[u->idx] = last;
    last->idx = u->idx;
    free(u->id);
    free(u);
}

int rc_presence_leave(struct rc_presence *p, struct rc_slice topic, struct rc_slice user,
                      uint64_t conn, bool *left)
{
    *left = false;
    struct topic *t = topic.n ? topic_find(p, topic, NULL) : NULL;
    if (!t || user.n > RC_PRESENCE_USER_MAX)
        return -ENOENT;
    struct user_key uk = {user, conn};
    int64_t k = ptab_find(&t->users, user_hash(user, conn), user_eq, &uk);
    if (k < 0)
        return -ENOENT;
    struct user *u = t->users.s[k].p;
    struct member_key mk = {u, conn};
    int64_t mi = ptab_find(&t->members, member_hash(u, conn), member_eq, &mk);
    if (mi < 0)
        return -ENOENT;
    struct member *m = t->members.s[mi].p;
    if (--m->nsubs > 0)
        return 0;
    ptab_remove_at(&t->members, (uint32_t)mi);
    free(m);
    if (--u->nconns == 0) {
        user_remove(t, u);
        *left = true;
    }
    topic_drop_if_empty(p, topic);
    return 0;
}

void rc_presence_count(const struct rc_presence *p, struct rc_slice topic, size_t *users,
                       size_t *connections)
{
    const struct topic *t = topic.n ? topic_find(p, topic, NULL) : NULL;
    *users = t ? t->ndense : 0;
    *connections = t ? t->members.n : 0;
}

uint32_t rc_presence_user_connections(const struct rc_presence *p, struct rc_slice topic,
                                      struct rc_slice user, uint64_t conn)
{
    const struct topic *t = topic.n ? topic_find(p, topic, NULL) : NULL;
    if (!t)
        return 0;
    struct user_key k = {user, conn};
    int64_t i = ptab_find(&t->users, user_hash(user, conn), user_eq, &k);
    return i < 0 ? 0 : ((const struct user *)t->users.s[i].p)->nconns;
}

size_t rc_presence_list(const struct rc_presence *p, struct rc_slice topic, size_t offset,
                        size_t limit, rc_presence_fn cb, void *ctx, size_t *next)
{
    const struct topic *t = topic.n ? topic_find(p, topic, NULL) : NULL;
    size_t done = 0, i = offset;
    if (next)
        *next = 0;
    if (!t)
        return 0;
    for (; i < t->ndense && done < limit; i++) {
        const struct user *u = t->dense[i];
        struct rc_presence_user pu = {{u->id, u->len}, u->id ? 0 : u->conn, u->nconns};
        done++;
        if (cb(ctx, &pu) != 0) {
            i++;
            break;
        }
    }
    if (next && i < t->ndense)
        *next = i;
    return done;
}

size_t rc_presence_topics(const struct rc_presence *p)
{
    return p->topics.n;
}
