/* loadgen.c - fan-out load generator for ringcast and its peers (nchan, NATS).
 *
 * One process, one thread, one epoll loop. Phases:
 *   1. connect: N WebSocket subscribers (RFC 6455 client: masked frames,
 *      Sec-WebSocket-Accept checked), at most --connect-inflight handshakes at a
 *      time, each subscribed to one stream (topic, and in filter mode a group);
 *   2. publish: M events over K keep-alive connections (HTTP POST pipelined up to
 *      --pipeline unanswered requests per connection, or NATS PUB), as fast as
 *      the window of undelivered publications allows, or at --rate events/s;
 *   3. drain: until every expected delivery arrived or nothing arrived for
 *      --drain seconds.
 * Every payload carries the run nonce, the per-stream sequence number and the
 * send time; each subscriber checks loss, duplication and order, and feeds the
 * latency into a log-linear histogram. The result is one JSON line on stdout;
 * progress goes to stderr once a second. Only 127.0.0.1 is ever targeted.
 * Exit status: 0 all delivered exactly once in order, 1 loss/dup/reorder or a
 * protocol error, 2 bad usage or set-up failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ringcast/common.h"
#include "ringcast/ws_frame.h"

enum peer { PEER_RINGCAST, PEER_NCHAN, PEER_NATS };
enum kind { K_SUB, K_PUB_HTTP, K_PUB_NATS };
enum sub_state {
    S_CONNECTING,  /* TCP connect in progress */
    S_HANDSHAKE,   /* upgrade request sent, waiting for 101 */
    S_SUBSCRIBING, /* subscribe sent, waiting for the ack (ringcast, NATS) */
    S_READY,
    S_DEAD,
};

#define RBUF_SIZE (1u << 20)
#define MAX_FRAME (1u << 20)
#define HIST_BUCKETS (128 + 50 * 64) /* up to 2^57 ns */

struct conn {
    int fd;
    uint8_t kind, state;
    bool want_out;
    uint32_t idx;
    uint32_t stream;   /* subscriber: the stream it reads */
    uint64_t next_seq; /* subscriber: next sequence number expected */
    uint64_t missing;  /* subscriber: gaps seen, not yet filled */
    uint64_t recv, dup, reord, lost_seen;
    uint8_t *in; /* bytes of an incomplete frame/response kept between reads */
    uint32_t in_len, in_cap;
    uint8_t *out; /* bytes not yet written */
    uint32_t out_len, out_off, out_cap;
    uint8_t *frag; /* assembled fragmented message, or NATS stream leftover */
    uint32_t frag_len, frag_cap;
    uint32_t inflight; /* publisher: requests (HTTP) or PINGs (NATS) unanswered */
    uint64_t *sent_at; /* HTTP publisher: send time of each unanswered request (ring) */
    uint32_t sent_head;
    char *bbuf; /* --batch: the events of the request being collected, comma-separated */
    size_t blen, bcap;
    uint32_t bn;
    char accept[29];
};

struct hist {
    uint64_t n, max;
    uint64_t b[HIST_BUCKETS];
};

static struct {
    /* options */
    enum peer peer;
    const char *case_name;
    int port, pub_port;
    int port2; /* cluster case: every other subscriber connects here (0 = none) */
    uint32_t subs, topics, groups, pubs, pipeline, size, window, connect_inflight;
    uint32_t batch; /* ringcast: events per publish request ({"events":[...]}), 1 = plain */
    uint64_t events;
    double rate, duration, timeout, drain;
    int server_pid;
    int cpu_pids[4]; /* cluster case: more server processes (nodes, redis) whose CPU counts */
    unsigned ncpu_pids;
    bool idle, quiet;
    uint32_t recv_chunk;   /* test: read at most this many bytes per recv (0 = no cap) */
    bool compress;         /* ringcast: subscribers offer permessage-deflate */
    bool text_pad;         /* pad with words (compresses like JSON text), not 'x' */
    uint64_t sub_rx_bytes; /* bytes subscribers received (frames on the wire) */
    z_stream inflater;     /* for compressed frames (the server resets per message) */
    uint8_t *zbuf;         /* inflated message */
    double settle;
    /* state */
    int ep;
    uint64_t t0;
    char nonce[17];
    char nonce_key[32]; /* {"r":"<nonce>" */
    size_t nonce_key_len;
    uint64_t now;   /* clock read once per recv: the arrival time of what it returned */
    struct conn *c; /* subs then pubs */
    uint32_t nconn;
    uint32_t *subs_per_stream;
    uint64_t *pub_seq; /* per stream: next sequence number to publish */
    uint32_t next_to_connect, handshaking, connected, ready, dead;
    uint64_t published, answered, pub_errors, expected, deliveries, foreign, proto_errors;
    uint64_t dup, reord;
    uint64_t t_connect0, t_connect1, t_pub0, t_pub_end, t_last_delivery;
    uint64_t deadline, next_progress;
    struct hist hist;
    struct hist ack; /* publish request -> HTTP response */
    uint8_t *rbuf;
    char err_first[256];
} G;

static volatile sig_atomic_t g_stop;

static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static RC_PRINTF(1, 2) void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Remember the first protocol error for the result line; count all of them. */
static RC_PRINTF(2, 3) void proto_error(struct conn *c, const char *fmt, ...)
{
    G.proto_errors++;
    if (G.err_first[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(G.err_first, sizeof(G.err_first), "conn %u: ", c ? c->idx : 0);
    vsnprintf(G.err_first + n, sizeof(G.err_first) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "loadgen: %s\n", G.err_first);
}

/* ---- latency histogram (log-linear: HIST_SUB linear steps per power of two) */

/* Values below 128 have their own bucket; above, each power of two [2^m, 2^(m+1))
 * is cut into 64 equal steps (~1.6% resolution). */
static size_t hist_index(uint64_t v)
{
    if (v < 128)
        return (size_t)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned shift = m - 6;
    return 128 + (size_t)(m - 7) * 64 + (size_t)((v >> shift) - 64);
}

static void hist_add(struct hist *h, uint64_t v)
{
    size_t i = hist_index(v);
    if (i >= RC_ARRAY_LEN(h->b))
        i = RC_ARRAY_LEN(h->b) - 1;
    h->b[i]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

/* Largest value that lands in bucket i. */
static uint64_t hist_bucket_top(size_t i)
{
    if (i < 128)
        return i;
    size_t k = i - 128;
    unsigned shift = (unsigned)(k / 64) + 1;
    return ((uint64_t)(64 + k % 64 + 1) << shift) - 1;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)h->n + 0.999999);
    if (want == 0)
        want = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < RC_ARRAY_LEN(h->b); i++) {
        acc += h->b[i];
        if (acc >= want) {
            uint64_t t = hist_bucket_top(i);
            return t < h->max ? t : h->max;
        }
    }
    return h->max;
}

/* ---- small helpers */

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static void buf_reserve(uint8_t **p, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    if (need > UINT32_MAX / 2)
        die("a buffer would grow past 2 GiB; lower --window or --pipeline");
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    uint8_t *q = realloc(*p, n);
    if (!q)
        die("out of memory growing a buffer to %zu bytes", n);
    *p = q;
    *cap = (uint32_t)n;
}

static void ep_set(struct conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.u32 = c->idx};
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl MOD: %s", strerror(errno));
    c->want_out = out;
}

static void conn_kill(struct conn *c, const char *why)
{
    if (c->fd < 0)
        return;
    if (why)
        proto_error(c, "%s", why);
    epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->kind == K_SUB) {
        if (c->state == S_CONNECTING || c->state == S_HANDSHAKE)
            G.handshaking--;
        G.dead++;
    }
    c->state = S_DEAD;
}

/* Write what is queued; keep the rest and ask for EPOLLOUT. */
static void conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!c->want_out)
                    ep_set(c, true);
                return;
            }
            conn_kill(c, strerror(errno));
            return;
        }
        c->out_off += (uint32_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->want_out)
        ep_set(c, false);
}

static void conn_queue(struct conn *c, const void *p, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    buf_reserve(&c->out, &c->out_cap, (size_t)c->out_len + n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

/* Queue one masked client frame (RFC 6455 5.3). */
static void ws_queue_frame(struct conn *c, unsigned op, const void *p, size_t n)
{
    uint8_t mask[4], hdr[RC_WS_MAX_HEADER];
    uint32_t r = (uint32_t)random();
    memcpy(mask, &r, 4);
    size_t h = rc_ws_frame_header_masked(hdr, op, n, true, mask);
    conn_queue(c, hdr, h);
    size_t at = c->out_len;
    conn_queue(c, p, n);
    rc_ws_mask(c->out + at, n, mask, 0);
}

/* ---- payloads: {"r":"<nonce>","q":<seq>,"t":<send ns>,"c":<topic>,"g":<group>,"p":"xx.."} */

static uint32_t stream_topic(uint32_t s)
{
    return s % G.topics;
}
static uint32_t stream_group(uint32_t s)
{
    return s / G.topics;
}

static size_t make_payload(char *out, size_t cap, uint32_t stream, uint64_t seq, uint64_t ts)
{
    int n =
        snprintf(out, cap, "{\"r\":\"%s\",\"q\":%" PRIu64 ",\"t\":%" PRIu64 ",\"c\":%u,\"g\":%u",
                 G.nonce, seq, ts, stream_topic(stream), stream_group(stream));
    size_t len = (size_t)n;
    if (len + 9 < G.size && len + 9 < cap) { /* ,"p":"" and } */
        size_t pad = G.size - len - 8;
        memcpy(out + len, ",\"p\":\"", 6);
        len += 6;
        if (G.text_pad) {
            static const char *const words[] = {
                "order ",    "shipped ", "item ",      "qty 3 ",    "price 12.50 ",
                "sku-4711 ", "eu-west ", "status ok ", "customer ", "note "};
            uint64_t x = seq * 0x9E3779B97F4A7C15ull + stream + 1;
            for (size_t k = 0; k < pad;) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                const char *w = words[x % 10];
                size_t wl = strlen(w);
                if (wl > pad - k)
                    wl = pad - k;
                memcpy(out + len + k, w, wl);
                k += wl;
            }
        } else {
            memset(out + len, 'x', pad);
        }
        len += pad;
        out[len++] = '"';
    }
    out[len++] = '}';
    return len;
}

/* Find "key" then ':' then an unsigned number, in p[0..n). */
static bool find_num(const char *p, size_t n, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *end = p + n, *at = p;
    while ((at = memmem(at, (size_t)(end - at), key, kl)) != NULL) {
        const char *q = at + kl;
        while (q < end && (*q == ' ' || *q == ':'))
            q++;
        if (q < end && *q >= '0' && *q <= '9') {
            uint64_t v = 0;
            while (q < end && *q >= '0' && *q <= '9')
                v = v * 10 + (uint64_t)(*q++ - '0');
            *out = v;
            return true;
        }
        at += kl;
    }
    return false;
}

/* One payload arrived at subscriber c (p points anywhere before the payload
 * object, e.g. at ringcast's event envelope). */
/* Parse `<lit><digits>` at *pp; advance past it. */
static bool take_num(const char **pp, const char *end, const char *lit, size_t ll, uint64_t *out)
{
    const char *q = *pp;
    if ((size_t)(end - q) <= ll || memcmp(q, lit, ll) != 0)
        return false;
    q += ll;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    uint64_t v = 0;
    while (q < end && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    *out = v;
    *pp = q;
    return true;
}

/* Find our payload object {"r":"<nonce>",... in p[0..n): every server passes it
 * through byte for byte, so look at each '{' (ringcast's envelope has three). */
static const char *find_payload(const char *p, size_t n)
{
    const char *end = p + n, *at = p;
    size_t kl = G.nonce_key_len;
    while ((at = memchr(at, '{', (size_t)(end - at))) != NULL) {
        if ((size_t)(end - at) >= kl && memcmp(at, G.nonce_key, kl) == 0)
            return at + kl;
        at++;
    }
    return NULL;
}

static void on_payload(struct conn *c, const char *p, size_t n)
{
    const char *end = p + n, *at = find_payload(p, n);
    if (!at) {
        G.foreign++;
        return;
    }
    uint64_t q, t, topic, grp;
    const char *cur = at;
    if (!take_num(&cur, end, ",\"q\":", 5, &q) || !take_num(&cur, end, ",\"t\":", 5, &t) ||
        !take_num(&cur, end, ",\"c\":", 5, &topic) || !take_num(&cur, end, ",\"g\":", 5, &grp)) {
        size_t rest = (size_t)(end - at);
        if (!find_num(at, rest, "\"q\"", &q) || !find_num(at, rest, "\"t\"", &t) ||
            !find_num(at, rest, "\"c\"", &topic) || !find_num(at, rest, "\"g\"", &grp)) {
            proto_error(c, "payload without q/t/c/g fields: %.*s", (int)(n < 120 ? n : 120), p);
            return;
        }
    }
    uint64_t now = G.now;
    if (topic != stream_topic(c->stream) || grp != stream_group(c->stream)) {
        proto_error(c,
                    "event for topic %" PRIu64 " group %" PRIu64 " reached a subscriber of "
                    "topic %u group %u",
                    topic, grp, stream_topic(c->stream), stream_group(c->stream));
        return;
    }
    c->recv++;
    G.deliveries++;
    G.t_last_delivery = now;
    uint64_t sent = G.t0 + t;
    hist_add(&G.hist, now > sent ? now - sent : 0);
    if (q == c->next_seq) {
        c->next_seq++;
    } else if (q > c->next_seq) {
        c->missing += q - c->next_seq;
        c->next_seq = q + 1;
    } else if (c->missing > 0) {
        c->missing--;
        c->reord++;
        G.reord++;
    } else {
        c->dup++;
        G.dup++;
    }
}

/* ---- subscriber side */

static void sub_send_subscribe(struct conn *c)
{
    char msg[256];
    uint32_t t = stream_topic(c->stream), g = stream_group(c->stream);
    int n;
    switch (G.peer) {
    case PEER_RINGCAST:
        if (G.groups > 1) /* distinct filter per subscriber; group g matches its events */
            n = snprintf(msg, sizeof(msg),
                         "{\"action\":\"subscribe\",\"topic\":\"t.%u\",\"id\":1,"
                         "\"filter\":{\"g\":{\"$in\":[%u,%d]}}}",
                         t, g, -1 - (int)c->idx);
        else
            n = snprintf(msg, sizeof(msg), "{\"action\":\"subscribe\",\"topic\":\"t.%u\",\"id\":1}",
                         t);
        ws_queue_frame(c, RC_WS_OP_TEXT, msg, (size_t)n);
        c->state = S_SUBSCRIBING;
        break;
    case PEER_NATS:
        n = snprintf(msg, sizeof(msg),
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n"
                     "SUB t.%u 1\r\nPING\r\n",
                     t);
        ws_queue_frame(c, RC_WS_OP_BINARY, msg, (size_t)n);
        c->state = S_SUBSCRIBING;
        break;
    case PEER_NCHAN: /* the URL subscribed it */
        c->state = S_READY;
        G.ready++;
        break;
    }
    conn_flush(c);
}

static void sub_ready(struct conn *c)
{
    if (c->state == S_SUBSCRIBING) {
        c->state = S_READY;
        G.ready++;
    }
}

/* A whole ringcast/nchan message. */
static void on_message(struct conn *c, const uint8_t *p, size_t n)
{
    const char *s = (const char *)p;
    if (G.peer == PEER_NCHAN) {
        on_payload(c, s, n);
        return;
    }
    /* ringcast: the envelope's own "type" comes first */
    if (n > 16 && memcmp(s, "{\"type\":\"event\"", 15) == 0) {
        on_payload(c, s, n);
    } else if (memmem(s, n, "\"type\":\"subscribed\"", 19)) {
        sub_ready(c);
    } else if (memmem(s, n, "\"type\":\"connected\"", 18)) {
        /* greeting */
    } else if (memmem(s, n, "\"type\":\"event\"", 14)) {
        on_payload(c, s, n);
    } else if (!memmem(s, n, "\"type\":\"heartbeat\"", 18)) {
        proto_error(c, "unexpected message: %.*s", (int)(n < 200 ? n : 200), s);
    }
}

/* NATS protocol over the WebSocket byte stream; returns bytes consumed. */
static size_t nats_parse(struct conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        const uint8_t *eol = memmem(p + off, n - off, "\r\n", 2);
        if (!eol)
            break;
        size_t ll = (size_t)(eol - (p + off));
        const char *line = (const char *)p + off;
        if (ll >= 4 && memcmp(line, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes> */
            const char *sp = line + ll;
            while (sp > line && sp[-1] != ' ')
                sp--;
            size_t len = strtoul(sp, NULL, 10);
            if (off + ll + 2 + len + 2 > n)
                break;
            on_payload(c, line + ll + 2, len);
            off += ll + 2 + len + 2;
            continue;
        }
        if (ll == 4 && memcmp(line, "PING", 4) == 0)
            ws_queue_frame(c, RC_WS_OP_BINARY, "PONG\r\n", 6);
        else if (ll == 4 && memcmp(line, "PONG", 4) == 0)
            sub_ready(c);
        else if (ll >= 4 && memcmp(line, "-ERR", 4) == 0)
            proto_error(c, "NATS: %.*s", (int)ll, line);
        /* INFO and +OK need nothing */
        off += ll + 2;
    }
    return off;
}

static void nats_feed(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->frag_len == 0) {
        size_t used = nats_parse(c, p, n);
        if (used < n) {
            buf_reserve(&c->frag, &c->frag_cap, n - used);
            memcpy(c->frag, p + used, n - used);
            c->frag_len = (uint32_t)(n - used);
        }
    } else {
        buf_reserve(&c->frag, &c->frag_cap, (size_t)c->frag_len + n);
        memcpy(c->frag + c->frag_len, p, n);
        c->frag_len += (uint32_t)n;
        size_t used = nats_parse(c, c->frag, c->frag_len);
        memmove(c->frag, c->frag + used, c->frag_len - used);
        c->frag_len -= (uint32_t)used;
    }
    if (c->out_len)
        conn_flush(c);
}

/* Server frames are unmasked (RFC 6455 5.1). Returns bytes consumed. */
/* A compressed event (RFC 7692 7.2.2: append 00 00 ff ff, inflate; the server
 * answered server_no_context_takeover, so each message starts fresh). */
static void on_compressed(struct conn *c, uint8_t *pl, size_t len)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    if (!G.zbuf && (!(G.zbuf = malloc(MAX_FRAME)) || inflateInit2(&G.inflater, -15) != Z_OK))
        die("inflate: out of memory");
    inflateReset(&G.inflater);
    G.inflater.next_out = G.zbuf;
    G.inflater.avail_out = MAX_FRAME;
    G.inflater.next_in = pl;
    G.inflater.avail_in = (uInt)len;
    int rc = inflate(&G.inflater, Z_SYNC_FLUSH);
    G.inflater.next_in = (Bytef *)(uintptr_t)tail;
    G.inflater.avail_in = 4;
    if (rc == Z_OK)
        rc = inflate(&G.inflater, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
        conn_kill(c, "compressed frame does not inflate");
        return;
    }
    on_message(c, G.zbuf, MAX_FRAME - G.inflater.avail_out);
}

static size_t ws_parse(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (c->fd >= 0 && n - off >= 2) {
        uint8_t b0 = p[off], b1 = p[off + 1];
        if (b1 & 0x80) {
            conn_kill(c, "server sent a masked frame (RFC 6455 5.1 forbids it)");
            return n;
        }
        uint64_t len = b1 & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)p[off + 2] << 8 | p[off + 3];
            h = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[off + 2 + i];
            h = 10;
        }
        if (len > MAX_FRAME) {
            conn_kill(c, "server frame longer than 1 MiB");
            return n;
        }
        if (n - off < h + len)
            break;
        uint8_t *pl = p + off + h;
        unsigned op = b0 & 0x0f;
        bool fin = b0 & 0x80;
        off += h + (size_t)len;
        if (op == RC_WS_OP_PING) {
            ws_queue_frame(c, RC_WS_OP_PONG, pl, (size_t)len);
            conn_flush(c);
        } else if (op == RC_WS_OP_CLOSE) {
            conn_kill(c, "server closed the WebSocket");
            return n;
        } else if (op == RC_WS_OP_PONG) {
        } else if (G.peer == PEER_NATS) {
            nats_feed(c, pl, (size_t)len);
        } else if (fin && op == RC_WS_OP_TEXT && (b0 & 0x40)) {
            on_compressed(c, pl, (size_t)len); /* permessage-deflate, one frame */
        } else if (fin && op != RC_WS_OP_CONT && c->frag_len == 0) {
            on_message(c, pl, (size_t)len);
        } else { /* fragmented message (RFC 6455 5.4) */
            buf_reserve(&c->frag, &c->frag_cap, (size_t)c->frag_len + len);
            memcpy(c->frag + c->frag_len, pl, (size_t)len);
            c->frag_len += (uint32_t)len;
            if (fin) {
                on_message(c, c->frag, c->frag_len);
                c->frag_len = 0;
            }
        }
    }
    return off;
}

/* Handshake response: 101 and the right Sec-WebSocket-Accept (RFC 6455 4.1). */
static size_t sub_handshake(struct conn *c, uint8_t *p, size_t n)
{
    uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hl = (size_t)(end - p) + 4;
    if (hl < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
        conn_kill(c, "handshake refused");
        fprintf(stderr, "loadgen: handshake answer: %.*s\n", (int)(hl < 300 ? hl : 300), p);
        return n;
    }
    bool ok = false;
    for (uint8_t *l = p; l < end;) {
        uint8_t *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        size_t ll = (size_t)(e - l);
        if (ll > 21 && strncasecmp((char *)l, "sec-websocket-accept:", 21) == 0) {
            uint8_t *v = l + 21;
            while (*v == ' ')
                v++;
            ok = (size_t)(e - v) >= 28 && memcmp(v, c->accept, 28) == 0;
        }
        l = e + 2;
    }
    if (!ok) {
        conn_kill(c, "Sec-WebSocket-Accept missing or wrong");
        return n;
    }
    G.connected++;
    G.handshaking--;
    if (G.connected == G.subs)
        G.t_connect1 = now_ns();
    if (G.idle) {
        c->state = S_READY;
        G.ready++;
    } else {
        sub_send_subscribe(c);
    }
    return hl;
}

static void sub_start(struct conn *c)
{
    uint8_t rnd[16];
    char key[25], path[64];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        die("getrandom: %s", strerror(errno));
    base64(rnd, 16, key);
    if (rc_ws_accept_key(rc_slice_make(key, 24), c->accept) != 0)
        die("rc_ws_accept_key failed");
    if (G.peer == PEER_NCHAN)
        snprintf(path, sizeof(path), "/sub/t.%u", stream_topic(c->stream));
    else if (G.peer == PEER_NATS)
        snprintf(path, sizeof(path), "/");
    else
        snprintf(path, sizeof(path), "/api/realtime/ws");
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, G.port, key,
                     G.compress ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    conn_queue(c, req, (size_t)n);
    c->state = S_HANDSHAKE;
    conn_flush(c);
}

/* ---- publisher side */

/* HTTP responses; returns bytes consumed. Content-Length or chunked bodies. */
static size_t pub_http_parse(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint8_t *end = memmem(p + off, n - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hl = (size_t)(end - (p + off)) + 4;
        const char *h = (const char *)p + off;
        if (hl < 12 || memcmp(h, "HTTP/1.", 7) != 0) {
            conn_kill(c, "publisher: not an HTTP response");
            return n;
        }
        int status = atoi(h + 9);
        size_t clen = 0;
        bool chunked = false;
        for (const char *l = h; l < (const char *)end;) {
            const char *e = memmem(l, (size_t)((const char *)end + 2 - l), "\r\n", 2);
            if (strncasecmp(l, "content-length:", 15) == 0)
                clen = strtoul(l + 15, NULL, 10);
            else if (strncasecmp(l, "transfer-encoding:", 18) == 0 &&
                     memmem(l, (size_t)(e - l), "chunked", 7))
                chunked = true;
            l = e + 2;
        }
        size_t body_end = off + hl;
        if (chunked) {
            for (;;) {
                uint8_t *le = memmem(p + body_end, n - body_end, "\r\n", 2);
                if (!le)
                    return off;
                size_t cl = strtoul((char *)p + body_end, NULL, 16);
                size_t next = (size_t)(le - p) + 2 + cl + 2;
                if (next > n)
                    return off;
                body_end = next;
                if (cl == 0)
                    break;
            }
        } else {
            if (body_end + clen > n)
                break;
            body_end += clen;
        }
        if (status == 200 && G.batch > 1 &&
            memmem(p + off + hl, body_end - off - hl, "\"error\"", 7)) {
            G.pub_errors++;
            proto_error(c, "a batch answered an error: %.*s",
                        (int)(body_end - off - hl < 300 ? body_end - off - hl : 300),
                        (const char *)p + off + hl);
        }
        if (status < 200 || status > 299) {
            G.pub_errors++;
            proto_error(c, "publish answered %d: %.*s", status,
                        (int)(body_end - off < 300 ? body_end - off : 300), h);
        }
        if (c->inflight) {
            uint32_t slot = (c->sent_head + G.pipeline - c->inflight) % G.pipeline;
            uint64_t now = now_ns();
            hist_add(&G.ack, now - c->sent_at[slot]);
            c->inflight--;
        }
        G.answered++;
        off = body_end;
    }
    return off;
}

static size_t pub_nats_parse(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint8_t *eol = memmem(p + off, n - off, "\r\n", 2);
        if (!eol)
            break;
        size_t ll = (size_t)(eol - (p + off));
        const char *line = (const char *)p + off;
        if (ll == 4 && memcmp(line, "PONG", 4) == 0) {
            if (c->inflight)
                c->inflight--;
        } else if (ll == 4 && memcmp(line, "PING", 4) == 0) {
            conn_queue(c, "PONG\r\n", 6);
            conn_flush(c);
        } else if (ll >= 4 && memcmp(line, "-ERR", 4) == 0) {
            G.pub_errors++;
            proto_error(c, "NATS publisher: %.*s", (int)ll, line);
        }
        off += ll + 2;
    }
    return off;
}

#define NATS_PING_EVERY 64

/* --batch: send the events collected on c as one request. */
static void pub_emit_batch(struct conn *c)
{
    if (c->bn == 0)
        return;
    char head[160];
    int hl = snprintf(head, sizeof(head),
                      "POST /api/realtime/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"
                      "{\"events\":[",
                      c->blen + 13);
    conn_queue(c, head, (size_t)hl);
    conn_queue(c, c->bbuf, c->blen);
    conn_queue(c, "]}", 2);
    c->sent_at[c->sent_head] = now_ns();
    c->sent_head = (c->sent_head + 1) % G.pipeline;
    c->inflight++;
    c->bn = 0;
    c->blen = 0;
}

/* --batch: add one event to c's request; sent when it holds G.batch. */
static void pub_add_batch(struct conn *c, const char *ev, size_t n)
{
    if (c->blen + n + 1 > c->bcap) {
        size_t cap = (c->blen + n + 1) * 2;
        char *b = realloc(c->bbuf, cap);
        if (!b) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(2);
        }
        c->bbuf = b;
        c->bcap = cap;
    }
    if (c->bn)
        c->bbuf[c->blen++] = ',';
    memcpy(c->bbuf + c->blen, ev, n);
    c->blen += n;
    if (++c->bn == G.batch)
        pub_emit_batch(c);
}

/* Queue one publication of stream s on publisher c. */
static void pub_one(struct conn *c, uint32_t s)
{
    char payload[4096], req[4608];
    uint64_t seq = G.pub_seq[s]++;
    size_t pl = make_payload(payload, sizeof(payload), s, seq, now_ns() - G.t0);
    int n;
    uint32_t t = stream_topic(s);
    switch (G.peer) {
    case PEER_RINGCAST: {
        char body[4300];
        int bl = snprintf(body, sizeof(body), "{\"topic\":\"t.%u\",\"type\":\"m\",\"data\":%.*s}",
                          t, (int)pl, payload);
        if (G.batch > 1) {
            pub_add_batch(c, body, (size_t)bl);
            G.published++;
            G.expected += G.subs_per_stream[s];
            return;
        }
        n = snprintf(req, sizeof(req),
                     "POST /api/realtime/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     bl, body);
        c->sent_at[c->sent_head] = now_ns();
        c->sent_head = (c->sent_head + 1) % G.pipeline;
        c->inflight++;
        break;
    }
    case PEER_NCHAN:
        n = snprintf(req, sizeof(req),
                     "POST /pub/t.%u HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
                     t, pl, (int)pl, payload);
        c->sent_at[c->sent_head] = now_ns();
        c->sent_head = (c->sent_head + 1) % G.pipeline;
        c->inflight++;
        break;
    default:
        n = snprintf(req, sizeof(req), "PUB t.%u %zu\r\n%.*s\r\n", t, pl, (int)pl, payload);
        if ((G.published + 1) % NATS_PING_EVERY == 0) {
            memcpy(req + n, "PING\r\n", 6);
            n += 6;
            c->inflight++;
        }
        break;
    }
    conn_queue(c, req, (size_t)n);
    G.published++;
    G.expected += G.subs_per_stream[s];
}

static bool pub_has_room(const struct conn *c)
{
    if (c->fd < 0)
        return false;
    if (G.peer == PEER_NATS)
        return c->inflight * NATS_PING_EVERY < G.pipeline;
    return c->inflight < G.pipeline;
}

/* Publish as much as the window, the pipeline caps and the rate allow. */
static void pub_pump(uint64_t now)
{
    if (G.published >= G.events || G.t_pub0 == 0)
        return;
    if (G.rate <= 0 && G.duration > 0 && (double)(now - G.t_pub0) / 1e9 >= G.duration) {
        G.events = G.published; /* --duration ends the publish phase early */
        G.t_pub_end = now;
        return;
    }
    uint64_t allowed = G.events;
    if (G.rate > 0) {
        double el = (double)(now - G.t_pub0) / 1e9;
        uint64_t due = (uint64_t)(el * G.rate) + 1;
        if (due < allowed)
            allowed = due;
    }
    uint32_t nstreams = G.topics * G.groups;
    double avg = (double)G.subs / nstreams;
    uint64_t window_deliv = (uint64_t)((double)G.window * avg + 0.5);
    uint32_t first = G.nconn - G.pubs;
    /* A stream is always published on the same connection (stream % K): requests
     * on one connection are handled in order, across connections they are not,
     * so this is what makes per-topic order a property of the server. */
    while (G.published < allowed) {
        if (G.rate <= 0 && window_deliv > 0 && G.expected - G.deliveries >= window_deliv)
            break;
        uint32_t s = (uint32_t)(G.published % nstreams);
        struct conn *c = &G.c[first + s % G.pubs];
        if (!pub_has_room(c))
            break;
        pub_one(c, s);
    }
    for (uint32_t i = 0; i < G.pubs; i++) {
        struct conn *c = &G.c[first + i];
        if (c->fd >= 0)
            pub_emit_batch(c); /* what this turn collected, even if short of --batch */
        if (c->fd >= 0 && c->out_len > c->out_off && !c->want_out)
            conn_flush(c);
    }
    if (G.published >= G.events) {
        G.t_pub_end = now_ns();
        /* NATS: one last PING so every PUB is known to be read */
        if (G.peer == PEER_NATS) {
            struct conn *c = &G.c[first];
            conn_queue(c, "PING\r\n", 6);
            c->inflight++;
            conn_flush(c);
        }
    }
}

/* ---- connections and the loop */

static int tcp_open(int port, uint32_t i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* one source address has ~28k ephemeral ports, and runs that follow each other
     * leave TIME_WAIT behind: spread the sources over 127.0.0.1-8 (the target
     * stays 127.0.0.1) */
    if (G.subs > 1000) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(0x7f000001u + (i % 8))};
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void conn_open(struct conn *c, int port)
{
    int fd = tcp_open(port, c->idx);
    if (fd < 0)
        die("connect to 127.0.0.1:%d failed: %s (is the server up? ulimit -n?)", port,
            strerror(-fd));
    c->fd = fd;
    c->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = c->idx};
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl ADD: %s", strerror(errno));
    c->want_out = true;
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        conn_kill(c, strerror(err));
        return;
    }
    ep_set(c, false);
    if (c->kind == K_SUB) {
        sub_start(c);
    } else {
        c->state = S_READY;
        if (c->kind == K_PUB_NATS) {
            conn_queue(c, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n", 44);
            conn_flush(c);
        }
    }
}

static void on_readable(struct conn *c)
{
    for (;;) {
        uint8_t *b = G.rbuf;
        size_t have = c->in_len;
        if (have)
            memcpy(b, c->in, have);
        size_t room = RBUF_SIZE - have;
        if (G.recv_chunk && room > G.recv_chunk)
            room = G.recv_chunk; /* test mode: force partial frames */
        ssize_t r = recv(c->fd, b + have, room, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_kill(c, strerror(errno));
            return;
        }
        if (r == 0) {
            conn_kill(c, c->kind == K_SUB ? "subscriber connection closed by the server"
                                          : "publisher connection closed by the server");
            return;
        }
        size_t n = have + (size_t)r, used = 0;
        G.now = now_ns();
        if (c->kind == K_SUB)
            G.sub_rx_bytes += (uint64_t)r;
        if (c->kind == K_SUB) {
            if (c->state == S_HANDSHAKE)
                used = sub_handshake(c, b, n);
            if (c->fd >= 0 && c->state != S_HANDSHAKE)
                used += ws_parse(c, b + used, n - used);
        } else if (c->kind == K_PUB_HTTP) {
            used = pub_http_parse(c, b, n);
        } else {
            used = pub_nats_parse(c, b, n);
        }
        if (c->fd < 0)
            return;
        c->in_len = 0;
        if (used < n) {
            if (n - used > MAX_FRAME + 16) {
                conn_kill(c, "incomplete unit longer than 1 MiB");
                return;
            }
            buf_reserve(&c->in, &c->in_cap, n - used);
            memcpy(c->in, b + used, n - used);
            c->in_len = (uint32_t)(n - used);
        } else if (c->in_cap > 65536) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        if ((size_t)r < room)
            return;
    }
}

static void loop_once(int timeout_ms)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(G.ep, evs, 1024, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        struct conn *c = &G.c[evs[i].data.u32];
        if (c->fd < 0)
            continue;
        if (c->state == S_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
        if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
            conn_flush(c);
    }
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Server CPU (user+system) from /proc/PID/stat, in seconds; -1 if unknown.
 * Its unit is a clock tick (10 ms), so cpu_server_s prefers the per-thread
 * schedstat run times (ns) and falls back to this. */
static double cpu_pid_stat_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* fields after comm: state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Sum of /proc/PID/task/TID/schedstat run times (ns on CPU, user and kernel). */
static double cpu_pid_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return cpu_pid_stat_s(pid);
    uint64_t sum = 0;
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char p2[320];
        snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        unsigned long long ns;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += ns;
            any = true;
        }
        fclose(f);
    }
    closedir(d);
    return any ? (double)sum / 1e9 : cpu_pid_stat_s(pid);
}

/* The server's CPU, plus that of every --cpu-pid process; -1 if unknown. */
static double cpu_server_s(void)
{
    double t = cpu_pid_s(G.server_pid);
    for (unsigned i = 0; t >= 0 && i < G.ncpu_pids; i++) {
        double x = cpu_pid_s(G.cpu_pids[i]);
        t = x >= 0 ? t + x : -1;
    }
    return t;
}

static long rss_server_kb(void)
{
    if (G.server_pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", G.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void usage(void)
{
    fputs("usage: loadgen [options]   (targets 127.0.0.1 only)\n"
          "  --peer=ringcast|nchan|nats   server protocol (ringcast)\n"
          "  --host=127.0.0.1             anything else is refused\n"
          "  --port=N                     WebSocket/HTTP port of the server (required)\n"
          "  --pub-port=N                 NATS client port for PUB (nats only)\n"
          "  --port2=N                    every other subscriber connects to this port (a\n"
          "                               second node: the cluster case); publishers use --port\n"
          "  --cpu-pid=PID                add this process's CPU to the server's (repeatable, 4)\n"
          "  --subscribers=N --topics=C   subscribers spread over topics (1000, 1)\n"
          "  --groups=G                   ringcast: distinct filters, N/G subscribers match each "
          "event\n"
          "  --events=M --size=B          publications and payload bytes (2000, 64)\n"
          "  --text-pad                   pad payloads with words (compress like JSON text)\n"
          "  --compress                   ringcast: subscribers offer permessage-deflate\n"
          "  --publishers=K --pipeline=D  publishing connections and unanswered requests per "
          "connection (4, 64)\n"
          "  --batch=N                    ringcast: N events per publish request "
          "({\"events\":[...]}),\n"
          "                               1..100 (default 1: one event per request)\n"
          "  --window=W                   undelivered publications allowed in flight (64)\n"
          "  --rate=R                     events/s instead of as fast as possible\n"
          "  --duration=S                 with --rate and no --events: publish for S seconds;\n"
          "                               otherwise stop publishing after S seconds\n"
          "  --timeout=S                  whole run bound (120); --drain=S wait after the last "
          "delivery (5)\n"
          "  --connect-inflight=N         handshakes in flight at once (256)\n"
          "  --idle                       only open N connections; report RSS per connection\n"
          "  --settle=S                   idle mode: wait before reading RSS (2)\n"
          "  --server-pid=PID             read server CPU and RSS from /proc/PID\n"
          "  --case=NAME --quiet\n"
          "  --recv-chunk=N               test the parsers: read at most N bytes per recv\n",
          stderr);
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi)
        die("--%s=%s is not a number in %g..%g", name, v, lo, hi);
    return d;
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"peer", 1, 0, 'P'},       {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
        {"pub-port", 1, 0, 'Q'},   {"subscribers", 1, 0, 'n'}, {"topics", 1, 0, 'c'},
        {"groups", 1, 0, 'g'},     {"events", 1, 0, 'm'},      {"size", 1, 0, 's'},
        {"publishers", 1, 0, 'k'}, {"pipeline", 1, 0, 'd'},    {"batch", 1, 0, 'B'},
        {"window", 1, 0, 'w'},     {"rate", 1, 0, 'r'},        {"duration", 1, 0, 'D'},
        {"timeout", 1, 0, 'T'},    {"drain", 1, 0, 'R'},       {"connect-inflight", 1, 0, 'i'},
        {"idle", 0, 0, 'I'},       {"settle", 1, 0, 'S'},      {"server-pid", 1, 0, 'x'},
        {"cpu-pid", 1, 0, 'X'},    {"port2", 1, 0, '2'},       {"case", 1, 0, 'C'},
        {"quiet", 0, 0, 'q'},      {"recv-chunk", 1, 0, 'Z'},  {"compress", 0, 0, 'z'},
        {"text-pad", 0, 0, 'W'},   {"help", 0, 0, 'h'},        {0, 0, 0, 0},
    };
    G.peer = PEER_RINGCAST;
    G.case_name = "custom";
    G.subs = 1000;
    G.topics = 1;
    G.groups = 1;
    G.events = 2000;
    G.size = 64;
    G.pubs = 4;
    G.batch = 1;
    G.pipeline = 64;
    G.window = 64;
    G.timeout = 120;
    G.drain = 5;
    G.connect_inflight = 256;
    G.settle = 2;
    bool events_set = false;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'P':
            if (!strcmp(optarg, "ringcast"))
                G.peer = PEER_RINGCAST;
            else if (!strcmp(optarg, "nchan"))
                G.peer = PEER_NCHAN;
            else if (!strcmp(optarg, "nats"))
                G.peer = PEER_NATS;
            else
                die("--peer=%s is unknown; use ringcast, nchan or nats", optarg);
            break;
        case 'H':
            if (strcmp(optarg, "127.0.0.1") && strcmp(optarg, "localhost"))
                die("--host=%s refused: the load generator only targets 127.0.0.1", optarg);
            break;
        case 'p':
            G.port = (int)num_arg("port", optarg, 1, 65535);
            break;
        case 'Q':
            G.pub_port = (int)num_arg("pub-port", optarg, 1, 65535);
            break;
        case 'n':
            G.subs = (uint32_t)num_arg("subscribers", optarg, 1, 1e6);
            break;
        case 'c':
            G.topics = (uint32_t)num_arg("topics", optarg, 1, 1e6);
            break;
        case 'g':
            G.groups = (uint32_t)num_arg("groups", optarg, 1, 1e6);
            break;
        case 'm':
            G.events = (uint64_t)num_arg("events", optarg, 0, 1e10);
            events_set = true;
            break;
        case 's':
            G.size = (uint32_t)num_arg("size", optarg, 16, 4000);
            break;
        case 'z':
            G.compress = true;
            break;
        case 'W':
            G.text_pad = true;
            break;
        case 'k':
            G.pubs = (uint32_t)num_arg("publishers", optarg, 1, 1024);
            break;
        case 'd':
            G.pipeline = (uint32_t)num_arg("pipeline", optarg, 1, 1e6);
            break;
        case 'B':
            G.batch = (uint32_t)num_arg("batch", optarg, 1, 100);
            break;
        case 'w':
            G.window = (uint32_t)num_arg("window", optarg, 0, 1e9);
            break;
        case 'r':
            G.rate = num_arg("rate", optarg, 0, 1e9);
            break;
        case 'D':
            G.duration = num_arg("duration", optarg, 0, 3600);
            break;
        case 'T':
            G.timeout = num_arg("timeout", optarg, 1, 3600);
            break;
        case 'R':
            G.drain = num_arg("drain", optarg, 0.1, 600);
            break;
        case 'i':
            G.connect_inflight = (uint32_t)num_arg("connect-inflight", optarg, 1, 1e6);
            break;
        case 'I':
            G.idle = true;
            break;
        case 'S':
            G.settle = num_arg("settle", optarg, 0, 600);
            break;
        case 'x':
            G.server_pid = (int)num_arg("server-pid", optarg, 1, 1e9);
            break;
        case 'X':
            if (G.ncpu_pids == RC_ARRAY_LEN(G.cpu_pids))
                die("--cpu-pid: at most %zu", RC_ARRAY_LEN(G.cpu_pids));
            G.cpu_pids[G.ncpu_pids++] = (int)num_arg("cpu-pid", optarg, 1, 1e9);
            break;
        case '2':
            G.port2 = (int)num_arg("port2", optarg, 1, 65535);
            break;
        case 'C':
            G.case_name = optarg;
            break;
        case 'Z':
            G.recv_chunk = (uint32_t)num_arg("recv-chunk", optarg, 1, RBUF_SIZE);
            break;
        case 'q':
            G.quiet = true;
            break;
        case 'h':
            usage();
            exit(0);
        default:
            usage();
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument \"%s\"; see --help", argv[optind]);
    if (!G.port)
        die("--port is required");
    if (G.peer == PEER_NATS && !G.pub_port)
        die("--peer=nats needs --pub-port (the NATS client port)");
    if (G.groups > 1 && G.peer != PEER_RINGCAST)
        die("--groups needs filters: ringcast only");
    if (G.rate > 0 && G.duration > 0 && !events_set)
        G.events = (uint64_t)(G.rate * G.duration);
    /* stream s is always published on connection s % K: more connections than
     * streams would sit idle (and a server may time an idle one out) */
    if (G.pubs > G.topics * G.groups)
        G.pubs = G.topics * G.groups;
    if ((uint64_t)G.topics * G.groups > G.subs)
        die("%u streams (topics x groups) but only %u subscribers; every stream needs one",
            G.topics * G.groups, G.subs);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((uint64_t)G.subs + G.pubs + 64 > rl.rlim_cur)
        die("%u connections need more file descriptors than the limit %lu; lower "
            "--subscribers or raise the hard limit (ulimit -Hn)",
            G.subs + G.pubs, (unsigned long)rl.rlim_cur);
}

static void progress(const char *phase)
{
    if (G.quiet)
        return;
    fprintf(stderr,
            "loadgen: %.1fs %s connected=%u ready=%u dead=%u published=%" PRIu64
            " deliveries=%" PRIu64 "/%" PRIu64 " errors=%" PRIu64 "\n",
            (double)(now_ns() - G.t0) / 1e9, phase, G.connected, G.ready, G.dead, G.published,
            G.deliveries, G.expected, G.proto_errors);
}

static const char *peer_name(void)
{
    return G.peer == PEER_RINGCAST ? "ringcast" : G.peer == PEER_NCHAN ? "nchan" : "nats";
}

/* Nonce, buffers, epoll and the connection table (subscribers, then publishers). */
static void setup(void)
{
    uint8_t rn[8];
    if (getrandom(rn, sizeof(rn), 0) != sizeof(rn))
        die("getrandom: %s", strerror(errno));
    for (int i = 0; i < 8; i++)
        snprintf(G.nonce + 2 * i, 3, "%02x", rn[i]);
    srandom((unsigned)rn[0] << 8 | rn[1]);
    G.nonce_key_len = (size_t)snprintf(G.nonce_key, sizeof(G.nonce_key), "{\"r\":\"%s\"", G.nonce);
    G.rbuf = malloc(RBUF_SIZE);
    G.ep = epoll_create1(EPOLL_CLOEXEC);
    uint32_t nstreams = G.topics * G.groups;
    G.nconn = G.subs + (G.idle ? 0 : G.pubs);
    G.c = calloc(G.nconn, sizeof(*G.c));
    G.subs_per_stream = calloc(nstreams, sizeof(uint32_t));
    G.pub_seq = calloc(nstreams, sizeof(uint64_t));
    if (!G.rbuf || G.ep < 0 || !G.c || !G.subs_per_stream || !G.pub_seq)
        die("set-up failed (memory or epoll)");
    for (uint32_t i = 0; i < G.nconn; i++) {
        struct conn *c = &G.c[i];
        c->fd = -1;
        c->idx = i;
        if (i < G.subs) {
            c->kind = K_SUB;
            c->stream = i % nstreams;
            G.subs_per_stream[c->stream]++;
        } else {
            c->kind = G.peer == PEER_NATS ? K_PUB_NATS : K_PUB_HTTP;
            c->sent_at = calloc(G.pipeline, sizeof(uint64_t));
            if (!c->sent_at)
                die("out of memory");
        }
    }
}

static void tick(const char *phase, uint64_t now)
{
    if (now >= G.next_progress) {
        progress(phase);
        G.next_progress += 1000000000u;
    }
}

/* Phase 1: open every subscriber, handshake, subscribe. true when all are ready. */
static bool phase_connect(void)
{
    G.t_connect0 = now_ns();
    while (G.ready + G.dead < G.subs && !g_stop) {
        while (G.next_to_connect < G.subs && G.handshaking < G.connect_inflight) {
            uint32_t k = G.next_to_connect++;
            conn_open(&G.c[k], G.port2 && (k & 1) ? G.port2 : G.port);
            G.handshaking++;
        }
        loop_once(10);
        uint64_t now = now_ns();
        tick("connect", now);
        if (now >= G.deadline)
            break;
    }
    if (!G.t_connect1)
        G.t_connect1 = now_ns();
    if (G.ready != G.subs)
        fprintf(stderr, "loadgen: only %u of %u subscribers ready (%u dead)\n", G.ready, G.subs,
                G.dead);
    return G.ready == G.subs;
}

static double connect_secs(void)
{
    return (double)(G.t_connect1 - G.t_connect0) / 1e9;
}

static double handshakes_per_s(void)
{
    double s = connect_secs();
    return s > 0 ? G.connected / s : 0;
}

/* Idle mode: hold the connections for --settle, then report server RSS. */
static int report_idle(bool setup_ok, long rss0)
{
    uint64_t until = now_ns() + (uint64_t)(G.settle * 1e9);
    while (now_ns() < until && !g_stop)
        loop_once(50);
    long rss1 = rss_server_kb();
    double per =
        rss0 >= 0 && rss1 >= 0 && G.connected ? (double)(rss1 - rss0) * 1024.0 / G.connected : -1;
    printf("{\"case\":\"%s\",\"peer\":\"%s\",\"mode\":\"idle\",\"connections\":%u,"
           "\"connected\":%u,\"dead\":%u,\"connect_s\":%.3f,\"handshakes_per_s\":%.0f,"
           "\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_bytes_per_conn\":%.0f,"
           "\"loadgen_cpu_s\":%.3f,\"errors\":%" PRIu64 "}\n",
           G.case_name, peer_name(), G.subs, G.connected, G.dead, connect_secs(),
           handshakes_per_s(), rss0, rss1, per, cpu_self_s(), G.proto_errors);
    fflush(stdout);
    return setup_ok && G.proto_errors == 0 ? 0 : 1;
}

/* Phase 2: open the publishers and wait until all are connected. */
static bool open_publishers(void)
{
    for (uint32_t i = G.subs; i < G.nconn; i++)
        conn_open(&G.c[i], G.peer == PEER_NATS ? G.pub_port : G.port);
    while (!g_stop) {
        uint32_t up = 0;
        for (uint32_t i = G.subs; i < G.nconn; i++)
            up += G.c[i].state == S_READY;
        if (up == G.pubs)
            return true;
        loop_once(10);
        if (now_ns() >= G.deadline)
            break;
    }
    fprintf(stderr, "loadgen: publishers could not connect\n");
    return false;
}

/* Phase 3: publish and drain. Ends when everything expected arrived, when
 * nothing arrived for --drain after the last publication, or at --timeout. */
static void phase_publish(void)
{
    G.t_pub0 = now_ns();
    const char *phase = "publish";
    uint64_t drain_ns = (uint64_t)(G.drain * 1e9);
    while (!g_stop) {
        uint64_t now = now_ns();
        pub_pump(now);
        bool done_pub = G.published >= G.events;
        if (done_pub && G.deliveries >= G.expected)
            break;
        if (done_pub) {
            phase = "drain";
            uint64_t last = G.t_last_delivery > G.t_pub_end ? G.t_last_delivery : G.t_pub_end;
            if (now > last && now - last > drain_ns)
                break;
        }
        if (now >= G.deadline) {
            fprintf(stderr, "loadgen: --timeout reached\n");
            break;
        }
        tick(phase, now);
        loop_once(1);
    }
}

/* Deliveries each subscriber should have had and did not (duplicates do not count). */
static uint64_t count_lost(void)
{
    uint64_t lost = 0;
    for (uint32_t i = 0; i < G.subs; i++) {
        struct conn *c = &G.c[i];
        uint64_t want = G.pub_seq[c->stream];
        uint64_t uniq = c->recv - c->dup;
        if (uniq < want)
            lost += want - uniq;
    }
    return lost;
}

struct cpu_span {
    double server0, server1, self0, self1;
};

static int report_run(bool setup_ok, const struct cpu_span *cpu)
{
    uint64_t t_end = G.t_last_delivery > G.t_pub0 ? G.t_last_delivery : now_ns();
    uint64_t lost = count_lost();
    double el = (double)(t_end - G.t_pub0) / 1e9;
    double scpu = cpu->server0 >= 0 && cpu->server1 >= 0 ? cpu->server1 - cpu->server0 : -1;
    double lcpu = cpu->self1 - cpu->self0;
    printf("{\"case\":\"%s\",\"peer\":\"%s\",\"subscribers\":%u,\"topics\":%u,\"groups\":%u,"
           "\"events\":%" PRIu64 ",\"size\":%u,\"rate\":%.0f,\"expected\":%" PRIu64
           ",\"deliveries\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64
           ",\"reordered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"foreign\":%" PRIu64
           ",\"elapsed_s\":%.4f,\"deliveries_per_s\":%.0f,\"publications_per_s\":%.0f,"
           "\"server_cpu_s\":%.4f,\"ns_per_delivery\":%.1f,\"loadgen_cpu_s\":%.4f,"
           "\"loadgen_busy\":%.2f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
           "\"ack_p50_us\":%.1f,\"ack_p99_us\":%.1f,\"connect_s\":%.3f,\"handshakes_per_s\":%.0f,"
           "\"compress\":%s,\"wire_bytes_per_delivery\":%.1f}\n",
           G.case_name, peer_name(), G.subs, G.topics, G.groups, G.published, G.size, G.rate,
           G.expected, G.deliveries, lost, G.dup, G.reord, G.proto_errors, G.foreign, el,
           el > 0 ? (double)G.deliveries / el : 0, el > 0 ? (double)G.published / el : 0, scpu,
           scpu >= 0 && G.deliveries ? scpu * 1e9 / (double)G.deliveries : -1, lcpu,
           el > 0 ? lcpu / el : 0, (double)hist_pct(&G.hist, 0.5) / 1e3,
           (double)hist_pct(&G.hist, 0.99) / 1e3, (double)hist_pct(&G.hist, 0.999) / 1e3,
           (double)G.hist.max / 1e3, (double)hist_pct(&G.ack, 0.5) / 1e3,
           (double)hist_pct(&G.ack, 0.99) / 1e3, connect_secs(), handshakes_per_s(),
           G.compress ? "true" : "false",
           G.deliveries ? (double)G.sub_rx_bytes / (double)G.deliveries : 0);
    fflush(stdout);
    if (G.err_first[0])
        fprintf(stderr, "loadgen: first error: %s\n", G.err_first);
    bool ok = setup_ok && lost == 0 && G.dup == 0 && G.reord == 0 && G.proto_errors == 0 &&
              G.published == G.events && !g_stop;
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    setup();
    G.t0 = now_ns();
    G.deadline = G.t0 + (uint64_t)(G.timeout * 1e9);
    G.next_progress = G.t0 + 1000000000u;
    long rss0 = rss_server_kb();

    bool setup_ok = phase_connect();
    if (G.idle)
        return report_idle(setup_ok, rss0);
    setup_ok = setup_ok && open_publishers();
    struct cpu_span cpu = {.server0 = cpu_server_s(), .self0 = cpu_self_s()};
    if (setup_ok)
        phase_publish();
    cpu.server1 = cpu_server_s();
    cpu.self1 = cpu_self_s();
    progress("done");
    return report_run(setup_ok, &cpu);
}
