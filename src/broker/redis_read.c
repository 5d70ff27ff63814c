/* redis_read.c - the bridge's history reads: closing a gap (the entries a
 * topic's subscribers on this node missed), and RC_REDIS_READ: a topic's
 * position (epoch, last seq) and the entries of its stream after a cursor,
 * or its last entries, read atomically by one script. Reads for resume wait
 * until this node's SUBSCRIBE of the topic's channel is confirmed, so every
 * event after what the read returns arrives live (see redis_bridge.h). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_bridge_internal.h"

/* ---- closing a gap (catch-up after a reconnect or a missed message) -------------------------- */

/* A history read to close a gap: the entries after `after`, then the
 * message that showed the gap (if any; delivered when the history did not
 * cover it). */
struct catchup {
    struct instance *in;
    char *topic;
    size_t len;
    char *msg; /* the message that showed the gap (owned), or NULL */
    size_t msg_len;
};

static void catchup_free(struct catchup *k)
{
    free(k->topic);
    free(k->msg);
    free(k);
}

const redisReply *rdb_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* One stream entry as an event (views into the reply). false if malformed. */
bool rdb_entry_event(const redisReply *entry, struct rc_redis_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    ev->seq = rc_redis_entry_seq(entry->element[0]->str, entry->element[0]->len);
    const redisReply *f = entry->element[1];
    const redisReply *e = rdb_field(f, "e"), *t = rdb_field(f, "t"), *d = rdb_field(f, "d"),
                     *u = rdb_field(f, "u");
    if (!ev->seq || !e || !t || !d || e->type != REDIS_REPLY_STRING || e->len == 0 ||
        e->len >= sizeof(ev->epoch) || t->type != REDIS_REPLY_STRING ||
        d->type != REDIS_REPLY_STRING)
        return false;
    memcpy(ev->epoch, e->str, e->len);
    ev->type = (struct rc_slice){t->str, t->len};
    ev->data = (struct rc_slice){d->str, d->len};
    if (u && u->type == REDIS_REPLY_STRING)
        ev->targeting = (struct rc_slice){u->str, u->len};
    return true;
}

static void catchup_reply(void *arg, struct redisReply *r, const char *why)
{
    struct catchup *k = arg;
    struct instance *in = k->in;
    struct rc_redis_bridge *b = in->b;
    (void)why;
    if (r && r->type == REDIS_REPLY_ARRAY && rc_redis_topics_find(&in->topics, k->topic, k->len)) {
        for (size_t i = 0; i < r->elements; i++) {
            struct rc_redis_event ev;
            if (!rdb_entry_event(r->element[i], &ev)) {
                b->ctr.malformed++;
                continue;
            }
            struct rc_redis_topic *e2;
            enum rc_redis_seen s =
                rc_redis_topics_seen(&in->topics, k->topic, k->len, ev.epoch, ev.seq, &e2);
            if (s == RC_REDIS_SEEN_DUP)
                continue;
            if (s == RC_REDIS_SEEN_GAP && e2)
                b->ctr.gap_lost += ev.seq - e2->last - 1; /* trimmed before we read */
            if (s == RC_REDIS_SEEN_EPOCH)
                b->ctr.epochs++;
            b->ctr.gap_filled++;
            rdb_deliver(in, e2, k->topic, k->len, &ev);
        }
    }
    /* the message that showed the gap: a duplicate now, unless the history
     * did not hold it (no history kept, or the read failed) */
    if (k->msg) {
        struct rc_redis_event ev;
        struct rc_redis_topic *e2;
        if (rc_redis_event_parse(k->msg, k->msg_len, &ev) == 0) {
            enum rc_redis_seen s =
                rc_redis_topics_seen(&in->topics, k->topic, k->len, ev.epoch, ev.seq, &e2);
            if (s == RC_REDIS_SEEN_GAP) {
                b->ctr.gap_lost += ev.seq - e2->last - 1;
                rdb_deliver(in, e2, k->topic, k->len, &ev);
            } else if (s != RC_REDIS_SEEN_DUP) {
                rdb_deliver(in, e2, k->topic, k->len, &ev);
            }
        }
    }
    catchup_free(k);
}

/* Read the history of topic after `after` (then handle msg). false when the
 * read could not be sent (the caller delivers msg itself). */
bool rdb_catchup_start(struct instance *in, const char *topic, size_t len, uint64_t after,
                       const char *msg, size_t msg_len)
{
    struct catchup *k = calloc(1, sizeof(*k));
    if (!k)
        return false;
    k->in = in;
    k->len = len;
    k->topic = strndup(topic, len);
    if (msg) {
        k->msg = malloc(msg_len ? msg_len : 1);
        if (k->msg)
            memcpy(k->msg, msg, msg_len);
        k->msg_len = msg_len;
    }
    char key[RC_TOPIC_KEY_MAX], start[32], count[16];
    if (!k->topic || (msg && !k->msg) || rc_redis_key(key, sizeof(key), 'h', topic, len) < 0) {
        catchup_free(k);
        return false;
    }
    snprintf(start, sizeof(start), "(0-%llu", (unsigned long long)after);
    snprintf(count, sizeof(count), "%u", in->b->cfg.catchup_max);
    const char *argv[] = {"XRANGE", key, start, "+", "COUNT", count};
    if (rc_redis_conn_command(&in->cmd, 6, argv, NULL, catchup_reply, k) < 0) {
        catchup_free(k);
        return false;
    }
    in->b->ctr.gaps++;
    return true;
}

/* ---- reads for resume, include_initial and GET /history -------------------------------------- */

/* KEYS: rc:t:T, rc:h:T. ARGV: after seq or "last", count.
 * Returns {epoch or "", seq, entries}; "last" entries come newest first. */
static const char read_script[] =
    "local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')\n"
    "if not m[1] then return {'', 0, {}} end\n"
    "local n = tonumber(ARGV[2])\n"
    "local r = {}\n"
    "if n > 0 then\n"
    "  if ARGV[1] == 'last' then\n"
    "    r = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)\n"
    "  else\n"
    "    r = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', n)\n"
    "  end\n"
    "end\n"
    "return {m[1], tonumber(m[2]) or 0, r}\n";

static char *copy(struct rc_slice s)
{
    return strndup(s.p ? s.p : "", s.n);
}

/* Copy the entries of r (newest first when reversed) into req, oldest first.
 * false when out of memory. */
static bool take_entries(struct rc_redis_bridge *b, struct rc_redis_req *req, const redisReply *r,
                         bool reversed)
{
    if (!r->elements)
        return true;
    req->entries = calloc(r->elements, sizeof(*req->entries));
    if (!req->entries)
        return false;
    for (size_t k = 0; k < r->elements; k++) {
        const redisReply *entry = r->element[reversed ? r->elements - 1 - k : k];
        struct rc_redis_event ev;
        if (!rdb_entry_event(entry, &ev) || strcmp(ev.epoch, req->epoch) != 0) {
            b->ctr.malformed++;
            continue;
        }
        const redisReply *at = rdb_field(entry->element[1], "at");
        struct rc_redis_entry *e = &req->entries[req->nentries];
        e->seq = ev.seq;
        e->at_ms = at && at->type == REDIS_REPLY_STRING ? strtoull(at->str, NULL, 10) : 0;
        e->type = copy(ev.type);
        e->data = copy(ev.data);
        e->targeting = copy(ev.targeting);
        req->nentries++;
        if (!e->type || !e->data || !e->targeting)
            return false;
    }
    return true;
}

static void read_reply(void *arg, struct redisReply *r, const char *why)
{
    struct rc_redis_req *req = arg;
    struct rc_redis_bridge *b = req->bridge_;
    req->bridge_ = NULL;
    if (!r) {
        rdb_answer(b, req, 503, "broker_unavailable", why);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rdb_answer(b, req, 503, "broker_unavailable", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(req->epoch) ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_ARRAY) {
        rdb_answer(b, req, 503, "broker_unavailable", "an unexpected answer from redis");
        return;
    }
    memcpy(req->epoch, r->element[0]->str, r->element[0]->len);
    req->epoch[r->element[0]->len] = '\0';
    req->seq = (uint64_t)r->element[1]->integer;
    if (!take_entries(b, req, r->element[2], req->after == UINT64_MAX)) {
        rdb_answer(b, req, 503, "unavailable", "out of memory");
        return;
    }
    rdb_answer(b, req, 200, NULL, NULL);
}

void rdb_read_send(struct instance *in, struct rc_redis_req *req)
{
    struct rc_redis_bridge *b = in->b;
    if (!rc_redis_conn_ready(&in->cmd)) {
        char why[200];
        snprintf(why, sizeof(why), "redis %.60s is not connected (%.100s)", b->names[in->index],
                 in->cmd.last_error[0] ? in->cmd.last_error : "connecting");
        rdb_answer(b, req, 503, "broker_unavailable", why);
        return;
    }
    char m[RC_TOPIC_KEY_MAX], h[RC_TOPIC_KEY_MAX], after[24], count[16];
    if (rc_redis_key(m, sizeof(m), 't', req->topic, req->topic_len) < 0 ||
        rc_redis_key(h, sizeof(h), 'h', req->topic, req->topic_len) < 0) {
        rdb_answer(b, req, 503, "broker_unavailable", "topic name too long for a redis key");
        return;
    }
    if (req->after == UINT64_MAX)
        snprintf(after, sizeof(after), "last");
    else
        snprintf(after, sizeof(after), "%llu", (unsigned long long)req->after);
    snprintf(count, sizeof(count), "%u", req->count);
    const char *argv[] = {"EVAL", read_script, "2", m, h, after, count};
    req->bridge_ = b;
    int rc = rc_redis_conn_command(&in->cmd, 7, argv, NULL, read_reply, req);
    if (rc < 0) {
        req->bridge_ = NULL;
        rdb_answer(b, req, 503, "broker_unavailable",
                   rc == -ENOBUFS ? "too many commands in flight to redis" : "out of memory");
    }
}

void rdb_read(struct instance *in, struct rc_redis_req *req)
{
    struct rc_redis_topic *e =
        req->wait_subscribed ? rc_redis_topics_find(&in->topics, req->topic, req->topic_len) : NULL;
    if (e && e->refs && !e->confirmed && rc_redis_conn_ready(&in->cmd)) {
        req->parked_next = in->parked;
        in->parked = req;
        return;
    }
    rdb_read_send(in, req);
}

void rdb_read_unpark(struct instance *in, const char *topic, size_t len)
{
    struct rc_redis_req **pp = &in->parked;
    while (*pp) {
        struct rc_redis_req *req = *pp;
        if (req->topic_len == len && memcmp(req->topic, topic, len) == 0) {
            *pp = req->parked_next;
            req->parked_next = NULL;
            if (req->op == RC_REDIS_SUBSCRIBE)
                rdb_answer(in->b, req, 200, NULL, NULL); /* its channel is confirmed */
            else
                rdb_read_send(in, req);
        } else {
            pp = &req->parked_next;
        }
    }
}
