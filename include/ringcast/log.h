/* log.h - structured log lines (logfmt or JSON), one line per call.
 * Owner: process-wide. rc_log() may be called from any thread: each line is
 *   formatted into a stack buffer and written with one write(2) on an
 *   O_APPEND fd, so lines never interleave. rc_log_reopen() (SIGHUP, main
 *   thread) swaps the file underneath with dup2(), which is atomic.
 * The level and format are set once at start, before threads exist.
 * Never log secrets (tokens, API keys): callers pass only what may be seen. */
#ifndef RINGCAST_LOG_H
#define RINGCAST_LOG_H

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rc_log_level { RC_LOG_DEBUG, RC_LOG_INFO, RC_LOG_WARN, RC_LOG_ERROR };
enum rc_log_format { RC_LOG_LOGFMT, RC_LOG_JSON };

/* path NULL or "" = stderr. 0 or -errno (err says which file and why). */
int rc_log_setup(enum rc_log_level level, enum rc_log_format format, const char *path,
                 struct rc_err *err);
/* Reopen the log file (after rotation). 0 or -errno; no-op for stderr. */
int rc_log_reopen(void);
bool rc_log_enabled(enum rc_log_level level);
const char *rc_log_level_name(enum rc_log_level level);

/* rc_log(level, "event_name", "key=%u other=\"%s\"", ...): fields are written
 * logfmt-style in kv_fmt (quote values that may contain spaces); in JSON mode
 * they are converted to JSON members. A line is capped at 2 KiB. */
void rc_log(enum rc_log_level level, const char *event, const char *kv_fmt, ...) RC_PRINTF(3, 4);

/* A line whose cause a stranger can repeat at will (a refused subscription on
 * every connect, a failing disk on every batch): written at most once per
 * interval, saying how often it happened since the previous line.
 * Owner: one thread (embed one per shard, or in a thread's own state). */
struct rc_log_limit {
    uint64_t last_ms;  /* when the last line was written (0 = never) */
    uint64_t unlogged; /* occurrences since then */
};

/* Count one occurrence at now_ms (any monotonic clock in ms). True when the
 * caller should write its line now; *count is then how many occurrences the
 * line stands for (>= 1) and the count starts again. */
bool rc_log_limit_take(struct rc_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *count);

#define rc_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rc_log_enabled(RC_LOG_DEBUG))                                                          \
            rc_log(RC_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_LOG_H */
