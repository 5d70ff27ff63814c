/* cors.c - browsers on another origin: the CORS protocol of the Fetch
 * standard for every HTTP answer (REST and the SSE stream), the preflight
 * answer, and the one Origin rule the WebSocket handshake shares.
 *
 * The rule, from allowed_origins (the list the WebSocket Origin check uses):
 * - no Origin header (curl, a backend): no CORS headers, nothing refused;
 * - same origin (Origin's host[:port] is the request's Host): allowed, as for
 *   ringcast's own pages (/admin/); a browser needs no CORS headers then;
 * - empty list: any origin may read answers, without credentials
 *   (Access-Control-Allow-Origin: *); an Authorization header is not a
 *   credential in that sense, so a page sending its JWT works;
 * - a listed origin: echoed, with Access-Control-Allow-Credentials: true;
 * - an origin not listed: refused 403 origin_not_allowed before the route
 *   runs (nothing happens on its behalf), the WebSocket handshake likewise.
 * Answers to a request with an Origin expose X-Total-Count and Retry-After;
 * with a list, every answer says Vary: Origin.
 * Owner: the connection's shard thread; the config is immutable. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ringcast/config.h"
#include "ringcast/http.h"
#include "ringcast/shard.h"

#define EXPOSE "Access-Control-Expose-Headers: X-Total-Count, Retry-After\r\n"
#define PREFLIGHT_HEADERS "Authorization, Content-Type, Last-Event-ID, X-API-Key"
#define PREFLIGHT_MAX_AGE 600 /* s a browser may cache a preflight answer */

/* Origin "scheme://host[:port]" names the same authority as Host. */
static bool same_origin(const struct rc_http_request *req, struct rc_slice origin)
{
    const struct rc_http_header *host = rc_http_find_header(req, "Host");
    const char *sep = origin.n > 3 ? memmem(origin.p, origin.n, "://", 3) : NULL;
    if (!host || !sep)
        return false;
    size_t off = (size_t)(sep - origin.p) + 3;
    return host->value.n == origin.n - off && host->value.n > 0 &&
           strncasecmp(host->value.p, origin.p + off, host->value.n) == 0;
}

int rc_http_cors_of(const struct rc_config *cfg, const struct rc_http_request *req)
{
    const struct rc_http_header *h = rc_http_find_header(req, "Origin");
    if (!h)
        return RC_CORS_NONE;
    for (size_t i = 0; i < cfg->allowed_origins.n; i++)
        if (rc_slice_ieq(h->value, cfg->allowed_origins.items[i]))
            return (int)i + 1;
    if (same_origin(req, h->value))
        return RC_CORS_SAME;
    return cfg->allowed_origins.n == 0 ? RC_CORS_ANY : RC_CORS_DENIED;
}

size_t rc_http_cors_headers(const struct rc_config *cfg, int cors, char *out, size_t cap)
{
    int n = 0;
    const char *vary = cfg->allowed_origins.n ? "Vary: Origin\r\n" : "";
    if (cors == RC_CORS_ANY)
        n = snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n" EXPOSE);
    else if (cors > 0 && (size_t)cors <= cfg->allowed_origins.n)
        n = snprintf(out, cap,
                     "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: "
                     "true\r\n" EXPOSE "%s",
                     cfg->allowed_origins.items[cors - 1], vary);
    else
        n = snprintf(out, cap, "%s", vary);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool rc_http_origin_refused(struct rc_http_ctx *x)
{
    if (x->cors != RC_CORS_DENIED)
        return false;
    x->conn->shard->ctr.refused_origin++;
    rc_http_error(x, 403, "origin_not_allowed",
                  "Origin is not in allowed_origins; ask the operator to add it");
    return true;
}

void rc_http_preflight(struct rc_http_ctx *x, const char *methods)
{
    char extra[1024];
    if (x->cors == RC_CORS_NONE || !rc_http_find_header(x->req, "Access-Control-Request-Method")) {
        /* a plain OPTIONS (RFC 9110 9.3.7): what the resource allows */
        snprintf(extra, sizeof(extra), "Allow: OPTIONS, %s\r\n", methods);
        rc_http_respond(x, 204, NULL, extra, NULL, 0);
        return;
    }
    /* the CORS headers themselves come with every answer (build_response) */
    snprintf(extra, sizeof(extra),
             "Access-Control-Allow-Methods: %s\r\nAccess-Control-Allow-Headers: " PREFLIGHT_HEADERS
             "\r\nAccess-Control-Max-Age: %d\r\n",
             methods, PREFLIGHT_MAX_AGE);
    rc_http_respond(x, 204, NULL, extra, NULL, 0);
}
