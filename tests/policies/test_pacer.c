/* Budget pacing: the target formula, windows, reservations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "tests/policies/near.h"

#include "policies/pacer.h"

static void
test_window_alignment(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 50.0, 86400.0, 1.0, 86400.0 * 3 + 500.0);
    assert_double_equal(p.window_start, 86400.0 * 3, 1e-9);
    assert_int_equal(pacer_roll(&p, 86400.0 * 4 - 1.0), 0);
    pacer_reserve(&p, 2.0);
    pacer_settle(&p, 2.0, 1.5);
    assert_double_equal(p.spent_usd, 1.5, 1e-12);
    pacer_reserve(&p, 4.0); /* still open across the boundary */
    assert_int_equal(pacer_roll(&p, 86400.0 * 6 + 7.0), 1);
    assert_double_equal(p.window_start, 86400.0 * 6, 1e-9);
    assert_double_equal(p.spent_usd, 0.0, 1e-12);
    assert_double_equal(p.reserved_usd, 4.0, 1e-12);
    assert_double_equal(p.requests, 0.0, 1e-12);
}

static void
test_target_formula(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 100.0, 1000.0, 0.5, 0.0);
    /* No requests yet: prior rate 0.5/s over 1000 s = 500 requests. */
    assert_double_equal(pacer_target(&p, 0.0), 100.0 / 500.0, 1e-12);
    /* 200 requests in the first 100 s: rate 2/s, 900 s left. */
    for (int i = 0; i < 200; i++)
        pacer_reserve(&p, 0.1);
    for (int i = 0; i < 150; i++)
        pacer_settle(&p, 0.1, 0.05);
    /* spent 7.5, reserved 5.0 */
    assert_double_equal(pacer_remaining(&p), 100.0 - 7.5 - 5.0, 1e-9);
    assert_double_equal(pacer_expected_remaining(&p, 100.0), 1800.0, 1e-9);
    assert_double_equal(pacer_target(&p, 100.0), 87.5 / 1800.0, 1e-12);
    /* The rate's elapsed time is floored: 200 requests at t = 0.5 s do not
     * mean 400 per second. */
    assert_true(p.min_elapsed_s >= 10.0);
    assert_double_equal(pacer_expected_remaining(&p, 0.5),
                        200.0 / p.min_elapsed_s * 999.5, 1e-6);
    /* Over budget: target 0. No budget: infinite. */
    pacer_settle(&p, 0.0, 1000.0);
    assert_double_equal(pacer_target(&p, 100.0), 0.0, 0.0);
    pacer_t q;
    pacer_init(&q, 0.0, 60.0, 1.0, 0.0);
    assert_true(isinf(pacer_target(&q, 1.0)));
    assert_true(isinf(pacer_remaining(&q)));
    /* At the very end at least one request is expected. */
    assert_double_equal(pacer_expected_remaining(&p, 1000.0), 1.0, 0.0);
}

/* Started mid-window: the rate counts from the start, not from the
 * window's beginning, which the pacer never saw. */
static void
test_started_mid_window(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 50.0, 86400.0, 0.01, 43200.0);
    assert_double_equal(p.window_start, 0.0, 0.0);
    for (int i = 0; i < 200; i++)
        pacer_reserve(&p, 0.0);
    /* 200 requests in 100 s: 2/s over the 43100 s left. */
    assert_double_equal(pacer_expected_remaining(&p, 43300.0), 2.0 * 43100.0,
                        1e-6);
    /* The next window counts from its own start. */
    assert_int_equal(pacer_roll(&p, 86400.0 + 50.0), 1);
    for (int i = 0; i < 100; i++)
        pacer_reserve(&p, 0.0);
    assert_double_equal(pacer_expected_remaining(&p, 86400.0 + 100.0),
                        1.0 * (86400.0 - 100.0), 1e-6);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_alignment),
        cmocka_unit_test(test_target_formula),
        cmocka_unit_test(test_started_mid_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
