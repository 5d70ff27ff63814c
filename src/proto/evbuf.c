/* evbuf.c - allocation, encoding and release of shared event buffers.
 * Encoding runs once per event on the owner shard, before the evbuf is
 * posted; afterwards it is read-only (see evbuf.h). */
#include <errno.h>
#include <stdlib.h>

#include "ringcast/evbuf.h"
#include "ringcast/ws_deflate.h"
#include "ringcast/ws_frame.h"

/* Set once at start (rc_evbuf_set_compress_min), read-only afterwards. */
static size_t compress_min;

void rc_evbuf_set_compress_min(size_t min)
{
    compress_min = min;
}

/* zlib level of the once-per-event compression: the default's ratio, paid
 * once per event, not per delivery */
#define Z_LEVEL 6

/* A post left in an inbox at shutdown: drop its reference. */
static void discard_post(struct rc_post *p)
{
    rc_evbuf_unref(RC_CONTAINER_OF(p, struct rc_evbuf_post, post)->ev);
}

struct rc_evbuf *rc_evbuf_new(uint32_t nposts)
{
    struct rc_evbuf *ev = calloc(1, sizeof(*ev) + nposts * sizeof(ev->posts[0]));
    if (!ev)
        return NULL;
    atomic_init(&ev->refs, 1);
    ev->nposts = nposts;
    for (uint32_t i = 0; i < nposts; i++) {
        ev->posts[i].post.discard = discard_post;
        ev->posts[i].ev = ev;
    }
    return ev;
}

void rc_evbuf_free_(struct rc_evbuf *ev)
{
    json_decref(ev->data);
    free(ev->topic);
    free(ev->type);
    free(ev->ws);
    free(ev->wsz);
    free(ev->sse);
    free(ev->recipients);
    free(ev->exclude);
    for (size_t i = 0; i < ev->nusers; i++)
        free(ev->users[i]);
    free(ev->users);
    free(ev->exclude_user);
    free(ev);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rc_evbuf_set_users(struct rc_evbuf *ev, char *const *users, size_t n, const char *exclude)
{
    if (exclude && !(ev->exclude_user = strdup(exclude)))
        return -ENOMEM;
    if (!users)
        return 0;
    ev->users = calloc(n ? n : 1, sizeof(*ev->users));
    if (!ev->users)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ev->users[i] = strdup(users[i]);
        if (!ev->users[i])
            return -ENOMEM;
        ev->nusers = i + 1;
    }
    qsort(ev->users, ev->nusers, sizeof(*ev->users), cmp_str);
    return 0;
}

bool rc_evbuf_user_allowed(const struct rc_evbuf *ev, const char *user)
{
    if (ev->exclude_user && strcmp(ev->exclude_user, user) == 0)
        return false;
    if (!ev->users)
        return true;
    if (!user[0])
        return false;
    return bsearch(&user, ev->users, ev->nusers, sizeof(*ev->users), cmp_str) != NULL;
}

/* A small growable byte buffer for encoding. */
struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    size_t need;
    if (b->oom || !rc_add_size(b->n, more, &need)) {
        b->oom = true;
        return;
    }
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void sb_put(struct sbuf *b, const void *p, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    sb_put(data, buf, size);
    return 0;
}

/* JSON text of a value, compact, appended. */
static void sb_json(struct sbuf *b, const json_t *v)
{
    if (!v) {
        sb_str(b, "null");
        return;
    }
    json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void sb_json_str(struct sbuf *b, const char *s)
{
    json_t *j = json_string(s);
    if (!j) {
        b->oom = true;
        return;
    }
    sb_json(b, j);
    json_decref(j);
}

/* The permessage-deflate image of the WebSocket message payload[0..n) (the
 * prefix without its suffix for a topic event). Failing to compress is not an
 * error: the event then goes uncompressed. */
static void encode_compressed(struct rc_evbuf *ev, const uint8_t *payload, size_t n)
{
    uint8_t *z = NULL;
    size_t zn = 0;
    bool topic = ev->kind == RC_EVENT_TOPIC;
    size_t plain = n + (topic ? RC_WS_SUFFIX_LEN : 0);
    if (!compress_min || plain < compress_min ||
        rc_ws_deflate_compress(payload, n, Z_LEVEL, &z, &zn) < 0)
        return;
    size_t zpayload = topic ? zn + RC_WS_SUFFIX_LEN + 1 : zn - 4;
    if (zpayload >= plain) {
        free(z);
        return;
    }
    if (topic) {
        /* the sync flush's empty stored block becomes one holding the suffix:
         * LEN, then NLEN = ~LEN (RFC 1951 3.2.4) */
        z[zn - 4] = RC_WS_SUFFIX_LEN & 0xff;
        z[zn - 3] = 0;
        z[zn - 2] = (uint8_t)~RC_WS_SUFFIX_LEN;
        z[zn - 1] = 0xff;
    } else {
        zn -= 4; /* RFC 7692 7.2.1: drop the trailing 00 00 ff ff */
    }
    uint8_t *img = malloc(10 + zn);
    if (!img) {
        free(z);
        return;
    }
    size_t hl = rc_ws_frame_header(img, RC_WS_OP_TEXT | RC_WS_RSV1, zpayload, true);
    memcpy(img + hl, z, zn);
    free(z);
    ev->wsz = img;
    ev->wsz_len = hl + zn;
    ev->ws_plain = plain;
}

int rc_evbuf_encode(struct rc_evbuf *ev, const char *type, json_t *data, const char *extra_json,
                    const char *sse_pre)
{
    struct sbuf body = {0};
    uint8_t hdr[10];

    /* the JSON object shared by both formats, up to where they differ */
    sb_str(&body, "{\"id\":\"");
    sb_str(&body, ev->id);
    sb_str(&body, "\"");
    if (ev->topic) {
        sb_str(&body, ",\"topic\":");
        sb_json_str(&body, ev->topic);
        sb_str(&body, ",\"collection\":");
        sb_json_str(&body, ev->topic);
    }
    sb_str(&body, ",\"type\":");
    sb_json_str(&body, type);
    sb_str(&body, ",\"data\":");
    sb_json(&body, data);
    if (extra_json)
        sb_str(&body, extra_json); /* ",\"priority\":\"normal\"..." for seed-001 events */
    if (ev->kind == RC_EVENT_TOPIC)
        sb_str(&body, ",\"subscription\":");
    if (body.oom) {
        free(body.p);
        return -ENOMEM;
    }

    /* WebSocket: {"type":"event","data":<body>[suffix]} */
    static const char ws_open[] = "{\"type\":\"event\",\"data\":";
    size_t ws_payload = sizeof(ws_open) - 1 + body.n;
    ws_payload += ev->kind == RC_EVENT_TOPIC ? RC_WS_SUFFIX_LEN : 2; /* "}}" */
    size_t hl = rc_ws_frame_header(hdr, 1 /* text */, ws_payload, true);
    struct sbuf ws = {0};
    sb_put(&ws, hdr, hl);
    sb_put(&ws, ws_open, sizeof(ws_open) - 1);
    sb_put(&ws, body.p, body.n);
    if (ev->kind != RC_EVENT_TOPIC)
        sb_str(&ws, "}}");

    /* SSE: id/event/data lines */
    struct sbuf sse = {0};
    if (sse_pre)
        sb_str(&sse, sse_pre);
    sb_str(&sse, "id: ");
    sb_str(&sse, ev->id);
    sb_str(&sse, "\nevent: ");
    sb_str(&sse, type);
    sb_str(&sse, "\ndata: ");
    sb_put(&sse, body.p, body.n);
    if (ev->kind != RC_EVENT_TOPIC)
        sb_str(&sse, "}\n\n");
    free(body.p);
    if (ws.oom || sse.oom) {
        free(ws.p);
        free(sse.p);
        return -ENOMEM;
    }
    ev->type = strdup(type);
    if (!ev->type) {
        free(ws.p);
        free(sse.p);
        return -ENOMEM;
    }
    ev->ws = (uint8_t *)ws.p;
    ev->ws_len = ws.n;
    encode_compressed(ev, ev->ws + hl, ws.n - hl);
    ev->sse = (uint8_t *)sse.p;
    ev->sse_len = sse.n;
    return 0;
}
