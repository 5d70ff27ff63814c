/* limits.h - abuse limits: a token bucket (messages per second per connection) and a
 * per-shard table of counters keyed by client address (connections per IP, handshakes
 * per second per IP).
 *
 * Owner: the shard that owns the connection (a bucket lives inside its rc_conn) or the
 *   shard that accepts (one rc_iptable per use per shard). Nothing here is shared
 *   between threads and nothing locks. Limits are per shard: with N shards a client
 *   may hold up to N times a per-IP limit in the worst case; the kernel's SO_REUSEPORT
 *   hashing spreads one address's connections, so the lead divides or accepts that.
 * Invariants: a bucket never holds more than burst tokens; time going backwards never
 *   adds tokens. An rc_iptable never holds more than its bound of entries; an entry
 *   whose count reaches zero is removed at once (a release, or a sweep of a finished
 *   rate window), so the table's size is the number of addresses currently counted.
 * Lifetimes: buckets are plain values (embed them). A table is rc_iptable_new/_free;
 *   it owns one array allocated at creation and never allocates afterwards.
 * Exception: the connection budget (rc_connbudget) is the one process-wide limit. It
 *   lives in struct rc_server and every shard takes from it on accept and gives back on
 *   close, so max_connections is exact whatever the number of shards. Its one atomic
 *   counter states its memory order below (docs/ARCHITECTURE.md "Limits" says why).
 */
#ifndef RINGCAST_LIMITS_H
#define RINGCAST_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token bucket ---------------------------------------------------------------- */

/* rate tokens per second refill, at most burst held. Integer arithmetic in thousandths of
 * a token per millisecond, so a rate of 50/s refills exactly one token every 20 ms. */
struct rc_bucket {
    uint32_t rate;  /* tokens per second; 0 = unlimited (take always succeeds) */
    uint32_t burst; /* capacity in tokens (>= 1 when rate > 0) */
    uint64_t milli; /* tokens held, in thousandths */
    int64_t last_ms;
};

/* A full bucket (burst tokens) at time now_ms. A burst of 0 with a rate > 0 is taken as 1. */
void rc_bucket_init(struct rc_bucket *b, uint32_t rate, uint32_t burst, int64_t now_ms);

/* Refill for the time since the last call, then take n tokens if the bucket holds them.
 * True when taken; false (nothing taken) when limited. A now_ms earlier than an earlier
 * call adds nothing and does not move the bucket's clock back. Taking 0 always succeeds. */
bool rc_bucket_take(struct rc_bucket *b, int64_t now_ms, uint32_t n);

/* Whole tokens held at now_ms (after refill); for stats and tests. */
uint32_t rc_bucket_tokens(struct rc_bucket *b, int64_t now_ms);

/* ---- process-wide connection budget ------------------------------------------------ */

/* At most max connections open at once across every shard. Any thread may take and put.
 * Its own cache line: the shards write it once per accept and once per close. */
struct rc_connbudget {
    _Alignas(64) atomic_uint used;
    uint32_t max;
};

void rc_connbudget_init(struct rc_connbudget *b, uint32_t max);
/* Take one connection: true when used < max (then used grows by one), false when the
 * budget is spent (nothing changes). Never lets used exceed max, even when shards race. */
RC_MUST_CHECK bool rc_connbudget_take(struct rc_connbudget *b);
/* Give back one connection taken with rc_connbudget_take. */
void rc_connbudget_put(struct rc_connbudget *b);
/* Connections currently taken (a snapshot; for stats and tests). */
uint32_t rc_connbudget_used(struct rc_connbudget *b);

/* ---- per-address counters ------------------------------------------------------- */

/* A client address as a table key: 16 bytes. IPv4 (and IPv4-mapped IPv6) addresses are
 * stored as ::ffff:a.b.c.d so both spellings count together. IPv6 addresses are keyed by
 * their /64 prefix (the rest zeroed): one subscriber usually holds a whole /64, so a per-/128
 * limit would not limit anybody. */
struct rc_ipkey {
    uint8_t b[16];
};

/* Fill k from a socket address (AF_INET or AF_INET6). 0, or -EAFNOSUPPORT for another
 * family (e.g. AF_UNIX: the caller skips per-IP limits for it). */
RC_MUST_CHECK int rc_ipkey_from_sockaddr(const struct sockaddr *sa, struct rc_ipkey *k);

/* Printable form for logs ("192.0.2.7", "2001:db8:1:2::/64"), NUL-terminated in buf. */
void rc_ipkey_format(const struct rc_ipkey *k, char *buf, size_t cap);

struct rc_iptable;

#define RC_IPTABLE_MAX_BOUND (1u << 24) /* entries; rc_iptable_new refuses more */

/* A table holding at most bound addresses (1..RC_IPTABLE_MAX_BOUND); its hash is keyed with
 * a random seed so that clients cannot choose colliding addresses. NULL on ENOMEM or a bad
 * bound (err says which). Use one table for one purpose: either acquire/release (open
 * connections) or rate_hit/rate_sweep (events per second), never both. */
struct rc_iptable *rc_iptable_new(uint32_t bound, struct rc_err *err);
void rc_iptable_free(struct rc_iptable *t);

/* Concurrent use (connections per IP). Count one more for k unless that would exceed
 * limit (0 = unlimited). 0 when counted; -EBUSY when k already holds limit (nothing
 * changes); -ENOSPC when k is new and the table already holds bound addresses. */
RC_MUST_CHECK int rc_iptable_acquire(struct rc_iptable *t, const struct rc_ipkey *k,
                                     uint32_t limit);

/* Count one less for k; the entry is removed when it reaches zero. Releasing an address
 * that is not counted does nothing and returns false (a bug in the caller; log it). */
bool rc_iptable_release(struct rc_iptable *t, const struct rc_ipkey *k);

/* Rate use (handshakes per second per IP): fixed one-second windows starting at each
 * address's first hit. Count a hit for k at now_ms unless k already has limit hits in its
 * current window (0 = unlimited: nothing is counted, 0 returned). 0, -EBUSY (limited) or
 * -ENOSPC (k is new and the table is full). A hit in a later window starts a new one. */
RC_MUST_CHECK int rc_iptable_rate_hit(struct rc_iptable *t, const struct rc_ipkey *k,
                                      int64_t now_ms, uint32_t limit);

/* Remove every entry whose window ended at or before now_ms (their count is zero from
 * then on). Call about once a second from the shard's timer; O(capacity). Returns the
 * number removed. */
size_t rc_iptable_rate_sweep(struct rc_iptable *t, int64_t now_ms);

/* k's current count (0 when absent; in rate use, hits in the window as last counted). */
uint32_t rc_iptable_count(const struct rc_iptable *t, const struct rc_ipkey *k);

/* Addresses currently held. */
size_t rc_iptable_size(const struct rc_iptable *t);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_LIMITS_H */
