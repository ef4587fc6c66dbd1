/*
 * Tenant budgets at the policies level: two tenants with budgets of their
 * own share one bucket (one posterior per arm, no global budget); tenant
 * A sends ten times what its budget affords and is refused once it is
 * spent (when_exhausted "refuse": the request is not chosen for). Tenant
 * B's quality (the mean success probability of the arms chosen for it)
 * must be what it is when B runs alone, and A's spend at most its limit.
 * A control run in which both share one pool of the same total (the
 * global budget, no tenant prices) shows that the comparison can fail:
 * there, A's traffic starves B. A third part puts A on serve_cheapest
 * under a finite global budget: B is then not isolated (A's over-budget
 * requests count in the global pacer), and the test checks the bound
 * docs/controller.md states.
 *
 * Each scenario runs R seeds (fixed); the margin is 4 standard errors of
 * the difference of the two scenarios' means (the runs' quality varies
 * from seed to seed; its sample variance gives the standard error), plus
 * the measure's grain (one decision of B's moved between the two arms
 * its budget mixes).
 *
 * The bucket has learnt its arms (priors worth PRIOR_N outcomes at the
 * true rates): with flat priors A's traffic also teaches the bucket, and
 * B's quality is then higher with A than alone (by about 0.004 with these
 * figures), which is not what this test is about.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "policies/allow.h"
#include "policies/pacer.h"
#include "policies/policy.h"

#define WINDOW  86400.0
#define N_B     2000  /* B's requests in the window */
#define N_A     20000 /* A's: ten times what its budget affords */
#define R       24    /* seeds per scenario */
#define ARMS    3
#define PRIOR_N 200.0

/* strong, mid, cheap */
static const double arm_p[ARMS] = {0.90, 0.75, 0.50};
static const double arm_c[ARMS] = {0.010, 0.003, 0.0005};
/* B's budget: 0.004 per request (all mid, some strong); A's: 2000 of its
 * 20000 requests at the cheap arm. */
static const double limit_b = N_B * 0.004;
static const double limit_a = 2000 * 0.0005;

/* ALONE: B only, no global budget; ISOLATED: A saturated and refused
 * once spent, no global budget; SHARED: one pool, no tenant budgets;
 * ALONE_G: B only under the global limit global_g; SERVED: A saturated
 * and served the cheapest once spent (over_budget), under global_g */
enum scenario { ALONE, ISOLATED, SHARED, ALONE_G, SERVED };

/* The global limit of ALONE_G and SERVED */
static double global_g;

typedef struct tenant {
    pacer_t pacer;
    double mu;
} tenant_t;

static void
tenant_init(tenant_t *t, double limit, double expected)
{
    /* the prior: the tenant's expected requests over the window */
    pacer_init(&t->pacer, limit, WINDOW, expected / WINDOW, 0.0);
    t->mu = 0.0;
}

typedef struct world {
    policy_t pol;
    policy_bucket_t *b;
    pacer_t global;
    tenant_t ta, tb;
    gsl_rng *rng;
    double quality_b; /* sum of p of the arms chosen for B */
    size_t served_b;
    double a_flagged_usd;      /* A's spend on decisions flagged over_budget */
    double global_flagged_usd; /* spend flagged over the global budget */
} world_t;

static void
world_init(world_t *w, enum scenario sc, unsigned long seed)
{
    policy_params_t pp;
    policy_params_default(&pp);
    policy_init(&w->pol, &pp);
    w->b = policy_bucket_new(ARMS, 0.0, 0.0);
    /* A bucket that has learnt its arms (priors worth PRIOR_N outcomes at
     * the true rates): what A's traffic would teach B's draws is not what
     * is measured here, the budgets are. */
    for (int k = 0; k < ARMS; k++)
        arm_init(&w->b->arms[k], arm_p[k] * PRIOR_N, (1 - arm_p[k]) * PRIOR_N,
                 arm_c[k], 1.0);
    /* SHARED: one pool of both limits, the global budget */
    double pool = sc == SHARED                    ? limit_a + limit_b
                  : sc == ALONE_G || sc == SERVED ? global_g
                                                  : 0.0;
    pacer_init(&w->global, pool, WINDOW, (N_A + N_B) / WINDOW, 0.0);
    tenant_init(&w->ta, limit_a, 2000);
    tenant_init(&w->tb, limit_b, N_B);
    w->rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(w->rng, seed);
    w->quality_b = 0.0;
    w->served_b = 0;
    w->a_flagged_usd = w->global_flagged_usd = 0.0;
}

/* One request of tenant t (NULL: no budget of its own) at now; refuse: its
 * when_exhausted is "refuse" (else "serve_cheapest"). Returns the arm, or
 * -1 when refused. */
static int
world_request(world_t *w, tenant_t *t, int refuse, double now)
{
    policy_request_t req;
    allow_request(&req, NULL, &w->global, NULL, now);
    req.no_propensity = 1;
    double global_left = req.remaining_usd;
    double target = INFINITY;
    if (t) {
        target = allow_tenant(&req, &t->pacer, t->mu, now);
        policy_request_t own = req;
        own.remaining_usd = pacer_remaining(&t->pacer);
        if (refuse && policy_affordable(&w->pol, w->b, &own) == 0)
            return -1;
    }
    policy_choice_t ch;
    assert_int_equal(
        policy_choose(&w->pol, w->b, &req, w->rng, &ch, NULL, NULL), 0);
    pacer_reserve(&w->global, ch.expected_cost, now);
    if (t) {
        pacer_reserve(&t->pacer, ch.expected_cost, now);
        if (!(ch.flags & POLICY_F_UNAFFORDABLE))
            t->mu = policy_dual_step(t->mu, ch.expected_cost, target,
                                     w->pol.params.dual_step);
    }
    /* the outcome at once: reward and the arm's exact cost */
    int k = ch.arm;
    double r = gsl_rng_uniform(w->rng) < arm_p[k] ? 1.0 : 0.0;
    policy_reward(w->b, k, r, now);
    policy_cost(w->b, k, arm_c[k], now);
    pacer_settle(&w->global, ch.expected_cost, arm_c[k]);
    if (t)
        pacer_settle(&t->pacer, ch.expected_cost, arm_c[k]);
    if (ch.flags & POLICY_F_UNAFFORDABLE) { /* flagged over_budget */
        if (t == &w->ta)
            w->a_flagged_usd += arm_c[k];
        if (ch.expected_cost > global_left)
            w->global_flagged_usd += arm_c[k];
    }
    return k;
}

/* One window's figures. */
typedef struct outcome {
    double quality_b;      /* B's mean p */
    double spent_a;        /* A's spend */
    double a_flagged;      /* of it, on decisions flagged over_budget */
    double spent_global;   /* the global pacer's spend */
    double global_flagged; /* of it, flagged over the global budget */
} outcome_t;

/* One window of scenario sc. */
static outcome_t
run(enum scenario sc, unsigned long seed)
{
    world_t w;
    world_init(&w, sc, seed);
    int with_a = sc == ISOLATED || sc == SHARED || sc == SERVED;
    int tenants = sc != SHARED;
    size_t ia = 0, ib = 0, na = with_a ? N_A : 0;
    while (ia < na || ib < N_B) {
        double ta = ia < na ? (ia + 0.5) * WINDOW / na : INFINITY;
        double tb = ib < N_B ? (ib + 0.25) * WINDOW / N_B : INFINITY;
        if (ta < tb) {
            world_request(&w, tenants ? &w.ta : NULL, sc != SERVED, ta);
            ia++;
        } else {
            int k = world_request(&w, tenants ? &w.tb : NULL, 0, tb);
            assert_true(k >= 0); /* B is never refused: serve_cheapest */
            w.quality_b += arm_p[k];
            w.served_b++;
            ib++;
        }
    }
    outcome_t o = {w.quality_b / (double)w.served_b, w.ta.pacer.spent_usd,
                   w.a_flagged_usd, w.global.spent_usd, w.global_flagged_usd};
    policy_bucket_destroy(&w.b);
    gsl_rng_free(w.rng);
    return o;
}

typedef struct summary {
    double mean, var; /* of the runs' quality */
    double max_spent_a;
    double max_a_unflagged;      /* A's spend not flagged over_budget */
    double max_global_unflagged; /* the global spend not flagged over it */
    double max_global_flagged;
} summary_t;

static summary_t
scenario(enum scenario sc, unsigned long seed0)
{
    double q[R], sum = 0.0, ss = 0.0;
    summary_t s = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < R; i++) {
        outcome_t o = run(sc, seed0 + (unsigned long)i);
        q[i] = o.quality_b;
        sum += q[i];
        s.max_spent_a = fmax(s.max_spent_a, o.spent_a);
        s.max_a_unflagged = fmax(s.max_a_unflagged, o.spent_a - o.a_flagged);
        s.max_global_unflagged =
            fmax(s.max_global_unflagged, o.spent_global - o.global_flagged);
        s.max_global_flagged = fmax(s.max_global_flagged, o.global_flagged);
    }
    s.mean = sum / R;
    for (int i = 0; i < R; i++)
        ss += (q[i] - s.mean) * (q[i] - s.mean);
    s.var = ss / (R - 1);
    return s;
}

static void
test_saturated_tenant_does_not_starve_another(void **state)
{
    (void)state;
    summary_t alone = scenario(ALONE, 1000);
    summary_t iso = scenario(ISOLATED, 2000);
    summary_t shared = scenario(SHARED, 3000);
    double se = sqrt(alone.var / R + iso.var / R);
    double se_sh = sqrt(alone.var / R + shared.var / R);
    printf("B's quality: alone %.6f, with A saturated %.6f (diff %+.6f, "
           "se %.6f); one shared pool %.6f (diff %+.6f, se %.6f); A spent "
           "at most %.6f of %.6f\n",
           alone.mean, iso.mean, iso.mean - alone.mean, se, shared.mean,
           shared.mean - alone.mean, se_sh, iso.max_spent_a, limit_a);
    /* The budget does bind B: alone it is served below the strongest
     * arm's 0.90 and above the mid arm's 0.75 (else the test would not
     * be about budgets). */
    assert_true(alone.mean < arm_p[0] - 0.01);
    assert_true(alone.mean > arm_p[1]);
    /* unchanged within 4 standard errors, plus the measure's grain: one
     * of B's N_B decisions served by the mid arm instead of the strong
     * one (the budget all but fixes B's mix, so the runs' quality varies
     * little and the standard error alone may be below it) */
    double grain = (arm_p[0] - arm_p[1]) / N_B;
    assert_true(fabs(iso.mean - alone.mean) <= 4.0 * se + grain);
    /* A never spends past its limit (refused once it cannot pay) */
    assert_true(iso.max_spent_a <= limit_a + 1e-9);
    /* The control: sharing one pool, A's traffic takes B's quality far
     * beyond the margin. */
    assert_true(alone.mean - shared.mean > 4.0 * se_sh + grain);
}

/* The tenant's price enters the score: with a high mu_t and a small
 * target the cheap arm wins, and the propensity is that of the total
 * weight (cached by it). */
static void
test_extra_lambda_prices(void **state)
{
    (void)state;
    policy_t pol;
    policy_init(&pol, NULL);
    policy_bucket_t *b = policy_bucket_new(2, 0.0, 0.0);
    arm_init(&b->arms[0], 90.0, 10.0, 0.01, 1.0); /* strong, dear */
    arm_init(&b->arms[1], 60.0, 40.0, 0.001, 1.0);
    double probs[2];
    policy_request_t req;
    policy_request_init(&req, 0.0);
    policy_propensities(&pol, b, &req, probs);
    assert_true(probs[0] > 0.99);
    /* 0.3 of quality buys less than 0.009 USD at 100 quality per USD */
    req.extra_lambda = 100.0;
    policy_propensities(&pol, b, &req, probs);
    assert_true(probs[1] > 0.99);
    /* the same weight from mu / target: the same propensities */
    double p2[2];
    policy_t pm;
    policy_init(&pm, NULL);
    pm.mu = 1.0;
    policy_request_t rm;
    policy_request_init(&rm, 0.0);
    rm.target_usd = 0.01;
    policy_propensities(&pm, b, &rm, p2);
    assert_true(fabs(p2[1] - probs[1]) < 1e-9);
    /* plain ts ignores it */
    pol.params.kind = POLICY_TS;
    policy_propensities(&pol, b, &req, probs);
    assert_true(probs[0] > 0.99);
    policy_bucket_destroy(&b);
}

static void
test_dual_step(void **state)
{
    (void)state;
    /* cost at the target: no move; above: up, clipped; below: down to 0 */
    assert_true(fabs(policy_dual_step(1.0, 0.01, 0.01, 0.1) - 1.0) < 1e-12);
    assert_true(fabs(policy_dual_step(1.0, 0.02, 0.01, 0.1) - 1.1) < 1e-12);
    assert_true(fabs(policy_dual_step(1.0, 1.0, 0.01, 0.1) -
                     (1.0 + 0.1 * (POLICY_DUAL_CLIP - 1.0))) < 1e-12);
    assert_true(policy_dual_step(0.01, 0.0, 0.01, 0.1) == 0.0);
    assert_true(policy_dual_step(POLICY_MU_MAX, 1.0, 0.01, 1.0) ==
                POLICY_MU_MAX);
    /* no finite positive target: unchanged */
    assert_true(policy_dual_step(2.0, 1.0, 0.0, 0.1) == 2.0);
    assert_true(policy_dual_step(2.0, 1.0, INFINITY, 0.1) == 2.0);
}

/* allow_tenant: what is left is the tightest; the weight mu_t / target_t */
static void
test_allow_tenant(void **state)
{
    (void)state;
    pacer_t g, t;
    pacer_init(&g, 100.0, 1000.0, 1.0, 0.0);
    pacer_init(&t, 5.0, 1000.0, 0.5, 0.0); /* 500 expected: 0.01 each */
    policy_request_t req;
    allow_request(&req, NULL, &g, NULL, 10.0);
    assert_true(fabs(req.remaining_usd - 100.0) < 1e-12);
    double tt = allow_tenant(&req, &t, 2.0, 10.0);
    assert_true(fabs(req.remaining_usd - 5.0) < 1e-12);
    assert_true(fabs(tt - pacer_target(&t, 10.0)) < 1e-12); /* the pacer's */
    assert_true(tt > 0.0 && isfinite(tt));
    assert_true(fabs(req.extra_lambda - 2.0 / tt) < 1e-9);
    /* spent: target 0, no weight (affordability acts instead) */
    pacer_settle(&t, 0.0, 5.0);
    tt = allow_tenant(&req, &t, 2.0, 20.0);
    assert_true(tt == 0.0 && req.extra_lambda == 0.0);
    assert_true(req.remaining_usd <= 0.0);
}

/* A on serve_cheapest under a finite global budget G: A keeps being
 * served past its own limit (the cheapest arm, flagged over_budget), and
 * those requests count in the global pacer like any other. What holds
 * (docs/controller.md, "Tenant budgets"): A's spend not flagged stays
 * within its limit; the global limit is not exceeded (G pays A's overflow
 * at the cheapest and B's paced spend); B's quality is at least what B
 * alone gets under its requests' share of G, G x N_B / (N_A + N_B). And
 * what does not: B is not isolated, its quality falls well below B alone
 * under G (the global target is spread over A's flood too). */
static void
test_served_tenant_under_global_budget(void **state)
{
    (void)state;
    const double g = 24.0; /* A's 20000 at the cheapest (10) + B's 8, and
                              room */
    global_g = g;
    summary_t sv = scenario(SERVED, 4000);
    summary_t full = scenario(ALONE_G, 5000);
    global_g = g * N_B / (N_A + N_B);
    summary_t share = scenario(ALONE_G, 6000);
    double se_full = sqrt(full.var / R + sv.var / R);
    double se_share = sqrt(share.var / R + sv.var / R);
    double grain = (arm_p[0] - arm_p[1]) / N_B;
    printf("global %.0f, A on serve_cheapest: B's quality %.6f; B alone "
           "under %.0f %.6f (se %.6f), under its share %.4f %.6f (se "
           "%.6f); A spent at most %.4f (%.4f not flagged) of %.4f; the "
           "global spend at most %.4f\n",
           g, sv.mean, g, full.mean, se_full, global_g, share.mean, se_share,
           sv.max_spent_a, sv.max_a_unflagged, limit_a,
           sv.max_global_unflagged + sv.max_global_flagged);
    /* A is served past its limit, only on flagged decisions */
    assert_true(sv.max_spent_a > 5.0 * limit_a);
    assert_true(sv.max_a_unflagged <= limit_a + 1e-9);
    /* the global limit holds */
    assert_true(sv.max_global_flagged == 0.0);
    assert_true(sv.max_global_unflagged <= g + 1e-9);
    /* the documented bound: at least B alone under its share of G */
    assert_true(sv.mean >= share.mean - (4.0 * se_share + grain));
    /* and B does suffer: below B alone under G by far more than the
     * margin (if this fails, B is isolated here too: update the docs) */
    assert_true(full.mean - sv.mean > 4.0 * se_full + grain);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dual_step),
        cmocka_unit_test(test_allow_tenant),
        cmocka_unit_test(test_extra_lambda_prices),
        cmocka_unit_test(test_saturated_tenant_does_not_starve_another),
        cmocka_unit_test(test_served_tenant_under_global_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
