/* store_sqlite_open.c - the SQLite engine's life cycle: creating and
 * locking data_dir, opening <data_dir>/ringcast.db in WAL mode, bringing the
 * schema up to date, describing the database, and closing it. The
 * statements and operations are in store_sqlite.c.
 *
 * Durability: PRAGMA synchronous=FULL (default) fsyncs the WAL at every
 * commit, so an acknowledged write survives power loss; NORMAL fsyncs only at
 * checkpoints: it survives a crash of the process but may lose the last
 * commits on power loss or a kernel crash (the file stays consistent).
 * Concurrency: the connection is opened on the thread calling rc_store_open
 * and then used by the storage thread only (SQLITE_OPEN_NOMUTEX). A second
 * server on the same data_dir is refused by an flock on ringcast.lock; other
 * readers (sqlite3 ringcast.db ".backup x") are fine thanks to WAL. The
 * holder writes its pid into ringcast.lock so the refusal can name it.
 * Schema: a versioned list of migrations (migrations[] below). A database
 * newer than this build is refused, never touched. To add version 2, append
 * one SQL step to migrations[] and bump RC_STORE_SQLITE_SCHEMA_VERSION. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringcast/store.h"
#include "store_sqlite_internal.h"

/* migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[RC_STORE_SQLITE_SCHEMA_VERSION] = {
    /* 0 -> 1: notifications with per-recipient read state; user subscriptions */
    "CREATE TABLE notifications ("
    " id TEXT PRIMARY KEY, title TEXT NOT NULL, message TEXT NOT NULL,"
    " type TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,"
    " sender_id TEXT, created_at INTEGER NOT NULL, delivered_at INTEGER,"
    " expires_at INTEGER, resource_type TEXT, resource_id TEXT,"
    " actions TEXT NOT NULL, metadata TEXT,"
    " recipient_count INTEGER NOT NULL, read_count INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX notifications_expires_at ON notifications(expires_at)"
    " WHERE expires_at IS NOT NULL;"
    "CREATE TABLE notification_recipients ("
    " notification_id TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL, pos INTEGER NOT NULL,"
    " read_seq INTEGER, read_at INTEGER,"
    " PRIMARY KEY (notification_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX notification_recipients_user ON notification_recipients(user_id, read_seq);"
    "CREATE TABLE subscriptions ("
    " id TEXT PRIMARY KEY, user_id TEXT NOT NULL, type TEXT NOT NULL,"
    " status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " expires_at INTEGER, resource_id TEXT, resource_type TEXT, topic TEXT NOT NULL,"
    " labels TEXT NOT NULL, metadata TEXT, payload_filter TEXT);"
    "CREATE INDEX subscriptions_user_id ON subscriptions(user_id);"
    "CREATE INDEX subscriptions_status ON subscriptions(status);"
    "CREATE INDEX subscriptions_expires_at ON subscriptions(expires_at)"
    " WHERE expires_at IS NOT NULL;",
};

/* ---- open, schema, close ------------------------------------------------------------------------
 */

/* A failure while opening, worded for what it is. At run time a failed
 * statement may pass (503, retry later); at start none of these does, so each
 * says what is wrong with the file and what to do. Returns -errno. */
static int open_fail(struct rc_store_engine *e, const char *what, int src, struct rc_err *err)
{
    const char *why = e->db ? sqlite3_errmsg(e->db) : sqlite3_errstr(src);
    switch (src & 0xff) {
    case SQLITE_NOTADB:
        rc_err_set(err, 500, "bad_database",
                   "store: %s is not an SQLite database (%s); move it away or choose another "
                   "data_dir",
                   e->path, why);
        return -EPROTO;
    case SQLITE_CORRUPT:
        rc_err_set(err, 500, "corrupt_database",
                   "store: %s is corrupt (%s, %s); restore a backup, or move it away to start "
                   "empty",
                   e->path, why, what);
        return -EIO;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
        rc_err_set(err, 500, "bad_config",
                   "store: cannot open %s for writing (%s); check the permissions of the file, "
                   "its -wal/-shm files and data_dir",
                   e->path, why);
        return -EACCES;
    case SQLITE_FULL:
        rc_err_set(err, 500, "disk_full", "store: the disk of %s is full (%s); free space", e->path,
                   what);
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc_err_set(err, 500, "database_locked",
                   "store: %s is locked by another program (%s); end its transaction, then start "
                   "ringcast",
                   e->path, what);
        return -EBUSY;
    case SQLITE_NOMEM:
        rc_err_set(err, 500, "no_memory", "store: out of memory %s", what);
        return -ENOMEM;
    default:
        rc_err_set(err, 500, "bad_database", "store: %s failed on %s: %s (sqlite %d)", what,
                   e->path, why, src);
        return -EIO;
    }
}

static int exec(struct rc_store_engine *e, const char *sql, const char *what, struct rc_err *err)
{
    int src = sqlite3_exec(e->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? 0 : open_fail(e, what, src, err);
}

/* Single-value query (PRAGMA or SELECT) into buf as text; "" if no row.
 * Returns the SQLite result code (SQLITE_OK): the caller words a failure. */
static int query_text(struct rc_store_engine *e, const char *sql, char *buf, size_t cap)
{
    sqlite3_stmt *s;
    buf[0] = '\0';
    int src = sqlite3_prepare_v2(e->db, sql, -1, &s, NULL);
    if (src != SQLITE_OK)
        return src;
    src = sqlite3_step(s);
    if (src == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return src == SQLITE_ROW || src == SQLITE_DONE ? SQLITE_OK : src;
}

static int schema_version(struct rc_store_engine *e, long *out)
{
    char buf[32];
    int src = query_text(e, "SELECT version FROM schema_version", buf, sizeof(buf));
    *out = strtol(buf, NULL, 10);
    return src;
}

/* Whose database is this? Ours: application_id is RC_STORE_SQLITE_APP_ID. New
 * (no tables), or made by a ringcast from before application ids (only our
 * tables, schema_version among them): ours from now on, *mark is set. Anything
 * else belongs to another program: refused, never touched. This is the first
 * read of the file, so a file that is not a database or is corrupt fails here. */
static int check_owner(struct rc_store_engine *e, bool *mark, struct rc_err *err)
{
    char buf[160];
    *mark = false;
    int src = query_text(e, "PRAGMA application_id", buf, sizeof(buf));
    if (src != SQLITE_OK)
        return open_fail(e, "reading the header", src, err);
    uint32_t id = (uint32_t)strtol(buf, NULL, 10);
    if (id == RC_STORE_SQLITE_APP_ID)
        return 0;
    if (id != 0) {
        rc_err_set(err, 500, "foreign_database",
                   "store: %s belongs to another program (application_id 0x%08x, ringcast's is "
                   "0x%08x); ringcast will not touch it: choose another data_dir",
                   e->path, id, RC_STORE_SQLITE_APP_ID);
        return -EPROTO;
    }
    /* the tables every schema version has had (keep in step with migrations[]) */
    src = query_text(e,
                     "SELECT count(*) || ' ' || total(name = 'schema_version') || ' ' ||"
                     " total(name NOT IN ('schema_version', 'notifications',"
                     " 'notification_recipients', 'subscriptions'))"
                     " FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'",
                     buf, sizeof(buf));
    if (src != SQLITE_OK)
        return open_fail(e, "reading the schema", src, err);
    double ntables = 0, have_version = 0, others = 0;
    if (sscanf(buf, "%lf %lf %lf", &ntables, &have_version, &others) != 3)
        others = ntables = 1; /* cannot tell: treat it as another program's */
    if (ntables == 0 || (have_version > 0 && others == 0)) {
        *mark = true;
        return 0;
    }
    src = query_text(e,
                     "SELECT group_concat(name, ', ') FROM (SELECT name FROM sqlite_master"
                     " WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name LIMIT 3)",
                     buf, sizeof(buf));
    if (src != SQLITE_OK)
        return open_fail(e, "reading the schema", src, err);
    rc_err_set(err, 500, "foreign_database",
               "store: %s is not a ringcast database (it holds tables %s%s and no ringcast "
               "application_id); ringcast will not add its tables to it: choose another data_dir",
               e->path, buf, ntables > 3 ? ", ..." : "");
    return -EPROTO;
}

/* Bring the schema to RC_STORE_SQLITE_SCHEMA_VERSION, one transaction per
 * step, so an interrupted upgrade resumes where it stopped. */
static int migrate(struct rc_store_engine *e, struct rc_err *err)
{
    long v;
    int src, rc = exec(e,
                       "BEGIN IMMEDIATE;"
                       "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                       "INSERT INTO schema_version SELECT 0"
                       " WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
                       "COMMIT;",
                       "creating the schema_version table", err);
    if (rc == 0 && (src = schema_version(e, &v)) != SQLITE_OK)
        rc = open_fail(e, "reading the schema version", src, err);
    if (rc)
        return rc;
    if (v < 0 || v > RC_STORE_SQLITE_SCHEMA_VERSION) {
        rc_err_set(err, 500, "bad_schema",
                   "store: %s has schema version %ld but this ringcast knows versions up to %d; "
                   "run a newer ringcast or restore a backup",
                   e->path, v, RC_STORE_SQLITE_SCHEMA_VERSION);
        return -EPROTO;
    }
    for (; v < RC_STORE_SQLITE_SCHEMA_VERSION; v++) {
        char bump[80];
        snprintf(bump, sizeof(bump), "UPDATE schema_version SET version = %ld;", v + 1);
        rc = exec(e, "BEGIN IMMEDIATE", "starting a migration", err);
        if (rc == 0)
            rc = exec(e, migrations[v], "migrating the schema", err);
        if (rc == 0)
            rc = exec(e, bump, "recording the schema version", err);
        if (rc == 0)
            rc = exec(e, "COMMIT", "committing a migration", err);
        if (rc) {
            sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return 0;
}

/* mkdir -p with mode 0700 for the parts that are missing. */
static int make_dirs(const char *dir, struct rc_err *err)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) {
        rc_err_set(err, 500, "bad_config", "store: data_dir is empty or longer than %d bytes",
                   PATH_MAX - 1);
        return -EINVAL;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            int rc = -errno;
            rc_err_set(err, 500, "bad_config",
                       "store: cannot create data_dir component %s: %s; create it or choose "
                       "another data_dir",
                       path, strerror(errno));
            return rc;
        }
        path[i] = c;
    }
    struct stat stb;
    if (stat(dir, &stb) != 0 || !S_ISDIR(stb.st_mode)) {
        rc_err_set(err, 500, "bad_config", "store: data_dir %s is not a directory", dir);
        return -ENOTDIR;
    }
    return 0;
}

static int lock_dir(struct rc_store_engine *e, const char *dir, struct rc_err *err)
{
    char lp[PATH_MAX];
    if (snprintf(lp, sizeof(lp), "%s/ringcast.lock", dir) >= (int)sizeof(lp)) {
        rc_err_set(err, 500, "bad_config", "store: data_dir path is too long");
        return -ENAMETOOLONG;
    }
    e->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->lock_fd < 0) {
        int rc = -errno;
        rc_err_set(err, 500, "bad_config", "store: cannot open %s: %s", lp, strerror(errno));
        return rc;
    }
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        /* the holder wrote its pid into the file (below) */
        char holder[24] = "", who[40] = "";
        ssize_t n = pread(e->lock_fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        if (holder[0])
            snprintf(who, sizeof(who), " (pid %s)", holder);
        rc_err_set(err, 500, "bad_config",
                   "store: data_dir %s is in use by another ringcast%s (it holds the lock on "
                   "ringcast.lock); stop it or choose another data_dir",
                   dir, who);
        return rc;
    }
    /* name ourselves for the next one that tries; best effort: the flock is what counts */
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(e->lock_fd, 0) == 0) {
        ssize_t w = pwrite(e->lock_fd, pid, (size_t)len, 0);
        (void)w; /* an unnamed lock still locks */
    }
    return 0;
}

void rc_store_sqlite_close(struct rc_store_engine *e)
{
    if (!e)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(e->st[i]);
    if (e->db)
        sqlite3_close(e->db); /* last connection: checkpoints the WAL */
    if (e->lock_fd >= 0)
        close(e->lock_fd);
    free(e);
}

int rc_store_sqlite_open(struct rc_store_engine **out, const struct rc_store_config *cfg,
                         struct rc_err *err)
{
    struct rc_store_engine *e = calloc(1, sizeof(*e));
    char mode[16];
    int rc, src;

    *out = NULL;
    if (!e) {
        rc_err_set(err, 500, "no_memory", "store: out of memory at start");
        return -ENOMEM;
    }
    e->lock_fd = -1;
    rc = make_dirs(cfg->data_dir, err);
    if (rc == 0)
        rc = lock_dir(e, cfg->data_dir, err);
    if (rc)
        goto fail;
    if (snprintf(e->path, sizeof(e->path), "%s/%s", cfg->data_dir, RC_STORE_SQLITE_FILE) >=
        (int)sizeof(e->path)) {
        rc_err_set(err, 500, "bad_config", "store: data_dir path is too long");
        rc = -ENAMETOOLONG;
        goto fail;
    }
    src = sqlite3_open_v2(e->path, &e->db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = open_fail(e, "opening the database", src, err);
        goto fail;
    }
    sqlite3_extended_result_codes(e->db, 1);
    sqlite3_busy_timeout(e->db, 5000); /* a backup may hold a lock briefly */
    bool mark = false;
    rc = check_owner(e, &mark, err);
    if (rc == 0 && (src = query_text(e, "PRAGMA journal_mode=WAL", mode, sizeof(mode))) != 0)
        rc = open_fail(e, "switching to WAL mode", src, err);
    if (rc == 0 && strcmp(mode, "wal") != 0) {
        rc_err_set(err, 500, "bad_config",
                   "store: %s cannot use WAL mode (got \"%s\"); put data_dir on a local "
                   "filesystem",
                   e->path, mode);
        rc = -ENOTSUP;
    }
    if (rc == 0)
        rc = exec(e,
                  cfg->synchronous == RC_STORE_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                           : "PRAGMA synchronous=FULL",
                  "setting synchronous", err);
    if (rc == 0)
        rc = exec(e, "PRAGMA foreign_keys=ON", "enabling foreign keys", err);
    if (rc == 0 && mark) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA application_id = %ld", (long)RC_STORE_SQLITE_APP_ID);
        rc = exec(e, sql, "marking the database as ringcast's", err);
    }
    if (rc == 0)
        rc = migrate(e, err);
    if (rc == 0 && rc_store_sqlite_prepare(e, err) < 0) {
        /* at the schema version we know, a statement that does not prepare means the
         * tables were changed by something else */
        rc_err_set(err, 500, "bad_schema",
                   "store: %s does not have the tables of schema version %d (%s); it was changed "
                   "outside ringcast: restore a backup",
                   e->path, RC_STORE_SQLITE_SCHEMA_VERSION, sqlite3_errmsg(e->db));
        rc = -EPROTO;
    }
    if (rc)
        goto fail;
    *out = e;
    return 0;
fail:
    rc_store_sqlite_close(e);
    return rc;
}

int rc_store_sqlite_describe(struct rc_store_engine *e, json_t *obj, struct rc_err *err)
{
    static const char *const sync_names[] = {"off", "normal", "full", "extra"};
    char sync[16], mode[16];
    long v;
    int src = query_text(e, "PRAGMA synchronous", sync, sizeof(sync));
    if (src == SQLITE_OK)
        src = query_text(e, "PRAGMA journal_mode", mode, sizeof(mode));
    if (src == SQLITE_OK)
        src = schema_version(e, &v);
    if (src != SQLITE_OK)
        return rc_store_sqlite_fail(e, "describing the database", src, err);
    long sv = strtol(sync, NULL, 10);
    json_object_set_new(obj, "engine", json_string("sqlite"));
    json_object_set_new(obj, "sqlite_version", json_string(sqlite3_libversion()));
    json_object_set_new(obj, "path", json_string(e->path));
    json_object_set_new(obj, "synchronous", json_string(sv >= 0 && sv <= 3 ? sync_names[sv] : "?"));
    json_object_set_new(obj, "journal_mode", json_string(mode));
    json_object_set_new(obj, "schema_version", json_integer(v));
    return 0;
}
