/*
 * report.h - a readable summary of a bursar-agent run (--report): traffic
 * share per model over the run, quality and cost, the comparison with
 * always using the strongest model (in simulation, from the scenario's
 * true rates), and the budget as the controller reports it.
 *
 * Ownership: report_add borrows the result; report_print takes the stats
 * reply of the controller (may be NULL) and the scenario (may be NULL).
 */
#ifndef BURSAR_REPORT_H
#define BURSAR_REPORT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "bursar.h"
#include "scenario.h"

typedef struct report report_t;

report_t *report_new(void);
void report_destroy(report_t **self_p);

/* One result line of the run, in completion order. */
void report_add(report_t *self, const cJSON *result);

/* Prints the summary. stats: the controller's {"op":"stats"} reply or
 * NULL; models: the price table (for the strongest-model baseline). */
void report_print(const report_t *self, FILE *out, const cJSON *stats,
                  const scenario_t *sim, const bursar_model_t *models,
                  size_t n_models);

#endif
