/* api_metrics.c - GET /metrics: the store's part first (its stats, asked of the
 * storage thread like any store request), then the shards' gather
 * (rc_broker_metrics), which appends the store's text to its own. Runs on the
 * requesting connection's shard. Without a store, straight to the gather. */
#include <stdlib.h>
#include <string.h>

#include "api_router.h"
#include "api_store_internal.h"
#include "ringcast/answer.h"
#include "ringcast/broker.h"
#include "ringcast/histo.h"
#include "ringcast/prom.h"
#include "ringcast/shard.h"
#include "ringcast/store.h"
#include "ringcast/webhook.h"

void rc_api_metrics(struct rc_http_ctx *x, struct rc_route_req *r)
{
    (void)r;
    struct rc_shard *s = x->conn->shard;
    uint32_t serial = rc_http_defer(x);
    if (s->srv->store) {
        struct rc_api_store_wait *w =
            rc_api_store_wait_new(RC_API_STORE_P_METRICS, RC_STORE_STATS, x->conn);
        if (w) {
            w->serial = serial;
            if (rc_api_store_submit(s, w, NULL))
                return;
            free(w);
        }
    }
    struct rc_ticket t = rc_ticket_http(x->conn, serial);
    char *wh = rc_webhook_metrics(s->srv->webhook);
    rc_broker_metrics(x->conn, &t, wh); /* the store's part is left out */
    free(wh);
}

static const struct {
    const char *key, *help;
} store_counters[] = {
    {"requests", "Requests the storage thread answered."},
    {"batches", "Batches of requests the storage thread took at once."},
    {"commits", "Transactions committed (one per batch with writes, and purges)."},
    {"commit_failures", "Transactions that failed to commit (nothing of them was saved)."},
    {"writes", "Write requests."},
    {"reads", "Read requests."},
    {"failed", "Requests answered with an error status."},
    {"purged", "Expired rows purged."},
};

/* The store's stats object as Prometheus text (caller frees; NULL = none). */
static char *store_text(const json_t *st)
{
    struct rc_prom p;
    rc_prom_init(&p);
    char name[80];
    for (size_t i = 0; i < RC_ARRAY_LEN(store_counters); i++) {
        json_t *v = json_object_get(st, store_counters[i].key);
        if (!json_is_integer(v))
            continue;
        snprintf(name, sizeof(name), "ringcast_store_%s_total", store_counters[i].key);
        rc_prom_family(&p, name, RC_PROM_COUNTER, store_counters[i].help);
        rc_prom_u64(&p, name, NULL, 0, (uint64_t)json_integer_value(v));
    }
    json_t *lat = json_object_get(st, "latency_ns");
    json_t *b = json_object_get(lat, "buckets");
    if (json_array_size(b) == RC_HISTO_BUCKETS) {
        struct rc_histo h = {
            .count = (uint64_t)json_integer_value(json_object_get(lat, "count")),
            .sum = (uint64_t)json_integer_value(json_object_get(lat, "sum")),
        };
        for (unsigned i = 0; i < RC_HISTO_BUCKETS; i++)
            h.b[i] = (uint64_t)json_integer_value(json_array_get(b, i));
        rc_prom_family(&p, "ringcast_store_request_seconds", RC_PROM_HISTOGRAM,
                       "Store requests: from their submit to the storage thread's reply "
                       "(queueing, the batch and its commit).");
        rc_prom_histo(&p, "ringcast_store_request_seconds", NULL, 0, &h, 10, 33, 1e-9);
    }
    size_t len;
    return rc_prom_take(&p, &len);
}

void rc_api_metrics_store_answered(struct rc_conn *c, struct rc_api_store_wait *w)
{
    struct rc_store_req *req = w->req;
    char *txt = req && req->status == 200 && req->result ? store_text(req->result) : NULL;
    char *wh = rc_webhook_metrics(c->shard->srv->webhook);
    if (wh && txt) {
        size_t a = strlen(txt), b = strlen(wh);
        char *both = realloc(txt, a + b + 1);
        if (both) {
            memcpy(both + a, wh, b + 1);
            txt = both;
        }
    } else if (wh) {
        txt = wh;
        wh = NULL;
    }
    free(wh);
    struct rc_ticket t = rc_ticket_http(c, w->serial);
    rc_broker_metrics(c, &t, txt);
    free(txt);
}
