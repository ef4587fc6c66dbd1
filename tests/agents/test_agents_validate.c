/*
 * test_agents_validate.c - validators (agents/validate.h), intent bucket
 * rules (agents/route.h) and the scenario reader (agents/simprov.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/route.h"
#include "agents/simprov.h"
#include "agents/validate.h"

static validator_t *
mk(const char *spec_json)
{
    cJSON *s = spec_json ? cJSON_Parse(spec_json) : NULL;
    if (spec_json)
        assert_non_null(s);
    validator_t *v = NULL;
    char err[256];
    int rc = validator_parse(s, &v, err, sizeof(err));
    cJSON_Delete(s);
    if (rc != 0)
        fail_msg("validator_parse(%s): %s", spec_json, err);
    return v;
}

static int
parse_fails(const char *spec_json, const char *needle)
{
    cJSON *s = cJSON_Parse(spec_json);
    validator_t *v = NULL;
    char err[256] = "";
    int rc = validator_parse(s, &v, err, sizeof(err));
    cJSON_Delete(s);
    assert_null(v);
    assert_non_null(strstr(err, needle));
    return rc != 0;
}

static int
ok(validator_t *v, const char *text)
{
    char why[256];
    return validator_check(v, text, why, sizeof(why));
}

static void
test_none_and_json(void **state)
{
    (void)state;
    validator_t *v = mk(NULL);
    assert_string_equal(validator_kind(v), "none");
    assert_true(ok(v, "anything"));
    validator_destroy(&v);
    assert_null(v);
    v = mk("\"none\"");
    assert_true(ok(v, ""));
    validator_destroy(&v);

    v = mk("\"json\"");
    assert_true(ok(v, "{\"a\":1}"));
    assert_true(ok(v, "[1,2]"));
    assert_true(ok(v, "```json\n{\"a\":1}\n```\n"));
    assert_false(ok(v, "{\"a\":"));
    assert_false(ok(v, "Sure! Here is the JSON"));
    char why[128];
    assert_false(validator_check(v, "nope", why, sizeof(why)));
    assert_string_equal(why, "output is not valid JSON");
    validator_destroy(&v);
}

static void
test_json_keys(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"json\",\"required\":{\"name\":\"string\","
                        "\"age\":\"integer\",\"tags\":\"array\"}}");
    assert_string_equal(validator_kind(v), "json_keys");
    assert_true(ok(v, "{\"name\":\"x\",\"age\":3,\"tags\":[]}"));
    char why[128];
    assert_false(
        validator_check(v, "{\"name\":\"x\",\"tags\":[]}", why, sizeof(why)));
    assert_non_null(strstr(why, "\"age\" missing"));
    assert_false(validator_check(v, "{\"name\":1,\"age\":3,\"tags\":[]}", why,
                                 sizeof(why)));
    assert_non_null(strstr(why, "wrong type"));
    assert_false(ok(v, "{\"name\":\"x\",\"age\":3.5,\"tags\":[]}"));
    assert_false(ok(v, "[1]"));
    validator_destroy(&v);
    v = mk("{\"type\":\"json_keys\",\"keys\":[\"a\",\"b\"]}");
    assert_true(ok(v, "{\"a\":null,\"b\":{}}"));
    assert_false(ok(v, "{\"a\":1}"));
    validator_destroy(&v);
    assert_true(parse_fails("{\"type\":\"json\",\"keys\":{\"a\":\"str\"}}",
                            "validate.keys.a"));
    assert_true(parse_fails("{\"type\":\"json_keys\"}", "needs"));
}

static void
test_regex_and_length(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"regex\",\"pattern\":\"^[0-9]+$\"}");
    assert_true(ok(v, "12345"));
    assert_false(ok(v, "12a45"));
    validator_destroy(&v);
    v = mk("{\"type\":\"regex\",\"pattern\":\"yes\",\"icase\":true}");
    assert_true(ok(v, "well, YES."));
    validator_destroy(&v);
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"(\"}",
                            "validate.pattern"));
    v = mk("{\"type\":\"max_length\",\"max\":5}");
    assert_true(ok(v, "12345"));
    assert_false(ok(v, "123456"));
    validator_destroy(&v);
    /* all of a list, in order */
    v = mk("[\"json\",{\"type\":\"max_length\",\"max\":8}]");
    assert_string_equal(validator_kind(v), "all");
    assert_true(ok(v, "{\"a\":1}"));
    assert_false(ok(v, "{\"a\":12345}"));
    assert_false(ok(v, "x"));
    validator_destroy(&v);
    assert_true(parse_fails("\"yaml\"", "unknown validator"));
    assert_true(parse_fails("{\"type\":\"max_length\"}", "validate.max"));
}

static void
test_command(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"command\",\"cmd\":\"grep -q OK\"}");
    assert_true(ok(v, "all OK here"));
    char why[128];
    assert_false(validator_check(v, "nope", why, sizeof(why)));
    assert_non_null(strstr(why, "status 1"));
    validator_destroy(&v);
    /* a command that never reads its input still decides */
    v = mk("{\"type\":\"command\",\"cmd\":\"exit 0\"}");
    char *big = malloc(1 << 20);
    memset(big, 'x', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    assert_true(ok(v, big));
    free(big);
    validator_destroy(&v);
    /* the command does not see the agent's API keys, but has a PATH */
    setenv("OPENAI_API_KEY", "sk-test-secret", 1);
    v = mk("{\"type\":\"command\",\"cmd\":"
           "\"test -z \\\"$OPENAI_API_KEY\\\" && test -n \\\"$PATH\\\"\"}");
    assert_true(ok(v, "x"));
    validator_destroy(&v);
    unsetenv("OPENAI_API_KEY");
    v = mk("{\"type\":\"command\",\"cmd\":\"sleep 5\",\"timeout_ms\":200}");
    assert_false(validator_check(v, "x", why, sizeof(why)));
    assert_string_equal(why, "command timed out");
    validator_destroy(&v);
}

static void
test_route(void **state)
{
    (void)state;
    cJSON *spec = cJSON_Parse(
        "{\"default\":\"chat\",\"rules\":["
        "{\"bucket\":\"code\",\"keywords\":[\"#include\",\"def \"]},"
        "{\"bucket\":\"extraction\",\"regex\":\"extract|json\","
        "\"icase\":true},"
        "{\"bucket\":\"summarize\",\"min_length\":50},"
        "{\"bucket\":\"never\",\"keywords\":[\"x\"],\"max_length\":0}]}");
    route_t *r = NULL;
    char err[256];
    assert_int_equal(route_parse(spec, &r, err, sizeof(err)), 0);
    cJSON_Delete(spec);
    assert_string_equal(route_bucket(r, "mine", "def f():"), "mine");
    assert_string_equal(route_bucket(r, NULL, "write DEF f(): ..."), "code");
    assert_string_equal(route_bucket(r, "", "Extract the names"), "extraction");
    /* first match wins: code before extraction */
    assert_string_equal(route_bucket(r, NULL, "def to_json(x):"), "code");
    assert_string_equal(
        route_bucket(r, NULL,
                     "a long text a long text a long text a long text a long"),
        "summarize");
    assert_string_equal(route_bucket(r, NULL, "hello"), "chat");
    route_destroy(&r);
    assert_null(r);
    assert_int_equal(route_parse(NULL, &r, err, sizeof(err)), 0);
    assert_string_equal(route_bucket(r, NULL, "x"), "default");
    route_destroy(&r);
    spec = cJSON_Parse("{\"rules\":[{\"keywords\":[\"a\"]}]}");
    assert_int_equal(route_parse(spec, &r, err, sizeof(err)), BURSAR_EFORMAT);
    assert_non_null(strstr(err, "routing.rules[0].bucket"));
    cJSON_Delete(spec);
}

/* A misspelt key or a value of the wrong type is an error naming its path:
 * a rule whose "keyword" went unread would match every prompt. */
static void
test_route_strict(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"rules\":[{\"bucket\":\"c\",\"keyword\":[\"a\"]}]}",
         "routing.rules[0].keyword: unknown key"},
        {"{\"defualt\":\"chat\"}", "routing.defualt: unknown key"},
        {"{\"default\":1}", "routing.default: must be a string"},
        {"{\"rules\":{}}", "routing.rules: must be an array"},
        {"{\"rules\":[{\"bucket\":\"a\"},{\"bucket\":\"b\","
         "\"min_length\":\"9\"}]}",
         "routing.rules[1].min_length: must be a number"},
        {"{\"rules\":[{\"bucket\":\"a\",\"regex\":\"x\",\"icase\":1}]}",
         "routing.rules[0].icase: must be true or false"},
        {"{\"rules\":[{\"bucket\":\"a\",\"keywords\":\"x\"}]}",
         "routing.rules[0].keywords: must be an array"},
        {"{\"rules\":[7]}", "routing.rules[0]: must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *spec = cJSON_Parse(bad[i][0]);
        route_t *r = NULL;
        char err[256] = "";
        assert_int_equal(route_parse(spec, &r, err, sizeof(err)),
                         BURSAR_EFORMAT);
        assert_null(r);
        if (strcmp(err, bad[i][1]) != 0)
            fail_msg("%s: got \"%s\"", bad[i][0], err);
        cJSON_Delete(spec);
    }
}

static void
test_scenario(void **state)
{
    (void)state;
    simprov_t *s = NULL;
    char err[256];
    const char *json =
        "{\"seed\":3,\"tasks\":{\"count\":1000,\"buckets\":{\"a\":3,\"b\":1}},"
        "\"models\":{\"good\":{\"success\":0.9,\"success_by_bucket\":"
        "{\"b\":0.1},\"latency_ms\":100,\"tokens_in\":1000,\"tokens_out\":"
        "100,\"outages\":[{\"from\":10,\"to\":20}],"
        "\"changes\":[{\"at\":500,\"success\":0.2}]},"
        "\"fixed\":{\"success\":1,\"cost_usd\":0.5}}}";
    assert_int_equal(simprov_parse(json, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    int na = 0;
    for (size_t i = 0; i < 1000; i++)
        na += strcmp(simprov_task_bucket(s, i), "a") == 0;
    assert_true(na > 680 && na < 820); /* 750 expected */
    int succ_a = 0, succ_b = 0, succ_late = 0;
    simprov_draw_t d;
    for (int i = 0; i < 1000; i++) {
        simprov_call(s, "good", "a", 100, &d);
        assert_true(d.known && !d.outage);
        assert_true(d.latency_ms >= 75 && d.latency_ms <= 125);
        succ_a += d.success;
        simprov_call(s, "good", "b", 100, &d);
        succ_b += d.success;
        simprov_call(s, "good", "a", 600, &d);
        succ_late += d.success;
    }
    assert_true(succ_a > 850 && succ_a < 950);
    assert_true(succ_b > 50 && succ_b < 150);
    assert_true(succ_late > 150 && succ_late < 250);
    simprov_call(s, "good", "a", 15, &d);
    assert_true(d.outage && !d.success);
    simprov_call(s, "good", "a", 20, &d);
    assert_false(d.outage);
    simprov_call(s, "fixed", "a", 0, &d);
    assert_true(d.success && d.cost_usd == 0.5);
    simprov_call(s, "nobody", "a", 0, &d);
    assert_false(d.known);
    simprov_destroy(&s);
    assert_null(s);
    assert_int_equal(simprov_parse("{\"models\":{\"m\":{\"success\":2}}}", &s,
                                   err, sizeof(err)),
                     BURSAR_EFORMAT);
    assert_non_null(strstr(err, "$.models.m"));
    assert_int_equal(simprov_parse("[]", &s, err, sizeof(err)), BURSAR_EFORMAT);
}

static void
test_scenario_sim_format(void **state)
{
    (void)state;
    simprov_t *s = NULL;
    char err[256];
    const char *json =
        "{\"requests\":1000,\"seed\":3,\"traffic\":{\"code\":0.5,"
        "\"chat\":0.5},\"models\":{"
        "\"big\":{\"cost_usd\":0.01,\"success\":{\"code\":0.9,\"chat\":"
        "0.8}},"
        "\"coder\":{\"cost_usd\":{\"code\":0.002},\"success\":{\"code\":"
        "0.8}},"
        "\"mid\":{\"cost_usd\":0.004,\"success\":0.7}},"
        "\"events\":[{\"at\":0.4,\"type\":\"price\",\"model\":\"mid\","
        "\"factor\":0.5},"
        "{\"at\":0.6,\"type\":\"down\",\"model\":\"big\",\"for\":100},"
        "{\"at\":800,\"type\":\"down\",\"model\":\"mid\"},"
        "{\"at\":850,\"type\":\"up\",\"model\":\"mid\"},"
        "{\"at\":100,\"type\":\"quality\",\"model\":\"big\","
        "\"bucket\":\"code\",\"success\":0.5,\"ramp\":200}]}";
    assert_int_equal(simprov_parse(json, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    double p, ti, to, c;
    /* not offered in chat: success 0 */
    assert_int_equal(simprov_expected(s, "coder", "chat", 0, &p, &ti, &to, &c),
                     0);
    assert_true(p == 0);
    simprov_expected(s, "coder", "code", 0, &p, &ti, &to, &c);
    assert_true(p == 0.8 && c == 0.002);
    /* price cut at 40% */
    simprov_expected(s, "mid", "chat", 399, &p, &ti, &to, &c);
    assert_true(c == 0.004);
    simprov_expected(s, "mid", "chat", 400, &p, &ti, &to, &c);
    assert_true(c == 0.002);
    /* down at 60% for 100 */
    simprov_expected(s, "big", "chat", 650, &p, &ti, &to, &c);
    assert_true(p == 0);
    simprov_expected(s, "big", "chat", 700, &p, &ti, &to, &c);
    assert_true(p == 0.8);
    /* down at 800, up at 850 */
    simprov_expected(s, "mid", "chat", 820, &p, &ti, &to, &c);
    assert_true(p == 0);
    simprov_expected(s, "mid", "chat", 850, &p, &ti, &to, &c);
    assert_true(p == 0.7);
    /* ramp in code only: 0.9 -> 0.5 over tasks 100..300 */
    simprov_expected(s, "big", "code", 200, &p, &ti, &to, &c);
    assert_true(fabs(p - 0.7) < 1e-9);
    simprov_expected(s, "big", "code", 300, &p, &ti, &to, &c);
    assert_true(fabs(p - 0.5) < 1e-9);
    simprov_expected(s, "big", "chat", 300, &p, &ti, &to, &c);
    assert_true(p == 0.8);
    simprov_draw_t d;
    simprov_call(s, "big", "chat", 650, &d);
    assert_true(d.outage);
    simprov_destroy(&s);

    /* the simulator's own scenario files read as they are */
    const char *src = getenv("BURSAR_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/sim/scenarios/demo.json", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        assert_int_equal(simprov_load(path, &s, err, sizeof(err)), 0);
        assert_true(simprov_task_count(s) > 0);
        simprov_destroy(&s);
    }
    snprintf(path, sizeof(path), "%s/agents/scenarios/demo.json",
             src ? src : ".");
    assert_int_equal(simprov_load(path, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    simprov_destroy(&s);
}

/* Fuzzing findings (tests/fuzz/corpus/validate/regress-*): numbers beyond
 * the integer types were converted to them (undefined behaviour), and a
 * 40-byte pattern made regcomp allocate gigabytes. */
static void
test_fuzz_regressions(void **state)
{
    (void)state;
    assert_true(
        parse_fails("{\"type\":\"max_length\",\"max\":1e999}", "validate.max"));
    assert_true(
        parse_fails("{\"type\":\"max_length\",\"max\":1e16}", "[0, 1e15]"));
    assert_true(parse_fails("{\"type\":\"command\",\"cmd\":\"true\","
                            "\"timeout_ms\":1e300}",
                            "validate.timeout_ms"));
    assert_true(parse_fails("{\"type\":\"command\",\"cmd\":\"true\","
                            "\"timeout_ms\":\"10\"}",
                            "validate.timeout_ms"));
    validator_t *v = mk("{\"type\":\"max_length\",\"max\":1e15}");
    assert_int_equal(ok(v, "short"), 1);
    validator_destroy(&v);

    /* "integer" is a number without a fraction, however large */
    v = mk("{\"type\":\"json\",\"keys\":{\"a\":\"integer\"}}");
    assert_int_equal(ok(v, "{\"a\":1e300}"), 1);
    assert_int_equal(ok(v, "{\"a\":-9223372036854775809}"), 1);
    assert_int_equal(ok(v, "{\"a\":1e999}"), 0); /* cJSON: infinity */
    assert_int_equal(ok(v, "{\"a\":2.5}"), 0);
    validator_destroy(&v);

    /* stacked repetitions double regcomp's tree each: refused before it */
    char pat[128] =
        "{\"type\":\"regex\",\"pattern\":\"[0-\xfc\xff\xff\xff\xff]";
    size_t n = strlen(pat);
    for (int i = 0; i < 42; i++)
        pat[n++] = '+';
    snprintf(pat + n, sizeof pat - n, "\"}");
    assert_true(parse_fails(pat, "two repetition operators in a row"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)\"}",
                            "repetitions nested too deep"));
    /* nested optional repetitions: regcomp ran for minutes on the
     * fuzzer's x**???... (243 bytes) and on ((x?)*)? 300 times over */
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"x**??@?\"}",
                            "two repetition operators in a row"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((x?)*)?\"}",
                            "repetitions nested too deep"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((a{100}){100})\"}",
                            "too large"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"a{1000}b{1000}\"}",
                            "too large"));
    char deep[256] = "{\"type\":\"regex\",\"pattern\":\"";
    n = strlen(deep);
    for (int i = 0; i < 40; i++)
        deep[n++] = '(';
    deep[n++] = 'a';
    for (int i = 0; i < 40; i++)
        deep[n++] = ')';
    snprintf(deep + n, sizeof deep - n, "\"}");
    assert_true(parse_fails(deep, "groups nested too deep"));
    char *lng = malloc(VALIDATE_REGEX_LEN + 64);
    n = (size_t)snprintf(lng, 64, "{\"type\":\"regex\",\"pattern\":\"");
    memset(lng + n, 'a', VALIDATE_REGEX_LEN + 1);
    snprintf(lng + n + VALIDATE_REGEX_LEN + 1, 8, "\"}");
    assert_true(parse_fails(lng, "longer than 1024 bytes"));
    free(lng);
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"(a*)*\\\\1b\"}",
                            "a back-reference"));
    /* what validators ask for in practice still compiles */
    const char *fine[] = {
        "^[0-9]{1,10}$", "^[A-Z]{3}-[0-9]{4}$",  "(ab|cd)+x?[[:alpha:]]*",
        "^.{0,1000}$",   "[]a]+\\\\.[^]x]*",     "(a{2}){3}",
        "(x*)*y",        "^(\\\\([0-9]+\\\\))?$"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        char spec[128];
        snprintf(spec, sizeof spec, "{\"type\":\"regex\",\"pattern\":\"%s\"}",
                 fine[i]);
        v = mk(spec);
        validator_destroy(&v);
    }
    v = mk("{\"type\":\"regex\",\"pattern\":\"^(ab)+$\"}");
    assert_int_equal(ok(v, "ababab"), 1);
    assert_int_equal(ok(v, "aba"), 0);
    validator_destroy(&v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_and_json),
        cmocka_unit_test(test_json_keys),
        cmocka_unit_test(test_regex_and_length),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_route_strict),
        cmocka_unit_test(test_scenario),
        cmocka_unit_test(test_scenario_sim_format),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
