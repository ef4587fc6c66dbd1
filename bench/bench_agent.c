/*
 * bench_agent.c - agents/ figures.
 *
 *   bench_agent [CALLS]
 *
 * Starts bursar-mock-provider (from the directory of this program) and
 * measures provider calls per second through the curl multi pool at
 * several concurrency limits, with an instant mock and with 50 ms of
 * latency per call (the pool's parallelism); then the latency of a
 * durable spool append (one write + fsync per feedback event).
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_cli.h"
#include "agents/autil.h"
#include "agents/bursar.h"
#include "agents/provider.h"

static int done_ok;

static void
on_done(void *ud, const bursar_model_t *m, prov_result_t *r)
{
    (void)ud;
    (void)m;
    done_ok += r->ok;
}

static double
calls_per_s(int port, const char *model, size_t inflight, int calls)
{
    prov_opts_t o;
    prov_opts_init(&o);
    o.max_inflight = inflight;
    prov_pool_t *p;
    if (prov_pool_new(&p, &o) != 0)
        return 0;
    bursar_model_t m;
    memset(&m, 0, sizeof(m));
    snprintf(m.name, sizeof(m.name), "%s", model);
    snprintf(m.model, sizeof(m.model), "%s", model);
    snprintf(m.base_url, sizeof(m.base_url), "http://127.0.0.1:%d/v1", port);
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hello\"}]");
    done_ok = 0;
    double t0 = autil_now_mono();
    for (int i = 0; i < calls; i++)
        prov_pool_submit(p, &m, msgs, on_done, NULL);
    while (prov_pool_run(p, 1000) > 0)
        ;
    double dt = autil_now_mono() - t0;
    cJSON_Delete(msgs);
    prov_pool_destroy(&p);
    if (done_ok != calls)
        fprintf(stderr, "bench_agent: %d of %d calls failed\n", calls - done_ok,
                calls);
    return calls / dt;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Starts bursar-mock-provider (beside argv0) in dir with a script of a
 * fast and a slow model. Returns its port (0: it did not start), *pid. */
static int
start_mock(const char *argv0, const char *dir, pid_t *pid)
{
    char self[4096], mock[4200], script[256], portf[256];
    snprintf(self, sizeof(self), "%s", argv0);
    snprintf(mock, sizeof(mock), "%s/bursar-mock-provider", dirname(self));
    snprintf(script, sizeof(script), "%s/script.json", dir);
    snprintf(portf, sizeof(portf), "%s/port", dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return 0;
    fputs("{\"models\":{\"fast\":{\"default\":{\"content\":\"ok\"}},"
          "\"slow\":{\"default\":{\"content\":\"ok\",\"latency_ms\":50}}}}",
          f);
    fclose(f);
    *pid = fork();
    if (*pid == 0) {
        int fd = open(portf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        execl(mock, mock, "--script", script, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        char *text = NULL;
        if (bursar_read_file(portf, &text, NULL) == 0)
            port = atoi(text);
        free(text);
        if (!port) {
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!port)
        fprintf(stderr, "bench_agent: cannot start %s\n", mock);
    return port;
}

/* Durable spool appends: feedback for local decisions (one line, write +
 * fsync, under flock), n of them. */
static void
bench_spool(const char *dir, int n)
{
    char spool[256];
    snprintf(spool, sizeof(spool), "%s/spool", dir);
    bursar_opts_t o;
    bursar_opts_init(&o);
    o.endpoint = "tcp://127.0.0.1:9";
    o.spool_path = spool;
    bursar_t *b;
    if (bursar_new(&b, &o) != 0)
        return;
    bursar_decision_t d;
    memset(&d, 0, sizeof(d));
    d.local = 1;
    snprintf(d.model, sizeof(d.model), "m");
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.cost_usd = 0.001;
    double *lat = bursar_calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double t0 = autil_now_mono();
        bursar_feedback(b, &d, &fb);
        lat[i] = (autil_now_mono() - t0) * 1e6;
    }
    qsort(lat, (size_t)n, sizeof(double), cmp);
    printf("spool append (write + fsync): p50 %.0f us, p99 %.0f us\n",
           lat[n / 2], lat[n * 99 / 100]);
    free(lat);
    bursar_destroy(&b);
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv,
                  "usage: bench_agent [calls]\n"
                  "  provider calls through the agent against the instant "
                  "mock provider\n") == 0)
        return 0;
    int calls = argc > 1 ? atoi(argv[1]) : 2000;
    char dir[] = "/tmp/bench-agent-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    pid_t pid = -1;
    int port = start_mock(argv[0], dir, &pid);
    if (!port) {
        if (pid > 0)
            kill(pid, SIGTERM);
        return 1;
    }
    size_t lim[] = {1, 8, 32};
    for (size_t i = 0; i < 3; i++)
        printf("provider calls, instant mock, %2zu in flight: %8.0f calls/s\n",
               lim[i], calls_per_s(port, "fast", lim[i], calls));
    for (size_t i = 0; i < 3; i++)
        printf("provider calls, 50 ms mock,   %2zu in flight: %8.0f calls/s "
               "(ideal %.0f)\n",
               lim[i], calls_per_s(port, "slow", lim[i], calls / 10),
               (double)lim[i] * 20.0);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    bench_spool(dir, 500);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
