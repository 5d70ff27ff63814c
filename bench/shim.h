/* shim.h - opaque C entry points for the C++ benchmarks, for modules whose
 * headers use C11-only constructs (_Atomic, _Alignas) that C++ cannot parse.
 * Owner: the benchmark thread that created the object. */
#ifndef RINGCAST_BENCH_SHIM_H
#define RINGCAST_BENCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rc_bench_queue;

/* A queue plus `per_producer` preallocated nodes for each of `producers`. */
struct rc_bench_queue *rc_bench_queue_new(int producers, size_t per_producer);
void rc_bench_queue_free(struct rc_bench_queue *q);
/* Reset to empty (between benchmark iterations; no thread may be running). */
void rc_bench_queue_reset(struct rc_bench_queue *q);
/* Producer p pushes its node i. */
void rc_bench_queue_push(struct rc_bench_queue *q, int producer, size_t i);
/* Consumer: 1 if a node was popped, else 0. */
int rc_bench_queue_pop(struct rc_bench_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_BENCH_SHIM_H */
