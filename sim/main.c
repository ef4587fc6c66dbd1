/*
 * main.c - bursar-sim: exact replay of full-information data through the
 * policies of policies/, with reports and plots. See docs/sim.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "sim/cref.h"
#include "sim/dataset.h"
#include "sim/evaluate.h"
#include "sim/load.h"
#include "sim/plot.h"
#include "policies/policy.h"
#include "sim/replay.h"
#include "sim/report.h"
#include "sim/scenario.h"
#include "sim/serr.h"
#include "sim/vmodel.h"
#include "policies/base.h"

#define MAIN_MAX_POLICIES 32

#ifndef BURSAR_VERSION /* the CMake project's version (sim/CMakeLists.txt) */
#define BURSAR_VERSION "unknown"
#endif

static const char *main_usage =
    "usage: bursar-sim [OPTION]... [--data] PATH...\n"
    "       bursar-sim [OPTION]... --scenario FILE\n"
    "       bursar-sim evaluate --log FILE --policy P [OPTION]...\n"
    "       bursar-sim --help | --version\n"
    "\n"
    "Replays full-information data (every model's outcome per request)\n"
    "through routing policies and reports quality and spend (docs/sim.md).\n"
    "bursar-sim evaluate: off-policy evaluation of a logged decision stream\n"
    "(bursar-sim evaluate --help).\n"
    "\n"
    "Options:\n"
    "\n"
    "Input:\n"
    "  --data PATH...          RouterBench-style .csv, .jsonl, or a directory\n"
    "                          of them (several allowed)\n"
    "  --scenario FILE         a synthetic scenario (JSON, see docs/sim.md)\n"
    "  --scenario-seed N       override the scenario's seed\n"
    "\n"
    "Policy:\n"
    "  --policy LIST           comma list of: ts, ts-budget, uniform,\n"
    "                          eps-greedy, ucb1, cheapest, strongest,\n"
    "                          best-static, fixed:MODEL, all, models\n"
    "                          (default ts-budget)\n"
    "  --budget-per-request U  USD per request (default: none)\n"
    "  --half-life S           forgetting half-life in requests (default off)\n"
    "  --explore-floor F       minimum probability per arm (default 0)\n"
    "  --epsilon E             eps-greedy exploration (default 0.1)\n"
    "  --dual-step ETA         ts-budget dual step (default from policies/)\n"
    "  --mu0 MU                ts-budget initial shadow price\n"
    "  --cost-prior global|bucket  cost prior: model mean cost over the\n"
    "                          whole data (default) or within the bucket\n"
    "  --cooldown S            requests an arm rests after a provider error\n"
    "                          (default 30)\n"
    "\n"
    "Cascade:\n"
    "  --escalations N         escalate up to N times after a failed\n"
    "                          validation, the tried models excluded\n"
    "                          (default 0: one decision per request)\n"
    "  --validator SPEC        what judges each answer: perfect (passes the\n"
    "                          outcomes >= 0.5), noisy:FP,FF (false-pass and\n"
    "                          false-fail probabilities) or column (the\n"
    "                          data's M|verdict columns); the policies then\n"
    "                          learn the verdicts, never the outcome\n"
    "                          (default with --escalations: perfect)\n"
    "\n"
    "Replay:\n"
    "  --seed N                first seed (default 1)\n"
    "  --seeds K               average over seeds N..N+K-1 (default 1)\n"
    "  --passes N              replay the data N times (default 1)\n"
    "  --shuffle / --no-shuffle  reshuffle each pass (default: yes, except\n"
    "                          for scenarios, which are time series)\n"
    "  --frontier[=N]          also sweep N budgets (default 8)\n"
    "\n"
    "Output:\n"
    "  --json                  one JSON object on stdout\n"
    "  --plot FILE             learning curves + frontier, .svg or .png\n"
    "                          (.png: gnuplot with pngcairo, checked first)\n"
    "  --curve-points N        learning-curve checkpoints (default 200)\n"
    "  --trace FILE            per-request trace (CSV) of the first policy\n"
    "                          and seed\n"
    "  --progress / --no-progress  progress on stderr (default: when a tty)\n"
    "  -h, --help              print this text\n"
    "  --version               print the version\n";

typedef struct main_opts {
    const char *data[64];
    size_t n_data;
    const char *scenario;
    unsigned long scenario_seed;
    char policies[1024];
    double budget;
    double half_life;
    double floor;
    double epsilon;
    double dual_step;
    double mu0;
    int cost_prior_bucket;
    double cooldown;
    unsigned escalations;
    const char *validator; /* --validator as given, NULL: none */
    vmodel_t vm;           /* ... parsed (perfect by default) */
    unsigned long seed;
    unsigned seeds;
    unsigned passes;
    int shuffle;
    int frontier;
    int json;
    const char *plot;
    size_t curve_points;
    const char *trace;
    int progress;
    int have_dual_step, have_mu0, have_epsilon;
} main_opts_t;

/* ------------------------------------------------------------ options */

enum {
    MAIN_HELP = 1,    /* main_parse: print the usage and exit 0 */
    MAIN_VERSION = 2, /* main_parse: print the version and exit 0 */
};

/* getopt_long values of the long options (past every character). */
enum main_opt {
    MO_DATA = 256,
    MO_SCENARIO,
    MO_SCENARIO_SEED,
    MO_POLICY,
    MO_BUDGET,
    MO_HALF_LIFE,
    MO_FLOOR,
    MO_EPSILON,
    MO_DUAL_STEP,
    MO_MU0,
    MO_COST_PRIOR,
    MO_COOLDOWN,
    MO_ESCALATIONS,
    MO_VALIDATOR,
    MO_SEED,
    MO_SEEDS,
    MO_PASSES,
    MO_SHUFFLE,
    MO_NO_SHUFFLE,
    MO_FRONTIER,
    MO_JSON,
    MO_PLOT,
    MO_CURVE_POINTS,
    MO_TRACE,
    MO_PROGRESS,
    MO_NO_PROGRESS,
    MO_VERSION,
};

/* --data takes its paths as the arguments that follow it (any argument
 * that is not an option is a path), or one as --data=PATH. */
static const struct option main_options[] = {
    {"data", optional_argument, NULL, MO_DATA},
    {"scenario", required_argument, NULL, MO_SCENARIO},
    {"scenario-seed", required_argument, NULL, MO_SCENARIO_SEED},
    {"policy", required_argument, NULL, MO_POLICY},
    {"budget-per-request", required_argument, NULL, MO_BUDGET},
    {"half-life", required_argument, NULL, MO_HALF_LIFE},
    {"explore-floor", required_argument, NULL, MO_FLOOR},
    {"epsilon", required_argument, NULL, MO_EPSILON},
    {"dual-step", required_argument, NULL, MO_DUAL_STEP},
    {"mu0", required_argument, NULL, MO_MU0},
    {"cost-prior", required_argument, NULL, MO_COST_PRIOR},
    {"cooldown", required_argument, NULL, MO_COOLDOWN},
    {"escalations", required_argument, NULL, MO_ESCALATIONS},
    {"validator", required_argument, NULL, MO_VALIDATOR},
    {"seed", required_argument, NULL, MO_SEED},
    {"seeds", required_argument, NULL, MO_SEEDS},
    {"passes", required_argument, NULL, MO_PASSES},
    {"shuffle", no_argument, NULL, MO_SHUFFLE},
    {"no-shuffle", no_argument, NULL, MO_NO_SHUFFLE},
    {"frontier", optional_argument, NULL, MO_FRONTIER},
    {"json", no_argument, NULL, MO_JSON},
    {"plot", required_argument, NULL, MO_PLOT},
    {"curve-points", required_argument, NULL, MO_CURVE_POINTS},
    {"trace", required_argument, NULL, MO_TRACE},
    {"progress", no_argument, NULL, MO_PROGRESS},
    {"no-progress", no_argument, NULL, MO_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, MO_VERSION},
    {NULL, 0, NULL, 0}};

/* The numeric options and the range each accepts. */
static const struct main_range {
    int opt;
    double lo, hi;
} main_ranges[] = {
    {MO_SCENARIO_SEED, 1, 4e9}, {MO_BUDGET, 0, 1e6},
    {MO_HALF_LIFE, 0, 1e15},    {MO_FLOOR, 0, 1},
    {MO_EPSILON, 0, 1},         {MO_DUAL_STEP, 0, 1e6},
    {MO_MU0, 0, 1e6},           {MO_COOLDOWN, 0, 1e15},
    {MO_SEED, 0, 4e9},          {MO_SEEDS, 1, 10000},
    {MO_PASSES, 1, 100000},     {MO_FRONTIER, 2, 200},
    {MO_CURVE_POINTS, 0, 1e6},  {MO_ESCALATIONS, 0, CREF_MAX_STEPS - 1}};

static void
main_defaults(main_opts_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->policies, sizeof o->policies, "ts-budget");
    o->epsilon = 0.1;
    o->cooldown = ALLOW_DEF_COOLDOWN_S;
    o->seed = 1;
    o->seeds = 1;
    o->passes = 1;
    o->shuffle = -1;
    o->curve_points = 200;
    o->progress = isatty(2);
    vmodel_default(&o->vm);
}

static int
main_add_data(main_opts_t *o, const char *path, serr_t *e)
{
    if (o->n_data >= sizeof o->data / sizeof o->data[0])
        return serr_set(e, SERR_ARG, "too many data paths");
    o->data[o->n_data++] = path;
    return 0;
}

/* Stores the value d of the numeric option c. */
static void
main_set_num(main_opts_t *o, int c, double d)
{
    switch (c) {
    case MO_SCENARIO_SEED:
        o->scenario_seed = (unsigned long)d;
        break;
    case MO_BUDGET:
        o->budget = d;
        break;
    case MO_HALF_LIFE:
        o->half_life = d;
        break;
    case MO_FLOOR:
        o->floor = d;
        break;
    case MO_EPSILON:
        o->epsilon = d;
        o->have_epsilon = 1;
        break;
    case MO_DUAL_STEP:
        o->dual_step = d;
        o->have_dual_step = 1;
        break;
    case MO_MU0:
        o->mu0 = d;
        o->have_mu0 = 1;
        break;
    case MO_COOLDOWN:
        o->cooldown = d;
        break;
    case MO_SEED:
        o->seed = (unsigned long)d;
        break;
    case MO_SEEDS:
        o->seeds = (unsigned)d;
        break;
    case MO_PASSES:
        o->passes = (unsigned)d;
        break;
    case MO_FRONTIER:
        o->frontier = (int)d;
        break;
    case MO_CURVE_POINTS:
        o->curve_points = (size_t)d;
        break;
    case MO_ESCALATIONS:
        o->escalations = (unsigned)d;
        break;
    }
}

/* 1 for the options that count (seeds, passes, ...): whole numbers. */
static int
main_integer(int c)
{
    return c == MO_SCENARIO_SEED || c == MO_SEED || c == MO_SEEDS ||
           c == MO_PASSES || c == MO_FRONTIER || c == MO_CURVE_POINTS ||
           c == MO_ESCALATIONS;
}

/* A numeric option: its value checked against its range (main_ranges). */
static int
main_num(main_opts_t *o, int c, const char *val, serr_t *e)
{
    char name[BURSAR_NAME_MAX];
    serr_opt_name(main_options, c, name, sizeof name);
    for (size_t i = 0; i < sizeof main_ranges / sizeof main_ranges[0]; i++) {
        const struct main_range *r = &main_ranges[i];
        double d;
        if (r->opt != c)
            continue;
        int rc = serr_parse_num(name, val, r->lo, r->hi, &d, e);
        if (!rc && main_integer(c) && d != floor(d))
            rc = serr_set(e, SERR_ARG, "%s: '%s' is not a whole number", name,
                          val);
        if (!rc)
            main_set_num(o, c, d);
        return rc;
    }
    return serr_set(e, SERR_ARG, "%s: not a numeric option", name);
}

/* One getopt_long answer c with its value val (NULL if none). */
static int
main_option(main_opts_t *o, int c, const char *val, serr_t *e)
{
    switch (c) {
    case 1: /* an argument that is not an option: a data path */
        return main_add_data(o, val, e);
    case MO_DATA:
        return val ? main_add_data(o, val, e) : 0;
    case MO_SCENARIO:
        o->scenario = val;
        return 0;
    case MO_POLICY:
        snprintf(o->policies, sizeof o->policies, "%s", val);
        return 0;
    case MO_VALIDATOR:
        o->validator = val;
        return vmodel_parse(val, &o->vm, e);
    case MO_COST_PRIOR:
        if (strcmp(val, "global") != 0 && strcmp(val, "bucket") != 0)
            return serr_set(e, SERR_ARG,
                            "--cost-prior: '%s' is not global or bucket", val);
        o->cost_prior_bucket = strcmp(val, "bucket") == 0;
        return 0;
    case MO_SHUFFLE:
    case MO_NO_SHUFFLE:
        o->shuffle = c == MO_SHUFFLE;
        return 0;
    case MO_FRONTIER:
        o->frontier = 8;
        return val ? main_num(o, c, val, e) : 0;
    case MO_JSON:
        o->json = 1;
        return 0;
    case MO_PLOT:
        o->plot = val;
        return 0;
    case MO_TRACE:
        o->trace = val;
        return 0;
    case MO_PROGRESS:
    case MO_NO_PROGRESS:
        o->progress = c == MO_PROGRESS;
        return 0;
    default:
        return main_num(o, c, val, e);
    }
}

/* What needs the whole command line. */
static int
main_validate(const main_opts_t *o, serr_t *e)
{
    if (!o->n_data && !o->scenario)
        return serr_set(e, SERR_ARG,
                        "no input: give --data PATH or --scenario FILE "
                        "(see --help)");
    /* the tools a plot needs, before any data is read or replayed */
    return o->plot ? plot_check(o->plot, e) : 0;
}

/* Returns 0, MAIN_HELP, MAIN_VERSION or SERR_ARG with a message. */
static int
main_parse(int argc, char **argv, main_opts_t *o, serr_t *e)
{
    main_defaults(o);
    optind = 0; /* a fresh scan (glibc, musl) */
    opterr = 0;
    int c, rc = 0;
    /* "-": the arguments that are not options come in order, as 1 */
    while (!rc && (c = bursar_getopt_long(argc, argv, "-:h", main_options,
                                          NULL)) != -1) {
        if (c == 'h')
            return MAIN_HELP;
        if (c == MO_VERSION)
            return MAIN_VERSION;
        if (c == '?' || c == ':')
            return serr_opt_error(c, argv, main_options, e);
        rc = main_option(o, c, optarg, e);
    }
    while (!rc && optind < argc) /* after "--": data paths */
        rc = main_add_data(o, argv[optind++], e);
    return rc ? rc : main_validate(o, e);
}

/* ------------------------------------------------------------ policies */

typedef struct main_policy {
    char name[96];
    policy_kind_t kind;
    int model; /* fixed */
} main_policy_t;

/* Expands the comma list: "all" = every baseline, "models" = fixed:M for
 * every model. */
static int
main_policies(const char *list, const dataset_t *ds, main_policy_t *out,
              size_t *n_out, serr_t *e)
{
    static const char *all[] = {"ts-budget",  "ts",         "uniform",
                                "eps-greedy", "ucb1",       "cheapest",
                                "strongest",  "best-static"};
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    size_t n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        const char *names[64];
        char fixed[64][96];
        size_t k = 0;
        if (strcmp(tok, "all") == 0) {
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                names[k++] = all[i];
        } else if (strcmp(tok, "models") == 0) {
            for (size_t m = 0; m < ds->n_models && k < 64; m++) {
                snprintf(fixed[k], sizeof fixed[k], "fixed:%s", ds->model[m]);
                names[k] = fixed[k];
                k++;
            }
        } else {
            names[k++] = tok;
        }
        for (size_t i = 0; i < k; i++) {
            if (n >= MAIN_MAX_POLICIES)
                return serr_set(e, SERR_ARG, "--policy: more than %d",
                                MAIN_MAX_POLICIES);
            main_policy_t *p = &out[n];
            const char *nm = names[i];
            const char *model = NULL;
            snprintf(p->name, sizeof p->name, "%s", nm);
            p->model = -1;
            if (strcmp(nm, "best-static") == 0)
                nm = "static";
            if (policy_kind_parse(nm, &p->kind, &model) != 0)
                return serr_set(e, SERR_ARG,
                                "--policy: unknown policy '%s' (ts, "
                                "ts-budget, uniform, eps-greedy, ucb1, "
                                "cheapest, strongest, best-static, "
                                "fixed:MODEL, all, models)",
                                names[i]);
            if (p->kind == POLICY_FIXED) {
                p->model = model ? dataset_find_model(ds, model) : -1;
                if (p->model < 0)
                    return serr_set(e, SERR_ARG,
                                    "--policy: model '%s' is not in the data",
                                    model ? model : "");
            }
            n++;
        }
    }
    if (!n)
        return serr_set(e, SERR_ARG, "--policy: empty list");
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------- running */

typedef struct main_progress {
    const char *policy;
    unsigned run, runs;
} main_progress_t;

static void
main_progress_cb(void *ctx, size_t done, size_t total)
{
    const main_progress_t *p = ctx;
    fprintf(stderr, "\r%-24s run %u/%u  %3.0f%%", p->policy, p->run, p->runs,
            100.0 * (double)done / (double)total);
    if (done == total && p->run == p->runs)
        fprintf(stderr, "\n");
    fflush(stderr);
}

static void
main_config(const main_opts_t *o, const main_policy_t *mp, double budget,
            replay_config_t *c)
{
    replay_config_default(c);
    c->params.kind = mp->kind;
    c->params.fixed_model = mp->model;
    c->params.explore_floor = o->floor;
    if (o->have_epsilon)
        c->params.epsilon = o->epsilon;
    if (o->have_dual_step)
        c->params.dual_step = o->dual_step;
    if (o->have_mu0)
        c->params.mu0 = o->mu0;
    c->budget_per_request = budget;
    c->passes = o->passes;
    c->half_life_s = o->half_life;
    c->shuffle = o->shuffle;
    c->cost_prior_bucket = o->cost_prior_bucket;
    c->allow.health.cooldown_s = o->cooldown;
    c->curve_points = o->curve_points;
}

/* The validator of one run: its model, the data and the run's seed. */
typedef struct main_vctx {
    const vmodel_t *vm;
    const dataset_t *ds;
    unsigned long seed;
} main_vctx_t;

static int
main_verdict(void *ctx, size_t row, int m, unsigned pass)
{
    const main_vctx_t *v = ctx;
    return vmodel_draw(v->vm, v->ds, row, m, v->seed, pass);
}

/* Runs one policy over all seeds at one budget. runs[] receives the
 * results (caller destroys). */
static int
main_run_seeds(const main_opts_t *o, const dataset_t *ds,
               const main_policy_t *mp, double budget, int want_trace,
               replay_result_t **runs, serr_t *e)
{
    main_progress_t pr = {mp->name, 0, o->seeds};
    for (unsigned s = 0; s < o->seeds; s++) {
        replay_config_t c;
        main_config(o, mp, budget, &c);
        c.seed = o->seed + s;
        main_vctx_t vc = {&o->vm, ds, c.seed};
        c.escalations = o->escalations;
        if (o->validator || o->escalations) {
            c.validated = 1;
            c.verdict = main_verdict;
            c.verdict_ctx = &vc;
        }
        c.trace = want_trace && s == 0;
        if (o->progress) {
            pr.run = s + 1;
            c.progress = main_progress_cb;
            c.progress_ctx = &pr;
        }
        int rc = replay_run(ds, &c, &runs[s], e);
        if (rc) {
            for (unsigned j = 0; j < s; j++)
                replay_result_destroy(&runs[j]);
            return rc;
        }
    }
    return 0;
}

static int
main_write_trace(const char *path, const dataset_t *ds,
                 const replay_result_t *r, serr_t *e)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return serr_set(e, SERR_IO, "%s: cannot write: %s", path,
                        strerror(errno));
    fprintf(f, "t,bucket,model,outcome,cost_usd,steps\n");
    for (size_t t = 0; t < r->requests; t++)
        fprintf(f, "%zu,%s,%s,%g,%.8g,%u\n", t, ds->bucket[r->trace_bucket[t]],
                r->trace_model[t] >= 0 ? ds->model[r->trace_model[t]] : "",
                r->trace_outcome[t], r->trace_cost[t],
                (unsigned)r->trace_steps[t]);
    if (fclose(f) != 0)
        return serr_set(e, SERR_IO, "%s: write error", path);
    return 0;
}

/* 1 for the policies that pace their spending to the budget (every
 * policy sees it, as in bursard, but the others only stop when it runs
 * out). */
static int
main_paces(const main_opts_t *o, policy_kind_t k)
{
    /* in a cascade best-static replays single-model shares at every step:
     * it does not pace the escalations' spend */
    return o->budget > 0 &&
           (k == POLICY_TS_BUDGET || (k == POLICY_STATIC && !o->escalations));
}

static int
main_frontier(const main_opts_t *o, const dataset_t *ds, report_t *rep,
              const main_policy_t *mp, size_t n_mp, serr_t *e)
{
    /* budgets from just above the cheapest static choice to where the
     * budget no longer binds (the best static policy without a budget) */
    double q, lo, hi, hi_c = 0.0;
    replay_best_static(ds, 1e-300, &q, &lo, NULL);
    replay_best_static(ds, 0.0, &q, &hi, NULL);
    if (rep->cascade_at) { /* ... or the cascade reference, if dearer;
                              from its cheapest chain, below which no
                              cascade can stay */
        double lo_c = 0.0;
        rep->cascade_at(rep->cascade_ctx, 1e-300, &q, &lo_c);
        rep->cascade_at(rep->cascade_ctx, 0.0, &q, &hi_c);
        if (lo_c > lo)
            lo = lo_c;
    }
    if (hi_c > hi)
        hi = hi_c;
    if (!(hi > lo) || !(lo > 0))
        lo = hi / 50.0;
    if (!(hi > 0))
        return 0;
    lo *= 1.05;
    size_t nsf = 60;
    rep->sf_budget = bursar_malloc(nsf * sizeof(double));
    rep->sf_q = bursar_malloc(nsf * sizeof(double));
    rep->sf_c = bursar_malloc(nsf * sizeof(double));
    if (rep->cascade_at) {
        rep->cf_budget = bursar_malloc(nsf * sizeof(double));
        rep->cf_q = bursar_malloc(nsf * sizeof(double));
        rep->cf_c = bursar_malloc(nsf * sizeof(double));
        rep->n_cf = nsf;
    }
    for (size_t j = 0; j < nsf; j++) {
        double b = lo * pow(hi / lo, (double)j / (double)(nsf - 1));
        rep->sf_budget[j] = b;
        replay_best_static(ds, b, &rep->sf_q[j], &rep->sf_c[j], NULL);
        if (rep->cascade_at) {
            rep->cf_budget[j] = b;
            rep->cascade_at(rep->cascade_ctx, b, &rep->cf_q[j], &rep->cf_c[j]);
        }
    }
    rep->n_sf = nsf;
    if (!o->frontier)
        return 0;
    replay_result_t **runs = bursar_calloc(o->seeds, sizeof *runs);
    for (size_t i = 0; i < n_mp; i++) {
        if (mp[i].kind != POLICY_TS_BUDGET && mp[i].kind != POLICY_STATIC)
            continue;
        for (int j = 0; j < o->frontier; j++) {
            double b = lo * pow(hi / lo, (double)j / (double)(o->frontier - 1));
            int rc = main_run_seeds(o, ds, &mp[i], b, 0, runs, e);
            if (rc) {
                free(runs);
                return rc;
            }
            report_add_front(&rep->pol[i], b, runs, o->seeds);
            for (unsigned s = 0; s < o->seeds; s++)
                replay_result_destroy(&runs[s]);
        }
    }
    free(runs);
    return 0;
}

/* Reads the inputs into a new dataset (*out, finished); source receives
 * their names for the report. */
static int
main_load(const main_opts_t *o, dataset_t **out, char *source, size_t cap,
          serr_t *e)
{
    dataset_t *ds = dataset_new();
    size_t pos = 0;
    int rc = 0;
    if (o->scenario) {
        rc = scenario_load(ds, o->scenario, o->scenario_seed, e);
        pos += (size_t)snprintf(source, cap, "scenario %s", o->scenario);
    }
    for (size_t i = 0; !rc && i < o->n_data; i++) {
        rc = load_path(ds, o->data[i], e);
        if (pos < cap)
            pos += (size_t)snprintf(source + pos, cap - pos, "%s%s",
                                    pos ? " " : "", o->data[i]);
    }
    if (!rc && !ds->n_rows)
        rc = serr_set(e, SERR_EMPTY, "no requests in the input");
    if (rc) {
        dataset_destroy(&ds);
        return rc;
    }
    dataset_finish(ds);
    *out = ds;
    return 0;
}

/* The report's header and references: best static policy, oracle. */
static void
main_report_init(report_t *rep, const main_opts_t *o, const dataset_t *ds,
                 const char *source)
{
    memset(rep, 0, sizeof *rep);
    rep->ds = ds;
    rep->source = source;
    rep->passes = o->passes;
    rep->seeds = o->seeds;
    rep->seed = o->seed;
    rep->budget = o->budget;
    rep->half_life_s = o->half_life;
    rep->explore_floor = o->floor;
    rep->escalations = o->escalations;
    rep->validator = o->validator;
    rep->cascade_q = rep->cascade_c = NAN;
    replay_best_static(ds, o->budget, &rep->static_q, &rep->static_c, NULL);
    dataset_oracle(ds, &rep->oracle_q, &rep->oracle_c);
}

static int
main_cref_at(const void *ctx, double budget, double *q, double *c)
{
    int rc = cref_solve(ctx, budget, q, c);
    if (rc < 0)
        *q = *c = NAN;
    return rc;
}

/* The orders of the cascade reference's solution at the run's budget, one
 * line per order with its share of the bucket (owned text). */
static char *
main_cref_mix(const cref_t *cr, const dataset_t *ds, double budget)
{
    size_t cap = ds->n_buckets + 1; /* one order per bucket, one more */
    cref_pick_t *picks = bursar_calloc(cap, sizeof *picks);
    int n = cref_picks(cr, budget, picks, cap);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        abort(); /* out of memory, as bursar_malloc */
    for (int i = 0; i < n && (size_t)i < cap; i++) {
        const cref_pick_t *p = &picks[i];
        fprintf(f, "  %-16s %5.1f%%  ", ds->bucket[p->bucket],
                100.0 * p->weight);
        for (unsigned k = 0; k < p->n_steps; k++)
            fprintf(f, "%s%s", k ? " > " : "", ds->model[p->model[k]]);
        fprintf(f, "  (quality %.4f, %.6f USD)\n", p->quality, p->cost);
    }
    if (fclose(f) != 0 || !out)
        abort();
    free(picks);
    return out;
}

/* In a cascade (escalations or a validator): the hindsight cascade
 * reference at the run's budget, into rep; *cr receives it. */
static int
main_cascade(const main_opts_t *o, const dataset_t *ds, report_t *rep,
             cref_t **cr, serr_t *e)
{
    *cr = NULL;
    if (!o->escalations && !o->validator)
        return 0;
    int rc = vmodel_check(&o->vm, ds, e);
    if (rc)
        return rc;
    serr_t ce = {0, ""};
    *cr = cref_build(ds, &o->vm, o->escalations + 1, &ce);
    if (!*cr) { /* too many orders: the replay runs without it */
        fprintf(stderr, "bursar-sim: warning: %s; the replay runs without it\n",
                ce.msg);
        return 0;
    }
    if (cref_solve(*cr, o->budget, &rep->cascade_q, &rep->cascade_c) < 0) {
        cref_destroy(cr);
        rep->cascade_q = rep->cascade_c = NAN;
        return serr_set(e, SERR_POLICY, "cascade reference: the LP failed");
    }
    rep->cascade_at = main_cref_at;
    rep->cascade_ctx = *cr;
    rep->cascade_mix = main_cref_mix(*cr, ds, o->budget);
    return 0;
}

/* Every policy over every seed at the run's budget, into rep; the trace
 * of the first policy's first seed when asked. */
static int
main_run_policies(const main_opts_t *o, const dataset_t *ds,
                  const main_policy_t *mp, size_t n_mp, report_t *rep,
                  serr_t *e)
{
    int rc = 0;
    replay_result_t **runs = bursar_calloc(o->seeds, sizeof *runs);
    for (size_t i = 0; i < n_mp; i++) {
        int want_trace = o->trace && i == 0;
        rc = main_run_seeds(o, ds, &mp[i], o->budget, want_trace, runs, e);
        if (rc)
            break;
        if (want_trace)
            rc = main_write_trace(o->trace, ds, runs[0], e);
        report_add(rep, mp[i].name, mp[i].kind, main_paces(o, mp[i].kind), runs,
                   o->seeds);
        for (unsigned s = 0; s < o->seeds; s++)
            replay_result_destroy(&runs[s]);
        if (rc)
            break;
    }
    free(runs);
    return rc;
}

/* The table or the JSON object on stdout, then the plot. */
static int
main_output(const main_opts_t *o, const report_t *rep, serr_t *e)
{
    int rc = 0;
    if (o->json)
        rc = report_json(rep, stdout)
                 ? serr_set(e, SERR_IO, "JSON output failed")
                 : 0;
    else
        report_table(rep, stdout);
    if (!rc && o->plot)
        rc = plot_write(rep, o->plot, e);
    return rc;
}

int
main(int argc, char **argv)
{
    /* GSL's default handler aborts; every GSL result used is checked */
    gsl_set_error_handler_off();
    if (argc > 1 && strcmp(argv[1], "evaluate") == 0)
        return evaluate_main(argc - 1, argv + 1);
    serr_t e = {0, ""};
    main_opts_t o;
    int rc = main_parse(argc, argv, &o, &e);
    if (rc == MAIN_HELP || rc == MAIN_VERSION) {
        fputs(rc == MAIN_HELP ? main_usage : "bursar-sim " BURSAR_VERSION "\n",
              stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        return 2;
    }
    dataset_t *ds = NULL;
    char source[1024] = "";
    if ((rc = main_load(&o, &ds, source, sizeof source, &e)) != 0) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        return 1;
    }
    main_policy_t mp[MAIN_MAX_POLICIES];
    size_t n_mp = 0;
    if ((rc = main_policies(o.policies, ds, mp, &n_mp, &e)) != 0) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        dataset_destroy(&ds);
        return 2;
    }
    report_t rep;
    cref_t *cr = NULL;
    main_report_init(&rep, &o, ds, source);
    rc = main_cascade(&o, ds, &rep, &cr, &e);
    if (!rc)
        rc = main_run_policies(&o, ds, mp, n_mp, &rep, &e);
    if (!rc)
        rc = main_frontier(&o, ds, &rep, mp, n_mp, &e);
    if (!rc)
        rc = main_output(&o, &rep, &e);
    if (rc)
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
    report_destroy_contents(&rep);
    cref_destroy(&cr);
    dataset_destroy(&ds);
    return rc ? 1 : 0;
}
