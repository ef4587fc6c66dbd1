/*
 * dataset.h - full-information traffic: every model's outcome per request.
 *
 * A dataset is a list of requests (rows). Each row belongs to one bucket
 * and holds, for every model, a status, an outcome in [0, 1] and a cost in
 * USD. Readers (load.h, scenario.h) fill it row by row; dataset_finish then
 * lays the cells out densely and computes the summary statistics that the
 * reports and the best-static LP use.
 *
 * Status of a cell:
 *   DATASET_OK      outcome and cost are known;
 *   DATASET_MISSING the data holds no outcome for that model on that row
 *                   (RouterBench empty score, a model absent from a JSONL
 *                   line): the model is not offered for that request, as if
 *                   the caller had excluded it (policy_request_t.allowed);
 *   DATASET_ERROR   the model was down (synthetic outage, or "error" in
 *                   JSONL): choosing it yields a provider error, not a
 *                   quality outcome (see replay.h).
 *
 * A cell with an outcome may also carry a validator's verdict on that
 * answer (1: passed, 0: rejected), read from the data (RouterBench-style
 * `M|verdict` columns, JSONL "verdicts"); sim/vmodel.h's `column` model
 * uses it. Most data has none: then `verdict` stays NULL.
 *
 * Ownership: the dataset owns every name and array; names returned by the
 * accessors live as long as the dataset.
 */
#ifndef BURSAR_DATASET_H
#define BURSAR_DATASET_H

#include <stddef.h>

#define DATASET_OK      0
#define DATASET_MISSING 1
#define DATASET_ERROR   2

typedef struct dataset_cell {
    size_t row;
    int model;
    unsigned char status;
    double outcome;    /* [0, 1] */
    double cost;       /* USD */
    double latency_ms; /* NAN: not known */
    double verdict;    /* 0 or 1; NAN: none */
} dataset_cell_t;

typedef struct dataset {
    size_t n_models;
    char **model; /* model names, n_models */
    size_t n_buckets;
    char **bucket; /* bucket names, n_buckets */
    size_t n_rows;
    int *row_bucket; /* bucket id per row */
    int ordered;     /* 1: rows are a time series (do not shuffle) */

    /* after dataset_finish: dense n_rows x n_models, row-major */
    unsigned char *status;
    double *outcome; /* 0 where status != OK */
    double *cost;    /* 0 where status != OK */
    double *latency; /* ms, NAN where not known; NULL when no cell has one */
    double *verdict; /* validator verdict 0/1, NAN where none (and where
                        status != OK); NULL when no OK cell has one */
    double *bucket_slo_ms; /* latency objective per bucket (<= 0: none);
                              NULL: none (set by scenarios) */
    size_t n_bucket_slo;   /* entries of bucket_slo_ms: the buckets known
                              when it was set (later ones have none) */

    /* after dataset_finish: statistics over the OK cells */
    size_t *bucket_rows;   /* rows per bucket, n_buckets */
    size_t *bm_n;          /* OK cells per (bucket, model), b * n_models + m */
    double *bm_quality;    /* mean outcome per (bucket, model); 0 if none */
    double *bm_cost;       /* mean cost per (bucket, model), USD */
    size_t *model_n;       /* OK cells per model */
    double *model_quality; /* mean outcome per model over its OK cells */
    double *model_cost;    /* mean cost per model, USD (the price table) */

    /* building (private) */
    dataset_cell_t *cells;
    size_t n_cells, cells_cap, rows_cap;
    int finished;
} dataset_t;

/* An empty dataset. Never NULL (aborts on out of memory). */
dataset_t *dataset_new(void);
void dataset_destroy(dataset_t **ds);

/* The id of the model / bucket of that name, added if new. */
int dataset_model_id(dataset_t *ds, const char *name);
int dataset_bucket_id(dataset_t *ds, const char *name);

/* The id of an existing model / bucket, or -1. */
int dataset_find_model(const dataset_t *ds, const char *name);
int dataset_find_bucket(const dataset_t *ds, const char *name);

/* Starts a new row in bucket b; returns its index. Cells not set stay
 * DATASET_MISSING. Only before dataset_finish. */
size_t dataset_add_row(dataset_t *ds, int bucket);

/* Sets the cell of model m in the last row. outcome is clamped to [0, 1],
 * a negative cost to 0. */
void dataset_set(dataset_t *ds, int model, unsigned char status, double outcome,
                 double cost);

/* Sets the latency (ms, >= 0) of the cell set last. */
void dataset_set_latency(dataset_t *ds, double latency_ms);

/* Sets the validator verdict (0: rejected, 1: passed; any other value is
 * ignored) of the cell set last. Kept only on an OK cell. */
void dataset_set_verdict(dataset_t *ds, double verdict);

/* Lays the cells out densely and computes the statistics. Idempotent. */
void dataset_finish(dataset_t *ds);

/* Cell accessors (after dataset_finish). */
static inline size_t
dataset_idx(const dataset_t *ds, size_t row, int model)
{
    return row * ds->n_models + (size_t)model;
}

/* The per-prompt oracle over the whole dataset: for each row the best
 * outcome among its OK cells, served by the cheapest model reaching it
 * (for 0/1 outcomes: the cheapest correct model, score 1 if any is
 * correct, else the cheapest model at score 0). Rows with no OK cell count
 * as outcome 0 at cost 0. Writes the mean outcome and the mean cost per
 * request. */
void dataset_oracle(const dataset_t *ds, double *quality, double *cost);

#endif
