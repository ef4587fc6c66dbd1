/*
 * test_ctl_status.c - the status page's data (ctl_status_json) and its
 * history ring (ctl_status_tick), on the controller's core driven
 * directly with a test clock that moves only by clock ops: the sampling
 * cadence (the first tick samples, then every metrics.sample_s, a late
 * tick once and the cadence restarted from it), the ring's wrap-around
 * (the newest metrics.samples kept, oldest first), cumulative pulls per
 * (bucket, model) column, columns of buckets added and removed by a
 * reload, the ring resized by a reload, each arm's 95% interval, and the
 * pacer's plan.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "controller/ctl.h"

/* The test clock's start: a multiple of 3600 s, so that an hour's budget
 * window starts there. */
#define START 999997200.0

#define MODELS                                                                 \
    "\"models\":{\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"      \
    "\"price_out_per_mtok\":2},\"b\":{\"provider\":\"openai\","                \
    "\"price_in_per_mtok\":3,\"price_out_per_mtok\":4}}"

static char dir[64];

static cfg_t *
parse_cfg(const char *text)
{
    cfg_t *cfg = NULL;
    if (cfg_parse(text, strlen(text), &cfg, NULL) != 0)
        fail_msg("configuration refused: %s", text);
    return cfg;
}

static ctl_t *
open_ctl(const char *text)
{
    snprintf(dir, sizeof dir, "/tmp/bursar-status-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ctl_options_t o = {dir, 1, START};
    ctl_t *c = NULL;
    char err[256];
    if (ctl_open(&c, parse_cfg(text), &o, err, sizeof err) != 0)
        fail_msg("ctl_open: %s", err);
    return c;
}

static void
close_ctl(ctl_t **c)
{
    ctl_destroy(c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* One request in its own batch; the reply parsed, required ok. */
static cJSON *
call(ctl_t *c, const char *rq)
{
    assert_int_equal(ctl_begin(c), 0);
    char *r = ctl_handle(c, rq, strlen(rq), NULL, NULL);
    assert_int_equal(ctl_commit(c), 0);
    cJSON *j = cJSON_Parse(r);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")))
        fail_msg("%s answered %s", rq, r);
    free(r);
    return j;
}

static void
advance(ctl_t *c, double s)
{
    char rq[96];
    snprintf(rq, sizeof rq, "{\"op\":\"clock\",\"advance_s\":%.17g}", s);
    cJSON_Delete(call(c, rq));
}

/* Moves the clock by s and ticks, as the loop does at every turn. */
static void
step(ctl_t *c, double s)
{
    advance(c, s);
    ctl_status_tick(c);
}

/* A choose in bucket; its decision id (caller frees). */
static char *
choose(ctl_t *c, const char *bucket)
{
    char rq[128];
    snprintf(rq, sizeof rq, "{\"op\":\"choose\",\"bucket\":\"%s\"}", bucket);
    cJSON *j = call(c, rq);
    char *id = strdup(cJSON_GetObjectItem(j, "decision_id")->valuestring);
    cJSON_Delete(j);
    return id;
}

static void
success(ctl_t *c, const char *id, double cost)
{
    char rq[512];
    snprintf(rq, sizeof rq,
             "{\"op\":\"feedback\",\"decision_id\":\"%s\","
             "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":%g}",
             id, cost);
    cJSON_Delete(call(c, rq));
}

/* The status page's data with the samples from number since on. */
static cJSON *
status_since(ctl_t *c, long long since)
{
    char *s = ctl_status_json(c, since);
    cJSON *j = cJSON_Parse(s);
    if (!j)
        fail_msg("ctl_status_json is not JSON: %s", s);
    free(s);
    return j;
}

static cJSON *
status(ctl_t *c)
{
    return status_since(c, -1);
}

static const cJSON *
samples(const cJSON *st)
{
    const cJSON *h = cJSON_GetObjectItem(st, "history");
    assert_non_null(h);
    const cJSON *s = cJSON_GetObjectItem(h, "samples");
    assert_true(cJSON_IsArray(s));
    return s;
}

static double
num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("no number \"%s\"", k);
    return v->valuedouble;
}

/* The times of the samples held, oldest first, relative to START. */
static size_t
times(ctl_t *c, double *t, size_t cap)
{
    cJSON *st = status(c);
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, samples(st))
    {
        assert_true(n < cap);
        t[n++] = num(e, "t") - START;
    }
    cJSON_Delete(st);
    return n;
}

static void
expect_times(ctl_t *c, const double *want, size_t n)
{
    double t[32];
    size_t got = times(c, t, 32);
    char g[512] = "", w[512] = "";
    for (size_t i = 0; i < got; i++)
        snprintf(g + strlen(g), sizeof g - strlen(g), " %g", t[i]);
    for (size_t i = 0; i < n; i++)
        snprintf(w + strlen(w), sizeof w - strlen(w), " %g", want[i]);
    if (got != n)
        fail_msg("samples at%s; expected at%s", g, w);
    for (size_t i = 0; i < n; i++)
        if (fabs(t[i] - want[i]) > 1e-6)
            fail_msg("samples at%s; expected at%s", g, w);
}

static const char cadence_cfg[] =
    "{" MODELS ",\"buckets\":{\"x\":{\"models\":[\"a\",\"b\"]}},"
    "\"metrics\":{\"sample_s\":10,\"samples\":4}}";

/* The first tick samples; then one sample per period at the first tick
 * at or after it; a tick more than a period late samples once and the
 * cadence starts again from it; the ring keeps the newest 4. */
static void
test_cadence_and_wrap(void **state)
{
    (void)state;
    ctl_t *c = open_ctl(cadence_cfg);
    {
        cJSON *st = status(c); /* before any tick: an empty history */
        assert_int_equal(cJSON_GetArraySize(samples(st)), 0);
        const cJSON *h = cJSON_GetObjectItem(st, "history");
        assert_true(num(h, "sample_s") == 10);
        assert_true(num(h, "capacity") == 4);
        cJSON_Delete(st);
    }
    ctl_status_tick(c);
    ctl_status_tick(c); /* the same instant: not due */
    expect_times(c, (double[]){0}, 1);
    step(c, 5);
    step(c, 4.999);
    expect_times(c, (double[]){0}, 1);
    step(c, 0.001); /* t = 10: due */
    expect_times(c, (double[]){0, 10}, 2);
    step(c, 13); /* t = 23: due since 20; the next stays at 30 */
    step(c, 6);  /* t = 29 */
    expect_times(c, (double[]){0, 10, 23}, 3);
    step(c, 1); /* t = 30 */
    expect_times(c, (double[]){0, 10, 23, 30}, 4);
    /* t = 75: 35 s late, one sample, and the next at 85 (not 80) */
    step(c, 45);
    expect_times(c, (double[]){10, 23, 30, 75}, 4);
    step(c, 9); /* 84 */
    expect_times(c, (double[]){10, 23, 30, 75}, 4);
    step(c, 1); /* 85 */
    step(c, 10);
    step(c, 10); /* 95, 105 */
    expect_times(c, (double[]){75, 85, 95, 105}, 4);
    cJSON *st = status(c);
    const cJSON *h = cJSON_GetObjectItem(st, "history");
    assert_true(num(h, "taken") == 8);
    cJSON_Delete(st);
    /* around the ring many times: still the newest four, oldest first */
    for (int i = 0; i < 37; i++)
        step(c, 10);
    expect_times(c, (double[]){445, 455, 465, 475}, 4);
    close_ctl(&c);
}

/* The pulls of column (bucket, model) in sample e, or -2 when the
 * sample has no entry for it (the column came later), -1 for null. */
static double
pulls(const cJSON *st, const cJSON *e, const char *bucket, const char *model)
{
    const cJSON *cols =
        cJSON_GetObjectItem(cJSON_GetObjectItem(st, "history"), "columns");
    int k = 0;
    const cJSON *col;
    cJSON_ArrayForEach(col, cols)
    {
        if (strcmp(cJSON_GetObjectItem(col, "bucket")->valuestring, bucket) ==
                0 &&
            strcmp(cJSON_GetObjectItem(col, "model")->valuestring, model) == 0)
            break;
        k++;
    }
    if (!col)
        fail_msg("no column %s/%s", bucket, model);
    const cJSON *p = cJSON_GetObjectItem(e, "pulls");
    if (k >= cJSON_GetArraySize(p))
        return -2;
    const cJSON *v = cJSON_GetArrayItem(p, k);
    return cJSON_IsNull(v) ? -1 : v->valuedouble;
}

/* Cumulative pulls per column, summing to the decisions; spend and
 * reservations of the window in each sample. */
static void
test_pulls_and_spend(void **state)
{
    (void)state;
    ctl_t *c = open_ctl("{" MODELS ",\"buckets\":{\"x\":{\"models\":[\"a\","
                        "\"b\"]},\"y\":{\"models\":[\"b\"]}},"
                        "\"budget\":{\"limit_usd\":10,\"window_s\":3600},"
                        "\"metrics\":{\"sample_s\":1,\"samples\":100}}");
    ctl_status_tick(c);
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = choose(c, i < 3 ? "x" : "y");
    step(c, 1);
    success(c, ids[0], 0.25);
    success(c, ids[3], 0.5);
    step(c, 1);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    cJSON *st = status(c);
    const cJSON *s = samples(st);
    assert_int_equal(cJSON_GetArraySize(s), 3);
    const cJSON *e0 = cJSON_GetArrayItem(s, 0), *e1 = cJSON_GetArrayItem(s, 1),
                *e2 = cJSON_GetArrayItem(s, 2);
    assert_true(pulls(st, e0, "x", "a") + pulls(st, e0, "x", "b") == 0);
    assert_true(pulls(st, e0, "y", "b") == 0);
    assert_true(pulls(st, e1, "x", "a") + pulls(st, e1, "x", "b") == 3);
    assert_true(pulls(st, e1, "y", "b") == 2);
    assert_true(num(e1, "decisions") == 5);
    assert_true(num(e1, "spent_usd") == 0);
    assert_true(num(e1, "reserved_usd") > 0);
    assert_true(num(e2, "spent_usd") == 0.75);
    assert_true(num(e2, "window_start") == START);
    assert_true(num(e0, "reserved_usd") == 0);
    /* the same figures as the budget the page shows */
    const cJSON *b = cJSON_GetObjectItem(st, "budget");
    assert_true(num(b, "spent_usd") == 0.75);
    assert_true(fabs(num(b, "reserved_usd") - num(e2, "reserved_usd")) < 1e-12);
    cJSON_Delete(st);
    close_ctl(&c);
}

/* A reload: a new bucket gets columns that older samples lack, a removed
 * bucket's columns are null from then on, and a smaller ring keeps the
 * newest samples. */
static void
test_reload(void **state)
{
    (void)state;
    ctl_t *c = open_ctl(cadence_cfg);
    for (int i = 0; i < 4; i++) {
        free(choose(c, "x"));
        step(c, i ? 10 : 0);
    }
    char err[256];
    if (ctl_reconfigure(c,
                        parse_cfg("{" MODELS ",\"buckets\":{\"z\":{\"models\":"
                                  "[\"b\"]}},\"metrics\":{\"sample_s\":5,"
                                  "\"samples\":3}}"),
                        err, sizeof err) != 0)
        fail_msg("ctl_reconfigure: %s", err);
    expect_times(c, (double[]){10, 20, 30}, 3); /* the newest 3 kept */
    step(c, 4.5);                               /* 34.5: not due */
    expect_times(c, (double[]){10, 20, 30}, 3);
    free(choose(c, "z"));
    step(c, 0.5); /* 35: due at 30 + 5 */
    cJSON *st = status(c);
    const cJSON *s = samples(st);
    assert_int_equal(cJSON_GetArraySize(s), 3);
    const cJSON *e0 = cJSON_GetArrayItem(s, 0), *e2 = cJSON_GetArrayItem(s, 2);
    assert_true(num(e0, "t") - START == 20);
    assert_true(num(e2, "t") - START == 35);
    assert_true(pulls(st, e0, "x", "a") + pulls(st, e0, "x", "b") == 3);
    assert_true(pulls(st, e0, "z", "b") == -2); /* no entry: came later */
    assert_true(pulls(st, e2, "x", "a") == -1); /* null: gone */
    assert_true(pulls(st, e2, "z", "b") == 1);
    const cJSON *h = cJSON_GetObjectItem(st, "history");
    assert_true(num(h, "sample_s") == 5);
    assert_true(num(h, "capacity") == 3);
    cJSON_Delete(st);
    close_ctl(&c);
}

static const cJSON *
arm(const cJSON *st, const char *bucket, const char *model)
{
    const cJSON *b, *a;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(st, "buckets"))
    {
        if (strcmp(cJSON_GetObjectItem(b, "name")->valuestring, bucket))
            continue;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
        {
            if (!strcmp(cJSON_GetObjectItem(a, "model")->valuestring, model))
                return a;
        }
    }
    fail_msg("no arm %s/%s", bucket, model);
    return NULL;
}

/* Beta(a, 1) has CDF x^a: its 95% interval is [0.025^(1/a),
 * 0.975^(1/a)], exact. The plan: the even line at the elapsed fraction of
 * the window, and the pacer's figures. */
static void
test_interval_and_plan(void **state)
{
    (void)state;
    ctl_t *c = open_ctl("{" MODELS ",\"buckets\":{\"one\":{\"models\":"
                        "[\"a\"],\"prior\":{\"alpha\":1,\"beta\":1},"
                        "\"half_life_s\":0}},"
                        "\"budget\":{\"limit_usd\":8,\"window_s\":3600}}");
    for (int i = 0; i < 2; i++) {
        char *id = choose(c, "one");
        success(c, id, 0.5);
        free(id);
    }
    advance(c, 900);
    cJSON *st = status(c);
    const cJSON *a = arm(st, "one", "a");
    assert_true(num(a, "alpha") == 3 && num(a, "beta") == 1);
    const cJSON *iv = cJSON_GetObjectItem(a, "interval");
    assert_int_equal(cJSON_GetArraySize(iv), 2);
    double lo = cJSON_GetArrayItem(iv, 0)->valuedouble;
    double hi = cJSON_GetArrayItem(iv, 1)->valuedouble;
    if (fabs(lo - pow(0.025, 1.0 / 3)) > 1e-6 ||
        fabs(hi - pow(0.975, 1.0 / 3)) > 1e-6)
        fail_msg("interval [%g, %g]; Beta(3, 1)'s is [%g, %g]", lo, hi,
                 pow(0.025, 1.0 / 3), pow(0.975, 1.0 / 3));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "propensity")));
    const cJSON *p = cJSON_GetObjectItem(st, "plan");
    assert_true(num(p, "window_start") == START);
    assert_true(num(p, "window_end") == START + 3600);
    assert_true(num(p, "limit_usd") == 8);
    assert_true(num(p, "spent_usd") == 1);
    assert_true(num(p, "committed_usd") == 1);
    assert_true(fabs(num(p, "paced_usd") - 2) < 1e-9); /* a quarter of 8 */
    assert_true(fabs(num(p, "remaining_usd") - 7) < 1e-9);
    const cJSON *b = cJSON_GetObjectItem(st, "budget");
    assert_true(num(p, "target_usd") == num(b, "target_usd"));
    /* the target spends what is left over the requests expected */
    assert_true(fabs(num(p, "target_usd") * num(p, "expected_requests") - 7) <
                1e-9);
    assert_true(
        fabs(num(p, "rate_per_s") * 2700 - num(p, "expected_requests")) < 1e-9);
    cJSON_Delete(st);
    close_ctl(&c);
}

/* The history of a reply to since: from, columns_from, and the number of
 * samples and columns it holds, checked; the first sample's time. */
static double
expect_part(ctl_t *c, long long since, double from, double col0, int n_samples,
            int n_cols)
{
    cJSON *st = status_since(c, since);
    const cJSON *h = cJSON_GetObjectItem(st, "history");
    int ns = cJSON_GetArraySize(cJSON_GetObjectItem(h, "samples"));
    int nc = cJSON_GetArraySize(cJSON_GetObjectItem(h, "columns"));
    if (num(h, "from") != from || num(h, "columns_from") != col0 ||
        ns != n_samples || nc != n_cols)
        fail_msg("since=%lld: from %g, columns_from %g, %d samples, %d "
                 "columns; expected %g, %g, %d, %d",
                 since, num(h, "from"), num(h, "columns_from"), ns, nc, from,
                 col0, n_samples, n_cols);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "samples"), 0);
    double t = e ? num(e, "t") - START : NAN;
    cJSON_Delete(st);
    return t;
}

/* ?since=N: the samples from number N on and the columns added after the
 * sample before it, while that sample is held; else the whole history
 * (from = first, columns_from = 0). The epoch stays. */
static void
test_since(void **state)
{
    (void)state;
    ctl_t *c = open_ctl(cadence_cfg); /* 4 samples of x/a, x/b */
    expect_part(c, 0, 0, 0, 0, 0);    /* nothing yet */
    ctl_status_tick(c);
    step(c, 10);
    step(c, 10); /* samples 0, 1, 2 at 0, 10, 20 */
    expect_part(c, -1, 0, 0, 3, 2);
    expect_part(c, 0, 0, 0, 3, 2);
    assert_true(expect_part(c, 1, 1, 2, 2, 0) == 10);
    expect_part(c, 3, 3, 2, 0, 0); /* up to date: nothing new */
    expect_part(c, 4, 0, 0, 3, 2); /* not this history's: all */
    char err[256];
    if (ctl_reconfigure(c,
                        parse_cfg("{" MODELS ",\"buckets\":{\"x\":{\"models\":"
                                  "[\"a\",\"b\"]},\"z\":{\"models\":[\"b\"]}},"
                                  "\"metrics\":{\"sample_s\":10,"
                                  "\"samples\":4}}"),
                        err, sizeof err) != 0)
        fail_msg("ctl_reconfigure: %s", err);
    step(c, 10); /* sample 3 at 30 has z/b, a third column */
    assert_true(expect_part(c, 3, 3, 2, 1, 1) == 30);
    expect_part(c, 2, 2, 2, 2, 1);
    step(c, 10);
    step(c, 10);                   /* samples 2 to 5 held */
    expect_part(c, 1, 2, 0, 4, 3); /* sample 0 gone: all */
    expect_part(c, 2, 2, 0, 4, 3); /* sample 1 gone: all */
    assert_true(expect_part(c, 3, 3, 2, 3, 1) == 30);
    expect_part(c, 4, 4, 3, 2, 0);
    expect_part(c, 6, 6, 3, 0, 0);
    cJSON *a = status(c), *b = status_since(c, 4);
    double ea = num(cJSON_GetObjectItem(a, "history"), "epoch");
    assert_true(ea > 1.5e12); /* milliseconds of the wall clock */
    assert_true(ea == num(cJSON_GetObjectItem(b, "history"), "epoch"));
    assert_true(num(cJSON_GetObjectItem(a, "history"), "first") == 2);
    assert_true(num(cJSON_GetObjectItem(a, "history"), "taken") == 6);
    cJSON_Delete(a);
    cJSON_Delete(b);
    close_ctl(&c);
}

/* The ring's pulls stay within 16 MiB: 105 buckets of 2 models are 210
 * columns, 9986 samples of them fit (16 MiB / (8 x 210)), not the 10000
 * configured; a smaller metrics.samples is kept as it is. */
static void
test_budget(void **state)
{
    (void)state;
    char cfg[8192];
    int n = snprintf(cfg, sizeof cfg, "{" MODELS ",\"buckets\":{");
    for (int i = 0; i < 105; i++)
        n += snprintf(cfg + n, sizeof cfg - (size_t)n,
                      "%s\"b%d\":{\"models\":[\"a\",\"b\"]}", i ? "," : "", i);
    snprintf(cfg + n, sizeof cfg - (size_t)n,
             "},\"metrics\":{\"sample_s\":10,\"samples\":10000}}");
    ctl_t *c = open_ctl(cfg);
    cJSON *st = status(c);
    assert_true(num(cJSON_GetObjectItem(st, "history"), "capacity") == 10000);
    cJSON_Delete(st);
    for (int i = 0; i < 3; i++)
        step(c, 10);
    st = status(c);
    const cJSON *h = cJSON_GetObjectItem(st, "history");
    if (num(h, "capacity") != (16 << 20) / (8 * 210))
        fail_msg("capacity %g with 210 columns; expected %d",
                 num(h, "capacity"), (16 << 20) / (8 * 210));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "columns")),
                     210);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "samples")), 3);
    cJSON_Delete(st);
    close_ctl(&c);
    char *m = strstr(cfg, "10000");
    memcpy(m, "100  ", 5); /* JSON whitespace after 100 */
    c = open_ctl(cfg);
    step(c, 10);
    st = status(c);
    assert_true(num(cJSON_GetObjectItem(st, "history"), "capacity") == 100);
    cJSON_Delete(st);
    close_ctl(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cadence_and_wrap),
        cmocka_unit_test(test_pulls_and_spend),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_interval_and_plan),
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
