/*
 * bench_sim.c - replay throughput of bursar-sim.
 *
 *   bench_sim [REQUESTS] [ARMS]
 *
 * Builds a synthetic full-information dataset in memory (3 buckets, ARMS
 * models, default 11), replays it once through ts-budget under a binding
 * budget, and prints the decisions per second of the whole replay loop
 * (choose + reward + cost + pacing + bookkeeping) beside the cost of the
 * Beta draws alone (ARMS draws per decision) measured in the same run.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "bench/bench_cli.h"
#include "sim/dataset.h"
#include "sim/replay.h"

static double
bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *bench_usage =
    "usage: bench_sim [REQUESTS >= 1] [ARMS 1..64]\n";

/* n requests over 3 buckets, every arm's outcome and cost known: arm m
 * succeeds with probability 0.4 + 0.5 m / arms (+ 0.03 per bucket) and
 * costs 0.0001 x 1.5^m, so dearer is better. */
static dataset_t *
bench_dataset(size_t n, int arms, gsl_rng *rng)
{
    dataset_t *ds = dataset_new();
    const char *buckets[] = {"code", "extraction", "summarize"};
    for (int b = 0; b < 3; b++)
        dataset_bucket_id(ds, buckets[b]);
    for (int m = 0; m < arms; m++) {
        char name[32];
        snprintf(name, sizeof name, "model-%02d", m);
        dataset_model_id(ds, name);
    }
    for (size_t i = 0; i < n; i++) {
        int b = (int)gsl_rng_uniform_int(rng, 3);
        dataset_add_row(ds, b);
        for (int m = 0; m < arms; m++) {
            double p = 0.4 + 0.5 * (double)m / arms + 0.03 * b;
            double c = 0.0001 * pow(1.5, m); /* dearer = better */
            dataset_set(ds, m, DATASET_OK, gsl_rng_uniform(rng) < p, c);
        }
    }
    dataset_finish(ds);
    return ds;
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv, NULL) == 0)
        return 0;
    gsl_set_error_handler_off(); /* GSL errors are results, not aborts */
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        fputs(bench_usage, c == 'h' ? stdout : stderr);
        return c == 'h' ? 0 : 2;
    }
    size_t n = optind < argc ? (size_t)atol(argv[optind]) : 1000000;
    int arms = optind + 1 < argc ? atoi(argv[optind + 1]) : 11;
    if (n < 1 || arms < 1 || arms > 64) {
        fputs(bench_usage, stderr);
        return 2;
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return 1;
    gsl_rng_set(rng, 1);
    dataset_t *ds = bench_dataset(n, arms, rng);

    replay_config_t cfg;
    replay_config_default(&cfg);
    cfg.params.kind = POLICY_TS_BUDGET;
    cfg.budget_per_request = 0.002;
    cfg.curve_points = 0;
    serr_t e = {0, ""};
    replay_result_t *r = NULL;
    double t0 = bench_now();
    if (replay_run(ds, &cfg, &r, &e) != 0) {
        fprintf(stderr, "bench_sim: %s\n", e.msg);
        return 1;
    }
    double t_replay = bench_now() - t0;

    double sink = 0.0;
    t0 = bench_now();
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < arms; m++)
            sink += gsl_ran_beta(rng, 1.0 + (double)(i % 97), 1.0 + m);
    double t_beta = bench_now() - t0;

    printf("requests:             %zu\n", n);
    printf("arms:                 %d\n", arms);
    printf("replay (ts-budget):   %.0f decisions/s  (%.3f us/decision)\n",
           (double)n / t_replay, 1e6 * t_replay / (double)n);
    printf("beta draws alone:     %.0f decisions/s  (%.3f us/decision, %d "
           "draws each)\n",
           (double)n / t_beta, 1e6 * t_beta / (double)n, arms);
    printf("quality:              %.4f\n", r->quality);
    printf("spend / budget:       %.4f\n", r->spend_ratio);
    if (sink < 0)
        printf("%g\n", sink);
    replay_result_destroy(&r);
    dataset_destroy(&ds);
    gsl_rng_free(rng);
    return 0;
}
