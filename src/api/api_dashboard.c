/* api_dashboard.c - the admin dashboard's pages: GET /admin redirects to /admin/,
 * /admin/ is index.html, /admin/<file> one of the embedded files (admin/ in the
 * source tree, compiled in by scripts/embed_assets.py: no CDN, nothing fetched
 * at run time). The pages hold no secret, so they are public; everything they
 * show comes from the admin API with the key the user enters (kept in the
 * tab's sessionStorage). Answers forbid framing and inline script
 * (Content-Security-Policy: 'self' only).
 * Owner: the connection's shard thread; the assets are immutable. */
#include <string.h>

#include "ringcast/http.h"

#include "api_dashboard.h"
#include "api_router.h"

#define SECURITY_HEADERS                                                                           \
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "                          \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"                              \
    "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"

static void serve(struct rc_http_ctx *x, struct rc_slice name)
{
    for (size_t i = 0; i < rc_dashboard_nassets; i++) {
        const struct rc_dashboard_asset *a = &rc_dashboard_assets[i];
        if (rc_slice_eq(name, a->name)) {
            rc_http_respond(x, 200, a->ctype, SECURITY_HEADERS, (const char *)a->data, a->len);
            return;
        }
    }
    rc_http_error(x, 404, "not_found", "no such file of the admin dashboard; open /admin/");
}

void rc_api_dashboard_redirect(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    static const char body[] = "{\"location\":\"/admin/\"}";
    rc_http_respond(x, 308, "application/json", "Location: /admin/\r\n", body, sizeof(body) - 1);
}

void rc_api_dashboard_index(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    serve(x, rc_slice_make("index.html", strlen("index.html")));
}

void rc_api_dashboard_file(struct rc_http_ctx *x, struct rc_route_req *r)
{
    serve(x, r->tail);
}
