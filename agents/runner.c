/*
 * runner.c - the worker's task engine (runner.h).
 *
 * Tasks are small state machines. Controller round trips (choose,
 * feedback) are synchronous: they take a fraction of a millisecond on
 * loopback, against seconds for a provider call, so only the provider
 * calls run concurrently (curl multi, provider.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/autil.h"
#include "agents/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/validate.h"

#define RUNNER_MAX_TRIED 32 /* models tried per task */
#define RUNNER_MAX_STEPS 32 /* steps per task, a guard against loops */
_Static_assert(RUNNER_MAX_LEFT_OUT + RUNNER_MAX_TRIED <= PROTO_MAX_EXCLUDE,
               "a choose excludes the left out and the tried");

/* T_CHOOSE: ask for a decision; T_NEXT: try the decision's next
 * candidate (its model, then its fallbacks); T_CALLING: in the pool. */
typedef enum { T_QUEUED, T_CHOOSE, T_NEXT, T_CALLING, T_DONE } tstate_t;

typedef struct task {
    struct task *next;
    struct runner *runner;
    tstate_t state;
    cJSON *src;
    size_t idx;
    char bucket[BURSAR_NAME_MAX];
    cJSON *messages;
    validator_t *val;
    char tried[RUNNER_MAX_TRIED][BURSAR_NAME_MAX];
    size_t n_tried;
    int n_steps;
    int escalations;
    int escalating; /* the next choice is an escalation */
    bursar_decision_t d;
    size_t cand; /* next candidate of d: 0 = d.model, i = fallbacks[i-1] */
    char cur[BURSAR_NAME_MAX]; /* the candidate being called */
    int perr_sent;             /* provider_error reported for d */
    bursar_decision_t last_remote;
    int has_remote;
    cJSON *steps;
    long tin, tout;
    double cost;
    double t0;
    double sim_latency; /* simulated: sum of step latencies */
    int valid;
    char *output;
    int served; /* output/model/decision below are set */
    bursar_decision_t served_d;
    char served_model[BURSAR_NAME_MAX]; /* may be a fallback of served_d */
    char error[320];
} task_t;

struct runner {
    bursar_t *client;
    const bursar_model_t *models;
    size_t n_models;
    runner_opts_t o;
    prov_pool_t *pool;
    task_t *queue_head, *queue_tail;
    size_t active;
    size_t queued;
    runner_stats_t st;
    /* models left out of every choose: from the start (o.exclude), or
     * since their call failed by the worker's setup */
    char out[RUNNER_MAX_LEFT_OUT][BURSAR_NAME_MAX];
    size_t n_out;
};

void
runner_opts_init(runner_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_escalations = 2;
    o->concurrency = 8;
    prov_opts_init(&o->prov);
}

int
runner_new(runner_t **out, bursar_t *client, const bursar_model_t *models,
           size_t n_models, const runner_opts_t *o)
{
    *out = NULL;
    runner_t *r = bursar_calloc(1, sizeof(*r));
    r->client = client;
    r->models = models;
    r->n_models = n_models;
    r->o = *o;
    for (size_t i = 0; i < o->n_exclude && r->n_out < RUNNER_MAX_LEFT_OUT; i++)
        bursar_copy_str(r->out[r->n_out++], BURSAR_NAME_MAX, o->exclude[i]);
    r->o.exclude = NULL; /* copied */
    r->o.n_exclude = 0;
    if (r->o.concurrency == 0)
        r->o.concurrency = 1;
    r->o.prov.max_inflight = r->o.concurrency;
    if (!r->o.sim && prov_pool_new(&r->pool, &r->o.prov) != 0) {
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static void
task_free(task_t *t)
{
    cJSON_Delete(t->src);
    cJSON_Delete(t->messages);
    cJSON_Delete(t->steps);
    validator_destroy(&t->val);
    free(t->output);
    free(t);
}

void
runner_destroy(runner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    runner_t *r = *self_p;
    /* In-flight tasks are owned by the pool's callbacks' user data; a
     * runner is destroyed after runner_run has drained it. */
    prov_pool_destroy(&r->pool);
    for (task_t *t = r->queue_head, *nx; t; t = nx) {
        nx = t->next;
        task_free(t);
    }
    free(r);
    *self_p = NULL;
}

void
runner_stats(const runner_t *self, runner_stats_t *st)
{
    *st = self->st;
}

void
runner_add(runner_t *self, cJSON *task, size_t idx)
{
    task_t *t = bursar_calloc(1, sizeof(*t));
    t->runner = self;
    t->src = task;
    t->idx = idx;
    t->state = T_QUEUED;
    t->steps = cJSON_CreateArray();
    if (self->queue_tail)
        self->queue_tail->next = t;
    else
        self->queue_head = t;
    self->queue_tail = t;
    self->queued++;
    self->st.tasks++;
}

static const bursar_model_t *
model_find(const runner_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i].name, name) == 0)
            return &r->models[i];
    return NULL;
}

static int
was_tried(const task_t *t, const char *m)
{
    for (size_t i = 0; i < t->n_tried; i++)
        if (strcmp(t->tried[i], m) == 0)
            return 1;
    return 0;
}

static int
left_out(const runner_t *r, const char *m)
{
    for (size_t i = 0; i < r->n_out; i++)
        if (strcmp(r->out[i], m) == 0)
            return 1;
    return 0;
}

/* Whether m is no candidate for t: tried, or left out of the run. */
static int
task_skip(const runner_t *r, const task_t *t, const char *m)
{
    return was_tried(t, m) || left_out(r, m);
}

static void
add_tried(task_t *t, const char *m)
{
    if (!was_tried(t, m) && t->n_tried < RUNNER_MAX_TRIED)
        bursar_copy_str(t->tried[t->n_tried++], BURSAR_NAME_MAX, m);
}

/* ------------------------------------------------------------- results */

static void
task_finish(runner_t *r, task_t *t)
{
    t->state = T_DONE;
    cJSON *res = cJSON_CreateObject();
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(t->src, "id");
    cJSON_AddItemToObject(res, "id",
                          id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON_AddStringToObject(res, "bucket", t->bucket);
    if (t->served) {
        cJSON_AddStringToObject(res, "model", t->served_model);
        if (t->served_d.id[0])
            cJSON_AddStringToObject(res, "decision_id", t->served_d.id);
        else
            cJSON_AddNullToObject(res, "decision_id");
        cJSON_AddBoolToObject(res, "local", t->served_d.local);
        if (t->served_d.local)
            cJSON_AddStringToObject(res, "local_id", t->served_d.local_id);
        cJSON_AddStringToObject(res, "output", t->output ? t->output : "");
    } else {
        cJSON_AddNullToObject(res, "model");
        cJSON_AddNullToObject(res, "decision_id");
        cJSON_AddBoolToObject(res, "local", 0);
        cJSON_AddNullToObject(res, "output");
    }
    cJSON_AddBoolToObject(res, "valid", t->served && t->valid);
    cJSON_AddNumberToObject(res, "escalations", t->escalations);
    cJSON_AddNumberToObject(res, "tokens_in", (double)t->tin);
    cJSON_AddNumberToObject(res, "tokens_out", (double)t->tout);
    cJSON_AddNumberToObject(res, "cost_usd", t->cost);
    double lat =
        r->o.sim ? t->sim_latency : (autil_now_mono() - t->t0) * 1000.0;
    cJSON_AddNumberToObject(res, "latency_ms", lat);
    if (t->error[0])
        cJSON_AddStringToObject(res, "error", t->error);
    else
        cJSON_AddNullToObject(res, "error");
    cJSON_AddItemToObject(res, "steps", t->steps);
    t->steps = NULL;

    r->st.done++;
    if (t->served && t->valid)
        r->st.valid++;
    if (t->error[0])
        r->st.errors++;
    if (t->error[0] && !t->served)
        r->st.unanswered++;
    r->st.escalations += (size_t)t->escalations;
    r->st.cost_usd += t->cost;
    r->st.tokens_in += t->tin;
    r->st.tokens_out += t->tout;
    r->active--;
    if (r->o.emit)
        r->o.emit(r->o.emit_ud, res);
    else
        cJSON_Delete(res);
}

static void
task_fail(runner_t *r, task_t *t, const char *msg)
{
    if (!t->error[0])
        bursar_copy_str(t->error, sizeof(t->error), msg);
    task_finish(r, t);
}

static const char *
fb_status(int rc)
{
    switch (rc) {
    case BURSAR_OK:
        return "ok";
    case BURSAR_SPOOLED:
        return "spooled";
    case BURSAR_EREMOTE:
        return "refused";
    default:
        return "lost";
    }
}

static cJSON *
step_new(const task_t *t, const char *model)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "model", model);
    if (t->d.id[0])
        cJSON_AddStringToObject(s, "decision_id", t->d.id);
    else
        cJSON_AddNullToObject(s, "decision_id");
    cJSON_AddBoolToObject(s, "local", t->d.local);
    if (t->d.local)
        cJSON_AddStringToObject(s, "local_id", t->d.local_id);
    cJSON_AddNumberToObject(s, "propensity", t->d.propensity);
    return s;
}

/* A report on the task's decision: its fate in the step; an event neither
 * delivered nor spooled (nor refused, unless it was a local decision's
 * booking) is counted lost. */
static void
task_report(runner_t *r, task_t *t, const bursar_feedback_t *fb, cJSON *s)
{
    int rc = bursar_feedback(r->client, &t->d, fb);
    cJSON_AddStringToObject(s, "feedback", fb_status(rc));
    /* a booking refused (an old controller without book, say) is spend
     * that never reached the ledger: lost, not a verdict on the event */
    if (rc != BURSAR_OK && rc != BURSAR_SPOOLED &&
        (rc != BURSAR_EREMOTE || t->d.local)) {
        r->st.feedback_lost++;
        cJSON_AddStringToObject(s, "feedback_error",
                                bursar_last_error(r->client));
    }
}

int
runner_setup_failure(const prov_result_t *r, int *leave_out)
{
    static const char *const kinds[] = {"no_key", "refused_url",
                                        "unknown_model"};
    long st = r->http_status;
    *leave_out = st == 401 || st == 403;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(r->error_kind, kinds[i]) == 0)
            *leave_out = 1;
    if (*leave_out)
        return 1;
    /* 408 and 429 are the provider's state, any other 4xx the request's */
    return strcmp(r->error_kind, "http_error") == 0 && st >= 400 && st < 500 &&
           st != 408 && st != 429;
}

/* Leaves model m out of the rest of the run (setup failure res). */
static void
runner_leave_out(runner_t *r, const bursar_model_t *m, const prov_result_t *res)
{
    if (left_out(r, m->name) || r->n_out >= RUNNER_MAX_LEFT_OUT)
        return;
    bursar_copy_str(r->out[r->n_out++], BURSAR_NAME_MAX, m->name);
    r->st.left_out++;
    if (r->o.note)
        r->o.note(r->o.note_ud, m, res);
}

/* A failed call of the current candidate (step s, not yet in the
 * steps): reported as provider_error when it is the provider's failure
 * and the decision's own model (once per decision); the worker's setup
 * failing or the request refused is never reported (runner.h). Then
 * the next candidate. */
static void
task_on_failure(runner_t *r, task_t *t, const bursar_model_t *m,
                const prov_result_t *res, cJSON *s)
{
    int leave = 0, setup = runner_setup_failure(res, &leave);
    if (setup)
        r->st.setup_errors++;
    else
        r->st.provider_errors++;
    cJSON_AddStringToObject(s, "outcome",
                            !setup  ? "provider_error"
                            : leave ? "setup_error"
                                    : "request_error");
    cJSON_AddStringToObject(s, "error", res->error);
    if (res->http_status)
        cJSON_AddNumberToObject(s, "http_status", (double)res->http_status);
    /* The protocol takes one provider_error per decision, about the
     * decision's own model (its health); a fallback failing under the
     * same decision is recorded in the result only. */
    if (!setup && strcmp(m->name, t->d.model) == 0 && !t->perr_sent) {
        bursar_feedback_t fb;
        bursar_feedback_init(&fb, BURSAR_FB_PROVIDER_ERROR);
        fb.error = res->error;
        fb.latency_ms = res->latency_ms;
        task_report(r, t, &fb, s);
        t->perr_sent = 1;
    } else {
        cJSON_AddStringToObject(s, "feedback", "not_reported");
    }
    if (leave) {
        cJSON_AddBoolToObject(s, "left_out", 1);
        runner_leave_out(r, m, res);
    }
    cJSON_AddItemToArray(t->steps, s);
    add_tried(t, m->name);
    bursar_copy_str(t->error, sizeof(t->error), res->error);
    t->state = T_NEXT; /* fall back: not an escalation */
}

/* A provider (or scenario) answer for the current decision: validate,
 * report, decide what is next. */
static void
task_on_result(runner_t *r, task_t *t, const bursar_model_t *m,
               prov_result_t *res, int sim_valid)
{
    cJSON *s = step_new(t, m->name);
    cJSON_AddNumberToObject(s, "attempts", res->attempts);
    cJSON_AddNumberToObject(s, "latency_ms", res->latency_ms);
    if (r->o.sim)
        t->sim_latency += res->latency_ms;
    if (!res->ok) {
        task_on_failure(r, t, m, res, s);
        return;
    }
    bursar_feedback_t fb;
    char why[256] = "";
    int valid = r->o.sim
                    ? sim_valid
                    : validator_check(t->val, res->output, why, sizeof(why));
    t->tin += res->tokens_in;
    t->tout += res->tokens_out;
    t->cost += res->cost_usd;
    cJSON_AddStringToObject(s, "outcome", valid ? "valid" : "invalid");
    if (!valid && why[0])
        cJSON_AddStringToObject(s, "why", why);
    cJSON_AddNumberToObject(s, "tokens_in", (double)res->tokens_in);
    cJSON_AddNumberToObject(s, "tokens_out", (double)res->tokens_out);
    cJSON_AddNumberToObject(s, "cost_usd", res->cost_usd);
    if (res->usage_estimated)
        cJSON_AddBoolToObject(s, "usage_estimated", 1);
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = valid;
    fb.cost_usd = res->cost_usd;
    fb.tokens_in = res->tokens_in;
    fb.tokens_out = res->tokens_out;
    fb.latency_ms = res->latency_ms;
    /* A fallback that served: its arm gets the reward, cost and latency. */
    fb.model = strcmp(m->name, t->d.model) != 0 ? m->name : NULL;
    task_report(r, t, &fb, s);
    cJSON_AddItemToArray(t->steps, s);

    /* The latest answer is the one reported, valid or not. */
    free(t->output);
    t->output = res->output;
    res->output = NULL;
    t->served = 1;
    t->served_d = t->d;
    bursar_copy_str(t->served_model, sizeof(t->served_model), m->name);
    t->valid = valid;
    t->error[0] = '\0';
    if (valid || t->escalations >= r->o.max_escalations) {
        task_finish(r, t);
        return;
    }
    t->escalating = 1; /* counted once another model is chosen */
    add_tried(t, m->name);
    t->state = T_CHOOSE;
}

static void task_advance(runner_t *r, task_t *t);

static void
pool_done(void *ud, const bursar_model_t *m, prov_result_t *res)
{
    task_t *t = ud;
    runner_t *r = t->runner;
    task_on_result(r, t, m, res, 0);
    /* Callbacks may submit new calls (provider.h): fall back or escalate
     * right away. */
    task_advance(r, t);
    if (t->state == T_DONE)
        task_free(t);
}

/* ------------------------------------------------------------- choosing */

/* Picks the next decision into t->d. Returns 0, or -1 with t->error set. */
static int
task_choose(runner_t *r, task_t *t)
{
    const char *ex[RUNNER_MAX_LEFT_OUT + RUNNER_MAX_TRIED];
    size_t n_ex = 0;
    for (size_t i = 0; i < r->n_out; i++)
        ex[n_ex++] = r->out[i];
    for (size_t i = 0; i < t->n_tried && n_ex < PROTO_MAX_EXCLUDE; i++)
        if (!left_out(r, t->tried[i]))
            ex[n_ex++] = t->tried[i];
    /* An escalation names the decision whose answer failed validation, so
     * that the controller links the two (the cascade's steps, judged as
     * one request by off-policy evaluation: docs/ope.md). */
    int rc = t->escalating
                 ? bursar_escalate(r->client, &t->d, ex, n_ex, &t->d)
                 : bursar_choose(r->client, t->bucket, ex, n_ex, &t->d);
    /* the link refused (the controller's token key replaced, say): the
     * escalation still goes on, as a plain choose */
    if (rc == BURSAR_EREMOTE && t->escalating &&
        strstr(bursar_last_error(r->client), "\"escalates\""))
        rc = bursar_choose(r->client, t->bucket, ex, n_ex, &t->d);
    if (rc == BURSAR_OK) {
        t->last_remote = t->d;
        t->has_remote = 1;
        return 0;
    }
    if (rc == BURSAR_LOCAL || (rc == BURSAR_EUNREACHABLE && t->has_remote)) {
        /* Controller away. The candidates: the client's local decision
         * (the bucket's fallback and models, if it answered BURSAR_LOCAL),
         * then the last controller decision's model and fallbacks (the
         * same bucket's), untried, in order. */
        const bursar_decision_t *lr = &t->last_remote;
        const char *cands[2 * BURSAR_MAX_FALLBACKS + 2];
        size_t n = 0;
        if (rc == BURSAR_LOCAL) {
            cands[n++] = t->d.model;
            for (size_t i = 0; i < t->d.n_fallbacks; i++)
                cands[n++] = t->d.fallbacks[i];
        }
        if (t->has_remote) {
            cands[n++] = lr->model;
            for (size_t i = 0; i < lr->n_fallbacks; i++)
                cands[n++] = lr->fallbacks[i];
        }
        bursar_decision_t d;
        if (rc == BURSAR_LOCAL) /* its local id and time */
            d = t->d;
        else
            bursar_local_init(&d, t->bucket);
        d.model[0] = '\0';
        d.n_fallbacks = 0;
        for (size_t i = 0; i < n; i++) {
            int dup =
                task_skip(r, t, cands[i]) || strcmp(cands[i], d.model) == 0;
            for (size_t k = 0; !dup && k < d.n_fallbacks; k++)
                dup = strcmp(cands[i], d.fallbacks[k]) == 0;
            if (dup)
                continue;
            if (!d.model[0])
                bursar_copy_str(d.model, sizeof(d.model), cands[i]);
            else if (d.n_fallbacks < BURSAR_MAX_FALLBACKS)
                bursar_copy_str(d.fallbacks[d.n_fallbacks++], BURSAR_NAME_MAX,
                                cands[i]);
        }
        if (d.model[0]) {
            t->d = d;
            r->st.local_decisions++;
            return 0;
        }
        rc = BURSAR_EUNREACHABLE;
    }
    char msg[300];
    if (rc == BURSAR_EREMOTE || rc == BURSAR_EPROTO)
        snprintf(msg, sizeof(msg), "choose: %s", bursar_last_error(r->client));
    else
        snprintf(msg, sizeof(msg), "choose: %s%s", bursar_strerror(rc),
                 t->n_tried ? " (every fallback tried)" : "");
    /* Keep the provider error that led here, if any, in front. */
    if (t->error[0]) {
        char both[320];
        snprintf(both, sizeof(both), "%.150s; %.160s", t->error, msg);
        bursar_copy_str(t->error, sizeof(t->error), both);
    } else {
        bursar_copy_str(t->error, sizeof(t->error), msg);
    }
    return -1;
}

static void
sim_call(runner_t *r, task_t *t, const bursar_model_t *m)
{
    simprov_draw_t dr;
    simprov_call(r->o.sim, m->name, t->bucket, t->idx, &dr);
    prov_result_t res;
    memset(&res, 0, sizeof(res));
    res.attempts = 1;
    res.latency_ms = dr.latency_ms;
    if (!dr.known) {
        bursar_copy_str(res.error_kind, sizeof(res.error_kind), "http_error");
        snprintf(res.error, sizeof(res.error),
                 "model %s is not in the scenario", m->name);
    } else if (dr.outage) {
        res.http_status = 503;
        bursar_copy_str(res.error_kind, sizeof(res.error_kind), "server_error");
        snprintf(res.error, sizeof(res.error), "http 503: simulated outage");
    } else {
        res.ok = 1;
        res.tokens_in = dr.tokens_in;
        res.tokens_out = dr.tokens_out;
        res.cost_usd = dr.cost_usd >= 0
                           ? dr.cost_usd
                           : prov_cost(m, dr.tokens_in, dr.tokens_out);
        res.output = bursar_strdup(dr.success ? "simulated answer (valid)"
                                              : "simulated answer (invalid)");
    }
    task_on_result(r, t, m, &res, dr.success);
    prov_result_clear(&res);
}

/* Runs a task until it waits for a provider or is done. */
static void
task_advance(runner_t *r, task_t *t)
{
    while (t->state == T_CHOOSE || t->state == T_NEXT) {
        if (++t->n_steps > RUNNER_MAX_STEPS) {
            task_fail(r, t, "too many steps");
            return;
        }
        if (t->state == T_CHOOSE) {
            if (task_choose(r, t) != 0) {
                /* No model left to escalate to: the last answer stands,
                 * invalid, and that is not an error of the run. */
                if (t->escalating)
                    t->error[0] = '\0';
                task_finish(r, t);
                return;
            }
            if (t->escalating) {
                t->escalations++;
                t->escalating = 0;
            }
            t->cand = 0;
            t->perr_sent = 0;
            t->state = T_NEXT;
        }
        /* The decision's next untried candidate. */
        const char *c = NULL;
        while (!c && t->cand <= t->d.n_fallbacks) {
            const char *x =
                t->cand == 0 ? t->d.model : t->d.fallbacks[t->cand - 1];
            t->cand++;
            if (!task_skip(r, t, x))
                c = x;
        }
        if (!c) {
            char msg[320];
            snprintf(msg, sizeof(msg), "%.200s%sno fallback left", t->error,
                     t->error[0] ? "; " : "");
            bursar_copy_str(t->error, sizeof(t->error), msg);
            task_finish(r, t);
            return;
        }
        bursar_copy_str(t->cur, sizeof(t->cur), c);
        const bursar_model_t *m = model_find(r, t->cur);
        bursar_model_t unknown;
        if (!m && r->o.sim) {
            memset(&unknown, 0, sizeof(unknown));
            bursar_copy_str(unknown.name, sizeof(unknown.name), t->cur);
            m = &unknown; /* the scenario may know it; prices then 0 */
        }
        if (!m) {
            prov_result_t res;
            memset(&res, 0, sizeof(res));
            bursar_copy_str(res.error_kind, sizeof(res.error_kind),
                            "unknown_model");
            snprintf(res.error, sizeof(res.error),
                     "no provider details for model %s", t->cur);
            memset(&unknown, 0, sizeof(unknown));
            bursar_copy_str(unknown.name, sizeof(unknown.name), t->cur);
            task_on_result(r, t, &unknown, &res, 0);
            continue;
        }
        if (r->o.sim) {
            sim_call(r, t, m);
            continue;
        }
        t->state = T_CALLING;
        if (prov_pool_submit(r->pool, m, t->messages, pool_done, t) != 0) {
            task_fail(r, t, "provider call could not be submitted");
            return;
        }
    }
}

/* Prepares a queued task: bucket, messages, validator. */
static void
task_start(runner_t *r, task_t *t)
{
    r->active++;
    t->t0 = autil_now_mono();
    t->state = T_CHOOSE;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(t->src, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(t->src, "prompt");
    if (cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) > 0) {
        t->messages = cJSON_Duplicate(msgs, 1);
    } else if (cJSON_IsString(prompt)) {
        t->messages = cJSON_CreateArray();
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", prompt->valuestring);
        cJSON_AddItemToArray(t->messages, m);
    } else {
        bursar_copy_str(t->bucket, sizeof(t->bucket), "");
        task_fail(r, t,
                  "task: \"messages\" (a non-empty array) or "
                  "\"prompt\" (a string) is required");
        return;
    }
    /* The prompt text for routing rules: every message's content. */
    size_t len = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, t->messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c))
            len += strlen(c->valuestring) + 1;
    }
    char *text = bursar_calloc(len + 1, 1);
    cJSON_ArrayForEach(m, t->messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c)) {
            strcat(text, c->valuestring);
            strcat(text, "\n");
        }
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(t->src, "bucket");
    const char *bucket = "default";
    if (r->o.route)
        bucket = route_bucket(r->o.route,
                              cJSON_IsString(b) ? b->valuestring : NULL, text);
    else if (cJSON_IsString(b) && *b->valuestring)
        bucket = b->valuestring;
    bursar_copy_str(t->bucket, sizeof(t->bucket), bucket);
    free(text);

    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(t->src, "validate");
    if (!spec)
        spec = cJSON_GetObjectItemCaseSensitive(r->o.validators, t->bucket);
    if (!spec)
        spec = cJSON_GetObjectItemCaseSensitive(r->o.validators, "*");
    char err[256];
    if (validator_parse(spec, &t->val, err, sizeof(err)) != 0) {
        task_fail(r, t, err);
        return;
    }
    task_advance(r, t);
}

size_t
runner_run(runner_t *self, int timeout_ms)
{
    /* Fill the free slots. */
    while (self->queue_head && self->active < self->o.concurrency) {
        task_t *t = self->queue_head;
        self->queue_head = t->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        t->next = NULL;
        self->queued--;
        task_start(self, t);
        if (t->state == T_DONE)
            task_free(t);
    }
    if (self->pool && prov_pool_pending(self->pool) > 0)
        prov_pool_run(self->pool, timeout_ms);
    return self->queued + self->active;
}
