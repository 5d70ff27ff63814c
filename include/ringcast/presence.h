/* presence.h - who is subscribed to a topic (owner shard).
 *
 * Owner: one struct rc_presence per shard, for the topics that shard owns
 *   (xxh3(topic) % nshards); only that thread touches it. Other shards post
 *   their connections' joins and leaves to the owner, so presence stays exact
 *   when connections on several shards come and go at once.
 * Model: per topic, members are (user, connection) pairs, each counting the
 *   subscriptions that connection holds on the topic. A user is "here" while
 *   at least one of their connections is. An anonymous connection (user with
 *   p == NULL or n == 0) is a user of its own, keyed by its connection id.
 * Events: rc_presence_join reports the user's first connection on the topic
 *   (send presence.joined), rc_presence_leave the user's last one going
 *   (send presence.left); a second subscription of the same connection, or a
 *   second connection of the same user, reports nothing.
 * Bounds: at most max_members (user, connection) pairs per topic (-ENOSPC
 *   beyond), user ids up to RC_PRESENCE_USER_MAX bytes, topics up to
 *   RC_PRESENCE_TOPIC_MAX. A topic whose last member leaves is freed.
 * Lifetime: rc_presence_new / rc_presence_free; user id strings passed to a
 *   listing callback live until the next join or leave on that topic.
 * Hash tables: XXH3_64bits keys, open addressing with linear probing and
 *   backward-shift deletion (no tombstones), load factor <= 1/2. */
#ifndef RINGCAST_PRESENCE_H
#define RINGCAST_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_PRESENCE_USER_MAX 256
#define RC_PRESENCE_TOPIC_MAX 1024
#define RC_PRESENCE_MEMBERS_DEFAULT 10000u /* per topic, when max_members is 0 */

struct rc_presence;

/* One user in a listing. Anonymous: user.p NULL, conn its connection id. */
struct rc_presence_user {
    struct rc_slice user;
    uint64_t conn;        /* anonymous only; 0 for named users */
    uint32_t connections; /* distinct connections of this user on the topic */
};

/* Return 0 to continue, anything else to stop. */
typedef int (*rc_presence_fn)(void *ctx, const struct rc_presence_user *u);

/* max_members: (user, connection) pairs per topic; 0 = RC_PRESENCE_MEMBERS_DEFAULT.
 * NULL when out of memory. */
struct rc_presence *rc_presence_new(uint32_t max_members) RC_MUST_CHECK;
void rc_presence_free(struct rc_presence *p);

/* A subscription of connection conn (user, or anonymous) to topic. *joined is
 * set when this is the user's first connection on the topic. 0, -EINVAL (empty
 * or too long topic, too long user id), -ENOSPC (topic has max_members pairs
 * and this is a new one), -EOVERFLOW (2^32-1 subscriptions of one pair) or
 * -ENOMEM; on error nothing changed and *joined is false. */
int rc_presence_join(struct rc_presence *p, struct rc_slice topic, struct rc_slice user,
                     uint64_t conn, bool *joined) RC_MUST_CHECK;

/* One subscription of that pair ends (unsubscribe, or one call per
 * subscription on disconnect). *left is set when it was the user's last
 * connection on the topic. 0, or -ENOENT when the pair is not a member. */
int rc_presence_leave(struct rc_presence *p, struct rc_slice topic, struct rc_slice user,
                      uint64_t conn, bool *left);

/* Counts for topic (0/0 when nobody is there). */
void rc_presence_count(const struct rc_presence *p, struct rc_slice topic, size_t *users,
                       size_t *connections);

/* The connections of user (anonymous: the one connection conn) on topic. */
uint32_t rc_presence_user_connections(const struct rc_presence *p, struct rc_slice topic,
                                      struct rc_slice user, uint64_t conn);

/* Users of topic from position offset, at most limit of them, in a stable
 * order while nobody joins or leaves (a leave moves the last user into the
 * freed position, so paging across changes may skip or repeat one). Returns
 * how many were passed to cb; *next (may be NULL) gets the offset of the next
 * page, or 0 when this was the last one. */
size_t rc_presence_list(const struct rc_presence *p, struct rc_slice topic, size_t offset,
                        size_t limit, rc_presence_fn cb, void *ctx, size_t *next);

/* Topics with at least one member (for stats and tests). */
size_t rc_presence_topics(const struct rc_presence *p);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_PRESENCE_H */
