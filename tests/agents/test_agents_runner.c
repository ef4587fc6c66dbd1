/*
 * test_agents_runner.c - the task engine (agents/runner.h) with the mock
 * provider and a ROUTER stand-in for the controller: cascade on validation
 * failure, fallback on provider failure with provider_error reported, the
 * escalation limit, cost from usage, concurrency; failures that are not
 * the provider's health never reported (a request refused with 400, a key
 * refused with 403: that model left out of the run).
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

#include "agents/runner.h"
#include "tests/agents/util.h"

static const char *SCRIPT =
    "{\"models\":{"
    " \"wrong\":{\"default\":{\"content\":\"Sure! here it is\","
    "\"usage\":{\"in\":100,\"out\":10}}},"
    " \"wrong2\":{\"default\":{\"content\":\"no\"}},"
    " \"wrong3\":{\"default\":{\"content\":\"nope\"}},"
    " \"right\":{\"default\":{\"content\":\"{\\\"a\\\":1}\","
    "\"usage\":{\"in\":200,\"out\":20}}},"
    " \"down\":{\"default\":{\"status\":500}},"
    " \"badreq\":{\"default\":{\"status\":400}},"
    " \"denied\":{\"default\":{\"status\":403}},"
    " \"slow\":{\"default\":{\"content\":\"{}\",\"latency_ms\":100}}"
    "}}";

static int port;
static pid_t mock;
static cJSON *results;

static int
setup(void **state)
{
    (void)state;
    mock = tu_mock_start(SCRIPT, &port);
    return port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    tu_kill(mock, 15);
    return 0;
}

static void
collect(void *ud, cJSON *res)
{
    (void)ud;
    cJSON_AddItemToArray(results, res);
}

/* Runs tasks (JSONL text) with a stand-in offering models in order. */
static tu_router_t *
run(const char *const *models, size_t n, const char *tasks, int escalations,
    size_t concurrency)
{
    char ep[128];
    tu_router_t *r = tu_router_start(0, models, n, ep, sizeof(ep));
    assert_non_null(r);
    bursar_opts_t bo;
    bursar_opts_init(&bo);
    bo.endpoint = ep;
    bursar_t *b;
    assert_int_equal(bursar_new(&b, &bo), 0);
    bursar_model_t ms[8];
    for (size_t i = 0; i < n; i++)
        tu_model(&ms[i], models[i], (int)(i % 2), port, 1.0, 10.0);
    runner_opts_t ro;
    runner_opts_init(&ro);
    ro.max_escalations = escalations;
    ro.concurrency = concurrency;
    ro.prov.backoff_ms = 10;
    ro.prov.backoff_max_ms = 20;
    ro.prov.max_attempts = 2;
    ro.prov.seed = 1;
    ro.emit = collect;
    runner_t *rn;
    assert_int_equal(runner_new(&rn, b, ms, n, &ro), 0);
    cJSON_Delete(results);
    results = cJSON_CreateArray();
    char *copy = strdup(tasks);
    char *save = NULL;
    size_t idx = 0;
    for (char *l = strtok_r(copy, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save))
        runner_add(rn, cJSON_Parse(l), idx++);
    free(copy);
    while (runner_run(rn, 500) > 0)
        ;
    runner_destroy(&rn);
    bursar_destroy(&b);
    return r;
}

static const cJSON *
field(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static void
test_cascade(void **state)
{
    (void)state;
    const char *models[] = {"wrong", "right"};
    tu_router_t *r =
        run(models, 2,
            "{\"id\":\"t1\",\"bucket\":\"x\",\"prompt\":\"give json\","
            "\"validate\":\"json\"}",
            2, 4);
    assert_int_equal(cJSON_GetArraySize(results), 1);
    const cJSON *res = cJSON_GetArrayItem(results, 0);
    assert_string_equal(field(res, "id")->valuestring, "t1");
    assert_string_equal(field(res, "model")->valuestring, "right");
    assert_string_equal(field(res, "decision_id")->valuestring,
                        "0000000000000002");
    assert_true(cJSON_IsTrue(field(res, "valid")));
    assert_int_equal(field(res, "escalations")->valueint, 1);
    assert_true(cJSON_IsNull(field(res, "error")));
    assert_string_equal(field(res, "output")->valuestring, "{\"a\":1}");
    /* both steps paid: (100 x 1 + 10 x 10) + (200 x 1 + 20 x 10) per 1e6 */
    assert_int_equal(field(res, "tokens_in")->valueint, 300);
    assert_int_equal(field(res, "tokens_out")->valueint, 30);
    double cost = field(res, "cost_usd")->valuedouble;
    assert_true(cost > 0.000599 && cost < 0.000601);
    const cJSON *steps = field(res, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 2);
    const cJSON *s0 = cJSON_GetArrayItem(steps, 0);
    assert_string_equal(field(s0, "outcome")->valuestring, "invalid");
    assert_string_equal(field(s0, "model")->valuestring, "wrong");
    assert_string_equal(field(s0, "feedback")->valuestring, "ok");
    assert_string_equal(
        field(cJSON_GetArrayItem(steps, 1), "outcome")->valuestring, "valid");
    assert_int_equal(tu_router_feedback(r, "outcome"), 2);
    assert_int_equal(tu_router_chooses(r), 2);
    tu_router_stop(&r);
}

static void
test_fallback_provider_error(void **state)
{
    (void)state;
    const char *models[] = {"down", "right"};
    int before = tu_mock_requests(port, "down", "500");
    tu_router_t *r = run(models, 2,
                         "{\"id\":7,\"messages\":[{\"role\":\"user\","
                         "\"content\":\"hi\"}],\"validate\":\"json\"}",
                         2, 4);
    const cJSON *res = cJSON_GetArrayItem(results, 0);
    assert_int_equal(field(res, "id")->valueint, 7);
    assert_string_equal(field(res, "bucket")->valuestring, "default");
    assert_string_equal(field(res, "model")->valuestring, "right");
    assert_true(cJSON_IsTrue(field(res, "valid")));
    assert_int_equal(field(res, "escalations")->valueint, 0);
    const cJSON *s0 = cJSON_GetArrayItem(field(res, "steps"), 0);
    assert_string_equal(field(s0, "outcome")->valuestring, "provider_error");
    assert_int_equal(field(s0, "attempts")->valueint, 2);
    assert_int_equal(field(s0, "http_status")->valueint, 500);
    assert_int_equal(tu_router_feedback(r, "provider_error"), 1);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    /* the fallback served under the same decision */
    assert_int_equal(tu_router_chooses(r), 1);
    assert_string_equal(field(res, "decision_id")->valuestring,
                        "0000000000000001");
    assert_int_equal(tu_mock_requests(port, "down", "500") - before, 2);
    tu_router_stop(&r);
}

/* Failures that say nothing of the provider's health are never reported
 * as provider_error: a 400 (the request's fault) falls back and the model
 * stays in the run; a 403 (the key refused) falls back and the model is
 * left out of the run: the next task's choose excludes it, though the
 * stand-in offers it first. */
static void
test_setup_failures_not_reported(void **state)
{
    (void)state;
    const char *tasks = "{\"id\":1,\"prompt\":\"a\",\"validate\":\"json\"}\n"
                        "{\"id\":2,\"prompt\":\"b\",\"validate\":\"json\"}";
    const char *bad[] = {"badreq", "right"};
    int before = tu_mock_requests(port, "badreq", "400");
    tu_router_t *r = run(bad, 2, tasks, 2, 1);
    const cJSON *res;
    cJSON_ArrayForEach(res, results)
    {
        assert_true(cJSON_IsTrue(field(res, "valid")));
        const cJSON *s0 = cJSON_GetArrayItem(field(res, "steps"), 0);
        assert_string_equal(field(s0, "model")->valuestring, "badreq");
        assert_string_equal(field(s0, "outcome")->valuestring, "request_error");
        assert_int_equal(field(s0, "http_status")->valueint, 400);
        assert_string_equal(field(s0, "feedback")->valuestring, "not_reported");
        assert_null(field(s0, "left_out"));
    }
    assert_int_equal(cJSON_GetArraySize(results), 2);
    assert_int_equal(tu_mock_requests(port, "badreq", "400") - before, 2);
    assert_int_equal(tu_router_feedback(r, "provider_error"), 0);
    assert_int_equal(tu_router_feedback(r, "outcome"), 2);
    tu_router_stop(&r);

    const char *denied[] = {"denied", "right"};
    before = tu_mock_requests(port, "denied", "403");
    r = run(denied, 2, tasks, 2, 1);
    assert_int_equal(cJSON_GetArraySize(results), 2);
    int denied_steps = 0;
    cJSON_ArrayForEach(res, results)
    {
        assert_true(cJSON_IsTrue(field(res, "valid")));
        assert_string_equal(field(res, "model")->valuestring, "right");
        const cJSON *s;
        cJSON_ArrayForEach(s, field(res, "steps"))
        {
            if (strcmp(field(s, "model")->valuestring, "denied") != 0)
                continue;
            denied_steps++;
            assert_string_equal(field(s, "outcome")->valuestring,
                                "setup_error");
            assert_string_equal(field(s, "feedback")->valuestring,
                                "not_reported");
            assert_true(cJSON_IsTrue(field(s, "left_out")));
        }
    }
    assert_int_equal(denied_steps, 1);
    assert_int_equal(tu_mock_requests(port, "denied", "403") - before, 1);
    assert_int_equal(tu_router_feedback(r, "provider_error"), 0);
    assert_int_equal(tu_router_feedback(r, "outcome"), 2);
    tu_router_stop(&r);
}

/* A controller that refuses the link (its token key replaced): the
 * escalation goes on as a plain choose, and the task ends valid. */
static void
test_escalation_link_refused(void **state)
{
    (void)state;
    const char *models[] = {"wrong", "right"};
    tu_router_refuse_escalates(1);
    tu_router_t *r =
        run(models, 2,
            "{\"id\":\"t1\",\"bucket\":\"x\",\"prompt\":\"give json\","
            "\"validate\":\"json\"}",
            2, 4);
    tu_router_refuse_escalates(0);
    const cJSON *res = cJSON_GetArrayItem(results, 0);
    assert_true(cJSON_IsTrue(field(res, "valid")));
    assert_string_equal(field(res, "model")->valuestring, "right");
    assert_int_equal(field(res, "escalations")->valueint, 1);
    assert_true(cJSON_IsNull(field(res, "error")));
    /* the first choose, the refused escalation, the plain one */
    assert_int_equal(tu_router_chooses(r), 3);
    tu_router_stop(&r);
}

static void
test_escalation_limit_and_exhaustion(void **state)
{
    (void)state;
    const char *models[] = {"wrong", "wrong2", "wrong3", "right"};
    tu_router_t *r = run(models, 4,
                         "{\"id\":\"a\",\"prompt\":\"p\",\"validate\":"
                         "\"json\"}\n"
                         "{\"id\":\"b\",\"prompt\":\"p\",\"validate\":"
                         "{\"type\":\"max_length\",\"max\":1}}\n"
                         "{\"id\":\"c\"}\n",
                         2, 1);
    assert_int_equal(cJSON_GetArraySize(results), 3);
    const cJSON *a = cJSON_GetArrayItem(results, 0);
    assert_string_equal(field(a, "model")->valuestring, "wrong3");
    assert_false(cJSON_IsTrue(field(a, "valid")));
    assert_int_equal(field(a, "escalations")->valueint, 2);
    assert_int_equal(cJSON_GetArraySize(field(a, "steps")), 3);
    const cJSON *b = cJSON_GetArrayItem(results, 1);
    assert_false(cJSON_IsTrue(field(b, "valid")));
    const cJSON *c = cJSON_GetArrayItem(results, 2);
    assert_non_null(strstr(field(c, "error")->valuestring, "prompt"));
    assert_true(cJSON_IsNull(field(c, "model")));
    tu_router_stop(&r);

    const char *down[] = {"down"};
    r = run(down, 1, "{\"id\":\"d\",\"prompt\":\"p\"}", 2, 1);
    const cJSON *d = cJSON_GetArrayItem(results, 0);
    assert_true(cJSON_IsNull(field(d, "model")));
    assert_false(cJSON_IsTrue(field(d, "valid")));
    assert_non_null(strstr(field(d, "error")->valuestring, "http 500"));
    assert_non_null(strstr(field(d, "error")->valuestring, "no fallback"));
    assert_int_equal(tu_router_feedback(r, "provider_error"), 1);
    tu_router_stop(&r);

    /* invalid, and no other model to escalate to: no error, 0 escalations */
    const char *one[] = {"wrong"};
    r = run(one, 1, "{\"id\":\"e\",\"prompt\":\"p\",\"validate\":\"json\"}", 2,
            1);
    const cJSON *e = cJSON_GetArrayItem(results, 0);
    assert_string_equal(field(e, "model")->valuestring, "wrong");
    assert_false(cJSON_IsTrue(field(e, "valid")));
    assert_int_equal(field(e, "escalations")->valueint, 0);
    assert_true(cJSON_IsNull(field(e, "error")));
    tu_router_stop(&r);
}

static void
test_concurrency(void **state)
{
    (void)state;
    const char *models[] = {"slow"};
    char tasks[4096] = "";
    for (int i = 0; i < 20; i++) {
        char l[96];
        snprintf(l, sizeof(l), "{\"id\":%d,\"prompt\":\"p\"}\n", i);
        strcat(tasks, l);
    }
    double t0 = tu_now();
    tu_router_t *r = run(models, 1, tasks, 0, 10);
    double dt = tu_now() - t0;
    assert_int_equal(cJSON_GetArraySize(results), 20);
    assert_int_equal(tu_router_feedback(r, "outcome"), 20);
    /* 20 x 100 ms, 10 at a time: about 0.2 s, serial would be 2 s */
    assert_true(dt < 1.5);
    tu_router_stop(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cascade),
        cmocka_unit_test(test_fallback_provider_error),
        cmocka_unit_test(test_setup_failures_not_reported),
        cmocka_unit_test(test_escalation_link_refused),
        cmocka_unit_test(test_escalation_limit_and_exhaustion),
        cmocka_unit_test(test_concurrency),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    cJSON_Delete(results);
    return rc;
}
