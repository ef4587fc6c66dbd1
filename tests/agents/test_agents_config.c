/*
 * test_agents_config.c - bursar-agent's configuration, checked as strictly
 * as bursard's, and its models' API keys, against the real bursard on
 * loopback (tests/harness.h), the real bursar-agent and the mock provider:
 *
 *  - a bad configuration is named by its JSON path, status 2, nothing
 *    sent: an unknown key with its near miss ("did you mean"), a wrong
 *    type, a number out of its range, a models table's field, a
 *    validator, the controller endpoint, a bucket of routing or
 *    validators the controller does not have; the numeric options share the
 *    ranges; the gateway's configuration names a near miss too;
 *  - a model whose key variable is unset (or empty): status 2 at start,
 *    naming the model, the variable and how to set it; no request reached
 *    the mock, no decision and no provider_error reached bursard;
 *  - --skip-unkeyed (and "skip_models_without_key": true): that model is
 *    left out of every choose, though the policy (cheapest) would pick
 *    it first; a warning names it; bursard never hears of it;
 *  - a key refused at run time (401): the model is left out of the rest
 *    of the run, the task falls back, and bursard gets no provider_error
 *    (its breaker opens on one: health.failures 1, min_clients 1, so a
 *    wrongly reported error would show as a cooldown).
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

#include "agents/proto.h"
#include "policies/base.h"
#include "tests/agents/util.h"
#include "tests/harness.h"

#define KEY_ENV   "BURSAR_CFG_TEST_KEY"   /* the mock's key */
#define UNSET_ENV "BURSAR_CFG_TEST_UNSET" /* never set but in one test */
#define WRONG_ENV "BURSAR_CFG_TEST_WRONG" /* a key the mock refuses */
#define MOCK_KEY  "cfg-test-key"
#define WRONG_KEY "not-the-key"

static char agent[600];
static char dir[512];
static char spool[700]; /* dir/agent.spool */
static int mock_port;
static pid_t mock_pid;
static th_daemon_t ctl;

/* Every upstream model answers; the mock refuses any key but MOCK_KEY. */
static const char *const SCRIPT =
    "{\"require_key\":\"" MOCK_KEY "\",\"models\":{"
    "\"keyed-up\":{\"default\":{\"content\":\"fine\","
    "\"usage\":{\"in\":100,\"out\":10}}},"
    "\"nokey-up\":{\"default\":{\"content\":\"never\"}},"
    "\"refused-up\":{\"default\":{\"content\":\"never\"}}}}";

/* bursard's models (the agent's --models reads this file too): keyed the
 * dearest, so that the cheapest policy picks the others first. */
static void
models_json(char *buf, size_t cap)
{
    snprintf(
        buf, cap,
        "\"models\":{"
        "\"keyed\":{\"provider\":\"openai\",\"model\":\"keyed-up\","
        "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"" KEY_ENV
        "\",\"price_in_per_mtok\":2,\"price_out_per_mtok\":4},"
        "\"nokey\":{\"provider\":\"openai\",\"model\":\"nokey-up\","
        "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":"
        "\"" UNSET_ENV "\",\"price_in_per_mtok\":0.1,"
        "\"price_out_per_mtok\":0.2},"
        "\"refused\":{\"provider\":\"anthropic\",\"model\":\"refused-up\","
        "\"base_url\":\"http://127.0.0.1:%d\",\"api_key_env\":"
        "\"" WRONG_ENV "\",\"price_in_per_mtok\":0.2,"
        "\"price_out_per_mtok\":0.4}}",
        mock_port, mock_port, mock_port);
}

static int
setup(void **state)
{
    (void)state;
    /* a missing program fails here (a skip would count as passed) */
    th_need("bursard");
    th_need("bursar-mock-provider");
    th_need("bursar-gateway");
    snprintf(agent, sizeof agent, "%s", th_need("bursar-agent"));
    setenv(KEY_ENV, MOCK_KEY, 1);
    setenv(WRONG_ENV, WRONG_KEY, 1);
    unsetenv(UNSET_ENV);
    tu_tmpdir(dir, sizeof dir);
    snprintf(spool, sizeof spool, "%s/agent.spool", dir);
    mock_pid = tu_mock_start(SCRIPT, &mock_port);
    if (mock_port <= 0)
        return -1;
    char models[2048], text[4096];
    models_json(models, sizeof models);
    snprintf(text, sizeof text,
             "{%s,\"buckets\":{"
             "\"unkeyed\":{\"models\":[\"nokey\",\"keyed\"]},"
             "\"refused\":{\"models\":[\"refused\",\"keyed\"]}},"
             "\"policy\":{\"name\":\"cheapest\"},"
             "\"unknown_bucket\":{\"action\":\"error\"},"
             "\"health\":{\"failures\":1,\"min_clients\":1}}",
             models);
    th_setup(&ctl, text);
    th_start(&ctl);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    th_cleanup(&ctl);
    tu_kill(mock_pid, 15);
    tu_rmrf(dir);
    return 0;
}

static const cJSON *
f(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Runs bursar-agent with args (NULL-terminated) on tasks; returns the
 * results, the exit status in *rc; its stderr is in dir/err.txt. */
static cJSON *
run(const char *tasks, int *rc, ...)
{
    char in[700], out[700], err[700];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    tu_write_file(in, tasks ? tasks : "");
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
    *rc = tu_wait(tu_spawn(argv, in, out, err), 60000);
    return tu_read_jsonl(out);
}

/* Whether the last run's stderr holds s (printed when not). */
static int
err_has(const char *s)
{
    char path[700];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    char *text = tu_read_file(path);
    int has = text && strstr(text, s);
    if (!has)
        print_message("stderr: no \"%s\" in:\n%s\n", s, text ? text : "");
    free(text);
    return has;
}

/* n tasks of bucket. */
static char *
tasks_of(const char *bucket, int n)
{
    char *t = bursar_calloc((size_t)n, 96);
    for (int i = 0; i < n; i++) {
        char l[96];
        snprintf(l, sizeof l,
                 "{\"id\":%d,\"bucket\":\"%s\",\"prompt\":\"p\"}\n", i, bucket);
        strcat(t, l);
    }
    return t;
}

/* The mock's requests for every upstream model. */
static int
mock_total(void)
{
    return tu_mock_requests(mock_port, "keyed-up", NULL) +
           tu_mock_requests(mock_port, "nokey-up", NULL) +
           tu_mock_requests(mock_port, "refused-up", NULL);
}

/* Every decision bursard holds (one export page is enough here). */
static cJSON *
export_all(void)
{
    th_client_t *c = th_client_new(ctl.endpoint);
    char *req = proto_format_export(-INFINITY, 0, 0, PROTO_EXPORT_MAX);
    cJSON *j = th_call_raw(c, req, strlen(req));
    free(req);
    th_client_destroy(&c);
    assert_true(cJSON_IsTrue(f(j, "ok")));
    assert_false(cJSON_IsString(f(j, "next")));
    cJSON *d = cJSON_DetachItemFromObject(j, "decisions");
    cJSON_Delete(j);
    assert_true(cJSON_IsArray(d));
    return d;
}

/* bursard's health of model: never a provider error, never cooled. */
static void
assert_healthy(const char *model)
{
    th_client_t *c = th_client_new(ctl.endpoint);
    cJSON *st = th_ok(c, "{\"op\":\"stats\"}");
    th_client_destroy(&c);
    const cJSON *h, *found = NULL;
    cJSON_ArrayForEach(h, f(st, "health"))
    {
        if (strcmp(th_str(h, "model"), model) == 0)
            found = h;
    }
    if (!found)
        fail_msg("model %s is not in bursard's stats health", model);
    if (strcmp(th_str(found, "state"), "ok") != 0 ||
        th_num(found, "errors_total") != 0) {
        char *s = cJSON_PrintUnformatted(found);
        fail_msg("model %s: a provider error reached bursard: %s", model, s);
    }
    cJSON_Delete(st);
}

/* No decision of bursard's export reports a provider error; the number
 * of decisions into *n, those of model in bucket into *of_model, each
 * served by served when not NULL. */
static void
export_check(const char *bucket, const char *model, const char *served, int *n,
             int *of_model)
{
    cJSON *all = export_all();
    const cJSON *d;
    *n = *of_model = 0;
    cJSON_ArrayForEach(d, all)
    {
        (*n)++;
        if (!cJSON_IsNull(f(d, "provider_error"))) {
            char *s = cJSON_PrintUnformatted(d);
            fail_msg("a provider_error reached bursard: %s", s);
        }
        if (strcmp(th_str(d, "bucket"), bucket) != 0 ||
            strcmp(th_str(d, "model"), model) != 0)
            continue;
        (*of_model)++;
        if (served)
            assert_string_equal(th_str(d, "served_model"), served);
    }
    cJSON_Delete(all);
}

/* ------------------------------------------------- bad configurations */

/* Each bad configuration: status 2, the message naming its JSON path,
 * nothing on stdout, nothing sent (the agent stops before the controller
 * or the mock hears of it). */
static void
test_bad_config_named(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        /* a near miss, top level and in an object */
        {"\"concurency\":16",
         "agent.json: concurency: unknown key (did you mean concurrency?)"},
        {"\"provider\":{\"max_attempt\":2}",
         "provider.max_attempt: unknown key (did you mean "
         "provider.max_attempts?)"},
        {"\"provider\":{\"timeout\":5000}",
         "provider.timeout: unknown key (did you mean provider.timeout_ms?)"},
        {"\"skip_model_without_key\":true",
         "skip_model_without_key: unknown key (did you mean "
         "skip_models_without_key?)"},
        /* no near miss: no suggestion */
        {"\"colour\":\"red\"", "agent.json: colour: unknown key\n"},
        {"\"provider.timeout_ms\":5000",
         "provider.timeout_ms: unknown key (a member of an object: write "
         "\"provider\": {\"timeout_ms\": ...})"},
        /* wrong types */
        {"\"max_escalations\":\"2\"",
         "max_escalations: must be a number, got a string"},
        {"\"skip_models_without_key\":\"yes\"",
         "skip_models_without_key: must be a boolean, got a string"},
        {"\"curve\":[]", "curve: must be an object, got an array"},
        /* out of range */
        {"\"concurrency\":0",
         "concurrency: must be a whole number in [1, 1024], got 0"},
        {"\"concurrency\":2.5",
         "concurrency: must be a whole number in [1, 1024], got 2.5"},
        {"\"provider\":{\"max_attempts\":11}",
         "provider.max_attempts: must be a whole number in [1, 10], got 11"},
        {"\"drain_ms\":-1",
         "drain_ms: must be a whole number in [0, 3600000], got -1"},
        {"\"controller_timeout_ms\":0",
         "controller_timeout_ms: must be a whole number in [1, 600000]"},
        /* the models table (the codec's paths) */
        {"\"models\":[{\"name\":\"a\",\"provider\":\"openai\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1},"
         "{\"name\":\"b\",\"provider\":\"openai\",\"api_key_env\":5,"
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}]",
         "field \"models[1].api_key_env\" must be a string, got a number"},
        {"\"models\":{\"a\":{\"provider\":\"openai\",\"api_key\":\"K\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}}",
         "field \"models.a.api_key\" is not a model field"},
        /* a validator, named at start (not at the first task) */
        {"\"validators\":{\"code\":{\"type\":\"regexp\"}}",
         "validators.code: validate: unknown validator \"regexp\""},
        {"\"fallbacks\":{\"code\":7}",
         "fallbacks.code: must be a string, got a number"},
        /* a bucket the controller does not have (its models reply):
         * every task would fail, or go unvalidated */
        {"\"routing\":{\"default\":\"unkeyd\"}",
         "agent.json: routing.default: the controller has no bucket "
         "\"unkeyd\" (did you mean unkeyed?)"},
        {"\"routing\":{\"default\":\"refused\",\"rules\":[{\"bucket\":"
         "\"chat\",\"keywords\":[\"hi\"]}]}",
         "routing.rules[0].bucket: the controller has no bucket \"chat\"\n"},
        {"\"validators\":{\"*\":\"none\",\"refsed\":\"json\"}",
         "validators.refsed: the controller has no bucket \"refsed\" (did "
         "you mean refused?)"},
    };
    char cfg[700], text[1024];
    snprintf(cfg, sizeof cfg, "%s/agent.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"controller\":\"%s\",%s}", ctl.endpoint,
                 bad[i][0]);
        tu_write_file(cfg, text);
        int rc;
        cJSON *res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--config", cfg,
                         "--quiet", NULL);
        if (rc != 2 || !err_has(bad[i][1]))
            fail_msg("case %zu (%s): status %d, expected 2 naming \"%s\"", i,
                     bad[i][0], rc, bad[i][1]);
        assert_int_equal(cJSON_GetArraySize(res), 0);
        cJSON_Delete(res);
    }
    /* the controller endpoint without its transport */
    tu_write_file(cfg, "{\"controller\":\"localhost:7878\"}");
    int rc;
    cJSON *res = run(NULL, &rc, "--config", cfg, NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(err_has("agent.json: controller: \"localhost:7878\" has no "
                        "transport: write tcp://localhost:7878"));
    res = run(NULL, &rc, "--controller", "127.0.0.1:7878", NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(err_has("bursar-agent: --controller: \"127.0.0.1:7878\" has "
                        "no transport: write tcp://127.0.0.1:7878"));
    /* a file that is not an object */
    tu_write_file(cfg, "[1,2]");
    res = run(NULL, &rc, "--config", cfg, NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(err_has("agent.json: must be a JSON object"));
    /* not JSON: where */
    tu_write_file(cfg, "{\n  \"concurrency\": 4,\n  \"x\" 1\n}\n");
    res = run(NULL, &rc, "--config", cfg, NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(err_has("agent.json: not valid JSON near line 3 column 7\n"));
    /* a tasks file that cannot be read: why, a usage error, before the
     * controller is asked anything */
    res = run(NULL, &rc, "--controller", ctl.endpoint, "/nonexistent/t.jsonl",
              NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(err_has("bursar-agent: cannot read /nonexistent/t.jsonl: No "
                        "such file or directory\n"));
    /* nothing reached the mock or bursard */
    assert_int_equal(mock_total(), 0);
    cJSON *all = export_all();
    assert_int_equal(cJSON_GetArraySize(all), 0);
    cJSON_Delete(all);
}

/* The numeric options share the configuration's ranges: a usage error
 * naming the option, status 2. */
static void
test_option_ranges(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        {"--concurrency", "0",
         "--concurrency: must be a whole number in [1, 1024], got 0"},
        {"--attempts", "11",
         "--attempts: must be a whole number in [1, 10], got 11"},
        {"--escalations", "-1",
         "--escalations: must be a whole number in [0, 16], got -1"},
        {"--drain-ms", "-5",
         "--drain-ms: must be a whole number in [0, 3600000], got -5"},
        {"--ctl-timeout-ms", "0",
         "--ctl-timeout-ms: must be a whole number in [1, 600000], got 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        cJSON *res = run(NULL, &rc, "--controller", ctl.endpoint, bad[i][0],
                         bad[i][1], NULL);
        if (rc != 2 || !err_has(bad[i][2]))
            fail_msg("%s %s: status %d, expected 2 naming \"%s\"", bad[i][0],
                     bad[i][1], rc, bad[i][2]);
        cJSON_Delete(res);
    }
}

/* The gateway's configuration: the same checker (agents/wcfg.h), a near
 * miss named (its --check-config exits 1 on a bad configuration). */
static void
test_gateway_near_miss(void **state)
{
    (void)state;
    char cfg[700], cmd[2048], out[4096];
    snprintf(cfg, sizeof cfg, "%s/gateway.json", dir);
    tu_write_file(cfg, "{\"controller\":\"tcp://127.0.0.1:9\","
                       "\"allow_anonymous\":true,"
                       "\"limits\":{\"max_conections\":5}}");
    snprintf(cmd, sizeof cmd, "'%s' --config '%s' --check-config 2>&1",
             th_need("bursar-gateway"), cfg);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    if (!strstr(out, "limits.max_conections: unknown key (did you mean "
                     "limits.max_connections?)"))
        fail_msg("the gateway: %s", out);
    tu_write_file(cfg, "{\"controller\":\"tcp://127.0.0.1:9\","
                       "\"allow_anonymous\":true,\"max_escalations\":9}");
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    if (!strstr(out, "max_escalations: must be a whole number in [0, 8], "
                     "got 9"))
        fail_msg("the gateway: %s", out);
}

/* -------------------------------------------------------- unset keys */

/* A model whose key variable is unset or empty (or blank): status 2 before any
 * request, naming the model, the variable and how to set it; no request
 * reached the mock, nothing reached bursard. */
static void
test_unset_key_refused(void **state)
{
    (void)state;
    char *tasks = tasks_of("unkeyed", 4);
    /* unset, empty, nothing but white space (no provider takes it) */
    static const char *const vals[] = {NULL, "", " \t"};
    for (int empty = 0; empty <= 2; empty++) {
        if (vals[empty])
            setenv(UNSET_ENV, vals[empty], 1);
        int rc;
        cJSON *res = run(tasks, &rc, "--controller", ctl.endpoint, "--models",
                         ctl.config, "--spool", spool, NULL);
        unsetenv(UNSET_ENV);
        assert_int_equal(rc, 2);
        assert_int_equal(cJSON_GetArraySize(res), 0);
        cJSON_Delete(res);
        assert_true(err_has(empty ? "bursar-agent: model nokey needs its API "
                                    "key in $" UNSET_ENV ", which is empty\n"
                                  : "bursar-agent: model nokey needs its API "
                                    "key in $" UNSET_ENV ", which is not "
                                    "set\n"));
        assert_true(err_has("export " UNSET_ENV "=YOUR_KEY"));
        assert_true(err_has("--skip-unkeyed (\"skip_models_without_key\": "
                            "true)"));
        /* the models with keys are not named */
        char path[700];
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *text = tu_read_file(path);
        assert_null(strstr(text, "model keyed"));
        assert_null(strstr(text, "model refused"));
        free(text);
    }
    free(tasks);
    assert_int_equal(mock_total(), 0);
    int n, of;
    export_check("unkeyed", "nokey", NULL, &n, &of);
    assert_int_equal(n, 0);
    assert_healthy("nokey");
}

/* --skip-unkeyed, then "skip_models_without_key": true: nokey (the
 * cheapest, which the policy picks first) is left out of every choose
 * with a warning; keyed serves every task; bursard never decides nokey
 * and hears no provider error. */
static void
test_skip_unkeyed(void **state)
{
    (void)state;
    const int n_tasks = 6;
    char *tasks = tasks_of("unkeyed", n_tasks);
    char cfg[700], text[2048];
    snprintf(cfg, sizeof cfg, "%s/skip.json", dir);
    snprintf(text, sizeof text,
             "{\"controller\":\"%s\",\"spool\":\"%s/skip.spool\","
             "\"skip_models_without_key\":true,\"concurrency\":2}",
             ctl.endpoint, dir);
    tu_write_file(cfg, text);
    for (int from_cfg = 0; from_cfg <= 1; from_cfg++) {
        int rc;
        cJSON *res =
            from_cfg
                ? run(tasks, &rc, "--config", cfg, "--models", ctl.config, NULL)
                : run(tasks, &rc, "--controller", ctl.endpoint, "--models",
                      ctl.config, "--spool", spool, "--skip-unkeyed", NULL);
        assert_int_equal(rc, 0);
        assert_int_equal(cJSON_GetArraySize(res), n_tasks);
        const cJSON *x;
        cJSON_ArrayForEach(x, res)
        {
            assert_true(cJSON_IsTrue(f(x, "valid")));
            assert_string_equal(f(x, "model")->valuestring, "keyed");
            assert_int_equal(cJSON_GetArraySize(f(x, "steps")), 1);
        }
        cJSON_Delete(res);
        assert_true(err_has("bursar-agent: model nokey needs its API key in "
                            "$" UNSET_ENV ", which is not set: left out of "
                            "this run\n"));
    }
    free(tasks);
    assert_int_equal(tu_mock_requests(mock_port, "keyed-up", "200"),
                     2 * n_tasks);
    assert_int_equal(tu_mock_requests(mock_port, "nokey-up", NULL), 0);
    int n, of_keyed, of_nokey;
    export_check("unkeyed", "keyed", NULL, &n, &of_keyed);
    assert_int_equal(of_keyed, 2 * n_tasks);
    export_check("unkeyed", "nokey", NULL, &n, &of_nokey);
    assert_int_equal(of_nokey, 0);
    assert_healthy("nokey");
    assert_healthy("keyed");
}

/* ------------------------------------------------- a key refused (401) */

/* refused's key is set but wrong: its first call answers 401; the model
 * is left out of the rest of the run (said once on stderr), the task
 * falls back to keyed under the same decision, the later tasks never
 * choose refused; no provider_error reaches bursard (whose breaker would
 * open on one). */
static void
test_key_refused_at_run_time(void **state)
{
    (void)state;
    const int n_tasks = 5;
    char *tasks = tasks_of("refused", n_tasks);
    setenv(UNSET_ENV, MOCK_KEY, 1); /* nokey is not this test's */
    int before = tu_mock_requests(mock_port, "keyed-up", "200");
    int rc;
    cJSON *res = run(tasks, &rc, "--controller", ctl.endpoint, "--models",
                     ctl.config, "--spool", spool, "--concurrency", "1", NULL);
    unsetenv(UNSET_ENV);
    free(tasks);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), n_tasks);
    int refused_steps = 0;
    const cJSON *x, *s;
    cJSON_ArrayForEach(x, res)
    {
        assert_true(cJSON_IsTrue(f(x, "valid")));
        assert_string_equal(f(x, "model")->valuestring, "keyed");
        cJSON_ArrayForEach(s, f(x, "steps"))
        {
            if (strcmp(f(s, "model")->valuestring, "refused") != 0)
                continue;
            refused_steps++;
            assert_string_equal(f(s, "outcome")->valuestring, "setup_error");
            assert_int_equal(f(s, "http_status")->valueint, 401);
            assert_string_equal(f(s, "feedback")->valuestring, "not_reported");
            assert_true(cJSON_IsTrue(f(s, "left_out")));
        }
    }
    cJSON_Delete(res);
    /* one call with concurrency 1: the later tasks exclude the model */
    assert_int_equal(refused_steps, 1);
    assert_int_equal(tu_mock_requests(mock_port, "refused-up", "401"), 1);
    assert_int_equal(tu_mock_requests(mock_port, "keyed-up", "200"),
                     before + n_tasks);
    assert_true(err_has("bursar-agent: model refused: the provider refused "
                        "its API key ($" WRONG_ENV "): http 401"));
    assert_true(err_has("left out of the rest of this run"));
    assert_true(err_has("0 models left out of the run (key variable unset), "
                        "1 at run time"));
    int n, of_refused;
    /* the first decision, served by its fallback */
    export_check("refused", "refused", "keyed", &n, &of_refused);
    assert_int_equal(of_refused, 1);
    assert_healthy("refused");
}

/* bursar_edit_distance, which the near misses rest on. */
static void
test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(bursar_edit_distance("concurency", "concurrency", 2), 1);
    assert_int_equal(bursar_edit_distance("kitten", "sitting", 5), 3);
    assert_int_equal(bursar_edit_distance("kitten", "sitting", 2), 3);
    assert_int_equal(bursar_edit_distance("", "abc", 5), 3);
    assert_int_equal(bursar_edit_distance("same", "same", 0), 0);
    assert_int_equal(bursar_edit_distance("ab", "ba", 2), 2);
    char big[80];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(bursar_edit_distance(big, big, 2), 3); /* too long */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_bad_config_named),
        cmocka_unit_test(test_option_ranges),
        cmocka_unit_test(test_gateway_near_miss),
        cmocka_unit_test(test_unset_key_refused),
        cmocka_unit_test(test_skip_unkeyed),
        cmocka_unit_test(test_key_refused_at_run_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
