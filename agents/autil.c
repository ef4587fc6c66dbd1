/*
 * autil.c - small helpers shared by the agents/ modules.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/autil.h"

#include <string.h>
#include <time.h>

double
autil_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
