/*
 * engine.h - the simulator's controller: bursard's decision state in
 * memory, without the store, the names or the wire.
 *
 * One engine holds what bursard holds for deciding: a policy_bucket_t per
 * bucket, a circuit breaker per model (health.h), a latency ring per arm
 * (latency.h), the global pacer and each capped bucket's own, the shadow
 * price and one random generator. It applies events in the order and
 * with the calls bursard uses (controller/ctl.c):
 *
 *   choose      allow_mask (exclusions, health, latency objective); none
 *               allowed: no model; allow_request (the budget, shown to
 *               every policy); policy_choose; health_chosen (a half-open
 *               breaker's probe); the expected cost reserved
 *   outcome     policy_reward (0 after a correction), policy_cost when a
 *               cost was reported, latency_add, the reservation settled
 *               against the cost (else the expected cost), health_success
 *   correction  policy_amend of an applied reward to 0
 *   provider_error  health_failure (never the posterior)
 *   expiry      with decision_ttl_s > 0, before every event the decisions
 *               older than the ttl without an outcome expire, as bursard's
 *               sweep after every batch does: reward 0 under
 *               expiry_failure or after a correction, the reservation
 *               settled at the expected cost (0 with expiry_cost_zero), a
 *               probe given up (health_expired); feedback on an expired
 *               decision changes nothing (bursard: decision_expired)
 *
 * so that bursar-sim measures what production runs; tests/sim/
 * test_differential.c replays one event sequence through an engine and
 * through the real bursard and requires the same decision every time.
 *
 * Ownership: engine_new copies the configuration; decisions are the
 * caller's (engine_decision_t, plain numbers). With decision_ttl_s > 0 the
 * engine keeps a pointer to every decision until it has its outcome or
 * expires: the caller keeps them alive (and in place) until then, or until
 * engine_destroy.
 */
#ifndef BURSAR_SIM_ENGINE_H
#define BURSAR_SIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "policies/allow.h"
#include "policies/pacer.h"
#include "policies/policy.h"

typedef struct engine_arm_def {
    int model;     /* model id, 0 .. n_models - 1 */
    double alpha0; /* prior Beta(alpha0, beta0) */
    double beta0;
    double cost_prior;   /* prior cost per request, USD */
    double cost_prior_w; /* its weight in reported costs */
} engine_arm_def_t;

typedef struct engine_bucket_def {
    size_t n_arms;                /* >= 1 */
    const engine_arm_def_t *arms; /* n_arms */
    double half_life_s;           /* forgetting; <= 0: none */
    double latency_slo_ms;        /* <= 0: no objective */
    double budget_usd;            /* the bucket's own cap; <= 0: none */
    double budget_window_s;       /* its window */
    const double *static_p;       /* POLICY_STATIC: n_arms, or NULL */
} engine_bucket_def_t;

typedef struct engine_config {
    policy_params_t params;
    allow_params_t allow;
    size_t n_models;
    size_t n_buckets;
    const engine_bucket_def_t *buckets;
    double budget_usd;     /* global budget per window; <= 0: none */
    double window_s;       /* its window, seconds */
    double prior_rate;     /* requests per second assumed before data */
    double t0;             /* the engine's start time */
    unsigned long seed;    /* the policy's random generator */
    double decision_ttl_s; /* > 0: decisions expire (bursard's
                              decision_ttl_s); <= 0: never */
    int expiry_failure;    /* an expired decision counts as reward 0 */
    int expiry_cost_zero;  /* ... and books 0 instead of its expected cost */
    int no_propensity;     /* 1: skip propensities (faster replays) */
} engine_config_t;

typedef struct engine engine_t;

engine_t *engine_new(const engine_config_t *cfg);
void engine_destroy(engine_t **e);

#define ENGINE_D_PROBE      1u /* the probe of a half-open breaker */
#define ENGINE_D_OUTCOME    2u /* outcome applied */
#define ENGINE_D_CORRECTION 4u /* correction received */
#define ENGINE_D_APPLIED    8u /* a reward is in the posterior */
#define ENGINE_D_SETTLED    16u
#define ENGINE_D_PROVERR    32u
#define ENGINE_D_EXPIRED    64u /* expired without an outcome */

/* Returned by the feedback calls for a decision that has expired (nothing
 * is applied; bursard answers decision_expired). */
#define ENGINE_EXPIRED 1

typedef struct engine_decision {
    uint64_t id; /* 1, 2, ... as bursard numbers them */
    size_t bucket;
    int arm;    /* index in the bucket */
    int served; /* arm that served the outcome (a fallback), or
                   arm */
    int model;
    double t; /* decision time */
    double t_outcome;
    double reserved_usd; /* expected cost reserved */
    double reward_applied;
    unsigned flags; /* ENGINE_D_* */
    policy_choice_t choice;
} engine_decision_t;

/* Chooses for bucket at now. exclude (n_arms entries, may be NULL) marks
 * arms the request excludes; order (n_arms entries, may be NULL) receives
 * the ranking for fallbacks, chosen arm first. Returns 0, or BURSAR_EPOLICY
 * when no arm is allowed (counts says why, may be NULL). */
int engine_choose(engine_t *e, size_t bucket, const unsigned char *exclude,
                  double now, engine_decision_t *d, int *order, size_t *n_order,
                  allow_counts_t *counts);

/* The outcome of d served by arm `served` (-1: d's arm): reward in [0,1];
 * cost < 0 or NAN: not reported (the reservation is booked); latency_ms
 * NAN: not reported. Once per decision (later calls are ignored).
 * The feedback calls return 0, or ENGINE_EXPIRED. */
int engine_outcome(engine_t *e, engine_decision_t *d, int served, double reward,
                   double cost, double latency_ms, double now);
int engine_correction(engine_t *e, engine_decision_t *d, double now);
int engine_provider_error(engine_t *e, engine_decision_t *d, double now);

/* Expires what is due at now (the feedback calls and engine_choose do it
 * first themselves; a clock step alone calls this, as bursard sweeps
 * after its clock op). */
void engine_sweep(engine_t *e, double now);

/* Read access for reports. */
const policy_t *engine_policy(const engine_t *e);
const pacer_t *engine_pacer(const engine_t *e);
const policy_bucket_t *engine_bucket(const engine_t *e, size_t bucket);

#endif
