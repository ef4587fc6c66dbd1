/*
 * runner.h - the worker's task engine: for each task, choose a model,
 * call it, validate, report, fall back or escalate; many tasks at once.
 *
 * Per task:
 *   1. bucket: the task's "bucket", else the routing rules (route.h).
 *   2. choose(bucket, exclude = models tried so far) from the controller:
 *      a decision with a model and fallbacks (the next choices within the
 *      budget). If the controller is unreachable the client answers with
 *      a local decision (the bucket's fallback, else its cheapest allowed
 *      model, and its other models: bursar.h); the last controller
 *      decision's model and fallbacks follow them as candidates. Its
 *      reports are booked (op book) under its local id.
 *   3. call the decision's next untried candidate (its model first), at
 *      the provider or, in simulation, the scenario.
 *      - provider failure (after the provider module's own retries): the
 *        decision's own model failing is reported as provider_error (it
 *        feeds that model's health; the protocol takes one per decision);
 *        the model joins the tried list and the next candidate is called
 *        under the same decision (docs/protocol.md: "the decision stays
 *        open"). Not an escalation. No candidate left: the task ends
 *        with an error.
 *      - a failure of the worker's own setup, not of the provider's
 *        health, is never reported (runner_setup_failure: a key refused,
 *        401 or 403, or not set; a URL refused; a model the worker has no
 *        provider details for): the model is left out of the rest of the
 *        run (excluded from every choose, note called once) and the next
 *        candidate is called. Another 4xx but 429 (a request too long
 *        for the model's context, say) is about the request: not
 *        reported either, the next candidate is called.
 *      - an answer: validate it; report the outcome on the decision
 *        (success = valid, cost, tokens, latency, and "model" when a
 *        fallback served). Valid: done. Invalid: if escalations are left,
 *        the model joins the tried list and the task goes back to 2 (an
 *        escalation: a new decision, bursar_escalate, linked to the one
 *        it escalates); else done, valid = false. If no model is left to
 *        escalate to, the invalid answer stands.
 *   4. one result line per task (runner_emit_fn), every step recorded.
 * Ownership: the runner borrows the client, the models, the route, the
 * validators' specs and the scenario for its whole life. runner_add takes
 * the task object. Results are passed to the emit callback, which owns
 * them (cJSON_Delete).
 */
#ifndef BURSAR_AGENTS_RUNNER_H
#define BURSAR_AGENTS_RUNNER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "agents/bursar.h"
#include "agents/provider.h"
#include "agents/route.h"
#include "agents/simprov.h"

typedef void (*runner_emit_fn)(void *ud, cJSON *result);

/* A model left out of the run at run time: why (the step's error, e.g.
 * "http 401: invalid api key"), the call's result. */
typedef void (*runner_note_fn)(void *ud, const bursar_model_t *m,
                               const prov_result_t *r);

/* Models left out of a run at the most (with the models a task tried, in
 * every choose's exclude list: PROTO_MAX_EXCLUDE). */
#define RUNNER_MAX_LEFT_OUT 32

typedef struct runner_opts {
    int max_escalations;     /* after a validation failure; default 2 */
    size_t concurrency;      /* tasks in flight; default 8 */
    prov_opts_t prov;        /* provider calls */
    const route_t *route;    /* NULL: bucket "default" unless the task
                                names one */
    const cJSON *validators; /* {"bucket": spec, "*": spec} or NULL */
    simprov_t *sim;          /* non-NULL: simulated providers */
    runner_emit_fn emit;
    void *emit_ud;
    /* models left out of every choose from the start (their key variable
     * unset: bursar-agent --skip-unkeyed); at most RUNNER_MAX_LEFT_OUT,
     * copied */
    const char *const *exclude;
    size_t n_exclude;
    runner_note_fn note; /* NULL: none */
    void *note_ud;
} runner_opts_t;

void runner_opts_init(runner_opts_t *o);

typedef struct runner runner_t;

typedef struct runner_stats {
    size_t tasks;           /* added */
    size_t done;            /* results emitted */
    size_t valid;           /* results with valid = true */
    size_t errors;          /* results with an error */
    size_t unanswered;      /* results without an answer, ended by an error
                               (not by a failed validation) */
    size_t escalations;     /* over all tasks */
    size_t provider_errors; /* steps reported as provider_error */
    size_t setup_errors;    /* steps failed by the worker's setup or the
                               request (never reported) */
    size_t left_out;        /* models left out at run time */
    size_t local_decisions;
    size_t feedback_lost; /* events neither delivered, spooled nor refused
                             (the spool could not be written) */
    double cost_usd;
    long tokens_in, tokens_out;
} runner_stats_t;

/* Returns 0, or -1 (curl could not be set up). */
int runner_new(runner_t **out, bursar_t *client, const bursar_model_t *models,
               size_t n_models, const runner_opts_t *o);
void runner_destroy(runner_t **self_p);

/* Queues a task (takes ownership of task). idx is its index in the run
 * (scenario outages and drift are keyed on it). */
void runner_add(runner_t *self, cJSON *task, size_t idx);

/* Advances tasks for at most timeout_ms. Returns the number of tasks not
 * yet finished (queued or in flight). */
size_t runner_run(runner_t *self, int timeout_ms);

void runner_stats(const runner_t *self, runner_stats_t *st);

/* Whether the failed call r says nothing of the provider's health: the
 * worker's setup (a key refused with 401 or 403, a key variable not set,
 * a URL refused: *leave_out 1, the model cannot serve this worker) or
 * the request itself (another 4xx but 429: *leave_out 0). Such a failure
 * is never reported as provider_error. */
int runner_setup_failure(const prov_result_t *r, int *leave_out);

#endif
