/*
 * ctl.c - the controller's core (ctl_int.h says how the files divide it).
 *
 * In-memory state mirrors the store: buckets (a policy_bucket_t each, plus
 * the latency rings), the global and per-bucket pacers, the policy's shadow
 * price, per-model health, and the decision sequence. Requests change
 * memory and write decisions straight into the batch's transaction; the
 * other state is marked dirty and written once per batch in ctl_commit
 * (a bucket's arms are written once however many decisions it served).
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include <sys/stat.h>

#include <sodium.h>

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
    return c->n_decisions;
}

uint64_t
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

ctl_bucket_t *
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

const char *
ctl_model_name(const ctl_t *c, int model)
{
    return c->cfg->models[model].name;
}

void
ctl_mark_dirty(ctl_t *c, size_t idx)
{
    ctl_bucket_t *b = c->buckets[idx];
    if (b->dirty)
        return;
    b->dirty = 1;
    c->dirty[c->n_dirty++] = idx;
}

/* Records a failed write: the batch will not commit. */
void
ctl_store_rc(ctl_t *c, int rc, const char *what)
{
    if (rc && rc != STORE_NOTFOUND) {
        if (!c->txn_failed)
            bursar_log("bursard: store: %s: %s\n", what, store_strerror(rc));
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

const char *
ctl_health_name(const ctl_t *c, int m, double now)
{
    return health_state_name(
        health_state(&c->health[m], &c->allow.health, now));
}

void
ctl_arm_prior(const ctl_t *c, const cfg_bucket_t *def, int m, arm_t *a)
{
    const cfg_model_t *cm = &c->cfg->models[m];
    arm_init(
        a, def->prior_alpha, def->prior_beta,
        cfg_model_cost(cm, def->expected_tokens_in, def->expected_tokens_out),
        1.0);
}

/* Builds a bucket from its definition and what the store holds. An arm
 * found in the store keeps its evidence; if its prior changed in the
 * configuration the evidence is moved onto the new prior (alpha - alpha0
 * is kept). An arm not found starts from its prior, with the price table
 * times the expected tokens as its cost prior. */
ctl_bucket_t *
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
                bursar_log("bursard: store: arm %s/%s unreadable (%s): "
                           "starting from the prior\n",
                           def->name, cm->name, store_strerror(rc));
            ctl_arm_prior(c, def, m, &b->pb->arms[i]);
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
            b->pacer.prior_rate = c->cfg->budget_prior_rate;
            pacer_set_window(&b->pacer, def->budget.window_s, now);
            pacer_resume(&b->pacer, now);
        } else {
            pacer_init(&b->pacer, def->budget.limit_usd, def->budget.window_s,
                       c->cfg->budget_prior_rate, now);
        }
    }
    policy_bucket_touch(b->pb);
    return b;
}

void
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
    /* the stored "seq" is the high-water mark: every id answered so far
     * is at most it, committed or not */
    c->hwm = 0;
    store_get_meta(c->store, txn, "seq", &c->hwm, sizeof c->hwm);
    c->seq = c->hwm_durable = c->hwm;
    c->pruned = 0;
    store_get_meta(c->store, txn, "pruned", &c->pruned, sizeof c->pruned);
    c->pruned_local_t = -INFINITY;
    store_get_meta(c->store, txn, "pruned_local", &c->pruned_local_t,
                   sizeof c->pruned_local_t);

    policy_params_t pp;
    cfg_policy_params(c->cfg, &pp);
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
        pacer_set_window(&c->pacer, bud->window_s, now);
        pacer_resume(&c->pacer, now);
    } else {
        pacer_init(&c->pacer, bud->limit_usd, bud->window_s,
                   c->cfg->budget_prior_rate, now);
    }

    for (size_t i = 0; i < c->cfg->n_buckets; i++)
        ctl_add_bucket(c,
                       ctl_bucket_build(c, txn, &c->cfg->buckets[i], 0, now));
    ctl_dyn_ctx_t dc = {c, txn, now};
    rc = store_scan_dynbuckets(c->store, txn, ctl_load_dynbucket, &dc);

    cfg_allow_params(c->cfg, &c->allow);
    free(c->health);
    free(c->health_dirty);
    c->health = bursar_calloc(c->cfg->n_models, sizeof *c->health);
    c->health_dirty = bursar_calloc(c->cfg->n_models, 1);
    for (size_t m = 0; m < c->cfg->n_models; m++) {
        store_health_t sh;
        if (store_get_health(c->store, txn, c->cfg->models[m].name, &sh) == 0)
            ctl_health_load(&c->health[m], &sh);
    }
    ctl_admin_load(c, txn);
    ctl_clients_load(c, txn);
    int trc = ctl_tenants_load(c, txn, now); /* under c->cfg in any case */
    if (!rc)
        rc = trc;
    ctl_batches_load(c, txn);
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
    if (cfg_policy_params(cfg, &pp) != 0) {
        snprintf(err, err_len, "unknown policy \"%s\"", cfg->policy_name);
        cfg_destroy(&cfg);
        return BURSAR_ECONFIG;
    }
    if (util_mkdirs(opt->state_dir) != 0) {
        snprintf(err, err_len, "cannot create state directory %s",
                 opt->state_dir);
        cfg_destroy(&cfg);
        return BURSAR_ECONFIG;
    }
    chmod(opt->state_dir, 0700); /* its files are 0600: store.c, token.c */
    ctl_t *c = bursar_calloc(1, sizeof *c);
    c->cfg = cfg;
    if (token_key_load(opt->state_dir, c->token_key, err, err_len) != 0) {
        free(c);
        cfg_destroy(&cfg);
        return BURSAR_ESTORE;
    }
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
    ctl_metrics_init(c);
    *out = c;
    return 0;
fail:
    ctl_destroy(&c);
    return BURSAR_ESTORE;
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
    free(c->marks);
    ctl_clients_free(c);
    ctl_tenants_free(c);
    ctl_batches_free(c);
    ctl_status_free(c);
    sodium_memzero(c->token_key, sizeof c->token_key);
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
        rc = store_put_meta(c->store, c->txn, "seq", &c->hwm, sizeof c->hwm);
        if (!rc)
            rc = store_put_meta(c->store, c->txn, "pruned", &c->pruned,
                                sizeof c->pruned);
        if (!rc && isfinite(c->pruned_local_t))
            rc = store_put_meta(c->store, c->txn, "pruned_local",
                                &c->pruned_local_t, sizeof c->pruned_local_t);
        if (!rc)
            rc = store_put_meta(c->store, c->txn, "policy", &sp, sizeof sp);
        if (!rc)
            rc = store_put_meta(c->store, c->txn, "pacer", &spc, sizeof spc);
        if (!rc && c->test_clock)
            rc = store_put_meta(c->store, c->txn, "clock", &c->clock_offset,
                                sizeof c->clock_offset);
    }
    if (!rc)
        rc = ctl_tenants_flush(c);
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
    ctl_tenants_mark(c, 0);
}

int
ctl_commit(ctl_t *c)
{
    double t0 = util_mono_time();
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
    if (rc) /* no early answers for a while: a full store is refused, not
               silently lost batch after batch */
        c->early_after = util_mono_time() + CTL_EARLY_HOLDOFF_S;
    if (!rc)
        c->hwm_durable = c->hwm;
    ctl_metrics_commit(c, rc, util_mono_time() - t0);
    if (rc) {
        bursar_log("bursard: commit failed (%s): reloading state from the "
                   "store\n",
                   store_strerror(rc));
        int lr = ctl_load(c);
        if (lr)
            bursar_log("bursard: reload failed: %s\n", store_strerror(lr));
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* The request to policies/                                            */

/* Fills c->mask for bucket b at now (allow_mask: exclusions, health,
 * latency); rq NULL: no exclusions. Returns the number of allowed arms. */
size_t
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
    size_t n = allow_mask(b->pb->n_arms, arms, &c->allow, b->def.latency_slo_ms,
                          now, c->mask, counts);
    return ctl_client_mask(c, b, now, n, counts);
}

void
ctl_build_request(ctl_t *c, ctl_bucket_t *b, double now, policy_request_t *req)
{
    allow_request(req, c->mask, &c->pacer, b->has_budget ? &b->pacer : NULL,
                  now);
}

static char *ctl_dispatch(ctl_t *c, const proto_request_t *rq);

char *
ctl_handle(ctl_t *c, const char *buf, size_t len, const ctl_peer_t *peer,
           int *early)
{
    proto_request_t *rq = &c->request; /* one at a time: reused */
    proto_error_t err;
    char *reply;
    c->early = 0;
    c->met.op = -1;
    if (early)
        *early = 0;
    if (proto_parse_request(buf, len, rq, &err) != PROTO_OK) {
        reply = proto_write_error(rq->echo, err.code, err.message);
        if (!reply)
            abort();
        return reply;
    }
    c->met.op = (int)rq->op;
    if (!c->txn)
        return ctl_error(rq, PROTO_E_INTERNAL, "no transaction");
    if ((reply = ctl_client_admit(c, rq, peer)))
        return reply;
    reply = ctl_dispatch(c, rq);
    if (early)
        *early = c->early;
    return reply;
}

static char *
ctl_dispatch(ctl_t *c, const proto_request_t *rq)
{
    char *reply;
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
    case PROTO_OP_BOOK:
        reply = ctl_op_book(c, rq);
        break;
    case PROTO_OP_ADJUST:
        reply = ctl_op_adjust(c, rq);
        break;
    case PROTO_OP_RESET:
        reply = ctl_op_reset(c, rq);
        break;
    case PROTO_OP_MARK:
        reply = ctl_op_mark(c, rq);
        break;
    case PROTO_OP_SHOW:
        reply = ctl_op_show(c, rq);
        break;
    case PROTO_OP_BATCH:
        reply = ctl_op_batch(c, rq);
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
    if (cfg_policy_params(cfg, &pp) != 0) {
        snprintf(err, err_len,
                 "unknown policy \"%s\": the old configuration is kept",
                 cfg->policy_name);
        cfg_destroy(&cfg);
        return BURSAR_ECONFIG;
    }
    /* Write everything that lives only in memory, then rebuild from the
     * store under the new configuration. */
    for (size_t i = 0; i < c->n_buckets; i++)
        ctl_mark_dirty(c, i);
    memset(c->health_dirty, 1, c->cfg->n_models);
    c->meta_dirty = 1;
    ctl_tenants_mark(c, 1);
    int rc = ctl_begin(c);
    if (!rc)
        rc = ctl_commit(c);
    if (rc) {
        snprintf(err, err_len,
                 "cannot flush the store (%s): the old configuration is kept",
                 store_strerror(rc));
        cfg_destroy(&cfg);
        return BURSAR_ECONFIG;
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
        return BURSAR_ECONFIG;
    }
    c->policy.mu = mu;
    cfg_destroy(&old);
    return 0;
}
