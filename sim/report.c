/*
 * report.c - tables and JSON (see report.h).
 */
#include "sim/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "policies/base.h"

/* ------------------------------------------------------ aggregation */

static void
report_mean_sd(const double *x, size_t n, double *mean, double *sd)
{
    double m = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++)
        m += x[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++)
        s += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s / (double)(n - 1)) : 0.0;
}

/* The cascade figures of k runs, averaged into p. */
static void
report_add_cascade(report_t *rep, report_policy_t *p,
                   replay_result_t *const *runs, size_t k)
{
    size_t nm = rep->ds->n_models, nb = rep->ds->n_buckets;
    unsigned ns = runs[0]->steps_max;
    p->steps_max = ns;
    p->b_q = bursar_calloc(nb, sizeof(double));
    p->b_c = bursar_calloc(nb, sizeof(double));
    p->b_first_pass = bursar_calloc(nb, sizeof(double));
    p->b_escalated = bursar_calloc(nb, sizeof(double));
    p->b_steps = bursar_calloc(nb, sizeof(double));
    p->step_share = bursar_calloc((size_t)ns * (nb + 1) * nm, sizeof(double));
    for (size_t i = 0; i < k; i++) {
        const replay_result_t *r = runs[i];
        double n = (double)r->requests * (double)k;
        p->first_pass += (double)r->first_pass / n;
        p->escalated += (double)r->escalated / n;
        p->steps += (double)r->steps / n;
        for (size_t b = 0; b < nb; b++) {
            if (!r->b_requests[b])
                continue;
            double nr = (double)r->b_requests[b] * (double)k;
            p->b_q[b] += r->b_quality[b] / nr;
            p->b_c[b] += r->b_cost[b] / nr;
            p->b_first_pass[b] += (double)r->b_first_pass[b] / nr;
            p->b_escalated[b] += (double)r->b_escalated[b] / nr;
            p->b_steps[b] += (double)r->b_steps[b] / nr;
            for (size_t s = 0; s < ns; s++)
                for (size_t m = 0; m < nm; m++) {
                    double a = (double)r->step_share[(s * nb + b) * nm + m];
                    p->step_share[(s * (nb + 1) + b) * nm + m] += a / nr;
                    p->step_share[(s * (nb + 1) + nb) * nm + m] += a / n;
                }
        }
    }
}

report_policy_t *
report_add(report_t *rep, const char *name, policy_kind_t kind, int paces,
           replay_result_t *const *runs, size_t k)
{
    rep->pol = bursar_realloc(rep->pol, (rep->n_pol + 1) * sizeof *rep->pol);
    report_policy_t *p = &rep->pol[rep->n_pol++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->paces = paces;
    p->runs = k;
    size_t nm = rep->ds->n_models, nb = rep->ds->n_buckets;
    double *q = bursar_malloc(k * sizeof(double));
    double *c = bursar_malloc(k * sizeof(double));
    p->share = bursar_calloc(nm, sizeof(double));
    p->bucket_share = bursar_calloc(nb * nm, sizeof(double));
    p->n_curve = runs[0]->n_curve;
    p->curve_x = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->curve_q = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->curve_c = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->curve_mu = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->curve_qw = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->curve_cw = bursar_calloc(p->n_curve + 1, sizeof(double));
    p->requests = runs[0]->requests;
    for (size_t i = 0; i < k; i++) {
        const replay_result_t *r = runs[i];
        q[i] = r->quality;
        c[i] = r->cost_per_request;
        if (r->spend_ratio > p->spend_max)
            p->spend_max = r->spend_ratio;
        p->mu_mean += r->mu_final / (double)k;
        p->unaffordable += (double)r->unaffordable / (double)k;
        p->explored += (double)r->explored / (double)k;
        p->provider_errors += (double)r->provider_errors / (double)k;
        p->failed += (double)r->failed / (double)k;
        for (size_t m = 0; m < nm; m++)
            p->share[m] +=
                (double)r->share[m] / (double)r->requests / (double)k;
        for (size_t b = 0; b < nb; b++) {
            size_t nbr = 0;
            for (size_t m = 0; m < nm; m++)
                nbr += r->bucket_share[b * nm + m];
            for (size_t m = 0; m < nm && nbr; m++)
                p->bucket_share[b * nm + m] +=
                    (double)r->bucket_share[b * nm + m] / (double)nbr /
                    (double)k;
        }
        for (size_t j = 0; j < p->n_curve && j < r->n_curve; j++) {
            p->curve_x[j] = r->curve_x[j];
            p->curve_q[j] += r->curve_quality[j] / (double)k;
            p->curve_c[j] += r->curve_cost[j] / (double)k;
            p->curve_mu[j] += r->curve_mu[j] / (double)k;
            p->curve_qw[j] += r->curve_quality_window[j] / (double)k;
            p->curve_cw[j] += r->curve_cost_window[j] / (double)k;
        }
    }
    report_mean_sd(q, k, &p->q_mean, &p->q_sd);
    report_mean_sd(c, k, &p->c_mean, &p->c_sd);
    report_add_cascade(rep, p, runs, k);
    free(q);
    free(c);
    return p;
}

void
report_add_front(report_policy_t *p, double budget,
                 replay_result_t *const *runs, size_t k)
{
    size_t n = p->n_front + 1;
    p->front_budget = bursar_realloc(p->front_budget, n * sizeof(double));
    p->front_q = bursar_realloc(p->front_q, n * sizeof(double));
    p->front_q_sd = bursar_realloc(p->front_q_sd, n * sizeof(double));
    p->front_c = bursar_realloc(p->front_c, n * sizeof(double));
    p->front_spend = bursar_realloc(p->front_spend, n * sizeof(double));
    double *q = bursar_malloc(k * sizeof(double));
    double *c = bursar_malloc(k * sizeof(double));
    double spend = 0.0, sd_c;
    for (size_t i = 0; i < k; i++) {
        q[i] = runs[i]->quality;
        c[i] = runs[i]->cost_per_request;
        if (runs[i]->spend_ratio > spend)
            spend = runs[i]->spend_ratio;
    }
    size_t j = p->n_front;
    p->front_budget[j] = budget;
    report_mean_sd(q, k, &p->front_q[j], &p->front_q_sd[j]);
    report_mean_sd(c, k, &p->front_c[j], &sd_c);
    p->front_spend[j] = spend;
    p->n_front = n;
    free(q);
    free(c);
}

void
report_destroy_contents(report_t *rep)
{
    for (size_t i = 0; i < rep->n_pol; i++) {
        report_policy_t *p = &rep->pol[i];
        free(p->share);
        free(p->bucket_share);
        free(p->curve_x);
        free(p->curve_q);
        free(p->curve_c);
        free(p->curve_mu);
        free(p->curve_qw);
        free(p->curve_cw);
        free(p->front_budget);
        free(p->front_q);
        free(p->front_q_sd);
        free(p->front_c);
        free(p->front_spend);
        free(p->b_q);
        free(p->b_c);
        free(p->b_first_pass);
        free(p->b_escalated);
        free(p->b_steps);
        free(p->step_share);
    }
    free(rep->pol);
    free(rep->sf_budget);
    free(rep->sf_q);
    free(rep->sf_c);
    free(rep->cascade_mix);
    free(rep->cf_budget);
    free(rep->cf_q);
    free(rep->cf_c);
    rep->pol = NULL;
    rep->n_pol = 0;
    rep->sf_budget = rep->sf_q = rep->sf_c = NULL;
    rep->cascade_mix = NULL;
    rep->cf_budget = rep->cf_q = rep->cf_c = NULL;
}

/* ------------------------------------------------------------ table */

/* The top shares of a policy as "model 41%, model 30%, ..." */
static void
report_top_shares(const report_t *rep, const double *share, char *buf,
                  size_t len)
{
    size_t nm = rep->ds->n_models;
    unsigned char *used = bursar_calloc(nm, 1);
    size_t pos = 0;
    buf[0] = '\0';
    for (int shown = 0; shown < 4; shown++) {
        int best = -1;
        for (size_t m = 0; m < nm; m++)
            if (!used[m] && (best < 0 || share[m] > share[best]))
                best = (int)m;
        if (best < 0 || share[best] < 0.005)
            break;
        used[best] = 1;
        int w = snprintf(buf + pos, len - pos, "%s%s %.0f%%", shown ? ", " : "",
                         rep->ds->model[best], 100.0 * share[best]);
        if (w < 0 || (size_t)w >= len - pos)
            break;
        pos += (size_t)w;
    }
    free(used);
}

/* The source, the size of the run and its parameters. */
static void
report_table_head(const report_t *rep, FILE *f)
{
    const dataset_t *ds = rep->ds;
    fprintf(f, "bursar-sim: %s\n", rep->source);
    fprintf(f,
            "  %zu requests x %u pass%s, %zu buckets, %zu models, %u "
            "seed%s from %lu\n",
            ds->n_rows, rep->passes, rep->passes == 1 ? "" : "es",
            ds->n_buckets, ds->n_models, rep->seeds, rep->seeds == 1 ? "" : "s",
            rep->seed);
    if (rep->budget > 0.0)
        fprintf(f, "  budget %.6f USD per request", rep->budget);
    else
        fprintf(f, "  no budget");
    if (rep->half_life_s > 0.0)
        fprintf(f, ", half-life %g requests", rep->half_life_s);
    if (rep->explore_floor > 0.0)
        fprintf(f, ", exploration floor %g", rep->explore_floor);
    if (rep->escalations || rep->validator)
        fprintf(f,
                "\n  cascade: up to %u step%s per request, validator %s "
                "(the policies learn its verdicts)",
                rep->escalations + 1, rep->escalations ? "s" : "",
                rep->validator ? rep->validator : "perfect");
    fprintf(f, "\n\n");
}

/* One reference's line (best static, the cascade reference, the oracle)
 * under the policies' columns. */
static void
report_table_ref(const report_t *rep, int w, int cas, const char *name,
                 double q, double c, FILE *f)
{
    fprintf(f, "%-*s %8.4f %7s %8.3f", w, name, q, "",
            rep->static_q > 0 ? q / rep->static_q : 0.0);
    if (cas)
        fprintf(f, " %8.3f", q / rep->cascade_q);
    fprintf(f, " %12.6f\n", c);
}

/* One line per policy, then the references (best static, oracle); w is
 * the width of the name column. */
static void
report_table_policies(const report_t *rep, int w, FILE *f)
{
    int cas = isfinite(rep->cascade_q) && rep->cascade_q > 0;
    fprintf(f, "%-*s %8s %7s %8s", w, "policy", "quality", "sd", "/static");
    if (cas)
        fprintf(f, " %8s", "/cascade");
    fprintf(f, " %12s %9s %9s\n", "USD/request", "/budget", "max/bud");
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        fprintf(f, "%-*s %8.4f %7.4f %8.3f", w, p->name, p->q_mean, p->q_sd,
                rep->static_q > 0 ? p->q_mean / rep->static_q : 0.0);
        if (cas)
            fprintf(f, " %8.3f", p->q_mean / rep->cascade_q);
        fprintf(f, " %12.6f", p->c_mean);
        if (rep->budget > 0.0)
            fprintf(f, " %9.3f %9.3f%s\n", p->c_mean / rep->budget,
                    p->spend_max, p->paces ? "" : "  (budget-blind)");
        else
            fprintf(f, " %9s %9s\n", "-", "-");
    }
    fprintf(f, "\n");
    report_table_ref(rep, w, cas, "best static (LP)", rep->static_q,
                     rep->static_c, f);
    if (isfinite(rep->cascade_q))
        report_table_ref(rep, w, cas, "hindsight cascade (LP)", rep->cascade_q,
                         rep->cascade_c, f);
    report_table_ref(rep, w, cas, "oracle (per prompt)", rep->oracle_q,
                     rep->oracle_c, f);
}

/* Every single model, then each policy's share of traffic per model and
 * what went wrong in its runs. */
static void
report_table_models(const report_t *rep, int w, FILE *f)
{
    const dataset_t *ds = rep->ds;
    fprintf(f, "\n%-38s %8s %12s %8s\n", "single model", "quality",
            "USD/request", "rows");
    for (size_t m = 0; m < ds->n_models; m++)
        fprintf(f, "%-38s %8.4f %12.6f %8zu\n", ds->model[m],
                ds->model_quality[m], ds->model_cost[m], ds->model_n[m]);

    int cascade = rep->escalations > 0;
    fprintf(f, "\nmodel share (%sall buckets)\n",
            cascade ? "answers returned, " : "");
    for (size_t i = 0; i < rep->n_pol; i++) {
        char buf[512];
        report_top_shares(rep, rep->pol[i].share, buf, sizeof buf);
        fprintf(f, "  %-*s %s\n", w, rep->pol[i].name, buf);
    }
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        if (p->unaffordable > 0 || p->provider_errors > 0 || p->failed > 0)
            fprintf(f,
                    "  %-*s per run: %.0f unaffordable decisions, %.0f "
                    "provider errors, %.0f failed requests\n",
                    w, p->name, p->unaffordable, p->provider_errors, p->failed);
    }
}

/* The budget sweep, when there is one: per budget the best static quality
 * and each swept policy's quality and cost. */
static void
report_table_frontier(const report_t *rep, FILE *f)
{
    const report_policy_t *first = NULL;
    for (size_t i = 0; i < rep->n_pol && !first; i++)
        if (rep->pol[i].n_front)
            first = &rep->pol[i];
    if (!first)
        return;
    int over = 0;
    fprintf(f, "\nfrontier (quality at USD/request, per budget)\n");
    fprintf(f, "%12s %8s", "budget", "static");
    if (rep->cascade_at)
        fprintf(f, " %8s", "cascade");
    for (size_t i = 0; i < rep->n_pol; i++)
        if (rep->pol[i].n_front)
            fprintf(f, " %22s", rep->pol[i].name);
    fprintf(f, "\n");
    for (size_t j = 0; j < first->n_front; j++) {
        double sq = 0.0;
        replay_best_static(rep->ds, first->front_budget[j], &sq, NULL, NULL);
        fprintf(f, "%12.6f %8.4f", first->front_budget[j], sq);
        double cq = NAN, cc;
        if (rep->cascade_at) {
            rep->cascade_at(rep->cascade_ctx, first->front_budget[j], &cq, &cc);
            fprintf(f, " %8.4f", cq);
        }
        for (size_t i = 0; i < rep->n_pol; i++) {
            const report_policy_t *p = &rep->pol[i];
            if (p->n_front > j) {
                char cell[64];
                snprintf(cell, sizeof cell, "%.4f at %.6f%s", p->front_q[j],
                         p->front_c[j], p->front_spend[j] > 1.02 ? "*" : "");
                over |= p->front_spend[j] > 1.02;
                fprintf(f, " %22s", cell);
            }
        }
        fprintf(f, "\n");
    }
    if (over)
        fprintf(f, "(* = a run spent more than 1.02 x that budget)\n");
}

/* A spend ratio ending a line; nothing without a budget (NAN). */
static void
report_ratio(FILE *f, double r)
{
    if (isfinite(r))
        fprintf(f, " %8.3f", r);
    fprintf(f, "\n");
}

/* Cascades: per policy and bucket the quality, first-try pass rate,
 * escalation rate, steps and cost per request; then each step's model
 * shares (all buckets). */
static void
report_table_cascade(const report_t *rep, int w, FILE *f)
{
    const dataset_t *ds = rep->ds;
    size_t nb = ds->n_buckets, nm = ds->n_models;
    if (!rep->escalations && !rep->validator)
        return;
    if (isfinite(rep->cascade_q) && rep->cascade_mix)
        fprintf(f, "\nhindsight cascade (LP), orders per bucket\n%s",
                rep->cascade_mix);
    fprintf(f, "\ncascade, per request\n%-*s %8s %10s %9s %6s %12s", w,
            "policy / bucket", "quality", "1st ok", "escalated", "steps",
            "USD/request");
    fprintf(f, rep->budget > 0.0 ? " %8s\n" : "\n", "/budget");
    double bud = rep->budget > 0.0 ? rep->budget : NAN;
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        fprintf(f, "%-*s %8.4f %10.3f %9.3f %6.2f %12.6f", w, p->name,
                p->q_mean, p->first_pass, p->escalated, p->steps, p->c_mean);
        report_ratio(f, p->c_mean / bud);
        for (size_t b = 0; b < nb; b++) {
            fprintf(f, "  %-*s %8.4f %10.3f %9.3f %6.2f %12.6f", w - 2,
                    ds->bucket[b], p->b_q[b], p->b_first_pass[b],
                    p->b_escalated[b], p->b_steps[b], p->b_c[b]);
            report_ratio(f, p->b_c[b] / bud);
        }
    }
    fprintf(f, "\nanswers per request at each step (all buckets, the top 4)\n");
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        for (size_t s = 0; s < p->steps_max; s++) {
            char buf[512];
            report_top_shares(rep, p->step_share + (s * (nb + 1) + nb) * nm,
                              buf, sizeof buf);
            fprintf(f, "  %-*s step %zu: %s\n", w, s ? "" : p->name, s + 1,
                    buf[0] ? buf : "-");
        }
    }
}

void
report_table(const report_t *rep, FILE *f)
{
    int w = 22;
    for (size_t i = 0; i < rep->n_pol; i++)
        if ((int)strlen(rep->pol[i].name) > w)
            w = (int)strlen(rep->pol[i].name);
    report_table_head(rep, f);
    report_table_policies(rep, w, f);
    report_table_models(rep, w, f);
    report_table_cascade(rep, w, f);
    report_table_frontier(rep, f);
}

/* ------------------------------------------------------------- JSON */

static cJSON *
report_share_obj(const dataset_t *ds, const double *share)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t m = 0; m < ds->n_models; m++)
        cJSON_AddNumberToObject(o, ds->model[m], share[m]);
    return o;
}

/* A policy's cascade figures: {"first_pass", "escalated", "steps",
 * "step_share": [per step {model: answers per request}], "per_bucket":
 * {bucket: the same and "quality", "cost_per_request_usd"}}. */
static cJSON *
report_cascade_obj(const report_t *rep, const report_policy_t *p)
{
    const dataset_t *ds = rep->ds;
    size_t nb = ds->n_buckets, nm = ds->n_models;
    cJSON *o = cJSON_CreateObject();
    for (size_t b = 0; b <= nb; b++) {
        cJSON *x = o;
        if (b < nb) {
            x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "quality", p->b_q[b]);
            cJSON_AddNumberToObject(x, "cost_per_request_usd", p->b_c[b]);
            if (rep->budget > 0.0)
                cJSON_AddNumberToObject(x, "spend_ratio",
                                        p->b_c[b] / rep->budget);
        }
        cJSON_AddNumberToObject(x, "first_pass",
                                b < nb ? p->b_first_pass[b] : p->first_pass);
        cJSON_AddNumberToObject(x, "escalated",
                                b < nb ? p->b_escalated[b] : p->escalated);
        cJSON_AddNumberToObject(x, "steps", b < nb ? p->b_steps[b] : p->steps);
        cJSON *ss = cJSON_AddArrayToObject(x, "step_share");
        for (size_t s = 0; s < p->steps_max; s++)
            cJSON_AddItemToArray(
                ss,
                report_share_obj(ds, p->step_share + (s * (nb + 1) + b) * nm));
        if (b < nb) {
            cJSON *pb = cJSON_GetObjectItem(o, "per_bucket");
            if (!pb)
                pb = cJSON_AddObjectToObject(o, "per_bucket");
            cJSON_AddItemToObject(pb, ds->bucket[b], x);
        }
    }
    return o;
}

/* The fields of one policy, added to o. */
static void
report_policy_fields(const report_t *rep, const report_policy_t *p, cJSON *o)
{
    const dataset_t *ds = rep->ds;
    cJSON_AddStringToObject(o, "policy", p->name);
    cJSON_AddNumberToObject(o, "requests", (double)p->requests);
    cJSON_AddNumberToObject(o, "runs", (double)p->runs);
    cJSON_AddNumberToObject(o, "quality", p->q_mean);
    cJSON_AddNumberToObject(o, "quality_sd", p->q_sd);
    cJSON_AddNumberToObject(o, "cost_usd", p->c_mean * (double)p->requests);
    cJSON_AddNumberToObject(o, "cost_per_request_usd", p->c_mean);
    cJSON_AddNumberToObject(o, "cost_per_request_sd", p->c_sd);
    cJSON_AddBoolToObject(o, "paces_budget", p->paces);
    if (rep->budget > 0.0) {
        cJSON_AddNumberToObject(o, "spend_ratio", p->c_mean / rep->budget);
        cJSON_AddNumberToObject(o, "spend_ratio_max", p->spend_max);
    }
    if (rep->static_q > 0.0)
        cJSON_AddNumberToObject(o, "quality_vs_best_static",
                                p->q_mean / rep->static_q);
    if (isfinite(rep->cascade_q) && rep->cascade_q > 0.0)
        cJSON_AddNumberToObject(o, "quality_vs_hindsight_cascade",
                                p->q_mean / rep->cascade_q);
    cJSON_AddNumberToObject(o, "mu_final", p->mu_mean);
    cJSON_AddNumberToObject(o, "unaffordable_per_run", p->unaffordable);
    cJSON_AddNumberToObject(o, "explored_per_run", p->explored);
    cJSON_AddNumberToObject(o, "provider_errors_per_run", p->provider_errors);
    cJSON_AddNumberToObject(o, "failed_per_run", p->failed);
    if (rep->escalations || rep->validator)
        cJSON_AddItemToObject(o, "cascade", report_cascade_obj(rep, p));
    cJSON *ms = cJSON_AddObjectToObject(o, "model_share");
    cJSON_AddItemToObject(ms, "overall", report_share_obj(ds, p->share));
    cJSON *pb = cJSON_AddObjectToObject(ms, "per_bucket");
    for (size_t b = 0; b < ds->n_buckets; b++)
        cJSON_AddItemToObject(
            pb, ds->bucket[b],
            report_share_obj(ds, p->bucket_share + b * ds->n_models));
    if (p->n_curve) {
        cJSON *lc = cJSON_AddObjectToObject(o, "learning_curve");
        cJSON_AddItemToObject(
            lc, "requests",
            cJSON_CreateDoubleArray(p->curve_x, (int)p->n_curve));
        cJSON_AddItemToObject(
            lc, "quality",
            cJSON_CreateDoubleArray(p->curve_q, (int)p->n_curve));
        cJSON_AddItemToObject(
            lc, "cost_per_request_usd",
            cJSON_CreateDoubleArray(p->curve_c, (int)p->n_curve));
        cJSON_AddItemToObject(
            lc, "quality_window",
            cJSON_CreateDoubleArray(p->curve_qw, (int)p->n_curve));
        cJSON_AddItemToObject(
            lc, "cost_per_request_window_usd",
            cJSON_CreateDoubleArray(p->curve_cw, (int)p->n_curve));
        cJSON_AddItemToObject(
            lc, "mu", cJSON_CreateDoubleArray(p->curve_mu, (int)p->n_curve));
    }
    if (p->n_front) {
        cJSON *fr = cJSON_AddArrayToObject(o, "frontier");
        for (size_t j = 0; j < p->n_front; j++) {
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "budget_per_request_usd",
                                    p->front_budget[j]);
            cJSON_AddNumberToObject(pt, "quality", p->front_q[j]);
            cJSON_AddNumberToObject(pt, "quality_sd", p->front_q_sd[j]);
            cJSON_AddNumberToObject(pt, "cost_per_request_usd", p->front_c[j]);
            cJSON_AddNumberToObject(pt, "spend_ratio_max", p->front_spend[j]);
            cJSON_AddItemToArray(fr, pt);
        }
    }
}

int
report_json(const report_t *rep, FILE *f)
{
    const dataset_t *ds = rep->ds;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", rep->source);
    cJSON_AddNumberToObject(o, "rows", (double)ds->n_rows);
    cJSON_AddNumberToObject(o, "passes", rep->passes);
    cJSON_AddNumberToObject(o, "seeds", rep->seeds);
    cJSON_AddNumberToObject(o, "seed", (double)rep->seed);
    cJSON_AddNumberToObject(o, "budget_per_request_usd", rep->budget);
    cJSON_AddNumberToObject(o, "half_life_s", rep->half_life_s);
    cJSON_AddNumberToObject(o, "explore_floor", rep->explore_floor);
    /* the first policy's figures at the top level, for scripts that run
     * one policy; all of them under "policies" */
    if (rep->n_pol)
        report_policy_fields(rep, &rep->pol[0], o);
    cJSON_AddNumberToObject(o, "best_static_quality", rep->static_q);
    cJSON_AddNumberToObject(o, "best_static_cost_per_request_usd",
                            rep->static_c);
    if (rep->escalations || rep->validator) {
        cJSON_AddNumberToObject(o, "escalations", rep->escalations);
        cJSON_AddStringToObject(o, "validator",
                                rep->validator ? rep->validator : "perfect");
    }
    if (isfinite(rep->cascade_q)) {
        cJSON_AddNumberToObject(o, "hindsight_cascade_quality", rep->cascade_q);
        cJSON_AddNumberToObject(o, "hindsight_cascade_cost_per_request_usd",
                                rep->cascade_c);
    }
    cJSON_AddNumberToObject(o, "oracle_quality", rep->oracle_q);
    cJSON_AddNumberToObject(o, "oracle_cost_per_request_usd", rep->oracle_c);
    cJSON *models = cJSON_AddObjectToObject(o, "models");
    for (size_t m = 0; m < ds->n_models; m++) {
        cJSON *x = cJSON_AddObjectToObject(models, ds->model[m]);
        cJSON_AddNumberToObject(x, "quality", ds->model_quality[m]);
        cJSON_AddNumberToObject(x, "cost_per_request_usd", ds->model_cost[m]);
        cJSON_AddNumberToObject(x, "rows", (double)ds->model_n[m]);
        cJSON *pb = cJSON_AddObjectToObject(x, "per_bucket");
        for (size_t b = 0; b < ds->n_buckets; b++) {
            size_t k = b * ds->n_models + m;
            if (!ds->bm_n[k])
                continue;
            cJSON *y = cJSON_AddObjectToObject(pb, ds->bucket[b]);
            cJSON_AddNumberToObject(y, "quality", ds->bm_quality[k]);
            cJSON_AddNumberToObject(y, "cost_per_request_usd", ds->bm_cost[k]);
        }
    }
    cJSON *buckets = cJSON_AddObjectToObject(o, "buckets");
    for (size_t b = 0; b < ds->n_buckets; b++)
        cJSON_AddNumberToObject(buckets, ds->bucket[b],
                                (double)ds->bucket_rows[b]);
    cJSON *pols = cJSON_AddArrayToObject(o, "policies");
    for (size_t i = 0; i < rep->n_pol; i++) {
        cJSON *x = cJSON_CreateObject();
        report_policy_fields(rep, &rep->pol[i], x);
        cJSON_AddItemToArray(pols, x);
    }
    if (rep->n_sf) {
        cJSON *sf = cJSON_AddArrayToObject(o, "best_static_frontier");
        for (size_t j = 0; j < rep->n_sf; j++) {
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "budget_per_request_usd",
                                    rep->sf_budget[j]);
            cJSON_AddNumberToObject(pt, "quality", rep->sf_q[j]);
            cJSON_AddNumberToObject(pt, "cost_per_request_usd", rep->sf_c[j]);
            cJSON_AddItemToArray(sf, pt);
        }
    }
    if (rep->n_cf) {
        cJSON *cf = cJSON_AddArrayToObject(o, "hindsight_cascade_frontier");
        for (size_t j = 0; j < rep->n_cf; j++) {
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "budget_per_request_usd",
                                    rep->cf_budget[j]);
            cJSON_AddNumberToObject(pt, "quality", rep->cf_q[j]);
            cJSON_AddNumberToObject(pt, "cost_per_request_usd", rep->cf_c[j]);
            cJSON_AddItemToArray(cf, pt);
        }
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return -1;
    fprintf(f, "%s\n", s);
    cJSON_free(s);
    return 0;
}
