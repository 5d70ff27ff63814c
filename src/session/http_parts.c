/* http_parts.c - one deferred HTTP answer made of several parts: a batch of
 * publishes (POST /api/realtime/publish with "events") answers
 * {"results":[...]} once every event's own answer has come, each from
 * wherever it was computed (the topic's owner shard), in the batch's order
 * whatever order they arrive in.
 * Owner: the connection's shard thread; the list hangs off the connection's
 *   answer ring (http.c) and is freed with it (rc_http_release).
 * Bounds: n <= RC_HTTP_PARTS_MAX parts; a part is the answer's JSON (a
 *   publish answer: ~100 bytes) or an error object; a part answered twice or
 *   out of range is dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/http.h"

#include "http_response.h"

struct rc_http_parts {
    struct rc_http_parts *next;
    uint32_t serial;
    uint32_t n, got;
    size_t bytes; /* of the parts so far */
    char *part[]; /* n, NULL until answered */
};

uint32_t rc_http_defer_parts(struct rc_http_ctx *x, uint32_t n)
{
    uint32_t serial = rc_http_defer(x);
    struct rc_http_parts **head = rc_http_parts_head(x->conn);
    if (!serial || !head)
        return 0;
    struct rc_http_parts *p =
        n && n <= RC_HTTP_PARTS_MAX ? calloc(1, sizeof(*p) + (size_t)n * sizeof(p->part[0])) : NULL;
    if (!p) {
        rc_http_deferred_error(x->conn, serial, 503, "unavailable", "out of memory");
        return 0;
    }
    p->serial = serial;
    p->n = n;
    p->next = *head;
    *head = p;
    return serial;
}

void rc_http_parts_free(struct rc_http_parts *list)
{
    while (list) {
        struct rc_http_parts *next = list->next;
        for (uint32_t i = 0; i < list->n; i++)
            free(list->part[i]);
        free(list);
        list = next;
    }
}

/* Every part has come: the answer, in index order. */
static void finish(struct rc_conn *c, struct rc_http_parts *p)
{
    size_t cap = p->bytes + p->n + 16, len = 0;
    char *body = malloc(cap);
    if (body) {
        len += (size_t)snprintf(body, cap, "{\"results\":[");
        for (uint32_t i = 0; i < p->n; i++) {
            size_t k = strlen(p->part[i]);
            if (i)
                body[len++] = ',';
            memcpy(body + len, p->part[i], k);
            len += k;
        }
        memcpy(body + len, "]}", 2);
        len += 2;
        rc_http_deferred_json(c, p->serial, 200, body, len);
        free(body);
    } else {
        rc_http_deferred_error(c, p->serial, 503, "unavailable", "out of memory");
    }
}

void rc_http_part_answer(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    struct rc_http_parts **head = rc_http_parts_head(c), **at = head;
    while (at && *at && (*at)->serial != t->serial)
        at = &(*at)->next;
    if (!at || !*at || t->req_id_len == 0)
        return; /* the connection no longer waits for it */
    struct rc_http_parts *p = *at;
    char *end;
    unsigned long idx = strtoul(t->req_id, &end, 10);
    if (end != t->req_id + t->req_id_len || idx >= p->n || p->part[idx])
        return;
    char *txt;
    if (a->code) {
        char err[1024];
        size_t n = rc_http_error_json(err, sizeof(err), a->code, a->msg ? a->msg : "");
        /* {"error":{...}} -> {"error":{...},"status":N} */
        txt = malloc(n + 24);
        if (txt)
            snprintf(txt, n + 24, "%.*s,\"status\":%d}", (int)(n - 1), err, a->status);
    } else if (a->json && a->len >= 2 && a->json[0] == '{' && a->json[a->len - 1] == '}') {
        /* an object answer gets its status too: {...,"status":N} */
        size_t cap = a->len + 24;
        txt = malloc(cap);
        if (txt)
            snprintf(txt, cap, "%.*s%s\"status\":%d}", (int)(a->len - 1), a->json,
                     a->len > 2 ? "," : "", a->status);
    } else {
        txt = a->json && a->len ? strndup(a->json, a->len) : strdup("null");
    }
    if (!txt) {
        *at = p->next;
        p->next = NULL;
        rc_http_deferred_error(c, p->serial, 503, "unavailable", "out of memory");
        rc_http_parts_free(p);
        return;
    }
    p->part[idx] = txt;
    p->bytes += strlen(txt);
    if (++p->got < p->n)
        return;
    *at = p->next; /* unlinked before answering: the answer may free the ring */
    p->next = NULL;
    finish(c, p);
    rc_http_parts_free(p);
}

void rc_http_part_error(struct rc_conn *c, uint32_t serial, uint32_t idx, int status,
                        const char *code, const char *msg)
{
    struct rc_ticket t = {.conn_id = c->id, .serial = serial, .kind = RC_TICKET_HTTP_PART};
    int n = snprintf(t.req_id, sizeof(t.req_id), "%u", idx);
    t.req_id_len = (uint8_t)(n > 0 ? n : 0);
    rc_http_part_answer(c, &t, &(struct rc_answer){.status = status, .code = code, .msg = msg});
}
