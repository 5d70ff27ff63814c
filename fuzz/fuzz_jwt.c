/* fuzz_jwt.c - libFuzzer harness for rc_jwt_verify (src/auth/jwt.c).
 *
 * The first input byte picks a mode, the rest is the input:
 *   0: the bytes are a token, verified with an HS256 secret;
 *   1: the bytes are a token, verified with an EC P-256 public key;
 *   2: the bytes are a claims payload; the harness signs it (HS256) so the claim checks run;
 *   3: the bytes are "header\npayload"; the harness signs both (HS256) so header parsing
 *      and the algorithm rules run past the signature.
 * Modes 2 and 3 sign with the harness's own secret: a fuzzer cannot forge an HMAC, and
 * without this the claims parser would only ever see rejected signatures.
 * Invariants checked: the result is 0 or -EACCES, a refusal has status 401 and a
 * NUL-terminated message, accepted claims respect their caps. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ringcast/jwt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t k_secret[32] = "ringcast-fuzz-secret-0123456789";

/* Generated once with openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 and
 * openssl pkey -pubout. Our own key; its private half only signed the mode-1 corpus seeds
 * (fuzz/corpus/fuzz_jwt/es256_*) and was then discarded. */
static const char k_ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfSpyEzjxeON5Jfgf2qKj7O0HU147\n"
                               "Yc7JooCiYgTKYvvzmAdd361A6AtyYi1lOuRFRp7ZXiUUw6xzdufNqKME+g==\n"
                               "-----END PUBLIC KEY-----\n";

static struct rc_jwt_verifier *g_hs, *g_ec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct rc_err err = {0};

    (void)argc;
    (void)argv;
    g_hs = rc_jwt_verifier_new(&err);
    g_ec = rc_jwt_verifier_new(&err);
    if (!g_hs || !g_ec || rc_jwt_verifier_set_hs256(g_hs, k_secret, sizeof(k_secret), &err) ||
        rc_jwt_verifier_load_pem_buf(g_ec, k_ec_pem, sizeof(k_ec_pem) - 1, "fuzz key", &err))
        abort(); /* harness setup, not input */
    rc_jwt_verifier_set_checks(g_hs, 30, NULL, NULL);
    rc_jwt_verifier_set_checks(g_ec, 30, "iss", "aud");
    return 0;
}

static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

        out[o++] = abc[v >> 10];
        out[o++] = abc[(v >> 4) & 63];
        out[o++] = abc[(v & 15) << 2];
    }
    return o;
}

static void check(const struct rc_jwt_verifier *v, const char *tok, size_t n)
{
    struct rc_jwt_claims c;
    struct rc_err err = {0};
    int rc = rc_jwt_verify(v, tok, n, 1700000000, &c, &err);

    if (rc == 0) {
        size_t sn = strlen(c.sub);

        if (sn == 0 || sn > RC_JWT_SUB_MAX || c.n_topics > RC_JWT_MAX_TOPICS)
            __builtin_trap();
        for (size_t i = 0; i < c.n_topics; i++)
            if (c.topics[i][0] == '\0' || strlen(c.topics[i]) > RC_JWT_TOPIC_MAX)
                __builtin_trap();
    } else if (rc != -EACCES || err.status != 401 || !err.code ||
               !memchr(err.msg, '\0', sizeof(err.msg))) {
        __builtin_trap();
    }
}

/* Build header.payload.HMAC in tok and verify it with the HS256 verifier. */
static void check_signed(const uint8_t *hdr, size_t hn, const uint8_t *pay, size_t pn)
{
    static char tok[2 * RC_JWT_MAX_TOKEN];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_n = 0;
    size_t n;

    if (hn > RC_JWT_MAX_TOKEN / 2 || pn > RC_JWT_MAX_TOKEN / 2)
        return;
    n = b64url_encode(hdr, hn, tok);
    tok[n++] = '.';
    n += b64url_encode(pay, pn, tok + n);
    if (!HMAC(EVP_sha256(), k_secret, sizeof(k_secret), (const unsigned char *)tok, n, mac, &mac_n))
        abort();
    tok[n++] = '.';
    n += b64url_encode(mac, mac_n, tok + n);
    check(g_hs, tok, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hs_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *nl;

    if (size == 0)
        return 0;
    switch (data[0] & 3) {
    case 0:
        check(g_hs, (const char *)data + 1, size - 1);
        break;
    case 1:
        check(g_ec, (const char *)data + 1, size - 1);
        break;
    case 2:
        check_signed((const uint8_t *)hs_header, sizeof(hs_header) - 1, data + 1, size - 1);
        break;
    default:
        nl = memchr(data + 1, '\n', size - 1);
        if (nl)
            check_signed(data + 1, (size_t)(nl - data - 1), nl + 1, size - (size_t)(nl - data) - 1);
        break;
    }
    return 0;
}
