/* cli_internal.h - private to src/cli: what the command files share (the options parser,
 * the client's settings, the blocking HTTP/WebSocket transport).
 * Owner: the main thread; the CLI is single-threaded and runs instead of the server.
 * Errors: every failure prints one line "ringcast CMD: what went wrong; what to do" on
 *   stderr and returns one of the exit codes below (docs/OPERATIONS.md, "The ringcast
 *   command").
 * Lifetimes: strings in struct rc_cli_opts point into argv or the environment; a
 *   struct rc_cli_client owns its loaded config (rc_cli_client_fini). */
#ifndef RINGCAST_CLI_INTERNAL_H
#define RINGCAST_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/common.h"
#include "ringcast/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of every CLI command. */
#define RC_CLI_OK 0      /* done */
#define RC_CLI_FAIL 1    /* the server could not be reached, failed (5xx) or closed the stream */
#define RC_CLI_USAGE 2   /* bad arguments or a bad configuration */
#define RC_CLI_REFUSED 3 /* the server refused the request (4xx), or checktoken refused a token */

/* ---- options ---------------------------------------------------------------------------- */

#define RC_CLI_MAX_OPTS 12
#define RC_CLI_MAX_ARGS 4

struct rc_cli_opt {
    const char *name; /* without the dashes: "url", "api-key" */
    bool has_arg;
    bool repeat;          /* may be given more than once (values collected) */
    const char *value;    /* the last value given (NULL = absent; "" for a flag) */
    const char *vals[16]; /* repeat: every value */
    size_t nvals;
};

struct rc_cli_cmd {
    const char *name;
    const char *usage; /* the --help text */
    int (*run)(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
};

/* Parse argv[0..argc) (argv[0] = the command name) against opts[0..nopts): "--name=value",
 * "--name value", "--flag"; "--" ends options. Positional arguments go to args (at most
 * max_args, at least min_args). On a bad argument prints a usage error and returns -EINVAL;
 * with --help prints cmd->usage and returns 1; else 0. */
int rc_cli_parse(const struct rc_cli_cmd *cmd, int argc, char **argv, struct rc_cli_opt *opts,
                 size_t nopts, const char **args, size_t min_args, size_t max_args, size_t *nargs);

struct rc_cli_opt *rc_cli_opt(struct rc_cli_opt *opts, size_t n, const char *name);

/* Print "ringcast CMD: MSG" on stderr; returns code. */
RC_PRINTF(3, 4)
int rc_cli_error(const struct rc_cli_cmd *cmd, int code, const char *fmt, ...);

/* ---- the configuration and the client's settings --------------------------------------- */

/* Load the configuration as the server would (defaults, --config PATH or RINGCAST_CONFIG,
 * RINGCAST_* variables), minus the CLI's own variables (RINGCAST_API_KEY, RINGCAST_URL).
 * config_path may be NULL. 0 or RC_CLI_USAGE after printing why; fini in both cases. */
int rc_cli_load_config(const struct rc_cli_cmd *cmd, struct rc_config *cfg, const char *config_path,
                       char **envp);

struct rc_cli_client {
    struct rc_config cfg;
    char host[256]; /* as written in the URL, without brackets */
    char port[8];
    char base[256];     /* path prefix of the URL, without a trailing '/' ("" = none) */
    char hostport[300]; /* for the Host header */
    char api_key[512];  /* "" = none */
    int timeout_ms;
};

/* The settings of a client command: --url (else RINGCAST_URL, else the configured
 * listener), --api-key (else RINGCAST_API_KEY, else the first configured api_keys item),
 * --config, --timeout. opts must hold those four names. 0 or RC_CLI_USAGE. */
int rc_cli_client_init(const struct rc_cli_cmd *cmd, struct rc_cli_client *cl,
                       struct rc_cli_opt *opts, size_t nopts, char **envp);
void rc_cli_client_fini(struct rc_cli_client *cl);

/* The options every client command takes (a macro so each command's table can list them). */
#define RC_CLI_CLIENT_OPTS                                                                         \
    {.name = "url", .has_arg = true}, {.name = "api-key", .has_arg = true},                        \
        {.name = "config", .has_arg = true},                                                       \
    {                                                                                              \
        .name = "timeout", .has_arg = true                                                         \
    }

/* ---- transport (cli_net.c) -------------------------------------------------------------- */

/* A TCP connection to cl's host within cl->timeout_ms; the socket, or -1 after printing
 * an error naming the address and what to check. */
int rc_cli_connect(const struct rc_cli_cmd *cmd, const struct rc_cli_client *cl);

/* Write all of buf; 0 or -errno. */
int rc_cli_write_all(int fd, const void *buf, size_t n);

struct rc_cli_response {
    int status;
    char *raw;  /* the whole response (heap) */
    char *body; /* into raw */
    size_t body_len;
};

/* One HTTP request (Connection: close) with the API key and an optional JSON body; the
 * response in *out. 0, or RC_CLI_FAIL after printing why (unreachable, timeout, not HTTP). */
int rc_cli_http(const struct rc_cli_cmd *cmd, const struct rc_cli_client *cl, const char *method,
                const char *path, const char *body, struct rc_cli_response *out);
void rc_cli_response_fini(struct rc_cli_response *r);

/* Exit code for a response: 2xx -> OK, 4xx -> REFUSED, else FAIL; prints the server's
 * error message for a non-2xx answer. */
int rc_cli_http_result(const struct rc_cli_cmd *cmd, const struct rc_cli_response *r);

/* ---- commands ---------------------------------------------------------------------------- */

int rc_cli_publish(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_stats(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_disconnect(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_subscribe(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_gentoken(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_checktoken(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);
int rc_cli_genconfig(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CLI_INTERNAL_H */
