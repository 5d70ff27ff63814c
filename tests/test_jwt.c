/* test_jwt.c - unit tests for the JWT verifier (src/auth/jwt.c).
 *
 * Keys and tokens come from tests/jwt_vectors.py (Python standard library + the openssl
 * command), run once in the group setup into a fresh mkdtemp directory: ringcast never signs
 * its own test tokens. All tokens are built around NOW (the same constant as in the script). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringcast/jwt.h"

#define NOW INT64_C(1700000000)
#define ISS "ringcast-test"
#define AUD "ringcast"
#define LEEWAY 30
#define TOKEN_CAP (16 * 1024)

static char g_dir[PATH_MAX];

/* Verifiers shared by the tests; immutable after the group setup, like in the server. */
static struct {
    struct rc_jwt_verifier *hs;     /* HS256 secret, leeway 30, iss + aud checks */
    struct rc_jwt_verifier *hs0;    /* HS256 secret, leeway 0, no iss/aud checks */
    struct rc_jwt_verifier *rs;     /* RSA key only, leeway 30, iss + aud */
    struct rc_jwt_verifier *es;     /* EC P-256 key only, leeway 30, iss + aud */
    struct rc_jwt_verifier *all;    /* HS256 + RSA + EC, leeway 30, iss + aud */
    struct rc_jwt_verifier *rs_es;  /* RSA + EC, no HS secret */
    struct rc_jwt_verifier *nokeys; /* nothing configured */
} V;

static void path_in_dir(char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", g_dir, name);

    if (n < 0 || (size_t)n >= cap)
        fail_msg("path too long for %s", name);
}

/* Read a generated file into buf (NUL-terminated); return its length. */
static size_t read_file(const char *name, char *buf, size_t cap)
{
    char path[PATH_MAX];
    FILE *f;
    size_t n;

    path_in_dir(path, sizeof(path), name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s (did jwt_vectors.py run?)", path, strerror(errno));
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

static size_t load_token(const char *name, char *buf, size_t cap)
{
    char file[128];

    snprintf(file, sizeof(file), "%s.jwt", name);
    return read_file(file, buf, cap);
}

static int verify_named(const struct rc_jwt_verifier *v, const char *name, struct rc_jwt_claims *c,
                        struct rc_err *err)
{
    static char tok[TOKEN_CAP];
    size_t n = load_token(name, tok, sizeof(tok));

    return rc_jwt_verify(v, tok, n, NOW, c, err);
}

static void expect_ok(const struct rc_jwt_verifier *v, const char *name, struct rc_jwt_claims *c)
{
    struct rc_err err = {0};
    int rc = verify_named(v, name, c, &err);

    if (rc != 0)
        fail_msg("%s: rc %d, %s", name, rc, err.msg);
}

static void expect_refused(const struct rc_jwt_verifier *v, const char *name, const char *code,
                           const char *msg)
{
    struct rc_jwt_claims c;
    struct rc_err err = {0};

    assert_int_equal(verify_named(v, name, &c, &err), -EACCES);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, code);
    assert_string_equal(err.msg, msg);
}

static void expect_unauthorized(const struct rc_jwt_verifier *v, const char *name, const char *msg)
{
    expect_refused(v, name, RC_JWT_ERR_UNAUTHORIZED, msg);
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int run_generator(void)
{
    char tests_dir[PATH_MAX], cmd[3 * PATH_MAX];
    const char *data = RC_TEST_DATA_DIR;
    size_t n = strlen(data);
    int status;

    /* RC_TEST_DATA_DIR is <src>/tests/data, which need not exist: strip "/data" lexically. */
    if (n < 5 || n >= sizeof(tests_dir) || strcmp(data + n - 5, "/data") != 0) {
        fprintf(stderr, "test_jwt: RC_TEST_DATA_DIR=%s does not end in /data\n", data);
        return -1;
    }
    memcpy(tests_dir, data, n - 5);
    tests_dir[n - 5] = '\0';
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "test_jwt: /usr/bin/python3 is missing; install the Debian package "
                        "python3 (needed to generate JWT test vectors)\n");
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/jwt_vectors.py' '%s'", tests_dir, g_dir);
    status = system(cmd);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr,
                "test_jwt: '%s' failed (status %d); it needs python3 and the openssl command "
                "(Debian package openssl)\n",
                cmd, status);
        return -1;
    }
    return 0;
}

static struct rc_jwt_verifier *make_verifier(bool hs, const char *pem1, const char *pem2,
                                             int64_t leeway, bool checks)
{
    struct rc_err err = {0};
    struct rc_jwt_verifier *v = rc_jwt_verifier_new(&err);
    char path[PATH_MAX];
    uint8_t secret[64];
    size_t n;

    if (!v)
        goto fail;
    if (hs) {
        n = read_file("hs256.secret", (char *)secret, sizeof(secret));
        if (rc_jwt_verifier_set_hs256(v, secret, n, &err) != 0)
            goto fail;
    }
    for (int i = 0; i < 2; i++) {
        const char *pem = i == 0 ? pem1 : pem2;

        if (!pem)
            continue;
        path_in_dir(path, sizeof(path), pem);
        if (rc_jwt_verifier_load_pem(v, path, &err) != 0)
            goto fail;
    }
    rc_jwt_verifier_set_checks(v, leeway, checks ? ISS : NULL, checks ? AUD : NULL);
    return v;
fail:
    fprintf(stderr, "test_jwt: verifier setup failed: %s\n", err.msg);
    rc_jwt_verifier_free(v);
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rc_test_jwt_XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "test_jwt: mkdtemp failed: %s\n", strerror(errno));
        return -1;
    }
    if (run_generator() != 0)
        return -1;
    V.hs = make_verifier(true, NULL, NULL, LEEWAY, true);
    V.hs0 = make_verifier(true, NULL, NULL, 0, false);
    V.rs = make_verifier(false, "rsa_pub.pem", NULL, LEEWAY, true);
    V.es = make_verifier(false, "ec_pub.pem", NULL, LEEWAY, true);
    V.all = make_verifier(true, "rsa_pub.pem", "ec_pub.pem", LEEWAY, true);
    V.rs_es = make_verifier(false, "rsa_pub.pem", "ec_pub.pem", LEEWAY, true);
    V.nokeys = make_verifier(false, NULL, NULL, LEEWAY, true);
    if (!V.hs || !V.hs0 || !V.rs || !V.es || !V.all || !V.rs_es || !V.nokeys)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    DIR *d;
    struct dirent *e;

    (void)state;
    rc_jwt_verifier_free(V.hs);
    rc_jwt_verifier_free(V.hs0);
    rc_jwt_verifier_free(V.rs);
    rc_jwt_verifier_free(V.es);
    rc_jwt_verifier_free(V.all);
    rc_jwt_verifier_free(V.rs_es);
    rc_jwt_verifier_free(V.nokeys);
    d = opendir(g_dir);
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(g_dir);
    return 0;
}

/* ---- valid tokens ----------------------------------------------------------------------- */

static void assert_good_claims(const struct rc_jwt_claims *c, enum rc_jwt_alg alg)
{
    assert_int_equal(c->alg, alg);
    assert_string_equal(c->sub, "alice");
    assert_true(c->has_exp);
    assert_int_equal(c->exp, NOW + 3600);
    assert_true(c->has_nbf);
    assert_int_equal(c->nbf, NOW - 10);
    assert_true(c->has_iat);
    assert_int_equal(c->iat, NOW - 10);
    assert_true(c->has_topics);
    assert_int_equal(c->n_topics, 2);
    assert_string_equal(c->topics[0], "chat.>");
    assert_string_equal(c->topics[1], "user.alice.>");
}

static void test_jwt_accepts_valid_hs256(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "hs256_valid", &c);
    assert_good_claims(&c, RC_JWT_HS256);
}

static void test_jwt_accepts_valid_rs256(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.rs, "rs256_valid", &c);
    assert_good_claims(&c, RC_JWT_RS256);
}

static void test_jwt_accepts_valid_es256(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.es, "es256_valid", &c);
    assert_good_claims(&c, RC_JWT_ES256);
}

static void test_jwt_accepts_each_alg_with_all_keys_configured(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.all, "hs256_valid", &c);
    assert_int_equal(c.alg, RC_JWT_HS256);
    expect_ok(V.all, "rs256_valid", &c);
    assert_int_equal(c.alg, RC_JWT_RS256);
    expect_ok(V.all, "es256_valid", &c);
    assert_int_equal(c.alg, RC_JWT_ES256);
}

static void test_jwt_accepts_minimal_token_without_optional_claims(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs0, "hs256_minimal", &c);
    assert_string_equal(c.sub, "bob");
    assert_false(c.has_exp);
    assert_false(c.has_nbf);
    assert_false(c.has_iat);
    assert_false(c.has_topics);
    assert_int_equal(c.n_topics, 0);
}

static void test_jwt_reads_token_only_up_to_len(void **state)
{
    static char tok[TOKEN_CAP];
    struct rc_jwt_claims c;
    struct rc_err err = {0};
    size_t n = load_token("hs256_valid", tok, sizeof(tok) - 8);

    (void)state;
    memcpy(tok + n, "garbage", 8); /* bytes past len must be ignored */
    assert_int_equal(rc_jwt_verify(V.hs, tok, n, NOW, &c, &err), 0);
    assert_string_equal(c.sub, "alice");
}

/* ---- time claims ------------------------------------------------------------------------ */

static void test_jwt_refuses_expired_token(void **state)
{
    (void)state;
    expect_refused(V.hs, "hs256_expired", RC_JWT_ERR_EXPIRED,
                   "token expired 42 s ago; get a new token");
}

static void test_jwt_accepts_exp_within_leeway(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "hs256_exp_within_leeway", &c);
    assert_int_equal(c.exp, NOW - 20);
}

static void test_jwt_refuses_exp_within_leeway_when_leeway_is_zero(void **state)
{
    (void)state;
    expect_refused(V.hs0, "hs256_exp_within_leeway", RC_JWT_ERR_EXPIRED,
                   "token expired 20 s ago; get a new token");
}

static void test_jwt_refuses_exp_equal_to_now(void **state)
{
    (void)state;
    expect_refused(V.hs0, "hs256_exp_now", RC_JWT_ERR_EXPIRED,
                   "token expired 0 s ago; get a new token");
}

static void test_jwt_refuses_not_yet_valid_token(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "hs256_not_yet_valid",
                        "token not valid yet: nbf is 600 s in the future; check the clocks");
}

static void test_jwt_accepts_nbf_within_leeway(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "hs256_nbf_within_leeway", &c);
    assert_int_equal(c.nbf, NOW + 20);
}

static void test_jwt_refuses_nbf_within_leeway_when_leeway_is_zero(void **state)
{
    (void)state;
    expect_unauthorized(V.hs0, "hs256_nbf_within_leeway",
                        "token not valid yet: nbf is 20 s in the future; check the clocks");
}

static void test_jwt_refuses_exp_that_is_not_a_number(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "hs256_exp_not_number",
                        "exp claim is not a number; use seconds since the epoch");
}

static void test_jwt_truncates_real_exp(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "hs256_exp_real", &c);
    assert_int_equal(c.exp, NOW);
}

static void test_jwt_treats_negative_leeway_as_zero(void **state)
{
    struct rc_jwt_claims c;
    struct rc_jwt_verifier *v = make_verifier(true, NULL, NULL, 0, false);

    (void)state;
    assert_non_null(v);
    rc_jwt_verifier_set_checks(v, -4000, NULL, NULL); /* would expire a token valid for 3600 s */
    expect_ok(v, "hs256_valid", &c);
    assert_int_equal(c.exp, NOW + 3600);
    rc_jwt_verifier_free(v);
}

/* ---- signatures ------------------------------------------------------------------------- */

static void test_jwt_refuses_wrong_hs256_signature(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "hs256_bad_sig", "signature does not verify");
}

static void test_jwt_refuses_wrong_rs256_signature(void **state)
{
    (void)state;
    expect_unauthorized(V.rs, "rs256_bad_sig", "signature does not verify");
}

static void test_jwt_refuses_wrong_es256_signature(void **state)
{
    (void)state;
    expect_unauthorized(V.es, "es256_bad_sig", "signature does not verify");
}

static void test_jwt_refuses_es256_signature_in_der_form(void **state)
{
    static const char head[] = "signature does not verify: ES256 signature is ";
    static const char tail[] = " bytes, expected 64 (raw r||s, RFC 7518 §3.4)";
    struct rc_jwt_claims c;
    struct rc_err err = {0};
    size_t n;

    (void)state;
    assert_int_equal(verify_named(V.es, "es256_der_sig", &c, &err), -EACCES);
    assert_string_equal(err.code, RC_JWT_ERR_UNAUTHORIZED);
    n = strlen(err.msg);
    assert_true(n > sizeof(head) + sizeof(tail) - 2);
    assert_memory_equal(err.msg, head, sizeof(head) - 1);
    assert_string_equal(err.msg + n - (sizeof(tail) - 1), tail);
}

static void test_jwt_refuses_hs256_signature_of_wrong_length(void **state)
{
    static char tok[TOKEN_CAP];
    struct rc_jwt_claims c;
    struct rc_err err = {0};
    size_t n = load_token("hs256_valid", tok, sizeof(tok));

    (void)state;
    /* Keep 40 of the 43 signature chars: 30 bytes, canonical base64url. */
    assert_int_equal(rc_jwt_verify(V.hs, tok, n - 3, NOW, &c, &err), -EACCES);
    assert_string_equal(err.msg,
                        "signature does not verify: HS256 signature is 30 bytes, expected 32");
}

/* ---- algorithms ------------------------------------------------------------------------- */

static void test_jwt_refuses_alg_none(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "alg_none", "alg none is refused; sign the token");
}

static void test_jwt_refuses_alg_none_in_any_case(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "alg_none_mixed_case", "alg none is refused; sign the token");
}

static void test_jwt_refuses_header_without_alg(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "alg_missing", "malformed token: header has no alg");
}

static void test_jwt_refuses_alg_that_is_not_a_string(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "alg_not_string", "malformed token: header alg is not a string");
}

static void test_jwt_refuses_unsupported_alg(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "alg_hs512",
                        "alg HS512 is not supported; use HS256, RS256 or ES256");
}

static void test_jwt_refuses_crit_header(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "crit_header",
                        "header crit is not supported; issue tokens without critical extensions");
}

static void test_jwt_refuses_hs256_signed_with_rsa_public_key(void **state)
{
    (void)state;
    /* Algorithm confusion: the public key must never serve as an HMAC secret. */
    expect_unauthorized(V.rs, "hs256_confusion",
                        "alg HS256 does not match the configured RS256 key");
}

static void test_jwt_refuses_hs256_signed_with_rsa_public_key_when_secret_set(void **state)
{
    (void)state;
    expect_unauthorized(V.all, "hs256_confusion", "signature does not verify");
}

static void test_jwt_refuses_rs256_without_rsa_key(void **state)
{
    (void)state;
    expect_unauthorized(V.es, "rs256_valid", "alg RS256 does not match the configured ES256 key");
}

static void test_jwt_refuses_es256_without_ec_key(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "es256_valid",
                        "alg ES256 does not match the configured HS256 secret");
}

static void test_jwt_mismatch_names_every_configured_key(void **state)
{
    (void)state;
    expect_unauthorized(V.rs_es, "hs256_valid",
                        "alg HS256 does not match the configured keys (RS256, ES256)");
}

static void test_jwt_refuses_everything_without_keys(void **state)
{
    (void)state;
    expect_unauthorized(V.nokeys, "hs256_valid",
                        "no JWT key is configured; set an HS256 secret or a public key");
}

/* ---- token syntax ----------------------------------------------------------------------- */

static void test_jwt_refuses_invalid_base64url_character(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "malformed_b64_header",
                        "malformed token: header is not base64url (RFC 7515 §2, no padding)");
}

static void test_jwt_refuses_base64_padding(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "malformed_b64_padding",
                        "malformed token: signature is not base64url (RFC 7515 §2, no padding)");
}

static void test_jwt_refuses_standard_base64_alphabet(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "malformed_b64_std_alphabet",
                        "malformed token: payload is not base64url (RFC 7515 §2, no padding)");
}

static void test_jwt_refuses_base64url_of_length_4k_plus_1(void **state)
{
    static char tok[TOKEN_CAP + 1];
    struct rc_jwt_claims c;
    struct rc_err err = {0};
    size_t n = load_token("hs256_minimal", tok, sizeof(tok) - 1);
    char *dot = memchr(tok, '.', n);

    (void)state;
    assert_non_null(dot);
    assert_int_equal((dot - tok) % 4, 0);
    /* One more 'A' adds only zero bits: a lax decoder would see the same header. */
    memmove(dot + 1, dot, n - (size_t)(dot - tok));
    *dot = 'A';
    assert_int_equal(rc_jwt_verify(V.hs0, tok, n + 1, NOW, &c, &err), -EACCES);
    assert_string_equal(err.msg,
                        "malformed token: header is not base64url (RFC 7515 §2, no padding)");
}

static void test_jwt_refuses_two_parts(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "two_parts",
                        "malformed token: 2 parts, a JWS has 3 (header.payload.signature)");
}

static void test_jwt_refuses_four_parts(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "four_parts",
                        "malformed token: 4 parts, a JWS has 3 (header.payload.signature)");
}

static void test_jwt_refuses_empty_token(void **state)
{
    struct rc_jwt_claims c;
    struct rc_err err = {0};

    (void)state;
    assert_int_equal(rc_jwt_verify(V.hs, "", 0, NOW, &c, &err), -EACCES);
    assert_string_equal(err.msg, "token is empty");
}

static void test_jwt_refuses_huge_token(void **state)
{
    static char tok[TOKEN_CAP];
    char want[96];
    size_t n = load_token("huge", tok, sizeof(tok));

    (void)state;
    snprintf(want, sizeof(want), "token too large: %zu bytes, max 8192", n);
    expect_unauthorized(V.hs, "huge", want);
}

static void test_jwt_accepts_token_of_exactly_max_size(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "max_size", &c);
    assert_string_equal(c.sub, "alice");
}

static void test_jwt_refuses_token_one_byte_over_max_size(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "max_size_plus_one", "token too large: 8193 bytes, max 8192");
}

static void test_jwt_checks_size_before_anything_else(void **state)
{
    static char junk[RC_JWT_MAX_TOKEN + 1];
    struct rc_jwt_claims c;
    struct rc_err err = {0};

    (void)state;
    memset(junk, '*', sizeof(junk));
    assert_int_equal(rc_jwt_verify(V.nokeys, junk, sizeof(junk), NOW, &c, &err), -EACCES);
    assert_string_equal(err.msg, "token too large: 8193 bytes, max 8192");
}

static void test_jwt_refuses_header_that_is_not_json(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "header_not_json", "malformed token: header is not JSON");
}

static void test_jwt_refuses_header_that_is_not_an_object(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "header_not_object", "malformed token: header is not a JSON object");
}

static void test_jwt_refuses_payload_that_is_not_an_object(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "payload_not_object",
                        "malformed token: payload is not a JSON object");
}

/* Every proper prefix of a valid token is refused, whatever its shape. */
static void refuse_every_prefix(const struct rc_jwt_verifier *v, const char *name)
{
    static char tok[TOKEN_CAP];
    size_t n = load_token(name, tok, sizeof(tok));

    for (size_t i = 0; i < n; i++) {
        struct rc_jwt_claims c;
        struct rc_err err = {0};

        if (rc_jwt_verify(v, tok, i, NOW, &c, &err) != -EACCES)
            fail_msg("%s: prefix of %zu bytes was accepted", name, i);
        assert_int_equal(err.status, 401);
        assert_int_equal(c.sub[0], '\0');
    }
}

static void test_jwt_refuses_every_prefix_of_valid_hs256(void **state)
{
    (void)state;
    refuse_every_prefix(V.hs, "hs256_valid");
}

static void test_jwt_refuses_every_prefix_of_valid_es256(void **state)
{
    (void)state;
    refuse_every_prefix(V.es, "es256_valid");
}

/* Changing any one byte of a valid token to any other byte is refused: base64url decoding is
 * canonical, so no two encodings share a signature. */
static void refuse_every_byte_change(const struct rc_jwt_verifier *v, const char *name,
                                     const char *replacements)
{
    static char tok[TOKEN_CAP];
    size_t n = load_token(name, tok, sizeof(tok));

    for (size_t i = 0; i < n; i++) {
        char orig = tok[i];

        for (const char *r = replacements; *r; r++) {
            struct rc_jwt_claims c;
            struct rc_err err = {0};

            if (*r == orig)
                continue;
            tok[i] = *r;
            if (rc_jwt_verify(v, tok, n, NOW, &c, &err) != -EACCES)
                fail_msg("%s: byte %zu changed to '%c' was accepted", name, i, *r);
        }
        tok[i] = orig;
    }
}

static const char b64url_and_more[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";

static void test_jwt_refuses_every_byte_change_of_valid_hs256(void **state)
{
    (void)state;
    refuse_every_byte_change(V.hs, "hs256_valid", b64url_and_more);
}

static void test_jwt_refuses_every_byte_change_of_valid_es256(void **state)
{
    (void)state;
    refuse_every_byte_change(V.es, "es256_valid", "AQgw_-.=");
}

static void test_jwt_refuses_every_byte_change_of_valid_rs256(void **state)
{
    (void)state;
    refuse_every_byte_change(V.rs, "rs256_valid", "Ah_.");
}

/* ---- claims ----------------------------------------------------------------------------- */

static void test_jwt_refuses_missing_sub(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "missing_sub", "sub claim is missing; the token must name the user");
}

static void test_jwt_refuses_sub_that_is_not_a_string(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "sub_not_string", "sub claim is not a string");
}

static void test_jwt_refuses_sub_over_128_bytes(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "sub_too_long", "sub claim is 129 bytes; use 1..128");
}

static void test_jwt_accepts_sub_of_128_bytes(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "sub_max_len", &c);
    assert_int_equal(strlen(c.sub), 128);
    assert_int_equal(c.sub[127], 'u');
}

static void test_jwt_refuses_wrong_iss(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "wrong_iss", "iss claim does not match the configured issuer");
}

static void test_jwt_refuses_missing_iss_when_required(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "missing_iss", "iss claim is missing; this server requires it");
}

static void test_jwt_ignores_iss_when_not_configured(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs0, "wrong_iss", &c);
    assert_string_equal(c.sub, "alice");
}

static void test_jwt_refuses_wrong_aud(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "wrong_aud", "aud claim does not include the configured audience");
}

static void test_jwt_accepts_aud_array_containing_audience(void **state)
{
    struct rc_jwt_claims c;

    (void)state;
    expect_ok(V.hs, "aud_array", &c);
    assert_string_equal(c.sub, "alice");
}

static void test_jwt_refuses_aud_array_without_audience(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "aud_array_wrong",
                        "aud claim does not include the configured audience");
}

static void test_jwt_refuses_more_than_16_topics(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "topics_too_many", "topics claim has 17 entries, max 16");
}

static void test_jwt_refuses_topics_that_is_not_an_array(void **state)
{
    (void)state;
    expect_unauthorized(V.hs, "topics_not_array",
                        "topics claim is not an array of topic pattern strings");
}

static void test_jwt_zeroes_claims_on_failure(void **state)
{
    struct rc_jwt_claims c;
    struct rc_err err = {0};

    (void)state;
    memset(&c, 0xAA, sizeof(c));
    assert_int_equal(verify_named(V.hs, "wrong_aud", &c, &err), -EACCES);
    assert_int_equal(c.sub[0], '\0');
    assert_int_equal(c.n_topics, 0);
    assert_false(c.has_exp);
}

static void test_jwt_refuses_all_tokens_when_configured_iss_is_too_long(void **state)
{
    char iss[RC_JWT_CHECK_MAX + 2];
    struct rc_jwt_verifier *v = make_verifier(true, NULL, NULL, 0, false);

    (void)state;
    assert_non_null(v);
    memset(iss, 'i', sizeof(iss) - 1);
    iss[sizeof(iss) - 1] = '\0';
    rc_jwt_verifier_set_checks(v, 0, iss, NULL);
    expect_unauthorized(
        v, "hs256_valid",
        "jwt: the configured iss is longer than 255 bytes; shorten it in the config");
    rc_jwt_verifier_free(v);
}

/* ---- setup errors ----------------------------------------------------------------------- */

/* The message must be before + the key's path + after. */
static void expect_pem_refused(const char *file, int want_rc, const char *before, const char *after)
{
    struct rc_err err = {0};
    struct rc_jwt_verifier *v = rc_jwt_verifier_new(&err);
    char path[PATH_MAX], want[PATH_MAX + sizeof(err.msg)];

    assert_non_null(v);
    path_in_dir(path, sizeof(path), file);
    snprintf(want, sizeof(want), "%s%s%s", before, path, after);
    assert_int_equal(rc_jwt_verifier_load_pem(v, path, &err), want_rc);
    assert_string_equal(err.code, RC_JWT_ERR_CONFIG);
    assert_string_equal(err.msg, want);
    assert_false(rc_jwt_verifier_has_key(v));
    rc_jwt_verifier_free(v);
}

static void test_jwt_refuses_short_hs256_secret(void **state)
{
    static const uint8_t secret[16] = {1};
    struct rc_err err = {0};
    struct rc_jwt_verifier *v = rc_jwt_verifier_new(&err);

    (void)state;
    assert_non_null(v);
    assert_int_equal(rc_jwt_verifier_set_hs256(v, secret, sizeof(secret), &err), -EINVAL);
    assert_string_equal(err.msg,
                        "jwt: HS256 secret is 16 bytes; use 32..4096 random bytes (RFC 7518 §3.2)");
    assert_false(rc_jwt_verifier_has_key(v));
    rc_jwt_verifier_free(v);
}

static void test_jwt_refuses_rsa_key_under_2048_bits(void **state)
{
    (void)state;
    expect_pem_refused("rsa1024_pub.pem", -EINVAL, "jwt: RSA key in ",
                       " has 1024 bits; use 2048..8192 bits for RS256");
}

static void test_jwt_refuses_ec_key_not_on_p256(void **state)
{
    (void)state;
    expect_pem_refused("p384_pub.pem", -EINVAL, "jwt: EC key in ",
                       " is on curve secp384r1; ES256 needs P-256 (prime256v1)");
}

static void test_jwt_refuses_ed25519_key(void **state)
{
    (void)state;
    expect_pem_refused("ed25519_pub.pem", -EINVAL, "jwt: key in ",
                       " is of type ED25519; use an RSA key (RS256) or an EC P-256 key (ES256)");
}

static void test_jwt_refuses_private_key_file(void **state)
{
    (void)state;
    expect_pem_refused(
        "rsa_priv.pem", -EINVAL, "jwt: ",
        " holds a private key; give only the public key (openssl pkey -in KEY.pem -pubout)");
}

static void test_jwt_refuses_file_without_public_key(void **state)
{
    (void)state;
    expect_pem_refused("hs256_valid.jwt", -EINVAL,
                       "jwt: no usable \"BEGIN PUBLIC KEY\" PEM block in ",
                       "; export one with openssl pkey -in KEY.pem -pubout");
}

static void test_jwt_reports_missing_key_file(void **state)
{
    (void)state;
    expect_pem_refused("no_such.pem", -ENOENT, "jwt: cannot open key file ",
                       ": No such file or directory");
}

static void test_jwt_loads_pem_from_memory(void **state)
{
    static char pem[8192];
    struct rc_err err = {0};
    struct rc_jwt_verifier *v = rc_jwt_verifier_new(&err);
    struct rc_jwt_claims c;
    size_t n = read_file("ec_pub.pem", pem, sizeof(pem));

    (void)state;
    assert_non_null(v);
    assert_int_equal(rc_jwt_verifier_load_pem_buf(v, pem, n, "inline key", &err), 0);
    assert_true(rc_jwt_verifier_has_key(v));
    assert_int_equal(verify_named(v, "es256_valid", &c, &err), 0);
    assert_string_equal(c.sub, "alice");
    rc_jwt_verifier_free(v);
}

/* ---- threads ---------------------------------------------------------------------------- */

static char g_thread_tokens[3][TOKEN_CAP];
static size_t g_thread_token_n[3];

static void *verify_loop(void *arg)
{
    intptr_t failures = 0;

    (void)arg;
    for (int i = 0; i < 30; i++) {
        for (int k = 0; k < 3; k++) {
            struct rc_jwt_claims c;
            struct rc_err err = {0};

            if (rc_jwt_verify(V.all, g_thread_tokens[k], g_thread_token_n[k], NOW, &c, &err) != 0 ||
                strcmp(c.sub, "alice") != 0)
                failures++;
        }
    }
    return (void *)failures;
}

static void test_jwt_verifies_concurrently_from_threads(void **state)
{
    static const char *const names[3] = {"hs256_valid", "rs256_valid", "es256_valid"};
    pthread_t th[4];

    (void)state;
    for (int k = 0; k < 3; k++)
        g_thread_token_n[k] = load_token(names[k], g_thread_tokens[k], TOKEN_CAP);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *failures = NULL;

        assert_int_equal(pthread_join(th[i], &failures), 0);
        assert_int_equal((intptr_t)failures, 0);
    }
}

/* ---- signing (jwt_sign.c) ------------------------------------------------------------- */

/* A token signed by s verifies with v and carries the claims given. */
static void expect_signed_roundtrip(struct rc_jwt_signer *s, const struct rc_jwt_verifier *v,
                                    enum rc_jwt_alg alg)
{
    struct rc_err err = {0};
    struct rc_jwt_claims c;
    int64_t now = (int64_t)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:[s,s]}", "sub", "signer", "iss", ISS, "aud",
                               AUD, "exp", (json_int_t)(now + 600), "topics", "a.>", "b.c");
    assert_non_null(s);
    assert_int_equal(rc_jwt_signer_alg(s), alg);
    char *tok = rc_jwt_sign(s, claims, &err);
    assert_non_null(tok);
    assert_int_equal(rc_jwt_verify(v, tok, strlen(tok), now, &c, &err), 0);
    assert_int_equal(c.alg, alg);
    assert_string_equal(c.sub, "signer");
    assert_int_equal(c.exp, now + 600);
    assert_int_equal(c.n_topics, 2);
    assert_string_equal(c.topics[1], "b.c");
    json_t *back = rc_jwt_payload(tok, strlen(tok));
    assert_true(json_equal(back, claims)); /* every claim as signed */
    json_decref(back);
    /* one flipped signature character: refused */
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(rc_jwt_verify(v, tok, n, now, &c, &err), -EACCES);
    free(tok);
    json_decref(claims);
}

static void test_jwt_signs_hs256_that_verifies(void **state)
{
    (void)state;
    uint8_t secret[64];
    size_t n = read_file("hs256.secret", (char *)secret, sizeof(secret));
    struct rc_err err = {0};
    struct rc_jwt_signer *s = rc_jwt_signer_hs256(secret, n, &err);
    expect_signed_roundtrip(s, V.hs, RC_JWT_HS256);
    rc_jwt_signer_free(s);
    assert_null(rc_jwt_signer_hs256(secret, 31, &err)); /* too short a secret */
    assert_non_null(strstr(err.msg, "32"));
}

static void test_jwt_signs_rs256_and_es256_from_private_keys(void **state)
{
    (void)state;
    char path[PATH_MAX];
    struct rc_err err = {0};
    path_in_dir(path, sizeof(path), "rsa_priv.pem");
    struct rc_jwt_signer *s = rc_jwt_signer_pem(path, &err);
    expect_signed_roundtrip(s, V.rs, RC_JWT_RS256);
    rc_jwt_signer_free(s);
    path_in_dir(path, sizeof(path), "ec_priv.pem");
    s = rc_jwt_signer_pem(path, &err);
    expect_signed_roundtrip(s, V.es, RC_JWT_ES256);
    rc_jwt_signer_free(s);
}

static void test_jwt_signer_refuses_public_keys_and_missing_files(void **state)
{
    (void)state;
    char path[PATH_MAX];
    struct rc_err err = {0};
    path_in_dir(path, sizeof(path), "rsa_pub.pem");
    assert_null(rc_jwt_signer_pem(path, &err));
    assert_non_null(strstr(err.msg, "private key"));
    path_in_dir(path, sizeof(path), "no_such.pem");
    assert_null(rc_jwt_signer_pem(path, &err));
    assert_non_null(strstr(err.msg, "no_such.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_accepts_valid_hs256),
        cmocka_unit_test(test_jwt_signs_hs256_that_verifies),
        cmocka_unit_test(test_jwt_signs_rs256_and_es256_from_private_keys),
        cmocka_unit_test(test_jwt_signer_refuses_public_keys_and_missing_files),
        cmocka_unit_test(test_jwt_accepts_valid_rs256),
        cmocka_unit_test(test_jwt_accepts_valid_es256),
        cmocka_unit_test(test_jwt_accepts_each_alg_with_all_keys_configured),
        cmocka_unit_test(test_jwt_accepts_minimal_token_without_optional_claims),
        cmocka_unit_test(test_jwt_reads_token_only_up_to_len),
        cmocka_unit_test(test_jwt_refuses_expired_token),
        cmocka_unit_test(test_jwt_accepts_exp_within_leeway),
        cmocka_unit_test(test_jwt_refuses_exp_within_leeway_when_leeway_is_zero),
        cmocka_unit_test(test_jwt_refuses_exp_equal_to_now),
        cmocka_unit_test(test_jwt_refuses_not_yet_valid_token),
        cmocka_unit_test(test_jwt_accepts_nbf_within_leeway),
        cmocka_unit_test(test_jwt_refuses_nbf_within_leeway_when_leeway_is_zero),
        cmocka_unit_test(test_jwt_refuses_exp_that_is_not_a_number),
        cmocka_unit_test(test_jwt_truncates_real_exp),
        cmocka_unit_test(test_jwt_treats_negative_leeway_as_zero),
        cmocka_unit_test(test_jwt_refuses_wrong_hs256_signature),
        cmocka_unit_test(test_jwt_refuses_wrong_rs256_signature),
        cmocka_unit_test(test_jwt_refuses_wrong_es256_signature),
        cmocka_unit_test(test_jwt_refuses_es256_signature_in_der_form),
        cmocka_unit_test(test_jwt_refuses_hs256_signature_of_wrong_length),
        cmocka_unit_test(test_jwt_refuses_alg_none),
        cmocka_unit_test(test_jwt_refuses_alg_none_in_any_case),
        cmocka_unit_test(test_jwt_refuses_header_without_alg),
        cmocka_unit_test(test_jwt_refuses_alg_that_is_not_a_string),
        cmocka_unit_test(test_jwt_refuses_unsupported_alg),
        cmocka_unit_test(test_jwt_refuses_crit_header),
        cmocka_unit_test(test_jwt_refuses_hs256_signed_with_rsa_public_key),
        cmocka_unit_test(test_jwt_refuses_hs256_signed_with_rsa_public_key_when_secret_set),
        cmocka_unit_test(test_jwt_refuses_rs256_without_rsa_key),
        cmocka_unit_test(test_jwt_refuses_es256_without_ec_key),
        cmocka_unit_test(test_jwt_mismatch_names_every_configured_key),
        cmocka_unit_test(test_jwt_refuses_everything_without_keys),
        cmocka_unit_test(test_jwt_refuses_invalid_base64url_character),
        cmocka_unit_test(test_jwt_refuses_base64_padding),
        cmocka_unit_test(test_jwt_refuses_standard_base64_alphabet),
        cmocka_unit_test(test_jwt_refuses_base64url_of_length_4k_plus_1),
        cmocka_unit_test(test_jwt_refuses_two_parts),
        cmocka_unit_test(test_jwt_refuses_four_parts),
        cmocka_unit_test(test_jwt_refuses_empty_token),
        cmocka_unit_test(test_jwt_refuses_huge_token),
        cmocka_unit_test(test_jwt_accepts_token_of_exactly_max_size),
        cmocka_unit_test(test_jwt_refuses_token_one_byte_over_max_size),
        cmocka_unit_test(test_jwt_checks_size_before_anything_else),
        cmocka_unit_test(test_jwt_refuses_header_that_is_not_json),
        cmocka_unit_test(test_jwt_refuses_header_that_is_not_an_object),
        cmocka_unit_test(test_jwt_refuses_payload_that_is_not_an_object),
        cmocka_unit_test(test_jwt_refuses_every_prefix_of_valid_hs256),
        cmocka_unit_test(test_jwt_refuses_every_prefix_of_valid_es256),
        cmocka_unit_test(test_jwt_refuses_every_byte_change_of_valid_hs256),
        cmocka_unit_test(test_jwt_refuses_every_byte_change_of_valid_es256),
        cmocka_unit_test(test_jwt_refuses_every_byte_change_of_valid_rs256),
        cmocka_unit_test(test_jwt_refuses_missing_sub),
        cmocka_unit_test(test_jwt_refuses_sub_that_is_not_a_string),
        cmocka_unit_test(test_jwt_refuses_sub_over_128_bytes),
        cmocka_unit_test(test_jwt_accepts_sub_of_128_bytes),
        cmocka_unit_test(test_jwt_refuses_wrong_iss),
        cmocka_unit_test(test_jwt_refuses_missing_iss_when_required),
        cmocka_unit_test(test_jwt_ignores_iss_when_not_configured),
        cmocka_unit_test(test_jwt_refuses_wrong_aud),
        cmocka_unit_test(test_jwt_accepts_aud_array_containing_audience),
        cmocka_unit_test(test_jwt_refuses_aud_array_without_audience),
        cmocka_unit_test(test_jwt_refuses_more_than_16_topics),
        cmocka_unit_test(test_jwt_refuses_topics_that_is_not_an_array),
        cmocka_unit_test(test_jwt_zeroes_claims_on_failure),
        cmocka_unit_test(test_jwt_refuses_all_tokens_when_configured_iss_is_too_long),
        cmocka_unit_test(test_jwt_refuses_short_hs256_secret),
        cmocka_unit_test(test_jwt_refuses_rsa_key_under_2048_bits),
        cmocka_unit_test(test_jwt_refuses_ec_key_not_on_p256),
        cmocka_unit_test(test_jwt_refuses_ed25519_key),
        cmocka_unit_test(test_jwt_refuses_private_key_file),
        cmocka_unit_test(test_jwt_refuses_file_without_public_key),
        cmocka_unit_test(test_jwt_reports_missing_key_file),
        cmocka_unit_test(test_jwt_loads_pem_from_memory),
        cmocka_unit_test(test_jwt_verifies_concurrently_from_threads),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
