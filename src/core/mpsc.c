/* mpsc.c - Vyukov intrusive MPSC queue plus the batched eventfd wake-up.
 * The algorithm: producers swap themselves into `head` and then link the
 * previous head to themselves; the consumer follows `next` pointers from
 * `tail`. A stub node keeps the list non-empty so that push never has to
 * touch `tail`. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "ringcast/mpsc.h"

void rc_mpsc_init(struct rc_mpsc *q, int wake_fd)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
    atomic_init(&q->awake, 1);
    q->wake_fd = wake_fd;
}

static void push_node(struct rc_mpsc *q, struct rc_mpsc_node *n)
{
    /* relaxed: n is not reachable by anyone until the exchange publishes it */
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes n's contents (and the caller's message) to
     * the next producer that links onto it; acquire orders our link store
     * after the previous producer's initialisation of prev. */
    struct rc_mpsc_node *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    /* release: the consumer's acquire load of prev->next sees n's payload */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

bool rc_mpsc_push(struct rc_mpsc *q, struct rc_mpsc_node *n)
{
    push_node(q, n);
    /* seq_cst: must be ordered after the push above and against the
     * consumer's seq_cst store in prepare_sleep (a store-load pattern), so
     * that either the consumer sees our node or we see awake == 0. */
    if (atomic_exchange_explicit(&q->awake, 1, memory_order_seq_cst) == 0 && q->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t w;
        do {
            w = write(q->wake_fd, &one, sizeof(one));
        } while (w < 0 && errno == EINTR);
        /* EAGAIN means the counter is saturated: the consumer is woken anyway */
        return true;
    }
    return false;
}

struct rc_mpsc_node *rc_mpsc_pop(struct rc_mpsc *q)
{
    struct rc_mpsc_node *tail = q->tail;
    /* acquire: pairs with the producer's release store of next */
    struct rc_mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    /* acquire: see the latest head published by a producer */
    struct rc_mpsc_node *head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail != head)
        return NULL; /* a producer is between its exchange and its link */
    push_node(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

bool rc_mpsc_is_empty(struct rc_mpsc *q)
{
    /* tail != stub means a node is waiting to be returned */
    if (q->tail != &q->stub)
        return false;
    if (atomic_load_explicit(&q->stub.next, memory_order_acquire))
        return false;
    /* head != stub: a producer is mid-push; its node is about to appear */
    return atomic_load_explicit(&q->head, memory_order_acquire) == &q->stub;
}

bool rc_mpsc_prepare_sleep(struct rc_mpsc *q)
{
    /* seq_cst: the store of 0 must be visible before we look at the queue
     * again (store-load), pairing with the producers' seq_cst exchange. */
    atomic_store_explicit(&q->awake, 0, memory_order_seq_cst);
    if (rc_mpsc_is_empty(q))
        return true;
    atomic_store_explicit(&q->awake, 1, memory_order_relaxed);
    return false;
}

void rc_mpsc_awake(struct rc_mpsc *q)
{
    /* relaxed: only suppresses producers' eventfd writes; a stale 0 seen by
     * a producer costs one spurious wake-up, never a lost one. */
    atomic_store_explicit(&q->awake, 1, memory_order_relaxed);
}
