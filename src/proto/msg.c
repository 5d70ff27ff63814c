/* msg.c - client message parser and reply encoder; contract in msg.h. */
#include <errno.h>
#include <stdio.h>

#include "ringcast/msg.h"
#include "ringcast/topic.h"

#define KNOWN_ACTIONS "auth subscribe unsubscribe publish presence pong ping message"
#define EXCERPT_MAX 32 /* bytes of client text quoted back in an error message */

static const char *const action_names[RC_ACT_COUNT] = {
    [RC_ACT_AUTH] = "auth",
    [RC_ACT_SUBSCRIBE] = "subscribe",
    [RC_ACT_UNSUBSCRIBE] = "unsubscribe",
    [RC_ACT_PUBLISH] = "publish",
    [RC_ACT_PONG] = "pong",
    [RC_ACT_PING] = "ping",
    [RC_ACT_PRESENCE] = "presence",
    [RC_ACT_MESSAGE] = "message",
};

const char *rc_action_name(enum rc_action a)
{
    if ((unsigned)a >= RC_ACT_COUNT)
        return "unknown";
    return action_names[a];
}

void rc_msg_fini(struct rc_client_msg *m)
{
    if (!m)
        return;
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

/* ---- parsing ------------------------------------------------------------ */

struct ctx {
    struct rc_client_msg *m;
    struct rc_err *err;
    const char *act; /* action name, for messages */
};

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Copy at most EXCERPT_MAX bytes of s (valid UTF-8, from jansson) into dst,
 * cut on a character boundary, control characters shown as '?', "..." appended
 * when cut. dst must hold EXCERPT_MAX + 4 bytes. */
static void excerpt(char *dst, const char *s, size_t n)
{
    size_t k = n;

    if (k > EXCERPT_MAX) {
        k = EXCERPT_MAX;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
    }
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (k < n) {
        memcpy(dst + k, "...", 4);
        return;
    }
    dst[k] = '\0';
}

/* True if arrays/objects nest deeper than max anywhere in buf. Brackets inside
 * strings do not count. On input jansson accepts this sees exactly jansson's
 * nesting; on input it refuses, jansson stops at the first error, which is no
 * deeper than what was counted up to it. Not recursive, one pass. */
static bool nesting_exceeds(const char *buf, size_t len, unsigned max)
{
    unsigned depth = 0;
    bool in_str = false, esc = false;

    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];

        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max)
                return true;
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            depth--;
        }
    }
    return false;
}

static int bad_type(struct ctx *c, const char *key, const char *want, const json_t *got)
{
    rc_err_set(c->err, 400, "bad_type", "\"%s\" must be %s, got %s", key, want, type_name(got));
    return -EINVAL;
}

/* Optional string field: *s = NULL when absent or null. */
static int get_string(struct ctx *c, const char *key, const char **s, size_t *n)
{
    json_t *v = json_object_get(c->m->root, key);

    *s = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad_type(c, key, "a string", v);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* Optional string with a length range [1, max]. */
static int get_bounded(struct ctx *c, const char *key, size_t max, const char **s)
{
    size_t n;

    if (get_string(c, key, s, &n))
        return -EINVAL;
    if (*s && (n == 0 || n > max)) {
        rc_err_set(c->err, 400, "bad_value", "%s: \"%s\" is %zu bytes; use 1..%zu bytes", c->act,
                   key, n, max);
        return -EINVAL;
    }
    return 0;
}

static int missing(struct ctx *c, const char *what)
{
    rc_err_set(c->err, 400, "missing_field", "%s needs %s", c->act, what);
    return -EINVAL;
}

static int read_id(struct ctx *c)
{
    json_t *id = json_object_get(c->m->root, "id");

    if (!id || json_is_null(id))
        return 0;
    if (json_is_integer(id)) {
        c->m->id = id;
        return 0;
    }
    if (!json_is_string(id)) {
        rc_err_set(c->err, 400, "bad_id",
                   "\"id\" must be a string of at most %d bytes or an integer, got %s",
                   RC_MSG_MAX_ID, type_name(id));
        return -EINVAL;
    }
    if (json_string_length(id) > RC_MSG_MAX_ID) {
        rc_err_set(c->err, 400, "bad_id",
                   "\"id\" is %zu bytes; use a string of at most %d bytes or an integer",
                   json_string_length(id), RC_MSG_MAX_ID);
        return -EINVAL;
    }
    c->m->id = id;
    return 0;
}

/* "topic" or its seed-003 alias "collection"; validated as kind. */
static int read_topic(struct ctx *c, enum rc_topic_kind kind, bool required)
{
    const char *t, *col;
    size_t tn, cn;

    if (get_string(c, "topic", &t, &tn) || get_string(c, "collection", &col, &cn))
        return -EINVAL;
    if (t && col && (tn != cn || memcmp(t, col, tn) != 0)) {
        char a[EXCERPT_MAX + 4], b[EXCERPT_MAX + 4];

        excerpt(a, t, tn);
        excerpt(b, col, cn);
        rc_err_set(c->err, 400, "bad_value",
                   "%s: \"topic\" \"%s\" and \"collection\" \"%s\" differ; give only one", c->act,
                   a, b);
        return -EINVAL;
    }
    if (!t && col) {
        t = col;
        tn = cn;
        c->m->via_collection = true;
    }
    if (!t)
        return required ? missing(c, "\"topic\" (or \"collection\")") : 0;
    if (rc_topic_validate(t, tn, kind, c->err) != 0)
        return -EINVAL;
    c->m->topic = t;
    c->m->topic_len = tn;
    return 0;
}

/* No upper bound here: ws_max_message bounds the message, and the verifier refuses a
 * token over its size limit as "unauthorized", counted and closed like any refused token. */
static int parse_auth(struct ctx *c)
{
    size_t n;

    if (get_string(c, "token", &c->m->token, &n))
        return -EINVAL;
    if (!c->m->token)
        return missing(c, "\"token\" (a JWT)");
    if (n == 0) {
        rc_err_set(c->err, 400, "bad_value", "auth: \"token\" is empty; send a JWT");
        return -EINVAL;
    }
    return 0;
}

static int parse_subscribe(struct ctx *c)
{
    struct rc_client_msg *m = c->m;
    json_t *v;

    if (read_topic(c, RC_TOPIC_PATTERN, true))
        return -EINVAL;
    v = json_object_get(m->root, "filter");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) {
            rc_err_set(c->err, 400, "bad_filter",
                       "filter must be a JSON object like {\"published\": true}, got %s",
                       type_name(v));
            return -EINVAL;
        }
        m->filter = v;
    }
    if (get_bounded(c, "since", RC_MSG_MAX_SINCE, &m->since))
        return -EINVAL;
    v = json_object_get(m->root, "include_initial");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return bad_type(c, "include_initial", "a boolean", v);
        m->include_initial = json_is_true(v);
    }
    return 0;
}

static int parse_unsubscribe(struct ctx *c)
{
    if (get_bounded(c, "subscription", RC_MSG_MAX_SUBSCRIPTION, &c->m->subscription))
        return -EINVAL;
    if (read_topic(c, RC_TOPIC_PATTERN, false))
        return -EINVAL;
    if (c->m->subscription && c->m->topic) {
        rc_err_set(c->err, 400, "bad_value",
                   "unsubscribe takes \"subscription\" or \"topic\" (or \"collection\"), not both");
        return -EINVAL;
    }
    if (!c->m->subscription && !c->m->topic)
        return missing(c, "\"subscription\" or \"topic\" (or \"collection\")");
    return 0;
}

static bool event_type_ok(const char *s, size_t n)
{
    if (n == 0 || n > RC_MSG_MAX_EVENT_TYPE)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static int parse_publish(struct ctx *c)
{
    struct rc_client_msg *m = c->m;
    const char *t, *ev;
    size_t tn, en;
    char a[EXCERPT_MAX + 4];

    if (read_topic(c, RC_TOPIC_NAME, true))
        return -EINVAL;
    if (get_string(c, "type", &t, &tn) || get_string(c, "event", &ev, &en))
        return -EINVAL;
    if (t && ev && (tn != en || memcmp(t, ev, tn) != 0)) {
        rc_err_set(c->err, 400, "bad_value",
                   "publish: \"type\" and \"event\" differ; give only one (\"event\" is an alias)");
        return -EINVAL;
    }
    if (!t && ev) {
        t = ev;
        tn = en;
    }
    if (!t) {
        t = "message";
        tn = 7;
    }
    if (!event_type_ok(t, tn)) {
        excerpt(a, t, tn);
        rc_err_set(c->err, 400, "bad_value",
                   "publish: event type \"%s\" must be 1..%d printable ASCII characters without "
                   "spaces, like \"record.created\"",
                   a, RC_MSG_MAX_EVENT_TYPE);
        return -EINVAL;
    }
    m->type = t;
    m->data = json_object_get(m->root, "data");
    if (!m->data)
        m->data = json_null();
    return 0;
}

static int parse_message(struct ctx *c)
{
    json_t *v = json_object_get(c->m->root, "payload");

    if (!v)
        return missing(c, "\"payload\" (any JSON value)");
    c->m->payload = v;
    return 0;
}

/* Which action: "action", or seed 001's {"type":"message"} when "action" is absent. */
static int read_action(struct ctx *c)
{
    json_t *v = json_object_get(c->m->root, "action");
    const char *s;
    size_t n;
    char a[EXCERPT_MAX + 4];

    if (!v || json_is_null(v)) {
        json_t *t = json_object_get(c->m->root, "type");

        if (json_is_string(t) && strcmp(json_string_value(t), "message") == 0) {
            c->m->action = RC_ACT_MESSAGE;
            return 0;
        }
        rc_err_set(c->err, 400, "missing_field", "message needs \"action\"; known: " KNOWN_ACTIONS);
        return -EINVAL;
    }
    if (!json_is_string(v))
        return bad_type(c, "action", "a string", v);
    s = json_string_value(v);
    n = json_string_length(v);
    for (unsigned i = 0; i < RC_ACT_COUNT; i++) {
        if (strlen(action_names[i]) == n && memcmp(action_names[i], s, n) == 0) {
            c->m->action = (enum rc_action)i;
            return 0;
        }
    }
    excerpt(a, s, n);
    rc_err_set(c->err, 400, "unknown_action", "unknown action \"%s\"; known: " KNOWN_ACTIONS, a);
    return -EINVAL;
}

static int parse_fields(struct ctx *c)
{
    switch (c->m->action) {
    case RC_ACT_AUTH:
        return parse_auth(c);
    case RC_ACT_SUBSCRIBE:
        return parse_subscribe(c);
    case RC_ACT_UNSUBSCRIBE:
        return parse_unsubscribe(c);
    case RC_ACT_PUBLISH:
        return parse_publish(c);
    case RC_ACT_PRESENCE:
        return read_topic(c, RC_TOPIC_NAME, true);
    case RC_ACT_MESSAGE:
        return parse_message(c);
    case RC_ACT_PONG:
    case RC_ACT_PING:
        return 0;
    }
    return 0;
}

int rc_msg_parse(const char *buf, size_t len, const struct rc_msg_limits *lim,
                 struct rc_client_msg *out, struct rc_err *err)
{
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : RC_MSG_DEFAULT_MAX_BYTES;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : RC_MSG_DEFAULT_MAX_DEPTH;
    struct ctx c = {.m = out, .err = err};
    json_error_t jerr;

    memset(out, 0, sizeof(*out));
    if (len > max_bytes) {
        rc_err_set(err, 413, "too_large", "message is %zu bytes; the limit is %zu", len, max_bytes);
        return -EINVAL;
    }
    if (nesting_exceeds(buf, len, max_depth)) {
        rc_err_set(err, 400, "too_deep",
                   "arrays/objects nest deeper than %u levels; flatten the message", max_depth);
        return -EINVAL;
    }
    if (len == 0) {
        rc_err_set(err, 400, "bad_json",
                   "message is empty; send one JSON object like {\"action\":\"pong\"}");
        return -EINVAL;
    }
    /* Duplicate keys are refused: {"topic":"a","topic":"b"} must not mean
     * one thing to us and another to a proxy or log reader. */
    out->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!out->root) {
        rc_err_set(err, 400, "bad_json", "invalid JSON at line %d, column %d: %s", jerr.line,
                   jerr.column, jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(out->root)) {
        rc_err_set(err, 400, "bad_json",
                   "message must be a JSON object like {\"action\":\"subscribe\",...}, got %s",
                   type_name(out->root));
        return -EINVAL;
    }
    if (read_id(&c) || read_action(&c))
        return -EINVAL;
    c.act = action_names[out->action];
    return parse_fields(&c);
}

/* ---- replies ------------------------------------------------------------ */

/* A bounded writer: once something does not fit, full sticks and nothing more
 * is written. */
struct wbuf {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_lit(struct wbuf *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table), or 0 if
 * ill-formed; *skip is then the maximal ill-formed subpart (>= 1) to replace
 * with one U+FFFD, as Unicode recommends. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *skip)
{
    unsigned char c0 = s[0], lo = 0x80, hi = 0xBF;
    size_t need;

    if (c0 < 0x80) {
        *skip = 1;
        return 1;
    }
    if (c0 >= 0xC2 && c0 <= 0xDF) {
        need = 1;
    } else if (c0 >= 0xE0 && c0 <= 0xEF) {
        need = 2;
        lo = c0 == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c0 == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c0 >= 0xF0 && c0 <= 0xF4) {
        need = 3;
        lo = c0 == 0xF0 ? 0x90 : 0x80;
        hi = c0 == 0xF4 ? 0x8F : 0xBF; /* <= U+10FFFF */
    } else {
        *skip = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *skip = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *skip = need + 1;
    return need + 1;
}

static void put_escaped(struct wbuf *w, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;

    put(w, "\"", 1);
    while (i < n) {
        size_t skip, ok = utf8_seq(s + i, n - i, &skip);
        unsigned char ch = s[i];

        if (ok && ch >= 0x20 && ch != '"' && ch != '\\') {
            i += ok; /* safe: extend the run copied in one go */
            continue;
        }
        put(w, str + run, i - run);
        if (!ok)
            put(w, "\xEF\xBF\xBD", 3); /* U+FFFD */
        else if (ch == '"' || ch == '\\')
            put(w, (const char[]){'\\', (char)ch}, 2);
        else if (ch == '\n')
            put(w, "\\n", 2);
        else if (ch == '\r')
            put(w, "\\r", 2);
        else if (ch == '\t')
            put(w, "\\t", 2);
        else if (ch == '\b')
            put(w, "\\b", 2);
        else if (ch == '\f')
            put(w, "\\f", 2);
        else
            put(w, (const char[]){'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]}, 6);
        i += skip;
        run = i;
    }
    put(w, str + run, i - run);
    put(w, "\"", 1);
}

static void put_string(struct wbuf *w, const char *s)
{
    if (!s)
        s = "";
    put_escaped(w, s, strlen(s));
}

/* Writes `,"id":ID` (lead_comma) or `"id":ID,`; nothing for NULL/other types. */
static void put_id(struct wbuf *w, const json_t *id, bool lead_comma)
{
    char num[32];
    int k;

    if (!json_is_string(id) && !json_is_integer(id))
        return;
    put_lit(w, lead_comma ? ",\"id\":" : "\"id\":");
    if (json_is_string(id)) {
        put_escaped(w, json_string_value(id), json_string_length(id));
    } else {
        k = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        put(w, num, (size_t)k);
    }
    if (!lead_comma)
        put(w, ",", 1);
}

ssize_t rc_msg_error(char *out, size_t cap, const json_t *id, const char *code, const char *message)
{
    struct wbuf w = {.p = out, .cap = cap};

    put_lit(&w, "{\"type\":\"error\",\"data\":{\"code\":");
    put_string(&w, code);
    put_lit(&w, ",\"message\":");
    put_string(&w, message);
    put_id(&w, id, true);
    put_lit(&w, "}}");
    return w.full ? -ENOSPC : (ssize_t)w.len;
}

ssize_t rc_msg_reply(char *out, size_t cap, const char *type, const json_t *id, const json_t *data)
{
    struct wbuf w = {.p = out, .cap = cap};
    size_t avail, need;

    put_lit(&w, "{\"type\":");
    put_string(&w, type);
    put(&w, ",", 1);
    put_id(&w, id, false);
    put_lit(&w, "\"data\":");
    if (w.full)
        return -ENOSPC;
    if (!data) {
        put(&w, "{}", 2);
    } else {
        avail = w.cap - w.len;
        need = json_dumpb(data, w.p + w.len, avail, JSON_COMPACT | JSON_ENCODE_ANY);
        if (need == 0)
            return -EINVAL;
        if (need > avail)
            return -ENOSPC;
        w.len += need;
    }
    put(&w, "}", 1);
    return w.full ? -ENOSPC : (ssize_t)w.len;
}
