/*
 * ctl_batch.c - declared batches (op batch) and the refusal of a spent
 * budget (budget.when_exhausted: refuse).
 *
 * A batch is declared for a bucket (and a tenant, optionally) with its
 * size N; the global pacer sets its share aside (policies/pacer.h,
 * pacer_batch_open) and the chooses that name it are priced against it
 * (policies/allow.h, allow_batch). Batches are state: each open one is a
 * record in the store (store_put_batch), written with every decision it
 * makes in the same transaction, deleted when its N decisions are made.
 * A batch planned in an earlier window gets a new share when next used
 * (pacer_batch_replan); one unused for a whole window is forgotten (its
 * share had returned at that window's end), so that budget.max_batches
 * open batches bound the state.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include <time.h>

#include <sodium.h>

/* ------------------------------------------------------------------ */
/* Memory and store                                                    */

static void
ctl_batch_load_one(const store_batch_t *r, void *ctx)
{
    ctl_t *c = ctx;
    if (c->n_batches >= c->cfg->max_batches)
        return; /* the limit was lowered: kept in the store, not served */
    ctl_batch_t *bt = &c->batches[c->n_batches++];
    memset(bt, 0, sizeof *bt);
    bt->id = r->id;
    snprintf(bt->bucket, sizeof bt->bucket, "%.*s", (int)sizeof r->bucket,
             r->bucket);
    snprintf(bt->tenant, sizeof bt->tenant, "%.*s", (int)sizeof r->tenant,
             r->tenant);
    bt->pb = r->batch;
}

void
ctl_batches_load(ctl_t *c, MDB_txn *txn)
{
    free(c->batches);
    c->batches = bursar_calloc(c->cfg->max_batches, sizeof *c->batches);
    c->n_batches = 0;
    int rc = store_scan_batches(c->store, txn, ctl_batch_load_one, c);
    if (rc)
        fprintf(stderr, "bursard: store: batches unreadable (%s)\n",
                store_strerror(rc));
}

void
ctl_batches_free(ctl_t *c)
{
    free(c->batches);
    c->batches = NULL;
    c->n_batches = 0;
}

static void
ctl_batch_put(ctl_t *c, const ctl_batch_t *bt)
{
    store_batch_t r;
    memset(&r, 0, sizeof r);
    r.version = STORE_VERSION;
    r.id = bt->id;
    snprintf(r.bucket, sizeof r.bucket, "%s", bt->bucket);
    snprintf(r.tenant, sizeof r.tenant, "%s", bt->tenant);
    r.batch = bt->pb;
    ctl_store_rc(c, store_put_batch(c->store, c->txn, &r), "put batch");
}

/* Removes batch i from memory and the store. */
static void
ctl_batch_drop(ctl_t *c, size_t i)
{
    ctl_store_rc(c, store_del_batch(c->store, c->txn, c->batches[i].id),
                 "del batch");
    c->batches[i] = c->batches[--c->n_batches];
}

/* Forgets the batches unused for a whole window (their shares returned). */
static void
ctl_batch_prune(ctl_t *c)
{
    for (size_t i = c->n_batches; i-- > 0;)
        if (c->batches[i].pb.window_start <
            c->pacer.window_start - c->pacer.window_s)
            ctl_batch_drop(c, i);
}

static ctl_batch_t *
ctl_batch_lookup(ctl_t *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_batches; i++)
        if (c->batches[i].id == id)
            return &c->batches[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The op and the chooses                                              */

char *
ctl_op_batch(ctl_t *c, const proto_request_t *rq)
{
    double now = ctl_now(c);
    char q[96];
    proto_json_quote(q, sizeof q, rq->bucket);
    if (!ctl_bucket_lookup(c, rq->bucket, NULL))
        return ctl_error(rq, PROTO_E_UNKNOWN_BUCKET,
                         "unknown bucket %s in field \"bucket\" (a batch is "
                         "declared for a bucket that is served)",
                         q);
    pacer_roll(&c->pacer, now);
    ctl_batch_prune(c);
    if (c->n_batches >= c->cfg->max_batches)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"size\": no batch declared: %zu batches are "
                         "open, the limit budget.max_batches",
                         c->n_batches);
    ctl_batch_t *bt = &c->batches[c->n_batches];
    memset(bt, 0, sizeof *bt);
    do
        randombytes_buf(&bt->id, sizeof bt->id);
    while (bt->id == 0 || ctl_batch_lookup(c, bt->id));
    c->n_batches++;
    snprintf(bt->bucket, sizeof bt->bucket, "%s", rq->bucket);
    snprintf(bt->tenant, sizeof bt->tenant, "%s", rq->tenant);
    pacer_batch_open(&c->pacer, &bt->pb, rq->batch_size, now);
    c->meta_dirty = 1;
    ctl_batch_put(c, bt);
    if (c->txn_failed)
        return ctl_error(rq, PROTO_E_STORE, "cannot record the batch: %s",
                         store_strerror(c->txn_failed));
    char id[PROTO_ID_LEN + 1];
    proto_id_format(bt->id, id);
    char *r = proto_write_batch(rq->echo, id, bt->pb.share_usd,
                                bt->pb.share_usd / bt->pb.size);
    return r;
}

char *
ctl_batch_find(ctl_t *c, const proto_request_t *rq, ctl_bucket_t *b,
               policy_request_t *req, double now, ctl_batch_t **out)
{
    *out = NULL;
    if (!rq->batch[0])
        return NULL;
    uint64_t id = 0;
    proto_id_parse(rq->batch, &id);
    ctl_batch_prune(c);
    ctl_batch_t *bt = ctl_batch_lookup(c, id);
    if (!bt)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"batch\": no open batch %s (unknown, "
                         "complete, or unused for a whole window)",
                         rq->batch);
    if (strcmp(bt->bucket, b->def.name) != 0)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"batch\": batch %s was declared for bucket "
                         "\"%s\", not this one",
                         rq->batch, bt->bucket);
    if (bt->tenant[0] && strcmp(bt->tenant, rq->tenant) != 0)
        return ctl_error(rq, PROTO_E_INVALID_VALUE,
                         "field \"batch\": batch %s was declared for tenant "
                         "\"%s\"",
                         rq->batch, bt->tenant);
    if (pacer_batch_replan(&c->pacer, &bt->pb, now)) {
        c->meta_dirty = 1;
        ctl_batch_put(c, bt); /* with the pacer's held share, whatever
                                 becomes of this choose */
    }
    allow_batch(req, &bt->pb, b->has_budget ? &b->pacer : NULL, now);
    *out = bt;
    return NULL;
}

void
ctl_batch_reserve(ctl_t *c, ctl_batch_t *bt, double expected_usd)
{
    pacer_batch_reserve(&c->pacer, &bt->pb, expected_usd);
    if (bt->pb.made < bt->pb.size) {
        ctl_batch_put(c, bt);
        return;
    }
    pacer_batch_close(&c->pacer, &bt->pb); /* complete: what is left
                                               returns to the window */
    ctl_batch_drop(c, (size_t)(bt - c->batches));
}

/* ------------------------------------------------------------------ */
/* budget_exhausted                                                    */

/* The cheapest allowed arm's cost estimate. */
static double
ctl_cheapest(const ctl_t *c, const ctl_bucket_t *b)
{
    double best = INFINITY;
    for (size_t k = 0; k < b->pb->n_arms; k++)
        if (c->mask[k])
            best = fmin(best, arm_cost_mean(&b->pb->arms[k]));
    return best;
}

static void
ctl_utc(double t, char *buf, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One budget a choose draws on: what it has left, its setting, and how
 * a refusal names it. */
typedef struct ctl_budget_ref {
    const pacer_t *p;
    double left;
    cfg_exhausted_t how;
    char what[256];
} ctl_budget_ref_t;

/* The budgets a choose draws on (at most four): the batch's share (the
 * global setting), the bucket's cap, the tenant's, the global one (not
 * for a batch's decision: its share was set aside from it). */
static size_t
ctl_budgets(const ctl_t *c, const proto_request_t *rq, const ctl_bucket_t *b,
            const ctl_batch_t *bt, const ctl_tenant_t *tn, ctl_budget_ref_t *r)
{
    size_t n = 0;
    if (bt) {
        r[n] = (ctl_budget_ref_t){&c->pacer, pacer_batch_left(&bt->pb),
                                  c->cfg->budget.when_exhausted, ""};
        snprintf(r[n++].what, sizeof r->what, "batch %s's share of %g USD",
                 rq->batch, bt->pb.share_usd);
    }
    if (b->has_budget) {
        r[n] = (ctl_budget_ref_t){&b->pacer, pacer_remaining(&b->pacer),
                                  b->def.budget.when_exhausted, ""};
        snprintf(r[n++].what, sizeof r->what,
                 "bucket \"%s\"'s budget (buckets.%s.budget)", b->def.name,
                 b->def.name);
    }
    if (tn) {
        char path[80];
        r[n].p = ctl_tenant_budget(c, tn, &r[n].how, path, sizeof path);
        r[n].left = pacer_remaining(r[n].p);
        snprintf(r[n++].what, sizeof r->what, "tenant \"%s\"'s budget (%s)",
                 rq->tenant, path);
    }
    if (!bt) {
        r[n] = (ctl_budget_ref_t){&c->pacer, pacer_remaining(&c->pacer),
                                  c->cfg->budget.when_exhausted, ""};
        snprintf(r[n++].what, sizeof r->what, "the budget (budget.limit_usd)");
    }
    return n;
}

char *
ctl_exhausted(ctl_t *c, const proto_request_t *rq, const ctl_bucket_t *b,
              const ctl_batch_t *bt, const ctl_tenant_t *tn,
              const policy_request_t *req, int chosen)
{
    double cheapest = ctl_cheapest(c, b);
    if (!chosen && !(cheapest > req->remaining_usd))
        return NULL;
    /* Serving the cheapest model would go over every budget that cannot
     * pay for it: refused if any of them says so (a "refuse" budget is
     * never exceeded), else served, flagged over_budget. */
    ctl_budget_ref_t r[4];
    size_t n = ctl_budgets(c, rq, b, bt, tn, r);
    for (size_t i = 0; i < n; i++) {
        if (!(cheapest > r[i].left) || r[i].how != CFG_EXHAUSTED_REFUSE)
            continue;
        char end[32];
        ctl_utc(r[i].p->window_start + r[i].p->window_s, end, sizeof end);
        return ctl_error(rq, PROTO_E_BUDGET_EXHAUSTED,
                         "%s is spent: %g USD left of %g USD for the window "
                         "ending %s, less than the cheapest model of bucket "
                         "\"%s\" costs (%g USD; when_exhausted: refuse)",
                         r[i].what, fmax(0.0, r[i].left), r[i].p->limit_usd,
                         end, b->def.name, cheapest);
    }
    return NULL;
}
