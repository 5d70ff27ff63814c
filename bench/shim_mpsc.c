/* shim_mpsc.c - the MPSC queue behind bench/shim.h. */
#include <stdlib.h>

#include "ringcast/mpsc.h"
#include "shim.h"

struct rc_bench_queue {
    struct rc_mpsc q;
    int producers;
    size_t per;
    struct rc_mpsc_node *nodes;
};

struct rc_bench_queue *rc_bench_queue_new(int producers, size_t per_producer)
{
    struct rc_bench_queue *b = aligned_alloc(64, (sizeof(*b) + 63) & ~(size_t)63);
    if (!b)
        return NULL;
    b->producers = producers;
    b->per = per_producer;
    b->nodes = calloc((size_t)producers * per_producer, sizeof(*b->nodes));
    if (!b->nodes) {
        free(b);
        return NULL;
    }
    rc_mpsc_init(&b->q, -1);
    return b;
}

void rc_bench_queue_free(struct rc_bench_queue *b)
{
    if (b) {
        free(b->nodes);
        free(b);
    }
}

void rc_bench_queue_reset(struct rc_bench_queue *b)
{
    rc_mpsc_init(&b->q, -1);
}

void rc_bench_queue_push(struct rc_bench_queue *b, int producer, size_t i)
{
    rc_mpsc_push(&b->q, &b->nodes[(size_t)producer * b->per + i]);
}

int rc_bench_queue_pop(struct rc_bench_queue *b)
{
    return rc_mpsc_pop(&b->q) != NULL;
}
