/*
 * gw_core.c - bursar-gateway's state: the controller clients' options,
 * the kits requests borrow, the models (gateway.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "agents/autil.h"
#include "agents/wcfg.h"

void
gw_count(gw_t *g, unsigned long *field, unsigned long n)
{
    pthread_mutex_lock(&g->lock);
    *field += n;
    pthread_mutex_unlock(&g->lock);
}

/* A CURVE key spec: the environment variable (when not empty), else the
 * configuration's. */
static const char *
gw_key_spec(const char *env, const char *cfg)
{
    const char *e = getenv(env);
    return e && *e ? e : cfg;
}

static void
gw_client_opts(gw_t *g)
{
    const gw_cfg_t *c = &g->cfg;
    bursar_opts_t *bo = &g->bo;
    bursar_opts_init(bo);
    bo->endpoint = c->controller;
    bo->spool_path = c->spool;
    bo->fallback_model = c->fallback_model;
    bo->timeout_ms = c->ctl_timeout_ms;
    bo->attempts = c->ctl_attempts;
    bo->backoff_max_ms = c->ctl_backoff_max_ms;
    if (bo->backoff_ms > bo->backoff_max_ms)
        bo->backoff_ms = bo->backoff_max_ms;
    bo->zmq_context = g->zmq;
    bo->secret_key = gw_key_spec("BURSAR_KEY", c->secret_key);
    bo->server_key = gw_key_spec("BURSAR_SERVER_KEY", c->server_key);
}

/* A new kit: a client with the buckets' fallbacks, and a pool. */
static gw_kit_t *
gw_kit_new(gw_t *g, char *err, size_t cap)
{
    gw_kit_t *k = bursar_calloc(1, sizeof *k);
    if (bursar_new_err(&k->client, &g->bo, err, cap) != 0 ||
        prov_pool_new(&k->pool, &g->cfg.prov) != 0) {
        if (!err[0])
            snprintf(err, cap, "cannot start an upstream call pool");
        bursar_destroy(&k->client);
        free(k);
        return NULL;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, g->cfg.fallbacks)
        bursar_set_fallback(k->client, m->string, m->valuestring);
    return k;
}

gw_kit_t *
gw_kit_get(gw_t *g, char *err, size_t cap)
{
    err[0] = '\0';
    pthread_mutex_lock(&g->lock);
    gw_kit_t *k = g->free_kits;
    if (k)
        g->free_kits = k->next;
    pthread_mutex_unlock(&g->lock);
    if (k)
        return k;
    k = gw_kit_new(g, err, cap);
    if (k)
        gw_count(g, (unsigned long *)&g->n_kits, 1);
    return k;
}

void
gw_kit_put(gw_t *g, gw_kit_t *k)
{
    if (!k)
        return;
    prov_pool_watch(k->pool, -1);
    pthread_mutex_lock(&g->lock);
    k->next = g->free_kits;
    g->free_kits = k;
    pthread_mutex_unlock(&g->lock);
}

static void
gw_kit_destroy(gw_kit_t *k)
{
    bursar_destroy(&k->client);
    prov_pool_destroy(&k->pool);
    free(k);
}

int
gw_model(gw_t *g, const char *name, bursar_model_t *m)
{
    pthread_mutex_lock(&g->lock);
    const bursar_model_t *f = wcfg_find(g->models, g->n_models, name);
    if (f)
        *m = *f;
    pthread_mutex_unlock(&g->lock);
    return f != NULL;
}

static void
gw_note_default(void *ud, const bursar_model_t *m)
{
    const gw_t *g = ud;
    if (!g->quiet)
        fprintf(stderr,
                "bursar-gateway: model %s is not in the gateway's models "
                "table: calling %s with $%s\n",
                m->name, m->base_url, m->api_key_env);
}

/* The models: the controller's merged with the own table (its prices are
 * the budget's), or the table alone when it is away. */
static void
gw_models_load(gw_t *g, gw_kit_t *k)
{
    bursar_model_t *ctl = NULL;
    size_t n_ctl = 0;
    int rc = bursar_models(k->client, &ctl, &n_ctl);
    if (rc != BURSAR_OK && !g->quiet)
        fprintf(stderr,
                "bursar-gateway: controller %s: %s; models from the "
                "configuration until it answers\n",
                g->cfg.controller, bursar_strerror(rc));
    g->models = wcfg_merge(g->cfg.own, g->cfg.n_own, ctl, n_ctl, &g->n_models,
                           gw_note_default, g);
    g->have_ctl_models = rc == BURSAR_OK;
    bursar_models_free(&ctl);
}

int
gw_open(gw_t *g, char *err, size_t cap)
{
    pthread_mutex_init(&g->lock, NULL);
    g->zmq = zmq_ctx_new(); /* one I/O thread for every kit's client */
    if (!g->zmq) {
        snprintf(err, cap, "cannot create a ZeroMQ context");
        return -1;
    }
    gw_client_opts(g);
    if (prov_share_new(&g->share) != 0) {
        snprintf(err, cap, "cannot initialise libcurl");
        return -1;
    }
    g->cfg.prov.share = g->share;
    gw_kit_t *k = gw_kit_get(g, err, cap);
    if (!k)
        return -1;
    gw_models_load(g, k);
    gw_kit_put(g, k);
    return 0;
}

void
gw_close(gw_t *g)
{
    for (gw_kit_t *k = g->free_kits, *nx; k; k = nx) {
        nx = k->next;
        gw_kit_destroy(k);
    }
    g->free_kits = NULL;
    free(g->models);
    g->models = NULL;
    prov_share_destroy(&g->share);
    if (g->zmq)
        zmq_ctx_term(g->zmq);
    g->zmq = NULL;
    pthread_mutex_destroy(&g->lock);
}
