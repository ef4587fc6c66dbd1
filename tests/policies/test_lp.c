/* The budget LPs against brute force on random instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include <gsl/gsl_rng.h>

#include "tests/policies/near.h"

#include "policies/lp.h"

#define MAXN 8

/* Brute force of the one-bucket LP: the optimum is a vertex, i.e. one arm
 * or two arms mixed so that the constraint is tight. */
static double
brute_bucket(size_t n, const double *v, const double *c, const unsigned char *m,
             double t, int *feasible)
{
    double best = -INFINITY;
    *feasible = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !m[i])
            continue;
        if (c[i] <= t) {
            *feasible = 1;
            best = fmax(best, v[i]);
        }
        for (size_t j = 0; j < n; j++) {
            if ((m && !m[j]) || j == i || c[i] > t || c[j] <= t)
                continue;
            double w = (t - c[i]) / (c[j] - c[i]);
            best = fmax(best, (1 - w) * v[i] + w * v[j]);
        }
    }
    return best;
}

static void
test_bucket_vs_brute(void **state)
{
    (void)state;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 7);
    int infeasible_seen = 0, mixed_seen = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = 1 + gsl_rng_uniform_int(r, MAXN);
        double v[MAXN], c[MAXN], p[MAXN];
        unsigned char m[MAXN];
        int any = 0;
        for (size_t k = 0; k < n; k++) {
            v[k] = gsl_rng_uniform(r);
            /* Ties in cost and value now and then. */
            c[k] = (it % 5 == 0) ? (double)gsl_rng_uniform_int(r, 4)
                                 : gsl_rng_uniform(r);
            m[k] = gsl_rng_uniform(r) < 0.85;
            any |= m[k];
        }
        double t = gsl_rng_uniform(r) * 0.8;
        int rc = lp_solve_bucket(n, v, c, m, t, p);
        if (!any) {
            assert_int_equal(rc, LP_EMPTY);
            continue;
        }
        int feas;
        double want = brute_bucket(n, v, c, m, t, &feas);
        double sum = 0, val = 0, cost = 0;
        int support = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(p[k] >= -1e-12);
            if (!m[k])
                assert_true(p[k] == 0.0);
            sum += p[k];
            val += p[k] * v[k];
            cost += p[k] * c[k];
            support += p[k] > 0;
        }
        assert_double_equal(sum, 1.0, 1e-9);
        assert_true(support <= 2);
        if (!feas) {
            assert_int_equal(rc, LP_INFEASIBLE);
            infeasible_seen++;
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(cost <= t + 1e-9);
        assert_double_equal(val, want, 1e-9);
        mixed_seen += support == 2;
    }
    assert_true(infeasible_seen > 100);
    assert_true(mixed_seen > 1000);
    gsl_rng_free(r);
}

/* Brute force of the shared-budget LP over nb buckets: at most one bucket
 * mixes two arms; every other one is pure. Enumerate the pure choices of
 * all buckets and, for each bucket in turn, every mixed pair in it. */
static double
brute_static(size_t nb, const size_t *n, double v[][MAXN], double c[][MAXN],
             const double *w, double t)
{
    double best = -INFINITY;
    size_t choice[4] = {0};
    for (;;) {
        double val = 0, cost = 0;
        for (size_t b = 0; b < nb; b++) {
            val += w[b] * v[b][choice[b]];
            cost += w[b] * c[b][choice[b]];
        }
        if (cost <= t + 1e-12)
            best = fmax(best, val);
        /* Mix the arm of bucket f with another of f. */
        for (size_t f = 0; f < nb; f++) {
            size_t i = choice[f];
            double base_v = val - w[f] * v[f][i];
            double base_c = cost - w[f] * c[f][i];
            for (size_t j = 0; j < n[f]; j++) {
                double ci = base_c + w[f] * c[f][i];
                double cj = base_c + w[f] * c[f][j];
                if (ci > t || cj <= t)
                    continue;
                double x = (t - ci) / (cj - ci);
                best = fmax(best,
                            base_v + w[f] * ((1 - x) * v[f][i] + x * v[f][j]));
            }
        }
        size_t b = 0;
        while (b < nb && ++choice[b] == n[b])
            choice[b++] = 0;
        if (b == nb)
            break;
    }
    return best;
}

static void
test_static_vs_brute(void **state)
{
    (void)state;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    int checked = 0;
    for (int it = 0; it < 3000; it++) {
        size_t nb = 1 + gsl_rng_uniform_int(r, 3);
        size_t n[4];
        double v[4][MAXN], c[4][MAXN], p[4][MAXN], w[4], wsum = 0;
        lp_bucket_t bk[4];
        for (size_t b = 0; b < nb; b++) {
            n[b] = 1 + gsl_rng_uniform_int(r, 4);
            w[b] = 0.1 + gsl_rng_uniform(r);
            wsum += w[b];
            for (size_t k = 0; k < n[b]; k++) {
                v[b][k] = gsl_rng_uniform(r);
                c[b][k] = gsl_rng_uniform(r);
            }
        }
        for (size_t b = 0; b < nb; b++) {
            w[b] /= wsum;
            bk[b] = (lp_bucket_t){n[b], v[b], c[b], w[b], p[b]};
        }
        double t = gsl_rng_uniform(r) * 0.7, val, cost;
        int rc = lp_solve_static(nb, bk, t, &val, &cost);
        double want = brute_static(nb, n, v, c, w, t);
        if (!isfinite(want)) {
            assert_int_equal(rc, LP_INFEASIBLE);
            continue;
        }
        assert_int_equal(rc, 0);
        /* The returned distributions are what the objective says. */
        double v2 = 0, c2 = 0;
        int fractional = 0;
        for (size_t b = 0; b < nb; b++) {
            double s = 0;
            int sup = 0;
            for (size_t k = 0; k < n[b]; k++) {
                s += p[b][k];
                v2 += w[b] * p[b][k] * v[b][k];
                c2 += w[b] * p[b][k] * c[b][k];
                sup += p[b][k] > 0;
            }
            assert_double_equal(s, 1.0, 1e-9);
            fractional += sup > 1;
        }
        assert_true(fractional <= 1);
        assert_double_equal(v2, val, 1e-9);
        assert_double_equal(c2, cost, 1e-9);
        assert_true(cost <= t + 1e-9);
        assert_double_equal(val, want, 1e-9);
        checked++;
    }
    assert_true(checked > 1500);
    gsl_rng_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_vs_brute),
        cmocka_unit_test(test_static_vs_brute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
