/* jwt_key.c - JWT verifier setup: creation, the HS256 secret, RSA / EC P-256 public keys
 * from PEM (file or buffer) with their type and size checks, the iss/aud/leeway checks, free.
 * Token verification is in jwt.c. Contract and threading rules: include/ringcast/jwt.h;
 * the verifier layout is in jwt_internal.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt_internal.h"
#include "ringcast/jwt.h"

struct rc_jwt_verifier *rc_jwt_verifier_new(struct rc_err *err)
{
    struct rc_jwt_verifier *v = calloc(1, sizeof(*v));

    if (!v) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        return NULL;
    }
    v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!v->sha256) {
        ERR_clear_error();
        free(v);
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: OpenSSL has no SHA256; check the OpenSSL installation");
        return NULL;
    }
    /* jansson seeds its hash function on first use; do it here, before threads exist. */
    json_object_seed(0);
    return v;
}

void rc_jwt_verifier_free(struct rc_jwt_verifier *v)
{
    if (!v)
        return;
    if (v->hs_secret) {
        OPENSSL_cleanse(v->hs_secret, v->hs_len);
        free(v->hs_secret);
    }
    EVP_PKEY_free(v->rsa);
    EVP_PKEY_free(v->ec);
    EVP_MD_free(v->sha256);
    free(v);
}

int rc_jwt_verifier_set_hs256(struct rc_jwt_verifier *v, const uint8_t *secret, size_t len,
                              struct rc_err *err)
{
    uint8_t *copy;

    if (len < RC_JWT_HS_SECRET_MIN || len > RC_JWT_HS_SECRET_MAX) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: HS256 secret is %zu bytes; use %d..%d random bytes (RFC 7518 §3.2)", len,
                   RC_JWT_HS_SECRET_MIN, RC_JWT_HS_SECRET_MAX);
        return -EINVAL;
    }
    copy = malloc(len);
    if (!copy) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        return -ENOMEM;
    }
    memcpy(copy, secret, len);
    if (v->hs_secret) {
        OPENSSL_cleanse(v->hs_secret, v->hs_len);
        free(v->hs_secret);
    }
    v->hs_secret = copy;
    v->hs_len = len;
    return 0;
}

/* Run one verify init so OpenSSL 3 exports the key to its provider now, on the setup thread,
 * instead of lazily on whichever shard verifies first. */
static bool warm_key(const struct rc_jwt_verifier *v, EVP_PKEY *pk)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, v->sha256, NULL, pk) == 1;

    EVP_MD_CTX_free(ctx);
    return ok;
}

/* 0 when pk is an acceptable RSA key, else -EINVAL with err set. */
static int check_rsa(EVP_PKEY *pk, const char *what, struct rc_err *err)
{
    int bits = EVP_PKEY_get_bits(pk);

    if (bits < RC_JWT_RSA_BITS_MIN || bits > RC_JWT_RSA_BITS_MAX) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: RSA key in %s has %d bits; use %d..%d bits for RS256", what, bits,
                   RC_JWT_RSA_BITS_MIN, RC_JWT_RSA_BITS_MAX);
        return -EINVAL;
    }
    return 0;
}

/* 0 when pk is an EC key on P-256, else -EINVAL with err set. */
static int check_p256(EVP_PKEY *pk, const char *what, struct rc_err *err)
{
    char group[64] = "";
    size_t glen = 0;

    if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1)
        snprintf(group, sizeof(group), "(unnamed curve)");
    if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: EC key in %s is on curve %s; ES256 needs P-256 (prime256v1)", what, group);
        return -EINVAL;
    }
    return 0;
}

/* Take ownership of pk (an RSA or EC P-256 key) into v, or free it and set err. */
static int install_key(struct rc_jwt_verifier *v, EVP_PKEY *pk, const char *what,
                       struct rc_err *err)
{
    EVP_PKEY **slot;
    int rc;

    if (EVP_PKEY_is_a(pk, "RSA")) {
        rc = check_rsa(pk, what, err);
        slot = &v->rsa;
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        rc = check_p256(pk, what, err);
        slot = &v->ec;
    } else {
        const char *type = EVP_PKEY_get0_type_name(pk);

        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: key in %s is of type %s; use an RSA key (RS256) or an EC P-256 key "
                   "(ES256)",
                   what, type ? type : "unknown");
        rc = -EINVAL;
        slot = NULL;
    }
    if (rc == 0 && !warm_key(v, pk)) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: OpenSSL cannot verify with the key in %s; check the key", what);
        rc = -EINVAL;
    }
    if (rc != 0) {
        ERR_clear_error();
        EVP_PKEY_free(pk);
        return rc;
    }
    EVP_PKEY_free(*slot);
    *slot = pk;
    return 0;
}

int rc_jwt_verifier_load_pem_buf(struct rc_jwt_verifier *v, const char *pem, size_t len,
                                 const char *what, struct rc_err *err)
{
    BIO *bio;
    EVP_PKEY *pk;

    if (len > RC_JWT_PEM_MAX) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: %s is %zu bytes, max %d; give one PEM public key", what, len,
                   RC_JWT_PEM_MAX);
        return -EFBIG;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        return -ENOMEM;
    }
    pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        ERR_clear_error();
        if (memmem(pem, len, "PRIVATE KEY", 11))
            rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                       "jwt: %s holds a private key; give only the public key "
                       "(openssl pkey -in KEY.pem -pubout)",
                       what);
        else
            rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                       "jwt: no usable \"BEGIN PUBLIC KEY\" PEM block in %s; export one with "
                       "openssl pkey -in KEY.pem -pubout",
                       what);
        return -EINVAL;
    }
    return install_key(v, pk, what, err);
}

/* Read a whole small file into a malloc'd buffer; -errno with err set. */
static int read_small_file(const char *path, char **out, size_t *out_n, struct rc_err *err)
{
    struct stat st;
    char *buf;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        rc = -errno;
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG, "jwt: cannot open key file %s: %s",
                   path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > RC_JWT_PEM_MAX) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                   "jwt: key file %s is not a regular file of at most %d bytes", path,
                   RC_JWT_PEM_MAX);
        rc = -EINVAL;
        goto out_close;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG, "jwt: out of memory");
        rc = -ENOMEM;
        goto out_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            rc_err_set(err, RC_JWT_HTTP_INTERNAL, RC_JWT_ERR_CONFIG,
                       "jwt: cannot read key file %s: %s", path,
                       n < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            goto out_close;
        }
        got += (size_t)n;
    }
    *out = buf;
    *out_n = got;
out_close:
    close(fd);
    return rc;
}

int rc_jwt_verifier_load_pem(struct rc_jwt_verifier *v, const char *pem_path, struct rc_err *err)
{
    char *pem = NULL;
    size_t n = 0;
    int rc = read_small_file(pem_path, &pem, &n, err);

    if (rc != 0)
        return rc;
    rc = rc_jwt_verifier_load_pem_buf(v, pem, n, pem_path, err);
    free(pem);
    return rc;
}

static void set_check(char *dst, bool *on, const char *src, const char *name, const char **too_long)
{
    size_t n;

    *on = false;
    dst[0] = '\0';
    if (!src)
        return;
    n = strlen(src);
    if (n > RC_JWT_CHECK_MAX) {
        *too_long = name;
        return;
    }
    memcpy(dst, src, n + 1);
    *on = true;
}

void rc_jwt_verifier_set_checks(struct rc_jwt_verifier *v, int64_t leeway_s, const char *iss,
                                const char *aud)
{
    v->leeway = leeway_s > 0 ? leeway_s : 0;
    v->check_too_long = NULL;
    set_check(v->iss, &v->check_iss, iss, "iss", &v->check_too_long);
    set_check(v->aud, &v->check_aud, aud, "aud", &v->check_too_long);
}

bool rc_jwt_verifier_has_key(const struct rc_jwt_verifier *v)
{
    return v->hs_secret || v->rsa || v->ec;
}
