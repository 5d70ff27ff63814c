/* jwt_sign.c - issue compact JWS tokens (HS256 with a shared secret, RS256 / ES256 with a
 * private key from a PEM file), for the ringcast CLI's gentoken and the tests. The server
 * only verifies (jwt.c); nothing here runs on a shard.
 * Owner: the calling thread; a signer holds its key and is not shared.
 * The header is {"alg":ALG,"typ":"JWT"}; the claims are the caller's JSON object, dumped
 * compactly in insertion order. ES256 signatures are raw r||s (RFC 7518 §3.4), as jwt.c
 * expects, converted from OpenSSL's DER form. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "ringcast/jwt.h"

#define ES256_HALF 32

struct rc_jwt_signer {
    enum rc_jwt_alg alg;
    uint8_t *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *key; /* RS256 / ES256 */
};

static void ossl_err(struct rc_err *err, const char *what)
{
    char buf[160] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    rc_err_set(err, 500, RC_JWT_ERR_CONFIG, "jwt: %s%s%s", what, buf[0] ? ": " : "", buf);
}

struct rc_jwt_signer *rc_jwt_signer_hs256(const uint8_t *secret, size_t len, struct rc_err *err)
{
    if (len < RC_JWT_HS_SECRET_MIN || len > RC_JWT_HS_SECRET_MAX) {
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG,
                   "jwt: the HS256 secret is %zu bytes; it must be %d..%d (set jwt_secret)", len,
                   RC_JWT_HS_SECRET_MIN, RC_JWT_HS_SECRET_MAX);
        return NULL;
    }
    struct rc_jwt_signer *s = calloc(1, sizeof(*s));
    if (s)
        s->secret = malloc(len);
    if (!s || !s->secret) {
        free(s);
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        return NULL;
    }
    memcpy(s->secret, secret, len);
    s->secret_len = len;
    s->alg = RC_JWT_HS256;
    return s;
}

struct rc_jwt_signer *rc_jwt_signer_pem(const char *path, struct rc_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG, "jwt: cannot read the private key %s: %s", path,
                   strerror(errno));
        return NULL;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pk) {
        ossl_err(err, "the file holds no PEM private key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE "
                      "KEY or BEGIN EC PRIVATE KEY)");
        return NULL;
    }
    enum rc_jwt_alg alg;
    if (EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) >= RC_JWT_RSA_BITS_MIN &&
        EVP_PKEY_get_bits(pk) <= RC_JWT_RSA_BITS_MAX) {
        alg = RC_JWT_RS256;
    } else if (EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256) {
        char curve[32] = "";
        size_t cl = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                           &cl) != 1 ||
            strcmp(curve, "prime256v1") != 0) {
            EVP_PKEY_free(pk);
            rc_err_set(err, 500, RC_JWT_ERR_CONFIG,
                       "jwt: %s: an EC key must be on P-256 (prime256v1) for ES256", path);
            return NULL;
        }
        alg = RC_JWT_ES256;
    } else {
        EVP_PKEY_free(pk);
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG,
                   "jwt: %s: use an RSA key of %d..%d bits (RS256) or an EC P-256 key (ES256)",
                   path, RC_JWT_RSA_BITS_MIN, RC_JWT_RSA_BITS_MAX);
        return NULL;
    }
    struct rc_jwt_signer *s = calloc(1, sizeof(*s));
    if (!s) {
        EVP_PKEY_free(pk);
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        return NULL;
    }
    s->alg = alg;
    s->key = pk;
    return s;
}

enum rc_jwt_alg rc_jwt_signer_alg(const struct rc_jwt_signer *s)
{
    return s->alg;
}

void rc_jwt_signer_free(struct rc_jwt_signer *s)
{
    if (!s)
        return;
    if (s->secret) {
        OPENSSL_cleanse(s->secret, s->secret_len);
        free(s->secret);
    }
    EVP_PKEY_free(s->key);
    free(s);
}

/* base64url without padding (RFC 7515 §2) of in[0..n) appended at out; returns its length. */
static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    return o;
}

/* The signature over input[0..n) into sig (at least 1024 bytes); its length, or 0 with err. */
static size_t sign_input(const struct rc_jwt_signer *s, const char *input, size_t n, uint8_t *sig,
                         struct rc_err *err)
{
    if (s->alg == RC_JWT_HS256) {
        unsigned int len = 0;
        if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, (const unsigned char *)input, n, sig,
                  &len)) {
            ossl_err(err, "HMAC-SHA256 failed");
            return 0;
        }
        return len;
    }
    uint8_t der[1100];
    size_t der_n = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->key) == 1 &&
             EVP_DigestSign(ctx, der, &der_n, (const unsigned char *)input, n) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ossl_err(err, "signing failed");
        return 0;
    }
    if (s->alg == RC_JWT_RS256) {
        memcpy(sig, der, der_n);
        return der_n;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_n);
    if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, ES256_HALF) != ES256_HALF ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + ES256_HALF, ES256_HALF) != ES256_HALF) {
        ECDSA_SIG_free(es);
        ossl_err(err, "ECDSA signature conversion failed");
        return 0;
    }
    ECDSA_SIG_free(es);
    return 2 * ES256_HALF;
}

char *rc_jwt_sign(const struct rc_jwt_signer *s, const json_t *claims, struct rc_err *err)
{
    json_t *head = json_pack("{s:s, s:s}", "alg", rc_jwt_alg_name(s->alg), "typ", "JWT");
    char *h = head ? json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *c = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(head);
    size_t hn = h ? strlen(h) : 0, cn = c ? strlen(c) : 0;
    /* header.claims.signature, each base64url (4/3, rounded up) */
    size_t cap = (hn + cn + 1024) / 3 * 4 + 16;
    char *tok = h && c ? malloc(cap) : NULL;
    uint8_t sig[1024];
    size_t n = 0, sn = 0;
    if (!tok) {
        rc_err_set(err, 500, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        goto out;
    }
    n = b64url((const uint8_t *)h, hn, tok);
    tok[n++] = '.';
    n += b64url((const uint8_t *)c, cn, tok + n);
    sn = sign_input(s, tok, n, sig, err);
    if (sn == 0) {
        free(tok);
        tok = NULL;
        goto out;
    }
    tok[n++] = '.';
    n += b64url(sig, sn, tok + n);
    tok[n] = '\0';
    if (n > RC_JWT_MAX_TOKEN) {
        rc_err_set(err, 400, RC_JWT_ERR_CONFIG,
                   "jwt: the token would be %zu bytes, over the %d a server accepts; use fewer "
                   "or shorter claims",
                   n, RC_JWT_MAX_TOKEN);
        free(tok);
        tok = NULL;
    }
out:
    OPENSSL_cleanse(sig, sizeof(sig));
    free(h);
    free(c);
    return tok;
}
