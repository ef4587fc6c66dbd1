/*
 * util.h - allocation wrappers and small helpers shared by the controller's
 * modules.
 *
 * Out of memory aborts inside these wrappers (with a message on stderr)
 * instead of adding an error path to every caller: the daemon cannot do
 * anything useful without memory, and a restart restores its state.
 */
#ifndef BURSAR_UTIL_H
#define BURSAR_UTIL_H

#include <stddef.h>

#include "policies/base.h"

/* Wall-clock time, seconds since the Unix epoch. */
double util_wall_time(void);
/* Monotonic time, seconds. */
double util_mono_time(void);

/* Creates a directory and its parents (mode 0755). Returns 0 or -1. */
int util_mkdirs(const char *path);

/* The message for an option getopt_long refused (opterr 0, an optstring
 * without a leading ':'), from argv, optind and optopt: "--bucket needs a
 * value", "--json takes no value", "unknown option --bogus" or "unknown
 * option -x", into msg. bursard's and bursar's. */
void util_opt_error(char *const *argv, char *msg, size_t cap);

#endif
