/*
 * bench_ctl - controller benchmarks, in the manner of libzmq's
 * local_lat/remote_lat: a few labelled lines with units.
 *
 *   bench_ctl [ROUND_TRIPS] [PAIR_SECONDS] [STATE_PARENT_DIR]
 *
 *   0. write + fdatasync of 4 KiB in STATE_PARENT_DIR: the floor under a
 *      durable commit.
 *   1. round trip of a bare ZeroMQ ROUTER echo (in-process thread, TCP
 *      loopback), then of "choose" against bursard over TCP loopback with
 *      durable commits: p50 and p99 in microseconds.
 *   2. 8 concurrent DEALER clients, each keeping 32 choose+feedback pairs
 *      in flight: pairs per second, over TCP loopback with store.sync
 *      "full" and "nometasync", and over ipc:// with "full".
 *   3. resident memory of bursard with 1,000 buckets of 16 arms, after one
 *      decision in every bucket.
 *
 * bursard is taken from the directory of this program (or
 * $BURSAR_BIN_DIR); its state goes to a fresh directory under
 * STATE_PARENT_DIR (default /tmp), removed at the end.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "agents/proto.h"

static void *bench_ctx;
static char bench_bin[1024];
static char bench_dir[512];

static double
bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
bench_pct(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, bench_cmp);
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    return v[k];
}

static int
bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- the disk ------------------------------------------------------ */

/* What one synchronous commit costs at least on this filesystem: write
 * 4 KiB and fdatasync, n times. */
static void
bench_fsync(int n)
{
    char path[700], page[4096];
    snprintf(path, sizeof path, "%s/fsync.tmp", bench_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        return;
    }
    memset(page, 'x', sizeof page);
    double *v = malloc(sizeof *v * (size_t)n);
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        if (pwrite(fd, page, sizeof page, (off_t)(i % 64) * 4096) < 0 ||
            fdatasync(fd) != 0)
            perror("fdatasync");
        v[i] = (bench_now() - t0) * 1e6;
    }
    close(fd);
    unlink(path);
    double p50 = bench_pct(v, (size_t)n, 0.50);
    double p99 = bench_pct(v, (size_t)n, 0.99);
    printf("%-34s p50 %8.1f us   p99 %8.1f us   (%d x 4 KiB in %s)\n",
           "write+fdatasync (the disk)", p50, p99, n, bench_dir);
    free(v);
}

/* ---- the echo server ---------------------------------------------- */

static void *
bench_echo_thread(void *arg)
{
    void *s = arg;
    for (;;) {
        zmq_msg_t parts[3];
        int n = 0, more = 1;
        while (more && n < 3) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], s, 0) < 0)
                return NULL; /* context terminated */
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        for (int i = 0; i < n; i++)
            zmq_msg_send(&parts[i], s, i + 1 < n ? ZMQ_SNDMORE : 0);
    }
}

/* Requests are written and replies read by the wire codec (proto.h). */
static char *bench_choose; /* {"op":"choose","bucket":"code"} */
static char *bench_ping;   /* {"op":"ping"} */

static void
bench_rtt(const char *label, const char *ep, const char *msg, int n)
{
    void *s = zmq_socket(bench_ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, ep);
    char buf[4096];
    double *v = malloc(sizeof *v * (size_t)n);
    for (int i = 0; i < n / 10 + 10; i++) { /* warm up */
        zmq_send(s, msg, strlen(msg), 0);
        zmq_recv(s, buf, sizeof buf, 0);
    }
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        zmq_send(s, msg, strlen(msg), 0);
        zmq_recv(s, buf, sizeof buf, 0);
        v[i] = (bench_now() - t0) * 1e6;
    }
    double p50 = bench_pct(v, (size_t)n, 0.50);
    double p99 = bench_pct(v, (size_t)n, 0.99);
    printf("%-34s p50 %8.1f us   p99 %8.1f us   (%d round trips)\n", label, p50,
           p99, n);
    free(v);
    zmq_close(s);
}

/* ---- bursard -------------------------------------------------------- */

static pid_t
bench_start(const char *config_json, const char *ep, const char *state)
{
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/config.json", bench_dir);
    FILE *f = fopen(cfg, "w");
    if (!f) {
        perror(cfg);
        exit(1);
    }
    fputs(config_json, f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bench_bin, bench_bin, "--config", cfg, "--state-dir", state,
              "--listen", ep, "--quiet", (char *)NULL);
        perror(bench_bin);
        _exit(127);
    }
    void *s = zmq_socket(bench_ctx, ZMQ_REQ);
    int linger = 0, t = 100;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_connect(s, ep);
    char buf[256];
    for (int i = 0; i < 300; i++) {
        zmq_send(s, bench_ping, strlen(bench_ping), 0);
        if (zmq_recv(s, buf, sizeof buf, 0) > 0)
            break;
        zmq_close(s);
        s = zmq_socket(bench_ctx, ZMQ_REQ);
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
        zmq_connect(s, ep);
    }
    zmq_close(s);
    return pid;
}

static void
bench_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
}

static const char *bench_models =
    "\"models\":{"
    "\"gpt-4o\":{\"provider\":\"openai\",\"price_in_per_mtok\":2.5,"
    "\"price_out_per_mtok\":10},"
    "\"gpt-4o-mini\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.15,"
    "\"price_out_per_mtok\":0.6},"
    "\"claude-sonnet\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":3,"
    "\"price_out_per_mtok\":15},"
    "\"claude-haiku\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":0.8,"
    "\"price_out_per_mtok\":4}}";

static char *
bench_config(const char *sync)
{
    char *c = malloc(4096);
    snprintf(c, 4096,
             "{%s,\"buckets\":{"
             "\"code\":{\"models\":[\"gpt-4o\",\"claude-sonnet\","
             "\"gpt-4o-mini\",\"claude-haiku\"]},"
             "\"chat\":{\"models\":[\"gpt-4o\",\"gpt-4o-mini\","
             "\"claude-haiku\"]}},"
             "\"budget\":{\"limit_usd\":1000000,\"window_s\":86400},"
             "\"explore_floor\":0.02,\"decision_ttl_s\":3600,"
             "\"store\":{\"sync\":\"%s\",\"map_size_mb\":4096}}",
             bench_models, sync);
    return c;
}

/* ---- pairs ---------------------------------------------------------- */

/* Requests in flight per client, at most (window 32). */
#define BENCH_RING 64

typedef struct bench_worker {
    const char *ep;
    double deadline;
    long pairs;
    int window;
} bench_worker_t;

/* Sends a choose; ops[] remembers what each reply in flight answers
 * (replies to one DEALER come back in the order of its requests). */
static void
bench_send_choose(void *s, proto_op_t *ops, size_t *tail)
{
    zmq_send(s, bench_choose, strlen(bench_choose), 0);
    ops[(*tail)++ % BENCH_RING] = PROTO_OP_CHOOSE;
}

static void *
bench_pairs_thread(void *arg)
{
    bench_worker_t *w = arg;
    void *s = zmq_socket(bench_ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, w->ep);
    int in_flight = 0, stopping = 0;
    proto_op_t ops[BENCH_RING];
    size_t head = 0, tail = 0;
    char buf[4096];
    proto_reply_t *r = malloc(sizeof *r);
    proto_error_t err;
    for (int i = 0; i < w->window; i++, in_flight++)
        bench_send_choose(s, ops, &tail);
    while (in_flight > 0) {
        int n = zmq_recv(s, buf, sizeof buf, 0);
        if (n < 0)
            break;
        in_flight--;
        proto_op_t op = ops[head++ % BENCH_RING];
        size_t len = n < (int)sizeof buf ? (size_t)n : sizeof buf;
        int ok = proto_parse_reply(buf, len, op, r, &err) == PROTO_OK && r->ok;
        if (op == PROTO_OP_CHOOSE && ok) {
            /* a choose reply: send its feedback */
            proto_feedback_t f = {.decision = r->decision,
                                  .kind = PROTO_KIND_OUTCOME,
                                  .has_success = 1,
                                  .success = 1,
                                  .has_tokens = 1,
                                  .tokens_in = 900,
                                  .tokens_out = 300,
                                  .has_latency = 1,
                                  .latency_ms = 850};
            char *q = proto_format_feedback(&f);
            zmq_send(s, q, strlen(q), 0);
            free(q);
            ops[tail++ % BENCH_RING] = PROTO_OP_FEEDBACK;
            in_flight++;
            continue;
        }
        /* a feedback reply: one pair done */
        if (op == PROTO_OP_FEEDBACK && ok)
            w->pairs++;
        if (!stopping && bench_now() >= w->deadline)
            stopping = 1;
        if (!stopping) {
            bench_send_choose(s, ops, &tail);
            in_flight++;
        }
    }
    free(r);
    zmq_close(s);
    return NULL;
}

static void
bench_pairs(const char *sync, int ipc, double seconds)
{
    char ep[700], state[700];
    if (ipc)
        snprintf(ep, sizeof ep, "ipc://%s/pairs.sock", bench_dir);
    else
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-pairs-%s-%d", bench_dir, sync, ipc);
    char *cfg = bench_config(sync);
    pid_t pid = bench_start(cfg, ep, state);
    free(cfg);
    enum { N = 8 };
    bench_worker_t w[N];
    pthread_t th[N];
    double t0 = bench_now();
    for (int i = 0; i < N; i++) {
        w[i] = (bench_worker_t){ep, t0 + seconds, 0, 32};
        pthread_create(&th[i], NULL, bench_pairs_thread, &w[i]);
    }
    long total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        total += w[i].pairs;
    }
    double el = bench_now() - t0;
    printf("%-34s %9.0f pairs/s   (8 clients x 32 in flight, %ld pairs "
           "in %.1f s, sync=%s)\n",
           ipc ? "choose+feedback, ipc, durable"
               : "choose+feedback, tcp, durable",
           total / el, total, el, sync);
    bench_stop(pid);
}

/* ---- memory --------------------------------------------------------- */

static long
bench_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static void
bench_rss(void)
{
    enum { NB = 1000, NA = 16 };
    size_t cap = 2u << 20;
    char *c = malloc(cap);
    size_t o = 0;
    o += (size_t)snprintf(c + o, cap - o, "{\"models\":{");
    for (int m = 0; m < NA; m++)
        o += (size_t)snprintf(c + o, cap - o,
                              "%s\"m%02d\":{\"provider\":\"openai\","
                              "\"price_in_per_mtok\":%d,"
                              "\"price_out_per_mtok\":%d}",
                              m ? "," : "", m, m + 1, 2 * m + 2);
    o += (size_t)snprintf(c + o, cap - o, "},\"buckets\":{");
    for (int b = 0; b < NB; b++) {
        o += (size_t)snprintf(c + o, cap - o, "%s\"b%04d\":{\"models\":[",
                              b ? "," : "", b);
        for (int m = 0; m < NA; m++)
            o += (size_t)snprintf(c + o, cap - o, "%s\"m%02d\"", m ? "," : "",
                                  m);
        o += (size_t)snprintf(c + o, cap - o, "]}");
    }
    o += (size_t)snprintf(c + o, cap - o,
                          "},\"budget\":{\"limit_usd\":1000,\"window_s\":"
                          "86400},\"explore_floor\":0.01,\"unknown_bucket\":"
                          "{\"action\":\"error\",\"max_buckets\":2000}}");
    char ep[64], state[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-rss", bench_dir);
    double t0 = bench_now();
    pid_t pid = bench_start(c, ep, state);
    double start_ms = (bench_now() - t0) * 1e3;
    free(c);
    long idle = bench_rss_kb(pid);
    void *s = zmq_socket(bench_ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, ep);
    char buf[4096];
    for (int b = 0; b < NB; b++) {
        char name[16];
        snprintf(name, sizeof name, "b%04d", b);
        char *q = proto_format_choose(name, NULL, 0);
        zmq_send(s, q, strlen(q), 0);
        free(q);
    }
    for (int b = 0; b < NB; b++)
        zmq_recv(s, buf, sizeof buf, 0);
    zmq_close(s);
    long used = bench_rss_kb(pid);
    bench_stop(pid);
    printf("%-34s %9.1f MiB after start (%.0f ms to first ping), %.1f MiB "
           "after a decision in every bucket\n",
           "RSS, 1,000 buckets x 16 arms", idle / 1024.0, start_ms,
           used / 1024.0);
}

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    double secs = argc > 2 ? atof(argv[2]) : 5.0;
    const char *parent = argc > 3 ? argv[3] : "/tmp";
    const char *bin = getenv("BURSAR_BIN_DIR");
    if (bin) {
        snprintf(bench_bin, sizeof bench_bin, "%s/bursard", bin);
    } else {
        snprintf(bench_bin, sizeof bench_bin, "%s", argv[0]);
        char *slash = strrchr(bench_bin, '/');
        if (slash)
            snprintf(slash + 1,
                     sizeof bench_bin - (size_t)(slash + 1 - bench_bin),
                     "bursard");
        else
            snprintf(bench_bin, sizeof bench_bin, "./bursard");
    }
    snprintf(bench_dir, sizeof bench_dir, "%s/bench-ctl-XXXXXX", parent);
    if (!mkdtemp(bench_dir)) {
        perror(bench_dir);
        return 1;
    }
    bench_ctx = zmq_ctx_new();
    bench_choose = proto_format_choose("code", NULL, 0);
    bench_ping = proto_format_simple(PROTO_OP_PING);

    /* 0. the disk under the state directory */
    bench_fsync(500);

    /* 1. echo vs choose */
    void *echo = zmq_socket(bench_ctx, ZMQ_ROUTER);
    zmq_bind(echo, "tcp://127.0.0.1:*");
    char eep[128];
    size_t el = sizeof eep;
    zmq_getsockopt(echo, ZMQ_LAST_ENDPOINT, eep, &el);
    pthread_t et;
    pthread_create(&et, NULL, bench_echo_thread, echo);
    bench_rtt("bare ROUTER echo, tcp", eep, bench_choose, n);

    char ep[64], state[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-rtt", bench_dir);
    char *cfg = bench_config("full");
    pid_t pid = bench_start(cfg, ep, state);
    free(cfg);
    bench_rtt("choose, tcp, sync=full", ep, bench_choose, n);
    bench_rtt("ping (no write), tcp", ep, bench_ping, n);
    bench_stop(pid);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-rtt2", bench_dir);
    cfg = bench_config("nometasync");
    pid = bench_start(cfg, ep, state);
    free(cfg);
    bench_rtt("choose, tcp, sync=nometasync", ep, bench_choose, n);
    bench_stop(pid);

    /* 2. pairs */
    bench_pairs("full", 0, secs);
    bench_pairs("nometasync", 0, secs);
    bench_pairs("full", 1, secs);

    /* 3. memory */
    bench_rss();

    zmq_ctx_shutdown(bench_ctx); /* the echo thread's recv returns ETERM */
    pthread_join(et, NULL);
    zmq_close(echo);
    zmq_ctx_term(bench_ctx);
    free(bench_choose);
    free(bench_ping);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", bench_dir);
    return 0;
}
