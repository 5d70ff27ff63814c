/* api_router.c - runs the route table (api.c): path match, 404/405, the scope check and the
 * body, then the row's handler (see api_router.h for the rules). Also the access checks the
 * scopes stand for, and rc_api_is_stream for the session. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_router.h"
#include "ringcast/api.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"

/* ---- access ------------------------------------------------------------------------ */

bool rc_api_is_loopback(const struct rc_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &c->peer.sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Backend access: an API key holding `scope`, or (with no key configured) a
 * loopback client. Answers 401/403 itself and returns false when refused. */
static bool backend_allowed(struct rc_http_ctx *x, unsigned scope)
{
    const struct rc_auth *auth = x->conn->shard->srv->auth;
    struct rc_err err = {0};
    if (rc_auth_api_key_count(auth) == 0) {
        if (rc_api_is_loopback(x->conn))
            return true;
        rc_http_error(x, 403, "forbidden",
                      "no api_keys are configured, so the HTTP API accepts only loopback "
                      "clients; configure api_keys to call it from elsewhere");
        return false;
    }
    struct rc_slice key = {0};
    const struct rc_http_header *h = rc_http_find_header(x->req, "X-API-Key");
    if (h) {
        key = h->value;
    } else if ((h = rc_http_find_header(x->req, "Authorization"))) {
        if (rc_auth_token_from_header(h->value, &key, &err) < 0)
            key = (struct rc_slice){0};
    }
    int rc = key.n ? rc_auth_check_api_key(auth, key, scope, &err) : -ENOENT;
    if (rc == 0)
        return true;
    if (rc == -ENOENT || !key.n) {
        static const char body[] =
            "{\"error\":{\"code\":\"unauthorized\",\"message\":\"an API key is required: "
            "send Authorization: Bearer <key> or X-API-Key\"}}";
        rc_http_respond(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", body,
                        sizeof(body) - 1);
        return false;
    }
    rc_http_error(x, 403, "forbidden", "%s", err.msg);
    return false;
}

/* Who is calling: a backend (API key with the notify scope, or a loopback
 * client when no key is configured) -> user[0] == '\0'; a client with a JWT
 * -> its sub in user and, when idp is not NULL, its identity in *idp (the
 * caller frees it; NULL for a backend). false when refused (answered 401/403). */
static bool caller_id(struct rc_http_ctx *x, char user[RC_ROUTE_USER_MAX + 1],
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
            if (id->sub_len == 0 || id->sub_len > RC_ROUTE_USER_MAX) {
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

/* The row's scope; false when refused (answered). */
static bool scope_allowed(struct rc_http_ctx *x, enum rc_route_scope scope, struct rc_route_req *r)
{
    switch (scope) {
    case RC_SCOPE_PUBLIC:
        return true;
    case RC_SCOPE_PUBLISH:
        return backend_allowed(x, RC_AUTH_SCOPE_PUBLISH);
    case RC_SCOPE_ADMIN:
        /* metrics_address: the network is the access control (only /metrics is there) */
        if (x->conn->listener == RC_LISTENER_METRICS)
            return true;
        return backend_allowed(x, RC_AUTH_SCOPE_ADMIN);
    case RC_SCOPE_NOTIFY:
        if (!caller_id(x, r->user, NULL))
            return false;
        if (r->user[0]) {
            rc_http_error(x, 403, "forbidden",
                          "creating notifications needs an API key with the notify scope");
            return false;
        }
        return true;
    case RC_SCOPE_NOTIFY_OR_USER:
        return caller_id(x, r->user, &r->identity);
    }
    return false;
}

/* ---- bodies ------------------------------------------------------------------------------ */

json_t *rc_api_body_object(struct rc_http_ctx *x)
{
    json_error_t jerr;
    if (x->body_len == 0) {
        rc_http_error(x, 400, "bad_json", "the request body must be a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        rc_http_error(x, 400, "bad_json", "body is not valid JSON: %s (line %d, column %d)",
                      jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        rc_http_error(x, 400, "bad_json", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- matching ---------------------------------------------------------------------------- */

/* A path split under an id prefix: the decoded segments after it. */
struct ids {
    const char *prefix; /* NULL: the path is under no id prefix */
    size_t plen, nseg;
    char seg[RC_ROUTE_MAX_PARAMS][RC_ROUTE_SEG_MAX];
    size_t len[RC_ROUTE_MAX_PARAMS];
};

static bool under(struct rc_slice path, const char *prefix, size_t plen, struct rc_slice *rest)
{
    if (path.n < plen || memcmp(path.p, prefix, plen) != 0)
        return false;
    if (path.n > plen && path.p[plen] != '/')
        return false;
    *rest = (struct rc_slice){path.p + plen, path.n - plen};
    return true;
}

static void not_found(struct rc_http_ctx *x)
{
    rc_http_error(x, 404, "not_found", "no such endpoint; see docs/API.md");
}

/* Split rest ("" or "/a/b/c") into up to RC_ROUTE_MAX_PARAMS decoded segments;
 * false when answered (400 bad_path, 404 for an empty or one segment too many). */
static bool split_ids(struct rc_http_ctx *x, struct rc_slice rest, struct ids *ids)
{
    ids->nseg = 0;
    while (rest.n > 0) {
        if (rest.p[0] != '/' || ids->nseg == RC_ROUTE_MAX_PARAMS) {
            not_found(x);
            return false;
        }
        rest.p++;
        rest.n--;
        size_t len = 0;
        while (len < rest.n && rest.p[len] != '/')
            len++;
        char *seg = ids->seg[ids->nseg];
        ssize_t n =
            rc_http_url_decode((struct rc_slice){rest.p, len}, seg, RC_ROUTE_SEG_MAX - 1, false);
        if (n <= 0) {
            rc_http_error(x, n == 0 ? 404 : 400, n == 0 ? "not_found" : "bad_path",
                          n == 0 ? "empty path segment; see docs/API.md"
                                 : "a path segment is not valid percent-encoding or is longer "
                                   "than 255 bytes");
            return false;
        }
        seg[n] = '\0';
        ids->len[ids->nseg++] = (size_t)n;
        rest.p += len;
        rest.n -= len;
    }
    return true;
}

/* pat: a pattern's part after the id prefix ("", "/{id}", "/{id}/mark-read") against the
 * decoded segments; captures into r->param. */
static bool match_ids(const char *pat, const struct ids *ids, struct rc_route_req *r)
{
    size_t i = 0, np = 0;
    while (*pat) {
        if (*pat != '/' || i == ids->nseg)
            return false;
        pat++;
        const char *end = strchr(pat, '/');
        size_t n = end ? (size_t)(end - pat) : strlen(pat);
        if (pat[0] == '{')
            r->param[np++] = ids->seg[i];
        else if (n != ids->len[i] || memcmp(pat, ids->seg[i], n) != 0)
            return false;
        pat += n;
        i++;
    }
    return i == ids->nseg;
}

/* Does row rt match the path? Fills r's captures when it does. */
static bool row_matches(const struct rc_route *rt, struct rc_slice path, const struct ids *ids,
                        struct rc_route_req *r)
{
    if (ids->prefix) {
        if (strncmp(rt->pattern, ids->prefix, ids->plen) != 0 ||
            (rt->pattern[ids->plen] != '\0' && rt->pattern[ids->plen] != '/'))
            return false;
        return match_ids(rt->pattern + ids->plen, ids, r);
    }
    if (!(rt->flags & RC_ROUTE_TAIL))
        return rc_slice_eq(path, rt->pattern);
    size_t n = (size_t)(strchr(rt->pattern, '{') - rt->pattern);
    if (path.n <= n || memcmp(path.p, rt->pattern, n) != 0)
        return false;
    r->tail = (struct rc_slice){path.p + n, path.n - n};
    return true;
}

static unsigned method_bit(enum rc_http_method m)
{
    switch (m) {
    case RC_HTTP_GET:
    case RC_HTTP_HEAD:
        return RC_ROUTE_GET;
    case RC_HTTP_POST:
        return RC_ROUTE_POST;
    case RC_HTTP_PATCH:
        return RC_ROUTE_PATCH;
    case RC_HTTP_DELETE:
        return RC_ROUTE_DELETE;
    default:
        return 0;
    }
}

/* The methods in mask, as "GET, HEAD, POST" (sep ", ", GET with HEAD) or "GET or POST". */
static void method_list(char *out, size_t cap, unsigned mask, bool allow)
{
    static const struct {
        unsigned bit;
        const char *allow, *word;
    } names[] = {{RC_ROUTE_GET, "GET, HEAD", "GET"},
                 {RC_ROUTE_POST, "POST", "POST"},
                 {RC_ROUTE_PATCH, "PATCH", "PATCH"},
                 {RC_ROUTE_DELETE, "DELETE", "DELETE"}};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < RC_ARRAY_LEN(names) && n < cap; i++) {
        if (!(mask & names[i].bit))
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? (allow ? ", " : " or ") : "",
                              allow ? names[i].allow : names[i].word);
    }
}

/* 405 for the resource rt names, whose rows allow `mask`. The message keeps the wording each
 * family of paths always had: store paths "... is not allowed here", topic paths "use GET on
 * <pattern>", the others "... is not allowed on <path>". */
static void method_not_allowed(struct rc_http_ctx *x, const struct rc_route *rt, unsigned mask,
                               bool under_ids)
{
    char allow[64], words[64], hdr[96], body[320];
    method_list(allow, sizeof(allow), mask, true);
    method_list(words, sizeof(words), mask, false);
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    int m = (int)(x->req->method_str.n > 16 ? 16 : x->req->method_str.n);
    int n;
    if (under_ids)
        n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%.*s is not "
                     "allowed here; use %s\"}}",
                     m, x->req->method_str.p, allow);
    else if (rt->flags & RC_ROUTE_TAIL)
        n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"use %s on %s\"}}",
                     words, rt->pattern);
    else
        n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%.*s is not "
                     "allowed on %s; use %s\"}}",
                     m, x->req->method_str.p, rt->pattern, words);
    rc_http_respond(x, 405, "application/json", hdr, body, (size_t)n);
}

/* With no api_keys every loopback client is a trusted backend, and a reverse
 * proxy on this host is a loopback client that forwards anybody. A loopback
 * request carrying X-Forwarded-For or Forwarded says such a proxy exists: warn
 * once per shard, count every one (forwarded_loopback). */
static void note_forwarded(struct rc_http_ctx *x)
{
    struct rc_shard *s = x->conn->shard;
    if (!s->srv->api_open || !rc_api_is_loopback(x->conn))
        return;
    const struct rc_http_header *h = rc_http_find_header(x->req, "X-Forwarded-For");
    if (!h)
        h = rc_http_find_header(x->req, "Forwarded");
    if (!h)
        return;
    s->ctr.forwarded_loopback++;
    if (s->forwarded_warned)
        return;
    s->forwarded_warned = true;
    rc_log(RC_LOG_WARN, "forwarded_without_api_keys",
           "shard=%u header=%.*s msg=\"a loopback client sent a forwarded request while no "
           "api_keys are configured: every loopback client is trusted as a backend, so clients "
           "of a reverse proxy on this host can publish, notify and read stats; configure "
           "api_keys (counted in forwarded_loopback, logged once per shard)\"",
           s->id, (int)h->name.n, h->name.p);
}

/* ---- entry points ------------------------------------------------------------------------ */

void rc_api_route(struct rc_http_ctx *x)
{
    struct rc_slice path = x->req->path, rest;
    struct rc_route_req r = {0};
    struct ids ids;
    if (x->conn->listener == RC_LISTENER_METRICS && !rc_slice_eq(path, "/metrics") &&
        !rc_slice_eq(path, "/healthz")) {
        rc_http_error(x, 404, "not_found",
                      "this listener (metrics_address) serves only /metrics and /healthz");
        return;
    }
    note_forwarded(x);
    ids.prefix = NULL;
    for (size_t i = 0; i < rc_api_nid_prefixes; i++) {
        size_t plen = strlen(rc_api_id_prefixes[i]);
        if (under(path, rc_api_id_prefixes[i], plen, &rest)) {
            if (!split_ids(x, rest, &ids))
                return;
            ids.prefix = rc_api_id_prefixes[i];
            ids.plen = plen;
            break;
        }
    }
    size_t first = 0;
    while (first < rc_api_nroutes && !row_matches(&rc_api_routes[first], path, &ids, &r))
        first++;
    if (first == rc_api_nroutes) {
        not_found(x);
        return;
    }
    /* the resource: every row with the first match's pattern (captures are the same) */
    unsigned want = method_bit(x->req->method), mask = 0;
    const struct rc_route *rt = NULL;
    for (size_t i = first; i < rc_api_nroutes; i++) {
        const struct rc_route *row = &rc_api_routes[i];
        if (strcmp(row->pattern, rc_api_routes[first].pattern) != 0)
            continue;
        mask |= row->methods;
        if (!rt && (row->methods & want))
            rt = row;
    }
    if (x->req->method == RC_HTTP_OPTIONS && !(mask & want)) {
        char allow[64];
        method_list(allow, sizeof(allow), mask, true);
        rc_http_preflight(x, allow); /* CORS preflight, or a plain OPTIONS */
        return;
    }
    if (!rt) {
        method_not_allowed(x, &rc_api_routes[first], mask, ids.prefix != NULL);
        return;
    }
    r.route = rt;
    if (!scope_allowed(x, rt->scope, &r))
        goto out;
    if (rt->body == RC_BODY_JSON && !(r.body = rc_api_body_object(x)))
        goto out;
    rt->fn(x, &r);
out:
    json_decref(r.body);
    rc_auth_identity_free(r.identity);
}

bool rc_api_is_stream(const struct rc_http_request *req)
{
    if (req->method != RC_HTTP_GET)
        return false;
    for (size_t i = 0; i < rc_api_nroutes; i++)
        if ((rc_api_routes[i].flags & RC_ROUTE_STREAM) &&
            rc_slice_eq(req->path, rc_api_routes[i].pattern))
            return true;
    return false;
}
