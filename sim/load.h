/*
 * load.h - readers of logged full-information data into a dataset.
 *
 * Two formats, chosen by the file's extension:
 *
 *   .csv             RouterBench-style wide CSV (RFC 4180, csv.h): a header
 *                    row; the bucket is the column `eval_name` (or
 *                    `bucket`); every column M for which a column
 *                    `M|total_cost` exists is a model, M holding its score
 *                    in [0, 1] and `M|total_cost` its cost in USD. Other
 *                    columns are ignored. An empty score means the data has
 *                    no outcome for that model on that row: the cell is
 *                    DATASET_MISSING (the model is not offered for that
 *                    request) and the row still counts. A present score
 *                    with an empty or bad cost is an error. An optional
 *                    column `M|verdict` holds a validator's verdict on M's
 *                    answer: 0, 1 (1.0 and 0.0 too) or empty (none);
 *                    anything else is an error, and a verdict beside an
 *                    empty score is dropped (dataset.h).
 *   .jsonl, .ndjson  one JSON object per line:
 *                    {"bucket": "code", "outcomes": {"M": 0..1, ...},
 *                     "cost_usd": {"M": x, ...}}
 *                    with optional "id", "latency_ms": {"M": x} and
 *                    "verdicts": {"M": 0|1|true|false|null} (a
 *                    validator's verdict on M's answer; null: none; kept
 *                    only beside a numeric outcome). An
 *                    outcome may be null (no outcome: MISSING) or the
 *                    string "error" (provider error: DATASET_ERROR, cost
 *                    optional). Every numeric outcome needs its cost. Blank
 *                    lines are skipped.
 *
 * load_path also takes a directory: every .csv, .jsonl and .ndjson file in
 * it, in name order. Several calls append to the same dataset; models and
 * buckets are matched by name, and a model a file does not mention is
 * MISSING on that file's rows.
 *
 * Errors name the file, the line and the field:
 *   "mbpp.csv:812: field 'claude-v2|total_cost': empty while the score is
 *    present"
 * Returns 0, SERR_IO, SERR_PARSE, SERR_FORMAT or SERR_EMPTY (a directory
 * with no data file). On error the rows read so far stay in the dataset;
 * the caller normally discards it.
 */
#ifndef BURSAR_LOAD_H
#define BURSAR_LOAD_H

#include "sim/dataset.h"
#include "sim/serr.h"

int load_path(dataset_t *ds, const char *path, serr_t *e);

/* The readers behind load_path, over a buffer in memory (name is used in
 * messages only). */
int load_csv_buffer(dataset_t *ds, const char *buf, size_t len,
                    const char *name, serr_t *e);
int load_jsonl_buffer(dataset_t *ds, const char *buf, size_t len,
                      const char *name, serr_t *e);

/* 1 if the path names a file that load_path reads by extension. */
int load_is_data_file(const char *path);

#endif
