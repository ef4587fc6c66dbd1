/*
 * vmodel.h - the validator model of a cascade replay: does an answer pass?
 *
 * A cascade tries a model, a validator judges its answer, and a rejected
 * answer escalates to another model. Full-information data says how good
 * each answer is (its outcome) but rarely what a validator would have said;
 * a validator model fills that in, per cell (row, model) of a dataset:
 *
 *   perfect        passes exactly the answers whose outcome is >= 0.5
 *                  (VMODEL_THRESHOLD);
 *   noisy:FP,FF    an answer with outcome < 0.5 passes with probability FP
 *                  (false pass), one with outcome >= 0.5 fails with
 *                  probability FF (false fail); FP, FF in [0, 1];
 *                  noisy:0,0 is perfect;
 *   column         the data's own verdicts (dataset_t.verdict: RouterBench
 *                  `M|verdict` columns, JSONL "verdicts"). A cell with an
 *                  outcome but no verdict falls back to the perfect rule,
 *                  so data with verdicts for some models only can be used
 *                  as it is. Data with no verdict at all is an error
 *                  (vmodel_check).
 *
 * Only cells with status DATASET_OK have an answer to judge: for a MISSING
 * or ERROR cell the pass probability is 0 and no draw passes (a cascade
 * skips such a model anyway, see cref.h).
 *
 * Draws are deterministic: vmodel_draw hashes (seed, pass, row, model) with
 * splitmix64 into a uniform u in [0, 1) and passes when u < P(pass). So
 * every policy replayed with the same seed sees the same verdict on the
 * same cell in the same pass (common random numbers), the draws of
 * different passes are independent, and u does not depend on the model of
 * the validator (perfect and noisy runs share their uniforms).
 *
 * Ownership: a vmodel_t is a plain value (no allocation, nothing to free);
 * the dataset is only read and must be finished (dataset_finish).
 */
#ifndef BURSAR_SIM_VMODEL_H
#define BURSAR_SIM_VMODEL_H

#include <stddef.h>

#include "sim/dataset.h"
#include "sim/serr.h"

/* An outcome at or above this passes a perfect validator. */
#define VMODEL_THRESHOLD 0.5

typedef enum vmodel_kind {
    VMODEL_PERFECT = 0,
    VMODEL_NOISY,
    VMODEL_COLUMN
} vmodel_kind_t;

typedef struct vmodel {
    vmodel_kind_t kind;
    double false_pass; /* noisy: P(pass | outcome < 0.5); else 0 */
    double false_fail; /* noisy: P(fail | outcome >= 0.5); else 0 */
} vmodel_t;

/* The perfect validator. */
void vmodel_default(vmodel_t *vm);

/* Parses a --validator spec: "perfect", "noisy:FP,FF" or "column". On
 * success fills *vm and returns 0; otherwise returns SERR_ARG with a
 * message naming the spec and what is wrong ("--validator noisy:0.1,2:
 * false-fail probability '2' is not a number in [0, 1]"), *vm untouched. */
int vmodel_parse(const char *spec, vmodel_t *vm, serr_t *e);

/* Whether vm can judge ds: 0, or SERR_ARG for `column` on data without
 * any verdict ("--validator column: the data has no verdict columns
 * (M|verdict ...)"). */
int vmodel_check(const vmodel_t *vm, const dataset_t *ds, serr_t *e);

/* The spec that vmodel_parse would read back ("noisy:0.1,0.2"), in buf
 * (cap bytes). Returns buf. */
const char *vmodel_describe(const vmodel_t *vm, char *buf, size_t cap);

/* P(pass) of the answer in cell (row, model): perfect 0 or 1, noisy FP or
 * 1 - FF, column the verdict (0 or 1; the perfect rule where the cell has
 * no verdict); 0 for a cell that is not DATASET_OK. */
double vmodel_pass_prob(const vmodel_t *vm, const dataset_t *ds, size_t row,
                        int model);

/* A verdict (1: passes, 0: rejected) for cell (row, model), drawn from
 * the uniform that hashes (seed, pass, row, model) (see above). */
int vmodel_draw(const vmodel_t *vm, const dataset_t *ds, size_t row, int model,
                unsigned long seed, unsigned pass);

/* The uniform in [0, 1) behind vmodel_draw, for tests and for callers
 * that need it twice. */
double vmodel_uniform(unsigned long seed, unsigned pass, size_t row, int model);

#endif
