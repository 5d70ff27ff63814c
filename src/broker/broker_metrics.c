/* broker_metrics.c - the Prometheus rendering of a metrics gather (GET
 * /metrics): every shard counter and gauge with a shard label, the shards'
 * histograms, the build, the process and, with broker = redis, the bridge.
 * The JSON rendering of the same gather is in broker_gather.c; both name the
 * counters through brk_counter_fields. Runs on the gather's origin shard. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ringcast/prom.h"
#include "ringcast/timer.h"

#include "broker_internal.h"
#include "rc_build.h"

#define NS 1e-9 /* nanosecond histograms are rendered in seconds */

/* ---- the process (process_* as client libraries name them) ------------------------------ */

static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0; /* the directory's own fd */
}

/* Virtual and resident bytes from /proc/self/statm; false when unreadable. */
static bool memory(uint64_t *vsize, uint64_t *rss)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long pages, res;
    bool ok = f && fscanf(f, "%llu %llu", &pages, &res) == 2;
    if (f)
        fclose(f);
    long pg = sysconf(_SC_PAGESIZE);
    *vsize = ok ? pages * (uint64_t)pg : 0;
    *rss = ok ? res * (uint64_t)pg : 0;
    return ok;
}

static void render_process(struct rc_prom *p, const struct rc_server *srv)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
        rc_prom_family(p, "process_cpu_seconds_total", RC_PROM_COUNTER,
                       "Total user and system CPU time spent in seconds.");
        rc_prom_f64(p, "process_cpu_seconds_total", NULL, 0, cpu);
    }
    uint64_t vsize, rss;
    if (memory(&vsize, &rss)) {
        rc_prom_family(p, "process_resident_memory_bytes", RC_PROM_GAUGE,
                       "Resident memory size in bytes.");
        rc_prom_u64(p, "process_resident_memory_bytes", NULL, 0, rss);
        rc_prom_family(p, "process_virtual_memory_bytes", RC_PROM_GAUGE,
                       "Virtual memory size in bytes.");
        rc_prom_u64(p, "process_virtual_memory_bytes", NULL, 0, vsize);
    }
    rc_prom_family(p, "process_open_fds", RC_PROM_GAUGE, "Number of open file descriptors.");
    rc_prom_u64(p, "process_open_fds", NULL, 0, open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        rc_prom_family(p, "process_max_fds", RC_PROM_GAUGE,
                       "Maximum number of open file descriptors.");
        rc_prom_u64(p, "process_max_fds", NULL, 0, (uint64_t)rl.rlim_cur);
    }
    rc_prom_family(p, "process_start_time_seconds", RC_PROM_GAUGE,
                   "Start time of the process since unix epoch in seconds.");
    rc_prom_f64(p, "process_start_time_seconds", NULL, 0, (double)srv->epoch_ms / 1000.0);
}

/* ---- the shards --------------------------------------------------------------------------- */

struct shard_label {
    char id[12];
    struct rc_prom_label l[2];
};

static void shard_label(struct shard_label *sl, unsigned shard)
{
    snprintf(sl->id, sizeof(sl->id), "%u", shard);
    sl->l[0] = (struct rc_prom_label){"shard", sl->id};
}

/* A per-shard gauge: one family, one sample per shard present. */
typedef uint64_t (*part_value_fn)(const struct brk_metrics_part *m);
#define GAUGE_FN(field)                                                                            \
    static uint64_t g_##field(const struct brk_metrics_part *m)                                    \
    {                                                                                              \
        return m->field;                                                                           \
    }
GAUGE_FN(authenticated)
GAUGE_FN(subscriptions)
GAUGE_FN(topics)
GAUGE_FN(history_events)
GAUGE_FN(history_bytes)
GAUGE_FN(out_bytes)
#undef GAUGE_FN
static uint64_t g_store_queued(const struct brk_metrics_part *m)
{
    return m->ctr.store_submitted - m->ctr.store_answered;
}

static const struct {
    const char *name, *help;
    part_value_fn fn;
} shard_gauges[] = {
    {"ringcast_authenticated_connections", "Open WebSocket and SSE connections that authenticated.",
     g_authenticated},
    {"ringcast_subscriptions", "Subscriptions of the shard's connections.", g_subscriptions},
    {"ringcast_topics_owned", "Topics whose state (sequence, history) the shard owns.", g_topics},
    {"ringcast_history_events", "Events kept in the owned topics' history.", g_history_events},
    {"ringcast_history_bytes", "Wire bytes of the events kept in the owned topics' history.",
     g_history_bytes},
    {"ringcast_outbound_queued_bytes", "Bytes queued to connections, not yet sent.", g_out_bytes},
    {"ringcast_store_queue_depth",
     "Store requests of this shard queued or in the storage thread's batch, not yet answered.",
     g_store_queued},
};

static void render_counters(struct rc_prom *p, const struct brk_metrics_part *parts, unsigned n)
{
    char name[96];
    for (size_t f = 0; f < brk_ncounter_fields; f++) {
        snprintf(name, sizeof(name), "ringcast_%s_total", brk_counter_fields[f].name);
        rc_prom_family(p, name, RC_PROM_COUNTER, brk_counter_fields[f].help);
        for (unsigned i = 0; i < n; i++) {
            if (!parts[i].present)
                continue;
            struct shard_label sl;
            shard_label(&sl, parts[i].shard);
            rc_prom_u64(p, name, sl.l, 1, brk_counter_value(&parts[i].ctr, &brk_counter_fields[f]));
        }
    }
}

/* One pool gauge family: per shard, the connection and the subscription pool. */
static void pool_family(struct rc_prom *p, const struct brk_metrics_part *parts, unsigned n,
                        const char *name, const char *help, bool capacity)
{
    rc_prom_family(p, name, RC_PROM_GAUGE, help);
    for (unsigned i = 0; i < n; i++) {
        struct shard_label sl;
        shard_label(&sl, parts[i].shard);
        if (!parts[i].present)
            continue;
        sl.l[1] = (struct rc_prom_label){"pool", "connections"};
        rc_prom_u64(p, name, sl.l, 2, capacity ? parts[i].conn_pool_cap : parts[i].conn_pool_used);
        sl.l[1] = (struct rc_prom_label){"pool", "subscriptions"};
        rc_prom_u64(p, name, sl.l, 2, capacity ? parts[i].sub_pool_cap : parts[i].sub_pool_used);
    }
}

static void render_gauges(struct rc_prom *p, const struct brk_metrics_part *parts, unsigned n)
{
    static const char *const transports[] = {"http", "websocket", "sse"};
    rc_prom_family(p, "ringcast_connections", RC_PROM_GAUGE,
                   "Open connections by transport (http: requests, not yet upgraded).");
    for (unsigned i = 0; i < n; i++) {
        struct shard_label sl;
        shard_label(&sl, parts[i].shard);
        for (unsigned k = 0; parts[i].present && k < RC_ARRAY_LEN(transports); k++) {
            sl.l[1] = (struct rc_prom_label){"transport", transports[k]};
            rc_prom_u64(p, "ringcast_connections", sl.l, 2, parts[i].conns[k]);
        }
    }
    for (size_t g = 0; g < RC_ARRAY_LEN(shard_gauges); g++) {
        rc_prom_family(p, shard_gauges[g].name, RC_PROM_GAUGE, shard_gauges[g].help);
        for (unsigned i = 0; i < n; i++) {
            struct shard_label sl;
            shard_label(&sl, parts[i].shard);
            if (parts[i].present)
                rc_prom_u64(p, shard_gauges[g].name, sl.l, 1, shard_gauges[g].fn(&parts[i]));
        }
    }
    pool_family(p, parts, n, "ringcast_pool_objects_in_use",
                "Objects taken from the shard's pools (connections, subscriptions).", false);
    pool_family(p, parts, n, "ringcast_pool_objects_capacity",
                "Objects the shard's pools have room for without growing.", true);
}

/* The shard histograms: name, help, which one, bucket range (2^first..2^last), scale. */
static const struct {
    const char *name, *help;
    size_t offset; /* in struct rc_shard_histos */
    unsigned first, last;
    double scale;
} shard_histos[] = {
    {"ringcast_publish_to_send_seconds",
     "Topic events: from the order point accepting the event to its first send on the shard "
     "being submitted.",
     offsetof(struct rc_shard_histos, publish_send_ns), 10, 33, NS},
    {"ringcast_loop_turn_seconds", "Shard loop turns: from waking up to the next submit.",
     offsetof(struct rc_shard_histos, turn_ns), 10, 33, NS},
    {"ringcast_send_iovecs_per_send", "Iovecs per completed send (sendmsg).",
     offsetof(struct rc_shard_histos, send_iovecs), 0, 10, 1.0},
};

static void render_histos(struct rc_prom *p, const struct brk_metrics_part *parts, unsigned n)
{
    for (size_t h = 0; h < RC_ARRAY_LEN(shard_histos); h++) {
        rc_prom_family(p, shard_histos[h].name, RC_PROM_HISTOGRAM, shard_histos[h].help);
        for (unsigned i = 0; i < n; i++) {
            if (!parts[i].present)
                continue;
            struct shard_label sl;
            shard_label(&sl, parts[i].shard);
            const struct rc_histo *hi =
                (const void *)((const char *)&parts[i].hist + shard_histos[h].offset);
            rc_prom_histo(p, shard_histos[h].name, sl.l, 1, hi, shard_histos[h].first,
                          shard_histos[h].last, shard_histos[h].scale);
        }
    }
}

/* ---- the cluster bridge (broker = redis) -------------------------------------------------- */

/* The bridge's counters as rc_broker_cluster_stats names them, with help. */
static const struct {
    const char *key, *help;
} redis_counters[] = {
    {"published", "Events this node published to Redis."},
    {"publish_refused", "Publishes refused because Redis was not reachable."},
    {"received", "Events received from Redis."},
    {"duplicates", "Received events dropped as duplicates."},
    {"gaps", "Sequence gaps seen in received events."},
    {"gap_filled", "Gaps closed by replaying from the Redis history."},
    {"gap_lost", "Events of gaps that could not be replayed."},
    {"malformed", "Malformed messages received from Redis."},
    {"epochs", "Topic epoch changes seen."},
    {"reconnects", "Reconnects to Redis."},
    {"send_failed", "Commands that could not be sent to Redis."},
    {"reads", "History reads from Redis."},
    {"node_events_sent", "Node messages (broadcasts, user events) sent to other nodes."},
    {"node_events_received", "Node messages received from other nodes."},
    {"presence_failed", "Presence updates Redis did not take."},
    {"patterns_coarsened", "Pattern subscriptions widened to a coarser Redis glob."},
};

static void render_cluster(struct rc_prom *p, const struct rc_server *srv)
{
    json_t *o = json_object();
    rc_broker_cluster_stats(srv, o);
    json_t *k = json_object_get(o, "cluster");
    if (k) {
        rc_prom_family(p, "ringcast_redis_up", RC_PROM_GAUGE,
                       "1 when every Redis command connection is up, else 0.");
        rc_prom_u64(p, "ringcast_redis_up", NULL, 0, json_is_true(json_object_get(k, "redis_up")));
        char name[96];
        for (size_t i = 0; i < RC_ARRAY_LEN(redis_counters); i++) {
            json_t *v = json_object_get(k, redis_counters[i].key);
            if (!json_is_integer(v))
                continue;
            snprintf(name, sizeof(name), "ringcast_redis_%s_total", redis_counters[i].key);
            rc_prom_family(p, name, RC_PROM_COUNTER, redis_counters[i].help);
            rc_prom_u64(p, name, NULL, 0, (uint64_t)json_integer_value(v));
        }
    }
    json_decref(o);
    struct rc_redis_counters c;
    if (rc_broker_cluster_counters(srv, &c)) {
        rc_prom_family(p, "ringcast_redis_round_trip_seconds", RC_PROM_HISTOGRAM,
                       "Publishes and history reads Redis answered: from the bridge sending the "
                       "command to the reply.");
        rc_prom_histo(p, "ringcast_redis_round_trip_seconds", NULL, 0, &c.rtt_ns, 10, 33, NS);
    }
}

/* ---- all of it ---------------------------------------------------------------------------- */

char *brk_metrics_render(struct rc_shard *s, const struct brk_metrics_part *parts, unsigned n,
                         const char *extra, size_t *len)
{
    struct rc_prom p;
    rc_prom_init(&p);
    const struct rc_prom_label build[] = {{"version", RC_VERSION}, {"commit", RC_COMMIT}};
    rc_prom_family(&p, "ringcast_build_info", RC_PROM_GAUGE,
                   "Always 1; the labels name the version and commit built.");
    rc_prom_u64(&p, "ringcast_build_info", build, RC_ARRAY_LEN(build), 1);
    render_process(&p, s->srv);
    rc_prom_family(&p, "ringcast_shards", RC_PROM_GAUGE, "Shard threads of this node.");
    rc_prom_u64(&p, "ringcast_shards", NULL, 0, s->srv->nshards);
    render_counters(&p, parts, n);
    render_gauges(&p, parts, n);
    render_histos(&p, parts, n);
    render_cluster(&p, s->srv);
    if (extra)
        rc_prom_text(&p, extra);
    return rc_prom_take(&p, len);
}
