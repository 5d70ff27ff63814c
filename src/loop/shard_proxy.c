/* shard_proxy.c - proxy_protocol = true: a connection's first bytes must be a
 * PROXY protocol v1 or v2 header (src/proto/proxy.c parses it). Until the
 * header is complete the connection runs the loop's own ops (proxy_ops below),
 * not the session's: the session is opened only once the header is done, and
 * gets the bytes after it exactly as if they were the first bytes read.
 *
 * Cost: a header that arrives whole in one read is parsed with the parser on
 *   the stack; only a header split across reads keeps a heap struct rc_proxy
 *   (c->proxy, ~600 bytes), freed once it is done or the connection closes.
 * Address: a PROXY command's source becomes c->peer and c->ipkey (per-IP
 *   limits, logs, stats, the loopback check of the HTTP API); LOCAL (HAProxy's
 *   health checks) and v1 UNKNOWN keep the socket's address. The per-IP
 *   connection count is taken here, once the address is known, not at accept.
 * Refusals (no header, a bad one, none within handshake_timeout): the
 *   connection is closed without an answer (proxy-protocol.txt: the receiver
 *   must not try to guess), counted in proxy_refused and logged at most once a
 *   second per shard, naming the peer and the parser's reason.
 * Owner: the shard's own thread. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/log.h"
#include "ringcast/proxy.h"
#include "shard_internal.h"

#define PROXY_LOG_MS 1000
/* the per-IP refusal on_accept sends, here as a whole answer (its length is checked) */
#define BUSY_BODY                                                                                  \
    "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many connections from "       \
    "your address; retry later\"}}"
_Static_assert(sizeof(BUSY_BODY) - 1 == 105, "update the Content-Length in proxy_done");

static const struct rc_conn_ops proxy_ops;

/* "192.0.2.7:5000" or "[2001:db8::1]:5000" */
static void format_peer(const struct sockaddr_in6 *peer, char *buf, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr *sa = (const struct sockaddr *)peer;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)peer;
        inet_ntop(AF_INET, &in4->sin_addr, a, sizeof(a));
        snprintf(buf, cap, "%s:%u", a, ntohs(in4->sin_port));
    } else {
        inet_ntop(AF_INET6, &peer->sin6_addr, a, sizeof(a));
        snprintf(buf, cap, "[%s]:%u", a, ntohs(peer->sin6_port));
    }
}

/* Count, log (rate-limited) and close a connection whose header is missing or bad. */
static void proxy_refuse(struct rc_conn *c, const char *reason)
{
    struct rc_shard *s = c->shard;
    uint64_t n;
    s->ctr.proxy_refused++;
    if (rc_log_limit_take(&s->proxy_log, s->now_ms, PROXY_LOG_MS, &n)) {
        char peer[INET6_ADDRSTRLEN + 10];
        format_peer(&c->peer, peer, sizeof(peer));
        rc_log(RC_LOG_WARN, "proxy_refused",
               "shard=%u conn=%016llx peer=%s reason=\"%s\" count=%llu msg=\"proxy_protocol is "
               "on: every connection must start with a PROXY v1/v2 header (HAProxy "
               "send-proxy-v2 on every server line, check-send-proxy for its health checks)\"",
               s->id, (unsigned long long)c->id, peer, reason, (unsigned long long)n);
    }
    rc_conn_close_now(c);
}

/* The header is done: take the address it gives, count the connection for its
 * address (max_connections_per_ip), then hand the connection to the session. */
static void proxy_done(struct rc_conn *c, const struct rc_proxy_result *r, char *rest, size_t n)
{
    struct rc_shard *s = c->shard;
    if (!r->local) {
        memset(&c->peer, 0, sizeof(c->peer));
        memcpy(&c->peer, &r->src,
               r->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    }
    struct rc_ipkey key;
    bool have_key = rc_ipkey_from_sockaddr((const struct sockaddr *)&c->peer, &key) == 0;
    if (have_key)
        c->ipkey = key;
    if (have_key && s->ip_conns) {
        if (rc_iptable_acquire(s->ip_conns, &key, s->cfg->max_connections_per_ip) < 0) {
            static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                      "Content-Type: application/json\r\n"
                                      "Connection: close\r\nContent-Length: 105\r\n\r\n" BUSY_BODY;
            s->ctr.refused_per_ip++;
            /* still the proxy ops: the session never opens, so nothing of it is released */
            if (rc_conn_queue_static(c, msg, sizeof(msg) - 1) == 0)
                rc_conn_close_after_flush(c);
            else
                rc_conn_close_now(c);
            return;
        }
        c->counted_ip = true;
    }
    c->ops = s->srv->conn_ops;
    rc_conn_on_open(c);
    if (n && rc_conn_is_open(c))
        rc_conn_on_data(c, rest, n);
}

static void proxy_on_data(struct rc_conn *c, char *buf, size_t len)
{
    if (!rc_conn_is_open(c))
        return; /* refused for its address: flushing the 503, input is discarded */
    struct rc_proxy local;
    struct rc_proxy *p = c->proxy;
    if (!p) {
        rc_proxy_init(&local);
        p = &local;
    }
    size_t used = 0;
    switch (rc_proxy_feed(p, (const uint8_t *)buf, len, &used)) {
    case RC_PROXY_MORE:
        /* split across reads: keep the parser (it holds the bytes so far) */
        if (p == &local) {
            c->proxy = malloc(sizeof(*c->proxy));
            if (!c->proxy) {
                proxy_refuse(c, "out of memory for a split header");
                return;
            }
            memcpy(c->proxy, &local, sizeof(local));
        }
        return;
    case RC_PROXY_ERROR:
        proxy_refuse(c, p->reason ? p->reason : "bad PROXY header");
        return;
    case RC_PROXY_DONE: {
        struct rc_proxy_result r = p->result;
        free(c->proxy);
        c->proxy = NULL;
        proxy_done(c, &r, buf + used, len - used);
        return;
    }
    }
}

static void proxy_on_eof(struct rc_conn *c)
{
    if (c->proxy)
        proxy_refuse(c, "the connection closed inside the PROXY header");
    else
        rc_conn_close_now(c); /* connected and went without a byte (a TCP check) */
}

static void proxy_on_timer(struct rc_conn *c)
{
    proxy_refuse(c, c->proxy ? "the PROXY header did not complete within handshake_timeout"
                             : "no PROXY header within handshake_timeout");
}

static void proxy_on_drain(struct rc_conn *c)
{
    rc_conn_close_now(c);
}

static void proxy_release(struct rc_conn *c)
{
    free(c->proxy);
    c->proxy = NULL;
}

static const struct rc_conn_ops proxy_ops = {
    .name = "proxy",
    .on_open = NULL, /* never called: rc_shard_proxy_start stands for it */
    .on_data = proxy_on_data,
    .on_eof = proxy_on_eof,
    .on_timer = proxy_on_timer,
    .on_drain = proxy_on_drain,
    .on_sent = NULL,
    .release = proxy_release,
    .answer = NULL,
};

void rc_shard_proxy_start(struct rc_shard *s, struct rc_conn *c)
{
    c->ops = &proxy_ops;
    rc_shard_arm_timer(s, c, s->now_ms + s->cfg->handshake_timeout);
}
