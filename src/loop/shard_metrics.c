/* shard_metrics.c - the shard's histograms for /metrics: loop turn duration
 * and publish-to-send latency (see shard.h). Shard thread only. */
#include "ringcast/shard.h"
#include "ringcast/timer.h"

void rc_shard_turn_start(struct rc_shard *s)
{
    s->turn_start_ns = rc_now_ns();
}

/* Record the noted events' latency as of now. */
static void record_pending(struct rc_shard *s, uint64_t now)
{
    for (uint32_t i = 0; i < s->nlat_pending; i++) {
        uint64_t a = s->lat_pending[i];
        /* the owner's clock is the same monotonic clock; a sample taken on
         * another core a few ns "later" than now counts as 0 */
        rc_histo_add(&s->hist.publish_send_ns, now > a ? now - a : 0);
    }
    s->nlat_pending = 0;
}

void rc_shard_note_event(struct rc_shard *s, uint64_t accepted_ns)
{
    if (!accepted_ns)
        return; /* an event without an accept time (not measured) */
    if (s->nlat_pending == RC_SHARD_LAT_PENDING)
        record_pending(s, rc_now_ns()); /* a busy turn: measure those now */
    s->lat_pending[s->nlat_pending++] = accepted_ns;
}

void rc_shard_turn_end(struct rc_shard *s)
{
    uint64_t now = rc_now_ns();
    if (s->nlat_pending)
        record_pending(s, now);
    rc_histo_add(&s->hist.turn_ns, now > s->turn_start_ns ? now - s->turn_start_ns : 0);
}
