/*
 * cref.h - the hindsight cascade reference: the best static mix of fixed
 * cascade orders under a budget (the cascade analogue of best static).
 *
 * A cascade of S steps tries a model, a validator (vmodel.h) judges the
 * answer, and a rejected answer escalates to the next model, up to S - 1
 * escalations. The answer returned is the first that passes, else the last
 * tried; the request's quality is that answer's true outcome, its cost the
 * sum of every step tried.
 *
 * Orders. For each bucket, every fixed order of 1 .. S distinct models
 * present in the bucket (a model with at least one DATASET_OK cell there,
 * as replay_best_static's arms): k models give k + k(k-1) + ... orders
 * (11 models, S = 3: 11 + 110 + 990 = 1111).
 *
 * Expected quality and cost of an order, in closed form per row: a model
 * whose cell is MISSING or DATASET_ERROR is skipped at cost 0 (as the
 * replay's exclusion would); with p_s = P(pass) of the s-th available step
 * (vmodel_pass_prob), its outcome q_s and cost c_s, and R_s =
 * prod_{j<s} (1 - p_j) the probability of reaching it,
 *
 *     quality = sum_s R_s p_s q_s + R_{K+1} q_K,   cost = sum_s R_s c_s
 *
 * over the K available steps (the last term: every step rejected, the last
 * answer tried is returned). An order's figures are means over the rows of
 * the bucket where at least one of its models is available; a row where
 * none is has no part in them, exactly as replay_best_static's single
 * models are means over their OK cells (so S = 1 gives best static, to
 * the bit), rather than counting as 0 at cost 0. On RouterBench this
 * touches 28 arc-challenge rows (14 with one model missing, 14 with ten);
 * docs/sim.md gives the figures both ways.
 *
 * The mix. cref_solve mixes the orders by the budget LP exactly as
 * replay_best_static mixes single models: lp_solve_static over the
 * buckets, traffic shares = rows per bucket / all rows, the same budget
 * per request (<= 0: none). Each bucket hands the LP only its orders on the
 * cost/quality Pareto front (cheapest first), which leaves the LP's hull,
 * and so its solution, unchanged and its work small.
 *
 * Cost: building visits each order once, O(orders x rows of its bucket)
 * with the prefixes shared (a depth-first walk over the orders); memory
 * O(orders x S) kept, O((models + S) x rows of a bucket) while walking it.
 * Solving is O(front log front) per budget, a few microseconds: build
 * once, solve for every budget of a sweep.
 *
 * Ownership: cref_build returns a new reference (cref_destroy); it copies
 * what it needs, so the dataset and the validator model may go after it.
 */
#ifndef BURSAR_SIM_CREF_H
#define BURSAR_SIM_CREF_H

#include <stddef.h>

#include "sim/dataset.h"
#include "sim/serr.h"
#include "sim/vmodel.h"

/* Most steps of an order (escalations + 1). */
#define CREF_MAX_STEPS 8
/* Most orders per bucket (11 models: S = 5 gives 64,471). */
#define CREF_MAX_ORDERS 200000

typedef struct cref cref_t;

/* One order of one bucket, with its weight in a solution. */
typedef struct cref_pick {
    int bucket;                /* dataset bucket id */
    unsigned n_steps;          /* models in the order, 1 .. S */
    int model[CREF_MAX_STEPS]; /* dataset model ids, tried in this order;
                                  -1 past n_steps */
    double weight;  /* share of the bucket's requests (cref_order: 0) */
    double quality; /* expected outcome per request of the bucket */
    double cost;    /* expected cost per request of the bucket, USD */
} cref_pick_t;

/* Builds the reference over a finished dataset for cascades of up to
 * steps models (1 .. CREF_MAX_STEPS) judged by vm. Returns NULL with a
 * message in e: SERR_ARG (steps out of range, too many orders for a
 * bucket, `column` on data without verdicts: vmodel_check, a dataset not
 * finished) or SERR_EMPTY (no rows). */
cref_t *cref_build(const dataset_t *ds, const vmodel_t *vm, unsigned steps,
                   serr_t *e);
void cref_destroy(cref_t **r);

/* The LP mix at a budget per request (USD; <= 0: none): writes the
 * expected quality and cost per request (rows of buckets with no model
 * count as 0 at cost 0). Returns 0, LP_INFEASIBLE (policies/lp.h,
 * positive: the budget is below the cheapest choice, which is returned) or
 * SERR_POLICY. */
int cref_solve(const cref_t *r, double budget, double *quality, double *cost);

/* The solution at that budget, as cref_solve finds it: the orders with a
 * positive weight, by bucket (one per bucket, two in at most one bucket:
 * at most n_buckets + 1). Writes up to cap picks and returns how many the
 * solution has; < 0 (SERR_POLICY) if the LP failed. */
int cref_picks(const cref_t *r, double budget, cref_pick_t *picks, size_t cap);

/* Steps (S) the reference was built for. */
unsigned cref_steps(const cref_t *r);

/* Orders of a bucket (0 for a bucket with no rows or no model). */
size_t cref_n_orders(const cref_t *r, int bucket);

/* Order i (0 .. cref_n_orders - 1) of a bucket, with weight 0. Returns 0,
 * or SERR_ARG when bucket or i is out of range. */
int cref_order(const cref_t *r, int bucket, size_t i, cref_pick_t *out);

#endif
