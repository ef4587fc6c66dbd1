/*
 * ctl_tenant.c - tenants with a budget of their own (docs/controller.md,
 * "Tenant budgets").
 *
 * A choose may name a tenant ("tenant"). A tenant with an entry in the
 * configuration's "tenants", or given one by the entry "*", has a pacer
 * (policies/pacer.h) over its own limit and window, and a shadow price
 * mu_t of its own moved by the same dual step as the global mu
 * (policy_dual_step) against its own paced target. A decision for it is
 * priced by both (allow_tenant: the score's extra cost weight
 * mu_t / target_t) and may spend only what is left of the tightest of the
 * global budget, its bucket's cap and the tenant's. Once the tenant's
 * budget cannot pay for any allowed model, its when_exhausted decides:
 * the cheapest model, flagged over_budget, or budget_exhausted, nothing
 * recorded. A tenant without an entry (and no "*") is served under the
 * global budget only.
 *
 * The decision reserves its expected cost on the tenant's pacer too
 * (STORE_D_TENANT_RES); settling or expiring it finds the tenant through
 * the decision's record in db tenants, and settles the tenant's stored
 * record when it is not in memory (its entry gone, or not loaded). A
 * decision rebuilt from its token (its batch lost) has lost that record
 * with its reservation: its cost is not booked to the tenant.
 *
 * State: an array of tenants with an open-addressing table by name; the
 * records (pacer and price) in db tpacers, written for the tenants marked
 * dirty at every commit. Tenants given a budget by "*" are at most
 * limits.max_tenants with the named ones; at the limit, the least
 * recently used idle one (nothing reserved, its window over or no request
 * for CTL_TENANT_IDLE of it) is forgotten (its record deleted) to make
 * room; if none is, the new tenant is served under the global budget only
 * (flagged), or refused when "*" refuses once spent.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

struct ctl_tenant {
    char name[CFG_TENANT_MAX];
    int def;     /* its entry: index in cfg->tenants (named, or "*") */
    int dynamic; /* given its budget by "*" */
    pacer_t pacer;
    double mu;   /* its own shadow price */
    double last; /* its last request (-INFINITY: none known) */
    int dirty;   /* record to write */
};

struct ctl_tenants {
    ctl_tenant_t **t;
    size_t n, cap;
    int *ht; /* index + 1, 0 empty; ht_cap slots, a power of two */
    size_t ht_cap;
};

/* ------------------------------------------------------------------ */
/* The table                                                           */

static void
ctl_tenant_ht_rebuild(struct ctl_tenants *ts)
{
    size_t cap = 16;
    while (cap < 2 * ts->n + 2)
        cap *= 2;
    free(ts->ht);
    ts->ht = bursar_calloc(cap, sizeof *ts->ht);
    ts->ht_cap = cap;
    for (size_t i = 0; i < ts->n; i++) {
        size_t j = ctl_hash(ts->t[i]->name) & (cap - 1);
        while (ts->ht[j])
            j = (j + 1) & (cap - 1);
        ts->ht[j] = (int)i + 1;
    }
}

static ctl_tenant_t *
ctl_tenant_lookup(const ctl_t *c, const char *name)
{
    const struct ctl_tenants *ts = c->tenants;
    if (!ts || !ts->ht_cap)
        return NULL;
    size_t m = ts->ht_cap - 1;
    for (size_t j = ctl_hash(name) & m; ts->ht[j]; j = (j + 1) & m) {
        ctl_tenant_t *t = ts->t[ts->ht[j] - 1];
        if (strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

static void
ctl_tenant_add(ctl_t *c, ctl_tenant_t *t)
{
    struct ctl_tenants *ts = c->tenants;
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 16;
        ts->t = bursar_realloc(ts->t, ts->cap * sizeof *ts->t);
    }
    ts->t[ts->n++] = t;
    if (2 * ts->n + 2 > ts->ht_cap) {
        ctl_tenant_ht_rebuild(ts);
        return;
    }
    size_t m = ts->ht_cap - 1, j = ctl_hash(t->name) & m;
    while (ts->ht[j])
        j = (j + 1) & m;
    ts->ht[j] = (int)ts->n;
}

void
ctl_tenants_free(ctl_t *c)
{
    struct ctl_tenants *ts = c->tenants;
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n; i++)
        free(ts->t[i]);
    free(ts->t);
    free(ts->ht);
    free(ts);
    c->tenants = NULL;
}

/* ------------------------------------------------------------------ */
/* Loading and writing                                                 */

/* A new pacer for entry def: its limit and window, its expected requests
 * as the prior rate. */
static void
ctl_tenant_pacer_new(pacer_t *p, const cfg_tenant_t *def, double now)
{
    pacer_init(p, def->budget.limit_usd, def->budget.window_s,
               def->expected_requests / def->budget.window_s, now);
}

/* When the tenant of stored ledger p last made a request: the end of its
 * newest slot (-INFINITY: never). */
static double
ctl_tenant_last_of(const pacer_t *p)
{
    return p->slot_last < 0 ? -INFINITY
                            : (p->slot_last + 1.0) * pacer_slot_s(p);
}

/* A tenant of entry def (index di), from its stored record if any. */
static ctl_tenant_t *
ctl_tenant_make(ctl_t *c, MDB_txn *txn, const char *name, int di, double now,
                const store_tpacer_t *rec)
{
    const cfg_tenant_t *def = &c->cfg->tenants[di];
    ctl_tenant_t *t = bursar_calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->def = di;
    t->dynamic = strcmp(def->name, CFG_TENANT_DEFAULT) == 0;
    store_tpacer_t sp;
    if (!rec && store_get_tenant_pacer(c->store, txn, name, &sp) == 0)
        rec = &sp;
    t->last = rec ? ctl_tenant_last_of(&rec->pacer) : -INFINITY;
    if (rec) {
        /* as a bucket's cap: the configured limit and expected requests,
         * the window realigned when its length changed */
        t->pacer = rec->pacer;
        t->mu = rec->mu;
        t->pacer.limit_usd = def->budget.limit_usd;
        t->pacer.prior_rate = def->expected_requests / def->budget.window_s;
        pacer_set_window(&t->pacer, def->budget.window_s, now);
        pacer_resume(&t->pacer, now);
    } else {
        ctl_tenant_pacer_new(&t->pacer, def, now);
        t->dirty = 1;
    }
    return t;
}

typedef struct ctl_tenant_scan {
    ctl_t *c;
    double now;
    int star; /* index of "*" */
} ctl_tenant_scan_t;

/* A stored tenant without an entry of its own: given its budget by "*"
 * again, up to the limit. */
static int
ctl_tenant_load_one(const char *name, const store_tpacer_t *p, void *ctx)
{
    ctl_tenant_scan_t *s = ctx;
    ctl_t *c = s->c;
    if (ctl_tenant_lookup(c, name) || !proto_tenant_valid(name))
        return 0;
    if (c->tenants->n >= c->cfg->max_tenants)
        return 1;
    ctl_tenant_add(c, ctl_tenant_make(c, NULL, name, s->star, s->now, p));
    return 0;
}

int
ctl_tenants_load(ctl_t *c, MDB_txn *txn, double now)
{
    ctl_tenants_free(c);
    c->tenants = bursar_calloc(1, sizeof *c->tenants);
    int star = -1;
    for (size_t i = 0; i < c->cfg->n_tenants; i++) {
        const char *name = c->cfg->tenants[i].name;
        if (strcmp(name, CFG_TENANT_DEFAULT) == 0)
            star = (int)i;
        else
            ctl_tenant_add(c, ctl_tenant_make(c, txn, name, (int)i, now, NULL));
    }
    if (star < 0)
        return 0;
    ctl_tenant_scan_t s = {c, now, star};
    return store_scan_tenant_pacers(c->store, txn, ctl_tenant_load_one, &s);
}

int
ctl_tenants_flush(ctl_t *c)
{
    struct ctl_tenants *ts = c->tenants;
    int rc = 0;
    for (size_t i = 0; ts && i < ts->n && !rc; i++) {
        ctl_tenant_t *t = ts->t[i];
        if (!t->dirty)
            continue;
        store_tpacer_t sp = {
            .version = STORE_VERSION, .pacer = t->pacer, .mu = t->mu};
        rc = store_put_tenant_pacer(c->store, c->txn, t->name, &sp);
    }
    return rc;
}

void
ctl_tenants_mark(ctl_t *c, int dirty)
{
    struct ctl_tenants *ts = c->tenants;
    for (size_t i = 0; ts && i < ts->n; i++)
        ts->t[i]->dirty = dirty;
}

/* ------------------------------------------------------------------ */
/* Tenants given a budget by "*"                                       */

/* Whether tenant t may be forgotten at now: given its budget by "*",
 * nothing reserved, and its window over or no request for
 * CTL_TENANT_IDLE (of its window, at most CTL_TENANT_IDLE_MAX_S). */
static int
ctl_tenant_idle(const ctl_tenant_t *t, double now)
{
    const pacer_t *p = &t->pacer;
    if (!t->dynamic || p->reserved_usd > 0)
        return 0;
    double idle = fmin(p->window_s * CTL_TENANT_IDLE, CTL_TENANT_IDLE_MAX_S);
    return now >= p->window_start + p->window_s || now - t->last >= idle;
}

/* The tenant to forget to make room: the least recently used idle one.
 * Returns its index, or -1 when none is idle. */
static long
ctl_tenant_victim(const ctl_t *c, double now)
{
    const struct ctl_tenants *ts = c->tenants;
    long v = -1;
    for (size_t i = 0; i < ts->n; i++)
        if (ctl_tenant_idle(ts->t[i], now) &&
            (v < 0 || ts->t[i]->last < ts->t[v]->last))
            v = (long)i;
    return v;
}

/* Forgets the least recently used idle tenant (its record deleted: its
 * spend in the window with it, docs/security.md). Returns 1 if one was. */
static int
ctl_tenant_evict(ctl_t *c, double now)
{
    struct ctl_tenants *ts = c->tenants;
    long v = ctl_tenant_victim(c, now);
    if (v < 0)
        return 0;
    ctl_tenant_t *t = ts->t[v];
    ctl_store_rc(c, store_del_tenant_pacer(c->store, c->txn, t->name),
                 "del tenant pacer");
    free(t);
    ts->t[v] = ts->t[--ts->n];
    ctl_tenant_ht_rebuild(ts);
    return 1;
}

int
ctl_tenant_status(const ctl_t *c, const char *name, double now)
{
    if (ctl_tenant_lookup(c, name))
        return CTL_TENANT_OK;
    if (cfg_tenant_find(c->cfg, CFG_TENANT_DEFAULT) < 0)
        return CTL_TENANT_NONE;
    if (c->tenants->n < c->cfg->max_tenants || ctl_tenant_victim(c, now) >= 0)
        return CTL_TENANT_OK;
    return CTL_TENANT_FULL;
}

/* The tenant called name: its own entry's, or given one by "*" (made
 * now, an idle tenant forgotten if the table is full). NULL when it has
 * no budget (*full = 0), or when none can be given within
 * limits.max_tenants (*full = 1). */
static ctl_tenant_t *
ctl_tenant_get(ctl_t *c, const char *name, double now, int *full)
{
    *full = 0;
    ctl_tenant_t *t = ctl_tenant_lookup(c, name);
    if (t || !c->txn)
        return t;
    int star = cfg_tenant_find(c->cfg, CFG_TENANT_DEFAULT);
    if (star < 0)
        return NULL;
    if (c->tenants->n >= c->cfg->max_tenants && !ctl_tenant_evict(c, now)) {
        *full = 1;
        return NULL;
    }
    t = ctl_tenant_make(c, c->txn, name, star, now, NULL);
    t->dirty = 1;
    ctl_tenant_add(c, t);
    return t;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

/* The configuration path of a tenant's entry, for messages. */
static void
ctl_tenant_path(const ctl_t *c, const ctl_tenant_t *t, char *buf, size_t n)
{
    const char *e = c->cfg->tenants[t->def].name;
    snprintf(buf, n, t->dynamic ? "tenants.\"%s\"" : "tenants.%s", e);
}

/* A tenant "*" would give a budget when limits.max_tenants tenants hold
 * one, none idle: refused when "*" refuses once spent, else served
 * under the global budget only (flagged tenant_unbudgeted). */
static char *
ctl_tenant_full(ctl_t *c, const proto_request_t *rq, ctl_tenant_pick_t *out)
{
    int star = cfg_tenant_find(c->cfg, CFG_TENANT_DEFAULT);
    if (c->cfg->tenants[star].budget.when_exhausted != CFG_EXHAUSTED_REFUSE) {
        out->flags = STORE_D_TENANT_NOBUDGET;
        return NULL;
    }
    return ctl_error(rq, PROTO_E_BUDGET_EXHAUSTED,
                     "tenant \"%s\" gets no budget of its own: "
                     "limits.max_tenants (%zu) tenants hold one, none idle "
                     "(tenants.\"*\".budget.when_exhausted is \"refuse\")",
                     rq->tenant, c->cfg->max_tenants);
}

char *
ctl_tenant_request(ctl_t *c, const proto_request_t *rq, ctl_bucket_t *b,
                   policy_request_t *req, double now, ctl_tenant_pick_t *out)
{
    *out = (ctl_tenant_pick_t){NULL, INFINITY, 0};
    if (!rq->tenant[0])
        return NULL;
    int full;
    ctl_tenant_t *t = ctl_tenant_get(c, rq->tenant, now, &full);
    if (full)
        return ctl_tenant_full(c, rq, out);
    if (!t)
        return NULL; /* the global budget only */
    out->target = allow_tenant(req, &t->pacer, t->mu, now);
    (void)b; /* its refusal, if it says so: ctl_exhausted, as any budget's */
    out->t = t;
    out->flags = STORE_D_TENANT_RES;
    return NULL;
}

void
ctl_tenant_chosen(ctl_t *c, const ctl_tenant_pick_t *tp,
                  const policy_choice_t *ch, const store_decision_t *d)
{
    ctl_tenant_t *t = tp->t;
    if (!t)
        return;
    pacer_reserve(&t->pacer, d->reserved_usd, d->t);
    t->last = d->t;
    if (c->policy.params.kind == POLICY_TS_BUDGET &&
        !(ch->flags & POLICY_F_UNAFFORDABLE))
        t->mu = policy_dual_step(t->mu, ch->expected_cost, tp->target,
                                 c->policy.params.dual_step);
    t->dirty = 1;
}

/* Decision d's cost into ledger p at now: settled (its reservation held
 * released), or booked (a local decision: counted in its window when
 * that is still p's). Returns 1 if p changed. */
static int
ctl_tenant_apply(pacer_t *p, const store_decision_t *d, double held,
                 double cost, double now, int book)
{
    pacer_roll(p, now);
    if (!book) {
        pacer_settle(p, held, cost);
        return 1;
    }
    if (d->t < p->window_start)
        return 0; /* a closed window: logged, not added to today's spend */
    pacer_reserve(p, 0, now);
    pacer_settle(p, 0, cost);
    return 1;
}

/* Decision d's cost (and its reservation held) into the ledger of the
 * tenant it was made for (its record in db tenants): the tenant's in
 * memory, or, when it is not there (its entry gone from the
 * configuration, or not loaded for limits.max_tenants), its stored
 * record, so a reservation is released whatever the configuration says
 * now. A booking (book 1) may give the tenant a budget by "*". */
static void
ctl_tenant_post(ctl_t *c, const store_decision_t *d, double held, double cost,
                double now, int book)
{
    store_tenant_t x;
    int rc = store_get_tenant(c->store, c->txn, d->id, &x);
    if (rc) {
        ctl_store_rc(c, rc, "get tenant");
        return;
    }
    int full;
    ctl_tenant_t *t = book ? ctl_tenant_get(c, x.name, now, &full)
                           : ctl_tenant_lookup(c, x.name);
    if (t) {
        if (ctl_tenant_apply(&t->pacer, d, held, cost, now, book))
            t->dirty = 1;
        if (book)
            t->last = fmax(t->last, fmin(d->t, now));
        return;
    }
    store_tpacer_t sp;
    rc = store_get_tenant_pacer(c->store, c->txn, x.name, &sp);
    if (rc) {
        ctl_store_rc(c, rc, "get tenant pacer"); /* none: nothing held */
        return;
    }
    if (ctl_tenant_apply(&sp.pacer, d, held, cost, now, book))
        ctl_store_rc(c, store_put_tenant_pacer(c->store, c->txn, x.name, &sp),
                     "put tenant pacer");
}

void
ctl_tenant_settle(ctl_t *c, const store_decision_t *d, double held, double cost,
                  double now)
{
    if (d->flags & STORE_D_TENANT_RES)
        ctl_tenant_post(c, d, held, cost, now, 0);
}

void
ctl_tenant_book(ctl_t *c, const store_decision_t *d, double cost, double now)
{
    ctl_tenant_post(c, d, 0, cost, now, 1);
}

pacer_t *
ctl_tenant_ledger(ctl_t *c, const char *name, double now)
{
    int full;
    ctl_tenant_t *t = ctl_tenant_get(c, name, now, &full);
    if (!t)
        return NULL;
    pacer_roll(&t->pacer, now);
    t->dirty = 1;
    return &t->pacer;
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */

/* A tenant and its spend in the window at now, for the ranking. */
typedef struct ctl_tenant_rank {
    double spent;
    const ctl_tenant_t *t;
} ctl_tenant_rank_t;

static int
ctl_tenant_rank_cmp(const void *a, const void *b)
{
    const ctl_tenant_rank_t *x = a, *y = b;
    if (x->spent != y->spent)
        return x->spent > y->spent ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

/* The tenants stats and metrics show: at most CTL_TENANTS_SHOWN, those
 * with the most spend in their window at now first (ties by name). Returns
 * their number; *out (to free) holds them. */
static size_t
ctl_tenants_top(const ctl_t *c, double now, ctl_tenant_rank_t **out)
{
    const struct ctl_tenants *ts = c->tenants;
    size_t n = ts ? ts->n : 0;
    ctl_tenant_rank_t *r = bursar_calloc(n ? n : 1, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        pacer_t p = ts->t[i]->pacer; /* rolled on a copy */
        pacer_roll(&p, now);
        r[i] = (ctl_tenant_rank_t){p.spent_usd, ts->t[i]};
    }
    qsort(r, n, sizeof *r, ctl_tenant_rank_cmp);
    *out = r;
    return n < CTL_TENANTS_SHOWN ? n : CTL_TENANTS_SHOWN;
}

static cJSON *
ctl_tenant_json(const ctl_t *c, const ctl_tenant_t *t, double now)
{
    pacer_t p = t->pacer; /* rolled on a copy: stats change no state */
    pacer_roll(&p, now);
    const cfg_tenant_t *def = &c->cfg->tenants[t->def];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", t->name);
    cJSON_AddStringToObject(o, "entry", def->name);
    cJSON_AddNumberToObject(o, "limit_usd", p.limit_usd);
    cJSON_AddNumberToObject(o, "window_s", p.window_s);
    cJSON_AddNumberToObject(o, "window_start", p.window_start);
    cJSON_AddNumberToObject(o, "window_end", p.window_start + p.window_s);
    cJSON_AddNumberToObject(o, "spent_usd", p.spent_usd);
    cJSON_AddNumberToObject(o, "reserved_usd", p.reserved_usd);
    cJSON_AddNumberToObject(o, "remaining_usd", pacer_remaining(&p));
    cJSON_AddNumberToObject(o, "target_usd", pacer_target(&p, now));
    cJSON_AddNumberToObject(o, "mu", t->mu);
    cJSON_AddNumberToObject(o, "requests", p.requests);
    cJSON_AddStringToObject(o, "when_exhausted",
                            def->budget.when_exhausted == CFG_EXHAUSTED_REFUSE
                                ? "refuse"
                                : "serve_cheapest");
    return o;
}

/* The figures of a tenant the metrics give, by name and help. */
static const struct {
    const char *name, *help;
} ctl_tenant_figs[] = {
    {"bursar_tenant_budget_limit_usd",
     "The budget per window of a tenant with one of its own "
     "(tenants.NAME.budget.limit_usd, or tenants.\"*\")."},
    {"bursar_tenant_budget_spent_usd",
     "Costs booked in the current window of a tenant's own budget."},
    {"bursar_tenant_budget_reserved_usd",
     "Expected costs of a tenant's decisions waiting for their outcome, "
     "held against its budget."},
    {"bursar_tenant_budget_target_usd",
     "The paced target of a tenant's own budget: what its request may "
     "cost now."},
    {"bursar_tenant_shadow_price",
     "A tenant's own shadow price mu_t: quality given up per target's "
     "worth of its spend, on top of the global one."},
};

void
ctl_tenants_metrics(const ctl_t *c, bursar_buf_t *b, double now)
{
    ctl_tenant_rank_t *r;
    size_t n = ctl_tenants_top(c, now, &r);
    for (size_t f = 0;
         n && f < sizeof ctl_tenant_figs / sizeof *ctl_tenant_figs; f++) {
        const char *name = ctl_tenant_figs[f].name;
        expo_family(b, name, "gauge", ctl_tenant_figs[f].help);
        for (size_t i = 0; i < n; i++) {
            const ctl_tenant_t *t = r[i].t;
            pacer_t p = t->pacer;
            pacer_roll(&p, now);
            double v = f == 0   ? p.limit_usd
                       : f == 1 ? p.spent_usd
                       : f == 2 ? p.reserved_usd
                       : f == 3 ? pacer_target(&p, now)
                                : t->mu;
            expo_sample(b, name, v, 1, "tenant", t->name);
        }
    }
    free(r);
}

void
ctl_tenants_json(const ctl_t *c, cJSON *o, double now)
{
    ctl_tenant_rank_t *r;
    size_t n = ctl_tenants_top(c, now, &r);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, ctl_tenant_json(c, r[i].t, now));
    free(r);
    cJSON_AddItemToObject(o, "tenants", a);
    cJSON_AddNumberToObject(o, "tenants_total",
                            c->tenants ? (double)c->tenants->n : 0);
}

const pacer_t *
ctl_tenant_budget(const ctl_t *c, const ctl_tenant_t *t, cfg_exhausted_t *how,
                  char *path, size_t n)
{
    *how = c->cfg->tenants[t->def].budget.when_exhausted;
    ctl_tenant_path(c, t, path, n);
    return &t->pacer;
}
