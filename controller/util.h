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

void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);
/* printf into a new string (caller frees). */
char *util_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file into a new NUL-terminated buffer. Returns 0, or -1
 * with errno set. */
int util_read_file(const char *path, char **out, size_t *len);

/* Wall-clock time, seconds since the Unix epoch. */
double util_wall_time(void);
/* Monotonic time, seconds. */
double util_mono_time(void);

/* Creates a directory and its parents (mode 0755). Returns 0 or -1. */
int util_mkdirs(const char *path);

#endif
