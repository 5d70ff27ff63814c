/* shim_store.c - the store for bench_store.cc (store.h pulls in mpsc.h, whose
 * C11 atomics C++ cannot parse): a store with its thread on either engine,
 * and bursts of notification creates timed from submit to reply. The
 * PostgreSQL engine runs against a PostgreSQL 15 this process starts
 * (tests/pg_test_server.h; fsync on, as a real server would run).
 * Owner: the benchmark thread; the reply function runs on the storage
 * thread and only writes lat[] slots and the done counter. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/pg_test_server.h"
#include "ringcast/store.h"
#include "shim_store.h"

struct rc_bench_store {
    struct rc_store *s;
    char dir[64];
    uint64_t *lat; /* ns, submit -> reply, one per request of the burst */
    size_t cap;
    _Atomic size_t done;
    _Atomic size_t slot; /* next lat[] index */
    _Atomic size_t failed;
};

static struct pg_test_server g_pg;
static int g_pg_state; /* 0 = not tried, 1 = up, -1 = failed */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_reply(void *ctx, struct rc_store_req *req)
{
    struct rc_bench_store *b = ctx;
    /* several storage threads (a pool) answer at once: each takes its own slot */
    size_t i = atomic_fetch_add_explicit(&b->slot, 1, memory_order_relaxed);
    if (i < b->cap)
        b->lat[i] = now_ns() - req->tag;
    if (req->status != 201)
        atomic_fetch_add_explicit(&b->failed, 1, memory_order_relaxed);
    rc_store_req_free(req);
    /* release: the lat[] slot is written before the bench thread sees the count */
    atomic_fetch_add_explicit(&b->done, 1, memory_order_release);
}

static void stop_pg(void)
{
    pts_stop(&g_pg);
}

const char *rc_bench_store_pg_url(void)
{
    if (g_pg_state == 0) {
        g_pg_state = pts_available() && pts_start_fsync(&g_pg, 77, true) == 0 ? 1 : -1;
        if (g_pg_state == 1)
            atexit(stop_pg);
    }
    return g_pg_state == 1 ? g_pg.url : NULL;
}

struct rc_bench_store *rc_bench_store_new(int pg, unsigned pool, size_t burst)
{
    struct rc_bench_store *b = calloc(1, sizeof(*b));
    struct rc_err err = {0};
    if (!b)
        return NULL;
    snprintf(b->dir, sizeof(b->dir), "/tmp/rc-bench-store-XXXXXX");
    if (!mkdtemp(b->dir))
        goto fail;
    struct rc_store_config cfg = {.data_dir = b->dir};
    if (pg) {
        cfg.engine = &rc_store_pg_ops;
        cfg.pool = pool;
        cfg.postgres_url = rc_bench_store_pg_url();
        if (!cfg.postgres_url ||
            !pts_exec_sql(&g_pg, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
            goto fail;
    }
    b->cap = burst;
    b->lat = calloc(burst, sizeof(*b->lat));
    if (!b->lat || rc_store_open(&b->s, &cfg, on_reply, b, &err) != 0 ||
        rc_store_start(b->s, &err) != 0) {
        fprintf(stderr, "bench_store: %s\n", err.msg);
        goto fail;
    }
    return b;
fail:
    rc_bench_store_free(b);
    return NULL;
}

void rc_bench_store_free(struct rc_bench_store *b)
{
    if (!b)
        return;
    rc_store_stop(b->s);
    free(b->lat);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", b->dir);
    if (b->dir[0] && system(cmd) != 0)
        fprintf(stderr, "bench_store: could not remove %s\n", b->dir);
    free(b);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
    return a < c ? -1 : a > c;
}

int rc_bench_store_burst(struct rc_bench_store *b, struct rc_bench_store_result *out)
{
    atomic_store(&b->done, 0);
    atomic_store(&b->slot, 0);
    atomic_store(&b->failed, 0);
    for (size_t i = 0; i < b->cap; i++) {
        /* two recipients of 100 users: a pool spreads them over its connections */
        char u1[16], u2[16];
        snprintf(u1, sizeof(u1), "user-%zu", i % 100);
        snprintf(u2, sizeof(u2), "user-%zu", (i + 1) % 100);
        json_t *a = json_pack("{s:s, s:s, s:[s, s], s:{s:I}}", "title", "bench", "message",
                              "a notification of a typical size for the benchmark", "recipients",
                              u1, u2, "metadata", "i", (json_int_t)i);
        struct rc_store_req *req = rc_store_req_new(RC_STORE_NOTIF_CREATE, a);
        if (!req)
            return -1;
        req->tag = now_ns();
        rc_store_submit(b->s, req);
    }
    while (atomic_load_explicit(&b->done, memory_order_acquire) < b->cap)
        nanosleep(&(struct timespec){0, 20000}, NULL);
    qsort(b->lat, b->cap, sizeof(*b->lat), cmp_u64);
    out->p50_us = (double)b->lat[b->cap / 2] / 1000.0;
    out->p99_us = (double)b->lat[b->cap * 99 / 100] / 1000.0;
    out->failed = atomic_load(&b->failed);
    return 0;
}
