/* shard.c - shard threads: io_uring ring, listener, connection table, the
 * event loop, and the SQE preparation for every op (see shard.h for what a
 * shard owns). */
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
#include <xxhash.h>

#include "ringcast/broker.h"
#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"

#define BUF_GROUP 0
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

static int rc_ring_prep_accept(struct rc_shard *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rc_ud_pack(RC_OP_ACCEPT, 0, 0));
    s->accept_armed = true;
    return 0;
}

static int rc_ring_prep_recv(struct rc_shard *s, struct rc_conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
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

/* ---- completions -------------------------------------------------------------- */

static void on_accept(struct rc_shard *s, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        s->accept_armed = false;
        if (s->accepting && !s->draining && cqe->res != -ECANCELED)
            rc_ring_prep_accept(s); /* the multishot ended: re-arm */
    }
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && cqe->res != -EINVAL)
            rc_log(RC_LOG_WARN, "accept_failed", "shard=%u error=\"%s\"", s->id,
                   strerror(-cqe->res));
        return;
    }
    int fd = cqe->res;
    uint32_t per_shard = s->cfg->max_connections / s->srv->nshards;
    if (per_shard == 0)
        per_shard = 1;
    if (s->draining || s->nconns >= per_shard) {
        /* over the limit: a short 503 the client can read, then close */
        /* Content-Length: 91 = the JSON below (checked by test_auth e2e) */
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: 91\r\n\r\n"
            "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"connection limit "
            "reached; retry later\"}}";
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        s->ctr.refused_max_conns++;
        return;
    }
    struct sockaddr_in6 peer;
    socklen_t alen = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    getpeername(fd, (struct sockaddr *)&peer, &alen);
    struct rc_ipkey key;
    bool have_key = rc_ipkey_from_sockaddr((struct sockaddr *)&peer, &key) == 0;
    if (have_key && s->ip_conns &&
        rc_iptable_acquire(s->ip_conns, &key, s->cfg->max_connections_per_ip) < 0) {
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: 105\r\n\r\n"
            "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many "
            "connections from your address; retry later\"}}";
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        s->ctr.refused_per_ip++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct rc_conn *c = conn_new(s, fd);
    if (!c) {
        if (have_key && s->ip_conns)
            rc_iptable_release(s->ip_conns, &key);
        close(fd);
        s->ctr.refused_max_conns++;
        return;
    }
    c->peer = peer;
    c->ipkey = key;
    c->counted_ip = have_key && s->ip_conns;
    s->ctr.accepted++;
    if (rc_ring_prep_recv(s, c) < 0) {
        rc_conn_close_now(c);
        return;
    }
    rc_conn_on_open(c);
}

static void buf_return(struct rc_shard *s, uint32_t bid)
{
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * s->buf_size, s->buf_size, (uint16_t)bid,
                          io_uring_buf_ring_mask(s->nbufs), (int)s->br_pending);
    s->br_pending++;
}

static void buf_publish(struct rc_shard *s)
{
    if (s->br_pending) {
        io_uring_buf_ring_advance(s->br, (int)s->br_pending);
        s->br_pending = 0;
    }
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
        buf_return(s, bid);
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
        case -ECONNRESET:
        case -EPIPE:
        case -ECANCELED:
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
    rc_outq_consume(&c->out, (size_t)cqe->res);
    /* a short send leaves the rest queued; the flush below resubmits it */
    rc_conn_mark_dirty(c);
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
        if (c->recv_rearm && !c->recv_armed && c->state != RC_CONN_CLOSED) {
            c->recv_rearm = false;
            rc_ring_prep_recv(s, c);
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

static void start_drain(struct rc_shard *s)
{
    if (s->draining)
        return;
    s->draining = true;
    s->accepting = false;
    s->drain_deadline_ms = s->now_ms + s->cfg->drain_timeout;
    if (s->accept_armed)
        rc_ring_prep_cancel_accept(s);
    shutdown(s->listen_fd, SHUT_RDWR);
    struct rc_conn *c = s->all;
    while (c) {
        struct rc_conn *next = c->all_next;
        if (c->state != RC_CONN_CLOSED)
            rc_conn_on_drain(c);
        c = next;
    }
}

static void drain_inbox(struct rc_shard *s)
{
    struct rc_mpsc_node *n;
    while ((n = rc_mpsc_pop(&s->inbox))) {
        struct rc_post *p = RC_CONTAINER_OF(n, struct rc_post, node);
        /* drain and stop are embedded in struct rc_shard: nothing to free */
        if (p->kind == RC_POST_DRAIN) {
            start_drain(s);
            continue;
        }
        if (p->kind == RC_POST_STOP) {
            s->stop = true;
            continue;
        }
        rc_broker_on_post(s, p);
    }
}

void rc_shard_post(struct rc_shard *s, struct rc_post *p)
{
    rc_mpsc_push(&s->inbox, &p->node);
}

unsigned rc_topic_owner(const struct rc_server *srv, const char *topic, size_t n)
{
    return (unsigned)(XXH3_64bits(topic, n) % srv->nshards);
}

/* ---- ring setup ------------------------------------------------------------- */

static int setup_ring(struct rc_shard *s)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = s->cfg->ring_entries * 4;
    int rc = io_uring_queue_init_params(s->cfg->ring_entries, &s->ring, &p);
    if (rc < 0) {
        if (rc == -EINVAL)
            snprintf(s->startup_msg, sizeof(s->startup_msg),
                     "io_uring_setup refused IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN "
                     "(EINVAL): ringcast needs Linux >= 6.1");
        else if (rc == -EPERM || rc == -ENOSYS)
            snprintf(s->startup_msg, sizeof(s->startup_msg),
                     "io_uring is not available (%s): it may be disabled by the "
                     "kernel.io_uring_disabled sysctl or blocked by a container's seccomp "
                     "profile; ringcast needs io_uring",
                     strerror(-rc));
        else
            snprintf(s->startup_msg, sizeof(s->startup_msg), "io_uring_queue_init failed: %s",
                     strerror(-rc));
        return rc;
    }
    s->ring_ready = true;
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_FAST_POLL)) {
        snprintf(s->startup_msg, sizeof(s->startup_msg),
                 "io_uring lacks IORING_FEAT_EXT_ARG/FAST_POLL: ringcast needs Linux >= 6.1");
        return -ENOTSUP;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    static const struct {
        int op;
        const char *name;
    } need[] = {{IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_RECV, "RECV"},
                {IORING_OP_SENDMSG, "SENDMSG"},   {IORING_OP_READ, "READ"},
                {IORING_OP_ASYNC_CANCEL, "CANCEL"}, {IORING_OP_PROVIDE_BUFFERS, "PROVIDE_BUFFERS"}};
    for (size_t i = 0; probe && i < RC_ARRAY_LEN(need); i++) {
        if (!io_uring_opcode_supported(probe, need[i].op)) {
            snprintf(s->startup_msg, sizeof(s->startup_msg),
                     "io_uring lacks IORING_OP_%s: ringcast needs Linux >= 6.1", need[i].name);
            io_uring_free_probe(probe);
            return -ENOTSUP;
        }
    }
    if (probe)
        io_uring_free_probe(probe);

    /* provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring) */
    s->nbufs = s->cfg->recv_buffers;
    s->buf_size = (uint32_t)s->cfg->recv_buffer_size;
    size_t ring_bytes = s->nbufs * sizeof(struct io_uring_buf);
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, (ring_bytes + 4095) & ~(size_t)4095))
        return -ENOMEM;
    memset(mem, 0, ring_bytes);
    s->br = mem;
    s->bufs = malloc((size_t)s->nbufs * s->buf_size);
    if (!s->bufs)
        return -ENOMEM;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)s->br;
    reg.ring_entries = s->nbufs;
    reg.bgid = BUF_GROUP;
    rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0) {
        snprintf(s->startup_msg, sizeof(s->startup_msg),
                 "io_uring_register_buf_ring failed (%s): ringcast needs Linux >= 5.19 "
                 "provided-buffer rings",
                 strerror(-rc));
        return rc;
    }
    io_uring_buf_ring_init(s->br);
    for (uint32_t i = 0; i < s->nbufs; i++)
        buf_return(s, i);
    buf_publish(s);
    return 0;
}

static void pin_cpu(struct rc_shard *s)
{
    cpu_set_t online;
    if (sched_getaffinity(0, sizeof(online), &online) < 0)
        return;
    int n = CPU_COUNT(&online);
    if (n <= 0)
        return;
    int want = (int)(s->id % (unsigned)n), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &online))
            continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

/* ---- the loop ----------------------------------------------------------------- */

/* Start-up and shutdown handshakes with the main thread (never on a request
 * path): the main thread waits until every shard's ring is ready, and at
 * shutdown until every shard has drained its connections, before it tells
 * them all to stop; a drained shard keeps serving its inbox until then,
 * because other shards may still post to it (publishes to topics it owns). */
static pthread_mutex_t g_start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_start_cond = PTHREAD_COND_INITIALIZER;
static unsigned g_started;
static unsigned g_drained;

static void report_started(void)
{
    pthread_mutex_lock(&g_start_lock);
    g_started++;
    pthread_cond_broadcast(&g_start_cond);
    pthread_mutex_unlock(&g_start_lock);
}

static void report_drained(void)
{
    pthread_mutex_lock(&g_start_lock);
    g_drained++;
    pthread_cond_broadcast(&g_start_cond);
    pthread_mutex_unlock(&g_start_lock);
}

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
            rc_ring_prep_wake(s);
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
 * Drains: s->inbox (events to deliver, publishes for owned topics, replies for
 *   waiting HTTP requests, stats requests, drain).
 * Posts to: other shards' inboxes (publish -> owner, owner -> every shard,
 *   replies -> the requesting shard). */
static void *rc_shard_main(void *arg)
{
    struct rc_shard *s = arg;
    char name[16];
    snprintf(name, sizeof(name), "rc-shard-%u", s->id);
    pthread_setname_np(pthread_self(), name);
    pin_cpu(s);

    s->now_ms = rc_now_ms();
    rc_timer_wheel_init(&s->timers, s->now_ms);
    int rc = setup_ring(s);
    if (rc == 0 && !s->startup_msg[0]) {
        rc = rc_broker_init(s);
        if (rc < 0)
            snprintf(s->startup_msg, sizeof(s->startup_msg), "broker init failed: %s",
                     strerror(-rc));
    }
    if (rc < 0 || s->startup_msg[0]) {
        s->startup_error = rc < 0 ? rc : -ENOTSUP;
        s->drained = true;
        report_started();
        report_drained();
        return NULL;
    }
    struct rc_err terr = {0};
    uint32_t bound = s->cfg->max_connections < RC_IPTABLE_MAX_BOUND ? s->cfg->max_connections
                                                                     : RC_IPTABLE_MAX_BOUND;
    if (s->cfg->max_connections_per_ip)
        s->ip_conns = rc_iptable_new(bound, &terr);
    if (s->cfg->handshake_rate_per_ip)
        s->ip_handshakes = rc_iptable_new(bound, &terr);
    s->accepting = true;
    rc_ring_prep_accept(s);
    rc_ring_prep_wake(s);
    report_started();

    while (!s->stop) {
        rc_mpsc_awake(&s->inbox);
        drain_inbox(s);
        s->now_ms = rc_now_ms();
        rc_timer_advance(&s->timers, s->now_ms, on_timer, s);
        if (s->ip_handshakes && s->now_ms >= s->next_sweep_ms) {
            rc_iptable_rate_sweep(s->ip_handshakes, (int64_t)s->now_ms);
            s->next_sweep_ms = s->now_ms + 1000;
        }
        if (s->draining && !s->drained && (s->nconns == 0 || s->now_ms >= s->drain_deadline_ms)) {
            if (s->nconns)
                close_all(s);
            if (s->nconns == 0 && !s->accept_armed) {
                s->drained = true;
                report_drained();
            }
        }
        rc_shard_flush(s);
        buf_publish(s);

        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = RC_TIMER_TICK_MS * 1000000L};
        struct io_uring_cqe *cqe = NULL;
        if (rc_mpsc_prepare_sleep(&s->inbox))
            rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        else
            rc = io_uring_submit(&s->ring);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
            rc_log(RC_LOG_WARN, "ring_enter_failed", "shard=%u error=\"%s\"", s->id,
                   strerror(-rc));
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
    rc_broker_fini(s);
    rc_iptable_free(s->ip_conns);
    rc_iptable_free(s->ip_handshakes);
    return NULL;
}

/* ---- server (main thread) --------------------------------------------------------- */

static int make_listener(const struct rc_config *cfg, uint16_t port, uint16_t *bound,
                         struct rc_err *err)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    memset(&ss, 0, sizeof(ss));
    const char *addr = cfg->listen_address;
    if (strcmp(addr, "localhost") == 0)
        addr = "127.0.0.1";
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    int family;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        slen = sizeof(*in4);
        family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        slen = sizeof(*in6);
        family = AF_INET6;
    } else {
        rc_err_set(err, 0, "bad_config", "listen_address %s is not an IPv4 or IPv6 literal",
                   cfg->listen_address);
        return -EINVAL;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc_err_set(err, 0, "listen", "socket(): %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "setsockopt(SO_REUSEPORT): %s", strerror(e));
        close(fd);
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "bind %s port %u: %s", cfg->listen_address, port,
                   strerror(e));
        close(fd);
        return -e;
    }
    if (listen(fd, 4096) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "listen(): %s", strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &glen);
    *bound = ntohs(family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                     : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

/* With per-IP limits, every connection from one client address must land on
 * the same shard, so that each shard's count is the address's whole count.
 * A classic BPF program on the SO_REUSEPORT group picks the listener (= the
 * shard, in creation order) by hashing the source address: IPv4, or the /64
 * of IPv6 (the same key limits.c uses). */
static int steer_by_address(int fd, unsigned nshards, struct rc_err *err)
{
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF + 0),
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 2, 0),
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12), /* v4 src */
        /* 4 */ BPF_STMT(BPF_JMP | BPF_JA, 4),
        /* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 8), /* v6 /64 */
        /* 6 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 7 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 8 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 9 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nshards),
        /* 10 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = RC_ARRAY_LEN(code), .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen",
                   "setsockopt(SO_ATTACH_REUSEPORT_CBPF): %s (needed to enforce per-IP limits "
                   "across shards)",
                   strerror(e));
        return -e;
    }
    return 0;
}

int rc_server_init(struct rc_server *srv, const struct rc_config *cfg, struct rc_err *err)
{
    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    unsigned n = cfg->shards;
    if (n == 0) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            n = (unsigned)CPU_COUNT(&set);
        if (n == 0)
            n = 1;
    }
    if (n > RC_MAX_SHARDS)
        n = RC_MAX_SHARDS;
    srv->nshards = n;
    srv->epoch_ms = (uint64_t)time(NULL) * 1000u;
    {
        /* base-36 start epoch (seconds): event ids of different runs differ */
        uint64_t v = srv->epoch_ms / 1000u;
        char tmp[16];
        int k = 0;
        do {
            tmp[k++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
            v /= 36;
        } while (v && k < 15);
        for (int i = 0; i < k; i++)
            srv->epoch_str[i] = tmp[k - 1 - i];
        srv->epoch_str[k] = '\0';
    }
    srv->start_mono_ms = rc_now_ms();
    srv->api_open = cfg->api_keys.n == 0;
    srv->shards = calloc(n, sizeof(*srv->shards));
    if (!srv->shards)
        return -ENOMEM;
    uint16_t port = cfg->port;
    for (unsigned i = 0; i < n; i++) {
        struct rc_shard *s = calloc(1, sizeof(*s));
        if (!s)
            return -ENOMEM;
        srv->shards[i] = s;
        s->id = i;
        s->srv = srv;
        s->cfg = cfg;
        s->listen_fd = -1;
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0) {
            rc_err_set(err, 0, "start", "eventfd(): %s", strerror(errno));
            return -errno;
        }
        rc_mpsc_init(&s->inbox, s->wake_fd);
        rc_pool_init(&s->conn_pool, sizeof(struct rc_conn), 256, 0);
        uint16_t bound = 0;
        int fd = make_listener(cfg, port, &bound, err);
        if (fd < 0)
            return fd;
        s->listen_fd = fd;
        port = bound; /* port 0: the first listener picks, the others share it */
    }
    if (n > 1 && (cfg->max_connections_per_ip || cfg->handshake_rate_per_ip)) {
        int rc = steer_by_address(srv->shards[0]->listen_fd, n, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

uint16_t rc_server_port(const struct rc_server *srv)
{
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    if (!srv->nshards || getsockname(srv->shards[0]->listen_fd, (struct sockaddr *)&got, &glen))
        return 0;
    if (got.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&got)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
}

int rc_server_start(struct rc_server *srv, struct rc_err *err)
{
    for (unsigned i = 0; i < srv->nshards; i++) {
        int rc = pthread_create(&srv->shards[i]->thread, NULL, rc_shard_main, srv->shards[i]);
        if (rc) {
            rc_err_set(err, 0, "start", "pthread_create: %s", strerror(rc));
            return -rc;
        }
    }
    pthread_mutex_lock(&g_start_lock);
    while (g_started < srv->nshards)
        pthread_cond_wait(&g_start_cond, &g_start_lock);
    pthread_mutex_unlock(&g_start_lock);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (s->startup_error) {
            rc_err_set(err, 0, "io_uring", "shard %u: %s", i, s->startup_msg);
            return s->startup_error;
        }
    }
    return 0;
}

void rc_server_drain(struct rc_server *srv)
{
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s || s->drain_posted)
            continue;
        s->drain_posted = true; /* main thread only */
        s->drain_post.kind = RC_POST_DRAIN;
        rc_shard_post(s, &s->drain_post);
    }
}

void rc_server_join(struct rc_server *srv)
{
    unsigned running = 0;
    for (unsigned i = 0; i < srv->nshards; i++)
        if (srv->shards && srv->shards[i] && srv->shards[i]->thread)
            running++;
    /* every shard drains first; only then may any of them stop */
    pthread_mutex_lock(&g_start_lock);
    while (g_drained < running)
        pthread_cond_wait(&g_start_cond, &g_start_lock);
    pthread_mutex_unlock(&g_start_lock);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s || !s->thread)
            continue;
        s->stop_post.kind = RC_POST_STOP;
        rc_shard_post(s, &s->stop_post);
    }
    for (unsigned i = 0; i < srv->nshards; i++)
        if (srv->shards && srv->shards[i] && srv->shards[i]->thread)
            pthread_join(srv->shards[i]->thread, NULL);
    /* all threads are gone: what they owned may be freed from here */
    for (unsigned i = 0; i < srv->nshards && srv->shards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s)
            continue;
        struct rc_mpsc_node *n;
        while ((n = rc_mpsc_pop(&s->inbox))) {
            struct rc_post *p = RC_CONTAINER_OF(n, struct rc_post, node);
            if (p != &s->drain_post && p != &s->stop_post)
                rc_broker_discard_post(p);
        }
        if (s->ring_ready)
            io_uring_queue_exit(&s->ring);
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        close(s->wake_fd);
        free(s->br);
        free(s->bufs);
        free(s->slots);
        free(s->gens);
        free(s->free_slots);
        rc_pool_fini(&s->conn_pool);
        free(s);
    }
    free(srv->shards);
    srv->shards = NULL;
}
