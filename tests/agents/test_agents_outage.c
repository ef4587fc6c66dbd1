/*
 * test_agents_outage.c - spend stays in the ledger when the controller is
 * away (the real bursard, the real bursar-agent, the mock provider).
 *
 *  - outage: bursard is killed (SIGKILL) for part of an agent run and
 *    restarted on the same state directory; afterwards the ledger (stats:
 *    spend in the window) equals the sum of every cost the agent reported
 *    in its results, local or not; no result shows a model serving a
 *    bucket that does not allow it (each bucket's local decisions go to
 *    its configured fallback, else its cheapest model, never the first
 *    model listed); export holds every local decision, marked local, with
 *    no propensity, and its cost; the posteriors hold every outcome once;
 *  - book: the op itself against bursard (a clock of the test's): booked
 *    into the global and the bucket's ledger, answered duplicate when
 *    sent again (also after a restart), a correction amending the
 *    posterior, a decision of a closed window logged but not added to
 *    today's spend, an unknown bucket still booked, bad figures and a
 *    time older than retention refused naming the field, the models
 *    reply's buckets, retention pruning local decisions;
 *  - an unusable spool is a startup error naming the path;
 *  - feedback that could not be kept (a spool at the file size limit) is
 *    counted and the agent exits 3 saying how many were lost.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agents/proto.h"
#include "tests/agents/util.h"
#include "tests/harness.h"

static char agent[600];
static char dir[512];
static int mock_port;
static pid_t mock_pid;

/* 1000 tokens in, 100 out from every model, 40 ms each */
static const char *SCRIPT =
    "{\"default\":{\"content\":\"fine\",\"latency_ms\":40,"
    "\"usage\":{\"in\":1000,\"out\":100}}}";

/* name, price in, price out (USD per million tokens); the cost of a
 * call is 1000 x in + 100 x out per million */
static const struct {
    const char *name;
    double pin, pout;
} MODELS[] = {
    {"first", 10, 30},   /* listed first, allowed in alpha only */
    {"a2", 1, 2},        /* alpha's cheapest */
    {"b_pricey", 5, 15}, /* beta */
    {"b_cheap", 0.5, 1}, /* beta's cheapest */
    {"g1", 0.2, 0.4},    /* gamma's cheapest */
    {"g2", 2, 4},        /* gamma's configured fallback */
};
#define N_MODELS (sizeof MODELS / sizeof MODELS[0])

static const char *const BUCKETS[] = {"alpha", "beta", "gamma"};
static const char *const ALLOWED[3][2] = {
    {"first", "a2"}, {"b_pricey", "b_cheap"}, {"g1", "g2"}};
/* what a local decision of each bucket must pick */
static const char *const LOCAL_PICK[] = {"a2", "b_cheap", "g2"};

static const cJSON *
f(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static int
bucket_index(const char *b)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(BUCKETS[i], b) == 0)
            return i;
    return -1;
}

static int
allowed(const char *bucket, const char *model)
{
    int i = bucket_index(bucket);
    return i >= 0 && (strcmp(ALLOWED[i][0], model) == 0 ||
                      strcmp(ALLOWED[i][1], model) == 0);
}

/* bursard's configuration: the models at the mock, three buckets,
 * uniform exploration, no forgetting, a window (1e9 s) that a test run
 * does not leave. */
static void
write_config(th_daemon_t *d)
{
    char models[2048] = "", m[300];
    for (size_t i = 0; i < N_MODELS; i++) {
        snprintf(m, sizeof m,
                 "%s\"%s\":{\"provider\":\"openai\",\"base_url\":"
                 "\"http://127.0.0.1:%d/v1\",\"price_in_per_mtok\":%g,"
                 "\"price_out_per_mtok\":%g}",
                 i ? "," : "", MODELS[i].name, mock_port, MODELS[i].pin,
                 MODELS[i].pout);
        strcat(models, m);
    }
    const char *b = "\"prior\":{\"alpha\":1,\"beta\":1},\"half_life_s\":0,"
                    "\"expected_tokens_in\":1000,\"expected_tokens_out\":100";
    char text[4096];
    snprintf(text, sizeof text,
             "{\"models\":{%s},\"buckets\":{"
             "\"alpha\":{\"models\":[\"first\",\"a2\"],%s},"
             "\"beta\":{\"models\":[\"b_pricey\",\"b_cheap\"],%s},"
             "\"gamma\":{\"models\":[\"g1\",\"g2\"],%s}},"
             "\"budget\":{\"limit_usd\":1000,\"window_s\":1000000000},"
             "\"explore_floor\":0.5,\"decision_ttl_s\":3600}",
             models, b, b, b);
    th_write_config(d, text);
}

static cJSON *
request(th_client_t *c, const char *json)
{
    return th_ok(c, "%s", json);
}

/* Every decision of the controller, by export pages. */
static cJSON *
export_all(th_client_t *c)
{
    cJSON *all = cJSON_CreateArray();
    char next[PROTO_ID_LEN + 1] = "";
    for (;;) {
        char req[128];
        if (next[0])
            snprintf(req, sizeof req,
                     "{\"op\":\"export\",\"after\":\"%s\",\"limit\":10000}",
                     next);
        else
            snprintf(req, sizeof req, "{\"op\":\"export\",\"limit\":10000}");
        cJSON *j = request(c, req);
        const cJSON *d;
        cJSON_ArrayForEach(d, f(j, "decisions"))
            cJSON_AddItemToArray(all, cJSON_Duplicate(d, 1));
        const cJSON *n = f(j, "next");
        int more = cJSON_IsString(n);
        if (more)
            snprintf(next, sizeof next, "%s", n->valuestring);
        cJSON_Delete(j);
        if (!more)
            return all;
    }
}

static const cJSON *
find_local(const cJSON *all, const char *local_id)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, all)
    {
        const cJSON *x = f(d, "local_id");
        if (cJSON_IsString(x) && strcmp(x->valuestring, local_id) == 0)
            return d;
    }
    return NULL;
}

/* The outcomes in every bucket's posteriors: sum over arms of
 * (alpha - alpha0) + (beta - beta0) (no forgetting). */
static double
evidence(const cJSON *stats)
{
    double ev = 0;
    const cJSON *b, *a;
    cJSON_ArrayForEach(b, f(stats, "buckets"))
    {
        cJSON_ArrayForEach(a, f(b, "arms"))
        {
            ev += th_num(a, "alpha") - th_num(a, "alpha0");
            ev += th_num(a, "beta") - th_num(a, "beta0");
        }
    }
    return ev;
}

static int
count_lines(const char *path)
{
    char *t = tu_read_file(path);
    int n = 0;
    for (char *q = t; q && *q; q++)
        n += *q == '\n';
    free(t);
    return n;
}

static int
setup(void **state)
{
    (void)state;
    th_need("bursard");
    snprintf(agent, sizeof agent, "%s", th_need("bursar-agent"));
    th_need("bursar-mock-provider");
    tu_tmpdir(dir, sizeof dir);
    mock_pid = tu_mock_start(SCRIPT, &mock_port);
    return mock_port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    if (mock_pid > 0)
        tu_kill(mock_pid, SIGTERM);
    th_kill_all();
    if (dir[0] && !getenv("BURSAR_KEEP_TMP"))
        tu_rmrf(dir);
    return 0;
}

/* ------------------------------------------------------------ outage */

/* Starts bursar-agent on n tasks (buckets in turn); returns its pid. */
static pid_t
start_agent(th_daemon_t *d, int n, char *out, size_t cap)
{
    char tasks[700], cfg[700], err[700], spool[700];
    snprintf(tasks, sizeof tasks, "%s/outage.jsonl", dir);
    snprintf(cfg, sizeof cfg, "%s/agent.json", dir);
    snprintf(out, cap, "%s/outage.out", dir);
    snprintf(err, sizeof err, "%s/outage.err", dir);
    snprintf(spool, sizeof spool, "%s/outage.spool", dir);
    /* gamma's fallback is configured (not its cheapest model); the other
     * buckets fall back to their cheapest */
    tu_write_file(cfg, "{\"fallbacks\":{\"gamma\":\"g2\"}}");
    char *text = calloc(1, (size_t)n * 96);
    for (int i = 0; i < n; i++) {
        char l[96];
        snprintf(l, sizeof l,
                 "{\"id\":%d,\"bucket\":\"%s\",\"prompt\":\"p\"}\n", i,
                 BUCKETS[i % 3]);
        strcat(text, l);
    }
    tu_write_file(tasks, text);
    free(text);
    char *argv[] = {agent,       "--controller",
                    d->endpoint, "--config",
                    cfg,         "--models",
                    d->config,   "--spool",
                    spool,       "--concurrency",
                    "8",         "--ctl-timeout-ms",
                    "300",       "--ctl-backoff-max-ms",
                    "400",       "--provider-timeout-ms",
                    "3000",      "--drain-ms",
                    "20000",     "--quiet",
                    tasks,       NULL};
    return tu_spawn(argv, NULL, out, err);
}

/* What the results say: every step's bucket allows its model, local
 * steps picked each bucket's fallback; the sum of the reported costs;
 * the local steps (one per local decision here: no model fails). */
typedef struct outage_sums {
    double cost;
    int tasks, local, outcomes;
} outage_sums_t;

static void
check_results(const cJSON *res, const cJSON *all, outage_sums_t *sum)
{
    memset(sum, 0, sizeof *sum);
    const cJSON *r, *s;
    cJSON_ArrayForEach(r, res)
    {
        const char *bucket = f(r, "bucket")->valuestring;
        sum->tasks++;
        assert_true(cJSON_IsNull(f(r, "error")));
        if (!allowed(bucket, f(r, "model")->valuestring))
            fail_msg("task %d: bucket %s served by %s", f(r, "id")->valueint,
                     bucket, f(r, "model")->valuestring);
        sum->cost += th_num(r, "cost_usd");
        cJSON_ArrayForEach(s, f(r, "steps"))
        {
            const char *m = f(s, "model")->valuestring;
            assert_true(allowed(bucket, m));
            sum->outcomes += strcmp(f(s, "outcome")->valuestring, "valid") == 0;
            if (!cJSON_IsTrue(f(s, "local")))
                continue;
            sum->local++;
            assert_string_equal(m, LOCAL_PICK[bucket_index(bucket)]);
            assert_true(cJSON_IsNull(f(s, "decision_id")));
            /* booked: in the log, marked local, no propensity */
            const cJSON *d = find_local(all, th_str(s, "local_id"));
            if (!d)
                fail_msg("local decision %s is not in the export",
                         th_str(s, "local_id"));
            assert_true(cJSON_IsTrue(f(d, "local")));
            assert_true(cJSON_IsNull(f(d, "propensity")));
            assert_true(cJSON_IsNull(f(d, "decision_id")));
            assert_string_equal(th_str(d, "status"), "done");
            assert_string_equal(th_str(d, "bucket"), bucket);
            assert_string_equal(th_str(d, "model"), m);
            assert_true(fabs(th_num(d, "cost_usd") - th_num(s, "cost_usd")) <
                        1e-12);
        }
    }
}

static void
test_outage_ledger(void **state)
{
    (void)state;
    double t0 = tu_now();
    th_daemon_t d;
    th_setup_in(&d, dir, "outage", "");
    snprintf(d.endpoint, sizeof d.endpoint, "ipc://%s/outage.sock", dir);
    d.wall_clock = 1;
    write_config(&d);
    th_start(&d);
    const int n = 300; /* 300 x 40 ms, 8 at a time: 1.5 s of calls */
    char out[700];
    pid_t ap = start_agent(&d, n, out, sizeof out);
    /* away once a fifth of the tasks are done, for a second */
    for (int w = 0; w < 3000 && count_lines(out) < n / 5; w++)
        tu_sleep_ms(5);
    th_kill9(&d);
    int at_kill = count_lines(out);
    tu_sleep_ms(1000);
    int at_restart = count_lines(out);
    th_start(&d);
    assert_int_equal(tu_wait(ap, 60000), 0);

    cJSON *res = tu_read_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), n);
    th_client_t *c = th_client_new(d.endpoint);
    cJSON *all = export_all(c);
    outage_sums_t sum;
    check_results(res, all, &sum);
    int local_logged = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, all) local_logged += cJSON_IsTrue(f(x, "local"));
    cJSON *st = request(c, "{\"op\":\"stats\"}");
    double spent = th_num(f(st, "budget"), "spent_usd");
    double ev = evidence(st);
    print_message("outage: %d tasks (%d done at the kill, %d at the restart); "
                  "agent-reported cost %.9f, ledger %.9f (difference %.3g); "
                  "%d local decisions, %d in the export marked local; "
                  "%d outcomes, posterior evidence %.0f; %.1f s\n",
                  sum.tasks, at_kill, at_restart, sum.cost, spent,
                  spent - sum.cost, sum.local, local_logged, sum.outcomes, ev,
                  tu_now() - t0);
    /* (a) the ledger is every reported cost, local or not: the sums of
     * the same few hundred doubles in two orders differ by ~1e-17 */
    assert_true(fabs(spent - sum.cost) < 1e-9);
    /* the outage was part of the run: decisions were made locally */
    assert_true(sum.local > 0);
    /* (c) every local decision is in the export, once, marked local */
    assert_int_equal(local_logged, sum.local);
    /* every outcome (local ones too) is in the posteriors once */
    assert_true(fabs(ev - sum.outcomes) < 1e-6);
    /* the spool drained */
    char spool[700];
    snprintf(spool, sizeof spool, "%s/outage.spool", dir);
    struct stat sb;
    assert_true(stat(spool, &sb) != 0 || sb.st_size == 0);
    cJSON_Delete(st);
    cJSON_Delete(all);
    cJSON_Delete(res);
    th_client_destroy(&c);
    th_stop(&d);
}

/* -------------------------------------------------------------- book */

#define START 1767225700.0 /* 100 s into a day (window_s 86400) */

static const char *BOOK_CFG =
    "{\"models\":{\"m1\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2},\"m2\":{\"provider\":\"openai\","
    "\"price_in_per_mtok\":3,\"price_out_per_mtok\":4}},"
    "\"buckets\":{\"code\":{\"models\":[\"m1\",\"m2\"],"
    "\"expected_tokens_in\":700,\"expected_tokens_out\":70,"
    "\"budget\":{\"limit_usd\":5}}},"
    "\"budget\":{\"limit_usd\":10,\"window_s\":86400},"
    "\"decision_ttl_s\":60,\"store\":{\"retention_s\":3600},"
    "\"limits\":{\"max_tokens_in\":5000}}";

/* A book request: local decision id at time t, then the event. */
static char *
book(const char *id, const char *bucket, const char *model, double t,
     const char *event)
{
    return bursar_sprintf("{\"op\":\"book\",\"local\":{\"id\":\"%s\","
                          "\"bucket\":\"%s\",\"model\":\"%s\",\"time\":%.3f},"
                          "%s}",
                          id, bucket, model, t, event);
}

/* Sends a book request; returns 1 when answered duplicate. */
static int
book_ok(th_client_t *c, char *req)
{
    cJSON *r = request(c, req);
    free(req);
    int dup = cJSON_IsTrue(f(r, "duplicate"));
    cJSON_Delete(r);
    return dup;
}

static void
book_error(th_client_t *c, char *req, const char *code, const char *field)
{
    cJSON *r = th_call(c, "%s", req);
    free(req);
    assert_non_null(r);
    const cJSON *e = f(r, "error");
    if (!e || strcmp(th_str(e, "code"), code) != 0 ||
        !strstr(th_str(e, "message"), field))
        fail_msg("expected %s naming %s, got %s", code, field,
                 cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
}

static double
spent(th_client_t *c, int bucket)
{
    cJSON *st = request(c, "{\"op\":\"stats\"}");
    const cJSON *b =
        bucket ? f(th_bucket(st, "code"), "budget") : f(st, "budget");
    double v = th_num(b, "spent_usd");
    cJSON_Delete(st);
    return v;
}

/* alpha - alpha0 and beta - beta0 of code/m1 */
static void
m1_evidence(th_client_t *c, double *s, double *fl)
{
    cJSON *st = request(c, "{\"op\":\"stats\"}");
    const cJSON *a = th_arm(st, "code", "m1");
    *s = th_num(a, "alpha") - th_num(a, "alpha0");
    *fl = th_num(a, "beta") - th_num(a, "beta0");
    assert_true(th_num(a, "pulls") == 0); /* not the policy's choice */
    cJSON_Delete(st);
}

static void
check_models_reply(th_client_t *c)
{
    cJSON *r = request(c, "{\"op\":\"models\"}");
    const cJSON *b = cJSON_GetArrayItem(f(r, "buckets"), 0);
    assert_string_equal(th_str(b, "name"), "code");
    assert_int_equal(cJSON_GetArraySize(f(b, "models")), 2);
    assert_string_equal(cJSON_GetArrayItem(f(b, "models"), 1)->valuestring,
                        "m2");
    assert_true(th_num(b, "expected_tokens_in") == 700 &&
                th_num(b, "expected_tokens_out") == 70);
    cJSON_Delete(r);
}

/* Booked, duplicate, mismatched, corrected; a closed window's decision,
 * an unknown bucket, bad figures. */
static void
book_events(th_client_t *c)
{
    const char *ok = "\"kind\":\"outcome\",\"success\":true,"
                     "\"cost_usd\":0.01,\"latency_ms\":5";
    /* a time ahead of the controller's clock counts as now */
    assert_false(book_ok(c, book("L1", "code", "m1", START + 50, ok)));
    assert_true(fabs(spent(c, 0) - 0.01) < 1e-12);
    assert_true(fabs(spent(c, 1) - 0.01) < 1e-12);
    double s, fl;
    m1_evidence(c, &s, &fl);
    assert_true(s == 1 && fl == 0);
    assert_true(book_ok(c, book("L1", "code", "m1", START + 50, ok)));
    assert_true(fabs(spent(c, 0) - 0.01) < 1e-12);
    book_error(c, book("L1", "code", "m2", START, ok), "invalid_value",
               "\"local.id\"");
    assert_false(
        book_ok(c, book("L1", "code", "m1", START, "\"kind\":\"correction\"")));
    m1_evidence(c, &s, &fl);
    assert_true(s == 0 && fl == 1);
    /* yesterday's: logged with its cost, not in today's ledger */
    assert_false(book_ok(c, book("L2", "code", "m1", START - 200,
                                 "\"kind\":\"outcome\",\"success\":true,"
                                 "\"cost_usd\":0.02")));
    assert_true(fabs(spent(c, 0) - 0.01) < 1e-12);
    /* an unknown bucket: booked, teaches no posterior */
    assert_false(book_ok(c, book("L5", "nobucket", "zz", START,
                                 "\"kind\":\"outcome\",\"success\":true,"
                                 "\"cost_usd\":0.005")));
    assert_true(fabs(spent(c, 0) - 0.015) < 1e-12);
    assert_true(fabs(spent(c, 1) - 0.01) < 1e-12);
    assert_false(book_ok(c, book("L6", "code", "m2", START,
                                 "\"kind\":\"provider_error\","
                                 "\"error\":\"HTTP 503\"")));
    book_error(c, book("L3", "code", "m1", START - 4000, ok), "invalid_value",
               "\"local.time\"");
    /* more than 300 s ahead of the controller's clock: refused (its
     * record could be pruned before the client's time is past retention,
     * and the same booking sent again then booked twice) */
    book_error(c, book("L7", "code", "m1", START + 400, ok), "invalid_value",
               "\"local.time\"");
    book_error(c, book("L7", "code", "m1", 1e11, ok), "invalid_value",
               "\"local.time\"");
    /* within the skew: logged at now */
    assert_false(book_ok(c, book("L8", "code", "m2", START + 250,
                                 "\"kind\":\"provider_error\","
                                 "\"error\":\"HTTP 502\"")));
    book_error(c,
               book("L4", "code", "m1", START,
                    "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":100"),
               "invalid_value", "\"cost_usd\"");
    book_error(c,
               book("L4", "code", "m1", START,
                    "\"kind\":\"outcome\",\"success\":true,\"tokens_in\":9000"),
               "invalid_value", "\"tokens_in\"");
}

static void
check_book_export(th_client_t *c)
{
    cJSON *all = export_all(c);
    int n = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, all)
    {
        assert_true(cJSON_IsTrue(f(d, "local")));
        assert_true(cJSON_IsNull(f(d, "propensity")));
        assert_true(cJSON_IsNull(f(d, "decision_id")));
        assert_int_equal(cJSON_GetArraySize(f(d, "offered")), 0);
        n++;
    }
    assert_int_equal(n, 5); /* L1, L2, L5, L6, L8 */
    /* L8's client time was 250 s ahead: logged at the controller's now */
    assert_true(th_num(find_local(all, "L8"), "time") == START);
    d = find_local(all, "L1");
    assert_true(th_num(d, "cost_usd") == 0.01 && th_num(d, "reward") == 0 &&
                th_num(d, "outcome") == 1);
    assert_true(cJSON_IsTrue(f(d, "corrected")));
    assert_true(th_num(find_local(all, "L2"), "cost_usd") == 0.02);
    d = find_local(all, "L5");
    assert_true(cJSON_IsNull(f(d, "reward"))); /* no arm: not applied */
    d = find_local(all, "L6");
    assert_string_equal(th_str(d, "status"), "pending");
    /* nothing booked yet: no cost, none (not an "expected" 0) */
    assert_true(cJSON_IsNull(f(d, "cost_usd")));
    assert_string_equal(th_str(d, "cost_source"), "none");
    assert_string_equal(th_str(d, "provider_error"), "HTTP 503");
    cJSON_Delete(all);
}

static void
test_book(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, BOOK_CFG);
    char clock[64];
    snprintf(clock, sizeof clock, "--test-clock=%.0f", START);
    th_start_args(&d, clock);
    th_client_t *c = th_client_new(d.endpoint);
    check_models_reply(c);
    book_events(c);
    check_book_export(c);
    /* idempotent across a restart */
    th_client_destroy(&c);
    th_stop(&d);
    th_start_args(&d, clock);
    c = th_client_new(d.endpoint);
    assert_true(book_ok(c, book("L1", "code", "m1", START,
                                "\"kind\":\"outcome\",\"success\":true,"
                                "\"cost_usd\":0.01")));
    assert_true(fabs(spent(c, 0) - 0.015) < 1e-12);
    /* retention prunes local decisions like any settled one, 300 s
     * after their logged time says; a booking that old is refused rather
     * than booked again, also one whose client time was ahead */
    cJSON_Delete(request(c, "{\"op\":\"clock\",\"advance_s\":4100}"));
    cJSON_Delete(request(c, "{\"op\":\"ping\"}"));
    cJSON *all = export_all(c);
    assert_int_equal(cJSON_GetArraySize(all), 0);
    cJSON_Delete(all);
    book_error(c,
               book("L1", "code", "m1", START,
                    "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":0.01"),
               "invalid_value", "\"local.time\"");
    book_error(c,
               book("L8", "code", "m2", START + 250,
                    "\"kind\":\"provider_error\",\"error\":\"HTTP 502\""),
               "invalid_value", "\"local.time\"");
    th_client_destroy(&c);
    th_stop(&d);
    th_cleanup(&d);
}

/* ------------------------------------------------------------- spool */

static void
test_spool_unusable(void **state)
{
    (void)state;
    char cmd[4096], out[4096];
    /* a directory that does not exist */
    snprintf(cmd, sizeof cmd,
             "'%s' --controller ipc://%s/none.sock --spool %s/nodir/x.spool "
             "--fallback-model m </dev/null 2>&1",
             agent, dir, dir);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    char want[1200];
    snprintf(want, sizeof want,
             "spool %s/nodir/x.spool: directory %s/nodir "
             "does not exist",
             dir, dir);
    if (!strstr(out, want))
        fail_msg("no \"%s\" in: %s", want, out);
    /* a spool that is a directory */
    snprintf(cmd, sizeof cmd,
             "'%s' --controller ipc://%s/none.sock --spool %s "
             "--fallback-model m </dev/null 2>&1",
             agent, dir, dir);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    snprintf(want, sizeof want, "spool %s: not a regular file", dir);
    if (!strstr(out, want))
        fail_msg("no \"%s\" in: %s", want, out);
}

/* The controller away, a spool at the file size limit (ulimit -f): the
 * events that do not fit are lost, counted, and the exit status says so. */
static void
test_feedback_lost(void **state)
{
    (void)state;
    char sc[700], spool[700], cmd[4096];
    snprintf(sc, sizeof sc, "%s/lost.json", dir);
    snprintf(spool, sizeof spool, "%s/lost.spool", dir);
    tu_write_file(sc, "{\"seed\":1,\"tasks\":{\"count\":20,\"buckets\":"
                      "{\"code\":1}},\"models\":{\"m\":{\"success\":1,"
                      "\"cost_usd\":0.001}}}");
    /* ulimit -f 1: 512 or 1024 bytes by the shell, two or three lines */
    snprintf(cmd, sizeof cmd,
             "ulimit -f 1 && exec '%s' --controller ipc://%s/none.sock "
             "--simulate %s --spool %s --fallback-model m --ctl-timeout-ms 50 "
             "--drain-ms 0 --quiet 2>&1",
             agent, dir, sc, spool);
    char *out = calloc(1, 1 << 16);
    int rc = th_run(cmd, out, 1 << 16);
    print_message("lost: exit %d\n", rc);
    assert_int_equal(rc, 3);
    int lost = 0;
    for (const char *p = out; (p = strstr(p, "\"feedback\":\"lost\"")); p++)
        lost++;
    char want[64];
    snprintf(want, sizeof want, "bursar-agent: %d feedback events lost", lost);
    if (lost < 10 || !strstr(out, want) || !strstr(out, "File too large"))
        fail_msg("%d lost; no \"%s\" (or no reason) in: %.2000s", lost, want,
                 out);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outage_ledger),
        cmocka_unit_test(test_book),
        cmocka_unit_test(test_spool_unusable),
        cmocka_unit_test(test_feedback_lost),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
