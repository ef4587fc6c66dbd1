/*
 * latency.c - latency rings and quantiles (see latency.h).
 *
 * O(LATENCY_RING log LATENCY_RING) per quantile: 32 samples sort in well
 * under a microsecond, cheaper than keeping a sorted structure current.
 */
#include "policies/latency.h"

#include <math.h>
#include <stdlib.h>

void
latency_add(latency_ring_t *r, double now, double ms)
{
    r->t[r->head] = now;
    r->ms[r->head] = ms;
    r->head = (r->head + 1) % LATENCY_RING;
    if (r->n < LATENCY_RING)
        r->n++;
}

static int
latency_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double
latency_quantile(const latency_ring_t *r, const latency_params_t *p, double now,
                 unsigned *n_recent)
{
    double v[LATENCY_RING];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n && i < LATENCY_RING; i++)
        if (now - r->t[i] <= p->window_s)
            v[n++] = r->ms[i];
    if (n_recent)
        *n_recent = n;
    if (n == 0 || n < p->min_samples)
        return NAN;
    qsort(v, n, sizeof v[0], latency_cmp);
    double rank = ceil(p->quantile * n);
    size_t k = rank < 1 ? 0 : (size_t)rank - 1;
    return v[k < n ? k : n - 1];
}
