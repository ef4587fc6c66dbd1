/*
 * scenario.h - synthetic traffic from a scenario file (JSON).
 *
 * A scenario names buckets with a traffic mix, models with true success
 * rates and costs, the number of requests, and timed events. It is turned
 * into a full-information dataset: for every request a bucket is drawn from
 * the mix, and every model's outcome is drawn Bernoulli(success rate at that
 * moment) and its cost from its price at that moment. The dataset is a
 * time series (ds->ordered = 1): the replay keeps its order so that events
 * happen when they are meant to.
 *
 *   {
 *     "name": "drift",                        optional
 *     "requests": 20000,                      > 0
 *     "seed": 7,                              optional, default 1
 *     "traffic": {"code": 0.5, "chat": 0.5},  weights, normalised
 *     "models": {
 *       "big": {"cost_usd": 0.01,             number, or {"bucket": x}
 *               "cost_noise": 0.2,            optional sd of log cost
 *               "success": {"code": 0.9,      number, or {"bucket": p};
 *                           "chat": 0.95}},   a bucket left out: the model
 *       ...                                   is not offered there
 *     },
 *     "events": [
 *       {"at": 10000, "type": "quality", "model": "big", "bucket": "code",
 *        "success": 0.5, "ramp": 0},          bucket optional (all);
 *                                             ramp: requests to get there
 *       {"at": 0.6, "type": "down", "model": "big", "for": 500},
 *       {"at": 15000, "type": "up", "model": "big"},
 *       {"at": 17000, "type": "price", "model": "big", "cost_usd": 0.02}
 *                                             or "factor": 2; bucket opt.
 *     ]
 *   }
 *
 * "at" is a request index (an integer >= 0), or a fraction of the requests
 * when it lies strictly between 0 and 1. "at", "for" and "ramp" are at
 * most 1e9 and "seed" at most 4294967295: larger numbers are refused,
 * naming the field. A model that is down yields
 * DATASET_ERROR cells (a provider error, not a quality outcome). Costs are
 * drawn log-normal with mean cost_usd: cost * exp(s z - s^2 / 2), z
 * standard normal, s = cost_noise.
 *
 * Errors name the file and the field ("drift.json: field
 * 'models.big.success.code': not a number in [0, 1]"); JSON syntax errors
 * name the line. Returns 0, SERR_IO, SERR_PARSE or SERR_FORMAT.
 */
#ifndef BURSAR_SCENARIO_H
#define BURSAR_SCENARIO_H

#include "sim/dataset.h"
#include "sim/serr.h"

/* Generates the scenario's rows into ds (which should be empty) and sets
 * ds->ordered. seed_override != 0 replaces the scenario's seed. */
int scenario_load(dataset_t *ds, const char *path, unsigned long seed_override,
                  serr_t *e);
int scenario_load_buffer(dataset_t *ds, const char *buf, size_t len,
                         const char *name, unsigned long seed_override,
                         serr_t *e);

#endif
