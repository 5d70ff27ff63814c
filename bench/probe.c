/* probe.c - the machine's own limit for a fan-out case, measured without any
 * server (issue 16): a writer thread sends pre-encoded WebSocket frames of the
 * case's size to N loopback TCP connections, B frames per send() for each B
 * asked, and a reader thread drains them. What the writer pays per frame is the
 * floor any server pays for the kernel's loopback TCP at that batching; the time
 * one pass (one frame to each of the N sockets) takes is the floor of a paced
 * event's latency to N subscribers.
 *
 * usage: probe --conns=N --frame=BYTES [--batches=1,4,16,64] [--frames=F]
 *              [--writer-cpu=C] [--reader-cpu=C]
 * F is the frames each connection gets per batch size (default 2000; rounded up
 * to a multiple of B). Prints one JSON line per B:
 *   {"probe":true,"conns","frame_bytes","batch","frames","frames_per_s",
 *    "writer_ns_per_frame","pass_us_p50","pass_us_p99"}
 * writer_ns_per_frame = the writer thread's CPU time (user + system) / frames;
 * pass_us: wall time of one pass over every connection at that B (p50, p99 over
 * the passes). Exit 0, or 2 on a set-up error (named on stderr).
 * Threads: main sets up and joins; the writer owns the accepted sockets, the
 * reader the connecting ones; they share only atomics (bytes read, stop). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 16

static int nconns, frame_bytes, frames_per_conn = 2000, writer_cpu = -1, reader_cpu = -1;
static int batches[BATCH_MAX] = {1, 4, 16, 64}, nbatches = 4;
static int *wfd, *rfd;
static _Atomic uint64_t bytes_read;
static _Atomic int stop_reader;

static void die(const char *what)
{
    fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        fprintf(stderr, "probe: cannot pin to CPU %d; running unpinned\n", cpu);
}

static void *reader_main(void *arg)
{
    (void)arg;
    pin(reader_cpu);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = rfd[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, rfd[i], &ev) < 0)
            die("epoll_ctl");
    }
    static char buf[1 << 16];
    struct epoll_event evs[256];
    while (!atomic_load(&stop_reader)) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            ssize_t r;
            while ((r = recv(evs[i].data.fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                atomic_fetch_add(&bytes_read, (uint64_t)r);
        }
    }
    close(ep);
    return NULL;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        p += w;
        n -= (size_t)w;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One batch size: passes over every connection, B frames per send. */
static void run_batch(int b, const char *frames)
{
    int passes = (frames_per_conn + b - 1) / b;
    size_t chunk = (size_t)b * (size_t)frame_bytes;
    uint64_t *pass_ns = calloc((size_t)passes, sizeof(*pass_ns));
    if (!pass_ns)
        die("calloc");
    uint64_t want = atomic_load(&bytes_read) + (uint64_t)passes * (uint64_t)nconns * chunk;
    uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
    for (int p = 0; p < passes; p++) {
        uint64_t s = now_ns(CLOCK_MONOTONIC);
        for (int i = 0; i < nconns; i++)
            send_all(wfd[i], frames, chunk);
        pass_ns[p] = now_ns(CLOCK_MONOTONIC) - s;
    }
    uint64_t cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    while (atomic_load(&bytes_read) < want) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    uint64_t t1 = now_ns(CLOCK_MONOTONIC);
    qsort(pass_ns, (size_t)passes, sizeof(*pass_ns), cmp_u64);
    double total = (double)passes * b * nconns;
    printf("{\"probe\":true,\"conns\":%d,\"frame_bytes\":%d,\"batch\":%d,\"frames\":%.0f,"
           "\"frames_per_s\":%.0f,\"writer_ns_per_frame\":%.1f,\"pass_us_p50\":%.1f,"
           "\"pass_us_p99\":%.1f}\n",
           nconns, frame_bytes, b, total, total / ((double)(t1 - t0) / 1e9),
           (double)(cpu1 - cpu0) / total, (double)pass_ns[passes / 2] / 1e3,
           (double)pass_ns[(size_t)passes * 99 / 100] / 1e3);
    fflush(stdout);
    free(pass_ns);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pin(writer_cpu);
    int bmax = 1;
    for (int i = 0; i < nbatches; i++)
        bmax = batches[i] > bmax ? batches[i] : bmax;
    /* bmax server frames (FIN text, 7- or 16-bit length), payload of 'x' */
    size_t hdr = frame_bytes - 2 < 126 ? 2 : 4;
    char *frames = malloc((size_t)bmax * (size_t)frame_bytes);
    if (!frames)
        die("malloc");
    for (int k = 0; k < bmax; k++) {
        char *f = frames + (size_t)k * (size_t)frame_bytes;
        size_t len = (size_t)frame_bytes - hdr;
        memset(f, 'x', (size_t)frame_bytes);
        f[0] = (char)0x81;
        if (hdr == 2) {
            f[1] = (char)len;
        } else {
            f[1] = 126;
            f[2] = (char)(len >> 8);
            f[3] = (char)len;
        }
    }
    for (int i = 0; i < nbatches; i++)
        run_batch(batches[i], frames);
    free(frames);
    return NULL;
}

static void parse_batches(const char *s)
{
    nbatches = 0;
    while (*s && nbatches < BATCH_MAX) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024) {
            fprintf(stderr, "probe: --batches takes numbers 1..1024, e.g. 1,4,16,64\n");
            exit(2);
        }
        batches[nbatches++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--conns=", 8) == 0)
            nconns = atoi(a + 8);
        else if (strncmp(a, "--frame=", 8) == 0)
            frame_bytes = atoi(a + 8);
        else if (strncmp(a, "--frames=", 9) == 0)
            frames_per_conn = atoi(a + 9);
        else if (strncmp(a, "--batches=", 10) == 0)
            parse_batches(a + 10);
        else if (strncmp(a, "--writer-cpu=", 13) == 0)
            writer_cpu = atoi(a + 13);
        else if (strncmp(a, "--reader-cpu=", 13) == 0)
            reader_cpu = atoi(a + 13);
        else {
            fprintf(stderr, "usage: probe --conns=N --frame=BYTES [--batches=1,4,16,64] "
                            "[--frames=F] [--writer-cpu=C] [--reader-cpu=C]\n");
            return 2;
        }
    }
    if (nconns < 1 || nconns > 100000 || frame_bytes < 2 || frame_bytes > 65535 ||
        frames_per_conn < 1) {
        fprintf(stderr, "probe: need --conns=1..100000, --frame=2..65535, --frames>=1\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(2 * nconns + 64)) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    wfd = calloc((size_t)nconns, sizeof(int));
    rfd = calloc((size_t)nconns, sizeof(int));
    if (!wfd || !rfd)
        die("calloc");
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
        die("listen on 127.0.0.1");
    int one = 1;
    for (int i = 0; i < nconns; i++) {
        rfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (rfd[i] < 0 || connect(rfd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect (raise ulimit -n?)");
        wfd[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (wfd[i] < 0)
            die("accept");
        /* as a server sets it: each send goes out at once */
        (void)setsockopt(wfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    close(lfd);
    pthread_t rt, wt;
    if (pthread_create(&rt, NULL, reader_main, NULL) != 0 ||
        pthread_create(&wt, NULL, writer_main, NULL) != 0)
        die("pthread_create");
    pthread_join(wt, NULL);
    atomic_store(&stop_reader, 1);
    pthread_join(rt, NULL);
    for (int i = 0; i < nconns; i++) {
        close(wfd[i]);
        close(rfd[i]);
    }
    free(wfd);
    free(rfd);
    return 0;
}
