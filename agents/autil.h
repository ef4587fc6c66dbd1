/*
 * autil.h - small helpers shared by the agents/ modules.
 */
#ifndef BURSAR_AUTIL_H
#define BURSAR_AUTIL_H

#include <stddef.h>

/* Seconds on the monotonic clock (for timeouts and latencies). */
double autil_now_mono(void);

/* Copies src into dst of cap bytes (cap >= 1), truncating; always ends
 * dst with a NUL. */
void autil_copy_str(char *dst, size_t cap, const char *src);

#endif
