/* fuzz_event_id.c - libFuzzer harness for the event id and SSE stream id
 * parsers (both read a client's Last-Event-ID / since). Input: byte 0 picks
 * the stream's topic count (1..RC_STREAM_TOPICS_MAX), the rest is the id.
 * Checks: a parsed event id formats back to the same bytes; a parsed stream id
 * fills only positions below the topic count, each a valid event id, and
 * formats back to an id that parses to the same positions; a failure always
 * says why (code bad_event_id and a message). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/history.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_event_id(const char *s, size_t n)
{
    char epoch[RC_EPOCH_MAX];
    uint64_t seq;
    struct rc_err err = {0};
    if (rc_event_id_parse(s, n, epoch, sizeof(epoch), &seq, &err) < 0) {
        CHECK(err.code && strcmp(err.code, "bad_event_id") == 0 && err.msg[0]);
        return;
    }
    char out[RC_EVENT_ID_MAX];
    int k = rc_event_id_format(out, epoch, seq);
    CHECK(k > 0 && (size_t)k == n && memcmp(out, s, n) == 0);
}

static void check_stream_id(const char *s, size_t n, size_t ntopics)
{
    static struct rc_stream_pos pos[RC_STREAM_TOPICS_MAX], back[RC_STREAM_TOPICS_MAX];
    memset(pos, 0, sizeof(pos));
    struct rc_err err = {0};
    if (rc_stream_id_parse(s, n, pos, ntopics, &err) < 0) {
        CHECK(err.code && strcmp(err.code, "bad_event_id") == 0 && err.msg[0]);
        return;
    }
    for (size_t i = ntopics; i < RC_STREAM_TOPICS_MAX; i++)
        CHECK(pos[i].id[0] == '\0');
    for (size_t i = 0; i < ntopics; i++)
        if (pos[i].id[0])
            check_event_id(pos[i].id, strlen(pos[i].id));
    static char out[RC_STREAM_ID_MAX];
    ssize_t k = rc_stream_id_format(out, sizeof(out), pos, ntopics);
    CHECK(k > 0 && k < RC_STREAM_ID_MAX);
    memset(back, 0, sizeof(back));
    CHECK(rc_stream_id_parse(out, (size_t)k, back, ntopics, &err) == 0);
    for (size_t i = 0; i < ntopics; i++)
        CHECK(strcmp(pos[i].id, back[i].id) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ntopics = 1 + data[0] % RC_STREAM_TOPICS_MAX;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    check_event_id(s, n);
    check_stream_id(s, n, ntopics);
    return 0;
}
