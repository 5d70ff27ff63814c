/* api_store.c - notification and user subscription HTTP endpoints: the handlers of their
 * rows in the route table (api.c; matching and access are api_router.c's), building store
 * requests and answering them (see
 * api_store.h for threads and flow, docs/API.md ("Notifications and user subscriptions") for the
 * endpoints; the live side is in api_store_live.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_router.h"
#include "api_store_internal.h"
#include "ringcast/api.h"
#include "ringcast/auth.h"
#include "ringcast/conn.h"
#include "ringcast/filter.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"

#define SEG_MAX 256 /* one decoded path segment / query value, at most */

/* ---- inbox messages: a request's way back ---------------------------------------------- */

static void run_wait(struct rc_shard *s, struct rc_post *p);

static void discard_wait(struct rc_post *p)
{
    struct rc_api_store_wait *w = RC_CONTAINER_OF(p, struct rc_api_store_wait, base);
    rc_store_req_free(w->req);
    json_decref(w->acc);
    free(w);
}

struct rc_api_store_wait *rc_api_store_wait_new(enum rc_api_store_purpose purpose,
                                                enum rc_store_op op, struct rc_conn *c)
{
    struct rc_api_store_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base.run = run_wait;
    w->base.discard = discard_wait;
    w->purpose = purpose;
    w->op = op;
    w->conn_id = c->id;
    return w;
}

bool rc_api_store_submit(struct rc_shard *s, struct rc_api_store_wait *w, json_t *args)
{
    struct rc_store_req *req = rc_store_req_new(w->op, args);
    if (!req)
        return false;
    req->origin = s;
    req->tag = (uint64_t)(uintptr_t)w;
    s->ctr.store_submitted++;
    rc_store_submit(s->srv->store, req);
    return true;
}

/* ---- answers -------------------------------------------------------------------------------- */

static void answer_http(struct rc_conn *c, struct rc_api_store_wait *w)
{
    struct rc_store_req *req = w->req;
    if (req->status >= 400) {
        if (req->code && strcmp(req->code, "too_many_subscriptions") == 0)
            c->shard->ctr.user_subscription_refusals++;
        rc_http_deferred_error(c, w->serial, req->status, req->code ? req->code : "error",
                               req->message);
        return;
    }
    if (req->status == 204 || !req->result) {
        rc_http_deferred_json(c, w->serial, req->status, "", 0);
        return;
    }
    json_t *body = req->result; /* the unread count is a bare number, as clients expect */
    char *txt = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char extra[64] = "";
    if (json_is_array(body)) /* seed 001's lists are bare arrays: the total rides a header */
        snprintf(extra, sizeof(extra), "X-Total-Count: %llu\r\n", (unsigned long long)req->total);
    if (txt)
        rc_http_deferred_respond(c, w->serial, req->status, extra[0] ? extra : NULL, txt,
                                 strlen(txt));
    else
        rc_http_deferred_error(c, w->serial, 503, "no_memory", "out of memory; retry later");
    free(txt);
}

static void run_wait(struct rc_shard *s, struct rc_post *p)
{
    struct rc_api_store_wait *w = RC_CONTAINER_OF(p, struct rc_api_store_wait, base);
    struct rc_conn *c = rc_shard_conn(s, w->conn_id);
    s->ctr.store_answered++;
    if (w->purpose == RC_API_STORE_P_HTTP || w->purpose == RC_API_STORE_P_METRICS) {
        if (c && w->purpose == RC_API_STORE_P_HTTP)
            answer_http(c, w);
        else if (c)
            rc_api_metrics_store_answered(c, w);
        discard_wait(p);
        return;
    }
    rc_api_store_load_answered(s, w, c);
}

/* ---- request helpers --------------------------------------------------------------------------
 */

/* Copy the query parameters named in keys into args (decoded strings). */
static bool query_into(struct rc_http_ctx *x, json_t *args, const char *const *keys)
{
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v)) {
        for (const char *const *name = keys; *name; name++) {
            if (!rc_slice_eq(k, *name))
                continue;
            char buf[SEG_MAX];
            ssize_t n = rc_http_url_decode(v, buf, sizeof(buf), true);
            if (n < 0) {
                rc_http_error(x, 400, "bad_query",
                              "query parameter %s is not valid percent-encoding or longer "
                              "than %d bytes",
                              *name, SEG_MAX - 1);
                return false;
            }
            json_object_set_new(args, *name, json_stringn(buf, (size_t)n));
        }
    }
    return true;
}

/* A user (JWT) acts only for itself: args.user_id must be absent (then it
 * is set) or equal to user. Backends pass. false when answered 403. */
static bool own_user(struct rc_http_ctx *x, json_t *args, const char *user)
{
    if (!user[0])
        return true;
    json_t *v = json_object_get(args, "user_id");
    if (!v || json_is_null(v)) {
        json_object_set_new(args, "user_id", json_string(user));
        return true;
    }
    if (json_is_string(v) && strcmp(json_string_value(v), user) == 0)
        return true;
    rc_http_error(x, 403, "forbidden",
                  "a client token may only act for its own user (user_id must equal the "
                  "token's sub)");
    return false;
}

/* Validate, defer and submit; takes args. */
static void dispatch(struct rc_http_ctx *x, enum rc_store_op op, json_t *args, const char *user)
{
    struct rc_shard *s = x->conn->shard;
    struct rc_err err = {0};
    if (!s->srv->store) {
        json_decref(args);
        rc_http_error(x, 503, "store_unavailable", "the durable store is not running");
        return;
    }
    if (s->draining) {
        json_decref(args);
        rc_http_error(x, 503, "shutting_down",
                      "the server is shutting down; retry against another instance or later");
        return;
    }
    if (rc_store_check(op, args, rc_api_store_wall_ms(), &err) < 0) {
        json_decref(args);
        rc_http_error(x, err.status ? err.status : 400, err.code ? err.code : "bad_request", "%s",
                      err.msg);
        return;
    }
    struct rc_api_store_wait *w = rc_api_store_wait_new(RC_API_STORE_P_HTTP, op, x->conn);
    if (!w) {
        json_decref(args);
        rc_http_error(x, 503, "no_memory", "out of memory; retry later");
        return;
    }
    if (user)
        snprintf(w->user, sizeof(w->user), "%s", user);
    w->serial = rc_http_defer(x);
    if (!rc_api_store_submit(s, w, args)) {
        rc_http_deferred_error(x->conn, w->serial, 503, "no_memory", "out of memory; retry later");
        free(w);
    }
}

/* ---- notifications ------------------------------------------------------------------------------
 */

static const char *const LIST_KEYS[] = {"user_id", "status", "page", "page_size", NULL};
static const char *const USER_KEY[] = {"user_id", NULL};

/* GET notifications/{id} and POST notifications/{id}/mark-read: the caller
 * (a backend, or the user its JWT names) and the ?user_id= it acts for. */
static void notif_by_id(struct rc_http_ctx *x, const char *user, const char *id,
                        enum rc_store_op op)
{
    json_t *args = json_pack("{s:s}", "id", id);
    if (!query_into(x, args, USER_KEY) || !own_user(x, args, user)) {
        json_decref(args);
        return;
    }
    dispatch(x, op, args, NULL);
}

/* GET notifications?user_id=&status=&page=&page_size= */
void rc_api_store_notif_list(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *args = json_object();
    if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, r->user)) {
        json_decref(args);
        return;
    }
    dispatch(x, RC_STORE_NOTIF_LIST, args, NULL);
}

/* POST notifications (a backend only: RC_SCOPE_NOTIFY) */
void rc_api_store_notif_create(struct rc_http_ctx *x, struct rc_route_req *r)
{
    dispatch(x, RC_STORE_NOTIF_CREATE, json_incref(r->body), NULL);
}

/* GET notifications/unread-count/{user_id} */
void rc_api_store_notif_unread(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *args = json_pack("{s:s}", "user_id", r->param[0]);
    if (!own_user(x, args, r->user)) {
        json_decref(args);
        return;
    }
    dispatch(x, RC_STORE_NOTIF_UNREAD_COUNT, args, r->param[0]);
}

/* GET notifications/{id} */
void rc_api_store_notif_get(struct rc_http_ctx *x, struct rc_route_req *r)
{
    notif_by_id(x, r->user, r->param[0], RC_STORE_NOTIF_GET);
}

/* POST notifications/{id}/mark-read */
void rc_api_store_notif_mark_read(struct rc_http_ctx *x, struct rc_route_req *r)
{
    notif_by_id(x, r->user, r->param[0], RC_STORE_NOTIF_MARK_READ);
}

/* ---- subscriptions
 * ------------------------------------------------------------------------------- */

/* A backend acting for user: checked as that user holding a token whose topics
 * claim covers every topic. Personal topics of other users and subscribe=none
 * rules still refuse; a subscribe=claim rule is decided when the subscription is
 * applied to the user's connection, against that connection's own token.
 * Heap; NULL when out of memory. */
static struct rc_auth_identity *backend_as_user(const char *user)
{
    struct rc_auth_identity *id = calloc(1, sizeof(*id) + sizeof(id->topics[0]));
    if (!id)
        return NULL;
    id->expires_at = INT64_MAX;
    id->sub = user;
    id->sub_len = strlen(user);
    id->has_topics = true;
    id->n_topics = 1;
    id->topics[0] = rc_slice_make(">", 1);
    return id;
}

/* A new durable subscription is checked like a live subscribe by its user: the
 * topic rules and personal topics (403 forbidden, for id: the caller's token,
 * NULL: a backend, see backend_as_user), and its payload_filter must compile as a
 * live filter does (400 bad_filter with the compiler's message). false when
 * answered. Shape errors are left to dispatch (rc_store_check). */
static bool sub_allowed(struct rc_http_ctx *x, enum rc_store_op op, const json_t *args,
                        const struct rc_auth_identity *id)
{
    struct rc_shard *s = x->conn->shard;
    struct rc_err err = {0};
    if (rc_store_check(op, args, rc_api_store_wall_ms(), &err) < 0)
        return true;
    json_t *pf = json_object_get(args, "payload_filter");
    if (json_is_object(pf)) {
        struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
        struct rc_filter *f = rc_filter_compile(pf, &lim, &err);
        if (!f) {
            rc_http_error(x, err.status ? err.status : 400, err.code ? err.code : "bad_filter",
                          "payload_filter refused: %s", err.msg);
            return false;
        }
        rc_filter_free(f);
    }
    char topic[RC_TOPIC_MAX_LEN + 1];
    if (op == RC_STORE_SUB_CREATE_RESOURCE)
        snprintf(topic, sizeof(topic), "%s.%s",
                 json_string_value(json_object_get(args, "resource_type")),
                 json_string_value(json_object_get(args, "resource_id")));
    else
        snprintf(topic, sizeof(topic), "%s", json_string_value(json_object_get(args, "topic")));
    struct rc_auth_identity *as =
        id ? NULL : backend_as_user(json_string_value(json_object_get(args, "user_id")));
    if (!id && !as) {
        rc_http_error(x, 503, "no_memory", "out of memory; retry later");
        return false;
    }
    int rc = rc_auth_check_subscribe(s->srv->auth, id ? id : as, topic, strlen(topic), &err);
    free(as); /* rc_auth_identity_free would do the same; sub points into args */
    if (rc < 0) {
        s->ctr.forbidden++;
        rc_http_error(x, err.status ? err.status : 403, err.code ? err.code : "forbidden",
                      "durable subscription for user %.128s refused: %s",
                      json_string_value(json_object_get(args, "user_id")), err.msg);
        return false;
    }
    return true;
}

/* GET subscriptions?user_id=&status=&page=&page_size= */
void rc_api_store_sub_list(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *args = json_object();
    if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, r->user)) {
        json_decref(args);
        return;
    }
    dispatch(x, RC_STORE_SUB_LIST, args, NULL);
}

/* POST subscriptions/resource and subscriptions/topic: the body, for the caller's user,
 * allowed as a live subscribe would be (the caller's token, or see backend_as_user). */
static void sub_create(struct rc_http_ctx *x, struct rc_route_req *r, enum rc_store_op op)
{
    if (own_user(x, r->body, r->user) && sub_allowed(x, op, r->body, r->identity))
        dispatch(x, op, json_incref(r->body), NULL);
}

void rc_api_store_sub_create_resource(struct rc_http_ctx *x, struct rc_route_req *r)
{
    sub_create(x, r, RC_STORE_SUB_CREATE_RESOURCE);
}

void rc_api_store_sub_create_topic(struct rc_http_ctx *x, struct rc_route_req *r)
{
    sub_create(x, r, RC_STORE_SUB_CREATE_TOPIC);
}

/* GET or DELETE subscriptions/{id}: a user reaches only its own */
static void sub_by_id(struct rc_http_ctx *x, struct rc_route_req *r, enum rc_store_op op)
{
    json_t *args = json_pack("{s:s}", "id", r->param[0]);
    if (r->user[0])
        json_object_set_new(args, "user_id", json_string(r->user));
    dispatch(x, op, args, NULL);
}

void rc_api_store_sub_get(struct rc_http_ctx *x, struct rc_route_req *r)
{
    sub_by_id(x, r, RC_STORE_SUB_GET);
}

void rc_api_store_sub_delete(struct rc_http_ctx *x, struct rc_route_req *r)
{
    sub_by_id(x, r, RC_STORE_SUB_DELETE);
}

/* PATCH subscriptions/{id}/status {"status": ...} */
void rc_api_store_sub_set_status(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *args = json_pack("{s:s}", "id", r->param[0]);
    json_t *st = json_object_get(r->body, "status");
    if (st)
        json_object_set_new(args, "status", json_deep_copy(st));
    if (r->user[0])
        json_object_set_new(args, "user_id", json_string(r->user));
    dispatch(x, RC_STORE_SUB_SET_STATUS, args, NULL);
}
