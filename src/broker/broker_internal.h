/* broker_internal.h - private to the broker's files: the per-shard state,
 * the inbox messages it exchanges between shards, and the helpers the files
 * share.
 *   broker.c          lifecycle, the engine table and the public entry points
 *   broker_sub.c      subscriptions, SSE stream ids and delivery on a shard
 *   broker_topic.c    owned topics (table, epochs, idle sweep) and publish
 *   broker_history.c  history, resume and include_initial
 *   broker_owner.c    presence, max_subscribers claims and holds at the
 *                     topic's owner; the memory engine's subscription hooks
 *   broker_gather.c   the cross-shard gathers (stats and metrics, broadcast,
 *                     user-targeted publish)
 *   broker_metrics.c  the Prometheus rendering of a metrics gather
 * The memory engine (broker.h) is the brk_mem_* functions of these files.
 * Owner: struct rc_broker and the topics in it belong to one shard's thread;
 * a post is owned by whichever shard's inbox it is in (origin -> owner ->
 * origin), never by two at once.
 * Invariants: a topic's state lives only on its owner shard
 *   (rc_topic_owner); a sub never leaves the shard it was created on.
 * Lifetimes: topic_state lives until the idle sweep frees it (no holds, no
 *   claimed subscribers, no presence, no kept history, idle for
 *   topic_idle_timeout) or rc_broker_fini; posts name topics, never point at
 *   a topic_state, so freeing one leaves nothing dangling; each post is freed by
 *   the shard that runs its last hop, or by its discard function. */
#ifndef RINGCAST_BROKER_INTERNAL_H
#define RINGCAST_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/answer.h"
#include "ringcast/broker.h"
#include "ringcast/history.h"
#include "ringcast/msg.h"
#include "ringcast/redis_bridge.h"
#include "ringcast/shard.h"
#include "ringcast/ticket.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IDEM_KEYS 32 /* idempotency keys remembered per topic */

/* State of a topic this shard owns (one incarnation: freed by the idle sweep,
 * a later use creates a new one with a new epoch). */
struct topic_state {
    char *name;
    size_t len;
    uint64_t hash;
    char epoch[RC_EPOCH_MAX]; /* this incarnation's id epoch (base 36) */
    uint64_t last_ms;         /* created, last publish or last hold released */
    uint32_t holds;           /* exact-topic subscriptions on any shard (CLAIM_HOLD) */
    struct rc_history hist;   /* also holds the topic's current seq */
    uint64_t idem_hash[IDEM_KEYS];
    uint64_t idem_seq[IDEM_KEYS];
    uint32_t idem_next;
    uint32_t subscribers; /* claimed subscriptions (rules with max_subscribers) */
};

struct rc_broker {
    struct rc_shard *shard;
    const struct rc_broker_engine_ops *engine; /* chosen at rc_broker_init */
    struct rc_trie *trie;
    struct rc_pool sub_pool;
    uint64_t next_sub;
    /* owned topics: open addressing, linear probing, power-of-two size */
    struct topic_state **topics;
    size_t ntopics, topics_cap;
    size_t sweep_pos;             /* next slot the idle sweep looks at */
    uint64_t next_sweep_ms;       /* monotonic; the sweep runs at most every RC_TOPIC_SWEEP_MS */
    uint64_t epoch_last;          /* last topic epoch value given out (strictly increasing) */
    struct rc_presence *presence; /* members of the topics this shard owns */
    /* the event being delivered (for the trie callback) */
    struct rc_evbuf *cur;
    size_t cur_delivered;
};

static inline struct rc_broker *B(struct rc_shard *s)
{
    return s->broker;
}

/* ---- broker_sub.c ---- */

/* Run function of an evbuf's posts (rc_evbuf_post): deliver, drop the reference. */
void brk_event_run(struct rc_shard *s, struct rc_post *p);
/* SSE stream of several topics: queue an id-only record with its current
 * stream id (after a record whose own id would move Last-Event-ID). 0 when c
 * has no stream id, or -errno. */
int brk_stream_id_record(struct rc_conn *c);
/* Queue a topic event through sub on c. 0 or -errno. */
int brk_queue_event(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev);
/* Queue a broadcast event to this shard's matching connections; returns how
 * many it reached. */
uint64_t brk_deliver_broadcast(struct rc_shard *s, struct rc_evbuf *ev);
/* Where answers about sub go: its subscribe request's ticket, else the
 * connection's stream (naming sub). */
struct rc_ticket brk_sub_ticket(const struct rc_sub *sub, const struct rc_conn *c);
/* Keep a copy of t as sub's ticket (once: a subscribe's resume and admission
 * share it). false when out of memory. */
bool brk_sub_keep_ticket(struct rc_sub *sub, const struct rc_ticket *t);
/* Both holds of sub's "subscribed" answer are settled: send it (if one was
 * held); no-op while one still waits. */
void brk_sub_release_reply(struct rc_conn *c, struct rc_sub *sub);
/* Free sub's ticket once neither a resume nor an admission can answer it. */
void brk_sub_ticket_done(struct rc_sub *sub);

/* ---- broker_topic.c ---- */

/* Owned topic name[0..len) of this shard, or NULL. */
struct topic_state *brk_topic_find(struct rc_broker *b, const char *name, size_t len);
/* Owned topic name[0..len), created (with its history config) when new; NULL
 * when out of memory. */
struct topic_state *brk_topic_get(struct rc_broker *b, const char *name, size_t len);
/* Free every owned topic (rc_broker_fini). */
void brk_topics_fini(struct rc_broker *b);
/* "<epoch>-<seq>" of topic t into out. */
void brk_event_id_format(const struct topic_state *t, uint64_t seq, char out[RC_EVENT_ID_MAX]);
/* Owner shard: give the next event of t an id, keep it in history, post it to
 * every shard; *data is moved in on success. Returns its seq, 0 when out of
 * memory (*data is then still the caller's). */
uint64_t brk_owner_fanout(struct rc_shard *s, struct topic_state *t, const char *type,
                          json_t **data, char **users, size_t nusers, const char *exclude,
                          char id_out[RC_EVENT_ID_MAX]);
void brk_mem_publish(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);
/* History kept for topic: the config's defaults refined by its rule. */
struct rc_history_cfg brk_history_cfg(const struct rc_shard *s, const char *topic);

/* ---- broker_history.c ---- */

/* What a subscribe's resume options ask for, once its seam is set up. */
struct brk_resume_plan {
    bool active;                  /* a seam was set up: an answer must reach it */
    enum rc_resume_mode mode;     /* RC_RESUME_SINCE (also from_now) or RC_RESUME_INITIAL */
    uint64_t after;               /* SINCE: the cursor's seq */
    bool from_now;                /* SINCE without a cursor: the position only */
    char cursor[RC_EVENT_ID_MAX]; /* the client's event id, "" = none */
};
/* Check o and set up sub's resume seam (INITIAL waits for initial_answers
 * answers). 0 (plan->active false: nothing asked) or -errno with err. */
int brk_resume_setup(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     uint32_t initial_answers, struct brk_resume_plan *plan, struct rc_err *err);
/* The answer can never come: tell the client (history_gap) and stop waiting. */
void brk_resume_failed(struct rc_sub *sub);
/* A history_gap answer about sub. */
void brk_resume_gap(struct rc_sub *sub, enum rc_resume_gap reason);
/* from_now: the topic stands at cur_seq of epoch. */
void brk_resume_from_now(struct rc_conn *c, struct rc_sub *sub, uint64_t cur_seq,
                         const char *epoch);
/* c's subscription with this id, or NULL. */
struct rc_sub *brk_find_sub(struct rc_conn *c, const char *id);
/* GET /history's `since` (NULL = none) into *after; false when it is not an
 * event id (t was answered 400 bad_event_id). */
bool brk_history_since(struct rc_conn *c, const struct rc_ticket *t, const char *since,
                       uint64_t *after);
/* The GET /history page (JSON text, malloc'd; NULL when out of memory);
 * takes events. */
char *brk_history_page(const char *topic, size_t len, json_t *events, const char *epoch,
                       uint64_t cur, enum rc_history_result res);
/* End sub's resume (if any) and free its state. */
void brk_resume_finish(struct rc_sub *sub);
int brk_mem_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                   struct rc_err *err);
void brk_mem_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                     const char *since, size_t limit);

/* ---- broker_owner.c ---- */

void brk_mem_subscribed(struct rc_conn *c, struct rc_sub *sub);
void brk_mem_unsubscribed(struct rc_conn *c, struct rc_sub *sub);
void brk_mem_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                           size_t n, size_t offset, size_t limit);

/* ---- broker_gather.c ---- */

void brk_mem_publish_users(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub);
void brk_mem_broadcast(struct rc_conn *c, const struct rc_ticket *t, struct rc_evbuf *ev);
void brk_mem_stats(struct rc_conn *c, const struct rc_ticket *t, const struct rc_stats_query *q);
/* GET /metrics: gather every shard's brk_metrics_part, answer Prometheus text. */
void brk_mem_metrics(struct rc_conn *c, const struct rc_ticket *t, const char *extra);

/* The shard counters (shard.h) by name, for both renderings of a gather:
 * the JSON stats' "counters" keys and the Prometheus ringcast_<name>_total. */
struct brk_counter_field {
    const char *name;
    const char *help;
    size_t offset; /* of a uint64_t in struct rc_counters */
};
extern const struct brk_counter_field brk_counter_fields[];
extern const size_t brk_ncounter_fields;
uint64_t brk_counter_value(const struct rc_counters *k, const struct brk_counter_field *f);

/* One shard's numbers for /metrics, copied on its own thread by the gather. */
struct brk_metrics_part {
    bool present; /* false: the shard's job could not be allocated */
    unsigned shard;
    struct rc_counters ctr;
    struct rc_shard_histos hist;
    uint64_t conns[3]; /* open connections by enum rc_conn_proto */
    uint64_t authenticated, subscriptions, topics, history_events, history_bytes, out_bytes;
    uint64_t conn_pool_used, conn_pool_cap, sub_pool_used, sub_pool_cap;
};

/* ---- broker_metrics.c ---- */

#define BRK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* The Prometheus text of a metrics gather (parts[0..n), by shard id), the
 * process, the build and (broker = redis) the bridge; malloc'd, NULL when out
 * of memory. Runs on the origin shard s. */
char *brk_metrics_render(struct rc_shard *s, const struct brk_metrics_part *parts, unsigned n,
                         const char *extra, size_t *len);

/* ---- broker_redis.c, broker_redis_read.c (the cluster engine) ---- */

/* Created and freed by the main thread, immutable in between (the bridge
 * owns its own state). */
struct rc_broker_cluster {
    struct rc_server *srv;
    struct rc_redis_bridge *bridge;
    bool halted;      /* main thread: the bridge thread is gone, answers are dropped */
    char node_id[17]; /* random, per process: a node skips its own forwarded events */
    /* handlers of other nodes' messages (rc_broker_cluster_on), set before start */
    struct {
        char kind[32];
        rc_broker_cluster_fn fn;
        void *ctx;
    } on[RC_BROKER_CLUSTER_KINDS];
    unsigned non;
    char node_name[RC_CONFIG_CLAIM_MAX];
};

/* A request's answer on its way back from the bridge to the origin shard:
 * the origin's, then (with its request) the bridge's, then the origin's again,
 * which frees both; its discard frees them when a shard stops with it unread. */
enum rpost_kind { RP_PUBLISH, RP_RESUME, RP_HISTORY, RP_PRESENCE, RP_CHANNEL };

struct rpost {
    struct rc_post post;
    enum rpost_kind kind;
    struct rc_shard *origin;
    struct rc_redis_req *req;
    struct rc_ticket ticket; /* publish, history: who waits */
    uint64_t conn_id;        /* the asking connection (every kind) */
    char sub_id[RC_SUB_ID_LEN + 1];
    struct brk_resume_plan plan; /* resume */
    json_t *echo;                /* publish: answer 201 with this */
    size_t limit;                /* history, presence */
    size_t offset;               /* presence */
    uint64_t ttl_ms;             /* history kept this long (0 = no age limit) */
};

/* A post for c's shard carrying req (req->user points back at it); NULL when
 * out of memory. */
struct rpost *brk_rpost_new(struct rc_conn *c, enum rpost_kind kind, struct rc_redis_req *req);
/* A request of op on topic[0..n) answered to t later, with its post; NULL
 * (t answered 503) when out of memory. */
struct rpost *brk_rpost_for(struct rc_conn *c, const struct rc_ticket *t, enum rpost_kind kind,
                            enum rc_redis_op op, const char *topic, size_t n);
/* Whether the bridge answered p's request with an error; if so, it went to
 * p's ticket (503 with the bridge's code and reason). */
bool brk_rpost_failed(struct rc_conn *c, const struct rpost *p);
/* Hand req to this node's bridge. */
void brk_redis_submit(struct rc_shard *s, struct rc_redis_req *req);
/* One event of topic as an evbuf with nposts posts; NULL when malformed or out
 * of memory. */
struct rc_evbuf *brk_redis_evbuf(const char *topic, size_t len, const char *epoch, uint64_t seq,
                                 struct rc_slice type, struct rc_slice data,
                                 struct rc_slice targeting, uint32_t nposts);
int brk_redis_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     struct rc_err *err);
void brk_redis_resume_answer(struct rc_conn *c, struct rpost *p);
void brk_redis_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                       const char *since, size_t limit);
void brk_redis_history_answer(struct rc_conn *c, struct rpost *p);
void brk_redis_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                             size_t n, size_t offset, size_t limit);
void brk_redis_presence_answer(struct rc_conn *c, struct rpost *p);

/* Owner shard, broker = redis: tell the cluster how many connections user
 * (anonymous: connection conn) now has on topic on this node. */
void brk_redis_presence(struct rc_shard *s, struct rc_slice topic, struct rc_slice user,
                        uint64_t conn);

#ifdef __cplusplus
}
#endif

#endif
