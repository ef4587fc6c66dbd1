/*
 * ctl_metrics.c - the controller's Prometheus metrics (text exposition
 * format 0.0.4, agents/expo.h), rendered from memory by the loop between
 * batches; docs/controller.md, "Metrics and the status page", has the
 * table.
 *
 * What a scrape costs: O(buckets x arms + models + clients) lines, no
 * store read and no propensity (an LP per bucket with its own cap): the
 * traffic share is the arms' lifetime pulls, as in `bursar stats`. The
 * ledgers are rolled on copies: a scrape changes nothing.
 *
 * The counters the ops keep (ctl_int.h, ctl_metrics_t) are counted per
 * batch and added to the totals by ctl_metrics_commit, so that a figure
 * never counts what a failed commit lost; the request histogram is
 * observed by the daemon's loop when a reply leaves.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include "agents/expo.h"

#ifndef BURSAR_VERSION
#define BURSAR_VERSION "unknown"
#endif

void
ctl_metrics_init(ctl_t *c)
{
    ctl_metrics_t *m = &c->met;
    memset(m, 0, sizeof *m);
    m->start_time = util_wall_time();
    m->op = -1;
    expo_hist_init(&m->commit, expo_latency_bounds, EXPO_LATENCY_N);
    for (size_t i = 0; i < CTL_OPS; i++)
        expo_hist_init(&m->request[i], expo_latency_bounds, EXPO_LATENCY_N);
}

void
ctl_metrics_commit(ctl_t *c, int rc, double seconds)
{
    ctl_metrics_t *m = &c->met;
    expo_hist_observe(&m->commit, seconds);
    if (rc)
        m->commit_failures++;
    if (!m->batch.any)
        return;
    ctl_counts_t *b = &m->batch, *t = &m->total;
    for (size_t k = 0; k < CTL_FB_KINDS; k++) {
        for (size_t r = 0; r < CTL_FB_RESULTS; r++) {
            /* a failed commit: every reply of the batch became store_error */
            size_t to = rc ? CTL_FB_ERROR + PROTO_E_STORE : r;
            t->feedback[k][to] += b->feedback[k][r];
        }
    }
    if (!rc) { /* else memory was reloaded: these never happened */
        t->expired += b->expired;
        t->rebuilt += b->rebuilt;
        t->spend_usd += b->spend_usd;
    }
    memset(b, 0, sizeof *b);
}

int
ctl_request_op(const ctl_t *c)
{
    return c->met.op;
}

void
ctl_observe_request(ctl_t *c, int op, double seconds)
{
    size_t i = op >= 0 && op <= PROTO_OP_BATCH ? (size_t)op : CTL_OPS - 1;
    expo_hist_observe(&c->met.request[i], seconds);
}

/* ------------------------------------------------------------------ */
/* Families                                                            */

/* A family of one sample without labels. */
static void
ctl_metrics_one(bursar_buf_t *b, const char *name, const char *type,
                double value, const char *help)
{
    expo_family(b, name, type, help);
    expo_sample(b, name, value, 0);
}

/* The process, the policy and the global ledger. */
static void
ctl_metrics_global(ctl_t *c, bursar_buf_t *b)
{
    expo_family(b, "bursar_build_info", "gauge",
                "Always 1; the label version is bursard's version.");
    expo_sample(b, "bursar_build_info", 1, 1, "version", BURSAR_VERSION);
    ctl_metrics_one(b, "process_start_time_seconds", "gauge", c->met.start_time,
                    "When bursard started, in Unix seconds.");
    ctl_metrics_one(
        b, "bursar_shadow_price", "gauge", c->policy.mu,
        "The shadow price of money (mu): the quality the policy gives "
        "up per USD saved; 0 while spend keeps to the paced budget, "
        "higher when spend runs ahead of it.");
    ctl_metrics_one(b, "bursar_buckets", "gauge", (double)c->n_buckets,
                    "Buckets served (configured and created on demand).");
    double inflight = 0;
    for (size_t i = 0; i < c->n_clients; i++)
        inflight += (double)c->clients[i]->inflight;
    ctl_metrics_one(b, "bursar_decisions_in_flight", "gauge", inflight,
                    "Decisions made and waiting for their outcome (they expire "
                    "after decision_ttl_s).");
}

/* The global budget's ledger (a copy, rolled to now). */
static void
ctl_metrics_budget(ctl_t *c, bursar_buf_t *b, double now)
{
    pacer_t p = c->pacer;
    pacer_roll(&p, now);
    ctl_metrics_one(
        b, "bursar_budget_limit_usd", "gauge",
        p.limit_usd > 0 ? p.limit_usd : 0,
        "The global budget per window (budget.limit_usd); 0: no cap.");
    ctl_metrics_one(
        b, "bursar_budget_window_seconds", "gauge", p.window_s,
        "The length of the global budget's window (budget.window_s).");
    ctl_metrics_one(b, "bursar_budget_window_start_seconds", "gauge",
                    p.window_start,
                    "When the global budget's current window began, in Unix "
                    "seconds of bursard's clock.");
    ctl_metrics_one(
        b, "bursar_budget_spent_usd", "gauge", p.spent_usd,
        "Costs booked in the global budget's current window (outcomes, "
        "expiries, local decisions booked).");
    ctl_metrics_one(
        b, "bursar_budget_reserved_usd", "gauge", p.reserved_usd,
        "Expected costs of the decisions waiting for their outcome, "
        "held against the global budget.");
    ctl_metrics_one(
        b, "bursar_budget_window_requests", "gauge", p.requests,
        "Decisions counted in the global budget's current window (the "
        "pacer's request rate).");
    if (p.limit_usd > 0) {
        ctl_metrics_one(
            b, "bursar_budget_target_usd", "gauge", pacer_target(&p, now),
            "The paced target: what a request may cost now for spend "
            "to meet the global budget at the window's end.");
    }
    ctl_metrics_one(b, "bursar_spend_usd_total", "counter",
                    c->met.total.spend_usd,
                    "Costs settled by outcomes and expiries of bursard's "
                    "decisions since bursard started (not local decisions "
                    "booked).");
}

/* One gauge per bucket with its own budget: which figure of its ledger. */
typedef enum {
    CTL_BB_LIMIT,
    CTL_BB_WINDOW,
    CTL_BB_SPENT,
    CTL_BB_RESERVED,
    CTL_BB_TARGET
} ctl_bb_t;

static void
ctl_metrics_bucket_budget(ctl_t *c, bursar_buf_t *b, double now,
                          const char *name, ctl_bb_t what, const char *help)
{
    expo_family(b, name, "gauge", help);
    for (size_t i = 0; i < c->n_buckets; i++) {
        const ctl_bucket_t *bk = c->buckets[i];
        if (!bk->has_budget)
            continue;
        pacer_t p = bk->pacer;
        pacer_roll(&p, now);
        double v = what == CTL_BB_LIMIT      ? p.limit_usd
                   : what == CTL_BB_WINDOW   ? p.window_s
                   : what == CTL_BB_SPENT    ? p.spent_usd
                   : what == CTL_BB_RESERVED ? p.reserved_usd
                                             : pacer_target(&p, now);
        expo_sample(b, name, v, 1, "bucket", bk->def.name);
    }
}

static void
ctl_metrics_bucket_budgets(ctl_t *c, bursar_buf_t *b, double now)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_buckets; i++)
        n += c->buckets[i]->has_budget;
    if (!n)
        return;
    ctl_metrics_bucket_budget(c, b, now, "bursar_bucket_budget_limit_usd",
                              CTL_BB_LIMIT,
                              "The budget per window of a bucket with its "
                              "own cap (buckets.NAME.budget.limit_usd).");
    ctl_metrics_bucket_budget(c, b, now, "bursar_bucket_budget_window_seconds",
                              CTL_BB_WINDOW,
                              "The length of the window of a bucket's own "
                              "budget.");
    ctl_metrics_bucket_budget(c, b, now, "bursar_bucket_budget_spent_usd",
                              CTL_BB_SPENT,
                              "Costs booked in the current window of a "
                              "bucket's own budget.");
    ctl_metrics_bucket_budget(c, b, now, "bursar_bucket_budget_reserved_usd",
                              CTL_BB_RESERVED,
                              "Expected costs of a bucket's decisions waiting "
                              "for their outcome, held against its budget.");
    ctl_metrics_bucket_budget(c, b, now, "bursar_bucket_budget_target_usd",
                              CTL_BB_TARGET,
                              "The paced target of a bucket's own budget: "
                              "what a request may cost now.");
}

/* Which figure of an arm. */
typedef enum {
    CTL_ARM_PULLS,
    CTL_ARM_MEAN,
    CTL_ARM_SHARE,
    CTL_ARM_COST
} ctl_arm_fig_t;

static void
ctl_metrics_arm_family(ctl_t *c, bursar_buf_t *b, const char *name,
                       const char *type, ctl_arm_fig_t what, const char *help)
{
    expo_family(b, name, type, help);
    for (size_t i = 0; i < c->n_buckets; i++) {
        const ctl_bucket_t *bk = c->buckets[i];
        const policy_bucket_t *pb = bk->pb;
        uint64_t total = 0;
        if (what == CTL_ARM_SHARE)
            for (size_t k = 0; k < pb->n_arms; k++)
                total += pb->arms[k].pulls;
        for (size_t k = 0; k < pb->n_arms; k++) {
            const arm_t *a = &pb->arms[k];
            double v = what == CTL_ARM_PULLS  ? (double)a->pulls
                       : what == CTL_ARM_MEAN ? arm_mean(a)
                       : what == CTL_ARM_COST
                           ? arm_cost_mean(a)
                           : (total ? (double)a->pulls / (double)total : 0);
            expo_sample(b, name, v, 2, "bucket", bk->def.name, "model",
                        ctl_model_name(c, pb->model[k]));
        }
    }
}

static void
ctl_metrics_arms(ctl_t *c, bursar_buf_t *b)
{
    ctl_metrics_arm_family(
        c, b, "bursar_decisions_total", "counter", CTL_ARM_PULLS,
        "Decisions that chose the model in the bucket (the arm's pulls, kept "
        "in the state directory across restarts; `bursar stats` shows the "
        "same). Local decisions booked are not counted.");
    ctl_metrics_arm_family(
        c, b, "bursar_arm_posterior_mean", "gauge", CTL_ARM_MEAN,
        "The mean of the arm's Beta posterior: the expected reward (quality) "
        "of the model in the bucket.");
    ctl_metrics_arm_family(
        c, b, "bursar_arm_traffic_share", "gauge", CTL_ARM_SHARE,
        "The arm's share of its bucket's decisions over its lifetime (as "
        "`bursar stats`); the recent share is rate(bursar_decisions_total).");
    ctl_metrics_arm_family(c, b, "bursar_arm_cost_mean_usd", "gauge",
                           CTL_ARM_COST,
                           "The arm's estimated cost per request (reported "
                           "costs over the price table's prior).");
}

/* Arm health: a circuit breaker per model. */
static void
ctl_metrics_health(ctl_t *c, bursar_buf_t *b, double now)
{
    static const char *const states[] = {"ok", "cooldown", "probing",
                                         "half_open"};
    const cfg_t *g = c->cfg;
    expo_family(b, "bursar_model_health", "gauge",
                "1 for the state the model's circuit breaker is in (ok, "
                "cooldown: not chosen, probing: a probe in flight, half_open: "
                "the next decision probes), 0 for the others.");
    for (size_t m = 0; m < g->n_models; m++) {
        const char *st = ctl_health_name(c, (int)m, now);
        for (size_t k = 0; k < sizeof states / sizeof states[0]; k++)
            expo_sample(b, "bursar_model_health", strcmp(st, states[k]) == 0, 2,
                        "model", g->models[m].name, "state", states[k]);
    }
    expo_family(b, "bursar_model_consecutive_failures", "gauge",
                "Provider errors reported in a row for the model (health."
                "failures of them open its breaker).");
    for (size_t m = 0; m < g->n_models; m++)
        expo_sample(b, "bursar_model_consecutive_failures",
                    c->health[m].failures, 1, "model", g->models[m].name);
    expo_family(b, "bursar_model_cooldown_end_seconds", "gauge",
                "When the model's current cooldown ends, in Unix seconds of "
                "bursard's clock; 0 when it is not cooling down.");
    for (size_t m = 0; m < g->n_models; m++)
        expo_sample(b, "bursar_model_cooldown_end_seconds",
                    c->health[m].cooling ? c->health[m].until : 0, 1, "model",
                    g->models[m].name);
    expo_family(b, "bursar_model_provider_errors_total", "counter",
                "Provider errors reported for the model (kept in the state "
                "directory across restarts).");
    for (size_t m = 0; m < g->n_models; m++)
        expo_sample(b, "bursar_model_provider_errors_total",
                    (double)c->health[m].errors_total, 1, "model",
                    g->models[m].name);
}

/* Feedback and the other counters since start. */
static void
ctl_metrics_counters(ctl_t *c, bursar_buf_t *b)
{
    const ctl_counts_t *t = &c->met.total;
    expo_family(b, "bursar_feedback_total", "counter",
                "Feedback requests since bursard started, by kind (outcome, "
                "correction, provider_error) and result: applied, duplicate "
                "(applied before: answered ok, nothing changed), or the "
                "error code answered (unknown_decision, decision_expired, "
                "forbidden, invalid_value, unknown_model, store_error...).");
    for (size_t k = 0; k < CTL_FB_KINDS; k++) {
        const char *kind = proto_kind_name((proto_kind_t)k);
        for (size_t r = 0; r < CTL_FB_RESULTS; r++) {
            uint64_t n = t->feedback[k][r];
            if (r >= CTL_FB_ERROR && !n)
                continue; /* errors appear once they happen */
            const char *res =
                r == CTL_FB_APPLIED ? "applied"
                : r == CTL_FB_DUPLICATE
                    ? "duplicate"
                    : proto_code_name((proto_code_t)(r - CTL_FB_ERROR));
            expo_sample(b, "bursar_feedback_total", (double)n, 2, "kind", kind,
                        "result", res);
        }
    }
    ctl_metrics_one(
        b, "bursar_decisions_expired_total", "counter", (double)t->expired,
        "Decisions that expired without an outcome (decision_ttl_s) "
        "since bursard started.");
    ctl_metrics_one(
        b, "bursar_decisions_rebuilt_total", "counter", (double)t->rebuilt,
        "Decision records rebuilt from their tokens at feedback (lost "
        "with a batch that did not commit) since bursard started.");
    ctl_metrics_one(b, "bursar_commit_failures_total", "counter",
                    (double)c->met.commit_failures,
                    "Store commits that failed since bursard started (their "
                    "requests were answered store_error).");
}

static void
ctl_metrics_latency(ctl_t *c, bursar_buf_t *b)
{
    expo_family(b, "bursar_commit_duration_seconds", "histogram",
                "Time to write a batch's state and commit it to the store "
                "(its fsyncs), seconds.");
    expo_hist_write(b, "bursar_commit_duration_seconds", &c->met.commit, 0);
    expo_family(b, "bursar_request_duration_seconds", "histogram",
                "Time from a request's receipt to its reply being sent, by op "
                "(invalid: did not parse), seconds; replies wait for their "
                "batch's commit, except early chooses.");
    for (size_t i = 0; i < CTL_OPS; i++) {
        if (i == PROTO_OP_CLOCK && !c->test_clock)
            continue; /* the test clock's op */
        const char *op =
            i < CTL_OPS - 1 ? proto_op_name((proto_op_t)i) : "invalid";
        expo_hist_write(b, "bursar_request_duration_seconds",
                        &c->met.request[i], 1, "op", op);
    }
}

void
ctl_metrics_write(ctl_t *c, bursar_buf_t *b)
{
    double now = ctl_now(c);
    ctl_metrics_global(c, b);
    ctl_metrics_budget(c, b, now);
    ctl_metrics_bucket_budgets(c, b, now);
    ctl_metrics_arms(c, b);
    ctl_metrics_health(c, b, now);
    ctl_metrics_counters(c, b);
    ctl_metrics_latency(c, b);
}
