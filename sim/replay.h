/*
 * replay.h - exact replay of full-information traffic through a policy.
 *
 * For each request in order the policy chooses (policy_choose), the chosen
 * model's outcome and cost are looked up in the row, and the policy learns
 * from them (policy_reward, policy_cost).
 *
 * Cascades (escalations > 0): a validator (cfg.verdict) judges each answer;
 * on a rejection the request escalates, up to escalations times: a new
 * decision with the models already tried excluded, as bursar-agent asks
 * the controller again. Every step's cost is spent; the answer returned is
 * the first that passes, else the last tried, and the request's quality is
 * that answer's true outcome. With cfg.validated the policy learns only
 * what production sees, the verdicts (reward 1 or 0 per step), never the
 * hidden outcome. Every routing decision is made by
 * policies/; this module only feeds it and keeps score.
 *
 * Set-up of one run:
 *   - one policy_bucket_t per dataset bucket, with an arm for every model
 *     that has a cell other than MISSING in that bucket; prior Beta(1, 1);
 *     cost prior = the model's mean cost over the whole data (a known price
 *     table; cost_prior_bucket = 1: its mean cost in that bucket), worth
 *     cost_prior_w = 1 reported cost;
 *   - time: request number t = 0, 1, ... over all passes, used as seconds
 *     (so half_life_s is in requests);
 *   - budget: one pacer (pacer.h) with limit budget_per_request x total
 *     requests over all passes and a window covering the whole run, so the
 *     target is what is left over the requests still to come;
 *   - order: each pass is a fresh random permutation of the rows (drawn
 *     from the seed), unless the dataset is a time series (ds->ordered, a
 *     scenario) or shuffle = 0. The same seed gives the same orders to every
 *     policy (common random numbers).
 *
 * Per request, decisions go through the simulator's controller
 * (engine.h), the same calls into policies/ as bursard makes: the arms
 * whose cell is MISSING are excluded, as a request's "exclude" would;
 * arm health, the latency objective and the budget (shown to every
 * policy, as bursard shows it) come from policies/. If the chosen model's
 * cell is DATASET_ERROR (the provider is down), that is a provider error
 * reported against the decision (its model's circuit breaker: allow.c,
 * health.h; no outcome reaches a posterior), and the request falls back
 * along the decision's ranking to the first arm that answers, whose
 * outcome is reported with it, as bursar-agent does. A request that no
 * arm can serve (none allowed: bursard would answer no_model_available;
 * or every arm of the ranking down: the agent has no fallback left)
 * scores 0 at cost 0 and counts as failed.
 *
 * Ownership: results are allocated by replay_run and freed with
 * replay_result_destroy. The dataset is only read.
 */
#ifndef BURSAR_REPLAY_H
#define BURSAR_REPLAY_H

#include <stddef.h>

#include "policies/allow.h"
#include "sim/dataset.h"
#include "policies/policy.h"
#include "sim/serr.h"

typedef struct replay_config {
    policy_params_t params;    /* kind, floor, epsilon, dual step, ...;
                                  params.fixed_model is a dataset model id */
    double budget_per_request; /* USD; <= 0: no budget */
    unsigned passes;           /* >= 1 */
    unsigned long seed;        /* policy draws and shuffles */
    double half_life_s;        /* forgetting in requests; <= 0: none */
    int shuffle;               /* -1: auto (not for ordered data), 0, 1 */
    int cost_prior_bucket;     /* 1: per-bucket mean cost as the prior */
    allow_params_t allow;      /* arm health and latency objective (allow.h);
                                  times in requests */
    double latency_slo_ms;     /* every bucket's objective; <= 0: none */
    unsigned escalations;      /* a cascade: up to escalations + 1 steps
                                  per request (0: one decision) */
    int validated;             /* 1: the policy learns the validator's
                                  verdicts, never the outcome; 0: it learns
                                  the outcome itself (full information) */
    /* the validator's verdict (1: pass) on model m's answer to row in
     * pass `pass`; NULL: passes exactly the outcomes >= 0.5 */
    int (*verdict)(void *ctx, size_t row, int m, unsigned pass);
    void *verdict_ctx;
    size_t curve_points; /* learning-curve checkpoints (0: none) */
    int trace;           /* 1: keep the per-request trace */
    void (*progress)(void *ctx, size_t done, size_t total); /* or NULL */
    void *progress_ctx;
} replay_config_t;

/* Defaults: ts-budget with policy_params_default, no budget, 1 pass, seed 1,
 * no forgetting, shuffle auto, global cost prior, allow_params_default
 * (times read as requests), no latency objective, 100 curve points, no
 * trace. */
void replay_config_default(replay_config_t *c);

typedef struct replay_result {
    size_t requests; /* decisions over all passes */
    size_t n_models, n_buckets;
    double quality;          /* mean outcome per request */
    double cost_usd;         /* total spend */
    double cost_per_request; /* USD */
    double spend_ratio;      /* cost_per_request / budget (0: no budget) */
    double mu_final;         /* policy mu at the end (ts-budget) */
    size_t *share;           /* requests served per model, n_models */
    size_t *bucket_share;    /* per (bucket, model), b * n_models + m */
    size_t unaffordable;     /* decisions flagged POLICY_F_UNAFFORDABLE */
    size_t explored;         /* decisions flagged POLICY_F_EXPLORED */
    size_t provider_errors;  /* chosen models that were down */
    size_t failed;           /* requests nobody served */

    /* cascades (one step per request without escalations) */
    unsigned steps_max;   /* escalations + 1 */
    size_t steps;         /* decisions that answered, over all requests */
    size_t first_pass;    /* requests whose first answer passed */
    size_t escalated;     /* requests that took more than one step */
    size_t *step_share;   /* answers per (step, bucket, model):
                             (s * n_buckets + b) * n_models + m */
    size_t *b_requests;   /* per bucket: requests */
    double *b_quality;    /* ... sum of outcomes returned */
    double *b_cost;       /* ... sum of costs, all steps */
    size_t *b_first_pass; /* ... first answer passed */
    size_t *b_escalated;  /* ... more than one step */
    size_t *b_steps;      /* ... steps that answered */

    /* learning curves at n_curve checkpoints: after curve_x[i] requests */
    size_t n_curve;
    double *curve_x;
    double *curve_quality;        /* running mean outcome */
    double *curve_cost;           /* running mean cost per request, USD */
    double *curve_quality_window; /* mean outcome since the previous point */
    double *curve_cost_window;    /* mean cost since the previous point */
    double *curve_mu;             /* policy mu */
    double *curve_target;         /* paced target, USD (0: no budget) */

    /* per-request trace (cfg.trace): served model (-1: failed), bucket,
     * outcome, cost (all steps), steps */
    int *trace_model;
    int *trace_bucket;
    double *trace_outcome;
    double *trace_cost;
    unsigned char *trace_steps; /* steps the request took (cascades) */
} replay_result_t;

/* Runs one replay. Returns 0, SERR_EMPTY (no rows), SERR_ARG (bad
 * configuration, e.g. a fixed model outside the dataset) or SERR_POLICY.
 * *out is set on success. The dataset must be finished. */
int replay_run(const dataset_t *ds, const replay_config_t *cfg,
               replay_result_t **out, serr_t *e);
void replay_result_destroy(replay_result_t **r);

/* The hindsight best static policy at a per-request budget (<= 0: none):
 * lp_solve_static over each bucket's true mean quality and cost (OK cells)
 * with traffic shares = rows per bucket. Writes the expected quality and
 * cost per request; p (n_buckets x n_models, may be NULL) receives the
 * distribution per bucket. Returns 0, LP_INFEASIBLE (positive: the budget
 * is below the cheapest choice; the cheapest choice is returned) or
 * SERR_POLICY. */
int replay_best_static(const dataset_t *ds, double budget, double *quality,
                       double *cost, double *p);

#endif
