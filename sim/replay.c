/*
 * replay.c - exact replay (see replay.h).
 *
 * Everything that decides lives in policies/: this file builds the
 * requests, looks the outcomes up and keeps score.
 */
#include "sim/replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/engine.h"
#include "policies/lp.h"
#include "policies/pacer.h"
#include "policies/base.h"

void
replay_config_default(replay_config_t *c)
{
    memset(c, 0, sizeof *c);
    policy_params_default(&c->params);
    c->budget_per_request = 0.0;
    c->passes = 1;
    c->seed = 1;
    c->half_life_s = 0.0;
    c->shuffle = -1;
    c->cost_prior_bucket = 0;
    allow_params_default(&c->allow);
    c->latency_slo_ms = 0.0;
    c->curve_points = 100;
    c->trace = 0;
}

void
replay_result_destroy(replay_result_t **pr)
{
    if (!pr || !*pr)
        return;
    replay_result_t *r = *pr;
    free(r->share);
    free(r->bucket_share);
    free(r->curve_x);
    free(r->curve_quality);
    free(r->curve_cost);
    free(r->curve_mu);
    free(r->curve_quality_window);
    free(r->curve_cost_window);
    free(r->curve_target);
    free(r->trace_model);
    free(r->trace_bucket);
    free(r->trace_outcome);
    free(r->trace_cost);
    free(r->trace_steps);
    free(r->step_share);
    free(r->b_requests);
    free(r->b_quality);
    free(r->b_cost);
    free(r->b_first_pass);
    free(r->b_escalated);
    free(r->b_steps);
    free(r);
    *pr = NULL;
}

/* ------------------------------------------------------- best static */

int
replay_best_static(const dataset_t *ds, double budget, double *quality,
                   double *cost, double *p)
{
    size_t nb = ds->n_buckets, nm = ds->n_models;
    lp_bucket_t *lb = bursar_calloc(nb ? nb : 1, sizeof *lb);
    double *v = bursar_calloc(nb * nm, sizeof(double));
    double *c = bursar_calloc(nb * nm, sizeof(double));
    double *pp = bursar_calloc(nb * nm, sizeof(double));
    int *map = bursar_calloc(nb * nm, sizeof(int));
    size_t nlb = 0;
    double total = (double)ds->n_rows;
    double max_cost = 0.0;
    for (size_t b = 0; b < nb; b++) {
        size_t n = 0;
        for (size_t m = 0; m < nm; m++) {
            if (!ds->bm_n[b * nm + m])
                continue;
            v[b * nm + n] = ds->bm_quality[b * nm + m];
            c[b * nm + n] = ds->bm_cost[b * nm + m];
            if (c[b * nm + n] > max_cost)
                max_cost = c[b * nm + n];
            map[b * nm + n] = (int)m;
            n++;
        }
        if (!n || !ds->bucket_rows[b])
            continue;
        lb[nlb].n = n;
        lb[nlb].v = v + b * nm;
        lb[nlb].c = c + b * nm;
        lb[nlb].w = (double)ds->bucket_rows[b] / total;
        lb[nlb].p = pp + b * nm;
        nlb++;
    }
    /* no budget: any target above the dearest arm leaves the LP free */
    double target = budget > 0.0 ? budget : 2.0 * max_cost + 1.0;
    double q = 0.0, k = 0.0;
    int rc = nlb ? lp_solve_static(nlb, lb, target, &q, &k) : 0;
    if (rc < 0) {
        rc = SERR_POLICY;
    } else if (p) {
        memset(p, 0, nb * nm * sizeof(double));
        for (size_t b = 0; b < nb; b++) {
            size_t n = 0;
            for (size_t m = 0; m < nm; m++)
                if (ds->bm_n[b * nm + m])
                    n++;
            for (size_t i = 0; i < n; i++)
                p[b * nm + (size_t)map[b * nm + i]] = pp[b * nm + i];
        }
    }
    /* rows of a bucket without any OK cell score 0 and cost 0: the LP's
     * shares already count them, so q and k are per request of the data */
    if (quality)
        *quality = q;
    if (cost)
        *cost = k;
    free(lb);
    free(v);
    free(c);
    free(pp);
    free(map);
    return rc;
}

/* ------------------------------------------------------------ replay */

/* The engine's buckets: one per dataset bucket that has a model, an arm
 * for every model with a cell other than MISSING in it. */
typedef struct replay_state {
    engine_t *engine;
    int *ebucket;   /* dataset bucket -> engine bucket, or -1 */
    int **model_of; /* per dataset bucket: arm -> model */
    size_t max_arms;
} replay_state_t;

static void
replay_state_free(replay_state_t *s, size_t nb)
{
    engine_destroy(&s->engine);
    for (size_t b = 0; b < nb && s->model_of; b++)
        free(s->model_of[b]);
    free(s->model_of);
    free(s->ebucket);
}

/* Which models each bucket offers: present[b * nm + m]. */
static unsigned char *
replay_present(const dataset_t *ds)
{
    size_t nb = ds->n_buckets, nm = ds->n_models;
    unsigned char *present = bursar_calloc(nb * nm, 1);
    for (size_t r = 0; r < ds->n_rows; r++) {
        size_t b = (size_t)ds->row_bucket[r];
        for (size_t m = 0; m < nm; m++)
            if (ds->status[dataset_idx(ds, r, (int)m)] != DATASET_MISSING)
                present[b * nm + m] = 1;
    }
    return present;
}

/* The engine's bucket definitions (arms, priors, static shares). */
static size_t
replay_defs(const dataset_t *ds, const replay_config_t *cfg, replay_state_t *s,
            const unsigned char *present, const double *static_p,
            engine_bucket_def_t *defs, engine_arm_def_t *arms, double *sp)
{
    size_t nb = ds->n_buckets, nm = ds->n_models, ne = 0, na = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t n = 0, first = na;
        s->model_of[b] = bursar_calloc(nm, sizeof(int));
        for (size_t m = 0; m < nm; m++) {
            if (!present[b * nm + m])
                continue;
            s->model_of[b][n] = (int)m;
            engine_arm_def_t *a = &arms[na];
            a->model = (int)m;
            a->alpha0 = a->beta0 = 1.0;
            a->cost_prior = cfg->cost_prior_bucket ? ds->bm_cost[b * nm + m]
                                                   : ds->model_cost[m];
            a->cost_prior_w = 1.0;
            if (static_p)
                sp[na] = static_p[b * nm + m];
            na++;
            n++;
        }
        s->ebucket[b] = -1;
        if (!n)
            continue;
        if (n > s->max_arms)
            s->max_arms = n;
        engine_bucket_def_t *d = &defs[ne];
        memset(d, 0, sizeof *d);
        d->n_arms = n;
        d->arms = arms + first;
        d->half_life_s = cfg->half_life_s;
        d->latency_slo_ms = b < ds->n_bucket_slo && ds->bucket_slo_ms[b] > 0
                                ? ds->bucket_slo_ms[b]
                                : cfg->latency_slo_ms;
        d->static_p = static_p ? sp + first : NULL;
        s->ebucket[b] = (int)ne++;
    }
    return ne;
}

static int
replay_setup(const dataset_t *ds, const replay_config_t *cfg, size_t total,
             replay_state_t *s, serr_t *e)
{
    size_t nb = ds->n_buckets, nm = ds->n_models;
    s->ebucket = bursar_calloc(nb, sizeof(int));
    s->model_of = bursar_calloc(nb, sizeof(int *));
    double *static_p = NULL;
    if (cfg->params.kind == POLICY_STATIC) {
        static_p = bursar_calloc(nb * nm, sizeof(double));
        if (replay_best_static(ds, cfg->budget_per_request, NULL, NULL,
                               static_p) < 0) {
            free(static_p);
            return serr_set(e, SERR_POLICY,
                            "best static: lp_solve_static failed");
        }
    }
    unsigned char *present = replay_present(ds);
    engine_bucket_def_t *defs = bursar_calloc(nb, sizeof *defs);
    engine_arm_def_t *arms = bursar_calloc(nb * nm, sizeof *arms);
    double *sp = bursar_calloc(nb * nm, sizeof(double));
    engine_config_t ec;
    memset(&ec, 0, sizeof ec);
    ec.params = cfg->params;
    ec.allow = cfg->allow;
    ec.n_models = nm;
    ec.n_buckets = replay_defs(ds, cfg, s, present, static_p, defs, arms, sp);
    ec.buckets = defs;
    /* one window over the whole run: the target is what is left over the
     * requests still to come. The replay's clock runs at exactly one
     * request per second, which is also the pacer's prior. */
    ec.budget_usd = cfg->budget_per_request > 0
                        ? cfg->budget_per_request * (double)total
                        : 0.0;
    ec.window_s = (double)total;
    ec.prior_rate = 1.0;
    ec.t0 = 0.0;
    ec.seed = cfg->seed;
    ec.no_propensity = 1; /* replay logs no propensities */
    s->engine = engine_new(&ec);
    free(present);
    free(static_p);
    free(defs);
    free(arms);
    free(sp);
    return 0;
}

typedef struct replay_req {
    size_t row;
    unsigned pass;
    int bi;    /* dataset bucket */
    size_t eb; /* engine bucket */
    double now;
    unsigned char *exclude; /* per arm: MISSING in this row, failed, tried */
    int *order;
    unsigned steps; /* steps the request took */
    int first_pass; /* its first answer passed */
} replay_req_t;

typedef struct replay_step {
    double q, cost; /* true outcome and cost of the answer */
    int pass;       /* the validator's verdict */
} replay_step_t;

/* Serves one decision: its arm, and after a provider error the next arm
 * of its ranking (the fallbacks), as bursar-agent does; the provider
 * error is reported against the decision (its model's breaker). Returns
 * the arm that answered (its cell is OK), or -1 when the ranking is spent;
 * failed arms are added to rq->exclude. The caller reports the outcome. */
static int
replay_serve(const dataset_t *ds, replay_state_t *st, replay_req_t *rq,
             engine_decision_t *d, size_t n_order, replay_result_t *r)
{
    int bi = rq->bi;
    for (size_t k = 0; k < n_order; k++) {
        int a = rq->order[k];
        if (a < 0 || rq->exclude[a])
            continue;
        int m = st->model_of[bi][a];
        if (ds->status[dataset_idx(ds, rq->row, m)] == DATASET_OK)
            return a;
        r->provider_errors++;
        engine_provider_error(st->engine, d, rq->now);
        rq->exclude[a] = 1;
    }
    return -1;
}

/* The validator's verdict on the answer of model m to the request: the
 * configured validator, else the perfect rule (outcome >= 0.5). */
static int
replay_verdict(const replay_config_t *cfg, const replay_req_t *rq, int m,
               double q)
{
    if (cfg->verdict)
        return cfg->verdict(cfg->verdict_ctx, rq->row, m, rq->pass) ? 1 : 0;
    return q >= 0.5;
}

/* One step of a request: a decision with the tried arms excluded, served
 * by its arm or one of its fallbacks, its outcome reported (the verdict
 * when a validator judges, else the outcome itself). Returns the model
 * that answered, or -1 (nothing allowed, or the ranking spent). */
static int
replay_step(const dataset_t *ds, const replay_config_t *cfg, replay_state_t *st,
            replay_req_t *rq, replay_result_t *r, replay_step_t *out)
{
    engine_decision_t d;
    size_t n_order = 0;
    if (engine_choose(st->engine, rq->eb, rq->exclude, rq->now, &d, rq->order,
                      &n_order, NULL) != 0)
        return -1;
    if (d.choice.flags & POLICY_F_UNAFFORDABLE)
        r->unaffordable++;
    if (d.choice.flags & POLICY_F_EXPLORED)
        r->explored++;
    int a = replay_serve(ds, st, rq, &d, n_order, r);
    if (a < 0)
        return -1;
    int m = st->model_of[rq->bi][a];
    size_t cell = dataset_idx(ds, rq->row, m);
    out->q = ds->outcome[cell];
    out->cost = ds->cost[cell];
    out->pass = replay_verdict(cfg, rq, m, out->q);
    double reward = cfg->validated ? (double)out->pass : out->q;
    engine_outcome(st->engine, &d, a, reward, out->cost,
                   ds->latency ? ds->latency[cell] : NAN, rq->now);
    rq->exclude[a] = 1; /* tried: an escalation excludes it */
    return m;
}

/* One request: up to escalations + 1 steps, each a decision with the
 * models already tried excluded, as bursar-agent escalates after a failed
 * validation. The answer returned is the first that passes, else the last
 * tried; its true outcome is the request's quality, every step's cost is
 * spent. Returns the model whose answer was returned, or -1. */
static int
replay_request(const dataset_t *ds, const replay_config_t *cfg,
               replay_state_t *st, replay_req_t *rq, replay_result_t *r,
               double *q, double *cost)
{
    size_t n = engine_bucket(st->engine, rq->eb)->n_arms;
    for (size_t k = 0; k < n; k++)
        rq->exclude[k] =
            ds->status[dataset_idx(ds, rq->row, st->model_of[rq->bi][k])] ==
            DATASET_MISSING;
    int served = -1;
    size_t nb = r->n_buckets, nm = r->n_models;
    rq->steps = 0;
    rq->first_pass = 0;
    for (unsigned s = 0; s <= cfg->escalations; s++) {
        replay_step_t one;
        int m = replay_step(ds, cfg, st, rq, r, &one);
        if (m < 0)
            break;
        served = m;
        *q = one.q;
        *cost += one.cost;
        rq->steps++;
        r->step_share[((size_t)s * nb + (size_t)rq->bi) * nm + (size_t)m]++;
        if (one.pass) {
            rq->first_pass = s == 0;
            break;
        }
    }
    return served;
}

static void
replay_result_alloc(replay_result_t *r, const replay_config_t *cfg, size_t nb,
                    size_t nm, size_t total, size_t npts)
{
    r->n_models = nm;
    r->n_buckets = nb;
    r->share = bursar_calloc(nm, sizeof(size_t));
    r->bucket_share = bursar_calloc(nb * nm, sizeof(size_t));
    r->curve_x = bursar_calloc(npts + 1, sizeof(double));
    r->curve_quality = bursar_calloc(npts + 1, sizeof(double));
    r->curve_cost = bursar_calloc(npts + 1, sizeof(double));
    r->curve_mu = bursar_calloc(npts + 1, sizeof(double));
    r->curve_quality_window = bursar_calloc(npts + 1, sizeof(double));
    r->curve_cost_window = bursar_calloc(npts + 1, sizeof(double));
    r->curve_target = bursar_calloc(npts + 1, sizeof(double));
    r->steps_max = cfg->escalations + 1;
    r->step_share = bursar_calloc(r->steps_max * nb * nm, sizeof(size_t));
    r->b_requests = bursar_calloc(nb, sizeof(size_t));
    r->b_quality = bursar_calloc(nb, sizeof(double));
    r->b_cost = bursar_calloc(nb, sizeof(double));
    r->b_first_pass = bursar_calloc(nb, sizeof(size_t));
    r->b_escalated = bursar_calloc(nb, sizeof(size_t));
    r->b_steps = bursar_calloc(nb, sizeof(size_t));
    if (cfg->trace) {
        r->trace_model = bursar_malloc(total * sizeof(int));
        r->trace_bucket = bursar_malloc(total * sizeof(int));
        r->trace_outcome = bursar_malloc(total * sizeof(double));
        r->trace_cost = bursar_malloc(total * sizeof(double));
        r->trace_steps = bursar_malloc(total);
    }
}

typedef struct replay_score {
    double qsum, csum, q_prev, c_prev, n_prev;
    size_t next_pt, npts, total;
} replay_score_t;

/* Books request t's result and the learning-curve checkpoint it closes. */
static void
replay_book(replay_result_t *r, const replay_config_t *cfg, replay_score_t *sc,
            const engine_t *eng, size_t t, const replay_req_t *rq, int served,
            double q, double cost)
{
    size_t nm = r->n_models;
    int bi = rq->bi;
    r->b_requests[bi]++;
    r->b_quality[bi] += q;
    r->b_cost[bi] += cost;
    r->b_steps[bi] += rq->steps;
    r->steps += rq->steps;
    if (rq->first_pass) {
        r->b_first_pass[bi]++;
        r->first_pass++;
    }
    if (rq->steps > 1) {
        r->b_escalated[bi]++;
        r->escalated++;
    }
    if (served < 0) {
        r->failed++;
    } else {
        r->share[served]++;
        r->bucket_share[(size_t)bi * nm + (size_t)served]++;
    }
    sc->qsum += q;
    sc->csum += cost;
    if (cfg->trace) {
        r->trace_model[t] = served;
        r->trace_bucket[t] = bi;
        r->trace_outcome[t] = q;
        r->trace_cost[t] = cost;
        r->trace_steps[t] = (unsigned char)rq->steps;
    }
    if (sc->npts && (t + 1) * sc->npts >= (sc->next_pt + 1) * sc->total) {
        size_t k = sc->next_pt++;
        double n = (double)(t + 1);
        r->curve_x[k] = n;
        r->curve_quality[k] = sc->qsum / n;
        r->curve_cost[k] = sc->csum / n;
        r->curve_mu[k] = engine_policy(eng)->mu;
        r->curve_quality_window[k] = (sc->qsum - sc->q_prev) / (n - sc->n_prev);
        r->curve_cost_window[k] = (sc->csum - sc->c_prev) / (n - sc->n_prev);
        sc->q_prev = sc->qsum;
        sc->c_prev = sc->csum;
        sc->n_prev = n;
        pacer_t pc = *engine_pacer(eng);
        pacer_roll(&pc, (double)t);
        double target = pacer_target(&pc, (double)t);
        r->curve_target[k] = isfinite(target) ? target : 0.0;
    }
}

static int
replay_check(const dataset_t *ds, const replay_config_t *cfg, serr_t *e)
{
    if (!ds->n_rows)
        return serr_set(e, SERR_EMPTY, "no requests in the data");
    if (cfg->passes < 1)
        return serr_set(e, SERR_ARG, "passes must be >= 1");
    if (cfg->params.kind == POLICY_FIXED &&
        (cfg->params.fixed_model < 0 ||
         (size_t)cfg->params.fixed_model >= ds->n_models))
        return serr_set(e, SERR_ARG, "fixed: model id %d is not in the data",
                        cfg->params.fixed_model);
    return 0;
}

int
replay_run(const dataset_t *ds, const replay_config_t *cfg,
           replay_result_t **out, serr_t *e)
{
    *out = NULL;
    int rc = replay_check(ds, cfg, e);
    if (rc)
        return rc;
    size_t nb = ds->n_buckets, nm = ds->n_models, nr = ds->n_rows;
    size_t total = nr * cfg->passes;
    replay_state_t st;
    memset(&st, 0, sizeof st);
    if ((rc = replay_setup(ds, cfg, total, &st, e))) {
        replay_state_free(&st, nb);
        return rc;
    }
    replay_result_t *r = bursar_calloc(1, sizeof *r);
    replay_score_t sc = {0};
    sc.total = total;
    sc.npts = cfg->curve_points < total ? cfg->curve_points : total;
    replay_result_alloc(r, cfg, nb, nm, total, sc.npts);

    /* a stream of its own for the orders, so that every policy sees the
     * same orders for the same seed whatever it draws */
    gsl_rng *order_rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!order_rng)
        abort(); /* out of memory, as bursar_malloc */
    gsl_rng_set(order_rng, cfg->seed * 2654435761UL + 97UL);
    int shuffle = cfg->shuffle < 0 ? !ds->ordered : cfg->shuffle;
    size_t *perm = bursar_malloc(nr * sizeof(size_t));
    replay_req_t rq = {0};
    rq.exclude = bursar_calloc(st.max_arms + 1, 1);
    rq.order = bursar_calloc(st.max_arms + 1, sizeof(int));
    size_t t = 0;
    for (unsigned pass = 0; pass < cfg->passes; pass++) {
        for (size_t i = 0; i < nr; i++)
            perm[i] = i;
        if (shuffle)
            gsl_ran_shuffle(order_rng, perm, nr, sizeof(size_t));
        for (size_t i = 0; i < nr; i++, t++) {
            double q = 0.0, cost = 0.0;
            int served = -1;
            rq.row = perm[i];
            rq.bi = ds->row_bucket[rq.row];
            rq.now = (double)t;
            rq.pass = pass;
            rq.steps = 0;
            rq.first_pass = 0;
            if (st.ebucket[rq.bi] >= 0) {
                rq.eb = (size_t)st.ebucket[rq.bi];
                served = replay_request(ds, cfg, &st, &rq, r, &q, &cost);
            }
            replay_book(r, cfg, &sc, st.engine, t, &rq, served, q, cost);
            if (cfg->progress && ((t + 1) % 4096 == 0 || t + 1 == total))
                cfg->progress(cfg->progress_ctx, t + 1, total);
        }
    }
    r->n_curve = sc.next_pt;
    r->requests = total;
    r->quality = sc.qsum / (double)total;
    r->cost_usd = sc.csum;
    r->cost_per_request = sc.csum / (double)total;
    r->spend_ratio = cfg->budget_per_request > 0.0
                         ? r->cost_per_request / cfg->budget_per_request
                         : 0.0;
    r->mu_final = engine_policy(st.engine)->mu;

    free(perm);
    free(rq.exclude);
    free(rq.order);
    gsl_rng_free(order_rng);
    replay_state_free(&st, nb);
    *out = r;
    return 0;
}
