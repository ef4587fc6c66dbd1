/*
 * load.c - RouterBench CSV and generic JSONL readers (see load.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "load.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "csv.h"
#include "base.h"

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
} load_col_t;

int
load_csv_buffer(dataset_t *ds, const char *buf, size_t len, const char *name,
                serr_t *e)
{
    csv_t *c = csv_new(buf, len, name);
    load_col_t *cols = NULL;
    char **hdr = NULL;
    size_t n_hdr = 0, n_cols = 0;
    int rc = csv_next(c, e);
    if (rc <= 0) {
        if (rc == 0)
            rc =
                serr_set(e, SERR_EMPTY, "%s: empty file (no header row)", name);
        goto out;
    }
    n_hdr = csv_n_fields(c);
    hdr = bursar_calloc(n_hdr, sizeof(char *));
    for (size_t i = 0; i < n_hdr; i++)
        hdr[i] = bursar_strdup(csv_field(c, i));

    long bucket_col = -1;
    for (size_t i = 0; i < n_hdr; i++)
        if (strcmp(hdr[i], "eval_name") == 0 || strcmp(hdr[i], "bucket") == 0)
            bucket_col = (long)i;
    if (bucket_col < 0) {
        rc = serr_set(e, SERR_FORMAT,
                      "%s:1: no bucket column (expected 'eval_name' or "
                      "'bucket' in the header)",
                      name);
        goto out;
    }
    cols = bursar_calloc(n_hdr, sizeof *cols);
    for (size_t i = 0; i < n_hdr; i++) {
        if (!hdr[i][0] || strchr(hdr[i], '|'))
            continue;
        size_t k = strlen(hdr[i]);
        for (size_t j = 0; j < n_hdr; j++) {
            if (strncmp(hdr[j], hdr[i], k) == 0 &&
                strcmp(hdr[j] + k, "|total_cost") == 0) {
                cols[n_cols].model = dataset_model_id(ds, hdr[i]);
                cols[n_cols].score = i;
                cols[n_cols].cost = j;
                n_cols++;
                break;
            }
        }
    }
    if (n_cols == 0) {
        rc = serr_set(e, SERR_FORMAT,
                      "%s:1: no model columns (a model M needs columns 'M' "
                      "and 'M|total_cost')",
                      name);
        goto out;
    }
    while ((rc = csv_next(c, e)) == 1) {
        size_t nf = csv_n_fields(c);
        long line = csv_line(c);
        if (nf == 1 && csv_field(c, 0)[0] == '\0')
            continue; /* blank line */
        if (nf != n_hdr) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s:%ld: %zu fields where the header has %zu", name,
                          line, nf, n_hdr);
            goto out;
        }
        const char *bucket = csv_field(c, (size_t)bucket_col);
        if (!bucket[0]) {
            rc = serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': empty bucket",
                          name, line, hdr[bucket_col]);
            goto out;
        }
        dataset_add_row(ds, dataset_bucket_id(ds, bucket));
        for (size_t i = 0; i < n_cols; i++) {
            const char *s = csv_field(c, cols[i].score);
            const char *cs = csv_field(c, cols[i].cost);
            double q, cost;
            if (!s[0])
                continue; /* no outcome: MISSING */
            if (load_number(s, &q) < 0 || q < 0.0 || q > 1.0) {
                rc = serr_set(e, SERR_FORMAT,
                              "%s:%ld: field '%s': '%.40s' is not a score in "
                              "[0, 1]",
                              name, line, hdr[cols[i].score], s);
                goto out;
            }
            if (!cs[0]) {
                rc = serr_set(e, SERR_FORMAT,
                              "%s:%ld: field '%s': empty while the score is "
                              "present",
                              name, line, hdr[cols[i].cost]);
                goto out;
            }
            if (load_number(cs, &cost) < 0 || cost < 0.0) {
                rc = serr_set(e, SERR_FORMAT,
                              "%s:%ld: field '%s': '%.40s' is not a cost in "
                              "USD (>= 0)",
                              name, line, hdr[cols[i].cost], cs);
                goto out;
            }
            dataset_set(ds, cols[i].model, DATASET_OK, q, cost);
        }
    }
out:
    for (size_t i = 0; i < n_hdr; i++)
        free(hdr[i]);
    free(hdr);
    free(cols);
    csv_destroy(&c);
    return rc < 0 ? rc : 0;
}

/* --------------------------------------------------------------- JSONL */

static int
load_jsonl_line(dataset_t *ds, const char *line, size_t n, const char *name,
                long ln, serr_t *e)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    int rc = 0;
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        long col =
            at && at >= line && at <= line + n ? (long)(at - line) + 1 : 0;
        return serr_set(e, SERR_PARSE, "%s:%ld: not valid JSON (column %ld)",
                        name, ln, col);
    }
    if (!cJSON_IsObject(o)) {
        rc = serr_set(e, SERR_FORMAT, "%s:%ld: not a JSON object", name, ln);
        goto out;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bucket");
    if (!cJSON_IsString(b) || !b->valuestring[0]) {
        rc = serr_set(e, SERR_FORMAT, "%s:%ld: field 'bucket': %s", name, ln,
                      b ? "not a non-empty string" : "missing");
        goto out;
    }
    const cJSON *outc = cJSON_GetObjectItemCaseSensitive(o, "outcomes");
    if (!cJSON_IsObject(outc)) {
        rc = serr_set(e, SERR_FORMAT, "%s:%ld: field 'outcomes': %s", name, ln,
                      outc ? "not an object" : "missing");
        goto out;
    }
    const cJSON *costs = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
    if (costs && !cJSON_IsObject(costs)) {
        rc = serr_set(e, SERR_FORMAT,
                      "%s:%ld: field 'cost_usd': not an "
                      "object",
                      name, ln);
        goto out;
    }
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(o, "latency_ms");
    if (lat && !cJSON_IsObject(lat) && !cJSON_IsNull(lat)) {
        rc = serr_set(e, SERR_FORMAT,
                      "%s:%ld: field 'latency_ms': not an "
                      "object",
                      name, ln);
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id)) {
        rc = serr_set(e, SERR_FORMAT,
                      "%s:%ld: field 'id': not a string or "
                      "number",
                      name, ln);
        goto out;
    }
    /* validate everything before adding the row */
    const cJSON *m;
    size_t n_ok = 0;
    cJSON_ArrayForEach(m, outc)
    {
        const char *mn = m->string;
        if (cJSON_IsNull(m))
            continue;
        if (cJSON_IsString(m) && strcmp(m->valuestring, "error") == 0)
            continue;
        if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble) ||
            m->valuedouble < 0.0 || m->valuedouble > 1.0) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s:%ld: field 'outcomes.%s': not a number in "
                          "[0, 1], null or \"error\"",
                          name, ln, mn);
            goto out;
        }
        const cJSON *c =
            costs ? cJSON_GetObjectItemCaseSensitive(costs, mn) : NULL;
        if (!c) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s:%ld: field 'cost_usd.%s': missing (the outcome "
                          "is present)",
                          name, ln, mn);
            goto out;
        }
        if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble) ||
            c->valuedouble < 0.0) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s:%ld: field 'cost_usd.%s': not a number >= 0",
                          name, ln, mn);
            goto out;
        }
        if (lat && cJSON_IsObject(lat)) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(lat, mn);
            if (l && !cJSON_IsNumber(l) && !cJSON_IsNull(l)) {
                rc = serr_set(e, SERR_FORMAT,
                              "%s:%ld: field 'latency_ms.%s': not a number",
                              name, ln, mn);
                goto out;
            }
        }
        n_ok++;
    }
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
    }
    (void)n_ok;
out:
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
