/* redis_topics.c - the bridge's channel references and delivered offsets
 * (see redis_topics.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ringcast/redis_topics.h"

int rc_redis_topics_init(struct rc_redis_topics *t, size_t seen_max)
{
    memset(t, 0, sizeof(*t));
    t->cap = 64;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    t->seen_max = seen_max;
    return t->slots ? 0 : -ENOMEM;
}

void rc_redis_topics_free(struct rc_redis_topics *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            free(t->slots[i]->name);
            free(t->slots[i]);
        }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static size_t slot_of(const struct rc_redis_topics *t, const char *name, size_t len, uint64_t h)
{
    size_t k = h & (t->cap - 1);
    while (t->slots[k]) {
        const struct rc_redis_topic *e = t->slots[k];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return k;
        k = (k + 1) & (t->cap - 1);
    }
    return k;
}

struct rc_redis_topic *rc_redis_topics_find(struct rc_redis_topics *t, const char *name, size_t len)
{
    return t->slots[slot_of(t, name, len, XXH3_64bits(name, len))];
}

static int grow(struct rc_redis_topics *t)
{
    size_t ncap = t->cap * 2;
    struct rc_redis_topic **ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        struct rc_redis_topic *e = t->slots[i];
        if (!e)
            continue;
        size_t k = e->hash & (ncap - 1);
        while (ns[k])
            k = (k + 1) & (ncap - 1);
        ns[k] = e;
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* ---- the unreferenced entries' recency list ---- */

static void lru_unlink(struct rc_redis_topics *t, struct rc_redis_topic *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        t->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        t->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
    e->in_lru = false;
    t->unreferenced--;
}

static void lru_push(struct rc_redis_topics *t, struct rc_redis_topic *e)
{
    e->lru_prev = NULL;
    e->lru_next = t->lru_head;
    if (t->lru_head)
        t->lru_head->lru_prev = e;
    t->lru_head = e;
    if (!t->lru_tail)
        t->lru_tail = e;
    e->in_lru = true;
    t->unreferenced++;
}

/* Delete e's slot (backward-shift, no tombstones) and free e. */
static void remove_entry(struct rc_redis_topics *t, struct rc_redis_topic *e)
{
    size_t mask = t->cap - 1, i = slot_of(t, e->name, e->len, e->hash);
    t->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t k = t->slots[j]->hash & mask;
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (stays)
            continue;
        t->slots[i] = t->slots[j];
        t->slots[j] = NULL;
        i = j;
    }
    t->n--;
    free(e->name);
    free(e);
}

/* Keep the unreferenced entries within seen_max: forget the least recent. */
static void lru_trim(struct rc_redis_topics *t)
{
    while (t->unreferenced > t->seen_max && t->lru_tail) {
        struct rc_redis_topic *e = t->lru_tail;
        lru_unlink(t, e);
        remove_entry(t, e);
        t->forgotten++;
    }
}

static struct rc_redis_topic *get(struct rc_redis_topics *t, const char *name, size_t len)
{
    uint64_t h = XXH3_64bits(name, len);
    size_t k = slot_of(t, name, len, h);
    if (t->slots[k])
        return t->slots[k];
    if ((t->n + 1) * 2 > t->cap) {
        if (grow(t) < 0)
            return NULL;
        k = slot_of(t, name, len, h);
    }
    struct rc_redis_topic *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->name = strndup(name, len);
    if (!e->name) {
        free(e);
        return NULL;
    }
    e->len = len;
    e->hash = h;
    t->slots[k] = e;
    t->n++;
    return e;
}

int rc_redis_topics_ref(struct rc_redis_topics *t, const char *name, size_t len, bool *first)
{
    struct rc_redis_topic *e = get(t, name, len);
    if (!e)
        return -ENOMEM;
    if (e->in_lru)
        lru_unlink(t, e);
    *first = e->refs++ == 0;
    return 0;
}

int rc_redis_topics_unref(struct rc_redis_topics *t, const char *name, size_t len, bool *last)
{
    struct rc_redis_topic *e = rc_redis_topics_find(t, name, len);
    *last = false;
    if (!e || e->refs == 0)
        return -ENOENT;
    if (--e->refs == 0) {
        *last = true;
        lru_push(t, e);
        lru_trim(t);
    }
    return 0;
}

enum rc_redis_seen rc_redis_topics_seen(struct rc_redis_topics *t, const char *name, size_t len,
                                        const char *epoch, uint64_t seq, struct rc_redis_topic **ep)
{
    struct rc_redis_topic *e = rc_redis_topics_find(t, name, len);
    if (!e && t->seen_max) {
        e = get(t, name, len);
        if (e) {
            lru_push(t, e);
            lru_trim(t); /* may forget e itself only when seen_max is 0 (excluded above) */
        }
    } else if (e && e->in_lru && t->lru_head != e) {
        lru_unlink(t, e); /* the most recent now */
        lru_push(t, e);
    }
    *ep = e;
    if (!e || !e->known)
        return RC_REDIS_SEEN_NEW;
    if (strcmp(e->epoch, epoch) != 0)
        return RC_REDIS_SEEN_EPOCH;
    if (seq <= e->last)
        return RC_REDIS_SEEN_DUP;
    return seq == e->last + 1 ? RC_REDIS_SEEN_NEXT : RC_REDIS_SEEN_GAP;
}

void rc_redis_topics_delivered(struct rc_redis_topics *t, struct rc_redis_topic *e,
                               const char *epoch, uint64_t seq)
{
    (void)t;
    if (!e)
        return;
    size_t n = strnlen(epoch, RC_EPOCH_MAX - 1);
    memcpy(e->epoch, epoch, n);
    e->epoch[n] = '\0';
    e->last = seq;
    e->known = true;
}

void rc_redis_topics_each(struct rc_redis_topics *t,
                          void (*fn)(void *arg, const struct rc_redis_topic *e), void *arg)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            fn(arg, t->slots[i]);
}
