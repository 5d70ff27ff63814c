/* shim_store.h - opaque C entry points to the store for bench_store.cc (see
 * shim_store.c). Owner: the benchmark thread that created the object. */
#ifndef RINGCAST_BENCH_SHIM_STORE_H
#define RINGCAST_BENCH_SHIM_STORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rc_bench_store;

struct rc_bench_store_result {
    double p50_us, p99_us; /* ack latency: submit -> reply (after the commit) */
    size_t failed;         /* answers other than 201 */
};

/* The URL of this process's PostgreSQL (started on first use), or NULL. */
const char *rc_bench_store_pg_url(void);
/* A started store on SQLite (pg = 0, a temporary data_dir, synchronous=full)
 * or PostgreSQL (pg = 1, an emptied schema), for bursts of `burst` creates. */
struct rc_bench_store *rc_bench_store_new(int pg, unsigned pool, size_t burst);
void rc_bench_store_free(struct rc_bench_store *b);
/* Submit `burst` creates at once and wait for every answer. 0 or -1. */
int rc_bench_store_burst(struct rc_bench_store *b, struct rc_bench_store_result *out);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_BENCH_SHIM_STORE_H */
