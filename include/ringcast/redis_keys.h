/* redis_keys.h - what the Redis broker engine (broker = redis) stores in and
 * sends through Redis: endpoints, the consistent hash that places a topic on
 * one Redis instance, key and channel names, the publish script and the wire
 * form of a published event. Pure: no connection, no thread (the bridge that
 * drives hiredis uses these; tests run the script against a real Redis).
 *
 * Owner: none (functions over caller buffers); the script text is a constant.
 *
 * Layout per topic T (on instance rc_redis_instance_for(T)):
 *   rc:t:T   hash   epoch (base 36), seq (last offset), created with the first
 *                   publish; if it is lost (restart without persistence, flush,
 *                   expiry) the next publish makes a new epoch and deletes any
 *                   stale history, so an old cursor is a gap, never replayed wrong
 *   rc:h:T   stream one entry per retained event, id "0-<seq>", fields
 *                   e (epoch), t (type), d (data JSON), u (targeting JSON or
 *                   ""), at (publish time, ms)
 *   rc:k:T:K string  seq of an idempotency key K (expires after RC_REDIS_IDEM_TTL_S)
 *   rc:e:T   channel every event of T, as rc_redis_event (below)
 * Both keys expire key_ttl_ms after the topic's last publish (0 = never).
 *   rc:p:T, rc:c:T, rc:d:T, rc:u:T  presence (rc_redis_presence_script)
 *
 * Event message on rc:e:T:  "<epoch>\n<seq>\n<type>\n<targeting>\n<data JSON>"
 *   targeting is "" or a JSON object {"u":[users],"x":"excluded user"}.
 *
 * Invariants: seq is strictly increasing per epoch and contiguous (one per
 *   publish); the stream holds a contiguous suffix of it (MAXLEN trims the
 *   front only); Redis runs each script atomically, so PUBLISH order is seq
 *   order on every subscriber connection. */
#ifndef RINGCAST_REDIS_KEYS_H
#define RINGCAST_REDIS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/common.h"
#include "ringcast/history.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_REDIS_HOST_MAX 256
#define RC_REDIS_PASSWORD_MAX 256
#define RC_REDIS_INSTANCES_MAX 64
#define RC_REDIS_IDEM_TTL_S 300
#define RC_TOPIC_KEY_MAX (5 + 255 + 1) /* "rc:x:" + a topic (topic.h RC_TOPIC_MAX_LEN) */

/* One redis_url: redis://[:password@]host:port[/db] */
struct rc_redis_endpoint {
    char host[RC_REDIS_HOST_MAX];
    uint16_t port;
    unsigned db;
    char password[RC_REDIS_PASSWORD_MAX]; /* "" = none; never logged */
};

/* Parse url[0..n). 0, or -EINVAL with err (400 "bad_value") naming what is
 * wrong (never echoing the password). */
int rc_redis_url_parse(const char *url, size_t n, struct rc_redis_endpoint *out,
                       struct rc_err *err) RC_MUST_CHECK;

/* The endpoint as "host:port/db", for logs (no password). */
void rc_redis_endpoint_name(const struct rc_redis_endpoint *ep, char *out, size_t cap);

/* Jump consistent hash (Lamping and Veach, 2014): a bucket in [0, buckets)
 * for key; growing buckets from n to n+1 moves only ~1/(n+1) of the keys, all
 * of them to the new bucket. buckets >= 1. */
uint32_t rc_jump_hash(uint64_t key, uint32_t buckets);

/* The instance (0..n) that holds topic[0..len): jump hash of XXH3-64. */
uint32_t rc_redis_instance_for(const char *topic, size_t len, uint32_t n);

/* Key / channel names: "rc:<kind>:<topic>" into out (cap bytes). Returns the
 * length, or -ENOSPC. kind: 't' meta hash, 'h' history stream, 'e' channel. */
int rc_redis_key(char *out, size_t cap, char kind, const char *topic, size_t len);

/* The publish script (EVAL / EVALSHA). KEYS: rc:t:T, rc:h:T. ARGV: channel,
 * maxlen (0 = keep no history), type, data JSON, targeting ("" = none),
 * idempotency key ("" = none), key_ttl_ms (0 = never), now_ms.
 * Returns {epoch, seq, duplicate (0|1)}. */
extern const char rc_redis_publish_script[];
/* Presence (per topic T: rc:p:T sorted set of members "<user key>\x1f<node
 * id>" scored by their expiry on Redis's clock, rc:c:T member -> its
 * connections, rc:d:T member -> its joined/left event data, rc:u:T user key
 * -> its live members). KEYS: rc:t:T, rc:h:T, rc:p:T, rc:c:T, rc:d:T,
 * rc:u:T. ARGV: "set" | "del" | "sweep", member, user key, connections,
 * presence ttl ms, channel, maxlen, event data JSON, key_ttl_ms. */
extern const char rc_redis_presence_script[];
/* KEYS: rc:p:T, rc:c:T, rc:d:T. Returns {user key, connections, data, ...}
 * of the live members, sorted by user key. */
extern const char rc_redis_presence_list_script[];

/* A published event, parsed from its channel message (views into msg). */
struct rc_redis_event {
    char epoch[RC_EPOCH_MAX];
    uint64_t seq;
    struct rc_slice type;
    struct rc_slice targeting; /* n == 0: none */
    struct rc_slice data;
};

/* Parse a channel message. 0 or -EINVAL (malformed: count it, drop it). */
int rc_redis_event_parse(const char *msg, size_t n, struct rc_redis_event *ev) RC_MUST_CHECK;

/* A stream entry id "0-<seq>" -> seq; 0 when it is not one of ours. */
uint64_t rc_redis_entry_seq(const char *id, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_REDIS_KEYS_H */
