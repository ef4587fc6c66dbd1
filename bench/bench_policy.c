/*
 * bench_policy - decisions per second of ts-budget with 11 arms, beside
 * the cost of the Beta draws alone, measured in the same run.
 *
 * usage: bench_policy [decisions_per_round] [rounds]
 *
 * Each round times three loops over the same number of decisions:
 *   draws      11 gsl_ran_beta draws (the floor of any Thompson decision)
 *   decide     policy_choose without propensity, then reward and cost
 *   decide+p   the same with the propensity (as the controller does)
 * and prints the median over rounds, in ns per decision and decisions/s,
 * and each loop's ratio to the draws.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "bench/bench_cli.h"
#include "policies/policy.h"

#define ARMS 11

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const double quality[ARMS] = {0.55, 0.62, 0.70, 0.72, 0.66, 0.88,
                                     0.50, 0.58, 0.45, 0.68, 0.71};
static const double cost[ARMS] = {0.0001, 0.0003, 0.002,  0.004,  0.0005, 0.005,
                                  0.0004, 0.0003, 0.0001, 0.0003, 0.0004};

static double
loop_draws(gsl_rng *r, long n, double *sink)
{
    double t0 = now_s(), s = 0.0;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < ARMS; k++)
            s += gsl_ran_beta(r, 2.0 + quality[k] * 50.0,
                              2.0 + (1.0 - quality[k]) * 50.0);
    *sink += s;
    return now_s() - t0;
}

static double
loop_decide(gsl_rng *r, long n, int with_prop, double *sink)
{
    policy_params_t pp;
    policy_params_default(&pp);
    pp.explore_floor = 0.002;
    policy_t p;
    policy_init(&p, &pp);
    policy_bucket_t *b = policy_bucket_new(ARMS, 3600.0, 0.0);
    for (int k = 0; k < ARMS; k++)
        arm_init(&b->arms[k], 1.0, 1.0, cost[k], 1.0);
    double t0 = now_s(), s = 0.0;
    for (long i = 0; i < n; i++) {
        policy_request_t req;
        policy_request_init(&req, (double)i * 0.01);
        req.target_usd = 0.001;
        req.remaining_usd = 1e6;
        req.no_propensity = !with_prop;
        policy_choice_t ch;
        policy_choose(&p, b, &req, r, &ch, NULL, NULL);
        double y = gsl_rng_uniform(r) < quality[ch.arm];
        policy_reward(b, ch.arm, y, req.now);
        policy_cost(b, ch.arm, cost[ch.arm], req.now);
        s += ch.arm + (with_prop ? ch.propensity : 0.0);
    }
    double dt = now_s() - t0;
    *sink += s;
    policy_bucket_destroy(&b);
    return dt;
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv,
                  "usage: bench_policy [decisions>0] [rounds 1..100]\n") == 0)
        return 0;
    gsl_set_error_handler_off(); /* GSL errors are results, not aborts */
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 1 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: bench_policy [decisions>0] [rounds 1..100]\n");
        return 2;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 1);
    double td[100], tc[100], tp[100], sink = 0.0;
    for (int i = 0; i < rounds; i++) {
        td[i] = loop_draws(r, n, &sink);
        tc[i] = loop_decide(r, n, 0, &sink);
        tp[i] = loop_decide(r, n, 1, &sink);
    }
    qsort(td, rounds, sizeof *td, cmp_d);
    qsort(tc, rounds, sizeof *tc, cmp_d);
    qsort(tp, rounds, sizeof *tp, cmp_d);
    double d = td[rounds / 2], c = tc[rounds / 2], p = tp[rounds / 2];
    printf("arms: %d, decisions per round: %ld, rounds: %d (medians)\n", ARMS,
           n, rounds);
    printf("beta draws alone:       %8.1f ns/decision  %10.0f /s\n",
           1e9 * d / n, n / d);
    printf("ts-budget decide:       %8.1f ns/decision  %10.0f /s  "
           "(%.2f x draws)\n",
           1e9 * c / n, n / c, c / d);
    printf("ts-budget decide+prop:  %8.1f ns/decision  %10.0f /s  "
           "(%.2f x draws)\n",
           1e9 * p / n, n / p, p / d);
    fprintf(stderr, "(checksum %g)\n", sink);
    gsl_rng_free(r);
    return 0;
}
