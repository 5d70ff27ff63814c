/* evbuf.h - an event, encoded once per wire format, shared by every shard.
 *
 * Owner: created by the topic's owner shard; frozen (immutable) once posted.
 *   Any thread may read it and take or drop references.
 * Refcount: rc_evbuf_ref/_ref_n (relaxed increments: the caller already holds
 *   a reference, so the object cannot die concurrently), rc_evbuf_unref
 *   (acq_rel: the last dropper must see every other thread's reads finished
 *   before it frees). These, mpsc.c and the connection budget (limits.h) are the
 *   only atomics of the project.
 * Wire images: each format is one contiguous byte run that every delivery
 *   points into with an iovec. A delivery through a subscription sends
 *   `prefix` then the subscription's pre-encoded suffix; a delivery without a
 *   subscription (broadcast, addressed) sends `whole`.
 *     WebSocket: [frame header][{"type":"event","data":{...,"subscription":]
 *       suffix:  ["s0123456789abcdef"}}]  (fixed RC_SUB_ID_LEN, so the frame
 *       header, which carries the length, is shared too)
 *     WebSocket compressed (wsz, permessage-deflate): the same, deflated once;
 *       suffix: the same bytes plus one 0x00 (see wsz below)
 *     SSE: [id: ..\nevent: ..\ndata: {...,"subscription":] suffix ["s..."}\n\n]
 * Cross-shard delivery: posts[i] is the inbox node for shard i, so fan-out to
 *   N shards allocates nothing beyond the evbuf itself. rc_evbuf_new sets each
 *   post's discard (drop the reference); whoever posts them sets run. */
#ifndef RINGCAST_EVBUF_H
#define RINGCAST_EVBUF_H

#include <jansson.h>
#include <stdatomic.h>

#include "ringcast/common.h"
#include "ringcast/mpsc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_SUB_ID_LEN 16 /* "s" + 15 lower-case hex digits */
#define RC_EVENT_ID_MAX 48
#define RC_WS_SUFFIX_LEN (1 + RC_SUB_ID_LEN + 3)  /* "s..."}} */
#define RC_SSE_SUFFIX_LEN (1 + RC_SUB_ID_LEN + 4) /* "s..."}\n\n */

struct rc_shard;
struct rc_post;

/* Runs p on the shard s whose inbox it came out of. Takes p: frees it, keeps
 * it, or posts it on (to the next hop of its trip). */
typedef void (*rc_post_run_fn)(struct rc_shard *s, struct rc_post *p);
/* Frees p without running it (left in an inbox at shutdown, after the shard
 * threads are gone). */
typedef void (*rc_post_discard_fn)(struct rc_post *p);

/* An inbox message, embedded in a larger struct that its run and discard
 * functions know (RC_CONTAINER_OF). The shard's loop knows nothing else of
 * it: whoever creates a post sets both functions, so adding a kind of
 * message touches only the module that sends and runs it. Owned by whoever
 * holds it; pushing it into an inbox (rc_shard_post) hands it over. */
struct rc_post {
    struct rc_mpsc_node node;
    rc_post_run_fn run;
    rc_post_discard_fn discard;
};

/* The event kinds a delivery can be. */
enum rc_event_kind {
    RC_EVENT_TOPIC,     /* published on a topic: goes through subscriptions */
    RC_EVENT_BROADCAST, /* events/broadcast or events without topic: to connections */
};

struct rc_evbuf_post {
    struct rc_post post;
    struct rc_evbuf *ev;
};

struct rc_evbuf {
    _Atomic uint32_t refs;
    enum rc_event_kind kind;
    uint32_t nposts;
    /* what matching needs (immutable) */
    char *topic; /* NUL-terminated, NULL for broadcasts */
    size_t topic_len;
    json_t *data; /* parsed event data, owned by the evbuf (moved in, never shared
                     with another json_t holder); read-only; freed with the evbuf */
    char id[RC_EVENT_ID_MAX];
    uint64_t seq; /* per-topic sequence number (0 for broadcasts) */
    /* monotonic ns (rc_now_ns) when its order point accepted it: the owner
     * shard, or with broker = redis this node's bridge receiving it; 0 = not
     * measured (broadcasts, replays). For the publish-to-send histogram. */
    uint64_t accepted_ns;
    char *type; /* event type (for the history API) */
    /* wire images */
    uint8_t *ws; /* prefix (topic) or whole (broadcast) WebSocket frame */
    size_t ws_len;
    /* permessage-deflate image (NULL = none: compression off, event below
     * ws_compression_min, or not smaller): the same frame compressed, RSV1
     * set, built once on the owner shard. Topic events: the deflate run of
     * the prefix ends in a stored-block header for the RC_WS_SUFFIX_LEN
     * suffix bytes; the subscription's ws_suffix follows, then one 0x00 (the
     * header of the empty stored block whose 00 00 ff ff RFC 7692 strips). */
    uint8_t *wsz;
    size_t wsz_len;
    size_t ws_plain; /* payload bytes of the uncompressed message (window check) */
    uint8_t *sse;
    size_t sse_len;
    /* user targeting (seed 004): only connections of these users (sorted,
     * NULL = everyone) and never those of exclude_user */
    char **users;
    size_t nusers;
    char *exclude_user;
    /* broadcast targeting: connection ids to include (NULL = all) / exclude */
    uint64_t *recipients;
    size_t nrecipients;
    uint64_t *exclude;
    size_t nexclude;
    struct rc_evbuf_post posts[]; /* one per shard */
};

/* Allocate an evbuf with nposts inbox nodes and one reference. */
struct rc_evbuf *rc_evbuf_new(uint32_t nposts) RC_MUST_CHECK;

static inline void rc_evbuf_ref_n(struct rc_evbuf *ev, uint32_t n)
{
    /* relaxed: the caller holds a reference, ordering comes from the unref */
    atomic_fetch_add_explicit(&ev->refs, n, memory_order_relaxed);
}

static inline void rc_evbuf_ref(struct rc_evbuf *ev)
{
    rc_evbuf_ref_n(ev, 1);
}

void rc_evbuf_free_(struct rc_evbuf *ev);

/* May the connection of user (NUL-terminated, "" = anonymous) get ev? */
bool rc_evbuf_user_allowed(const struct rc_evbuf *ev, const char *user);
/* Copy a user list into ev (sorted for lookup). 0 or -ENOMEM. */
int rc_evbuf_set_users(struct rc_evbuf *ev, char *const *users, size_t n, const char *exclude);

static inline void rc_evbuf_unref(struct rc_evbuf *ev)
{
    /* acq_rel: release our reads of *ev; the last one acquires everyone's */
    if (atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) == 1)
        rc_evbuf_free_(ev);
}

/* permessage-deflate for the events encoded from now on: events whose
 * WebSocket payload has at least min bytes get a compressed image too; 0 =
 * none (the default). Called once at start, before any shard runs: the value
 * is read-only afterwards. */
void rc_evbuf_set_compress_min(size_t min);

/* Encode the wire images of a topic event (kind TOPIC) or of a broadcast.
 * type: event type; data: read only (NULL = null); to keep it for filter
 * matching the caller moves its only reference into ev->data (a json_t must
 * never be referenced from two threads: jansson's refcount is not atomic).
 * extra_json: more members for the event object (",\"priority\":\"high\"") or
 * NULL; sse_pre: SSE lines before the record ("retry: 3000\n") or NULL.
 * 0 or -ENOMEM. */
int rc_evbuf_encode(struct rc_evbuf *ev, const char *type, json_t *data, const char *extra_json,
                    const char *sse_pre);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_EVBUF_H */
