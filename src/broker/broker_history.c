/* broker_history.c - history, resume ("since") and include_initial: the
 * owner shard answers from its topics' history, the origin shard feeds the
 * answer to the subscription's resume seam (see broker.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/broker.h"
#include "ringcast/filter.h"
#include "ringcast/history.h"
#include "ringcast/msg.h"
#include "ringcast/shard.h"
#include "ringcast/topic.h"
#include "ringcast/trie.h"
#include "ringcast/ws_frame.h"

#include "broker_internal.h"

/* ---- history, resume and initial state --------------------------------------------------- */

/* A history request's trip: origin -> owner (fills in the answer) -> origin.
 *   HIST_SINCE    a subscription's resume from a cursor (one owner)
 *   HIST_INITIAL  a pattern's retained events (every shard)
 *   HIST_API      GET /api/realtime/history (one owner; ticket waits) */
enum hist_kind { HIST_SINCE, HIST_INITIAL, HIST_API };

struct hist_post {
    struct rc_post post;
    bool done;
    enum hist_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char sub_id[RC_SUB_ID_LEN + 1];
    struct rc_ticket ticket; /* HIST_API: who waits for the page */
    char *topic;             /* topic (SINCE, API) or pattern (INITIAL) */
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

static void hist_run(struct rc_shard *s, struct rc_post *p);
static void hist_discard(struct rc_post *p);

static void hist_free(struct hist_post *h)
{
    rc_resume_items_release(h->items, h->nitems);
    free(h->items);
    free(h->topic);
    free(h->json);
    free(h);
}

void brk_resume_gap(struct rc_sub *sub, enum rc_resume_gap reason)
{
    struct rc_conn *c = sub->conn;
    static const char *const why[] = {
        [RC_RESUME_GAP_NONE] = "events were missed",
        [RC_RESUME_GAP_TOO_OLD] = "the cursor is older than the retained history (or from an "
                                  "earlier run of the server)",
        [RC_RESUME_GAP_FUTURE] = "the cursor is newer than the topic's last event",
        [RC_RESUME_GAP_OVERFLOW] = "too many live events arrived while replaying",
        [RC_RESUME_GAP_HOLE] = "an event went missing between replay and live delivery",
        [RC_RESUME_GAP_TOO_MANY] = "more retained topics match than include_initial sends",
    };
    char msg[300];
    snprintf(msg, sizeof(msg), "subscription %s: %s; fetch the current state again", sub->id,
             (unsigned)reason < RC_ARRAY_LEN(why) && why[reason] ? why[reason] : why[0]);
    struct rc_ticket t = brk_sub_ticket(sub, c);
    rc_conn_answer(c, &t, &(struct rc_answer){.status = 400, .code = "history_gap", .msg = msg});
}

/* An initial (retained) event: the same event object with "initial":true, so
 * it is encoded for this delivery (off the hot path). */
static void queue_initial(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev)
{
    static const char mark[] = "\"initial\":true,\"subscription\":";
    struct rc_image im = rc_event_image_plain(c, ev, sub);
    const uint8_t *body = im.p;
    size_t body_len = im.len;
    if (im.ws) {
        /* skip the shared frame header (2, 4 or 10 bytes) */
        size_t hl = body[1] == 126 ? 4 : body[1] == 127 ? 10 : 2;
        body += hl;
        body_len -= hl;
    }
    /* body ends with "\"subscription\":"; replace that key by mark */
    static const char key[] = "\"subscription\":";
    if (body_len < sizeof(key) - 1)
        return;
    size_t keep = body_len - (sizeof(key) - 1);
    size_t payload = keep + sizeof(mark) - 1 + im.suffix_len;
    uint8_t *out = malloc(payload + 10);
    if (!out)
        return;
    size_t pos = 0;
    if (im.ws)
        pos = rc_ws_frame_header(out, 1, payload, true);
    memcpy(out + pos, body, keep);
    pos += keep;
    memcpy(out + pos, mark, sizeof(mark) - 1);
    pos += sizeof(mark) - 1;
    memcpy(out + pos, im.suffix, im.suffix_len);
    pos += im.suffix_len;
    if (rc_conn_queue_owned(c, out, pos) < 0)
        return;
    if (!im.ws && c->sse_cursor) {
        /* the record's own id line moved Last-Event-ID: put the stream id back */
        if (sub->stream_slot && sub->stream_slot <= c->sse_cursor->n)
            memcpy(c->sse_cursor->pos[sub->stream_slot - 1].id, ev->id, RC_EVENT_ID_MAX);
        (void)brk_stream_id_record(c);
    }
}

static void resume_emit(void *ctx, const struct rc_resume_out *out)
{
    struct rc_sub *sub = ctx;
    struct rc_conn *c = sub->conn;
    if (!c || !rc_conn_is_open(c))
        return;
    const struct rc_filter *f = sub->handle ? rc_trie_sub_filter(sub->handle) : NULL;
    switch (out->kind) {
    case RC_RESUME_OUT_REPLAY:
        if (f && !rc_filter_eval(f, out->ev->data))
            return;
        (void)brk_queue_event(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_INITIAL:
        if (f && !rc_filter_eval(f, out->ev->data))
            return;
        queue_initial(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_LIVE:
        (void)brk_queue_event(c, sub, out->ev);
        return;
    case RC_RESUME_OUT_GAP:
        brk_resume_gap(sub, out->reason);
        return;
    case RC_RESUME_OUT_CAUGHT_UP:
        sub->resume_done = true;
        return;
    }
}

void brk_resume_finish(struct rc_sub *sub)
{
    if (!sub->resume)
        return;
    rc_resume_fini(sub->resume);
    free(sub->resume);
    sub->resume = NULL;
    sub->resume_done = false;
    brk_sub_ticket_done(sub);
}

struct rc_sub *brk_find_sub(struct rc_conn *c, const char *id)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
        if (strcmp(sub->id, id) == 0)
            return sub;
    return NULL;
}

int rc_broker_resume_check(struct rc_shard *s, const char *pattern, size_t n,
                           const struct rc_sub_opts *o, uint64_t *after, bool *stale,
                           struct rc_err *err)
{
    *after = 0;
    *stale = false;
    if (o->since && o->include_initial) {
        rc_err_set(err, 400, "bad_value",
                   "use either \"since\" (resume) or \"include_initial\" (current state), not "
                   "both");
        return -EINVAL;
    }
    if (o->include_initial && s->broker->engine == &rc_broker_redis_engine &&
        rc_topic_is_pattern(pattern, n)) {
        rc_err_set(err, 400, "bad_value",
                   "include_initial needs an exact topic with broker=redis (the retained events "
                   "of a pattern's topics are not gathered across the cluster); %.*s is a "
                   "pattern",
                   (int)n, pattern);
        return -EINVAL;
    }
    if (!o->since)
        return 0;
    if (rc_topic_is_pattern(pattern, n)) {
        rc_err_set(err, 400, "bad_value",
                   "\"since\" needs an exact topic: event ids count per topic, and %.*s is a "
                   "pattern",
                   (int)n, pattern);
        return -EINVAL;
    }
    /* only the form is checked here: the topic's owner compares the epoch
     * with the topic's incarnation (a cursor of an evicted topic or of an
     * earlier run is answered as a gap there) */
    char epoch[RC_EPOCH_MAX];
    return rc_event_id_parse(o->since, strlen(o->since), epoch, sizeof(epoch), after, err) < 0
               ? -EINVAL
               : 0;
}

int brk_resume_setup(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     uint32_t initial_answers, struct brk_resume_plan *plan, struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct rc_resume_cfg rcfg = {0};
    bool stale = false;

    memset(plan, 0, sizeof(*plan));
    plan->from_now = o->from_now && !o->since && !o->include_initial &&
                     !rc_topic_is_pattern(sub->pattern, sub->pattern_len);
    if (!o->since && !o->include_initial && !plan->from_now)
        return 0;
    if (rc_broker_resume_check(s, sub->pattern, sub->pattern_len, o, &plan->after, &stale, err) < 0)
        return -EINVAL;
    if (o->since || plan->from_now) {
        rcfg.mode = RC_RESUME_SINCE;
        rcfg.after_seq = plan->after;
        rcfg.answers = 1;
    } else {
        rcfg.mode = RC_RESUME_INITIAL;
        rcfg.answers = initial_answers;
    }
    rcfg.seqs =
        sub->handle && rc_trie_sub_filter(sub->handle) ? RC_RESUME_SUBSET : RC_RESUME_EVERY_SEQ;
    struct rc_resume *r = calloc(1, sizeof(*r));
    if (!r || rc_resume_init(r, &rcfg, resume_emit, sub) < 0) {
        free(r);
        rc_err_set(err, 503, "unavailable", "out of memory");
        return -ENOMEM;
    }
    sub->resume = r;
    if (o->ticket)
        (void)brk_sub_keep_ticket(sub, o->ticket); /* out of memory: a gap names no id */
    plan->active = true;
    plan->mode = rcfg.mode;
    if (o->since)
        snprintf(plan->cursor, sizeof(plan->cursor), "%s", o->since);
    return 0;
}

void brk_resume_failed(struct rc_sub *sub)
{
    /* the seam waits forever for this answer: give up on resuming */
    brk_resume_gap(sub, RC_RESUME_GAP_NONE);
    brk_resume_finish(sub);
}

int brk_mem_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                   struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct brk_resume_plan plan;
    if (brk_resume_setup(c, sub, o, s->srv->nshards, &plan, err) < 0)
        return -EINVAL;
    if (!plan.active)
        return 0;

    /* the subscription is already in the trie: post the request(s) now */
    unsigned first = 0, last = s->srv->nshards;
    if (plan.mode == RC_RESUME_SINCE) {
        first = rc_topic_owner(s->srv->nshards, sub->pattern, sub->pattern_len);
        last = first + 1;
    }
    for (unsigned i = first; i < last; i++) {
        struct hist_post *h = calloc(1, sizeof(*h));
        if (h)
            h->topic = strndup(sub->pattern, sub->pattern_len);
        if (!h || !h->topic) {
            free(h);
            brk_resume_failed(sub);
            return 0;
        }
        h->post.run = hist_run;
        h->post.discard = hist_discard;
        h->kind = plan.mode == RC_RESUME_SINCE ? HIST_SINCE : HIST_INITIAL;
        h->origin = s;
        h->conn_id = c->id;
        memcpy(h->sub_id, sub->id, sizeof(h->sub_id));
        h->topic_len = sub->pattern_len;
        h->after_seq = plan.after;
        h->from_now = plan.from_now;
        memcpy(h->cursor, plan.cursor, sizeof(h->cursor));
        rc_shard_post(s->srv->shards[i], &h->post);
    }
    return 0;
}

bool brk_history_since(struct rc_conn *c, const struct rc_ticket *t, const char *since,
                       uint64_t *after)
{
    struct rc_err err = {0};
    char epoch[RC_EPOCH_MAX];
    if (!since)
        return true;
    if (rc_event_id_parse(since, strlen(since), epoch, sizeof(epoch), after, &err) == 0)
        return true;
    rc_conn_answer(c, t,
                   &(struct rc_answer){.status = 400, .code = "bad_event_id", .msg = err.msg});
    return false;
}

void brk_mem_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                     const char *since, size_t limit)
{
    struct rc_shard *s = c->shard;
    uint64_t after = 0;
    bool have_since = since != NULL;
    if (!brk_history_since(c, t, since, &after))
        return;
    struct hist_post *h = calloc(1, sizeof(*h));
    if (h)
        h->topic = strndup(topic, n);
    if (!h || !h->topic) {
        free(h);
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    h->post.run = hist_run;
    h->post.discard = hist_discard;
    h->kind = HIST_API;
    h->origin = s;
    h->conn_id = c->id;
    h->ticket = *t;
    h->topic_len = n;
    h->after_seq = have_since ? after : UINT64_MAX; /* MAX: the last `limit` */
    if (since)
        snprintf(h->cursor, sizeof(h->cursor), "%s", since);
    h->limit = limit;
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv->nshards, topic, n)], &h->post);
}

static int api_item(void *ctx, uint64_t seq, struct rc_evbuf *ev, uint64_t at_ms)
{
    (void)seq, (void)at_ms;
    json_t *arr = ctx;
    /* a copy: the evbuf's data is shared with every shard */
    json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "id", ev->id, "type",
                                         ev->type ? ev->type : "message", "data",
                                         ev->data ? json_deep_copy(ev->data) : json_null()));
    return 0;
}

/* Owner shard: whether h's cursor cannot be served from t: its epoch is not
 * this incarnation's (an earlier run, or the topic was evicted and created
 * again), or t is gone and the cursor says events were seen. A cursor at seq
 * 0 of a topic that has no state ("0-0" from the history of a topic never
 * published to) has nothing to miss. */
static bool cursor_is_stale(const struct topic_state *t, const struct hist_post *h)
{
    if (!h->cursor[0])
        return false;
    if (!t)
        return h->after_seq != 0;
    uint64_t after;
    return rc_event_cursor(h->cursor, strlen(h->cursor), t->epoch, &after, NULL) != 0;
}

/* Owner shard: answer a history request. */
static void owner_history(struct rc_shard *s, struct hist_post *h)
{
    struct rc_broker *b = B(s);
    uint64_t now = rc_now_ms();
    if (h->kind == HIST_INITIAL) {
        /* every retained topic of this shard that the pattern matches */
        size_t cap = 0;
        for (size_t i = 0; i < b->topics_cap; i++) {
            struct topic_state *t = b->topics[i];
            uint64_t seq;
            struct rc_evbuf *ev = t ? rc_history_latest(&t->hist, &seq) : NULL;
            if (!ev || !rc_topic_match(h->topic, h->topic_len, t->name, t->len))
                continue;
            if (h->nitems == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct rc_resume_item *ni = realloc(h->items, ncap * sizeof(*ni));
                if (!ni)
                    break;
                h->items = ni;
                cap = ncap;
            }
            rc_evbuf_ref(ev);
            h->items[h->nitems].seq = seq;
            h->items[h->nitems].ev = ev;
            h->nitems++;
        }
        return;
    }
    struct topic_state *t = brk_topic_find(b, h->topic, h->topic_len);
    struct rc_history empty = {0};
    struct rc_history *hist = t ? &t->hist : &empty;
    if (t)
        rc_history_trim(hist, now);
    bool stale = cursor_is_stale(t, h);
    if (h->kind == HIST_SINCE) {
        h->cur_seq = rc_history_seq(hist);
        if (h->from_now) {
            h->res = RC_HISTORY_OK;
            snprintf(h->cursor, sizeof(h->cursor), "%s", t ? t->epoch : RC_EPOCH_NONE);
            return;
        }
        if (stale) {
            h->res = RC_HISTORY_GAP;
            return;
        }
        size_t cap = rc_history_len(hist);
        h->items = cap ? calloc(cap, sizeof(*h->items)) : NULL;
        h->res =
            rc_history_items_since(hist, h->after_seq, now, h->items, cap, &h->nitems, &h->cur_seq);
        return;
    }
    /* HIST_API */
    uint64_t after = h->after_seq;
    if (after == UINT64_MAX) {
        uint64_t cur = rc_history_seq(hist);
        uint64_t floor = rc_history_floor(hist);
        after = cur > h->limit ? cur - h->limit : 0;
        if (after < floor)
            after = floor;
    }
    json_t *events = json_array();
    uint64_t cur = 0;
    enum rc_history_result res = stale ? RC_HISTORY_GAP : RC_HISTORY_OK;
    if (!stale)
        res = rc_history_since(hist, after, now, api_item, events, &cur);
    cur = rc_history_seq(hist);
    while (json_array_size(events) > h->limit)
        json_array_remove(events, json_array_size(events) - 1);
    h->json =
        brk_history_page(h->topic, h->topic_len, events, t ? t->epoch : RC_EPOCH_NONE, cur, res);
    h->status = h->json ? 200 : 503;
}

char *brk_history_page(const char *topic, size_t len, json_t *events, const char *epoch,
                       uint64_t cur, enum rc_history_result res)
{
    char last[RC_EVENT_ID_MAX];
    snprintf(last, sizeof(last), "%s-%llu", epoch, (unsigned long long)cur);
    json_t *body = json_pack("{s:s%, s:o, s:s, s:b}", "topic", topic, len, "events", events,
                             "last_id", last, "gap", res != RC_HISTORY_OK);
    if (body && res == RC_HISTORY_FUTURE)
        json_object_set_new(body, "reason", json_string("cursor is newer than the last event"));
    else if (body && res == RC_HISTORY_GAP)
        json_object_set_new(body, "reason",
                            json_string("events after the cursor are no longer retained"));
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return txt;
}

/* Origin shard: the owner told a from_now subscription (an SSE stream id's
 * topic) where the topic stands. Live events buffered meanwhile were published
 * after the subscription entered the trie, so the stream starts before the
 * first of them (or at S): none is dropped as a duplicate. */
void brk_resume_from_now(struct rc_conn *c, struct rc_sub *sub, uint64_t cur_seq, const char *epoch)
{
    struct rc_resume *r = sub->resume;
    if (!rc_resume_is_waiting(r))
        return; /* gave up already (live buffer overflow): it passes live events */
    uint64_t start = cur_seq;
    if (r->nbuf && r->buf[0].seq - 1 < start)
        start = r->buf[0].seq - 1;
    r->last = start;
    rc_resume_answer(r, RC_HISTORY_OK, NULL, 0, start);
    struct rc_sse_cursor *cur = c->sse_cursor;
    if (!cur || !sub->stream_slot || sub->stream_slot > cur->n)
        return;
    struct rc_stream_pos *pos = &cur->pos[sub->stream_slot - 1];
    if (pos->id[0])
        return; /* a buffered event went out and set it */
    if (rc_event_id_format(pos->id, epoch, start) < 0)
        return;
    (void)brk_stream_id_record(c);
}

/* Origin shard: hand the answer to the waiting subscription or request. */
static void history_answer(struct rc_shard *s, struct hist_post *h)
{
    struct rc_conn *c = rc_shard_conn(s, h->conn_id);
    if (c && h->kind == HIST_API) {
        if (h->json)
            rc_conn_answer(
                c, &h->ticket,
                &(struct rc_answer){.status = h->status, .json = h->json, .len = strlen(h->json)});
        else
            rc_conn_answer(
                c, &h->ticket,
                &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    } else if (c) {
        struct rc_sub *sub = brk_find_sub(c, h->sub_id);
        if (sub && sub->resume) {
            if (h->kind == HIST_SINCE && h->from_now)
                brk_resume_from_now(c, sub, h->cur_seq, h->cursor);
            else if (h->kind == HIST_SINCE)
                rc_resume_answer(sub->resume, h->res, h->items, h->nitems, h->cur_seq);
            else
                rc_resume_initial(sub->resume, h->items, h->nitems);
            if (sub->resume_done)
                brk_resume_finish(sub);
        }
    }
    hist_free(h);
}

static void hist_run(struct rc_shard *s, struct rc_post *p)
{
    struct hist_post *h = RC_CONTAINER_OF(p, struct hist_post, post);
    if (h->done) {
        history_answer(s, h);
        return;
    }
    owner_history(s, h);
    h->done = true;
    rc_shard_post(h->origin, &h->post);
}

static void hist_discard(struct rc_post *p)
{
    hist_free(RC_CONTAINER_OF(p, struct hist_post, post));
}
