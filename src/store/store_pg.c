/* store_pg.c - the PostgreSQL store engine: the same tables and the same
 * behaviour as the SQLite engine (store_sqlite.c), in a database shared by
 * every node of a cluster. This file holds the prepared statements and the
 * operations; connecting, reconnecting, the schema migrations, describe and
 * close are in store_pg_open.c (shared layout: store_pg_internal.h).
 *
 * Transactions: begin/commit bracket one group-commit batch (one real
 * transaction, READ COMMITTED); every write op runs inside SAVEPOINT w ...
 * RELEASE w and rolls back to it on failure, so a failing op leaves nothing
 * behind and the batch goes on (an error in PostgreSQL otherwise aborts the
 * whole transaction). A write called outside begin/commit runs in its own
 * transaction.
 * Round trips: the creates of a batch are queued in one libpq pipeline
 * with the batch's COMMIT (store_pg_tx.c): a batch of creates is two round
 * trips (BEGIN, then everything else). Any other single-statement write in a
 * batch (status change, delete) is ONE round trip: savepoint, statement and
 * release go out as a pipeline of their own (write_one). A notification and its recipients are one
 * statement (a data-modifying CTE), a record and its recipients/read_by
 * lists one row (json_agg subqueries). Reads, mark-read (which reads the row
 * it locks) and the purge run statement by statement.
 * Cross-node rules: mark-read locks the recipient row (FOR UPDATE) and then
 * bumps the notification's read_count, taking the new count as read_seq, so
 * two nodes marking the same notification never share a read_seq. The purge
 * takes pg_try_advisory_xact_lock(RC_STORE_PG_LOCK_PURGE): while one node
 * purges, the others skip. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/store.h"
#include "store_pg_internal.h"

/* 0..14 as in the SQLite engine, then 15 recipients and 16 read_by as JSON arrays */
#define NOTIF_COLS                                                                                 \
    "n.id, n.title, n.message, n.type, n.priority, n.status, n.sender_id, n.created_at,"           \
    " n.delivered_at, n.read_count, n.actions, n.resource_type, n.resource_id, n.metadata,"        \
    " n.expires_at,"                                                                               \
    " (SELECT coalesce(json_agg(r2.user_id ORDER BY r2.pos), '[]') FROM notification_recipients"   \
    " r2 WHERE r2.notification_id = n.id),"                                                        \
    " (SELECT coalesce(json_agg(r3.user_id ORDER BY r3.read_seq), '[]') FROM"                      \
    " notification_recipients r3 WHERE r3.notification_id = n.id AND r3.read_seq IS NOT NULL)"
#define SUB_COLS                                                                                   \
    "id, user_id, type, status, created_at, updated_at, expires_at, resource_id,"                  \
    " resource_type, topic, labels, metadata, payload_filter"
#define LIVE(t) "(" t "expires_at IS NULL OR " t "expires_at > $2::bigint)"

static const char *const pst_sql[PST_COUNT] = {
    [PST_NOTIF_INSERT] =
        "WITH n AS (INSERT INTO notifications (id, title, message, type, priority, status,"
        " sender_id, created_at, delivered_at, expires_at, resource_type, resource_id, actions,"
        " metadata, recipient_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13::jsonb, $14::jsonb, $15) RETURNING id)"
        " INSERT INTO notification_recipients (notification_id, user_id, pos)"
        " SELECT n.id, r.u, r.o - 1 FROM n, jsonb_array_elements_text($16::jsonb)"
        " WITH ORDINALITY AS r(u, o)",
    [PST_NOTIF_GET] = "SELECT " NOTIF_COLS " FROM notifications n WHERE n.id = $1 AND " LIVE("n."),
    [PST_NOTIF_COUNT] = "SELECT count(*) FROM notification_recipients r JOIN notifications n"
                        " ON n.id = r.notification_id WHERE r.user_id = $1 AND " LIVE(
                            "n.") " AND ($3::text IS NULL OR n.status = $3::text)",
    [PST_NOTIF_LIST] = "SELECT " NOTIF_COLS " FROM notification_recipients r JOIN notifications n"
                       " ON n.id = r.notification_id WHERE r.user_id = $1 AND " LIVE(
                           "n.") " AND ($3::text IS NULL OR n.status = $3::text)"
                                 " ORDER BY n.created_at DESC, n.seq DESC LIMIT $4 OFFSET $5",
    [PST_RECIP_FIND] = "SELECT read_seq FROM notification_recipients"
                       " WHERE notification_id = $1 AND user_id = $2 FOR UPDATE",
    [PST_NOTIF_BUMP] = "UPDATE notifications SET read_count = read_count + 1,"
                       " status = CASE WHEN read_count + 1 >= recipient_count THEN 'read'"
                       " ELSE status END WHERE id = $1 RETURNING read_count",
    [PST_MARK_READ] = "UPDATE notification_recipients SET read_at = $3, read_seq = $4"
                      " WHERE notification_id = $1 AND user_id = $2",
    [PST_UNREAD] = "SELECT count(*) FROM notification_recipients r JOIN notifications n"
                   " ON n.id = r.notification_id WHERE r.user_id = $1 AND r.read_seq IS NULL"
                   " AND " LIVE("n."),
    [PST_PURGE_LOCK] = "SELECT pg_try_advisory_xact_lock($1::bigint)",
    [PST_PURGE_NOTIF] = "DELETE FROM notifications WHERE expires_at IS NOT NULL"
                        " AND expires_at <= $1",
    [PST_PURGE_SUB] = "DELETE FROM subscriptions WHERE expires_at IS NOT NULL"
                      " AND expires_at <= $1",
    [PST_SUB_INSERT] = "INSERT INTO subscriptions (" SUB_COLS ") VALUES ($1, $2, $3, $4, $5, $6,"
                       " $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13::jsonb)",
    [PST_SUB_GET] = "SELECT " SUB_COLS " FROM subscriptions WHERE id = $1 AND " LIVE(""),
    [PST_SUB_COUNT] = "SELECT count(*) FROM subscriptions WHERE user_id = $1 AND " LIVE(
        "") " AND ($3::text IS NULL OR status = $3::text)",
    [PST_SUB_LIST] = "SELECT " SUB_COLS " FROM subscriptions WHERE user_id = $1 AND " LIVE(
        "") " AND ($3::text IS NULL OR status = $3::text)"
            " ORDER BY created_at DESC, seq DESC LIMIT $4 OFFSET $5",
    [PST_SUB_SET_STATUS] = "UPDATE subscriptions SET status = $2, updated_at = $3 WHERE id = $1",
    [PST_SUB_DELETE] = "DELETE FROM subscriptions WHERE id = $1",
    [PST_SUB_ACTIVE] = "SELECT " SUB_COLS " FROM subscriptions WHERE status = 'active'"
                       " AND (expires_at IS NULL OR expires_at > $1) ORDER BY seq",
};

/* ---- parameters and results ------------------------------------------------------------------ */

/* Text parameters of one statement; NULL is SQL NULL. */
struct params {
    const char *v[RC_STORE_PG_PARAMS_MAX];
    char num[RC_STORE_PG_PARAMS_MAX][24];
    char *owned[RC_STORE_PG_PARAMS_MAX];
    int n;
};

static void p_str(struct params *p, const char *s)
{
    p->v[p->n++] = s;
}

static void p_jstr(struct params *p, const json_t *v)
{
    p_str(p, json_string_value(v));
}

static void p_int(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)x);
    p_str(p, p->num[p->n]);
}

static void p_jint(struct params *p, const json_t *v)
{
    if (json_is_integer(v))
        p_int(p, json_integer_value(v));
    else
        p_str(p, NULL);
}

/* JSON values travel as compact text; null stays SQL NULL. 0 or -ENOMEM. */
static int p_json(struct params *p, const json_t *v)
{
    if (!v || json_is_null(v)) {
        p_str(p, NULL);
        return 0;
    }
    char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!txt)
        return -ENOMEM;
    p->owned[p->n] = txt;
    p_str(p, txt);
    return 0;
}

static void p_free(struct params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
}

/* Run prepared statement i. Returns its result (rows or command done; the
 * caller PQclear()s it) or NULL with *rc and err set. */
static PGresult *run(struct rc_store_engine *e, enum pst i, const struct params *p,
                     const char *what, int *rc, struct rc_err *err)
{
    char name[16];
    *rc = rc_store_pg_ready(e, err);
    if (*rc)
        return NULL;
    snprintf(name, sizeof(name), "rc%d", (int)i);
    PGresult *res = PQexecPrepared(e->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    if (!rc_store_pg_in_tx(e) && PQstatus(e->conn) != CONNECTION_OK) {
        /* The connection died while idle (a PostgreSQL restart): libpq
         * learns it only now. Outside a transaction nothing is lost: connect
         * again and run it once more. */
        PQclear(res);
        res = NULL;
        *rc = rc_store_pg_ready(e, err);
        if (*rc)
            return NULL;
        res = PQexecPrepared(e->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    }
    ExecStatusType st = PQresultStatus(res);
    if (res && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
        return res;
    *rc = rc_store_pg_fail(e, what, res, err);
    PQclear(res);
    return NULL;
}

/* Run a statement for its side effect; *changed (if given) = rows affected. */
static int run_cmd(struct rc_store_engine *e, enum pst i, const struct params *p, const char *what,
                   uint64_t *changed, struct rc_err *err)
{
    int rc;
    PGresult *res = run(e, i, p, what, &rc, err);
    if (!res)
        return rc;
    if (changed)
        *changed = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static json_t *col_text(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_stringn(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static json_t *col_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static json_t *col_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    json_error_t jerr;
    json_t *v = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
                           JSON_DECODE_ANY, &jerr);
    return v ? v : json_null();
}

/* Savepoint bracket of one atomic write; finish() releases or rolls back.
 * Outside a batch the write is its own transaction (own_tx). */
static int write_begin(struct rc_store_engine *e, struct rc_err *err)
{
    int rc = rc_store_pg_ready(e, err);
    if (rc)
        return rc;
    if (e->in_tx)
        return rc_store_pg_exec(e, "SAVEPOINT w", "savepoint", err);
    rc = rc_store_pg_begin_tx(e, err);
    e->own_tx = rc == 0;
    return rc;
}

static int write_finish(struct rc_store_engine *e, int rc, struct rc_err *err)
{
    struct rc_err ignored;
    if (e->own_tx) {
        e->own_tx = false;
        if (rc) {
            if (PQstatus(e->conn) == CONNECTION_OK)
                (void)rc_store_pg_exec(e, "ROLLBACK", "rollback", &ignored);
            return rc;
        }
        return rc_store_pg_commit_tx(e, err);
    }
    if (rc)
        (void)rc_store_pg_exec(e, "ROLLBACK TO w", "rollback to savepoint", &ignored);
    int rrc = rc_store_pg_exec(e, "RELEASE w", "release savepoint", rc ? &ignored : err);
    return rc ? rc : rrc;
}

/* The results of one query sent in pipeline mode (up to its NULL): 0, or
 * the first error, with err filled. */
static int pipe_result(struct rc_store_engine *e, const char *what, struct rc_err *err)
{
    PGresult *res;
    int rc = 0;
    while ((res = PQgetResult(e->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (rc == 0 && st == PGRES_FATAL_ERROR)
            rc = rc_store_pg_fail(e, what, res, err);
        else if (rc == 0 && st == PGRES_PIPELINE_ABORTED)
            rc = -EIO; /* an earlier query of the pipeline failed; it says why */
        PQclear(res);
    }
    return rc;
}

/* A single-statement write inside the batch's transaction in ONE round trip:
 * SAVEPOINT w, the statement, RELEASE w and a sync go out as a libpq
 * pipeline. If the statement fails, PostgreSQL skips the rest up to the
 * sync and the transaction is aborted, but back to the savepoint only:
 * ROLLBACK TO w restores it, nothing of the write is left. Outside a batch
 * (or if the pipeline cannot be entered) the plain bracket does the same in
 * three round trips. *changed (if given) = rows the statement affected. */
static int write_one(struct rc_store_engine *e, enum pst i, const struct params *p,
                     const char *what, uint64_t *changed, struct rc_err *err)
{
    char name[16];
    int rc = rc_store_pg_ready(e, err);
    if (rc)
        return rc;
    if (!e->in_tx || !PQenterPipelineMode(e->conn)) {
        rc = write_begin(e, err);
        if (rc)
            return rc;
        return write_finish(e, run_cmd(e, i, p, what, changed, err), err);
    }
    snprintf(name, sizeof(name), "rc%d", (int)i);
    bool sent = PQsendQueryParams(e->conn, "SAVEPOINT w", 0, NULL, NULL, NULL, NULL, 0) &&
                PQsendQueryPrepared(e->conn, name, p->n, p->v, NULL, NULL, 0) &&
                PQsendQueryParams(e->conn, "RELEASE w", 0, NULL, NULL, NULL, NULL, 0) &&
                PQpipelineSync(e->conn);
    if (!sent) {
        rc = rc_store_pg_fail(e, what, NULL, err);
        (void)PQexitPipelineMode(e->conn);
        return rc;
    }
    struct rc_err ignored;
    int src = pipe_result(e, "savepoint", err);
    PGresult *res = NULL;
    int qrc = 0;
    /* the statement's own result, for the row count */
    while ((res = PQgetResult(e->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (qrc == 0 && st == PGRES_FATAL_ERROR)
            qrc = rc_store_pg_fail(e, what, res, src ? &ignored : err);
        else if (qrc == 0 && st == PGRES_PIPELINE_ABORTED)
            qrc = -EIO;
        else if (st == PGRES_COMMAND_OK && changed)
            *changed = strtoull(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    int rrc = pipe_result(e, "release savepoint", src || qrc ? &ignored : err);
    res = PQgetResult(e->conn); /* PGRES_PIPELINE_SYNC */
    bool synced = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    PQclear(res);
    if (!synced || !PQexitPipelineMode(e->conn)) {
        /* out of step with the server: only a lost connection does that */
        rc_err_set(err, 503, "store_unavailable",
                   "store: %s failed: the connection to PostgreSQL broke mid-pipeline; retry later",
                   what);
        return -EIO;
    }
    rc = src ? src : qrc ? qrc : rrc;
    if (rc && !src) {
        (void)rc_store_pg_exec(e, "ROLLBACK TO w", "rollback to savepoint", &ignored);
        (void)rc_store_pg_exec(e, "RELEASE w", "release savepoint", &ignored);
    }
    return rc;
}

static int count_of(struct rc_store_engine *e, enum pst i, const struct params *p, const char *what,
                    uint64_t *out, struct rc_err *err)
{
    int rc;
    PGresult *res = run(e, i, p, what, &rc, err);
    if (!res)
        return rc;
    *out = PQntuples(res) > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

/* ---- records ----------------------------------------------------------------------------------
 */

static json_t *notif_row(const PGresult *r, int i)
{
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
        col_text(r, i, 0), "title", col_text(r, i, 1), "message", col_text(r, i, 2), "type",
        col_text(r, i, 3), "priority", col_text(r, i, 4), "status", col_text(r, i, 5), "recipients",
        col_json(r, i, 15), "sender_id", col_text(r, i, 6), "created_at", col_int(r, i, 7),
        "delivered_at", col_int(r, i, 8), "read_by", col_json(r, i, 16), "actions",
        col_json(r, i, 10), "resource_type", col_text(r, i, 11), "resource_id", col_text(r, i, 12),
        "metadata", col_json(r, i, 13), "expires_at", col_int(r, i, 14));
}

static json_t *sub_row(const PGresult *r, int i)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:o, s:o, s:o}", "id",
                     col_text(r, i, 0), "user_id", col_text(r, i, 1), "type", col_text(r, i, 2),
                     "status", col_text(r, i, 3), "created_at", col_int(r, i, 4), "updated_at",
                     col_int(r, i, 5), "expires_at", col_int(r, i, 6), "resource_id",
                     col_text(r, i, 7), "resource_type", col_text(r, i, 8), "topic",
                     col_text(r, i, 9), "query", "labels", col_json(r, i, 10), "metadata",
                     col_json(r, i, 11), "payload_filter", col_json(r, i, 12));
}

static int get_one(struct rc_store_engine *e, enum pst i, bool notif, const char *id,
                   int64_t now_ms, json_t **rec, struct rc_err *err)
{
    struct params p = {0};
    int rc;
    p_str(&p, id);
    p_int(&p, now_ms);
    PGresult *res = run(e, i, &p, "reading", &rc, err);
    if (!res)
        return rc;
    if (PQntuples(res) == 0) {
        rc_err_set(err, 404, "not_found", "%s \"%.64s\" does not exist or has expired",
                   notif ? "notification" : "subscription", id);
        rc = -ENOENT;
    } else {
        *rec = notif ? notif_row(res, 0) : sub_row(res, 0);
        rc = *rec ? 0 : -ENOMEM;
    }
    PQclear(res);
    return rc;
}

static int list_rows(struct rc_store_engine *e, enum pst i, const struct params *p, bool notif,
                     json_t **items, struct rc_err *err)
{
    int rc;
    PGresult *res = run(e, i, p, "listing", &rc, err);
    if (!res)
        return rc;
    json_t *arr = json_array();
    for (int r = 0; arr && r < PQntuples(res); r++) {
        json_t *rec = notif ? notif_row(res, r) : sub_row(res, r);
        if (!rec || json_array_append_new(arr, rec) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    PQclear(res);
    if (!arr)
        return -ENOMEM;
    *items = arr;
    return 0;
}

static void query_params(struct params *p, const struct rc_store_query *q, bool paged)
{
    p_str(p, q->user_id);
    p_int(p, q->now_ms);
    p_str(p, q->status);
    if (paged) {
        p_int(p, q->page_size);
        p_int(p, (int64_t)(q->page - 1) * q->page_size);
    }
}

static int list_query(struct rc_store_engine *e, enum pst count_st, enum pst list_st, bool notif,
                      const struct rc_store_query *q, json_t **items, uint64_t *total,
                      struct rc_err *err)
{
    struct params pc = {0}, pl = {0};
    query_params(&pc, q, false);
    int rc = count_of(e, count_st, &pc, "counting", total, err);
    if (rc)
        return rc;
    query_params(&pl, q, true);
    return list_rows(e, list_st, &pl, notif, items, err);
}

/* ---- notifications ----------------------------------------------------------------------------
 */

/* One INSERT's parameters, in the statement's order: a record's field as
 * text, as a time (ms), as JSON, or the length of its array (JSON null and
 * absent fields pass as SQL NULL). */
enum col_kind { COL_TEXT, COL_TIME, COL_JSON, COL_COUNT };
struct col {
    const char *name;
    enum col_kind kind;
};

/* INSERT rec through statement st (cols give its parameters); what names the
 * write in an error. 0 or -errno with err. */
static int insert_record(struct rc_store_engine *e, enum pst st, const json_t *rec,
                         const struct col *cols, size_t ncols, const char *what,
                         struct rc_store_pending *pend, struct rc_err *err)
{
    struct params p = {0};
    int rc = 0;
    for (size_t i = 0; i < ncols && rc == 0; i++) {
        const json_t *v = json_object_get(rec, cols[i].name);
        switch (cols[i].kind) {
        case COL_TEXT:
            p_jstr(&p, v);
            break;
        case COL_TIME:
            p_jint(&p, v);
            break;
        case COL_JSON:
            rc = p_json(&p, v);
            break;
        case COL_COUNT:
            p_int(&p, (int64_t)json_array_size(v));
            break;
        }
    }
    if (rc == 0 && pend && e->in_tx)
        rc = rc_store_pg_queue(e, st, p.n, p.v, what, pend, err);
    else if (rc == 0)
        rc = write_one(e, st, &p, what, NULL, err);
    p_free(&p);
    if (rc == -ENOMEM)
        rc_err_set(err, 503, "no_memory", "store: out of memory; retry later");
    return rc;
}

static int pg_notif_create(struct rc_store_engine *e, const json_t *rec,
                           struct rc_store_pending *pend, struct rc_err *err)
{
    static const struct col cols[] = {
        {"id", COL_TEXT},         {"title", COL_TEXT},         {"message", COL_TEXT},
        {"type", COL_TEXT},       {"priority", COL_TEXT},      {"status", COL_TEXT},
        {"sender_id", COL_TEXT},  {"created_at", COL_TIME},    {"delivered_at", COL_TIME},
        {"expires_at", COL_TIME}, {"resource_type", COL_TEXT}, {"resource_id", COL_TEXT},
        {"actions", COL_JSON},    {"metadata", COL_JSON},      {"recipients", COL_COUNT},
        {"recipients", COL_JSON},
    };
    return insert_record(e, PST_NOTIF_INSERT, rec, cols, RC_ARRAY_LEN(cols),
                         "saving the notification", pend, err);
}

static int pg_notif_get(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                        struct rc_err *err)
{
    return get_one(e, PST_NOTIF_GET, true, id, now_ms, rec, err);
}

static int pg_notif_list(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                         uint64_t *total, struct rc_err *err)
{
    return list_query(e, PST_NOTIF_COUNT, PST_NOTIF_LIST, true, q, items, total, err);
}

/* Inside the write's savepoint: lock the recipient row, and if unread bump
 * the notification's read_count and take it as this reader's read_seq. */
static int mark_read_locked(struct rc_store_engine *e, const char *id, const char *user,
                            int64_t now_ms, struct rc_err *err)
{
    struct params p = {0};
    int rc;
    p_str(&p, id);
    p_str(&p, user);
    PGresult *res = run(e, PST_RECIP_FIND, &p, "reading read state", &rc, err);
    if (!res)
        return rc;
    bool found = PQntuples(res) > 0, unread = found && PQgetisnull(res, 0, 0);
    PQclear(res);
    if (!found) {
        rc_err_set(err, 403, "not_a_recipient",
                   "user \"%.64s\" is not a recipient of notification \"%.64s\"", user, id);
        return -EPERM;
    }
    if (!unread)
        return 0;
    struct params pb = {0};
    p_str(&pb, id);
    res = run(e, PST_NOTIF_BUMP, &pb, "updating the read count", &rc, err);
    if (!res)
        return rc;
    int64_t seq = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 1;
    PQclear(res);
    p_int(&p, now_ms);
    p_int(&p, seq);
    return run_cmd(e, PST_MARK_READ, &p, "marking read", NULL, err);
}

static int pg_notif_mark_read(struct rc_store_engine *e, const char *id, const char *user,
                              int64_t now_ms, json_t **rec, struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = pg_notif_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);
    rc = write_begin(e, err);
    if (rc)
        return rc;
    rc = write_finish(e, mark_read_locked(e, id, user, now_ms, err), err);
    if (rc)
        return rc;
    return pg_notif_get(e, id, now_ms, rec, err);
}

static int pg_notif_unread_count(struct rc_store_engine *e, const char *user, int64_t now_ms,
                                 uint64_t *count, struct rc_err *err)
{
    struct params p = {0};
    p_str(&p, user);
    p_int(&p, now_ms);
    return count_of(e, PST_UNREAD, &p, "counting unread notifications", count, err);
}

/* Deletes expired notifications (recipients cascade) and expired
 * subscriptions; *purged counts both. Another node purging right now holds
 * the purge lock: then this one skips (0 purged). */
static int purge_locked(struct rc_store_engine *e, int64_t now_ms, uint64_t *purged,
                        struct rc_err *err)
{
    struct params pl = {0}, p = {0};
    uint64_t n = 0;
    int rc;
    p_int(&pl, RC_STORE_PG_LOCK_PURGE);
    PGresult *res = run(e, PST_PURGE_LOCK, &pl, "taking the purge lock", &rc, err);
    if (!res)
        return rc;
    bool mine = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!mine)
        return 0;
    p_int(&p, now_ms);
    rc = run_cmd(e, PST_PURGE_NOTIF, &p, "purging expired notifications", &n, err);
    *purged += n;
    if (rc == 0) {
        rc = run_cmd(e, PST_PURGE_SUB, &p, "purging expired subscriptions", &n, err);
        *purged += rc == 0 ? n : 0;
    }
    return rc;
}

static int pg_notif_purge_expired(struct rc_store_engine *e, int64_t now_ms, uint64_t *purged,
                                  struct rc_err *err)
{
    *purged = 0;
    int rc = write_begin(e, err);
    if (rc)
        return rc;
    rc = write_finish(e, purge_locked(e, now_ms, purged, err), err);
    if (rc)
        *purged = 0;
    return rc;
}

/* ---- subscriptions ----------------------------------------------------------------------------
 */

static int pg_sub_create(struct rc_store_engine *e, const json_t *rec,
                         struct rc_store_pending *pend, struct rc_err *err)
{
    static const struct col cols[] = {
        {"id", COL_TEXT},
        {"user_id", COL_TEXT},
        {"type", COL_TEXT},
        {"status", COL_TEXT},
        {"created_at", COL_TIME},
        {"updated_at", COL_TIME},
        {"expires_at", COL_TIME},
        {"resource_id", COL_TEXT},
        {"resource_type", COL_TEXT},
        {"topic", COL_TEXT},
        {"labels", COL_JSON},
        {"metadata", COL_JSON},
        {"payload_filter", COL_JSON},
    };
    return insert_record(e, PST_SUB_INSERT, rec, cols, RC_ARRAY_LEN(cols),
                         "saving the subscription", pend, err);
}

static int pg_sub_get(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                      struct rc_err *err)
{
    return get_one(e, PST_SUB_GET, false, id, now_ms, rec, err);
}

static int pg_sub_list(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                       uint64_t *total, struct rc_err *err)
{
    return list_query(e, PST_SUB_COUNT, PST_SUB_LIST, false, q, items, total, err);
}

static int pg_sub_set_status(struct rc_store_engine *e, const char *id, const char *status,
                             int64_t now_ms, json_t **rec, struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = pg_sub_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);
    struct params p = {0};
    p_str(&p, id);
    p_str(&p, status);
    p_int(&p, now_ms);
    rc = write_one(e, PST_SUB_SET_STATUS, &p, "updating the subscription", NULL, err);
    if (rc)
        return rc;
    return pg_sub_get(e, id, now_ms, rec, err);
}

static int pg_sub_delete(struct rc_store_engine *e, const char *id, int64_t now_ms,
                         struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = pg_sub_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);
    struct params p = {0};
    p_str(&p, id);
    return write_one(e, PST_SUB_DELETE, &p, "deleting the subscription", NULL, err);
}

static int pg_sub_load_active(struct rc_store_engine *e, int64_t now_ms, json_t **items,
                              struct rc_err *err)
{
    struct params p = {0};
    p_int(&p, now_ms);
    return list_rows(e, PST_SUB_ACTIVE, &p, false, items, err);
}

int rc_store_pg_prepare(struct rc_store_engine *e, struct rc_err *err)
{
    for (int i = 0; i < PST_COUNT; i++) {
        char name[16];
        snprintf(name, sizeof(name), "rc%d", i);
        PGresult *res = PQprepare(e->conn, name, pst_sql[i], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            int rc = rc_store_pg_fail(e, "preparing a statement", res, err);
            PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    e->prepared = true;
    return 0;
}

const struct rc_store_engine_ops rc_store_pg_ops = {
    .name = "postgres",
    .open = rc_store_pg_open,
    .close = rc_store_pg_close,
    .begin = rc_store_pg_begin,
    .commit = rc_store_pg_commit,
    .rollback = rc_store_pg_rollback,
    .notif_create = pg_notif_create,
    .notif_list = pg_notif_list,
    .notif_get = pg_notif_get,
    .notif_mark_read = pg_notif_mark_read,
    .notif_unread_count = pg_notif_unread_count,
    .notif_purge_expired = pg_notif_purge_expired,
    .sub_create = pg_sub_create,
    .sub_list = pg_sub_list,
    .sub_get = pg_sub_get,
    .sub_set_status = pg_sub_set_status,
    .sub_delete = pg_sub_delete,
    .sub_load_active = pg_sub_load_active,
    .describe = rc_store_pg_describe,
};
