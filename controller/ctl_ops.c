/*
 * ctl_ops.c - the controller's ops that change state: choose, feedback
 * (outcome, correction, provider error), expiry and retention.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

/* ------------------------------------------------------------------ */
/* Ops                                                                 */

char *ctl_error(const proto_request_t *rq, proto_code_t code, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

char *
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

/* The record of a decision (its id is the next in sequence). */
static void
ctl_decision_fill(ctl_t *c, const ctl_bucket_t *b, const policy_choice_t *ch,
                  double now, store_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->version = STORE_VERSION;
    d->id = c->seq + 1;
    d->t = now;
    d->propensity = ch->propensity;
    d->reserved_usd = ch->expected_cost > 0 ? ch->expected_cost : 0;
    snprintf(d->bucket, sizeof d->bucket, "%s", b->def.name);
    snprintf(d->model, sizeof d->model, "%s", ctl_model_name(c, ch->model));
    if (ch->flags & POLICY_F_EXPLORED)
        d->flags |= STORE_D_EXPLORED;
    if (ch->flags & POLICY_F_UNAFFORDABLE)
        d->flags |= STORE_D_OVER_BUDGET;
    if (b->has_budget)
        d->flags |= STORE_D_BUCKET_RES;
}

/* The reply: the decision and, as fallbacks, the rest of its ranking.
 * policy_choose ranks only the arms of its mask (allowed, and affordable
 * by the same snapshot costs that made the choice; every allowed arm,
 * cheapest first, when nothing was affordable), so they are not checked
 * again here against live costs that could disagree with the mask. Nor is
 * the chosen arm's reservation subtracted: a fallback replaces the chosen
 * call, it is not made on top of it. */
static char *
ctl_choice_reply(const ctl_t *c, const ctl_bucket_t *b,
                 const proto_request_t *rq, const store_decision_t *d, int arm,
                 size_t n_order)
{
    const char *fb[CFG_MAX_ARMS];
    size_t n_fb = 0;
    for (size_t k = 0; k < n_order && n_fb < CFG_MAX_ARMS; k++) {
        int a = c->order[k];
        if (a == arm || a < 0 || (size_t)a >= b->pb->n_arms)
            continue;
        fb[n_fb++] = ctl_model_name(c, b->pb->model[a]);
    }
    proto_choice_t pc = {.decision = d->id,
                         .model = d->model,
                         .propensity = d->propensity,
                         .n_fallbacks = n_fb,
                         .fallbacks = fb,
                         .expected_cost_usd = d->reserved_usd,
                         .over_budget = !!(d->flags & STORE_D_OVER_BUDGET),
                         .explored = !!(d->flags & STORE_D_EXPLORED)};
    return proto_write_choice(rq->echo, &pc);
}

char *
ctl_op_choose(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    char *reply = NULL;
    size_t bi = 0;
    ctl_bucket_t *b = ctl_bucket_get(c, rq, now, &bi, &reply);
    if (!b)
        return reply;
    allow_counts_t ac;
    if (ctl_build_mask(c, b, rq, now, &ac) == 0)
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
    ctl_decision_fill(c, b, &ch, now, &d);
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
    return ctl_choice_reply(c, b, rq, &d, ch.arm, n_order);
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

char *
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
