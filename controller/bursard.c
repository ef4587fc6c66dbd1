/*
 * bursard - the bursar controller daemon.
 *
 * One thread, one ROUTER socket, one loop with group commit:
 *
 *   poll; read every waiting message (up to store.batch_max); handle them
 *   all in one LMDB write transaction; expire old decisions; commit; only
 *   then send the replies.
 *
 * One exception: a choose whose token carries its decision (ctl.h,
 * "early") is answered as soon as it is handled; feedback rebuilds its
 * record if the batch is lost. Every other reply is sent only for state
 * that is durable, and the cost of the commit (two fsyncs, or one with
 * store.sync = nometasync) is shared by every message of the batch. With
 * CURVE, a ZAP handler (RFC 27) on the same loop admits the allow-list's
 * keys. docs/controller.md and docs/security.md have the operator's
 * side.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <zmq.h>

#include "controller/auth.h"
#include "controller/cfg.h"
#include "controller/ctl.h"
#include "agents/keys.h"
#include "agents/proto.h"
#include "controller/store.h"
#include "controller/util.h"
#include "controller/web.h"
#include "agents/webd.h"

#ifndef BURSAR_VERSION
#define BURSAR_VERSION "unknown"
#endif

/* Handling time after which a batch is committed and answered even if
 * more messages are waiting (they go into the next batch). */
#define BURSARD_BATCH_S 0.010
/* A transaction whose replies all left early (chooses) stays open for the
 * next batches, until a reply must wait for the commit, this long after
 * it began, or store.batch_max messages: back-to-back chooses then do not
 * wait for each other's fsyncs. It bounds what a crash can lose. */
#define BURSARD_EARLY_S 0.005

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

/* What the command line asked for. */
typedef struct bursard_opts {
    const char *config;    /* --config, or NULL: the built-in one */
    const char *state_dir; /* --state-dir, or NULL */
    const char *listen[CFG_MAX_LISTEN];
    size_t n_listen;
    const char *metrics; /* --metrics HOST:PORT, or NULL */
    int test_clock, quiet;
    double clock_start; /* --test-clock=START, else 0 */
} bursard_opts_t;

/* The usage lines: after a usage error, with a pointer to --help. */
static const char bursard_synopsis[] =
    "usage: bursard [--config FILE] [--state-dir DIR] [--listen ENDPOINT]...\n"
    "               [--metrics HOST:PORT] [--test-clock[=START]] [--quiet]\n"
    "       bursard --check-config FILE\n"
    "       bursard --print-default-config | --config-reference\n"
    "       bursard --help | --version\n";

/* --help: the usage lines, then every option (help2man makes bursard.1 of
 * it: dist/CMakeLists.txt). */
static const char bursard_help[] =
    "\n"
    "The bursar controller: answers each request for a model (\"choose\",\n"
    "over ZeroMQ: docs/protocol.md) with the model chosen for its bucket\n"
    "within the budget, records every decision and feedback event in LMDB,\n"
    "and keeps the budget and the health of each model (docs/controller.md).\n"
    "SIGTERM or SIGINT stops it cleanly; SIGHUP reloads --config.\n"
    "\n"
    "Options:\n"
    "  --config FILE           the configuration (JSON; default: the built-in\n"
    "                          one, --print-default-config); SIGHUP reloads "
    "it\n"
    "  --state-dir DIR         the state directory (LMDB; created if "
    "missing);\n"
    "                          default: $BURSAR_STATE_DIR, else the\n"
    "                          configuration's state_dir, else ./bursar-state\n"
    "  --listen ENDPOINT       serve on this ZeroMQ endpoint "
    "(tcp://HOST:PORT,\n"
    "                          ipc://PATH) instead of the configuration's\n"
    "                          \"listen\"; repeatable\n"
    "  --metrics HOST:PORT     serve Prometheus metrics (/metrics) and the\n"
    "                          status page (/) on HOST:PORT (overrides\n"
    "                          metrics.listen; port 0: any free port, printed\n"
    "                          on standard error)\n"
    "  --test-clock[=START]    accept the \"clock\" op (tests only); with "
    "START\n"
    "                          (Unix seconds) time starts there and moves "
    "only\n"
    "                          by clock ops\n"
    "  --quiet                 no start, reload or stop lines on standard\n"
    "                          error: errors only\n"
    "  --check-config FILE     check the configuration FILE: every problem\n"
    "                          with its JSON path; exit 0 if valid, else 1\n"
    "  --print-default-config  print the built-in configuration (JSON)\n"
    "  --config-reference      print every key of the configuration (a\n"
    "                          Markdown table: type, range, default, meaning)\n"
    "  -h, --help              print this text\n"
    "  --version               print the version\n"
    "\n"
    "Environment:\n"
    "  BURSAR_STATE_DIR        the state directory when --state-dir is not\n"
    "                          given\n";

/* Prints the usage lines to f; with full, the whole help text. */
static void
bursard_usage(FILE *f, int full)
{
    fputs(bursard_synopsis, f);
    if (full)
        fputs(bursard_help, f);
    else
        fputs("Try 'bursard --help' for the options.\n", f);
}

/* The configuration's problems on stderr: log lines (timestamped) when
 * the daemon reads it, plain lines for --check-config. */
static void
bursard_print_problems(const char *file, const cfg_problems_t *pr, int log)
{
    /* "$.path: ..." names a place in the file; other messages (a file
     * that cannot be read) name the file themselves */
    for (size_t i = 0; i < pr->n; i++) {
        const char *who = pr->msg[i][0] == '$' ? file : "bursard";
        if (log)
            bursar_log("%s: %s", who, pr->msg[i]);
        else
            fprintf(stderr, "%s: %s\n", who, pr->msg[i]);
    }
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
        bursard_print_problems(path ? path : "(built-in)", &pr, 1);
    cfg_problems_clear(&pr);
    return cfg;
}

/* bursard --check-config FILE: the exit status. */
static int
bursard_check_config(const char *path)
{
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    int rc = cfg_load_file(path, &c, &pr);
    if (rc) {
        bursard_print_problems(path, &pr, 0);
        fprintf(stderr, "%s: %zu problem%s\n", path, pr.n,
                pr.n == 1 ? "" : "s");
    } else {
        printf("%s: ok (%zu model%s, %zu bucket%s)\n", path, c->n_models,
               c->n_models == 1 ? "" : "s", c->n_buckets,
               c->n_buckets == 1 ? "" : "s");
    }
    cfg_problems_clear(&pr);
    cfg_destroy(&c);
    return rc ? 1 : 0;
}

enum {
    OPT_CONFIG = 256,
    OPT_STATE_DIR,
    OPT_LISTEN,
    OPT_METRICS,
    OPT_TEST_CLOCK,
    OPT_QUIET,
    OPT_CHECK_CONFIG,
    OPT_PRINT_DEFAULT,
    OPT_CONFIG_REFERENCE,
    OPT_VERSION
};

/* Parses --test-clock=START (Unix seconds, finite, >= 0). */
static int
bursard_clock_arg(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v) || v < 0) {
        fprintf(stderr, "bursard: --test-clock=%s: not a time in seconds\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Handles one option (getopt_long's answer). Returns -1 to go on, or the
 * exit status of a command that ends here (--help, --check-config...). */
static int
bursard_option(int c, const char *arg, bursard_opts_t *o)
{
    char msg[600];
    switch (c) {
    case OPT_CONFIG:
        o->config = arg;
        return -1;
    case OPT_STATE_DIR:
        o->state_dir = arg;
        return -1;
    case OPT_LISTEN:
        if (proto_endpoint_check(arg, msg, sizeof msg) != 0) {
            fprintf(stderr, "bursard: --listen: %s\n", msg);
            return 2;
        }
        if (o->n_listen == CFG_MAX_LISTEN) {
            fprintf(stderr, "bursard: more than %d --listen endpoints\n",
                    CFG_MAX_LISTEN);
            return 2;
        }
        o->listen[o->n_listen++] = arg;
        return -1;
    case OPT_METRICS:
        if (!webd_listen_ok(arg)) {
            fprintf(stderr,
                    "bursard: --metrics %s: must be HOST:PORT, e.g. "
                    "127.0.0.1:9464\n",
                    arg);
            return 2;
        }
        o->metrics = arg;
        return -1;
    case OPT_TEST_CLOCK:
        o->test_clock = 1;
        return arg && bursard_clock_arg(arg, &o->clock_start) ? 2 : -1;
    case OPT_QUIET:
        o->quiet = 1;
        return -1;
    case OPT_CHECK_CONFIG:
        return bursard_check_config(arg);
    case OPT_PRINT_DEFAULT:
        fputs(cfg_default_json(), stdout);
        return 0;
    case OPT_CONFIG_REFERENCE:
        cfg_print_reference(stdout);
        return 0;
    case OPT_VERSION:
        printf("bursard %s\n", BURSAR_VERSION);
        return 0;
    case 'h':
        bursard_usage(stdout, 1);
        return 0;
    default:
        bursard_usage(stderr, 0);
        return 2;
    }
}

/* Returns -1 when the daemon should start, else the exit status. */
static int
bursard_parse_args(int argc, char **argv, bursard_opts_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"test-clock", optional_argument, NULL, OPT_TEST_CLOCK},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
        {"print-default-config", no_argument, NULL, OPT_PRINT_DEFAULT},
        {"config-reference", no_argument, NULL, OPT_CONFIG_REFERENCE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    int c, st;
    opterr = 0;
    while ((c = bursar_getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            char msg[300];
            util_opt_error(argv, msg, sizeof msg);
            fprintf(stderr, "bursard: %s\n", msg);
            c = '?';
        }
        if ((st = bursard_option(c, optarg, o)) >= 0)
            return st;
    }
    if (optind < argc) {
        fprintf(stderr, "bursard: unexpected argument %s\n", argv[optind]);
        bursard_usage(stderr, 0);
        return 2;
    }
    return -1;
}

/* Refuses a state directory of another format before anything opens it
 * for writing; says so when it is migrated. Returns 0 to go on. */
static int
bursard_check_state(const char *dir, int quiet)
{
    store_check_t chk;
    int rc = store_check(dir, &chk);
    if (rc) {
        bursar_log("bursard: cannot read the state directory %s: %s\n", dir,
                   store_strerror(rc));
        return -1;
    }
    if (chk.state == STORE_REFUSE && chk.format != STORE_FORMAT &&
        chk.format != STORE_FORMAT_V1 && chk.format != STORE_FORMAT_V2) {
        bursar_log("bursard: state directory %s has format %u (%s); this "
                   "bursard reads format %u (and migrates formats 0, 1 and 2): "
                   "start the bursard that wrote it, or move the directory "
                   "aside to start from empty state; nothing was changed\n",
                   dir, chk.format, chk.why, STORE_FORMAT);
        return -1;
    }
    if (chk.state == STORE_REFUSE) {
        bursar_log("bursard: state directory %s has format %u but %s: this "
                   "bursard cannot read it; move it aside to start from empty "
                   "state (nothing was changed)\n",
                   dir, chk.format, chk.why);
        return -1;
    }
    if (chk.state == STORE_MIGRATE && !quiet)
        bursar_log("bursard: state directory %s: migrating to format %u "
                   "(%s)\n",
                   dir, STORE_FORMAT, chk.why);
    return 0;
}

/* One message of a batch. */
typedef struct bursard_msg {
    zmq_msg_t ident;
    int delimiter; /* REQ envelope: an empty frame before the body */
    int sent;      /* answered before the commit (an early choose) */
    char *reply;
    int op;    /* its op for the request latency (-1: did not parse) */
    double t0; /* received (monotonic) */
} bursard_msg_t;

static void bursard_send(void *sock, ctl_t *ctl, bursard_msg_t *m);

/* The client of a request frame: with CURVE, the allow-list's entry of
 * the key the ZAP handler gave as User-Id (Z85), looked up at every
 * message: a key removed from the list since it connected has none, and
 * *reply says so (a name given to a new key does not carry over to the
 * old key's connection); without CURVE, unauthenticated. */
static int
bursard_peer(const auth_list_t *auth, int curve, zmq_msg_t *f, ctl_peer_t *p,
             char **reply)
{
    p->name = NULL;
    p->roles = AUTH_ALL;
    if (!curve)
        return 0;
    const char *uid = zmq_msg_gets(f, "User-Id");
    uint8_t key[32];
    const auth_client_t *cl =
        uid && bursar_key_valid(uid) && zmq_z85_decode(key, uid)
            ? auth_find_key(auth, key)
            : NULL;
    if (!cl) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the key %.40s is not in the allow-list (any more)",
                 uid ? uid : "");
        *reply = proto_write_error(NULL, PROTO_E_FORBIDDEN, msg);
        return -1;
    }
    p->name = cl->name;
    p->roles = cl->roles;
    return 0;
}

/* Receives the rest of a message after the identity frame; fills *reply
 * when the message is answered without the controller (bad envelope, too
 * large). Otherwise hands the body to ctl_handle. */
/* The messages of the batch before m (a batch is an array; m is its
 * last). */
typedef struct bursard_batch {
    bursard_msg_t *msgs;
    size_t n;    /* before m */
    size_t held; /* of those, replies waiting for the commit */
} bursard_batch_t;

/* 1 when a reply to m's peer waits for the commit in this batch: m's
 * reply must wait too, or a pipelining peer would see replies out of
 * order. */
static int
bursard_held(const bursard_batch_t *b, bursard_msg_t *m)
{
    if (!b->held) /* the common case: no scan */
        return 0;
    size_t len = zmq_msg_size(&m->ident);
    for (size_t i = 0; i < b->n; i++) {
        bursard_msg_t *o = &b->msgs[i];
        if (!o->sent && zmq_msg_size(&o->ident) == len &&
            memcmp(zmq_msg_data(&o->ident), zmq_msg_data(&m->ident), len) == 0)
            return 1;
    }
    return 0;
}

/* Receives the rest of a multipart message into f (at most cap frames,
 * *n of them; the caller closes them). Returns 1 when there were more
 * frames than cap (those are dropped). */
static int
bursard_recv_frames(void *sock, zmq_msg_t *f, int cap, int *n, int more)
{
    int extra = 0;
    *n = 0;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            if (zmq_errno() == EINTR)
                continue; /* the rest of the message is still there */
            break;
        }
        more = zmq_msg_more(&part);
        if (*n < cap) {
            f[(*n)++] = part;
        } else {
            zmq_msg_close(&part);
            extra = 1;
        }
    }
    return extra;
}

static void
bursard_read_body(void *sock, ctl_t *ctl, const auth_list_t *auth, int curve,
                  const bursard_batch_t *d_batch, bursard_msg_t *m, int more)
{
    zmq_msg_t f[3];
    int nf;
    int extra = bursard_recv_frames(sock, f, 3, &nf, more);
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
        ctl_peer_t peer;
        int early = 0;
        if (len > ctl_cfg(ctl)->max_message_bytes)
            m->reply = ctl_reply_too_large(ctl, len);
        else if (bursard_peer(auth, curve, &f[body], &peer, &m->reply) == 0) {
            m->reply =
                ctl_handle(ctl, zmq_msg_data(&f[body]), len, &peer, &early);
            m->op = ctl_request_op(ctl);
        }
        if (early && bursard_held(d_batch, m)) /* keep the peer's order */
            early = 0;
        if (early) { /* a choose: its token carries the decision */
            bursard_send(sock, ctl, m);
            free(m->reply);
            m->reply = NULL;
            m->sent = 1;
        }
    }
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

/* Sends m's reply; its latency goes to the request histogram (ctl). */
static void
bursard_send(void *sock, ctl_t *ctl, bursard_msg_t *m)
{
    if (zmq_msg_send(&m->ident, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m->ident);
        return; /* the peer is gone or its pipe is full: dropped */
    }
    if (m->delimiter)
        zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, m->reply, strlen(m->reply), ZMQ_DONTWAIT);
    ctl_observe_request(ctl, m->op, util_mono_time() - m->t0);
}

/* Reads and drops the rest of a message when no transaction could begin;
 * the reply says so. */
static void
bursard_drain(void *sock, bursard_msg_t *m, int more)
{
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (zmq_msg_size(&part) == 0)
            m->delimiter = 1;
        zmq_msg_close(&part);
    }
    m->reply = proto_write_error(NULL, PROTO_E_STORE,
                                 "the store cannot begin a transaction");
}

/* The running daemon. */
typedef struct bursard {
    bursard_opts_t o;
    ctl_t *ctl;
    char *state; /* the state directory */
    char *eps[CFG_MAX_LISTEN];
    size_t n_eps;
    void *zctx, *sock;
    void *zap;        /* the ZAP handler's socket (CURVE only) */
    int curve;        /* 1: clients authenticate with CURVE */
    auth_list_t auth; /* the allow-list */
    bursard_msg_t *batch;
    size_t cap;    /* of batch */
    int open;      /* a transaction is open across batches */
    double t_open; /* when it began (monotonic) */
    size_t n_open; /* messages handled in it */
    web_t *web;    /* metrics and status page, or NULL */
} bursard_t;

/* 1 for an endpoint that only this machine can reach. */
static int
bursard_local_endpoint(const char *ep)
{
    static const char *const local[] = {"ipc://", "inproc://", "tcp://127.",
                                        "tcp://localhost:", "tcp://[::1]:"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(ep, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

/* Refuses an endpoint others can reach without CURVE, unless the
 * configuration says insecure (then says so at every start). */
static int
bursard_check_endpoints(bursard_t *d)
{
    const cfg_t *cfg = ctl_cfg(d->ctl);
    for (size_t i = 0; i < d->n_eps; i++) {
        if (cfg->curve_secret || bursard_local_endpoint(d->eps[i]))
            continue;
        if (!cfg->insecure) {
            bursar_log(
                "bursard: %s is not a loopback or ipc endpoint and CURVE "
                "is not configured: anyone who reaches it could steer "
                "routing and spend. Configure \"curve\" "
                "(docs/security.md), or set \"insecure\": true to "
                "serve it unauthenticated; not starting\n",
                d->eps[i]);
            return 1;
        }
        bursar_log("bursard: WARNING: INSECURE: %s is served without "
                   "authentication (\"insecure\": true): anyone who reaches it "
                   "can choose, report outcomes, read stats and use the "
                   "operator's admin ops (adjust, reset, mark)\n",
                   d->eps[i]);
    }
    return 0;
}

/* Loads the allow-list (at start, and on SIGHUP). Returns 0 or -1. */
static int
bursard_load_auth(bursard_t *d)
{
    char err[512];
    auth_list_t nl;
    if (auth_load(ctl_cfg(d->ctl)->curve_clients, &nl, err, sizeof err)) {
        bursar_log("bursard: %s\n", err);
        return -1;
    }
    auth_free(&d->auth);
    d->auth = nl;
    if (!d->o.quiet)
        bursar_log("bursard: %zu clients in the allow-list %s\n", nl.n,
                   ctl_cfg(d->ctl)->curve_clients);
    return 0;
}

/* CURVE server on the ROUTER socket, and the ZAP handler (RFC 27) that
 * admits the allow-list's keys. Returns 0 or 1. */
static int
bursard_curve(bursard_t *d)
{
    const cfg_t *cfg = ctl_cfg(d->ctl);
    if (!cfg->curve_secret)
        return 0;
    char sec[BURSAR_KEY_Z85 + 1], err[600];
    if (bursar_key_load(cfg->curve_secret, 1, sec, err, sizeof err) != 0) {
        bursar_log("bursard: curve.secret_key_file: %s\n", err);
        return 1;
    }
    if (bursard_load_auth(d) != 0)
        return 1;
    d->zap = zmq_socket(d->zctx, ZMQ_REP);
    int one = 1;
    if (zmq_bind(d->zap, "inproc://zeromq.zap.01") != 0 ||
        zmq_setsockopt(d->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(d->sock, ZMQ_CURVE_SECRETKEY, sec, BURSAR_KEY_Z85) !=
            0 ||
        zmq_setsockopt(d->sock, ZMQ_ZAP_DOMAIN, "bursar", 6) != 0) {
        bursar_log("bursard: cannot set up CURVE: %s\n",
                   zmq_strerror(zmq_errno()));
        return 1;
    }
    memset(sec, 0, sizeof sec);
    d->curve = 1;
    return 0;
}

/* 1 if frame f holds exactly the bytes s. */
static int
bursard_frame_is(zmq_msg_t *f, const char *s)
{
    return zmq_msg_size(f) == strlen(s) &&
           memcmp(zmq_msg_data(f), s, strlen(s)) == 0;
}

/* Answers one ZAP request: 200 with the client's public key (Z85) as
 * User-Id when it is in the allow-list, else 400 (the connection gets
 * nothing). A request that is not well formed is refused. */
static void
bursard_zap(bursard_t *d)
{
    zmq_msg_t f[7];
    int n;
    int extra = bursard_recv_frames(d->zap, f, 7, &n, 1);
    /* version, request id, domain, address, identity, mechanism, key */
    const auth_client_t *cl = NULL;
    if (n == 7 && !extra && bursard_frame_is(&f[0], "1.0") &&
        bursard_frame_is(&f[2], "bursar") && bursard_frame_is(&f[5], "CURVE") &&
        zmq_msg_size(&f[6]) == 32)
        cl = auth_find_key(&d->auth, zmq_msg_data(&f[6]));
    char uid[BURSAR_KEY_Z85 + 1] = "";
    if (cl)
        zmq_z85_encode(uid, cl->key, 32);
    zmq_send(d->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(d->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(d->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(d->zap, cl ? "200" : "400", 3, ZMQ_SNDMORE);
    const char *text = cl ? "OK" : "key not in the allow-list";
    zmq_send(d->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(d->zap, uid, strlen(uid), ZMQ_SNDMORE);
    zmq_send(d->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* Loads the configuration, settles the state directory and the
 * endpoints, checks the store's format and opens the controller. Returns
 * 0 or 1 (said why on stderr). */
static int
bursard_open(bursard_t *d)
{
    cfg_t *cfg = bursard_load_config(d->o.config);
    if (!cfg) {
        bursar_log("bursard: invalid configuration: not starting\n");
        return 1;
    }
    const char *dir = d->o.state_dir;
    if (!dir)
        dir = getenv("BURSAR_STATE_DIR");
    if (!dir || !*dir)
        dir = cfg->state_dir ? cfg->state_dir : "./bursar-state";
    d->state = bursar_strdup(dir);
    for (size_t i = 0; i < d->o.n_listen; i++)
        d->eps[d->n_eps++] = bursar_strdup(d->o.listen[i]);
    for (size_t i = 0; d->o.n_listen == 0 && i < cfg->n_listen; i++)
        d->eps[d->n_eps++] = bursar_strdup(cfg->listen[i]);
    if (bursard_check_state(d->state, d->o.quiet) != 0) {
        cfg_destroy(&cfg);
        return 1;
    }
    ctl_options_t opt = {d->state, d->o.test_clock, d->o.clock_start};
    char err[512];
    if (ctl_open(&d->ctl, cfg, &opt, err, sizeof err) != 0) {
        bursar_log("bursard: %s\n", err);
        return 1;
    }
    return 0;
}

/* The ROUTER socket on every endpoint. Returns 0 or 1. */
static int
bursard_bind(bursard_t *d)
{
    d->zctx = zmq_ctx_new();
    d->sock = zmq_socket(d->zctx, ZMQ_ROUTER);
    /* Frames above the hard limit make libzmq drop the connection (the
     * client sees nothing); between max_message_bytes and the hard limit
     * the request is read and answered message_too_large. */
    size_t soft = ctl_cfg(d->ctl)->max_message_bytes;
    int64_t hard = (int64_t)(soft * 16 > (1u << 20) ? soft * 16 : (1u << 20));
    int hwm = 100000, linger = 1000;
    zmq_setsockopt(d->sock, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(d->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(d->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(d->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (bursard_check_endpoints(d) != 0 || bursard_curve(d) != 0)
        return 1;
    for (size_t i = 0; i < d->n_eps; i++) {
        if (zmq_bind(d->sock, d->eps[i]) != 0) {
            bursar_log("bursard: cannot listen on %s: %s\n", d->eps[i],
                       zmq_strerror(zmq_errno()));
            return 1;
        }
    }
    char err[300];
    if (web_open(&d->web, d->zctx, ctl_cfg(d->ctl), d->o.metrics, d->o.quiet,
                 err, sizeof err) != 0) {
        bursar_log("bursard: %s\n", err);
        return 1;
    }
    if (d->o.quiet)
        return 0;
    if (d->web)
        bursar_log("bursard: metrics and status page on %s, port %u "
                   "(/metrics, /)\n",
                   d->o.metrics ? d->o.metrics
                                : ctl_cfg(d->ctl)->metrics_listen,
                   web_port(d->web));
    bursar_buf_t eps = {0};
    for (size_t i = 0; i < d->n_eps; i++) {
        bursar_buf_add(&eps, " ", 1);
        bursar_buf_add(&eps, d->eps[i], strlen(d->eps[i]));
    }
    size_t nb = ctl_cfg(d->ctl)->n_buckets, nm = ctl_cfg(d->ctl)->n_models;
    bursar_log("bursard: listening on%s; state in %s; %zu bucket%s, %zu "
               "model%s%s%s",
               eps.p ? eps.p : "", d->state, nb, nb == 1 ? "" : "s", nm,
               nm == 1 ? "" : "s", d->curve ? "; CURVE" : "; no authentication",
               d->o.test_clock ? "; test clock" : "");
    free(eps.p);
    return 0;
}

/* SIGHUP, CURVE on: rereads the allow-list named by the configuration in
 * force (the old one when the new configuration was refused). */
static void
bursard_reload_auth(bursard_t *d)
{
    if (!d->curve)
        return;
    if (!ctl_cfg(d->ctl)->curve_clients)
        bursar_log("bursard: SIGHUP: the new configuration has no "
                   "\"curve\": CURVE stays on, with the allow-list "
                   "as it was, until a restart\n");
    else if (bursard_load_auth(d) != 0)
        bursar_log("bursard: SIGHUP: the allow-list is invalid "
                   "(above): keeping the old one\n");
}

/* 1 when the metrics section differs (it is read at start only). */
static int
bursard_metrics_changed(const cfg_t *a, const cfg_t *b)
{
    const char *sa[] = {a->metrics_listen, a->metrics_token_env};
    const char *sb[] = {b->metrics_listen, b->metrics_token_env};
    for (int i = 0; i < 2; i++)
        if ((sa[i] == NULL) != (sb[i] == NULL) ||
            (sa[i] && strcmp(sa[i], sb[i]) != 0))
            return 1;
    if (a->n_metrics_allow != b->n_metrics_allow)
        return 1;
    for (size_t i = 0; i < a->n_metrics_allow; i++)
        if (strcmp(a->metrics_allow[i], b->metrics_allow[i]) != 0)
            return 1;
    return 0;
}

/* SIGHUP: reloads --config between batches; an invalid one keeps the old
 * configuration. */
static void
bursard_reload(bursard_t *d)
{
    char err[512];
    cfg_t *nc = bursard_load_config(d->o.config);
    if (!nc) {
        bursar_log("bursard: SIGHUP: the new configuration is "
                   "invalid (above): keeping the old one\n");
        bursard_reload_auth(d); /* a revoked key must not wait for it */
        return;
    }
    if (bursard_metrics_changed(ctl_cfg(d->ctl), nc))
        bursar_log("bursard: SIGHUP: metrics.listen, metrics.allow and "
                   "metrics.token_env take effect at a restart; the "
                   "metrics address keeps its settings until then\n");
    if (ctl_reconfigure(d->ctl, nc, err, sizeof err) != 0) {
        bursar_log("bursard: SIGHUP: %s\n", err);
        bursard_reload_auth(d);
        return;
    }
    if (!d->o.quiet)
        bursar_log("bursard: SIGHUP: configuration reloaded (%zu "
                   "buckets)\n",
                   ctl_cfg(d->ctl)->n_buckets);
    bursard_reload_auth(d);
    if (ctl_cfg(d->ctl)->batch_max > d->cap) {
        d->cap = ctl_cfg(d->ctl)->batch_max;
        free(d->batch);
        d->batch = bursar_calloc(d->cap, sizeof *d->batch);
    }
}

/* Reads the waiting messages of one batch and handles them (brc: the
 * status of ctl_begin; without a transaction each is answered
 * store_error). Returns how many were read. */
static size_t
bursard_receive(bursard_t *d, int brc)
{
    size_t n = 0, held = 0;
    double t0 = util_mono_time();
    /* A batch also closes after BURSARD_BATCH_S of handling: requests
     * that cost CPU (a bucket with its own cap solves an LP per draw of
     * its propensity estimate) must not hold every reply of a long
     * batch, nor leave it all uncommitted for seconds. */
    while (n < d->cap && (n == 0 || util_mono_time() - t0 < BURSARD_BATCH_S)) {
        bursard_msg_t *m = &d->batch[n];
        memset(m, 0, sizeof *m);
        zmq_msg_init(&m->ident);
        if (zmq_msg_recv(&m->ident, d->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m->ident);
            break;
        }
        m->t0 = util_mono_time();
        m->op = -1;
        int more = zmq_msg_more(&m->ident);
        if (brc)
            bursard_drain(d->sock, m, more);
        else
            bursard_read_body(d->sock, d->ctl, &d->auth, d->curve,
                              &(bursard_batch_t){d->batch, n, held}, m, more);
        held += m->reply != NULL;
        n++;
    }
    return n;
}

/* Commits the batch (replies become store errors when the commit fails:
 * nothing of them is durable), then sends every reply. */
static void
bursard_finish(bursard_t *d, size_t n, int brc)
{
    if (brc) {
        bursar_log("bursard: cannot begin a transaction (%d)\n", brc);
    } else {
        ctl_sweep(d->ctl);
        int crc = ctl_commit(d->ctl);
        for (size_t i = 0; crc && i < n; i++) {
            if (d->batch[i].sent)
                continue;
            char msg[200];
            snprintf(msg, sizeof msg,
                     "the commit failed (%d): nothing of this request was "
                     "recorded; retry",
                     crc);
            free(d->batch[i].reply);
            d->batch[i].reply = proto_write_error(NULL, PROTO_E_STORE, msg);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (d->batch[i].reply)
            bursard_send(d->sock, d->ctl, &d->batch[i]);
        else if (!d->batch[i].sent)
            zmq_msg_close(&d->batch[i].ident);
        free(d->batch[i].reply);
    }
}

/* 1 when a reply of the batch waits for the commit. */
static int
bursard_held_any(const bursard_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d->batch[i].reply)
            return 1;
    return 0;
}

/* Handles the waiting messages in the open transaction (beginning one if
 * none is open); commits and answers unless every reply left early and
 * the transaction may stay open (BURSARD_EARLY_S). */
static void
bursard_step(bursard_t *d, int readable, int timed_out)
{
    if (!d->open) {
        int brc = ctl_begin(d->ctl);
        if (brc) {
            bursard_finish(d, bursard_receive(d, brc), brc);
            return;
        }
        d->open = 1;
        d->t_open = util_mono_time();
        d->n_open = 0;
    }
    size_t n = readable ? bursard_receive(d, 0) : 0;
    d->n_open += n;
    if (bursard_held_any(d, n) || timed_out || n == 0 ||
        util_mono_time() - d->t_open >= BURSARD_EARLY_S ||
        d->n_open >= d->cap) {
        bursard_finish(d, n, 0);
        d->open = 0;
    }
    /* else every message of the batch was answered (its ident consumed) */
}

/* Polls the ROUTER socket, the ZAP handler's and the web pair's (each
 * present or not: an absent one is polled as the ROUTER socket again). */
static int
bursard_poll(bursard_t *d, zmq_pollitem_t *items, long wait_ms)
{
    for (int i = 1; i < 3; i++)
        if (!items[i].socket)
            items[i].socket = d->sock;
    return zmq_poll(items, 3, wait_ms);
}

/* Poll, batch, commit, answer until SIGTERM/SIGINT. Returns the exit
 * status. */
static int
bursard_loop(bursard_t *d)
{
    d->cap = ctl_cfg(d->ctl)->batch_max;
    d->batch = bursar_calloc(d->cap, sizeof *d->batch);
    while (!bursard_stop) {
        if (bursard_hup) {
            bursard_hup = 0;
            if (d->open)
                bursard_step(d, 0, 1);
            bursard_reload(d);
        }
        /* the web side waits while a transaction is open: a scrape sees
         * only committed state, and a counter never goes back when a
         * commit fails and memory is reloaded */
        zmq_pollitem_t items[3] = {
            {d->sock, 0, ZMQ_POLLIN, 0},
            {d->zap, 0, ZMQ_POLLIN, 0},
            {d->open ? NULL : web_socket(d->web), 0, ZMQ_POLLIN, 0}};
        long wait_ms = 200;
        if (d->open) {
            double left = d->t_open + BURSARD_EARLY_S - util_mono_time();
            wait_ms = left > 0 ? (long)(left * 1e3) + 1 : 0;
        }
        if (d->web)
            ctl_status_tick(d->ctl);
        int pr = bursard_poll(d, items, wait_ms);
        if (pr < 0 && zmq_errno() == EINTR)
            continue;
        if (pr < 0) {
            bursar_log("bursard: zmq_poll: %s\n", zmq_strerror(zmq_errno()));
            return 1;
        }
        if (d->zap && (items[1].revents & ZMQ_POLLIN))
            bursard_zap(d);
        if (d->web && items[2].socket != d->sock &&
            (items[2].revents & ZMQ_POLLIN))
            web_serve(d->web, d->ctl);
        if (pr > 0 && !(items[0].revents & ZMQ_POLLIN))
            continue;
        if (pr == 0 && !d->open && !ctl_sweep_due(d->ctl))
            continue;
        bursard_step(d, pr > 0, pr == 0);
    }
    if (d->open) /* what was answered early is committed before exit */
        bursard_step(d, 0, 1);
    if (!d->o.quiet)
        bursar_log("bursard: stopping after %llu decision%s since start\n",
                   ctl_decisions(d->ctl),
                   ctl_decisions(d->ctl) == 1 ? "" : "s");
    return 0;
}

static void
bursard_close(bursard_t *d)
{
    web_close(&d->web);
    free(d->batch);
    if (d->sock)
        zmq_close(d->sock);
    if (d->zap)
        zmq_close(d->zap);
    auth_free(&d->auth);
    if (d->zctx)
        zmq_ctx_term(d->zctx);
    ctl_destroy(&d->ctl);
    free(d->state);
    for (size_t i = 0; i < d->n_eps; i++)
        free(d->eps[i]);
}

static void
bursard_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bursard_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int
main(int argc, char **argv)
{
    /* GSL's default handler aborts the process on any error (a Beta
     * quantile that does not converge); every caller checks results. */
    gsl_set_error_handler_off();
    bursard_t d;
    memset(&d, 0, sizeof d);
    int status = bursard_parse_args(argc, argv, &d.o);
    if (status >= 0)
        return status;
    status = bursard_open(&d);
    if (!status) {
        bursard_signals();
        status = bursard_bind(&d);
    }
    if (!status)
        status = bursard_loop(&d);
    bursard_close(&d);
    return status;
}
