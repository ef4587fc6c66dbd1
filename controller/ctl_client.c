/*
 * ctl_client.c - the controller's clients: who may do what (roles), how
 * fast (a request-rate bucket, a cap on decisions in flight), and whose
 * provider errors cool a model down for whom (docs/security.md).
 *
 * Clients are known by name: the allow-list's for CURVE clients, "" for
 * unauthenticated ones (no CURVE configured: loopback, ipc, or an
 * endpoint declared insecure), which have every role and no rate limit.
 * The table lives in memory; decisions in flight are recounted from the
 * store (pending + dext) at every load.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

static void
ctl_client_rehash(ctl_t *c)
{
    size_t cap = 2 * c->cap_clients, m = cap - 1;
    free(c->client_ht);
    c->client_ht = bursar_calloc(cap, sizeof *c->client_ht);
    for (size_t k = 0; k < c->n_clients; k++) {
        size_t i = ctl_hash(c->clients[k]->name) & m;
        while (c->client_ht[i])
            i = (i + 1) & m;
        c->client_ht[i] = (int)k + 1;
    }
}

ctl_client_t *
ctl_client_get(ctl_t *c, const char *name)
{
    if (c->cap_clients) {
        size_t m = 2 * c->cap_clients - 1;
        for (size_t i = ctl_hash(name) & m; c->client_ht[i]; i = (i + 1) & m) {
            ctl_client_t *cl = c->clients[c->client_ht[i] - 1];
            if (strcmp(cl->name, name) == 0)
                return cl;
        }
    }
    if (c->n_clients == c->cap_clients) {
        c->cap_clients = c->cap_clients ? 2 * c->cap_clients : 16;
        c->clients =
            bursar_realloc(c->clients, c->cap_clients * sizeof *c->clients);
    }
    ctl_client_t *cl = bursar_calloc(1, sizeof *cl);
    cl->idx = (int)c->n_clients;
    c->clients[c->n_clients++] = cl;
    snprintf(cl->name, sizeof cl->name, "%s", name);
    cl->tokens = c->cfg->client_burst;
    cl->t_last = util_mono_time();
    ctl_client_rehash(c);
    return cl;
}

void
ctl_client_settled(ctl_t *c, const char *name)
{
    ctl_client_t *cl = ctl_client_get(c, name);
    if (cl->inflight > 0)
        cl->inflight--;
}

static int
ctl_count_pending(uint64_t id, double t, void *ctx)
{
    (void)t;
    void **a = ctx;
    ctl_t *c = a[0];
    store_dext_t x;
    if (store_get_dext(c->store, a[1], id, &x) == 0) {
        x.client[sizeof x.client - 1] = '\0';
        ctl_client_get(c, x.client)->inflight++;
    }
    return 0;
}

void
ctl_clients_load(ctl_t *c, MDB_txn *txn)
{
    /* the clients' breakers and the record of errors are memory only;
     * they survive a reload unless the models changed (indexes move) */
    int reset = c->clients_models != c->cfg->n_models || !c->fails;
    for (size_t k = 0; k < c->n_clients; k++) {
        if (reset) {
            free(c->clients[k]->health);
            c->clients[k]->health = NULL;
        }
        c->clients[k]->inflight = 0;
    }
    if (reset) {
        free(c->fails);
        c->fails = bursar_calloc(c->cfg->n_models * CTL_FAIL_RING + 1,
                                 sizeof *c->fails);
        for (size_t i = 0; i < c->cfg->n_models * CTL_FAIL_RING; i++)
            c->fails[i].client = -1;
        c->clients_models = c->cfg->n_models;
    }
    void *a[2] = {c, txn};
    store_scan_pending(c->store, txn, ctl_count_pending, a);
}

void
ctl_clients_free(ctl_t *c)
{
    for (size_t k = 0; k < c->n_clients; k++) {
        free(c->clients[k]->health);
        free(c->clients[k]);
    }
    free(c->clients);
    free(c->client_ht);
    free(c->fails);
}

/* The roles an op needs (any one of them). */
static unsigned
ctl_op_roles(proto_op_t op)
{
    switch (op) {
    case PROTO_OP_CHOOSE:
    case PROTO_OP_BOOK: /* a local decision's events: its ledger */
    case PROTO_OP_BATCH:
        return AUTH_AGENT;
    case PROTO_OP_FEEDBACK:
        return AUTH_AGENT | AUTH_FEEDBACK; /* whose decision: ctl_ops.c */
    case PROTO_OP_STATS:
    case PROTO_OP_EXPORT:
    case PROTO_OP_CLOCK:
    case PROTO_OP_ADJUST: /* the admin ops */
    case PROTO_OP_RESET:
    case PROTO_OP_MARK:
    case PROTO_OP_SHOW:
        return AUTH_OPERATOR;
    default:
        return AUTH_ALL; /* ping, models */
    }
}

char *
ctl_client_admit(ctl_t *c, const proto_request_t *rq, const ctl_peer_t *peer)
{
    const char *name = peer && peer->name ? peer->name : "";
    c->peer = ctl_client_get(c, name);
    c->peer_roles = name[0] ? peer->roles : AUTH_ALL;
    unsigned need = ctl_op_roles(rq->op);
    if (!(c->peer_roles & need)) {
        char have[32], want[32];
        return ctl_error(rq, PROTO_E_FORBIDDEN,
                         "client \"%s\" (roles %s) may not use op \"%s\" "
                         "(needs %s)",
                         name, auth_roles_text(c->peer_roles, have),
                         proto_op_name(rq->op), auth_roles_text(need, want));
    }
    double rate = c->cfg->client_rate_per_s;
    if (!name[0] || rate <= 0)
        return NULL;
    ctl_client_t *cl = c->peer;
    double now = util_mono_time();
    cl->tokens += (now - cl->t_last) * rate;
    if (cl->tokens > c->cfg->client_burst)
        cl->tokens = c->cfg->client_burst;
    cl->t_last = now;
    if (cl->tokens < 1.0)
        return ctl_error(rq, PROTO_E_RATE_LIMITED,
                         "client \"%s\" is above %g requests per second "
                         "(limits.client_rate_per_s): retry later",
                         name, rate);
    cl->tokens -= 1.0;
    return NULL;
}

char *
ctl_client_inflight(ctl_t *c, const proto_request_t *rq)
{
    size_t cap = c->cfg->client_inflight;
    if (cap && c->peer->inflight >= cap)
        return ctl_error(rq, PROTO_E_RATE_LIMITED,
                         "client \"%s\" holds %zu decisions without an "
                         "outcome (limits.client_inflight): report outcomes "
                         "or wait for them to expire",
                         c->peer->name, c->peer->inflight);
    return NULL;
}

/* The peer's own breaker of model m, or NULL when it has none. */
health_t *
ctl_client_health(const ctl_client_t *cl, int m)
{
    return cl && cl->health && m >= 0 ? &cl->health[m] : NULL;
}

size_t
ctl_client_mask(ctl_t *c, const ctl_bucket_t *b, double now, size_t allowed,
                allow_counts_t *counts)
{
    if (!c->peer || !c->peer->health)
        return allowed;
    for (size_t i = 0; i < b->pb->n_arms; i++) {
        health_t *h = &c->peer->health[b->pb->model[i]];
        if (c->mask[i] && !health_allows(h, &c->allow.health, now)) {
            c->mask[i] = 0;
            allowed--;
            if (counts)
                counts->cooling++;
        }
    }
    return allowed;
}

/* Distinct clients with a provider error on model m since t0 (a slot per
 * client: ctl_client_failure). */
static size_t
ctl_fail_clients(const ctl_t *c, int m, double t0)
{
    const ctl_fail_t *f = &c->fails[(size_t)m * CTL_FAIL_RING];
    size_t n = 0;
    for (size_t i = 0; i < CTL_FAIL_RING; i++)
        n += f[i].client >= 0 && f[i].t >= t0;
    return n;
}

void
ctl_client_failure(ctl_t *c, ctl_client_t *from, int m, uint64_t id, double now)
{
    unsigned k = c->cfg->health_min_clients;
    /* without CURVE every request is the one unauthenticated client: it is
     * everyone, so its errors are corroborated */
    if (k <= 1 || !from->name[0]) {
        health_failure(&c->health[m], &c->allow.health, id, now);
        c->health_dirty[m] = 1;
        return;
    }
    ctl_client_t *cl = from;
    if (!cl->health)
        cl->health = bursar_calloc(c->cfg->n_models, sizeof *cl->health);
    health_failure(&cl->health[m], &c->allow.health, id, now);
    /* one slot per client (its latest error), else an empty one, else
     * the oldest: one client's errors cannot push out others' */
    ctl_fail_t *f = &c->fails[(size_t)m * CTL_FAIL_RING];
    size_t slot = CTL_FAIL_RING;
    for (size_t i = 0; i < CTL_FAIL_RING && slot == CTL_FAIL_RING; i++)
        if (f[i].client == cl->idx)
            slot = i;
    for (size_t i = 0; i < CTL_FAIL_RING && slot == CTL_FAIL_RING; i++)
        if (f[i].client < 0)
            slot = i;
    if (slot == CTL_FAIL_RING) {
        slot = 0;
        for (size_t i = 1; i < CTL_FAIL_RING; i++)
            if (f[i].t < f[slot].t)
                slot = i;
    }
    f[slot].client = cl->idx;
    f[slot].t = now;
    /* corroborated: errors from k clients within the first cooldown */
    if (ctl_fail_clients(c, m, now - c->cfg->health_cooldown_s) >= k) {
        health_failure(&c->health[m], &c->allow.health, id, now);
        c->health_dirty[m] = 1;
    }
}
