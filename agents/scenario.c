/*
 * scenario.c - simulated providers (scenario.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "scenario.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scenario {
    cJSON *root;
    const cJSON *models;
    unsigned rng;
    size_t n_tasks;
    size_t n_buckets;
    const char **bucket_names;
    double *bucket_cum; /* cumulative weights, last = 1 */
};

static double
unif(scenario_t *s)
{
    return (double)rand_r(&s->rng) / ((double)RAND_MAX + 1.0);
}

void
scenario_destroy(scenario_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    scenario_t *s = *self_p;
    cJSON_Delete(s->root);
    free(s->bucket_names);
    free(s->bucket_cum);
    free(s);
    *self_p = NULL;
}

static int
bad(scenario_t **s, char *err, size_t cap, const char *path, const char *m)
{
    snprintf(err, cap, "%s: %s", path, m);
    scenario_destroy(s);
    return -1;
}

int
scenario_parse(const char *json, scenario_t **out, char *err, size_t cap)
{
    *out = NULL;
    scenario_t *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->root = cJSON_Parse(json);
    if (!cJSON_IsObject(s->root))
        return bad(&s, err, cap, "$", "not a JSON object");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(s->root, "seed");
    s->rng = cJSON_IsNumber(seed) ? (unsigned)seed->valuedouble : 1u;
    s->models = cJSON_GetObjectItemCaseSensitive(s->root, "models");
    if (!cJSON_IsObject(s->models) || !s->models->child)
        return bad(&s, err, cap, "$.models",
                   "an object of models is "
                   "required");
    const cJSON *m;
    cJSON_ArrayForEach(m, s->models)
    {
        char path[128];
        snprintf(path, sizeof(path), "$.models.%.80s", m->string);
        if (!cJSON_IsObject(m))
            return bad(&s, err, cap, path, "must be an object");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "success");
        if (p &&
            (!cJSON_IsNumber(p) || p->valuedouble < 0 || p->valuedouble > 1))
            return bad(&s, err, cap, path, "success must be in [0, 1]");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(m, "outages");
        if (o && !cJSON_IsArray(o))
            return bad(&s, err, cap, path, "outages must be an array");
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->root, "tasks");
    if (t) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "count");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(t, "buckets");
        if (!cJSON_IsNumber(c) || c->valuedouble < 0)
            return bad(&s, err, cap, "$.tasks.count",
                       "a number >= 0 is "
                       "required");
        if (!cJSON_IsObject(b) || !b->child)
            return bad(&s, err, cap, "$.tasks.buckets",
                       "an object of bucket weights is required");
        s->n_tasks = (size_t)c->valuedouble;
        size_t n = (size_t)cJSON_GetArraySize(b);
        s->bucket_names = calloc(n, sizeof(char *));
        s->bucket_cum = calloc(n, sizeof(double));
        if (!s->bucket_names || !s->bucket_cum)
            abort();
        double sum = 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, b)
        {
            if (!cJSON_IsNumber(w) || w->valuedouble < 0)
                return bad(&s, err, cap, "$.tasks.buckets",
                           "weights must be numbers >= 0");
            sum += w->valuedouble;
            s->bucket_names[s->n_buckets] = w->string;
            s->bucket_cum[s->n_buckets++] = sum;
        }
        if (sum <= 0)
            return bad(&s, err, cap, "$.tasks.buckets",
                       "weights must not all be 0");
        for (size_t i = 0; i < n; i++)
            s->bucket_cum[i] /= sum;
    }
    *out = s;
    return 0;
}

int
scenario_load(const char *path, scenario_t **out, char *err, size_t cap)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "$: cannot read %s", path);
        return -1;
    }
    size_t n = 0, c = 4096;
    char *buf = malloc(c);
    size_t r;
    while (buf && (r = fread(buf + n, 1, c - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= c)
            buf = realloc(buf, c *= 2);
    }
    fclose(f);
    if (!buf)
        abort();
    buf[n] = '\0';
    int rc = scenario_parse(buf, out, err, cap);
    free(buf);
    return rc;
}

static double
num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void
scenario_call(scenario_t *self, const char *model, const char *bucket,
              size_t idx, scenario_draw_t *d)
{
    memset(d, 0, sizeof(*d));
    d->cost_usd = -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(self->models, model);
    if (!m)
        return;
    d->known = 1;
    double p = num(m, "success", 0.5);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(m, "success_by_bucket");
    p = num(by, bucket, p);
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(m, "changes"))
    {
        if ((double)idx >= num(ch, "at", 1e300))
            p = num(ch, "success", p);
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m, "outages"))
    {
        if ((double)idx >= num(o, "from", 1e300) &&
            (double)idx < num(o, "to", -1))
            d->outage = 1;
    }
    double lat = num(m, "latency_ms", 500);
    d->latency_ms = lat * (0.75 + 0.5 * unif(self));
    /* Tokens jittered +-25% around the means, so costs vary per call. */
    d->tokens_in = (long)(num(m, "tokens_in", 500) * (0.75 + 0.5 * unif(self)));
    d->tokens_out =
        (long)(num(m, "tokens_out", 300) * (0.75 + 0.5 * unif(self)));
    d->cost_usd = num(m, "cost_usd", -1);
    d->success = unif(self) < p;
    if (d->outage) {
        d->success = 0;
        d->tokens_in = d->tokens_out = 0;
        d->cost_usd = 0;
        d->latency_ms = lat * 0.1;
    }
}

int
scenario_expected(const scenario_t *self, const char *model, const char *bucket,
                  size_t idx, double *p_success, double *tokens_in,
                  double *tokens_out, double *cost_usd)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(self->models, model);
    if (!m)
        return -1;
    double p = num(m, "success", 0.5);
    p = num(cJSON_GetObjectItemCaseSensitive(m, "success_by_bucket"), bucket,
            p);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "changes"))
    {
        if ((double)idx >= num(it, "at", 1e300))
            p = num(it, "success", p);
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "outages"))
    {
        if ((double)idx >= num(it, "from", 1e300) &&
            (double)idx < num(it, "to", -1))
            p = 0;
    }
    *p_success = p;
    *tokens_in = num(m, "tokens_in", 500);
    *tokens_out = num(m, "tokens_out", 300);
    *cost_usd = num(m, "cost_usd", -1);
    return 0;
}

const char *
scenario_model_name(const scenario_t *self, size_t i)
{
    const cJSON *m = self->models->child;
    while (m && i--)
        m = m->next;
    return m ? m->string : NULL;
}

size_t
scenario_task_count(const scenario_t *self)
{
    return self->n_tasks;
}

const char *
scenario_task_bucket(scenario_t *self, size_t i)
{
    (void)i;
    if (self->n_buckets == 0)
        return "default";
    double u = unif(self);
    for (size_t k = 0; k < self->n_buckets; k++)
        if (u < self->bucket_cum[k])
            return self->bucket_names[k];
    return self->bucket_names[self->n_buckets - 1];
}
