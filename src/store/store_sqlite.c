/* store_sqlite.c - the embedded store engine: one SQLite database,
 * <data_dir>/ringcast.db, in WAL mode, used only by the storage thread.
 * This file holds the prepared statements and the operations on
 * notifications and subscriptions; opening, locking, the schema migrations
 * and closing are in store_sqlite_open.c (shared layout: store_sqlite_internal.h).
 *
 * Atomic writes: every write op runs inside SAVEPOINT w ... RELEASE w and
 * rolls back to it on failure, so a failed write leaves the surrounding
 * group-commit transaction usable. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/store.h"
#include "store_sqlite_internal.h"

#define NOTIF_COLS                                                                                 \
    "n.id, n.title, n.message, n.type, n.priority, n.status, n.sender_id, n.created_at,"           \
    " n.delivered_at, n.read_count, n.actions, n.resource_type, n.resource_id, n.metadata,"        \
    " n.expires_at"
#define SUB_COLS                                                                                   \
    "id, user_id, type, status, created_at, updated_at, expires_at, resource_id,"                  \
    " resource_type, topic, labels, metadata, payload_filter"
#define LIVE(t) "(" t "expires_at IS NULL OR " t "expires_at > ?2)"

static const char *const st_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT w",
    [ST_RELEASE] = "RELEASE w",
    [ST_ROLLBACK_TO] = "ROLLBACK TO w",
    [ST_NOTIF_INSERT] =
        "INSERT INTO notifications (id, title, message, type, priority, status, sender_id,"
        " created_at, delivered_at, expires_at, resource_type, resource_id, actions, metadata,"
        " recipient_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15)",
    [ST_RECIP_INSERT] =
        "INSERT INTO notification_recipients (notification_id, user_id, pos) VALUES (?1, ?2, ?3)",
    [ST_NOTIF_GET] = "SELECT " NOTIF_COLS " FROM notifications n WHERE n.id = ?1 AND " LIVE("n."),
    [ST_RECIPS] = "SELECT user_id FROM notification_recipients WHERE notification_id = ?1"
                  " ORDER BY pos",
    [ST_READ_BY] = "SELECT user_id FROM notification_recipients WHERE notification_id = ?1"
                   " AND read_seq IS NOT NULL ORDER BY read_seq",
    [ST_NOTIF_COUNT] = "SELECT count(*) FROM notification_recipients r JOIN notifications n"
                       " ON n.id = r.notification_id WHERE r.user_id = ?1 AND " LIVE(
                           "n.") " AND (?3 IS NULL OR n.status = ?3)",
    [ST_NOTIF_LIST] = "SELECT " NOTIF_COLS " FROM notification_recipients r JOIN notifications n"
                      " ON n.id = r.notification_id WHERE r.user_id = ?1 AND " LIVE(
                          "n.") " AND (?3 IS NULL OR n.status = ?3)"
                                " ORDER BY n.created_at DESC, n.rowid DESC LIMIT ?4 OFFSET ?5",
    [ST_RECIP_FIND] = "SELECT read_seq FROM notification_recipients"
                      " WHERE notification_id = ?1 AND user_id = ?2",
    [ST_MARK_READ] = "UPDATE notification_recipients SET read_at = ?3,"
                     " read_seq = (SELECT read_count + 1 FROM notifications WHERE id = ?1)"
                     " WHERE notification_id = ?1 AND user_id = ?2 AND read_seq IS NULL",
    [ST_NOTIF_BUMP] = "UPDATE notifications SET read_count = read_count + 1,"
                      " status = CASE WHEN read_count + 1 >= recipient_count THEN 'read'"
                      " ELSE status END WHERE id = ?1",
    [ST_UNREAD] = "SELECT count(*) FROM notification_recipients r JOIN notifications n"
                  " ON n.id = r.notification_id WHERE r.user_id = ?1 AND r.read_seq IS NULL"
                  " AND " LIVE("n."),
    [ST_PURGE_NOTIF] = "DELETE FROM notifications WHERE expires_at IS NOT NULL"
                       " AND expires_at <= ?1",
    [ST_PURGE_SUB] = "DELETE FROM subscriptions WHERE expires_at IS NOT NULL AND expires_at <= ?1",
    [ST_SUB_INSERT] = "INSERT INTO subscriptions (" SUB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                      " ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_SUB_GET] = "SELECT " SUB_COLS " FROM subscriptions WHERE id = ?1 AND " LIVE(""),
    [ST_SUB_COUNT] = "SELECT count(*) FROM subscriptions WHERE user_id = ?1 AND " LIVE(
        "") " AND (?3 IS NULL OR status = ?3)",
    [ST_SUB_LIST] = "SELECT " SUB_COLS " FROM subscriptions WHERE user_id = ?1 AND " LIVE(
        "") " AND (?3 IS NULL OR status = ?3)"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?4 OFFSET ?5",
    [ST_SUB_SET_STATUS] = "UPDATE subscriptions SET status = ?2, updated_at = ?3 WHERE id = ?1",
    [ST_SUB_DELETE] = "DELETE FROM subscriptions WHERE id = ?1",
    [ST_SUB_ACTIVE] = "SELECT " SUB_COLS " FROM subscriptions WHERE status = 'active'"
                      " AND (expires_at IS NULL OR expires_at > ?1) ORDER BY rowid",
};

/* ---- errors and statement helpers ----------------------------------------------------------- */

int rc_store_sqlite_fail(struct rc_store_engine *e, const char *what, int src, struct rc_err *err)
{
    int rc = (src & 0xff) == SQLITE_FULL    ? -ENOSPC
             : (src & 0xff) == SQLITE_BUSY  ? -EBUSY
             : (src & 0xff) == SQLITE_NOMEM ? -ENOMEM
                                            : -EIO;
    rc_err_set(err, 503, "store_unavailable", "store: %s failed: %s (sqlite %d); retry later", what,
               e->db ? sqlite3_errmsg(e->db) : sqlite3_errstr(src), src);
    return rc;
}

/* A prepared statement, reset and unbound, ready for binding. */
static sqlite3_stmt *stmt(struct rc_store_engine *e, enum st i)
{
    sqlite3_stmt *s = e->st[i];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
static int run(struct rc_store_engine *e, enum st i, const char *what, struct rc_err *err)
{
    sqlite3_stmt *s = e->st[i];
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    if (src != SQLITE_DONE && src != SQLITE_ROW)
        return rc_store_sqlite_fail(e, what, src, err);
    return 0;
}

static int run_simple(struct rc_store_engine *e, enum st i, const char *what, struct rc_err *err)
{
    stmt(e, i);
    return run(e, i, what, err);
}

static void bind_text(sqlite3_stmt *s, int col, const json_t *v)
{
    if (json_is_string(v))
        sqlite3_bind_text(s, col, json_string_value(v), (int)json_string_length(v),
                          SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, col);
}

static void bind_int(sqlite3_stmt *s, int col, const json_t *v)
{
    if (json_is_integer(v))
        sqlite3_bind_int64(s, col, json_integer_value(v));
    else
        sqlite3_bind_null(s, col);
}

/* JSON values are stored as compact text; null stays SQL NULL. */
static int bind_json(sqlite3_stmt *s, int col, const json_t *v)
{
    if (!v || json_is_null(v))
        return sqlite3_bind_null(s, col) == SQLITE_OK ? 0 : -ENOMEM;
    char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!txt)
        return -ENOMEM;
    return sqlite3_bind_text(s, col, txt, -1, free) == SQLITE_OK ? 0 : -ENOMEM;
}

static json_t *col_text(sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return json_null();
    return json_stringn((const char *)sqlite3_column_text(s, col),
                        (size_t)sqlite3_column_bytes(s, col));
}

static json_t *col_int(sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(s, col));
}

static json_t *col_json(sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return json_null();
    json_error_t jerr;
    json_t *v = json_loadb((const char *)sqlite3_column_text(s, col),
                           (size_t)sqlite3_column_bytes(s, col), JSON_DECODE_ANY, &jerr);
    return v ? v : json_null();
}

/* Savepoint bracket of one atomic write; finish() releases or rolls back. */
static int write_begin(struct rc_store_engine *e, struct rc_err *err)
{
    return run_simple(e, ST_SAVEPOINT, "savepoint", err);
}

static int write_finish(struct rc_store_engine *e, int rc)
{
    struct rc_err ignored;
    if (rc)
        (void)run_simple(e, ST_ROLLBACK_TO, "rollback to savepoint", &ignored);
    (void)run_simple(e, ST_RELEASE, "release savepoint", &ignored);
    return rc;
}

static int count_of(struct rc_store_engine *e, enum st i, const char *what, uint64_t *out,
                    struct rc_err *err)
{
    sqlite3_stmt *s = e->st[i];
    int src = sqlite3_step(s);
    if (src != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc_store_sqlite_fail(e, what, src, err);
    }
    *out = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return 0;
}

/* ---- notifications -----------------------------------------------------------------------------
 */

static int user_list(struct rc_store_engine *e, enum st i, const char *id, json_t **out,
                     struct rc_err *err)
{
    sqlite3_stmt *s = stmt(e, i);
    json_t *arr = json_array();
    int src;

    if (!arr)
        return -ENOMEM;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(arr, col_text(s, 0));
    sqlite3_reset(s);
    if (src != SQLITE_DONE) {
        json_decref(arr);
        return rc_store_sqlite_fail(e, "reading recipients", src, err);
    }
    *out = arr;
    return 0;
}

/* The current row of a NOTIF_COLS select, plus its recipients and read_by
 * (queried separately: the row's statement stays positioned). */
static int notif_row(struct rc_store_engine *e, sqlite3_stmt *s, json_t **out, struct rc_err *err)
{
    char id[RC_STORE_ID_MAX + 1];
    json_t *recips = NULL, *read_by = NULL;
    int rc;

    snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(s, 0));
    json_t *rec = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:o, s:o, s:o, s:n, s:o, s:o, s:o, s:o, s:o}", "id",
        col_text(s, 0), "title", col_text(s, 1), "message", col_text(s, 2), "type", col_text(s, 3),
        "priority", col_text(s, 4), "status", col_text(s, 5), "recipients", "sender_id",
        col_text(s, 6), "created_at", col_int(s, 7), "delivered_at", col_int(s, 8), "read_by",
        "actions", col_json(s, 10), "resource_type", col_text(s, 11), "resource_id",
        col_text(s, 12), "metadata", col_json(s, 13), "expires_at", col_int(s, 14));
    if (!rec)
        return -ENOMEM;
    rc = user_list(e, ST_RECIPS, id, &recips, err);
    if (rc == 0)
        rc = user_list(e, ST_READ_BY, id, &read_by, err);
    if (rc) {
        json_decref(recips);
        json_decref(rec);
        return rc;
    }
    json_object_set_new(rec, "recipients", recips);
    json_object_set_new(rec, "read_by", read_by);
    *out = rec;
    return 0;
}

static int sq_notif_create(struct rc_store_engine *e, const json_t *rec,
                           struct rc_store_pending *pend, struct rc_err *err)
{
    (void)pend; /* every write completes here */
    static const char *const text_cols[] = {"id",       "title",  "message",  "type",
                                            "priority", "status", "sender_id"};
    const json_t *recips = json_object_get(rec, "recipients");
    const char *id = json_string_value(json_object_get(rec, "id"));
    sqlite3_stmt *s;
    int rc = write_begin(e, err);
    if (rc)
        return rc;

    s = stmt(e, ST_NOTIF_INSERT);
    for (int i = 0; i < 7; i++)
        bind_text(s, i + 1, json_object_get(rec, text_cols[i]));
    bind_int(s, 8, json_object_get(rec, "created_at"));
    bind_int(s, 9, json_object_get(rec, "delivered_at"));
    bind_int(s, 10, json_object_get(rec, "expires_at"));
    bind_text(s, 11, json_object_get(rec, "resource_type"));
    bind_text(s, 12, json_object_get(rec, "resource_id"));
    rc = bind_json(s, 13, json_object_get(rec, "actions"));
    if (rc == 0)
        rc = bind_json(s, 14, json_object_get(rec, "metadata"));
    sqlite3_bind_int64(s, 15, (sqlite3_int64)json_array_size(recips));
    if (rc == 0)
        rc = run(e, ST_NOTIF_INSERT, "saving the notification", err);
    for (size_t i = 0; rc == 0 && i < json_array_size(recips); i++) {
        s = stmt(e, ST_RECIP_INSERT);
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        bind_text(s, 2, json_array_get(recips, i));
        sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
        rc = run(e, ST_RECIP_INSERT, "saving a recipient", err);
    }
    if (rc == -ENOMEM)
        rc_err_set(err, 503, "no_memory", "store: out of memory; retry later");
    return write_finish(e, rc);
}

static int get_one(struct rc_store_engine *e, enum st i, bool notif, const char *id, int64_t now_ms,
                   json_t **rec, struct rc_err *err);

static int sq_notif_get(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                        struct rc_err *err)
{
    return get_one(e, ST_NOTIF_GET, true, id, now_ms, rec, err);
}

static int list_rows(struct rc_store_engine *e, sqlite3_stmt *s, bool notif, json_t **items,
                     struct rc_err *err);

static int sq_notif_list(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                         uint64_t *total, struct rc_err *err);

static int sq_notif_mark_read(struct rc_store_engine *e, const char *id, const char *user,
                              int64_t now_ms, json_t **rec, struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = sq_notif_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);

    sqlite3_stmt *s = stmt(e, ST_RECIP_FIND);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
    int src = sqlite3_step(s);
    bool unread = src == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL;
    sqlite3_reset(s);
    if (src == SQLITE_DONE) {
        rc_err_set(err, 403, "not_a_recipient",
                   "user \"%.64s\" is not a recipient of notification \"%.64s\"", user, id);
        return -EPERM;
    }
    if (src != SQLITE_ROW)
        return rc_store_sqlite_fail(e, "reading read state", src, err);
    if (unread) {
        rc = write_begin(e, err);
        if (rc)
            return rc;
        s = stmt(e, ST_MARK_READ);
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, now_ms);
        rc = run(e, ST_MARK_READ, "marking read", err);
        if (rc == 0) {
            s = stmt(e, ST_NOTIF_BUMP);
            sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
            rc = run(e, ST_NOTIF_BUMP, "updating the read count", err);
        }
        rc = write_finish(e, rc);
        if (rc)
            return rc;
    }
    return sq_notif_get(e, id, now_ms, rec, err);
}

static int sq_notif_unread_count(struct rc_store_engine *e, const char *user, int64_t now_ms,
                                 uint64_t *count, struct rc_err *err)
{
    sqlite3_stmt *s = stmt(e, ST_UNREAD);
    sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    return count_of(e, ST_UNREAD, "counting unread notifications", count, err);
}

/* Deletes expired notifications (recipients cascade) and expired
 * subscriptions; *purged counts both. */
static int sq_notif_purge_expired(struct rc_store_engine *e, int64_t now_ms, uint64_t *purged,
                                  struct rc_err *err)
{
    int rc = write_begin(e, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(stmt(e, ST_PURGE_NOTIF), 1, now_ms);
    rc = run(e, ST_PURGE_NOTIF, "purging expired notifications", err);
    *purged = rc == 0 ? (uint64_t)sqlite3_changes(e->db) : 0;
    if (rc == 0) {
        sqlite3_bind_int64(stmt(e, ST_PURGE_SUB), 1, now_ms);
        rc = run(e, ST_PURGE_SUB, "purging expired subscriptions", err);
        *purged += rc == 0 ? (uint64_t)sqlite3_changes(e->db) : 0;
    }
    return write_finish(e, rc);
}

/* ---- subscriptions ------------------------------------------------------------------------------
 */

static json_t *sub_row(sqlite3_stmt *s)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:o, s:o, s:o}", "id",
                     col_text(s, 0), "user_id", col_text(s, 1), "type", col_text(s, 2), "status",
                     col_text(s, 3), "created_at", col_int(s, 4), "updated_at", col_int(s, 5),
                     "expires_at", col_int(s, 6), "resource_id", col_text(s, 7), "resource_type",
                     col_text(s, 8), "topic", col_text(s, 9), "query", "labels", col_json(s, 10),
                     "metadata", col_json(s, 11), "payload_filter", col_json(s, 12));
}

static int sq_sub_create(struct rc_store_engine *e, const json_t *rec,
                         struct rc_store_pending *pend, struct rc_err *err)
{
    (void)pend; /* every write completes here */
    static const char *const text_cols[] = {"id", "user_id", "type", "status"};
    int rc = write_begin(e, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(e, ST_SUB_INSERT);
    for (int i = 0; i < 4; i++)
        bind_text(s, i + 1, json_object_get(rec, text_cols[i]));
    bind_int(s, 5, json_object_get(rec, "created_at"));
    bind_int(s, 6, json_object_get(rec, "updated_at"));
    bind_int(s, 7, json_object_get(rec, "expires_at"));
    bind_text(s, 8, json_object_get(rec, "resource_id"));
    bind_text(s, 9, json_object_get(rec, "resource_type"));
    bind_text(s, 10, json_object_get(rec, "topic"));
    rc = bind_json(s, 11, json_object_get(rec, "labels"));
    if (rc == 0)
        rc = bind_json(s, 12, json_object_get(rec, "metadata"));
    if (rc == 0)
        rc = bind_json(s, 13, json_object_get(rec, "payload_filter"));
    if (rc == 0)
        rc = run(e, ST_SUB_INSERT, "saving the subscription", err);
    if (rc == -ENOMEM)
        rc_err_set(err, 503, "no_memory", "store: out of memory; retry later");
    return write_finish(e, rc);
}

static int sq_sub_get(struct rc_store_engine *e, const char *id, int64_t now_ms, json_t **rec,
                      struct rc_err *err)
{
    return get_one(e, ST_SUB_GET, false, id, now_ms, rec, err);
}

static int sq_sub_set_status(struct rc_store_engine *e, const char *id, const char *status,
                             int64_t now_ms, json_t **rec, struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = sq_sub_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);
    rc = write_begin(e, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(e, ST_SUB_SET_STATUS);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    rc = write_finish(e, run(e, ST_SUB_SET_STATUS, "updating the subscription", err));
    if (rc)
        return rc;
    return sq_sub_get(e, id, now_ms, rec, err);
}

static int sq_sub_delete(struct rc_store_engine *e, const char *id, int64_t now_ms,
                         struct rc_err *err)
{
    json_t *cur = NULL;
    int rc = sq_sub_get(e, id, now_ms, &cur, err);
    if (rc)
        return rc;
    json_decref(cur);
    rc = write_begin(e, err);
    if (rc)
        return rc;
    sqlite3_bind_text(stmt(e, ST_SUB_DELETE), 1, id, -1, SQLITE_STATIC);
    return write_finish(e, run(e, ST_SUB_DELETE, "deleting the subscription", err));
}

static int sq_sub_load_active(struct rc_store_engine *e, int64_t now_ms, json_t **items,
                              struct rc_err *err)
{
    sqlite3_stmt *s = stmt(e, ST_SUB_ACTIVE);
    sqlite3_bind_int64(s, 1, now_ms);
    return list_rows(e, s, false, items, err);
}

/* ---- shared get / list
 * --------------------------------------------------------------------------- */

static int get_one(struct rc_store_engine *e, enum st i, bool notif, const char *id, int64_t now_ms,
                   json_t **rec, struct rc_err *err)
{
    sqlite3_stmt *s = stmt(e, i);
    int rc = 0;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        if (notif) {
            rc = notif_row(e, s, rec, err);
        } else {
            *rec = sub_row(s);
            rc = *rec ? 0 : -ENOMEM;
        }
    } else if (src == SQLITE_DONE) {
        rc_err_set(err, 404, "not_found", "%s \"%.64s\" does not exist or has expired",
                   notif ? "notification" : "subscription", id);
        rc = -ENOENT;
    } else {
        rc = rc_store_sqlite_fail(e, "reading", src, err);
    }
    sqlite3_reset(s);
    return rc;
}

static int list_rows(struct rc_store_engine *e, sqlite3_stmt *s, bool notif, json_t **items,
                     struct rc_err *err)
{
    json_t *arr = json_array();
    int src, rc = 0;
    if (!arr)
        return -ENOMEM;
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *rec = NULL;
        if (notif) {
            rc = notif_row(e, s, &rec, err);
        } else {
            rec = sub_row(s);
            rc = rec ? 0 : -ENOMEM;
        }
        if (rc == 0)
            json_array_append_new(arr, rec);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = rc_store_sqlite_fail(e, "listing", src, err);
    sqlite3_reset(s);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *items = arr;
    return 0;
}

static void bind_query(sqlite3_stmt *s, const struct rc_store_query *q, bool paged)
{
    sqlite3_bind_text(s, 1, q->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, q->now_ms);
    if (q->status)
        sqlite3_bind_text(s, 3, q->status, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    if (paged) {
        sqlite3_bind_int64(s, 4, q->page_size);
        sqlite3_bind_int64(s, 5, (sqlite3_int64)(q->page - 1) * q->page_size);
    }
}

static int list_query(struct rc_store_engine *e, enum st count_st, enum st list_st, bool notif,
                      const struct rc_store_query *q, json_t **items, uint64_t *total,
                      struct rc_err *err)
{
    bind_query(stmt(e, count_st), q, false);
    int rc = count_of(e, count_st, "counting", total, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(e, list_st);
    bind_query(s, q, true);
    return list_rows(e, s, notif, items, err);
}

static int sq_notif_list(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                         uint64_t *total, struct rc_err *err)
{
    return list_query(e, ST_NOTIF_COUNT, ST_NOTIF_LIST, true, q, items, total, err);
}

static int sq_sub_list(struct rc_store_engine *e, const struct rc_store_query *q, json_t **items,
                       uint64_t *total, struct rc_err *err)
{
    return list_query(e, ST_SUB_COUNT, ST_SUB_LIST, false, q, items, total, err);
}

/* ---- transactions ------------------------------------------------------------------------------
 */

static int sq_begin(struct rc_store_engine *e, struct rc_err *err)
{
    return run_simple(e, ST_BEGIN, "begin", err);
}

static int sq_commit(struct rc_store_engine *e, struct rc_err *err)
{
    return run_simple(e, ST_COMMIT, "commit", err);
}

static void sq_rollback(struct rc_store_engine *e)
{
    struct rc_err ignored;
    if (!sqlite3_get_autocommit(e->db))
        (void)run_simple(e, ST_ROLLBACK, "rollback", &ignored);
}

/* Prepare every statement of st_sql[] into e->st[]. */
int rc_store_sqlite_prepare(struct rc_store_engine *e, struct rc_err *err)
{
    for (int i = 0; i < ST_COUNT; i++) {
        int src =
            sqlite3_prepare_v3(e->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i], NULL);
        if (src != SQLITE_OK)
            return rc_store_sqlite_fail(e, "preparing a statement", src, err);
    }
    return 0;
}

const struct rc_store_engine_ops rc_store_sqlite_ops = {
    .name = "sqlite",
    .open = rc_store_sqlite_open,
    .close = rc_store_sqlite_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .notif_create = sq_notif_create,
    .notif_list = sq_notif_list,
    .notif_get = sq_notif_get,
    .notif_mark_read = sq_notif_mark_read,
    .notif_unread_count = sq_notif_unread_count,
    .notif_purge_expired = sq_notif_purge_expired,
    .sub_create = sq_sub_create,
    .sub_list = sq_sub_list,
    .sub_get = sq_sub_get,
    .sub_set_status = sq_sub_set_status,
    .sub_delete = sq_sub_delete,
    .sub_load_active = sq_sub_load_active,
    .describe = rc_store_sqlite_describe,
};
