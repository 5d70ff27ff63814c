/* broker_sub.c - a shard's subscriptions and delivery: subscribe and
 * unsubscribe (the trie of this shard's connections), SSE stream ids, and
 * the hot path that matches an event and queues it to connections (see
 * broker.h for the message flow and ownership). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/broker.h"
#include "ringcast/filter.h"
#include "ringcast/webhook.h"
#include "ringcast/history.h"
#include "ringcast/shard.h"
#include "ringcast/topic.h"
#include "ringcast/trie.h"

#include "broker_internal.h"

/* ---- subscriptions -------------------------------------------------------------- */

/* rc_segref free: the last reference (the connection's or a queued suffix's) went */
static void sub_free(struct rc_segref *r)
{
    struct rc_sub *sub = RC_CONTAINER_OF(r, struct rc_sub, ref);
    free(sub->pattern);
    free(sub->filter_text);
    /* subs never leave their shard, so this runs on the pool's thread */
    rc_pool_put(&sub->broker->sub_pool, sub);
}

void rc_sub_ref(struct rc_sub *sub)
{
    rc_segref_ref(&sub->ref);
}

void rc_sub_unref(struct rc_sub *sub)
{
    rc_segref_unref(&sub->ref);
}

static void sub_id_make(struct rc_broker *b, char out[RC_SUB_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = (uint64_t)(b->shard->id & 0xff) << 52 | (b->next_sub++ & 0xfffffffffffffULL);
    out[0] = 's';
    for (int i = RC_SUB_ID_LEN - 1; i >= 1; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
    out[RC_SUB_ID_LEN] = '\0';
}

struct rc_sub *rc_broker_subscribe(struct rc_conn *c, const char *pattern, size_t n,
                                   const json_t *filter, struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct rc_broker *b = B(s);
    struct rc_filter *f = NULL;

    if (c->nsubs >= s->cfg->max_subscriptions) {
        rc_err_set(err, 400, "too_many_subscriptions",
                   "this connection has %u subscriptions, the maximum (max_subscriptions); "
                   "unsubscribe from one first",
                   c->nsubs);
        return NULL;
    }
    if (rc_topic_validate(pattern, n, RC_TOPIC_PATTERN, err) < 0)
        return NULL;
    if (filter) {
        struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
        f = rc_filter_compile(filter, &lim, err);
        if (!f)
            return NULL;
    }
    struct rc_sub *sub = rc_pool_get(&b->sub_pool);
    if (!sub) {
        rc_filter_free(f);
        rc_err_set(err, 503, "no_memory", "out of memory for a subscription");
        return NULL;
    }
    sub->pattern = strndup(pattern, n);
    if (f && f->npreds)
        sub->filter_text = strdup(rc_filter_canonical(f));
    struct rc_trie_sub *h = rc_trie_add(b->trie, pattern, n, f, sub, err);
    rc_filter_free(f);
    if (!h || !sub->pattern) {
        if (h)
            rc_trie_remove(b->trie, h);
        free(sub->pattern);
        free(sub->filter_text);
        rc_pool_put(&b->sub_pool, sub);
        if (!err->code)
            rc_err_set(err, 503, "no_memory", "out of memory for a subscription");
        return NULL;
    }
    sub->handle = h;
    sub->broker = b;
    sub->conn = c;
    sub->ref.refs = 1;
    sub->ref.free = sub_free;
    sub->pattern_len = (uint16_t)n;
    sub_id_make(b, sub->id);
    /* pre-encoded per-subscriber tails of the shared event frame */
    sub->ws_suffix[0] = '"';
    memcpy(sub->ws_suffix + 1, sub->id, RC_SUB_ID_LEN);
    memcpy(sub->ws_suffix + 1 + RC_SUB_ID_LEN, "\"}}", 3);
    sub->ws_suffix[RC_WS_SUFFIX_LEN] = 0x00; /* ends a compressed image (evbuf.h) */
    sub->sse_suffix[0] = '"';
    memcpy(sub->sse_suffix + 1, sub->id, RC_SUB_ID_LEN);
    memcpy(sub->sse_suffix + 1 + RC_SUB_ID_LEN, "\"}\n\n", 4);
    sub->next_in_conn = c->subs;
    c->subs = sub;
    c->nsubs++;
    b->engine->subscribed(c, sub);
    rc_webhook_conn(s->srv->webhook, c, RC_WEBHOOK_SUBSCRIBE, sub->pattern, n);
    return sub;
}

/* Detach sub from its connection's list (pp points at the link to it). */
static void sub_remove(struct rc_broker *b, struct rc_conn *c, struct rc_sub **pp)
{
    struct rc_sub *sub = *pp;
    *pp = sub->next_in_conn;
    c->nsubs--;
    rc_webhook_conn(c->shard->srv->webhook, c, RC_WEBHOOK_UNSUBSCRIBE, sub->pattern,
                    sub->pattern_len);
    b->engine->unsubscribed(c, sub);
    rc_trie_remove(b->trie, sub->handle);
    brk_resume_finish(sub);
    free(sub->pending_reply);
    sub->pending_reply = NULL;
    free(sub->ticket);
    sub->ticket = NULL;
    sub->handle = NULL;
    sub->conn = NULL;
    rc_sub_unref(sub);
}

size_t rc_broker_unsubscribe_id(struct rc_conn *c, const char *sub_id)
{
    struct rc_broker *b = B(c->shard);
    for (struct rc_sub **pp = &c->subs; *pp; pp = &(*pp)->next_in_conn) {
        if (strcmp((*pp)->id, sub_id) == 0) {
            sub_remove(b, c, pp);
            return 1;
        }
    }
    return 0;
}

size_t rc_broker_unsubscribe_pattern(struct rc_conn *c, const char *pattern, size_t n)
{
    struct rc_broker *b = B(c->shard);
    size_t removed = 0;
    struct rc_sub **pp = &c->subs;
    while (*pp) {
        struct rc_sub *sub = *pp;
        if (sub->pattern_len == n && memcmp(sub->pattern, pattern, n) == 0) {
            sub_remove(b, c, pp);
            removed++;
        } else {
            pp = &sub->next_in_conn;
        }
    }
    return removed;
}

void rc_broker_conn_gone(struct rc_conn *c)
{
    struct rc_broker *b = B(c->shard);
    while (c->subs)
        sub_remove(b, c, &c->subs);
    free(c->sse_cursor);
    c->sse_cursor = NULL;
}

struct rc_ticket brk_sub_ticket(const struct rc_sub *sub, const struct rc_conn *c)
{
    return sub->ticket ? *sub->ticket : rc_ticket_stream(c, sub->id);
}

void brk_sub_ticket_done(struct rc_sub *sub)
{
    if (sub->resume || rc_broker_reply_held(sub))
        return;
    free(sub->ticket);
    sub->ticket = NULL;
}

bool brk_sub_keep_ticket(struct rc_sub *sub, const struct rc_ticket *t)
{
    if (sub->ticket)
        return true;
    sub->ticket = malloc(sizeof(*sub->ticket));
    if (!sub->ticket)
        return false;
    *sub->ticket = *t;
    return true;
}

void brk_sub_release_reply(struct rc_conn *c, struct rc_sub *sub)
{
    if (rc_broker_reply_held(sub))
        return; /* the other hold still waits */
    char *reply = sub->pending_reply;
    sub->pending_reply = NULL;
    struct rc_ticket t = brk_sub_ticket(sub, c);
    brk_sub_ticket_done(sub);
    if (reply)
        rc_conn_answer(
            c, &t,
            &(struct rc_answer){
                .status = 200, .type = "subscribed", .json = reply, .len = strlen(reply)});
    free(reply);
}

void rc_broker_hold_reply(struct rc_sub *sub, const struct rc_ticket *t, json_t *data)
{
    free(sub->pending_reply);
    sub->pending_reply = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (t && t->req_id_len)
        (void)brk_sub_keep_ticket(sub, t); /* out of memory: answered without the id */
}

int rc_broker_stream_start(struct rc_conn *c, size_t ntopics, const struct rc_stream_pos *pos)
{
    if (ntopics > RC_STREAM_TOPICS_MAX)
        return -EINVAL;
    struct rc_sse_cursor *cur = calloc(1, sizeof(*cur) + ntopics * sizeof(cur->pos[0]));
    if (!cur)
        return -ENOMEM;
    cur->n = (uint32_t)ntopics;
    if (pos)
        memcpy(cur->pos, pos, ntopics * sizeof(cur->pos[0]));
    free(c->sse_cursor);
    c->sse_cursor = cur;
    return 0;
}

/* Queue "id: <stream id>" plus end ("\n\n": the end of an event record, or an
 * id-only record, which moves the client's Last-Event-ID without an event). */
static int queue_stream_id(struct rc_conn *c, const char *end)
{
    const struct rc_sse_cursor *cur = c->sse_cursor;
    size_t endn = strlen(end);
    char *buf = malloc(4 + RC_STREAM_ID_MAX + endn);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, "id: ", 4);
    ssize_t n = rc_stream_id_format(buf + 4, RC_STREAM_ID_MAX, cur->pos, cur->n);
    if (n < 0)
        n = 0; /* cannot happen (n <= RC_STREAM_TOPICS_MAX): an empty id, never a wrong one */
    memcpy(buf + 4 + n, end, endn);
    return rc_conn_queue_owned(c, buf, 4 + (size_t)n + endn);
}

int brk_stream_id_record(struct rc_conn *c)
{
    return c->sse_cursor ? queue_stream_id(c, "\n\n") : 0;
}

/* ---- delivery -------------------------------------------------------------------------- */

void brk_event_run(struct rc_shard *s, struct rc_post *p)
{
    struct rc_evbuf_post *ep = RC_CONTAINER_OF(p, struct rc_evbuf_post, post);
    rc_broker_deliver(s, ep->ev);
    rc_evbuf_unref(ep->ev);
}

/* Queue a topic event through a subscription: the shared frame, then the
 * subscription's suffix. 0 or -errno (the connection may be closing). */
int brk_queue_event(struct rc_conn *c, struct rc_sub *sub, struct rc_evbuf *ev)
{
    struct rc_image im = rc_event_image(c, ev, sub);
    if (RC_UNLIKELY(c->sse_cursor != NULL) && !im.ws) {
        /* an SSE stream of several topics: the record ends with its stream id,
         * which overrides the shared image's own id line */
        if (sub->stream_slot && sub->stream_slot <= c->sse_cursor->n)
            memcpy(c->sse_cursor->pos[sub->stream_slot - 1].id, ev->id, RC_EVENT_ID_MAX);
        if (rc_conn_queue_evbuf(c, ev, im.p, im.len) < 0 ||
            rc_conn_queue_sub(c, &sub->ref, im.suffix, im.suffix_len - 1) < 0 ||
            queue_stream_id(c, "\n\n") < 0)
            return -EPIPE;
        return 0;
    }
    if (rc_conn_queue_evbuf(c, ev, im.p, im.len) < 0 ||
        rc_conn_queue_sub(c, &sub->ref, im.suffix, im.suffix_len) < 0)
        return -EPIPE;
    return 0;
}

static void deliver_one(void *ctx, void *owner)
{
    struct rc_broker *b = ctx;
    struct rc_sub *sub = owner;
    struct rc_conn *c = sub->conn;
    struct rc_evbuf *ev = b->cur;

    if (!c || !rc_conn_is_open(c)) {
        b->shard->ctr.drops++;
        return;
    }
    if (RC_UNLIKELY(ev->users || ev->exclude_user) && !rc_evbuf_user_allowed(ev, c->user_id))
        return;
    if (RC_UNLIKELY(rc_broker_reply_held(sub)))
        return; /* max_subscribers: not admitted yet; a cluster channel: not confirmed */
    if (RC_UNLIKELY(sub->resume != NULL)) {
        struct rc_resume *r = sub->resume;
        if (r->linger && !rc_event_id_of_epoch(ev->id, r->linger_epoch)) {
            brk_resume_finish(sub); /* another epoch: nothing of it was replayed */
        } else {
            /* replaying history or initial state: the seam orders live events */
            uint64_t before = r->last;
            rc_resume_live(r, ev->seq, ev);
            if (sub->resume_done || (r->linger && r->last > before))
                brk_resume_finish(sub);
            b->cur_delivered++;
            return;
        }
    }
    if (brk_queue_event(c, sub, ev) == 0)
        b->cur_delivered++;
}

/* The hot path: match one event against this shard's trie and queue it to
 * every matching connection. Allocates nothing once the connections' iovec
 * rings have grown to their working size (tests/test_deliver.c counts).
 * Benchmark before touching: bench/run case i, and bench_trie. */
size_t rc_broker_deliver(struct rc_shard *s, struct rc_evbuf *ev)
{
    struct rc_broker *b = B(s);
    b->cur = ev;
    b->cur_delivered = 0;
    rc_trie_match(b->trie, ev->topic, ev->topic_len, ev->data, deliver_one, b);
    s->ctr.deliveries += b->cur_delivered;
    if (b->cur_delivered)
        rc_shard_note_event(s, ev->accepted_ns);
    b->cur = NULL;
    return b->cur_delivered;
}

static bool id_listed(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Broadcast: every WS/SSE connection of this shard named in recipients (or
 * all, when there are none) and not excluded. */
uint64_t brk_deliver_broadcast(struct rc_shard *s, struct rc_evbuf *ev)
{
    uint64_t reached = 0;
    for (struct rc_conn *c = s->all; c; c = c->all_next) {
        if (!rc_conn_is_open(c) || c->proto == RC_PROTO_HTTP)
            continue;
        if (ev->recipients && !id_listed(ev->recipients, ev->nrecipients, c->id))
            continue;
        if (ev->exclude && id_listed(ev->exclude, ev->nexclude, c->id))
            continue;
        if ((ev->users || ev->exclude_user) && !rc_evbuf_user_allowed(ev, c->user_id))
            continue;
        struct rc_image im = rc_event_image(c, ev, NULL);
        int rc = rc_conn_queue_evbuf(c, ev, im.p, im.len);
        if (rc == 0 && !im.ws && c->sse_cursor)
            (void)brk_stream_id_record(c); /* undo the broadcast id's move of Last-Event-ID */
        if (rc == 0)
            reached++;
    }
    s->ctr.deliveries += reached;
    return reached;
}
