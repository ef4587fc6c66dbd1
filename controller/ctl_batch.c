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
    if (pacer_batch_replan(&c->pacer, &bt->pb, now))
        c->meta_dirty = 1;
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

char *
ctl_exhausted(ctl_t *c, const proto_request_t *rq, const ctl_bucket_t *b,
              const ctl_batch_t *bt, const policy_request_t *req, int chosen)
{
    if (!chosen && !(ctl_cheapest(c, b) > req->remaining_usd))
        return NULL;
    const pacer_t *p = &c->pacer;
    cfg_exhausted_t how = c->cfg->budget.when_exhausted;
    char what[256];
    snprintf(what, sizeof what, "the budget (budget.limit_usd)");
    if (bt) {
        snprintf(what, sizeof what, "batch %s's share of %g USD", rq->batch,
                 bt->pb.share_usd);
    } else if (b->has_budget &&
               pacer_remaining(&b->pacer) <= pacer_remaining(&c->pacer)) {
        p = &b->pacer;
        how = b->def.budget.when_exhausted;
        snprintf(what, sizeof what,
                 "bucket \"%s\"'s budget (buckets.%s.budget)", b->def.name,
                 b->def.name);
    }
    if (how != CFG_EXHAUSTED_REFUSE)
        return NULL;
    char end[32];
    ctl_utc(p->window_start + p->window_s, end, sizeof end);
    return ctl_error(rq, PROTO_E_BUDGET_EXHAUSTED,
                     "%s is spent: %g USD left of %g USD for the window "
                     "ending %s, less than any model of bucket \"%s\" costs "
                     "(when_exhausted: refuse)",
                     what, fmax(0.0, req->remaining_usd), p->limit_usd, end,
                     b->def.name);
}
