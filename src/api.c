/* api.c - HTTP routes: /healthz, the publish API, seed 001's events API,
 * stats, and the WebSocket / SSE entry points (see docs/API.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/api.h"
#include "ringcast/api_store.h"
#include "ringcast/auth.h"
#include "ringcast/answer.h"
#include "ringcast/broker.h"
#include "ringcast/evbuf.h"
#include "ringcast/shard.h"
#include "ringcast/sse.h"
#include "ringcast/topic.h"
#include "ringcast/ws.h"

#define MAX_EVENT_TYPE 64
#define MAX_CLIENT_KEY 64
#define MAX_RECIPIENTS 10000
#define STATS_DEFAULT_LIMIT 100
#define STATS_MAX_LIMIT 10000

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
static bool api_allowed(struct rc_http_ctx *x, unsigned scope)
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

/* ---- JSON bodies ------------------------------------------------------------------------ */

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

/* Optional string field; false (answered) on a wrong type or length. */
static bool opt_string(struct rc_http_ctx *x, json_t *obj, const char *name, size_t max,
                       const char **out)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        rc_http_error(x, 400, "bad_type", "\"%s\" must be a string", name);
        return false;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > max) {
        rc_http_error(x, 400, "bad_value", "\"%s\" must be 1..%zu bytes, got %zu", name, max, n);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool valid_event_type(struct rc_http_ctx *x, const char *field, const char *t)
{
    for (const char *p = t; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            rc_http_error(x, 400, "bad_value",
                          "\"%s\" must be printable ASCII without spaces (e.g. record.created)",
                          field);
            return false;
        }
    }
    return true;
}

/* Take `name` out of obj with its reference, so the caller holds the only one
 * (a json_t that crosses to another shard must not stay shared: jansson's
 * refcount is not atomic). json_null() when absent. */
static json_t *detach(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return json_null();
    json_incref(v);
    json_object_del(obj, name);
    return v;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void h_healthz(struct rc_http_ctx *x)
{
    if (x->conn->shard->draining) {
        static const char body[] = "{\"status\":\"draining\"}";
        rc_http_json(x, 503, body, sizeof(body) - 1);
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    rc_http_json(x, 200, body, sizeof(body) - 1);
}

#define MAX_USER_IDS 1000
#define MAX_USER_ID 128

/* A list of user ids (seed 004's subscriber_ids / user_ids): NULL when absent;
 * false (answered) when malformed. *out points into j (valid while j lives). */
static bool user_list(struct rc_http_ctx *x, json_t *j, const char *name, const char ***out,
                      size_t *n)
{
    json_t *arr = json_object_get(j, name);
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return true;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_USER_IDS) {
        rc_http_error(x, 400, "bad_value", "\"%s\" must be an array of 1..%d user ids", name,
                      MAX_USER_IDS);
        return false;
    }
    const char **ids = calloc(json_array_size(arr), sizeof(*ids));
    if (!ids) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > MAX_USER_ID) {
            free(ids);
            rc_http_error(x, 400, "bad_value", "%s[%zu] must be a user id of 1..%d bytes", name, i,
                          MAX_USER_ID);
            return false;
        }
        ids[i] = json_string_value(v);
    }
    *out = ids;
    *n = json_array_size(arr);
    return true;
}

static void h_publish(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_PUBLISH))
        return;
    json_t *j = rc_api_body_object(x);
    if (!j)
        return;
    const char *topic, *type, *key, *exclude;
    const char **users = NULL, **targets = NULL;
    size_t nusers = 0, ntargets = 0;
    struct rc_err err = {0};
    if (!opt_string(x, j, "topic", RC_TOPIC_MAX_LEN, &topic) ||
        !opt_string(x, j, "type", MAX_EVENT_TYPE, &type) ||
        !opt_string(x, j, "id", MAX_CLIENT_KEY, &key) ||
        !opt_string(x, j, "exclude_user_id", MAX_USER_ID, &exclude) ||
        !user_list(x, j, "subscriber_ids", &targets, &ntargets) ||
        !user_list(x, j, "user_ids", &users, &nusers))
        goto out;
    if (type && !valid_event_type(x, "type", type))
        goto out;
    if (!topic && users) {
        /* an event for every connection of these users, no topic involved */
        struct rc_publish up = {
            .type = type ? type : "message",
            .data = detach(j, "data"),
            .users = (char **)users,
            .nusers = nusers,
            .exclude_user = exclude,
        };
        struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
        rc_broker_publish_users(x->conn, &t, &up);
        goto out;
    }
    if (users) {
        rc_http_error(x, 400, "bad_value",
                      "\"user_ids\" addresses users without a topic; with a topic use "
                      "\"subscriber_ids\"");
        goto out;
    }
    if (!topic) {
        rc_http_error(x, 400, "missing_field", "publish needs \"topic\" (or \"user_ids\")");
        goto out;
    }
    if (rc_topic_validate(topic, strlen(topic), RC_TOPIC_NAME, &err) < 0) {
        rc_http_error(x, 400, "bad_topic", "%s", err.msg);
        goto out;
    }
    struct rc_publish pub = {
        .topic = topic,
        .topic_len = strlen(topic),
        .type = type ? type : "message",
        .data = detach(j, "data"),
        .client_key = key,
        .users = (char **)targets,
        .nusers = ntargets,
        .exclude_user = exclude,
    };
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_publish(x->conn, &t, &pub);
out:
    free(users);
    free(targets);
    json_decref(j);
}

/* Seed 001's event fields shared by /events and /events/broadcast. */
struct ev_fields {
    const char *event;
    json_t *data;
    const char *priority;
    json_int_t retry;
    const char *comment;
};

static bool parse_ev_fields(struct rc_http_ctx *x, json_t *j, struct ev_fields *f)
{
    memset(f, 0, sizeof(*f));
    if (!opt_string(x, j, "event", MAX_EVENT_TYPE, &f->event) ||
        !opt_string(x, j, "priority", 16, &f->priority) ||
        !opt_string(x, j, "comment", 1024, &f->comment))
        return false;
    if (!f->event) {
        rc_http_error(x, 400, "missing_field", "an event needs \"event\" (its type)");
        return false;
    }
    if (!valid_event_type(x, "event", f->event))
        return false;
    if (f->priority && strcmp(f->priority, "low") && strcmp(f->priority, "normal") &&
        strcmp(f->priority, "high") && strcmp(f->priority, "urgent")) {
        rc_http_error(x, 400, "bad_value", "\"priority\" must be one of low, normal, high, urgent");
        return false;
    }
    json_t *r = json_object_get(j, "retry");
    if (r && !json_is_null(r)) {
        if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 86400000) {
            rc_http_error(x, 400, "bad_value", "\"retry\" must be milliseconds, 0..86400000");
            return false;
        }
        f->retry = json_integer_value(r);
    }
    if (f->comment && strpbrk(f->comment, "\r\n")) {
        rc_http_error(x, 400, "bad_value", "\"comment\" must be one line");
        return false;
    }
    f->data = json_object_get(j, "data");
    return true;
}

static json_t *ev_echo(const struct ev_fields *f)
{
    json_t *e = json_object();
    json_object_set_new(e, "event", json_string(f->event));
    /* a private copy: the echo travels between shards */
    json_object_set_new(e, "data", f->data ? json_deep_copy(f->data) : json_null());
    json_object_set_new(e, "priority", json_string(f->priority ? f->priority : "normal"));
    if (f->retry)
        json_object_set_new(e, "retry", json_integer(f->retry));
    if (f->comment)
        json_object_set_new(e, "comment", json_string(f->comment));
    return e;
}

/* Build a broadcast evbuf with a shard-local id. */
static struct rc_evbuf *broadcast_evbuf(struct rc_shard *s, const struct ev_fields *f)
{
    static _Thread_local uint64_t counter;
    struct rc_evbuf *ev = rc_evbuf_new(1);
    if (!ev)
        return NULL;
    ev->kind = RC_EVENT_BROADCAST;
    snprintf(ev->id, sizeof(ev->id), "%s-b%u-%llu", s->srv->epoch_str, s->id,
             (unsigned long long)++counter);
    char extra[64];
    snprintf(extra, sizeof(extra), ",\"priority\":\"%s\"", f->priority ? f->priority : "normal");
    char pre[1100] = "";
    int n = 0;
    if (f->comment)
        n += snprintf(pre + n, sizeof(pre) - (size_t)n, ": %s\n", f->comment);
    if (f->retry)
        snprintf(pre + n, sizeof(pre) - (size_t)n, "retry: %lld\n", (long long)f->retry);
    if (rc_evbuf_encode(ev, f->event, f->data ? f->data : NULL, extra, pre[0] ? pre : NULL) < 0) {
        rc_evbuf_unref(ev);
        return NULL;
    }
    return ev;
}

static void h_events_create(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_PUBLISH))
        return;
    json_t *j = rc_api_body_object(x);
    if (!j)
        return;
    struct ev_fields f;
    const char *topic;
    struct rc_err err = {0};
    if (!parse_ev_fields(x, j, &f) || !opt_string(x, j, "topic", RC_TOPIC_MAX_LEN, &topic))
        goto out;
    if (topic) {
        if (rc_topic_validate(topic, strlen(topic), RC_TOPIC_NAME, &err) < 0) {
            rc_http_error(x, 400, "bad_topic", "%s", err.msg);
            goto out;
        }
        json_t *echo = ev_echo(&f);
        json_object_set_new(echo, "topic", json_string(topic));
        struct rc_publish pub = {
            .topic = topic,
            .topic_len = strlen(topic),
            .type = f.event,
            .data = f.data ? json_deep_copy(f.data) : json_null(),
            .echo = echo,
        };
        struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
        rc_broker_publish(x->conn, &t, &pub);
        goto out;
    }
    /* no topic: every connected WebSocket/SSE client gets it */
    struct rc_evbuf *ev = broadcast_evbuf(x->conn->shard, &f);
    if (!ev) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        goto out;
    }
    json_t *echo = ev_echo(&f);
    json_object_set_new(echo, "id", json_string(ev->id));
    char *txt = json_dumps(echo, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(echo);
    struct rc_ticket none = {.conn_id = x->conn->id, .kind = RC_TICKET_NONE};
    rc_broker_broadcast(x->conn, &none, ev); /* nobody waits for the count */
    if (txt)
        rc_http_json(x, 201, txt, strlen(txt));
    else
        rc_http_error(x, 503, "unavailable", "out of memory");
    free(txt);
out:
    json_decref(j);
}

static int id_list(struct rc_http_ctx *x, json_t *j, const char *name, uint64_t **out, size_t *n)
{
    json_t *arr = json_object_get(j, name);
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr)) {
        rc_http_error(x, 400, "bad_type", "\"%s\" must be an array of connection ids", name);
        return -EINVAL;
    }
    size_t cnt = json_array_size(arr);
    if (cnt > MAX_RECIPIENTS) {
        rc_http_error(x, 400, "bad_value", "\"%s\" has %zu ids; at most %d", name, cnt,
                      MAX_RECIPIENTS);
        return -EINVAL;
    }
    uint64_t *ids = calloc(cnt ? cnt : 1, sizeof(*ids));
    if (!ids) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) ||
            rc_conn_id_parse(json_string_value(v), json_string_length(v), &ids[i]) < 0) {
            free(ids);
            rc_http_error(x, 400, "bad_value",
                          "%s[%zu] is not a connection id (16 hex digits, as in the "
                          "\"connected\" message)",
                          name, i);
            return -EINVAL;
        }
    }
    *out = ids;
    *n = cnt;
    return 0;
}

static void h_events_broadcast(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_PUBLISH))
        return;
    json_t *j = rc_api_body_object(x);
    if (!j)
        return;
    struct ev_fields f;
    uint64_t *rec = NULL, *exc = NULL;
    size_t nrec = 0, nexc = 0;
    if (!parse_ev_fields(x, j, &f) || id_list(x, j, "recipients", &rec, &nrec) < 0 ||
        id_list(x, j, "exclude", &exc, &nexc) < 0)
        goto out;
    struct rc_evbuf *ev = broadcast_evbuf(x->conn->shard, &f);
    if (!ev) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        goto out;
    }
    if (json_object_get(j, "recipients") && !json_is_null(json_object_get(j, "recipients"))) {
        ev->recipients = rec;
        ev->nrecipients = nrec;
        rec = NULL;
    }
    ev->exclude = exc;
    ev->nexclude = nexc;
    exc = NULL;
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_broadcast(x->conn, &t, ev);
out:
    free(rec);
    free(exc);
    json_decref(j);
}

/* A decimal query value within [lo, hi]; false (answered) otherwise. */
static bool query_uint(struct rc_http_ctx *x, struct rc_slice v, const char *name, size_t lo,
                       size_t hi, size_t *out)
{
    char buf[16];
    if (v.n == 0 || v.n >= sizeof(buf))
        goto bad;
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    char *end;
    unsigned long l = strtoul(buf, &end, 10);
    if (*end || buf[0] == '-' || l < lo || l > hi)
        goto bad;
    *out = l;
    return true;
bad:
    rc_http_error(x, 400, "bad_query", "%s must be %zu..%zu", name, lo, hi);
    return false;
}

/* The topic named by the path after prefix (percent-decoded) into topic[];
 * its length, or 0 after answering 400 bad_topic. */
static size_t path_topic(struct rc_http_ctx *x, const char *prefix,
                         char topic[RC_TOPIC_MAX_LEN + 1])
{
    size_t pn = strlen(prefix);
    struct rc_slice enc = {x->req->path.p + pn, x->req->path.n - pn};
    ssize_t tn = rc_http_url_decode(enc, topic, RC_TOPIC_MAX_LEN + 1, false);
    struct rc_err err = {0};
    if (tn <= 0) {
        rc_http_error(x, 400, "bad_topic", "the path must name a topic: %s<topic>", prefix);
        return 0;
    }
    topic[tn] = '\0';
    if (rc_topic_validate(topic, (size_t)tn, RC_TOPIC_NAME, &err) < 0) {
        rc_http_error(x, 400, "bad_topic", "%s", err.msg);
        return 0;
    }
    return (size_t)tn;
}

static void h_stats(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_ADMIN))
        return;
    size_t limit = STATS_DEFAULT_LIMIT;
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v))
        if (rc_slice_eq(k, "limit") && !query_uint(x, v, "limit", 0, STATS_MAX_LIMIT, &limit))
            return;
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_stats(x->conn, &t, limit);
}

#define HISTORY_PREFIX "/api/realtime/history/"
#define PRESENCE_PREFIX "/api/realtime/presence/"
#define HISTORY_DEFAULT_LIMIT 100
#define HISTORY_MAX_LIMIT 10000

/* GET /api/realtime/history/{topic}?since=<event id>&limit=N */
static void h_history(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_PUBLISH))
        return;
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t tn = path_topic(x, HISTORY_PREFIX, topic);
    if (!tn)
        return;
    char since[RC_EVENT_ID_MAX + 1] = "";
    size_t limit = HISTORY_DEFAULT_LIMIT;
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v)) {
        if (rc_slice_eq(k, "since")) {
            ssize_t n = rc_http_url_decode(v, since, sizeof(since) - 1, true);
            if (n <= 0) {
                rc_http_error(x, 400, "bad_event_id", "since must be an event id such as abc-42");
                return;
            }
            since[n] = '\0';
        } else if (rc_slice_eq(k, "limit") &&
                   !query_uint(x, v, "limit", 1, HISTORY_MAX_LIMIT, &limit)) {
            return;
        }
    }
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_history(x->conn, &t, topic, tn, since[0] ? since : NULL, limit);
}

/* GET /api/realtime/presence/{topic}?offset=&limit= */
static void h_presence(struct rc_http_ctx *x)
{
    if (!api_allowed(x, RC_AUTH_SCOPE_PUBLISH))
        return;
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t tn = path_topic(x, PRESENCE_PREFIX, topic);
    if (!tn)
        return;
    if (!rc_broker_presence_enabled(x->conn->shard, topic, tn)) {
        rc_http_error(x, 404, "not_enabled",
                      "presence is not kept for %s; enable it with presence = true or a rule "
                      "with presence=true",
                      topic);
        return;
    }
    size_t offset = 0, limit = 100;
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v)) {
        if (rc_slice_eq(k, "offset") && !query_uint(x, v, "offset", 0, 10000000, &offset))
            return;
        if (rc_slice_eq(k, "limit") && !query_uint(x, v, "limit", 1, 1000, &limit))
            return;
    }
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_presence_list(x->conn, &t, topic, tn, offset, limit);
}

/* ---- routing ----------------------------------------------------------------------------- */

typedef void (*route_fn)(struct rc_http_ctx *x);

struct route {
    const char *path;
    route_fn get; /* GET and HEAD */
    route_fn post;
};

static const struct route routes[] = {
    {"/healthz", h_healthz, NULL},
    {"/api/realtime/ws", rc_ws_handle_upgrade, NULL},
    {"/api/v1/ws/realtime", rc_ws_handle_upgrade, NULL},
    {"/api/realtime/events", rc_sse_handle, h_events_create},
    {"/api/realtime/events/broadcast", NULL, h_events_broadcast},
    {"/api/realtime/publish", NULL, h_publish},
    {"/api/realtime/stats", h_stats, NULL},
    {"/api/v1/stats", h_stats, NULL},
};

/* A GET-only resource: run h, or answer 405 naming the path. */
static void get_only(struct rc_http_ctx *x, const char *path, void (*h)(struct rc_http_ctx *))
{
    if (x->req->method == RC_HTTP_GET || x->req->method == RC_HTTP_HEAD) {
        h(x);
        return;
    }
    char body[200];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"use GET on %s\"}}",
                     path);
    rc_http_respond(x, 405, "application/json", "Allow: GET, HEAD\r\n", body, (size_t)n);
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

void rc_api_route(struct rc_http_ctx *x)
{
    const struct rc_http_request *req = x->req;
    note_forwarded(x);
    if (rc_api_store_route(x))
        return;
    if (req->path.n > sizeof(PRESENCE_PREFIX) - 1 &&
        memcmp(req->path.p, PRESENCE_PREFIX, sizeof(PRESENCE_PREFIX) - 1) == 0) {
        get_only(x, PRESENCE_PREFIX "{topic}", h_presence);
        return;
    }
    if (req->path.n > sizeof(HISTORY_PREFIX) - 1 &&
        memcmp(req->path.p, HISTORY_PREFIX, sizeof(HISTORY_PREFIX) - 1) == 0) {
        get_only(x, HISTORY_PREFIX "{topic}", h_history);
        return;
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        if (!rc_slice_eq(req->path, r->path))
            continue;
        if ((req->method == RC_HTTP_GET || req->method == RC_HTTP_HEAD) && r->get) {
            r->get(x);
            return;
        }
        if (req->method == RC_HTTP_POST && r->post) {
            r->post(x);
            return;
        }
        char allow[64];
        snprintf(allow, sizeof(allow), "Allow: %s%s%s\r\n", r->get ? "GET, HEAD" : "",
                 r->get && r->post ? ", " : "", r->post ? "POST" : "");
        char body[256];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%.*s is not "
                         "allowed on %s; use %s%s%s\"}}",
                         (int)(req->method_str.n > 16 ? 16 : req->method_str.n), req->method_str.p,
                         r->path, r->get ? "GET" : "", r->get && r->post ? " or " : "",
                         r->post ? "POST" : "");
        rc_http_respond(x, 405, "application/json", allow, body, (size_t)n);
        return;
    }
    char body[160];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint; see "
                     "docs/API.md\"}}");
    rc_http_json(x, 404, body, (size_t)n);
}
