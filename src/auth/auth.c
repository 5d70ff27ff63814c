/* auth.c - the auth context, identities, access decisions and API keys. Contract and the
 * access decisions in include/ringcast/auth.h; pattern coverage and the rule parser are in
 * auth_rules.c (shared helpers in auth_internal.h).
 *
 * Access checks compare patterns token by token (split onto the stack): no recursion, no
 * allocation, O(rules x tokens). The only allocations are the context at start and one
 * identity per successful authentication. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ringcast/auth.h"
#include "ringcast/config.h"
#include "ringcast/http_parse.h"

#include "auth_internal.h"

#define DIGEST_LEN 32 /* SHA-256 */
#define SHOW_TOPIC 96 /* bytes of a topic or pattern echoed in a message */

struct api_key {
    unsigned char digest[DIGEST_LEN];
    unsigned scopes;
};

struct rc_auth {
    struct rc_jwt_verifier *jwt; /* NULL when no key is configured */
    int64_t leeway_s;
    bool anon_subscribe;
    bool client_publish;
    /* personal topics: the pattern with '*' in place of {sub}, and {sub}'s token index */
    bool has_personal;
    char personal[RC_TOPIC_MAX_LEN + 1];
    size_t personal_len, personal_sub;
    struct rc_auth_rule *rules;
    size_t n_rules;
    struct api_key *keys;
    size_t n_keys;
};

/* ---- messages ------------------------------------------------------------------------ */

static int forbid(struct rc_err *err, const char *verb, const char *t, size_t n, const char *fmt,
                  ...) RC_PRINTF(5, 6);

static int forbid(struct rc_err *err, const char *verb, const char *t, size_t n, const char *fmt,
                  ...)
{
    char reason[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    rc_err_set(err, 403, RC_AUTH_ERR_FORBIDDEN, "%s to %.*s%s refused: %s", verb,
               (int)(n > SHOW_TOPIC ? SHOW_TOPIC : n), t, n > SHOW_TOPIC ? "..." : "", reason);
    return -EACCES;
}

/* ---- the context ------------------------------------------------------------------------ */

static int setup_jwt(struct rc_auth *a, const struct rc_config *cfg, struct rc_err *err)
{
    if (cfg->jwt_secret[0] == '\0' && cfg->jwt_public_key_file[0] == '\0')
        return 0;
    a->jwt = rc_jwt_verifier_new(err);
    if (!a->jwt)
        return -ENOMEM;
    if (cfg->jwt_secret[0] != '\0') {
        int rc = rc_jwt_verifier_set_hs256(a->jwt, (const uint8_t *)cfg->jwt_secret,
                                           strlen(cfg->jwt_secret), err);
        if (rc)
            return rc;
    }
    if (cfg->jwt_public_key_file[0] != '\0') {
        int rc = rc_jwt_verifier_load_pem(a->jwt, cfg->jwt_public_key_file, err);
        if (rc)
            return rc;
    }
    a->leeway_s = (int64_t)(cfg->jwt_leeway / 1000);
    rc_jwt_verifier_set_checks(a->jwt, a->leeway_s, cfg->jwt_issuer[0] ? cfg->jwt_issuer : NULL,
                               cfg->jwt_audience[0] ? cfg->jwt_audience : NULL);
    return 0;
}

static bool sha256(const void *p, size_t n, unsigned char out[DIGEST_LEN])
{
    unsigned int len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN;
}

static int setup_keys(struct rc_auth *a, const struct rc_config *cfg, struct rc_err *err)
{
    if (cfg->api_keys.n == 0)
        return 0;
    if (cfg->api_keys.n > RC_AUTH_MAX_KEYS) {
        rc_err_set(err, 500, "bad_config", "config: api_keys has %zu items; use at most %d",
                   cfg->api_keys.n, RC_AUTH_MAX_KEYS);
        return -EINVAL;
    }
    a->keys = calloc(cfg->api_keys.n, sizeof(*a->keys));
    if (!a->keys) {
        rc_err_set(err, 500, "nomem", "out of memory for %zu API keys", cfg->api_keys.n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->api_keys.n; i++) {
        size_t klen;
        const char *why = rc_auth_api_key_split(cfg->api_keys.items[i], &klen, &a->keys[i].scopes);
        if (why) { /* never echo a key */
            rc_err_set(err, 500, "bad_config", "config: api_keys item %zu %s", i + 1, why);
            return -EINVAL;
        }
        if (!sha256(cfg->api_keys.items[i], klen, a->keys[i].digest)) {
            rc_err_set(err, 500, "nomem", "cannot hash api_keys item %zu (OpenSSL)", i + 1);
            return -ENOMEM;
        }
        a->n_keys++;
    }
    return 0;
}

static int setup_personal(struct rc_auth *a, const char *pat, struct rc_err *err)
{
    size_t n = strlen(pat), subs = 0, tok = 0, o = 0;
    struct rc_err terr;

    if (n == 0)
        return 0;
    /* rewrite each {sub} token as '*' and remember where it was */
    for (size_t i = 0; i <= n && o < sizeof(a->personal) - 1;) {
        size_t len = strcspn(pat + i, ".");
        if (len == 5 && memcmp(pat + i, "{sub}", 5) == 0) {
            subs++;
            a->personal_sub = tok;
            a->personal[o++] = '*';
        } else {
            size_t room = sizeof(a->personal) - 1 - o;
            size_t c = len < room ? len : room;
            memcpy(a->personal + o, pat + i, c);
            o += c;
        }
        i += len;
        if (i >= n)
            break;
        if (o < sizeof(a->personal) - 1)
            a->personal[o++] = '.';
        i++;
        tok++;
    }
    a->personal[o] = '\0';
    a->personal_len = o;
    if (subs != 1) {
        rc_err_set(err, 500, "bad_config",
                   "config: personal_topics=%.64s must hold {sub} exactly once as a whole "
                   "token (e.g. user.{sub}.>), or be empty",
                   pat);
        return -EINVAL;
    }
    if (n > RC_TOPIC_MAX_LEN ||
        rc_topic_validate(a->personal, a->personal_len, RC_TOPIC_PATTERN, &terr) != 0) {
        rc_err_set(err, 500, "bad_config", "config: personal_topics=%.64s is not a pattern: %s",
                   pat, n > RC_TOPIC_MAX_LEN ? "too long" : terr.msg);
        return -EINVAL;
    }
    a->has_personal = true;
    return 0;
}

static int setup_rules(struct rc_auth *a, const struct rc_config *cfg, struct rc_err *err)
{
    if (cfg->rules.n == 0)
        return 0;
    if (cfg->rules.n > RC_AUTH_MAX_RULES) {
        rc_err_set(err, 500, "bad_config", "config: rules has %zu items; use at most %d",
                   cfg->rules.n, RC_AUTH_MAX_RULES);
        return -EINVAL;
    }
    a->rules = calloc(cfg->rules.n, sizeof(*a->rules));
    if (!a->rules) {
        rc_err_set(err, 500, "nomem", "out of memory for %zu rules", cfg->rules.n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->rules.n; i++) {
        const char *t = cfg->rules.items[i];
        int rc = rc_auth_rule_parse(t, strlen(t), (unsigned)(i + 1), &a->rules[i], err);
        if (rc)
            return rc;
        a->n_rules++;
    }
    return 0;
}

struct rc_auth *rc_auth_new(const struct rc_config *cfg, struct rc_err *err)
{
    struct rc_auth *a = calloc(1, sizeof(*a));

    if (!a) {
        rc_err_set(err, 500, "nomem", "out of memory for the auth context");
        return NULL;
    }
    a->anon_subscribe = cfg->anonymous == RC_CONFIG_ANON_SUBSCRIBE;
    a->client_publish = cfg->client_publish;
    if (setup_jwt(a, cfg, err) || setup_keys(a, cfg, err) ||
        setup_personal(a, cfg->personal_topics, err) || setup_rules(a, cfg, err)) {
        rc_auth_free(a);
        return NULL;
    }
    return a;
}

void rc_auth_free(struct rc_auth *a)
{
    if (!a)
        return;
    rc_jwt_verifier_free(a->jwt);
    if (a->keys)
        OPENSSL_cleanse(a->keys, a->n_keys * sizeof(*a->keys));
    free(a->keys);
    free(a->rules);
    free(a);
}

const struct rc_jwt_verifier *rc_auth_jwt(const struct rc_auth *a)
{
    return a->jwt;
}

bool rc_auth_has_jwt(const struct rc_auth *a)
{
    return a->jwt != NULL;
}

size_t rc_auth_api_key_count(const struct rc_auth *a)
{
    return a->n_keys;
}

const struct rc_auth_rule *rc_auth_rules(const struct rc_auth *a, size_t *n)
{
    *n = a->n_rules;
    return a->rules;
}

const struct rc_auth_rule *rc_auth_rule_for(const struct rc_auth *a, const char *t, size_t n)
{
    struct rc_err err;
    struct rc_auth_toks pt, rt;

    if (rc_topic_validate(t, n, RC_TOPIC_PATTERN, &err) != 0)
        return NULL;
    rc_auth_toks_split(t, n, &pt);
    for (size_t i = 0; i < a->n_rules; i++) {
        rc_auth_toks_split(a->rules[i].pattern, a->rules[i].pattern_len, &rt);
        if (rc_auth_toks_covers(&rt, &pt))
            return &a->rules[i];
    }
    return NULL;
}

/* ---- identity ----------------------------------------------------------------------------- */

int rc_auth_authenticate(const struct rc_auth *a, const char *token, size_t len, int64_t now,
                         struct rc_auth_identity **out, struct rc_err *err)
{
    struct rc_jwt_claims *c;
    struct rc_auth_identity *id;
    struct rc_err terr;
    size_t size, sub_len, n_valid = 0, bytes = 0;
    bool valid[RC_JWT_MAX_TOPICS] = {false};
    int rc;

    *out = NULL;
    if (!a->jwt) {
        rc_err_set(err, 401, RC_JWT_ERR_UNAUTHORIZED,
                   "this server verifies no tokens (no jwt_secret or jwt_public_key_file "
                   "configured); connect without a token");
        return -EACCES;
    }
    c = malloc(sizeof(*c)); /* ~2 KiB: keep it off the shard's stack */
    if (!c) {
        rc_err_set(err, 503, "no_memory", "out of memory verifying a token; retry later");
        return -ENOMEM;
    }
    rc = rc_jwt_verify(a->jwt, token, len, now, c, err);
    if (rc)
        goto out_free_claims;
    sub_len = strlen(c->sub);
    for (size_t i = 0; i < c->n_topics; i++) {
        size_t tn = strlen(c->topics[i]);
        valid[i] = rc_topic_validate(c->topics[i], tn, RC_TOPIC_PATTERN, &terr) == 0;
        if (valid[i]) {
            n_valid++;
            bytes += tn + 1;
        }
    }
    /* bounded by the jwt.h caps: no overflow possible */
    size = sizeof(*id) + n_valid * sizeof(id->topics[0]) + sub_len + 1 + bytes;
    id = calloc(1, size);
    if (!id) {
        rc_err_set(err, 503, "no_memory", "out of memory for an identity; retry later");
        rc = -ENOMEM;
        goto out_free_claims;
    }
    char *p = (char *)&id->topics[n_valid];
    memcpy(p, c->sub, sub_len + 1);
    id->sub = p;
    id->sub_len = sub_len;
    p += sub_len + 1;
    for (size_t i = 0; i < c->n_topics; i++) {
        if (!valid[i])
            continue;
        size_t tn = strlen(c->topics[i]);
        memcpy(p, c->topics[i], tn + 1);
        id->topics[id->n_topics++] = rc_slice_make(p, tn);
        p += tn + 1;
    }
    id->has_topics = c->has_topics;
    id->alg = c->alg;
    if (!c->has_exp || __builtin_add_overflow(c->exp, a->leeway_s, &id->expires_at))
        id->expires_at = INT64_MAX;
    *out = id;
out_free_claims:
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
    return rc;
}

bool rc_auth_identity_expired(const struct rc_auth_identity *id, int64_t now)
{
    return now >= id->expires_at;
}

void rc_auth_identity_free(struct rc_auth_identity *id)
{
    free(id);
}

/* ---- access -------------------------------------------------------------------------------- */

/* Does the identity's topics claim hold a pattern covering x? */
static bool claim_covers(const struct rc_auth_identity *id, const struct rc_auth_toks *x)
{
    struct rc_auth_toks ct;

    if (!id)
        return false;
    for (size_t i = 0; i < id->n_topics; i++) {
        rc_auth_toks_split(id->topics[i].p, id->topics[i].n, &ct);
        if (rc_auth_toks_covers(&ct, x))
            return true;
    }
    return false;
}

/* Could pattern p match a personal topic whose {sub} token is not the caller's? */
static bool others_personal(const struct rc_auth *a, const struct rc_auth_identity *id,
                            const struct rc_auth_toks *p)
{
    struct rc_auth_toks q;
    struct rc_err terr;
    struct rc_slice mine = {NULL, 0};
    size_t k = a->personal_sub;

    if (!a->has_personal)
        return false;
    /* a sub that is not one valid topic token owns nothing */
    if (id && rc_topic_validate(id->sub, id->sub_len, RC_TOPIC_NAME, &terr) == 0 &&
        !memchr(id->sub, '.', id->sub_len))
        mine = rc_slice_make(id->sub, id->sub_len);
    rc_auth_toks_split(a->personal, a->personal_len, &q);
    for (size_t i = 0;; i++) {
        if (i == p->n || i == q.n)
            return p->n == q.n;
        if (rc_auth_tok_is_gt(p->t[i]) || rc_auth_tok_is_gt(q.t[i]))
            return true; /* the rest of both can agree, and {sub} (i <= k) can be anyone's */
        if (i == k) {
            if (!rc_auth_tok_is_star(p->t[i]) && mine.p && rc_auth_tok_eq(p->t[i], mine))
                return false; /* every topic p matches here is the caller's */
            continue;
        }
        if (!rc_auth_tok_is_star(p->t[i]) && !rc_auth_tok_is_star(q.t[i]) &&
            !rc_auth_tok_eq(p->t[i], q.t[i]))
            return false; /* p stays outside the personal space */
    }
}

static const char *sub_words_shown[] = {
    [RC_AUTH_SUB_ANONYMOUS] = "anonymous",
    [RC_AUTH_SUB_AUTHENTICATED] = "authenticated",
    [RC_AUTH_SUB_CLAIM] = "claim",
    [RC_AUTH_SUB_NONE] = "none",
};

/* Does rule r let id subscribe to the topics x (x inside r's pattern)? */
static bool rule_allows_sub(const struct rc_auth_rule *r, const struct rc_auth_identity *id,
                            const struct rc_auth_toks *x)
{
    switch (r->subscribe) {
    case RC_AUTH_SUB_DEFAULT:
    case RC_AUTH_SUB_ANONYMOUS:
        return true;
    case RC_AUTH_SUB_AUTHENTICATED:
        return id != NULL;
    case RC_AUTH_SUB_CLAIM:
        return claim_covers(id, x);
    case RC_AUTH_SUB_NONE:
        return false;
    }
    return false;
}

static const char *sub_need(const struct rc_auth_rule *r)
{
    switch (r->subscribe) {
    case RC_AUTH_SUB_AUTHENTICATED:
        return "needs an authenticated connection";
    case RC_AUTH_SUB_CLAIM:
        return "needs a token whose topics claim covers it";
    default:
        return "allows no subscriptions";
    }
}

int rc_auth_check_subscribe(const struct rc_auth *a, const struct rc_auth_identity *id,
                            const char *t, size_t n, struct rc_err *err)
{
    struct rc_auth_toks p, rt, x;
    int rc = rc_topic_validate(t, n, RC_TOPIC_PATTERN, err);

    if (rc)
        return rc;
    if (!id && !a->anon_subscribe)
        return forbid(err, "subscribe", t, n,
                      "anonymous connections may not subscribe (anonymous=none); "
                      "authenticate first");
    rc_auth_toks_split(t, n, &p);
    if (others_personal(a, id, &p))
        return forbid(err, "subscribe", t, n, "%s",
                      id ? "personal topic of another user"
                         : "personal topic; only its user may subscribe, after authenticating");
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct rc_auth_rule *r = &a->rules[i];
        rc_auth_toks_split(r->pattern, r->pattern_len, &rt);
        if (rc_auth_toks_covers(&rt, &p)) {
            if (rule_allows_sub(r, id, &p))
                return 0;
            return forbid(err, "subscribe", t, n, "rule %u (%.64s subscribe=%s) %s", r->index,
                          r->pattern, sub_words_shown[r->subscribe], sub_need(r));
        }
        if (rc_auth_toks_intersect(&p, &rt, &x) && !rule_allows_sub(r, id, &x))
            return forbid(err, "subscribe", t, n,
                          "it overlaps rule %u (%.64s subscribe=%s), which %s; subscribe to "
                          "narrower patterns",
                          r->index, r->pattern, sub_words_shown[r->subscribe], sub_need(r));
    }
    return 0; /* no covering rule: the default, which step 1 already applied */
}

int rc_auth_check_publish(const struct rc_auth *a, const struct rc_auth_identity *id, const char *t,
                          size_t n, struct rc_err *err)
{
    struct rc_auth_toks p, rt;
    int rc = rc_topic_validate(t, n, RC_TOPIC_NAME, err);

    if (rc)
        return rc;
    rc_auth_toks_split(t, n, &p);
    if (others_personal(a, id, &p))
        return forbid(err, "publish", t, n, "%s",
                      id ? "personal topic of another user"
                         : "personal topic; only its user may publish, after authenticating");
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct rc_auth_rule *r = &a->rules[i];
        rc_auth_toks_split(r->pattern, r->pattern_len, &rt);
        if (!rc_auth_toks_covers(&rt, &p))
            continue;
        switch (r->publish) {
        case RC_AUTH_PUB_DEFAULT:
            goto by_default;
        case RC_AUTH_PUB_NONE:
            return forbid(err, "publish", t, n,
                          "rule %u (%.64s publish=none) allows no client publishing; publish "
                          "through the HTTP API",
                          r->index, r->pattern);
        case RC_AUTH_PUB_AUTHENTICATED:
            if (id)
                return 0;
            return forbid(err, "publish", t, n,
                          "rule %u (%.64s publish=authenticated) needs an authenticated "
                          "connection",
                          r->index, r->pattern);
        case RC_AUTH_PUB_CLAIM:
            if (claim_covers(id, &p))
                return 0;
            return forbid(err, "publish", t, n,
                          "rule %u (%.64s publish=claim) needs a token whose topics claim "
                          "covers it",
                          r->index, r->pattern);
        }
    }
by_default:
    if (a->client_publish)
        return 0;
    return forbid(err, "publish", t, n,
                  "client publishing is disabled (client_publish=false); publish through the "
                  "HTTP API");
}

/* ---- API keys ----------------------------------------------------------------------------- */

int rc_auth_check_api_key(const struct rc_auth *a, struct rc_slice key, unsigned need,
                          struct rc_err *err)
{
    static const char *const scope_names[] = {"publish", "notify", "admin"};
    unsigned char d[DIGEST_LEN];
    unsigned matched = 0, scopes = 0;

    if (a->n_keys == 0 || key.n == 0) {
        rc_err_set(err, 401, "unauthorized",
                   "an API key is required: send Authorization: Bearer <key> or X-API-Key");
        return -ENOENT;
    }
    if (!sha256(key.p, key.n, d)) {
        rc_err_set(err, 500, "nomem", "cannot hash the API key (OpenSSL)");
        return -ENOMEM;
    }
    /* every key is compared, without branching on the outcome */
    for (size_t i = 0; i < a->n_keys; i++) {
        unsigned eq = (unsigned)(CRYPTO_memcmp(d, a->keys[i].digest, DIGEST_LEN) == 0);
        unsigned mask = 0u - eq;
        matched |= eq;
        scopes |= mask & a->keys[i].scopes;
    }
    OPENSSL_cleanse(d, sizeof(d));
    if (!matched) {
        rc_err_set(err, 403, RC_AUTH_ERR_FORBIDDEN, "the API key is not valid");
        return -EACCES;
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(scope_names); i++) {
        if ((need & (1u << i)) && !(scopes & (1u << i))) {
            rc_err_set(err, 403, RC_AUTH_ERR_FORBIDDEN,
                       "the API key lacks the %s scope; use a key with it, or add it in "
                       "api_keys (KEY:publish+notify+admin)",
                       scope_names[i]);
            return -EACCES;
        }
    }
    return 0;
}

/* ---- where tokens come from --------------------------------------------------------------- */

int rc_auth_token_from_query(struct rc_slice query, char *buf, size_t cap, size_t *len,
                             struct rc_err *err)
{
    struct rc_slice rest = query, k, v, found = {NULL, 0};
    bool have = false;

    while (rc_http_query_next(&rest, &k, &v)) {
        if (!rc_slice_eq(k, "token"))
            continue;
        if (have) {
            rc_err_set(err, 401, "unauthorized",
                       "token is given twice in the URL query; give it once");
            return -EINVAL;
        }
        have = true;
        found = v;
    }
    if (!have)
        return -ENOENT;
    if (found.n == 0) {
        rc_err_set(err, 401, "unauthorized", "token= in the URL query is empty; give a JWT");
        return -EINVAL;
    }
    ssize_t r = rc_http_url_decode(found, buf, cap, false);
    if (r == -ENOSPC) {
        rc_err_set(err, 401, "unauthorized", "token in the URL query is too large: over %zu bytes",
                   cap);
        return -EINVAL;
    }
    if (r < 0) {
        rc_err_set(err, 401, "unauthorized",
                   "token in the URL query has a bad %%XX escape or a NUL byte; "
                   "percent-encode it correctly");
        return -EINVAL;
    }
    *len = (size_t)r;
    return 0;
}

int rc_auth_token_from_header(struct rc_slice value, struct rc_slice *token, struct rc_err *err)
{
    const char *p = value.p, *end = value.p + value.n;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *scheme = p;
    while (p < end && *p != ' ' && *p != '\t')
        p++;
    if (!rc_slice_ieq(rc_slice_make(scheme, (size_t)(p - scheme)), "Bearer"))
        return -ENOENT;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end) {
        rc_err_set(err, 401, "unauthorized",
                   "Authorization: Bearer has no token; send Authorization: Bearer <token>");
        return -EINVAL;
    }
    for (const char *q = p; q < end; q++) {
        if (*q == ' ' || *q == '\t') {
            rc_err_set(err, 401, "unauthorized",
                       "Authorization: Bearer holds more than one word; send one token");
            return -EINVAL;
        }
    }
    *token = rc_slice_make(p, (size_t)(end - p));
    return 0;
}
