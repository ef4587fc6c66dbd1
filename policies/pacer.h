/*
 * pacer.h - spreading a budget over its window.
 *
 * A budget is a limit in USD per fixed window of window_s seconds, aligned
 * to multiples of window_s (a one-day window starts at 00:00 UTC when the
 * clock is Unix time). Within a window the per-request target is
 *
 *     target = (limit - spent - reserved) / expected remaining requests
 *
 * where reserved is the expected cost of decisions whose real cost has not
 * been reported yet (it counts as spent), and the remaining requests are
 * the observed request rate times the time left. The rate is the count of
 * requests in the window over the time elapsed since the window began, or
 * since the pacer was set up if that was later (a daemon started at noon
 * has not seen the morning's traffic), with the elapsed time
 * floored at min_elapsed_s so that the first requests of a window do not
 * give a wild rate; before any request the rate is prior_rate.
 *
 * Pure: the caller passes the time (seconds, any epoch) and owns the
 * struct; the controller persists it as it is.
 */
#ifndef BURSAR_PACER_H
#define BURSAR_PACER_H

#include <stdint.h>

typedef struct pacer {
    double limit_usd;     /* budget per window, USD; <= 0: no budget */
    double window_s;      /* window length, seconds (> 0) */
    double window_start;  /* start of the current window, seconds */
    double spent_usd;     /* reported costs in the current window */
    double reserved_usd;  /* expected costs of decisions not yet settled */
    double requests;      /* decisions made in the current window */
    double prior_rate;    /* requests per second assumed before any data */
    double min_elapsed_s; /* floor on elapsed time in the rate estimate */
    double rate_start;    /* when the pacer began counting: the rate is
                             over max(window_start, rate_start) .. now */
} pacer_t;

/* Sets up a pacer whose first window contains now. prior_rate > 0. */
void pacer_init(pacer_t *p, double limit_usd, double window_s,
                double prior_rate, double now);

/* Moves to the window containing now if now is past the current one: spent
 * and requests restart at zero; reservations carry over (those decisions
 * are still open). Returns 1 if the window changed, else 0. */
int pacer_roll(pacer_t *p, double now);

/* Start of the window containing t (aligned to multiples of window_s). */
double pacer_window_of(const pacer_t *p, double t);

/* What is left of the window's budget: limit - spent - reserved (may be
 * negative when over). +INFINITY when there is no budget. */
double pacer_remaining(const pacer_t *p);

/* Expected requests in the rest of the window, at least 1. */
double pacer_expected_remaining(const pacer_t *p, double now);

/* The per-request target at time now (after pacer_roll). +INFINITY when
 * there is no budget; 0 when the budget is used up. */
double pacer_target(const pacer_t *p, double now);

/* Bookkeeping. A decision reserves its expected cost; when its real cost
 * arrives, pacer_settle releases the reservation and books the cost. A
 * decision that expires without a cost releases its reservation with
 * cost 0 (or books an assumed cost: the caller decides). pacer_reserve
 * also counts the request for the rate estimate. */
void pacer_reserve(pacer_t *p, double expected_usd);
void pacer_settle(pacer_t *p, double reserved_usd, double cost_usd);

#endif
