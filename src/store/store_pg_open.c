/* store_pg_open.c - the PostgreSQL engine's life cycle: connecting (with
 * timeouts, so that nothing waits on a dead server for long), bringing the
 * schema up to date under an advisory lock, reconnecting after a lost
 * connection, describing the server, and closing. The statements and
 * operations are in store_pg.c.
 *
 * Connection: one libpq connection, opened on the thread calling
 *   rc_store_open and then used by the storage thread only. postgres_url
 *   is expanded by libpq (URI or key=value); connect_timeout,
 *   tcp_user_timeout and keepalives are set before it, so the URL may
 *   override them; the session gets statement_timeout. The password:
 *   postgres_password (RINGCAST_POSTGRES_PASSWORD) if set, else whatever the
 *   URL, PGPASSWORD or ~/.pgpass give libpq. Neither is ever logged.
 * Lost connection: the op that notices fails -EIO (503 store_unavailable),
 *   and so does the rest of the batch (its transaction is gone). The next op
 *   outside a transaction (a begin, or a read batch) connects again, at most
 *   every RC_STORE_PG_RETRY_MS.
 * Schema: migrations[] below, one transaction per step, run at open while
 *   holding pg_advisory_lock(RC_STORE_PG_LOCK_MIGRATE): a second node
 *   starting at the same time waits, then finds the schema current. A newer
 *   schema than this build knows is refused, never touched. To add version 2,
 *   append one SQL step and bump RC_STORE_PG_SCHEMA_VERSION. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringcast/log.h"
#include "ringcast/store.h"
#include "store_pg_internal.h"

/* migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[RC_STORE_PG_SCHEMA_VERSION] = {
    /* 0 -> 1: the SQLite engine's version 1, with times as bigint ms, JSON as
     * jsonb and an identity column (seq) for the newest-first order */
    "CREATE TABLE notifications ("
    " seq bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY,"
    " title text NOT NULL, message text NOT NULL, type text NOT NULL,"
    " priority text NOT NULL, status text NOT NULL, sender_id text,"
    " created_at bigint NOT NULL, delivered_at bigint, expires_at bigint,"
    " resource_type text, resource_id text, actions jsonb NOT NULL, metadata jsonb,"
    " recipient_count integer NOT NULL, read_count integer NOT NULL DEFAULT 0);"
    "CREATE INDEX notifications_expires_at ON notifications (expires_at)"
    " WHERE expires_at IS NOT NULL;"
    "CREATE INDEX notifications_status_created ON notifications (status, created_at DESC, seq "
    "DESC);"
    "CREATE TABLE notification_recipients ("
    " notification_id text NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,"
    " user_id text NOT NULL, pos integer NOT NULL, read_seq integer, read_at bigint,"
    " PRIMARY KEY (notification_id, user_id));"
    "CREATE INDEX notification_recipients_user ON notification_recipients (user_id, read_seq);"
    "CREATE TABLE subscriptions ("
    " seq bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, user_id text NOT NULL,"
    " type text NOT NULL, status text NOT NULL, created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL, expires_at bigint, resource_id text, resource_type text,"
    " topic text NOT NULL, labels jsonb NOT NULL, metadata jsonb, payload_filter jsonb);"
    "CREATE INDEX subscriptions_user_status_created ON subscriptions"
    " (user_id, status, created_at DESC, seq DESC);"
    "CREATE INDEX subscriptions_active ON subscriptions (seq) WHERE status = 'active';"
    "CREATE INDEX subscriptions_expires_at ON subscriptions (expires_at)"
    " WHERE expires_at IS NOT NULL;",
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's message on one line, without the trailing newline. */
static void one_line(const char *in, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < cap; i++) {
        char c = in[i] == '\n' || in[i] == '\t' || in[i] == '\r' ? ' ' : in[i];
        if (c == ' ' && (j == 0 || out[j - 1] == ' '))
            continue;
        out[j++] = c;
    }
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

int rc_store_pg_fail(struct rc_store_engine *e, const char *what, const PGresult *res,
                     struct rc_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char why[256];
    one_line(res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
             : e->conn                           ? PQerrorMessage(e->conn)
                                                 : "not connected",
             why, sizeof(why));
    int rc = -EIO;
    if (state && strcmp(state, "53100") == 0)
        rc = -ENOSPC;
    else if (state && strcmp(state, "53200") == 0)
        rc = -ENOMEM;
    else if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
                       strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0))
        rc = -EBUSY;
    bool lost = !e->conn || PQstatus(e->conn) != CONNECTION_OK;
    rc_err_set(err, 503, "store_unavailable", "store: %s failed: %s%s%s%s; retry later", what, why,
               state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
    if (lost) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: %s failed: the connection to PostgreSQL was lost (%s); retry later",
                   what, why);
        rc = -EIO;
    }
    return rc;
}

int rc_store_pg_exec(struct rc_store_engine *e, const char *sql, const char *what,
                     struct rc_err *err)
{
    if (!e->conn) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: %s failed: not connected to PostgreSQL; retry later", what);
        return -EIO;
    }
    PGresult *res = PQexec(e->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = rc_store_pg_fail(e, what, res, err);
    PQclear(res);
    return rc;
}

/* A single value (first row, first column) of sql into buf; "" if no row. */
static int query_text(struct rc_store_engine *e, const char *sql, const char *what, char *buf,
                      size_t cap, struct rc_err *err)
{
    buf[0] = '\0';
    PGresult *res = PQexec(e->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = rc_store_pg_fail(e, what, res, err);
    else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        snprintf(buf, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* NOTICEs ("relation ... already exists, skipping") are not for the log. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connect and set up the session (no schema work). 0, or -ECONNREFUSED
 * with err naming libpq's reason. */
static int connect_db(struct rc_store_engine *e, struct rc_err *err)
{
    char ct[16], tut[16], stmt[80];
    snprintf(ct, sizeof(ct), "%d", RC_STORE_PG_CONNECT_TIMEOUT_S);
    snprintf(tut, sizeof(tut), "%d", RC_STORE_PG_TCP_USER_TIMEOUT_MS);
    /* later entries win: the URL overrides the defaults before it; the
     * client encoding (jansson's text is UTF-8) and the configured password
     * override the URL's */
    const char *keys[] = {"connect_timeout",
                          "tcp_user_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "application_name",
                          "dbname",
                          "client_encoding",
                          e->password ? "password" : NULL,
                          NULL};
    const char *vals[] = {ct,         tut,    "1",    "10",        "5", "3",
                          "ringcast", e->url, "UTF8", e->password, NULL};

    e->conn = PQconnectdbParams(keys, vals, 1);
    if (!e->conn || PQstatus(e->conn) != CONNECTION_OK) {
        char why[256];
        one_line(e->conn ? PQerrorMessage(e->conn) : "out of memory", why, sizeof(why));
        /* libpq's hint, when it gives one, says what to check; keep the reason */
        char *hint = strstr(why, " Is the server running");
        if (hint)
            *hint = '\0';
        rc_err_set(err, 503, "store_unavailable",
                   "store: cannot connect to PostgreSQL (postgres_url): %.150s; check the server "
                   "and postgres_url",
                   why);
        PQfinish(e->conn);
        e->conn = NULL;
        return -ECONNREFUSED;
    }
    PQsetNoticeProcessor(e->conn, quiet_notice, NULL);
    const char *enc = PQparameterStatus(e->conn, "server_encoding");
    if (!enc || strcmp(enc, "UTF8") != 0) {
        rc_err_set(err, 500, "bad_config",
                   "store: the PostgreSQL database's encoding is %s; ringcast stores UTF-8 text: "
                   "use a database created with ENCODING 'UTF8'",
                   enc ? enc : "unknown");
        PQfinish(e->conn);
        e->conn = NULL;
        return -EINVAL;
    }
    snprintf(stmt, sizeof(stmt), "SET statement_timeout = %d", RC_STORE_PG_STATEMENT_TIMEOUT_MS);
    return rc_store_pg_exec(e, stmt, "setting statement_timeout", err);
}

static int schema_version(struct rc_store_engine *e, long *out, struct rc_err *err)
{
    char buf[32];
    int rc = query_text(e, "SELECT version FROM schema_version", "reading the schema version", buf,
                        sizeof(buf), err);
    *out = strtol(buf, NULL, 10);
    return rc;
}

/* Bring the schema to RC_STORE_PG_SCHEMA_VERSION; the caller holds the
 * migration lock. One transaction per step. */
static int migrate_locked(struct rc_store_engine *e, struct rc_err *err)
{
    long v = 0;
    int rc = rc_store_pg_exec(e,
                              "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT "
                              "NULL);"
                              "INSERT INTO schema_version SELECT 0"
                              " WHERE NOT EXISTS (SELECT 1 FROM schema_version);",
                              "creating the schema_version table", err);
    if (rc == 0)
        rc = schema_version(e, &v, err);
    if (rc)
        return rc;
    if (v < 0 || v > RC_STORE_PG_SCHEMA_VERSION) {
        rc_err_set(err, 500, "bad_schema",
                   "store: the PostgreSQL database has schema version %ld but this ringcast knows "
                   "versions up to %d; run a newer ringcast or restore a backup",
                   v, RC_STORE_PG_SCHEMA_VERSION);
        return -EPROTO;
    }
    for (; v < RC_STORE_PG_SCHEMA_VERSION; v++) {
        char bump[80];
        snprintf(bump, sizeof(bump), "UPDATE schema_version SET version = %ld", v + 1);
        rc = rc_store_pg_exec(e, "BEGIN", "starting a migration", err);
        if (rc == 0)
            rc = rc_store_pg_exec(e, migrations[v], "migrating the schema", err);
        if (rc == 0)
            rc = rc_store_pg_exec(e, bump, "recording the schema version", err);
        if (rc == 0)
            rc = rc_store_pg_exec(e, "COMMIT", "committing a migration", err);
        if (rc) {
            struct rc_err ignored;
            (void)rc_store_pg_exec(e, "ROLLBACK", "rollback", &ignored);
            return rc;
        }
    }
    e->schema_version = v;
    return 0;
}

static int migrate(struct rc_store_engine *e, struct rc_err *err)
{
    char sql[96];
    struct rc_err ignored;
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)",
             (long long)RC_STORE_PG_LOCK_MIGRATE);
    int rc = rc_store_pg_exec(e, sql, "taking the migration lock", err);
    if (rc)
        return rc;
    rc = migrate_locked(e, err);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)",
             (long long)RC_STORE_PG_LOCK_MIGRATE);
    (void)rc_store_pg_exec(e, sql, "releasing the migration lock", &ignored);
    return rc;
}

int rc_store_pg_ready(struct rc_store_engine *e, struct rc_err *err)
{
    if (e->piped) {
        /* creates of this batch are in flight: this op comes after them */
        int rc = rc_store_pg_flush(e, false, err);
        if (rc)
            return rc;
    }
    if (e->conn && e->prepared && PQstatus(e->conn) == CONNECTION_OK)
        return 0;
    if (rc_store_pg_in_tx(e)) {
        rc_err_set(err, 503, "store_unavailable",
                   "store: the connection to PostgreSQL was lost during this batch; nothing of "
                   "it was saved; retry later");
        return -EIO;
    }
    int64_t now = mono_ms();
    if (now < e->retry_at_ms) {
        rc_err_set(err, 503, "store_unavailable", "%s", e->last_err);
        return -EIO;
    }
    bool was_up = e->conn != NULL;
    PQfinish(e->conn);
    e->conn = NULL;
    e->prepared = false;
    int rc = connect_db(e, err);
    if (rc == 0)
        rc = rc_store_pg_prepare(e, err);
    if (rc) {
        err->status = 503;
        err->code = "store_unavailable";
        e->retry_at_ms = now + RC_STORE_PG_RETRY_MS;
        snprintf(e->last_err, sizeof(e->last_err), "%s", err->msg);
        if (was_up)
            rc_log(RC_LOG_WARN, "store_disconnected", "reason=\"%.200s\"", err->msg);
        PQfinish(e->conn);
        e->conn = NULL;
        e->prepared = false;
        return -EIO;
    }
    rc_log(RC_LOG_INFO, "store_reconnected", "engine=postgres");
    return 0;
}

void rc_store_pg_close(struct rc_store_engine *e)
{
    if (!e)
        return;
    PQfinish(e->conn);
    free(e->queued);
    free(e->url);
    if (e->password) {
        memset(e->password, 0, strlen(e->password));
        free(e->password);
    }
    free(e);
}

int rc_store_pg_open(struct rc_store_engine **out, const struct rc_store_config *cfg,
                     struct rc_err *err)
{
    *out = NULL;
    if (!cfg->postgres_url || !cfg->postgres_url[0]) {
        rc_err_set(err, 500, "bad_config",
                   "store: store=postgres needs postgres_url (postgresql://user@host:port/db)");
        return -EINVAL;
    }
    struct rc_store_engine *e = calloc(1, sizeof(*e));
    if (!e || !(e->url = strdup(cfg->postgres_url)) ||
        (cfg->postgres_password && cfg->postgres_password[0] &&
         !(e->password = strdup(cfg->postgres_password)))) {
        rc_store_pg_close(e);
        rc_err_set(err, 500, "no_memory", "store: out of memory at start");
        return -ENOMEM;
    }
    int rc = connect_db(e, err);
    if (rc == 0)
        rc = migrate(e, err);
    if (rc == 0 && rc_store_pg_prepare(e, err) < 0) {
        char why[RC_STORE_MSG_MAX];
        snprintf(why, sizeof(why), "%s", err->msg);
        rc_err_set(err, 500, "bad_schema",
                   "store: the PostgreSQL database does not have the tables of schema version %d "
                   "(%.160s); it was changed outside ringcast: restore a backup",
                   RC_STORE_PG_SCHEMA_VERSION, why);
        rc = -EPROTO;
    }
    if (rc) {
        if (err->status == 503)
            err->status = 500; /* at start nothing is retried: a configuration error */
        rc_store_pg_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

int rc_store_pg_describe(struct rc_store_engine *e, json_t *obj, struct rc_err *err)
{
    long v = 0;
    char sync[32];
    int rc = rc_store_pg_ready(e, err);
    if (rc == 0)
        rc = schema_version(e, &v, err);
    if (rc == 0)
        rc = query_text(e, "SHOW synchronous_commit", "describing the database", sync, sizeof(sync),
                        err);
    if (rc)
        return rc;
    const char *sv = PQparameterStatus(e->conn, "server_version");
    json_object_set_new(obj, "engine", json_string("postgres"));
    json_object_set_new(obj, "server_version", json_string(sv ? sv : "?"));
    json_object_set_new(obj, "synchronous_commit", json_string(sync));
    json_object_set_new(obj, "schema_version", json_integer(v));
    return 0;
}

int rc_store_pg_check(const struct rc_store_config *cfg, struct rc_err *err)
{
    struct rc_store_engine e = {.url = (char *)cfg->postgres_url,
                                .password = cfg->postgres_password && cfg->postgres_password[0]
                                                ? (char *)cfg->postgres_password
                                                : NULL};
    char buf[32];
    long v = 0;
    if (!e.url || !e.url[0]) {
        rc_err_set(err, 500, "bad_config",
                   "store: store=postgres needs postgres_url (postgresql://user@host:port/db)");
        return -EINVAL;
    }
    int rc = connect_db(&e, err);
    if (rc == 0)
        rc = query_text(&e, "SELECT to_regclass('schema_version') IS NOT NULL",
                        "looking for the schema_version table", buf, sizeof(buf), err);
    if (rc == 0 && buf[0] == 't')
        rc = schema_version(&e, &v, err);
    if (rc == 0 && (v < 0 || v > RC_STORE_PG_SCHEMA_VERSION)) {
        rc_err_set(err, 500, "bad_schema",
                   "store: the PostgreSQL database has schema version %ld but this ringcast knows "
                   "versions up to %d; run a newer ringcast or restore a backup",
                   v, RC_STORE_PG_SCHEMA_VERSION);
        rc = -EPROTO;
    }
    PQfinish(e.conn);
    return rc;
}
