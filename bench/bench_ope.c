/*
 * bench_ope.c - off-policy evaluation throughput: IPS and SNIPS on a
 * decision log in the controller's export format, parsing included.
 *
 *   bench_ope [ROWS]
 *
 * Writes ROWS (default 1000000) decisions as `bursar export` prints them
 * (4 buckets, 5 models, every field of docs/protocol.md) into memory, then
 * times, best of 3: parsing the JSONL into a log (olog_load_jsonl_buffer),
 * the same lines through cJSON_Parse alone (the reference), and the
 * estimators without bootstrap (ope_evaluate, boot = 0: IPS, SNIPS, DM, DR
 * and the replay draws). Prints rows per second of each and of the whole.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "bench/bench_cli.h"
#include "sim/olog.h"
#include "sim/ope.h"

/* A number as cJSON prints it (and so bursard's export): %1.15g when that
 * reads back exactly, else %1.17g. */
static const char *
bench_num(char *buf, size_t n, double d)
{
    snprintf(buf, n, "%1.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, n, "%1.17g", d);
    return buf;
}

static double
bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *bench_usage = "usage: bench_ope [ROWS >= 1]\n";

/* The log: n decisions as `bursar export` prints them (buf, caller frees;
 * *len bytes). The logging policy: per bucket a skewed distribution over
 * the models (rotated by bucket), so that propensities are those of the
 * choices and IPS and SNIPS agree in expectation. */
static char *
bench_log(size_t n, size_t *len)
{
    static const char *buckets[] = {"code", "extraction", "summarize", "chat"};
    static const char *models[] = {"gpt-4o", "gpt-4o-mini", "claude-sonnet",
                                   "claude-haiku", "llama-70b"};
    static const double cost[] = {0.0125, 0.00075, 0.018, 0.0014, 0.0009};
    static const double share[] = {0.45, 0.25, 0.15, 0.1, 0.05};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    size_t cap = n * 720 + 1;
    char *buf = malloc(cap);
    if (!rng || !buf) {
        gsl_rng_free(rng);
        free(buf);
        return NULL;
    }
    gsl_rng_set(rng, 1);
    double t0 = 1764028800.0;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        int b = (int)gsl_rng_uniform_int(rng, 4);
        double u = gsl_rng_uniform(rng), acc = 0;
        int k = 0;
        while (k < 4 && u >= acc + share[k])
            acc += share[k++];
        int m = (k + b) % 5;
        int ok = gsl_rng_uniform(rng) < 0.5 + 0.08 * m;
        double t = t0 + (double)i * 0.25 + 0.001 * gsl_rng_uniform(rng);
        char ts[32], ps[32], ots[32], cs[32], es[32], ls[32];
        *len += (size_t)snprintf(
            buf + *len, cap - *len,
            "{\"decision_id\":\"AgAAAQAAAAAAAABs10o83MPaQVVVVVVVVdU_exSuR-F6"
            "ZD8HAAAAAAAAAAAAAAAAAAAAAARjb2RlA21pZAB4Wz2S8wYF2OKruFDf%016zx\","
            "\"client\":\"worker-1\",\"offered\":[\"gpt-4o\",\"gpt-4o-mini\","
            "\"claude-sonnet\",\"claude-haiku\",\"llama-70b\"],\"step\":0,"
            "\"escalates\":null,\"escalates_seq\":null,\"seq\":\"%016zx\","
            "\"time\":%s,\"bucket\":\"%s\","
            "\"model\":\"%s\",\"propensity\":%s,\"status\":\"done\","
            "\"outcome\":%d,\"outcome_time\":%s,\"corrected\":false,"
            "\"reward\":%d,\"expected_cost_usd\":%s,\"cost_usd\":%s,"
            "\"cost_source\":\"reported\",\"latency_ms\":%s,"
            "\"served_model\":null,\"provider_error\":null,"
            "\"explored\":false,\"over_budget\":false,\"rebuilt\":false}\n",
            i + 1, i + 1, bench_num(ts, sizeof ts, t), buckets[b], models[m],
            bench_num(ps, sizeof ps, share[k]), ok,
            bench_num(ots, sizeof ots, t + 2.5), ok,
            bench_num(es, sizeof es, cost[m]),
            bench_num(cs, sizeof cs,
                      cost[m] * (0.8 + 0.4 * gsl_rng_uniform(rng))),
            bench_num(ls, sizeof ls, 500 + 3000 * gsl_rng_uniform(rng)));
    }
    gsl_rng_free(rng);
    return buf;
}

/* Seconds for cJSON alone over the lines of buf, or -1 if one fails. */
static double
bench_cjson(const char *buf, size_t len, size_t n)
{
    double a = bench_now();
    size_t lines = 0;
    for (const char *p = buf, *end = buf + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        cJSON *o = cJSON_ParseWithLength(p, (size_t)(nl - p));
        lines += o != NULL;
        cJSON_Delete(o);
        p = nl + 1;
    }
    double b = bench_now();
    return lines == n ? b - a : -1;
}

/* One round: parsing into a log and the estimators (uniform target, no
 * bootstrap), timed into *t_parse and *t_est; the IPS and SNIPS
 * estimates into est[OPE_N]. */
static int
bench_round(const char *buf, size_t len, double *t_parse, double *t_est,
            double *est, serr_t *e)
{
    olog_t *lg = olog_new();
    ope_config_t cfg;
    ope_target_t t;
    ope_result_t r;
    ope_config_default(&cfg);
    cfg.boot = 0;
    double a = bench_now();
    int rc = olog_load_jsonl_buffer(lg, buf, len, "bench.jsonl", e);
    *t_parse = bench_now() - a;
    if (!rc)
        rc = ope_target_parse(lg, "uniform", &t, e);
    if (!rc) {
        a = bench_now();
        rc = ope_evaluate(lg, &t, &cfg, &r, e);
        *t_est = bench_now() - a;
        for (int k = 0; !rc && k < OPE_N; k++)
            est[k] = r.est[k].q;
        if (!rc)
            ope_result_free(&r);
        ope_target_free(&t);
    }
    olog_destroy(&lg);
    return rc;
}

/* -h, --help, else the number of rows (default 1000000) or 0 if bad. */
static size_t
bench_args(int argc, char **argv, int *help)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    *help = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c != 'h')
            return 0;
        *help = 1;
    }
    return optind < argc ? (size_t)atol(argv[optind]) : 1000000;
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv, NULL) == 0)
        return 0;
    gsl_set_error_handler_off(); /* GSL errors are results, not aborts */
    int help;
    size_t n = bench_args(argc, argv, &help), len;
    if (help || n < 1) {
        fputs(bench_usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    char *buf = bench_log(n, &len);
    if (!buf)
        return 1;
    double best_parse = INFINITY, best_cjson = INFINITY, best_est = INFINITY;
    double est[OPE_N];
    for (int rep = 0; rep < 3; rep++) {
        double tc = bench_cjson(buf, len, n), tp, te;
        serr_t e = {0, ""};
        if (tc < 0) {
            fprintf(stderr, "bench_ope: cJSON failed\n");
            return 1;
        }
        if (bench_round(buf, len, &tp, &te, est, &e)) {
            fprintf(stderr, "bench_ope: %s\n", e.msg);
            return 1;
        }
        best_cjson = fmin(best_cjson, tc);
        best_parse = fmin(best_parse, tp);
        best_est = fmin(best_est, te);
    }
    double dn = (double)n;
    printf("log                      %zu rows, %.1f MB, %.0f bytes/row\n", n,
           (double)len / 1e6, (double)len / dn);
    printf("cJSON_Parse alone        %10.0f rows/s  (%.3f us/row)\n",
           dn / best_cjson, 1e6 * best_cjson / dn);
    printf("parse into the log       %10.0f rows/s  (%.3f us/row)\n",
           dn / best_parse, 1e6 * best_parse / dn);
    printf("estimators (no CI)       %10.0f rows/s  (%.3f us/row)\n",
           dn / best_est, 1e6 * best_est / dn);
    printf("IPS+SNIPS incl. parsing  %10.0f rows/s  (ips %.4f, snips %.4f)\n",
           dn / (best_parse + best_est), est[OPE_IPS], est[OPE_SNIPS]);
    free(buf);
    return 0;
}
