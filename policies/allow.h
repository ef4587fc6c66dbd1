/*
 * allow.h - the allowed-arm set and the budget a request shows the
 * policy: the part of a routing decision that comes before the draw.
 *
 * An arm is allowed when the request does not exclude it, its model's
 * circuit breaker lets it serve (health.h), and its observed latency does
 * not break the bucket's latency objective (latency.h). When every arm
 * that is left breaks the objective, the objective is ignored for that
 * request: serving slowly beats not serving. When nothing is allowed the
 * request gets no model (the controller answers no_model_available, the
 * simulator counts the request as failed); arms are never offered again
 * while they cool down.
 *
 * The controller (controller/ctl.c) and the simulator (sim/replay.c,
 * sim/events.c) both build every request with these two calls, so that
 * what the simulator measures is what production runs.
 */
#ifndef BURSAR_POLICIES_ALLOW_H
#define BURSAR_POLICIES_ALLOW_H

#include <stddef.h>

#include "policies/health.h"
#include "policies/latency.h"
#include "policies/pacer.h"
#include "policies/policy.h"

typedef struct allow_params {
    health_params_t health;
    latency_params_t latency;
} allow_params_t;

typedef struct allow_arm {
    int excluded;              /* the request excludes it */
    const health_t *health;    /* its model's breaker; NULL: always healthy */
    const latency_ring_t *lat; /* its latencies; NULL: none observed */
} allow_arm_t;

typedef struct allow_counts {
    size_t excluded; /* left out by the request's exclusions */
    size_t cooling;  /* left out by their circuit breaker */
    size_t slow;     /* left out by the latency objective */
} allow_counts_t;

/* The defaults (bursard's configuration uses them too): 3 consecutive
 * provider errors open a breaker for 30 s, doubled per failed probe up to
 * 600 s; the latency objective judges the p95 of the samples of the last
 * 300 s once there are 5. */
void allow_params_default(allow_params_t *p);
#define ALLOW_DEF_FAILURES       3
#define ALLOW_DEF_COOLDOWN_S     30.0
#define ALLOW_DEF_MAX_COOLDOWN_S 600.0
#define ALLOW_DEF_QUANTILE       0.95
#define ALLOW_DEF_WINDOW_S       300.0
#define ALLOW_DEF_MIN_SAMPLES    5

/* Fills mask (n entries, 1 = allowed) for the arms of one bucket at now;
 * slo_ms <= 0 means no latency objective. Returns the number allowed;
 * counts (may be NULL) receives why the others are not. */
size_t allow_mask(size_t n, const allow_arm_t *arms, const allow_params_t *p,
                  double slo_ms, double now, unsigned char *mask,
                  allow_counts_t *counts);

/* Fills req for a decision at now over mask: the global paced target and
 * what is left of the window (the tighter of the global budget and the
 * bucket's cap, bucket may be NULL), and the bucket's own paced target.
 * Rolls the pacers into the window of now. Every policy sees the budget
 * (one that ignores targets still never picks an arm it cannot afford). */
void allow_request(policy_request_t *req, const unsigned char *mask,
                   pacer_t *global, pacer_t *bucket, double now);

/* Adds a tenant's own budget to a request that allow_request filled: what
 * is left becomes the tightest of the global, the bucket's and the
 * tenant's, and the score's extra cost weight the tenant's price
 * mu_t / target_t (policy.h; 0 while mu_t is 0 or the tenant's target is
 * not finite and positive). Rolls the tenant's pacer into the window of
 * now. Returns the tenant's paced target, for its dual step
 * (policy_dual_step) after the choice. */
double allow_tenant(policy_request_t *req, pacer_t *tenant, double mu_t,
                    double now);

/* For a decision of a declared batch (pacer.h), after allow_request: the
 * request is priced against the batch's own target, share left / requests
 * left (served by the per-request LP, as a bucket cap is; the tighter of
 * the two when the bucket has a cap too), and can afford what is left of
 * the share only. The global price mu neither prices it nor moves with it
 * (target_usd is cleared): the share was set aside at the window's fair
 * rate. Without a global budget the request is left as it is. */
void allow_batch(policy_request_t *req, const pacer_batch_t *batch,
                 const pacer_t *bucket, double now);

#endif
