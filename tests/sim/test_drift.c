/*
 * test_drift.c - the drift property of issue 2.
 *
 * In bucket "code" the best model (a, 0.9) falls to 0.5 halfway through
 * 20000 requests; b (0.7) becomes the best. Thompson sampling with
 * forgetting (half-life 1000 requests, both buckets counted) must move at
 * least 80% of code's traffic to b within DRIFT_BOUND requests of the
 * change: we measure b's share of code over the DRIFT_WINDOW requests that
 * follow the bound. Without forgetting it must not: a's posterior holds
 * ~5000 observations at 0.9, so its mean needs about as many new ones at
 * 0.5 to fall to 0.7, far beyond the window.
 *
 * Why 80% is reachable with half-life h: an arm left alone decays back to
 * its Beta(1,1) prior and is tried again, so the losers keep a share of
 * roughly (evidence needed to rule them out ~ 20) / (h / ln 2 requests of
 * code traffic ~ 720): a few percent each. The expected share of b is
 * ~0.9; over ~1500 code requests in the window its sd is ~0.01, so the
 * 0.80 threshold leaves a wide margin; three seeds must all pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim/dataset.h"
#include "sim/replay.h"
#include "sim/scenario.h"

#define DRIFT_AT     10000
#define DRIFT_BOUND  3000
#define DRIFT_WINDOW 3000

static const char *drift =
    "{\"requests\": 20000, \"seed\": 5,"
    " \"traffic\": {\"code\": 1, \"chat\": 1},"
    " \"models\": {"
    "  \"a\": {\"cost_usd\": 0.01, \"success\": {\"code\": 0.9, \"chat\": "
    "0.9}},"
    "  \"b\": {\"cost_usd\": 0.01, \"success\": {\"code\": 0.7, \"chat\": "
    "0.6}},"
    "  \"c\": {\"cost_usd\": 0.01, \"success\": {\"code\": 0.4, \"chat\": "
    "0.5}}},"
    " \"events\": [{\"at\": 0.5, \"type\": \"quality\", \"model\": \"a\","
    "  \"bucket\": \"code\", \"success\": 0.5}]}";

/* Share of model m among bucket b's requests in [lo, hi). */
static double
share(const replay_result_t *r, int b, int m, size_t lo, size_t hi)
{
    size_t n = 0, k = 0;
    for (size_t t = lo; t < hi; t++) {
        if (r->trace_bucket[t] != b)
            continue;
        n++;
        k += r->trace_model[t] == m;
    }
    return n ? (double)k / (double)n : 0.0;
}

static void
run_drift(double half_life, unsigned long seed, double *before, double *after)
{
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    if (scenario_load_buffer(ds, drift, strlen(drift), "drift.json", 0, &e))
        fail_msg("%s", e.msg);
    dataset_finish(ds);
    replay_config_t c;
    replay_config_default(&c);
    c.params.kind = POLICY_TS;
    c.half_life_s = half_life;
    c.seed = seed;
    c.trace = 1;
    replay_result_t *r = NULL;
    if (replay_run(ds, &c, &r, &e))
        fail_msg("%s", e.msg);
    int code = dataset_find_bucket(ds, "code");
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    *before = share(r, code, a, DRIFT_AT - DRIFT_WINDOW, DRIFT_AT);
    *after = share(r, code, b, DRIFT_AT + DRIFT_BOUND,
                   DRIFT_AT + DRIFT_BOUND + DRIFT_WINDOW);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
}

static void
test_forgetting_follows(void **state)
{
    (void)state;
    for (unsigned long seed = 1; seed <= 3; seed++) {
        double before, after;
        run_drift(1000.0, seed, &before, &after);
        print_message("half-life 1000, seed %lu: a's share before %.3f, "
                      "b's share after %.3f\n",
                      seed, before, after);
        assert_true(before >= 0.8); /* it had found a */
        assert_true(after >= 0.8);
    }
}

static void
test_no_forgetting_stays(void **state)
{
    (void)state;
    for (unsigned long seed = 1; seed <= 3; seed++) {
        double before, after;
        run_drift(0.0, seed, &before, &after);
        print_message("no forgetting, seed %lu: a's share before %.3f, "
                      "b's share after %.3f\n",
                      seed, before, after);
        assert_true(before >= 0.8);
        assert_true(after < 0.8);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forgetting_follows),
        cmocka_unit_test(test_no_forgetting_stays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
