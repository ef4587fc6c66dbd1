/* Decisions: propensities (quadrature and empirical), determinism,
 * budget tracking, affordability, floor, fallbacks, baselines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "tests/policies/near.h"

#include "policies/lp.h"
#include "policies/pacer.h"
#include "policies/policy.h"

void policy_ts_integrate_(const double *alpha, const double *beta,
                          const double *cost, double lambda, size_t n,
                          const unsigned char *mask, size_t cells,
                          double *prob);

static gsl_rng *
rng_new(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* A bucket of n arms with given means, evidence and costs. */
static policy_bucket_t *
bucket_make(size_t n, const double *mean, double evidence, const double *cost)
{
    policy_bucket_t *b = policy_bucket_new(n, 0.0, 0.0);
    for (size_t k = 0; k < n; k++) {
        arm_init(&b->arms[k], 1.0, 1.0, cost ? cost[k] : 0.0, 1.0);
        b->arms[k].alpha += mean[k] * evidence;
        b->arms[k].beta += (1.0 - mean[k]) * evidence;
        b->model[k] = 100 + (int)k;
    }
    return b;
}

/* The adaptive quadrature agrees with one 50 times finer. */
static void
test_quadrature_accuracy(void **state)
{
    (void)state;
    gsl_rng *r = rng_new(3);
    double worst = 0.0;
    for (int it = 0; it < 40; it++) {
        size_t n = 2 + gsl_rng_uniform_int(r, 10);
        double a[16], b[16], c[16], p1[16], p2[16];
        unsigned char m[16];
        double ev = pow(10.0, gsl_rng_uniform(r) * 4.0); /* 1 .. 10^4 */
        for (size_t k = 0; k < n; k++) {
            double mu = 0.3 + 0.6 * gsl_rng_uniform(r);
            double e = ev * (0.2 + gsl_rng_uniform(r));
            a[k] = 1.0 + mu * e;
            b[k] = 1.0 + (1.0 - mu) * e;
            c[k] = gsl_rng_uniform(r) * 0.1;
            m[k] = gsl_rng_uniform(r) < 0.9;
        }
        m[0] = 1;
        double lambda = (it % 2) ? 0.0 : gsl_rng_uniform(r);
        policy_ts_integrate_(a, b, c, lambda, n, m, 0, p1);
        policy_ts_integrate_(a, b, c, lambda, n, m, 20000, p2);
        double s = 0.0;
        for (size_t k = 0; k < n; k++) {
            s += p1[k];
            worst = fmax(worst, fabs(p1[k] - p2[k]));
            if (!m[k])
                assert_true(p1[k] == 0.0);
        }
        assert_double_equal(s, 1.0, 1e-9);
    }
    print_message("quadrature: worst |adaptive - fine| = %.5f\n", worst);
    assert_true(worst < 0.005);
    gsl_rng_free(r);
}

/* Against Monte Carlo, where GSL's own Beta CDF gives out (evidence up to
 * 1e7) and sharp arms sit beside a wide one. With N draws a frequency has
 * sd <= 0.5/sqrt(N) = 0.0008 for N = 400000; we allow the header's 0.005
 * plus 4 sd. */
static void
test_propensity_vs_monte_carlo(void **state)
{
    (void)state;
    const int N = 400000;
    const double margin = 0.005 + 4.0 * 0.5 / sqrt((double)N);
    const struct {
        double ev, m[3];
    } cases[] = {
        {1e6, {0.5, 0.5005, -1}},  /* two sharp arms 1 sd apart + Beta(1,1) */
        {1e7, {0.7, 0.70015, -1}}, /* past GSL's range */
        {3e6, {0.9, 0.9002, 0.8995}}, {2e5, {0.3, 0.301, -1}},
        {50.0, {0.6, 0.65, 0.5}},
    };
    unsigned char mask[3] = {1, 1, 1};
    double cost[3] = {0, 0, 0};
    gsl_rng *r = rng_new(17);
    double worst = 0.0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double a[3], b[3], p[3], f[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            if (cases[c].m[k] < 0) { /* the wide arm */
                a[k] = 1.0;
                b[k] = 1.0;
            } else {
                a[k] = 1.0 + cases[c].m[k] * cases[c].ev;
                b[k] = 1.0 + (1.0 - cases[c].m[k]) * cases[c].ev;
            }
        }
        policy_ts_integrate_(a, b, cost, 0.0, 3, mask, 0, p);
        for (int i = 0; i < N; i++) {
            int best = 0;
            double x, bx = -1.0;
            for (int k = 0; k < 3; k++) {
                x = gsl_ran_beta(r, a[k], b[k]);
                if (x > bx) {
                    bx = x;
                    best = k;
                }
            }
            f[best] += 1.0 / N;
        }
        for (int k = 0; k < 3; k++) {
            assert_true(isfinite(p[k]));
            worst = fmax(worst, fabs(p[k] - f[k]));
        }
    }
    print_message("quadrature vs Monte Carlo: worst %.5f (allowed %.4f)\n",
                  worst, margin);
    assert_true(worst < margin);
    gsl_rng_free(r);
}

/* mu takes no step while the budget is used up: the next window must not
 * start with a price that grew meanwhile. */
static void
test_mu_frozen_when_exhausted(void **state)
{
    (void)state;
    const double mean[2] = {0.9, 0.6}, cost[2] = {0.01, 0.001};
    policy_bucket_t *b = bucket_make(2, mean, 100.0, cost);
    policy_params_t pp;
    policy_params_default(&pp);
    pp.mu0 = 0.2;
    policy_t p;
    policy_init(&p, &pp);
    gsl_rng *r = rng_new(4);
    for (int i = 0; i < 1000; i++) {
        policy_request_t req;
        policy_request_init(&req, 0.0);
        req.target_usd = 0.0;     /* budget used up */
        req.remaining_usd = -0.5; /* over it, even */
        policy_choice_t ch;
        policy_choose(&p, b, &req, r, &ch, NULL, NULL);
        assert_int_equal(ch.arm, 1);
        assert_true(ch.flags & POLICY_F_UNAFFORDABLE);
    }
    assert_double_equal(p.mu, 0.2, 0.0);
    /* And it never passes its bound however dear the arm. */
    for (int i = 0; i < 100000; i++) {
        policy_request_t req;
        policy_request_init(&req, 0.0);
        req.target_usd = 1e-9;
        req.remaining_usd = 1.0;
        req.no_propensity = 1;
        policy_choice_t ch;
        policy_choose(&p, b, &req, r, &ch, NULL, NULL);
    }
    assert_true(p.mu <= POLICY_MU_MAX);
    assert_true(p.mu > 50.0);
    gsl_rng_free(r);
    policy_bucket_destroy(&b);
}

/* Reported propensities match selection frequencies. With N decisions a
 * frequency has sd <= 0.5/sqrt(N); N = 100000 gives 0.0016, so 0.01 is
 * the quadrature's 0.005 plus 3 sd. */
static void
check_empirical(policy_t *p, policy_bucket_t *b, policy_request_t *req,
                double margin)
{
    const int N = 100000;
    size_t n = b->n_arms;
    double prob[16], freq[16] = {0}, reported[16] = {0};
    gsl_rng *r = rng_new(5);
    policy_propensities(p, b, req, prob);
    for (int i = 0; i < N; i++) {
        policy_choice_t ch;
        assert_int_equal(policy_choose(p, b, req, r, &ch, NULL, NULL), 0);
        freq[ch.arm] += 1.0 / N;
        reported[ch.arm] = ch.propensity;
    }
    for (size_t k = 0; k < n; k++) {
        assert_true(fabs(freq[k] - prob[k]) < margin);
        if (freq[k] > 0)
            assert_double_equal(reported[k], prob[k], 1e-12);
    }
    gsl_rng_free(r);
}

static void
test_propensity_empirical_ts(void **state)
{
    (void)state;
    const double mean[5] = {0.55, 0.6, 0.62, 0.5, 0.3};
    policy_bucket_t *b = bucket_make(5, mean, 40.0, NULL);
    policy_params_t pp;
    policy_params_default(&pp);
    pp.kind = POLICY_TS;
    pp.explore_floor = 0.02;
    policy_t p;
    policy_init(&p, &pp);
    policy_request_t req;
    policy_request_init(&req, 0.0);
    check_empirical(&p, b, &req, 0.01);
    /* The floor holds for every allowed arm. */
    double prob[5];
    policy_propensities(&p, b, &req, prob);
    for (size_t k = 0; k < 5; k++)
        assert_true(prob[k] >= 0.02 - 1e-12);
    /* An excluded arm gets none, the others renormalise. */
    unsigned char allow[5] = {1, 1, 0, 1, 1};
    req.allowed = allow;
    check_empirical(&p, b, &req, 0.01);
    policy_propensities(&p, b, &req, prob);
    assert_true(prob[2] == 0.0);
    policy_bucket_destroy(&b);
}

static void
test_propensity_empirical_budget(void **state)
{
    (void)state;
    const double mean[4] = {0.9, 0.8, 0.7, 0.6};
    const double cost[4] = {0.010, 0.004, 0.002, 0.001};
    policy_bucket_t *b = bucket_make(4, mean, 200.0, cost);
    policy_params_t pp;
    policy_params_default(&pp);
    pp.kind = POLICY_TS_BUDGET;
    pp.mu0 = 0.03;
    pp.dual_step = 0.0; /* hold mu still to compare with frequencies */
    policy_t p;
    policy_init(&p, &pp);
    policy_request_t req;
    policy_request_init(&req, 0.0);
    req.target_usd = 0.003;
    req.remaining_usd = 1.0;
    check_empirical(&p, b, &req, 0.01);
    /* A bucket cap: the per-request LP, propensity by Monte Carlo (sd
     * 0.0025) against frequencies (sd 0.0016): the difference has sd
     * 0.003, and 0.012 is 4 sd. */
    req.bucket_target_usd = 0.003;
    check_empirical(&p, b, &req, 0.012);
    policy_bucket_destroy(&b);
}

/* Same seed, same decisions; another seed, others. */
static uint64_t
run_hash(unsigned long seed, double *mu_out)
{
    const double q[3] = {0.5, 0.7, 0.8}, c[3] = {0.001, 0.003, 0.01};
    const double mean[3] = {0.5, 0.5, 0.5};
    policy_bucket_t *b = bucket_make(3, mean, 0.0, c);
    b->half_life_s = 500.0;
    policy_params_t pp;
    policy_params_default(&pp);
    policy_t p;
    policy_init(&p, &pp);
    gsl_rng *r = rng_new(seed);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 3000; i++) {
        policy_request_t req;
        policy_request_init(&req, i);
        req.target_usd = 0.004;
        req.remaining_usd = 100.0;
        policy_choice_t ch;
        policy_choose(&p, b, &req, r, &ch, NULL, NULL);
        double y = gsl_rng_uniform(r) < q[ch.arm];
        policy_reward(b, ch.arm, y, i);
        policy_cost(b, ch.arm, c[ch.arm], i);
        h = (h ^ (uint64_t)ch.arm) * 1099511628211ull;
        h = (h ^ (uint64_t)(ch.propensity * 1e9)) * 1099511628211ull;
    }
    *mu_out = p.mu;
    gsl_rng_free(r);
    policy_bucket_destroy(&b);
    return h;
}

static void
test_determinism(void **state)
{
    (void)state;
    double m1, m2, m3;
    uint64_t a = run_hash(42, &m1), b = run_hash(42, &m2);
    uint64_t c = run_hash(43, &m3);
    assert_true(a == b);
    assert_true(m1 == m2);
    assert_true(a != c);
}

/* ts-budget against the LP optimum on two arms: cheap (q 0.6, cost 1),
 * dear (q 0.9, cost 10), budget 4 per request. The LP mixes 1/3 dear:
 * quality 0.7. Over T = 20000 requests the realised quality has sd
 * sqrt(0.21/T) = 0.0032; we ask for 0.98 x 0.7 = 0.686 (4 sd below), and
 * spend at most 1.02 x budget, which the pacer must guarantee. */
static void
test_budget_tracking(void **state)
{
    (void)state;
    const int T = 20000;
    const double q[2] = {0.6, 0.9}, c[2] = {1.0, 10.0}, budget = 4.0;
    const double mean[2] = {0.5, 0.5};
    policy_bucket_t *b = bucket_make(2, mean, 0.0, c);
    policy_params_t pp;
    policy_params_default(&pp);
    policy_t p;
    policy_init(&p, &pp);
    pacer_t pc;
    pacer_init(&pc, budget * T, T, 1.0, 0.0);
    gsl_rng *r = rng_new(9);
    double quality = 0.0, dear = 0.0;
    for (int i = 0; i < T; i++) {
        policy_request_t req;
        policy_request_init(&req, i);
        req.target_usd = pacer_target(&pc, i);
        req.remaining_usd = pacer_remaining(&pc);
        req.no_propensity = 1;
        policy_choice_t ch;
        policy_choose(&p, b, &req, r, &ch, NULL, NULL);
        pacer_reserve(&pc, ch.expected_cost, i);
        double y = gsl_rng_uniform(r) < q[ch.arm];
        policy_reward(b, ch.arm, y, i);
        policy_cost(b, ch.arm, c[ch.arm], i);
        pacer_settle(&pc, ch.expected_cost, c[ch.arm]);
        quality += y;
        dear += ch.arm == 1;
    }
    quality /= T;
    print_message("two arms: quality %.4f (LP 0.7), spend/req %.4f "
                  "(budget 4), dear share %.3f, mu %.4f\n",
                  quality, pc.spent_usd / T, dear / T, p.mu);
    assert_true(pc.spent_usd / T <= 1.02 * budget);
    assert_true(quality >= 0.98 * 0.7);
    gsl_rng_free(r);
    policy_bucket_destroy(&b);
}

static void
test_unaffordable_and_order(void **state)
{
    (void)state;
    const double mean[4] = {0.9, 0.5, 0.6, 0.7};
    const double cost[4] = {0.05, 0.02, 0.01, 0.03};
    policy_bucket_t *b = bucket_make(4, mean, 10.0, cost);
    policy_params_t pp;
    policy_params_default(&pp);
    policy_t p;
    policy_init(&p, &pp);
    gsl_rng *r = rng_new(1);
    policy_request_t req;
    policy_request_init(&req, 0.0);
    req.target_usd = 0.001;
    req.remaining_usd = 0.005; /* less than any arm costs */
    policy_choice_t ch;
    int order[4];
    size_t no;
    assert_int_equal(policy_choose(&p, b, &req, r, &ch, order, &no), 0);
    assert_int_equal(ch.arm, 2);
    assert_int_equal(ch.model, 102);
    assert_true(ch.flags & POLICY_F_UNAFFORDABLE);
    assert_double_equal(ch.propensity, 1.0, 0.0);
    /* Enough for two arms: only those are chosen and ranked. */
    req.remaining_usd = 0.025;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(policy_choose(&p, b, &req, r, &ch, order, &no), 0);
        assert_true(ch.arm == 1 || ch.arm == 2);
        assert_int_equal(no, 2);
        assert_int_equal(order[0], ch.arm);
        assert_true(!(ch.flags & POLICY_F_UNAFFORDABLE));
    }
    /* Nothing allowed at all. */
    unsigned char none[4] = {0};
    req.allowed = none;
    assert_int_equal(policy_choose(&p, b, &req, r, &ch, order, &no),
                     BURSAR_EPOLICY);
    assert_int_equal(ch.arm, -1);
    assert_true(ch.flags & POLICY_F_NO_ARM);
    gsl_rng_free(r);
    policy_bucket_destroy(&b);
}

static void
test_baselines(void **state)
{
    (void)state;
    const double mean[3] = {0.2, 0.8, 0.5};
    const double cost[3] = {0.03, 0.02, 0.01};
    policy_bucket_t *b = bucket_make(3, mean, 20.0, cost);
    policy_params_t pp;
    policy_params_default(&pp);
    policy_t p;
    gsl_rng *r = rng_new(2);
    policy_request_t req;
    policy_request_init(&req, 0.0);
    policy_choice_t ch;
    double prob[3];

    pp.kind = POLICY_UNIFORM;
    policy_init(&p, &pp);
    policy_propensities(&p, b, &req, prob);
    for (int k = 0; k < 3; k++)
        assert_double_equal(prob[k], 1.0 / 3.0, 1e-12);

    pp.kind = POLICY_EPS_GREEDY;
    pp.epsilon = 0.3;
    policy_init(&p, &pp);
    policy_propensities(&p, b, &req, prob);
    assert_double_equal(prob[1], 0.1 + 0.7, 1e-12);
    assert_double_equal(prob[0], 0.1, 1e-12);

    pp.kind = POLICY_CHEAPEST;
    policy_init(&p, &pp);
    policy_choose(&p, b, &req, r, &ch, NULL, NULL);
    assert_int_equal(ch.arm, 2);
    assert_double_equal(ch.propensity, 1.0, 0.0);

    pp.kind = POLICY_STRONGEST; /* highest price */
    policy_init(&p, &pp);
    policy_choose(&p, b, &req, r, &ch, NULL, NULL);
    assert_int_equal(ch.arm, 0);

    pp.kind = POLICY_FIXED;
    pp.fixed_model = 102;
    policy_init(&p, &pp);
    policy_choose(&p, b, &req, r, &ch, NULL, NULL);
    assert_int_equal(ch.model, 102);

    /* UCB1 tries every arm with no evidence first. */
    const double flat[3] = {0.5, 0.5, 0.5};
    policy_bucket_t *u = bucket_make(3, flat, 0.0, cost);
    pp.kind = POLICY_UCB1;
    policy_init(&p, &pp);
    int seen[3] = {0};
    for (int i = 0; i < 3; i++) {
        policy_choose(&p, u, &req, r, &ch, NULL, NULL);
        seen[ch.arm]++;
        policy_reward(u, ch.arm, 1.0, 0.0);
    }
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);

    /* Static: follows its distribution. */
    pp.kind = POLICY_STATIC;
    policy_init(&p, &pp);
    b->static_p = calloc(3, sizeof(double));
    b->static_p[0] = 0.25;
    b->static_p[2] = 0.75;
    policy_propensities(&p, b, &req, prob);
    assert_double_equal(prob[2], 0.75, 1e-12);
    assert_double_equal(prob[1], 0.0, 0.0);

    policy_kind_t kind;
    const char *model;
    assert_int_equal(policy_kind_parse("fixed:gpt-4", &kind, &model), 0);
    assert_int_equal(kind, POLICY_FIXED);
    assert_string_equal(model, "gpt-4");
    assert_int_equal(policy_kind_parse("ts-budget", &kind, &model), 0);
    assert_int_equal(kind, POLICY_TS_BUDGET);
    assert_int_equal(policy_kind_parse("nonsense", &kind, &model),
                     BURSAR_EINVAL);
    assert_int_equal(policy_kind_parse("fixed:", &kind, &model), BURSAR_EINVAL);

    gsl_rng_free(r);
    policy_bucket_destroy(&b);
    policy_bucket_destroy(&u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quadrature_accuracy),
        cmocka_unit_test(test_propensity_vs_monte_carlo),
        cmocka_unit_test(test_mu_frozen_when_exhausted),
        cmocka_unit_test(test_propensity_empirical_ts),
        cmocka_unit_test(test_propensity_empirical_budget),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_budget_tracking),
        cmocka_unit_test(test_unaffordable_and_order),
        cmocka_unit_test(test_baselines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
