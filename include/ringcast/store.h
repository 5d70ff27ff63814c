/* store.h - durable state: notifications and user subscriptions, owned by one
 * storage thread that talks to everyone else by message.
 *
 * Owner: the storage thread (rc_store_main). It alone touches the engine (the
 *   SQLite database <data_dir>/ringcast.db by default, or one PostgreSQL
 *   connection). Other threads only build requests and rc_store_submit()
 *   them; they never block on the store.
 * Flow: a request (struct rc_store_req, holding an rc_mpsc_node) goes onto the
 *   store's MPSC queue. The thread pops every pending request (at most
 *   cfg.max_batch), runs all writes of that batch in ONE transaction (group
 *   commit; each write inside its own savepoint, so a failing write does not
 *   abort the others), commits, and only then hands each request back through
 *   the reply function given at open. A write is therefore answered only once
 *   it is durable (see enum rc_store_sync for what "durable" means). If the
 *   commit fails, every write of the batch (and every read that ran after the
 *   first write, since it may have seen uncommitted rows) is answered 503.
 * Replies: reply(ctx, req) runs on the storage thread (or, for requests still
 *   queued at rc_store_stop, on the stopping thread) and takes ownership of
 *   req; it must not block (a shard posts it to its own inbox).
 * Payloads are JSON (jansson): args in, result out, exactly as the HTTP API
 *   shows them (seed 001 field names; times are ISO 8601 UTC with
 *   milliseconds, "2025-05-16T10:30:00.000Z"). Validation errors name the field.
 * jansson refcounts are not meant for sharing: a json_t given to the store is
 *   the store's alone; a result handed back is the receiver's alone.
 * Engines: store.c calls only struct rc_store_engine_ops; store_sqlite.c is
 *   the embedded engine (one node), store_pg.c the PostgreSQL engine (a
 *   database shared by every node; libpq only on the storage thread). */
#ifndef RINGCAST_STORE_H
#define RINGCAST_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "ringcast/common.h"
#include "ringcast/mpsc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (validation) ------------------------------------------------ */
#define RC_STORE_TITLE_MAX 256       /* characters (UTF-8 code points) */
#define RC_STORE_MESSAGE_MAX 4096    /* characters */
#define RC_STORE_RECIPIENTS_MAX 1000 /* user ids per notification */
#define RC_STORE_USER_ID_MAX 128     /* bytes; printable ASCII 0x21..0x7e */
#define RC_STORE_ACTIONS_MAX 16
#define RC_STORE_ACTION_TEXT_MAX 64 /* label / action, characters */
#define RC_STORE_REF_MAX 128        /* resource_type / resource_id, bytes */
#define RC_STORE_LABELS_MAX 32
#define RC_STORE_LABEL_MAX 64 /* characters */
#define RC_STORE_JSON_MAX                                                                          \
    (16 * 1024)                    /* metadata, payload_filter, action data: compact JSON bytes */
#define RC_STORE_ID_MAX 64         /* notification / subscription id, bytes */
#define RC_STORE_PAGE_MAX 1000000u /* page numbers 1..this */
#define RC_STORE_PAGE_SIZE_MAX 100u
#define RC_STORE_PAGE_SIZE_DEFAULT 20u
#define RC_STORE_MAX_BATCH_DEFAULT 4096u       /* requests per group commit */
#define RC_STORE_PURGE_INTERVAL_DEFAULT 60000u /* ms */
#define RC_STORE_MSG_MAX 224
#define RC_STORE_POOL_MAX 64     /* storage threads (PostgreSQL connections) per node */
#define RC_STORE_POOL_DEFAULT 4u /* the postgres_pool config key's default */

/* ---- requests ------------------------------------------------------------- */

/* Operations, their args (a JSON object) and what a success leaves in the
 * request. "W" marks writes (group-committed). user_id etc. are strings.
 *
 * NOTIF_CREATE  W  body of POST /notifications        -> 201, the notification
 * NOTIF_LIST       {user_id, status?, page?, page_size?} -> 200, bare array
 *                  (seed 001 shape), newest first; req->total = all matches
 *                  (for an X-Total-Count header). status filters the
 *                  notification's own status: pending (reserved, matches
 *                  none), delivered, read (= every recipient has read it).
 *                  page and page_size may be JSON integers or decimal strings.
 * NOTIF_GET        {id, user_id?}  user_id given: must be a recipient, else 403
 *                                                     -> 200, the notification
 * NOTIF_MARK_READ W {id, user_id}  not a recipient: 403 -> 200, the notification
 * NOTIF_UNREAD_COUNT {user_id}                         -> 200, a JSON integer
 * NOTIF_PURGE   W  {}  delete expired notifications and subscriptions now
 *                  (the thread also does it every purge_interval_ms)
 *                                                      -> 200, {"purged": N}
 * SUB_CREATE_RESOURCE W {user_id, resource_type, resource_id, labels?,
 *                  metadata?, expires_at?, payload_filter?} -> 201, subscription
 * SUB_CREATE_TOPIC W {user_id, topic, ...same optional fields} -> 201
 *                  Either create: 409 too_many_subscriptions once the user has
 *                  max_user_subscriptions (active or paused, unexpired).
 * SUB_LIST         {user_id, status?, page?, page_size?} -> 200, bare array, total
 * SUB_GET          {id, user_id?}  user_id given: must own it, else 403 -> 200
 * SUB_SET_STATUS W {id, status, user_id?}              -> 200, subscription
 * SUB_DELETE    W  {id, user_id?}  -> 204, result NULL; req->removed = the
 *                  deleted subscription (for the shards to drop it)
 * SUB_LOAD_ACTIVE  {}  every active, unexpired subscription (start-up)
 *                                                      -> 200, bare array
 *                  Records carry expires_at: shards stop delivering through
 *                  a subscription at that time themselves; the purge only
 *                  reclaims the rows. Expired rows are invisible to every op.
 * STATS            {}  -> 200, {"requests","batches","commits",
 *                  "commit_failures","writes","reads","failed","purged",
 *                  "largest_batch","engine","sqlite_version","path",
 *                  "synchronous","journal_mode","schema_version"} (engine
 *                  values are read back from the database)
 * STOP             {}  the thread answers 200 after this batch, then exits;
 *                  requests behind it get 503 "store_stopped". The owner must
 *                  still call rc_store_stop() to join and free. */
enum rc_store_op {
    RC_STORE_NOTIF_CREATE,
    RC_STORE_NOTIF_LIST,
    RC_STORE_NOTIF_GET,
    RC_STORE_NOTIF_MARK_READ,
    RC_STORE_NOTIF_UNREAD_COUNT,
    RC_STORE_NOTIF_PURGE,
    RC_STORE_SUB_CREATE_RESOURCE,
    RC_STORE_SUB_CREATE_TOPIC,
    RC_STORE_SUB_LIST,
    RC_STORE_SUB_GET,
    RC_STORE_SUB_SET_STATUS,
    RC_STORE_SUB_DELETE,
    RC_STORE_SUB_LOAD_ACTIVE,
    RC_STORE_STATS,
    RC_STORE_STOP,
    RC_STORE_OP_COUNT,
};

/* One request and, once answered, its result.
 * Lifetime: rc_store_req_new() (any thread) -> rc_store_submit() (the queue
 *   owns it) -> reply(ctx, req) (the reply's receiver owns it) ->
 *   rc_store_req_free(). */
struct rc_store_req {
    struct rc_mpsc_node node; /* queue link; the store's between submit and reply */
    enum rc_store_op op;
    json_t *args;          /* owned; a JSON object (NULL means {}) */
    void *origin;          /* the caller's (e.g. its shard); never read by the store */
    uint64_t tag;          /* the caller's (e.g. connection id + generation) */
    uint64_t submitted_ns; /* set by rc_store_submit (monotonic): the latency histogram */
    /* results, valid in the reply */
    int status;                     /* HTTP status: 200, 201, 204, 400, 403, 404, 503 */
    const char *code;               /* NULL on success, else a static token: missing_field,
                                     * bad_type, bad_value, unknown_field, not_found,
                                     * forbidden, not_a_recipient, store_unavailable,
                                     * too_many_subscriptions (409),
                                     * store_stopped, no_memory */
    char message[RC_STORE_MSG_MAX]; /* "" on success; names the field on a 400 */
    json_t *result;                 /* owned; NULL on error and for 204 */
    json_t *removed;                /* owned; SUB_DELETE: the deleted record */
    uint64_t total;                 /* list ops: matches over all pages */
};

/* Any thread. Takes the caller's reference to args (also on failure).
 * NULL if out of memory. */
struct rc_store_req *rc_store_req_new(enum rc_store_op op, json_t *args);

/* Any thread; frees args, result and removed. NULL is fine. */
void rc_store_req_free(struct rc_store_req *req);

/* "notif_create", ... for logs; "?" when out of range. */
const char *rc_store_op_name(enum rc_store_op op);

/* True for the ops that change state (group-committed). */
bool rc_store_op_is_write(enum rc_store_op op);

/* Validate args of op without touching the store (any thread; a shard may use
 * it to answer 400 before queueing). now_ms is the wall clock (expires_at must
 * be later). Returns 0 or -EINVAL with err naming the field (status 400). The
 * store runs the same check itself, so calling this is optional. */
RC_MUST_CHECK int rc_store_check(enum rc_store_op op, const json_t *args, int64_t now_ms,
                                 struct rc_err *err);

/* ---- times ------------------------------------------------------------------ */

/* Parse ISO 8601 / RFC 3339 date-time "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"
 * (years 1970..9999; fraction truncated to milliseconds). 0 or -EINVAL. */
RC_MUST_CHECK int rc_store_time_parse(const char *s, size_t n, int64_t *ms_out);

/* Render ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (>= 25 bytes). */
void rc_store_time_format(int64_t ms, char *buf, size_t cap);
#define RC_STORE_TIME_LEN 25

/* ---- the engine interface ------------------------------------------------- */

enum rc_store_sync {
    /* PRAGMA synchronous=FULL (default): the WAL is fsync'ed at every commit;
     * an acknowledged write survives a process crash and a power loss. */
    RC_STORE_SYNC_FULL,
    /* PRAGMA synchronous=NORMAL: the WAL is fsync'ed only at checkpoints; an
     * acknowledged write survives a process crash (kill -9) but the last
     * commits before a power loss or kernel crash may be lost (the database
     * stays consistent). Faster commits. */
    RC_STORE_SYNC_NORMAL,
};

/* Paging query of a list op; status NULL = any. */
struct rc_store_query {
    const char *user_id;
    const char *status;
    uint32_t page;      /* >= 1 */
    uint32_t page_size; /* 1..RC_STORE_PAGE_SIZE_MAX */
    int64_t now_ms;     /* rows with expires_at <= now_ms are invisible */
};

struct rc_store_config;
struct rc_store_engine; /* an engine's private state */

/* Records cross this interface as JSON objects with the public field names,
 * except that times (created_at, delivered_at, updated_at, expires_at) are
 * JSON integers (ms since the epoch) or null. store.c validates what goes in
 * and renders what comes out.
 * Every op returns 0 or a negative errno and fills err: -ENOENT (404, also for
 * an expired row), -EIO/-EBUSY/-ENOSPC (503 store_unavailable), -ENOMEM.
 * A write op is atomic: when it fails it leaves nothing behind (the SQLite
 * engine wraps each in a savepoint), so a batch can go on after it.
 * begin/commit bracket a batch of writes; rollback undoes an open batch. */
/* A create that the engine may queue instead of running at once, so that a
 * whole batch of creates reaches the database in one round trip (the
 * PostgreSQL engine's pipeline). Inside begin/commit, with pend non-NULL, the
 * engine may send the write, set pend->queued and return 0 before the
 * database has answered. The outcome lands in pend->rc and pend->err by the
 * time commit returns (or earlier, when the engine flushes for another op);
 * rc stays 0 when the write succeeded. The caller zeroes pend before the call
 * and keeps it (and rec) until commit or rollback has returned. An engine
 * that runs every write at once never sets queued (the SQLite engine). */
struct rc_store_pending {
    bool queued;
    int rc;
    struct rc_err err;
};

struct rc_store_engine_ops {
    const char *name;
    int (*open)(struct rc_store_engine **out, const struct rc_store_config *cfg,
                struct rc_err *err);
    void (*close)(struct rc_store_engine *e);
    int (*begin)(struct rc_store_engine *e, struct rc_err *err);
    int (*commit)(struct rc_store_engine *e, struct rc_err *err);
    void (*rollback)(struct rc_store_engine *e);
    /* rec: a complete notification; recipients distinct; read_by empty.
     * pend: see struct rc_store_pending (NULL: complete the write now). */
    int (*notif_create)(struct rc_store_engine *e, const json_t *rec, struct rc_store_pending *pend,
                        struct rc_err *err);
    int (*notif_list)(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                      uint64_t *total, struct rc_err *err);
    int (*notif_get)(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                     struct rc_err *err);
    /* user must be a recipient (-EPERM otherwise); idempotent; status becomes
     * "read" once every recipient has read it */
    int (*notif_mark_read)(struct rc_store_engine *e, const char *id, const char *user,
                           int64_t now_ms, json_t **rec, struct rc_err *err);
    int (*notif_unread_count)(struct rc_store_engine *e, const char *user, int64_t now_ms,
                              uint64_t *count, struct rc_err *err);
    int (*notif_purge_expired)(struct rc_store_engine *e, int64_t now_ms, uint64_t *purged,
                               struct rc_err *err);
    /* rec: a complete subscription, topic already derived; pend as above */
    int (*sub_create)(struct rc_store_engine *e, const json_t *rec, struct rc_store_pending *pend,
                      struct rc_err *err);
    int (*sub_list)(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                    uint64_t *total, struct rc_err *err);
    int (*sub_get)(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                   struct rc_err *err);
    int (*sub_set_status)(struct rc_store_engine *e, const char *id, const char *status,
                          int64_t now_ms, json_t **rec, struct rc_err *err);
    int (*sub_delete)(struct rc_store_engine *e, const char *id, int64_t now_ms,
                      struct rc_err *err);
    int (*sub_load_active)(struct rc_store_engine *e, int64_t now_ms, json_t **items,
                           struct rc_err *err);
    /* Adds the engine's own facts (engine, synchronous, journal_mode,
     * schema_version) to obj. */
    int (*describe)(struct rc_store_engine *e, json_t *obj, struct rc_err *err);
};

/* The SQLite engine (store_sqlite.c). */
extern const struct rc_store_engine_ops rc_store_sqlite_ops;

/* Current schema version of the SQLite engine (migrations run up to it). */
#define RC_STORE_SQLITE_SCHEMA_VERSION 1
#define RC_STORE_SQLITE_FILE "ringcast.db"
/* PRAGMA application_id of ringcast's database ("RCST"): a database with
 * another id, or other tables and no id, belongs to another program. */
#define RC_STORE_SQLITE_APP_ID 0x52435354u

/* The PostgreSQL engine (store_pg.c, store_pg_tx.c, store_pg_open.c): one
 * libpq connection per storage thread (cfg->pool of them per node); several
 * nodes share one database. */
extern const struct rc_store_engine_ops rc_store_pg_ops;

/* For --check-config: connect to cfg->postgres_url and read the schema
 * version without changing anything. 0, or -errno with err saying what is
 * wrong (unreachable, authentication failed, a schema newer than this build). */
RC_MUST_CHECK int rc_store_pg_check(const struct rc_store_config *cfg, struct rc_err *err);

/* Current schema version of the PostgreSQL engine. */
#define RC_STORE_PG_SCHEMA_VERSION 1
/* pg_advisory_lock keys ("RCST" << 32 | n): the migration at open (session
 * lock: two nodes starting at once do not race) and the expiry purge
 * (transaction try-lock: one node of a cluster purges at a time). */
#define RC_STORE_PG_LOCK_MIGRATE 0x5243535400000001LL
#define RC_STORE_PG_LOCK_PURGE 0x5243535400000002LL
/* After a lost connection, a failed attempt to connect again is not repeated
 * sooner than this (an unreachable host costs up to connect_timeout, 5 s, per
 * attempt on the storage thread); ops fail 503 store_unavailable meanwhile. */
#define RC_STORE_PG_RETRY_MS 500

/* ---- the store ------------------------------------------------------------------ */

/* Wall clock in ms since the epoch; tests inject their own. */
typedef int64_t (*rc_store_clock_fn)(void *ctx);

/* Called on the storage thread with an answered request; takes ownership. */
typedef void (*rc_store_reply_fn)(void *ctx, struct rc_store_req *req);

struct rc_store_config {
    const char *data_dir;                     /* created (0700) if missing; required */
    enum rc_store_sync synchronous;           /* default FULL */
    uint32_t max_batch;                       /* 0 = RC_STORE_MAX_BATCH_DEFAULT */
    uint64_t purge_interval_ms;               /* 0 = RC_STORE_PURGE_INTERVAL_DEFAULT */
    uint32_t max_user_subscriptions;          /* per user (active + paused); 0 = unlimited;
                                                 past it a create is 409 too_many_subscriptions */
    const struct rc_store_engine_ops *engine; /* NULL = &rc_store_sqlite_ops */
    const char *postgres_url;                 /* rc_store_pg_ops: libpq conninfo or URI */
    const char *postgres_password;            /* NULL or "" = the URL's / PGPASSWORD / .pgpass */
    uint32_t pool; /* rc_store_pg_ops: connections (storage threads), 1..RC_STORE_POOL_MAX;
                      0 = 1. The SQLite engine always uses one. */
    rc_store_clock_fn clock; /* NULL = CLOCK_REALTIME */
    void *clock_ctx;
};

/* "full" -> FULL, "normal" -> NORMAL (case-insensitive). 0 or -EINVAL with err
 * ("store_synchronous=... ; use full or normal"). For the config loader. */
RC_MUST_CHECK int rc_store_sync_parse(const char *s, enum rc_store_sync *out, struct rc_err *err);
const char *rc_store_sync_name(enum rc_store_sync s);

struct rc_store;

/* Open the engine (creating data_dir and migrating the schema) on the calling
 * thread, so that a bad data_dir fails at start with a clear err. No thread
 * yet: call rc_store_start(), or drive it with rc_store_poll() (tests).
 * 0 or -errno. */
RC_MUST_CHECK int rc_store_open(struct rc_store **out, const struct rc_store_config *cfg,
                                rc_store_reply_fn reply, void *reply_ctx, struct rc_err *err);

/* Start the storage thread. 0 or -errno (err says which call failed). */
RC_MUST_CHECK int rc_store_start(struct rc_store *s, struct rc_err *err);

/* Any thread, never blocks. req must not be queued elsewhere. */
void rc_store_submit(struct rc_store *s, struct rc_store_req *req);

/* The storage threads (workers) of s: 1, or cfg->pool with the PostgreSQL
 * engine. rc_store_submit routes each request to one of them (store_pool.c:
 * by user); answers of one worker come in submission order, of different
 * workers in any order. rc_store_submit_to queues req on worker i (<
 * rc_store_workers) whatever it is: a fence that must be behind everything
 * queued before it goes to every worker. Any thread. */
unsigned rc_store_workers(const struct rc_store *s);
void rc_store_submit_to(struct rc_store *s, unsigned i, struct rc_store_req *req);

/* Without a thread only (tests, tools): run one batch of what is pending, as
 * the thread would. Returns the number of requests answered. */
size_t rc_store_poll(struct rc_store *s);

/* Stop the thread if running (after it has answered everything queued before
 * this call), answer what is still queued with 503 "store_stopped", close the
 * engine and free s. No rc_store_submit() may run concurrently or later.
 * NULL is fine. */
void rc_store_stop(struct rc_store *s);

/* The storage thread's entry point (rc_store_start runs it); documented here
 * because STYLE.md asks each thread's main to say what it owns. */
void *rc_store_main(void *store);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_STORE_H */
