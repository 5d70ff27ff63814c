/* limits.c - token bucket and per-address counter table. Contract in
 * include/ringcast/limits.h.
 *
 * The table is open addressing with linear probing at a load of at most one half, and
 * backward-shift deletion (no tombstones), so a lookup stops at the first empty slot and
 * removing an entry leaves the table as if it had never been inserted. The hash is XXH3
 * with a per-table random seed (getrandom), so remote clients cannot aim for one chain. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#include "ringcast/limits.h"

/* ---- token bucket ---------------------------------------------------------------- */

#define MILLI 1000u

void rc_bucket_init(struct rc_bucket *b, uint32_t rate, uint32_t burst, int64_t now_ms)
{
    b->rate = rate;
    b->burst = (rate > 0 && burst == 0) ? 1 : burst;
    b->milli = (uint64_t)b->burst * MILLI;
    b->last_ms = now_ms;
}

/* rate tokens/s = rate thousandths of a token per ms. */
static void refill(struct rc_bucket *b, int64_t now_ms)
{
    uint64_t cap = (uint64_t)b->burst * MILLI, add;

    if (now_ms <= b->last_ms)
        return; /* time went backwards or stood still: keep the later clock */
    uint64_t dt = (uint64_t)(now_ms - b->last_ms);
    b->last_ms = now_ms;
    if (b->milli >= cap)
        return;
    if (__builtin_mul_overflow(dt, (uint64_t)b->rate, &add) || add >= cap - b->milli)
        b->milli = cap;
    else
        b->milli += add;
}

bool rc_bucket_take(struct rc_bucket *b, int64_t now_ms, uint32_t n)
{
    if (b->rate == 0 || n == 0)
        return true;
    refill(b, now_ms);
    uint64_t need = (uint64_t)n * MILLI;
    if (b->milli < need)
        return false;
    b->milli -= need;
    return true;
}

uint32_t rc_bucket_tokens(struct rc_bucket *b, int64_t now_ms)
{
    if (b->rate == 0)
        return b->burst;
    refill(b, now_ms);
    return (uint32_t)(b->milli / MILLI);
}

/* ---- connection budget --------------------------------------------------------------- */

/* Memory order: relaxed everywhere. The counter guards nothing but itself: no other data is
 * published through it (a shard's connection is shard-local), so no acquire/release pairing
 * is needed; the compare-exchange alone makes "never above max" hold, because each take
 * moves used from a value it saw below max to that value plus one. A stale read at worst
 * costs one more loop turn. */
void rc_connbudget_init(struct rc_connbudget *b, uint32_t max)
{
    atomic_init(&b->used, 0);
    b->max = max;
}

bool rc_connbudget_take(struct rc_connbudget *b)
{
    unsigned cur = atomic_load_explicit(&b->used, memory_order_relaxed);
    do {
        if (cur >= b->max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&b->used, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void rc_connbudget_put(struct rc_connbudget *b)
{
    unsigned prev = atomic_fetch_sub_explicit(&b->used, 1, memory_order_relaxed);
    assert(prev > 0); /* a put without a take is our bug */
    (void)prev;
}

uint32_t rc_connbudget_used(struct rc_connbudget *b)
{
    return atomic_load_explicit(&b->used, memory_order_relaxed);
}

/* ---- keys ------------------------------------------------------------------------ */

int rc_ipkey_from_sockaddr(const struct sockaddr *sa, struct rc_ipkey *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        k->b[10] = 0xff;
        k->b[11] = 0xff;
        memcpy(&k->b[12], &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            memcpy(k->b, &in6->sin6_addr, 16);
        else
            memcpy(k->b, &in6->sin6_addr, 8); /* the /64 prefix */
        return 0;
    }
    return -EAFNOSUPPORT;
}

static bool key_is_v4(const struct rc_ipkey *k)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(k->b, prefix, sizeof(prefix)) == 0;
}

void rc_ipkey_format(const struct rc_ipkey *k, char *buf, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN];

    if (cap == 0)
        return;
    if (key_is_v4(k)) {
        if (!inet_ntop(AF_INET, &k->b[12], tmp, sizeof(tmp)))
            tmp[0] = '\0';
        snprintf(buf, cap, "%s", tmp);
        return;
    }
    if (!inet_ntop(AF_INET6, k->b, tmp, sizeof(tmp)))
        tmp[0] = '\0';
    snprintf(buf, cap, "%s/64", tmp);
}

/* ---- table ----------------------------------------------------------------------- */

struct slot {
    struct rc_ipkey key;
    uint32_t count;    /* 0 = empty slot */
    uint32_t hash;     /* low bits give the home slot; kept for backward-shift deletion */
    int64_t window_ms; /* rate use: start of the current one-second window */
};

struct rc_iptable {
    struct slot *slots;
    uint32_t mask; /* capacity - 1; capacity is a power of two >= 2 * bound */
    uint32_t bound;
    uint32_t size;
    uint64_t seed;
};

#define RATE_WINDOW_MS 1000

struct rc_iptable *rc_iptable_new(uint32_t bound, struct rc_err *err)
{
    struct rc_iptable *t;
    uint32_t cap = 2;

    if (bound == 0 || bound > RC_IPTABLE_MAX_BOUND) {
        rc_err_set(err, 500, "bad_limit", "per-IP table bound %u is out of range; use 1..%u", bound,
                   RC_IPTABLE_MAX_BOUND);
        return NULL;
    }
    while (cap < 2 * bound)
        cap *= 2;
    t = calloc(1, sizeof(*t));
    if (!t)
        goto nomem;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (!t->slots)
        goto out_free_t;
    t->mask = cap - 1;
    t->bound = bound;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t; /* weak, but never fails */
    return t;
out_free_t:
    free(t);
nomem:
    rc_err_set(err, 500, "nomem", "out of memory for a per-IP table of %u entries", bound);
    return NULL;
}

void rc_iptable_free(struct rc_iptable *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

static uint32_t hash_key(const struct rc_iptable *t, const struct rc_ipkey *k)
{
    return (uint32_t)XXH3_64bits_withSeed(k->b, sizeof(k->b), t->seed);
}

/* The slot holding k, or the empty slot where it would go. */
static uint32_t find(const struct rc_iptable *t, const struct rc_ipkey *k, uint32_t h)
{
    uint32_t i = h & t->mask;

    while (t->slots[i].count != 0 &&
           (t->slots[i].hash != h || memcmp(&t->slots[i].key, k, sizeof(*k)) != 0))
        i = (i + 1) & t->mask;
    return i;
}

/* Empty slot i and shift later entries of its run back so that every lookup still finds
 * them (Knuth vol. 3, algorithm R). */
static void remove_at(struct rc_iptable *t, uint32_t i)
{
    uint32_t j = i;

    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].count == 0)
            break;
        uint32_t home = t->slots[j].hash & t->mask;
        /* leave j alone if its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        t->slots[i] = t->slots[j];
        i = j;
    }
    memset(&t->slots[i], 0, sizeof(t->slots[i]));
    t->size--;
}

/* Insert k at empty slot i with count 1. -ENOSPC at the bound. */
static int insert_at(struct rc_iptable *t, uint32_t i, const struct rc_ipkey *k, uint32_t h,
                     int64_t window_ms)
{
    if (t->size >= t->bound)
        return -ENOSPC;
    t->slots[i].key = *k;
    t->slots[i].hash = h;
    t->slots[i].count = 1;
    t->slots[i].window_ms = window_ms;
    t->size++;
    return 0;
}

int rc_iptable_acquire(struct rc_iptable *t, const struct rc_ipkey *k, uint32_t limit)
{
    uint32_t h = hash_key(t, k), i = find(t, k, h);
    struct slot *s = &t->slots[i];

    if (s->count == 0)
        return insert_at(t, i, k, h, 0);
    if ((limit != 0 && s->count >= limit) || s->count == UINT32_MAX)
        return -EBUSY;
    s->count++;
    return 0;
}

bool rc_iptable_release(struct rc_iptable *t, const struct rc_ipkey *k)
{
    uint32_t h = hash_key(t, k), i = find(t, k, h);

    if (t->slots[i].count == 0)
        return false;
    if (--t->slots[i].count == 0)
        remove_at(t, i);
    return true;
}

int rc_iptable_rate_hit(struct rc_iptable *t, const struct rc_ipkey *k, int64_t now_ms,
                        uint32_t limit)
{
    if (limit == 0)
        return 0;
    uint32_t h = hash_key(t, k), i = find(t, k, h);
    struct slot *s = &t->slots[i];

    if (s->count == 0)
        return insert_at(t, i, k, h, now_ms);
    if (now_ms - s->window_ms >= RATE_WINDOW_MS) {
        s->window_ms = now_ms;
        s->count = 1;
        return 0;
    }
    if (s->count >= limit)
        return -EBUSY;
    s->count++;
    return 0;
}

size_t rc_iptable_rate_sweep(struct rc_iptable *t, int64_t now_ms)
{
    uint32_t start = 0, cap = t->mask + 1;
    size_t removed = 0;

    if (t->size == 0)
        return 0;
    /* Start just after an empty slot (one exists: load <= 1/2). Entries then only move
     * back into the slot being examined, so each is examined at least once. */
    while (t->slots[start].count != 0)
        start++;
    for (uint32_t n = 0; n < cap; n++) {
        uint32_t i = (start + 1 + n) & t->mask;
        while (t->slots[i].count != 0 && now_ms - t->slots[i].window_ms >= RATE_WINDOW_MS) {
            remove_at(t, i);
            removed++;
        }
    }
    return removed;
}

uint32_t rc_iptable_count(const struct rc_iptable *t, const struct rc_ipkey *k)
{
    uint32_t h = hash_key(t, k);
    return t->slots[find(t, k, h)].count;
}

size_t rc_iptable_size(const struct rc_iptable *t)
{
    return t->size;
}
