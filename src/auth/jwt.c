/* jwt.c - JWT (compact JWS) verification: HS256, RS256, ES256 with libcrypto, claims with jansson.
 * Key setup is in jwt_key.c. Contract and threading rules: include/ringcast/jwt.h;
 * the verifier layout is in jwt_internal.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt_internal.h"
#include "ringcast/jwt.h"

#define HS256_SIG_LEN 32
#define ES256_SIG_LEN 64 /* RFC 7518 §3.4: r || s, 32 bytes each, big-endian */
#define ES256_DER_MAX 80 /* SEQUENCE of two INTEGERs of at most 33 bytes: 72 */

/* The three base64url parts of a token, decoded. */
struct parts {
    const uint8_t *header, *payload, *sig;
    size_t header_n, payload_n, sig_n;
    size_t signing_n; /* bytes of "header.payload" in the token: the JWS signing input */
};

const char *rc_jwt_alg_name(enum rc_jwt_alg alg)
{
    switch (alg) {
    case RC_JWT_HS256:
        return "HS256";
    case RC_JWT_RS256:
        return "RS256";
    case RC_JWT_ES256:
        return "ES256";
    }
    return "?";
}

/* Fill err as a refused token and return -EACCES. */
RC_PRINTF(3, 4) static int deny(struct rc_err *err, const char *code, const char *fmt, ...)
{
    char msg[sizeof(err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rc_err_set(err, RC_JWT_HTTP_UNAUTHORIZED, code, "%s", msg);
    return -EACCES;
}

/* ---- token syntax ----------------------------------------------------------------------- */

/* RFC 4648 §5 alphabet value of c, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict base64url without padding (RFC 7515 §2): only the url-safe alphabet, no '=', no
 * length of 4k+1, and unused trailing bits must be zero so that each byte string has exactly
 * one encoding. Writes at most n*3/4 bytes to out. False on malformed input. */
static bool b64url_decode(const char *in, size_t n, uint8_t *out, size_t *out_n)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n % 4 == 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        int val = b64url_value((unsigned char)in[i]);

        if (val < 0)
            return false;
        acc = (acc << 6) | (uint32_t)val;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero leftover bits: a second encoding of the same bytes */
        return false;
    *out_n = o;
    return true;
}

/* Split token into its three parts and decode them into buf (RC_JWT_MAX_TOKEN bytes). */
static int split_token(const char *token, size_t len, uint8_t *buf, struct parts *pt,
                       struct rc_err *err)
{
    static const char *const names[3] = {"header", "payload", "signature"};
    size_t start[3], end[3], dots = 0, used = 0;
    const uint8_t *dec[3];
    size_t dec_n[3];

    start[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (dots < 2) {
            end[dots] = i;
            start[dots + 1] = i + 1;
        }
        dots++;
    }
    if (dots != 2)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "malformed token: %zu parts, a JWS has 3 (header.payload.signature)", dots + 1);
    end[2] = len;
    for (int k = 0; k < 3; k++) {
        if (!b64url_decode(token + start[k], end[k] - start[k], buf + used, &dec_n[k]))
            return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                        "malformed token: %s is not base64url (RFC 7515 §2, no padding)", names[k]);
        dec[k] = buf + used;
        used += dec_n[k];
    }
    *pt = (struct parts){.header = dec[0],
                         .payload = dec[1],
                         .sig = dec[2],
                         .header_n = dec_n[0],
                         .payload_n = dec_n[1],
                         .sig_n = dec_n[2],
                         .signing_n = end[1]};
    return 0;
}

/* Name an alg from the token in a message only when it is short and plain. */
static void alg_for_msg(const char *a, size_t n, char *out, size_t cap)
{
    bool plain = n > 0 && n <= 16;

    for (size_t i = 0; plain && i < n; i++) {
        char c = a[i];
        plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
    }
    if (plain)
        snprintf(out, cap, "%.*s", (int)n, a);
    else
        snprintf(out, cap, "(%zu bytes, not a plain name)", n);
}

/* Parse the header JSON and return its alg. */
static int parse_header(const struct parts *pt, enum rc_jwt_alg *alg, struct rc_err *err)
{
    json_t *h, *a;
    const char *s;
    size_t n;
    char shown[48];
    int rc = 0;

    h = json_loadb((const char *)pt->header, pt->header_n, JSON_REJECT_DUPLICATES, NULL);
    if (!h)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "malformed token: header is not JSON");
    if (!json_is_object(h)) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED, "malformed token: header is not a JSON object");
        goto out;
    }
    a = json_object_get(h, "alg");
    if (!a) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED, "malformed token: header has no alg");
        goto out;
    }
    if (!json_is_string(a)) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED, "malformed token: header alg is not a string");
        goto out;
    }
    /* RFC 7515 §4.1.11: extensions listed in crit must be understood; we know none. */
    if (json_object_get(h, "crit")) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED,
                  "header crit is not supported; issue tokens without critical extensions");
        goto out;
    }
    s = json_string_value(a);
    n = json_string_length(a);
    if (rc_slice_ieq(rc_slice_make(s, n), "none")) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED, "alg none is refused; sign the token");
    } else if (rc_slice_eq(rc_slice_make(s, n), "HS256")) {
        *alg = RC_JWT_HS256;
    } else if (rc_slice_eq(rc_slice_make(s, n), "RS256")) {
        *alg = RC_JWT_RS256;
    } else if (rc_slice_eq(rc_slice_make(s, n), "ES256")) {
        *alg = RC_JWT_ES256;
    } else {
        alg_for_msg(s, n, shown, sizeof(shown));
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED,
                  "alg %s is not supported; use HS256, RS256 or ES256", shown);
    }
out:
    json_decref(h);
    return rc;
}

/* The alg has no key of its own type: say which keys there are. */
static int deny_alg_mismatch(const struct rc_jwt_verifier *v, enum rc_jwt_alg alg,
                             struct rc_err *err)
{
    const char *have[3];
    int n = 0;

    if (v->hs_secret)
        have[n++] = "HS256";
    if (v->rsa)
        have[n++] = "RS256";
    if (v->ec)
        have[n++] = "ES256";
    if (n == 0)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "no JWT key is configured; set an HS256 secret or a public key");
    if (n == 1)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "alg %s does not match the configured %s %s",
                    rc_jwt_alg_name(alg), have[0], strcmp(have[0], "HS256") ? "key" : "secret");
    return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                "alg %s does not match the configured keys (%s%s%s%s)", rc_jwt_alg_name(alg),
                have[0], ", ", have[1], n == 3 ? ", ES256" : "");
}

/* ---- signatures ------------------------------------------------------------------------- */

static int deny_bad_sig(struct rc_err *err)
{
    ERR_clear_error(); /* the error queue is per thread: leave it empty for the next caller */
    return deny(err, RC_JWT_ERR_UNAUTHORIZED, "signature does not verify");
}

static int verify_hs256(const struct rc_jwt_verifier *v, const char *input, size_t n,
                        const struct parts *pt, struct rc_err *err)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_n = 0;
    bool ok;

    if (pt->sig_n != HS256_SIG_LEN)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "signature does not verify: HS256 signature is %zu bytes, expected %d",
                    pt->sig_n, HS256_SIG_LEN);
    if (!HMAC(v->sha256, v->hs_secret, (int)v->hs_len, (const unsigned char *)input, n, mac,
              &mac_n) ||
        mac_n != HS256_SIG_LEN)
        return deny_bad_sig(err);
    ok = CRYPTO_memcmp(mac, pt->sig, HS256_SIG_LEN) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok ? 0 : deny_bad_sig(err);
}

/* EVP_DigestVerify over input with a DER (ECDSA) or PKCS#1 v1.5 (RSA) signature. */
static int verify_pkey(const struct rc_jwt_verifier *v, EVP_PKEY *pk, const char *input, size_t n,
                       const uint8_t *sig, size_t sig_n, struct rc_err *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (!ctx) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_UNAUTHORIZED,
                   "out of memory while verifying the signature; try again");
        return -ENOMEM;
    }
    ok = EVP_DigestVerifyInit(ctx, NULL, v->sha256, NULL, pk) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_n, (const unsigned char *)input, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : deny_bad_sig(err);
}

static int verify_rs256(const struct rc_jwt_verifier *v, const char *input, size_t n,
                        const struct parts *pt, struct rc_err *err)
{
    size_t want = (size_t)EVP_PKEY_get_size(v->rsa);

    if (pt->sig_n != want)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "signature does not verify: RS256 signature is %zu bytes, expected %zu",
                    pt->sig_n, want);
    return verify_pkey(v, v->rsa, input, n, pt->sig, pt->sig_n, err);
}

/* JWS carries ES256 as raw r||s (RFC 7518 §3.4); OpenSSL wants DER ECDSA-Sig-Value. */
static int verify_es256(const struct rc_jwt_verifier *v, const char *input, size_t n,
                        const struct parts *pt, struct rc_err *err)
{
    unsigned char der[ES256_DER_MAX];
    unsigned char *p = der;
    ECDSA_SIG *es;
    BIGNUM *r, *s;
    int der_n = -1;

    if (pt->sig_n != ES256_SIG_LEN)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "signature does not verify: ES256 signature is %zu bytes, expected %d "
                    "(raw r||s, RFC 7518 §3.4)",
                    pt->sig_n, ES256_SIG_LEN);
    es = ECDSA_SIG_new();
    r = BN_bin2bn(pt->sig, ES256_SIG_LEN / 2, NULL);
    s = BN_bin2bn(pt->sig + ES256_SIG_LEN / 2, ES256_SIG_LEN / 2, NULL);
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der))
            der_n = i2d_ECDSA_SIG(es, &p);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    if (der_n <= 0) {
        ERR_clear_error();
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_UNAUTHORIZED,
                   "out of memory while verifying the signature; try again");
        return -ENOMEM;
    }
    return verify_pkey(v, v->ec, input, n, der, (size_t)der_n, err);
}

/* ---- claims ----------------------------------------------------------------------------- */

/* A NumericDate claim (RFC 7519 §2): absent is fine, a non-number is refused. */
static int read_time(const json_t *claims, const char *name, int64_t *out, bool *has,
                     struct rc_err *err)
{
    const json_t *j = json_object_get(claims, name);

    if (!j)
        return 0;
    if (json_is_integer(j)) {
        *out = json_integer_value(j);
    } else if (json_is_real(j)) {
        double d = json_real_value(j);

        if (d >= 9.2e18)
            *out = INT64_MAX;
        else if (d <= -9.2e18)
            *out = INT64_MIN;
        else
            *out = (int64_t)d;
    } else {
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "%s claim is not a number; use seconds since the epoch", name);
    }
    *has = true;
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* RFC 7519 §4.1.4: now must be before exp; §4.1.5: now must not be before nbf. */
static int check_times(const struct rc_jwt_verifier *v, const struct rc_jwt_claims *c, int64_t now,
                       struct rc_err *err)
{
    if (c->has_exp && now >= sat_add(c->exp, v->leeway))
        return deny(err, RC_JWT_ERR_EXPIRED, "token expired %lld s ago; get a new token",
                    (long long)sat_sub(now, c->exp));
    if (c->has_nbf && sat_add(now, v->leeway) < c->nbf)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "token not valid yet: nbf is %lld s in the future; check the clocks",
                    (long long)sat_sub(c->nbf, now));
    return 0;
}

static bool json_str_eq(const json_t *j, const char *want)
{
    return json_is_string(j) &&
           rc_slice_eq(rc_slice_make(json_string_value(j), json_string_length(j)), want);
}

static int check_iss_aud(const struct rc_jwt_verifier *v, const json_t *claims, struct rc_err *err)
{
    const json_t *iss = json_object_get(claims, "iss");
    const json_t *aud = json_object_get(claims, "aud");
    bool aud_ok = false;

    if (v->check_iss && !iss)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "iss claim is missing; this server requires it");
    if (v->check_iss && !json_str_eq(iss, v->iss))
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "iss claim does not match the configured issuer");
    if (!v->check_aud)
        return 0;
    if (!aud)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "aud claim is missing; this server requires it");
    if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud) && !aud_ok; i++)
            aud_ok = json_str_eq(json_array_get(aud, i), v->aud);
    } else {
        aud_ok = json_str_eq(aud, v->aud);
    }
    if (!aud_ok)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "aud claim does not include the configured audience");
    return 0;
}

/* Copy a string claim of 1..max bytes without NUL into out (max + 1 bytes). */
static int copy_str(const json_t *j, const char *what, size_t max, char *out, struct rc_err *err)
{
    size_t n;

    if (!json_is_string(j))
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "%s is not a string", what);
    n = json_string_length(j);
    if (n == 0 || n > max)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "%s is %zu bytes; use 1..%zu", what, n, max);
    if (memchr(json_string_value(j), '\0', n))
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "%s contains a NUL character", what);
    memcpy(out, json_string_value(j), n);
    out[n] = '\0';
    return 0;
}

static int read_topics(const json_t *claims, struct rc_jwt_claims *c, struct rc_err *err)
{
    const json_t *t = json_object_get(claims, "topics");
    char what[48];
    size_t n;

    if (!t)
        return 0;
    if (!json_is_array(t))
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "topics claim is not an array of topic pattern strings");
    n = json_array_size(t);
    if (n > RC_JWT_MAX_TOPICS)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "topics claim has %zu entries, max %d", n,
                    RC_JWT_MAX_TOPICS);
    for (size_t i = 0; i < n; i++) {
        int rc;

        snprintf(what, sizeof(what), "topics claim entry %zu", i);
        rc = copy_str(json_array_get(t, i), what, RC_JWT_TOPIC_MAX, c->topics[i], err);
        if (rc != 0)
            return rc;
    }
    c->has_topics = true;
    c->n_topics = n;
    return 0;
}

static int parse_claims(const struct rc_jwt_verifier *v, const struct parts *pt, int64_t now,
                        struct rc_jwt_claims *c, struct rc_err *err)
{
    json_t *j = json_loadb((const char *)pt->payload, pt->payload_n, JSON_REJECT_DUPLICATES, NULL);
    const json_t *sub;
    int rc;

    if (!j)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "malformed token: payload is not JSON (or has a duplicate claim)");
    if (!json_is_object(j)) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED, "malformed token: payload is not a JSON object");
        goto out;
    }
    rc = read_time(j, "exp", &c->exp, &c->has_exp, err);
    if (rc == 0)
        rc = read_time(j, "nbf", &c->nbf, &c->has_nbf, err);
    if (rc == 0)
        rc = read_time(j, "iat", &c->iat, &c->has_iat, err);
    if (rc == 0)
        rc = check_times(v, c, now, err);
    if (rc == 0)
        rc = check_iss_aud(v, j, err);
    if (rc != 0)
        goto out;
    sub = json_object_get(j, "sub");
    if (!sub) {
        rc = deny(err, RC_JWT_ERR_UNAUTHORIZED,
                  "sub claim is missing; the token must name the user");
        goto out;
    }
    rc = copy_str(sub, "sub claim", RC_JWT_SUB_MAX, c->sub, err);
    if (rc == 0)
        rc = read_topics(j, c, err);
out:
    json_decref(j);
    return rc;
}

/* ---- verify ----------------------------------------------------------------------------- */

int rc_jwt_verify(const struct rc_jwt_verifier *v, const char *token, size_t len, int64_t now,
                  struct rc_jwt_claims *claims, struct rc_err *err)
{
    uint8_t buf[RC_JWT_MAX_TOKEN]; /* all three decoded parts: at most 3/4 of len */
    struct parts pt = {0};
    enum rc_jwt_alg alg = RC_JWT_HS256;
    int rc;

    memset(claims, 0, sizeof(*claims));
    if (len > RC_JWT_MAX_TOKEN)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "token too large: %zu bytes, max %d", len,
                    RC_JWT_MAX_TOKEN);
    if (v->check_too_long)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED,
                    "jwt: the configured %s is longer than %d bytes; shorten it in the config",
                    v->check_too_long, RC_JWT_CHECK_MAX);
    if (len == 0)
        return deny(err, RC_JWT_ERR_UNAUTHORIZED, "token is empty");
    rc = split_token(token, len, buf, &pt, err);
    if (rc == 0)
        rc = parse_header(&pt, &alg, err);
    if (rc != 0)
        return rc;
    switch (alg) {
    case RC_JWT_HS256:
        rc = v->hs_secret ? verify_hs256(v, token, pt.signing_n, &pt, err)
                          : deny_alg_mismatch(v, alg, err);
        break;
    case RC_JWT_RS256:
        rc = v->rsa ? verify_rs256(v, token, pt.signing_n, &pt, err)
                    : deny_alg_mismatch(v, alg, err);
        break;
    case RC_JWT_ES256:
        rc =
            v->ec ? verify_es256(v, token, pt.signing_n, &pt, err) : deny_alg_mismatch(v, alg, err);
        break;
    }
    if (rc == 0)
        rc = parse_claims(v, &pt, now, claims, err);
    if (rc != 0) {
        memset(claims, 0, sizeof(*claims));
        return rc;
    }
    claims->alg = alg;
    return 0;
}

json_t *rc_jwt_payload(const char *token, size_t len)
{
    uint8_t *buf = len <= RC_JWT_MAX_TOKEN ? malloc(RC_JWT_MAX_TOKEN) : NULL;
    struct parts pt;
    struct rc_err err = {0};
    json_t *j = NULL;
    if (buf && split_token(token, len, buf, &pt, &err) == 0)
        j = json_loadb((const char *)pt.payload, pt.payload_n, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}
