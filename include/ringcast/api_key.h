/* api_key.h - the api_keys item syntax: "KEY" or "KEY:SCOPE+SCOPE", and the
 * scopes a key grants. Pure and header-only (the core layer): the config module
 * validates items with it, the auth module (auth.h) builds its key table with it.
 * Owner: none (no state). */
#ifndef RINGCAST_API_KEY_H
#define RINGCAST_API_KEY_H

#include <string.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_AUTH_API_KEY_MIN 16  /* bytes of an API key (without its scopes) */
#define RC_AUTH_API_KEY_MAX 511 /* bytes of an api_keys item */

/* ---- API key scopes ------------------------------------------------------------------ */

enum rc_auth_scope {
    RC_AUTH_SCOPE_PUBLISH = 1u << 0, /* POST publish / broadcast */
    RC_AUTH_SCOPE_NOTIFY = 1u << 1,  /* notifications for users */
    RC_AUTH_SCOPE_ADMIN = 1u << 2,   /* stats and administration */
    RC_AUTH_SCOPE_ALL = (1u << 3) - 1,
};

/* Split one api_keys item, "KEY" (every scope) or "KEY:SCOPE+SCOPE..." with scopes publish,
 * notify, admin. The key is at least RC_AUTH_API_KEY_MIN bytes of printable ASCII without
 * space, '"', '\\' or ':'. Returns NULL with *key_len and *scopes set, or the reason the item
 * is refused (to follow the item's name in a message). Header-only (core) so that the config
 * module validates items without depending on the auth layer. */
static inline const char *rc_auth_api_key_split(const char *item, size_t *key_len, unsigned *scopes)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {{"publish", RC_AUTH_SCOPE_PUBLISH},
                 {"notify", RC_AUTH_SCOPE_NOTIFY},
                 {"admin", RC_AUTH_SCOPE_ADMIN}};
    const char *colon = strchr(item, ':'), *p;
    size_t klen = colon ? (size_t)(colon - item) : strlen(item);

    if (klen > RC_AUTH_API_KEY_MAX)
        return "is too long; use at most 511 bytes";
    for (p = item; p < item + klen; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || (unsigned char)*p >= 0x7f)
            return "contains a space, quote, backslash or non-ASCII byte; use printable "
                   "ASCII (e.g. hex or base64url)";
    if (klen < RC_AUTH_API_KEY_MIN)
        return "is shorter than 16 characters; use a long random key";
    *key_len = klen;
    if (!colon) {
        *scopes = RC_AUTH_SCOPE_ALL;
        return NULL;
    }
    *scopes = 0;
    for (p = colon + 1;;) {
        size_t n = strcspn(p, "+");
        unsigned bit = 0;
        for (size_t i = 0; i < RC_ARRAY_LEN(words); i++)
            if (strlen(words[i].word) == n && memcmp(p, words[i].word, n) == 0)
                bit = words[i].bit;
        if (!bit)
            return "has an unknown or empty scope after ':'; write KEY:publish+notify+admin "
                   "with any of publish, notify, admin (no suffix = all scopes)";
        *scopes |= bit;
        if (p[n] == '\0')
            return NULL;
        p += n + 1;
    }
}

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_API_KEY_H */
