/* config_value.c - one parser and one formatter per configuration value type
 * (bool, number, port, size, duration, string, address, enum, list), and
 * rc_config_apply, which picks the parser for a key. The value syntax is
 * documented at the top of config.c; the key table that says which type each
 * key has is there too. Private API in config_internal.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config_internal.h"
#include "ringcast/config.h"

#define SHOW_MAX 64 /* bytes of a bad value echoed in a message */

/* ---- value formatting ---------------------------------------------------- */

void rc_config_fmt_size(uint64_t v, char *buf, size_t n)
{
    if (v != 0 && v % GIB == 0)
        snprintf(buf, n, "%lluGiB", (unsigned long long)(v / GIB));
    else if (v != 0 && v % MIB == 0)
        snprintf(buf, n, "%lluMiB", (unsigned long long)(v / MIB));
    else if (v != 0 && v % KIB == 0)
        snprintf(buf, n, "%lluKiB", (unsigned long long)(v / KIB));
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

void rc_config_fmt_duration(uint64_t ms, char *buf, size_t n)
{
    if (ms == 0)
        snprintf(buf, n, "0");
    else if (ms % HOUR == 0)
        snprintf(buf, n, "%lluh", (unsigned long long)(ms / HOUR));
    else if (ms % MIN == 0)
        snprintf(buf, n, "%llum", (unsigned long long)(ms / MIN));
    else if (ms % SEC == 0)
        snprintf(buf, n, "%llus", (unsigned long long)(ms / SEC));
    else
        snprintf(buf, n, "%llums", (unsigned long long)ms);
}

static void fmt_number(const struct rc_config_key *k, uint64_t v, char *buf, size_t n)
{
    if (k->type == T_SIZE)
        rc_config_fmt_size(v, buf, n);
    else if (k->type == T_DURATION)
        rc_config_fmt_duration(v, buf, n);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* "0..256 (0 = one per CPU)" */
void rc_config_fmt_range(const struct rc_config_key *k, char *buf, size_t n)
{
    char lo[32], hi[32];

    fmt_number(k, k->min, lo, sizeof(lo));
    fmt_number(k, k->max, hi, sizeof(hi));
    if (k->hint)
        snprintf(buf, n, "%s..%s (%s)", lo, hi, k->hint);
    else
        snprintf(buf, n, "%s..%s", lo, hi);
}

/* ---- value parsers ------------------------------------------------------- */
/* Each takes the name as the user wrote it (port, RINGCAST_PORT, --port) in
 * `shown`, writes the field only on success, and on failure writes a message
 * body (no "config:" prefix) into msg and returns -EINVAL. */

/* Decimal digits only: no sign, no spaces, no hex. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

static bool word_ieq(const char *s, size_t n, const char *lit)
{
    return rc_slice_ieq(rc_slice_make(s, n), lit);
}

static int parse_bool(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      struct rc_config_msgbuf m)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t n = strlen(v);

    (void)k;
    for (size_t i = 0; i < RC_ARRAY_LEN(yes); i++) {
        if (word_ieq(v, n, yes[i])) {
            *(bool *)dst = true;
            return 0;
        }
        if (word_ieq(v, n, no[i])) {
            *(bool *)dst = false;
            return 0;
        }
    }
    snprintf(m.p, m.n, "%s=%.*s is not a boolean; use true or false (or yes/no, on/off, 1/0)",
             shown, SHOW_MAX, v);
    return -EINVAL;
}

static int parse_uint(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      struct rc_config_msgbuf m)
{
    uint64_t x;
    char range[96];

    rc_config_fmt_range(k, range, sizeof(range));
    if (!parse_u64(v, strlen(v), &x)) {
        snprintf(m.p, m.n, "%s=%.*s is not a number; use %s", shown, SHOW_MAX, v, range);
        return -EINVAL;
    }
    if (x < k->min || x > k->max) {
        snprintf(m.p, m.n, "%s=%.*s is out of range; use %s", shown, SHOW_MAX, v, range);
        return -EINVAL;
    }
    if (k->type == T_PORT)
        *(uint16_t *)dst = (uint16_t)x;
    else
        *(uint32_t *)dst = (uint32_t)x;
    return 0;
}

/* Split "12 KiB" into digits and unit (spaces between are allowed). */
static bool split_unit(const char *v, uint64_t *num, const char **unit)
{
    size_t d = 0;

    while (v[d] >= '0' && v[d] <= '9')
        d++;
    if (!parse_u64(v, d, num))
        return false;
    v += d;
    while (*v == ' ' || *v == '\t')
        v++;
    *unit = v;
    return true;
}

static int parse_size(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      struct rc_config_msgbuf m)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},      {"B", 1},     {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
        {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
    };
    uint64_t num, bytes;
    const char *unit;
    char range[96];

    rc_config_fmt_range(k, range, sizeof(range));
    if (!split_unit(v, &num, &unit))
        goto bad;
    if (word_ieq(unit, strlen(unit), "k") || word_ieq(unit, strlen(unit), "m") ||
        word_ieq(unit, strlen(unit), "g")) {
        snprintf(m.p, m.n, "%s=%.*s has an ambiguous unit \"%s\"; use %ciB (1024s) or %cB (1000s)",
                 shown, SHOW_MAX, v, unit, (char)(unit[0] & ~0x20), (char)(unit[0] & ~0x20));
        return -EINVAL;
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(units); i++) {
        if (!word_ieq(unit, strlen(unit), units[i].unit))
            continue;
        if (__builtin_mul_overflow(num, units[i].mult, &bytes) || bytes < k->min ||
            bytes > k->max || bytes > SIZE_MAX) {
            snprintf(m.p, m.n, "%s=%.*s is out of range; use %s", shown, SHOW_MAX, v, range);
            return -EINVAL;
        }
        *(size_t *)dst = (size_t)bytes;
        return 0;
    }
bad:
    snprintf(m.p, m.n,
             "%s=%.*s is not a size; use bytes or a number with B, KB, MB, GB, KiB, "
             "MiB or GiB, in %s",
             shown, SHOW_MAX, v, range);
    return -EINVAL;
}

static int parse_duration(const struct rc_config_key *k, const char *v, const char *shown,
                          void *dst, struct rc_config_msgbuf m)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", MS}, {"s", SEC}, {"m", MIN}, {"h", HOUR}};
    uint64_t num, ms;
    const char *unit;
    char range[96];

    rc_config_fmt_range(k, range, sizeof(range));
    if (!split_unit(v, &num, &unit))
        goto bad;
    if (*unit == '\0') {
        if (num == 0)
            goto store_zero;
        snprintf(m.p, m.n, "%s=%.*s needs a unit; use ms, s, m or h (e.g. %.*ss), in %s", shown,
                 SHOW_MAX, v, SHOW_MAX, v, range);
        return -EINVAL;
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(units); i++) {
        if (strcmp(unit, units[i].unit) != 0)
            continue;
        if (__builtin_mul_overflow(num, units[i].ms, &ms) || ms < k->min || ms > k->max) {
            snprintf(m.p, m.n, "%s=%.*s is out of range; use %s", shown, SHOW_MAX, v, range);
            return -EINVAL;
        }
        *(uint64_t *)dst = ms;
        return 0;
    }
bad:
    snprintf(m.p, m.n,
             "%s=%.*s is not a duration; use a number with ms, s, m or h (e.g. 10s), "
             "in %s",
             shown, SHOW_MAX, v, range);
    return -EINVAL;
store_zero:
    if (k->min > 0) {
        snprintf(m.p, m.n, "%s=%.*s is out of range; use %s", shown, SHOW_MAX, v, range);
        return -EINVAL;
    }
    *(uint64_t *)dst = 0;
    return 0;
}

/* Position of the first control character in s[0..n), or -1. */
static ssize_t find_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return (ssize_t)i;
    return -1;
}

static int parse_string(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                        struct rc_config_msgbuf m)
{
    size_t n = strlen(v);

    if (n >= k->size) {
        snprintf(m.p, m.n, "%s is too long (%zu bytes); use at most %zu bytes", shown, n,
                 k->size - 1);
        return -EINVAL;
    }
    if (find_control(v, n) >= 0) {
        snprintf(m.p, m.n, "%s contains a control character (byte %zd); remove it", shown,
                 find_control(v, n));
        return -EINVAL;
    }
    memcpy(dst, v, n + 1);
    return 0;
}

static int parse_addr(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      struct rc_config_msgbuf m)
{
    unsigned char bin[16];

    if (strcmp(v, "localhost") == 0 || inet_pton(AF_INET, v, bin) == 1 ||
        inet_pton(AF_INET6, v, bin) == 1)
        return parse_string(k, v, shown, dst, m);
    snprintf(m.p, m.n,
             "%s=%.*s is not an IP address; use an IPv4 or IPv6 literal without "
             "brackets (e.g. 0.0.0.0 or ::) or localhost",
             shown, SHOW_MAX, v);
    return -EINVAL;
}

static int parse_enum(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      struct rc_config_msgbuf m)
{
    size_t used;

    for (unsigned i = 0; k->words[i]; i++) {
        if (strcmp(v, k->words[i]) == 0) {
            *(unsigned int *)dst = i;
            return 0;
        }
    }
    used = (size_t)snprintf(m.p, m.n, "%s=%.*s is not allowed; use one of:", shown, SHOW_MAX, v);
    for (unsigned i = 0; k->words[i] && used < m.n; i++)
        used += (size_t)snprintf(m.p + used, m.n - used, " %s", k->words[i]);
    return -EINVAL;
}

void rc_config_list_clear(struct rc_config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Next comma-separated item of *s, trimmed; false at the end. */
static bool next_item(const char **s, const char **item, size_t *n)
{
    const char *p = *s, *end;

    if (*p == '\0')
        return false;
    end = strchr(p, ',');
    if (!end)
        end = p + strlen(p);
    *s = *end == ',' ? end + 1 : end;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *item = p;
    *n = (size_t)(end - p);
    return true;
}

/* Check every item first, so a bad value leaves the list unchanged. */
static int check_list(const struct rc_config_key *k, const char *v, const char *shown, size_t have,
                      size_t *count, struct rc_config_msgbuf m)
{
    const char *s = v, *item, *why;
    size_t n, i = 0;
    char buf[RC_CONFIG_ITEM_MAX];
    bool trailing = v[0] != '\0' && v[strlen(v) - 1] == ',';

    while (next_item(&s, &item, &n)) {
        i++;
        if (n == 0) {
            snprintf(m.p, m.n, "%s item %zu is empty; separate items with single commas", shown, i);
            return -EINVAL;
        }
        if (n >= sizeof(buf)) {
            snprintf(m.p, m.n, "%s item %zu is too long; use at most %zu bytes", shown, i,
                     sizeof(buf) - 1);
            return -EINVAL;
        }
        if (find_control(item, n) >= 0) {
            snprintf(m.p, m.n, "%s item %zu contains a control character; remove it", shown, i);
            return -EINVAL;
        }
        memcpy(buf, item, n);
        buf[n] = '\0';
        why = k->check_item ? k->check_item(buf) : NULL;
        if (why && k->secret) {
            snprintf(m.p, m.n, "%s item %zu %s", shown, i, why);
            return -EINVAL;
        }
        if (why) {
            snprintf(m.p, m.n, "%s item \"%.*s\" %s", shown, SHOW_MAX, buf, why);
            return -EINVAL;
        }
    }
    if (trailing) {
        snprintf(m.p, m.n, "%s ends with a comma; remove it", shown);
        return -EINVAL;
    }
    if (i > k->max - have) {
        snprintf(m.p, m.n, "%s has more than %llu items; use fewer", shown,
                 (unsigned long long)k->max);
        return -EINVAL;
    }
    *count = i;
    return 0;
}

static int parse_list(const struct rc_config_key *k, const char *v, const char *shown, void *dst,
                      enum rc_config_list_mode mode, struct rc_config_msgbuf m)
{
    struct rc_config_list *l = dst;
    size_t count, have, i = 0;
    const char *s = v, *item;
    char **items;
    size_t n;
    int rc;
    bool replace = mode == LIST_REPLACE || (mode == LIST_SET && v[0] == '\0');

    rc = check_list(k, v, shown, replace ? 0 : l->n, &count, m);
    if (rc)
        return rc;
    if (replace)
        rc_config_list_clear(l);
    have = l->n;
    if (count == 0)
        return 0;
    items = realloc(l->items, (have + count) * sizeof(*items));
    if (!items)
        goto nomem;
    l->items = items;
    while (next_item(&s, &item, &n)) {
        l->items[have + i] = strndup(item, n);
        if (!l->items[have + i])
            goto nomem;
        l->n = have + ++i;
    }
    return 0;
nomem:
    snprintf(m.p, m.n, "%s: out of memory", shown);
    return -ENOMEM;
}

int rc_config_apply(struct rc_config *c, const struct rc_config_key *k, const char *v,
                    const char *shown, enum rc_config_list_mode mode, struct rc_config_msgbuf m)
{
    void *dst = rc_config_field(c, k);

    switch (k->type) {
    case T_BOOL:
        return parse_bool(k, v, shown, dst, m);
    case T_UINT:
    case T_PORT:
        return parse_uint(k, v, shown, dst, m);
    case T_SIZE:
        return parse_size(k, v, shown, dst, m);
    case T_DURATION:
        return parse_duration(k, v, shown, dst, m);
    case T_STRING:
        return parse_string(k, v, shown, dst, m);
    case T_ADDR:
        return parse_addr(k, v, shown, dst, m);
    case T_ENUM:
        return parse_enum(k, v, shown, dst, m);
    case T_LIST:
        return parse_list(k, v, shown, dst, mode, m);
    }
    snprintf(m.p, m.n, "%s has an unknown type", shown);
    return -EINVAL;
}
