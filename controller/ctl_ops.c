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
                 size_t n_order, const char *token)
{
    const char *fb[CFG_MAX_ARMS];
    size_t n_fb = 0;
    for (size_t k = 0; k < n_order && n_fb < CFG_MAX_ARMS; k++) {
        int a = c->order[k];
        if (a == arm || a < 0 || (size_t)a >= b->pb->n_arms)
            continue;
        fb[n_fb++] = ctl_model_name(c, b->pb->model[a]);
    }
    proto_choice_t pc = {.decision = token,
                         .model = d->model,
                         .propensity = d->propensity,
                         .n_fallbacks = n_fb,
                         .fallbacks = fb,
                         .expected_cost_usd = d->reserved_usd,
                         .over_budget = !!(d->flags & STORE_D_OVER_BUDGET),
                         .tenant_unbudgeted =
                             !!(d->flags & STORE_D_TENANT_NOBUDGET),
                         .explored = !!(d->flags & STORE_D_EXPLORED)};
    return proto_write_choice(rq->echo, &pc);
}

/* The arms the reply offers: the chosen one and its fallbacks, which is
 * the set the decision was drawn from and its propensity is relative to:
 * policy_choose ranks every arm of its mask (allowed after exclusions,
 * cooldowns, the client's own breakers and the latency objective, and
 * affordable; every allowed arm when none is affordable), so the ranking
 * and the draw cover the same arms. Off-policy evaluation reads the set
 * (docs/ope.md, "Cascades and exclusions"). */
static uint64_t
ctl_offered(const ctl_t *c, const ctl_bucket_t *b, int arm, size_t n_order)
{
    uint64_t set = 1ull << arm;
    for (size_t k = 0; k < n_order; k++)
        if (c->order[k] >= 0 && (size_t)c->order[k] < b->pb->n_arms)
            set |= 1ull << c->order[k];
    return set;
}

void
ctl_token_make(const ctl_t *c, const store_decision_t *d, const store_dext_t *x,
               char *out)
{
    token_t tk = {.id = d->id,
                  .t = d->t,
                  .propensity = d->propensity,
                  .reserved = d->reserved_usd,
                  .offered = x->offered,
                  .parent = x->parent,
                  .step = x->step,
                  .flags = d->flags & CTL_TOKEN_FLAGS};
    snprintf(tk.bucket, sizeof tk.bucket, "%s", d->bucket);
    snprintf(tk.model, sizeof tk.model, "%s", d->model);
    snprintf(tk.client, sizeof tk.client, "%.*s", (int)sizeof x->client,
             x->client);
    token_encode(c->token_key, &tk, out);
}

/* The dext record of a decision: what its token adds to the record. */
static void
ctl_dext_fill(store_dext_t *x, uint64_t offered, const char *client,
              unsigned step, uint64_t parent)
{
    memset(x, 0, sizeof *x);
    x->version = STORE_VERSION;
    x->step = (uint8_t)(step > TOKEN_STEP_MAX ? TOKEN_STEP_MAX : step);
    x->offered = offered;
    x->parent = parent;
    snprintf(x->client, sizeof x->client, "%s", client);
}

/* Writes the decision's records (decision, pending, dext) and its token. */
static int
ctl_decision_put(ctl_t *c, const store_decision_t *d, const store_dext_t *x,
                 char *token)
{
    int rc = store_put_decision(c->store, c->txn, d);
    if (!rc)
        rc = store_put_pending(c->store, c->txn, d->id, d->t);
    if (!rc)
        rc = store_put_dext(c->store, c->txn, d->id, x);
    if (rc || !token)
        return rc;
    ctl_token_make(c, d, x, token);
    return 0;
}

/* A decision token a request names in field: made with this controller's
 * key, and the peer's own unless it has the feedback role (verb: what the
 * peer may do to its own decisions only). Returns NULL with *tk filled,
 * or the error reply (unknown_decision, forbidden). */
static char *
ctl_token_check(ctl_t *c, const proto_request_t *rq, const char *field,
                const char *text, const char *verb, token_t *tk)
{
    if (token_decode(c->token_key, text, tk) != 0)
        return ctl_error(rq, PROTO_E_UNKNOWN_DECISION,
                         "field \"%s\": not a decision of this controller "
                         "(malformed, altered, or made with another key)",
                         field);
    if (strcmp(tk->client, c->peer->name) != 0 &&
        !(c->peer_roles & AUTH_FEEDBACK)) {
        char id[PROTO_ID_LEN + 1];
        proto_id_format(tk->id, id);
        return ctl_error(rq, PROTO_E_FORBIDDEN,
                         "field \"%s\": decision %s was issued to another "
                         "client; client \"%s\" may %s only its own "
                         "decisions (role feedback: any)",
                         field, id, c->peer->name, verb);
    }
    return NULL;
}

/* The decision a choose escalates (its field "escalates"): verified as
 * feedback verifies its decision_id (a token of this controller, the
 * peer's own unless it has the feedback role); *step and *parent receive
 * the new decision's step (the parent's + 1, capped) and its parent's
 * id, 0 and 0 without the field. The parent's record is not read: the
 * token carries what the link needs, even after retention pruned it.
 * Returns NULL, or the error reply (unknown_decision, forbidden). */
static char *
ctl_choose_parent(ctl_t *c, const proto_request_t *rq, unsigned *step,
                  uint64_t *parent)
{
    *step = 0;
    *parent = 0;
    if (!rq->escalates[0])
        return NULL;
    token_t tk;
    char *err =
        ctl_token_check(c, rq, "escalates", rq->escalates, "escalate", &tk);
    if (err)
        return err;
    *step = tk.step >= TOKEN_STEP_MAX ? TOKEN_STEP_MAX : tk.step + 1;
    *parent = tk.id;
    return NULL;
}

char *
ctl_op_choose(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    unsigned step;
    uint64_t parent;
    char *reply = ctl_client_inflight(c, rq);
    if (!reply)
        reply = ctl_choose_parent(c, rq, &step, &parent);
    if (reply)
        return reply;
    size_t bi = 0;
    ctl_bucket_t *b = ctl_bucket_get(c, rq, now, &bi, &reply);
    if (!b)
        return reply;
    allow_counts_t ac;
    if (ctl_build_mask(c, b, rq, now, &ac) == 0)
        return ctl_error(rq, PROTO_E_NO_MODEL,
                         "no model of bucket \"%s\" can be chosen: %zu "
                         "excluded by field \"exclude\", %zu cooling down "
                         "after provider errors or marked down",
                         b->def.name, ac.excluded, ac.cooling);
    policy_request_t req;
    ctl_build_request(c, b, now, &req);
    ctl_batch_t *bt = NULL;
    ctl_tenant_pick_t tn;
    if ((reply = ctl_batch_find(c, rq, b, &req, now, &bt)) ||
        (reply = ctl_tenant_request(c, rq, b, &req, now, &tn)) ||
        (reply = ctl_exhausted(c, rq, b, bt, tn.t, &req, 0)))
        return reply;
    policy_choice_t ch;
    size_t n_order = 0;
    if (policy_choose(&c->policy, b->pb, &req, c->rng, &ch, c->order,
                      &n_order) != 0 ||
        ch.arm < 0)
        return ctl_error(rq, PROTO_E_NO_MODEL,
                         "no model of bucket \"%s\" can be chosen",
                         b->def.name);
    if ((ch.flags & POLICY_F_UNAFFORDABLE) &&
        (reply = ctl_exhausted(c, rq, b, bt, tn.t, &req, 1))) {
        b->pb->arms[ch.arm].pulls--; /* refused: not a decision */
        c->policy.decisions--;
        return reply;
    }
    store_decision_t d;
    ctl_decision_fill(c, b, &ch, now, &d);
    d.flags |= tn.flags;
    /* a half-open breaker: this decision is its probe (memory is reloaded
     * if the batch does not commit) */
    if (health_chosen(&c->health[ch.model], d.id, now)) {
        d.flags |= STORE_D_PROBE;
        c->health_dirty[ch.model] = 1;
    }
    health_t *own = ctl_client_health(c->peer, ch.model);
    if (own)
        health_chosen(own, d.id, now);
    char token[TOKEN_CHARS + 1];
    store_dext_t x;
    ctl_dext_fill(&x, ctl_offered(c, b, ch.arm, n_order), c->peer->name, step,
                  parent);
    int rc = ctl_decision_put(c, &d, &x, token);
    if (!rc && rq->tenant[0])
        rc = store_put_tenant(c->store, c->txn, d.id, rq->tenant);
    if (rc) {
        /* the batch will not commit; memory is reloaded after it */
        ctl_store_rc(c, rc, "put decision");
        return ctl_error(rq, PROTO_E_STORE, "cannot record the decision: %s",
                         store_strerror(rc));
    }
    c->seq = d.id;
    c->n_decisions++;
    c->peer->inflight++;
    /* The reply may leave before the commit when its id is below the
     * durable high-water mark; else the mark moves up and the reply waits
     * for the commit that makes it durable. */
    c->early = d.id <= c->hwm_durable &&
               (c->early_after == 0 || util_mono_time() >= c->early_after);
    if (d.id > c->hwm)
        c->hwm = d.id + CTL_HWM_STEP;
    if (bt)
        ctl_batch_reserve(c, bt, d.reserved_usd);
    else
        pacer_reserve(&c->pacer, d.reserved_usd, now);
    if (b->has_budget)
        pacer_reserve(&b->pacer, d.reserved_usd, now);
    ctl_tenant_chosen(c, &tn, &ch, &d);
    ctl_mark_dirty(c, bi);
    c->meta_dirty = 1;
    return ctl_choice_reply(c, b, rq, &d, ch.arm, n_order, token);
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
    double held = (d->flags & STORE_D_REBUILT) ? 0.0 : d->reserved_usd;
    pacer_roll(&c->pacer, now);
    pacer_settle(&c->pacer, held, cost);
    c->meta_dirty = 1;
    if (d->flags & STORE_D_BUCKET_RES) {
        size_t bi;
        ctl_bucket_t *b = ctl_bucket_lookup(c, d->bucket, &bi);
        if (b && b->has_budget) {
            pacer_roll(&b->pacer, now);
            pacer_settle(&b->pacer, held, cost);
            ctl_mark_dirty(c, bi);
        }
    }
    ctl_tenant_settle(c, d, held, cost, now);
    d->cost_usd = cost;
    d->flags |= STORE_D_SETTLED;
    c->met.batch.spend_usd += cost;
    c->met.batch.any = 1;
}

static const char *
ctl_served(const store_decision_t *d)
{
    return d->served[0] ? d->served : d->model;
}

static void ctl_expire(ctl_t *c, store_decision_t *d, const char *client,
                       double now);
static int ctl_decision_arm(ctl_t *c, const char *bucket, const char *model,
                            ctl_bucket_t **bp, size_t *bi);

/* The ceiling of a reported cost for model m: its price at the token
 * ceilings, or limits.max_cost_usd for a model without prices. */
double
ctl_cost_ceiling(const ctl_t *c, int m)
{
    double p = m >= 0
                   ? cfg_model_cost(&c->cfg->models[m], c->cfg->max_tokens_in,
                                    c->cfg->max_tokens_out)
                   : 0;
    return p > 0 ? p : c->cfg->max_cost_usd;
}

char *
ctl_check_limits(ctl_t *c, const proto_request_t *rq)
{
    const cfg_t *g = c->cfg;
    if (rq->has_tokens && rq->tokens_in > g->max_tokens_in)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"tokens_in\": %g is above "
                         "limits.max_tokens_in (%g)",
                         rq->tokens_in, g->max_tokens_in);
    if (rq->has_tokens && rq->tokens_out > g->max_tokens_out)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"tokens_out\": %g is above "
                         "limits.max_tokens_out (%g)",
                         rq->tokens_out, g->max_tokens_out);
    if (rq->has_latency && rq->latency_ms > g->max_latency_ms)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"latency_ms\": %g is above "
                         "limits.max_latency_ms (%g)",
                         rq->latency_ms, g->max_latency_ms);
    return NULL;
}

/* Checks an outcome's figures against the ceilings and its model against
 * the models the decision offered, before anything is applied. Returns
 * NULL or the error reply (invalid_value, unknown_model). */
static char *
ctl_check_outcome(ctl_t *c, const proto_request_t *rq, const token_t *tk)
{
    const cfg_t *g = c->cfg;
    char *err = ctl_check_limits(c, rq);
    if (err)
        return err;
    const char *served = rq->model[0] ? rq->model : tk->model;
    int m = cfg_model_find(g, served);
    if (rq->model[0] && strcmp(rq->model, tk->model) != 0) {
        const ctl_bucket_t *b = ctl_bucket_lookup(c, tk->bucket, NULL);
        int a = b && m >= 0 ? policy_bucket_find(b->pb, m) : -1;
        if (a < 0)
            return ctl_error(rq, PROTO_E_UNKNOWN_MODEL,
                             "field \"model\": \"%s\" is not a model of "
                             "bucket \"%s\"",
                             rq->model, tk->bucket);
        if (!((tk->offered >> a) & 1))
            return ctl_error(rq, PROTO_E_INVALID_VALUE,
                             "field \"model\": \"%s\" was not offered by "
                             "this decision (neither its model nor one of its "
                             "fallbacks)",
                             rq->model);
    }
    if (rq->has_cost && rq->cost_usd > ctl_cost_ceiling(c, m))
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"cost_usd\": %g is above what \"%s\" can "
                         "cost (%g USD at limits.max_tokens_in/out)",
                         rq->cost_usd, served, ctl_cost_ceiling(c, m));
    return NULL;
}

double
ctl_event_cost(const ctl_t *c, const proto_request_t *rq, const char *served,
               store_decision_t *d, double dflt)
{
    double cost = dflt;
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
    return cost;
}

static void
ctl_op_outcome(ctl_t *c, const proto_request_t *rq, store_decision_t *d,
               const token_t *tk, double now)
{
    /* the model was checked against the offered set: ctl_check_outcome */
    if (rq->model[0] && strcmp(rq->model, d->model) != 0)
        snprintf(d->served, sizeof d->served, "%s", rq->model);
    const char *served = ctl_served(d);
    d->reward_reported = rq->reward;
    d->reward_applied = (d->flags & STORE_D_CORRECTION) ? 0.0 : rq->reward;
    d->t_outcome = now;
    d->flags |= STORE_D_OUTCOME | STORE_D_APPLIED;
    ctl_apply_reward(c, d, served, d->reward_applied, now);

    double cost = ctl_event_cost(c, rq, served, d, d->reserved_usd);
    int m = cfg_model_find(c->cfg, served);
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
        health_t *own = ctl_client_health(ctl_client_get(c, tk->client), m);
        if (own)
            health_success(own, d->id, d->t);
    }
    ctl_store_rc(c, store_del_pending(c->store, c->txn, d->id), "del pending");
    ctl_client_settled(c, tk->client);
}

/* The record of a decision whose token verified but whose record is gone:
 * lost with an uncommitted batch (a crash, a failed commit) after its
 * choose was answered. The caller rebuilds only a token within its TTL and
 * above the pruned watermark: never a record that retention removed. Its
 * reservation was lost with the
 * batch: the record says so (STORE_D_REBUILT) and settling books the cost
 * without releasing anything. */
static int
ctl_decision_rebuild(ctl_t *c, const token_t *tk, store_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->version = STORE_VERSION;
    d->id = tk->id;
    d->t = tk->t;
    d->propensity = tk->propensity;
    d->reserved_usd = tk->reserved;
    d->flags = (tk->flags & CTL_TOKEN_FLAGS) | STORE_D_REBUILT;
    snprintf(d->bucket, sizeof d->bucket, "%s", tk->bucket);
    snprintf(d->model, sizeof d->model, "%s", tk->model);
    store_dext_t x; /* everything the token carries: offered set, link */
    ctl_dext_fill(&x, tk->offered, tk->client, tk->step, tk->parent);
    int rc = ctl_decision_put(c, d, &x, NULL);
    if (rc)
        return rc;
    ctl_client_get(c, tk->client)->inflight++;
    /* the counts the lost batch had made (not the shadow price's step:
     * it depended on state that is gone) */
    ctl_bucket_t *b;
    size_t bi;
    int a = ctl_decision_arm(c, d->bucket, d->model, &b, &bi);
    if (a >= 0) {
        b->pb->arms[a].pulls++;
        ctl_mark_dirty(c, bi);
    }
    c->policy.decisions++;
    c->meta_dirty = 1;
    c->met.batch.rebuilt++;
    c->met.batch.any = 1;
    return 0;
}

/* Verifies the token, its owner and (outcomes) the figures, and finds or
 * rebuilds the record. Returns NULL with *d filled, or the error reply. */
static char *
ctl_feedback_decision(ctl_t *c, const proto_request_t *rq, token_t *tk,
                      store_decision_t *d, double now)
{
    char *err = ctl_token_check(c, rq, "decision_id", rq->decision,
                                "give feedback on", tk);
    if (err)
        return err;
    char id[PROTO_ID_LEN + 1];
    proto_id_format(tk->id, id);
    if (rq->kind == PROTO_KIND_OUTCOME && (err = ctl_check_outcome(c, rq, tk)))
        return err;
    int rc = store_get_decision(c->store, c->txn, tk->id, d);
    if (rc == 0 && (d->t != tk->t || strcmp(d->bucket, tk->bucket) != 0 ||
                    strcmp(d->model, tk->model) != 0))
        /* cannot happen while ids are unique (the high-water mark); a
         * store replaced under a kept token.key would do it */
        return ctl_error(rq, PROTO_E_UNKNOWN_DECISION,
                         "field \"decision_id\": decision %s in the store is "
                         "not the one this token names",
                         id);
    /* A missing record is rebuilt only when it can have been lost to a
     * crash: never pruned (retention prunes ids in order) and within its
     * TTL. */
    if (rc == STORE_NOTFOUND &&
        (tk->id <= c->pruned || tk->t + c->cfg->decision_ttl_s <= now))
        return ctl_error(rq, PROTO_E_DECISION_EXPIRED,
                         "field \"decision_id\": decision %s is older than "
                         "decision_ttl_s (%g s) or was pruned: its record is "
                         "gone",
                         id, c->cfg->decision_ttl_s);
    if (rc == STORE_NOTFOUND)
        rc = ctl_decision_rebuild(c, tk, d);
    if (rc) {
        ctl_store_rc(c, rc, "get decision");
        return ctl_error(rq, PROTO_E_STORE, "cannot read decision %s: %s", id,
                         store_strerror(rc));
    }
    return NULL;
}

/* A feedback; *dup is set to 0 (applied) or 1 (duplicate) when it is
 * answered ok. */
static char *
ctl_feedback(ctl_t *c, const proto_request_t *rq, int *dup_out)
{
    double now = ctl_now(c);
    token_t tk;
    store_decision_t d;
    char *err = ctl_feedback_decision(c, rq, &tk, &d, now);
    if (err)
        return err;
    char id[PROTO_ID_LEN + 1];
    proto_id_format(tk.id, id);
    if (!(d.flags & (STORE_D_OUTCOME | STORE_D_EXPIRED)) &&
        d.t + c->cfg->decision_ttl_s <= now) {
        /* past its ttl but not swept yet: expire it now, so that the
         * answer does not depend on when the sweep ran */
        ctl_expire(c, &d, tk.client, now);
        ctl_store_rc(c, store_put_decision(c->store, c->txn, &d),
                     "put decision");
        ctl_store_rc(c, store_del_pending(c->store, c->txn, d.id),
                     "del pending");
        ctl_client_settled(c, tk.client);
    }
    if (d.flags & STORE_D_EXPIRED)
        return ctl_error(rq, PROTO_E_DECISION_EXPIRED,
                         "field \"decision_id\": decision %s expired without "
                         "an outcome after %g s",
                         id, c->cfg->decision_ttl_s);
    int dup = 0, conflict = 0;
    switch (rq->kind) {
    case PROTO_KIND_OUTCOME:
        dup = !!(d.flags & STORE_D_OUTCOME);
        /* a second outcome of another value: the first is kept, and the
         * reply says it differs (a resend carries the same value) */
        conflict = dup && rq->reward != d.reward_reported;
        if (!dup)
            ctl_op_outcome(c, rq, &d, &tk, now);
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
        if (m >= 0) /* the decision's client's, whoever reports it */
            ctl_client_failure(c, ctl_client_get(c, tk.client), m, d.id, now);
        break;
    }
    }
    *dup_out = dup;
    if (conflict)
        return proto_write_conflict(rq->echo, d.reward_reported);
    if (dup)
        return proto_write_ok(rq->echo, 1);
    ctl_store_rc(c, store_put_decision(c->store, c->txn, &d), "put decision");
    return proto_write_ok(rq->echo, 0);
}

/* Counts a feedback by kind and result (bursar_feedback_total): applied,
 * duplicate, or the error reply's code (read back from the reply: the
 * error path only). */
static void
ctl_feedback_count(ctl_t *c, proto_kind_t kind, int dup, const char *reply)
{
    int res = dup ? CTL_FB_DUPLICATE : CTL_FB_APPLIED;
    if (dup < 0) {
        proto_reply_t r;
        proto_error_t e;
        int code = PROTO_E_INTERNAL;
        if (proto_parse_reply(reply, strlen(reply), PROTO_OP_FEEDBACK, &r,
                              &e) == PROTO_OK &&
            !r.ok)
            code = (int)r.error.code;
        res = CTL_FB_ERROR + code;
    }
    if ((unsigned)kind < CTL_FB_KINDS && res < CTL_FB_RESULTS) {
        c->met.batch.feedback[kind][res]++;
        c->met.batch.any = 1;
    }
}

char *
ctl_op_feedback(ctl_t *c, const proto_request_t *rq)
{
    int dup = -1;
    char *reply = ctl_feedback(c, rq, &dup);
    ctl_feedback_count(c, rq->kind, dup, reply);
    return reply;
}

/* Expires one pending decision of client. */
static void
ctl_expire(ctl_t *c, store_decision_t *d, const char *client, double now)
{
    d->flags |= STORE_D_EXPIRED;
    c->met.batch.expired++;
    c->met.batch.any = 1;
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
    health_t *own = ctl_client_health(ctl_client_get(c, client), m);
    if (own)
        health_expired(own, d->id);
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
        store_dext_t x;
        if (store_get_dext(c->store, c->txn, id, &x) != 0)
            memset(&x, 0, sizeof x);
        x.client[sizeof x.client - 1] = '\0';
        int rc = store_get_decision(c->store, c->txn, id, &d);
        if (rc == 0 && !(d.flags & (STORE_D_OUTCOME | STORE_D_EXPIRED))) {
            ctl_expire(c, &d, x.client, now);
            ctl_store_rc(c, store_put_decision(c->store, c->txn, &d),
                         "put decision");
        }
        ctl_store_rc(c, store_del_pending(c->store, c->txn, id), "del pending");
        ctl_client_settled(c, x.client);
        n++;
    }
    /* Retention: at most 1000 settled decisions per second of loop. */
    if (now >= c->next_prune) {
        c->next_prune = now + 1.0;
        for (int k = 0; k < 1000 && !c->txn_failed; k++) {
            store_decision_t d;
            if (store_oldest_decision(c->store, c->txn, &d) != 0)
                break;
            /* a local decision's time is the client's, capped at the
             * booking's now: kept CTL_BOOK_SKEW_S longer, so that the
             * same booking sent again is older than retention */
            int local = !!(d.flags & STORE_D_LOCAL);
            if (d.t >=
                    now - c->cfg->retention_s - (local ? CTL_BOOK_SKEW_S : 0) ||
                !(d.flags &
                  (STORE_D_OUTCOME | STORE_D_EXPIRED | STORE_D_LOCAL)))
                break;
            ctl_store_rc(c, store_del_decision(c->store, c->txn, d.id),
                         "del decision");
            ctl_store_rc(c, store_del_dext(c->store, c->txn, d.id), "del dext");
            ctl_store_rc(c, store_del_tenant(c->store, c->txn, d.id),
                         "del tenant");
            if (d.flags & STORE_D_LOCAL) /* never pending: settled */
                ctl_store_rc(c, store_del_local(c->store, c->txn, d.id),
                             "del local");
            if (local && d.t + CTL_BOOK_SKEW_S > c->pruned_local_t)
                c->pruned_local_t = d.t + CTL_BOOK_SKEW_S;
            if (!local && d.id > c->pruned) /* local times do not follow
                                               ids */
                c->pruned = d.id;
            c->meta_dirty = 1;
        }
    }
    return n;
}
