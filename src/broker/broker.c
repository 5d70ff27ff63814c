/* broker.c - the broker's lifecycle, its engine table and the public entry
 * points that route through it (see broker.h; the memory engine's parts are
 * in broker_topic.c, broker_history.c and broker_gather.c, subscriptions and
 * delivery in broker_sub.c). */
#include <errno.h>
#include <stdlib.h>

#include "ringcast/broker.h"
#include "ringcast/presence.h"
#include "ringcast/shard.h"
#include "ringcast/trie.h"

#include "broker_internal.h"

/* ---- engines ------------------------------------------------------------------------- */

/* Topic owner shards inside this process: a topic's order point is the shard
 * xxh3(topic) % nshards, reached through the inboxes. */
const struct rc_broker_engine_ops rc_broker_memory_engine = {
    .name = "memory",
    .publish = brk_mem_publish,
    .publish_users = brk_mem_publish_users,
    .broadcast = brk_mem_broadcast,
    .subscribed = brk_mem_subscribed,
    .unsubscribed = brk_mem_unsubscribed,
    .resume = brk_mem_resume,
    .history = brk_mem_history,
    .presence_list = brk_mem_presence_list,
    .stats = brk_mem_stats,
};

static const struct rc_broker_engine_ops *engine_of(const struct rc_conn *c)
{
    return c->shard->broker->engine;
}

void rc_broker_publish(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub)
{
    engine_of(c)->publish(c, t, pub);
}

void rc_broker_publish_users(struct rc_conn *c, const struct rc_ticket *t, struct rc_publish *pub)
{
    engine_of(c)->publish_users(c, t, pub);
}

void rc_broker_broadcast(struct rc_conn *c, const struct rc_ticket *t, struct rc_evbuf *ev)
{
    engine_of(c)->broadcast(c, t, ev);
}

int rc_broker_resume(struct rc_conn *c, struct rc_sub *sub, const struct rc_sub_opts *o,
                     struct rc_err *err)
{
    return engine_of(c)->resume(c, sub, o, err);
}

void rc_broker_history(struct rc_conn *c, const struct rc_ticket *t, const char *topic, size_t n,
                       const char *since, size_t limit)
{
    engine_of(c)->history(c, t, topic, n, since, limit);
}

void rc_broker_presence_list(struct rc_conn *c, const struct rc_ticket *t, const char *topic,
                             size_t n, size_t offset, size_t limit)
{
    engine_of(c)->presence_list(c, t, topic, n, offset, limit);
}

void rc_broker_stats(struct rc_conn *c, const struct rc_ticket *t, const struct rc_stats_query *q)
{
    engine_of(c)->stats(c, t, q);
}

void rc_broker_metrics(struct rc_conn *c, const struct rc_ticket *t, const char *extra)
{
    brk_mem_metrics(c, t, extra); /* the shards of this node, whatever the engine */
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int rc_broker_init(struct rc_shard *s)
{
    struct rc_broker *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->shard = s;
    /* broker = redis: rc_broker_cluster_open made the node's bridge */
    b->engine = s->srv->cluster ? &rc_broker_redis_engine : &rc_broker_memory_engine;
    b->trie = rc_trie_new();
    if (!b->trie) {
        free(b);
        return -ENOMEM;
    }
    rc_pool_init(&b->sub_pool, sizeof(struct rc_sub), 256, 0);
    b->presence = rc_presence_new(0);
    if (!b->presence) {
        rc_trie_free(b->trie);
        free(b);
        return -ENOMEM;
    }
    s->broker = b;
    return 0;
}

void rc_broker_fini(struct rc_shard *s)
{
    struct rc_broker *b = s->broker;
    if (!b)
        return;
    brk_topics_fini(b);
    rc_trie_free(b->trie);
    rc_presence_free(b->presence);
    rc_pool_fini(&b->sub_pool);
    free(b);
    s->broker = NULL;
}
