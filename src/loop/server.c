/* server.c - the process-wide part that runs on the main thread: listeners
 * (one SO_REUSEPORT socket per shard, optionally steered by client address),
 * starting the shard threads and waiting for their rings, draining and
 * stopping them, and freeing what they owned once every thread is joined.
 * The shards themselves (ring, loop, connections) are shard.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringcast/limits.h"
#include "ringcast/log.h"
#include "ringcast/server.h"
#include "ringcast/shard.h"

/* Start-up and shutdown handshakes with the main thread (never on a request
 * path): the main thread waits until every shard's ring is ready, and at
 * shutdown until every shard has drained its connections, before it tells
 * them all to stop; a drained shard keeps serving its inbox until then,
 * because other shards may still post to it (publishes to topics it owns). */
static pthread_mutex_t g_start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_start_cond = PTHREAD_COND_INITIALIZER;
static unsigned g_started;
static unsigned g_drained;

void rc_server_report_started(void)
{
    pthread_mutex_lock(&g_start_lock);
    g_started++;
    pthread_cond_broadcast(&g_start_cond);
    pthread_mutex_unlock(&g_start_lock);
}

void rc_server_report_drained(void)
{
    pthread_mutex_lock(&g_start_lock);
    g_drained++;
    pthread_cond_broadcast(&g_start_cond);
    pthread_mutex_unlock(&g_start_lock);
}

/* ---- server (main thread) --------------------------------------------------------- */

/* The inode of a socket listening on port, from /proc/net/tcp{,6}; 0 if none is found. */
static unsigned long listening_inode(uint16_t port)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < RC_ARRAY_LEN(tables); t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f)
            continue;
        char line[512];
        unsigned long inode = 0;
        while (!inode && fgets(line, sizeof(line), f)) {
            char local[64];
            unsigned st;
            unsigned long ino;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &ino) != 3)
                continue;
            const char *colon = strrchr(local, ':');
            if (st == 0x0A && colon && strtoul(colon + 1, NULL, 16) == port)
                inode = ino;
        }
        fclose(f);
        if (inode)
            return inode;
    }
    return 0;
}

/* Best effort: "pid 123 (ringcast)" of the process holding a socket listening on port,
 * or "" (the process may belong to another user: its fds are not readable). */
static void port_owner(uint16_t port, char *out, size_t cap)
{
    out[0] = '\0';
    unsigned long inode = listening_inode(port);
    if (!inode)
        return;
    char want[48];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    if (!proc)
        return;
    struct dirent *pe;
    while (!out[0] && (pe = readdir(proc))) {
        char *end;
        long pid = strtol(pe->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char path[64], link[64];
        snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
        DIR *fds = opendir(path);
        if (!fds)
            continue;
        struct dirent *fe;
        while ((fe = readdir(fds))) {
            snprintf(path, sizeof(path), "/proc/%ld/fd/%.20s", pid, fe->d_name);
            ssize_t n = readlink(path, link, sizeof(link) - 1);
            if (n <= 0)
                continue;
            link[n] = '\0';
            if (strcmp(link, want) != 0)
                continue;
            char comm[32] = "?";
            snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
            FILE *f = fopen(path, "re");
            if (f) {
                if (fgets(comm, sizeof(comm), f))
                    comm[strcspn(comm, "\n")] = '\0';
                fclose(f);
            }
            snprintf(out, cap, " by pid %ld (%s)", pid, comm);
            break;
        }
        closedir(fds);
    }
    closedir(proc);
}

/* Our listeners share the port with SO_REUSEPORT, and so would a second
 * ringcast of the same user: it would start silently and take half the
 * connections. So before binding, try to bind the address without
 * SO_REUSEPORT: that fails while anyone else listens there. */
static int check_port_free(const struct sockaddr *sa, socklen_t slen, const char *addr,
                           uint16_t port, struct rc_err *err)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc_err_set(err, 0, "listen", "socket(): %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is no owner */
    int rc = bind(fd, sa, slen) == 0 ? 0 : -errno;
    close(fd);
    if (rc == -EADDRINUSE) {
        char owner[96];
        port_owner(port, owner, sizeof(owner));
        rc_err_set(err, 0, "listen",
                   "port %u on %s is already in use%s%s; stop the other server (a second "
                   "ringcast on one port would silently share its connections) or choose "
                   "another port",
                   port, addr, owner[0] ? "" : " by another process", owner);
    } else if (rc < 0) {
        rc_err_set(err, 0, "listen", "bind %s port %u: %s", addr, port, strerror(-rc));
    }
    return rc;
}

/* addr (listen_address, or metrics_address's host) and port as a socket
 * address; -EINVAL (err set) if not a literal. */
static int listen_sockaddr(const char *cfg_addr, uint16_t port, struct sockaddr_storage *ss,
                           socklen_t *slen, struct rc_err *err)
{
    memset(ss, 0, sizeof(*ss));
    const char *addr = cfg_addr;
    if (strcmp(addr, "localhost") == 0)
        addr = "127.0.0.1";
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *slen = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *slen = sizeof(*in6);
        return 0;
    }
    rc_err_set(err, 0, "bad_config", "listen address %s is not an IPv4 or IPv6 literal", cfg_addr);
    return -EINVAL;
}

static int make_listener(const char *addr, uint16_t port, uint16_t *bound, struct rc_err *err)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    int rc = listen_sockaddr(addr, port, &ss, &slen, err);
    if (rc < 0)
        return rc;
    int family = ss.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc_err_set(err, 0, "listen", "socket(): %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "setsockopt(SO_REUSEPORT): %s", strerror(e));
        close(fd);
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "bind %s port %u: %s", addr, port, strerror(e));
        close(fd);
        return -e;
    }
    if (listen(fd, 4096) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen", "listen(): %s", strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &glen);
    *bound = ntohs(family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                     : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

/* With per-IP limits, every connection from one client address must land on
 * the same shard, so that each shard's count is the address's whole count.
 * A classic BPF program on the SO_REUSEPORT group picks the listener (= the
 * shard, in creation order) by hashing the source address: IPv4, or the /64
 * of IPv6 (the same key limits.c uses). */
static int steer_by_address(int fd, unsigned nshards, struct rc_err *err)
{
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF + 0),
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 2, 0),
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12), /* v4 src */
        /* 4 */ BPF_STMT(BPF_JMP | BPF_JA, 4),
        /* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 8), /* v6 /64 */
        /* 6 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 7 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 8 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 9 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nshards),
        /* 10 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = RC_ARRAY_LEN(code), .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0) {
        int e = errno;
        rc_err_set(err, 0, "listen",
                   "setsockopt(SO_ATTACH_REUSEPORT_CBPF): %s (needed to enforce per-IP limits "
                   "across shards)",
                   strerror(e));
        return -e;
    }
    return 0;
}

int rc_server_init(struct rc_server *srv, const struct rc_config *cfg, struct rc_err *err)
{
    memset(srv, 0, sizeof(*srv));
    srv->metrics_fd = -1;
    srv->cfg = cfg;
    unsigned n = cfg->shards;
    if (n == 0) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            n = (unsigned)CPU_COUNT(&set);
        if (n == 0)
            n = 1;
    }
    if (n > RC_MAX_SHARDS)
        n = RC_MAX_SHARDS;
    srv->nshards = n;
    srv->epoch_ms = (uint64_t)time(NULL) * 1000u;
    {
        /* base-36 start epoch (seconds): event ids of different runs differ */
        uint64_t v = srv->epoch_ms / 1000u;
        char tmp[16];
        int k = 0;
        do {
            tmp[k++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
            v /= 36;
        } while (v && k < 15);
        for (int i = 0; i < k; i++)
            srv->epoch_str[i] = tmp[k - 1 - i];
        srv->epoch_str[k] = '\0';
    }
    srv->start_mono_ms = rc_now_ms();
    srv->api_open = cfg->api_keys.n == 0;
    rc_connbudget_init(&srv->conns, cfg->max_connections);
    srv->shards = calloc(n, sizeof(*srv->shards));
    if (!srv->shards)
        return -ENOMEM;
    uint16_t port = cfg->port;
    if (port != 0) {
        struct sockaddr_storage ss;
        socklen_t slen;
        int rc = listen_sockaddr(cfg->listen_address, port, &ss, &slen, err);
        if (rc == 0)
            rc = check_port_free((struct sockaddr *)&ss, slen, cfg->listen_address, port, err);
        if (rc < 0)
            return rc;
    }
    for (unsigned i = 0; i < n; i++) {
        struct rc_shard *s = calloc(1, sizeof(*s));
        if (!s)
            return -ENOMEM;
        srv->shards[i] = s;
        s->id = i;
        s->srv = srv;
        s->cfg = cfg;
        s->listen_fd = -1;
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0) {
            rc_err_set(err, 0, "start", "eventfd(): %s", strerror(errno));
            return -errno;
        }
        rc_mpsc_init(&s->inbox, s->wake_fd);
        rc_pool_init(&s->conn_pool, sizeof(struct rc_conn), 256, 0);
        uint16_t bound = 0;
        int fd = make_listener(cfg->listen_address, port, &bound, err);
        if (fd < 0)
            return fd;
        s->listen_fd = fd;
        port = bound; /* port 0: the first listener picks, the others share it */
    }
    if (cfg->metrics_address[0]) {
        char host[RC_CONFIG_ADDR_MAX];
        uint16_t mport = 0, mbound = 0;
        if (rc_config_hostport(cfg->metrics_address, host, &mport, err) < 0)
            return -EINVAL;
        srv->metrics_fd = make_listener(host, mport, &mbound, err);
        if (srv->metrics_fd < 0)
            return srv->metrics_fd;
    }
    /* behind a PROXY-protocol proxy every socket has the proxy's address:
     * steering by it would put every connection on one shard */
    if (n > 1 && (cfg->max_connections_per_ip || cfg->handshake_rate_per_ip) &&
        !cfg->proxy_protocol) {
        int rc = steer_by_address(srv->shards[0]->listen_fd, n, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&got, &glen))
        return 0;
    if (got.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&got)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
}

uint16_t rc_server_port(const struct rc_server *srv)
{
    return srv->nshards ? bound_port(srv->shards[0]->listen_fd) : 0;
}

uint16_t rc_server_metrics_port(const struct rc_server *srv)
{
    return bound_port(srv->metrics_fd);
}

int rc_server_start(struct rc_server *srv, struct rc_err *err)
{
    for (unsigned i = 0; i < srv->nshards; i++) {
        int rc = pthread_create(&srv->shards[i]->thread, NULL, rc_shard_main, srv->shards[i]);
        if (rc) {
            rc_err_set(err, 0, "start", "pthread_create: %s", strerror(rc));
            return -rc;
        }
    }
    pthread_mutex_lock(&g_start_lock);
    while (g_started < srv->nshards)
        pthread_cond_wait(&g_start_cond, &g_start_lock);
    pthread_mutex_unlock(&g_start_lock);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (s->startup_error) {
            rc_err_set(err, 0, "io_uring", "shard %u: %s", i, s->startup_msg);
            return s->startup_error;
        }
    }
    return 0;
}

/* The drain and stop posts are embedded in struct rc_shard: never freed. */
static void discard_embedded(struct rc_post *p)
{
    (void)p;
}

void rc_server_drain(struct rc_server *srv)
{
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s || s->drain_posted)
            continue;
        s->drain_posted = true; /* main thread only */
        s->drain_post.run = rc_shard_run_drain;
        s->drain_post.discard = discard_embedded;
        rc_shard_post(s, &s->drain_post);
    }
}

void rc_server_wait_drained(struct rc_server *srv)
{
    unsigned running = 0;
    for (unsigned i = 0; i < srv->nshards; i++)
        if (srv->shards && srv->shards[i] && srv->shards[i]->thread)
            running++;
    pthread_mutex_lock(&g_start_lock);
    while (g_drained < running)
        pthread_cond_wait(&g_start_cond, &g_start_lock);
    pthread_mutex_unlock(&g_start_lock);
}

void rc_server_join(struct rc_server *srv)
{
    /* every shard drains first; only then may any of them stop */
    rc_server_wait_drained(srv);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s || !s->thread)
            continue;
        s->stop_post.run = rc_shard_run_stop;
        s->stop_post.discard = discard_embedded;
        rc_shard_post(s, &s->stop_post);
    }
    for (unsigned i = 0; i < srv->nshards; i++)
        if (srv->shards && srv->shards[i] && srv->shards[i]->thread)
            pthread_join(srv->shards[i]->thread, NULL);
    /* all threads are gone: what they owned may be freed from here */
    for (unsigned i = 0; i < srv->nshards && srv->shards; i++) {
        struct rc_shard *s = srv->shards[i];
        if (!s)
            continue;
        struct rc_mpsc_node *n;
        while ((n = rc_mpsc_pop(&s->inbox))) {
            struct rc_post *p = RC_CONTAINER_OF(n, struct rc_post, node);
            p->discard(p);
        }
        if (s->ring_ready)
            io_uring_queue_exit(&s->ring);
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        close(s->wake_fd);
        free(s->br);
        free(s->bufs);
        free(s->slots);
        free(s->gens);
        free(s->free_slots);
        rc_pool_fini(&s->conn_pool);
        free(s);
    }
    if (srv->metrics_fd >= 0)
        close(srv->metrics_fd);
    srv->metrics_fd = -1;
    free(srv->shards);
    srv->shards = NULL;
}
