/*
 * scenario.c - synthetic scenarios (see scenario.h).
 *
 * Validation first, generation second: the whole file is checked and
 * turned into plain arrays before a single row is drawn, so a bad field
 * never leaves a half-built dataset behind.
 */
#include "sim/scenario.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/csv.h"
#include "policies/base.h"

enum { EV_QUALITY, EV_DOWN, EV_UP, EV_PRICE, EV_LATENCY };

/* A cell costs about 50 bytes while the dataset is built (32 sparse + 17
 * dense): 5e7 cells, 2.5 GB, is the most we try. */
#define SCEN_MAX_CELLS 5e7

/* The largest request index ("at", "ramp", "for"; "requests" is at most
 * this too) and seed (gsl's mt19937 reads 32 bits of it) a scenario may
 * give. Larger numbers are refused before they are converted: a double
 * beyond the integer type's range is undefined behaviour in C. */
#define SCEN_MAX_INDEX 1e9
#define SCEN_MAX_SEED  4294967295.0

typedef struct scen_event {
    size_t at;
    int type;
    int model;
    int bucket;    /* -1: all */
    double value;  /* success, cost, latency, or factor */
    int is_factor; /* price or latency given as a factor */
    size_t span;   /* ramp or down duration (0: none / forever) */
} scen_event_t;

typedef struct scen {
    size_t nb, nm, requests;
    unsigned long seed;
    double *mix;            /* nb, cumulative */
    double *p_from;         /* nm * nb, success ramp start */
    double *p_to;           /* nm * nb, success ramp end */
    double *t0, *t1;        /* nm * nb, ramp times */
    double *cost;           /* nm * nb */
    double *noise;          /* nm */
    unsigned char *offered; /* nm * nb */
    double *down_until;     /* nm, request index; -1: up */
    double *lat;            /* nm * nb, mean latency ms (0: none) */
    double *lat_noise;      /* nm, sd of log latency */
    double *slo;            /* nb, latency objective ms (0: none) */
    int has_lat;            /* some model has a latency */
    scen_event_t *ev;
    size_t n_ev;
} scen_t;

static void
scen_free(scen_t *s)
{
    free(s->mix);
    free(s->p_from);
    free(s->p_to);
    free(s->t0);
    free(s->t1);
    free(s->cost);
    free(s->noise);
    free(s->offered);
    free(s->down_until);
    free(s->lat);
    free(s->lat_noise);
    free(s->slo);
    free(s->ev);
}

static int
scen_prob(const cJSON *v, double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble < 0.0 || v->valuedouble > 1.0)
        return -1;
    *out = v->valuedouble;
    return 0;
}

static int
scen_nonneg(const cJSON *v, double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0.0)
        return -1;
    *out = v->valuedouble;
    return 0;
}

/* Line of a pointer into buf (1-based). */
static long
scen_line_of(const char *buf, const char *at)
{
    long ln = 1;
    for (const char *p = buf; p < at; p++)
        if (*p == '\n')
            ln++;
    return ln;
}

static int
scen_cmp_event(const void *a, const void *b)
{
    const scen_event_t *x = a, *y = b;
    return (x->at > y->at) - (x->at < y->at);
}

/* A number >= 0, or per bucket {"bucket": x}: the value for bucket bn
 * into *out. Returns 1 when set, 0 when the bucket is left out, -1 when
 * the value is not a number >= 0. */
static int
scen_per_bucket(const cJSON *v, const char *bn, double *out)
{
    const cJSON *x =
        cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, bn) : v;
    if (!x)
        return 0;
    return scen_nonneg(x, out) < 0 ? -1 : 1;
}

/* requests, seed, traffic. */
static int
scen_parse_head(dataset_t *ds, scen_t *s, const cJSON *root, const char *name,
                serr_t *e)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "requests");
    if (!cJSON_IsNumber(req) || req->valuedouble < 1 ||
        req->valuedouble > 1e9 || req->valuedouble != floor(req->valuedouble))
        return serr_set(e, SERR_FORMAT, "%s: field 'requests': %s", name,
                        req ? "not an integer in [1, 1e9]" : "missing");
    s->requests = (size_t)req->valuedouble;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    s->seed = 1;
    if (seed) {
        if (!cJSON_IsNumber(seed) || !(seed->valuedouble >= 0) ||
            seed->valuedouble > SCEN_MAX_SEED)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'seed': not an integer in [0, %.0f]",
                            name, SCEN_MAX_SEED);
        s->seed = (unsigned long)seed->valuedouble;
    }
    const cJSON *traffic = cJSON_GetObjectItemCaseSensitive(root, "traffic");
    if (!cJSON_IsObject(traffic) || !traffic->child)
        return serr_set(e, SERR_FORMAT, "%s: field 'traffic': %s", name,
                        traffic ? "not a non-empty object" : "missing");
    const cJSON *it;
    double wsum = 0.0;
    cJSON_ArrayForEach(it, traffic)
    {
        double w;
        if (scen_nonneg(it, &w) < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'traffic.%s': not a weight >= 0", name,
                            it->string);
        dataset_bucket_id(ds, it->string);
        wsum += w;
    }
    if (!(wsum > 0.0))
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'traffic': the weights sum to 0", name);
    s->nb = ds->n_buckets;
    s->mix = bursar_calloc(s->nb, sizeof(double));
    double acc = 0.0;
    cJSON_ArrayForEach(it, traffic)
    {
        acc += it->valuedouble / wsum;
        s->mix[dataset_find_bucket(ds, it->string)] = acc;
    }
    s->mix[s->nb - 1] = 1.0;
    return 0;
}

/* "latency_slo_ms": {"bucket": ms}: the objective per bucket. */
static int
scen_parse_slo(dataset_t *ds, scen_t *s, const cJSON *root, const char *name,
               serr_t *e)
{
    s->slo = bursar_calloc(s->nb, sizeof(double));
    const cJSON *slo = cJSON_GetObjectItemCaseSensitive(root, "latency_slo_ms");
    if (!slo)
        return 0;
    if (!cJSON_IsObject(slo))
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'latency_slo_ms': not an object of "
                        "buckets",
                        name);
    const cJSON *it;
    cJSON_ArrayForEach(it, slo)
    {
        int b = dataset_find_bucket(ds, it->string);
        if (b < 0 || scen_nonneg(it, &s->slo[b]) < 0)
            return serr_set(e, SERR_FORMAT, "%s: field 'latency_slo_ms.%s': %s",
                            name, it->string,
                            b < 0 ? "unknown bucket (not in 'traffic')"
                                  : "not a number of ms >= 0");
    }
    return 0;
}

/* One model's success, cost and latency per bucket. */
static int
scen_parse_cells(const dataset_t *ds, scen_t *s, int m, const cJSON *it,
                 const char *name, serr_t *e)
{
    const char *mn = it->string;
    const cJSON *succ = cJSON_GetObjectItemCaseSensitive(it, "success");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(it, "cost_usd");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(it, "latency_ms");
    const char *dot = cJSON_IsObject(succ) ? "." : "";
    for (size_t b = 0; b < s->nb; b++) {
        size_t k = (size_t)m * s->nb + b;
        const char *bn = ds->bucket[b];
        const cJSON *p = cJSON_IsObject(succ)
                             ? cJSON_GetObjectItemCaseSensitive(succ, bn)
                             : succ;
        if (!p)
            continue; /* not offered in this bucket */
        if (scen_prob(p, &s->p_from[k]) < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'models.%s.success%s%s': not a "
                            "number in [0, 1]",
                            name, mn, dot, *dot ? bn : "");
        s->p_to[k] = s->p_from[k];
        int rc = scen_per_bucket(cost, bn, &s->cost[k]);
        if (rc <= 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'models.%s.cost_usd%s%s': %s", name, mn,
                            cJSON_IsObject(cost) ? "." : "",
                            cJSON_IsObject(cost) ? bn : "",
                            rc ? "not a number >= 0" : "missing");
        if (lat && scen_per_bucket(lat, bn, &s->lat[k]) < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'models.%s.latency_ms%s%s': not a "
                            "number of ms >= 0",
                            name, mn, cJSON_IsObject(lat) ? "." : "",
                            cJSON_IsObject(lat) ? bn : "");
        s->has_lat |= s->lat[k] > 0;
        s->offered[k] = 1;
    }
    return 0;
}

static int
scen_parse_model(dataset_t *ds, scen_t *s, const cJSON *it, const char *name,
                 serr_t *e)
{
    int m = dataset_find_model(ds, it->string);
    const char *mn = it->string;
    s->down_until[m] = -1.0;
    if (!cJSON_IsObject(it))
        return serr_set(e, SERR_FORMAT, "%s: field 'models.%s': not an object",
                        name, mn);
    static const char *const need[] = {"success", "cost_usd"};
    for (size_t k = 0; k < 2; k++)
        if (!cJSON_GetObjectItemCaseSensitive(it, need[k]))
            return serr_set(e, SERR_FORMAT, "%s: field 'models.%s.%s': missing",
                            name, mn, need[k]);
    static const char *const noises[] = {"cost_noise", "latency_noise"};
    double *dst[] = {&s->noise[m], &s->lat_noise[m]};
    for (size_t k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, noises[k]);
        if (v && scen_nonneg(v, dst[k]) < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'models.%s.%s': not a number >= 0", name,
                            mn, noises[k]);
    }
    int rc = scen_parse_cells(ds, s, m, it, name, e);
    if (rc)
        return rc;
    const cJSON *succ = cJSON_GetObjectItemCaseSensitive(it, "success");
    const cJSON *x;
    if (cJSON_IsObject(succ))
        cJSON_ArrayForEach(x, succ)
        {
            if (dataset_find_bucket(ds, x->string) < 0)
                return serr_set(e, SERR_FORMAT,
                                "%s: field 'models.%s.success.%s': "
                                "unknown bucket (not in 'traffic')",
                                name, mn, x->string);
        }
    return 0;
}

static int
scen_parse_models(dataset_t *ds, scen_t *s, const cJSON *root, const char *name,
                  serr_t *e)
{
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsObject(models) || !models->child)
        return serr_set(e, SERR_FORMAT, "%s: field 'models': %s", name,
                        models ? "not a non-empty object" : "missing");
    const cJSON *it;
    cJSON_ArrayForEach(it, models)
    {
        dataset_model_id(ds, it->string);
    }
    s->nm = ds->n_models;
    if ((double)s->requests * (double)s->nm > SCEN_MAX_CELLS)
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'requests': %zu requests x %zu models is "
                        "more than %.0e outcomes to hold in memory",
                        name, s->requests, s->nm, SCEN_MAX_CELLS);
    size_t nmb = s->nm * s->nb;
    s->p_from = bursar_calloc(nmb, sizeof(double));
    s->p_to = bursar_calloc(nmb, sizeof(double));
    s->t0 = bursar_calloc(nmb, sizeof(double));
    s->t1 = bursar_calloc(nmb, sizeof(double));
    s->cost = bursar_calloc(nmb, sizeof(double));
    s->lat = bursar_calloc(nmb, sizeof(double));
    s->offered = bursar_calloc(nmb, 1);
    s->noise = bursar_calloc(s->nm, sizeof(double));
    s->lat_noise = bursar_calloc(s->nm, sizeof(double));
    s->down_until = bursar_calloc(s->nm, sizeof(double));
    cJSON_ArrayForEach(it, models)
    {
        int rc = scen_parse_model(ds, s, it, name, e);
        if (rc)
            return rc;
    }
    return 0;
}

static int
scen_event_type(const cJSON *ty, int *out)
{
    static const char *const names[] = {"quality", "down", "up", "price",
                                        "latency"};
    for (int k = 0; k < 5; k++)
        if (strcmp(ty->valuestring, names[k]) == 0) {
            *out = k; /* EV_QUALITY .. EV_LATENCY, in this order */
            return 0;
        }
    return -1;
}

/* The value of a quality, price or latency event. */
static int
scen_event_value(scen_event_t *ev, const cJSON *it, size_t i, const char *name,
                 serr_t *e)
{
    if (ev->type == EV_QUALITY) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "success");
        if (scen_prob(p, &ev->value) < 0)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'events[%zu].success': %s", name, i,
                            p ? "not a number in [0, 1]" : "missing");
        return 0;
    }
    if (ev->type != EV_PRICE && ev->type != EV_LATENCY)
        return 0;
    const char *key = ev->type == EV_PRICE ? "cost_usd" : "latency_ms";
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, key);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "factor");
    if (c ? scen_nonneg(c, &ev->value) < 0
          : !f || scen_nonneg(f, &ev->value) < 0)
        return serr_set(e, SERR_FORMAT, "%s: field 'events[%zu].%s': %s%s%s",
                        name, i, c ? key : "factor",
                        c || f ? "not a number >= 0" : "missing (",
                        c || f ? "" : key, c || f ? "" : " or factor)");
    ev->is_factor = c == NULL;
    return 0;
}

static int
scen_parse_event(dataset_t *ds, scen_t *s, const cJSON *it, size_t i,
                 const char *name, serr_t *e)
{
    scen_event_t *ev = &s->ev[i];
    if (!cJSON_IsObject(it))
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'events[%zu]': not an object", name, i);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(it, "at");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(it, "model");
    const cJSON *bu = cJSON_GetObjectItemCaseSensitive(it, "bucket");
    if (!cJSON_IsNumber(at) || !(at->valuedouble >= 0) ||
        at->valuedouble > SCEN_MAX_INDEX ||
        (at->valuedouble >= 1 && at->valuedouble != floor(at->valuedouble)))
        return serr_set(e, SERR_FORMAT, "%s: field 'events[%zu].at': %s", name,
                        i,
                        at ? "not a request index in [0, 1e9] or a fraction "
                             "in (0, 1)"
                           : "missing");
    ev->at = at->valuedouble < 1
                 ? (size_t)floor(at->valuedouble * (double)s->requests)
                 : (size_t)at->valuedouble;
    if (!cJSON_IsString(ty))
        return serr_set(e, SERR_FORMAT, "%s: field 'events[%zu].type': %s",
                        name, i, ty ? "not a string" : "missing");
    if (scen_event_type(ty, &ev->type) < 0)
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'events[%zu].type': '%s' is not one "
                        "of quality, down, up, price, latency",
                        name, i, ty->valuestring);
    if (!cJSON_IsString(mo) ||
        (ev->model = dataset_find_model(ds, mo->valuestring)) < 0)
        return serr_set(e, SERR_FORMAT, "%s: field 'events[%zu].model': %s",
                        name, i, mo ? "not a model of 'models'" : "missing");
    ev->bucket = -1;
    if (bu && (!cJSON_IsString(bu) ||
               (ev->bucket = dataset_find_bucket(ds, bu->valuestring)) < 0))
        return serr_set(e, SERR_FORMAT,
                        "%s: field 'events[%zu].bucket': not a bucket of "
                        "'traffic'",
                        name, i);
    const cJSON *span = cJSON_GetObjectItemCaseSensitive(
        it, ev->type == EV_QUALITY ? "ramp" : "for");
    if (span) {
        double v;
        if (scen_nonneg(span, &v) < 0 || v > SCEN_MAX_INDEX)
            return serr_set(e, SERR_FORMAT,
                            "%s: field 'events[%zu].%s': not a number of "
                            "requests in [0, 1e9]",
                            name, i, span->string);
        ev->span = (size_t)v;
    }
    return scen_event_value(ev, it, i, name, e);
}

static int
scen_parse(dataset_t *ds, scen_t *s, const cJSON *root, const char *name,
           serr_t *e)
{
    if (!cJSON_IsObject(root))
        return serr_set(e, SERR_FORMAT, "%s: not a JSON object", name);
    int rc = scen_parse_head(ds, s, root, name, e);
    if (!rc)
        rc = scen_parse_slo(ds, s, root, name, e);
    if (!rc)
        rc = scen_parse_models(ds, s, root, name, e);
    if (rc)
        return rc;
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
    if (events && !cJSON_IsArray(events))
        return serr_set(e, SERR_FORMAT, "%s: field 'events': not an array",
                        name);
    size_t n_ev = events ? (size_t)cJSON_GetArraySize(events) : 0;
    s->ev = bursar_calloc(n_ev, sizeof(scen_event_t));
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, events)
    {
        if ((rc = scen_parse_event(ds, s, it, i, name, e)))
            return rc;
        i++;
    }
    s->n_ev = n_ev;
    qsort(s->ev, s->n_ev, sizeof *s->ev, scen_cmp_event);
    return 0;
}

static double
scen_p(const scen_t *s, size_t k, double t)
{
    if (t >= s->t1[k] || s->t1[k] <= s->t0[k])
        return s->p_to[k];
    return s->p_from[k] +
           (s->p_to[k] - s->p_from[k]) * (t - s->t0[k]) / (s->t1[k] - s->t0[k]);
}

static void
scen_apply(scen_t *s, const scen_event_t *ev)
{
    double t = (double)ev->at;
    for (size_t b = 0; b < s->nb; b++) {
        if (ev->bucket >= 0 && (size_t)ev->bucket != b)
            continue;
        size_t k = (size_t)ev->model * s->nb + b;
        if (ev->type == EV_QUALITY) {
            s->p_from[k] = scen_p(s, k, t);
            s->p_to[k] = ev->value;
            s->t0[k] = t;
            s->t1[k] = t + (double)ev->span;
        } else if (ev->type == EV_PRICE) {
            s->cost[k] = ev->is_factor ? s->cost[k] * ev->value : ev->value;
        } else if (ev->type == EV_LATENCY) {
            s->lat[k] = ev->is_factor ? s->lat[k] * ev->value : ev->value;
        }
    }
    if (ev->type == EV_DOWN)
        s->down_until[ev->model] = ev->span ? t + (double)ev->span : INFINITY;
    else if (ev->type == EV_UP)
        s->down_until[ev->model] = -1.0;
}

static void
scen_generate(dataset_t *ds, scen_t *s)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        abort(); /* out of memory, as bursar_malloc */
    gsl_rng_set(rng, s->seed);
    size_t next = 0;
    for (size_t i = 0; i < s->requests; i++) {
        double t = (double)i;
        while (next < s->n_ev && s->ev[next].at <= i)
            scen_apply(s, &s->ev[next++]);
        double u = gsl_rng_uniform(rng);
        size_t b = 0;
        while (b + 1 < s->nb && u >= s->mix[b])
            b++;
        dataset_add_row(ds, (int)b);
        for (size_t m = 0; m < s->nm; m++) {
            size_t k = m * s->nb + b;
            /* draw everything even for cells not used, so that the stream
             * of one model does not depend on another's state */
            double uq = gsl_rng_uniform(rng);
            double z = gsl_ran_ugaussian(rng);
            /* a latency draw only where latencies are given, so that
             * scenarios without them keep their streams */
            double zl = s->has_lat ? gsl_ran_ugaussian(rng) : 0.0;
            if (!s->offered[k])
                continue;
            if (s->down_until[m] >= 0.0 && t < s->down_until[m]) {
                dataset_set(ds, (int)m, DATASET_ERROR, 0.0, 0.0);
                continue;
            }
            double sd = s->noise[m];
            double c = s->cost[k] * exp(sd * z - 0.5 * sd * sd);
            dataset_set(ds, (int)m, DATASET_OK, uq < scen_p(s, k, t) ? 1 : 0,
                        c);
            if (s->lat[k] > 0) {
                double sl = s->lat_noise[m];
                dataset_set_latency(ds,
                                    s->lat[k] * exp(sl * zl - 0.5 * sl * sl));
            }
        }
    }
    gsl_rng_free(rng);
}

int
scenario_load_buffer(dataset_t *ds, const char *buf, size_t len,
                     const char *name, unsigned long seed_override, serr_t *e)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at || at < buf || at > buf + len)
            at = buf;
        return serr_set(e, SERR_PARSE, "%s:%ld: not valid JSON", name,
                        scen_line_of(buf, at));
    }
    const char *tail = end ? end : buf + len;
    while (tail < buf + len &&
           (*tail == ' ' || *tail == '\t' || *tail == '\r' || *tail == '\n'))
        tail++;
    if (tail < buf + len && *tail) {
        cJSON_Delete(root);
        return serr_set(e, SERR_PARSE,
                        "%s:%ld: unexpected content after the scenario "
                        "object (one JSON object per file)",
                        name, scen_line_of(buf, tail));
    }
    scen_t s;
    memset(&s, 0, sizeof s);
    int rc = scen_parse(ds, &s, root, name, e);
    if (rc == 0) {
        if (seed_override)
            s.seed = seed_override;
        scen_generate(ds, &s);
        ds->ordered = 1;
        free(ds->bucket_slo_ms);
        ds->bucket_slo_ms = s.slo; /* the dataset owns it now */
        ds->n_bucket_slo = s.nb;
        s.slo = NULL;
    }
    scen_free(&s);
    cJSON_Delete(root);
    return rc;
}

int
scenario_load(dataset_t *ds, const char *path, unsigned long seed_override,
              serr_t *e)
{
    char *buf;
    size_t len;
    int rc = csv_slurp(path, &buf, &len, e);
    if (rc)
        return rc;
    rc = scenario_load_buffer(ds, buf, len, path, seed_override, e);
    free(buf);
    return rc;
}
