/* timer.c - hashed timing wheel. See timer.h. */
#include <stdio.h>
#include <time.h>

#include "ringcast/timer.h"

void rc_iso_time(char out[RC_ISO_TIME_LEN])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, RC_ISO_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, RC_ISO_TIME_LEN - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

uint64_t rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rc_timer_wheel_init(struct rc_timer_wheel *w, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->now_ms = now_ms;
    w->tick = now_ms / RC_TIMER_TICK_MS;
}

static void link_slot(struct rc_timer **slot, struct rc_timer *t)
{
    t->next = *slot;
    if (t->next)
        t->next->pprev = &t->next;
    t->pprev = slot;
    *slot = t;
}

static void unlink_timer(struct rc_timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

void rc_timer_arm(struct rc_timer_wheel *w, struct rc_timer *t, uint64_t deadline_ms)
{
    if (t->pprev)
        unlink_timer(t);
    else
        w->armed++;
    t->deadline_ms = deadline_ms;
    /* round up: when the slot of tick k is processed, now >= k * TICK >= deadline */
    uint64_t tick = (deadline_ms + RC_TIMER_TICK_MS - 1) / RC_TIMER_TICK_MS;
    /* never into a slot already passed: the next advance visits tick+1 first */
    if (tick <= w->tick)
        tick = w->tick + 1;
    link_slot(&w->slots[tick % RC_TIMER_SLOTS], t);
}

void rc_timer_cancel(struct rc_timer_wheel *w, struct rc_timer *t)
{
    if (!t->pprev)
        return;
    unlink_timer(t);
    w->armed--;
}

uint64_t rc_timer_next_ms(const struct rc_timer_wheel *w)
{
    if (!w->armed)
        return UINT64_MAX;
    for (uint64_t k = w->tick + 1; k <= w->tick + RC_TIMER_SLOTS; k++)
        if (w->slots[k % RC_TIMER_SLOTS])
            return k * RC_TIMER_TICK_MS;
    return (w->tick + 1) * RC_TIMER_TICK_MS; /* unreachable while armed > 0 */
}

size_t rc_timer_advance(struct rc_timer_wheel *w, uint64_t now_ms, rc_timer_fn fn, void *ctx)
{
    size_t fired = 0;
    uint64_t target = now_ms / RC_TIMER_TICK_MS;

    w->now_ms = now_ms;
    if (target <= w->tick)
        return 0;
    /* a long stall visits each slot at most once */
    if (target - w->tick > RC_TIMER_SLOTS)
        w->tick = target - RC_TIMER_SLOTS;
    while (w->tick < target) {
        w->tick++;
        struct rc_timer **slot = &w->slots[w->tick % RC_TIMER_SLOTS];
        struct rc_timer *list = *slot, *keep = NULL;
        *slot = NULL;
        if (list)
            list->pprev = &list;
        while (list) {
            struct rc_timer *t = list;
            unlink_timer(t);
            if (t->deadline_ms <= now_ms) {
                w->armed--;
                fired++;
                fn(ctx, t);
            } else {
                link_slot(&keep, t);
            }
        }
        /* move the not-yet-due timers back into their slot */
        while (keep) {
            struct rc_timer *t = keep;
            unlink_timer(t);
            link_slot(slot, t);
        }
    }
    return fired;
}
