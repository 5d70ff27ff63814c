/* auth.h - identity and access: who a connection is (a verified JWT), what an API key may
 * do, and whether an identity may subscribe to a topic or pattern or publish to a topic.
 *
 * Owner: the main thread builds one struct rc_auth from the configuration at start
 *   (rc_auth_new), before the shards exist; from then on it is immutable and every shard
 *   reads it concurrently without locks (the JWT verifier inside is read-only too, see
 *   jwt.h). An rc_auth_identity belongs to the connection that authenticated; only that
 *   connection's shard touches it.
 * Invariants: rules keep their configured order and the first matching rule decides (see
 *   "Access decisions" below). Refusals are err->status 403, err->code "forbidden", and a
 *   message naming the topic and the reason. API keys are kept only as SHA-256 digests and
 *   compared in constant time. Tokens are never logged nor copied into messages.
 * Lifetimes: rc_auth_new copies what it keeps from the config (the config may be freed
 *   afterwards); rc_auth_free after every shard has stopped. An identity is heap-allocated
 *   by rc_auth_authenticate and freed with rc_auth_identity_free; it holds no pointers
 *   into the token.
 *
 * Access decisions
 * ----------------
 * Pattern coverage: a pattern C covers a pattern (or topic) P when every topic that P
 *   matches is also matched by C: "a.>" covers "a.b", "a.*.c" and "a.>"; "a.*" covers
 *   "a.b" and "a.*" but not "a.>"; ">" covers everything; a topic covers only itself.
 * Overlap: P and C overlap when some topic matches both ("a.*.c" and "a.b.>").
 * Subscribe to P (a topic name or a pattern), in this order:
 *   1. Anonymous (no identity) and anonymous=none: refused.
 *   2. Personal topics (personal_topics, e.g. "user.{sub}.>"): P is refused when it could
 *      match a topic of that form whose {sub} token is not the caller's sub. So user alice
 *      may subscribe to user.alice.inbox, user.alice.> and user.alice.*, but not to
 *      user.bob.inbox, user.*.inbox, user.> or >. An anonymous caller, or one whose sub is
 *      not a valid single topic token (it holds '.', '*', '>', a space, ...), owns no
 *      personal topics.
 *   3. Rules, in order. The first rule whose pattern covers P decides (its subscribe=
 *      mode). Every earlier rule whose pattern merely overlaps P must also allow the part
 *      of P it governs, else P is refused naming that rule: a broad subscription like ">"
 *      can never reach topics that a rule closes. With no covering rule, the default
 *      (below) decides what the overlapping rules leave.
 *   Modes: anonymous = anyone; authenticated = any verified identity; claim = the token's
 *   "topics" claim holds a pattern that covers P (or the part of P the rule governs);
 *   none = nobody; not given (default) = like a topic no rule matches: allowed (step 1
 *   already refused anonymous callers when anonymous=none).
 * Publish from a client to topic T: step 2 as above, then the first rule whose pattern
 *   matches T decides: none, authenticated, claim (as above), or not given = client_publish.
 *   A topic no rule matches: allowed when client_publish is true. A rule thus opens or
 *   closes client publishing on its topics whatever client_publish says.
 */
#ifndef RINGCAST_AUTH_H
#define RINGCAST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/api_key.h"
#include "ringcast/common.h"
#include "ringcast/jwt.h"
#include "ringcast/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_config;

#define RC_AUTH_MAX_RULES 256                                 /* rules in the config */
#define RC_AUTH_MAX_KEYS 256                                  /* api_keys in the config */
#define RC_AUTH_HISTORY_MAX 1000000u                          /* history_size=, at most */
#define RC_AUTH_SUBSCRIBERS_MAX 10000000u                     /* max_subscribers=, at most */
#define RC_AUTH_HISTORY_TTL_MAX_MS (30ull * 24 * 3600 * 1000) /* history_ttl=, at most 30 days */

#define RC_AUTH_ERR_FORBIDDEN "forbidden"

/* ---- rules -------------------------------------------------------------------------- */

enum rc_auth_sub_mode {
    RC_AUTH_SUB_DEFAULT, /* not given in the rule */
    RC_AUTH_SUB_ANONYMOUS,
    RC_AUTH_SUB_AUTHENTICATED,
    RC_AUTH_SUB_CLAIM,
    RC_AUTH_SUB_NONE,
};

enum rc_auth_pub_mode {
    RC_AUTH_PUB_DEFAULT, /* not given in the rule: client_publish decides */
    RC_AUTH_PUB_NONE,
    RC_AUTH_PUB_AUTHENTICATED,
    RC_AUTH_PUB_CLAIM,
};

/* Bits of rc_auth_rule.set: which optional settings the rule gave. Settings not given
 * keep the server's defaults (the lead's modules decide what those are). */
#define RC_AUTH_RULE_PRESENCE (1u << 0)
#define RC_AUTH_RULE_HISTORY_SIZE (1u << 1)
#define RC_AUTH_RULE_HISTORY_TTL (1u << 2)
#define RC_AUTH_RULE_RETAIN (1u << 3)
#define RC_AUTH_RULE_MAX_SUBSCRIBERS (1u << 4)

/* One rule, parsed from "PATTERN key=value ..." (keys: subscribe, publish, presence,
 * history_size, history_ttl, retain, max_subscribers; each at most once; separated by
 * spaces or tabs). */
struct rc_auth_rule {
    char pattern[RC_TOPIC_MAX_LEN + 1]; /* a valid topic pattern, NUL-terminated */
    size_t pattern_len;
    unsigned index; /* 1-based position among the rules, for messages */
    enum rc_auth_sub_mode subscribe;
    enum rc_auth_pub_mode publish;
    unsigned set; /* RC_AUTH_RULE_* */
    bool presence;
    bool retain;
    uint32_t history_size;    /* events kept, 0..RC_AUTH_HISTORY_MAX */
    uint64_t history_ttl_ms;  /* 0 = no age limit */
    uint32_t max_subscribers; /* per topic; 0 = unlimited */
};

/* Parse one rule from text[0..n). 0, or -EINVAL with err (status 500, code "bad_config")
 * saying what is wrong, e.g. `rule 3 "chat.> subscribe=everyone": subscribe=everyone is not
 * allowed; use anonymous, authenticated, claim or none`. index is stored and named in
 * messages. */
RC_MUST_CHECK int rc_auth_rule_parse(const char *text, size_t n, unsigned index,
                                     struct rc_auth_rule *out, struct rc_err *err);

/* ---- the context ---------------------------------------------------------------------- */

struct rc_auth;

/* Build the context from the config: the JWT verifier (jwt_secret, jwt_public_key_file,
 * jwt_leeway, jwt_issuer, jwt_audience), the API keys with their scopes, the rules, the
 * personal topic pattern, anonymous and client_publish. NULL with err set (status 500;
 * code "bad_config" or RC_JWT_ERR_CONFIG) when any of them is wrong: also call it for
 * --check-config, since the config module does not parse rules. */
struct rc_auth *rc_auth_new(const struct rc_config *cfg, struct rc_err *err);
void rc_auth_free(struct rc_auth *a);

/* True when a JWT key is configured (tokens can be verified at all). */
bool rc_auth_has_jwt(const struct rc_auth *a);

/* The verifier built from the configuration (NULL when no JWT key is configured): the
 * ringcast CLI's checktoken verifies with it exactly as the server does. */
const struct rc_jwt_verifier *rc_auth_jwt(const struct rc_auth *a);

/* Number of configured API keys (0: the HTTP API decides its loopback-only fallback). */
size_t rc_auth_api_key_count(const struct rc_auth *a);

/* The rules in order (n set to their count); for stats and the lead's modules. */
const struct rc_auth_rule *rc_auth_rules(const struct rc_auth *a, size_t *n);

/* The first rule whose pattern covers t[0..n) (a topic name or a pattern), or NULL. This is
 * the rule whose presence/history/retain/max_subscribers settings apply to it. */
const struct rc_auth_rule *rc_auth_rule_for(const struct rc_auth *a, const char *t, size_t n);

/* ---- identity ------------------------------------------------------------------------- */

/* A verified user. Anonymous connections have no identity (NULL). */
struct rc_auth_identity {
    int64_t expires_at;  /* unix s at which the token stops being accepted (exp + leeway);
                            INT64_MAX when the token has no exp */
    enum rc_jwt_alg alg; /* the algorithm that verified it */
    size_t sub_len;
    const char *sub;          /* the user id, NUL-terminated, inside this allocation */
    bool has_topics;          /* the token carried a "topics" claim */
    size_t n_topics;          /* valid patterns of the claim (invalid entries are dropped) */
    struct rc_slice topics[]; /* NUL-terminated, inside this allocation */
};

/* Verify token[0..len) at now (unix seconds) and build an identity. 0 with *out set, or
 * -EACCES with err from rc_jwt_verify (status 401, code "unauthorized" or "token_expired"),
 * also when no JWT key is configured; -ENOMEM. */
RC_MUST_CHECK int rc_auth_authenticate(const struct rc_auth *a, const char *token, size_t len,
                                       int64_t now, struct rc_auth_identity **out,
                                       struct rc_err *err);

/* True once the identity's token is no longer accepted at now (unix seconds). */
bool rc_auth_identity_expired(const struct rc_auth_identity *id, int64_t now);

void rc_auth_identity_free(struct rc_auth_identity *id);

/* ---- access --------------------------------------------------------------------------- */

/* May id (NULL = anonymous) subscribe to t[0..n), a topic or a pattern? 0, -EACCES (403
 * "forbidden", e.g. "subscribe to user.bob.inbox refused: personal topic of another user"),
 * or -EINVAL (400 "bad_topic") when t is not a valid pattern. See "Access decisions". */
RC_MUST_CHECK int rc_auth_check_subscribe(const struct rc_auth *a,
                                          const struct rc_auth_identity *id, const char *t,
                                          size_t n, struct rc_err *err);

/* May id (NULL = anonymous) publish to the topic t[0..n) from a client connection? 0,
 * -EACCES (403 "forbidden") or -EINVAL (400 "bad_topic": not a valid topic name). */
RC_MUST_CHECK int rc_auth_check_publish(const struct rc_auth *a, const struct rc_auth_identity *id,
                                        const char *t, size_t n, struct rc_err *err);

/* Does pattern c cover pattern (or topic) p? Do they overlap? Both must be valid patterns
 * (else false). O(tokens), no allocation. */
bool rc_auth_pattern_covers(const char *c, size_t cn, const char *p, size_t pn);
bool rc_auth_patterns_overlap(const char *a, size_t an, const char *b, size_t bn);

/* ---- API keys ----------------------------------------------------------------------- */

/* Is key[0..n) a configured API key holding every scope in need (RC_AUTH_SCOPE_* bits)?
 * Compares SHA-256 digests against every configured key with CRYPTO_memcmp, so the time
 * depends on neither the key's content, its length, nor which key matched. 0; -EACCES with
 * err 403 "forbidden" ("the API key is not valid", or "the API key lacks the notify scope;
 * ..."); -ENOENT with err 401 "unauthorized" when no key is configured or key is empty. */
RC_MUST_CHECK int rc_auth_check_api_key(const struct rc_auth *a, struct rc_slice key, unsigned need,
                                        struct rc_err *err);

/* ---- where tokens come from ------------------------------------------------------------ */

/* Find the token= parameter of a URL query (without the '?', raw as received) and
 * percent-decode it into buf[0..cap) ('+' stays '+': JWTs never hold a space). 0 with *len
 * set; -ENOENT when there is no token parameter; -EINVAL with err (401 "unauthorized") when
 * it is empty, given twice, holds a bad %XX escape or a NUL, or does not fit in cap bytes
 * (cap RC_JWT_MAX_TOKEN is enough for any token rc_jwt_verify accepts). The parameter name
 * must be exactly "token" (not percent-encoded). Uses rc_http_query_next/url_decode. */
RC_MUST_CHECK int rc_auth_token_from_query(struct rc_slice query, char *buf, size_t cap,
                                           size_t *len, struct rc_err *err);

/* The token of an Authorization header value "Bearer <token>" (scheme in any case, one or
 * more spaces, surrounding spaces trimmed). 0 with *token pointing into value; -ENOENT when
 * the scheme is not Bearer; -EINVAL with err (401 "unauthorized") when the token is empty
 * or holds a space. */
RC_MUST_CHECK int rc_auth_token_from_header(struct rc_slice value, struct rc_slice *token,
                                            struct rc_err *err);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_AUTH_H */
