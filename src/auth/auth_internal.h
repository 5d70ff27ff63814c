/* auth_internal.h - private to src/auth/auth.c and src/auth/auth_rules.c: topic patterns split into
 * tokens and the token-by-token coverage and intersection both files use.
 * auth_rules.c holds the pattern logic (coverage, intersection, rc_auth_pattern_covers,
 * rc_auth_patterns_overlap) and the rule parser (rc_auth_rule_parse); auth.c holds the
 * context, identities, the access decisions built on the pattern logic, API keys and where
 * tokens come from.
 * Owner: none; everything here works on the caller's stack and is safe on any thread.
 * Invariants: a struct rc_auth_toks filled by rc_auth_toks_split from a valid pattern holds
 *   at most RC_TOPIC_MAX_TOKENS slices; t[] has room for twice that so an intersection of two
 *   such patterns fits. Nothing here recurses or allocates; all of it is O(tokens).
 * Lifetimes: the slices point into the text that was split (or, for an intersection, into
 *   both inputs' text) and are valid only as long as that text. */
#ifndef RINGCAST_AUTH_INTERNAL_H
#define RINGCAST_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "ringcast/common.h"
#include "ringcast/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pattern or topic as its tokens. */
struct rc_auth_toks {
    size_t n;
    struct rc_slice t[RC_TOPIC_MAX_TOKENS * 2]; /* an intersection may need two patterns' */
};

/* Split s[0..n) into out. False when it has more than RC_TOPIC_MAX_TOKENS tokens (never
 * for a validated pattern). */
static inline bool rc_auth_toks_split(const char *s, size_t n, struct rc_auth_toks *out)
{
    out->n = rc_topic_split(s, n, out->t, RC_TOPIC_MAX_TOKENS);
    return out->n <= RC_TOPIC_MAX_TOKENS;
}

static inline bool rc_auth_tok_is_gt(struct rc_slice t)
{
    return t.n == 1 && t.p[0] == '>';
}

static inline bool rc_auth_tok_is_star(struct rc_slice t)
{
    return t.n == 1 && t.p[0] == '*';
}

static inline bool rc_auth_tok_eq(struct rc_slice a, struct rc_slice b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Every topic p matches is matched by c (both split from valid patterns). */
bool rc_auth_toks_covers(const struct rc_auth_toks *c, const struct rc_auth_toks *p);

/* The pattern matching exactly the topics both a and b match, into out (slices into a's
 * and b's text). False when no topic matches both. */
bool rc_auth_toks_intersect(const struct rc_auth_toks *a, const struct rc_auth_toks *b,
                            struct rc_auth_toks *out);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_AUTH_INTERNAL_H */
