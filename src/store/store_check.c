/* store_check.c - the pure half of the store (no thread, no state):
 * validation of notification and subscription payloads (rc_store_check, seed
 * 001), ISO 8601 times (rc_store_time_parse/format) and the store_synchronous
 * names. The rules these checks enforce are listed at the top of store.c and
 * in docs/API.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ringcast/store.h"
#include "ringcast/topic.h"
#include "store_internal.h"

#define MAX_JSON_DEPTH 32

/* ---- times ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, size_t at, size_t count, unsigned *out)
{
    unsigned v = 0;
    if (at + count > n)
        return false;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static unsigned month_days(unsigned y, unsigned m)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : mdays[m - 1];
}

int rc_store_time_parse(const char *s, size_t n, int64_t *ms_out)
{
    unsigned y, mo, d, h, mi, sec, ms = 0;
    size_t i = 19;

    if (!digits(s, n, 0, 4, &y) || n < 20 || s[4] != '-' || !digits(s, n, 5, 2, &mo) ||
        s[7] != '-' || !digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s, n, 11, 2, &h) || s[13] != ':' || !digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        !digits(s, n, 17, 2, &sec))
        return -EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return -EINVAL;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                ms = ms * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (i == start || i - start > 9)
            return -EINVAL;
        for (size_t k = i - start; k < 3; k++)
            ms *= 10;
    }
    int64_t off_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        unsigned oh, om;
        if (!digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            !digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off_min = (int64_t)(oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != n)
        return -EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)(h * 3600 + mi * 60 + sec);
    secs -= off_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}

void rc_store_time_format(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int64_t rem = ms - (int64_t)t * 1000;
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* ---- validation --------------------------------------------------------------- */

static const char *const notif_types[] = {"info",   "message",  "alert", "system",
                                          "update", "reminder", NULL};
#define NOTIF_TYPES "info, message, alert, system, update, reminder"
static const char *const priorities[] = {"low", "normal", "high", "urgent", NULL};
#define PRIORITIES "low, normal, high, urgent"
static const char *const notif_statuses[] = {"pending", "delivered", "read", NULL};
#define NOTIF_STATUSES "pending, delivered, read"
static const char *const sub_statuses[] = {"active", "paused", NULL};
#define SUB_STATUSES "active, paused"

static int bad(struct rc_err *err, const char *code, const char *fmt, ...) RC_PRINTF(3, 4);
static int bad(struct rc_err *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        err->status = 400;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* Refuse keys of obj not in allowed (a NULL-terminated list, also printed). */
static int check_keys(const json_t *obj, const char *what, const char *const *allowed,
                      struct rc_err *err)
{
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        if (in_list(key, allowed))
            continue;
        char list[256];
        size_t off = 0;
        for (const char *const *a = allowed; *a && off < sizeof(list); a++) {
            int w = snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "", *a);
            off += w > 0 ? (size_t)w : 0;
        }
        return bad(err, "unknown_field", "%s: unknown field \"%.48s\"; allowed: %s", what, key,
                   allowed[0] ? list : "none");
    }
    return 0;
}

/* Fetch a string field; absent or null leaves *out NULL (an error if
 * required). */
static int get_str(const json_t *obj, const char *key, bool required, const char **out, size_t *len,
                   struct rc_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    *len = 0;
    if (!v || json_is_null(v)) {
        if (required)
            return bad(err, "missing_field", "%s: required field is missing", key);
        return 0;
    }
    if (!json_is_string(v))
        return bad(err, "bad_type", "%s: must be a string", key);
    *out = json_string_value(v);
    *len = json_string_length(v);
    if (strlen(*out) != *len)
        return bad(err, "bad_value", "%s: must not contain a NUL character (\\u0000)", key);
    return 0;
}

/* UTF-8 code points of a valid UTF-8 string (jansson validates). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

static int check_text(const char *field, const char *s, size_t n, size_t max, struct rc_err *err)
{
    size_t c = utf8_chars(s, n);
    if (c == 0 || c > max)
        return bad(err, "bad_value", "%s: must be 1..%zu characters, got %zu", field, max, c);
    return 0;
}

/* An identifier: 1..max bytes of printable ASCII without spaces. */
static int check_ident(const char *field, const char *s, size_t n, size_t max, struct rc_err *err)
{
    if (n == 0 || n > max)
        return bad(err, "bad_value", "%s: must be 1..%zu bytes, got %zu", field, max, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e)
            return bad(err, "bad_value",
                       "%s: byte %zu is a space, control or non-ASCII character; use printable "
                       "ASCII",
                       field, i + 1);
    }
    return 0;
}

static int get_ident(const json_t *obj, const char *key, bool required, size_t max,
                     const char **out, struct rc_err *err)
{
    size_t n;
    int rc = get_str(obj, key, required, out, &n, err);
    if (rc == 0 && *out)
        rc = check_ident(key, *out, n, max, err);
    return rc;
}

static int get_enum(const json_t *obj, const char *key, const char *const *vals,
                    const char *vals_text, const char **out, struct rc_err *err)
{
    size_t n;
    int rc = get_str(obj, key, false, out, &n, err);
    if (rc == 0 && *out && !in_list(*out, vals))
        return bad(err, "bad_value", "%s: \"%.48s\" is not one of %s", key, *out, vals_text);
    return rc;
}

/* Depth of a JSON value, walked with an explicit stack so that hostile
 * nesting never recurses here; false once deeper than MAX_JSON_DEPTH. */
static bool json_depth_ok(const json_t *root)
{
    struct frame {
        const json_t *v;
        void *iter;
        size_t idx;
    } st[MAX_JSON_DEPTH + 1];
    size_t top = 0;

    if (!json_is_object(root) && !json_is_array(root))
        return true;
    st[0] = (struct frame){root, json_object_iter((json_t *)root), 0};
    for (;;) {
        struct frame *f = &st[top];
        const json_t *child = NULL;
        if (json_is_object(f->v) && f->iter) {
            child = json_object_iter_value(f->iter);
            f->iter = json_object_iter_next((json_t *)f->v, f->iter);
        } else if (json_is_array(f->v) && f->idx < json_array_size(f->v)) {
            child = json_array_get(f->v, f->idx++);
        } else if (top == 0) {
            return true;
        } else {
            top--;
            continue;
        }
        if (!json_is_object(child) && !json_is_array(child))
            continue;
        if (top + 1 >= MAX_JSON_DEPTH)
            return false;
        st[++top] = (struct frame){child, json_object_iter((json_t *)child), 0};
    }
}

/* Does compact JSON text s hold the escape \u0000 (a NUL inside a string)?
 * An escaped backslash followed by "u0000" does not count. */
static bool json_text_has_nul(const char *s)
{
    for (; *s; s++) {
        if (*s != '\\')
            continue;
        if (strncmp(s + 1, "u0000", 5) == 0)
            return true;
        if (s[1])
            s++; /* skip the escaped character */
    }
    return false;
}

/* Free-form JSON stored as given: bounded depth and size, and no NUL in a
 * string (PostgreSQL's jsonb cannot hold one; both engines refuse it alike). */
static int check_blob(const char *field, const json_t *v, bool must_be_object, struct rc_err *err)
{
    if (must_be_object && !json_is_object(v))
        return bad(err, "bad_type", "%s: must be a JSON object", field);
    if (!json_depth_ok(v))
        return bad(err, "bad_value", "%s: nested deeper than %d levels; flatten it", field,
                   MAX_JSON_DEPTH);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return bad(err, "bad_value", "%s: cannot be encoded as JSON", field);
    size_t n = strlen(s);
    bool nul = json_text_has_nul(s);
    free(s);
    if (nul)
        return bad(err, "bad_value", "%s: a string in it contains a NUL character (\\u0000)",
                   field);
    if (n > RC_STORE_JSON_MAX)
        return bad(err, "bad_value", "%s: is %zu bytes as compact JSON; the limit is %d bytes",
                   field, n, RC_STORE_JSON_MAX);
    return 0;
}

static int get_blob(const json_t *obj, const char *key, const json_t **out, struct rc_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    *out = v;
    return check_blob(key, v, true, err);
}

/* Optional time field; must be later than now when future is set. */
static int get_time(const json_t *obj, const char *key, int64_t now_ms, int64_t *out, bool *has,
                    struct rc_err *err)
{
    const char *s;
    size_t n;
    int rc = get_str(obj, key, false, &s, &n, err);
    *has = false;
    if (rc || !s)
        return rc;
    if (rc_store_time_parse(s, n, out) != 0)
        return bad(err, "bad_value",
                   "%s: \"%.40s\" is not an ISO 8601 UTC time; use e.g. "
                   "\"2025-05-16T10:30:00Z\"",
                   key, s);
    if (*out <= now_ms)
        return bad(err, "bad_value", "%s: \"%.40s\" is not in the future", key, s);
    *has = true;
    return 0;
}

/* Paging number: a JSON integer or a decimal string (from a query string). */
int rc_store_arg_uint(const json_t *obj, const char *key, uint32_t dflt, uint32_t max,
                      uint32_t *out, struct rc_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    long long x = -1;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        x = 0;
        if (n == 0 || n > 10)
            x = -1;
        for (size_t i = 0; i < n && x >= 0; i++)
            x = (s[i] >= '0' && s[i] <= '9') ? x * 10 + (s[i] - '0') : -1;
    } else {
        return bad(err, "bad_type", "%s: must be a whole number", key);
    }
    if (x < 1 || x > (long long)max)
        return bad(err, "bad_value", "%s: must be a whole number in 1..%u", key, max);
    *out = (uint32_t)x;
    return 0;
}

static int check_recipients(const json_t *obj, struct rc_err *err)
{
    json_t *r = json_object_get(obj, "recipients");
    if (!r || json_is_null(r))
        return bad(err, "missing_field", "recipients: required field is missing");
    if (!json_is_array(r))
        return bad(err, "bad_type", "recipients: must be an array of user ids");
    size_t n = json_array_size(r);
    if (n == 0 || n > RC_STORE_RECIPIENTS_MAX)
        return bad(err, "bad_value", "recipients: must hold 1..%d user ids, got %zu",
                   RC_STORE_RECIPIENTS_MAX, n);
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_array_get(r, i);
        char field[32];
        snprintf(field, sizeof(field), "recipients[%zu]", i);
        if (!json_is_string(u))
            return bad(err, "bad_type", "%s: must be a string (a user id)", field);
        if (check_ident(field, json_string_value(u), json_string_length(u), RC_STORE_USER_ID_MAX,
                        err))
            return -EINVAL;
        /* O(n^2) on at most 1000 short ids: ~0.5M compares, bounded */
        for (size_t k = 0; k < i; k++)
            if (json_equal(u, json_array_get(r, k)))
                return bad(err, "bad_value", "%s: \"%s\" repeats recipients[%zu]", field,
                           json_string_value(u), k);
    }
    return 0;
}

static int check_actions(const json_t *obj, struct rc_err *err)
{
    static const char *const keys[] = {"label", "action", "data", NULL};
    json_t *a = json_object_get(obj, "actions");
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return bad(err, "bad_type", "actions: must be an array of {label, action, data}");
    if (json_array_size(a) > RC_STORE_ACTIONS_MAX)
        return bad(err, "bad_value", "actions: at most %d actions, got %zu", RC_STORE_ACTIONS_MAX,
                   json_array_size(a));
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *x = json_array_get(a, i);
        char field[40];
        snprintf(field, sizeof(field), "actions[%zu]", i);
        if (!json_is_object(x))
            return bad(err, "bad_type", "%s: must be an object {label, action, data}", field);
        if (check_keys(x, field, keys, err))
            return -EINVAL;
        for (int k = 0; k < 2; k++) {
            const char *s;
            size_t n;
            char sub[56];
            snprintf(sub, sizeof(sub), "%s.%s", field, keys[k]);
            json_t *v = json_object_get(x, keys[k]);
            if (!v || json_is_null(v))
                return bad(err, "missing_field", "%s: required field is missing", sub);
            if (!json_is_string(v))
                return bad(err, "bad_type", "%s: must be a string", sub);
            s = json_string_value(v);
            n = json_string_length(v);
            if (strlen(s) != n)
                return bad(err, "bad_value", "%s: must not contain a NUL character", sub);
            if (check_text(sub, s, n, RC_STORE_ACTION_TEXT_MAX, err))
                return -EINVAL;
        }
        json_t *d = json_object_get(x, "data");
        if (d && !json_is_null(d)) {
            char sub[56];
            snprintf(sub, sizeof(sub), "%s.data", field);
            if (check_blob(sub, d, false, err))
                return -EINVAL;
        }
    }
    return 0;
}

static int check_notif_create(const json_t *a, int64_t now_ms, struct rc_err *err)
{
    static const char *const keys[] = {"title",    "message",   "recipients",    "type",
                                       "priority", "sender_id", "resource_type", "resource_id",
                                       "actions",  "metadata",  "expires_at",    NULL};
    const char *s;
    size_t n;
    const json_t *blob;
    int64_t t;
    bool has;

    if (check_keys(a, "notification", keys, err))
        return -EINVAL;
    if (get_str(a, "title", true, &s, &n, err) ||
        check_text("title", s, n, RC_STORE_TITLE_MAX, err))
        return -EINVAL;
    if (get_str(a, "message", true, &s, &n, err) ||
        check_text("message", s, n, RC_STORE_MESSAGE_MAX, err))
        return -EINVAL;
    if (check_recipients(a, err) || get_enum(a, "type", notif_types, NOTIF_TYPES, &s, err) ||
        get_enum(a, "priority", priorities, PRIORITIES, &s, err) ||
        get_ident(a, "sender_id", false, RC_STORE_USER_ID_MAX, &s, err))
        return -EINVAL;
    if (get_str(a, "resource_type", false, &s, &n, err) ||
        (s && check_text("resource_type", s, n, RC_STORE_REF_MAX, err)))
        return -EINVAL;
    if (get_str(a, "resource_id", false, &s, &n, err) ||
        (s && check_text("resource_id", s, n, RC_STORE_REF_MAX, err)))
        return -EINVAL;
    if (check_actions(a, err) || get_blob(a, "metadata", &blob, err) ||
        get_time(a, "expires_at", now_ms, &t, &has, err))
        return -EINVAL;
    return 0;
}

static int check_token(const char *field, const json_t *a, struct rc_err *err)
{
    const char *s;
    size_t n;
    struct rc_err terr;

    if (get_str(a, field, true, &s, &n, err))
        return -EINVAL;
    if (n > RC_STORE_REF_MAX)
        return bad(err, "bad_value", "%s: must be 1..%d bytes, got %zu", field, RC_STORE_REF_MAX,
                   n);
    if (memchr(s, '.', n))
        return bad(err, "bad_value",
                   "%s: \"%.48s\" has a dot; it must be one topic token, since the subscription "
                   "topic is <resource_type>.<resource_id>",
                   field, s);
    if (rc_topic_validate(s, n, RC_TOPIC_NAME, &terr) != 0)
        return bad(err, "bad_value", "%s: %s", field, terr.msg);
    return 0;
}

static int check_labels(const json_t *a, struct rc_err *err)
{
    json_t *l = json_object_get(a, "labels");
    if (!l || json_is_null(l))
        return 0;
    if (!json_is_array(l))
        return bad(err, "bad_type", "labels: must be an array of strings");
    if (json_array_size(l) > RC_STORE_LABELS_MAX)
        return bad(err, "bad_value", "labels: at most %d labels, got %zu", RC_STORE_LABELS_MAX,
                   json_array_size(l));
    for (size_t i = 0; i < json_array_size(l); i++) {
        json_t *v = json_array_get(l, i);
        char field[32];
        snprintf(field, sizeof(field), "labels[%zu]", i);
        if (!json_is_string(v))
            return bad(err, "bad_type", "%s: must be a string", field);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return bad(err, "bad_value", "%s: must not contain a NUL character", field);
        if (check_text(field, json_string_value(v), json_string_length(v), RC_STORE_LABEL_MAX, err))
            return -EINVAL;
    }
    return 0;
}

static int check_sub_create(enum rc_store_op op, const json_t *a, int64_t now_ms,
                            struct rc_err *err)
{
    static const char *const rkeys[] = {"user_id",  "resource_id", "resource_type",  "labels",
                                        "metadata", "expires_at",  "payload_filter", NULL};
    static const char *const tkeys[] = {"user_id",    "topic",          "labels", "metadata",
                                        "expires_at", "payload_filter", NULL};
    const char *s;
    size_t n;
    const json_t *blob;
    int64_t t;
    bool has;
    struct rc_err terr;

    if (check_keys(a, "subscription", op == RC_STORE_SUB_CREATE_RESOURCE ? rkeys : tkeys, err) ||
        get_ident(a, "user_id", true, RC_STORE_USER_ID_MAX, &s, err))
        return -EINVAL;
    if (op == RC_STORE_SUB_CREATE_RESOURCE) {
        if (check_token("resource_type", a, err) || check_token("resource_id", a, err))
            return -EINVAL;
        size_t tl = json_string_length(json_object_get(a, "resource_type")) + 1 +
                    json_string_length(json_object_get(a, "resource_id"));
        if (tl > RC_TOPIC_MAX_LEN)
            return bad(err, "bad_value",
                       "resource_id: the topic <resource_type>.<resource_id> would be %zu bytes; "
                       "the limit is %d",
                       tl, RC_TOPIC_MAX_LEN);
    } else {
        if (get_str(a, "topic", true, &s, &n, err))
            return -EINVAL;
        if (rc_topic_validate(s, n, RC_TOPIC_PATTERN, &terr) != 0)
            return bad(err, "bad_value", "topic: %s", terr.msg);
    }
    if (check_labels(a, err) || get_blob(a, "metadata", &blob, err) ||
        get_blob(a, "payload_filter", &blob, err) ||
        get_time(a, "expires_at", now_ms, &t, &has, err))
        return -EINVAL;
    return 0;
}

static int check_list(const json_t *a, const char *const *statuses, const char *statuses_text,
                      struct rc_err *err)
{
    static const char *const keys[] = {"user_id", "status", "page", "page_size", NULL};
    const char *s;
    uint32_t u;
    if (check_keys(a, "list", keys, err) ||
        get_ident(a, "user_id", true, RC_STORE_USER_ID_MAX, &s, err) ||
        get_enum(a, "status", statuses, statuses_text, &s, err) ||
        rc_store_arg_uint(a, "page", 1, RC_STORE_PAGE_MAX, &u, err) ||
        rc_store_arg_uint(a, "page_size", RC_STORE_PAGE_SIZE_DEFAULT, RC_STORE_PAGE_SIZE_MAX, &u,
                          err))
        return -EINVAL;
    return 0;
}

/* {id, user_id?} plus, for set_status, a required status. */
static int check_by_id(enum rc_store_op op, const json_t *a, struct rc_err *err)
{
    static const char *const keys[] = {"id", "user_id", NULL};
    static const char *const skeys[] = {"id", "user_id", "status", NULL};
    bool user_required = op == RC_STORE_NOTIF_MARK_READ;
    const char *s;

    if (check_keys(a, "request", op == RC_STORE_SUB_SET_STATUS ? skeys : keys, err) ||
        get_ident(a, "id", true, RC_STORE_ID_MAX, &s, err) ||
        get_ident(a, "user_id", user_required, RC_STORE_USER_ID_MAX, &s, err))
        return -EINVAL;
    if (op == RC_STORE_SUB_SET_STATUS) {
        size_t n;
        if (get_str(a, "status", true, &s, &n, err) ||
            get_enum(a, "status", sub_statuses, SUB_STATUSES, &s, err))
            return -EINVAL;
    }
    return 0;
}

int rc_store_check(enum rc_store_op op, const json_t *args, int64_t now_ms, struct rc_err *err)
{
    static const char *const none[] = {NULL};
    static const char *const user_only[] = {"user_id", NULL};
    json_t *empty = NULL;
    int rc;

    if (!args)
        args = empty = json_object();
    if (!args)
        return bad(err, "no_memory", "out of memory");
    if (!json_is_object(args)) {
        rc = bad(err, "bad_type", "%s: the arguments must be a JSON object", rc_store_op_name(op));
        goto out;
    }
    switch (op) {
    case RC_STORE_NOTIF_CREATE:
        rc = check_notif_create(args, now_ms, err);
        break;
    case RC_STORE_NOTIF_LIST:
        rc = check_list(args, notif_statuses, NOTIF_STATUSES, err);
        break;
    case RC_STORE_SUB_LIST:
        rc = check_list(args, sub_statuses, SUB_STATUSES, err);
        break;
    case RC_STORE_NOTIF_GET:
    case RC_STORE_NOTIF_MARK_READ:
    case RC_STORE_SUB_GET:
    case RC_STORE_SUB_SET_STATUS:
    case RC_STORE_SUB_DELETE:
        rc = check_by_id(op, args, err);
        break;
    case RC_STORE_NOTIF_UNREAD_COUNT: {
        const char *s;
        rc = check_keys(args, "unread-count", user_only, err);
        if (rc == 0)
            rc = get_ident(args, "user_id", true, RC_STORE_USER_ID_MAX, &s, err);
        break;
    }
    case RC_STORE_SUB_CREATE_RESOURCE:
    case RC_STORE_SUB_CREATE_TOPIC:
        rc = check_sub_create(op, args, now_ms, err);
        break;
    case RC_STORE_NOTIF_PURGE:
    case RC_STORE_SUB_LOAD_ACTIVE:
    case RC_STORE_STATS:
    case RC_STORE_STOP:
        rc = check_keys(args, rc_store_op_name(op), none, err);
        break;
    default:
        rc = bad(err, "bad_request", "store: unknown operation %d", (int)op);
        break;
    }
out:
    json_decref(empty);
    return rc;
}

int rc_store_sync_parse(const char *str, enum rc_store_sync *out, struct rc_err *err)
{
    struct rc_slice sl = rc_slice_make(str, strlen(str));
    if (rc_slice_ieq(sl, "full")) {
        *out = RC_STORE_SYNC_FULL;
        return 0;
    }
    if (rc_slice_ieq(sl, "normal")) {
        *out = RC_STORE_SYNC_NORMAL;
        return 0;
    }
    rc_err_set(err, 400, "bad_config",
               "store_synchronous=%.32s is not known; use full (survives power loss) or normal "
               "(survives a crash of the process, faster)",
               str);
    return -EINVAL;
}

const char *rc_store_sync_name(enum rc_store_sync sync)
{
    return sync == RC_STORE_SYNC_NORMAL ? "normal" : "full";
}
