/*
 * test_agents_cli.c - the bursar-agent program, with the mock provider and
 * a ROUTER stand-in for the controller: JSONL in and out, provider details
 * from the models op, bad lines, --config (routing rules, validators),
 * --simulate on a scenario, and the controller away from the start.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/agents/util.h"

static char agent[600];
static char dir[512];
static int mock_port;
static pid_t mock_pid;

static int
setup(void **state)
{
    (void)state;
    tu_bin("bursar-agent", agent, sizeof(agent));
    tu_tmpdir(dir, sizeof(dir));
    mock_pid = tu_mock_start("{\"models\":{"
                             "\"alpha\":{\"default\":{\"content\":\"[1]\"}},"
                             "\"beta\":{\"default\":{\"content\":\"beta!\"}}"
                             "}}",
                             &mock_port);
    return mock_port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    tu_kill(mock_pid, 15);
    tu_rmrf(dir);
    return 0;
}

/* Runs bursar-agent with args (NULL-terminated) and stdin from in_text;
 * returns the results, and the exit status in *rc. */
static cJSON *
run(const char *in_text, int *rc, ...)
{
    char in[700], out[700], err[700];
    snprintf(in, sizeof(in), "%s/in.jsonl", dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    snprintf(err, sizeof(err), "%s/err.txt", dir);
    tu_write_file(in, in_text ? in_text : "");
    char *argv[32];
    int n = 0;
    argv[n++] = agent;
    va_list ap;
    va_start(ap, rc);
    char *a;
    while ((a = va_arg(ap, char *)) && n < 31)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = tu_spawn(argv, in, out, err);
    *rc = tu_wait(pid, 60000);
    return tu_read_jsonl(out);
}

static const cJSON *
f(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Whether the last run's stdout (which "out") or stderr ("err") holds s. */
static int
output_has(const char *which, const char *s)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s.%s", dir, which,
             strcmp(which, "out") == 0 ? "jsonl" : "txt");
    char *text = tu_read_file(path);
    int has = text && strstr(text, s);
    if (!has)
        print_message("%s: no \"%s\" in:\n%s\n", which, s, text ? text : "");
    free(text);
    return has;
}

static void
test_jsonl_stdin(void **state)
{
    (void)state;
    const char *const models[] = {"alpha", "beta"};
    char ep[128], url[128], spool[700];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", mock_port);
    tu_router_base_url(r, url);
    snprintf(spool, sizeof(spool), "%s/a.spool", dir);
    int rc;
    cJSON *res =
        run("{\"id\":1,\"prompt\":\"hello\",\"validate\":\"json\"}\n"
            "\n"
            "this is not json\n"
            "{\"id\":2,\"prompt\":\"x\",\"validate\":{\"type\":"
            "\"regex\",\"pattern\":\"^beta\"}}\n",
            &rc, "--controller", ep, "--spool", spool, "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    int got = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        const cJSON *id = f(x, "id");
        if (cJSON_IsNull(id)) {
            assert_non_null(strstr(f(x, "error")->valuestring, "line 3"));
            got |= 1;
        } else if (id->valueint == 1) {
            assert_string_equal(f(x, "model")->valuestring, "alpha");
            assert_true(cJSON_IsTrue(f(x, "valid")));
            assert_string_equal(f(x, "output")->valuestring, "[1]");
            assert_true(f(x, "tokens_in")->valueint > 0);
            /* the stand-in's price table: 1 and 2 USD per million */
            assert_true(f(x, "cost_usd")->valuedouble > 0);
            got |= 2;
        } else {
            /* alpha fails the regex, beta passes: one escalation */
            assert_string_equal(f(x, "model")->valuestring, "beta");
            assert_int_equal(f(x, "escalations")->valueint, 1);
            assert_true(cJSON_IsTrue(f(x, "valid")));
            got |= 4;
        }
    }
    assert_int_equal(got, 7);
    assert_int_equal(tu_router_feedback(r, "outcome"), 3);
    cJSON_Delete(res);
    tu_router_stop(&r);
}

static void
test_config_routing_validators(void **state)
{
    (void)state;
    const char *const models[] = {"alpha", "beta"};
    char ep[128], url[128], cfg[700], tasks[700], text[1024];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", mock_port);
    tu_router_base_url(r, url);
    snprintf(cfg, sizeof(cfg), "%s/agent.json", dir);
    snprintf(text, sizeof(text),
             "{\"controller\":\"%s\",\"spool\":\"%s/c.spool\","
             "\"max_escalations\":0,"
             "\"routing\":{\"default\":\"chat\",\"rules\":[{\"bucket\":"
             "\"code\",\"keywords\":[\"#include\"]}]},"
             "\"validators\":{\"code\":{\"type\":\"regex\",\"pattern\":"
             "\"^beta\"},\"*\":\"none\"}}",
             ep, dir);
    tu_write_file(cfg, text);
    snprintf(tasks, sizeof(tasks), "%s/tasks.jsonl", dir);
    tu_write_file(tasks, "{\"id\":\"c\",\"prompt\":\"#include <x.h>\"}\n"
                         "{\"id\":\"h\",\"prompt\":\"hi\"}\n");
    int rc;
    cJSON *res = run(NULL, &rc, "--config", cfg, "--quiet", tasks, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 2);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        if (strcmp(f(x, "id")->valuestring, "c") == 0) {
            assert_string_equal(f(x, "bucket")->valuestring, "code");
            /* no escalations allowed: alpha's answer stays invalid */
            assert_false(cJSON_IsTrue(f(x, "valid")));
            assert_int_equal(f(x, "escalations")->valueint, 0);
        } else {
            assert_string_equal(f(x, "bucket")->valuestring, "chat");
            assert_true(cJSON_IsTrue(f(x, "valid")));
        }
    }
    cJSON_Delete(res);
    tu_router_stop(&r);
}

static void
test_simulate(void **state)
{
    (void)state;
    const char *const models[] = {"good", "bad"};
    char ep[128], sc[700], spool[700];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    snprintf(sc, sizeof(sc), "%s/scenario.json", dir);
    snprintf(spool, sizeof(spool), "%s/s.spool", dir);
    tu_write_file(sc, "{\"seed\":5,\"tasks\":{\"count\":50,\"buckets\":"
                      "{\"code\":1}},\"models\":{"
                      "\"good\":{\"success\":1,\"latency_ms\":500,"
                      "\"tokens_in\":1000,\"tokens_out\":1000,"
                      "\"outages\":[{\"from\":10,\"to\":20}]},"
                      "\"bad\":{\"success\":0,\"cost_usd\":0.5}}}");
    int rc;
    double t0 = tu_now();
    cJSON *res = run(NULL, &rc, "--controller", ep, "--simulate", sc, "--spool",
                     spool, "--quiet", "--report", NULL);
    assert_int_equal(rc, 0);
    /* simulated latency is reported, not slept */
    assert_true(tu_now() - t0 < 5.0);
    assert_int_equal(cJSON_GetArraySize(res), 50);
    int outage_steps = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(f(x, "bucket")->valuestring, "code");
        const char *id = f(x, "id")->valuestring;
        int k = atoi(id + 4) - 1; /* "sim-000001" is task 0 */
        const cJSON *s0 = cJSON_GetArrayItem(f(x, "steps"), 0);
        if (k >= 10 && k < 20) {
            /* good is down: fallback to bad, whose answers fail */
            assert_string_equal(f(s0, "outcome")->valuestring,
                                "provider_error");
            assert_false(cJSON_IsTrue(f(x, "valid")));
            assert_string_equal(f(x, "model")->valuestring, "bad");
            outage_steps++;
        } else {
            assert_true(cJSON_IsTrue(f(x, "valid")));
            assert_string_equal(f(x, "model")->valuestring, "good");
            assert_true(f(x, "latency_ms")->valuedouble >= 375);
            /* 1000 x 1 + 1000 x 2 per million, +-25% tokens */
            double c = f(x, "cost_usd")->valuedouble;
            assert_true(c > 0.0015 && c < 0.0045);
        }
    }
    assert_int_equal(outage_steps, 10);
    char errp[700];
    snprintf(errp, sizeof(errp), "%s/err.txt", dir);
    char *report = tu_read_file(errp);
    print_message("%s", report);
    assert_non_null(strstr(report, "Quality: 80.0% of tasks"));
    assert_non_null(strstr(report, "always the strongest model"));
    free(report);
    assert_int_equal(tu_router_feedback(r, "provider_error"), 10);
    assert_int_equal(tu_router_feedback(r, "outcome"), 50);
    cJSON_Delete(res);
    tu_router_stop(&r);
}

static void
test_controller_away(void **state)
{
    (void)state;
    char models[700], spool[700], text[512];
    snprintf(models, sizeof(models), "%s/models.json", dir);
    snprintf(spool, sizeof(spool), "%s/away.spool", dir);
    snprintf(text, sizeof(text),
             "{\"models\":[{\"name\":\"beta\",\"provider\":\"anthropic\","
             "\"model\":\"beta\",\"base_url\":\"http://127.0.0.1:%d\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}]}",
             mock_port);
    tu_write_file(models, text);
    int rc;
    /* nobody listens on port 9; without --models the agent gives up */
    cJSON *res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
                     "tcp://127.0.0.1:9", "--spool", spool, "--quiet", NULL);
    assert_int_equal(rc, 1);
    cJSON_Delete(res);
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--ctl-timeout-ms", "100", "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    const cJSON *x = cJSON_GetArrayItem(res, 0);
    assert_string_equal(f(x, "model")->valuestring, "beta");
    assert_true(cJSON_IsTrue(f(x, "local")));
    assert_true(cJSON_IsNull(f(x, "decision_id")));
    assert_string_equal(
        f(cJSON_GetArrayItem(f(x, "steps"), 0), "feedback")->valuestring,
        "spooled");
    char local[720];
    snprintf(local, sizeof(local), "%s.local", spool);
    struct stat sb;
    assert_int_equal(stat(local, &sb), 0);
    assert_true(sb.st_size > 0);
    cJSON_Delete(res);

    /* the shape of bursard's configuration: an object keyed by name */
    snprintf(text, sizeof(text),
             "{\"models\":{\"beta\":{\"provider\":\"anthropic\","
             "\"base_url\":\"http://127.0.0.1:%d\",\"price_in_per_mtok\":1,"
             "\"price_out_per_mtok\":1}},\"buckets\":{}}",
             mock_port);
    tu_write_file(models, text);
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--ctl-timeout-ms", "100", "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    x = cJSON_GetArrayItem(res, 0);
    assert_string_equal(f(x, "model")->valuestring, "beta");
    assert_true(cJSON_IsTrue(f(x, "valid")));
    cJSON_Delete(res);

    /* a bad table is an error naming the field, not a silent default */
    tu_write_file(models, "{\"models\":{\"beta\":{\"provider\":"
                          "\"anthropic\",\"price_in_per_mtok\":1}}}");
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--ctl-timeout-ms", "100", "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 1);
    cJSON_Delete(res);
    assert_true(output_has(
        "err",
        "models.json: field \"models.beta.price_out_per_mtok\" missing"));
}

static void
test_usage_errors(void **state)
{
    (void)state;
    int rc;
    cJSON *res = run(NULL, &rc, NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    res = run(NULL, &rc, "--controller", "tcp://127.0.0.1:9", "--bogus", NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    res = run(NULL, &rc, "--help", NULL);
    assert_int_equal(rc, 0);
    cJSON_Delete(res);
    assert_true(output_has("out", "usage: bursar-agent"));
    assert_true(output_has("out", "--version"));
    res = run(NULL, &rc, "-h", NULL);
    assert_int_equal(rc, 0);
    cJSON_Delete(res);
    res = run(NULL, &rc, "--version", NULL);
    assert_int_equal(rc, 0);
    cJSON_Delete(res);
    /* the CMake project's version, not the fallback "unknown" */
    char outp[700];
    snprintf(outp, sizeof(outp), "%s/out.jsonl", dir);
    char *ver = tu_read_file(outp);
    int major, minor, patch;
    assert_non_null(ver);
    assert_int_equal(
        sscanf(ver, "bursar-agent %d.%d.%d\n", &major, &minor, &patch), 3);
    free(ver);
    /* every bad option is named, with status 2 */
    static const char *const bad[][3] = {
        {"--controller", NULL, "option --controller needs a value"},
        {"--concurrency", "8x", "--concurrency: '8x' is not a whole number"},
        {"--quiet=1", NULL, "option --quiet takes no value"},
        {"-x", NULL, "unknown option -x"},
        {"a.jsonl", "b.jsonl", "one TASKS file only, not also b.jsonl"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res = run(NULL, &rc, "--spool", "x.spool", bad[i][0], bad[i][1], NULL);
        assert_int_equal(rc, 2);
        cJSON_Delete(res);
        assert_true(output_has("err", bad[i][2]));
    }
}

/* The configuration: a misspelt key or a value of the wrong type is an
 * error naming its JSON path (status 1), never a silent default. */
static void
test_config_strict(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"concurency\":16}",
         "concurency: unknown key"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"provider\":"
         "{\"timeout\":5}}",
         "provider.timeout: unknown key"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"concurrency\":\"16\"}",
         "concurrency: must be a number, got a string"},
        {"{\"controller\":9}", "controller: must be a string, got a number"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"provider\":[]}",
         "provider: must be an object, got an array"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"routing\":{\"rules\":"
         "[{\"bucket\":\"code\",\"keyword\":[\"def \"]}]}}",
         "routing.rules[0].keyword: unknown key"},
    };
    char cfg[700];
    snprintf(cfg, sizeof(cfg), "%s/strict.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_write_file(cfg, bad[i][0]);
        int rc;
        cJSON *res = run(NULL, &rc, "--config", cfg, "--quiet", NULL);
        assert_int_equal(rc, 1);
        cJSON_Delete(res);
        assert_true(output_has("err", bad[i][1]));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_stdin),
        cmocka_unit_test(test_config_routing_validators),
        cmocka_unit_test(test_simulate),
        cmocka_unit_test(test_controller_away),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_config_strict),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
