/* serr.c - error messages of the simulator (see serr.h). */
#include "serr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


int
serr_parse_num(const char *opt, const char *s, double lo, double hi,
               double *out, serr_t *e)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0.0;
    if (!s || !*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return serr_set(e, SERR_ARG, "%s: '%s' is not a number in [%g, %g]",
                        opt, s ? s : "", lo, hi);
    *out = v;
    return 0;
}

int
serr_opt_split(const char *arg, char *name, size_t cap, const char **val,
               serr_t *e)
{
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t k = eq ? (size_t)(eq - arg) : strlen(arg);
    if (k >= cap)
        return serr_set(e, SERR_ARG, "unknown option '%s'", arg);
    memcpy(name, arg, k);
    name[k] = '\0';
    *val = eq ? eq + 1 : NULL;
    return 0;
}
