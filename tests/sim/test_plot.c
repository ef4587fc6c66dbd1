/*
 * test_plot.c - the figures' pieces: every series its own look (colour and
 * dashes) for as many policies as bursar-sim takes, and axis ticks of 1, 2
 * or 5 times a power of ten on awkward ranges, labelled apart.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/plot.h"

#define N_SERIES 32 /* bursar-sim's MAIN_MAX_POLICIES */

static int
same_look(plot_style_t a, plot_style_t b)
{
    return strcmp(a.color, b.color) == 0 &&
           (a.dash == b.dash || (a.dash && b.dash && !strcmp(a.dash, b.dash)));
}

/* Any mix of up to N_SERIES policies and baselines: no two series look
 * the same; baselines are always dashed, the first policies solid. */
static void
test_styles_distinct(void **state)
{
    (void)state;
    assert_true(PLOT_DISTINCT >= N_SERIES);
    plot_style_t all[2 * N_SERIES];
    for (int fixed = 0; fixed < 2; fixed++)
        for (size_t k = 0; k < N_SERIES; k++) {
            plot_style_t st = plot_style(fixed, k);
            assert_non_null(st.color);
            assert_int_equal(strlen(st.color), 7);
            assert_true(st.width > 0);
            if (fixed)
                assert_non_null(st.dash);
            all[fixed * N_SERIES + k] = st;
        }
    assert_null(plot_style(0, 0).dash);
    assert_null(plot_style(0, 8).dash);
    for (size_t i = 0; i < 2 * N_SERIES; i++)
        for (size_t j = i + 1; j < 2 * N_SERIES; j++)
            if (same_look(all[i], all[j]))
                fail_msg("series %zu and %zu both %s %s", i, j, all[i].color,
                         all[i].dash ? all[i].dash : "solid");
    /* and the colours of the two groups never meet */
    for (size_t i = 0; i < N_SERIES; i++)
        for (size_t j = 0; j < N_SERIES; j++)
            assert_string_not_equal(all[i].color, all[N_SERIES + j].color);
}

/* The step is 1, 2 or 5 times a power of ten. */
static int
nice_step(double step)
{
    double mag = pow(10.0, floor(log10(step) + 1e-9));
    double m = step / mag;
    return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9;
}

static void
check_ticks(double lo, double hi, int want)
{
    plot_ticks_t t;
    plot_ticks(lo, hi, want, &t);
    if (!nice_step(t.step))
        fail_msg("[%g, %g]: step %g", lo, hi, t.step);
    /* about want ticks: between want / 2 and 2 want + 1 */
    if (t.n < (size_t)(want / 2) || t.n > (size_t)(2 * want + 1))
        fail_msg("[%g, %g]: %zu ticks for %d", lo, hi, t.n, want);
    char prev[64] = "";
    for (size_t j = 0; j < t.n; j++) {
        double v = plot_tick(&t, j);
        double eps = t.step * 1e-6;
        if (v < lo - eps || v > hi + eps)
            fail_msg("[%g, %g]: tick %g outside", lo, hi, v);
        /* a whole multiple of the step */
        double k = v / t.step;
        if (fabs(k - round(k)) > 1e-6)
            fail_msg("[%g, %g]: tick %g not a multiple of %g", lo, hi, v,
                     t.step);
        char lab[64];
        plot_tick_label(&t, v, lab, sizeof lab);
        if (strcmp(lab, prev) == 0 || strncmp(lab, "-0", 3) == 0 ||
            strcmp(lab, "-0.0") == 0)
            fail_msg("[%g, %g]: label '%s' after '%s'", lo, hi, lab, prev);
        /* the label reads back as the tick */
        if (fabs(strtod(lab, NULL) - v) > t.step * 1e-3)
            fail_msg("[%g, %g]: label '%s' for %g", lo, hi, lab, v);
        snprintf(prev, sizeof prev, "%s", lab);
    }
}

static void
test_ticks_awkward(void **state)
{
    (void)state;
    static const double r[][2] = {
        {0, 1},           {0, 0.00073},  {0.8123, 0.8456}, {-0.000436, 0.0113},
        {0.376, 0.986},   {1234, 98765}, {0, 3178},        {-5, -1},
        {-1e-9, 1e-9},    {1e-7, 3e-7},  {0.999, 1.001},   {0, 1e6},
        {17.3, 17.30001}, {-0.2, 0.2},   {0, 0.006},       {3.5e-4, 5.1e-3},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        for (int want = 3; want <= 8; want++)
            check_ticks(r[i][0], r[i][1], want);

    /* exact choices */
    plot_ticks_t t;
    char lab[64];
    plot_ticks(0, 0.0113, 5, &t);
    assert_true(fabs(t.step - 0.002) < 1e-15);
    assert_int_equal(t.n, 6); /* 0 .. 0.010 */
    plot_tick_label(&t, plot_tick(&t, 5), lab, sizeof lab);
    assert_string_equal(lab, "0.010");
    plot_ticks(0, 3178, 6, &t);
    assert_true(t.step == 500);
    plot_tick_label(&t, plot_tick(&t, 3), lab, sizeof lab);
    assert_string_equal(lab, "1500");
    plot_ticks(-0.2, 0.2, 4, &t);
    plot_tick_label(&t, plot_tick(&t, 2), lab, sizeof lab);
    assert_string_equal(lab, "0.0"); /* no "-0.0" at zero */

    /* an empty or absurd range: one tick, no loop */
    plot_ticks(1, 1, 5, &t);
    assert_int_equal(t.n, 1);
    plot_ticks(NAN, 1, 5, &t);
    assert_int_equal(t.n, 1);
    plot_ticks(0, INFINITY, 5, &t);
    assert_int_equal(t.n, 1);
}

/* A nice range holds the data and starts and ends on ticks; costs that
 * start at 0 stay at 0. */
static void
test_nice_range(void **state)
{
    (void)state;
    double lo = 0.0, hi = 0.0113;
    plot_nice_range(&lo, &hi, 5);
    assert_true(lo == 0.0);
    assert_true(fabs(hi - 0.012) < 1e-12);
    lo = 0.376, hi = 0.986;
    plot_nice_range(&lo, &hi, 5);
    assert_true(fabs(lo - 0.2) < 1e-12 || fabs(lo - 0.3) < 1e-12);
    assert_true(hi >= 0.986 && hi <= 1.0 + 1e-12);
    lo = 0.2, hi = 0.8; /* already on ticks: unchanged */
    plot_nice_range(&lo, &hi, 6);
    assert_true(fabs(lo - 0.2) < 1e-12 && fabs(hi - 0.8) < 1e-12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_styles_distinct),
        cmocka_unit_test(test_ticks_awkward),
        cmocka_unit_test(test_nice_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
