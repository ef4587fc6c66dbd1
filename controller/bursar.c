/*
 * bursar - the operator's command line for a running bursard.
 *
 *   bursar [--controller ENDPOINT] [--timeout MS] COMMAND ...
 *   bursar --help | --version
 *
 *   stats [--bucket B] [--json]   posterior table per bucket + budget line
 *   export [--since T]            decision log as JSONL (T: Unix seconds or
 *                                 YYYY-MM-DDTHH:MM:SSZ)
 *   feedback ID --success | --failure | --reward R | --correction |
 *               --provider-error MSG
 *               [--cost USD] [--tokens-in N --tokens-out N]
 *               [--latency-ms MS] [--model M]
 *   choose BUCKET [--exclude MODEL]... [--escalates ID] [--tenant NAME]
 *          [--json]
 *   models [--json] | ping [--json]
 *   adjust --amount USD --reason TEXT [--bucket B]     the admin verbs
 *          [--tenant NAME]
 *   reset-arm --bucket B --model M --reason TEXT       (operator role;
 *   mark-down | mark-up MODEL --reason TEXT            export --admin
 *   show ID [--json]                                   lists their log)
 *   keygen PREFIX                 a CURVE key pair: PREFIX.key (secret,
 *                                 0600) and PREFIX.pub (no controller)
 *
 * ENDPOINT defaults to $BURSAR_CONTROLLER, else tcp://127.0.0.1:7878.
 * CURVE (docs/security.md): --key SPEC (this client's secret key, else
 * $BURSAR_KEY) and --server-key SPEC (bursard's public key, else
 * $BURSAR_SERVER_KEY); a SPEC is the key's 40 Z85 characters or a key
 * file.
 * Exit status: 0 ok, 1 the controller answered an error (or a conflicting
 * outcome), 2 usage, 3 no answer.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_errno.h>
#include <zmq.h>

#include "agents/keys.h"
#include "agents/proto.h"
#include "controller/util.h"
#include "policies/beta.h"

#ifndef BURSAR_VERSION
#define BURSAR_VERSION "unknown"
#endif

typedef struct bursar_client {
    void *ctx;
    void *sock;
    const char *endpoint;
    int endpoint_env; /* endpoint from $BURSAR_CONTROLLER */
    int timeout_ms;
    const char *key, *server_key; /* CURVE key specs, or NULL */
} bursar_client_t;

/* CURVE on the socket when keys were given. Returns 0 or -1 (said why). */
static int
bursar_curve(bursar_client_t *c)
{
    if (!c->key && !c->server_key)
        return 0;
    char sec[BURSAR_KEY_Z85 + 1], pub[BURSAR_KEY_Z85 + 1];
    char srv[BURSAR_KEY_Z85 + 1], err[600];
    if (!c->key || !c->server_key) {
        fprintf(stderr, "bursar: CURVE needs --key and --server-key (or "
                        "$BURSAR_KEY and $BURSAR_SERVER_KEY): only one was "
                        "given\n");
        return -1;
    }
    if (bursar_key_load(c->key, 1, sec, err, sizeof err) != 0 ||
        bursar_key_load(c->server_key, 0, srv, err, sizeof err) != 0 ||
        bursar_key_public(sec, pub) != 0) {
        fprintf(stderr, "bursar: %s\n", err);
        return -1;
    }
    zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, srv, BURSAR_KEY_Z85);
    zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, BURSAR_KEY_Z85);
    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, BURSAR_KEY_Z85);
    return 0;
}

static int
bursar_connect(bursar_client_t *c)
{
    c->ctx = zmq_ctx_new();
    c->sock = zmq_socket(c->ctx, ZMQ_REQ);
    if (bursar_curve(c) != 0)
        return -1;
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        fprintf(stderr,
                "bursar: cannot connect to %s: %s (an endpoint is "
                "tcp://HOST:PORT or ipc://PATH)\n",
                c->endpoint, zmq_strerror(zmq_errno()));
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
        fprintf(stderr, "bursar: no answer from %s within %d ms%s\n",
                c->endpoint, c->timeout_ms,
                c->key ? " (with CURVE: is this client's key in the "
                         "allow-list, and --server-key bursard's?)"
                       : "");
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
    double held = bursar_num(b, "held_usd"),
           rem = bursar_num(b, "remaining_usd");
    char extra[64] = "", left[64];
    if (held > 0) /* shares set aside for declared batches (op batch) */
        snprintf(extra, sizeof extra, " + held for batches $%.4f", held);
    if (rem < 0)
        snprintf(left, sizeof left, "over by $%.4f", -rem);
    else
        snprintf(left, sizeof left, "remaining $%.4f", rem);
    printf("%s: spent $%.4f + reserved $%.4f%s of $%.2f (window %s .. %s); "
           "%s; target $%.6f/request\n",
           label, bursar_num(b, "spent_usd"), bursar_num(b, "reserved_usd"),
           extra, limit, t0, t1, left, bursar_num(b, "target_usd"));
}

/* The central 95% interval of an arm's posterior, or "-". */
static void
bursar_interval(const cJSON *arm, char *buf, size_t cap)
{
    double a = bursar_num(arm, "alpha"), b = bursar_num(arm, "beta");
    double lo, hi;
    if (beta_interval(a, b, 0.95, &lo, &hi) != 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "[%.3f, %.3f]", lo, hi);
}

static void
bursar_print_arm(const cJSON *a)
{
    char iv[40], prob[16];
    bursar_interval(a, iv, sizeof iv);
    double pr = bursar_num(a, "propensity");
    if (isnan(pr))
        snprintf(prob, sizeof prob, "%6s", "-");
    else
        snprintf(prob, sizeof prob, "%5.1f%%", 100 * pr);
    printf("  %-20s %6.3f  %-15s %8.0f %5.1f%% %s $%10.6f  %s%s\n",
           bursar_str(a, "model"), bursar_num(a, "mean"), iv,
           bursar_num(a, "pulls"), 100 * bursar_num(a, "share"), prob,
           bursar_num(a, "cost_mean_usd"),
           strcmp(bursar_str(a, "health"), "down") == 0
               ? "down (marked by an operator)"
               : bursar_str(a, "health"),
           cJSON_IsTrue(cJSON_GetObjectItem(a, "slo_breach"))
               ? ", over latency objective"
               : "");
}

/* The tenants with a budget of their own (stats' "tenants": those with
 * the most spend), one line each, and how many more tenants_total counts;
 * nothing when there are none. */
static void
bursar_print_tenants(const cJSON *r)
{
    const cJSON *ts = cJSON_GetObjectItem(r, "tenants");
    if (cJSON_GetArraySize(ts) == 0)
        return;
    printf("tenants:\n  %-20s %9s %11s %9s %9s %11s %8s %8s  %s\n", "tenant",
           "limit", "window", "spent", "reserved", "target/req", "mu",
           "requests", "when spent");
    const cJSON *t;
    cJSON_ArrayForEach(t, ts)
    {
        char lim[32], win[32], sp[32], res[32], tg[32];
        snprintf(lim, sizeof lim, "$%.2f", bursar_num(t, "limit_usd"));
        snprintf(win, sizeof win, "%.0f s", bursar_num(t, "window_s"));
        snprintf(sp, sizeof sp, "$%.4f", bursar_num(t, "spent_usd"));
        snprintf(res, sizeof res, "$%.4f", bursar_num(t, "reserved_usd"));
        snprintf(tg, sizeof tg, "$%.6f", bursar_num(t, "target_usd"));
        printf("  %-20s %9s %11s %9s %9s %11s %8.4f %8.0f  %s\n",
               bursar_str(t, "tenant"), lim, win, sp, res, tg,
               bursar_num(t, "mu"), bursar_num(t, "requests"),
               bursar_str(t, "when_exhausted"));
    }
    double more = bursar_num(r, "tenants_total") - cJSON_GetArraySize(ts);
    if (more > 0)
        printf("  (%.0f more not shown: the tenants with the most spend "
               "come first)\n",
               more);
}

static void
bursar_print_stats(const cJSON *r)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(r, "buckets"))
    {
        double slo = bursar_num(b, "latency_slo_ms");
        printf("bucket %s: %.0f pulls", bursar_str(b, "name"),
               bursar_num(b, "pulls"));
        if (!isnan(slo))
            printf(", latency objective %.0f ms", slo);
        printf("\n  %-20s %6s  %-15s %8s %6s %6s %11s  %s\n", "model", "mean",
               "95% interval", "pulls", "share", "prob", "cost/req", "health");
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
        {
            bursar_print_arm(a);
        }
        const cJSON *bb = cJSON_GetObjectItem(b, "budget");
        if (cJSON_IsObject(bb))
            bursar_budget_line("  bucket budget", bb);
    }
    const cJSON *po = cJSON_GetObjectItem(r, "policy");
    printf("policy %s, mu %.4f, %.0f decisions\n", bursar_str(po, "name"),
           bursar_num(po, "mu"), bursar_num(r, "decisions"));
    bursar_budget_line("budget", cJSON_GetObjectItem(r, "budget"));
    bursar_print_tenants(r);
}

/* Reports an option getopt_long refused (opterr 0) in command cmd ("" for
 * the options before the command); returns 2. */
static int
bursar_bad_option(const char *cmd, char **argv)
{
    char msg[300];
    util_opt_error(argv, msg, sizeof msg);
    fprintf(stderr, "bursar%s%s: %s\n", *cmd ? " " : "", cmd, msg);
    return 2;
}

/* Starts getopt_long afresh over a command's arguments (argv[0] is the
 * command). */
static void
bursar_getopt_reset(void)
{
    optind = 0; /* glibc: a full reset */
    opterr = 0;
}

static int
bursar_cmd_stats(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"bucket", required_argument, NULL, 'b'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    const char *bucket = NULL;
    int json = 0, o;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'b')
            bucket = optarg;
        else if (o == 'j')
            json = 1;
        else
            return bursar_bad_option("stats", argv);
    }
    if (optind < argc) {
        fprintf(stderr, "bursar stats: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    char *qs = proto_format_stats(bucket);
    cJSON *r = bursar_call(c, qs);
    free(qs);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc && json) {
        char *str = cJSON_Print(r);
        puts(str);
        free(str);
    } else if (!rc) {
        bursar_print_stats(r);
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

/* Prints the rows of one export page (its array key) and moves *after to
 * its "next". Returns 1 when there is another page. */
static int
bursar_export_page(const cJSON *r, const char *key, uint64_t *after)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, key))
    {
        char *s = cJSON_PrintUnformatted(d);
        puts(s);
        free(s);
    }
    const cJSON *next = cJSON_GetObjectItem(r, "next");
    int more =
        cJSON_IsString(next) && proto_id_parse(next->valuestring, after) == 0;
    if (cJSON_IsString(next) && !more)
        fprintf(stderr, "bursar export: reply field \"next\" is not a "
                        "decision id: stopping\n");
    return more;
}

/* After the decisions: a line on stderr when the admin log has entries
 * from since on (bursar export --admin lists them; the decision rows stay
 * what off-policy evaluation reads). */
static void
bursar_export_admin_note(bursar_client_t *c, double since)
{
    char *qs = proto_format_export_admin(since, 0, 0, 1);
    cJSON *r = bursar_call(c, qs);
    free(qs);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(r, "admin"));
    if (r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) && n > 0)
        fprintf(stderr,
                "bursar export: the admin log has entries in this period "
                "(adjust, reset, mark): bursar export --admin lists them\n");
    cJSON_Delete(r);
}

static int
bursar_cmd_export(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"since", required_argument, NULL, 's'},
                                       {"admin", no_argument, NULL, 'a'},
                                       {NULL, 0, NULL, 0}};
    double since = -INFINITY;
    int o, admin = 0;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'a') {
            admin = 1;
            continue;
        }
        if (o != 's')
            return bursar_bad_option("export", argv);
        if (bursar_parse_time(optarg, &since) != 0) {
            fprintf(stderr, "bursar export: bad time %s\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bursar export: unexpected argument %s\n",
                argv[optind]);
        return 2;
    }
    uint64_t after = 0;
    int has_after = 0, more = 1;
    while (more) {
        char *qs =
            admin ? proto_format_export_admin(since, has_after, after, 2000)
                  : proto_format_export(since, has_after, after, 2000);
        cJSON *r = bursar_call(c, qs);
        free(qs);
        if (!r)
            return 3;
        if (bursar_check(r)) {
            cJSON_Delete(r);
            return 1;
        }
        more = bursar_export_page(r, admin ? "admin" : "decisions", &after);
        has_after = 1;
        cJSON_Delete(r);
    }
    if (!admin)
        bursar_export_admin_note(c, since);
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

enum {
    FB_SUCCESS = 256,
    FB_FAILURE,
    FB_REWARD,
    FB_CORRECTION,
    FB_PROVIDER_ERROR,
    FB_COST,
    FB_TOKENS_IN,
    FB_TOKENS_OUT,
    FB_LATENCY,
    FB_MODEL
};

/* The event kind an option names, or -1 for the other options. */
static int
bursar_fb_kind(int o)
{
    switch (o) {
    case FB_SUCCESS:
    case FB_FAILURE:
    case FB_REWARD:
        return PROTO_KIND_OUTCOME;
    case FB_CORRECTION:
        return PROTO_KIND_CORRECTION;
    case FB_PROVIDER_ERROR:
        return PROTO_KIND_PROVIDER_ERROR;
    default:
        return -1;
    }
}

/* Applies one feedback option to f. Returns 0, or 2 (said why). */
static int
bursar_fb_option(proto_feedback_t *f, int o, const char *name, char *arg)
{
    switch (o) {
    case FB_SUCCESS:
    case FB_FAILURE:
        f->has_success = 1;
        f->success = o == FB_SUCCESS;
        return 0;
    case FB_REWARD:
        f->has_reward = 1;
        return bursar_number(name, arg, 1.0, &f->reward) ? 2 : 0;
    case FB_CORRECTION:
        return 0;
    case FB_PROVIDER_ERROR:
        f->error = arg;
        return 0;
    case FB_COST:
        f->has_cost = 1;
        return bursar_number(name, arg, INFINITY, &f->cost_usd) ? 2 : 0;
    case FB_TOKENS_IN:
        f->has_tokens = 1;
        return bursar_number(name, arg, INFINITY, &f->tokens_in) ? 2 : 0;
    case FB_TOKENS_OUT:
        f->has_tokens = 1;
        return bursar_number(name, arg, INFINITY, &f->tokens_out) ? 2 : 0;
    case FB_LATENCY:
        f->has_latency = 1;
        return bursar_number(name, arg, INFINITY, &f->latency_ms) ? 2 : 0;
    case FB_MODEL:
        f->model = arg;
        return 0;
    default:
        return 2;
    }
}

static const struct option bursar_fb_opts[] = {
    {"success", no_argument, NULL, FB_SUCCESS},
    {"failure", no_argument, NULL, FB_FAILURE},
    {"reward", required_argument, NULL, FB_REWARD},
    {"correction", no_argument, NULL, FB_CORRECTION},
    {"provider-error", required_argument, NULL, FB_PROVIDER_ERROR},
    {"cost", required_argument, NULL, FB_COST},
    {"tokens-in", required_argument, NULL, FB_TOKENS_IN},
    {"tokens-out", required_argument, NULL, FB_TOKENS_OUT},
    {"latency-ms", required_argument, NULL, FB_LATENCY},
    {"model", required_argument, NULL, FB_MODEL},
    {NULL, 0, NULL, 0}};

/* Parses feedback's options into f; returns 0 or 2 (said why). */
static int
bursar_fb_parse(int argc, char **argv, proto_feedback_t *f)
{
    char kind_arg[40] = "";
    int o, li;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", bursar_fb_opts, &li)) !=
           -1) {
        if (o == '?')
            return bursar_bad_option("feedback", argv);
        char name[40];
        snprintf(name, sizeof name, "--%s", bursar_fb_opts[li].name);
        int k = bursar_fb_kind(o);
        /* one event per command: --success --failure, or --success
         * --correction, would silently keep only the last */
        if (k >= 0 && kind_arg[0]) {
            fprintf(stderr, "bursar feedback: %s conflicts with %s\n", name,
                    kind_arg);
            return 2;
        }
        if (k >= 0) {
            snprintf(kind_arg, sizeof kind_arg, "%s", name);
            f->kind = (proto_kind_t)k;
        }
        if (bursar_fb_option(f, o, name, optarg))
            return 2;
    }
    if (!kind_arg[0]) {
        fprintf(stderr, "bursar feedback: give one of --success, --failure, "
                        "--reward R, --correction, --provider-error MSG\n");
        return 2;
    }
    return 0;
}

static int
bursar_cmd_feedback(bursar_client_t *c, int argc, char **argv)
{
    proto_feedback_t f;
    memset(&f, 0, sizeof f);
    int rc = bursar_fb_parse(argc, argv, &f);
    if (rc)
        return rc;
    if (optind != argc - 1) {
        fprintf(stderr, "bursar feedback: %s\n",
                optind >= argc ? "missing decision id"
                               : "one decision id, then options");
        return 2;
    }
    if (!proto_token_valid(argv[optind])) {
        fprintf(stderr,
                "bursar feedback: %s is not a decision id (a token of 1 to %d "
                "characters of A-Z a-z 0-9 _ -)\n",
                argv[optind], PROTO_TOKEN_MAX);
        return 2;
    }
    f.decision = argv[optind];
    char *q = proto_format_feedback(&f);
    cJSON *r = bursar_call(c, q);
    free(q);
    if (!r)
        return 3;
    rc = bursar_check(r);
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItem(r, "conflict"))) {
        /* the first outcome stands: this one was not recorded */
        fprintf(stderr,
                "bursar feedback: conflict: decision %s already has an "
                "outcome, reward %g; this one (reward %g) was not recorded\n",
                f.decision, bursar_num(r, "recorded_reward"),
                f.has_reward ? f.reward
                : f.success  ? 1.0
                             : 0.0);
        rc = 1;
    } else if (!rc) {
        printf("ok%s\n", cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate"))
                             ? " (duplicate: already recorded)"
                             : "");
    }
    cJSON_Delete(r);
    return rc;
}

/* The reply as indented JSON (--json). */
static void
bursar_print_json(const cJSON *r)
{
    char *s = cJSON_Print(r);
    puts(s);
    free(s);
}

/* Each model's provider, upstream name, prices and health, then each
 * bucket's models. */
static void
bursar_print_models(const cJSON *r)
{
    const cJSON *m, *b;
    int w = 5, wu = 14, wb = 6;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(r, "models"))
    {
        w = (int)fmax(w, strlen(bursar_str(m, "name")));
        wu = (int)fmax(wu, strlen(bursar_str(m, "model")));
    }
    printf("%-*s  %-10s  %-*s  %10s  %10s  %s\n", w, "model", "provider", wu,
           "upstream model", "$/Mtok in", "$/Mtok out", "health");
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(r, "models"))
    {
        printf("%-*s  %-10s  %-*s  %10.2f  %10.2f  %s\n", w,
               bursar_str(m, "name"), bursar_str(m, "provider"), wu,
               bursar_str(m, "model"), bursar_num(m, "price_in_per_mtok"),
               bursar_num(m, "price_out_per_mtok"), bursar_str(m, "health"));
    }
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(r, "buckets")) wb =
        (int)fmax(wb, strlen(bursar_str(b, "name")));
    printf("\n%-*s  %13s  %s\n", wb, "bucket", "tokens in/out", "models");
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(r, "buckets"))
    {
        printf("%-*s  %6.0f/%-6.0f  ", wb, bursar_str(b, "name"),
               bursar_num(b, "expected_tokens_in"),
               bursar_num(b, "expected_tokens_out"));
        const cJSON *x;
        int i = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(b, "models"))
        {
            printf("%s%s", i++ ? ", " : "",
                   cJSON_IsString(x) ? x->valuestring : "?");
        }
        printf("\n");
    }
}

/* A choose's reply: the model, the decision id, the propensity, the
 * expected cost, the fallbacks and the flags (every true boolean of the
 * reply but "ok"). */
static void
bursar_print_choice(const cJSON *r)
{
    printf("model:       %s\ndecision:    %s\npropensity:  %g\n",
           bursar_str(r, "model"), bursar_str(r, "decision_id"),
           bursar_num(r, "propensity"));
    double ec = bursar_num(r, "expected_cost_usd");
    if (isnan(ec))
        printf("expected:    unknown cost\n");
    else
        printf("expected:    $%.6f\n", ec);
    const cJSON *x;
    int i = 0;
    printf("fallbacks:   ");
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "fallbacks"))
    {
        printf("%s%s", i++ ? ", " : "",
               cJSON_IsString(x) ? x->valuestring : "?");
    }
    printf("%s\nflags:       ", i ? "" : "none");
    i = 0;
    cJSON_ArrayForEach(x, r)
    {
        if (!cJSON_IsTrue(x) || strcmp(x->string, "ok") == 0)
            continue;
        printf("%s%s", i++ ? ", " : "", x->string);
        if (strcmp(x->string, "over_budget") == 0)
            printf(" (no model was affordable: the cheapest allowed one)");
        else if (strcmp(x->string, "explored") == 0)
            printf(" (drawn by the exploration floor)");
        else if (strcmp(x->string, "tenant_unbudgeted") == 0)
            printf(" (no room for the tenant's own budget: "
                   "limits.max_tenants; the global one only)");
    }
    printf("%s\n", i ? "" : "none");
}

/* A batch's reply: its id, share and target per request. */
static void
bursar_print_batch(const cJSON *r)
{
    const cJSON *id = cJSON_GetObjectItem(r, "batch");
    const cJSON *share = cJSON_GetObjectItem(r, "share_usd");
    const cJSON *target = cJSON_GetObjectItem(r, "target_usd");
    printf("batch:       %s (give it to each choose: --batch %s)\n",
           cJSON_IsString(id) ? id->valuestring : "?",
           cJSON_IsString(id) ? id->valuestring : "?");
    printf("share:       $%.6f of the budget, held for the batch\n",
           cJSON_IsNumber(share) ? share->valuedouble : NAN);
    printf("target:      $%.6f per request\n",
           cJSON_IsNumber(target) ? target->valuedouble : NAN);
}

/* Sends req and prints the reply: as JSON (json), else by kind
 * (PROTO_OP_PING, _MODELS, _BATCH or _CHOOSE). Returns the exit status. */
static int
bursar_print_reply(bursar_client_t *c, const char *req, proto_op_t kind,
                   int json)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cJSON *r = bursar_call(c, req);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    if (!rc && json)
        bursar_print_json(r);
    else if (!rc && kind == PROTO_OP_PING)
        printf("bursard at %s answered in %.1f ms\n", c->endpoint, ms);
    else if (!rc && kind == PROTO_OP_MODELS)
        bursar_print_models(r);
    else if (!rc && kind == PROTO_OP_BATCH)
        bursar_print_batch(r);
    else if (!rc)
        bursar_print_choice(r);
    cJSON_Delete(r);
    return rc;
}

/* An op without fields (models, ping), with --json or nothing
 * (bursar_check_command checked). */
static int
bursar_cmd_op(bursar_client_t *c, proto_op_t op, int argc)
{
    char *q = proto_format_simple(op);
    int rc = bursar_print_reply(c, q, op, argc > 1);
    free(q);
    return rc;
}

static int
bursar_cmd_choose(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"exclude", required_argument, NULL, 'x'},
        {"escalates", required_argument, NULL, 'e'},
        {"tenant", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"batch", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0}};
    const char *ex[PROTO_MAX_EXCLUDE], *parent = NULL, *tenant = NULL;
    const char *batch = NULL;
    size_t nx = 0;
    int o, json = 0;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'j') {
            json = 1;
            continue;
        }
        if (o == 'e') {
            parent = optarg;
            continue;
        }
        if (o == 't') {
            tenant = optarg;
            continue;
        }
        if (o == 'b') {
            batch = optarg;
            continue;
        }
        if (o != 'x')
            return bursar_bad_option("choose", argv);
        if (nx == PROTO_MAX_EXCLUDE) {
            fprintf(stderr, "bursar choose: more than %d --exclude\n",
                    PROTO_MAX_EXCLUDE);
            return 2;
        }
        ex[nx++] = optarg;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "bursar choose: give one bucket\n");
        return 2;
    }
    if (tenant && !proto_tenant_valid(tenant)) {
        fprintf(stderr,
                "bursar choose: --tenant \"%s\": a tenant is 1 to %d "
                "characters of A-Z a-z 0-9 . _ -\n",
                tenant, PROTO_TENANT_MAX - 1);
        return 2;
    }
    uint64_t bid;
    if (batch &&
        (strlen(batch) != PROTO_BATCH_LEN || proto_id_parse(batch, &bid))) {
        fprintf(stderr,
                "bursar choose: --batch \"%s\": a batch id is %d hex digits "
                "(as bursar batch printed it)\n",
                batch, PROTO_BATCH_LEN);
        return 2;
    }
    char *q = proto_format_choose_tenant(argv[optind], ex, nx, parent, tenant);
    if (batch) { /* ..."batch":ID} in place of the closing brace */
        size_t n = strlen(q);
        q = bursar_realloc(q, n + PROTO_BATCH_LEN + 16);
        snprintf(q + n - 1, PROTO_BATCH_LEN + 17, ",\"batch\":\"%s\"}", batch);
    }
    int rc = bursar_print_reply(c, q, PROTO_OP_CHOOSE, json);
    free(q);
    return rc;
}

/* bursar batch --bucket B --size N [--tenant T]: declares a batch; its
 * id, share and target printed. */
static int
bursar_cmd_batch(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"bucket", required_argument, NULL, 'b'},
                                       {"size", required_argument, NULL, 'n'},
                                       {"tenant", required_argument, NULL, 't'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    const char *bucket = NULL, *tenant = NULL;
    double size = NAN;
    int o, json = 0;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'b')
            bucket = optarg;
        else if (o == 't')
            tenant = optarg;
        else if (o == 'n')
            size = strtod(optarg, NULL);
        else if (o == 'j')
            json = 1;
        else
            return bursar_bad_option("batch", argv);
    }
    if (optind != argc || !bucket || !(size >= 1) || size != floor(size) ||
        size > PROTO_BATCH_SIZE_MAX) {
        fprintf(stderr, "bursar batch: give --bucket B and --size N (a whole "
                        "number of requests, at least 1)\n");
        return 2;
    }
    char *q = proto_format_batch(bucket, size, tenant);
    int rc = bursar_print_reply(c, q, PROTO_OP_BATCH, json);
    free(q);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The admin verbs (operator role): adjust, reset-arm, mark-down,
 * mark-up, show (docs/controller.md, "Admin operations")                */

/* Checks the reason given to verb cmd (NULL: missing). Returns 0 or 2
 * (said why). */
static int
bursar_admin_reason(const char *cmd, const char *reason)
{
    if (!reason) {
        fprintf(stderr,
                "bursar %s: --reason TEXT is required (it is kept in the "
                "admin log)\n",
                cmd);
        return 2;
    }
    if (!proto_reason_valid(reason)) {
        fprintf(stderr,
                "bursar %s: --reason: give 1 to %d characters of text (UTF-8, "
                "no control characters)\n",
                cmd, PROTO_REASON_CHARS);
        return 2;
    }
    return 0;
}

/* The admin log line every admin verb ends with. */
static void
bursar_admin_logged(const cJSON *r)
{
    const char *who = bursar_str(r, "client");
    printf("logged: admin entry %s by %s%s%s, reason \"%s\"\n",
           bursar_str(r, "seq"), who[0] ? "client \"" : "",
           who[0] ? who : "the local (unauthenticated) client",
           who[0] ? "\"" : "", bursar_str(r, "reason"));
}

/* Sends an admin request q (freed); prints the reply with print. */
static int
bursar_admin_call(bursar_client_t *c, char *q, void (*print)(const cJSON *r))
{
    cJSON *r = bursar_call(c, q);
    free(q);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc) {
        print(r);
        bursar_admin_logged(r);
    }
    cJSON_Delete(r);
    return rc;
}

static void
bursar_print_adjust(const cJSON *r)
{
    char t0[32];
    bursar_time(bursar_num(r, "window_start"), t0, sizeof t0);
    double before = bursar_num(r, "spent_before_usd");
    double after = bursar_num(r, "spent_after_usd");
    double amount = bursar_num(r, "amount_usd");
    printf("budget: spent $%.4f -> $%.4f in the window from %s (%+.4f "
           "asked%s)\n",
           before, after, t0, amount,
           before + amount < 0 ? ", clipped at 0" : "");
    double bb = bursar_num(r, "bucket_spent_before_usd");
    if (!isnan(bb))
        printf("bucket %s's budget: spent $%.4f -> $%.4f\n",
               bursar_str(r, "bucket"), bb,
               bursar_num(r, "bucket_spent_after_usd"));
    else if (bursar_str(r, "bucket")[0])
        printf("bucket %s has no budget of its own: the global one only\n",
               bursar_str(r, "bucket"));
    double tb = bursar_num(r, "tenant_spent_before_usd");
    if (!isnan(tb))
        printf("tenant %s's budget: spent $%.4f -> $%.4f\n",
               bursar_str(r, "tenant"), tb,
               bursar_num(r, "tenant_spent_after_usd"));
}

/* bursar adjust --amount USD --reason TEXT [--bucket B] [--tenant T] */
static int
bursar_cmd_adjust(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"amount", required_argument, NULL, 'a'},
                                       {"reason", required_argument, NULL, 'r'},
                                       {"bucket", required_argument, NULL, 'b'},
                                       {"tenant", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    const char *reason = NULL, *bucket = NULL, *amount = NULL, *tenant = NULL;
    int o;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'a')
            amount = optarg;
        else if (o == 'r')
            reason = optarg;
        else if (o == 'b')
            bucket = optarg;
        else if (o == 't')
            tenant = optarg;
        else
            return bursar_bad_option("adjust", argv);
    }
    if (optind < argc) {
        fprintf(stderr, "bursar adjust: unexpected argument %s\n",
                argv[optind]);
        return 2;
    }
    char *end = NULL;
    double v = amount ? strtod(amount, &end) : NAN;
    if (!amount || end == amount || *end || !isfinite(v) ||
        fabs(v) > PROTO_ADJUST_MAX) {
        fprintf(stderr,
                "bursar adjust: --amount USD is required: a number of US "
                "dollars in [-%g, %g], negative to take spend off%s%s\n",
                PROTO_ADJUST_MAX, PROTO_ADJUST_MAX, amount ? "; got " : "",
                amount ? amount : "");
        return 2;
    }
    if (tenant && !proto_tenant_valid(tenant)) {
        fprintf(stderr,
                "bursar adjust: --tenant \"%s\": a tenant is 1 to %d "
                "characters of A-Z a-z 0-9 . _ -\n",
                tenant, PROTO_TENANT_MAX - 1);
        return 2;
    }
    int rc = bursar_admin_reason("adjust", reason);
    if (rc)
        return rc;
    return bursar_admin_call(c, proto_format_adjust(v, bucket, tenant, reason),
                             bursar_print_adjust);
}

static void
bursar_print_reset(const cJSON *r)
{
    const cJSON *b = cJSON_GetObjectItem(r, "before");
    const cJSON *a = cJSON_GetObjectItem(r, "after");
    printf("arm %s/%s reset to its prior: mean %.3f -> %.3f, %.0f -> %.0f "
           "pulls, cost $%.6f -> $%.6f/request\n",
           bursar_str(r, "bucket"), bursar_str(r, "model"),
           bursar_num(b, "mean"), bursar_num(a, "mean"), bursar_num(b, "pulls"),
           bursar_num(a, "pulls"), bursar_num(b, "cost_mean_usd"),
           bursar_num(a, "cost_mean_usd"));
}

/* bursar reset-arm --bucket B --model M --reason TEXT */
static int
bursar_cmd_reset_arm(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"bucket", required_argument, NULL, 'b'},
                                       {"model", required_argument, NULL, 'm'},
                                       {"reason", required_argument, NULL, 'r'},
                                       {NULL, 0, NULL, 0}};
    const char *reason = NULL, *bucket = NULL, *model = NULL;
    int o;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o == 'b')
            bucket = optarg;
        else if (o == 'm')
            model = optarg;
        else if (o == 'r')
            reason = optarg;
        else
            return bursar_bad_option("reset-arm", argv);
    }
    if (optind < argc || !bucket || !model) {
        fprintf(stderr, "bursar reset-arm: %s%s\n",
                optind < argc ? "unexpected argument "
                              : "give --bucket B "
                                "and --model M",
                optind < argc ? argv[optind] : "");
        return 2;
    }
    int rc = bursar_admin_reason("reset-arm", reason);
    if (rc)
        return rc;
    return bursar_admin_call(c, proto_format_reset(bucket, model, reason),
                             bursar_print_reset);
}

static void
bursar_print_mark(const cJSON *r)
{
    int down = strcmp(bursar_str(r, "state"), "down") == 0;
    printf("model %s marked %s (was %s): %s\n", bursar_str(r, "model"),
           down ? "down" : "up", bursar_str(r, "was"),
           down ? "no decision chooses it until it is marked up"
                : "decisions may choose it again");
}

/* bursar mark-down|mark-up MODEL --reason TEXT */
static int
bursar_cmd_mark(bursar_client_t *c, int argc, char **argv, int down)
{
    static const struct option lo[] = {{"reason", required_argument, NULL, 'r'},
                                       {NULL, 0, NULL, 0}};
    const char *reason = NULL;
    int o;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o != 'r')
            return bursar_bad_option(argv[0], argv);
        reason = optarg;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "bursar %s: give one MODEL\n", argv[0]);
        return 2;
    }
    int rc = bursar_admin_reason(argv[0], reason);
    if (rc)
        return rc;
    return bursar_admin_call(c, proto_format_mark(argv[optind], down, reason),
                             bursar_print_mark);
}

/* One field of show's decision as text (buf of cap bytes). */
static const char *
bursar_show_value(const char *key, const cJSON *v, char *buf, size_t cap)
{
    if (!v || cJSON_IsNull(v))
        return "-";
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "yes" : "no";
    if (cJSON_IsString(v))
        return v->valuestring[0] ? v->valuestring : "\"\"";
    if (cJSON_IsNumber(v) &&
        (strcmp(key, "time") == 0 || strcmp(key, "outcome_time") == 0 ||
         strcmp(key, "expires_at") == 0)) {
        bursar_time(v->valuedouble, buf, cap);
        return buf;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.10g", v->valuedouble);
        return buf;
    }
    size_t n = 0;
    const cJSON *it;
    buf[0] = '\0';
    cJSON_ArrayForEach(it, v) /* offered: names; children: objects */
    {
        const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
        char one[160];
        if (!s) {
            snprintf(one, sizeof one, "%s (step %.0f, %s)",
                     bursar_str(it, "seq"), bursar_num(it, "step"),
                     bursar_str(it, "model"));
            s = one;
        }
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s",
                              n ? ", " : "", s);
    }
    return buf[0] ? buf : "none";
}

static void
bursar_print_show(const cJSON *r)
{
    const cJSON *d = cJSON_GetObjectItem(r, "decision"), *f;
    printf("decision %s\n", bursar_str(d, "seq"));
    cJSON_ArrayForEach(f, d)
    {
        char buf[1024];
        if (strcmp(f->string, "seq") == 0)
            continue;
        printf("  %-24s %s\n", f->string,
               bursar_show_value(f->string, f, buf, sizeof buf));
    }
}

/* bursar show ID [--json] */
static int
bursar_cmd_show(bursar_client_t *c, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    int json = 0, o;
    bursar_getopt_reset();
    while ((o = bursar_getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o != 'j')
            return bursar_bad_option("show", argv);
        json = 1;
    }
    if (optind != argc - 1 || !proto_token_valid(argv[optind])) {
        fprintf(stderr, "bursar show: give one decision: its token (choose's "
                        "decision_id) or its sequence id (export's seq)\n");
        return 2;
    }
    char *q = proto_format_show(argv[optind]);
    cJSON *r = bursar_call(c, q);
    free(q);
    if (!r)
        return 3;
    int rc = bursar_check(r);
    if (!rc && json) {
        char *str = cJSON_Print(cJSON_GetObjectItem(r, "decision"));
        puts(str);
        free(str);
    } else if (!rc) {
        bursar_print_show(r);
    }
    cJSON_Delete(r);
    return rc;
}

/* The usage lines: after a usage error, with a pointer to --help. */
static const char bursar_synopsis[] =
    "usage: bursar [OPTION]... stats [--bucket B] [--json]\n"
    "       bursar [OPTION]... export [--since T] [--admin]\n"
    "       bursar [OPTION]... feedback ID --success | --failure | --reward R\n"
    "                          | --correction | --provider-error MSG\n"
    "                          [--cost USD] [--tokens-in N --tokens-out N]\n"
    "                          [--latency-ms MS] [--model M]\n"
    "       bursar [OPTION]... choose BUCKET [--exclude MODEL]...\n"
    "                          [--escalates ID] [--tenant NAME] [--json]\n"
    "                          [--batch ID]\n"
    "       bursar [OPTION]... batch --bucket B --size N [--tenant NAME]\n"
    "                          [--json]\n"
    "       bursar [OPTION]... models [--json] | ping [--json]\n"
    "       bursar [OPTION]... adjust --amount USD --reason TEXT [--bucket B]\n"
    "                          [--tenant NAME]\n"
    "       bursar [OPTION]... reset-arm --bucket B --model M --reason TEXT\n"
    "       bursar [OPTION]... mark-down | mark-up MODEL --reason TEXT\n"
    "       bursar [OPTION]... show ID [--json]\n"
    "       bursar keygen PREFIX\n"
    "       bursar --help | --version\n";

/* --help: the usage lines, then the commands and options (help2man makes
 * bursar.1 of it: dist/CMakeLists.txt). */
static const char bursar_help[] =
    "\n"
    "The operator's command line of a running bursard: its statistics, its\n"
    "decision log, feedback and decisions by hand (docs/controller.md), and\n"
    "the operator's admin commands (adjust to show below: operator role).\n"
    "\n"
    "Exit status: 0 ok, 1 the controller answered an error (or a feedback\n"
    "outcome conflicts with the one recorded, which stands), 2 usage, 3 no\n"
    "answer.\n"
    "\n"
    "Commands:\n"
    "  stats                   per bucket, each model's posterior mean and\n"
    "                          95% interval, pulls, traffic share, chance of\n"
    "                          being chosen, cost per request and health;\n"
    "                          then the policy and the budget. --bucket B:\n"
    "                          that bucket only; --json: the reply as JSON\n"
    "  export                  the decision log, one JSON object a line;\n"
    "                          --since T: from time T on (Unix seconds or\n"
    "                          YYYY-MM-DDTHH:MM:SSZ); --admin: the admin\n"
    "                          log instead (adjust, reset-arm, mark-down,\n"
    "                          mark-up: who, when, why, what changed)\n"
    "  feedback ID             report what became of decision ID (the token\n"
    "                          choose gave): one event (--success,\n"
    "                          --failure, --reward, --correction or\n"
    "                          --provider-error) and its details: the\n"
    "                          feedback options below\n"
    "  choose BUCKET           a decision by hand: the model for a request of\n"
    "                          BUCKET. --exclude MODEL: not that model\n"
    "                          (repeatable); --escalates ID: the decision\n"
    "                          this one escalates; --tenant NAME: the tenant\n"
    "                          it is made for (shown in export); --batch ID:\n"
    "                          the batch it belongs to (bursar batch). Prints\n"
    "                          the model, the decision id (for feedback), the\n"
    "                          propensity, the expected cost, the fallbacks\n"
    "                          and the flags; --json: the reply as JSON\n"
    "  batch                   declare a batch of --size N chooses of\n"
    "                          --bucket B (--tenant NAME: made for it): its\n"
    "                          id (their --batch), its share of the budget\n"
    "                          and its target per request; --json: as JSON\n"
    "  models                  the models (provider, prices, health) and the\n"
    "                          buckets of the configuration; --json: the\n"
    "                          reply as JSON\n"
    "  ping                    whether bursard answers, and how fast; --json:\n"
    "                          the reply as JSON\n"
    "  adjust                  add --amount USD (negative: take off) to the\n"
    "                          budget window's spend, and to --bucket B's\n"
    "                          budget if it has one, and to --tenant NAME's\n"
    "                          (it must have one); clipped at 0. --reason\n"
    "                          TEXT: why (required here and by reset-arm,\n"
    "                          mark-down, mark-up; kept in the admin log)\n"
    "  reset-arm               start --model M of --bucket B again from its\n"
    "                          prior (the provider changed the model)\n"
    "  mark-down MODEL         no decision chooses MODEL until mark-up\n"
    "  mark-up MODEL           MODEL may be chosen again\n"
    "  show ID                 everything the store has on one decision (its\n"
    "                          token or export's seq); --json: as JSON\n"
    "  keygen PREFIX           write a CURVE key pair: PREFIX.key (the secret\n"
    "                          key, mode 0600) and PREFIX.pub; no controller\n"
    "                          needed\n"
    "\n";

/* The rest of --help (one string would pass C's 4095 bytes). */
static const char bursar_help_options[] =
    "Feedback options:\n"
    "  --success               the answer was good (reward 1)\n"
    "  --failure               the answer was bad (reward 0)\n"
    "  --reward R              the answer's reward R, in [0, 1]\n"
    "  --correction            the user corrected the answer later\n"
    "  --provider-error MSG    the provider failed (MSG: what happened)\n"
    "  --cost USD              what the call cost, in US dollars\n"
    "  --tokens-in N           tokens sent (with --tokens-out)\n"
    "  --tokens-out N          tokens received (with --tokens-in)\n"
    "  --latency-ms MS         how long the call took, in milliseconds\n"
    "  --model M               the model that served, when it was not the\n"
    "                          one chosen (a fallback)\n"
    "\n"
    "Options:\n"
    "  --controller ENDPOINT   the controller's ZeroMQ endpoint (default:\n"
    "                          $BURSAR_CONTROLLER, else tcp://127.0.0.1:7878)\n"
    "  --timeout MS            how long to wait for an answer, in\n"
    "                          milliseconds (default 5000; then exit 3)\n"
    "  --key SPEC              this client's CURVE secret key (default:\n"
    "                          $BURSAR_KEY): the key's 40 Z85 characters or a\n"
    "                          key file (docs/security.md)\n"
    "  --server-key SPEC       bursard's CURVE public key, needed with --key\n"
    "                          (default: $BURSAR_SERVER_KEY)\n"
    "  -h, --help              print this text\n"
    "  --version               print the version\n"
    "\n"
    "Environment:\n"
    "  BURSAR_CONTROLLER       the controller's endpoint, for --controller\n"
    "  BURSAR_KEY              this client's secret key, for --key\n"
    "  BURSAR_SERVER_KEY       bursard's public key, for --server-key\n";

/* Prints the usage lines to f; with full, the whole help text. */
static void
bursar_usage(FILE *f, int full)
{
    fputs(bursar_synopsis, f);
    if (full) {
        fputs(bursar_help, f);
        fputs(bursar_help_options, f);
    } else
        fputs("Try 'bursar --help' for the commands and options.\n", f);
}

/* Whether word is one of bursar's commands. */
static int
bursar_is_command(const char *word)
{
    static const char *const cmds[] = {
        "stats",   "export", "feedback", "choose",    "models",
        "ping",    "keygen", "adjust",   "reset-arm", "mark-down",
        "mark-up", "show",   "batch"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(word, cmds[i]) == 0)
            return 1;
    return 0;
}

/* No command after the global options: "bursar --controller stats" took
 * the command as --controller's value, so that option needs a value. */
static int
bursar_no_command(int argc, char **argv)
{
    const char *opt = argc >= 3 ? argv[argc - 2] : "";
    if (strncmp(opt, "--", 2) == 0 && !strchr(opt, '=') &&
        bursar_is_command(argv[argc - 1]))
        fprintf(stderr,
                "bursar: %s needs a value (it took %s, the command, as its "
                "value)\n",
                opt, argv[argc - 1]);
    else
        fprintf(stderr, "bursar: give a command\n");
    bursar_usage(stderr, 0);
    return 2;
}

/* The global options, up to the command. Returns -1 to go on, else the
 * exit status. */
static int
bursar_parse_global(int argc, char **argv, bursar_client_t *c)
{
    static const struct option lo[] = {
        {"controller", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int o;
    opterr = 0;
    /* "+": stop at the command; its options are its own */
    while ((o = bursar_getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        char *end = NULL;
        long v;
        switch (o) {
        case 'c':
            c->endpoint = optarg;
            c->endpoint_env = 0;
            break;
        case 'k':
            c->key = optarg;
            break;
        case 's':
            c->server_key = optarg;
            break;
        case 't':
            v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v <= 0 || v > INT_MAX) {
                fprintf(stderr,
                        "bursar: --timeout %s: not a number of "
                        "milliseconds\n",
                        optarg);
                return 2;
            }
            c->timeout_ms = (int)v;
            break;
        case 'h':
            bursar_usage(stdout, 1);
            return 0;
        case 'V':
            printf("bursar %s\n", BURSAR_VERSION);
            return 0;
        default:
            bursar_bad_option("", argv);
            bursar_usage(stderr, 0);
            return 2;
        }
    }
    if (optind >= argc)
        return bursar_no_command(argc, argv);
    return -1;
}

/* bursar keygen PREFIX: no controller involved. */
static int
bursar_keygen(const char *prefix)
{
    char pub[BURSAR_KEY_Z85 + 1], err[600];
    if (bursar_key_write_pair(prefix, pub, err, sizeof err) != 0) {
        fprintf(stderr, "bursar keygen: %s\n", err);
        return 1;
    }
    printf("%s.key: secret key (mode 0600; give it to this client only)\n"
           "%s.pub: public key %s\n"
           "for the allow-list: %s NAME ROLE\n",
           prefix, prefix, pub, pub);
    return 0;
}

/* Refuses an unknown command, or arguments where its command takes none,
 * before any connection: returns -1 to go on, else 2 (said why). */
static int
bursar_check_command(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (!bursar_is_command(cmd))
        fprintf(stderr, "bursar: unknown command %s\n", cmd);
    else if (strcmp(cmd, "keygen") == 0 && argc != 2)
        fprintf(stderr, "bursar keygen: give one PREFIX\n");
    else if ((strcmp(cmd, "models") == 0 || strcmp(cmd, "ping") == 0) &&
             argc > 1 && (argc > 2 || strcmp(argv[1], "--json") != 0))
        fprintf(stderr, "bursar %s: unexpected argument %s\n", cmd,
                argv[argc > 2 && strcmp(argv[1], "--json") == 0 ? 2 : 1]);
    else
        return -1;
    bursar_usage(stderr, 0);
    return 2;
}

/* Runs the admin command argv[0] (bursar_check_command knew it). */
static int
bursar_run_admin(bursar_client_t *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "adjust") == 0)
        return bursar_cmd_adjust(c, argc, argv);
    if (strcmp(cmd, "reset-arm") == 0)
        return bursar_cmd_reset_arm(c, argc, argv);
    if (strcmp(cmd, "mark-down") == 0 || strcmp(cmd, "mark-up") == 0)
        return bursar_cmd_mark(c, argc, argv, strcmp(cmd, "mark-down") == 0);
    return bursar_cmd_show(c, argc, argv);
}

/* Runs the command argv[0] with its arguments (bursar_check_command
 * passed them). */
static int
bursar_run(bursar_client_t *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "stats") == 0)
        return bursar_cmd_stats(c, argc, argv);
    if (strcmp(cmd, "export") == 0)
        return bursar_cmd_export(c, argc, argv);
    if (strcmp(cmd, "feedback") == 0)
        return bursar_cmd_feedback(c, argc, argv);
    if (strcmp(cmd, "choose") == 0)
        return bursar_cmd_choose(c, argc, argv);
    if (strcmp(cmd, "batch") == 0)
        return bursar_cmd_batch(c, argc, argv);
    if (strcmp(cmd, "models") == 0)
        return bursar_cmd_op(c, PROTO_OP_MODELS, argc);
    if (strcmp(cmd, "ping") != 0)
        return bursar_run_admin(c, argc, argv);
    return bursar_cmd_op(c, PROTO_OP_PING, argc);
}

int
main(int argc, char **argv)
{
    /* GSL's default handler aborts the process on any error (a Beta
     * quantile that does not converge); results are checked instead. */
    gsl_set_error_handler_off();
    bursar_client_t c = {0};
    c.endpoint = getenv("BURSAR_CONTROLLER");
    c.endpoint_env = c.endpoint && *c.endpoint;
    if (!c.endpoint_env)
        c.endpoint = "tcp://127.0.0.1:7878";
    c.timeout_ms = 5000;
    c.key = getenv("BURSAR_KEY");
    c.server_key = getenv("BURSAR_SERVER_KEY");
    if (c.key && !*c.key)
        c.key = NULL;
    if (c.server_key && !*c.server_key)
        c.server_key = NULL;
    int rc = bursar_parse_global(argc, argv, &c);
    if (rc >= 0)
        return rc;
    if ((rc = bursar_check_command(argc - optind, argv + optind)) >= 0)
        return rc;
    if (strcmp(argv[optind], "keygen") == 0)
        return bursar_keygen(argv[optind + 1]);
    char msg[600];
    if (proto_endpoint_check(c.endpoint, msg, sizeof msg) != 0) {
        fprintf(stderr, "bursar: %s: %s\n",
                c.endpoint_env ? "$BURSAR_CONTROLLER" : "--controller", msg);
        return 2;
    }
    if (bursar_connect(&c) != 0) {
        bursar_close(&c);
        return 3;
    }
    rc = bursar_run(&c, argc - optind, argv + optind);
    bursar_close(&c);
    return rc;
}
