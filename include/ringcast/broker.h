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
 * A publish travels: origin shard -> (RC_POST_PUBLISH) -> owner shard, which
 *   assigns the event id, encodes an evbuf once and posts it to every shard
 *   (RC_POST_EVENT, per-topic order = the owner's posting order, each inbox
 *   being FIFO per producer) -> each shard matches its trie and queues iovecs.
 *   The owner answers the origin (RC_POST_REPLY) once the event is accepted.
 * Requests that need every shard (stats, broadcasts) are gathered: the origin
 *   posts a job to each shard; each fills its part and posts it back; the
 *   origin answers when all parts are in. Ownership of a job moves with it.
 * Subscriptions: struct rc_sub comes from the shard's pool; it is referenced
 *   by its connection and by queued output segments (its pre-encoded suffix),
 *   with a shard-local (non-atomic) count. */
#ifndef RINGCAST_BROKER_H
#define RINGCAST_BROKER_H

#include <jansson.h>

#include "ringcast/common.h"
#include "ringcast/conn.h"
#include "ringcast/evbuf.h"
#include "ringcast/history.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;
struct rc_trie_sub;
struct rc_broker;

struct rc_sub {
    struct rc_conn *conn; /* NULL once the connection is gone */
    struct rc_sub *next_in_conn;
    struct rc_trie_sub *handle; /* NULL once unsubscribed */
    struct rc_broker *broker;   /* whose pool it came from */
    struct rc_segref ref;       /* the connection's, plus one per queued suffix (conn.h) */
    uint16_t pattern_len;
    char id[RC_SUB_ID_LEN + 1];
    uint8_t ws_suffix[RC_WS_SUFFIX_LEN];
    uint8_t sse_suffix[RC_SSE_SUFFIX_LEN];
    char *pattern;
    char *filter_text;        /* canonical filter, NULL = none */
    struct rc_resume *resume; /* while replaying history / initial state */
    json_t *resume_req_id;    /* request id of the subscribe, for gap errors */
    bool resume_done;         /* caught up: free resume after the current call */
    bool presence;            /* counted in the topic's presence at its owner */
    bool claim_pending;       /* max_subscribers: waiting for the owner's yes */
    bool claimed;             /* max_subscribers: holds a slot at the owner */
    bool held;                /* an exact topic: counted in the owner's holds */
    uint8_t stream_slot;      /* SSE stream id: 1 + the topic's index in the stream, 0 = none */
    json_t *pending_reply;    /* WS "subscribed" answer held until the owner admits */
    json_t *pending_req_id;
    char presence_user[129]; /* the user id the presence join used */
    char durable_id[64];     /* a durable user subscription (store.h, RC_STORE_ID_MAX)
                                applied to this connection; "" = a client's own */
};

/* Who waits for the answer of a publish/gather. */
enum rc_reply_to { RC_REPLY_HTTP, RC_REPLY_WS };

int rc_broker_init(struct rc_shard *s) RC_MUST_CHECK;
void rc_broker_fini(struct rc_shard *s);
void rc_broker_on_post(struct rc_shard *s, struct rc_post *p);
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
/* Topics this shard owns now. */
size_t rc_broker_owned_topics(const struct rc_shard *s);
/* Free a post left in an inbox at shutdown. */
void rc_broker_discard_post(struct rc_post *p);
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

/* A publication on its way to the topic's owner. data: owned (may be NULL).
 * client_key: optional idempotency key. req_id: echoed to a WS publisher. */
struct rc_publish {
    const char *topic;
    size_t topic_len;
    const char *type;
    json_t *data;
    const char *client_key;
    json_t *req_id;
    json_t *echo; /* owned, optional: answer 201 with this object plus "id"
                     (seed 001's POST /events) instead of 202 {"id","topic"} */
    char **users; /* borrowed: only these users' connections (NULL = all) */
    size_t nusers;
    const char *exclude_user; /* borrowed: never this user's connections */
};
/* Send a publication to the topic's owner; the answer comes back to c as a
 * deferred HTTP response (202 {"id","topic"}) or a WS "published" message.
 * Ownership of pub->data passes to the broker in every case. */
void rc_broker_publish(struct rc_conn *c, uint32_t serial, enum rc_reply_to to,
                       struct rc_publish *pub);

/* Deliver an event to every connection of pub->users (no topic): answers c
 * with 202 {"id","user_ids","connections"} once every shard has delivered. */
void rc_broker_publish_users(struct rc_conn *c, uint32_t serial, struct rc_publish *pub);

/* Deliver an already encoded broadcast evbuf (takes the caller's reference)
 * to the connections it names (or to all); answer c with the number reached. */
void rc_broker_broadcast(struct rc_conn *c, uint32_t serial, struct rc_evbuf *ev);

/* Resume options of a subscribe. since: an event id ("<epoch>-<seq>") or NULL. */
struct rc_sub_opts {
    const char *since;
    bool include_initial;
    bool from_now;  /* no since: learn the topic's position from its owner (SSE stream ids) */
    json_t *req_id; /* borrowed; echoed in a later history_gap error */
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
 * `limit`) from the topic's owner; answers c as a deferred JSON response. */
void rc_broker_history(struct rc_conn *c, uint32_t serial, const char *topic, size_t n,
                       const char *since, size_t limit);

/* Presence of an exact topic (from its owner): answers c with the users and
 * their connection counts, paged; as a deferred HTTP response or a WS
 * "presence" message. */
void rc_broker_presence_list(struct rc_conn *c, uint32_t serial, enum rc_reply_to to,
                             const json_t *req_id, const char *topic, size_t n, size_t offset,
                             size_t limit);
bool rc_broker_presence_enabled(const struct rc_shard *s, const char *topic, size_t n);

/* Gather stats from every shard and answer c (seed 003's shape). */
void rc_broker_stats(struct rc_conn *c, uint32_t serial, size_t limit);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_BROKER_H */
