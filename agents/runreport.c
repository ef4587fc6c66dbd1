/*
 * runreport.c - the run summary of bursar-agent --report (runreport.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/runreport.h"

#include <stdlib.h>
#include <string.h>

#define REPORT_SLICES 5
#define REPORT_MODELS 32

typedef struct rec {
    char bucket[BURSAR_NAME_MAX];
    char first[BURSAR_NAME_MAX]; /* the first decision's model */
    size_t idx;                  /* task index, when known */
    int valid;
    int first_valid;
    int escalations;
    int provider_errors;
    int local;
    int unanswered; /* no answer, ended by an error */
    double cost;
} rec_t;

struct runreport {
    size_t n, cap;
    rec_t *recs;
    size_t unanswered;
    char first_error[200]; /* the first unanswered task's error */
};

runreport_t *
runreport_new(void)
{
    return bursar_calloc(1, sizeof(runreport_t));
}

void
runreport_destroy(runreport_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->recs);
    free(*self_p);
    *self_p = NULL;
}

static const cJSON *
f(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

void
runreport_add(runreport_t *self, const cJSON *res)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 256;
        self->recs = bursar_realloc(self->recs, self->cap * sizeof(rec_t));
    }
    rec_t *r = &self->recs[self->n++];
    memset(r, 0, sizeof(*r));
    const cJSON *b = f(res, "bucket");
    snprintf(r->bucket, sizeof(r->bucket), "%s",
             cJSON_IsString(b) ? b->valuestring : "");
    /* generated ids "sim-000123" carry the task index */
    const cJSON *id = f(res, "id");
    r->idx = self->n - 1;
    if (cJSON_IsString(id) && strncmp(id->valuestring, "sim-", 4) == 0)
        r->idx = (size_t)atol(id->valuestring + 4) - 1;
    r->valid = cJSON_IsTrue(f(res, "valid"));
    const cJSON *err = f(res, "error");
    if (cJSON_IsString(err) && cJSON_IsNull(f(res, "model"))) {
        r->unanswered = 1;
        if (!self->unanswered++)
            bursar_copy_str(self->first_error, sizeof self->first_error,
                            err->valuestring);
    }
    const cJSON *e = f(res, "escalations");
    r->escalations = cJSON_IsNumber(e) ? e->valueint : 0;
    const cJSON *c = f(res, "cost_usd");
    r->cost = cJSON_IsNumber(c) ? c->valuedouble : 0;
    const cJSON *s;
    int first = 1;
    cJSON_ArrayForEach(s, f(res, "steps"))
    {
        const cJSON *oc = f(s, "outcome");
        const cJSON *m = f(s, "model");
        if (first && cJSON_IsString(m)) {
            snprintf(r->first, sizeof(r->first), "%s", m->valuestring);
            r->first_valid =
                cJSON_IsString(oc) && strcmp(oc->valuestring, "valid") == 0;
            first = 0;
        }
        if (cJSON_IsString(oc) &&
            strcmp(oc->valuestring, "provider_error") == 0)
            r->provider_errors++;
        if (cJSON_IsTrue(f(s, "local")))
            r->local++;
    }
}

/* The bucket's arms from the controller's stats, or every scenario model. */
static size_t
bucket_models(const cJSON *stats, const simprov_t *sim, const char *bucket,
              const char **out, size_t cap)
{
    size_t n = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, f(stats, "buckets"))
    {
        const cJSON *name = f(b, "name");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, bucket) != 0)
            continue;
        const cJSON *a;
        cJSON_ArrayForEach(a, f(b, "arms"))
        {
            const cJSON *m = f(a, "model");
            if (cJSON_IsString(m) && n < cap)
                out[n++] = m->valuestring;
        }
    }
    if (n == 0 && sim)
        for (const char *m; n < cap && (m = simprov_model_name(sim, n));)
            out[n++] = m;
    return n;
}

static double
price_cost(const bursar_model_t *models, size_t n_models, const char *name,
           double tin, double tout)
{
    for (size_t i = 0; i < n_models; i++)
        if (strcmp(models[i].name, name) == 0)
            return proto_price_cost(models[i].price_in_per_mtok,
                                    models[i].price_out_per_mtok, tin, tout);
    return 0;
}

/* The run in figures: totals, and the traffic share of each model's first
 * decisions by slice of the run (task order). */
typedef struct tally {
    const char *names[REPORT_MODELS];
    size_t n_names;
    size_t count[REPORT_MODELS][REPORT_SLICES];
    size_t total[REPORT_SLICES];
    size_t valid, first_valid, esc, perr, local;
    double cost;
} tally_t;

static void
tally_run(const runreport_t *self, tally_t *t)
{
    size_t n = self->n;
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        const rec_t *r = &self->recs[i];
        t->valid += (size_t)r->valid;
        t->first_valid += (size_t)r->first_valid;
        t->esc += (size_t)r->escalations;
        t->perr += (size_t)r->provider_errors;
        t->local += (size_t)r->local;
        t->cost += r->cost;
        if (!r->first[0])
            continue;
        size_t k = 0;
        while (k < t->n_names && strcmp(t->names[k], r->first) != 0)
            k++;
        if (k == t->n_names) {
            if (t->n_names == REPORT_MODELS)
                continue;
            t->names[t->n_names++] = r->first;
        }
        size_t sl = i * REPORT_SLICES / n;
        t->count[k][sl]++;
        t->total[sl]++;
    }
}

static void
print_shares(const tally_t *t, size_t n, FILE *out)
{
    fprintf(out, "\nWhich model the controller chose, share of tasks in "
                 "each fifth of the run:\n");
    fprintf(out, "  %-22s", "model");
    for (int s = 0; s < REPORT_SLICES; s++) {
        char h[48];
        snprintf(h, sizeof(h), "tasks %zu-%zu", s * n / REPORT_SLICES + 1,
                 (s + 1) * n / REPORT_SLICES);
        fprintf(out, " %17s", h);
    }
    fputc('\n', out);
    for (size_t k = 0; k < t->n_names; k++) {
        fprintf(out, "  %-22s", t->names[k]);
        for (int s = 0; s < REPORT_SLICES; s++)
            fprintf(out, " %16.0f%%",
                    t->total[s]
                        ? 100.0 * (double)t->count[k][s] / (double)t->total[s]
                        : 0.0);
        fputc('\n', out);
    }
}

static void
print_totals(const tally_t *t, size_t n, FILE *out)
{
    fprintf(out,
            "\nQuality: %.1f%% of tasks ended with a valid answer "
            "(%.1f%% on the first try; %zu escalations after a failed "
            "validation).\n",
            100.0 * (double)t->valid / (double)n,
            100.0 * (double)t->first_valid / (double)n, t->esc);
    fprintf(out, "Cost:    $%.4f in all, $%.6f per task.\n", t->cost,
            t->cost / (double)n);
    if (t->perr || t->local)
        fprintf(out,
                "Faults:  %zu provider errors (each followed by a "
                "fallback), %zu local decisions while the controller "
                "was away.\n",
                t->perr, t->local);
}

/* The strongest model of bucket: the highest true success rate over the
 * run (the mean of four points), or NULL. */
static const char *
strongest(const cJSON *stats, const simprov_t *sim, const char *bucket,
          size_t n)
{
    const char *ms[REPORT_MODELS];
    size_t nm = bucket_models(stats, sim, bucket, ms, REPORT_MODELS);
    const char *best = NULL;
    double best_mean = -1;
    for (size_t k = 0; k < nm; k++) {
        double mean = 0, p, ti, to, fc;
        for (size_t s = 0; s < 4; s++)
            if (simprov_expected(sim, ms[k], bucket, s * n / 4, &p, &ti, &to,
                                 &fc) == 0)
                mean += p / 4;
        if (mean > best_mean) {
            best_mean = mean;
            best = ms[k];
        }
    }
    return best;
}

/* In simulation: always the strongest model of each bucket, in
 * expectation, beside what routing did. */
static void
print_compare(const runreport_t *self, const tally_t *t, FILE *out,
              const cJSON *stats, const simprov_t *sim,
              const bursar_model_t *models, size_t n_models)
{
    size_t n = self->n;
    double q = 0, c = 0;
    const char *strongest_any = NULL;
    for (size_t i = 0; i < n; i++) {
        const rec_t *r = &self->recs[i];
        const char *best = strongest(stats, sim, r->bucket, n);
        if (!best)
            continue;
        strongest_any = best;
        double p, ti, to, fc;
        simprov_expected(sim, best, r->bucket, r->idx, &p, &ti, &to, &fc);
        q += p;
        c += fc >= 0 ? fc : price_cost(models, n_models, best, ti, to);
    }
    if (strongest_any)
        fprintf(out,
                "Compare: always the strongest model of each bucket "
                "(e.g. %s), expected from the scenario's\n"
                "         true rates: %.1f%% valid on the one try, for "
                "$%.4f. Routing: %.1f%% on the first try,\n"
                "         %.1f%% after escalations, for $%.4f (%.0f%% "
                "of that cost).\n",
                strongest_any, 100.0 * q / (double)n, c,
                100.0 * (double)t->first_valid / (double)n,
                100.0 * (double)t->valid / (double)n, t->cost,
                c > 0 ? 100.0 * t->cost / c : 0.0);
}

/* The budget from the controller's stats reply, if it has one. */
static void
print_budget(const cJSON *stats, FILE *out)
{
    const cJSON *bud = f(stats, "budget");
    const cJSON *lim = f(bud, "limit_usd");
    const cJSON *sp = f(bud, "spent_usd");
    const cJSON *rs = f(bud, "reserved_usd");
    if (cJSON_IsNumber(lim) && cJSON_IsNumber(sp))
        fprintf(out,
                "Budget:  $%.4f spent of the $%.2f limit for this "
                "window (%.2f%%), $%.4f reserved for decisions still "
                "open.\n",
                sp->valuedouble, lim->valuedouble,
                lim->valuedouble > 0
                    ? 100.0 * sp->valuedouble / lim->valuedouble
                    : 0.0,
                cJSON_IsNumber(rs) ? rs->valuedouble : 0.0);
}

void
runreport_print(const runreport_t *self, FILE *out, const cJSON *stats,
                const simprov_t *sim, const bursar_model_t *models,
                size_t n_models)
{
    if (self->n == 0) {
        fprintf(out, "no tasks\n");
        return;
    }
    if (self->unanswered == self->n) {
        fprintf(out,
                "\nFailed:  no task got an answer: all %zu ended with an "
                "error (the first: %s).\n",
                self->n, self->first_error);
        print_budget(stats, out);
        return;
    }
    tally_t t;
    tally_run(self, &t);
    print_shares(&t, self->n, out);
    print_totals(&t, self->n, out);
    if (self->unanswered)
        fprintf(out,
                "Failed:  %zu of %zu tasks got no answer: they ended with an "
                "error (the first: %s); the figures above count them as not "
                "valid, at no cost, and no comparison is made.\n",
                self->unanswered, self->n, self->first_error);
    else if (sim)
        print_compare(self, &t, out, stats, sim, models, n_models);
    print_budget(stats, out);
}
