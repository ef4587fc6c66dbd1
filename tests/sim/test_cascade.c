/* test_cascade.c - cascade replay: escalation after a rejected answer, the
 * answer returned, every step's cost, learning from verdicts only, the
 * budget paced over all steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/dataset.h"
#include "sim/load.h"
#include "sim/replay.h"
#include "sim/scenario.h"
#include "tests/sim/simtest.h"

/* Ten requests: a (cheap) right on rows 0-4, b (dear) right on rows 0-7;
 * on row 9 a scores 0.4 and b 0.3 (both rejected by the perfect rule). */
static dataset_t *
make_ten(void)
{
    char buf[4096];
    size_t pos = 0;
    for (int i = 0; i < 10; i++) {
        double qa = i < 5 ? 1.0 : (i == 9 ? 0.4 : 0.0);
        double qb = i < 8 ? 1.0 : (i == 9 ? 0.3 : 0.0);
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos,
                                "{\"id\": %d, \"bucket\": \"k\", \"outcomes\": "
                                "{\"a\": %g, \"b\": %g}, \"cost_usd\": "
                                "{\"a\": 0.001, \"b\": 0.01}}\n",
                                i, qa, qb);
    }
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    if (load_jsonl_buffer(ds, buf, pos, "ten.jsonl", &e) != 0)
        fail_msg("%s", e.msg);
    dataset_finish(ds);
    return ds;
}

/* The cheapest policy escalates to b exactly on rows 5-9; rows 8 and 9
 * return b's rejected answer (the last tried), row 9 with b's 0.3 although
 * a's rejected answer scored 0.4. */
static void
test_escalation_bookkeeping(void **state)
{
    (void)state;
    dataset_t *ds = make_ten();
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_CHEAPEST;
    c.escalations = 1;
    c.validated = 1;
    c.trace = 1;
    replay_result_t *r = simtest_replay(ds, &c);
    size_t tsteps = 0;
    double tcost = 0.0;
    for (size_t t = 0; t < r->requests; t++) {
        tsteps += r->trace_steps[t];
        tcost += r->trace_cost[t];
        /* two steps exactly where b's answer was returned */
        assert_int_equal(r->trace_steps[t], r->trace_model[t] == b ? 2 : 1);
    }
    assert_int_equal(tsteps, 15);
    assert_near(tcost, 0.06, 1e-12);
    assert_near(r->quality, (5.0 + 3.0 + 0.0 + 0.3) / 10.0, 1e-12);
    assert_near(r->cost_per_request, (5 * 0.001 + 5 * 0.011) / 10.0, 1e-12);
    assert_int_equal(r->steps_max, 2);
    assert_int_equal(r->steps, 15);
    assert_int_equal(r->first_pass, 5);
    assert_int_equal(r->escalated, 5);
    assert_int_equal(r->share[a], 5);
    assert_int_equal(r->share[b], 5);
    size_t nm = r->n_models;
    assert_int_equal(r->step_share[0 * nm + (size_t)a], 10);
    assert_int_equal(r->step_share[0 * nm + (size_t)b], 0);
    assert_int_equal(r->step_share[1 * nm + (size_t)b], 5);
    assert_int_equal(r->b_requests[0], 10);
    assert_int_equal(r->b_steps[0], 15);
    assert_near(r->b_cost[0], 0.06, 1e-12);
    replay_result_destroy(&r);

    /* without escalations the first answer stands, passed or not */
    c.escalations = 0;
    r = simtest_replay(ds, &c);
    assert_near(r->quality, (5.0 + 0.4) / 10.0, 1e-12);
    assert_near(r->cost_per_request, 0.001, 1e-12);
    assert_int_equal(r->steps, 10);
    assert_int_equal(r->escalated, 0);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

/* A validator that rejects b's answers (all right) and passes a's (all
 * wrong). */
typedef struct calls {
    size_t n[4]; /* calls per pass */
    size_t row[4][400];
    int wrong_b; /* reject b, pass a */
    int model_b;
} calls_t;

static int
verdict_rec(void *ctx, size_t row, int m, unsigned pass)
{
    calls_t *k = ctx;
    if (pass < 4 && k->n[pass] < 400)
        k->row[pass][k->n[pass]++] = row;
    return k->wrong_b ? m != k->model_b : 1;
}

static const char *scen_ab =
    "{\"requests\": 400, \"seed\": 3, \"traffic\": {\"k\": 1},"
    " \"models\": {\"a\": {\"cost_usd\": 0.001, \"success\": 0},"
    "              \"b\": {\"cost_usd\": 0.001, \"success\": 1}}}";

/* The policy learns what the validator says, never the hidden outcome:
 * with verdicts that invert the truth, Thompson sampling settles on a;
 * learning the outcomes, on b. The quality is always the true outcome. */
static void
test_learns_verdicts(void **state)
{
    (void)state;
    dataset_t *ds = simtest_scenario(scen_ab);
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    calls_t k;
    memset(&k, 0, sizeof k);
    k.wrong_b = 1;
    k.model_b = b;
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_TS;
    c.validated = 1;
    c.verdict = verdict_rec;
    c.verdict_ctx = &k;
    c.seed = 9;
    replay_result_t *r = simtest_replay(ds, &c);
    printf("verdicts: a %zu, b %zu; quality %.3f\n", r->share[a], r->share[b],
           r->quality);
    /* b is rejected every time, a passed every time: after a handful of
     * draws, Beta(1, n) against Beta(n, 1) leaves b almost nothing */
    assert_true(r->share[a] > 360);
    assert_near(r->quality, (double)r->share[b] / 400.0, 1e-12);
    replay_result_destroy(&r);

    c.validated = 0; /* full information: the outcome itself */
    r = simtest_replay(ds, &c);
    assert_true(r->share[b] > 360);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

/* The validator is asked once per answer, with the row and the pass, so a
 * seeded validator gives every policy the same verdicts. */
static void
test_verdict_calls(void **state)
{
    (void)state;
    dataset_t *ds = simtest_scenario(scen_ab);
    calls_t k;
    memset(&k, 0, sizeof k);
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_UNIFORM;
    c.passes = 2;
    c.validated = 1;
    c.verdict = verdict_rec;
    c.verdict_ctx = &k;
    replay_result_t *r = simtest_replay(ds, &c);
    assert_int_equal(k.n[0], 400);
    assert_int_equal(k.n[1], 400);
    assert_int_equal(k.n[2], 0);
    for (int p = 0; p < 2; p++) {
        unsigned char seen[400] = {0};
        for (size_t i = 0; i < 400; i++)
            seen[k.row[p][i]]++;
        for (size_t i = 0; i < 400; i++)
            assert_int_equal(seen[i], 1);
    }
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

/* Three models of rising cost and quality; a budget between the cheap
 * and the dear one. */
static const char *scen3 =
    "{\"requests\": 20000, \"seed\": 11, \"traffic\": {\"k\": 1},"
    " \"models\": {"
    "  \"cheap\": {\"cost_usd\": 0.0005, \"success\": 0.5},"
    "  \"mid\": {\"cost_usd\": 0.002, \"cost_noise\": 0.3, \"success\": 0.7},"
    "  \"dear\": {\"cost_usd\": 0.01, \"success\": 0.9}}}";

/* ts-budget pays the price of money on every step: with up to three steps
 * per request the spend still meets the budget, and escalations happen.
 * The budget is above the cheapest chain's cost (cheap, then mid, then
 * dear: 0.0005 + 0.5 x 0.002 + 0.15 x 0.01 = 0.003 per request), below
 * which no policy can stay: the agent escalates whatever the price. */
static void
test_budget_over_steps(void **state)
{
    (void)state;
    dataset_t *ds = simtest_scenario(scen3);
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_TS_BUDGET;
    c.budget_per_request = 0.0045;
    c.escalations = 2;
    c.validated = 1;
    c.seed = 4;
    replay_result_t *r = simtest_replay(ds, &c);
    printf("spend %.4f x budget, %.3f steps per request, quality %.3f\n",
           r->spend_ratio, (double)r->steps / (double)r->requests, r->quality);
    assert_true(r->spend_ratio <= 1.02);
    assert_true(r->spend_ratio >= 0.9);
    assert_true(r->escalated > 1000);
    replay_result_destroy(&r);

    /* the same budget without the cascade reaches less */
    double q_cascade = 0;
    r = simtest_replay(ds, &c);
    q_cascade = r->quality;
    replay_result_destroy(&r);
    c.escalations = 0;
    r = simtest_replay(ds, &c);
    printf("quality %.3f without escalations\n", r->quality);
    assert_true(q_cascade > r->quality);
    replay_result_destroy(&r);

    /* below the cheapest chain (0.003) the budget cannot be met: the
     * escalations are paid whatever the price, at the cheapest models */
    c.escalations = 2;
    c.budget_per_request = 0.002;
    r = simtest_replay(ds, &c);
    printf("budget 0.002: spend %.3f x budget\n", r->spend_ratio);
    assert_true(r->spend_ratio > 1.3);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

/* Two buckets, a provider error inside a step: the step falls back along
 * its ranking and the fallback's answer is judged; the figures are kept
 * per bucket and per step. Bucket x: a (cheapest) is down on row 0 and
 * wrong on row 1, b right on both; bucket y: only c, wrong. */
static void
test_two_buckets_and_errors(void **state)
{
    (void)state;
    const char *jl =
        "{\"bucket\": \"x\", \"outcomes\": {\"a\": \"error\", \"b\": 1},"
        " \"cost_usd\": {\"b\": 0.01}}\n"
        "{\"bucket\": \"x\", \"outcomes\": {\"a\": 0, \"b\": 1},"
        " \"cost_usd\": {\"a\": 0.001, \"b\": 0.01}}\n"
        "{\"bucket\": \"y\", \"outcomes\": {\"c\": 0},"
        " \"cost_usd\": {\"c\": 0.002}}\n";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    if (load_jsonl_buffer(ds, jl, strlen(jl), "two.jsonl", &e) != 0)
        fail_msg("%s", e.msg);
    dataset_finish(ds);
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    int cm = dataset_find_model(ds, "c");
    int x = dataset_find_bucket(ds, "x"), y = dataset_find_bucket(ds, "y");
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_CHEAPEST;
    c.escalations = 2;
    c.validated = 1;
    c.shuffle = 0;
    c.allow.health.cooldown_s = 0;
    replay_result_t *r = simtest_replay(ds, &c);
    size_t nb = r->n_buckets, nm = r->n_models;
    /* row 0: a down, b serves step 1 and passes; row 1: a rejected, b
     * passes at step 2; row 2: c rejected, nothing left */
    assert_int_equal(r->provider_errors, 1);
    assert_int_equal(r->first_pass, 1);
    assert_int_equal(r->escalated, 1);
    assert_int_equal(r->steps, 4);
    assert_int_equal(r->b_first_pass[x], 1);
    assert_int_equal(r->b_escalated[x], 1);
    assert_int_equal(r->b_steps[x], 3);
    assert_int_equal(r->b_steps[y], 1);
    assert_near(r->b_quality[x], 2.0, 1e-12);
    assert_near(r->b_quality[y], 0.0, 1e-12);
    assert_near(r->b_cost[x], 0.021, 1e-12);
    assert_near(r->b_cost[y], 0.002, 1e-12);
    assert_int_equal(r->step_share[(0 * nb + (size_t)x) * nm + (size_t)b], 1);
    assert_int_equal(r->step_share[(0 * nb + (size_t)x) * nm + (size_t)a], 1);
    assert_int_equal(r->step_share[(1 * nb + (size_t)x) * nm + (size_t)b], 1);
    assert_int_equal(r->step_share[(0 * nb + (size_t)y) * nm + (size_t)cm], 1);
    assert_int_equal(r->step_share[(1 * nb + (size_t)y) * nm + (size_t)cm], 0);
    assert_near(r->quality, 2.0 / 3.0, 1e-12);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escalation_bookkeeping),
        cmocka_unit_test(test_learns_verdicts),
        cmocka_unit_test(test_verdict_calls),
        cmocka_unit_test(test_budget_over_steps),
        cmocka_unit_test(test_two_buckets_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
