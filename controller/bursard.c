/*
 * bursard - the bursar controller daemon.
 *
 * One thread, one ROUTER socket, one loop with group commit:
 *
 *   poll; read every waiting message (up to store.batch_max); handle them
 *   all in one LMDB write transaction; expire old decisions; commit; only
 *   then send the replies.
 *
 * A reply is therefore never sent for state that is not durable, and the
 * cost of the commit (two fsyncs, or one with store.sync = nometasync) is
 * shared by every message of the batch. docs/controller.md has the
 * operator's side.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "cfg.h"
#include "ctl.h"
#include "proto.h"
#include "util.h"

/* Handling time after which a batch is committed and answered even if
 * more messages are waiting (they go into the next batch). */
#define BURSARD_BATCH_S 0.010

static volatile sig_atomic_t bursard_stop;
static volatile sig_atomic_t bursard_hup;

static void
bursard_on_signal(int sig)
{
    if (sig == SIGHUP)
        bursard_hup = 1;
    else
        bursard_stop = 1;
}

static void
bursard_usage(FILE *f)
{
    fprintf(f,
            "usage: bursard [--config FILE] [--state-dir DIR] "
            "[--listen ENDPOINT]...\n"
            "               [--test-clock] [--quiet]\n"
            "       bursard --check-config FILE\n"
            "       bursard --print-default-config\n"
            "\n"
            "State directory: --state-dir, else $BURSAR_STATE_DIR, else the\n"
            "configuration's state_dir, else ./bursar-state.\n"
            "Signals: SIGTERM/SIGINT stop; SIGHUP reloads --config.\n");
}

static void
bursard_print_problems(const char *file, const cfg_problems_t *pr)
{
    for (size_t i = 0; i < pr->n; i++)
        fprintf(stderr, "%s: %s\n", file, pr->msg[i]);
}

static cfg_t *
bursard_load_config(const char *path)
{
    cfg_t *cfg = NULL;
    cfg_problems_t pr = {0};
    int rc;
    if (path)
        rc = cfg_load_file(path, &cfg, &pr);
    else
        rc = cfg_parse(cfg_default_json(), strlen(cfg_default_json()), &cfg,
                       &pr);
    if (rc)
        bursard_print_problems(path ? path : "(built-in)", &pr);
    cfg_problems_clear(&pr);
    return cfg;
}

/* One message of a batch. */
typedef struct bursard_msg {
    zmq_msg_t ident;
    int delimiter; /* REQ envelope: an empty frame before the body */
    char *reply;
} bursard_msg_t;

/* Receives the rest of a message after the identity frame; fills *reply
 * when the message is answered without the controller (bad envelope, too
 * large). Otherwise hands the body to ctl_handle. */
static void
bursard_read_body(void *sock, ctl_t *ctl, bursard_msg_t *m, int more)
{
    zmq_msg_t f[3];
    int nf = 0, extra = 0;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (nf < 3)
            f[nf++] = part;
        else {
            zmq_msg_close(&part);
            extra = 1;
        }
    }
    int body = -1;
    if (nf >= 1 && zmq_msg_size(&f[0]) == 0) {
        m->delimiter = 1;
        if (nf == 2 && !extra)
            body = 1;
    } else if (nf == 1) {
        body = 0;
    }
    if (body < 0) {
        m->reply = proto_write_error(NULL, PROTO_E_BAD_REQUEST,
                                     "a request is one frame holding one "
                                     "JSON object (after the REQ envelope)");
    } else {
        size_t len = zmq_msg_size(&f[body]);
        if (len > ctl_cfg(ctl)->max_message_bytes)
            m->reply = ctl_reply_too_large(ctl, len);
        else
            m->reply = ctl_handle(ctl, zmq_msg_data(&f[body]), len);
    }
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

static void
bursard_send(void *sock, bursard_msg_t *m)
{
    if (zmq_msg_send(&m->ident, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m->ident);
        return; /* the peer is gone or its pipe is full: dropped */
    }
    if (m->delimiter)
        zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, m->reply, strlen(m->reply), ZMQ_DONTWAIT);
}

int
main(int argc, char **argv)
{
    const char *config = NULL, *state_dir = NULL;
    const char *listen[CFG_MAX_LISTEN];
    size_t n_listen = 0;
    int test_clock = 0, quiet = 0;
    double clock_start = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--state-dir") == 0 && i + 1 < argc) {
            state_dir = argv[++i];
        } else if (strcmp(a, "--listen") == 0 && i + 1 < argc) {
            if (n_listen < CFG_MAX_LISTEN)
                listen[n_listen++] = argv[++i];
        } else if (strcmp(a, "--test-clock") == 0) {
            test_clock = 1;
        } else if (strncmp(a, "--test-clock=", 13) == 0) {
            test_clock = 1;
            clock_start = strtod(a + 13, NULL);
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--check-config") == 0 && i + 1 < argc) {
            cfg_t *c = NULL;
            cfg_problems_t pr = {0};
            int rc = cfg_load_file(argv[i + 1], &c, &pr);
            if (rc) {
                bursard_print_problems(argv[i + 1], &pr);
                fprintf(stderr, "%s: %zu problem%s\n", argv[i + 1], pr.n,
                        pr.n == 1 ? "" : "s");
            } else {
                printf("%s: ok (%zu models, %zu buckets)\n", argv[i + 1],
                       c->n_models, c->n_buckets);
            }
            cfg_problems_clear(&pr);
            cfg_destroy(&c);
            return rc ? 1 : 0;
        } else if (strcmp(a, "--print-default-config") == 0) {
            fputs(cfg_default_json(), stdout);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bursard_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bursard: unknown argument %s\n", a);
            bursard_usage(stderr);
            return 2;
        }
    }

    cfg_t *cfg = bursard_load_config(config);
    if (!cfg) {
        fprintf(stderr, "bursard: invalid configuration: not starting\n");
        return 1;
    }
    if (!state_dir)
        state_dir = getenv("BURSAR_STATE_DIR");
    if (!state_dir || !*state_dir)
        state_dir = cfg->state_dir ? cfg->state_dir : "./bursar-state";
    char *state = bursar_strdup(state_dir);
    if (n_listen == 0)
        for (size_t i = 0; i < cfg->n_listen; i++)
            listen[n_listen++] = cfg->listen[i];
    char *eps[CFG_MAX_LISTEN];
    for (size_t i = 0; i < n_listen; i++)
        eps[i] = bursar_strdup(listen[i]);

    ctl_options_t opt = {state, test_clock, clock_start};
    ctl_t *ctl = NULL;
    char err[512];
    if (ctl_open(&ctl, cfg, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "bursard: %s\n", err);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bursard_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    void *zctx = zmq_ctx_new();
    void *sock = zmq_socket(zctx, ZMQ_ROUTER);
    /* Frames above the hard limit make libzmq drop the connection (the
     * client sees nothing); between max_message_bytes and the hard limit
     * the request is read and answered message_too_large. */
    size_t soft = ctl_cfg(ctl)->max_message_bytes;
    int64_t hard = (int64_t)(soft * 16 > (1u << 20) ? soft * 16 : (1u << 20));
    int hwm = 100000, linger = 1000;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    int status = 0;
    for (size_t i = 0; i < n_listen; i++) {
        if (zmq_bind(sock, eps[i]) != 0) {
            fprintf(stderr, "bursard: cannot listen on %s: %s\n", eps[i],
                    zmq_strerror(zmq_errno()));
            status = 1;
            goto out;
        }
    }
    if (!quiet) {
        fprintf(stderr, "bursard: listening on");
        for (size_t i = 0; i < n_listen; i++)
            fprintf(stderr, " %s", eps[i]);
        fprintf(stderr, "; state in %s; %zu buckets, %zu models%s\n", state,
                ctl_cfg(ctl)->n_buckets, ctl_cfg(ctl)->n_models,
                test_clock ? "; test clock" : "");
    }

    size_t cap = ctl_cfg(ctl)->batch_max;
    bursard_msg_t *batch = bursar_calloc(cap, sizeof *batch);
    while (!bursard_stop) {
        if (bursard_hup) {
            bursard_hup = 0;
            cfg_t *nc = bursard_load_config(config);
            if (!nc) {
                fprintf(stderr, "bursard: SIGHUP: the new configuration is "
                                "invalid (above): keeping the old one\n");
            } else if (ctl_reconfigure(ctl, nc, err, sizeof err) != 0) {
                fprintf(stderr, "bursard: SIGHUP: %s\n", err);
            } else {
                if (!quiet)
                    fprintf(stderr,
                            "bursard: SIGHUP: configuration "
                            "reloaded (%zu buckets)\n",
                            ctl_cfg(ctl)->n_buckets);
                if (ctl_cfg(ctl)->batch_max > cap) {
                    cap = ctl_cfg(ctl)->batch_max;
                    free(batch);
                    batch = bursar_calloc(cap, sizeof *batch);
                }
            }
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int pr = zmq_poll(&item, 1, 200);
        if (pr < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fprintf(stderr, "bursard: zmq_poll: %s\n",
                    zmq_strerror(zmq_errno()));
            status = 1;
            break;
        }
        if (pr == 0 && !ctl_sweep_due(ctl))
            continue;

        int brc = ctl_begin(ctl);
        size_t n = 0;
        double t0 = util_mono_time();
        /* A batch also closes after BURSARD_BATCH_S of handling: requests
         * that cost CPU (a bucket with its own cap solves an LP per draw of
         * its propensity estimate) must not hold every reply of a long
         * batch, nor leave it all uncommitted for seconds. */
        while (n < cap && (n == 0 || util_mono_time() - t0 < BURSARD_BATCH_S)) {
            bursard_msg_t *m = &batch[n];
            memset(m, 0, sizeof *m);
            zmq_msg_init(&m->ident);
            if (zmq_msg_recv(&m->ident, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m->ident);
                break;
            }
            int more = zmq_msg_more(&m->ident);
            if (brc) {
                /* No transaction: drain and answer store_error. */
                bursard_read_body(sock, ctl, m, 0);
                while (more) {
                    zmq_msg_t part;
                    zmq_msg_init(&part);
                    zmq_msg_recv(&part, sock, 0);
                    more = zmq_msg_more(&part);
                    if (zmq_msg_size(&part) == 0)
                        m->delimiter = 1;
                    zmq_msg_close(&part);
                }
                free(m->reply);
                m->reply = proto_write_error(NULL, PROTO_E_STORE,
                                             "the store cannot begin a "
                                             "transaction");
            } else {
                bursard_read_body(sock, ctl, m, more);
            }
            n++;
        }
        if (!brc) {
            ctl_sweep(ctl);
            int crc = ctl_commit(ctl);
            if (crc) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "the commit failed (%d): nothing of this request "
                         "was recorded; retry",
                         crc);
                for (size_t i = 0; i < n; i++) {
                    free(batch[i].reply);
                    batch[i].reply =
                        proto_write_error(NULL, PROTO_E_STORE, msg);
                }
            }
        } else {
            fprintf(stderr, "bursard: cannot begin a transaction (%d)\n", brc);
        }
        for (size_t i = 0; i < n; i++) {
            if (batch[i].reply)
                bursard_send(sock, &batch[i]);
            else
                zmq_msg_close(&batch[i].ident);
            free(batch[i].reply);
        }
    }
    free(batch);
    if (!quiet)
        fprintf(stderr, "bursard: stopping after %llu decisions\n",
                ctl_decisions(ctl));
out:
    zmq_close(sock);
    zmq_ctx_term(zctx);
    ctl_destroy(&ctl);
    free(state);
    for (size_t i = 0; i < n_listen; i++)
        free(eps[i]);
    return status;
}
