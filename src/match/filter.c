/* filter.c - filter language: compile, canonicalise, clone, naive evaluation. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <xxhash.h>

#include "ringcast/filter.h"

#define ALLOWED_OPS "$eq $ne $in $nin $gt $gte $lt $lte $exists"
/* Longest piece of a path quoted in an error message (rc_err.msg is short). */
#define SHOWN 48
/* 2^53: integral doubles up to this print as integers in canonical form. */
#define EXACT_INT_MAX 9007199254740992.0

static const char *const op_names[RC_FOP_COUNT] = {
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists",
};

const char *rc_fop_name(enum rc_fop op)
{
    return (unsigned)op < RC_FOP_COUNT ? op_names[op] : "$?";
}

/* ---- values ---------------------------------------------------------------- */

bool rc_fval_from_json(const json_t *j, struct rc_fval *out)
{
    switch (json_typeof(j)) {
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_number_value(j);
        out->type = RC_FVAL_NUM;
        out->len = 0;
        out->num = d == 0 ? 0.0 : d; /* -0 == 0: one representation */
        return true;
    }
    case JSON_STRING:
        out->type = RC_FVAL_STR;
        out->str = json_string_value(j);
        out->len = (uint32_t)json_string_length(j);
        return true;
    case JSON_TRUE:
        out->type = RC_FVAL_TRUE;
        break;
    case JSON_FALSE:
        out->type = RC_FVAL_FALSE;
        break;
    case JSON_NULL:
        out->type = RC_FVAL_NULL;
        break;
    default:
        return false;
    }
    out->len = 0;
    out->num = 0;
    return true;
}

int rc_fval_cmp(const struct rc_fval *a, const struct rc_fval *b)
{
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    if (a->type == RC_FVAL_NUM)
        return a->num < b->num ? -1 : a->num > b->num;
    if (a->type == RC_FVAL_STR) {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int c = n ? memcmp(a->str, b->str, n) : 0;
        if (c)
            return c < 0 ? -1 : 1;
        return a->len < b->len ? -1 : a->len > b->len;
    }
    return 0;
}

bool rc_fval_eq(const struct rc_fval *a, const struct rc_fval *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == RC_FVAL_NUM)
        return a->num == b->num;
    if (a->type == RC_FVAL_STR)
        return a->len == b->len && (a->len == 0 || memcmp(a->str, b->str, a->len) == 0);
    return true;
}

uint64_t rc_fval_hash(const struct rc_fval *v)
{
    if (v->type == RC_FVAL_NUM) {
        double d = v->num == 0 ? 0.0 : v->num;
        return XXH3_64bits_withSeed(&d, sizeof(d), RC_FVAL_NUM);
    }
    if (v->type == RC_FVAL_STR)
        return XXH3_64bits_withSeed(v->str, v->len, RC_FVAL_STR);
    return XXH3_64bits_withSeed(NULL, 0, v->type);
}

/* ---- evaluation ---------------------------------------------------------- */

const json_t *rc_filter_path_get(const json_t *data, const char *path, size_t len)
{
    const json_t *cur = data;
    size_t i = 0;

    for (;;) {
        const char *dot = memchr(path + i, '.', len - i);
        size_t seg = dot ? (size_t)(dot - (path + i)) : len - i;

        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, path + i, seg);
        if (!cur || !dot)
            return cur;
        i += seg + 1;
    }
}

static bool same_class(const struct rc_fval *a, const struct rc_fval *b)
{
    return a->type == b->type && (a->type == RC_FVAL_NUM || a->type == RC_FVAL_STR);
}

static bool in_list(const struct rc_filter_pred *p, const struct rc_fval *x)
{
    for (uint32_t i = 0; i < p->nvals; i++)
        if (rc_fval_eq(x, &p->vals[i]))
            return true;
    return false;
}

bool rc_filter_pred_eval(const struct rc_filter_pred *p, const json_t *v)
{
    struct rc_fval x;
    bool scalar = v && rc_fval_from_json(v, &x);

    switch ((enum rc_fop)p->op) {
    case RC_FOP_EQ:
        return scalar && rc_fval_eq(&x, &p->vals[0]);
    case RC_FOP_NE:
        return !(scalar && rc_fval_eq(&x, &p->vals[0]));
    case RC_FOP_IN:
        return scalar && in_list(p, &x);
    case RC_FOP_NIN:
        return !(scalar && in_list(p, &x));
    case RC_FOP_GT:
        return scalar && same_class(&x, &p->vals[0]) && rc_fval_cmp(&x, &p->vals[0]) > 0;
    case RC_FOP_GTE:
        return scalar && same_class(&x, &p->vals[0]) && rc_fval_cmp(&x, &p->vals[0]) >= 0;
    case RC_FOP_LT:
        return scalar && same_class(&x, &p->vals[0]) && rc_fval_cmp(&x, &p->vals[0]) < 0;
    case RC_FOP_LTE:
        return scalar && same_class(&x, &p->vals[0]) && rc_fval_cmp(&x, &p->vals[0]) <= 0;
    case RC_FOP_EXISTS:
        return (v != NULL) == (p->vals[0].type == RC_FVAL_TRUE);
    }
    return false;
}

bool rc_filter_eval(const struct rc_filter *f, const json_t *data)
{
    for (uint32_t i = 0; i < f->npreds; i++) {
        const struct rc_filter_pred *p = &f->preds[i];
        if (!rc_filter_pred_eval(p, rc_filter_path_get(data, p->path, p->path_len)))
            return false;
    }
    return true;
}

/* ---- compilation ----------------------------------------------------------- */

/* A predicate while compiling: path and strings still point into the input. */
struct tpred {
    const char *path;
    size_t path_len;
    enum rc_fop op;
    uint32_t nvals;
    struct rc_fval *vals; /* malloc'd */
};

struct compiler {
    const struct rc_filter_limits *lim;
    struct rc_err *err;
    struct tpred *p;
    size_t n, cap;
};

static void *bad(struct compiler *c, const char *fmt, ...) RC_PRINTF(2, 3);

static void *bad(struct compiler *c, const char *fmt, ...)
{
    char buf[sizeof(c->err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    rc_err_set(c->err, 400, "bad_filter", "filter: %s", buf);
    return NULL;
}

static void *no_memory(struct compiler *c)
{
    rc_err_set(c->err, 503, "no_memory", "filter: out of memory while compiling; retry later");
    return NULL;
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

#define PATH_FMT "data.%.*s%s"
#define PATH_ARG(p, n) (int)((n) > SHOWN ? SHOWN : (n)), (p), ((n) > SHOWN ? "..." : "")

static bool check_path(struct compiler *c, const char *p, size_t n)
{
    size_t segs = 1, seg_len = 0;

    if (n == 0)
        return bad(c, "empty field name; name a field of data, e.g. {\"published\": true}");
    if (p[0] == '$')
        return bad(c,
                   "top-level operator \"%.*s%s\" is not supported; conditions side by side are "
                   "and-ed, use $in for alternatives of one field",
                   PATH_ARG(p, n));
    if (n > c->lim->max_path_len)
        return bad(c, "path " PATH_FMT " is %zu bytes; the limit is %u", PATH_ARG(p, n), n,
                   c->lim->max_path_len);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f)
            return bad(c, "path " PATH_FMT " contains a control byte; use printable field names",
                       PATH_ARG(p, n));
        if (ch != '.') {
            seg_len++;
            continue;
        }
        if (seg_len == 0)
            break;
        seg_len = 0;
        segs++;
    }
    if (seg_len == 0)
        return bad(c,
                   "path " PATH_FMT " has an empty segment; separate field names with single dots",
                   PATH_ARG(p, n));
    if (segs > c->lim->max_depth)
        return bad(c, "path " PATH_FMT " has %zu segments; the limit is %u", PATH_ARG(p, n), segs,
                   c->lim->max_depth);
    return true;
}

static struct tpred *add_pred(struct compiler *c, const char *path, size_t n, enum rc_fop op,
                              uint32_t nvals)
{
    if (c->n >= c->lim->max_conditions)
        return bad(c, "more than %u conditions (at " PATH_FMT " %s); split the subscription",
                   c->lim->max_conditions, PATH_ARG(path, n), rc_fop_name(op));
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct tpred *np = realloc(c->p, cap * sizeof(*np));
        if (!np)
            return no_memory(c);
        c->p = np;
        c->cap = cap;
    }
    struct tpred *t = &c->p[c->n];
    t->vals = calloc(nvals ? nvals : 1, sizeof(*t->vals));
    if (!t->vals)
        return no_memory(c);
    c->n++;
    t->path = path;
    t->path_len = n;
    t->op = op;
    t->nvals = nvals;
    return t;
}

static bool scalar_value(struct compiler *c, const char *path, size_t n, enum rc_fop op,
                         const json_t *v, struct rc_fval *out)
{
    if (!rc_fval_from_json(v, out))
        return bad(c,
                   "%s at " PATH_FMT " has %s; only scalar values (string, number, boolean, "
                   "null) can be compared, use a dotted path to reach nested fields",
                   rc_fop_name(op), PATH_ARG(path, n), type_name(v));
    return true;
}

static int fval_sort_cmp(const void *a, const void *b)
{
    return rc_fval_cmp(a, b);
}

static bool compile_op(struct compiler *c, const char *path, size_t n, enum rc_fop op,
                       const json_t *v)
{
    struct tpred *t;

    switch (op) {
    case RC_FOP_IN:
    case RC_FOP_NIN: {
        if (!json_is_array(v))
            return bad(c, "%s at " PATH_FMT " needs an array of values, got %s", rc_fop_name(op),
                       PATH_ARG(path, n), type_name(v));
        size_t len = json_array_size(v);
        if (len > c->lim->max_in)
            return bad(c, "%s at " PATH_FMT " lists %zu values; the limit is %u", rc_fop_name(op),
                       PATH_ARG(path, n), len, c->lim->max_in);
        if (!(t = add_pred(c, path, n, op, (uint32_t)len)))
            return false;
        for (size_t i = 0; i < len; i++)
            if (!scalar_value(c, path, n, op, json_array_get(v, i), &t->vals[i]))
                return false;
        if (len > 1) {
            qsort(t->vals, len, sizeof(*t->vals), fval_sort_cmp);
            uint32_t k = 1;
            for (size_t i = 1; i < len; i++)
                if (!rc_fval_eq(&t->vals[k - 1], &t->vals[i]))
                    t->vals[k++] = t->vals[i];
            t->nvals = k;
        }
        return true;
    }
    case RC_FOP_EXISTS:
        if (!json_is_boolean(v))
            return bad(c, "$exists at " PATH_FMT " needs true or false, got %s", PATH_ARG(path, n),
                       type_name(v));
        if (!(t = add_pred(c, path, n, op, 1)))
            return false;
        t->vals[0].type = json_is_true(v) ? RC_FVAL_TRUE : RC_FVAL_FALSE;
        return true;
    case RC_FOP_GT:
    case RC_FOP_GTE:
    case RC_FOP_LT:
    case RC_FOP_LTE:
        if (!json_is_number(v) && !json_is_string(v))
            return bad(c, "%s at " PATH_FMT " needs a number or a string, got %s", rc_fop_name(op),
                       PATH_ARG(path, n), type_name(v));
        if (!(t = add_pred(c, path, n, op, 1)))
            return false;
        return scalar_value(c, path, n, op, v, &t->vals[0]);
    case RC_FOP_EQ:
    case RC_FOP_NE:
        if (!(t = add_pred(c, path, n, op, 1)))
            return false;
        return scalar_value(c, path, n, op, v, &t->vals[0]);
    }
    return bad(c, "internal: operator %d", (int)op);
}

static bool compile_field(struct compiler *c, const char *path, size_t n, const json_t *v)
{
    const char *k;
    json_t *ov;
    bool any_op = false, any_field = false;

    if (!check_path(c, path, n))
        return false;
    if (!json_is_object(v))
        return compile_op(c, path, n, RC_FOP_EQ, v);
    json_object_foreach((json_t *)v, k, ov)
    {
        if (k[0] == '$')
            any_op = true;
        else
            any_field = true;
    }
    if (!any_op)
        return bad(c,
                   "value at " PATH_FMT " is an object; only scalar values (string, number, "
                   "boolean, null) can be compared, reach nested fields with a dotted path "
                   "(\"a.b\": 1) or use operators ({\"$gt\": 1})",
                   PATH_ARG(path, n));
    if (any_field)
        return bad(c,
                   "operators at " PATH_FMT " are mixed with field names; use \"a.b\" paths "
                   "for nested fields and operators alone in an object",
                   PATH_ARG(path, n));
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
        const char *name = json_object_iter_key(it);
        size_t name_len = json_object_iter_key_len(it);
        int op = -1;
        for (int i = 0; i < RC_FOP_COUNT; i++)
            if (strlen(op_names[i]) == name_len && memcmp(op_names[i], name, name_len) == 0)
                op = i;
        if (op < 0)
            return bad(c, "unknown operator \"%.*s\" at " PATH_FMT "; allowed: " ALLOWED_OPS,
                       (int)(name_len > 16 ? 16 : name_len), name, PATH_ARG(path, n));
        if (!compile_op(c, path, n, (enum rc_fop)op, json_object_iter_value(it)))
            return false;
    }
    return true;
}

static int tpred_cmp(const void *a, const void *b)
{
    const struct tpred *x = a, *y = b;
    size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
    int c = memcmp(x->path, y->path, n);

    if (c)
        return c;
    if (x->path_len != y->path_len)
        return x->path_len < y->path_len ? -1 : 1;
    return (int)x->op - (int)y->op;
}

static json_t *fval_json(const struct rc_fval *v)
{
    switch ((enum rc_fval_type)v->type) {
    case RC_FVAL_NULL:
        return json_null();
    case RC_FVAL_FALSE:
        return json_false();
    case RC_FVAL_TRUE:
        return json_true();
    case RC_FVAL_NUM:
        if (v->num == floor(v->num) && fabs(v->num) <= EXACT_INT_MAX)
            return json_integer((json_int_t)v->num);
        return json_real(v->num);
    case RC_FVAL_STR:
        return json_stringn_nocheck(v->str, v->len);
    }
    return NULL;
}

/* Canonical text: {"path":{"$op":value,...},...} dumped compact with sorted keys. */
static char *canonical_text(const struct compiler *c)
{
    json_t *root = json_object(), *field = NULL;
    char *out = NULL;

    if (!root)
        return NULL;
    for (size_t i = 0; i < c->n; i++) {
        const struct tpred *t = &c->p[i];
        json_t *val;

        if (i == 0 || c->p[i - 1].path_len != t->path_len ||
            memcmp(c->p[i - 1].path, t->path, t->path_len) != 0) {
            field = json_object();
            if (!field || json_object_setn_new_nocheck(root, t->path, t->path_len, field))
                goto out;
        }
        if (t->op == RC_FOP_IN || t->op == RC_FOP_NIN) {
            val = json_array();
            for (uint32_t k = 0; val && k < t->nvals; k++)
                if (json_array_append_new(val, fval_json(&t->vals[k]))) {
                    json_decref(val);
                    val = NULL;
                }
        } else if (t->op == RC_FOP_EXISTS) {
            val = json_boolean(t->vals[0].type == RC_FVAL_TRUE);
        } else {
            val = fval_json(&t->vals[0]);
        }
        if (!val || json_object_set_new_nocheck(field, rc_fop_name(t->op), val))
            goto out;
    }
    out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
out:
    json_decref(root);
    return out;
}

/* Lay the predicates, values, paths, strings and canonical text out in one block. */
static struct rc_filter *build(struct compiler *c, const char *canon)
{
    size_t nvals = 0, bytes = 0, canon_len = strlen(canon);

    for (size_t i = 0; i < c->n; i++) {
        nvals += c->p[i].nvals;
        bytes += c->p[i].path_len + 1;
        for (uint32_t k = 0; k < c->p[i].nvals; k++)
            if (c->p[i].vals[k].type == RC_FVAL_STR)
                bytes += c->p[i].vals[k].len + 1;
    }
    bytes += canon_len + 1;
    /* Bounded by max_text-sized input and the limits; cannot overflow size_t. */
    size_t head = sizeof(struct rc_filter) + c->n * sizeof(struct rc_filter_pred) +
                  nvals * sizeof(struct rc_fval);
    struct rc_filter *f = malloc(head + bytes);
    if (!f)
        return NULL;
    struct rc_filter_pred *preds = (struct rc_filter_pred *)(f + 1);
    struct rc_fval *vals = (struct rc_fval *)(preds + c->n);
    char *s = (char *)(vals + nvals);

    f->size = head + bytes;
    f->npreds = (uint32_t)c->n;
    f->preds = preds;
    for (size_t i = 0; i < c->n; i++) {
        const struct tpred *t = &c->p[i];
        memcpy(s, t->path, t->path_len);
        s[t->path_len] = 0;
        preds[i] = (struct rc_filter_pred){.path = s,
                                           .path_len = (uint32_t)t->path_len,
                                           .op = (uint8_t)t->op,
                                           .nvals = t->nvals,
                                           .vals = vals};
        s += t->path_len + 1;
        for (uint32_t k = 0; k < t->nvals; k++) {
            vals[k] = t->vals[k];
            if (vals[k].type == RC_FVAL_STR) {
                memcpy(s, t->vals[k].str, t->vals[k].len);
                s[t->vals[k].len] = 0;
                vals[k].str = s;
                s += t->vals[k].len + 1;
            }
        }
        vals += t->nvals;
    }
    memcpy(s, canon, canon_len + 1);
    f->canonical = s;
    f->canonical_len = canon_len;
    f->hash = XXH3_64bits(canon, canon_len);
    return f;
}

struct rc_filter *rc_filter_compile(const json_t *filter, const struct rc_filter_limits *lim,
                                    struct rc_err *err)
{
    struct rc_filter_limits def = RC_FILTER_LIMITS_DEFAULT;
    struct compiler c = {.lim = lim ? lim : &def, .err = err};
    struct rc_filter *f = NULL;
    char *canon = NULL;

    if (!json_is_object(filter))
        return bad(&c, "must be a JSON object like {\"published\": true}, got %s",
                   filter ? type_name(filter) : "nothing");
    for (void *it = json_object_iter((json_t *)filter); it;
         it = json_object_iter_next((json_t *)filter, it))
        if (!compile_field(&c, json_object_iter_key(it), json_object_iter_key_len(it),
                           json_object_iter_value(it)))
            goto out;
    if (c.n > 1)
        qsort(c.p, c.n, sizeof(*c.p), tpred_cmp);
    canon = canonical_text(&c);
    if (!canon || !(f = build(&c, canon)))
        no_memory(&c);
out:
    free(canon);
    for (size_t i = 0; i < c.n; i++)
        free(c.p[i].vals);
    free(c.p);
    return f;
}

int rc_filter_parse_text(const char *json, size_t len, const struct rc_filter_limits *lim,
                         struct rc_filter **out, struct rc_err *err)
{
    struct rc_filter_limits def = RC_FILTER_LIMITS_DEFAULT;
    json_error_t jerr;

    *out = NULL;
    if (!lim)
        lim = &def;
    if (len > lim->max_text) {
        rc_err_set(err, 400, "bad_filter", "filter: text is %zu bytes; the limit is %u", len,
                   lim->max_text);
        return -EINVAL;
    }
    json_t *j =
        json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        rc_err_set(err, 400, "bad_filter", "filter: not valid JSON at byte %d: %s", jerr.position,
                   jerr.text);
        return -EINVAL;
    }
    *out = rc_filter_compile(j, lim, err);
    json_decref(j);
    if (!*out)
        return err && err->status == 503 ? -ENOMEM : -EINVAL;
    return 0;
}

static void *rebase(const void *p, const struct rc_filter *from, struct rc_filter *to)
{
    return (char *)to + ((const char *)p - (const char *)from);
}

struct rc_filter *rc_filter_clone(const struct rc_filter *f)
{
    struct rc_filter *g = malloc(f->size);

    if (!g)
        return NULL;
    memcpy(g, f, f->size);
    g->canonical = rebase(f->canonical, f, g);
    g->preds = rebase(f->preds, f, g);
    for (uint32_t i = 0; i < f->npreds; i++) {
        struct rc_filter_pred *p = (struct rc_filter_pred *)&g->preds[i];
        p->path = rebase(f->preds[i].path, f, g);
        p->vals = rebase(f->preds[i].vals, f, g);
        for (uint32_t k = 0; k < p->nvals; k++) {
            struct rc_fval *v = (struct rc_fval *)&p->vals[k];
            if (v->type == RC_FVAL_STR)
                v->str = rebase(f->preds[i].vals[k].str, f, g);
        }
    }
    return g;
}

void rc_filter_free(struct rc_filter *f)
{
    free(f);
}
