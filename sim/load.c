/*
 * load.c - RouterBench CSV and generic JSONL readers (see load.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/load.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "sim/csv.h"
#include "policies/base.h"

/* ---------------------------------------------------------------- util */

static int
load_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int
load_is_data_file(const char *path)
{
    return load_ends_with(path, ".csv") || load_ends_with(path, ".jsonl") ||
           load_ends_with(path, ".ndjson");
}

/* Parses a whole string as a finite number. Returns 0 or -1. */
static int
load_number(const char *s, double *out)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ----------------------------------------------------------------- CSV */

typedef struct load_col {
    int model;    /* dataset model id */
    size_t score; /* column of the score */
    size_t cost;  /* column of M|total_cost */
    long verdict; /* column of M|verdict, -1: none */
} load_col_t;

/* What the header of a RouterBench CSV says. */
typedef struct load_csv {
    char **hdr; /* the header's names (owned) */
    size_t n_hdr;
    long bucket_col;  /* eval_name or bucket */
    load_col_t *cols; /* the models (owned) */
    size_t n_cols;
} load_csv_t;

static void
load_csv_free(load_csv_t *h)
{
    for (size_t i = 0; i < h->n_hdr; i++)
        free(h->hdr[i]);
    free(h->hdr);
    free(h->cols);
}

/* The column named model followed by suffix ("|total_cost"), or -1. */
static long
load_csv_partner(const load_csv_t *h, const char *model, const char *suffix)
{
    size_t k = strlen(model);
    for (size_t j = 0; j < h->n_hdr; j++)
        if (strncmp(h->hdr[j], model, k) == 0 &&
            strcmp(h->hdr[j] + k, suffix) == 0)
            return (long)j;
    return -1;
}

/* The bucket column and the models (M beside M|total_cost) of the header
 * record that c holds; the models are added to ds. */
static int
load_csv_header(dataset_t *ds, const csv_t *c, load_csv_t *h, const char *name,
                serr_t *e)
{
    h->n_hdr = csv_n_fields(c);
    h->hdr = bursar_calloc(h->n_hdr, sizeof(char *));
    for (size_t i = 0; i < h->n_hdr; i++)
        h->hdr[i] = bursar_strdup(csv_field(c, i));
    h->bucket_col = -1;
    for (size_t i = 0; i < h->n_hdr; i++)
        if (strcmp(h->hdr[i], "eval_name") == 0 ||
            strcmp(h->hdr[i], "bucket") == 0)
            h->bucket_col = (long)i;
    if (h->bucket_col < 0)
        return serr_set(e, SERR_FORMAT,
                        "%s:1: no bucket column (expected 'eval_name' or "
                        "'bucket' in the header)",
                        name);
    h->cols = bursar_calloc(h->n_hdr, sizeof *h->cols);
    for (size_t i = 0; i < h->n_hdr; i++) {
        const char *m = h->hdr[i];
        if (!m[0] || strchr(m, '|'))
            continue;
        long cost = load_csv_partner(h, m, "|total_cost");
        if (cost < 0)
            continue;
        load_col_t *col = &h->cols[h->n_cols++];
        col->model = dataset_model_id(ds, m);
        col->score = i;
        col->cost = (size_t)cost;
        col->verdict = load_csv_partner(h, m, "|verdict");
    }
    if (h->n_cols == 0)
        return serr_set(e, SERR_FORMAT,
                        "%s:1: no model columns (a model M needs columns 'M' "
                        "and 'M|total_cost')",
                        name);
    return 0;
}

/* The verdict of M|verdict on the current row: 0 or 1, NAN when empty. */
static int
load_csv_verdict(const csv_t *c, const load_csv_t *h, const load_col_t *col,
                 const char *name, long line, double *out, serr_t *e)
{
    *out = NAN;
    if (col->verdict < 0)
        return 0;
    const char *s = csv_field(c, (size_t)col->verdict);
    double v;
    if (!s[0])
        return 0;
    if (load_number(s, &v) < 0 || (v != 0.0 && v != 1.0))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': '%.40s' is not a verdict (0, 1 "
                        "or empty)",
                        name, line, h->hdr[col->verdict], s);
    *out = v;
    return 0;
}

/* One model's score, cost and verdict on the current row; an empty score
 * is no outcome (MISSING), and its verdict, if any, is not kept. */
static int
load_csv_cell(dataset_t *ds, const csv_t *c, const load_csv_t *h,
              const load_col_t *col, const char *name, long line, serr_t *e)
{
    const char *s = csv_field(c, col->score);
    const char *cs = csv_field(c, col->cost);
    double q, cost, verdict;
    int rc = load_csv_verdict(c, h, col, name, line, &verdict, e);
    if (rc)
        return rc;
    if (!s[0])
        return 0; /* no outcome: MISSING */
    if (load_number(s, &q) < 0 || q < 0.0 || q > 1.0)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': '%.40s' is not a score in "
                        "[0, 1]",
                        name, line, h->hdr[col->score], s);
    if (!cs[0])
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': empty while the score is "
                        "present",
                        name, line, h->hdr[col->cost]);
    if (load_number(cs, &cost) < 0 || cost < 0.0)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': '%.40s' is not a cost in "
                        "USD (>= 0)",
                        name, line, h->hdr[col->cost], cs);
    dataset_set(ds, col->model, DATASET_OK, q, cost);
    dataset_set_verdict(ds, verdict);
    return 0;
}

/* The record that c holds, as a row of ds (blank lines skipped). */
static int
load_csv_row(dataset_t *ds, const csv_t *c, const load_csv_t *h,
             const char *name, serr_t *e)
{
    size_t nf = csv_n_fields(c);
    long line = csv_line(c);
    if (nf == 1 && csv_field(c, 0)[0] == '\0')
        return 0; /* blank line */
    if (nf != h->n_hdr)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: %zu fields where the header has %zu", name,
                        line, nf, h->n_hdr);
    const char *bucket = csv_field(c, (size_t)h->bucket_col);
    if (!bucket[0])
        return serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': empty bucket",
                        name, line, h->hdr[h->bucket_col]);
    dataset_add_row(ds, dataset_bucket_id(ds, bucket));
    for (size_t i = 0; i < h->n_cols; i++) {
        int rc = load_csv_cell(ds, c, h, &h->cols[i], name, line, e);
        if (rc)
            return rc;
    }
    return 0;
}

int
load_csv_buffer(dataset_t *ds, const char *buf, size_t len, const char *name,
                serr_t *e)
{
    csv_t *c = csv_new(buf, len, name);
    load_csv_t h;
    memset(&h, 0, sizeof h);
    int rc = csv_next(c, e);
    if (rc == 0)
        rc = serr_set(e, SERR_EMPTY, "%s: empty file (no header row)", name);
    else if (rc > 0)
        rc = load_csv_header(ds, c, &h, name, e);
    while (rc == 0 && (rc = csv_next(c, e)) == 1)
        rc = load_csv_row(ds, c, &h, name, e);
    load_csv_free(&h);
    csv_destroy(&c);
    return rc < 0 ? rc : 0;
}

/* --------------------------------------------------------------- JSONL */

/* One model's outcome m, with its cost and latency when it has a number. */
static int
load_jsonl_outcome(const cJSON *m, const cJSON *costs, const cJSON *lat,
                   const char *name, long ln, serr_t *e)
{
    const char *mn = m->string;
    if (cJSON_IsNull(m))
        return 0;
    if (cJSON_IsString(m) && strcmp(m->valuestring, "error") == 0)
        return 0;
    if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble) ||
        m->valuedouble < 0.0 || m->valuedouble > 1.0)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'outcomes.%s': not a number in "
                        "[0, 1], null or \"error\"",
                        name, ln, mn);
    const cJSON *c = costs ? cJSON_GetObjectItemCaseSensitive(costs, mn) : NULL;
    if (!c)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'cost_usd.%s': missing (the outcome "
                        "is present)",
                        name, ln, mn);
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble) || c->valuedouble < 0.0)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'cost_usd.%s': not a number >= 0", name,
                        ln, mn);
    if (lat && cJSON_IsObject(lat)) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(lat, mn);
        if (l && !cJSON_IsNumber(l) && !cJSON_IsNull(l))
            return serr_set(e, SERR_FORMAT,
                            "%s:%ld: field 'latency_ms.%s': not a number", name,
                            ln, mn);
    }
    return 0;
}

/* "verdicts": absent, null, or an object of 0, 1, true, false or null. */
static int
load_jsonl_verdicts(const cJSON *o, const char *name, long ln, serr_t *e)
{
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "verdicts");
    if (!vs || cJSON_IsNull(vs))
        return 0;
    if (!cJSON_IsObject(vs))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'verdicts': not an object", name, ln);
    const cJSON *v;
    cJSON_ArrayForEach(v, vs)
    {
        if (cJSON_IsBool(v) || cJSON_IsNull(v))
            continue;
        if (cJSON_IsNumber(v) &&
            (v->valuedouble == 0.0 || v->valuedouble == 1.0))
            continue;
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'verdicts.%s': not 0, 1, true, false "
                        "or null",
                        name, ln, v->string);
    }
    return 0;
}

/* Checks a whole line (an object) before anything is added: bucket,
 * outcomes, cost_usd, latency_ms, id, verdicts, then every outcome. */
static int
load_jsonl_check(const cJSON *o, const char *name, long ln, serr_t *e)
{
    if (!cJSON_IsObject(o))
        return serr_set(e, SERR_FORMAT, "%s:%ld: not a JSON object", name, ln);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bucket");
    if (!cJSON_IsString(b) || !b->valuestring[0])
        return serr_set(e, SERR_FORMAT, "%s:%ld: field 'bucket': %s", name, ln,
                        b ? "not a non-empty string" : "missing");
    const cJSON *outc = cJSON_GetObjectItemCaseSensitive(o, "outcomes");
    if (!cJSON_IsObject(outc))
        return serr_set(e, SERR_FORMAT, "%s:%ld: field 'outcomes': %s", name,
                        ln, outc ? "not an object" : "missing");
    const cJSON *costs = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
    if (costs && !cJSON_IsObject(costs))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'cost_usd': not an "
                        "object",
                        name, ln);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(o, "latency_ms");
    if (lat && !cJSON_IsObject(lat) && !cJSON_IsNull(lat))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'latency_ms': not an "
                        "object",
                        name, ln);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'id': not a string or "
                        "number",
                        name, ln);
    int rc = load_jsonl_verdicts(o, name, ln, e);
    if (rc)
        return rc;
    const cJSON *m;
    cJSON_ArrayForEach(m, outc)
    {
        rc = load_jsonl_outcome(m, costs, lat, name, ln, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* A checked verdict (load_jsonl_verdicts) as 0 or 1; NAN: none. */
static double
load_jsonl_verdict(const cJSON *vs, const char *model)
{
    const cJSON *v =
        cJSON_IsObject(vs) ? cJSON_GetObjectItemCaseSensitive(vs, model) : NULL;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? 1.0 : 0.0;
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    return NAN;
}

/* A validated line as a row of ds. */
static void
load_jsonl_add(dataset_t *ds, const cJSON *o)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bucket");
    const cJSON *outc = cJSON_GetObjectItemCaseSensitive(o, "outcomes");
    const cJSON *costs = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "verdicts");
    const cJSON *m;
    dataset_add_row(ds, dataset_bucket_id(ds, b->valuestring));
    cJSON_ArrayForEach(m, outc)
    {
        int mid = dataset_model_id(ds, m->string);
        if (cJSON_IsNull(m))
            continue;
        if (cJSON_IsString(m)) {
            dataset_set(ds, mid, DATASET_ERROR, 0.0, 0.0);
            continue;
        }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(costs, m->string);
        dataset_set(ds, mid, DATASET_OK, m->valuedouble, c->valuedouble);
        dataset_set_verdict(ds, load_jsonl_verdict(vs, m->string));
    }
}

static int
load_jsonl_line(dataset_t *ds, const char *line, size_t n, const char *name,
                long ln, serr_t *e)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        long col =
            at && at >= line && at <= line + n ? (long)(at - line) + 1 : 0;
        return serr_set(e, SERR_PARSE, "%s:%ld: not valid JSON (column %ld)",
                        name, ln, col);
    }
    int rc = load_jsonl_check(o, name, ln, e);
    if (!rc)
        load_jsonl_add(ds, o);
    cJSON_Delete(o);
    return rc;
}

int
load_jsonl_buffer(dataset_t *ds, const char *buf, size_t len, const char *name,
                  serr_t *e)
{
    size_t pos = 0;
    long ln = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n')
            end++;
        ln++;
        size_t n = end - pos;
        while (n > 0 && (buf[pos + n - 1] == '\r' || buf[pos + n - 1] == ' ' ||
                         buf[pos + n - 1] == '\t'))
            n--;
        size_t s = 0;
        while (s < n && (buf[pos + s] == ' ' || buf[pos + s] == '\t'))
            s++;
        if (s < n) {
            int rc = load_jsonl_line(ds, buf + pos + s, n - s, name, ln, e);
            if (rc)
                return rc;
        }
        pos = end + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- path */

static int
load_file(dataset_t *ds, const char *path, serr_t *e)
{
    char *buf;
    size_t len;
    int rc = csv_slurp(path, &buf, &len, e);
    if (rc)
        return rc;
    if (load_ends_with(path, ".csv"))
        rc = load_csv_buffer(ds, buf, len, path, e);
    else
        rc = load_jsonl_buffer(ds, buf, len, path, e);
    free(buf);
    return rc;
}

static int
load_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
load_path(dataset_t *ds, const char *path, serr_t *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return serr_set(e, SERR_IO, "%s: cannot open: %s", path,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (!load_is_data_file(path))
            return serr_set(e, SERR_ARG,
                            "%s: unknown data format (expected .csv, .jsonl "
                            "or .ndjson; a scenario goes to --scenario)",
                            path);
        return load_file(ds, path, e);
    }
    DIR *d = opendir(path);
    if (!d)
        return serr_set(e, SERR_IO, "%s: cannot open directory: %s", path,
                        strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !load_is_data_file(de->d_name))
            continue;
        names = bursar_realloc(names, (n + 1) * sizeof(char *));
        size_t k = strlen(path) + strlen(de->d_name) + 2;
        names[n] = bursar_malloc(k);
        snprintf(names[n], k, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    int rc = 0;
    if (n == 0)
        rc = serr_set(e, SERR_EMPTY,
                      "%s: no .csv, .jsonl or .ndjson file in the directory",
                      path);
    if (n)
        qsort(names, n, sizeof(char *), load_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = load_file(ds, names[i], e);
        free(names[i]);
    }
    free(names);
    return rc;
}
