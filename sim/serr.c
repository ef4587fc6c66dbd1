/* serr.c - error messages of the simulator (see serr.h). */
#include "sim/serr.h"

#include <errno.h>
#include <getopt.h>
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

const char *
serr_opt_name(const struct option *opts, int c, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (; opts->name; opts++)
        if (opts->val == c && !opts->flag) {
            snprintf(buf, cap, "--%s", opts->name);
            break;
        }
    return buf;
}

int
serr_opt_error(int c, char *const *argv, const struct option *opts, serr_t *e)
{
    char name[BURSAR_NAME_MAX];
    serr_opt_name(opts, optopt, name, sizeof name);
    if (c == ':')
        return serr_set(e, SERR_ARG, "%s needs a value", name);
    if (optopt && name[0]) /* a known option given "=value" */
        return serr_set(e, SERR_ARG, "%s takes no value", name);
    if (optopt) /* an unknown short option; optind may still be on it */
        return serr_set(e, SERR_ARG, "unknown option '-%c' (see --help)",
                        optopt);
    /* an unknown or ambiguous long option: getopt_long has passed it */
    return serr_set(e, SERR_ARG, "unknown option '%s' (see --help)",
                    argv[optind - 1]);
}
