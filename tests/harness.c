/*
 * harness.c - starts the real bursard for integration tests (harness.h).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "tests/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

static void *th_ctx;

void *
th_zctx(void)
{
    if (!th_ctx)
        th_ctx = zmq_ctx_new();
    return th_ctx;
}

const char *
th_bin(const char *name)
{
    static char buf[4][1024];
    static int k;
    const char *dir = getenv("BURSAR_BIN_DIR");
    if (!dir)
        dir = ".";
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

const char *
th_need(const char *name)
{
    const char *path = th_bin(name);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        fail_msg("%s is missing: expected an executable at %s (build it, "
                 "or set BURSAR_BIN_DIR to the bin/ directory of a build)",
                 name, path);
    return path;
}

int
th_run(const char *cmd, char *out, size_t cap)
{
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0, got;
    while (n + 1 < cap && (got = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ; /* the rest, so that the command does not die of SIGPIPE */
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void
th_write_config(th_daemon_t *d, const char *json)
{
    FILE *f = fopen(d->config, "w");
    if (!f)
        fail_msg("cannot write %s: %s", d->config, strerror(errno));
    fputs(json, f);
    fclose(f);
}

void
th_setup(th_daemon_t *d, const char *json)
{
    memset(d, 0, sizeof *d);
    const char *tmp = getenv("TMPDIR");
    snprintf(d->dir, sizeof d->dir, "%s/bursar-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(d->dir));
    d->own_dir = 1;
    snprintf(d->state, sizeof d->state, "%s/state", d->dir);
    snprintf(d->config, sizeof d->config, "%s/config.json", d->dir);
    snprintf(d->endpoint, sizeof d->endpoint, "ipc://%s/sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/bursard.log", d->dir);
    th_write_config(d, json);
}

void
th_setup_in(th_daemon_t *d, const char *dir, const char *name,
            const char *endpoint)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    snprintf(d->state, sizeof d->state, "%s/%s-state", dir, name);
    snprintf(d->config, sizeof d->config, "%s/%s.json", dir, name);
    snprintf(d->endpoint, sizeof d->endpoint, "%s", endpoint);
    snprintf(d->log, sizeof d->log, "%s/%s.log", dir, name);
}

/* CURVE keys for the harness's clients (th_curve), or none. */
static struct {
    int on;
    char sec[41], pub[41], srv[41];
} th_keys;

void
th_curve(const char *secret_z85, const char *server_public_z85)
{
    th_keys.on = secret_z85 != NULL;
    if (!th_keys.on)
        return;
    snprintf(th_keys.sec, sizeof th_keys.sec, "%s", secret_z85);
    snprintf(th_keys.srv, sizeof th_keys.srv, "%s", server_public_z85);
    if (zmq_curve_public(th_keys.pub, th_keys.sec) != 0)
        fail_msg("th_curve: not a secret key");
}

static void
th_apply_keys(void *s)
{
    if (!th_keys.on)
        return;
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, th_keys.srv, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, th_keys.pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, th_keys.sec, 40);
}

static int
th_ping(const char *endpoint, int timeout_ms)
{
    void *s = zmq_socket(th_zctx(), ZMQ_REQ);
    th_apply_keys(s);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_connect(s, endpoint);
    int ok = 0;
    if (zmq_send(s, "{\"op\":\"ping\"}", 13, 0) == 13) {
        char buf[256];
        int n = zmq_recv(s, buf, sizeof buf - 1, 0);
        ok = n > 0;
    }
    zmq_close(s);
    return ok;
}

/* Daemons started and not yet reaped: killed at exit, so that a failed
 * assertion (cmocka jumps out of the test) leaves no bursard behind. A
 * test process killed outright (ctest's timeout) takes them along through
 * PR_SET_PDEATHSIG. */
static pid_t th_live[64];

static void
th_kill_live(void)
{
    for (size_t i = 0; i < sizeof th_live / sizeof th_live[0]; i++) {
        if (th_live[i] > 0) {
            kill(th_live[i], SIGKILL);
            waitpid(th_live[i], NULL, 0);
            th_live[i] = 0;
        }
    }
}

static void
th_track(pid_t pid, int add)
{
    static int registered;
    if (!registered) {
        atexit(th_kill_live);
        registered = 1;
    }
    for (size_t i = 0; i < sizeof th_live / sizeof th_live[0]; i++) {
        if (add ? th_live[i] == 0 : th_live[i] == pid) {
            th_live[i] = add ? pid : 0;
            return;
        }
    }
}

void
th_kill_all(void)
{
    th_kill_live();
}

void
th_start(th_daemon_t *d)
{
    th_start_args(d, d->wall_clock ? NULL : "--test-clock");
}

void
th_start_args(th_daemon_t *d, const char *clock_arg)
{
    const char *bin = th_need("bursard");
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[8 + TH_EXTRA_MAX + 1] = {
            bin,      "--config", d->config,  "--state-dir",
            d->state, "--listen", d->endpoint};
        size_t n = 7;
        if (clock_arg)
            argv[n++] = clock_arg;
        for (size_t i = 0; i < TH_EXTRA_MAX && d->extra[i]; i++)
            argv[n++] = d->extra[i];
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    th_track(pid, 1);
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            th_track(pid, 0);
            d->pid = 0;
            fail_msg("bursard exited at start (status %d); see %s", st, d->log);
        }
        if (th_ping(d->endpoint, 100))
            return;
    }
    fail_msg("bursard did not answer ping; see %s", d->log);
}

int
th_stop(th_daemon_t *d)
{
    if (!d->pid)
        return -1;
    kill(d->pid, SIGTERM);
    int st = 0;
    waitpid(d->pid, &st, 0);
    th_track(d->pid, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void
th_kill9(th_daemon_t *d)
{
    if (!d->pid)
        return;
    kill(d->pid, SIGKILL);
    int st;
    waitpid(d->pid, &st, 0);
    th_track(d->pid, 0);
    d->pid = 0;
}

void
th_signal(th_daemon_t *d, int sig)
{
    if (d->pid)
        kill(d->pid, sig);
}

void
th_cleanup(th_daemon_t *d)
{
    if (d->pid)
        th_stop(d);
    if (d->own_dir && d->dir[0] && !getenv("BURSAR_KEEP_TEST_DIRS")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", d->dir);
    }
}

struct th_client {
    void *sock;
    char endpoint[400];
};

static void
th_client_open(th_client_t *c)
{
    c->sock = zmq_socket(th_zctx(), ZMQ_REQ);
    th_apply_keys(c->sock);
    int linger = 0, t = 5000;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_connect(c->sock, c->endpoint);
}

th_client_t *
th_client_new(const char *endpoint)
{
    th_client_t *c = calloc(1, sizeof *c);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    th_client_open(c);
    return c;
}

void
th_client_destroy(th_client_t **c)
{
    if (!c || !*c)
        return;
    zmq_close((*c)->sock);
    free(*c);
    *c = NULL;
}

cJSON *
th_call_raw(th_client_t *c, const void *buf, size_t len)
{
    if (zmq_send(c->sock, buf, len, 0) < 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->sock, 0) < 0) {
        zmq_msg_close(&m);
        zmq_close(c->sock);
        th_client_open(c);
        return NULL;
    }
    cJSON *r = cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return r;
}

static cJSON *
th_vcall(th_client_t *c, const char *fmt, va_list ap)
{
    if (!fmt)
        fmt = "";
    char *buf = NULL;
    va_list aq;
    va_copy(aq, ap);
    char probe[1];
    int n = vsnprintf(probe, sizeof probe, fmt, aq);
    va_end(aq);
    buf = malloc((size_t)n + 1);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    cJSON *r = th_call_raw(c, buf, (size_t)n);
    free(buf);
    return r;
}

cJSON *
th_call(th_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *r = th_vcall(c, fmt, ap);
    va_end(ap);
    return r;
}

cJSON *
th_ok(th_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *r = th_vcall(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("no reply to %s", fmt);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        char *s = cJSON_PrintUnformatted(r);
        fail_msg("error reply: %s (request format %s)", s, fmt);
    }
    return r;
}

void
th_expect_error(th_client_t *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *r = th_vcall(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("no reply (expected error %s)", code);
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    const cJSON *cd = cJSON_GetObjectItem(e, "code");
    const cJSON *msg = cJSON_GetObjectItem(e, "message");
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) || !cJSON_IsString(cd) ||
        strcmp(cd->valuestring, code) != 0 || !cJSON_IsString(msg) ||
        !msg->valuestring[0]) {
        char *s = cJSON_PrintUnformatted(r);
        fail_msg("expected error %s, got %s", code, s);
    }
    cJSON_Delete(r);
}

double
th_num(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(j))
        fail_msg("no number \"%s\"", key);
    return j->valuedouble;
}

const char *
th_str(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsString(j))
        fail_msg("no string \"%s\"", key);
    return j->valuestring;
}

const cJSON *
th_bucket(const cJSON *stats, const char *bucket)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(stats, "buckets"))
    {
        if (strcmp(th_str(b, "name"), bucket) == 0)
            return b;
    }
    return NULL;
}

const cJSON *
th_arm(const cJSON *stats, const char *bucket, const char *model)
{
    const cJSON *b = th_bucket(stats, bucket);
    if (!b)
        return NULL;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
    {
        if (strcmp(th_str(a, "model"), model) == 0)
            return a;
    }
    return NULL;
}

void
th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

th_fx_t *
th_fx_new(const char *config_json)
{
    th_fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    th_setup(&f->d, config_json);
    th_start(&f->d);
    f->c = th_client_new(f->d.endpoint);
    return f;
}

void
th_fx_free(th_fx_t *f)
{
    th_client_destroy(&f->c);
    int st = th_stop(&f->d);
    th_cleanup(&f->d);
    free(f);
    assert_int_equal(st, 0); /* SIGTERM: a clean exit */
}
