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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

#include "olog.h"
#include "ope.h"

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

int
main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    if (n < 1) {
        fprintf(stderr, "usage: bench_ope [ROWS >= 1]\n");
        return 2;
    }
    static const char *buckets[] = {"code", "extraction", "summarize", "chat"};
    static const char *models[] = {"gpt-4o", "gpt-4o-mini", "claude-sonnet",
                                   "claude-haiku", "llama-70b"};
    static const double cost[] = {0.0125, 0.00075, 0.018, 0.0014, 0.0009};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1);
    size_t cap = n * 480 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return 1;
    double t0 = 1764028800.0;
    /* the logging policy: per bucket a skewed distribution over the
     * models (rotated by bucket), so that propensities are those of the
     * choices and IPS and SNIPS agree in expectation */
    static const double share[] = {0.45, 0.25, 0.15, 0.1, 0.05};
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
        len += (size_t)snprintf(
            buf + len, cap - len,
            "{\"decision_id\":\"%016zx\",\"time\":%s,\"bucket\":\"%s\","
            "\"model\":\"%s\",\"propensity\":%s,\"status\":\"done\","
            "\"outcome\":%d,\"outcome_time\":%s,\"corrected\":false,"
            "\"reward\":%d,\"expected_cost_usd\":%s,\"cost_usd\":%s,"
            "\"cost_source\":\"reported\",\"latency_ms\":%s,"
            "\"served_model\":null,\"provider_error\":null,"
            "\"explored\":false,\"over_budget\":false}\n",
            i + 1, bench_num(ts, sizeof ts, t), buckets[b], models[m],
            bench_num(ps, sizeof ps, share[k]), ok,
            bench_num(ots, sizeof ots, t + 2.5), ok,
            bench_num(es, sizeof es, cost[m]),
            bench_num(cs, sizeof cs,
                      cost[m] * (0.8 + 0.4 * gsl_rng_uniform(rng))),
            bench_num(ls, sizeof ls, 500 + 3000 * gsl_rng_uniform(rng)));
    }
    gsl_rng_free(rng);

    double best_parse = INFINITY, best_cjson = INFINITY, best_est = INFINITY;
    double ips = 0, snips = 0;
    for (int rep = 0; rep < 3; rep++) {
        /* cJSON alone, line by line */
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
        if (lines != n) {
            fprintf(stderr, "bench_ope: cJSON failed\n");
            return 1;
        }
        best_cjson = fmin(best_cjson, b - a);

        olog_t *lg = olog_new();
        serr_t e = {0, ""};
        a = bench_now();
        if (olog_load_jsonl_buffer(lg, buf, len, "bench.jsonl", &e)) {
            fprintf(stderr, "bench_ope: %s\n", e.msg);
            return 1;
        }
        b = bench_now();
        best_parse = fmin(best_parse, b - a);

        ope_config_t cfg;
        ope_config_default(&cfg);
        cfg.boot = 0;
        ope_target_t t;
        ope_result_t r;
        if (ope_target_parse(lg, "uniform", &t, &e)) {
            fprintf(stderr, "bench_ope: %s\n", e.msg);
            return 1;
        }
        a = bench_now();
        if (ope_evaluate(lg, &t, &cfg, &r, &e)) {
            fprintf(stderr, "bench_ope: %s\n", e.msg);
            return 1;
        }
        b = bench_now();
        best_est = fmin(best_est, b - a);
        ips = r.est[OPE_IPS].q;
        snips = r.est[OPE_SNIPS].q;
        ope_result_free(&r);
        ope_target_free(&t);
        olog_destroy(&lg);
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
           dn / (best_parse + best_est), ips, snips);
    free(buf);
    return 0;
}
