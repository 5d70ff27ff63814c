/* timer.h - hashed timing wheel for per-connection deadlines (handshake,
 * request, idle, heartbeat).
 * Owner: one shard thread; timers are embedded in that shard's objects.
 * Resolution: RC_TIMER_TICK_MS. A timer fires within one tick after its
 *   deadline, never before it. Arm/cancel are O(1); advancing costs the
 *   slots passed plus the timers in them (long timers are revisited once per
 *   revolution of RC_TIMER_SLOTS ticks).
 * A fired timer is unlinked before its callback runs; the callback may
 *   re-arm it or free its owner. */
#ifndef RINGCAST_TIMER_H
#define RINGCAST_TIMER_H

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_TIMER_SLOTS 1024
#define RC_TIMER_TICK_MS 10

struct rc_timer {
    struct rc_timer *next;
    struct rc_timer **pprev; /* NULL when not armed */
    uint64_t deadline_ms;
};

struct rc_timer_wheel {
    uint64_t now_ms;
    uint64_t tick; /* last processed tick (now_ms / TICK) */
    size_t armed;
    struct rc_timer *slots[RC_TIMER_SLOTS];
};

typedef void (*rc_timer_fn)(void *ctx, struct rc_timer *t);

void rc_timer_wheel_init(struct rc_timer_wheel *w, uint64_t now_ms);
/* (Re)arm t to fire at deadline_ms (absolute, same clock as now_ms). */
void rc_timer_arm(struct rc_timer_wheel *w, struct rc_timer *t, uint64_t deadline_ms);
void rc_timer_cancel(struct rc_timer_wheel *w, struct rc_timer *t);
static inline bool rc_timer_is_armed(const struct rc_timer *t)
{
    return t->pprev != NULL;
}
/* Fire every timer whose deadline is <= now_ms. Returns how many fired. */
size_t rc_timer_advance(struct rc_timer_wheel *w, uint64_t now_ms, rc_timer_fn fn, void *ctx);
/* The time (ms) at which rc_timer_advance next has a timer to look at: the start of the
 * first non-empty slot after the last processed tick (a timer of a later round there makes
 * it early, never late); UINT64_MAX when nothing is armed. O(slots) at worst. */
uint64_t rc_timer_next_ms(const struct rc_timer_wheel *w);
/* Monotonic milliseconds. */
uint64_t rc_now_ms(void);
/* Monotonic nanoseconds (the metrics' histograms; one clock read). */
uint64_t rc_now_ns(void);
/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t rc_wall_ms(void);

#define RC_ISO_TIME_LEN 32
/* The wall clock as ISO 8601 UTC with milliseconds: 2026-11-23T17:49:56.281Z */
void rc_iso_time(char out[RC_ISO_TIME_LEN]);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_TIMER_H */
