/* api_store_conn.c - the shard side of the live store API: the per-shard
 * user -> connections index, durable user subscriptions applied to a shard's
 * live connections (loaded at authentication, changed by the HTTP API,
 * removed at expiry), and live delivery of stored notifications. Runs on the
 * shard threads only, from the posts api_store_live.c sends (see api_store.h
 * for threads and flow). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_store_internal.h"
#include "ringcast/answer.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/conn.h"
#include "ringcast/log.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"

#define LOAD_PAGE 100u         /* durable subscriptions loaded per request at authentication */
#define LOAD_PAGES_MAX 10      /* so at most 1000 per user are applied to a connection */
#define HELD_CHANGES_MAX 4096u /* changes held per connection while its subscriptions load */

/* per-shard index of users' connections (see "per-shard index" below) */
static struct {
    json_t *map;
    size_t adds;
    /* lines a user can repeat on every connect: at most one per LIVE_LOG_MS
     * per shard (shard clock), with a count */
    struct rc_log_limit slow_log;    /* durable_load_slow */
    struct rc_log_limit refused_log; /* durable_subscription_refused */
    struct rc_log_limit failed_log;  /* durable_subscription_failed */
} g_users[RC_MAX_SHARDS];

#define LIVE_LOG_MS 10000u

int64_t rc_api_store_rec_time(const json_t *rec, const char *key)
{
    json_t *v = json_object_get(rec, key);
    int64_t ms = 0;
    if (json_is_string(v) &&
        rc_store_time_parse(json_string_value(v), json_string_length(v), &ms) == 0)
        return ms;
    return 0;
}

void rc_api_store_discard_notify(struct rc_post *p)
{
    struct rc_api_store_notify_post *n = RC_CONTAINER_OF(p, struct rc_api_store_notify_post, base);
    rc_evbuf_unref(n->ev);
    free(n);
}

void rc_api_store_discard_change(struct rc_post *p)
{
    struct rc_api_store_change_post *c = RC_CONTAINER_OF(p, struct rc_api_store_change_post, base);
    free(c->topic);
    free(c->filter);
    free(c);
}

void rc_api_store_index_reset(void)
{
    for (size_t i = 0; i < RC_MAX_SHARDS; i++) {
        json_decref(g_users[i].map);
        g_users[i].map = NULL;
        g_users[i].adds = 0;
        g_users[i].slow_log = (struct rc_log_limit){0};
        g_users[i].refused_log = (struct rc_log_limit){0};
        g_users[i].failed_log = (struct rc_log_limit){0};
    }
}

/* ---- per-shard index: user -> its authenticated WebSocket/SSE connections ------------- */

/* g_users[i].map (declared at the top): a JSON object mapping a user id to
 * an array of connection ids (integers); touched only by shard i's thread
 * (freed by rc_api_store_index_reset, from rc_api_store_stop once the shards have joined). A
 * connection is added when it authenticates and checked on every use: an id whose slot was closed
 * or reused, or whose connection is no longer open, drops out. A full sweep runs after as many
 * additions as there are users (plus 64), so stale entries stay bounded at amortised O(1) per
 * addition. Delivery to a user therefore costs O(that user's connections), not O(the shard's
 * connections). */

static bool indexed_conn_ok(const struct rc_conn *c, const char *user)
{
    return c && rc_conn_is_open(c) && c->authenticated && strcmp(c->user_id, user) == 0;
}

static void index_prune(struct rc_shard *s, json_t *ids, const char *user)
{
    for (size_t i = json_array_size(ids); i-- > 0;) {
        uint64_t id = (uint64_t)json_integer_value(json_array_get(ids, i));
        if (!indexed_conn_ok(rc_shard_conn(s, id), user))
            json_array_remove(ids, i);
    }
}

static void index_sweep(struct rc_shard *s, json_t *map)
{
    const char *key;
    json_t *ids;
    void *tmp;
    json_object_foreach_safe(map, tmp, key, ids)
    {
        index_prune(s, ids, key);
        if (json_array_size(ids) == 0)
            json_object_del(map, key);
    }
}

/* c just authenticated (WebSocket or SSE). */
static void index_add(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    if (s->id >= RC_MAX_SHARDS)
        return;
    json_t **map = &g_users[s->id].map;
    if (!*map && !(*map = json_object()))
        return;
    json_t *ids = json_object_get(*map, c->user_id);
    if (ids) {
        index_prune(s, ids, c->user_id);
    } else {
        ids = json_array();
        if (!ids || json_object_set_new(*map, c->user_id, ids) < 0)
            return; /* out of memory: this connection gets no live notifications */
    }
    if (json_array_append_new(ids, json_integer((json_int_t)c->id)) < 0)
        return;
    if (++g_users[s->id].adds >= json_object_size(*map) + 64) {
        index_sweep(s, *map);
        g_users[s->id].adds = 0;
    }
}

/* The (pruned) connection ids of user on s, or NULL. Valid until the next
 * index call on s. */
static json_t *index_conns(struct rc_shard *s, const char *user)
{
    json_t *ids = s->id < RC_MAX_SHARDS && g_users[s->id].map
                      ? json_object_get(g_users[s->id].map, user)
                      : NULL;
    if (ids)
        index_prune(s, ids, user);
    return ids;
}

/* ---- durable subscriptions on a shard's connections ------------------------------------- */

static json_t *announcement(const char *sub_id, const char *durable, const char *topic,
                            const char *reason)
{
    json_t *data = json_pack("{s:s, s:s}", "subscription", sub_id, "durable_subscription", durable);
    if (data && topic)
        json_object_set_new(data, "topic", json_string(topic));
    if (data && reason)
        json_object_set_new(data, "reason", json_string(reason));
    return data;
}

/* One record {type, data} to c (WebSocket message or SSE record); takes data. */
static void send_record(struct rc_conn *c, const char *type, json_t *data)
{
    if (!data)
        return;
    char *txt = json_dumps(data, JSON_COMPACT);
    struct rc_ticket t = rc_ticket_stream(c, NULL);
    rc_conn_answer(c, &t,
                   &(struct rc_answer){
                       .status = 200, .type = type, .json = txt, .len = txt ? strlen(txt) : 0});
    free(txt);
    json_decref(data);
}

static void announce(struct rc_conn *c, const char *type, const char *sub_id, const char *durable,
                     const char *topic, const char *reason)
{
    send_record(c, type, announcement(sub_id, durable, topic, reason));
}

/* A durable subscription is applied like a live subscribe of c's identity: the
 * rules may have changed since it was created (a restart with other rules, a
 * token with a narrower topics claim). false when refused: not applied, logged,
 * counted (durable_refused) and told to c as an error record naming it. */
static bool durable_allowed(struct rc_conn *c, const char *id, const char *topic)
{
    struct rc_err err = {0};
    if (rc_auth_check_subscribe(c->shard->srv->auth, c->identity, topic, strlen(topic), &err) == 0)
        return true;
    struct rc_shard *s = c->shard;
    uint64_t n;
    s->ctr.durable_refused++;
    if (s->id < RC_MAX_SHARDS &&
        rc_log_limit_take(&g_users[s->id].refused_log, s->now_ms, LIVE_LOG_MS, &n))
        rc_log(RC_LOG_WARN, "durable_subscription_refused",
               "id=%s user=\"%s\" conn=%016llx refused=%llu reason=\"%s\" (at most one line "
               "per 10 s per shard; counted in durable_refused)",
               id, c->user_id, (unsigned long long)c->id, (unsigned long long)n, err.msg);
    char msg[sizeof(err.msg) + 160];
    snprintf(msg, sizeof(msg),
             "durable subscription %s is not applied to this connection: %s; delete it or "
             "change the topic rules",
             id, err.msg);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "code", err.code ? err.code : "forbidden",
                             "message", msg, "durable_subscription", id, "topic", topic);
    send_record(c, "error", data);
    return false;
}

static bool live_conn_of(const struct rc_conn *c, const char *user)
{
    return rc_conn_is_open(c) && c->proto != RC_PROTO_HTTP && c->authenticated &&
           strcmp(c->user_id, user) == 0;
}

static void apply_sub(struct rc_conn *c, const char *id, const char *topic, const json_t *filter,
                      int64_t expires_ms)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn)
        if (strcmp(sub->durable_id, id) == 0)
            return; /* already applied (loaded and announced both) */
    if (expires_ms && expires_ms <= rc_api_store_wall_ms())
        return;
    if (!durable_allowed(c, id, topic))
        return;
    struct rc_err err = {0};
    struct rc_sub *sub = rc_broker_subscribe(c, topic, strlen(topic), filter, &err);
    if (!sub) {
        struct rc_shard *s = c->shard;
        uint64_t n;
        if (s->id < RC_MAX_SHARDS &&
            rc_log_limit_take(&g_users[s->id].failed_log, s->now_ms, LIVE_LOG_MS, &n))
            rc_log(RC_LOG_WARN, "durable_subscription_failed",
                   "id=%s user=\"%s\" failed=%llu reason=\"%s\" (at most one line per 10 s "
                   "per shard)",
                   id, c->user_id, (unsigned long long)n, err.msg);
        return;
    }
    snprintf(sub->durable_id, sizeof(sub->durable_id), "%s", id);
    if (sub->claim_pending && c->proto == RC_PROTO_WS) {
        /* max_subscribers: announced once the topic's owner admits it (or
         * refused with too_many_subscribers) */
        rc_broker_hold_reply(sub, NULL, announcement(sub->id, id, topic, NULL));
        return;
    }
    announce(c, "subscribed", sub->id, id, topic, NULL);
}

static void remove_sub(struct rc_conn *c, const char *id, const char *reason)
{
    for (struct rc_sub *sub = c->subs; sub; sub = sub->next_in_conn) {
        if (strcmp(sub->durable_id, id) != 0)
            continue;
        char sid[RC_SUB_ID_LEN + 1];
        memcpy(sid, sub->id, sizeof(sid));
        rc_broker_unsubscribe_id(c, sid);
        announce(c, "unsubscribed", sid, id, NULL, reason);
        return;
    }
}

static const char *const change_names[] = {"active", "paused", "deleted", "expired"};

static void change_conn(struct rc_conn *c, enum rc_api_store_change what, const char *id,
                        const char *topic, const json_t *filter, int64_t expires_ms)
{
    if (what == RC_API_STORE_CHG_APPLY)
        apply_sub(c, id, topic, filter, expires_ms);
    else
        remove_sub(c, id, change_names[what]);
}

/* While c's durable subscriptions load, a change committed meanwhile is held in
 * c->durable_changes and replayed after the pages (load_done), in commit order:
 * a page read before a delete shows the subscription, the delete then removes
 * it. false when it cannot be held (apply it now). */
static bool hold_change(struct rc_conn *c, const struct rc_api_store_change_post *ch)
{
    if (!c->durable_changes)
        return false;
    size_t held = json_array_size(c->durable_changes);
    if (held >= HELD_CHANGES_MAX) {
        /* past the cap: one line per connection (not one per change: the user
         * makes the changes), and a null that replay_changes tells the client of */
        if (held == HELD_CHANGES_MAX && json_array_append_new(c->durable_changes, json_null()) == 0)
            rc_log(RC_LOG_WARN, "durable_change_dropped",
                   "conn=%016llx user=\"%s\" id=%s (more than %u changes while loading; the "
                   "rest are not applied to this connection, which is told to reconnect)",
                   (unsigned long long)c->id, c->user_id, ch->id, HELD_CHANGES_MAX);
        return true;
    }
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s?, s:s?, s:I}", "what", (int)ch->what, "id", ch->id,
                            "user", ch->user, "topic", ch->topic, "filter", ch->filter, "expires",
                            (json_int_t)ch->expires_ms);
    return rec && json_array_append_new(c->durable_changes, rec) == 0;
}

static void replay_changes(struct rc_conn *c)
{
    json_t *held = c->durable_changes;
    c->durable_changes = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(held, i, rec)
    {
        if (json_is_null(rec)) { /* hold_change dropped the changes after this one */
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "more than %u changes to your durable subscriptions while they loaded; the "
                     "later ones are not applied to this connection: reconnect",
                     HELD_CHANGES_MAX);
            struct rc_ticket t = rc_ticket_stream(c, NULL);
            rc_conn_answer(c, &t,
                           &(struct rc_answer){.status = 503,
                                               .code = "durable_subscriptions_unavailable",
                                               .msg = msg});
            break;
        }
        const char *ftext = json_string_value(json_object_get(rec, "filter"));
        json_t *filter = ftext ? json_loads(ftext, 0, NULL) : NULL;
        change_conn(c, (enum rc_api_store_change)json_integer_value(json_object_get(rec, "what")),
                    json_string_value(json_object_get(rec, "id")),
                    json_string_value(json_object_get(rec, "topic")), filter,
                    json_integer_value(json_object_get(rec, "expires")));
        json_decref(filter);
    }
    json_decref(held);
}

void rc_api_store_run_change(struct rc_shard *s, struct rc_post *p)
{
    struct rc_api_store_change_post *ch = RC_CONTAINER_OF(p, struct rc_api_store_change_post, base);
    json_t *filter = ch->filter ? json_loads(ch->filter, 0, NULL) : NULL;
    json_t *ids = index_conns(s, ch->user);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        struct rc_conn *c = rc_shard_conn(s, (uint64_t)json_integer_value(json_array_get(ids, i)));
        if (!c || !live_conn_of(c, ch->user) || hold_change(c, ch))
            continue;
        change_conn(c, ch->what, ch->id, ch->topic, filter, ch->expires_ms);
    }
    json_decref(filter);
    rc_api_store_discard_change(p);
}

void rc_api_store_run_notify(struct rc_shard *s, struct rc_post *p)
{
    struct rc_api_store_notify_post *np = RC_CONTAINER_OF(p, struct rc_api_store_notify_post, base);
    struct rc_evbuf *ev = np->ev;
    uint64_t reached = 0;
    for (size_t u = 0; u < ev->nusers; u++) {
        /* recipients are distinct and a connection has one user: no duplicates */
        const char *user = ev->users[u];
        json_t *ids = index_conns(s, user);
        for (size_t i = 0; i < json_array_size(ids); i++) {
            struct rc_conn *c =
                rc_shard_conn(s, (uint64_t)json_integer_value(json_array_get(ids, i)));
            if (!c || !live_conn_of(c, user))
                continue;
            struct rc_image im = rc_event_image(c, ev, NULL);
            if (rc_conn_queue_evbuf(c, ev, im.p, im.len) == 0)
                reached++;
        }
    }
    s->ctr.deliveries += reached;
    rc_api_store_discard_notify(p);
}

static bool load_page(struct rc_shard *s, struct rc_api_store_wait *w)
{
    json_t *args = json_pack("{s:s, s:s, s:I, s:I}", "user_id", w->user, "status", "active", "page",
                             (json_int_t)w->page, "page_size", (json_int_t)LOAD_PAGE);
    return args && rc_api_store_submit(s, w, args);
}

bool rc_api_store_conn_authed(struct rc_conn *c, rc_api_store_ready_fn ready)
{
    struct rc_shard *s = c->shard;
    if (!c->authenticated || !c->user_id[0])
        return false;
    index_add(c);
    if (!s->srv->store || s->draining)
        return false;
    struct rc_api_store_wait *w = rc_api_store_wait_new(RC_API_STORE_P_LOAD, RC_STORE_SUB_LIST, c);
    if (!w)
        return false;
    w->page = 1;
    w->ready = ready;
    w->acc = json_array();
    snprintf(w->user, sizeof(w->user), "%s", c->user_id);
    if (!w->acc || !load_page(s, w)) {
        json_decref(w->acc);
        free(w);
        return false;
    }
    c->durable_changes = json_array(); /* NULL (out of memory): changes apply at once */
    return true;
}

void rc_api_store_greet_late(struct rc_conn *c)
{
    struct rc_shard *s = c->shard;
    s->ctr.durable_load_timeouts++;
    if (s->id >= RC_MAX_SHARDS)
        return;
    uint64_t late;
    if (!rc_log_limit_take(&g_users[s->id].slow_log, s->now_ms, LIVE_LOG_MS, &late))
        return;
    rc_log(RC_LOG_WARN, "durable_load_slow",
           "shard=%u conn=%016llx user=\"%s\" late=%llu waited_ms=%u (greeted without their "
           "durable subscriptions, which apply when the store answers; is the disk of data_dir "
           "slow?)",
           s->id, (unsigned long long)c->id, c->user_id, (unsigned long long)late,
           RC_API_STORE_GREET_WAIT_MS);
}

static void load_free(struct rc_api_store_wait *w)
{
    rc_store_req_free(w->req);
    json_decref(w->acc);
    free(w);
}

/* Every page is in (or the load failed): greet, then apply them all in this
 * same turn, so no event slips between the greeting and the subscriptions. */
static void load_done(struct rc_conn *c, struct rc_api_store_wait *w)
{
    w->ready(c);
    size_t i;
    json_t *rec;
    json_array_foreach(w->acc, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *topic = json_string_value(json_object_get(rec, "topic"));
        json_t *f = json_object_get(rec, "payload_filter");
        if (id && topic)
            apply_sub(c, id, topic, json_is_object(f) && json_object_size(f) ? f : NULL,
                      rc_api_store_rec_time(rec, "expires_at"));
    }
    replay_changes(c);
    load_free(w);
}

/* The answer to a load request (RC_API_STORE_P_LOAD), on its shard: keep the
 * page if c (NULL when gone) is still that user's live connection, then ask for
 * the next page or finish (load_done). Frees w (or resubmits it). */
void rc_api_store_load_answered(struct rc_shard *s, struct rc_api_store_wait *w, struct rc_conn *c)
{
    struct rc_store_req *req = w->req;
    if (!c || !live_conn_of(c, w->user)) {
        load_free(w);
        return;
    }
    if (req->status != 200) {
        /* debug: a failing store says so itself (store_commit_failed, rate-limited) */
        rc_log_debug("durable_subscriptions_unavailable",
                     "conn=%016llx user=\"%s\" status=%d reason=\"%s\"", (unsigned long long)c->id,
                     w->user, req->status, req->message);
        w->ready(c);
        char msg[RC_STORE_MSG_MAX + 128];
        snprintf(msg, sizeof(msg),
                 "your durable subscriptions could not be loaded (%s); they are not applied to "
                 "this connection: reconnect later",
                 req->message);
        struct rc_ticket t = rc_ticket_stream(c, NULL);
        rc_conn_answer(c, &t,
                       &(struct rc_answer){
                           .status = 503, .code = "durable_subscriptions_unavailable", .msg = msg});
        replay_changes(c); /* what changed meanwhile is known: apply it */
        load_free(w);
        return;
    }
    bool more = req->total > (uint64_t)w->page * LOAD_PAGE && w->page < LOAD_PAGES_MAX;
    if (json_array_extend(w->acc, req->result) < 0)
        more = false; /* out of memory: apply what is in */
    rc_store_req_free(req);
    w->req = NULL;
    if (more) {
        w->page++;
        if (load_page(s, w))
            return;
    }
    load_done(c, w);
}
