/*
 * test_ope.c - off-policy evaluation (sim/olog.h, sim/ope.h): every
 * estimator against values worked out by hand on small logs written here,
 * the replay of a learning policy step by step, bootstrap intervals, the
 * warnings, the readers' errors (line and field), and `bursar-sim
 * evaluate` as a program. No test reads ../shared/data.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <gsl/gsl_rng.h>

#include "sim/olog.h"
#include "sim/ope.h"
#include "tests/sim/simtest.h"

static olog_t *
load_jsonl(const char *text)
{
    olog_t *lg = olog_new();
    serr_t e = {0, ""};
    int rc = olog_load_jsonl_buffer(lg, text, strlen(text), "t.jsonl", &e);
    if (rc)
        fail_msg("load: %s", e.msg);
    return lg;
}

static void
evaluate(const olog_t *lg, const char *spec, const ope_config_t *cfg,
         ope_result_t *r)
{
    ope_target_t t;
    serr_t e = {0, ""};
    if (ope_target_parse(lg, spec, &t, &e))
        fail_msg("target %s: %s", spec, e.msg);
    if (ope_evaluate(lg, &t, cfg, r, &e))
        fail_msg("evaluate %s: %s", spec, e.msg);
    ope_target_free(&t);
}

static int
has_warning(const ope_result_t *r, const char *frag)
{
    for (size_t i = 0; i < r->n_warn; i++)
        if (strstr(r->warn[i], frag))
            return 1;
    return 0;
}

/* Four rows in one bucket, two actions, propensities that vary:
 *   A p=0.50 r=1 c=0.010 | B p=0.50 r=0 c=0.002
 *   A p=0.25 r=0 c=0.010 | B p=0.75 r=1 c=0.002 */
static const char *log4 =
    "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1,"
    "\"cost_usd\":0.01}\n"
    "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":0,"
    "\"cost_usd\":0.002}\n"
    "\n"
    "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.25,\"reward\":0,"
    "\"cost_usd\":0.01}\n"
    "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.75,\"reward\":1,"
    "\"cost_usd\":0.002}\n";

static void
test_fixed_by_hand(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(log4);
    assert_int_equal(lg->n_rows, 4);
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    evaluate(lg, "fixed:A", &cfg, &r);
    /* w = 2, 0, 4, 0 */
    assert_near(r.est[OPE_IPS].q, (2 * 1 + 4 * 0) / 4.0, 1e-12);
    assert_near(r.est[OPE_IPS].c, (2 * 0.01 + 4 * 0.01) / 4.0, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, 2.0 / 6.0, 1e-12);
    assert_near(r.est[OPE_SNIPS].c, 0.01, 1e-12);
    /* q(x,A) = 0.5, q(x,B) = 0.5 */
    assert_near(r.est[OPE_DM].q, 0.5, 1e-12);
    assert_near(r.est[OPE_DM].c, 0.01, 1e-12);
    /* 0.5 + (2 (1 - 0.5) + 4 (0 - 0.5)) / 4 */
    assert_near(r.est[OPE_DR].q, 0.25, 1e-12);
    assert_near(r.est[OPE_DR].c, 0.01, 1e-12);
    assert_near(r.est[OPE_IPS].ess, 36.0 / 20.0, 1e-12);
    assert_near(r.est[OPE_DM].ess, 4, 1e-12);
    assert_near(r.p_min, 0.25, 1e-15);
    assert_near(r.max_share, 4.0 / 6.0, 1e-12);
    assert_true(has_warning(&r, "dominates"));
    ope_result_free(&r);
    olog_destroy(&lg);
}

static void
test_uniform_by_hand(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(log4);
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    evaluate(lg, "uniform", &cfg, &r);
    /* pi = 1/2 each: w = 1, 1, 2, 2/3 */
    double sw = 1 + 1 + 2 + 2.0 / 3, swr = 1 + 2.0 / 3;
    assert_near(r.est[OPE_IPS].q, swr / 4, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, swr / sw, 1e-12);
    assert_near(r.est[OPE_DM].q, 0.5, 1e-12);
    assert_near(r.est[OPE_DR].q, 0.5 + (0.5 - 0.5 - 1 + (2.0 / 3) * 0.5) / 4,
                1e-12);
    assert_near(r.est[OPE_DM].c, 0.5 * 0.01 + 0.5 * 0.002, 1e-12);
    assert_near(r.est[OPE_IPS].c, (0.01 + 0.002 + 0.02 + 0.002 * 2 / 3) / 4,
                1e-12);
    assert_near(r.est[OPE_IPS].ess, sw * sw / (1 + 1 + 4 + 4.0 / 9), 1e-12);
    ope_result_free(&r);

    /* a mixed distribution: 3/4 A, 1/4 B; w = 1.5, 0.5, 3, 1/3 */
    evaluate(lg, "mix:A=3,B=1", &cfg, &r);
    assert_near(r.est[OPE_IPS].q, (1.5 + 1.0 / 3) / 4, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, (1.5 + 1.0 / 3) / (1.5 + 0.5 + 3 + 1.0 / 3),
                1e-12);
    assert_near(r.est[OPE_DR].q,
                0.5 + (1.5 * 0.5 - 0.5 * 0.5 - 3 * 0.5 + 0.5 / 3) / 4, 1e-12);
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* Two buckets; the target's JSON distribution differs per bucket, and in
 * bucket y action B was never logged: DM falls back to y's mean there. */
static void
test_buckets_json_dm(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"y\",\"model\":\"A\",\"propensity\":1,\"reward\":1}\n"
        "{\"bucket\":\"y\",\"model\":\"A\",\"propensity\":1,\"reward\":0}\n");
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_target_t t;
    serr_t e = {0, ""};
    /* x: all B; y: B weight given but B never logged in y, so policies/
     * renormalises over y's actions: all A */
    assert_int_equal(ope_target_json(lg,
                                     "{\"x\": {\"B\": 1}, \"*\": {\"A\": 1, "
                                     "\"B\": 1}}",
                                     "p.json", &t, &e),
                     0);
    ope_result_t r;
    assert_int_equal(ope_evaluate(lg, &t, &cfg, &r, &e), 0);
    /* w = 0, 2, 1, 1; IPS = (0 + 0 + 1 + 0) / 4 */
    assert_near(r.est[OPE_IPS].q, 0.25, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, 1.0 / 4.0, 1e-12);
    /* DM: x has 2 rows at q(x,B) = 0, y 2 rows at q(y,A) = 0.5 */
    assert_near(r.est[OPE_DM].q, (2 * 0 + 2 * 0.5) / 4, 1e-12);
    assert_true(isnan(r.est[OPE_DM].c)); /* no costs in this log */
    assert_near(r.unsupported, 0, 1e-12);
    ope_result_free(&r);
    ope_target_free(&t);

    /* fixed:B in bucket y: policies/ falls back (warning) */
    evaluate(lg, "fixed:B", &cfg, &r);
    assert_true(has_warning(&r, "never logged in bucket 'y'"));
    ope_result_free(&r);

    assert_int_not_equal(ope_target_json(lg, "{\"zz\": 1}", "bad.json", &t, &e),
                         0);
    assert_non_null(strstr(e.msg, "field 'zz'"));
    ope_target_free(&t);
    assert_int_not_equal(ope_target_parse(lg, "mix:A=x", &t, &e), 0);
    assert_int_not_equal(ope_target_parse(lg, "cheapest", &t, &e), 0);
    assert_int_not_equal(ope_target_parse(lg, "fixed:Q", &t, &e), 0);
    assert_non_null(strstr(e.msg, "'Q'"));
    olog_destroy(&lg);
}

/* Uniform logging (p = 0.5 everywhere): Li et al.'s replay of a fixed
 * policy keeps exactly the rows where the log chose its action. */
static void
test_replay_static(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":1}"
        "\n");
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    evaluate(lg, "fixed:A", &cfg, &r);
    assert_int_equal(r.n_accepted, 3);
    assert_near(r.est[OPE_REPLAY].q, 2.0 / 3.0, 1e-12);
    assert_near(r.est[OPE_REPLAY].ess, 3, 1e-12);
    assert_true(has_warning(&r, "replay rests on 3 rows"));
    ope_result_free(&r);
    evaluate(lg, "fixed:B", &cfg, &r);
    assert_near(r.est[OPE_REPLAY].q, 0.5, 1e-12);
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* A learning policy (greedy on the posterior mean: eps-greedy with
 * epsilon 0, deterministic), replayed row by row by hand:
 *   row 1 (A, 1): means A .5, B .5 -> A, accepted; A = Beta(2,1)
 *   row 2 (B, 1): A .667 -> A, rejected
 *   row 3 (A, 0): A -> accepted; A = Beta(2,2)
 *   row 4 (A, 0): tie .5/.5 -> A (first), accepted; A = Beta(2,3)
 *   row 5 (B, 1): B .5 > A .4 -> B, accepted; B = Beta(2,1)
 *   row 6 (B, 0): B .667 -> B, accepted
 * accepted rewards 1, 0, 0, 1, 0 -> 0.4 over 5 rows. */
static void
test_replay_learning(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":0}"
        "\n");
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.params.epsilon = 0;
    cfg.boot = 200;
    ope_result_t r;
    evaluate(lg, "eps-greedy", &cfg, &r);
    assert_int_equal(r.n_accepted, 5);
    assert_near(r.est[OPE_REPLAY].q, 0.4, 1e-12);
    assert_true(r.est[OPE_REPLAY].valid);
    for (int k = OPE_IPS; k < OPE_N; k++)
        assert_false(r.est[k].valid);
    assert_true(r.est[OPE_REPLAY].q_lo <= 0.4 && 0.4 <= r.est[OPE_REPLAY].q_hi);
    ope_result_free(&r);

    /* ts runs and accepts only matching rows */
    evaluate(lg, "ts", &cfg, &r);
    assert_true(r.n_accepted <= 6);
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* A larger random log: every interval holds its estimate, intervals of a
 * fixed seed are reproducible, and IPS is near the truth. Logging: A with
 * 0.8, B with 0.2; rates A 0.3, B 0.7; truth of fixed:B is 0.7. With 2000
 * rows the sd of IPS is about sqrt(0.7 * 5 / 2000) = 0.042: margin 4 sd. */
static void
test_bootstrap(void **state)
{
    (void)state;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 42);
    olog_t *lg = olog_new();
    int bx = olog_bucket_id(lg, "x");
    int a = olog_action_id(lg, "A"), b = olog_action_id(lg, "B");
    for (long i = 0; i < 2000; i++) {
        int pick_a = gsl_rng_uniform(rng) < 0.8;
        double rate = pick_a ? 0.3 : 0.7;
        olog_add(lg, bx, pick_a ? a : b, gsl_rng_uniform(rng) < rate,
                 pick_a ? 0.001 : 0.01, pick_a ? 0.8 : 0.2, (double)i, i + 1);
    }
    gsl_rng_free(rng);
    ope_config_t cfg;
    ope_config_default(&cfg);
    ope_result_t r, r2;
    evaluate(lg, "fixed:B", &cfg, &r);
    for (int k = 0; k < OPE_N; k++) {
        const ope_est_t *es = &r.est[k];
        if (!(es->q_lo <= es->q && es->q <= es->q_hi))
            fail_msg("%s: %g outside [%g, %g]", ope_estimator_name[k], es->q,
                     es->q_lo, es->q_hi);
        assert_true(es->q_hi - es->q_lo > 0);
        assert_true(es->c_lo <= es->c + 1e-15 && es->c <= es->c_hi + 1e-15);
    }
    assert_near(r.est[OPE_IPS].q, 0.7, 4 * 0.042);
    assert_near(r.est[OPE_DR].q, 0.7, 4 * 0.042);
    evaluate(lg, "fixed:B", &cfg, &r2);
    assert_near(r.est[OPE_DR].q_lo, r2.est[OPE_DR].q_lo, 0);
    assert_near(r.est[OPE_DR].q_hi, r2.est[OPE_DR].q_hi, 0);
    assert_int_equal(r.n_warn, r2.n_warn);
    ope_result_free(&r);
    ope_result_free(&r2);
    olog_destroy(&lg);
}

static void
test_warnings(void **state)
{
    (void)state;
    /* one row without outcome, one without propensity, one with 0, one
     * tiny (1e-4): that row holds nearly all the weight */
    olog_t *lg = load_jsonl(
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.5,\"reward\":0}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,"
        "\"reward\":null}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0,\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"B\",\"propensity\":0.0001,"
        "\"reward\":1}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.6,\"reward\":1}\n");
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 50;
    ope_result_t r;
    evaluate(lg, "uniform", &cfg, &r);
    assert_int_equal(r.n_used, 4);
    assert_int_equal(r.n_no_reward, 1);
    assert_int_equal(r.n_no_prop, 1);
    assert_int_equal(r.n_zero_prop, 1);
    assert_true(has_warning(&r, "1 rows without an outcome"));
    assert_true(has_warning(&r, "1 rows without a propensity"));
    assert_true(has_warning(&r, "1 rows with propensity 0"));
    assert_true(has_warning(&r, "line 6 (propensity 0.0001)"));
    assert_true(r.est[OPE_IPS].ess < 1.01);
    assert_true(r.max_share > 0.99);
    ope_result_free(&r);
    olog_destroy(&lg);

    /* nothing usable */
    lg = load_jsonl(
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0,\"reward\":1}\n");
    ope_target_t t;
    serr_t e = {0, ""};
    assert_int_equal(ope_target_parse(lg, "uniform", &t, &e), 0);
    assert_int_equal(ope_evaluate(lg, &t, &cfg, &r, &e), SERR_EMPTY);
    ope_result_free(&r);
    ope_target_free(&t);
    olog_destroy(&lg);
}

static void
expect_jsonl_error(const char *text, const char *frag)
{
    olog_t *lg = olog_new();
    serr_t e = {0, ""};
    int rc = olog_load_jsonl_buffer(lg, text, strlen(text), "log.jsonl", &e);
    if (rc == 0 || !strstr(e.msg, frag))
        fail_msg("rc %d, message '%s', wanted '%s'", rc, e.msg, frag);
    olog_destroy(&lg);
}

static void
expect_obd_error(const char *text, const char *frag)
{
    olog_t *lg = olog_new();
    serr_t e = {0, ""};
    int rc = olog_load_obd_buffer(lg, text, strlen(text), "obd.csv", &e);
    if (rc == 0 || !strstr(e.msg, frag))
        fail_msg("rc %d, message '%s', wanted '%s'", rc, e.msg, frag);
    olog_destroy(&lg);
}

static void
test_reader_errors(void **state)
{
    (void)state;
    const char *ok = "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,"
                     "\"reward\":1}\n";
    char buf[1024];
    snprintf(buf, sizeof buf,
             "%s{\"bucket\":\"x\",\"model\":\"A\","
             "\"propensity\":\"high\",\"reward\":1}\n",
             ok);
    expect_jsonl_error(buf, "log.jsonl:2: field 'propensity': not a number");
    snprintf(buf, sizeof buf,
             "%s%s{\"bucket\":\"x\",\"model\":\"A\","
             "\"propensity\":1.5}\n",
             ok, ok);
    expect_jsonl_error(buf, "log.jsonl:3: field 'propensity': 1.5 is outside");
    snprintf(buf, sizeof buf, "%s{\"bucket\":\"x\",\"propensity\":0.5}\n", ok);
    expect_jsonl_error(buf, "log.jsonl:2: field 'model': missing");
    snprintf(buf, sizeof buf,
             "%s{\"bucket\":\"x\",\"model\":\"A\","
             "\"reward\":2}\n",
             ok);
    expect_jsonl_error(buf, "log.jsonl:2: field 'reward'");
    snprintf(buf, sizeof buf, "%s{\"bucket\":3,\"model\":\"A\"}\n", ok);
    expect_jsonl_error(buf, "log.jsonl:2: field 'bucket'");
    snprintf(buf, sizeof buf,
             "%s{\"bucket\":\"x\",\"model\":\"A\","
             "\"cost_usd\":-1}\n",
             ok);
    expect_jsonl_error(buf, "log.jsonl:2: field 'cost_usd'");
    snprintf(buf, sizeof buf, "%s\n{oops\n", ok);
    expect_jsonl_error(buf, "log.jsonl:3: not valid JSON");
    expect_jsonl_error("[1]\n", "log.jsonl:1: not a JSON object");

    const char *hdr = ",timestamp,item_id,position,click,propensity_score\n";
    snprintf(buf, sizeof buf, "%s0,t,3,1,0,0.02\n1,t,4,2,yes,0.02\n", hdr);
    expect_obd_error(buf, "obd.csv:3: field 'click'");
    snprintf(buf, sizeof buf, "%s0,t,3,1,0,2\n", hdr);
    expect_obd_error(buf, "obd.csv:2: field 'propensity_score'");
    snprintf(buf, sizeof buf, "%s0,t,,1,0,0.1\n", hdr);
    expect_obd_error(buf, "obd.csv:2: field 'item_id'");
    expect_obd_error(",item_id,click\n0,1,0\n", "field 'propensity_score'");
}

/* The JSONL reader's fast path and its cJSON fallback read the same
 * values: an export line as bursard writes it, one with an escaped string
 * and a nested value (fallback), repeated keys (the first wins, as in
 * cJSON), `outcome` standing in when `reward` is absent, and nulls. */
static void
test_jsonl_paths(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(
        "{\"decision_id\":\"00000000000003e9\",\"time\":1764030000.25,"
        "\"bucket\":\"code\",\"model\":\"gpt-4o\",\"propensity\":0.31,"
        "\"status\":\"done\",\"outcome\":1,\"outcome_time\":1764030003.1,"
        "\"corrected\":true,\"reward\":0,\"expected_cost_usd\":0.013,"
        "\"cost_usd\":0.0121,\"cost_source\":\"reported\",\"latency_ms\":2310,"
        "\"served_model\":null,\"provider_error\":null,\"explored\":false,"
        "\"over_budget\":false}\n"
        "{\"bucket\":\"co\\u0064e\",\"model\":\"gpt-4o\",\"x\":{\"y\":[1]},"
        "\"propensity\":0.5,\"outcome\":1,\"cost_usd\":null}\n"
        "  {\"bucket\":\"code\",\"model\":\"m2\",\"propensity\":0.25,"
        "\"propensity\":0.75,\"outcome\":0.5}  \n"
        "{\"bucket\":\"chat\",\"model\":\"m2\",\"propensity\":null,"
        "\"reward\":null,\"outcome\":1}\n");
    assert_int_equal(lg->n_rows, 4);
    assert_int_equal(lg->n_buckets, 2);
    assert_int_equal(lg->row_bucket[1], lg->row_bucket[0]); /* "code" */
    assert_near(lg->time[0], 1764030000.25, 1e-6);
    assert_near(lg->prop[0], 0.31, 1e-15);
    assert_near(lg->reward[0], 0, 0); /* reward wins over outcome */
    assert_near(lg->cost[0], 0.0121, 1e-15);
    assert_near(lg->reward[1], 1, 0); /* outcome stands in */
    assert_true(isnan(lg->cost[1]));
    assert_true(isnan(lg->time[1]));
    assert_near(lg->prop[2], 0.25, 1e-15); /* first of repeated keys */
    assert_near(lg->reward[2], 0.5, 0);
    assert_true(isnan(lg->prop[3]));
    assert_true(isnan(lg->reward[3])); /* reward null: no outcome */
    assert_int_equal(lg->line[3], 4);
    olog_destroy(&lg);
}

/* The fast path's number reader gives strtod's double, bit for bit, for
 * numbers printed as cJSON prints them (%1.15g, else %1.17g) over many
 * magnitudes. */
static void
test_jsonl_numbers(void **state)
{
    (void)state;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    size_t n = 4000, cap = n * 160, len = 0;
    char *buf = malloc(cap);
    double *want = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        double d = gsl_rng_uniform(rng) * pow(10, (int)(i % 40) - 20);
        if (i % 3 == 0) /* short decimals: the exact fast path */
            d = round(d * 1e6) / 1e6;
        if (i % 7 == 0)
            d = -d;
        char num[40];
        snprintf(num, sizeof num, "%1.15g", d);
        if (strtod(num, NULL) != d)
            snprintf(num, sizeof num, "%1.17g", d);
        want[i] = strtod(num, NULL);
        len += (size_t)snprintf(buf + len, cap - len,
                                "{\"bucket\":\"x\",\"model\":\"A\","
                                "\"time\":%s,\"propensity\":0.5}\n",
                                num);
    }
    olog_t *lg = olog_new();
    serr_t e = {0, ""};
    assert_int_equal(olog_load_jsonl_buffer(lg, buf, len, "n.jsonl", &e), 0);
    assert_int_equal(lg->n_rows, n);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&lg->time[i], &want[i], sizeof(double)) != 0)
            fail_msg("row %zu: %.17g read as %.17g", i, want[i], lg->time[i]);
    olog_destroy(&lg);
    free(buf);
    free(want);
    gsl_rng_free(rng);
}

static void
test_obd_reader(void **state)
{
    (void)state;
    const char *csv = ",timestamp,item_id,position,click,propensity_score,x\n"
                      "0,2019-11-24,3,1,0,0.02,a\n"
                      "1,2019-11-24,4,2,1,0.05,\"b,c\"\n"
                      "2,2019-11-24,3,2,0,,d\n"
                      "3,2019-11-24,5,1,1,0.5,e\n";
    olog_t *lg = olog_new();
    serr_t e = {0, ""};
    assert_int_equal(olog_load_obd_buffer(lg, csv, strlen(csv), "o.csv", &e),
                     0);
    assert_int_equal(lg->n_rows, 4);
    assert_int_equal(lg->n_buckets, 2);
    assert_string_equal(lg->bucket[0], "pos1");
    assert_string_equal(lg->bucket[1], "pos2");
    assert_int_equal(lg->n_actions, 3);
    assert_string_equal(lg->action[lg->row_action[1]], "4");
    assert_near(lg->reward[1], 1, 0);
    assert_near(lg->prop[1], 0.05, 1e-15);
    assert_true(isnan(lg->prop[2]));
    assert_true(isnan(lg->cost[0]));
    assert_int_equal(lg->line[3], 5);
    /* A row short of columns is an error naming its line, not a row with
     * a missing propensity. */
    const char *shortrow = "item_id,click,propensity_score\n1,0,0.5\n2,1\n";
    olog_t *lg2 = olog_new();
    assert_int_equal(
        olog_load_obd_buffer(lg2, shortrow, strlen(shortrow), "s.csv", &e),
        SERR_FORMAT);
    assert_non_null(strstr(e.msg, "s.csv:3: 2 fields where the header has 3"));
    olog_destroy(&lg2);
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    /* uniform per position over the items seen there: pos1 {3, 5},
     * pos2 {4, 3}; w = 0.5/0.02, 0.5/0.05, (row 3 no propensity), 0.5/0.5 */
    evaluate(lg, "uniform", &cfg, &r);
    assert_int_equal(r.n_no_prop, 1);
    assert_near(r.est[OPE_IPS].q, (0 + 10 * 1 + 1 * 1) / 3.0, 1e-12);
    assert_true(isnan(r.est[OPE_IPS].c));
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* ---------------------------------------------------- the program */

static char dir[] = "/tmp/bursar-ope-XXXXXX";

static int
run(const char *args, char **out)
{
    const char *bd = getenv("BURSAR_BIN_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s/bursar-sim evaluate %s 2>&1", dir,
             bd ? bd : "bin", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0)
        n += got;
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_cli(void **state)
{
    (void)state;
    const char *bd = getenv("BURSAR_BIN_DIR");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/bursar-sim", bd ? bd : "bin");
    if (access(bin, X_OK) != 0)
        fail_msg("%s is missing: build bursar-sim first", bin);
    assert_non_null(mkdtemp(dir));
    char path[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(log4, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/p.json", dir);
    f = fopen(path, "w");
    fputs("{\"name\": \"mostly-A\", \"A\": 3, \"B\": 1}", f);
    fclose(f);

    char *out;
    int st = run("--log log.jsonl --policy fixed:A,uniform --policy-file "
                 "p.json --json --plot ope.svg --boot 100",
                 &out);
    if (st != 0)
        fail_msg("status %d: %s", st, out);
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    cJSON *est = cJSON_GetObjectItem(o, "estimators");
    const char *names[] = {"replay", "ips", "snips", "dm", "dr"};
    for (int k = 0; k < 5; k++) {
        cJSON *x = cJSON_GetObjectItem(est, names[k]);
        assert_non_null(x);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(x, "estimate")));
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(x, "ci95")), 2);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(x, "ess")));
        assert_true(
            cJSON_IsNumber(cJSON_GetObjectItem(x, "cost_per_request_usd")));
    }
    assert_near(cJSON_GetObjectItem(cJSON_GetObjectItem(est, "ips"), "estimate")
                    ->valuedouble,
                0.5, 1e-12);
    cJSON *pols = cJSON_GetObjectItem(o, "policies");
    assert_int_equal(cJSON_GetArraySize(pols), 3);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(pols, 2), "policy")->valuestring,
        "mostly-A");
    cJSON_Delete(o);
    free(out);
    snprintf(path, sizeof path, "%s/ope.svg", dir);
    assert_int_equal(access(path, R_OK), 0);

    st = run("--log log.jsonl --policy uniform", &out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "dr "));
    free(out);
    st = run("--log log.jsonl --policy nope", &out);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "'nope'"));
    free(out);
    st = run("--log missing.jsonl --policy uniform", &out);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "missing.jsonl"));
    free(out);
    st = run("--policy uniform", &out);
    assert_int_equal(st, 2);
    free(out);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

/* Reads text (an exact-size heap copy: no NUL after it) with the fast
 * path on and off; both must give rc (READ_SAME: whatever cJSON says) and
 * the same rows. Returns the fast path's log, or NULL with the message in
 * e when the code is not 0. */
#define READ_SAME 1
static olog_t *
read_both(const char *text, int rc, serr_t *e)
{
    size_t n = strlen(text);
    char *buf = malloc(n ? n : 1);
    memcpy(buf, text, n);
    olog_t *lg[2];
    serr_t es[2] = {{0, ""}, {0, ""}};
    int got[2];
    for (int off = 0; off < 2; off++) {
        lg[off] = olog_new();
        lg[off]->fast_off = off;
        got[off] =
            olog_load_jsonl_buffer(lg[off], buf, n, "log.jsonl", &es[off]);
        if (got[off] != (rc == READ_SAME ? got[0] : rc))
            fail_msg("%s: fast_off %d: rc %d, wanted %d (%s)", text, off,
                     got[off], rc == READ_SAME ? got[0] : rc, es[off].msg);
    }
    rc = got[0];
    free(buf);
    assert_string_equal(es[0].msg, es[1].msg);
    assert_int_equal(lg[0]->n_rows, lg[1]->n_rows);
    for (size_t i = 0; i < lg[0]->n_rows; i++) {
        assert_memory_equal(&lg[0]->reward[i], &lg[1]->reward[i],
                            sizeof(double));
        assert_memory_equal(&lg[0]->prop[i], &lg[1]->prop[i], sizeof(double));
    }
    olog_destroy(&lg[1]);
    if (rc) {
        *e = es[0];
        olog_destroy(&lg[0]);
        return NULL;
    }
    return lg[0];
}

/* Fuzzing findings (tests/fuzz/corpus/olog/regress-*; the differential
 * target fuzz_olog reads every input both ways). */
static void
test_jsonl_fuzz_regressions(void **state)
{
    (void)state;
    serr_t e;
    /* a number ending the buffer went to strtod, which read past it */
    read_both("{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":1e-1",
              SERR_PARSE, &e);
    assert_non_null(strstr(e.msg, "log.jsonl:1: not valid JSON"));
    /* "REWARD" is not "reward": outcome is read (cJSON_HasObjectItem
     * ignored case on the cJSON path only) */
    olog_t *lg = read_both("{\"bucket\":\"x\",\"model\":\"A\",\"REWARD\":null,"
                           "\"outcome\":1}\n",
                           0, &e);
    assert_near(lg->reward[0], 1, 0);
    olog_destroy(&lg);
    /* numbers cJSON refuses, in a field the reader skips: refused on both
     * paths (the fast path skipped them unchecked; "0..5" was taken by a
     * first fix, found by the differential target) */
    const char *bad[] = {"1e", "0..5", "1.", "-", "1e+", "1-2", "0.5e1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char line[200];
        snprintf(line, sizeof line,
                 "{\"bucket\":\"x\",\"model\":\"A\",\"\":%s}\n", bad[i]);
        if (i == 2) /* "1." is a number to strtod, hence to cJSON */
            lg = read_both(line, 0, &e);
        else
            lg = read_both(line, SERR_PARSE, &e);
        olog_destroy(&lg);
    }
    /* longer than the fast path reads (OLOG_NUM_MAX): cJSON decides */
    lg = read_both("{\"bucket\":\"x\",\"model\":\"A\",\"\":"
                   "1111111111111111111111111111111111111111111111111111111111"
                   "111111}\n",
                   READ_SAME, &e);
    olog_destroy(&lg); /* safe on NULL */
    /* what cJSON takes that JSON does not: the same on both paths */
    lg = read_both("{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":007e-3,"
                   "\"reward\":1.}\n",
                   0, &e);
    assert_near(lg->prop[0], 0.007, 1e-18);
    olog_destroy(&lg);
    /* text after the object is refused (cJSON stopped at the object) */
    read_both("{\"bucket\":\"x\",\"model\":\"A\"} x\n", SERR_PARSE, &e);
    assert_non_null(strstr(e.msg, "text after the object"));
}

/* ------------------------------------------------------------ cascades */

/* A bursar export line of the cascade fields (others left out). */
#define CROW(b, m, p, r, c, off, seq, step, par)                               \
    "{\"bucket\":\"" b "\",\"model\":\"" m "\",\"propensity\":" p              \
    ",\"reward\":" r ",\"cost_usd\":" c ",\"offered\":" off ",\"seq\":\"" seq  \
    "\",\"step\":" step ",\"escalates_seq\":" par "}\n"

/* Three requests in bucket x over A, B, C:
 *   1: A of {A,B,C} p .5 r 0 c .01  ->  B of {B,C} p .8 r 1 c .002
 *   2: B of {A,B,C} p .25 r 1 c .002
 *   3: C of {A,B,C} p .25 r 0 c .001 -> A of {A,B} p .5 r 0 c .01
 *        -> B of {B} p 1 r 0 c .002 */
static const char *cascade3 =
    CROW("x", "A", "0.5", "0", "0.01", "[\"A\",\"B\",\"C\"]",
         "0000000000000001", "0", "null")
        CROW("x", "B", "0.25", "1", "0.002", "[\"A\",\"B\",\"C\"]",
             "0000000000000003", "0", "null")
            CROW("x", "B", "0.8", "1", "0.002", "[\"B\",\"C\"]",
                 "0000000000000002", "1", "\"0000000000000001\"")
                CROW("x", "C", "0.25", "0", "0.001", "[\"A\",\"B\",\"C\"]",
                     "0000000000000004", "0", "null")
                    CROW("x", "A", "0.5", "0", "0.01", "[\"A\",\"B\"]",
                         "0000000000000005", "1", "\"0000000000000004\"")
                        CROW("x", "B", "1", "0", "0.002", "[\"B\"]",
                             "0000000000000006", "2", "\"0000000000000005\"");

static void
test_cascade_by_hand(void **state)
{
    (void)state;
    olog_t *lg = load_jsonl(cascade3);
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    /* uniform within each step's set: w = (1/3)/.5 (1/2)/.8, (1/3)/.25,
     * (1/3)/.25 (1/2)/.5 (1/1)/1; outcomes 1, 1, 0 (the last steps') */
    evaluate(lg, "uniform", &cfg, &r);
    assert_true(r.per_request);
    assert_int_equal(r.n_requests, 3);
    assert_int_equal(r.n_steps, 6);
    assert_int_equal(r.set_rows, 6);
    double w1 = (1 / 3.0) / 0.5 * (0.5 / 0.8), w2 = 4 / 3.0, w3 = 4 / 3.0;
    assert_near(r.est[OPE_IPS].q, (w1 + w2) / 3, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, (w1 + w2) / (w1 + w2 + w3), 1e-12);
    double cw = w1 * 0.012 + w2 * 0.002 + w3 * 0.013;
    assert_near(r.est[OPE_IPS].c, cw / 3, 1e-12);
    assert_near(r.est[OPE_SNIPS].c, cw / (w1 + w2 + w3), 1e-12);
    double sw = w1 + w2 + w3, sw2 = w1 * w1 + w2 * w2 + w3 * w3;
    assert_near(r.est[OPE_IPS].ess, sw * sw / sw2, 1e-9);
    assert_false(r.est[OPE_DM].valid || r.est[OPE_DR].valid ||
                 r.est[OPE_REPLAY].valid);
    ope_result_free(&r);
    /* "A first, then uniform": request 1 only, w = 1/.5 x (1/2)/.8 */
    evaluate(lg, "fixed:A", &cfg, &r);
    assert_near(r.est[OPE_IPS].q, 2 * 0.625 / 3, 1e-12);
    assert_near(r.est[OPE_SNIPS].q, 1, 1e-12);
    assert_near(r.est[OPE_IPS].c, 2 * 0.625 * 0.012 / 3, 1e-12);
    ope_result_free(&r);
    /* "C first": request 3, w = 1/.25 x (1/2)/.5 x 1 = 4, outcome 0 */
    evaluate(lg, "fixed:C", &cfg, &r);
    assert_near(r.est[OPE_IPS].q, 0, 0);
    assert_near(r.est[OPE_IPS].c, 4 * 0.013 / 3, 1e-12);
    ope_result_free(&r);
    /* a mix within the sets: {A: 3, B: 1} renormalised, C weightless:
     * w1 = .75/.5 x 1/.8 (B of {B,C}), w2 = .25/.25, w3 = 0 (C) */
    evaluate(lg, "mix:A=3,B=1", &cfg, &r);
    assert_near(r.est[OPE_IPS].q, (1.5 * 1.25 + 1) / 3, 1e-12);
    ope_result_free(&r);
    /* the estimator before: every row a sample, pi over the bucket */
    cfg.per_decision = 1;
    evaluate(lg, "uniform", &cfg, &r);
    assert_false(r.per_request);
    assert_int_equal(r.n_used, 6);
    assert_int_equal(r.set_rows, 0);
    assert_near(r.est[OPE_IPS].q, ((1 / 3.0) / 0.25 + (1 / 3.0) / 0.8) / 6,
                1e-12);
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* Requests left out: a step escalating a decision not in the log, a
 * decision escalated twice, a step without an outcome; and a log with
 * offered sets but no cascade is judged per decision within the sets. */
static void
test_cascade_left_out(void **state)
{
    (void)state;
    const char *text = CROW(
        "x", "A", "0.5", "1", "0.01", "[\"A\",\"B\"]", "0000000000000001", "0",
        "null") CROW("x", "B", "0.5", "1", "0.01", "[\"B\"]",
                     "0000000000000002", "1", "\"00000000000000ff\"")
        CROW("x", "B", "0.5", "0", "0.01", "[\"A\",\"B\"]", "0000000000000003",
             "0", "null") CROW("x", "A", "1", "1", "0.01", "[\"A\"]",
                               "0000000000000004", "1", "\"0000000000000003\"")
            CROW("x", "A", "1", "1", "0.01", "[\"A\"]", "0000000000000005", "1",
                 "\"0000000000000003\"") CROW("x", "A", "0.5", "0", "0.01",
                                              "[\"A\",\"B\"]",
                                              "0000000000000006", "0", "null")
                CROW(
                    "x", "B", "1", "null", "0.01", "[\"B\"]",
                    "0000000000000007", "1",
                    "\"0000000000000006\"") "{\"bucket\":\"x\",\"model\":\"B\","
                                            "\"propensity\":0.5,\"reward\":1,"
                                            "\"step\":2}\n";
    olog_t *lg = load_jsonl(text);
    ope_config_t cfg;
    ope_config_default(&cfg);
    cfg.boot = 0;
    ope_result_t r;
    evaluate(lg, "uniform", &cfg, &r);
    assert_int_equal(r.n_requests, 1);
    assert_int_equal(r.n_orphan, 2); /* the unknown parent; step 2 alone */
    assert_int_equal(r.n_branch, 1);
    assert_int_equal(r.n_incomplete, 1);
    assert_int_equal(r.n_no_reward, 1);
    assert_true(has_warning(&r, "escalated twice"));
    assert_true(has_warning(&r, "does not hold"));
    assert_near(r.est[OPE_IPS].q, 1, 1e-12); /* (1/2)/.5 x 1 */
    ope_result_free(&r);
    olog_destroy(&lg);

    /* no cascade: per decision, uniform within each set; the floor too */
    lg = load_jsonl(CROW(
        "x", "A", "0.5", "1", "0", "[\"A\",\"B\"]", "0000000000000001", "0",
        "null") CROW("x", "B", "0.25", "0", "0", "[\"A\",\"B\",\"C\",\"D\"]",
                     "0000000000000002", "0", "null")
                        CROW("x", "C", "1", "1", "0", "[]", "0000000000000003",
                             "0", "null"));
    evaluate(lg, "uniform", &cfg, &r);
    assert_false(r.per_request);
    assert_int_equal(r.set_rows, 3);
    /* w = (1/2)/.5, (1/4)/.25, 1/1 (the set is its own model) */
    assert_near(r.est[OPE_IPS].q, (1 + 1) / 3.0, 1e-12);
    assert_true(r.est[OPE_DM].valid && r.est[OPE_DR].valid);
    ope_result_free(&r);
    cfg.explore_floor = 0.1; /* fixed:A with the floor, within {A,B} */
    evaluate(lg, "fixed:A", &cfg, &r);
    assert_near(r.est[OPE_IPS].q, (0.9 / 0.5 + 1) / 3, 1e-12);
    ope_result_free(&r);
    olog_destroy(&lg);
}

/* The cascade fields: read the same by the fast path and by cJSON, and
 * malformed ones named. */
static void
test_cascade_reader(void **state)
{
    (void)state;
    const char *text =
        "{\"bucket\":\"x\",\"model\":\"C\",\"propensity\":0.5,\"reward\":1,"
        "\"offered\":[\"A\", \"B\",\"A\"],\"seq\":\"00000000000000Fe\","
        "\"step\":3,\"escalates_seq\":\"0000000000000001\","
        "\"escalates\":\"AgAA\"}\n"
        "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,\"reward\":1,"
        "\"offered\":null,\"seq\":null,\"step\":null,"
        "\"escalates_seq\":null}\n";
    for (int off = 0; off < 2; off++) {
        olog_t *lg = olog_new();
        lg->fast_off = off;
        serr_t e = {0, ""};
        assert_int_equal(
            olog_load_jsonl_buffer(lg, text, strlen(text), "t.jsonl", &e), 0);
        const int *ids;
        size_t n;
        assert_true(olog_offered(lg, 0, &ids, &n));
        assert_int_equal(n, 3); /* A, B, and the model C joins */
        assert_string_equal(lg->action[ids[0]], "A");
        assert_string_equal(lg->action[ids[1]], "B");
        assert_string_equal(lg->action[ids[2]], "C");
        assert_true(lg->row_seq[0] == 0xfe && lg->row_parent[0] == 1);
        assert_int_equal(lg->row_step[0], 3);
        assert_false(olog_offered(lg, 1, &ids, &n));
        assert_true(lg->row_seq[1] == 0 && lg->row_parent[1] == 0);
        assert_int_equal(lg->row_step[1], -1);
        olog_destroy(&lg);
    }
    const char *row = "{\"bucket\":\"x\",\"model\":\"A\",\"propensity\":0.5,"
                      "\"reward\":1,";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\"step\":1.5}\n", row);
    expect_jsonl_error(buf, "log.jsonl:1: field 'step': 1.5 is not an integer");
    snprintf(buf, sizeof buf, "%s\"step\":256}\n", row);
    expect_jsonl_error(buf, "log.jsonl:1: field 'step': 256 is outside");
    snprintf(buf, sizeof buf, "%s\"offered\":\"A\"}\n", row);
    expect_jsonl_error(buf, "field 'offered': not an array of model names");
    snprintf(buf, sizeof buf, "%s\"offered\":[\"A\",\"\"]}\n", row);
    expect_jsonl_error(buf, "field 'offered[1]': not a non-empty string");
    snprintf(buf, sizeof buf, "%s\"seq\":\"12\"}\n", row);
    expect_jsonl_error(buf, "field 'seq': not a sequence id");
    snprintf(buf, sizeof buf, "%s\"escalates_seq\":7}\n", row);
    expect_jsonl_error(buf, "field 'escalates_seq': not a sequence id");
    int n = snprintf(buf, sizeof buf, "%s\"offered\":[", row);
    for (int i = 0; i < 65; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s\"m%d\"",
                      i ? "," : "", i);
    snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
    expect_jsonl_error(buf, "field 'offered': more than 64 models");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_by_hand),
        cmocka_unit_test(test_uniform_by_hand),
        cmocka_unit_test(test_buckets_json_dm),
        cmocka_unit_test(test_replay_static),
        cmocka_unit_test(test_replay_learning),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_jsonl_paths),
        cmocka_unit_test(test_jsonl_numbers),
        cmocka_unit_test(test_jsonl_fuzz_regressions),
        cmocka_unit_test(test_obd_reader),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cascade_by_hand),
        cmocka_unit_test(test_cascade_left_out),
        cmocka_unit_test(test_cascade_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
