/* conn.h - one client connection (HTTP, then maybe WebSocket or SSE).
 *
 * Owner: the shard that accepted it. Other threads never touch it; they post
 *   an rc_post carrying the connection id to that shard's inbox.
 * Identity: id = | shard:8 | gen:24 | slot:32 |. The slot indexes the shard's
 *   table, the generation tells a reused slot apart, and the shard field lets
 *   any thread route a message for a connection id straight to its owner.
 *   Clients see it as 16 lower-case hex digits.
 * Output: an iovec ring. Each segment is a byte run plus what keeps it alive
 *   (an evbuf reference, a subscription's local reference, or an owned heap
 *   block). At most one send is in flight; segments are popped when sent.
 *   Invariant: out.bytes <= max_pending_bytes, else the connection is closed
 *   as a slow consumer. HTTP answers are the exception: the HTTP session
 *   stops taking requests and reading while max_pending_bytes of answers are
 *   unsent (http.h), so one answer larger than the cap is still delivered.
 * Input: data is parsed straight from the provided recv buffer; only a
 *   partial unit (request head, frame) is copied into `in`, which is freed
 *   when it empties, so an idle connection holds no receive memory.
 * Events: the shard calls up only through c->ops (struct rc_conn_ops below):
 *   the ops registered at start (the HTTP session's) are installed at accept;
 *   an upgrade replaces them (WebSocket, SSE). The loop knows no protocol.
 * Lifetime: shard conn pool; released once closed and no SQE is in flight. */
#ifndef RINGCAST_CONN_H
#define RINGCAST_CONN_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ringcast/common.h"
#include "ringcast/evbuf.h"
#include "ringcast/http_parse.h"
#include "ringcast/limits.h"
#include "ringcast/ticket.h"
#include "ringcast/timer.h"
#include "ringcast/ws_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_shard;
struct rc_conn;
struct rc_auth_identity;
struct rc_http_pending;
struct rc_sse_cursor;
struct rc_proxy;

enum rc_conn_proto { RC_PROTO_HTTP, RC_PROTO_WS, RC_PROTO_SSE };

/* Why a WebSocket/SSE connection closed (the disconnect webhook's reason;
 * words in src/webhook/webhook_body.c). The first cause set wins; unset at
 * release means the peer closed (peer_closed, close frame) or the server did
 * for another reason (RC_CLOSE_SERVER). Append new causes before RC_CLOSE_NREASONS. */
enum rc_conn_close_reason {
    RC_CLOSE_UNSET,
    RC_CLOSE_CLIENT,            /* client_close: close frame, FIN or reset */
    RC_CLOSE_HEARTBEAT_TIMEOUT, /* heartbeat_timeout */
    RC_CLOSE_SLOW_CONSUMER,     /* slow_consumer: output over max_pending_bytes */
    RC_CLOSE_DRAIN,             /* drain: SIGTERM */
    RC_CLOSE_SERVER,            /* server_close: auth, rate limit, protocol error, memory */
    RC_CLOSE_CONNECTION_LIMIT,  /* connection_limit: max_connections_per_user */
    RC_CLOSE_ADMIN,             /* admin_disconnect: POST /api/realtime/disconnect */
    RC_CLOSE_NREASONS
};

/* The listener a connection came through: the main one (listen_address:port,
 * every shard), or metrics_address (shard 0 only), whose connections are
 * served /metrics and /healthz and nothing else (api_router.c). */
enum rc_conn_listener { RC_LISTENER_MAIN, RC_LISTENER_METRICS };

enum rc_conn_state {
    RC_CONN_OPEN,
    RC_CONN_FLUSHING, /* send what is queued, then shut down writing (error replies, drain) */
    RC_CONN_LINGER,   /* FIN sent; discard input until EOF or the linger deadline */
    RC_CONN_CLOSED,   /* fd shut down; waiting for in-flight SQEs to complete */
};

/* how a segment's bytes are kept alive (low bits of out.ref[i]) */
enum rc_seg_kind { RC_SEG_STATIC = 0, RC_SEG_OWNED = 1, RC_SEG_EVBUF = 2, RC_SEG_SUB = 3 };

/* What an RC_SEG_SUB segment points into: a shard-local object (a
 * subscription, which keeps its pre-encoded frame suffixes) counted by the
 * segments that reference it. Embedded in the owner; free() runs on the
 * shard's thread when the last reference goes. Not atomic: it never leaves
 * its shard. */
struct rc_segref {
    uint32_t refs;
    void (*free)(struct rc_segref *r);
};

static inline void rc_segref_ref(struct rc_segref *r)
{
    r->refs++;
}
static inline void rc_segref_unref(struct rc_segref *r)
{
    if (--r->refs == 0)
        r->free(r);
}

/* What the loop calls on a connection: the session's (HTTP, WebSocket, SSE)
 * event handlers. One const table per protocol, installed at accept (the
 * server's conn_ops) and replaced on an upgrade. Every member is called on
 * the connection's shard thread and may close the connection.
 *   on_open:   after accept (only on the ops installed at accept)
 *   on_data:   bytes received; buf is writable and not kept after the call
 *   on_eof:    the peer closed its side (FIN) while the connection was open
 *   on_timer:  the connection's deadline (rc_shard_arm_timer) passed
 *   on_drain:  the server drains (SIGTERM): finish or close
 *   on_sent:   some queued output was written; may be NULL
 *   release:   the connection is closing: free the session's state (called
 *              once, from rc_conn_close_now, before the socket shuts down)
 *   answer:    write the answer of a request (ticket.h); may be NULL (dropped) */
struct rc_conn_ops {
    const char *name; /* "http", "ws", "sse": for logs */
    void (*on_open)(struct rc_conn *c);
    void (*on_data)(struct rc_conn *c, char *buf, size_t len);
    void (*on_eof)(struct rc_conn *c);
    void (*on_timer)(struct rc_conn *c);
    void (*on_drain)(struct rc_conn *c);
    void (*on_sent)(struct rc_conn *c);
    void (*release)(struct rc_conn *c);
    void (*answer)(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a);
};

struct rc_outq {
    struct iovec *iov;
    uintptr_t *ref;      /* pointer | enum rc_seg_kind */
    uint32_t head, tail; /* free-running; index = x & (cap - 1) */
    uint32_t cap;        /* power of two, 0 = nothing allocated */
    size_t bytes;        /* queued, not yet sent */
    bool head_started;   /* the head segment was partly sent */
    /* arrays replaced while a send was in flight, freed when it completes */
    struct iovec *old_iov;
    uintptr_t *old_ref;
};

/* HTTP request-processing state (between requests everything is zero). */
struct rc_http_state {
    size_t head_len;  /* >0 once the head of the current request is parsed */
    size_t body_have; /* body bytes present after the head (decoded for chunked) */
    size_t body_need; /* Content-Length */
    size_t raw_used;  /* chunked: raw bytes consumed after the head */
    struct rc_http_chunked chunked;
    bool is_chunked;
    bool sent_continue;
    bool in_request; /* bytes of a request have arrived: request_timeout runs */
    /* pipeline flags (kept across requests): parsing pauses while set */
    bool awaiting;    /* RC_HTTP_MAX_PENDING answers are pending */
    bool stream_wait; /* a WebSocket/SSE request waits for earlier answers */
    bool stop_after;  /* a Connection: close request was taken: parse no more */
};

struct rc_ws_inflater;

struct rc_ws_state {
    struct rc_ws_reader reader;
    uint8_t *msg; /* assembled fragmented message (heap, only while one is in progress) */
    size_t msg_len, msg_cap;
    bool close_sent;
    bool close_received;
    /* greeting held back for the durable subscriptions (see api_store.h) */
    bool greet_connected; /* connected is owed too (token given at connect) */
    struct json_t
        *greet_id; /* ids (null: none) of the auth actions owed authenticated (owned array) */
    /* permessage-deflate (ws_deflate.h): the client's messages may be compressed */
    struct rc_ws_inflater *zin; /* heap, from the first compressed message until close */
    bool zin_reset;             /* client_no_context_takeover: a fresh window per message */
};

struct rc_conn {
    struct rc_shard *shard;
    const struct rc_conn_ops *ops; /* the session's events (never NULL once accepted) */
    uint64_t id;
    uint32_t slot;
    int fd;
    uint8_t proto;    /* enum rc_conn_proto */
    uint8_t state;    /* enum rc_conn_state */
    uint8_t listener; /* enum rc_conn_listener */
    bool recv_armed;
    bool recv_rearm;  /* multishot ended (ENOBUFS): re-arm at the end of the turn */
    bool recv_paused; /* backpressure: not read until resumed (rc_shard_recv_pause) */
    bool send_inflight;
    bool dirty; /* on the shard's flush list */
    bool counted_ip;
    bool authenticated;
    bool served;          /* a first request was answered (handshake_timeout is over) */
    bool peer_closed;     /* FIN received: answer what is buffered, then close */
    bool drain_told;      /* on_drain was called (drain_spread) */
    uint8_t close_reason; /* enum rc_conn_close_reason; see rc_conn_set_close_reason */
    /* permessage-deflate agreed: the server window bits the client allows
     * (8..15), so deliveries pick the compressed image; 0 = not agreed */
    uint8_t ws_deflate_bits;
    uint32_t inflight;  /* SQEs in flight that reference this conn */
    uint32_t send_iovs; /* iovecs of the send in flight */
    struct rc_conn *dirty_next;
    struct rc_conn *all_next, *all_prev; /* shard's list of live conns */
    struct rc_timer timer;
    uint64_t last_rx_ms;
    uint64_t last_ping_ms;
    struct sockaddr_in6 peer; /* IPv4 mapped when the listener is IPv4 */
    char *in;
    size_t in_len, in_cap;
    struct rc_outq out;
    struct msghdr msg;
    struct rc_http_state http;
    struct rc_http_pending *pend;     /* answers not yet written, in request order */
    struct rc_ws_state *ws;           /* heap, only for WebSocket connections */
    struct rc_sub *subs;              /* this connection's subscriptions */
    struct rc_proxy *proxy;           /* heap, only while a split PROXY header is pending */
    struct rc_sse_cursor *sse_cursor; /* SSE stream of several topics: its stream id (broker.h) */
    uint32_t nsubs;
    char user_id[129];                 /* "" = anonymous */
    struct rc_auth_identity *identity; /* NULL = anonymous */
    struct rc_ipkey ipkey;
    struct rc_bucket bucket;   /* client messages per second */
    uint32_t limited_count;    /* rate-limited messages since limited_since_ms */
    uint64_t limited_since_ms; /* opens at a dropped message; lasts rate_limit_window */
    uint64_t auth_deadline_ms; /* auth_required: authenticate before this (0 = none) */
    uint64_t expire_ms;        /* token expiry (0 = none); then token_expired + grace */
    bool expired_notified;
    bool limit_asked;           /* an acquire went to the user's home shard (conn_limit.h) */
    uint64_t greet_deadline_ms; /* greeting held for durable subscriptions until (0 = not held) */
    struct json_t *durable_changes; /* while durable subscriptions load: changes held (owned) */
};

/* Connection ids. */
static inline uint64_t rc_conn_id_make(unsigned shard, uint32_t gen, uint32_t slot)
{
    return (uint64_t)(shard & 0xff) << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}
static inline unsigned rc_conn_id_shard(uint64_t id)
{
    return (unsigned)(id >> 56);
}
static inline uint32_t rc_conn_id_slot(uint64_t id)
{
    return (uint32_t)id;
}
#define RC_CONN_ID_HEX 16
/* 16 hex digits + NUL */
void rc_conn_id_format(uint64_t id, char out[RC_CONN_ID_HEX + 1]);
/* 0 on success, -EINVAL if s is not 16 hex digits. */
int rc_conn_id_parse(const char *s, size_t n, uint64_t *id);

static inline bool rc_conn_is_open(const struct rc_conn *c)
{
    return c->state == RC_CONN_OPEN;
}

/* Queue bytes for sending. All return 0, or -ENOBUFS when the connection's
 * output cap would be exceeded (the connection is then closed as a slow
 * consumer and counted), or -ENOMEM. */
int rc_conn_queue_static(struct rc_conn *c, const void *p, size_t n) RC_MUST_CHECK;
/* takes ownership of p (malloc'ed) in every case */
int rc_conn_queue_owned(struct rc_conn *c, void *p, size_t n) RC_MUST_CHECK;
/* copies p */
int rc_conn_queue_copy(struct rc_conn *c, const void *p, size_t n) RC_MUST_CHECK;
/* adds a reference to ev for the segment */
int rc_conn_queue_evbuf(struct rc_conn *c, struct rc_evbuf *ev, const uint8_t *p,
                        size_t n) RC_MUST_CHECK;

/* takes a reference on ref (a subscription's, whose suffix p points into) for the segment */
int rc_conn_queue_sub(struct rc_conn *c, struct rc_segref *ref, const uint8_t *p,
                      size_t n) RC_MUST_CHECK;

/* Record why c closes, unless a cause is already recorded. */
static inline void rc_conn_set_close_reason(struct rc_conn *c, enum rc_conn_close_reason r)
{
    if (c->close_reason == RC_CLOSE_UNSET)
        c->close_reason = (uint8_t)r;
}

/* Send what is queued, then close. */
void rc_conn_close_after_flush(struct rc_conn *c);
/* Close now, dropping unsent output. */
void rc_conn_close_now(struct rc_conn *c);
/* Output over its cap: close and drop (the counter is bumped by the caller). */
void rc_conn_close_slow(struct rc_conn *c);
/* Close once the queued output is written (now if nothing is queued). */
void rc_conn_close_soon(struct rc_conn *c);
/* Shard send path: a FLUSHING connection's queue is empty. */
void rc_conn_flushed(struct rc_conn *c);
/* Mark that the connection has output to flush this loop turn. */
void rc_conn_mark_dirty(struct rc_conn *c);

/* Connection events, through c->ops (the shard's loop, and a session handing
 * bytes to the protocol it switched to). */
static inline void rc_conn_on_open(struct rc_conn *c)
{
    c->ops->on_open(c);
}
static inline void rc_conn_on_data(struct rc_conn *c, char *buf, size_t len)
{
    c->ops->on_data(c, buf, len);
}
static inline void rc_conn_on_eof(struct rc_conn *c)
{
    c->ops->on_eof(c);
}
static inline void rc_conn_on_timer(struct rc_conn *c)
{
    c->ops->on_timer(c);
}
static inline void rc_conn_on_drain(struct rc_conn *c)
{
    c->ops->on_drain(c);
}
static inline void rc_conn_on_sent(struct rc_conn *c)
{
    if (c->ops->on_sent)
        c->ops->on_sent(c);
}
/* Write the answer for ticket t on c (c->ops->answer). Nothing is written when
 * t was made for another connection (t->conn_id != c->id) or the ops have no
 * answer. Shard thread of c. */
void rc_conn_answer(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a);

/* Output-queue internals used by the shard's send path. */
size_t rc_outq_pending_iovs(const struct rc_outq *q);
void rc_outq_consume(struct rc_outq *q, size_t bytes);
void rc_outq_release_all(struct rc_outq *q);
void rc_outq_free_old(struct rc_outq *q);

/* Input buffer helpers. */
int rc_conn_in_append(struct rc_conn *c, const char *p, size_t n, size_t cap) RC_MUST_CHECK;
void rc_conn_in_consume(struct rc_conn *c, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CONN_H */
