/* api_admin.c - POST /api/realtime/disconnect: close one connection, or every
 * WebSocket and SSE connection of a user, with a close code and reason
 * (docs/API.md, "Disconnect").
 *
 * Threads: the handler runs on the shard of the HTTP request (the origin). It
 *   posts one job to each shard that may hold a target (the connection id's
 *   own shard, or every shard for a user); each shard closes its matching
 *   connections, counts them and posts the job back; the origin answers once
 *   every job is back (the jobs carry a pointer to the origin's gather, which
 *   only the origin touches). With broker = redis the user variant is also
 *   sent to every other node (kind "admin.disconnect"): their bridge thread
 *   posts the same job to each of their shards, with nobody waiting.
 * Closing: a WebSocket gets a close frame (code, reason) and then FIN; an SSE
 *   stream gets a last "disconnect" record naming code and reason, then the
 *   end of the stream. Plain HTTP connections carry no user and are left alone.
 * Lifetimes: a job owns its copy of the user id and reason; the gather lives
 *   until its last job is back (at shutdown a job that cannot go back is
 *   discarded and its gather leaks, like the broker's gathers). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_router.h"
#include "ringcast/answer.h"
#include "ringcast/api.h"
#include "ringcast/broker.h"
#include "ringcast/conn.h"
#include "ringcast/server.h"
#include "ringcast/shard.h"
#include "ringcast/ws.h"
#include "ringcast/ws_frame.h"

#define CLUSTER_DISCONNECT "admin.disconnect" /* broker = redis: a user's, to other nodes */
#define USER_MAX 128
#define REASON_MAX 123 /* RFC 6455 5.5: 125 payload bytes, 2 of them the code */
#define DEFAULT_CODE RC_WS_CLOSE_NORMAL
#define DEFAULT_REASON "disconnected by the server's administrator"

struct disconnect {
    uint64_t conn_id; /* 0: by user */
    uint16_t code;
    char user[USER_MAX + 1];
    char reason[REASON_MAX + 1];
};

struct dc_gather {
    struct rc_ticket ticket;
    unsigned pending;
    uint64_t closed;
    bool by_user;
    bool cluster; /* sent to the other nodes too */
    char target[USER_MAX + 1];
};

struct dc_job {
    struct rc_post post;
    bool done;
    struct rc_shard *origin; /* NULL: nobody waits (another node's request) */
    struct dc_gather *g;
    struct disconnect d;
    uint64_t closed;
};

static void dc_discard(struct rc_post *p)
{
    free(RC_CONTAINER_OF(p, struct dc_job, post));
}

/* The SSE stream's last record: what a client can show before it reconnects. */
static void close_sse(struct rc_conn *c, const struct disconnect *d)
{
    json_t *j = json_pack("{s:i, s:s}", "code", (int)d->code, "reason", d->reason);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    size_t n = txt ? strlen(txt) : 0;
    char *rec = txt ? malloc(n + 32) : NULL;
    if (rec) {
        int len = snprintf(rec, n + 32, "event: disconnect\ndata: %s\n\n", txt);
        if (rc_conn_queue_owned(c, rec, (size_t)len) < 0) {
            free(txt);
            return; /* closed as a slow consumer already */
        }
    }
    free(txt);
    rc_conn_close_after_flush(c);
}

static bool close_one(struct rc_conn *c, const struct disconnect *d)
{
    if (!rc_conn_is_open(c))
        return false;
    if (c->proto == RC_PROTO_WS || c->proto == RC_PROTO_SSE)
        rc_conn_set_close_reason(c, RC_CLOSE_ADMIN);
    if (c->proto == RC_PROTO_WS) {
        if (c->ws && c->ws->close_sent)
            return false;
        rc_ws_close(c, d->code, d->reason);
        return true;
    }
    if (c->proto == RC_PROTO_SSE) {
        close_sse(c, d);
        return true;
    }
    return false;
}

/* On each target shard: close the matches, count them. */
static uint64_t close_matches(struct rc_shard *s, const struct disconnect *d)
{
    if (d->conn_id) {
        struct rc_conn *c = rc_shard_conn(s, d->conn_id);
        return c && close_one(c, d) ? 1 : 0;
    }
    uint64_t n = 0;
    struct rc_conn *next;
    for (struct rc_conn *c = s->all; c; c = next) {
        next = c->all_next; /* closing may unlink c */
        if (c->user_id[0] && strcmp(c->user_id, d->user) == 0 && close_one(c, d))
            n++;
    }
    return n;
}

static void answer(struct rc_shard *s, struct dc_gather *g)
{
    struct rc_conn *c = rc_shard_conn(s, g->ticket.conn_id);
    if (c) {
        json_t *j =
            json_pack("{s:s, s:I, s:b}", g->by_user ? "user_id" : "connection_id", g->target,
                      "closed", (json_int_t)g->closed, "other_nodes_told", g->cluster);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (txt)
            rc_conn_answer(c, &g->ticket,
                           &(struct rc_answer){.status = 200, .json = txt, .len = strlen(txt)});
        else
            rc_conn_answer(
                c, &g->ticket,
                &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        free(txt);
    }
    free(g);
}

static void dc_run(struct rc_shard *s, struct rc_post *p)
{
    struct dc_job *j = RC_CONTAINER_OF(p, struct dc_job, post);
    if (!j->done) {
        j->closed = close_matches(s, &j->d);
        if (!j->origin) {
            free(j);
            return;
        }
        j->done = true;
        rc_shard_post(j->origin, &j->post);
        return;
    }
    struct dc_gather *g = j->g;
    g->closed += j->closed;
    free(j);
    if (--g->pending == 0)
        answer(s, g);
}

/* Post d to shard `to`; origin NULL: nobody waits. false on ENOMEM. */
static bool post_job(struct rc_shard *to, struct rc_shard *origin, struct dc_gather *g,
                     const struct disconnect *d)
{
    struct dc_job *j = calloc(1, sizeof(*j));
    if (!j)
        return false;
    j->post.run = dc_run;
    j->post.discard = dc_discard;
    j->origin = origin;
    j->g = g;
    j->d = *d;
    rc_shard_post(to, &j->post);
    return true;
}

/* ---- the request ----------------------------------------------------------------------- */

/* "code": a close code a server may send (RFC 6455 7.4): 1000-1003, 1007-1011 or 3000-4999. */
static bool parse_code(struct rc_http_ctx *x, json_t *body, uint16_t *code)
{
    json_t *v = json_object_get(body, "code");
    *code = DEFAULT_CODE;
    if (!v || json_is_null(v))
        return true;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    uint8_t pl[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    uint16_t parsed;
    if (n < 1000 || n > 4999 || rc_ws_close_validate(pl, 2, &parsed) < 0) {
        rc_http_error(x, 400, "bad_value",
                      "\"code\" must be a WebSocket close code: 1000-1003, 1007-1011 or "
                      "3000-4999 (e.g. 4000 for your own meaning); omit it for 1000");
        return false;
    }
    *code = (uint16_t)n;
    return true;
}

static bool parse_request(struct rc_http_ctx *x, json_t *body, struct disconnect *d)
{
    json_t *user = json_object_get(body, "user_id"), *conn = json_object_get(body, "connection_id");
    json_t *reason = json_object_get(body, "reason");
    if ((user && !json_is_null(user)) == (conn && !json_is_null(conn))) {
        rc_http_error(x, 400, "missing_field",
                      "disconnect needs exactly one of \"user_id\" (every connection of that "
                      "user) or \"connection_id\" (one connection)");
        return false;
    }
    if (user && !json_is_null(user)) {
        if (!json_is_string(user) || json_string_length(user) == 0 ||
            json_string_length(user) > USER_MAX) {
            rc_http_error(x, 400, "bad_value", "\"user_id\" must be a string of 1..%d bytes",
                          USER_MAX);
            return false;
        }
        snprintf(d->user, sizeof(d->user), "%s", json_string_value(user));
    } else if (!json_is_string(conn) ||
               rc_conn_id_parse(json_string_value(conn), json_string_length(conn), &d->conn_id) <
                   0 ||
               d->conn_id == 0) {
        rc_http_error(x, 400, "bad_value",
                      "\"connection_id\" must be a connection id (16 hex digits, as in the "
                      "\"connected\" message)");
        return false;
    }
    if (reason && !json_is_null(reason)) {
        if (!json_is_string(reason) || json_string_length(reason) > REASON_MAX ||
            strlen(json_string_value(reason)) != json_string_length(reason)) {
            rc_http_error(x, 400, "bad_value",
                          "\"reason\" must be a string of at most %d bytes (the WebSocket close "
                          "frame's limit)",
                          REASON_MAX);
            return false;
        }
        snprintf(d->reason, sizeof(d->reason), "%s", json_string_value(reason));
    } else {
        snprintf(d->reason, sizeof(d->reason), "%s", DEFAULT_REASON);
    }
    return parse_code(x, body, &d->code);
}

void rc_api_admin_disconnect(struct rc_http_ctx *x, struct rc_route_req *r)
{
    struct disconnect d = {0};
    if (!parse_request(x, r->body, &d))
        return;
    struct rc_shard *s = x->conn->shard;
    struct rc_server *srv = s->srv;
    if (d.conn_id && rc_conn_id_shard(d.conn_id) >= srv->nshards) {
        rc_http_error(x, 404, "not_found",
                      "no connection %016llx on this node (connection ids name their node's "
                      "shard; ask the node that sent the \"connected\" message)",
                      (unsigned long long)d.conn_id);
        return;
    }
    struct dc_gather *g = calloc(1, sizeof(*g));
    if (!g) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return;
    }
    g->by_user = d.conn_id == 0;
    if (g->by_user)
        snprintf(g->target, sizeof(g->target), "%s", d.user);
    else
        rc_conn_id_format(d.conn_id, g->target);
    if (g->by_user && srv->cluster) {
        json_t *m = json_pack("{s:s, s:s, s:i}", "user_id", d.user, "reason", d.reason, "code",
                              (int)d.code);
        if (m) {
            rc_broker_cluster_send(srv, CLUSTER_DISCONNECT, m);
            g->cluster = true;
        }
        json_decref(m);
    }
    g->ticket = rc_ticket_http(x->conn, rc_http_defer(x));
    unsigned first = g->by_user ? 0 : rc_conn_id_shard(d.conn_id);
    unsigned last = g->by_user ? srv->nshards : first + 1;
    g->pending = last - first;
    for (unsigned i = first; i < last; i++)
        if (!post_job(srv->shards[i], s, g, &d))
            g->pending--; /* counted as none closed there */
    if (g->pending == 0)
        answer(s, g);
}

/* ---- other nodes (broker = redis) -------------------------------------------------------- */

/* Bridge thread: another node's disconnect of a user reaches this node's shards. */
static void on_cluster_disconnect(void *ctx, const json_t *m)
{
    struct rc_server *srv = ctx;
    struct disconnect d = {.code = DEFAULT_CODE};
    const char *user = json_string_value(json_object_get(m, "user_id"));
    const char *reason = json_string_value(json_object_get(m, "reason"));
    json_int_t code = json_integer_value(json_object_get(m, "code"));
    if (!user || !user[0] || strlen(user) > USER_MAX)
        return;
    if (!reason || strlen(reason) > REASON_MAX)
        reason = DEFAULT_REASON; /* never cut one inside a character */
    snprintf(d.user, sizeof(d.user), "%s", user);
    snprintf(d.reason, sizeof(d.reason), "%s", reason);
    if (code >= 1000 && code <= 4999)
        d.code = (uint16_t)code;
    for (unsigned i = 0; i < srv->nshards; i++)
        (void)post_job(srv->shards[i], NULL, NULL, &d); /* ENOMEM: that shard keeps them */
}

int rc_api_admin_cluster(struct rc_server *srv, struct rc_err *err)
{
    if (rc_broker_cluster_on(srv, CLUSTER_DISCONNECT, on_cluster_disconnect, srv) < 0) {
        rc_err_set(err, 500, "start", "cluster: too many message kinds");
        return -ENOSPC;
    }
    return 0;
}
