/* redis_test_server.h - a real redis-server for unit tests: started on its
 * own port and directory (no persistence), stopped, killed and restarted on
 * the same port. Header-only (static functions) so every test that needs one
 * includes it; Debian's redis-server must be installed (scripts/deps.sh). */
#ifndef RC_REDIS_TEST_SERVER_H
#define RC_REDIS_TEST_SERVER_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct redis_test_server {
    pid_t pid;
    int port;
    char dir[64];
    char password[32]; /* "" = none */
};

/* A PING-answering connection, waiting up to 5 s; NULL if the server died. */
static inline redisContext *rts_connect(struct redis_test_server *r)
{
    for (int i = 0; i < 500; i++) {
        redisContext *c = redisConnect("127.0.0.1", r->port);
        if (c && !c->err) {
            redisReply *rep =
                r->password[0] ? redisCommand(c, "AUTH %s", r->password) : redisCommand(c, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        int st;
        if (r->pid > 0 && waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            return NULL;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return NULL;
}

static inline bool rts_spawn(struct redis_test_server *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    r->pid = fork();
    if (r->pid == 0) {
        /* dies with the test, even when a failed assertion skips the stop */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (r->password[0])
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", r->dir, "--loglevel", "warning",
                   "--requirepass", r->password, (char *)NULL);
        else
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", r->dir, "--loglevel", "warning",
                   (char *)NULL);
        _exit(127);
    }
    redisContext *c = rts_connect(r);
    if (!c)
        return false;
    redisFree(c);
    return true;
}

/* Start on a free port (tries a few). 0 or -1. */
static inline int rts_start(struct redis_test_server *r, const char *password, int salt)
{
    snprintf(r->password, sizeof(r->password), "%s", password ? password : "");
    snprintf(r->dir, sizeof(r->dir), "/tmp/rc-redis-unit-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    for (int attempt = 0; attempt < 20; attempt++) {
        r->port = 20000 + (int)((getpid() * 7 + salt * 977 + attempt * 131) % 30000);
        if (rts_spawn(r))
            return 0;
        if (r->pid > 0) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
    }
    fprintf(stderr, "could not start redis-server (is Debian's redis-server installed?)\n");
    return -1;
}

static inline void rts_kill(struct redis_test_server *r, int sig)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
        if (sig == SIGKILL || sig == SIGTERM) {
            waitpid(r->pid, NULL, 0);
            r->pid = 0;
        }
    }
}

/* Start again on the same port and directory. */
static inline bool rts_restart(struct redis_test_server *r)
{
    return rts_spawn(r);
}

static inline int rts_stop(struct redis_test_server *r)
{
    rts_kill(r, SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
