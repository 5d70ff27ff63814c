/* common.h - small shared vocabulary: error reports, parse results, slices.
 * Owner: none (header-only helpers plus rc_err_set in src/core/common.c).
 * Every module includes this; it must stay tiny and dependency-free.
 * Invariant: an rc_err's msg is always NUL-terminated and says what was wrong
 *   and, where possible, what to do instead. */
#ifndef RINGCAST_COMMON_H
#define RINGCAST_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RC_MUST_CHECK __attribute__((warn_unused_result))
#define RC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RC_LIKELY(x) __builtin_expect(!!(x), 1)
#define RC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RC_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Three outcomes of an incremental parser (picohttpparser / nginx style). */
enum rc_parse {
    RC_PARSE_DONE, /* a complete unit was parsed; see the consumed count */
    RC_PARSE_MORE, /* need more input; nothing is lost by calling again */
    RC_PARSE_FAIL, /* input is malformed; rc_err says why */
};

/* A failure report. status is the HTTP status (or WebSocket close code) that
 * the failure maps to, code a short stable machine-readable token
 * ("bad_request", "bad_filter", ...), msg the human sentence. */
struct rc_err {
    int status;
    const char *code;
    char msg[224];
};

void rc_err_set(struct rc_err *e, int status, const char *code, const char *fmt, ...)
    RC_PRINTF(4, 5);

/* A read-only view into someone else's buffer; never owns memory. */
struct rc_slice {
    const char *p;
    size_t n;
};

#define RC_SLICE_LIT(s) ((struct rc_slice){(s), sizeof(s) - 1})

static inline struct rc_slice rc_slice_make(const char *p, size_t n)
{
    return (struct rc_slice){p, n};
}

static inline bool rc_slice_eq(struct rc_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static inline char rc_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive comparison (HTTP header names and tokens). */
static inline bool rc_slice_ieq(struct rc_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (rc_ascii_lower(s.p[i]) != rc_ascii_lower(lit[i]))
            return false;
    return true;
}

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool rc_add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool rc_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

#endif /* RINGCAST_COMMON_H */
