/* webhook_internal.h - private to src/webhook/: one queued event (struct
 * wh_item) and the batch body and signature builders (webhook_body.c) that
 * the webhook thread (webhook.c) and the unit tests use.
 * Owner: an item is written by the shard that emits it, then belongs to the
 *   webhook thread from the moment it is pushed on the MPSC queue.
 * Lifetime: the thread frees an item once its event is in a batch body (or
 *   dropped); the body string lives until its batch gets a 2xx. */
#ifndef RINGCAST_WEBHOOK_INTERNAL_H
#define RINGCAST_WEBHOOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ringcast/mpsc.h"
#include "ringcast/webhook.h"

#define WH_USER_MAX 129 /* like struct rc_conn's user_id */
#define WH_SIG_LEN 71   /* "sha256=" + 64 hex digits */

struct wh_item {
    struct rc_mpsc_node node; /* first: the queue's link */
    struct wh_item *next;     /* the webhook thread's FIFO */
    uint64_t seq;             /* set by the webhook thread: the id's counter */
    uint64_t conn_id;
    uint64_t time_ms;  /* unix ms */
    uint64_t taken_ms; /* monotonic ms the thread took it (webhook_flush counts from it) */
    uint8_t type;      /* enum rc_webhook_type */
    uint8_t reason;    /* enum rc_conn_close_reason */
    char user_id[WH_USER_MAX];
    char topic[RC_WEBHOOK_TOPIC_MAX];
};

/* The JSON body of a batch: {"node", "dropped", "events": [...]} with up to n
 * items from first on (following next); each event's id is "<prefix>-<seq>".
 * Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *rc_webhook_body(const char *node, const char *prefix, uint64_t dropped,
                      const struct wh_item *first, size_t n);

/* out = "sha256=" + hex(HMAC-SHA256(secret, "<ts>.<body>")). 0, or -EIO if
 * libcrypto fails. */
int rc_webhook_sign(const char *secret, size_t secret_len, int64_t ts, const char *body,
                    size_t body_len, char out[WH_SIG_LEN + 1]);

#endif /* RINGCAST_WEBHOOK_INTERNAL_H */
