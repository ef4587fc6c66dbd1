/*
 * dataset.c - full-information traffic (see dataset.h).
 *
 * Cells arrive sparse (a reader may meet a new model on any row) and are
 * laid out densely once the set of models is known. Name lookups are
 * linear: a dataset has tens of models and buckets, not thousands.
 */
#include "sim/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policies/base.h"

dataset_t *
dataset_new(void)
{
    return bursar_calloc(1, sizeof(dataset_t));
}

void
dataset_destroy(dataset_t **pds)
{
    if (!pds || !*pds)
        return;
    dataset_t *ds = *pds;
    for (size_t i = 0; i < ds->n_models; i++)
        free(ds->model[i]);
    for (size_t i = 0; i < ds->n_buckets; i++)
        free(ds->bucket[i]);
    free(ds->model);
    free(ds->bucket);
    free(ds->row_bucket);
    free(ds->status);
    free(ds->outcome);
    free(ds->cost);
    free(ds->latency);
    free(ds->verdict);
    free(ds->bucket_slo_ms);
    free(ds->bucket_rows);
    free(ds->bm_n);
    free(ds->bm_quality);
    free(ds->bm_cost);
    free(ds->model_n);
    free(ds->model_quality);
    free(ds->model_cost);
    free(ds->cells);
    free(ds);
    *pds = NULL;
}

static int
dataset_find(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

int
dataset_find_model(const dataset_t *ds, const char *name)
{
    return dataset_find(ds->model, ds->n_models, name);
}

int
dataset_find_bucket(const dataset_t *ds, const char *name)
{
    return dataset_find(ds->bucket, ds->n_buckets, name);
}

int
dataset_model_id(dataset_t *ds, const char *name)
{
    int id = dataset_find_model(ds, name);
    if (id >= 0)
        return id;
    ds->model = bursar_realloc(ds->model, (ds->n_models + 1) * sizeof(char *));
    ds->model[ds->n_models] = bursar_strdup(name);
    return (int)ds->n_models++;
}

int
dataset_bucket_id(dataset_t *ds, const char *name)
{
    int id = dataset_find_bucket(ds, name);
    if (id >= 0)
        return id;
    ds->bucket =
        bursar_realloc(ds->bucket, (ds->n_buckets + 1) * sizeof(char *));
    ds->bucket[ds->n_buckets] = bursar_strdup(name);
    return (int)ds->n_buckets++;
}

size_t
dataset_add_row(dataset_t *ds, int bucket)
{
    if (ds->n_rows == ds->rows_cap) {
        ds->rows_cap = ds->rows_cap ? 2 * ds->rows_cap : 1024;
        ds->row_bucket =
            bursar_realloc(ds->row_bucket, ds->rows_cap * sizeof(int));
    }
    ds->row_bucket[ds->n_rows] = bucket;
    return ds->n_rows++;
}

void
dataset_set(dataset_t *ds, int model, unsigned char status, double outcome,
            double cost)
{
    if (ds->n_cells == ds->cells_cap) {
        ds->cells_cap = ds->cells_cap ? 2 * ds->cells_cap : 4096;
        ds->cells =
            bursar_realloc(ds->cells, ds->cells_cap * sizeof(dataset_cell_t));
    }
    if (!(outcome >= 0.0))
        outcome = 0.0;
    if (outcome > 1.0)
        outcome = 1.0;
    if (!(cost >= 0.0))
        cost = 0.0;
    dataset_cell_t *c = &ds->cells[ds->n_cells++];
    c->row = ds->n_rows ? ds->n_rows - 1 : 0;
    c->model = model;
    c->status = status;
    c->outcome = outcome;
    c->cost = cost;
    c->latency_ms = NAN;
    c->verdict = NAN;
}

void
dataset_set_latency(dataset_t *ds, double latency_ms)
{
    if (ds->n_cells && latency_ms >= 0.0)
        ds->cells[ds->n_cells - 1].latency_ms = latency_ms;
}

void
dataset_set_verdict(dataset_t *ds, double verdict)
{
    if (ds->n_cells && (verdict == 0.0 || verdict == 1.0))
        ds->cells[ds->n_cells - 1].verdict = verdict;
}

/* An array of n NANs (the dense layout of latencies and verdicts). */
static double *
dataset_nan_array(size_t n)
{
    double *a = bursar_malloc((n + 1) * sizeof(double));
    for (size_t k = 0; k < n; k++)
        a[k] = NAN;
    return a;
}

void
dataset_finish(dataset_t *ds)
{
    if (ds->finished)
        return;
    size_t nm = ds->n_models, nb = ds->n_buckets, nr = ds->n_rows;
    ds->status = bursar_malloc(nr * nm + 1);
    memset(ds->status, DATASET_MISSING, nr * nm);
    ds->outcome = bursar_calloc(nr * nm, sizeof(double));
    ds->cost = bursar_calloc(nr * nm, sizeof(double));
    for (size_t i = 0; i < ds->n_cells && !ds->latency; i++)
        if (!isnan(ds->cells[i].latency_ms))
            ds->latency = dataset_nan_array(nr * nm);
    for (size_t i = 0; i < ds->n_cells && !ds->verdict; i++)
        if (ds->cells[i].status == DATASET_OK && !isnan(ds->cells[i].verdict))
            ds->verdict = dataset_nan_array(nr * nm);
    for (size_t i = 0; i < ds->n_cells; i++) {
        const dataset_cell_t *c = &ds->cells[i];
        size_t k = dataset_idx(ds, c->row, c->model);
        ds->status[k] = c->status;
        ds->outcome[k] = c->status == DATASET_OK ? c->outcome : 0.0;
        ds->cost[k] = c->status == DATASET_OK ? c->cost : 0.0;
        if (ds->latency && c->status == DATASET_OK)
            ds->latency[k] = c->latency_ms;
        if (ds->verdict && c->status == DATASET_OK)
            ds->verdict[k] = c->verdict;
    }
    free(ds->cells);
    ds->cells = NULL;
    ds->n_cells = ds->cells_cap = 0;

    ds->bucket_rows = bursar_calloc(nb, sizeof(size_t));
    ds->bm_n = bursar_calloc(nb * nm, sizeof(size_t));
    ds->bm_quality = bursar_calloc(nb * nm, sizeof(double));
    ds->bm_cost = bursar_calloc(nb * nm, sizeof(double));
    ds->model_n = bursar_calloc(nm, sizeof(size_t));
    ds->model_quality = bursar_calloc(nm, sizeof(double));
    ds->model_cost = bursar_calloc(nm, sizeof(double));
    for (size_t r = 0; r < nr; r++) {
        size_t b = (size_t)ds->row_bucket[r];
        ds->bucket_rows[b]++;
        for (size_t m = 0; m < nm; m++) {
            size_t k = dataset_idx(ds, r, (int)m);
            if (ds->status[k] != DATASET_OK)
                continue;
            ds->bm_n[b * nm + m]++;
            ds->bm_quality[b * nm + m] += ds->outcome[k];
            ds->bm_cost[b * nm + m] += ds->cost[k];
            ds->model_n[m]++;
            ds->model_quality[m] += ds->outcome[k];
            ds->model_cost[m] += ds->cost[k];
        }
    }
    for (size_t i = 0; i < nb * nm; i++) {
        if (ds->bm_n[i]) {
            ds->bm_quality[i] /= (double)ds->bm_n[i];
            ds->bm_cost[i] /= (double)ds->bm_n[i];
        }
    }
    for (size_t m = 0; m < nm; m++) {
        if (ds->model_n[m]) {
            ds->model_quality[m] /= (double)ds->model_n[m];
            ds->model_cost[m] /= (double)ds->model_n[m];
        }
    }
    ds->finished = 1;
}

void
dataset_oracle(const dataset_t *ds, double *quality, double *cost)
{
    double qs = 0.0, cs = 0.0;
    for (size_t r = 0; r < ds->n_rows; r++) {
        double best_q = -1.0, best_c = 0.0;
        for (size_t m = 0; m < ds->n_models; m++) {
            size_t k = dataset_idx(ds, r, (int)m);
            if (ds->status[k] != DATASET_OK)
                continue;
            double q = ds->outcome[k], c = ds->cost[k];
            if (q > best_q || (q == best_q && c < best_c)) {
                best_q = q;
                best_c = c;
            }
        }
        if (best_q >= 0.0) {
            qs += best_q;
            cs += best_c;
        }
    }
    double n = ds->n_rows ? (double)ds->n_rows : 1.0;
    *quality = qs / n;
    *cost = cs / n;
}
