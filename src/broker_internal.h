/* broker_internal.h - private to src/broker.c, src/broker_history.c and
 * src/broker_gather.c: the broker's per-shard state, the inbox messages it
 * exchanges between shards, and the helpers the three files share.
 * broker.c holds subscriptions, owned topic state, publish and fan-out,
 * delivery, inbox dispatch and the lifecycle; broker_history.c holds history,
 * resume and include_initial; broker_gather.c holds presence and the
 * cross-shard gathers (stats, broadcast, user-targeted publish).
 * Owner: struct rc_broker and the topics in it belong to one shard's thread;
 * a post is owned by whichever shard's inbox it is in (origin -> owner ->
 * origin), never by two at once.
 * Invariants: a topic's state lives only on its owner shard
 *   (rc_topic_owner); a sub never leaves the shard it was created on.
 * Lifetimes: topic_state lives until the idle sweep frees it (no holds, no
 *   claimed subscribers, no presence, no kept history, idle for
 *   topic_idle_timeout) or rc_broker_fini; posts name topics, never point at
 *   a topic_state, so freeing one leaves nothing dangling; each post is freed by
 *   the shard that handles its last hop (or by rc_broker_discard_post). */
#ifndef RINGCAST_BROKER_INTERNAL_H
#define RINGCAST_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/broker.h"
#include "ringcast/history.h"
#include "ringcast/msg.h"
#include "ringcast/shard.h"

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

/* ---- inbox messages ---------------------------------------------------------- */

enum pub_state { PUB_TO_OWNER, PUB_DONE };

struct pub_post {
    struct rc_post post;
    enum pub_state state;
    struct rc_shard *origin;
    uint64_t conn_id;
    uint32_t serial;
    enum rc_reply_to to;
    char *topic;
    size_t topic_len;
    char *type;
    json_t *data;
    char *client_key;
    json_t *req_id;
    json_t *echo;
    char **users;
    size_t nusers;
    char *exclude_user;
    /* answer */
    int status;
    char event_id[RC_EVENT_ID_MAX];
    bool duplicate;
};

enum job_kind { JOB_STATS, JOB_BROADCAST };

struct gather {
    enum job_kind kind;
    uint64_t conn_id;
    uint32_t serial;
    unsigned pending;
    size_t limit;
    /* merged results */
    uint64_t reached;
    json_t *echo; /* broadcast: answer 202 with this object plus "connections" */
    json_t *acc;  /* stats: the answer being built */
    json_t *users;
    size_t listed;
};

struct job_post {
    struct rc_post post;
    bool done;
    struct rc_shard *origin;
    struct gather *g;
    struct rc_evbuf *ev; /* broadcast */
    size_t limit;
    /* results */
    uint64_t reached;
    json_t *part;
};

enum pres_kind { PRES_JOIN, PRES_LEAVE, PRES_LIST };

struct pres_post {
    struct rc_post post;
    bool done;
    enum pres_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t topic_len;
    char user[129]; /* "" = anonymous */
    /* LIST */
    enum rc_reply_to to;
    uint32_t serial;
    json_t *req_id;
    size_t offset, limit;
    char *json;
};

enum hist_kind { HIST_SINCE, HIST_INITIAL, HIST_API };

struct hist_post {
    struct rc_post post;
    bool done;
    enum hist_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char sub_id[RC_SUB_ID_LEN + 1];
    uint32_t serial;
    char *topic; /* topic (SINCE, API) or pattern (INITIAL) */
    size_t topic_len;
    uint64_t after_seq;
    char cursor[RC_EVENT_ID_MAX]; /* the client's event id ("" = none): the owner
                                     compares its epoch with the topic's */
    bool from_now; /* SINCE without a cursor: answer S only (SSE multi-topic start) */
    size_t limit;
    /* answer */
    enum rc_history_result res;
    struct rc_resume_item *items;
    size_t nitems;
    uint64_t cur_seq;
    char *json; /* HIST_API: the rendered answer */
    int status;
};

static inline struct rc_broker *B(struct rc_shard *s)
{
    return s->broker;
}

/* ---- broker.c ---- */

/* Owned topic name[0..len) of this shard, or NULL. */
struct topic_state *brk_topic_find(struct rc_broker *b, const char *name, size_t len);
/* Owned topic name[0..len), created (with its history config) when new; NULL
 * when out of memory. */
struct topic_state *brk_topic_get(struct rc_broker *b, const char *name, size_t len);
/* "<epoch>-<seq>" of topic t into out. */
void brk_event_id_format(const struct topic_state *t, uint64_t seq, char out[RC_EVENT_ID_MAX]);
/* Owner shard: give the next event of t an id, keep it in history, post it to
 * every shard; *data is moved in on success. Returns its seq, 0 when out of
 * memory (*data is then still the caller's). */
uint64_t brk_owner_fanout(struct rc_shard *s, struct topic_state *t, const char *type,
                          json_t **data, char **users, size_t nusers, const char *exclude,
                          char id_out[RC_EVENT_ID_MAX]);
/* SSE stream of several topics: queue an id-only record with its current
 * stream id (after a record whose own id would move Last-Event-ID). 0 when c
 * has no stream id, or -errno. */
int brk_stream_id_record(struct rc_conn *c);
/* Queue a topic event through sub on c. 0 or -errno. */
int brk_queue_event(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev);
/* Queue a broadcast event to this shard's matching connections; returns how
 * many it reached. */
uint64_t brk_deliver_broadcast(struct rc_shard *s, struct rc_evbuf *ev);

/* ---- broker_history.c ---- */

/* End sub's resume (if any) and free its state. */
void brk_resume_finish(struct rc_sub *sub);
void brk_hist_free(struct hist_post *h);
/* Owner shard: fill in the answer to h. */
void brk_owner_history(struct rc_shard *s, struct hist_post *h);
/* Origin shard: deliver h's answer, then free h. */
void brk_history_answer(struct rc_shard *s, struct hist_post *h);

/* ---- broker_gather.c ---- */

/* Whether presence is tracked for topic[0..n). */
bool brk_presence_on(const struct rc_shard *s, const char *topic, size_t n);
/* max_subscribers of the rule covering pattern, 0 = unlimited */
uint32_t brk_max_subscribers(const struct rc_shard *s, const char *pattern, size_t n);
/* Claims of a subscription slot at the owner (max_subscribers). */
enum claim_kind {
    CLAIM_TAKE,    /* max_subscribers: ask for a slot (answered) */
    CLAIM_RELEASE, /* give a slot back */
    CLAIM_HOLD,    /* an exact-topic subscription keeps the topic from eviction */
    CLAIM_UNHOLD,  /* ... no longer */
};
void brk_claim_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                    enum claim_kind kind);
void brk_claim_on_post(struct rc_shard *s, struct rc_post *p);
void brk_claim_free(struct rc_post *p);
/* Subscriber shard: tell the owner that sub's connection joined or left. */
void brk_presence_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                       enum pres_kind kind);
void brk_pres_free(struct pres_post *p);
/* Owner shard: apply a join/leave or render a listing. */
void brk_owner_presence(struct rc_shard *s, struct pres_post *p);
/* Origin shard: answer a listing, then free p. */
void brk_presence_answer(struct rc_shard *s, struct pres_post *p);
/* Any shard: run a gather's job and post it back to its origin. */
void brk_run_job(struct rc_shard *s, struct job_post *j);
/* Origin shard: merge a finished job, answering once the last is in. */
void brk_job_done(struct rc_shard *s, struct job_post *j);

#ifdef __cplusplus
}
#endif

#endif
