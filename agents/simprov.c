/*
 * simprov.c - simulated providers (simprov.h).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* M_PI */
#include "agents/simprov.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/base.h"

struct simprov {
    cJSON *root;
    const cJSON *models;
    unsigned rng;
    size_t n_tasks;
    size_t n_buckets;
    const char **bucket_names;
    double *bucket_cum; /* cumulative weights, last = 1 */
};

static double
unif(simprov_t *s)
{
    return (double)rand_r(&s->rng) / ((double)RAND_MAX + 1.0);
}

static double
num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void
simprov_destroy(simprov_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    simprov_t *s = *self_p;
    cJSON_Delete(s->root);
    free(s->bucket_names);
    free(s->bucket_cum);
    free(s);
    *self_p = NULL;
}

static int
bad(simprov_t **s, char *err, size_t cap, const char *path, const char *m)
{
    snprintf(err, cap, "%s: %s", path, m);
    simprov_destroy(s);
    return BURSAR_EFORMAT;
}

/* ------------------------------------------------ sim/ scenarios */

/* "at": a task index, or a fraction of the run when strictly in (0, 1). */
static double
at_index(const cJSON *ev, double requests)
{
    double at = num(ev, "at", 0);
    return (at > 0 && at < 1) ? floor(at * requests) : at;
}

/* The models of a sim/ scenario: success and cost as numbers or
 * per-bucket objects, cost_noise; empty lists for the events to fill. */
static void
from_sim_models(const cJSON *in, cJSON *ms)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(in, "models"))
    {
        cJSON *o = cJSON_AddObjectToObject(ms, m->string);
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(m, "success");
        if (cJSON_IsObject(sc)) {
            /* a bucket left out: the model is not offered there */
            cJSON_AddNumberToObject(o, "success", 0);
            cJSON_AddItemToObject(o, "success_by_bucket",
                                  cJSON_Duplicate(sc, 1));
        } else if (sc) {
            cJSON_AddItemToObject(o, "success", cJSON_Duplicate(sc, 1));
        }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "cost_usd");
        if (cJSON_IsObject(c))
            cJSON_AddItemToObject(o, "cost_by_bucket", cJSON_Duplicate(c, 1));
        else if (c)
            cJSON_AddItemToObject(o, "cost_usd", cJSON_Duplicate(c, 1));
        const cJSON *cn = cJSON_GetObjectItemCaseSensitive(m, "cost_noise");
        if (cn)
            cJSON_AddItemToObject(o, "cost_noise", cJSON_Duplicate(cn, 1));
        cJSON_AddArrayToObject(o, "changes");
        cJSON_AddArrayToObject(o, "outages");
        cJSON_AddArrayToObject(o, "cost_changes");
    }
}

/* "up" at task at: ends the model's open outages that began before it. */
static void
from_sim_up(cJSON *o, double at)
{
    cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "outages"))
    {
        if (num(x, "from", 0) <= at && num(x, "to", 0) > at)
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "to"), at);
    }
}

/* One event of a sim/ scenario into the model o it names: quality (a
 * change), down (an outage), up, price (a cost change). Others are
 * skipped. */
static void
from_sim_event(const cJSON *ev, const char *type, cJSON *o, double at)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(ev, "bucket");
    const char *list = NULL;
    cJSON *e = cJSON_CreateObject();
    if (strcmp(type, "quality") == 0) {
        list = "changes";
        cJSON_AddNumberToObject(e, "at", at);
        cJSON_AddNumberToObject(e, "success", num(ev, "success", 0));
        cJSON_AddNumberToObject(e, "ramp", num(ev, "ramp", 0));
    } else if (strcmp(type, "down") == 0) {
        list = "outages";
        cJSON_AddNumberToObject(e, "from", at);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(ev, "for");
        cJSON_AddNumberToObject(
            e, "to", cJSON_IsNumber(f) ? at + f->valuedouble : 1e300);
    } else if (strcmp(type, "price") == 0) {
        list = "cost_changes";
        cJSON_AddNumberToObject(e, "at", at);
        const cJSON *cu = cJSON_GetObjectItemCaseSensitive(ev, "cost_usd");
        if (cJSON_IsNumber(cu))
            cJSON_AddNumberToObject(e, "cost_usd", cu->valuedouble);
        else
            cJSON_AddNumberToObject(e, "factor", num(ev, "factor", 1));
    } else if (strcmp(type, "up") == 0) {
        from_sim_up(o, at);
    }
    if (!list) {
        cJSON_Delete(e);
        return;
    }
    if (strcmp(type, "down") != 0 && cJSON_IsString(b))
        cJSON_AddStringToObject(e, "bucket", b->valuestring);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, list), e);
}

/* Converts a scenario in sim/'s format (sim/scenario.h: "requests",
 * "traffic", models with success/cost numbers or per-bucket objects,
 * timed "events") into this module's format, so that bursar-agent
 * --simulate runs the simulator's scenarios too. Returns a new tree. */
static cJSON *
from_sim(const cJSON *in)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(in, "seed");
    cJSON_AddNumberToObject(out, "seed",
                            cJSON_IsNumber(seed) ? seed->valuedouble : 1);
    double requests = num(in, "requests", 0);
    cJSON *t = cJSON_AddObjectToObject(out, "tasks");
    cJSON_AddNumberToObject(t, "count", requests);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(in, "traffic");
    cJSON_AddItemToObject(t, "buckets",
                          tr ? cJSON_Duplicate(tr, 1) : cJSON_CreateObject());
    cJSON *ms = cJSON_AddObjectToObject(out, "models");
    from_sim_models(in, ms);
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(in, "events"))
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(ev, "model");
        if (!cJSON_IsString(type) || !cJSON_IsString(mn))
            continue;
        cJSON *o = cJSON_GetObjectItemCaseSensitive(ms, mn->valuestring);
        if (o)
            from_sim_event(ev, type->valuestring, o, at_index(ev, requests));
    }
    return out;
}

int
simprov_parse(const char *json, simprov_t **out, char *err, size_t cap)
{
    *out = NULL;
    simprov_t *s = bursar_calloc(1, sizeof(*s));
    s->root = cJSON_Parse(json);
    if (!cJSON_IsObject(s->root))
        return bad(&s, err, cap, "$", "not a JSON object");
    if (cJSON_GetObjectItemCaseSensitive(s->root, "requests") ||
        cJSON_GetObjectItemCaseSensitive(s->root, "traffic")) {
        cJSON *conv = from_sim(s->root);
        cJSON_Delete(s->root);
        s->root = conv;
    }
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
        s->bucket_names = bursar_calloc(n, sizeof(char *));
        s->bucket_cum = bursar_calloc(n, sizeof(double));
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
simprov_load(const char *path, simprov_t **out, char *err, size_t cap)
{
    *out = NULL;
    char *buf = NULL;
    if (bursar_read_file(path, &buf, NULL) != 0) {
        snprintf(err, cap, "$: cannot read %s: %s", path, strerror(errno));
        return BURSAR_EFORMAT;
    }
    int rc = simprov_parse(buf, out, err, cap);
    free(buf);
    return rc;
}

/* The true behaviour of model m for bucket at task idx: success rate,
 * outage, and the fixed cost (< 0: none, tokens x prices). */
static void
truth(const cJSON *m, const char *bucket, size_t idx, double *p_out,
      int *outage, double *cost_out)
{
    double x = (double)idx;
    double p = num(m, "success", 0.5);
    p = num(cJSON_GetObjectItemCaseSensitive(m, "success_by_bucket"), bucket,
            p);
    /* Changes in order; a ramp moves linearly from the rate before the
     * change to the new one over ramp tasks. */
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(m, "changes"))
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(ch, "bucket");
        if (cJSON_IsString(b) && strcmp(b->valuestring, bucket) != 0)
            continue;
        double at = num(ch, "at", 1e300), ramp = num(ch, "ramp", 0);
        double to = num(ch, "success", p);
        if (x < at)
            continue;
        if (ramp > 0 && x < at + ramp)
            p = p + (to - p) * (x - at) / ramp;
        else
            p = to;
    }
    *outage = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m, "outages"))
    {
        if (x >= num(o, "from", 1e300) && x < num(o, "to", 1e300))
            *outage = 1;
    }
    double c = num(m, "cost_usd", -1);
    c = num(cJSON_GetObjectItemCaseSensitive(m, "cost_by_bucket"), bucket, c);
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(m, "cost_changes"))
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(ch, "bucket");
        if (cJSON_IsString(b) && strcmp(b->valuestring, bucket) != 0)
            continue;
        if (x < num(ch, "at", 1e300))
            continue;
        if (cJSON_GetObjectItemCaseSensitive(ch, "cost_usd"))
            c = num(ch, "cost_usd", c);
        else if (c >= 0)
            c *= num(ch, "factor", 1);
    }
    *p_out = p;
    *cost_out = c;
}

void
simprov_call(simprov_t *self, const char *model, const char *bucket, size_t idx,
             simprov_draw_t *d)
{
    memset(d, 0, sizeof(*d));
    d->cost_usd = -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(self->models, model);
    if (!m)
        return;
    d->known = 1;
    double p, cost;
    truth(m, bucket, idx, &p, &d->outage, &cost);
    double lat = num(m, "latency_ms", 500);
    d->latency_ms = lat * (0.75 + 0.5 * unif(self));
    /* Tokens jittered +-25% around the means, so costs vary per call. */
    d->tokens_in = (long)(num(m, "tokens_in", 500) * (0.75 + 0.5 * unif(self)));
    d->tokens_out =
        (long)(num(m, "tokens_out", 300) * (0.75 + 0.5 * unif(self)));
    if (cost >= 0) {
        /* Log-normal noise with mean cost (as sim/ draws it): cost x
         * exp(s z - s^2 / 2), z standard normal (Box-Muller). */
        double s = num(m, "cost_noise", 0);
        if (s > 0) {
            double u1 = unif(self), u2 = unif(self);
            double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
            cost *= exp(s * z - s * s / 2.0);
        }
    }
    d->cost_usd = cost;
    d->success = unif(self) < p;
    if (d->outage) {
        d->success = 0;
        d->tokens_in = d->tokens_out = 0;
        d->cost_usd = 0;
        d->latency_ms = lat * 0.1;
    }
}

int
simprov_expected(const simprov_t *self, const char *model, const char *bucket,
                 size_t idx, double *p_success, double *tokens_in,
                 double *tokens_out, double *cost_usd)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(self->models, model);
    if (!m)
        return BURSAR_EINVAL;
    int outage;
    truth(m, bucket, idx, p_success, &outage, cost_usd);
    if (outage)
        *p_success = 0;
    *tokens_in = num(m, "tokens_in", 500);
    *tokens_out = num(m, "tokens_out", 300);
    return 0;
}

const char *
simprov_model_name(const simprov_t *self, size_t i)
{
    const cJSON *m = self->models->child;
    while (m && i--)
        m = m->next;
    return m ? m->string : NULL;
}

size_t
simprov_task_count(const simprov_t *self)
{
    return self->n_tasks;
}

const char *
simprov_task_bucket(simprov_t *self, size_t i)
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
