/* http_response.c - the bytes of one HTTP/1.1 response (status line, the
 * headers every answer carries, the body) and the JSON error body; http.c
 * decides when they are written (in request order, see its answer ring).
 * Runs on the connection's shard thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ringcast/config.h"
#include "ringcast/http.h"
#include "ringcast/shard.h"

#include "http_response.h"

size_t rc_http_error_json(char *out, size_t cap, const char *code, const char *msg)
{
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
    size_t n = j ? json_dumpb(j, out, cap, JSON_COMPACT) : 0;
    json_decref(j);
    if (n == 0 || n > cap) {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";
        memcpy(out, fallback, sizeof(fallback) - 1);
        return sizeof(fallback) - 1;
    }
    return n;
}

char *rc_http_build_response(struct rc_conn *c, int status, const char *ctype, const char *extra,
                             const char *body, size_t blen, bool keep_alive, bool head_only,
                             int cors, size_t *total_out)
{
    struct rc_shard *s = c->shard;
    char head[512];
    int hn;
    if (status == 204) {
        /* RFC 9110 8.6: no Content-Length (and no body) on a 204 */
        blen = 0;
        hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\nConnection: %s\r\n",
                      keep_alive ? "keep-alive" : "close");
    } else {
        hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: %s\r\n",
                      status, rc_http_reason(status), ctype, blen,
                      keep_alive ? "keep-alive" : "close");
    }
    char corsh[RC_CONFIG_ITEM_MAX + 256];
    size_t clen = rc_http_cors_headers(s->cfg, cors, corsh, sizeof(corsh));
    size_t elen = extra ? strlen(extra) : 0;
    size_t send_body = head_only ? 0 : blen;
    size_t total = (size_t)hn + clen + elen + 2 + send_body;
    char *out = malloc(total);
    if (!out)
        return NULL;
    char *w = out;
    memcpy(w, head, (size_t)hn);
    w += hn;
    memcpy(w, corsh, clen);
    w += clen;
    if (elen)
        memcpy(w, extra, elen);
    w += elen;
    memcpy(w, "\r\n", 2);
    w += 2;
    if (send_body)
        memcpy(w, body, send_body);
    if (status >= 400)
        s->ctr.http_errors++;
    *total_out = total;
    return out;
}
