/* trie.h - the compiled filter trie: one shard's subscriptions, indexed by
 * topic pattern and by filter predicate, matched per event in time about
 * (trie nodes visited + predicates satisfied + matches), independent of the
 * subscriptions that do not match.
 * Owner: one shard thread. No locks, no atomics: never share a trie.
 *
 * Structure: a node per pattern token; exact children in a hash table keyed by
 *   XXH3_64bits(token) (collisions resolved by comparing the token), plus a '*'
 *   child and a '>' child. A node where patterns end holds a filter set: the
 *   subscriptions there are grouped by canonical filter (rc_filter_canonical),
 *   one interned entry per distinct filter with the list of its subscriptions
 *   (subscriptions without a filter share the entry of {}). Each entry owns a
 *   clone of its filter; rc_trie_add never keeps the caller's filter.
 * Predicate index (per node, per path): $eq and each $in value are postings in
 *   a hash table keyed by rc_fval_hash(value); $gt/$gte/$lt/$lte sit in sorted
 *   arrays per (type, operator) and a match walks the satisfied prefix or
 *   suffix after one binary search; $exists true/false are posting lists.
 * Counting: an entry matches when every positive predicate ($eq $in ranges
 *   $exists) was counted for this event and no negated one ($ne $nin) failed.
 *   Each entry keeps (count, epoch): a stale epoch means count 0, so nothing is
 *   reset per event. Negations are postings too, keyed by the negated value: a
 *   $ne/$nin is satisfied unless the event's value equals one of its values,
 *   so the matcher first looks up the event's value among the negated postings
 *   and marks those entries killed for this epoch (cost = postings hit), then
 *   counts positives. Entries with no positive predicate ({} or only $ne/$nin)
 *   sit on a per-node list and match unless killed, so walking that list costs
 *   matches + kills, never non-matching work.
 * Paths: every referenced path is interned once per trie; per event it is
 *   resolved in data at most once (epoch-stamped cache), on first use.
 * Costs: rc_trie_add/rc_trie_remove are O(pattern tokens + predicates of the
 *   filter) amortised, except that a range predicate's sorted-array insert or
 *   delete moves the tail of that array (memmove). rc_trie_match allocates
 *   nothing (rc_trie_stats.allocs does not move while matching).
 *   "Predicates satisfied" is literal: every satisfied predicate is counted
 *   even when another predicate of its filter fails, so a broad predicate
 *   shared by many filters ({"price": {"$lt": 1e9}, "id": k}) costs one count
 *   per such filter per event. Selective predicates keep the cost flat.
 * Lifetime: a subscription handle lives from rc_trie_add to rc_trie_remove or
 *   rc_trie_free. Benchmark before touching the matcher: bench_trie. */
#ifndef RINGCAST_TRIE_H
#define RINGCAST_TRIE_H

#include <jansson.h>

#include "ringcast/common.h"
#include "ringcast/filter.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_trie;
struct rc_trie_sub;

/* Called once per matching subscription (a connection with two matching
 * subscriptions gets two calls). It must not add to or remove from the trie. */
typedef void (*rc_trie_match_fn)(void *ctx, void *owner);

struct rc_trie_stats {
    size_t nodes;    /* trie nodes, root included */
    size_t subs;     /* subscriptions */
    size_t filters;  /* interned filter entries, match-all entries included */
    size_t paths;    /* distinct interned paths */
    size_t bytes;    /* bytes the trie allocated and holds (malloc overhead excluded) */
    uint64_t allocs; /* allocation calls so far (to check that matching makes none) */
};

/* NULL when out of memory. */
struct rc_trie *rc_trie_new(void);

/* Frees the trie and every subscription still in it (their handles die). */
void rc_trie_free(struct rc_trie *t);

/* Subscribe owner to pattern[0..n) (rc_topic_validate RC_TOPIC_PATTERN syntax)
 * narrowed by f (NULL or a filter without conditions matches every event).
 * f is cloned when its canonical form is new at that node, never kept.
 * Returns the handle, or NULL with err set: 400 "bad_topic" for a bad
 * pattern, 503 "no_memory" (the trie is then unchanged). */
struct rc_trie_sub *rc_trie_add(struct rc_trie *t, const char *pattern, size_t n,
                                const struct rc_filter *f, void *owner, struct rc_err *err);

/* Unsubscribe: drops the filter entry with its last subscription, empty index
 * structures and empty nodes. s is freed. */
void rc_trie_remove(struct rc_trie *t, struct rc_trie_sub *s);

/* Match a topic name (tokens as rc_topic_validate RC_TOPIC_NAME; an invalid
 * name, one with more than RC_TOPIC_MAX_TOKENS tokens included, matches
 * nothing) with its event data (may be NULL: no fields). Calls cb once per
 * matching subscription, in no particular order; returns the number of calls. */
size_t rc_trie_match(struct rc_trie *t, const char *topic, size_t n, const json_t *data,
                     rc_trie_match_fn cb, void *ctx);

void rc_trie_stats(const struct rc_trie *t, struct rc_trie_stats *out);

void *rc_trie_sub_owner(const struct rc_trie_sub *s);

/* The interned filter of s (shared with its equals at the same node), or NULL
 * when s matches every event on its pattern. */
const struct rc_filter *rc_trie_sub_filter(const struct rc_trie_sub *s);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_TRIE_H */
