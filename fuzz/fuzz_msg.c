/* fuzz_msg.c - libFuzzer harness for the client message parser and the reply
 * encoder. Arbitrary bytes -> rc_msg_parse; on success the parsed values are
 * echoed through rc_msg_reply, on failure the error through rc_msg_error.
 * Every reply must parse back as JSON (the encoder's escaping is checked, not
 * just exercised), and the raw input is also fed to the encoder as a message
 * string, which covers invalid UTF-8 and control characters. Small output
 * capacities (from the first input byte) exercise -ENOSPC.
 * Seeds: fuzz/corpus/fuzz_msg (taken from tests/test_msg.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest reply: data escapes at most 6 output bytes per input byte
 * (\u00XX), plus the envelope. */
#define OUT_CAP (6 * 4096 + 512)
#define IN_MAX 4096

static char out[OUT_CAP];
static char text[IN_MAX + 1];

/* Our own invariant broken: crash loudly so libFuzzer records the input. */
static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_msg: invariant broken: %s\n", what);
        abort();
    }
}

/* n bytes in out must be one JSON text jansson accepts. */
static void check_json(ssize_t n)
{
    json_t *back;

    if (n == -ENOSPC)
        return;
    check(n > 0, "encoder returned an error other than -ENOSPC");
    back = json_loadb(out, (size_t)n, 0, NULL);
    check(back != NULL, "encoder output is not valid JSON");
    json_decref(back);
}

static size_t small_cap(const uint8_t *data, size_t size)
{
    return size ? data[0] % 96 : 0;
}

static void echo_ok(const struct rc_client_msg *m, size_t cap)
{
    const json_t *val = m->data ? m->data : m->payload ? m->payload : m->filter;
    ssize_t n;

    check(m->root != NULL, "success without a tree");
    if (m->action == RC_ACT_SUBSCRIBE || m->action == RC_ACT_PUBLISH ||
        m->action == RC_ACT_PRESENCE)
        check(m->topic != NULL && strlen(m->topic) == m->topic_len, "topic missing or bad length");
    if (m->action == RC_ACT_UNSUBSCRIBE)
        check((m->topic != NULL) != (m->subscription != NULL), "unsubscribe needs exactly one key");
    if (m->action == RC_ACT_PUBLISH)
        check(m->type != NULL && m->data != NULL, "publish without type or data");
    if (m->action == RC_ACT_AUTH)
        check(m->token != NULL && m->token[0] != '\0', "auth without token");
    n = rc_msg_reply(out, sizeof(out), rc_action_name(m->action), m->id, val);
    check_json(n);
    check(n != -ENOSPC, "reply did not fit the worst-case buffer");
    n = rc_msg_reply(out, cap, "x", m->id, val);
    check(n == -ENOSPC || (n > 0 && (size_t)n <= cap), "short reply overran or failed");
}

static void echo_err(const struct rc_client_msg *m, const struct rc_err *e, size_t cap)
{
    ssize_t n;

    check(e->code != NULL, "failure without a code");
    check(memchr(e->msg, '\0', sizeof(e->msg)) != NULL, "message not terminated");
    check(e->msg[0] != '\0', "failure without a message");
    n = rc_msg_error(out, sizeof(out), m->id, e->code, e->msg);
    check_json(n);
    check(n != -ENOSPC, "error did not fit the worst-case buffer");
    n = rc_msg_error(out, cap, m->id, e->code, e->msg);
    check(n == -ENOSPC || (n > 0 && (size_t)n <= cap), "short error overran or failed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_client_msg m;
    struct rc_err e = {0};
    struct rc_msg_limits lim = {.max_bytes = IN_MAX};
    size_t cap = small_cap(data, size), tn;

    if (rc_msg_parse((const char *)data, size, &lim, &m, &e) == 0)
        echo_ok(&m, cap);
    else
        echo_err(&m, &e, cap);
    rc_msg_fini(&m);

    /* The raw bytes as an error message string (up to the first NUL). */
    tn = size < IN_MAX ? size : IN_MAX;
    memcpy(text, data, tn);
    text[tn] = '\0';
    check_json(rc_msg_error(out, sizeof(out), NULL, "fuzz", text));
    return 0;
}
