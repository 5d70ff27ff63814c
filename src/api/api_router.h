/* api_router.h - the one table of HTTP routes and the router that runs it.
 * Private to the api layer (api_router.c runs the table, api.c holds it, api.c and api_store.c
 * hold the handlers). Not part of the public API (see include/ringcast/api.h).
 *
 * Owner: everything here runs on the shard thread of the connection that made the request;
 *   the table is const and shared by every shard.
 * A request meets, in this order: (on the metrics_address listener: 404 for any path but
 *   /metrics and /healthz) the forwarded-loopback note, the path match (404), the
 *   method check (405 with Allow naming the methods of the matched path), the scope check
 *   (401/403), the body (400 bad_json), then the row's handler. A handler only does its own job.
 * Matching: rows are tried in table order and the first row whose pattern matches the path
 *   names the resource; the rows with that same pattern string are its methods. Patterns are
 *   literal segments and {param} captures:
 *   - under an id prefix (rc_api_id_prefixes: notifications, subscriptions) the rest of the
 *     path is split into at most RC_ROUTE_MAX_PARAMS segments, each percent-decoded (an empty
 *     one is a 404, a malformed one a 400 bad_path) and compared or captured decoded;
 *   - elsewhere a pattern is the literal path, or with RC_ROUTE_TAIL a literal prefix and a last
 *     {param} that takes the rest of the path undecoded (a topic: the handler decodes it).
 *   The cost is a linear scan of the rows with length-first compares; nothing allocates.
 * Lifetime of struct rc_route_req: the router's stack frame; the handler must not keep it. */
#ifndef RINGCAST_API_ROUTER_H
#define RINGCAST_API_ROUTER_H

#include <jansson.h>
#include <stddef.h>

#include "ringcast/auth.h"
#include "ringcast/http.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_ROUTE_MAX_PARAMS 3 /* decoded segments after an id prefix */
#define RC_ROUTE_SEG_MAX 256  /* one decoded path segment, with its NUL */
#define RC_ROUTE_USER_MAX 128 /* a client JWT's sub (= RC_STORE_USER_ID_MAX) */

/* Methods of a row (a mask). GET also answers HEAD (the session sends no body). */
#define RC_ROUTE_GET (1u << 0)
#define RC_ROUTE_POST (1u << 1)
#define RC_ROUTE_PATCH (1u << 2)
#define RC_ROUTE_DELETE (1u << 3)

/* Who may call a row; the router answers 401/403 before the handler runs. */
enum rc_route_scope {
    RC_SCOPE_PUBLIC,         /* anyone: the handler checks its own credentials (WS/SSE tokens) */
    RC_SCOPE_PUBLISH,        /* a backend: an API key with the publish scope, or, with no
                                api_keys configured, a loopback client */
    RC_SCOPE_ADMIN,          /* a backend with the admin scope (same rules) */
    RC_SCOPE_NOTIFY,         /* a backend with the notify scope; a client JWT is refused (403) */
    RC_SCOPE_NOTIFY_OR_USER, /* a notify backend, or a client JWT: req->user is its sub and
                                req->identity its identity (a backend: "" and NULL) */
};

/* What the body must be; the router parses it into req->body before the handler runs. */
enum rc_route_body {
    RC_BODY_NONE, /* ignored */
    RC_BODY_JSON, /* a JSON object, else 400 bad_json (rc_api_body_object) */
};

/* Row flags.
 * RC_ROUTE_STREAM: the request takes the connection over (WebSocket upgrade, SSE stream); the
 *   session holds it until every earlier answer is written. Only on GET rows with a literal
 *   pattern (see rc_api_is_stream).
 * RC_ROUTE_TAIL: the pattern's last {param} takes the rest of the path, raw. */
#define RC_ROUTE_STREAM 1u
#define RC_ROUTE_TAIL 2u

/* What the router hands a handler. */
struct rc_route_req {
    const struct rc_route *route;
    /* captures in pattern order: decoded and NUL-terminated under an id prefix */
    const char *param[RC_ROUTE_MAX_PARAMS];
    struct rc_slice tail; /* RC_ROUTE_TAIL: the rest of the path, percent-encoded */
    json_t *body;         /* RC_BODY_JSON: the object; the router frees it after the handler
                             (a handler keeping it takes a reference) */
    char user[RC_ROUTE_USER_MAX + 1];  /* RC_SCOPE_NOTIFY_OR_USER: the JWT's sub, or "" */
    struct rc_auth_identity *identity; /* RC_SCOPE_NOTIFY_OR_USER: freed by the router */
};

typedef void (*rc_route_fn)(struct rc_http_ctx *x, struct rc_route_req *r);

struct rc_route {
    unsigned methods;    /* RC_ROUTE_GET | ... */
    const char *pattern; /* "/api/realtime/notifications/{id}/mark-read" */
    enum rc_route_scope scope;
    enum rc_route_body body;
    unsigned flags; /* RC_ROUTE_STREAM, RC_ROUTE_TAIL */
    rc_route_fn fn;
};

/* The table (api.c): every HTTP path ringcast answers. */
extern const struct rc_route rc_api_routes[];
extern const size_t rc_api_nroutes;
/* Prefixes whose rest names stored objects by id (api.c): see the matching rules above. */
extern const char *const rc_api_id_prefixes[];
extern const size_t rc_api_nid_prefixes;

/* POST /api/realtime/disconnect (api_admin.c). */
void rc_api_admin_disconnect(struct rc_http_ctx *x, struct rc_route_req *r);

/* Store handlers (api_store.c). */
void rc_api_store_notif_list(struct rc_http_ctx *x, struct rc_route_req *r);
/* GET /metrics (api_metrics.c) */
void rc_api_metrics(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_notif_create(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_notif_unread(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_notif_get(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_notif_mark_read(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_list(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_create_resource(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_create_topic(struct rc_http_ctx *x, struct rc_route_req *r);
/* api_dashboard.c: the dashboard's embedded pages */
void rc_api_dashboard_redirect(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_dashboard_index(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_dashboard_file(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_get(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_delete(struct rc_http_ctx *x, struct rc_route_req *r);
void rc_api_store_sub_set_status(struct rc_http_ctx *x, struct rc_route_req *r);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_API_ROUTER_H */
