/* config.h - the server configuration: defaults, a config file, RINGCAST_*
 * environment variables and command-line flags.
 * Owner: the main thread. rc_config_load() runs once at start, before any
 *   other thread exists; afterwards the struct is read-only and may be read
 *   from any thread (shards copy what they need).
 * Precedence: flags > environment > file > defaults. Within one source a list
 *   key may repeat (its items are appended); the first occurrence of a list
 *   key in a source replaces what lower sources gave it.
 * Units: durations are uint64_t milliseconds, sizes are size_t bytes.
 * Lifetime: string lists are heap-allocated; rc_config_fini() frees them.
 *   Every other field is inline, so a struct may be copied only before lists
 *   are set or after fini (copying shares the list arrays).
 * The file format and the value syntax are documented at the top of
 * src/core/config.c and printed by rc_config_usage(). */
#ifndef RINGCAST_CONFIG_H
#define RINGCAST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringcast/common.h"
#include "ringcast/log.h" /* enum rc_log_level, enum rc_log_format (types only) */

#ifdef __cplusplus
extern "C" {
#endif

#define RC_CONFIG_ADDR_MAX 64      /* listen_address buffer, NUL included */
#define RC_CONFIG_PATH_MAX 1024    /* log_file / config_path buffers, NUL included */
#define RC_CONFIG_LIST_MAX 256     /* items in one string list */
#define RC_CONFIG_ITEM_MAX 512     /* bytes in one list item */
#define RC_CONFIG_LINE_MAX 4096    /* bytes in one config file line */
#define RC_CONFIG_FILE_MAX 1048576 /* bytes in a config file */
#define RC_CONFIG_SECRET_MAX 1025  /* jwt_secret buffer, NUL included */
#define RC_CONFIG_CLAIM_MAX 256    /* jwt_issuer / jwt_audience buffers, NUL included */
#define RC_CONFIG_TOPIC_MAX 256    /* personal_topics buffer, NUL included */
#define RC_CONFIG_SECRET_MIN 32    /* bytes of jwt_secret when set (RFC 7518 §3.2) */

/* Whether connections without an identity may subscribe (the "anonymous" key). */
enum rc_config_anonymous {
    RC_CONFIG_ANON_NONE,      /* no: every subscribe needs a verified token */
    RC_CONFIG_ANON_SUBSCRIBE, /* yes, where the rules allow */
};

/* A list of NUL-terminated strings, owned by the config. */
struct rc_config_list {
    char **items;
    size_t n;
};

/* Indexes the store_synchronous words; matches enum rc_store_sync. */
enum rc_config_store_sync { RC_CONFIG_STORE_SYNC_FULL, RC_CONFIG_STORE_SYNC_NORMAL };

/* Indexes the store words. */
enum rc_config_store { RC_CONFIG_STORE_SQLITE, RC_CONFIG_STORE_POSTGRES };

/* Indexes the connection_limit_policy words. */
enum rc_config_conn_limit_policy { RC_CONFIG_CONN_LIMIT_REFUSE, RC_CONFIG_CONN_LIMIT_OLDEST };

/* Indexes the broker words. */
enum rc_config_broker { RC_CONFIG_BROKER_MEMORY, RC_CONFIG_BROKER_REDIS };

struct rc_config {
    /* listening */
    char listen_address[RC_CONFIG_ADDR_MAX];      /* IPv4/IPv6 literal or "localhost" */
    uint16_t port;                                /* 0 = ephemeral */
    char metrics_address[RC_CONFIG_ADDR_MAX + 8]; /* host:port serving /metrics only; "" = none */
    uint32_t shards;                              /* 0 = one per online CPU */
    /* logging */
    enum rc_log_level log_level;
    enum rc_log_format log_format;
    char log_file[RC_CONFIG_PATH_MAX]; /* "" = stderr */
    /* HTTP limits */
    size_t max_request_line;
    size_t max_header_bytes;
    uint32_t max_headers;
    size_t max_body_bytes;
    uint32_t max_connections;
    uint32_t max_connections_per_ip; /* 0 = unlimited */
    /* timeouts (milliseconds) */
    uint64_t request_timeout; /* head + body must arrive within it, else 408 */
    uint64_t keepalive_timeout;
    uint64_t handshake_timeout;
    uint64_t drain_timeout;
    uint64_t drain_spread;
    /* WebSocket / SSE */
    size_t ws_max_message;
    bool ws_compression;       /* negotiate permessage-deflate */
    size_t ws_compression_min; /* smallest event payload sent compressed */
    uint64_t heartbeat_interval;
    uint64_t heartbeat_timeout;
    struct rc_config_list allowed_origins; /* empty = allow all */
    uint32_t max_subscriptions;
    size_t max_pending_bytes;
    bool client_publish;
    struct rc_config_list api_keys; /* secret: never printed */
    uint64_t sse_retry;
    /* history, retained events and presence (defaults; rules override per topic) */
    uint32_t history_size;
    uint64_t history_ttl;
    uint64_t topic_idle_timeout; /* free idle owned topics after this (ms); 0 = never */
    bool retain;
    bool presence;
    /* identity (JWT) and access rules; see include/ringcast/auth.h */
    char jwt_secret[RC_CONFIG_SECRET_MAX];        /* HS256 secret; secret: never printed */
    char jwt_public_key_file[RC_CONFIG_PATH_MAX]; /* PEM: RSA -> RS256, EC P-256 -> ES256 */
    uint64_t jwt_leeway;                          /* exp/nbf tolerance, ms (whole seconds used) */
    char jwt_issuer[RC_CONFIG_CLAIM_MAX];         /* "" = iss not checked */
    char jwt_audience[RC_CONFIG_CLAIM_MAX];       /* "" = aud not checked */
    bool auth_required;                           /* authenticate within auth_timeout or 1008 */
    uint64_t auth_timeout;
    enum rc_config_anonymous anonymous;
    uint64_t token_grace;                      /* after a live token expires, close after it */
    char personal_topics[RC_CONFIG_TOPIC_MAX]; /* e.g. "user.{sub}.>"; "" = none */
    struct rc_config_list rules;               /* "PATTERN key=value ..." parsed by auth.c */
    /* abuse limits */
    uint32_t message_rate;           /* client messages per second per connection; 0 = off */
    uint32_t message_burst;          /* token bucket capacity */
    uint32_t rate_limit_close_after; /* limited messages within the window -> 1008; 0 = never */
    uint64_t rate_limit_window;      /* ms: window counted for rate_limit_close_after */
    uint32_t handshake_rate_per_ip;  /* per second per shard; 0 = unlimited */
    /* durable storage (notifications, user subscriptions; see store.h) */
    enum rc_config_store store;                   /* sqlite (data_dir) or postgres */
    char postgres_url[RC_CONFIG_PATH_MAX];        /* secret: libpq conninfo or URI */
    char postgres_password[RC_CONFIG_SECRET_MAX]; /* secret; "" = libpq's own sources */
    uint32_t postgres_pool;                       /* connections (storage threads) per node */
    char data_dir[RC_CONFIG_PATH_MAX];            /* holds ringcast.db; created if missing */
    enum rc_config_store_sync store_synchronous;
    uint64_t store_purge_interval; /* ms between purges of expired rows */
    uint32_t store_max_batch;      /* requests per group commit */
    /* durable subscriptions per user (active and paused); 0 = unlimited */
    uint32_t max_user_subscriptions;
    /* open WebSocket/SSE connections per user on this node; 0 = unlimited */
    uint32_t max_connections_per_user;
    enum rc_config_conn_limit_policy connection_limit_policy; /* past it: refuse or close oldest */
    /* several nodes (broker = redis) */
    enum rc_config_broker broker;
    struct rc_config_list redis_url;     /* secret: may hold passwords */
    uint64_t redis_timeout;              /* ms */
    uint32_t redis_max_pending;          /* commands in flight per instance */
    uint32_t redis_max_patterns;         /* distinct PSUBSCRIBE globs per node; 0 = no bound */
    uint64_t presence_ttl;               /* ms: a dead node's presence entries expire after it */
    char node_name[RC_CONFIG_CLAIM_MAX]; /* "" = hostname:port */
    bool proxy_protocol;                 /* a PROXY v1/v2 header must open every connection */
    /* lifecycle webhooks (webhook.h) */
    char webhook_url[RC_CONFIG_PATH_MAX];      /* http(s) URL; "" = off */
    struct rc_config_list webhook_events;      /* words of webhook.h; empty = all */
    char webhook_secret[RC_CONFIG_SECRET_MAX]; /* HMAC-SHA256 key; secret: never printed */
    uint32_t webhook_batch;                    /* events per POST, at most */
    uint64_t webhook_flush;                    /* ms: a partial batch waits at most this */
    uint32_t webhook_queue;                    /* events queued per process, at most */
    uint64_t webhook_timeout;                  /* ms per POST */
    uint64_t webhook_retry_max;                /* ms: backoff cap between retries */
    /* io_uring */
    size_t recv_buffer_size;
    uint32_t recv_buffers; /* per shard */
    uint32_t ring_entries; /* power of two */

    /* command line only (not keys; not in the file or the environment) */
    bool help;
    bool version;
    bool check_config;
    char config_path[RC_CONFIG_PATH_MAX]; /* the file that was read, "" = none */
};

/* Fill every key with its default and clear the CLI fields. Does not free:
 * call it on a fresh struct or after rc_config_fini(). */
void rc_config_defaults(struct rc_config *c);

/* Full load into a fresh struct: defaults, then the file named by --config
 * PATH (else by RINGCAST_CONFIG; no file if neither), then RINGCAST_<KEY>
 * variables from envp (NULL-terminated; an unknown RINGCAST_* name is an
 * error), then flags from argv[1..argc-1] (--key=value, --key value, bare
 * --bool-key for true, -h/--help, --version, --check-config, --config=PATH;
 * dashes and underscores are interchangeable in flag names), then
 * rc_config_validate(). If --help or --version is given, only the flags are
 * checked (nothing is read) and 0 is returned with c->help / c->version set.
 * Returns 0 or -EINVAL (err->msg names the source, key and accepted values);
 * -ENOMEM if a list cannot grow. Call rc_config_fini() afterwards in both cases. */
RC_MUST_CHECK int rc_config_load(struct rc_config *c, int argc, char **argv, char **envp,
                                 struct rc_err *err);

/* Set one key from text (the same syntax as the file). For a list key the
 * comma-separated items are appended; an empty value clears the list.
 * 0, -EINVAL (err: "config: key=value ...") or -ENOMEM. No cross-key checks. */
RC_MUST_CHECK int rc_config_set(struct rc_config *c, const char *key, const char *value,
                                struct rc_err *err);

/* Apply a config file on top of c (not validated across keys; see
 * rc_config_validate). 0, -EINVAL (err: "config file PATH line N: ..."),
 * -ENOENT/-EACCES/... (err says which file could not be read) or -ENOMEM. */
RC_MUST_CHECK int rc_config_load_file(struct rc_config *c, const char *path, struct rc_err *err);

/* Cross-key checks (heartbeat_timeout > heartbeat_interval, ...). 0 or -EINVAL. */
RC_MUST_CHECK int rc_config_validate(const struct rc_config *c, struct rc_err *err);

/* The effective configuration in the file format, every key once; secret
 * keys (api_keys, jwt_secret) are shown only as a comment saying they are set.
 * Loading the output gives an equal config (except the secret keys). */
void rc_config_print(const struct rc_config *c, FILE *f);

/* --help text: usage line, the flags, the value syntax, every key with its
 * default and a one-line doc. */
void rc_config_usage(FILE *f);

/* A config file (ringcast genconfig): every key in table order, each after comment lines
 * with its doc, type and range, set to its default. Loading it gives the defaults. */
void rc_config_template(FILE *f);

/* Free the string lists (safe to call twice). */
void rc_config_fini(struct rc_config *c);

/* "debug".."error" / "logfmt","json"; "?" for an out-of-range value. */
/* Split metrics_address "host:port" (IPv4 literal, [IPv6 literal] or
 * localhost; port 0..65535, 0 = ephemeral) into host (NUL-terminated, IPv6
 * without brackets) and port. 0, or -EINVAL with err naming the mistake. */
int rc_config_hostport(const char *v, char host[RC_CONFIG_ADDR_MAX], uint16_t *port,
                       struct rc_err *err) RC_MUST_CHECK;
const char *rc_config_log_level_name(enum rc_log_level level);
const char *rc_config_log_format_name(enum rc_log_format format);

/* True if two configs have equal keys (lists compared item by item; the CLI
 * fields help/version/check_config/config_path are ignored). For tests and
 * for reload checks. */
bool rc_config_equal(const struct rc_config *a, const struct rc_config *b);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CONFIG_H */
