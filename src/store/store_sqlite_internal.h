/* store_sqlite_internal.h - private to src/store/store_sqlite.c and
 * src/store/store_sqlite_open.c: the layout of the SQLite engine and the few
 * functions the two files share.
 * store_sqlite.c owns the SQL text of the prepared statements (enum st) and
 * the operations; store_sqlite_open.c opens, migrates, describes and closes
 * the database.
 * Owner: the storage thread (the engine is built by rc_store_open on the
 *   caller's thread, before the storage thread starts, and closed after it
 *   has stopped).
 * Invariants: while the engine is open, db is a connection in WAL mode at
 *   schema version RC_STORE_SQLITE_SCHEMA_VERSION, st[i] is the prepared
 *   statement for st_sql[i] (all ST_COUNT of them), and lock_fd holds an
 *   exclusive flock on <data_dir>/ringcast.lock. During open and close, any
 *   of them may be missing (NULL / -1).
 * Lifetimes: the engine owns db, st[] and lock_fd; rc_store_sqlite_close
 *   releases all of them. */
#ifndef RINGCAST_STORE_SQLITE_INTERNAL_H
#define RINGCAST_STORE_SQLITE_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>

#include "ringcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The prepared statements, by their index into rc_store_engine.st. */
enum st {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_NOTIF_INSERT,
    ST_RECIP_INSERT,
    ST_NOTIF_GET,
    ST_RECIPS,
    ST_READ_BY,
    ST_NOTIF_COUNT,
    ST_NOTIF_LIST,
    ST_RECIP_FIND,
    ST_MARK_READ,
    ST_NOTIF_BUMP,
    ST_UNREAD,
    ST_PURGE_NOTIF,
    ST_PURGE_SUB,
    ST_SUB_INSERT,
    ST_SUB_GET,
    ST_SUB_COUNT,
    ST_SUB_LIST,
    ST_SUB_SET_STATUS,
    ST_SUB_DELETE,
    ST_SUB_ACTIVE,
    ST_COUNT,
};

struct rc_store_engine {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int lock_fd;
    char path[PATH_MAX];
};

/* Map a SQLite result code src to -ENOSPC/-EBUSY/-ENOMEM/-EIO and fill err
 * (503 store_unavailable) naming what failed. */
int rc_store_sqlite_fail(struct rc_store_engine *e, const char *what, int src, struct rc_err *err);

/* Prepare all ST_COUNT statements on e->db. Returns 0 or -errno (err filled);
 * statements already prepared stay in e->st for rc_store_sqlite_close. */
RC_MUST_CHECK int rc_store_sqlite_prepare(struct rc_store_engine *e, struct rc_err *err);

/* The engine's open, close and describe (struct rc_store_engine_ops). */
RC_MUST_CHECK int rc_store_sqlite_open(struct rc_store_engine **out,
                                       const struct rc_store_config *cfg, struct rc_err *err);
void rc_store_sqlite_close(struct rc_store_engine *e);
int rc_store_sqlite_describe(struct rc_store_engine *e, json_t *obj, struct rc_err *err);

#ifdef __cplusplus
}
#endif

#endif
