/* store.c - the engine-independent half of the store: requests, rendering,
 * and the storage thread's loop with group commit. Validation of notification
 * and subscription payloads (seed 001), times and the store_synchronous names
 * are in store_check.c. Everything durable goes through struct
 * rc_store_engine_ops (store_sqlite.c by default).
 *
 * Rules chosen here (docs/API.md repeats them):
 * - A notification is created with status "delivered" and delivered_at =
 *   created_at: the create's reply is what hands it to the live fan-out, and
 *   the server keeps no separate outbox. It becomes "read" once every
 *   recipient has marked it read; "pending" is accepted as a list filter and
 *   reserved for scheduled delivery (it matches nothing today). Expired
 *   notifications are invisible (not listed, got, counted or marked) and are
 *   purged every purge_interval_ms.
 * - type defaults to "info" (seed 001 shows only "message"; the set is
 *   info|message|alert|system|update|reminder), priority to "normal".
 * - Unknown fields are refused (a typo should not silently drop data);
 *   duplicate recipients are refused.
 * - A resource subscription is the topic subscription "<resource_type>.<resource_id>";
 *   both must be single topic tokens. Its "topic" field shows that mapping
 *   (seed 001 shows null there; the mapping is more useful to a client).
 *   Expired subscriptions are invisible like expired notifications.
 * - List results are bare arrays, as seed 001 shows them; the count over all
 *   pages is req->total, for an X-Total-Count header. Newest first. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ringcast/histo.h"
#include "ringcast/log.h"
#include "ringcast/store.h"
#include "ringcast/timer.h"
#include "ringcast/topic.h"
#include "store_internal.h"

static int64_t clock_realtime_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- requests --------------------------------------------------------------- */

static const struct {
    const char *name;
    bool write;
} op_info[RC_STORE_OP_COUNT] = {
    [RC_STORE_NOTIF_CREATE] = {"notif_create", true},
    [RC_STORE_NOTIF_LIST] = {"notif_list", false},
    [RC_STORE_NOTIF_GET] = {"notif_get", false},
    [RC_STORE_NOTIF_MARK_READ] = {"notif_mark_read", true},
    [RC_STORE_NOTIF_UNREAD_COUNT] = {"notif_unread_count", false},
    [RC_STORE_NOTIF_PURGE] = {"notif_purge", true},
    [RC_STORE_SUB_CREATE_RESOURCE] = {"sub_create_resource", true},
    [RC_STORE_SUB_CREATE_TOPIC] = {"sub_create_topic", true},
    [RC_STORE_SUB_LIST] = {"sub_list", false},
    [RC_STORE_SUB_GET] = {"sub_get", false},
    [RC_STORE_SUB_SET_STATUS] = {"sub_set_status", true},
    [RC_STORE_SUB_DELETE] = {"sub_delete", true},
    [RC_STORE_SUB_LOAD_ACTIVE] = {"sub_load_active", false},
    [RC_STORE_STATS] = {"stats", false},
    [RC_STORE_STOP] = {"stop", false},
};

const char *rc_store_op_name(enum rc_store_op op)
{
    return (unsigned)op < RC_STORE_OP_COUNT ? op_info[op].name : "?";
}

bool rc_store_op_is_write(enum rc_store_op op)
{
    return (unsigned)op < RC_STORE_OP_COUNT && op_info[op].write;
}

struct rc_store_req *rc_store_req_new(enum rc_store_op op, json_t *args)
{
    struct rc_store_req *req = calloc(1, sizeof(*req));
    if (!req) {
        json_decref(args);
        return NULL;
    }
    req->op = op;
    req->args = args;
    return req;
}

void rc_store_req_free(struct rc_store_req *req)
{
    if (!req)
        return;
    json_decref(req->args);
    json_decref(req->result);
    json_decref(req->removed);
    free(req);
}

/* ---- the store ------------------------------------------------------------------ */

/* One storage thread with its own engine (database connection); store_pool.c
 * holds the pool of them that struct rc_store is. */
struct rc_store_worker {
    struct rc_mpsc q; /* first: the producers' hot line */
    const struct rc_store_engine_ops *ops;
    struct rc_store_engine *eng;
    rc_store_reply_fn reply;
    void *reply_ctx;
    rc_store_clock_fn clock;
    void *clock_ctx;
    uint32_t max_batch;
    uint64_t purge_interval_ms;
    uint32_t max_user_subs;              /* 0 = unlimited */
    struct rc_log_limit commit_fail_log; /* store_commit_failed lines (monotonic clock) */
    int efd;
    bool thread_started;
    bool stopped; /* the thread has processed a STOP; it exits */
    pthread_t thread;
    struct rc_store_req **batch;  /* max_batch slots */
    struct rc_store_req stop_req; /* rc_store_stop's own, never replied to */
    /* ids: time + the pool's counter + random, see new_id() */
    uint64_t id_rand;
    struct rc_store *pool;         /* the pool this worker is part of */
    unsigned index;                /* 0 also purges and answers STATS and LOAD_ACTIVE */
    struct rc_store_pending *pend; /* max_batch slots, by batch index */
    struct rc_store_stats st;      /* written by this thread only, relaxed atomics */
};

/* A counter of s->st: written by this thread only, read by any (STATS sums the pool). */
#define ST_ADD(s, field, v) __atomic_add_fetch(&(s)->st.field, (uint64_t)(v), __ATOMIC_RELAXED)

/* The request latency histogram of s->st, with the same relaxed atomics. */
static void st_latency_add(struct rc_store_worker *s, uint64_t v)
{
    struct rc_histo *h = &s->st.latency_ns;
    __atomic_add_fetch(&h->b[rc_histo_bucket(v)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&h->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&h->sum, v, __ATOMIC_RELAXED);
}

static int64_t now_of(struct rc_store_worker *s)
{
    return s->clock(s->clock_ctx);
}

/* xorshift64*: cheap, seeded from getrandom; only needs to differ between
 * processes, uniqueness within one comes from time + counter. */
static uint64_t next_rand(struct rc_store_worker *s)
{
    uint64_t x = s->id_rand;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->id_rand = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* prefix + 20 hex digits: 44 bits of ms time (sorts by creation until 2527),
 * 20 bits of a per-process counter, 16 random bits. */
static void new_id(struct rc_store_worker *s, const char *prefix, char *buf, size_t cap)
{
    uint64_t t = (uint64_t)now_of(s) & ((1ULL << 44) - 1);
    uint32_t c = rc_store_pool_counter(s->pool) & 0xfffff;
    unsigned r = (unsigned)(next_rand(s) >> 48);
    snprintf(buf, cap, "%s%011llx%05x%04x", prefix, (unsigned long long)t, c, r);
}

static void req_fail(struct rc_store_req *req, int status, const char *code, const char *msg)
{
    json_decref(req->result);
    req->result = NULL;
    json_decref(req->removed);
    req->removed = NULL;
    req->status = status;
    req->code = code;
    snprintf(req->message, sizeof(req->message), "%s", msg);
}

static void req_fail_err(struct rc_store_req *req, int rc, const struct rc_err *err)
{
    if (rc == -ENOMEM)
        req_fail(req, 503, "no_memory", "store: out of memory; retry later");
    else if (err->status && err->code)
        req_fail(req, err->status, err->code, err->msg);
    else
        req_fail(req, 503, "store_unavailable", err->msg[0] ? err->msg : "store failed");
}

static void req_ok(struct rc_store_req *req, int status, json_t *result)
{
    req->status = status;
    req->code = NULL;
    req->message[0] = '\0';
    req->result = result;
}

/* Engine records carry ms integers; the API shows ISO 8601 strings. */
static void render(json_t *rec)
{
    static const char *const times[] = {"created_at", "delivered_at", "updated_at", "expires_at"};
    for (size_t i = 0; i < RC_ARRAY_LEN(times); i++) {
        json_t *v = json_object_get(rec, times[i]);
        if (json_is_integer(v)) {
            char buf[RC_STORE_TIME_LEN + 8];
            rc_store_time_format(json_integer_value(v), buf, sizeof(buf));
            json_object_set_new(rec, times[i], json_string(buf));
        }
    }
}

static void render_all(json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr); i++)
        render(json_array_get(arr, i));
}

/* A deep copy of args[key] or JSON null: records never share nodes with the
 * request's args (jansson refcounts are per-owner). */
static json_t *copy_or_null(const json_t *args, const char *key)
{
    json_t *v = json_object_get(args, key);
    return v ? json_deep_copy(v) : json_null();
}

static json_t *str_or_default(const json_t *args, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(args, key));
    return json_string(s ? s : dflt);
}

static json_t *time_or_null(const json_t *args, const char *key)
{
    json_t *v = json_object_get(args, key);
    int64_t ms;
    if (!json_is_string(v) ||
        rc_store_time_parse(json_string_value(v), json_string_length(v), &ms) != 0)
        return json_null();
    return json_integer(ms);
}

static json_t *build_notif(struct rc_store_worker *s, const json_t *a, int64_t now)
{
    char id[RC_STORE_ID_MAX];
    new_id(s, "ntf_", id, sizeof(id));
    json_t *actions = json_object_get(a, "actions");
    return json_pack(
        "{s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:I, s:I, s:[], s:o, s:o, s:o, "
        "s:o, s:o}",
        "id", id, "title", copy_or_null(a, "title"), "message", copy_or_null(a, "message"), "type",
        str_or_default(a, "type", "info"), "priority", str_or_default(a, "priority", "normal"),
        "status", "delivered", "recipients", copy_or_null(a, "recipients"), "sender_id",
        copy_or_null(a, "sender_id"), "created_at", (json_int_t)now, "delivered_at",
        (json_int_t)now, "read_by", "actions",
        json_is_array(actions) ? json_deep_copy(actions) : json_array(), "resource_type",
        copy_or_null(a, "resource_type"), "resource_id", copy_or_null(a, "resource_id"), "metadata",
        copy_or_null(a, "metadata"), "expires_at", time_or_null(a, "expires_at"));
}

static json_t *build_sub(struct rc_store_worker *s, enum rc_store_op op, const json_t *a,
                         int64_t now)
{
    char id[RC_STORE_ID_MAX];
    json_t *topic, *labels = json_object_get(a, "labels");
    bool res = op == RC_STORE_SUB_CREATE_RESOURCE;

    new_id(s, "sub_", id, sizeof(id));
    if (res) {
        char t[RC_TOPIC_MAX_LEN + 1];
        snprintf(t, sizeof(t), "%s.%s", json_string_value(json_object_get(a, "resource_type")),
                 json_string_value(json_object_get(a, "resource_id")));
        topic = json_string(t);
    } else {
        topic = copy_or_null(a, "topic");
    }
    return json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:n, s:o, s:o, s:o}", "id",
                     id, "user_id", copy_or_null(a, "user_id"), "type", res ? "resource" : "topic",
                     "status", "active", "created_at", (json_int_t)now, "updated_at",
                     (json_int_t)now, "expires_at", time_or_null(a, "expires_at"), "resource_id",
                     res ? copy_or_null(a, "resource_id") : json_null(), "resource_type",
                     res ? copy_or_null(a, "resource_type") : json_null(), "topic", topic, "query",
                     "labels", json_is_array(labels) ? json_deep_copy(labels) : json_array(),
                     "metadata", copy_or_null(a, "metadata"), "payload_filter",
                     copy_or_null(a, "payload_filter"));
}

static const char *arg_str(const json_t *a, const char *key)
{
    return json_string_value(json_object_get(a, key));
}

static void query_of(const json_t *a, int64_t now, struct rc_store_query *q)
{
    struct rc_err ignored;
    q->user_id = arg_str(a, "user_id");
    q->status = arg_str(a, "status");
    q->now_ms = now;
    /* already checked; these cannot fail now */
    (void)rc_store_arg_uint(a, "page", 1, RC_STORE_PAGE_MAX, &q->page, &ignored);
    (void)rc_store_arg_uint(a, "page_size", RC_STORE_PAGE_SIZE_DEFAULT, RC_STORE_PAGE_SIZE_MAX,
                            &q->page_size, &ignored);
}

/* Fetch a record by id and, when the request names a user, check that the
 * user may see it. For a notification the user must be a recipient. */
static int fetch_owned(struct rc_store_worker *s, bool notif, const json_t *a, int64_t now,
                       json_t **rec, struct rc_err *err)
{
    const char *id = arg_str(a, "id"), *user = arg_str(a, "user_id");
    int rc = notif ? s->ops->notif_get(s->eng, id, now, rec, err)
                   : s->ops->sub_get(s->eng, id, now, rec, err);
    if (rc || !user)
        return rc;
    bool allowed = false;
    if (notif) {
        json_t *recips = json_object_get(*rec, "recipients");
        for (size_t i = 0; i < json_array_size(recips) && !allowed; i++)
            allowed = strcmp(json_string_value(json_array_get(recips, i)), user) == 0;
    } else {
        allowed = strcmp(arg_str(*rec, "user_id"), user) == 0;
    }
    if (allowed)
        return 0;
    json_decref(*rec);
    *rec = NULL;
    rc_err_set(err, 403, "forbidden", "%s \"%.64s\" does not belong to user \"%.64s\"",
               notif ? "notification" : "subscription", id, user);
    return -EPERM;
}

/* The pool's counters summed over its workers, this worker's engine facts. */
static json_t *stats_json(struct rc_store_worker *s)
{
    struct rc_store_stats t;
    rc_store_pool_stats(s->pool, &t);
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
        (json_int_t)t.requests, "batches", (json_int_t)t.batches, "commits", (json_int_t)t.commits,
        "commit_failures", (json_int_t)t.commit_failures, "writes", (json_int_t)t.writes, "reads",
        (json_int_t)t.reads, "failed", (json_int_t)t.failed, "purged", (json_int_t)t.purged,
        "largest_batch", (json_int_t)t.largest_batch, "queued",
        (json_int_t)(t.submitted - t.requests), "pool", (json_int_t)rc_store_pool_size(s->pool));
    struct rc_err err = {0};
    json_t *b = o ? json_array() : NULL;
    for (unsigned i = 0; b && i < RC_HISTO_BUCKETS; i++)
        json_array_append_new(b, json_integer((json_int_t)t.latency_ns.b[i]));
    if (o)
        json_object_set_new(o, "latency_ns",
                            json_pack("{s:I, s:I, s:o?}", "count", (json_int_t)t.latency_ns.count,
                                      "sum", (json_int_t)t.latency_ns.sum, "buckets", b));
    if (o && s->ops->describe(s->eng, o, &err) != 0)
        json_object_set_new(o, "engine_error", json_string(err.msg));
    return o;
}

/* Room for one more subscription of a's user_id under max_user_subs? Counts
 * the user's unexpired subscriptions (active and paused) in this batch's
 * transaction, so creates earlier in the batch count too. 0, -EDQUOT (409
 * too_many_subscriptions) or the engine's error. */
static int user_subs_room(struct rc_store_worker *s, const json_t *a, int64_t now,
                          struct rc_err *err)
{
    if (!s->max_user_subs)
        return 0;
    struct rc_store_query q = {
        .user_id = arg_str(a, "user_id"), .page = 1, .page_size = 1, .now_ms = now};
    json_t *items = NULL;
    uint64_t total = 0;
    int rc = s->ops->sub_list(s->eng, &q, &items, &total, err);
    json_decref(items);
    if (rc)
        return rc;
    if (total < s->max_user_subs)
        return 0;
    rc_err_set(err, 409, "too_many_subscriptions",
               "user %.128s already holds %llu durable subscriptions, as many as "
               "max_user_subscriptions allows; delete some (DELETE "
               "/api/realtime/subscriptions/{id}) before creating more",
               q.user_id, (unsigned long long)total);
    return -EDQUOT;
}

/* Run one validated request against the engine; fills its result. */
static void execute(struct rc_store_worker *s, struct rc_store_req *req,
                    struct rc_store_pending *pend, int64_t now)
{
    const json_t *a = req->args;
    struct rc_err err = {0};
    json_t *rec = NULL;
    uint64_t n = 0;
    int rc = 0;

    switch (req->op) {
    case RC_STORE_NOTIF_CREATE:
    case RC_STORE_SUB_CREATE_RESOURCE:
    case RC_STORE_SUB_CREATE_TOPIC: {
        bool notif = req->op == RC_STORE_NOTIF_CREATE;
        if (!notif && (rc = user_subs_room(s, a, now, &err)) != 0)
            break;
        rec = notif ? build_notif(s, a, now) : build_sub(s, req->op, a, now);
        if (!rec) {
            rc = -ENOMEM;
            break;
        }
        rc = notif ? s->ops->notif_create(s->eng, rec, pend, &err)
                   : s->ops->sub_create(s->eng, rec, pend, &err);
        if (rc == 0) {
            render(rec);
            req_ok(req, 201, rec);
            return;
        }
        break;
    }
    case RC_STORE_NOTIF_LIST:
    case RC_STORE_SUB_LIST: {
        struct rc_store_query q;
        query_of(a, now, &q);
        rc = req->op == RC_STORE_NOTIF_LIST ? s->ops->notif_list(s->eng, &q, &rec, &n, &err)
                                            : s->ops->sub_list(s->eng, &q, &rec, &n, &err);
        if (rc == 0) {
            render_all(rec);
            req->total = n;
            req_ok(req, 200, rec);
            return;
        }
        break;
    }
    case RC_STORE_NOTIF_GET:
    case RC_STORE_SUB_GET:
        rc = fetch_owned(s, req->op == RC_STORE_NOTIF_GET, a, now, &rec, &err);
        if (rc == 0) {
            render(rec);
            req_ok(req, 200, rec);
            return;
        }
        break;
    case RC_STORE_NOTIF_MARK_READ:
        rc = s->ops->notif_mark_read(s->eng, arg_str(a, "id"), arg_str(a, "user_id"), now, &rec,
                                     &err);
        if (rc == 0) {
            render(rec);
            req_ok(req, 200, rec);
            return;
        }
        break;
    case RC_STORE_NOTIF_UNREAD_COUNT:
        rc = s->ops->notif_unread_count(s->eng, arg_str(a, "user_id"), now, &n, &err);
        if (rc == 0) {
            req_ok(req, 200, json_integer((json_int_t)n));
            return;
        }
        break;
    case RC_STORE_NOTIF_PURGE:
        rc = s->ops->notif_purge_expired(s->eng, now, &n, &err);
        if (rc == 0) {
            ST_ADD(s, purged, n);
            req_ok(req, 200, json_pack("{s:I}", "purged", (json_int_t)n));
            return;
        }
        break;
    case RC_STORE_SUB_SET_STATUS:
    case RC_STORE_SUB_DELETE:
        rc = fetch_owned(s, false, a, now, &rec, &err);
        if (rc)
            break;
        if (req->op == RC_STORE_SUB_DELETE) {
            rc = s->ops->sub_delete(s->eng, arg_str(a, "id"), now, &err);
            if (rc == 0) {
                render(rec);
                req->removed = rec;
                req_ok(req, 204, NULL);
                return;
            }
            break;
        }
        json_decref(rec);
        rec = NULL;
        rc =
            s->ops->sub_set_status(s->eng, arg_str(a, "id"), arg_str(a, "status"), now, &rec, &err);
        if (rc == 0) {
            render(rec);
            req_ok(req, 200, rec);
            return;
        }
        break;
    case RC_STORE_SUB_LOAD_ACTIVE:
        rc = s->ops->sub_load_active(s->eng, now, &rec, &err);
        if (rc == 0) {
            render_all(rec);
            req->total = json_array_size(rec);
            req_ok(req, 200, rec);
            return;
        }
        break;
    case RC_STORE_STATS:
        req_ok(req, 200, stats_json(s));
        return;
    case RC_STORE_STOP:
        s->stopped = true;
        req_ok(req, 200, NULL);
        return;
    default:
        rc_err_set(&err, 400, "bad_request", "store: unknown operation %d", (int)req->op);
        rc = -EINVAL;
        break;
    }
    json_decref(rec);
    req_fail_err(req, rc, &err);
}

/* A failing disk fails every batch: one log line per COMMIT_FAIL_LOG_MS at most,
 * with the number of failures since the previous line. */
#define COMMIT_FAIL_LOG_MS 10000u
static void log_commit_failure(struct rc_store_worker *s, const struct rc_err *err)
{
    uint64_t failures;
    if (!rc_log_limit_take(&s->commit_fail_log, (uint64_t)mono_ms(), COMMIT_FAIL_LOG_MS, &failures))
        return;
    rc_log(RC_LOG_ERROR, "store_commit_failed",
           "failures=%llu total=%llu reason=\"%.160s\" (writes are answered 503 "
           "store_unavailable; check the disk of data_dir: space, permissions, errors)",
           (unsigned long long)failures,
           (unsigned long long)__atomic_load_n(&s->st.commit_failures, __ATOMIC_RELAXED), err->msg);
}

size_t rc_store_worker_poll(struct rc_store_worker *s)
{
    size_t n = 0, first_write = SIZE_MAX;
    struct rc_mpsc_node *node;
    bool has_write = false, tx = false;
    struct rc_err err = {0};

    if (s->stopped)
        return 0;
    while (n < s->max_batch && (node = rc_mpsc_pop(&s->q))) {
        struct rc_store_req *req = RC_CONTAINER_OF(node, struct rc_store_req, node);
        if (req == &s->stop_req) {
            s->stopped = true;
            break;
        }
        s->batch[n++] = req;
        has_write |= rc_store_op_is_write(req->op);
        if (req->op == RC_STORE_STOP)
            break; /* what follows a stop is answered 503 by rc_store_stop */
    }
    if (n == 0)
        return 0;
    ST_ADD(s, batches, 1);
    ST_ADD(s, requests, n);
    if (n > __atomic_load_n(&s->st.largest_batch, __ATOMIC_RELAXED))
        __atomic_store_n(&s->st.largest_batch, n, __ATOMIC_RELAXED);
    if (has_write)
        tx = s->ops->begin(s->eng, &err) == 0;

    int64_t now = now_of(s);
    memset(s->pend, 0, n * sizeof(*s->pend));
    for (size_t i = 0; i < n; i++) {
        struct rc_store_req *req = s->batch[i];
        struct rc_err verr = {0};
        bool w = rc_store_op_is_write(req->op);

        req->total = 0;
        if (w) {
            ST_ADD(s, writes, 1);
            if (first_write == SIZE_MAX)
                first_write = i;
        } else {
            ST_ADD(s, reads, 1);
        }
        if (rc_store_check(req->op, req->args, now, &verr) != 0)
            req_fail(req, verr.status, verr.code, verr.msg);
        else if (w && !tx)
            req_fail(req, 503, "store_unavailable", err.msg);
        else
            execute(s, req, &s->pend[i], now);
    }
    if (tx) {
        if (s->ops->commit(s->eng, &err) == 0) {
            ST_ADD(s, commits, 1);
            /* creates the engine had queued: committed, or failed alone */
            for (size_t i = first_write; i < n; i++)
                if (s->pend[i].queued && s->pend[i].rc)
                    req_fail_err(s->batch[i], s->pend[i].rc, &s->pend[i].err);
        } else {
            s->ops->rollback(s->eng);
            ST_ADD(s, commit_failures, 1);
            log_commit_failure(s, &err);
            /* reads after the first write may have seen the lost rows */
            for (size_t i = first_write; i < n; i++) {
                char msg[RC_STORE_MSG_MAX];
                snprintf(msg, sizeof(msg), "store: commit failed, nothing was saved: %.160s",
                         err.msg);
                if (s->batch[i]->status < 400)
                    req_fail(s->batch[i], 503, "store_unavailable", msg);
            }
        }
    }
    uint64_t done_ns = rc_now_ns();
    for (size_t i = 0; i < n; i++) {
        ST_ADD(s, failed, s->batch[i]->status >= 400);
        st_latency_add(s, done_ns - s->batch[i]->submitted_ns);
        s->reply(s->reply_ctx, s->batch[i]);
    }
    return n;
}

/* Periodic purge of expired rows, in its own small transaction. */
static void purge_expired(struct rc_store_worker *s)
{
    struct rc_err err = {0};
    uint64_t n = 0;
    if (s->ops->begin(s->eng, &err) != 0)
        return;
    if (s->ops->notif_purge_expired(s->eng, now_of(s), &n, &err) != 0 ||
        s->ops->commit(s->eng, &err) != 0) {
        s->ops->rollback(s->eng);
        return; /* retried at the next interval; reads already hide these rows */
    }
    ST_ADD(s, commits, 1);
    ST_ADD(s, purged, n);
}

/* One storage thread of the pool (store_pool.c starts them).
 * Owns: its engine (database connection), the batch and pending arrays, its
 * stats (written here only; others read them with relaxed loads).
 * Drains: s->q (rc_store_worker_submit). Posts: through s->reply, once per
 * request, after the batch's commit. Sleeps on s->efd; worker 0 also wakes at
 * least every purge_interval_ms to purge expired rows. */
static void *worker_main(void *arg)
{
    struct rc_store_worker *s = arg;
    int64_t next_purge = s->index == 0 ? mono_ms() + (int64_t)s->purge_interval_ms : INT64_MAX;

    while (!s->stopped) {
        size_t n = rc_store_worker_poll(s);
        int64_t now = mono_ms();
        if (now >= next_purge) {
            purge_expired(s);
            next_purge = now + (int64_t)s->purge_interval_ms;
        }
        if (n > 0 || s->stopped)
            continue;
        if (!rc_mpsc_prepare_sleep(&s->q)) {
            rc_mpsc_awake(&s->q);
            continue;
        }
        struct pollfd pfd = {.fd = s->efd, .events = POLLIN};
        int64_t wait = next_purge - now;
        (void)poll(&pfd, 1, wait > INT32_MAX ? INT32_MAX : (int)wait);
        uint64_t v;
        (void)!read(s->efd, &v, sizeof(v)); /* nonblocking; only resets the counter */
        rc_mpsc_awake(&s->q);
    }
    return NULL;
}

int rc_store_worker_open(struct rc_store_worker **out, struct rc_store *pool, unsigned index,
                         const struct rc_store_config *cfg, rc_store_reply_fn reply,
                         void *reply_ctx, struct rc_err *err)
{
    struct rc_store_worker *s;
    int rc;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out_nomem;
    s->pool = pool;
    s->index = index;
    s->ops = cfg->engine ? cfg->engine : &rc_store_sqlite_ops;
    s->reply = reply;
    s->reply_ctx = reply_ctx;
    s->clock = cfg->clock ? cfg->clock : clock_realtime_ms;
    s->clock_ctx = cfg->clock_ctx;
    s->max_batch = cfg->max_batch ? cfg->max_batch : RC_STORE_MAX_BATCH_DEFAULT;
    s->purge_interval_ms =
        cfg->purge_interval_ms ? cfg->purge_interval_ms : RC_STORE_PURGE_INTERVAL_DEFAULT;
    s->max_user_subs = cfg->max_user_subscriptions;
    s->batch = calloc(s->max_batch, sizeof(*s->batch));
    s->pend = calloc(s->max_batch, sizeof(*s->pend));
    if (!s->batch || !s->pend)
        goto out_free;
    if (getrandom(&s->id_rand, sizeof(s->id_rand), 0) != sizeof(s->id_rand))
        s->id_rand = (uint64_t)mono_ms() ^ (uint64_t)getpid() << 32 ^ index;
    s->id_rand |= 1; /* xorshift must not start at 0 */
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        rc = -errno;
        rc_err_set(err, 500, "start", "store: eventfd failed: %s", strerror(errno));
        goto out_arrays;
    }
    rc_mpsc_init(&s->q, s->efd);
    s->stop_req.op = RC_STORE_STOP;
    rc = s->ops->open(&s->eng, cfg, err);
    if (rc)
        goto out_efd;
    *out = s;
    return 0;

out_efd:
    close(s->efd);
out_arrays:
    free(s->pend);
    free(s->batch);
    free(s);
    return rc;
out_free:
    free(s->pend);
    free(s->batch);
    free(s);
out_nomem:
    rc_err_set(err, 500, "no_memory", "store: out of memory at start");
    return -ENOMEM;
}

int rc_store_worker_start(struct rc_store_worker *s, struct rc_err *err)
{
    int rc = pthread_create(&s->thread, NULL, worker_main, s);
    if (rc) {
        rc_err_set(err, 500, "start", "store: pthread_create failed: %s", strerror(rc));
        return -rc;
    }
    s->thread_started = true;
    return 0;
}

void rc_store_worker_submit(struct rc_store_worker *s, struct rc_store_req *req)
{
    req->submitted_ns = rc_now_ns();
    __atomic_add_fetch(&s->st.submitted, 1, __ATOMIC_RELAXED);
    rc_mpsc_push(&s->q, &req->node);
}

void rc_store_worker_stop(struct rc_store_worker *s)
{
    struct rc_mpsc_node *node;

    if (!s)
        return;
    if (s->thread_started) {
        rc_mpsc_push(&s->q, &s->stop_req.node);
        pthread_join(s->thread, NULL);
    }
    /* the thread has exited (or never ran): we are the only consumer now */
    while ((node = rc_mpsc_pop(&s->q))) {
        struct rc_store_req *req = RC_CONTAINER_OF(node, struct rc_store_req, node);
        if (req == &s->stop_req)
            continue;
        req_fail(req, 503, "store_stopped", "store: the server is shutting down; retry later");
        s->reply(s->reply_ctx, req);
    }
    s->ops->close(s->eng);
    close(s->efd);
    free(s->pend);
    free(s->batch);
    free(s);
}

void rc_store_worker_stats(const struct rc_store_worker *s, struct rc_store_stats *sum)
{
#define LOAD(f) __atomic_load_n(&s->st.f, __ATOMIC_RELAXED)
    sum->submitted += LOAD(submitted);
    sum->requests += LOAD(requests);
    sum->batches += LOAD(batches);
    sum->commits += LOAD(commits);
    sum->commit_failures += LOAD(commit_failures);
    sum->writes += LOAD(writes);
    sum->reads += LOAD(reads);
    sum->failed += LOAD(failed);
    sum->purged += LOAD(purged);
    sum->latency_ns.count += LOAD(latency_ns.count);
    sum->latency_ns.sum += LOAD(latency_ns.sum);
    for (unsigned i = 0; i < RC_HISTO_BUCKETS; i++)
        sum->latency_ns.b[i] += LOAD(latency_ns.b[i]);
    uint64_t largest = LOAD(largest_batch);
    if (largest > sum->largest_batch)
        sum->largest_batch = largest;
#undef LOAD
}
