/*
 * ctl_int.h - what the controller's files share (private to controller/).
 *
 * The controller is one object (struct ctl) over five files, by concern:
 *   ctl.c       state, loading, records, batches, the request to
 *               policies/, dispatch (ctl_handle) and reconfiguration
 *   ctl_ops.c   the ops that change state: choose, feedback, expiry
 *   ctl_book.c  local decisions: the op book, their export fields, the
 *               buckets of the models reply
 *   ctl_view.c  the read-only ops and their JSON: stats, models, export,
 *               and the test clock
 *   ctl_admin.c the operator's admin ops: adjust, reset, mark, show, and
 *               their log
 *   ctl_tenant.c tenants with a budget of their own: their pacers and
 *               prices, hooked into choose, settling and stats
 * Nothing here computes a routing decision: policies/ does (allow.h,
 * policy.h); these files build its requests and keep the books.
 */
#ifndef BURSAR_CONTROLLER_CTL_INT_H
#define BURSAR_CONTROLLER_CTL_INT_H

#include "controller/ctl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>
#include "policies/allow.h"
#include "policies/pacer.h"
#include "policies/policy.h"
#include "agents/proto.h"
#include "controller/store.h"
#include "controller/util.h"
#include "controller/auth.h"
#include "controller/token.h"
#include "agents/expo.h"

typedef struct ctl_bucket {
    cfg_bucket_t def;    /* from the configuration or the template */
    int dynamic;         /* created from the template */
    policy_bucket_t *pb; /* arms; pb->model[i] = cfg model index */
    latency_ring_t *lat; /* per arm: recent latencies */
    int has_budget;
    pacer_t pacer; /* the bucket's own cap, if has_budget */
    int dirty;     /* arms or pacer to write */
} ctl_bucket_t;

/* A declared batch (op batch; ctl_batch.c). */
typedef struct ctl_batch {
    uint64_t id;
    char bucket[BURSAR_NAME_MAX];
    char tenant[PROTO_TENANT_MAX]; /* "" none */
    pacer_batch_t pb;              /* its share and books (pacer.h) */
} ctl_batch_t;

/* A client, known by its name (auth.h; "" = unauthenticated). */
typedef struct ctl_client {
    char name[AUTH_NAME_MAX];
    int idx;               /* in clients */
    double tokens, t_last; /* its request-rate bucket (monotonic time) */
    size_t inflight;       /* its pending decisions */
    health_t *health;      /* per cfg model: its own breakers, NULL until
                              its first provider error */
} ctl_client_t;

/* A recent provider error: which client, when (per model, a ring). */
#define CTL_FAIL_RING 16
typedef struct ctl_fail {
    int client; /* index in clients, -1: empty */
    double t;
} ctl_fail_t;

/* The high-water mark of ids ("seq" in meta): a choose is answered
 * before its commit only when its id is at most the mark as last
 * committed (hwm_durable); after a crash or a failed commit ids restart
 * above that, so no token names two decisions. The mark moves up by
 * CTL_HWM_STEP with the decision that passes it, whose reply (and every
 * reply after it until the commit) waits for the commit. */
/* How far ahead of the controller's clock a local decision's time may be
 * (a client's clock runs fast); later is refused. */
#define CTL_BOOK_SKEW_S 300.0
#define CTL_HWM_STEP    65536
/* After a failed commit, chooses wait for their commits this long: a full
 * store loses at most one transaction of early answers per holdoff. */
#define CTL_EARLY_HOLDOFF_S 1.0

/* The metrics' counters (ctl_metrics.c): feedback by kind and result (a
 * result is CTL_FB_APPLIED, CTL_FB_DUPLICATE, or CTL_FB_ERROR + the
 * reply's error code), decisions expired and rebuilt, the spend booked. */
#define CTL_FB_KINDS     3 /* proto_kind_t */
#define CTL_FB_APPLIED   0
#define CTL_FB_DUPLICATE 1
#define CTL_FB_ERROR     2
#define CTL_FB_RESULTS   (CTL_FB_ERROR + PROTO_E_COUNT)
/* Request latency by op: every proto_op_t, and one for a request that
 * did not parse (or was answered before the controller saw it). */
#define CTL_OPS (PROTO_OP_COUNT + 1)

typedef struct ctl_counts {
    uint64_t feedback[CTL_FB_KINDS][CTL_FB_RESULTS];
    uint64_t expired; /* decisions expired without an outcome */
    uint64_t rebuilt; /* records rebuilt from their tokens */
    double spend_usd; /* costs settled (outcomes and expiries) */
    int any;          /* something was counted */
} ctl_counts_t;

/* Counted in the open batch, added to the totals when it commits (a
 * failed commit reloads memory and answers store_error instead: its
 * feedback counts as that); totals since start. */
typedef struct ctl_metrics {
    ctl_counts_t batch, total;
    uint64_t commit_failures;
    double start_time;            /* wall clock, Unix seconds */
    int op;                       /* the request being handled: its op, or -1 */
    expo_hist_t commit;           /* ctl_commit, seconds */
    expo_hist_t request[CTL_OPS]; /* receipt to reply sent, seconds */
} ctl_metrics_t;

/* The status page's history (ctl_status.c). */
typedef struct ctl_status ctl_status_t;
/* Tenants with a budget of their own (ctl_tenant.c). */
typedef struct ctl_tenant ctl_tenant_t;
struct ctl_tenants;

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
    uint64_t seq;          /* last decision id */
    uint64_t hwm;          /* the mark as the batch will commit it */
    uint64_t hwm_durable;  /* the mark as committed */
    uint64_t pruned;       /* the largest id of the controller's own
                              decisions pruned ("pruned" in meta): a
                              token at or below it is never rebuilt */
    double pruned_local_t; /* local decisions pruned: the latest client
                              time any of them may have had ("pruned_local"
                              in meta); a booking at or before it is
                              refused (it could be one sent again) */
    size_t clients_models; /* n_models the clients' breakers were made for */
    unsigned long long n_decisions; /* since start */
    uint8_t token_key[TOKEN_KEY_BYTES];
    int early; /* the reply being built may be sent before the commit */
    double early_after; /* monotonic: no early replies before (a commit
                           failed); 0: none failed */
    ctl_client_t *peer; /* the client of the request being handled */
    unsigned peer_roles;

    ctl_client_t **clients; /* every client seen (n_clients, stable) */
    size_t n_clients, cap_clients;
    int *client_ht;    /* client index + 1, cap_clients * 2 slots */
    ctl_fail_t *fails; /* CTL_FAIL_RING per cfg model */
    gsl_rng *rng;

    size_t n_buckets, cap_buckets;
    ctl_bucket_t **buckets;
    size_t ht_cap; /* power of two */
    int *ht;       /* bucket index + 1, 0 = empty */

    health_t *health;     /* per cfg model: its circuit breaker */
    store_mark_t *marks;  /* per cfg model: its operator's mark (version 0:
                             never marked); health[m].down mirrors it */
    allow_params_t allow; /* health and latency parameters (cfg) */
    unsigned char *health_dirty;

    int meta_dirty; /* seq, policy, pacer, clock */
    size_t *dirty;  /* indexes of dirty buckets */
    size_t n_dirty;
    double next_prune;

    ctl_status_t *status;        /* the status page's history, or NULL */
    struct ctl_tenants *tenants; /* ctl_tenant.c */

    ctl_batch_t *batches; /* open batches (n_batches, budget.max_batches) */
    size_t n_batches;

    proto_request_t request; /* the request being handled */
    /* scratch, CFG_MAX_ARMS entries */
    unsigned char mask[CFG_MAX_ARMS];
    int order[CFG_MAX_ARMS];
    double probs[CFG_MAX_ARMS];

    ctl_metrics_t met; /* counters and histograms of /metrics */
};

/* ctl.c */
/* FNV-1a of a name (the bucket and client tables). */
uint64_t ctl_hash(const char *s);
ctl_bucket_t *ctl_bucket_lookup(const ctl_t *c, const char *name, size_t *idx);
const char *ctl_model_name(const ctl_t *c, int model);
void ctl_mark_dirty(ctl_t *c, size_t idx);
void ctl_store_rc(ctl_t *c, int rc, const char *what);
const char *ctl_health_name(const ctl_t *c, int m, double now);
ctl_bucket_t *ctl_bucket_build(ctl_t *c, MDB_txn *txn, const cfg_bucket_t *def,
                               int dynamic, double now);
void ctl_add_bucket(ctl_t *c, ctl_bucket_t *b);
/* How a new arm of model m starts in bucket def: the bucket's prior, and
 * the price table times the expected tokens as its cost prior (a bucket
 * built afresh, op reset). */
void ctl_arm_prior(const ctl_t *c, const cfg_bucket_t *def, int m, arm_t *a);
size_t ctl_build_mask(ctl_t *c, ctl_bucket_t *b, const proto_request_t *rq,
                      double now, allow_counts_t *counts);
void ctl_build_request(ctl_t *c, ctl_bucket_t *b, double now,
                       policy_request_t *req);
char *ctl_error(const proto_request_t *rq, proto_code_t code, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
ctl_client_t *ctl_client_get(ctl_t *c, const char *name);
/* A client's pending decision settled or expired (name from its token or
 * dext record). */
void ctl_client_settled(ctl_t *c, const char *name);

/* The flags a token carries: those set at choose. */
#define CTL_TOKEN_FLAGS                                                        \
    (STORE_D_EXPLORED | STORE_D_OVER_BUDGET | STORE_D_BUCKET_RES |             \
     STORE_D_PROBE)
/* The token of decision d (out: TOKEN_CHARS + 1 bytes); the same every
 * time for the same record. */
/* The cost an outcome reports: cost_usd, else its tokens at the served
 * model's prices (both set STORE_D_COST in d), else dflt; its tokens are
 * kept in d. */
double ctl_event_cost(const ctl_t *c, const proto_request_t *rq,
                      const char *served, store_decision_t *d, double dflt);
void ctl_token_make(const ctl_t *c, const store_decision_t *d,
                    const store_dext_t *x, char *out);

/* ctl_client.c */
/* Recounts decisions in flight from the store; resets clients' breakers
 * and the record of provider errors (at every load). */
void ctl_clients_load(ctl_t *c, MDB_txn *txn);
void ctl_clients_free(ctl_t *c);
/* Sets c->peer; returns NULL when peer may send rq now, else the error
 * reply (forbidden, rate_limited). */
char *ctl_client_admit(ctl_t *c, const proto_request_t *rq,
                       const ctl_peer_t *peer);
/* rate_limited when the peer holds client_inflight decisions, else NULL. */
char *ctl_client_inflight(ctl_t *c, const proto_request_t *rq);
/* The client's own breaker of model m, or NULL. */
health_t *ctl_client_health(const ctl_client_t *cl, int m);
/* Clears from c->mask the arms the peer's own breakers hold back. Returns
 * the arms still allowed. */
size_t ctl_client_mask(ctl_t *c, const ctl_bucket_t *b, double now,
                       size_t allowed, allow_counts_t *counts);
/* A provider error from client `from` on model m: its own breaker; the
 * shared one when health.min_clients distinct clients reported errors
 * within health.cooldown_s (or min_clients is 1). */
void ctl_client_failure(ctl_t *c, ctl_client_t *from, int m, uint64_t id,
                        double now);

/* ctl_ops.c and ctl_view.c: one op each (rq parsed, inside a batch) */
char *ctl_op_choose(ctl_t *c, const proto_request_t *rq);
char *ctl_op_feedback(ctl_t *c, const proto_request_t *rq);
char *ctl_op_stats(ctl_t *c, const proto_request_t *rq);
char *ctl_op_models(ctl_t *c, const proto_request_t *rq);
char *ctl_op_export(ctl_t *c, const proto_request_t *rq);
char *ctl_op_clock(ctl_t *c, const proto_request_t *rq);
char *ctl_op_book(ctl_t *c, const proto_request_t *rq);
/* ctl_admin.c: the admin ops (operator role) */
char *ctl_op_adjust(ctl_t *c, const proto_request_t *rq);
char *ctl_op_reset(ctl_t *c, const proto_request_t *rq);
char *ctl_op_mark(ctl_t *c, const proto_request_t *rq);
char *ctl_op_show(ctl_t *c, const proto_request_t *rq);
/* Reads the models' marks into c->marks and c->health[].down (ctl_load,
 * after the health records). */
void ctl_admin_load(ctl_t *c, MDB_txn *txn);
/* An admin log entry as export's row ("kind": "admin"). */
cJSON *ctl_admin_row(const store_admin_t *a);
/* Model m's mark as stats shows it: null when it is not marked down. */
cJSON *ctl_mark_json(const ctl_t *c, int m);
/* ctl_view.c: a reply of o with the request's "id" (o is consumed). */
char *ctl_json_reply(const proto_request_t *rq, cJSON *o);
/* ctl_view.c: decision d as an export row, read in txn (show adds to it). */
cJSON *ctl_decision_row(const ctl_t *c, MDB_txn *txn,
                        const store_decision_t *d);
/* ctl_view.c: the stats reply of every bucket as an object (the status
 * page's base); with_prop 1: propensities, 0: none (null), -1: as stats
 * does (up to CTL_STATS_PROP_ARMS arms in all). */
cJSON *ctl_stats_all(ctl_t *c, int with_prop);

/* ctl_tenant.c */
/* (Re)builds the tenants under c->cfg from the store (ctl_load). */
int ctl_tenants_load(ctl_t *c, MDB_txn *txn, double now);
void ctl_tenants_free(ctl_t *c);
/* Writes the dirty tenants' records into c->txn (ctl_flush). */
int ctl_tenants_flush(ctl_t *c);
/* Marks every tenant dirty (1: ctl_reconfigure) or clean (0: after a
 * commit). */
void ctl_tenants_mark(ctl_t *c, int dirty);
/* A tenant "*" gives a budget is forgotten (its record deleted) to make
 * room at limits.max_tenants when nothing is reserved and its window is
 * over or it made no request for CTL_TENANT_IDLE of its window (at most
 * CTL_TENANT_IDLE_MAX_S): the least recently used first. */
#define CTL_TENANT_IDLE       (1.0 / 24)
#define CTL_TENANT_IDLE_MAX_S 3600.0
/* The tenants the stats reply and /metrics show: those with the most
 * spend (stats' tenants_total counts them all). */
#define CTL_TENANTS_SHOWN 100
/* The tenant of a choose (ctl_tenant_request). */
typedef struct ctl_tenant_pick {
    ctl_tenant_t *t; /* NULL: none, or the global budget only */
    double target;   /* t's paced target */
    uint32_t flags;  /* for the decision: STORE_D_TENANT_RES (t reserves),
                        STORE_D_TENANT_NOBUDGET (no room for t's budget) */
} ctl_tenant_pick_t;
/* The tenant of a choose, after ctl_build_request: adds its budget and
 * price to req (allow_tenant); out->t the tenant (NULL: rq names none, or
 * one without a budget: the global budget only; or one "*" gives a budget
 * when limits.max_tenants hold one, none idle, and "*" serves the
 * cheapest once spent: flagged STORE_D_TENANT_NOBUDGET). Returns NULL, or
 * the error reply (budget_exhausted: its budget is spent and configured
 * to refuse, or limits.max_tenants and "*" refuses). */
char *ctl_tenant_request(ctl_t *c, const proto_request_t *rq, ctl_bucket_t *b,
                         policy_request_t *req, double now,
                         ctl_tenant_pick_t *out);
/* Decision d recorded for tp->t (NULL: none): its reservation and its
 * price's dual step. */
void ctl_tenant_chosen(ctl_t *c, const ctl_tenant_pick_t *tp,
                       const policy_choice_t *ch, const store_decision_t *d);
/* Decision d settled (outcome or expiry): releases held, books cost on
 * its tenant when it reserved there (STORE_D_TENANT_RES). */
void ctl_tenant_settle(ctl_t *c, const store_decision_t *d, double held,
                       double cost, double now);
/* Whether tenant name has a ledger or can be given one now, with no side
 * effect: CTL_TENANT_OK, CTL_TENANT_NONE (no budget of its own: no entry
 * and no "*"), CTL_TENANT_FULL (limits.max_tenants hold one, none idle). */
enum { CTL_TENANT_OK, CTL_TENANT_NONE, CTL_TENANT_FULL };
int ctl_tenant_status(const ctl_t *c, const char *name, double now);
/* The ledger of tenant name (given one by "*" if need be, maybe forgetting
 * an idle one), rolled to now and marked to be written, for the admin op
 * adjust after ctl_tenant_status; NULL when the tenant has none. */
pacer_t *ctl_tenant_ledger(ctl_t *c, const char *name, double now);
/* A booked local decision's cost into its tenant's window (ctl_book.c). */
void ctl_tenant_book(ctl_t *c, const store_decision_t *d, double cost,
                     double now);
/* The stats reply's "tenants" array (CTL_TENANTS_SHOWN at most, the most
 * spend first) and "tenants_total", into o. */
void ctl_tenants_json(const ctl_t *c, cJSON *o, double now);
/* The tenants' gauges of /metrics (none without tenants; the same
 * CTL_TENANTS_SHOWN as stats). */
void ctl_tenants_metrics(const ctl_t *c, bursar_buf_t *b, double now);

/* ctl_batch.c: declared batches and budget_exhausted */
void ctl_batches_load(ctl_t *c, MDB_txn *txn);
void ctl_batches_free(ctl_t *c);
char *ctl_op_batch(ctl_t *c, const proto_request_t *rq);
/* The batch a choose names (rq->batch), checked against its bucket and
 * tenant, planned again in a new window; req (built by ctl_build_request)
 * is then priced against the batch (allow_batch). *out NULL without one.
 * Returns NULL, or the error reply (invalid_value naming "batch"). */
char *ctl_batch_find(ctl_t *c, const proto_request_t *rq, ctl_bucket_t *b,
                     policy_request_t *req, double now, ctl_batch_t **out);
/* The batch's decision reserved expected_usd (instead of pacer_reserve
 * on the global pacer): its record written, or deleted when complete. */
void ctl_batch_reserve(ctl_t *c, ctl_batch_t *bt, double expected_usd);
/* When no allowed model is affordable (chosen: policy_choose found
 * none; else the cheapest allowed arm is checked against req): the
 * refusal of the first budget the cheapest model would go over whose
 * when_exhausted is refuse (error budget_exhausted naming it, its limit
 * and window end; budgets: the batch's share, the bucket's cap, the
 * tenant tn's, the global one), else NULL (served, over_budget). */
char *ctl_exhausted(ctl_t *c, const proto_request_t *rq, const ctl_bucket_t *b,
                    const ctl_batch_t *bt, const ctl_tenant_t *tn,
                    const policy_request_t *req, int chosen);
/* ctl_tenant.c: tenant t's ledger, its when_exhausted and its entry's
 * configuration path (for messages). */
const pacer_t *ctl_tenant_budget(const ctl_t *c, const ctl_tenant_t *t,
                                 cfg_exhausted_t *how, char *path, size_t n);

/* ctl_status.c: frees the status page's history (ctl_destroy). */
void ctl_status_free(ctl_t *c);

/* ctl_ops.c: the checks of an outcome's figures, shared with book */
/* tokens and latency above limits.*: the error reply, else NULL. */
char *ctl_check_limits(ctl_t *c, const proto_request_t *rq);
/* The ceiling of a reported cost for model m (-1: none configured). */
double ctl_cost_ceiling(const ctl_t *c, int m);

/* ctl_metrics.c */
void ctl_metrics_init(ctl_t *c);
/* At the end of ctl_commit: rc its status, seconds its duration. */
void ctl_metrics_commit(ctl_t *c, int rc, double seconds);

/* ctl_book.c */
/* The export fields that say where local decision d came from:
 * "decision_id" null, "local_id", "client", "offered" (empty). */
void ctl_book_origin(const ctl_t *c, MDB_txn *txn, const store_decision_t *d,
                     cJSON *o);
/* Every bucket served now, for the models reply (*n entries; free()). */
proto_bucket_t *ctl_book_buckets(const ctl_t *c, size_t *n);

#endif
