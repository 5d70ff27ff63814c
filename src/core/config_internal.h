/* config_internal.h - private to src/core/config.c, src/core/config_value.c and
 * src/core/config_load.c: the key table and the value parsers/formatters they share.
 * config.c owns the table (rc_config_keys), defaults and validation;
 * config_value.c turns one value's text into a field (rc_config_apply) or a
 * field into text (rc_config_fmt_*); config_load.c finds keys by the names
 * users type and feeds them values from the file, the environment and the
 * flags.
 * Owner: the main thread (like struct rc_config, configuration is loaded once
 *   at start, before other threads exist). Nothing here holds state besides
 *   the read-only table.
 * Invariants: rc_config_keys has exactly RC_CONFIG_NKEYS entries, in the order
 *   --help and --check-config print them; a key's offset/size/type match its
 *   field in struct rc_config (checked at compile time in config.c).
 * Lifetimes: table strings are static; rc_config_apply copies what it keeps. */
#ifndef RINGCAST_CONFIG_INTERNAL_H
#define RINGCAST_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Units of the value syntax: durations are stored in ms, sizes in bytes. */
#define MS 1ull
#define SEC (1000 * MS)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB ((uint64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

enum rc_config_type {
    T_BOOL,
    T_UINT,
    T_PORT,
    T_SIZE,
    T_DURATION,
    T_STRING,
    T_ADDR,
    T_ENUM,
    T_LIST
};

struct rc_config_key {
    const char *name;
    enum rc_config_type type;
    size_t offset;
    size_t size;              /* T_STRING/T_ADDR: buffer size, NUL included */
    const char *def;          /* default, in the value syntax */
    uint64_t min, max;        /* T_UINT/T_SIZE (bytes)/T_DURATION (ms) range */
    const char *const *words; /* T_ENUM: allowed words, NULL-terminated */
    const char *hint;         /* shown after the range, e.g. "0 = one per CPU" */
    bool secret;              /* never echo or print the value */
    /* T_LIST: per-item check; NULL if any text goes. Returns the reason or NULL. */
    const char *(*check_item)(const char *item);
    const char *doc;
};

/* Entries in rc_config_keys; a compile-time constant so that loaders can keep
 * per-key arrays on the stack. config.c asserts it matches the table. */
#define RC_CONFIG_NKEYS 80

extern const struct rc_config_key rc_config_keys[];

/* How a list key takes a value: loaders replace on the first mention in a
 * source and append on later ones; rc_config_set appends (empty clears). */
enum rc_config_list_mode { LIST_SET, LIST_REPLACE, LIST_APPEND };

/* Where a parser writes its error message body (no "config:" prefix). */
struct rc_config_msgbuf {
    char *p;
    size_t n;
};

static inline void *rc_config_field(struct rc_config *c, const struct rc_config_key *k)
{
    return (char *)c + k->offset;
}

static inline const void *rc_config_cfield(const struct rc_config *c, const struct rc_config_key *k)
{
    return (const char *)c + k->offset;
}

/* Parse the text v into k's field of c. `shown` is the name as the user wrote
 * it (port, RINGCAST_PORT, --port), used in the message. Writes the field only
 * on success; returns 0, or -EINVAL/-ENOMEM with a message body in m. */
int rc_config_apply(struct rc_config *c, const struct rc_config_key *k, const char *v,
                    const char *shown, enum rc_config_list_mode mode, struct rc_config_msgbuf m);

/* Free a list's items and leave it empty (items NULL, n 0). */
void rc_config_list_clear(struct rc_config_list *l);

/* Format a value the way the value syntax writes it (8KiB, 30s), into buf[n]. */
void rc_config_fmt_size(uint64_t v, char *buf, size_t n);
void rc_config_fmt_duration(uint64_t ms, char *buf, size_t n);
/* k's allowed range and hint, e.g. "0..256 (0 = one per CPU)". */
void rc_config_fmt_range(const struct rc_config_key *k, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_CONFIG_INTERNAL_H */
