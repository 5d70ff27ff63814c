/* common.c - rc_err helpers. */
#include <stdio.h>

#include "ringcast/common.h"

void rc_err_set(struct rc_err *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return;
    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}
