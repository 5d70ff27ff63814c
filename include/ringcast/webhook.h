/* webhook.h - lifecycle webhooks: connect, disconnect (with its reason),
 * subscribe, unsubscribe and presence join/leave, POSTed in signed JSON batches
 * to webhook_url by one thread of their own (src/webhook/webhook.c).
 *
 * Owner: rc_webhook_new/start/stop: the main thread. rc_webhook_emit and
 *   rc_webhook_metrics: any thread (the shards). Everything else of the queue,
 *   the batch in flight and the libcurl handles belongs to the webhook thread.
 * Invariants: at most webhook_queue events wait on the webhook thread (past it
 *   the oldest are dropped and counted); events a shard posts but the thread has
 *   not yet taken are bounded by webhook_queue too (past it the shard drops the
 *   new event and counts it). One batch is in flight at a time, retried until
 *   a 2xx: delivery is at-least-once and in emit order per connection.
 * Lifetime: the handle lives from rc_webhook_new to rc_webhook_free, after
 *   every shard has stopped emitting. rc_webhook_emit copies the event. */
#ifndef RINGCAST_WEBHOOK_H
#define RINGCAST_WEBHOOK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/common.h"
#include "ringcast/config.h"
#include "ringcast/conn.h"
#include "ringcast/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Event types; bit (1 << type) in the webhook_events mask. Words: connect,
 * disconnect, subscribe, unsubscribe, presence (presence covers join and leave). */
enum rc_webhook_type {
    RC_WEBHOOK_CONNECT,
    RC_WEBHOOK_DISCONNECT,
    RC_WEBHOOK_SUBSCRIBE,
    RC_WEBHOOK_UNSUBSCRIBE,
    RC_WEBHOOK_PRESENCE_JOIN,
    RC_WEBHOOK_PRESENCE_LEAVE,
    RC_WEBHOOK_NTYPES
};

#define RC_WEBHOOK_TOPIC_MAX (RC_TOPIC_MAX_LEN + 1) /* a whole topic or pattern, NUL included */

/* One lifecycle event, as a shard gives it (copied by rc_webhook_emit). */
struct rc_webhook_event {
    enum rc_webhook_type type;
    enum rc_conn_close_reason reason; /* disconnect only */
    uint64_t conn_id;
    uint64_t time_ms;    /* unix ms; 0 = now */
    const char *user_id; /* "" or NULL = anonymous */
    const char *topic;   /* subscribe/unsubscribe/presence; else NULL */
    size_t topic_len;
};

struct rc_webhook;

/* The word of a type ("connect", "presence_join"...) and of a close reason
 * ("client_close", "heartbeat_timeout"...; the table is in webhook_body.c). */
const char *rc_webhook_type_name(enum rc_webhook_type t);
const char *rc_webhook_reason_name(enum rc_conn_close_reason r);

/* Check the webhook keys of cfg (url scheme, event words): 0 or -EINVAL with
 * err naming the key and what to write. Called by rc_webhook_new. */
RC_MUST_CHECK int rc_webhook_check(const struct rc_config *cfg, struct rc_err *err);

/* Main thread: NULL in *out when webhook_url is empty (webhooks off: emit is
 * then a no-op on a NULL handle). node names this node in every batch. */
RC_MUST_CHECK int rc_webhook_new(struct rc_webhook **out, const struct rc_config *cfg,
                                 const char *node, struct rc_err *err);
/* Start the thread. 0 or -errno with err. */
RC_MUST_CHECK int rc_webhook_start(struct rc_webhook *wh, struct rc_err *err);
/* Stop: the thread tries to deliver what is queued for up to webhook_timeout,
 * then exits; joined here. NULL: nothing. */
void rc_webhook_stop(struct rc_webhook *wh);
/* After stop (or instead of start). NULL: nothing. */
void rc_webhook_free(struct rc_webhook *wh);

/* Any thread; never blocks. Does nothing when wh is NULL or the type is not in
 * webhook_events. The copy is one small allocation (a lifecycle event is not a
 * delivery: fan-out never calls this). */
void rc_webhook_emit(struct rc_webhook *wh, const struct rc_webhook_event *ev);

/* The event of connection c (its id, user and, for a disconnect, its close
 * reason) with topic (NULL for connect/disconnect). The connection's shard. */
void rc_webhook_conn(struct rc_webhook *wh, const struct rc_conn *c, enum rc_webhook_type t,
                     const char *topic, size_t topic_len);

/* True if wh is set and the type is in webhook_events (saves building an event). */
bool rc_webhook_wants(const struct rc_webhook *wh, enum rc_webhook_type t);

/* The webhook counters as a JSON object (queued, sent, dropped, posts, failed,
 * retries, queue_depth) for the stats; NULL when wh is NULL or out of memory.
 * Any thread. */
struct json_t *rc_webhook_stats(const struct rc_webhook *wh);

/* Prometheus text of the webhook counters (caller frees; NULL when wh is NULL
 * or out of memory). Any thread: the counters are relaxed atomics. */
char *rc_webhook_metrics(const struct rc_webhook *wh);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_WEBHOOK_H */
