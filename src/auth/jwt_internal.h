/* jwt_internal.h - private to src/auth/jwt.c and src/auth/jwt_key.c: the layout of struct
 * rc_jwt_verifier and the HTTP statuses both files put in struct rc_err.
 * jwt_key.c builds the verifier (rc_jwt_verifier_new, the HS256 secret, PEM keys, the
 * iss/aud/leeway checks) and frees it; jwt.c only reads it to verify tokens.
 * Owner: the main thread writes the verifier during setup; afterwards it is immutable and
 *   read by every shard thread (see include/ringcast/jwt.h).
 * Invariants: rsa, when set, is an RSA key of RC_JWT_RSA_BITS_MIN..MAX bits; ec, when set,
 *   is a P-256 key; hs_secret, when set, holds hs_len bytes in
 *   RC_JWT_HS_SECRET_MIN..MAX; iss/aud are NUL-terminated and used only when check_iss /
 *   check_aud is true; check_too_long is NULL or a static "iss"/"aud".
 * Lifetimes: the verifier owns sha256, hs_secret (cleansed before free), rsa and ec. */
#ifndef RINGCAST_JWT_INTERNAL_H
#define RINGCAST_JWT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ringcast/jwt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_JWT_HTTP_UNAUTHORIZED 401 /* status of a refused token */
#define RC_JWT_HTTP_INTERNAL 500     /* status of a setup (configuration) error */

struct rc_jwt_verifier {
    EVP_MD *sha256;     /* fetched once: no implicit fetch per verification */
    uint8_t *hs_secret; /* NULL: no HS256 */
    size_t hs_len;
    EVP_PKEY *rsa; /* NULL: no RS256 */
    EVP_PKEY *ec;  /* NULL: no ES256; always P-256 */
    int64_t leeway;
    bool check_iss, check_aud;
    const char *check_too_long; /* "iss" or "aud" when set_checks got an over-long string */
    char iss[RC_JWT_CHECK_MAX + 1];
    char aud[RC_JWT_CHECK_MAX + 1];
};

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_JWT_INTERNAL_H */
