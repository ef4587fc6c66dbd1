/* serr.c - error messages of the simulator (see serr.h). */
#include "serr.h"

#include <stdarg.h>
#include <stdio.h>

int
serr_set(serr_t *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *
serr_str(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case SERR_IO:
        return "cannot read input";
    case SERR_PARSE:
        return "malformed input";
    case SERR_FORMAT:
        return "bad or missing field";
    case SERR_ARG:
        return "bad argument";
    case SERR_EMPTY:
        return "no usable data";
    case SERR_POLICY:
        return "policy error";
    default:
        return "unknown error";
    }
}
