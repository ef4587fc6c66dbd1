/*
 * ctl_int.h - what the controller's files share (private to controller/).
 *
 * The controller is one object (struct ctl) over four files, by concern:
 *   ctl.c       state, loading, records, batches, the request to
 *               policies/, dispatch (ctl_handle) and reconfiguration
 *   ctl_ops.c   the ops that change state: choose, feedback, expiry
 *   ctl_view.c  the read-only ops and their JSON: stats, models, export,
 *               and the test clock
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

typedef struct ctl_bucket {
    cfg_bucket_t def;    /* from the configuration or the template */
    int dynamic;         /* created from the template */
    policy_bucket_t *pb; /* arms; pb->model[i] = cfg model index */
    latency_ring_t *lat; /* per arm: recent latencies */
    int has_budget;
    pacer_t pacer; /* the bucket's own cap, if has_budget */
    int dirty;     /* arms or pacer to write */
} ctl_bucket_t;

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
    uint64_t seq; /* last decision id */
    gsl_rng *rng;

    size_t n_buckets, cap_buckets;
    ctl_bucket_t **buckets;
    size_t ht_cap; /* power of two */
    int *ht;       /* bucket index + 1, 0 = empty */

    health_t *health;     /* per cfg model: its circuit breaker */
    allow_params_t allow; /* health and latency parameters (cfg) */
    unsigned char *health_dirty;

    int meta_dirty; /* seq, policy, pacer, clock */
    size_t *dirty;  /* indexes of dirty buckets */
    size_t n_dirty;
    double next_prune;

    proto_request_t request; /* the request being handled */
    /* scratch, CFG_MAX_ARMS entries */
    unsigned char mask[CFG_MAX_ARMS];
    int order[CFG_MAX_ARMS];
    double probs[CFG_MAX_ARMS];
};

/* ctl.c */
ctl_bucket_t *ctl_bucket_lookup(const ctl_t *c, const char *name, size_t *idx);
const char *ctl_model_name(const ctl_t *c, int model);
void ctl_mark_dirty(ctl_t *c, size_t idx);
void ctl_store_rc(ctl_t *c, int rc, const char *what);
const char *ctl_health_name(const ctl_t *c, int m, double now);
ctl_bucket_t *ctl_bucket_build(ctl_t *c, MDB_txn *txn, const cfg_bucket_t *def,
                               int dynamic, double now);
void ctl_add_bucket(ctl_t *c, ctl_bucket_t *b);
size_t ctl_build_mask(ctl_t *c, ctl_bucket_t *b, const proto_request_t *rq,
                      double now, allow_counts_t *counts);
void ctl_build_request(ctl_t *c, ctl_bucket_t *b, double now,
                       policy_request_t *req);
char *ctl_error(const proto_request_t *rq, proto_code_t code, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

/* ctl_ops.c and ctl_view.c: one op each (rq parsed, inside a batch) */
char *ctl_op_choose(ctl_t *c, const proto_request_t *rq);
char *ctl_op_feedback(ctl_t *c, const proto_request_t *rq);
char *ctl_op_stats(ctl_t *c, const proto_request_t *rq);
char *ctl_op_models(ctl_t *c, const proto_request_t *rq);
char *ctl_op_export(ctl_t *c, const proto_request_t *rq);
char *ctl_op_clock(ctl_t *c, const proto_request_t *rq);

#endif
