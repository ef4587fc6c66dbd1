/*
 * expo.h - writing Prometheus' text exposition format (version 0.0.4),
 * for bursard's and bursar-gateway's /metrics.
 *
 *     bursar_buf_t b = {0};
 *     expo_family(&b, "bursar_decisions_total", "counter",
 *                 "Decisions made, by bucket and model.");
 *     expo_sample(&b, "bursar_decisions_total", 12,
 *                 2, "bucket", "code", "model", "gpt-4o");
 *     expo_hist_t h;  // fixed buckets, e.g. expo_latency_bounds
 *     expo_hist_init(&h, expo_latency_bounds, EXPO_LATENCY_N);
 *     expo_hist_observe(&h, 0.0012);
 *     expo_family(&b, "bursar_request_duration_seconds", "histogram", "...");
 *     expo_hist_write(&b, "bursar_request_duration_seconds", &h,
 *                     1, "op", "choose");
 *
 * Label values are escaped (backslash, double quote, newline); values are
 * printed exactly in the fewest digits (%.15g to %.17g), +Inf/-Inf/NaN as
 * Prometheus spells them. A histogram is not thread-safe: its owner locks
 * around observe and write.
 */
#ifndef BURSAR_AGENTS_EXPO_H
#define BURSAR_AGENTS_EXPO_H

#include <stddef.h>
#include <stdint.h>

#include "policies/base.h"

#define EXPO_HIST_MAX 32

/* Seconds, from 50 us to 60 s: request, commit and upstream latencies. */
#define EXPO_LATENCY_N 20
extern const double expo_latency_bounds[EXPO_LATENCY_N];

typedef struct expo_hist {
    size_t n;                      /* finite upper bounds */
    double le[EXPO_HIST_MAX];      /* ascending */
    uint64_t count[EXPO_HIST_MAX]; /* per bucket, not cumulative */
    uint64_t total;
    double sum;
} expo_hist_t;

/* The # HELP and # TYPE lines of a family (type: counter, gauge,
 * histogram, untyped). */
void expo_family(bursar_buf_t *b, const char *name, const char *type,
                 const char *help);
/* One sample: name{k1="v1",...} value, with n_labels (key, value) string
 * pairs after the value. */
void expo_sample(bursar_buf_t *b, const char *name, double value, int n_labels,
                 ...);

void expo_hist_init(expo_hist_t *h, const double *le, size_t n);
void expo_hist_observe(expo_hist_t *h, double v);
/* name_bucket{...,le="..."} (cumulative), name_sum, name_count. */
void expo_hist_write(bursar_buf_t *b, const char *name, const expo_hist_t *h,
                     int n_labels, ...);

#endif
