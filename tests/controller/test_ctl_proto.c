/*
 * test_ctl_proto.c - the wire codec: request parsing (every error code it
 * can give, each message naming the field), reply writing, the
 * client-side round trip, and reply parsing (every field a reply needs
 * checked, the message naming it).
 */
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

#include "agents/proto.h"

static proto_code_t
parse(const char *s, proto_request_t *rq, proto_error_t *err)
{
    return proto_parse_request(s, strlen(s), rq, err);
}

static void
expect_code(const char *s, proto_code_t code, const char *field)
{
    proto_request_t rq;
    proto_error_t err;
    proto_code_t got = parse(s, &rq, &err);
    if (got != code)
        fail_msg("%s: expected %s, got %s (%s)", s, proto_code_name(code),
                 proto_code_name(got), err.message);
    if (field && !strstr(err.message, field))
        fail_msg("%s: message \"%s\" does not name %s", s, err.message, field);
}

static void
test_ids(void **state)
{
    (void)state;
    char s[PROTO_ID_LEN + 1];
    proto_id_format(0x2a, s);
    assert_string_equal(s, "000000000000002a");
    uint64_t id = 0;
    assert_int_equal(proto_id_parse(s, &id), 0);
    assert_true(id == 0x2a);
    proto_id_format(UINT64_MAX, s);
    assert_int_equal(proto_id_parse(s, &id), 0);
    assert_true(id == UINT64_MAX);
    assert_int_equal(proto_id_parse("2a", &id), BURSAR_EINVAL);
    assert_int_equal(proto_id_parse("000000000000002g", &id), BURSAR_EINVAL);
    assert_int_equal(proto_id_parse("000000000000002a0", &id), BURSAR_EINVAL);
}

static void
test_parse_ok(void **state)
{
    (void)state;
    proto_request_t rq;
    proto_error_t err;
    assert_int_equal(parse("{\"op\":\"choose\",\"bucket\":\"code\","
                           "\"exclude\":[\"a\",\"b\"],\"id\":7}",
                           &rq, &err),
                     PROTO_OK);
    assert_int_equal(rq.op, PROTO_OP_CHOOSE);
    assert_string_equal(rq.bucket, "code");
    assert_int_equal(rq.n_exclude, 2);
    assert_string_equal(rq.exclude[1], "b");
    assert_string_equal(rq.echo, "7");

    assert_int_equal(parse("{\"op\":\"feedback\",\"decision_id\":"
                           "\"000000000000002a\",\"kind\":\"outcome\","
                           "\"success\":true,\"tokens_in\":10,"
                           "\"tokens_out\":5,\"latency_ms\":120,"
                           "\"future_field\":{}}",
                           &rq, &err),
                     PROTO_OK);
    assert_int_equal(rq.kind, PROTO_KIND_OUTCOME);
    assert_string_equal(rq.decision, "000000000000002a");
    assert_true(rq.has_reward && rq.reward == 1.0 && rq.has_success);
    assert_true(rq.has_tokens && rq.tokens_in == 10 && rq.tokens_out == 5);
    assert_true(rq.has_latency && rq.latency_ms == 120);
    assert_false(rq.has_cost);

    assert_int_equal(parse("{\"op\":\"feedback\",\"decision_id\":"
                           "\"000000000000002a\",\"kind\":\"outcome\","
                           "\"reward\":0.25,\"cost_usd\":0.01}",
                           &rq, &err),
                     PROTO_OK);
    assert_true(rq.reward == 0.25 && !rq.has_success);
    assert_true(rq.has_cost && rq.cost_usd == 0.01);

    assert_int_equal(parse("{\"op\":\"feedback\",\"decision_id\":"
                           "\"000000000000002a\",\"kind\":"
                           "\"provider_error\",\"error\":\"HTTP 503\"}",
                           &rq, &err),
                     PROTO_OK);
    assert_string_equal(rq.error, "HTTP 503");
    assert_int_equal(parse("{\"op\":\"export\",\"since\":1.5,\"after\":"
                           "\"0000000000000001\",\"limit\":10}",
                           &rq, &err),
                     PROTO_OK);
    assert_true(rq.since == 1.5 && rq.has_after && rq.after == 1 &&
                rq.limit == 10);
    assert_int_equal(parse("{\"op\":\"ping\"}", &rq, &err), PROTO_OK);
    assert_int_equal(rq.op, PROTO_OP_PING);
    assert_true(isinf(rq.since));
}

static void
test_parse_errors(void **state)
{
    (void)state;
    expect_code("{\"op\":", PROTO_E_BAD_JSON, "JSON");
    expect_code("", PROTO_E_BAD_JSON, "JSON");
    expect_code("[1,2]", PROTO_E_BAD_REQUEST, "object");
    expect_code("{}", PROTO_E_MISSING_FIELD, "\"op\"");
    expect_code("{\"op\":3}", PROTO_E_WRONG_TYPE, "\"op\"");
    expect_code("{\"op\":\"fly\"}", PROTO_E_UNKNOWN_OP, "\"op\"");
    expect_code("{\"op\":\"choose\"}", PROTO_E_MISSING_FIELD, "\"bucket\"");
    expect_code("{\"op\":\"choose\",\"bucket\":5}", PROTO_E_WRONG_TYPE,
                "\"bucket\"");
    expect_code("{\"op\":\"choose\",\"bucket\":\"\"}", PROTO_E_INVALID_VALUE,
                "\"bucket\"");
    expect_code("{\"op\":\"choose\",\"bucket\":\"x\",\"exclude\":\"a\"}",
                PROTO_E_WRONG_TYPE, "\"exclude\"");
    expect_code("{\"op\":\"choose\",\"bucket\":\"x\",\"exclude\":[1]}",
                PROTO_E_WRONG_TYPE, "exclude[0]");
    expect_code("{\"op\":\"choose\",\"bucket\":\"x\",\"escalates\":7}",
                PROTO_E_WRONG_TYPE, "\"escalates\"");
    expect_code("{\"op\":\"choose\",\"bucket\":\"x\",\"escalates\":\"a/b\"}",
                PROTO_E_INVALID_VALUE, "\"escalates\"");
    expect_code("{\"op\":\"choose\",\"bucket\":\"x\",\"escalates\":\"\"}",
                PROTO_E_INVALID_VALUE, "\"escalates\"");
    expect_code("{\"op\":\"feedback\",\"kind\":\"outcome\"}",
                PROTO_E_MISSING_FIELD, "\"decision_id\"");
    expect_code("{\"op\":\"feedback\",\"decision_id\":12}", PROTO_E_WRONG_TYPE,
                "\"decision_id\"");
    expect_code("{\"op\":\"feedback\",\"decision_id\":\"12/3\"}",
                PROTO_E_INVALID_VALUE, "\"decision_id\"");
    const char *d = "\"decision_id\":\"0000000000000001\"";
    char buf[512];
    snprintf(buf, sizeof buf, "{\"op\":\"feedback\",%s}", d);
    expect_code(buf, PROTO_E_MISSING_FIELD, "\"kind\"");
    snprintf(buf, sizeof buf, "{\"op\":\"feedback\",%s,\"kind\":\"x\"}", d);
    expect_code(buf, PROTO_E_INVALID_VALUE, "\"kind\"");
    snprintf(buf, sizeof buf, "{\"op\":\"feedback\",%s,\"kind\":\"outcome\"}",
             d);
    expect_code(buf, PROTO_E_MISSING_FIELD, "\"success\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"outcome\",\"success\":1}", d);
    expect_code(buf, PROTO_E_WRONG_TYPE, "\"success\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"outcome\",\"reward\":1.5}", d);
    expect_code(buf, PROTO_E_INVALID_VALUE, "\"reward\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"outcome\",\"reward\":1,"
             "\"success\":true}",
             d);
    expect_code(buf, PROTO_E_INVALID_VALUE, "\"success\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"outcome\",\"success\":true,"
             "\"cost_usd\":-1}",
             d);
    expect_code(buf, PROTO_E_INVALID_VALUE, "\"cost_usd\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"outcome\",\"success\":true,"
             "\"latency_ms\":\"fast\"}",
             d);
    expect_code(buf, PROTO_E_WRONG_TYPE, "\"latency_ms\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"feedback\",%s,\"kind\":\"provider_error\","
             "\"error\":5}",
             d);
    expect_code(buf, PROTO_E_WRONG_TYPE, "\"error\"");
    expect_code("{\"op\":\"export\",\"limit\":0}", PROTO_E_INVALID_VALUE,
                "\"limit\"");
    expect_code("{\"op\":\"export\",\"since\":\"x\"}", PROTO_E_WRONG_TYPE,
                "\"since\"");
    expect_code("{\"op\":\"ping\",\"id\":[1]}", PROTO_E_WRONG_TYPE, "\"id\"");
    expect_code("{\"op\":\"clock\"}", PROTO_E_MISSING_FIELD, "advance_s");
}

static void
test_replies(void **state)
{
    (void)state;
    char *s = proto_write_error("\"q1\"", PROTO_E_UNKNOWN_BUCKET,
                                "unknown bucket \"x\"");
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "q1");
    cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring,
                        "unknown_bucket");
    assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring,
                        "unknown bucket \"x\"");
    cJSON_Delete(j);
    free(s);

    const char *fb[] = {"b", "c\"q"};
    proto_choice_t ch = {.decision = "tok-5_A",
                         .model = "a",
                         .propensity = 0.625,
                         .n_fallbacks = 2,
                         .fallbacks = fb,
                         .expected_cost_usd = 0.002};
    s = proto_write_choice(NULL, &ch);
    proto_reply_t r;
    proto_error_t err;
    assert_int_equal(proto_parse_reply(s, strlen(s), PROTO_OP_CHOOSE, &r, &err),
                     PROTO_OK);
    assert_true(r.ok);
    assert_string_equal(r.decision, "tok-5_A");
    assert_string_equal(r.model, "a");
    assert_true(r.propensity == 0.625);
    assert_int_equal(r.n_fallbacks, 2);
    assert_string_equal(r.fallbacks[1], "c\"q");
    assert_true(r.expected_cost_usd == 0.002);
    assert_false(r.over_budget || r.explored);
    free(s);
    ch.over_budget = ch.explored = 1;
    ch.expected_cost_usd = NAN; /* written null, read NAN */
    s = proto_write_choice("7", &ch);
    assert_int_equal(proto_parse_reply(s, strlen(s), PROTO_OP_CHOOSE, &r, &err),
                     PROTO_OK);
    assert_true(r.over_budget && r.explored && isnan(r.expected_cost_usd));
    free(s);

    s = proto_write_ok(NULL, 1);
    assert_string_equal(s, "{\"ok\":true,\"duplicate\":true}");
    assert_int_equal(
        proto_parse_reply(s, strlen(s), PROTO_OP_FEEDBACK, &r, &err), PROTO_OK);
    assert_true(r.ok && r.duplicate);
    free(s);
    s = proto_write_error(NULL, PROTO_E_DECISION_EXPIRED, "late");
    assert_int_equal(proto_parse_reply(s, strlen(s), PROTO_OP_CHOOSE, &r, &err),
                     PROTO_OK);
    assert_false(r.ok);
    assert_int_equal(r.error.code, PROTO_E_DECISION_EXPIRED);
    assert_string_equal(r.error.message, "late");
    free(s);
}

/* A reply the codec does not accept: the code and the field it names. */
static void
expect_reply(const char *s, proto_op_t op, proto_code_t code, const char *field)
{
    proto_reply_t r;
    proto_error_t err;
    proto_code_t rc = proto_parse_reply(s, strlen(s), op, &r, &err);
    if (rc != code || !strstr(err.message, field))
        fail_msg("%s: got %s \"%s\", want %s naming %s", s, proto_code_name(rc),
                 err.message, proto_code_name(code), field);
}

/* Every field a choose reply needs is checked: never a default. */
static void
test_reply_errors(void **state)
{
    (void)state;
    const proto_op_t C = PROTO_OP_CHOOSE;
    const char *id = "\"decision_id\":\"00000000000004d2\"";
    char buf[512];
    expect_reply("{\"ok\":", C, PROTO_E_BAD_JSON, "JSON");
    expect_reply("[1]", C, PROTO_E_BAD_REQUEST, "object");
    expect_reply("{}", C, PROTO_E_MISSING_FIELD, "reply field \"ok\" missing");
    expect_reply("{\"ok\":1}", C, PROTO_E_WRONG_TYPE, "\"ok\"");
    expect_reply("{\"ok\":false}", C, PROTO_E_MISSING_FIELD,
                 "reply field \"error\" missing");
    expect_reply("{\"ok\":false,\"error\":{\"message\":\"m\"}}", C,
                 PROTO_E_MISSING_FIELD, "\"error.code\"");
    /* the drift of the old hand-written client: numeric id, no
     * propensity */
    expect_reply("{\"ok\":true,\"decision_id\":1234,\"model\":\"a\","
                 "\"propensity\":1,\"fallbacks\":[],"
                 "\"expected_cost_usd\":0}",
                 C, PROTO_E_WRONG_TYPE, "\"decision_id\"");
    expect_reply("{\"ok\":true,\"decision_id\":\"1/2\",\"model\":\"a\"}", C,
                 PROTO_E_INVALID_VALUE, "\"decision_id\"");
    snprintf(buf, sizeof buf, "{\"ok\":true,%s,\"model\":\"a\"}", id);
    expect_reply(buf, C, PROTO_E_MISSING_FIELD,
                 "reply field \"propensity\" missing");
    snprintf(buf, sizeof buf, "{\"ok\":true,%s,\"propensity\":0.5}", id);
    expect_reply(buf, C, PROTO_E_MISSING_FIELD, "\"model\"");
    snprintf(buf, sizeof buf,
             "{\"ok\":true,%s,\"model\":\"a\",\"propensity\":0}", id);
    expect_reply(buf, C, PROTO_E_INVALID_VALUE, "\"propensity\"");
    snprintf(buf, sizeof buf,
             "{\"ok\":true,%s,\"model\":\"a\",\"propensity\":0.5}", id);
    expect_reply(buf, C, PROTO_E_MISSING_FIELD, "\"fallbacks\"");
    snprintf(buf, sizeof buf,
             "{\"ok\":true,%s,\"model\":\"a\",\"propensity\":0.5,"
             "\"fallbacks\":[\"b\",2]}",
             id);
    expect_reply(buf, C, PROTO_E_WRONG_TYPE, "\"fallbacks[1]\"");
    snprintf(buf, sizeof buf,
             "{\"ok\":true,%s,\"model\":\"a\",\"propensity\":0.5,"
             "\"fallbacks\":[]}",
             id);
    expect_reply(buf, C, PROTO_E_MISSING_FIELD, "\"expected_cost_usd\"");
    snprintf(buf, sizeof buf,
             "{\"ok\":true,%s,\"model\":\"a\",\"propensity\":0.5,"
             "\"fallbacks\":[],\"expected_cost_usd\":0,\"explored\":1}",
             id);
    expect_reply(buf, C, PROTO_E_WRONG_TYPE, "\"explored\"");
    /* other ops need "ok" only */
    expect_reply("{\"ok\":true}", PROTO_OP_PING, PROTO_OK, "");

    /* The fallback limit is the daemon's: PROTO_MAX_FALLBACK names are
     * read, one more is an error (not a silent cut). */
    const char *names[PROTO_MAX_FALLBACK + 1];
    char store[PROTO_MAX_FALLBACK + 1][8];
    for (int i = 0; i <= PROTO_MAX_FALLBACK; i++) {
        snprintf(store[i], sizeof store[i], "m%d", i);
        names[i] = store[i];
    }
    proto_choice_t ch = {.decision = "t1",
                         .model = "a",
                         .propensity = 0.5,
                         .n_fallbacks = PROTO_MAX_FALLBACK,
                         .fallbacks = names};
    char *s = proto_write_choice(NULL, &ch);
    proto_reply_t r;
    proto_error_t err;
    assert_int_equal(proto_parse_reply(s, strlen(s), C, &r, &err), PROTO_OK);
    assert_int_equal(r.n_fallbacks, PROTO_MAX_FALLBACK);
    assert_string_equal(r.fallbacks[PROTO_MAX_FALLBACK - 1],
                        store[PROTO_MAX_FALLBACK - 1]);
    free(s);
    ch.n_fallbacks = PROTO_MAX_FALLBACK + 1;
    s = proto_write_choice(NULL, &ch);
    expect_reply(s, C, PROTO_E_INVALID_VALUE, "\"fallbacks\"");
    free(s);

    /* an error code of a newer daemon reads as internal_error */
    proto_parse_reply("{\"ok\":false,\"error\":{\"code\":\"new_code\","
                      "\"message\":\"m\"}}",
                      strlen("{\"ok\":false,\"error\":{\"code\":\"new_code\","
                             "\"message\":\"m\"}}"),
                      C, &r, &err);
    assert_false(r.ok);
    assert_int_equal(r.error.code, PROTO_E_INTERNAL);
    assert_string_equal(r.error.message, "new_code: m");
}

/* The models reply: written and read by the codec, every field checked. */
static void
test_models(void **state)
{
    (void)state;
    proto_model_t in[2] = {
        {.name = "a",
         .provider = PROTO_PROVIDER_ANTHROPIC,
         .model = "claude-x",
         .price_in_per_mtok = 3,
         .price_out_per_mtok = 15,
         .health = "ok"},
        {.name = "b",
         .model = "gpt-x",
         .base_url = "https://evil.example",
         .api_key_env = "HOME",
         .price_out_per_mtok = 0.5},
    };
    char *s = proto_write_models("\"q\"", in, 2);
    proto_reply_t r;
    proto_error_t err;
    proto_model_t *out = NULL;
    size_t n = 0;
    assert_int_equal(proto_parse_models(s, strlen(s), &r, &out, &n, &err),
                     PROTO_OK);
    assert_null(strstr(s, "evil")); /* not written */
    free(s);
    assert_true(r.ok);
    assert_int_equal(n, 2);
    assert_memory_equal(&out[0], &in[0], sizeof in[0]);
    assert_string_equal(out[1].name, "b");
    assert_int_equal(out[1].provider, PROTO_PROVIDER_OPENAI);
    assert_true(out[1].price_out_per_mtok == 0.5);
    assert_string_equal(out[1].health, "");
    /* where calls go is the agent's own business: never on the wire */
    assert_string_equal(out[1].base_url, "");
    assert_string_equal(out[1].api_key_env, "");
    free(out);

    const char *bad[][2] = {
        {"{\"ok\":true}", "reply field \"models\" missing"},
        {"{\"ok\":true,\"models\":{}}", "\"models\" must be an array"},
        {"{\"ok\":true,\"models\":[1]}", "\"models[0]\""},
        {"{\"ok\":true,\"models\":[{\"name\":\"a\",\"provider\":\"x\"}]}",
         "\"models[0].provider\""},
        {"{\"ok\":true,\"models\":[{\"name\":\"a\",\"provider\":\"openai\","
         "\"model\":\"m\",\"base_url\":\"\",\"api_key_env\":\"\","
         "\"price_in_per_mtok\":1}]}",
         "reply field \"models[0].price_out_per_mtok\" missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = (proto_model_t *)&r; /* must be reset */
        proto_code_t rc = proto_parse_models(bad[i][0], strlen(bad[i][0]), &r,
                                             &out, &n, &err);
        if (rc == PROTO_OK || !strstr(err.message, bad[i][1]))
            fail_msg("%s: got \"%s\"", bad[i][0], err.message);
        assert_null(out);
    }
    s = proto_write_error(NULL, PROTO_E_INTERNAL, "x");
    assert_int_equal(proto_parse_models(s, strlen(s), &r, &out, &n, &err),
                     PROTO_OK);
    assert_false(r.ok);
    assert_null(out);
    free(s);
}

static void
test_client_round_trip(void **state)
{
    (void)state;
    const char *ex[] = {"gpt-4o"};
    char *s = proto_format_choose("code", ex, 1);
    proto_request_t rq;
    proto_error_t err;
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.bucket, "code");
    assert_string_equal(rq.exclude[0], "gpt-4o");
    assert_string_equal(rq.escalates, "");
    free(s);
    s = proto_format_escalate("code", ex, 1, "AgAB-x_9");
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.exclude[0], "gpt-4o");
    assert_string_equal(rq.escalates, "AgAB-x_9");
    free(s);
    s = proto_format_escalate("code", NULL, 0, NULL);
    assert_string_equal(s, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    free(s);

    proto_feedback_t f = {.decision = "t99",
                          .kind = PROTO_KIND_OUTCOME,
                          .has_reward = 1,
                          .reward = 0.5,
                          .has_cost = 1,
                          .cost_usd = 0.125,
                          .has_latency = 1,
                          .latency_ms = 33};
    s = proto_format_feedback(&f);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.decision, "t99");
    assert_true(rq.reward == 0.5 && rq.cost_usd == 0.125 &&
                rq.latency_ms == 33);
    free(s);
    proto_feedback_t g = {.decision = "t1",
                          .kind = PROTO_KIND_PROVIDER_ERROR,
                          .error = "timeout"};
    s = proto_format_feedback(&g);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_int_equal(rq.kind, PROTO_KIND_PROVIDER_ERROR);
    assert_string_equal(rq.error, "timeout");
    free(s);
    for (int c = 1; c < PROTO_E_COUNT; c++)
        assert_int_equal(proto_code_parse(proto_code_name(c)), c);

    /* the other client formats parse back on the server side */
    s = proto_format_export(1700000000.5, 1, 0x4d2, 50);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_int_equal(rq.op, PROTO_OP_EXPORT);
    assert_true(rq.since == 1700000000.5 && rq.has_after && rq.after == 0x4d2 &&
                rq.limit == 50);
    free(s);
    s = proto_format_export(-INFINITY, 0, 0, 10);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_true(isinf(rq.since) && !rq.has_after && rq.limit == 10);
    free(s);
    s = proto_format_clock(2.5);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_true(rq.op == PROTO_OP_CLOCK && rq.advance_s == 2.5);
    free(s);
    s = proto_format_simple(PROTO_OP_MODELS);
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_int_equal(rq.op, PROTO_OP_MODELS);
    free(s);

    /* a local decision's event: book, read back by the server side */
    proto_feedback_t h = {.kind = PROTO_KIND_OUTCOME,
                          .has_success = 1,
                          .success = 1,
                          .has_cost = 1,
                          .cost_usd = 0.25,
                          .has_latency = 1,
                          .latency_ms = 5,
                          .model = "m2"};
    proto_local_t l = {
        .id = "ab-12", .bucket = "b", .model = "m", .time = 100.5};
    s = proto_format_book(&l, &h);
    assert_string_equal(s, "{\"op\":\"book\",\"local\":{\"id\":\"ab-12\","
                           "\"bucket\":\"b\",\"model\":\"m\",\"time\":100.5},"
                           "\"kind\":\"outcome\",\"success\":true,"
                           "\"cost_usd\":0.25,\"model\":\"m2\","
                           "\"latency_ms\":5}");
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_int_equal(rq.op, PROTO_OP_BOOK);
    assert_string_equal(rq.local_id, "ab-12");
    assert_string_equal(rq.bucket, "b");
    assert_string_equal(rq.local_model, "m");
    assert_string_equal(rq.model, "m2");
    assert_true(rq.local_time == 100.5 && rq.reward == 1 &&
                rq.cost_usd == 0.25 && rq.latency_ms == 5);
    free(s);
}

/* book: every field of "local" named when it is wrong, the event's as in
 * feedback. */
static void
test_book_errors(void **state)
{
    (void)state;
    const char *ev = "\"kind\":\"outcome\",\"success\":true";
    char buf[512];
    snprintf(buf, sizeof buf, "{\"op\":\"book\",%s}", ev);
    expect_code(buf, PROTO_E_MISSING_FIELD, "\"local\"");
    snprintf(buf, sizeof buf, "{\"op\":\"book\",\"local\":[],%s}", ev);
    expect_code(buf, PROTO_E_WRONG_TYPE, "\"local\"");
    static const struct {
        const char *local;
        proto_code_t code;
        const char *field;
    } t[] = {
        {"{\"bucket\":\"b\",\"model\":\"m\",\"time\":1}", PROTO_E_MISSING_FIELD,
         "\"local.id\""},
        {"{\"id\":7,\"bucket\":\"b\",\"model\":\"m\",\"time\":1}",
         PROTO_E_WRONG_TYPE, "\"local.id\""},
        {"{\"id\":\"a b\",\"bucket\":\"b\",\"model\":\"m\",\"time\":1}",
         PROTO_E_INVALID_VALUE, "\"local.id\""},
        {"{\"id\":\"0123456789012345678901234567890123456789012345678901234"
         "567890123\",\"bucket\":\"b\",\"model\":\"m\",\"time\":1}",
         PROTO_E_INVALID_VALUE, "\"local.id\""},
        {"{\"id\":\"a\",\"model\":\"m\",\"time\":1}", PROTO_E_MISSING_FIELD,
         "\"local.bucket\""},
        {"{\"id\":\"a\",\"bucket\":\"\",\"model\":\"m\",\"time\":1}",
         PROTO_E_INVALID_VALUE, "\"local.bucket\""},
        {"{\"id\":\"a\",\"bucket\":\"b\",\"model\":false,\"time\":1}",
         PROTO_E_WRONG_TYPE, "\"local.model\""},
        {"{\"id\":\"a\",\"bucket\":\"b\",\"model\":\"m\"}",
         PROTO_E_MISSING_FIELD, "\"local.time\""},
        {"{\"id\":\"a\",\"bucket\":\"b\",\"model\":\"m\",\"time\":\"now\"}",
         PROTO_E_WRONG_TYPE, "\"local.time\""},
        {"{\"id\":\"a\",\"bucket\":\"b\",\"model\":\"m\",\"time\":-1}",
         PROTO_E_INVALID_VALUE, "\"local.time\""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(buf, sizeof buf, "{\"op\":\"book\",\"local\":%s,%s}",
                 t[i].local, ev);
        expect_code(buf, t[i].code, t[i].field);
    }
    const char *l =
        "\"local\":{\"id\":\"a\",\"bucket\":\"b\",\"model\":\"m\",\"time\":1}";
    snprintf(buf, sizeof buf, "{\"op\":\"book\",%s}", l);
    expect_code(buf, PROTO_E_MISSING_FIELD, "\"kind\"");
    snprintf(buf, sizeof buf,
             "{\"op\":\"book\",%s,\"kind\":\"outcome\",\"success\":true,"
             "\"cost_usd\":-1}",
             l);
    expect_code(buf, PROTO_E_INVALID_VALUE, "\"cost_usd\"");
}

/* The tenant of a choose (and of its escalation) and of a book's local
 * decision: 1 to 31 bytes of [A-Za-z0-9._-], absent or null for none;
 * anything else an error naming the field. The client's formats write it
 * only when there is one. */
static void
test_tenant(void **state)
{
    (void)state;
    proto_request_t rq;
    proto_error_t err;
    const char *t31 = "abcdefghijklmnopqrstuvwxyz.-_09";
    assert_int_equal(strlen(t31), PROTO_TENANT_MAX - 1);
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"op\":\"choose\",\"bucket\":\"x\",\"tenant\":\"%s\"}", t31);
    assert_int_equal(parse(buf, &rq, &err), PROTO_OK);
    assert_string_equal(rq.tenant, t31);
    assert_int_equal(parse("{\"op\":\"choose\",\"bucket\":\"x\","
                           "\"escalates\":\"AgAB\",\"tenant\":\"Acme.EU\"}",
                           &rq, &err),
                     PROTO_OK);
    assert_string_equal(rq.tenant, "Acme.EU");
    assert_string_equal(rq.escalates, "AgAB");
    assert_int_equal(parse("{\"op\":\"choose\",\"bucket\":\"x\"}", &rq, &err),
                     PROTO_OK);
    assert_string_equal(rq.tenant, "");
    assert_int_equal(
        parse("{\"op\":\"choose\",\"bucket\":\"x\",\"tenant\":null}", &rq,
              &err),
        PROTO_OK);
    assert_string_equal(rq.tenant, "");
    static const struct {
        const char *value;
        proto_code_t code;
    } bad[] = {
        {"\"abcdefghijklmnopqrstuvwxyz.-_09x\"", PROTO_E_INVALID_VALUE},
        {"\"\"", PROTO_E_INVALID_VALUE},
        {"\"ac me\"", PROTO_E_INVALID_VALUE},
        {"\"acme/eu\"", PROTO_E_INVALID_VALUE},
        {"\"caf\xc3\xa9\"", PROTO_E_INVALID_VALUE},
        {"7", PROTO_E_WRONG_TYPE},
        {"true", PROTO_E_WRONG_TYPE},
        {"[\"acme\"]", PROTO_E_WRONG_TYPE},
        {"{\"name\":\"acme\"}", PROTO_E_WRONG_TYPE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf,
                 "{\"op\":\"choose\",\"bucket\":\"x\",\"tenant\":%s}",
                 bad[i].value);
        expect_code(buf, bad[i].code, "field \"tenant\"");
        snprintf(buf, sizeof buf,
                 "{\"op\":\"book\",\"local\":{\"id\":\"a\",\"bucket\":\"b\","
                 "\"model\":\"m\",\"time\":1,\"tenant\":%s},"
                 "\"kind\":\"correction\"}",
                 bad[i].value);
        expect_code(buf, bad[i].code, "field \"local.tenant\"");
    }
    assert_true(proto_tenant_valid("acme") && proto_tenant_valid(t31));
    assert_false(proto_tenant_valid("") || proto_tenant_valid("a b") ||
                 proto_tenant_valid("abcdefghijklmnopqrstuvwxyz.-_09x"));

    /* the client's side */
    const char *ex[] = {"m"};
    char *s = proto_format_choose_tenant("code", ex, 1, NULL, "acme");
    assert_string_equal(s, "{\"op\":\"choose\",\"bucket\":\"code\","
                           "\"exclude\":[\"m\"],\"tenant\":\"acme\"}");
    free(s);
    s = proto_format_choose_tenant("code", NULL, 0, "AgAB", "acme");
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.escalates, "AgAB");
    assert_string_equal(rq.tenant, "acme");
    free(s);
    s = proto_format_choose_tenant("code", NULL, 0, "", "");
    assert_string_equal(s, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    free(s);
    proto_feedback_t f = {.kind = PROTO_KIND_CORRECTION};
    proto_local_t l = {
        .id = "L1", .bucket = "b", .model = "m", .time = 2.5, .tenant = "acme"};
    s = proto_format_book(&l, &f);
    assert_string_equal(s, "{\"op\":\"book\",\"local\":{\"id\":\"L1\","
                           "\"bucket\":\"b\",\"model\":\"m\",\"time\":2.5,"
                           "\"tenant\":\"acme\"},\"kind\":\"correction\"}");
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.tenant, "acme");
    assert_string_equal(rq.local_id, "L1");
    free(s);
    l.tenant = "";
    s = proto_format_book(&l, &f);
    assert_null(strstr(s, "tenant"));
    assert_int_equal(parse(s, &rq, &err), PROTO_OK);
    assert_string_equal(rq.tenant, "");
    free(s);
}

/* The models reply with its buckets: written and read back; every bad
 * field of a bucket named. */
static void
test_catalog(void **state)
{
    (void)state;
    proto_model_t ms[3];
    memset(ms, 0, sizeof ms);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        snprintf(ms[i].name, sizeof ms[i].name, "%s", names[i]);
        snprintf(ms[i].model, sizeof ms[i].model, "%s", names[i]);
        ms[i].price_in_per_mtok = i + 1;
        ms[i].price_out_per_mtok = 2 * i + 1;
    }
    proto_bucket_t bs[2] = {{.name = "x",
                             .n_models = 2,
                             .models = {2, 0},
                             .expected_tokens_in = 100,
                             .expected_tokens_out = 10},
                            {.name = "y", .n_models = 1, .models = {1}}};
    char *s = proto_write_catalog("7", ms, 3, bs, 2);
    proto_reply_t r;
    proto_error_t err;
    proto_catalog_t cat;
    assert_int_equal(proto_parse_catalog(s, strlen(s), &r, &cat, &err),
                     PROTO_OK);
    free(s);
    assert_true(r.ok && cat.has_buckets);
    assert_int_equal(cat.n_models, 3);
    assert_int_equal(cat.n_buckets, 2);
    assert_string_equal(cat.buckets[0].name, "x");
    assert_int_equal(cat.buckets[0].n_models, 2);
    assert_int_equal(cat.buckets[0].models[0], 2);
    assert_int_equal(cat.buckets[0].models[1], 0);
    assert_true(cat.buckets[0].expected_tokens_in == 100 &&
                cat.buckets[0].expected_tokens_out == 10);
    assert_string_equal(cat.models[cat.buckets[1].models[0]].name, "b");
    proto_catalog_free(&cat);
    /* an older daemon: no buckets */
    s = proto_write_models(NULL, ms, 3);
    assert_int_equal(proto_parse_catalog(s, strlen(s), &r, &cat, &err),
                     PROTO_OK);
    assert_true(!cat.has_buckets && cat.n_buckets == 0 && cat.n_models == 3);
    proto_catalog_free(&cat);
    free(s);
    static const struct {
        const char *buckets;
        proto_code_t code;
        const char *field;
    } t[] = {
        {"{}", PROTO_E_WRONG_TYPE, "\"buckets\""},
        {"[1]", PROTO_E_WRONG_TYPE, "\"buckets[0]\""},
        {"[{\"models\":[],\"expected_tokens_in\":1,\"expected_tokens_out\":1}]",
         PROTO_E_MISSING_FIELD, "\"buckets[0].name\""},
        {"[{\"name\":\"x\",\"expected_tokens_in\":1,\"expected_tokens_out\":1}"
         "]",
         PROTO_E_MISSING_FIELD, "\"buckets[0].models\""},
        {"[{\"name\":\"x\",\"models\":[\"q\"],\"expected_tokens_in\":1,"
         "\"expected_tokens_out\":1}]",
         PROTO_E_INVALID_VALUE, "\"buckets[0].models[0]\""},
        {"[{\"name\":\"x\",\"models\":[\"a\",\"a\"],\"expected_tokens_in\":1,"
         "\"expected_tokens_out\":1}]",
         PROTO_E_INVALID_VALUE, "\"buckets[0].models[1]\""},
        {"[{\"name\":\"x\",\"models\":[\"a\"],\"expected_tokens_out\":1}]",
         PROTO_E_MISSING_FIELD, "\"buckets[0].expected_tokens_in\""},
        {"[{\"name\":\"x\",\"models\":[],\"expected_tokens_in\":1,"
         "\"expected_tokens_out\":1},{\"name\":\"x\",\"models\":[],"
         "\"expected_tokens_in\":1,\"expected_tokens_out\":1}]",
         PROTO_E_INVALID_VALUE, "\"buckets[1].name\""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "{\"ok\":true,\"models\":[{\"name\":\"a\",\"provider\":"
                 "\"openai\",\"model\":\"a\",\"price_in_per_mtok\":1,"
                 "\"price_out_per_mtok\":1}],\"buckets\":%s}",
                 t[i].buckets);
        proto_code_t got =
            proto_parse_catalog(buf, strlen(buf), &r, &cat, &err);
        if (got != t[i].code || !strstr(err.message, t[i].field))
            fail_msg("%s: expected %s naming %s, got %s (%s)", t[i].buckets,
                     proto_code_name(t[i].code), t[i].field,
                     proto_code_name(got), err.message);
        assert_true(cat.models == NULL && cat.buckets == NULL);
    }
}

/* Bytes that are not UTF-8 are replaced, well-formed sequences kept. */
static void
test_quote_utf8(void **state)
{
    (void)state;
    char buf[128];
    proto_json_quote(buf, sizeof buf,
                     "a\xff\xfe"
                     "b");
    assert_string_equal(buf, "\"a\\ufffd\\ufffdb\"");
    proto_json_quote(buf, sizeof buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(buf, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* overlong, surrogate, truncated, above U+10FFFF */
    proto_json_quote(buf, sizeof buf,
                     "\xc0\xaf|\xed\xa0\x80|\xe2\x82|\xf4\x90\x80\x80");
    assert_string_equal(buf, "\"\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
                             "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

/* A conflicting outcome's reply, written and read back; its fields
 * checked by type. */
static void
test_conflict_reply(void **state)
{
    (void)state;
    proto_reply_t r;
    proto_error_t err;
    char *s = proto_write_conflict("9", 0.25);
    assert_string_equal(s, "{\"ok\":true,\"id\":9,\"duplicate\":true,"
                           "\"conflict\":true,\"recorded_reward\":0.25}");
    assert_int_equal(
        proto_parse_reply(s, strlen(s), PROTO_OP_FEEDBACK, &r, &err), PROTO_OK);
    assert_true(r.ok && r.duplicate && r.conflict && r.recorded_reward == 0.25);
    free(s);
    s = proto_write_ok(NULL, 1); /* a plain duplicate: no conflict */
    assert_int_equal(
        proto_parse_reply(s, strlen(s), PROTO_OP_FEEDBACK, &r, &err), PROTO_OK);
    assert_true(r.duplicate && !r.conflict && isnan(r.recorded_reward));
    free(s);
    static const char *const bad[][2] = {
        {"{\"ok\":true,\"duplicate\":true,\"conflict\":1}", "\"conflict\""},
        {"{\"ok\":true,\"duplicate\":true,\"conflict\":true}",
         "\"recorded_reward\""},
        {"{\"ok\":true,\"conflict\":true,\"recorded_reward\":\"1\"}",
         "\"recorded_reward\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(proto_parse_reply(bad[i][0], strlen(bad[i][0]),
                                               PROTO_OP_FEEDBACK, &r, &err),
                             PROTO_OK);
        if (!strstr(err.message, bad[i][1]))
            fail_msg("%s: %s", bad[i][0], err.message);
    }
}

/* Endpoints: the ones bursar speaks pass; the others are named with what
 * to write instead. */
static void
test_endpoint_check(void **state)
{
    (void)state;
    static const char *const ok[] = {"tcp://127.0.0.1:7878",
                                     "tcp://localhost:1",
                                     "tcp://*:7878",
                                     "tcp://[::1]:7878",
                                     "ipc:///tmp/b.sock",
                                     "ipc://@abstract",
                                     "inproc://x"};
    char msg[600];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (proto_endpoint_check(ok[i], msg, sizeof msg) != 0)
            fail_msg("%s refused: %s", ok[i], msg);
    static const char *const bad[][2] = {
        {"localhost:7979", "write tcp://localhost:7979"},
        {"127.0.0.1:7878", "write tcp://127.0.0.1:7878"},
        {"/run/bursar.sock", "write ipc:///run/bursar.sock"},
        {"", "an empty endpoint"},
        {"tcp://localhost", "needs a host and a port"},
        {"tcp://:7878", "needs a host and a port"},
        {"tcp://host:", "needs a host and a port"},
        {"tcp://[::1]", "needs a host and a port"},
        {"ipc://", "names no path"},
        {"http://localhost:7878", "transport http is not one bursar speaks"},
        {"udp://x:1", "transport udp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        if (proto_endpoint_check(bad[i][0], msg, sizeof msg) != -1 ||
            !strstr(msg, bad[i][1]))
            fail_msg("'%s': '%s' (wanted '%s')", bad[i][0], msg, bad[i][1]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_reply_errors),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_client_round_trip),
        cmocka_unit_test(test_book_errors),
        cmocka_unit_test(test_tenant),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_quote_utf8),
        cmocka_unit_test(test_conflict_reply),
        cmocka_unit_test(test_endpoint_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
