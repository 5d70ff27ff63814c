/* config.c - the configuration model: the table of keys, defaults,
 * validation, comparison and release. The parser and formatter per value type
 * are in config_value.c; reading the file, the environment and the command
 * line, setting a key by name, and the --help / --check-config output are in
 * config_load.c.
 *
 * ---------------------------------------------------------------------------
 * Configuration (for docs/OPERATIONS.md)
 *
 * Sources, highest precedence first:
 *   1. flags:        --key=value or --key value (dashes or underscores:
 *                    --max-body-bytes = --max_body_bytes); a bool key alone
 *                    (--client-publish) means true. A repeated scalar flag:
 *                    the last one wins.
 *   2. environment:  RINGCAST_<KEY> in upper case, e.g. RINGCAST_PORT=9000,
 *                    RINGCAST_LOG_LEVEL=debug. An unknown RINGCAST_* variable
 *                    is an error (it is usually a typo). RINGCAST_CONFIG=PATH
 *                    names the config file.
 *   3. config file:  --config=PATH (or RINGCAST_CONFIG). There is no default
 *                    path: without either, no file is read.
 *   4. defaults:     see `ringcast --help`.
 * Other flags: -h/--help, --version, --check-config (load, validate, print
 * the effective config and exit 0, or print the error and exit non-zero).
 *
 * File format: UTF-8 text, at most 1 MiB, lines at most 4096 bytes.
 *   # a comment: a whole line, or after a space or tab at the end of a line
 *   key = value
 *   key = "a quoted value # not a comment, with \" and \\ escapes"
 * Blank lines are ignored; spaces around the key, "=" and the value are
 * ignored; CRLF line ends and a leading byte-order mark are accepted. Keys
 * are lower case. A key may appear once, except list keys, whose items are
 * appended on each repetition. Control characters are not allowed in values.
 *
 * Value syntax:
 *   bool      true/false, yes/no, on/off, 1/0 (any case)
 *   number    decimal digits, within the key's range
 *   port      0..65535; 0 lets the kernel pick a free port
 *   size      bytes: a bare number, or a number with a unit: B; KB, MB, GB
 *             (powers of 1000); KiB, MiB, GiB (powers of 1024). 8KiB = 8192.
 *             k, K, M and G alone are refused as ambiguous.
 *   duration  a number with a unit: ms, s, m (minutes), h. A bare number is
 *             refused (is 10 seconds or milliseconds?) except 0.
 *   address   an IPv4 or IPv6 literal without brackets (0.0.0.0, ::, ::1),
 *             or localhost
 *   enum      one of the listed words (lower case)
 *   list      items separated by commas (spaces around items are ignored);
 *             repeat the key to add more; an empty value is an empty list.
 *             In each source (file, environment, flags) the first mention of
 *             a list key replaces what lower-precedence sources gave it.
 *   string    any text without control characters, up to the key's length
 * ---------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "ringcast/api_key.h"
#include "ringcast/config.h"

/* The word lists below index the log enums directly. */
_Static_assert(RC_LOG_DEBUG == 0 && RC_LOG_INFO == 1 && RC_LOG_WARN == 2 && RC_LOG_ERROR == 3,
               "log_level_words must follow enum rc_log_level");
_Static_assert(RC_LOG_LOGFMT == 0 && RC_LOG_JSON == 1,
               "log_format_words must follow enum rc_log_format");

/* The _Generic checks make a table line fail to compile if the struct field
 * has a different type than the key's type expects. */
#define FIELD(f) (((struct rc_config *)0)->f)
#define OFF(f, T) _Generic(FIELD(f), T : offsetof(struct rc_config, f))

#define KEY_BOOL(f, d, doc_)                                                                       \
    {                                                                                              \
        .name = #f, .type = T_BOOL, .offset = OFF(f, bool), .def = d, .doc = doc_                  \
    }
#define KEY_UINT(f, d, lo, hi, hint_, doc_)                                                        \
    {                                                                                              \
        .name = #f, .type = T_UINT, .offset = OFF(f, uint32_t), .def = d, .min = lo, .max = hi,    \
        .hint = hint_, .doc = doc_                                                                 \
    }
#define KEY_PORT(f, d, doc_)                                                                       \
    {                                                                                              \
        .name = #f, .type = T_PORT, .offset = OFF(f, uint16_t), .def = d, .min = 0, .max = 65535,  \
        .hint = "0 = ephemeral", .doc = doc_                                                       \
    }
#define KEY_SIZE(f, d, lo, hi, hint_, doc_)                                                        \
    {                                                                                              \
        .name = #f, .type = T_SIZE, .offset = OFF(f, size_t), .def = d, .min = lo, .max = hi,      \
        .hint = hint_, .doc = doc_                                                                 \
    }
#define KEY_DURATION(f, d, lo, hi, hint_, doc_)                                                    \
    {                                                                                              \
        .name = #f, .type = T_DURATION, .offset = OFF(f, uint64_t), .def = d, .min = lo,           \
        .max = hi, .hint = hint_, .doc = doc_                                                      \
    }
#define KEY_STRING(f, d, doc_)                                                                     \
    {                                                                                              \
        .name = #f, .type = T_STRING, .offset = OFF(f, char *), .size = sizeof(FIELD(f)),          \
        .def = d, .doc = doc_                                                                      \
    }
/* A string never echoed: rc_config_print shows only that it is set. */
#define KEY_SECRET(f, d, doc_)                                                                     \
    {                                                                                              \
        .name = #f, .type = T_STRING, .offset = OFF(f, char *), .size = sizeof(FIELD(f)),          \
        .def = d, .secret = true, .doc = doc_                                                      \
    }
#define KEY_ADDR(f, d, doc_)                                                                       \
    {                                                                                              \
        .name = #f, .type = T_ADDR, .offset = OFF(f, char *), .size = sizeof(FIELD(f)), .def = d,  \
        .doc = doc_                                                                                \
    }
/* Enum fields are stored and read as unsigned int (GCC and clang give an enum
 * without negative values that type). */
#define KEY_ENUM(f, d, words_, doc_)                                                               \
    {                                                                                              \
        .name = #f, .type = T_ENUM,                                                                \
        .offset = _Generic(FIELD(f) + 0u, unsigned int                                             \
                           : offsetof(struct rc_config, f)),                                       \
        .size = sizeof(FIELD(f)), .def = d, .words = words_, .doc = doc_                           \
    }
#define KEY_LIST(f, check, secret_, doc_)                                                          \
    {                                                                                              \
        .name = #f, .type = T_LIST, .offset = OFF(f, struct rc_config_list), .def = "",            \
        .max = RC_CONFIG_LIST_MAX, .secret = secret_, .check_item = check, .doc = doc_             \
    }

static const char *const log_level_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_format_words[] = {"logfmt", "json", NULL};
/* indexes enum rc_config_anonymous */
static const char *const anonymous_words[] = {"none", "subscribe", NULL};
_Static_assert(RC_CONFIG_ANON_NONE == 0 && RC_CONFIG_ANON_SUBSCRIBE == 1,
               "anonymous_words must follow enum rc_config_anonymous");

/* indexes enum rc_config_store_sync */
static const char *const store_sync_words[] = {"full", "normal", NULL};
_Static_assert(RC_CONFIG_STORE_SYNC_FULL == 0 && RC_CONFIG_STORE_SYNC_NORMAL == 1,
               "store_sync_words must follow enum rc_config_store_sync");

/* indexes enum rc_config_store */
static const char *const store_words[] = {"sqlite", "postgres", NULL};
_Static_assert(RC_CONFIG_STORE_SQLITE == 0 && RC_CONFIG_STORE_POSTGRES == 1,
               "store_words must follow enum rc_config_store");

/* indexes enum rc_config_conn_limit_policy */
static const char *const conn_limit_words[] = {"refuse", "oldest", NULL};
_Static_assert(RC_CONFIG_CONN_LIMIT_REFUSE == 0 && RC_CONFIG_CONN_LIMIT_OLDEST == 1,
               "conn_limit_words must follow enum rc_config_conn_limit_policy");

/* indexes enum rc_config_broker */
static const char *const broker_words[] = {"memory", "redis", NULL};
_Static_assert(RC_CONFIG_BROKER_MEMORY == 0 && RC_CONFIG_BROKER_REDIS == 1,
               "broker_words must follow enum rc_config_broker");

/* Per-item checks for the list keys below. */
static const char *check_redis_url(const char *item)
{
    /* the full syntax is checked where it is used (redis_keys.c); a mistake
     * that is obvious here is named here */
    if (strncmp(item, "redis://", 8) != 0)
        return "is not a redis URL; use redis://[:password@]host:port[/db]";
    return NULL;
}

static const char *check_origin(const char *item)
{
    const char *host;

    if (strncmp(item, "https://", 8) == 0)
        host = item + 8;
    else if (strncmp(item, "http://", 7) == 0)
        host = item + 7;
    else
        return "is not an origin; use scheme://host[:port], e.g. https://app.example.com";
    if (*host == '\0' || strpbrk(host, "/?# ") != NULL)
        return "is not an origin; give scheme://host[:port] only, without a path or a "
               "trailing slash";
    return NULL;
}

static const char *check_webhook_event(const char *item)
{
    static const char *const words[] = {"connect", "disconnect", "subscribe", "unsubscribe",
                                        "presence"};
    for (size_t i = 0; i < RC_ARRAY_LEN(words); i++)
        if (strcmp(item, words[i]) == 0)
            return NULL;
    return "is not a webhook event; use connect, disconnect, subscribe, unsubscribe or presence";
}

static const char *check_api_key(const char *item)
{
    size_t key_len;
    unsigned scopes;

    return rc_auth_api_key_split(item, &key_len, &scopes);
}

/* Adding a key: one line here, one field in struct rc_config, and
 * RC_CONFIG_NKEYS in config_internal.h. */
const struct rc_config_key rc_config_keys[] = {
    KEY_ADDR(listen_address, "0.0.0.0", "address to listen on: IPv4 or IPv6 literal, or localhost"),
    KEY_PORT(port, "8080", "TCP port to listen on"),
    KEY_STRING(metrics_address, "",
               "host:port of an extra listener serving only /metrics and /healthz, without API "
               "keys (for a private network); empty = none"),
    KEY_UINT(shards, "0", 0, 256, "0 = one per CPU", "event-loop threads (one io_uring each)"),
    KEY_ENUM(log_level, "info", log_level_words, "lowest level that is logged"),
    KEY_ENUM(log_format, "logfmt", log_format_words, "log line format"),
    KEY_STRING(log_file, "", "log file path; empty = stderr"),
    KEY_SIZE(max_request_line, "8KiB", 256, MIB, NULL, "longest HTTP request line"),
    KEY_SIZE(max_header_bytes, "16KiB", 256, MIB, NULL, "request line plus headers, at most"),
    KEY_UINT(max_headers, "64", 1, 64, NULL, "header fields per request, at most"),
    KEY_SIZE(max_body_bytes, "1MiB", 0, GIB, NULL, "largest HTTP request body"),
    KEY_UINT(max_connections, "100000", 1, 10000000, NULL, "open client connections, at most"),
    KEY_UINT(max_connections_per_ip, "0", 0, 10000000, "0 = unlimited",
             "open connections from one client address, at most"),
    KEY_DURATION(request_timeout, "10s", 100 * MS, HOUR, NULL,
                 "a request's head and body must arrive within it, else 408"),
    KEY_DURATION(keepalive_timeout, "75s", 0, HOUR, "0 = no keep-alive",
                 "idle time allowed between HTTP requests on one connection"),
    KEY_DURATION(handshake_timeout, "10s", 100 * MS, HOUR, NULL,
                 "a WebSocket or SSE handshake must complete within it"),
    KEY_DURATION(drain_timeout, "10s", 0, HOUR, NULL,
                 "on SIGTERM, time open connections get before they are closed"),
    KEY_DURATION(drain_spread, "30s", 0, HOUR, "0 = close all at once",
                 "on SIGTERM, WebSocket and SSE clients are closed spread evenly over it; "
                 "drain_timeout counts after it"),
    KEY_SIZE(ws_max_message, "64KiB", 125, 64 * MIB, NULL, "largest WebSocket message accepted"),
    KEY_BOOL(ws_compression, "false",
             "negotiate permessage-deflate (RFC 7692) with WebSocket clients that offer it"),
    KEY_SIZE(ws_compression_min, "256", 1, 64 * MIB, NULL,
             "events with a WebSocket payload this big or bigger are sent compressed (once "
             "per event) to clients that negotiated permessage-deflate"),
    KEY_DURATION(heartbeat_interval, "30s", SEC, HOUR, NULL, "ping/heartbeat sent this often"),
    KEY_DURATION(heartbeat_timeout, "90s", SEC, 24 * HOUR, NULL,
                 "a client silent this long is disconnected"),
    KEY_LIST(allowed_origins, check_origin, false,
             "origins whose browser pages may connect (WebSocket Origin check) and read answers "
             "(CORS on HTTP and SSE, with credentials), e.g. https://app.example.com; others get "
             "403 origin_not_allowed; empty = any origin (CORS without credentials)"),
    KEY_UINT(max_subscriptions, "1000", 1, 1000000, NULL, "subscriptions per connection"),
    KEY_SIZE(max_pending_bytes, "4MiB", 4 * KIB, GIB, NULL,
             "outbound bytes queued for one client before it is dropped as slow (HTTP: "
             "unread answers past which the connection is not read)"),
    KEY_BOOL(client_publish, "false", "clients may publish over WebSocket"),
    KEY_LIST(api_keys, check_api_key, true,
             "API keys accepted on the HTTP API (secret); KEY:publish+notify+admin limits a "
             "key to those scopes, a KEY without ':' has every scope"),
    KEY_DURATION(sse_retry, "3s", 0, HOUR, NULL, "retry: delay suggested to SSE clients"),
    KEY_UINT(history_size, "64", 0, 65536, "0 = no history",
             "events kept per topic for resume (since / Last-Event-ID), unless a rule says "
             "otherwise"),
    KEY_DURATION(history_ttl, "5m", 0, 24 * HOUR, NULL,
                 "a kept event is dropped from history after this; 0 = no age limit"),
    KEY_DURATION(topic_idle_timeout, "5m", 0, 24 * HOUR, "0 = never",
                 "a topic with no exact-topic subscriber, no presence, no kept history and no "
                 "publish for this long is freed (ids of its next events start a new epoch)"),
    KEY_BOOL(retain, "true",
             "keep each topic's latest event for include_initial, unless a rule says "
             "otherwise"),
    KEY_BOOL(presence, "false",
             "track who is subscribed to each topic (presence action, joined/left events) "
             "unless a rule says otherwise"),
    KEY_SECRET(jwt_secret, "",
               "HS256 secret for client tokens, at least 32 bytes (secret: never printed; "
               "prefer RINGCAST_JWT_SECRET or the file over a flag); empty = no HS256"),
    KEY_STRING(jwt_public_key_file, "",
               "PEM public key for client tokens: RSA (2048..8192 bits) -> RS256, EC P-256 -> "
               "ES256; empty = none"),
    KEY_DURATION(jwt_leeway, "30s", 0, HOUR, NULL,
                 "clock skew allowed on a token's exp and nbf (whole seconds)"),
    KEY_STRING(jwt_issuer, "", "a token's iss must equal this; empty = not checked"),
    KEY_STRING(jwt_audience, "", "a token's aud must be or contain this; empty = not checked"),
    KEY_BOOL(auth_required, "false",
             "every WebSocket/SSE connection must authenticate within auth_timeout, else it "
             "is closed (1008)"),
    KEY_DURATION(auth_timeout, "10s", 100 * MS, HOUR, NULL,
                 "with auth_required, time a connection has to present a valid token"),
    KEY_ENUM(anonymous, "subscribe", anonymous_words,
             "none: unauthenticated connections may not subscribe at all; subscribe: they "
             "may where the rules allow"),
    KEY_DURATION(token_grace, "30s", 0, HOUR, NULL,
                 "after a live connection's token expires (error token_expired), it is closed "
                 "this much later unless it sends a fresh auth"),
    KEY_STRING(personal_topics, "user.{sub}.>",
               "topics of this form with a {sub} token other than the caller's user id are "
               "refused (subscribe and publish); empty = no personal topics"),
    KEY_LIST(rules, NULL, false,
             "topic rules, first match wins: PATTERN [subscribe=anonymous|authenticated|"
             "claim|none] [publish=none|authenticated|claim] [presence=BOOL] "
             "[history_size=N] [history_ttl=DURATION] [retain=BOOL] [max_subscribers=N]; "
             "claim = the token's topics claim covers the topic; topics no rule matches: "
             "subscribe per anonymous, publish per client_publish"),
    KEY_UINT(message_rate, "200", 0, 1000000, "0 = unlimited",
             "messages per second one client connection may send (token bucket), else "
             "error rate_limited"),
    KEY_UINT(message_burst, "2000", 1, 1000000, NULL,
             "messages a client connection may send at once before message_rate applies"),
    KEY_UINT(rate_limit_close_after, "100", 0, 1000000, "0 = never close",
             "rate-limited messages within rate_limit_window after which the connection is "
             "closed (1008)"),
    KEY_DURATION(rate_limit_window, "10s", 100 * MS, HOUR, NULL,
                 "window for rate_limit_close_after: it opens at a rate-limited message and the "
                 "count starts again once it has passed"),
    KEY_UINT(handshake_rate_per_ip, "0", 0, 1000000, "0 = unlimited",
             "WebSocket/SSE handshakes per second from one client address (per shard)"),
    KEY_STRING(data_dir, "./data",
               "directory of the durable store (ringcast.db: notifications, user "
               "subscriptions); created if missing"),
    KEY_ENUM(store, "sqlite", store_words,
             "sqlite: the embedded database in data_dir (one node); postgres: a PostgreSQL "
             "database at postgres_url, shared by every node"),
    KEY_SECRET(postgres_url, "",
               "with store=postgres: a libpq connection string or URI "
               "(postgresql://user@host:port/db; secret: may hold a password, never printed); "
               "postgres_pool connections per node, each on its own storage thread"),
    KEY_SECRET(postgres_password, "",
               "with store=postgres: the password (secret; prefer RINGCAST_POSTGRES_PASSWORD or "
               "a .pgpass); empty = the URL's, PGPASSWORD or .pgpass"),
    KEY_UINT(postgres_pool, "4", 1, 64, NULL,
             "with store=postgres: connections to PostgreSQL per node, each on its own storage "
             "thread; one user's requests always take the same one"),
    KEY_ENUM(store_synchronous, "full", store_sync_words,
             "full: every acknowledged write survives a power loss; normal: it survives a "
             "process crash, faster commits"),
    KEY_DURATION(store_purge_interval, "60s", SEC, 24 * HOUR, NULL,
                 "expired notifications and subscriptions are deleted this often"),
    KEY_UINT(store_max_batch, "4096", 1, 1000000, NULL,
             "store requests run in one transaction (group commit), at most"),
    KEY_UINT(max_user_subscriptions, "1000", 0, 1000000, "0 = unlimited",
             "durable subscriptions one user may hold (active and paused); past it a create "
             "is refused with 409 too_many_subscriptions"),
    KEY_UINT(max_connections_per_user, "0", 0, 1000000, "0 = unlimited",
             "open WebSocket and SSE connections of one user (token sub) on this node, at most"),
    KEY_ENUM(connection_limit_policy, "refuse", conn_limit_words,
             "past max_connections_per_user: refuse closes the new connection (code 4008), "
             "oldest closes the user's oldest connection instead"),
    KEY_ENUM(broker, "memory", broker_words,
             "memory: one node, topics ordered inside this process; redis: several nodes share "
             "topics, history and presence through redis_url"),
    KEY_LIST(redis_url, check_redis_url, true,
             "with broker=redis: redis://[:password@]host:port[/db], one or more (secret: may "
             "hold a password); topics are spread over them by a jump consistent hash"),
    KEY_DURATION(redis_timeout, "2s", 100 * MS, MIN, NULL,
                 "a Redis command without an answer for this long fails (503) and the "
                 "connection is made again"),
    KEY_UINT(redis_max_pending, "10000", 1, 1000000, NULL,
             "publishes and reads in flight to one Redis instance, at most; past it a publish "
             "gets 503 broker_unavailable"),
    KEY_UINT(redis_max_patterns, "256", 0, 1000000, "0 = no bound",
             "with broker=redis: distinct wildcard patterns a node PSUBSCRIBEs, at most; past it "
             "new patterns are received through one catch-all pattern (Redis matches every "
             "pattern on every publish)"),
    KEY_DURATION(presence_ttl, "15s", SEC, HOUR, NULL,
                 "with broker=redis: a node's presence entries expire this long after it last "
                 "refreshed them (every third of it), so a dead node's users leave within it"),
    KEY_STRING(node_name, "",
               "this node's name in stats, logs and presence; empty = hostname:port"),
    KEY_BOOL(proxy_protocol, "false",
             "every connection must start with a PROXY protocol v1 or v2 header (HAProxy "
             "send-proxy-v2), else it is refused; limits, logs and stats then see the client's "
             "address"),
    KEY_STRING(webhook_url, "",
               "lifecycle webhooks: events are POSTed as signed JSON batches to this http:// or "
               "https:// URL; empty = off"),
    KEY_LIST(webhook_events, check_webhook_event, false,
             "events sent to webhook_url: connect, disconnect, subscribe, unsubscribe, presence "
             "(joined/left of topics with presence); empty = all"),
    KEY_SECRET(webhook_secret, "",
               "key of the X-Ringcast-Signature header (HMAC-SHA256 of timestamp.body; secret: "
               "never printed); empty = unsigned"),
    KEY_UINT(webhook_batch, "100", 1, 10000, NULL, "events per webhook POST, at most"),
    KEY_DURATION(webhook_flush, "200ms", 1 * MS, MIN, NULL,
                 "a webhook batch that is not full is sent after waiting this long"),
    KEY_UINT(webhook_queue, "100000", 1, 10000000, NULL,
             "webhook events waiting per process, at most; past it the oldest are dropped "
             "(counted, reported in the next batch)"),
    KEY_DURATION(webhook_timeout, "5s", 100 * MS, 5 * MIN, NULL,
                 "a webhook POST without a complete answer for this long fails and is retried"),
    KEY_DURATION(webhook_retry_max, "30s", 100 * MS, HOUR, NULL,
                 "longest wait between retries of a failed webhook batch (exponential backoff "
                 "from 100ms, with jitter)"),
    KEY_SIZE(recv_buffer_size, "16KiB", 512, MIB, NULL, "size of one io_uring receive buffer"),
    KEY_UINT(recv_buffers, "256", 1, 65536, NULL, "receive buffers per shard"),
    KEY_UINT(ring_entries, "1024", 8, 32768, NULL,
             "io_uring submission queue entries per shard (a power of two)"),
};

_Static_assert(RC_ARRAY_LEN(rc_config_keys) == RC_CONFIG_NKEYS,
               "RC_CONFIG_NKEYS in config_internal.h must count the keys");

/* ---- public: defaults, release ------------------------------------------- */

void rc_config_defaults(struct rc_config *c)
{
    char body[sizeof(((struct rc_err *)0)->msg)];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        int rc =
            rc_config_apply(c, &rc_config_keys[i], rc_config_keys[i].def, rc_config_keys[i].name,
                            LIST_REPLACE, (struct rc_config_msgbuf){body, sizeof(body)});
        assert(rc == 0 && "a default in the key table does not parse");
        (void)rc;
    }
}

void rc_config_fini(struct rc_config *c)
{
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++)
        if (rc_config_keys[i].type == T_LIST)
            rc_config_list_clear(rc_config_field(c, &rc_config_keys[i]));
}

/* ---- validation ------------------------------------------------------------ */

/* personal_topics is "" or dot-separated tokens of which exactly one is "{sub}" (the rest
 * of the syntax is checked by rc_auth_new, which owns topic patterns). */
static bool personal_topics_ok(const char *s)
{
    size_t subs = 0;

    if (*s == '\0')
        return true;
    for (const char *p = s;;) {
        size_t n = strcspn(p, ".");
        if (n == 5 && memcmp(p, "{sub}", 5) == 0)
            subs++;
        else if (memchr(p, '{', n) || memchr(p, '}', n))
            return false;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return subs == 1;
}

static int validate_auth(const struct rc_config *c, struct rc_err *err)
{
    bool has_key = c->jwt_secret[0] != '\0' || c->jwt_public_key_file[0] != '\0';
    size_t secret_len = strlen(c->jwt_secret);

    if (secret_len > 0 && secret_len < RC_CONFIG_SECRET_MIN) {
        /* never echo the secret, not even its length */
        rc_err_set(err, 0, "bad_config",
                   "config: jwt_secret is shorter than %d bytes; use a random secret of at "
                   "least 32 bytes (e.g. openssl rand -base64 48)",
                   RC_CONFIG_SECRET_MIN);
        return -EINVAL;
    }
    if (c->auth_required && !has_key) {
        rc_err_set(err, 0, "bad_config",
                   "config: auth_required=true but neither jwt_secret nor "
                   "jwt_public_key_file is set, so no token could verify; set one of them");
        return -EINVAL;
    }
    if (c->anonymous == RC_CONFIG_ANON_NONE && !has_key) {
        rc_err_set(err, 0, "bad_config",
                   "config: anonymous=none but neither jwt_secret nor jwt_public_key_file is "
                   "set, so nobody could subscribe; set a key or use anonymous=subscribe");
        return -EINVAL;
    }
    if (!personal_topics_ok(c->personal_topics)) {
        rc_err_set(err, 0, "bad_config",
                   "config: personal_topics=%.64s must hold {sub} exactly once as a whole "
                   "token (e.g. user.{sub}.>), or be empty for no personal topics",
                   c->personal_topics);
        return -EINVAL;
    }
    return 0;
}

int rc_config_hostport(const char *v, char host[RC_CONFIG_ADDR_MAX], uint16_t *port,
                       struct rc_err *err)
{
    const char *colon = strrchr(v, ':'), *h = v;
    size_t hn = colon ? (size_t)(colon - v) : 0;
    if (hn >= 2 && v[0] == '[' && v[hn - 1] == ']') { /* [IPv6]:port */
        h = v + 1;
        hn -= 2;
    }
    char *end = NULL;
    unsigned long p =
        colon && colon[1] >= '0' && colon[1] <= '9' ? strtoul(colon + 1, &end, 10) : 0;
    unsigned char tmp[sizeof(struct in6_addr)];
    if (colon && hn && hn < RC_CONFIG_ADDR_MAX) {
        memcpy(host, h, hn);
        host[hn] = '\0';
    }
    bool ok = colon && hn && hn < RC_CONFIG_ADDR_MAX && end && !*end && p <= 65535 &&
              (h != v ? inet_pton(AF_INET6, host, tmp) == 1
                      : strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, tmp) == 1);
    if (!ok) {
        rc_err_set(err, 0, "bad_config",
                   "config: metrics_address=%s is not host:port; use an IP literal and a port, "
                   "e.g. 10.0.0.5:9464 or [::1]:9464, or leave it empty",
                   v);
        return -EINVAL;
    }
    *port = (uint16_t)p;
    return 0;
}

int rc_config_validate(const struct rc_config *c, struct rc_err *err)
{
    char a[32], b[32];

    if (c->metrics_address[0]) {
        char host[RC_CONFIG_ADDR_MAX];
        uint16_t port;
        if (rc_config_hostport(c->metrics_address, host, &port, err) < 0)
            return -EINVAL;
    }

    if (c->webhook_url[0] && strncmp(c->webhook_url, "http://", 7) != 0 &&
        strncmp(c->webhook_url, "https://", 8) != 0) {
        rc_err_set(err, 0, "bad_config",
                   "config: webhook_url=%.64s is not an http:// or https:// URL; e.g. "
                   "https://backend.example.com/ringcast/events, or empty for no webhooks",
                   c->webhook_url);
        return -EINVAL;
    }
    if (c->heartbeat_timeout <= c->heartbeat_interval) {
        rc_config_fmt_duration(c->heartbeat_timeout, a, sizeof(a));
        rc_config_fmt_duration(c->heartbeat_interval, b, sizeof(b));
        rc_err_set(err, 0, "bad_config",
                   "config: heartbeat_timeout=%s must be longer than "
                   "heartbeat_interval=%s; raise heartbeat_timeout (3 intervals is usual)",
                   a, b);
        return -EINVAL;
    }
    if (c->max_header_bytes < c->max_request_line) {
        rc_config_fmt_size(c->max_header_bytes, a, sizeof(a));
        rc_config_fmt_size(c->max_request_line, b, sizeof(b));
        rc_err_set(err, 0, "bad_config",
                   "config: max_header_bytes=%s is smaller than "
                   "max_request_line=%s; the request line counts toward the header bytes, so "
                   "raise max_header_bytes",
                   a, b);
        return -EINVAL;
    }
    if (c->store == RC_CONFIG_STORE_POSTGRES && c->postgres_url[0] == '\0') {
        rc_err_set(err, 0, "bad_config",
                   "config: store=postgres needs postgres_url "
                   "(postgresql://user@host:port/db or a libpq connection string)");
        return -EINVAL;
    }
    if (c->store != RC_CONFIG_STORE_POSTGRES && c->postgres_url[0]) {
        rc_err_set(err, 0, "bad_config",
                   "config: postgres_url is set but store=sqlite; set store=postgres to use it");
        return -EINVAL;
    }
    if (c->broker == RC_CONFIG_BROKER_REDIS && c->redis_url.n == 0) {
        rc_err_set(err, 0, "bad_config",
                   "config: broker=redis needs redis_url (redis://host:port, one or more)");
        return -EINVAL;
    }
    if (c->broker != RC_CONFIG_BROKER_REDIS && c->redis_url.n) {
        rc_err_set(err, 0, "bad_config",
                   "config: redis_url is set but broker=memory; set broker=redis to use it");
        return -EINVAL;
    }
    if (c->max_connections_per_ip > c->max_connections) {
        rc_err_set(err, 0, "bad_config",
                   "config: max_connections_per_ip=%u exceeds "
                   "max_connections=%u; lower it, or use 0 for unlimited",
                   c->max_connections_per_ip, c->max_connections);
        return -EINVAL;
    }
    if ((c->ring_entries & (c->ring_entries - 1)) != 0) {
        rc_err_set(err, 0, "bad_config",
                   "config: ring_entries=%u is not a power of two; use "
                   "e.g. 1024 or 2048",
                   c->ring_entries);
        return -EINVAL;
    }
    if ((c->recv_buffers & (c->recv_buffers - 1)) != 0) {
        rc_err_set(err, 0, "bad_config",
                   "config: recv_buffers=%u is not a power of two (io_uring buffer rings "
                   "need one); use e.g. 256 or 1024",
                   c->recv_buffers);
        return -EINVAL;
    }
    return validate_auth(c, err);
}

/* ---- comparison and names ------------------------------------------------------- */

static size_t scalar_size(enum rc_config_type t)
{
    switch (t) {
    case T_BOOL:
        return sizeof(bool);
    case T_UINT:
        return sizeof(uint32_t);
    case T_PORT:
        return sizeof(uint16_t);
    case T_SIZE:
        return sizeof(size_t);
    case T_DURATION:
        return sizeof(uint64_t);
    case T_ENUM:
        return sizeof(unsigned int);
    default:
        return 0;
    }
}

bool rc_config_equal(const struct rc_config *a, const struct rc_config *b)
{
    for (size_t i = 0; i < RC_CONFIG_NKEYS; i++) {
        const struct rc_config_key *k = &rc_config_keys[i];
        const void *pa = rc_config_cfield(a, k), *pb = rc_config_cfield(b, k);

        if (k->type == T_STRING || k->type == T_ADDR) {
            if (strcmp(pa, pb) != 0)
                return false;
        } else if (k->type == T_LIST) {
            const struct rc_config_list *la = pa, *lb = pb;
            if (la->n != lb->n)
                return false;
            for (size_t j = 0; j < la->n; j++)
                if (strcmp(la->items[j], lb->items[j]) != 0)
                    return false;
        } else if (memcmp(pa, pb, scalar_size(k->type)) != 0) {
            return false;
        }
    }
    return true;
}

const char *rc_config_log_level_name(enum rc_log_level level)
{
    return (unsigned)level < RC_ARRAY_LEN(log_level_words) - 1 ? log_level_words[level] : "?";
}

const char *rc_config_log_format_name(enum rc_log_format format)
{
    return (unsigned)format < RC_ARRAY_LEN(log_format_words) - 1 ? log_format_words[format] : "?";
}
