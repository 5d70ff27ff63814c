/* cli.c - the ringcast command: dispatch on argv[1], each command's --help, the options
 * parser, and the settings client commands share (URL, API key, configuration).
 * Owner: the main thread; the CLI runs instead of the server and is single-threaded.
 * `ringcast`, `ringcast serve ...` and `ringcast --option ...` start the server and
 * `ringcast checkconfig ...` is the server's --check-config: main.c handles those; every
 * other command runs here (docs/OPERATIONS.md, "The ringcast command"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "ringcast/cli.h"

#define DEFAULT_TIMEOUT_MS 10000

#define CLIENT_HELP                                                                                \
    "  --url=URL        the server, http://HOST:PORT[/PREFIX] (default: RINGCAST_URL, else\n"      \
    "                   the configured listen_address and port)\n"                                 \
    "  --api-key=KEY    sent as X-API-Key (default: RINGCAST_API_KEY, else the first\n"            \
    "                   configured api_keys entry; none is needed from loopback while the\n"       \
    "                   server has no api_keys)\n"                                                 \
    "  --config=PATH    read the server's config file (else RINGCAST_CONFIG)\n"                    \
    "  --timeout=MS     connect and answer timeout in milliseconds (default 10000)\n"              \
    "  -h, --help       print this help\n"

#define EXIT_HELP                                                                                  \
    "Exit codes: 0 done, 1 server unreachable or failed (5xx), 2 bad arguments or\n"               \
    "configuration, 3 refused by the server (4xx).\n"

static const struct rc_cli_cmd commands[] = {
    {"publish",
     "usage: ringcast publish TOPIC [JSON] [--type=TYPE] [--id=KEY] [options]\n"
     "Publish an event on TOPIC; JSON is its data (default null), TYPE its type (default\n"
     "message), KEY an idempotency key. Prints the server's answer ({\"id\",\"topic\"}).\n"
     "\n" CLIENT_HELP "\n" EXIT_HELP,
     rc_cli_publish},
    {"subscribe",
     "usage: ringcast subscribe PATTERN [--filter=JSON] [--since=ID] [--token=JWT] [options]\n"
     "Subscribe over WebSocket and print each event as one JSON line on stdout until\n"
     "Ctrl-C (SIGINT or SIGTERM: close cleanly, exit 0). --filter narrows on the event\n"
     "data ({\"model_id\":\"m1\"}), --since resumes after an event id (an exact topic only),\n"
     "--token authenticates (or RINGCAST_TOKEN). \"subscribed\" and errors go to stderr.\n"
     "\n" CLIENT_HELP "\n" EXIT_HELP
     "A stream the server closes exits 1 (code and reason on stderr).\n",
     rc_cli_subscribe},
    {"stats",
     "usage: ringcast stats [--limit=N] [--user=USER | --connection=ID] [--top=K] [options]\n"
     "Print the server's stats as JSON (GET /api/realtime/stats; needs the admin scope).\n"
     "--limit lists at most N connections (default 100), --user only USER's, --connection\n"
     "only that one (16 hex digits); --top adds the K most subscribed patterns, counted\n"
     "over every connection (\"top_subscriptions\").\n"
     "\n" CLIENT_HELP "\n" EXIT_HELP,
     rc_cli_stats},
    {"disconnect",
     "usage: ringcast disconnect (--user=USER | --connection=ID) [--reason=TEXT] [--code=N]\n"
     "                           [options]\n"
     "Close every WebSocket and SSE connection of USER (on every node with broker=redis),\n"
     "or the one connection ID, with close code N (default 1000) and reason TEXT (at most\n"
     "123 bytes). Prints {\"closed\":N,...}: the connections closed on the node asked.\n"
     "\n" CLIENT_HELP "\n" EXIT_HELP,
     rc_cli_disconnect},
    {"gentoken",
     "usage: ringcast gentoken --sub=USER [--ttl=DURATION] [--claim=KEY=VALUE ...]\n"
     "                         [--topics=P1,P2] [--key=PRIVATE.pem] [--config=PATH]\n"
     "Print a JWT for USER. Signed HS256 with the configured jwt_secret, or with --key\n"
     "RS256 (RSA key) or ES256 (EC P-256 key). --ttl sets exp (default 1h; 0 = no exp);\n"
     "iss and aud are the configured jwt_issuer and jwt_audience. A claim VALUE that is\n"
     "JSON (a number, true, [..]) is kept as such, else it is a string.\n"
     "Exit codes: 0 done, 2 bad arguments, no key configured or a bad key file.\n",
     rc_cli_gentoken},
    {"checktoken",
     "usage: ringcast checktoken TOKEN [--config=PATH]\n"
     "Verify TOKEN (or - to read it from stdin) as the server would with its\n"
     "configuration (jwt_secret, jwt_public_key_file, jwt_issuer, jwt_audience, jwt_leeway)\n"
     "and print its claims as JSON, or the reason it is refused.\n"
     "Exit codes: 0 valid, 2 bad arguments or configuration, 3 refused (bad signature,\n"
     "expired, wrong issuer, ...).\n",
     rc_cli_checktoken},
    {"genconfig",
     "usage: ringcast genconfig\n"
     "Print a config file with every key, its default and what it does (commented).\n"
     "Exit codes: 0 done, 2 bad arguments.\n",
     rc_cli_genconfig},
};

void rc_cli_usage_commands(FILE *f)
{
    fputs("\ncommands (ringcast COMMAND --help for each):\n"
          "  serve [--KEY=VALUE ...]   run the server (the default without a command)\n"
          "  checkconfig [...]         check the configuration and print it (= --check-config)\n"
          "  publish TOPIC [JSON]      publish an event\n"
          "  subscribe PATTERN         print events as JSON lines until Ctrl-C\n"
          "  stats                     print the server's stats\n"
          "  disconnect --user=USER    close a user's (or one) connections\n"
          "  gentoken --sub=USER       print a signed JWT\n"
          "  checktoken TOKEN          verify a JWT with the configuration\n"
          "  genconfig                 print a config file with every key and its default\n",
          f);
}

int rc_cli_error(const struct rc_cli_cmd *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ringcast %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

struct rc_cli_opt *rc_cli_opt(struct rc_cli_opt *opts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int usage_error(const struct rc_cli_cmd *cmd, const char *what, const char *arg)
{
    fprintf(stderr, "ringcast %s: %s%s; see ringcast %s --help\n", cmd->name, what, arg, cmd->name);
    return -EINVAL;
}

/* One "--name[=value]" argument at argv[*i]. */
static int take_option(const struct rc_cli_cmd *cmd, int argc, char **argv, int *i,
                       struct rc_cli_opt *opts, size_t nopts)
{
    const char *a = argv[*i] + 2, *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    struct rc_cli_opt *o = NULL;
    for (size_t k = 0; k < nopts && !o; k++)
        if (strlen(opts[k].name) == n && strncmp(opts[k].name, a, n) == 0)
            o = &opts[k];
    if (!o)
        return usage_error(cmd, "unknown option ", argv[*i]);
    const char *v = "";
    if (o->has_arg && eq) {
        v = eq + 1;
    } else if (o->has_arg) {
        if (*i + 1 >= argc)
            return usage_error(cmd, "a value is missing after ", argv[*i]);
        v = argv[++*i];
    } else if (eq) {
        return usage_error(cmd, "this option takes no value: ", argv[*i]);
    }
    if (o->repeat) {
        if (o->nvals == RC_ARRAY_LEN(o->vals))
            return usage_error(cmd, "given too many times: ", argv[*i]);
        o->vals[o->nvals++] = v;
    } else if (o->value) {
        return usage_error(cmd, "given twice: --", o->name);
    }
    o->value = v;
    return 0;
}

int rc_cli_parse(const struct rc_cli_cmd *cmd, int argc, char **argv, struct rc_cli_opt *opts,
                 size_t nopts, const char **args, size_t min_args, size_t max_args, size_t *nargs)
{
    bool only_args = false;
    *nargs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(cmd->usage, stdout);
            return 1;
        }
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true;
        } else if (!only_args && a[0] == '-' && a[1] == '-') {
            if (take_option(cmd, argc, argv, &i, opts, nopts) < 0)
                return -EINVAL;
        } else if (!only_args && a[0] == '-' && a[1] != '\0') {
            return usage_error(cmd, "unknown option ", a);
        } else if (*nargs == max_args) {
            return usage_error(cmd, "unexpected argument ", a);
        } else {
            args[(*nargs)++] = a;
        }
    }
    if (*nargs < min_args)
        return usage_error(cmd, "missing argument", min_args > 1 ? "s" : "");
    return 0;
}

/* ---- configuration ------------------------------------------------------------------------ */

static bool cli_variable(const char *e)
{
    return strncmp(e, "RINGCAST_API_KEY=", 17) == 0 || strncmp(e, "RINGCAST_URL=", 13) == 0 ||
           strncmp(e, "RINGCAST_TOKEN=", 15) == 0;
}

int rc_cli_load_config(const struct rc_cli_cmd *cmd, struct rc_config *cfg, const char *config_path,
                       char **envp)
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env) {
        rc_config_defaults(cfg);
        return rc_cli_error(cmd, RC_CLI_FAIL, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!cli_variable(envp[i]))
            env[k++] = envp[i];
    char *argv[3] = {"ringcast", NULL, NULL};
    char flag[RC_CONFIG_PATH_MAX + 16];
    int argc = 1;
    if (config_path) {
        snprintf(flag, sizeof(flag), "--config=%s", config_path);
        argv[argc++] = flag;
    }
    struct rc_err err = {0};
    int rc = rc_config_load(cfg, argc, argv, env, &err);
    free(env);
    if (rc < 0)
        return rc_cli_error(cmd, RC_CLI_USAGE, "%s", err.msg);
    return 0;
}

static int parse_url(const struct rc_cli_cmd *cmd, struct rc_cli_client *cl, const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "ws://", 5) == 0) {
        p += 5;
    } else {
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--url %s: use http://HOST:PORT (https is not spoken by the CLI: "
                            "point it at a node directly, not at a TLS proxy)",
                            url);
    }
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return rc_cli_error(cmd, RC_CLI_USAGE, "--url %s: an IPv6 address needs its ']'", url);
        p = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        p = host_end;
    }
    size_t hn = (size_t)(host_end - host);
    if (hn == 0 || hn >= sizeof(cl->host))
        return rc_cli_error(cmd, RC_CLI_USAGE, "--url %s: no host name", url);
    memcpy(cl->host, host, hn);
    cl->host[hn] = '\0';
    snprintf(cl->port, sizeof(cl->port), "80");
    if (*p == ':') {
        size_t pn = strspn(p + 1, "0123456789");
        if (pn == 0 || pn > 5 || (p[1 + pn] != '\0' && p[1 + pn] != '/') || atoi(p + 1) > 65535)
            return rc_cli_error(cmd, RC_CLI_USAGE, "--url %s: the port must be 1..65535", url);
        memcpy(cl->port, p + 1, pn);
        cl->port[pn] = '\0';
        p += 1 + pn;
    }
    size_t bn = strlen(p);
    while (bn > 0 && p[bn - 1] == '/')
        bn--;
    if (bn >= sizeof(cl->base))
        return rc_cli_error(cmd, RC_CLI_USAGE, "--url %s: the path is too long", url);
    memcpy(cl->base, p, bn);
    cl->base[bn] = '\0';
    snprintf(cl->hostport, sizeof(cl->hostport), "%s%s%s:%s", strchr(cl->host, ':') ? "[" : "",
             cl->host, strchr(cl->host, ':') ? "]" : "", cl->port);
    return 0;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

int rc_cli_client_init(const struct rc_cli_cmd *cmd, struct rc_cli_client *cl,
                       struct rc_cli_opt *opts, size_t nopts, char **envp)
{
    memset(cl, 0, sizeof(*cl));
    cl->timeout_ms = DEFAULT_TIMEOUT_MS;
    const struct rc_cli_opt *t = rc_cli_opt(opts, nopts, "timeout");
    if (t && t->value) {
        char *end;
        long ms = strtol(t->value, &end, 10);
        if (*end || ms < 1 || ms > 3600000) {
            rc_config_defaults(&cl->cfg);
            return rc_cli_error(cmd, RC_CLI_USAGE, "--timeout=%s: give milliseconds, 1..3600000",
                                t->value);
        }
        cl->timeout_ms = (int)ms;
    }
    int rc = rc_cli_load_config(cmd, &cl->cfg, rc_cli_opt(opts, nopts, "config")->value, envp);
    if (rc)
        return rc;
    const char *url = rc_cli_opt(opts, nopts, "url")->value;
    char def[400];
    if (!url)
        url = env_get(envp, "RINGCAST_URL");
    if (!url) {
        const char *a = cl->cfg.listen_address;
        if (strcmp(a, "0.0.0.0") == 0)
            a = "127.0.0.1";
        else if (strcmp(a, "::") == 0)
            a = "::1";
        snprintf(def, sizeof(def), "http://%s%s%s:%u", strchr(a, ':') ? "[" : "", a,
                 strchr(a, ':') ? "]" : "", cl->cfg.port ? cl->cfg.port : 8080);
        url = def;
    }
    if ((rc = parse_url(cmd, cl, url)))
        return rc;
    const char *key = rc_cli_opt(opts, nopts, "api-key")->value;
    if (!key)
        key = env_get(envp, "RINGCAST_API_KEY");
    if (key) {
        snprintf(cl->api_key, sizeof(cl->api_key), "%s", key);
    } else if (cl->cfg.api_keys.n > 0) {
        /* KEY or KEY:scope+scope: the key is what precedes the scopes */
        const char *k = cl->cfg.api_keys.items[0], *colon = strchr(k, ':');
        size_t kn = colon ? (size_t)(colon - k) : strlen(k);
        snprintf(cl->api_key, sizeof(cl->api_key), "%.*s", (int)kn, k);
    }
    if (strpbrk(cl->api_key, "\r\n"))
        return rc_cli_error(cmd, RC_CLI_USAGE, "the API key holds a line break");
    return 0;
}

void rc_cli_client_fini(struct rc_cli_client *cl)
{
    rc_config_fini(&cl->cfg);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

bool rc_cli_is_command(const char *arg)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(commands); i++)
        if (strcmp(arg, commands[i].name) == 0)
            return true;
    return false;
}

int rc_cli_run(int argc, char **argv, char **envp)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(&commands[i], argc - 1, argv + 1, envp);
    fprintf(stderr, "ringcast: unknown command \"%s\"; see ringcast --help\n", argv[1]);
    return RC_CLI_USAGE;
}
