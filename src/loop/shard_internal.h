/* shard_internal.h - what shard.c, shard_setup.c and shard_drain.c share: the provided-buffer
 * ring's helpers and the set-up steps rc_shard_main runs before its loop.
 * Owner: the shard's own thread (everything here touches only struct rc_shard
 *   of the calling shard). Private to src/loop/. */
#ifndef RINGCAST_SHARD_INTERNAL_H
#define RINGCAST_SHARD_INTERNAL_H

#include "ringcast/shard.h"

/* the provided-buffer group every multishot recv draws from */
#define RC_SHARD_BUF_GROUP 0

/* Give provided buffer bid back (visible to the kernel at the next publish). */
static inline void rc_shard_buf_return(struct rc_shard *s, uint32_t bid)
{
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * s->buf_size, s->buf_size, (uint16_t)bid,
                          io_uring_buf_ring_mask(s->nbufs), (int)s->br_pending);
    s->br_pending++;
}

/* Publish the buffers given back since the last publish (once per turn). */
static inline void rc_shard_buf_publish(struct rc_shard *s)
{
    if (s->br_pending) {
        io_uring_buf_ring_advance(s->br, (int)s->br_pending);
        s->br_pending = 0;
    }
}

/* The ring (SINGLE_ISSUER | DEFER_TASKRUN, features probed) and its
 * provided-buffer ring; 0 or -errno with s->startup_msg naming what the kernel
 * lacks. */
int rc_shard_setup_ring(struct rc_shard *s);
/* The per-IP tables; 0 or -ENOMEM with s->startup_msg set: a limit the
 * operator configured is never silently off. */
int rc_shard_setup_iptables(struct rc_shard *s);
/* Drain (shard_drain.c): start it (flags, deadline, the streams to spread;
 * the caller closes the listener), then once per loop turn tell the streams
 * whose time came to go. */
void rc_shard_drain_start(struct rc_shard *s);
bool rc_shard_drain_listener_done(const struct rc_shard *s);
void rc_shard_drain_step(struct rc_shard *s);
/* proxy_protocol (shard_proxy.c): a just-accepted connection waits for its
 * PROXY header (handshake_timeout) before its session opens; the per-IP
 * connection count is taken once the header gives the client's address. */
void rc_shard_proxy_start(struct rc_shard *s, struct rc_conn *c);
/* Refuse a just-accepted socket over a limit (a short 503 with body json,
 * best effort), then close it. */
void rc_shard_refuse(int fd, const char *json);
/* Pin the calling thread to the shard's CPU (id modulo the CPUs it may use). */
void rc_shard_pin_cpu(struct rc_shard *s);

#endif /* RINGCAST_SHARD_INTERNAL_H */
