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
 *   to the bridge at submit and back through cb.done (publishes and reads,
 *   once, with status set) or is freed by the bridge (the subscriptions).
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
#include "ringcast/histo.h"
#include "ringcast/mpsc.h"
#include "ringcast/redis_keys.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_redis_bridge;

enum rc_redis_op {
    RC_REDIS_PUBLISH,
    RC_REDIS_SUBSCRIBE, /* topic's channel, reference-counted; with want_confirm answered
                           (cb.done, 200) once Redis confirmed it, or at once when it
                           already had or Redis cannot be reached */
    RC_REDIS_UNSUBSCRIBE,
    RC_REDIS_PSUBSCRIBE, /* topic is a pattern: its glob on every instance, reference-counted */
    RC_REDIS_PUNSUBSCRIBE,
    RC_REDIS_READ,          /* the topic's position and history (answered through cb.done) */
    RC_REDIS_NODE_PUBLISH,  /* data[0..data_len) to every node (RC_REDIS_NODE_CHANNEL on the
                               first instance); no answer, freed by the bridge */
    RC_REDIS_PRESENCE,      /* this node's member (topic, key = user key, data = its event
                               data JSON) now has `after` connections (0 = gone); freed by
                               the bridge */
    RC_REDIS_PRESENCE_LIST, /* the topic's live users across nodes: entries with type = user
                               key, seq = connections, data = event data JSON (cb.done) */
};

/* Events for connections rather than topics (user-targeted events,
 * broadcasts, notifications) travel on this channel of the first instance;
 * every node subscribes to it. */
#define RC_REDIS_NODE_CHANNEL "rc:n"

/* One history entry of a read (owned by its request). */
struct rc_redis_entry {
    uint64_t seq, at_ms;
    char *type, *data, *targeting; /* targeting: "" = none */
};

struct rc_redis_req {
    struct rc_mpsc_node node;
    enum rc_redis_op op;
    uint64_t sent_ns; /* the bridge took it (rc_now_ns): the round-trip histogram */
    char *topic;      /* owned, NUL-terminated */
    size_t topic_len;
    /* publish */
    char *type, *data, *targeting, *key; /* owned; targeting / key may be NULL */
    size_t data_len;                     /* NODE_PUBLISH: data is binary */
    uint32_t maxlen;                     /* history kept (0 = none) */
    uint64_t key_ttl_ms;                 /* the topic's keys expire after this (0 = never) */
    /* read: the entries after `after` (UINT64_MAX: the last `count` ones), at
     * most count (0 = the position only); wait_subscribed: not before this
     * node's SUBSCRIBE of the topic's channel is confirmed, so that every
     * later event arrives live (resume) */
    uint64_t after;
    uint32_t count;
    bool wait_subscribed;
    bool want_confirm; /* SUBSCRIBE: answer it (see the op) */
    struct rc_redis_entry *entries;
    size_t nentries;
    /* answer (publish, read): status 202, 200 (a repeated key; a read), 503;
     * epoch and seq: the event's id (publish), the topic's position (read;
     * epoch "" = the topic has no state in Redis) */
    int status;
    const char *code;
    char why[160];
    char epoch[RC_EPOCH_MAX];
    uint64_t seq;
    void *user;                       /* the submitter's */
    struct rc_redis_bridge *bridge_;  /* the bridge's, while the command is in flight */
    struct rc_redis_req *parked_next; /* the bridge's: reads waiting for a confirmation */
    bool eval_; /* the bridge's: send the script's text (Redis answered NOSCRIPT) */
};

struct rc_redis_bridge_cb {
    /* An event to deliver, in order per topic; the views live for the call. */
    void (*event)(void *arg, const char *topic, size_t len, const struct rc_redis_event *ev);
    /* A publish's or a read's answer; takes req. */
    void (*done)(void *arg, struct rc_redis_req *req);
    /* A message on RC_REDIS_NODE_CHANNEL (any node's, this one's too); the
     * view lives for the call. NULL = not subscribed. */
    void (*node)(void *arg, const char *msg, size_t n);
    void *arg;
};

struct rc_redis_bridge_cfg {
    const struct rc_redis_endpoint *ep; /* copied */
    uint32_t nep;                       /* 1..RC_REDIS_INSTANCES_MAX */
    uint32_t timeout_ms;                /* per command connection (redis_conn.h) */
    uint32_t max_pending;               /* commands in flight per instance */
    uint32_t seen_max;                  /* pattern-only topics tracked (redis_topics.h) */
    uint32_t catchup_max;               /* history entries read per gap */
    char node_id[17];                   /* this node's, in presence members */
    uint32_t presence_ttl_ms;           /* a member not refreshed for this long expires */
    uint32_t max_patterns;              /* distinct globs PSUBSCRIBEd, at most; past it new
                                           patterns go through "rc:e:*" (0 = no bound) */
};

/* Counters, written by the bridge thread only; a copy is published once per
 * loop turn for rc_redis_bridge_counters (any thread). Every member is a
 * uint64_t (the copy treats the struct as an array of them). */
struct rc_redis_counters {
    uint64_t published, publish_refused, received, duplicates, gaps, gap_filled, gap_lost,
        malformed, epochs, reconnects, send_failed, reads, node_published, node_received,
        presence_failed, patterns_coarsened;
    /* publishes and reads Redis answered: the bridge sending the command ->
     * its reply (GET /metrics); uint64_t members too */
    struct rc_histo rtt_ns;
};
#define RC_REDIS_NCOUNTERS (sizeof(struct rc_redis_counters) / sizeof(uint64_t))
/* Any thread: the counters as of the bridge's last loop turn (each one exact,
 * not a snapshot of all at one instant). */
void rc_redis_bridge_counters(struct rc_redis_bridge *b, struct rc_redis_counters *out);

struct rc_redis_req *rc_redis_req_new(enum rc_redis_op op, const char *topic, size_t len);
void rc_redis_req_free(struct rc_redis_req *req);

int rc_redis_bridge_open(struct rc_redis_bridge **out, const struct rc_redis_bridge_cfg *cfg,
                         const struct rc_redis_bridge_cb *cb, struct rc_err *err) RC_MUST_CHECK;
int rc_redis_bridge_start(struct rc_redis_bridge *b, struct rc_err *err) RC_MUST_CHECK;
/* The Redis glob of a ringcast pattern: "rc:e:" + the pattern with '*'
 * and '>' tokens as '*' and glob specials escaped (Redis's '*' also matches
 * dots: the glob over-matches and the trie decides). Length or -ENOSPC. */
int rc_redis_pattern_glob(char *out, size_t cap, const char *pattern, size_t len);
#define RC_REDIS_GLOB_MAX (5 + 2 * 255 + 1)

/* Any thread: hand req over. */
void rc_redis_bridge_submit(struct rc_redis_bridge *b, struct rc_redis_req *req);
/* Whether every instance's command connection is up (any thread; a relaxed
 * atomic read, for /healthz); why gets "redis <host:port/db> is not connected"
 * for the first one that is not. */
bool rc_redis_bridge_up(struct rc_redis_bridge *b, char *why, size_t cap);
/* Stop the thread and wait for it; cb runs no more on it (requests still
 * queued are answered by rc_redis_bridge_stop, on the caller's thread). */
void rc_redis_bridge_halt(struct rc_redis_bridge *b);
/* Stop the thread (pending publishes get 503), free everything; the
 * variant copies the final counters first (out may be NULL). */
void rc_redis_bridge_stop(struct rc_redis_bridge *b);
void rc_redis_bridge_stop_counters(struct rc_redis_bridge *b, struct rc_redis_counters *out);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_REDIS_BRIDGE_H */
