/*
 * pacer.c - spreading a budget over its window (see pacer.h).
 */
#include "policies/pacer.h"

#include <math.h>

void
pacer_init(pacer_t *p, double limit_usd, double window_s, double prior_rate,
           double now)
{
    p->limit_usd = limit_usd;
    p->window_s = window_s > 0.0 ? window_s : 86400.0;
    p->spent_usd = 0.0;
    p->reserved_usd = 0.0;
    p->requests = 0.0;
    p->prior_rate = prior_rate > 0.0 ? prior_rate : 1.0;
    /* One percent of the window, at most a minute: long enough that a
     * burst of first requests does not give an absurd rate. */
    p->min_elapsed_s = fmin(60.0, 0.01 * p->window_s);
    p->window_start = pacer_window_of(p, now);
    p->rate_start = now;
}

double
pacer_window_of(const pacer_t *p, double t)
{
    return floor(t / p->window_s) * p->window_s;
}

int
pacer_roll(pacer_t *p, double now)
{
    if (now < p->window_start + p->window_s)
        return 0;
    p->window_start = pacer_window_of(p, now);
    p->spent_usd = 0.0;
    p->requests = 0.0;
    return 1;
}

double
pacer_remaining(const pacer_t *p)
{
    if (!(p->limit_usd > 0.0))
        return INFINITY;
    return p->limit_usd - p->spent_usd - p->reserved_usd;
}

double
pacer_expected_remaining(const pacer_t *p, double now)
{
    double elapsed = now - fmax(p->window_start, p->rate_start);
    double left = p->window_start + p->window_s - now;
    double rate;

    if (left < 0.0)
        left = 0.0;
    if (p->requests <= 0.0) {
        rate = p->prior_rate;
    } else {
        if (elapsed < p->min_elapsed_s)
            elapsed = p->min_elapsed_s;
        rate = p->requests / elapsed;
    }
    return fmax(1.0, rate * left);
}

double
pacer_target(const pacer_t *p, double now)
{
    double rem = pacer_remaining(p);
    if (isinf(rem))
        return INFINITY;
    if (rem <= 0.0)
        return 0.0;
    return rem / pacer_expected_remaining(p, now);
}

void
pacer_reserve(pacer_t *p, double expected_usd)
{
    if (expected_usd > 0.0)
        p->reserved_usd += expected_usd;
    p->requests += 1.0;
}

void
pacer_settle(pacer_t *p, double reserved_usd, double cost_usd)
{
    if (reserved_usd > 0.0)
        p->reserved_usd -= reserved_usd;
    if (p->reserved_usd < 1e-12)
        p->reserved_usd = 0.0;
    if (cost_usd > 0.0)
        p->spent_usd += cost_usd;
}
