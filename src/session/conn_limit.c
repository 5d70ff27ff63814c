/* conn_limit.c - max_connections_per_user, exact across shards (see
 * conn_limit.h for the protocol between a connection's shard and its user's
 * home shard).
 *
 * Owner: each shard owns its struct rc_conn_limit (s->conn_limit): a chained
 *   hash table of the users whose home it is, touched by that shard only.
 *   Jobs travel between shards through their inboxes (rc_shard_post).
 * Memory: an entry exists only while its user has admitted connections (it is
 *   freed at count 0); the table is freed at shard teardown.
 * Cluster: the count is per node (each node counts its own connections).
 * Lifetimes: a job owns its copy of the user id and is freed by whoever runs
 *   or discards it last. Out of memory: the connection is admitted uncounted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ringcast/conn_limit.h"
#include "ringcast/server.h"
#include "ringcast/shard.h"
#include "ringcast/ws.h"

#define LOG_MS 10000u
#define USER_MAX 128
#define REASON_MAX 123 /* RFC 6455 5.5: 125 payload bytes, 2 of them the code */

struct cl_user {
    struct cl_user *next;
    uint64_t hash;
    uint32_t n, cap;
    uint64_t *conns; /* admitted connection ids, oldest first */
    char user[USER_MAX + 1];
};

struct rc_conn_limit {
    struct cl_user **buckets;
    uint32_t nbuckets, nusers;
};

enum cl_kind { CL_ACQUIRE, CL_RELEASE, CL_REFUSED, CL_CLOSE_OLDEST };

struct cl_job {
    struct rc_post post;
    uint8_t kind;
    uint32_t count; /* CL_REFUSED: the user's connections */
    uint64_t conn_id;
    char user[USER_MAX + 1];
};

static void cl_discard(struct rc_post *p)
{
    free(RC_CONTAINER_OF(p, struct cl_job, post));
}

/* ---- the home shard's table ---------------------------------------------------------- */

static struct cl_user **find(struct rc_conn_limit *t, const char *user, uint64_t h)
{
    struct cl_user **pp = &t->buckets[h % t->nbuckets];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->user, user) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct rc_conn_limit *t)
{
    uint32_t nb = t->nbuckets * 2;
    struct cl_user **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        struct cl_user *u, *next;
        for (u = t->buckets[i]; u; u = next) {
            next = u->next;
            u->next = b[u->hash % nb];
            b[u->hash % nb] = u;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

static struct rc_conn_limit *table(struct rc_shard *s)
{
    if (s->conn_limit || s->conn_limit_gone)
        return s->conn_limit;
    struct rc_conn_limit *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    s->conn_limit = t;
    return t;
}

static void user_free(struct cl_user *u)
{
    free(u->conns);
    free(u);
}

static bool user_has(const struct cl_user *u, uint64_t id)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (u->conns[i] == id)
            return true;
    return false;
}

static bool user_add(struct cl_user *u, uint64_t id)
{
    if (u->n == u->cap) {
        uint32_t cap = u->cap ? u->cap * 2 : 4;
        uint64_t *c = realloc(u->conns, cap * sizeof(*c));
        if (!c)
            return false;
        u->conns = c;
        u->cap = cap;
    }
    u->conns[u->n++] = id;
    return true;
}

static void user_remove_at(struct cl_user *u, uint32_t i)
{
    memmove(&u->conns[i], &u->conns[i + 1], (u->n - i - 1) * sizeof(*u->conns));
    u->n--;
}

/* ---- jobs ------------------------------------------------------------------------------ */

static struct cl_job *job_new(enum cl_kind kind, uint64_t conn_id, const char *user)
{
    struct cl_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->post.run = NULL; /* set by the caller's send */
    j->post.discard = cl_discard;
    j->kind = (uint8_t)kind;
    j->conn_id = conn_id;
    snprintf(j->user, sizeof(j->user), "%s", user);
    return j;
}

static void cl_run(struct rc_shard *s, struct rc_post *p);

static void send_job(struct rc_shard *to, struct cl_job *j)
{
    j->post.run = cl_run;
    rc_shard_post(to, &j->post);
}

static struct rc_shard *conn_shard(struct rc_shard *s, uint64_t conn_id)
{
    unsigned i = rc_conn_id_shard(conn_id);
    return i < s->srv->nshards ? s->srv->shards[i] : NULL;
}

/* Close c with the limit's code: a WebSocket close frame, or an SSE stream's
 * last "disconnect" record and then its end. */
static void limit_close(struct rc_conn *c, const char *reason)
{
    rc_conn_set_close_reason(c, RC_CLOSE_CONNECTION_LIMIT);
    if (c->proto == RC_PROTO_WS) {
        if (!c->ws || !c->ws->close_sent)
            rc_ws_close(c, RC_CONN_LIMIT_CLOSE, reason);
        return;
    }
    json_t *j = json_pack("{s:i, s:s}", "code", RC_CONN_LIMIT_CLOSE, "reason", reason);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    size_t n = txt ? strlen(txt) + 32 : 0;
    char *rec = txt ? malloc(n) : NULL;
    if (rec) {
        int k = snprintf(rec, n, "event: disconnect\ndata: %s\n\n", txt);
        if (rc_conn_queue_owned(c, rec, (size_t)k) < 0) {
            free(txt);
            return; /* closing already */
        }
    }
    free(txt);
    rc_conn_close_after_flush(c);
}

static void note(struct rc_shard *s, const char *event, uint64_t conn_id, const char *user)
{
    uint64_t n;
    if (rc_log_limit_take(&s->conn_limit_log, s->now_ms, LOG_MS, &n))
        rc_log(RC_LOG_WARN, event, "shard=%u conn=%016llx user=\"%s\" max=%u count=%llu", s->id,
               (unsigned long long)conn_id, user, s->cfg->max_connections_per_user,
               (unsigned long long)n);
}

/* Home shard: admit j's connection, refuse it, or evict the oldest. */
static void acquire(struct rc_shard *s, struct cl_job *j)
{
    struct rc_conn_limit *t = table(s);
    uint64_t h = XXH3_64bits(j->user, strlen(j->user));
    uint32_t max = s->cfg->max_connections_per_user;
    struct cl_user **pp = t ? find(t, j->user, h) : NULL;
    if (pp && !*pp) {
        struct cl_user *u = calloc(1, sizeof(*u));
        if (u) {
            u->hash = h;
            snprintf(u->user, sizeof(u->user), "%s", j->user);
            *pp = u;
            if (++t->nusers > t->nbuckets * 2) {
                grow(t);
                pp = find(t, j->user, h);
            }
        }
    }
    struct cl_user *u = pp ? *pp : NULL;
    if (!u || user_has(u, j->conn_id)) {
        free(j); /* out of memory: admitted uncounted; or asked twice */
        return;
    }
    if (u->n < max) {
        (void)!user_add(u, j->conn_id); /* ENOMEM: admitted uncounted */
        free(j);
        return;
    }
    if (s->cfg->connection_limit_policy == RC_CONFIG_CONN_LIMIT_OLDEST && u->n > 0) {
        uint64_t victim = u->conns[0];
        user_remove_at(u, 0);
        (void)!user_add(u, j->conn_id);
        struct rc_shard *vs = conn_shard(s, victim);
        j->kind = CL_CLOSE_OLDEST;
        j->conn_id = victim;
        if (vs)
            send_job(vs, j);
        else
            free(j);
        return;
    }
    j->kind = CL_REFUSED;
    j->count = u->n;
    struct rc_shard *os = conn_shard(s, j->conn_id);
    if (os)
        send_job(os, j);
    else
        free(j);
}

/* Home shard: the connection is gone (absent if it was refused or evicted). */
static void release(struct rc_shard *s, struct cl_job *j)
{
    struct rc_conn_limit *t = s->conn_limit;
    if (t) {
        uint64_t h = XXH3_64bits(j->user, strlen(j->user));
        struct cl_user **pp = find(t, j->user, h), *u = *pp;
        for (uint32_t i = 0; u && i < u->n; i++)
            if (u->conns[i] == j->conn_id) {
                user_remove_at(u, i);
                break;
            }
        if (u && u->n == 0) {
            *pp = u->next;
            user_free(u);
            t->nusers--;
        }
    }
    free(j);
}

static void cl_run(struct rc_shard *s, struct rc_post *p)
{
    struct cl_job *j = RC_CONTAINER_OF(p, struct cl_job, post);
    if (j->kind == CL_ACQUIRE) {
        acquire(s, j);
        return;
    }
    if (j->kind == CL_RELEASE) {
        release(s, j);
        return;
    }
    struct rc_conn *c = rc_shard_conn(s, j->conn_id);
    if (c && rc_conn_is_open(c)) {
        char reason[REASON_MAX + 1];
        int k;
        if (j->kind == CL_REFUSED) {
            s->ctr.conn_limit_refused++;
            note(s, "conn_limit_refused", j->conn_id, j->user);
            k = snprintf(reason, sizeof(reason),
                         "connection limit: user %s already has %u connections "
                         "(max_connections_per_user)",
                         j->user, j->count);
            if (k < 0 || (size_t)k >= sizeof(reason))
                snprintf(reason, sizeof(reason),
                         "connection limit: this user already has %u connections "
                         "(max_connections_per_user)",
                         j->count);
        } else {
            s->ctr.conn_limit_oldest++;
            note(s, "conn_limit_closed_oldest", j->conn_id, j->user);
            snprintf(reason, sizeof(reason),
                     "connection limit: closed as the user's oldest connection "
                     "(max_connections_per_user, policy oldest)");
        }
        limit_close(c, reason);
    }
    free(j);
}

/* ---- the connection's side -------------------------------------------------------------- */

void rc_conn_limit_identity(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->limit_asked || !c->user_id[0] || s->cfg->max_connections_per_user == 0)
        return;
    struct cl_job *j = job_new(CL_ACQUIRE, c->id, c->user_id);
    if (!j)
        return; /* admitted uncounted */
    c->limit_asked = true;
    uint64_t h = XXH3_64bits(c->user_id, strlen(c->user_id));
    send_job(s->srv->shards[h % s->srv->nshards], j);
}

void rc_conn_limit_release(struct rc_conn *c)
{
    if (!c->limit_asked)
        return;
    c->limit_asked = false;
    struct rc_shard *s = c->shard;
    struct cl_job *j = job_new(CL_RELEASE, c->id, c->user_id);
    if (!j)
        return; /* the entry keeps a stale id: a place lost until the user has none */
    uint64_t h = XXH3_64bits(c->user_id, strlen(c->user_id));
    send_job(s->srv->shards[h % s->srv->nshards], j);
}

void rc_conn_limit_fini(struct rc_shard *s)
{
    struct rc_conn_limit *t = s->conn_limit;
    s->conn_limit_gone = true;
    s->conn_limit = NULL;
    if (!t)
        return;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        struct cl_user *u, *next;
        for (u = t->buckets[i]; u; u = next) {
            next = u->next;
            user_free(u);
        }
    }
    free(t->buckets);
    free(t);
}
