/* cli_net.c - the CLI's blocking transport: a TCP connect with a deadline, and one HTTP/1.1
 * request per connection (Connection: close; the answer is read to EOF, so neither
 * Content-Length nor chunked framing has to be trusted). The WebSocket client on top of
 * rc_cli_connect is cli_subscribe.c.
 * Owner: the main thread (the CLI is single-threaded). Blocking sockets with
 *   SO_RCVTIMEO/SO_SNDTIMEO = the client's timeout.
 * Bounds: an answer is at most RESPONSE_MAX bytes (stats with a large limit stay far
 *   below it); past it the request fails naming the cap. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_internal.h"

#define RESPONSE_MAX (64u << 20)

/* connect() on a non-blocking socket, waiting at most ms; 0 or -errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int ms)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            return -errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n;
        do
            n = poll(&p, 1, ms);
        while (n < 0 && errno == EINTR);
        if (n == 0)
            return -ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -errno;
        if (soerr)
            return -soerr;
    }
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int rc_cli_connect(const struct rc_cli_cmd *cmd, const struct rc_cli_client *cl)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(cl->host, cl->port, &hints, &ai);
    if (g != 0) {
        rc_cli_error(cmd, RC_CLI_FAIL, "cannot resolve %s: %s; check --url", cl->host,
                     gai_strerror(g));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = -errno;
            continue;
        }
        last = connect_within(fd, a->ai_addr, a->ai_addrlen, cl->timeout_ms);
        if (last < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        rc_cli_error(cmd, RC_CLI_FAIL,
                     "cannot connect to %s: %s; is ringcast running there? (give --url or "
                     "RINGCAST_URL, e.g. --url=http://127.0.0.1:8080)",
                     cl->hostport, strerror(-last));
        return -1;
    }
    struct timeval tv = {.tv_sec = cl->timeout_ms / 1000,
                         .tv_usec = (cl->timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

int rc_cli_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read to EOF into a heap buffer (NUL-terminated). 0 or -errno (-EFBIG past the cap). */
static int read_all(int fd, char **out, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (cap - n < 4096) {
            if (cap >= RESPONSE_MAX) {
                free(b);
                return -EFBIG;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, b + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno == EAGAIN ? ETIMEDOUT : errno;
            free(b);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

static int parse_response(struct rc_cli_response *r, size_t len)
{
    int major, minor, status;
    if (sscanf(r->raw, "HTTP/%d.%d %3d", &major, &minor, &status) != 3 || status < 100 ||
        status > 599)
        return -EPROTO;
    char *end = strstr(r->raw, "\r\n\r\n");
    if (!end)
        return -EPROTO;
    r->status = status;
    r->body = end + 4;
    r->body_len = len - (size_t)(r->body - r->raw);
    return 0;
}

int rc_cli_http(const struct rc_cli_cmd *cmd, const struct rc_cli_client *cl, const char *method,
                const char *path, const char *body, struct rc_cli_response *out)
{
    memset(out, 0, sizeof(*out));
    int fd = rc_cli_connect(cmd, cl);
    if (fd < 0)
        return RC_CLI_FAIL;
    size_t bl = body ? strlen(body) : 0;
    char key[600] = "", clen[80] = "";
    if (cl->api_key[0])
        snprintf(key, sizeof(key), "X-API-Key: %s\r\n", cl->api_key);
    if (body)
        snprintf(clen, sizeof(clen), "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 bl);
    char head[2048];
    int hn = snprintf(head, sizeof(head),
                      "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                      "User-Agent: ringcast-cli\r\nAccept: application/json\r\n%s%s\r\n",
                      method, cl->base, path, cl->hostport, key, clen);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        close(fd);
        return rc_cli_error(cmd, RC_CLI_USAGE, "the request head is too long");
    }
    int rc = rc_cli_write_all(fd, head, (size_t)hn);
    if (rc == 0 && bl)
        rc = rc_cli_write_all(fd, body, bl);
    size_t len = 0;
    if (rc == 0)
        rc = read_all(fd, &out->raw, &len);
    close(fd);
    if (rc == -EFBIG)
        return rc_cli_error(cmd, RC_CLI_FAIL, "the answer from %s is over %u MiB", cl->hostport,
                            RESPONSE_MAX >> 20);
    if (rc < 0)
        return rc_cli_error(cmd, RC_CLI_FAIL, "no answer from %s: %s%s", cl->hostport,
                            strerror(-rc),
                            rc == -ETIMEDOUT ? "; the server is slow or hung (see --timeout)" : "");
    if (parse_response(out, len) < 0) {
        rc_cli_response_fini(out);
        return rc_cli_error(cmd, RC_CLI_FAIL,
                            "%s did not answer HTTP; is --url pointing at ringcast?", cl->hostport);
    }
    return 0;
}

void rc_cli_response_fini(struct rc_cli_response *r)
{
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

int rc_cli_http_result(const struct rc_cli_cmd *cmd, const struct rc_cli_response *r)
{
    if (r->status >= 200 && r->status < 300)
        return RC_CLI_OK;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int exit_code = r->status >= 400 && r->status < 500 ? RC_CLI_REFUSED : RC_CLI_FAIL;
    if (code && msg)
        rc_cli_error(cmd, exit_code, "the server answered %d %s: %s%s", r->status, code, msg,
                     r->status == 401 || r->status == 403
                         ? " (give an API key with --api-key or RINGCAST_API_KEY)"
                         : "");
    else
        rc_cli_error(cmd, exit_code, "the server answered %d: %.*s", r->status,
                     (int)(r->body_len > 300 ? 300 : r->body_len), r->body);
    json_decref(j);
    return exit_code;
}
