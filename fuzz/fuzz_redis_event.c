/* fuzz_redis_event.c - libFuzzer harness for the Redis engine's inputs that
 * come off the wire: a channel's event message and a stream entry id (a
 * Redis that is not ours, or a corrupted one, must never crash a node), and
 * redis_url (config). Checks: a parsed message's slices lie inside the input,
 * in order, its epoch is base 36 and its seq non-zero; the url parser either
 * fills a port or says why. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ringcast/redis_keys.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_slice(const char *base, size_t n, struct rc_slice s)
{
    CHECK(s.p >= base && s.p + s.n <= base + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct rc_redis_event ev;
    if (rc_redis_event_parse(s, size, &ev) == 0) {
        CHECK(ev.seq > 0 && ev.epoch[0]);
        for (const char *q = ev.epoch; *q; q++)
            CHECK((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z'));
        check_slice(s, size, ev.type);
        check_slice(s, size, ev.targeting);
        check_slice(s, size, ev.data);
        CHECK(ev.type.p < ev.targeting.p && ev.targeting.p <= ev.data.p);
        CHECK(memchr(ev.type.p, '\n', ev.type.n) == NULL);
    }
    (void)rc_redis_entry_seq(s, size);
    struct rc_redis_endpoint ep;
    struct rc_err err = {0};
    if (rc_redis_url_parse(s, size, &ep, &err) == 0)
        CHECK(ep.port > 0 && ep.db <= 15 && ep.host[0]);
    else
        CHECK(err.code && err.msg[0]);
    return 0;
}
