/* history.c - event ids, the per-topic history ring and the resume seam (see
 * history.h for the contracts and the reasoning behind the seam). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "ringcast/history.h"

/* ---- event ids ---------------------------------------------------------------------------- */

#define EPOCH_DIGITS_MAX (RC_EPOCH_MAX - 1)
#define SEQ_DIGITS_MAX 20 /* UINT64_MAX has 20 decimal digits */

static bool is_b36(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

static int bad_id(struct rc_err *err, const char *what)
{
    if (err)
        rc_err_set(err, 400, "bad_event_id",
                   "%s; use the id of an event you received (<epoch>-<seq>, like \"t3k9x2-42\")",
                   what);
    return -EINVAL;
}

int rc_event_id_parse(const char *s, size_t n, char *epoch, size_t cap, uint64_t *seq,
                      struct rc_err *err)
{
    if (n == 0)
        return bad_id(err, "event id is empty");
    if (n >= RC_EVENT_ID_MAX)
        return bad_id(err, "event id is longer than 47 bytes");
    size_t e = 0;
    while (e < n && is_b36(s[e]))
        e++;
    if (e == 0 || e == n || s[e] != '-')
        return bad_id(err, "event id does not start with a base-36 epoch and '-'");
    if (e > EPOCH_DIGITS_MAX)
        return bad_id(err, "event id epoch has more than 15 digits");
    if (cap <= e)
        return bad_id(err, "event id epoch does not fit the caller's buffer");
    const char *d = s + e + 1;
    size_t nd = n - e - 1;
    if (nd > 0 && d[0] == 'b')
        return bad_id(err, "event id is a broadcast's, which cannot be resumed from");
    if (nd == 0)
        return bad_id(err, "event id has no sequence number after '-'");
    if (nd > SEQ_DIGITS_MAX)
        return bad_id(err, "event id sequence number is too large");
    if (nd > 1 && d[0] == '0')
        return bad_id(err, "event id sequence number has a leading zero");
    uint64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9')
            return bad_id(err, "event id sequence number is not decimal digits");
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(d[i] - '0'), &v))
            return bad_id(err, "event id sequence number is too large");
    }
    memcpy(epoch, s, e);
    epoch[e] = '\0';
    *seq = v;
    return 0;
}

int rc_event_id_format(char out[RC_EVENT_ID_MAX], const char *epoch, uint64_t seq)
{
    size_t e = strlen(epoch);
    if (e == 0 || e > EPOCH_DIGITS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < e; i++)
        if (!is_b36(epoch[i]))
            return -EINVAL;
    return snprintf(out, RC_EVENT_ID_MAX, "%s-%llu", epoch, (unsigned long long)seq);
}

int rc_event_cursor(const char *s, size_t n, const char *cur_epoch, uint64_t *after_seq,
                    struct rc_err *err)
{
    char epoch[RC_EPOCH_MAX];
    uint64_t seq;
    int rc = rc_event_id_parse(s, n, epoch, sizeof(epoch), &seq, err);
    if (rc < 0)
        return rc;
    if (strcmp(epoch, cur_epoch) != 0)
        return -ESTALE;
    *after_seq = seq;
    return 0;
}

/* ---- stream ids ----------------------------------------------------------------------------- */

ssize_t rc_stream_id_format(char *out, size_t cap, const struct rc_stream_pos *pos, size_t n)
{
    size_t len = 0;
    if (cap == 0)
        return -ENOSPC;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < RC_STREAM_TOPICS_MAX; i++) {
        if (!pos[i].id[0])
            continue;
        int w = snprintf(out + len, cap - len, "%s%zu:%s", len ? "," : "", i, pos[i].id);
        if (w < 0 || (size_t)w >= cap - len) {
            out[len] = '\0';
            return -ENOSPC;
        }
        len += (size_t)w;
    }
    return (ssize_t)len;
}

static int bad_stream_id(struct rc_err *err, const char *what, size_t entry)
{
    if (err)
        rc_err_set(err, 400, "bad_event_id",
                   "Last-Event-ID entry %zu %s; it must be the id of a record this stream sent "
                   "(\"<topic index>:<event id>,...\"); the stream continues from now",
                   entry + 1, what);
    return -EINVAL;
}

int rc_stream_id_parse(const char *s, size_t len, struct rc_stream_pos *pos, size_t n,
                       struct rc_err *err)
{
    if (len >= RC_STREAM_ID_MAX) {
        if (err)
            rc_err_set(err, 400, "bad_event_id",
                       "Last-Event-ID is longer than %d bytes; the stream continues from now",
                       RC_STREAM_ID_MAX - 1);
        return -EINVAL;
    }
    if (len == 0)
        return bad_stream_id(err, "is empty", 0);
    uint64_t seen = 0; /* bit i: index i was listed (n <= 64) */
    size_t entry = 0;
    for (size_t at = 0; at <= len; entry++) {
        const char *e = s + at;
        const char *comma = memchr(e, ',', len - at);
        size_t elen = comma ? (size_t)(comma - e) : len - at;
        size_t d = 0, idx = 0;
        while (d < elen && d < 3 && e[d] >= '0' && e[d] <= '9')
            idx = idx * 10 + (size_t)(e[d++] - '0');
        if (d == 0 || d >= elen || e[d] != ':')
            return bad_stream_id(err, "does not start with a topic index and ':'", entry);
        if (idx >= n || idx >= RC_STREAM_TOPICS_MAX)
            return bad_stream_id(err, "names a topic index this stream does not have", entry);
        if (seen & (1ull << idx))
            return bad_stream_id(err, "repeats a topic index", entry);
        seen |= 1ull << idx;
        char epoch[RC_EPOCH_MAX];
        uint64_t seq;
        if (rc_event_id_parse(e + d + 1, elen - d - 1, epoch, sizeof(epoch), &seq, NULL) < 0)
            return bad_stream_id(err, "has no valid event id after ':'", entry);
        memcpy(pos[idx].id, e + d + 1, elen - d - 1);
        pos[idx].id[elen - d - 1] = '\0';
        at += elen + 1;
        if (!comma)
            break;
    }
    return 0;
}

/* ---- history ring --------------------------------------------------------------------------- */

int rc_history_init(struct rc_history *h, const struct rc_history_cfg *cfg)
{
    memset(h, 0, sizeof(*h));
    if (cfg->size > RC_HISTORY_SIZE_MAX)
        return -EINVAL;
    if (cfg->size) {
        h->ring = calloc(cfg->size, sizeof(*h->ring));
        if (!h->ring)
            return -ENOMEM;
    }
    h->size = cfg->size;
    h->ttl_ms = cfg->ttl_ms;
    h->retain = cfg->retain;
    return 0;
}

/* Drop the oldest ring entry. */
static void drop_oldest(struct rc_history *h)
{
    struct rc_history_entry *o = &h->ring[h->head];
    h->dropped = o->seq;
    h->bytes -= o->ev->ws_len + o->ev->sse_len;
    rc_evbuf_unref(o->ev);
    o->ev = NULL;
    h->head = h->head + 1 == h->size ? 0 : h->head + 1;
    h->len--;
}

void rc_history_fini(struct rc_history *h)
{
    while (h->len)
        drop_oldest(h);
    if (h->latest.ev)
        rc_evbuf_unref(h->latest.ev);
    free(h->ring);
    memset(h, 0, sizeof(*h));
}

size_t rc_history_trim(struct rc_history *h, uint64_t now_ms)
{
    size_t n = 0;
    if (!h->ttl_ms)
        return 0;
    /* a clock that went back (now < at) counts as age 0, never as expired */
    while (h->len && now_ms > h->ring[h->head].at_ms &&
           now_ms - h->ring[h->head].at_ms > h->ttl_ms) {
        drop_oldest(h);
        n++;
    }
    return n;
}

int rc_history_append(struct rc_history *h, uint64_t seq, struct rc_evbuf *ev, uint64_t now_ms)
{
    if (seq != h->seq + 1 || !ev)
        return -EINVAL;
    h->seq = seq;
    if (h->retain) {
        rc_evbuf_ref(ev);
        if (h->latest.ev)
            rc_evbuf_unref(h->latest.ev);
        h->latest = (struct rc_history_entry){seq, ev, now_ms};
    }
    if (!h->size) {
        h->dropped = seq; /* not kept: a cursor before it is a gap */
        return 0;
    }
    rc_history_trim(h, now_ms);
    if (h->len == h->size)
        drop_oldest(h);
    uint32_t tail = h->head + h->len;
    if (tail >= h->size)
        tail -= h->size;
    rc_evbuf_ref(ev);
    h->ring[tail] = (struct rc_history_entry){seq, ev, now_ms};
    h->len++;
    h->bytes += ev->ws_len + ev->sse_len;
    return 0;
}

enum rc_history_result rc_history_since(struct rc_history *h, uint64_t after_seq, uint64_t now_ms,
                                        rc_history_fn cb, void *ctx, uint64_t *cur_seq)
{
    rc_history_trim(h, now_ms);
    if (cur_seq)
        *cur_seq = h->seq;
    if (after_seq > h->seq)
        return RC_HISTORY_FUTURE;
    if (after_seq < h->dropped)
        return RC_HISTORY_GAP;
    /* seqs in the ring are contiguous: (dropped, seq]; skip straight to after_seq + 1 */
    uint32_t skip = h->len ? (uint32_t)(after_seq - h->dropped) : 0;
    for (uint32_t i = skip; i < h->len; i++) {
        uint32_t k = h->head + i;
        if (k >= h->size)
            k -= h->size;
        const struct rc_history_entry *en = &h->ring[k];
        if (cb(ctx, en->seq, en->ev, en->at_ms) != 0)
            break;
    }
    return RC_HISTORY_OK;
}

struct rc_evbuf *rc_history_latest(const struct rc_history *h, uint64_t *seq)
{
    if (seq)
        *seq = h->latest.ev ? h->latest.seq : 0;
    return h->latest.ev;
}

struct items_ctx {
    struct rc_resume_item *out;
    size_t cap, n;
};

static int take_item(void *ctx, uint64_t seq, struct rc_evbuf *ev, uint64_t at_ms)
{
    (void)at_ms;
    struct items_ctx *c = ctx;
    if (c->n == c->cap)
        return 1;
    rc_evbuf_ref(ev);
    c->out[c->n++] = (struct rc_resume_item){seq, ev};
    return 0;
}

enum rc_history_result rc_history_items_since(struct rc_history *h, uint64_t after_seq,
                                              uint64_t now_ms, struct rc_resume_item *out,
                                              size_t cap, size_t *n, uint64_t *cur_seq)
{
    struct items_ctx c = {out, cap, 0};
    enum rc_history_result res = rc_history_since(h, after_seq, now_ms, take_item, &c, cur_seq);
    *n = c.n;
    return res;
}

void rc_resume_items_release(struct rc_resume_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rc_evbuf_unref(items[i].ev);
        items[i].ev = NULL;
    }
}

/* ---- resume seam ------------------------------------------------------------------------------
 */

#define BUF_START 32u
#define MARKS_START 16u

int rc_resume_init(struct rc_resume *r, const struct rc_resume_cfg *cfg, rc_resume_fn emit,
                   void *ctx)
{
    memset(r, 0, sizeof(*r));
    if (cfg->answers == 0 || cfg->buffer_max > RC_RESUME_BUFFER_MAX || !emit)
        return -EINVAL;
    if (cfg->mode != RC_RESUME_SINCE && cfg->mode != RC_RESUME_INITIAL)
        return -EINVAL;
    if (cfg->mode == RC_RESUME_SINCE && cfg->answers != 1)
        return -EINVAL;
    r->state = RC_RESUME_WAITING;
    r->mode = cfg->mode;
    r->seqs = cfg->seqs;
    r->answers_left = cfg->answers;
    r->buffer_max = cfg->buffer_max ? cfg->buffer_max : RC_RESUME_BUFFER_DEFAULT;
    r->initial_max = cfg->initial_max ? cfg->initial_max : RC_RESUME_INITIAL_DEFAULT;
    r->last = cfg->after_seq;
    r->emit = emit;
    r->ctx = ctx;
    return 0;
}

static void drop_buffer(struct rc_resume *r)
{
    for (uint32_t i = 0; i < r->nbuf; i++)
        rc_evbuf_unref(r->buf[i].ev);
    r->nbuf = 0;
    free(r->buf);
    r->buf = NULL;
    r->buf_cap = 0;
}

void rc_resume_fini(struct rc_resume *r)
{
    drop_buffer(r);
    free(r->marks);
    r->marks = NULL;
    r->nmarks = r->marks_cap = 0;
}

static void out(struct rc_resume *r, enum rc_resume_out_kind kind, enum rc_resume_gap reason,
                uint64_t seq, struct rc_evbuf *ev)
{
    struct rc_resume_out o = {kind, reason, seq, ev};
    r->emit(r->ctx, &o);
}

static void gap(struct rc_resume *r, enum rc_resume_gap reason)
{
    r->failed = true;
    out(r, RC_RESUME_OUT_GAP, reason, r->last, NULL);
}

/* SINCE: emit a live event in order: drop duplicates, report a hole. */
static void since_live(struct rc_resume *r, uint64_t seq, struct rc_evbuf *ev)
{
    if (seq <= r->last) {
        r->dups++;
        return;
    }
    if (r->seqs == RC_RESUME_EVERY_SEQ && seq != r->last + 1)
        gap(r, RC_RESUME_GAP_HOLE);
    r->last = seq;
    out(r, RC_RESUME_OUT_LIVE, RC_RESUME_GAP_NONE, seq, ev);
}

static bool buf_grow(struct rc_resume *r)
{
    uint32_t cap = r->buf_cap ? r->buf_cap * 2 : BUF_START;
    if (cap > r->buffer_max)
        cap = r->buffer_max;
    struct rc_resume_live_ent *nb = realloc(r->buf, cap * sizeof(*nb));
    if (!nb)
        return false;
    r->buf = nb;
    r->buf_cap = cap;
    return true;
}

static void caught_up(struct rc_resume *r, uint64_t s)
{
    r->state = RC_RESUME_PASSING;
    out(r, RC_RESUME_OUT_CAUGHT_UP, RC_RESUME_GAP_NONE, s, NULL);
}

int rc_resume_live(struct rc_resume *r, uint64_t seq, struct rc_evbuf *ev)
{
    if (r->state == RC_RESUME_PASSING) {
        if (r->mode == RC_RESUME_SINCE)
            since_live(r, seq, ev);
        else
            out(r, RC_RESUME_OUT_LIVE, RC_RESUME_GAP_NONE, seq, ev);
        return 0;
    }
    if (r->nbuf == r->buf_cap && (r->buf_cap == r->buffer_max || !buf_grow(r))) {
        /* give up on the replay: the client is told, then gets live events */
        drop_buffer(r);
        gap(r, RC_RESUME_GAP_OVERFLOW);
        caught_up(r, 0);
        r->last = seq;
        out(r, RC_RESUME_OUT_LIVE, RC_RESUME_GAP_NONE, seq, ev);
        return -ENOBUFS;
    }
    rc_evbuf_ref(ev);
    r->buf[r->nbuf++] = (struct rc_resume_live_ent){seq, ev};
    return 0;
}

static enum rc_resume_gap gap_of(enum rc_history_result res)
{
    return res == RC_HISTORY_FUTURE ? RC_RESUME_GAP_FUTURE : RC_RESUME_GAP_TOO_OLD;
}

int rc_resume_answer(struct rc_resume *r, enum rc_history_result res,
                     const struct rc_resume_item *items, size_t n, uint64_t cur_seq)
{
    if (r->state != RC_RESUME_WAITING || r->mode != RC_RESUME_SINCE)
        return -EALREADY;
    r->answers_left = 0;
    if (res != RC_HISTORY_OK) {
        gap(r, gap_of(res));
        r->last = cur_seq;
    } else {
        for (size_t i = 0; i < n; i++) {
            /* the owner's ring is contiguous: anything else is a bug there */
            if (items[i].seq <= r->last)
                continue;
            if (items[i].seq != r->last + 1)
                gap(r, RC_RESUME_GAP_HOLE);
            r->last = items[i].seq;
            out(r, RC_RESUME_OUT_REPLAY, RC_RESUME_GAP_NONE, items[i].seq, items[i].ev);
        }
        if (r->last < cur_seq) {
            gap(r, RC_RESUME_GAP_HOLE);
            r->last = cur_seq;
        }
    }
    /* buffered live events: those <= S were in the replay (or before the gap) */
    for (uint32_t i = 0; i < r->nbuf; i++)
        since_live(r, r->buf[i].seq, r->buf[i].ev);
    drop_buffer(r);
    caught_up(r, cur_seq);
    return 0;
}

/* ---- include_initial marks: open addressing on the topic hash ----------------------------------
 */

static uint64_t topic_hash(const struct rc_evbuf *ev)
{
    uint64_t h = ev->topic ? XXH3_64bits(ev->topic, ev->topic_len) : 0;
    return h ? h : 1; /* 0 marks a free slot */
}

static struct rc_resume_mark *mark_find(struct rc_resume *r, uint64_t th)
{
    if (!r->marks_cap)
        return NULL;
    uint32_t mask = r->marks_cap - 1;
    for (uint32_t k = (uint32_t)th & mask;; k = (k + 1) & mask) {
        if (r->marks[k].topic_hash == th)
            return &r->marks[k];
        if (r->marks[k].topic_hash == 0)
            return NULL;
    }
}

static bool marks_grow(struct rc_resume *r)
{
    uint32_t cap = r->marks_cap ? r->marks_cap * 2 : MARKS_START;
    struct rc_resume_mark *nm = calloc(cap, sizeof(*nm));
    if (!nm)
        return false;
    for (uint32_t i = 0; i < r->marks_cap; i++) {
        if (!r->marks[i].topic_hash)
            continue;
        uint32_t k = (uint32_t)r->marks[i].topic_hash & (cap - 1);
        while (nm[k].topic_hash)
            k = (k + 1) & (cap - 1);
        nm[k] = r->marks[i];
    }
    free(r->marks);
    r->marks = nm;
    r->marks_cap = cap;
    return true;
}

/* Remember S of a topic; false when initial_max is reached or memory is out. */
static bool mark_add(struct rc_resume *r, uint64_t th, uint64_t seq)
{
    struct rc_resume_mark *m = mark_find(r, th);
    if (m) {
        if (seq > m->seq) {
            m->seq = seq;
            m->next = seq + 1;
        }
        return true;
    }
    if (r->nmarks >= r->initial_max)
        return false;
    if ((r->nmarks + 1) * 2 > r->marks_cap && !marks_grow(r))
        return false;
    uint32_t mask = r->marks_cap - 1;
    uint32_t k = (uint32_t)th & mask;
    while (r->marks[k].topic_hash)
        k = (k + 1) & mask;
    r->marks[k] = (struct rc_resume_mark){th, seq, seq + 1};
    r->nmarks++;
    return true;
}

/* INITIAL: emit a buffered live event unless its topic's initial covered it. */
static void initial_flush_one(struct rc_resume *r, uint64_t seq, struct rc_evbuf *ev)
{
    struct rc_resume_mark *m = mark_find(r, topic_hash(ev));
    if (m) {
        if (seq <= m->seq) {
            r->dups++;
            return;
        }
        if (r->seqs == RC_RESUME_EVERY_SEQ && seq != m->next)
            gap(r, RC_RESUME_GAP_HOLE);
        m->next = seq + 1;
    }
    out(r, RC_RESUME_OUT_LIVE, RC_RESUME_GAP_NONE, seq, ev);
}

int rc_resume_initial(struct rc_resume *r, const struct rc_resume_item *items, size_t n)
{
    if (r->state != RC_RESUME_WAITING || r->mode != RC_RESUME_INITIAL)
        return -EALREADY;
    for (size_t i = 0; i < n; i++) {
        if (!mark_add(r, topic_hash(items[i].ev), items[i].seq)) {
            /* without a mark its duplicates could not be told: skip the event */
            if (!r->too_many)
                gap(r, RC_RESUME_GAP_TOO_MANY);
            r->too_many = true;
            continue;
        }
        out(r, RC_RESUME_OUT_INITIAL, RC_RESUME_GAP_NONE, items[i].seq, items[i].ev);
    }
    if (--r->answers_left > 0)
        return 0;
    for (uint32_t i = 0; i < r->nbuf; i++)
        initial_flush_one(r, r->buf[i].seq, r->buf[i].ev);
    drop_buffer(r);
    free(r->marks);
    r->marks = NULL;
    r->nmarks = r->marks_cap = 0;
    caught_up(r, 0);
    return 0;
}
