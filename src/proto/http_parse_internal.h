/* http_parse_internal.h - private to src/proto/http_parse.c and src/proto/http_body.c: the
 * RFC 9110 character classes that the head parser and the chunked decoder
 * (trailer fields, chunk extensions) both check bytes against.
 * http_parse.c owns the tables (rc_http_tchar_tab, rc_http_vchar_tab);
 * http_body.c only reads them.
 * Owner: none; the tables are read-only and shared by all threads.
 * Invariants: each table has 256 entries, 1 for a byte in the class, 0
 *   otherwise, so any unsigned char indexes it safely.
 * Lifetimes: static storage. Not part of the public API (see
 *   include/ringcast/http_parse.h). */
#ifndef RINGCAST_HTTP_PARSE_INTERNAL_H
#define RINGCAST_HTTP_PARSE_INTERNAL_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 9110 §5.6.2 tchar: "!#$%&'*+-.^_`|~" / DIGIT / ALPHA. */
extern const unsigned char rc_http_tchar_tab[256];
/* RFC 9110 §5.5 field value bytes: HTAB, SP, VCHAR, obs-text. No CTL, CR, LF, DEL. */
extern const unsigned char rc_http_vchar_tab[256];

static inline bool rc_http_is_tchar(char c)
{
    return rc_http_tchar_tab[(unsigned char)c] != 0;
}

/* RFC 9110 §5.6.3 OWS/BWS byte: SP or HTAB. */
static inline bool rc_http_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_HTTP_PARSE_INTERNAL_H */
