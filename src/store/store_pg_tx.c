/* store_pg_tx.c - the PostgreSQL engine's transactions: BEGIN/COMMIT/ROLLBACK
 * of a group-commit batch, and the pipeline that sends a batch's creates and
 * its COMMIT in one round trip.
 *
 * Pipeline: inside a batch, a create (rc_store_pg_queue) is sent at once as
 * SAVEPOINT w, the INSERT, RELEASE w, without waiting for the answers, and
 * kept (its parameters copied) until the pipeline is read. The commit adds
 * COMMIT and a sync and reads everything (rc_store_pg_flush); any other op
 * of the batch flushes first (rc_store_pg_ready), so it sees the creates
 * before it. A failing create makes PostgreSQL skip the rest of the
 * pipeline up to the sync, COMMIT included, and leaves the transaction
 * aborted; ROLLBACK TO w takes it back to just before that create (the ones
 * before it stay), and the skipped creates and the COMMIT are sent again.
 * So one create's failure fails only that create, as in the SQLite engine,
 * at the cost of one more round trip. Each create's outcome is written to
 * its struct rc_store_pending; store.c answers after the commit.
 * Owner: the storage thread of the engine (store_pg_internal.h).
 * Lifetimes: e->queued entries live from rc_store_pg_queue to the flush
 *   that answers them; the pend they point to is the caller's until commit
 *   or rollback returns. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/store.h"
#include "store_pg_internal.h"

/* One create in the pipeline, kept to be sent again after an earlier one failed. */
struct rc_store_pg_queued {
    struct rc_store_pending *pend;
    enum pst st;
    const char *what;
    int n;
    char *v[RC_STORE_PG_PARAMS_MAX]; /* copies; NULL is SQL NULL */
};

static void queued_free(struct rc_store_pg_queued *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->v[i]);
    q->n = 0;
}

static bool send_create(struct rc_store_engine *e, const struct rc_store_pg_queued *q)
{
    char name[16];
    snprintf(name, sizeof(name), "rc%d", (int)q->st);
    return PQsendQueryParams(e->conn, "SAVEPOINT w", 0, NULL, NULL, NULL, NULL, 0) &&
           PQsendQueryPrepared(e->conn, name, q->n, (const char *const *)q->v, NULL, NULL, 0) &&
           PQsendQueryParams(e->conn, "RELEASE w", 0, NULL, NULL, NULL, NULL, 0);
}

int rc_store_pg_queue(struct rc_store_engine *e, enum pst st, int n, const char *const *v,
                      const char *what, struct rc_store_pending *pend, struct rc_err *err)
{
    if (!e->piped) {
        int rc = rc_store_pg_ready(e, err); /* a usable connection (ready flushes when piped) */
        if (rc)
            return rc;
    }
    if (n > RC_STORE_PG_PARAMS_MAX)
        return -EINVAL;
    if (e->nqueued == e->capqueued) {
        size_t cap = e->capqueued ? e->capqueued * 2 : 64;
        struct rc_store_pg_queued *q = realloc(e->queued, cap * sizeof(*q));
        if (!q)
            goto nomem;
        e->queued = q;
        e->capqueued = cap;
    }
    struct rc_store_pg_queued *q = &e->queued[e->nqueued];
    *q = (struct rc_store_pg_queued){.pend = pend, .st = st, .what = what};
    for (int i = 0; i < n; i++) {
        q->v[i] = v[i] ? strdup(v[i]) : NULL;
        q->n = i + 1;
        if (v[i] && !q->v[i]) {
            queued_free(q);
            goto nomem;
        }
    }
    if (!e->piped) {
        if (!PQenterPipelineMode(e->conn)) {
            queued_free(q);
            return rc_store_pg_fail(e, what, NULL, err);
        }
        e->piped = true;
    }
    e->nqueued++;
    pend->queued = true;
    if (!send_create(e, q)) {
        /* the connection broke: the flush reports it for every queued create */
        e->pipe_broken = true;
    }
    return 0;

nomem:
    rc_err_set(err, 503, "no_memory", "store: out of memory; retry later");
    return -ENOMEM;
}

/* Read the results of one query of the pipeline (up to its NULL).
 * 0: it ran; 1: skipped (an earlier query failed); < 0: it failed (err). */
static int one_result(struct rc_store_engine *e, const char *what, const char *want_status,
                      struct rc_err *err)
{
    int rc = 0;
    PGresult *res;
    while ((res = PQgetResult(e->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (rc == 0 && st == PGRES_PIPELINE_ABORTED) {
            rc = 1;
        } else if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            rc = rc_store_pg_fail(e, what, res, err);
        } else if (rc == 0 && want_status && strcmp(PQcmdStatus(res), want_status) != 0) {
            /* a COMMIT of a transaction that had failed answers ROLLBACK */
            rc_err_set(err, 503, "store_unavailable",
                       "store: commit failed: PostgreSQL rolled the transaction back; retry later");
            rc = -EIO;
        }
        PQclear(res);
        if (PQstatus(e->conn) != CONNECTION_OK)
            return rc < 0 ? rc : rc_store_pg_fail(e, what, NULL, err);
    }
    return rc;
}

/* Every queued create from `from` on (and the COMMIT) fails with err. */
static void fail_rest(struct rc_store_engine *e, size_t from, const struct rc_err *err)
{
    for (size_t i = from; i < e->nqueued; i++) {
        struct rc_store_pending *p = e->queued[i].pend;
        if (p->rc == 0) {
            p->rc = -EIO;
            p->err = *err;
        }
    }
}

static void drop_queue(struct rc_store_engine *e)
{
    for (size_t i = 0; i < e->nqueued; i++)
        queued_free(&e->queued[i]);
    e->nqueued = 0;
}

/* Read one round of the pipeline: the creates from `from`, then COMMIT if
 * sent, then the sync. Returns the index of the first create that failed
 * (its pend filled), or nqueued if none did; *lost when the connection
 * broke (the rest failed with err); *commit_rc the COMMIT's outcome. */
static size_t read_round(struct rc_store_engine *e, size_t from, bool commit, int *commit_rc,
                         bool *lost, struct rc_err *err)
{
    size_t failed = e->nqueued;
    *lost = false;
    *commit_rc = 1;
    for (size_t i = from; i < e->nqueued; i++) {
        struct rc_store_pg_queued *q = &e->queued[i];
        const char *whats[3] = {"savepoint", q->what, "release savepoint"};
        for (int k = 0; k < 3; k++) {
            struct rc_err qerr = {0};
            int rc = one_result(e, whats[k], NULL, &qerr);
            if (PQstatus(e->conn) != CONNECTION_OK) {
                *err = qerr;
                fail_rest(e, i, err);
                *lost = true;
                return i;
            }
            if (rc < 0 && failed == e->nqueued) {
                failed = i;
                q->pend->rc = rc;
                q->pend->err = qerr;
            }
        }
    }
    if (commit) {
        *commit_rc = one_result(e, "commit", "COMMIT", err);
        if (PQstatus(e->conn) != CONNECTION_OK) {
            *lost = true;
            return failed;
        }
    }
    PGresult *res = PQgetResult(e->conn); /* PGRES_PIPELINE_SYNC */
    bool synced = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    PQclear(res);
    if (!synced || !PQexitPipelineMode(e->conn)) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: the connection to PostgreSQL broke mid-pipeline; nothing of this batch "
                   "was saved; retry later");
        fail_rest(e, from, err);
        *lost = true;
    }
    e->piped = false;
    return failed;
}

int rc_store_pg_flush(struct rc_store_engine *e, bool commit, struct rc_err *err)
{
    size_t from = 0;
    int rc = 0;

    if (!e->piped)
        return commit ? rc_store_pg_commit_tx(e, err) : 0;
    for (;;) {
        bool lost = e->pipe_broken;
        int commit_rc = 1;
        if (!lost && commit && !PQsendQueryParams(e->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
            lost = true;
        if (!lost && !PQpipelineSync(e->conn))
            lost = true;
        if (lost) {
            rc = rc_store_pg_fail(e, "sending the batch", NULL, err);
            fail_rest(e, from, err);
            (void)PQexitPipelineMode(e->conn);
            e->piped = false;
            break;
        }
        size_t failed = read_round(e, from, commit, &commit_rc, &lost, err);
        if (lost) {
            rc = -EIO;
            break;
        }
        if (failed == e->nqueued) {
            /* all ran; the COMMIT (if sent) tells */
            if (commit && commit_rc > 0) {
                rc_err_set(err, 503, "store_unavailable",
                           "store: commit failed: PostgreSQL skipped it; retry later");
                commit_rc = -EIO;
            }
            rc = commit ? commit_rc : 0;
            break;
        }
        /* back to just before the failed create; send what was skipped again */
        if (rc_store_pg_exec(e, "ROLLBACK TO w", "rollback to savepoint", err) != 0 ||
            rc_store_pg_exec(e, "RELEASE w", "release savepoint", err) != 0) {
            fail_rest(e, failed + 1, err);
            rc = -EIO;
            break;
        }
        from = failed + 1;
        if (from == e->nqueued && !commit)
            break;
        if (from == e->nqueued) {
            rc = rc_store_pg_commit_tx(e, err);
            break;
        }
        if (!PQenterPipelineMode(e->conn)) {
            rc = rc_store_pg_fail(e, "sending the batch", NULL, err);
            fail_rest(e, from, err);
            break;
        }
        e->piped = true;
        for (size_t i = from; i < e->nqueued; i++)
            if (!send_create(e, &e->queued[i]))
                e->pipe_broken = true;
    }
    if (rc && commit) {
        /* a failed COMMIT fails every write of the batch (store.c answers 503) */
        fail_rest(e, 0, err);
    }
    e->pipe_broken = false;
    drop_queue(e);
    return rc;
}

/* ---- BEGIN, COMMIT, ROLLBACK -------------------------------------------------------------- */

/* BEGIN; if the connection turns out to have died while idle, connect again
 * and BEGIN once more (nothing was in flight). */
int rc_store_pg_begin_tx(struct rc_store_engine *e, struct rc_err *err)
{
    int rc = rc_store_pg_ready(e, err);
    if (rc == 0)
        rc = rc_store_pg_exec(e, "BEGIN", "begin", err);
    if (rc && e->conn && PQstatus(e->conn) != CONNECTION_OK) {
        rc = rc_store_pg_ready(e, err);
        if (rc == 0)
            rc = rc_store_pg_exec(e, "BEGIN", "begin", err);
    }
    return rc;
}

int rc_store_pg_begin(struct rc_store_engine *e, struct rc_err *err)
{
    int rc = rc_store_pg_begin_tx(e, err);
    e->in_tx = rc == 0;
    return rc;
}

/* COMMIT. A COMMIT of a transaction that had failed answers "ROLLBACK", not
 * an error: that is a failed commit too. */
int rc_store_pg_commit_tx(struct rc_store_engine *e, struct rc_err *err)
{
    int rc = 0;
    if (!e->conn || PQstatus(e->conn) != CONNECTION_OK) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: commit failed: the connection to PostgreSQL was lost; nothing of this "
                   "batch was saved; retry later");
        return -EIO;
    }
    PGresult *res = PQexec(e->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = rc_store_pg_fail(e, "commit", res, err);
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: commit failed: PostgreSQL rolled the transaction back; retry later");
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

int rc_store_pg_commit(struct rc_store_engine *e, struct rc_err *err)
{
    int rc = rc_store_pg_flush(e, true, err);
    if (rc == 0)
        e->in_tx = false;
    return rc;
}

void rc_store_pg_rollback(struct rc_store_engine *e)
{
    struct rc_err ignored;
    if (e->piped)
        (void)rc_store_pg_flush(e, false, &ignored); /* read what is in flight; undone below */
    if (e->in_tx && e->conn && PQstatus(e->conn) == CONNECTION_OK)
        (void)rc_store_pg_exec(e, "ROLLBACK", "rollback", &ignored);
    e->in_tx = false;
}
