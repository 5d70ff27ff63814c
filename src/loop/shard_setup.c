/* shard_setup.c - what a shard sets up before its loop runs: the io_uring ring
 * (features probed, with a message naming what the kernel lacks), the
 * provided-buffer ring, the per-IP tables, the CPU pin; and the answer to a
 * connection refused at accept. Runs on the shard's own thread, from
 * rc_shard_main (shard.c). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shard_internal.h"

int rc_shard_setup_ring(struct rc_shard *s)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_CQSIZE;
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
    } need[] = {{IORING_OP_ACCEPT, "ACCEPT"},       {IORING_OP_RECV, "RECV"},
                {IORING_OP_SENDMSG, "SENDMSG"},     {IORING_OP_READ, "READ"},
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
    reg.bgid = RC_SHARD_BUF_GROUP;
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
        rc_shard_buf_return(s, i);
    rc_shard_buf_publish(s);
    return 0;
}

/* The per-IP tables (connections, handshake rates); 0 or -ENOMEM with
 * startup_msg set: a limit the operator configured is never silently off. */
int rc_shard_setup_iptables(struct rc_shard *s)
{
    struct rc_err err = {0};
    uint32_t bound = s->cfg->max_connections < RC_IPTABLE_MAX_BOUND ? s->cfg->max_connections
                                                                    : RC_IPTABLE_MAX_BOUND;
    if (s->cfg->max_connections_per_ip && !(s->ip_conns = rc_iptable_new(bound, &err))) {
        snprintf(s->startup_msg, sizeof(s->startup_msg), "max_connections_per_ip: %s", err.msg);
        return -ENOMEM;
    }
    if (s->cfg->handshake_rate_per_ip && !(s->ip_handshakes = rc_iptable_new(bound, &err))) {
        snprintf(s->startup_msg, sizeof(s->startup_msg), "handshake_rate_per_ip: %s", err.msg);
        return -ENOMEM;
    }
    return 0;
}

void rc_shard_pin_cpu(struct rc_shard *s)
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

/* Refuse a just-accepted socket over a limit: a short 503 the client can read
 * (best effort, never blocking), then close. The Content-Length is computed,
 * so the text can change safely. */
void rc_shard_refuse(int fd, const char *json)
{
    char msg[320];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(json), json);
    if (n > 0 && (size_t)n < sizeof(msg)) {
        ssize_t w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* the client may already be gone */
    }
    close(fd);
}
