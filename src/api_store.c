/* api_store.c - notification and user subscription endpoints, live delivery
 * of stored notifications, durable user subscriptions on live connections
 * (see api_store.h for threads and flow, docs/NOTIFICATIONS_API.md for the
 * endpoints). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringcast/api_store.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/conn.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"
#include "ringcast/ws.h"
#include "ringcast/ws_frame.h"

#define USER_MAX 128       /* = RC_STORE_USER_ID_MAX; conn->user_id holds 128 + NUL */
#define SEG_MAX 256        /* one decoded path segment / query value, at most */
#define LOAD_PAGE 100u     /* durable subscriptions loaded per request at authentication */
#define LOAD_PAGES_MAX 10  /* so at most 1000 per user are applied to a connection */
#define CLOSE_WAIT_S 5     /* rc_api_store_close waits this long for answers in flight */
#define EXPIRY_MAX 100000u /* pending expiries (~200 bytes each) */

static const char NOTIF_PREFIX[] = "/api/realtime/notifications";
static const char SUBS_PREFIX[] = "/api/realtime/subscriptions";

/* ---- process-wide state (reply function and expiry thread) ----------------------------- */

struct expiry {
    int64_t at_ms;
    char user[USER_MAX + 1];
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
} g_users[RC_MAX_SHARDS];

/* origin of the close barrier request (never a shard) */
static char barrier_origin;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- inbox messages ------------------------------------------------------------------- */

enum purpose { P_HTTP, P_LOAD };

/* A request's way back: allocated by the shard at submit, filled and posted
 * by the reply function. */
struct wait_post {
    struct rc_api_store_post base;
    enum purpose purpose;
    enum rc_store_op op;
    uint64_t conn_id;
    uint32_t serial;
    uint32_t page;            /* P_LOAD */
    char user[USER_MAX + 1];  /* P_LOAD: whose subscriptions; unread count: the user */
    struct rc_store_req *req; /* the answer */
};

struct notify_post {
    struct rc_api_store_post base;
    struct rc_evbuf *ev;
};

enum change { CHG_APPLY, CHG_PAUSED, CHG_DELETED, CHG_EXPIRED };

struct change_post {
    struct rc_api_store_post base;
    enum change what;
    char user[USER_MAX + 1];
    char id[RC_STORE_ID_MAX];
    char *topic;        /* CHG_APPLY */
    char *filter;       /* CHG_APPLY: payload_filter as JSON text, NULL = none */
    int64_t expires_ms; /* 0 = never */
};

static void run_wait(struct rc_shard *s, struct rc_api_store_post *p);
static void run_notify(struct rc_shard *s, struct rc_api_store_post *p);
static void run_change(struct rc_shard *s, struct rc_api_store_post *p);

static void discard_wait(struct rc_api_store_post *p)
{
    struct wait_post *w = RC_CONTAINER_OF(p, struct wait_post, base);
    rc_store_req_free(w->req);
    free(w);
}

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

static struct wait_post *wait_new(enum purpose purpose, enum rc_store_op op, struct rc_conn *c)
{
    struct wait_post *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base.post.kind = RC_POST_STORE;
    w->base.run = run_wait;
    w->base.discard = discard_wait;
    w->purpose = purpose;
    w->op = op;
    w->conn_id = c->id;
    return w;
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
    struct wait_post *w = (struct wait_post *)(uintptr_t)req->tag;
    pthread_mutex_lock(&g.lock);
    if (req->origin == &barrier_origin) {
        /* everything submitted before it has been answered and posted */
        g.barrier = true;
        pthread_cond_broadcast(&g.barrier_cond);
    }
    if (g.closed || !w) {
        pthread_mutex_unlock(&g.lock);
        rc_store_req_free(req);
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
            if (w->purpose == P_LOAD) {
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
        int64_t now = wall_ms();
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

static void announce(struct rc_conn *c, const char *type, const char *sub_id, const char *durable,
                     const char *topic, const char *reason)
{
    json_t *data = json_pack("{s:s, s:s}", "subscription", sub_id, "durable_subscription", durable);
    if (!data)
        return;
    if (topic)
        json_object_set_new(data, "topic", json_string(topic));
    if (reason)
        json_object_set_new(data, "reason", json_string(reason));
    if (c->proto == RC_PROTO_WS) {
        rc_ws_send_reply(c, type, NULL, data);
    } else {
        char *txt = json_dumps(data, JSON_COMPACT);
        char rec[1024];
        int n = snprintf(rec, sizeof(rec), "event: %s\ndata: %s\n\n", type, txt ? txt : "{}");
        free(txt);
        if (n > 0 && (size_t)n < sizeof(rec) && rc_conn_queue_copy(c, rec, (size_t)n) < 0)
            rc_log(RC_LOG_DEBUG, "sse_queue_failed", "type=%s", type);
    }
    json_decref(data);
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
    if (expires_ms && expires_ms <= wall_ms())
        return;
    struct rc_err err = {0};
    struct rc_sub *sub = rc_broker_subscribe(c, topic, strlen(topic), filter, &err);
    if (!sub) {
        rc_log(RC_LOG_WARN, "durable_subscription_failed", "id=%s user=\"%s\" reason=\"%s\"", id,
               c->user_id, err.msg);
        return;
    }
    snprintf(sub->durable_id, sizeof(sub->durable_id), "%s", id);
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

static void run_change(struct rc_shard *s, struct rc_api_store_post *p)
{
    struct change_post *ch = RC_CONTAINER_OF(p, struct change_post, base);
    static const char *const reasons[] = {"active", "paused", "deleted", "expired"};
    json_t *filter = ch->filter ? json_loads(ch->filter, 0, NULL) : NULL;
    json_t *ids = index_conns(s, ch->user);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        struct rc_conn *c = rc_shard_conn(s, (uint64_t)json_integer_value(json_array_get(ids, i)));
        if (!c || !live_conn_of(c, ch->user))
            continue;
        if (ch->what == CHG_APPLY)
            apply_sub(c, ch->id, ch->topic, filter, ch->expires_ms);
        else
            remove_sub(c, ch->id, reasons[ch->what]);
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

static bool submit(struct rc_shard *s, struct wait_post *w, json_t *args)
{
    struct rc_store_req *req = rc_store_req_new(w->op, args);
    if (!req)
        return false;
    req->origin = s;
    req->tag = (uint64_t)(uintptr_t)w;
    rc_store_submit(s->srv->store, req);
    return true;
}

static bool load_page(struct rc_shard *s, struct wait_post *w)
{
    json_t *args = json_pack("{s:s, s:s, s:I, s:I}", "user_id", w->user, "status", "active", "page",
                             (json_int_t)w->page, "page_size", (json_int_t)LOAD_PAGE);
    return args && submit(s, w, args);
}

void rc_api_store_conn_authed(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (!c->authenticated || !c->user_id[0])
        return;
    index_add(c);
    if (!s->srv->store || s->draining)
        return;
    struct wait_post *w = wait_new(P_LOAD, RC_STORE_SUB_LIST, c);
    if (!w)
        return;
    w->page = 1;
    snprintf(w->user, sizeof(w->user), "%s", c->user_id);
    if (!load_page(s, w))
        free(w);
}

/* ---- answers -------------------------------------------------------------------------------- */

static void answer_http(struct rc_conn *c, struct wait_post *w)
{
    struct rc_store_req *req = w->req;
    if (req->status >= 400) {
        rc_http_deferred_error(c, w->serial, req->status, req->code ? req->code : "error",
                               req->message);
        return;
    }
    if (req->status == 204 || !req->result) {
        rc_http_deferred_json(c, w->serial, req->status, "", 0);
        return;
    }
    json_t *body = req->result;
    json_t *wrapped = NULL;
    if (w->op == RC_STORE_NOTIF_UNREAD_COUNT) {
        wrapped = json_pack("{s:s, s:O}", "user_id", w->user, "count", req->result);
        body = wrapped;
    }
    char *txt = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char extra[64] = "";
    if (json_is_array(body)) /* seed 001's lists are bare arrays: the total rides a header */
        snprintf(extra, sizeof(extra), "X-Total-Count: %llu\r\n",
                 (unsigned long long)req->total);
    if (txt)
        rc_http_deferred_respond(c, w->serial, req->status, extra[0] ? extra : NULL, txt,
                                 strlen(txt));
    else
        rc_http_deferred_error(c, w->serial, 503, "no_memory", "out of memory; retry later");
    free(txt);
    json_decref(wrapped);
}

static void run_wait(struct rc_shard *s, struct rc_api_store_post *p)
{
    struct wait_post *w = RC_CONTAINER_OF(p, struct wait_post, base);
    struct rc_conn *c = rc_shard_conn(s, w->conn_id);
    struct rc_store_req *req = w->req;
    if (w->purpose == P_HTTP) {
        if (c)
            answer_http(c, w);
        discard_wait(p);
        return;
    }
    /* P_LOAD: apply the page to c if it is still that user's live connection */
    if (!c || !live_conn_of(c, w->user) || req->status != 200) {
        discard_wait(p);
        return;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(req->result, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *topic = json_string_value(json_object_get(rec, "topic"));
        json_t *f = json_object_get(rec, "payload_filter");
        if (id && topic)
            apply_sub(c, id, topic, json_is_object(f) && json_object_size(f) ? f : NULL,
                      rec_time(rec, "expires_at"));
    }
    bool more = req->total > (uint64_t)w->page * LOAD_PAGE && w->page < LOAD_PAGES_MAX;
    rc_store_req_free(req);
    w->req = NULL;
    if (more) {
        w->page++;
        if (load_page(s, w))
            return;
    }
    free(w);
}

/* ---- access -----------------------------------------------------------------------------------
 */

static bool is_loopback(const struct rc_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &c->peer.sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Who is calling: a backend (API key with the notify scope, or a loopback
 * client when no key is configured) -> user[0] == '\0'; a client with a JWT
 * -> its sub in user. false when refused (answered 401/403). */
static bool caller(struct rc_http_ctx *x, char user[USER_MAX + 1])
{
    const struct rc_auth *auth = x->conn->shard->srv->auth;
    struct rc_err err = {0}, kerr = {0};
    struct rc_slice key = {0}, bearer = {0};
    user[0] = '\0';
    const struct rc_http_header *h = rc_http_find_header(x->req, "X-API-Key");
    if (h)
        key = h->value;
    if ((h = rc_http_find_header(x->req, "Authorization")) &&
        rc_auth_token_from_header(h->value, &bearer, &err) < 0)
        bearer = (struct rc_slice){0};
    size_t nkeys = rc_auth_api_key_count(auth);
    int krc = -ENOENT;
    if (nkeys && (key.n || bearer.n)) {
        krc = rc_auth_check_api_key(auth, key.n ? key : bearer, RC_AUTH_SCOPE_NOTIFY, &kerr);
        if (krc == 0)
            return true;
    }
    if (!key.n && bearer.n) {
        struct rc_auth_identity *id = NULL;
        if (rc_auth_authenticate(auth, bearer.p, bearer.n, (int64_t)time(NULL), &id, &err) == 0) {
            if (id->sub_len == 0 || id->sub_len > USER_MAX) {
                rc_auth_identity_free(id);
                rc_http_error(x, 403, "forbidden", "the token's sub is not a valid user id");
                return false;
            }
            memcpy(user, id->sub, id->sub_len + 1);
            rc_auth_identity_free(id);
            return true;
        }
        if (krc == -EACCES && strstr(kerr.msg, "scope")) {
            rc_http_error(x, 403, "forbidden", "%s", kerr.msg);
            return false;
        }
        const char *rsn = err.msg[0] ? err.msg : "the token is not valid";
        char hdr[] = "WWW-Authenticate: Bearer\r\n";
        char body[400];
        json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", "unauthorized", "message", rsn);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        int n = snprintf(body, sizeof(body), "%s", txt ? txt : "{}");
        free(txt);
        json_decref(j);
        rc_http_respond(x, 401, "application/json", hdr, body, (size_t)n);
        return false;
    }
    if (krc == -EACCES) {
        rc_http_error(x, 403, "forbidden", "%s", kerr.msg);
        return false;
    }
    if (nkeys == 0 && is_loopback(x->conn))
        return true;
    if (nkeys == 0) {
        rc_http_error(x, 403, "forbidden",
                      "no api_keys are configured, so the HTTP API accepts only loopback "
                      "clients (or a client's JWT for its own notifications and subscriptions)");
        return false;
    }
    static const char body[] =
        "{\"error\":{\"code\":\"unauthorized\",\"message\":\"an API key (notify scope) or a "
        "client JWT is required: send Authorization: Bearer <key or token> or X-API-Key\"}}";
    rc_http_respond(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", body,
                    sizeof(body) - 1);
    return false;
}

/* ---- request helpers --------------------------------------------------------------------------
 */

static json_t *body_object(struct rc_http_ctx *x)
{
    json_error_t jerr;
    if (x->body_len == 0) {
        rc_http_error(x, 400, "bad_json", "the request body must be a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        rc_http_error(x, 400, "bad_json", "body is not valid JSON: %s (line %d, column %d)",
                      jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        rc_http_error(x, 400, "bad_json", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Copy the query parameters named in keys into args (decoded strings). */
static bool query_into(struct rc_http_ctx *x, json_t *args, const char *const *keys)
{
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v)) {
        for (const char *const *name = keys; *name; name++) {
            if (!rc_slice_eq(k, *name))
                continue;
            char buf[SEG_MAX];
            ssize_t n = rc_http_url_decode(v, buf, sizeof(buf), true);
            if (n < 0) {
                rc_http_error(x, 400, "bad_query",
                              "query parameter %s is not valid percent-encoding or longer "
                              "than %d bytes",
                              *name, SEG_MAX - 1);
                return false;
            }
            json_object_set_new(args, *name, json_stringn(buf, (size_t)n));
        }
    }
    return true;
}

/* A user (JWT) acts only for itself: args.user_id must be absent (then it
 * is set) or equal to user. Backends pass. false when answered 403. */
static bool own_user(struct rc_http_ctx *x, json_t *args, const char *user)
{
    if (!user[0])
        return true;
    json_t *v = json_object_get(args, "user_id");
    if (!v || json_is_null(v)) {
        json_object_set_new(args, "user_id", json_string(user));
        return true;
    }
    if (json_is_string(v) && strcmp(json_string_value(v), user) == 0)
        return true;
    rc_http_error(x, 403, "forbidden",
                  "a client token may only act for its own user (user_id must equal the "
                  "token's sub)");
    return false;
}

/* Validate, defer and submit; takes args. */
static void dispatch(struct rc_http_ctx *x, enum rc_store_op op, json_t *args, const char *user)
{
    struct rc_shard *s = x->conn->shard;
    struct rc_err err = {0};
    if (!s->srv->store) {
        json_decref(args);
        rc_http_error(x, 503, "store_unavailable", "the durable store is not running");
        return;
    }
    if (s->draining) {
        json_decref(args);
        rc_http_error(x, 503, "shutting_down",
                      "the server is shutting down; retry against another instance or later");
        return;
    }
    if (rc_store_check(op, args, wall_ms(), &err) < 0) {
        json_decref(args);
        rc_http_error(x, err.status ? err.status : 400, err.code ? err.code : "bad_request", "%s",
                      err.msg);
        return;
    }
    struct wait_post *w = wait_new(P_HTTP, op, x->conn);
    if (!w) {
        json_decref(args);
        rc_http_error(x, 503, "no_memory", "out of memory; retry later");
        return;
    }
    if (user)
        snprintf(w->user, sizeof(w->user), "%s", user);
    w->serial = rc_http_defer(x);
    if (!submit(s, w, args)) {
        rc_http_deferred_error(x->conn, w->serial, 503, "no_memory", "out of memory; retry later");
        free(w);
    }
}

static void method_not_allowed(struct rc_http_ctx *x, const char *allow)
{
    char hdr[96], body[256];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%.*s is not "
                     "allowed here; use %s\"}}",
                     (int)(x->req->method_str.n > 16 ? 16 : x->req->method_str.n),
                     x->req->method_str.p, allow);
    rc_http_respond(x, 405, "application/json", hdr, body, (size_t)n);
}

static bool is_get(const struct rc_http_ctx *x)
{
    return x->req->method == RC_HTTP_GET || x->req->method == RC_HTTP_HEAD;
}

/* Split rest ("" or "/a/b/c") into up to 3 decoded segments; false when
 * answered (400) or when it has more segments (404). */
static bool segments(struct rc_http_ctx *x, struct rc_slice rest, char seg[3][SEG_MAX],
                     size_t *nseg)
{
    *nseg = 0;
    while (rest.n > 0) {
        if (rest.p[0] != '/' || *nseg == 3) {
            rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
            return false;
        }
        rest.p++;
        rest.n--;
        size_t len = 0;
        while (len < rest.n && rest.p[len] != '/')
            len++;
        ssize_t n =
            rc_http_url_decode((struct rc_slice){rest.p, len}, seg[*nseg], SEG_MAX - 1, false);
        if (n <= 0) {
            rc_http_error(x, n == 0 ? 404 : 400, n == 0 ? "not_found" : "bad_path",
                          n == 0 ? "empty path segment; see docs/API.md"
                                 : "a path segment is not valid percent-encoding or is longer "
                                   "than 255 bytes");
            return false;
        }
        seg[*nseg][n] = '\0';
        (*nseg)++;
        rest.p += len;
        rest.n -= len;
    }
    return true;
}

/* ---- notifications ------------------------------------------------------------------------------
 */

static const char *const LIST_KEYS[] = {"user_id", "status", "page", "page_size", NULL};
static const char *const USER_KEY[] = {"user_id", NULL};

static void notifications(struct rc_http_ctx *x, struct rc_slice rest)
{
    char seg[3][SEG_MAX];
    size_t nseg;
    char user[USER_MAX + 1];
    if (!segments(x, rest, seg, &nseg))
        return;
    if (nseg == 0) {
        if (x->req->method == RC_HTTP_POST) {
            if (!caller(x, user))
                return;
            if (user[0]) {
                rc_http_error(x, 403, "forbidden",
                              "creating notifications needs an API key with the notify scope");
                return;
            }
            json_t *args = body_object(x);
            if (args)
                dispatch(x, RC_STORE_NOTIF_CREATE, args, NULL);
        } else if (is_get(x)) {
            if (!caller(x, user))
                return;
            json_t *args = json_object();
            if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, user)) {
                json_decref(args);
                return;
            }
            dispatch(x, RC_STORE_NOTIF_LIST, args, NULL);
        } else {
            method_not_allowed(x, "GET, HEAD, POST");
        }
        return;
    }
    if (nseg == 2 && strcmp(seg[0], "unread-count") == 0) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "user_id", seg[1]);
        if (!own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_NOTIF_UNREAD_COUNT, args, seg[1]);
        return;
    }
    if (nseg == 1) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        if (!query_into(x, args, USER_KEY) || !own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_NOTIF_GET, args, NULL);
        return;
    }
    if (nseg == 2 && strcmp(seg[1], "mark-read") == 0) {
        if (x->req->method != RC_HTTP_POST) {
            method_not_allowed(x, "POST");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        if (!query_into(x, args, USER_KEY) || !own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_NOTIF_MARK_READ, args, NULL);
        return;
    }
    rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
}

/* ---- subscriptions
 * ------------------------------------------------------------------------------- */

static void subscriptions(struct rc_http_ctx *x, struct rc_slice rest)
{
    char seg[3][SEG_MAX];
    size_t nseg;
    char user[USER_MAX + 1];
    if (!segments(x, rest, seg, &nseg))
        return;
    if (nseg == 0) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_object();
        if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_SUB_LIST, args, NULL);
        return;
    }
    if (nseg == 1 && (strcmp(seg[0], "resource") == 0 || strcmp(seg[0], "topic") == 0)) {
        if (x->req->method != RC_HTTP_POST) {
            method_not_allowed(x, "POST");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = body_object(x);
        if (!args)
            return;
        if (!own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, seg[0][0] == 'r' ? RC_STORE_SUB_CREATE_RESOURCE : RC_STORE_SUB_CREATE_TOPIC,
                 args, NULL);
        return;
    }
    if (nseg == 1) {
        bool del = x->req->method == RC_HTTP_DELETE;
        if (!is_get(x) && !del) {
            method_not_allowed(x, "GET, HEAD, DELETE");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        if (user[0])
            json_object_set_new(args, "user_id", json_string(user));
        dispatch(x, del ? RC_STORE_SUB_DELETE : RC_STORE_SUB_GET, args, NULL);
        return;
    }
    if (nseg == 2 && strcmp(seg[1], "status") == 0) {
        if (x->req->method != RC_HTTP_PATCH) {
            method_not_allowed(x, "PATCH");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *body = body_object(x);
        if (!body)
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        json_t *st = json_object_get(body, "status");
        if (st)
            json_object_set_new(args, "status", json_deep_copy(st));
        json_decref(body);
        if (user[0])
            json_object_set_new(args, "user_id", json_string(user));
        dispatch(x, RC_STORE_SUB_SET_STATUS, args, NULL);
        return;
    }
    rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
}

/* ---- routing
 * ---------------------------------------------------------------------------------------- */

static bool under(struct rc_slice path, const char *prefix, size_t plen, struct rc_slice *rest)
{
    if (path.n < plen || memcmp(path.p, prefix, plen) != 0)
        return false;
    if (path.n > plen && path.p[plen] != '/')
        return false;
    *rest = (struct rc_slice){path.p + plen, path.n - plen};
    return true;
}

bool rc_api_store_route(struct rc_http_ctx *x)
{
    struct rc_slice rest;
    if (under(x->req->path, NOTIF_PREFIX, sizeof(NOTIF_PREFIX) - 1, &rest)) {
        notifications(x, rest);
        return true;
    }
    if (under(x->req->path, SUBS_PREFIX, sizeof(SUBS_PREFIX) - 1, &rest)) {
        subscriptions(x, rest);
        return true;
    }
    return false;
}
