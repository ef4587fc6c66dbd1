/*
 * replay.c - exact replay (see replay.h).
 *
 * Everything that decides lives in policies/: this file builds the
 * requests, looks the outcomes up and keeps score.
 */
#include "replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "lp.h"
#include "pacer.h"
#include "base.h"

void
replay_config_default(replay_config_t *c)
{
    memset(c, 0, sizeof *c);
    policy_params_default(&c->params);
    c->budget_per_request = 0.0;
    c->budget_mode = REPLAY_BUDGET_AWARE;
    c->passes = 1;
    c->seed = 1;
    c->half_life_s = 0.0;
    c->shuffle = -1;
    c->cost_prior_bucket = 0;
    c->cooldown_s = 30.0;
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

typedef struct replay_state {
    policy_bucket_t **bucket; /* per dataset bucket, NULL if no arm */
    int **arm_of;             /* per bucket: model -> arm index or -1 */
    double **cool_until;      /* per bucket, per arm */
} replay_state_t;

static void
replay_state_free(replay_state_t *s, size_t nb)
{
    for (size_t b = 0; b < nb; b++) {
        policy_bucket_destroy(&s->bucket[b]);
        free(s->arm_of[b]);
        free(s->cool_until[b]);
    }
    free(s->bucket);
    free(s->arm_of);
    free(s->cool_until);
}

static int
replay_setup(const dataset_t *ds, const replay_config_t *cfg, replay_state_t *s,
             serr_t *e)
{
    size_t nb = ds->n_buckets, nm = ds->n_models;
    s->bucket = bursar_calloc(nb, sizeof(policy_bucket_t *));
    s->arm_of = bursar_calloc(nb, sizeof(int *));
    s->cool_until = bursar_calloc(nb, sizeof(double *));
    unsigned char *present = bursar_calloc(nb * nm, 1);
    for (size_t r = 0; r < ds->n_rows; r++) {
        size_t b = (size_t)ds->row_bucket[r];
        for (size_t m = 0; m < nm; m++)
            if (ds->status[dataset_idx(ds, r, (int)m)] != DATASET_MISSING)
                present[b * nm + m] = 1;
    }
    double *static_p = NULL;
    if (cfg->params.kind == POLICY_STATIC) {
        static_p = bursar_calloc(nb * nm, sizeof(double));
        if (replay_best_static(ds, cfg->budget_per_request, NULL, NULL,
                               static_p) < 0) {
            free(present);
            free(static_p);
            return serr_set(e, SERR_POLICY,
                            "best static: lp_solve_static failed");
        }
    }
    for (size_t b = 0; b < nb; b++) {
        size_t n = 0;
        s->arm_of[b] = bursar_malloc(nm * sizeof(int));
        for (size_t m = 0; m < nm; m++)
            s->arm_of[b][m] = present[b * nm + m] ? (int)n++ : -1;
        s->cool_until[b] = bursar_calloc(n ? n : 1, sizeof(double));
        for (size_t k = 0; k < n; k++)
            s->cool_until[b][k] = -INFINITY;
        if (!n)
            continue;
        policy_bucket_t *pb = policy_bucket_new(n, cfg->half_life_s, 0.0);
        if (!pb) {
            free(present);
            free(static_p);
            return serr_set(e, SERR_POLICY, "policy_bucket_new(%zu) failed", n);
        }
        for (size_t m = 0; m < nm; m++) {
            int k = s->arm_of[b][m];
            if (k < 0)
                continue;
            double prior = cfg->cost_prior_bucket ? ds->bm_cost[b * nm + m]
                                                  : ds->model_cost[m];
            arm_init(&pb->arms[k], 1.0, 1.0, prior, 1.0);
            pb->model[k] = (int)m;
            if (static_p) {
                /* the bucket owns static_p (policy.h); it may come
                 * unallocated from policy_bucket_new */
                if (!pb->static_p)
                    pb->static_p = bursar_calloc(n, sizeof(double));
                pb->static_p[k] = static_p[b * nm + m];
            }
        }
        policy_bucket_touch(pb);
        s->bucket[b] = pb;
    }
    free(present);
    free(static_p);
    return 0;
}

/* Serves a request: the chosen arm, and after a provider error the next
 * arm of the policy's ranking (its fallbacks). When the ranking is spent,
 * the policy is asked again without the arms that failed, as a caller
 * retrying with an exclusion would. Returns the model that answered, or
 * -1; *q and *cost receive its outcome and cost. */
static int
replay_serve(const dataset_t *ds, const replay_config_t *cfg,
             replay_state_t *st, int bi, size_t row, policy_t *pol,
             policy_request_t *req, gsl_rng *rng, const policy_choice_t *ch,
             int *order, size_t n_order, unsigned char *allowed,
             replay_result_t *r, double *q, double *cost)
{
    policy_bucket_t *pb = st->bucket[bi];
    double now = req->now;
    int k = ch->arm;
    size_t next = 0;
    for (size_t attempt = 0; attempt <= pb->n_arms && k >= 0; attempt++) {
        int m = pb->model[k];
        size_t cell = dataset_idx(ds, row, m);
        if (ds->status[cell] == DATASET_OK) {
            *q = ds->outcome[cell];
            *cost = ds->cost[cell];
            policy_reward(pb, k, *q, now);
            policy_cost(pb, k, *cost, now);
            return m;
        }
        if (ds->status[cell] == DATASET_ERROR) {
            r->provider_errors++;
            st->cool_until[bi][k] = now + cfg->cooldown_s;
        }
        allowed[k] = 0;
        k = -1;
        while (next < n_order && k < 0) {
            int cand = order[next++];
            if (cand >= 0 && (size_t)cand < pb->n_arms && allowed[cand])
                k = cand;
        }
        if (k < 0 && n_order == 0) {
            policy_choice_t again;
            size_t n2 = 0;
            req->allowed = allowed;
            if (policy_choose(pol, pb, req, rng, &again, NULL, &n2) == 0)
                k = again.arm;
        }
    }
    return -1;
}

static int
replay_budget_visible(const replay_config_t *cfg)
{
    if (cfg->budget_per_request <= 0.0)
        return 0;
    if (cfg->budget_mode == REPLAY_BUDGET_ALL)
        return 1;
    return cfg->params.kind == POLICY_TS_BUDGET ||
           cfg->params.kind == POLICY_STATIC;
}

int
replay_run(const dataset_t *ds, const replay_config_t *cfg,
           replay_result_t **out, serr_t *e)
{
    *out = NULL;
    if (!ds->n_rows)
        return serr_set(e, SERR_EMPTY, "no requests in the data");
    if (cfg->passes < 1)
        return serr_set(e, SERR_ARG, "passes must be >= 1");
    if (cfg->params.kind == POLICY_FIXED &&
        (cfg->params.fixed_model < 0 ||
         (size_t)cfg->params.fixed_model >= ds->n_models))
        return serr_set(e, SERR_ARG, "fixed: model id %d is not in the data",
                        cfg->params.fixed_model);

    size_t nb = ds->n_buckets, nm = ds->n_models, nr = ds->n_rows;
    size_t total = nr * cfg->passes;
    replay_state_t st;
    memset(&st, 0, sizeof st);
    int rc = replay_setup(ds, cfg, &st, e);
    if (rc) {
        replay_state_free(&st, nb);
        return rc;
    }

    replay_result_t *r = bursar_calloc(1, sizeof *r);
    r->n_models = nm;
    r->n_buckets = nb;
    r->share = bursar_calloc(nm, sizeof(size_t));
    r->bucket_share = bursar_calloc(nb * nm, sizeof(size_t));
    size_t npts = cfg->curve_points < total ? cfg->curve_points : total;
    r->curve_x = bursar_calloc(npts + 1, sizeof(double));
    r->curve_quality = bursar_calloc(npts + 1, sizeof(double));
    r->curve_cost = bursar_calloc(npts + 1, sizeof(double));
    r->curve_mu = bursar_calloc(npts + 1, sizeof(double));
    r->curve_quality_window = bursar_calloc(npts + 1, sizeof(double));
    r->curve_cost_window = bursar_calloc(npts + 1, sizeof(double));
    r->curve_target = bursar_calloc(npts + 1, sizeof(double));
    if (cfg->trace) {
        r->trace_model = bursar_malloc(total * sizeof(int));
        r->trace_bucket = bursar_malloc(total * sizeof(int));
        r->trace_outcome = bursar_malloc(total * sizeof(double));
        r->trace_cost = bursar_malloc(total * sizeof(double));
    }

    policy_t pol;
    policy_init(&pol, &cfg->params);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, cfg->seed);
    /* a separate stream for the orders, so that every policy sees the
     * same orders for the same seed whatever it draws */
    gsl_rng *order_rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(order_rng, cfg->seed * 2654435761UL + 97UL);

    int budget_on = replay_budget_visible(cfg);
    pacer_t pc;
    pacer_init(&pc, cfg->budget_per_request * (double)total, (double)total, 1.0,
               0.0);
    /* the replay's clock runs at exactly one request per second, so the
     * rate estimate needs no warm-up floor: without this the pacer's
     * default floor (1% of the window, at most 60 s) reads the first
     * requests as a slow rate and pays them many times the target */
    pc.min_elapsed_s = 1.0;

    int shuffle = cfg->shuffle < 0 ? !ds->ordered : cfg->shuffle;
    size_t *perm = bursar_malloc(nr * sizeof(size_t));
    unsigned char *allowed = bursar_malloc(nm ? nm : 1);
    int *order = bursar_malloc((nm ? nm : 1) * sizeof(int));
    double qsum = 0.0, csum = 0.0, q_prev = 0.0, c_prev = 0.0, n_prev = 0.0;
    size_t t = 0, next_pt = 0;

    for (unsigned pass = 0; pass < cfg->passes; pass++) {
        for (size_t i = 0; i < nr; i++)
            perm[i] = i;
        if (shuffle)
            gsl_ran_shuffle(order_rng, perm, nr, sizeof(size_t));
        for (size_t i = 0; i < nr; i++, t++) {
            size_t row = perm[i];
            int bi = ds->row_bucket[row];
            policy_bucket_t *pb = st.bucket[bi];
            double now = (double)t;
            double q = 0.0, cost = 0.0;
            int served = -1;
            pacer_roll(&pc, now);
            double target = budget_on ? pacer_target(&pc, now) : 0.0;
            if (pb) {
                size_t n_allowed = 0, n_free = 0;
                memset(allowed, 0, pb->n_arms);
                for (size_t k = 0; k < pb->n_arms; k++) {
                    int m = pb->model[k];
                    if (ds->status[dataset_idx(ds, row, m)] == DATASET_MISSING)
                        continue;
                    n_free++;
                    if (now < st.cool_until[bi][k])
                        continue;
                    allowed[k] = 1;
                    n_allowed++;
                }
                if (!n_allowed && n_free) {
                    /* everything is cooling down: offer all again */
                    for (size_t k = 0; k < pb->n_arms; k++)
                        allowed[k] =
                            ds->status[dataset_idx(ds, row, pb->model[k])] !=
                            DATASET_MISSING;
                    n_allowed = n_free;
                }
                policy_request_t req;
                policy_request_init(&req, now);
                req.allowed = allowed;
                req.no_propensity = 1; /* replay logs no propensities */
                if (budget_on) {
                    req.target_usd = target;
                    req.remaining_usd = pacer_remaining(&pc);
                }
                policy_choice_t ch;
                size_t n_order = 0;
                if (n_allowed &&
                    policy_choose(&pol, pb, &req, rng, &ch, order, &n_order) ==
                        0 &&
                    ch.arm >= 0) {
                    if (ch.flags & POLICY_F_UNAFFORDABLE)
                        r->unaffordable++;
                    if (ch.flags & POLICY_F_EXPLORED)
                        r->explored++;
                    pacer_reserve(&pc, ch.expected_cost);
                    served = replay_serve(ds, cfg, &st, bi, row, &pol, &req,
                                          rng, &ch, order, n_order, allowed, r,
                                          &q, &cost);
                    pacer_settle(&pc, ch.expected_cost, cost);
                }
            }
            if (served < 0) {
                r->failed++;
            } else {
                r->share[served]++;
                r->bucket_share[(size_t)bi * nm + (size_t)served]++;
            }
            qsum += q;
            csum += cost;
            if (cfg->trace) {
                r->trace_model[t] = served;
                r->trace_bucket[t] = bi;
                r->trace_outcome[t] = q;
                r->trace_cost[t] = cost;
            }
            if (npts && (t + 1) * npts >= (next_pt + 1) * total) {
                double n = (double)(t + 1);
                r->curve_x[next_pt] = n;
                r->curve_quality[next_pt] = qsum / n;
                r->curve_cost[next_pt] = csum / n;
                r->curve_mu[next_pt] = pol.mu;
                r->curve_quality_window[next_pt] =
                    (qsum - q_prev) / (n - n_prev);
                r->curve_cost_window[next_pt] = (csum - c_prev) / (n - n_prev);
                q_prev = qsum;
                c_prev = csum;
                n_prev = n;
                r->curve_target[next_pt] = target;
                next_pt++;
            }
            if (cfg->progress && ((t + 1) % 4096 == 0 || t + 1 == total))
                cfg->progress(cfg->progress_ctx, t + 1, total);
        }
    }
    r->n_curve = next_pt;
    r->requests = total;
    r->quality = qsum / (double)total;
    r->cost_usd = csum;
    r->cost_per_request = csum / (double)total;
    r->spend_ratio = cfg->budget_per_request > 0.0
                         ? r->cost_per_request / cfg->budget_per_request
                         : 0.0;
    r->mu_final = pol.mu;

    free(perm);
    free(allowed);
    free(order);
    gsl_rng_free(rng);
    gsl_rng_free(order_rng);
    replay_state_free(&st, nb);
    *out = r;
    return 0;
}
