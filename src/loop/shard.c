/* shard.c - shard threads: listener, connection table, the event loop, and
 * the SQE preparation for every op (see shard.h for what a shard owns). The
 * ring and the resources it needs are set up in shard_setup.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/filter.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "shard_internal.h"

#define MAX_SEND_IOVS 1024 /* IOV_MAX */
#define SLOW_WAIT_MS 1000

/* ---- SQE preparation: every op's user_data is packed here ------------------ */

static struct io_uring_sqe *get_sqe(struct rc_shard *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        /* the SQ ring is full: push what we have to the kernel and retry */
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* slot names the listener (enum rc_conn_listener) */
static int rc_ring_prep_accept(struct rc_shard *s, enum rc_conn_listener l)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    int fd = l == RC_LISTENER_METRICS ? s->srv->metrics_fd : s->listen_fd;
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_ACCEPT, 0, l));
    *(l == RC_LISTENER_METRICS ? &s->metrics_armed : &s->accept_armed) = true;
    return 0;
}

static int rc_ring_prep_recv(struct rc_shard *s, struct rc_conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RC_SHARD_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_RECV, s->gens[c->slot], c->slot));
    c->recv_armed = true;
    c->inflight++;
    return 0;
}

static int rc_ring_prep_send(struct rc_shard *s, struct rc_conn *c, unsigned niov)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    struct rc_outq *q = &c->out;
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = &q->iov[q->head & (q->cap - 1)];
    c->msg.msg_iovlen = niov;
    io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_SEND, s->gens[c->slot], c->slot));
    c->send_inflight = true;
    c->send_iovs = niov;
    c->inflight++;
    return 0;
}

static int rc_ring_prep_wake(struct rc_shard *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, s->wake_fd, &s->wake_buf, sizeof(s->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_WAKE, 0, 0));
    return 0;
}

static int rc_ring_prep_cancel_accept(struct rc_shard *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, rc_ud_pack(RC_OP_ACCEPT, 0, 0), 0);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_CANCEL, 0, 0));
    return 0;
}

/* Cancel c's multishot recv; its last CQE is -ECANCELED (see on_recv). */
static int rc_ring_prep_cancel_recv(struct rc_shard *s, struct rc_conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, rc_ud_pack(RC_OP_RECV, s->gens[c->slot], c->slot), 0);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_CANCEL, 0, 0));
    return 0;
}

/* ---- connection table ------------------------------------------------------- */

static struct rc_conn *conn_new(struct rc_shard *s, int fd)
{
    uint32_t slot;
    if (s->nfree) {
        slot = s->free_slots[--s->nfree];
    } else {
        if (s->nslots == s->slots_cap) {
            uint32_t ncap = s->slots_cap ? s->slots_cap * 2 : 1024;
            struct rc_conn **ns = realloc(s->slots, ncap * sizeof(*ns));
            if (!ns)
                return NULL;
            s->slots = ns;
            uint32_t *ng = realloc(s->gens, ncap * sizeof(*ng));
            if (!ng)
                return NULL;
            s->gens = ng;
            uint32_t *nf = realloc(s->free_slots, ncap * sizeof(*nf));
            if (!nf)
                return NULL;
            s->free_slots = nf;
            s->slots_cap = ncap;
        }
        slot = s->nslots++;
        s->gens[slot] = 0;
    }
    struct rc_conn *c = rc_pool_get(&s->conn_pool);
    if (!c) {
        s->free_slots[s->nfree++] = slot;
        return NULL;
    }
    s->gens[slot] = (s->gens[slot] + 1) & 0xffffff;
    s->slots[slot] = c;
    c->shard = s;
    c->slot = slot;
    c->fd = fd;
    c->id = rc_conn_id_make(s->id, s->gens[slot], slot);
    c->proto = RC_PROTO_HTTP;
    c->ops = s->srv->conn_ops;
    c->state = RC_CONN_OPEN;
    c->last_rx_ms = s->now_ms;
    c->all_next = s->all;
    if (s->all)
        s->all->all_prev = c;
    s->all = c;
    s->nconns++;
    return c;
}

static void conn_release(struct rc_shard *s, struct rc_conn *c)
{
    if (c->counted_ip)
        rc_iptable_release(s->ip_conns, &c->ipkey);
    rc_outq_release_all(&c->out);
    close(c->fd);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        s->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    s->slots[c->slot] = NULL;
    /* bump the generation so late CQEs for this slot are recognised */
    s->gens[c->slot] = (s->gens[c->slot] + 1) & 0xffffff;
    s->free_slots[s->nfree++] = c->slot;
    s->nconns--;
    rc_connbudget_put(&s->srv->conns); /* every conn_new was taken from it in on_accept */
    s->ctr.closed++;
    rc_pool_put(&s->conn_pool, c);
}

void rc_shard_conn_closed(struct rc_shard *s, struct rc_conn *c)
{
    if (c->state == RC_CONN_CLOSED && c->inflight == 0 && !c->dirty)
        conn_release(s, c);
}

struct rc_conn *rc_shard_conn(struct rc_shard *s, uint64_t id)
{
    uint32_t slot = rc_conn_id_slot(id);
    if (rc_conn_id_shard(id) != s->id || slot >= s->nslots)
        return NULL;
    struct rc_conn *c = s->slots[slot];
    if (!c || c->id != id || c->state == RC_CONN_CLOSED)
        return NULL;
    return c;
}

static struct rc_conn *conn_from_ud(struct rc_shard *s, uint64_t ud)
{
    uint32_t slot = rc_ud_slot(ud);
    if (slot >= s->nslots || s->gens[slot] != rc_ud_gen(ud))
        return NULL;
    return s->slots[slot];
}

void rc_shard_arm_timer(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms)
{
    rc_timer_arm(&s->timers, &c->timer, deadline_ms);
}

void rc_shard_recv_pause(struct rc_shard *s, struct rc_conn *c)
{
    if (c->recv_paused || c->state != RC_CONN_OPEN)
        return;
    c->recv_paused = true;
    c->recv_rearm = false;
    /* if the SQ is full the recv stays armed: the session buffers what comes
     * (bounded by its input cap) and the next pause tries again */
    if (c->recv_armed && rc_ring_prep_cancel_recv(s, c) < 0)
        c->recv_paused = false;
}

void rc_shard_recv_resume(struct rc_shard *s, struct rc_conn *c)
{
    (void)s;
    if (!c->recv_paused)
        return;
    c->recv_paused = false;
    if (!c->recv_armed && c->state != RC_CONN_CLOSED) {
        c->recv_rearm = true;
        rc_conn_mark_dirty(c);
    }
    /* else: the cancelled recv's -ECANCELED is still to come; on_recv re-arms */
}

/* ---- completions -------------------------------------------------------------- */

#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000
#define ACCEPT_LOG_INTERVAL_MS 1000

/* Out of file descriptors (or kernel memory) for a new connection: the pending
 * connection stays in the listen backlog, so accepting again at once fails
 * again at once (a busy loop). Pause accepting for a growing interval instead;
 * the loop re-arms at accept_resume_ms. Logged at most once per
 * ACCEPT_LOG_INTERVAL_MS with the failures since the previous line. */
static void accept_pause(struct rc_shard *s, int err)
{
    s->ctr.accept_fd_exhausted++;
    s->accept_fail_unlogged++;
    if (s->accept_backoff_ms == 0)
        s->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    else if ((s->accept_backoff_ms *= 2) > ACCEPT_BACKOFF_MAX_MS)
        s->accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    s->accept_paused = true;
    s->accept_resume_ms = s->now_ms + s->accept_backoff_ms;
    if (s->accept_armed)
        rc_ring_prep_cancel_accept(s); /* a multishot still armed would keep failing */
    if (s->now_ms < s->accept_log_ms)
        return;
    rc_log(RC_LOG_WARN, "accept_paused",
           "shard=%u error=\"%s\" count=%llu pause_ms=%u msg=\"cannot accept connections: "
           "raise the open-file limit (ulimit -n, systemd LimitNOFILE=) or lower "
           "max_connections\"",
           s->id, strerror(err), (unsigned long long)s->accept_fail_unlogged, s->accept_backoff_ms);
    s->accept_fail_unlogged = 0;
    s->accept_log_ms = s->now_ms + ACCEPT_LOG_INTERVAL_MS;
}

/* The SQ ring was full even after a submit, so a multishot (accept, recv)
 * or the wake-up read could not be re-armed: it is retried at the end of the
 * loop turn (the caller set its re-arm flag). Counted; logged at most once
 * per ACCEPT_LOG_INTERVAL_MS. */
static void rearm_deferred(struct rc_shard *s, const char *what)
{
    s->ctr.rearms_deferred++;
    if (s->now_ms < s->rearm_log_ms)
        return;
    rc_log(RC_LOG_WARN, "rearm_deferred",
           "shard=%u op=%s count=%llu msg=\"submission queue full; retrying next loop turn "
           "(raise ring_entries if this repeats)\"",
           s->id, what, (unsigned long long)s->ctr.rearms_deferred);
    s->rearm_log_ms = s->now_ms + ACCEPT_LOG_INTERVAL_MS;
}

static void arm_accept(struct rc_shard *s)
{
    s->accept_rearm = false;
    if (rc_ring_prep_accept(s, RC_LISTENER_MAIN) < 0) {
        s->accept_rearm = true;
        rearm_deferred(s, "accept");
    }
}

static void arm_wake(struct rc_shard *s)
{
    s->wake_rearm = false;
    if (rc_ring_prep_wake(s) < 0) {
        s->wake_rearm = true;
        rearm_deferred(s, "wake");
    }
}

/* Loop turn: re-arm an accept paused by accept_pause once its time came, or
 * one that could not be armed for want of an SQE. */
/* How long the loop may sleep on the ring: until the next timer, sweep or hook deadline
 * (events, answers and posts wake it at once through the ring), at most
 * RC_SHARD_SLEEP_MAX_MS; one tick while something is retried each turn (a deferred
 * re-arm, a paused accept, a drain). An idle shard thus sleeps instead of waking every
 * RC_TIMER_TICK_MS. */
#define RC_SHARD_SLEEP_MAX_MS 1000u
static struct __kernel_timespec sleep_for(const struct rc_shard *s,
                                          const struct rc_shard_hooks *hooks)
{
    uint64_t now = rc_now_ms(), wake = rc_timer_next_ms(&s->timers);
    if (s->ip_handshakes && s->next_sweep_ms < wake)
        wake = s->next_sweep_ms;
    if (hooks && hooks->tick) {
        uint64_t h = hooks->next_tick_ms ? hooks->next_tick_ms(s) : now + RC_TIMER_TICK_MS;
        if (h < wake)
            wake = h;
    }
    if (s->draining || s->dirty || s->accept_paused || s->accept_rearm || s->metrics_rearm ||
        s->wake_rearm)
        wake = now + RC_TIMER_TICK_MS < wake ? now + RC_TIMER_TICK_MS : wake;
    uint64_t ms = wake <= now ? 0 : wake - now;
    if (ms > RC_SHARD_SLEEP_MAX_MS)
        ms = RC_SHARD_SLEEP_MAX_MS;
    return (struct __kernel_timespec){.tv_sec = (long long)(ms / 1000u),
                                      .tv_nsec = (long long)(ms % 1000u) * 1000000LL};
}

static void accept_maybe_resume(struct rc_shard *s)
{
    /* metrics_address (shard 0): re-armed whenever it ended, unless paused */
    if (s->metrics_rearm && !s->metrics_armed && !s->accept_paused && s->accepting)
        s->metrics_rearm = rc_ring_prep_accept(s, RC_LISTENER_METRICS) < 0;
    if (s->accept_rearm && !s->accept_armed && !s->accept_paused) {
        if (s->accepting)
            arm_accept(s);
        else
            s->accept_rearm = false;
    }
    if (!s->accept_paused || s->now_ms < s->accept_resume_ms || s->accept_armed)
        return;
    s->accept_paused = false;
    if (s->accepting)
        arm_accept(s);
}

static bool accept_out_of_resources(int res)
{
    return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

static void on_accept(struct rc_shard *s, struct io_uring_cqe *cqe)
{
    bool metrics = rc_ud_slot(cqe->user_data) == RC_LISTENER_METRICS;
    if (metrics && !(cqe->flags & IORING_CQE_F_MORE)) {
        s->metrics_armed = false;
        s->metrics_rearm = cqe->res != -ECANCELED; /* next turn (accept_maybe_resume) */
    } else if (!(cqe->flags & IORING_CQE_F_MORE)) {
        s->accept_armed = false;
        if (s->accepting && !s->accept_paused && cqe->res != -ECANCELED &&
            !accept_out_of_resources(cqe->res))
            arm_accept(s); /* the multishot ended: re-arm */
    }
    if (cqe->res < 0) {
        if (accept_out_of_resources(cqe->res))
            accept_pause(s, -cqe->res);
        else if (cqe->res != -ECANCELED && cqe->res != -EINVAL)
            rc_log(RC_LOG_WARN, "accept_failed", "shard=%u error=\"%s\"", s->id,
                   strerror(-cqe->res));
        return;
    }
    if (s->accept_backoff_ms) {
        /* accepting again after a pause: say how many failures the last line missed */
        if (s->accept_fail_unlogged)
            rc_log(RC_LOG_INFO, "accept_resumed", "shard=%u count=%llu", s->id,
                   (unsigned long long)s->accept_fail_unlogged);
        s->accept_backoff_ms = 0;
        s->accept_fail_unlogged = 0;
    }
    int fd = cqe->res;
    /* max_connections counts every shard's connections: one shared budget */
    if ((s->draining && !s->drain_listening) || !rc_connbudget_take(&s->srv->conns)) {
        rc_shard_refuse(fd,
                        "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"connection "
                        "limit reached; retry later\"}}");
        s->ctr.refused_max_conns++;
        return;
    }
    struct sockaddr_in6 peer;
    socklen_t alen = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    getpeername(fd, (struct sockaddr *)&peer, &alen);
    struct rc_ipkey key;
    bool have_key = rc_ipkey_from_sockaddr((struct sockaddr *)&peer, &key) == 0;
    /* proxy_protocol: the socket's address is the proxy's; the header gives
     * the client's, and the per-IP count is taken then (shard_proxy.c) */
    bool count_ip = have_key && s->ip_conns && !s->cfg->proxy_protocol;
    if (count_ip && rc_iptable_acquire(s->ip_conns, &key, s->cfg->max_connections_per_ip) < 0) {
        rc_connbudget_put(&s->srv->conns);
        rc_shard_refuse(fd, "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many "
                            "connections from your address; retry later\"}}");
        s->ctr.refused_per_ip++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct rc_conn *c = conn_new(s, fd);
    if (!c) {
        if (count_ip)
            rc_iptable_release(s->ip_conns, &key);
        rc_connbudget_put(&s->srv->conns);
        close(fd);
        s->ctr.refused_max_conns++;
        return;
    }
    c->peer = peer;
    c->ipkey = key;
    c->counted_ip = count_ip;
    c->listener = metrics ? RC_LISTENER_METRICS : RC_LISTENER_MAIN;
    s->ctr.accepted++;
    if (rc_ring_prep_recv(s, c) < 0) {
        /* no SQE: the flush at the end of this loop turn arms it */
        c->recv_rearm = true;
        rc_conn_mark_dirty(c);
        rearm_deferred(s, "recv");
    }
    if (s->cfg->proxy_protocol && !metrics) /* scrapers connect directly */
        rc_shard_proxy_start(s, c);         /* the session opens once the header is read */
    else
        rc_conn_on_open(c);
}

static void on_recv(struct rc_shard *s, struct io_uring_cqe *cqe)
{
    struct rc_conn *c = conn_from_ud(s, cqe->user_data);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;

    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        char *data = (char *)s->bufs + (size_t)bid * s->buf_size;
        if (c && c->state != RC_CONN_CLOSED) {
            c->last_rx_ms = s->now_ms;
            if (c->state == RC_CONN_LINGER)
                ; /* discard */
            else
                rc_conn_on_data(c, data, (size_t)res);
        }
        rc_shard_buf_return(s, bid);
    }
    if (!c)
        return;
    if (!more) {
        c->recv_armed = false;
        c->inflight--;
    }
    if (c->state == RC_CONN_CLOSED) {
        rc_shard_conn_closed(s, c);
        return;
    }
    if (res == 0) {
        /* EOF: the peer closed its side */
        rc_conn_set_close_reason(c, RC_CLOSE_CLIENT);
        if (c->state == RC_CONN_LINGER || c->state == RC_CONN_FLUSHING)
            rc_conn_close_now(c);
        else
            rc_conn_on_eof(c);
        return;
    }
    if (res < 0) {
        switch (res) {
        case -ENOBUFS:
            /* the buffer ring ran dry: buffers come back at the end of this
             * loop turn, re-arm then */
            s->ctr.recv_enobufs++;
            c->recv_rearm = true;
            rc_conn_mark_dirty(c);
            return;
        case -EINTR:
        case -EAGAIN:
            c->recv_rearm = true;
            rc_conn_mark_dirty(c);
            return;
        case -ECANCELED:
            /* our own cancel (rc_shard_recv_pause; a close shuts the socket
             * down instead): read again unless still paused */
            if (!c->recv_paused || c->state != RC_CONN_OPEN) {
                c->recv_paused = false;
                c->recv_rearm = true;
                rc_conn_mark_dirty(c);
            }
            return;
        case -ECONNRESET:
        case -EPIPE:
            rc_conn_set_close_reason(c, RC_CLOSE_CLIENT);
            rc_conn_close_now(c);
            return;
        default:
            rc_log(RC_LOG_INFO, "recv_failed", "conn=%016llx error=\"%s\"",
                   (unsigned long long)c->id, strerror(-res));
            rc_conn_close_now(c);
            return;
        }
    }
    if (!more && c->state != RC_CONN_CLOSED) {
        c->recv_rearm = true;
        rc_conn_mark_dirty(c);
    }
}

static void on_send(struct rc_shard *s, struct io_uring_cqe *cqe)
{
    struct rc_conn *c = conn_from_ud(s, cqe->user_data);
    if (!c)
        return;
    c->inflight--;
    c->send_inflight = false;
    rc_outq_free_old(&c->out);
    if (c->state == RC_CONN_CLOSED) {
        rc_shard_conn_closed(s, c);
        return;
    }
    if (cqe->res < 0) {
        if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
            rc_conn_mark_dirty(c);
            return;
        }
        if (cqe->res != -EPIPE && cqe->res != -ECONNRESET)
            rc_log(RC_LOG_INFO, "send_failed", "conn=%016llx error=\"%s\"",
                   (unsigned long long)c->id, strerror(-cqe->res));
        rc_conn_close_now(c);
        return;
    }
    s->ctr.sends++;
    s->ctr.send_iovecs += c->send_iovs;
    rc_histo_add(&s->hist.send_iovecs, c->send_iovs);
    rc_outq_consume(&c->out, (size_t)cqe->res);
    /* a short send leaves the rest queued; the flush below resubmits it */
    rc_conn_mark_dirty(c);
    rc_conn_on_sent(c);
}

/* Submit one send per dirty connection, re-arm ended multishot recvs, and
 * finish closes that waited for output. */
void rc_shard_flush(struct rc_shard *s)
{
    struct rc_conn *c = s->dirty;
    s->dirty = NULL;
    while (c) {
        struct rc_conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state == RC_CONN_CLOSED) {
            rc_shard_conn_closed(s, c);
            c = next;
            continue;
        }
        if (c->recv_paused && c->state != RC_CONN_OPEN) {
            /* a closing connection reads (and discards) until the FIN */
            c->recv_paused = false;
            c->recv_rearm = true;
        }
        if (c->recv_rearm && !c->recv_armed && !c->recv_paused) {
            if (rc_ring_prep_recv(s, c) == 0) {
                c->recv_rearm = false;
            } else {
                rc_conn_mark_dirty(c); /* still recv_rearm: the next flush retries */
                rearm_deferred(s, "recv");
            }
        }
        if (!c->send_inflight) {
            struct rc_outq *q = &c->out;
            if (q->head != q->tail) {
                uint32_t start = q->head & (q->cap - 1);
                uint32_t n = q->tail - q->head;
                if (n > q->cap - start)
                    n = q->cap - start; /* up to the end of the ring; the rest next time */
                if (n > MAX_SEND_IOVS)
                    n = MAX_SEND_IOVS;
                if (rc_ring_prep_send(s, c, n) < 0)
                    rc_conn_mark_dirty(c);
            } else if (c->state == RC_CONN_FLUSHING) {
                rc_conn_flushed(c);
            }
        }
        c = next;
    }
}

/* ---- timers ----------------------------------------------------------------- */

static void on_timer(void *ctx, struct rc_timer *t)
{
    struct rc_shard *s = ctx;
    struct rc_conn *c = RC_CONTAINER_OF(t, struct rc_conn, timer);
    if (c->state == RC_CONN_LINGER || c->state == RC_CONN_FLUSHING) {
        /* the peer did not read our last bytes, or did not close, in time */
        rc_conn_close_now(c);
        return;
    }
    (void)s;
    rc_conn_on_timer(c);
}

/* ---- inbox ------------------------------------------------------------------ */

/* Draining: close the listener once the spread no longer needs it open. */
static void drain_close_listener(struct rc_shard *s)
{
    if (!s->drain_listening || !rc_shard_drain_listener_done(s))
        return;
    s->drain_listening = false;
    s->accepting = false;
    if (s->accept_armed)
        rc_ring_prep_cancel_accept(s);
    shutdown(s->listen_fd, SHUT_RDWR);
}

void rc_shard_run_drain(struct rc_shard *s, struct rc_post *p)
{
    (void)p; /* embedded in struct rc_shard: nothing to free */
    if (s->draining)
        return;
    rc_shard_drain_start(s); /* shard_drain.c */
    s->drain_listening = true;
    drain_close_listener(s);
}

void rc_shard_run_stop(struct rc_shard *s, struct rc_post *p)
{
    (void)p;
    s->stop = true;
}

/* Every post carries its own run function (evbuf.h): the loop knows none of
 * them. An event's post runs here once per event per shard. */
static void drain_inbox(struct rc_shard *s)
{
    struct rc_mpsc_node *n;
    while ((n = rc_mpsc_pop(&s->inbox))) {
        struct rc_post *p = RC_CONTAINER_OF(n, struct rc_post, node);
        p->run(s, p);
    }
}

void rc_shard_post(struct rc_shard *s, struct rc_post *p)
{
    rc_mpsc_push(&s->inbox, &p->node);
}

/* ---- the loop ----------------------------------------------------------------- */

static void dispatch_cqe(struct rc_shard *s, struct io_uring_cqe *cqe)
{
    switch (rc_ud_op(cqe->user_data)) {
    case RC_OP_ACCEPT:
        on_accept(s, cqe);
        break;
    case RC_OP_RECV:
        on_recv(s, cqe);
        break;
    case RC_OP_SEND:
        on_send(s, cqe);
        break;
    case RC_OP_WAKE:
        s->ctr.wakeups++;
        if (!s->stop)
            arm_wake(s);
        break;
    case RC_OP_CANCEL:
    case RC_OP_CLOSE:
    case RC_OP_NONE:
        break;
    }
}

static void close_all(struct rc_shard *s)
{
    struct rc_conn *c = s->all;
    while (c) {
        struct rc_conn *next = c->all_next;
        rc_conn_close_now(c);
        c = next;
    }
}

/* Shard thread entry.
 * Owns: s->ring, s->br/bufs, s->listen_fd, every rc_conn in s->slots, s->timers,
 *   s->conn_pool, s->broker (owned topics + the trie of local subscriptions),
 *   s->ctr.
 * Drains: s->inbox: drain and stop itself, everything else through the
 *   shard_hooks' on_post (events to deliver, publishes for owned topics,
 *   replies for waiting HTTP requests, stats requests).
 * Posts to: other shards' inboxes (publish -> owner, owner -> every shard,
 *   replies -> the requesting shard). */
void *rc_shard_main(void *arg)
{
    struct rc_shard *s = arg;
    char name[16];
    snprintf(name, sizeof(name), "rc-shard-%u", s->id);
    pthread_setname_np(pthread_self(), name);
    rc_shard_pin_cpu(s);

    s->now_ms = rc_now_ms();
    rc_timer_wheel_init(&s->timers, s->now_ms);
    const struct rc_shard_hooks *hooks = s->srv->shard_hooks;
    bool hooks_up = false;
    int rc = rc_shard_setup_ring(s);
    if (rc == 0 && !s->startup_msg[0] && hooks && hooks->init) {
        rc = hooks->init(s);
        if (rc < 0)
            snprintf(s->startup_msg, sizeof(s->startup_msg), "broker init failed: %s",
                     strerror(-rc));
    }
    hooks_up = rc == 0 && !s->startup_msg[0];
    if (hooks_up)
        rc = rc_shard_setup_iptables(s);
    if (rc < 0 || s->startup_msg[0]) {
        s->startup_error = rc < 0 ? rc : -ENOTSUP;
        if (hooks_up && hooks && hooks->fini)
            hooks->fini(s);
        rc_iptable_free(s->ip_conns);
        rc_iptable_free(s->ip_handshakes);
        s->ip_conns = s->ip_handshakes = NULL;
        s->drained = true;
        rc_server_report_started();
        rc_server_report_drained();
        return NULL;
    }
    s->accepting = true;
    arm_accept(s);
    s->metrics_rearm = s->id == 0 && s->srv->metrics_fd >= 0; /* armed in the loop */
    arm_wake(s);
    rc_server_report_started();

    rc_shard_turn_start(s);
    while (!s->stop) {
        rc_mpsc_awake(&s->inbox);
        drain_inbox(s);
        s->now_ms = rc_now_ms();
        rc_timer_advance(&s->timers, s->now_ms, on_timer, s);
        if (hooks && hooks->tick)
            hooks->tick(s); /* bounded work: the broker's idle-topic sweep */
        if (s->ip_handshakes && s->now_ms >= s->next_sweep_ms) {
            rc_iptable_rate_sweep(s->ip_handshakes, (int64_t)s->now_ms);
            s->next_sweep_ms = s->now_ms + 1000;
        }
        if (s->draining && !s->drained) {
            rc_shard_drain_step(s);
            drain_close_listener(s);
        }
        if (s->draining && !s->drained && (s->nconns == 0 || s->now_ms >= s->drain_deadline_ms)) {
            if (s->nconns)
                close_all(s);
            if (s->nconns == 0 && !s->accept_armed) {
                s->drained = true;
                rc_server_report_drained();
            }
        }
        accept_maybe_resume(s);
        if (s->wake_rearm && !s->stop)
            arm_wake(s);
        rc_shard_flush(s);
        rc_shard_buf_publish(s);
        rc_shard_turn_end(s);

        struct __kernel_timespec ts = sleep_for(s, hooks);
        struct io_uring_cqe *cqe = NULL;
        s->ctr.loop_turns++;
        if (rc_mpsc_prepare_sleep(&s->inbox))
            rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        else
            rc = io_uring_submit(&s->ring);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
            rc_log(RC_LOG_WARN, "ring_enter_failed", "shard=%u error=\"%s\"", s->id, strerror(-rc));
        rc_shard_turn_start(s);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            s->now_ms = rc_now_ms();
            dispatch_cqe(s, cqe);
            seen++;
        }
        io_uring_cq_advance(&s->ring, seen);
    }
    /* teardown: everything this thread owns */
    close_all(s);
    if (hooks && hooks->fini)
        hooks->fini(s);
    rc_iptable_free(s->ip_conns);
    rc_iptable_free(s->ip_handshakes);
    return NULL;
}
