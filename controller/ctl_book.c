/*
 * ctl_book.c - local decisions: the op book, by which a client reports
 * the events of the decisions it made alone while the controller was away
 * (docs/protocol.md, "book"), booked into the ledger and the decision log;
 * and the buckets of the models reply, which tell a client what each
 * bucket allows (its local fallbacks: docs/agents.md).
 *
 * A local decision is a decision record with STORE_D_LOCAL: an id of the
 * controller's sequence (so export and retention treat it as any other),
 * no propensity, no reservation, never pending (it cannot expire: nothing
 * was reserved). Its client and local id are in db lext, and db locals
 * finds it again by (client, local id), so that a resent booking is
 * answered duplicate. Each kind of event applies at most once, as for
 * feedback.
 *
 * What an event does:
 *   outcome    the cost (reported, else the price of the tokens, else 0)
 *              goes to the global ledger, and the bucket's when it has a
 *              cap, if the decision's time is in that ledger's current
 *              window (a closed window is gone: the decision is logged
 *              with its cost, not added to today's spend). It counts as a
 *              request of the window (the pacer's rate). The reward goes
 *              to the posterior of the arm that served and the cost to its
 *              cost estimate, when the bucket has that arm: the choice did
 *              not depend on the outcome, so the outcome is as good
 *              evidence of the arm as any (it has no propensity, so
 *              off-policy evaluation leaves it out). Nothing else:
 *              not the arm's pulls (the policy did not choose it), not its
 *              latency ring nor health (an outage's events arrive late).
 *   correction the reward becomes 0, the posterior amended once.
 *   provider_error  recorded in the log; no effect on health (it may be
 *              hours old).
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

_Static_assert(PROTO_LOCAL_ID_MAX <= STORE_LOCAL_ID_MAX,
               "a local id must fit its stored record");
_Static_assert(AUTH_NAME_MAX <= sizeof(((store_local_t *)0)->client),
               "a client's name must fit its stored record");
_Static_assert(PROTO_TENANT_MAX <= STORE_TENANT_MAX,
               "a tenant must fit its stored record");

/* The time of a local decision: the client's, no later than now. */
static double
ctl_book_time(const proto_request_t *rq, double now)
{
    return rq->local_time < now ? rq->local_time : now;
}

/* The figures against the limits, the time against retention. Returns
 * NULL or the error reply. */
static char *
ctl_book_check(ctl_t *c, const proto_request_t *rq, double now)
{
    char *err;
    if (rq->kind == PROTO_KIND_OUTCOME && (err = ctl_check_limits(c, rq)))
        return err;
    const char *served = rq->model[0] ? rq->model : rq->local_model;
    int m = cfg_model_find(c->cfg, served);
    if (rq->kind == PROTO_KIND_OUTCOME && rq->has_cost &&
        rq->cost_usd > ctl_cost_ceiling(c, m))
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"cost_usd\": %g is above what \"%s\" can "
                         "cost (%g USD at limits.max_tokens_in/out)",
                         rq->cost_usd, served, ctl_cost_ceiling(c, m));
    if (rq->local_time > now + CTL_BOOK_SKEW_S)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"local.time\": %.3f is more than %g s ahead "
                         "of the controller's clock (%.3f)",
                         rq->local_time, CTL_BOOK_SKEW_S, now);
    /* the client's own time, not the capped one: a booking sent again
     * after retention pruned it must be refused, not booked twice */
    if (rq->local_time < now - c->cfg->retention_s ||
        rq->local_time <= c->pruned_local_t)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"local.time\": %.3f is older than "
                         "store.retention_s (%g s) or than local decisions "
                         "already pruned: a booking that old could not be "
                         "told from one sent again",
                         rq->local_time, c->cfg->retention_s);
    return NULL;
}

/* A new local decision: its records and an id of the sequence. */
static int
ctl_book_new(ctl_t *c, const proto_request_t *rq, double now,
             store_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->version = STORE_VERSION;
    d->id = c->seq + 1;
    d->t = ctl_book_time(rq, now);
    d->flags = STORE_D_LOCAL | STORE_D_SETTLED;
    snprintf(d->bucket, sizeof d->bucket, "%s", rq->bucket);
    snprintf(d->model, sizeof d->model, "%s", rq->local_model);
    store_local_t x = {.version = STORE_VERSION};
    snprintf(x.client, sizeof x.client, "%s", c->peer->name);
    snprintf(x.local_id, sizeof x.local_id, "%s", rq->local_id);
    int rc = store_put_decision(c->store, c->txn, d);
    if (!rc)
        rc = store_put_local(c->store, c->txn, d->id, &x);
    if (!rc && rq->tenant[0])
        rc = store_put_tenant(c->store, c->txn, d->id, rq->tenant);
    if (rc)
        return rc;
    /* the id is issued as a choose's would be: above the durable mark
     * after a crash (ctl_int.h) */
    c->seq = d->id;
    if (d->id > c->hwm)
        c->hwm = d->id + CTL_HWM_STEP;
    c->meta_dirty = 1;
    return 0;
}

/* The record of the booking's local decision, found by (client, local id)
 * or made. Returns NULL with *d filled, or the error reply. */
static char *
ctl_book_record(ctl_t *c, const proto_request_t *rq, double now,
                store_decision_t *d)
{
    uint64_t id;
    int rc =
        store_find_local(c->store, c->txn, c->peer->name, rq->local_id, &id);
    if (rc == STORE_NOTFOUND)
        rc = ctl_book_new(c, rq, now, d);
    else if (!rc)
        rc = store_get_decision(c->store, c->txn, id, d);
    if (rc == STORE_NOTFOUND) /* the index without its decision */
        return ctl_error(rq, PROTO_E_DECISION_EXPIRED,
                         "field \"local.id\": local decision \"%s\" was "
                         "pruned",
                         rq->local_id);
    if (rc) {
        ctl_store_rc(c, rc, "book");
        return ctl_error(rq, PROTO_E_STORE,
                         "cannot record local decision \"%s\": %s",
                         rq->local_id, store_strerror(rc));
    }
    if (!(d->flags & STORE_D_LOCAL) || strcmp(d->bucket, rq->bucket) != 0 ||
        strcmp(d->model, rq->local_model) != 0)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"local.id\": local decision \"%s\" was "
                         "booked with bucket \"%s\" and model \"%s\"",
                         rq->local_id, d->bucket, d->model);
    return NULL;
}

/* The arm of model in bucket now, or -1 (then *bp may be NULL). */
static int
ctl_book_arm(ctl_t *c, const char *bucket, const char *model, ctl_bucket_t **bp,
             size_t *bi)
{
    *bp = ctl_bucket_lookup(c, bucket, bi);
    int m = cfg_model_find(c->cfg, model);
    return *bp && m >= 0 ? policy_bucket_find((*bp)->pb, m) : -1;
}

/* Adds cost to pacer p when t is in its current window. Returns 1 if it
 * did. */
static int
ctl_book_pacer(pacer_t *p, double t, double cost, double now)
{
    pacer_roll(p, now);
    if (t < p->window_start)
        return 0;
    /* a request of the window (in its own slot), nothing reserved */
    pacer_reserve(p, 0, fmin(t, now));
    pacer_settle(p, 0, cost);
    return 1;
}

/* The cost of local decision d into the ledgers whose window holds it. */
static void
ctl_book_ledger(ctl_t *c, const store_decision_t *d, double cost, double now)
{
    if (ctl_book_pacer(&c->pacer, d->t, cost, now))
        c->meta_dirty = 1;
    size_t bi;
    ctl_bucket_t *b = ctl_bucket_lookup(c, d->bucket, &bi);
    if (b && b->has_budget && ctl_book_pacer(&b->pacer, d->t, cost, now))
        ctl_mark_dirty(c, bi);
    ctl_tenant_book(c, d, cost, now);
}

static void
ctl_book_outcome(ctl_t *c, const proto_request_t *rq, store_decision_t *d,
                 double now)
{
    if (rq->model[0] && strcmp(rq->model, d->model) != 0)
        snprintf(d->served, sizeof d->served, "%s", rq->model);
    const char *served = d->served[0] ? d->served : d->model;
    d->reward_reported = rq->reward;
    d->reward_applied = (d->flags & STORE_D_CORRECTION) ? 0.0 : rq->reward;
    d->t_outcome = now;
    d->flags |= STORE_D_OUTCOME;
    double cost = ctl_event_cost(c, rq, served, d, 0.0);
    if (rq->has_latency) {
        d->latency_ms = rq->latency_ms;
        d->flags |= STORE_D_LATENCY;
    }
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_book_arm(c, d->bucket, served, &b, &bi);
    if (a >= 0) {
        policy_reward(b->pb, a, d->reward_applied, now);
        d->flags |= STORE_D_APPLIED;
        if (d->flags & STORE_D_COST)
            policy_cost(b->pb, a, cost, now);
        ctl_mark_dirty(c, bi);
    }
    ctl_book_ledger(c, d, cost, now);
    d->cost_usd = cost;
}

/* A correction: the reward becomes 0 (amended once in the posterior). */
static void
ctl_book_correction(ctl_t *c, store_decision_t *d, double now)
{
    d->flags |= STORE_D_CORRECTION;
    if (!(d->flags & STORE_D_APPLIED) || d->reward_applied == 0.0)
        return;
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_book_arm(c, d->bucket, d->served[0] ? d->served : d->model, &b,
                         &bi);
    if (a >= 0) {
        policy_amend(b->pb, a, d->reward_applied, 0.0, d->t_outcome, now);
        ctl_mark_dirty(c, bi);
    }
    d->reward_applied = 0.0;
}

char *
ctl_op_book(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    char *err = ctl_book_check(c, rq, now);
    store_decision_t d;
    if (err || (err = ctl_book_record(c, rq, now, &d)))
        return err;
    int dup = 0;
    switch (rq->kind) {
    case PROTO_KIND_OUTCOME:
        dup = !!(d.flags & STORE_D_OUTCOME);
        if (!dup)
            ctl_book_outcome(c, rq, &d, now);
        break;
    case PROTO_KIND_CORRECTION:
        dup = !!(d.flags & STORE_D_CORRECTION);
        if (!dup)
            ctl_book_correction(c, &d, now);
        break;
    case PROTO_KIND_PROVIDER_ERROR:
        dup = !!(d.flags & STORE_D_PROVERR);
        if (dup)
            break;
        d.flags |= STORE_D_PROVERR;
        snprintf(d.error, sizeof d.error, "%.127s",
                 rq->error[0] ? rq->error : "provider error");
        break;
    }
    if (dup)
        return proto_write_ok(rq->echo, 1);
    ctl_store_rc(c, store_put_decision(c->store, c->txn, &d), "put decision");
    return proto_write_ok(rq->echo, 0);
}

void
ctl_book_origin(const ctl_t *c, MDB_txn *txn, const store_decision_t *d,
                cJSON *o)
{
    store_local_t x;
    if (store_get_local(c->store, txn, d->id, &x) != 0)
        memset(&x, 0, sizeof x);
    cJSON_AddNullToObject(o, "decision_id");
    cJSON_AddStringToObject(o, "local_id", x.local_id);
    cJSON_AddStringToObject(o, "client", x.client);
    cJSON_AddArrayToObject(o, "offered");
}

proto_bucket_t *
ctl_book_buckets(const ctl_t *c, size_t *n)
{
    proto_bucket_t *bs =
        c->n_buckets ? bursar_calloc(c->n_buckets, sizeof *bs) : NULL;
    for (size_t i = 0; i < c->n_buckets; i++) {
        const ctl_bucket_t *b = c->buckets[i];
        proto_bucket_t *e = &bs[i];
        bursar_copy_str(e->name, sizeof e->name, b->def.name);
        for (size_t k = 0; k < b->pb->n_arms && k < PROTO_MAX_BUCKET_MODELS;
             k++)
            e->models[e->n_models++] = (unsigned)b->pb->model[k];
        e->expected_tokens_in = b->def.expected_tokens_in;
        e->expected_tokens_out = b->def.expected_tokens_out;
    }
    *n = c->n_buckets;
    return bs;
}
