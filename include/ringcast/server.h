/* server.h - the process-wide server: the listeners, the shard threads, and
 * what main registers for the layers above the loop.
 *
 * Owner: the main thread builds it (rc_server_init), registers the tables
 *   (conn_ops, shard_hooks), the auth and the store, then starts the shards
 *   (rc_server_start). From then on it is immutable and shared read-only by
 *   every shard, but for the connection budget (atomic, limits.h).
 * The loop calls up only through the registered tables: conn_ops are the
 *   events of a freshly accepted connection (the HTTP session's, conn.h);
 *   shard_hooks run the broker's per-shard part (shard.h).
 * Lifetime: rc_server_join joins every shard and frees what they owned. */
#ifndef RINGCAST_SERVER_H
#define RINGCAST_SERVER_H

#include "ringcast/common.h"
#include "ringcast/config.h"
#include "ringcast/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_MAX_SHARDS 256

struct rc_shard;
struct rc_auth;
struct rc_store;
struct rc_conn_ops;
struct rc_shard_hooks;
struct rc_broker_cluster;
struct rc_webhook;

/* Process-wide, immutable once the shards start (but for the connection budget). */
struct rc_server {
    const struct rc_config *cfg;
    unsigned nshards;
    struct rc_shard **shards;
    uint64_t epoch_ms;          /* start time; part of event ids */
    char epoch_str[16];         /* base-36 epoch */
    uint64_t start_mono_ms;     /* for uptime */
    bool api_open;              /* no api_keys: the HTTP API accepts loopback clients only */
    const struct rc_auth *auth; /* identity, API keys, topic rules (immutable, shared) */
    struct rc_store *store;     /* durable notifications and user subscriptions (store.h);
                                   shards only rc_store_submit() to it */
    const struct rc_conn_ops *conn_ops;       /* installed on every accepted connection */
    const struct rc_shard_hooks *shard_hooks; /* the broker's per-shard part (shard.h) */
    struct rc_broker_cluster *cluster;        /* broker = redis: the node's bridge (broker.h);
                                                 shards only submit to it */
    struct rc_webhook *webhook;               /* lifecycle webhooks (webhook.h); NULL = off;
                                                 shards only rc_webhook_emit to it */
    /* the one mutable member: max_connections across every shard (limits.h) */
    struct rc_connbudget conns;
    int metrics_fd; /* metrics_address's listener, accepted on shard 0; -1 = none */
};

/* Main thread, before start: allocate shards and create the listeners
 * (SO_REUSEPORT, one per shard, same port; port 0 picks one for all).
 * 0 or -errno with err naming the failing step. */
int rc_server_init(struct rc_server *srv, const struct rc_config *cfg,
                   struct rc_err *err) RC_MUST_CHECK;
/* The port actually bound. */
uint16_t rc_server_port(const struct rc_server *srv);
/* The port metrics_address bound (0 = no such listener). */
uint16_t rc_server_metrics_port(const struct rc_server *srv);
/* Start every shard thread; waits until each has set up its ring (or failed:
 * then err names the missing kernel feature). */
int rc_server_start(struct rc_server *srv, struct rc_err *err) RC_MUST_CHECK;
/* Ask every shard to drain (SIGTERM). */
void rc_server_drain(struct rc_server *srv);
/* Wait until every running shard has drained its connections (after
 * rc_server_drain); they still serve their inboxes. */
void rc_server_wait_drained(struct rc_server *srv);
/* Join the shards and free everything. */
void rc_server_join(struct rc_server *srv);
/* Shard threads tell the main thread (server.c) that their ring is ready or
 * failed, and that their connections are drained. */
void rc_server_report_started(void);
void rc_server_report_drained(void);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_SERVER_H */
