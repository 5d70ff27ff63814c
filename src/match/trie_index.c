/* trie_index.c - the filter trie's predicate index: allocation accounting,
 * hash tables, posting lists (equality, negation, ranges, $exists), interned
 * paths and interned filter entries. See trie.h for the design. */
#include <errno.h>
#include <stdlib.h>

#include <xxhash.h>

#include "trie_index.h"

static void htab_put(struct htab *h, uint64_t hash, void *item)
{
    uint32_t i = (uint32_t)hash & h->mask;

    while (h->item[i])
        i = (i + 1) & h->mask;
    h->item[i] = item;
    h->hash[i] = hash;
    h->len++;
}

/* Rehash into cap slots (a power of two >= 8). -ENOMEM leaves h unchanged. */
static int htab_resize(struct rc_trie *t, struct htab *h, size_t cap)
{
    struct htab n = {0};

    n.item = rc_trie_alloc(t, cap * sizeof(*n.item));
    n.hash = rc_trie_alloc(t, cap * sizeof(*n.hash));
    if (!n.item || !n.hash) {
        rc_trie_release(t, n.item, cap * sizeof(*n.item));
        rc_trie_release(t, n.hash, cap * sizeof(*n.hash));
        return -ENOMEM;
    }
    n.mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i < htab_cap(h); i++)
        if (h->item[i])
            htab_put(&n, h->hash[i], h->item[i]);
    rc_trie_release(t, h->item, htab_cap(h) * sizeof(*h->item));
    rc_trie_release(t, h->hash, htab_cap(h) * sizeof(*h->hash));
    *h = n;
    return 0;
}

int rc_trie_htab_insert(struct rc_trie *t, struct htab *h, uint64_t hash, void *item)
{
    size_t cap = htab_cap(h);

    if (h->len >= (1u << 29))
        return -ENOMEM; /* keeps the load arithmetic within 32 bits */
    if (((size_t)h->len + 1) * 4 > cap * 3) {
        int rc = htab_resize(t, h, cap ? cap * 2 : 8);
        if (rc)
            return rc;
    }
    htab_put(h, hash, item);
    return 0;
}

void rc_trie_htab_fini(struct rc_trie *t, struct htab *h)
{
    rc_trie_release(t, h->item, htab_cap(h) * sizeof(*h->item));
    rc_trie_release(t, h->hash, htab_cap(h) * sizeof(*h->hash));
    *h = (struct htab){0};
}

/* Remove the slot holding exactly item (which must be present). */
void rc_trie_htab_remove(struct rc_trie *t, struct htab *h, uint64_t hash, const void *item)
{
    uint32_t i = (uint32_t)hash & h->mask;

    while (h->item[i] != item)
        i = (i + 1) & h->mask;
    for (uint32_t j = (i + 1) & h->mask; h->item[j]; j = (j + 1) & h->mask) {
        uint32_t home = (uint32_t)h->hash[j] & h->mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        h->item[i] = h->item[j];
        h->hash[i] = h->hash[j];
        i = j;
    }
    h->item[i] = NULL;
    h->len--;
    if (h->len == 0)
        rc_trie_htab_fini(t, h);
    else if (htab_cap(h) > 8 && h->len * 8 < htab_cap(h))
        (void)htab_resize(t, h, htab_cap(h) / 2); /* failure just keeps the larger table */
}

static const char match_all_canon[] = "{}";

void *rc_trie_alloc(struct rc_trie *t, size_t n)
{
    void *p = calloc(1, n);

    t->allocs++;
    if (p)
        t->bytes += n;
    return p;
}

void rc_trie_release(struct rc_trie *t, void *p, size_t n)
{
    if (p) {
        t->bytes -= n;
        free(p);
    }
}

/* Grow a vector of elem-sized items to hold one more. */
static int vec_reserve(struct rc_trie *t, void **v, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    if (*cap > UINT32_MAX / 2)
        return -ENOMEM;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    void *nv = realloc(*v, ncap * elem);
    t->allocs++;
    if (!nv)
        return -ENOMEM;
    t->bytes += (ncap - *cap) * elem;
    *v = nv;
    *cap = ncap;
    return 0;
}

/* Shrink to half when a quarter full, so removals give memory back. */
static void vec_trim(struct rc_trie *t, void **v, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n == 0) {
        rc_trie_release(t, *v, *cap * elem);
        *v = NULL;
        *cap = 0;
        return;
    }
    if (*cap <= 8 || n * 4 > *cap)
        return;
    void *nv = realloc(*v, (*cap / 2) * elem);
    if (!nv)
        return;
    t->bytes -= (*cap - *cap / 2) * elem;
    *v = nv;
    *cap /= 2;
}

static int pvec_push(struct rc_trie *t, struct pvec *pv, struct fent *e, uint32_t slot)
{
    if (vec_reserve(t, (void **)&pv->v, pv->n, &pv->cap, sizeof(*pv->v)))
        return -ENOMEM;
    pv->v[pv->n] = (struct post){e, slot};
    e->slotpos[slot] = pv->n++;
    return 0;
}

static void pvec_del(struct rc_trie *t, struct pvec *pv, struct fent *e, uint32_t slot)
{
    uint32_t i = e->slotpos[slot];
    struct post last = pv->v[--pv->n];

    if (i != pv->n) {
        pv->v[i] = last;
        last.e->slotpos[last.slot] = i;
    }
    e->slotpos[slot] = NOT_POSTED;
    vec_trim(t, (void **)&pv->v, pv->n, &pv->cap, sizeof(*pv->v));
}

/* ---- equality postings ------------------------------------------------------ */

bool rc_trie_vbucket_eq(const void *item, const void *key)
{
    return rc_fval_eq(&((const struct vbucket *)item)->val, key);
}

static int vb_post(struct rc_trie *t, struct htab *h, const struct rc_fval *v, struct fent *e,
                   uint32_t slot)
{
    uint64_t hash = rc_fval_hash(v);
    struct vbucket *b = htab_find(h, hash, rc_trie_vbucket_eq, v);
    size_t extra = v->type == RC_FVAL_STR ? v->len : 0;

    if (!b) {
        b = rc_trie_alloc(t, sizeof(*b) + extra);
        if (!b)
            return -ENOMEM;
        b->val = *v;
        b->hash = hash;
        if (v->type == RC_FVAL_STR) {
            memcpy(b->bytes, v->str, extra);
            b->val.str = b->bytes;
        }
        if (rc_trie_htab_insert(t, h, hash, b)) {
            rc_trie_release(t, b, sizeof(*b) + extra);
            return -ENOMEM;
        }
    }
    if (pvec_push(t, &b->pv, e, slot)) {
        if (b->pv.n == 0) {
            rc_trie_htab_remove(t, h, hash, b);
            rc_trie_release(t, b, sizeof(*b) + extra);
        }
        return -ENOMEM;
    }
    return 0;
}

static void vb_unpost(struct rc_trie *t, struct htab *h, const struct rc_fval *v, struct fent *e,
                      uint32_t slot)
{
    uint64_t hash = rc_fval_hash(v);
    struct vbucket *b = htab_find(h, hash, rc_trie_vbucket_eq, v);

    pvec_del(t, &b->pv, e, slot);
    if (b->pv.n == 0) {
        rc_trie_htab_remove(t, h, hash, b);
        rc_trie_release(t, b, sizeof(*b) + (v->type == RC_FVAL_STR ? v->len : 0));
    }
}

/* ---- range postings ---------------------------------------------------------- */

static struct rvec *range_vec(struct pidx *px, const struct rc_fval *v, enum rc_fop op)
{
    int cls = v->type == RC_FVAL_NUM ? 0 : 1;
    return &px->rng[cls * RANGE_OPS + (op - RC_FOP_GT)];
}

static void range_release_if_empty(struct rc_trie *t, struct pidx *px)
{
    for (int k = 0; k < RANGE_CLASSES * RANGE_OPS; k++)
        if (px->rng[k].n)
            return;
    rc_trie_release(t, px->rng, RANGE_CLASSES * RANGE_OPS * sizeof(*px->rng));
    px->rng = NULL;
}

static void rblk_free(struct rc_trie *t, struct rblk *b)
{
    rc_trie_release(t, b->v, b->cap * sizeof(*b->v));
}

/* Insert (v, e) into r. Everything that can fail is reserved first, so
 * -ENOMEM leaves r unchanged. */
static int rvec_insert(struct rc_trie *t, struct rvec *r, const struct rc_fval *v, struct fent *e)
{
    struct rpos pos = rvec_find(r, v, e, RVEC_LOWER);
    struct rblk fresh = {0};

    if (r->nb == 0) {
        if (vec_reserve(t, (void **)&r->b, 0, &r->cap, sizeof(*r->b)))
            return -ENOMEM;
        r->b[0] = (struct rblk){0};
        r->nb = 1;
        pos = (struct rpos){0, 0};
    } else if (pos.blk == r->nb) {
        pos.blk = r->nb - 1; /* after everything: append to the last block */
        pos.off = r->b[pos.blk].n;
    }
    struct rblk *b = &r->b[pos.blk];
    if (vec_reserve(t, (void **)&b->v, b->n, &b->cap, sizeof(*b->v)))
        goto fail;
    if (b->n + 1 == RVEC_BLOCK) {
        /* This insert fills the block: split it, the upper half moves out. */
        if (vec_reserve(t, (void **)&r->b, r->nb, &r->cap, sizeof(*r->b)))
            goto fail;
        b = &r->b[pos.blk];
        fresh.cap = RVEC_BLOCK / 2;
        if (!(fresh.v = rc_trie_alloc(t, fresh.cap * sizeof(*fresh.v))))
            goto fail;
    }
    memmove(&b->v[pos.off + 1], &b->v[pos.off], (b->n - pos.off) * sizeof(*b->v));
    b->v[pos.off] = (struct rpost){v, e};
    b->n++;
    r->n++;
    if (fresh.v) {
        fresh.n = b->n - RVEC_BLOCK / 2;
        memcpy(fresh.v, &b->v[RVEC_BLOCK / 2], fresh.n * sizeof(*b->v));
        b->n = RVEC_BLOCK / 2;
        memmove(&r->b[pos.blk + 2], &r->b[pos.blk + 1], (r->nb - pos.blk - 1) * sizeof(*r->b));
        r->b[pos.blk + 1] = fresh;
        r->nb++;
    }
    return 0;
fail:
    if (r->b[pos.blk].n == 0) { /* the block made for this insert */
        rblk_free(t, &r->b[pos.blk]);
        r->nb = 0;
        vec_trim(t, (void **)&r->b, 0, &r->cap, sizeof(*r->b));
    }
    return -ENOMEM;
}

/* Remove (v, e), which must be present; drops a block that empties. */
static void rvec_delete(struct rc_trie *t, struct rvec *r, const struct rc_fval *v,
                        const struct fent *e)
{
    struct rpos pos = rvec_find(r, v, e, RVEC_LOWER);
    struct rblk *b = &r->b[pos.blk];

    memmove(&b->v[pos.off], &b->v[pos.off + 1], (b->n - pos.off - 1) * sizeof(*b->v));
    b->n--;
    r->n--;
    if (b->n) {
        vec_trim(t, (void **)&b->v, b->n, &b->cap, sizeof(*b->v));
        return;
    }
    rblk_free(t, b);
    memmove(&r->b[pos.blk], &r->b[pos.blk + 1], (r->nb - pos.blk - 1) * sizeof(*r->b));
    r->nb--;
    vec_trim(t, (void **)&r->b, r->nb, &r->cap, sizeof(*r->b));
}

static int range_post(struct rc_trie *t, struct pidx *px, const struct rc_fval *v, enum rc_fop op,
                      struct fent *e)
{
    if (!px->rng) {
        px->rng = rc_trie_alloc(t, RANGE_CLASSES * RANGE_OPS * sizeof(*px->rng));
        if (!px->rng)
            return -ENOMEM;
    }
    if (rvec_insert(t, range_vec(px, v, op), v, e)) {
        range_release_if_empty(t, px);
        return -ENOMEM;
    }
    return 0;
}

static void range_unpost(struct rc_trie *t, struct pidx *px, const struct rc_fval *v,
                         enum rc_fop op, struct fent *e)
{
    rvec_delete(t, range_vec(px, v, op), v, e);
    range_release_if_empty(t, px);
}

/* ---- interned paths and per-node path indexes --------------------------------- */

struct path_key {
    const char *s;
    uint32_t len;
};

static bool tpath_eq(const void *item, const void *key)
{
    const struct tpath *p = item;
    const struct path_key *k = key;
    return p->len == k->len && memcmp(p->s, k->s, k->len) == 0;
}

static bool pidx_eq(const void *item, const void *key)
{
    return ((const struct pidx *)item)->path == key;
}

static struct tpath *tpath_ref(struct rc_trie *t, const char *s, uint32_t len)
{
    struct path_key k = {s, len};
    uint64_t hash = XXH3_64bits(s, len);
    struct tpath *p = htab_find(&t->paths, hash, tpath_eq, &k);

    if (p) {
        p->refs++;
        return p;
    }
    p = rc_trie_alloc(t, sizeof(*p) + len + 1);
    if (!p)
        return NULL;
    p->hash = hash;
    p->len = len;
    p->refs = 1;
    memcpy(p->s, s, len);
    if (rc_trie_htab_insert(t, &t->paths, hash, p)) {
        rc_trie_release(t, p, sizeof(*p) + len + 1);
        return NULL;
    }
    return p;
}

static void tpath_unref(struct rc_trie *t, struct tpath *p)
{
    if (--p->refs)
        return;
    rc_trie_htab_remove(t, &t->paths, p->hash, p);
    rc_trie_release(t, p, sizeof(*p) + p->len + 1);
}

static struct pidx *pidx_ref(struct rc_trie *t, struct fset *fs, const char *s, uint32_t len)
{
    struct tpath *p = tpath_ref(t, s, len);
    struct pidx *px;

    if (!p)
        return NULL;
    px = htab_find(&fs->paths, p->hash, pidx_eq, p);
    if (px) {
        tpath_unref(t, p); /* px already holds one reference */
        px->refs++;
        return px;
    }
    px = rc_trie_alloc(t, sizeof(*px));
    if (!px || rc_trie_htab_insert(t, &fs->paths, p->hash, px)) {
        rc_trie_release(t, px, sizeof(*px));
        tpath_unref(t, p);
        return NULL;
    }
    px->path = p;
    px->refs = 1;
    return px;
}

static void pidx_unref(struct rc_trie *t, struct fset *fs, struct pidx *px)
{
    if (--px->refs)
        return;
    rc_trie_htab_remove(t, &fs->paths, px->path->hash, px);
    tpath_unref(t, px->path);
    rc_trie_release(t, px, sizeof(*px));
}

/* ---- filter entries --------------------------------------------------------- */

static bool is_negated(enum rc_fop op)
{
    return op == RC_FOP_NE || op == RC_FOP_NIN;
}

static bool is_range(enum rc_fop op)
{
    return op >= RC_FOP_GT && op <= RC_FOP_LTE;
}

bool rc_trie_fent_eq(const void *item, const void *key)
{
    const struct fent *e = item;
    const struct rc_filter *f = key;

    if (!e->f || !f)
        return e->f == f;
    return e->f->canonical_len == f->canonical_len &&
           memcmp(e->f->canonical, f->canonical, f->canonical_len) == 0;
}

uint64_t rc_trie_filter_hash(const struct rc_filter *f)
{
    return f ? f->hash : XXH3_64bits(match_all_canon, sizeof(match_all_canon) - 1);
}

/* Remove every posting of e that is in place (partial indexing included). */
void rc_trie_fent_unindex(struct rc_trie *t, struct fset *fs, struct fent *e)
{
    uint32_t slot = 0;

    if (e->slotpos[e->nslots] != NOT_POSTED)
        pvec_del(t, &fs->zero, e, e->nslots);
    for (uint32_t i = 0; e->f && i < e->f->npreds; i++) {
        const struct rc_filter_pred *p = &e->f->preds[i];
        struct pidx *px = e->pp[i];
        enum rc_fop op = (enum rc_fop)p->op;

        for (uint32_t k = 0; k < p->nvals; k++, slot++) {
            if (e->slotpos[slot] == NOT_POSTED)
                continue;
            if (op == RC_FOP_EQ || op == RC_FOP_IN) {
                vb_unpost(t, &px->eq, &p->vals[k], e, slot);
            } else if (is_negated(op)) {
                vb_unpost(t, &px->ne, &p->vals[k], e, slot);
            } else if (is_range(op)) {
                range_unpost(t, px, &p->vals[k], op, e);
                e->slotpos[slot] = NOT_POSTED;
            } else {
                pvec_del(t, &px->ex[p->vals[0].type == RC_FVAL_TRUE], e, slot);
            }
        }
        if (!px)
            continue;
        if (is_negated(op)) {
            px->nneg--;
            fs->nneg--;
        } else {
            px->npos--;
        }
        pidx_unref(t, fs, px);
        e->pp[i] = NULL;
    }
}

static int post_value(struct rc_trie *t, struct pidx *px, const struct rc_filter_pred *p,
                      uint32_t k, struct fent *e, uint32_t slot)
{
    enum rc_fop op = (enum rc_fop)p->op;

    if (op == RC_FOP_EQ || op == RC_FOP_IN)
        return vb_post(t, &px->eq, &p->vals[k], e, slot);
    if (is_negated(op))
        return vb_post(t, &px->ne, &p->vals[k], e, slot);
    if (is_range(op)) {
        if (range_post(t, px, &p->vals[k], op, e))
            return -ENOMEM;
        e->slotpos[slot] = 0; /* marks "posted"; ranges are found by value */
        return 0;
    }
    return pvec_push(t, &px->ex[p->vals[0].type == RC_FVAL_TRUE], e, slot);
}

static int fent_index(struct rc_trie *t, struct fset *fs, struct fent *e)
{
    uint32_t slot = 0;

    for (uint32_t i = 0; e->f && i < e->f->npreds; i++) {
        const struct rc_filter_pred *p = &e->f->preds[i];
        struct pidx *px = pidx_ref(t, fs, p->path, p->path_len);

        if (!px)
            return -ENOMEM;
        e->pp[i] = px;
        if (is_negated((enum rc_fop)p->op)) {
            px->nneg++;
            fs->nneg++;
        } else {
            px->npos++;
        }
        for (uint32_t k = 0; k < p->nvals; k++, slot++)
            if (post_value(t, px, p, k, e, slot))
                return -ENOMEM;
    }
    if (e->npos == 0)
        return pvec_push(t, &fs->zero, e, e->nslots);
    return 0;
}

void rc_trie_fent_free(struct rc_trie *t, struct fent *e)
{
    if (e->f) {
        t->bytes -= e->f->size;
        rc_filter_free(e->f);
    }
    rc_trie_release(t, e, e->size);
    t->filters--;
}

struct fent *rc_trie_fent_new(struct rc_trie *t, struct fset *fs, const struct rc_filter *f)
{
    uint32_t npreds = f ? f->npreds : 0, nslots = 0, npos = 0;

    for (uint32_t i = 0; i < npreds; i++) {
        nslots += f->preds[i].nvals;
        npos += !is_negated((enum rc_fop)f->preds[i].op);
    }
    size_t size =
        sizeof(struct fent) + npreds * sizeof(struct pidx *) + (nslots + 1) * sizeof(uint32_t);
    struct fent *e = rc_trie_alloc(t, size);
    if (!e)
        return NULL;
    e->size = size;
    e->pp = (struct pidx **)(e + 1);
    e->slotpos = (uint32_t *)(e->pp + npreds);
    e->nslots = nslots;
    e->npos = npos;
    for (uint32_t i = 0; i <= nslots; i++)
        e->slotpos[i] = NOT_POSTED;
    t->filters++;
    if (f) {
        e->f = rc_filter_clone(f);
        t->allocs++;
        if (!e->f) {
            rc_trie_fent_free(t, e);
            return NULL;
        }
        t->bytes += e->f->size;
    }
    if (fent_index(t, fs, e) || rc_trie_htab_insert(t, &fs->ents, rc_trie_filter_hash(e->f), e)) {
        rc_trie_fent_unindex(t, fs, e);
        rc_trie_fent_free(t, e);
        return NULL;
    }
    return e;
}

static void buckets_destroy(struct rc_trie *t, struct htab *h)
{
    for (size_t i = 0; i < htab_cap(h); i++) {
        struct vbucket *b = h->item[i];
        if (!b)
            continue;
        rc_trie_release(t, b->pv.v, b->pv.cap * sizeof(*b->pv.v));
        rc_trie_release(t, b, sizeof(*b) + (b->val.type == RC_FVAL_STR ? b->val.len : 0));
    }
    rc_trie_htab_fini(t, h);
}

static void pidx_destroy(struct rc_trie *t, struct pidx *px)
{
    buckets_destroy(t, &px->eq);
    buckets_destroy(t, &px->ne);
    for (int k = 0; px->rng && k < RANGE_CLASSES * RANGE_OPS; k++) {
        struct rvec *r = &px->rng[k];
        for (uint32_t b = 0; b < r->nb; b++)
            rblk_free(t, &r->b[b]);
        rc_trie_release(t, r->b, r->cap * sizeof(*r->b));
    }
    rc_trie_release(t, px->rng, RANGE_CLASSES * RANGE_OPS * sizeof(*px->rng));
    for (int k = 0; k < 2; k++)
        rc_trie_release(t, px->ex[k].v, px->ex[k].cap * sizeof(*px->ex[k].v));
    tpath_unref(t, px->path);
    rc_trie_release(t, px, sizeof(*px));
}

void rc_trie_fset_destroy(struct rc_trie *t, struct fset *fs)
{
    for (size_t i = 0; i < htab_cap(&fs->ents); i++) {
        struct fent *e = fs->ents.item[i];
        if (!e)
            continue;
        for (struct rc_trie_sub *s = e->subs, *next; s; s = next) {
            next = s->next;
            rc_trie_release(t, s, sizeof(*s));
            t->subs--;
        }
        rc_trie_fent_free(t, e);
    }
    for (size_t i = 0; i < htab_cap(&fs->paths); i++)
        if (fs->paths.item[i])
            pidx_destroy(t, fs->paths.item[i]);
    rc_trie_htab_fini(t, &fs->ents);
    rc_trie_htab_fini(t, &fs->paths);
    rc_trie_release(t, fs->zero.v, fs->zero.cap * sizeof(*fs->zero.v));
    rc_trie_release(t, fs, sizeof(*fs));
}
