/* api.c - the route table (every HTTP path, run by api_router.c) and the handlers of
 * /healthz, the publish API, the events API, stats, history, presence and the WebSocket /
 * SSE entry points (see docs/API.md; the store's handlers are in api_store.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api_router.h"
#include "ringcast/api.h"
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

/* Optional string field; false (err filled, a 400) on a wrong type or length. */
static bool opt_str(struct rc_err *err, json_t *obj, const char *name, size_t max, const char **out)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        rc_err_set(err, 400, "bad_type", "\"%s\" must be a string", name);
        return false;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > max) {
        rc_err_set(err, 400, "bad_value", "\"%s\" must be 1..%zu bytes, got %zu", name, max, n);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool event_type_ok(struct rc_err *err, const char *field, const char *t)
{
    for (const char *p = t; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            rc_err_set(err, 400, "bad_value",
                       "\"%s\" must be printable ASCII without spaces (e.g. record.created)",
                       field);
            return false;
        }
    }
    return true;
}

static bool answered(struct rc_http_ctx *x, const struct rc_err *err)
{
    rc_http_error(x, err->status, err->code, "%s", err->msg);
    return false;
}

static bool opt_string(struct rc_http_ctx *x, json_t *obj, const char *name, size_t max,
                       const char **out)
{
    struct rc_err err = {0};
    return opt_str(&err, obj, name, max, out) || answered(x, &err);
}

static bool valid_event_type(struct rc_http_ctx *x, const char *field, const char *t)
{
    struct rc_err err = {0};
    return event_type_ok(&err, field, t) || answered(x, &err);
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

static void h_healthz(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    if (x->conn->shard->draining) {
        static const char body[] = "{\"status\":\"draining\"}";
        rc_http_json(x, 503, body, sizeof(body) - 1);
        return;
    }
    char why[200];
    if (rc_broker_degraded(x->conn->shard, why, sizeof(why))) {
        /* still serving: connections stay, publishes answer 503 until it is back */
        json_t *j = json_pack("{s:s, s:s}", "status", "degraded", "reason", why);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (txt) {
            rc_http_json(x, 200, txt, strlen(txt));
            free(txt);
            return;
        }
    }
    static const char body[] = "{\"status\":\"ok\"}";
    rc_http_json(x, 200, body, sizeof(body) - 1);
}

#define MAX_USER_IDS 1000
#define MAX_USER_ID 128

/* A list of user ids (seed 004's subscriber_ids / user_ids): NULL when absent;
 * false (err filled) when malformed. *out points into j (valid while j lives). */
static bool user_list(struct rc_err *err, json_t *j, const char *name, const char ***out, size_t *n)
{
    json_t *arr = json_object_get(j, name);
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return true;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_USER_IDS) {
        rc_err_set(err, 400, "bad_value", "\"%s\" must be an array of 1..%d user ids", name,
                   MAX_USER_IDS);
        return false;
    }
    const char **ids = calloc(json_array_size(arr), sizeof(*ids));
    if (!ids) {
        rc_err_set(err, 503, "unavailable", "out of memory");
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > MAX_USER_ID) {
            free(ids);
            rc_err_set(err, 400, "bad_value", "%s[%zu] must be a user id of 1..%d bytes", name, i,
                       MAX_USER_ID);
            return false;
        }
        ids[i] = json_string_value(v);
    }
    *out = ids;
    *n = json_array_size(arr);
    return true;
}

/* One publication of POST /api/realtime/publish, checked; the lists point into
 * its JSON. */
struct pub_req {
    const char *topic, *type, *key, *exclude;
    const char **users, **targets;
    size_t nusers, ntargets;
};

static void pub_req_fini(struct pub_req *q)
{
    free(q->users);
    free(q->targets);
}

/* Check publication j. 0, or -EINVAL with err (a 400). */
static int pub_check(json_t *j, struct pub_req *q, struct rc_err *err)
{
    memset(q, 0, sizeof(*q));
    if (!json_is_object(j)) {
        rc_err_set(err, 400, "bad_type", "a publication must be a JSON object");
        return -EINVAL;
    }
    if (!opt_str(err, j, "topic", RC_TOPIC_MAX_LEN, &q->topic) ||
        !opt_str(err, j, "type", MAX_EVENT_TYPE, &q->type) ||
        !opt_str(err, j, "id", MAX_CLIENT_KEY, &q->key) ||
        !opt_str(err, j, "exclude_user_id", MAX_USER_ID, &q->exclude) ||
        !user_list(err, j, "subscriber_ids", &q->targets, &q->ntargets) ||
        !user_list(err, j, "user_ids", &q->users, &q->nusers) ||
        (q->type && !event_type_ok(err, "type", q->type)))
        return -EINVAL;
    if (q->topic && q->users) {
        rc_err_set(err, 400, "bad_value",
                   "\"user_ids\" addresses users without a topic; with a topic use "
                   "\"subscriber_ids\"");
        return -EINVAL;
    }
    if (!q->topic && !q->users) {
        rc_err_set(err, 400, "missing_field", "publish needs \"topic\" (or \"user_ids\")");
        return -EINVAL;
    }
    struct rc_err terr = {0};
    if (q->topic && rc_topic_validate(q->topic, strlen(q->topic), RC_TOPIC_NAME, &terr) < 0) {
        rc_err_set(err, 400, "bad_topic", "%s", terr.msg);
        return -EINVAL;
    }
    return 0;
}

/* Publish checked q (its data detached from j); the answer goes to t. */
static void pub_submit(struct rc_conn *c, const struct rc_ticket *t, struct pub_req *q, json_t *j)
{
    if (!q->topic) {
        /* an event for every connection of these users, no topic involved */
        struct rc_publish up = {
            .type = q->type ? q->type : "message",
            .data = detach(j, "data"),
            .users = (char **)q->users,
            .nusers = q->nusers,
            .exclude_user = q->exclude,
        };
        rc_broker_publish_users(c, t, &up);
        return;
    }
    struct rc_publish pub = {
        .topic = q->topic,
        .topic_len = strlen(q->topic),
        .type = q->type ? q->type : "message",
        .data = detach(j, "data"),
        .client_key = q->key,
        .users = (char **)q->targets,
        .nusers = q->ntargets,
        .exclude_user = q->exclude,
    };
    rc_broker_publish(c, t, &pub);
}

/* {"events":[...]}: each publication checked and published in order (one that
 * fails its check is answered in its place, the others go on), one answer
 * {"results":[...]} in the same order. */
static void publish_batch(struct rc_http_ctx *x, json_t *j)
{
    json_t *evs = json_object_get(j, "events");
    if (json_object_size(j) != 1) {
        rc_http_error(
            x, 400, "bad_value",
            "a batch is {\"events\":[...]} alone; put topic, type and data in each event");
        return;
    }
    size_t n = json_is_array(evs) ? json_array_size(evs) : 0;
    if (n == 0 || n > RC_HTTP_PARTS_MAX) {
        rc_http_error(x, 400, "bad_value", "\"events\" must be an array of 1..%d publications",
                      RC_HTTP_PARTS_MAX);
        return;
    }
    uint32_t serial = rc_http_defer_parts(x, (uint32_t)n);
    if (!serial)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get(evs, i);
        struct pub_req q;
        struct rc_err err = {0};
        if (pub_check(ev, &q, &err) == 0) {
            struct rc_ticket t = rc_ticket_http_part(x->conn, serial, (uint32_t)i);
            pub_submit(x->conn, &t, &q, ev);
        } else {
            rc_http_part_error(x->conn, serial, (uint32_t)i, err.status, err.code, err.msg);
        }
        pub_req_fini(&q);
    }
}

static void h_publish(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *j = r->body;
    if (json_object_get(j, "events")) {
        publish_batch(x, j);
        return;
    }
    struct pub_req q;
    struct rc_err err = {0};
    if (pub_check(j, &q, &err) == 0) {
        struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
        pub_submit(x->conn, &t, &q, j);
    } else {
        rc_http_error(x, err.status, err.code, "%s", err.msg);
    }
    pub_req_fini(&q);
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

static void h_events_create(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *j = r->body;
    struct ev_fields f;
    const char *topic;
    struct rc_err err = {0};
    if (!parse_ev_fields(x, j, &f) || !opt_string(x, j, "topic", RC_TOPIC_MAX_LEN, &topic))
        return;
    if (topic) {
        if (rc_topic_validate(topic, strlen(topic), RC_TOPIC_NAME, &err) < 0) {
            rc_http_error(x, 400, "bad_topic", "%s", err.msg);
            return;
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
        return;
    }
    /* no topic: every connected WebSocket/SSE client gets it */
    struct rc_evbuf *ev = broadcast_evbuf(x->conn->shard, &f);
    if (!ev) {
        rc_http_error(x, 503, "unavailable", "out of memory");
        return;
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

static void h_events_broadcast(struct rc_http_ctx *x, struct rc_route_req *r)
{
    json_t *j = r->body;
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

/* The topic named by enc, the path after prefix (percent-decoded) into topic[];
 * its length, or 0 after answering 400 bad_topic. */
static size_t path_topic(struct rc_http_ctx *x, struct rc_slice enc, const char *prefix,
                         char topic[RC_TOPIC_MAX_LEN + 1])
{
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

static void h_stats(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    struct rc_stats_query q = {.limit = STATS_DEFAULT_LIMIT};
    struct rc_slice rest = x->req->query, k, v;
    while (rc_http_query_next(&rest, &k, &v)) {
        if (rc_slice_eq(k, "limit") && !query_uint(x, v, "limit", 0, STATS_MAX_LIMIT, &q.limit))
            return;
        if (rc_slice_eq(k, "top") && !query_uint(x, v, "top", 0, RC_STATS_TOP_MAX, &q.top))
            return;
        if (rc_slice_eq(k, "user_id")) {
            ssize_t n = rc_http_url_decode(v, q.user_id, sizeof(q.user_id) - 1, true);
            if (n <= 0) {
                rc_http_error(x, 400, "bad_query",
                              "user_id must be a user id of 1..%zu bytes (percent-encoded)",
                              sizeof(q.user_id) - 1);
                return;
            }
            q.user_id[n] = '\0';
        }
        if (rc_slice_eq(k, "connection_id") && rc_conn_id_parse(v.p, v.n, &q.conn_id) < 0) {
            rc_http_error(x, 400, "bad_query",
                          "connection_id must be a connection id (16 hex digits, as in the "
                          "stats' \"connections\" map)");
            return;
        }
    }
    struct rc_ticket t = rc_ticket_http(x->conn, rc_http_defer(x));
    rc_broker_stats(x->conn, &t, &q);
}

#define HISTORY_PREFIX "/api/realtime/history/"
#define PRESENCE_PREFIX "/api/realtime/presence/"
#define HISTORY_DEFAULT_LIMIT 100
#define HISTORY_MAX_LIMIT 10000

/* GET /api/realtime/history/{topic}?since=<event id>&limit=N */
static void h_history(struct rc_http_ctx *x, struct rc_route_req *r)
{
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t tn = path_topic(x, r->tail, HISTORY_PREFIX, topic);
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
static void h_presence(struct rc_http_ctx *x, struct rc_route_req *r)
{
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t tn = path_topic(x, r->tail, PRESENCE_PREFIX, topic);
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

/* ---- the route table --------------------------------------------------------------------- */

/* A draining node takes no new streams: the client goes to another node. */
static bool refuse_draining(struct rc_http_ctx *x)
{
    if (!x->conn->shard->draining)
        return false;
    rc_http_error(x, 503, "draining",
                  "this node is shutting down; connect again (another node takes the connection)");
    return true;
}

static void h_ws(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    if (!refuse_draining(x))
        rc_ws_handle_upgrade(x);
}

static void h_sse(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    if (!refuse_draining(x))
        rc_sse_handle(x);
}

#define GET RC_ROUTE_GET
#define POST RC_ROUTE_POST
#define PATCH RC_ROUTE_PATCH
#define DELETE RC_ROUTE_DELETE
#define NOTIF "/api/realtime/notifications"
#define SUBS "/api/realtime/subscriptions"

/* Every HTTP path, in match order (see api_router.h): rows of one resource (same pattern)
 * are its methods; within an id prefix a literal row must precede a {param} row it shadows. */
const struct rc_route rc_api_routes[] = {
    {GET, "/healthz", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, h_healthz},
    {GET, "/api/realtime/ws", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_STREAM, h_ws},
    {GET, "/api/v1/ws/realtime", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_STREAM, h_ws},
    {GET, "/api/realtime/events", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_STREAM, h_sse},
    {POST, "/api/realtime/events", RC_SCOPE_PUBLISH, RC_BODY_JSON, 0, h_events_create},
    {POST, "/api/realtime/events/broadcast", RC_SCOPE_PUBLISH, RC_BODY_JSON, 0, h_events_broadcast},
    {POST, "/api/realtime/publish", RC_SCOPE_PUBLISH, RC_BODY_JSON, 0, h_publish},
    {GET, "/api/realtime/stats", RC_SCOPE_ADMIN, RC_BODY_NONE, 0, h_stats},
    {GET, "/admin", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, rc_api_dashboard_redirect},
    {GET, "/admin/", RC_SCOPE_PUBLIC, RC_BODY_NONE, 0, rc_api_dashboard_index},
    {GET, "/admin/{file}", RC_SCOPE_PUBLIC, RC_BODY_NONE, RC_ROUTE_TAIL, rc_api_dashboard_file},
    {GET, "/api/v1/stats", RC_SCOPE_ADMIN, RC_BODY_NONE, 0, h_stats},
    {GET, "/metrics", RC_SCOPE_ADMIN, RC_BODY_NONE, 0, rc_api_metrics},
    {POST, "/api/realtime/disconnect", RC_SCOPE_ADMIN, RC_BODY_JSON, 0, rc_api_admin_disconnect},
    {GET, HISTORY_PREFIX "{topic}", RC_SCOPE_PUBLISH, RC_BODY_NONE, RC_ROUTE_TAIL, h_history},
    {GET, PRESENCE_PREFIX "{topic}", RC_SCOPE_PUBLISH, RC_BODY_NONE, RC_ROUTE_TAIL, h_presence},

    {GET, NOTIF, RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0, rc_api_store_notif_list},
    {POST, NOTIF, RC_SCOPE_NOTIFY, RC_BODY_JSON, 0, rc_api_store_notif_create},
    {GET, NOTIF "/unread-count/{user_id}", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0,
     rc_api_store_notif_unread},
    {GET, NOTIF "/{id}", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0, rc_api_store_notif_get},
    {POST, NOTIF "/{id}/mark-read", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0,
     rc_api_store_notif_mark_read},

    {GET, SUBS, RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0, rc_api_store_sub_list},
    {POST, SUBS "/resource", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_JSON, 0,
     rc_api_store_sub_create_resource},
    {POST, SUBS "/topic", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_JSON, 0, rc_api_store_sub_create_topic},
    {GET, SUBS "/{id}", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0, rc_api_store_sub_get},
    {DELETE, SUBS "/{id}", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_NONE, 0, rc_api_store_sub_delete},
    {PATCH, SUBS "/{id}/status", RC_SCOPE_NOTIFY_OR_USER, RC_BODY_JSON, 0,
     rc_api_store_sub_set_status},
};
const size_t rc_api_nroutes = RC_ARRAY_LEN(rc_api_routes);

/* Stored objects are named by id: their paths are split and percent-decoded. */
const char *const rc_api_id_prefixes[] = {NOTIF, SUBS};
const size_t rc_api_nid_prefixes = RC_ARRAY_LEN(rc_api_id_prefixes);
