/*
 * olog.h - logged bandit feedback: one row per decision, with only the
 * chosen action's outcome, its cost and the propensity of that choice.
 *
 * Input of off-policy evaluation (ope.h). Two readers, chosen by extension:
 *
 *   .jsonl, .ndjson  the controller's decision log (`bursar export`,
 *                    docs/protocol.md "export"): one object per line with
 *                    `bucket` (string), `model` (string: the action),
 *                    `propensity` (number in [0, 1], null or absent:
 *                    missing), `reward` (number in [0, 1] or null: the
 *                    reward in the posterior, 0 after a correction; absent:
 *                    `outcome` is read instead), `cost_usd` (number >= 0 or
 *                    null), `time` (number, optional), and what links a
 *                    cascade (all optional, null = absent): `offered`
 *                    (array of at most OLOG_OFFERED_MAX model names: the
 *                    set the decision was drawn from, its propensity
 *                    relative to it; the logged model joins it if
 *                    missing), `seq` and `escalates_seq` (16 hex digits:
 *                    the decision's sequence id and that of the decision
 *                    it escalates) and `step` (an integer in [0, 255]).
 *                    Other fields are ignored. A fallback that served
 * (`served_model`) does not change the action: the row says what happened when
 *                    `model` was chosen, fallback included. Blank lines are
 *                    skipped; text after the object on its line is an
 *                    error. Keys are case-sensitive; numbers are read as
 *                    cJSON reads them (the reader's fast path gives the
 *                    same rows and messages: tests/fuzz/fuzz_olog.c).
 *   .csv             the Open Bandit Dataset (Saito et al., 2021): columns
 *                    `item_id` (the action), `position` (the bucket is
 *                    "pos<position>"), `click` (the reward, 0 or 1) and
 *                    `propensity_score`; no cost (cost NaN). A missing
 *                    `position` column puts every row in bucket "all".
 *
 * Missing values are kept as NaN, not refused: a row without an outcome
 * (pending or expired decision) or without a propensity is counted and
 * left out by the estimators (ope.h), which say so in their warnings.
 * Malformed values are errors naming the file, the line and the field:
 *   "log.jsonl:12: field 'propensity': not a number"
 * Returns 0, SERR_IO, SERR_PARSE or SERR_FORMAT.
 *
 * Ownership: the log owns its names and arrays; names live as long as the
 * log. Rows keep their order (the log's time order).
 */
#ifndef BURSAR_OLOG_H
#define BURSAR_OLOG_H

#include <stddef.h>
#include <stdint.h>

#include "sim/serr.h"

#define OLOG_OFFERED_MAX 64 /* models in a row's offered set */
#define OLOG_STEP_MAX    255

typedef struct olog {
    size_t n_rows;
    size_t n_buckets;
    char **bucket; /* bucket names */
    size_t n_actions;
    char **action;   /* action (model, item) names */
    int *row_bucket; /* per row */
    int *row_action; /* per row */
    double *reward;  /* per row, [0, 1]; NaN: no outcome */
    double *cost;    /* per row, USD; NaN: none reported */
    double *prop;    /* per row, (0, 1]; 0 or NaN: zero / missing */
    double *time;    /* per row, seconds; NaN when absent */
    long *line;      /* per row: the input line, for messages */
    /* Cascades (olog_set_offered, olog_set_link): absent by default. */
    int *row_step;        /* per row: step in its cascade; -1: absent */
    uint64_t *row_seq;    /* per row: sequence id; 0: absent */
    uint64_t *row_parent; /* per row: seq of the decision it escalates, 0 */
    size_t *row_off;      /* per row: first of its set in off_ids */
    int *row_n_off;       /* per row: size of its offered set; -1: none */
    int *off_ids;         /* action ids of the offered sets, row by row */
    size_t n_off_ids, cap_off_ids;
    size_t cap;
    int fast_bucket; /* private: last bucket of the JSONL fast path */
    int fast_off;    /* 1: every JSONL line through cJSON (the fast path's
                        differential fuzz target, tests/fuzz/fuzz_olog.c) */
} olog_t;

/* An empty log. Never NULL (aborts on out of memory). */
olog_t *olog_new(void);
void olog_destroy(olog_t **lg);

/* Bucket / action id by name, added if new (olog_*_id) or -1 (find). */
int olog_bucket_id(olog_t *lg, const char *name);
int olog_action_id(olog_t *lg, const char *name);
int olog_find_bucket(const olog_t *lg, const char *name);
int olog_find_action(const olog_t *lg, const char *name);

/* Appends a row; returns its index. */
size_t olog_add(olog_t *lg, int bucket, int action, double reward, double cost,
                double prop, double time, long line);

/* Row `row`'s offered set: n action ids (duplicates dropped); the row's
 * own action joins it when missing. */
void olog_set_offered(olog_t *lg, size_t row, const int *ids, size_t n);
/* Row `row`'s place in a cascade: its sequence id (0: none), its step
 * (-1: absent) and the sequence id of the decision it escalates (0:
 * none). */
void olog_set_link(olog_t *lg, size_t row, uint64_t seq, int step,
                   uint64_t parent);
/* 1 when row holds an offered set, and the set's ids in *ids, *n. */
int olog_offered(const olog_t *lg, size_t row, const int **ids, size_t *n);

/* Reads a file by extension (above) and appends its rows. */
int olog_load_path(olog_t *lg, const char *path, serr_t *e);

/* The readers over a buffer (name is used in messages only). */
int olog_load_jsonl_buffer(olog_t *lg, const char *buf, size_t len,
                           const char *name, serr_t *e);
int olog_load_obd_buffer(olog_t *lg, const char *buf, size_t len,
                         const char *name, serr_t *e);

#endif
