/* trie_index.h - internals of the compiled filter trie shared by trie.c
 * (nodes, public API, matcher) and trie_index.c (allocation accounting, hash
 * tables, posting lists, interned paths, filter entries). Not a public API:
 * only those two files include it. The design is described in trie.h.
 * Owner: the shard thread that owns the trie. */
#ifndef RINGCAST_TRIE_INDEX_H
#define RINGCAST_TRIE_INDEX_H

#include "ringcast/filter.h"
#include "ringcast/trie.h"

struct rc_trie;

/* ---- open-addressing hash table of items with cached hashes -------------- */

/* Linear probing, load <= 3/4, backward-shift deletion (no tombstones). An
 * item is any pointer; the caller supplies the key equality. */
struct htab {
    uint64_t *hash;
    void **item;
    uint32_t mask; /* capacity - 1; capacity 0 when item == NULL */
    uint32_t len;
};

typedef bool (*htab_eq_fn)(const void *item, const void *key);

static inline size_t htab_cap(const struct htab *h)
{
    return h->item ? (size_t)h->mask + 1 : 0;
}

static inline void *htab_find(const struct htab *h, uint64_t hash, htab_eq_fn eq, const void *key)
{
    if (!h->item)
        return NULL;
    for (uint32_t i = (uint32_t)hash & h->mask;; i = (i + 1) & h->mask) {
        if (!h->item[i])
            return NULL;
        if (h->hash[i] == hash && eq(h->item[i], key))
            return h->item[i];
    }
}

/* ---- structures ----------------------------------------------------------- */

struct fent;

/* A posting: the entry and which of its value slots it is (for O(1) removal). */
struct post {
    struct fent *e;
    uint32_t slot;
};

struct pvec {
    struct post *v;
    uint32_t n, cap;
};

/* Range posting; the array is sorted by (value, entry address). */
struct rpost {
    const struct rc_fval *val; /* inside e's filter */
    struct fent *e;
};

/* A sorted run of at most RVEC_BLOCK range postings. */
struct rblk {
    struct rpost *v;
    uint32_t n, cap;
};

/* Range postings of one (path, type, operator) in (value, entry) order, kept
 * as a directory of sorted blocks (a two-level B-tree) so that an insert or
 * delete moves at most one block plus the directory, O(sqrt n) small moves,
 * never the whole array. Blocks are never empty. */
#define RVEC_BLOCK 256
struct rvec {
    struct rblk *b;
    uint32_t nb, cap; /* blocks in use, directory capacity */
    uint32_t n;       /* postings in all blocks */
};

/* A position in an rvec: block index and offset inside it. */
struct rpos {
    uint32_t blk, off;
};

/* Equality (or negation) postings of one value; owns a copy of the value. */
struct vbucket {
    struct pvec pv;
    struct rc_fval val;
    uint64_t hash;
    char bytes[];
};

enum { PATH_MISSING, PATH_SCALAR, PATH_OTHER };

/* An interned path with its per-event resolution cache. */
struct tpath {
    uint64_t hash;
    uint64_t epoch; /* resolution below is valid when == trie epoch */
    struct rc_fval v;
    uint64_t vhash;
    uint32_t len, refs;
    uint8_t state;
    char s[];
};

/* Predicate index of one path at one node. */
#define RANGE_CLASSES 2 /* numbers, strings */
#define RANGE_OPS 4     /* $gt $gte $lt $lte */
struct pidx {
    struct tpath *path;
    struct htab eq;    /* vbucket*: $eq and $in values */
    struct htab ne;    /* vbucket*: $ne and $nin values */
    struct rvec *rng;  /* [RANGE_CLASSES * RANGE_OPS] or NULL */
    struct pvec ex[2]; /* $exists false, true */
    uint32_t refs;     /* predicates referencing this index */
    uint32_t npos;     /* positive predicates referencing it */
    uint32_t nneg;     /* negated predicates referencing it */
};

/* An interned filter at a node with its subscriptions. */
struct fent {
    struct rc_filter *f; /* owned clone; NULL = match all */
    struct node *node;
    struct rc_trie_sub *subs;
    uint64_t epoch, kill_epoch;
    uint32_t count, npos, nsubs, nslots;
    size_t size;
    struct pidx **pp;  /* [npreds] */
    uint32_t *slotpos; /* [nslots + 1]; the last is the zero-list slot */
};

#define NOT_POSTED UINT32_MAX

/* The filter set of a node where patterns end. */
struct fset {
    struct htab ents;  /* fent* keyed by canonical hash */
    struct htab paths; /* pidx* keyed by tpath hash */
    struct pvec zero;  /* entries with no positive predicate */
    uint32_t nneg;     /* negated predicates in this set */
};

enum { NODE_ROOT, NODE_EXACT, NODE_STAR, NODE_FULL };

struct node {
    struct node *parent;
    struct htab kids;
    struct node *star, *full;
    struct fset *fs;
    uint64_t hash;
    uint32_t len;
    uint8_t kind;
    char tok[];
};

struct rc_trie_sub {
    struct fent *e;
    void *owner;
    struct rc_trie_sub *prev, *next;
};

struct rc_trie {
    struct node *root;
    struct htab paths; /* tpath* */
    uint64_t epoch;
    size_t nodes, subs, filters, bytes;
    uint64_t allocs;
};

static inline int rpost_cmp(const struct rpost *a, const struct rc_fval *val, const struct fent *e)
{
    int c = rc_fval_cmp(a->val, val);

    if (c)
        return c;
    return (uintptr_t)a->e < (uintptr_t)e ? -1 : (uintptr_t)a->e > (uintptr_t)e;
}

enum rvec_bound {
    RVEC_LOWER, /* first posting >= (val, e); e NULL: first with value >= val */
    RVEC_UPPER, /* first posting with value > val */
};

static inline bool rpost_before(const struct rpost *a, const struct rc_fval *val,
                                const struct fent *e, enum rvec_bound bound)
{
    if (bound == RVEC_UPPER)
        return rc_fval_cmp(a->val, val) <= 0;
    return rpost_cmp(a, val, e) < 0;
}

/* Binary search over the blocks' last postings, then inside one block.
 * {nb, 0} when every posting is before the bound. */
static inline struct rpos rvec_find(const struct rvec *r, const struct rc_fval *val,
                                    const struct fent *e, enum rvec_bound bound)
{
    uint32_t lo = 0, hi = r->nb;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct rblk *b = &r->b[mid];
        if (rpost_before(&b->v[b->n - 1], val, e, bound))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->nb)
        return (struct rpos){r->nb, 0};
    const struct rblk *b = &r->b[lo];
    uint32_t l = 0, h = b->n;
    while (l < h) {
        uint32_t mid = l + (h - l) / 2;
        if (rpost_before(&b->v[mid], val, e, bound))
            l = mid + 1;
        else
            h = mid;
    }
    return (struct rpos){lo, l};
}

/* ---- trie_index.c ------------------------------------------------------------- */

/* calloc / free with the trie's byte and allocation counters. */
void *rc_trie_alloc(struct rc_trie *t, size_t n);
void rc_trie_release(struct rc_trie *t, void *p, size_t n);

/* -ENOMEM leaves the table unchanged. */
int rc_trie_htab_insert(struct rc_trie *t, struct htab *h, uint64_t hash, void *item);
/* Remove the slot holding exactly item, which must be present. */
void rc_trie_htab_remove(struct rc_trie *t, struct htab *h, uint64_t hash, const void *item);
void rc_trie_htab_fini(struct rc_trie *t, struct htab *h);

/* Equal-value lookup for vbucket tables (key: const struct rc_fval *). */
bool rc_trie_vbucket_eq(const void *item, const void *key);

/* Filter-entry table key: canonical hash, NULL filter = "{}". */
bool rc_trie_fent_eq(const void *item, const void *key);
uint64_t rc_trie_filter_hash(const struct rc_filter *f);

/* Clone f, index every predicate in fs and add the entry to fs->ents; NULL
 * when out of memory (nothing is left behind). */
struct fent *rc_trie_fent_new(struct rc_trie *t, struct fset *fs, const struct rc_filter *f);
/* Remove every posting of e that is in place (partial indexing included). */
void rc_trie_fent_unindex(struct rc_trie *t, struct fset *fs, struct fent *e);
void rc_trie_fent_free(struct rc_trie *t, struct fent *e);
/* Free a filter set with all its entries, subscriptions and indexes at once
 * (rc_trie_free); the node's fs pointer is left dangling. */
void rc_trie_fset_destroy(struct rc_trie *t, struct fset *fs);

#endif /* RINGCAST_TRIE_INDEX_H */
