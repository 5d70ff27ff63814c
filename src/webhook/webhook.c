/* webhook.c - the webhook thread: takes lifecycle events from the shards'
 * MPSC queue, keeps at most webhook_queue of them, and POSTs them in batches
 * (webhook_batch events or webhook_flush time) to webhook_url with libcurl's
 * multi interface, one batch in flight, retried with backoff until a 2xx.
 *
 * rc_webhook_main owns: the FIFO of taken events (head/tail/qlen), the batch
 *   in flight (body, count, attempts, retry_at), the curl multi and easy
 *   handles, the drop log's rate limit and the id counter.
 * It drains: wh->q (struct wh_item nodes pushed by rc_webhook_emit on any
 *   shard) and wh->efd (the queue's wake-up; also written by rc_webhook_stop).
 * It posts: nothing back to the shards. Counters (struct wh_stats) are
 *   relaxed atomics read by rc_webhook_metrics on any shard.
 * Shared with producers: `pending` (events pushed, not yet taken; bounds the
 *   MPSC backlog), `shard_dropped` and the stats, all atomics (below). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ringcast/histo.h"
#include "ringcast/log.h"
#include "ringcast/prom.h"
#include "webhook_internal.h"

#define WH_RETRY_BASE_MS 100
#define WH_DROP_LOG_MS 10000 /* one drop log line per 10 s at most */

struct wh_stats {
    /* relaxed: counters for /metrics, no ordering with anything else */
    _Atomic uint64_t queued, sent, dropped, posts, failed, retries, depth;
    _Atomic uint64_t lat_count, lat_sum, lat_b[RC_HISTO_BUCKETS];
};

struct rc_webhook {
    struct rc_mpsc q; /* producers: any shard; consumer: the webhook thread */
    int efd;
    unsigned mask; /* 1 << enum rc_webhook_type */
    /* configuration (read-only after new) */
    char url[RC_CONFIG_PATH_MAX];
    char secret[RC_CONFIG_SECRET_MAX];
    size_t secret_len;
    char node[RC_CONFIG_CLAIM_MAX];
    char prefix[RC_CONFIG_CLAIM_MAX + 24]; /* node + start time: ids unique across restarts */
    uint32_t batch_max, queue_max;
    uint64_t flush_ms, timeout_ms, retry_max_ms;
    /* shared with producers */
    /* relaxed, both: a bound and a count, not a hand-over (an event's bytes cross
     * through the MPSC queue, whose push/pop order them) */
    _Atomic uint64_t pending;       /* pushed, not yet taken by the thread */
    _Atomic uint64_t shard_dropped; /* events a shard dropped because pending was full */
    atomic_bool stop;               /* release by stop, acquire by the thread */
    struct wh_stats st;
    /* the webhook thread's own */
    pthread_t thread;
    bool started;
    struct wh_item *head, *tail;
    size_t qlen;
    uint64_t seq;
    uint64_t dropped_unreported; /* goes into the next batch's "dropped" */
    uint64_t drop_logged_ms, drops_since_log;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    char *body;            /* the batch in flight (NULL: none) */
    size_t body_n;         /* its events */
    unsigned attempts;     /* POSTs of it so far */
    uint64_t retry_at;     /* monotonic ms: not before */
    uint64_t post_started; /* monotonic ns */
    bool posting;
    unsigned rand_state;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
    return mono_ns() / 1000000u;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- configuration ---------------------------------------------------------- */

static int parse_events(const struct rc_config *cfg, unsigned *mask)
{
    static const struct {
        const char *w;
        unsigned bits;
    } words[] = {
        {"connect", 1u << RC_WEBHOOK_CONNECT},
        {"disconnect", 1u << RC_WEBHOOK_DISCONNECT},
        {"subscribe", 1u << RC_WEBHOOK_SUBSCRIBE},
        {"unsubscribe", 1u << RC_WEBHOOK_UNSUBSCRIBE},
        {"presence", 1u << RC_WEBHOOK_PRESENCE_JOIN | 1u << RC_WEBHOOK_PRESENCE_LEAVE},
    };
    *mask = cfg->webhook_events.n ? 0 : (1u << RC_WEBHOOK_NTYPES) - 1;
    for (size_t i = 0; i < cfg->webhook_events.n; i++) {
        size_t k = 0;
        while (k < RC_ARRAY_LEN(words) && strcmp(words[k].w, cfg->webhook_events.items[i]) != 0)
            k++;
        if (k == RC_ARRAY_LEN(words))
            return -EINVAL;
        *mask |= words[k].bits;
    }
    return 0;
}

int rc_webhook_check(const struct rc_config *cfg, struct rc_err *err)
{
    unsigned mask;
    if (parse_events(cfg, &mask) < 0) {
        rc_err_set(err, 0, "bad_config",
                   "config: webhook_events has an unknown word; use connect, disconnect, "
                   "subscribe, unsubscribe, presence");
        return -EINVAL;
    }
    if (!cfg->webhook_url[0])
        return 0;
    CURLU *u = curl_url();
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, cfg->webhook_url, 0) : CURLUE_OUT_OF_MEMORY;
    char *scheme = NULL;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    bool http = uc == CURLUE_OK && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!http) {
        rc_err_set(err, 0, "bad_config",
                   "config: webhook_url=%.64s is not a valid http:// or https:// URL (%s); e.g. "
                   "https://backend.example.com/ringcast/events",
                   cfg->webhook_url, uc == CURLUE_OK ? "not http" : curl_url_strerror(uc));
        return -EINVAL;
    }
    return 0;
}

int rc_webhook_new(struct rc_webhook **out, const struct rc_config *cfg, const char *node,
                   struct rc_err *err)
{
    *out = NULL;
    if (rc_webhook_check(cfg, err) < 0)
        return -EINVAL;
    if (!cfg->webhook_url[0])
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc_err_set(err, 0, "webhook", "webhook: libcurl failed to initialise");
        return -EIO;
    }
    struct rc_webhook *wh = calloc(1, sizeof(*wh));
    if (!wh) {
        rc_err_set(err, 0, "no_memory", "webhook: out of memory");
        return -ENOMEM;
    }
    wh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wh->efd < 0) {
        int e = errno;
        free(wh);
        rc_err_set(err, 0, "webhook", "webhook: eventfd: %s", strerror(e));
        return -e;
    }
    rc_mpsc_init(&wh->q, wh->efd);
    (void)parse_events(cfg, &wh->mask);
    snprintf(wh->url, sizeof(wh->url), "%s", cfg->webhook_url);
    snprintf(wh->secret, sizeof(wh->secret), "%s", cfg->webhook_secret);
    wh->secret_len = strlen(wh->secret);
    snprintf(wh->node, sizeof(wh->node), "%s", node);
    uint64_t now = unix_ms();
    snprintf(wh->prefix, sizeof(wh->prefix), "%s-%llx", node, (unsigned long long)now);
    wh->batch_max = cfg->webhook_batch;
    wh->queue_max = cfg->webhook_queue;
    wh->flush_ms = cfg->webhook_flush;
    wh->timeout_ms = cfg->webhook_timeout;
    wh->retry_max_ms = cfg->webhook_retry_max;
    wh->rand_state = (unsigned)now;
    *out = wh;
    return 0;
}

/* ---- producers (any thread) --------------------------------------------------- */

bool rc_webhook_wants(const struct rc_webhook *wh, enum rc_webhook_type t)
{
    return wh && (wh->mask & (1u << t));
}

void rc_webhook_emit(struct rc_webhook *wh, const struct rc_webhook_event *ev)
{
    if (!rc_webhook_wants(wh, ev->type))
        return;
    /* the MPSC backlog is bounded too: a stalled webhook thread (it never
     * blocks on the network, but it may be descheduled) costs no memory */
    if (atomic_fetch_add_explicit(&wh->pending, 1, memory_order_relaxed) >= wh->queue_max) {
        atomic_fetch_sub_explicit(&wh->pending, 1, memory_order_relaxed);
        add(&wh->shard_dropped, 1);
        return;
    }
    struct wh_item *it = malloc(sizeof(*it));
    if (!it) {
        atomic_fetch_sub_explicit(&wh->pending, 1, memory_order_relaxed);
        add(&wh->shard_dropped, 1);
        return;
    }
    it->next = NULL;
    it->seq = 0;
    it->taken_ms = 0;
    it->conn_id = ev->conn_id;
    it->time_ms = ev->time_ms ? ev->time_ms : unix_ms();
    it->type = (uint8_t)ev->type;
    it->reason = (uint8_t)ev->reason;
    snprintf(it->user_id, sizeof(it->user_id), "%s", ev->user_id ? ev->user_id : "");
    size_t tn = ev->topic ? ev->topic_len : 0;
    if (tn >= sizeof(it->topic))
        tn = sizeof(it->topic) - 1;
    memcpy(it->topic, ev->topic ? ev->topic : "", tn);
    it->topic[tn] = '\0';
    add(&wh->st.queued, 1);
    rc_mpsc_push(&wh->q, &it->node);
}

void rc_webhook_conn(struct rc_webhook *wh, const struct rc_conn *c, enum rc_webhook_type t,
                     const char *topic, size_t topic_len)
{
    if (!rc_webhook_wants(wh, t))
        return;
    enum rc_conn_close_reason r = (enum rc_conn_close_reason)c->close_reason;
    if (r == RC_CLOSE_UNSET)
        r = c->peer_closed ? RC_CLOSE_CLIENT : RC_CLOSE_SERVER;
    struct rc_webhook_event ev = {.type = t,
                                  .reason = r,
                                  .conn_id = c->id,
                                  .user_id = c->user_id,
                                  .topic = topic,
                                  .topic_len = topic_len};
    rc_webhook_emit(wh, &ev);
}

/* ---- the webhook thread ------------------------------------------------------------ */

static void count_drop(struct rc_webhook *wh, uint64_t n, uint64_t now)
{
    if (!n)
        return;
    wh->dropped_unreported += n;
    wh->drops_since_log += n;
    add(&wh->st.dropped, n);
    if (now >= wh->drop_logged_ms + WH_DROP_LOG_MS) {
        rc_log(RC_LOG_WARN, "webhook_dropped",
               "events=%llu queued=%zu max=%u reason=\"webhook_queue is full: the receiver is "
               "down or slower than the events; the oldest were dropped\"",
               (unsigned long long)wh->drops_since_log, wh->qlen, wh->queue_max);
        wh->drop_logged_ms = now;
        wh->drops_since_log = 0;
    }
}

/* Move what the shards pushed onto the FIFO; past queue_max drop the oldest. */
static void take(struct rc_webhook *wh, uint64_t now)
{
    struct rc_mpsc_node *n;
    uint64_t dropped = atomic_exchange_explicit(&wh->shard_dropped, 0, memory_order_relaxed);
    while ((n = rc_mpsc_pop(&wh->q)) != NULL) {
        struct wh_item *it = (struct wh_item *)n;
        atomic_fetch_sub_explicit(&wh->pending, 1, memory_order_relaxed);
        it->seq = ++wh->seq;
        it->taken_ms = now;
        it->next = NULL;
        if (wh->tail)
            wh->tail->next = it;
        else
            wh->head = it;
        wh->tail = it;
        wh->qlen++;
        if (wh->qlen > wh->queue_max) {
            struct wh_item *old = wh->head;
            wh->head = old->next;
            if (!wh->head)
                wh->tail = NULL;
            wh->qlen--;
            free(old);
            dropped++;
        }
    }
    count_drop(wh, dropped, now);
    atomic_store_explicit(&wh->st.depth, wh->qlen, memory_order_relaxed);
}

/* Take up to batch_max events off the FIFO into a body. */
static void build_batch(struct rc_webhook *wh)
{
    size_t n = wh->qlen < wh->batch_max ? wh->qlen : wh->batch_max;
    char *body = rc_webhook_body(wh->node, wh->prefix, wh->dropped_unreported, wh->head, n);
    if (!body)
        return; /* out of memory: try again next turn */
    wh->dropped_unreported = 0;
    for (size_t i = 0; i < n; i++) {
        struct wh_item *it = wh->head;
        wh->head = it->next;
        free(it);
    }
    if (!wh->head)
        wh->tail = NULL;
    wh->qlen -= n;
    atomic_store_explicit(&wh->st.depth, wh->qlen, memory_order_relaxed);
    wh->body = body;
    wh->body_n = n;
    wh->attempts = 0;
    wh->retry_at = 0;
}

static size_t discard(char *p, size_t sz, size_t n, void *ctx)
{
    (void)p, (void)ctx;
    return sz * n;
}

static void start_post(struct rc_webhook *wh)
{
    char ts[48], sig[WH_SIG_LEN + 32];
    int64_t now_s = (int64_t)(unix_ms() / 1000);
    curl_slist_free_all(wh->headers);
    wh->headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(ts, sizeof(ts), "X-Ringcast-Timestamp: %lld", (long long)now_s);
    wh->headers = curl_slist_append(wh->headers, ts);
    if (wh->secret_len) {
        memcpy(sig, "X-Ringcast-Signature: ", 22);
        if (rc_webhook_sign(wh->secret, wh->secret_len, now_s, wh->body, strlen(wh->body),
                            sig + 22) == 0)
            wh->headers = curl_slist_append(wh->headers, sig);
    }
    wh->headers = curl_slist_append(wh->headers, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(wh->easy, CURLOPT_URL, wh->url);
    curl_easy_setopt(wh->easy, CURLOPT_POSTFIELDS, wh->body);
    curl_easy_setopt(wh->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(wh->body));
    curl_easy_setopt(wh->easy, CURLOPT_HTTPHEADER, wh->headers);
    curl_easy_setopt(wh->easy, CURLOPT_TIMEOUT_MS, (long)wh->timeout_ms);
    curl_easy_setopt(wh->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(wh->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(wh->easy, CURLOPT_USERAGENT, "ringcast-webhook");
    if (curl_multi_add_handle(wh->multi, wh->easy) != CURLM_OK) {
        wh->retry_at = mono_ms() + WH_RETRY_BASE_MS;
        return;
    }
    if (wh->attempts)
        add(&wh->st.retries, 1);
    wh->attempts++;
    wh->posting = true;
    wh->post_started = mono_ns();
    add(&wh->st.posts, 1);
}

static uint64_t backoff_ms(struct rc_webhook *wh)
{
    unsigned shift = wh->attempts > 20 ? 20 : wh->attempts - 1;
    uint64_t d = (uint64_t)WH_RETRY_BASE_MS << shift;
    if (d > wh->retry_max_ms)
        d = wh->retry_max_ms;
    /* jitter: somewhere in [d/2, d], so that nodes do not retry in step */
    return d / 2 + (uint64_t)rand_r(&wh->rand_state) % (d / 2 + 1);
}

static void post_done(struct rc_webhook *wh, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(wh->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(wh->multi, wh->easy);
    wh->posting = false;
    uint64_t ns = mono_ns() - wh->post_started;
    unsigned b = rc_histo_bucket(ns);
    add(&wh->st.lat_b[b], 1);
    add(&wh->st.lat_count, 1);
    add(&wh->st.lat_sum, ns);
    if (res == CURLE_OK && status >= 200 && status < 300) {
        add(&wh->st.sent, wh->body_n);
        free(wh->body);
        wh->body = NULL;
        wh->body_n = 0;
        return;
    }
    add(&wh->st.failed, 1);
    uint64_t wait = backoff_ms(wh);
    wh->retry_at = mono_ms() + wait;
    rc_log(wh->attempts == 1 ? RC_LOG_WARN : RC_LOG_DEBUG, "webhook_post_failed",
           "status=%ld error=\"%s\" attempt=%u events=%zu retry_in_ms=%llu", status,
           res == CURLE_OK ? "non-2xx answer" : curl_easy_strerror(res), wh->attempts, wh->body_n,
           (unsigned long long)wait);
}

static void reap(struct rc_webhook *wh)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(wh->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE && m->easy_handle == wh->easy)
            post_done(wh, m->data.result);
}

/* Milliseconds the thread may sleep: until the flush of the oldest event, the
 * retry of the batch, or what curl asks; at most 1 s. */
static int sleep_ms(struct rc_webhook *wh, uint64_t now)
{
    long t = 1000, ct = -1;
    if (!wh->body && wh->head) {
        uint64_t due = wh->head->taken_ms + wh->flush_ms;
        t = due > now ? (long)(due - now) : 0;
    } else if (wh->body && !wh->posting) {
        long r = wh->retry_at > now ? (long)(wh->retry_at - now) : 0;
        t = r < t ? r : t;
    }
    curl_multi_timeout(wh->multi, &ct);
    if (ct >= 0 && ct < t)
        t = ct;
    return (int)t;
}

static void *rc_webhook_main(void *arg)
{
    struct rc_webhook *wh = arg;
    uint64_t stop_deadline = 0;
    for (;;) {
        uint64_t now = mono_ms();
        take(wh, now);
        bool stopping = atomic_load_explicit(&wh->stop, memory_order_acquire);
        if (stopping && !stop_deadline)
            stop_deadline = now + wh->timeout_ms;
        if (stopping && ((!wh->body && !wh->head) || now >= stop_deadline))
            break;
        if (!wh->body && wh->head &&
            (stopping || wh->qlen >= wh->batch_max || now >= wh->head->taken_ms + wh->flush_ms))
            build_batch(wh);
        if (wh->body && !wh->posting && now >= wh->retry_at)
            start_post(wh);
        int running = 0;
        curl_multi_perform(wh->multi, &running);
        reap(wh);
        if (wh->body && !wh->posting && now >= wh->retry_at)
            continue; /* done at once (refused connection): go round to retry or wait */
        int t = sleep_ms(wh, mono_ms());
        if (!rc_mpsc_prepare_sleep(&wh->q))
            t = 0;
        struct curl_waitfd wfd = {.fd = wh->efd, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(wh->multi, &wfd, 1, t, NULL);
        uint64_t v;
        (void)!read(wh->efd, &v, sizeof(v));
        rc_mpsc_awake(&wh->q);
    }
    if (wh->qlen || wh->body)
        rc_log(RC_LOG_WARN, "webhook_stop_undelivered", "events=%zu",
               wh->qlen + (wh->body ? wh->body_n : 0));
    return NULL;
}

int rc_webhook_start(struct rc_webhook *wh, struct rc_err *err)
{
    wh->multi = curl_multi_init();
    wh->easy = curl_easy_init();
    if (!wh->multi || !wh->easy) {
        rc_err_set(err, 0, "webhook", "webhook: libcurl could not create its handles");
        return -ENOMEM;
    }
    int rc = pthread_create(&wh->thread, NULL, rc_webhook_main, wh);
    if (rc != 0) {
        rc_err_set(err, 0, "webhook", "webhook: cannot start its thread: %s", strerror(rc));
        return -rc;
    }
    pthread_setname_np(wh->thread, "rc-webhook");
    wh->started = true;
    return 0;
}

void rc_webhook_stop(struct rc_webhook *wh)
{
    if (!wh || !wh->started)
        return;
    atomic_store_explicit(&wh->stop, true, memory_order_release);
    uint64_t one = 1;
    (void)!write(wh->efd, &one, sizeof(one));
    pthread_join(wh->thread, NULL);
    wh->started = false;
}

void rc_webhook_free(struct rc_webhook *wh)
{
    if (!wh)
        return;
    struct rc_mpsc_node *n;
    while ((n = rc_mpsc_pop(&wh->q)) != NULL)
        free(n);
    while (wh->head) {
        struct wh_item *it = wh->head;
        wh->head = it->next;
        free(it);
    }
    if (wh->posting)
        curl_multi_remove_handle(wh->multi, wh->easy);
    curl_easy_cleanup(wh->easy);
    curl_multi_cleanup(wh->multi);
    curl_slist_free_all(wh->headers);
    free(wh->body);
    close(wh->efd);
    free(wh);
    curl_global_cleanup();
}

/* ---- stats and /metrics ------------------------------------------------------------------------
 */

json_t *rc_webhook_stats(const struct rc_webhook *wh)
{
    if (!wh)
        return NULL;
    const struct wh_stats *st = &wh->st;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "queued", (json_int_t)get(&st->queued),
                     "sent", (json_int_t)get(&st->sent), "dropped", (json_int_t)get(&st->dropped),
                     "posts", (json_int_t)get(&st->posts), "failed", (json_int_t)get(&st->failed),
                     "retries", (json_int_t)get(&st->retries), "queue_depth",
                     (json_int_t)get(&st->depth));
}

char *rc_webhook_metrics(const struct rc_webhook *wh)
{
    if (!wh)
        return NULL;
    static const struct {
        const char *name, *help;
        size_t off;
    } ctrs[] = {
        {"ringcast_webhook_events_queued_total", "Lifecycle events accepted for the webhook.",
         offsetof(struct wh_stats, queued)},
        {"ringcast_webhook_events_sent_total", "Webhook events in batches answered 2xx.",
         offsetof(struct wh_stats, sent)},
        {"ringcast_webhook_dropped_total",
         "Webhook events dropped because webhook_queue was full (oldest first).",
         offsetof(struct wh_stats, dropped)},
        {"ringcast_webhook_posts_total", "Webhook POSTs started.",
         offsetof(struct wh_stats, posts)},
        {"ringcast_webhook_posts_failed_total",
         "Webhook POSTs that failed (no answer, timeout or non-2xx).",
         offsetof(struct wh_stats, failed)},
        {"ringcast_webhook_retries_total", "Webhook POSTs that retried a failed batch.",
         offsetof(struct wh_stats, retries)},
    };
    struct rc_prom p;
    rc_prom_init(&p);
    for (size_t i = 0; i < RC_ARRAY_LEN(ctrs); i++) {
        const _Atomic uint64_t *c = (const _Atomic uint64_t *)((const char *)&wh->st + ctrs[i].off);
        rc_prom_family(&p, ctrs[i].name, RC_PROM_COUNTER, ctrs[i].help);
        rc_prom_u64(&p, ctrs[i].name, NULL, 0, get(c));
    }
    rc_prom_family(&p, "ringcast_webhook_queue_depth", RC_PROM_GAUGE,
                   "Webhook events waiting on the webhook thread.");
    rc_prom_u64(&p, "ringcast_webhook_queue_depth", NULL, 0, get(&wh->st.depth));
    struct rc_histo h = {.count = get(&wh->st.lat_count), .sum = get(&wh->st.lat_sum)};
    for (unsigned i = 0; i < RC_HISTO_BUCKETS; i++)
        h.b[i] = get(&wh->st.lat_b[i]);
    rc_prom_family(&p, "ringcast_webhook_post_seconds", RC_PROM_HISTOGRAM,
                   "Time from a webhook POST's start to its answer or failure.");
    rc_prom_histo(&p, "ringcast_webhook_post_seconds", NULL, 0, &h, 16, 35, 1e-9);
    size_t len;
    return rc_prom_take(&p, &len);
}
