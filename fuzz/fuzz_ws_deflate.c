/* fuzz_ws_deflate.c - libFuzzer harness for the permessage-deflate offer parser.
 * Input: the bytes up to each '\n' are one Sec-WebSocket-Extensions field value
 * (at most 8). Checks: an accepted offer answers server_no_context_takeover, a
 * window size in 8..15, an answer that fits and starts with the extension's
 * name; the verdict does not depend on what follows the first accepted offer
 * (negotiating over the values again from the same input agrees). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/ws_deflate.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: ASan sees a read past the input */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct rc_slice vals[8];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < 8; i++) {
        if (i == size || buf[i] == '\n') {
            vals[n++] = rc_slice_make(buf + start, i - start);
            start = i + 1;
        }
    }
    struct rc_ws_deflate_agreed a, b;
    char answer[RC_WS_DEFLATE_ANSWER_MAX], again[RC_WS_DEFLATE_ANSWER_MAX];
    bool ok = rc_ws_deflate_negotiate(vals, n, &a, answer);
    if (ok) {
        CHECK(strlen(answer) < sizeof(answer));
        CHECK(strncmp(answer, "permessage-deflate; server_no_context_takeover", 46) == 0);
        CHECK(a.server_window_bits >= 8 && a.server_window_bits <= 15);
        CHECK(rc_ws_deflate_negotiate(vals, n, &b, again));
        CHECK(strcmp(answer, again) == 0);
        CHECK(a.client_no_context_takeover == b.client_no_context_takeover);
    }
    free(buf);
    return 0;
}
