/* fuzz_filter.c - bytes -> filter text -> compile. Must not crash or leak; a
 * compiled filter's canonical text compiles again to the same canonical text,
 * and a clone is identical. */
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_filter *f = NULL, *g = NULL, *c;
    struct rc_err err = {0};

    if (rc_filter_parse_text((const char *)data, size, NULL, &f, &err)) {
        if (!err.code || err.msg[0] == 0)
            abort(); /* every failure must say why */
        return 0;
    }
    if (rc_filter_parse_text(f->canonical, f->canonical_len, NULL, &g, &err)) {
        fprintf(stderr, "canonical %s does not compile: %s\n", f->canonical, err.msg);
        abort();
    }
    if (g->canonical_len != f->canonical_len ||
        memcmp(g->canonical, f->canonical, f->canonical_len) || g->npreds != f->npreds ||
        g->hash != f->hash) {
        fprintf(stderr, "canonical changed: %s -> %s\n", f->canonical, g->canonical);
        abort();
    }
    c = rc_filter_clone(f);
    if (c && (c->npreds != f->npreds || strcmp(c->canonical, f->canonical)))
        abort();
    (void)rc_filter_eval(f, NULL);
    rc_filter_free(c);
    rc_filter_free(g);
    rc_filter_free(f);
    return 0;
}
