/*
 * policy.c - routing decisions (see policy.h for the method and sources).
 */
#include "policies/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sort.h>

#include "policies/lp.h"

/* ------------------------------------------------------------------ */
/* Memory                                                               */

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort(); /* out of memory: nothing sensible to do in a policy */
    return p;
}

/* ------------------------------------------------------------------ */
/* Parameters and names                                                 */

static const char *const kind_names[] = {
    "ts",    "ts-budget", "uniform",   "eps-greedy", "ucb1",
    "fixed", "cheapest",  "strongest", "static",
};

void
policy_params_default(policy_params_t *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->kind = POLICY_TS_BUDGET;
    pp->explore_floor = 0.0;
    pp->epsilon = 0.1;
    pp->dual_step = 0.01;
    pp->mu0 = 0.0;
    pp->fixed_model = -1;
}

int
policy_kind_parse(const char *name, policy_kind_t *kind, const char **model_out)
{
    if (model_out)
        *model_out = NULL;
    if (!name)
        return BURSAR_EINVAL;
    if (strncmp(name, "fixed:", 6) == 0 && name[6]) {
        *kind = POLICY_FIXED;
        if (model_out)
            *model_out = name + 6;
        return 0;
    }
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++) {
        if (i != POLICY_FIXED && strcmp(name, kind_names[i]) == 0) {
            *kind = (policy_kind_t)i;
            return 0;
        }
    }
    if (strcmp(name, "best-static") == 0) {
        *kind = POLICY_STATIC;
        return 0;
    }
    return BURSAR_EINVAL;
}

const char *
policy_kind_name(policy_kind_t kind)
{
    if ((size_t)kind < sizeof kind_names / sizeof *kind_names)
        return kind_names[kind];
    return "unknown";
}

void
policy_init(policy_t *p, const policy_params_t *params)
{
    if (params)
        p->params = *params;
    else
        policy_params_default(&p->params);
    p->mu = p->params.mu0 > 0.0 ? p->params.mu0 : 0.0;
    p->decisions = 0;
}

void
policy_request_init(policy_request_t *r, double now)
{
    memset(r, 0, sizeof *r);
    r->now = now;
    r->target_usd = INFINITY;
    r->bucket_target_usd = 0.0;
    r->remaining_usd = INFINITY;
}

/* ------------------------------------------------------------------ */
/* Buckets                                                              */

policy_bucket_t *
policy_bucket_new(size_t n_arms, double half_life_s, double now)
{
    if (n_arms < 1)
        return NULL;
    policy_bucket_t *b = xcalloc(1, sizeof *b);
    b->n_arms = n_arms;
    b->arms = xcalloc(n_arms, sizeof *b->arms);
    b->model = xcalloc(n_arms, sizeof *b->model);
    b->snap_alpha = xcalloc(n_arms, sizeof(double));
    b->snap_beta = xcalloc(n_arms, sizeof(double));
    b->snap_cost = xcalloc(n_arms, sizeof(double));
    b->snap_lp_target = NAN;
    for (size_t k = 0; k < n_arms; k++) {
        arm_init(&b->arms[k], 1.0, 1.0, 0.0, 0.0);
        b->model[k] = (int)k;
    }
    b->half_life_s = half_life_s;
    b->t_last = now;
    return b;
}

void
policy_bucket_destroy(policy_bucket_t **bp)
{
    if (!bp || !*bp)
        return;
    policy_bucket_t *b = *bp;
    free(b->arms);
    free(b->model);
    free(b->static_p);
    free(b->snap_alpha);
    free(b->snap_beta);
    free(b->snap_cost);
    free(b->prop);
    free(b->prop_mask);
    free(b->prop_version);
    free(b->prop_lambda);
    free(b->tab);
    free(b->tab_lo);
    free(b->tab_hi);
    free(b->tab_a);
    free(b->tab_b);
    free(b);
    *bp = NULL;
}

int
policy_bucket_find(const policy_bucket_t *b, int model)
{
    for (size_t k = 0; k < b->n_arms; k++)
        if (b->model[k] == model)
            return (int)k;
    return -1;
}

void
policy_bucket_advance(policy_bucket_t *b, double now)
{
    if (!(now > b->t_last))
        return;
    if (b->half_life_s > 0.0) {
        double f = exp2(-(now - b->t_last) / b->half_life_s);
        for (size_t k = 0; k < b->n_arms; k++)
            arm_decay(&b->arms[k], f);
        b->snap_decay *= f;
    }
    b->t_last = now;
}

void
policy_bucket_touch(policy_bucket_t *b)
{
    b->snap_valid = 0;
}

static double
bucket_evidence(const policy_bucket_t *b)
{
    double e = 0.0;
    for (size_t k = 0; k < b->n_arms; k++)
        e += arm_evidence(&b->arms[k]);
    return e;
}

/* ------------------------------------------------------------------ */
/* Snapshot                                                             */

static int
finite_pos(double x)
{
    return x > 0.0 && isfinite(x);
}

static int
is_ts(policy_kind_t k)
{
    return k == POLICY_TS || k == POLICY_TS_BUDGET;
}

/* The target of the per-request LP, or 0 when the bucket has no cap. */
static double
lp_target(const policy_request_t *req)
{
    double t = req->bucket_target_usd;
    if (!(t > 0.0))
        return 0.0;
    if (req->target_usd >= 0.0 && req->target_usd < t)
        t = req->target_usd;
    return t;
}

/* x rounded to the nearest power of POLICY_PRICE_GRID (x > 0). */
static double
grid_round(double x)
{
    double step = log(POLICY_PRICE_GRID);
    return exp(round(log(x) / step) * step);
}

/* The cost weight lambda = mu / target of the Thompson score, both on the
 * price grid; 0 without a finite budget (or for plain ts). */
static double
score_lambda(const policy_t *p, const policy_request_t *req)
{
    if (p->params.kind != POLICY_TS_BUDGET)
        return 0.0;
    double base = 0.0;
    if (finite_pos(req->target_usd) && p->mu > 0.0)
        base = grid_round(p->mu) / grid_round(req->target_usd);
    if (!finite_pos(req->extra_lambda))
        return base;
    /* the total on the grid too, so that the cache is keyed by it */
    return grid_round(base + req->extra_lambda);
}

static int
snap_stale(const policy_bucket_t *b, const policy_request_t *req)
{
    if (!b->snap_valid)
        return 1;
    /* The LP's propensity costs a Monte Carlo run (up to tens of ms while
     * the posteriors are wide), so a capped bucket refreshes less often. */
    if (b->snap_lp_target > 0.0) {
        if (b->snap_added >= fmax(POLICY_SNAP_LP_MIN,
                                  POLICY_SNAP_LP_EVIDENCE * b->snap_evidence))
            return 1;
    } else if (b->snap_added >=
               fmax(1.0, POLICY_SNAP_EVIDENCE * b->snap_evidence)) {
        return 1;
    }
    if (b->snap_decay < 1.0 - POLICY_SNAP_EVIDENCE)
        return 1;
    for (size_t k = 0; k < b->n_arms; k++) {
        double c0 = b->snap_cost[k], c1 = arm_cost_mean(&b->arms[k]);
        if (fabs(c1 - c0) > POLICY_SNAP_COST * c0)
            return 1; /* a price moved */
    }
    double t0 = b->snap_lp_target, t1 = lp_target(req);
    if ((t0 > 0.0) != (t1 > 0.0))
        return 1;
    if (t1 > 0.0 && fabs(t1 - t0) > POLICY_SNAP_TARGET * t0)
        return 1;
    return 0;
}

static void
snap_take(policy_bucket_t *b, const policy_request_t *req)
{
    /* An idle bucket refreshes to the same state: keep its version, so
     * that its propensities stay cached. */
    int same = b->snap_valid && b->snap_lp_target == lp_target(req);
    for (size_t k = 0; k < b->n_arms; k++) {
        double c = arm_cost_mean(&b->arms[k]);
        same = same && b->snap_alpha[k] == b->arms[k].alpha &&
               b->snap_beta[k] == b->arms[k].beta && b->snap_cost[k] == c;
        b->snap_alpha[k] = b->arms[k].alpha;
        b->snap_beta[k] = b->arms[k].beta;
        b->snap_cost[k] = c;
    }
    b->snap_lp_target = lp_target(req);
    b->snap_evidence = bucket_evidence(b);
    b->snap_added = 0.0;
    b->snap_decay = 1.0;
    b->snap_valid = 1;
    if (!same)
        b->snap_version++;
}

static void
snap_sync(policy_bucket_t *b, const policy_request_t *req)
{
    if (snap_stale(b, req))
        snap_take(b, req);
}

/* ------------------------------------------------------------------ */
/* Masks                                                                */

/* Cost estimate the decision uses: the snapshot's for Thompson, live
 * otherwise. */
static double
arm_cost_used(const policy_t *p, const policy_bucket_t *b, size_t k)
{
    if (is_ts(p->params.kind) && b->snap_valid)
        return b->snap_cost[k];
    return arm_cost_mean(&b->arms[k]);
}

/* Fills mask with the allowed and affordable arms. Returns their count;
 * *n_allowed gets the count of allowed ones (affordable or not). */
static size_t
build_mask(const policy_t *p, const policy_bucket_t *b,
           const policy_request_t *req, unsigned char *mask, size_t *n_allowed)
{
    size_t m = 0, na = 0;
    for (size_t k = 0; k < b->n_arms; k++) {
        mask[k] = 0;
        if (req->allowed && !req->allowed[k])
            continue;
        na++;
        if (!(arm_cost_used(p, b, k) <= req->remaining_usd))
            continue;
        mask[k] = 1;
        m++;
    }
    *n_allowed = na;
    return m;
}

/* ------------------------------------------------------------------ */
/* Propensity of argmax(theta_k - lambda c_k) by integration            */

typedef struct span {
    double lo, hi; /* where the arm's score can lie */
    double shift;  /* lambda * c: score = theta - shift */
    double sd;
} span_t;

/* Beta CDF. GSL's continued fraction returns NaN once a + b reaches a
 * few million, where the Beta is normal to within its skewness
 * 2 (b - a) sqrt(a + b + 1) / ((a + b + 2) sqrt(a b)), below 0.01 past
 * a + b = 1e5 unless the mean is within 1e-3 of 0 or 1: the CDF error of
 * the normal there is under skew / 6 * phi(0), about 1e-3. So past
 * POLICY_BETA_NORMAL (or if GSL fails) the normal with the Beta's mean
 * and sd serves. */
static double
beta_cdf(double x, double a, double b)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    if (a + b < POLICY_BETA_NORMAL) {
        double v = gsl_cdf_beta_P(x, a, b);
        if (isfinite(v))
            return v;
    }
    double s = a + b, mean = a / s, sd = sqrt(a * b / (s * s * (s + 1.0)));
    return gsl_cdf_ugaussian_P((x - mean) / sd);
}

/* Where an arm's theta can lie: mean +- 9 sd, within [0, 1]. */
static void
beta_span(double a, double b, double *lo, double *hi, double *sd)
{
    double s = a + b, mean = a / s;
    *sd = sqrt(a * b / (s * s * (s + 1.0)));
    *lo = fmax(0.0, mean - 9.0 * *sd);
    *hi = fmin(1.0, mean + 9.0 * *sd);
}

/* The CDFs the integral reads: exact, or from a bucket's tables. */
typedef struct cdf_src {
    const double *alpha, *beta;
    const double *tab, *tab_lo, *tab_hi; /* NULL: exact */
} cdf_src_t;

static double
cdf_eval(const cdf_src_t *s, size_t k, double x)
{
    if (!s->tab)
        return beta_cdf(x, s->alpha[k], s->beta[k]);
    const double *t = s->tab + k * (POLICY_PROP_TAB + 1);
    double lo = s->tab_lo[k], hi = s->tab_hi[k];
    if (x <= lo)
        return t[0];
    if (x >= hi)
        return t[POLICY_PROP_TAB];
    double pos = (x - lo) / (hi - lo) * POLICY_PROP_TAB;
    size_t i = (size_t)pos;
    if (i >= POLICY_PROP_TAB)
        i = POLICY_PROP_TAB - 1;
    double f = pos - (double)i;
    return t[i] + f * (t[i + 1] - t[i]);
}

/* Writes P(k wins) for the arms in mask into prob (0 elsewhere). The
 * score of arm k is theta_k - lambda cost_k. cells: 0 = the adaptive
 * default, else a fixed number (for tests). */
static void
ts_integrate(const cdf_src_t *src, const double *cost, double lambda, size_t n,
             const unsigned char *mask, size_t cells, double *prob)
{
    double lo[n], hi[n], shift[n], sd[n];
    double ulo = -INFINITY, uhi = -INFINITY;
    size_t m = 0;

    for (size_t k = 0; k < n; k++) {
        prob[k] = 0.0;
        if (!mask[k])
            continue;
        beta_span(src->alpha[k], src->beta[k], &lo[k], &hi[k], &sd[k]);
        shift[k] = lambda * cost[k];
        lo[k] -= shift[k];
        hi[k] -= shift[k];
        if (lo[k] > ulo)
            ulo = lo[k];
        if (hi[k] > uhi)
            uhi = hi[k];
        m++;
    }
    if (m == 0)
        return;
    /* Only arms whose score can exceed ulo can win. */
    size_t idx[n], r = 0;
    for (size_t k = 0; k < n; k++) {
        if (mask[k] && hi[k] > ulo)
            idx[r++] = k;
    }
    if (r == 1 || !(uhi > ulo)) {
        /* One contender (or degenerate spans): it wins. */
        size_t best = idx[0];
        for (size_t i = 1; i < r; i++)
            if (hi[idx[i]] > hi[best])
                best = idx[i];
        prob[best] = 1.0;
        return;
    }
    /* The cells: a uniform grid when asked (tests), else each contender's
     * own span cut in POLICY_PROP_CELLS_PER_SPAN pieces, all merged: every
     * arm is then resolved to a fraction of its own sd where its mass is,
     * however wide or sharp the others are. O(r^2 x cells) CDF reads. */
    size_t np = 0,
           cap = cells ? cells + 1 : r * (POLICY_PROP_CELLS_PER_SPAN + 1) + 2;
    double *pt = xcalloc(cap, sizeof(double));
    if (cells) {
        for (size_t t = 0; t <= cells; t++)
            pt[np++] = ulo + (uhi - ulo) * (double)t / (double)cells;
    } else {
        pt[np++] = ulo;
        pt[np++] = uhi;
        for (size_t i = 0; i < r; i++) {
            size_t k = idx[i];
            for (size_t t = 0; t <= POLICY_PROP_CELLS_PER_SPAN; t++) {
                double u = lo[k] + (hi[k] - lo[k]) * (double)t /
                                       POLICY_PROP_CELLS_PER_SPAN;
                if (u > ulo && u < uhi)
                    pt[np++] = u;
            }
        }
        gsl_sort(pt, 1, np);
    }
    /* Walk the cells once, keeping each contender's CDF at the cell's
     * left end: O(r) memory. */
    double fl[r], fr[r], acc[r], avg[r], pre[r + 1];
    for (size_t i = 0; i < r; i++) {
        size_t k = idx[i];
        fl[i] = ulo <= lo[k] ? 0.0 : cdf_eval(src, k, ulo + shift[k]);
        acc[i] = 0.0;
    }
    for (size_t t = 1; t < np; t++) {
        double u = pt[t];
        if (!(u > pt[t - 1]))
            continue;
        for (size_t i = 0; i < r; i++) {
            size_t k = idx[i];
            fr[i] = u <= lo[k]   ? 0.0
                    : u >= hi[k] ? 1.0
                                 : cdf_eval(src, k, u + shift[k]);
            avg[i] = 0.5 * (fl[i] + fr[i]);
        }
        pre[0] = 1.0;
        for (size_t i = 0; i < r; i++)
            pre[i + 1] = pre[i] * avg[i];
        double suf = 1.0;
        for (size_t i = r; i-- > 0;) {
            double mass = fr[i] - fl[i];
            if (mass > 0.0)
                acc[i] += mass * pre[i] * suf;
            suf *= avg[i];
        }
        memcpy(fl, fr, sizeof fl);
    }
    free(pt);
    double total = 0.0;
    for (size_t i = 0; i < r; i++)
        total += acc[i];
    for (size_t i = 0; i < r; i++)
        prob[idx[i]] = total > 0.0 ? acc[i] / total : 1.0 / (double)r;
}

/* Brings the bucket's CDF tables up to its snapshot: only arms whose
 * posterior changed are tabulated again. */
static void
tab_sync(policy_bucket_t *b)
{
    size_t n = b->n_arms;
    if (!b->tab) {
        b->tab = xcalloc(n * (POLICY_PROP_TAB + 1), sizeof(double));
        b->tab_lo = xcalloc(n, sizeof(double));
        b->tab_hi = xcalloc(n, sizeof(double));
        b->tab_a = xcalloc(n, sizeof(double));
        b->tab_b = xcalloc(n, sizeof(double));
    }
    for (size_t k = 0; k < n; k++) {
        double a = b->snap_alpha[k], bb = b->snap_beta[k], sd;
        if (b->tab_a[k] == a && b->tab_b[k] == bb)
            continue;
        double *t = b->tab + k * (POLICY_PROP_TAB + 1);
        beta_span(a, bb, &b->tab_lo[k], &b->tab_hi[k], &sd);
        double lo = b->tab_lo[k], w = b->tab_hi[k] - lo;
        for (size_t i = 0; i <= POLICY_PROP_TAB; i++)
            t[i] = beta_cdf(lo + w * (double)i / POLICY_PROP_TAB, a, bb);
        b->tab_a[k] = a;
        b->tab_b[k] = bb;
    }
}

/* ------------------------------------------------------------------ */
/* Per-request LP (a bucket with its own cap)                           */

/* Draws theta from the snapshot and solves the LP; pw gets the mixing
 * weights, v the drawn values. Returns the lp_solve_bucket code. */
static int
lp_draw(const policy_bucket_t *b, const unsigned char *m, gsl_rng *rng,
        double *v, double *pw)
{
    for (size_t k = 0; k < b->n_arms; k++)
        v[k] =
            m[k] ? gsl_ran_beta(rng, b->snap_alpha[k], b->snap_beta[k]) : 0.0;
    return lp_solve_bucket(b->n_arms, v, b->snap_cost, m, b->snap_lp_target,
                           pw);
}

static void
lp_propensity(const policy_bucket_t *b, const unsigned char *m, double *prob)
{
    size_t n = b->n_arms;
    double v[n], pw[n], sum[n], sq[n];
    /* A private generator with a fixed seed: the estimate is a function of
     * the state only, and the caller's stream is not disturbed. */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        abort();
    gsl_rng_set(r, 20180101);
    for (size_t k = 0; k < n; k++)
        sum[k] = sq[k] = 0.0;
    /* Batches until every arm's standard error is under POLICY_PROP_MC_SE
     * (the LP is often all but deterministic: then one batch does), at
     * most POLICY_PROP_MC draws. */
    int done = 0;
    while (done < POLICY_PROP_MC) {
        for (int i = 0; i < POLICY_PROP_MC_BATCH; i++) {
            lp_draw(b, m, r, v, pw);
            for (size_t k = 0; k < n; k++) {
                sum[k] += pw[k];
                sq[k] += pw[k] * pw[k];
            }
        }
        done += POLICY_PROP_MC_BATCH;
        double worst = 0.0;
        for (size_t k = 0; k < n; k++) {
            double mean = sum[k] / done;
            double var = fmax(0.0, sq[k] / done - mean * mean);
            worst = fmax(worst, var / done);
        }
        if (sqrt(worst) <= POLICY_PROP_MC_SE)
            break;
    }
    for (size_t k = 0; k < n; k++)
        prob[k] = sum[k] / done;
    gsl_rng_free(r);
}

/* ------------------------------------------------------------------ */
/* The deterministic baselines' choice                                  */

static double
ucb_score(const policy_bucket_t *b, size_t k, double total)
{
    const arm_t *a = &b->arms[k];
    double nk = arm_evidence(a);
    if (nk < 1e-9)
        return INFINITY;
    double mean = (a->alpha - a->alpha0) / nk;
    return mean + sqrt(2.0 * log(fmax(total, 1.0)) / nk);
}

/* Score of arm k under a deterministic policy (highest wins). */
static double
det_score(const policy_t *p, const policy_bucket_t *b, size_t k, double total)
{
    switch (p->params.kind) {
    case POLICY_UCB1:
        return ucb_score(b, k, total);
    case POLICY_CHEAPEST:
        return -arm_cost_mean(&b->arms[k]);
    case POLICY_STRONGEST:
        return b->arms[k].cost_prior;
    case POLICY_FIXED:
        if (b->model[k] == p->params.fixed_model)
            return INFINITY;
        return arm_mean(&b->arms[k]);
    default: /* eps-greedy's greedy part, and fallbacks' order */
        return arm_mean(&b->arms[k]);
    }
}

static size_t
argmax_masked(const double *s, const unsigned char *m, size_t n)
{
    size_t best = n;
    for (size_t k = 0; k < n; k++)
        if (m[k] && (best == n || s[k] > s[best]))
            best = k;
    return best;
}

/* The policy's own distribution over the masked arms (no floor); lambda
 * is the cost weight of the Thompson score. */
static void
own_probs(policy_t *p, policy_bucket_t *b, const unsigned char *m, size_t cnt,
          double lambda, double *prob)
{
    size_t n = b->n_arms;
    double s[n], total = 0.0;

    for (size_t k = 0; k < n; k++)
        prob[k] = 0.0;
    switch (p->params.kind) {
    case POLICY_TS:
    case POLICY_TS_BUDGET:
        if (b->snap_lp_target > 0.0) {
            lp_propensity(b, m, prob);
        } else {
            tab_sync(b);
            cdf_src_t src = {b->snap_alpha, b->snap_beta, b->tab, b->tab_lo,
                             b->tab_hi};
            ts_integrate(&src, b->snap_cost, lambda, n, m, 0, prob);
        }
        return;
    case POLICY_UNIFORM:
        for (size_t k = 0; k < n; k++)
            prob[k] = m[k] ? 1.0 / (double)cnt : 0.0;
        return;
    case POLICY_STATIC: {
        double sum = 0.0;
        for (size_t k = 0; k < n; k++)
            sum += (m[k] && b->static_p) ? b->static_p[k] : 0.0;
        for (size_t k = 0; k < n; k++) {
            if (!m[k])
                continue;
            prob[k] = sum > 0.0 ? b->static_p[k] / sum : 1.0 / (double)cnt;
        }
        return;
    }
    default:
        break;
    }
    for (size_t k = 0; k < n; k++)
        total += arm_evidence(&b->arms[k]);
    for (size_t k = 0; k < n; k++)
        s[k] = det_score(p, b, k, total);
    size_t best = argmax_masked(s, m, n);
    if (p->params.kind == POLICY_EPS_GREEDY) {
        double eps = fmin(1.0, fmax(0.0, p->params.epsilon));
        for (size_t k = 0; k < n; k++)
            prob[k] = m[k] ? eps / (double)cnt : 0.0;
        prob[best] += 1.0 - eps;
    } else {
        prob[best] = 1.0;
    }
}

static double
floor_share(const policy_t *p, size_t cnt)
{
    double f = p->params.explore_floor;
    if (!(f > 0.0))
        return 0.0;
    return fmin(1.0, f * (double)cnt);
}

/* Final propensities for mask m (with the floor). The Thompson ones
 * depend on the snapshot, lambda and the mask only, and are cached. */
static void
mask_probs(policy_t *p, policy_bucket_t *b, const unsigned char *m, size_t cnt,
           double lambda, double *prob)
{
    size_t n = b->n_arms;
    int cacheable = is_ts(p->params.kind);

    if (b->snap_lp_target > 0.0)
        lambda = 0.0; /* the LP does not use it */
    if (cacheable && b->prop) {
        for (size_t i = 0; i < POLICY_PROP_CACHE; i++) {
            if (b->prop_version[i] == b->snap_version &&
                b->prop_lambda[i] == lambda &&
                memcmp(b->prop_mask + i * n, m, n) == 0) {
                memcpy(prob, b->prop + i * n, n * sizeof *prob);
                return;
            }
        }
    }
    own_probs(p, b, m, cnt, lambda, prob);
    double e = floor_share(p, cnt);
    for (size_t k = 0; k < n; k++)
        if (m[k])
            prob[k] = e / (double)cnt + (1.0 - e) * prob[k];
    if (!cacheable)
        return;
    if (!b->prop) {
        b->prop = xcalloc(POLICY_PROP_CACHE * n, sizeof(double));
        b->prop_mask = xcalloc(POLICY_PROP_CACHE * n, 1);
        b->prop_version = xcalloc(POLICY_PROP_CACHE, sizeof(uint64_t));
        b->prop_lambda = xcalloc(POLICY_PROP_CACHE, sizeof(double));
        for (size_t i = 0; i < POLICY_PROP_CACHE; i++)
            b->prop_version[i] = UINT64_MAX; /* empty */
    }
    size_t i = b->prop_next;
    b->prop_next = (i + 1) % POLICY_PROP_CACHE;
    memcpy(b->prop + i * n, prob, n * sizeof *prob);
    memcpy(b->prop_mask + i * n, m, n);
    b->prop_version[i] = b->snap_version;
    b->prop_lambda[i] = lambda;
}

/* ------------------------------------------------------------------ */
/* Choosing                                                             */

static size_t
draw_index(const double *w, const unsigned char *m, size_t n, gsl_rng *rng)
{
    double u = gsl_rng_uniform(rng), acc = 0.0;
    size_t last = n;
    for (size_t k = 0; k < n; k++) {
        if (!m[k])
            continue;
        last = k;
        acc += w[k];
        if (u < acc)
            return k;
    }
    return last;
}

static size_t
draw_uniform(const unsigned char *m, size_t n, size_t cnt, gsl_rng *rng)
{
    size_t j = (size_t)gsl_rng_uniform_int(rng, cnt);
    for (size_t k = 0; k < n; k++)
        if (m[k] && j-- == 0)
            return k;
    return n;
}

/* Ranks the masked arms by score, best first, with `first` in front. */
static size_t
rank_arms(const double *score, const unsigned char *m, size_t n, size_t first,
          int *order)
{
    size_t c = 0;
    order[c++] = (int)first;
    for (size_t k = 0; k < n; k++) {
        if (!m[k] || k == first)
            continue;
        size_t i = c++;
        while (i > 1 && score[order[i - 1]] < score[k]) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = (int)k;
    }
    return c;
}

/* The dual step. Not taken when there is no finite positive target (no
 * budget, or the window's budget is used up: affordability already forces
 * the cheapest arm, and a price grown then would starve the next window)
 * nor when nothing was affordable. */
double
policy_dual_step(double mu, double cost, double target, double eta)
{
    if (!finite_pos(target))
        return mu;
    double ratio = cost / target;
    if (ratio > POLICY_DUAL_CLIP)
        ratio = POLICY_DUAL_CLIP;
    mu += eta * (ratio - 1.0);
    if (mu < 0.0)
        mu = 0.0;
    if (mu > POLICY_MU_MAX)
        mu = POLICY_MU_MAX;
    return mu;
}

static void
dual_update(policy_t *p, double cost, double target, unsigned flags)
{
    if (p->params.kind != POLICY_TS_BUDGET || !finite_pos(target) ||
        (flags & POLICY_F_UNAFFORDABLE))
        return;
    p->mu = policy_dual_step(p->mu, cost, target, p->params.dual_step);
}

int
policy_choose(policy_t *p, policy_bucket_t *b, const policy_request_t *req,
              gsl_rng *rng, policy_choice_t *out, int *order, size_t *n_order)
{
    size_t n = b->n_arms, na, cnt, arm = n;
    unsigned char m[n];
    double score[n], prob[n];
    double lambda = score_lambda(p, req);

    policy_bucket_advance(b, req->now);
    if (is_ts(p->params.kind))
        snap_sync(b, req);
    cnt = build_mask(p, b, req, m, &na);
    out->flags = 0;
    out->propensity = NAN;
    if (n_order)
        *n_order = 0;
    if (na == 0) {
        out->arm = -1;
        out->model = -1;
        out->expected_cost = 0.0;
        out->flags = POLICY_F_NO_ARM;
        return BURSAR_EPOLICY;
    }
    if (cnt == 0) {
        /* Nothing affordable: the cheapest allowed arm, said so. */
        for (size_t k = 0; k < n; k++) {
            int ok = !req->allowed || req->allowed[k];
            m[k] = (unsigned char)ok;
            score[k] = -arm_cost_used(p, b, k);
        }
        arm = argmax_masked(score, m, n);
        out->flags |= POLICY_F_UNAFFORDABLE;
        out->propensity = 1.0;
        if (order)
            *n_order = rank_arms(score, m, n, arm, order);
        goto chosen;
    }

    /* The policy's own choice, and scores to rank fallbacks by. */
    switch (p->params.kind) {
    case POLICY_TS:
    case POLICY_TS_BUDGET:
        if (b->snap_lp_target > 0.0) {
            lp_draw(b, m, rng, score, prob);
            arm = draw_index(prob, m, n, rng);
        } else {
            for (size_t k = 0; k < n; k++)
                score[k] = m[k] ? gsl_ran_beta(rng, b->snap_alpha[k],
                                               b->snap_beta[k]) -
                                      lambda * b->snap_cost[k]
                                : -INFINITY;
            arm = argmax_masked(score, m, n);
        }
        break;
    case POLICY_UNIFORM:
    case POLICY_STATIC:
        own_probs(p, b, m, cnt, 0.0, prob);
        arm = draw_index(prob, m, n, rng);
        for (size_t k = 0; k < n; k++)
            score[k] = arm_mean(&b->arms[k]);
        break;
    default: {
        double total = 0.0;
        for (size_t k = 0; k < n; k++)
            total += arm_evidence(&b->arms[k]);
        for (size_t k = 0; k < n; k++)
            score[k] = det_score(p, b, k, total);
        arm = argmax_masked(score, m, n);
        if (p->params.kind == POLICY_EPS_GREEDY &&
            gsl_rng_uniform(rng) < p->params.epsilon)
            arm = draw_uniform(m, n, cnt, rng);
        break;
    }
    }
    /* The exploration floor: uniform with probability cnt * floor. */
    double e = floor_share(p, cnt);
    if (e > 0.0 && gsl_rng_uniform(rng) < e) {
        arm = draw_uniform(m, n, cnt, rng);
        out->flags |= POLICY_F_EXPLORED;
    }
    if (!req->no_propensity) {
        mask_probs(p, b, m, cnt, lambda, prob);
        out->propensity = prob[arm];
    }
    if (order)
        *n_order = rank_arms(score, m, n, arm, order);

chosen:
    out->arm = (int)arm;
    out->model = b->model[arm];
    out->expected_cost = arm_cost_mean(&b->arms[arm]);
    b->arms[arm].pulls++;
    p->decisions++;
    dual_update(p, out->expected_cost, req->target_usd, out->flags);
    return 0;
}

size_t
policy_affordable(policy_t *p, policy_bucket_t *b, const policy_request_t *req)
{
    size_t na;
    unsigned char m[b->n_arms];
    policy_bucket_advance(b, req->now);
    if (is_ts(p->params.kind))
        snap_sync(b, req);
    return build_mask(p, b, req, m, &na);
}

void
policy_propensities(policy_t *p, policy_bucket_t *b,
                    const policy_request_t *req, double *probs)
{
    size_t n = b->n_arms, na, cnt;
    unsigned char m[n];

    policy_bucket_advance(b, req->now);
    if (is_ts(p->params.kind))
        snap_sync(b, req);
    cnt = build_mask(p, b, req, m, &na);
    for (size_t k = 0; k < n; k++)
        probs[k] = 0.0;
    if (na == 0)
        return;
    if (cnt == 0) {
        double best = INFINITY;
        size_t arm = n;
        for (size_t k = 0; k < n; k++) {
            double c = arm_cost_used(p, b, k);
            if ((!req->allowed || req->allowed[k]) && c < best) {
                best = c;
                arm = k;
            }
        }
        probs[arm] = 1.0;
        return;
    }
    mask_probs(p, b, m, cnt, score_lambda(p, req), probs);
}

/* ------------------------------------------------------------------ */
/* Feedback                                                             */

static int
arm_ok(const policy_bucket_t *b, int arm)
{
    return arm >= 0 && (size_t)arm < b->n_arms;
}

int
policy_reward(policy_bucket_t *b, int arm, double reward, double now)
{
    if (!arm_ok(b, arm))
        return BURSAR_EINVAL;
    policy_bucket_advance(b, now);
    arm_reward(&b->arms[arm], reward);
    b->snap_added += 1.0;
    return 0;
}

int
policy_amend(policy_bucket_t *b, int arm, double old_r, double new_r,
             double t_outcome, double now)
{
    if (!arm_ok(b, arm))
        return BURSAR_EINVAL;
    policy_bucket_advance(b, now);
    double w = 1.0;
    if (b->half_life_s > 0.0 && b->t_last > t_outcome)
        w = exp2(-(b->t_last - t_outcome) / b->half_life_s);
    arm_amend(&b->arms[arm], old_r, new_r, w);
    b->snap_added += w * fabs(new_r - old_r);
    return 0;
}

int
policy_cost(policy_bucket_t *b, int arm, double cost_usd, double now)
{
    if (!arm_ok(b, arm))
        return BURSAR_EINVAL;
    policy_bucket_advance(b, now);
    arm_cost(&b->arms[arm], cost_usd);
    return 0;
}

/* Exposed for tests of the quadrature (declared in the test, not in the
 * header: not part of the interface). cells = 0: the adaptive grid over
 * tabulated CDFs, as the policy computes it; cells > 0: that many cells
 * over exact CDFs. */
void policy_ts_integrate_(const double *alpha, const double *beta,
                          const double *cost, double lambda, size_t n,
                          const unsigned char *mask, size_t cells,
                          double *prob);
void
policy_ts_integrate_(const double *alpha, const double *beta,
                     const double *cost, double lambda, size_t n,
                     const unsigned char *mask, size_t cells, double *prob)
{
    if (cells > 0) {
        cdf_src_t src = {alpha, beta, NULL, NULL, NULL};
        ts_integrate(&src, cost, lambda, n, mask, cells, prob);
        return;
    }
    policy_bucket_t *b = policy_bucket_new(n, 0.0, 0.0);
    memcpy(b->snap_alpha, alpha, n * sizeof *alpha);
    memcpy(b->snap_beta, beta, n * sizeof *beta);
    tab_sync(b);
    cdf_src_t src = {alpha, beta, b->tab, b->tab_lo, b->tab_hi};
    ts_integrate(&src, cost, lambda, n, mask, 0, prob);
    policy_bucket_destroy(&b);
}
