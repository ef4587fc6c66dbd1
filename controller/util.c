/*
 * util.c - allocation wrappers and small helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double
util_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double
util_mono_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
util_mkdirs(const char *path)
{
    char *p = bursar_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            *s = '/';
        }
    }
    int rc = mkdir(p, 0700);
    free(p);
    return (rc == 0 || errno == EEXIST) ? 0 : -1;
}

void
util_opt_error(char *const *argv, char *msg, size_t cap)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) != 0) { /* a short option: -x */
        if (optopt)
            snprintf(msg, cap, "unknown option -%c", optopt);
        else
            snprintf(msg, cap, "unknown option %s", arg);
    } else if (!optopt) {
        snprintf(msg, cap, "unknown option %s", arg);
    } else if (strchr(arg, '=')) { /* --json=x */
        snprintf(msg, cap, "%.*s takes no value", (int)strcspn(arg, "="), arg);
    } else { /* a known option at the end, its value missing */
        snprintf(msg, cap, "%s needs a value", arg);
    }
}
