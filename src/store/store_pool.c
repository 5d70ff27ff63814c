/* store_pool.c - struct rc_store: the pool of storage threads behind the
 * store's public interface (include/ringcast/store.h). One worker (store.c)
 * per database connection: the SQLite engine always has one (one writer per
 * file), the PostgreSQL engine cfg->pool (the postgres_pool key).
 *
 * Routing: a request goes to the worker its key hashes to, so that one
 * user's requests run in submission order on one connection and the
 * max_user_subscriptions count sees that user's earlier creates in the same
 * batch. The key is the args' user_id, else (admin calls without a user) the
 * record's id, else a notification's first recipient. Requests about the
 * whole store (purge, loading the active subscriptions, stats, stop) go to
 * worker 0, which also runs the periodic purge. Workers of several pools
 * (nodes) meet only in the database: its row locks and the engine's advisory
 * locks order them.
 *
 * Owner: rc_store_open/start/stop: the thread that owns the server (main).
 *   rc_store_submit: any thread. rc_store_poll: that owner, without threads.
 * Invariants: n >= 1 workers, all open; workers never change after open.
 * Lifetimes: the pool owns its workers; rc_store_stop frees them all. */
#include <errno.h>
#include <stdlib.h>
#include <xxhash.h>

#include "ringcast/store.h"
#include "store_internal.h"

struct rc_store {
    unsigned n;
    uint32_t counter; /* ids: shared by the workers (atomic) */
    struct rc_store_worker *w[RC_STORE_POOL_MAX];
};

void rc_store_pool_stats(const struct rc_store *pool, struct rc_store_stats *sum)
{
    *sum = (struct rc_store_stats){0};
    for (unsigned i = 0; i < pool->n; i++)
        rc_store_worker_stats(pool->w[i], sum);
}

unsigned rc_store_pool_size(const struct rc_store *pool)
{
    return pool->n;
}

uint32_t rc_store_pool_counter(struct rc_store *pool)
{
    return __atomic_fetch_add(&pool->counter, 1, __ATOMIC_RELAXED);
}

static unsigned route(const struct rc_store *pool, const struct rc_store_req *req)
{
    if (pool->n == 1)
        return 0;
    switch (req->op) {
    case RC_STORE_NOTIF_PURGE:
    case RC_STORE_SUB_LOAD_ACTIVE:
    case RC_STORE_STATS:
    case RC_STORE_STOP:
        return 0;
    default:
        break;
    }
    const char *key = json_string_value(json_object_get(req->args, "user_id"));
    if (!key)
        key = json_string_value(json_object_get(req->args, "id"));
    if (!key)
        key = json_string_value(json_array_get(json_object_get(req->args, "recipients"), 0));
    if (!key)
        return 0; /* a request the store will refuse as invalid anyway */
    return (unsigned)(XXH3_64bits(key, strlen(key)) % pool->n);
}

int rc_store_open(struct rc_store **out, const struct rc_store_config *cfg, rc_store_reply_fn reply,
                  void *reply_ctx, struct rc_err *err)
{
    *out = NULL;
    if (!cfg->data_dir || !cfg->data_dir[0] || !reply) {
        rc_err_set(err, 500, "bad_config", "store: data_dir is empty; set data_dir to a directory");
        return -EINVAL;
    }
    if (cfg->synchronous != RC_STORE_SYNC_FULL && cfg->synchronous != RC_STORE_SYNC_NORMAL) {
        rc_err_set(err, 500, "bad_config", "store: synchronous must be full or normal");
        return -EINVAL;
    }
    unsigned n = 1;
    if (cfg->engine == &rc_store_pg_ops && cfg->pool)
        n = cfg->pool;
    if (n > RC_STORE_POOL_MAX) {
        rc_err_set(err, 500, "bad_config", "store: postgres_pool=%u is more than %d connections", n,
                   RC_STORE_POOL_MAX);
        return -EINVAL;
    }
    struct rc_store *pool = calloc(1, sizeof(*pool));
    if (!pool) {
        rc_err_set(err, 500, "no_memory", "store: out of memory at start");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        int rc = rc_store_worker_open(&pool->w[i], pool, i, cfg, reply, reply_ctx, err);
        if (rc) {
            rc_store_stop(pool);
            return rc;
        }
        pool->n = i + 1;
    }
    *out = pool;
    return 0;
}

int rc_store_start(struct rc_store *s, struct rc_err *err)
{
    for (unsigned i = 0; i < s->n; i++) {
        int rc = rc_store_worker_start(s->w[i], err);
        if (rc)
            return rc; /* rc_store_stop joins the ones that started */
    }
    return 0;
}

void rc_store_submit(struct rc_store *s, struct rc_store_req *req)
{
    rc_store_worker_submit(s->w[route(s, req)], req);
}

unsigned rc_store_workers(const struct rc_store *s)
{
    return s->n;
}

void rc_store_submit_to(struct rc_store *s, unsigned i, struct rc_store_req *req)
{
    rc_store_worker_submit(s->w[i < s->n ? i : 0], req);
}

size_t rc_store_poll(struct rc_store *s)
{
    size_t n = 0;
    for (unsigned i = 0; i < s->n; i++)
        n += rc_store_worker_poll(s->w[i]);
    return n;
}

void rc_store_stop(struct rc_store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n; i++)
        rc_store_worker_stop(s->w[i]);
    free(s);
}
