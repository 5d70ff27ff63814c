/* main.c - start-up, signals and shutdown.
 *
 * The main thread owns the configuration (read-only once shards start), the
 * server object, and signal handling: all signals are blocked in every thread
 * and the main thread waits for them with sigwait():
 *   SIGTERM, SIGINT  drain: stop accepting, finish in-flight requests, close
 *                    connections, exit 0 within drain_timeout
 *   SIGHUP           reopen the log file
 * Exit codes: 0 clean exit (also after a drain), 1 runtime failure (cannot
 * listen, io_uring missing), 2 bad configuration or command line. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rc_build.h"
#include "ringcast/api.h"
#include "ringcast/api_store.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/cli.h"
#include "ringcast/config.h"
#include "ringcast/evbuf.h"
#include "ringcast/conn_limit.h"
#include "ringcast/http.h"
#include "ringcast/log.h"
#include "ringcast/server.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/webhook.h"

#if RC_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

#define EXIT_CONFIG 2

extern char **environ;

/* What the lower layers call up through (never by name): the shard loop runs
 * the broker's per-shard part, a new connection speaks HTTP, and the sessions
 * hand requests to the router and authenticated clients to the store glue. */
static void shard_fini(struct rc_shard *s)
{
    rc_broker_fini(s);
    rc_conn_limit_fini(s);
}

static const struct rc_shard_hooks shard_hooks = {
    .init = rc_broker_init,
    .fini = shard_fini,
    .tick = rc_broker_tick,
    .next_tick_ms = rc_broker_next_tick_ms,
};

static const struct rc_session_hooks session_hooks = {
    .route = rc_api_route,
    .is_stream = rc_api_is_stream,
    .after_auth = rc_api_store_conn_authed,
    .greet_late = rc_api_store_greet_late,
    .greet_wait_ms = RC_API_STORE_GREET_WAIT_MS,
};

/* File descriptors ringcast needs besides client connections: per shard a
 * listener, an eventfd and an io_uring; for the process stdio, the log, the
 * store (database, WAL, shared memory, lock) and some slack. */
#define FD_RESERVE_PER_SHARD 3u
#define FD_RESERVE_PROCESS 64u

/* Each connection holds one descriptor: raise the soft RLIMIT_NOFILE to the
 * hard limit (allowed without privileges), and warn when max_connections
 * cannot fit in what is left after the reserve. */
static void raise_fd_limit(const struct rc_config *cfg, unsigned nshards)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rc_log(RC_LOG_WARN, "fd_limit", "soft=%llu hard=%llu error=\"%s\"",
                   (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = was;
        }
    }
    rlim_t reserve = FD_RESERVE_PROCESS + (rlim_t)FD_RESERVE_PER_SHARD * nshards;
    rlim_t room = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0;
    if (rl.rlim_cur != RLIM_INFINITY && cfg->max_connections > room)
        rc_log(RC_LOG_WARN, "fd_limit",
               "max_connections=%u open_file_limit=%llu connections_possible=%llu "
               "msg=\"the open-file limit allows about %llu connections, fewer than "
               "max_connections: past it accepting pauses (accept_paused); raise the hard "
               "limit (ulimit -Hn, systemd LimitNOFILE=) or lower max_connections\"",
               cfg->max_connections, (unsigned long long)rl.rlim_cur, (unsigned long long)room,
               (unsigned long long)room);
    else
        rc_log(RC_LOG_DEBUG, "fd_limit", "open_file_limit=%llu was=%llu",
               (unsigned long long)rl.rlim_cur, (unsigned long long)was);
}

/* The command line: `ringcast [serve] [--KEY=VALUE ...]` runs the server, `ringcast
 * checkconfig ...` is `ringcast --check-config ...`, and any other command is the CLI's
 * (src/cli/). A command is argv[1]; an option first means serve. */
static int run_command(int *argc, char ***argv, bool *check)
{
    if (*argc < 2 || (*argv)[1][0] == '-')
        return -1;
    if (strcmp((*argv)[1], "serve") == 0 || strcmp((*argv)[1], "checkconfig") == 0) {
        *check = strcmp((*argv)[1], "checkconfig") == 0;
        (*argv)[1] = (*argv)[0];
        (*argv)++;
        (*argc)--;
        return -1;
    }
    return rc_cli_run(*argc, *argv, environ);
}

/* The node's name in webhook batches: the cluster's, else node_name, else hostname:port. */
static const char *webhook_node(const struct rc_server *srv, char *buf, size_t n)
{
    const char *nn = rc_broker_node_name(srv);
    if (nn[0])
        return nn;
    if (srv->cfg->node_name[0])
        return srv->cfg->node_name;
    char host[RC_CONFIG_CLAIM_MAX - 8] = "localhost";
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, n, "%s:%u", host, rc_server_port(srv));
    return buf;
}

int main(int argc, char **argv)
{
    struct rc_config cfg;
    struct rc_err err = {0};
    struct rc_server srv;
    bool check = false;

    int cli_rc = run_command(&argc, &argv, &check);
    if (cli_rc >= 0)
        return cli_rc;
    if (rc_config_load(&cfg, argc, argv, environ, &err) < 0) {
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_config_fini(&cfg);
        return EXIT_CONFIG;
    }
    cfg.check_config = cfg.check_config || check;
    if (cfg.help) {
        rc_config_usage(stdout);
        rc_cli_usage_commands(stdout);
        rc_config_fini(&cfg);
        return 0;
    }
    if (cfg.version) {
        printf("ringcast %s\n", RC_VERSION);
        rc_config_fini(&cfg);
        return 0;
    }
    /* rules, PEM files and API key scopes are parsed here (also for --check-config) */
    struct rc_auth *auth = rc_auth_new(&cfg, &err);
    if (!auth) {
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_config_fini(&cfg);
        return EXIT_CONFIG;
    }
    if (cfg.check_config) {
        if (rc_api_store_check(&cfg, &err) < 0) {
            fprintf(stderr, "ringcast: %s\n", err.msg);
            rc_auth_free(auth);
            rc_config_fini(&cfg);
            return EXIT_CONFIG;
        }
        rc_config_print(&cfg, stdout);
        rc_auth_free(auth);
        rc_config_fini(&cfg);
        return 0;
    }
    if (rc_log_setup(cfg.log_level, cfg.log_format, cfg.log_file, &err) < 0) {
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_auth_free(auth);
        rc_config_fini(&cfg);
        return EXIT_CONFIG;
    }

    /* permessage-deflate: events get their compressed image from the first one on */
    rc_evbuf_set_compress_min(cfg.ws_compression ? cfg.ws_compression_min : 0);

    /* the durable store: a bad data_dir is a configuration error */
    struct rc_store *store = NULL;
    if (rc_api_store_open(&store, &cfg, &srv, &err) < 0) {
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_auth_free(auth);
        rc_config_fini(&cfg);
        return EXIT_CONFIG;
    }

    /* every thread inherits this mask; only sigwait below sees the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc_session_set_hooks(&session_hooks);
    char node[RC_CONFIG_CLAIM_MAX + 8];
    int init_rc = rc_server_init(&srv, &cfg, &err);
    srv.auth = auth;
    srv.store = store;
    srv.conn_ops = &rc_http_conn_ops;
    srv.shard_hooks = &shard_hooks;
    /* a listener that cannot be set up exits 1; a redis_url that does not
     * parse is a configuration error (2) */
    int fail =
        init_rc < 0                                                    ? 1
        : rc_broker_cluster_open(&srv, rc_server_port(&srv), &err) < 0 ? EXIT_CONFIG
        : rc_api_store_cluster(&srv, &err) < 0                         ? 1
        : rc_api_admin_cluster(&srv, &err) < 0                         ? 1
        : rc_webhook_new(&srv.webhook, &cfg, webhook_node(&srv, node, sizeof(node)), &err) < 0
            ? EXIT_CONFIG
            : 0;
    if (fail) {
        if (fail == 1)
            rc_log(RC_LOG_ERROR, "start_failed", "reason=\"%s\"", err.msg);
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_api_store_close(NULL);
        rc_server_join(&srv);
        rc_broker_cluster_close(&srv);
        rc_api_store_stop(store);
        rc_webhook_free(srv.webhook);
        rc_auth_free(auth);
        rc_config_fini(&cfg);
        return fail;
    }
    raise_fd_limit(&cfg, srv.nshards);
    if ((srv.webhook && rc_webhook_start(srv.webhook, &err) < 0) ||
        rc_server_start(&srv, &err) < 0 || rc_broker_cluster_start(&srv, &err) < 0 ||
        rc_api_store_start(store, &err) < 0) {
        rc_log(RC_LOG_ERROR, "start_failed", "reason=\"%s\"", err.msg);
        fprintf(stderr, "ringcast: %s\n", err.msg);
        rc_server_drain(&srv);
        rc_api_store_close(NULL);
        rc_broker_cluster_halt(&srv);
        rc_server_join(&srv);
        rc_broker_cluster_close(&srv);
        rc_api_store_stop(store);
        rc_webhook_stop(srv.webhook);
        rc_webhook_free(srv.webhook);
        rc_auth_free(auth);
        rc_config_fini(&cfg);
        return 1;
    }
    if (rc_auth_api_key_count(auth) == 0)
        rc_log(RC_LOG_WARN, "api_open",
               "msg=\"no api_keys configured: the HTTP API accepts loopback clients only, and "
               "trusts every one of them as a backend (publish, notify, admin), including a "
               "reverse proxy on this host that forwards internet clients; configure api_keys "
               "if one runs here\"");
    rc_log(RC_LOG_INFO, "listening", "address=%s port=%u shards=%u url=http://%s:%u/ version=%s",
           cfg.listen_address, rc_server_port(&srv), srv.nshards,
           strcmp(cfg.listen_address, "0.0.0.0") == 0 ? "127.0.0.1" : cfg.listen_address,
           rc_server_port(&srv), RC_VERSION);
    if (cfg.metrics_address[0])
        rc_log(RC_LOG_INFO, "listening_metrics", "address=%s port=%u", cfg.metrics_address,
               rc_server_metrics_port(&srv));

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            int rc = rc_log_reopen();
            rc_log(rc < 0 ? RC_LOG_WARN : RC_LOG_INFO, "log_reopened", "result=%d", rc);
            continue;
        }
        rc_log(RC_LOG_INFO, "draining", "signal=%s drain_timeout_ms=%llu",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)cfg.drain_timeout);
        break;
    }
    rc_server_drain(&srv);
    rc_api_store_close(store); /* shards stop submitting; answers in flight reach them */
    rc_server_wait_drained(&srv);
    rc_broker_cluster_halt(&srv); /* the bridge posts to the shards no more */
    rc_server_join(&srv);
    rc_broker_cluster_close(&srv);
    rc_api_store_stop(store);
    rc_webhook_stop(srv.webhook); /* the shards emit no more: deliver what is left */
    rc_webhook_free(srv.webhook);
    rc_log(RC_LOG_INFO, "stopped", "exit_code=0");
    rc_auth_free(auth);
    rc_config_fini(&cfg);
    return 0;
}
