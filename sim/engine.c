/*
 * engine.c - the simulator's controller (see engine.h).
 *
 * Every line that decides is a call into policies/; this file keeps the
 * books exactly as controller/ctl.c does, in the same order.
 */
#include "sim/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "policies/base.h"

typedef struct engine_bucket {
    policy_bucket_t *pb;
    latency_ring_t *lat; /* per arm */
    double slo_ms;
    int has_budget;
    pacer_t pacer;
} engine_bucket_t;

struct engine {
    policy_t policy;
    allow_params_t allow;
    pacer_t pacer;
    gsl_rng *rng;
    size_t n_models, n_buckets;
    engine_bucket_t *b;
    health_t *health; /* per model */
    uint64_t seq;     /* last decision id */
    double ttl;       /* decision_ttl_s, or <= 0 */
    int expiry_failure, expiry_cost_zero;
    engine_decision_t **pending; /* decisions that may expire, by id */
    size_t n_pending, cap_pending, pending_head;
    int no_propensity;
    unsigned char *mask; /* scratch, max arms */
    allow_arm_t *arms;   /* scratch */
};

static void
engine_bucket_init(engine_bucket_t *eb, const engine_bucket_def_t *def,
                   const engine_config_t *cfg)
{
    eb->pb = policy_bucket_new(def->n_arms, def->half_life_s, cfg->t0);
    if (!eb->pb)
        abort(); /* n_arms >= 1 is the caller's contract */
    for (size_t k = 0; k < def->n_arms; k++) {
        const engine_arm_def_t *a = &def->arms[k];
        arm_init(&eb->pb->arms[k], a->alpha0, a->beta0, a->cost_prior,
                 a->cost_prior_w);
        eb->pb->model[k] = a->model;
    }
    if (def->static_p) {
        eb->pb->static_p = bursar_calloc(def->n_arms, sizeof(double));
        memcpy(eb->pb->static_p, def->static_p, def->n_arms * sizeof(double));
    }
    policy_bucket_touch(eb->pb);
    eb->lat = bursar_calloc(def->n_arms, sizeof *eb->lat);
    eb->slo_ms = def->latency_slo_ms;
    if (def->budget_usd > 0) {
        eb->has_budget = 1;
        pacer_init(&eb->pacer, def->budget_usd, def->budget_window_s,
                   cfg->prior_rate, cfg->t0);
    }
}

engine_t *
engine_new(const engine_config_t *cfg)
{
    engine_t *e = bursar_calloc(1, sizeof *e);
    policy_init(&e->policy, &cfg->params);
    e->allow = cfg->allow;
    pacer_init(&e->pacer, cfg->budget_usd, cfg->window_s, cfg->prior_rate,
               cfg->t0);
    e->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!e->rng)
        abort();
    gsl_rng_set(e->rng, cfg->seed);
    e->n_models = cfg->n_models;
    e->n_buckets = cfg->n_buckets;
    e->no_propensity = cfg->no_propensity;
    e->ttl = cfg->decision_ttl_s;
    e->expiry_failure = cfg->expiry_failure;
    e->expiry_cost_zero = cfg->expiry_cost_zero;
    e->health = bursar_calloc(cfg->n_models, sizeof *e->health);
    e->b = bursar_calloc(cfg->n_buckets, sizeof *e->b);
    size_t max_arms = 1;
    for (size_t i = 0; i < cfg->n_buckets; i++) {
        engine_bucket_init(&e->b[i], &cfg->buckets[i], cfg);
        if (cfg->buckets[i].n_arms > max_arms)
            max_arms = cfg->buckets[i].n_arms;
    }
    e->mask = bursar_calloc(max_arms, 1);
    e->arms = bursar_calloc(max_arms, sizeof *e->arms);
    return e;
}

void
engine_destroy(engine_t **ep)
{
    if (!ep || !*ep)
        return;
    engine_t *e = *ep;
    for (size_t i = 0; i < e->n_buckets; i++) {
        policy_bucket_destroy(&e->b[i].pb);
        free(e->b[i].lat);
    }
    free(e->b);
    free(e->health);
    free(e->mask);
    free(e->arms);
    free(e->pending);
    gsl_rng_free(e->rng);
    free(e);
    *ep = NULL;
}

static void engine_settle(engine_t *e, engine_decision_t *d, double cost,
                          double now);

/* ctl_expire: one decision without an outcome past its ttl. */
static void
engine_expire(engine_t *e, engine_decision_t *d, double now)
{
    d->flags |= ENGINE_D_EXPIRED;
    if (e->expiry_failure || (d->flags & ENGINE_D_CORRECTION)) {
        /* a correction without an outcome: an answer was given and was
         * wrong */
        d->reward_applied = 0.0;
        d->flags |= ENGINE_D_APPLIED;
        policy_reward(e->b[d->bucket].pb, d->arm, 0.0, now);
    }
    engine_settle(e, d, e->expiry_cost_zero ? 0.0 : d->reserved_usd, now);
    health_expired(&e->health[d->model], d->id);
}

void
engine_sweep(engine_t *e, double now)
{
    while (e->pending_head < e->n_pending) {
        engine_decision_t *d = e->pending[e->pending_head];
        if (!(d->flags & (ENGINE_D_OUTCOME | ENGINE_D_EXPIRED))) {
            if (d->t + e->ttl > now)
                break; /* ids grow with time: the rest are younger */
            engine_expire(e, d, now);
        }
        e->pending_head++;
    }
    if (e->pending_head > 1024 && e->pending_head * 2 > e->n_pending) {
        e->n_pending -= e->pending_head;
        memmove(e->pending, e->pending + e->pending_head,
                e->n_pending * sizeof *e->pending);
        e->pending_head = 0;
    }
}

static void
engine_track(engine_t *e, engine_decision_t *d)
{
    if (e->ttl <= 0)
        return;
    if (e->n_pending == e->cap_pending) {
        e->cap_pending = e->cap_pending ? 2 * e->cap_pending : 256;
        e->pending =
            bursar_realloc(e->pending, e->cap_pending * sizeof *e->pending);
    }
    e->pending[e->n_pending++] = d;
}

/* Sweeps, then says whether feedback on d is refused (it has expired). */
static int
engine_expired(engine_t *e, engine_decision_t *d, double now)
{
    if (e->ttl > 0)
        engine_sweep(e, now);
    return !!(d->flags & ENGINE_D_EXPIRED);
}

int
engine_choose(engine_t *e, size_t bucket, const unsigned char *exclude,
              double now, engine_decision_t *d, int *order, size_t *n_order,
              allow_counts_t *counts)
{
    if (e->ttl > 0)
        engine_sweep(e, now);
    engine_bucket_t *eb = &e->b[bucket];
    size_t n = eb->pb->n_arms;
    for (size_t k = 0; k < n; k++) {
        e->arms[k].excluded = exclude ? exclude[k] : 0;
        e->arms[k].health = &e->health[eb->pb->model[k]];
        e->arms[k].lat = &eb->lat[k];
    }
    memset(d, 0, sizeof *d);
    d->arm = -1;
    d->model = -1;
    if (allow_mask(n, e->arms, &e->allow, eb->slo_ms, now, e->mask, counts) ==
        0)
        return BURSAR_EPOLICY;
    policy_request_t req;
    allow_request(&req, e->mask, &e->pacer, eb->has_budget ? &eb->pacer : NULL,
                  now);
    req.no_propensity = e->no_propensity;
    size_t no = 0;
    if (policy_choose(&e->policy, eb->pb, &req, e->rng, &d->choice, order,
                      n_order ? n_order : &no) != 0 ||
        d->choice.arm < 0)
        return BURSAR_EPOLICY;
    d->id = ++e->seq;
    d->bucket = bucket;
    d->arm = d->served = d->choice.arm;
    d->model = d->choice.model;
    d->t = now;
    d->reserved_usd = d->choice.expected_cost > 0 ? d->choice.expected_cost : 0;
    if (health_chosen(&e->health[d->model], d->id, now))
        d->flags |= ENGINE_D_PROBE;
    pacer_reserve(&e->pacer, d->reserved_usd, now);
    if (eb->has_budget)
        pacer_reserve(&eb->pacer, d->reserved_usd, now);
    engine_track(e, d);
    return 0;
}

/* Releases d's reservation, booking cost (ctl_settle). */
static void
engine_settle(engine_t *e, engine_decision_t *d, double cost, double now)
{
    if (d->flags & ENGINE_D_SETTLED)
        return;
    pacer_roll(&e->pacer, now);
    pacer_settle(&e->pacer, d->reserved_usd, cost);
    engine_bucket_t *eb = &e->b[d->bucket];
    if (eb->has_budget) {
        pacer_roll(&eb->pacer, now);
        pacer_settle(&eb->pacer, d->reserved_usd, cost);
    }
    d->flags |= ENGINE_D_SETTLED;
}

int
engine_outcome(engine_t *e, engine_decision_t *d, int served, double reward,
               double cost, double latency_ms, double now)
{
    if (engine_expired(e, d, now))
        return ENGINE_EXPIRED;
    if (d->flags & ENGINE_D_OUTCOME)
        return 0;
    engine_bucket_t *eb = &e->b[d->bucket];
    int a = served >= 0 ? served : d->arm;
    d->reward_applied = (d->flags & ENGINE_D_CORRECTION) ? 0.0 : reward;
    d->t_outcome = now;
    d->served = a;
    d->flags |= ENGINE_D_OUTCOME | ENGINE_D_APPLIED;
    policy_reward(eb->pb, a, d->reward_applied, now);
    int has_cost = cost >= 0; /* NAN compares false */
    if (has_cost)
        policy_cost(eb->pb, a, cost, now);
    if (!isnan(latency_ms))
        latency_add(&eb->lat[a], now, latency_ms);
    engine_settle(e, d, has_cost ? cost : d->reserved_usd, now);
    health_success(&e->health[eb->pb->model[a]], d->id, d->t);
    return 0;
}

int
engine_correction(engine_t *e, engine_decision_t *d, double now)
{
    if (engine_expired(e, d, now))
        return ENGINE_EXPIRED;
    if (d->flags & ENGINE_D_CORRECTION)
        return 0;
    d->flags |= ENGINE_D_CORRECTION;
    if ((d->flags & ENGINE_D_APPLIED) && d->reward_applied != 0.0) {
        policy_amend(e->b[d->bucket].pb, d->served, d->reward_applied, 0.0,
                     d->t_outcome, now);
        d->reward_applied = 0.0;
    }
    return 0;
}

int
engine_provider_error(engine_t *e, engine_decision_t *d, double now)
{
    if (engine_expired(e, d, now))
        return ENGINE_EXPIRED;
    if (d->flags & ENGINE_D_PROVERR)
        return 0;
    d->flags |= ENGINE_D_PROVERR;
    health_failure(&e->health[d->model], &e->allow.health, d->id, now);
    return 0;
}

const policy_t *
engine_policy(const engine_t *e)
{
    return &e->policy;
}

const pacer_t *
engine_pacer(const engine_t *e)
{
    return &e->pacer;
}

const policy_bucket_t *
engine_bucket(const engine_t *e, size_t bucket)
{
    return e->b[bucket].pb;
}
