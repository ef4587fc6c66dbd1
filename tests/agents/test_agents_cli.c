/*
 * test_agents_cli.c - the bursar-agent program, with the mock provider and
 * a ROUTER stand-in for the controller: JSONL in and out, models from the
 * models op with endpoints from the agent's own table (--models, the
 * configuration's "models"), bad lines, --config (routing rules,
 * validators), --simulate on a scenario, the controller away from the
 * start; where keys go (a base_url that is neither https nor loopback
 * refused, a models reply's base_url and api_key_env ignored); CURVE keys
 * for the controller connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

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

/* A --models file describing alpha and beta at the mock (array form). */
static void
write_models(char *path, size_t cap)
{
    char text[700];
    snprintf(path, cap, "%s/own.json", dir);
    snprintf(text, sizeof(text),
             "{\"models\":[{\"name\":\"alpha\",\"provider\":\"openai\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"price_in_per_mtok\":5,"
             "\"price_out_per_mtok\":5},{\"name\":\"beta\",\"provider\":"
             "\"openai\",\"base_url\":\"http://localhost:%d/v1\","
             "\"price_in_per_mtok\":5,\"price_out_per_mtok\":5}]}",
             mock_port, mock_port);
    tu_write_file(path, text);
}

static void
test_jsonl_stdin(void **state)
{
    (void)state;
    const char *const models[] = {"alpha", "beta"};
    char ep[128], own[700], spool[700];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    write_models(own, sizeof(own));
    snprintf(spool, sizeof(spool), "%s/a.spool", dir);
    int rc;
    cJSON *res = run("{\"id\":1,\"prompt\":\"hello\",\"validate\":\"json\"}\n"
                     "\n"
                     "this is not json\n"
                     "{\"id\":2,\"prompt\":\"x\",\"validate\":{\"type\":"
                     "\"regex\",\"pattern\":\"^beta\"}}\n",
                     &rc, "--controller", ep, "--models", own, "--spool", spool,
                     "--quiet", NULL);
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
            /* the controller's prices (1 and 2 USD per million), not
             * the agent's table's (5 and 5) */
            double want = (f(x, "tokens_in")->valuedouble +
                           2 * f(x, "tokens_out")->valuedouble) /
                          1e6;
            assert_true(fabs(f(x, "cost_usd")->valuedouble - want) < 1e-12);
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
    char ep[128], cfg[700], tasks[700], text[1400];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    snprintf(cfg, sizeof(cfg), "%s/agent.json", dir);
    /* the agent's own models in its configuration (object form) */
    snprintf(text, sizeof(text),
             "{\"controller\":\"%s\",\"spool\":\"%s/c.spool\","
             "\"models\":{\"alpha\":{\"provider\":\"openai\",\"base_url\":"
             "\"http://127.0.0.1:%d/v1\",\"price_in_per_mtok\":1,"
             "\"price_out_per_mtok\":1},\"beta\":{\"provider\":\"anthropic\","
             "\"base_url\":\"http://[::1]:%d\",\"price_in_per_mtok\":1,"
             "\"price_out_per_mtok\":1}},"
             "\"max_escalations\":0,"
             "\"routing\":{\"default\":\"chat\",\"rules\":[{\"bucket\":"
             "\"code\",\"keywords\":[\"#include\"]}]},"
             "\"validators\":{\"code\":{\"type\":\"regex\",\"pattern\":"
             "\"^beta\"},\"*\":\"none\"}}",
             ep, dir, mock_port, mock_port);
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
    /* the controller never reached: no bucket's models known, no fallback
     * configured: no local decision (never the table's first model) */
    char errp[700];
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    tu_write_file(errp, ""); /* stderr is appended to */
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--ctl-timeout-ms", "100", "--drain-ms", "0", "--report", NULL);
    /* no task got an answer: status 1, said, and the report compares
     * nothing */
    assert_int_equal(rc, 1);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    const cJSON *x = cJSON_GetArrayItem(res, 0);
    assert_true(cJSON_IsNull(f(x, "model")));
    assert_non_null(strstr(f(x, "error")->valuestring, "choose"));
    cJSON_Delete(res);
    assert_true(output_has("err", "no fallback_model or fallbacks"));
    assert_true(output_has("err", "bursar-agent: 1 of 1 task got no answer: "
                                  "it ended with an error"));
    assert_true(output_has("err", "Failed:  no task got an answer: all 1 "
                                  "ended with an error (the first: choose"));
    assert_false(output_has("err", "Quality:"));
    /* with the configured fallback */
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--fallback-model", "beta", "--ctl-timeout-ms", "100",
              "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    x = cJSON_GetArrayItem(res, 0);
    assert_string_equal(f(x, "model")->valuestring, "beta");
    assert_true(cJSON_IsTrue(f(x, "local")));
    assert_true(cJSON_IsNull(f(x, "decision_id")));
    assert_int_equal(strlen(f(x, "local_id")->valuestring), 32);
    assert_string_equal(
        f(cJSON_GetArrayItem(f(x, "steps"), 0), "feedback")->valuestring,
        "spooled");
    /* its booking waits in the spool for the controller */
    char *sp = tu_read_file(spool);
    assert_non_null(sp);
    assert_non_null(strstr(sp, "{\"op\":\"book\",\"local\":{\"id\":"));
    assert_non_null(strstr(sp, f(x, "local_id")->valuestring));
    free(sp);
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
              "--fallback-model", "beta", "--ctl-timeout-ms", "100",
              "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    x = cJSON_GetArrayItem(res, 0);
    assert_string_equal(f(x, "model")->valuestring, "beta");
    assert_true(cJSON_IsTrue(f(x, "valid")));
    cJSON_Delete(res);

    /* a bad table is an error naming the field, not a silent default
     * (status 2, a configuration error) */
    tu_write_file(models, "{\"models\":{\"beta\":{\"provider\":"
                          "\"anthropic\",\"price_in_per_mtok\":1}}}");
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller",
              "tcp://127.0.0.1:9", "--models", models, "--spool", spool,
              "--ctl-timeout-ms", "100", "--drain-ms", "0", "--quiet", NULL);
    assert_int_equal(rc, 2);
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
        {"--controller", "--quiet", "option --controller needs a value"},
        {"--simulate", "--report", "option --simulate needs a value"},
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
 * error naming its JSON path (status 2), never a silent default
 * (test_agents_config has the rest: near misses, ranges, key
 * variables). */
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
        assert_int_equal(rc, 2);
        cJSON_Delete(res);
        assert_true(output_has("err", bad[i][1]));
    }
}

/* Where keys may go: a base_url that is neither https nor http to a
 * loopback address is a configuration error naming its JSON path (status
 * 2, as every configuration error), in the configuration's "models" and
 * in a --models file, before anything is sent. */
static void
test_base_url_refused(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"models\":{\"gpt-4o\":"
         "{\"provider\":\"openai\",\"base_url\":\"http://example.com/v1\","
         "\"api_key_env\":\"OPENAI_API_KEY\",\"price_in_per_mtok\":1,"
         "\"price_out_per_mtok\":1}}}",
         "strict.json: models.gpt-4o.base_url: http is allowed only to a "
         "loopback address"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"models\":[{\"name\":\"m\","
         "\"provider\":\"openai\",\"base_url\":\"http://10.0.0.1:8080/v1\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}]}",
         "strict.json: models[0].base_url: http is allowed only to a "
         "loopback address"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"models\":{\"m\":"
         "{\"provider\":\"anthropic\",\"base_url\":\"ftp://127.0.0.1/v1\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}}}",
         "strict.json: models.m.base_url: the scheme must be https"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"models\":{\"m\":"
         "{\"provider\":\"openai\",\"base_url\":\"api.openai.com/v1\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}}}",
         "strict.json: models.m.base_url: not an absolute URL"},
        {"{\"controller\":\"tcp://127.0.0.1:9\",\"models\":7}",
         "strict.json: field \"models\" must be an array or an object"},
    };
    char cfg[700];
    snprintf(cfg, sizeof(cfg), "%s/strict.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_write_file(cfg, bad[i][0]);
        int rc;
        cJSON *res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--config", cfg,
                         "--quiet", NULL);
        assert_int_equal(rc, 2);
        assert_int_equal(cJSON_GetArraySize(res), 0);
        cJSON_Delete(res);
        assert_true(output_has("err", bad[i][1]));
    }
    /* the same table as a --models file, which replaces the
     * configuration's */
    char models[700];
    snprintf(models, sizeof(models), "%s/models.json", dir);
    tu_write_file(models, bad[0][0]);
    tu_write_file(cfg, "{\"controller\":\"tcp://127.0.0.1:9\"}");
    int rc;
    cJSON *res =
        run(NULL, &rc, "--config", cfg, "--models", models, "--quiet", NULL);
    assert_int_equal(rc, 2);
    cJSON_Delete(res);
    assert_true(output_has("err", "models.json: models.gpt-4o.base_url: http "
                                  "is allowed only to a loopback address"));
}

/* A listening socket on 127.0.0.1 that never accepts: a connection made
 * to it waits in its queue. Returns the socket, its port in *port. */
static int
listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    fcntl(s, F_SETFL, O_NONBLOCK);
    return s;
}

/* Whether anything connected to listener s. */
static int
connected(int s)
{
    int c = accept(s, NULL, NULL);
    if (c >= 0)
        close(c);
    return c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A models reply that names a base_url and an api_key_env (an older or a
 * hostile controller) is not obeyed: a model of the agent's own table
 * goes where the table says with the table's key; a model the table does
 * not describe goes only to its provider's public API with the
 * conventional variable (unset here: a configuration error at start,
 * status 2, nothing sent; with --skip-unkeyed that model is left out of
 * every choose, though the stand-in lists it first); the reply's
 * listener sees no connection at all. */
static void
test_models_reply_not_trusted(void **state)
{
    (void)state;
    int own_port, trap_port;
    pid_t own = tu_mock_start("{\"require_key\":\"own-key\",\"models\":{"
                              "\"alpha\":{\"default\":{\"content\":\"a\"}}}}",
                              &own_port);
    assert_true(own_port > 0);
    int trap = listener(&trap_port);
    const char *const models[] = {"beta", "alpha"};
    char ep[128], url[128], cfg[700], text[1024];
    tu_router_t *r = tu_router_start(0, models, 2, ep, sizeof(ep));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", trap_port);
    tu_router_endpoint(r, url, "BURSAR_TEST_SECRET");
    setenv("BURSAR_TEST_SECRET", "stolen", 1);
    setenv("BURSAR_TEST_OWN_KEY", "own-key", 1);
    unsetenv("OPENAI_API_KEY"); /* beta must not reach api.openai.com */
    snprintf(cfg, sizeof(cfg), "%s/trust.json", dir);
    snprintf(text, sizeof(text),
             "{\"controller\":\"%s\",\"spool\":\"%s/t.spool\","
             "\"models\":{\"alpha\":{\"provider\":\"openai\",\"base_url\":"
             "\"http://127.0.0.1:%d/v1\",\"api_key_env\":"
             "\"BURSAR_TEST_OWN_KEY\",\"price_in_per_mtok\":1,"
             "\"price_out_per_mtok\":1}}}",
             ep, dir, own_port);
    tu_write_file(cfg, text);
    const char *tasks = "{\"id\":\"t1\",\"prompt\":\"x\"}\n"
                        "{\"id\":\"t2\",\"prompt\":\"y\",\"validate\":{"
                        "\"type\":\"regex\",\"pattern\":\"^b\"}}\n";
    int rc;
    cJSON *res = run(tasks, &rc, "--config", cfg, NULL);
    assert_int_equal(rc, 2);
    assert_int_equal(cJSON_GetArraySize(res), 0);
    cJSON_Delete(res);
    assert_true(output_has("err", "model beta is not in the agent's models "
                                  "table: calling https://api.openai.com/v1 "
                                  "with $OPENAI_API_KEY"));
    assert_true(output_has("err", "model beta needs its API key in "
                                  "$OPENAI_API_KEY, which is not set\n"));
    assert_true(output_has("err", "export OPENAI_API_KEY=YOUR_KEY"));
    assert_int_equal(tu_router_chooses(r), 0);
    assert_int_equal(tu_mock_requests(own_port, "alpha", NULL), 0);

    /* beta left out: t1 alpha answers; t2 alpha fails the regex, and
     * there is no model left to escalate to (never beta) */
    res = run(tasks, &rc, "--config", cfg, "--skip-unkeyed", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cJSON_GetArraySize(res), 2);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_int_equal(cJSON_GetArraySize(f(x, "steps")), 1);
        assert_string_equal(
            f(cJSON_GetArrayItem(f(x, "steps"), 0), "model")->valuestring,
            "alpha");
        assert_int_equal(cJSON_IsTrue(f(x, "valid")),
                         strcmp(f(x, "id")->valuestring, "t1") == 0);
    }
    assert_true(output_has("err", "model beta needs its API key in "
                                  "$OPENAI_API_KEY, which is not set: left "
                                  "out of this run"));
    assert_int_equal(tu_mock_requests(own_port, "alpha", "200"), 2);
    assert_false(connected(trap));
    cJSON_Delete(res);
    close(trap);
    tu_router_stop(&r);
    tu_kill(own, 15);
    unsetenv("BURSAR_TEST_SECRET");
    unsetenv("BURSAR_TEST_OWN_KEY");
}

/* CURVE to the controller: --key and --server-key (or BURSAR_KEY and
 * BURSAR_SERVER_KEY, or the configuration's "curve"), against a CURVE
 * ROUTER; a refused key is named, status 1. */
static void
test_curve_keys(void **state)
{
    (void)state;
    char spub[41], ssec[41], cpub[41], csec[41];
    assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
    assert_int_equal(zmq_curve_keypair(cpub, csec), 0);
    tu_router_curve(ssec);
    const char *const models[] = {"alpha"};
    char ep[128], own[700], cfg[700], text[512];
    tu_router_t *r = tu_router_start(0, models, 1, ep, sizeof(ep));
    tu_router_curve(NULL);
    write_models(own, sizeof(own));
    int rc;
    cJSON *res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller", ep,
                     "--models", own, "--key", csec, "--server-key", spub,
                     "--quiet", NULL);
    assert_int_equal(rc, 0);
    const cJSON *x = cJSON_GetArrayItem(res, 0);
    assert_false(cJSON_IsTrue(f(x, "local")));
    assert_true(cJSON_IsTrue(f(x, "valid")));
    cJSON_Delete(res);
    /* the environment, then the configuration's "curve" */
    setenv("BURSAR_KEY", csec, 1);
    setenv("BURSAR_SERVER_KEY", spub, 1);
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--controller", ep,
              "--models", own, "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_false(cJSON_IsTrue(f(cJSON_GetArrayItem(res, 0), "local")));
    cJSON_Delete(res);
    unsetenv("BURSAR_KEY");
    unsetenv("BURSAR_SERVER_KEY");
    snprintf(cfg, sizeof(cfg), "%s/curve.json", dir);
    snprintf(text, sizeof(text),
             "{\"controller\":\"%s\",\"curve\":{\"secret_key\":\"%s\","
             "\"server_key\":\"%s\"}}",
             ep, csec, spub);
    tu_write_file(cfg, text);
    res = run("{\"id\":1,\"prompt\":\"x\"}\n", &rc, "--config", cfg, "--models",
              own, "--quiet", NULL);
    assert_int_equal(rc, 0);
    assert_false(cJSON_IsTrue(f(cJSON_GetArrayItem(res, 0), "local")));
    cJSON_Delete(res);
    tu_router_stop(&r);

    /* refused keys: named, status 1 */
    res = run(NULL, &rc, "--controller", ep, "--key", csec, "--quiet", NULL);
    assert_int_equal(rc, 1);
    cJSON_Delete(res);
    assert_true(output_has("err", "only the secret key was given"));
    res = run(NULL, &rc, "--controller", ep, "--key", "/nonexistent/a.key",
              "--server-key", spub, "--quiet", NULL);
    assert_int_equal(rc, 1);
    cJSON_Delete(res);
    assert_true(output_has("err", "/nonexistent/a.key"));
    tu_write_file(cfg, "{\"controller\":\"tcp://127.0.0.1:9\",\"curve\":"
                       "{\"secret\":\"x\"}}");
    res = run(NULL, &rc, "--config", cfg, "--quiet", NULL);
    assert_int_equal(rc, 2); /* a configuration error */
    cJSON_Delete(res);
    assert_true(output_has("err", "curve.secret: unknown key"));
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
        cmocka_unit_test(test_base_url_refused),
        cmocka_unit_test(test_models_reply_not_trusted),
        cmocka_unit_test(test_curve_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
