/* pg_test_server.h - a real PostgreSQL 15 for unit tests: initdb into its own
 * temporary directory, its own port on 127.0.0.1, trust authentication and no
 * fsync (a test server), stopped (fast shutdown, which ends open sessions at
 * once) and started again on the same port and directory. Header-only (static
 * inline) like redis_test_server.h; Debian's postgresql-15 must be installed
 * (scripts/deps.sh). As root, initdb and postgres run as the `postgres`
 * system user (initdb refuses root); the server gets SIGKILL if the test
 * dies (PR_SET_PDEATHSIG, set after the uid change, which clears it). */
#ifndef RC_PG_TEST_SERVER_H
#define RC_PG_TEST_SERVER_H

#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PTS_BIN "/usr/lib/postgresql/15/bin"

struct pg_test_server {
    pid_t pid;
    int port;
    char dir[64];  /* the temporary directory (socket, log) */
    char data[96]; /* dir/data: the cluster */
    uid_t uid;     /* who runs it (postgres when we are root) */
    gid_t gid;
    char url[128]; /* postgresql://postgres@127.0.0.1:<port>/postgres */
    bool fsync;    /* false (tests): fsync=off, full_page_writes=off */
};

static inline bool pts_available(void)
{
    return access(PTS_BIN "/initdb", X_OK) == 0;
}

/* In a child: become the server's user, die with the parent, exec argv. */
static inline void pts_exec(struct pg_test_server *p, char *const argv[], const char *log)
{
    if (geteuid() == 0 && (setgid(p->gid) != 0 || setgroups(0, NULL) != 0 || setuid(p->uid) != 0))
        _exit(126);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = log ? freopen(log, "a", stdout) : NULL;
    if (f)
        dup2(fileno(stdout), 2);
    execv(argv[0], argv);
    _exit(127);
}

/* A connection to the server's "postgres" database, or NULL. */
static inline PGconn *pts_connect(struct pg_test_server *p)
{
    PGconn *c = PQconnectdb(p->url);
    if (PQstatus(c) == CONNECTION_OK) {
        PQclear(PQexec(c, "SET client_min_messages = warning"));
        return c;
    }
    PQfinish(c);
    return NULL;
}

/* Run sql as the superuser; true if it succeeded. */
static inline bool pts_exec_sql(struct pg_test_server *p, const char *sql)
{
    PGconn *c = pts_connect(p);
    if (!c)
        return false;
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg_test_server: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

/* Start postgres on p->port and wait (10 s at most) until it accepts us. */
static inline bool pts_spawn(struct pg_test_server *p)
{
    char port[16], sock[80], log[96];
    snprintf(port, sizeof(port), "%d", p->port);
    snprintf(sock, sizeof(sock), "%s", p->dir);
    snprintf(log, sizeof(log), "%s/postgres.log", p->dir);
    snprintf(p->url, sizeof(p->url), "postgresql://postgres@127.0.0.1:%d/postgres", p->port);
    p->pid = fork();
    if (p->pid == 0) {
        char *argv[] = {PTS_BIN "/postgres",
                        "-D",
                        p->data,
                        "-p",
                        port,
                        "-k",
                        sock,
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        p->fsync ? "fsync=on" : "fsync=off",
                        "-c",
                        p->fsync ? "full_page_writes=on" : "full_page_writes=off",
                        "-c",
                        "max_connections=40",
                        NULL};
        pts_exec(p, argv, log);
    }
    if (p->pid < 0)
        return false;
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return false; /* port taken, or a bad data directory */
        }
        PGconn *c = pts_connect(p);
        if (c) {
            PQfinish(c);
            return true;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

/* initdb and start on a free port (tries a few); fsync as a real server
 * (benchmarks) or off (tests). 0 or -1. */
static inline int pts_start_fsync(struct pg_test_server *p, int salt, bool fsync)
{
    memset(p, 0, sizeof(*p));
    p->fsync = fsync;
    p->uid = geteuid();
    p->gid = getegid();
    snprintf(p->dir, sizeof(p->dir), "/tmp/rc-pg-unit-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    snprintf(p->data, sizeof(p->data), "%s/data", p->dir);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(p->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_test_server: no postgres user to run PostgreSQL as\n");
            return -1;
        }
        p->uid = pw->pw_uid;
        p->gid = pw->pw_gid;
    }
    char log[96];
    snprintf(log, sizeof(log), "%s/initdb.log", p->dir);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {PTS_BIN "/initdb", "-D",        p->data, "-A",   "trust", "-U",
                        "postgres",        "--no-sync", "-E",    "UTF8", NULL};
        pts_exec(p, argv, log);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "pg_test_server: initdb failed (see %s)\n", log);
        return -1;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        p->port = 20000 + (int)((getpid() * 13 + salt * 977 + attempt * 131) % 30000);
        if (pts_spawn(p))
            return 0;
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = 0;
        }
    }
    fprintf(stderr, "pg_test_server: could not start postgres (see %s/postgres.log)\n", p->dir);
    return -1;
}

static inline int pts_start(struct pg_test_server *p, int salt)
{
    return pts_start_fsync(p, salt, false);
}

/* Fast shutdown (SIGINT): sessions end at once; waits for the exit. */
static inline void pts_halt(struct pg_test_server *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGINT);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

/* Start again on the same port and directory. */
static inline bool pts_restart(struct pg_test_server *p)
{
    return pts_spawn(p);
}

static inline int pts_stop(struct pg_test_server *p)
{
    pts_halt(p);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
