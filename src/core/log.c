/* log.c - structured log lines. See log.h for the threading contract. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ringcast/log.h"

#define LINE_MAX_BYTES 2048

/* Written once at start (before threads), read-only afterwards. */
static enum rc_log_level g_level = RC_LOG_INFO;
static enum rc_log_format g_format = RC_LOG_LOGFMT;
static int g_fd = STDERR_FILENO;
static char g_path[4096];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *rc_log_level_name(enum rc_log_level level)
{
    return (unsigned)level < RC_ARRAY_LEN(level_names) ? level_names[level] : "info";
}

bool rc_log_enabled(enum rc_log_level level)
{
    return level >= g_level;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int rc_log_setup(enum rc_log_level level, enum rc_log_format format, const char *path,
                 struct rc_err *err)
{
    g_level = level;
    g_format = format;
    if (!path || !*path)
        return 0;
    if (strlen(path) >= sizeof(g_path)) {
        rc_err_set(err, 0, "bad_config", "log_file path is longer than %zu bytes",
                   sizeof(g_path) - 1);
        return -ENAMETOOLONG;
    }
    int fd = open_log(path);
    if (fd < 0) {
        int e = errno;
        rc_err_set(err, 0, "bad_config", "log_file %s cannot be opened: %s", path, strerror(e));
        return -e;
    }
    strcpy(g_path, path);
    g_fd = fd;
    return 0;
}

int rc_log_reopen(void)
{
    if (!g_path[0])
        return 0;
    int fd = open_log(g_path);
    if (fd < 0)
        return -errno;
    /* dup2 swaps atomically: a concurrent write goes to the old or new file. */
    if (dup2(fd, g_fd) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

static size_t append(char *buf, size_t pos, const char *s, size_t n)
{
    if (pos >= LINE_MAX_BYTES - 2)
        return pos;
    if (n > LINE_MAX_BYTES - 2 - pos)
        n = LINE_MAX_BYTES - 2 - pos;
    memcpy(buf + pos, s, n);
    return pos + n;
}

static size_t append_json_str(char *buf, size_t pos, const char *s, size_t n)
{
    pos = append(buf, pos, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            pos = append(buf, pos, esc, 2);
        } else if (c < 0x20) {
            int k = snprintf(esc, sizeof(esc), "\\u%04x", c);
            pos = append(buf, pos, esc, (size_t)k);
        } else {
            pos = append(buf, pos, (const char *)&c, 1);
        }
    }
    return append(buf, pos, "\"", 1);
}

/* Convert `k=v k2="v 2"` into JSON members `,"k":"v","k2":"v 2"`. */
static size_t kv_to_json(char *buf, size_t pos, const char *kv)
{
    const char *p = kv;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t kn = (size_t)(p - k);
        const char *v = p;
        size_t vn = 0;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                v = ++p;
                while (*p && !(*p == '"' && p[-1] != '\\'))
                    p++;
                vn = (size_t)(p - v);
                if (*p)
                    p++;
            } else {
                v = p;
                while (*p && *p != ' ')
                    p++;
                vn = (size_t)(p - v);
            }
        }
        pos = append(buf, pos, ",", 1);
        pos = append_json_str(buf, pos, k, kn);
        pos = append(buf, pos, ":", 1);
        pos = append_json_str(buf, pos, v, vn);
    }
    return pos;
}

void rc_log(enum rc_log_level level, const char *event, const char *kv_fmt, ...)
{
    char kv[LINE_MAX_BYTES];
    char line[LINE_MAX_BYTES];
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t pos = 0;

    if (!rc_log_enabled(level))
        return;
    va_start(ap, kv_fmt);
    vsnprintf(kv, sizeof(kv), kv_fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tn = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tn, sizeof(ts) - tn, ".%03ldZ", now.tv_nsec / 1000000);

    if (g_format == RC_LOG_JSON) {
        int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", ts,
                         rc_log_level_name(level));
        pos = (size_t)n;
        pos = append_json_str(line, pos, event, strlen(event));
        pos = kv_to_json(line, pos, kv);
        pos = append(line, pos, "}", 1);
    } else {
        int n = snprintf(line, sizeof(line), "ts=%s level=%s event=%s%s%s", ts,
                         rc_log_level_name(level), event, kv[0] ? " " : "", kv);
        pos = (size_t)n < sizeof(line) - 2 ? (size_t)n : sizeof(line) - 2;
    }
    line[pos++] = '\n';
    ssize_t w = write(g_fd, line, pos);
    (void)w; /* nowhere to report a failing log write */
}

bool rc_log_limit_take(struct rc_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *count)
{
    l->unlogged++;
    if (l->last_ms && now_ms - l->last_ms < interval_ms)
        return false;
    *count = l->unlogged;
    l->unlogged = 0;
    l->last_ms = now_ms ? now_ms : 1; /* 0 means "never" */
    return true;
}
