/* api_store.c - notification and user subscription HTTP endpoints: routes,
 * access checks, building store requests and answering them (see
 * api_store.h for threads and flow, docs/API.md ("Notifications and user subscriptions") for the
 * endpoints; the live side is in api_store_live.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_store_internal.h"
#include "ringcast/api.h"
#include "ringcast/auth.h"
#include "ringcast/conn.h"
#include "ringcast/filter.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"

#define SEG_MAX 256 /* one decoded path segment / query value, at most */

static const char NOTIF_PREFIX[] = "/api/realtime/notifications";
static const char SUBS_PREFIX[] = "/api/realtime/subscriptions";

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
    if (w->purpose == RC_API_STORE_P_HTTP) {
        if (c)
            answer_http(c, w);
        discard_wait(p);
        return;
    }
    rc_api_store_load_answered(s, w, c);
}

/* ---- access -----------------------------------------------------------------------------------
 */

/* Who is calling: a backend (API key with the notify scope, or a loopback
 * client when no key is configured) -> user[0] == '\0'; a client with a JWT
 * -> its sub in user and, when idp is not NULL, its identity in *idp (the
 * caller frees it; NULL for a backend). false when refused (answered 401/403). */
static bool caller_id(struct rc_http_ctx *x, char user[RC_API_STORE_USER_MAX + 1],
                      struct rc_auth_identity **idp)
{
    const struct rc_auth *auth = x->conn->shard->srv->auth;
    struct rc_err err = {0}, kerr = {0};
    struct rc_slice key = {0}, bearer = {0};
    user[0] = '\0';
    if (idp)
        *idp = NULL;
    const struct rc_http_header *h = rc_http_find_header(x->req, "X-API-Key");
    if (h)
        key = h->value;
    if ((h = rc_http_find_header(x->req, "Authorization")) &&
        rc_auth_token_from_header(h->value, &bearer, &err) < 0)
        bearer = (struct rc_slice){0};
    size_t nkeys = rc_auth_api_key_count(auth);
    int krc = -ENOENT;
    if (nkeys && (key.n || bearer.n)) {
        krc = rc_auth_check_api_key(auth, key.n ? key : bearer, RC_AUTH_SCOPE_NOTIFY, &kerr);
        if (krc == 0)
            return true;
    }
    if (!key.n && bearer.n) {
        struct rc_auth_identity *id = NULL;
        if (rc_auth_authenticate(auth, bearer.p, bearer.n, (int64_t)time(NULL), &id, &err) == 0) {
            if (id->sub_len == 0 || id->sub_len > RC_API_STORE_USER_MAX) {
                rc_auth_identity_free(id);
                rc_http_error(x, 403, "forbidden", "the token's sub is not a valid user id");
                return false;
            }
            memcpy(user, id->sub, id->sub_len + 1);
            if (idp)
                *idp = id;
            else
                rc_auth_identity_free(id);
            return true;
        }
        if (krc == -EACCES && strstr(kerr.msg, "scope")) {
            rc_http_error(x, 403, "forbidden", "%s", kerr.msg);
            return false;
        }
        const char *rsn = err.msg[0] ? err.msg : "the token is not valid";
        char hdr[] = "WWW-Authenticate: Bearer\r\n";
        char body[400];
        json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", "unauthorized", "message", rsn);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        int n = snprintf(body, sizeof(body), "%s", txt ? txt : "{}");
        free(txt);
        json_decref(j);
        rc_http_respond(x, 401, "application/json", hdr, body, (size_t)n);
        return false;
    }
    if (krc == -EACCES) {
        rc_http_error(x, 403, "forbidden", "%s", kerr.msg);
        return false;
    }
    if (nkeys == 0 && rc_api_is_loopback(x->conn))
        return true;
    if (nkeys == 0) {
        rc_http_error(x, 403, "forbidden",
                      "no api_keys are configured, so the HTTP API accepts only loopback "
                      "clients (or a client's JWT for its own notifications and subscriptions)");
        return false;
    }
    static const char body[] =
        "{\"error\":{\"code\":\"unauthorized\",\"message\":\"an API key (notify scope) or a "
        "client JWT is required: send Authorization: Bearer <key or token> or X-API-Key\"}}";
    rc_http_respond(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", body,
                    sizeof(body) - 1);
    return false;
}

static bool caller(struct rc_http_ctx *x, char user[RC_API_STORE_USER_MAX + 1])
{
    return caller_id(x, user, NULL);
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

static void method_not_allowed(struct rc_http_ctx *x, const char *allow)
{
    char hdr[96], body[256];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%.*s is not "
                     "allowed here; use %s\"}}",
                     (int)(x->req->method_str.n > 16 ? 16 : x->req->method_str.n),
                     x->req->method_str.p, allow);
    rc_http_respond(x, 405, "application/json", hdr, body, (size_t)n);
}

static bool is_get(const struct rc_http_ctx *x)
{
    return x->req->method == RC_HTTP_GET || x->req->method == RC_HTTP_HEAD;
}

/* Split rest ("" or "/a/b/c") into up to 3 decoded segments; false when
 * answered (400) or when it has more segments (404). */
static bool segments(struct rc_http_ctx *x, struct rc_slice rest, char seg[3][SEG_MAX],
                     size_t *nseg)
{
    *nseg = 0;
    while (rest.n > 0) {
        if (rest.p[0] != '/' || *nseg == 3) {
            rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
            return false;
        }
        rest.p++;
        rest.n--;
        size_t len = 0;
        while (len < rest.n && rest.p[len] != '/')
            len++;
        ssize_t n =
            rc_http_url_decode((struct rc_slice){rest.p, len}, seg[*nseg], SEG_MAX - 1, false);
        if (n <= 0) {
            rc_http_error(x, n == 0 ? 404 : 400, n == 0 ? "not_found" : "bad_path",
                          n == 0 ? "empty path segment; see docs/API.md"
                                 : "a path segment is not valid percent-encoding or is longer "
                                   "than 255 bytes");
            return false;
        }
        seg[*nseg][n] = '\0';
        (*nseg)++;
        rest.p += len;
        rest.n -= len;
    }
    return true;
}

/* ---- notifications ------------------------------------------------------------------------------
 */

static const char *const LIST_KEYS[] = {"user_id", "status", "page", "page_size", NULL};
static const char *const USER_KEY[] = {"user_id", NULL};

/* GET notifications/{id} and POST notifications/{id}/mark-read: the caller
 * (a backend, or the user its JWT names) and the ?user_id= it acts for. */
static void notif_by_id(struct rc_http_ctx *x, char *user, const char *id, enum rc_store_op op)
{
    if (!caller(x, user))
        return;
    json_t *args = json_pack("{s:s}", "id", id);
    if (!query_into(x, args, USER_KEY) || !own_user(x, args, user)) {
        json_decref(args);
        return;
    }
    dispatch(x, op, args, NULL);
}

static void notifications(struct rc_http_ctx *x, struct rc_slice rest)
{
    char seg[3][SEG_MAX];
    size_t nseg;
    char user[RC_API_STORE_USER_MAX + 1];
    if (!segments(x, rest, seg, &nseg))
        return;
    if (nseg == 0) {
        if (x->req->method == RC_HTTP_POST) {
            if (!caller(x, user))
                return;
            if (user[0]) {
                rc_http_error(x, 403, "forbidden",
                              "creating notifications needs an API key with the notify scope");
                return;
            }
            json_t *args = rc_api_body_object(x);
            if (args)
                dispatch(x, RC_STORE_NOTIF_CREATE, args, NULL);
        } else if (is_get(x)) {
            if (!caller(x, user))
                return;
            json_t *args = json_object();
            if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, user)) {
                json_decref(args);
                return;
            }
            dispatch(x, RC_STORE_NOTIF_LIST, args, NULL);
        } else {
            method_not_allowed(x, "GET, HEAD, POST");
        }
        return;
    }
    if (nseg == 2 && strcmp(seg[0], "unread-count") == 0) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "user_id", seg[1]);
        if (!own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_NOTIF_UNREAD_COUNT, args, seg[1]);
        return;
    }
    if (nseg == 1) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        notif_by_id(x, user, seg[0], RC_STORE_NOTIF_GET);
        return;
    }
    if (nseg == 2 && strcmp(seg[1], "mark-read") == 0) {
        if (x->req->method != RC_HTTP_POST) {
            method_not_allowed(x, "POST");
            return;
        }
        notif_by_id(x, user, seg[0], RC_STORE_NOTIF_MARK_READ);
        return;
    }
    rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
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

static void subscriptions(struct rc_http_ctx *x, struct rc_slice rest)
{
    char seg[3][SEG_MAX];
    size_t nseg;
    char user[RC_API_STORE_USER_MAX + 1];
    if (!segments(x, rest, seg, &nseg))
        return;
    if (nseg == 0) {
        if (!is_get(x)) {
            method_not_allowed(x, "GET, HEAD");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_object();
        if (!query_into(x, args, LIST_KEYS) || !own_user(x, args, user)) {
            json_decref(args);
            return;
        }
        dispatch(x, RC_STORE_SUB_LIST, args, NULL);
        return;
    }
    if (nseg == 1 && (strcmp(seg[0], "resource") == 0 || strcmp(seg[0], "topic") == 0)) {
        if (x->req->method != RC_HTTP_POST) {
            method_not_allowed(x, "POST");
            return;
        }
        enum rc_store_op op =
            seg[0][0] == 'r' ? RC_STORE_SUB_CREATE_RESOURCE : RC_STORE_SUB_CREATE_TOPIC;
        struct rc_auth_identity *id = NULL;
        if (!caller_id(x, user, &id))
            return;
        json_t *args = rc_api_body_object(x);
        bool ok = args && own_user(x, args, user) && sub_allowed(x, op, args, id);
        rc_auth_identity_free(id);
        if (ok)
            dispatch(x, op, args, NULL);
        else
            json_decref(args);
        return;
    }
    if (nseg == 1) {
        bool del = x->req->method == RC_HTTP_DELETE;
        if (!is_get(x) && !del) {
            method_not_allowed(x, "GET, HEAD, DELETE");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        if (user[0])
            json_object_set_new(args, "user_id", json_string(user));
        dispatch(x, del ? RC_STORE_SUB_DELETE : RC_STORE_SUB_GET, args, NULL);
        return;
    }
    if (nseg == 2 && strcmp(seg[1], "status") == 0) {
        if (x->req->method != RC_HTTP_PATCH) {
            method_not_allowed(x, "PATCH");
            return;
        }
        if (!caller(x, user))
            return;
        json_t *body = rc_api_body_object(x);
        if (!body)
            return;
        json_t *args = json_pack("{s:s}", "id", seg[0]);
        json_t *st = json_object_get(body, "status");
        if (st)
            json_object_set_new(args, "status", json_deep_copy(st));
        json_decref(body);
        if (user[0])
            json_object_set_new(args, "user_id", json_string(user));
        dispatch(x, RC_STORE_SUB_SET_STATUS, args, NULL);
        return;
    }
    rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
}

/* ---- routing
 * ---------------------------------------------------------------------------------------- */

static bool under(struct rc_slice path, const char *prefix, size_t plen, struct rc_slice *rest)
{
    if (path.n < plen || memcmp(path.p, prefix, plen) != 0)
        return false;
    if (path.n > plen && path.p[plen] != '/')
        return false;
    *rest = (struct rc_slice){path.p + plen, path.n - plen};
    return true;
}

bool rc_api_store_route(struct rc_http_ctx *x)
{
    struct rc_slice rest;
    if (under(x->req->path, NOTIF_PREFIX, sizeof(NOTIF_PREFIX) - 1, &rest)) {
        notifications(x, rest);
        return true;
    }
    if (under(x->req->path, SUBS_PREFIX, sizeof(SUBS_PREFIX) - 1, &rest)) {
        subscriptions(x, rest);
        return true;
    }
    return false;
}
