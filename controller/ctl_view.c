/*
 * ctl_view.c - the controller's read-only ops and their JSON: stats,
 * models, export; and the test clock.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

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
    cJSON_AddNumberToObject(o, "held_usd", p->held_usd);
    cJSON_AddNumberToObject(o, "rate_per_s", pacer_rate(p, now));
    if (has) {
        cJSON_AddNumberToObject(o, "remaining_usd", pacer_remaining(p));
        cJSON_AddNumberToObject(o, "target_usd", pacer_target(p, now));
    } else {
        cJSON_AddNullToObject(o, "remaining_usd");
        cJSON_AddNullToObject(o, "target_usd");
    }
    return o;
}

char *
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

/* The stats reply's head: ok, time, policy, decisions, budget and an
 * empty "buckets" array (*bs). */
static cJSON *
ctl_stats_head(ctl_t *c, double now, cJSON **bs)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddNumberToObject(o, "time", now);
    cJSON *po = cJSON_AddObjectToObject(o, "policy");
    cJSON_AddStringToObject(po, "name", c->cfg->policy_name);
    cJSON_AddNumberToObject(po, "mu", c->policy.mu);
    cJSON_AddNumberToObject(po, "explore_floor", c->cfg->explore_floor);
    cJSON_AddNumberToObject(o, "decisions", (double)c->policy.decisions);
    pacer_roll(&c->pacer, now);
    cJSON_AddItemToObject(o, "budget", ctl_pacer_json(&c->pacer, now));
    ctl_tenants_json(c, o, now);
    *bs = cJSON_AddArrayToObject(o, "buckets");
    return o;
}

static void
ctl_stats_health(ctl_t *c, double now, cJSON *o)
{
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
        cJSON_AddItemToObject(e, "marked_down", ctl_mark_json(c, (int)m));
        cJSON_AddItemToArray(ho, e);
    }
}

cJSON *
ctl_stats_all(ctl_t *c, int with_prop)
{
    double now = ctl_now(c);
    cJSON *bs;
    cJSON *o = ctl_stats_head(c, now, &bs);
    if (with_prop < 0) {
        size_t arms = 0;
        for (size_t i = 0; i < c->n_buckets; i++)
            arms += c->buckets[i]->pb->n_arms;
        with_prop = arms <= CTL_STATS_PROP_ARMS;
    }
    for (size_t i = 0; i < c->n_buckets; i++)
        cJSON_AddItemToArray(bs,
                             ctl_bucket_json(c, c->buckets[i], now, with_prop));
    ctl_stats_health(c, now, o);
    return o;
}

char *
ctl_op_stats(ctl_t *c, const proto_request_t *rq)
{
    if (!rq->bucket[0])
        return ctl_json_reply(rq, ctl_stats_all(c, -1));
    double now = ctl_now(c);
    ctl_bucket_t *b = ctl_bucket_lookup(c, rq->bucket, NULL);
    if (!b)
        return ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                         "unknown bucket \"%s\" in field \"bucket\"",
                         rq->bucket);
    cJSON *bs;
    cJSON *o = ctl_stats_head(c, now, &bs);
    cJSON_AddItemToArray(bs, ctl_bucket_json(c, b, now, 1));
    ctl_stats_health(c, now, o);
    return ctl_json_reply(rq, o);
}

char *
ctl_op_models(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    size_t n = c->cfg->n_models;
    proto_model_t *ms = bursar_calloc(n, sizeof *ms);
    for (size_t i = 0; i < n; i++) {
        const cfg_model_t *m = &c->cfg->models[i];
        proto_model_t *e = &ms[i];
        /* cfg refuses what does not fit (CFG_LEN): nothing is cut here */
        bursar_copy_str(e->name, sizeof e->name, m->name);
        e->provider = m->provider == CFG_PROVIDER_ANTHROPIC
                          ? PROTO_PROVIDER_ANTHROPIC
                          : PROTO_PROVIDER_OPENAI;
        bursar_copy_str(e->model, sizeof e->model, m->model);
        /* No base_url nor api_key_env: where a worker sends its keys is
         * the worker's own configuration (docs/agents.md). */
        e->price_in_per_mtok = m->price_in_per_mtok;
        e->price_out_per_mtok = m->price_out_per_mtok;
        bursar_copy_str(e->health, sizeof e->health,
                        ctl_health_name(c, (int)i, now));
    }
    size_t nb = 0;
    proto_bucket_t *bs = ctl_book_buckets(c, &nb);
    char *reply = proto_write_catalog(rq->echo, ms, n, bs, nb);
    free(bs);
    free(ms);
    return reply;
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
    const ctl_t *c;
    MDB_txn *txn;
} ctl_export_ctx_t;

/* The cascade link of a decision whose dext record is x: its step, and
 * the decision it escalates by sequence id and by token (the parent's
 * token is rebuilt from the parent's records, as its choose answered it;
 * null when retention pruned them). */
static void
ctl_decision_link(const ctl_t *c, MDB_txn *txn, const store_dext_t *x, cJSON *o)
{
    cJSON_AddNumberToObject(o, "step", x->step);
    if (!x->parent) {
        cJSON_AddNullToObject(o, "escalates");
        cJSON_AddNullToObject(o, "escalates_seq");
        return;
    }
    store_decision_t pd;
    store_dext_t px;
    if (store_get_decision(c->store, txn, x->parent, &pd) == 0) {
        if (store_get_dext(c->store, txn, x->parent, &px) != 0)
            memset(&px, 0, sizeof px);
        px.client[sizeof px.client - 1] = '\0';
        char token[TOKEN_CHARS + 1];
        ctl_token_make(c, &pd, &px, token);
        cJSON_AddStringToObject(o, "escalates", token);
    } else {
        cJSON_AddNullToObject(o, "escalates");
    }
    char id[PROTO_ID_LEN + 1];
    proto_id_format(x->parent, id);
    cJSON_AddStringToObject(o, "escalates_seq", id);
}

/* The token, client, offered models and cascade link of d (from its dext
 * record). */
static void
ctl_decision_origin(const ctl_t *c, MDB_txn *txn, const store_decision_t *d,
                    cJSON *o)
{
    store_dext_t x;
    if (store_get_dext(c->store, txn, d->id, &x) != 0)
        memset(&x, 0, sizeof x);
    x.client[sizeof x.client - 1] = '\0';
    char token[TOKEN_CHARS + 1];
    ctl_token_make(c, d, &x, token);
    cJSON_AddStringToObject(o, "decision_id", token);
    cJSON_AddStringToObject(o, "client", x.client);
    cJSON *off = cJSON_AddArrayToObject(o, "offered");
    const ctl_bucket_t *b = ctl_bucket_lookup(c, d->bucket, NULL);
    for (size_t i = 0; b && i < b->pb->n_arms && i < 64; i++)
        if ((x.offered >> i) & 1)
            cJSON_AddItemToArray(
                off, cJSON_CreateString(ctl_model_name(c, b->pb->model[i])));
    ctl_decision_link(c, txn, &x, o);
}

/* One decision as an export record (docs/protocol.md, "export"). */
cJSON *
ctl_decision_row(const ctl_t *c, MDB_txn *txn, const store_decision_t *d)
{
    char id[PROTO_ID_LEN + 1];
    proto_id_format(d->id, id);
    cJSON *o = cJSON_CreateObject();
    int local = !!(d->flags & STORE_D_LOCAL);
    if (local)
        ctl_book_origin(c, txn, d, o);
    else
        ctl_decision_origin(c, txn, d, o);
    store_tenant_t tn; /* only for a decision made for a tenant */
    if (store_get_tenant(c->store, txn, d->id, &tn) == 0)
        cJSON_AddStringToObject(o, "tenant", tn.name);
    cJSON_AddStringToObject(o, "seq", id);
    cJSON_AddNumberToObject(o, "time", d->t);
    cJSON_AddStringToObject(o, "bucket", d->bucket);
    cJSON_AddStringToObject(o, "model", d->model);
    if (local) /* made by its client alone: no propensity */
        cJSON_AddNullToObject(o, "propensity");
    else
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
    /* a local decision reserved nothing: its cost is what its outcome
     * booked, none before it */
    unsigned settled = local ? STORE_D_OUTCOME : STORE_D_SETTLED;
    if (d->flags & settled)
        cJSON_AddNumberToObject(o, "cost_usd", d->cost_usd);
    else
        cJSON_AddNullToObject(o, "cost_usd");
    cJSON_AddStringToObject(o, "cost_source",
                            (d->flags & STORE_D_COST)        ? "reported"
                            : (d->flags & settled) && !local ? "expected"
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
    cJSON_AddBoolToObject(o, "rebuilt", !!(d->flags & STORE_D_REBUILT));
    cJSON_AddBoolToObject(o, "local", local);
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
    cJSON_AddItemToArray(x->arr, ctl_decision_row(x->c, x->txn, d));
    x->n++;
    x->last = d->id;
    return 0;
}

/* The admin log's page: entries after rq->after, from rq->since on. */
typedef struct ctl_admin_page {
    const proto_request_t *rq;
    cJSON *arr;
    unsigned n;
    uint64_t last;
    int more;
} ctl_admin_page_t;

static int
ctl_export_admin_one(const store_admin_t *a, void *ctx)
{
    ctl_admin_page_t *x = ctx;
    if (a->t < x->rq->since) /* the log is small: skipped without a cap */
        return 0;
    if (x->n >= x->rq->limit) {
        x->more = 1;
        return 1;
    }
    cJSON_AddItemToArray(x->arr, ctl_admin_row(a));
    x->n++;
    x->last = a->id;
    return 0;
}

/* export with "admin": true: the admin log, oldest first, paged by its
 * own sequence ids ("after", "next"). */
/* An export page's reply: "next" the cursor of the last row when more
 * rows follow (else null), o sent and freed. */
static char *
ctl_page_reply(const proto_request_t *rq, cJSON *o, int more, uint64_t last)
{
    if (more) {
        char id[PROTO_ID_LEN + 1];
        proto_id_format(last, id);
        cJSON_AddStringToObject(o, "next", id);
    } else {
        cJSON_AddNullToObject(o, "next");
    }
    return ctl_json_reply(rq, o);
}

static char *
ctl_export_admin(ctl_t *c, const proto_request_t *rq)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    ctl_admin_page_t x = {rq, cJSON_AddArrayToObject(o, "admin"), 0, 0, 0};
    MDB_txn *rtxn = NULL;
    int rc = store_begin(c->store, 1, &rtxn);
    if (!rc) {
        rc = store_scan_admin(c->store, rtxn, rq->has_after ? rq->after : 0,
                              ctl_export_admin_one, &x);
        store_abort(rtxn);
    }
    if (rc) {
        cJSON_Delete(o);
        return ctl_error(rq, PROTO_E_STORE, "cannot read the admin log: %s",
                         store_strerror(rc));
    }
    return ctl_page_reply(rq, o, x.more, x.last);
}

char *
ctl_op_export(ctl_t *c, const proto_request_t *rq)
{
    if (rq->export_admin)
        return ctl_export_admin(c, rq);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    ctl_export_ctx_t x = {
        rq, cJSON_AddArrayToObject(o, "decisions"), 0, 0, 0, 0, c, NULL};
    /* A read-only transaction of its own: export sees what is committed
     * and holds no page of the batch's write transaction. */
    MDB_txn *rtxn = NULL;
    int rc = store_begin(c->store, 1, &rtxn);
    if (!rc) {
        x.txn = rtxn;
        rc = store_scan_decisions(c->store, rtxn, rq->has_after ? rq->after : 0,
                                  ctl_export_one, &x);
        store_abort(rtxn);
    }
    if (rc) {
        cJSON_Delete(o);
        return ctl_error(rq, PROTO_E_STORE, "cannot read decisions: %s",
                         store_strerror(rc));
    }
    return ctl_page_reply(rq, o, x.more, x.last);
}

char *
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
