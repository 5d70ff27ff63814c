/* fuzz_match.c - filters and an event against the trie and the naive matcher.
 * Input: lines; every line but the last is a filter (at most 8), the last is
 * the event's data JSON. Each filter is subscribed under a few patterns; the
 * trie's matches (as a sorted multiset of owners) must equal the naive ones,
 * before and after removing every other subscription. */
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/topic.h"
#include "ringcast/trie.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILTERS 8
static const char *const patterns[] = {"t.x", "t.*", ">", "*.x"};
#define NPAT (sizeof(patterns) / sizeof(patterns[0]))
#define MAX_SUBS ((MAX_FILTERS + 1) * NPAT)

struct hits {
    size_t n;
    uintptr_t v[MAX_SUBS];
};

static void collect(void *ctx, void *owner)
{
    struct hits *h = ctx;
    if (h->n >= MAX_SUBS)
        abort(); /* more calls than subscriptions */
    h->v[h->n++] = (uintptr_t)owner;
}

static int cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void check(struct rc_trie *t, struct rc_filter **f, struct rc_trie_sub **subs, size_t nsubs,
                  const json_t *ev)
{
    static const char *const topics[] = {"t.x", "q.x", "t"};
    for (size_t k = 0; k < sizeof(topics) / sizeof(topics[0]); k++) {
        struct hits got = {0}, want = {0};
        const char *topic = topics[k];
        for (size_t i = 0; i < nsubs; i++) {
            const char *p = patterns[i % NPAT];
            if (subs[i] && rc_topic_match(p, strlen(p), topic, strlen(topic)) &&
                (!f[i / NPAT] || rc_filter_eval(f[i / NPAT], ev)))
                want.v[want.n++] = i;
        }
        size_t calls = rc_trie_match(t, topic, strlen(topic), ev, collect, &got);
        qsort(got.v, got.n, sizeof(got.v[0]), cmp);
        if (calls != got.n || got.n != want.n ||
            memcmp(got.v, want.v, got.n * sizeof(got.v[0])) != 0) {
            fprintf(stderr, "topic %s: trie %zu matches, naive %zu\n", topic, got.n, want.n);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_filter *f[MAX_FILTERS + 1] = {0};
    struct rc_trie_sub *subs[MAX_SUBS] = {0};
    const char *p = (const char *)data, *end = p + size;
    size_t nf = 0;
    json_error_t jerr;

    if (size > 8192)
        return 0;
    struct rc_trie *t = rc_trie_new();
    if (!t)
        return 0;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nf == MAX_FILTERS)
            break;
        struct rc_err err;
        if (rc_filter_parse_text(p, (size_t)(nl - p), NULL, &f[nf], &err))
            f[nf] = NULL; /* an uncompilable line subscribes without a filter */
        nf++;
        p = nl + 1;
    }
    f[nf++] = NULL; /* plus one subscription without a filter */
    json_t *ev = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    size_t nsubs = nf * NPAT;
    for (size_t i = 0; i < nsubs; i++) {
        struct rc_err err;
        subs[i] = rc_trie_add(t, patterns[i % NPAT], strlen(patterns[i % NPAT]), f[i / NPAT],
                              (void *)(uintptr_t)i, &err);
        if (!subs[i])
            abort();
    }
    check(t, f, subs, nsubs, ev);
    for (size_t i = 0; i < nsubs; i += 2) {
        rc_trie_remove(t, subs[i]);
        subs[i] = NULL;
    }
    check(t, f, subs, nsubs, ev);
    rc_trie_free(t);
    json_decref(ev);
    for (size_t i = 0; i < nf; i++)
        rc_filter_free(f[i]);
    return 0;
}
