/* filter.h - the subscription filter language: compile a JSON filter over an
 * event's `data` into predicates, canonicalise it, evaluate it naively.
 * Owner: none; a compiled filter is immutable and may be read by any thread
 *   (the trie of each shard keeps its own clone).
 * Lifetime: rc_filter_compile/_parse_text/_clone return one heap block that
 *   holds everything (predicates, values, paths, canonical text); free it with
 *   rc_filter_free. Nothing in it points into the json_t it came from.
 *
 * Language (Mongo-like, a subset):
 *   {"published": true}                   equality (same as {"published": {"$eq": true}})
 *   {"price": {"$gt": 1, "$lte": 5}}      several operators on one field: all must hold
 *   {"author.id": {"$in": [1, 2, 3]}}     dotted paths reach into nested objects
 *   operators: $eq $ne $in $nin $gt $gte $lt $lte $exists; every condition of the
 *   filter must hold (implicit and); {} matches every event.
 *
 * Comparison rules (the trie and rc_filter_eval implement exactly these):
 *   - Numbers compare numerically as IEEE doubles, integers and reals alike:
 *     1 == 1.0 and -0 == 0. Integers beyond +-2^53 are rounded to the nearest
 *     double first (so 9007199254740993 == 9007199254740992).
 *   - Strings compare by bytes (memcmp order, a prefix sorts first) and only
 *     with strings. A number never equals a string ("1" != 1).
 *   - true, false and null only equal themselves.
 *   - $gt $gte $lt $lte need a number or a string in the filter; against data of
 *     another type (or a missing field) they are false.
 *   - Filter values must be scalars (string, number, boolean, null): an object
 *     or array as an $eq/$ne value is refused at compile time ("only scalar
 *     values"); reach nested fields with a dotted path instead. A data field that
 *     holds an object or array equals no scalar, so $eq/$in/ranges are false and
 *     $ne/$nin are true; arrays are not searched element by element.
 *   - $ne and $nin are true when the field is missing (Mongo semantics):
 *     {"a": {"$ne": 1}} matches {} and {"a": 2}.
 *   - $exists: true holds when the path resolves to any value, null included;
 *     $exists: false when it does not. Its value must be a boolean.
 *   - $in: [] never holds; $nin: [] always holds.
 *   - A path "a.b" walks objects only; data keys containing a dot cannot be
 *     reached. Path segments are non-empty, have no control bytes, and a path
 *     never starts with '$' ($and/$or/... are not supported).
 *
 * Canonical form: compact JSON with sorted keys, every condition spelled as an
 * operator object ({"a":{"$eq":1}}), numbers normalised (integral values within
 * +-2^53 printed as integers, others with 17 significant digits), $in/$nin
 * lists sorted (null < false < true < numbers < strings) and de-duplicated.
 * Two filters with the same canonical text accept exactly the same events;
 * the canonical text compiles to itself. */
#ifndef RINGCAST_FILTER_H
#define RINGCAST_FILTER_H

#include <jansson.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_filter_limits {
    uint32_t max_depth;      /* path segments, default 8 */
    uint32_t max_conditions; /* operators over the whole filter, default 32 */
    uint32_t max_in;         /* elements of one $in/$nin list, default 256 */
    uint32_t max_path_len;   /* bytes of one path, default 128 */
    uint32_t max_text;       /* bytes of a filter text (rc_filter_parse_text), default 16384 */
};

#define RC_FILTER_LIMITS_DEFAULT ((struct rc_filter_limits){8, 32, 256, 128, 16384})

enum rc_fop {
    RC_FOP_EQ,
    RC_FOP_NE,
    RC_FOP_IN,
    RC_FOP_NIN,
    RC_FOP_GT,
    RC_FOP_GTE,
    RC_FOP_LT,
    RC_FOP_LTE,
    RC_FOP_EXISTS,
};
#define RC_FOP_COUNT 9

/* Operator name with its '$' ("$gte"). */
const char *rc_fop_name(enum rc_fop op);

enum rc_fval_type { RC_FVAL_NULL, RC_FVAL_FALSE, RC_FVAL_TRUE, RC_FVAL_NUM, RC_FVAL_STR };

/* A scalar value: a filter constant or a value found in event data. */
struct rc_fval {
    uint8_t type; /* enum rc_fval_type */
    uint32_t len; /* bytes of str */
    union {
        double num;      /* RC_FVAL_NUM; never -0.0 or NaN */
        const char *str; /* RC_FVAL_STR; not NUL-terminated in data values */
    };
};

/* One condition. nvals is 1 for $eq $ne $gt $gte $lt $lte, the (sorted,
 * de-duplicated) list length for $in/$nin, and 1 for $exists, whose vals[0] is
 * RC_FVAL_TRUE or RC_FVAL_FALSE. */
struct rc_filter_pred {
    const char *path; /* NUL-terminated, dotted */
    uint32_t path_len;
    uint8_t op; /* enum rc_fop */
    uint32_t nvals;
    const struct rc_fval *vals;
};

struct rc_filter {
    size_t size;   /* bytes of this block (memory accounting) */
    uint64_t hash; /* XXH3_64bits of the canonical text */
    const char *canonical;
    size_t canonical_len;
    uint32_t npreds;
    const struct rc_filter_pred *preds; /* sorted by path bytes, then op */
};

/* Compile a filter object (the caller capped the size of the JSON it came
 * from; rc_filter_parse_text does). lim may be NULL for the defaults. On failure returns
 * NULL with err set: status 400, code "bad_filter" and a message naming the path
 * and operator, or status 503, code "no_memory". */
struct rc_filter *rc_filter_compile(const json_t *filter, const struct rc_filter_limits *lim,
                                    struct rc_err *err);

/* Parse and compile filter text (an SSE ?filter= value, a config line). The
 * text is refused before jansson sees it when longer than lim->max_text.
 * Duplicate keys are refused. Returns 0 with *out set, or -EINVAL (bad_filter)
 * / -ENOMEM (no_memory) with err set. */
RC_MUST_CHECK int rc_filter_parse_text(const char *json, size_t len,
                                       const struct rc_filter_limits *lim, struct rc_filter **out,
                                       struct rc_err *err);

/* A deep copy (one allocation); NULL when out of memory. */
struct rc_filter *rc_filter_clone(const struct rc_filter *f);

void rc_filter_free(struct rc_filter *f);

static inline const char *rc_filter_canonical(const struct rc_filter *f)
{
    return f->canonical;
}

/* Naive reference evaluation of f over data (any JSON value; a non-object
 * has no fields). O(conditions x path depth); no allocation. */
bool rc_filter_eval(const struct rc_filter *f, const json_t *data);

/* --- primitives shared with the trie (same semantics everywhere) ----------- */

/* Resolve a dotted path in data; NULL when some segment is missing or a
 * non-object is in the way. No allocation. */
const json_t *rc_filter_path_get(const json_t *data, const char *path, size_t len);

/* Convert a data value; false (and *out untouched) for objects and arrays. */
bool rc_fval_from_json(const json_t *j, struct rc_fval *out);

/* Equality per the rules above. */
bool rc_fval_eq(const struct rc_fval *a, const struct rc_fval *b);

/* Total order used for sorting: by type (null < false < true < number <
 * string), then numerically or by bytes. Returns <0, 0, >0. Within numbers or
 * within strings it is the order $gt/$lt use. */
int rc_fval_cmp(const struct rc_fval *a, const struct rc_fval *b);

/* Hash consistent with rc_fval_eq (equal values hash equally). */
uint64_t rc_fval_hash(const struct rc_fval *v);

/* Does one predicate hold for the value found at its path (NULL = missing)? */
bool rc_filter_pred_eval(const struct rc_filter_pred *p, const json_t *v);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_FILTER_H */
