/*
 * ope.h - off-policy evaluation: what would another policy have earned
 * and spent on a logged stream (olog.h) where only the chosen action's
 * outcome is known?
 *
 * Targets (ope_target_t)
 *   Static policies are a distribution pi(a | bucket) over the actions the
 *   log holds in that bucket, computed by policies/ (policy_propensities
 *   with POLICY_UNIFORM, POLICY_FIXED or POLICY_STATIC, and the exploration
 *   floor if one is given), so the distribution judged is the one the
 *   controller would run:
 *     uniform            uniform over the actions seen in the bucket
 *     fixed:M            always M (where the bucket never logged M,
 *                        policies/ falls back to its best posterior mean
 *                        under the prior: a warning says so)
 *     mix:A=w,B=w,...    weights, normalised over the bucket's actions;
 *                        actions not logged in a bucket get nothing there
 *     a JSON object      (ope_target_json) {"A": w, ...} for all buckets,
 *                        or {"bucket": {"A": w}, "*": {...}} per bucket
 *   Learning policies (ts, ts-budget, eps-greedy, ucb1) change with what
 *   they see; only the replay estimator applies to them (below).
 *
 * Estimators (n = rows used: outcome present, propensity > 0;
 * w_i = pi(a_i | b_i) / p_i)
 *   replay  Li, Chu, Langford and Wang (2011), "Unbiased offline
 *           evaluation of contextual-bandit-based news article
 *           recommendation algorithms", with the rejection step that makes
 *           it valid under non-uniform logging: for each row in log order
 *           the target draws an action; the row is accepted when it equals
 *           the logged one and u < p_min / p_i (p_min: the smallest
 *           propensity used). Each row is then accepted with probability
 *           p_min whatever its bucket, and accepted rows are distributed as
 *           if the target had chosen. Estimate: mean outcome over accepted
 *           rows; ESS: accepted rows. Learning policies learn from accepted
 *           rows only (their horizon shrinks to about p_min * n rows).
 *   ips     (1/n) sum w_i r_i (Horvitz and Thompson, 1952).
 *   snips   sum w_i r_i / sum w_i (Swaminathan and Joachims, 2015).
 *   dm      direct method: q(b, a) = mean outcome of the rows logged with
 *           (b, a); value (1/n) sum_i sum_a pi(a | b_i) q(b_i, a). Where
 *           (b, a) was never logged the bucket's mean outcome stands in
 *           (a warning says how much mass that concerns).
 *   dr      doubly robust (Dudik, Langford and Li, 2011):
 *           dm + (1/n) sum_i w_i (r_i - q(b_i, a_i)).
 *   The same formulas with the cost in place of the outcome give the cost
 *   per request (NaN when the log holds no cost).
 *   ESS (Kish): (sum w)^2 / sum w^2 for ips, snips and dr; n for dm.
 *
 * Intervals: percentile bootstrap over rows (Efron and Tibshirani, 1993):
 * cfg->boot resamples of n rows with replacement drawn from a gsl_rng
 * seeded with cfg->seed; every estimator is recomputed on each resample,
 * the DM model refitted. For replay the accept decisions are drawn once
 * and the resampling is over rows: it does not redo the learning run.
 *
 * Offered sets and cascades (bursar export's `offered`, `step`,
 * `escalates_seq`; docs/ope.md "Cascades and exclusions")
 *   A row with an offered set was drawn from that set (exclusions,
 *   cooldowns, the latency objective applied) and its propensity is
 *   relative to it, so the target's probability of its action is computed
 *   within the set too: policies/ (policy_propensities) with the set as
 *   the allowed arms. uniform: 1/|set|; mix: and JSON targets: the weights
 *   renormalised over the set (uniform where none is on it); fixed:M: M
 *   where the set holds it, else uniform over the set (the cascade "M
 *   first, then uniformly among the models left"); the floor within the
 *   set. Rows without a set use the bucket's distribution as above.
 *   When rows escalate others (a cascade: `escalates_seq` names the
 *   parent's `seq`), the samples are requests, not decisions: a step-0
 *   decision and its chain of escalations, weight w = prod over its steps
 *   of pi(a_s | S_s) / p_s, outcome the last step's reward, cost the sum
 *   of its steps' costs; IPS = (1/N) sum w r and SNIPS = sum w r / sum w
 *   over the N requests, intervals by the bootstrap over requests, ESS
 *   (Kish) over their weights. That is the value of the target run as a
 *   cascade under the same escalation rule (the agent's); per decision,
 *   the escalations' rows (chosen because an answer failed) bias every
 *   estimator. Replay, DM and DR are per decision: n/a on such a log (as
 *   is a learning target). Requests are left out (counted, warned) when a
 *   step has no outcome or propensity, when a row escalates a decision
 *   the log does not hold, or when a decision was escalated twice.
 *   cfg->per_decision ignores sets and links (the estimator before).
 *
 * Warnings (ope_result_t.warn): rows without an outcome, without a
 * propensity, with propensity 0 (all left out); one row holding more than
 * cfg->dominate_share of the total weight; an ESS under 10% of n; target
 * mass on (bucket, action) pairs the log never holds; the replay's
 * acceptance.
 */
#ifndef BURSAR_OPE_H
#define BURSAR_OPE_H

#include <stddef.h>

#include "sim/olog.h"
#include "policies/policy.h"
#include "sim/serr.h"

enum { OPE_REPLAY = 0, OPE_IPS, OPE_SNIPS, OPE_DM, OPE_DR, OPE_N };

/* "replay", "ips", "snips", "dm", "dr". */
extern const char *const ope_estimator_name[OPE_N];

typedef struct ope_config {
    unsigned long seed;        /* bootstrap and replay draws (default 1) */
    unsigned boot;             /* bootstrap resamples (1000); 0: no CI */
    double dominate_share;     /* warn above this weight share (0.05) */
    double explore_floor;      /* floor of the target policies (0) */
    double budget_per_request; /* ts-budget's per-request target, USD */
    policy_params_t params;    /* epsilon, dual_step, ... for learning ones */
    int per_decision;          /* 1: ignore offered sets and cascade links
                                  (every row a sample, pi per bucket: the
                                  estimator before cascades, biased on a
                                  log with escalations) */
} ope_config_t;

void ope_config_default(ope_config_t *c);

typedef struct ope_target {
    char name[128];
    int learning; /* 1: replay only */
    policy_kind_t kind;
    int fixed; /* action id for fixed:M, else -1 */
    double *w; /* static: weights, n_buckets x n_actions (owned) */
} ope_target_t;

/* Parses uniform, fixed:M, mix:A=w,..., ts, ts-budget, eps-greedy, ucb1.
 * Returns 0 or SERR_ARG (unknown name, a model not in the log, bad
 * weights) with a message. */
int ope_target_parse(const olog_t *lg, const char *spec, ope_target_t *t,
                     serr_t *e);
/* A distribution from JSON text (format above); name labels it. */
int ope_target_json(const olog_t *lg, const char *json, const char *name,
                    ope_target_t *t, serr_t *e);
void ope_target_free(ope_target_t *t);

typedef struct ope_est {
    int valid;            /* 0: not defined for this target */
    double q, q_lo, q_hi; /* quality per request and its 95% interval */
    double c, c_lo, c_hi; /* cost per request, USD (NaN: no cost data) */
    double ess;           /* effective sample size */
} ope_est_t;

typedef struct ope_result {
    ope_est_t est[OPE_N];
    size_t n_rows;      /* rows in the log */
    size_t n_used;      /* rows behind the estimates */
    size_t n_no_reward; /* left out: no outcome */
    size_t n_no_prop;   /* left out: no propensity */
    size_t n_zero_prop; /* left out: propensity 0 */
    size_t n_no_cost;   /* used, cost counted as 0 */
    size_t n_accepted;  /* replay */
    double p_min;       /* smallest propensity used */
    double max_share;   /* largest single-row share of sum w */
    long max_share_line;
    double unsupported;  /* target mass on never-logged (bucket, action) */
    int per_request;     /* 1: samples are requests (cascades, below) */
    size_t n_requests;   /* samples behind the estimates (= n_used per
                            decision) */
    size_t n_steps;      /* rows (decisions) behind them */
    size_t set_rows;     /* rows judged within their offered set */
    size_t n_orphan;     /* left out: escalate a decision not in the log */
    size_t n_branch;     /* requests left out: a decision escalated twice */
    size_t n_incomplete; /* requests left out: a step without an outcome or
                            a propensity > 0 */
    char **warn;         /* warnings, owned */
    size_t n_warn;
} ope_result_t;

/* Evaluates one target. Returns 0, SERR_EMPTY (no usable row) or
 * SERR_POLICY. The caller frees out with ope_result_free. */
int ope_evaluate(const olog_t *lg, const ope_target_t *t,
                 const ope_config_t *cfg, ope_result_t *out, serr_t *e);
void ope_result_free(ope_result_t *r);

/* The static target's distribution: pi[b * n_actions + a] (caller frees),
 * and the warnings of building it appended to r (may be NULL). */
double *ope_target_pi(const olog_t *lg, const ope_target_t *t,
                      const ope_config_t *cfg, ope_result_t *r);

#endif
