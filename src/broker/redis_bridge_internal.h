/* redis_bridge_internal.h - private to the Redis bridge's files: the bridge
 * and its per-instance state.
 *   redis_bridge.c  the thread, publishes, channel and pattern subscriptions,
 *                   ordered de-duplicated delivery and gap closing
 *   redis_read.c    history reads: gap closing, RC_REDIS_READ (resume,
 *                   history, initial)
 *   redis_presence.c this node's presence members, their refresh, listings
 * Owner: everything here belongs to the bridge thread once
 *   rc_redis_bridge_start has run, but `stop` and `down` (atomics). */
#ifndef RINGCAST_REDIS_BRIDGE_INTERNAL_H
#define RINGCAST_REDIS_BRIDGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringcast/redis_bridge.h"
#include "ringcast/redis_conn.h"
#include "ringcast/redis_topics.h"

#define SUBSCRIBE_BATCH 256 /* channels per SUBSCRIBE after a reconnect */

struct instance {
    struct rc_redis_bridge *b;
    uint32_t index;
    struct rc_redis_conn cmd, sub;
    struct rc_redis_topics topics;   /* channels (exact topics) and delivered offsets */
    struct rc_redis_topics patterns; /* PSUBSCRIBEd globs (refs only) */
    struct rc_redis_req *parked;     /* reads waiting for their channel's SUBSCRIBE to be
                                        confirmed (linked through node.next) */
    bool resubscribe;                /* the subscriber connection came (back) up */
    bool script_loaded;
};

/* This node's presence members (redis_presence.c): open addressing on
 * xxh3(topic, user key), linear probing, backward-shift deletion. */
struct pmember;
struct rdb_presence {
    struct pmember **slots;
    size_t cap, n;
    uint64_t next_refresh_ms;
};

struct rc_redis_bridge {
    struct rc_redis_bridge_cfg cfg;
    struct rc_redis_endpoint *ep;
    struct rc_redis_bridge_cb cb;
    struct instance *inst;
    struct rc_mpsc q;
    int efd;
    pthread_t thread;
    bool started;
    atomic_int stop;                       /* main -> bridge: leave the loop */
    atomic_int down;                       /* bridge -> anyone: 1 + the first instance whose command
                                              connection is not ready, 0 = all ready (relaxed: a
                                              hint for /healthz and the logs, orders nothing) */
    char sha[41];                          /* of rc_redis_publish_script */
    char (*names)[RC_REDIS_HOST_MAX + 16]; /* "host:port/db" per instance, immutable */
    struct rc_redis_topics pattern_map;    /* the node's patterns (refs; coarse: received
                                              through the catch-all glob) */
    struct rc_redis_counters ctr;
    _Atomic uint64_t live[RC_REDIS_NCOUNTERS]; /* ctr, published once per loop turn (relaxed) */
    struct rdb_presence presence;
};

struct redisReply;
/* A stream entry's field (fields: its array of names and values), or NULL. */
const struct redisReply *rdb_field(const struct redisReply *fields, const char *name);
/* One stream entry as an event (views into the reply). false if malformed. */
bool rdb_entry_event(const struct redisReply *entry, struct rc_redis_event *ev);

/* Hand an event to cb.event and record it as delivered (redis_bridge.c). */
void rdb_deliver(struct instance *in, struct rc_redis_topic *e, const char *topic, size_t len,
                 const struct rc_redis_event *ev);
/* redis_read.c: read topic's history after `after` and deliver what was
 * missed, then msg (the message that showed the gap, or NULL); false when
 * the read could not be sent (the caller delivers msg itself). */
bool rdb_catchup_start(struct instance *in, const char *topic, size_t len, uint64_t after,
                       const char *msg, size_t msg_len);
/* redis_read.c: run a read (its channel confirmed, or none needed); the
 * answer goes to cb.done. */
void rdb_read_send(struct instance *in, struct rc_redis_req *req);
/* A read arrived: send it, or park it until its channel is confirmed. */
void rdb_read(struct instance *in, struct rc_redis_req *req);
/* The channel of topic is confirmed: send the reads parked for it. */
void rdb_read_unpark(struct instance *in, const char *topic, size_t len);
/* redis_presence.c: a member's change (takes req); the refresh, due at
 * rdb_presence_wake; a listing (answered through cb.done); the table's end. */
void rdb_presence(struct rc_redis_bridge *b, struct rc_redis_req *req);
void rdb_presence_tick(struct rc_redis_bridge *b, uint64_t now);
uint64_t rdb_presence_wake(const struct rc_redis_bridge *b);
void rdb_presence_list(struct instance *in, struct rc_redis_req *req);
void rdb_presence_free(struct rc_redis_bridge *b);
/* Answer req (a publish or a read): cb.done. */
void rdb_answer(struct rc_redis_bridge *b, struct rc_redis_req *req, int status, const char *code,
                const char *why);

#endif
