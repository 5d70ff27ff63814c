/* prom.h - a writer of the Prometheus text exposition format (0.0.4), for
 * GET /metrics.
 *
 * Owner: the caller's thread; one rc_prom per rendering, growing a malloc'd
 *   buffer. A failed allocation sets `failed` and makes every later call a
 *   no-op, so a renderer writes everything and checks once at the end.
 * Output rules kept here, not by the callers: a family's HELP and TYPE lines
 *   come once, before its samples (rc_prom_family); label values are escaped
 *   (backslash, double quote, newline); a histogram writes cumulative
 *   _bucket lines with le ascending and ending in +Inf, then _sum and _count.
 * Names are not checked: callers pass literal names that follow the
 *   conventions (ringcast_ prefix, _total for counters, base units). */
#ifndef RINGCAST_PROM_H
#define RINGCAST_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/histo.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_prom {
    char *buf; /* NUL-terminated text, owned; take it with rc_prom_take */
    size_t len, cap;
    bool failed;
};

enum rc_prom_type { RC_PROM_COUNTER, RC_PROM_GAUGE, RC_PROM_HISTOGRAM };

/* A label set: n pairs; values are escaped on output. */
struct rc_prom_label {
    const char *name;
    const char *value;
};

void rc_prom_init(struct rc_prom *p);
void rc_prom_fini(struct rc_prom *p);
/* The text (caller frees) with its length, or NULL after a failure. */
char *rc_prom_take(struct rc_prom *p, size_t *len);

/* Append text rendered elsewhere (whole lines). */
void rc_prom_text(struct rc_prom *p, const char *text);
/* "# HELP name help" and "# TYPE name type". */
void rc_prom_family(struct rc_prom *p, const char *name, enum rc_prom_type type, const char *help);
/* name{labels} value; an integer and a floating-point variant. */
void rc_prom_u64(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                 uint64_t v);
void rc_prom_f64(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                 double v);
/* The samples of histogram h: buckets first..last of h (2^first .. 2^last,
 * times scale, as le: e.g. 1e-9 for nanoseconds rendered as seconds; smaller
 * buckets are folded into the first), then +Inf, _sum (times scale) and
 * _count. The caller wrote the family (RC_PROM_HISTOGRAM) already. */
void rc_prom_histo(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                   const struct rc_histo *h, unsigned first, unsigned last, double scale);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_PROM_H */
