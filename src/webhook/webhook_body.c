/* webhook_body.c - what a webhook POST carries: the JSON batch body, the words
 * of the event types and close reasons, and the HMAC-SHA256 signature. Pure
 * functions of their arguments; called on the webhook thread (and by tests). */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_internal.h"

static const char *const type_words[RC_WEBHOOK_NTYPES] = {
    [RC_WEBHOOK_CONNECT] = "connect",
    [RC_WEBHOOK_DISCONNECT] = "disconnect",
    [RC_WEBHOOK_SUBSCRIBE] = "subscribe",
    [RC_WEBHOOK_UNSUBSCRIBE] = "unsubscribe",
    [RC_WEBHOOK_PRESENCE_JOIN] = "presence_join",
    [RC_WEBHOOK_PRESENCE_LEAVE] = "presence_leave",
};

/* Extend with enum rc_conn_close_reason (conn.h); a missing word reads "server_close". */
static const char *const reason_words[RC_CLOSE_NREASONS] = {
    [RC_CLOSE_UNSET] = "server_close",
    [RC_CLOSE_CLIENT] = "client_close",
    [RC_CLOSE_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
    [RC_CLOSE_SLOW_CONSUMER] = "slow_consumer",
    [RC_CLOSE_DRAIN] = "drain",
    [RC_CLOSE_SERVER] = "server_close",
    [RC_CLOSE_CONNECTION_LIMIT] = "connection_limit",
    [RC_CLOSE_ADMIN] = "admin_disconnect",
};

const char *rc_webhook_type_name(enum rc_webhook_type t)
{
    return (unsigned)t < RC_WEBHOOK_NTYPES ? type_words[t] : "?";
}

const char *rc_webhook_reason_name(enum rc_conn_close_reason r)
{
    if ((unsigned)r >= RC_CLOSE_NREASONS || !reason_words[r])
        return "server_close";
    return reason_words[r];
}

static json_t *event_json(const char *prefix, const struct wh_item *it)
{
    char id[160], conn[RC_CONN_ID_HEX + 1];
    snprintf(id, sizeof(id), "%s-%llu", prefix, (unsigned long long)it->seq);
    rc_conn_id_format(it->conn_id, conn);
    json_t *e = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "type",
                          rc_webhook_type_name((enum rc_webhook_type)it->type), "time",
                          (json_int_t)it->time_ms, "connection_id", conn);
    if (!e)
        return NULL;
    int rc =
        json_object_set_new(e, "user_id", it->user_id[0] ? json_string(it->user_id) : json_null());
    if (rc == 0 && it->topic[0])
        rc = json_object_set_new(e, "topic", json_string(it->topic));
    if (rc == 0 && it->type == RC_WEBHOOK_DISCONNECT)
        rc = json_object_set_new(
            e, "reason",
            json_string(rc_webhook_reason_name((enum rc_conn_close_reason)it->reason)));
    if (rc < 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

char *rc_webhook_body(const char *node, const char *prefix, uint64_t dropped,
                      const struct wh_item *first, size_t n)
{
    json_t *events = json_array();
    json_t *body = json_pack("{s:s, s:I, s:o}", "node", node, "dropped", (json_int_t)dropped,
                             "events", events);
    if (!body)
        return NULL;
    const struct wh_item *it = first;
    for (size_t i = 0; i < n && it; i++, it = it->next) {
        json_t *e = event_json(prefix, it);
        if (!e || json_array_append_new(events, e) < 0) {
            json_decref(body);
            return NULL;
        }
    }
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return txt;
}

int rc_webhook_sign(const char *secret, size_t secret_len, int64_t ts, const char *body,
                    size_t body_len, char out[WH_SIG_LEN + 1])
{
    char tsbuf[24];
    int tn = snprintf(tsbuf, sizeof(tsbuf), "%lld.", (long long)ts);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    /* EVP_MAC, not one-shot HMAC(): the timestamp and the body are two pieces */
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)tsbuf, (size_t)tn) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
             EVP_MAC_final(ctx, mac, &outl, sizeof(mac)) == 1 && outl == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    if (!ok)
        return -EIO;
    maclen = (unsigned)outl;
    memcpy(out, "sha256=", 7);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < maclen; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * maclen] = '\0';
    return 0;
}
