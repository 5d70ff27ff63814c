/* cli_cmds.c - the CLI's request/answer commands: publish, stats, disconnect (one HTTP
 * request each, the answer's JSON printed on stdout) and genconfig (no server involved).
 * Owner: the main thread. Contracts and exit codes: cli_internal.h and each command's
 * --help (cli.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_internal.h"

/* Send body (taken) as method path; print the answer's body; the exit code. */
static int request(const struct rc_cli_cmd *cmd, struct rc_cli_client *cl, const char *method,
                   const char *path, json_t *body)
{
    char *txt = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (body && !txt)
        return rc_cli_error(cmd, RC_CLI_FAIL, "out of memory");
    struct rc_cli_response r;
    int rc = rc_cli_http(cmd, cl, method, path, txt, &r);
    free(txt);
    if (rc)
        return rc;
    rc = rc_cli_http_result(cmd, &r);
    if (rc == RC_CLI_OK) {
        fwrite(r.body, 1, r.body_len, stdout);
        if (r.body_len == 0 || r.body[r.body_len - 1] != '\n')
            fputc('\n', stdout);
    }
    rc_cli_response_fini(&r);
    return rc;
}

int rc_cli_publish(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {
        RC_CLI_CLIENT_OPTS, {.name = "type", .has_arg = true}, {.name = "id", .has_arg = true}};
    const char *args[2];
    size_t nargs;
    int rc = rc_cli_parse(cmd, argc, argv, opts, RC_ARRAY_LEN(opts), args, 1, 2, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    json_t *data = json_null();
    if (nargs == 2) {
        json_error_t jerr;
        json_decref(data);
        data = json_loads(args[1], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!data)
            return rc_cli_error(cmd, RC_CLI_USAGE,
                                "the event data is not JSON: %s (column %d); a string needs its "
                                "quotes: '\"text\"'",
                                jerr.text, jerr.column);
    }
    struct rc_cli_client cl;
    if ((rc = rc_cli_client_init(cmd, &cl, opts, RC_ARRAY_LEN(opts), envp))) {
        json_decref(data);
        rc_cli_client_fini(&cl);
        return rc;
    }
    json_t *body = json_pack("{s:s, s:o}", "topic", args[0], "data", data);
    const char *type = rc_cli_opt(opts, RC_ARRAY_LEN(opts), "type")->value;
    const char *id = rc_cli_opt(opts, RC_ARRAY_LEN(opts), "id")->value;
    if (body && type)
        json_object_set_new(body, "type", json_string(type));
    if (body && id)
        json_object_set_new(body, "id", json_string(id));
    rc = body ? request(cmd, &cl, "POST", "/api/realtime/publish", body)
              : rc_cli_error(cmd, RC_CLI_USAGE, "the topic or type is not valid UTF-8");
    rc_cli_client_fini(&cl);
    return rc;
}

/* Append "&key=" and v percent-encoded (RFC 3986 unreserved bytes kept) to path. false when
 * it does not fit. */
static bool query_append(char *path, size_t cap, const char *key, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path);
    int w = snprintf(path + n, cap - n, "%c%s=", strchr(path, '?') ? '&' : '?', key);
    if (w < 0 || (size_t)w >= cap - n)
        return false;
    n += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (n + 4 > cap)
            return false;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            path[n++] = (char)*p;
        } else {
            path[n++] = '%';
            path[n++] = hex[*p >> 4];
            path[n++] = hex[*p & 15];
        }
    }
    path[n] = '\0';
    return true;
}

/* A decimal option of at most 6 digits, or NULL. */
static bool decimal(const char *v)
{
    return *v && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 6;
}

int rc_cli_stats(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {RC_CLI_CLIENT_OPTS,
                                {.name = "limit", .has_arg = true},
                                {.name = "user", .has_arg = true},
                                {.name = "connection", .has_arg = true},
                                {.name = "top", .has_arg = true}};
    size_t n = RC_ARRAY_LEN(opts), nargs;
    int rc = rc_cli_parse(cmd, argc, argv, opts, n, NULL, 0, 0, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    const char *limit = rc_cli_opt(opts, n, "limit")->value;
    const char *top = rc_cli_opt(opts, n, "top")->value;
    const char *user = rc_cli_opt(opts, n, "user")->value;
    const char *conn = rc_cli_opt(opts, n, "connection")->value;
    char path[512] = "/api/realtime/stats";
    if (limit && !decimal(limit))
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--limit=%s: give a number, 0..10000; see ringcast stats --help",
                            limit);
    if (top && !decimal(top))
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--top=%s: give a number, 0..1000; see ringcast stats --help", top);
    if ((user && (!*user || strlen(user) > 128)) || (conn && strlen(conn) != 16))
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--user takes a user id (1..128 bytes), --connection a connection id "
                            "(16 hex digits); see ringcast stats --help");
    if ((limit && !query_append(path, sizeof(path), "limit", limit)) ||
        (top && !query_append(path, sizeof(path), "top", top)) ||
        (user && !query_append(path, sizeof(path), "user_id", user)) ||
        (conn && !query_append(path, sizeof(path), "connection_id", conn)))
        return rc_cli_error(cmd, RC_CLI_USAGE, "the options do not fit in one request");
    struct rc_cli_client cl;
    if (!(rc = rc_cli_client_init(cmd, &cl, opts, n, envp)))
        rc = request(cmd, &cl, "GET", path, NULL);
    rc_cli_client_fini(&cl);
    return rc;
}

int rc_cli_disconnect(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {RC_CLI_CLIENT_OPTS,
                                {.name = "user", .has_arg = true},
                                {.name = "connection", .has_arg = true},
                                {.name = "reason", .has_arg = true},
                                {.name = "code", .has_arg = true}};
    size_t n = RC_ARRAY_LEN(opts), nargs;
    int rc = rc_cli_parse(cmd, argc, argv, opts, n, NULL, 0, 0, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    const char *user = rc_cli_opt(opts, n, "user")->value;
    const char *conn = rc_cli_opt(opts, n, "connection")->value;
    const char *reason = rc_cli_opt(opts, n, "reason")->value;
    const char *code = rc_cli_opt(opts, n, "code")->value;
    if (!user == !conn)
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "give --user=USER or --connection=ID (one of them); see ringcast "
                            "disconnect --help");
    char *end = NULL;
    long c = code ? strtol(code, &end, 10) : 0;
    if (code && (*code == '\0' || *end || c < 1000 || c > 4999))
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--code=%s: give a WebSocket close code, 1000-1003, 1007-1011 or "
                            "3000-4999",
                            code);
    json_t *body = json_object();
    json_object_set_new(body, user ? "user_id" : "connection_id", json_string(user ? user : conn));
    if (reason)
        json_object_set_new(body, "reason", json_string(reason));
    if (code)
        json_object_set_new(body, "code", json_integer(c));
    struct rc_cli_client cl;
    if (!(rc = rc_cli_client_init(cmd, &cl, opts, n, envp)))
        rc = request(cmd, &cl, "POST", "/api/realtime/disconnect", body);
    else
        json_decref(body);
    rc_cli_client_fini(&cl);
    return rc;
}

int rc_cli_genconfig(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    (void)envp;
    size_t nargs;
    int rc = rc_cli_parse(cmd, argc, argv, NULL, 0, NULL, 0, 0, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    rc_config_template(stdout);
    return fflush(stdout) == 0
               ? RC_CLI_OK
               : rc_cli_error(cmd, RC_CLI_FAIL, "cannot write: %s", strerror(errno));
}
