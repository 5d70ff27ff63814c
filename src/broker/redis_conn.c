/* redis_conn.c - a non-blocking Redis connection with hiredis as the codec
 * (see redis_conn.h for why and for the ownership rules). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ringcast/redis_conn.h"

int rc_redis_conn_init(struct rc_redis_conn *c, const struct rc_redis_endpoint *ep,
                       uint32_t timeout_ms, uint32_t max_pending)
{
    memset(c, 0, sizeof(*c));
    c->ep = *ep;
    c->timeout_ms = timeout_ms ? timeout_ms : 1;
    c->max_pending = max_pending ? max_pending : 1;
    c->pcap = 64;
    c->pend = calloc(c->pcap, sizeof(*c->pend));
    if (!c->pend)
        return -ENOMEM;
    c->backoff_ms = RC_REDIS_BACKOFF_MIN_MS;
    c->state = RC_REDIS_DOWN;
    c->next_attempt_ms = 0; /* the first step connects */
    return 0;
}

static void fail_pending(struct rc_redis_conn *c, const char *why)
{
    /* callbacks may append again (they see -ENOTCONN): drain a snapshot */
    while (c->pn) {
        struct rc_redis_pending p = c->pend[c->phead];
        c->phead = (c->phead + 1) % c->pcap;
        c->pn--;
        if (p.fn)
            p.fn(p.arg, NULL, why);
    }
    c->phead = 0;
}

/* Close the socket, fail what is pending, schedule the next attempt. */
static void conn_fail(struct rc_redis_conn *c, uint64_t now, const char *what, const char *detail)
{
    snprintf(c->last_error, sizeof(c->last_error), "%s%s", what, detail ? detail : "");
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    bool was_ready = c->state == RC_REDIS_READY;
    c->state = RC_REDIS_DOWN;
    c->failures++;
    c->handshake_left = 0;
    c->next_attempt_ms = now + c->backoff_ms;
    c->backoff_ms =
        c->backoff_ms * 2 > RC_REDIS_BACKOFF_MAX_MS ? RC_REDIS_BACKOFF_MAX_MS : c->backoff_ms * 2;
    char why[200];
    snprintf(why, sizeof(why), "connection lost: %s", c->last_error);
    fail_pending(c, why);
    if (was_ready && c->on_down)
        c->on_down(c->cb_arg);
}

void rc_redis_conn_fini(struct rc_redis_conn *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
    c->state = RC_REDIS_DOWN;
    fail_pending(c, "shutting down");
    free(c->pend);
    c->pend = NULL;
    c->pcap = 0;
}

static int push_pending(struct rc_redis_conn *c, rc_redis_reply_fn fn, void *arg)
{
    if (c->pn == c->pcap) {
        size_t ncap = c->pcap * 2;
        struct rc_redis_pending *np = calloc(ncap, sizeof(*np));
        if (!np)
            return -ENOMEM;
        for (size_t i = 0; i < c->pn; i++)
            np[i] = c->pend[(c->phead + i) % c->pcap];
        free(c->pend);
        c->pend = np;
        c->pcap = ncap;
        c->phead = 0;
    }
    c->pend[(c->phead + c->pn) % c->pcap] = (struct rc_redis_pending){fn, arg};
    c->pn++;
    return 0;
}

int rc_redis_conn_command(struct rc_redis_conn *c, int argc, const char **argv,
                          const size_t *argvlen, rc_redis_reply_fn fn, void *arg)
{
    if (c->state != RC_REDIS_READY)
        return -ENOTCONN;
    if (!c->push && c->pn >= c->max_pending)
        return -ENOBUFS;
    if (!c->push && !c->pn)
        c->oldest_ms = c->now_ms; /* the first in flight: its deadline starts now, not at
                                     the last reply of an idle connection */
    if (!c->push && push_pending(c, fn, arg) < 0)
        return -ENOMEM;
    if (redisAppendCommandArgv(c->ctx, argc, argv, argvlen) != REDIS_OK) {
        if (!c->push)
            c->pn--; /* the entry just added is the last one */
        return -ENOMEM;
    }
    return 0;
}

int rc_redis_conn_fd(const struct rc_redis_conn *c)
{
    return c->ctx ? c->ctx->fd : -1;
}

short rc_redis_conn_events(const struct rc_redis_conn *c)
{
    if (!c->ctx)
        return 0;
    if (c->state == RC_REDIS_CONNECTING)
        return POLLOUT;
    short ev = POLLIN;
    if (sdslen(c->ctx->obuf) > 0)
        ev |= POLLOUT;
    return ev;
}

uint64_t rc_redis_conn_wake_ms(const struct rc_redis_conn *c)
{
    if (c->state == RC_REDIS_DOWN)
        return c->next_attempt_ms;
    if (c->state != RC_REDIS_READY || (!c->push && c->pn))
        return c->oldest_ms + c->timeout_ms;
    return UINT64_MAX;
}

static void became_ready(struct rc_redis_conn *c)
{
    c->state = RC_REDIS_READY;
    c->backoff_ms = RC_REDIS_BACKOFF_MIN_MS;
    c->connects++;
    if (c->on_ready)
        c->on_ready(c->cb_arg);
}

/* Connected: send AUTH and SELECT first; ready when both are answered. */
static void start_handshake(struct rc_redis_conn *c, uint64_t now)
{
    c->handshake_left = 0;
    if (c->ep.password[0]) {
        const char *argv[] = {"AUTH", c->ep.password};
        if (redisAppendCommandArgv(c->ctx, 2, argv, NULL) == REDIS_OK)
            c->handshake_left++;
    }
    if (c->ep.db) {
        char db[12];
        snprintf(db, sizeof(db), "%u", c->ep.db);
        const char *argv[] = {"SELECT", db};
        if (redisAppendCommandArgv(c->ctx, 2, argv, NULL) == REDIS_OK)
            c->handshake_left++;
    }
    c->oldest_ms = now;
    if (c->handshake_left) {
        c->state = RC_REDIS_HANDSHAKE;
        return;
    }
    became_ready(c);
}

static void try_connect(struct rc_redis_conn *c, uint64_t now)
{
    char host[RC_REDIS_HOST_MAX];
    size_t hl = strlen(c->ep.host);
    if (hl >= 2 && c->ep.host[0] == '[' && c->ep.host[hl - 1] == ']') {
        memcpy(host, c->ep.host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else {
        memcpy(host, c->ep.host, hl + 1);
    }
    c->ctx = redisConnectNonBlock(host, c->ep.port);
    c->oldest_ms = now;
    if (!c->ctx) {
        conn_fail(c, now, "out of memory", NULL);
        return;
    }
    if (c->ctx->err) {
        conn_fail(c, now, "connect: ", c->ctx->errstr);
        return;
    }
    c->state = RC_REDIS_CONNECTING;
}

/* One reply: the handshake's, a pushed message, or the oldest command's. */
static bool dispatch(struct rc_redis_conn *c, redisReply *r, uint64_t now)
{
    c->replies++;
    if (c->handshake_left) {
        if (r->type == REDIS_REPLY_ERROR) {
            conn_fail(c, now, "handshake refused: ", r->str);
            return false;
        }
        if (--c->handshake_left == 0)
            became_ready(c);
        return true;
    }
    if (c->push) {
        c->push(c->push_arg, r, NULL);
        return true;
    }
    if (!c->pn) {
        conn_fail(c, now, "a reply that no command asked for", NULL);
        return false;
    }
    struct rc_redis_pending p = c->pend[c->phead];
    c->phead = (c->phead + 1) % c->pcap;
    c->pn--;
    c->oldest_ms = now; /* progress: the deadline counts from the last reply */
    if (p.fn)
        p.fn(p.arg, r, NULL);
    return true;
}

void rc_redis_conn_step(struct rc_redis_conn *c, short revents, uint64_t now)
{
    c->now_ms = now;
    if (c->state == RC_REDIS_DOWN) {
        if (now >= c->next_attempt_ms)
            try_connect(c, now);
        if (c->state == RC_REDIS_DOWN)
            return;
    }
    if (c->state == RC_REDIS_CONNECTING) {
        if (revents & (POLLOUT | POLLERR | POLLHUP)) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (getsockopt(c->ctx->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
            if (soerr) {
                conn_fail(c, now, "connect: ", strerror(soerr));
                return;
            }
            start_handshake(c, now);
        } else if (now - c->oldest_ms >= c->timeout_ms) {
            conn_fail(c, now, "connect timeout", NULL);
            return;
        } else {
            return;
        }
    }
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        if (redisBufferRead(c->ctx) != REDIS_OK) {
            conn_fail(c, now, "read: ", c->ctx->errstr[0] ? c->ctx->errstr : "closed");
            return;
        }
        for (;;) {
            void *r = NULL;
            if (redisGetReplyFromReader(c->ctx, &r) != REDIS_OK) {
                conn_fail(c, now, "protocol: ", c->ctx->errstr);
                return;
            }
            if (!r)
                break;
            bool alive = dispatch(c, r, now);
            freeReplyObject(r);
            if (!alive)
                return;
        }
    }
    if (c->ctx && sdslen(c->ctx->obuf) > 0) {
        int done = 0;
        if (redisBufferWrite(c->ctx, &done) != REDIS_OK) {
            conn_fail(c, now, "write: ", c->ctx->errstr);
            return;
        }
    }
    bool waiting = c->state == RC_REDIS_HANDSHAKE || (!c->push && c->pn);
    if (waiting && now - c->oldest_ms >= c->timeout_ms) {
        c->timeouts++;
        conn_fail(c, now, "no reply within timeout_ms", NULL);
    }
}
