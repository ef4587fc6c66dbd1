/* test_cref.c - the hindsight cascade reference (sim/cref.h) against a
 * hand solution and against brute force on small random instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policies/lp.h"
#include "sim/cref.h"
#include "sim/dataset.h"
#include "sim/replay.h"
#include "sim/vmodel.h"
#include "tests/sim/simtest.h"

/* ------------------------------------------------------------ by hand */

/* One bucket, two rows; a costs 1, b costs 10; noisy:0.2,0.1.
 *   row 0: a 1, b 1;  row 1: a 0, b 1.
 * [a]: q 0.5, c 1.  [b]: q 1, c 10.
 * [a,b]: row 0: 0.9 + 0.1 (0.9 + 0.1) = 1 at 1 + 0.1 x 10 = 2;
 *        row 1: a passes falsely (0.2) with 0, else b: 0.8 x 1 = 0.8 at
 *        1 + 0.8 x 10 = 9; mean 0.9 at 5.5.
 * [b,a]: row 0: 1 at 10 + 0.1 = 10.1; row 1: b passes (0.9) with 1, else
 *        a is tried and returned whatever its verdict (the last tried):
 *        0.9 at 10.1; mean 0.95 at 10.1 (0.99 if the rule returned the
 *        better answer tried).
 * Budget 3: the hull [a] (1, 0.5) -> [a,b] (5.5, 0.9) -> [b] (10, 1);
 * mix [a] and [a,b] with t = (3 - 1) / 4.5: q = 0.5 + t 0.4. */
static void
test_hand(void **state)
{
    (void)state;
    dataset_t *ds = dataset_new();
    int a = dataset_model_id(ds, "a"), b = dataset_model_id(ds, "b");
    int x = dataset_bucket_id(ds, "x");
    dataset_add_row(ds, x);
    dataset_set(ds, a, DATASET_OK, 1.0, 1.0);
    dataset_set(ds, b, DATASET_OK, 1.0, 10.0);
    dataset_add_row(ds, x);
    dataset_set(ds, a, DATASET_OK, 0.0, 1.0);
    dataset_set(ds, b, DATASET_OK, 1.0, 10.0);
    dataset_finish(ds);
    vmodel_t vm;
    serr_t e = {0, ""};
    assert_int_equal(vmodel_parse("noisy:0.2,0.1", &vm, &e), 0);
    cref_t *r = cref_build(ds, &vm, 2, &e);
    assert_non_null(r);
    assert_int_equal(cref_steps(r), 2);
    assert_int_equal(cref_n_orders(r, x), 4);
    double want[4][4] = {/* first, second, q, c */
                         {a, -1, 0.5, 1.0},
                         {b, -1, 1.0, 10.0},
                         {a, b, 0.9, 5.5},
                         {b, a, 0.95, 10.1}};
    for (size_t i = 0; i < 4; i++) {
        cref_pick_t o;
        assert_int_equal(cref_order(r, x, i, &o), 0);
        size_t j = 0;
        while (j < 4 && !(want[j][0] == o.model[0] && want[j][1] == o.model[1]))
            j++;
        assert_true(j < 4);
        assert_int_equal(o.n_steps, want[j][1] < 0 ? 1 : 2);
        assert_near(o.quality, want[j][2], 1e-12);
        assert_near(o.cost, want[j][3], 1e-12);
        want[j][0] = -9; /* each order once */
    }
    cref_pick_t o;
    assert_int_equal(cref_order(r, x, 4, &o), SERR_ARG);
    assert_int_equal(cref_order(r, 1, 0, &o), SERR_ARG);
    double q, c, t = 2.0 / 4.5;
    assert_int_equal(cref_solve(r, 3.0, &q, &c), 0);
    assert_near(q, 0.5 + t * 0.4, 1e-12);
    assert_near(c, 3.0, 1e-12);
    cref_pick_t pk[4];
    assert_int_equal(cref_picks(r, 3.0, pk, 4), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pk[i].bucket, x);
        assert_int_equal(pk[i].model[0], a);
        assert_near(pk[i].weight, pk[i].n_steps == 1 ? 1.0 - t : t, 1e-12);
    }
    assert_int_equal(cref_solve(r, 0.0, &q, &c), 0); /* no budget */
    assert_near(q, 1.0, 1e-12);
    assert_near(c, 10.0, 1e-12);
    assert_int_equal(cref_solve(r, 0.5, &q, &c), LP_INFEASIBLE);
    assert_near(q, 0.5, 1e-12);
    assert_near(c, 1.0, 1e-12);
    cref_destroy(&r);
    assert_null(r);
    cref_destroy(&r); /* safe on NULL */
    dataset_destroy(&ds);
}

/* ----------------------------------------------------- random instances */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
rng_unif(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static size_t
rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* 2-3 buckets, 3-4 models, 5-30 rows per bucket; 0/1 or graded outcomes
 * (0.5 now and then: the threshold), costs log-uniform over 1e-4 .. 1e-2,
 * about 15% MISSING and 5% ERROR cells, now and then a model absent from a
 * whole bucket, and verdicts on about half the OK cells. */
static dataset_t *
random_data(void)
{
    dataset_t *ds = dataset_new();
    size_t nb = 2 + rng_below(2), nm = 3 + rng_below(2);
    int graded = (int)rng_below(2);
    char name[32];
    for (size_t m = 0; m < nm; m++) {
        snprintf(name, sizeof name, "m%zu", m);
        dataset_model_id(ds, name);
    }
    for (size_t b = 0; b < nb; b++) {
        snprintf(name, sizeof name, "b%zu", b);
        int bk = dataset_bucket_id(ds, name);
        size_t rows = 5 + rng_below(26);
        size_t absent = rng_below(4) == 0 ? rng_below(nm) : nm;
        for (size_t r = 0; r < rows; r++) {
            dataset_add_row(ds, bk);
            for (size_t m = 0; m < nm; m++) {
                double u = rng_unif();
                if (m == absent || u < 0.15)
                    continue; /* MISSING */
                if (u < 0.20) {
                    dataset_set(ds, (int)m, DATASET_ERROR, 0.0, 0.0);
                    continue;
                }
                double q = graded ? rng_unif() : (double)rng_below(2);
                if (graded && rng_below(8) == 0)
                    q = 0.5;
                double c = 1e-4 * pow(100.0, rng_unif());
                dataset_set(ds, (int)m, DATASET_OK, q, c);
                if (rng_below(2))
                    dataset_set_verdict(ds, (double)rng_below(2));
            }
        }
    }
    dataset_finish(ds);
    return ds;
}

/* The validator of a brute-force case, written out independently of
 * vmodel_pass_prob. */
typedef struct bf_val {
    int kind; /* VMODEL_* */
    double fp, ff;
} bf_val_t;

static double
bf_pass(const bf_val_t *v, const dataset_t *ds, size_t row, int m)
{
    size_t k = dataset_idx(ds, row, m);
    int good = ds->outcome[k] >= 0.5;
    if (v->kind == VMODEL_COLUMN && ds->verdict && !isnan(ds->verdict[k]))
        return ds->verdict[k];
    if (v->kind == VMODEL_NOISY)
        return good ? 1.0 - v->ff : v->fp;
    return good ? 1.0 : 0.0;
}

/* (a) One order's expected quality and cost over the bucket's rows where
 * one of its models is available, by enumerating every verdict sequence
 * of the available steps (bit s of mask: step s would pass) with its
 * probability. Returns 0 when no row has any of the models. */
static int
bf_order(const dataset_t *ds, const bf_val_t *v, int bucket, const int *ord,
         size_t len, double *quality, double *cost)
{
    double qs = 0.0, cs = 0.0;
    size_t rows = 0;
    for (size_t r = 0; r < ds->n_rows; r++) {
        if (ds->row_bucket[r] != bucket)
            continue;
        int av[CREF_MAX_STEPS];
        size_t k = 0;
        for (size_t s = 0; s < len; s++)
            if (ds->status[dataset_idx(ds, r, ord[s])] == DATASET_OK)
                av[k++] = ord[s];
        if (k == 0)
            continue;
        rows++;
        for (unsigned mask = 0; mask < (1u << k); mask++) {
            double pr = 1.0;
            for (size_t s = 0; s < k; s++) {
                double p = bf_pass(v, ds, r, av[s]);
                pr *= (mask >> s) & 1 ? p : 1.0 - p;
            }
            size_t ret = k - 1; /* none passes: the last tried */
            for (size_t s = 0; s < k; s++)
                if ((mask >> s) & 1) {
                    ret = s;
                    break;
                }
            double c = 0.0;
            for (size_t s = 0; s <= ret; s++)
                c += ds->cost[dataset_idx(ds, r, av[s])];
            qs += pr * ds->outcome[dataset_idx(ds, r, av[ret])];
            cs += pr * c;
        }
    }
    if (!rows)
        return 0;
    *quality = qs / (double)rows;
    *cost = cs / (double)rows;
    return 1;
}

/* A bucket's options for the brute-force LP. */
typedef struct bf_bucket {
    size_t n;
    double w;
    double v[512], c[512];
} bf_bucket_t;

/* Every order of 1 .. steps distinct present models of bucket b, by
 * counting through all tuples of present models and dropping those with a
 * repeat (not the depth-first walk of cref.c). Each order's figures go to
 * out; each is also looked up in r and compared. */
static void
bf_orders(const dataset_t *ds, const bf_val_t *v, const cref_t *r, int b,
          unsigned steps, bf_bucket_t *out)
{
    size_t nm = ds->n_models, k = 0;
    int present[8];
    for (size_t m = 0; m < nm; m++)
        if (ds->bm_n[(size_t)b * nm + m])
            present[k++] = (int)m;
    out->n = 0;
    for (size_t len = 1; len <= steps && len <= k; len++) {
        size_t tuples = 1;
        for (size_t s = 0; s < len; s++)
            tuples *= k;
        for (size_t t = 0; t < tuples; t++) {
            int ord[CREF_MAX_STEPS];
            unsigned seen = 0, dup = 0;
            for (size_t s = 0, u = t; s < len; s++, u /= k) {
                ord[s] = present[u % k];
                dup |= (seen >> ord[s]) & 1u;
                seen |= 1u << ord[s];
            }
            if (dup)
                continue;
            double q = 0.0, c = 0.0;
            assert_true(bf_order(ds, v, b, ord, len, &q, &c));
            assert_true(out->n < 512);
            out->v[out->n] = q;
            out->c[out->n] = c;
            out->n++;
            /* the same order in cref, with the same figures */
            size_t i = 0, n = cref_n_orders(r, b);
            cref_pick_t o;
            for (; i < n; i++) {
                assert_int_equal(cref_order(r, b, i, &o), 0);
                if (o.n_steps == len &&
                    memcmp(o.model, ord, len * sizeof(int)) == 0)
                    break;
            }
            if (i == n)
                fail_msg("bucket %d: an order of %zu models is missing", b,
                         len);
            assert_near(o.quality, q, 1e-9);
            assert_near(o.cost, c, 1e-9);
        }
    }
    assert_int_equal(cref_n_orders(r, b), out->n); /* and no other */
}

/* (b) The LP optimum by enumeration: every choice of one order per bucket,
 * and for each, every bucket mixing its choice with another order at the
 * weight that spends the budget exactly (a vertex of a one-constraint LP
 * over simplices mixes two options in at most one bucket). Returns the
 * best value, or -1 when no choice is affordable. */
static double
bf_lp(const bf_bucket_t *bb, size_t nb, double target)
{
    size_t pick[4] = {0, 0, 0, 0};
    double best = -1.0;
    for (;;) {
        double s0 = 0.0, v0 = 0.0;
        for (size_t b = 0; b < nb; b++) {
            s0 += bb[b].w * bb[b].c[pick[b]];
            v0 += bb[b].w * bb[b].v[pick[b]];
        }
        if (s0 <= target && v0 > best)
            best = v0;
        for (size_t b = 0; b < nb && target < INFINITY; b++) {
            double ci = bb[b].c[pick[b]], vi = bb[b].v[pick[b]];
            for (size_t j = 0; j < bb[b].n; j++) {
                double dc = bb[b].w * (bb[b].c[j] - ci);
                if (dc == 0.0)
                    continue;
                double t = (target - s0) / dc; /* weight of j */
                if (t > 0.0 && t < 1.0 &&
                    v0 + t * bb[b].w * (bb[b].v[j] - vi) > best)
                    best = v0 + t * bb[b].w * (bb[b].v[j] - vi);
            }
        }
        size_t b = 0;
        while (b < nb && ++pick[b] == bb[b].n)
            pick[b++] = 0;
        if (b == nb)
            break;
    }
    return best;
}

/* Checks a solution's picks against its quality and cost. */
static void
check_picks(const cref_t *r, const dataset_t *ds, double budget, double q,
            double c)
{
    cref_pick_t pk[8];
    int n = cref_picks(r, budget, pk, 8);
    assert_true(n >= 1 && n <= (int)ds->n_buckets + 1);
    double sq = 0.0, sc = 0.0, *wsum = calloc(ds->n_buckets, sizeof *wsum);
    for (int i = 0; i < n; i++) {
        double w = (double)ds->bucket_rows[pk[i].bucket] / (double)ds->n_rows;
        assert_true(pk[i].weight > 0.0 && pk[i].weight <= 1.0);
        sq += w * pk[i].weight * pk[i].quality;
        sc += w * pk[i].weight * pk[i].cost;
        wsum[pk[i].bucket] += pk[i].weight;
    }
    for (size_t b = 0; b < ds->n_buckets; b++)
        if (cref_n_orders(r, (int)b))
            assert_near(wsum[b], 1.0, 1e-12);
    free(wsum);
    assert_near(sq, q, 1e-9);
    assert_near(sc, c, 1e-9);
}

/* One instance, one validator, one number of steps: (a) for every order,
 * (b) at budgets from infeasible to not binding and with none. */
static void
bf_case(const dataset_t *ds, const bf_val_t *v, unsigned steps)
{
    vmodel_t vm = {(vmodel_kind_t)v->kind, v->fp, v->ff};
    serr_t e = {0, ""};
    cref_t *r = cref_build(ds, &vm, steps, &e);
    if (!r)
        fail_msg("cref_build: %s", e.msg);
    bf_bucket_t bb[4];
    size_t nb = ds->n_buckets;
    double cmin = 0.0, cmax = 0.0, vmax = 0.0;
    for (size_t b = 0; b < nb; b++) {
        bf_orders(ds, v, r, (int)b, steps, &bb[b]);
        bb[b].w = (double)ds->bucket_rows[b] / (double)ds->n_rows;
        double lo = INFINITY, hi = 0.0, best = 0.0;
        for (size_t i = 0; i < bb[b].n; i++) {
            lo = fmin(lo, bb[b].c[i]);
            hi = fmax(hi, bb[b].c[i]);
            best = fmax(best, bb[b].v[i]);
        }
        cmin += bb[b].w * lo;
        cmax += bb[b].w * hi;
        vmax += bb[b].w * best;
    }
    const double frac[] = {-0.5, 0.02, 0.1, 0.3, 0.6, 1.2};
    for (size_t f = 0; f < sizeof frac / sizeof *frac; f++) {
        double budget =
            frac[f] < 0 ? cmin * 0.5 : cmin + frac[f] * (cmax - cmin);
        double q, c, want = bf_lp(bb, nb, budget);
        int rc = cref_solve(r, budget, &q, &c);
        if (want < 0.0) {
            assert_int_equal(rc, LP_INFEASIBLE);
            continue;
        }
        assert_int_equal(rc, 0);
        if (fabs(q - want) > 1e-9)
            fail_msg("steps %u, validator %d, budget %.6g: cref %.12f, brute "
                     "force %.12f",
                     steps, v->kind, budget, q, want);
        assert_true(c <= budget * (1 + 1e-12));
        check_picks(r, ds, budget, q, c);
    }
    double q, c;
    assert_int_equal(cref_solve(r, 0.0, &q, &c), 0); /* no budget */
    assert_near(q, vmax, 1e-9);
    assert_near(q, bf_lp(bb, nb, INFINITY), 1e-9);
    check_picks(r, ds, 0.0, q, c);
    cref_destroy(&r);
}

static void
test_brute_force(void **state)
{
    (void)state;
    rng_state = 20240611;
    for (int inst = 0; inst < 40; inst++) {
        dataset_t *ds = random_data();
        bf_val_t vals[3] = {{VMODEL_PERFECT, 0.0, 0.0},
                            {VMODEL_NOISY, 0.5 * rng_unif(), 0.5 * rng_unif()},
                            {VMODEL_COLUMN, 0.0, 0.0}};
        for (unsigned steps = 1; steps <= 3; steps++)
            for (size_t k = 0; k < 3; k++)
                bf_case(ds, &vals[k], steps);
        dataset_destroy(&ds);
    }
}

/* S = 1 is the best static LP: the same figures and codes at every budget
 * (replay_best_static over the single models' means). */
static void
test_one_step_is_best_static(void **state)
{
    (void)state;
    rng_state = 77;
    for (int inst = 0; inst < 30; inst++) {
        dataset_t *ds = random_data();
        vmodel_t vm;
        serr_t e = {0, ""};
        assert_int_equal(vmodel_parse("noisy:0.3,0.2", &vm, &e), 0);
        cref_t *r = cref_build(ds, &vm, 1, &e);
        assert_non_null(r);
        for (double budget = 0.0; budget < 0.012; budget += 0.0005) {
            double q1, c1, q2, c2;
            int rc1 = cref_solve(r, budget, &q1, &c1);
            int rc2 = replay_best_static(ds, budget, &q2, &c2, NULL);
            assert_int_equal(rc1, rc2);
            assert_near(q1, q2, 0.0); /* the same sums: to the bit */
            assert_near(c1, c2, 0.0);
        }
        cref_destroy(&r);
        dataset_destroy(&ds);
    }
}

/* k distinct models give k + k(k-1) + ... orders; the limits. */
static void
test_counts_and_errors(void **state)
{
    (void)state;
    dataset_t *ds = dataset_new();
    int x = dataset_bucket_id(ds, "x"), y = dataset_bucket_id(ds, "y");
    char name[32];
    for (int m = 0; m < 11; m++) {
        snprintf(name, sizeof name, "m%d", m);
        dataset_model_id(ds, name);
    }
    for (int r = 0; r < 20; r++) {
        dataset_add_row(ds, r % 2 ? y : x);
        for (int m = 0; m < (r % 2 ? 3 : 11); m++) /* y: 3 models */
            dataset_set(ds, m, DATASET_OK, (double)((r + m) % 2), 0.001 * m);
    }
    dataset_finish(ds);
    vmodel_t vm;
    vmodel_default(&vm);
    serr_t e = {0, ""};
    const size_t want_x[] = {11, 121, 1111, 9031};
    const size_t want_y[] = {3, 9, 15, 15};
    for (unsigned s = 1; s <= 4; s++) {
        cref_t *r = cref_build(ds, &vm, s, &e);
        assert_non_null(r);
        assert_int_equal(cref_n_orders(r, x), want_x[s - 1]);
        assert_int_equal(cref_n_orders(r, y), want_y[s - 1]);
        assert_int_equal(cref_n_orders(r, 7), 0);
        cref_destroy(&r);
    }
    assert_null(cref_build(ds, &vm, 0, &e));
    assert_int_equal(e.code, SERR_ARG);
    assert_non_null(strstr(e.msg, "0 steps"));
    assert_null(cref_build(ds, &vm, CREF_MAX_STEPS + 1, &e));
    assert_non_null(strstr(e.msg, "steps (expected 1 .. 8"));
    assert_null(cref_build(ds, &vm, 6, &e)); /* 11 models: 397,111 orders */
    assert_int_equal(e.code, SERR_ARG);
    assert_non_null(strstr(e.msg, "bucket 'x': 11 models and 6 steps"));
    assert_int_equal(vmodel_parse("column", &vm, &e), 0);
    assert_null(cref_build(ds, &vm, 2, &e));
    assert_non_null(strstr(e.msg, "--validator column: the data has no "
                                  "verdict columns"));
    dataset_destroy(&ds);
    ds = dataset_new();
    dataset_finish(ds);
    vmodel_default(&vm);
    assert_null(cref_build(ds, &vm, 2, &e));
    assert_int_equal(e.code, SERR_EMPTY);
    dataset_destroy(&ds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_brute_force),
        cmocka_unit_test(test_one_step_is_best_static),
        cmocka_unit_test(test_counts_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
