/*
 * report.h - what a bursar-sim run measured, as a table or as JSON.
 *
 * A report gathers, for each policy, the mean and standard deviation over
 * seeds of its quality and spend, its model shares, its learning curves
 * and (optionally) its points over a sweep of budgets; beside them the
 * references: every single model, the hindsight best static policy at the
 * same budget, and the per-prompt oracle.
 *
 * Ownership: a report owns its policies' arrays (report_destroy frees
 * them); it borrows the dataset, which must outlive it.
 */
#ifndef BURSAR_REPORT_H
#define BURSAR_REPORT_H

#include <stdio.h>

#include "sim/dataset.h"
#include "policies/policy.h"
#include "sim/replay.h"

typedef struct report_policy {
    char name[96]; /* as given: ts-budget, fixed:gpt-4, ... */
    policy_kind_t kind;
    int paces;            /* the policy paces its spend to the budget
                             (ts-budget, best-static); the others see it
                             too but stop only when it runs out */
    size_t runs;          /* seeds averaged */
    size_t requests;      /* decisions per run */
    double q_mean, q_sd;  /* quality over seeds (sd: sample, 0 if 1 run) */
    double c_mean, c_sd;  /* cost per request, USD */
    double spend_max;     /* max over runs of cost per request / budget */
    double mu_mean;       /* final mu, mean over runs */
    double *share;        /* mean share of requests per model, n_models */
    double *bucket_share; /* per (bucket, model), b * n_models + m */
    double unaffordable, explored, provider_errors, failed; /* per run */
    size_t n_curve;
    double *curve_x, *curve_q, *curve_c, *curve_mu; /* means over runs */
    double *curve_qw, *curve_cw; /* windowed (since the previous point) */
    /* cascades, means over runs: per request, and per bucket (per request
     * of the bucket) */
    unsigned steps_max;           /* escalations + 1 */
    double first_pass, escalated; /* shares of requests */
    double steps;                 /* steps per request */
    double *b_q, *b_c;            /* n_buckets each */
    double *b_first_pass, *b_escalated, *b_steps;
    double *step_share; /* answers at step s by model m per request:
                           (s * (n_buckets + 1) + b) * n_models + m, per
                           request of bucket b; b = n_buckets: per
                           request of all buckets */
    size_t n_front;     /* budget sweep */
    double *front_budget, *front_q, *front_q_sd, *front_c, *front_spend;
} report_policy_t;

typedef struct report {
    const dataset_t *ds;
    const char *source; /* what was read, for the header */
    unsigned passes;
    unsigned seeds;
    unsigned long seed;
    double budget; /* per request, USD; 0: none */
    double half_life_s;
    double explore_floor;
    double static_q, static_c; /* best static at the budget */
    double oracle_q, oracle_c;
    size_t n_pol;
    report_policy_t *pol;
    size_t n_sf; /* best-static frontier */
    double *sf_budget, *sf_q, *sf_c;
    /* cascades: escalations > 0 or a validator */
    unsigned escalations;
    const char *validator; /* its spec, NULL: none */
    double cascade_q;      /* the hindsight cascade reference; NAN:
                              not computed */
    double cascade_c;
    char *cascade_mix; /* its orders per bucket, text (owned) */
    /* the reference at any budget (the frontier table), or NULL */
    int (*cascade_at)(const void *ctx, double budget, double *q, double *c);
    const void *cascade_ctx;
    size_t n_cf; /* the reference's frontier */
    double *cf_budget, *cf_q, *cf_c;
} report_t;

/* Adds a policy entry and fills it from k runs (k >= 1). Returns it. */
report_policy_t *report_add(report_t *rep, const char *name, policy_kind_t kind,
                            int paces, replay_result_t *const *runs, size_t k);

/* Appends a frontier point (budget, runs at that budget) to a policy. */
void report_add_front(report_policy_t *p, double budget,
                      replay_result_t *const *runs, size_t k);

void report_destroy_contents(report_t *rep);

/* The readable table. */
void report_table(const report_t *rep, FILE *f);

/* One JSON object (see docs/sim.md for the fields). Returns 0, or -1 if
 * cJSON could not print. */
int report_json(const report_t *rep, FILE *f);

#endif
