/*
 * ctl_admin.c - the operator's admin ops (docs/protocol.md, "Admin
 * operations"): adjust the ledger, reset an arm to its prior, mark a model
 * down or up, show one decision whole.
 *
 * Each of adjust, reset and mark writes one entry of the admin log
 * (store.h, db admin: time, op, client, arguments, reason, result) into
 * the batch's transaction, the one that carries its effect: the entry and
 * the effect commit together or not at all (a failed commit reloads
 * memory from the store, ctl_commit). Nothing here computes a decision: a
 * reset arm starts again from the prior a new arm gets (ctl_arm_prior), a
 * model marked down is left out by the allowed set (health.h: the breaker
 * reports it down, allow_mask honours it).
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

_Static_assert(PROTO_REASON_MAX <= STORE_REASON_MAX,
               "a reason fits the admin log");
_Static_assert(AUTH_NAME_MAX <= sizeof(((store_admin_t *)0)->client),
               "a client's name fits the admin log");
_Static_assert(PROTO_TENANT_MAX <= sizeof(((store_admin_t *)0)->tenant),
               "a tenant fits the admin log");

/* Children of a decision are looked for among the decisions made up to
 * decision_ttl_s after it, at most this many (show). */
#define CTL_SHOW_SCAN 10000

/* ------------------------------------------------------------------ */
/* The admin log                                                       */

static const char *
ctl_admin_op_name(unsigned op)
{
    switch (op) {
    case STORE_ADMIN_ADJUST:
        return "adjust";
    case STORE_ADMIN_RESET:
        return "reset";
    case STORE_ADMIN_MARK:
        return "mark";
    default:
        return "?";
    }
}

/* A new entry of op for request rq, from the peer, now. */
static void
ctl_admin_begin(ctl_t *c, const proto_request_t *rq, unsigned op,
                store_admin_t *a)
{
    memset(a, 0, sizeof *a);
    a->op = (uint8_t)op;
    a->t = ctl_now(c);
    snprintf(a->client, sizeof a->client, "%s", c->peer->name);
    snprintf(a->bucket, sizeof a->bucket, "%s", rq->bucket);
    snprintf(a->model, sizeof a->model, "%s", rq->model);
    snprintf(a->tenant, sizeof a->tenant, "%s", rq->tenant);
    snprintf(a->reason, sizeof a->reason, "%s", rq->reason);
    a->bucket_before = a->bucket_after = NAN;
    a->tenant_before = a->tenant_after = NAN;
    a->alpha = a->beta = a->cost_mean = NAN;
}

/* Writes entry a (numbering it) into the batch. Returns NULL, or the error
 * reply: the batch will then not commit, so the effect is undone too. */
static char *
ctl_admin_put(ctl_t *c, const proto_request_t *rq, store_admin_t *a)
{
    int rc = store_put_admin(c->store, c->txn, a);
    if (!rc)
        return NULL;
    ctl_store_rc(c, rc, "put admin");
    return ctl_error(rq, PROTO_E_STORE, "cannot write the admin log: %s",
                     store_strerror(rc));
}

static void
ctl_json_num_or_null(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void
ctl_json_str_or_null(cJSON *o, const char *key, const char *s)
{
    if (s[0])
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *
ctl_admin_row(const store_admin_t *a)
{
    char id[PROTO_ID_LEN + 1];
    proto_id_format(a->id, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "admin");
    cJSON_AddStringToObject(o, "seq", id);
    cJSON_AddNumberToObject(o, "time", a->t);
    cJSON_AddStringToObject(o, "op", ctl_admin_op_name(a->op));
    cJSON_AddStringToObject(o, "client", a->client);
    cJSON_AddStringToObject(o, "reason", a->reason);
    if (a->op == STORE_ADMIN_ADJUST) {
        cJSON_AddNumberToObject(o, "amount_usd", a->amount_usd);
        ctl_json_str_or_null(o, "bucket", a->bucket);
        ctl_json_str_or_null(o, "tenant", a->tenant);
        cJSON_AddNumberToObject(o, "window_start", a->window_start);
        cJSON_AddNumberToObject(o, "spent_before_usd", a->spent_before);
        cJSON_AddNumberToObject(o, "spent_after_usd", a->spent_after);
        ctl_json_num_or_null(o, "bucket_spent_before_usd",
                             a->bucket_cap ? a->bucket_before : NAN);
        ctl_json_num_or_null(o, "bucket_spent_after_usd",
                             a->bucket_cap ? a->bucket_after : NAN);
        ctl_json_num_or_null(o, "tenant_spent_before_usd", a->tenant_before);
        ctl_json_num_or_null(o, "tenant_spent_after_usd", a->tenant_after);
    } else if (a->op == STORE_ADMIN_RESET) {
        cJSON_AddStringToObject(o, "bucket", a->bucket);
        cJSON_AddStringToObject(o, "model", a->model);
        cJSON *b = cJSON_AddObjectToObject(o, "before");
        cJSON_AddNumberToObject(b, "alpha", a->alpha);
        cJSON_AddNumberToObject(b, "beta", a->beta);
        cJSON_AddNumberToObject(b, "mean", a->alpha / (a->alpha + a->beta));
        cJSON_AddNumberToObject(b, "pulls", (double)a->pulls);
        cJSON_AddNumberToObject(b, "rewards", (double)a->rewards);
        cJSON_AddNumberToObject(b, "cost_mean_usd", a->cost_mean);
    } else if (a->op == STORE_ADMIN_MARK) {
        cJSON_AddStringToObject(o, "model", a->model);
        cJSON_AddStringToObject(o, "state", a->down ? "down" : "up");
        cJSON_AddStringToObject(o, "was", a->was_down ? "down" : "up");
    }
    return o;
}

/* The reply of an admin op: "ok", its log entry's fields, and extra
 * under key (when not NULL). */
static char *
ctl_admin_reply(const proto_request_t *rq, const store_admin_t *a, cJSON *extra,
                const char *key)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON *row = ctl_admin_row(a), *it;
    while ((it = row->child)) { /* moved into the reply, in order */
        cJSON_DetachItemViaPointer(row, it);
        cJSON_AddItemToObject(o, it->string, it);
    }
    cJSON_Delete(row);
    if (extra)
        cJSON_AddItemToObject(o, key, extra);
    return ctl_json_reply(rq, o);
}

/* ------------------------------------------------------------------ */
/* adjust                                                              */

/* Why adjust cannot book on the ledger of tenant rq->tenant, or NULL when
 * it can (checked with no side effect: the ledger is made only once the
 * whole op is known to succeed). */
static char *
ctl_adjust_tenant_check(ctl_t *c, const proto_request_t *rq, double now)
{
    int st =
        rq->tenant[0] ? ctl_tenant_status(c, rq->tenant, now) : CTL_TENANT_OK;
    if (st == CTL_TENANT_NONE)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"tenant\": tenant \"%s\" has no budget of "
                         "its own to adjust (configuration: tenants); leave "
                         "the field out to adjust the global spend",
                         rq->tenant);
    if (st == CTL_TENANT_FULL)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"tenant\": tenant \"%s\" has no ledger and "
                         "none can be made: limits.max_tenants (%zu) tenants "
                         "hold one, none idle",
                         rq->tenant, c->cfg->max_tenants);
    return NULL;
}

char *
ctl_op_adjust(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    size_t bi = 0;
    ctl_bucket_t *b = NULL;
    if (rq->bucket[0] && !(b = ctl_bucket_lookup(c, rq->bucket, &bi))) {
        char q[96];
        proto_json_quote(q, sizeof q, rq->bucket);
        return ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                         "unknown bucket %s in field \"bucket\"", q);
    }
    char *err = ctl_adjust_tenant_check(c, rq, now);
    if (err)
        return err;
    pacer_t *tp = rq->tenant[0] ? ctl_tenant_ledger(c, rq->tenant, now) : NULL;
    store_admin_t a;
    ctl_admin_begin(c, rq, STORE_ADMIN_ADJUST, &a);
    a.amount_usd = rq->amount_usd;
    pacer_roll(&c->pacer, now);
    a.window_start = c->pacer.window_start;
    a.spent_before = c->pacer.spent_usd;
    a.spent_after = fmax(0.0, a.spent_before + rq->amount_usd);
    if (b && b->has_budget) {
        pacer_roll(&b->pacer, now);
        a.bucket_cap = 1;
        a.bucket_before = b->pacer.spent_usd;
        a.bucket_after = fmax(0.0, a.bucket_before + rq->amount_usd);
    }
    if (tp) {
        a.tenant_before = tp->spent_usd;
        a.tenant_after = fmax(0.0, a.tenant_before + rq->amount_usd);
    }
    if ((err = ctl_admin_put(c, rq, &a)))
        return err;
    c->pacer.spent_usd = a.spent_after;
    c->meta_dirty = 1;
    if (a.bucket_cap) {
        b->pacer.spent_usd = a.bucket_after;
        ctl_mark_dirty(c, bi);
    }
    if (tp)
        tp->spent_usd = a.tenant_after;
    return ctl_admin_reply(rq, &a, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* reset                                                               */

/* The arm's figures as the reply's "after" shows them. */
static cJSON *
ctl_arm_brief(const arm_t *ar)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "alpha", ar->alpha);
    cJSON_AddNumberToObject(o, "beta", ar->beta);
    cJSON_AddNumberToObject(o, "mean", arm_mean(ar));
    cJSON_AddNumberToObject(o, "pulls", (double)ar->pulls);
    cJSON_AddNumberToObject(o, "rewards", (double)ar->rewards);
    cJSON_AddNumberToObject(o, "cost_mean_usd", arm_cost_mean(ar));
    return o;
}

char *
ctl_op_reset(ctl_t *c, const proto_request_t *rq)
{
    size_t bi = 0;
    char q[96];
    ctl_bucket_t *b = ctl_bucket_lookup(c, rq->bucket, &bi);
    if (!b) {
        proto_json_quote(q, sizeof q, rq->bucket);
        return ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                         "unknown bucket %s in field \"bucket\"", q);
    }
    int m = cfg_model_find(c->cfg, rq->model);
    int arm = m >= 0 ? policy_bucket_find(b->pb, m) : -1;
    if (arm < 0) {
        proto_json_quote(q, sizeof q, rq->model);
        return ctl_error(rq, PROTO_E_UNKNOWN_MODEL,
                         "field \"model\": %s is not a model of bucket \"%s\"",
                         q, b->def.name);
    }
    arm_t *ar = &b->pb->arms[arm];
    store_admin_t a;
    ctl_admin_begin(c, rq, STORE_ADMIN_RESET, &a);
    a.alpha = ar->alpha;
    a.beta = ar->beta;
    a.cost_mean = arm_cost_mean(ar);
    a.pulls = ar->pulls;
    a.rewards = ar->rewards;
    char *err = ctl_admin_put(c, rq, &a);
    if (err)
        return err;
    /* as a new arm starts: its prior, no evidence, no latencies */
    ctl_arm_prior(c, &b->def, m, ar);
    memset(&b->lat[arm], 0, sizeof b->lat[arm]);
    policy_bucket_touch(b->pb);
    ctl_mark_dirty(c, bi);
    return ctl_admin_reply(rq, &a, ctl_arm_brief(ar), "after");
}

/* ------------------------------------------------------------------ */
/* mark                                                                */

void
ctl_admin_load(ctl_t *c, MDB_txn *txn)
{
    free(c->marks);
    c->marks = bursar_calloc(c->cfg->n_models, sizeof *c->marks);
    for (size_t m = 0; m < c->cfg->n_models; m++) {
        store_mark_t mk;
        int rc = store_get_mark(c->store, txn, c->cfg->models[m].name, &mk);
        if (rc == 0) {
            c->marks[m] = mk;
            c->health[m].down = mk.down;
        } else if (rc != STORE_NOTFOUND) {
            bursar_log("bursard: store: the mark of model %s is "
                       "unreadable (%s): taken as up\n",
                       c->cfg->models[m].name, store_strerror(rc));
        }
    }
}

char *
ctl_op_mark(ctl_t *c, const proto_request_t *rq)
{
    int m = cfg_model_find(c->cfg, rq->model);
    if (m < 0) {
        char q[96];
        proto_json_quote(q, sizeof q, rq->model);
        return ctl_error(rq, PROTO_E_UNKNOWN_MODEL,
                         "unknown model %s in field \"model\"", q);
    }
    store_admin_t a;
    ctl_admin_begin(c, rq, STORE_ADMIN_MARK, &a);
    a.down = (uint8_t) !!rq->mark_down;
    a.was_down = (uint8_t) !!c->health[m].down;
    char *err = ctl_admin_put(c, rq, &a);
    if (err)
        return err;
    store_mark_t mk;
    memset(&mk, 0, sizeof mk);
    mk.version = STORE_VERSION;
    mk.down = a.down;
    mk.admin_id = a.id;
    mk.t = a.t;
    snprintf(mk.client, sizeof mk.client, "%s", a.client);
    snprintf(mk.reason, sizeof mk.reason, "%s", a.reason);
    int rc = store_put_mark(c->store, c->txn, c->cfg->models[m].name, &mk);
    if (rc) {
        ctl_store_rc(c, rc, "put mark");
        return ctl_error(rq, PROTO_E_STORE, "cannot record the mark: %s",
                         store_strerror(rc));
    }
    c->marks[m] = mk;
    c->health[m].down = mk.down;
    return ctl_admin_reply(rq, &a, NULL, NULL);
}

cJSON *
ctl_mark_json(const ctl_t *c, int m)
{
    const store_mark_t *mk = c->marks ? &c->marks[m] : NULL;
    if (!mk || !mk->down)
        return cJSON_CreateNull();
    char id[PROTO_ID_LEN + 1];
    proto_id_format(mk->admin_id, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "time", mk->t);
    cJSON_AddStringToObject(o, "client", mk->client);
    cJSON_AddStringToObject(o, "reason", mk->reason);
    cJSON_AddStringToObject(o, "admin_seq", id);
    return o;
}

/* ------------------------------------------------------------------ */
/* show                                                                */

typedef struct ctl_show_ctx {
    const ctl_t *c;
    MDB_txn *txn;
    uint64_t parent;
    double until; /* children made after this are not looked for */
    size_t seen;
    int partial; /* CTL_SHOW_SCAN rows seen before until */
    cJSON *arr;
} ctl_show_ctx_t;

static int
ctl_show_child(const store_decision_t *d, void *ctx)
{
    ctl_show_ctx_t *x = ctx;
    if (d->t > x->until && !(d->flags & STORE_D_LOCAL))
        return 1;
    if (++x->seen > CTL_SHOW_SCAN) {
        x->partial = 1;
        return 1;
    }
    store_dext_t e;
    if (store_get_dext(x->c->store, x->txn, d->id, &e) != 0 ||
        e.parent != x->parent)
        return 0;
    e.client[sizeof e.client - 1] = '\0';
    char id[PROTO_ID_LEN + 1], token[TOKEN_CHARS + 1];
    proto_id_format(d->id, id);
    ctl_token_make(x->c, d, &e, token);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "seq", id);
    cJSON_AddStringToObject(o, "decision_id", token);
    cJSON_AddNumberToObject(o, "step", e.step);
    cJSON_AddStringToObject(o, "model", d->model);
    cJSON_AddItemToArray(x->arr, o);
    return 0;
}

/* What show adds to the export row of d: expiry, tokens, the flags that
 * export leaves out, the reward as reported, and the children. */
static int
ctl_show_more(const ctl_t *c, MDB_txn *txn, const store_decision_t *d, cJSON *o)
{
    int local = !!(d->flags & STORE_D_LOCAL);
    double ttl = c->cfg->decision_ttl_s;
    if (local)
        cJSON_AddNullToObject(o, "expires_at");
    else
        cJSON_AddNumberToObject(o, "expires_at", d->t + ttl);
    if (d->tokens_in > 0 || d->tokens_out > 0) {
        cJSON_AddNumberToObject(o, "tokens_in", d->tokens_in);
        cJSON_AddNumberToObject(o, "tokens_out", d->tokens_out);
    } else {
        cJSON_AddNullToObject(o, "tokens_in");
        cJSON_AddNullToObject(o, "tokens_out");
    }
    if (d->flags & STORE_D_OUTCOME)
        cJSON_AddNumberToObject(o, "reward_reported", d->reward_reported);
    else
        cJSON_AddNullToObject(o, "reward_reported");
    cJSON_AddBoolToObject(o, "probe", !!(d->flags & STORE_D_PROBE));
    cJSON_AddBoolToObject(o, "settled", !!(d->flags & STORE_D_SETTLED));
    cJSON_AddBoolToObject(o, "bucket_reserved",
                          !!(d->flags & STORE_D_BUCKET_RES));
    ctl_show_ctx_t x = {
        c, txn, d->id, d->t + ttl, 0, 0, cJSON_AddArrayToObject(o, "children")};
    int rc = store_scan_decisions(c->store, txn, d->id, ctl_show_child, &x);
    cJSON_AddBoolToObject(o, "children_complete", !x.partial);
    return rc;
}

/* The decision id that field "decision_id" names: a sequence id or a token of
 * this controller. Returns 0, or -1 with the error reply in *reply. */
static int
ctl_show_id(ctl_t *c, const proto_request_t *rq, uint64_t *id, char **reply)
{
    token_t tk;
    if (strlen(rq->show_id) == PROTO_ID_LEN &&
        proto_id_parse(rq->show_id, id) == 0)
        return 0;
    if (token_decode(c->token_key, rq->show_id, &tk) == 0) {
        *id = tk.id;
        return 0;
    }
    *reply = ctl_error(
        rq, PROTO_E_UNKNOWN_DECISION,
        "field \"decision_id\": neither a sequence id (%d hex digits, "
        "export's \"seq\") nor a decision token of this "
        "controller",
        PROTO_ID_LEN);
    return -1;
}

char *
ctl_op_show(ctl_t *c, const proto_request_t *rq)
{
    uint64_t id = 0;
    char *reply = NULL;
    if (ctl_show_id(c, rq, &id, &reply) != 0)
        return reply;
    char ids[PROTO_ID_LEN + 1];
    proto_id_format(id, ids);
    /* a read-only transaction of its own, as export: what is committed */
    MDB_txn *rtxn = NULL;
    store_decision_t d;
    int rc = store_begin(c->store, 1, &rtxn);
    if (!rc)
        rc = store_get_decision(c->store, rtxn, id, &d);
    if (rc == STORE_NOTFOUND) {
        store_abort(rtxn);
        return ctl_error(rq, PROTO_E_UNKNOWN_DECISION,
                         "field \"decision_id\": decision %s is not in the "
                         "store "
                         "(pruned after store.retention_s, or not "
                         "committed yet)",
                         ids);
    }
    cJSON *o = NULL;
    if (!rc) {
        o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON *row = ctl_decision_row(c, rtxn, &d);
        cJSON_AddItemToObject(o, "decision", row);
        rc = ctl_show_more(c, rtxn, &d, row);
    }
    if (rtxn)
        store_abort(rtxn);
    if (rc) {
        cJSON_Delete(o);
        return ctl_error(rq, PROTO_E_STORE, "cannot read decision %s: %s", ids,
                         store_strerror(rc));
    }
    return ctl_json_reply(rq, o);
}
