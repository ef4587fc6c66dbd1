/*
 * bursar - the operator's command line for a running bursard.
 *
 *   bursar [--controller ENDPOINT] [--timeout MS] COMMAND ...
 *
 *   stats [--bucket B] [--json]   posterior table per bucket + budget line
 *   export [--since T]            decision log as JSONL (T: Unix seconds or
 *                                 YYYY-MM-DDTHH:MM:SSZ)
 *   feedback ID --success | --failure | --reward R | --correction |
 *               --provider-error MSG
 *               [--cost USD] [--tokens-in N --tokens-out N]
 *               [--latency-ms MS] [--model M]
 *   choose BUCKET [--exclude MODEL]...
 *   models | ping
 *
 * ENDPOINT defaults to $BURSAR_CONTROLLER, else tcp://127.0.0.1:7878.
 * Exit status: 0 ok, 1 the controller answered an error, 2 usage,
 * 3 no answer.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_cdf.h>
#include <zmq.h>

#include "proto.h"

typedef struct bursar_client {
    void *ctx;
    void *sock;
    const char *endpoint;
    int timeout_ms;
} bursar_client_t;

static int
bursar_connect(bursar_client_t *c)
{
    c->ctx = zmq_ctx_new();
    c->sock = zmq_socket(c->ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        fprintf(stderr, "bursar: cannot connect to %s: %s\n", c->endpoint,
                zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static void
bursar_close(bursar_client_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
}

/* Sends a request, returns the parsed reply (caller deletes) or NULL. */
static cJSON *
bursar_call(bursar_client_t *c, const char *req)
{
    if (zmq_send(c->sock, req, strlen(req), 0) < 0) {
        fprintf(stderr, "bursar: send to %s: %s\n", c->endpoint,
                zmq_strerror(zmq_errno()));
        return NULL;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->sock, 0) < 0) {
        fprintf(stderr, "bursar: no answer from %s within %d ms\n", c->endpoint,
                c->timeout_ms);
        zmq_msg_close(&m);
        return NULL;
    }
    cJSON *r = cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    if (!r)
        fprintf(stderr, "bursar: the answer is not JSON\n");
    return r;
}

/* Prints an error reply; returns 1 for an error reply, 0 for ok. */
static int
bursar_check(const cJSON *r)
{
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
        return 0;
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    const cJSON *code = cJSON_GetObjectItem(e, "code");
    const cJSON *msg = cJSON_GetObjectItem(e, "message");
    fprintf(stderr, "bursar: error %s: %s\n",
            cJSON_IsString(code) ? code->valuestring : "?",
            cJSON_IsString(msg) ? msg->valuestring : "");
    return 1;
}

static double
bursar_num(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

static const char *
bursar_str(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(j) ? j->valuestring : "";
}

static void
bursar_time(double t, char *buf, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
bursar_budget_line(const char *label, const cJSON *b)
{
    char t0[32], t1[32];
    bursar_time(bursar_num(b, "window_start"), t0, sizeof t0);
    bursar_time(bursar_num(b, "window_end"), t1, sizeof t1);
    double limit = bursar_num(b, "limit_usd");
    if (!(limit > 0)) {
        printf("%s: no limit; spent $%.4f in window %s .. %s\n", label,
               bursar_num(b, "spent_usd"), t0, t1);
        return;
    }
    printf("%s: spent $%.4f + reserved $%.4f of $%.2f (window %s .. %s); "
           "remaining $%.4f; target $%.6f/request\n",
           label, bursar_num(b, "spent_usd"), bursar_num(b, "reserved_usd"),
           limit, t0, t1, bursar_num(b, "remaining_usd"),
           bursar_num(b, "target_usd"));
}

static int
bursar_cmd_stats(bursar_client_t *c, int argc, char **argv)
{
    const char *bucket = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--bucket") == 0 && i + 1 < argc)
            bucket = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "bursar stats: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "op", "stats");
    if (bucket)
        cJSON_AddStringToObject(q, "bucket", bucket);
    char *qs = cJSON_PrintUnformatted(q);
    cJSON_Delete(q);
    cJSON *r = bursar_call(c, qs);
    free(qs);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc && json) {
        char *s = cJSON_Print(r);
        puts(s);
        free(s);
    } else if (!rc) {
        const cJSON *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItem(r, "buckets"))
        {
            double slo = bursar_num(b, "latency_slo_ms");
            printf("bucket %s: %.0f pulls", bursar_str(b, "name"),
                   bursar_num(b, "pulls"));
            if (!isnan(slo))
                printf(", latency objective %.0f ms", slo);
            printf("\n  %-20s %6s  %-15s %8s %6s %6s %11s  %s\n", "model",
                   "mean", "95% interval", "pulls", "share", "prob", "cost/req",
                   "health");
            const cJSON *a;
            cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
            {
                double al = bursar_num(a, "alpha"), be = bursar_num(a, "beta");
                double lo = gsl_cdf_beta_Pinv(0.025, al, be);
                double hi = gsl_cdf_beta_Pinv(0.975, al, be);
                char iv[40];
                snprintf(iv, sizeof iv, "[%.3f, %.3f]", lo, hi);
                const char *h = bursar_str(a, "health");
                char prob[16];
                double pr = bursar_num(a, "propensity");
                if (isnan(pr))
                    snprintf(prob, sizeof prob, "%6s", "-");
                else
                    snprintf(prob, sizeof prob, "%5.1f%%", 100 * pr);
                printf("  %-20s %6.3f  %-15s %8.0f %5.1f%% %s "
                       "$%10.6f  %s%s\n",
                       bursar_str(a, "model"), bursar_num(a, "mean"), iv,
                       bursar_num(a, "pulls"), 100 * bursar_num(a, "share"),
                       prob, bursar_num(a, "cost_mean_usd"), h,
                       cJSON_IsTrue(cJSON_GetObjectItem(a, "slo_breach"))
                           ? ", over latency objective"
                           : "");
            }
            const cJSON *bb = cJSON_GetObjectItem(b, "budget");
            if (cJSON_IsObject(bb))
                bursar_budget_line("  bucket budget", bb);
        }
        const cJSON *po = cJSON_GetObjectItem(r, "policy");
        printf("policy %s, mu %.4f, %.0f decisions\n", bursar_str(po, "name"),
               bursar_num(po, "mu"), bursar_num(r, "decisions"));
        bursar_budget_line("budget", cJSON_GetObjectItem(r, "budget"));
    }
    cJSON_Delete(r);
    return rc;
}

/* Parses Unix seconds or YYYY-MM-DDTHH:MM:SS[Z]. */
static int
bursar_parse_time(const char *s, double *t)
{
    char *end;
    double v = strtod(s, &end);
    if (end != s && *end == '\0') {
        *t = v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(s, "%Y-%m-%d", &tm);
    if (!p || (*p && strcmp(p, "Z") != 0))
        return -1;
    /* timegm without _DEFAULT_SOURCE: days from civil (Howard Hinnant) */
    long y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long days = era * 146097 + doe - 719468;
    *t = (double)days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return 0;
}

static int
bursar_cmd_export(bursar_client_t *c, int argc, char **argv)
{
    double since = -INFINITY;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            if (bursar_parse_time(argv[++i], &since) != 0) {
                fprintf(stderr, "bursar export: bad time %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "bursar export: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    char after[PROTO_ID_LEN + 1] = "";
    for (;;) {
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "op", "export");
        if (isfinite(since))
            cJSON_AddNumberToObject(q, "since", since);
        if (after[0])
            cJSON_AddStringToObject(q, "after", after);
        cJSON_AddNumberToObject(q, "limit", 2000);
        char *qs = cJSON_PrintUnformatted(q);
        cJSON_Delete(q);
        cJSON *r = bursar_call(c, qs);
        free(qs);
        if (!r)
            return 3;
        if (bursar_check(r)) {
            cJSON_Delete(r);
            return 1;
        }
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, "decisions"))
        {
            char *s = cJSON_PrintUnformatted(d);
            puts(s);
            free(s);
        }
        const cJSON *next = cJSON_GetObjectItem(r, "next");
        int more = cJSON_IsString(next);
        if (more)
            snprintf(after, sizeof after, "%s", next->valuestring);
        cJSON_Delete(r);
        if (!more)
            break;
    }
    return 0;
}

/* Parses the value of option opt: a finite number in [0, max]. Feedback is
 * durable and an outcome cannot be re-sent with another value, so "0,9" or
 * "x" must be refused here rather than sent as 0. */
static int
bursar_number(const char *opt, const char *s, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "bursar feedback: %s: \"%s\" is not a number\n", opt,
                s);
        return -1;
    }
    if (v < 0 || v > max) {
        if (isinf(max))
            fprintf(stderr, "bursar feedback: %s: %s must not be negative\n",
                    opt, s);
        else
            fprintf(stderr, "bursar feedback: %s: %s is outside [0, %g]\n", opt,
                    s, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int
bursar_cmd_feedback(bursar_client_t *c, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "bursar feedback: missing decision id\n");
        return 2;
    }
    proto_feedback_t f;
    memset(&f, 0, sizeof f);
    if (proto_id_parse(argv[0], &f.decision) != 0) {
        fprintf(stderr,
                "bursar feedback: %s is not a decision id (%d hex "
                "digits)\n",
                argv[0], PROTO_ID_LEN);
        return 2;
    }
    int kind = -1;
    const char *kind_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = -1;
        if (strcmp(a, "--success") == 0 || strcmp(a, "--failure") == 0 ||
            strcmp(a, "--reward") == 0)
            k = PROTO_KIND_OUTCOME;
        else if (strcmp(a, "--correction") == 0)
            k = PROTO_KIND_CORRECTION;
        else if (strcmp(a, "--provider-error") == 0)
            k = PROTO_KIND_PROVIDER_ERROR;
        if (k >= 0) {
            /* one event per command: --success --failure, or --success
             * --correction, would silently keep only the last */
            if (kind_arg) {
                fprintf(stderr, "bursar feedback: %s conflicts with %s\n", a,
                        kind_arg);
                return 2;
            }
            kind_arg = a;
            kind = k;
        }
        if (strcmp(a, "--success") == 0 || strcmp(a, "--failure") == 0) {
            f.has_success = 1;
            f.success = a[2] == 's';
        } else if (strcmp(a, "--reward") == 0 && i + 1 < argc) {
            f.has_reward = 1;
            if (bursar_number(a, argv[++i], 1.0, &f.reward))
                return 2;
        } else if (strcmp(a, "--correction") == 0) {
        } else if (strcmp(a, "--provider-error") == 0 && i + 1 < argc) {
            f.error = argv[++i];
        } else if (strcmp(a, "--cost") == 0 && i + 1 < argc) {
            f.has_cost = 1;
            if (bursar_number(a, argv[++i], INFINITY, &f.cost_usd))
                return 2;
        } else if (strcmp(a, "--tokens-in") == 0 && i + 1 < argc) {
            f.has_tokens = 1;
            if (bursar_number(a, argv[++i], INFINITY, &f.tokens_in))
                return 2;
        } else if (strcmp(a, "--tokens-out") == 0 && i + 1 < argc) {
            f.has_tokens = 1;
            if (bursar_number(a, argv[++i], INFINITY, &f.tokens_out))
                return 2;
        } else if (strcmp(a, "--latency-ms") == 0 && i + 1 < argc) {
            f.has_latency = 1;
            if (bursar_number(a, argv[++i], INFINITY, &f.latency_ms))
                return 2;
        } else if (strcmp(a, "--model") == 0 && i + 1 < argc) {
            f.model = argv[++i];
        } else {
            fprintf(stderr, "bursar feedback: unknown argument %s\n", a);
            return 2;
        }
    }
    if (kind < 0) {
        fprintf(stderr, "bursar feedback: give one of --success, --failure, "
                        "--reward R, --correction, --provider-error MSG\n");
        return 2;
    }
    f.kind = (proto_kind_t)kind;
    char *q = proto_format_feedback(&f);
    cJSON *r = bursar_call(c, q);
    free(q);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc)
        printf("ok%s\n", cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate"))
                             ? " (duplicate: already recorded)"
                             : "");
    cJSON_Delete(r);
    return rc;
}

static int
bursar_cmd_raw(bursar_client_t *c, const char *req)
{
    cJSON *r = bursar_call(c, req);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc) {
        char *s = cJSON_Print(r);
        puts(s);
        free(s);
    }
    cJSON_Delete(r);
    return rc;
}

static void
bursar_usage(FILE *f)
{
    fprintf(f, "usage: bursar [--controller ENDPOINT] [--timeout MS] COMMAND\n"
               "  stats [--bucket B] [--json]\n"
               "  export [--since T]\n"
               "  feedback ID (--success|--failure|--reward R|--correction|\n"
               "               --provider-error MSG) [--cost USD]\n"
               "               [--tokens-in N --tokens-out N] [--latency-ms "
               "MS] [--model M]\n"
               "  choose BUCKET [--exclude MODEL]...\n"
               "  models | ping\n");
}

int
main(int argc, char **argv)
{
    bursar_client_t c = {0};
    c.endpoint = getenv("BURSAR_CONTROLLER");
    if (!c.endpoint || !*c.endpoint)
        c.endpoint = "tcp://127.0.0.1:7878";
    c.timeout_ms = 5000;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--controller") == 0 && i + 1 < argc)
            c.endpoint = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            c.timeout_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bursar_usage(stdout);
            return 0;
        } else {
            bursar_usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        bursar_usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **rv = argv + i;
    if (bursar_connect(&c) != 0) {
        bursar_close(&c);
        return 3;
    }
    int rc;
    if (strcmp(cmd, "stats") == 0) {
        rc = bursar_cmd_stats(&c, rest, rv);
    } else if (strcmp(cmd, "export") == 0) {
        rc = bursar_cmd_export(&c, rest, rv);
    } else if (strcmp(cmd, "feedback") == 0) {
        rc = bursar_cmd_feedback(&c, rest, rv);
    } else if (strcmp(cmd, "choose") == 0 && rest >= 1) {
        const char *ex[PROTO_MAX_EXCLUDE];
        size_t nx = 0;
        for (int k = 1; k + 1 < rest && nx < PROTO_MAX_EXCLUDE; k += 2)
            if (strcmp(rv[k], "--exclude") == 0)
                ex[nx++] = rv[k + 1];
        char *q = proto_format_choose(rv[0], ex, nx);
        rc = bursar_cmd_raw(&c, q);
        free(q);
    } else if (strcmp(cmd, "models") == 0) {
        rc = bursar_cmd_raw(&c, "{\"op\":\"models\"}");
    } else if (strcmp(cmd, "ping") == 0) {
        rc = bursar_cmd_raw(&c, "{\"op\":\"ping\"}");
    } else {
        bursar_usage(stderr);
        rc = 2;
    }
    bursar_close(&c);
    return rc;
}
