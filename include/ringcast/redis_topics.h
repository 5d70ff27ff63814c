/* redis_topics.h - the Redis bridge's view of the topics this node receives:
 * which channels it must be subscribed to (reference counts over the node's
 * exact-topic subscriptions) and, per topic, the last event it delivered, so
 * a message is classified as the next one, a duplicate (an exact subscription
 * and a pattern both matched, or a replay after a reconnect), the sign of a
 * gap to close from the history, or a new epoch.
 *
 * Owner: the bridge thread (one table per Redis instance); not shared.
 * Bounds: topics seen only through patterns (no reference) are tracked up to
 *   seen_max; past it the least recently seen of them is forgotten (its next
 *   message counts as new: a duplicate through two patterns is then possible
 *   and counted, never a lost event). A referenced topic is never forgotten.
 * Lifetime: an entry lives while referenced or tracked; rc_redis_topics_free
 *   frees every one. Names are copied. */
#ifndef RINGCAST_REDIS_TOPICS_H
#define RINGCAST_REDIS_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/history.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_redis_topic {
    char *name;
    size_t len;
    uint64_t hash;
    uint32_t refs;  /* exact subscriptions on this node (the channel's SUBSCRIBE) */
    bool known;     /* a message (or a history read) set epoch and last */
    bool confirmed; /* Redis confirmed the channel's SUBSCRIBE (reset when it is sent) */
    bool coarse;    /* the bridge's pattern map: received through the catch-all glob */
    char epoch[RC_EPOCH_MAX];
    uint64_t last;                              /* last seq delivered */
    bool in_lru;                                /* unreferenced: in the recency list */
    struct rc_redis_topic *lru_prev, *lru_next; /* unreferenced entries, most recent first */
};

struct rc_redis_topics {
    struct rc_redis_topic **slots; /* open addressing, power of two, load <= 1/2 */
    size_t cap, n;
    size_t unreferenced, seen_max;
    struct rc_redis_topic *lru_head, *lru_tail;
    uint64_t forgotten; /* unreferenced entries dropped at seen_max */
};

/* What a received message is, by its epoch and seq. */
enum rc_redis_seen {
    RC_REDIS_SEEN_NEW,   /* nothing known of the topic: deliver (and start here) */
    RC_REDIS_SEEN_NEXT,  /* last + 1: deliver */
    RC_REDIS_SEEN_DUP,   /* at or below last: drop */
    RC_REDIS_SEEN_GAP,   /* beyond last + 1: read the history after last first */
    RC_REDIS_SEEN_EPOCH, /* another epoch: the topic's history was lost; deliver, restart */
};

int rc_redis_topics_init(struct rc_redis_topics *t, size_t seen_max) RC_MUST_CHECK;
void rc_redis_topics_free(struct rc_redis_topics *t);

struct rc_redis_topic *rc_redis_topics_find(struct rc_redis_topics *t, const char *name,
                                            size_t len);
/* One more exact subscription of name; *first: the channel must be
 * subscribed now. 0 or -ENOMEM. */
int rc_redis_topics_ref(struct rc_redis_topics *t, const char *name, size_t len,
                        bool *first) RC_MUST_CHECK;
/* One fewer; *last: the channel must be unsubscribed now (the entry is then
 * kept as seen-only, under the seen_max bound). -ENOENT if not referenced. */
int rc_redis_topics_unref(struct rc_redis_topics *t, const char *name, size_t len, bool *last);

/* Classify a message of name (epoch, seq) without changing anything; *e: the
 * entry (created when tracking it is possible, else NULL). -ENOMEM leaves *e
 * NULL and answers NEW. */
enum rc_redis_seen rc_redis_topics_seen(struct rc_redis_topics *t, const char *name, size_t len,
                                        const char *epoch, uint64_t seq, struct rc_redis_topic **e);
/* Record that e's events up to seq of epoch were delivered. */
void rc_redis_topics_delivered(struct rc_redis_topics *t, struct rc_redis_topic *e,
                               const char *epoch, uint64_t seq);

/* Every entry, for resubscribing and closing gaps after a reconnect (the
 * callback must not change the table). */
void rc_redis_topics_each(struct rc_redis_topics *t,
                          void (*fn)(void *arg, const struct rc_redis_topic *e), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_REDIS_TOPICS_H */
