/* broker.h - topics, subscriptions and fan-out, the shard-local half of the
 * in-process pub/sub engine.
 *
 * Owner: each shard has one broker (s->broker), used only by that shard's
 *   thread. It holds (1) the trie of this shard's connections' subscriptions
 *   and (2) the state of the topics this shard owns (xxh3(topic) % nshards):
 *   their sequence numbers and recent idempotency keys. An owned topic that
 *   nothing holds (exact-topic subscription, claimed slot, presence member,
 *   kept history) and that saw no publish for topic_idle_timeout is freed by
 *   a bounded periodic sweep (rc_broker_tick); a later use starts a new
 *   incarnation whose event ids carry a new epoch, so an old cursor is a gap.
 * A publish travels: origin shard -> (a publish post) -> owner shard, which
 *   assigns the event id, encodes an evbuf once and posts it to every shard
 *   (the evbuf's own posts, per-topic order = the owner's posting order, each
 *   inbox being FIFO per producer) -> each shard matches its trie and queues
 *   iovecs. The same publish post goes back to the origin once the event is
 *   accepted, which answers the client's ticket (ticket.h).
 * Every post carries its own run and discard functions (evbuf.h), set where
 *   it is created, so the shard loop dispatches none of them by kind.
 * Requests that need every shard (stats, broadcasts) are gathered: the origin
 *   posts a job to each shard; each fills its part and posts it back; the
 *   origin answers when all parts are in. Ownership of a job moves with it.
 * Subscriptions: struct rc_sub comes from the shard's pool; it is referenced
 *   by its connection and by queued output segments (its pre-encoded suffix),
 *   with a shard-local (non-atomic) count.
 * Engines: what needs the topic's order point (publish, history, presence,
 *   max_subscribers and hold claims) goes through the shard's engine table
 *   (struct rc_broker_engine_ops, chosen at rc_broker_init); the memory engine
 *   (topic owner shards of this process) is today's only one. Matching and
 *   delivery on a shard are the engine's callers, not part of it.
 * Answers: every entry point that answers later takes a ticket (ticket.h)
 *   and answers through rc_conn_answer (answer.h); the broker formats no HTTP,
 *   WebSocket or SSE. */
#ifndef RINGCAST_BROKER_H
#define RINGCAST_BROKER_H

#include <jansson.h>

#include "ringcast/common.h"
#include "ringcast/conn.h"
#include "ringcast/evbuf.h"
#include "ringcast/history.h"
#include "ringcast/ticket.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;
struct rc_trie_sub;
struct rc_broker;
struct rc_server;

struct rc_sub {
    struct rc_conn *conn; /* NULL once the connection is gone */
    struct rc_sub *next_in_conn;
    struct rc_trie_sub *handle; /* NULL once unsubscribed */
    struct rc_broker *broker;   /* whose pool it came from */
    struct rc_segref ref;       /* the connection's, plus one per queued suffix (conn.h) */
    uint16_t pattern_len;
    char id[RC_SUB_ID_LEN + 1];
    uint8_t ws_suffix[RC_WS_SUFFIX_LEN + 1]; /* + 0x00: completes a compressed image (evbuf.h) */
    uint8_t sse_suffix[RC_SSE_SUFFIX_LEN];
    char *pattern;
    char *filter_text;        /* canonical filter, NULL = none */
    struct rc_resume *resume; /* while replaying history / initial state */
    struct rc_ticket *ticket; /* the subscribe request's ticket (its WebSocket id),
                                 while a resume or the owner's admission may still
                                 answer it; NULL = rc_ticket_stream */
    bool resume_done;         /* caught up: free resume after the current call */
    bool presence;            /* counted in the topic's presence at its owner */
    bool claim_pending;       /* max_subscribers: waiting for the owner's yes */
    bool claimed;             /* max_subscribers: holds a slot at the owner */
    bool channel_pending;     /* broker = redis: this node's SUBSCRIBE of the topic's channel
                                 is not confirmed yet (events published before are not seen) */
    bool held;                /* an exact topic: counted in the owner's holds */
    uint8_t stream_slot;      /* SSE stream id: 1 + the topic's index in the stream, 0 = none */
    char *pending_reply;      /* "subscribed" data (JSON text) held until the owner admits */
    char presence_user[129];  /* the user id the presence join used */
    char durable_id[64];      /* a durable user subscription (store.h, RC_STORE_ID_MAX)
                                 applied to this connection; "" = a client's own */
};

int rc_broker_init(struct rc_shard *s) RC_MUST_CHECK;
void rc_broker_fini(struct rc_shard *s);
/* Deliver a topic event to this shard's matching subscriptions; returns how
 * many deliveries were queued. The caller keeps its reference to ev. */
size_t rc_broker_deliver(struct rc_shard *s, struct rc_evbuf *ev);
/* Once per loop turn: the idle-topic sweep (topic_idle_timeout), which runs
 * at most every RC_TOPIC_SWEEP_MS and looks at RC_TOPIC_SWEEP_SLOTS table
 * slots, freeing at most RC_TOPIC_SWEEP_FREES topics, so it never stalls. */
#define RC_TOPIC_SWEEP_MS 50u
#define RC_TOPIC_SWEEP_SLOTS 1024u
#define RC_TOPIC_SWEEP_FREES 256u
void rc_broker_tick(struct rc_shard *s);
/* When rc_broker_tick next has work: the next sweep while topics are owned (or the table
 * can shrink), UINT64_MAX otherwise (an idle shard sleeps). */
uint64_t rc_broker_next_tick_ms(const struct rc_shard *s);
/* Topics this shard owns now. */
size_t rc_broker_owned_topics(const struct rc_shard *s);
void rc_broker_conn_gone(struct rc_conn *c);

/* Subscribe c to pattern with an optional filter (JSON object or NULL).
 * NULL with err set (bad_topic, bad_filter, too_many_subscriptions). */
struct rc_sub *rc_broker_subscribe(struct rc_conn *c, const char *pattern, size_t n,
                                   const json_t *filter, struct rc_err *err);
/* Remove c's subscription with this id, or every one on exactly this pattern.
 * Returns how many were removed. */
size_t rc_broker_unsubscribe_id(struct rc_conn *c, const char *sub_id);
size_t rc_broker_unsubscribe_pattern(struct rc_conn *c, const char *pattern, size_t n);

void rc_sub_ref(struct rc_sub *sub);
void rc_sub_unref(struct rc_sub *sub);

/* Whether sub's "subscribed" answer must wait (rc_broker_hold_reply): a
 * max_subscribers claim, or (broker = redis) this node's channel subscription,
 * is not settled yet; "subscribed" then means events published after it
 * reach the client. */
static inline bool rc_broker_reply_held(const struct rc_sub *sub)
{
    return sub->claim_pending || sub->channel_pending;
}

/* max_subscribers (sub->claim_pending): hold sub's "subscribed" answer (data,
 * taken; NULL = none) until the topic's owner admits it; it then goes to t, or
 * t gets a too_many_subscribers error and sub is removed. */
void rc_broker_hold_reply(struct rc_sub *sub, const struct rc_ticket *t, json_t *data);

/* Which encoded image of an event a connection gets, by its wire format: the
 * WebSocket text frame or the SSE record (the one place this is decided).
 * For a topic event the image is the prefix that sub's suffix completes;
 * sub NULL (broadcasts, notifications): the whole image, no suffix. */
struct rc_image {
    const uint8_t *p;
    size_t len;
    const uint8_t *suffix; /* NULL without sub */
    size_t suffix_len;
    bool ws; /* a WebSocket frame (p starts with its frame header) */
};
/* The uncompressed image, for those who read the event's text (initial events). */
static inline struct rc_image
rc_event_image_plain(const struct rc_conn *c, const struct rc_evbuf *ev, const struct rc_sub *sub)
{
    struct rc_image im = {0};
    if (c->proto == RC_PROTO_WS) {
        im = (struct rc_image){ev->ws, ev->ws_len, NULL, 0, true};
        if (sub) {
            im.suffix = sub->ws_suffix;
            im.suffix_len = RC_WS_SUFFIX_LEN;
        }
    } else {
        im = (struct rc_image){ev->sse, ev->sse_len, NULL, 0, false};
        if (sub) {
            im.suffix = sub->sse_suffix;
            im.suffix_len = RC_SSE_SUFFIX_LEN;
        }
    }
    return im;
}

/* The image a delivery sends: the compressed one when the connection agreed
 * permessage-deflate, the event has one, and every back-reference fits the
 * window the client allowed (the plain payload is at most 2^bits bytes). */
static inline struct rc_image rc_event_image(const struct rc_conn *c, const struct rc_evbuf *ev,
                                             const struct rc_sub *sub)
{
    if (c->ws_deflate_bits && ev->wsz && ev->ws_plain <= (size_t)1 << c->ws_deflate_bits)
        return (struct rc_image){ev->wsz, ev->wsz_len, sub ? sub->ws_suffix : NULL,
                                 sub ? RC_WS_SUFFIX_LEN + 1 : 0, true};
    return rc_event_image_plain(c, ev, sub);
}

/* A publication on its way to the topic's owner. data: owned (may be NULL).
 * client_key: optional idempotency key. */
struct rc_publish {
    const char *topic;
    size_t topic_len;
    const char *type;
    json_t *data;
    const char *client_key;
    json_t *echo; /* owned, optional: answer 201 with this object plus "id"
                     (seed 001's POST /events) instead of 202 {"id","topic"} */
    char **users; /* borrowed: only these users' connections (NULL = all) */
    size_t nusers;
    const char *exclude_user; /* borrowed: never this user's connections */
};
/* Send a publication to the topic's owner; the answer comes back to t:
 * type "published", status 202 {"id","topic"} (200 for a repeated idempotency
 * key; 201 with pub->echo plus "id" when given), or a 503 error.
 * Ownership of pub->data (and pub->echo) passes to the broker in every case. */
void rc_broker_publish(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);

/* Deliver an event to every connection of pub->users (no topic): answers t
 * with 202 {"id","user_ids","connections"} once every shard has delivered. */
void rc_broker_publish_users(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);

/* Deliver an already encoded broadcast evbuf (takes the caller's reference)
 * to the connections it names (or to all); answer t with the number reached. */
void rc_broker_broadcast(struct rc_conn *c, const struct rc_ticket *t, struct rc_evbuf *ev);

/* Resume options of a subscribe. since: an event id ("<epoch>-<seq>") or NULL. */
struct rc_sub_opts {
    const char *since;
    bool include_initial;
    bool from_now; /* no since: learn the topic's position from its owner (SSE stream ids) */
    const struct rc_ticket *ticket; /* the subscribe's: a later history_gap error goes
                                       there (NULL: rc_ticket_stream naming the sub) */
};
/* Validate resume options before subscribing (since on an exact topic, a
 * well-formed event id). *stale: the id is from another run (answered later
 * as a gap). 0 or -EINVAL with err. */
int rc_broker_resume_check(struct rc_shard *s, const char *pattern, size_t n,
                           const struct rc_sub_opts *o, uint64_t *after, bool *stale,
                           struct rc_err *err);
/* After rc_broker_subscribe: start the replay (since) or initial-state
 * request. 0, or -EINVAL with err (bad_event_id, since on a pattern). */
int rc_broker_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     struct rc_err *err);

/* The stream id of an SSE stream of several topics (history.h, "stream ids"):
 * each record through one of its subscriptions ends with an extra
 * "id: <stream id>" line (the last id line of a record wins), and records
 * without a topic (broadcasts, initial events) are followed by an id-only
 * record, so the browser's Last-Event-ID always names every exact topic's
 * position. Owner: the connection; freed by rc_broker_conn_gone. Costs one
 * small allocation per record on such streams (the id differs per record). */
struct rc_sse_cursor {
    uint32_t n;
    struct rc_stream_pos pos[];
};
/* Give c (an SSE stream of ntopics <= RC_STREAM_TOPICS_MAX topics) a stream
 * id, starting from pos (NULL = nothing known). 0 or -ENOMEM. */
int rc_broker_stream_start(struct rc_conn *c, size_t ntopics, const struct rc_stream_pos *pos);

/* GET /api/realtime/history/{topic}: events after `since` (or the last
 * `limit`) from the topic's owner; answers t with the JSON page. */
void rc_broker_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                       const char *since, size_t limit);

/* Presence of an exact topic (from its owner): answers t with the users and
 * their connection counts, paged (type "presence"). */
void rc_broker_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                             size_t n, size_t offset, size_t limit);
bool rc_broker_presence_enabled(const struct rc_shard *s, const char *topic, size_t n);

/* What GET /api/realtime/stats asks of the gather (docs/API.md, "Stats"). */
#define RC_STATS_TOP_MAX 1000u
struct rc_stats_query {
    size_t limit;      /* connections listed in detail, at most */
    uint64_t conn_id;  /* list only this connection (0 = any) */
    char user_id[129]; /* list only this user's connections ("" = any) */
    size_t top;        /* also answer "top_subscriptions": the top most-subscribed patterns,
                          counted exactly over every connection (0 = omit; <= RC_STATS_TOP_MAX) */
};

/* Gather stats from every shard and answer t (seed 003's shape); q is copied. */
void rc_broker_stats(struct rc_conn *c, const struct rc_ticket *t, const struct rc_stats_query *q);
/* GET /metrics: the same gather of every shard of this node, answered as
 * Prometheus text (content_type text/plain; version=0.0.4), plus the process,
 * the build and, with broker = redis, the bridge (docs/OPERATIONS.md). extra
 * (NULL = none; copied) is Prometheus text of the layers above, appended. */
void rc_broker_metrics(struct rc_conn *c, const struct rc_ticket *t, const char *extra);

/* ---- engines ------------------------------------------------------------------ */

/* A broker engine: where a topic's order point is and how the shards reach it.
 * Chosen once per shard at rc_broker_init (s->broker->engine) and read-only
 * afterwards; called on the shard thread of c / s. The memory engine
 * (rc_broker_memory_engine: topic owner shards inside this process, messages
 * through the inboxes) is today's only one; a cluster engine (Redis) keeps the
 * same entry points and answers through the same tickets.
 *   publish ... stats: the public entry points of the same name route here
 *     unchanged (same ownership rules, same answers).
 *   subscribed / unsubscribed: sub entered / is leaving this shard's trie
 *     (after the local checks; the engine tells the topic's order point:
 *     hold, presence, max_subscribers claims; a cluster engine subscribes its
 *     channel). unsubscribed runs before sub's handle and conn are cleared.
 *   resume: start sub's replay (since) or initial state; 0 or -errno with err. */
struct rc_broker_engine_ops {
    const char *name; /* stats' "pubsub_backend" */
    void (*publish)(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);
    void (*publish_users)(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);
    void (*broadcast)(struct rc_conn *c, const struct rc_ticket *t, struct rc_evbuf *ev);
    void (*subscribed)(struct rc_conn *c, struct rc_sub *sub);
    void (*unsubscribed)(struct rc_conn *c, struct rc_sub *sub);
    int (*resume)(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                  struct rc_err *err);
    void (*history)(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                    const char *since, size_t limit);
    void (*presence_list)(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                          size_t offset, size_t limit);
    void (*stats)(struct rc_conn *c, const struct rc_ticket *t, const struct rc_stats_query *q);
};

extern const struct rc_broker_engine_ops rc_broker_memory_engine;
/* The cluster engine (broker = redis, broker_redis.c): a topic's order point
 * is Redis (redis_bridge.h). Publishes, history reads and channel
 * subscriptions go to the node's bridge thread; received events are encoded
 * once and posted to every shard like the memory engine's. Presence,
 * max_subscribers claims, broadcasts and user-targeted publishes without a
 * topic stay node-local (docs/ARCHITECTURE.md, "The cluster engine"). */
extern const struct rc_broker_engine_ops rc_broker_redis_engine;

/* Main thread. With broker = redis: open the bridge (srv->cluster) before the
 * shards start; start it once they run; halt it once they are drained, and
 * free it after rc_server_join. No-ops with broker = memory. 0 or -errno with
 * err. */
int rc_broker_cluster_open(struct rc_server *srv, uint16_t port, struct rc_err *err) RC_MUST_CHECK;
int rc_broker_cluster_start(struct rc_server *srv, struct rc_err *err) RC_MUST_CHECK;
void rc_broker_cluster_halt(struct rc_server *srv);
void rc_broker_cluster_close(struct rc_server *srv);
/* Any shard: whether the broker cannot do its work now (Redis not reached);
 * why gets the reason. */
bool rc_broker_degraded(const struct rc_shard *s, char *why, size_t cap);
/* Any thread, broker = redis: send an event for connections (a user-targeted
 * event, a broadcast to all, a notification; not one naming connection ids,
 * which mean nothing on another node) to every other node, which delivers it
 * to its matching connections. The caller delivers it on this node. No-op
 * with broker = memory. */
void rc_broker_cluster_forward(const struct rc_server *srv, const struct rc_evbuf *ev);
/* Messages between nodes for upper layers (broker = redis): a kind and a JSON
 * object, on the rc:n channel. Main thread, after rc_broker_cluster_open and
 * before rc_broker_cluster_start: register fn for kind (at most
 * RC_BROKER_CLUSTER_KINDS kinds); it runs on the bridge thread for every other
 * node's message of that kind and must hand the work on, not block. 0, or
 * -ENOSPC. No-op (0) with broker = memory. */
#define RC_BROKER_CLUSTER_KINDS 4
typedef void (*rc_broker_cluster_fn)(void *ctx, const json_t *msg);
int rc_broker_cluster_on(struct rc_server *srv, const char *kind, rc_broker_cluster_fn fn,
                         void *ctx);
/* Any thread: send msg (not taken) to every other node's handler of kind. */
void rc_broker_cluster_send(const struct rc_server *srv, const char *kind, const json_t *msg);
/* Stats: broker = redis adds "cluster": node_name, redis_up (and reason),
 * the bridge's counters (docs/OPERATIONS.md). No-op with broker = memory. */
void rc_broker_cluster_stats(const struct rc_server *srv, json_t *obj);
/* broker = redis: the bridge's counters (redis_bridge.h) into out; false
 * (out untouched) with broker = memory. */
struct rc_redis_counters;
bool rc_broker_cluster_counters(const struct rc_server *srv, struct rc_redis_counters *out);
/* This node's name (node_name, else hostname:port). */
const char *rc_broker_node_name(const struct rc_server *srv);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_BROKER_H */
