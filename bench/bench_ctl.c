/*
 * bench_ctl - controller benchmarks, in the manner of libzmq's
 * local_lat/remote_lat: a few labelled lines with units.
 *
 *   bench_ctl [ROUND_TRIPS] [PAIR_SECONDS] [STATE_PARENT_DIR]
 *
 *   0. write + fdatasync of 4 KiB in STATE_PARENT_DIR: the floor under a
 *      durable commit.
 *   1. round trips over TCP loopback, without CURVE and with it: a bare
 *      ZeroMQ ROUTER echo (a process of its own, as bursard is, answering
 *      the same REQ frames), "choose" and "ping" against bursard; p50 and
 *      p99 in microseconds, and their ratio to the echo's with the same
 *      security. Back to back (ROUND_TRIPS each: a choose may wait for
 *      the commit of the one before), then the echo and choose 2 ms apart
 *      (ROUND_TRIPS / 5 each: a choose finds the loop idle). The targets
 *      take turns in blocks of a tenth, so that a change of the machine's
 *      load weighs on all of them alike.
 *   2. 8 concurrent DEALER clients, each keeping 32 choose+feedback pairs
 *      in flight (the feedback waits for its durable commit): pairs per
 *      second over TCP loopback with store.sync "full" and "nometasync",
 *      over ipc:// with "full", and over TCP with CURVE (each client its
 *      own key pair and name, role agent); what CURVE costs as a ratio.
 *   3. resident memory of bursard with 1,000 buckets of 16 arms, after one
 *      decision in every bucket.
 *
 * bursard is taken from the directory of this program (or
 * $BURSAR_BIN_DIR); its state, the key files (bursard.key/.pub,
 * client-N.key/.pub) and the allow-list (clients) go to a fresh directory
 * under STATE_PARENT_DIR (default /tmp), removed at the end. The per-client
 * limits (limits.client_rate_per_s, client_inflight) are lifted.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bench/bench_cli.h"
#include "agents/keys.h"
#include "agents/proto.h"

static void *bench_ctx;
static char bench_bin[1024];
static char bench_dir[512];

/* CURVE key pairs (Z85): bursard's (also the echo's), one per client */
#define BENCH_CLIENTS 8
#define BENCH_KEY     (BURSAR_KEY_Z85 + 1)
static char bench_srv_pub[BENCH_KEY], bench_srv_sec[BENCH_KEY];
static char bench_cli_pub[BENCH_CLIENTS][BENCH_KEY];
static char bench_cli_sec[BENCH_CLIENTS][BENCH_KEY];
static char bench_srv_key_file[800], bench_clients_file[800];

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

/* ---- keys and sockets ----------------------------------------------- */

/* Writes PREFIX.key and PREFIX.pub, reads both back. */
static void
bench_key_pair(const char *prefix, char *pub, char *sec)
{
    char path[800], err[512];
    snprintf(path, sizeof path, "%s.key", prefix);
    if (bursar_key_write_pair(prefix, pub, err, sizeof err) != 0 ||
        bursar_key_load(path, 1, sec, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ctl: %s\n", err);
        exit(1);
    }
}

/* bursard's key pair, one per client, and the allow-list naming the
 * clients bench-0 .. bench-7 with role agent. */
static void
bench_keys(void)
{
    char prefix[700]; /* bench_dir is 512 bytes */
    snprintf(prefix, sizeof prefix, "%s/bursard", bench_dir);
    bench_key_pair(prefix, bench_srv_pub, bench_srv_sec);
    snprintf(bench_srv_key_file, sizeof bench_srv_key_file, "%s.key", prefix);
    snprintf(bench_clients_file, sizeof bench_clients_file, "%s/clients",
             bench_dir);
    FILE *f = fopen(bench_clients_file, "w");
    if (!f) {
        perror(bench_clients_file);
        exit(1);
    }
    fprintf(f, "# bench_ctl's clients, one key pair each\n");
    for (int i = 0; i < BENCH_CLIENTS; i++) {
        snprintf(prefix, sizeof prefix, "%s/client-%d", bench_dir, i);
        bench_key_pair(prefix, bench_cli_pub[i], bench_cli_sec[i]);
        fprintf(f, "%s bench-%d agent\n", bench_cli_pub[i], i);
    }
    fclose(f);
}

/* A client socket of type, giving up a receive after timeout_ms; with
 * curve, it authenticates with client's key pair. */
static void *
bench_socket(int type, int curve, int client, int timeout_ms)
{
    void *s = zmq_socket(bench_ctx, type);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    if (curve) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, bench_srv_pub, BENCH_KEY);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, bench_cli_pub[client],
                       BENCH_KEY);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, bench_cli_sec[client],
                       BENCH_KEY);
    }
    return s;
}

/* ---- the echo server ---------------------------------------------- */

/* In a child: dies with bench_ctl, however bench_ctl ends (a run cut
 * short must not leave an echo server or a bursard behind). */
static void
bench_orphan_guard(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
}

/* Sends every request back as it came: [peer, empty, body] from a REQ
 * socket, the frames bursard's ROUTER reads. */
static void
bench_echo_loop(void *s)
{
    for (;;) {
        zmq_msg_t parts[3];
        int n = 0, more = 1;
        while (more && n < 3) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], s, 0) < 0)
                return;
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        for (int i = 0; i < n; i++)
            zmq_msg_send(&parts[i], s, i + 1 < n ? ZMQ_SNDMORE : 0);
    }
}

/* Forks an echo server: a process with its own ZeroMQ context (one I/O
 * thread) and a ROUTER on TCP loopback, as bursard has; with curve, a
 * CURVE server with bursard's key pair (no ZAP handler: every key is
 * let in; the allow-list is checked once per connection anyway). Called
 * before this process starts a thread. Writes the endpoint to ep. */
static pid_t
bench_echo_start(int curve, char *ep, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        bench_orphan_guard(parent);
        close(fd[0]);
        void *ctx = zmq_ctx_new();
        void *s = zmq_socket(ctx, ZMQ_ROUTER);
        if (curve) {
            int one = 1;
            zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, bench_srv_sec, BENCH_KEY);
        }
        char e[128] = "";
        size_t l = sizeof e;
        if (zmq_bind(s, "tcp://127.0.0.1:*") == 0)
            zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, e, &l);
        if (write(fd[1], e, strlen(e) + 1) < 0)
            _exit(1);
        close(fd[1]);
        bench_echo_loop(s);
        _exit(0);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], ep, cap - 1);
    close(fd[0]);
    ep[n > 0 ? n : 0] = '\0';
    if (!*ep) {
        fprintf(stderr, "bench_ctl: the echo server did not start\n");
        exit(1);
    }
    return pid;
}

/* Requests are written and replies read by the wire codec (proto.h). */
static char *bench_choose; /* {"op":"choose","bucket":"code"} */
static char *bench_ping;   /* {"op":"ping"} */

typedef struct bench_target {
    const char *label;
    const char *ep;
    const char *msg;
    int op; /* the proto_op_t of msg: replies checked; -1: the echo */
    void *s;
    double *v; /* round trips, microseconds */
} bench_target_t;

/* 1 when buf is a successful reply to t's request; else says why. */
static int
bench_reply_ok(const bench_target_t *t, const char *buf, int n)
{
    if (t->op < 0)
        return 1;
    proto_reply_t *r = malloc(sizeof *r);
    proto_error_t err;
    size_t len = n < 4096 ? (size_t)n : 4096;
    proto_code_t rc = proto_parse_reply(buf, len, (proto_op_t)t->op, r, &err);
    int ok = rc == PROTO_OK && r->ok;
    if (!ok)
        fprintf(stderr, "bench_ctl: %s: %s\n", t->label,
                rc != PROTO_OK ? err.message : r->error.message);
    free(r);
    return ok;
}

static void
bench_rtt_print(bench_target_t *t, int nt, int n, const char *base)
{
    double p50_0 = 0, p99_0 = 0;
    for (int k = 0; k < nt; k++) {
        double p50 = bench_pct(t[k].v, (size_t)n, 0.50);
        double p99 = bench_pct(t[k].v, (size_t)n, 0.99);
        printf("%-34s p50 %8.1f us   p99 %8.1f us", t[k].label, p50, p99);
        if (k == 0) {
            p50_0 = p50;
            p99_0 = p99;
            printf("   (%d round trips)\n", n);
        } else {
            printf("   p50 %.2f x, p99 %.2f x %s\n", p50 / p50_0, p99 / p99_0,
                   base);
        }
    }
}

/* n round trips of a REQ socket to each of the nt targets (client 0's key
 * with curve), in turns of n / 10 after a turn of warm-up, gap_us apart
 * (0: back to back); the replies of the warm-up turn are checked. Prints
 * p50 and p99 of each, and their ratio to target 0's. Returns 0, or -1
 * when a target did not answer within 5 s or answered an error. */
static int
bench_rtt(bench_target_t *t, int nt, int curve, int n, long gap_us)
{
    struct timespec gap = {gap_us / 1000000, (gap_us % 1000000) * 1000};
    enum { TURNS = 10 };
    int per = n / TURNS > 0 ? n / TURNS : 1, rc = 0;
    n = per * TURNS;
    char buf[4096];
    for (int k = 0; k < nt; k++) {
        t[k].s = bench_socket(ZMQ_REQ, curve, 0, 5000);
        zmq_connect(t[k].s, t[k].ep);
        t[k].v = malloc(sizeof *t[k].v * (size_t)n);
    }
    for (int turn = -1; turn < TURNS && rc == 0; turn++) {
        for (int k = 0; k < nt && rc == 0; k++) {
            size_t len = strlen(t[k].msg);
            for (int i = 0; i < per; i++) {
                if (gap_us > 0)
                    nanosleep(&gap, NULL);
                double t0 = bench_now();
                zmq_send(t[k].s, t[k].msg, len, 0);
                int got = zmq_recv(t[k].s, buf, sizeof buf, 0);
                if (got < 0)
                    fprintf(stderr, "bench_ctl: %s: no reply within 5 s\n",
                            t[k].label);
                if (got < 0 || (turn < 0 && !bench_reply_ok(&t[k], buf, got))) {
                    rc = -1;
                    break;
                }
                if (turn >= 0)
                    t[k].v[turn * per + i] = (bench_now() - t0) * 1e6;
            }
        }
    }
    if (rc == 0)
        bench_rtt_print(t, nt, n, "echo");
    for (int k = 0; k < nt; k++) {
        zmq_close(t[k].s);
        free(t[k].v);
    }
    return rc;
}

/* ---- bursard -------------------------------------------------------- */

/* Starts bursard with config_json and waits until it answers a ping (with
 * client 0's key when curve). Returns its pid, or -1 when it exited or
 * did not answer within 30 s. */
static pid_t
bench_start(const char *config_json, const char *ep, const char *state,
            int curve)
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
    fflush(stdout);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        bench_orphan_guard(parent); /* kept across execl */
        execl(bench_bin, bench_bin, "--config", cfg, "--state-dir", state,
              "--listen", ep, "--quiet", (char *)NULL);
        perror(bench_bin);
        _exit(127);
    }
    char buf[256];
    for (int i = 0; i < 300; i++) {
        void *s = bench_socket(ZMQ_REQ, curve, 0, 100);
        zmq_connect(s, ep);
        zmq_send(s, bench_ping, strlen(bench_ping), 0);
        int n = zmq_recv(s, buf, sizeof buf, 0);
        zmq_close(s);
        if (n > 0)
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "bench_ctl: bursard exited (status %d)\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            return -1;
        }
    }
    fprintf(stderr, "bench_ctl: bursard did not answer a ping in 30 s\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void
bench_stop(pid_t pid)
{
    if (pid <= 0)
        return;
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

/* The configuration of the round trips and the pairs: two buckets, the
 * per-client limits lifted (0: none; the burst does not matter then),
 * with curve bursard's key and the allow-list of bench_keys. */
static char *
bench_config(const char *sync, int curve)
{
    char sec[1500] = "", clients[1500] = "", cv[3100] = "";
    if (curve) {
        proto_json_quote(sec, sizeof sec, bench_srv_key_file);
        proto_json_quote(clients, sizeof clients, bench_clients_file);
        snprintf(cv, sizeof cv,
                 ",\"curve\":{\"secret_key_file\":%s,\"clients_file\":%s}", sec,
                 clients);
    }
    char *c = malloc(8192);
    snprintf(c, 8192,
             "{%s,\"buckets\":{"
             "\"code\":{\"models\":[\"gpt-4o\",\"claude-sonnet\","
             "\"gpt-4o-mini\",\"claude-haiku\"]},"
             "\"chat\":{\"models\":[\"gpt-4o\",\"gpt-4o-mini\","
             "\"claude-haiku\"]}},"
             "\"budget\":{\"limit_usd\":1000000,\"window_s\":86400},"
             "\"explore_floor\":0.02,\"decision_ttl_s\":3600,"
             "\"store\":{\"sync\":\"%s\",\"map_size_mb\":4096},"
             "\"limits\":{\"client_rate_per_s\":0,\"client_inflight\":0}%s}",
             bench_models, sync, cv);
    return c;
}

/* CPU seconds (user + system) of process pid, or of this one when pid is
 * 0. */
static double
bench_cpu_s(pid_t pid)
{
    if (pid == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    }
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')'); /* the command may hold spaces */
    unsigned long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- pairs ---------------------------------------------------------- */

/* Requests in flight per client, at most (window 32). */
#define BENCH_RING 64

typedef struct bench_worker {
    const char *ep;
    double deadline;
    int window;
    int curve, client; /* with curve: this client's key pair */
    long pairs;
    long errors;                        /* error replies */
    int lost;                           /* stopped: no reply within 5 s */
    char error[PROTO_MESSAGE_MAX + 64]; /* the first error reply */
} bench_worker_t;

/* Sends a choose; ops[] remembers what each reply in flight answers
 * (replies to one DEALER come back in the order of its requests). */
static void
bench_send_choose(void *s, proto_op_t *ops, size_t *tail)
{
    zmq_send(s, bench_choose, strlen(bench_choose), 0);
    ops[(*tail)++ % BENCH_RING] = PROTO_OP_CHOOSE;
}

/* The feedback to a choose reply: an outcome of its decision, the
 * decision id copied from the reply as it came. */
static char *
bench_feedback(const proto_reply_t *r)
{
    proto_feedback_t f = {.decision = r->decision,
                          .kind = PROTO_KIND_OUTCOME,
                          .has_success = 1,
                          .success = 1,
                          .has_tokens = 1,
                          .tokens_in = 900,
                          .tokens_out = 300,
                          .has_latency = 1,
                          .latency_ms = 850};
    return proto_format_feedback(&f);
}

static void
bench_note_error(bench_worker_t *w, const proto_reply_t *r, proto_code_t rc,
                 const proto_error_t *err)
{
    if (w->errors++ > 0)
        return;
    if (rc != PROTO_OK)
        snprintf(w->error, sizeof w->error, "unreadable reply: %s",
                 err->message);
    else
        snprintf(w->error, sizeof w->error, "%s: %s",
                 proto_code_name(r->error.code), r->error.message);
}

static void *
bench_pairs_thread(void *arg)
{
    bench_worker_t *w = arg;
    void *s = bench_socket(ZMQ_DEALER, w->curve, w->client, 5000);
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
        if (n < 0) {
            w->lost = 1;
            break;
        }
        in_flight--;
        proto_op_t op = ops[head++ % BENCH_RING];
        size_t len = n < (int)sizeof buf ? (size_t)n : sizeof buf;
        proto_code_t rc = proto_parse_reply(buf, len, op, r, &err);
        if (rc != PROTO_OK || !r->ok)
            bench_note_error(w, r, rc, &err);
        else if (op == PROTO_OP_CHOOSE) {
            char *q = bench_feedback(r);
            zmq_send(s, q, strlen(q), 0);
            free(q);
            ops[tail++ % BENCH_RING] = PROTO_OP_FEEDBACK;
            in_flight++;
            continue;
        } else {
            w->pairs++; /* a feedback acknowledged: one pair done */
        }
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

/* Runs 8 clients for seconds against a bursard of its own; prints pairs
 * per second and the CPU the daemon and this process used. Returns pairs
 * per second, or -1. */
static double
bench_pairs(const char *sync, int ipc, int curve, double seconds)
{
    char ep[700], state[700], label[64];
    if (ipc)
        snprintf(ep, sizeof ep, "ipc://%s/pairs.sock", bench_dir);
    else
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-pairs-%s-%d-%d", bench_dir, sync,
             ipc, curve);
    snprintf(label, sizeof label, "choose+feedback, %s%s", ipc ? "ipc" : "tcp",
             curve ? ", CURVE" : "");
    char *cfg = bench_config(sync, curve);
    pid_t pid = bench_start(cfg, ep, state, curve);
    free(cfg);
    if (pid < 0) {
        printf("%-34s (bursard did not start)\n", label);
        return -1;
    }
    bench_worker_t w[BENCH_CLIENTS];
    pthread_t th[BENCH_CLIENTS];
    double cpu_d = bench_cpu_s(pid), cpu_b = bench_cpu_s(0);
    double t0 = bench_now();
    for (int i = 0; i < BENCH_CLIENTS; i++) {
        w[i] = (bench_worker_t){.ep = ep,
                                .deadline = t0 + seconds,
                                .window = 32,
                                .curve = curve,
                                .client = i};
        pthread_create(&th[i], NULL, bench_pairs_thread, &w[i]);
    }
    long total = 0, errors = 0, lost = 0;
    const char *error = NULL;
    for (int i = 0; i < BENCH_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += w[i].pairs;
        errors += w[i].errors;
        lost += w[i].lost;
        if (!error && w[i].errors)
            error = w[i].error;
    }
    double el = bench_now() - t0;
    cpu_d = (bench_cpu_s(pid) - cpu_d) / el;
    cpu_b = (bench_cpu_s(0) - cpu_b) / el;
    printf("%-34s %9.0f pairs/s   (8 clients x 32 in flight, %ld pairs "
           "in %.1f s, sync=%s; cores busy: bursard %.2f, clients %.2f)\n",
           label, total / el, total, el, sync, cpu_d, cpu_b);
    if (errors || lost)
        printf("  !! %ld error replies (first: %s), %ld clients without a "
               "reply for 5 s\n",
               errors, error ? error : "-", lost);
    bench_stop(pid);
    return total / el;
}

/* What CURVE costs: the pairs per second with CURVE over those without. */
static void
bench_curve_cost(const char *sync, double off, double on)
{
    char label[64];
    snprintf(label, sizeof label, "CURVE cost, pairs, sync=%s", sync);
    if (off > 0 && on > 0)
        printf("%-34s %9.2f x the pairs/s without CURVE (%+.0f %%)\n", label,
               on / off, (on / off - 1) * 100);
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
    pid_t pid = bench_start(c, ep, state, 0);
    double start_ms = (bench_now() - t0) * 1e3;
    free(c);
    if (pid < 0) {
        printf("%-34s (bursard did not start)\n",
               "RSS, 1,000 buckets x 16 arms");
        return;
    }
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

/* Round trips without CURVE or with it: the echo, choose and ping back to
 * back (a choose may wait for the commit of the one before), then the echo
 * and choose 2 ms apart (a choose finds the loop idle, as it does between
 * an agent's LLM calls), n / 5 of them. */
static void
bench_round_trips(int curve, const char *echo_ep, int n)
{
    char ep[64], state[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(state, sizeof state, "%s/state-rtt-%d", bench_dir, curve);
    char *cfg = bench_config("full", curve);
    pid_t pid = bench_start(cfg, ep, state, curve);
    free(cfg);
    if (pid < 0) {
        printf("round trips%s: bursard did not start\n",
               curve ? " with CURVE" : "");
        return;
    }
    bench_target_t t[3] = {
        {.label = curve ? "echo, tcp, CURVE" : "echo, tcp",
         .ep = echo_ep,
         .msg = bench_choose,
         .op = -1},
        {.label = curve ? "choose, tcp, CURVE" : "choose, tcp",
         .ep = ep,
         .msg = bench_choose,
         .op = PROTO_OP_CHOOSE},
        {.label = curve ? "ping, tcp, CURVE" : "ping, tcp",
         .ep = ep,
         .msg = bench_ping,
         .op = PROTO_OP_PING},
    };
    if (bench_rtt(t, 3, curve, n, 0) == 0) {
        t[0].label =
            curve ? "echo, tcp, CURVE, 2 ms apart" : "echo, tcp, 2 ms apart";
        t[1].label = curve ? "choose, tcp, CURVE, 2 ms apart"
                           : "choose, tcp, 2 ms apart";
        bench_rtt(t, 2, curve, n / 5, 2000);
    }
    bench_stop(pid);
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv,
                  "usage: bench_ctl [requests [seconds [tmpdir]]]\n"
                  "  the controller against a bare ZeroMQ echo: round trips, "
                  "throughput, memory\n") == 0)
        return 0;
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
    bench_keys();
    bench_choose = proto_format_choose("code", NULL, 0);
    bench_ping = proto_format_simple(PROTO_OP_PING);

    /* 0. the disk under the state directory */
    bench_fsync(500);

    /* the echo servers, forked before this process has a thread */
    char echo_ep[2][128];
    pid_t echo[2] = {bench_echo_start(0, echo_ep[0], sizeof echo_ep[0]),
                     bench_echo_start(1, echo_ep[1], sizeof echo_ep[1])};
    bench_ctx = zmq_ctx_new();

    /* 1. echo vs choose, without CURVE and with it */
    bench_round_trips(0, echo_ep[0], n);
    bench_round_trips(1, echo_ep[1], n);

    /* 2. pairs */
    double full = bench_pairs("full", 0, 0, secs);
    double nomet = bench_pairs("nometasync", 0, 0, secs);
    bench_pairs("full", 1, 0, secs);
    double full_c = bench_pairs("full", 0, 1, secs);
    double nomet_c = bench_pairs("nometasync", 0, 1, secs);
    bench_curve_cost("full", full, full_c);
    bench_curve_cost("nometasync", nomet, nomet_c);

    /* 3. memory */
    bench_rss();

    for (int i = 0; i < 2; i++) {
        kill(echo[i], SIGTERM);
        waitpid(echo[i], NULL, 0);
    }
    zmq_ctx_term(bench_ctx);
    free(bench_choose);
    free(bench_ping);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", bench_dir);
    return 0;
}
