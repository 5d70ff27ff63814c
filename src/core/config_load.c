/* config_load.c - where configuration values come from, and the text shown
 * to the operator: a key set by name (rc_config_set), the config file, the
 * RINGCAST_* environment, the command-line flags, rc_config_load() which runs
 * them in precedence order, and the --check-config (rc_config_print) and
 * --help (rc_config_usage) output. Values are parsed by the key table in
 * config.c; the file format and value syntax are documented there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "ringcast/config.h"

#define ENV_PREFIX "RINGCAST_"
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)
#define NAME_MAX_LEN 40 /* longer names cannot be keys */

static const char *const type_names[] = {
    [T_BOOL] = "bool",    [T_UINT] = "number",       [T_PORT] = "port",
    [T_SIZE] = "size",    [T_DURATION] = "duration", [T_STRING] = "string",
    [T_ADDR] = "address", [T_ENUM] = "enum",         [T_LIST] = "list",
};

/* ---- names --------------------------------------------------------------- */

static const struct rc_config_key *find_key(const char *name, size_t n)
{
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++)
        if (strlen(rc_config_keys[i].name) == n && memcmp(rc_config_keys[i].name, name, n) == 0)
            return &rc_config_keys[i];
    return NULL;
}

/* Edit distance, iterative, for names up to NAME_MAX_LEN bytes. */
static size_t edit_distance(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    size_t prev[NAME_MAX_LEN + 1], cur[NAME_MAX_LEN + 1];

    if (an > NAME_MAX_LEN || bn > NAME_MAX_LEN)
        return SIZE_MAX;
    for (size_t j = 0; j <= bn; j++)
        prev[j] = j;
    for (size_t i = 1; i <= an; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            size_t best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        memcpy(prev, cur, (bn + 1) * sizeof(prev[0]));
    }
    return prev[bn];
}

/* The key closest to a misspelt (normalised, lower-case) name, or NULL. */
static const struct rc_config_key *suggest_key(const char *name, size_t n)
{
    const struct rc_config_key *best = NULL;
    size_t best_d = 3; /* suggest only at distance 1 or 2 */

    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        size_t d = edit_distance(name, n, rc_config_keys[i].name);
        if (d < best_d && d < n) {
            best = &rc_config_keys[i];
            best_d = d;
        }
    }
    return best;
}

static void set_err(struct rc_err *err, const char *prefix, const char *body)
{
    rc_err_set(err, 0, "bad_config", "%s%s", prefix, body);
}

/* ---- public: one key by name ---------------------------------------------- */

int rc_config_set(struct rc_config *c, const char *key, const char *value, struct rc_err *err)
{
    char body[sizeof(err->msg)];
    const struct rc_config_key *k = find_key(key, strlen(key));
    const struct rc_config_key *near;

    if (!k) {
        near = suggest_key(key, strlen(key));
        rc_err_set(err, 0, "bad_config",
                   "config: unknown key \"%.*s\"%s%s%s; see ringcast --help "
                   "for the keys",
                   NAME_MAX_LEN, key, near ? " (did you mean " : "", near ? near->name : "",
                   near ? "?)" : "");
        return -EINVAL;
    }
    int rc = rc_config_apply(c, k, value, k->name, LIST_SET,
                             (struct rc_config_msgbuf){body, sizeof(body)});
    if (rc)
        set_err(err, "config: ", body);
    return rc;
}

/* ---- file ------------------------------------------------------------------ */

/* Read the whole file (at most RC_CONFIG_FILE_MAX bytes) into a NUL-terminated
 * heap buffer. */
static int read_file(const char *path, char **out, size_t *len, struct rc_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int rc;

    if (!f) {
        rc = errno ? -errno : -EIO;
        rc_err_set(err, 0, "bad_config",
                   "config file %.96s: cannot open: %s; check the path "
                   "given with --config or RINGCAST_CONFIG",
                   path, strerror(-rc));
        return rc;
    }
    buf = malloc(RC_CONFIG_FILE_MAX + 2);
    if (!buf) {
        rc = -ENOMEM;
        rc_err_set(err, 0, "bad_config", "config file %.96s: out of memory", path);
        goto out_close;
    }
    n = fread(buf, 1, RC_CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = errno ? -errno : -EIO;
        rc_err_set(err, 0, "bad_config", "config file %.96s: cannot read: %s", path, strerror(-rc));
        goto out_free;
    }
    if (n > RC_CONFIG_FILE_MAX) {
        rc = -EINVAL;
        rc_err_set(err, 0, "bad_config",
                   "config file %.96s is larger than 1 MiB; a config file "
                   "must be smaller",
                   path);
        goto out_free;
    }
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
out_free:
    free(buf);
out_close:
    fclose(f);
    return rc;
}

static char *skip_ws(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Unescape a quoted value in place; p points after the opening quote. */
static int parse_quoted(char *p, char **value, struct rc_config_msgbuf m)
{
    char *out = p;

    *value = p;
    for (;; p++) {
        if (*p == '\0') {
            snprintf(m.p, m.n, "the quoted value has no closing quote; add \" at the end");
            return -EINVAL;
        }
        if (*p == '"')
            break;
        if (*p == '\\') {
            if (p[1] != '"' && p[1] != '\\') {
                snprintf(m.p, m.n,
                         "unknown escape \"\\%c\" in a quoted value; only \\\" and \\\\ "
                         "are allowed",
                         p[1] ? p[1] : ' ');
                return -EINVAL;
            }
            p++;
        }
        *out++ = *p;
    }
    *out = '\0';
    p = skip_ws(p + 1);
    if (*p != '\0' && *p != '#') {
        snprintf(m.p, m.n, "text after the closing quote; put a comment after \" #");
        return -EINVAL;
    }
    return 0;
}

/* One line, NUL-terminated, without its line end. Returns 1 with key and
 * value set, 0 for a blank or comment line, -EINVAL with a message. */
static int parse_line(char *line, char **key, size_t *key_len, char **value,
                      struct rc_config_msgbuf m)
{
    char *p = skip_ws(line), *end;

    if (*p == '\0' || *p == '#')
        return 0;
    *key = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == '-')
        p++;
    *key_len = (size_t)(p - *key);
    p = skip_ws(p);
    if (*key_len == 0 || *p != '=') {
        snprintf(m.p, m.n, "expected \"key = value\"; see ringcast --help for the format");
        return -EINVAL;
    }
    p = skip_ws(p + 1);
    if (*p == '"')
        return parse_quoted(p + 1, value, m) ? -EINVAL : 1;
    *value = p;
    for (end = p; *end != '\0'; end++)
        if (*end == '#' && (end[-1] == ' ' || end[-1] == '\t')) /* p > line: end[-1] exists */
            break;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return 1;
}

static int apply_file(struct rc_config *c, const char *path, char *buf, size_t len,
                      struct rc_err *err)
{
    size_t first_line[RC_CONFIG_NKEYS] = {0};
    char body[sizeof(err->msg)], prefix[160];
    struct rc_config_msgbuf m = {body, sizeof(body)};
    char *p = buf, *end = buf + len;
    size_t line_no = 0;

    if (memchr(buf, '\0', len)) {
        const char *nul = memchr(buf, '\0', len);
        for (const char *q = buf; q < nul; q++)
            line_no += *q == '\n';
        snprintf(prefix, sizeof(prefix), "config file %.96s line %zu: ", path, line_no + 1);
        snprintf(body, sizeof(body), "the line contains a NUL byte; the file must be text");
        goto fail;
    }
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *key, *value;
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p), key_len;
        const struct rc_config_key *k;
        int rc;

        line_no++;
        snprintf(prefix, sizeof(prefix), "config file %.96s line %zu: ", path, line_no);
        if (n > 0 && p[n - 1] == '\r')
            p[n - 1] = '\0';
        if (n > RC_CONFIG_LINE_MAX) {
            snprintf(body, sizeof(body), "the line is longer than %d bytes; shorten it",
                     RC_CONFIG_LINE_MAX);
            goto fail;
        }
        p[n] = '\0';
        rc = parse_line(p, &key, &key_len, &value, m);
        p += n + 1;
        if (rc < 0)
            goto fail;
        if (rc == 0)
            continue;
        k = find_key(key, key_len);
        if (!k) {
            const struct rc_config_key *near = suggest_key(key, key_len);
            snprintf(body, sizeof(body),
                     "unknown key \"%.*s\"%s%s%s; see ringcast --help for "
                     "the keys",
                     (int)(key_len < NAME_MAX_LEN ? key_len : NAME_MAX_LEN), key,
                     near ? " (did you mean " : "", near ? near->name : "", near ? "?)" : "");
            goto fail;
        }
        if (first_line[k - rc_config_keys] && k->type != T_LIST) {
            snprintf(body, sizeof(body),
                     "key \"%s\" given twice (first on line %zu); only list "
                     "keys may repeat",
                     k->name, first_line[k - rc_config_keys]);
            goto fail;
        }
        rc = rc_config_apply(c, k, value, k->name,
                             first_line[k - rc_config_keys] ? LIST_APPEND : LIST_REPLACE, m);
        if (rc) {
            set_err(err, prefix, body);
            return rc;
        }
        if (!first_line[k - rc_config_keys])
            first_line[k - rc_config_keys] = line_no;
    }
    return 0;
fail:
    set_err(err, prefix, body);
    return -EINVAL;
}

int rc_config_load_file(struct rc_config *c, const char *path, struct rc_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, err);

    if (rc)
        return rc;
    rc = apply_file(c, path, buf, len, err);
    free(buf);
    if (rc == 0 && strlen(path) < sizeof(c->config_path))
        memcpy(c->config_path, path, strlen(path) + 1);
    return rc;
}

/* ---- environment ----------------------------------------------------------- */

/* The key for RINGCAST_<NAME> (NAME in upper case), or NULL. */
static const struct rc_config_key *find_env_key(const char *name, size_t n)
{
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        const char *kn = rc_config_keys[i].name;
        size_t j = 0;

        if (strlen(kn) != n)
            continue;
        while (j < n && name[j] == (char)(kn[j] >= 'a' && kn[j] <= 'z' ? kn[j] - 32 : kn[j]))
            j++;
        if (j == n)
            return &rc_config_keys[i];
    }
    return NULL;
}

static void unknown_env_err(const char *name, size_t n, struct rc_err *err)
{
    char lower[NAME_MAX_LEN + 1];
    const struct rc_config_key *near = NULL;
    char up[NAME_MAX_LEN + 1] = "";

    if (n <= NAME_MAX_LEN) {
        for (size_t i = 0; i < n; i++)
            lower[i] = rc_ascii_lower(name[i]);
        near = suggest_key(lower, n);
    }
    if (near) {
        size_t i = 0;
        for (; near->name[i]; i++)
            up[i] = (char)(near->name[i] >= 'a' && near->name[i] <= 'z' ? near->name[i] - 32
                                                                        : near->name[i]);
        up[i] = '\0';
    }
    rc_err_set(err, 0, "bad_config",
               "config: unknown environment variable " ENV_PREFIX "%.*s%s%s%s"
               "; unset it, or see ringcast --help for the keys (as " ENV_PREFIX "<KEY>)",
               (int)(n < NAME_MAX_LEN ? n : NAME_MAX_LEN), name,
               near ? " (did you mean " ENV_PREFIX : "", up, near ? "?)" : "");
}

static const char *env_config_path(char **envp)
{
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, ENV_PREFIX "CONFIG=", ENV_PREFIX_LEN + 7) == 0)
            return *e + ENV_PREFIX_LEN + 7;
    return NULL;
}

static int apply_env(struct rc_config *c, char **envp, struct rc_err *err)
{
    bool seen[RC_CONFIG_NKEYS] = {false};
    char body[sizeof(err->msg)], shown[ENV_PREFIX_LEN + NAME_MAX_LEN + 1];

    for (char **e = envp; e && *e; e++) {
        const char *name = *e + ENV_PREFIX_LEN, *eq;
        const struct rc_config_key *k;
        size_t n;
        int rc;

        if (strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0 || !(eq = strchr(name, '=')))
            continue;
        n = (size_t)(eq - name);
        if (n == 6 && memcmp(name, "CONFIG", 6) == 0)
            continue;
        k = find_env_key(name, n);
        if (!k) {
            unknown_env_err(name, n, err);
            return -EINVAL;
        }
        snprintf(shown, sizeof(shown), ENV_PREFIX "%.*s", (int)n, name);
        rc = rc_config_apply(c, k, eq + 1, shown,
                             seen[k - rc_config_keys] ? LIST_APPEND : LIST_REPLACE,
                             (struct rc_config_msgbuf){body, sizeof(body)});
        if (rc) {
            set_err(err, "config: ", body);
            return rc;
        }
        seen[k - rc_config_keys] = true;
    }
    return 0;
}

/* ---- command line ---------------------------------------------------------- */

enum flag_kind { FLAG_KEY, FLAG_HELP, FLAG_VERSION, FLAG_CHECK, FLAG_CONFIG };

struct flag {
    enum flag_kind kind;
    const struct rc_config_key *k; /* FLAG_KEY */
    const char *value;             /* FLAG_KEY, FLAG_CONFIG */
    char shown[NAME_MAX_LEN + 3];  /* "--name" as typed (truncated) */
};

/* Decode the flag at argv[*i] and advance *i past it and its value. */
static int next_flag(int argc, char **argv, int *i, struct flag *f, struct rc_err *err)
{
    const char *arg = argv[(*i)++], *eq;
    char name[NAME_MAX_LEN + 1];
    size_t n;

    memset(f, 0, sizeof(*f));
    if (strcmp(arg, "-h") == 0) {
        f->kind = FLAG_HELP;
        return 0;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        rc_err_set(err, 0, "bad_config",
                   "config: unexpected argument \"%.64s\"; flags look like "
                   "--key=value (see ringcast --help)",
                   arg);
        return -EINVAL;
    }
    eq = strchr(arg, '=');
    n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    snprintf(f->shown, sizeof(f->shown), "--%.*s", (int)(n < NAME_MAX_LEN ? n : NAME_MAX_LEN),
             arg + 2);
    for (size_t j = 0; j < n && j < NAME_MAX_LEN; j++)
        name[j] = arg[2 + j] == '-' ? '_' : arg[2 + j];
    name[n < NAME_MAX_LEN ? n : NAME_MAX_LEN] = '\0';
    if (n > NAME_MAX_LEN)
        goto unknown;

    if (strcmp(name, "help") == 0 || strcmp(name, "version") == 0 ||
        strcmp(name, "check_config") == 0) {
        f->kind = name[0] == 'h' ? FLAG_HELP : name[0] == 'v' ? FLAG_VERSION : FLAG_CHECK;
        if (eq) {
            rc_err_set(err, 0, "bad_config", "config: %s takes no value; remove \"%.32s\"",
                       f->shown, eq);
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(name, "config") == 0) {
        f->kind = FLAG_CONFIG;
    } else {
        f->kind = FLAG_KEY;
        f->k = find_key(name, n);
        if (!f->k)
            goto unknown;
    }
    if (eq) {
        f->value = eq + 1;
    } else if (f->kind == FLAG_KEY && f->k->type == T_BOOL) {
        /* A bare bool flag means true; "--client-publish no" also works. */
        f->value = "true";
        if (*i < argc && argv[*i][0] != '-')
            f->value = argv[(*i)++];
    } else if (*i < argc) {
        f->value = argv[(*i)++];
    } else {
        rc_err_set(err, 0, "bad_config", "config: %s needs a value; use %s=VALUE", f->shown,
                   f->shown);
        return -EINVAL;
    }
    return 0;
unknown : {
    const struct rc_config_key *near = suggest_key(name, strlen(name));
    rc_err_set(err, 0, "bad_config", "config: unknown flag \"%s\"%s%s%s; see ringcast --help",
               f->shown, near ? " (did you mean --" : "", near ? near->name : "", near ? "?)" : "");
    return -EINVAL;
}
}

/* ---- full load --------------------------------------------------------------- */

int rc_config_load(struct rc_config *c, int argc, char **argv, char **envp, struct rc_err *err)
{
    bool seen[RC_CONFIG_NKEYS] = {false};
    char body[sizeof(err->msg)];
    const char *path = NULL;
    struct flag f;
    int i, rc;

    rc_config_defaults(c);
    /* Pass 1: the CLI-only flags, and reject unknown flags before reading anything. */
    for (i = 1; i < argc;) {
        rc = next_flag(argc, argv, &i, &f, err);
        if (rc)
            return rc;
        c->help |= f.kind == FLAG_HELP;
        c->version |= f.kind == FLAG_VERSION;
        c->check_config |= f.kind == FLAG_CHECK;
        if (f.kind == FLAG_CONFIG)
            path = f.value;
    }
    if (c->help || c->version)
        return 0;
    if (!path)
        path = env_config_path(envp);
    if (path && path[0] != '\0') {
        if (strlen(path) >= sizeof(c->config_path)) {
            rc_err_set(err, 0, "bad_config",
                       "config: the config file path is longer than %zu "
                       "bytes; use a shorter path",
                       sizeof(c->config_path) - 1);
            return -EINVAL;
        }
        rc = rc_config_load_file(c, path, err);
        if (rc)
            return rc;
    }
    rc = apply_env(c, envp, err);
    if (rc)
        return rc;
    /* Pass 2: the keys. */
    for (i = 1; i < argc;) {
        rc = next_flag(argc, argv, &i, &f, err);
        if (rc)
            return rc;
        if (f.kind != FLAG_KEY)
            continue;
        rc = rc_config_apply(c, f.k, f.value, f.shown,
                             seen[f.k - rc_config_keys] ? LIST_APPEND : LIST_REPLACE,
                             (struct rc_config_msgbuf){body, sizeof(body)});
        if (rc) {
            set_err(err, "config: ", body);
            return rc;
        }
        seen[f.k - rc_config_keys] = true;
    }
    return rc_config_validate(c, err);
}

/* ---- output -------------------------------------------------------------------- */

static void print_quoted(const char *s, FILE *f)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_value(const struct rc_config *c, const struct rc_config_key *k, FILE *f)
{
    const void *p = rc_config_cfield(c, k);
    char buf[32];

    switch (k->type) {
    case T_BOOL:
        fputs(*(const bool *)p ? "true" : "false", f);
        break;
    case T_UINT:
        fprintf(f, "%u", *(const uint32_t *)p);
        break;
    case T_PORT:
        fprintf(f, "%u", (unsigned)*(const uint16_t *)p);
        break;
    case T_SIZE:
        rc_config_fmt_size(*(const size_t *)p, buf, sizeof(buf));
        fputs(buf, f);
        break;
    case T_DURATION:
        rc_config_fmt_duration(*(const uint64_t *)p, buf, sizeof(buf));
        fputs(buf, f);
        break;
    case T_STRING:
    case T_ADDR:
        print_quoted(p, f);
        break;
    case T_ENUM: {
        unsigned v = *(const unsigned int *)p, n = 0;
        while (k->words[n])
            n++;
        fputs(v < n ? k->words[v] : "?", f);
        break;
    }
    case T_LIST: {
        const struct rc_config_list *l = p;
        fputc('"', f);
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                fputc(',', f);
            /* Items hold no commas or control characters (refused on input). */
            for (const char *s = l->items[i]; *s; s++) {
                if (*s == '"' || *s == '\\')
                    fputc('\\', f);
                fputc(*s, f);
            }
        }
        fputc('"', f);
        break;
    }
    }
}

void rc_config_print(const struct rc_config *c, FILE *f)
{
    if (c->config_path[0])
        fprintf(f, "# ringcast effective configuration (file: %s)\n", c->config_path);
    else
        fputs("# ringcast effective configuration (no file)\n", f);
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        const struct rc_config_key *k = &rc_config_keys[i];
        if (k->secret && k->type == T_LIST &&
            ((const struct rc_config_list *)rc_config_cfield(c, k))->n > 0) {
            fprintf(f, "# %s = (%zu set, redacted)\n", k->name,
                    ((const struct rc_config_list *)rc_config_cfield(c, k))->n);
            continue;
        }
        if (k->secret && k->type == T_STRING && *(const char *)rc_config_cfield(c, k) != '\0') {
            fprintf(f, "# %s = (set, redacted)\n", k->name);
            continue;
        }
        fprintf(f, "%s = ", k->name);
        print_value(c, k, f);
        fputc('\n', f);
    }
}

/* k's range, or its words for an enum, into buf[n] ("" when neither applies). */
static void fmt_allowed(const struct rc_config_key *k, char *buf, size_t n)
{
    buf[0] = '\0';
    if (k->type == T_UINT || k->type == T_PORT || k->type == T_SIZE || k->type == T_DURATION) {
        rc_config_fmt_range(k, buf, n);
    } else if (k->type == T_ENUM) {
        size_t used = 0;
        for (unsigned j = 0; k->words[j] && used < n; j++)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", j ? "|" : "", k->words[j]);
    }
}

void rc_config_template(FILE *f)
{
    fputs("# ringcast configuration: every key with its default (ringcast genconfig).\n"
          "# Load it with --config=PATH or RINGCAST_CONFIG=PATH; check it with\n"
          "# ringcast checkconfig --config=PATH. Values: bool true/false; size in bytes or\n"
          "# with a unit (B, KB/MB/GB, KiB/MiB/GiB); duration with a unit (ms, s, m, h);\n"
          "# list: items separated by commas, or the key repeated. Secrets (api_keys,\n"
          "# jwt_secret, postgres_url, postgres_password, redis_url) are better set in\n"
          "# the environment (RINGCAST_<KEY>) than in a file.\n",
          f);
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        const struct rc_config_key *k = &rc_config_keys[i];
        char allowed[96];
        fmt_allowed(k, allowed, sizeof(allowed));
        fprintf(f, "\n# %s\n# %s%s%s%s\n%s = ", k->doc, type_names[k->type], allowed[0] ? ": " : "",
                allowed, k->secret ? " (secret)" : "", k->name);
        if (k->type == T_STRING || k->type == T_ADDR || (k->type == T_LIST && k->def[0]))
            print_quoted(k->def, f);
        else
            fputs(k->def, f);
        fputc('\n', f);
    }
}

void rc_config_usage(FILE *f)
{
    fputs("usage: ringcast [--config=PATH] [--KEY=VALUE ...] [--check-config] [--help] "
          "[--version]\n"
          "\n"
          "  -h, --help          print this help and exit\n"
          "      --version       print the version and exit\n"
          "      --check-config  load and check the configuration, print it, and exit\n"
          "      --config=PATH   read this config file (or set RINGCAST_CONFIG=PATH)\n"
          "\n"
          "Every key below can be set in the config file (key = value), in the environment\n"
          "(RINGCAST_<KEY> in upper case) or as a flag (--key=value or --key value; dashes\n"
          "or underscores). Precedence: flags > environment > file > defaults.\n"
          "\n"
          "Values: bool true/false (yes/no, on/off, 1/0); size in bytes, or with a unit B,\n"
          "KB/MB/GB (1000s) or KiB/MiB/GiB (1024s); duration with a unit ms, s, m or h (a\n"
          "bare 0 is allowed); list: items separated by commas, or the key repeated.\n"
          "Config file: one key = value per line, # comments, values may be \"quoted\" with\n"
          "\\\" and \\\\ escapes.\n"
          "\n"
          "keys:\n",
          f);
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        const struct rc_config_key *k = &rc_config_keys[i];
        char range[96];
        fmt_allowed(k, range, sizeof(range));
        fprintf(f, "  %-24s %-8s default %s%s%s%s%s\n      %s\n", k->name, type_names[k->type],
                k->def[0] ? "" : "\"", k->def, k->def[0] ? "" : "\"", range[0] ? "; " : "", range,
                k->doc);
    }
}
