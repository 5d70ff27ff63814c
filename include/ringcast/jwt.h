/* jwt.h - verify (and, for the CLI, sign) client JWTs (compact JWS, RFC 7515/7519) signed HS256,
 * RS256 or ES256.
 *
 * Owner: the main thread builds one rc_jwt_verifier at startup (secret, PEM keys, checks);
 *   after that it is immutable and shared read-only by every shard thread. rc_jwt_verify()
 *   only reads the verifier: each call makes its own EVP_MD_CTX, and OpenSSL 3 allows one
 *   EVP_PKEY to be used by many threads at once for verification in that case (see
 *   openssl-threads(7)). Setup also warms the key's provider cache so that no lazy
 *   initialisation happens on a shard. Setup functions are not thread-safe.
 * Invariants: a token is at most RC_JWT_MAX_TOKEN bytes, checked before anything else;
 *   the header JSON is parsed only after the size cap and base64url checks, and the
 *   claims JSON only after the signature verifies. An algorithm is verified only with a key
 *   of its own type: HS256 with the HS secret, RS256 with an RSA key, ES256 with an EC P-256
 *   key; a public key is never used as an HMAC secret (algorithm confusion), "none" in any
 *   case is refused. Tokens are never logged nor echoed in error messages.
 * Lifetimes: the verifier owns copies of the secret, keys and iss/aud strings; claims are
 *   copied into the caller's struct rc_jwt_claims (no pointers into the token).
 * Not incremental: a token always arrives whole (URL query, header or auth message).
 *
 * Why OpenSSL libcrypto + jansson and not Debian 12's libjwt 1.10: libjwt's jwt_decode()
 *   takes one key and lets the token's header pick the algorithm, so an HS256 token is
 *   checked with the RSA public key PEM as HMAC secret (algorithm confusion,
 *   benmcollins/libjwt#200); 1.10 has no exp/nbf validation with leeway (jwt_valid_* came
 *   in 1.12) and no token length bound (it takes a NUL-terminated string). libcrypto and
 *   jansson are already dependencies, and the code needed on top is small and fuzzed.
 */
#ifndef RINGCAST_JWT_H
#define RINGCAST_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_JWT_MAX_TOKEN 8192      /* bytes of compact JWS; larger tokens are refused */
#define RC_JWT_SUB_MAX 128         /* bytes of the "sub" claim (the user id) */
#define RC_JWT_MAX_TOPICS 16       /* entries of the "topics" claim */
#define RC_JWT_TOPIC_MAX 128       /* bytes of one "topics" entry */
#define RC_JWT_CHECK_MAX 255       /* bytes of a configured iss or aud */
#define RC_JWT_HS_SECRET_MIN 32    /* RFC 7518 §3.2: at least the hash size */
#define RC_JWT_HS_SECRET_MAX 4096  /* bytes of HS256 secret */
#define RC_JWT_PEM_MAX (64 * 1024) /* bytes of a PEM key file */
#define RC_JWT_RSA_BITS_MIN 2048
#define RC_JWT_RSA_BITS_MAX 8192

/* Error codes set in rc_err.code by rc_jwt_verify (status 401). */
#define RC_JWT_ERR_UNAUTHORIZED "unauthorized"
#define RC_JWT_ERR_EXPIRED "token_expired"
/* Error code of the setup functions (status 500): the configuration is wrong. */
#define RC_JWT_ERR_CONFIG "jwt_config"

enum rc_jwt_alg { RC_JWT_HS256, RC_JWT_RS256, RC_JWT_ES256 };

struct rc_jwt_verifier;

/* Claims of a verified token. Strings are NUL-terminated copies, free of NUL bytes. */
struct rc_jwt_claims {
    enum rc_jwt_alg alg;          /* the algorithm that verified the token */
    char sub[RC_JWT_SUB_MAX + 1]; /* required, 1..RC_JWT_SUB_MAX bytes */
    int64_t exp, nbf, iat;        /* unix seconds, valid when has_* (reals truncated) */
    bool has_exp, has_nbf, has_iat;
    bool has_topics; /* a "topics" claim was present (possibly empty) */
    size_t n_topics; /* <= RC_JWT_MAX_TOPICS */
    char topics[RC_JWT_MAX_TOPICS][RC_JWT_TOPIC_MAX + 1]; /* topic patterns, 1.. bytes each */
};

/* A verifier with no keys, leeway 0, no iss/aud checks. NULL with err set on ENOMEM.
 * Call from the main thread before shards start (it also seeds jansson's hash). */
struct rc_jwt_verifier *rc_jwt_verifier_new(struct rc_err *err);

/* Set (replace) the HS256 shared secret: RC_JWT_HS_SECRET_MIN..RC_JWT_HS_SECRET_MAX bytes.
 * 0, or -EINVAL / -ENOMEM with err set. */
RC_MUST_CHECK int rc_jwt_verifier_set_hs256(struct rc_jwt_verifier *v, const uint8_t *secret,
                                            size_t len, struct rc_err *err);

/* Load a public key from a PEM file (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY"): an RSA key
 * (RC_JWT_RSA_BITS_MIN..MAX bits) becomes the RS256 key, an EC P-256 key the ES256 key,
 * replacing any earlier key of that type. Other key types, curves and sizes, private keys
 * and files over RC_JWT_PEM_MAX are refused. 0, or -errno with err saying why. */
RC_MUST_CHECK int rc_jwt_verifier_load_pem(struct rc_jwt_verifier *v, const char *pem_path,
                                           struct rc_err *err);

/* Same as rc_jwt_verifier_load_pem from a PEM text in memory (inline config, fuzz harness).
 * what names the source in error messages (e.g. a path or "jwt.public_key"). */
RC_MUST_CHECK int rc_jwt_verifier_load_pem_buf(struct rc_jwt_verifier *v, const char *pem,
                                               size_t len, const char *what, struct rc_err *err);

/* Claim checks: exp/nbf are accepted leeway_s seconds beyond their bound (negative means 0);
 * iss and aud, when non-NULL, must match exactly (aud: a string, or an array containing it).
 * The strings are copied. One longer than RC_JWT_CHECK_MAX bytes cannot be stored: every
 * rc_jwt_verify then fails with a message naming it (fail closed; config validation should
 * have refused it already). */
void rc_jwt_verifier_set_checks(struct rc_jwt_verifier *v, int64_t leeway_s, const char *iss,
                                const char *aud);

/* True when at least one key (HS secret, RSA or EC) is configured. */
bool rc_jwt_verifier_has_key(const struct rc_jwt_verifier *v);

void rc_jwt_verifier_free(struct rc_jwt_verifier *v);

/* Verify a compact JWS token of len bytes (need not be NUL-terminated) at time now (unix
 * seconds). 0 with *claims filled on success. Otherwise -EACCES, *claims zeroed, err->status
 * 401 and err->code RC_JWT_ERR_EXPIRED when exp is past beyond the leeway, else
 * RC_JWT_ERR_UNAUTHORIZED (-ENOMEM with status 500 if OpenSSL cannot allocate); err->msg gives the
 * reason without echoing the token, e.g. "token expired 42 s ago", "signature does not verify",
 * "alg none is refused", "alg HS256 does not match the configured RS256 key", "malformed token:
 * header is not base64url", "token too large: 9000 bytes, max 8192". Thread-safe: only reads v.
 * Allocates (jansson) and does not log. */
RC_MUST_CHECK int rc_jwt_verify(const struct rc_jwt_verifier *v, const char *token, size_t len,
                                int64_t now, struct rc_jwt_claims *claims, struct rc_err *err);

/* ---- signing (jwt_sign.c: the CLI's gentoken and tests; never on a shard) ---------------- */

struct rc_jwt_signer;

/* A signer for HS256 with secret[0..len) (RC_JWT_HS_SECRET_MIN..MAX bytes, copied), or for
 * RS256 / ES256 with the private key in a PEM file (an RSA key of RC_JWT_RSA_BITS_MIN..MAX
 * bits, or an EC P-256 key; the key type picks the algorithm). NULL with err saying why. */
struct rc_jwt_signer *rc_jwt_signer_hs256(const uint8_t *secret, size_t len, struct rc_err *err);
struct rc_jwt_signer *rc_jwt_signer_pem(const char *path, struct rc_err *err);
enum rc_jwt_alg rc_jwt_signer_alg(const struct rc_jwt_signer *s);
void rc_jwt_signer_free(struct rc_jwt_signer *s);

/* A compact JWS of claims (a JSON object, dumped in its order) signed by s: a heap string
 * the caller frees, or NULL with err (out of memory, OpenSSL failure, or a token over
 * RC_JWT_MAX_TOKEN bytes). */
char *rc_jwt_sign(const struct rc_jwt_signer *s, const json_t *claims, struct rc_err *err);

/* The claims of a token rc_jwt_verify accepted, every one of them (custom claims too), as a
 * new JSON object; NULL when the payload does not decode. Only for showing a verified token
 * (the CLI's checktoken): it checks nothing itself. */
json_t *rc_jwt_payload(const char *token, size_t len);

/* "HS256", "RS256" or "ES256". */
const char *rc_jwt_alg_name(enum rc_jwt_alg alg);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_JWT_H */
