/* topic.c - topic and pattern syntax, tokenising, naive matching, owner shard. */
#include <errno.h>
#include <xxhash.h>

#include "ringcast/topic.h"

/* Print at most 64 bytes of a topic inside a message; the rest is elided. */
#define SHOWN 64

static int fail(struct rc_err *err, const char *s, size_t n, const char *fmt_tail, size_t tokno,
                const char *what)
{
    int shown = n > SHOWN ? SHOWN : (int)n;
    const char *ell = n > SHOWN ? "..." : "";

    rc_err_set(err, 400, "bad_topic", "topic \"%.*s%s\": token %zu %s; %s", shown, s, ell, tokno,
               what, fmt_tail);
    return -EINVAL;
}

static bool token_is_wild(const char *p, size_t n)
{
    return n == 1 && (p[0] == '*' || p[0] == '>');
}

int rc_topic_validate(const char *s, size_t n, enum rc_topic_kind kind, struct rc_err *err)
{
    size_t start = 0, tokno = 1;

    if (n > RC_TOPIC_MAX_LEN) {
        rc_err_set(err, 400, "bad_topic",
                   "topic is %zu bytes long; the limit is %d bytes, use a shorter topic", n,
                   RC_TOPIC_MAX_LEN);
        return -EINVAL;
    }
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        const char *tok = s + start;
        size_t len = i - start;

        if (tokno > RC_TOPIC_MAX_TOKENS)
            return fail(err, s, n, "use at most 32 tokens", tokno, "is one too many");
        if (len == 0)
            return fail(err, s, n, "tokens are separated by single dots", tokno, "is empty");
        if (kind == RC_TOPIC_PATTERN && token_is_wild(tok, len)) {
            if (tok[0] == '>' && i != n)
                return fail(err, s, n, "'>' may only be the last token", tokno,
                            "is '>' but is not the last");
        } else {
            for (size_t k = 0; k < len; k++) {
                unsigned char c = (unsigned char)tok[k];
                if (c < 0x21 || c > 0x7e)
                    return fail(err, s, n, "use printable ASCII without spaces", tokno,
                                "has a space, control or non-ASCII byte");
                if (c == '*' || c == '>') {
                    if (kind == RC_TOPIC_NAME)
                        return fail(err, s, n,
                                    "wildcards '*' and '>' are only allowed in subscription "
                                    "patterns",
                                    tokno, "has a wildcard");
                    return fail(err, s, n, "'*' and '>' must be whole tokens (\"a.*.c\", \"a.>\")",
                                tokno, "mixes a wildcard with other characters");
                }
            }
        }
        start = i + 1;
        tokno++;
    }
    return 0;
}

bool rc_topic_is_pattern(const char *s, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (token_is_wild(s + start, i - start))
            return true;
        start = i + 1;
    }
    return false;
}

size_t rc_topic_split(const char *s, size_t n, struct rc_slice *tok, size_t cap)
{
    size_t start = 0, count = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (count < cap)
            tok[count] = rc_slice_make(s + start, i - start);
        count++;
        start = i + 1;
    }
    return count;
}

/* Advance *pos past the next token of s[0..n); store it in *t. False at end. */
static bool next_token(const char *s, size_t n, size_t *pos, struct rc_slice *t)
{
    size_t i = *pos;

    if (i > n)
        return false;
    size_t j = i;
    while (j < n && s[j] != '.')
        j++;
    *t = rc_slice_make(s + i, j - i);
    *pos = j + 1;
    return true;
}

bool rc_topic_match(const char *pat, size_t pn, const char *topic, size_t tn)
{
    size_t pp = 0, tp = 0;
    struct rc_slice a, b;

    for (;;) {
        bool have_p = next_token(pat, pn, &pp, &a);
        bool have_t = next_token(topic, tn, &tp, &b);

        if (!have_p || !have_t)
            return have_p == have_t;
        if (a.n == 1 && a.p[0] == '>')
            return true; /* b is at least one token */
        if (a.n == 1 && a.p[0] == '*')
            continue;
        if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0)
            return false;
    }
}

unsigned rc_topic_owner(unsigned nshards, const char *s, size_t n)
{
    return (unsigned)(XXH3_64bits(s, n) % nshards);
}
