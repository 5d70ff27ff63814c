/* cli_subscribe.c - `ringcast subscribe`: a WebSocket client (RFC 6455) on the project's
 * frame code (ws_frame.h: the reader in client mode, masked client frame headers, the
 * accept key) that subscribes to one pattern and prints every event's data as one JSON
 * line on stdout until SIGINT/SIGTERM, then closes cleanly (1000) and exits 0.
 * Owner: the main thread; one blocking socket, poll() with the signals interrupting it.
 * stdout carries events only (one line each, flushed); "subscribed", errors and the close
 *   reason go to stderr. A token goes in an Authorization header, never in the URL.
 * Bounds: a message is at most MSG_MAX bytes (the reader's max_message); the handshake
 *   answer's head at most HEAD_MAX. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cli_internal.h"
#include "ringcast/jwt.h"
#include "ringcast/ws_frame.h"

#define MSG_MAX (16u << 20)
#define HEAD_MAX 16384
#define CLOSE_WAIT_MS 2000
#define SUBSCRIBE_ID 1

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

struct wsc {
    const struct rc_cli_cmd *cmd;
    int fd;
    struct rc_ws_reader rd;
    char *msg; /* the text message being assembled */
    size_t msg_len, msg_cap;
    bool subscribed;
    int result; /* exit code once done (-1: running) */
};

/* One masked frame (RFC 6455 5.3: a client masks every frame). 0 or -errno. */
static int send_frame(struct wsc *w, unsigned opcode, const void *data, size_t n)
{
    uint8_t mask[4], hdr[RC_WS_MAX_HEADER];
    if (RAND_bytes(mask, sizeof(mask)) != 1)
        return -EIO;
    size_t hl = rc_ws_frame_header_masked(hdr, opcode, n, true, mask);
    uint8_t *buf = malloc(hl + n + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, hdr, hl);
    if (n)
        memcpy(buf + hl, data, n);
    rc_ws_mask(buf + hl, n, mask, 0);
    int rc = rc_cli_write_all(w->fd, buf, hl + n);
    free(buf);
    return rc;
}

static int send_json(struct wsc *w, json_t *j)
{
    char *txt = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = txt ? send_frame(w, RC_WS_OP_TEXT, txt, strlen(txt)) : -ENOMEM;
    free(txt);
    return rc;
}

/* ---- the opening handshake ----------------------------------------------------------------- */

/* Read the answer's head into buf (NUL-terminated); bytes after it stay in buf + *head_len
 * up to *have. 0 or -errno. */
static int read_head(int fd, char *buf, size_t *head_len, size_t *have)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, HEAD_MAX - 1 - n, 0);
        if (r < 0 && errno == EINTR && !stop_signal)
            continue;
        if (r < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (r == 0)
            return -ECONNRESET;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *head_len = (size_t)(end + 4 - buf);
            *have = n;
            return 0;
        }
        if (n == HEAD_MAX - 1)
            return -EFBIG;
    }
}

/* The value of header name in head (case-insensitive), copied into out. */
static bool head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            v += strspn(v, " \t");
            size_t vn = strcspn(v, "\r");
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            snprintf(out, cap, "%.*s", (int)vn, v);
            return true;
        }
    }
    return false;
}

/* The server's refusal: its status and error message. */
static int refused(struct wsc *w, const char *head, size_t head_len, size_t have)
{
    int status = 0;
    (void)sscanf(head, "HTTP/%*d.%*d %3d", &status);
    json_t *j = json_loadb(head + head_len, have - head_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    int code = status >= 400 && status < 500 ? RC_CLI_REFUSED : RC_CLI_FAIL;
    rc_cli_error(w->cmd, code, "the server refused the WebSocket (%d): %s", status,
                 msg ? msg : "no reason given");
    json_decref(j);
    return code;
}

/* GET .../api/realtime/ws with Upgrade; on 101 with the right accept key, bytes that came
 * after the head are handed to *early. 0 or an exit code. */
static int handshake(struct wsc *w, const struct rc_cli_client *cl, const char *token, char *head,
                     size_t *early_off, size_t *early_n)
{
    uint8_t raw[16];
    char key[32], want[29], got[64] = "", auth[RC_JWT_MAX_TOKEN + 32] = "";
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return rc_cli_error(w->cmd, RC_CLI_FAIL, "no random bytes for the handshake key");
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    if (rc_ws_accept_key((struct rc_slice){key, strlen(key)}, want) < 0)
        return rc_cli_error(w->cmd, RC_CLI_FAIL, "cannot compute the accept key");
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    char req[RC_JWT_MAX_TOKEN + 1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s/api/realtime/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: ringcast-cli\r\n%s\r\n",
                     cl->base, cl->hostport, key, auth);
    if (n < 0 || (size_t)n >= sizeof(req) || rc_cli_write_all(w->fd, req, (size_t)n) < 0)
        return rc_cli_error(w->cmd, RC_CLI_FAIL, "cannot send the handshake to %s: %s",
                            cl->hostport, strerror(errno));
    size_t head_len = 0, have = 0;
    int rc = read_head(w->fd, head, &head_len, &have);
    if (rc < 0)
        return rc_cli_error(w->cmd, RC_CLI_FAIL, "no handshake answer from %s: %s", cl->hostport,
                            strerror(-rc));
    int status = 0;
    if (sscanf(head, "HTTP/%*d.%*d %3d", &status) != 1)
        return rc_cli_error(w->cmd, RC_CLI_FAIL,
                            "%s did not answer HTTP; is --url pointing at ringcast?", cl->hostport);
    if (status != 101)
        return refused(w, head, head_len, have);
    if (!head_value(head, "Sec-WebSocket-Accept", got, sizeof(got)) || strcmp(got, want) != 0)
        return rc_cli_error(w->cmd, RC_CLI_FAIL,
                            "the server's Sec-WebSocket-Accept is wrong (RFC 6455 4.2.2); a "
                            "proxy in between may be rewriting the handshake");
    *early_off = head_len;
    *early_n = have - head_len;
    return 0;
}

/* ---- messages ----------------------------------------------------------------------------- */

static void on_message(struct wsc *w, const char *txt, size_t n)
{
    json_t *j = json_loadb(txt, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *data = json_object_get(j, "data");
    if (!type) {
        rc_cli_error(w->cmd, 0, "ignored a message that is not ringcast's: %.*s",
                     (int)(n > 200 ? 200 : n), txt);
    } else if (strcmp(type, "event") == 0) {
        char *line = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line && (puts(line) < 0 || fflush(stdout) != 0))
            w->result =
                rc_cli_error(w->cmd, RC_CLI_FAIL, "cannot write to stdout: %s", strerror(errno));
        free(line);
    } else if (strcmp(type, "subscribed") == 0) {
        w->subscribed = true;
        fprintf(stderr, "ringcast subscribe: subscribed to %s (subscription %s)\n",
                json_string_value(json_object_get(data, "topic")),
                json_string_value(json_object_get(data, "subscription")));
    } else if (strcmp(type, "ping") == 0) {
        (void)send_json(w, json_pack("{s:s}", "action", "pong"));
    } else if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(data, "code"));
        const char *msg = json_string_value(json_object_get(data, "message"));
        json_t *id = json_object_get(j, "id");
        if (!id)
            id = json_object_get(data, "id");
        rc_cli_error(w->cmd, 0, "error %s: %s", code ? code : "?", msg ? msg : "");
        if (!w->subscribed && json_integer_value(id) == SUBSCRIBE_ID)
            w->result = RC_CLI_REFUSED; /* the subscribe itself was refused */
    }
    json_decref(j);
}

static int append_text(struct wsc *w, const uint8_t *p, size_t n)
{
    if (w->msg_len + n + 1 > w->msg_cap) {
        size_t cap = w->msg_cap ? w->msg_cap : 4096;
        while (cap < w->msg_len + n + 1)
            cap *= 2;
        char *m = realloc(w->msg, cap);
        if (!m)
            return -ENOMEM;
        w->msg = m;
        w->msg_cap = cap;
    }
    memcpy(w->msg + w->msg_len, p, n);
    w->msg_len += n;
    return 0;
}

static void on_chunk(struct wsc *w, const struct rc_ws_chunk *ch)
{
    switch (ch->kind) {
    case RC_WS_CHUNK_TEXT:
        if (append_text(w, ch->data, ch->len) < 0) {
            w->result = rc_cli_error(w->cmd, RC_CLI_FAIL, "out of memory");
            return;
        }
        if (ch->msg_end) {
            on_message(w, w->msg, w->msg_len);
            w->msg_len = 0;
        }
        break;
    case RC_WS_CHUNK_PING:
        (void)send_frame(w, RC_WS_OP_PONG, ch->data, ch->len);
        break;
    case RC_WS_CHUNK_CLOSE: {
        uint8_t pl[2] = {0x03, 0xe8}; /* 1000: answer the close (RFC 6455 5.5.1) */
        (void)send_frame(w, RC_WS_OP_CLOSE, pl, sizeof(pl));
        if (!stop_signal)
            rc_cli_error(w->cmd, RC_CLI_FAIL, "the server closed the stream: %u %.*s",
                         ch->close_code, (int)(ch->len > 2 ? ch->len - 2 : 0),
                         (const char *)ch->data + 2);
        if (w->result < 0)
            w->result = stop_signal ? RC_CLI_OK : RC_CLI_FAIL;
        break;
    }
    default:
        break; /* binary messages and pongs: nothing for us */
    }
}

/* Feed received bytes to the reader. false once the stream is over. */
static bool feed(struct wsc *w, uint8_t *buf, size_t n)
{
    struct rc_err err = {0};
    while (n > 0 && w->result < 0) {
        size_t used = 0;
        struct rc_ws_chunk ch;
        enum rc_parse r = rc_ws_read(&w->rd, buf, n, &used, &ch, &err);
        if (r == RC_PARSE_FAIL) {
            w->result = rc_cli_error(w->cmd, RC_CLI_FAIL, "bad frame from the server: %s", err.msg);
            return false;
        }
        buf += used;
        n -= used;
        if (r == RC_PARSE_DONE)
            on_chunk(w, &ch);
    }
    return w->result < 0;
}

/* After a signal: close 1000, then wait briefly for the server's close. */
static void close_cleanly(struct wsc *w)
{
    uint8_t pl[RC_WS_MAX_CONTROL_PAYLOAD];
    size_t n = rc_ws_close_payload(pl, RC_WS_CLOSE_NORMAL, "client done");
    if (send_frame(w, RC_WS_OP_CLOSE, pl, n) < 0)
        return;
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    uint8_t buf[4096];
    while (w->result < 0 && poll(&p, 1, CLOSE_WAIT_MS) > 0) {
        ssize_t r = recv(w->fd, buf, sizeof(buf), 0);
        if (r <= 0 || !feed(w, buf, (size_t)r))
            break;
    }
}

static int run_loop(struct wsc *w)
{
    uint8_t buf[65536];
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    while (w->result < 0) {
        if (stop_signal) {
            close_cleanly(w);
            return RC_CLI_OK;
        }
        int pr = poll(&p, 1, -1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return rc_cli_error(w->cmd, RC_CLI_FAIL, "poll: %s", strerror(errno));
        ssize_t r = recv(w->fd, buf, sizeof(buf), 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return rc_cli_error(w->cmd, RC_CLI_FAIL, "the server ended the connection%s%s",
                                r < 0 ? ": " : " without a close frame",
                                r < 0 ? strerror(errno) : "");
        (void)feed(w, buf, (size_t)r);
    }
    return w->result;
}

static json_t *subscribe_msg(const struct rc_cli_cmd *cmd, const char *pattern, const char *filter,
                             const char *since, int *rc)
{
    json_t *m =
        json_pack("{s:s, s:s, s:i}", "action", "subscribe", "topic", pattern, "id", SUBSCRIBE_ID);
    *rc = 0;
    if (filter) {
        json_error_t jerr;
        json_t *f = json_loads(filter, 0, &jerr);
        if (!json_is_object(f)) {
            json_decref(f);
            json_decref(m);
            *rc = rc_cli_error(cmd, RC_CLI_USAGE,
                               "--filter must be a JSON object such as '{\"model_id\":\"m1\"}'%s%s",
                               f ? "" : ": ", f ? "" : jerr.text);
            return NULL;
        }
        json_object_set_new(m, "filter", f);
    }
    if (since)
        json_object_set_new(m, "since", json_string(since));
    return m;
}

int rc_cli_subscribe(const struct rc_cli_cmd *cmd, int argc, char **argv, char **envp)
{
    struct rc_cli_opt opts[] = {RC_CLI_CLIENT_OPTS,
                                {.name = "filter", .has_arg = true},
                                {.name = "since", .has_arg = true},
                                {.name = "token", .has_arg = true}};
    size_t n = RC_ARRAY_LEN(opts), nargs;
    const char *args[1];
    int rc = rc_cli_parse(cmd, argc, argv, opts, n, args, 1, 1, &nargs);
    if (rc)
        return rc > 0 ? RC_CLI_OK : RC_CLI_USAGE;
    json_t *sub = subscribe_msg(cmd, args[0], rc_cli_opt(opts, n, "filter")->value,
                                rc_cli_opt(opts, n, "since")->value, &rc);
    if (!sub)
        return rc ? rc : RC_CLI_USAGE;
    const char *token = rc_cli_opt(opts, n, "token")->value;
    if (!token)
        token = getenv("RINGCAST_TOKEN");
    if (token && (strlen(token) > RC_JWT_MAX_TOKEN || strpbrk(token, "\r\n"))) {
        json_decref(sub);
        return rc_cli_error(cmd, RC_CLI_USAGE, "the token is over %d bytes or holds a line break",
                            RC_JWT_MAX_TOKEN);
    }
    struct rc_cli_client cl;
    struct wsc w = {.cmd = cmd, .fd = -1, .result = -1};
    char *head = malloc(HEAD_MAX);
    if ((rc = rc_cli_client_init(cmd, &cl, opts, n, envp)))
        goto out;
    if (!head) {
        rc = rc_cli_error(cmd, RC_CLI_FAIL, "out of memory");
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((w.fd = rc_cli_connect(cmd, &cl)) < 0) {
        rc = RC_CLI_FAIL;
        goto out;
    }
    size_t early_off = 0, early_n = 0;
    if ((rc = handshake(&w, &cl, token, head, &early_off, &early_n)))
        goto out;
    rc_ws_reader_init_client(&w.rd, &(struct rc_ws_limits){.max_message = MSG_MAX});
    /* the stream stays open as long as the user wants: no read timeout from here on */
    struct timeval none = {0};
    (void)setsockopt(w.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    if (send_json(&w, sub) < 0) {
        sub = NULL;
        rc = rc_cli_error(cmd, RC_CLI_FAIL, "cannot send the subscribe: %s", strerror(errno));
        goto out;
    }
    sub = NULL;
    if (!early_n || feed(&w, (uint8_t *)head + early_off, early_n))
        rc = run_loop(&w);
    else
        rc = w.result;
out:
    json_decref(sub);
    if (w.fd >= 0)
        close(w.fd);
    free(w.msg);
    free(head);
    rc_cli_client_fini(&cl);
    return rc;
}
