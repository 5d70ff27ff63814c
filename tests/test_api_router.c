/* test_api_router.c - the router on a table of its own: literal, id-prefix and tail
 * matching, 404 and 405 with Allow, the order of the shared checks (scope, body) before
 * the handler, and the stream check. The real table is covered end to end
 * (tests/e2e/test_http.py, test_notifications.py). The session's answer functions and
 * auth are stubs that record what the router did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/api/api_router.h"
#include "ringcast/api.h"
#include "ringcast/shard.h"

/* ---- what the router calls outside api_router.c ------------------------------------- */

static int g_status;
static char g_headers[256], g_body[1024];
static size_t g_nkeys;

void rc_http_respond(struct rc_http_ctx *x, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len)
{
    (void)x, (void)content_type;
    g_status = status;
    snprintf(g_headers, sizeof(g_headers), "%s", extra_headers ? extra_headers : "");
    snprintf(g_body, sizeof(g_body), "%.*s", (int)body_len, body ? body : "");
}

void rc_http_error(struct rc_http_ctx *x, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char body[600];
    int n = snprintf(body, sizeof(body), "%s: %s", code, msg);
    rc_http_respond(x, status, "application/json", NULL, body, (size_t)n);
}

void rc_http_preflight(struct rc_http_ctx *x, const char *methods)
{
    (void)x;
    g_status = 204;
    snprintf(g_headers, sizeof(g_headers), "preflight: %s", methods);
}

size_t rc_auth_api_key_count(const struct rc_auth *a)
{
    (void)a;
    return g_nkeys;
}

int rc_auth_check_api_key(const struct rc_auth *a, struct rc_slice key, unsigned need,
                          struct rc_err *err)
{
    (void)a, (void)key, (void)need;
    rc_err_set(err, 403, "forbidden", "this key lacks the scope");
    return -EACCES;
}

int rc_auth_token_from_header(struct rc_slice value, struct rc_slice *token, struct rc_err *err)
{
    (void)err;
    *token = value;
    return 0;
}

int rc_auth_authenticate(const struct rc_auth *a, const char *token, size_t len, int64_t now,
                         struct rc_auth_identity **out, struct rc_err *err)
{
    (void)a, (void)token, (void)len, (void)now, (void)out;
    rc_err_set(err, 401, "unauthorized", "not a token");
    return -EACCES;
}

void rc_auth_identity_free(struct rc_auth_identity *id)
{
    free(id);
}

/* ---- a table of our own ------------------------------------------------------------------ */

static const struct rc_route *g_ran;
static struct rc_route_req g_req;
static char g_param[RC_ROUTE_MAX_PARAMS][RC_ROUTE_SEG_MAX], g_tail[256];
static bool g_had_body;

static void h(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)x;
    g_ran = r->route;
    g_req = *r;
    for (size_t i = 0; i < RC_ROUTE_MAX_PARAMS; i++)
        snprintf(g_param[i], sizeof(g_param[i]), "%s", r->param[i] ? r->param[i] : "");
    snprintf(g_tail, sizeof(g_tail), "%.*s", (int)r->tail.n, r->tail.p ? r->tail.p : "");
    g_had_body = r->body && json_is_object(r->body);
}

const struct rc_route rc_api_routes[] = {
    {RC_ROUTE_GET, "/a", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},                     /* 0 */
    {RC_ROUTE_DELETE, "/a", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},                  /* 1 */
    {RC_ROUTE_GET, "/ws", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_STREAM, h},      /* 2 */
    {RC_ROUTE_POST, "/ws", RC_SCOPE_PUBLIC, RC_BODY_JSON, 0, h},                   /* 3 */
    {RC_ROUTE_POST, "/pub", RC_SCOPE_PUBLISH, RC_BODY_JSON, 0, h},                 /* 4 */
    {RC_ROUTE_GET, "/t/{topic}", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_TAIL, h}, /* 5 */
    {RC_ROUTE_GET, "/s", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},                     /* 6 */
    {RC_ROUTE_GET, "/s/lit/{x}", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},             /* 7 */
    {RC_ROUTE_GET, "/s/{id}", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},                /* 8 */
    {RC_ROUTE_POST, "/s/{id}/x", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h},             /* 9 */
};
const size_t rc_api_nroutes = RC_ARRAY_LEN(rc_api_routes);
const char *const rc_api_id_prefixes[] = {"/s"};
const size_t rc_api_nid_prefixes = RC_ARRAY_LEN(rc_api_id_prefixes);

/* ---- requests -------------------------------------------------------------------------- */

static struct rc_server g_srv;
static struct rc_shard g_shard;
static struct rc_conn g_conn;
static struct rc_http_request g_http;

static void route(enum rc_http_method m, const char *mstr, const char *path, const char *body)
{
    g_status = 0;
    g_headers[0] = g_body[0] = '\0';
    g_ran = NULL;
    g_had_body = false;
    memset(&g_http, 0, sizeof(g_http));
    g_http.method = m;
    g_http.method_str = rc_slice_make(mstr, strlen(mstr));
    g_http.path = rc_slice_make(path, strlen(path));
    g_shard.srv = &g_srv;
    g_conn.shard = &g_shard;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&g_conn.peer;
    in4->sin_family = AF_INET;
    in4->sin_addr.s_addr = htonl(0x7f000001);
    struct rc_http_ctx x = {
        .conn = &g_conn,
        .req = &g_http,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    rc_api_route(&x);
}

static void get(const char *path)
{
    route(RC_HTTP_GET, "GET", path, NULL);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_router_literal_path_runs_its_row(void **state)
{
    (void)state;
    get("/a");
    assert_ptr_equal(g_ran, &rc_api_routes[0]);
    route(RC_HTTP_DELETE, "DELETE", "/a", NULL);
    assert_ptr_equal(g_ran, &rc_api_routes[1]);
}

static void test_router_head_runs_the_get_row(void **state)
{
    (void)state;
    route(RC_HTTP_HEAD, "HEAD", "/a", NULL);
    assert_ptr_equal(g_ran, &rc_api_routes[0]);
}

static void test_router_unknown_path_is_404_not_found(void **state)
{
    (void)state;
    get("/a/");
    assert_null(g_ran);
    assert_int_equal(g_status, 404);
    assert_string_equal(g_body, "not_found: no such endpoint; see docs/API.md");
    get("/b");
    assert_int_equal(g_status, 404);
}

static void test_router_wrong_method_is_405_allowing_every_row_of_the_path(void **state)
{
    (void)state;
    route(RC_HTTP_PUT, "PUT", "/a", NULL);
    assert_null(g_ran);
    assert_int_equal(g_status, 405);
    assert_string_equal(g_headers, "Allow: GET, HEAD, DELETE\r\n");
    assert_string_equal(g_body, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"PUT is "
                                "not allowed on /a; use GET or DELETE\"}}");
}

/* OPTIONS on a path answers with the methods of every row of it, before any
 * scope check (a browser's preflight carries no credentials); unknown paths 404. */
static void test_router_options_lists_the_methods_of_the_path(void **state)
{
    (void)state;
    route(RC_HTTP_OPTIONS, "OPTIONS", "/a", NULL);
    assert_null(g_ran);
    assert_int_equal(g_status, 204);
    assert_string_equal(g_headers, "preflight: GET, HEAD, DELETE");
    route(RC_HTTP_OPTIONS, "OPTIONS", "/pub", NULL); /* needs a publish key, preflight not */
    assert_int_equal(g_status, 204);
    assert_string_equal(g_headers, "preflight: POST");
    route(RC_HTTP_OPTIONS, "OPTIONS", "/s/abc/x", NULL);
    assert_string_equal(g_headers, "preflight: POST");
    route(RC_HTTP_OPTIONS, "OPTIONS", "/nowhere", NULL);
    assert_int_equal(g_status, 404);
}

static void test_router_405_wording_of_id_prefix_and_tail_paths(void **state)
{
    (void)state;
    route(RC_HTTP_POST, "POST", "/s/1", NULL);
    assert_int_equal(g_status, 405);
    assert_string_equal(g_headers, "Allow: GET, HEAD\r\n");
    assert_string_equal(g_body, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"POST is "
                                "not allowed here; use GET, HEAD\"}}");
    route(RC_HTTP_POST, "POST", "/t/a.b", NULL);
    assert_int_equal(g_status, 405);
    assert_string_equal(g_body, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"use GET "
                                "on /t/{topic}\"}}");
}

static void test_router_id_prefix_captures_decoded_segments(void **state)
{
    (void)state;
    route(RC_HTTP_POST, "POST", "/s/a%20b/x", NULL);
    assert_ptr_equal(g_ran, &rc_api_routes[9]);
    assert_string_equal(g_param[0], "a b");
    get("/s");
    assert_ptr_equal(g_ran, &rc_api_routes[6]);
}

static void test_router_literal_row_shadows_a_later_param_row(void **state)
{
    (void)state;
    get("/s/lit/7");
    assert_ptr_equal(g_ran, &rc_api_routes[7]);
    assert_string_equal(g_param[0], "7");
    /* /s/{id}/x would take POST, but /s/lit/{x} named the resource first */
    route(RC_HTTP_POST, "POST", "/s/lit/x", NULL);
    assert_null(g_ran);
    assert_int_equal(g_status, 405);
    assert_string_equal(g_headers, "Allow: GET, HEAD\r\n");
}

static void test_router_id_prefix_refuses_malformed_paths(void **state)
{
    (void)state;
    get("/s/");
    assert_int_equal(g_status, 404);
    assert_string_equal(g_body, "not_found: empty path segment; see docs/API.md");
    get("/s/%ZZ");
    assert_int_equal(g_status, 400);
    assert_non_null(strstr(g_body, "bad_path: "));
    get("/s/a/b/c/d");
    assert_int_equal(g_status, 404);
    assert_string_equal(g_body, "not_found: no such endpoint; see docs/API.md");
    get("/sx");
    assert_int_equal(g_status, 404);
    assert_null(g_ran);
}

static void test_router_tail_takes_the_rest_of_the_path_raw(void **state)
{
    (void)state;
    get("/t/a%2Fb/c");
    assert_ptr_equal(g_ran, &rc_api_routes[5]);
    assert_string_equal(g_tail, "a%2Fb/c");
    get("/t/");
    assert_null(g_ran);
    assert_int_equal(g_status, 404);
}

static void test_router_scope_is_checked_before_the_body_and_the_handler(void **state)
{
    (void)state;
    g_nkeys = 1;
    route(RC_HTTP_POST, "POST", "/pub", "not json");
    g_nkeys = 0;
    assert_null(g_ran);
    assert_int_equal(g_status, 401);
    assert_string_equal(g_headers, "WWW-Authenticate: Bearer\r\n");
}

static void test_router_json_body_is_parsed_or_refused(void **state)
{
    (void)state;
    route(RC_HTTP_POST, "POST", "/pub", "{\"a\":1}");
    assert_ptr_equal(g_ran, &rc_api_routes[4]);
    assert_true(g_had_body);
    route(RC_HTTP_POST, "POST", "/pub", "[1]");
    assert_null(g_ran);
    assert_int_equal(g_status, 400);
    assert_string_equal(g_body, "bad_json: the request body must be a JSON object");
    route(RC_HTTP_POST, "POST", "/pub", NULL);
    assert_int_equal(g_status, 400);
}

static void test_router_stream_check_is_a_get_of_a_stream_row(void **state)
{
    (void)state;
    struct rc_http_request req = {.method = RC_HTTP_GET, .path = rc_slice_make("/ws", 3)};
    assert_true(rc_api_is_stream(&req));
    req.method = RC_HTTP_HEAD;
    assert_false(rc_api_is_stream(&req));
    req.method = RC_HTTP_POST;
    assert_false(rc_api_is_stream(&req));
    req = (struct rc_http_request){.method = RC_HTTP_GET, .path = rc_slice_make("/a", 2)};
    assert_false(rc_api_is_stream(&req));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_literal_path_runs_its_row),
        cmocka_unit_test(test_router_head_runs_the_get_row),
        cmocka_unit_test(test_router_unknown_path_is_404_not_found),
        cmocka_unit_test(test_router_wrong_method_is_405_allowing_every_row_of_the_path),
        cmocka_unit_test(test_router_405_wording_of_id_prefix_and_tail_paths),
        cmocka_unit_test(test_router_options_lists_the_methods_of_the_path),
        cmocka_unit_test(test_router_id_prefix_captures_decoded_segments),
        cmocka_unit_test(test_router_literal_row_shadows_a_later_param_row),
        cmocka_unit_test(test_router_id_prefix_refuses_malformed_paths),
        cmocka_unit_test(test_router_tail_takes_the_rest_of_the_path_raw),
        cmocka_unit_test(test_router_scope_is_checked_before_the_body_and_the_handler),
        cmocka_unit_test(test_router_json_body_is_parsed_or_refused),
        cmocka_unit_test(test_router_stream_check_is_a_get_of_a_stream_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
