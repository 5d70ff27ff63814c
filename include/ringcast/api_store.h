/* api_store.h - the durable half of the API: seed 001's notification and
 * user subscription endpoints on top of the storage thread (store.h), live
 * delivery of stored notifications, and durable user subscriptions applied
 * to every live connection of their user (seed 004).
 *
 * Owners and threads:
 *   - the HTTP handlers (rows of the route table, src/api/api_router.h),
 *     _conn_authed and the post handlers run on a shard thread and touch
 *     only that shard's connections.
 *   - The store's reply function (installed by rc_api_store_open) runs on the
 *     storage thread (or on the main thread inside rc_api_store_stop); it
 *     only builds and posts inbox messages (struct rc_post, each with its own
 *     run and discard functions) to shards.
 *   - One expiry thread (started by rc_api_store_start) sleeps until the next
 *     durable subscription's expires_at and then posts its removal to every
 *     shard. The reply function and the expiry thread share one mutex (the
 *     expiry heap and the "closed" gate); no request path takes it.
 * Flow of a request: shard validates (rc_store_check, 400 naming the field),
 *   defers the HTTP answer and submits; the storage thread commits, then the
 *   reply function posts (1) the answer to the origin shard, and for a
 *   successful write (2) the side effects to every shard: a notification's
 *   evbuf (delivered to its recipients' WebSocket/SSE connections) or a user
 *   subscription change (subscribe/unsubscribe that user's connections).
 *   Both come from the storage thread, so each shard sees them in commit order.
 * Lifetimes: every post is freed by the shard that runs it, or by its
 *   discard function at shutdown.
 * Shutdown: rc_api_store_close() (after the drain starts, before
 *   rc_server_join) waits until no shard submits any more and every answer
 *   in flight has reached its shard, then stops all posting to shards;
 *   rc_api_store_stop() after the join stops both threads. */
#ifndef RINGCAST_API_STORE_H
#define RINGCAST_API_STORE_H

#include <stdbool.h>

#include "ringcast/common.h"
#include "ringcast/config.h"
#include "ringcast/session.h"
#include "ringcast/evbuf.h"
#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;
struct rc_server;
struct rc_store;
struct rc_conn;

/* Main thread, before the shards start: open the store of cfg (data_dir,
 * store_synchronous, store_max_batch, store_purge_interval) with srv as the
 * destination of its answers. 0 or -errno with err (a bad data_dir). */
RC_MUST_CHECK int rc_api_store_open(struct rc_store **out, const struct rc_config *cfg,
                                    struct rc_server *srv, struct rc_err *err);
/* --check-config: with store=postgres, connect to postgres_url and check the
 * schema version (nothing is changed). 0, or -errno with err saying what is
 * wrong. With store=sqlite: 0 (data_dir is checked at start). */
RC_MUST_CHECK int rc_api_store_check(const struct rc_config *cfg, struct rc_err *err);
/* Main thread, after the shards started: start the storage and expiry
 * threads. 0 or -errno with err. */
RC_MUST_CHECK int rc_api_store_start(struct rc_store *st, struct rc_err *err);
/* broker = redis (after rc_broker_cluster_open, before it starts): durable
 * subscription changes made on any node reach the user's connections on this
 * one. 0 or -errno with err. */
RC_MUST_CHECK int rc_api_store_cluster(struct rc_server *srv, struct rc_err *err);
/* Main thread, after rc_server_drain and before rc_server_join: wait (at
 * most 5 s) until every shard is draining (a draining shard answers store
 * requests 503 instead of submitting them) and every request submitted
 * before has been answered to its shard, then stop posting to shards: no
 * post reaches a shard after this. st NULL (or not started): just stop. */
void rc_api_store_close(struct rc_store *st);
/* Main thread, after rc_server_join: stop the threads, free the store. NULL ok. */
void rc_api_store_stop(struct rc_store *st);

/* How long a connection's greeting (WebSocket connected/authenticated, SSE
 * connection record) waits for its user's durable subscriptions; past it the
 * greeting goes out anyway (counted durable_load_timeouts, logged) and the
 * subscriptions are applied when they arrive. */
#define RC_API_STORE_GREET_WAIT_MS 2000u

/* Sends the connection's greeting; called at most once per load. */
typedef rc_session_ready_fn rc_api_store_ready_fn;

/* Shard thread: c (WebSocket or SSE) has just authenticated: load its user's
 * active durable subscriptions (each checked against the topic rules with c's
 * identity; refused ones are not applied, an error record says why) and apply
 * them to c. true: a load is under way, and ready(c) runs on c's shard once
 * every page is in, right before they are applied in the same loop turn, so an
 * event published after the client saw its greeting reaches them (also when the
 * load fails: ready, then an error record); the caller sends its greeting from
 * ready (and at most RC_API_STORE_GREET_WAIT_MS later on its own). false:
 * nothing to wait for (no store, draining, out of memory): greet now. */
bool rc_api_store_conn_authed(struct rc_conn *c, rc_api_store_ready_fn ready);

/* Shard thread: c's greeting waited RC_API_STORE_GREET_WAIT_MS and goes out
 * without its durable subscriptions: count it (durable_load_timeouts) and log
 * it (durable_load_slow, at most once per 10 s per shard, with a count). */
void rc_api_store_greet_late(struct rc_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_API_STORE_H */
