/*
 * ope.c - off-policy estimators with bootstrap intervals (ope.h).
 *
 * Every static estimator reduces to sums per (bucket, action) cell:
 * rows N, outcomes R, costs C, weights W, weighted outcomes WR and costs
 * WC. A bootstrap resample only changes how often each row counts, so one
 * pass over the drawn indices refills those sums and the five estimates
 * follow in O(buckets x actions): B resamples cost O(B n) in all.
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/ope.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "policies/base.h"

const char *const ope_estimator_name[OPE_N] = {"replay", "ips", "snips", "dm",
                                               "dr"};

void
ope_config_default(ope_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->boot = 1000;
    c->dominate_share = 0.05;
    policy_params_default(&c->params);
}

static void
ope_warn(ope_result_t *r, const char *fmt, ...)
{
    if (!r)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->warn = bursar_realloc(r->warn, (r->n_warn + 1) * sizeof(char *));
    r->warn[r->n_warn++] = bursar_strdup(buf);
}

void
ope_result_free(ope_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_warn; i++)
        free(r->warn[i]);
    free(r->warn);
    r->warn = NULL;
    r->n_warn = 0;
}

/* ------------------------------------------------------------ targets */

void
ope_target_free(ope_target_t *t)
{
    if (t) {
        free(t->w);
        t->w = NULL;
    }
}

static void
ope_target_init(ope_target_t *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->fixed = -1;
}

/* "A=0.5,B=0.25": the same weights in every bucket. */
static int
ope_parse_mix(const olog_t *lg, const char *list, ope_target_t *t, serr_t *e)
{
    size_t na = lg->n_actions;
    double *row = bursar_calloc(na ? na : 1, sizeof(double));
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    int rc = 0;
    double sum = 0;
    for (char *tok = strtok(buf, ","); tok && !rc; tok = strtok(NULL, ",")) {
        char *eq = strrchr(tok, '=');
        char *end;
        if (!eq) {
            rc = serr_set(e, SERR_ARG,
                          "--policy mix: '%s' is not ACTION=WEIGHT", tok);
            break;
        }
        *eq = '\0';
        double w = strtod(eq + 1, &end);
        int a = olog_find_action(lg, tok);
        if (*end || !eq[1] || !isfinite(w) || w < 0)
            rc = serr_set(e, SERR_ARG,
                          "--policy mix: weight of '%s' is not a number >= 0",
                          tok);
        else if (a < 0)
            rc = serr_set(e, SERR_ARG, "--policy mix: '%s' is not in the log",
                          tok);
        else {
            row[a] += w;
            sum += w;
        }
    }
    if (!rc && !(sum > 0))
        rc = serr_set(e, SERR_ARG, "--policy mix: the weights sum to 0");
    if (!rc) {
        t->w = bursar_calloc(lg->n_buckets * na, sizeof(double));
        for (size_t b = 0; b < lg->n_buckets; b++)
            memcpy(t->w + b * na, row, na * sizeof(double));
        t->kind = POLICY_STATIC;
    }
    free(row);
    return rc;
}

int
ope_target_parse(const olog_t *lg, const char *spec, ope_target_t *t, serr_t *e)
{
    ope_target_init(t, spec);
    if (strncmp(spec, "mix:", 4) == 0)
        return ope_parse_mix(lg, spec + 4, t, e);
    const char *model = NULL;
    if (policy_kind_parse(spec, &t->kind, &model) != 0 ||
        t->kind == POLICY_STATIC || t->kind == POLICY_CHEAPEST ||
        t->kind == POLICY_STRONGEST)
        return serr_set(e, SERR_ARG,
                        "--policy: '%s' is not one of uniform, fixed:MODEL, "
                        "mix:A=W,..., ts, ts-budget, eps-greedy, ucb1",
                        spec);
    if (t->kind == POLICY_FIXED) {
        t->fixed = model ? olog_find_action(lg, model) : -1;
        if (t->fixed < 0)
            return serr_set(e, SERR_ARG, "--policy: '%s' is not in the log",
                            model ? model : "");
    }
    t->learning = t->kind == POLICY_TS || t->kind == POLICY_TS_BUDGET ||
                  t->kind == POLICY_EPS_GREEDY || t->kind == POLICY_UCB1;
    return 0;
}

/* Reads {"A": w, ...} into row; returns 0 or SERR_FORMAT. */
static int
ope_json_weights(const olog_t *lg, const cJSON *o, const char *where,
                 double *row, serr_t *e)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (strcmp(it->string, "name") == 0)
            continue;
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
            it->valuedouble < 0)
            return serr_set(e, SERR_FORMAT, "%s: field '%s': not a number >= 0",
                            where, it->string);
        int a = olog_find_action(lg, it->string);
        if (a < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field '%s': not an action of the log", where,
                            it->string);
        row[a] = it->valuedouble;
    }
    return 0;
}

int
ope_target_json(const olog_t *lg, const char *json, const char *name,
                ope_target_t *t, serr_t *e)
{
    ope_target_init(t, name);
    t->kind = POLICY_STATIC;
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return serr_set(e, SERR_FORMAT, "%s: not a JSON object", name);
    }
    size_t na = lg->n_actions, nb = lg->n_buckets;
    t->w = bursar_calloc(nb * na + 1, sizeof(double));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (cJSON_IsString(nm))
        snprintf(t->name, sizeof t->name, "%s", nm->valuestring);
    const cJSON *it;
    int per_bucket = -1, rc = 0;
    double *def = bursar_calloc(na + 1, sizeof(double));
    int have_def = 0;
    cJSON_ArrayForEach(it, o)
    {
        if (strcmp(it->string, "name") == 0)
            continue;
        int pb = cJSON_IsObject(it);
        if (per_bucket >= 0 && pb != per_bucket) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s: field '%s': mixes action weights and buckets",
                          name, it->string);
            break;
        }
        per_bucket = pb;
        if (!pb)
            continue;
        char where[256];
        snprintf(where, sizeof where, "%s: bucket '%s'", name, it->string);
        if (strcmp(it->string, "*") == 0) {
            rc = ope_json_weights(lg, it, where, def, e);
            have_def = 1;
        } else {
            int b = olog_find_bucket(lg, it->string);
            if (b < 0)
                rc = serr_set(e, SERR_FORMAT,
                              "%s: field '%s': not a bucket of the log", name,
                              it->string);
            else
                rc = ope_json_weights(lg, it, where, t->w + (size_t)b * na, e);
        }
        if (rc)
            break;
    }
    if (!rc && per_bucket == 0) {
        rc = ope_json_weights(lg, o, name, def, e);
        have_def = 1;
    }
    if (!rc && per_bucket < 0)
        rc = serr_set(e, SERR_FORMAT, "%s: no weights", name);
    if (!rc && have_def) {
        for (size_t b = 0; b < nb; b++) {
            double s = 0;
            for (size_t a = 0; a < na; a++)
                s += t->w[b * na + a];
            if (s == 0) /* buckets not named take the default */
                memcpy(t->w + b * na, def, na * sizeof(double));
        }
    }
    free(def);
    cJSON_Delete(o);
    return rc;
}

/* The actions present per bucket: present[b * na + a]. */
static unsigned char *
ope_present(const olog_t *lg)
{
    size_t na = lg->n_actions;
    unsigned char *p = bursar_calloc(lg->n_buckets * na + 1, 1);
    for (size_t i = 0; i < lg->n_rows; i++)
        p[(size_t)lg->row_bucket[i] * na + (size_t)lg->row_action[i]] = 1;
    return p;
}

/* A policies/ bucket whose arms are the actions logged in bucket b; arms
 * get prior Beta(1, 1) and, as cost prior, the action's mean logged cost
 * (a price table). arm_of[a] receives the arm of action a or -1. */
static policy_bucket_t *
ope_bucket(const olog_t *lg, const unsigned char *present, size_t b,
           const double *action_cost, int *arm_of)
{
    size_t na = lg->n_actions, n = 0;
    for (size_t a = 0; a < na; a++)
        arm_of[a] = present[b * na + a] ? (int)n++ : -1;
    if (!n)
        return NULL;
    policy_bucket_t *pb = policy_bucket_new(n, 0.0, 0.0);
    if (!pb)
        return NULL;
    for (size_t a = 0; a < na; a++) {
        if (arm_of[a] < 0)
            continue;
        arm_init(&pb->arms[arm_of[a]], 1.0, 1.0, action_cost[a], 1.0);
        pb->model[arm_of[a]] = (int)a;
    }
    policy_bucket_touch(pb);
    return pb;
}

static double *
ope_action_cost(const olog_t *lg)
{
    size_t na = lg->n_actions;
    double *c = bursar_calloc(na + 1, sizeof(double));
    size_t *k = bursar_calloc(na + 1, sizeof(size_t));
    for (size_t i = 0; i < lg->n_rows; i++)
        if (isfinite(lg->cost[i])) {
            c[lg->row_action[i]] += lg->cost[i];
            k[lg->row_action[i]]++;
        }
    for (size_t a = 0; a < na; a++)
        c[a] = k[a] ? c[a] / (double)k[a] : 0.0;
    free(k);
    return c;
}

static void
ope_params(const ope_target_t *t, const ope_config_t *cfg, policy_params_t *pp)
{
    *pp = cfg->params;
    pp->kind = t->kind;
    pp->fixed_model = t->fixed;
    pp->explore_floor = cfg->explore_floor;
}

double *
ope_target_pi(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
              ope_result_t *r)
{
    size_t na = lg->n_actions, nb = lg->n_buckets;
    double *pi = bursar_calloc(nb * na + 1, sizeof(double));
    unsigned char *present = ope_present(lg);
    double *acost = ope_action_cost(lg);
    int *arm_of = bursar_malloc((na + 1) * sizeof(int));
    policy_params_t pp;
    ope_params(t, cfg, &pp);
    policy_t pol;
    policy_init(&pol, &pp);
    for (size_t b = 0; b < nb; b++) {
        policy_bucket_t *pb = ope_bucket(lg, present, b, acost, arm_of);
        if (!pb)
            continue;
        if (t->kind == POLICY_STATIC) {
            double s = 0;
            pb->static_p = bursar_calloc(pb->n_arms, sizeof(double));
            for (size_t a = 0; a < na; a++)
                if (arm_of[a] >= 0) {
                    pb->static_p[arm_of[a]] = t->w[b * na + a];
                    s += t->w[b * na + a];
                }
            if (!(s > 0))
                ope_warn(r,
                         "%s: no weight on any action logged in bucket '%s': "
                         "uniform there",
                         t->name, lg->bucket[b]);
        }
        if (t->kind == POLICY_FIXED && arm_of[t->fixed] < 0)
            ope_warn(r,
                     "%s: '%s' never logged in bucket '%s': policies/ falls "
                     "back to the best posterior mean there (under the "
                     "prior: the first action)",
                     t->name, lg->action[t->fixed], lg->bucket[b]);
        policy_bucket_touch(pb);
        policy_request_t req;
        policy_request_init(&req, 0.0);
        double probs[pb->n_arms];
        policy_propensities(&pol, pb, &req, probs);
        for (size_t a = 0; a < na; a++)
            if (arm_of[a] >= 0)
                pi[b * na + a] = probs[arm_of[a]];
        policy_bucket_destroy(&pb);
    }
    free(arm_of);
    free(acost);
    free(present);
    return pi;
}

/* ---------------------------------------------------------- estimates */

/* Sums per (bucket, action) cell over a (re)sample. */
typedef struct ope_sums {
    double *n, *r, *c, *w, *wr, *wc; /* per cell */
    double sw, sw2;                  /* sum w, sum w^2 */
    double z, zr, zc;                /* replay: accepted, outcome, cost */
    double total;                    /* rows */
} ope_sums_t;

static void
ope_sums_alloc(ope_sums_t *s, size_t cells)
{
    memset(s, 0, sizeof *s);
    s->n = bursar_calloc(6 * cells + 1, sizeof(double));
    s->r = s->n + cells;
    s->c = s->r + cells;
    s->w = s->c + cells;
    s->wr = s->w + cells;
    s->wc = s->wr + cells;
}

static void
ope_sums_clear(ope_sums_t *s, size_t cells)
{
    double *base = s->n;
    memset(base, 0, 6 * cells * sizeof(double));
    s->sw = s->sw2 = s->z = s->zr = s->zc = s->total = 0;
}

/* Per used row: cell, weight, outcome, cost, accepted by the replay. */
typedef struct ope_rows {
    size_t n;
    size_t *cell;
    double *w, *r, *c;
    unsigned char *acc;
    size_t *src; /* row index in the log */
} ope_rows_t;

static void
ope_sums_add(ope_sums_t *s, const ope_rows_t *u, size_t i, double m)
{
    size_t k = u->cell[i];
    double w = u->w[i];
    s->n[k] += m;
    s->r[k] += m * u->r[i];
    s->c[k] += m * u->c[i];
    s->w[k] += m * w;
    s->wr[k] += m * w * u->r[i];
    s->wc[k] += m * w * u->c[i];
    s->sw += m * w;
    s->sw2 += m * w * w;
    if (u->acc[i]) {
        s->z += m;
        s->zr += m * u->r[i];
        s->zc += m * u->c[i];
    }
    s->total += m;
}

/* The estimates from the sums: q[OPE_N] quality, c[OPE_N] cost. *unsup
 * receives the target mass (weighted by rows) on cells with no rows. */
static void
ope_from_sums(const ope_sums_t *s, const double *pi, size_t nb, size_t na,
              double *q, double *c, double *unsup)
{
    double n = s->total, dmq = 0, dmc = 0, drq = 0, drc = 0, miss = 0;
    for (size_t b = 0; b < nb; b++) {
        double nbk = 0, rb = 0, cb = 0;
        for (size_t a = 0; a < na; a++) {
            nbk += s->n[b * na + a];
            rb += s->r[b * na + a];
            cb += s->c[b * na + a];
        }
        if (nbk == 0)
            continue;
        for (size_t a = 0; a < na; a++) {
            size_t k = b * na + a;
            double qh, ch;
            if (s->n[k] > 0) {
                qh = s->r[k] / s->n[k];
                ch = s->c[k] / s->n[k];
            } else {
                qh = rb / nbk; /* never logged: the bucket's mean */
                ch = cb / nbk;
                miss += nbk * pi[k];
            }
            dmq += nbk * pi[k] * qh;
            dmc += nbk * pi[k] * ch;
            drq += s->wr[k] - s->w[k] * qh;
            drc += s->wc[k] - s->w[k] * ch;
        }
    }
    q[OPE_IPS] = 0;
    c[OPE_IPS] = 0;
    for (size_t k = 0; k < nb * na; k++) {
        q[OPE_IPS] += s->wr[k];
        c[OPE_IPS] += s->wc[k];
    }
    q[OPE_SNIPS] = s->sw > 0 ? q[OPE_IPS] / s->sw : NAN;
    c[OPE_SNIPS] = s->sw > 0 ? c[OPE_IPS] / s->sw : NAN;
    q[OPE_IPS] /= n;
    c[OPE_IPS] /= n;
    q[OPE_DM] = dmq / n;
    c[OPE_DM] = dmc / n;
    q[OPE_DR] = (dmq + drq) / n;
    c[OPE_DR] = (dmc + drc) / n;
    q[OPE_REPLAY] = s->z > 0 ? s->zr / s->z : NAN;
    c[OPE_REPLAY] = s->z > 0 ? s->zc / s->z : NAN;
    if (unsup)
        *unsup = miss / n;
}

/* Percentile interval of v[0..n) (sorted in place), NaNs dropped. */
static void
ope_interval(double *v, size_t n, double *lo, double *hi)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    if (k < 2) {
        *lo = *hi = NAN;
        return;
    }
    gsl_sort(v, 1, k);
    *lo = gsl_stats_quantile_from_sorted_data(v, 1, k, 0.025);
    *hi = gsl_stats_quantile_from_sorted_data(v, 1, k, 0.975);
}

/* A Mersenne Twister seeded with seed. gsl_rng_alloc fails only for want
 * of memory (GSL's error handler is off), which aborts as in base.h. */
static gsl_rng *
ope_rng_new(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) {
        fputs("bursar: out of memory allocating a gsl_rng\n", stderr);
        abort();
    }
    gsl_rng_set(r, seed);
    return r;
}

static void
ope_bootstrap(const ope_rows_t *u, const double *pi, size_t nb, size_t na,
              const ope_config_t *cfg, int has_cost, ope_result_t *out)
{
    size_t B = cfg->boot, cells = nb * na;
    if (!B)
        return;
    gsl_rng *rng = ope_rng_new(cfg->seed * 7919u + 17u);
    double *bq = bursar_malloc(OPE_N * B * sizeof(double));
    double *bc = bursar_malloc(OPE_N * B * sizeof(double));
    ope_sums_t s;
    ope_sums_alloc(&s, cells);
    for (size_t j = 0; j < B; j++) {
        ope_sums_clear(&s, cells);
        for (size_t i = 0; i < u->n; i++)
            ope_sums_add(&s, u, gsl_rng_uniform_int(rng, u->n), 1.0);
        double q[OPE_N], c[OPE_N];
        ope_from_sums(&s, pi, nb, na, q, c, NULL);
        for (int k = 0; k < OPE_N; k++) {
            bq[(size_t)k * B + j] = q[k];
            bc[(size_t)k * B + j] = c[k];
        }
    }
    for (int k = 0; k < OPE_N; k++) {
        ope_est_t *es = &out->est[k];
        ope_interval(bq + (size_t)k * B, B, &es->q_lo, &es->q_hi);
        if (has_cost)
            ope_interval(bc + (size_t)k * B, B, &es->c_lo, &es->c_hi);
    }
    free(s.n);
    free(bq);
    free(bc);
    gsl_rng_free(rng);
}

/* Replay of a learning target (rejection sampling, ope.h). Marks the
 * accepted rows in u->acc. The policy's state moves only on accepted
 * rows: on a rejected row the decision it drew is undone (pulls, decision
 * count and the shadow price restored), as in Li et al.'s replay, where
 * the policy never sees a rejected event. */
static int
ope_replay_learning(const olog_t *lg, const ope_target_t *t,
                    const ope_config_t *cfg, ope_rows_t *u, gsl_rng *rng,
                    double p_min, serr_t *e)
{
    size_t nb = lg->n_buckets, na = lg->n_actions;
    unsigned char *present = ope_present(lg);
    double *acost = ope_action_cost(lg);
    int *arm_of = bursar_malloc((nb * na + 1) * sizeof(int));
    policy_bucket_t **pbs = bursar_calloc(nb + 1, sizeof *pbs);
    for (size_t b = 0; b < nb; b++)
        pbs[b] = ope_bucket(lg, present, b, acost, arm_of + b * na);
    policy_params_t pp;
    ope_params(t, cfg, &pp);
    policy_t pol;
    policy_init(&pol, &pp);
    int rc = 0;
    for (size_t i = 0; i < u->n; i++) {
        size_t row = u->src[i];
        size_t b = (size_t)lg->row_bucket[row];
        policy_bucket_t *pb = pbs[b];
        double now = (double)i;
        policy_request_t req;
        policy_request_init(&req, now);
        req.no_propensity = 1;
        if (t->kind == POLICY_TS_BUDGET && cfg->budget_per_request > 0)
            req.target_usd = cfg->budget_per_request;
        double mu = pol.mu;
        uint64_t dec = pol.decisions;
        policy_choice_t ch;
        if (policy_choose(&pol, pb, &req, rng, &ch, NULL, NULL) != 0) {
            rc = serr_set(e, SERR_POLICY, "policy_choose failed at line %ld",
                          lg->line[row]);
            break;
        }
        double pr = lg->prop[row];
        u->acc[i] = ch.model == lg->row_action[row] &&
                    gsl_rng_uniform(rng) < p_min / pr;
        if (u->acc[i]) {
            policy_reward(pb, ch.arm, u->r[i], now);
            if (isfinite(lg->cost[row]))
                policy_cost(pb, ch.arm, lg->cost[row], now);
        } else {
            pb->arms[ch.arm].pulls--;
            pol.decisions = dec;
            pol.mu = mu;
        }
    }
    for (size_t b = 0; b < nb; b++)
        policy_bucket_destroy(&pbs[b]);
    free(pbs);
    free(arm_of);
    free(acost);
    free(present);
    return rc;
}

/* The rows behind the estimates (outcome present, propensity > 0) into u,
 * the others counted in out; returns the smallest propensity used. */
static double
ope_rows_collect(const olog_t *lg, ope_rows_t *u, ope_result_t *out)
{
    size_t na = lg->n_actions, cap = lg->n_rows + 1;
    memset(u, 0, sizeof *u);
    u->cell = bursar_malloc(cap * sizeof(size_t));
    u->src = bursar_malloc(cap * sizeof(size_t));
    u->w = bursar_malloc(cap * sizeof(double));
    u->r = bursar_malloc(cap * sizeof(double));
    u->c = bursar_malloc(cap * sizeof(double));
    u->acc = bursar_calloc(cap, 1);
    double p_min = INFINITY;
    for (size_t i = 0; i < lg->n_rows; i++) {
        double p = lg->prop[i];
        if (!isfinite(lg->reward[i])) {
            out->n_no_reward++;
            continue;
        }
        if (isnan(p)) {
            out->n_no_prop++;
            continue;
        }
        if (!(p > 0)) {
            out->n_zero_prop++;
            continue;
        }
        size_t k = u->n++;
        u->src[k] = i;
        u->cell[k] = (size_t)lg->row_bucket[i] * na + (size_t)lg->row_action[i];
        u->r[k] = lg->reward[i];
        u->c[k] = isfinite(lg->cost[i]) ? lg->cost[i] : 0.0;
        if (!isfinite(lg->cost[i]))
            out->n_no_cost++;
        if (p < p_min)
            p_min = p;
    }
    return p_min;
}

static void
ope_rows_free(ope_rows_t *u)
{
    free(u->cell);
    free(u->src);
    free(u->w);
    free(u->r);
    free(u->c);
    free(u->acc);
}

/* The warnings about rows left out or counted at 0 USD. */
static void
ope_warn_rows(ope_result_t *out, int has_cost)
{
    if (out->n_no_reward)
        ope_warn(out,
                 "%zu rows without an outcome (pending or expired) "
                 "left out",
                 out->n_no_reward);
    if (out->n_no_prop)
        ope_warn(out,
                 "%zu rows without a propensity left out: they cannot "
                 "be reweighted",
                 out->n_no_prop);
    if (out->n_zero_prop)
        ope_warn(out,
                 "%zu rows with propensity 0 left out: a choice of "
                 "probability 0 cannot be reweighted (is the log consistent?)",
                 out->n_zero_prop);
    if (has_cost && out->n_no_cost)
        ope_warn(out, "%zu rows without a cost counted at 0 USD",
                 out->n_no_cost);
}

/* A static target's weights w_i = pi / p_i, and the replay's accept step
 * for each row: the target's draw, then the rejection step (ope.h). */
static void
ope_weigh_static(const olog_t *lg, const double *pi, ope_rows_t *u,
                 gsl_rng *rng, double p_min)
{
    size_t na = lg->n_actions;
    for (size_t i = 0; i < u->n; i++) {
        size_t k = u->cell[i];
        u->w[i] = pi[k] / lg->prop[u->src[i]];
        double x = gsl_rng_uniform(rng), acc = 0;
        size_t b0 = k - k % na, a = 0;
        for (a = 0; a < na; a++) {
            acc += pi[b0 + a];
            if (x < acc)
                break;
        }
        u->acc[i] =
            b0 + a == k && gsl_rng_uniform(rng) < p_min / lg->prop[u->src[i]];
    }
}

/* Weights and accepted rows of the target: *pi receives a static target's
 * distribution (NULL for a learning one, whose weights are 0). */
static int
ope_weigh(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
          ope_rows_t *u, double p_min, double **pi, ope_result_t *out,
          serr_t *e)
{
    int rc = 0;
    gsl_rng *rng = ope_rng_new(cfg->seed);
    if (t->learning) {
        rc = ope_replay_learning(lg, t, cfg, u, rng, p_min, e);
        for (size_t i = 0; i < u->n; i++)
            u->w[i] = 0;
    } else {
        *pi = ope_target_pi(lg, t, cfg, out);
        ope_weigh_static(lg, *pi, u, rng, p_min);
    }
    gsl_rng_free(rng);
    return rc;
}

/* Kish's ESS on weights scaled by the largest, maxw, so that extreme
 * weights (propensities near 0) cannot overflow the sum of squares. */
static double
ope_ess(const ope_rows_t *u, double maxw)
{
    if (!(maxw > 0))
        return 0.0;
    double a = 0, b = 0;
    for (size_t i = 0; i < u->n; i++) {
        double x = u->w[i] / maxw;
        a += x;
        b += x * x;
    }
    return b > 0 ? a * a / b : 0.0;
}

/* The point estimates and ESS from all rows; *maxi receives the row of the
 * largest weight. */
static void
ope_point(const olog_t *lg, const ope_target_t *t, const ope_rows_t *u,
          const double *pi, int has_cost, ope_result_t *out, size_t *maxi)
{
    size_t nb = lg->n_buckets, na = lg->n_actions;
    ope_sums_t s;
    ope_sums_alloc(&s, nb * na);
    double maxw = 0;
    *maxi = 0;
    for (size_t i = 0; i < u->n; i++) {
        ope_sums_add(&s, u, i, 1.0);
        if (u->w[i] > maxw) {
            maxw = u->w[i];
            *maxi = i;
        }
    }
    out->n_accepted = (size_t)s.z;
    double q[OPE_N], c[OPE_N];
    ope_from_sums(&s, pi, nb, na, q, c, &out->unsupported);
    for (int k = 0; k < OPE_N; k++) {
        ope_est_t *es = &out->est[k];
        es->valid = !t->learning || k == OPE_REPLAY;
        es->q = q[k];
        es->c = has_cost ? c[k] : NAN;
        es->q_lo = es->q_hi = es->c_lo = es->c_hi = NAN;
    }
    double ess = ope_ess(u, maxw);
    out->est[OPE_IPS].ess = out->est[OPE_SNIPS].ess = out->est[OPE_DR].ess =
        ess;
    out->est[OPE_DM].ess = (double)u->n;
    out->est[OPE_REPLAY].ess = s.z;
    out->max_share = !t->learning && s.sw > 0 ? maxw / s.sw : 0;
    free(s.n);
}

/* The warnings about the weights of a static target: one row dominating,
 * a small ESS, mass where the log has nothing. */
static void
ope_warn_weights(const olog_t *lg, const ope_target_t *t, const ope_rows_t *u,
                 size_t maxi, double p_min, const ope_config_t *cfg,
                 ope_result_t *out)
{
    double ess = out->est[OPE_IPS].ess;
    out->max_share_line = lg->line[u->src[maxi]];
    if (out->max_share > cfg->dominate_share)
        ope_warn(out,
                 "%s: one row dominates: line %ld (propensity %.3g) "
                 "holds %.1f%% of the total weight; IPS, SNIPS and DR rest "
                 "on a few rows",
                 t->name, out->max_share_line, lg->prop[u->src[maxi]],
                 100 * out->max_share);
    if (ess < 0.1 * (double)u->n)
        ope_warn(out,
                 "%s: effective sample size %.1f is %.1f%% of the "
                 "%zu rows (smallest propensity %.3g)",
                 t->name, ess, 100 * ess / (double)u->n, u->n, p_min);
    if (out->unsupported > 1e-12)
        ope_warn(out,
                 "%s: %.1f%% of the target's choices fall on "
                 "(bucket, action) pairs the log never holds: IPS, SNIPS "
                 "and DR count nothing there, DM uses the bucket's mean",
                 t->name, 100 * out->unsupported);
}

/* The warnings about the replay's accepted rows. */
static void
ope_warn_replay(const ope_target_t *t, size_t n, double p_min,
                ope_result_t *out)
{
    if (out->n_accepted < n)
        ope_warn(out,
                 "%s: replay accepted %zu of %zu rows (matching choice, "
                 "kept with probability p_min/p, p_min = %.3g)%s",
                 t->name, out->n_accepted, n, p_min,
                 t->learning ? ": the policy learned from those rows only"
                             : "");
    if (out->n_accepted < 30)
        ope_warn(out,
                 "%s: replay rests on %zu rows: its estimate and "
                 "interval mean little",
                 t->name, out->n_accepted);
}

int
ope_evaluate(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
             ope_result_t *out, serr_t *e)
{
    memset(out, 0, sizeof *out);
    size_t nb = lg->n_buckets, na = lg->n_actions, maxi;
    out->n_rows = lg->n_rows;
    ope_rows_t u;
    double p_min = ope_rows_collect(lg, &u, out), *pi = NULL;
    out->n_used = u.n;
    out->p_min = p_min;
    int has_cost = out->n_no_cost < u.n, rc = 0;
    ope_warn_rows(out, has_cost);
    if (!u.n)
        rc = serr_set(e, SERR_EMPTY,
                      "no row with both an outcome and a propensity > 0");
    if (!rc)
        rc = ope_weigh(lg, t, cfg, &u, p_min, &pi, out, e);
    if (rc) {
        free(pi);
        ope_rows_free(&u);
        return rc;
    }
    /* a learning target has no distribution: its DM and DR are not
     * reported, and a zero one keeps their sums defined */
    if (!pi)
        pi = bursar_calloc(nb * na + 1, sizeof(double));
    ope_point(lg, t, &u, pi, has_cost, out, &maxi);
    if (!t->learning)
        ope_warn_weights(lg, t, &u, maxi, p_min, cfg, out);
    ope_warn_replay(t, u.n, p_min, out);
    ope_bootstrap(&u, pi, nb, na, cfg, has_cost, out);
    if (t->learning)
        for (int k = 0; k < OPE_N; k++)
            if (k != OPE_REPLAY)
                out->est[k].q_lo = out->est[k].q_hi = out->est[k].c_lo =
                    out->est[k].c_hi = NAN;
    free(pi);
    ope_rows_free(&u);
    return rc;
}
