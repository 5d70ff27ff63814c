/* history.h - per-topic event history and retained latest event (owner
 * shard), event ids, and the resume seam (subscriber shard).
 *
 * History (struct rc_history)
 * Owner: the topic's owner shard; embedded in its per-topic state, used only
 *   by that thread. It also keeps the topic's sequence number: seq is the
 *   last one appended (0 = none yet), so `since` can be answered even when
 *   nothing is retained.
 * Contents: a ring of the last `size` events (seq, evbuf reference, publish
 *   time), each dropped when pushed out or older than `ttl_ms` (0 = no age
 *   limit); plus, when `retain` is set, the latest event whatever size and
 *   ttl say (the topic's current state, for include_initial).
 * Invariants: ring seqs are strictly increasing and contiguous (append
 *   requires seq == rc_history_seq() + 1); every seq <= `dropped` has left
 *   the ring, every seq in (dropped, seq] is in it. A cursor after_seq is
 *   therefore servable iff dropped <= after_seq <= seq.
 * Lifetime: rc_history_init allocates the ring (nothing when size is 0);
 *   rc_history_fini drops every reference. The ring holds one evbuf reference
 *   per entry, the retained latest one more.
 *
 * Event ids: "<epoch>-<seq>": epoch names one incarnation of the topic (base
 *   36, lower case, 1..15 digits; broker.c gives each newly created topic
 *   state a fresh one, so a restart or an evicted and recreated topic never
 *   reuses it), seq decimal without leading zeros (0 = before the first
 *   event). RC_EPOCH_NONE ("0") is the epoch of a topic with no state (the
 *   history API's last_id). Broadcast ids ("<epoch>-b<shard>-<n>") are not
 *   resumable.
 *
 * Resume seam (struct rc_resume)
 * Owner: the shard of the subscribing connection; one per subscription that
 *   resumes (`since`) or asks for initial state (include_initial), from
 *   subscribe until caught up.
 * Flow: the subscription is put in the trie first, then the request is
 *   posted to the owner(s): that order is what guarantees every event after
 *   S reaches the seam. The broker feeds each live event to rc_resume_live().
 *   Answers go to rc_resume_answer() (since) or rc_resume_initial()
 *   (include_initial, one call per owner asked). While answers are missing,
 *   live events are buffered (with a reference), up to cfg.buffer_max
 *   (default RC_RESUME_BUFFER_DEFAULT). Output, in order, through one
 *   callback: replayed events (or each owner's initial events as its answer
 *   comes), then, once every answer is in, the buffered live events that are
 *   not duplicates, then CAUGHT_UP (exactly once), then live events as they
 *   come. After CAUGHT_UP the caller may keep the seam (SINCE keeps dropping
 *   duplicates and reporting holes) or fini it and deliver directly.
 * Scope: SINCE is for one topic (an exact pattern): seqs are per topic.
 *   INITIAL tells topics apart by XXH3_64bits of ev->topic (a 64-bit
 *   collision is ignored) and, once passing, checks nothing: each owner
 *   posts its topics' events after its answer, so they are all newer.
 * Why buffering is needed at all: with one owner posting both the events and
 *   the answer, inbox FIFO order already puts every live event before the
 *   answer at seq <= S; buffered ones are then all dropped as duplicates. The
 *   seam does not rely on it, so an answer from another thread (a store, a
 *   cluster bridge) or from several owners stays exact.
 * Gaps: a GAP output (with a reason) tells the client it missed events and
 *   should refetch state; live events continue after it. Causes: the cursor is
 *   older than the history (or of another run), beyond it, the buffer
 *   overflowed (then buffered events are dropped and a late answer ignored),
 *   or a hole between S and the next live event (a bug by design, checked
 *   in RC_RESUME_EVERY_SEQ mode only: a filtered subscription sees a subset).
 * Re-entrancy: the callback must not call rc_resume_fini or feed the same
 *   seam; mark the subscription and finish it after the call returns.
 * Allocation: the live buffer grows by doubling from 32 entries up to its
 *   cap (amortised, never per event); include_initial marks likewise. */
#ifndef RINGCAST_HISTORY_H
#define RINGCAST_HISTORY_H

#include <stdbool.h>
#include <string.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringcast/common.h"
#include "ringcast/evbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- event ids ------------------------------------------------------------------------ */

#define RC_EPOCH_MAX 16   /* base-36 epoch digits + NUL (shard.h epoch_str) */
#define RC_EPOCH_NONE "0" /* the epoch of a topic that has no state */

/* Parse an event id "<epoch>-<seq>" of n bytes (not NUL-terminated) into
 * epoch (NUL-terminated, cap >= RC_EPOCH_MAX) and *seq. 0, or -EINVAL with
 * err (status 400, code "bad_event_id") saying what was wrong. */
int rc_event_id_parse(const char *s, size_t n, char *epoch, size_t cap, uint64_t *seq,
                      struct rc_err *err) RC_MUST_CHECK;

/* Whether event id `id` ("<epoch>-<seq>") is of epoch. */
static inline bool rc_event_id_of_epoch(const char *id, const char *epoch)
{
    size_t n = strlen(epoch);
    return strncmp(id, epoch, n) == 0 && id[n] == '-';
}

/* Write "<epoch>-<seq>" into out; returns its length, or -EINVAL when epoch is
 * not 1..15 base-36 digits. */
int rc_event_id_format(char out[RC_EVENT_ID_MAX], const char *epoch, uint64_t seq);

/* Turn a client's cursor (since / Last-Event-ID) into an after_seq for the
 * topic's incarnation: 0 and *after_seq set when the id's epoch is cur_epoch;
 * -ESTALE when it is another's (an earlier run, or the topic was evicted:
 * answer it as RC_HISTORY_GAP); -EINVAL with err (may be NULL) when it is not
 * an event id. */
int rc_event_cursor(const char *s, size_t n, const char *cur_epoch, uint64_t *after_seq,
                    struct rc_err *err) RC_MUST_CHECK;

/* ---- stream ids (SSE streams of several topics) ----------------------------------------- */

/* An SSE stream of several topics resumes every exact topic of it from one
 * Last-Event-ID: the record id lists, per topic of the stream (its index in
 * the stream's query, 0-based), the id of the last event of that topic the
 * stream sent or the topic's position when the stream started:
 *   "<i>:<epoch>-<seq>,<i>:<epoch>-<seq>,..."  (indexes ascending, no blanks)
 * At most RC_STREAM_TOPICS_MAX entries, so at most RC_STREAM_ID_MAX - 1 bytes. */
#define RC_STREAM_TOPICS_MAX 64
#define RC_STREAM_ID_MAX (RC_STREAM_TOPICS_MAX * (2 + 1 + RC_EVENT_ID_MAX) + 1)

/* One topic's position in a stream id; id[0] == '\0' = not known. */
struct rc_stream_pos {
    char id[RC_EVENT_ID_MAX];
};

/* Write the stream id of pos[0..n) (n <= RC_STREAM_TOPICS_MAX) into out
 * (cap >= RC_STREAM_ID_MAX is always enough); returns its length (0 when no
 * position is known), or -ENOSPC when it does not fit cap. */
ssize_t rc_stream_id_format(char *out, size_t cap, const struct rc_stream_pos *pos, size_t n);

/* Parse a stream id of len bytes into pos[0..n) (entries it does not list are
 * left alone). 0, or -EINVAL with err (status 400, code "bad_event_id") saying
 * what was wrong: too long, an index that is not a decimal below n, an entry
 * that is not "<i>:<event id>", a repeated index. */
int rc_stream_id_parse(const char *s, size_t len, struct rc_stream_pos *pos, size_t n,
                       struct rc_err *err) RC_MUST_CHECK;

/* ---- history (owner shard) ------------------------------------------------------------ */

#define RC_HISTORY_SIZE_MAX 65536u /* config must refuse history_size above this */

struct rc_history_cfg {
    uint32_t size;   /* events kept, 0..RC_HISTORY_SIZE_MAX; 0 = no history */
    uint64_t ttl_ms; /* max age of a kept event; 0 = no age limit */
    bool retain;     /* keep the latest event regardless of size and ttl */
};

struct rc_history_entry {
    uint64_t seq;
    struct rc_evbuf *ev;
    uint64_t at_ms; /* publish time (the clock of rc_history_append's now_ms) */
};

struct rc_history {
    struct rc_history_entry *ring; /* size entries, NULL when size is 0 */
    uint32_t size;
    uint32_t head; /* index of the oldest entry */
    uint32_t len;  /* entries in use */
    uint64_t ttl_ms;
    bool retain;
    uint64_t seq;     /* last seq appended: the topic's current seq */
    uint64_t dropped; /* highest seq no longer in the ring (0 = none) */
    size_t bytes;     /* wire images (WebSocket + SSE) of the ring's events, for /metrics;
                         the retained latest event counts only while it is in the ring */
    struct rc_history_entry latest; /* retained latest event (ev NULL = none) */
};

enum rc_history_result {
    RC_HISTORY_OK,     /* every event after the cursor was passed to the callback */
    RC_HISTORY_GAP,    /* events after the cursor are no longer kept */
    RC_HISTORY_FUTURE, /* the cursor is beyond the current seq (another run, or forged) */
};

/* Called in seq order; return 0 to continue, anything else to stop (the
 * result is still RC_HISTORY_OK). ev is borrowed: take a reference to keep it. */
typedef int (*rc_history_fn)(void *ctx, uint64_t seq, struct rc_evbuf *ev, uint64_t at_ms);

/* 0, -EINVAL (size > RC_HISTORY_SIZE_MAX) or -ENOMEM. */
int rc_history_init(struct rc_history *h, const struct rc_history_cfg *cfg) RC_MUST_CHECK;
void rc_history_fini(struct rc_history *h);

/* Record the event just published with seq (must be rc_history_seq(h) + 1,
 * else -EINVAL and nothing is taken). Takes its own references (ring, latest)
 * as needed; the caller keeps its own. Drops what falls out. 0 or -EINVAL. */
int rc_history_append(struct rc_history *h, uint64_t seq, struct rc_evbuf *ev,
                      uint64_t now_ms) RC_MUST_CHECK;

/* Drop ring entries older than ttl_ms (now_ms - at_ms > ttl_ms). Returns the
 * number dropped. Cheap when nothing expired; call it from a periodic timer
 * so idle topics release memory, since and append call it too. */
size_t rc_history_trim(struct rc_history *h, uint64_t now_ms);

/* Events after after_seq: trims, then classifies the cursor; on OK calls cb
 * for every kept event with seq > after_seq, in order (none when after_seq is
 * the current seq). *cur_seq (may be NULL) gets the current seq in every case:
 * that is S of the resume answer. */
enum rc_history_result rc_history_since(struct rc_history *h, uint64_t after_seq, uint64_t now_ms,
                                        rc_history_fn cb, void *ctx, uint64_t *cur_seq);

/* The retained latest event (borrowed) and its seq, or NULL when retain is off
 * or nothing was published. Not subject to ttl. */
struct rc_evbuf *rc_history_latest(const struct rc_history *h, uint64_t *seq);

static inline uint64_t rc_history_seq(const struct rc_history *h)
{
    return h->seq;
}

/* Events currently kept in the ring (after trimming at the last call). */
static inline uint32_t rc_history_len(const struct rc_history *h)
{
    return h->len;
}

/* The oldest seq a cursor may name (everything after it is kept): for a
 * since-less GET of the last `limit` events use max(this, seq - limit). */
static inline uint64_t rc_history_floor(const struct rc_history *h)
{
    return h->dropped;
}

/* ---- resume seam (subscriber shard) --------------------------------------------------- */

#define RC_RESUME_BUFFER_DEFAULT 4096u /* live events held while waiting (64 KiB) */
#define RC_RESUME_BUFFER_MAX 65536u
#define RC_RESUME_INITIAL_DEFAULT 1024u /* retained topics one include_initial may get */

enum rc_resume_mode {
    RC_RESUME_SINCE,   /* replay (after_seq, S] of one topic from its owner */
    RC_RESUME_INITIAL, /* the retained latest event of each matching topic */
};

/* Which live events reach the seam: all of the topic's (no filter: a seq hole
 * is a gap) or a subset (a filter: holes are expected, only order is checked). */
enum rc_resume_seqs {
    RC_RESUME_EVERY_SEQ,
    RC_RESUME_SUBSET,
};

enum rc_resume_out_kind {
    RC_RESUME_OUT_REPLAY,    /* a history event (SINCE); apply the filter yourself */
    RC_RESUME_OUT_INITIAL,   /* a retained latest event (INITIAL); apply the filter */
    RC_RESUME_OUT_LIVE,      /* a live event (already matched by the trie) */
    RC_RESUME_OUT_GAP,       /* events were missed; see reason */
    RC_RESUME_OUT_CAUGHT_UP, /* replay/initial done; live from here (once) */
};

enum rc_resume_gap {
    RC_RESUME_GAP_NONE,
    RC_RESUME_GAP_TOO_OLD,  /* the cursor is older than the history (or another run's) */
    RC_RESUME_GAP_FUTURE,   /* the cursor is beyond the topic's current seq */
    RC_RESUME_GAP_OVERFLOW, /* more live events than buffer_max before the answer */
    RC_RESUME_GAP_HOLE,     /* a seq went missing between replay and live (a bug) */
    RC_RESUME_GAP_TOO_MANY, /* include_initial: more than initial_max retained topics */
};

/* One output. ev is borrowed for the call (NULL for GAP and CAUGHT_UP); take
 * a reference to queue it. seq is the event's seq (GAP: the last seq emitted
 * before it, CAUGHT_UP: the answer's S, or 0 for include_initial). */
struct rc_resume_out {
    enum rc_resume_out_kind kind;
    enum rc_resume_gap reason;
    uint64_t seq;
    struct rc_evbuf *ev;
};

typedef void (*rc_resume_fn)(void *ctx, const struct rc_resume_out *out);

struct rc_resume_cfg {
    enum rc_resume_mode mode;
    enum rc_resume_seqs seqs;
    uint64_t after_seq;   /* SINCE: the client's cursor */
    uint32_t answers;     /* answers to wait for: 1 for SINCE, owners asked for INITIAL */
    uint32_t buffer_max;  /* 0 = RC_RESUME_BUFFER_DEFAULT; at most RC_RESUME_BUFFER_MAX */
    uint32_t initial_max; /* 0 = RC_RESUME_INITIAL_DEFAULT */
};

/* An event of an answer: SINCE, the replayed (after_seq, S]; INITIAL, one
 * retained latest event per topic (ev->topic names it). */
struct rc_resume_item {
    uint64_t seq;
    struct rc_evbuf *ev;
};

/* Owner side of a SINCE answer: rc_history_since into out[] (cap entries,
 * rc_history_len(h) is always enough), taking one reference per item so the
 * answer can cross to the subscriber's shard. *n gets the count; past cap the
 * rest is left out (the seam then reports a hole). Release with
 * rc_resume_items_release on whichever thread ends up holding them. */
enum rc_history_result rc_history_items_since(struct rc_history *h, uint64_t after_seq,
                                              uint64_t now_ms, struct rc_resume_item *out,
                                              size_t cap, size_t *n, uint64_t *cur_seq);
void rc_resume_items_release(struct rc_resume_item *items, size_t n);

struct rc_resume_live_ent {
    uint64_t seq;
    struct rc_evbuf *ev;
};

struct rc_resume_mark {
    uint64_t topic_hash; /* XXH3_64bits of the topic; 0 = free slot */
    uint64_t seq;        /* S of that topic: live events <= seq are duplicates */
    uint64_t next;       /* EVERY_SEQ: the seq the next live event must have */
};

enum rc_resume_state {
    RC_RESUME_WAITING, /* answers missing: live events are buffered */
    RC_RESUME_PASSING, /* caught up (or gave up): live events go straight out */
};

struct rc_resume {
    enum rc_resume_state state;
    enum rc_resume_mode mode;
    enum rc_resume_seqs seqs;
    uint32_t answers_left;
    uint32_t buffer_max, initial_max;
    bool failed;   /* a GAP was emitted */
    bool too_many; /* INITIAL: the TOO_MANY gap was emitted */
    uint64_t last; /* SINCE: last seq emitted */
    rc_resume_fn emit;
    void *ctx;
    struct rc_resume_live_ent *buf;
    uint32_t nbuf, buf_cap;
    struct rc_resume_mark *marks; /* INITIAL: open addressing on topic_hash */
    uint32_t nmarks, marks_cap;
    uint64_t dups; /* live events dropped as duplicates (for stats and tests) */
    /* broker = redis: the history read can be ahead of this node's live
     * stream, so once caught up the seam lingers, dropping live events at or
     * below `last` of linger_epoch, until one beyond it arrives */
    bool linger;
    char linger_epoch[RC_EPOCH_MAX];
};

/* 0 or -EINVAL (answers 0, buffer_max above RC_RESUME_BUFFER_MAX). Allocates
 * nothing yet. */
int rc_resume_init(struct rc_resume *r, const struct rc_resume_cfg *cfg, rc_resume_fn emit,
                   void *ctx) RC_MUST_CHECK;
/* Drop every buffered reference. Safe in any state. */
void rc_resume_fini(struct rc_resume *r);

static inline bool rc_resume_is_waiting(const struct rc_resume *r)
{
    return r->state == RC_RESUME_WAITING;
}

/* A live event for the subscription. Buffered (one reference taken), emitted,
 * or dropped as a duplicate. Returns 0, or -ENOBUFS when this event overflowed
 * the buffer (a GAP was emitted, the seam now passes live events) or the
 * buffer could not grow (-ENOMEM, handled the same way). */
int rc_resume_live(struct rc_resume *r, uint64_t seq, struct rc_evbuf *ev);

/* SINCE: the owner's answer: res from rc_history_since, the replayed items
 * (borrowed) and S. Emits everything due and switches to passing. -EALREADY
 * when the seam is not waiting (late answer after an overflow): nothing is
 * emitted; the caller still releases the items. */
int rc_resume_answer(struct rc_resume *r, enum rc_history_result res,
                     const struct rc_resume_item *items, size_t n, uint64_t cur_seq);

/* INITIAL: one owner's answer (items borrowed, any topic order). Initial
 * events are emitted at once; the last expected answer flushes the buffer and
 * switches to passing. -EALREADY as above. */
int rc_resume_initial(struct rc_resume *r, const struct rc_resume_item *items, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_HISTORY_H */
