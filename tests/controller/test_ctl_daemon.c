/*
 * test_ctl_daemon.c - integration tests against the real bursard: the
 * protocol, every error code, idempotent and amended feedback, cooldown,
 * expiry, budget reservation, latency objective, configuration reload,
 * restart with identical state, DEALER pipelining, the bursar CLI, a
 * choose's tenant in export.
 *
 * Each test starts its own daemon on ipc://TMPDIR/sock with its LMDB
 * state in TMPDIR/state and --test-clock, so expiry and cooldown are
 * tested by advancing the clock ({"op":"clock"}) rather than sleeping.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <zmq.h>

#include "agents/proto.h"
#include "tests/harness.h"

#define MODELS                                                                 \
    "\"models\":{"                                                             \
    "\"a\":{\"provider\":\"openai\",\"model\":\"a-1\",\"base_url\":"           \
    "\"http://localhost:9/v1\",\"api_key_env\":\"A_KEY\","                     \
    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"                       \
    "\"b\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":10,"              \
    "\"price_out_per_mtok\":20},"                                              \
    "\"c\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.1,"                \
    "\"price_out_per_mtok\":0.2},"                                             \
    "\"d\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.5,"                \
    "\"price_out_per_mtok\":0.5}}"

#define COMMON                                                                 \
    "\"budget\":{\"limit_usd\":100,\"window_s\":1000000000},"                  \
    "\"explore_floor\":0.05,\"decision_ttl_s\":60,"                            \
    "\"health\":{\"failures\":2,\"cooldown_s\":10,\"max_cooldown_s\":100},"    \
    "\"latency\":{\"window_s\":60,\"min_samples\":3},"                         \
    "\"limits\":{\"max_message_bytes\":4096,\"max_tokens_in\":1e7},"           \
    "\"policy\":{\"name\":\"ts-budget\",\"seed\":7}"

static const char *const config_main =
    "{" MODELS ",\"buckets\":{"
    "\"code\":{\"models\":[\"a\",\"b\",\"c\"],\"expected_tokens_in\":1000,"
    "\"expected_tokens_out\":500},"
    "\"fast\":{\"models\":[\"a\",\"c\"],\"latency_slo_ms\":100},"
    "\"capped\":{\"models\":[\"a\",\"b\"],\"expected_tokens_in\":1000,"
    "\"expected_tokens_out\":500,\"budget\":{\"limit_usd\":1,"
    "\"window_s\":1000000000}}}," COMMON "}";

/* Same with d added to code, c removed from it, a new bucket. */
static const char *const config_changed =
    "{" MODELS ",\"buckets\":{"
    "\"code\":{\"models\":[\"a\",\"b\",\"d\"],\"expected_tokens_in\":1000,"
    "\"expected_tokens_out\":500},"
    "\"fast\":{\"models\":[\"a\",\"c\"],\"latency_slo_ms\":100},"
    "\"new\":{\"models\":[\"c\",\"d\"]},"
    "\"capped\":{\"models\":[\"a\",\"b\"],\"expected_tokens_in\":1000,"
    "\"expected_tokens_out\":500,\"budget\":{\"limit_usd\":1,"
    "\"window_s\":1000000000}}}," COMMON "}";

typedef th_fx_t fx_t;

static int
fx_setup(void **state)
{
    *state = th_fx_new(config_main);
    return 0;
}

static int
fx_teardown(void **state)
{
    th_fx_free(*state);
    return 0;
}

/* Chooses in bucket, forcing model by excluding the others of the list. */
static char *
choose_model(th_client_t *c, const char *bucket, const char *model,
             const char *others)
{
    cJSON *r =
        th_ok(c, "{\"op\":\"choose\",\"bucket\":\"%s\",\"exclude\":[%s]}",
              bucket, others);
    assert_string_equal(th_str(r, "model"), model);
    char *id = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    return id;
}

static cJSON *
stats(th_client_t *c)
{
    return th_ok(c, "{\"op\":\"stats\"}");
}

static void
advance(th_client_t *c, double s)
{
    cJSON_Delete(th_ok(c, "{\"op\":\"clock\",\"advance_s\":%g}", s));
}

/* ------------------------------------------------------------------ */

static void
test_ping_models(void **state)
{
    fx_t *f = *state;
    cJSON *r = th_ok(f->c, "{\"op\":\"ping\",\"id\":\"p1\"}");
    assert_string_equal(th_str(r, "id"), "p1");
    cJSON_Delete(r);
    r = th_ok(f->c, "{\"op\":\"models\"}");
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "models"), 0);
    assert_string_equal(th_str(m, "name"), "a");
    assert_string_equal(th_str(m, "provider"), "openai");
    assert_string_equal(th_str(m, "model"), "a-1");
    /* where a model is called and with which key is the agent's own
     * configuration's business, never the controller's */
    assert_null(cJSON_GetObjectItem(m, "base_url"));
    assert_null(cJSON_GetObjectItem(m, "api_key_env"));
    assert_true(th_num(m, "price_in_per_mtok") == 1);
    assert_true(th_num(m, "price_out_per_mtok") == 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "models")), 4);
    cJSON_Delete(r);
}

static void
test_choose(void **state)
{
    fx_t *f = *state;
    cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    const char *id = th_str(r, "decision_id");
    assert_true(proto_token_valid(id) && strlen(id) > 40);
    const char *m = th_str(r, "model");
    assert_true(strcmp(m, "a") == 0 || strcmp(m, "b") == 0 ||
                strcmp(m, "c") == 0);
    double p = th_num(r, "propensity");
    assert_true(p >= 0.05 - 1e-3 && p <= 1.0);
    const cJSON *fb = cJSON_GetObjectItem(r, "fallbacks");
    assert_true(cJSON_IsArray(fb));
    assert_int_equal(cJSON_GetArraySize(fb), 2);
    const cJSON *x;
    cJSON_ArrayForEach(x, fb) assert_string_not_equal(x->valuestring, m);
    cJSON_Delete(r);
    /* exclude */
    for (int i = 0; i < 20; i++) {
        r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\","
                        "\"exclude\":[\"a\",\"b\",\"unknown\"]}");
        assert_string_equal(th_str(r, "model"), "c");
        assert_true(fabs(th_num(r, "propensity") - 1.0) < 1e-6);
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(r, "fallbacks")), 0);
        cJSON_Delete(r);
    }
    /* ids are distinct and increasing */
    char *i1 = choose_model(f->c, "code", "c", "\"a\",\"b\"");
    char *i2 = choose_model(f->c, "code", "c", "\"a\",\"b\"");
    assert_true(strcmp(i1, i2) < 0);
    free(i1);
    free(i2);
}

static void
test_error_codes(void **state)
{
    fx_t *f = *state;
    th_expect_error(f->c, "bad_json", "{\"op\":");
    th_expect_error(f->c, "bad_json", "\xff\xfe");
    th_expect_error(f->c, "bad_request", "[\"op\"]");
    th_expect_error(f->c, "missing_field", "{\"bucket\":\"code\"}");
    th_expect_error(f->c, "missing_field", "{\"op\":\"choose\"}");
    th_expect_error(f->c, "wrong_type", "{\"op\":\"choose\",\"bucket\":1}");
    th_expect_error(f->c, "invalid_value",
                    "{\"op\":\"feedback\",\"decision_id\":\"x/z\","
                    "\"kind\":\"outcome\",\"success\":true}");
    th_expect_error(f->c, "unknown_op", "{\"op\":\"launch\"}");
    th_expect_error(f->c, "unknown_bucket",
                    "{\"op\":\"choose\",\"bucket\":\"nope\"}");
    th_expect_error(f->c, "unknown_decision",
                    "{\"op\":\"feedback\",\"decision_id\":"
                    "\"00000000000fffff\",\"kind\":\"outcome\","
                    "\"success\":true}");
    th_expect_error(f->c, "no_model_available",
                    "{\"op\":\"choose\",\"bucket\":\"code\","
                    "\"exclude\":[\"a\",\"b\",\"c\"]}");
    char *id = choose_model(f->c, "code", "c", "\"a\",\"b\"");
    th_expect_error(f->c, "unknown_model",
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true,\"model\":\"zz\"}",
                    id);
    free(id);
    /* over the limit (4096 bytes): read and answered */
    size_t n = 6000;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"op\":\"ping\",\"pad\":\"", 20);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    cJSON *r = th_call_raw(f->c, big, n);
    assert_non_null(r);
    assert_string_equal(th_str(cJSON_GetObjectItem(r, "error"), "code"),
                        "message_too_large");
    cJSON_Delete(r);
    free(big);
    /* two frames from a DEALER: bad_request */
    void *s = zmq_socket(th_zctx(), ZMQ_DEALER);
    int t = 5000, linger = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, f->d.endpoint);
    zmq_send(s, "{\"op\":\"ping\"}", 13, ZMQ_SNDMORE);
    zmq_send(s, "{\"op\":\"ping\"}", 13, 0);
    char buf[512];
    int k = zmq_recv(s, buf, sizeof buf - 1, 0);
    assert_true(k > 0);
    buf[k] = '\0';
    assert_non_null(strstr(buf, "bad_request"));
    zmq_close(s);
    /* a bucket name that is not UTF-8 is not echoed raw: the reply stays
     * valid UTF-8 JSON */
    s = zmq_socket(th_zctx(), ZMQ_REQ);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, f->d.endpoint);
    const char bad[] = "{\"op\":\"choose\",\"bucket\":\"q\xff\xfe\"}";
    zmq_send(s, bad, sizeof bad - 1, 0);
    k = zmq_recv(s, buf, sizeof buf - 1, 0);
    assert_true(k > 0);
    buf[k] = '\0';
    for (int i = 0; i < k; i++)
        if ((unsigned char)buf[i] >= 0x80)
            fail_msg("raw byte 0x%02x in the reply: %s", (unsigned char)buf[i],
                     buf);
    assert_non_null(strstr(buf, "unknown_bucket"));
    /* the name is quoted within the message, so its escapes are escaped */
    if (!strstr(buf, "q\\\\ufffd\\\\ufffd"))
        fail_msg("reply: %s", buf);
    zmq_close(s);
    /* still alive */
    cJSON_Delete(th_ok(f->c, "{\"op\":\"ping\"}"));
}

static void
test_feedback_idempotent_amend(void **state)
{
    fx_t *f = *state;
    char *id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    cJSON *r = th_ok(f->c,
                     "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                     "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":0.5,"
                     "\"latency_ms\":40}",
                     id);
    assert_null(cJSON_GetObjectItem(r, "duplicate"));
    cJSON_Delete(r);
    for (int i = 0; i < 3; i++) {
        r = th_ok(f->c,
                  "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                  "\"kind\":\"outcome\",\"success\":false}",
                  id);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
        cJSON_Delete(r);
    }
    cJSON *s = stats(f->c);
    const cJSON *a = th_arm(s, "code", "a");
    assert_true(fabs(th_num(a, "alpha") - 2.0) < 1e-9);
    assert_true(fabs(th_num(a, "beta") - 1.0) < 1e-9);
    assert_true(th_num(a, "pulls") == 1);
    assert_true(fabs(th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd") -
                     0.5) < 1e-9);
    cJSON_Delete(s);
    /* correction after the outcome: amended exactly once */
    for (int i = 0; i < 3; i++) {
        r = th_ok(f->c,
                  "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                  "\"kind\":\"correction\"}",
                  id);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")) ==
                    (i > 0));
        cJSON_Delete(r);
    }
    s = stats(f->c);
    a = th_arm(s, "code", "a");
    assert_true(fabs(th_num(a, "alpha") - 1.0) < 1e-9);
    assert_true(fabs(th_num(a, "beta") - 2.0) < 1e-9);
    cJSON_Delete(s);
    free(id);

    /* correction first: kept, applied with the outcome */
    id = choose_model(f->c, "code", "b", "\"a\",\"c\"");
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"correction\"}",
                       id));
    s = stats(f->c);
    a = th_arm(s, "code", "b");
    assert_true(fabs(th_num(a, "alpha") - 1.0) < 1e-9);
    assert_true(fabs(th_num(a, "beta") - 1.0) < 1e-9);
    cJSON_Delete(s);
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"reward\":0.8}",
                       id));
    s = stats(f->c);
    a = th_arm(s, "code", "b");
    assert_true(fabs(th_num(a, "alpha") - 1.0) < 1e-9);
    assert_true(fabs(th_num(a, "beta") - 2.0) < 1e-9);
    cJSON_Delete(s);
    /* the export shows it */
    r = th_ok(f->c, "{\"op\":\"export\",\"after\":\"%016x\"}", 0);
    const cJSON *d;
    int seen = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, "decisions"))
    {
        if (strcmp(th_str(d, "decision_id"), id) != 0)
            continue;
        seen = 1;
        assert_string_equal(th_str(d, "status"), "done");
        assert_true(th_num(d, "outcome") == 0.8);
        assert_true(th_num(d, "reward") == 0.0);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "corrected")));
        assert_string_equal(th_str(d, "model"), "b");
        assert_string_equal(th_str(d, "bucket"), "code");
    }
    assert_true(seen);
    cJSON_Delete(r);
    free(id);
}

static void
test_cooldown(void **state)
{
    fx_t *f = *state;
    /* two consecutive provider errors on a: cooldown 10 s */
    for (int i = 0; i < 2; i++) {
        char *id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
        cJSON_Delete(th_ok(f->c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"provider_error\",\"error\":\"503\"}",
                           id));
        cJSON *r = th_ok(f->c,
                         "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                         "\"kind\":\"provider_error\",\"error\":\"503\"}",
                         id);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
        cJSON_Delete(r);
        free(id);
    }
    for (int i = 0; i < 40; i++) {
        cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
        assert_string_not_equal(th_str(r, "model"), "a");
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "fallbacks"))
            assert_string_not_equal(x->valuestring, "a");
        cJSON_Delete(r);
    }
    /* each decision's offered set is the set it was drawn from: a alone
     * when b and c were excluded, b and c while a cools down (stats
     * commits the chooses answered early: export reads what is committed) */
    cJSON_Delete(stats(f->c));
    cJSON *e = th_ok(f->c, "{\"op\":\"export\"}");
    const cJSON *dec = cJSON_GetObjectItem(e, "decisions");
    assert_int_equal(cJSON_GetArraySize(dec), 42);
    for (int i = 0; i < 42; i++) {
        const cJSON *off =
            cJSON_GetObjectItem(cJSON_GetArrayItem(dec, i), "offered");
        assert_int_equal(cJSON_GetArraySize(off), i < 2 ? 1 : 2);
        assert_string_equal(cJSON_GetArrayItem(off, 0)->valuestring,
                            i < 2 ? "a" : "b");
        if (i >= 2)
            assert_string_equal(cJSON_GetArrayItem(off, 1)->valuestring, "c");
    }
    cJSON_Delete(e);
    th_expect_error(f->c, "no_model_available",
                    "{\"op\":\"choose\",\"bucket\":\"code\",\"exclude\":"
                    "[\"b\",\"c\"]}");
    cJSON *s = stats(f->c);
    assert_string_equal(th_str(th_arm(s, "code", "a"), "health"), "cooldown");
    cJSON_Delete(s);
    /* after 10 s: half-open, one probe at a time */
    advance(f->c, 10.5);
    char *probe = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    th_expect_error(f->c, "no_model_available",
                    "{\"op\":\"choose\",\"bucket\":\"code\",\"exclude\":"
                    "[\"b\",\"c\"]}");
    /* the probe fails: cooldown doubles to 20 s */
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"provider_error\"}",
                       probe));
    free(probe);
    advance(f->c, 10.5);
    th_expect_error(f->c, "no_model_available",
                    "{\"op\":\"choose\",\"bucket\":\"code\",\"exclude\":"
                    "[\"b\",\"c\"]}");
    advance(f->c, 10);
    probe = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true}",
                       probe));
    free(probe);
    s = stats(f->c);
    assert_string_equal(th_str(th_arm(s, "code", "a"), "health"), "ok");
    cJSON_Delete(s);
    /* closed: chosen freely again */
    char *id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    free(id);
    id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    free(id);
}

static void
test_expiry(void **state)
{
    fx_t *f = *state;
    char *id = choose_model(f->c, "capped", "a", "\"b\"");
    char *id2 = choose_model(f->c, "capped", "a", "\"b\"");
    cJSON *s = stats(f->c);
    const cJSON *bb = cJSON_GetObjectItem(th_bucket(s, "capped"), "budget");
    double reserved = th_num(bb, "reserved_usd");
    assert_true(fabs(reserved - 2 * 0.002) < 1e-9); /* 1000*1e-6 + 500*2e-6 */
    cJSON_Delete(s);
    /* correction first on id2: counts as a failure when it expires */
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"correction\"}",
                       id2));
    advance(f->c, 61);
    /* the sweep runs within a loop turn (200 ms poll) */
    cJSON *r = NULL;
    for (int i = 0; i < 50; i++) {
        th_sleep_ms(50);
        r = th_call(f->c,
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true}",
                    id);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
            break;
        cJSON_Delete(r);
        r = NULL;
        /* the outcome was accepted: not expired yet; should not happen
         * since the sweep runs before the batch commits */
        fail_msg("outcome accepted after the ttl");
    }
    assert_non_null(r);
    assert_string_equal(th_str(cJSON_GetObjectItem(r, "error"), "code"),
                        "decision_expired");
    cJSON_Delete(r);
    s = stats(f->c);
    bb = cJSON_GetObjectItem(th_bucket(s, "capped"), "budget");
    assert_true(fabs(th_num(bb, "reserved_usd")) < 1e-12);
    /* expiry.cost = expected (the default): booked as spent */
    assert_true(fabs(th_num(bb, "spent_usd") - 0.004) < 1e-9);
    const cJSON *a = th_arm(s, "capped", "a");
    assert_true(fabs(th_num(a, "beta") - 2.0) < 1e-9); /* id2 */
    assert_true(fabs(th_num(a, "alpha") - 1.0) < 1e-9);
    cJSON_Delete(s);
    r = th_ok(f->c, "{\"op\":\"export\"}");
    const cJSON *d;
    int n = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, "decisions"))
    {
        assert_string_equal(th_str(d, "status"), "expired");
        n++;
    }
    assert_int_equal(n, 2);
    cJSON_Delete(r);
    free(id);
    free(id2);
}

static void
test_budget(void **state)
{
    fx_t *f = *state;
    char *id = choose_model(f->c, "capped", "b", "\"a\"");
    cJSON *s = stats(f->c);
    const cJSON *g = cJSON_GetObjectItem(s, "budget");
    const cJSON *bb = cJSON_GetObjectItem(th_bucket(s, "capped"), "budget");
    double exp_b = (1000 * 10 + 500 * 20) / 1e6; /* 0.02 */
    assert_true(fabs(th_num(g, "reserved_usd") - exp_b) < 1e-9);
    assert_true(fabs(th_num(bb, "reserved_usd") - exp_b) < 1e-9);
    assert_true(th_num(bb, "limit_usd") == 1);
    assert_true(th_num(g, "limit_usd") == 100);
    assert_true(th_num(g, "window_end") > th_num(g, "window_start"));
    assert_true(th_num(g, "target_usd") > 0);
    cJSON_Delete(s);
    /* cost from tokens and the price table */
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true,"
                       "\"tokens_in\":2000,\"tokens_out\":1000}",
                       id));
    s = stats(f->c);
    g = cJSON_GetObjectItem(s, "budget");
    bb = cJSON_GetObjectItem(th_bucket(s, "capped"), "budget");
    assert_true(fabs(th_num(g, "reserved_usd")) < 1e-12);
    assert_true(fabs(th_num(g, "spent_usd") - 0.04) < 1e-9);
    assert_true(fabs(th_num(bb, "spent_usd") - 0.04) < 1e-9);
    cJSON_Delete(s);
    free(id);
    /* spend the bucket's cap: choices still come, flagged over_budget */
    id = choose_model(f->c, "capped", "a", "\"b\"");
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true,"
                       "\"cost_usd\":5}",
                       id));
    free(id);
    cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"capped\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    /* the cheapest by cost estimate: a's reported 5 USD made it b */
    assert_string_equal(th_str(r, "model"), "b");
    assert_true(th_num(r, "propensity") == 1.0);
    cJSON_Delete(r);
}

static void
test_latency_slo(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 3; i++) {
        char *id = choose_model(f->c, "fast", "a", "\"c\"");
        cJSON_Delete(th_ok(f->c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"outcome\",\"success\":true,"
                           "\"latency_ms\":500}",
                           id));
        free(id);
    }
    for (int i = 0; i < 30; i++) {
        cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"fast\"}");
        assert_string_equal(th_str(r, "model"), "c");
        cJSON_Delete(r);
    }
    cJSON *s = stats(f->c);
    const cJSON *a = th_arm(s, "fast", "a");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "slo_breach")));
    assert_true(th_num(a, "latency_q_ms") == 500);
    cJSON_Delete(s);
    /* the samples age out of the 60 s window: a is admitted again */
    advance(f->c, 61);
    int seen = 0;
    for (int i = 0; i < 200 && !seen; i++) {
        cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"fast\"}");
        seen = strcmp(th_str(r, "model"), "a") == 0;
        cJSON_Delete(r);
    }
    assert_true(seen);
}

static void
test_reload(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 3; i++) {
        char *id = choose_model(f->c, "code", "c", "\"a\",\"b\"");
        cJSON_Delete(th_ok(f->c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"outcome\",\"success\":true}",
                           id));
        free(id);
    }
    /* a pending decision on c survives its arm's removal */
    char *pending = choose_model(f->c, "code", "c", "\"a\",\"b\"");
    /* an invalid configuration is refused; the old one stays */
    th_write_config(&f->d, "{\"models\":{}, \"bogus\":1}");
    th_signal(&f->d, SIGHUP);
    th_sleep_ms(300);
    cJSON *s = stats(f->c);
    assert_non_null(th_arm(s, "code", "c"));
    assert_null(th_bucket(s, "new"));
    cJSON_Delete(s);

    th_write_config(&f->d, config_changed);
    th_signal(&f->d, SIGHUP);
    cJSON *r = NULL;
    for (int i = 0; i < 50; i++) {
        th_sleep_ms(20);
        s = stats(f->c);
        if (th_bucket(s, "new"))
            break;
        cJSON_Delete(s);
        s = NULL;
    }
    assert_non_null(s);
    assert_null(th_arm(s, "code", "c"));
    const cJSON *d = th_arm(s, "code", "d");
    assert_non_null(d);
    assert_true(th_num(d, "alpha") == 1 && th_num(d, "pulls") == 0);
    cJSON_Delete(s);
    for (int i = 0; i < 30; i++) {
        r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
        assert_string_not_equal(th_str(r, "model"), "c");
        cJSON_Delete(r);
    }
    /* feedback for the removed arm is still recorded (in the store) */
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true}",
                       pending));
    free(pending);
    /* back to the first configuration: c returns with its evidence */
    th_write_config(&f->d, config_main);
    th_signal(&f->d, SIGHUP);
    const cJSON *c = NULL;
    for (int i = 0; i < 50 && !c; i++) {
        th_sleep_ms(20);
        s = stats(f->c);
        c = th_arm(s, "code", "c");
        if (!c)
            cJSON_Delete(s);
    }
    assert_non_null(c);
    assert_true(th_num(c, "alpha") == 5); /* 1 + 3 + the pending one */
    assert_true(th_num(c, "pulls") == 4);
    cJSON_Delete(s);
}

/* Compares the durable parts of two stats replies. */
static void
assert_same_state(const cJSON *s1, const cJSON *s2)
{
    static const char *const arm_keys[] = {"alpha",   "beta",          "pulls",
                                           "rewards", "cost_mean_usd", NULL};
    static const char *const bud_keys[] = {"spent_usd", "reserved_usd",
                                           "requests",  "window_start",
                                           "limit_usd", NULL};
    const cJSON *b1;
    cJSON_ArrayForEach(b1, cJSON_GetObjectItem(s1, "buckets"))
    {
        const char *bn = th_str(b1, "name");
        const cJSON *a1;
        cJSON_ArrayForEach(a1, cJSON_GetObjectItem(b1, "arms"))
        {
            const cJSON *a2 = th_arm(s2, bn, th_str(a1, "model"));
            assert_non_null(a2);
            for (const char *const *k = arm_keys; *k; k++)
                if (th_num(a1, *k) != th_num(a2, *k))
                    fail_msg("%s/%s %s: %.17g before, %.17g after", bn,
                             th_str(a1, "model"), *k, th_num(a1, *k),
                             th_num(a2, *k));
        }
        const cJSON *bb1 = cJSON_GetObjectItem(b1, "budget");
        if (cJSON_IsObject(bb1)) {
            const cJSON *bb2 = cJSON_GetObjectItem(th_bucket(s2, bn), "budget");
            for (const char *const *k = bud_keys; *k; k++)
                assert_true(th_num(bb1, *k) == th_num(bb2, *k));
        }
    }
    const cJSON *g1 = cJSON_GetObjectItem(s1, "budget");
    const cJSON *g2 = cJSON_GetObjectItem(s2, "budget");
    for (const char *const *k = bud_keys; *k; k++)
        if (th_num(g1, *k) != th_num(g2, *k))
            fail_msg("budget %s: %.17g before, %.17g after", *k, th_num(g1, *k),
                     th_num(g2, *k));
    assert_true(th_num(cJSON_GetObjectItem(s1, "policy"), "mu") ==
                th_num(cJSON_GetObjectItem(s2, "policy"), "mu"));
    assert_true(th_num(s1, "decisions") == th_num(s2, "decisions"));
    const cJSON *h1;
    cJSON_ArrayForEach(h1, cJSON_GetObjectItem(s1, "health"))
    {
        const cJSON *h2;
        int found = 0;
        cJSON_ArrayForEach(h2, cJSON_GetObjectItem(s2, "health"))
        {
            if (strcmp(th_str(h1, "model"), th_str(h2, "model")) == 0) {
                found = 1;
                assert_string_equal(th_str(h1, "state"), th_str(h2, "state"));
                assert_true(th_num(h1, "errors_total") ==
                            th_num(h2, "errors_total"));
            }
        }
        assert_true(found);
    }
}

static void
test_restart(void **state)
{
    fx_t *f = *state;
    srand(3);
    const char *buckets[] = {"code", "fast", "capped"};
    for (int i = 0; i < 120; i++) {
        cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"%s\"}",
                         buckets[i % 3]);
        char id[400];
        snprintf(id, sizeof id, "%s", th_str(r, "decision_id"));
        cJSON_Delete(r);
        int k = rand() % 5;
        if (k == 0)
            continue; /* stays pending */
        if (k == 4)   /* then the outcome below resets the health */
            cJSON_Delete(th_ok(f->c,
                               "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                               "\"kind\":\"provider_error\"}",
                               id));
        cJSON_Delete(th_ok(f->c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"outcome\",\"reward\":%g,"
                           "\"cost_usd\":%g,\"latency_ms\":%d}",
                           id, (rand() % 11) / 10.0, (rand() % 100) / 1e4,
                           rand() % 300));
        if (k == 3)
            cJSON_Delete(th_ok(f->c,
                               "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                               "\"kind\":\"correction\"}",
                               id));
    }
    cJSON *s1 = stats(f->c);
    cJSON *e1 = th_ok(f->c, "{\"op\":\"export\"}");
    th_client_destroy(&f->c);
    assert_int_equal(th_stop(&f->d), 0);
    th_start(&f->d);
    f->c = th_client_new(f->d.endpoint);
    cJSON *s2 = stats(f->c);
    cJSON *e2 = th_ok(f->c, "{\"op\":\"export\"}");
    assert_same_state(s1, s2);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(e1, "decisions"),
                              cJSON_GetObjectItem(e2, "decisions"), 1));
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    cJSON_Delete(e1);
    cJSON_Delete(e2);
}

static void
test_dealer_pipeline(void **state)
{
    fx_t *f = *state;
    void *s = zmq_socket(th_zctx(), ZMQ_DEALER);
    int t = 5000, linger = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, f->d.endpoint);
    for (int i = 0; i < 200; i++) {
        char buf[128];
        int n =
            snprintf(buf, sizeof buf,
                     "{\"op\":\"choose\",\"bucket\":\"code\",\"id\":%d}", i);
        assert_int_equal(zmq_send(s, buf, (size_t)n, 0), n);
    }
    for (int i = 0; i < 200; i++) {
        char buf[1024];
        int n = zmq_recv(s, buf, sizeof buf - 1, 0);
        assert_true(n > 0);
        cJSON *r = cJSON_ParseWithLength(buf, (size_t)n);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
        assert_int_equal((int)th_num(r, "id"), i); /* in order */
        cJSON_Delete(r);
    }
    zmq_close(s);
}

static int
run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_cli(void **state)
{
    fx_t *f = *state;
    char *id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    char cmd[1024], out[65536];
    const char *cli = th_bin("bursar");
    snprintf(cmd, sizeof cmd,
             "%s --controller %s feedback %s --success "
             "--cost 0.01",
             cli, f->d.endpoint, id);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "ok\n");
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "duplicate"));
    snprintf(cmd, sizeof cmd, "%s --controller %s feedback %s --correction",
             cli, f->d.endpoint, id);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd,
             "%s --controller %s feedback 00000000000fffff --failure 2>&1", cli,
             f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "unknown_decision"));
    snprintf(cmd, sizeof cmd, "%s --controller %s stats", cli, f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "bucket code"));
    assert_non_null(strstr(out, "95% interval"));
    assert_non_null(strstr(out, "budget: spent $0.0100"));
    snprintf(cmd, sizeof cmd, "%s --controller %s export --since 0", cli,
             f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    cJSON *line = cJSON_Parse(out); /* one line */
    assert_non_null(line);
    assert_string_equal(th_str(line, "decision_id"), id);
    assert_true(th_num(line, "cost_usd") == 0.01);
    assert_true(th_num(line, "reward") == 0);
    assert_true(th_num(line, "propensity") > 0);
    cJSON_Delete(line);
    snprintf(cmd, sizeof cmd,
             "%s --controller %s export --since 2999-01-01T00:00:00Z", cli,
             f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "");
    snprintf(cmd, sizeof cmd, "%s --check-config %s", th_bin("bursard"),
             f->d.config);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    free(id);

    /* malformed or out-of-range values and conflicting kinds are refused
     * before anything is sent: the decision stays open for the real one */
    id = choose_model(f->c, "code", "a", "\"b\",\"c\"");
    static const char *const bad[] = {"--reward 0,9",
                                      "--reward x",
                                      "--reward 1.5",
                                      "--reward -0.1",
                                      "--reward nan",
                                      "--reward ''",
                                      "--success --cost -1",
                                      "--success --cost 1e999",
                                      "--success --tokens-in 2x",
                                      "--success --latency-ms -5",
                                      "--success --correction",
                                      "--failure --reward 1",
                                      "--correction --provider-error boom",
                                      NULL};
    for (const char *const *b = bad; *b; b++) {
        snprintf(cmd, sizeof cmd, "%s --controller %s feedback %s %s 2>&1", cli,
                 f->d.endpoint, id, *b);
        if (run(cmd, out, sizeof out) != 2)
            fail_msg("feedback %s was not refused: %s", *b, out);
        assert_non_null(strstr(out, "bursar feedback:"));
    }
    snprintf(cmd, sizeof cmd,
             "%s --controller %s feedback %s --reward 0.75 --cost 0.5", cli,
             f->d.endpoint, id);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "ok\n"); /* not a duplicate */
    free(id);
}

/* Every decision of export, by the bursar CLI (one JSON object per
 * line), as an array (the caller deletes it). */
static cJSON *
cli_export(const fx_t *f)
{
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s --controller %s export", th_bin("bursar"),
             f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    cJSON *all = cJSON_CreateArray();
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        cJSON_AddItemToArray(all, o);
    }
    return all;
}

/* The row of all whose decision_id is id (asserted present). */
static const cJSON *
export_row(const cJSON *all, const char *id)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, all)
    {
        const cJSON *d = cJSON_GetObjectItem(o, "decision_id");
        if (cJSON_IsString(d) && strcmp(d->valuestring, id) == 0)
            return o;
    }
    fail_msg("decision %s is not in the export", id);
    return NULL;
}

/* A choose's tenant (JSON, or bursar choose --tenant) and a booked local
 * decision's are in their export rows, durably (a restart keeps them); a
 * choose without one has no "tenant"; a bad one is refused naming the
 * field, by bursard and by the CLI before anything is sent. */
static void
test_tenant(void **state)
{
    fx_t *f = *state;
    cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\","
                           "\"tenant\":\"acme\"}");
    char *with = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    char *without = choose_model(f->c, "code", "c", "\"a\",\"b\"");
    /* an escalation keeps its own tenant (the request's, not looked up) */
    r = th_ok(f->c,
              "{\"op\":\"choose\",\"bucket\":\"code\",\"escalates\":\"%s\","
              "\"tenant\":\"acme.eu\"}",
              with);
    char *esc = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    th_expect_error(f->c, "invalid_value",
                    "{\"op\":\"choose\",\"bucket\":\"code\","
                    "\"tenant\":\"acme/eu\"}");
    th_expect_error(f->c, "wrong_type",
                    "{\"op\":\"choose\",\"bucket\":\"code\",\"tenant\":1}");
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd,
             "%s --controller %s choose code --tenant 'a b' 2>&1",
             th_bin("bursar"), f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--tenant"));
    snprintf(cmd, sizeof cmd,
             "%s --controller %s choose code --tenant beta_2 --json",
             th_bin("bursar"), f->d.endpoint);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    cJSON *cr = cJSON_Parse(out);
    assert_non_null(cr);
    char *cli = strdup(th_str(cr, "decision_id"));
    cJSON_Delete(cr);
    /* a local decision booked with its tenant */
    r = th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":0}");
    double now = th_num(r, "now");
    cJSON_Delete(r);
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"book\",\"local\":{\"id\":\"L1\","
                       "\"bucket\":\"code\",\"model\":\"a\",\"time\":%.3f,"
                       "\"tenant\":\"acme\"},\"kind\":\"outcome\","
                       "\"success\":true}",
                       now));
    th_expect_error(f->c, "invalid_value",
                    "{\"op\":\"book\",\"local\":{\"id\":\"L2\","
                    "\"bucket\":\"code\",\"model\":\"a\",\"time\":%.3f,"
                    "\"tenant\":\"\"},\"kind\":\"correction\"}",
                    now);

    for (int restarted = 0; restarted < 2; restarted++) {
        cJSON *all = cli_export(f);
        assert_int_equal(cJSON_GetArraySize(all), 5); /* no more rows */
        const cJSON *local = cJSON_GetArrayItem(all, 4);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(local, "local")));
        assert_string_equal(th_str(local, "local_id"), "L1");
        assert_string_equal(th_str(local, "tenant"), "acme");
        assert_string_equal(th_str(export_row(all, with), "tenant"), "acme");
        const cJSON *row = export_row(all, esc);
        assert_string_equal(th_str(row, "tenant"), "acme.eu");
        assert_int_equal((int)th_num(row, "step"), 1);
        assert_string_equal(th_str(export_row(all, cli), "tenant"), "beta_2");
        assert_null(cJSON_GetObjectItem(export_row(all, without), "tenant"));
        cJSON_Delete(all);
        if (!restarted) {
            th_client_destroy(&f->c);
            assert_int_equal(th_stop(&f->d), 0);
            th_start(&f->d);
            f->c = th_client_new(f->d.endpoint);
        }
    }
    free(with);
    free(without);
    free(esc);
    free(cli);
}

/* Sends n requests over one DEALER socket before reading any reply (the
 * daemon commits them in batches), then reads the n replies in order.
 * Request i is fmt with arg[i] (or i when arg is NULL). With ids, the
 * decision_id of reply i goes to ids[i] (400 bytes each). */
static void
pipeline(const char *endpoint, int n, const char *fmt, char (*arg)[400],
         char (*ids)[400])
{
    void *s = zmq_socket(th_zctx(), ZMQ_DEALER);
    int t = 30000, linger = 0, hwm = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_connect(s, endpoint);
    for (int i = 0; i < n; i++) {
        char buf[256];
        int len = arg ? snprintf(buf, sizeof buf, fmt, arg[i])
                      : snprintf(buf, sizeof buf, fmt, i);
        assert_int_equal(zmq_send(s, buf, (size_t)len, 0), len);
    }
    for (int i = 0; i < n; i++) {
        char buf[2048];
        int len = zmq_recv(s, buf, sizeof buf - 1, 0);
        assert_true(len > 0 && len < (int)sizeof buf);
        cJSON *r = cJSON_ParseWithLength(buf, (size_t)len);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
            fail_msg("request %d: %.*s", i, len, buf);
        if (ids)
            snprintf(ids[i], 400, "%s", th_str(r, "decision_id"));
        cJSON_Delete(r);
    }
    zmq_close(s);
}

/* Drives the only arm of bucket through succ successes and fail
 * failures reported as feedback. */
static void
drive_arm(const char *endpoint, const char *bucket, int succ, int fail)
{
    int n = succ + fail;
    char(*ids)[400] = calloc((size_t)n, sizeof *ids);
    char fmt[128];
    snprintf(fmt, sizeof fmt,
             "{\"op\":\"choose\",\"bucket\":\"%s\",\"id\":%%d}", bucket);
    pipeline(endpoint, n, fmt, NULL, ids);
    pipeline(endpoint, succ,
             "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
             "\"outcome\",\"success\":true}",
             ids, NULL);
    pipeline(endpoint, fail,
             "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
             "\"outcome\",\"success\":false}",
             ids + succ, NULL);
    free(ids);
}

/* The line bursar stats prints for model: its mean and 95% interval
 * (printed to 3 decimals) must be those of the posterior. */
static void
expect_interval(const char *out, const char *model, double mean, double lo_q,
                double hi_q)
{
    char key[64];
    snprintf(key, sizeof key, "\n  %-20s ", model);
    const char *l = strstr(out, key);
    if (!l)
        fail_msg("no line for %s in:\n%s", model, out);
    double m, lo, hi;
    if (sscanf(l + strlen(key), "%lf [%lf, %lf]", &m, &lo, &hi) != 3)
        fail_msg("no interval on the line of %s:\n%s", model, out);
    if (!(fabs(m - mean) < 1e-3 && fabs(lo - lo_q) < 1e-3 &&
          fabs(hi - hi_q) < 1e-3))
        fail_msg("%s: mean %g, interval [%g, %g]; the posterior's: %g, "
                 "[%g, %g]",
                 model, m, lo, hi, mean, lo_q, hi_q);
}

/* bursar stats on lopsided arms: Beta(353, 5) and Beta(8, 1093) are where
 * gsl_cdf_beta_Pinv does not converge (its default error handler used to
 * abort bursar: exit 134). */
static void
test_stats_lopsided(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{" MODELS ",\"buckets\":{"
                 "\"hi\":{\"models\":[\"a\"],\"prior\":{\"alpha\":1,"
                 "\"beta\":1},\"half_life_s\":0},"
                 "\"lo\":{\"models\":[\"c\"],\"prior\":{\"alpha\":1,"
                 "\"beta\":1},\"half_life_s\":0}},"
                 "\"store\":{\"sync\":\"nometasync\"}}");
    th_start(&d);
    drive_arm(d.endpoint, "hi", 352, 4);
    drive_arm(d.endpoint, "lo", 7, 1092);
    th_client_t *c = th_client_new(d.endpoint);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    assert_true(th_num(th_arm(s, "hi", "a"), "alpha") == 353);
    assert_true(th_num(th_arm(s, "hi", "a"), "beta") == 5);
    assert_true(th_num(th_arm(s, "lo", "c"), "alpha") == 8);
    assert_true(th_num(th_arm(s, "lo", "c"), "beta") == 1093);
    cJSON_Delete(s);
    th_client_destroy(&c);
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s --controller %s stats 2>&1",
             th_need("bursar"), d.endpoint);
    int st = th_run(cmd, out, sizeof out);
    if (st != 0)
        fail_msg("bursar stats exited %d (-1: killed by a signal):\n%s", st,
                 out);
    /* quantiles by bisection on GSL's Beta CDF (a normal approximation
     * would be 2 to 3 thousandths off on the first) */
    expect_interval(out, "a", 353.0 / 358, 0.97156, 0.99544);
    expect_interval(out, "c", 8.0 / 1101, 0.00314, 0.01307);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

/* The options of both programs (getopt_long): --version, --help, bad
 * options and values refused with exit 2 before anything starts. */
static void
test_options(void **state)
{
    (void)state;
    static const struct {
        const char *prog, *args, *out;
        int status;
    } cases[] = {
        {"bursard", "--version", "bursard ", 0},
        {"bursard", "--help", "--test-clock[=START]", 0},
        {"bursard", "--config-reference", "| `listen` |", 0},
        {"bursard", "--bogus", "--bogus", 2},
        {"bursard", "--test-clock=soon", "--test-clock=soon", 2},
        {"bursard", "--state-dir", "--state-dir", 2},
        {"bursard", "stray", "unexpected argument stray", 2},
        {"bursar", "--version", "bursar ", 0},
        {"bursar", "--help", "feedback ID", 0},
        {"bursar", "--timeout 0 ping", "--timeout 0", 2},
        {"bursar", "stats --bogus", "bursar stats: unknown option", 2},
        {"bursar", "export --since never", "bad time never", 2},
        {"bursar", "choose", "give one bucket", 2},
        {"bursar", "feedback --success", "missing decision id", 2},
        {"bursar", "frobnicate", "usage:", 2},
        {"bursar", "frobnicate", "bursar: unknown command frobnicate\n", 2},
        {"bursar", "ping now", "bursar ping: unexpected argument now", 2},
        {"bursar", "keygen", "bursar keygen: give one PREFIX", 2},
        {"bursard", "--config /nonexistent/bursard.json",
         "bursard: cannot read /nonexistent/bursard.json: No such file or "
         "directory\n",
         1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1200], out[16384];
        /* bursar never reaches a controller here */
        int cli = strcmp(cases[i].prog, "bursar") == 0;
        snprintf(cmd, sizeof cmd, "%s %s%s 2>&1 </dev/null",
                 th_need(cases[i].prog),
                 cli ? "--controller ipc:///nonexistent " : "", cases[i].args);
        int st = th_run(cmd, out, sizeof out);
        if (st != cases[i].status || !strstr(out, cases[i].out))
            fail_msg("%s %s: status %d (expected %d), output lacks \"%s\":\n%s",
                     cases[i].prog, cases[i].args, st, cases[i].status,
                     cases[i].out, out);
    }
}

static void
test_check_config_cli(void **state)
{
    fx_t *f = *state;
    char path[600], cmd[2048], out[8192];
    snprintf(path, sizeof path, "%s/bad.json", f->d.dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"models\":{\"m\":{\"provider\":\"openai\",\"price_in_per_mtok\":"
          "1,\"price_out_per_mtok\":1}},\"buckets\":{\"b\":{\"models\":[\"m\","
          "\"x\"]}},\"budget\":{\"limit_usd\":-1},\"typo\":1}",
          fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s --check-config %s 2>&1", th_bin("bursard"),
             path);
    assert_int_equal(run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "$.buckets.b.models[1]: unknown model"));
    assert_non_null(strstr(out, "$.budget.limit_usd"));
    assert_non_null(strstr(out, "$.typo: unknown key"));
    /* refuses to start */
    snprintf(cmd, sizeof cmd, "%s --config %s --state-dir %s/s2 2>&1",
             th_bin("bursard"), path, f->d.dir);
    assert_int_equal(run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "not starting"));
}

static void
test_one_writer(void **state)
{
    fx_t *f = *state;
    char cmd[2600], out[4096];
    snprintf(cmd, sizeof cmd,
             "%s --config %s --state-dir %s --listen ipc://%s/sock2 2>&1",
             th_bin("bursard"), f->d.config, f->d.state, f->d.dir);
    assert_int_equal(run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "another bursard holds this state"));
    cJSON_Delete(th_ok(f->c, "{\"op\":\"ping\"}"));
}

/* A full LMDB map: the commit fails, every request of the batch is
 * answered store_error, nothing of it is recorded, and the daemon goes on
 * serving what does not need to write. */
static void
test_store_full(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{" MODELS ",\"buckets\":{\"code\":{\"models\":[\"a\","
                 "\"b\"]}},\"store\":{\"map_size_mb\":1}}");
    th_start(&d);
    th_client_t *c = th_client_new(d.endpoint);
    int ok = 0, full = 0;
    for (int i = 0; i < 20000 && !full; i++) {
        cJSON *r = th_call(c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
        assert_non_null(r);
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
            ok++;
        } else {
            assert_string_equal(th_str(cJSON_GetObjectItem(r, "error"), "code"),
                                "store_error");
            full = 1;
        }
        cJSON_Delete(r);
    }
    assert_true(full);
    assert_true(ok > 100);
    cJSON_Delete(th_ok(c, "{\"op\":\"ping\"}"));
    /* memory was reloaded from the store: it holds the acknowledged
     * decisions but those answered before a commit that failed (their
     * tokens carry them). After a failed commit chooses wait for their
     * commits for a second, so the first failure, which ends this loop
     * within that second, loses one transaction of early answers: at most
     * store.batch_max (512) */
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    double made = th_num(s, "decisions");
    if (!(made <= ok && made >= ok - 512))
        fail_msg("%g decisions recorded, %d acknowledged", made, ok);
    assert_true(th_num(th_arm(s, "code", "a"), "pulls") +
                    th_num(th_arm(s, "code", "b"), "pulls") ==
                made);
    cJSON_Delete(s);
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

static void
test_unknown_bucket_create(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{" MODELS ",\"buckets\":{\"code\":{\"models\":[\"a\"]}},"
                 "\"unknown_bucket\":{\"action\":\"create\",\"max_buckets\":3,"
                 "\"template\":{\"models\":[\"a\",\"c\"]}}}");
    th_start(&d);
    th_client_t *c = th_client_new(d.endpoint);
    cJSON_Delete(th_ok(c, "{\"op\":\"choose\",\"bucket\":\"x1\"}"));
    cJSON_Delete(th_ok(c, "{\"op\":\"choose\",\"bucket\":\"x2\"}"));
    cJSON_Delete(th_ok(c, "{\"op\":\"choose\",\"bucket\":\"x2\"}"));
    th_expect_error(c, "bucket_limit", "{\"op\":\"choose\",\"bucket\":\"x3\"}");
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_start(&d);
    c = th_client_new(d.endpoint);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    assert_true(th_num(th_arm(s, "x2", "a"), "pulls") +
                    th_num(th_arm(s, "x2", "c"), "pulls") ==
                2);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(th_bucket(s, "x1"), "dynamic")));
    cJSON_Delete(s);
    th_client_destroy(&c);
    th_cleanup(&d);
}

/* export --since over many older decisions: a page reads a bounded number
 * of skipped rows and ends with a next cursor; paging finds exactly the
 * decisions made since. */
static void
test_export_since_bounded(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 40; i++)
        cJSON_Delete(th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}"));
    advance(f->c, 100);
    cJSON *r = th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":0}");
    double since = th_num(r, "now");
    cJSON_Delete(r);
    for (int i = 0; i < 3; i++)
        cJSON_Delete(th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}"));
    char after[17] = "";
    int pages = 0, found = 0, empty_with_next = 0;
    for (;;) {
        if (after[0])
            r = th_ok(f->c,
                      "{\"op\":\"export\",\"since\":%.17g,\"limit\":2,"
                      "\"after\":\"%s\"}",
                      since, after);
        else
            r = th_ok(f->c, "{\"op\":\"export\",\"since\":%.17g,\"limit\":2}",
                      since);
        pages++;
        const cJSON *ds = cJSON_GetObjectItem(r, "decisions");
        int n = cJSON_GetArraySize(ds);
        assert_true(n <= 2);
        const cJSON *d;
        cJSON_ArrayForEach(d, ds)
        {
            assert_true(th_num(d, "time") >= since);
            found++;
        }
        const cJSON *next = cJSON_GetObjectItem(r, "next");
        if (n == 0 && cJSON_IsString(next))
            empty_with_next++;
        int more = cJSON_IsString(next);
        if (more)
            snprintf(after, sizeof after, "%s", next->valuestring);
        cJSON_Delete(r);
        if (!more)
            break;
        assert_true(pages < 100);
    }
    assert_int_equal(found, 3);
    /* 40 older rows at most 8 per page: at least 5 pages before them */
    assert_true(empty_with_next >= 4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping_models, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_choose, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_error_codes, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_feedback_idempotent_amend,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cooldown, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_budget, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_latency_slo, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reload, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dealer_pipeline, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_check_config_cli, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_one_writer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_export_since_bounded, fx_setup,
                                        fx_teardown),
        cmocka_unit_test(test_store_full),
        cmocka_unit_test(test_unknown_bucket_create),
        cmocka_unit_test(test_stats_lopsided),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
