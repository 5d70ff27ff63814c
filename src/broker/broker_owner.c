/* broker_owner.c - what a subscription tells its topic's owner shard (memory
 * engine): presence (joins, leaves and listings), max_subscribers claims and
 * holds that keep a topic from the idle sweep; and the memory engine's
 * subscription hooks that send them (see broker.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/msg.h"
#include "ringcast/presence.h"
#include "ringcast/shard.h"
#include "ringcast/topic.h"
#include "ringcast/webhook.h"

#include "broker_internal.h"

/* ---- presence -------------------------------------------------------------------------- */

/* A presence message's trip: a subscriber shard tells the topic's owner of a
 * join or leave (one hop); a listing goes origin -> owner (rendered) ->
 * origin (answers the ticket). */
enum pres_kind { PRES_JOIN, PRES_LEAVE, PRES_LIST };

struct pres_post {
    struct rc_post post;
    bool done;
    enum pres_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id; /* JOIN/LEAVE: the member connection */
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t topic_len;
    char user[129]; /* "" = anonymous */
    /* LIST */
    struct rc_ticket ticket;
    size_t offset, limit;
    char *json;
};

static void pres_run(struct rc_shard *s, struct rc_post *p);
static void pres_discard(struct rc_post *p);

static bool presence_on(const struct rc_shard *s, const char *topic, size_t n)
{
    const struct rc_auth_rule *r = s->srv->auth ? rc_auth_rule_for(s->srv->auth, topic, n) : NULL;
    if (r && (r->set & RC_AUTH_RULE_PRESENCE))
        return r->presence;
    return s->cfg->presence;
}

static void pres_free(struct pres_post *p)
{
    free(p->json);
    free(p);
}

/* Subscriber shard: tell the owner that sub's connection joined or left. */
static void presence_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                          enum pres_kind kind)
{
    struct pres_post *p = calloc(1, sizeof(*p));
    if (!p)
        return; /* presence counts drift by one; nothing else breaks */
    p->post.run = pres_run;
    p->post.discard = pres_discard;
    p->kind = kind;
    p->origin = s;
    p->conn_id = c->id;
    memcpy(p->topic, sub->pattern, sub->pattern_len);
    p->topic_len = sub->pattern_len;
    /* leave with the identity the join used, even if the connection has
     * authenticated in between */
    if (kind == PRES_JOIN)
        memcpy(sub->presence_user, c->user_id, sizeof(sub->presence_user));
    memcpy(p->user, sub->presence_user, sizeof(p->user));
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv->nshards, p->topic, p->topic_len)],
                  &p->post);
}

static int list_user(void *ctx, const struct rc_presence_user *u)
{
    json_t *arr = ctx;
    json_t *o = json_object();
    if (u->user.p) {
        json_object_set_new(o, "user_id", json_stringn(u->user.p, u->user.n));
    } else {
        char idbuf[RC_CONN_ID_HEX + 1];
        rc_conn_id_format(u->conn, idbuf);
        json_object_set_new(o, "user_id", json_null());
        json_object_set_new(o, "connection_id", json_string(idbuf));
    }
    json_object_set_new(o, "connections", json_integer(u->connections));
    json_array_append_new(arr, o);
    return 0;
}

/* Owner shard: apply a join/leave (announcing the user's first/last
 * connection on the topic as an event) or render a listing. */
static void owner_presence(struct rc_shard *s, struct pres_post *p)
{
    struct rc_broker *b = B(s);
    struct rc_slice topic = {p->topic, p->topic_len};
    struct rc_slice user = {p->user, strlen(p->user)};
    if (p->kind == PRES_LIST) {
        json_t *users = json_array();
        size_t nu = 0, nc = 0, next = 0;
        rc_presence_count(b->presence, topic, &nu, &nc);
        rc_presence_list(b->presence, topic, p->offset, p->limit, list_user, users, &next);
        json_t *body =
            json_pack("{s:s%, s:o, s:I, s:I}", "topic", p->topic, p->topic_len, "users", users,
                      "total_users", (json_int_t)nu, "total_connections", (json_int_t)nc);
        if (body && next)
            json_object_set_new(body, "next_offset", json_integer((json_int_t)next));
        p->json = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        return;
    }
    bool changed = false;
    if (p->kind == PRES_JOIN) {
        if (rc_presence_join(b->presence, topic, user, p->conn_id, &changed) < 0)
            return;
    } else if (rc_presence_leave(b->presence, topic, user, p->conn_id, &changed) < 0) {
        return;
    }
    if (changed) {
        /* the user's first / last connection on the topic (on this node) */
        struct rc_webhook_event ev = {.type = p->kind == PRES_JOIN ? RC_WEBHOOK_PRESENCE_JOIN
                                                                   : RC_WEBHOOK_PRESENCE_LEAVE,
                                      .conn_id = p->conn_id,
                                      .user_id = p->user,
                                      .topic = p->topic,
                                      .topic_len = p->topic_len};
        rc_webhook_emit(s->srv->webhook, &ev);
    }
    if (b->engine == &rc_broker_redis_engine) {
        /* the cluster decides joined/left: this node tells it its count */
        brk_redis_presence(s, topic, user, p->conn_id);
        return;
    }
    if (!changed)
        return;
    struct topic_state *t = brk_topic_get(b, p->topic, p->topic_len);
    if (!t)
        return;
    json_t *data = json_object();
    json_object_set_new(data, "topic", json_stringn(p->topic, p->topic_len));
    if (user.n) {
        json_object_set_new(data, "user_id", json_string(p->user));
    } else {
        char idbuf[RC_CONN_ID_HEX + 1];
        rc_conn_id_format(p->conn_id, idbuf);
        json_object_set_new(data, "user_id", json_null());
        json_object_set_new(data, "connection_id", json_string(idbuf));
    }
    char id[RC_EVENT_ID_MAX];
    const char *type = p->kind == PRES_JOIN ? "presence.joined" : "presence.left";
    if (!brk_owner_fanout(s, t, type, &data, NULL, 0, NULL, id))
        json_decref(data);
}

/* Origin shard: answer a listing, then free p. */
static void presence_answer(struct rc_shard *s, struct pres_post *p)
{
    struct rc_conn *c = rc_shard_conn(s, p->ticket.conn_id);
    if (c && p->json)
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){
                .status = 200, .type = "presence", .json = p->json, .len = strlen(p->json)});
    else if (c)
        rc_conn_answer(
            c, &p->ticket,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
    pres_free(p);
}

static void pres_run(struct rc_shard *s, struct rc_post *post)
{
    struct pres_post *p = RC_CONTAINER_OF(post, struct pres_post, post);
    if (p->kind != PRES_LIST) {
        owner_presence(s, p);
        pres_free(p);
    } else if (p->done) {
        presence_answer(s, p);
    } else {
        owner_presence(s, p);
        p->done = true;
        rc_shard_post(p->origin, &p->post);
    }
}

static void pres_discard(struct rc_post *p)
{
    pres_free(RC_CONTAINER_OF(p, struct pres_post, post));
}

void brk_mem_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                           size_t n, size_t offset, size_t limit)
{
    struct rc_shard *s = c->shard;
    struct pres_post *p = calloc(1, sizeof(*p));
    if (!p || n > RC_TOPIC_MAX_LEN) {
        free(p);
        rc_conn_answer(
            c, t,
            &(struct rc_answer){.status = 503, .code = "unavailable", .msg = "out of memory"});
        return;
    }
    p->post.run = pres_run;
    p->post.discard = pres_discard;
    p->kind = PRES_LIST;
    p->origin = s;
    p->conn_id = c->id;
    memcpy(p->topic, topic, n);
    p->topic_len = n;
    p->ticket = *t;
    p->offset = offset;
    p->limit = limit;
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv->nshards, topic, n)], &p->post);
}

bool rc_broker_presence_enabled(const struct rc_shard *s, const char *topic, size_t n)
{
    return presence_on(s, topic, n);
}

/* ---- max_subscribers and holds: counted at the topic's owner ------------------------- */

/* Claims of a subscription slot at the owner (max_subscribers), and holds. */
enum claim_kind {
    CLAIM_TAKE,    /* max_subscribers: ask for a slot (answered) */
    CLAIM_RELEASE, /* give a slot back */
    CLAIM_HOLD,    /* an exact-topic subscription keeps the topic from eviction */
    CLAIM_UNHOLD,  /* ... no longer */
};

/* A claim's trip: subscriber shard -> owner; a CLAIM_TAKE goes back with the
 * owner's answer (done). */
struct claim_post {
    struct rc_post post;
    bool done;
    bool allowed;
    enum claim_kind kind;
    struct rc_shard *origin;
    uint64_t conn_id;
    char sub_id[RC_SUB_ID_LEN + 1];
    char topic[RC_TOPIC_MAX_LEN + 1];
    size_t topic_len;
    uint32_t limit;
};

static void claim_run(struct rc_shard *s, struct rc_post *post);

static void claim_discard(struct rc_post *p)
{
    free(RC_CONTAINER_OF(p, struct claim_post, post));
}

/* max_subscribers of the rule covering pattern, 0 = unlimited */
static uint32_t max_subscribers(const struct rc_shard *s, const char *pattern, size_t n)
{
    const struct rc_auth_rule *r = s->srv->auth ? rc_auth_rule_for(s->srv->auth, pattern, n) : NULL;
    return r && (r->set & RC_AUTH_RULE_MAX_SUBSCRIBERS) ? r->max_subscribers : 0;
}

static void claim_post(struct rc_shard *s, struct rc_sub *sub, struct rc_conn *c,
                       enum claim_kind kind)
{
    struct claim_post *p = calloc(1, sizeof(*p));
    if (!p) {
        if (kind == CLAIM_TAKE)
            sub->claim_pending = false; /* cannot ask: admit rather than block forever */
        return;
    }
    p->post.run = claim_run;
    p->post.discard = claim_discard;
    p->kind = kind;
    p->origin = s;
    p->conn_id = c->id;
    memcpy(p->sub_id, sub->id, sizeof(p->sub_id));
    memcpy(p->topic, sub->pattern, sub->pattern_len);
    p->topic_len = sub->pattern_len;
    p->limit = max_subscribers(s, sub->pattern, sub->pattern_len);
    rc_shard_post(s->srv->shards[rc_topic_owner(s->srv->nshards, p->topic, p->topic_len)],
                  &p->post);
}

/* Subscriber shard: the owner's answer to a claim. */
static void claim_answer(struct rc_shard *s, struct claim_post *p)
{
    struct rc_conn *c = rc_shard_conn(s, p->conn_id);
    struct rc_sub *sub = NULL;
    for (struct rc_sub *it = c ? c->subs : NULL; it; it = it->next_in_conn)
        if (strcmp(it->id, p->sub_id) == 0)
            sub = it;
    if (!sub) {
        /* the subscription is gone already: give the slot back */
        if (p->allowed) {
            p->kind = CLAIM_RELEASE;
            p->done = false;
            rc_shard_post(s->srv->shards[rc_topic_owner(s->srv->nshards, p->topic, p->topic_len)],
                          &p->post);
            return;
        }
        free(p);
        return;
    }
    sub->claim_pending = false;
    if (p->allowed) {
        sub->claimed = true;
        brk_sub_release_reply(c, sub); /* unless a cluster channel still waits */
        free(p);
        return;
    }
    char *reply = sub->pending_reply;
    sub->pending_reply = NULL;
    sub->channel_pending = false; /* it is removed: nothing waits any more */
    struct rc_ticket t = brk_sub_ticket(sub, c);
    brk_sub_ticket_done(sub);
    char msg[400];
    snprintf(msg, sizeof(msg),
             "subscription %s to %.*s removed: the topic has its maximum of %u subscribers "
             "(max_subscribers)",
             sub->id, (int)p->topic_len, p->topic, p->limit);
    s->ctr.forbidden++;
    rc_conn_answer(c, &t,
                   &(struct rc_answer){.status = 403, .code = "too_many_subscribers", .msg = msg});
    free(reply);
    rc_broker_unsubscribe_id(c, p->sub_id);
    free(p);
}

static void claim_run(struct rc_shard *s, struct rc_post *post)
{
    struct claim_post *p = RC_CONTAINER_OF(post, struct claim_post, post);
    if (p->done) {
        claim_answer(s, p);
        return;
    }
    if (p->kind == CLAIM_UNHOLD) {
        struct topic_state *t = brk_topic_find(B(s), p->topic, p->topic_len);
        if (t && t->holds && --t->holds == 0)
            t->last_ms = rc_now_ms(); /* idle from now */
        free(p);
        return;
    }
    struct topic_state *t = brk_topic_get(B(s), p->topic, p->topic_len);
    if (p->kind == CLAIM_HOLD) {
        if (t)
            t->holds++;
        free(p);
        return;
    }
    if (p->kind == CLAIM_RELEASE) {
        if (t && t->subscribers)
            t->subscribers--;
        free(p);
        return;
    }
    p->allowed = !t || !p->limit || t->subscribers < p->limit;
    if (t && p->allowed)
        t->subscribers++;
    p->done = true;
    rc_shard_post(p->origin, &p->post);
}

/* ---- the memory engine's subscription hooks -------------------------------------------- */

/* sub entered this shard's trie: tell the topic's owner (hold an exact
 * topic, join its presence, claim a max_subscribers slot). */
void brk_mem_subscribed(struct rc_conn *c, struct rc_sub *sub)
{
    struct rc_shard *s = c->shard;
    bool exact = !rc_topic_is_pattern(sub->pattern, sub->pattern_len);
    if (exact) {
        /* keeps the topic's state (seq, history) from the idle sweep */
        sub->held = true;
        claim_post(s, sub, c, CLAIM_HOLD);
    }
    if (exact && presence_on(s, sub->pattern, sub->pattern_len)) {
        sub->presence = true;
        presence_post(s, sub, c, PRES_JOIN);
    }
    if (max_subscribers(s, sub->pattern, sub->pattern_len)) {
        /* the owner decides; nothing is delivered until it says yes */
        sub->claim_pending = true;
        claim_post(s, sub, c, CLAIM_TAKE);
    }
}

/* sub is leaving this shard's trie: undo what brk_mem_subscribed told the owner. */
void brk_mem_unsubscribed(struct rc_conn *c, struct rc_sub *sub)
{
    struct rc_shard *s = c->shard;
    if (sub->presence)
        presence_post(s, sub, c, PRES_LEAVE);
    if (sub->claimed)
        claim_post(s, sub, c, CLAIM_RELEASE);
    if (sub->held)
        claim_post(s, sub, c, CLAIM_UNHOLD);
}
