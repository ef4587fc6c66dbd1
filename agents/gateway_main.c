/*
 * gateway_main.c - bursar-gateway, the OpenAI-compatible HTTP front door
 * (docs/gateway.md).
 *
 *   bursar-gateway --config FILE [--listen HOST:PORT] [--metrics HOST:PORT]
 *                  [--check-config]
 *   bursar-gateway --new-key TENANT
 *
 * Prints the port it serves on as one line on standard output (so that
 * --listen 127.0.0.1:0 can be used), logs on standard error (the metrics'
 * port among them), serves until SIGTERM or SIGINT, then stops cleanly
 * (exit 0).
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/gateway.h"

#ifndef BURSAR_VERSION /* the CMake project's version (agents/CMakeLists.txt)  \
                        */
#define BURSAR_VERSION "unknown"
#endif

/* The usage (help2man makes bursar-gateway.1 of it: dist/CMakeLists.txt). */
static const char *gw_usage =
    "usage: bursar-gateway --config FILE [--listen HOST:PORT]\n"
    "                      [--metrics HOST:PORT] [--quiet]\n"
    "       bursar-gateway --config FILE --check-config\n"
    "       bursar-gateway --new-key TENANT\n"
    "       bursar-gateway --help | --version\n"
    "\n"
    "An OpenAI-compatible HTTP gateway: POST /v1/chat/completions with\n"
    "model \"bursar/auto\", \"bursar/<bucket>\" or a configured model is\n"
    "routed by the controller (bursard), called, validated, escalated and\n"
    "reported (docs/gateway.md). SIGTERM or SIGINT stops it cleanly (exit\n"
    "0; 3 when an outcome could be neither delivered nor spooled).\n"
    "\n"
    "Options:\n"
    "  --config FILE         the configuration (JSON; docs/gateway.md)\n"
    "  --listen HOST:PORT    the address to serve on (default: the\n"
    "                        configuration's \"listen\", else 127.0.0.1:8080;\n"
    "                        port 0: any free port); the port is printed on\n"
    "                        standard output\n"
    "  --metrics HOST:PORT   serve Prometheus metrics (GET /metrics) on this\n"
    "                        address (overrides metrics.listen; port 0: any\n"
    "                        free port, printed on standard error)\n"
    "  --check-config        check the configuration and exit (0: ok)\n"
    "  --new-key TENANT      print a new application key for TENANT and its\n"
    "                        entry for the configuration's \"keys\"\n"
    "  --quiet               no log lines but errors\n"
    "  -h, --help            print this text\n"
    "  --version             print the version\n";

enum {
    GO_CONFIG = 256,
    GO_LISTEN,
    GO_METRICS,
    GO_CHECK,
    GO_NEWKEY,
    GO_QUIET,
    GO_VERSION
};

static const struct option gw_options[] = {
    {"config", required_argument, NULL, GO_CONFIG},
    {"listen", required_argument, NULL, GO_LISTEN},
    {"metrics", required_argument, NULL, GO_METRICS},
    {"check-config", no_argument, NULL, GO_CHECK},
    {"new-key", required_argument, NULL, GO_NEWKEY},
    {"quiet", no_argument, NULL, GO_QUIET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, GO_VERSION},
    {NULL, 0, NULL, 0}};

typedef struct gw_args {
    const char *config, *listen, *metrics, *new_key;
    int check, quiet;
} gw_args_t;

static int
gw_usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "bursar-gateway: %s%s\n%s", what, arg ? arg : "", gw_usage);
    return 2;
}

/* The options. Returns -1 to go on, or the exit status. */
static int
gw_parse(int argc, char **argv, gw_args_t *a)
{
    opterr = 0;
    int c;
    while ((c = bursar_getopt_long(argc, argv, ":h", gw_options, NULL)) != -1) {
        switch (c) {
        case GO_CONFIG:
            a->config = optarg;
            break;
        case GO_LISTEN:
            a->listen = optarg;
            break;
        case GO_METRICS:
            a->metrics = optarg;
            break;
        case GO_CHECK:
            a->check = 1;
            break;
        case GO_NEWKEY:
            a->new_key = optarg;
            break;
        case GO_QUIET:
            a->quiet = 1;
            break;
        case 'h':
            fputs(gw_usage, stdout);
            return 0;
        case GO_VERSION:
            printf("bursar-gateway %s\n", BURSAR_VERSION);
            return 0;
        case ':':
            return gw_usage_error("a value is missing for ", argv[optind - 1]);
        default:
            return gw_usage_error("unknown option: ", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return gw_usage_error("unexpected argument: ", argv[optind]);
    if (!a->new_key && !a->config)
        return gw_usage_error("--config FILE is required", NULL);
    return -1;
}

static int
gw_print_key(const char *tenant)
{
    char key[128], entry[256];
    if (gw_new_key(tenant, key, sizeof key, entry, sizeof entry) != 0) {
        fprintf(stderr,
                "bursar-gateway: --new-key: a tenant is 1 to %d characters "
                "of [A-Za-z0-9._-], not \"%s\"\n",
                GW_TENANT_MAX - 1, tenant);
        return 2;
    }
    printf("%s\n%s\n", key, entry);
    return 0;
}

/* Serves until SIGTERM or SIGINT; metrics on the configuration's
 * metrics.listen, or on metrics when not NULL. */
static int
gw_serve(gw_t *g, const char *metrics)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it */
    char err[256];
    if (gw_open(g, err, sizeof err) != 0 ||
        gw_reporters_start(g, err, sizeof err) != 0 ||
        gw_metrics_start(g, metrics, err, sizeof err) != 0 ||
        gw_http_start(g, err, sizeof err) != 0) {
        bursar_log("bursar-gateway: %s: %s\n", g->cfg.path, err);
        return 1;
    }
    printf("%u\n", (unsigned)g->port);
    fflush(stdout);
    if (!g->quiet)
        bursar_log("bursar-gateway: serving http on %s (port %u), controller "
                   "%s, %zu model%s, %zu key%s\n",
                   g->cfg.listen, (unsigned)g->port, g->cfg.controller,
                   g->n_models, g->n_models == 1 ? "" : "s", g->cfg.n_keys,
                   g->cfg.n_keys == 1 ? "" : "s");
    if (!g->quiet && g->web)
        bursar_log("bursar-gateway: metrics on %s, port %u (/metrics)\n",
                   metrics ? metrics : g->cfg.metrics_listen,
                   webd_port(g->web));
    int sig = 0;
    sigwait(&set, &sig);
    gw_metrics_stop(g);
    gw_http_stop(g);
    gw_reporters_stop(g); /* every report queued is sent (or spooled) */
    if (!g->quiet)
        bursar_log("bursar-gateway: stopped (signal %d): %lu requests, %lu "
                   "errors, %lu fallbacks, %lu escalations, %lu cancelled, %lu "
                   "outcomes lost\n",
                   sig, g->st.requests, g->st.errors, g->st.fallbacks,
                   g->st.escalations, g->st.cancelled, g->st.feedback_lost);
    return g->st.feedback_lost ? 3 : 0;
}

int
main(int argc, char **argv)
{
    gw_args_t a = {0};
    int rc = gw_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.new_key)
        return gw_print_key(a.new_key);
    signal(SIGPIPE, SIG_IGN);
    static gw_t g;
    char err[300];
    if (gw_cfg_load(&g.cfg, a.config, err, sizeof err) != 0) {
        fprintf(stderr, "bursar-gateway: %s: %s\n", a.config, err);
        gw_cfg_free(&g.cfg);
        return 1;
    }
    if (a.listen) {
        if (!webd_listen_ok(a.listen)) {
            gw_cfg_free(&g.cfg);
            return gw_usage_error("--listen: must be HOST:PORT (a port "
                                  "number up to 65535), not ",
                                  a.listen);
        }
        g.cfg.listen = a.listen;
    }
    if (a.metrics && !webd_listen_ok(a.metrics)) {
        gw_cfg_free(&g.cfg);
        return gw_usage_error("--metrics: must be HOST:PORT (a port number "
                              "up to 65535), not ",
                              a.metrics);
    }
    if (a.check) {
        printf("%s: ok\n", a.config);
        gw_cfg_free(&g.cfg);
        return 0;
    }
    g.quiet = a.quiet;
    rc = gw_serve(&g, a.metrics);
    gw_close(&g);
    gw_cfg_free(&g.cfg);
    return rc;
}
