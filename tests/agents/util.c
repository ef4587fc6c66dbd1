/*
 * util.c - helpers for the agents/ tests (util.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tests/agents/util.h"

#include "agents/proto.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

const char *
tu_bin(const char *name, char *buf, size_t cap)
{
    const char *d = getenv("BURSAR_BIN_DIR");
    snprintf(buf, cap, "%s/%s", d ? d : ".", name);
    return buf;
}

void
tu_tmpdir(char *buf, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/bursar-agents-XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(buf))
        abort();
}

void
tu_rmrf(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

void
tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

char *
tu_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, r;
    char *s = malloc(cap);
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= cap)
            s = realloc(s, cap *= 2);
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

pid_t
tu_spawn(char *const argv[], const char *in_path, const char *out_path,
         const char *err_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        int fd = open(in_path ? in_path : "/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 0);
            close(fd);
        }
        if (out_path) {
            fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                close(fd);
            }
        }
        if (err_path) {
            fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 2);
                close(fd);
            }
        }
        execv(argv[0], argv);
        /* a missing program: the test sees 127 and this line says why */
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int
tu_wait(pid_t pid, int timeout_ms)
{
    double until = tu_now() + timeout_ms / 1000.0;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0)
            return -1;
        if (tu_now() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tu_sleep_ms(10);
    }
}

void
tu_kill(pid_t pid, int sig)
{
    if (pid > 0) {
        kill(pid, sig);
        int st;
        waitpid(pid, &st, 0);
    }
}

void
tu_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

double
tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pid_t
tu_mock_start(const char *script_json, int *port)
{
    char dir[512], script[600], out[600], bin[512];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(script, sizeof(script), "%s/script.json", dir);
    snprintf(out, sizeof(out), "%s/port", dir);
    tu_write_file(script, script_json);
    tu_bin("bursar-mock-provider", bin, sizeof(bin));
    *port = 0;
    if (access(bin, X_OK) != 0) { /* the caller's setup fails on port 0 */
        fprintf(stderr,
                "bursar-mock-provider is missing: expected an "
                "executable at %s\n",
                bin);
        tu_rmrf(dir);
        return -1;
    }
    char *argv[] = {bin, "--script", script, NULL};
    pid_t pid = tu_spawn(argv, NULL, out, NULL);
    *port = tu_wait_port(pid, out, 3000);
    tu_rmrf(dir);
    return pid;
}

int
tu_wait_port(pid_t pid, const char *out_path, int timeout_ms)
{
    double until = tu_now() + timeout_ms / 1000.0;
    for (;;) {
        char *s = tu_read_file(out_path);
        int port = s && strchr(s, '\n') ? atoi(s) : 0;
        free(s);
        if (port > 0)
            return port;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || tu_now() >= until)
            return 0;
        tu_sleep_ms(10);
    }
}

static size_t
collect(char *p, size_t s, size_t n, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + s * n + 1);
    memcpy(*buf + old, p, s * n);
    (*buf)[old + s * n] = '\0';
    return s * n;
}

int
tu_mock_requests(int port, const char *model, const char *status)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stats", port);
    CURL *c = curl_easy_init();
    char *body = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    cJSON *j = cJSON_Parse(body ? body : "");
    free(body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "models"), model);
    const cJSON *v =
        status ? cJSON_GetObjectItemCaseSensitive(
                     cJSON_GetObjectItemCaseSensitive(m, "status"), status)
               : cJSON_GetObjectItemCaseSensitive(m, "requests");
    int n = cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
    cJSON_Delete(j);
    return n;
}

void
tu_model(bursar_model_t *m, const char *name, int anthropic, int port,
         double pin, double pout)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->model, sizeof(m->model), "%s", name);
    m->provider =
        anthropic ? BURSAR_PROVIDER_ANTHROPIC : BURSAR_PROVIDER_OPENAI;
    if (anthropic)
        snprintf(m->base_url, sizeof(m->base_url), "http://127.0.0.1:%d", port);
    else
        snprintf(m->base_url, sizeof(m->base_url), "http://127.0.0.1:%d/v1",
                 port);
    m->price_in_per_mtok = pin;
    m->price_out_per_mtok = pout;
}

/* ------------------------------------------------ ROUTER stand-in */

#define TU_MAX_FB 4096

static char tu_curve_secret[41]; /* tu_router_curve: for the next start */

struct tu_router {
    pthread_t th;
    void *ctx;
    void *sock;
    volatile int stop;
    pthread_mutex_t mu;
    int drop;
    int port;
    size_t n_models;
    char models[16][64];
    int next_id;
    char base_url[256];
    char key_env[64];
    int chooses;
    int duplicates;
    size_t n_fb;
    char fb[TU_MAX_FB][96]; /* "id/kind" applied */
    char fb_kind[TU_MAX_FB][32];
    char *raw; /* the next reply, verbatim (tu_router_reply_raw) */
    int refuse_escalates;
    /* the last choose's and the last book's tenant ("?": none yet), and
     * its escalates or local id (tu_router_last) */
    char tenant[2][PROTO_TENANT_MAX];
    char link[2][PROTO_TOKEN_MAX + 1];
};

static int router_refuse_escalates;

void
tu_router_refuse_escalates(int on)
{
    router_refuse_escalates = on;
}

/* The stand-in's store: every decision id it could have issued is known
 * (it survives its own restarts, like bursard's LMDB); larger ids are
 * unknown decisions. */
#define TU_KNOWN_IDS 0xffffffffu

static char *
router_choose(tu_router_t *r, const proto_request_t *rq)
{
    const char *pick[16];
    size_t n = 0;
    for (size_t i = 0; i < r->n_models; i++) {
        int skip = 0;
        for (size_t k = 0; k < rq->n_exclude; k++)
            skip |= strcmp(rq->exclude[k], r->models[i]) == 0;
        if (!skip)
            pick[n++] = r->models[i];
    }
    snprintf(r->tenant[0], sizeof r->tenant[0], "%s", rq->tenant);
    snprintf(r->link[0], sizeof r->link[0], "%s", rq->escalates);
    if (n == 0)
        return proto_write_error(rq->echo, PROTO_E_NO_MODEL,
                                 "every model is excluded");
    r->chooses++;
    if (rq->escalates[0] && r->refuse_escalates)
        return proto_write_error(rq->echo, PROTO_E_UNKNOWN_DECISION,
                                 "field \"escalates\": not a decision of "
                                 "this controller");
    char id[PROTO_ID_LEN + 1]; /* a token: 16 hex digits of a number */
    proto_id_format((uint64_t)++r->next_id, id);
    proto_choice_t c = {.decision = id,
                        .model = pick[0],
                        .propensity = 0.9,
                        .n_fallbacks = n - 1,
                        .fallbacks = pick + 1,
                        .expected_cost_usd = 0.001};
    return proto_write_choice(rq->echo, &c);
}

static char *
router_feedback(tu_router_t *r, const proto_request_t *rq)
{
    uint64_t dn = 0;
    if (proto_id_parse(rq->decision, &dn) != 0 || dn == 0 || dn > TU_KNOWN_IDS)
        return proto_write_error(rq->echo, PROTO_E_UNKNOWN_DECISION,
                                 "unknown decision in field \"decision_id\"");
    const char *kind = proto_kind_name(rq->kind);
    char key[96];
    snprintf(key, sizeof(key), "%llu/%s", (unsigned long long)dn, kind);
    int dup = 0;
    for (size_t i = 0; i < r->n_fb; i++)
        if (strcmp(r->fb[i], key) == 0)
            dup = 1;
    if (dup) {
        r->duplicates++;
    } else if (r->n_fb < TU_MAX_FB) {
        snprintf(r->fb[r->n_fb], 96, "%s", key);
        snprintf(r->fb_kind[r->n_fb++], 32, "%s", kind);
    }
    return proto_write_ok(rq->echo, dup);
}

/* book: each kind of event applied once per local id (no decision to
 * check: the stand-in books everything). Counted under kind "book". */
static char *
router_book(tu_router_t *r, const proto_request_t *rq)
{
    snprintf(r->tenant[1], sizeof r->tenant[1], "%s", rq->tenant);
    snprintf(r->link[1], sizeof r->link[1], "%s", rq->local_id);
    char key[96];
    snprintf(key, sizeof(key), "L%.63s/%s", rq->local_id,
             proto_kind_name(rq->kind));
    int dup = 0;
    for (size_t i = 0; i < r->n_fb; i++)
        if (strcmp(r->fb[i], key) == 0)
            dup = 1;
    if (dup) {
        r->duplicates++;
    } else if (r->n_fb < TU_MAX_FB) {
        snprintf(r->fb[r->n_fb], 96, "%s", key);
        snprintf(r->fb_kind[r->n_fb++], 32, "book");
    }
    return proto_write_ok(rq->echo, dup);
}

static char *
router_models(tu_router_t *r, const proto_request_t *rq)
{
    proto_model_t ms[16];
    memset(ms, 0, sizeof(ms));
    for (size_t i = 0; i < r->n_models; i++) {
        snprintf(ms[i].name, sizeof(ms[i].name), "%s", r->models[i]);
        ms[i].provider = PROTO_PROVIDER_OPENAI;
        snprintf(ms[i].model, sizeof(ms[i].model), "%s", r->models[i]);
        ms[i].price_in_per_mtok = 1.0;
        ms[i].price_out_per_mtok = 2.0;
    }
    char *reply = proto_write_models(rq->echo, ms, r->n_models);
    if (!r->base_url[0])
        return reply;
    /* what an older or hostile controller adds (tu_router_endpoint) */
    cJSON *j = cJSON_Parse(reply);
    free(reply);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "models"))
    {
        cJSON_AddStringToObject((cJSON *)m, "base_url", r->base_url);
        cJSON_AddStringToObject((cJSON *)m, "api_key_env", r->key_env);
    }
    reply = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return reply;
}

/* The reply to one request frame: parsed and written by the wire codec,
 * as bursard does; or the raw text set by tu_router_reply_raw. */
static char *
router_answer(tu_router_t *r, const char *body, size_t len)
{
    if (r->raw) {
        char *out = r->raw;
        r->raw = NULL;
        return out;
    }
    proto_request_t rq;
    proto_error_t err;
    if (proto_parse_request(body, len, &rq, &err) != PROTO_OK)
        return proto_write_error(rq.echo, err.code, err.message);
    switch (rq.op) {
    case PROTO_OP_PING:
        return proto_write_ok(rq.echo, 0);
    case PROTO_OP_CHOOSE:
        return router_choose(r, &rq);
    case PROTO_OP_FEEDBACK:
        return router_feedback(r, &rq);
    case PROTO_OP_BOOK:
        return router_book(r, &rq);
    case PROTO_OP_MODELS:
        return router_models(r, &rq);
    default:
        return proto_write_error(rq.echo, PROTO_E_UNKNOWN_OP,
                                 "op not served by the stand-in");
    }
}

static void *
router_main(void *arg)
{
    tu_router_t *r = arg;
    while (!r->stop) {
        zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        /* [identity][empty][body] from REQ */
        zmq_msg_t parts[8];
        int n = 0, more = 1;
        while (more && n < 8) {
            zmq_msg_init(&parts[n]);
            zmq_msg_recv(&parts[n], r->sock, 0);
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        pthread_mutex_lock(&r->mu);
        int drop = r->drop > 0;
        if (drop)
            r->drop--;
        pthread_mutex_unlock(&r->mu);
        if (!drop) {
            pthread_mutex_lock(&r->mu);
            char *out = router_answer(r, zmq_msg_data(&parts[n - 1]),
                                      zmq_msg_size(&parts[n - 1]));
            pthread_mutex_unlock(&r->mu);
            for (int i = 0; i < n - 1; i++)
                zmq_send(r->sock, zmq_msg_data(&parts[i]),
                         zmq_msg_size(&parts[i]), ZMQ_SNDMORE);
            zmq_send(r->sock, out, strlen(out), 0);
            free(out);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    return NULL;
}

tu_router_t *
tu_router_start(int port, const char *const *models, size_t n_models,
                char *endpoint, size_t cap)
{
    tu_router_t *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->refuse_escalates = router_refuse_escalates;
    snprintf(r->tenant[0], sizeof r->tenant[0], "?");
    snprintf(r->tenant[1], sizeof r->tenant[1], "?");
    for (size_t i = 0; i < n_models && i < 16; i++)
        snprintf(r->models[r->n_models++], 64, "%s", models[i]);
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0, one = 1;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (tu_curve_secret[0]) { /* before bind: the handshake needs it */
        zmq_setsockopt(r->sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
        zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, tu_curve_secret, 41);
    }
    char ep[64];
    if (port)
        snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    else
        snprintf(ep, sizeof(ep), "tcp://127.0.0.1:*");
    for (int i = 0; zmq_bind(r->sock, ep) != 0; i++) {
        if (i > 100) {
            zmq_close(r->sock);
            zmq_ctx_term(r->ctx);
            free(r);
            return NULL;
        }
        tu_sleep_ms(20);
    }
    size_t len = cap;
    zmq_getsockopt(r->sock, ZMQ_LAST_ENDPOINT, endpoint, &len);
    const char *colon = strrchr(endpoint, ':');
    r->port = colon ? atoi(colon + 1) : 0;
    pthread_create(&r->th, NULL, router_main, r);
    return r;
}

void
tu_router_stop(tu_router_t **rp)
{
    if (!rp || !*rp)
        return;
    tu_router_t *r = *rp;
    r->stop = 1;
    pthread_join(r->th, NULL);
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
    pthread_mutex_destroy(&r->mu);
    free(r->raw);
    free(r);
    *rp = NULL;
}

void
tu_router_drop(tu_router_t *r, int n)
{
    pthread_mutex_lock(&r->mu);
    r->drop = n;
    pthread_mutex_unlock(&r->mu);
}

int
tu_router_feedback(tu_router_t *r, const char *kind)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (size_t i = 0; i < r->n_fb; i++)
        if (!kind || strcmp(r->fb_kind[i], kind) == 0)
            n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int
tu_router_duplicates(tu_router_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->duplicates;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int
tu_router_chooses(tu_router_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->chooses;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void
tu_router_last(tu_router_t *r, const char *op, char *tenant, size_t cap,
               char *escalates, size_t ecap)
{
    int i = strcmp(op, "book") == 0;
    pthread_mutex_lock(&r->mu);
    snprintf(tenant, cap, "%s", r->tenant[i]);
    if (escalates)
        snprintf(escalates, ecap, "%s", r->link[i]);
    pthread_mutex_unlock(&r->mu);
}

void
tu_router_reply_raw(tu_router_t *r, const char *reply)
{
    pthread_mutex_lock(&r->mu);
    free(r->raw);
    r->raw = bursar_strdup(reply);
    pthread_mutex_unlock(&r->mu);
}

void
tu_router_endpoint(tu_router_t *r, const char *url, const char *key_env)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->base_url, sizeof(r->base_url), "%s", url);
    snprintf(r->key_env, sizeof(r->key_env), "%s", key_env);
    pthread_mutex_unlock(&r->mu);
}

void
tu_router_curve(const char *server_secret_z85)
{
    snprintf(tu_curve_secret, sizeof(tu_curve_secret), "%s",
             server_secret_z85 ? server_secret_z85 : "");
}

int
tu_router_port(tu_router_t *r)
{
    return r->port;
}

cJSON *
tu_read_jsonl(const char *path)
{
    cJSON *arr = cJSON_CreateArray();
    char *text = tu_read_file(path);
    char *save = NULL;
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save))
        cJSON_AddItemToArray(arr, cJSON_Parse(l));
    free(text);
    return arr;
}
