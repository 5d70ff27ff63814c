/* http.c - the HTTP/1.1 session: request framing (head, Content-Length or
 * chunked body, 100-continue), ordered answers for pipelined requests,
 * deadlines, and the connection ops of an HTTP connection (rc_http_conn_ops).
 * Parsing itself is http_parse.c; routing is the route hook main registers
 * (session.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/session.h"
#include "ringcast/ticket.h"
#include "ringcast/shard.h"
#include "ringcast/ws.h"

#include "http_response.h"

/* what process_one reports besides DONE/MORE/FAIL */
struct step {
    size_t used; /* DONE: bytes of this request */
    size_t keep; /* MORE: bytes to keep buffered (chunked bodies shrink) */
};

static void http_limits(const struct rc_config *cfg, struct rc_http_limits *lim)
{
    lim->max_request_line = cfg->max_request_line;
    lim->max_header_bytes = cfg->max_header_bytes;
    lim->max_headers = cfg->max_headers;
    lim->max_body = cfg->max_body_bytes;
}

/* Longest a connection may buffer of one request. */
static size_t in_cap(const struct rc_config *cfg)
{
    return cfg->max_header_bytes + cfg->max_body_bytes + 64 * 1024;
}

/* Most a connection buffers: one request, plus what the kernel can still
 * deliver after the session stopped reading (one loop turn may fill every
 * receive buffer of the shard before the cancel takes effect). */
static size_t buffer_cap(const struct rc_config *cfg)
{
    return in_cap(cfg) + (size_t)cfg->recv_buffers * cfg->recv_buffer_size;
}

/* Forget the request just answered; the pipeline flags stay. */
static void reset_request(struct rc_conn *c)
{
    bool awaiting = c->http.awaiting, stream_wait = c->http.stream_wait;
    bool stop_after = c->http.stop_after;
    memset(&c->http, 0, sizeof(c->http));
    c->http.awaiting = awaiting;
    c->http.stream_wait = stream_wait;
    c->http.stop_after = stop_after;
}

static void arm_request(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->http.in_request)
        return;
    c->http.in_request = true;
    /* a connection's first request (the WebSocket/SSE handshake, typically)
     * must also meet handshake_timeout */
    uint64_t limit = s->cfg->request_timeout;
    if (!c->served && s->cfg->handshake_timeout < limit)
        limit = s->cfg->handshake_timeout;
    rc_shard_arm_timer(s, c, s->now_ms + limit);
}

/* ---- responses ------------------------------------------------------------------ */

/* ---- ordered answers for pipelined requests -----------------------------------
 * A request answered later (publish, stats...) takes a slot; answers are
 * written in request order: an immediate answer behind a pending one waits
 * in a slot too. Several requests may wait at once (RC_HTTP_MAX_PENDING), so
 * a pipeline of publishes to another shard's topics is not serialised on
 * each round trip. */
#define RC_HTTP_MAX_PENDING 64u

struct http_slot {
    char *buf; /* the answer, once ready */
    size_t len;
    bool ready;
    bool keep_alive;
    bool head_only;
    int cors; /* the request's CORS class (cors.c) */
};

struct rc_http_pending {
    uint32_t head, tail; /* serials; slot = serial % RC_HTTP_MAX_PENDING */
    struct http_slot slots[RC_HTTP_MAX_PENDING];
    /* The answer that ends the connection (framing error, 408, 413) when it
     * comes while all 64 slots are taken: written after them. Nothing is
     * answered after it (stop_after), so the ring never holds more than
     * RC_HTTP_MAX_PENDING answers. */
    char *final;
    size_t final_len;
    size_t ready_bytes;          /* bytes of answers ready here, not yet queued for sending */
    uint32_t waiting;            /* deferred answers not ready yet */
    size_t largest;              /* largest answer on this connection so far */
    struct rc_http_parts *parts; /* batch answers collecting their parts (http_parts.c) */
};

struct rc_http_parts **rc_http_parts_head(struct rc_conn *c)
{
    return c->pend ? &c->pend->parts : NULL;
}

static bool has_pending(const struct rc_conn *c)
{
    return c->pend && (c->pend->head != c->pend->tail || c->pend->final);
}

/* Answer bytes the client has not read yet: queued for sending, or ready
 * behind an earlier answer. */
static size_t answer_bytes(const struct rc_conn *c)
{
    return c->out.bytes + (c->pend ? c->pend->ready_bytes : 0);
}

/* Answers unread reach max_pending_bytes, or would if the deferred ones
 * still to come were as large as the largest so far: a client pipelining
 * large answers (history pages, lists) has few of them in flight, one at
 * least; one pipelining publishes keeps all 64. */
static bool answers_over_cap(const struct rc_conn *c)
{
    const struct rc_http_pending *p = c->pend;
    size_t cap = c->shard->cfg->max_pending_bytes, have = answer_bytes(c), owed;
    if (have >= cap)
        return true;
    if (!p || p->waiting == 0)
        return false;
    if (!rc_mul_size(p->waiting + 1u, p->largest, &owed))
        return true;
    return owed > cap - have;
}

/* Parsing pauses (no request is taken) while set. */
static bool paused(const struct rc_conn *c)
{
    return c->http.awaiting || c->http.stream_wait || c->http.stop_after || answers_over_cap(c);
}

void rc_http_release(struct rc_conn *c)
{
    if (!c->pend)
        return;
    for (uint32_t i = c->pend->head; i != c->pend->tail; i++)
        free(c->pend->slots[i % RC_HTTP_MAX_PENDING].buf);
    free(c->pend->final);
    rc_http_parts_free(c->pend->parts);
    free(c->pend);
    c->pend = NULL;
}

/* Backpressure: a session that takes no requests because answers are owed
 * (64 pending, a stream request waiting for them, or max_pending_bytes of
 * answers unread) stops reading, so the client's further requests stay in
 * its own socket buffers instead of ours. After a Connection: close request
 * the input is read and discarded (the lingering close needs the FIN). */
static void update_reading(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    bool stop = c->state == RC_CONN_OPEN && c->proto == RC_PROTO_HTTP && !c->http.stop_after &&
                (c->http.awaiting || c->http.stream_wait || answers_over_cap(c));
    if (stop && !c->recv_paused) {
        s->ctr.http_read_pauses++;
        rc_shard_recv_pause(s, c);
    } else if (!stop && c->recv_paused) {
        rc_shard_recv_resume(s, c);
    }
}

/* The connection's one timer, from its state: a request partly received
 * keeps its own deadline (arm_request); while the session waits for answers
 * or for the client to read them, a re-check after request_timeout (re-armed
 * as answers complete and as the client reads, so a busy connection never
 * meets it); otherwise the keep-alive idle deadline from now. */
static void arm_deadline(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->state != RC_CONN_OPEN || c->proto != RC_PROTO_HTTP)
        return;
    if (c->http.in_request && !paused(c))
        return;
    if (has_pending(c) || paused(c))
        rc_shard_arm_timer(s, c, s->now_ms + s->cfg->request_timeout);
    else
        rc_shard_arm_timer(s, c, s->now_ms + s->cfg->keepalive_timeout);
}

static void settle(struct rc_conn *c)
{
    update_reading(c);
    arm_deadline(c);
}

static void resume(struct rc_conn *c);

/* Write the ready answers at the head of the line, in order. was_paused:
 * whether the session was paused before this answer came. */
static void flush_pending(struct rc_conn *c, bool was_paused)
{
    struct rc_http_pending *p = c->pend;
    while (p && p->head != p->tail && c->state == RC_CONN_OPEN) {
        struct http_slot *sl = &p->slots[p->head % RC_HTTP_MAX_PENDING];
        if (!sl->ready)
            break;
        char *buf = sl->buf;
        bool ka = sl->keep_alive;
        sl->buf = NULL;
        sl->ready = false;
        p->head++;
        p->ready_bytes -= sl->len;
        if (rc_conn_queue_owned(c, buf, sl->len) < 0)
            return;
        if (!ka)
            rc_conn_close_after_flush(c);
    }
    if (p && p->head == p->tail && p->final && c->state == RC_CONN_OPEN) {
        char *buf = p->final;
        p->final = NULL;
        p->ready_bytes -= p->final_len;
        if (rc_conn_queue_owned(c, buf, p->final_len) < 0)
            return;
        rc_conn_close_after_flush(c);
    }
    if (c->state != RC_CONN_OPEN || c->proto != RC_PROTO_HTTP)
        return;
    if (c->http.awaiting && p && p->tail - p->head < RC_HTTP_MAX_PENDING)
        c->http.awaiting = false;
    if (c->http.stream_wait && !has_pending(c))
        c->http.stream_wait = false;
    if (was_paused && !paused(c))
        resume(c);
    settle(c);
}

/* Queue one complete answer: now, or in its turn behind pending ones. */
static void emit(struct rc_conn *c, char *out, size_t total, bool keep_alive)
{
    if (has_pending(c)) {
        struct rc_http_pending *p = c->pend;
        if (p->final) {
            free(out); /* nothing is answered after the answer that closes */
            return;
        }
        if (p->tail - p->head == RC_HTTP_MAX_PENDING) {
            /* no request is taken while the ring is full, so only an answer
             * that ends the connection gets here */
            if (!keep_alive) {
                p->final = out;
                p->final_len = total;
                p->ready_bytes += total;
                c->http.stop_after = true;
                return;
            }
            rc_log(RC_LOG_WARN, "http_answer_dropped",
                   "conn=%016llx reason=\"answer ring full\" pending=%u", (unsigned long long)c->id,
                   RC_HTTP_MAX_PENDING);
            free(out);
            rc_conn_close_now(c);
            return;
        }
        struct http_slot *sl = &p->slots[p->tail % RC_HTTP_MAX_PENDING];
        sl->buf = out;
        sl->len = total;
        sl->ready = true;
        sl->keep_alive = keep_alive;
        p->ready_bytes += total;
        if (total > p->largest)
            p->largest = total;
        p->tail++;
        if (p->tail - p->head == RC_HTTP_MAX_PENDING)
            c->http.awaiting = true;
        if (!keep_alive)
            c->http.stop_after = true;
        return;
    }
    if (c->pend && total > c->pend->largest)
        c->pend->largest = total;
    if (rc_conn_queue_owned(c, out, total) < 0)
        return;
    if (!keep_alive)
        rc_conn_close_after_flush(c);
}

static void respond(struct rc_conn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t blen, bool keep_alive, bool head_only, int cors)
{
    if (c->shard->draining)
        keep_alive = false;
    size_t total;
    char *out = rc_http_build_response(c, status, ctype, extra, body, blen, keep_alive, head_only,
                                       cors, &total);
    if (!out) {
        rc_conn_close_now(c);
        return;
    }
    emit(c, out, total, keep_alive);
}

void rc_http_respond(struct rc_http_ctx *x, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len)
{
    respond(x->conn, status, content_type, extra_headers, body, body_len, x->keep_alive,
            x->head_only, x->cors);
}

void rc_http_json(struct rc_http_ctx *x, int status, const char *json, size_t len)
{
    rc_http_respond(x, status, "application/json", NULL, json, len);
}

void rc_http_error(struct rc_http_ctx *x, int status, const char *code, const char *fmt, ...)
{
    char msg[512], body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t n = rc_http_error_json(body, sizeof(body), code, msg);
    rc_http_respond(x, status, "application/json", NULL, body, n);
}

/* An error that ends the connection (malformed framing: we cannot find where
 * the next request would start). */
static void fatal_error(struct rc_conn *c, const struct rc_err *err)
{
    char body[1024];
    char extra[64] = "";
    size_t n =
        rc_http_error_json(body, sizeof(body), err->code ? err->code : "bad_request", err->msg);
    if (err->status == 405)
        snprintf(extra, sizeof(extra), "Allow: GET, POST\r\n");
    /* Connection: close; written (and the connection closed) after any
     * answers still pending for earlier requests */
    respond(c, err->status ? err->status : 400, "application/json", extra[0] ? extra : NULL, body,
            n, false, false, RC_CORS_NONE);
}

/* ---- deferred answers ----------------------------------------------------------- */

uint32_t rc_http_defer(struct rc_http_ctx *x)
{
    struct rc_conn *c = x->conn;
    if (!c->pend) {
        c->pend = calloc(1, sizeof(*c->pend));
        if (!c->pend)
            return 0; /* the answer will be dropped; the timer closes the conn */
        c->pend->head = c->pend->tail = 1; /* serial 0 means "nobody waits" */
    }
    struct rc_http_pending *p = c->pend;
    if (p->final || p->tail - p->head == RC_HTTP_MAX_PENDING) {
        /* process() takes no request then; a route that defers anyway gets
         * serial 0 (its answer is dropped) rather than a slot in use */
        rc_log(RC_LOG_WARN, "http_answer_dropped",
               "conn=%016llx reason=\"deferred with the answer ring full\"",
               (unsigned long long)c->id);
        return 0;
    }
    struct http_slot *sl = &p->slots[p->tail % RC_HTTP_MAX_PENDING];
    bool ka = x->keep_alive && !c->shard->draining;
    sl->buf = NULL;
    sl->ready = false;
    sl->keep_alive = ka;
    sl->head_only = x->head_only;
    sl->cors = x->cors;
    uint32_t serial = p->tail++;
    p->waiting++;
    if (p->tail - p->head == RC_HTTP_MAX_PENDING)
        c->http.awaiting = true;
    if (!ka)
        c->http.stop_after = true; /* nothing after a Connection: close request */
    return serial;
}

static void finish_half_closed(struct rc_conn *c);

/* The slot of a deferred answer still wanted, or NULL. */
static struct http_slot *take_deferred(struct rc_conn *c, uint32_t serial)
{
    struct rc_http_pending *p = c->pend;
    if (c->proto != RC_PROTO_HTTP || !p || serial == 0 ||
        (uint32_t)(serial - p->head) >= (uint32_t)(p->tail - p->head))
        return NULL;
    struct http_slot *sl = &p->slots[serial % RC_HTTP_MAX_PENDING];
    return sl->ready ? NULL : sl;
}

static void fill_deferred(struct rc_conn *c, struct http_slot *sl, int status, const char *ctype,
                          const char *extra, const char *json, size_t len)
{
    size_t total;
    bool was_paused = paused(c);
    c->pend->waiting--;
    char *out = rc_http_build_response(c, status, ctype ? ctype : "application/json", extra, json,
                                       len, sl->keep_alive, sl->head_only, sl->cors, &total);
    if (!out) {
        rc_conn_close_now(c);
        return;
    }
    sl->buf = out;
    sl->len = total;
    sl->ready = true;
    c->pend->ready_bytes += total;
    if (total > c->pend->largest)
        c->pend->largest = total;
    flush_pending(c, was_paused);
    if (c->peer_closed && c->proto == RC_PROTO_HTTP)
        finish_half_closed(c);
}

void rc_http_deferred_json(struct rc_conn *c, uint32_t serial, int status, const char *json,
                           size_t len)
{
    struct http_slot *sl = take_deferred(c, serial);
    if (sl)
        fill_deferred(c, sl, status, NULL, NULL, json, len);
}

void rc_http_deferred_respond(struct rc_conn *c, uint32_t serial, int status,
                              const char *extra_headers, const char *json, size_t len)
{
    struct http_slot *sl = take_deferred(c, serial);
    if (sl)
        fill_deferred(c, sl, status, NULL, extra_headers, json, len);
}

void rc_http_deferred_error(struct rc_conn *c, uint32_t serial, int status, const char *code,
                            const char *msg)
{
    char body[1024];
    struct http_slot *sl = take_deferred(c, serial);
    if (!sl)
        return;
    size_t n = rc_http_error_json(body, sizeof(body), code, msg);
    fill_deferred(c, sl, status, NULL, NULL, body, n);
}

void rc_http_switch(struct rc_conn *c, enum rc_conn_proto proto, const struct rc_conn_ops *ops)
{
    reset_request(c);
    c->proto = (uint8_t)proto;
    c->ops = ops;
}

/* ---- request framing ---------------------------------------------------------------- */

static bool method_needs_body(enum rc_http_method m)
{
    return m == RC_HTTP_POST || m == RC_HTTP_PUT || m == RC_HTTP_PATCH;
}

static void send_continue(struct rc_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->http.sent_continue = true;
    if (rc_conn_queue_static(c, cont, sizeof(cont) - 1) < 0)
        return; /* the connection is being closed */
}

/* WebSocket upgrades and SSE streams take the connection over: they must wait
 * until every earlier answer is written. The router knows which they are. */
static bool is_stream_request(const struct rc_http_request *req)
{
    const struct rc_session_hooks *h = rc_session_hooks();
    return h->is_stream && h->is_stream(req);
}

static void dispatch(struct rc_conn *c, const struct rc_http_request *req, const char *body,
                     size_t blen)
{
    struct rc_http_ctx x = {
        .conn = c,
        .req = req,
        .body = body,
        .body_len = blen,
        .keep_alive = req->keep_alive && !c->shard->draining,
        .head_only = req->method == RC_HTTP_HEAD,
        .cors = rc_http_cors_of(c->shard->cfg, req),
    };
    c->shard->ctr.http_requests++;
    c->served = true;
    const struct rc_session_hooks *h = rc_session_hooks();
    if (rc_http_origin_refused(&x))
        return; /* a browser page of an origin not in allowed_origins */
    if (h->route)
        h->route(&x);
    else
        rc_http_error(&x, 404, "not_found", "no route for this path");
}

/* One request from p[0..n): DONE (answered or deferred), MORE or FAIL. */
static enum rc_parse process_one(struct rc_conn *c, char *p, size_t n, struct step *st)
{
    struct rc_http_limits lim;
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t head_len;

    http_limits(c->shard->cfg, &lim);
    st->keep = n;
    enum rc_parse r = rc_http_parse_head(p, n, 0, &lim, &req, &head_len, &err);
    if (r == RC_PARSE_FAIL) {
        fatal_error(c, &err);
        return RC_PARSE_FAIL;
    }
    if (r == RC_PARSE_MORE) {
        arm_request(c);
        return RC_PARSE_MORE;
    }
    if (!req.chunked && !req.has_content_length && method_needs_body(req.method)) {
        rc_err_set(&err, 411, "length_required",
                   "%.*s needs a body length: send Content-Length or Transfer-Encoding: chunked",
                   (int)req.method_str.n, req.method_str.p);
        fatal_error(c, &err);
        return RC_PARSE_FAIL;
    }
    size_t avail = n - head_len;
    char *body = p + head_len;
    if (req.chunked) {
        if (c->http.head_len == 0)
            rc_http_chunked_init(&c->http.chunked);
        c->http.head_len = head_len;
        size_t consumed = 0, out_len = 0;
        char *raw = body + c->http.body_have;
        size_t raw_len = avail - c->http.body_have;
        r = rc_http_chunked_decode(&c->http.chunked, raw, raw_len, &lim, &consumed, &out_len, &err);
        if (r == RC_PARSE_FAIL) {
            fatal_error(c, &err);
            return RC_PARSE_FAIL;
        }
        c->http.body_have += out_len;
        if (r == RC_PARSE_MORE) {
            if (req.expect_continue && !c->http.sent_continue)
                send_continue(c);
            arm_request(c);
            st->keep = head_len + c->http.body_have; /* the decoded part; raw is used up */
            return RC_PARSE_MORE;
        }
        size_t blen = c->http.body_have;
        st->used = (size_t)(raw - p) + consumed;
        /* the head slices point into p[0..head_len), still intact */
        dispatch(c, &req, body, blen);
        return RC_PARSE_DONE;
    }
    size_t need = req.has_content_length ? req.content_length : 0;
    c->http.head_len = head_len;
    if (avail < need) {
        if (req.expect_continue && !c->http.sent_continue)
            send_continue(c);
        arm_request(c);
        return RC_PARSE_MORE;
    }
    if (has_pending(c) && is_stream_request(&req)) {
        c->http.stream_wait = true; /* resumed by flush_pending */
        st->keep = n;
        return RC_PARSE_MORE;
    }
    st->used = head_len + need;
    dispatch(c, &req, body, need);
    return RC_PARSE_DONE;
}

/* Answer the complete requests at p[0..n); returns bytes used. Sets *keep to
 * how many bytes after that must stay buffered. */
static size_t process(struct rc_conn *c, char *p, size_t n, size_t *keep)
{
    size_t off = 0;
    *keep = 0;
    while (off < n && c->proto == RC_PROTO_HTTP && c->state == RC_CONN_OPEN && !paused(c)) {
        struct step st = {0};
        enum rc_parse r = process_one(c, p + off, n - off, &st);
        if (r == RC_PARSE_FAIL)
            return n; /* the connection is closing: drop the rest */
        if (r == RC_PARSE_MORE) {
            *keep = st.keep;
            return off;
        }
        off += st.used;
        if (c->proto == RC_PROTO_HTTP)
            reset_request(c); /* in_request is over: arm_deadline re-arms */
    }
    *keep = n - off;
    return off;
}

/* The input cap was passed: one request too large, or (rare: reading stops
 * while answers are owed, so only bytes the kernel had already delivered get
 * here) pipelined requests buffered behind unread answers. */
static void input_over_cap(struct rc_conn *c)
{
    struct rc_err err;
    size_t cap = buffer_cap(c->shard->cfg);
    if (paused(c))
        rc_err_set(&err, 413, "payload_too_large",
                   "more than %zu bytes of pipelined requests wait behind unread answers; read "
                   "the answers before sending more",
                   cap);
    else
        rc_err_set(&err, 413, "payload_too_large", "request is larger than %zu bytes", cap);
    fatal_error(c, &err);
}

/* Feed bytes when nothing is buffered: parse in place, buffer the rest. */
static void http_feed(struct rc_conn *c, char *buf, size_t len)
{
    const struct rc_config *cfg = c->shard->cfg;
    if (c->state != RC_CONN_OPEN || c->http.stop_after)
        return; /* nothing more will be parsed: discard */
    if (c->in_len == 0 && !paused(c)) {
        size_t keep;
        size_t used = process(c, buf, len, &keep);
        if (c->state != RC_CONN_OPEN)
            return;
        if (c->proto != RC_PROTO_HTTP) {
            update_reading(c);
            if (used < len)
                rc_conn_on_data(c, buf + used, len - used);
            return;
        }
        if (keep && rc_conn_in_append(c, buf + used, keep, buffer_cap(cfg)) < 0)
            input_over_cap(c);
        settle(c);
        return;
    }
    if (rc_conn_in_append(c, buf, len, buffer_cap(cfg)) < 0) {
        input_over_cap(c);
        settle(c);
        return;
    }
    resume(c);
}

/* Process what is buffered (after new input, or after a deferred answer). */
static void resume_buffered(struct rc_conn *c);

static void resume(struct rc_conn *c)
{
    resume_buffered(c);
    if (c->peer_closed && c->proto == RC_PROTO_HTTP)
        finish_half_closed(c);
    if (c->state == RC_CONN_OPEN)
        settle(c);
}

static void resume_buffered(struct rc_conn *c)
{
    if (paused(c) || c->state != RC_CONN_OPEN || c->in_len == 0)
        return;
    size_t keep;
    size_t used = process(c, c->in, c->in_len, &keep);
    if (c->state != RC_CONN_OPEN)
        return;
    if (c->proto != RC_PROTO_HTTP) {
        /* upgraded: hand the rest to the new protocol from a private copy */
        size_t rest = c->in_len - used;
        char *tmp = rest ? malloc(rest) : NULL;
        if (rest && tmp)
            memcpy(tmp, c->in + used, rest);
        rc_conn_in_consume(c, c->in_len);
        if (tmp) {
            rc_conn_on_data(c, tmp, rest);
            free(tmp);
        }
        return;
    }
    /* drop what was used, and the raw chunked bytes already decoded */
    size_t drop_tail = c->in_len - used - keep;
    c->in_len -= drop_tail;
    rc_conn_in_consume(c, used);
}

/* ---- connection events ------------------------------------------------------------ */

static void http_on_open(struct rc_conn *c)
{
    /* the first request must arrive within request_timeout (slowloris) */
    arm_request(c);
}

static void http_on_data(struct rc_conn *c, char *buf, size_t len)
{
    http_feed(c, buf, len);
}

/* The client half-closed (sent FIN) after complete requests: answer every
 * one of them, then close. */
static void finish_half_closed(struct rc_conn *c)
{
    if (c->state != RC_CONN_OPEN || has_pending(c) || (paused(c) && c->in_len > 0))
        return;
    if (c->out.bytes || c->send_inflight)
        rc_conn_close_after_flush(c);
    else
        rc_conn_close_now(c);
}

static void http_on_eof(struct rc_conn *c)
{
    c->peer_closed = true;
    finish_half_closed(c); /* waits while an answer is deferred */
}

static void http_on_sent(struct rc_conn *c)
{
    /* the client read some answers: a session paused on max_pending_bytes of
     * them may take requests again; a waiting one re-arms its re-check */
    if (c->proto != RC_PROTO_HTTP || c->state != RC_CONN_OPEN)
        return;
    if (c->recv_paused || c->in_len > 0)
        resume(c);
    else if (has_pending(c) || c->out.bytes)
        arm_deadline(c);
}

static void http_on_timer(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (c->http.in_request && !paused(c)) {
        /* one request's bytes did not all come in time (slowloris) */
        struct rc_err err;
        bool first = !c->served && s->cfg->handshake_timeout < s->cfg->request_timeout;
        const char *key = first ? "handshake_timeout" : "request_timeout";
        uint64_t limit = first ? s->cfg->handshake_timeout : s->cfg->request_timeout;
        if (c->served)
            s->ctr.request_timeouts++;
        else
            s->ctr.handshake_timeouts++;
        rc_log(RC_LOG_INFO, "request_timeout", "conn=%016llx limit=%s ms=%llu buffered=%zu",
               (unsigned long long)c->id, key, (unsigned long long)limit, c->in_len);
        rc_err_set(&err, 408, "request_timeout",
                   "the request did not arrive completely within %llu ms (%s)",
                   (unsigned long long)limit, key);
        c->in_len = 0;
        fatal_error(c, &err);
        settle(c);
        return;
    }
    if (has_pending(c)) {
        /* we owe answers (other shards, the store): check again later */
        rc_shard_arm_timer(s, c, s->now_ms + s->cfg->request_timeout);
        return;
    }
    if (paused(c) && c->out.bytes) {
        /* answers unread for a whole request_timeout while requests wait */
        s->ctr.slow_consumer_disconnects++;
        rc_log(RC_LOG_INFO, "slow_consumer", "conn=%016llx unread=%zu cap=%zu",
               (unsigned long long)c->id, c->out.bytes, s->cfg->max_pending_bytes);
        rc_conn_close_now(c);
        return;
    }
    rc_conn_close_now(c); /* keep-alive timeout on an idle connection */
}

static void http_on_drain(struct rc_conn *c)
{
    /* a request in progress is answered with Connection: close; idle ones go */
    if (!c->http.in_request && !has_pending(c) && c->in_len == 0)
        rc_conn_close_soon(c);
}

/* The http ops' answer: a deferred answer into its slot (rc_http_defer's
 * serial); take_deferred drops one for a request no longer waited for. */
static void answer_http(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    struct http_slot *sl;
    if (t->kind == RC_TICKET_HTTP_PART)
        rc_http_part_answer(c, t, a);
    else if (a->code)
        rc_http_deferred_error(c, t->serial, a->status, a->code, a->msg);
    else if ((sl = take_deferred(c, t->serial)))
        fill_deferred(c, sl, a->status, a->content_type, a->extra_headers, a->json ? a->json : "",
                      a->json ? a->len : 0);
}

const struct rc_conn_ops rc_http_conn_ops = {
    .name = "http",
    .on_open = http_on_open,
    .on_data = http_on_data,
    .on_eof = http_on_eof,
    .on_timer = http_on_timer,
    .on_drain = http_on_drain,
    .on_sent = http_on_sent,
    .release = rc_session_release,
    .answer = answer_http,
};
