/* api_store_live.c - the live side of the notification and subscription
 * API, off the shards: the store's reply function (storage thread), which
 * posts answers, stored notifications and durable subscription changes to
 * the shards; the expiry thread and its heap; and the module's lifecycle
 * (main thread). What the shards do with those posts is api_store_conn.c
 * (see api_store.h for threads and flow). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_store_internal.h"
#include "ringcast/broker.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"
#include "ringcast/ws_frame.h"

#define CLUSTER_SUB_CHANGE "store.subscription" /* broker = redis: a change, to other nodes */
#define CLOSE_WAIT_S 5     /* rc_api_store_close waits this long for answers in flight */
#define EXPIRY_MAX 100000u /* pending expiries (~200 bytes each) */

/* ---- process-wide state (reply function and expiry thread) ----------------------------- */

struct expiry {
    int64_t at_ms;
    char user[RC_API_STORE_USER_MAX + 1];
    char id[RC_STORE_ID_MAX];
};

static struct {
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t cond;         /* wakes the expiry thread */
    pthread_cond_t barrier_cond; /* rc_api_store_close waits on it */
    struct rc_server *srv;
    bool closed;         /* no more posts to shards */
    bool stop;           /* expiry thread: leave */
    bool started;        /* expiry thread runs */
    unsigned barrier;    /* close barrier requests answered (one per store worker) */
    unsigned barriers;   /* close barrier requests sent */
    unsigned fenced;     /* shards that saw the close fence (after their drain) */
    pthread_t thread;    /* main thread only */
    struct expiry *heap; /* min-heap on at_ms */
    size_t n, cap;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .barrier_cond = PTHREAD_COND_INITIALIZER};

/* origin of the close barrier request (never a shard) */
static char barrier_origin;

/* ---- the expiry heap (g.lock held) ------------------------------------------------------ */

static void heap_swap(size_t a, size_t b)
{
    struct expiry t = g.heap[a];
    g.heap[a] = g.heap[b];
    g.heap[b] = t;
}

static void heap_push(int64_t at, const char *user, const char *id)
{
    if (g.n == g.cap) {
        size_t cap = g.cap ? g.cap * 2 : 64;
        if (cap > EXPIRY_MAX)
            return; /* the purge still hides it; live delivery stops at reconnect */
        struct expiry *h = realloc(g.heap, cap * sizeof(*h));
        if (!h)
            return;
        g.heap = h;
        g.cap = cap;
    }
    size_t i = g.n++;
    g.heap[i].at_ms = at;
    snprintf(g.heap[i].user, sizeof(g.heap[i].user), "%s", user);
    snprintf(g.heap[i].id, sizeof(g.heap[i].id), "%s", id);
    while (i > 0 && g.heap[(i - 1) / 2].at_ms > g.heap[i].at_ms) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_pop(void)
{
    g.heap[0] = g.heap[--g.n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g.n && g.heap[l].at_ms < g.heap[m].at_ms)
            m = l;
        if (r < g.n && g.heap[r].at_ms < g.heap[m].at_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

/* ---- posting changes (storage or expiry thread, g.lock held) ------------------------------ */

static void post_change_all(enum rc_api_store_change what, const char *user, const char *id,
                            const char *topic, const json_t *filter, int64_t expires_ms)
{
    struct rc_server *srv = g.srv;
    char *ftext = NULL;
    if (what == RC_API_STORE_CHG_APPLY && json_is_object(filter) && json_object_size(filter) > 0)
        ftext = json_dumps(filter, JSON_COMPACT);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_api_store_change_post *c = calloc(1, sizeof(*c));
        if (!c)
            continue; /* that shard misses the change until the user reconnects */
        c->base.run = rc_api_store_run_change;
        c->base.discard = rc_api_store_discard_change;
        c->what = what;
        snprintf(c->user, sizeof(c->user), "%s", user);
        snprintf(c->id, sizeof(c->id), "%s", id);
        c->expires_ms = expires_ms;
        if (what == RC_API_STORE_CHG_APPLY) {
            c->topic = strdup(topic ? topic : "");
            c->filter = ftext ? strdup(ftext) : NULL;
            if (!c->topic || (ftext && !c->filter)) {
                rc_api_store_discard_change(&c->base);
                continue;
            }
        }
        rc_shard_post(srv->shards[i], &c->base);
    }
    free(ftext);
}

/* A subscription change reaches this node's connections of its user: g.lock
 * held. rec: the record ("deleted": true for a removal). */
static void sub_changed_here(const json_t *rec)
{
    const char *user = json_string_value(json_object_get(rec, "user_id"));
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *status = json_string_value(json_object_get(rec, "status"));
    if (!user || !id)
        return;
    int64_t exp = rc_api_store_rec_time(rec, "expires_at");
    if (json_is_true(json_object_get(rec, "deleted"))) {
        post_change_all(RC_API_STORE_CHG_DELETED, user, id, NULL, NULL, 0);
    } else if (status && strcmp(status, "active") == 0) {
        post_change_all(RC_API_STORE_CHG_APPLY, user, id,
                        json_string_value(json_object_get(rec, "topic")),
                        json_object_get(rec, "payload_filter"), exp);
        if (exp) {
            heap_push(exp, user, id); /* every node expires it on its own connections */
            pthread_cond_signal(&g.cond);
        }
    } else {
        post_change_all(RC_API_STORE_CHG_PAUSED, user, id, NULL, NULL, 0);
    }
}

/* A subscription record was created or changed status (or was deleted): on
 * this node, and (broker = redis) on the user's connections of every other
 * node. g.lock held. */
static void sub_changed(const json_t *rec, bool deleted)
{
    json_t *r = json_deep_copy(rec);
    if (r && deleted)
        json_object_set_new(r, "deleted", json_true());
    if (!r)
        return;
    sub_changed_here(r);
    rc_broker_cluster_send(g.srv, CLUSTER_SUB_CHANGE, r);
    json_decref(r);
}

/* Bridge thread: another node's subscription change. */
static void on_cluster_sub_change(void *ctx, const json_t *rec)
{
    (void)ctx;
    pthread_mutex_lock(&g.lock);
    if (!g.closed)
        sub_changed_here(rec);
    pthread_mutex_unlock(&g.lock);
}

int rc_api_store_cluster(struct rc_server *srv, struct rc_err *err)
{
    if (rc_broker_cluster_on(srv, CLUSTER_SUB_CHANGE, on_cluster_sub_change, NULL) < 0) {
        rc_err_set(err, 500, "start", "cluster: too many message kinds");
        return -ENOSPC;
    }
    return 0;
}

/* A stored notification: encode it once, post it to every shard. */
static void notify_all(const json_t *rec)
{
    struct rc_server *srv = g.srv;
    json_t *rcpt = json_object_get(rec, "recipients");
    size_t n = json_array_size(rcpt);
    if (n == 0)
        return;
    char *txt = json_dumps(rec, JSON_COMPACT);
    char **users = calloc(n, sizeof(*users));
    struct rc_evbuf *ev = rc_evbuf_new(0);
    if (!txt || !users || !ev)
        goto out;
    for (size_t i = 0; i < n; i++)
        users[i] = (char *)json_string_value(json_array_get(rcpt, i));
    static const char ws_open[] = "{\"type\":\"notification\",\"data\":";
    static const char sse_open[] = "event: notification\ndata: ";
    size_t tl = strlen(txt);
    size_t payload = sizeof(ws_open) - 1 + tl + 1;
    uint8_t hdr[10];
    size_t hl = rc_ws_frame_header(hdr, 1 /* text */, payload, true);
    ev->ws = malloc(hl + payload);
    ev->sse = malloc(sizeof(sse_open) - 1 + tl + 2);
    if (!ev->ws || !ev->sse || rc_evbuf_set_users(ev, users, n, NULL) < 0)
        goto out;
    ev->kind = RC_EVENT_BROADCAST;
    memcpy(ev->ws, hdr, hl);
    memcpy(ev->ws + hl, ws_open, sizeof(ws_open) - 1);
    memcpy(ev->ws + hl + sizeof(ws_open) - 1, txt, tl);
    ev->ws[hl + payload - 1] = '}';
    ev->ws_len = hl + payload;
    memcpy(ev->sse, sse_open, sizeof(sse_open) - 1);
    memcpy(ev->sse + sizeof(sse_open) - 1, txt, tl);
    memcpy(ev->sse + sizeof(sse_open) - 1 + tl, "\n\n", 2);
    ev->sse_len = sizeof(sse_open) - 1 + tl + 2;
    rc_broker_cluster_forward(srv, ev); /* broker = redis: the user's connections elsewhere */
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_api_store_notify_post *p = calloc(1, sizeof(*p));
        if (!p)
            continue;
        p->base.run = rc_api_store_run_notify;
        p->base.discard = rc_api_store_discard_notify;
        rc_evbuf_ref(ev);
        p->ev = ev;
        rc_shard_post(srv->shards[i], &p->base);
    }
out:
    if (ev)
        rc_evbuf_unref(ev);
    free(users);
    free(txt);
}

/* The store's reply function: storage thread (or main, inside rc_store_stop). */
static void on_store_reply(void *ctx, struct rc_store_req *req)
{
    (void)ctx;
    struct rc_api_store_wait *w = (struct rc_api_store_wait *)(uintptr_t)req->tag;
    pthread_mutex_lock(&g.lock);
    if (req->origin == &barrier_origin) {
        /* everything submitted before it has been answered and posted */
        g.barrier++;
        pthread_cond_broadcast(&g.barrier_cond);
    }
    if (g.closed || !w) {
        pthread_mutex_unlock(&g.lock);
        rc_store_req_free(req);
        if (w)
            json_decref(w->acc);
        free(w);
        return;
    }
    bool ok = req->status >= 200 && req->status < 300;
    if (ok) {
        switch (req->op) {
        case RC_STORE_NOTIF_CREATE:
            notify_all(req->result);
            break;
        case RC_STORE_SUB_CREATE_RESOURCE:
        case RC_STORE_SUB_CREATE_TOPIC:
        case RC_STORE_SUB_SET_STATUS:
            sub_changed(req->result, false);
            break;
        case RC_STORE_SUB_DELETE:
            if (req->removed)
                sub_changed(req->removed, true);
            break;
        case RC_STORE_SUB_LIST:
            if (w->purpose == RC_API_STORE_P_LOAD) {
                size_t i;
                json_t *rec;
                json_array_foreach(req->result, i, rec)
                {
                    int64_t exp = rc_api_store_rec_time(rec, "expires_at");
                    const char *id = json_string_value(json_object_get(rec, "id"));
                    if (exp && id)
                        heap_push(exp, w->user, id);
                }
                pthread_cond_signal(&g.cond);
            }
            break;
        default:
            break;
        }
    }
    w->req = req;
    rc_shard_post(req->origin, &w->base);
    pthread_mutex_unlock(&g.lock);
}

static void *expiry_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.lock);
    while (!g.stop) {
        if (g.n == 0) {
            pthread_cond_wait(&g.cond, &g.lock);
            continue;
        }
        int64_t now = rc_api_store_wall_ms();
        if (g.heap[0].at_ms <= now) {
            if (!g.closed)
                post_change_all(RC_API_STORE_CHG_EXPIRED, g.heap[0].user, g.heap[0].id, NULL, NULL,
                                0);
            heap_pop();
            continue;
        }
        struct timespec ts = {.tv_sec = (time_t)(g.heap[0].at_ms / 1000),
                              .tv_nsec = (long)(g.heap[0].at_ms % 1000) * 1000000};
        pthread_cond_timedwait(&g.cond, &g.lock, &ts);
    }
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

/* ---- lifecycle (main thread) ------------------------------------------------------------- */

int rc_api_store_open(struct rc_store **out, const struct rc_config *cfg, struct rc_server *srv,
                      struct rc_err *err)
{
    struct rc_store_config sc = {
        .data_dir = cfg->data_dir,
        .synchronous = cfg->store_synchronous == RC_CONFIG_STORE_SYNC_NORMAL ? RC_STORE_SYNC_NORMAL
                                                                             : RC_STORE_SYNC_FULL,
        .max_batch = cfg->store_max_batch,
        .purge_interval_ms = cfg->store_purge_interval,
        .max_user_subscriptions = cfg->max_user_subscriptions,
        .engine = cfg->store == RC_CONFIG_STORE_POSTGRES ? &rc_store_pg_ops : &rc_store_sqlite_ops,
        .postgres_url = cfg->postgres_url,
        .postgres_password = cfg->postgres_password,
        .pool = cfg->postgres_pool,
    };
    g.srv = srv;
    g.closed = false;
    int rc = rc_store_open(out, &sc, on_store_reply, NULL, err);
    if (rc == 0 && cfg->store == RC_CONFIG_STORE_POSTGRES)
        rc_log(RC_LOG_INFO, "store_opened", "engine=postgres pool=%u max_batch=%u",
               cfg->postgres_pool, cfg->store_max_batch);
    else if (rc == 0)
        rc_log(RC_LOG_INFO, "store_opened",
               "engine=sqlite data_dir=\"%s\" synchronous=%s max_batch=%u", cfg->data_dir,
               rc_store_sync_name(sc.synchronous), cfg->store_max_batch);
    return rc;
}

int rc_api_store_check(const struct rc_config *cfg, struct rc_err *err)
{
    if (cfg->store != RC_CONFIG_STORE_POSTGRES)
        return 0;
    struct rc_store_config sc = {.postgres_url = cfg->postgres_url,
                                 .postgres_password = cfg->postgres_password};
    return rc_store_pg_check(&sc, err);
}

int rc_api_store_start(struct rc_store *st, struct rc_err *err)
{
    int rc = rc_store_start(st, err);
    if (rc < 0)
        return rc;
    rc = pthread_create(&g.thread, NULL, expiry_main, NULL);
    if (rc != 0) {
        rc_err_set(err, 500, "start_failed", "cannot start the expiry thread: %s", strerror(rc));
        return -rc;
    }
    g.started = true;
    return 0;
}

/* The close fence, on each shard: it was posted after the drain message, so
 * the shard is draining now and submits nothing more (see dispatch). */
static void fence_done(struct rc_post *p)
{
    free(p);
    pthread_mutex_lock(&g.lock);
    g.fenced++;
    pthread_cond_broadcast(&g.barrier_cond);
    pthread_mutex_unlock(&g.lock);
}

static void run_fence(struct rc_shard *s, struct rc_post *p)
{
    (void)s;
    fence_done(p);
}

/* g.lock held; false once the deadline passed. */
static bool wait_until(bool (*done)(void), const struct timespec *deadline)
{
    while (!done())
        if (pthread_cond_timedwait(&g.barrier_cond, &g.lock, deadline) == ETIMEDOUT)
            return done();
    return true;
}

static bool all_fenced(void)
{
    return g.fenced >= g.srv->nshards;
}

static bool barrier_answered(void)
{
    return g.barrier >= g.barriers;
}

void rc_api_store_close(struct rc_store *st)
{
    pthread_mutex_lock(&g.lock);
    if (st && g.started && !g.closed) {
        /* 1. a fence behind each shard's drain message: once every shard has
         *    run it, no shard submits anything more (draining shards answer
         *    503 instead); 2. a barrier request on every store worker: each
         *    answers it after everything queued to it before (FIFO queue,
         *    batches answered in order), so every answer in flight has been
         *    posted to its shard.
         *    Both bounded by CLOSE_WAIT_S in case a shard or the disk hangs. */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += CLOSE_WAIT_S;
        g.fenced = 0;
        for (unsigned i = 0; i < g.srv->nshards; i++) {
            struct rc_post *f = calloc(1, sizeof(*f));
            if (!f) {
                g.fenced++;
                continue;
            }
            f->run = run_fence;
            f->discard = fence_done;
            rc_shard_post(g.srv->shards[i], f);
        }
        if (wait_until(all_fenced, &deadline)) {
            g.barrier = 0;
            g.barriers = 0;
            for (unsigned i = 0; i < rc_store_workers(st); i++) {
                struct rc_store_req *req = rc_store_req_new(RC_STORE_STATS, NULL);
                if (!req)
                    continue; /* out of memory: that worker is not waited for */
                req->origin = &barrier_origin;
                g.barriers++;
                rc_store_submit_to(st, i, req);
            }
            (void)wait_until(barrier_answered, &deadline);
        }
    }
    g.closed = true;
    pthread_mutex_unlock(&g.lock);
}

void rc_api_store_stop(struct rc_store *st)
{
    rc_api_store_close(NULL);
    rc_store_stop(st);
    if (g.started) {
        pthread_mutex_lock(&g.lock);
        g.stop = true;
        pthread_cond_signal(&g.cond);
        pthread_mutex_unlock(&g.lock);
        pthread_join(g.thread, NULL);
        g.started = false;
    }
    free(g.heap);
    g.heap = NULL;
    g.n = g.cap = 0;
    rc_api_store_index_reset();
}
