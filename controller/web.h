/*
 * web.h - bursard's HTTP side (metrics.listen): Prometheus metrics at
 * /metrics, the status page at / and its data at /status.json.
 *
 * The HTTP server (agents/webd.h) runs on its own thread; the controller's
 * state belongs to the daemon's loop. A request crosses over an inproc
 * ZeroMQ pair: the HTTP thread sends what it wants, the loop polls
 * web_socket() beside its ROUTER socket and web_serve() renders the answer
 * from the controller's memory (never the store), between batches.
 *
 *     web_t *w;
 *     if (web_open(&w, zctx, cfg, listen, quiet, err, sizeof err) != 0) ...
 *     poll web_socket(w) with the others; when readable:
 *         web_serve(w, ctl);
 *     web_close(&w);
 */
#ifndef BURSAR_CONTROLLER_WEB_H
#define BURSAR_CONTROLLER_WEB_H

#include <stddef.h>

#include "controller/cfg.h"
#include "controller/ctl.h"

typedef struct web web_t;

/* Serves on listen (HOST:PORT; NULL: cfg->metrics_listen) with cfg's
 * metrics.allow and metrics.token_env. Returns 0 (*out NULL when nothing is
 * to be served), or -1 with a reason in err. */
int web_open(web_t **out, void *zctx, const cfg_t *cfg, const char *listen,
             int quiet, char *err, size_t cap);
/* The loop's end of the pair, to poll for ZMQ_POLLIN. */
void *web_socket(const web_t *w);
/* Answers every waiting request. */
void web_serve(web_t *w, ctl_t *ctl);
/* The port bound. */
unsigned web_port(const web_t *w);
void web_close(web_t **w);

/* The page's text (controller/status.html, built in). */
extern const char web_status_html[];
extern const size_t web_status_html_len;

#endif
