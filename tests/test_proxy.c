/* test_proxy.c - PROXY protocol v1/v2 parser: valid headers whole, byte by byte and with
 * trailing session bytes; LOCAL/UNKNOWN; every malformed case gives an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "ringcast/proxy.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* feed all of buf in pieces of step bytes; return the status and total consumed */
static enum rc_proxy_status feed_steps(struct rc_proxy *p, const uint8_t *buf, size_t len,
                                       size_t step, size_t *total)
{
    rc_proxy_init(p);
    *total = 0;
    enum rc_proxy_status st = RC_PROXY_MORE;
    for (size_t off = 0; off < len && st == RC_PROXY_MORE; off += step) {
        size_t n = len - off < step ? len - off : step, c = 0;
        st = rc_proxy_feed(p, buf + off, n, &c);
        assert_true(c <= n);
        if (st == RC_PROXY_MORE)
            assert_int_equal(c, n);
        *total += c;
    }
    return st;
}

static void check_v4(const struct rc_proxy *p, const char *ip, uint16_t port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&p->result.src;
    char buf[INET_ADDRSTRLEN];
    assert_false(p->result.local);
    assert_int_equal(p->result.family, AF_INET);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void test_proxy_v1_tcp4_split(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
    size_t hl = strlen("PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n");
    for (size_t step = 1; step <= strlen(s); step++) {
        struct rc_proxy p;
        size_t tot;
        assert_int_equal(feed_steps(&p, (const uint8_t *)s, strlen(s), step, &tot), RC_PROXY_DONE);
        assert_int_equal(tot, hl);
        assert_int_equal(p.result.header_len, hl);
        assert_int_equal(p.result.version, 1);
        check_v4(&p, "192.0.2.7", 56324);
        size_t c = 99;
        assert_int_equal(rc_proxy_feed(&p, (const uint8_t *)"x", 1, &c), RC_PROXY_DONE);
        assert_int_equal(c, 0);
    }
}

static void test_proxy_v1_tcp6_and_unknown(void **state)
{
    (void)state;
    struct rc_proxy p;
    size_t tot;
    const char *s6 = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    assert_int_equal(feed_steps(&p, (const uint8_t *)s6, strlen(s6), 3, &tot), RC_PROXY_DONE);
    assert_int_equal(p.result.family, AF_INET6);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&p.result.src;
    assert_int_equal(ntohs(sin6->sin6_port), 1);
    const char *u = "PROXY UNKNOWN\r\n";
    assert_int_equal(feed_steps(&p, (const uint8_t *)u, strlen(u), 100, &tot), RC_PROXY_DONE);
    assert_true(p.result.local);
    const char *u2 = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(feed_steps(&p, (const uint8_t *)u2, strlen(u2), 100, &tot), RC_PROXY_DONE);
    assert_true(p.result.local);
}

static void test_proxy_v1_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY\r\n",
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx\n",
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rc_proxy p;
        size_t tot;
        assert_int_equal(feed_steps(&p, (const uint8_t *)bad[i], strlen(bad[i]), 1, &tot),
                         RC_PROXY_ERROR);
        assert_non_null(p.reason);
        size_t c = 5;
        assert_int_equal(rc_proxy_feed(&p, (const uint8_t *)"x", 1, &c), RC_PROXY_ERROR);
        assert_int_equal(c, 0);
    }
    /* longer than 107 bytes without a LF */
    char longl[200];
    memset(longl, 'A', sizeof(longl));
    memcpy(longl, "PROXY ", 6);
    struct rc_proxy p;
    size_t tot;
    assert_int_equal(feed_steps(&p, (const uint8_t *)longl, sizeof(longl), 7, &tot),
                     RC_PROXY_ERROR);
    assert_true(tot <= RC_PROXY_V1_MAX + 7);
}

static size_t v2_build(uint8_t *b, uint8_t ver_cmd, uint8_t fam, size_t body)
{
    memcpy(b, sig, 12);
    b[12] = ver_cmd;
    b[13] = fam;
    b[14] = (uint8_t)(body >> 8);
    b[15] = (uint8_t)body;
    return 16;
}

static void test_proxy_v2_inet_with_tlvs_split(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = v2_build(b, 0x21, 0x11, 12 + 7);
    const uint8_t addr[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0x1F, 0x90, 0x01, 0xBB};
    memcpy(b + n, addr, 12);
    n += 12;
    const uint8_t tlv[7] = {0x04, 0x00, 0x04, 'a', 'b', 'c', 'd'}; /* PP2_TYPE_NOOP */
    memcpy(b + n, tlv, 7);
    n += 7;
    memcpy(b + n, "GET", 3);
    for (size_t step = 1; step <= n + 3; step++) {
        struct rc_proxy p;
        size_t tot;
        assert_int_equal(feed_steps(&p, b, n + 3, step, &tot), RC_PROXY_DONE);
        assert_int_equal(tot, n);
        assert_int_equal(p.result.version, 2);
        check_v4(&p, "198.51.100.9", 8080);
    }
}

static void test_proxy_v2_inet6_and_local(void **state)
{
    (void)state;
    uint8_t b[128] = {0};
    size_t n = v2_build(b, 0x21, 0x21, 36);
    b[16] = 0x20;
    b[17] = 0x01;
    b[16 + 32] = 0x12;
    b[16 + 33] = 0x34;
    struct rc_proxy p;
    size_t tot;
    assert_int_equal(feed_steps(&p, b, n + 36, 5, &tot), RC_PROXY_DONE);
    assert_int_equal(p.result.family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&p.result.src)->sin6_port), 0x1234);
    n = v2_build(b, 0x20, 0x00, 0);
    assert_int_equal(feed_steps(&p, b, n, 16, &tot), RC_PROXY_DONE);
    assert_true(p.result.local);
    assert_int_equal(tot, 16);
}

static void test_proxy_v2_malformed(void **state)
{
    (void)state;
    struct {
        uint8_t vc, fam;
        size_t body;
    } bad[] = {
        {0x11, 0x11, 12},           /* version 1 */
        {0x31, 0x11, 12},           /* version 3 */
        {0x22, 0x11, 12},           /* command 2 */
        {0x21, 0x12, 12},           /* DGRAM */
        {0x21, 0x31, 216},          /* AF_UNIX */
        {0x21, 0x01, 0},            /* AF_UNSPEC with PROXY */
        {0x21, 0x11, 11},           /* too short for v4 */
        {0x21, 0x21, 35},           /* too short for v6 */
        {0x21, 0x11, RC_PROXY_MAX}, /* length bound */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[RC_PROXY_MAX + 16] = {0};
        size_t n = v2_build(b, bad[i].vc, bad[i].fam, bad[i].body);
        struct rc_proxy p;
        size_t tot;
        assert_int_equal(feed_steps(&p, b, n + bad[i].body, 3, &tot), RC_PROXY_ERROR);
        assert_non_null(p.reason);
    }
    /* a broken signature */
    uint8_t b[16];
    v2_build(b, 0x21, 0x11, 0);
    b[7] = 0x52;
    struct rc_proxy p;
    size_t tot;
    assert_int_equal(feed_steps(&p, b, 16, 1, &tot), RC_PROXY_ERROR);
    assert_int_equal(tot, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_v1_tcp4_split),
        cmocka_unit_test(test_proxy_v1_tcp6_and_unknown),
        cmocka_unit_test(test_proxy_v1_malformed),
        cmocka_unit_test(test_proxy_v2_inet_with_tlvs_split),
        cmocka_unit_test(test_proxy_v2_inet6_and_local),
        cmocka_unit_test(test_proxy_v2_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
