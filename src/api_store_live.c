/* api_store_live.c - the live side of the notification and subscription
 * API: delivery of stored notifications to users' connections, durable user
 * subscriptions applied to live connections (loaded at authentication,
 * changed by the HTTP API, removed at expiry by the expiry thread), the
 * per-shard user -> connections index, and the module's lifecycle (see
 * api_store.h for threads and flow). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_store_internal.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/conn.h"
#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"
#include "ringcast/ws.h"
#include "ringcast/ws_frame.h"

#define LOAD_PAGE 100u         /* durable subscriptions loaded per request at authentication */
#define LOAD_PAGES_MAX 10      /* so at most 1000 per user are applied to a connection */
#define CLOSE_WAIT_S 5         /* rc_api_store_close waits this long for answers in flight */
#define EXPIRY_MAX 100000u     /* pending expiries (~200 bytes each) */
#define HELD_CHANGES_MAX 4096u /* changes held per connection while its subscriptions load */

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
    bool barrier;        /* the close barrier was answered */
    unsigned fenced;     /* shards that saw the close fence (after their drain) */
    pthread_t thread;    /* main thread only */
    struct expiry *heap; /* min-heap on at_ms */
    size_t n, cap;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .barrier_cond = PTHREAD_COND_INITIALIZER};

/* per-shard index of users' connections (see "per-shard index" below) */
static struct {
    json_t *map;
    size_t adds;
    /* lines a user can repeat on every connect: at most one per LIVE_LOG_MS
     * per shard (shard clock), with a count */
    struct rc_log_limit slow_log;    /* durable_load_slow */
    struct rc_log_limit refused_log; /* durable_subscription_refused */
    struct rc_log_limit failed_log;  /* durable_subscription_failed */
} g_users[RC_MAX_SHARDS];

#define LIVE_LOG_MS 10000u

/* origin of the close barrier request (never a shard) */
static char barrier_origin;

struct notify_post {
    struct rc_api_store_post base;
    struct rc_evbuf *ev;
};

enum change { CHG_APPLY, CHG_PAUSED, CHG_DELETED, CHG_EXPIRED };

struct change_post {
    struct rc_api_store_post base;
    enum change what;
    char user[RC_API_STORE_USER_MAX + 1];
    char id[RC_STORE_ID_MAX];
    char *topic;        /* CHG_APPLY */
    char *filter;       /* CHG_APPLY: payload_filter as JSON text, NULL = none */
    int64_t expires_ms; /* 0 = never */
};

static void run_notify(struct rc_shard *s, struct rc_api_store_post *p);
static void run_change(struct rc_shard *s, struct rc_api_store_post *p);

static void discard_notify(struct rc_api_store_post *p)
{
    struct notify_post *n = RC_CONTAINER_OF(p, struct notify_post, base);
    rc_evbuf_unref(n->ev);
    free(n);
}

static void discard_change(struct rc_api_store_post *p)
{
    struct change_post *c = RC_CONTAINER_OF(p, struct change_post, base);
    free(c->topic);
    free(c->filter);
    free(c);
}

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

static int64_t rec_time(const json_t *rec, const char *key)
{
    json_t *v = json_object_get(rec, key);
    int64_t ms = 0;
    if (json_is_string(v) &&
        rc_store_time_parse(json_string_value(v), json_string_length(v), &ms) == 0)
        return ms;
    return 0;
}

static void post_change_all(enum change what, const char *user, const char *id, const char *topic,
                            const json_t *filter, int64_t expires_ms)
{
    struct rc_server *srv = g.srv;
    char *ftext = NULL;
    if (what == CHG_APPLY && json_is_object(filter) && json_object_size(filter) > 0)
        ftext = json_dumps(filter, JSON_COMPACT);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct change_post *c = calloc(1, sizeof(*c));
        if (!c)
            continue; /* that shard misses the change until the user reconnects */
        c->base.post.kind = RC_POST_STORE;
        c->base.run = run_change;
        c->base.discard = discard_change;
        c->what = what;
        snprintf(c->user, sizeof(c->user), "%s", user);
        snprintf(c->id, sizeof(c->id), "%s", id);
        c->expires_ms = expires_ms;
        if (what == CHG_APPLY) {
            c->topic = strdup(topic ? topic : "");
            c->filter = ftext ? strdup(ftext) : NULL;
            if (!c->topic || (ftext && !c->filter)) {
                discard_change(&c->base);
                continue;
            }
        }
        rc_shard_post(srv->shards[i], &c->base.post);
    }
    free(ftext);
}

/* A subscription record was created or changed status. */
static void sub_changed(const json_t *rec, bool deleted)
{
    const char *user = json_string_value(json_object_get(rec, "user_id"));
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *status = json_string_value(json_object_get(rec, "status"));
    if (!user || !id)
        return;
    int64_t exp = rec_time(rec, "expires_at");
    if (deleted) {
        post_change_all(CHG_DELETED, user, id, NULL, NULL, 0);
    } else if (status && strcmp(status, "active") == 0) {
        post_change_all(CHG_APPLY, user, id, json_string_value(json_object_get(rec, "topic")),
                        json_object_get(rec, "payload_filter"), exp);
        if (exp) {
            heap_push(exp, user, id);
            pthread_cond_signal(&g.cond);
        }
    } else {
        post_change_all(CHG_PAUSED, user, id, NULL, NULL, 0);
    }
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
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct notify_post *p = calloc(1, sizeof(*p));
        if (!p)
            continue;
        p->base.post.kind = RC_POST_STORE;
        p->base.run = run_notify;
        p->base.discard = discard_notify;
        rc_evbuf_ref(ev);
        p->ev = ev;
        rc_shard_post(srv->shards[i], &p->base.post);
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
        g.barrier = true;
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
                    int64_t exp = rec_time(rec, "expires_at");
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
    rc_shard_post(req->origin, &w->base.post);
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
                post_change_all(CHG_EXPIRED, g.heap[0].user, g.heap[0].id, NULL, NULL, 0);
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
    };
    g.srv = srv;
    g.closed = false;
    int rc = rc_store_open(out, &sc, on_store_reply, NULL, err);
    if (rc == 0)
        rc_log(RC_LOG_INFO, "store_opened", "data_dir=\"%s\" synchronous=%s max_batch=%u",
               cfg->data_dir, rc_store_sync_name(sc.synchronous), cfg->store_max_batch);
    return rc;
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
static void fence_done(struct rc_api_store_post *p)
{
    free(p);
    pthread_mutex_lock(&g.lock);
    g.fenced++;
    pthread_cond_broadcast(&g.barrier_cond);
    pthread_mutex_unlock(&g.lock);
}

static void run_fence(struct rc_shard *s, struct rc_api_store_post *p)
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
    return g.barrier;
}

void rc_api_store_close(struct rc_store *st)
{
    pthread_mutex_lock(&g.lock);
    if (st && g.started && !g.closed) {
        /* 1. a fence behind each shard's drain message: once every shard has
         *    run it, no shard submits anything more (draining shards answer
         *    503 instead); 2. a barrier request: the store answers it after
         *    everything queued before it (FIFO queue, batches answered in
         *    order), so every answer in flight has been posted to its shard.
         *    Both bounded by CLOSE_WAIT_S in case a shard or the disk hangs. */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += CLOSE_WAIT_S;
        g.fenced = 0;
        for (unsigned i = 0; i < g.srv->nshards; i++) {
            struct rc_api_store_post *f = calloc(1, sizeof(*f));
            if (!f) {
                g.fenced++;
                continue;
            }
            f->post.kind = RC_POST_STORE;
            f->run = run_fence;
            f->discard = fence_done;
            rc_shard_post(g.srv->shards[i], &f->post);
        }
        struct rc_store_req *req = NULL;
        if (wait_until(all_fenced, &deadline) && (req = rc_store_req_new(RC_STORE_STATS, NULL))) {
            req->origin = &barrier_origin;
            g.barrier = false;
            rc_store_submit(st, req);
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
    for (size_t i = 0; i < RC_MAX_SHARDS; i++) {
        json_decref(g_users[i].map);
        g_users[i].map = NULL;
        g_users[i].adds = 0;
        g_users[i].slow_log = (struct rc_log_limit){0};
        g_users[i].refused_log = (struct rc_log_limit){0};
        g_users[i].failed_log = (struct rc_log_limit){0};
    }
}

/* ---- per-shard index: user -> its authenticated WebSocket/SSE connections ------------- */

/* g_users[i].map (declared at the top): a JSON object mapping a user id to
 * an array of connection ids (integers); touched only by shard i's thread
 * (freed by rc_api_store_stop once the shards have joined). A connection is added when
 * it authenticates and checked on every use: an id whose slot was closed or
 * reused, or whose connection is no longer open, drops out. A full sweep runs
 * after as many additions as there are users (plus 64), so stale entries stay
 * bounded at amortised O(1) per addition. Delivery to a user therefore costs
 * O(that user's connections), not O(the shard's connections). */

static bool indexed_conn_ok(const struct rc_conn *c, const char *user)
{
    return c && rc_conn_is_open(c) && c->authenticated && strcmp(c->user_id, user) == 0;
}

static void index_prune(struct rc_shard *s, json_t *ids, const char *user)
{
    for (size_t i = json_array_size(ids); i-- > 0;) {
        uint64_t id = (uint64_t)json_integer_value(json_array_get(ids, i));
        if (!indexed_conn_ok(rc_shard_conn(s, id), user))
            json_array_remove(ids, i);
    }
}

static void index_sweep(struct rc_shard *s, json_t *map)
{
    const char *key;
    json_t *ids;
    void *tmp;
    json_object_foreach_safe(map, tmp, key, ids)
    {
        index_prune(s, ids, key);
        if (json_array_size(ids) == 0)
            json_object_del(map, key);
    }
}

/* c just authenticated (WebSocket or SSE). */
static void index_add(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (s->id >= RC_MAX_SHARDS)
        return;
    json_t **map = &g_users[s->id].map;
    if (!*map && !(*map = json_object()))
        return;
    json_t *ids = json_object_get(*map, c->user_id);
    if (ids) {
        index_prune(s, ids, c->user_id);
    } else {
        ids = json_array();
        if (!ids || json_object_set_new(*map, c->user_id, ids) < 0)
            return; /* out of memory: this connection gets no live notifications */
    }
    if (json_array_append_new(ids, json_integer((json_int_t)c->id)) < 0)
        return;
    if (++g_users[s->id].adds >= json_object_size(*map) + 64) {
        index_sweep(s, *map);
        g_users[s->id].adds = 0;
    }
}

/* The (pruned) connection ids of user on s, or NULL. Valid until the next
 * index call on s. */
static json_t *index_conns(struct rc_shard *s, const char *user)
{
    json_t *ids = s->id < RC_MAX_SHARDS && g_users[s->id].map
                      ? json_object_get(g_users[s->id].map, user)
                      : NULL;
    if (ids)
        index_prune(s, ids, user);
    return ids;
}

/* ---- durable subscriptions on a shard's connections ------------------------------------- */

static json_t *announcement(const char *sub_id, const char *durable, const char *topic,
                            const char *reason)
{
    json_t *data = json_pack("{s:s, s:s}", "subscription", sub_id, "durable_subscription", durable);
    if (data && topic)
        json_object_set_new(data, "topic", json_string(topic));
    if (data && reason)
        json_object_set_new(data, "reason", json_string(reason));
    return data;
}

/* One record {type, data} to c (WebSocket message or SSE record); takes data. */
static void send_record(struct rc_conn *c, const char *type, json_t *data)
{
    if (!data)
        return;
    if (c->proto == RC_PROTO_WS) {
        rc_ws_send_reply(c, type, NULL, data);
    } else {
        char *txt = json_dumps(data, JSON_COMPACT);
        char rec[2048];
        int n = snprintf(rec, sizeof(rec), "event: %s\ndata: %s\n\n", type, txt ? txt : "{}");
        free(txt);
        if (n > 0 && (size_t)n < sizeof(rec) && rc_conn_queue_copy(c, rec, (size_t)n) < 0)
            rc_log(RC_LOG_DEBUG, "sse_queue_failed", "type=%s", type);
    }
    json_decref(data);
}

static void announce(struct rc_conn *c, const char *type, const char *sub_id, const char *durable,
                     const char *topic, const char *reason)
{
    send_record(c, type, announcement(sub_id, durable, topic, reason));
}

/* A durable subscription is applied like a live subscribe of c's identity: the
 * rules may have changed since it was created (a restart with other rules, a
 * token with a narrower topics claim). false when refused: not applied, logged,
 * counted (durable_refused) and told to c as an error record naming it. */
static bool durable_allowed(struct rc_conn *c, const char *id, const char *topic)
{
    struct rc_err err = {0};
    if (rc_auth_check_subscribe(c->shard->srv->auth, c->identity, topic, strlen(topic), &err) == 0)
        return true;
    struct rc_shard *s = c->shard;
    uint64_t n;
    s->ctr.durable_refused++;
    if (s->id < RC_MAX_SHARDS &&
        rc_log_limit_take(&g_users[s->id].refused_log, s->now_ms, LIVE_LOG_MS, &n))
        rc_log(RC_LOG_WARN, "durable_subscription_refused",
               "id=%s user=\"%s\" conn=%016llx refused=%llu reason=\"%s\" (at most one line "
               "per 10 s per shard; counted in durable_refused)",
               id, c->user_id, (unsigned long long)c->id, (unsigned long long)n, err.msg);
    char msg[sizeof(err.msg) + 160];
    snprintf(msg, sizeof(msg),
             "durable subscription %s is not applied to this connection: %s; delete it or "
             "change the topic rules",
             id, err.msg);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "code", err.code ? err.code : "forbidden",
                             "message", msg, "durable_subscription", id, "topic", topic);
    send_record(c, "error", data);
    return false;
}

static bool live_conn_of(const struct rc_conn *c, const char *user)
{
    return rc_conn_is_open(c) && c->proto != RC_PROTO_HTTP && c->authenticated &&
           strcmp(c->user_id, user) == 0;
}

static void apply_sub(struct rc_conn *c, const char *id, const char *topic, const json_t *filter,
                      int64_t expires_ms)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
        if (strcmp(sub->durable_id, id) == 0)
            return; /* already applied (loaded and announced both) */
    if (expires_ms && expires_ms <= rc_api_store_wall_ms())
        return;
    if (!durable_allowed(c, id, topic))
        return;
    struct rc_err err = {0};
    struct rc_sub *sub = rc_broker_subscribe(c, topic, strlen(topic), filter, &err);
    if (!sub) {
        struct rc_shard *s = c->shard;
        uint64_t n;
        if (s->id < RC_MAX_SHARDS &&
            rc_log_limit_take(&g_users[s->id].failed_log, s->now_ms, LIVE_LOG_MS, &n))
            rc_log(RC_LOG_WARN, "durable_subscription_failed",
                   "id=%s user=\"%s\" failed=%llu reason=\"%s\" (at most one line per 10 s "
                   "per shard)",
                   id, c->user_id, (unsigned long long)n, err.msg);
        return;
    }
    snprintf(sub->durable_id, sizeof(sub->durable_id), "%s", id);
    if (sub->claim_pending && c->proto == RC_PROTO_WS) {
        /* max_subscribers: announced once the topic's owner admits it (or
         * refused with too_many_subscribers) */
        sub->pending_reply = announcement(sub->id, id, topic, NULL);
        return;
    }
    announce(c, "subscribed", sub->id, id, topic, NULL);
}

static void remove_sub(struct rc_conn *c, const char *id, const char *reason)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn) {
        if (strcmp(sub->durable_id, id) != 0)
            continue;
        char sid[RC_SUB_ID_LEN + 1];
        memcpy(sid, sub->id, sizeof(sid));
        rc_broker_unsubscribe_id(c, sid);
        announce(c, "unsubscribed", sid, id, NULL, reason);
        return;
    }
}

static const char *const change_names[] = {"active", "paused", "deleted", "expired"};

static void change_conn(struct rc_conn *c, enum change what, const char *id, const char *topic,
                        const json_t *filter, int64_t expires_ms)
{
    if (what == CHG_APPLY)
        apply_sub(c, id, topic, filter, expires_ms);
    else
        remove_sub(c, id, change_names[what]);
}

/* While c's durable subscriptions load, a change committed meanwhile is held in
 * c->durable_changes and replayed after the pages (load_done), in commit order:
 * a page read before a delete shows the subscription, the delete then removes
 * it. false when it cannot be held (apply it now). */
static bool hold_change(struct rc_conn *c, const struct change_post *ch)
{
    if (!c->durable_changes)
        return false;
    size_t held = json_array_size(c->durable_changes);
    if (held >= HELD_CHANGES_MAX) {
        /* past the cap: one line per connection (not one per change: the user
         * makes the changes), and a null that replay_changes tells the client of */
        if (held == HELD_CHANGES_MAX && json_array_append_new(c->durable_changes, json_null()) == 0)
            rc_log(RC_LOG_WARN, "durable_change_dropped",
                   "conn=%016llx user=\"%s\" id=%s (more than %u changes while loading; the "
                   "rest are not applied to this connection, which is told to reconnect)",
                   (unsigned long long)c->id, c->user_id, ch->id, HELD_CHANGES_MAX);
        return true;
    }
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s?, s:s?, s:I}", "what", (int)ch->what, "id", ch->id,
                            "user", ch->user, "topic", ch->topic, "filter", ch->filter, "expires",
                            (json_int_t)ch->expires_ms);
    return rec && json_array_append_new(c->durable_changes, rec) == 0;
}

static void replay_changes(struct rc_conn *c)
{
    json_t *held = c->durable_changes;
    c->durable_changes = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(held, i, rec)
    {
        if (json_is_null(rec)) { /* hold_change dropped the changes after this one */
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "more than %u changes to your durable subscriptions while they loaded; the "
                     "later ones are not applied to this connection: reconnect",
                     HELD_CHANGES_MAX);
            rc_conn_send_error(c, NULL, "durable_subscriptions_unavailable", msg, NULL);
            break;
        }
        const char *ftext = json_string_value(json_object_get(rec, "filter"));
        json_t *filter = ftext ? json_loads(ftext, 0, NULL) : NULL;
        change_conn(c, (enum change)json_integer_value(json_object_get(rec, "what")),
                    json_string_value(json_object_get(rec, "id")),
                    json_string_value(json_object_get(rec, "topic")), filter,
                    json_integer_value(json_object_get(rec, "expires")));
        json_decref(filter);
    }
    json_decref(held);
}

static void run_change(struct rc_shard *s, struct rc_api_store_post *p)
{
    struct change_post *ch = RC_CONTAINER_OF(p, struct change_post, base);
    json_t *filter = ch->filter ? json_loads(ch->filter, 0, NULL) : NULL;
    json_t *ids = index_conns(s, ch->user);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        struct rc_conn *c = rc_shard_conn(s, (uint64_t)json_integer_value(json_array_get(ids, i)));
        if (!c || !live_conn_of(c, ch->user) || hold_change(c, ch))
            continue;
        change_conn(c, ch->what, ch->id, ch->topic, filter, ch->expires_ms);
    }
    json_decref(filter);
    discard_change(p);
}

static void run_notify(struct rc_shard *s, struct rc_api_store_post *p)
{
    struct notify_post *np = RC_CONTAINER_OF(p, struct notify_post, base);
    struct rc_evbuf *ev = np->ev;
    uint64_t reached = 0;
    for (size_t u = 0; u < ev->nusers; u++) {
        /* recipients are distinct and a connection has one user: no duplicates */
        const char *user = ev->users[u];
        json_t *ids = index_conns(s, user);
        for (size_t i = 0; i < json_array_size(ids); i++) {
            struct rc_conn *c =
                rc_shard_conn(s, (uint64_t)json_integer_value(json_array_get(ids, i)));
            if (!c || !live_conn_of(c, user))
                continue;
            int rc = c->proto == RC_PROTO_WS ? rc_conn_queue_evbuf(c, ev, ev->ws, ev->ws_len)
                                             : rc_conn_queue_evbuf(c, ev, ev->sse, ev->sse_len);
            if (rc == 0)
                reached++;
        }
    }
    s->ctr.deliveries += reached;
    discard_notify(p);
}

static bool load_page(struct rc_shard *s, struct rc_api_store_wait *w)
{
    json_t *args = json_pack("{s:s, s:s, s:I, s:I}", "user_id", w->user, "status", "active", "page",
                             (json_int_t)w->page, "page_size", (json_int_t)LOAD_PAGE);
    return args && rc_api_store_submit(s, w, args);
}

bool rc_api_store_conn_authed(struct rc_conn *c, rc_api_store_ready_fn ready)
{
    struct rc_shard *s = c->shard;
    if (!c->authenticated || !c->user_id[0])
        return false;
    index_add(c);
    if (!s->srv->store || s->draining)
        return false;
    struct rc_api_store_wait *w = rc_api_store_wait_new(RC_API_STORE_P_LOAD, RC_STORE_SUB_LIST, c);
    if (!w)
        return false;
    w->page = 1;
    w->ready = ready;
    w->acc = json_array();
    snprintf(w->user, sizeof(w->user), "%s", c->user_id);
    if (!w->acc || !load_page(s, w)) {
        json_decref(w->acc);
        free(w);
        return false;
    }
    c->durable_changes = json_array(); /* NULL (out of memory): changes apply at once */
    return true;
}

void rc_api_store_greet_late(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    s->ctr.durable_load_timeouts++;
    if (s->id >= RC_MAX_SHARDS)
        return;
    uint64_t late;
    if (!rc_log_limit_take(&g_users[s->id].slow_log, s->now_ms, LIVE_LOG_MS, &late))
        return;
    rc_log(RC_LOG_WARN, "durable_load_slow",
           "shard=%u conn=%016llx user=\"%s\" late=%llu waited_ms=%u (greeted without their "
           "durable subscriptions, which apply when the store answers; is the disk of data_dir "
           "slow?)",
           s->id, (unsigned long long)c->id, c->user_id, (unsigned long long)late,
           RC_API_STORE_GREET_WAIT_MS);
}

static void load_free(struct rc_api_store_wait *w)
{
    rc_store_req_free(w->req);
    json_decref(w->acc);
    free(w);
}

/* Every page is in (or the load failed): greet, then apply them all in this
 * same turn, so no event slips between the greeting and the subscriptions. */
static void load_done(struct rc_conn *c, struct rc_api_store_wait *w)
{
    w->ready(c);
    size_t i;
    json_t *rec;
    json_array_foreach(w->acc, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *topic = json_string_value(json_object_get(rec, "topic"));
        json_t *f = json_object_get(rec, "payload_filter");
        if (id && topic)
            apply_sub(c, id, topic, json_is_object(f) && json_object_size(f) ? f : NULL,
                      rec_time(rec, "expires_at"));
    }
    replay_changes(c);
    load_free(w);
}

/* The answer to a load request (RC_API_STORE_P_LOAD), on its shard: keep the
 * page if c (NULL when gone) is still that user's live connection, then ask for
 * the next page or finish (load_done). Frees w (or resubmits it). */
void rc_api_store_load_answered(struct rc_shard *s, struct rc_api_store_wait *w, struct rc_conn *c)
{
    struct rc_store_req *req = w->req;
    if (!c || !live_conn_of(c, w->user)) {
        load_free(w);
        return;
    }
    if (req->status != 200) {
        /* debug: a failing store says so itself (store_commit_failed, rate-limited) */
        rc_log_debug("durable_subscriptions_unavailable",
                     "conn=%016llx user=\"%s\" status=%d reason=\"%s\"", (unsigned long long)c->id,
                     w->user, req->status, req->message);
        w->ready(c);
        char msg[RC_STORE_MSG_MAX + 128];
        snprintf(msg, sizeof(msg),
                 "your durable subscriptions could not be loaded (%s); they are not applied to "
                 "this connection: reconnect later",
                 req->message);
        rc_conn_send_error(c, NULL, "durable_subscriptions_unavailable", msg, NULL);
        replay_changes(c); /* what changed meanwhile is known: apply it */
        load_free(w);
        return;
    }
    bool more = req->total > (uint64_t)w->page * LOAD_PAGE && w->page < LOAD_PAGES_MAX;
    if (json_array_extend(w->acc, req->result) < 0)
        more = false; /* out of memory: apply what is in */
    rc_store_req_free(req);
    w->req = NULL;
    if (more) {
        w->page++;
        if (load_page(s, w))
            return;
    }
    load_done(c, w);
}
