/*
 * util.h - helpers shared by the agents/ tests: child processes, the mock
 * provider, temp dirs, a ROUTER stand-in for unit-level client tests (it
 * parses requests and writes replies with the wire codec, proto.h; its
 * decision ids are 16 hex digits numbered from 1, and every id up to
 * 0xffffffff is "known").
 */
#ifndef BURSAR_TEST_AGENTS_UTIL_H
#define BURSAR_TEST_AGENTS_UTIL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

#include "agents/bursar.h"

/* $BURSAR_BIN_DIR/name (static buffer per call site: copy it). */
const char *tu_bin(const char *name, char *buf, size_t cap);

/* A temp directory (mkdtemp) and removal of it (rm -rf). */
void tu_tmpdir(char *buf, size_t cap);
void tu_rmrf(const char *dir);
void tu_write_file(const char *path, const char *text);
char *tu_read_file(const char *path); /* malloc'ed or NULL */
/* Reads a JSONL file into a new cJSON array, one item per line (a line
 * that does not parse becomes a NULL item: cJSON skips it). */
cJSON *tu_read_jsonl(const char *path);

/* Starts argv[0] with argv; stdout to out_path (NULL: inherit), stderr to
 * err_path (NULL: inherit), stdin from in_path (NULL: /dev/null). */
pid_t tu_spawn(char *const argv[], const char *in_path, const char *out_path,
               const char *err_path);
/* Waits up to timeout_ms; returns the exit status, or -1 (then killed). */
int tu_wait(pid_t pid, int timeout_ms);
void tu_kill(pid_t pid, int sig);

/* The port a program started by tu_spawn prints as its first line on
 * stdout (out_path), waiting up to timeout_ms; 0 when it exits first or
 * prints none. */
int tu_wait_port(pid_t pid, const char *out_path, int timeout_ms);

/* Starts the mock provider with a script (JSON text); returns its pid and
 * fills *port. */
pid_t tu_mock_start(const char *script_json, int *port);
/* GET /stats of the mock: requests served for model (all statuses). */
int tu_mock_requests(int port, const char *model, const char *status);

void tu_sleep_ms(long ms);
double tu_now(void);

/* A model record pointing at the mock. */
void tu_model(bursar_model_t *m, const char *name, int anthropic, int port,
              double pin, double pout);

/* ------------------------------------------------ ROUTER stand-in */

typedef struct tu_router tu_router_t;
/* Binds tcp://127.0.0.1:port (port 0: any). endpoint gets the address. */
tu_router_t *tu_router_start(int port, const char *const *models,
                             size_t n_models, char *endpoint, size_t cap);
void tu_router_stop(tu_router_t **r);
/* The next n requests are received and not answered. */
void tu_router_drop(tu_router_t *r, int n);
/* Counters. */
/* feedback events applied, of kind (NULL: all); "book": bookings */
int tu_router_feedback(tu_router_t *r, const char *kind);
int tu_router_duplicates(tu_router_t *r);
int tu_router_chooses(tu_router_t *r);
/* The tenant the last request of op ("choose" or "book") carried ("" none;
 * "?" before any) into out (cap bytes); with escalates (may be NULL) its
 * "escalates" (choose) or local id (book). */
void tu_router_last(tu_router_t *r, const char *op, char *tenant, size_t cap,
                    char *escalates, size_t ecap);
/* Stand-ins started from now on (on: 1) answer a choose naming
 * "escalates" with unknown_decision naming that field, as a controller
 * whose token key was replaced would. */
void tu_router_refuse_escalates(int on);
int tu_router_port(tu_router_t *r);
/* The next request is answered with reply, verbatim (a malformed reply
 * for a test; every other reply is written by the wire codec). */
void tu_router_reply_raw(tu_router_t *r, const char *reply);
/* Makes the models reply name base_url url and api_key_env key_env for
 * every model, as older (or hostile) controllers did: fields the codec
 * no longer writes, added to its reply; bursar-agent must ignore them. */
void tu_router_endpoint(tu_router_t *r, const char *url, const char *key_env);
/* A CURVE server (its secret key, Z85) for the next tu_router_start;
 * NULL: none. Any client key is accepted (no ZAP handler). */
void tu_router_curve(const char *server_secret_z85);

#endif
