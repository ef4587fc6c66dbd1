/*
 * runreport.h - a readable summary of a bursar-agent run (--report): traffic
 * share per model over the run, quality and cost, the comparison with
 * always using the strongest model (in simulation, from the scenario's
 * true rates), and the budget as the controller reports it.
 *
 * Ownership: runreport_add borrows the result; runreport_print takes the stats
 * reply of the controller (may be NULL) and the scenario (may be NULL).
 */
#ifndef BURSAR_AGENTS_RUNREPORT_H
#define BURSAR_AGENTS_RUNREPORT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "agents/bursar.h"
#include "agents/simprov.h"

typedef struct runreport runreport_t;

runreport_t *runreport_new(void);
void runreport_destroy(runreport_t **self_p);

/* One result line of the run, in completion order. */
void runreport_add(runreport_t *self, const cJSON *result);

/* Prints the summary. stats: the controller's {"op":"stats"} reply or
 * NULL; models: the price table (for the strongest-model baseline). */
void runreport_print(const runreport_t *self, FILE *out, const cJSON *stats,
                     const simprov_t *sim, const bursar_model_t *models,
                     size_t n_models);

#endif
