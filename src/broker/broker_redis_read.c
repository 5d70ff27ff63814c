/* broker_redis_read.c - the cluster engine's reads through Redis (see
 * broker_redis.c for threads and ownership): resume (since, Last-Event-ID,
 * include_initial, SSE stream positions), GET /history, and presence (this
 * node's counts sent to the bridge, listings read from Redis). Shard threads
 * only; answers arrive as struct rpost posts (broker_internal.h). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/broker.h"
#include "ringcast/log.h"
#include "ringcast/presence.h"
#include "ringcast/redis_bridge.h"
#include "ringcast/server.h"
#include "ringcast/shard.h"
#include "ringcast/timer.h"
#include "ringcast/topic.h"

#include "broker_internal.h"

/* ---- history reads: resume, include_initial, GET /history ----------------------------------- */

/* The entries of a read as resume items (evbufs without posts), oldest first,
 * skipping those older than ttl_ms. *n gets the count. NULL when there are
 * none or memory ran out (*n = 0 then). */
static struct rc_resume_item *read_items(const struct rc_redis_req *req, uint64_t ttl_ms, size_t *n)
{
    *n = 0;
    if (!req->nentries)
        return NULL;
    struct rc_resume_item *items = calloc(req->nentries, sizeof(*items));
    if (!items)
        return NULL;
    uint64_t now = rc_wall_ms();
    for (size_t i = 0; i < req->nentries; i++) {
        const struct rc_redis_entry *e = &req->entries[i];
        if (ttl_ms && e->at_ms && e->at_ms + ttl_ms < now)
            continue;
        struct rc_slice type = {e->type, strlen(e->type)}, data = {e->data, strlen(e->data)},
                        tg = {e->targeting, strlen(e->targeting)};
        struct rc_evbuf *ev =
            brk_redis_evbuf(req->topic, req->topic_len, req->epoch, e->seq, type, data, tg, 0);
        if (!ev)
            continue;
        items[*n].seq = e->seq;
        items[*n].ev = ev;
        (*n)++;
    }
    return items;
}

/* How a read answers a cursor (after, of epoch cursor_epoch; "" = no cursor). */
static enum rc_history_result read_result(const struct rc_redis_req *req, const char *cursor,
                                          uint64_t after, const struct rc_resume_item *items,
                                          size_t n)
{
    if (cursor[0]) {
        uint64_t a;
        if (!req->epoch[0])
            return after == 0 ? RC_HISTORY_OK : RC_HISTORY_GAP; /* no state: nothing to miss */
        if (rc_event_cursor(cursor, strlen(cursor), req->epoch, &a, NULL) != 0)
            return RC_HISTORY_GAP; /* the topic's history was lost since */
    }
    if (after != UINT64_MAX && after > req->seq)
        return RC_HISTORY_FUTURE;
    if (after == UINT64_MAX || after == req->seq)
        return RC_HISTORY_OK;
    if (!n || items[0].seq > after + 1)
        return RC_HISTORY_GAP; /* trimmed (MAXLEN, TTL) */
    return RC_HISTORY_OK;
}

int brk_redis_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    struct brk_resume_plan
        plan; /* include_initial on a pattern: refused by rc_broker_resume_check */
    if (brk_resume_setup(c, sub, o, 1, &plan, err) < 0)
        return -EINVAL;
    if (!plan.active)
        return 0;
    struct rc_history_cfg hc = brk_history_cfg(s, sub->pattern);
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_READ, sub->pattern, sub->pattern_len);
    struct rpost *p = req ? brk_rpost_new(c, RP_RESUME, req) : NULL;
    if (!p) {
        rc_redis_req_free(req);
        brk_resume_failed(sub);
        return 0;
    }
    memcpy(p->sub_id, sub->id, sizeof(p->sub_id));
    p->plan = plan;
    p->ttl_ms = hc.ttl_ms;
    if (plan.mode == RC_RESUME_INITIAL) {
        req->after = UINT64_MAX;
        req->count = 1;
    } else {
        req->after = plan.after;
        req->count = plan.from_now ? 0 : RC_HISTORY_SIZE_MAX;
    }
    /* after the channel's confirmation: later events arrive live, and the
     * held "subscribed" answer goes out before what the read returns */
    req->wait_subscribed = true;
    brk_redis_submit(s, req);
    return 0;
}

void brk_redis_resume_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_sub *sub = brk_find_sub(c, p->sub_id);
    if (!sub || !sub->resume)
        return;
    struct rc_redis_req *req = p->req;
    if (req->status >= 400) {
        rc_log(RC_LOG_WARN, "redis_read_failed", "topic=\"%.64s\" reason=\"%s\"", req->topic,
               req->why);
        brk_resume_failed(sub);
        return;
    }
    size_t n = 0;
    struct rc_resume_item *items = read_items(req, p->ttl_ms, &n);
    if (p->plan.mode == RC_RESUME_INITIAL) {
        rc_resume_initial(sub->resume, items, n);
    } else if (p->plan.from_now) {
        brk_resume_from_now(c, sub, req->seq, req->epoch[0] ? req->epoch : RC_EPOCH_NONE);
    } else {
        enum rc_history_result res = read_result(req, p->plan.cursor, p->plan.after, items, n);
        rc_resume_answer(sub->resume, res, items, n, req->seq);
        if (sub->resume_done && req->epoch[0]) {
            /* this node may not have delivered up to req->seq yet: keep
             * dropping what the replay already sent (history.h, linger) */
            sub->resume_done = false;
            sub->resume->linger = true;
            memcpy(sub->resume->linger_epoch, req->epoch, sizeof(req->epoch));
        }
    }
    rc_resume_items_release(items, n);
    free(items);
    if (sub->resume_done)
        brk_resume_finish(sub);
}

void brk_redis_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                       const char *since, size_t limit)
{
    struct rc_shard *s = c->shard;
    uint64_t after = UINT64_MAX; /* the last `limit` */
    if (!brk_history_since(c, t, since, &after))
        return;
    struct rpost *p = brk_rpost_for(c, t, RP_HISTORY, RC_REDIS_READ, topic, n);
    if (!p)
        return;
    struct rc_redis_req *req = p->req;
    p->limit = limit;
    if (since)
        snprintf(p->plan.cursor, sizeof(p->plan.cursor), "%s", since);
    p->plan.after = after;
    p->ttl_ms = brk_history_cfg(s, req->topic).ttl_ms;
    req->after = after;
    req->count = limit > RC_HISTORY_SIZE_MAX ? RC_HISTORY_SIZE_MAX : (uint32_t)limit;
    brk_redis_submit(s, req);
}

void brk_redis_history_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (brk_rpost_failed(c, p))
        return;
    size_t n = 0;
    struct rc_resume_item *items = read_items(req, p->ttl_ms, &n);
    enum rc_history_result res = read_result(req, p->plan.cursor, p->plan.after, items, n);
    json_t *events = json_array();
    for (size_t i = 0; events && res == RC_HISTORY_OK && i < n && i < p->limit; i++) {
        struct rc_evbuf *ev = items[i].ev;
        json_array_append_new(events, json_pack("{s:s, s:s, s:O}", "id", ev->id, "type",
                                                ev->type ? ev->type : "message", "data", ev->data));
    }
    rc_resume_items_release(items, n);
    free(items);
    char *txt = events ? brk_history_page(req->topic, req->topic_len, events,
                                          req->epoch[0] ? req->epoch : RC_EPOCH_NONE, req->seq, res)
                       : NULL;
    if (txt)
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){.status = 200, .json = txt, .len = strlen(txt)});
    else
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    free(txt);
}

/* ---- presence -------------------------------------------------------------------------------- */

/* A user's key in the cluster's presence: "u:<id>", or "a:<connection>@<node>"
 * for an anonymous connection (connection ids are per node). */
void brk_redis_presence(struct rc_shard *s, struct rc_slice topic, struct rc_slice user,
                        uint64_t conn)
{
    struct rc_broker_cluster *k = s->srv->cluster;
    uint32_t n = rc_presence_user_connections(s->broker->presence, topic, user, conn);
    struct rc_redis_req *req = rc_redis_req_new(RC_REDIS_PRESENCE, topic.p, topic.n);
    json_t *data = json_object();
    char idbuf[RC_CONN_ID_HEX + 1], key[RC_PRESENCE_USER_MAX + 40];
    json_object_set_new(data, "topic", json_stringn(topic.p, topic.n));
    if (user.n) {
        json_object_set_new(data, "user_id", json_stringn(user.p, user.n));
        snprintf(key, sizeof(key), "u:%.*s", (int)user.n, user.p);
    } else {
        rc_conn_id_format(conn, idbuf);
        json_object_set_new(data, "user_id", json_null());
        json_object_set_new(data, "connection_id", json_string(idbuf));
        snprintf(key, sizeof(key), "a:%s@%s", idbuf, k->node_id);
    }
    if (req) {
        req->data = json_dumps(data, JSON_COMPACT);
        req->key = strdup(key);
    }
    json_decref(data);
    if (!req || !req->data || !req->key) {
        rc_log(RC_LOG_WARN, "presence_lost", "topic=\"%.*s\" reason=oom", (int)topic.n, topic.p);
        rc_redis_req_free(req);
        return;
    }
    struct rc_history_cfg hc = brk_history_cfg(s, req->topic);
    req->maxlen = hc.size ? hc.size : hc.retain ? 1 : 0;
    req->key_ttl_ms = s->cfg->topic_idle_timeout ? s->cfg->topic_idle_timeout + hc.ttl_ms : 0;
    req->after = n;
    brk_redis_submit(s, req);
}

void brk_redis_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                             size_t n, size_t offset, size_t limit)
{
    struct rpost *p = brk_rpost_for(c, t, RP_PRESENCE, RC_REDIS_PRESENCE_LIST, topic, n);
    if (!p)
        return;
    p->offset = offset;
    p->limit = limit;
    brk_redis_submit(c->shard, p->req);
}

void brk_redis_presence_answer(struct rc_conn *c, struct rpost *p)
{
    struct rc_redis_req *req = p->req;
    if (brk_rpost_failed(c, p))
        return;
    json_t *users = json_array();
    json_int_t conns = 0;
    for (size_t i = 0; i < req->nentries; i++) {
        const struct rc_redis_entry *e = &req->entries[i];
        conns += (json_int_t)e->seq;
        if (i < p->offset || i - p->offset >= p->limit)
            continue;
        json_t *o = json_object();
        if (strncmp(e->type, "u:", 2) == 0) {
            json_object_set_new(o, "user_id", json_string(e->type + 2));
        } else {
            json_t *d = json_loads(e->data, 0, NULL);
            json_object_set_new(o, "user_id", json_null());
            json_object_set(o, "connection_id", json_object_get(d, "connection_id"));
            json_decref(d);
        }
        json_object_set_new(o, "connections", json_integer((json_int_t)e->seq));
        json_array_append_new(users, o);
    }
    json_t *body = json_pack("{s:s, s:o, s:I, s:I}", "topic", req->topic, "users", users,
                             "total_users", (json_int_t)req->nentries, "total_connections", conns);
    if (body && p->offset + p->limit < req->nentries)
        json_object_set_new(body, "next_offset", json_integer((json_int_t)(p->offset + p->limit)));
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (txt)
        rc_conn_answer(c, &p->ticket,
                       &(struct rc_answer){
                           .status = 200, .type = "presence", .json = txt, .len = strlen(txt)});
    else
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    free(txt);
}
