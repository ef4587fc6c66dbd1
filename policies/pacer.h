/*
 * pacer.h - spreading a budget over its window.
 *
 * A budget is a limit in USD per fixed window of window_s seconds, aligned
 * to multiples of window_s (a one-day window starts at 00:00 UTC when the
 * clock is Unix time). Within a window the per-request target is
 *
 *     target = (limit - spent - reserved - held) / (E + z sqrt(E))
 *
 * where reserved is the expected cost of decisions whose real cost has not
 * been reported yet (it counts as spent), held the shares set aside for
 * declared batches (below), and E the expected remaining requests: the
 * estimated request rate times the time left, plus the requests of the
 * current slot (a burst under way is demand already here). The margin
 * z sqrt(E), z = PACER_MARGIN_Z, plans for the Poisson spread of the requests
 * still to come (about 2.3% of windows see more): without it a window under
 * sustained overload runs dry in its last minutes, its last requests
 * served over budget (tests/policies/test_pacer.c). The sum is at
 * least 1.
 *
 * Traffic model. Requests arrive at a rate that changes slowly (over
 * hours), plus bursts (short spikes: a thousand requests in a second)
 * and declared batches. The slow rate is what the rest of the window
 * will see; a burst says nothing about it. So:
 *
 *   - time is cut into slots of window_s / PACER_SLOTS_PER_WINDOW (a
 *     minute for a day) and the pacer counts the requests of the last
 *     PACER_SLOTS slots (the horizon: an hour for a day) in a ring;
 *     only complete slots count (the current one is still filling);
 *   - a slot's count is clipped at a Poisson-plausible ceiling
 *     med + 3 sqrt(med) + 3, med the larger of the medians of the last
 *     PACER_MED_SLOTS complete slots and of the horizon: a burst (one or
 *     two slots) becomes one busy slot, not a new rate, while traffic
 *     that lasts three slots moves the recent median and is believed
 *     (and a fall does not clip the history it follows);
 *   - the rate is the larger of the clipped mean over the horizon and
 *     the clipped mean over the last PACER_MED_SLOTS slots: a rise is
 *     learnt in minutes (overspending is what breaks a budget), a fall
 *     over the horizon (underspending for a while is the safe error);
 *   - the configured expectation (prior_rate, from budget.expected_
 *     requests) is the prior: while fewer than PACER_PRIOR_SLOTS slots
 *     have been observed, pseudo-slots at the prior's count fill in (in
 *     the means and in the medians: a burst in a new pacer's first
 *     minute is clipped against the prior), so its weight fades slot by
 *     slot as data come;
 *   - the ring outlives the window: the last hour of a day predicts the
 *     first hour of the next. A pacer set up (or migrated) mid-window
 *     counts from rate_start: slots before it are unobserved, not idle.
 *
 * Batches (pacer_batch_t): a client declares N requests that belong
 * together. The batch gets the fair share of what is left,
 *
 *     share = min(remaining x N / (expected remaining + N),
 *                 PACER_BATCH_MAX_SHARE x remaining),
 *
 * held aside (other traffic cannot take it; its requests are not counted
 * in the rate); its decisions are priced against the batch's own target,
 * share left / requests left, and reserve from the share. What is unspent
 * returns to the window when the batch completes or is closed, and at the
 * window's end (a batch still open is then planned again in the new
 * window, for its requests left).
 *
 * Pure: the caller passes the time (seconds, any epoch) and owns the
 * structs; the controller persists them as they are.
 */
#ifndef BURSAR_PACER_H
#define BURSAR_PACER_H

#include <stdint.h>

#define PACER_SLOTS_PER_WINDOW 1440 /* slot = window / 1440: a minute */
#define PACER_SLOTS            60   /* the horizon: an hour for a day */
#define PACER_MED_SLOTS        5    /* the median of the recent slots */
#define PACER_PRIOR_SLOTS      5    /* pseudo-slots of the prior */
#define PACER_MARGIN_Z         2.0  /* plan for E + 2 sqrt(E) requests */
#define PACER_BATCH_MAX_SHARE  0.5  /* a batch's share: at most half left */

typedef struct pacer {
    double limit_usd;         /* budget per window, USD; <= 0: no budget */
    double window_s;          /* window length, seconds (> 0) */
    double window_start;      /* start of the current window, seconds */
    double spent_usd;         /* reported costs in the current window */
    double reserved_usd;      /* expected costs of decisions not yet settled */
    double requests;          /* decisions made in the current window */
    double prior_rate;        /* requests per second expected (the prior) */
    double held_usd;          /* batch shares held aside in this window */
    double rate_start;        /* when the pacer began counting (NaN: not yet
                                 known, see pacer_resume) */
    double slot_last;         /* index (time / slot length) of the newest slot
                                 in the ring; -1: none */
    double slot[PACER_SLOTS]; /* counts, slot i at slot[i % PACER_SLOTS] */
} pacer_t;

/* Sets up a pacer whose first window contains now. prior_rate > 0. */
void pacer_init(pacer_t *p, double limit_usd, double window_s,
                double prior_rate, double now);

/* After loading a stored pacer: one migrated from a layout without the
 * ring (rate_start NaN) starts counting at now. */
void pacer_resume(pacer_t *p, double now);

/* A stored pacer loaded under a window of window_s: when the length
 * changed, the window is realigned at now and the rate ring starts again
 * at now (its slots were of the old length). */
void pacer_set_window(pacer_t *p, double window_s, double now);

/* Moves to the window containing now if now is past the current one: spent,
 * requests and held restart at zero; reservations carry over (those
 * decisions are still open). Returns 1 if the window changed, else 0. */
int pacer_roll(pacer_t *p, double now);

/* Start of the window containing t (aligned to multiples of window_s). */
double pacer_window_of(const pacer_t *p, double t);

/* Slot length, seconds. */
double pacer_slot_s(const pacer_t *p);

/* What is left of the window's budget for traffic other than batches:
 * limit - spent - reserved - held (may be negative when over). +INFINITY
 * when there is no budget. */
double pacer_remaining(const pacer_t *p);

/* The estimated request rate at now (requests per second), as above. */
double pacer_rate(const pacer_t *p, double now);

/* Expected requests in the rest of the window, at least 1. */
double pacer_expected_remaining(const pacer_t *p, double now);

/* The per-request target at time now (after pacer_roll). +INFINITY when
 * there is no budget; 0 when the budget is used up. */
double pacer_target(const pacer_t *p, double now);

/* Bookkeeping. A decision at now reserves its expected cost and counts
 * in now's slot; when its real cost arrives, pacer_settle releases the
 * reservation and books the cost. A decision that expires without a cost
 * releases its reservation with cost 0 (or books an assumed cost: the
 * caller decides). */
void pacer_reserve(pacer_t *p, double expected_usd, double now);
void pacer_settle(pacer_t *p, double reserved_usd, double cost_usd);

/* ------------------------------------------------------------------ */
/* Batches                                                             */

typedef struct pacer_batch {
    double size;         /* requests declared */
    double made;         /* decisions made */
    double share_usd;    /* set aside for it (+INFINITY: no budget) */
    double used_usd;     /* its decisions' expected costs */
    double window_start; /* the window whose budget holds the share */
} pacer_batch_t;

/* Declares a batch of size requests at now (after pacer_roll): its share
 * is computed and held. */
void pacer_batch_open(pacer_t *p, pacer_batch_t *b, double size, double now);

/* In a new window: a batch planned in an earlier one gets a new share for
 * its requests left (the old share returned at the window's end).
 * Returns 1 if it was planned again. */
int pacer_batch_replan(pacer_t *p, pacer_batch_t *b, double now);

/* What is left of its share (0 when used up); its target: share left /
 * requests left. +INFINITY without a budget. */
double pacer_batch_left(const pacer_batch_t *b);
double pacer_batch_target(const pacer_batch_t *b);

/* One decision of the batch: reserves expected_usd in the window (not
 * counted in the rate) and takes it from the share. */
void pacer_batch_reserve(pacer_t *p, pacer_batch_t *b, double expected_usd);

/* The batch is done (complete, or given up): its unspent share returns. */
void pacer_batch_close(pacer_t *p, pacer_batch_t *b);

#endif
