/* test_vmodel.c - the validator model of cascade replays (sim/vmodel.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim/dataset.h"
#include "sim/load.h"
#include "sim/vmodel.h"
#include "tests/sim/simtest.h"

static void
expect_bad(const char *spec, const char *frag1, const char *frag2)
{
    vmodel_t vm;
    vmodel_default(&vm);
    vm.false_pass = 0.25; /* must stay untouched on error */
    serr_t e = {0, ""};
    assert_int_equal(vmodel_parse(spec, &vm, &e), SERR_ARG);
    assert_int_equal(e.code, SERR_ARG);
    if (!strstr(e.msg, frag1) || (frag2 && !strstr(e.msg, frag2)))
        fail_msg("spec '%s': message '%s' lacks '%s' / '%s'", spec, e.msg,
                 frag1, frag2 ? frag2 : "");
    assert_int_equal(vm.kind, VMODEL_PERFECT);
    assert_near(vm.false_pass, 0.25, 0.0);
}

static void
test_parse(void **state)
{
    (void)state;
    vmodel_t vm;
    serr_t e = {0, ""};
    char buf[64];
    assert_int_equal(vmodel_parse("perfect", &vm, &e), 0);
    assert_int_equal(vm.kind, VMODEL_PERFECT);
    assert_string_equal(vmodel_describe(&vm, buf, sizeof buf), "perfect");
    assert_int_equal(vmodel_parse("column", &vm, &e), 0);
    assert_int_equal(vm.kind, VMODEL_COLUMN);
    assert_string_equal(vmodel_describe(&vm, buf, sizeof buf), "column");
    assert_int_equal(vmodel_parse("noisy:0.1,0.25", &vm, &e), 0);
    assert_int_equal(vm.kind, VMODEL_NOISY);
    assert_near(vm.false_pass, 0.1, 0.0);
    assert_near(vm.false_fail, 0.25, 0.0);
    assert_string_equal(vmodel_describe(&vm, buf, sizeof buf),
                        "noisy:0.10000000000000001,0.25");
    assert_int_equal(vmodel_parse("noisy:0,1", &vm, &e), 0);
    assert_near(vm.false_pass, 0.0, 0.0);
    assert_near(vm.false_fail, 1.0, 0.0);
    assert_int_equal(vmodel_parse("noisy:1e-3,.5", &vm, &e), 0);
    assert_near(vm.false_pass, 0.001, 0.0);

    expect_bad("", "--validator: empty", "perfect, noisy:FP,FF or column");
    expect_bad(NULL, "--validator: empty", NULL);
    expect_bad("oracle", "--validator 'oracle': unknown validator",
               "perfect, noisy:FP,FF or column");
    expect_bad("Perfect", "unknown validator", NULL);
    expect_bad("perfect:1", "unknown validator", NULL);
    expect_bad("noisyx", "unknown validator", NULL);
    expect_bad("noisy", "--validator noisy: expected noisy:FP,FF", NULL);
    expect_bad("noisy:0.1", "--validator noisy:0.1: expected noisy:FP,FF",
               "comma");
    expect_bad("noisy:,0.1", "false-pass probability missing", NULL);
    expect_bad("noisy:0.1,", "false-fail probability missing", NULL);
    expect_bad("noisy:1.5,0", "false-pass probability '1.5'",
               "not a number in [0, 1]");
    expect_bad("noisy:0.1,2",
               "--validator noisy:0.1,2: false-fail "
               "probability '2' is not a number in [0, 1]",
               NULL);
    expect_bad("noisy:-0.1,0", "false-pass probability '-0.1'", NULL);
    expect_bad("noisy:0.1,abc", "false-fail probability 'abc'", NULL);
    expect_bad("noisy:0.1,0.1,0.1", "false-fail probability '0.1,0.1'", NULL);
    expect_bad("noisy:nan,0", "false-pass probability 'nan'", NULL);
    expect_bad("noisy: 0.1,0", "false-pass probability ' 0.1'", NULL);
    expect_bad("noisy:0.1x,0", "false-pass probability '0.1x'", NULL);
}

/* One bucket, models g (good answers), b (bad), h (graded 0.5: good);
 * row 0: g 1, b 0, h 0.5 with verdicts g 0, b 1; row 1: g 1, b missing,
 * h "error"; row 2: g 0.7 (no verdict), b 0.2. */
static dataset_t *
small_data(void)
{
    const char *s =
        "{\"bucket\": \"x\", \"outcomes\": {\"g\": 1, \"b\": 0, \"h\": 0.5}, "
        "\"cost_usd\": {\"g\": 1, \"b\": 1, \"h\": 1}, "
        "\"verdicts\": {\"g\": 0, \"b\": true}}\n"
        "{\"bucket\": \"x\", \"outcomes\": {\"g\": 1, \"b\": null, \"h\": "
        "\"error\"}, \"cost_usd\": {\"g\": 1}}\n"
        "{\"bucket\": \"x\", \"outcomes\": {\"g\": 0.7, \"b\": 0.2}, "
        "\"cost_usd\": {\"g\": 1, \"b\": 1}}\n";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_jsonl_buffer(ds, s, strlen(s), "v.jsonl", &e), 0);
    dataset_finish(ds);
    return ds;
}

static void
test_pass_prob(void **state)
{
    (void)state;
    dataset_t *ds = small_data();
    int g = dataset_find_model(ds, "g"), b = dataset_find_model(ds, "b");
    int h = dataset_find_model(ds, "h");
    vmodel_t vm;
    serr_t e = {0, ""};

    vmodel_default(&vm); /* perfect */
    assert_int_equal(vmodel_check(&vm, ds, &e), 0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, g), 1.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, b), 0.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, h), 1.0, 0.0); /* 0.5 passes */
    assert_near(vmodel_pass_prob(&vm, ds, 1, b), 0.0, 0.0); /* missing */
    assert_near(vmodel_pass_prob(&vm, ds, 1, h), 0.0, 0.0); /* error */
    assert_near(vmodel_pass_prob(&vm, ds, 2, g), 1.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 2, b), 0.0, 0.0);

    assert_int_equal(vmodel_parse("noisy:0.2,0.3", &vm, &e), 0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, g), 0.7, 1e-15);
    assert_near(vmodel_pass_prob(&vm, ds, 0, b), 0.2, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, h), 0.7, 1e-15);
    assert_near(vmodel_pass_prob(&vm, ds, 1, b), 0.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 1, h), 0.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 2, b), 0.2, 0.0);

    assert_int_equal(vmodel_parse("column", &vm, &e), 0);
    assert_int_equal(vmodel_check(&vm, ds, &e), 0);
    assert_near(vmodel_pass_prob(&vm, ds, 0, g), 0.0, 0.0); /* verdict 0 */
    assert_near(vmodel_pass_prob(&vm, ds, 0, b), 1.0, 0.0); /* verdict 1 */
    assert_near(vmodel_pass_prob(&vm, ds, 0, h), 1.0, 0.0); /* no verdict */
    assert_near(vmodel_pass_prob(&vm, ds, 1, g), 1.0, 0.0); /* perfect rule */
    assert_near(vmodel_pass_prob(&vm, ds, 1, h), 0.0, 0.0); /* error */
    assert_near(vmodel_pass_prob(&vm, ds, 2, g), 1.0, 0.0);
    assert_near(vmodel_pass_prob(&vm, ds, 2, b), 0.0, 0.0);
    /* a verdict decides its draw whatever the uniform */
    for (unsigned long seed = 1; seed < 50; seed++) {
        assert_int_equal(vmodel_draw(&vm, ds, 0, g, seed, 0), 0);
        assert_int_equal(vmodel_draw(&vm, ds, 0, b, seed, 3), 1);
        assert_int_equal(vmodel_draw(&vm, ds, 1, h, seed, 0), 0);
    }
    dataset_destroy(&ds);

    /* column on data without verdicts: refused, naming the column */
    const char *s = "{\"bucket\": \"x\", \"outcomes\": {\"g\": 1}, "
                    "\"cost_usd\": {\"g\": 1}}\n";
    ds = dataset_new();
    assert_int_equal(load_jsonl_buffer(ds, s, strlen(s), "n.jsonl", &e), 0);
    dataset_finish(ds);
    assert_int_equal(vmodel_check(&vm, ds, &e), SERR_ARG);
    assert_non_null(strstr(e.msg, "--validator column: the data has no "
                                  "verdict columns (M|verdict"));
    vmodel_default(&vm);
    assert_int_equal(vmodel_check(&vm, ds, &e), 0);
    dataset_destroy(&ds);
}

/* n rows of two models, "bad" (outcome 0) and "good" (outcome 1). */
static dataset_t *
twin_data(size_t n)
{
    dataset_t *ds = dataset_new();
    int bad = dataset_model_id(ds, "bad"), good = dataset_model_id(ds, "good");
    int bk = dataset_bucket_id(ds, "x");
    for (size_t r = 0; r < n; r++) {
        dataset_add_row(ds, bk);
        dataset_set(ds, bad, DATASET_OK, 0.0, 1.0);
        dataset_set(ds, good, DATASET_OK, 1.0, 1.0);
    }
    dataset_finish(ds);
    return ds;
}

/* |count / n - p| within 5 binomial standard deviations, sqrt(p (1-p) /
 * n): a fixed seed passes or fails for ever, and a correct draw would
 * miss by chance with probability below 1e-6. */
static void
expect_rate(size_t count, size_t n, double p, const char *what)
{
    double sd = sqrt(p * (1.0 - p) / (double)n);
    double rate = (double)count / (double)n;
    if (fabs(rate - p) > 5.0 * sd)
        fail_msg("%s: rate %.5f, expected %.5f +- %.5f (5 sd)", what, rate, p,
                 5.0 * sd);
}

static void
test_draw(void **state)
{
    (void)state;
    const size_t n = 20000;
    const double fp = 0.1, ff = 0.3;
    dataset_t *ds = twin_data(n);
    vmodel_t vm;
    serr_t e = {0, ""};
    assert_int_equal(vmodel_parse("noisy:0.1,0.3", &vm, &e), 0);
    size_t fpass = 0, gpass = 0, fboth = 0, gboth = 0, same = 0, unif = 0;
    for (size_t r = 0; r < n; r++) {
        int b0 = vmodel_draw(&vm, ds, r, 0, 7, 0);
        int g0 = vmodel_draw(&vm, ds, r, 1, 7, 0);
        int b1 = vmodel_draw(&vm, ds, r, 0, 7, 1); /* next pass */
        int g1 = vmodel_draw(&vm, ds, r, 1, 7, 1);
        fpass += (size_t)b0;
        gpass += (size_t)g0;
        fboth += (size_t)(b0 && b1);
        gboth += (size_t)(g0 && g1);
        /* common random numbers: the same seed, the same verdicts */
        assert_int_equal(vmodel_draw(&vm, ds, r, 0, 7, 0), b0);
        assert_int_equal(vmodel_draw(&vm, ds, r, 1, 7, 1), g1);
        same += vmodel_draw(&vm, ds, r, 0, 8, 0) == b0; /* another seed */
        unif += vmodel_uniform(7, 0, r, 0) < 0.5;
    }
    expect_rate(fpass, n, fp, "false passes");
    expect_rate(gpass, n, 1.0 - ff, "true passes");
    /* passes are independent: both pass with the square */
    expect_rate(fboth, n, fp * fp, "false passes in two passes");
    expect_rate(gboth, n, (1.0 - ff) * (1.0 - ff), "true passes twice");
    /* seeds are independent: agreement fp^2 + (1-fp)^2 */
    expect_rate(same, n, fp * fp + (1 - fp) * (1 - fp), "seed 7 vs 8");
    expect_rate(unif, n, 0.5, "uniform below 1/2");
    /* perfect and the extremes of noisy are certain */
    vmodel_default(&vm);
    for (size_t r = 0; r < 1000; r++) {
        assert_int_equal(vmodel_draw(&vm, ds, r, 0, 3, 2), 0);
        assert_int_equal(vmodel_draw(&vm, ds, r, 1, 3, 2), 1);
    }
    assert_int_equal(vmodel_parse("noisy:1,1", &vm, &e), 0);
    for (size_t r = 0; r < 1000; r++) {
        assert_int_equal(vmodel_draw(&vm, ds, r, 0, 3, 2), 1);
        assert_int_equal(vmodel_draw(&vm, ds, r, 1, 3, 2), 0);
    }
    dataset_destroy(&ds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pass_prob),
        cmocka_unit_test(test_draw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
