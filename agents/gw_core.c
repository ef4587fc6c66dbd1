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
        bursar_log("bursar-gateway: model %s is not in the gateway's models "
                   "table: calling %s with $%s\n",
                   m->name, m->base_url, m->api_key_env);
}

/* A bucket the configuration names (at path) that the controller does
 * not serve: a warning (it may create buckets on demand). */
static void
gw_warn_bucket(const gw_t *g, gw_kit_t *k, const char *path, const char *b)
{
    if (b && strcmp(b, "*") != 0 &&
        bursar_bucket_allows(k->client, b, "") == -1)
        bursar_log("bursar-gateway: %s: %s: the controller serves no bucket "
                   "\"%s\" (requests routed there get 404)\n",
                   g->cfg.path, path, b);
}

/* The buckets of routing, validators and fallbacks against the
 * controller's. */
static void
gw_warn_buckets(const gw_t *g, gw_kit_t *k)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(g->cfg.root, "routing");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "default");
    char path[96];
    gw_warn_bucket(g, k,
                   r ? "routing.default"
                     : "routing (absent: bucket "
                       "\"default\")",
                   cJSON_IsString(d) ? d->valuestring : "default");
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "rules"))
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "bucket");
        snprintf(path, sizeof path, "routing.rules[%d].bucket", i++);
        gw_warn_bucket(g, k, path, cJSON_IsString(b) ? b->valuestring : NULL);
    }
    const char *parts[] = {"validators", "fallbacks"};
    for (size_t p = 0; p < 2; p++)
        cJSON_ArrayForEach(
            it, cJSON_GetObjectItemCaseSensitive(g->cfg.root, parts[p]))
        {
            snprintf(path, sizeof path, "%s.%.60s", parts[p], it->string);
            gw_warn_bucket(g, k, path, it->string);
        }
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
        bursar_log("bursar-gateway: controller %s: %s; models from the "
                   "configuration until it answers\n",
                   g->cfg.controller, bursar_strerror(rc));
    g->models = wcfg_merge(g->cfg.own, g->cfg.n_own, ctl, n_ctl, &g->n_models,
                           gw_note_default, g);
    g->have_ctl_models = rc == BURSAR_OK;
    g->ctl_down = rc != BURSAR_OK;
    bursar_models_free(&ctl);
    if (rc == BURSAR_OK) {
        gw_buckets_load(g, k);
        gw_warn_buckets(g, k);
    }
}

void
gw_buckets_load(gw_t *g, gw_kit_t *k)
{
    char *reply = NULL;
    if (bursar_request(k->client, "{\"op\":\"models\"}", &reply) != BURSAR_OK) {
        free(reply);
        return;
    }
    cJSON *r = cJSON_Parse(reply);
    free(reply);
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(r, "buckets"), *b;
    size_t n = 0, cap = (size_t)cJSON_GetArraySize(bs);
    char(*names)[BURSAR_NAME_MAX] = bursar_calloc(cap + 1, sizeof *names);
    cJSON_ArrayForEach(b, bs)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(b, "name");
        if (cJSON_IsString(nm))
            bursar_copy_str(names[n++], BURSAR_NAME_MAX, nm->valuestring);
    }
    cJSON_Delete(r);
    pthread_mutex_lock(&g->lock);
    char(*old)[BURSAR_NAME_MAX] = g->buckets;
    g->buckets = names;
    g->n_buckets = n;
    g->have_buckets = 1;
    pthread_mutex_unlock(&g->lock);
    free(old);
}

int
gw_bucket_known(gw_t *g, const char *bucket)
{
    pthread_mutex_lock(&g->lock);
    int known = g->have_buckets ? 0 : -1;
    for (size_t i = 0; i < g->n_buckets && known == 0; i++)
        known = strcmp(g->buckets[i], bucket) == 0;
    pthread_mutex_unlock(&g->lock);
    return known;
}

void
gw_ctl_seen(gw_t *g, int up)
{
    pthread_mutex_lock(&g->lock);
    int was = g->ctl_down;
    g->ctl_down = !up;
    pthread_mutex_unlock(&g->lock);
    if (was != !up)
        bursar_log(up ? "bursar-gateway: the controller answers again\n"
                      : "bursar-gateway: the controller %s does not answer: "
                        "local decisions, outcomes spooled\n",
                   g->cfg.controller);
}

void
gw_models_refresh(gw_t *g, gw_kit_t *k)
{
    pthread_mutex_lock(&g->lock);
    int have = g->have_ctl_models;
    pthread_mutex_unlock(&g->lock);
    bursar_model_t *ctl = NULL;
    size_t n_ctl = 0, n = 0;
    if (have || bursar_models(k->client, &ctl, &n_ctl) != BURSAR_OK)
        return;
    bursar_model_t *ms = wcfg_merge(g->cfg.own, g->cfg.n_own, ctl, n_ctl, &n,
                                    gw_note_default, g);
    bursar_models_free(&ctl);
    pthread_mutex_lock(&g->lock);
    if (g->have_ctl_models) { /* another thread was first */
        pthread_mutex_unlock(&g->lock);
        free(ms);
        return;
    }
    bursar_model_t *old = g->models;
    g->models = ms;
    g->n_models = n;
    g->have_ctl_models = 1;
    pthread_mutex_unlock(&g->lock);
    free(old);
    for (size_t i = 0; i < n; i++)
        gw_metrics_model(g, ms[i].name);
    gw_buckets_load(g, k);
    if (!g->quiet)
        bursar_log("bursar-gateway: the controller answered: %zu models\n", n);
}

int
gw_check_fallbacks(gw_t *g, char *err, size_t cap)
{
    bursar_model_t m;
    const char *fm = g->cfg.fallback_model;
    if (fm && !gw_model(g, fm, &m)) {
        snprintf(err, cap,
                 "fallback_model: model \"%s\" is neither one of the "
                 "controller's models nor in the gateway's models",
                 fm);
        return -1;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, g->cfg.fallbacks)
    {
        if (gw_model(g, f->valuestring, &m))
            continue;
        snprintf(err, cap,
                 "fallbacks.%s: model \"%s\" is neither one of the "
                 "controller's models nor in the gateway's models",
                 f->string, f->valuestring);
        return -1;
    }
    return 0;
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
    gw_metrics_new(g);
    for (size_t i = 0; i < g->n_models; i++) {
        gw_metrics_model(g, g->models[i].name);
        const char *env = g->models[i].api_key_env;
        const char *v = *env ? getenv(env) : "set";
        if (!v || !*v)
            bursar_log("bursar-gateway: model %s: $%s is not set: its calls "
                       "fail (500 when no other model serves)\n",
                       g->models[i].name, env);
    }
    return gw_check_fallbacks(g, err, cap);
}

void
gw_close(gw_t *g)
{
    gw_http_stop(g);    /* no request may run on what follows */
    gw_metrics_stop(g); /* nor a scrape */
    gw_reporters_stop(g);
    gw_metrics_destroy(g);
    for (gw_kit_t *k = g->free_kits, *nx; k; k = nx) {
        nx = k->next;
        gw_kit_destroy(k);
    }
    g->free_kits = NULL;
    free(g->models);
    g->models = NULL;
    free(g->buckets);
    g->buckets = NULL;
    prov_share_destroy(&g->share);
    if (g->zmq)
        zmq_ctx_term(g->zmq);
    g->zmq = NULL;
    pthread_mutex_destroy(&g->lock);
}
