/* conn_limit.h - max_connections_per_user: exact across the shards of a node,
 * without locks (src/session/conn_limit.c).
 *
 * Each user has a home shard (xxh3(user) % nshards) that alone owns the
 * user's entry: the ids of its admitted connections, in admission order. A
 * connection that gets an identity posts "acquire" to the home shard; on
 * refusal the home shard posts the refusal back and the connection is closed
 * with RC_CONN_LIMIT_CLOSE; with policy oldest it posts a close to the shard
 * of the user's oldest connection instead. Every connection that posted an
 * acquire posts "release" when it is released (the inbox is FIFO per
 * producer, so a release never overtakes its acquire). All functions run on
 * the calling connection's (or the given) shard thread. */
#ifndef RINGCAST_CONN_LIMIT_H
#define RINGCAST_CONN_LIMIT_H

#include "ringcast/conn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;

#define RC_CONN_LIMIT_CLOSE 4008 /* WebSocket close code (and SSE disconnect code) */

/* c->user_id was just set: with the limit on, ask the home shard (once per connection). */
void rc_conn_limit_identity(struct rc_conn *c);
/* c is being released: give its place back if it asked for one. */
void rc_conn_limit_release(struct rc_conn *c);
/* Shard teardown: free this shard's user table. */
void rc_conn_limit_fini(struct rc_shard *s);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CONN_LIMIT_H */
