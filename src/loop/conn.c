/* conn.c - connection output queue, input buffer and close paths.
 * Runs on the owning shard's thread only (see conn.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringcast/conn.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "ringcast/ws_frame.h"

#define OUTQ_MIN_CAP 8u
#define OUTQ_MAX_CAP (1u << 20)
#define LINGER_MS 2000
#define FLUSH_DEADLINE_MS 5000 /* a closing connection's last bytes must go within this */

void rc_conn_id_format(uint64_t id, char out[RC_CONN_ID_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = RC_CONN_ID_HEX - 1; i >= 0; i--) {
        out[i] = hex[id & 0xf];
        id >>= 4;
    }
    out[RC_CONN_ID_HEX] = '\0';
}

int rc_conn_id_parse(const char *s, size_t n, uint64_t *id)
{
    uint64_t v = 0;
    if (n != RC_CONN_ID_HEX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *id = v;
    return 0;
}

/* ---- output queue --------------------------------------------------------- */

static void release_ref(uintptr_t ref)
{
    void *p = (void *)(ref & ~(uintptr_t)3);
    switch ((enum rc_seg_kind)(ref & 3)) {
    case RC_SEG_STATIC:
        break;
    case RC_SEG_OWNED:
        free(p);
        break;
    case RC_SEG_EVBUF:
        rc_evbuf_unref(p);
        break;
    case RC_SEG_SUB:
        rc_segref_unref(p);
        break;
    }
}

static int outq_grow(struct rc_outq *q, bool inflight)
{
    uint32_t ncap = q->cap ? q->cap * 2 : OUTQ_MIN_CAP;
    if (ncap > OUTQ_MAX_CAP)
        return -ENOBUFS;
    struct iovec *niov = malloc(ncap * sizeof(*niov));
    uintptr_t *nref = malloc(ncap * sizeof(*nref));
    if (!niov || !nref) {
        free(niov);
        free(nref);
        return -ENOMEM;
    }
    uint32_t n = q->tail - q->head;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = (q->head + i) & (q->cap - 1);
        niov[i] = q->iov[k];
        nref[i] = q->ref[k];
    }
    if (q->cap) {
        if (inflight && !q->old_iov) {
            /* the send in flight was prepared from these arrays */
            q->old_iov = q->iov;
            q->old_ref = q->ref;
        } else {
            free(q->iov);
            free(q->ref);
        }
    }
    q->iov = niov;
    q->ref = nref;
    q->cap = ncap;
    q->head = 0;
    q->tail = n;
    return 0;
}

void rc_outq_free_old(struct rc_outq *q)
{
    free(q->old_iov);
    free(q->old_ref);
    q->old_iov = NULL;
    q->old_ref = NULL;
}

size_t rc_outq_pending_iovs(const struct rc_outq *q)
{
    return q->tail - q->head;
}

void rc_outq_consume(struct rc_outq *q, size_t bytes)
{
    q->bytes -= bytes;
    while (bytes > 0 && q->head != q->tail) {
        uint32_t k = q->head & (q->cap - 1);
        struct iovec *v = &q->iov[k];
        if (bytes >= v->iov_len) {
            bytes -= v->iov_len;
            uintptr_t done = q->ref[k];
            release_ref(done);
            q->head++;
            /* a topic event's shared part went out: its suffix (now the head)
             * belongs to a frame already started */
            q->head_started = (done & 3) == RC_SEG_EVBUF && q->head != q->tail &&
                              (q->ref[q->head & (q->cap - 1)] & 3) == RC_SEG_SUB;
        } else {
            v->iov_base = (char *)v->iov_base + bytes;
            v->iov_len -= bytes;
            bytes = 0;
            q->head_started = true;
        }
    }
    /* zero-length segments at the head are done too */
    while (q->head != q->tail && q->iov[q->head & (q->cap - 1)].iov_len == 0) {
        release_ref(q->ref[q->head & (q->cap - 1)]);
        q->head++;
        q->head_started = false;
    }
}

void rc_outq_release_all(struct rc_outq *q)
{
    while (q->head != q->tail) {
        release_ref(q->ref[q->head & (q->cap - 1)]);
        q->head++;
    }
    q->bytes = 0;
    free(q->iov);
    free(q->ref);
    rc_outq_free_old(q);
    q->iov = NULL;
    q->ref = NULL;
    q->cap = 0;
    q->head = q->tail = 0;
    q->head_started = false;
}

static int queue_seg(struct rc_conn *c, const void *p, size_t n, uintptr_t ref)
{
    struct rc_outq *q = &c->out;
    if (c->state == RC_CONN_CLOSED || c->state == RC_CONN_LINGER) {
        c->shard->ctr.drops++;
        return -EPIPE;
    }
    /* HTTP answers are bounded by the session instead: it takes no more
     * requests (and stops reading) while max_pending_bytes of answers are
     * unsent (http.c), so one answer larger than the cap still goes out */
    if (c->proto != RC_PROTO_HTTP && q->bytes + n > c->shard->cfg->max_pending_bytes) {
        c->shard->ctr.slow_consumer_disconnects++;
        rc_log(RC_LOG_INFO, "slow_consumer", "conn=%016llx pending=%zu cap=%zu",
               (unsigned long long)c->id, q->bytes, c->shard->cfg->max_pending_bytes);
        rc_conn_close_slow(c);
        return -ENOBUFS;
    }
    if (q->tail - q->head == q->cap) {
        int rc = outq_grow(q, c->send_inflight);
        if (rc < 0) {
            if (rc == -ENOBUFS) {
                c->shard->ctr.slow_consumer_disconnects++;
                rc_conn_close_slow(c);
            }
            return rc;
        }
    }
    uint32_t k = q->tail & (q->cap - 1);
    q->iov[k].iov_base = (void *)p;
    q->iov[k].iov_len = n;
    q->ref[k] = ref;
    q->tail++;
    q->bytes += n;
    rc_conn_mark_dirty(c);
    return 0;
}

int rc_conn_queue_static(struct rc_conn *c, const void *p, size_t n)
{
    return queue_seg(c, p, n, RC_SEG_STATIC);
}

int rc_conn_queue_owned(struct rc_conn *c, void *p, size_t n)
{
    int rc = queue_seg(c, p, n, (uintptr_t)p | RC_SEG_OWNED);
    if (rc < 0)
        free(p);
    return rc;
}

int rc_conn_queue_copy(struct rc_conn *c, const void *p, size_t n)
{
    void *m = malloc(n ? n : 1);
    if (!m)
        return -ENOMEM;
    memcpy(m, p, n);
    return rc_conn_queue_owned(c, m, n);
}

int rc_conn_queue_evbuf(struct rc_conn *c, struct rc_evbuf *ev, const uint8_t *p, size_t n)
{
    int rc = queue_seg(c, p, n, (uintptr_t)ev | RC_SEG_EVBUF);
    if (rc == 0)
        rc_evbuf_ref(ev);
    return rc;
}

int rc_conn_queue_sub(struct rc_conn *c, struct rc_segref *ref, const uint8_t *p, size_t n)
{
    int rc = queue_seg(c, p, n, (uintptr_t)ref | RC_SEG_SUB);
    if (rc == 0)
        rc_segref_ref(ref);
    return rc;
}

void rc_conn_mark_dirty(struct rc_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_next = c->shard->dirty;
    c->shard->dirty = c;
}

/* ---- input buffer --------------------------------------------------------- */

int rc_conn_in_append(struct rc_conn *c, const char *p, size_t n, size_t cap)
{
    size_t need;
    if (!rc_add_size(c->in_len, n, &need) || need > cap)
        return -E2BIG;
    if (need > c->in_cap) {
        size_t ncap = c->in_cap ? c->in_cap : 1024;
        while (ncap < need)
            ncap *= 2;
        if (ncap > cap)
            ncap = cap;
        char *nb = realloc(c->in, ncap);
        if (!nb)
            return -ENOMEM;
        c->in = nb;
        c->in_cap = ncap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    return 0;
}

void rc_conn_in_consume(struct rc_conn *c, size_t n)
{
    if (n >= c->in_len) {
        /* empty: give the memory back, an idle connection holds none */
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* ---- closing ---------------------------------------------------------------- */

void rc_conn_close_now(struct rc_conn *c)
{
    if (c->state == RC_CONN_CLOSED)
        return;
    c->state = RC_CONN_CLOSED;
    rc_timer_cancel(&c->shard->timers, &c->timer);
    /* the session frees what it holds (subscriptions, identity, answers) */
    if (c->ops && c->ops->release)
        c->ops->release(c);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    /* completes the multishot recv (EOF) and any send in flight (EPIPE) */
    shutdown(c->fd, SHUT_RDWR);
    rc_shard_conn_closed(c->shard, c);
}

/* Drop queued segments after the first `keep` (those of the send in flight),
 * never cutting a frame: a segment already partly sent is kept, and a topic
 * event is two segments (the shared evbuf part, then the subscription's
 * suffix), so a kept evbuf part keeps its suffix. */
static void outq_truncate(struct rc_outq *q, uint32_t keep)
{
    uint32_t n = q->tail - q->head;
    if (q->head_started && keep == 0 && n > 0)
        keep = 1;
    if (keep > 0 && keep < n) {
        uintptr_t last = q->ref[(q->head + keep - 1) & (q->cap - 1)];
        uintptr_t next = q->ref[(q->head + keep) & (q->cap - 1)];
        if ((last & 3) == RC_SEG_EVBUF && (next & 3) == RC_SEG_SUB)
            keep++;
    }
    while (q->tail - q->head > keep) {
        q->tail--;
        uint32_t k = q->tail & (q->cap - 1);
        q->bytes -= q->iov[k].iov_len;
        release_ref(q->ref[k]);
    }
}

void rc_conn_close_slow(struct rc_conn *c)
{
    if (c->state == RC_CONN_CLOSED || c->state == RC_CONN_LINGER)
        return;
    rc_conn_set_close_reason(c, RC_CLOSE_SLOW_CONSUMER);
    /* The backlog is dropped (memory stays bounded); a WebSocket client gets
     * a close frame 1008 (policy violation, RFC 6455 7.4.1) after the bytes
     * already in flight, then the connection closes; if the client does not
     * read even that, the flush deadline closes it. */
    outq_truncate(&c->out, c->send_inflight ? c->send_iovs : 0);
    if (c->proto == RC_PROTO_WS && c->ws && !c->ws->close_sent) {
        static const char reason[] = "slow consumer: output queue over max_pending_bytes";
        uint8_t *f = malloc(2 + 10 + 125);
        if (f) {
            uint8_t payload[125];
            size_t pn = rc_ws_close_payload(payload, 1008, reason);
            size_t hl = rc_ws_frame_header(f, 0x8, pn, true);
            memcpy(f + hl, payload, pn);
            c->ws->close_sent = true;
            /* bypasses the cap on purpose: the queue was just emptied */
            uint32_t k;
            if (c->out.tail - c->out.head < c->out.cap ||
                outq_grow(&c->out, c->send_inflight) == 0) {
                k = c->out.tail & (c->out.cap - 1);
                c->out.iov[k].iov_base = f;
                c->out.iov[k].iov_len = hl + pn;
                c->out.ref[k] = (uintptr_t)f | RC_SEG_OWNED;
                c->out.tail++;
                c->out.bytes += hl + pn;
            } else {
                free(f);
            }
        }
    }
    if (c->state == RC_CONN_OPEN) {
        c->state = RC_CONN_FLUSHING;
        rc_shard_arm_timer(c->shard, c, c->shard->now_ms + FLUSH_DEADLINE_MS);
    }
    rc_conn_mark_dirty(c);
}

void rc_conn_close_after_flush(struct rc_conn *c)
{
    if (c->state != RC_CONN_OPEN)
        return;
    c->state = RC_CONN_FLUSHING;
    rc_shard_arm_timer(c->shard, c, c->shard->now_ms + FLUSH_DEADLINE_MS);
    rc_conn_mark_dirty(c);
}

void rc_conn_close_soon(struct rc_conn *c)
{
    if (c->out.bytes)
        rc_conn_close_after_flush(c);
    else
        rc_conn_close_now(c);
}

void rc_conn_answer(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    if (t->conn_id != c->id || !c->ops || !c->ops->answer)
        return;
    c->ops->answer(c, t, a);
}

void rc_conn_flushed(struct rc_conn *c)
{
    if (c->state != RC_CONN_FLUSHING)
        return;
    /* lingering close: FIN now, read and discard until the peer closes, so
     * that unread input does not turn into a RST that eats our response */
    c->state = RC_CONN_LINGER;
    shutdown(c->fd, SHUT_WR);
    rc_shard_arm_timer(c->shard, c, c->shard->now_ms + LINGER_MS);
}
