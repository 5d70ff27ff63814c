/* mpsc.h - intrusive lock-free multi-producer single-consumer queue with a
 * batched wake-up (Vyukov's algorithm; see docs/ARCHITECTURE.md for why this
 * is written here rather than taken from liburcu or libck).
 *
 * Owner: the consumer thread (a shard or the storage thread) owns the queue
 *   and is the only caller of rc_mpsc_pop / rc_mpsc_prepare_sleep /
 *   rc_mpsc_awake. Any thread may call rc_mpsc_push.
 * Nodes: embedded in the caller's message; a pushed node belongs to the queue
 *   until popped. The queue never allocates.
 * Wake-up: the consumer says when it is about to block (prepare_sleep) and
 *   when it is running again (awake). A producer writes the eventfd only when
 *   it is the first to push after the consumer said it would sleep, so a
 *   burst of N messages costs at most one write(2).
 * All atomics of the project live here, in the refcount helpers, in the
 * connection budget (limits.h), in the Redis bridge's stop and up flags
 * (redis_bridge.c) and in the webhook queue's bound, stop flag and counters
 * (webhook.c); each states its memory order and why. */
#ifndef RINGCAST_MPSC_H
#define RINGCAST_MPSC_H

#include <stdatomic.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_mpsc_node {
    struct rc_mpsc_node *_Atomic next;
};

struct rc_mpsc {
    /* producers' end, on its own cache line */
    _Alignas(64) struct rc_mpsc_node *_Atomic head;
    /* consumer's end */
    _Alignas(64) struct rc_mpsc_node *tail;
    struct rc_mpsc_node stub;
    /* 1 while the consumer is running or a wake-up is already on its way */
    _Alignas(64) atomic_int awake;
    int wake_fd; /* eventfd, or -1 when the consumer polls */
};

/* wake_fd: an eventfd the consumer waits on (not owned), or -1. */
void rc_mpsc_init(struct rc_mpsc *q, int wake_fd);

/* Any thread. Never blocks, never fails. Returns true if this push woke the
 * consumer (wrote the eventfd). */
bool rc_mpsc_push(struct rc_mpsc *q, struct rc_mpsc_node *n);

/* Consumer only. NULL when the queue is empty, or when a producer is between
 * its two steps of a push; that producer's wake-up logic guarantees the
 * consumer is woken (or still awake) to see the node. */
struct rc_mpsc_node *rc_mpsc_pop(struct rc_mpsc *q);

/* Consumer only: about to block. Returns false if messages arrived in the
 * meantime (then do not block; call rc_mpsc_awake and drain). */
bool rc_mpsc_prepare_sleep(struct rc_mpsc *q);

/* Consumer only: running again; producers need not wake us. */
void rc_mpsc_awake(struct rc_mpsc *q);

/* Consumer only: true if no node is visible. */
bool rc_mpsc_is_empty(struct rc_mpsc *q);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_MPSC_H */
