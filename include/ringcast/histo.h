/* histo.h - a fixed-bucket histogram of unsigned values (latencies in
 * nanoseconds, sizes, counts), for /metrics.
 *
 * Buckets are powers of two: bucket i counts the values v with
 *   2^(i-1) < v <= 2^i (bucket 0: v <= 1), and the last bucket everything
 *   above 2^(RC_HISTO_BUCKETS-2) (rendered as +Inf). Adding is a count
 *   leading zeros and three increments: no clock, no allocation, no lock.
 * Owner: one thread writes a histogram (the shard or storage thread that
 *   measures); readers get a copy made on that same thread (the stats gather)
 *   and merge copies with rc_histo_merge. Plain counters, no atomics.
 * Invariant: count == sum of b[], sum == sum of the values added (wraps only
 *   after 2^64 ns, some 584 years of latency). */
#ifndef RINGCAST_HISTO_H
#define RINGCAST_HISTO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_HISTO_BUCKETS 40 /* up to 2^38 (275 s in ns) before +Inf */

struct rc_histo {
    uint64_t count;
    uint64_t sum;
    uint64_t b[RC_HISTO_BUCKETS];
};

/* The bucket of v: the smallest i with v <= 2^i, capped at the last. */
static inline unsigned rc_histo_bucket(uint64_t v)
{
    unsigned i = v <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(v - 1);
    return i < RC_HISTO_BUCKETS - 1 ? i : RC_HISTO_BUCKETS - 1;
}

static inline void rc_histo_add(struct rc_histo *h, uint64_t v)
{
    h->b[rc_histo_bucket(v)]++;
    h->count++;
    h->sum += v;
}

static inline void rc_histo_merge(struct rc_histo *into, const struct rc_histo *h)
{
    into->count += h->count;
    into->sum += h->sum;
    for (unsigned i = 0; i < RC_HISTO_BUCKETS; i++)
        into->b[i] += h->b[i];
}

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_HISTO_H */
