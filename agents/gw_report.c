/*
 * gw_report.c - bursar-gateway's reports to the controller, sent off the
 * request's thread (gateway.h).
 *
 * A report (an outcome, a provider error) waits for the controller's
 * commit, which takes a disk flush; sent from the connection's thread it
 * would hold that connection's next request. So the request posts it to
 * a queue and GW_REPORTERS threads, each with its own controller client,
 * send them (several at once, so that one commit takes several). A full
 * queue (GW_QUEUE_MAX) is sent by the request itself: the queue bounds
 * what a crash of the gateway can lose, as the spool does not cover it.
 * At stop the queue is drained before the clients close.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One report, with copies of what its feedback points to. */
typedef struct gw_post {
    struct gw_post *next;
    bursar_decision_t d;
    bursar_feedback_t fb;
    char model[BURSAR_NAME_MAX];
    char error[PROTO_ERROR_MAX];
} gw_post_t;

struct gw_reporters {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    gw_post_t *head, *tail;
    size_t n;
    int stopping;
    size_t n_threads; /* started */
    size_t n_alive;   /* with a client: taking reports */
    pthread_t threads[GW_REPORTERS];
};

/* Sends one report with client b, counting what went wrong. */
static void
gw_send(gw_t *g, bursar_t *b, const bursar_decision_t *d,
        const bursar_feedback_t *fb)
{
    int rc = bursar_feedback(b, d, fb);
    if (rc == BURSAR_OK || rc == BURSAR_SPOOLED)
        return;
    if (rc == BURSAR_EREMOTE && fb->kind == BURSAR_FB_PROVIDER_ERROR)
        return; /* e.g. one per decision already: nothing is lost */
    gw_count(g,
             rc == BURSAR_EREMOTE ? &g->st.feedback_refused
                                  : &g->st.feedback_lost,
             1);
    bursar_log("bursar-gateway: the controller %s a report on %s: %s\n",
               rc == BURSAR_EREMOTE ? "refused" : "did not get (nor the spool)",
               d->model, bursar_last_error(b));
}

static void *
gw_reporter_main(void *arg)
{
    gw_t *g = arg;
    struct gw_reporters *r = g->rep;
    char err[256];
    bursar_t *b = NULL;
    if (bursar_new_err(&b, &g->bo, err, sizeof err) != 0) {
        bursar_log("bursar-gateway: a reporter cannot start: %s\n", err);
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    r->n_alive++;
    for (;;) {
        while (!r->head && !r->stopping)
            pthread_cond_wait(&r->cond, &r->lock);
        gw_post_t *p = r->head;
        if (!p) {
            r->n_alive--;
            break; /* stopping, and drained */
        }
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
        r->n--;
        pthread_mutex_unlock(&r->lock);
        gw_send(g, b, &p->d, &p->fb);
        free(p);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    bursar_destroy(&b);
    return NULL;
}

int
gw_reporters_start(gw_t *g, char *err, size_t cap)
{
    struct gw_reporters *r = bursar_calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    g->rep = r;
    for (size_t i = 0; i < GW_REPORTERS; i++) {
        if (pthread_create(&r->threads[i], NULL, gw_reporter_main, g) != 0) {
            snprintf(err, cap, "cannot start the reporter threads");
            return -1;
        }
        r->n_threads++;
    }
    return 0;
}

void
gw_reporters_stop(gw_t *g)
{
    struct gw_reporters *r = g->rep;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < r->n_threads; i++)
        pthread_join(r->threads[i], NULL);
    for (gw_post_t *p = r->head, *nx; p; p = nx) { /* no reporter took it */
        nx = p->next;
        gw_count(g, &g->st.feedback_lost, 1);
        free(p);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
    g->rep = NULL;
}

void
gw_post(gw_t *g, bursar_t *b, const bursar_decision_t *d,
        const bursar_feedback_t *fb)
{
    struct gw_reporters *r = g->rep;
    if (r) {
        pthread_mutex_lock(&r->lock);
        int room = r->n < GW_QUEUE_MAX && r->n_alive > 0 && !r->stopping;
        pthread_mutex_unlock(&r->lock);
        if (room) {
            gw_post_t *p = bursar_calloc(1, sizeof *p);
            p->d = *d;
            p->fb = *fb;
            if (fb->model) {
                bursar_copy_str(p->model, sizeof p->model, fb->model);
                p->fb.model = p->model;
            }
            if (fb->error) {
                bursar_copy_str(p->error, sizeof p->error, fb->error);
                p->fb.error = p->error;
            }
            pthread_mutex_lock(&r->lock);
            if (r->tail)
                r->tail->next = p;
            else
                r->head = p;
            r->tail = p;
            r->n++;
            pthread_cond_signal(&r->cond);
            pthread_mutex_unlock(&r->lock);
            return;
        }
    }
    gw_send(g, b, d, fb);
}

size_t
gw_reporters_queued(gw_t *g)
{
    struct gw_reporters *r = g->rep;
    if (!r)
        return 0;
    pthread_mutex_lock(&r->lock);
    size_t n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}
