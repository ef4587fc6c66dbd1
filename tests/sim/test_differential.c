/*
 * test_differential.c - the rule of the house, checked: the simulator's
 * controller (sim/engine.h) and the real bursard make the same decision
 * for every request of one event sequence.
 *
 * One configuration (tests write it; bursard reads it; the engine is set
 * up from the same parsed cfg_t) and one seeded sequence of events:
 * chooses (with exclusions), outcomes (rewards, costs, latencies),
 * corrections, provider errors (a model goes down for a while) and clock
 * steps. The sequence is sent to bursard on loopback (a real LMDB
 * directory, --test-clock=START so that its time moves only by the clock
 * op) and applied to an engine at the same times, in lockstep. Every
 * choose must give the same model, the same fallbacks in the same order
 * and the same propensity (to 1e-12: both compute it with the same code
 * from the same state), and both must refuse the same requests
 * (no_model_available).
 *
 * The configuration and the sequence exercise every part of the
 * decision, and the test requires that each was reached: Thompson sampling
 * under a global budget that runs out (unaffordable choices), a bucket
 * with a cap of its own (the per-request LP, whose propensity is a Monte
 * Carlo run on the same random stream), forgetting, the exploration floor,
 * the latency objective (one slow model), the circuit breaker with backoff
 * and half-open probes (one model down for a stretch), exclusions down to
 * nothing (no_model_available), outcomes served by a fallback ("model"),
 * costs given as tokens, corrections; and in a second run decisions that
 * expire (as failures at no cost) with feedback refused on both sides.
 *
 * It can fail: test_differential_detects gives the engine a breaker that
 * opens one provider error later than bursard's and requires the
 * comparison to report a divergence.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "controller/cfg.h"
#include "sim/engine.h"
#include "tests/harness.h"

#define DIFF_START  1767225600.0 /* 2026-01-01T00:00:00Z */
#define DIFF_STEPS  600
#define DIFF_SEED   20261201UL
#define DIFF_MAXDEC (DIFF_STEPS + 1)

/* printf format: the decision ttl, then the expiry object */
static const char diff_config[] =
    "{\"models\": {"
    "  \"big\":   {\"provider\":\"openai\",\"model\":\"big\","
    "             \"base_url\":\"http://127.0.0.1:9/v1\","
    "             \"price_in_per_mtok\":10,\"price_out_per_mtok\":30},"
    "  \"mid\":   {\"provider\":\"openai\",\"model\":\"mid\","
    "             \"base_url\":\"http://127.0.0.1:9/v1\","
    "             \"price_in_per_mtok\":3,\"price_out_per_mtok\":15},"
    "  \"small\": {\"provider\":\"openai\",\"model\":\"small\","
    "             \"base_url\":\"http://127.0.0.1:9/v1\","
    "             \"price_in_per_mtok\":0.15,\"price_out_per_mtok\":0.6},"
    "  \"slow\":  {\"provider\":\"openai\",\"model\":\"slow\","
    "             \"base_url\":\"http://127.0.0.1:9/v1\","
    "             \"price_in_per_mtok\":0.8,\"price_out_per_mtok\":4}},"
    " \"buckets\": {"
    "  \"code\": {\"models\":[\"big\",\"mid\",\"small\",\"slow\"],"
    "           \"prior\":{\"alpha\":1,\"beta\":1},\"half_life_s\":1800,"
    "           \"latency_slo_ms\":2000,"
    "           \"expected_tokens_in\":2000,\"expected_tokens_out\":800},"
    "  \"extract\": {\"models\":[\"small\",\"slow\",\"mid\"],"
    "           \"prior\":{\"alpha\":2,\"beta\":1},"
    "           \"budget\":{\"limit_usd\":0.4,\"window_s\":86400},"
    "           \"expected_tokens_in\":1500,\"expected_tokens_out\":300}},"
    " \"budget\": {\"limit_usd\":0.8,\"window_s\":86400,"
    "             \"prior_rate_per_s\":0.02},"
    " \"explore_floor\": 0.02,"
    " \"decision_ttl_s\": %s,"
    " \"health\": {\"failures\":2,\"cooldown_s\":20,\"max_cooldown_s\":160},"
    " \"latency\": {\"window_s\":600,\"quantile\":0.9,\"min_samples\":3},"
    " \"policy\": {\"name\":\"ts-budget\",\"dual_step\":0.05,"
    "             \"seed\":4242}%s}";

/* ------------------------------------------------------------------ */
/* The engine, set up from the parsed configuration as ctl.c sets up    */
/* its buckets (ctl_bucket_build, ctl_policy_params, ctl_allow_params). */

typedef struct diff_sim {
    cfg_t *cfg;
    engine_t *engine;
    engine_bucket_def_t defs[8];
    engine_arm_def_t arms[8][CFG_MAX_ARMS];
} diff_sim_t;

static void
diff_sim_open(diff_sim_t *s, const char *config_path, int sabotage)
{
    cfg_problems_t pr = {0};
    assert_int_equal(cfg_load_file(config_path, &s->cfg, &pr), 0);
    cfg_problems_clear(&pr);
    const cfg_t *c = s->cfg;
    assert_true(c->n_buckets <= 8);
    engine_config_t ec;
    memset(&ec, 0, sizeof ec);
    assert_int_equal(cfg_policy_params(c, &ec.params), 0);
    cfg_allow_params(c, &ec.allow);
    if (sabotage)
        ec.allow.health.failures++;
    ec.n_models = c->n_models;
    ec.n_buckets = c->n_buckets;
    for (size_t b = 0; b < c->n_buckets; b++) {
        const cfg_bucket_t *cb = &c->buckets[b];
        for (size_t i = 0; i < cb->n_models; i++) {
            engine_arm_def_t *a = &s->arms[b][i];
            a->model = cb->models[i];
            a->alpha0 = cb->prior_alpha;
            a->beta0 = cb->prior_beta;
            a->cost_prior =
                cfg_model_cost(&c->models[cb->models[i]],
                               cb->expected_tokens_in, cb->expected_tokens_out);
            a->cost_prior_w = 1.0;
        }
        engine_bucket_def_t *d = &s->defs[b];
        d->n_arms = cb->n_models;
        d->arms = s->arms[b];
        d->half_life_s = cb->half_life_s;
        d->latency_slo_ms = cb->latency_slo_ms;
        if (cb->has_budget) {
            d->budget_usd = cb->budget.limit_usd;
            d->budget_window_s = cb->budget.window_s;
        }
    }
    ec.buckets = s->defs;
    ec.budget_usd = c->budget.limit_usd;
    ec.window_s = c->budget.window_s;
    ec.prior_rate = c->budget_prior_rate;
    ec.t0 = DIFF_START;
    ec.seed = c->seed;
    ec.decision_ttl_s = c->decision_ttl_s;
    ec.expiry_failure = c->expiry_outcome == CFG_EXPIRY_FAILURE;
    ec.expiry_cost_zero = c->expiry_cost == CFG_EXPIRY_COST_ZERO;
    s->engine = engine_new(&ec);
}

static void
diff_sim_close(diff_sim_t *s)
{
    engine_destroy(&s->engine);
    cfg_destroy(&s->cfg);
}

/* ------------------------------------------------------------------ */
/* The event sequence                                                   */

/* The world the events come from: a success rate per model and bucket,
 * a latency per model (slow breaks code's 2000 ms objective), and an
 * outage of "mid" between steps 150 and 260. */
static double
diff_quality(int model, size_t bucket)
{
    static const double q[2][4] = {{0.92, 0.8, 0.45, 0.6},
                                   {0.95, 0.9, 0.85, 0.8}};
    return q[bucket][model];
}

typedef struct diff_run {
    th_client_t *cl;
    diff_sim_t sim;
    engine_decision_t dec[DIFF_MAXDEC]; /* the engine's, by step */
    char ids[DIFF_MAXDEC][400];         /* bursard's decision ids */
    int open[DIFF_MAXDEC];              /* has a decision to report */
    int fallback[DIFF_MAXDEC];          /* its first fallback arm, or -1 */
    double now;
    size_t compared, refused, diverged;
    /* how often each part of the decision was exercised */
    size_t slow, unaffordable, by_fallback, by_tokens, expired, errors;
    char first_divergence[512];
} diff_run_t;

static void
diff_diverge(diff_run_t *r, const char *fmt, ...)
{
    r->diverged++;
    if (r->first_divergence[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first_divergence, sizeof r->first_divergence, fmt, ap);
    va_end(ap);
}

static const char *
diff_model_name(diff_run_t *r, int m)
{
    return r->sim.cfg->models[m].name;
}

/* One choose on both sides; compares. exclude_arm >= 0 excludes that
 * arm; -2 excludes every arm but "mid"'s (refused while mid is down). */

/* A number as the wire carries it (proto.c writes %.10g): the engine's
 * propensity rounded so, to compare with bursard's reply. */
static double
diff_wire(double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.10g", v);
    return strtod(buf, NULL);
}

static void
diff_choose(diff_run_t *r, size_t step, size_t b, int exclude_arm)
{
    const cfg_bucket_t *cb = &r->sim.cfg->buckets[b];
    unsigned char ex[CFG_MAX_ARMS] = {0};
    char exj[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < cb->n_models; i++) {
        int m = cb->models[i];
        if (!((int)i == exclude_arm ||
              (exclude_arm == -2 && strcmp(diff_model_name(r, m), "mid"))))
            continue;
        ex[i] = 1;
        len += (size_t)snprintf(exj + len, sizeof exj - len, "%s\"%s\"",
                                len ? "," : ",\"exclude\":[",
                                diff_model_name(r, m));
    }
    if (len)
        snprintf(exj + len, sizeof exj - len, "]");
    cJSON *rep = th_call(r->cl, "{\"op\":\"choose\",\"bucket\":\"%s\"%s}",
                         cb->name, exj);
    assert_non_null(rep);
    int order[CFG_MAX_ARMS];
    size_t n_order = 0;
    engine_decision_t *d = &r->dec[step];
    allow_counts_t ac = {0, 0, 0};
    int rc =
        engine_choose(r->sim.engine, b, ex, r->now, d, order, &n_order, &ac);
    r->slow += ac.slow;
    r->fallback[step] = -1;
    for (size_t i = 0; rc == 0 && i < n_order && r->fallback[step] < 0; i++)
        if (order[i] != d->arm)
            r->fallback[step] = order[i];
    int ok = cJSON_IsTrue(cJSON_GetObjectItem(rep, "ok"));
    if (!ok) {
        const char *code = th_str(cJSON_GetObjectItem(rep, "error"), "code");
        if (rc == 0 || strcmp(code, "no_model_available") != 0)
            diff_diverge(r, "step %zu: bursard %s, engine chose %s", step, code,
                         rc == 0 ? diff_model_name(r, d->model) : "-");
        else
            r->refused++;
        cJSON_Delete(rep);
        return;
    }
    const char *model = th_str(rep, "model");
    double prop = th_num(rep, "propensity");
    if (rc != 0) {
        diff_diverge(r, "step %zu: bursard chose %s, engine none", step, model);
        cJSON_Delete(rep);
        return;
    }
    if (strcmp(model, diff_model_name(r, d->model)) != 0)
        diff_diverge(r, "step %zu (%s): bursard chose %s, engine %s", step,
                     cb->name, model, diff_model_name(r, d->model));
    else if (fabs(prop - diff_wire(d->choice.propensity)) > 1e-12)
        diff_diverge(r, "step %zu: propensity %.17g vs engine %.17g", step,
                     prop, d->choice.propensity);
    const cJSON *fb = cJSON_GetObjectItem(rep, "fallbacks");
    size_t k = 0;
    for (size_t i = 0; i < n_order; i++) {
        if (order[i] == d->arm)
            continue;
        const cJSON *f = cJSON_GetArrayItem(fb, (int)k++);
        if (!cJSON_IsString(f) ||
            strcmp(f->valuestring, diff_model_name(r, cb->models[order[i]])) !=
                0) {
            diff_diverge(r, "step %zu: fallback %zu differs", step, k - 1);
            break;
        }
    }
    if ((size_t)cJSON_GetArraySize(fb) != k)
        diff_diverge(r, "step %zu: %d fallbacks vs engine %zu", step,
                     cJSON_GetArraySize(fb), k);
    if (cJSON_IsTrue(cJSON_GetObjectItem(rep, "over_budget")) !=
        !!(d->choice.flags & POLICY_F_UNAFFORDABLE))
        diff_diverge(r, "step %zu: over_budget differs", step);
    r->unaffordable += !!(d->choice.flags & POLICY_F_UNAFFORDABLE);
    snprintf(r->ids[step], sizeof r->ids[step], "%s",
             th_str(rep, "decision_id"));
    r->open[step] = 1;
    r->compared++;
    cJSON_Delete(rep);
}

static void
diff_clock(diff_run_t *r, double dt)
{
    cJSON_Delete(th_ok(r->cl, "{\"op\":\"clock\",\"advance_s\":%.17g}", dt));
    r->now += dt;
    engine_sweep(r->sim.engine, r->now); /* bursard sweeps after the op */
}

/* Sends one feedback request and compares bursard's answer with the
 * engine's: both apply it, or both refuse an expired decision. */
static void diff_feedback(diff_run_t *r, size_t step, int engine_rc,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
diff_feedback(diff_run_t *r, size_t step, int engine_rc, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    cJSON *rep =
        th_call(r->cl, "{\"op\":\"feedback\",\"decision_id\":\"%s\",%s}",
                r->ids[step], body);
    assert_non_null(rep);
    int ok = cJSON_IsTrue(cJSON_GetObjectItem(rep, "ok"));
    const char *code =
        ok ? "ok" : th_str(cJSON_GetObjectItem(rep, "error"), "code");
    int expired = !ok && strcmp(code, "decision_expired") == 0;
    if ((engine_rc == ENGINE_EXPIRED) != expired || (!ok && !expired))
        diff_diverge(r, "step %zu: feedback %s: bursard %s, engine %s", step,
                     body, code,
                     engine_rc == ENGINE_EXPIRED ? "expired" : "applied");
    r->expired += expired;
    cJSON_Delete(rep);
}

/* The outcome of decision `step`: served by its model, or (15%) by its
 * first fallback ("model"); the cost as USD (55%), as tokens priced by
 * the configuration (20%), or not at all (the expected cost is booked). */
static void
diff_outcome(diff_run_t *r, gsl_rng *w, size_t step)
{
    engine_decision_t *d = &r->dec[step];
    const cfg_bucket_t *cb = &r->sim.cfg->buckets[d->bucket];
    int arm = d->arm;
    char served[96] = "";
    if (r->fallback[step] >= 0 && gsl_rng_uniform(w) < 0.15) {
        arm = r->fallback[step];
        snprintf(served, sizeof served, ",\"model\":\"%s\"",
                 diff_model_name(r, cb->models[arm]));
        r->by_fallback++;
    }
    int m = cb->models[arm];
    int success = gsl_rng_uniform(w) < diff_quality(m, d->bucket);
    double lat = floor(m == 3 ? 2500 + 500 * gsl_rng_uniform(w)
                              : 300 + 900 * gsl_rng_uniform(w));
    double u = gsl_rng_uniform(w);
    if (u < 0.55) {
        double cost =
            floor(d->reserved_usd * (0.5 + gsl_rng_uniform(w)) * 1e6) / 1e6;
        int rc =
            engine_outcome(r->sim.engine, d, arm, success, cost, lat, r->now);
        diff_feedback(r, step, rc,
                      "\"kind\":\"outcome\",\"success\":%s,\"cost_usd\":%.17g,"
                      "\"latency_ms\":%.17g%s",
                      success ? "true" : "false", cost, lat, served);
    } else if (u < 0.75) {
        double tin = floor(500 + 2000 * gsl_rng_uniform(w));
        double tout = floor(100 + 900 * gsl_rng_uniform(w));
        double cost = cfg_model_cost(&r->sim.cfg->models[m], tin, tout);
        int rc =
            engine_outcome(r->sim.engine, d, arm, success, cost, lat, r->now);
        diff_feedback(r, step, rc,
                      "\"kind\":\"outcome\",\"success\":%s,\"tokens_in\":%.0f,"
                      "\"tokens_out\":%.0f,\"latency_ms\":%.17g%s",
                      success ? "true" : "false", tin, tout, lat, served);
        r->by_tokens++;
    } else {
        int rc =
            engine_outcome(r->sim.engine, d, arm, success, NAN, NAN, r->now);
        diff_feedback(r, step, rc, "\"kind\":\"outcome\",\"reward\":%d%s",
                      success, served);
    }
    if (success && gsl_rng_uniform(w) < 0.1)
        diff_feedback(r, step, engine_correction(r->sim.engine, d, r->now),
                      "\"kind\":\"correction\"");
}

/* Reports what happened to decision `step` (both sides): "mid" is down
 * between steps 150 and 260. */
static void
diff_report(diff_run_t *r, gsl_rng *w, size_t step, size_t now_step)
{
    engine_decision_t *d = &r->dec[step];
    if (d->model == 1 && now_step >= 150 && now_step < 260) {
        diff_feedback(r, step, engine_provider_error(r->sim.engine, d, r->now),
                      "\"kind\":\"provider_error\",\"error\":\"503\"");
        r->errors++;
        return;
    }
    diff_outcome(r, w, step);
}

/* One run of DIFF_STEPS chooses: ttl and expiry go into the
 * configuration; sabotage gives the engine a different breaker. */
static void
diff_run(diff_run_t *r, const char *ttl, const char *expiry, int sabotage)
{
    th_daemon_t dm;
    char config[sizeof diff_config + 256];
    snprintf(config, sizeof config, diff_config, ttl, expiry);
    th_setup(&dm, config);
    char arg[64];
    snprintf(arg, sizeof arg, "--test-clock=%.0f", DIFF_START);
    th_start_args(&dm, arg);
    diff_sim_open(&r->sim, dm.config, sabotage);
    r->cl = th_client_new(dm.endpoint);
    r->now = DIFF_START;
    gsl_rng *w = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(w, DIFF_SEED);
    size_t pending[8], n_pending = 0;
    for (size_t step = 0; step < DIFF_STEPS; step++) {
        size_t b = gsl_rng_uniform(w) < 0.6 ? 0 : 1;
        size_t n_arms = r->sim.cfg->buckets[b].n_models;
        double u = gsl_rng_uniform(w);
        int ex = u < 0.1    ? (int)gsl_rng_uniform_int(w, n_arms)
                 : u < 0.15 ? -2
                            : -1;
        diff_choose(r, step, b, ex);
        if (r->open[step])
            pending[n_pending++] = step;
        /* outcomes arrive late and out of order, up to 8 in flight; one
         * in ten never (left to expire) */
        while (n_pending && (n_pending == 8 || gsl_rng_uniform(w) < 0.5)) {
            size_t k = gsl_rng_uniform_int(w, n_pending);
            if (gsl_rng_uniform(w) < 0.9)
                diff_report(r, w, pending[k], step);
            pending[k] = pending[--n_pending];
        }
        u = gsl_rng_uniform(w);
        if (u < 0.5)
            diff_clock(r, floor(1 + 9 * gsl_rng_uniform(w)));
        else if (u < 0.52)
            diff_clock(r, 400); /* latency samples age out */
    }
    gsl_rng_free(w);
    th_client_destroy(&r->cl);
    th_cleanup(&dm);
    diff_sim_close(&r->sim);
}

static void
diff_print(const char *what, const diff_run_t *r)
{
    printf("%s: %zu decisions compared, %zu refused by both, %zu "
           "divergences%s%s\n"
           "  exercised: %zu slow-arm exclusions, %zu unaffordable, %zu "
           "outcomes by a fallback, %zu costs as tokens, %zu provider "
           "errors, %zu feedbacks refused as expired\n",
           what, r->compared, r->refused, r->diverged, r->diverged ? ": " : "",
           r->first_divergence, r->slow, r->unaffordable, r->by_fallback,
           r->by_tokens, r->errors, r->expired);
}

/* Decisions never expire within the run. */
static void
test_differential_same_decisions(void **state)
{
    (void)state;
    static diff_run_t r;
    memset(&r, 0, sizeof r);
    diff_run(&r, "100000", "", 0);
    diff_print("differential", &r);
    assert_int_equal(r.diverged, 0);
    /* the sequence must reach what it is meant to exercise */
    assert_true(r.compared > DIFF_STEPS / 2);
    assert_true(r.refused > 0); /* no_model_available on both sides */
    assert_int_equal(r.refused + r.compared, DIFF_STEPS);
    assert_true(r.slow > 0 && r.unaffordable > 0 && r.by_fallback > 0 &&
                r.by_tokens > 0 && r.errors > 0);
}

/* Decisions expire after 25 s (a clock step is 1 to 10 s, sometimes 400):
 * expiry as a failure at no cost, feedback refused on both sides. */
static void
test_differential_expiry(void **state)
{
    (void)state;
    static diff_run_t r;
    memset(&r, 0, sizeof r);
    diff_run(&r, "25",
             ",\"expiry\":{\"outcome\":\"failure\",\"cost\":\"zero\"}", 0);
    diff_print("with expiry", &r);
    assert_int_equal(r.diverged, 0);
    assert_true(r.expired > 0);
    assert_int_equal(r.refused + r.compared, DIFF_STEPS);
}

/* The check has power: an engine whose breaker opens one error later
 * than bursard's must be caught. */
static void
test_differential_detects(void **state)
{
    (void)state;
    static diff_run_t r;
    memset(&r, 0, sizeof r);
    diff_run(&r, "100000", "", 1);
    printf("sabotaged engine: %zu divergences, first: %s\n", r.diverged,
           r.first_divergence);
    assert_true(r.diverged > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_same_decisions),
        cmocka_unit_test(test_differential_expiry),
        cmocka_unit_test(test_differential_detects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
