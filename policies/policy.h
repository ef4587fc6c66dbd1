/*
 * policy.h - the one place where a routing decision is computed.
 *
 * A policy_t holds what all buckets share: the kind of policy, its
 * parameters, and the budget's shadow price (lambda). A policy_bucket_t
 * holds one bucket's arms. The controller and the simulator both drive
 * them through the same four calls:
 *
 *     policy_choose   - pick an arm for one request (+ its propensity)
 *     policy_reward   - apply an outcome in [0, 1]
 *     policy_amend    - replace an earlier outcome (a user correction)
 *     policy_cost     - apply a reported cost
 *
 * Pure: no I/O, no clock, no global state. Time (seconds, any epoch, never
 * decreasing per bucket) and the random generator (gsl_rng) are passed in,
 * so a run is deterministic for a given seed.
 *
 * ---------------------------------------------------------------------
 * Selection (POLICY_TS_BUDGET)
 *
 * Draw theta_k ~ Beta(alpha_k, beta_k) for every allowed arm and choose
 *
 *     argmax_k  theta_k - mu * c_k / target
 *
 * where c_k is the arm's cost estimate, target the paced per-request budget
 * (pacer.h) and mu >= 0 the shadow price of money in units of "quality per
 * target's worth of spend" (lambda = mu / target in quality per USD).
 * mu is one number for all buckets: the hindsight optimum of a budget
 * shared by buckets prices money once (lp.h, lp_solve_static), so a dollar
 * goes where it buys the most quality.
 *
 * mu is adapted by dual subgradient descent, the "dual mirror descent" of
 * Balseiro, Lu and Mirrokni (2023, "The best of many worlds: dual mirror
 * descent for online allocation problems", Operations Research 71(1)) with
 * the Euclidean mirror map: after each decision
 *
 *     mu <- max(0, mu + eta * (c_chosen / target - 1))
 *
 * We chose it over the LP-per-request of Ferreira et al. because a fixed
 * per-request LP spends alike in every bucket, while one price lets cheap
 * buckets lend budget to buckets where money buys quality; and over
 * PrimalDualBwK (Badanidiyuru et al., 2013) because it needs no horizon and
 * pairs naturally with pacing: the target already tracks what is left, so
 * a past overspend lowers future targets and raises mu. The ratio
 * c/target is clipped to [0, POLICY_DUAL_CLIP] so that one very expensive
 * arm cannot throw mu far, and mu to [0, POLICY_MU_MAX]. No step is taken
 * while the window's budget is used up (target 0) or nothing is
 * affordable: affordability already forces the cheapest arm then, and a
 * price that grew meanwhile would starve the next window.
 *
 * A bucket with a cap of its own (req->bucket_target_usd > 0) is served by
 * the exact per-request LP instead (Ferreira, Simchi-Levi and Wang, 2018):
 * lp_solve_bucket over the drawn theta_k with the target
 * min(bucket target, global target); at most two arms are mixed, then one
 * is drawn. The global price mu does not enter there: the bucket's own
 * target is already the tighter of the two.
 *
 * A request made for a tenant with a budget of its own (the controller's
 * tenants) adds the tenant's price: the score is
 *
 *     theta_k - (mu / target + mu_t / target_t) * c_k
 *
 * with mu_t the tenant's shadow price, moved by the same dual step
 * (policy_dual_step) against the tenant's own paced target target_t, and
 * passed in as req->extra_lambda = mu_t / target_t. A tenant that
 * overspends its plan raises its own price only: the others' decisions
 * are priced as before. The propensity is that of the total weight.
 *
 * POLICY_TS is the same with mu = 0: plain Thompson sampling.
 *
 * Affordability: an arm whose cost estimate exceeds req->remaining_usd
 * (what is left of the window's budget) is not chosen. If no allowed arm is
 * affordable the cheapest allowed arm is chosen and the choice carries
 * POLICY_F_UNAFFORDABLE.
 *
 * Exploration floor: with floor f and m allowed arms, each decision is
 * uniform over the allowed arms with probability m*f (m*f is capped at 1),
 * else the policy's own choice; so every allowed arm has probability >= f.
 *
 * ---------------------------------------------------------------------
 * Propensity (policy_choice_t.propensity)
 *
 * The probability with which the chosen arm was selected, given the state
 * at that moment (posteriors, mu, allowed set, floor).
 *   - argmax of sampled scores (ts, ts-budget): by numerical integration,
 *       P(k) = int f_k(u) prod_{j != k} F_j(u) du
 *     over the scores u = theta - mu c / target. The cells: each arm
 *     that can win has its span (mean +- 9 sd) cut into
 *     POLICY_PROP_CELLS_PER_SPAN pieces (a quarter sd each), and all arms'
 *     cuts are merged, so every arm is resolved finely where its mass is
 *     however wide or sharp the others are; each cell's mass of arm k
 *     comes from its CDF and the other arms' CDFs are averaged at the
 *     cell's ends. The CDFs are read from a table of POLICY_PROP_TAB
 *     points per arm over its span, linearly interpolated (error under
 *     1e-3), built once per posterior snapshot; past a + b =
 *     POLICY_BETA_NORMAL the Beta CDF is taken as normal (error about
 *     1e-3; GSL's incomplete Beta fails near a + b = 3e6). Total error:
 *     under 0.005 absolute (tests/policies/test_policy.c checks it against
 *     exact CDFs on a fine uniform grid, and against Monte Carlo and
 *     empirical selection frequencies, with evidence up to 1e7).
 *   - the per-request LP (bucket cap): Monte Carlo over at most
 *     POLICY_PROP_MC draws of the whole decision, averaging the LP's
 *     mixing weights (Rao-Blackwellised), in batches until every arm's
 *     estimated standard error is under POLICY_PROP_MC_SE = 0.0025 (0.01
 *     is then 4 standard errors; 0.5/sqrt(40000) = 0.0025 bounds it
 *     anyway). A batch costs 2000 x (arms draws + one LP), about a
 *     millisecond, once per snapshot and mask; up to 20 batches while the
 *     posteriors are wide. So a capped bucket refreshes its snapshot only
 *     after max(POLICY_SNAP_LP_MIN, POLICY_SNAP_LP_EVIDENCE x evidence)
 *     new observations.
 *   - uniform, eps-greedy, ucb1, fixed, cheapest, strongest, static: exact.
 *
 * Cost. Tabulating an arm's CDF takes POLICY_PROP_TAB incomplete-Beta
 * evaluations (about 1 us each): too much for every request. So the
 * Thompson policies draw from a *snapshot* of the bucket's posteriors and
 * cost estimates, refreshed when they have moved: after
 * max(1, POLICY_SNAP_EVIDENCE x evidence) new observations, or when
 * forgetting has decayed the evidence by POLICY_SNAP_EVIDENCE, when an
 * arm's cost estimate moved by POLICY_SNAP_COST (and, for the LP, when its
 * target moved by POLICY_SNAP_TARGET). Only arms whose
 * posterior changed are tabulated again. mu and the global target are
 * read live at every decision, rounded to a geometric grid of step
 * POLICY_PRICE_GRID (5%: finer than the dual update's own steps), so
 * that the few grid values mu visits while it hovers around its
 * equilibrium are computed once per snapshot and then served from a cache
 * of POLICY_PROP_CACHE entries per bucket. Propensities are therefore exact (to
 * the quadrature error) for the rule that really chose; the snapshot costs a
 * little learning speed (Thompson sampling with batched or delayed updates:
 * Chapelle and Li, 2011; Kalkanli and Ozgur, 2021), never accuracy of the
 * logged propensity. A snapshot is refreshed O(log evidence / 0.01) times
 * over a bucket's life.
 */
#ifndef BURSAR_POLICY_H
#define BURSAR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "policies/arm.h"
#include "policies/base.h"

typedef enum policy_kind {
    POLICY_TS = 0,     /* Thompson sampling, no budget */
    POLICY_TS_BUDGET,  /* budget-constrained Thompson sampling (above) */
    POLICY_UNIFORM,    /* uniform over allowed arms */
    POLICY_EPS_GREEDY, /* best posterior mean, uniform with prob epsilon */
    POLICY_UCB1,       /* Auer et al. 2002, on decayed evidence */
    POLICY_FIXED,      /* always params.fixed_model */
    POLICY_CHEAPEST,   /* lowest cost estimate */
    POLICY_STRONGEST,  /* highest prior cost (the frontier model) */
    POLICY_STATIC      /* a fixed distribution per bucket (bucket->static_p) */
} policy_kind_t;

typedef struct policy_params {
    policy_kind_t kind;
    double explore_floor; /* minimum probability per allowed arm, [0, 1] */
    double epsilon;       /* eps-greedy exploration probability */
    double dual_step;     /* eta of the mu update (ts-budget) */
    double mu0;           /* initial mu */
    int fixed_model;      /* model id for POLICY_FIXED */
} policy_params_t;

/* Defaults: kind ts-budget, floor 0, epsilon 0.1, dual_step 0.01, mu0 0,
 * fixed_model -1. */
void policy_params_default(policy_params_t *pp);

/* Parses a policy name: ts, ts-budget, uniform, eps-greedy, ucb1,
 * cheapest, strongest, static, fixed:MODEL (the model part is returned in
 * *model_out, pointing into name; NULL for the others). Returns 0, or
 * BURSAR_EINVAL for an unknown name. */
int policy_kind_parse(const char *name, policy_kind_t *kind,
                      const char **model_out);
const char *policy_kind_name(policy_kind_t kind);

typedef struct policy {
    policy_params_t params;
    double mu;          /* shadow price of money (ts-budget), >= 0 */
    uint64_t decisions; /* decisions made */
} policy_t;

void policy_init(policy_t *p, const policy_params_t *params);

#define POLICY_PROP_TAB            128    /* CDF table points per arm */
#define POLICY_PROP_MC             40000  /* LP propensity: draws at most */
#define POLICY_PROP_MC_BATCH       2000   /* ... in batches of */
#define POLICY_PROP_MC_SE          0.0025 /* ... until this standard error */
#define POLICY_PROP_CELLS_PER_SPAN 72     /* cells per arm's +-9 sd span */
#define POLICY_BETA_NORMAL         1e5 /* a + b past which the CDF is normal */
#define POLICY_SNAP_LP_EVIDENCE                                                \
    0.05                           /* capped bucket: after 5% new evidence     \
                                    */
#define POLICY_SNAP_LP_MIN   5.0   /* ... and at least 5 observations */
#define POLICY_SNAP_COST     0.05  /* refresh when a cost moved 5% */
#define POLICY_MU_MAX        100.0 /* upper bound of mu */
#define POLICY_PROP_CACHE    32    /* cached (lambda, mask) per bucket */
#define POLICY_PRICE_GRID    1.05  /* mu and target rounded to 5% steps */
#define POLICY_SNAP_EVIDENCE 0.01  /* refresh after 1% new evidence */
#define POLICY_SNAP_TARGET   0.05  /* LP: or its target moved 5% */
#define POLICY_DUAL_CLIP     10.0

typedef struct policy_bucket {
    size_t n_arms;
    arm_t *arms;        /* n_arms, owned */
    int *model;         /* global model id per arm, owned */
    double half_life_s; /* forgetting; <= 0: none */
    double t_last;      /* time to which the evidence has been decayed */
    double *static_p;   /* POLICY_STATIC distribution, n_arms; NULL or
                           allocated by the caller with malloc, then owned
                           (freed by policy_bucket_destroy) */

    /* Private: the snapshot that Thompson draws use, the CDF tables and
     * the propensity cache computed from it. */
    double *snap_alpha, *snap_beta, *snap_cost; /* n_arms each */
    double snap_lp_target; /* LP mode: the target the LP uses */
    double snap_evidence;  /* bucket evidence at the snapshot */
    double snap_added;     /* evidence added since (not decayed) */
    double snap_decay;     /* product of decay factors since */
    uint64_t snap_version; /* bumped when the snapshot changes */
    int snap_valid;
    double *tab; /* n_arms x (POLICY_PROP_TAB + 1), lazy */
    double *tab_lo, *tab_hi, *tab_a, *tab_b; /* n_arms each, lazy */
    /* cache of POLICY_PROP_CACHE entries (lazy): propensities, the mask,
     * snapshot version and cost weight they were computed for */
    double *prop;             /* POLICY_PROP_CACHE x n_arms */
    unsigned char *prop_mask; /* POLICY_PROP_CACHE x n_arms */
    uint64_t *prop_version;   /* POLICY_PROP_CACHE */
    double *prop_lambda;      /* POLICY_PROP_CACHE */
    size_t prop_next;         /* round-robin slot to fill next */
} policy_bucket_t;

/* Allocates a bucket of n arms (1 <= n). Arms are initialised by the
 * caller (arm_init) through b->arms and b->model; returns NULL on bad n.
 * Aborts on out of memory. */
policy_bucket_t *policy_bucket_new(size_t n_arms, double half_life_s,
                                   double now);
void policy_bucket_destroy(policy_bucket_t **b);

/* Index of the arm with model id m, or -1. */
int policy_bucket_find(const policy_bucket_t *b, int model);

/* Applies forgetting up to time now (no-op without a half-life or when now
 * is not later than the last time). Called by every function below. */
void policy_bucket_advance(policy_bucket_t *b, double now);

/* Marks the propensity cache stale (after the caller edits arms). */
void policy_bucket_touch(policy_bucket_t *b);

typedef struct policy_request {
    double now;               /* seconds */
    double target_usd;        /* paced per-request target; <= 0 or inf: none */
    double bucket_target_usd; /* the bucket's own paced target; <= 0: none */
    double remaining_usd;     /* left in the window; +INFINITY: no budget */
    const unsigned char *allowed; /* n_arms mask (1 = allowed); NULL: all */
    /* An extra cost weight (quality per USD) added to the shadow price's
     * mu / target in the Thompson score of ts-budget: a tenant's own
     * price mu_t / target_t (allow_tenant). 0: none. The LP of a capped
     * bucket does not use it. */
    double extra_lambda;
    const double *features; /* request features (reserved for contextual
                               policies; ignored by these) */
    size_t n_features;
    int no_propensity; /* 1: skip computing it (propensity = NAN) */
} policy_request_t;

/* Fills a request with no budget and no mask at time now. */
void policy_request_init(policy_request_t *r, double now);

#define POLICY_F_UNAFFORDABLE 1u /* no affordable arm: cheapest chosen */
#define POLICY_F_EXPLORED     2u /* chosen by the exploration floor */
#define POLICY_F_NO_ARM       4u /* nothing allowed: arm = -1 */

typedef struct policy_choice {
    int arm;              /* index into b->arms, or -1 (POLICY_F_NO_ARM) */
    int model;            /* b->model[arm], or -1 */
    double propensity;    /* P(this arm) under the state at decision time */
    double expected_cost; /* cost estimate of the arm, USD */
    unsigned flags;       /* POLICY_F_* */
} policy_choice_t;

/* Chooses an arm. If order is non-NULL it receives the allowed arms ranked
 * best first by this decision's scores (the chosen arm first), for
 * fallbacks; *n_order their count. Updates p->mu (ts-budget) and
 * b->arms[arm].pulls. Returns 0, or BURSAR_EPOLICY when no arm is allowed. */
int policy_choose(policy_t *p, policy_bucket_t *b, const policy_request_t *req,
                  gsl_rng *rng, policy_choice_t *out, int *order,
                  size_t *n_order);

/* The allowed arms (req->allowed) whose cost estimate fits in
 * req->remaining_usd, by the costs policy_choose would use now: 0 means
 * policy_choose would serve the cheapest, flagged POLICY_F_UNAFFORDABLE.
 * Changes no decision state (it may refresh the snapshot, as
 * policy_propensities does). */
size_t policy_affordable(policy_t *p, policy_bucket_t *b,
                         const policy_request_t *req);

/* The propensity of every arm under the current state (same method and
 * cache as policy_choose). probs has n_arms entries. */
void policy_propensities(policy_t *p, policy_bucket_t *b,
                         const policy_request_t *req, double *probs);

/* The dual step of a shadow price (the rule above, for mu and for a
 * tenant's own price): max(0, mu + eta (min(cost / target, CLIP) - 1)),
 * at most POLICY_MU_MAX. Returns mu unchanged when target is not finite
 * and positive (no budget, or a window's budget used up). */
double policy_dual_step(double mu, double cost, double target, double eta);

/* Feedback. arm is an index into b->arms; out-of-range is ignored and
 * returns BURSAR_EINVAL. */
int policy_reward(policy_bucket_t *b, int arm, double reward, double now);
/* policy_amend: t_outcome is when the original outcome was applied; the
 * evidence moved is what forgetting has left of it,
 * 2^(-(now - t_outcome) / half_life) of a whole observation. */
int policy_amend(policy_bucket_t *b, int arm, double old_r, double new_r,
                 double t_outcome, double now);
int policy_cost(policy_bucket_t *b, int arm, double cost_usd, double now);

#endif
