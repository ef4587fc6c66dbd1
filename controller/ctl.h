/*
 * ctl.h - the controller's core: in-memory state over the LMDB store, and
 * the handling of one request.
 *
 * The daemon's loop (bursard.c) drives a batch:
 *
 *     ctl_begin(c);                      one write transaction
 *     for each waiting message:
 *         reply[i] = ctl_handle(c, msg)  state changes go to memory + txn
 *     ctl_sweep(c);                      expiry and retention
 *     if (ctl_commit(c) != 0)            flush dirty state, commit
 *         replace every reply by store_error (memory was reloaded)
 *     send the replies
 *
 * so that nothing is acknowledged before it is durable, and many requests
 * share one commit; except a choose marked early, sent at once: its token
 * carries the decision, and its id is below the committed high-water
 * mark, so a lost batch never makes an id be issued twice. ctl_handle never
 * fails: bad input gives an error reply.
 *
 * The decision itself is computed only by policies/ (policy_choose and
 * friends); this module builds the request (allowed mask, paced targets)
 * and keeps the books (store, ledger, health).
 */
#ifndef BURSAR_CTL_H
#define BURSAR_CTL_H

#include <stddef.h>

#include "controller/cfg.h"
#include "policies/base.h"

typedef struct ctl ctl_t;

typedef struct ctl_options {
    const char *state_dir; /* required */
    int test_clock;        /* accept the "clock" op */
    double clock_start;    /* test clock: time starts here (seconds since
                              the epoch) and moves only by "clock" ops;
                              0: wall time plus the clock ops' offset */
} ctl_options_t;

/* Opens the store and loads the state. Takes ownership of cfg (also on
 * failure). Returns 0, or BURSAR_ECONFIG (the configuration cannot run)
 * or BURSAR_ESTORE (the store cannot be opened or read) with a reason in
 * err. */
int ctl_open(ctl_t **out, cfg_t *cfg, const ctl_options_t *opt, char *err,
             size_t err_len);
void ctl_destroy(ctl_t **c);

/* The active configuration (owned by c). */
const cfg_t *ctl_cfg(const ctl_t *c);

/* Begins a batch's write transaction. Returns 0 or a store error code. */
int ctl_begin(ctl_t *c);

/* Who sent a request: the client's name in the allow-list (auth.h) and
 * its roles (AUTH_*). NULL, or name "", is an unauthenticated client on
 * an endpoint without CURVE: every role, and no rate limit. */
typedef struct ctl_peer {
    const char *name;
    unsigned roles;
} ctl_peer_t;

/* Handles one request frame from peer; returns the reply (caller frees).
 * Must be inside ctl_begin/ctl_commit. Never NULL. *early (may be NULL)
 * is set to 1 when the reply may be sent before the batch commits: a
 * choose whose decision travels in its token (feedback rebuilds the
 * record if the commit is lost). Every other reply waits for the commit. */
char *ctl_handle(ctl_t *c, const char *buf, size_t len, const ctl_peer_t *peer,
                 int *early);

/* The reply for a request that was too large to read. */
char *ctl_reply_too_large(const ctl_t *c, size_t len);

/* Expires decisions older than decision_ttl_s and prunes settled ones older
 * than retention. Inside a batch. Returns how many were expired. */
size_t ctl_sweep(ctl_t *c);

/* 1 if a sweep has work now (a pending decision has expired). */
int ctl_sweep_due(ctl_t *c);

/* Flushes dirty state and commits. Returns 0, or a store error code after
 * which the in-memory state has been reloaded from the store (so it
 * matches what is durable) and the batch's replies must not be sent as
 * successes. */
int ctl_commit(ctl_t *c);

/* Applies a new configuration (takes ownership). Between batches. The
 * store is flushed first; arms of new buckets/models start from their
 * prior, removed ones stay in the store. Returns 0 or BURSAR_ECONFIG (err
 * filled and
 * saying what holds: the old configuration stays in force, its state
 * rebuilt from the store; err says when even that rebuild failed). */
int ctl_reconfigure(ctl_t *c, cfg_t *cfg, char *err, size_t err_len);

/* The controller's clock: wall time plus the test offset. */
double ctl_now(const ctl_t *c);

/* Number of decisions made since start (for logs). */
unsigned long long ctl_decisions(const ctl_t *c);

/* The operator's views (controller/web.h), from memory only, between
 * batches. ctl_metrics_write appends the Prometheus text exposition
 * (ctl_metrics.c); ctl_status_json returns the status page's data (caller
 * frees; ctl_status.c): with since >= 0, its history holds only the
 * samples from number since on when it can (docs/controller.md, "The
 * status page"), all of them with since < 0; ctl_status_tick takes a sample of
 * the page's history when one is due (called by the loop at every turn). */
void ctl_metrics_write(ctl_t *c, bursar_buf_t *b);
/* The op (proto_op_t) of the request ctl_handle handled last, or -1 when
 * it did not parse. */
int ctl_request_op(const ctl_t *c);
/* The daemon's loop: a request of op (-1: none) answered seconds after it
 * was received (bursar_request_duration_seconds). O(1), no allocation. */
void ctl_observe_request(ctl_t *c, int op, double seconds);
char *ctl_status_json(ctl_t *c, long long since);
void ctl_status_tick(ctl_t *c);

#endif
