/* redis_conn.h - one non-blocking connection to a Redis instance, driven by
 * its owner's poll loop, with hiredis 0.14 as the RESP codec only.
 *
 * Why not hiredis's async API or its blocking calls: hiredis 0.14 has no
 * timeouts in async mode and a blocking call would stall the thread that
 * serves every topic of the node. Here the owner polls rc_redis_conn_fd()
 * for rc_redis_conn_events() and calls rc_redis_conn_step(); the connection
 * writes what is appended (many commands per write: pipelining), reads what
 * arrived and hands each reply to the callback of the command it answers, in
 * order. A command unanswered for timeout_ms, an I/O error or a protocol error
 * fails every pending command (callback with r == NULL and a reason), closes
 * the socket and reconnects by itself with exponential backoff (100 ms
 * doubling to 5 s). AUTH and SELECT of the endpoint are sent first; the
 * connection is ready (commands accepted, on_ready called) once they succeed.
 *
 * Owner: one thread (the Redis bridge); nothing here is shared. Replies are
 *   hiredis objects owned by the callee for the duration of the callback only.
 * Subscriber connections: with push set, every reply goes to push (pub/sub
 *   messages are not answers to a command, and SUBSCRIBE answers once per
 *   channel); no command callbacks are kept, and no reply timeout applies.
 * Name resolution: a host name is resolved by hiredis (getaddrinfo, blocking)
 *   at each connect attempt; use an address where that matters. */
#ifndef RINGCAST_REDIS_CONN_H
#define RINGCAST_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/redis_keys.h"

#ifdef __cplusplus
extern "C" {
#endif

struct redisContext;
struct redisReply;

/* The answer to one command: r is NULL when the command failed (why says how:
 * "timeout", "connection lost: ...", "not connected"). */
typedef void (*rc_redis_reply_fn)(void *arg, struct redisReply *r, const char *why);
typedef void (*rc_redis_event_fn)(void *arg);

enum rc_redis_state { RC_REDIS_DOWN, RC_REDIS_CONNECTING, RC_REDIS_HANDSHAKE, RC_REDIS_READY };

#define RC_REDIS_BACKOFF_MIN_MS 100u
#define RC_REDIS_BACKOFF_MAX_MS 5000u

struct rc_redis_pending {
    rc_redis_reply_fn fn;
    void *arg;
};

struct rc_redis_conn {
    struct rc_redis_endpoint ep;
    struct redisContext *ctx;
    enum rc_redis_state state;
    uint32_t timeout_ms;
    uint32_t max_pending; /* commands in flight at most (rc_redis_conn_command: -ENOBUFS) */
    /* FIFO of the callbacks of commands sent (a ring) */
    struct rc_redis_pending *pend;
    size_t pcap, phead, pn;
    uint64_t oldest_ms; /* when the oldest pending command was appended */
    unsigned handshake_left;
    uint64_t next_attempt_ms, backoff_ms;
    rc_redis_reply_fn push; /* subscriber connection: every reply (NULL = command connection) */
    void *push_arg;
    rc_redis_event_fn on_ready, on_down; /* optional */
    void *cb_arg;
    /* counters */
    uint64_t now_ms; /* the clock of the last step (commands appended between steps) */
    uint64_t connects, failures, timeouts, replies;
    char last_error[160];
};

/* Set up c for ep (copied); it connects on the first step. 0 or -ENOMEM. */
int rc_redis_conn_init(struct rc_redis_conn *c, const struct rc_redis_endpoint *ep,
                       uint32_t timeout_ms, uint32_t max_pending) RC_MUST_CHECK;
/* Close c; every pending callback gets r NULL ("shutting down"). */
void rc_redis_conn_fini(struct rc_redis_conn *c);

/* Append a command (argv as hiredis's redisAppendCommandArgv; argvlen may be
 * NULL for NUL-terminated strings); fn gets its reply. Ready connections only:
 * -ENOTCONN otherwise, -ENOBUFS when max_pending are in flight, -ENOMEM.
 * On a subscriber connection fn must be NULL. Written on the next step. */
int rc_redis_conn_command(struct rc_redis_conn *c, int argc, const char **argv,
                          const size_t *argvlen, rc_redis_reply_fn fn, void *arg) RC_MUST_CHECK;

/* The socket to poll (-1 when none: wait until rc_redis_conn_wake_ms) and the
 * events to wait for. */
int rc_redis_conn_fd(const struct rc_redis_conn *c);
short rc_redis_conn_events(const struct rc_redis_conn *c);
/* When the owner must call step even without I/O (a reconnect attempt, a
 * reply deadline); UINT64_MAX = never. */
uint64_t rc_redis_conn_wake_ms(const struct rc_redis_conn *c);
/* Do whatever is due: connect, write, read and dispatch replies, time out,
 * reconnect. revents: from poll for rc_redis_conn_fd (0 = none). now_ms:
 * monotonic. */
void rc_redis_conn_step(struct rc_redis_conn *c, short revents, uint64_t now_ms);

static inline bool rc_redis_conn_ready(const struct rc_redis_conn *c)
{
    return c->state == RC_REDIS_READY;
}

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_REDIS_CONN_H */
