/* store_internal.h - private to src/store/store.c, store_pool.c and store_check.c: the
 * helper the halves of the engine-independent store share, and the worker interface
 * between the pool (store_pool.c) and one storage thread (store.c).
 * store_check.c holds the pure, stateless parts (payload validation, ISO 8601
 * times, the store_synchronous names); store.c holds the request lifecycle,
 * the storage thread's loop with group commit, and rendering of records.
 * Owner: rc_store_arg_uint: any thread. A worker: its own thread (see store.c), except
 *   submit and stats (any thread).
 * Invariants: rc_store_arg_uint reads the same paging fields rc_store_check
 *   validated, so on checked args it cannot fail.
 * Lifetimes: nothing is kept past a call. */
#ifndef RINGCAST_STORE_INTERNAL_H
#define RINGCAST_STORE_INTERNAL_H

#include <stdint.h>

#include "ringcast/histo.h"
#include "ringcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the pool of storage threads (store.c: one worker; store_pool.c: the pool) ---- */

/* A worker's counters. Each is written by its worker's thread only (submitted:
 * by the producers), all with relaxed atomics, so STATS on any worker can sum
 * the pool's. */
struct rc_store_stats {
    uint64_t submitted; /* requests queued to the worker (any thread) */
    uint64_t requests, batches, commits, commit_failures, writes, reads, failed, purged;
    uint64_t largest_batch;
    struct rc_histo latency_ns; /* submit -> reply, per request (GET /metrics) */
};

struct rc_store_worker;

/* One storage thread with its own engine; index 0 is the one that purges on
 * its timer and answers STATS, LOAD_ACTIVE, PURGE and STOP. */
RC_MUST_CHECK int rc_store_worker_open(struct rc_store_worker **out, struct rc_store *pool,
                                       unsigned index, const struct rc_store_config *cfg,
                                       rc_store_reply_fn reply, void *reply_ctx,
                                       struct rc_err *err);
RC_MUST_CHECK int rc_store_worker_start(struct rc_store_worker *w, struct rc_err *err);
void rc_store_worker_submit(struct rc_store_worker *w, struct rc_store_req *req);
size_t rc_store_worker_poll(struct rc_store_worker *w);
void rc_store_worker_stop(struct rc_store_worker *w);
/* Adds w's counters to *sum (largest_batch: the maximum). Any thread. */
void rc_store_worker_stats(const struct rc_store_worker *w, struct rc_store_stats *sum);

/* store_pool.c, for the workers: the pool's counters summed, its size, and
 * the next value of the id counter shared by its workers (any thread). */
void rc_store_pool_stats(const struct rc_store *pool, struct rc_store_stats *sum);
unsigned rc_store_pool_size(const struct rc_store *pool);
uint32_t rc_store_pool_counter(struct rc_store *pool);

/* Paging number obj[key]: a JSON integer or a decimal string (from a query
 * string), in 1..max. Absent or null gives dflt. Returns 0, or -EINVAL with a
 * 400 err (err may be NULL); *out is dflt on failure. */
int rc_store_arg_uint(const json_t *obj, const char *key, uint32_t dflt, uint32_t max,
                      uint32_t *out, struct rc_err *err);

#ifdef __cplusplus
}
#endif

#endif
