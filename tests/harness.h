/*
 * harness.h - the one harness that starts the real bursard for
 * integration tests (tests/controller, tests/agents): a daemon on an
 * ipc:// or tcp:// endpoint with its LMDB state in a directory of the
 * test, and a REQ client speaking JSON.
 *
 * Programs are found through $BURSAR_BIN_DIR (set by ctest). A program
 * that is missing fails the test, naming the path it was expected at: a
 * skipped integration test would count as passed.
 * Every function asserts (cmocka) on setup failures; none returns errors.
 * Daemons still running when the test process exits, or when it is
 * killed (PR_SET_PDEATHSIG), are killed with it.
 */
#ifndef BURSAR_TEST_HARNESS_H
#define BURSAR_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define TH_EXTRA_MAX 8 /* th_daemon_t's extra arguments at the most */

typedef struct th_daemon {
    pid_t pid;          /* 0 when not running */
    char dir[512];      /* the directory of its files */
    char state[600];    /* the LMDB directory */
    char config[600];   /* the configuration file */
    char endpoint[640]; /* where it listens (--listen) */
    char log[600];      /* the daemon's stderr (appended) */
    int wall_clock;     /* 1: started without --test-clock */
    int own_dir;        /* 1: th_cleanup removes dir */
    /* More arguments for th_start, after the clock argument (e.g.
     * "--metrics", "127.0.0.1:0"); the first NULL ends them. */
    const char *extra[TH_EXTRA_MAX];
} th_daemon_t;

/* Creates a temporary directory and writes the configuration (JSON text;
 * the endpoint is passed with --listen, so "listen" may be left out):
 * state in dir/state, endpoint ipc://dir/sock, --test-clock. */
void th_setup(th_daemon_t *d, const char *config_json);
/* A daemon whose files live in the caller's directory dir (not removed by
 * th_cleanup): config dir/NAME.json (not written), state dir/NAME-state,
 * log dir/NAME.log, listening on endpoint. */
void th_setup_in(th_daemon_t *d, const char *dir, const char *name,
                 const char *endpoint);
/* Rewrites the configuration file. */
void th_write_config(th_daemon_t *d, const char *config_json);
/* Starts bursard (with --test-clock unless wall_clock, then d->extra) and
 * waits until it answers ping; fails the test, naming the log, if it exits
 * or stays silent for 20 s. */
void th_start(th_daemon_t *d);
/* The same with another clock argument, e.g. "--test-clock=1767225600"
 * (a clock that starts there and moves only by the clock op), or NULL. */
void th_start_args(th_daemon_t *d, const char *clock_arg);
/* SIGTERM and wait; returns the exit status (or -1). */
int th_stop(th_daemon_t *d);
/* SIGKILL and wait. */
void th_kill9(th_daemon_t *d);
/* Sends a signal. */
void th_signal(th_daemon_t *d, int sig);
/* Stops if running and removes the directory when it owns it. */
void th_cleanup(th_daemon_t *d);
/* Kills every daemon still running (a teardown after failed tests). */
void th_kill_all(void);

/* Path of a bursar program (bursard, bursar, bursar-agent...) in
 * $BURSAR_BIN_DIR (a static buffer, one of four in turn). */
const char *th_bin(const char *name);
/* The same, and fails the test (fail_msg: the program and the path it was
 * expected at) when it is not an executable file there. */
const char *th_need(const char *name);
/* Runs a shell command; its stdout (and whatever the command redirects)
 * into out (truncated to cap - 1). Returns the exit status, or -1 when it
 * did not exit (a signal: 128 + signal is not folded into it). */
int th_run(const char *cmd, char *out, size_t cap);

typedef struct th_client th_client_t;

/* CURVE for the clients made from now on, th_start's ping included: this
 * client's secret key and the daemon's public key (Z85); NULL: none. */
void th_curve(const char *secret_z85, const char *server_public_z85);

/* A REQ client with a 5 s timeout. */
th_client_t *th_client_new(const char *endpoint);
void th_client_destroy(th_client_t **c);
/* Sends the request text; returns the parsed reply (caller deletes), or
 * NULL on timeout (the socket is then recreated). */
cJSON *th_call_raw(th_client_t *c, const void *buf, size_t len);
cJSON *th_call(th_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Asserts an ok reply and returns it. */
cJSON *th_ok(th_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Asserts an error reply with this code. */
void th_expect_error(th_client_t *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The usual cmocka fixture: a daemon started on config and a client of
 * it. th_fx_new returns it (for a group or test setup to put in *state);
 * th_fx_free stops the daemon, asserts its clean exit on SIGTERM and
 * frees everything. */
typedef struct th_fx {
    th_daemon_t d;
    th_client_t *c;
} th_fx_t;
th_fx_t *th_fx_new(const char *config_json);
void th_fx_free(th_fx_t *f);

/* Small JSON accessors (assert presence). */
double th_num(const cJSON *o, const char *key);
const char *th_str(const cJSON *o, const char *key);
/* The arm object of bucket/model in a stats reply, or NULL. */
const cJSON *th_arm(const cJSON *stats, const char *bucket, const char *model);
const cJSON *th_bucket(const cJSON *stats, const char *bucket);

/* Sleeps ms milliseconds. */
void th_sleep_ms(int ms);

/* Shared ZeroMQ context of the test process. */
void *th_zctx(void);

#endif
