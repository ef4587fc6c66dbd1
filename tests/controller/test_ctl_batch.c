/*
 * test_ctl_batch.c - op batch and budget.when_exhausted against the real
 * bursard (ipc://, LMDB in a temporary directory, a test clock that moves
 * only by the clock op, starting at a window's start).
 *
 *  - a batch: declared (its share = remaining x N / (E + N), E = 100
 *    expected + 2 sqrt(100) margin), held aside (the window's remaining
 *    drops by it), chosen against; an unknown or malformed id, a wrong
 *    bucket, a bad size refused naming the field; the batch survives a
 *    restart; complete after N chooses (then refused), its unspent share
 *    returned; `bursar batch` declares one, `bursar choose --batch`
 *    chooses in it;
 *  - when_exhausted refuse: budget_exhausted (naming the budget, its limit
 *    and the window's end), nothing recorded; the same for a bucket's own
 *    cap; serve_cheapest: the cheapest model, over_budget, as before.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/harness.h"

#define CLOCK "--test-clock=1767225600" /* 2026-01-01T00:00:00Z */

/* strong: 0.01 + 0.015 = 0.025 USD a request; cheap: 0.00025 */
#define MODELS                                                                 \
    "{\"models\":{"                                                            \
    "\"strong\":{\"provider\":\"openai\",\"price_in_per_mtok\":10,"            \
    "\"price_out_per_mtok\":30},"                                              \
    "\"cheap\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.1,"            \
    "\"price_out_per_mtok\":0.3}},"

static const char *const config_batch =
    MODELS "\"buckets\":{\"code\":{\"models\":[\"strong\",\"cheap\"],"
           "\"expected_tokens_in\":1000,\"expected_tokens_out\":500},"
           "\"chat\":{\"models\":[\"cheap\"]}},"
           "\"budget\":{\"limit_usd\":1,\"window_s\":86400,"
           "\"expected_requests\":100,\"max_batches\":2}}";

static double
budget_num(th_client_t *c, const char *key)
{
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    double v = th_num(cJSON_GetObjectItem(s, "budget"), key);
    cJSON_Delete(s);
    return v;
}

/* The error reply of a request: its code is code and its message holds
 * must. */
static void
expect_error_naming(th_client_t *c, const char *req, const char *code,
                    const char *must)
{
    cJSON *r = th_call(c, "%s", req);
    assert_non_null(r);
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    assert_non_null(e);
    const char *got = th_str(e, "code"), *msg = th_str(e, "message");
    if (strcmp(got, code) != 0 || !strstr(msg, must))
        fail_msg("%s: expected %s naming %s, got %s: %s", req, code, must, got,
                 msg);
    cJSON_Delete(r);
}

static cJSON *
choose_in(th_client_t *c, const char *batch)
{
    return th_ok(c, "{\"op\":\"choose\",\"bucket\":\"code\",\"batch\":\"%s\"}",
                 batch);
}

static void
test_batch_end_to_end(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config_batch);
    th_start_args(&d, CLOCK);
    th_client_t *c = th_client_new(d.endpoint);
    cJSON *r = th_ok(c, "{\"op\":\"batch\",\"bucket\":\"code\",\"size\":10}");
    char id[32];
    snprintf(id, sizeof id, "%s", th_str(r, "batch"));
    assert_int_equal(strlen(id), 16);
    double share = th_num(r, "share_usd");
    /* 1 x 10 / (100 + 2 sqrt(100) + 10) */
    assert_true(fabs(share - 10.0 / 130.0) < 1e-9);
    assert_true(fabs(th_num(r, "target_usd") - share / 10) < 1e-9);
    cJSON_Delete(r);
    /* held aside: other traffic sees what is left without it */
    assert_true(fabs(budget_num(c, "remaining_usd") - (1 - share)) < 1e-9);
    assert_true(fabs(budget_num(c, "held_usd") - share) < 1e-9);

    double spent = 0;
    r = choose_in(c, id);
    spent += th_num(r, "expected_cost_usd");
    cJSON_Delete(r);
    /* refused, naming the field */
    expect_error_naming(c,
                        "{\"op\":\"choose\",\"bucket\":\"code\","
                        "\"batch\":\"0000000000000001\"}",
                        "invalid_value", "\"batch\"");
    expect_error_naming(c,
                        "{\"op\":\"choose\",\"bucket\":\"code\","
                        "\"batch\":\"xyz\"}",
                        "invalid_value", "\"batch\"");
    char req[160];
    snprintf(req, sizeof req,
             "{\"op\":\"choose\",\"bucket\":\"chat\",\"batch\":\"%s\"}", id);
    expect_error_naming(c, req, "invalid_value", "bucket \"code\"");
    expect_error_naming(c, "{\"op\":\"batch\",\"bucket\":\"code\",\"size\":0}",
                        "invalid_value", "\"size\"");
    expect_error_naming(c, "{\"op\":\"batch\",\"bucket\":\"code\"}",
                        "missing_field", "\"size\"");
    expect_error_naming(c, "{\"op\":\"batch\",\"bucket\":\"nope\",\"size\":3}",
                        "unknown_bucket", "\"bucket\"");
    /* the limit: budget.max_batches = 2 (one open) */
    r = th_ok(c, "{\"op\":\"batch\",\"bucket\":\"chat\",\"size\":1000}");
    double share2 = th_num(r, "share_usd");
    cJSON_Delete(r);
    expect_error_naming(c, "{\"op\":\"batch\",\"bucket\":\"code\",\"size\":3}",
                        "invalid_value", "budget.max_batches");

    /* a restart keeps the batch and its share */
    double held = budget_num(c, "held_usd");
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_start_args(&d, CLOCK);
    c = th_client_new(d.endpoint);
    assert_true(fabs(budget_num(c, "held_usd") - held) < 1e-12);
    for (int i = 1; i < 10; i++) {
        r = choose_in(c, id);
        spent += th_num(r, "expected_cost_usd");
        assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
        cJSON_Delete(r);
    }
    assert_true(spent <= share + 1e-12);
    /* complete: refused, and its share no longer held (the other batch's
     * is) */
    snprintf(req, sizeof req,
             "{\"op\":\"choose\",\"bucket\":\"code\",\"batch\":\"%s\"}", id);
    expect_error_naming(c, req, "invalid_value", "no open batch");
    assert_true(fabs(budget_num(c, "held_usd") - share2) < 1e-9);
    th_client_destroy(&c);

    /* the CLI */
    char cmd[1600], out[4096];
    /* in words: the id to give each choose, the share, the target */
    snprintf(cmd, sizeof cmd,
             "%s --controller %s batch --bucket code --size 5 2>&1 || true",
             th_need("bursar"), d.endpoint);
    th_run(cmd, out, sizeof out);
    char bid[17] = ""; /* 16 hex digits (PROTO_BATCH_LEN) */
    double words_share = -1;
    const char *sh = strstr(out, "share:");
    if (sscanf(out, "batch: %16s", bid) != 1 || strlen(bid) != 16 ||
        !strstr(out, "--batch ") || !sh ||
        sscanf(sh, "share: $%lf", &words_share) != 1 || !(words_share > 0))
        fail_msg("bursar batch, in words: %s", out);
    /* the share held shows in the budget line of bursar stats */
    snprintf(cmd, sizeof cmd, "%s --controller %s stats 2>&1 || true",
             th_need("bursar"), d.endpoint);
    th_run(cmd, out, sizeof out);
    if (!strstr(out, " + held for batches $"))
        fail_msg("bursar stats does not show the held share: %s", out);
    snprintf(cmd, sizeof cmd,
             "%s --controller %s choose code --batch %s --json 2>&1 || true",
             th_need("bursar"), d.endpoint, bid);
    th_run(cmd, out, sizeof out);
    cJSON *j = cJSON_Parse(out);
    if (!j)
        fail_msg("bursar choose --batch --json: not JSON: %s", out);
    assert_non_null(cJSON_GetObjectItem(j, "decision_id"));
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd,
             "%s --controller %s choose code --batch xyz 2>&1; echo rc=$?",
             th_need("bursar"), d.endpoint);
    th_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "--batch"));
    assert_non_null(strstr(out, "rc=2"));
    snprintf(cmd, sizeof cmd,
             "%s --controller %s batch --bucket code --size 0 2>&1; echo "
             "rc=$?",
             th_need("bursar"), d.endpoint);
    th_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "rc=2"));
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

/* A budget below the cheapest model's cost: refused or served cheapest. */
static void
exhausted_case_for(const char *budget, const char *bucket_budget,
                   const char *tenants, int refuse, const char *names)
{
    char cfg[1500], req[200];
    snprintf(cfg, sizeof cfg,
             MODELS "\"buckets\":{\"code\":{\"models\":[\"strong\",\"cheap\"],"
                    "\"expected_tokens_in\":1000,\"expected_tokens_out\":500"
                    "%s}},\"budget\":%s%s}",
             bucket_budget, budget, tenants ? tenants : "");
    snprintf(req, sizeof req, "{\"op\":\"choose\",\"bucket\":\"code\"%s}",
             tenants ? ",\"tenant\":\"zed\"" : "");
    th_daemon_t d;
    th_setup(&d, cfg);
    th_start_args(&d, CLOCK);
    th_client_t *c = th_client_new(d.endpoint);
    if (refuse) {
        expect_error_naming(c, req, "budget_exhausted", names);
        expect_error_naming(c, req, "budget_exhausted", "2026-01-02T00:00:00Z");
        /* nothing recorded */
        cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
        assert_true(th_num(s, "decisions") == 0);
        assert_true(th_num(cJSON_GetObjectItem(s, "budget"), "requests") == 0);
        cJSON_Delete(s);
        cJSON *e = th_ok(c, "{\"op\":\"export\"}");
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(e, "decisions")), 0);
        cJSON_Delete(e);
    } else {
        cJSON *r = th_ok(c, "%s", req);
        assert_string_equal(th_str(r, "model"), "cheap");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
        cJSON_Delete(r);
    }
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

static void
exhausted_case(const char *budget, const char *bucket_budget, int refuse,
               const char *names)
{
    exhausted_case_for(budget, bucket_budget, NULL, refuse, names);
}

static void
test_when_exhausted(void **state)
{
    (void)state;
    exhausted_case("{\"limit_usd\":0.0001,\"when_exhausted\":\"refuse\"}", "",
                   1, "budget.limit_usd");
    exhausted_case("{\"limit_usd\":0.0001}", "", 0, NULL);
    exhausted_case(
        "{\"limit_usd\":0.0001,\"when_exhausted\":\"serve_cheapest\"}", "", 0,
        NULL);
    exhausted_case("{\"limit_usd\":10}",
                   ",\"budget\":{\"limit_usd\":0.0001,"
                   "\"when_exhausted\":\"refuse\"}",
                   1, "bucket \"code\"");
    exhausted_case("{\"limit_usd\":10,\"when_exhausted\":\"refuse\"}",
                   ",\"budget\":{\"limit_usd\":0.0001}", 0, NULL);
    /* a spent tenant that serves the cheapest is served so, though the
     * global budget (which has room) says refuse */
    exhausted_case_for("{\"limit_usd\":10,\"when_exhausted\":\"refuse\"}", "",
                       ",\"tenants\":{\"*\":{\"budget\":{\"limit_usd\":"
                       "0.0001}}}",
                       0, NULL);
    exhausted_case_for("{\"limit_usd\":10}", "",
                       ",\"tenants\":{\"*\":{\"budget\":{\"limit_usd\":"
                       "0.0001,\"when_exhausted\":\"refuse\"}}}",
                       1, "tenant \"zed\"");
}

/* A refusing cap is never exceeded, even once the global budget (which
 * serves the cheapest) is spent by another bucket and binds tighter. */
static void
test_refusing_cap_holds(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d,
             MODELS "\"buckets\":{\"code\":{\"models\":[\"strong\",\"cheap\"],"
                    "\"expected_tokens_in\":1000,\"expected_tokens_out\":500,"
                    "\"budget\":{\"limit_usd\":0.0003,\"when_exhausted\":"
                    "\"refuse\"}},\"chat\":{\"models\":[\"cheap\"],"
                    "\"expected_tokens_in\":1000,\"expected_tokens_out\":500}},"
                    "\"budget\":{\"limit_usd\":0.0004}}");
    th_start_args(&d, CLOCK);
    th_client_t *c = th_client_new(d.endpoint);
    /* chat spends 0.00025 of the global 0.0004 */
    cJSON_Delete(th_ok(c, "{\"op\":\"choose\",\"bucket\":\"chat\"}"));
    /* code: its cap can pay the cheapest (0.00025 of 0.0003), the global
     * one cannot: served, over_budget */
    cJSON *r = th_ok(c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    assert_string_equal(th_str(r, "model"), "cheap");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    cJSON_Delete(r);
    /* now the cap cannot either, and it refuses: refused, though the
     * global budget (tighter, serve_cheapest) would serve */
    expect_error_naming(c, "{\"op\":\"choose\",\"bucket\":\"code\"}",
                        "budget_exhausted", "bucket \"code\"");
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "buckets"), 0);
    const cJSON *bb = cJSON_GetObjectItem(b, "budget");
    assert_true(th_num(bb, "reserved_usd") + th_num(bb, "spent_usd") <=
                0.0003 + 1e-12);
    cJSON_Delete(s);
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

/* A tenant without expected_requests of its own: the global expectation's
 * rate (budget.expected_requests, 100 a day), not the 1/s default. */
static void
test_tenant_expected_default(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, MODELS
             "\"buckets\":{\"code\":{\"models\":[\"strong\",\"cheap\"]}},"
             "\"budget\":{\"limit_usd\":5,\"expected_requests\":100},"
             "\"tenants\":{\"acme\":{\"budget\":{\"limit_usd\":2}}}}");
    th_start_args(&d, CLOCK); /* midnight: the whole day ahead */
    th_client_t *c = th_client_new(d.endpoint);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "tenants"), 0);
    assert_non_null(t);
    assert_string_equal(th_str(t, "tenant"), "acme");
    /* 2 USD over the 100 requests and the margin 2 sqrt(100) */
    if (fabs(th_num(t, "target_usd") - 2.0 / 120.0) > 1e-9)
        fail_msg("tenant target %g, want %g", th_num(t, "target_usd"),
                 2.0 / 120.0);
    cJSON_Delete(s);
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_end_to_end),
        cmocka_unit_test(test_when_exhausted),
        cmocka_unit_test(test_tenant_expected_default),
        cmocka_unit_test(test_refusing_cap_holds),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_kill_all();
    return rc;
}
