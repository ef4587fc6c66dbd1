/*
 * latency.h - observed latency of an arm and the latency objective.
 *
 * Each arm keeps its last LATENCY_RING reported latencies with their
 * times. The observed latency is the `quantile` (nearest rank) of the
 * samples younger than window_s; with fewer than min_samples such samples
 * the arm is not judged. An arm whose observed latency exceeds its
 * bucket's objective is left out of the allowed set (allow.h); as its
 * samples age out of the window it is admitted again and measured afresh.
 *
 * Pure, no allocation; a ring is plain numbers (the controller stores it).
 */
#ifndef BURSAR_POLICIES_LATENCY_H
#define BURSAR_POLICIES_LATENCY_H

#include <stdint.h>

#define LATENCY_RING 32

typedef struct latency_params {
    double quantile;      /* e.g. 0.95 */
    double window_s;      /* samples younger than this count */
    unsigned min_samples; /* fewer recent samples: not judged */
} latency_params_t;

typedef struct latency_ring {
    uint32_t n;              /* samples held, <= LATENCY_RING */
    uint32_t head;           /* next slot */
    double t[LATENCY_RING];  /* sample time, seconds */
    double ms[LATENCY_RING]; /* latency, ms */
} latency_ring_t;

/* Adds a sample (the oldest is overwritten when the ring is full). */
void latency_add(latency_ring_t *r, double now, double ms);

/* The observed latency quantile in ms, or NAN with too few recent
 * samples. *n_recent (may be NULL) receives the number of recent ones. */
double latency_quantile(const latency_ring_t *r, const latency_params_t *p,
                        double now, unsigned *n_recent);

#endif
