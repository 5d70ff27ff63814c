/* auth_rules.c - topic patterns and access rules: coverage and overlap of patterns, and
 * parsing one configured rule. Contract in include/ringcast/auth.h; the token helpers
 * shared with auth.c in src/auth/auth_internal.h.
 *
 * Patterns are compared token by token (at most RC_TOPIC_MAX_TOKENS each, split onto the
 * stack): no recursion, no allocation, O(tokens). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ringcast/auth.h"

#include "auth_internal.h"

/* ---- pattern coverage and overlap ------------------------------------------------------ */

bool rc_auth_toks_covers(const struct rc_auth_toks *c, const struct rc_auth_toks *p)
{
    for (size_t i = 0;; i++) {
        if (i == c->n)
            return i == p->n;
        if (rc_auth_tok_is_gt(c->t[i]))
            return i < p->n; /* '>' takes one or more of whatever p has left */
        if (i == p->n || rc_auth_tok_is_gt(p->t[i]))
            return false;
        if (rc_auth_tok_is_star(c->t[i]))
            continue;
        if (rc_auth_tok_is_star(p->t[i]) || !rc_auth_tok_eq(c->t[i], p->t[i]))
            return false;
    }
}

bool rc_auth_toks_intersect(const struct rc_auth_toks *a, const struct rc_auth_toks *b,
                            struct rc_auth_toks *out)
{
    out->n = 0;
    for (size_t i = 0;; i++) {
        if (i == a->n || i == b->n)
            return a->n == b->n;
        const struct rc_auth_toks *rest = rc_auth_tok_is_gt(a->t[i])   ? b
                                          : rc_auth_tok_is_gt(b->t[i]) ? a
                                                                       : NULL;
        if (rest) {
            for (size_t j = i; j < rest->n; j++)
                out->t[out->n++] = rest->t[j];
            return true;
        }
        if (rc_auth_tok_is_star(a->t[i]))
            out->t[out->n++] = b->t[i];
        else if (rc_auth_tok_is_star(b->t[i]) || rc_auth_tok_eq(a->t[i], b->t[i]))
            out->t[out->n++] = a->t[i];
        else
            return false;
    }
}

bool rc_auth_pattern_covers(const char *c, size_t cn, const char *p, size_t pn)
{
    struct rc_err err;
    struct rc_auth_toks ct, pt;

    if (rc_topic_validate(c, cn, RC_TOPIC_PATTERN, &err) != 0 ||
        rc_topic_validate(p, pn, RC_TOPIC_PATTERN, &err) != 0)
        return false;
    rc_auth_toks_split(c, cn, &ct);
    rc_auth_toks_split(p, pn, &pt);
    return rc_auth_toks_covers(&ct, &pt);
}

bool rc_auth_patterns_overlap(const char *a, size_t an, const char *b, size_t bn)
{
    struct rc_err err;
    struct rc_auth_toks at, bt, out;

    if (rc_topic_validate(a, an, RC_TOPIC_PATTERN, &err) != 0 ||
        rc_topic_validate(b, bn, RC_TOPIC_PATTERN, &err) != 0)
        return false;
    rc_auth_toks_split(a, an, &at);
    rc_auth_toks_split(b, bn, &bt);
    return rc_auth_toks_intersect(&at, &bt, &out);
}

/* ---- rules ------------------------------------------------------------------------------ */

static int rule_fail(struct rc_err *err, unsigned index, const char *fmt, ...) RC_PRINTF(3, 4);

static int rule_fail(struct rc_err *err, unsigned index, const char *fmt, ...)
{
    char body[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    rc_err_set(err, 500, "bad_config", "config: rules item %u: %s", index, body);
    return -EINVAL;
}

static bool word_is(struct rc_slice w, const char *lit)
{
    return rc_slice_eq(w, lit);
}

static bool parse_digits(struct rc_slice v, size_t *used, uint64_t *out)
{
    uint64_t x = 0;
    size_t i = 0;

    for (; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++)
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, v.p[i] - '0', &x))
            return false;
    *used = i;
    *out = x;
    return i > 0;
}

static bool parse_number(struct rc_slice v, uint64_t max, uint64_t *out)
{
    size_t used;
    return parse_digits(v, &used, out) && used == v.n && *out <= max;
}

/* The config's duration syntax: a number with ms, s, m or h; a bare 0. */
static bool parse_ms(struct rc_slice v, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t num;
    size_t used;

    if (!parse_digits(v, &used, &num))
        return false;
    struct rc_slice unit = rc_slice_make(v.p + used, v.n - used);
    if (unit.n == 0 && num == 0) {
        *out = 0;
        return true;
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(units); i++)
        if (word_is(unit, units[i].unit))
            return !__builtin_mul_overflow(num, units[i].ms, out) &&
                   *out <= RC_AUTH_HISTORY_TTL_MAX_MS;
    return false;
}

static bool parse_flag(struct rc_slice v, bool *out)
{
    if (word_is(v, "true")) {
        *out = true;
        return true;
    }
    if (word_is(v, "false")) {
        *out = false;
        return true;
    }
    return false;
}

/* Index of w in words (NULL-terminated), or -1. */
static int word_index(struct rc_slice w, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (word_is(w, words[i]))
            return i;
    return -1;
}

static const char *const setting_names[] = {"subscribe",       "publish",     "presence",
                                            "history_size",    "history_ttl", "retain",
                                            "max_subscribers", NULL};
static const char *const sub_words[] = {"anonymous", "authenticated", "claim", "none", NULL};
static const char *const pub_words[] = {"none", "authenticated", "claim", NULL};

/* Apply one key=value setting (key index ki) to r. */
static int rule_setting(struct rc_auth_rule *r, int ki, struct rc_slice key, struct rc_slice v,
                        struct rc_err *err)
{
    uint64_t x;
    int w;
#define BAD(...) rule_fail(err, r->index, __VA_ARGS__)
#define SHOWKV (int)key.n, key.p, (int)(v.n > 48 ? 48 : v.n), v.p

    switch (ki) {
    case 0:
        if ((w = word_index(v, sub_words)) < 0)
            return BAD("%.*s=%.*s is not allowed; use anonymous, authenticated, claim or none",
                       SHOWKV);
        r->subscribe = (enum rc_auth_sub_mode)(RC_AUTH_SUB_ANONYMOUS + w);
        return 0;
    case 1:
        if ((w = word_index(v, pub_words)) < 0)
            return BAD("%.*s=%.*s is not allowed; use none, authenticated or claim", SHOWKV);
        r->publish = (enum rc_auth_pub_mode)(RC_AUTH_PUB_NONE + w);
        return 0;
    case 2:
    case 5:
        if (!parse_flag(v, ki == 2 ? &r->presence : &r->retain))
            return BAD("%.*s=%.*s is not a boolean; use true or false", SHOWKV);
        r->set |= ki == 2 ? RC_AUTH_RULE_PRESENCE : RC_AUTH_RULE_RETAIN;
        return 0;
    case 3:
        if (!parse_number(v, RC_AUTH_HISTORY_MAX, &x))
            return BAD("%.*s=%.*s is not a number in 0..%u", SHOWKV, RC_AUTH_HISTORY_MAX);
        r->history_size = (uint32_t)x;
        r->set |= RC_AUTH_RULE_HISTORY_SIZE;
        return 0;
    case 4:
        if (!parse_ms(v, &r->history_ttl_ms))
            return BAD("%.*s=%.*s is not a duration; use a number with ms, s, m or h "
                       "(e.g. 10m), at most 720h, or 0 for no age limit",
                       SHOWKV);
        r->set |= RC_AUTH_RULE_HISTORY_TTL;
        return 0;
    default:
        if (!parse_number(v, RC_AUTH_SUBSCRIBERS_MAX, &x))
            return BAD("%.*s=%.*s is not a number in 0..%u (0 = unlimited)", SHOWKV,
                       RC_AUTH_SUBSCRIBERS_MAX);
        r->max_subscribers = (uint32_t)x;
        r->set |= RC_AUTH_RULE_MAX_SUBSCRIBERS;
        return 0;
    }
#undef SHOWKV
#undef BAD
}

/* The next word of s[*pos..n) separated by spaces or tabs; false at the end. */
static bool next_word(const char *s, size_t n, size_t *pos, struct rc_slice *w)
{
    size_t i = *pos;

    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n)
        return false;
    size_t start = i;
    while (i < n && s[i] != ' ' && s[i] != '\t')
        i++;
    *w = rc_slice_make(s + start, i - start);
    *pos = i;
    return true;
}

int rc_auth_rule_parse(const char *text, size_t n, unsigned index, struct rc_auth_rule *out,
                       struct rc_err *err)
{
    struct rc_auth_rule r = {.index = index};
    struct rc_err terr;
    struct rc_slice w;
    unsigned seen = 0;
    size_t pos = 0;

    if (!next_word(text, n, &pos, &w))
        return rule_fail(err, index,
                         "empty rule; write PATTERN key=value ..., e.g. "
                         "\"chat.> subscribe=authenticated\"");
    if (memchr(w.p, '=', w.n))
        return rule_fail(err, index, "must start with a topic pattern, e.g. \"chat.> %.*s\"",
                         (int)(w.n > 48 ? 48 : w.n), w.p);
    if (rc_topic_validate(w.p, w.n, RC_TOPIC_PATTERN, &terr) != 0)
        return rule_fail(err, index, "bad pattern: %s", terr.msg);
    memcpy(r.pattern, w.p, w.n);
    r.pattern[w.n] = '\0';
    r.pattern_len = w.n;
    while (next_word(text, n, &pos, &w)) {
        const char *eq = memchr(w.p, '=', w.n);
        if (!eq)
            return rule_fail(err, index,
                             "\"%.*s\" is not key=value; settings are subscribe, publish, "
                             "presence, history_size, history_ttl, retain, max_subscribers",
                             (int)(w.n > 48 ? 48 : w.n), w.p);
        struct rc_slice key = rc_slice_make(w.p, (size_t)(eq - w.p));
        struct rc_slice v = rc_slice_make(eq + 1, w.n - key.n - 1);
        int ki = word_index(key, setting_names);
        if (ki < 0)
            return rule_fail(err, index,
                             "unknown setting \"%.*s\"; use subscribe, publish, presence, "
                             "history_size, history_ttl, retain or max_subscribers",
                             (int)(key.n > 48 ? 48 : key.n), key.p);
        if (seen & (1u << ki))
            return rule_fail(err, index, "%s is given twice; give it once", setting_names[ki]);
        seen |= 1u << ki;
        int rc = rule_setting(&r, ki, key, v, err);
        if (rc)
            return rc;
    }
    *out = r;
    return 0;
}
