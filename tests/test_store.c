/* test_store.c - the store against both engines: a real SQLite file in a
 * fresh temporary data_dir per test, and a real PostgreSQL 15 server started
 * by this program (tests/pg_test_server.h; the public schema is emptied before
 * each test). One table of cases, two engines: every engine-independent case
 * runs twice (the PostgreSQL runs are named *_pg), in ONE cmocka group. Then
 * cases for one engine only (SQLite files and pragmas; PostgreSQL restarts,
 * a newer schema, two opens racing). The cases: every operation's happy path and bad inputs (each
 * error names its field), paging, expiry (an injected clock), group commit (one transaction for a
 * batch of 1000), a failing commit, restart, schema version, durability setting, the stop protocol
 * and four concurrent producers against the real thread (scripts/test runs this under TSan). Most
 * tests drive the store without its thread (rc_store_poll) so that the batch boundaries are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pg_test_server.h"
#include "ringcast/log.h"
#include "ringcast/store.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00.000Z */

struct fix {
    char dir[64];
    struct rc_store *s;
    struct rc_mpsc replies; /* answered requests, pushed by the reply function */
    int efd;
    int64_t now; /* the injected clock; only moved while no store thread runs */
    struct rc_store_config cfg;
    bool pg;                               /* the PostgreSQL engine */
    const struct rc_store_engine_ops *ops; /* the engine under test */
};

/* The PostgreSQL server of the whole run (started in main). */
static struct pg_test_server g_pg;
static bool g_pg_up;

static int64_t fake_clock(void *ctx)
{
    return ((struct fix *)ctx)->now;
}

static void on_reply(void *ctx, struct rc_store_req *req)
{
    rc_mpsc_push(&((struct fix *)ctx)->replies, &req->node);
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    if (!d)
        return;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR)
            rm_dir(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void open_store(struct fix *f)
{
    struct rc_err err = {0};
    int rc = rc_store_open(&f->s, &f->cfg, on_reply, f, &err);
    if (rc)
        fail_msg("rc_store_open: %d %s", rc, err.msg);
}

/* An empty database for the next PostgreSQL case. */
static void pg_reset(void)
{
    assert_true(pts_exec_sql(&g_pg, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"));
}

static int setup_engine(void **state, bool pg)
{
    if (pg && !g_pg_up)
        return -1; /* main said why; cmocka counts the case as failed, never passed */
    if (pg)
        pg_reset();
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rc_store_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->efd >= 0);
    rc_mpsc_init(&f->replies, f->efd);
    f->now = T0;
    f->cfg = (struct rc_store_config){.data_dir = f->dir, .clock = fake_clock, .clock_ctx = f};
    f->pg = pg;
    f->ops = pg ? &rc_store_pg_ops : &rc_store_sqlite_ops;
    f->cfg.engine = f->ops;
    f->cfg.postgres_url = pg ? g_pg.url : NULL;
    open_store(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_engine(state, false);
}

static int setup_pg(void **state)
{
    return setup_engine(state, true);
}

static int teardown(void **state)
{
    struct fix *f = *state;
    struct rc_mpsc_node *n;
    rc_store_stop(f->s);
    while ((n = rc_mpsc_pop(&f->replies)))
        rc_store_req_free(RC_CONTAINER_OF(n, struct rc_store_req, node));
    close(f->efd);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* JSON from text written with ' for " (tests read better). */
static json_t *J(const char *fmt, ...) RC_PRINTF(1, 2);
static json_t *J(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *j = json_loads(buf, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", buf, jerr.text);
    return j;
}

/* v equals the JSON written as text (the expected value is freed). */
static bool jeq(const json_t *v, const char *text)
{
    json_t *want = J("%s", text);
    bool eq = json_equal(v, want);
    json_decref(want);
    return eq;
}

static struct rc_store_req *submit(struct fix *f, enum rc_store_op op, json_t *args)
{
    struct rc_store_req *req = rc_store_req_new(op, args);
    assert_non_null(req);
    rc_store_submit(f->s, req);
    return req;
}

static struct rc_store_req *next_reply(struct fix *f)
{
    struct rc_mpsc_node *n = rc_mpsc_pop(&f->replies);
    assert_non_null(n);
    return RC_CONTAINER_OF(n, struct rc_store_req, node);
}

/* Without the thread: one request, one batch, its answer. */
static struct rc_store_req *call(struct fix *f, enum rc_store_op op, json_t *args)
{
    submit(f, op, args);
    assert_int_equal(rc_store_poll(f->s), 1);
    return next_reply(f);
}

/* With the thread: the next answer, or fail after 20 s. */
static struct rc_store_req *wait_reply(struct fix *f)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct rc_mpsc_node *n = rc_mpsc_pop(&f->replies);
        if (n) {
            return RC_CONTAINER_OF(n, struct rc_store_req, node);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 20)
            fail_msg("no reply from the store thread within 20 s");
        if (!rc_mpsc_prepare_sleep(&f->replies)) {
            rc_mpsc_awake(&f->replies);
            continue;
        }
        struct pollfd pfd = {.fd = f->efd, .events = POLLIN};
        (void)poll(&pfd, 1, 100);
        uint64_t v;
        (void)!read(f->efd, &v, sizeof(v));
        rc_mpsc_awake(&f->replies);
    }
}

static const char *S(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("field %s is not a string", key);
    return s;
}

static void assert_ok(struct rc_store_req *r, int status)
{
    if (r->status != status)
        fail_msg("%s: want %d, got %d %s %s", rc_store_op_name(r->op), status, r->status,
                 r->code ? r->code : "-", r->message);
}

static void assert_fails(struct rc_store_req *r, int status, const char *code, const char *msg)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->code, code);
    if (strncmp(r->message, msg, strlen(msg)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", r->message, msg);
    assert_null(r->result);
}

#define NOTIF                                                                                      \
    "{'title':'New message','message':'You have a new message from Jane',"                         \
    "'recipients':['user-456','user-789'],'type':'message','priority':'high',"                     \
    "'sender_id':'user-123','resource_type':'message','resource_id':'message-789',"                \
    "'actions':[{'label':'View','action':'view','data':{'id':'message-789'}}],"                    \
    "'metadata':{'thread_id':'thread-123'},'expires_at':'2026-05-16T10:30:00Z'}"

static char *create_notif(struct fix *f, const char *json)
{
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, J("%s", json));
    assert_ok(r, 201);
    char *id = strdup(S(r->result, "id"));
    rc_store_req_free(r);
    return id;
}

static uint64_t stat_of(struct fix *f, const char *key)
{
    struct rc_store_req *r = call(f, RC_STORE_STATS, NULL);
    assert_ok(r, 200);
    uint64_t v = (uint64_t)json_integer_value(json_object_get(r->result, key));
    rc_store_req_free(r);
    return v;
}

/* ---- times -------------------------------------------------------------------------------- */

static void test_store_time_parse_accepts_iso8601_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"2026-01-01T00:00:00Z", T0},
        {"2026-01-01T00:00:00.5Z", T0 + 500},
        {"2026-01-01T00:00:00.123456789Z", T0 + 123},
        {"2026-01-01T00:00:00+00:00", T0},
        {"2026-01-01T02:30:00+02:30", T0},
        {"2025-12-31T23:00:00-01:00", T0},
        {"2024-02-29T00:00:00z", 1709164800000LL},
        {"1970-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(ok); i++) {
        int64_t ms = -1;
        assert_int_equal(rc_store_time_parse(ok[i].s, strlen(ok[i].s), &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
}

static void test_store_time_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01T00:00:00+0000",
        "2026-01-01T00:00:00Zjunk",
        "1969-12-31T23:59:59Z",
        "tomorrow",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        int64_t ms;
        if (rc_store_time_parse(bad[i], strlen(bad[i]), &ms) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* every strict prefix of a valid time is refused */
    const char *good = "2026-01-01T00:00:00.123+01:00";
    for (size_t n = 0; n < strlen(good); n++) {
        int64_t ms;
        if (rc_store_time_parse(good, n, &ms) != -EINVAL)
            fail_msg("accepted prefix of %zu bytes", n);
    }
}

static void test_store_time_format_renders_utc_with_millis(void **state)
{
    (void)state;
    char buf[RC_STORE_TIME_LEN];
    rc_store_time_format(T0 + 61001, buf, sizeof(buf));
    assert_string_equal(buf, "2026-01-01T00:01:01.001Z");
    rc_store_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
}

/* ---- notifications -------------------------------------------------------------------------- */

static void test_store_notif_create_returns_201_with_seed_fields(void **state)
{
    struct fix *f = *state;
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, J(NOTIF));
    assert_ok(r, 201);
    json_t *n = r->result;
    const char *id = S(n, "id");
    assert_int_equal(strlen(id), 24);
    assert_memory_equal(id, "ntf_", 4);
    assert_int_equal(strspn(id + 4, "0123456789abcdef"), 20);
    assert_string_equal(S(n, "title"), "New message");
    assert_string_equal(S(n, "message"), "You have a new message from Jane");
    assert_string_equal(S(n, "type"), "message");
    assert_string_equal(S(n, "priority"), "high");
    assert_string_equal(S(n, "status"), "delivered");
    assert_true(jeq(json_object_get(n, "recipients"), "['user-456','user-789']"));
    assert_string_equal(S(n, "sender_id"), "user-123");
    assert_string_equal(S(n, "created_at"), "2026-01-01T00:00:00.000Z");
    assert_string_equal(S(n, "delivered_at"), "2026-01-01T00:00:00.000Z");
    assert_int_equal(json_array_size(json_object_get(n, "read_by")), 0);
    assert_true(jeq(json_object_get(n, "actions"),
                    "[{'label':'View','action':'view','data':{'id':'message-789'}}]"));
    assert_string_equal(S(n, "resource_type"), "message");
    assert_string_equal(S(n, "resource_id"), "message-789");
    assert_true(jeq(json_object_get(n, "metadata"), "{'thread_id':'thread-123'}"));
    assert_string_equal(S(n, "expires_at"), "2026-05-16T10:30:00.000Z");
    assert_int_equal(json_object_size(n), 16);
    assert_null(r->code);
    assert_string_equal(r->message, "");
    rc_store_req_free(r);
}

static void test_store_notif_create_applies_defaults(void **state)
{
    struct fix *f = *state;
    struct rc_store_req *r =
        call(f, RC_STORE_NOTIF_CREATE, J("{'title':'t','message':'m','recipients':['u1']}"));
    assert_ok(r, 201);
    assert_string_equal(S(r->result, "type"), "info");
    assert_string_equal(S(r->result, "priority"), "normal");
    assert_true(json_is_null(json_object_get(r->result, "sender_id")));
    assert_true(json_is_null(json_object_get(r->result, "metadata")));
    assert_true(json_is_null(json_object_get(r->result, "expires_at")));
    assert_int_equal(json_array_size(json_object_get(r->result, "actions")), 0);
    rc_store_req_free(r);
}

struct bad_case {
    const char *key;   /* field to set (NULL: use json as the whole body) */
    const char *value; /* its JSON value, NULL to delete it */
    const char *code;
    const char *msg; /* expected start of the message: names the field */
};

static void run_bad_cases(struct fix *f, enum rc_store_op op, const char *base,
                          const struct bad_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *args = J("%s", base);
        if (c[i].value)
            json_object_set_new(args, c[i].key, J("%s", c[i].value));
        else
            json_object_del(args, c[i].key);
        struct rc_store_req *r = call(f, op, args);
        if (r->status != 400 || strcmp(r->code, c[i].code) != 0 ||
            strncmp(r->message, c[i].msg, strlen(c[i].msg)) != 0)
            fail_msg("case %zu (%s=%s): got %d %s \"%s\", want 400 %s \"%s...\"", i, c[i].key,
                     c[i].value ? c[i].value : "(deleted)", r->status, r->code ? r->code : "-",
                     r->message, c[i].code, c[i].msg);
        assert_null(r->result);
        /* the shard-side check says the same */
        struct rc_err err = {0};
        args = J("%s", base);
        if (c[i].value)
            json_object_set_new(args, c[i].key, J("%s", c[i].value));
        else
            json_object_del(args, c[i].key);
        assert_int_equal(rc_store_check(op, args, f->now, &err), -EINVAL);
        assert_string_equal(err.msg, r->message);
        json_decref(args);
        rc_store_req_free(r);
    }
}

static void test_store_notif_create_rejects_bad_fields_naming_them(void **state)
{
    static const struct bad_case c[] = {
        {"title", NULL, "missing_field", "title: required field is missing"},
        {"title", "''", "bad_value", "title: must be 1..256 characters, got 0"},
        {"title", "5", "bad_type", "title: must be a string"},
        {"title", "'a\\u0000b'", "bad_value", "title: must not contain a NUL"},
        {"message", NULL, "missing_field", "message: required field is missing"},
        {"message", "[]", "bad_type", "message: must be a string"},
        {"recipients", NULL, "missing_field", "recipients: required field is missing"},
        {"recipients", "[]", "bad_value", "recipients: must hold 1..1000 user ids, got 0"},
        {"recipients", "'u1'", "bad_type", "recipients: must be an array"},
        {"recipients", "['u1',7]", "bad_type", "recipients[1]: must be a string"},
        {"recipients", "['u 1']", "bad_value", "recipients[0]: byte 2 is a space"},
        {"recipients", "['a','b','a']", "bad_value", "recipients[2]: \"a\" repeats recipients[0]"},
        {"type", "'weird'", "bad_value",
         "type: \"weird\" is not one of info, message, alert, system, update, reminder"},
        {"priority", "'meh'", "bad_value", "priority: \"meh\" is not one of low, normal, high"},
        {"sender_id", "7", "bad_type", "sender_id: must be a string"},
        {"sender_id", "''", "bad_value", "sender_id: must be 1..128 bytes, got 0"},
        {"resource_type", "''", "bad_value", "resource_type: must be 1..128 characters"},
        {"actions", "{}", "bad_type", "actions: must be an array"},
        {"actions", "[1]", "bad_type", "actions[0]: must be an object"},
        {"actions", "[{'label':'x'}]", "missing_field", "actions[0].action: required field"},
        {"actions", "[{'label':'x','action':'y','z':1}]", "unknown_field",
         "actions[0]: unknown field \"z\"; allowed: label, action, data"},
        {"actions", "[{'label':'','action':'y'}]", "bad_value", "actions[0].label: must be 1..64"},
        {"metadata", "[]", "bad_type", "metadata: must be a JSON object"},
        {"expires_at", "'tomorrow'", "bad_value", "expires_at: \"tomorrow\" is not an ISO 8601"},
        {"expires_at", "'2025-12-31T23:59:59Z'", "bad_value",
         "expires_at: \"2025-12-31T23:59:59Z\" is not in the future"},
        {"expires_at", "'2026-01-01T00:00:00Z'", "bad_value", "expires_at: \"2026-01-01T00:00"},
        {"expires_at", "17", "bad_type", "expires_at: must be a string"},
        {"colour", "'red'", "unknown_field", "notification: unknown field \"colour\"; allowed:"},
    };
    run_bad_cases(*state, RC_STORE_NOTIF_CREATE, NOTIF, c, RC_ARRAY_LEN(c));
}

static json_t *str_of_len(size_t n, char ch)
{
    char *b = malloc(n + 1);
    memset(b, ch, n);
    b[n] = '\0';
    json_t *s = json_string(b);
    free(b);
    return s;
}

/* Each size limit accepts its maximum and refuses one more. */
static void test_store_notif_create_enforces_size_limits_exactly(void **state)
{
    struct fix *f = *state;
    static const struct {
        const char *key;
        size_t max;
        const char *msg;
    } lim[] = {
        {"title", RC_STORE_TITLE_MAX, "title: must be 1..256 characters, got 257"},
        {"message", RC_STORE_MESSAGE_MAX, "message: must be 1..4096 characters, got 4097"},
        {"sender_id", RC_STORE_USER_ID_MAX, "sender_id: must be 1..128 bytes, got 129"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(lim); i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            json_t *a = J(NOTIF);
            json_object_set_new(a, lim[i].key, str_of_len(lim[i].max + extra, 'x'));
            struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, a);
            if (extra == 0)
                assert_ok(r, 201);
            else
                assert_fails(r, 400, "bad_value", lim[i].msg);
            rc_store_req_free(r);
        }
    }
    /* characters, not bytes: 256 two-byte characters are fine */
    json_t *a = J(NOTIF);
    char *t = malloc(2 * 256 + 1);
    for (int i = 0; i < 256; i++)
        memcpy(t + 2 * i, "\xc3\xa9", 2);
    t[512] = '\0';
    json_object_set_new(a, "title", json_string(t));
    free(t);
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, a);
    assert_ok(r, 201);
    rc_store_req_free(r);
    /* 1000 recipients are fine, 1001 are not */
    for (size_t extra = 0; extra < 2; extra++) {
        json_t *rec = json_array();
        for (size_t i = 0; i < RC_STORE_RECIPIENTS_MAX + extra; i++) {
            char u[16];
            snprintf(u, sizeof(u), "u%zu", i);
            json_array_append_new(rec, json_string(u));
        }
        a = J(NOTIF);
        json_object_set_new(a, "recipients", rec);
        r = call(f, RC_STORE_NOTIF_CREATE, a);
        if (extra == 0) {
            assert_ok(r, 201);
            assert_int_equal(json_array_size(json_object_get(r->result, "recipients")), 1000);
        } else {
            assert_fails(r, 400, "bad_value", "recipients: must hold 1..1000 user ids, got 1001");
        }
        rc_store_req_free(r);
    }
}

static void test_store_notif_create_refuses_deeply_nested_metadata(void **state)
{
    struct fix *f = *state;
    char buf[256];
    /* the object plus 31 arrays is 32 levels (allowed); plus 32 arrays is 33 */
    for (int arrays = 31; arrays <= 32; arrays++) {
        size_t off = 0;
        for (int i = 0; i < arrays; i++)
            buf[off++] = '[';
        for (int i = 0; i < arrays; i++)
            buf[off++] = ']';
        buf[off] = '\0';
        json_t *a = J(NOTIF);
        json_object_set_new(a, "metadata", J("{'x':%s}", buf));
        struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, a);
        if (arrays == 31)
            assert_ok(r, 201);
        else
            assert_fails(r, 400, "bad_value", "metadata: nested deeper than 32 levels; flatten it");
        rc_store_req_free(r);
    }
    json_t *a = J(NOTIF);
    json_object_set_new(a, "metadata",
                        json_pack("{s:o}", "big", str_of_len(RC_STORE_JSON_MAX, 'x')));
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, a);
    assert_fails(r, 400, "bad_value",
                 "metadata: is 16394 bytes as compact JSON; the limit is 16384 bytes");
    rc_store_req_free(r);
}

/* JSON fields keep what they were given (UTF-8, a backslash before "u0000")
 * on both engines, and refuse a NUL in a string on both alike. */
static void test_store_json_fields_round_trip_and_refuse_nul(void **state)
{
    struct fix *f = *state;
    json_t *a = J(NOTIF);
    json_object_set_new(a, "title", json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    json_object_set_new(
        a, "metadata",
        json_pack("{s:s, s:f, s:[i, b, n]}", "k", "back\\u0000slash", "pi", 3.25, "list", 1, 1));
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_CREATE, a);
    assert_ok(r, 201);
    char *id = strdup(S(r->result, "id"));
    json_t *want = json_deep_copy(json_object_get(r->result, "metadata"));
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s'}", id));
    assert_ok(r, 200);
    assert_string_equal(S(r->result, "title"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_true(json_equal(json_object_get(r->result, "metadata"), want));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r->result, "metadata"), "k")),
        "back\\u0000slash");
    rc_store_req_free(r);
    json_decref(want);
    free(id);

    a = J(NOTIF);
    json_object_set_new(a, "metadata", json_pack("{s:s#}", "k", "a\0b", (int)3));
    r = call(f, RC_STORE_NOTIF_CREATE, a);
    assert_fails(r, 400, "bad_value", "metadata: a string in it contains a NUL character");
    rc_store_req_free(r);
    a = J("{'user_id':'u1','topic':'t.a'}");
    json_object_set_new(a, "payload_filter", json_pack("{s:s#}", "k", "\0", (int)1));
    r = call(f, RC_STORE_SUB_CREATE_TOPIC, a);
    assert_fails(r, 400, "bad_value", "payload_filter: a string in it contains a NUL character");
    rc_store_req_free(r);
}

static void test_store_notif_get_returns_it_and_404_for_unknown(void **state)
{
    struct fix *f = *state;
    char *id = create_notif(f, NOTIF);
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s'}", id));
    assert_ok(r, 200);
    assert_string_equal(S(r->result, "id"), id);
    assert_string_equal(S(r->result, "title"), "New message");
    assert_string_equal(S(r->result, "expires_at"), "2026-05-16T10:30:00.000Z");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_GET, J("{'id':'ntf_00000000000000000000'}"));
    assert_fails(r, 404, "not_found", "notification \"ntf_00000000000000000000\" does not exist");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_GET, J("{}"));
    assert_fails(r, 400, "missing_field", "id: required field is missing");
    rc_store_req_free(r);
    free(id);
}

static void test_store_notif_get_as_non_recipient_is_403(void **state)
{
    struct fix *f = *state;
    char *id = create_notif(f, NOTIF);
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s','user_id':'user-789'}", id));
    assert_ok(r, 200);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s','user_id':'mallory'}", id));
    assert_fails(r, 403, "forbidden", "notification \"ntf_");
    rc_store_req_free(r);
    free(id);
}

static void test_store_notif_list_pages_newest_first_with_total(void **state)
{
    struct fix *f = *state;
    char *ids[25];
    for (int i = 0; i < 25; i++) {
        f->now = T0 + i; /* distinct created_at */
        ids[i] = create_notif(f, "{'title':'t','message':'m','recipients':['u1','u2']}");
    }
    char *other = create_notif(f, "{'title':'t','message':'m','recipients':['u3']}");
    static const struct {
        int page, size, n, first;
    } want[] = {{1, 10, 10, 24}, {2, 10, 10, 14}, {3, 10, 5, 4}, {4, 10, 0, -1}, {1, 100, 25, 24}};
    for (size_t k = 0; k < RC_ARRAY_LEN(want); k++) {
        struct rc_store_req *r =
            call(f, RC_STORE_NOTIF_LIST,
                 J("{'user_id':'u2','page':%d,'page_size':'%d'}", want[k].page, want[k].size));
        assert_ok(r, 200);
        assert_true(json_is_array(r->result));
        assert_int_equal(r->total, 25);
        assert_int_equal(json_array_size(r->result), want[k].n);
        for (int i = 0; i < want[k].n; i++)
            assert_string_equal(S(json_array_get(r->result, (size_t)i), "id"),
                                ids[want[k].first - i]);
        rc_store_req_free(r);
    }
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_LIST, J("{'user_id':'u2'}"));
    assert_int_equal(json_array_size(r->result), RC_STORE_PAGE_SIZE_DEFAULT);
    rc_store_req_free(r);
    for (int i = 0; i < 25; i++)
        free(ids[i]);
    free(other);
}

static void test_store_notif_list_rejects_bad_args_naming_them(void **state)
{
    static const struct bad_case c[] = {
        {"user_id", NULL, "missing_field", "user_id: required field is missing"},
        {"user_id", "''", "bad_value", "user_id: must be 1..128 bytes, got 0"},
        {"status", "'unread'", "bad_value",
         "status: \"unread\" is not one of pending, delivered, read"},
        {"page", "0", "bad_value", "page: must be a whole number in 1..1000000"},
        {"page", "'x1'", "bad_value", "page: must be a whole number in 1..1000000"},
        {"page", "1.5", "bad_type", "page: must be a whole number"},
        {"page_size", "101", "bad_value", "page_size: must be a whole number in 1..100"},
        {"page_size", "'0'", "bad_value", "page_size: must be a whole number in 1..100"},
        {"sort", "'x'", "unknown_field", "list: unknown field \"sort\""},
    };
    run_bad_cases(*state, RC_STORE_NOTIF_LIST, "{'user_id':'u1'}", c, RC_ARRAY_LEN(c));
}

static void test_store_notif_mark_read_tracks_readers_and_status(void **state)
{
    struct fix *f = *state;
    char *id = create_notif(f, NOTIF);
    f->now = T0 + 1000;
    struct rc_store_req *r =
        call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'user-789'}", id));
    assert_ok(r, 200);
    assert_true(jeq(json_object_get(r->result, "read_by"), "['user-789']"));
    assert_string_equal(S(r->result, "status"), "delivered");
    rc_store_req_free(r);
    /* idempotent */
    r = call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'user-789'}", id));
    assert_ok(r, 200);
    assert_true(jeq(json_object_get(r->result, "read_by"), "['user-789']"));
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'user-456'}", id));
    assert_ok(r, 200);
    assert_true(jeq(json_object_get(r->result, "read_by"), "['user-789','user-456']"));
    assert_string_equal(S(r->result, "status"), "read");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_LIST, J("{'user_id':'user-456','status':'read'}"));
    assert_int_equal(r->total, 1);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_LIST, J("{'user_id':'user-456','status':'delivered'}"));
    assert_int_equal(r->total, 0);
    rc_store_req_free(r);
    free(id);
}

static void test_store_notif_mark_read_errors(void **state)
{
    struct fix *f = *state;
    char *id = create_notif(f, NOTIF);
    struct rc_store_req *r =
        call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'mallory'}", id));
    assert_fails(r, 403, "not_a_recipient", "user \"mallory\" is not a recipient of notification");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'ntf_x','user_id':'user-456'}"));
    assert_fails(r, 404, "not_found", "notification \"ntf_x\" does not exist");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s'}", id));
    assert_fails(r, 400, "missing_field", "user_id: required field is missing");
    rc_store_req_free(r);
    free(id);
}

static void test_store_notif_unread_count_counts_unread_for_user(void **state)
{
    struct fix *f = *state;
    char *a = create_notif(f, "{'title':'t','message':'m','recipients':['u1','u2']}");
    char *b = create_notif(f, "{'title':'t','message':'m','recipients':['u1']}");
    free(create_notif(f, "{'title':'t','message':'m','recipients':['u2']}"));
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    assert_ok(r, 200);
    assert_int_equal(json_integer_value(r->result), 2);
    rc_store_req_free(r);
    rc_store_req_free(call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'u1'}", a)));
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    assert_int_equal(json_integer_value(r->result), 1);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u2'}"));
    assert_int_equal(json_integer_value(r->result), 2);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'nobody'}"));
    assert_int_equal(json_integer_value(r->result), 0);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user':'u1'}"));
    assert_fails(r, 400, "unknown_field", "unread-count: unknown field \"user\"");
    rc_store_req_free(r);
    free(a);
    free(b);
}

static int count_rows_pg(const char *sql)
{
    PGconn *c = pts_connect(&g_pg);
    assert_non_null(c);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

static int count_rows(struct fix *f, const char *sql)
{
    if (f->pg)
        return count_rows_pg(sql);
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof(path), "%s/ringcast.db", f->dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_store_notif_expired_is_invisible_then_purged(void **state)
{
    struct fix *f = *state;
    char *id = create_notif(
        f, "{'title':'t','message':'m','recipients':['u1'],'expires_at':'2026-01-01T00:00:01Z'}");
    free(create_notif(f, "{'title':'t','message':'m','recipients':['u1']}"));
    f->now = T0 + 999;
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s'}", id));
    assert_ok(r, 200);
    rc_store_req_free(r);
    f->now = T0 + 1000; /* expires_at itself is already expired */
    r = call(f, RC_STORE_NOTIF_GET, J("{'id':'%s'}", id));
    assert_fails(r, 404, "not_found", "notification");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_LIST, J("{'user_id':'u1'}"));
    assert_int_equal(r->total, 1);
    assert_int_equal(json_array_size(r->result), 1);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    assert_int_equal(json_integer_value(r->result), 1);
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'%s','user_id':'u1'}", id));
    assert_fails(r, 404, "not_found", "notification");
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 2);
    r = call(f, RC_STORE_NOTIF_PURGE, NULL);
    assert_ok(r, 200);
    assert_int_equal(json_integer_value(json_object_get(r->result, "purged")), 1);
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 1);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notification_recipients"), 1);
    assert_int_equal(stat_of(f, "purged"), 1);
    free(id);
}

/* ---- subscriptions ------------------------------------------------------------------------- */

#define RSUB                                                                                       \
    "{'user_id':'user-456','resource_id':'post-789','resource_type':'post',"                       \
    "'labels':['important','post-updates'],'metadata':{'notification_channel':'email'},"           \
    "'expires_at':'2026-05-16T10:30:00Z'}"
#define TSUB                                                                                       \
    "{'user_id':'user-456','topic':'new-posts','labels':['news','updates'],"                       \
    "'metadata':{'notification_channel':'in-app'},'expires_at':'2026-05-16T10:30:00Z',"            \
    "'payload_filter':{'category':'tech'}}"

static char *create_sub(struct fix *f, enum rc_store_op op, const char *json)
{
    struct rc_store_req *r = call(f, op, J("%s", json));
    assert_ok(r, 201);
    char *id = strdup(S(r->result, "id"));
    rc_store_req_free(r);
    return id;
}

static void test_store_sub_create_resource_maps_to_topic(void **state)
{
    struct fix *f = *state;
    struct rc_store_req *r = call(f, RC_STORE_SUB_CREATE_RESOURCE, J(RSUB));
    assert_ok(r, 201);
    json_t *s = r->result;
    assert_memory_equal(S(s, "id"), "sub_", 4);
    assert_int_equal(strlen(S(s, "id")), 24);
    assert_string_equal(S(s, "user_id"), "user-456");
    assert_string_equal(S(s, "type"), "resource");
    assert_string_equal(S(s, "status"), "active");
    assert_string_equal(S(s, "created_at"), "2026-01-01T00:00:00.000Z");
    assert_string_equal(S(s, "updated_at"), "2026-01-01T00:00:00.000Z");
    assert_string_equal(S(s, "expires_at"), "2026-05-16T10:30:00.000Z");
    assert_string_equal(S(s, "resource_id"), "post-789");
    assert_string_equal(S(s, "resource_type"), "post");
    assert_string_equal(S(s, "topic"), "post.post-789");
    assert_true(json_is_null(json_object_get(s, "query")));
    assert_true(jeq(json_object_get(s, "labels"), "['important','post-updates']"));
    assert_true(jeq(json_object_get(s, "metadata"), "{'notification_channel':'email'}"));
    assert_true(json_is_null(json_object_get(s, "payload_filter")));
    assert_int_equal(json_object_size(s), 14);
    rc_store_req_free(r);
}

static void test_store_sub_create_topic_keeps_filter_labels_metadata(void **state)
{
    struct fix *f = *state;
    struct rc_store_req *r = call(f, RC_STORE_SUB_CREATE_TOPIC, J(TSUB));
    assert_ok(r, 201);
    json_t *s = r->result;
    assert_string_equal(S(s, "type"), "topic");
    assert_string_equal(S(s, "topic"), "new-posts");
    assert_true(json_is_null(json_object_get(s, "resource_id")));
    assert_true(json_is_null(json_object_get(s, "resource_type")));
    assert_true(jeq(json_object_get(s, "payload_filter"), "{'category':'tech'}"));
    assert_true(jeq(json_object_get(s, "labels"), "['news','updates']"));
    char *id = strdup(S(s, "id"));
    rc_store_req_free(r);
    /* read back from the database: the same */
    r = call(f, RC_STORE_SUB_GET, J("{'id':'%s'}", id));
    assert_ok(r, 200);
    assert_true(jeq(json_object_get(r->result, "payload_filter"), "{'category':'tech'}"));
    assert_true(jeq(json_object_get(r->result, "metadata"), "{'notification_channel':'in-app'}"));
    assert_string_equal(S(r->result, "topic"), "new-posts");
    rc_store_req_free(r);
    /* patterns are allowed for topic subscriptions */
    r = call(f, RC_STORE_SUB_CREATE_TOPIC, J("{'user_id':'u','topic':'project.*.models'}"));
    assert_ok(r, 201);
    assert_int_equal(json_array_size(json_object_get(r->result, "labels")), 0);
    rc_store_req_free(r);
    free(id);
}

static void test_store_sub_create_resource_rejects_bad_fields_naming_them(void **state)
{
    static const struct bad_case c[] = {
        {"user_id", NULL, "missing_field", "user_id: required field is missing"},
        {"resource_id", NULL, "missing_field", "resource_id: required field is missing"},
        {"resource_type", "3", "bad_type", "resource_type: must be a string"},
        {"resource_type", "'a.b'", "bad_value", "resource_type: \"a.b\" has a dot"},
        {"resource_id", "'*'", "bad_value", "resource_id: topic \"*\": token 1 has a wildcard"},
        {"resource_id", "'a b'", "bad_value", "resource_id: topic \"a b\": token 1 has a space"},
        {"resource_id", "''", "bad_value", "resource_id: topic \"\": token 1 is empty"},
        {"labels", "'x'", "bad_type", "labels: must be an array of strings"},
        {"labels", "['ok',1]", "bad_type", "labels[1]: must be a string"},
        {"labels", "['']", "bad_value", "labels[0]: must be 1..64 characters, got 0"},
        {"metadata", "'x'", "bad_type", "metadata: must be a JSON object"},
        {"payload_filter", "[1]", "bad_type", "payload_filter: must be a JSON object"},
        {"expires_at", "'2025-01-01T00:00:00Z'", "bad_value",
         "expires_at: \"2025-01-01T00:00:00Z\" is not in the future"},
        {"topic", "'x'", "unknown_field", "subscription: unknown field \"topic\""},
    };
    run_bad_cases(*state, RC_STORE_SUB_CREATE_RESOURCE, RSUB, c, RC_ARRAY_LEN(c));
}

static void test_store_sub_create_topic_rejects_bad_fields_naming_them(void **state)
{
    static const struct bad_case c[] = {
        {"topic", NULL, "missing_field", "topic: required field is missing"},
        {"topic", "'a..b'", "bad_value", "topic: topic \"a..b\": token 2 is empty"},
        {"topic", "'a.>.b'", "bad_value", "topic: topic \"a.>.b\": token 2 is '>' but is not"},
        {"user_id", "'a\\tb'", "bad_value", "user_id: byte 2 is a space, control"},
        {"resource_id", "'x'", "unknown_field", "subscription: unknown field \"resource_id\""},
    };
    run_bad_cases(*state, RC_STORE_SUB_CREATE_TOPIC, TSUB, c, RC_ARRAY_LEN(c));
}

static void test_store_sub_list_pages_and_filters_status(void **state)
{
    struct fix *f = *state;
    char *ids[7];
    for (int i = 0; i < 7; i++) {
        f->now = T0 + i;
        ids[i] = create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u1','topic':'t.x'}");
    }
    free(create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u2','topic':'t.x'}"));
    rc_store_req_free(call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s','status':'paused'}", ids[2])));
    struct rc_store_req *r =
        call(f, RC_STORE_SUB_LIST, J("{'user_id':'u1','page':2,'page_size':3}"));
    assert_ok(r, 200);
    assert_int_equal(r->total, 7);
    assert_int_equal(json_array_size(r->result), 3);
    assert_string_equal(S(json_array_get(r->result, 0), "id"), ids[3]);
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_LIST, J("{'user_id':'u1','status':'paused'}"));
    assert_int_equal(r->total, 1);
    assert_string_equal(S(json_array_get(r->result, 0), "id"), ids[2]);
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_LIST, J("{'user_id':'u1','status':'active'}"));
    assert_int_equal(r->total, 6);
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_LIST, J("{'user_id':'u1','status':'gone'}"));
    assert_fails(r, 400, "bad_value", "status: \"gone\" is not one of active, paused");
    rc_store_req_free(r);
    for (int i = 0; i < 7; i++)
        free(ids[i]);
}

static void test_store_sub_set_status_updates_and_checks_owner(void **state)
{
    struct fix *f = *state;
    char *id = create_sub(f, RC_STORE_SUB_CREATE_RESOURCE, RSUB);
    f->now = T0 + 60000;
    struct rc_store_req *r = call(f, RC_STORE_SUB_SET_STATUS,
                                  J("{'id':'%s','status':'paused','user_id':'user-456'}", id));
    assert_ok(r, 200);
    assert_string_equal(S(r->result, "status"), "paused");
    assert_string_equal(S(r->result, "updated_at"), "2026-01-01T00:01:00.000Z");
    assert_string_equal(S(r->result, "created_at"), "2026-01-01T00:00:00.000Z");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s','status':'active','user_id':'bob'}", id));
    assert_fails(r, 403, "forbidden", "subscription \"sub_");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_GET, J("{'id':'%s'}", id));
    assert_string_equal(S(r->result, "status"), "paused");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s','status':'off'}", id));
    assert_fails(r, 400, "bad_value", "status: \"off\" is not one of active, paused");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s'}", id));
    assert_fails(r, 400, "missing_field", "status: required field is missing");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'sub_nope','status':'active'}"));
    assert_fails(r, 404, "not_found", "subscription \"sub_nope\" does not exist");
    rc_store_req_free(r);
    free(id);
}

static void test_store_sub_get_checks_owner(void **state)
{
    struct fix *f = *state;
    char *id = create_sub(f, RC_STORE_SUB_CREATE_RESOURCE, RSUB);
    struct rc_store_req *r = call(f, RC_STORE_SUB_GET, J("{'id':'%s','user_id':'user-456'}", id));
    assert_ok(r, 200);
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_GET, J("{'id':'%s','user_id':'eve'}", id));
    assert_fails(r, 403, "forbidden", "subscription");
    rc_store_req_free(r);
    free(id);
}

static void test_store_sub_delete_is_204_and_returns_removed(void **state)
{
    struct fix *f = *state;
    char *id = create_sub(f, RC_STORE_SUB_CREATE_RESOURCE, RSUB);
    struct rc_store_req *r = call(f, RC_STORE_SUB_DELETE, J("{'id':'%s','user_id':'eve'}", id));
    assert_fails(r, 403, "forbidden", "subscription");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_DELETE, J("{'id':'%s','user_id':'user-456'}", id));
    assert_ok(r, 204);
    assert_null(r->result);
    assert_non_null(r->removed);
    assert_string_equal(S(r->removed, "id"), id);
    assert_string_equal(S(r->removed, "topic"), "post.post-789");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_GET, J("{'id':'%s'}", id));
    assert_fails(r, 404, "not_found", "subscription");
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_DELETE, J("{'id':'%s'}", id));
    assert_fails(r, 404, "not_found", "subscription");
    rc_store_req_free(r);
    free(id);
}

static void test_store_sub_load_active_skips_paused_and_expired(void **state)
{
    struct fix *f = *state;
    char *a = create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u1','topic':'a'}");
    char *b = create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u2','topic':'b'}");
    char *c = create_sub(f, RC_STORE_SUB_CREATE_TOPIC,
                         "{'user_id':'u3','topic':'c','expires_at':'2026-01-01T00:00:05Z'}");
    char *d = create_sub(f, RC_STORE_SUB_CREATE_TOPIC,
                         "{'user_id':'u4','topic':'d','payload_filter':{'x':1}}");
    rc_store_req_free(call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s','status':'paused'}", b)));
    struct rc_store_req *r = call(f, RC_STORE_SUB_LOAD_ACTIVE, NULL);
    assert_ok(r, 200);
    assert_int_equal(json_array_size(r->result), 3);
    assert_int_equal(r->total, 3);
    rc_store_req_free(r);
    f->now = T0 + 5000;
    r = call(f, RC_STORE_SUB_LOAD_ACTIVE, NULL);
    assert_int_equal(json_array_size(r->result), 2);
    assert_string_equal(S(json_array_get(r->result, 0), "id"), a);
    assert_string_equal(S(json_array_get(r->result, 1), "id"), d);
    assert_true(jeq(json_object_get(json_array_get(r->result, 1), "payload_filter"), "{'x':1}"));
    rc_store_req_free(r);
    r = call(f, RC_STORE_SUB_GET, J("{'id':'%s'}", c));
    assert_fails(r, 404, "not_found", "subscription");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_PURGE, NULL);
    assert_int_equal(json_integer_value(json_object_get(r->result, "purged")), 1);
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions"), 3);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_store_by_id_ops_reject_bad_args(void **state)
{
    static const struct bad_case c[] = {
        {"id", NULL, "missing_field", "id: required field is missing"},
        {"id", "5", "bad_type", "id: must be a string"},
        {"id", "'a b'", "bad_value", "id: byte 2 is a space"},
        {"user_id", "''", "bad_value", "user_id: must be 1..128 bytes, got 0"},
        {"status", "'active'", "unknown_field", "request: unknown field \"status\""},
    };
    run_bad_cases(*state, RC_STORE_SUB_DELETE, "{'id':'sub_1'}", c, RC_ARRAY_LEN(c));
    run_bad_cases(*state, RC_STORE_NOTIF_GET, "{'id':'ntf_1'}", c, RC_ARRAY_LEN(c));
}

/* ---- batches, durability, lifecycle --------------------------------------------------------- */

static void test_store_group_commit_runs_1000_creates_in_one_transaction(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < 1000; i++)
        submit(f, RC_STORE_NOTIF_CREATE,
               J("{'title':'t%d','message':'m','recipients':['u1','u2']}", i));
    assert_int_equal(rc_store_poll(f->s), 1000);
    for (int i = 0; i < 1000; i++) {
        struct rc_store_req *r = next_reply(f);
        assert_ok(r, 201);
        char t[16];
        snprintf(t, sizeof(t), "t%d", i); /* answered in submission order */
        assert_string_equal(S(r->result, "title"), t);
        rc_store_req_free(r);
    }
    assert_null(rc_mpsc_pop(&f->replies));
    assert_int_equal(stat_of(f, "commits"), 1);
    assert_int_equal(stat_of(f, "largest_batch"), 1000);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 1000);
}

static void test_store_failed_write_does_not_abort_its_batch(void **state)
{
    struct fix *f = *state;
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'a','message':'m','recipients':['u1']}"));
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'','message':'m','recipients':['u1']}"));
    submit(f, RC_STORE_NOTIF_MARK_READ, J("{'id':'ntf_none','user_id':'u1'}"));
    submit(f, RC_STORE_SUB_SET_STATUS, J("{'id':'sub_none','status':'paused'}"));
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'b','message':'m','recipients':['u1']}"));
    submit(f, RC_STORE_NOTIF_LIST, J("{'user_id':'u1'}"));
    assert_int_equal(rc_store_poll(f->s), 6);
    static const int want[] = {201, 400, 404, 404, 201, 200};
    for (int i = 0; i < 6; i++) {
        struct rc_store_req *r = next_reply(f);
        assert_int_equal(r->status, want[i]);
        if (i == 5) /* a read later in the batch sees the batch's writes */
            assert_int_equal(r->total, 2);
        rc_store_req_free(r);
    }
    assert_int_equal(stat_of(f, "commits"), 1);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 2);
}

/* The engine directly: a write that fails half-way (the second recipient
 * row collides) leaves neither the notification nor its first recipient. */
static void test_store_engine_failed_write_leaves_nothing(void **state)
{
    struct fix *f = *state;
    struct rc_store_engine *e = NULL;
    struct rc_err err = {0};
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/engine", f->dir);
    struct rc_store_config cfg = {.data_dir = sub, .postgres_url = f->cfg.postgres_url};
    assert_int_equal(f->ops->open(&e, &cfg, &err), 0);
    assert_int_equal(f->ops->begin(e, &err), 0);
    json_t *rec = J("{'id':'ntf_1','title':'t','message':'m','type':'info','priority':'low',"
                    "'status':'delivered','recipients':['a','b','a'],'sender_id':null,"
                    "'created_at':1,'delivered_at':1,'read_by':[],'actions':[],"
                    "'resource_type':null,'resource_id':null,'metadata':null,'expires_at':null}");
    assert_int_equal(f->ops->notif_create(e, rec, NULL, &err), -EIO);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "store_unavailable");
    json_array_remove(json_object_get(rec, "recipients"), 2);
    json_object_set_new(rec, "id", json_string("ntf_2"));
    assert_int_equal(f->ops->notif_create(e, rec, NULL, &err), 0);
    assert_int_equal(f->ops->commit(e, &err), 0);
    json_t *got = NULL;
    assert_int_equal(f->ops->notif_get(e, "ntf_1", 0, &got, &err), -ENOENT);
    assert_int_equal(f->ops->notif_get(e, "ntf_2", 0, &got, &err), 0);
    assert_true(jeq(json_object_get(got, "recipients"), "['a','b']"));
    assert_int_equal(json_integer_value(json_object_get(got, "created_at")), 1);
    json_decref(got);
    uint64_t unread = 0;
    assert_int_equal(f->ops->notif_unread_count(e, "a", 0, &unread, &err), 0);
    assert_int_equal(unread, 1);
    json_decref(rec);
    f->ops->close(e);
}

/* An engine whose commit fails: the SQLite engine with commit replaced. */
static int failing_commit(struct rc_store_engine *e, struct rc_err *err)
{
    (void)e;
    rc_err_set(err, 503, "store_unavailable", "disk on fire");
    return -EIO;
}

static void test_store_commit_failure_fails_every_write_with_503(void **state)
{
    struct fix *f = *state;
    static struct rc_store_engine_ops failing;
    failing = *f->ops;
    failing.commit = failing_commit;
    rc_store_stop(f->s);
    f->cfg.engine = &failing;
    open_store(f);
    submit(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'a','message':'m','recipients':['u1']}"));
    submit(f, RC_STORE_NOTIF_LIST, J("{'user_id':'u1'}"));
    submit(f, RC_STORE_SUB_CREATE_TOPIC, J("{'user_id':'u1','topic':'x'}"));
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'','message':'m','recipients':['u1']}"));
    assert_int_equal(rc_store_poll(f->s), 5);
    struct rc_store_req *r = next_reply(f);
    assert_ok(r, 200); /* a read before the first write saw only committed data */
    rc_store_req_free(r);
    for (int i = 0; i < 3; i++) {
        r = next_reply(f);
        assert_fails(r, 503, "store_unavailable",
                     "store: commit failed, nothing was saved: disk on fire");
        rc_store_req_free(r);
    }
    r = next_reply(f);
    assert_fails(r, 400, "bad_value", "title:"); /* its own failure stands */
    rc_store_req_free(r);
    assert_int_equal(stat_of(f, "commit_failures"), 1);
    assert_int_equal(stat_of(f, "commits"), 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions"), 0);
}

static void test_store_commit_failures_are_logged_once_per_interval(void **state)
{
    struct fix *f = *state;
    static struct rc_store_engine_ops failing;
    char path[96];
    struct rc_err err = {0};
    failing = *f->ops;
    failing.commit = failing_commit;
    rc_store_stop(f->s);
    f->cfg.engine = &failing;
    open_store(f);
    snprintf(path, sizeof(path), "%s/log.txt", f->dir);
    assert_int_equal(rc_log_setup(RC_LOG_INFO, RC_LOG_LOGFMT, path, &err), 0);
    for (int i = 0; i < 3; i++) {
        submit(f, RC_STORE_SUB_CREATE_TOPIC, J("{'user_id':'u1','topic':'x'}"));
        assert_int_equal(rc_store_poll(f->s), 1);
        rc_store_req_free(next_reply(f));
    }
    assert_int_equal(rc_log_setup(RC_LOG_INFO, RC_LOG_LOGFMT, NULL, &err), 0);
    assert_int_equal(stat_of(f, "commit_failures"), 3);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[2048];
    int lines = 0;
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, "store_commit_failed")) {
            lines++;
            assert_non_null(strstr(line, "failures=1 total=1"));
            assert_non_null(strstr(line, "disk on fire"));
        }
    fclose(fp);
    assert_int_equal(lines, 1); /* the next two fell in the same 10 s interval */
}

static void test_store_sub_create_refused_past_max_user_subscriptions(void **state)
{
    struct fix *f = *state;
    rc_store_stop(f->s);
    f->cfg.max_user_subscriptions = 3;
    open_store(f);
    char *a = create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u1','topic':'t.a'}");
    rc_store_req_free(call(f, RC_STORE_SUB_SET_STATUS, J("{'id':'%s','status':'paused'}", a)));
    /* the third and fourth in one batch: the third counts against the fourth */
    submit(f, RC_STORE_SUB_CREATE_TOPIC, J("{'user_id':'u1','topic':'t.b'}"));
    submit(f, RC_STORE_SUB_CREATE_RESOURCE,
           J("{'user_id':'u1','resource_type':'doc','resource_id':'1'}"));
    submit(f, RC_STORE_SUB_CREATE_TOPIC, J("{'user_id':'u1','topic':'t.c'}"));
    assert_int_equal(rc_store_poll(f->s), 3);
    struct rc_store_req *r = next_reply(f);
    assert_ok(r, 201);
    rc_store_req_free(r);
    r = next_reply(f);
    assert_ok(r, 201);
    rc_store_req_free(r);
    r = next_reply(f);
    assert_fails(r, 409, "too_many_subscriptions",
                 "user u1 already holds 3 durable subscriptions, as many as "
                 "max_user_subscriptions allows");
    rc_store_req_free(r);
    free(create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u2','topic':'t.a'}"));
    r = call(f, RC_STORE_SUB_DELETE, J("{'id':'%s'}", a));
    assert_int_equal(r->status, 204);
    rc_store_req_free(r);
    free(create_sub(f, RC_STORE_SUB_CREATE_TOPIC, "{'user_id':'u1','topic':'t.c'}"));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions WHERE user_id = 'u1'"), 3);
    free(a);
}

static void test_store_restart_keeps_data(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    assert_int_equal(rc_store_start(f->s, &err), 0);
    submit(f, RC_STORE_NOTIF_CREATE, J(NOTIF));
    struct rc_store_req *r = wait_reply(f);
    assert_ok(r, 201);
    char *nid = strdup(S(r->result, "id"));
    rc_store_req_free(r);
    submit(f, RC_STORE_SUB_CREATE_TOPIC, J(TSUB));
    r = wait_reply(f);
    assert_ok(r, 201);
    char *sid = strdup(S(r->result, "id"));
    rc_store_req_free(r);
    rc_store_stop(f->s);
    f->s = NULL;

    open_store(f);
    assert_int_equal(rc_store_start(f->s, &err), 0);
    submit(f, RC_STORE_NOTIF_GET, J("{'id':'%s'}", nid));
    r = wait_reply(f);
    assert_ok(r, 200);
    assert_string_equal(S(r->result, "title"), "New message");
    assert_true(jeq(json_object_get(r->result, "metadata"), "{'thread_id':'thread-123'}"));
    rc_store_req_free(r);
    submit(f, RC_STORE_SUB_GET, J("{'id':'%s'}", sid));
    r = wait_reply(f);
    assert_ok(r, 200);
    assert_true(jeq(json_object_get(r->result, "payload_filter"), "{'category':'tech'}"));
    rc_store_req_free(r);
    free(nid);
    free(sid);
}

static void test_store_schema_version_is_recorded_and_newer_refused(void **state)
{
    struct fix *f = *state;
    char path[128];
    sqlite3 *db;
    struct rc_err err = {0};

    assert_int_equal(count_rows(f, "SELECT version FROM schema_version"),
                     RC_STORE_SQLITE_SCHEMA_VERSION);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(stat_of(f, "schema_version"), RC_STORE_SQLITE_SCHEMA_VERSION);
    rc_store_stop(f->s);
    f->s = NULL;
    /* reopening an up-to-date database changes nothing */
    open_store(f);
    rc_store_stop(f->s);
    f->s = NULL;
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_version"), 1);

    snprintf(path, sizeof(path), "%s/ringcast.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(rc_store_open(&f->s, &f->cfg, on_reply, f, &err), -EPROTO);
    assert_null(f->s);
    assert_string_equal(err.code, "bad_schema");
    assert_non_null(
        strstr(err.msg, "has schema version 99 but this ringcast knows versions up to 1"));
}

static void test_store_synchronous_setting_reaches_sqlite(void **state)
{
    struct fix *f = *state;
    struct rc_store_req *r = call(f, RC_STORE_STATS, NULL);
    assert_string_equal(S(r->result, "synchronous"), "full");
    assert_string_equal(S(r->result, "journal_mode"), "wal");
    assert_string_equal(S(r->result, "engine"), "sqlite");
    rc_store_req_free(r);
    rc_store_stop(f->s);
    f->cfg.synchronous = RC_STORE_SYNC_NORMAL;
    open_store(f);
    r = call(f, RC_STORE_STATS, NULL);
    assert_string_equal(S(r->result, "synchronous"), "normal");
    rc_store_req_free(r);

    enum rc_store_sync s;
    struct rc_err err = {0};
    assert_int_equal(rc_store_sync_parse("FULL", &s, &err), 0);
    assert_int_equal(s, RC_STORE_SYNC_FULL);
    assert_int_equal(rc_store_sync_parse("normal", &s, &err), 0);
    assert_int_equal(s, RC_STORE_SYNC_NORMAL);
    assert_int_equal(rc_store_sync_parse("off", &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "store_synchronous=off is not known; use full"));
}

static void test_store_open_creates_missing_data_dir_and_locks_it(void **state)
{
    struct fix *f = *state;
    char nested[128];
    struct rc_store *s2 = NULL;
    struct rc_err err = {0};
    struct rc_store_config cfg = f->cfg;

    /* the fixture's store holds f->dir: a second one is refused */
    assert_int_equal(rc_store_open(&s2, &cfg, on_reply, f, &err), -EBUSY);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "is in use by another ringcast (pid "));

    snprintf(nested, sizeof(nested), "%s/a/b", f->dir);
    cfg.data_dir = nested;
    assert_int_equal(rc_store_open(&s2, &cfg, on_reply, f, &err), 0);
    assert_int_equal(access(nested, W_OK), 0);
    rc_store_stop(s2);

    snprintf(nested, sizeof(nested), "%s/ringcast.db", f->dir); /* a file, not a dir */
    cfg.data_dir = nested;
    assert_true(rc_store_open(&s2, &cfg, on_reply, f, &err) < 0);
    assert_null(s2);
    cfg.data_dir = "";
    assert_int_equal(rc_store_open(&s2, &cfg, on_reply, f, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "data_dir is empty"));
}

/* Open the engine on <f->dir>/<sub> whose ringcast.db was made by sql (NULL: raw bytes
 * in raw instead); returns open's result, err filled. */
static int open_prepared(struct fix *f, const char *sub, const char *sql, const char *raw,
                         struct rc_err *err)
{
    char dir[160], path[200];
    snprintf(dir, sizeof(dir), "%s/%s", f->dir, sub);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/ringcast.db", dir);
    if (sql) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, 0, 0, 0), SQLITE_OK);
        sqlite3_close(db);
    } else {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(raw, fp);
        fclose(fp);
    }
    struct rc_store_engine *e = NULL;
    struct rc_store_config cfg = {.data_dir = dir};
    int rc = rc_store_sqlite_ops.open(&e, &cfg, err);
    rc_store_sqlite_ops.close(e);
    return rc;
}

static void test_store_open_refuses_a_file_that_is_not_a_database(void **state)
{
    struct rc_err err = {0};
    assert_int_equal(open_prepared(*state, "txt", NULL,
                                   "hello, I am a text file, not SQLite\n"
                                   "padding padding padding padding\n",
                                   &err),
                     -EPROTO);
    assert_string_equal(err.code, "bad_database");
    assert_non_null(strstr(err.msg, "is not an SQLite database"));
    assert_null(strstr(err.msg, "retry later"));
}

static void test_store_open_refuses_another_programs_database(void **state)
{
    struct rc_err err = {0};
    assert_int_equal(
        open_prepared(*state, "foreign", "CREATE TABLE users (id INTEGER);", NULL, &err), -EPROTO);
    assert_string_equal(err.code, "foreign_database");
    assert_non_null(strstr(err.msg, "is not a ringcast database (it holds tables users"));
    assert_int_equal(open_prepared(*state, "otherid", "PRAGMA application_id = 1234;", NULL, &err),
                     -EPROTO);
    assert_string_equal(err.code, "foreign_database");
    assert_non_null(strstr(err.msg, "application_id 0x000004d2"));
}

static void test_store_open_marks_new_and_older_ringcast_databases(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    /* a ringcast database from before application ids: adopted */
    assert_int_equal(open_prepared(f, "old",
                                   "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                                   "INSERT INTO schema_version VALUES (0);",
                                   NULL, &err),
                     0);
    char path[200];
    snprintf(path, sizeof(path), "%s/old/ringcast.db", f->dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal((uint32_t)sqlite3_column_int64(st, 0), RC_STORE_SQLITE_APP_ID);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* the fixture's fresh database got the id too */
    assert_int_equal(count_rows(f, "PRAGMA application_id"), RC_STORE_SQLITE_APP_ID);
}

static void test_store_open_names_a_changed_schema(void **state)
{
    struct rc_err err = {0};
    char sql[160];
    snprintf(sql, sizeof(sql),
             "PRAGMA application_id = %ld; CREATE TABLE schema_version (version INTEGER);"
             "INSERT INTO schema_version VALUES (%d);",
             (long)RC_STORE_SQLITE_APP_ID, RC_STORE_SQLITE_SCHEMA_VERSION);
    assert_int_equal(open_prepared(*state, "changed", sql, NULL, &err), -EPROTO);
    assert_string_equal(err.code, "bad_schema");
    assert_non_null(strstr(err.msg, "does not have the tables of schema version"));
}

static void test_store_stop_request_answers_then_refuses_the_rest(void **state)
{
    struct fix *f = *state;
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'a','message':'m','recipients':['u1']}"));
    submit(f, RC_STORE_STOP, NULL);
    submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'b','message':'m','recipients':['u1']}"));
    assert_int_equal(rc_store_poll(f->s), 2);
    struct rc_store_req *r = next_reply(f);
    assert_ok(r, 201);
    rc_store_req_free(r);
    r = next_reply(f);
    assert_ok(r, 200);
    assert_int_equal(r->op, RC_STORE_STOP);
    rc_store_req_free(r);
    assert_int_equal(rc_store_poll(f->s), 0);
    rc_store_stop(f->s);
    f->s = NULL;
    r = next_reply(f);
    assert_fails(r, 503, "store_stopped", "store: the server is shutting down");
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 1);
}

static void test_store_thread_stops_cleanly_after_answering_queued_work(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    assert_int_equal(rc_store_start(f->s, &err), 0);
    for (int i = 0; i < 50; i++)
        submit(f, RC_STORE_NOTIF_CREATE, J("{'title':'t','message':'m','recipients':['u1']}"));
    rc_store_stop(f->s); /* everything submitted before stop is answered by the thread */
    f->s = NULL;
    for (int i = 0; i < 50; i++) {
        struct rc_store_req *r = next_reply(f);
        assert_ok(r, 201);
        rc_store_req_free(r);
    }
    assert_null(rc_mpsc_pop(&f->replies));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 50);
}

#define PRODUCERS 4
#define PER_PRODUCER 250

struct producer {
    struct fix *f;
    int idx;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        json_t *a =
            json_pack("{s:s, s:s, s:[s]}", "title", "t", "message", "m", "recipients", "shared");
        json_object_set_new(a, "metadata", json_pack("{s:i, s:i}", "p", p->idx, "i", i));
        rc_store_submit(p->f->s, rc_store_req_new(RC_STORE_NOTIF_CREATE, a));
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_store_four_concurrent_producers_all_answered(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    pthread_t th[PRODUCERS];
    struct producer p[PRODUCERS];
    char **ids = calloc(PRODUCERS * PER_PRODUCER, sizeof(*ids));
    int next[PRODUCERS] = {0};

    assert_int_equal(rc_store_start(f->s, &err), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){f, i};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    for (int k = 0; k < PRODUCERS * PER_PRODUCER; k++) {
        struct rc_store_req *r = wait_reply(f);
        assert_ok(r, 201);
        json_t *md = json_object_get(r->result, "metadata");
        int pi = (int)json_integer_value(json_object_get(md, "p"));
        assert_true(pi >= 0 && pi < PRODUCERS);
        /* per producer, answers come in submission order */
        assert_int_equal(json_integer_value(json_object_get(md, "i")), next[pi]++);
        ids[k] = strdup(S(r->result, "id"));
        rc_store_req_free(r);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    qsort(ids, PRODUCERS * PER_PRODUCER, sizeof(*ids), cmp_str);
    for (int k = 1; k < PRODUCERS * PER_PRODUCER; k++)
        assert_string_not_equal(ids[k - 1], ids[k]);
    for (int k = 0; k < PRODUCERS * PER_PRODUCER; k++)
        free(ids[k]);
    free(ids);
    submit(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'shared'}"));
    struct rc_store_req *r = wait_reply(f);
    assert_int_equal(json_integer_value(r->result), PRODUCERS * PER_PRODUCER);
    rc_store_req_free(r);
}

/* ---- PostgreSQL only ------------------------------------------------------------------------ */

/* A complete notification record for the engine ops themselves (store.c builds them
 * otherwise), one recipient u1. */
static json_t *engine_notif(const char *id)
{
    json_t *rec = J("{'title':'t','message':'m','type':'info','priority':'low',"
                    "'status':'delivered','recipients':['u1'],'sender_id':null,"
                    "'created_at':1,'delivered_at':1,'read_by':[],'actions':[],"
                    "'resource_type':null,'resource_id':null,'metadata':null,'expires_at':null}");
    json_object_set_new(rec, "id", json_string(id));
    return rec;
}

/* The server stops in the middle of a batch: the rest of the batch and its
 * commit fail -EIO (503 store_unavailable), nothing of it is saved; once the
 * server is back the engine reconnects by itself at the next begin. */
static void test_store_pg_restart_mid_batch_is_eio_then_reconnects(void **state)
{
    struct fix *f = *state;
    struct rc_store_engine *e = NULL;
    struct rc_err err = {0};
    struct rc_store_config cfg = {.data_dir = f->dir, .postgres_url = g_pg.url};
    json_t *rec = engine_notif("ntf_a");
    assert_int_equal(rc_store_pg_ops.open(&e, &cfg, &err), 0);
    assert_int_equal(rc_store_pg_ops.begin(e, &err), 0);
    assert_int_equal(rc_store_pg_ops.notif_create(e, rec, NULL, &err), 0);
    pts_halt(&g_pg);
    json_object_set_new(rec, "id", json_string("ntf_b"));
    assert_int_equal(rc_store_pg_ops.notif_create(e, rec, NULL, &err), -EIO);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "store_unavailable");
    assert_int_equal(rc_store_pg_ops.commit(e, &err), -EIO);
    rc_store_pg_ops.rollback(e);
    /* down: a begin fails at once, never hangs */
    assert_int_equal(rc_store_pg_ops.begin(e, &err), -EIO);
    assert_non_null(strstr(err.msg, "cannot connect to PostgreSQL"));

    assert_true(pts_restart(&g_pg));
    /* the failed attempt above holds the next one back RC_STORE_PG_RETRY_MS */
    nanosleep(&(struct timespec){0, (RC_STORE_PG_RETRY_MS + 50) * 1000000L}, NULL);
    assert_int_equal(rc_store_pg_ops.begin(e, &err), 0);
    json_object_set_new(rec, "id", json_string("ntf_c"));
    assert_int_equal(rc_store_pg_ops.notif_create(e, rec, NULL, &err), 0);
    assert_int_equal(rc_store_pg_ops.commit(e, &err), 0);
    json_t *got = NULL;
    assert_int_equal(rc_store_pg_ops.notif_get(e, "ntf_a", 0, &got, &err), -ENOENT);
    assert_int_equal(rc_store_pg_ops.notif_get(e, "ntf_c", 0, &got, &err), 0);
    json_decref(got);
    json_decref(rec);
    rc_store_pg_ops.close(e);

    /* the same through the store: 503 while down, 201 once back */
    pts_halt(&g_pg);
    struct rc_store_req *r =
        call(f, RC_STORE_NOTIF_CREATE, J("{'title':'a','message':'m','recipients':['u1']}"));
    assert_int_equal(r->status, 503);
    assert_string_equal(r->code, "store_unavailable");
    rc_store_req_free(r);
    r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    assert_int_equal(r->status, 503);
    rc_store_req_free(r);
    assert_true(pts_restart(&g_pg));
    for (int i = 0;; i++) {
        r = call(f, RC_STORE_NOTIF_CREATE, J("{'title':'b','message':'m','recipients':['u1']}"));
        if (r->status == 201 || i == 50)
            break;
        rc_store_req_free(r);
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    assert_ok(r, 201);
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 2);
}

/* The creates of a batch go to PostgreSQL in one pipeline (store_pg_tx.c).
 * One that the database refuses (a trigger here) fails alone wherever it
 * stands in the batch, first, middle, last or every one, and the creates
 * around it are committed; a read in the middle of a batch sees the creates
 * before it. Each batch is a list of titles; "?" is an unread count of u1. */
static void test_store_pg_pipelined_create_fails_alone(void **state)
{
    struct fix *f = *state;
    assert_true(
        pts_exec_sql(&g_pg, "CREATE FUNCTION rc_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                            " IF NEW.title = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;"
                            " RETURN NEW; END $$;"
                            "CREATE TRIGGER rc_boom BEFORE INSERT ON notifications FOR EACH ROW"
                            " EXECUTE FUNCTION rc_boom()"));
    static const char *const batches[][8] = {
        {"boom", "a", "b", NULL}, {"c", "boom", "d", "?", "e", "boom", "f", NULL},
        {"g", "h", "boom", NULL}, {"boom", "boom", NULL},
        {"?", "i", "?", NULL},
    };
    int saved = 0;
    for (size_t b = 0; b < RC_ARRAY_LEN(batches); b++) {
        size_t n = 0;
        for (; batches[b][n]; n++) {
            if (strcmp(batches[b][n], "?") == 0)
                submit(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
            else
                submit(f, RC_STORE_NOTIF_CREATE,
                       J("{'title':'%s','message':'m','recipients':['u1']}", batches[b][n]));
        }
        assert_int_equal(rc_store_poll(f->s), n);
        for (size_t i = 0; i < n; i++) {
            struct rc_store_req *r = next_reply(f);
            if (strcmp(batches[b][i], "?") == 0) {
                assert_ok(r, 200);
                assert_int_equal(json_integer_value(r->result), saved);
            } else if (strcmp(batches[b][i], "boom") == 0) {
                assert_int_equal(r->status, 503);
                assert_string_equal(r->code, "store_unavailable");
                assert_non_null(strstr(r->message, "boom refused"));
                assert_null(r->result);
            } else {
                assert_ok(r, 201);
                assert_string_equal(S(r->result, "title"), batches[b][i]);
                saved++;
            }
            rc_store_req_free(r);
        }
        assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), saved);
    }
    assert_int_equal(saved, 9);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications WHERE title = 'boom'"), 0);
}

/* The connection breaks while a batch's creates are in the pipeline: every
 * queued create and the commit fail -EIO, nothing is saved. */
static void test_store_pg_pipeline_broken_mid_batch_saves_nothing(void **state)
{
    struct fix *f = *state;
    struct rc_store_engine *e = NULL;
    struct rc_err err = {0};
    struct rc_store_config cfg = {.data_dir = f->dir, .postgres_url = g_pg.url};
    json_t *rec = engine_notif("ntf_a");
    struct rc_store_pending pa = {0}, pb = {0};
    assert_int_equal(rc_store_pg_ops.open(&e, &cfg, &err), 0);
    assert_int_equal(rc_store_pg_ops.begin(e, &err), 0);
    assert_int_equal(rc_store_pg_ops.notif_create(e, rec, &pa, &err), 0);
    assert_true(pa.queued);
    pts_halt(&g_pg);
    json_object_set_new(rec, "id", json_string("ntf_b"));
    (void)rc_store_pg_ops.notif_create(e, rec, &pb, &err); /* queued or refused: both fine */
    assert_int_equal(rc_store_pg_ops.commit(e, &err), -EIO);
    assert_int_equal(err.status, 503);
    assert_int_equal(pa.rc, -EIO);
    assert_int_equal(pa.err.status, 503);
    rc_store_pg_ops.rollback(e);
    assert_true(pts_restart(&g_pg));
    nanosleep(&(struct timespec){0, (RC_STORE_PG_RETRY_MS + 50) * 1000000L}, NULL);
    json_t *got = NULL;
    for (int i = 0; i < 50 && rc_store_pg_ops.notif_get(e, "ntf_a", 0, &got, &err) == -EIO; i++)
        nanosleep(&(struct timespec){0, (RC_STORE_PG_RETRY_MS + 50) * 1000000L}, NULL);
    assert_int_equal(rc_store_pg_ops.notif_get(e, "ntf_a", 0, &got, &err), -ENOENT);
    assert_int_equal(rc_store_pg_ops.notif_get(e, "ntf_b", 0, &got, &err), -ENOENT);
    json_decref(rec);
    rc_store_pg_ops.close(e);
}

/* postgres_pool: several storage threads, each with its connection. A
 * user's requests all go to one of them, in order, so the
 * max_user_subscriptions count is exact even in a burst; every request is
 * answered; STATS sums the pool; close waits for every worker. */
static void test_store_pg_pool_keeps_each_user_in_order(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    enum { USERS = 6, PER_USER = 40, QUOTA = 5 };
    rc_store_stop(f->s);
    f->cfg.pool = 3;
    f->cfg.max_user_subscriptions = QUOTA;
    open_store(f);
    assert_int_equal(rc_store_workers(f->s), 3);
    assert_int_equal(rc_store_start(f->s, &err), 0);
    for (int i = 0; i < PER_USER; i++)
        for (int u = 0; u < USERS; u++) {
            submit(f, RC_STORE_NOTIF_CREATE,
                   J("{'title':'t','message':'m','recipients':['u%d'],'metadata':{'i':%d}}", u, i));
            if (i < QUOTA + 2)
                submit(f, RC_STORE_SUB_CREATE_TOPIC,
                       J("{'user_id':'u%d','topic':'t.%d','metadata':{'i':%d}}", u, i, i));
        }
    int next_notif[USERS] = {0}, next_sub[USERS] = {0}, refused = 0;
    for (int k = 0; k < USERS * (PER_USER + QUOTA + 2); k++) {
        struct rc_store_req *r = wait_reply(f);
        bool notif = r->op == RC_STORE_NOTIF_CREATE;
        const char *user =
            notif ? json_string_value(json_array_get(json_object_get(r->args, "recipients"), 0))
                  : S(r->args, "user_id");
        int u = atoi(user + 1);
        int i = (int)json_integer_value(json_object_get(json_object_get(r->args, "metadata"), "i"));
        /* per user and kind, answers come in submission order */
        assert_int_equal(i, notif ? next_notif[u]++ : next_sub[u]++);
        if (!notif && i >= QUOTA) {
            assert_int_equal(r->status, 409);
            refused++;
        } else {
            assert_ok(r, 201);
        }
        rc_store_req_free(r);
    }
    assert_int_equal(refused, USERS * 2);
    for (int u = 0; u < USERS; u++) {
        submit(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u%d'}", u));
        struct rc_store_req *r = wait_reply(f);
        assert_int_equal(json_integer_value(r->result), PER_USER);
        rc_store_req_free(r);
    }
    submit(f, RC_STORE_STATS, NULL);
    struct rc_store_req *r = wait_reply(f);
    assert_int_equal(json_integer_value(json_object_get(r->result, "pool")), 3);
    assert_int_equal(json_integer_value(json_object_get(r->result, "requests")),
                     USERS * (PER_USER + QUOTA + 2) + USERS + 1);
    assert_int_equal(json_integer_value(json_object_get(r->result, "queued")), 0);
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions"), USERS * QUOTA);
    /* one connection per worker */
    assert_int_equal(count_rows(f, "SELECT count(*) FROM pg_stat_activity"
                                   " WHERE application_name = 'ringcast'"),
                     3);
}

/* PostgreSQL restarted while the store was idle: libpq learns of the dead
 * connection only at the next statement; outside a transaction nothing was
 * in flight, so the engine connects again and the request succeeds. */
static void test_store_pg_restart_while_idle_is_invisible(void **state)
{
    struct fix *f = *state;
    free(create_notif(f, "{'title':'a','message':'m','recipients':['u1']}"));
    pts_halt(&g_pg);
    assert_true(pts_restart(&g_pg));
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_UNREAD_COUNT, J("{'user_id':'u1'}"));
    assert_ok(r, 200); /* a read batch */
    assert_int_equal(json_integer_value(r->result), 1);
    rc_store_req_free(r);
    pts_halt(&g_pg);
    assert_true(pts_restart(&g_pg));
    free(create_notif(f, "{'title':'b','message':'m','recipients':['u1']}")); /* a write batch */
    pts_halt(&g_pg);
    assert_true(pts_restart(&g_pg));
    r = call(f, RC_STORE_NOTIF_PURGE, NULL); /* the periodic purge's path: begin first */
    assert_ok(r, 200);
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 2);
}

static void test_store_pg_schema_version_is_recorded_and_newer_refused(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    assert_int_equal(count_rows(f, "SELECT version FROM schema_version"),
                     RC_STORE_PG_SCHEMA_VERSION);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_version"), 1);
    struct rc_store_req *r = call(f, RC_STORE_STATS, NULL);
    assert_string_equal(S(r->result, "engine"), "postgres");
    assert_int_equal(json_integer_value(json_object_get(r->result, "schema_version")),
                     RC_STORE_PG_SCHEMA_VERSION);
    assert_true(strncmp(S(r->result, "server_version"), "15", 2) == 0);
    rc_store_req_free(r);
    rc_store_stop(f->s);
    f->s = NULL;
    open_store(f); /* reopening a current schema changes nothing */
    rc_store_stop(f->s);
    f->s = NULL;
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(rc_store_pg_check(&f->cfg, &err), 0);

    assert_true(pts_exec_sql(&g_pg, "UPDATE schema_version SET version = 99"));
    assert_int_equal(rc_store_open(&f->s, &f->cfg, on_reply, f, &err), -EPROTO);
    assert_null(f->s);
    assert_string_equal(err.code, "bad_schema");
    assert_non_null(strstr(err.msg, "the PostgreSQL database has schema version 99 but this "
                                    "ringcast knows versions up to 1"));
    memset(&err, 0, sizeof(err));
    assert_int_equal(rc_store_pg_check(&f->cfg, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "has schema version 99"));
    assert_int_equal(count_rows(f, "SELECT version FROM schema_version"), 99); /* not touched */
}

static void test_store_pg_check_and_open_name_an_unreachable_server(void **state)
{
    struct fix *f = *state;
    struct rc_err err = {0};
    struct rc_store_config cfg = f->cfg;
    cfg.postgres_url = "postgresql://postgres@127.0.0.1:1/postgres";
    struct rc_store *s = NULL;
    assert_int_equal(rc_store_pg_check(&cfg, &err), -ECONNREFUSED);
    assert_non_null(strstr(err.msg, "store: cannot connect to PostgreSQL (postgres_url):"));
    assert_non_null(strstr(err.msg, "Connection refused"));
    assert_int_equal(rc_store_open(&s, &cfg, on_reply, f, &err), -ECONNREFUSED);
    assert_null(s);
    cfg.postgres_url = "";
    assert_int_equal(rc_store_open(&s, &cfg, on_reply, f, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "store=postgres needs postgres_url"));
}

struct racer {
    struct fix *f;
    struct rc_store *s;
    int rc;
    struct rc_err err;
};

static void *race_open(void *arg)
{
    struct racer *r = arg;
    r->rc = rc_store_open(&r->s, &r->f->cfg, on_reply, r->f, &r->err);
    return NULL;
}

/* Two nodes starting at once on an empty database: the migration lock lets
 * one create the schema; the other waits, then finds it current. */
static void test_store_pg_two_opens_at_once_both_succeed(void **state)
{
    struct fix *f = *state;
    rc_store_stop(f->s);
    f->s = NULL;
    pg_reset();
    struct racer r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){.f = f};
        assert_int_equal(pthread_create(&th[i], NULL, race_open, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (r[i].rc)
            fail_msg("open %d: %d %s", i, r[i].rc, r[i].err.msg);
    }
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(count_rows(f, "SELECT version FROM schema_version"),
                     RC_STORE_PG_SCHEMA_VERSION);
    /* every one works on the shared tables */
    for (int i = 0; i < 4; i++) {
        f->s = r[i].s;
        free(create_notif(f, "{'title':'t','message':'m','recipients':['u1']}"));
        rc_store_stop(r[i].s);
    }
    f->s = NULL;
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 4);
}

/* Another node purging holds the purge lock: this node skips; after it, it purges. */
static void test_store_pg_purge_skips_while_another_node_purges(void **state)
{
    struct fix *f = *state;
    free(create_notif(f, "{'title':'t','message':'m','recipients':['u1'],"
                         "'expires_at':'2026-01-01T00:01:00Z'}"));
    f->now = T0 + 120000;
    PGconn *other = pts_connect(&g_pg);
    assert_non_null(other);
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)", (long long)RC_STORE_PG_LOCK_PURGE);
    PQclear(PQexec(other, sql));
    struct rc_store_req *r = call(f, RC_STORE_NOTIF_PURGE, NULL);
    assert_ok(r, 200);
    assert_true(jeq(r->result, "{'purged':0}"));
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 1);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)",
             (long long)RC_STORE_PG_LOCK_PURGE);
    PQclear(PQexec(other, sql)); /* (a closed session's lock lingers until its backend exits) */
    PQfinish(other);
    r = call(f, RC_STORE_NOTIF_PURGE, NULL);
    assert_ok(r, 200);
    assert_true(jeq(r->result, "{'purged':1}"));
    rc_store_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM notifications"), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* One case on the PostgreSQL engine, named <case>_pg. */
#define TP(name)                                                                                   \
    {                                                                                              \
#name "_pg", name, setup_pg, teardown, NULL                                                \
    }
/* The cases of both engines: the one table. */
#define BOTH(X)                                                                                    \
    X(test_store_notif_create_returns_201_with_seed_fields)                                        \
    X(test_store_notif_create_applies_defaults)                                                    \
    X(test_store_notif_create_rejects_bad_fields_naming_them)                                      \
    X(test_store_notif_create_enforces_size_limits_exactly)                                        \
    X(test_store_notif_create_refuses_deeply_nested_metadata)                                      \
    X(test_store_json_fields_round_trip_and_refuse_nul)                                            \
    X(test_store_notif_get_returns_it_and_404_for_unknown)                                         \
    X(test_store_notif_get_as_non_recipient_is_403)                                                \
    X(test_store_notif_list_pages_newest_first_with_total)                                         \
    X(test_store_notif_list_rejects_bad_args_naming_them)                                          \
    X(test_store_notif_mark_read_tracks_readers_and_status)                                        \
    X(test_store_notif_mark_read_errors)                                                           \
    X(test_store_notif_unread_count_counts_unread_for_user)                                        \
    X(test_store_notif_expired_is_invisible_then_purged)                                           \
    X(test_store_sub_create_resource_maps_to_topic)                                                \
    X(test_store_sub_create_topic_keeps_filter_labels_metadata)                                    \
    X(test_store_sub_create_resource_rejects_bad_fields_naming_them)                               \
    X(test_store_sub_create_topic_rejects_bad_fields_naming_them)                                  \
    X(test_store_sub_list_pages_and_filters_status)                                                \
    X(test_store_sub_set_status_updates_and_checks_owner)                                          \
    X(test_store_sub_get_checks_owner)                                                             \
    X(test_store_sub_delete_is_204_and_returns_removed)                                            \
    X(test_store_sub_load_active_skips_paused_and_expired)                                         \
    X(test_store_by_id_ops_reject_bad_args)                                                        \
    X(test_store_group_commit_runs_1000_creates_in_one_transaction)                                \
    X(test_store_failed_write_does_not_abort_its_batch)                                            \
    X(test_store_engine_failed_write_leaves_nothing)                                               \
    X(test_store_commit_failure_fails_every_write_with_503)                                        \
    X(test_store_commit_failures_are_logged_once_per_interval)                                     \
    X(test_store_sub_create_refused_past_max_user_subscriptions)                                   \
    X(test_store_restart_keeps_data)                                                               \
    X(test_store_stop_request_answers_then_refuses_the_rest)                                       \
    X(test_store_thread_stops_cleanly_after_answering_queued_work)                                 \
    X(test_store_four_concurrent_producers_all_answered)

static void stop_pg(void)
{
    pts_stop(&g_pg);
}

int main(void)
{
    g_pg_up = pts_available() && pts_start(&g_pg, 14) == 0;
    if (g_pg_up)
        atexit(stop_pg);
    else
        fprintf(stderr, "test_store: PostgreSQL 15 could not be started (install Debian's "
                        "postgresql-15); the *_pg cases fail\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_time_parse_accepts_iso8601_forms),
        cmocka_unit_test(test_store_time_parse_rejects_malformed),
        cmocka_unit_test(test_store_time_format_renders_utc_with_millis),
#define X(name) T(name),
        BOTH(X)
#undef X
#define X(name) TP(name),
            BOTH(X)
#undef X
                T(test_store_schema_version_is_recorded_and_newer_refused),
        T(test_store_synchronous_setting_reaches_sqlite),
        T(test_store_open_creates_missing_data_dir_and_locks_it),
        T(test_store_open_refuses_a_file_that_is_not_a_database),
        T(test_store_open_refuses_another_programs_database),
        T(test_store_open_marks_new_and_older_ringcast_databases),
        T(test_store_open_names_a_changed_schema),
        TP(test_store_pg_restart_mid_batch_is_eio_then_reconnects),
        TP(test_store_pg_restart_while_idle_is_invisible),
        TP(test_store_pg_pipelined_create_fails_alone),
        TP(test_store_pg_pipeline_broken_mid_batch_saves_nothing),
        TP(test_store_pg_pool_keeps_each_user_in_order),
        TP(test_store_pg_schema_version_is_recorded_and_newer_refused),
        TP(test_store_pg_check_and_open_name_an_unreachable_server),
        TP(test_store_pg_two_opens_at_once_both_succeed),
        TP(test_store_pg_purge_skips_while_another_node_purges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
