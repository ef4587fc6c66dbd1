/*
 * simprov.h - simulated providers for `bursar-agent --simulate`.
 *
 * A scenario replaces the provider calls by draws from each model's true
 * behaviour, so that the controller, the client library, validation
 * bookkeeping, escalation and fallbacks all run for real without an API
 * key. The format is this module's own (docs/agents.md), self-contained:
 *   {"seed":42,
 *    "tasks":{"count":600,"buckets":{"code":2,"summarize":1}},
 *    "models":{"NAME":{"success":0.8,               P(valid answer)
 *                      "success_by_bucket":{"code":0.9},
 *                      "latency_ms":900,            mean; jittered +-25%
 *                      "tokens_in":500,"tokens_out":300,
 *                      "cost_usd":0.002,            optional: else tokens
 *                                                   x the controller's
 *                                                   price table
 *                      "outages":[{"from":100,"to":160}],   task indexes:
 *                                                   calls fail (503)
 *                      "changes":[{"at":300,"success":0.4}]}}} drift
 * Task indexes count the run's tasks from 0 in input order. The draw uses
 * its own seeded generator (rand_r), so a scenario replays identically
 * for the same sequence of calls.
 *
 * Ownership: simprov_load returns a new scenario (simprov_destroy).
 * Strings returned point into the scenario.
 */
#ifndef BURSAR_AGENTS_SIMPROV_H
#define BURSAR_AGENTS_SIMPROV_H

#include <stddef.h>

#include "policies/base.h"

typedef struct simprov simprov_t;

typedef struct simprov_draw {
    int known;   /* 0: the model is not in the scenario */
    int outage;  /* 1: the call fails (provider error) */
    int success; /* 1: the answer is valid */
    double latency_ms;
    long tokens_in;
    long tokens_out;
    double cost_usd; /* < 0: use the price table */
} simprov_draw_t;

/* Returns 0, or BURSAR_EFORMAT with a message (naming the JSON path) in
 * err. */
int simprov_load(const char *path, simprov_t **out, char *err, size_t cap);
int simprov_parse(const char *json, simprov_t **out, char *err, size_t cap);
void simprov_destroy(simprov_t **self_p);

/* Draws one call of model for a task of bucket at task index idx. */
void simprov_call(simprov_t *self, const char *model, const char *bucket,
                  size_t idx, simprov_draw_t *d);

/* The true (expected) behaviour of model for bucket at task idx, without
 * a draw: P(valid) (0 during an outage), mean tokens, and the fixed cost
 * (< 0: tokens x price table). Returns 0, or BURSAR_EINVAL if the model is
 * unknown. */
int simprov_expected(const simprov_t *self, const char *model,
                     const char *bucket, size_t idx, double *p_success,
                     double *tokens_in, double *tokens_out, double *cost_usd);

/* Model names (iteration: i from 0 until NULL). */
const char *simprov_model_name(const simprov_t *self, size_t i);

/* Generated tasks (0 if the scenario has none) and the bucket of task i
 * (drawn by the buckets' weights, deterministic per seed). */
size_t simprov_task_count(const simprov_t *self);
const char *simprov_task_bucket(simprov_t *self, size_t i);

#endif
