/*
 * agent_main.c - bursar-agent, the reference worker.
 *
 *   bursar-agent --controller ENDPOINT [options] [TASKS.jsonl]
 *
 * Reads tasks as JSONL (the file, or standard input), routes each through
 * the controller, calls the providers (or a simulated scenario), validates,
 * reports, and writes one result per task as JSONL on standard output.
 * Progress and a summary go to standard error. docs/agents.md has it all.
 *
 * main runs the steps in order, each a function below that returns -1 to
 * go on or the exit status (0 done, 1 a setup failure, 2 a usage or
 * configuration error): the options, the configuration, the client and
 * the models, the models' keys, the runner, the tasks, the run, the
 * summary.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agents/autil.h"
#include "agents/bursar.h"
#include "agents/provider.h"
#include "agents/runreport.h"
#include "agents/runner.h"
#include "agents/validate.h"
#include "agents/wcfg.h"

#ifndef BURSAR_VERSION /* the CMake project's version (agents/CMakeLists.txt)  \
                        */
#define BURSAR_VERSION "unknown"
#endif

#define AGENT_GO_ON (-1) /* a step's answer: no exit yet */

/* The usage (help2man makes bursar-agent.1 of it: dist/CMakeLists.txt). */
static const char agent_usage[] =
    "usage: bursar-agent --controller ENDPOINT [OPTION]... [TASKS.jsonl]\n"
    "       bursar-agent --config FILE [OPTION]... [TASKS.jsonl]\n"
    "       bursar-agent --help | --version\n"
    "\n"
    "A bursar worker: reads tasks (TASKS.jsonl, else a --simulate\n"
    "scenario's tasks, else standard input), has the controller choose a\n"
    "model for each, calls the providers (or simulates them), validates,\n"
    "reports, and writes one result per task as JSON lines on standard\n"
    "output; progress and a summary go to standard error (docs/agents.md).\n"
    "A task is one JSON object per line: {\"id\":..,\"bucket\":..,\n"
    "\"messages\":[..]} or \"prompt\":\"..\", optional \"validate\".\n"
    "\n"
    "Exit status: 0 every task got an answer (valid or not), 1 a setup\n"
    "failure or a task without an answer (an error ended it), 2 a usage or\n"
    "configuration error (a model's API key variable unset among them;\n"
    "nothing was sent), 3 feedback lost (neither delivered nor spooled).\n"
    "\n"
    "Options:\n"
    "  --controller ENDPOINT    the controller's ZeroMQ endpoint (default:\n"
    "                           the configuration's \"controller\")\n"
    "  --config FILE            agent configuration (JSON; docs/agents.md);\n"
    "                           options given here win\n"
    "  --simulate SCENARIO      simulated providers (no API calls)\n"
    "  --spool PATH             feedback spool (default bursar-agent.spool)\n"
    "  --fallback-model NAME    local model while the controller is\n"
    "                           away, in every bucket that allows it\n"
    "                           and has no \"fallbacks\" entry (else the\n"
    "                           bucket's cheapest model)\n"
    "  --models FILE            the models' endpoints and key variables\n"
    "                           ({\"models\":{..}}; replaces the\n"
    "                           configuration's \"models\")\n"
    "  --key SPEC               this agent's CURVE secret key (40 Z85\n"
    "                           characters or a key file; default\n"
    "                           $BURSAR_KEY, else the configuration's\n"
    "                           curve.secret_key)\n"
    "  --server-key SPEC        the controller's CURVE public key (default\n"
    "                           $BURSAR_SERVER_KEY, else curve.server_key)\n"
    "  --skip-unkeyed           leave out (with a warning) the models whose\n"
    "                           API key variable is unset, instead of\n"
    "                           refusing to start\n"
    "  --concurrency N          tasks in flight (default 8)\n"
    "  --escalations N          after validation failures (default 2)\n"
    "  --provider-timeout-ms N  per HTTP attempt (default 60000)\n"
    "  --attempts N             HTTP attempts per call (default 3)\n"
    "  --backoff-ms N           first retry backoff (default 250)\n"
    "  --retry-after-max-ms N   longest Retry-After honoured (30000)\n"
    "  --ctl-timeout-ms N       controller request timeout (1000)\n"
    "  --ctl-backoff-max-ms N   longest wait before probing an absent\n"
    "                           controller again (5000)\n"
    "  --drain-ms N             time to replay the spool at the end\n"
    "                           (default 10000)\n"
    "  --report                 a readable summary on stderr at the end\n"
    "  --quiet                  no progress lines\n"
    "  -h, --help               print this text\n"
    "  --version                print the version\n"
    "\n"
    "Environment:\n"
    "  BURSAR_KEY               this agent's secret key, for --key\n"
    "  BURSAR_SERVER_KEY        the controller's public key, for\n"
    "                           --server-key\n";

static void
usage(FILE *f)
{
    fputs(agent_usage, f);
}

/* ------------------------------------------------------------ options */

typedef struct agent_opts {
    const char *endpoint;    /* --controller, else the configuration's */
    const char *config_path; /* --config */
    const char *sim_path;    /* --simulate */
    const char *spool;       /* --spool, else configuration, else default */
    const char *fallback;    /* --fallback-model, else configuration */
    int fallback_opt;        /* 1: fallback is --fallback-model's */
    const char *models_path; /* --models */
    const char *key;         /* --key, else $BURSAR_KEY, else curve */
    const char *server_key;  /* --server-key, else $BURSAR_SERVER_KEY */
    const char *tasks_path;  /* NULL: the scenario's tasks, or stdin */
    /* numbers: -1 when not given (the configuration's or the default) */
    long concurrency, escalations;
    long prov_timeout, attempts, backoff, ra_max; /* provider calls, ms */
    long ctl_timeout, ctl_backoff_max;            /* controller, ms */
    long drain_ms;                                /* default 10000 */
    int quiet, want_report;
    int skip_unkeyed; /* --skip-unkeyed */
} agent_opts_t;

/* The keys of the agent configuration (docs/agents.md), the JSON type of
 * each and the range of each number, which the numeric options share
 * (agent_num_path). The members of "provider" and "curve" are checked
 * here too; "routing" is route_parse's, "validators" holds specs
 * validator_parse reads (checked at start), "models" is the codec's (an
 * object or an array, as in a --models file). Anything else is an error
 * naming its path: a misspelt key must not silently leave a default in
 * place. */
static const wcfg_key_t agent_keys[] = {
    {"controller", cJSON_String, 0, 0, 0},
    {"spool", cJSON_String, 0, 0, 0},
    {"fallback_model", cJSON_String, 0, 0, 0},
    {"fallbacks", cJSON_Object, 0, 0, 0}, /* members: wcfg_check_fallbacks */
    WCFG_INT("concurrency", 1, 1024),
    WCFG_INT("max_escalations", 0, 16),
    WCFG_INT("controller_timeout_ms", 1, 600000),
    WCFG_INT("controller_attempts", 1, 10),
    WCFG_INT("controller_backoff_max_ms", 1, 3600000),
    WCFG_INT("drain_ms", 0, 3600000),
    {"skip_models_without_key", WCFG_BOOL, 0, 0, 0},
    WCFG_SHARED_KEYS,
    {"routing", cJSON_Object, 0, 0, 0},
    {"validators", cJSON_Object, 0, 0, 0},
    {"models", 0, 0, 0, 0},
};
#define AGENT_N_KEYS (sizeof agent_keys / sizeof agent_keys[0])

/* getopt_long values of the long options (past every character). */
enum agent_opt {
    AO_CONTROLLER = 256,
    AO_CONFIG,
    AO_SIMULATE,
    AO_SPOOL,
    AO_FALLBACK,
    AO_MODELS,
    AO_KEY,
    AO_SERVER_KEY,
    AO_CONCURRENCY,
    AO_ESCALATIONS,
    AO_PROV_TIMEOUT,
    AO_ATTEMPTS,
    AO_BACKOFF,
    AO_RA_MAX,
    AO_CTL_TIMEOUT,
    AO_CTL_BACKOFF_MAX,
    AO_DRAIN,
    AO_REPORT,
    AO_QUIET,
    AO_SKIP_UNKEYED,
    AO_VERSION,
};

static const struct option agent_options[] = {
    {"controller", required_argument, NULL, AO_CONTROLLER},
    {"config", required_argument, NULL, AO_CONFIG},
    {"simulate", required_argument, NULL, AO_SIMULATE},
    {"spool", required_argument, NULL, AO_SPOOL},
    {"fallback-model", required_argument, NULL, AO_FALLBACK},
    {"models", required_argument, NULL, AO_MODELS},
    {"key", required_argument, NULL, AO_KEY},
    {"server-key", required_argument, NULL, AO_SERVER_KEY},
    {"concurrency", required_argument, NULL, AO_CONCURRENCY},
    {"escalations", required_argument, NULL, AO_ESCALATIONS},
    {"provider-timeout-ms", required_argument, NULL, AO_PROV_TIMEOUT},
    {"attempts", required_argument, NULL, AO_ATTEMPTS},
    {"backoff-ms", required_argument, NULL, AO_BACKOFF},
    {"retry-after-max-ms", required_argument, NULL, AO_RA_MAX},
    {"ctl-timeout-ms", required_argument, NULL, AO_CTL_TIMEOUT},
    {"ctl-backoff-max-ms", required_argument, NULL, AO_CTL_BACKOFF_MAX},
    {"drain-ms", required_argument, NULL, AO_DRAIN},
    {"report", no_argument, NULL, AO_REPORT},
    {"quiet", no_argument, NULL, AO_QUIET},
    {"skip-unkeyed", no_argument, NULL, AO_SKIP_UNKEYED},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, AO_VERSION},
    {NULL, 0, NULL, 0}};

static void
agent_defaults(agent_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = o->escalations = -1;
    o->prov_timeout = o->attempts = o->backoff = o->ra_max = -1;
    o->ctl_timeout = o->ctl_backoff_max = -1;
    o->drain_ms = -1;
}

/* The field of a string option, or NULL. */
static const char **
agent_str_opt(agent_opts_t *o, int c)
{
    switch (c) {
    case AO_CONTROLLER:
        return &o->endpoint;
    case AO_CONFIG:
        return &o->config_path;
    case AO_SIMULATE:
        return &o->sim_path;
    case AO_SPOOL:
        return &o->spool;
    case AO_FALLBACK:
        return &o->fallback;
    case AO_MODELS:
        return &o->models_path;
    case AO_KEY:
        return &o->key;
    case AO_SERVER_KEY:
        return &o->server_key;
    }
    return NULL;
}

/* The field of a numeric option, or NULL. */
static long *
agent_num_opt(agent_opts_t *o, int c)
{
    switch (c) {
    case AO_CONCURRENCY:
        return &o->concurrency;
    case AO_ESCALATIONS:
        return &o->escalations;
    case AO_PROV_TIMEOUT:
        return &o->prov_timeout;
    case AO_ATTEMPTS:
        return &o->attempts;
    case AO_BACKOFF:
        return &o->backoff;
    case AO_RA_MAX:
        return &o->ra_max;
    case AO_CTL_TIMEOUT:
        return &o->ctl_timeout;
    case AO_CTL_BACKOFF_MAX:
        return &o->ctl_backoff_max;
    case AO_DRAIN:
        return &o->drain_ms;
    }
    return NULL;
}

/* The configuration key of a numeric option, whose range it shares. */
static const char *
agent_num_path(int c)
{
    switch (c) {
    case AO_CONCURRENCY:
        return "concurrency";
    case AO_ESCALATIONS:
        return "max_escalations";
    case AO_PROV_TIMEOUT:
        return "provider.timeout_ms";
    case AO_ATTEMPTS:
        return "provider.max_attempts";
    case AO_BACKOFF:
        return "provider.backoff_ms";
    case AO_RA_MAX:
        return "provider.retry_after_max_ms";
    case AO_CTL_TIMEOUT:
        return "controller_timeout_ms";
    case AO_CTL_BACKOFF_MAX:
        return "controller_backoff_max_ms";
    }
    return "drain_ms";
}

/* The long name of the option whose value is c, or NULL. */
static const char *
agent_opt_name(int c)
{
    for (const struct option *p = agent_options; p->name; p++)
        if (p->val == c)
            return p->name;
    return NULL;
}

/* A usage error: the message, then the usage. Returns the exit status. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
agent_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bursar-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage(stderr);
    return 2;
}

/* getopt_long's answer c for a bad option. */
static int
agent_bad_option(int c, char **argv)
{
    if (c == ':') /* a value missing */
        return agent_usage_error("option %s needs a value", argv[optind - 1]);
    if (optopt && agent_opt_name(optopt)) /* "--quiet=x" */
        return agent_usage_error("option --%s takes no value",
                                 agent_opt_name(optopt));
    if (optopt) /* an unknown short option */
        return agent_usage_error("unknown option -%c", optopt);
    /* an unknown or ambiguous long option: getopt_long has passed it */
    return agent_usage_error("unknown option %s", argv[optind - 1]);
}

/* One option. Returns AGENT_GO_ON or the exit status. */
static int
agent_option(agent_opts_t *o, int c, char **argv)
{
    const char **s = agent_str_opt(o, c);
    long *l = agent_num_opt(o, c);
    if (s) {
        *s = optarg;
    } else if (l) {
        char *end;
        errno = 0;
        *l = strtol(optarg, &end, 10);
        if (errno || end == optarg || *end)
            return agent_usage_error("--%s: '%s' is not a whole number",
                                     agent_opt_name(c), optarg);
        char why[128];
        if (!wcfg_num_ok(wcfg_key(agent_keys, AGENT_N_KEYS, agent_num_path(c)),
                         (double)*l, why, sizeof why))
            return agent_usage_error("--%s: %s", agent_opt_name(c), why);
    } else if (c == AO_QUIET) {
        o->quiet = 1;
    } else if (c == AO_REPORT) {
        o->want_report = 1;
    } else if (c == AO_SKIP_UNKEYED) {
        o->skip_unkeyed = 1;
    } else if (c == 'h') {
        usage(stdout);
        return 0;
    } else if (c == AO_VERSION) {
        printf("bursar-agent %s\n", BURSAR_VERSION);
        return 0;
    } else {
        return agent_bad_option(c, argv);
    }
    return AGENT_GO_ON;
}

/* Options anywhere, then at most one TASKS file. */
static int
agent_parse(int argc, char **argv, agent_opts_t *o)
{
    agent_defaults(o);
    opterr = 0;
    int c, rc = AGENT_GO_ON;
    while (rc == AGENT_GO_ON &&
           (c = bursar_getopt_long(argc, argv, ":h", agent_options, NULL)) !=
               -1)
        rc = agent_option(o, c, argv);
    if (rc != AGENT_GO_ON)
        return rc;
    if (optind < argc)
        o->tasks_path = argv[optind++];
    if (optind < argc)
        return agent_usage_error("one TASKS file only, not also %s",
                                 argv[optind]);
    return AGENT_GO_ON;
}

/* ------------------------------------------------------ configuration */

/* What the run needs, from the options and the configuration. */
typedef struct agent {
    agent_opts_t o;
    cJSON *cfg;     /* --config, or NULL */
    simprov_t *sim; /* --simulate, or NULL */
    route_t *route;
    bursar_opts_t bo;
    bursar_t *client;
    bursar_model_t *models; /* the run's models (agent_models) */
    size_t n_models;
    bursar_model_t *own; /* the agent's own table, or NULL */
    size_t n_own;
    const char *own_src;  /* where it came from: --models or --config */
    const char **unkeyed; /* models left out: key variable unset */
    size_t n_unkeyed;
    runreport_t *report; /* --report, or NULL */
    runner_t *run;
} agent_t;

/* The configuration's validators, each parsed (validate.h) so that a
 * bad one is named at start rather than failing every task of its
 * bucket. */
static int
agent_check_validators(const agent_t *a, char *err, size_t cap)
{
    const cJSON *v;
    cJSON_ArrayForEach(v,
                       cJSON_GetObjectItemCaseSensitive(a->cfg, "validators"))
    {
        validator_t *val = NULL;
        char why[200];
        int rc = validator_parse(v, &val, why, sizeof why);
        validator_destroy(&val);
        if (rc != 0) {
            snprintf(err, cap, "validators.%.64s: %s", v->string, why);
            return -1;
        }
    }
    return 0;
}

/* Reads --config, checked against agent_keys. A configuration error is
 * status 2, as a usage error: nothing was attempted. */
static int
agent_read_config(agent_t *a)
{
    const char *path = a->o.config_path;
    if (!path)
        return AGENT_GO_ON;
    char *s = NULL;
    if (bursar_read_file(path, &s, NULL) != 0) {
        fprintf(stderr, "bursar-agent: cannot read %s: %s\n", path,
                strerror(errno));
        return 2;
    }
    a->cfg = cJSON_Parse(s);
    if (!a->cfg) {
        long line, col;
        bursar_json_where(s, cJSON_GetErrorPtr(), &line, &col);
        fprintf(stderr,
                "bursar-agent: %s: not valid JSON near line %ld column %ld\n",
                path, line, col);
        free(s);
        return 2;
    }
    free(s);
    if (!cJSON_IsObject(a->cfg)) {
        fprintf(stderr, "bursar-agent: %s: must be a JSON object\n", path);
        return 2;
    }
    char err[256];
    if (wcfg_check_keys(a->cfg, "", agent_keys, AGENT_N_KEYS, err,
                        sizeof err) != 0 ||
        wcfg_check_fallbacks(
            cJSON_GetObjectItemCaseSensitive(a->cfg, "fallbacks"), err,
            sizeof err) != 0 ||
        agent_check_validators(a, err, sizeof err) != 0) {
        fprintf(stderr, "bursar-agent: %s: %s\n", path, err);
        return 2;
    }
    return AGENT_GO_ON;
}

/* ------------------------------------------------ the agent's own models */

/* The agent's own models table: text ({"models":...}) from src, read by
 * the codec, every base_url checked (prov_url_check); obj: "models" is an
 * object keyed by name (else an array), for the path in a message. */
static int
agent_own_table(agent_t *a, const char *src, int rc, const char *err)
{
    if (rc != 0) {
        fprintf(stderr, "bursar-agent: %s: %s\n", src, err);
        return 2;
    }
    a->own_src = src;
    return AGENT_GO_ON;
}

/* Where each model's calls go and which variable holds its key: --models
 * FILE, else the configuration's "models"; never the controller's word. */
static int
agent_own_models(agent_t *a)
{
    const char *path = a->o.models_path;
    if (path) {
        char *s = NULL;
        size_t len = 0;
        if (bursar_read_file(path, &s, &len) != 0) {
            fprintf(stderr, "bursar-agent: cannot read %s: %s\n", path,
                    strerror(errno));
            return 2;
        }
        cJSON *root = cJSON_ParseWithLength(s, len);
        int obj =
            cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "models"));
        cJSON_Delete(root);
        char err[256];
        int rc =
            wcfg_models_parse(s, len, obj, &a->own, &a->n_own, err, sizeof err);
        free(s);
        return agent_own_table(a, path, rc, err);
    }
    cJSON *ms = cJSON_GetObjectItemCaseSensitive(a->cfg, "models");
    if (!ms)
        return AGENT_GO_ON;
    char err[256];
    int rc = wcfg_models_member(ms, &a->own, &a->n_own, err, sizeof err);
    return agent_own_table(a, a->o.config_path, rc, err);
}

/* The controller's endpoint (from where: "--controller" or
 * "PATH: controller"): a ZeroMQ endpoint with its transport. */
static int
agent_endpoint_ok(const agent_t *a, int from_option)
{
    const char *e = a->o.endpoint;
    char msg[512];
    if (proto_endpoint_check(e, msg, sizeof msg) == 0 &&
        strncmp(e, "inproc://", 9) != 0)
        return AGENT_GO_ON;
    if (strncmp(e, "inproc://", 9) == 0)
        snprintf(msg, sizeof msg,
                 "\"%.200s\": an inproc endpoint is inside one process: "
                 "write tcp://HOST:PORT or ipc://PATH",
                 e);
    fprintf(stderr, "bursar-agent: %s%s%s: %s\n",
            from_option ? "" : a->o.config_path, from_option ? "" : ": ",
            from_option ? "--controller" : "controller", msg);
    return 2;
}

/* The configuration's numbers and flags the options did not give. */
static void
agent_config_opts(agent_t *a)
{
    agent_opts_t *o = &a->o;
    if (!o->spool)
        o->spool = wcfg_str(a->cfg, "spool");
    if (!o->spool)
        o->spool = "bursar-agent.spool";
    o->fallback_opt = o->fallback != NULL;
    if (!o->fallback)
        o->fallback = wcfg_str(a->cfg, "fallback_model");
    if (o->drain_ms < 0)
        o->drain_ms = wcfg_num(a->cfg, "drain_ms", 10000);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
            a->cfg, "skip_models_without_key")))
        o->skip_unkeyed = 1;
}

/* The configuration, what it fills in of the options, the routing rules,
 * the scenario and the agent's own models table. */
static int
agent_configure(agent_t *a)
{
    agent_opts_t *o = &a->o;
    int rc = agent_read_config(a);
    if (rc != AGENT_GO_ON)
        return rc;
    if (o->tasks_path && strcmp(o->tasks_path, "-") != 0 &&
        access(o->tasks_path, R_OK) != 0) { /* before connecting */
        fprintf(stderr, "bursar-agent: cannot read %s: %s\n", o->tasks_path,
                strerror(errno));
        return 2;
    }
    int from_option = o->endpoint != NULL;
    if (!o->endpoint)
        o->endpoint = wcfg_str(a->cfg, "controller");
    if (!o->endpoint) {
        fprintf(stderr, "bursar-agent: --controller ENDPOINT is required\n");
        usage(stderr);
        return 2;
    }
    if ((rc = agent_endpoint_ok(a, from_option)) != AGENT_GO_ON)
        return rc;
    agent_config_opts(a);
    char err[256];
    if (o->sim_path &&
        simprov_load(o->sim_path, &a->sim, err, sizeof err) != 0) {
        fprintf(stderr, "bursar-agent: scenario %s: %s\n", o->sim_path, err);
        return 2;
    }
    if (route_parse(cJSON_GetObjectItemCaseSensitive(a->cfg, "routing"),
                    &a->route, err, sizeof err) != 0) {
        fprintf(stderr, "bursar-agent: %s: %s\n", o->config_path, err);
        return 2;
    }
    return agent_own_models(a);
}

/* ---------------------------------------------- the client and models */

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The client (an unusable spool is a setup failure naming it). */
static int
agent_client(agent_t *a)
{
    char err[256];
    int rc = bursar_new_err(&a->client, &a->bo, err, sizeof err);
    if (rc == BURSAR_EIO) {
        fprintf(stderr, "bursar-agent: %s\n", err);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "bursar-agent: cannot create the client for %s: %s\n",
                a->o.endpoint, err[0] ? err : "(no reason given)");
        return 1;
    }
    return AGENT_GO_ON;
}

/* A CURVE key spec: the option, else the environment variable (when not
 * empty), else the configuration's "curve" member, else NULL. */
static const char *
agent_key_spec(const agent_t *a, const char *opt, const char *env,
               const char *member)
{
    const char *e = getenv(env);
    if (opt)
        return opt;
    if (e && *e)
        return e;
    return wcfg_str(cJSON_GetObjectItemCaseSensitive(a->cfg, "curve"), member);
}

static void
agent_client_opts(agent_t *a)
{
    const agent_opts_t *o = &a->o;
    bursar_opts_t *bo = &a->bo;
    bursar_opts_init(bo);
    bo->endpoint = o->endpoint;
    bo->spool_path = o->spool;
    bo->fallback_model = o->fallback;
    bo->timeout_ms =
        (int)(o->ctl_timeout > 0
                  ? o->ctl_timeout
                  : wcfg_num(a->cfg, "controller_timeout_ms", bo->timeout_ms));
    bo->attempts = (int)wcfg_num(a->cfg, "controller_attempts", bo->attempts);
    bo->backoff_max_ms =
        (int)(o->ctl_backoff_max > 0
                  ? o->ctl_backoff_max
                  : wcfg_num(a->cfg, "controller_backoff_max_ms",
                             bo->backoff_max_ms));
    if (bo->backoff_ms > bo->backoff_max_ms)
        bo->backoff_ms = bo->backoff_max_ms;
    bo->secret_key = agent_key_spec(a, o->key, "BURSAR_KEY", "secret_key");
    bo->server_key =
        agent_key_spec(a, o->server_key, "BURSAR_SERVER_KEY", "server_key");
}

/* A controller model the agent's table does not describe. */
static void
agent_note_default(void *ud, const bursar_model_t *m)
{
    const agent_t *a = ud;
    if (!a->o.quiet && !a->sim)
        fprintf(stderr,
                "bursar-agent: model %s is not in the agent's models "
                "table: calling %s with $%s\n",
                m->name, m->base_url, m->api_key_env);
}

/* The run's models (wcfg_merge). */
static void
agent_merge(agent_t *a, const bursar_model_t *ctl, size_t n_ctl)
{
    a->models = wcfg_merge(a->own, a->n_own, ctl, n_ctl, &a->n_models,
                           agent_note_default, a);
}

/* The models: the controller's list (waiting a little for it) merged
 * with the agent's own table; the table alone when the controller is
 * away; in simulation the scenario may do without. */
static int
agent_models(agent_t *a)
{
    int mrc;
    bursar_model_t *ctl = NULL;
    size_t n_ctl = 0;
    double until = autil_now_mono() + 3.0;
    while ((mrc = bursar_models(a->client, &ctl, &n_ctl)) ==
               BURSAR_EUNREACHABLE &&
           autil_now_mono() < until)
        sleep_ms(200);
    if (mrc == BURSAR_OK) {
        agent_merge(a, ctl, n_ctl);
        bursar_models_free(&ctl);
        return AGENT_GO_ON;
    }
    if (a->own) {
        fprintf(stderr, "bursar-agent: controller: %s; models from %s\n",
                bursar_strerror(mrc), a->own_src);
        agent_merge(a, NULL, 0);
        return AGENT_GO_ON;
    }
    if (a->sim)
        return AGENT_GO_ON;
    fprintf(stderr, "bursar-agent: cannot get the models from %s: %s %s\n",
            a->o.endpoint, bursar_strerror(mrc), bursar_last_error(a->client));
    return 1;
}

/* Whether the run knows where to call model (the controller's models,
 * the agent's table; in simulation the scenario may). */
static int
agent_has_model(const agent_t *a, const char *model)
{
    for (size_t i = 0; i < a->n_models; i++)
        if (strcmp(a->models[i].name, model) == 0)
            return 1;
    return a->sim != NULL;
}

/* One configured fallback (path: where it was configured): the model
 * known to the run and, when the controller said what bucket allows,
 * allowed there. Returns AGENT_GO_ON or 1. */
static int
agent_fallback_ok(const agent_t *a, const char *path, const char *bucket,
                  const char *model)
{
    const char *src = a->o.config_path && !(a->o.fallback_opt && !bucket)
                          ? a->o.config_path
                          : "options";
    if (!agent_has_model(a, model)) {
        fprintf(stderr,
                "bursar-agent: %s: %s: model \"%s\" is neither one of the "
                "controller's models nor in the agent's models table\n",
                src, path, model);
        return 2;
    }
    int ok = bucket ? bursar_bucket_allows(a->client, bucket, model) : 1;
    if (ok == 0 || ok == -1) {
        fprintf(stderr,
                ok == 0 ? "bursar-agent: %s: %s: bucket \"%s\" does not allow "
                          "model \"%s\" (the controller's models reply)\n"
                        : "bursar-agent: %s: %s: the controller has no bucket "
                          "\"%s\" (for model \"%s\")\n",
                src, path, bucket, model);
        return 2;
    }
    return AGENT_GO_ON;
}

/* The configured fallbacks: the default one (fallback_model, the
 * option), used in every bucket that allows it, and the buckets' own
 * ("fallbacks"), each checked and handed to the client. */
static int
agent_fallbacks(agent_t *a)
{
    if (a->o.fallback &&
        agent_fallback_ok(
            a, a->o.fallback_opt ? "--fallback-model" : "fallback_model", NULL,
            a->o.fallback) != AGENT_GO_ON)
        return 2;
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(a->cfg, "fallbacks");
    const cJSON *m;
    cJSON_ArrayForEach(m, fb)
    {
        char path[96];
        snprintf(path, sizeof path, "fallbacks.%s", m->string);
        if (agent_fallback_ok(a, path, m->string, m->valuestring) !=
                AGENT_GO_ON ||
            bursar_set_fallback(a->client, m->string, m->valuestring) !=
                BURSAR_OK)
            return 2;
    }
    if (!a->o.fallback && !fb && !a->o.quiet &&
        bursar_bucket_allows(a->client, "", "") == -2)
        fprintf(stderr,
                "bursar-agent: no bucket's models are known (the controller "
                "is away or does not say) and no fallback_model or "
                "fallbacks is configured: tasks fail while it is away\n");
    return AGENT_GO_ON;
}

/* ---------------------------------------------------- the models' keys */

/* Why model m has no key: NULL when it needs none or its variable holds
 * one, else "not set" or "empty" (nothing but white space counts as
 * empty: no provider takes it). */
static const char *
agent_unkeyed(const bursar_model_t *m)
{
    if (!m->api_key_env[0])
        return NULL;
    const char *v = getenv(m->api_key_env);
    if (!v)
        return "not set";
    while (*v && isspace((unsigned char)*v))
        v++;
    return *v ? NULL : "empty";
}

/* Every model of the run that needs a key (a non-empty api_key_env) has
 * it in its variable, before any request: else a configuration error
 * naming each model, its variable and how to set it (status 2), or, with
 * --skip-unkeyed, the model left out of every choose with a warning.
 * Never a call that fails for want of a key, reported to the controller
 * as the provider's failure. In simulation no key is used. */
static int
agent_check_keys(agent_t *a)
{
    size_t n = 0;
    const char *var = NULL; /* the first unset variable, for the hint */
    for (size_t i = 0; !a->sim && i < a->n_models; i++)
        n += agent_unkeyed(&a->models[i]) != NULL;
    if (n == 0)
        return AGENT_GO_ON;
    int skip = a->o.skip_unkeyed;
    a->unkeyed = bursar_calloc(n, sizeof *a->unkeyed);
    for (size_t i = 0; i < a->n_models; i++) {
        const bursar_model_t *m = &a->models[i];
        const char *why = agent_unkeyed(m);
        if (!why)
            continue;
        a->unkeyed[a->n_unkeyed++] = m->name;
        var = var ? var : m->api_key_env;
        fprintf(stderr,
                "bursar-agent: model %s needs its API key in $%s, which is "
                "%s%s\n",
                m->name, m->api_key_env, why,
                skip ? ": left out of this run" : "");
    }
    if (skip && n < a->n_models && n <= RUNNER_MAX_LEFT_OUT)
        return AGENT_GO_ON;
    if (skip)
        fprintf(stderr, "bursar-agent: %s\n",
                n < a->n_models ? "too many models to leave out"
                                : "no model is left to call");
    fprintf(stderr,
            "bursar-agent: set the variable (export %s=YOUR_KEY), or give a "
            "model that needs no key \"api_key_env\": \"\" in the agent's "
            "models table (--models, the configuration's \"models\")%s\n",
            var,
            skip ? ""
                 : ", or leave such models out: --skip-unkeyed "
                   "(\"skip_models_without_key\": true)");
    return 2;
}

/* A bucket named in the configuration at path: one of the controller's
 * (its models reply), else an error with the nearest name. Returns
 * AGENT_GO_ON or 2. */
static int
agent_bucket_known(const agent_t *a, const char *path, const char *bucket)
{
    if (bursar_bucket_allows(a->client, bucket, NULL) != -1)
        return AGENT_GO_ON;
    const char *near = NULL, *b;
    int best = 3;
    for (size_t i = 0; (b = bursar_bucket_name(a->client, i)); i++) {
        int d = bursar_edit_distance(bucket, b, 2);
        if (d < best) {
            best = d;
            near = b;
        }
    }
    fprintf(stderr,
            "bursar-agent: %s: %s: the controller has no bucket \"%s\"%s%s%s\n",
            a->o.config_path, path, bucket, near ? " (did you mean " : "",
            near ? near : "", near ? "?)" : "");
    return 2;
}

/* The buckets the configuration names, routing's (its default, each
 * rule's) and the validators' (but "*"), are the controller's, when its
 * models reply said which it has: a misspelt one would fail every task
 * routed there, or silently leave its tasks unvalidated. */
static int
agent_check_buckets(const agent_t *a)
{
    if (bursar_bucket_allows(a->client, "", NULL) == -2)
        return AGENT_GO_ON; /* the controller did not say */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(a->cfg, "routing");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "default");
    if (cJSON_IsString(d) &&
        agent_bucket_known(a, "routing.default", d->valuestring) != AGENT_GO_ON)
        return 2;
    const cJSON *x;
    int i = 0;
    char path[96];
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "rules"))
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(x, "bucket");
        snprintf(path, sizeof path, "routing.rules[%d].bucket", i++);
        if (cJSON_IsString(b) &&
            agent_bucket_known(a, path, b->valuestring) != AGENT_GO_ON)
            return 2;
    }
    cJSON_ArrayForEach(x,
                       cJSON_GetObjectItemCaseSensitive(a->cfg, "validators"))
    {
        snprintf(path, sizeof path, "validators.%.64s", x->string);
        if (strcmp(x->string, "*") != 0 &&
            agent_bucket_known(a, path, x->string) != AGENT_GO_ON)
            return 2;
    }
    return AGENT_GO_ON;
}

/* The client, the models (which tell the client what each bucket allows,
 * for its local decisions), the buckets the configuration names, the
 * models' keys, then the configured fallbacks. */
static int
agent_connect(agent_t *a)
{
    agent_client_opts(a);
    int rc = agent_client(a);
    if (rc == AGENT_GO_ON)
        rc = agent_models(a);
    if (rc == AGENT_GO_ON)
        rc = agent_check_buckets(a);
    if (rc == AGENT_GO_ON)
        rc = agent_check_keys(a);
    if (rc == AGENT_GO_ON)
        rc = agent_fallbacks(a);
    return rc;
}

/* --------------------------------------------------------- the runner */

static void
emit(void *ud, cJSON *res)
{
    if (ud)
        runreport_add(ud, res);
    char *s = cJSON_PrintUnformatted(res);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    cJSON_Delete(res);
}

/* Provider calls: the configuration's "provider", then the options. */
static void
agent_provider_opts(const agent_t *a, prov_opts_t *p)
{
    const agent_opts_t *o = &a->o;
    wcfg_provider_opts(cJSON_GetObjectItemCaseSensitive(a->cfg, "provider"), p);
    if (o->prov_timeout > 0)
        p->timeout_ms = o->prov_timeout;
    if (o->attempts > 0)
        p->max_attempts = (int)o->attempts;
    if (o->backoff >= 0)
        p->backoff_ms = (int)o->backoff;
    if (o->ra_max >= 0)
        p->retry_after_max_ms = (int)o->ra_max;
}

/* A model left out at run time (runner.h): said once, on stderr. */
static void
agent_note_left_out(void *ud, const bursar_model_t *m, const prov_result_t *r)
{
    (void)ud;
    long st = r->http_status;
    if (st == 401 || st == 403)
        fprintf(stderr,
                "bursar-agent: model %s: the provider refused its API key "
                "($%s): %s: left out of the rest of this run (a "
                "configuration problem, not reported to the controller as "
                "the provider's failure)\n",
                m->name, m->api_key_env[0] ? m->api_key_env : "none", r->error);
    else
        fprintf(stderr,
                "bursar-agent: model %s: %s: left out of the rest of this "
                "run\n",
                m->name, r->error);
}

static int
agent_runner(agent_t *a)
{
    const agent_opts_t *o = &a->o;
    runner_opts_t ro;
    runner_opts_init(&ro);
    agent_provider_opts(a, &ro.prov);
    ro.concurrency = (size_t)wcfg_num(a->cfg, "concurrency", 8);
    if (o->concurrency > 0)
        ro.concurrency = (size_t)o->concurrency;
    ro.max_escalations = (int)wcfg_num(a->cfg, "max_escalations", 2);
    if (o->escalations >= 0)
        ro.max_escalations = (int)o->escalations;
    ro.route = a->route;
    ro.validators = cJSON_GetObjectItemCaseSensitive(a->cfg, "validators");
    ro.sim = a->sim;
    ro.emit = emit;
    ro.exclude = a->unkeyed;
    ro.n_exclude = a->n_unkeyed;
    ro.note = agent_note_left_out;
    a->report = o->want_report ? runreport_new() : NULL;
    ro.emit_ud = a->report;
    if (runner_new(&a->run, a->client, a->models, a->n_models, &ro) != 0) {
        fprintf(stderr, "bursar-agent: cannot initialise libcurl\n");
        return 1;
    }
    return AGENT_GO_ON;
}

/* ---------------------------------------------------------- the tasks */

/* The scenario's generated tasks. */
static void
agent_sim_tasks(agent_t *a)
{
    for (size_t i = 0; i < simprov_task_count(a->sim); i++) {
        cJSON *t = cJSON_CreateObject();
        char id[32], prompt[96];
        const char *b = simprov_task_bucket(a->sim, i);
        snprintf(id, sizeof(id), "sim-%06zu", i + 1);
        snprintf(prompt, sizeof(prompt), "simulated %s task %zu", b, i + 1);
        cJSON_AddStringToObject(t, "id", id);
        cJSON_AddStringToObject(t, "bucket", b);
        cJSON_AddStringToObject(t, "prompt", prompt);
        runner_add(a->run, t, i);
    }
}

/* One line of the tasks: a task, nothing (blank), or a result with the
 * error. */
static void
agent_task_line(agent_t *a, const char *line, size_t lineno, size_t *idx)
{
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    if (!*line)
        return;
    cJSON *t = cJSON_Parse(line);
    if (cJSON_IsObject(t)) {
        runner_add(a->run, t, (*idx)++);
        return;
    }
    cJSON_Delete(t);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddNullToObject(res, "id");
    char m[96];
    snprintf(m, sizeof(m), "line %zu: not a JSON object", lineno);
    cJSON_AddStringToObject(res, "error", m);
    cJSON_AddBoolToObject(res, "valid", 0);
    emit(NULL, res);
}

/* Tasks: the file, the scenario's generated tasks, or stdin. Read whole
 * before starting, so no provider call waits on input. */
static int
agent_tasks(agent_t *a)
{
    const char *path = a->o.tasks_path;
    if (!path && a->sim && simprov_task_count(a->sim) > 0) {
        agent_sim_tasks(a);
        return AGENT_GO_ON;
    }
    char *text = NULL;
    int from_file = path && strcmp(path, "-") != 0;
    if (bursar_read_file(from_file ? path : "-", &text, NULL) != 0 &&
        from_file) {
        fprintf(stderr, "bursar-agent: cannot read %s: %s\n", path,
                strerror(errno));
        return 2;
    }
    size_t lineno = 0, idx = 0;
    for (char *line = text, *next; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        agent_task_line(a, line, ++lineno, &idx);
    }
    free(text);
    return AGENT_GO_ON;
}

/* ----------------------------------------------- the run, the summary */

static void
progress(const runner_t *r, const bursar_t *b, int final)
{
    runner_stats_t st;
    bursar_stats_t bs;
    runner_stats(r, &st);
    bursar_stats(b, &bs);
    fprintf(stderr,
            "bursar-agent: %s%zu/%zu done, %zu valid, %zu escalations, "
            "%zu provider errors, %zu local decisions, %zu spooled, "
            "%zu replayed, $%.4f\n",
            final ? "finished: " : "", st.done, st.tasks, st.valid,
            st.escalations, st.provider_errors, st.local_decisions, bs.spooled,
            bs.replayed, st.cost_usd);
}

/* Every task to its result, then spooled feedback its chance to reach
 * the controller (for up to --drain-ms). Returns the last replay's code. */
static int
agent_run(agent_t *a)
{
    double last = autil_now_mono();
    while (runner_run(a->run, 200) > 0) {
        if (!a->o.quiet && autil_now_mono() - last >= 1.0) {
            progress(a->run, a->client, 0);
            last = autil_now_mono();
        }
    }
    int rrc = bursar_replay(a->client, NULL);
    double drain_until = autil_now_mono() + a->o.drain_ms / 1000.0;
    while (rrc == BURSAR_EUNREACHABLE && autil_now_mono() < drain_until) {
        sleep_ms(200);
        rrc = bursar_replay(a->client, NULL);
    }
    return rrc;
}

/* --report: the run beside the controller's stats. */
static void
agent_report(agent_t *a)
{
    char *req = proto_format_simple(PROTO_OP_STATS);
    char *reply = NULL;
    cJSON *stats = NULL;
    if (bursar_request(a->client, req, &reply) == BURSAR_OK)
        stats = cJSON_Parse(reply);
    free(reply);
    free(req);
    runreport_print(a->report, stderr, stats, a->sim, a->models, a->n_models);
    cJSON_Delete(stats);
}

/* rrc: how the spool's replay ended (agent_run). */
static void
agent_summary(agent_t *a, int rrc)
{
    if (!a->o.quiet || rrc != BURSAR_OK)
        progress(a->run, a->client, 1);
    if (rrc != BURSAR_OK)
        fprintf(stderr,
                "bursar-agent: the spool %s still holds feedback (%s); it "
                "is replayed by the next run\n",
                a->o.spool, bursar_strerror(rrc));
    runner_stats_t st;
    runner_stats(a->run, &st);
    if (st.left_out || a->n_unkeyed)
        fprintf(stderr,
                "bursar-agent: %zu model%s left out of the run (key variable "
                "unset), %zu at run time (key refused, no provider details); "
                "%zu step%s failed by the setup or the request, none "
                "reported as a provider error\n",
                a->n_unkeyed, a->n_unkeyed == 1 ? "" : "s", st.left_out,
                st.setup_errors, st.setup_errors == 1 ? "" : "s");
    bursar_stats_t bs;
    bursar_stats(a->client, &bs);
    if (!a->o.quiet)
        fprintf(stderr,
                "bursar-agent: controller requests %zu, timeouts %zu, "
                "replay dropped %zu, duplicates %zu, local feedback %zu\n",
                bs.requests, bs.timeouts, bs.replay_dropped, bs.duplicates,
                bs.local_feedback);
    if (a->report)
        agent_report(a);
}

/* Tasks that got no answer (an error ended them, not a failed
 * validation): said on stderr. Returns 1 if any, else 0. */
static int
agent_unanswered(const runner_stats_t *st)
{
    if (!st->unanswered)
        return 0;
    fprintf(stderr,
            "bursar-agent: %zu of %zu task%s got no answer: %s ended with an "
            "error (each result says which in \"error\")\n",
            st->unanswered, st->done, st->done == 1 ? "" : "s",
            st->unanswered == 1 ? "it" : "they");
    return 1;
}

/* The exit status of a run: 0; 3 when feedback was lost (neither
 * delivered nor spooled, or a local decision's booking refused); else 1
 * when a task got no answer because of an error; said on stderr. */
static int
agent_lost(const agent_t *a)
{
    runner_stats_t st;
    runner_stats(a->run, &st);
    bursar_stats_t bs;
    bursar_stats(a->client, &bs);
    int unanswered = agent_unanswered(&st);
    if (!st.feedback_lost && !bs.book_refused)
        return unanswered;
    if (st.feedback_lost)
        fprintf(stderr,
                "bursar-agent: %zu feedback event%s lost: neither delivered "
                "to the controller nor written to the spool %s (each step "
                "says why in \"feedback_error\")\n",
                st.feedback_lost, st.feedback_lost == 1 ? "" : "s", a->o.spool);
    if (bs.book_refused)
        fprintf(stderr,
                "bursar-agent: %zu spooled booking%s of local decisions "
                "refused by the controller (too old, or a controller without "
                "the op book): that spend is not in its ledger\n",
                bs.book_refused, bs.book_refused == 1 ? "" : "s");
    return 3;
}

static void
agent_free(agent_t *a)
{
    runreport_destroy(&a->report);
    runner_destroy(&a->run);
    route_destroy(&a->route);
    bursar_models_free(&a->models);
    bursar_models_free(&a->own);
    free(a->unkeyed);
    bursar_destroy(&a->client);
    simprov_destroy(&a->sim);
    cJSON_Delete(a->cfg);
}

int
main(int argc, char **argv)
{
    agent_t a;
    memset(&a, 0, sizeof a);
    int rc = agent_parse(argc, argv, &a.o);
    if (rc != AGENT_GO_ON)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* a spool at the file size limit fails its write (an event counted
     * lost, agent_lost) instead of killing the agent */
    signal(SIGXFSZ, SIG_IGN);
    if ((rc = agent_configure(&a)) == AGENT_GO_ON &&
        (rc = agent_connect(&a)) == AGENT_GO_ON &&
        (rc = agent_runner(&a)) == AGENT_GO_ON &&
        (rc = agent_tasks(&a)) == AGENT_GO_ON) {
        agent_summary(&a, agent_run(&a));
        rc = agent_lost(&a);
    }
    agent_free(&a);
    return rc;
}
