/* redis_bridge.h - the node's thread that talks to Redis: it runs every
 * publish's script (pipelined), keeps the node subscribed to exactly the
 * channels its subscriptions need, and hands every received event to its
 * caller in the topic's order, once, closing gaps from the history after a
 * reconnect (see docs/ARCHITECTURE.md, "The cluster engine").
 *
 * Thread: rc_redis_bridge_start creates one thread. It owns the Redis
 *   connections (a command and a subscriber connection per instance,
 *   redis_conn.h), the channel table (redis_topics.h) and every request
 *   while it holds it. Other threads only rc_redis_bridge_submit() (an MPSC
 *   push and an eventfd write); the callbacks run on the bridge thread and
 *   must hand their data on (a post to a shard) rather than block.
 * Requests: struct rc_redis_req, allocated by the submitter; ownership passes
 *   to the bridge at submit and back through cb.done (publishes, once, with
 *   status set) or is freed by the bridge (subscribe and unsubscribe).
 * Order: events of one topic reach cb.event in seq order with no duplicate:
 *   messages at or below the last delivered seq are dropped; a message
 *   beyond last + 1 (missed while a connection was down) first reads the
 *   topic's history after last and delivers it. Past what the history holds,
 *   the missed count is added to ctr.gap_lost and delivery goes on. */
#ifndef RINGCAST_REDIS_BRIDGE_H
#define RINGCAST_REDIS_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "ringcast/common.h"
#include "ringcast/mpsc.h"
#include "ringcast/redis_keys.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_redis_bridge;

enum rc_redis_op { RC_REDIS_PUBLISH, RC_REDIS_SUBSCRIBE, RC_REDIS_UNSUBSCRIBE };

struct rc_redis_req {
    struct rc_mpsc_node node;
    enum rc_redis_op op;
    char *topic; /* owned, NUL-terminated */
    size_t topic_len;
    /* publish */
    char *type, *data, *targeting, *key; /* owned; targeting / key may be NULL */
    uint32_t maxlen;                     /* history kept (0 = none) */
    uint64_t key_ttl_ms;                 /* the topic's keys expire after this (0 = never) */
    /* answer (publish) */
    int status; /* 202, 200 (a repeated key), 503 */
    const char *code;
    char why[160];
    char epoch[RC_EPOCH_MAX];
    uint64_t seq;
    void *user;                      /* the submitter's */
    struct rc_redis_bridge *bridge_; /* the bridge's, while the command is in flight */
};

struct rc_redis_bridge_cb {
    /* An event to deliver, in order per topic; the views live for the call. */
    void (*event)(void *arg, const char *topic, size_t len, const struct rc_redis_event *ev);
    /* A publish's answer; takes req. */
    void (*done)(void *arg, struct rc_redis_req *req);
    void *arg;
};

struct rc_redis_bridge_cfg {
    const struct rc_redis_endpoint *ep; /* copied */
    uint32_t nep;                       /* 1..RC_REDIS_INSTANCES_MAX */
    uint32_t timeout_ms;                /* per command connection (redis_conn.h) */
    uint32_t max_pending;               /* commands in flight per instance */
    uint32_t seen_max;                  /* pattern-only topics tracked (redis_topics.h) */
    uint32_t catchup_max;               /* history entries read per gap */
};

/* Counters, written by the bridge thread only (read at stop; a stats request
 * through the queue is the way to read them live). */
struct rc_redis_counters {
    uint64_t published, publish_refused, received, duplicates, gaps, gap_filled, gap_lost,
        malformed, epochs, reconnects, send_failed;
};

struct rc_redis_req *rc_redis_req_new(enum rc_redis_op op, const char *topic, size_t len);
void rc_redis_req_free(struct rc_redis_req *req);

int rc_redis_bridge_open(struct rc_redis_bridge **out, const struct rc_redis_bridge_cfg *cfg,
                         const struct rc_redis_bridge_cb *cb, struct rc_err *err) RC_MUST_CHECK;
int rc_redis_bridge_start(struct rc_redis_bridge *b, struct rc_err *err) RC_MUST_CHECK;
/* Any thread: hand req over. */
void rc_redis_bridge_submit(struct rc_redis_bridge *b, struct rc_redis_req *req);
/* Whether every instance's command connection is up (any thread; a relaxed
 * atomic read, for /healthz); why gets "redis <host:port/db> is not connected"
 * for the first one that is not. */
bool rc_redis_bridge_up(struct rc_redis_bridge *b, char *why, size_t cap);
/* Stop the thread (pending publishes get 503), free everything; the
 * variant copies the final counters first (out may be NULL). */
void rc_redis_bridge_stop(struct rc_redis_bridge *b);
void rc_redis_bridge_stop_counters(struct rc_redis_bridge *b, struct rc_redis_counters *out);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_REDIS_BRIDGE_H */
