/*
 * main.c - bursar-sim: exact replay of full-information data through the
 * policies of policies/, with reports and plots. See docs/sim.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "evaluate.h"
#include "load.h"
#include "plot.h"
#include "policy.h"
#include "replay.h"
#include "report.h"
#include "scenario.h"
#include "serr.h"
#include "base.h"

#define MAIN_MAX_POLICIES 32

static const char *main_usage =
    "usage: bursar-sim [options] [--data] PATH...\n"
    "       bursar-sim evaluate --log FILE --policy P [options]  (off-policy\n"
    "       evaluation of a logged decision stream; evaluate --help)\n"
    "\n"
    "Replays full-information data (every model's outcome per request)\n"
    "through routing policies and reports quality and spend.\n"
    "\n"
    "input\n"
    "  --data PATH...          RouterBench-style .csv, .jsonl, or a directory\n"
    "                          of them (several allowed)\n"
    "  --scenario FILE         a synthetic scenario (JSON, see docs/sim.md)\n"
    "  --scenario-seed N       override the scenario's seed\n"
    "policy\n"
    "  --policy LIST           comma list of: ts, ts-budget, uniform,\n"
    "                          eps-greedy, ucb1, cheapest, strongest,\n"
    "                          best-static, fixed:MODEL, all, models\n"
    "                          (default ts-budget)\n"
    "  --budget-per-request U  USD per request (default: none)\n"
    "  --budget-all            pass the budget to every policy, not only\n"
    "                          ts-budget and best-static\n"
    "  --half-life S           forgetting half-life in requests (default off)\n"
    "  --explore-floor F       minimum probability per arm (default 0)\n"
    "  --epsilon E             eps-greedy exploration (default 0.1)\n"
    "  --dual-step ETA         ts-budget dual step (default from policies/)\n"
    "  --mu0 MU                ts-budget initial shadow price\n"
    "  --cost-prior global|bucket  cost prior: model mean cost over the\n"
    "                          whole data (default) or within the bucket\n"
    "  --cooldown S            requests an arm rests after a provider error\n"
    "                          (default 30)\n"
    "replay\n"
    "  --seed N                first seed (default 1)\n"
    "  --seeds K               average over seeds N..N+K-1 (default 1)\n"
    "  --passes N              replay the data N times (default 1)\n"
    "  --shuffle / --no-shuffle  reshuffle each pass (default: yes, except\n"
    "                          for scenarios, which are time series)\n"
    "  --frontier[=N]          also sweep N budgets (default 8)\n"
    "output\n"
    "  --json                  one JSON object on stdout\n"
    "  --plot FILE             learning curves + frontier, .svg or .png\n"
    "  --curve-points N        learning-curve checkpoints (default 200)\n"
    "  --trace FILE            per-request trace (CSV) of the first policy\n"
    "                          and seed\n"
    "  --progress              progress on stderr (default: when a tty)\n"
    "  -h, --help\n";

typedef struct main_opts {
    const char *data[64];
    size_t n_data;
    const char *scenario;
    unsigned long scenario_seed;
    char policies[1024];
    double budget;
    int budget_all;
    double half_life;
    double floor;
    double epsilon;
    double dual_step;
    double mu0;
    int cost_prior_bucket;
    double cooldown;
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

static int
main_parse(int argc, char **argv, main_opts_t *o, serr_t *e)
{
    memset(o, 0, sizeof *o);
    snprintf(o->policies, sizeof o->policies, "ts-budget");
    o->epsilon = 0.1;
    o->cooldown = 30;
    o->seed = 1;
    o->seeds = 1;
    o->passes = 1;
    o->shuffle = -1;
    o->curve_points = 200;
    o->progress = isatty(2);
    int in_data = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
            if (strcmp(a, "-h") == 0)
                return 1;
            if (o->n_data >= 64)
                return serr_set(e, SERR_ARG, "too many data paths");
            o->data[o->n_data++] = a;
            (void)in_data;
            continue;
        }
        in_data = 0;
        if (serr_opt_split(a, name, sizeof name, &val, e))
            return SERR_ARG;
#define FLAG(n) (strcmp(name, n) == 0)
#define NEEDVAL()                                                              \
    do {                                                                       \
        if (!val) {                                                            \
            if (i + 1 >= argc)                                                 \
                return serr_set(e, SERR_ARG, "%s needs a value", name);        \
            val = argv[++i];                                                   \
        }                                                                      \
    } while (0)
        double d;
        int rc = 0;
        if (FLAG("--help")) {
            return 1;
        } else if (FLAG("--data")) {
            if (val) {
                o->data[o->n_data++] = val;
            } else {
                /* takes every following argument up to the next option */
                while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                    if (o->n_data >= 64)
                        return serr_set(e, SERR_ARG, "too many data paths");
                    o->data[o->n_data++] = argv[++i];
                }
            }
        } else if (FLAG("--scenario")) {
            NEEDVAL();
            o->scenario = val;
        } else if (FLAG("--scenario-seed")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 1, 4e9, &d, e);
            o->scenario_seed = (unsigned long)d;
        } else if (FLAG("--policy")) {
            NEEDVAL();
            snprintf(o->policies, sizeof o->policies, "%s", val);
        } else if (FLAG("--budget-per-request")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e6, &o->budget, e);
        } else if (FLAG("--budget-all")) {
            o->budget_all = 1;
        } else if (FLAG("--half-life")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e15, &o->half_life, e);
        } else if (FLAG("--explore-floor")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1, &o->floor, e);
        } else if (FLAG("--epsilon")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1, &o->epsilon, e);
            o->have_epsilon = 1;
        } else if (FLAG("--dual-step")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e6, &o->dual_step, e);
            o->have_dual_step = 1;
        } else if (FLAG("--mu0")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e6, &o->mu0, e);
            o->have_mu0 = 1;
        } else if (FLAG("--cost-prior")) {
            NEEDVAL();
            if (strcmp(val, "global") == 0)
                o->cost_prior_bucket = 0;
            else if (strcmp(val, "bucket") == 0)
                o->cost_prior_bucket = 1;
            else
                rc =
                    serr_set(e, SERR_ARG,
                             "--cost-prior: '%s' is not global or bucket", val);
        } else if (FLAG("--cooldown")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e15, &o->cooldown, e);
        } else if (FLAG("--seed")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 4e9, &d, e);
            o->seed = (unsigned long)d;
        } else if (FLAG("--seeds")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 1, 10000, &d, e);
            o->seeds = (unsigned)d;
        } else if (FLAG("--passes")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 1, 100000, &d, e);
            o->passes = (unsigned)d;
        } else if (FLAG("--shuffle")) {
            o->shuffle = 1;
        } else if (FLAG("--no-shuffle")) {
            o->shuffle = 0;
        } else if (FLAG("--frontier")) {
            o->frontier = 8;
            if (val) {
                rc = serr_parse_num(name, val, 2, 200, &d, e);
                o->frontier = (int)d;
            }
        } else if (FLAG("--json")) {
            o->json = 1;
        } else if (FLAG("--plot")) {
            NEEDVAL();
            o->plot = val;
        } else if (FLAG("--curve-points")) {
            NEEDVAL();
            rc = serr_parse_num(name, val, 0, 1e6, &d, e);
            o->curve_points = (size_t)d;
        } else if (FLAG("--trace")) {
            NEEDVAL();
            o->trace = val;
        } else if (FLAG("--progress")) {
            o->progress = 1;
        } else if (FLAG("--no-progress")) {
            o->progress = 0;
        } else {
            return serr_set(e, SERR_ARG, "unknown option '%s' (see --help)", a);
        }
#undef FLAG
#undef NEEDVAL
        if (rc)
            return rc;
    }
    if (o->plot) {
        size_t n = strlen(o->plot);
        if (n < 5 || (strcmp(o->plot + n - 4, ".svg") != 0 &&
                      strcmp(o->plot + n - 4, ".png") != 0))
            return serr_set(e, SERR_ARG,
                            "--plot %s: the file must end in .svg (built in) "
                            "or .png (gnuplot)",
                            o->plot);
    }
    if (!o->n_data && !o->scenario)
        return serr_set(e, SERR_ARG,
                        "no input: give --data PATH or --scenario FILE "
                        "(see --help)");
    return 0;
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
    (void)o->budget_all; /* every policy sees the budget (replay.h) */
    c->passes = o->passes;
    c->half_life_s = o->half_life;
    c->shuffle = o->shuffle;
    c->cost_prior_bucket = o->cost_prior_bucket;
    c->allow.health.cooldown_s = o->cooldown;
    c->curve_points = o->curve_points;
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
    fprintf(f, "t,bucket,model,outcome,cost_usd\n");
    for (size_t t = 0; t < r->requests; t++)
        fprintf(f, "%zu,%s,%s,%g,%.8g\n", t, ds->bucket[r->trace_bucket[t]],
                r->trace_model[t] >= 0 ? ds->model[r->trace_model[t]] : "",
                r->trace_outcome[t], r->trace_cost[t]);
    if (fclose(f) != 0)
        return serr_set(e, SERR_IO, "%s: write error", path);
    return 0;
}

static int
main_sees_budget(const main_opts_t *o, policy_kind_t k)
{
    return o->budget > 0 &&
           (o->budget_all || k == POLICY_TS_BUDGET || k == POLICY_STATIC);
}

static int
main_frontier(const main_opts_t *o, const dataset_t *ds, report_t *rep,
              const main_policy_t *mp, size_t n_mp, serr_t *e)
{
    /* budgets from just above the cheapest static choice to where the
     * budget no longer binds (the best static policy without a budget) */
    double q, lo, hi;
    replay_best_static(ds, 1e-300, &q, &lo, NULL);
    replay_best_static(ds, 0.0, &q, &hi, NULL);
    if (!(hi > lo) || !(lo > 0))
        lo = hi / 50.0;
    if (!(hi > 0))
        return 0;
    lo *= 1.05;
    size_t nsf = 60;
    rep->sf_budget = bursar_malloc(nsf * sizeof(double));
    rep->sf_q = bursar_malloc(nsf * sizeof(double));
    rep->sf_c = bursar_malloc(nsf * sizeof(double));
    for (size_t j = 0; j < nsf; j++) {
        double b = lo * pow(hi / lo, (double)j / (double)(nsf - 1));
        rep->sf_budget[j] = b;
        replay_best_static(ds, b, &rep->sf_q[j], &rep->sf_c[j], NULL);
    }
    rep->n_sf = nsf;
    if (!o->frontier)
        return 0;
    replay_result_t **runs = bursar_calloc(o->seeds, sizeof *runs);
    for (size_t i = 0; i < n_mp; i++) {
        if (!o->budget_all && mp[i].kind != POLICY_TS_BUDGET &&
            mp[i].kind != POLICY_STATIC)
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

int
main(int argc, char **argv)
{
    serr_t e = {0, ""};
    main_opts_t o;
    if (argc > 1 && strcmp(argv[1], "evaluate") == 0)
        return evaluate_main(argc - 1, argv + 1);
    int rc = main_parse(argc, argv, &o, &e);
    if (rc == 1) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        return 2;
    }

    dataset_t *ds = dataset_new();
    char source[1024] = "";
    size_t pos = 0;
    if (o.scenario) {
        rc = scenario_load(ds, o.scenario, o.scenario_seed, &e);
        pos +=
            (size_t)snprintf(source, sizeof source, "scenario %s", o.scenario);
    }
    for (size_t i = 0; !rc && i < o.n_data; i++) {
        rc = load_path(ds, o.data[i], &e);
        if (pos < sizeof source)
            pos += (size_t)snprintf(source + pos, sizeof source - pos, "%s%s",
                                    pos ? " " : "", o.data[i]);
    }
    if (!rc && !ds->n_rows)
        rc = serr_set(&e, SERR_EMPTY, "no requests in the input");
    if (rc) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        dataset_destroy(&ds);
        return 1;
    }
    dataset_finish(ds);

    main_policy_t mp[MAIN_MAX_POLICIES];
    size_t n_mp = 0;
    rc = main_policies(o.policies, ds, mp, &n_mp, &e);
    if (rc) {
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
        dataset_destroy(&ds);
        return 2;
    }

    report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.ds = ds;
    rep.source = source;
    rep.passes = o.passes;
    rep.seeds = o.seeds;
    rep.seed = o.seed;
    rep.budget = o.budget;
    rep.half_life_s = o.half_life;
    rep.explore_floor = o.floor;
    replay_best_static(ds, o.budget, &rep.static_q, &rep.static_c, NULL);
    dataset_oracle(ds, &rep.oracle_q, &rep.oracle_c);

    replay_result_t **runs = bursar_calloc(o.seeds, sizeof *runs);
    for (size_t i = 0; i < n_mp; i++) {
        int want_trace = o.trace && i == 0;
        rc = main_run_seeds(&o, ds, &mp[i], o.budget, want_trace, runs, &e);
        if (rc)
            break;
        if (want_trace)
            rc = main_write_trace(o.trace, ds, runs[0], &e);
        report_add(&rep, mp[i].name, mp[i].kind,
                   main_sees_budget(&o, mp[i].kind), runs, o.seeds);
        for (unsigned s = 0; s < o.seeds; s++)
            replay_result_destroy(&runs[s]);
        if (rc)
            break;
    }
    free(runs);
    if (!rc)
        rc = main_frontier(&o, ds, &rep, mp, n_mp, &e);
    if (!rc) {
        if (o.json)
            rc = report_json(&rep, stdout)
                     ? serr_set(&e, SERR_IO, "JSON output failed")
                     : 0;
        else
            report_table(&rep, stdout);
    }
    if (!rc && o.plot)
        rc = plot_write(&rep, o.plot, &e);
    if (rc)
        fprintf(stderr, "bursar-sim: %s\n", e.msg);
    report_destroy_contents(&rep);
    dataset_destroy(&ds);
    return rc ? 1 : 0;
}
