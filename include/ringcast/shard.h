/* shard.h - one shard: a pinned thread with its own io_uring ring, listener,
 * connections, timers, subscriptions and topic ownership.
 *
 * rc_shard_main() owns, for its whole life: the ring (SINGLE_ISSUER |
 *   DEFER_TASKRUN), the provided-buffer ring, its SO_REUSEPORT listener, every
 *   connection it accepted, the timer wheel, its conn/sub pools, its half of
 *   the broker (topics whose xxh3 % nshards is this shard, and the trie of its
 *   own connections' subscriptions), and its counters.
 * It drains `inbox` (any thread posts there with rc_shard_post) and posts to
 *   other shards' inboxes. Nothing else is shared: struct rc_server is
 *   immutable after start, evbufs are frozen before they are posted.
 * Every SQE is prepared here, one rc_ring_prep_<op>() per op type, which also
 *   packs user_data.
 * Layering: the loop knows no protocol and no broker. It calls a connection's
 *   session through c->ops (conn.h) and the broker's per-shard half through
 *   srv->shard_hooks (below), both registered by main (server.h). */
#ifndef RINGCAST_SHARD_H
#define RINGCAST_SHARD_H

#include <liburing.h>
#include <pthread.h>

#include "ringcast/common.h"
#include "ringcast/config.h"
#include "ringcast/conn.h"
#include "ringcast/evbuf.h"
#include "ringcast/histo.h"
#include "ringcast/limits.h"
#include "ringcast/log.h"
#include "ringcast/mpsc.h"
#include "ringcast/pool.h"
#include "ringcast/server.h"
#include "ringcast/timer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;
struct rc_broker;
struct rc_iptable;

/* What the shard loop runs for the layers above it (the broker), registered
 * by main in rc_server.shard_hooks before the shards start; immutable after.
 * Every member runs on the shard's own thread.
 *   init:         once, after the ring is set up; 0 or -errno (start fails)
 *   fini:         once, at teardown, after every connection is closed
 *   tick:         every loop turn (bounded work: sweeps)
 * Any member may be NULL (nothing to do). Inbox messages need no hook: each
 * post carries its own run and discard functions (evbuf.h). */
struct rc_shard_hooks {
    int (*init)(struct rc_shard *s);
    void (*fini)(struct rc_shard *s);
    void (*tick)(struct rc_shard *s);
    /* When tick next has work (ms, rc_now_ms clock; UINT64_MAX = nothing until an event);
     * NULL = every loop turn (at most RC_TIMER_TICK_MS apart). */
    uint64_t (*next_tick_ms)(const struct rc_shard *s);
};

/* Per-shard counters; owned by the shard, copied out on a stats request. */
struct rc_counters {
    uint64_t accepted;
    uint64_t closed;
    uint64_t refused_max_conns;
    uint64_t refused_per_ip;
    uint64_t http_requests;
    uint64_t http_errors;
    uint64_t ws_upgrades;
    uint64_t sse_streams;
    uint64_t published;  /* events this shard assigned ids to (owner) */
    uint64_t deliveries; /* events queued to connections */
    uint64_t drops;      /* deliveries refused (conn closing) */
    uint64_t slow_consumer_disconnects;
    uint64_t heartbeat_timeouts;
    uint64_t handshake_timeouts;
    uint64_t request_timeouts;
    uint64_t recv_enobufs;
    uint64_t http_read_pauses; /* HTTP connections that stopped being read (answers owed) */
    uint64_t sends;
    uint64_t send_iovecs;
    uint64_t wakeups;
    uint64_t loop_turns; /* sleeps on the ring (an idle shard: about one per timer due) */
    uint64_t auth_failures;
    uint64_t auth_timeouts;
    uint64_t token_expiries;
    uint64_t forbidden;
    uint64_t rate_limited;
    uint64_t rate_limit_disconnects;
    uint64_t refused_handshake_rate;
    uint64_t refused_origin;             /* requests from an Origin not in allowed_origins */
    uint64_t durable_refused;            /* durable subscriptions the rules refuse on a conn */
    uint64_t durable_load_timeouts;      /* greeted before the durable subscriptions loaded */
    uint64_t user_subscription_refusals; /* creates past max_user_subscriptions (409) */
    uint64_t accept_fd_exhausted;        /* accepts failed for want of fds/memory (then paused) */
    uint64_t forwarded_loopback;         /* trusted loopback requests carrying X-Forwarded-For */
    uint64_t topics_evicted;  /* owned topics freed by the idle sweep (topic_idle_timeout) */
    uint64_t rearms_deferred; /* accept/recv/wake re-arms retried a loop turn later (SQ full) */
    uint64_t proxy_refused;   /* proxy_protocol: connections without a valid PROXY header */
    uint64_t store_submitted; /* requests this shard queued to the store ... */
    uint64_t store_answered;  /* ... and whose answers came back: the difference is queued */

    /* max_connections_per_user (session/conn_limit.c) */
    uint64_t conn_limit_refused; /* connections closed: past the limit */
    uint64_t conn_limit_oldest;  /* oldest connections closed for a new one (policy oldest) */
};

/* Histograms for /metrics (histo.h); written by the shard thread only,
 * copied out by the stats gather like the counters. */
struct rc_shard_histos {
    struct rc_histo publish_send_ns; /* an event's owner accepted it -> its send submitted here */
    struct rc_histo turn_ns;         /* one loop turn: wake-up to the next submit */
    struct rc_histo send_iovecs;     /* iovecs per completed send (sendmsg) */
};

/* Events whose first delivery this turn waits for the turn's submit to be
 * measured; more in one turn are measured when the array fills up. */
#define RC_SHARD_LAT_PENDING 64

/* User data: | op:8 | gen:24 | slot:32 |; gen drops CQEs meant for a reused slot. */
enum rc_op {
    RC_OP_NONE = 0,
    RC_OP_ACCEPT,
    RC_OP_RECV,
    RC_OP_SEND,
    RC_OP_CLOSE,
    RC_OP_WAKE,
    RC_OP_CANCEL,
};

static inline uint64_t rc_ud_pack(enum rc_op op, uint32_t gen, uint32_t slot)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}
static inline enum rc_op rc_ud_op(uint64_t ud)
{
    return (enum rc_op)(ud >> 56);
}
static inline uint32_t rc_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & 0xffffff;
}
static inline uint32_t rc_ud_slot(uint64_t ud)
{
    return (uint32_t)ud;
}

struct rc_shard {
    unsigned id;
    struct rc_server *srv;
    const struct rc_config *cfg;
    pthread_t thread;
    int listen_fd;
    int wake_fd;
    uint64_t wake_buf;
    struct io_uring ring;
    bool ring_ready;
    struct rc_mpsc inbox;
    /* provided buffers for multishot recv */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    uint32_t nbufs;
    uint32_t buf_size;
    uint32_t br_pending; /* buffers given back since the last advance */
    /* connections */
    struct rc_conn **slots;
    uint32_t *gens;
    uint32_t *free_slots;
    uint32_t nslots, nfree, slots_cap;
    uint32_t nconns;
    struct rc_conn *all; /* list of live connections */
    struct rc_conn *dirty;
    struct rc_pool conn_pool;
    struct rc_timer_wheel timers;
    uint64_t now_ms;
    bool accepting;
    bool accept_armed;
    /* accept paused after EMFILE/ENFILE/ENOBUFS/ENOMEM until accept_resume_ms;
     * accept_backoff_ms grows 10 ms -> 1 s and resets on a successful accept */
    bool accept_paused;
    uint32_t accept_backoff_ms;
    uint64_t accept_resume_ms;
    uint64_t accept_log_ms;        /* no accept_paused log line before this */
    uint64_t accept_fail_unlogged; /* failures since the last log line */
    /* an accept or wake-up read that found the SQ ring full: armed next turn */
    bool accept_rearm;
    bool wake_rearm;
    /* metrics_address (shard 0 only): its multishot accept, re-armed in the loop */
    bool metrics_armed;
    bool metrics_rearm;
    uint64_t rearm_log_ms;         /* no rearm_deferred log line before this */
    bool forwarded_warned;         /* the X-Forwarded-For warning was logged */
    struct rc_log_limit proxy_log; /* proxy_refused lines (shard_proxy.c) */
    bool draining;
    bool drained;              /* reported to the main thread */
    bool drain_posted;         /* main thread only */
    struct rc_post drain_post; /* preallocated: drain/stop never fail to post */
    struct rc_post stop_post;
    bool stop; /* main thread said stop (stop_post) */
    uint64_t drain_deadline_ms;
    /* drain_spread: the k-th of drain_streams long-lived (WebSocket, SSE)
     * connections is told to go at drain_start_ms + k * drain_spread_ms /
     * drain_streams; drain_told of them were told so far */
    uint64_t drain_start_ms;
    uint64_t drain_spread_ms;
    uint32_t drain_streams;
    uint32_t drain_told;
    /* while the spread runs the listener stays open, so health checks get
     * /healthz 503 and new streams a 503 draining, rather than a refused
     * connect; closed once every stream was told (or there were none) */
    bool drain_listening;
    struct rc_counters ctr;
    struct rc_shard_histos hist;
    uint64_t turn_start_ns;                     /* monotonic: this loop turn woke up */
    uint64_t lat_pending[RC_SHARD_LAT_PENDING]; /* accepted_ns of events queued this turn */
    uint32_t nlat_pending;
    struct rc_broker *broker;
    /* per-IP connection counts and handshake rates, shard-local */
    struct rc_iptable *ip_conns;
    struct rc_iptable *ip_handshakes;
    uint64_t next_sweep_ms;
    /* the users whose home is this shard (conn_limit.c), owned by this shard */
    struct rc_conn_limit *conn_limit;
    bool conn_limit_gone; /* torn down: no more entries */
    struct rc_log_limit conn_limit_log;
    int startup_error;
    char startup_msg[256];
};

/* Shard thread entry (see the comment at its definition in shard.c). */
void *rc_shard_main(void *arg);
/* The run functions of drain_post and stop_post (main thread -> shard). */
void rc_shard_run_drain(struct rc_shard *s, struct rc_post *p);
void rc_shard_run_stop(struct rc_shard *s, struct rc_post *p);

/* Any thread: post a message into shard's inbox. */
void rc_shard_post(struct rc_shard *s, struct rc_post *p);

/* Shard thread: the live connection with this id, or NULL. */
struct rc_conn *rc_shard_conn(struct rc_shard *s, uint64_t id);
/* Shard thread: get a conn's flush going (called by rc_conn_mark_dirty). */
void rc_shard_flush(struct rc_shard *s);
/* Shard thread: (re)arm a connection's deadline. */
void rc_shard_arm_timer(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms);
/* Backpressure: stop reading c (its multishot recv is cancelled; bytes the
 * kernel already delivered still arrive through c->ops->on_data), and read
 * again. Both are idempotent. A connection that leaves RC_CONN_OPEN reads
 * again by itself (a lingering close must see the peer's FIN). */
void rc_shard_recv_pause(struct rc_shard *s, struct rc_conn *c);
void rc_shard_recv_resume(struct rc_shard *s, struct rc_conn *c);
/* Shard thread, metrics (shard_metrics.c). rc_shard_note_event: an event
 * its owner accepted at accepted_ns (rc_now_ns) was queued to at least one
 * connection here; its publish-to-send latency is taken when this turn's
 * sends are submitted. rc_shard_turn_start / _end: the loop woke up / is
 * about to submit and sleep (records the turn's duration and the noted
 * latencies: two clock reads per turn, none per delivery). */
void rc_shard_note_event(struct rc_shard *s, uint64_t accepted_ns);
void rc_shard_turn_start(struct rc_shard *s);
void rc_shard_turn_end(struct rc_shard *s);

/* Shard thread: after a conn was closed, release it when nothing is in flight. */
void rc_shard_conn_closed(struct rc_shard *s, struct rc_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_SHARD_H */
