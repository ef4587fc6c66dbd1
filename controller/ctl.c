/*
 * ctl.c - the controller's core.
 *
 * In-memory state mirrors the store: buckets (a policy_bucket_t each, plus
 * the latency rings), the global and per-bucket pacers, the policy's shadow
 * price, per-model health, and the decision sequence. Requests change
 * memory and write decisions straight into the batch's transaction; the
 * other state is marked dirty and written once per batch in ctl_commit
 * (a bucket's arms are written once however many decisions it served).
 *
 * Nothing here computes a routing decision: policy_choose does, from the
 * allowed mask and the paced targets built below.
 */
#define _POSIX_C_SOURCE 200809L
#include "ctl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

#include "allow.h"
#include "pacer.h"
#include "policy.h"
#include "proto.h"
#include "store.h"
#include "util.h"

typedef struct ctl_bucket {
    cfg_bucket_t def;    /* from the configuration or the template */
    int dynamic;         /* created from the template */
    policy_bucket_t *pb; /* arms; pb->model[i] = cfg model index */
    latency_ring_t *lat; /* per arm: recent latencies */
    int has_budget;
    pacer_t pacer; /* the bucket's own cap, if has_budget */
    int dirty;     /* arms or pacer to write */
} ctl_bucket_t;

struct ctl {
    cfg_t *cfg;
    store_t *store;
    MDB_txn *txn;   /* the batch's transaction, or NULL */
    int txn_failed; /* a write failed inside the batch */
    int test_clock;
    double clock_start; /* fixed test clock origin, or 0 */
    double clock_offset;

    policy_t policy;
    pacer_t pacer;
    uint64_t seq; /* last decision id */
    gsl_rng *rng;

    size_t n_buckets, cap_buckets;
    ctl_bucket_t **buckets;
    size_t ht_cap; /* power of two */
    int *ht;       /* bucket index + 1, 0 = empty */

    health_t *health;     /* per cfg model: its circuit breaker */
    allow_params_t allow; /* health and latency parameters (cfg) */
    unsigned char *health_dirty;

    int meta_dirty; /* seq, policy, pacer, clock */
    size_t *dirty;  /* indexes of dirty buckets */
    size_t n_dirty;
    double next_prune;

    proto_request_t request; /* the request being handled */
    /* scratch, CFG_MAX_ARMS entries */
    unsigned char mask[CFG_MAX_ARMS];
    int order[CFG_MAX_ARMS];
    double probs[CFG_MAX_ARMS];
};

/* ------------------------------------------------------------------ */
/* Clock and small helpers                                             */

double
ctl_now(const ctl_t *c)
{
    return (c->clock_start > 0 ? c->clock_start : util_wall_time()) +
           c->clock_offset;
}

const cfg_t *
ctl_cfg(const ctl_t *c)
{
    return c->cfg;
}

unsigned long long
ctl_decisions(const ctl_t *c)
{
    return (unsigned long long)c->seq;
}

static uint64_t
ctl_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void
ctl_ht_insert(ctl_t *c, size_t idx)
{
    size_t m = c->ht_cap - 1;
    size_t i = ctl_hash(c->buckets[idx]->def.name) & m;
    while (c->ht[i])
        i = (i + 1) & m;
    c->ht[i] = (int)idx + 1;
}

static void
ctl_ht_rebuild(ctl_t *c)
{
    size_t cap = 16;
    while (cap < 2 * c->n_buckets + 2)
        cap *= 2;
    free(c->ht);
    c->ht = bursar_calloc(cap, sizeof *c->ht);
    c->ht_cap = cap;
    for (size_t i = 0; i < c->n_buckets; i++)
        ctl_ht_insert(c, i);
}

static ctl_bucket_t *
ctl_bucket_lookup(const ctl_t *c, const char *name, size_t *idx)
{
    if (!c->ht_cap)
        return NULL;
    size_t m = c->ht_cap - 1;
    for (size_t i = ctl_hash(name) & m; c->ht[i]; i = (i + 1) & m) {
        ctl_bucket_t *b = c->buckets[c->ht[i] - 1];
        if (strcmp(b->def.name, name) == 0) {
            if (idx)
                *idx = (size_t)(c->ht[i] - 1);
            return b;
        }
    }
    return NULL;
}

static const char *
ctl_model_name(const ctl_t *c, int model)
{
    return c->cfg->models[model].name;
}

static void
ctl_mark_dirty(ctl_t *c, size_t idx)
{
    ctl_bucket_t *b = c->buckets[idx];
    if (b->dirty)
        return;
    b->dirty = 1;
    c->dirty[c->n_dirty++] = idx;
}

/* Records a failed write: the batch will not commit. */
static void
ctl_store_rc(ctl_t *c, int rc, const char *what)
{
    if (rc && rc != STORE_NOTFOUND) {
        if (!c->txn_failed)
            fprintf(stderr, "bursard: store: %s: %s\n", what,
                    store_strerror(rc));
        c->txn_failed = rc;
    }
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static void
ctl_bucket_free(ctl_bucket_t *b)
{
    if (!b)
        return;
    policy_bucket_destroy(&b->pb);
    free(b->lat);
    free(b);
}

static void
ctl_free_buckets(ctl_t *c)
{
    for (size_t i = 0; i < c->n_buckets; i++)
        ctl_bucket_free(c->buckets[i]);
    c->n_buckets = 0;
    c->n_dirty = 0;
    if (c->ht)
        memset(c->ht, 0, c->ht_cap * sizeof *c->ht);
}

/* ------------------------------------------------------------------ */
/* Records: memory <-> store                                           */
/*
 * The store keeps its own record layouts (store.h, versioned); memory
 * holds what policies/ works on. These copy between the two.
 */

static void
ctl_ring_load(latency_ring_t *r, const store_arm_t *rec)
{
    memset(r, 0, sizeof *r);
    r->n = rec->lat_n < LATENCY_RING ? rec->lat_n : LATENCY_RING;
    r->head = rec->lat_head % LATENCY_RING;
    for (unsigned k = 0; k < LATENCY_RING && k < STORE_LAT_RING; k++) {
        r->t[k] = rec->lat_t[k];
        r->ms[k] = rec->lat_ms[k];
    }
}

static void
ctl_arm_record(store_arm_t *rec, const ctl_bucket_t *b, size_t i)
{
    memset(rec, 0, sizeof *rec);
    rec->version = STORE_VERSION;
    rec->arm = b->pb->arms[i];
    rec->t_last = b->pb->t_last;
    const latency_ring_t *r = &b->lat[i];
    rec->lat_n = r->n;
    rec->lat_head = r->head;
    for (unsigned k = 0; k < LATENCY_RING && k < STORE_LAT_RING; k++) {
        rec->lat_t[k] = r->t[k];
        rec->lat_ms[k] = r->ms[k];
    }
}

static void
ctl_health_load(health_t *h, const store_health_t *sh)
{
    h->failures = sh->failures;
    h->level = sh->level;
    h->cooling = sh->cooling;
    h->until = sh->until;
    h->probe = sh->probe;
    h->probe_t = sh->probe_t;
    h->errors_total = sh->errors_total;
}

static void
ctl_health_record(store_health_t *sh, const health_t *h)
{
    memset(sh, 0, sizeof *sh);
    sh->version = STORE_VERSION;
    sh->failures = h->failures;
    sh->level = h->level;
    sh->cooling = h->cooling;
    sh->until = h->until;
    sh->probe = h->probe;
    sh->probe_t = h->probe_t;
    sh->errors_total = h->errors_total;
}

static const char *
ctl_health_name(const ctl_t *c, int m, double now)
{
    return health_state_name(
        health_state(&c->health[m], &c->allow.health, now));
}

/* The parameters of the allowed set, from the configuration. */
static void
ctl_allow_params(const cfg_t *cfg, allow_params_t *ap)
{
    ap->health.failures = cfg->health_failures;
    ap->health.cooldown_s = cfg->health_cooldown_s;
    ap->health.max_cooldown_s = cfg->health_max_cooldown_s;
    ap->latency.quantile = cfg->latency_quantile;
    ap->latency.window_s = cfg->latency_window_s;
    ap->latency.min_samples = cfg->latency_min_samples;
}

/* Builds a bucket from its definition and what the store holds. An arm
 * found in the store keeps its evidence; if its prior changed in the
 * configuration the evidence is moved onto the new prior (alpha - alpha0
 * is kept). An arm not found starts from its prior, with the price table
 * times the expected tokens as its cost prior. */
static ctl_bucket_t *
ctl_bucket_build(ctl_t *c, MDB_txn *txn, const cfg_bucket_t *def, int dynamic,
                 double now)
{
    ctl_bucket_t *b = bursar_calloc(1, sizeof *b);
    b->def = *def;
    b->dynamic = dynamic;
    b->pb = policy_bucket_new(def->n_models, def->half_life_s, now);
    b->lat = bursar_calloc(def->n_models, sizeof *b->lat);
    double t_last = -INFINITY;
    for (size_t i = 0; i < def->n_models; i++) {
        int m = def->models[i];
        const cfg_model_t *cm = &c->cfg->models[m];
        double cost_prior = cfg_model_cost(cm, def->expected_tokens_in,
                                           def->expected_tokens_out);
        b->pb->model[i] = m;
        store_arm_t rec;
        int rc = store_get_arm(c->store, txn, def->name, cm->name, &rec);
        if (rc == 0) {
            arm_t a = rec.arm;
            a.alpha = def->prior_alpha + (a.alpha - a.alpha0);
            a.beta = def->prior_beta + (a.beta - a.beta0);
            a.alpha0 = def->prior_alpha;
            a.beta0 = def->prior_beta;
            a.cost_prior = cost_prior;
            b->pb->arms[i] = a;
            ctl_ring_load(&b->lat[i], &rec);
            if (rec.t_last > t_last)
                t_last = rec.t_last;
        } else {
            if (rc != STORE_NOTFOUND)
                fprintf(stderr,
                        "bursard: store: arm %s/%s unreadable (%s): "
                        "starting from the prior\n",
                        def->name, cm->name, store_strerror(rc));
            arm_init(&b->pb->arms[i], def->prior_alpha, def->prior_beta,
                     cost_prior, 1.0);
        }
    }
    if (isfinite(t_last))
        b->pb->t_last = t_last;
    if (def->has_budget) {
        b->has_budget = 1;
        store_pacer_t sp;
        if (store_get_bucket_pacer(c->store, txn, def->name, &sp) == 0) {
            b->pacer = sp.pacer;
            b->pacer.limit_usd = def->budget.limit_usd;
            if (b->pacer.window_s != def->budget.window_s) {
                b->pacer.window_s = def->budget.window_s;
                b->pacer.window_start = pacer_window_of(&b->pacer, now);
            }
        } else {
            pacer_init(&b->pacer, def->budget.limit_usd, def->budget.window_s,
                       c->cfg->budget_prior_rate, now);
        }
    }
    policy_bucket_touch(b->pb);
    return b;
}

static void
ctl_add_bucket(ctl_t *c, ctl_bucket_t *b)
{
    if (c->n_buckets == c->cap_buckets) {
        c->cap_buckets = c->cap_buckets ? 2 * c->cap_buckets : 16;
        c->buckets =
            bursar_realloc(c->buckets, c->cap_buckets * sizeof *c->buckets);
        c->dirty = bursar_realloc(c->dirty, c->cap_buckets * sizeof *c->dirty);
    }
    c->buckets[c->n_buckets++] = b;
    if (2 * c->n_buckets + 2 > c->ht_cap)
        ctl_ht_rebuild(c);
    else
        ctl_ht_insert(c, c->n_buckets - 1);
}

typedef struct ctl_dyn_ctx {
    ctl_t *c;
    MDB_txn *txn;
    double now;
} ctl_dyn_ctx_t;

static void
ctl_load_dynbucket(const char *name, void *ctx)
{
    ctl_dyn_ctx_t *d = ctx;
    ctl_t *c = d->c;
    if (ctl_bucket_lookup(c, name, NULL))
        return; /* now configured */
    if (c->cfg->unknown_action != CFG_UNKNOWN_CREATE ||
        c->n_buckets >= c->cfg->max_buckets)
        return; /* kept in the store, not served */
    cfg_bucket_t def = c->cfg->bucket_template;
    snprintf(def.name, sizeof def.name, "%s", name);
    ctl_add_bucket(c, ctl_bucket_build(c, d->txn, &def, 1, d->now));
}

static int
ctl_policy_params(const cfg_t *cfg, policy_params_t *pp)
{
    policy_params_default(pp);
    const char *fixed = NULL;
    if (policy_kind_parse(cfg->policy_name, &pp->kind, &fixed) != 0)
        return -1;
    if (fixed) {
        pp->fixed_model = cfg_model_find(cfg, fixed);
        if (pp->fixed_model < 0)
            return -1;
    }
    pp->explore_floor = cfg->explore_floor;
    pp->dual_step = cfg->dual_step;
    return 0;
}

/* (Re)loads all in-memory state from the store under c->cfg. */
static int
ctl_load(ctl_t *c)
{
    double now;
    MDB_txn *txn;
    int rc = store_begin(c->store, 1, &txn);
    if (rc)
        return rc;
    ctl_free_buckets(c);

    if (c->test_clock)
        store_get_meta(c->store, txn, "clock", &c->clock_offset,
                       sizeof c->clock_offset);
    now = ctl_now(c);
    c->seq = 0;
    store_get_meta(c->store, txn, "seq", &c->seq, sizeof c->seq);

    policy_params_t pp;
    ctl_policy_params(c->cfg, &pp);
    policy_init(&c->policy, &pp);
    store_policy_t sp;
    if (store_get_meta(c->store, txn, "policy", &sp, sizeof sp) == 0 &&
        sp.version == STORE_VERSION) {
        c->policy.mu = sp.mu;
        c->policy.decisions = sp.decisions;
    }

    const cfg_budget_t *bud = &c->cfg->budget;
    store_pacer_t spc;
    if (store_get_meta(c->store, txn, "pacer", &spc, sizeof spc) == 0 &&
        spc.version == STORE_VERSION) {
        c->pacer = spc.pacer;
        c->pacer.limit_usd = bud->limit_usd;
        c->pacer.prior_rate = c->cfg->budget_prior_rate;
        if (c->pacer.window_s != bud->window_s) {
            c->pacer.window_s = bud->window_s;
            c->pacer.window_start = pacer_window_of(&c->pacer, now);
        }
    } else {
        pacer_init(&c->pacer, bud->limit_usd, bud->window_s,
                   c->cfg->budget_prior_rate, now);
    }

    for (size_t i = 0; i < c->cfg->n_buckets; i++)
        ctl_add_bucket(c,
                       ctl_bucket_build(c, txn, &c->cfg->buckets[i], 0, now));
    ctl_dyn_ctx_t dc = {c, txn, now};
    rc = store_scan_dynbuckets(c->store, txn, ctl_load_dynbucket, &dc);

    ctl_allow_params(c->cfg, &c->allow);
    free(c->health);
    free(c->health_dirty);
    c->health = bursar_calloc(c->cfg->n_models, sizeof *c->health);
    c->health_dirty = bursar_calloc(c->cfg->n_models, 1);
    for (size_t m = 0; m < c->cfg->n_models; m++) {
        store_health_t sh;
        if (store_get_health(c->store, txn, c->cfg->models[m].name, &sh) == 0)
            ctl_health_load(&c->health[m], &sh);
    }
    store_abort(txn);
    c->meta_dirty = 0;
    c->next_prune = 0;
    return rc;
}

int
ctl_open(ctl_t **out, cfg_t *cfg, const ctl_options_t *opt, char *err,
         size_t err_len)
{
    *out = NULL;
    policy_params_t pp;
    if (ctl_policy_params(cfg, &pp) != 0) {
        snprintf(err, err_len, "unknown policy \"%s\"", cfg->policy_name);
        cfg_destroy(&cfg);
        return -1;
    }
    if (util_mkdirs(opt->state_dir) != 0) {
        snprintf(err, err_len, "cannot create state directory %s",
                 opt->state_dir);
        cfg_destroy(&cfg);
        return -1;
    }
    ctl_t *c = bursar_calloc(1, sizeof *c);
    c->cfg = cfg;
    c->test_clock = opt->test_clock;
    c->clock_start = opt->test_clock ? opt->clock_start : 0;
    int rc = store_open(&c->store, opt->state_dir, cfg->map_size_mb,
                        cfg->nometasync, 0);
    if (rc) {
        snprintf(err, err_len, "cannot open the store in %s: %s",
                 opt->state_dir, store_strerror(rc));
        goto fail;
    }
    c->rng = gsl_rng_alloc(gsl_rng_mt19937);
    unsigned long seed = cfg->seed;
    if (!seed)
        seed = (unsigned long)(util_wall_time() * 1e6) ^
               (unsigned long)util_mono_time();
    gsl_rng_set(c->rng, seed);
    if ((rc = ctl_load(c))) {
        snprintf(err, err_len, "cannot load the store: %s", store_strerror(rc));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ctl_destroy(&c);
    return -1;
}

void
ctl_destroy(ctl_t **cp)
{
    if (!cp || !*cp)
        return;
    ctl_t *c = *cp;
    if (c->txn)
        store_abort(c->txn);
    ctl_free_buckets(c);
    free(c->buckets);
    free(c->dirty);
    free(c->ht);
    free(c->health);
    free(c->health_dirty);
    store_destroy(&c->store);
    if (c->rng)
        gsl_rng_free(c->rng);
    cfg_destroy(&c->cfg);
    free(c);
    *cp = NULL;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */

int
ctl_begin(ctl_t *c)
{
    c->txn_failed = 0;
    return store_begin(c->store, 0, &c->txn);
}

static int
ctl_flush(ctl_t *c)
{
    int rc = 0;
    for (size_t k = 0; k < c->n_dirty && !rc; k++) {
        ctl_bucket_t *b = c->buckets[c->dirty[k]];
        for (size_t i = 0; i < b->pb->n_arms && !rc; i++) {
            store_arm_t rec;
            ctl_arm_record(&rec, b, i);
            rc = store_put_arm(c->store, c->txn, b->def.name,
                               ctl_model_name(c, b->pb->model[i]), &rec);
        }
        if (!rc && b->has_budget) {
            store_pacer_t sp = {.version = STORE_VERSION, .pacer = b->pacer};
            rc = store_put_bucket_pacer(c->store, c->txn, b->def.name, &sp);
        }
    }
    for (size_t m = 0; m < c->cfg->n_models && !rc; m++)
        if (c->health_dirty[m]) {
            store_health_t sh;
            ctl_health_record(&sh, &c->health[m]);
            rc =
                store_put_health(c->store, c->txn, c->cfg->models[m].name, &sh);
        }
    if (!rc && c->meta_dirty) {
        store_policy_t sp = {.version = STORE_VERSION,
                             .mu = c->policy.mu,
                             .decisions = c->policy.decisions};
        store_pacer_t spc = {.version = STORE_VERSION, .pacer = c->pacer};
        rc = store_put_meta(c->store, c->txn, "seq", &c->seq, sizeof c->seq);
        if (!rc)
            rc = store_put_meta(c->store, c->txn, "policy", &sp, sizeof sp);
        if (!rc)
            rc = store_put_meta(c->store, c->txn, "pacer", &spc, sizeof spc);
        if (!rc && c->test_clock)
            rc = store_put_meta(c->store, c->txn, "clock", &c->clock_offset,
                                sizeof c->clock_offset);
    }
    return rc;
}

static void
ctl_clear_dirty(ctl_t *c)
{
    for (size_t k = 0; k < c->n_dirty; k++)
        c->buckets[c->dirty[k]]->dirty = 0;
    c->n_dirty = 0;
    memset(c->health_dirty, 0, c->cfg->n_models);
    c->meta_dirty = 0;
}

int
ctl_commit(ctl_t *c)
{
    int rc = c->txn_failed;
    if (!rc)
        rc = ctl_flush(c);
    if (rc) {
        store_abort(c->txn);
    } else {
        rc = store_commit(c->txn);
    }
    c->txn = NULL;
    ctl_clear_dirty(c);
    if (rc) {
        fprintf(stderr,
                "bursard: commit failed (%s): reloading state from the "
                "store\n",
                store_strerror(rc));
        int lr = ctl_load(c);
        if (lr)
            fprintf(stderr, "bursard: reload failed: %s\n", store_strerror(lr));
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* The request to policies/                                            */

/* Fills c->mask for bucket b at now (allow_mask: exclusions, health,
 * latency); rq NULL: no exclusions. Returns the number of allowed arms. */
static size_t
ctl_build_mask(ctl_t *c, ctl_bucket_t *b, const proto_request_t *rq, double now,
               allow_counts_t *counts)
{
    allow_arm_t arms[CFG_MAX_ARMS];
    for (size_t i = 0; i < b->pb->n_arms; i++) {
        int m = b->pb->model[i];
        arms[i].excluded = 0;
        for (size_t k = 0; rq && k < rq->n_exclude; k++)
            if (strcmp(rq->exclude[k], ctl_model_name(c, m)) == 0)
                arms[i].excluded = 1;
        arms[i].health = &c->health[m];
        arms[i].lat = &b->lat[i];
    }
    return allow_mask(b->pb->n_arms, arms, &c->allow, b->def.latency_slo_ms,
                      now, c->mask, counts);
}

static void
ctl_build_request(ctl_t *c, ctl_bucket_t *b, double now, policy_request_t *req)
{
    allow_request(req, c->mask, &c->pacer, b->has_budget ? &b->pacer : NULL,
                  now);
}

/* ------------------------------------------------------------------ */
/* Ops                                                                 */

static char *ctl_error(const proto_request_t *rq, proto_code_t code,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *
ctl_error(const proto_request_t *rq, proto_code_t code, const char *fmt, ...)
{
    char msg[PROTO_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *r = proto_write_error(rq ? rq->echo : NULL, code, msg);
    if (!r)
        abort();
    return r;
}

/* Finds or creates (unknown_bucket.action = create) a bucket. */
static ctl_bucket_t *
ctl_bucket_get(ctl_t *c, const proto_request_t *rq, double now, size_t *idx,
               char **reply)
{
    ctl_bucket_t *b = ctl_bucket_lookup(c, rq->bucket, idx);
    if (b)
        return b;
    char q[96];
    proto_json_quote(q, sizeof q, rq->bucket);
    if (c->cfg->unknown_action != CFG_UNKNOWN_CREATE) {
        *reply = ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                           "unknown bucket %s in field \"bucket\"", q);
        return NULL;
    }
    if (c->n_buckets >= c->cfg->max_buckets) {
        *reply = ctl_error(rq, PROTO_E_BUCKET_LIMIT,
                           "unknown bucket %s in field \"bucket\": the limit "
                           "of %zu buckets is reached",
                           q, c->cfg->max_buckets);
        return NULL;
    }
    cfg_bucket_t def = c->cfg->bucket_template;
    snprintf(def.name, sizeof def.name, "%s", rq->bucket);
    b = ctl_bucket_build(c, c->txn, &def, 1, now);
    ctl_add_bucket(c, b);
    *idx = c->n_buckets - 1;
    ctl_store_rc(c, store_put_dynbucket(c->store, c->txn, def.name),
                 "put bucket");
    ctl_mark_dirty(c, *idx);
    return b;
}

static char *
ctl_op_choose(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    char *reply = NULL;
    size_t bi = 0;
    ctl_bucket_t *b = ctl_bucket_get(c, rq, now, &bi, &reply);
    if (!b)
        return reply;
    allow_counts_t ac;
    size_t allowed = ctl_build_mask(c, b, rq, now, &ac);
    if (allowed == 0)
        return ctl_error(rq, PROTO_E_NO_MODEL,
                         "no model of bucket \"%s\" can be chosen: %zu "
                         "excluded by field \"exclude\", %zu cooling down "
                         "after provider errors",
                         b->def.name, ac.excluded, ac.cooling);
    policy_request_t req;
    ctl_build_request(c, b, now, &req);
    policy_choice_t ch;
    size_t n_order = 0;
    if (policy_choose(&c->policy, b->pb, &req, c->rng, &ch, c->order,
                      &n_order) != 0 ||
        ch.arm < 0)
        return ctl_error(rq, PROTO_E_NO_MODEL,
                         "no model of bucket \"%s\" can be chosen",
                         b->def.name);

    store_decision_t d;
    memset(&d, 0, sizeof d);
    d.version = STORE_VERSION;
    d.id = c->seq + 1;
    d.t = now;
    d.propensity = ch.propensity;
    d.reserved_usd = ch.expected_cost > 0 ? ch.expected_cost : 0;
    snprintf(d.bucket, sizeof d.bucket, "%s", b->def.name);
    snprintf(d.model, sizeof d.model, "%s", ctl_model_name(c, ch.model));
    if (ch.flags & POLICY_F_EXPLORED)
        d.flags |= STORE_D_EXPLORED;
    if (ch.flags & POLICY_F_UNAFFORDABLE)
        d.flags |= STORE_D_OVER_BUDGET;
    if (b->has_budget)
        d.flags |= STORE_D_BUCKET_RES;
    /* a half-open breaker: this decision is its probe (memory is reloaded
     * if the batch does not commit) */
    if (health_chosen(&c->health[ch.model], d.id, now)) {
        d.flags |= STORE_D_PROBE;
        c->health_dirty[ch.model] = 1;
    }
    int rc = store_put_decision(c->store, c->txn, &d);
    if (!rc)
        rc = store_put_pending(c->store, c->txn, d.id, d.t);
    if (rc) {
        /* the batch will not commit; memory is reloaded after it */
        ctl_store_rc(c, rc, "put decision");
        return ctl_error(rq, PROTO_E_STORE, "cannot record the decision: %s",
                         store_strerror(rc));
    }
    c->seq = d.id;
    pacer_reserve(&c->pacer, d.reserved_usd);
    if (b->has_budget)
        pacer_reserve(&b->pacer, d.reserved_usd);
    ctl_mark_dirty(c, bi);
    c->meta_dirty = 1;

    /* Fallbacks: the rest of this decision's ranking. policy_choose ranks
     * only the arms of its mask (allowed, and affordable by the same
     * snapshot costs that made the choice; every allowed arm, cheapest
     * first, when nothing was affordable), so they are not checked again
     * here against live costs that could disagree with the mask. Nor is
     * the chosen arm's reservation subtracted: a fallback replaces the
     * chosen call, it is not made on top of it. */
    const char *fb[CFG_MAX_ARMS];
    size_t n_fb = 0;
    for (size_t k = 0; k < n_order && n_fb < CFG_MAX_ARMS; k++) {
        int a = c->order[k];
        if (a == ch.arm || a < 0 || (size_t)a >= b->pb->n_arms)
            continue;
        fb[n_fb++] = ctl_model_name(c, b->pb->model[a]);
    }
    proto_choice_t pc = {.decision = d.id,
                         .model = d.model,
                         .propensity = d.propensity,
                         .n_fallbacks = n_fb,
                         .fallbacks = fb,
                         .expected_cost_usd = d.reserved_usd,
                         .over_budget = !!(d.flags & STORE_D_OVER_BUDGET),
                         .explored = !!(d.flags & STORE_D_EXPLORED)};
    reply = proto_write_choice(rq->echo, &pc);
    if (!reply)
        abort();
    return reply;
}

/* The arm of a decision: bucket in memory and arm index, or -1 when the
 * bucket or the arm is no longer configured (then the store is updated
 * directly by ctl_arm_offline). */
static int
ctl_decision_arm(ctl_t *c, const char *bucket, const char *model,
                 ctl_bucket_t **bp, size_t *bi)
{
    *bp = ctl_bucket_lookup(c, bucket, bi);
    int m = cfg_model_find(c->cfg, model);
    if (!*bp || m < 0)
        return -1;
    return policy_bucket_find((*bp)->pb, m);
}

typedef enum { CTL_ARM_REWARD, CTL_ARM_AMEND, CTL_ARM_COST } ctl_arm_op_t;

/* Applies feedback to an arm that is not served any more, in the store. */
static void
ctl_arm_offline(ctl_t *c, const char *bucket, const char *model,
                ctl_arm_op_t op, double x, double y)
{
    store_arm_t rec;
    int rc = store_get_arm(c->store, c->txn, bucket, model, &rec);
    if (rc == STORE_NOTFOUND)
        return; /* never stored: nothing to count against */
    if (rc) {
        ctl_store_rc(c, rc, "get arm");
        return;
    }
    if (op == CTL_ARM_REWARD) {
        arm_reward(&rec.arm, x); /* counts rec.arm.rewards */
    } else if (op == CTL_ARM_AMEND) {
        arm_amend(&rec.arm, x, y, 1.0); /* not decayed: no bucket */
    } else {
        arm_cost(&rec.arm, x);
    }
    ctl_store_rc(c, store_put_arm(c->store, c->txn, bucket, model, &rec),
                 "put arm");
}

static void
ctl_apply_reward(ctl_t *c, const store_decision_t *d, const char *model,
                 double r, double now)
{
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_decision_arm(c, d->bucket, model, &b, &bi);
    if (a >= 0) {
        policy_reward(b->pb, a, r, now);
        ctl_mark_dirty(c, bi);
    } else {
        ctl_arm_offline(c, d->bucket, model, CTL_ARM_REWARD, r, 0);
    }
}

static void
ctl_apply_amend(ctl_t *c, const store_decision_t *d, const char *model,
                double old_r, double new_r, double now)
{
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_decision_arm(c, d->bucket, model, &b, &bi);
    if (a >= 0) {
        policy_amend(b->pb, a, old_r, new_r, d->t_outcome, now);
        ctl_mark_dirty(c, bi);
    } else {
        ctl_arm_offline(c, d->bucket, model, CTL_ARM_AMEND, old_r, new_r);
    }
}

/* Releases the decision's reservation, booking cost. */
static void
ctl_settle(ctl_t *c, store_decision_t *d, double cost, double now)
{
    if (d->flags & STORE_D_SETTLED)
        return;
    pacer_roll(&c->pacer, now);
    pacer_settle(&c->pacer, d->reserved_usd, cost);
    c->meta_dirty = 1;
    if (d->flags & STORE_D_BUCKET_RES) {
        size_t bi;
        ctl_bucket_t *b = ctl_bucket_lookup(c, d->bucket, &bi);
        if (b && b->has_budget) {
            pacer_roll(&b->pacer, now);
            pacer_settle(&b->pacer, d->reserved_usd, cost);
            ctl_mark_dirty(c, bi);
        }
    }
    d->cost_usd = cost;
    d->flags |= STORE_D_SETTLED;
}

static const char *
ctl_served(const store_decision_t *d)
{
    return d->served[0] ? d->served : d->model;
}

static void ctl_expire(ctl_t *c, store_decision_t *d, double now);

static char *
ctl_op_outcome(ctl_t *c, const proto_request_t *rq, store_decision_t *d,
               double now)
{
    if (d->flags & STORE_D_OUTCOME)
        return NULL; /* duplicate */
    if (rq->model[0] && strcmp(rq->model, d->model) != 0) {
        const ctl_bucket_t *b = ctl_bucket_lookup(c, d->bucket, NULL);
        int m = cfg_model_find(c->cfg, rq->model);
        if (!b || m < 0 || policy_bucket_find(b->pb, m) < 0)
            return ctl_error(rq, PROTO_E_UNKNOWN_MODEL,
                             "field \"model\": \"%s\" is not a model of "
                             "bucket \"%s\"",
                             rq->model, d->bucket);
        snprintf(d->served, sizeof d->served, "%s", rq->model);
    }
    const char *served = ctl_served(d);
    d->reward_reported = rq->reward;
    d->reward_applied = (d->flags & STORE_D_CORRECTION) ? 0.0 : rq->reward;
    d->t_outcome = now;
    d->flags |= STORE_D_OUTCOME | STORE_D_APPLIED;
    ctl_apply_reward(c, d, served, d->reward_applied, now);

    double cost = d->reserved_usd;
    int m = cfg_model_find(c->cfg, served);
    if (rq->has_cost) {
        cost = rq->cost_usd;
        d->flags |= STORE_D_COST;
    } else if (rq->has_tokens && m >= 0) {
        cost =
            cfg_model_cost(&c->cfg->models[m], rq->tokens_in, rq->tokens_out);
        d->flags |= STORE_D_COST;
    }
    if (rq->has_tokens) {
        d->tokens_in = rq->tokens_in;
        d->tokens_out = rq->tokens_out;
    }
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_decision_arm(c, d->bucket, served, &b, &bi);
    if (d->flags & STORE_D_COST) {
        if (a >= 0)
            policy_cost(b->pb, a, cost, now);
        else
            ctl_arm_offline(c, d->bucket, served, CTL_ARM_COST, cost, 0);
    }
    if (rq->has_latency) {
        d->latency_ms = rq->latency_ms;
        d->flags |= STORE_D_LATENCY;
        if (a >= 0) {
            latency_add(&b->lat[a], now, rq->latency_ms);
            ctl_mark_dirty(c, bi);
        }
    }
    ctl_settle(c, d, cost, now);
    if (m >= 0) {
        health_success(&c->health[m], d->id, d->t);
        c->health_dirty[m] = 1;
    }
    ctl_store_rc(c, store_del_pending(c->store, c->txn, d->id), "del pending");
    return NULL;
}

static char *
ctl_op_feedback(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    char id[PROTO_ID_LEN + 1];
    proto_id_format(rq->decision, id);
    store_decision_t d;
    int rc = store_get_decision(c->store, c->txn, rq->decision, &d);
    if (rc == STORE_NOTFOUND)
        return ctl_error(rq, PROTO_E_UNKNOWN_DECISION,
                         "field \"decision_id\": no decision %s (never made, "
                         "or pruned after retention)",
                         id);
    if (rc) {
        ctl_store_rc(c, rc, "get decision");
        return ctl_error(rq, PROTO_E_STORE, "cannot read decision %s: %s", id,
                         store_strerror(rc));
    }
    if (!(d.flags & (STORE_D_OUTCOME | STORE_D_EXPIRED)) &&
        d.t + c->cfg->decision_ttl_s <= now) {
        /* past its ttl but not swept yet: expire it now, so that the
         * answer does not depend on when the sweep ran */
        ctl_expire(c, &d, now);
        ctl_store_rc(c, store_put_decision(c->store, c->txn, &d),
                     "put decision");
        ctl_store_rc(c, store_del_pending(c->store, c->txn, d.id),
                     "del pending");
    }
    if (d.flags & STORE_D_EXPIRED)
        return ctl_error(rq, PROTO_E_DECISION_EXPIRED,
                         "field \"decision_id\": decision %s expired without "
                         "an outcome after %g s",
                         id, c->cfg->decision_ttl_s);
    int dup = 0;
    char *err = NULL;
    switch (rq->kind) {
    case PROTO_KIND_OUTCOME:
        dup = !!(d.flags & STORE_D_OUTCOME);
        if (!dup)
            err = ctl_op_outcome(c, rq, &d, now);
        break;
    case PROTO_KIND_CORRECTION:
        dup = !!(d.flags & STORE_D_CORRECTION);
        if (dup)
            break;
        d.flags |= STORE_D_CORRECTION;
        if ((d.flags & STORE_D_APPLIED) && d.reward_applied != 0.0) {
            ctl_apply_amend(c, &d, ctl_served(&d), d.reward_applied, 0.0, now);
            d.reward_applied = 0.0;
        }
        break;
    case PROTO_KIND_PROVIDER_ERROR: {
        dup = !!(d.flags & STORE_D_PROVERR);
        if (dup)
            break;
        d.flags |= STORE_D_PROVERR;
        snprintf(d.error, sizeof d.error, "%.127s",
                 rq->error[0] ? rq->error : "provider error");
        int m = cfg_model_find(c->cfg, d.model);
        if (m >= 0) {
            health_failure(&c->health[m], &c->allow.health, d.id, now);
            c->health_dirty[m] = 1;
        }
        break;
    }
    }
    if (err)
        return err;
    if (dup)
        return proto_write_ok(rq->echo, 1);
    ctl_store_rc(c, store_put_decision(c->store, c->txn, &d), "put decision");
    return proto_write_ok(rq->echo, 0);
}

/* Expires one pending decision. */
static void
ctl_expire(ctl_t *c, store_decision_t *d, double now)
{
    d->flags |= STORE_D_EXPIRED;
    if (c->cfg->expiry_outcome == CFG_EXPIRY_FAILURE ||
        (d->flags & STORE_D_CORRECTION)) {
        /* a correction without an outcome means an answer was given and
         * was wrong: it counts as a failure */
        d->reward_applied = 0.0;
        d->flags |= STORE_D_APPLIED;
        ctl_apply_reward(c, d, d->model, 0.0, now);
    }
    double cost =
        c->cfg->expiry_cost == CFG_EXPIRY_COST_EXPECTED ? d->reserved_usd : 0;
    ctl_settle(c, d, cost, now);
    int m = cfg_model_find(c->cfg, d->model);
    if (m >= 0 && health_expired(&c->health[m], d->id))
        c->health_dirty[m] = 1;
}

int
ctl_sweep_due(ctl_t *c)
{
    MDB_txn *txn;
    if (store_begin(c->store, 1, &txn))
        return 0;
    uint64_t id;
    double t;
    int due = store_oldest_pending(c->store, txn, &id, &t) == 0 &&
              t + c->cfg->decision_ttl_s <= ctl_now(c);
    store_abort(txn);
    return due;
}

size_t
ctl_sweep(ctl_t *c)
{
    double now = ctl_now(c);
    size_t n = 0;
    /* Expiry: pending decisions are keyed by id, which grows with time, so
     * the oldest is first. O(expired). At most 1000 per batch. */
    while (n < 1000 && !c->txn_failed) {
        uint64_t id;
        double t;
        if (store_oldest_pending(c->store, c->txn, &id, &t) != 0)
            break;
        if (t + c->cfg->decision_ttl_s > now)
            break;
        store_decision_t d;
        int rc = store_get_decision(c->store, c->txn, id, &d);
        if (rc == 0 && !(d.flags & (STORE_D_OUTCOME | STORE_D_EXPIRED))) {
            ctl_expire(c, &d, now);
            ctl_store_rc(c, store_put_decision(c->store, c->txn, &d),
                         "put decision");
        }
        ctl_store_rc(c, store_del_pending(c->store, c->txn, id), "del pending");
        n++;
    }
    /* Retention: at most 1000 settled decisions per second of loop. */
    if (now >= c->next_prune) {
        c->next_prune = now + 1.0;
        for (int k = 0; k < 1000 && !c->txn_failed; k++) {
            store_decision_t d;
            if (store_oldest_decision(c->store, c->txn, &d) != 0)
                break;
            if (d.t >= now - c->cfg->retention_s ||
                !(d.flags & (STORE_D_OUTCOME | STORE_D_EXPIRED)))
                break;
            ctl_store_rc(c, store_del_decision(c->store, c->txn, d.id),
                         "del decision");
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Read-only ops                                                       */

static cJSON *
ctl_pacer_json(const pacer_t *p, double now)
{
    cJSON *o = cJSON_CreateObject();
    int has = p->limit_usd > 0;
    cJSON_AddNumberToObject(o, "limit_usd", p->limit_usd);
    cJSON_AddNumberToObject(o, "window_s", p->window_s);
    cJSON_AddNumberToObject(o, "window_start", p->window_start);
    cJSON_AddNumberToObject(o, "window_end", p->window_start + p->window_s);
    cJSON_AddNumberToObject(o, "spent_usd", p->spent_usd);
    cJSON_AddNumberToObject(o, "reserved_usd", p->reserved_usd);
    cJSON_AddNumberToObject(o, "requests", p->requests);
    if (has) {
        cJSON_AddNumberToObject(o, "remaining_usd", pacer_remaining(p));
        cJSON_AddNumberToObject(o, "target_usd", pacer_target(p, now));
    } else {
        cJSON_AddNullToObject(o, "remaining_usd");
        cJSON_AddNullToObject(o, "target_usd");
    }
    return o;
}

static char *
ctl_json_reply(const proto_request_t *rq, cJSON *o)
{
    if (rq->echo[0]) {
        cJSON *e = cJSON_Parse(rq->echo);
        if (e)
            cJSON_AddItemToObject(o, "id", e);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        abort();
    return s;
}

/* Propensities cost O(arms x grid) Beta CDFs per bucket when the cache is
 * stale: a stats of every bucket computes them only up to this many arms
 * in all (a stats of one bucket always does). */
#define CTL_STATS_PROP_ARMS 2048

static cJSON *
ctl_bucket_json(ctl_t *c, ctl_bucket_t *b, double now, int with_prop)
{
    cJSON *bo = cJSON_CreateObject();
    cJSON_AddStringToObject(bo, "name", b->def.name);
    cJSON_AddBoolToObject(bo, "dynamic", b->dynamic);
    cJSON_AddNumberToObject(bo, "half_life_s", b->def.half_life_s);
    if (b->def.latency_slo_ms > 0)
        cJSON_AddNumberToObject(bo, "latency_slo_ms", b->def.latency_slo_ms);
    else
        cJSON_AddNullToObject(bo, "latency_slo_ms");
    if (b->has_budget) {
        pacer_roll(&b->pacer, now);
        cJSON_AddItemToObject(bo, "budget", ctl_pacer_json(&b->pacer, now));
    } else {
        cJSON_AddNullToObject(bo, "budget");
    }
    size_t allowed = ctl_build_mask(c, b, NULL, now, NULL);
    policy_request_t req;
    ctl_build_request(c, b, now, &req);
    for (size_t i = 0; i < b->pb->n_arms; i++)
        c->probs[i] = 0;
    if (allowed && with_prop)
        policy_propensities(&c->policy, b->pb, &req, c->probs);
    uint64_t total = 0;
    for (size_t i = 0; i < b->pb->n_arms; i++)
        total += b->pb->arms[i].pulls;
    cJSON_AddNumberToObject(bo, "pulls", (double)total);
    cJSON *arms = cJSON_AddArrayToObject(bo, "arms");
    for (size_t i = 0; i < b->pb->n_arms; i++) {
        const arm_t *a = &b->pb->arms[i];
        int m = b->pb->model[i];
        cJSON *ao = cJSON_CreateObject();
        cJSON_AddStringToObject(ao, "model", ctl_model_name(c, m));
        cJSON_AddNumberToObject(ao, "alpha", a->alpha);
        cJSON_AddNumberToObject(ao, "beta", a->beta);
        cJSON_AddNumberToObject(ao, "alpha0", a->alpha0);
        cJSON_AddNumberToObject(ao, "beta0", a->beta0);
        cJSON_AddNumberToObject(ao, "mean", arm_mean(a));
        cJSON_AddNumberToObject(ao, "pulls", (double)a->pulls);
        cJSON_AddNumberToObject(ao, "rewards", (double)a->rewards);
        cJSON_AddNumberToObject(ao, "share",
                                total ? (double)a->pulls / (double)total : 0);
        cJSON_AddNumberToObject(ao, "cost_mean_usd", arm_cost_mean(a));
        cJSON_AddNumberToObject(ao, "cost_reports", a->cost_w);
        if (with_prop)
            cJSON_AddNumberToObject(ao, "propensity", c->probs[i]);
        else
            cJSON_AddNullToObject(ao, "propensity");
        const char *hs = ctl_health_name(c, m, now);
        int slow = 0;
        unsigned ln;
        double q = latency_quantile(&b->lat[i], &c->allow.latency, now, &ln);
        if (b->def.latency_slo_ms > 0 && !isnan(q) && q > b->def.latency_slo_ms)
            slow = 1;
        cJSON_AddStringToObject(ao, "health", hs);
        cJSON_AddBoolToObject(ao, "slo_breach", slow);
        cJSON_AddBoolToObject(ao, "allowed", c->mask[i]);
        if (isnan(q))
            cJSON_AddNullToObject(ao, "latency_q_ms");
        else
            cJSON_AddNumberToObject(ao, "latency_q_ms", q);
        cJSON_AddNumberToObject(ao, "latency_samples", ln);
        cJSON_AddItemToArray(arms, ao);
    }
    return bo;
}

static char *
ctl_op_stats(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddNumberToObject(o, "time", now);
    cJSON *po = cJSON_AddObjectToObject(o, "policy");
    cJSON_AddStringToObject(po, "name", c->cfg->policy_name);
    cJSON_AddNumberToObject(po, "mu", c->policy.mu);
    cJSON_AddNumberToObject(po, "explore_floor", c->cfg->explore_floor);
    cJSON_AddNumberToObject(o, "decisions", (double)c->seq);
    pacer_roll(&c->pacer, now);
    cJSON_AddItemToObject(o, "budget", ctl_pacer_json(&c->pacer, now));
    cJSON *bs = cJSON_AddArrayToObject(o, "buckets");
    if (rq->bucket[0]) {
        ctl_bucket_t *b = ctl_bucket_lookup(c, rq->bucket, NULL);
        if (!b) {
            cJSON_Delete(o);
            return ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                             "unknown bucket \"%s\" in field \"bucket\"",
                             rq->bucket);
        }
        cJSON_AddItemToArray(bs, ctl_bucket_json(c, b, now, 1));
    } else {
        size_t arms = 0;
        for (size_t i = 0; i < c->n_buckets; i++)
            arms += c->buckets[i]->pb->n_arms;
        int with_prop = arms <= CTL_STATS_PROP_ARMS;
        for (size_t i = 0; i < c->n_buckets; i++)
            cJSON_AddItemToArray(
                bs, ctl_bucket_json(c, c->buckets[i], now, with_prop));
    }
    cJSON *ho = cJSON_AddArrayToObject(o, "health");
    for (size_t m = 0; m < c->cfg->n_models; m++) {
        const health_t *h = &c->health[m];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model", c->cfg->models[m].name);
        cJSON_AddStringToObject(e, "state", ctl_health_name(c, (int)m, now));
        cJSON_AddNumberToObject(e, "consecutive_failures", h->failures);
        cJSON_AddNumberToObject(e, "errors_total", (double)h->errors_total);
        if (h->cooling)
            cJSON_AddNumberToObject(e, "cooldown_until", h->until);
        else
            cJSON_AddNullToObject(e, "cooldown_until");
        cJSON_AddItemToArray(ho, e);
    }
    return ctl_json_reply(rq, o);
}

static char *
ctl_op_models(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON *ms = cJSON_AddArrayToObject(o, "models");
    for (size_t i = 0; i < c->cfg->n_models; i++) {
        const cfg_model_t *m = &c->cfg->models[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", m->name);
        cJSON_AddStringToObject(
            e, "provider",
            m->provider == CFG_PROVIDER_ANTHROPIC ? "anthropic" : "openai");
        cJSON_AddStringToObject(e, "model", m->model);
        cJSON_AddStringToObject(e, "base_url", m->base_url);
        cJSON_AddStringToObject(e, "api_key_env", m->api_key_env);
        cJSON_AddNumberToObject(e, "price_in_per_mtok", m->price_in_per_mtok);
        cJSON_AddNumberToObject(e, "price_out_per_mtok", m->price_out_per_mtok);
        cJSON_AddStringToObject(e, "health", ctl_health_name(c, (int)i, now));
        cJSON_AddItemToArray(ms, e);
    }
    return ctl_json_reply(rq, o);
}

/* Rows an export page may skip (before "since"), per row of its limit. */
#define CTL_EXPORT_SCAN 4

typedef struct ctl_export_ctx {
    const proto_request_t *rq;
    cJSON *arr;
    unsigned n;
    uint64_t last;
    int more;
    size_t skipped;
} ctl_export_ctx_t;

/* One decision as an export record (docs/protocol.md, "export"). */
static cJSON *
ctl_decision_json(const store_decision_t *d)
{
    char id[PROTO_ID_LEN + 1];
    proto_id_format(d->id, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "decision_id", id);
    cJSON_AddNumberToObject(o, "time", d->t);
    cJSON_AddStringToObject(o, "bucket", d->bucket);
    cJSON_AddStringToObject(o, "model", d->model);
    cJSON_AddNumberToObject(o, "propensity", d->propensity);
    cJSON_AddStringToObject(o, "status",
                            (d->flags & STORE_D_OUTCOME)   ? "done"
                            : (d->flags & STORE_D_EXPIRED) ? "expired"
                                                           : "pending");
    if (d->flags & STORE_D_OUTCOME) {
        cJSON_AddNumberToObject(o, "outcome", d->reward_reported);
        cJSON_AddNumberToObject(o, "outcome_time", d->t_outcome);
    } else {
        cJSON_AddNullToObject(o, "outcome");
        cJSON_AddNullToObject(o, "outcome_time");
    }
    cJSON_AddBoolToObject(o, "corrected", !!(d->flags & STORE_D_CORRECTION));
    if (d->flags & STORE_D_APPLIED)
        cJSON_AddNumberToObject(o, "reward", d->reward_applied);
    else
        cJSON_AddNullToObject(o, "reward");
    cJSON_AddNumberToObject(o, "expected_cost_usd", d->reserved_usd);
    if (d->flags & STORE_D_SETTLED)
        cJSON_AddNumberToObject(o, "cost_usd", d->cost_usd);
    else
        cJSON_AddNullToObject(o, "cost_usd");
    cJSON_AddStringToObject(o, "cost_source",
                            (d->flags & STORE_D_COST)      ? "reported"
                            : (d->flags & STORE_D_SETTLED) ? "expected"
                                                           : "none");
    if (d->flags & STORE_D_LATENCY)
        cJSON_AddNumberToObject(o, "latency_ms", d->latency_ms);
    else
        cJSON_AddNullToObject(o, "latency_ms");
    if (d->served[0])
        cJSON_AddStringToObject(o, "served_model", d->served);
    else
        cJSON_AddNullToObject(o, "served_model");
    if (d->flags & STORE_D_PROVERR)
        cJSON_AddStringToObject(o, "provider_error", d->error);
    else
        cJSON_AddNullToObject(o, "provider_error");
    cJSON_AddBoolToObject(o, "explored", !!(d->flags & STORE_D_EXPLORED));
    cJSON_AddBoolToObject(o, "over_budget", !!(d->flags & STORE_D_OVER_BUDGET));
    return o;
}

static int
ctl_export_one(const store_decision_t *d, void *ctx)
{
    ctl_export_ctx_t *x = ctx;
    if (d->t < x->rq->since) {
        /* Skipped rows are read inside the batch's write transaction too:
         * a page examines at most CTL_EXPORT_SCAN times its limit, then
         * ends (possibly empty) with next = the last row examined. */
        if (++x->skipped >= CTL_EXPORT_SCAN * (size_t)x->rq->limit) {
            x->more = 1;
            x->last = d->id;
            return 1;
        }
        return 0;
    }
    if (x->n >= x->rq->limit) {
        x->more = 1;
        return 1;
    }
    cJSON_AddItemToArray(x->arr, ctl_decision_json(d));
    x->n++;
    x->last = d->id;
    return 0;
}

static char *
ctl_op_export(ctl_t *c, const proto_request_t *rq)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    ctl_export_ctx_t x = {rq, cJSON_AddArrayToObject(o, "decisions"), 0, 0, 0,
                          0};
    int rc = store_scan_decisions(
        c->store, c->txn, rq->has_after ? rq->after : 0, ctl_export_one, &x);
    if (rc) {
        cJSON_Delete(o);
        return ctl_error(rq, PROTO_E_STORE, "cannot read decisions: %s",
                         store_strerror(rc));
    }
    if (x.more) {
        char id[PROTO_ID_LEN + 1];
        proto_id_format(x.last, id);
        cJSON_AddStringToObject(o, "next", id);
    } else {
        cJSON_AddNullToObject(o, "next");
    }
    return ctl_json_reply(rq, o);
}

static char *
ctl_op_clock(ctl_t *c, const proto_request_t *rq)
{
    if (!c->test_clock)
        return ctl_error(rq, PROTO_E_UNKNOWN_OP,
                         "op \"clock\" is only served by bursard "
                         "--test-clock");
    c->clock_offset += rq->advance_s;
    c->meta_dirty = 1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddNumberToObject(o, "now", ctl_now(c));
    return ctl_json_reply(rq, o);
}

char *
ctl_handle(ctl_t *c, const char *buf, size_t len)
{
    proto_request_t *rq = &c->request; /* one at a time: reused */
    proto_error_t err;
    char *reply;
    if (proto_parse_request(buf, len, rq, &err) != PROTO_OK) {
        reply = proto_write_error(rq->echo, err.code, err.message);
        if (!reply)
            abort();
        return reply;
    }
    if (!c->txn)
        return ctl_error(rq, PROTO_E_INTERNAL, "no transaction");
    switch (rq->op) {
    case PROTO_OP_CHOOSE:
        reply = ctl_op_choose(c, rq);
        break;
    case PROTO_OP_FEEDBACK:
        reply = ctl_op_feedback(c, rq);
        break;
    case PROTO_OP_STATS:
        reply = ctl_op_stats(c, rq);
        break;
    case PROTO_OP_MODELS:
        reply = ctl_op_models(c, rq);
        break;
    case PROTO_OP_PING:
        reply = proto_write_ok(rq->echo, 0);
        if (!reply)
            abort();
        break;
    case PROTO_OP_EXPORT:
        reply = ctl_op_export(c, rq);
        break;
    case PROTO_OP_CLOCK:
        reply = ctl_op_clock(c, rq);
        break;
    default:
        reply = ctl_error(rq, PROTO_E_UNKNOWN_OP, "unknown op");
    }
    return reply;
}

char *
ctl_reply_too_large(const ctl_t *c, size_t len)
{
    char msg[PROTO_MESSAGE_MAX];
    snprintf(msg, sizeof msg,
             "the request has %zu bytes; the limit is %zu "
             "(limits.max_message_bytes)",
             len, c->cfg->max_message_bytes);
    char *r = proto_write_error(NULL, PROTO_E_TOO_LARGE, msg);
    if (!r)
        abort();
    return r;
}

/* ------------------------------------------------------------------ */
/* Reconfiguration                                                     */

int
ctl_reconfigure(ctl_t *c, cfg_t *cfg, char *err, size_t err_len)
{
    policy_params_t pp;
    if (ctl_policy_params(cfg, &pp) != 0) {
        snprintf(err, err_len,
                 "unknown policy \"%s\": the old configuration is kept",
                 cfg->policy_name);
        cfg_destroy(&cfg);
        return -1;
    }
    /* Write everything that lives only in memory, then rebuild from the
     * store under the new configuration. */
    for (size_t i = 0; i < c->n_buckets; i++)
        ctl_mark_dirty(c, i);
    memset(c->health_dirty, 1, c->cfg->n_models);
    c->meta_dirty = 1;
    int rc = ctl_begin(c);
    if (!rc)
        rc = ctl_commit(c);
    if (rc) {
        snprintf(err, err_len,
                 "cannot flush the store (%s): the old configuration is kept",
                 store_strerror(rc));
        cfg_destroy(&cfg);
        return -1;
    }
    /* The old configuration is freed only once the state has been rebuilt
     * under the new one: if that fails, it is reinstalled and the state
     * rebuilt under it again (the flush above made the store complete). */
    double mu = c->policy.mu;
    cfg_t *old = c->cfg;
    c->cfg = cfg;
    rc = ctl_load(c);
    if (rc) {
        c->cfg = old;
        cfg_destroy(&cfg);
        int rc2 = ctl_load(c);
        c->policy.mu = mu;
        if (rc2)
            snprintf(err, err_len,
                     "cannot reload the store under the new configuration "
                     "(%s), nor under the old one (%s): the old configuration "
                     "is in force but its state may be incomplete until a "
                     "restart",
                     store_strerror(rc), store_strerror(rc2));
        else
            snprintf(err, err_len,
                     "cannot reload the store under the new configuration "
                     "(%s): the old configuration is kept",
                     store_strerror(rc));
        return -1;
    }
    c->policy.mu = mu;
    cfg_destroy(&old);
    return 0;
}
