/*
 * arm.h - the learned state of one arm (a model) in one bucket.
 *
 * An arm keeps a Beta(alpha, beta) posterior of its success probability and
 * a running estimate of its cost per request. Both are plain numbers so that
 * the controller can store an arm_t in LMDB as it is and the simulator can
 * copy it freely.
 *
 * Forgetting is applied to a whole bucket at once (see policy.h,
 * policy_bucket_advance): the evidence, that is alpha - alpha0, beta - beta0
 * and the cost sums, is multiplied by 2^(-dt / half_life). This is the
 * "discounted" Thompson sampling of Raj and Kalyani (2017) and the
 * exponential forgetting of Garivier and Moulines (2011, discounted UCB):
 * evidence of age h counts half, and with no new evidence the posterior
 * returns to the prior.
 *
 * No allocation, no I/O. All functions are O(1).
 */
#ifndef BURSAR_ARM_H
#define BURSAR_ARM_H

#include <stdint.h>

typedef struct arm {
    double alpha;        /* posterior alpha = alpha0 + decayed successes */
    double beta;         /* posterior beta  = beta0 + decayed failures */
    double alpha0;       /* prior alpha (> 0) */
    double beta0;        /* prior beta (> 0) */
    double cost_sum;     /* decayed sum of weight * reported cost, USD */
    double cost_w;       /* decayed sum of weights of reported costs */
    double cost_prior;   /* prior mean cost per request, USD */
    double cost_prior_w; /* pseudo-count of the cost prior (>= 0) */
    uint64_t pulls;      /* times chosen (never decayed) */
    uint64_t rewards;    /* outcome reports applied (never decayed) */
} arm_t;

/* Sets a fresh arm: posterior = prior, no cost evidence. cost_prior_w is
 * how many reported costs the price-table prior is worth (1 is a sensible
 * default: the first real cost already moves the estimate half way). */
void arm_init(arm_t *a, double alpha0, double beta0, double cost_prior,
              double cost_prior_w);

/* Applies an outcome. reward is in [0, 1] (clamped): alpha += r,
 * beta += 1 - r. */
void arm_reward(arm_t *a, double reward);

/* Replaces an earlier outcome old_r by new_r (a user correction turns a
 * success into a failure). The evidence moved is weight * (new_r - old_r):
 * weight is what forgetting has left of the original outcome (1 without
 * forgetting). alpha and beta never go below the prior. */
void arm_amend(arm_t *a, double old_r, double new_r, double weight);

/* Adds a reported cost (USD, >= 0) to the running estimate. */
void arm_cost(arm_t *a, double cost_usd);

/* Multiplies all evidence by factor f in (0, 1]. */
void arm_decay(arm_t *a, double f);

/* Posterior mean alpha / (alpha + beta). */
double arm_mean(const arm_t *a);

/* Cost estimate: (cost_prior_w * cost_prior + cost_sum) /
 * (cost_prior_w + cost_w); cost_prior when there is no weight at all. */
double arm_cost_mean(const arm_t *a);

/* Decayed evidence (successes + failures) behind the posterior. */
double arm_evidence(const arm_t *a);

#endif
