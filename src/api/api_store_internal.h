/* api_store_internal.h - private declarations shared by api_store.c (HTTP
 * routes, access checks, requests and their answers) and api_store_live.c
 * (live delivery, durable subscriptions on connections, expiry thread,
 * lifecycle). Not part of the public API (see include/ringcast/api_store.h).
 *
 * Files: api_store.c (routes, requests, answers), api_store_live.c (reply
 *   function, expiry thread, lifecycle), api_store_conn.c (the shard side:
 *   user index, durable subscriptions on connections, notification delivery).
 * Threads: struct rc_api_store_wait is allocated on a shard (rc_api_store_wait_new),
 *   owned by the store while submitted, filled and posted back by the reply
 *   function (storage thread), and run or discarded by that shard.
 * Lifetimes: whoever runs or discards a rc_api_store_wait frees it and its req. */
#ifndef RINGCAST_API_STORE_INTERNAL_H
#define RINGCAST_API_STORE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ringcast/api_store.h"
#include "ringcast/evbuf.h"
#include "ringcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_API_STORE_USER_MAX 128 /* = RC_STORE_USER_ID_MAX; conn->user_id holds 128 + NUL */

static inline int64_t rc_api_store_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* P_HTTP: answer an HTTP request with the result; P_LOAD: a connection's
 * durable subscriptions; P_METRICS: the store's stats for GET /metrics. */
enum rc_api_store_purpose { RC_API_STORE_P_HTTP, RC_API_STORE_P_LOAD, RC_API_STORE_P_METRICS };

/* A request's way back: allocated by the shard at submit, filled and posted
 * by the reply function. */
struct rc_api_store_wait {
    struct rc_post base;
    enum rc_api_store_purpose purpose;
    enum rc_store_op op;
    uint64_t conn_id;
    uint32_t serial;
    uint32_t page; /* RC_API_STORE_P_LOAD */
    /* RC_API_STORE_P_LOAD: whose subscriptions; unread count: the user */
    char user[RC_API_STORE_USER_MAX + 1];
    struct rc_store_req *req; /* the answer */
    /* RC_API_STORE_P_LOAD: the connection's greeting, and the records of the
     * pages so far (applied together once the last page is in) */
    rc_api_store_ready_fn ready;
    json_t *acc;
};

/* ---- posts from the storage and expiry threads to every shard ---- */

/* A stored notification (api_store_live.c posts it, api_store_conn.c runs it):
 * the shared evbuf, delivered to its recipients' connections on each shard. */
struct rc_api_store_notify_post {
    struct rc_post base;
    struct rc_evbuf *ev;
};

enum rc_api_store_change {
    RC_API_STORE_CHG_APPLY,
    RC_API_STORE_CHG_PAUSED,
    RC_API_STORE_CHG_DELETED,
    RC_API_STORE_CHG_EXPIRED,
};

/* A durable subscription change of one user, applied to that user's live
 * connections on each shard. */
struct rc_api_store_change_post {
    struct rc_post base;
    enum rc_api_store_change what;
    char user[RC_API_STORE_USER_MAX + 1];
    char id[RC_STORE_ID_MAX];
    char *topic;        /* RC_API_STORE_CHG_APPLY */
    char *filter;       /* RC_API_STORE_CHG_APPLY: payload_filter as JSON text, NULL = none */
    int64_t expires_ms; /* 0 = never */
};

/* Their run and discard functions (api_store_conn.c). */
void rc_api_store_run_notify(struct rc_shard *s, struct rc_post *p);
void rc_api_store_run_change(struct rc_shard *s, struct rc_post *p);
void rc_api_store_discard_notify(struct rc_post *p);
void rc_api_store_discard_change(struct rc_post *p);

/* A record's ISO 8601 time field key in ms since the epoch, 0 when absent. */
int64_t rc_api_store_rec_time(const json_t *rec, const char *key);

/* Main thread, after the shards joined: free every shard's user index. */
void rc_api_store_index_reset(void);

/* A new request's way back to c's shard (api_store.c); NULL when out of memory. */
/* GET /metrics (api_metrics.c): the store's stats came back for c (NULL:
 * gone); renders them and starts the shards' gather. */
void rc_api_metrics_store_answered(struct rc_conn *c, struct rc_api_store_wait *w);

struct rc_api_store_wait *rc_api_store_wait_new(enum rc_api_store_purpose purpose,
                                                enum rc_store_op op, struct rc_conn *c);

/* Submit args (taken) to the store for w; false when out of memory (w not taken). */
bool rc_api_store_submit(struct rc_shard *s, struct rc_api_store_wait *w, json_t *args);

/* A load request's answer came back to s (api_store_conn.c); frees or resubmits w. */
void rc_api_store_load_answered(struct rc_shard *s, struct rc_api_store_wait *w, struct rc_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_API_STORE_INTERNAL_H */
