/* prom.c - the Prometheus text exposition writer (see prom.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/prom.h"

void rc_prom_init(struct rc_prom *p)
{
    memset(p, 0, sizeof(*p));
}

void rc_prom_fini(struct rc_prom *p)
{
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

char *rc_prom_take(struct rc_prom *p, size_t *len)
{
    char *out = p->failed ? NULL : p->buf;
    *len = p->failed ? 0 : p->len;
    if (p->failed)
        free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
    return out;
}

static bool reserve(struct rc_prom *p, size_t more)
{
    if (p->failed)
        return false;
    if (p->len + more + 1 <= p->cap)
        return true;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + more + 1)
        cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb) {
        p->failed = true;
        return false;
    }
    p->buf = nb;
    p->cap = cap;
    return true;
}

static void put(struct rc_prom *p, const char *s, size_t n)
{
    if (!reserve(p, n))
        return;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(struct rc_prom *p, const char *s)
{
    put(p, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) putf(struct rc_prom *p, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        p->failed = true; /* only numbers go through here: cannot happen */
        return;
    }
    put(p, tmp, (size_t)n);
}

void rc_prom_text(struct rc_prom *p, const char *text)
{
    puts_(p, text);
}

void rc_prom_family(struct rc_prom *p, const char *name, enum rc_prom_type type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    puts_(p, "# HELP ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, help);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, types[type]);
    put(p, "\n", 1);
}

static void label_value(struct rc_prom *p, const char *v)
{
    for (const char *c = v; *c; c++) {
        if (*c == '\\')
            put(p, "\\\\", 2);
        else if (*c == '"')
            put(p, "\\\"", 2);
        else if (*c == '\n')
            put(p, "\\n", 2);
        else
            put(p, c, 1);
    }
}

/* name{l...,extra="ev"} with the space before the value */
static void head(struct rc_prom *p, const char *name, const char *suffix,
                 const struct rc_prom_label *l, size_t nl, const char *extra, const char *ev)
{
    puts_(p, name);
    puts_(p, suffix);
    if (nl || extra) {
        put(p, "{", 1);
        for (size_t i = 0; i < nl; i++) {
            if (i)
                put(p, ",", 1);
            puts_(p, l[i].name);
            put(p, "=\"", 2);
            label_value(p, l[i].value);
            put(p, "\"", 1);
        }
        if (extra) {
            if (nl)
                put(p, ",", 1);
            puts_(p, extra);
            put(p, "=\"", 2);
            puts_(p, ev);
            put(p, "\"", 1);
        }
        put(p, "}", 1);
    }
    put(p, " ", 1);
}

void rc_prom_u64(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                 uint64_t v)
{
    head(p, name, "", l, nl, NULL, NULL);
    putf(p, "%llu\n", (unsigned long long)v);
}

static void put_double(struct rc_prom *p, double v)
{
    if (isnan(v))
        puts_(p, "NaN");
    else if (isinf(v))
        puts_(p, v > 0 ? "+Inf" : "-Inf");
    else
        putf(p, "%.12g", v);
}

void rc_prom_f64(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                 double v)
{
    head(p, name, "", l, nl, NULL, NULL);
    put_double(p, v);
    put(p, "\n", 1);
}

void rc_prom_histo(struct rc_prom *p, const char *name, const struct rc_prom_label *l, size_t nl,
                   const struct rc_histo *h, unsigned first, unsigned last, double scale)
{
    if (last > RC_HISTO_BUCKETS - 2)
        last = RC_HISTO_BUCKETS - 2; /* the last bucket is +Inf */
    uint64_t cum = 0;
    for (unsigned i = 0; i < first && i < RC_HISTO_BUCKETS; i++)
        cum += h->b[i];
    for (unsigned i = first; i <= last; i++) {
        cum += h->b[i];
        char le[40];
        snprintf(le, sizeof(le), "%.9g", ldexp(1.0, (int)i) * scale);
        head(p, name, "_bucket", l, nl, "le", le);
        putf(p, "%llu\n", (unsigned long long)cum);
    }
    head(p, name, "_bucket", l, nl, "le", "+Inf");
    putf(p, "%llu\n", (unsigned long long)h->count);
    head(p, name, "_sum", l, nl, NULL, NULL);
    put_double(p, (double)h->sum * scale);
    put(p, "\n", 1);
    head(p, name, "_count", l, nl, NULL, NULL);
    putf(p, "%llu\n", (unsigned long long)h->count);
}
