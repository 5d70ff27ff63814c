/* fuzz_proxy.c - libFuzzer harness for the PROXY protocol parser.
 * Input: byte 0 picks the split point, the rest is the stream, fed in two pieces.
 * Checks: consumed <= piece; MORE consumes the whole piece; DONE's header_len equals
 * the bytes consumed and is within the bounds; ERROR carries a reason; the verdict
 * matches a byte-by-byte feed of the same stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/proxy.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0];
    data++;
    size--;
    if (split > size)
        split = size;
    static struct rc_proxy p, q;
    rc_proxy_init(&p);
    size_t c1 = 0, c2 = 0;
    enum rc_proxy_status st = rc_proxy_feed(&p, data, split, &c1);
    CHECK(c1 <= split);
    if (st == RC_PROXY_MORE) {
        CHECK(c1 == split);
        st = rc_proxy_feed(&p, data + split, size - split, &c2);
        CHECK(c2 <= size - split);
        if (st == RC_PROXY_MORE)
            CHECK(c2 == size - split);
    }
    if (st == RC_PROXY_DONE) {
        CHECK(p.result.header_len == c1 + c2);
        CHECK(p.result.header_len <= RC_PROXY_MAX);
        CHECK(p.result.version != 1 || p.result.header_len <= RC_PROXY_V1_MAX);
    }
    if (st == RC_PROXY_ERROR)
        CHECK(p.reason != NULL);
    rc_proxy_init(&q);
    enum rc_proxy_status sq = RC_PROXY_MORE;
    size_t tot = 0;
    for (size_t i = 0; i < size && sq == RC_PROXY_MORE; i++) {
        size_t c = 0;
        sq = rc_proxy_feed(&q, data + i, 1, &c);
        tot += c;
    }
    CHECK(sq == st);
    if (st == RC_PROXY_DONE)
        CHECK(tot == c1 + c2 && memcmp(&p.result, &q.result, sizeof(p.result)) == 0);
    return 0;
}
