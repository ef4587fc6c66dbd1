/*
 * test_ctl_admin.c - the operator's admin ops against the real bursard
 * (docs/protocol.md, "Admin operations"): adjust the ledger, reset an arm
 * to its prior, mark a model down and up, show one decision whole. Each
 * op's effect is read back from stats (or choose), each is in the admin
 * log (export "admin": true) with its reason, survives a restart, is
 * refused for clients without the operator role (CURVE keys, as
 * test_ctl_auth), and bad input is refused naming the field. The bursar
 * CLI's verbs are run against the same daemons.
 *
 * Each test starts its own daemon (tests/harness.h): ipc:// endpoint,
 * LMDB state in a fresh directory, --test-clock.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agents/keys.h"
#include "agents/proto.h"
#include "tests/harness.h"

#define MODELS                                                                 \
    "\"models\":{"                                                             \
    "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"                  \
    "\"price_out_per_mtok\":2},"                                               \
    "\"b\":{\"provider\":\"openai\",\"price_in_per_mtok\":3,"                  \
    "\"price_out_per_mtok\":4},"                                               \
    "\"c\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.5,"                \
    "\"price_out_per_mtok\":1}}"

/* code and other: the same prior and tokens, so that an arm of other that
 * was never chosen is how a new arm of code starts. capped: a budget of
 * its own. */
#define BUCKETS                                                                \
    "\"buckets\":{"                                                            \
    "\"code\":{\"models\":[\"a\",\"b\",\"c\"],\"prior\":{\"alpha\":2,"         \
    "\"beta\":3},\"expected_tokens_in\":1000,\"expected_tokens_out\":500},"    \
    "\"other\":{\"models\":[\"a\",\"b\"],\"prior\":{\"alpha\":2,"              \
    "\"beta\":3},\"expected_tokens_in\":1000,\"expected_tokens_out\":500},"    \
    "\"capped\":{\"models\":[\"a\",\"b\"],\"budget\":{\"limit_usd\":5,"        \
    "\"window_s\":1000000000}}}"

#define COMMON                                                                 \
    "\"budget\":{\"limit_usd\":100,\"window_s\":1000000000},"                  \
    "\"explore_floor\":0.3,\"decision_ttl_s\":600,"                            \
    "\"limits\":{\"client_inflight\":100000},"                                 \
    "\"policy\":{\"name\":\"ts-budget\",\"seed\":11}"

static const char *const config = "{" MODELS "," BUCKETS "," COMMON "}";

typedef th_fx_t fx_t;

static int
fx_setup(void **state)
{
    *state = th_fx_new(config);
    return 0;
}

static int
fx_teardown(void **state)
{
    th_fx_free(*state);
    return 0;
}

/* Stops and starts the daemon on the same state; a new client. */
static void
restart(fx_t *f)
{
    th_client_destroy(&f->c);
    assert_int_equal(th_stop(&f->d), 0);
    th_start(&f->d);
    f->c = th_client_new(f->d.endpoint);
}

/* An error reply of code whose message names needle (a field). */
static void
expect_err(th_client_t *c, const char *code, const char *needle,
           const char *req)
{
    cJSON *r = th_call(c, "%s", req);
    if (!r)
        fail_msg("no reply to %s", req);
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    const char *cd = cJSON_GetStringValue(cJSON_GetObjectItem(e, "code"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) || !cd ||
        strcmp(cd, code) != 0 || !msg || !strstr(msg, needle)) {
        char *s = cJSON_PrintUnformatted(r);
        fail_msg("%s: expected error %s naming %s, got %s", req, code, needle,
                 s);
    }
    cJSON_Delete(r);
}

static void
expect_close(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-9 * (1 + fabs(want))))
        fail_msg("%s: %.12g, want %.12g", what, got, want);
}

/* The global budget's spend, and bucket's (NAN: none). */
static double
spent(th_client_t *c, const char *bucket)
{
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *b = bucket
                         ? cJSON_GetObjectItem(th_bucket(s, bucket), "budget")
                         : cJSON_GetObjectItem(s, "budget");
    double v = cJSON_IsObject(b) ? th_num(b, "spent_usd") : NAN;
    cJSON_Delete(s);
    return v;
}

/* The admin log (export "admin": true), one page. */
static cJSON *
admin_log(th_client_t *c)
{
    return th_ok(c, "{\"op\":\"export\",\"admin\":true}");
}

/* Entry i of the admin log: its op and reason. */
static const cJSON *
entry(const cJSON *log, int i, const char *op, const char *reason)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(log, "admin"), i);
    if (!e)
        fail_msg("admin log: no entry %d", i);
    assert_string_equal(th_str(e, "kind"), "admin");
    assert_string_equal(th_str(e, "op"), op);
    assert_string_equal(th_str(e, "reason"), reason);
    return e;
}

/* A decision in bucket forced onto model (the others excluded), its
 * outcome reported with cost; returns nothing. */
static void
settle(th_client_t *c, const char *bucket, const char *model,
       const char *others, int success, double cost)
{
    cJSON *r =
        th_ok(c, "{\"op\":\"choose\",\"bucket\":\"%s\",\"exclude\":[%s]}",
              bucket, others);
    assert_string_equal(th_str(r, "model"), model);
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                       "\"outcome\",\"success\":%s,\"cost_usd\":%.17g}",
                       th_str(r, "decision_id"), success ? "true" : "false",
                       cost));
    cJSON_Delete(r);
}

/* ------------------------------------------------------------------ */
/* adjust                                                              */

static void
adjust_bad_input(th_client_t *c)
{
    expect_err(c, "missing_field", "\"reason\"",
               "{\"op\":\"adjust\",\"amount_usd\":1}");
    expect_err(c, "invalid_value", "\"reason\"",
               "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":\"\"}");
    expect_err(c, "invalid_value", "\"reason\"",
               "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":\"a\\nb\"}");
    expect_err(c, "wrong_type", "\"reason\"",
               "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":7}");
    char req[600];
    char x201[202];
    memset(x201, 'x', 201);
    x201[201] = '\0';
    snprintf(req, sizeof req,
             "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":\"%s\"}", x201);
    expect_err(c, "invalid_value", "\"reason\"", req);
    expect_err(c, "missing_field", "\"amount_usd\"",
               "{\"op\":\"adjust\",\"reason\":\"r\"}");
    expect_err(c, "wrong_type", "\"amount_usd\"",
               "{\"op\":\"adjust\",\"amount_usd\":\"1\",\"reason\":\"r\"}");
    expect_err(c, "invalid_value", "\"amount_usd\"",
               "{\"op\":\"adjust\",\"amount_usd\":1e12,\"reason\":\"r\"}");
    expect_err(c, "unknown_bucket", "\"bucket\"",
               "{\"op\":\"adjust\",\"amount_usd\":1,\"bucket\":\"nope\","
               "\"reason\":\"r\"}");
    expect_err(c, "invalid_value", "\"tenant\"",
               "{\"op\":\"adjust\",\"amount_usd\":1,\"tenant\":\"acme\","
               "\"reason\":\"r\"}");
}

static void
test_adjust(void **state)
{
    fx_t *f = *state;
    th_client_t *c = f->c;
    settle(c, "capped", "a", "\"b\"", 1, 0.4);
    expect_close(spent(c, NULL), 0.4, "global spend after the outcome");
    expect_close(spent(c, "capped"), 0.4, "capped's spend after the outcome");

    cJSON *r = th_ok(c, "{\"op\":\"adjust\",\"amount_usd\":-0.25,\"bucket\":"
                        "\"capped\",\"reason\":\"refund: wrong cost report\"}");
    expect_close(th_num(r, "spent_before_usd"), 0.4, "reply: before");
    expect_close(th_num(r, "spent_after_usd"), 0.15, "reply: after");
    expect_close(th_num(r, "bucket_spent_before_usd"), 0.4, "bucket before");
    expect_close(th_num(r, "bucket_spent_after_usd"), 0.15, "bucket after");
    cJSON_Delete(r);
    expect_close(spent(c, NULL), 0.15, "global spend adjusted");
    expect_close(spent(c, "capped"), 0.15, "capped's spend adjusted");

    cJSON_Delete(th_ok(c, "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":"
                          "\"an invoice outside bursar\"}"));
    expect_close(spent(c, NULL), 1.15, "global spend raised");
    expect_close(spent(c, "capped"), 0.15, "capped untouched without bucket");

    /* clipped at 0; a bucket without a cap of its own: the global only */
    r = th_ok(c, "{\"op\":\"adjust\",\"amount_usd\":-5,\"bucket\":\"code\","
                 "\"reason\":\"clip\"}");
    expect_close(th_num(r, "spent_after_usd"), 0, "clipped at 0");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "bucket_spent_after_usd")));
    cJSON_Delete(r);
    /* a reason of 200 characters of two bytes each is whole in the log */
    char req[1200], reason[401];
    for (int i = 0; i < 200; i++)
        memcpy(reason + 2 * i, "\xc3\xa9", 2);
    reason[400] = '\0';
    snprintf(req, sizeof req,
             "{\"op\":\"adjust\",\"amount_usd\":0.3,\"reason\":\"%s\"}",
             reason);
    cJSON_Delete(th_ok(c, "%s", req));
    expect_close(spent(c, NULL), 0.3, "global spend after the clip");

    adjust_bad_input(c);
    expect_close(spent(c, NULL), 0.3, "refused adjustments changed nothing");

    for (int pass = 0; pass < 2; pass++) { /* and after a restart */
        cJSON *log = admin_log(c);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(log, "admin")),
                         4);
        const cJSON *e = entry(log, 0, "adjust", "refund: wrong cost report");
        expect_close(th_num(e, "amount_usd"), -0.25, "log: amount");
        assert_string_equal(th_str(e, "bucket"), "capped");
        assert_string_equal(th_str(e, "client"), "");
        expect_close(th_num(e, "spent_after_usd"), 0.15, "log: after");
        entry(log, 1, "adjust", "an invoice outside bursar");
        entry(log, 2, "adjust", "clip");
        entry(log, 3, "adjust", reason);
        cJSON_Delete(log);
        expect_close(spent(c, NULL), 0.3, "global spend");
        expect_close(spent(c, "capped"), 0.15, "capped's spend");
        if (pass == 0)
            restart(f);
        c = f->c;
    }
    /* the decision log is unchanged: decisions only */
    r = th_ok(c, "{\"op\":\"export\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "decisions")),
                     1);
    assert_null(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(r, "decisions"), 0), "kind"));
    cJSON_Delete(r);
}

/* ------------------------------------------------------------------ */
/* reset                                                               */

/* The numbers of an arm that define where it stands. */
static void
expect_same_arm(const cJSON *got, const cJSON *want, const char *what)
{
    static const char *const keys[] = {
        "alpha",   "beta",          "alpha0",       "beta0",          "pulls",
        "rewards", "cost_mean_usd", "cost_reports", "latency_samples"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char w[80];
        snprintf(w, sizeof w, "%s: %s", what, keys[i]);
        expect_close(th_num(got, keys[i]), th_num(want, keys[i]), w);
    }
}

static void
test_reset(void **state)
{
    fx_t *f = *state;
    th_client_t *c = f->c;
    for (int i = 0; i < 10; i++)
        settle(c, "code", "a", "\"b\",\"c\"", 1, 0.01);
    for (int i = 0; i < 3; i++)
        settle(c, "code", "b", "\"a\",\"c\"", 0, 0.02);
    cJSON *s0 = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *a0 = th_arm(s0, "code", "a");
    expect_close(th_num(a0, "pulls"), 10, "a's pulls before");
    assert_true(th_num(a0, "alpha") > th_num(a0, "alpha0") + 5);

    cJSON *r = th_ok(c, "{\"op\":\"reset\",\"bucket\":\"code\",\"model\":"
                        "\"a\",\"reason\":\"provider swapped the model\"}");
    const cJSON *before = cJSON_GetObjectItem(r, "before");
    expect_close(th_num(before, "pulls"), 10, "reply: pulls before");
    expect_close(th_num(before, "alpha"), th_num(a0, "alpha"), "alpha before");
    expect_close(th_num(cJSON_GetObjectItem(r, "after"), "pulls"), 0,
                 "reply: pulls after");
    cJSON_Delete(r);

    for (int pass = 0; pass < 2; pass++) { /* and after a restart */
        cJSON *s1 = th_ok(c, "{\"op\":\"stats\"}");
        /* a of code as a of other, which was never chosen: a new arm */
        expect_same_arm(th_arm(s1, "code", "a"), th_arm(s1, "other", "a"),
                        "reset arm vs a new arm");
        expect_close(th_num(th_arm(s1, "code", "a"), "alpha"), 2, "prior a");
        expect_close(th_num(th_arm(s1, "code", "a"), "cost_mean_usd"),
                     (1000 * 1.0 + 500 * 2.0) / 1e6, "cost prior");
        /* b untouched */
        expect_same_arm(th_arm(s1, "code", "b"), th_arm(s0, "code", "b"), "b");
        cJSON_Delete(s1);
        cJSON *log = admin_log(c);
        const cJSON *e = entry(log, 0, "reset", "provider swapped the model");
        assert_string_equal(th_str(e, "bucket"), "code");
        assert_string_equal(th_str(e, "model"), "a");
        expect_close(th_num(cJSON_GetObjectItem(e, "before"), "pulls"), 10,
                     "log: pulls before");
        cJSON_Delete(log);
        if (pass == 0)
            restart(f);
        c = f->c;
    }
    cJSON_Delete(s0);

    expect_err(c, "unknown_bucket", "\"bucket\"",
               "{\"op\":\"reset\",\"bucket\":\"nope\",\"model\":\"a\","
               "\"reason\":\"r\"}");
    expect_err(c, "unknown_model", "\"model\"",
               "{\"op\":\"reset\",\"bucket\":\"code\",\"model\":\"zz\","
               "\"reason\":\"r\"}");
    expect_err(c, "unknown_model", "\"model\"", /* not of this bucket */
               "{\"op\":\"reset\",\"bucket\":\"other\",\"model\":\"c\","
               "\"reason\":\"r\"}");
    expect_err(c, "missing_field", "\"model\"",
               "{\"op\":\"reset\",\"bucket\":\"code\",\"reason\":\"r\"}");
    expect_err(c, "missing_field", "\"reason\"",
               "{\"op\":\"reset\",\"bucket\":\"code\",\"model\":\"b\"}");
    cJSON *log = admin_log(c);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(log, "admin")), 1);
    cJSON_Delete(log);
}

/* ------------------------------------------------------------------ */
/* mark                                                                */

/* How many of n chooses in code chose model (each settled at once);
 * fails when model is one of a decision's fallbacks while never_offered. */
static int
count_chosen(th_client_t *c, int n, const char *model, int never_offered)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        cJSON *r = th_ok(c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
        k += strcmp(th_str(r, "model"), model) == 0;
        const cJSON *fb;
        cJSON_ArrayForEach(fb, cJSON_GetObjectItem(r, "fallbacks"))
        {
            if (never_offered && strcmp(fb->valuestring, model) == 0)
                fail_msg("%s offered as a fallback while marked down", model);
        }
        cJSON_Delete(th_ok(c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"outcome\",\"success\":true}",
                           th_str(r, "decision_id")));
        cJSON_Delete(r);
    }
    return k;
}

/* b's health in stats and models: state, and the mark's reason or NULL. */
static void
expect_health(th_client_t *c, const char *model, const char *st,
              const char *reason)
{
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *h, *found = NULL;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(s, "health"))
    {
        if (strcmp(th_str(h, "model"), model) == 0)
            found = h;
    }
    assert_non_null(found);
    assert_string_equal(th_str(found, "state"), st);
    const cJSON *mk = cJSON_GetObjectItem(found, "marked_down");
    if (reason)
        assert_string_equal(th_str(mk, "reason"), reason);
    else
        assert_true(cJSON_IsNull(mk));
    assert_string_equal(th_str(th_arm(s, "code", model), "health"), st);
    cJSON_Delete(s);
    cJSON *m = th_ok(c, "{\"op\":\"models\"}");
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(m, "models"))
    {
        if (strcmp(th_str(h, "name"), model) == 0)
            assert_string_equal(th_str(h, "health"), st);
    }
    cJSON_Delete(m);
}

static void
test_mark(void **state)
{
    fx_t *f = *state;
    th_client_t *c = f->c;
    /* explore_floor 0.3 over 3 arms: b has at least 10% a choose, so the
     * 100 chooses before and after the mark choose it (fixed seed) */
    assert_true(count_chosen(c, 100, "b", 0) > 0);
    cJSON *r = th_ok(c, "{\"op\":\"mark\",\"model\":\"b\",\"state\":\"down\","
                        "\"reason\":\"outage at the provider\"}");
    assert_string_equal(th_str(r, "state"), "down");
    assert_string_equal(th_str(r, "was"), "up");
    cJSON_Delete(r);
    expect_health(c, "b", "down", "outage at the provider");
    assert_int_equal(count_chosen(c, 200, "b", 1), 0);
    restart(f);
    c = f->c;
    expect_health(c, "b", "down", "outage at the provider");
    assert_int_equal(count_chosen(c, 50, "b", 1), 0);

    /* every model of code down: the no-model error */
    cJSON_Delete(th_ok(c, "{\"op\":\"mark\",\"model\":\"a\",\"state\":"
                          "\"down\",\"reason\":\"r\"}"));
    cJSON_Delete(th_ok(c, "{\"op\":\"mark\",\"model\":\"c\",\"state\":"
                          "\"down\",\"reason\":\"r\"}"));
    expect_err(c, "no_model_available", "marked down",
               "{\"op\":\"choose\",\"bucket\":\"code\"}");
    cJSON_Delete(th_ok(c, "{\"op\":\"mark\",\"model\":\"a\",\"state\":"
                          "\"up\",\"reason\":\"r\"}"));
    cJSON_Delete(th_ok(c, "{\"op\":\"mark\",\"model\":\"c\",\"state\":"
                          "\"up\",\"reason\":\"r\"}"));
    r = th_ok(c, "{\"op\":\"mark\",\"model\":\"b\",\"state\":\"up\","
                 "\"reason\":\"the provider is back\"}");
    assert_string_equal(th_str(r, "was"), "down");
    cJSON_Delete(r);
    expect_health(c, "b", "ok", NULL);
    assert_true(count_chosen(c, 100, "b", 0) > 0);

    expect_err(c, "unknown_model", "\"model\"",
               "{\"op\":\"mark\",\"model\":\"zz\",\"state\":\"down\","
               "\"reason\":\"r\"}");
    expect_err(c, "invalid_value", "\"state\"",
               "{\"op\":\"mark\",\"model\":\"a\",\"state\":\"sideways\","
               "\"reason\":\"r\"}");
    expect_err(c, "missing_field", "\"state\"",
               "{\"op\":\"mark\",\"model\":\"a\",\"reason\":\"r\"}");
    expect_err(c, "missing_field", "\"reason\"",
               "{\"op\":\"mark\",\"model\":\"a\",\"state\":\"down\"}");
    expect_health(c, "a", "ok", NULL);

    cJSON *log = admin_log(c);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(log, "admin")), 6);
    const cJSON *e = entry(log, 0, "mark", "outage at the provider");
    assert_string_equal(th_str(e, "model"), "b");
    assert_string_equal(th_str(e, "state"), "down");
    e = entry(log, 5, "mark", "the provider is back");
    assert_string_equal(th_str(e, "state"), "up");
    assert_string_equal(th_str(e, "was"), "down");
    cJSON_Delete(log);
}

/* ------------------------------------------------------------------ */
/* show                                                                */

/* show of id: the decision object (the reply is kept in *reply). */
static const cJSON *
show(th_client_t *c, const char *id, cJSON **reply)
{
    *reply = th_ok(c, "{\"op\":\"show\",\"decision_id\":\"%s\"}", id);
    const cJSON *d = cJSON_GetObjectItem(*reply, "decision");
    assert_true(cJSON_IsObject(d));
    return d;
}

/* Every field of export's row is in show's, equal. */
static void
expect_row_in_show(const cJSON *row, const cJSON *d)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, row)
    {
        const cJSON *v = cJSON_GetObjectItem(d, it->string);
        if (!v || !cJSON_Compare(it, v, 1))
            fail_msg("show's \"%s\" differs from export's", it->string);
    }
}

static void
check_parent(const cJSON *d, const cJSON *ch, const char *fallback,
             const char *child_seq)
{
    assert_string_equal(th_str(d, "bucket"), "code");
    assert_string_equal(th_str(d, "tenant"), "acme");
    assert_string_equal(th_str(d, "model"), th_str(ch, "model"));
    expect_close(th_num(d, "propensity"), th_num(ch, "propensity"), "prop");
    expect_close(th_num(d, "expected_cost_usd"),
                 th_num(ch, "expected_cost_usd"), "expected cost");
    int n_off = cJSON_GetArraySize(cJSON_GetObjectItem(d, "offered"));
    assert_int_equal(
        n_off, 1 + cJSON_GetArraySize(cJSON_GetObjectItem(ch, "fallbacks")));
    assert_string_equal(th_str(d, "status"), "done");
    expect_close(th_num(d, "outcome"), 0.75, "outcome");
    expect_close(th_num(d, "reward_reported"), 0.75, "reward reported");
    expect_close(th_num(d, "reward"), 0, "reward after the correction");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "corrected")));
    expect_close(th_num(d, "cost_usd"), 0.003, "cost");
    assert_string_equal(th_str(d, "cost_source"), "reported");
    expect_close(th_num(d, "tokens_in"), 1200, "tokens in");
    expect_close(th_num(d, "tokens_out"), 300, "tokens out");
    expect_close(th_num(d, "latency_ms"), 420, "latency");
    assert_string_equal(th_str(d, "served_model"), fallback);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "provider_error")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "settled")));
    expect_close(th_num(d, "expires_at"), th_num(d, "time") + 600, "expiry");
    const cJSON *kids = cJSON_GetObjectItem(d, "children");
    assert_int_equal(cJSON_GetArraySize(kids), 1);
    assert_string_equal(th_str(cJSON_GetArrayItem(kids, 0), "seq"), child_seq);
    expect_close(th_num(cJSON_GetArrayItem(kids, 0), "step"), 1, "step");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "children_complete")));
}

static void
test_show(void **state)
{
    fx_t *f = *state;
    th_client_t *c = f->c;
    cJSON *p = th_ok(c, "{\"op\":\"choose\",\"bucket\":\"code\",\"tenant\":"
                        "\"acme\"}");
    const char *ptok = th_str(p, "decision_id");
    const char *fallback =
        cJSON_GetArrayItem(cJSON_GetObjectItem(p, "fallbacks"), 0)->valuestring;
    cJSON *k = th_ok(c,
                     "{\"op\":\"choose\",\"bucket\":\"code\",\"escalates\":"
                     "\"%s\"}",
                     ptok);
    const char *ktok = th_str(k, "decision_id");
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                       "\"outcome\",\"reward\":0.75,\"cost_usd\":0.003,"
                       "\"tokens_in\":1200,\"tokens_out\":300,\"latency_ms\":"
                       "420,\"model\":\"%s\"}",
                       ptok, fallback));
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                       "\"correction\"}",
                       ptok));
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                       "\"provider_error\",\"error\":\"HTTP 503\"}",
                       ktok));
    cJSON *ex = th_ok(c, "{\"op\":\"export\"}");
    const cJSON *rows = cJSON_GetObjectItem(ex, "decisions");
    const cJSON *prow = cJSON_GetArrayItem(rows, 0);
    const cJSON *krow = cJSON_GetArrayItem(rows, 1);
    assert_string_equal(th_str(prow, "decision_id"), ptok);

    cJSON *r1, *r2, *r3;
    const cJSON *d = show(c, ptok, &r1);
    check_parent(d, p, fallback, th_str(krow, "seq"));
    expect_row_in_show(prow, d);
    /* by its sequence id: the same */
    const cJSON *d2 = show(c, th_str(prow, "seq"), &r2);
    assert_true(cJSON_Compare(d, d2, 1));
    /* the child: its parent, its provider error */
    const cJSON *dk = show(c, ktok, &r3);
    expect_row_in_show(krow, dk);
    assert_string_equal(th_str(dk, "escalates"), ptok);
    assert_string_equal(th_str(dk, "escalates_seq"), th_str(prow, "seq"));
    expect_close(th_num(dk, "step"), 1, "child's step");
    assert_string_equal(th_str(dk, "provider_error"), "HTTP 503");
    assert_string_equal(th_str(dk, "status"), "pending");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(dk, "children")),
                     0);
    cJSON_Delete(r1);
    cJSON_Delete(r2);
    cJSON_Delete(r3);

    expect_err(c, "unknown_decision", "\"decision_id\"",
               "{\"op\":\"show\",\"decision_id\":\"zzz\"}");
    expect_err(c, "unknown_decision", "\"decision_id\"",
               "{\"op\":\"show\",\"decision_id\":\"00000000000000ff\"}");
    expect_err(c, "wrong_type", "\"decision_id\"",
               "{\"op\":\"show\",\"decision_id\":5}");
    expect_err(c, "missing_field", "\"decision_id\"", "{\"op\":\"show\"}");
    expect_err(c, "invalid_value", "\"decision_id\"",
               "{\"op\":\"show\",\"decision_id\":\"a b\"}");
    cJSON_Delete(ex);
    cJSON_Delete(k);
    cJSON_Delete(p);
}

/* ------------------------------------------------------------------ */
/* The CLI                                                             */

/* Runs bursar ARGS against f's daemon (stderr into the output too);
 * returns its exit status, the output in out. */
static int
cli(fx_t *f, char *out, size_t cap, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --controller %s %s 2>&1", th_need("bursar"),
             f->d.endpoint, args);
    return th_run(cmd, out, cap);
}

static void
expect_cli(fx_t *f, const char *args, int status, const char *needle)
{
    char out[16384];
    int st = cli(f, out, sizeof out, args);
    if (st != status || !strstr(out, needle))
        fail_msg("bursar %s: exit %d (want %d), output without \"%s\":\n%s",
                 args, st, status, needle, out);
}

static void
test_cli(void **state)
{
    fx_t *f = *state;
    settle(f->c, "capped", "a", "\"b\"", 1, 0.4);
    expect_cli(f, "adjust --amount -0.1 --bucket capped --reason 'cli refund'",
               0, "budget: spent $0.4000 -> $0.3000");
    expect_cli(f, "adjust --amount -0.1 --bucket capped --reason 'cli refund'",
               0, "bucket capped's budget: spent $0.3000 -> $0.2000");
    expect_close(spent(f->c, NULL), 0.2, "spend after two CLI adjustments");
    expect_cli(f, "adjust --amount 1", 2, "--reason TEXT is required");
    expect_cli(f, "adjust --reason r", 2, "--amount USD is required");
    expect_cli(f, "adjust --amount 1 --reason ''", 2, "1 to 200 characters");
    expect_cli(f, "reset-arm --bucket capped --model a --reason swapped", 0,
               "arm capped/a reset to its prior");
    expect_cli(f, "reset-arm --bucket capped --model zz --reason x", 1,
               "unknown_model");
    expect_cli(f, "reset-arm --bucket capped --reason x", 2, "--model M");
    expect_cli(f, "mark-down b --reason outage", 0,
               "model b marked down (was up)");
    expect_cli(f, "stats --bucket capped", 0, "down (marked by an operator)");
    expect_cli(f, "mark-down --reason outage", 2, "give one MODEL");
    expect_cli(f, "mark-up b --reason back", 0, "model b marked up (was down)");
    expect_cli(f, "mark-up b", 2, "--reason TEXT is required");
    expect_cli(f, "export --admin", 0, "\"reason\":\"outage\"");
    expect_cli(f, "export", 0, "bursar export --admin lists them");
    expect_cli(f, "show 0000000000000001", 0,
               "cost_source              reported");
    expect_cli(f, "show 0000000000000001", 0, "status                   done");
    expect_cli(f, "show 0000000000000001 --json", 0,
               "\"cost_source\":\t\"reported\"");
    expect_cli(f, "show 00000000000000ff", 1, "unknown_decision");
    expect_cli(f, "show", 2, "give one decision");

    char out[16384];
    assert_int_equal(cli(f, out, sizeof out, "export --admin"), 0);
    int lines = 0;
    for (const char *s = out; (s = strstr(s, "\"kind\":\"admin\"")); s++)
        lines++;
    assert_int_equal(lines, 5); /* 2 adjust, reset, mark-down, mark-up */
    assert_int_equal(cli(f, out, sizeof out, "export 2>/dev/null"), 0);
    assert_null(strstr(out, "\"kind\":\"admin\""));
}

/* ------------------------------------------------------------------ */
/* The codec: the client's requests parse back; reasons                */

static void
parse_ok(char *q, proto_request_t *rq)
{
    proto_error_t e;
    if (proto_parse_request(q, strlen(q), rq, &e) != PROTO_OK)
        fail_msg("%s: %s", q, e.message);
    free(q);
}

static void
test_codec(void **state)
{
    (void)state;
    proto_request_t rq;
    parse_ok(proto_format_adjust(-1.25, "code", NULL, "refund \"x\""), &rq);
    assert_int_equal(rq.op, PROTO_OP_ADJUST);
    assert_true(rq.amount_usd == -1.25);
    assert_string_equal(rq.bucket, "code");
    assert_string_equal(rq.tenant, "");
    assert_string_equal(rq.reason, "refund \"x\"");
    parse_ok(proto_format_adjust(2, NULL, "acme", "r"), &rq);
    assert_string_equal(rq.bucket, "");
    assert_string_equal(rq.tenant, "acme");
    parse_ok(proto_format_reset("code", "a", "swap"), &rq);
    assert_int_equal(rq.op, PROTO_OP_RESET);
    assert_string_equal(rq.model, "a");
    parse_ok(proto_format_mark("b", 1, "down"), &rq);
    assert_int_equal(rq.op, PROTO_OP_MARK);
    assert_int_equal(rq.mark_down, 1);
    parse_ok(proto_format_mark("b", 0, "up"), &rq);
    assert_int_equal(rq.mark_down, 0);
    parse_ok(proto_format_show("00000000000003e9"), &rq);
    assert_int_equal(rq.op, PROTO_OP_SHOW);
    assert_string_equal(rq.show_id, "00000000000003e9");
    parse_ok(proto_format_export_admin(100, 1, 7, 10), &rq);
    assert_int_equal(rq.op, PROTO_OP_EXPORT);
    assert_int_equal(rq.export_admin, 1);
    assert_true(rq.since == 100 && rq.has_after && rq.after == 7);
    assert_int_equal(rq.limit, 10);
    parse_ok(proto_format_export(-INFINITY, 0, 0, 10), &rq);
    assert_int_equal(rq.export_admin, 0);
    static const char *const names[] = {"adjust", "reset", "mark", "show"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(proto_op_name((proto_op_t)(PROTO_OP_ADJUST + i)),
                            names[i]);

    char r[1024];
    memset(r, 'x', 200);
    r[200] = '\0';
    assert_true(proto_reason_valid(r));
    r[200] = 'x';
    r[201] = '\0';
    assert_false(proto_reason_valid(r));
    for (int i = 0; i < 200; i++) /* 200 characters of 4 bytes */
        memcpy(r + 4 * i, "\xf0\x9f\x92\xb8", 4);
    r[800] = '\0';
    assert_true(proto_reason_valid(r));
    assert_false(proto_reason_valid(""));
    assert_false(proto_reason_valid("a\x01"));
    assert_false(proto_reason_valid("a\x7f"));
    assert_false(proto_reason_valid("a\xc2\x85")); /* C1: NEL */
    assert_false(proto_reason_valid("a\xff"));     /* not UTF-8 */
    assert_false(proto_reason_valid("a\xc3"));     /* cut short */
    assert_true(proto_reason_valid("caf\xc3\xa9 \xc2\xa0ok"));
}

/* ------------------------------------------------------------------ */
/* Roles (CURVE)                                                       */

enum { K_SERVER, K_AGENT, K_FEEDBACK, K_OPS, K_N };
static const char *const key_names[K_N] = {"server", "agent", "fbk", "ops"};

typedef struct keys {
    char dir[512];
    char sec[K_N][41], pub[K_N][41];
} keys_t;

static void
keys_make(keys_t *k)
{
    snprintf(k->dir, sizeof k->dir, "/tmp/bursar-admin-XXXXXX");
    assert_non_null(mkdtemp(k->dir));
    char path[700], err[600], lines[2048] = "";
    for (int i = 0; i < K_N; i++) {
        snprintf(path, sizeof path, "%s/%s", k->dir, key_names[i]);
        if (bursar_key_write_pair(path, k->pub[i], err, sizeof err) != 0)
            fail_msg("%s", err);
        strcat(path, ".key");
        if (bursar_key_load(path, 1, k->sec[i], err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    snprintf(lines, sizeof lines,
             "%s agent agent\n%s fbk feedback\n%s ops "
             "operator\n",
             k->pub[K_AGENT], k->pub[K_FEEDBACK], k->pub[K_OPS]);
    snprintf(path, sizeof path, "%s/clients", k->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(lines, fp);
    fclose(fp);
}

static th_client_t *
keyed(const keys_t *k, const th_daemon_t *d, int who)
{
    th_curve(k->sec[who], k->pub[K_SERVER]);
    th_client_t *c = th_client_new(d->endpoint);
    th_curve(NULL, NULL);
    return c;
}

static const char *const admin_reqs[] = {
    "{\"op\":\"adjust\",\"amount_usd\":1,\"reason\":\"r\"}",
    "{\"op\":\"reset\",\"bucket\":\"code\",\"model\":\"a\",\"reason\":\"r\"}",
    "{\"op\":\"mark\",\"model\":\"b\",\"state\":\"down\",\"reason\":\"r\"}",
    "{\"op\":\"show\",\"decision_id\":\"0000000000000001\"}",
    "{\"op\":\"export\",\"admin\":true}"};

static void
test_roles(void **state)
{
    (void)state;
    keys_t k;
    keys_make(&k);
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{" MODELS "," BUCKETS "," COMMON
             ",\"curve\":{\"secret_key_file\":\"%s/server.key\","
             "\"clients_file\":\"%s/clients\"}}",
             k.dir, k.dir);
    th_daemon_t d;
    th_setup(&d, cfg);
    th_curve(k.sec[K_OPS], k.pub[K_SERVER]); /* th_start pings as ops */
    th_start(&d);
    th_curve(NULL, NULL);
    th_client_t *agent = keyed(&k, &d, K_AGENT);
    th_client_t *fbk = keyed(&k, &d, K_FEEDBACK);
    th_client_t *ops = keyed(&k, &d, K_OPS);
    cJSON_Delete(th_ok(agent, "{\"op\":\"choose\",\"bucket\":\"code\"}"));
    for (size_t i = 0; i < sizeof admin_reqs / sizeof admin_reqs[0]; i++) {
        expect_err(agent, "forbidden", "operator", admin_reqs[i]);
        expect_err(fbk, "forbidden", "operator", admin_reqs[i]);
    }
    expect_close(spent(ops, NULL), 0, "refused adjust changed nothing");
    for (size_t i = 0; i < sizeof admin_reqs / sizeof admin_reqs[0]; i++)
        cJSON_Delete(th_ok(ops, "%s", admin_reqs[i]));
    expect_close(spent(ops, NULL), 1, "the operator's adjust");
    cJSON *log = admin_log(ops);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(log, "admin")), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(
            th_str(cJSON_GetArrayItem(cJSON_GetObjectItem(log, "admin"), i),
                   "client"),
            "ops");
    cJSON_Delete(log);

    /* the CLI with the operator's key, and with the agent's */
    char cmd[3000], out[8192];
    snprintf(cmd, sizeof cmd,
             "%s --controller %s --key %s/ops.key --server-key %s/server.pub "
             "mark-up b --reason back 2>&1",
             th_need("bursar"), d.endpoint, k.dir, k.dir);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "by client \"ops\""));
    snprintf(cmd, sizeof cmd,
             "%s --controller %s --key %s/agent.key --server-key "
             "%s/server.pub mark-down b --reason x 2>&1",
             th_need("bursar"), d.endpoint, k.dir, k.dir);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "forbidden"));

    th_client_destroy(&agent);
    th_client_destroy(&fbk);
    th_client_destroy(&ops);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", k.dir);
    assert_int_equal(system(cmd), 0);
}

static int
group_teardown(void **state)
{
    (void)state;
    th_kill_all();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adjust, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reset, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_mark, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_show, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli, fx_setup, fx_teardown),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
