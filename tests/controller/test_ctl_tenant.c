/*
 * test_ctl_tenant.c - tenant budgets against the real bursard: a choose
 * for a tenant with a budget reserves on its pacer and moves its own
 * price (stats' "tenants"); a spent budget refuses (budget_exhausted,
 * nothing recorded) or serves the cheapest flagged over_budget, as
 * configured; a tenant without an entry is served under the global
 * budget only; "*" gives every other tenant a budget, up to
 * limits.max_tenants (an idle one forgotten first); SIGHUP changes
 * tenants; a restart keeps their spend and price; configuration errors
 * name their JSON path; /metrics has a gauge per tenant and figure.
 *
 * The daemon runs with --test-clock on ipc:// in a fresh directory
 * (tests/harness.h).
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
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/harness.h"
#include "tests/http.h"

/* dear: 1000 in + 500 out at 10/20 per Mtok = 0.02; cheap: 0.0002 */
#define MODELS                                                                 \
    "\"models\":{"                                                             \
    "\"dear\":{\"provider\":\"openai\",\"price_in_per_mtok\":10,"              \
    "\"price_out_per_mtok\":20},"                                              \
    "\"cheap\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.1,"            \
    "\"price_out_per_mtok\":0.2}},"                                            \
    "\"buckets\":{\"code\":{\"models\":[\"dear\",\"cheap\"],"                  \
    "\"expected_tokens_in\":1000,\"expected_tokens_out\":500}},"               \
    "\"budget\":{\"limit_usd\":100,\"window_s\":1000000000,"                   \
    "\"prior_rate_per_s\":1e-6},"                                              \
    "\"decision_ttl_s\":60,\"policy\":{\"name\":\"ts-budget\",\"seed\":7}"

#define ACME                                                                   \
    "\"acme\":{\"budget\":{\"limit_usd\":0.05,\"expected_requests\":100,"      \
    "\"when_exhausted\":\"refuse\"}}"
#define BETA "\"beta\":{\"budget\":{\"limit_usd\":0.03,\"window_s\":1000}}"

static const char *const config_main =
    "{" MODELS ",\"tenants\":{" ACME "," BETA "}}";

/* acme's limit raised, beta's entry gone, "*" for every other tenant
 * (beta among them) with a 100 s window, at most 3 tenants with a budget
 * at once */
static const char *const config_star =
    "{" MODELS ",\"tenants\":{"
    "\"acme\":{\"budget\":{\"limit_usd\":1,\"expected_requests\":100,"
    "\"when_exhausted\":\"refuse\"}},"
    "\"*\":{\"budget\":{\"limit_usd\":0.5,\"window_s\":100}}},"
    "\"limits\":{\"max_tenants\":3}}";

typedef struct fx {
    th_daemon_t d;
    th_client_t *c;
} fx_t;

/* The clock starts at 2e9 s, a multiple of every window here (the global
 * and acme's 1e9 s, beta's 1000 s, "*"'s 100 s): each window has all of
 * its length ahead, so targets are simple figures. It moves only by the
 * clock op; a restart keeps it. */
static void
restart(fx_t *f)
{
    if (f->c) {
        th_client_destroy(&f->c);
        assert_int_equal(th_stop(&f->d), 0);
    }
    th_start_args(&f->d, "--test-clock=2000000000");
    f->c = th_client_new(f->d.endpoint);
}

static int
fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    th_setup(&f->d, config_main);
    restart(f);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx_t *f = *state;
    th_client_destroy(&f->c);
    int st = th_stop(&f->d);
    th_cleanup(&f->d);
    free(f);
    assert_int_equal(st, 0);
    return 0;
}

/* A choose for tenant, the model forced by excluding the other. Returns
 * the reply. */
static cJSON *
choose(fx_t *f, const char *tenant, const char *exclude)
{
    return th_ok(f->c,
                 "{\"op\":\"choose\",\"bucket\":\"code\",\"tenant\":\"%s\","
                 "\"exclude\":[%s]}",
                 tenant, exclude ? exclude : "");
}

static void
outcome(fx_t *f, const cJSON *r, double cost)
{
    cJSON_Delete(th_ok(f->c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true,"
                       "\"cost_usd\":%.17g}",
                       th_str(r, "decision_id"), cost));
}

/* The tenant's object in a stats reply, or NULL. */
static const cJSON *
tenant_of(const cJSON *s, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(s, "tenants"))
    {
        if (strcmp(th_str(t, "tenant"), name) == 0)
            return t;
    }
    return NULL;
}

static cJSON *
stats(fx_t *f)
{
    return th_ok(f->c, "{\"op\":\"stats\"}");
}

static int
exported(fx_t *f)
{
    cJSON *e = th_ok(f->c, "{\"op\":\"export\"}");
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(e, "decisions"));
    cJSON_Delete(e);
    return n;
}

static int
near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

/* ------------------------------------------------------------------ */

/* A decision for acme reserves on acme's pacer and the global one, its
 * outcome books the cost on both; the dear model's cost far above acme's
 * target raises acme's price, not the global one. */
static void
test_priced(void **state)
{
    fx_t *f = *state;
    cJSON *s = stats(f);
    const cJSON *t = tenant_of(s, "acme");
    assert_non_null(t);
    assert_true(near(th_num(t, "limit_usd"), 0.05));
    assert_true(th_num(t, "window_s") == 1e9);
    /* before any request: 0.05 over the 100 expected and the pacer's
     * margin of 2 sqrt(100) (policies/pacer.h, PACER_MARGIN_Z) */
    assert_true(fabs(th_num(t, "target_usd") - 0.05 / 120) < 1e-6);
    assert_true(th_num(t, "mu") == 0 && th_num(t, "requests") == 0);
    assert_string_equal(th_str(t, "when_exhausted"), "refuse");
    t = tenant_of(s, "beta");
    assert_true(th_num(t, "window_s") == 1000);
    assert_string_equal(th_str(t, "when_exhausted"), "serve_cheapest");
    cJSON_Delete(s);

    cJSON *r = choose(f, "acme", "\"cheap\"");
    assert_string_equal(th_str(r, "model"), "dear");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    s = stats(f);
    t = tenant_of(s, "acme");
    assert_true(near(th_num(t, "reserved_usd"), 0.02));
    assert_true(th_num(t, "requests") == 1);
    /* 0.02 against a target of 0.0005: the ratio clipped at 10, one
     * step of 0.01 * 9 */
    assert_true(fabs(th_num(t, "mu") - 0.09) < 1e-9);
    const cJSON *pol = cJSON_GetObjectItem(s, "policy");
    assert_true(th_num(pol, "mu") == 0); /* the global target is far */
    assert_true(
        near(th_num(cJSON_GetObjectItem(s, "budget"), "reserved_usd"), 0.02));
    assert_true(near(th_num(tenant_of(s, "beta"), "reserved_usd"), 0));
    cJSON_Delete(s);
    outcome(f, r, 0.015);
    cJSON_Delete(r);
    s = stats(f);
    t = tenant_of(s, "acme");
    assert_true(near(th_num(t, "reserved_usd"), 0));
    assert_true(near(th_num(t, "spent_usd"), 0.015));
    assert_true(near(th_num(t, "remaining_usd"), 0.035));
    assert_true(
        near(th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd"), 0.015));
    cJSON_Delete(s);

    /* an expired decision releases its reservation (expiry.cost books
     * the expected cost by default) */
    r = choose(f, "acme", "\"cheap\"");
    /* dear's cost estimate moved with the report: (0.02 + 0.015) / 2 */
    double expected = th_num(r, "expected_cost_usd");
    assert_true(near(expected, 0.0175));
    cJSON_Delete(r);
    cJSON_Delete(th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":61}"));
    s = stats(f);
    t = tenant_of(s, "acme");
    assert_true(near(th_num(t, "reserved_usd"), 0));
    assert_true(near(th_num(t, "spent_usd"), 0.015 + expected));
    cJSON_Delete(s);
    /* bursar stats prints them: a row per tenant after the budget */
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s --controller %s stats", th_bin("bursar"),
             f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    const char *tab = strstr(out, "\ntenants:\n");
    if (!tab || !strstr(tab, "  acme ") || !strstr(tab, "  beta ") ||
        !strstr(tab, "refuse") || !strstr(tab, "serve_cheapest") ||
        !strstr(tab, " $0.05 "))
        fail_msg("no tenants table in:\n%s", out);
}

/* acme (refuse): once its budget cannot pay for the cheapest allowed
 * model, budget_exhausted naming the tenant, its limit and the window's
 * end, and nothing recorded. beta (serve_cheapest): the cheapest,
 * flagged over_budget. An operator's adjust with a tenant moves its
 * spend. */
static void
test_exhausted(void **state)
{
    fx_t *f = *state;
    cJSON *r = choose(f, "acme", "\"cheap\"");
    outcome(f, r, 0.0499);
    cJSON_Delete(r);
    /* 0.0001 left: the cheap model (0.0002) does not fit */
    cJSON *s = stats(f);
    double decisions = th_num(s, "decisions");
    double requests = th_num(tenant_of(s, "acme"), "requests");
    double window_end = th_num(tenant_of(s, "acme"), "window_end");
    cJSON_Delete(s);
    int n = exported(f);
    cJSON *e = th_call(f->c, "{\"op\":\"choose\",\"bucket\":\"code\","
                             "\"tenant\":\"acme\"}");
    assert_non_null(e);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e, "ok")));
    const cJSON *err = cJSON_GetObjectItem(e, "error");
    assert_string_equal(th_str(err, "code"), "budget_exhausted");
    const char *msg = th_str(err, "message");
    char end[64];
    time_t we = (time_t)window_end;
    struct tm tm;
    gmtime_r(&we, &tm);
    strftime(end, sizeof end, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!strstr(msg, "tenant \"acme\"'s budget (tenants.acme)") ||
        !strstr(msg, "of 0.05 USD") || !strstr(msg, end) ||
        !strstr(msg, "when_exhausted: refuse"))
        fail_msg("the refusal names the tenant, its entry, its limit, the "
                 "window's end (%s) and its setting: %s",
                 end, msg);
    cJSON_Delete(e);
    /* nothing recorded */
    assert_int_equal(exported(f), n);
    s = stats(f);
    assert_true(th_num(s, "decisions") == decisions);
    assert_true(th_num(tenant_of(s, "acme"), "requests") == requests);
    assert_true(
        near(th_num(cJSON_GetObjectItem(s, "budget"), "reserved_usd"), 0));
    cJSON_Delete(s);
    /* another tenant, and none, are served as before */
    r = choose(f, "beta", NULL);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    outcome(f, r, 0.03); /* beta's whole budget */
    cJSON_Delete(r);
    r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    cJSON_Delete(r);
    /* beta spent: the cheapest, flagged */
    r = choose(f, "beta", NULL);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
    assert_string_equal(th_str(r, "model"), "cheap");
    cJSON_Delete(r);
    /* an operator's refund (admin op adjust) gives acme room again: its
     * spend and the global one move, the log keeps acme's before and
     * after */
    s = stats(f);
    double global = th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd");
    cJSON_Delete(s);
    cJSON *a = th_ok(f->c, "{\"op\":\"adjust\",\"amount_usd\":-0.04,"
                           "\"tenant\":\"acme\",\"reason\":\"refund\"}");
    assert_string_equal(th_str(a, "tenant"), "acme");
    assert_true(near(th_num(a, "tenant_spent_before_usd"), 0.0499));
    assert_true(near(th_num(a, "tenant_spent_after_usd"), 0.0099));
    cJSON_Delete(a);
    s = stats(f);
    assert_true(near(th_num(tenant_of(s, "acme"), "spent_usd"), 0.0099));
    assert_true(near(th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd"),
                     global - 0.04));
    cJSON_Delete(s);
    r = choose(f, "acme", NULL);
    cJSON_Delete(r);
    /* a tenant without a budget of its own has none to adjust */
    th_expect_error(f->c, "invalid_value",
                    "{\"op\":\"adjust\",\"amount_usd\":1,"
                    "\"tenant\":\"nobody\",\"reason\":\"x\"}");
}

/* A tenant without an entry (and no "*"): the global budget only, no
 * tenant state made for it. */
static void
test_unknown_tenant(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 3; i++) {
        cJSON *r = choose(f, "nobody", "\"cheap\"");
        assert_string_equal(th_str(r, "model"), "dear");
        assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "over_budget")));
        cJSON_Delete(r);
    }
    cJSON *s = stats(f);
    assert_null(tenant_of(s, "nobody"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s, "tenants")), 2);
    assert_true(
        near(th_num(cJSON_GetObjectItem(s, "budget"), "reserved_usd"), 0.06));
    cJSON_Delete(s);
}

/* A restart keeps each tenant's spend, reservations, requests and price. */
static void
test_restart(void **state)
{
    fx_t *f = *state;
    cJSON *r = choose(f, "acme", "\"cheap\"");
    outcome(f, r, 0.01);
    cJSON_Delete(r);
    r = choose(f, "beta", "\"cheap\""); /* stays pending */
    double expected = th_num(r, "expected_cost_usd");
    cJSON_Delete(r);
    cJSON *s1 = stats(f);
    restart(f);
    cJSON *s2 = stats(f);
    const char *keys[] = {"spent_usd", "reserved_usd", "requests",
                          "mu",        "window_start", "limit_usd"};
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "beta" : "acme";
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            double a = th_num(tenant_of(s1, name), keys[i]);
            double b = th_num(tenant_of(s2, name), keys[i]);
            if (a != b)
                fail_msg("tenant %s %s: %.17g before, %.17g after", name,
                         keys[i], a, b);
        }
    }
    assert_true(th_num(tenant_of(s2, "acme"), "mu") > 0);
    assert_true(near(th_num(tenant_of(s2, "beta"), "reserved_usd"), expected));
    cJSON_Delete(s1);
    cJSON_Delete(s2);
}

/* A choose for tenant name when limits.max_tenants tenants hold a
 * budget, none idle, and "*" serves the cheapest once spent: served under
 * the global budget only, flagged tenant_unbudgeted, no ledger made;
 * stats count total tenants. */
static void
unbudgeted(fx_t *f, const char *name, int total)
{
    cJSON *r = choose(f, name, NULL);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "tenant_unbudgeted"))) {
        char *j = cJSON_PrintUnformatted(r);
        cJSON *s = stats(f);
        char *k = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "tenants"));
        fail_msg("%s not flagged tenant_unbudgeted: %s; tenants %s", name, j,
                 k);
    }
    cJSON_Delete(r);
    cJSON *s = stats(f);
    assert_null(tenant_of(s, name));
    assert_true(th_num(s, "tenants_total") == total);
    cJSON_Delete(s);
}

/* SIGHUP: acme's limit changes and its spend stays; beta, no longer
 * named, falls under "*" (its spend kept, the new limit and window);
 * "*" gives other tenants a budget of their own, up to
 * limits.max_tenants; then a new tenant is served under the global
 * budget only, until one is idle (nothing reserved, no request for
 * 1/24 of its window): the least recently used is forgotten to make
 * room. */
static void
test_reload_star(void **state)
{
    fx_t *f = *state;
    cJSON *r = choose(f, "acme", "\"cheap\"");
    outcome(f, r, 0.04);
    cJSON_Delete(r);
    r = choose(f, "beta", "\"cheap\"");
    outcome(f, r, 0.01);
    cJSON_Delete(r);
    th_write_config(&f->d, config_star);
    th_signal(&f->d, SIGHUP);
    cJSON *s = NULL;
    const cJSON *t = NULL;
    for (int i = 0; i < 100; i++) {
        th_sleep_ms(20);
        cJSON_Delete(s);
        s = stats(f);
        t = tenant_of(s, "acme");
        if (th_num(t, "limit_usd") == 1)
            break;
    }
    assert_true(th_num(t, "limit_usd") == 1);
    assert_true(near(th_num(t, "spent_usd"), 0.04));
    t = tenant_of(s, "beta");
    assert_non_null(t);
    assert_string_equal(th_str(t, "entry"), "*");
    assert_true(th_num(t, "limit_usd") == 0.5 && th_num(t, "window_s") == 100);
    assert_true(near(th_num(t, "spent_usd"), 0.01));
    cJSON_Delete(s);

    r = choose(f, "zed", "\"cheap\"");
    s = stats(f);
    t = tenant_of(s, "zed");
    assert_non_null(t);
    assert_string_equal(th_str(t, "entry"), "*");
    assert_true(
        near(th_num(t, "reserved_usd"), th_num(r, "expected_cost_usd")));
    cJSON_Delete(s);
    /* acme, beta and zed hold the 3, none idle (zed has a decision
     * pending, beta made a request 0 s ago): "*" serves the cheapest once
     * spent, so yak is served under the global budget only, flagged, no
     * ledger made */
    unbudgeted(f, "yak", 3);
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s --controller %s choose code --tenant yak",
             th_bin("bursar"), f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    if (!strstr(out, "tenant_unbudgeted (no room for the tenant's own"))
        fail_msg("no tenant_unbudgeted flag in:\n%s", out);
    /* 2 s later beta asks again; 3 s later (zed's request 5 s ago, more
     * than the 100 s / 24 "*"'s window makes idle, but still pending;
     * beta's 3 s ago) none is idle yet */
    cJSON_Delete(th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":2}"));
    cJSON *rb = choose(f, "beta", "\"cheap\"");
    outcome(f, rb, 0.001);
    cJSON_Delete(rb);
    cJSON_Delete(th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":3}"));
    unbudgeted(f, "yak", 3);
    /* zed's decision settled, 5.2 s later: zed and beta are idle (10.2 s
     * and 8.2 s); zed, the least recently used, is forgotten for yak;
     * beta keeps its ledger and spend */
    outcome(f, r, 0.02);
    cJSON_Delete(r);
    cJSON_Delete(th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":5.2}"));
    r = choose(f, "yak", NULL);
    assert_null(cJSON_GetObjectItem(r, "tenant_unbudgeted"));
    cJSON_Delete(r);
    s = stats(f);
    assert_non_null(tenant_of(s, "yak"));
    assert_null(tenant_of(s, "zed"));
    assert_true(near(th_num(tenant_of(s, "beta"), "spent_usd"), 0.011));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s, "tenants")), 3);
    cJSON_Delete(s);
    /* a restart brings back the tenants "*" gave a budget */
    restart(f);
    s = stats(f);
    assert_non_null(tenant_of(s, "yak"));
    assert_true(th_num(tenant_of(s, "yak"), "requests") == 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s, "tenants")), 3);
    cJSON_Delete(s);
}

/* The metrics port bursard printed on its log, waiting up to 20 s. */
static unsigned
metrics_port(const th_daemon_t *d)
{
    for (int i = 0; i < 200; i++) {
        FILE *fp = fopen(d->log, "r");
        char line[512];
        unsigned port = 0;
        while (fp && fgets(line, sizeof line, fp)) {
            const char *p = strstr(line, "metrics and status page on");
            if (p && (p = strstr(p, ", port ")))
                port = (unsigned)atoi(p + 7);
        }
        if (fp)
            fclose(fp);
        if (port)
            return port;
        th_sleep_ms(100);
    }
    fail_msg("bursard printed no metrics port; see %s", d->log);
    return 0;
}

/* /metrics: a gauge per tenant and figure, as stats has them. */
static void
test_metrics(void **state)
{
    fx_t *f = *state;
    f->d.extra[0] = "--metrics";
    f->d.extra[1] = "127.0.0.1:0";
    restart(f);
    unsigned port = metrics_port(&f->d);
    cJSON *r = choose(f, "acme", "\"cheap\"");
    cJSON_Delete(r);
    th_http_resp_t h;
    th_http_do(&h, port, "GET", "/metrics", "", NULL, 0, 0);
    assert_int_equal(h.status, 200);
    const char *want[] = {
        "bursar_tenant_budget_limit_usd{tenant=\"acme\"} 0.05\n",
        "bursar_tenant_budget_limit_usd{tenant=\"beta\"} 0.03\n",
        "bursar_tenant_budget_reserved_usd{tenant=\"acme\"} 0.02\n",
        "bursar_tenant_budget_spent_usd{tenant=\"acme\"} 0\n",
        "bursar_tenant_budget_target_usd{tenant=\"beta\"} 0.03\n",
        "bursar_tenant_shadow_price{tenant=\"acme\"} 0.09",
        "# TYPE bursar_tenant_shadow_price gauge\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(h.body, want[i]))
            fail_msg("no \"%s\" in:\n%s", want[i], h.body);
    th_http_free(&h);
}

/* "*" refusing once spent: a refused adjust naming a tenant "*" would
 * give a budget makes no ledger; at limits.max_tenants, none idle, a new
 * tenant is refused budget_exhausted and adjust says the table is full. */
static void
test_star_refuse(void **state)
{
    fx_t *f = *state;
    th_write_config(&f->d, "{" MODELS ",\"tenants\":{\"*\":{\"budget\":{"
                           "\"limit_usd\":0.5,\"window_s\":100,"
                           "\"when_exhausted\":\"refuse\"}}},"
                           "\"limits\":{\"max_tenants\":1}}");
    restart(f);
    /* acme or beta (stored under the first configuration) may be loaded
     * under "*" */
    cJSON *s = stats(f);
    double total = th_num(s, "tenants_total");
    cJSON_Delete(s);
    th_expect_error(f->c, "unknown_bucket",
                    "{\"op\":\"adjust\",\"amount_usd\":1,\"tenant\":\"a\","
                    "\"bucket\":\"nope\",\"reason\":\"x\"}");
    s = stats(f);
    assert_null(tenant_of(s, "a"));
    assert_true(th_num(s, "tenants_total") == total);
    cJSON_Delete(s);
    cJSON *r = choose(f, "a", NULL); /* pending: a is not idle */
    cJSON_Delete(r);
    cJSON *e = th_call(f->c, "{\"op\":\"choose\",\"bucket\":\"code\","
                             "\"tenant\":\"b\"}");
    const cJSON *err = cJSON_GetObjectItem(e, "error");
    assert_string_equal(th_str(err, "code"), "budget_exhausted");
    assert_non_null(strstr(th_str(err, "message"), "limits.max_tenants (1)"));
    assert_non_null(
        strstr(th_str(err, "message"), "tenants.\"*\".budget.when_exhausted"));
    cJSON_Delete(e);
    e = th_call(f->c, "{\"op\":\"adjust\",\"amount_usd\":1,\"tenant\":\"b\","
                      "\"reason\":\"x\"}");
    err = cJSON_GetObjectItem(e, "error");
    assert_string_equal(th_str(err, "code"), "invalid_value");
    assert_non_null(strstr(th_str(err, "message"), "none can be made"));
    cJSON_Delete(e);
    s = stats(f);
    assert_true(th_num(s, "tenants_total") == 1);
    cJSON_Delete(s);
}

/* Waits for a reload to show n tenants in stats. */
static void
wait_tenants(fx_t *f, int n)
{
    for (int i = 0; i < 200; i++) {
        cJSON *s = stats(f);
        int got = (int)th_num(s, "tenants_total");
        cJSON_Delete(s);
        if (got == n)
            return;
        th_sleep_ms(20);
    }
    fail_msg("stats never showed %d tenants after SIGHUP", n);
}

/* A decision settles while its tenant is not loaded (its entry gone from
 * the configuration): its stored ledger is settled, so when the entry
 * comes back the reservation is released and the cost booked. */
static void
test_settle_unloaded(void **state)
{
    fx_t *f = *state;
    cJSON *ra = choose(f, "acme", "\"cheap\"");
    cJSON *rb = choose(f, "beta", "\"cheap\"");
    double expected = th_num(ra, "expected_cost_usd");
    th_write_config(&f->d, "{" MODELS "}");
    th_signal(&f->d, SIGHUP);
    wait_tenants(f, 0);
    outcome(f, rb, 0.005); /* beta's by its outcome */
    cJSON_Delete(rb);
    /* acme's by expiry (its expected cost booked) */
    cJSON_Delete(th_ok(f->c, "{\"op\":\"clock\",\"advance_s\":61}"));
    cJSON_Delete(stats(f));
    th_write_config(&f->d, config_main);
    th_signal(&f->d, SIGHUP);
    wait_tenants(f, 2);
    cJSON *s = stats(f);
    const cJSON *t = tenant_of(s, "acme");
    assert_true(near(th_num(t, "reserved_usd"), 0));
    assert_true(near(th_num(t, "spent_usd"), expected));
    t = tenant_of(s, "beta");
    assert_true(near(th_num(t, "reserved_usd"), 0));
    assert_true(near(th_num(t, "spent_usd"), 0.005));
    cJSON_Delete(s);
    cJSON_Delete(ra);
}

/* tenants.NAME.budget.expected_requests changed after the ledger was
 * stored takes effect (the pacer's prior, as the global budget's). */
static void
test_expected_requests(void **state)
{
    fx_t *f = *state;
    cJSON_Delete(choose(f, "acme", "\"cheap\"")); /* stores acme's ledger */
    th_write_config(&f->d,
                    "{" MODELS ",\"tenants\":{\"acme\":{\"budget\":{"
                    "\"limit_usd\":0.05,\"expected_requests\":10000}}}}");
    restart(f);
    cJSON *s = stats(f);
    const cJSON *t = tenant_of(s, "acme");
    double left = 0.05 - th_num(t, "reserved_usd");
    /* left over 10000 expected and the margin 2 sqrt(10000), not over
     * the 100 of before (0.03 / 120) */
    double want = left / (10000 + 200);
    if (fabs(th_num(t, "target_usd") - want) > 0.01 * want)
        fail_msg("target %.6g, want %.6g", th_num(t, "target_usd"), want);
    cJSON_Delete(s);
}

/* At most CTL_TENANTS_SHOWN (100) tenants in stats and /metrics, those
 * with the most spend; tenants_total counts all; bursar stats says how
 * many more. */
static void
test_stats_cap(void **state)
{
    fx_t *f = *state;
    th_write_config(&f->d,
                    "{" MODELS ",\"tenants\":{" ACME ",\"*\":{\"budget\":{"
                    "\"limit_usd\":1}}},\"limits\":{\"max_tenants\":200}}");
    f->d.extra[0] = "--metrics";
    f->d.extra[1] = "127.0.0.1:0";
    restart(f);
    unsigned port = metrics_port(&f->d);
    for (int i = 0; i < 103; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%03d", i);
        cJSON *r = choose(f, name, "\"cheap\"");
        outcome(f, r, 0.0001 * (i + 1));
        cJSON_Delete(r);
    }
    cJSON *s = stats(f);
    const cJSON *ts = cJSON_GetObjectItem(s, "tenants");
    assert_int_equal(cJSON_GetArraySize(ts), 100);
    /* acme, t000..t102, and beta (stored under the first configuration,
     * loaded under "*") */
    assert_true(th_num(s, "tenants_total") == 105);
    assert_string_equal(th_str(cJSON_GetArrayItem(ts, 0), "tenant"), "t102");
    assert_string_equal(th_str(cJSON_GetArrayItem(ts, 99), "tenant"), "t003");
    assert_null(tenant_of(s, "acme"));
    assert_null(tenant_of(s, "t002"));
    cJSON_Delete(s);
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s --controller %s stats", th_bin("bursar"),
             f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    if (!strstr(out, "(5 more not shown"))
        fail_msg("no \"5 more not shown\" in:\n%s", out);
    th_http_resp_t h;
    th_http_do(&h, port, "GET", "/metrics", "", NULL, 0, 0);
    assert_int_equal(h.status, 200);
    int n = 0;
    for (const char *p = h.body;
         (p = strstr(p, "\nbursar_tenant_budget_spent_usd{")); p++)
        n++;
    assert_int_equal(n, 100);
    assert_non_null(
        strstr(h.body, "bursar_tenant_budget_spent_usd{tenant=\"t102\"}"));
    assert_null(strstr(h.body, "{tenant=\"t002\"}"));
    th_http_free(&h);
}

/* bursar adjust --tenant NAME: the tenant's spend before and after. */
static void
test_adjust_cli(void **state)
{
    fx_t *f = *state;
    cJSON *r = choose(f, "acme", "\"cheap\"");
    outcome(f, r, 0.04);
    cJSON_Delete(r);
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd,
             "%s --controller %s adjust --amount -0.01 --tenant acme "
             "--reason refund",
             th_bin("bursar"), f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    if (!strstr(out, "tenant acme's budget: spent $0.0400 -> $0.0300"))
        fail_msg("no tenant line in:\n%s", out);
    cJSON *s = stats(f);
    assert_true(near(th_num(tenant_of(s, "acme"), "spent_usd"), 0.03));
    cJSON_Delete(s);
    snprintf(cmd, sizeof cmd,
             "%s --controller %s adjust --amount 1 --tenant 'a/b' "
             "--reason x 2>&1",
             th_bin("bursar"), f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--tenant \"a/b\""));
}

static int
check_config(fx_t *f, const char *json, char *out, size_t cap)
{
    char path[700], cmd[2048];
    snprintf(path, sizeof path, "%s/t.json", f->d.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(json, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s --check-config %s 2>&1", th_bin("bursard"),
             path);
    return th_run(cmd, out, cap);
}

/* Every problem of the tenants section, each at its JSON path. */
static void
test_config_errors(void **state)
{
    fx_t *f = *state;
    char out[8192];
    int st = check_config(
        f,
        "{" MODELS ",\"tenants\":{"
        "\"a/b\":{\"budget\":{\"limit_usd\":1}},"
        "\"big\":{\"budget\":{\"limit_usd\":101}},"
        "\"typo\":{\"budget\":{\"limit_usd\":1,\"limt\":2}},"
        "\"nolimit\":{\"budget\":{\"window_s\":10}},"
        "\"when\":{\"budget\":{\"limit_usd\":1,\"when_exhausted\":\"never\"}},"
        "\"zero\":{\"budget\":{\"limit_usd\":0}},"
        "\"nobudget\":{}},"
        "\"limits\":{\"max_tenants\":3}}",
        out, sizeof out);
    assert_int_equal(st, 1);
    const char *want[] = {
        "$.tenants.a/b: a tenant's name must have 1 to 31 characters",
        "$.tenants.big: budget.limit_usd 101 exceeds the global limit_usd 100",
        "$.tenants.typo.budget.limt: unknown key",
        "$.tenants.nolimit.budget.limit_usd: is required",
        "$.tenants.when.budget.when_exhausted: must be \"serve_cheapest\" or "
        "\"refuse\"",
        "$.tenants.zero.budget.limit_usd: must be positive",
        "$.tenants.nobudget.budget: is required",
        "$.limits.max_tenants: is 3, below the 7 named tenants",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(out, want[i]))
            fail_msg("no \"%s\" in:\n%s", want[i], out);
    /* another window: a limit above the global one is not a contradiction */
    st = check_config(f,
                      "{" MODELS ",\"tenants\":{\"w\":{\"budget\":{"
                      "\"limit_usd\":500,\"window_s\":2000000000}}}}",
                      out, sizeof out);
    assert_int_equal(st, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_priced, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_exhausted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_tenant, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reload_star, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_metrics, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_star_refuse, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_settle_unloaded, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_expected_requests, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_stats_cap, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_adjust_cli, fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_kill_all();
    return rc;
}
