/* cli_token.c - gentoken (sign a JWT with the configured secret or a private key file) and
 * checktoken (verify one with the verifier the server builds from the same configuration).
 * Owner: the main thread. Tokens are printed only by gentoken, on stdout; checktoken never
 * echoes the token, only its verified claims or the reason it was refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli_internal.h"
#include "ringcast/auth.h"
#include "ringcast/jwt.h"

#define TTL_MAX_S (10LL * 365 * 24 * 3600)

/* "90s", "15m", "1h", "7d" or a bare number of seconds; -1 when malformed. */
static long long parse_ttl(const char *s)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    long long mul = *end == '\0' || strcmp(end, "s") == 0 ? 1
                    : strcmp(end, "m") == 0               ? 60
                    : strcmp(end, "h") == 0               ? 3600
                    : strcmp(end, "d") == 0               ? 86400
                                                          : -1;
    if (mul < 0 || v > TTL_MAX_S / mul)
        return -1;
    return v * mul;
}

/* --claim KEY=VALUE: VALUE as JSON when it parses, else as a string. */
static int add_claim(const struct rc_cli_cmd *cmd, json_t *claims, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return rc_cli_error(cmd, RC_CLI_USAGE, "--claim %s: write KEY=VALUE", kv);
    char key[128];
    if ((size_t)(eq - kv) >= sizeof(key))
        return rc_cli_error(cmd, RC_CLI_USAGE, "--claim: the name is over 127 bytes");
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (!v)
        v = json_string(eq + 1);
    if (!v || json_object_set_new(claims, key, v) < 0)
        return rc_cli_error(cmd, RC_CLI_USAGE, "--claim %s: not valid UTF-8", kv);
    return 0;
}

static json_t *topics_claim(const char *list)
{
    json_t *arr = json_array();
    const char *p = list;
    while (arr && *p) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            json_array_append_new(arr, json_stringn(p, n));
        p += n;
        if (*p == ',')
            p++;
    }
    return arr;
}

static int build_claims(const struct rc_cli_cmd *cmd, struct rc_cli_opt *opts, size_t n,
                        const struct rc_config *cfg, json_t *claims)
{
    const char *sub = rc_cli_opt(opts, n, "sub")->value;
    const char *ttl = rc_cli_opt(opts, n, "ttl")->value;
    const char *topics = rc_cli_opt(opts, n, "topics")->value;
    const struct rc_cli_opt *cl = rc_cli_opt(opts, n, "claim");
    if (!sub || !*sub || strlen(sub) > RC_JWT_SUB_MAX)
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "give --sub=USER (the user id, 1..%d bytes); see ringcast gentoken "
                            "--help",
                            RC_JWT_SUB_MAX);
    long long ttl_s = ttl ? parse_ttl(ttl) : 3600;
    if (ttl_s < 0)
        return rc_cli_error(cmd, RC_CLI_USAGE,
                            "--ttl=%s: give a duration such as 90s, 15m, 1h or 7d (0 = no exp)",
                            ttl);
    long long now = (long long)time(NULL);
    json_object_set_new(claims, "sub", json_string(sub));
    json_object_set_new(claims, "iat", json_integer(now));
    if (ttl_s > 0)
        json_object_set_new(claims, "exp", json_integer(now + ttl_s));
    if (cfg->jwt_issuer[0])
        json_object_set_new(claims, "iss", json_string(cfg->jwt_issuer));
    if (cfg->jwt_audience[0])
        json_object_set_new(claims, "aud", json_string(cfg->jwt_audience));
    if (topics)
        json_object_set_new(claims, "topics", topics_claim(topics));
    for (size_t i = 0; i < cl->nvals; i++)
        if (add_claim(cmd, claims, cl->vals[i]))
            return RC_CLI_USAGE;
    return 0;
}

int rc_cli_gentoken(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {
        {.name = "sub", .has_arg = true},    {.name = "ttl", .has_arg = true},
        {.name = "topics", .has_arg = true}, {.name = "claim", .has_arg = true, .repeat = true},
        {.name = "key", .has_arg = true},    {.name = "config", .has_arg = true},
    };
    size_t n = RC_ARRAY_LEN(opts), nargs;
    int rc = rc_cli_parse(cmd, argc, argv, opts, n, NULL, 0, 0, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    struct rc_config cfg;
    json_t *claims = json_object();
    struct rc_jwt_signer *s = NULL;
    struct rc_err err = {0};
    if ((rc = rc_cli_load_config(cmd, &cfg, rc_cli_opt(opts, n, "config")->value, envp)) ||
        (rc = build_claims(cmd, opts, n, &cfg, claims)))
        goto out;
    const char *key = rc_cli_opt(opts, n, "key")->value;
    if (key)
        s = rc_jwt_signer_pem(key, &err);
    else if (cfg.jwt_secret[0])
        s = rc_jwt_signer_hs256((const uint8_t *)cfg.jwt_secret, strlen(cfg.jwt_secret), &err);
    else
        snprintf(err.msg, sizeof(err.msg),
                 "no signing key: set jwt_secret (RINGCAST_JWT_SECRET, or --config=PATH) for "
                 "HS256, or give --key=PRIVATE.pem for RS256/ES256");
    if (!s) {
        rc = rc_cli_error(cmd, RC_CLI_USAGE, "%s", err.msg);
        goto out;
    }
    char *tok = rc_jwt_sign(s, claims, &err);
    if (!tok) {
        rc = rc_cli_error(cmd, RC_CLI_USAGE, "%s", err.msg);
        goto out;
    }
    puts(tok);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    rc = RC_CLI_OK;
out:
    rc_jwt_signer_free(s);
    json_decref(claims);
    rc_config_fini(&cfg);
    return rc;
}

/* {"valid":true,"alg":...,"expires_in_s":...} then every claim of the token, as signed. */
static void print_claims(const struct rc_jwt_claims *c, const char *token, int64_t now)
{
    json_t *j = json_pack("{s:b, s:s}", "valid", 1, "alg", rc_jwt_alg_name(c->alg));
    if (c->has_exp)
        json_object_set_new(j, "expires_in_s", json_integer(c->exp - now));
    json_t *all = rc_jwt_payload(token, strlen(token));
    if (all)
        json_object_update_missing(j, all);
    json_decref(all);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (txt)
        puts(txt);
    free(txt);
    json_decref(j);
}

/* The token from the argument, or from stdin for "-" (one line). */
static int read_token(const struct rc_cli_cmd *cmd, const char *arg, char *buf, size_t cap)
{
    if (strcmp(arg, "-") != 0) {
        if (strlen(arg) >= cap)
            return rc_cli_error(cmd, RC_CLI_REFUSED, "token too large: %zu bytes, max %d",
                                strlen(arg), RC_JWT_MAX_TOKEN);
        snprintf(buf, cap, "%s", arg);
        return 0;
    }
    if (!fgets(buf, (int)cap, stdin))
        return rc_cli_error(cmd, RC_CLI_USAGE, "no token on stdin");
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int rc_cli_checktoken(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {{.name = "config", .has_arg = true}};
    const char *args[1];
    size_t nargs;
    int rc = rc_cli_parse(cmd, argc, argv, opts, 1, args, 1, 1, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    struct rc_config cfg;
    struct rc_err err = {0};
    struct rc_auth *auth = NULL;
    char token[RC_JWT_MAX_TOKEN + 2];
    if ((rc = rc_cli_load_config(cmd, &cfg, opts[0].value, envp)))
        goto out;
    if (!(auth = rc_auth_new(&cfg, &err))) {
        rc = rc_cli_error(cmd, RC_CLI_USAGE, "%s", err.msg);
        goto out;
    }
    if (!rc_auth_jwt(auth)) {
        rc = rc_cli_error(cmd, RC_CLI_USAGE,
                          "no JWT key is configured, so the server accepts no token: set "
                          "jwt_secret or jwt_public_key_file (--config=PATH or RINGCAST_*)");
        goto out;
    }
    if ((rc = read_token(cmd, args[0], token, sizeof(token))))
        goto out;
    struct rc_jwt_claims claims;
    int64_t now = (int64_t)time(NULL);
    if (rc_jwt_verify(rc_auth_jwt(auth), token, strlen(token), now, &claims, &err) < 0) {
        rc = rc_cli_error(cmd, RC_CLI_REFUSED, "refused (%s): %s", err.code ? err.code : "error",
                          err.msg);
        goto out;
    }
    print_claims(&claims, token, now);
    rc = RC_CLI_OK;
out:
    OPENSSL_cleanse(token, sizeof(token));
    rc_auth_free(auth);
    rc_config_fini(&cfg);
    return rc;
}
