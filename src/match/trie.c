/* trie.c - the compiled filter trie: nodes, subscribe/unsubscribe and the
 * matcher (see trie.h for the design and costs; the predicate index lives in
 * trie_index.c). */
#include <errno.h>
#include <stdlib.h>

#include <xxhash.h>

#include "ringcast/topic.h"
#include "ringcast/trie.h"
#include "trie_index.h"

/* ---- nodes ----------------------------------------------------------------------- */

struct tok_key {
    const char *p;
    uint32_t n;
};

static bool node_eq(const void *item, const void *key)
{
    const struct node *nd = item;
    const struct tok_key *k = key;
    return nd->len == k->n && memcmp(nd->tok, k->p, k->n) == 0;
}

static bool node_is_empty(const struct node *nd)
{
    return !nd->fs && nd->kids.len == 0 && !nd->star && !nd->full;
}

/* Free empty nodes from nd up to (not including) the root. */
static void prune(struct rc_trie *t, struct node *nd)
{
    while (nd->kind != NODE_ROOT && node_is_empty(nd)) {
        struct node *parent = nd->parent;

        if (nd->kind == NODE_STAR)
            parent->star = NULL;
        else if (nd->kind == NODE_FULL)
            parent->full = NULL;
        else
            rc_trie_htab_remove(t, &parent->kids, nd->hash, nd);
        rc_trie_htab_fini(t, &nd->kids);
        rc_trie_release(t, nd, sizeof(*nd) + nd->len);
        t->nodes--;
        nd = parent;
    }
}

static struct node *node_new(struct rc_trie *t, struct node *parent, int kind, struct rc_slice tok)
{
    size_t len = kind == NODE_EXACT ? tok.n : 0;
    struct node *nd = rc_trie_alloc(t, sizeof(*nd) + len);

    if (!nd)
        return NULL;
    nd->parent = parent;
    nd->kind = (uint8_t)kind;
    nd->len = (uint32_t)len;
    memcpy(nd->tok, tok.p, len);
    t->nodes++;
    return nd;
}

static struct node *child_get(struct rc_trie *t, struct node *nd, struct rc_slice tok)
{
    struct node **slot = NULL, *c;

    if (tok.n == 1 && tok.p[0] == '*')
        slot = &nd->star;
    else if (tok.n == 1 && tok.p[0] == '>')
        slot = &nd->full;
    if (slot) {
        if (!*slot)
            *slot = node_new(t, nd, tok.p[0] == '*' ? NODE_STAR : NODE_FULL, tok);
        return *slot;
    }
    struct tok_key k = {tok.p, (uint32_t)tok.n};
    uint64_t hash = XXH3_64bits(tok.p, tok.n);
    if ((c = htab_find(&nd->kids, hash, node_eq, &k)))
        return c;
    if (!(c = node_new(t, nd, NODE_EXACT, tok)))
        return NULL;
    c->hash = hash;
    if (rc_trie_htab_insert(t, &nd->kids, hash, c)) {
        rc_trie_release(t, c, sizeof(*c) + c->len);
        t->nodes--;
        return NULL;
    }
    return c;
}

static void fset_release(struct rc_trie *t, struct node *nd)
{
    struct fset *fs = nd->fs;

    if (fs->ents.len)
        return;
    rc_trie_htab_fini(t, &fs->ents);
    rc_trie_htab_fini(t, &fs->paths);
    rc_trie_release(t, fs->zero.v, fs->zero.cap * sizeof(*fs->zero.v));
    rc_trie_release(t, fs, sizeof(*fs));
    nd->fs = NULL;
}

/* ---- public: lifetime, add, remove ------------------------------------------ */

struct rc_trie *rc_trie_new(void)
{
    struct rc_trie *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->bytes = sizeof(*t);
    t->root = node_new(t, NULL, NODE_ROOT, rc_slice_make("", 0));
    if (!t->root) {
        free(t);
        return NULL;
    }
    return t;
}

static struct rc_trie_sub *out_of_memory(struct rc_err *err)
{
    rc_err_set(err, 503, "no_memory", "subscribe: out of memory in the filter trie; retry later");
    return NULL;
}

struct rc_trie_sub *rc_trie_add(struct rc_trie *t, const char *pattern, size_t n,
                                const struct rc_filter *f, void *owner, struct rc_err *err)
{
    struct rc_slice tok[RC_TOPIC_MAX_TOKENS];
    struct node *nd = t->root;
    struct rc_trie_sub *s;
    struct fent *e;

    if (rc_topic_validate(pattern, n, RC_TOPIC_PATTERN, err))
        return NULL;
    size_t ntok = rc_topic_split(pattern, n, tok, RC_ARRAY_LEN(tok));
    if (f && f->npreds == 0)
        f = NULL;
    if (!(s = rc_trie_alloc(t, sizeof(*s))))
        return out_of_memory(err);
    for (size_t i = 0; i < ntok; i++) {
        struct node *c = child_get(t, nd, tok[i]);
        if (!c)
            goto fail;
        nd = c;
    }
    if (!nd->fs && !(nd->fs = rc_trie_alloc(t, sizeof(*nd->fs))))
        goto fail;
    e = htab_find(&nd->fs->ents, rc_trie_filter_hash(f), rc_trie_fent_eq, f);
    if (!e && !(e = rc_trie_fent_new(t, nd->fs, f)))
        goto fail_fs;
    e->node = nd;
    s->e = e;
    s->owner = owner;
    s->next = e->subs;
    if (e->subs)
        e->subs->prev = s;
    e->subs = s;
    e->nsubs++;
    t->subs++;
    return s;
fail_fs:
    fset_release(t, nd);
fail:
    prune(t, nd);
    rc_trie_release(t, s, sizeof(*s));
    return out_of_memory(err);
}

void rc_trie_remove(struct rc_trie *t, struct rc_trie_sub *s)
{
    struct fent *e = s->e;
    struct node *nd = e->node;

    if (s->prev)
        s->prev->next = s->next;
    else
        e->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    rc_trie_release(t, s, sizeof(*s));
    t->subs--;
    if (--e->nsubs)
        return;
    rc_trie_fent_unindex(t, nd->fs, e);
    rc_trie_htab_remove(t, &nd->fs->ents, rc_trie_filter_hash(e->f), e);
    rc_trie_fent_free(t, e);
    fset_release(t, nd);
    prune(t, nd);
}

/* Children of nd in walk order: cursor 0 is '*', 1 is '>', 2.. the kids table
 * slots. NULL when no child is left at or after *cursor. */
static struct node *next_child(struct node *nd, size_t *cursor)
{
    while (*cursor < 2 + htab_cap(&nd->kids)) {
        size_t i = (*cursor)++;
        struct node *c = i == 0 ? nd->star : i == 1 ? nd->full : nd->kids.item[i - 2];
        if (c)
            return c;
    }
    return NULL;
}

void rc_trie_free(struct rc_trie *t)
{
    /* Post-order walk with an explicit stack (depth <= tokens + root + '>'),
     * freeing each subtree wholesale: O(everything), no per-sub unlinking. */
    struct {
        struct node *nd;
        size_t cursor;
    } stack[RC_TOPIC_MAX_TOKENS + 2];
    size_t top = 0;

    if (!t)
        return;
    stack[top++] = (typeof(stack[0])){t->root, 0};
    while (top) {
        struct node *nd = stack[top - 1].nd;
        struct node *c = next_child(nd, &stack[top - 1].cursor);

        if (c) {
            stack[top++] = (typeof(stack[0])){c, 0};
            continue;
        }
        top--;
        if (nd->fs)
            rc_trie_fset_destroy(t, nd->fs);
        rc_trie_htab_fini(t, &nd->kids);
        rc_trie_release(t, nd, sizeof(*nd) + nd->len);
    }
    rc_trie_htab_fini(t, &t->paths);
    free(t);
}

void rc_trie_stats(const struct rc_trie *t, struct rc_trie_stats *out)
{
    *out = (struct rc_trie_stats){
        .nodes = t->nodes,
        .subs = t->subs,
        .filters = t->filters,
        .paths = t->paths.len,
        .bytes = t->bytes,
        .allocs = t->allocs,
    };
}

void *rc_trie_sub_owner(const struct rc_trie_sub *s)
{
    return s->owner;
}

const struct rc_filter *rc_trie_sub_filter(const struct rc_trie_sub *s)
{
    return s->e->f;
}

/* ---- matching (hot path: run bench_trie before and after changing it) ---------- */

struct matcher {
    struct rc_trie *t;
    const json_t *data;
    rc_trie_match_fn cb;
    void *ctx;
    size_t calls;
};

static void emit(struct matcher *m, const struct fent *e)
{
    for (const struct rc_trie_sub *s = e->subs; s; s = s->next)
        m->cb(m->ctx, s->owner);
    m->calls += e->nsubs;
}

static void bump(struct matcher *m, struct fent *e)
{
    if (e->epoch != m->t->epoch) {
        e->epoch = m->t->epoch;
        e->count = 0;
    }
    if (++e->count == e->npos && e->kill_epoch != m->t->epoch)
        emit(m, e);
}

static void bump_all(struct matcher *m, const struct post *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        bump(m, v[i].e);
}

static void bump_all_ranges(struct matcher *m, const struct rpost *v, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++)
        bump(m, v[i].e);
}

/* Count the postings of r before pos (prefix) or from pos on (suffix). */
static void bump_prefix(struct matcher *m, const struct rvec *r, struct rpos pos)
{
    for (uint32_t k = 0; k < pos.blk; k++)
        bump_all_ranges(m, r->b[k].v, 0, r->b[k].n);
    if (pos.blk < r->nb)
        bump_all_ranges(m, r->b[pos.blk].v, 0, pos.off);
}

static void bump_suffix(struct matcher *m, const struct rvec *r, struct rpos pos)
{
    if (pos.blk < r->nb)
        bump_all_ranges(m, r->b[pos.blk].v, pos.off, r->b[pos.blk].n);
    for (uint32_t k = pos.blk + 1; k < r->nb; k++)
        bump_all_ranges(m, r->b[k].v, 0, r->b[k].n);
}

static const struct tpath *resolve(struct matcher *m, struct tpath *p)
{
    if (p->epoch == m->t->epoch)
        return p;
    p->epoch = m->t->epoch;
    const json_t *j = rc_filter_path_get(m->data, p->s, p->len);
    if (!j) {
        p->state = PATH_MISSING;
    } else if (rc_fval_from_json(j, &p->v)) {
        p->state = PATH_SCALAR;
        p->vhash = rc_fval_hash(&p->v);
    } else {
        p->state = PATH_OTHER;
    }
    return p;
}

static void match_ranges(struct matcher *m, const struct pidx *px, const struct rc_fval *v)
{
    if (!px->rng || (v->type != RC_FVAL_NUM && v->type != RC_FVAL_STR))
        return;
    const struct rvec *r = &px->rng[(v->type == RC_FVAL_NUM ? 0 : 1) * RANGE_OPS];
    const struct rvec *gt = &r[0], *gte = &r[1], *lt = &r[2], *lte = &r[3];

    /* value > c for the c below v; value >= c up to v; and symmetrically. */
    if (gt->n)
        bump_prefix(m, gt, rvec_find(gt, v, NULL, RVEC_LOWER));
    if (gte->n)
        bump_prefix(m, gte, rvec_find(gte, v, NULL, RVEC_UPPER));
    if (lt->n)
        bump_suffix(m, lt, rvec_find(lt, v, NULL, RVEC_UPPER));
    if (lte->n)
        bump_suffix(m, lte, rvec_find(lte, v, NULL, RVEC_LOWER));
}

static void match_positive(struct matcher *m, struct pidx *px)
{
    const struct tpath *p = resolve(m, px->path);
    const struct pvec *ex = &px->ex[p->state != PATH_MISSING];

    bump_all(m, ex->v, ex->n);
    if (p->state != PATH_SCALAR)
        return;
    const struct vbucket *b = htab_find(&px->eq, p->vhash, rc_trie_vbucket_eq, &p->v);
    if (b)
        bump_all(m, b->pv.v, b->pv.n);
    match_ranges(m, px, &p->v);
}

static void match_fset(struct matcher *m, struct fset *fs)
{
    uint64_t epoch = m->t->epoch;

    if (fs->nneg) {
        for (size_t i = 0; i < htab_cap(&fs->paths); i++) {
            struct pidx *px = fs->paths.item[i];
            if (!px || !px->nneg)
                continue;
            const struct tpath *p = resolve(m, px->path);
            if (p->state != PATH_SCALAR)
                continue;
            const struct vbucket *b = htab_find(&px->ne, p->vhash, rc_trie_vbucket_eq, &p->v);
            for (uint32_t k = 0; b && k < b->pv.n; k++)
                b->pv.v[k].e->kill_epoch = epoch;
        }
    }
    for (uint32_t i = 0; i < fs->zero.n; i++)
        if (fs->zero.v[i].e->kill_epoch != epoch)
            emit(m, fs->zero.v[i].e);
    for (size_t i = 0; i < htab_cap(&fs->paths); i++) {
        struct pidx *px = fs->paths.item[i];
        if (px && px->npos)
            match_positive(m, px);
    }
}

size_t rc_trie_match(struct rc_trie *t, const char *topic, size_t n, const json_t *data,
                     rc_trie_match_fn cb, void *ctx)
{
    struct rc_slice tok[RC_TOPIC_MAX_TOKENS];
    /* Depth-first: each pop pushes at most two nodes one level deeper. */
    struct {
        struct node *nd;
        uint32_t depth;
    } stack[2 * RC_TOPIC_MAX_TOKENS + 2];
    size_t top = 0;
    struct matcher m = {t, data, cb, ctx, 0};

    if (rc_topic_validate(topic, n, RC_TOPIC_NAME, NULL))
        return 0;
    size_t ntok = rc_topic_split(topic, n, tok, RC_ARRAY_LEN(tok));
    t->epoch++;
    stack[top++].nd = t->root;
    stack[0].depth = 0;
    while (top) {
        struct node *nd = stack[--top].nd;
        uint32_t d = stack[top].depth;

        if (d == ntok) {
            if (nd->fs)
                match_fset(&m, nd->fs);
            continue;
        }
        if (nd->full && nd->full->fs)
            match_fset(&m, nd->full->fs);
        struct tok_key k = {tok[d].p, (uint32_t)tok[d].n};
        struct node *c =
            nd->kids.len ? htab_find(&nd->kids, XXH3_64bits(k.p, k.n), node_eq, &k) : NULL;
        if (c)
            stack[top++] = (typeof(stack[0])){c, d + 1};
        if (nd->star)
            stack[top++] = (typeof(stack[0])){nd->star, d + 1};
    }
    return m.calls;
}
