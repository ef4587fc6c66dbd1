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

/* The actions present per bucket: present[b * na + a]: those logged in b
 * and, with with_offered, those of b's offered sets. */
static unsigned char *
ope_present(const olog_t *lg, int with_offered)
{
    size_t na = lg->n_actions;
    unsigned char *p = bursar_calloc(lg->n_buckets * na + 1, 1);
    for (size_t i = 0; i < lg->n_rows; i++) {
        size_t b = (size_t)lg->row_bucket[i];
        p[b * na + (size_t)lg->row_action[i]] = 1;
        const int *ids;
        size_t n;
        if (with_offered && olog_offered(lg, i, &ids, &n))
            for (size_t k = 0; k < n; k++)
                p[b * na + (size_t)ids[k]] = 1;
    }
    return p;
}

/* A policies/ bucket whose arms are the actions present in bucket b; arms
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

/* A static target's weights on the arms of pb (bucket b): static_p, with
 * fixed:M as all the weight on M. Returns their sum. */
static double
ope_static_weights(const olog_t *lg, const ope_target_t *t, size_t b,
                   const int *arm_of, policy_bucket_t *pb)
{
    size_t na = lg->n_actions;
    double s = 0;
    pb->static_p = bursar_calloc(pb->n_arms, sizeof(double));
    for (size_t a = 0; a < na; a++) {
        if (arm_of[a] < 0)
            continue;
        double w = t->kind == POLICY_FIXED ? (double)((int)a == t->fixed)
                                           : t->w[b * na + a];
        pb->static_p[arm_of[a]] = w;
        s += w;
    }
    return s;
}

/* The static target's distribution over the actions present per bucket
 * (ope_target_pi), the warnings appended to r (may be NULL). */
static double *
ope_pi_buckets(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
               const unsigned char *present, ope_result_t *r)
{
    size_t na = lg->n_actions, nb = lg->n_buckets;
    double *pi = bursar_calloc(nb * na + 1, sizeof(double));
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
        if (t->kind == POLICY_STATIC &&
            !(ope_static_weights(lg, t, b, arm_of, pb) > 0))
            ope_warn(r,
                     "%s: no weight on any action logged in bucket '%s': "
                     "uniform there",
                     t->name, lg->bucket[b]);
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
    return pi;
}

double *
ope_target_pi(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
              ope_result_t *r)
{
    unsigned char *present = ope_present(lg, 0);
    double *pi = ope_pi_buckets(lg, t, cfg, present, r);
    free(present);
    return pi;
}

/* ------------------------------------------------------------ contexts
 *
 * A context is where the target's distribution is one: a bucket, for
 * rows without an offered set (contexts 0 .. buckets - 1: the
 * distribution over the bucket's actions, ope_pi_buckets), or a (bucket,
 * offered set) pair, the distribution computed by policies/ with the set
 * as the allowed arms (policy_propensities), as the controller computed
 * the logged propensity. Static targets within a set: uniform over it;
 * a distribution renormalised over it, uniform where it has no weight on
 * it; fixed:M as all the weight on M: M where M is offered, else uniform
 * over the set (so that a cascade "M first" goes on uniformly); the
 * exploration floor within the set. Distinct sets are few (exclusions
 * and cooldowns change them), so each is computed once. */

typedef struct ope_ctx {
    size_t n, cap;
    int *bucket;      /* per context */
    uint64_t *mask;   /* per context: the set's arms (ope_sets_t); 0: none */
    double *pi;       /* n x actions */
    size_t *of_row;   /* per log row: its context */
    size_t *ht;       /* (bucket, mask) -> context + 1, ht_cap slots */
    size_t ht_cap;    /* a power of two */
    size_t set_rows;  /* rows in set contexts */
    size_t wide_rows; /* rows with a set left in their bucket's context:
                         more than 64 actions in the bucket's sets */
} ope_ctx_t;

/* The policies/ side of the set contexts: per bucket, an arm per action
 * present (logged or offered). */
typedef struct ope_sets {
    policy_bucket_t **pbs; /* per bucket */
    int *arm_of;           /* buckets x actions */
    policy_t pol;
} ope_sets_t;

static void
ope_sets_new(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
             const unsigned char *present, ope_sets_t *st, ope_result_t *r)
{
    size_t nb = lg->n_buckets, na = lg->n_actions;
    double *acost = ope_action_cost(lg);
    st->pbs = bursar_calloc(nb + 1, sizeof *st->pbs);
    st->arm_of = bursar_malloc((nb * na + 1) * sizeof(int));
    policy_params_t pp;
    ope_params(t, cfg, &pp);
    if (pp.kind == POLICY_FIXED)
        pp.kind = POLICY_STATIC; /* "M first": uniform where M is not */
    policy_init(&st->pol, &pp);
    for (size_t b = 0; b < nb; b++) {
        int *arm_of = st->arm_of + b * na;
        policy_bucket_t *pb = ope_bucket(lg, present, b, acost, arm_of);
        st->pbs[b] = pb;
        if (!pb || t->learning || pp.kind != POLICY_STATIC)
            continue;
        if (!(ope_static_weights(lg, t, b, arm_of, pb) > 0))
            ope_warn(r,
                     t->kind == POLICY_FIXED
                         ? "%s: never offered in bucket '%s': uniform over "
                           "each offered set there"
                         : "%s: no weight on any action offered in bucket "
                           "'%s': uniform there",
                     t->name, lg->bucket[b]);
        policy_bucket_touch(pb);
    }
    free(acost);
}

static void
ope_sets_free(const olog_t *lg, ope_sets_t *st)
{
    for (size_t b = 0; b < lg->n_buckets; b++)
        policy_bucket_destroy(&st->pbs[b]);
    free(st->pbs);
    free(st->arm_of);
}

/* The arms of row i's offered set in its bucket's policies/ bucket:
 * returns 0, or -1 when one is past the 64th. */
static int
ope_row_mask(const olog_t *lg, const ope_sets_t *st, size_t i, uint64_t *mask)
{
    const int *ids;
    size_t n;
    const int *arm_of = st->arm_of + (size_t)lg->row_bucket[i] * lg->n_actions;
    *mask = 0;
    olog_offered(lg, i, &ids, &n);
    for (size_t k = 0; k < n; k++) {
        int a = arm_of[ids[k]];
        if (a < 0 || a >= 64)
            return -1;
        *mask |= 1ull << a;
    }
    return 0;
}

static size_t
ope_ctx_hash(int b, uint64_t mask, size_t cap)
{
    uint64_t h = (mask ^ ((uint64_t)(unsigned)b << 56)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static void
ope_ctx_rehash(ope_ctx_t *cx)
{
    free(cx->ht);
    cx->ht_cap = cx->ht_cap ? 2 * cx->ht_cap : 64;
    while (cx->ht_cap < 2 * (cx->n + 1)) /* at most half full */
        cx->ht_cap *= 2;
    cx->ht = bursar_calloc(cx->ht_cap, sizeof(size_t));
    for (size_t k = 0; k < cx->n; k++) {
        if (!cx->mask[k])
            continue;
        size_t h = ope_ctx_hash(cx->bucket[k], cx->mask[k], cx->ht_cap);
        while (cx->ht[h])
            h = (h + 1) & (cx->ht_cap - 1);
        cx->ht[h] = k + 1;
    }
}

/* The context of (b, mask), added if new (*added = 1, its pi zero). */
static size_t
ope_ctx_add(ope_ctx_t *cx, size_t na, int b, uint64_t mask, int *added)
{
    if (2 * (cx->n + 1) > cx->ht_cap)
        ope_ctx_rehash(cx);
    size_t h = ope_ctx_hash(b, mask, cx->ht_cap);
    for (; cx->ht[h]; h = (h + 1) & (cx->ht_cap - 1)) {
        size_t k = cx->ht[h] - 1;
        if (cx->bucket[k] == b && cx->mask[k] == mask) {
            *added = 0;
            return k;
        }
    }
    if (cx->n == cx->cap) {
        cx->cap = 2 * cx->cap + 16;
        cx->bucket = bursar_realloc(cx->bucket, cx->cap * sizeof(int));
        cx->mask = bursar_realloc(cx->mask, cx->cap * sizeof(uint64_t));
        cx->pi = bursar_realloc(cx->pi, (cx->cap * na + 1) * sizeof(double));
    }
    size_t k = cx->n++;
    cx->bucket[k] = b;
    cx->mask[k] = mask;
    memset(cx->pi + k * na, 0, na * sizeof(double));
    cx->ht[h] = k + 1;
    *added = 1;
    return k;
}

/* The target's distribution within a set context (pi: its row). */
static void
ope_ctx_pi(const olog_t *lg, ope_sets_t *st, int b, uint64_t mask, double *pi)
{
    size_t na = lg->n_actions;
    policy_bucket_t *pb = st->pbs[b];
    unsigned char allowed[pb->n_arms];
    double probs[pb->n_arms];
    for (size_t k = 0; k < pb->n_arms; k++)
        allowed[k] = k < 64 && ((mask >> k) & 1);
    policy_request_t req;
    policy_request_init(&req, 0.0);
    req.allowed = allowed;
    policy_propensities(&st->pol, pb, &req, probs);
    const int *arm_of = st->arm_of + (size_t)b * na;
    for (size_t a = 0; a < na; a++)
        pi[a] = arm_of[a] >= 0 ? probs[arm_of[a]] : 0.0;
}

/* The set contexts of the rows that have an offered set. */
static void
ope_ctx_sets(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
             const unsigned char *present, ope_ctx_t *cx, ope_result_t *r)
{
    size_t na = lg->n_actions;
    ope_sets_t st;
    ope_sets_new(lg, t, cfg, present, &st, r);
    for (size_t i = 0; i < lg->n_rows; i++) {
        const int *ids;
        size_t n;
        uint64_t mask;
        int b = lg->row_bucket[i], added;
        if (!olog_offered(lg, i, &ids, &n))
            continue;
        if (ope_row_mask(lg, &st, i, &mask) != 0) {
            cx->wide_rows++;
            continue;
        }
        size_t k = ope_ctx_add(cx, na, b, mask, &added);
        if (added && !t->learning)
            ope_ctx_pi(lg, &st, b, mask, cx->pi + k * na);
        cx->of_row[i] = k;
        cx->set_rows++;
    }
    ope_sets_free(lg, &st);
}

/* The contexts of the target, with use_sets the offered sets' among them
 * (a learning target's distributions are left 0: replay only). */
static void
ope_ctx_build(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
              int use_sets, ope_ctx_t *cx, ope_result_t *r)
{
    size_t nb = lg->n_buckets, na = lg->n_actions, plain = 0;
    memset(cx, 0, sizeof *cx);
    unsigned char *present = ope_present(lg, use_sets);
    cx->of_row = bursar_malloc((lg->n_rows + 1) * sizeof(size_t));
    for (size_t i = 0; i < lg->n_rows; i++) {
        cx->of_row[i] = (size_t)lg->row_bucket[i];
        plain += !use_sets || lg->row_n_off[i] < 0;
    }
    /* the buckets' own distributions (warnings only where rows use them) */
    cx->n = cx->cap = nb;
    cx->pi = t->learning
                 ? bursar_calloc(nb * na + 1, sizeof(double))
                 : ope_pi_buckets(lg, t, cfg, present, plain ? r : NULL);
    cx->bucket = bursar_malloc((nb + 1) * sizeof(int));
    cx->mask = bursar_calloc(nb + 1, sizeof(uint64_t));
    for (size_t b = 0; b < nb; b++)
        cx->bucket[b] = (int)b;
    if (use_sets)
        ope_ctx_sets(lg, t, cfg, present, cx, r);
    if (cx->wide_rows)
        ope_warn(r,
                 "%zu rows with an offered set in a bucket whose sets hold "
                 "more than 64 actions: judged over the bucket's actions",
                 cx->wide_rows);
    free(present);
}

static void
ope_ctx_free(ope_ctx_t *cx)
{
    free(cx->bucket);
    free(cx->mask);
    free(cx->pi);
    free(cx->of_row);
    free(cx->ht);
    memset(cx, 0, sizeof *cx);
}

/* The target's probability of row i's action in its context. */
static double
ope_ctx_prob(const olog_t *lg, const ope_ctx_t *cx, size_t i)
{
    return cx->pi[cx->of_row[i] * lg->n_actions + (size_t)lg->row_action[i]];
}
/* ---------------------------------------------------------- estimates */

/* Sums per (bucket, action) cell over a (re)sample, and the rows per
 * context (the target's mass per cell follows from them). */
typedef struct ope_sums {
    double *n, *r, *c, *w, *wr, *wc; /* per cell */
    double *cnt;                     /* per context: rows */
    double *tm;                      /* per cell: target mass (scratch) */
    double sw, sw2;                  /* sum w, sum w^2 */
    double z, zr, zc;                /* replay: accepted, outcome, cost */
    double total;                    /* rows */
    size_t ctxs;
} ope_sums_t;

static void
ope_sums_alloc(ope_sums_t *s, size_t cells, size_t ctxs)
{
    memset(s, 0, sizeof *s);
    s->n = bursar_calloc(7 * cells + ctxs + 1, sizeof(double));
    s->r = s->n + cells;
    s->c = s->r + cells;
    s->w = s->c + cells;
    s->wr = s->w + cells;
    s->wc = s->wr + cells;
    s->cnt = s->wc + cells;
    s->tm = s->cnt + ctxs;
    s->ctxs = ctxs;
}

static void
ope_sums_clear(ope_sums_t *s, size_t cells)
{
    double *base = s->n;
    memset(base, 0, (6 * cells + s->ctxs) * sizeof(double));
    s->sw = s->sw2 = s->z = s->zr = s->zc = s->total = 0;
}

/* Per used row: cell, context, weight, outcome, cost, accepted by the
 * replay. */
typedef struct ope_rows {
    size_t n;
    size_t *cell;
    size_t *ctx;
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
    s->cnt[u->ctx[i]] += m;
    s->sw += m * w;
    s->sw2 += m * w * w;
    if (u->acc[i]) {
        s->z += m;
        s->zr += m * u->r[i];
        s->zc += m * u->c[i];
    }
    s->total += m;
}

/* The target's mass per cell: sum over the rows of pi(a | their context)
 * (with one context per bucket: rows x pi(a | b)). */
static void
ope_mass(const ope_sums_t *s, const ope_ctx_t *cx, size_t nb, size_t na,
         double *tm)
{
    memset(tm, 0, nb * na * sizeof(double));
    for (size_t k = 0; k < cx->n; k++) {
        if (s->cnt[k] == 0)
            continue;
        const double *p = cx->pi + k * na;
        double *dst = tm + (size_t)cx->bucket[k] * na;
        for (size_t a = 0; a < na; a++)
            dst[a] += s->cnt[k] * p[a];
    }
}

/* The estimates from the sums: q[OPE_N] quality, c[OPE_N] cost. *unsup
 * receives the target mass (weighted by rows) on cells with no rows. */
static void
ope_from_sums(const ope_sums_t *s, const ope_ctx_t *cx, size_t nb, size_t na,
              double *q, double *c, double *unsup)
{
    double n = s->total, dmq = 0, dmc = 0, drq = 0, drc = 0, miss = 0;
    const double *tm = s->tm;
    ope_mass(s, cx, nb, na, s->tm);
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
                miss += tm[k];
            }
            dmq += tm[k] * qh;
            dmc += tm[k] * ch;
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
ope_bootstrap(const ope_rows_t *u, const ope_ctx_t *cx, size_t nb, size_t na,
              const ope_config_t *cfg, int has_cost, ope_result_t *out)
{
    size_t B = cfg->boot, cells = nb * na;
    if (!B)
        return;
    gsl_rng *rng = ope_rng_new(cfg->seed * 7919u + 17u);
    double *bq = bursar_malloc(OPE_N * B * sizeof(double));
    double *bc = bursar_malloc(OPE_N * B * sizeof(double));
    ope_sums_t s;
    ope_sums_alloc(&s, cells, cx->n);
    for (size_t j = 0; j < B; j++) {
        ope_sums_clear(&s, cells);
        for (size_t i = 0; i < u->n; i++)
            ope_sums_add(&s, u, gsl_rng_uniform_int(rng, u->n), 1.0);
        double q[OPE_N], c[OPE_N];
        ope_from_sums(&s, cx, nb, na, q, c, NULL);
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

/* The allowed arms of row `row` in pb (arm_of: its bucket's), from its
 * offered set; NULL (every arm) without one or without use_sets. */
static const unsigned char *
ope_row_allowed(const olog_t *lg, size_t row, const int *arm_of, int use_sets,
                const policy_bucket_t *pb, unsigned char *allowed)
{
    const int *ids;
    size_t n;
    if (!use_sets || !olog_offered(lg, row, &ids, &n))
        return NULL;
    memset(allowed, 0, pb->n_arms);
    for (size_t k = 0; k < n; k++)
        if (arm_of[ids[k]] >= 0)
            allowed[arm_of[ids[k]]] = 1;
    return allowed;
}

/* Replay of a learning target (rejection sampling, ope.h). Marks the
 * accepted rows in u->acc. The policy's state moves only on accepted
 * rows: on a rejected row the decision it drew is undone (pulls, decision
 * count and the shadow price restored), as in Li et al.'s replay, where
 * the policy never sees a rejected event. With use_sets it chooses within
 * each row's offered set. */
static int
ope_replay_learning(const olog_t *lg, const ope_target_t *t,
                    const ope_config_t *cfg, int use_sets, ope_rows_t *u,
                    gsl_rng *rng, double p_min, serr_t *e)
{
    size_t nb = lg->n_buckets, na = lg->n_actions;
    unsigned char *present = ope_present(lg, use_sets);
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
        unsigned char allowed[pb->n_arms];
        req.allowed =
            ope_row_allowed(lg, row, arm_of + b * na, use_sets, pb, allowed);
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
    u->ctx = bursar_calloc(cap, sizeof(size_t));
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
    free(u->ctx);
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

/* A static target's weights w_i = pi / p_i (pi in the row's context),
 * and the replay's accept step for each row: the target's draw, then the
 * rejection step (ope.h). */
static void
ope_weigh_static(const olog_t *lg, const ope_ctx_t *cx, ope_rows_t *u,
                 gsl_rng *rng, double p_min)
{
    size_t na = lg->n_actions;
    for (size_t i = 0; i < u->n; i++) {
        size_t k = u->cell[i], own = k % na;
        const double *pi = cx->pi + u->ctx[i] * na;
        u->w[i] = pi[own] / lg->prop[u->src[i]];
        double x = gsl_rng_uniform(rng), acc = 0;
        size_t a = 0;
        for (a = 0; a < na; a++) {
            acc += pi[a];
            if (x < acc)
                break;
        }
        u->acc[i] =
            a == own && gsl_rng_uniform(rng) < p_min / lg->prop[u->src[i]];
    }
}

/* Weights and accepted rows of the target in its contexts (cx, built
 * here; a learning target's weights are 0). */
static int
ope_weigh(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
          int use_sets, ope_rows_t *u, double p_min, ope_ctx_t *cx,
          ope_result_t *out, serr_t *e)
{
    int rc = 0;
    ope_ctx_build(lg, t, cfg, use_sets, cx, out);
    for (size_t i = 0; i < u->n; i++)
        u->ctx[i] = cx->of_row[u->src[i]];
    gsl_rng *rng = ope_rng_new(cfg->seed);
    if (t->learning) {
        rc = ope_replay_learning(lg, t, cfg, use_sets, u, rng, p_min, e);
        for (size_t i = 0; i < u->n; i++)
            u->w[i] = 0;
    } else {
        ope_weigh_static(lg, cx, u, rng, p_min);
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
          const ope_ctx_t *cx, int has_cost, ope_result_t *out, size_t *maxi)
{
    size_t nb = lg->n_buckets, na = lg->n_actions;
    ope_sums_t s;
    ope_sums_alloc(&s, nb * na, cx->n);
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
    ope_from_sums(&s, cx, nb, na, q, c, &out->unsupported);
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

/* ---------------------------------------------------------- cascades
 *
 * A request is a step-0 decision and the chain of decisions that escalate
 * it (escalates_seq names the parent's seq). One sample per request: its
 * weight is the product over its steps of pi(a_s | S_s) / p_s (each step's
 * target probability within that step's offered set S_s), its outcome the
 * last step's reward (the agent stops at the first step that passes), its
 * cost the sum of its steps' costs. The trajectory's probability under
 * the target, divided by its probability under the logging policy, is
 * that product (the outcomes and the sets that follow them are the
 * world's, the same under both), so IPS and SNIPS over requests are the
 * value of the target run as a cascade with the same escalation rule. */

#define OPE_NONE ((size_t)-1)

/* One sample per request used. */
typedef struct ope_reqs {
    size_t n;
    double *w, *r, *c; /* weight product, final reward, summed cost */
    size_t *first;     /* log row of its first step */
    size_t steps;      /* rows behind them */
} ope_reqs_t;

/* The slot of sequence id seq in the open-addressing table ht (cap a
 * power of two; entries are row + 1, 0 empty): its entry, or the empty
 * slot where it goes. */
static size_t
ope_seq_slot(const olog_t *lg, const size_t *ht, size_t cap, uint64_t seq)
{
    size_t h = (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
    while (ht[h] && lg->row_seq[ht[h] - 1] != seq)
        h = (h + 1) & (cap - 1);
    return h;
}

/* The row of the latest decision with sequence id seq in ht, or
 * OPE_NONE. */
static size_t
ope_seq_find(const olog_t *lg, const size_t *ht, size_t cap, uint64_t seq)
{
    size_t h = ope_seq_slot(lg, ht, cap, seq);
    return ht[h] ? ht[h] - 1 : OPE_NONE;
}

static void
ope_seq_put(const olog_t *lg, size_t *ht, size_t cap, size_t row)
{
    /* the latest row of that seq (logs read in order) */
    ht[ope_seq_slot(lg, ht, cap, lg->row_seq[row])] = row + 1;
}

/* The chains: root[i] = the first row of row i's request (OPE_NONE when
 * its parent is not in the log: an orphan), next[i] = the row that
 * escalates row i (OPE_NONE: none); branch[r] = 1 when a decision of
 * request r was escalated twice (a retried choose). Parents come before
 * their escalations in a log (ids follow time). */
static void
ope_chains(const olog_t *lg, size_t *root, size_t *next, unsigned char *branch)
{
    size_t n = lg->n_rows, cap = 64;
    while (cap < 2 * n + 2)
        cap *= 2;
    size_t *ht = bursar_calloc(cap, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        root[i] = i;
        next[i] = OPE_NONE;
        branch[i] = 0;
        if (lg->row_parent[i]) {
            size_t p = ope_seq_find(lg, ht, cap, lg->row_parent[i]);
            root[i] = p == OPE_NONE ? OPE_NONE : root[p];
            if (root[i] != OPE_NONE) {
                if (next[p] != OPE_NONE)
                    branch[root[i]] = 1;
                next[p] = i;
            }
        } else if (lg->row_step[i] > 0) {
            root[i] = OPE_NONE; /* a step past the first without its link */
        }
        if (lg->row_seq[i])
            ope_seq_put(lg, ht, cap, i);
    }
    free(ht);
}

/* 1 when any row escalates another (or says it is a later step). */
static int
ope_has_cascades(const olog_t *lg)
{
    for (size_t i = 0; i < lg->n_rows; i++)
        if (lg->row_parent[i] || lg->row_step[i] > 0)
            return 1;
    return 0;
}

static void
ope_reqs_push(ope_reqs_t *q, double w, double r, double c, size_t first)
{
    size_t k = q->n++;
    q->w[k] = w;
    q->r[k] = r;
    q->c[k] = c;
    q->first[k] = first;
}

/* Walks request i's chain: its sample into q when every step has an
 * outcome and a propensity > 0 (the rows that do not are counted in
 * out). Returns 1 when the request is used. */
static int
ope_req_walk(const olog_t *lg, const ope_ctx_t *cx, const size_t *next,
             size_t i, ope_reqs_t *q, ope_result_t *out)
{
    double w = 1, c = 0;
    size_t last = i, steps = 0, no_cost = 0;
    int ok = 1;
    for (size_t j = i; j != OPE_NONE; j = next[j]) {
        double p = lg->prop[j];
        if (!isfinite(lg->reward[j])) {
            out->n_no_reward++;
            ok = 0;
        } else if (isnan(p)) {
            out->n_no_prop++;
            ok = 0;
        } else if (!(p > 0)) {
            out->n_zero_prop++;
            ok = 0;
        }
        if (ok) {
            w *= ope_ctx_prob(lg, cx, j) / p;
            no_cost += !isfinite(lg->cost[j]);
            c += isfinite(lg->cost[j]) ? lg->cost[j] : 0.0;
            if (p < out->p_min)
                out->p_min = p;
        }
        last = j;
        steps++;
    }
    if (!ok)
        return 0;
    ope_reqs_push(q, w, lg->reward[last], c, i);
    q->steps += steps;
    out->n_no_cost += no_cost;
    return 1;
}

/* The requests of the log into q; the rows and requests left out are
 * counted in out. */
static void
ope_reqs_collect(const olog_t *lg, const ope_ctx_t *cx, ope_reqs_t *q,
                 ope_result_t *out)
{
    size_t n = lg->n_rows;
    size_t *root = bursar_malloc((n + 1) * sizeof(size_t));
    size_t *next = bursar_malloc((n + 1) * sizeof(size_t));
    unsigned char *branch = bursar_malloc(n + 1);
    memset(q, 0, sizeof *q);
    q->w = bursar_malloc((n + 1) * sizeof(double));
    q->r = bursar_malloc((n + 1) * sizeof(double));
    q->c = bursar_malloc((n + 1) * sizeof(double));
    q->first = bursar_malloc((n + 1) * sizeof(size_t));
    out->p_min = INFINITY;
    ope_chains(lg, root, next, branch);
    for (size_t i = 0; i < n; i++) {
        if (root[i] == OPE_NONE)
            out->n_orphan++;
        else if (root[i] == i && branch[i])
            out->n_branch++;
        else if (root[i] == i && !ope_req_walk(lg, cx, next, i, q, out))
            out->n_incomplete++;
    }
    free(root);
    free(next);
    free(branch);
}

static void
ope_reqs_free(ope_reqs_t *q)
{
    free(q->w);
    free(q->r);
    free(q->c);
    free(q->first);
}

/* IPS and SNIPS of quality and cost over the requests, or over a
 * resample of them when rng is not NULL: v = {ips q, snips q, ips c,
 * snips c}. */
static void
ope_req_estimate(const ope_reqs_t *q, gsl_rng *rng, double v[4])
{
    double sw = 0, swr = 0, swc = 0, n = (double)q->n;
    for (size_t i = 0; i < q->n; i++) {
        size_t k = rng ? gsl_rng_uniform_int(rng, q->n) : i;
        sw += q->w[k];
        swr += q->w[k] * q->r[k];
        swc += q->w[k] * q->c[k];
    }
    v[0] = swr / n;
    v[1] = sw > 0 ? swr / sw : NAN;
    v[2] = swc / n;
    v[3] = sw > 0 ? swc / sw : NAN;
}

/* Point estimates, ESS, the largest weight's share and the bootstrap
 * intervals (resampling requests) of IPS and SNIPS. */
static void
ope_req_results(const olog_t *lg, const ope_reqs_t *q, const ope_config_t *cfg,
                int has_cost, ope_result_t *out)
{
    double v[4], sw = 0, sw2 = 0, maxw = 0;
    size_t maxi = 0;
    for (size_t i = 0; i < q->n; i++) {
        sw += q->w[i];
        if (q->w[i] > maxw) {
            maxw = q->w[i];
            maxi = i;
        }
    }
    for (size_t i = 0; maxw > 0 && i < q->n; i++)
        sw2 += (q->w[i] / maxw) * (q->w[i] / maxw);
    double ess = sw2 > 0 ? (sw / maxw) * (sw / maxw) / sw2 : 0;
    out->max_share = sw > 0 ? maxw / sw : 0;
    out->max_share_line = q->n ? lg->line[q->first[maxi]] : 0;
    ope_req_estimate(q, NULL, v);
    size_t B = cfg->boot;
    double *bv = bursar_malloc((4 * B + 1) * sizeof(double));
    gsl_rng *rng = ope_rng_new(cfg->seed * 7919u + 17u);
    for (size_t j = 0; j < B; j++) {
        double x[4];
        ope_req_estimate(q, rng, x);
        for (int k = 0; k < 4; k++)
            bv[(size_t)k * B + j] = x[k];
    }
    gsl_rng_free(rng);
    for (int k = 0; k < OPE_N; k++)
        out->est[k].q = out->est[k].q_lo = out->est[k].q_hi = out->est[k].c =
            out->est[k].c_lo = out->est[k].c_hi = NAN;
    for (int m = 0; m < 2; m++) {
        ope_est_t *es = &out->est[m ? OPE_SNIPS : OPE_IPS];
        es->valid = 1;
        es->ess = ess;
        es->q = v[m];
        es->c = has_cost ? v[2 + m] : NAN;
        if (B)
            ope_interval(bv + (size_t)m * B, B, &es->q_lo, &es->q_hi);
        if (B && has_cost)
            ope_interval(bv + (size_t)(2 + m) * B, B, &es->c_lo, &es->c_hi);
    }
    free(bv);
}

/* The warnings of a per-request evaluation. */
static void
ope_warn_requests(const olog_t *lg, const ope_target_t *t, const ope_reqs_t *q,
                  const ope_config_t *cfg, ope_result_t *out)
{
    if (out->n_orphan)
        ope_warn(out,
                 "%zu rows escalate a decision the log does not hold (an "
                 "export that starts mid-cascade?): left out",
                 out->n_orphan);
    if (out->n_branch)
        ope_warn(out,
                 "%zu requests with a decision escalated twice (a retried "
                 "choose?): left out",
                 out->n_branch);
    if (out->n_incomplete)
        ope_warn(out,
                 "%zu requests with a step without an outcome or a "
                 "propensity > 0: left out",
                 out->n_incomplete);
    if (!q->n)
        return;
    if (out->max_share > cfg->dominate_share)
        ope_warn(out,
                 "%s: one request dominates: the one starting at line %ld "
                 "holds %.1f%% of the total weight; IPS and SNIPS rest on a "
                 "few requests",
                 t->name, out->max_share_line, 100 * out->max_share);
    double ess = out->est[OPE_IPS].ess;
    if (ess < 0.1 * (double)q->n)
        ope_warn(out,
                 "%s: effective sample size %.1f is %.1f%% of the %zu "
                 "requests (smallest propensity %.3g)",
                 t->name, ess, 100 * ess / (double)q->n, q->n, out->p_min);
    (void)lg;
}

/* The per-request evaluation of a log with cascades (IPS and SNIPS; the
 * per-decision estimators are n/a). */
static int
ope_eval_requests(const olog_t *lg, const ope_target_t *t,
                  const ope_config_t *cfg, int use_sets, ope_result_t *out,
                  serr_t *e)
{
    out->per_request = 1;
    ope_ctx_t cx;
    ope_reqs_t q;
    ope_ctx_build(lg, t, cfg, use_sets, &cx, out);
    ope_reqs_collect(lg, &cx, &q, out);
    out->n_used = out->n_steps = q.steps;
    out->n_requests = q.n;
    out->set_rows = cx.set_rows;
    int has_cost = out->n_no_cost < q.steps, rc = 0;
    ope_warn_rows(out, has_cost);
    if (!q.n) {
        out->p_min = NAN;
        rc = serr_set(e, SERR_EMPTY,
                      "no request with an outcome and a propensity > 0 at "
                      "every step");
    } else if (t->learning) {
        ope_warn(out,
                 "%s: a learning policy on a log with cascades: not "
                 "evaluated (replay is per decision; --per-decision gives "
                 "it, biased by the escalations)",
                 t->name);
    } else {
        ope_req_results(lg, &q, cfg, has_cost, out);
        ope_warn_requests(lg, t, &q, cfg, out);
    }
    ope_reqs_free(&q);
    ope_ctx_free(&cx);
    return rc;
}

int
ope_evaluate(const olog_t *lg, const ope_target_t *t, const ope_config_t *cfg,
             ope_result_t *out, serr_t *e)
{
    memset(out, 0, sizeof *out);
    size_t nb = lg->n_buckets, na = lg->n_actions, maxi;
    out->n_rows = lg->n_rows;
    int use_sets = !cfg->per_decision && lg->n_off_ids > 0;
    if (!cfg->per_decision && ope_has_cascades(lg))
        return ope_eval_requests(lg, t, cfg, use_sets, out, e);
    ope_rows_t u;
    ope_ctx_t cx;
    memset(&cx, 0, sizeof cx);
    double p_min = ope_rows_collect(lg, &u, out);
    out->n_used = out->n_steps = out->n_requests = u.n;
    out->p_min = p_min;
    int has_cost = out->n_no_cost < u.n, rc = 0;
    ope_warn_rows(out, has_cost);
    if (!u.n)
        rc = serr_set(e, SERR_EMPTY,
                      "no row with both an outcome and a propensity > 0");
    if (!rc)
        rc = ope_weigh(lg, t, cfg, use_sets, &u, p_min, &cx, out, e);
    out->set_rows = cx.set_rows;
    if (!rc) {
        /* a learning target has no distribution: its DM and DR are not
         * reported, and a zero one keeps their sums defined */
        ope_point(lg, t, &u, &cx, has_cost, out, &maxi);
        if (!t->learning)
            ope_warn_weights(lg, t, &u, maxi, p_min, cfg, out);
        ope_warn_replay(t, u.n, p_min, out);
        ope_bootstrap(&u, &cx, nb, na, cfg, has_cost, out);
    }
    if (!rc && t->learning)
        for (int k = 0; k < OPE_N; k++)
            if (k != OPE_REPLAY)
                out->est[k].q_lo = out->est[k].q_hi = out->est[k].c_lo =
                    out->est[k].c_hi = NAN;
    ope_ctx_free(&cx);
    ope_rows_free(&u);
    return rc;
}
