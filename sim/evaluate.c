/*
 * evaluate.c - the `evaluate` subcommand of bursar-sim (evaluate.h):
 * options, the table, the JSON object and the SVG plot.
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/evaluate.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sim/csv.h"
#include "sim/olog.h"
#include "sim/ope.h"
#include "sim/plot.h"
#include "sim/serr.h"
#include "sim/svg.h"
#include "policies/base.h"

#define EVALUATE_MAX 32

static const char *evaluate_usage =
    "usage: bursar-sim evaluate --log FILE --policy P [options]\n"
    "\n"
    "Off-policy evaluation: what would policy P have earned and spent on a\n"
    "logged decision stream (docs/ope.md)?\n"
    "\n"
    "  --log FILE              bursar export JSONL (.jsonl, .ndjson) or an\n"
    "                          Open Bandit Dataset CSV (.csv); repeatable\n"
    "  --policy P              uniform, fixed:MODEL, mix:A=W,B=W,...,\n"
    "                          ts, ts-budget, eps-greedy, ucb1, models\n"
    "                          (= fixed: every action); repeatable, or a\n"
    "                          comma list (except mix:)\n"
    "  --policy-file FILE      a distribution as JSON: {\"A\": w, ...} or\n"
    "                          {\"bucket\": {\"A\": w}, \"*\": {...}}\n"
    "  --explore-floor F       exploration floor of the targets (default 0)\n"
    "  --budget-per-request U  ts-budget's per-request target, USD\n"
    "  --epsilon E             eps-greedy exploration (default 0.1)\n"
    "  --seed N                seed of the bootstrap and replay (default 1)\n"
    "  --boot B                bootstrap resamples (default 1000; 0: none)\n"
    "  --dominate-share S      warn when one row holds more than S of the\n"
    "                          total importance weight (default 0.05)\n"
    "  --per-decision          every row a sample, pi per bucket: ignore\n"
    "                          offered sets and cascades (the estimator\n"
    "                          before them; biased with escalations)\n"
    "  --json                  one JSON object on stdout\n"
    "  --plot FILE.svg         each policy's estimates with 95% intervals\n"
    "  -h, --help\n";

typedef struct evaluate_opts {
    const char *log[64];
    size_t n_log;
    const char *policy[EVALUATE_MAX];
    size_t n_policy;
    const char *policy_file[EVALUATE_MAX];
    size_t n_policy_file;
    int json;
    const char *plot;
    ope_config_t cfg;
} evaluate_opts_t;

/* getopt_long values of the long options (past every character). */
enum evaluate_opt {
    EO_LOG = 256,
    EO_POLICY,
    EO_POLICY_FILE,
    EO_FLOOR,
    EO_BUDGET,
    EO_EPSILON,
    EO_SEED,
    EO_BOOT,
    EO_DOMINATE,
    EO_PER_DECISION,
    EO_JSON,
    EO_PLOT,
};

static const struct option evaluate_options[] = {
    {"log", required_argument, NULL, EO_LOG},
    {"policy", required_argument, NULL, EO_POLICY},
    {"policy-file", required_argument, NULL, EO_POLICY_FILE},
    {"explore-floor", required_argument, NULL, EO_FLOOR},
    {"budget-per-request", required_argument, NULL, EO_BUDGET},
    {"epsilon", required_argument, NULL, EO_EPSILON},
    {"seed", required_argument, NULL, EO_SEED},
    {"boot", required_argument, NULL, EO_BOOT},
    {"dominate-share", required_argument, NULL, EO_DOMINATE},
    {"per-decision", no_argument, NULL, EO_PER_DECISION},
    {"json", no_argument, NULL, EO_JSON},
    {"plot", required_argument, NULL, EO_PLOT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* Appends val to list (at most cap entries). */
static int
evaluate_push(const char **list, size_t *n, size_t cap, const char *val,
              const char *what, serr_t *e)
{
    if (*n >= cap)
        return serr_set(e, SERR_ARG, "too many %s", what);
    list[(*n)++] = val;
    return 0;
}

/* One getopt_long answer c with its value val. */
static int
evaluate_option(evaluate_opts_t *o, int c, const char *val, serr_t *e)
{
    char name[BURSAR_NAME_MAX];
    serr_opt_name(evaluate_options, c, name, sizeof name);
    double d;
    int rc = 0;
    switch (c) {
    case 1: /* no positional arguments */
        return serr_set(e, SERR_ARG, "unknown option '%s' (see --help)", val);
    case EO_LOG:
        return evaluate_push(o->log, &o->n_log,
                             sizeof o->log / sizeof o->log[0], val,
                             "--log files", e);
    case EO_POLICY:
        return evaluate_push(o->policy, &o->n_policy, EVALUATE_MAX, val,
                             "--policy", e);
    case EO_POLICY_FILE:
        return evaluate_push(o->policy_file, &o->n_policy_file, EVALUATE_MAX,
                             val, "--policy-file", e);
    case EO_FLOOR:
        return serr_parse_num(name, val, 0, 1, &o->cfg.explore_floor, e);
    case EO_BUDGET:
        return serr_parse_num(name, val, 0, 1e6, &o->cfg.budget_per_request, e);
    case EO_EPSILON:
        return serr_parse_num(name, val, 0, 1, &o->cfg.params.epsilon, e);
    case EO_SEED:
        if (!(rc = serr_parse_num(name, val, 0, 4e9, &d, e)))
            o->cfg.seed = (unsigned long)d;
        return rc;
    case EO_BOOT:
        if (!(rc = serr_parse_num(name, val, 0, 1e6, &d, e)))
            o->cfg.boot = (unsigned)d;
        return rc;
    case EO_DOMINATE:
        return serr_parse_num(name, val, 0, 1, &o->cfg.dominate_share, e);
    case EO_PER_DECISION:
        o->cfg.per_decision = 1;
        return 0;
    case EO_JSON:
        o->json = 1;
        return 0;
    case EO_PLOT:
        if (strlen(val) < 5 || strcmp(val + strlen(val) - 4, ".svg") != 0)
            return serr_set(e, SERR_ARG, "--plot %s: the file must end in .svg",
                            val);
        o->plot = val;
        return 0;
    }
    return serr_set(e, SERR_ARG, "option %d not handled", c);
}

/* Returns 0, 1 (print the usage) or SERR_ARG with a message. */
static int
evaluate_parse(int argc, char **argv, evaluate_opts_t *o, serr_t *e)
{
    memset(o, 0, sizeof *o);
    ope_config_default(&o->cfg);
    optind = 0; /* a fresh scan (glibc, musl) */
    opterr = 0;
    int c, rc = 0;
    /* "-": an argument that is not an option comes as 1, to be refused */
    while (!rc && (c = bursar_getopt_long(argc, argv, "-:h", evaluate_options,
                                          NULL)) != -1) {
        if (c == 'h')
            return 1;
        if (c == '?' || c == ':')
            return serr_opt_error(c, argv, evaluate_options, e);
        rc = evaluate_option(o, c, optarg, e);
    }
    if (!rc && optind < argc) /* after "--" */
        rc = evaluate_option(o, 1, argv[optind], e);
    if (rc)
        return rc;
    if (!o->n_log)
        return serr_set(e, SERR_ARG, "no input: give --log FILE");
    if (!o->n_policy && !o->n_policy_file)
        return serr_set(e, SERR_ARG,
                        "no policy: give --policy P or --policy-file FILE");
    return 0;
}

/* Expands the --policy values into targets. */
static int
evaluate_targets(const evaluate_opts_t *o, const olog_t *lg, ope_target_t *t,
                 size_t *n_out, serr_t *e)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_policy; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", o->policy[i]);
        int whole = strncmp(buf, "mix:", 4) == 0;
        char *save = NULL;
        for (char *tok = whole ? buf : strtok_r(buf, ",", &save); tok;
             tok = whole ? NULL : strtok_r(NULL, ",", &save)) {
            if (strcmp(tok, "models") == 0) {
                for (size_t a = 0; a < lg->n_actions; a++) {
                    if (n >= EVALUATE_MAX)
                        return serr_set(e, SERR_ARG, "more than %d policies",
                                        EVALUATE_MAX);
                    char spec[300];
                    snprintf(spec, sizeof spec, "fixed:%s", lg->action[a]);
                    int rc = ope_target_parse(lg, spec, &t[n], e);
                    if (rc)
                        return rc;
                    n++;
                }
                continue;
            }
            if (n >= EVALUATE_MAX)
                return serr_set(e, SERR_ARG, "more than %d policies",
                                EVALUATE_MAX);
            int rc = ope_target_parse(lg, tok, &t[n], e);
            if (rc)
                return rc;
            n++;
        }
    }
    for (size_t i = 0; i < o->n_policy_file; i++) {
        if (n >= EVALUATE_MAX)
            return serr_set(e, SERR_ARG, "more than %d policies", EVALUATE_MAX);
        char *buf;
        size_t len;
        int rc = csv_slurp(o->policy_file[i], &buf, &len, e);
        if (rc)
            return rc;
        const char *base = strrchr(o->policy_file[i], '/');
        rc = ope_target_json(lg, buf, base ? base + 1 : o->policy_file[i],
                             &t[n], e);
        free(buf);
        if (rc)
            return rc;
        n++;
    }
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------- output */

/* What the samples are: "per request (cascades: N requests, M steps)",
 * "per decision (within offered sets: K rows)" or "per decision". */
static void
evaluate_unit(const ope_result_t *r, char *buf, size_t cap)
{
    if (r->per_request)
        snprintf(buf, cap, "per request (cascades: %zu requests, %zu steps)",
                 r->n_requests, r->n_steps);
    else if (r->set_rows)
        snprintf(buf, cap, "per decision (within offered sets: %zu rows)",
                 r->set_rows);
    else
        snprintf(buf, cap, "per decision");
}

/* Why an estimator has no value for r. */
static const char *
evaluate_note(const ope_target_t *t, const ope_result_t *r)
{
    if (t->learning && r->per_request)
        return "a learning policy on a log with cascades is not evaluated";
    if (t->learning)
        return "a learning policy is evaluated by replay only";
    return "per-request evaluation of cascades: IPS and SNIPS only";
}

static void
evaluate_table(const char *source, const olog_t *lg, const ope_target_t *t,
               const ope_result_t *r, size_t n, const ope_config_t *cfg,
               FILE *f)
{
    fprintf(f, "log: %s: %zu rows, %zu buckets, %zu actions\n", source,
            lg->n_rows, lg->n_buckets, lg->n_actions);
    if (n)
        fprintf(f,
                "rows used %zu (left out: %zu without outcome, %zu without "
                "propensity, %zu with propensity 0); smallest propensity "
                "%.4g\n",
                r[0].n_used, r[0].n_no_reward, r[0].n_no_prop, r[0].n_zero_prop,
                r[0].p_min);
    fprintf(f, "intervals: 95%% percentile bootstrap, %u resamples, seed %lu\n",
            cfg->boot, cfg->seed);
    char unit[128] = "per decision";
    for (size_t i = 0; i < n; i++) {
        char u[128];
        evaluate_unit(&r[i], u, sizeof u);
        if (!i || strcmp(u, unit) != 0)
            fprintf(f, "%sevaluation: %s\n", i ? "\n" : "", u);
        snprintf(unit, sizeof unit, "%s", u);
        fprintf(f, "\npolicy %s%s\n", t[i].name,
                t[i].learning ? " (learning: replay only)" : "");
        fprintf(f, "  %-8s %9s  %-19s %11s  %-25s %9s\n", "estimator",
                "quality", "95% interval", "USD/request", "95% interval",
                "ESS");
        for (int k = 0; k < OPE_N; k++) {
            const ope_est_t *es = &r[i].est[k];
            if (!es->valid) {
                fprintf(f, "  %-8s %9s\n", ope_estimator_name[k], "n/a");
                continue;
            }
            fprintf(f, "  %-8s %9.4f  [%7.4f, %7.4f]  ", ope_estimator_name[k],
                    es->q, es->q_lo, es->q_hi);
            if (isfinite(es->c))
                fprintf(f, "%11.6f  [%10.6f, %10.6f]  ", es->c, es->c_lo,
                        es->c_hi);
            else
                fprintf(f, "%11s  %-25s ", "-", "");
            fprintf(f, "%9.1f\n", es->ess);
        }
        for (size_t w = 0; w < r[i].n_warn; w++)
            fprintf(f, "  warning: %s\n", r[i].warn[w]);
    }
}

static cJSON *
evaluate_num_json(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *
evaluate_pair(double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi))
        return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(hi));
    return a;
}

static cJSON *
evaluate_policy_json(const ope_target_t *t, const ope_result_t *r)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "policy", t->name);
    cJSON_AddBoolToObject(p, "learning", t->learning);
    cJSON *est = cJSON_AddObjectToObject(p, "estimators");
    for (int k = 0; k < OPE_N; k++) {
        const ope_est_t *es = &r->est[k];
        cJSON *o = cJSON_AddObjectToObject(est, ope_estimator_name[k]);
        if (!es->valid) {
            cJSON_AddNullToObject(o, "estimate");
            cJSON_AddNullToObject(o, "ci95");
            cJSON_AddNullToObject(o, "ess");
            cJSON_AddStringToObject(o, "note", evaluate_note(t, r));
            continue;
        }
        cJSON_AddItemToObject(o, "estimate", evaluate_num_json(es->q));
        cJSON_AddItemToObject(o, "ci95", evaluate_pair(es->q_lo, es->q_hi));
        cJSON_AddItemToObject(o, "ess", evaluate_num_json(es->ess));
        cJSON_AddItemToObject(o, "cost_per_request_usd",
                              evaluate_num_json(es->c));
        cJSON_AddItemToObject(o, "cost_ci95",
                              evaluate_pair(es->c_lo, es->c_hi));
    }
    char unit[128];
    evaluate_unit(r, unit, sizeof unit);
    cJSON_AddStringToObject(p, "evaluation", unit);
    cJSON_AddStringToObject(p, "unit", r->per_request ? "request" : "decision");
    cJSON_AddNumberToObject(p, "requests", (double)r->n_requests);
    cJSON_AddNumberToObject(p, "steps", (double)r->n_steps);
    cJSON_AddNumberToObject(p, "rows_used", (double)r->n_used);
    cJSON_AddNumberToObject(p, "replay_accepted", (double)r->n_accepted);
    cJSON_AddNumberToObject(p, "max_weight_share", r->max_share);
    cJSON_AddNumberToObject(p, "unsupported_mass", r->unsupported);
    cJSON *w = cJSON_AddArrayToObject(p, "warnings");
    for (size_t i = 0; i < r->n_warn; i++)
        cJSON_AddItemToArray(w, cJSON_CreateString(r->warn[i]));
    return p;
}

static int
evaluate_json(const char *source, const olog_t *lg, const ope_target_t *t,
              const ope_result_t *r, size_t n, const ope_config_t *cfg, FILE *f)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *log = cJSON_AddObjectToObject(root, "log");
    cJSON_AddStringToObject(log, "source", source);
    cJSON_AddNumberToObject(log, "rows", (double)lg->n_rows);
    cJSON_AddNumberToObject(log, "buckets", (double)lg->n_buckets);
    cJSON_AddNumberToObject(log, "actions", (double)lg->n_actions);
    if (n) {
        cJSON_AddNumberToObject(log, "rows_used", (double)r[0].n_used);
        cJSON_AddNumberToObject(log, "without_outcome",
                                (double)r[0].n_no_reward);
        cJSON_AddNumberToObject(log, "without_propensity",
                                (double)r[0].n_no_prop);
        cJSON_AddNumberToObject(log, "zero_propensity",
                                (double)r[0].n_zero_prop);
        cJSON_AddItemToObject(log, "min_propensity",
                              evaluate_num_json(r[0].p_min));
    }
    cJSON_AddNumberToObject(root, "bootstrap", cfg->boot);
    cJSON_AddNumberToObject(root, "seed", (double)cfg->seed);
    /* the first policy at the top level, all under "policies" */
    cJSON *first = evaluate_policy_json(&t[0], &r[0]);
    cJSON *it;
    cJSON_ArrayForEach(it, first)
    {
        cJSON_AddItemReferenceToObject(root, it->string, it);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "policies");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, i ? evaluate_policy_json(&t[i], &r[i])
                                    : cJSON_Duplicate(first, 1));
    char *s = cJSON_PrintUnformatted(root);
    int rc = s && fprintf(f, "%s\n", s) > 0 ? 0 : -1;
    free(s);
    cJSON_Delete(root);
    cJSON_Delete(first);
    return rc;
}

static const char *const evaluate_colors[OPE_N] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};

/* One panel: each policy a group of OPE_N points with whiskers. */
static void
evaluate_panel(svg_t *s, double y0, double h, const char *title, int cost,
               const ope_target_t *t, const ope_result_t *r, size_t n)
{
    double x0 = 70, w = s->w - 90, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < OPE_N; k++) {
            const ope_est_t *es = &r[i].est[k];
            double v[3] = {cost ? es->c : es->q, cost ? es->c_lo : es->q_lo,
                           cost ? es->c_hi : es->q_hi};
            if (!es->valid)
                continue;
            for (int j = 0; j < 3; j++)
                if (isfinite(v[j])) {
                    lo = fmin(lo, v[j]);
                    hi = fmax(hi, v[j]);
                }
        }
    svg_text(s, x0, y0 - 8, 13, "start", "black", 0, title);
    svg_rect(s, x0, y0, w, h, "none", "#888");
    if (!(hi >= lo)) {
        svg_text(s, x0 + w / 2, y0 + h / 2, 12, "middle", "#888", 0, "no data");
        return;
    }
    /* costs from 0; quality from a whole tick below its lowest estimate
     * (never below 0 when none is); ticks of 1, 2 or 5 */
    if (cost || lo >= 0)
        lo = cost ? 0.0 : fmax(0.0, lo - (hi - lo) * 0.08);
    hi += (hi - lo) * 0.08;
    if (!(hi > lo))
        hi = lo + (lo != 0.0 ? fabs(lo) * 0.1 : 1.0);
    plot_nice_range(&lo, &hi, 5);
    plot_ticks_t tk;
    plot_ticks(lo, hi, 5, &tk);
#define EVALUATE_Y(v) (y0 + h - ((v)-lo) / (hi - lo) * h)
    for (size_t g = 0; g < tk.n; g++) {
        double v = plot_tick(&tk, g);
        char lab[32];
        plot_tick_label(&tk, v, lab, sizeof lab);
        svg_line(s, x0, EVALUATE_Y(v), x0 + w, EVALUATE_Y(v), "#eee", 1, NULL);
        svg_text(s, x0 - 4, EVALUATE_Y(v) + 4, 10, "end", "black", 0, lab);
    }
    double gw = w / (double)n;
    for (size_t i = 0; i < n; i++) {
        double gx = x0 + gw * (double)i;
        svg_text(s, gx + gw / 2, y0 + h + 14, 10, "middle", "black", 0,
                 t[i].name);
        for (int k = 0; k < OPE_N; k++) {
            const ope_est_t *es = &r[i].est[k];
            double v = cost ? es->c : es->q, a = cost ? es->c_lo : es->q_lo,
                   b = cost ? es->c_hi : es->q_hi;
            if (!es->valid || !isfinite(v))
                continue;
            double x = gx + gw * (k + 1) / (OPE_N + 1.0);
            if (isfinite(a) && isfinite(b))
                svg_line(s, x, EVALUATE_Y(a), x, EVALUATE_Y(b),
                         evaluate_colors[k], 1.5, NULL);
            svg_circle(s, x, EVALUATE_Y(v), 3, evaluate_colors[k],
                       evaluate_colors[k]);
        }
    }
#undef EVALUATE_Y
}

static int
evaluate_plot(const char *path, const char *source, const ope_target_t *t,
              const ope_result_t *r, size_t n, serr_t *e)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return serr_set(e, SERR_IO, "%s: cannot write: %s", path,
                        strerror(errno));
    size_t longest = 14; /* each policy's column fits its name */
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) > longest)
            longest = strlen(t[i].name);
    double gw = 6.5 * (double)longest + 12, ph = 240;
    double w = fmax(640, gw * (double)n + 90);
    svg_t s;
    svg_begin(&s, f, w, 2 * ph + 170);
    char title[512];
    snprintf(title, sizeof title,
             "off-policy estimates with 95%% bootstrap "
             "intervals: %s",
             source);
    svg_text(&s, 10, 18, 13, "start", "black", 0, title);
    evaluate_panel(&s, 50, ph, "quality per request", 0, t, r, n);
    evaluate_panel(&s, 50 + ph + 50, ph, "cost per request (USD)", 1, t, r, n);
    double ly = 2 * ph + 160;
    for (int k = 0; k < OPE_N; k++) {
        double x = 70 + 90.0 * k;
        svg_circle(&s, x, ly - 4, 4, evaluate_colors[k], evaluate_colors[k]);
        svg_text(&s, x + 8, ly, 11, "start", "black", 0, ope_estimator_name[k]);
    }
    svg_end(&s);
    if (fclose(f) != 0)
        return serr_set(e, SERR_IO, "%s: write error", path);
    return 0;
}

int
evaluate_main(int argc, char **argv)
{
    serr_t e = {0, ""};
    evaluate_opts_t o;
    int rc = evaluate_parse(argc, argv, &o, &e);
    if (rc == 1) {
        fputs(evaluate_usage, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "bursar-sim evaluate: %s\n", e.msg);
        return 2;
    }
    olog_t *lg = olog_new();
    char source[1024] = "";
    size_t pos = 0;
    for (size_t i = 0; !rc && i < o.n_log; i++) {
        rc = olog_load_path(lg, o.log[i], &e);
        if (pos < sizeof source)
            pos += (size_t)snprintf(source + pos, sizeof source - pos, "%s%s",
                                    pos ? " " : "", o.log[i]);
    }
    if (!rc && !lg->n_rows)
        rc = serr_set(&e, SERR_EMPTY, "no rows in the log");
    if (rc) {
        fprintf(stderr, "bursar-sim evaluate: %s\n", e.msg);
        olog_destroy(&lg);
        return rc == SERR_ARG ? 2 : 1;
    }
    ope_target_t t[EVALUATE_MAX];
    ope_result_t r[EVALUATE_MAX];
    size_t n = 0, done = 0;
    memset(t, 0, sizeof t);
    rc = evaluate_targets(&o, lg, t, &n, &e);
    int status = rc ? 2 : 0;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = ope_evaluate(lg, &t[i], &o.cfg, &r[i], &e);
        if (!rc) {
            done++;
        } else {
            ope_result_free(&r[i]); /* the warnings made before failing */
            status = 1;
        }
    }
    if (!rc) {
        if (o.json)
            rc = evaluate_json(source, lg, t, r, n, &o.cfg, stdout)
                     ? serr_set(&e, SERR_IO, "JSON output failed")
                     : 0;
        else
            evaluate_table(source, lg, t, r, n, &o.cfg, stdout);
        if (!rc && o.plot)
            rc = evaluate_plot(o.plot, source, t, r, n, &e);
        if (rc)
            status = 1;
    }
    if (rc)
        fprintf(stderr, "bursar-sim evaluate: %s\n", e.msg);
    for (size_t i = 0; i < done; i++)
        ope_result_free(&r[i]);
    for (size_t i = 0; i < EVALUATE_MAX; i++)
        ope_target_free(&t[i]);
    olog_destroy(&lg);
    return status;
}
