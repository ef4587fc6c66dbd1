/*
 * harness.h - integration-test helpers: a real bursard on an ipc://
 * endpoint in a fresh temporary directory, with its LMDB state there, and
 * a REQ/DEALER client speaking JSON.
 *
 * The daemon binary is found through $BURSAR_BIN_DIR (set by ctest).
 * Every function asserts (cmocka) on setup failures; none returns errors.
 */
#ifndef BURSAR_TEST_HARNESS_H
#define BURSAR_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef struct th_daemon {
    pid_t pid;          /* 0 when not running */
    char dir[256];      /* the temporary directory */
    char state[320];    /* dir/state: the LMDB directory */
    char config[320];   /* dir/config.json */
    char endpoint[330]; /* ipc://dir/sock */
    char log[320];      /* dir/bursard.log: the daemon's stderr */
} th_daemon_t;

/* Creates the directory and writes the configuration (JSON text; the
 * endpoint is passed with --listen, so "listen" may be left out). */
void th_setup(th_daemon_t *d, const char *config_json);
/* Rewrites the configuration file. */
void th_write_config(th_daemon_t *d, const char *config_json);
/* Starts bursard --test-clock and waits until it answers ping. */
void th_start(th_daemon_t *d);
/* The same with another clock argument, e.g. "--test-clock=1767225600"
 * (a clock that starts there and moves only by the clock op). */
void th_start_args(th_daemon_t *d, const char *clock_arg);
/* SIGTERM and wait; returns the exit status (or -1). */
int th_stop(th_daemon_t *d);
/* SIGKILL and wait. */
void th_kill9(th_daemon_t *d);
/* Sends a signal. */
void th_signal(th_daemon_t *d, int sig);
/* Stops if running and removes the directory. */
void th_cleanup(th_daemon_t *d);
/* Path of a bursar program (bursard, bursar) in $BURSAR_BIN_DIR. */
const char *th_bin(const char *name);

typedef struct th_client th_client_t;

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
