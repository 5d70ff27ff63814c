/* shard_drain.c - a shard's drain (SIGTERM): HTTP connections finish their
 * request or go at once; WebSocket and SSE clients are told to go spread
 * evenly over drain_spread (the k-th of n at start + k * spread / n), so the
 * other nodes take the reconnects gradually. Meanwhile the listener stays
 * open: /healthz answers 503 (a load balancer takes the node out at its next
 * check) and new WebSocket/SSE handshakes get 503 draining. shard.c calls
 * rc_shard_drain_step once per loop turn while draining and closes the
 * listener once rc_shard_drain_listener_done.
 * Owner: the shard's own thread (struct rc_shard of the caller only). */
#include "ringcast/conn.h"
#include "ringcast/shard.h"

#include "shard_internal.h"

static bool is_stream(const struct rc_conn *c)
{
    return c->proto == RC_PROTO_WS || c->proto == RC_PROTO_SSE;
}

/* Loop turn while draining: tell the long-lived connections whose time came
 * (the k-th of n at start + k * spread / n) to go. One walk of s->all per
 * turn at most, and only when one is due; no allocation. */
void rc_shard_drain_step(struct rc_shard *s)
{
    if (s->drain_told >= s->drain_streams)
        return;
    uint64_t due = s->drain_streams;
    if (s->drain_spread_ms) {
        uint64_t el = s->now_ms - s->drain_start_ms;
        due = el >= s->drain_spread_ms ? s->drain_streams
                                       : el * s->drain_streams / s->drain_spread_ms + 1;
    }
    if (due <= s->drain_told)
        return;
    struct rc_conn *c = s->all;
    while (c && s->drain_told < due) {
        struct rc_conn *next = c->all_next;
        if (c->state == RC_CONN_OPEN && is_stream(c) && !c->drain_told) {
            c->drain_told = true;
            s->drain_told++;
            rc_conn_on_drain(c);
        }
        c = next;
    }
    if (!c && s->drain_told < due)
        s->drain_told = s->drain_streams; /* the rest went by themselves */
}

/* Whether the listener may close now: every stream was told, and the spread
 * is over (or there was nothing to spread). */
bool rc_shard_drain_listener_done(const struct rc_shard *s)
{
    if (s->nconns == 0)
        return true; /* nothing left to spread */
    return s->drain_told >= s->drain_streams &&
           (!s->drain_streams || s->now_ms - s->drain_start_ms >= s->drain_spread_ms);
}

void rc_shard_drain_start(struct rc_shard *s)
{
    s->draining = true;
    s->drain_start_ms = s->now_ms;
    s->drain_spread_ms = s->cfg->drain_spread;
    /* drain_timeout counts after the spread (docs/OPERATIONS.md) */
    s->drain_deadline_ms = s->now_ms + s->cfg->drain_spread + s->cfg->drain_timeout;
    s->drain_streams = 0;
    s->drain_told = 0;
    struct rc_conn *c = s->all;
    while (c) {
        struct rc_conn *next = c->all_next;
        if (c->state != RC_CONN_CLOSED && is_stream(c))
            s->drain_streams++;
        else if (c->state != RC_CONN_CLOSED)
            rc_conn_on_drain(c); /* HTTP: finish the request in flight or go */
        c = next;
    }
    rc_shard_drain_step(s);
}
