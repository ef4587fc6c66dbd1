/* Posterior updates, amendment and forgetting against closed forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "tests/policies/near.h"

#include "policies/arm.h"
#include "policies/policy.h"

static void
test_reward_closed_form(void **state)
{
    (void)state;
    arm_t a;
    arm_init(&a, 2.0, 3.0, 0.01, 1.0);
    arm_reward(&a, 1.0);
    arm_reward(&a, 0.0);
    arm_reward(&a, 0.25);
    assert_double_equal(a.alpha, 2.0 + 1.25, 1e-12);
    assert_double_equal(a.beta, 3.0 + 1.75, 1e-12);
    assert_double_equal(arm_mean(&a), 3.25 / 8.0, 1e-12);
    assert_double_equal(arm_evidence(&a), 3.0, 1e-12);
    /* Out-of-range rewards are clamped, NaN counts as 0. */
    arm_reward(&a, 7.0);
    arm_reward(&a, NAN);
    assert_double_equal(a.alpha, 4.25, 1e-12);
    assert_double_equal(a.beta, 5.75, 1e-12);
    assert_int_equal(a.rewards, 5);
}

static void
test_amend(void **state)
{
    (void)state;
    arm_t a;
    arm_init(&a, 1.0, 1.0, 0.0, 0.0);
    arm_reward(&a, 1.0);
    arm_amend(&a, 1.0, 0.0, 1.0); /* success turned into failure */
    assert_double_equal(a.alpha, 1.0, 1e-12);
    assert_double_equal(a.beta, 2.0, 1e-12);
    /* Never below the prior, even if forgetting took the evidence. */
    arm_t b;
    arm_init(&b, 1.0, 1.0, 0.0, 0.0);
    arm_reward(&b, 1.0);
    arm_decay(&b, 0.25);
    arm_amend(&b, 1.0, 0.0, 1.0);
    assert_double_equal(b.alpha, 1.0, 1e-12);
    assert_double_equal(b.beta, 2.0, 1e-12);
}

static void
test_cost_estimate(void **state)
{
    (void)state;
    arm_t a;
    arm_init(&a, 1.0, 1.0, 0.010, 1.0);
    assert_double_equal(arm_cost_mean(&a), 0.010, 1e-15);
    arm_cost(&a, 0.002);
    assert_double_equal(arm_cost_mean(&a), 0.006, 1e-15);
    arm_cost(&a, 0.004);
    assert_double_equal(arm_cost_mean(&a), (0.010 + 0.006) / 3.0, 1e-15);
    arm_cost(&a, -1.0); /* ignored */
    assert_double_equal(a.cost_w, 2.0, 1e-15);
    arm_t z;
    arm_init(&z, 1.0, 1.0, 0.5, 0.0);
    assert_double_equal(arm_cost_mean(&z), 0.5, 1e-15);
}

static void
test_forgetting_closed_form(void **state)
{
    (void)state;
    const double h = 100.0;
    policy_bucket_t *b = policy_bucket_new(1, h, 0.0);
    arm_init(&b->arms[0], 2.0, 2.0, 1.0, 1.0);
    for (int i = 0; i < 10; i++)
        policy_reward(b, 0, 1.0, 0.0);
    for (int i = 0; i < 6; i++)
        policy_reward(b, 0, 0.0, 0.0);
    policy_cost(b, 0, 3.0, 0.0);
    /* Two half-lives later the evidence is a quarter. */
    policy_bucket_advance(b, 200.0);
    assert_double_equal(b->arms[0].alpha, 2.0 + 10.0 / 4.0, 1e-9);
    assert_double_equal(b->arms[0].beta, 2.0 + 6.0 / 4.0, 1e-9);
    assert_double_equal(arm_cost_mean(&b->arms[0]),
                        (1.0 + 3.0 / 4.0) / (1.0 + 0.25), 1e-9);
    /* Applied lazily and piecewise: 200 then 250 equals 250 at once. */
    policy_bucket_advance(b, 250.0);
    assert_double_equal(b->arms[0].alpha, 2.0 + 10.0 * exp2(-2.5), 1e-9);
    /* Time going backwards changes nothing. */
    policy_bucket_advance(b, 10.0);
    assert_double_equal(b->arms[0].alpha, 2.0 + 10.0 * exp2(-2.5), 1e-9);
    /* Without a half-life nothing decays. */
    policy_bucket_t *c = policy_bucket_new(1, 0.0, 0.0);
    policy_reward(c, 0, 1.0, 0.0);
    policy_bucket_advance(c, 1e9);
    assert_double_equal(c->arms[0].alpha, 2.0, 1e-12);
    assert_int_equal(policy_reward(c, 1, 1.0, 0.0), BURSAR_EINVAL);
    policy_bucket_destroy(&b);
    policy_bucket_destroy(&c);
    assert_null(b);
}

/* A correction two half-lives after its outcome moves a quarter of an
 * observation: what forgetting left of it, no more. */
static void
test_amend_after_forgetting(void **state)
{
    (void)state;
    const double h = 100.0;
    policy_bucket_t *b = policy_bucket_new(1, h, 0.0);
    arm_init(&b->arms[0], 1.0, 1.0, 0.0, 0.0);
    for (int i = 0; i < 11; i++)
        policy_reward(b, 0, 1.0, 0.0);
    assert_int_equal(policy_amend(b, 0, 1.0, 0.0, 0.0, 200.0), 0);
    /* 11 successes decayed to 2.75, one of them (0.25 left) now a
     * failure: alpha = 1 + 2.5, beta = 1 + 0.25. */
    assert_double_equal(b->arms[0].alpha, 3.5, 1e-9);
    assert_double_equal(b->arms[0].beta, 1.25, 1e-9);
    /* Without forgetting a whole observation moves. */
    policy_bucket_t *c = policy_bucket_new(1, 0.0, 0.0);
    policy_reward(c, 0, 1.0, 0.0);
    policy_reward(c, 0, 1.0, 0.0);
    policy_amend(c, 0, 1.0, 0.0, 0.0, 500.0);
    assert_double_equal(c->arms[0].alpha, 2.0, 1e-12);
    assert_double_equal(c->arms[0].beta, 2.0, 1e-12);
    /* Half weight moves half. */
    arm_t a;
    arm_init(&a, 1.0, 1.0, 0.0, 0.0);
    arm_reward(&a, 1.0);
    arm_amend(&a, 1.0, 0.0, 0.5);
    assert_double_equal(a.alpha, 1.5, 1e-12);
    assert_double_equal(a.beta, 1.5, 1e-12);
    policy_bucket_destroy(&b);
    policy_bucket_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reward_closed_form),
        cmocka_unit_test(test_amend),
        cmocka_unit_test(test_amend_after_forgetting),
        cmocka_unit_test(test_cost_estimate),
        cmocka_unit_test(test_forgetting_closed_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
