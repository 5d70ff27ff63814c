/* store_pg_internal.h - private to src/store/store_pg.c and
 * src/store/store_pg_open.c: the layout of the PostgreSQL engine and the few
 * functions the two files share.
 * store_pg.c owns the SQL text of the prepared statements (enum pst) and the
 * operations; store_pg_open.c connects, migrates, reconnects, describes and
 * closes.
 * Owner: the storage thread (the engine is built by rc_store_open on the
 *   caller's thread, before the storage thread starts, and closed after it
 *   has stopped). libpq is never called from any other thread.
 * Invariants: conn is NULL or a connection on which every statement of
 *   pst_sql[] is prepared (prepared == true) once it is usable; in_tx is true
 *   between a successful begin and commit/rollback. A connection that broke
 *   (PQstatus CONNECTION_BAD) stays until the next rc_store_pg_ready outside
 *   a transaction replaces it.
 * Lifetimes: the engine owns conn and its copies of the URL and password;
 *   rc_store_pg_close releases them. */
#ifndef RINGCAST_STORE_PG_INTERNAL_H
#define RINGCAST_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The prepared statements, by their index; named "rc<index>" on the server. */
enum pst {
    PST_NOTIF_INSERT,
    PST_NOTIF_GET,
    PST_NOTIF_COUNT,
    PST_NOTIF_LIST,
    PST_RECIP_FIND,
    PST_NOTIF_BUMP,
    PST_MARK_READ,
    PST_UNREAD,
    PST_PURGE_LOCK,
    PST_PURGE_NOTIF,
    PST_PURGE_SUB,
    PST_SUB_INSERT,
    PST_SUB_GET,
    PST_SUB_COUNT,
    PST_SUB_LIST,
    PST_SUB_SET_STATUS,
    PST_SUB_DELETE,
    PST_SUB_ACTIVE,
    PST_COUNT,
};

/* libpq connect_timeout (s) and the session's statement_timeout (ms): no op
 * waits on the network or the server for longer. */
#define RC_STORE_PG_CONNECT_TIMEOUT_S 5
#define RC_STORE_PG_STATEMENT_TIMEOUT_MS 10000
#define RC_STORE_PG_TCP_USER_TIMEOUT_MS 10000

struct rc_store_engine {
    PGconn *conn;
    bool prepared;
    bool in_tx;                      /* a batch's transaction is open (begin .. commit/rollback) */
    bool own_tx;                     /* a write outside a batch runs in its own transaction */
    int64_t retry_at_ms;             /* monotonic; no reconnect before it */
    char last_err[RC_STORE_MSG_MAX]; /* why the last attempt failed (answered until retry_at_ms) */
    /* the batch's pipeline of creates (store_pg_tx.c) */
    bool piped;       /* in pipeline mode, with queries sent and not yet read */
    bool pipe_broken; /* sending failed: the flush fails what is queued */
    struct rc_store_pg_queued *queued;
    size_t nqueued, capqueued;
    char *url;
    char *password; /* NULL = libpq's own sources */
    long schema_version;
};

/* Fill err (503 store_unavailable) for a failed statement: res is its result
 * (NULL: the connection failed). Maps the SQLSTATE to -ENOSPC (53100),
 * -EBUSY (40001, 40P01, 55P03, 57014), -ENOMEM (53200), else -EIO. */
int rc_store_pg_fail(struct rc_store_engine *e, const char *what, const PGresult *res,
                     struct rc_err *err);

/* Inside a transaction a lost connection loses its work: no reconnect then. */
static inline bool rc_store_pg_in_tx(const struct rc_store_engine *e)
{
    return e->in_tx || e->own_tx;
}

/* A usable connection for the next op: 0, or -EIO with err filled when the
 * connection broke inside the open transaction (the batch is lost) or the
 * server cannot be reached (another attempt after RC_STORE_PG_RETRY_MS). */
int rc_store_pg_ready(struct rc_store_engine *e, struct rc_err *err);

/* Prepare all PST_COUNT statements on e->conn. 0 or -errno (err filled). */
RC_MUST_CHECK int rc_store_pg_prepare(struct rc_store_engine *e, struct rc_err *err);

/* Run sql (no parameters, no rows wanted) as a simple query. 0 or -errno. */
int rc_store_pg_exec(struct rc_store_engine *e, const char *sql, const char *what,
                     struct rc_err *err);

/* store_pg_tx.c: transactions and the pipeline of a batch's creates. */
#define RC_STORE_PG_PARAMS_MAX 16
struct rc_store_pg_queued;
/* BEGIN (connecting again first if the idle connection died) / COMMIT as
 * single round trips. 0 or -errno with err. */
int rc_store_pg_begin_tx(struct rc_store_engine *e, struct rc_err *err);
int rc_store_pg_commit_tx(struct rc_store_engine *e, struct rc_err *err);
/* The ops' begin, commit (flushes the pipeline with the COMMIT in it) and rollback. */
int rc_store_pg_begin(struct rc_store_engine *e, struct rc_err *err);
int rc_store_pg_commit(struct rc_store_engine *e, struct rc_err *err);
void rc_store_pg_rollback(struct rc_store_engine *e);
/* Inside a batch: send prepared statement st with the n parameters v as one
 * create of the pipeline (copies v); its outcome goes to *pend. 0, or -errno
 * with err when it could not even be queued. */
int rc_store_pg_queue(struct rc_store_engine *e, enum pst st, int n, const char *const *v,
                      const char *what, struct rc_store_pending *pend, struct rc_err *err);
/* Read everything in flight (commit: with the batch's COMMIT added). 0, or
 * -errno with err: the connection broke (every queued create failed), or the
 * COMMIT failed. A create's own failure is in its pend, not in the result. */
int rc_store_pg_flush(struct rc_store_engine *e, bool commit, struct rc_err *err);

/* The engine's open, close and describe (struct rc_store_engine_ops). */
RC_MUST_CHECK int rc_store_pg_open(struct rc_store_engine **out, const struct rc_store_config *cfg,
                                   struct rc_err *err);
void rc_store_pg_close(struct rc_store_engine *e);
int rc_store_pg_describe(struct rc_store_engine *e, json_t *obj, struct rc_err *err);

#ifdef __cplusplus
}
#endif

#endif
