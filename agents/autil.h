/*
 * autil.h - small helpers shared by the agents/ modules.
 */
#ifndef BURSAR_AGENTS_AUTIL_H
#define BURSAR_AGENTS_AUTIL_H

#include <stddef.h>

#include "policies/base.h"

/* Seconds on the monotonic clock (for timeouts and latencies). */
double autil_now_mono(void);

#endif
