/*
 * test_ctl_crash.c - kill -9 under load, many times.
 *
 * A DEALER client keeps a window of requests in flight (choose, then the
 * outcome and sometimes a correction of each decision, in random order)
 * while the daemon is killed with SIGKILL at a random moment; then the
 * daemon is restarted and the client goes on, re-sending every feedback
 * event that was not acknowledged (a re-sent event that had in fact been
 * committed must come back "duplicate"). After CRASH_CYCLES cycles the
 * test proves from the export and the stats of the restarted daemon:
 *
 *   - every answered decision is in the store with its bucket and model
 *     (a choose is answered before its commit: a decision whose record a
 *     kill lost is rebuilt from its token by its feedback, and some must
 *     have been), no token names two decisions, and every acknowledged
 *     feedback event is recorded;
 *   - the posteriors count every recorded reward exactly once:
 *     alpha - alpha0 = sum of rewards, beta - beta0 = sum of (1 - reward)
 *     and pulls = number of decisions, per bucket and arm;
 *   - the ledger matches: spent = sum of booked costs, reserved = sum of
 *     the expected costs of the pending decisions.
 *
 * Rewards are 0, 0.5 or 1 and costs multiples of 2^-10, so the sums are
 * exact in binary floating point whatever the order.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <zmq.h>

#include "tests/harness.h"

#define CRASH_CYCLES 25
#define WINDOW       48

static const char *const crash_config =
    "{\"models\":{"
    "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2},"
    "\"b\":{\"provider\":\"openai\",\"price_in_per_mtok\":3,"
    "\"price_out_per_mtok\":4},"
    "\"c\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":0.5,"
    "\"price_out_per_mtok\":1}},"
    "\"buckets\":{\"x\":{\"models\":[\"a\",\"b\",\"c\"]},"
    "\"y\":{\"models\":[\"b\",\"c\"],\"budget\":{\"limit_usd\":500}}},"
    "\"budget\":{\"limit_usd\":1000,\"window_s\":1000000000},"
    "\"explore_floor\":0.1,\"decision_ttl_s\":3600,"
    "\"policy\":{\"seed\":11}}";

enum { OP_CHOOSE, OP_OUTCOME, OP_CORRECTION };

typedef struct decision {
    char id_s[400]; /* the token */
    int bucket;
    char model[8];
    double reward;   /* planned outcome */
    double cost;     /* planned cost */
    int correct;     /* a correction is planned */
    int outcome_ack; /* acknowledged */
    int correction_ack;
} decision_t;

typedef struct op {
    int kind;
    size_t decision; /* index, for feedback */
    int bucket;      /* for choose */
    int in_flight;
} op_t;

typedef struct client {
    decision_t *d;
    size_t n_d, cap_d;
    op_t *ops; /* every op sent, indexed by echo id */
    size_t n_ops, cap_ops;
    size_t *queue; /* feedback ops (indices into ops) waiting to be sent */
    size_t n_q, cap_q;
    size_t in_flight;
    size_t acked_feedback, duplicates;
    size_t replies; /* every reply received */
} client_t;

static size_t
new_op(client_t *c, int kind, size_t decision, int bucket)
{
    if (c->n_ops == c->cap_ops) {
        c->cap_ops = c->cap_ops ? 2 * c->cap_ops : 1024;
        c->ops = realloc(c->ops, c->cap_ops * sizeof *c->ops);
    }
    c->ops[c->n_ops] = (op_t){kind, decision, bucket, 0};
    return c->n_ops++;
}

static void
enqueue(client_t *c, size_t op)
{
    if (c->n_q == c->cap_q) {
        c->cap_q = c->cap_q ? 2 * c->cap_q : 1024;
        c->queue = realloc(c->queue, c->cap_q * sizeof *c->queue);
    }
    c->queue[c->n_q++] = op;
}

/* Takes a random queued feedback op. */
static size_t
dequeue(client_t *c)
{
    size_t k = (size_t)rand() % c->n_q;
    size_t op = c->queue[k];
    c->queue[k] = c->queue[--c->n_q];
    return op;
}

static void
send_op(client_t *c, void *s, size_t op)
{
    char buf[512];
    int n;
    op_t *o = &c->ops[op];
    if (o->kind == OP_CHOOSE) {
        n = snprintf(buf, sizeof buf,
                     "{\"op\":\"choose\",\"bucket\":\"%s\",\"id\":%zu}",
                     o->bucket ? "y" : "x", op);
    } else if (o->kind == OP_OUTCOME) {
        decision_t *d = &c->d[o->decision];
        n = snprintf(buf, sizeof buf,
                     "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                     "\"outcome\",\"reward\":%g,\"cost_usd\":%.17g,"
                     "\"id\":%zu}",
                     d->id_s, d->reward, d->cost, op);
    } else {
        decision_t *d = &c->d[o->decision];
        n = snprintf(buf, sizeof buf,
                     "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
                     "\"correction\",\"id\":%zu}",
                     d->id_s, op);
    }
    if (zmq_send(s, buf, (size_t)n, ZMQ_DONTWAIT) == n) {
        o->in_flight = 1;
        c->in_flight++;
    } else if (o->kind != OP_CHOOSE) {
        enqueue(c, op);
    }
}

static void
on_reply(client_t *c, const char *buf, size_t len)
{
    cJSON *r = cJSON_ParseWithLength(buf, len);
    assert_non_null(r);
    const cJSON *idj = cJSON_GetObjectItem(r, "id");
    assert_true(cJSON_IsNumber(idj));
    size_t op = (size_t)idj->valuedouble;
    assert_true(op < c->n_ops);
    op_t *o = &c->ops[op];
    assert_true(o->in_flight);
    o->in_flight = 0;
    c->in_flight--;
    c->replies++;
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        char *s = cJSON_PrintUnformatted(r);
        fail_msg("unexpected error reply: %s", s);
    }
    if (o->kind == OP_CHOOSE) {
        if (c->n_d == c->cap_d) {
            c->cap_d = c->cap_d ? 2 * c->cap_d : 1024;
            c->d = realloc(c->d, c->cap_d * sizeof *c->d);
        }
        decision_t *d = &c->d[c->n_d];
        memset(d, 0, sizeof *d);
        snprintf(d->id_s, sizeof d->id_s, "%s", th_str(r, "decision_id"));
        d->bucket = o->bucket;
        snprintf(d->model, sizeof d->model, "%s", th_str(r, "model"));
        d->reward = (rand() % 3) / 2.0;
        d->cost = (rand() % 64) / 1024.0;
        d->correct = rand() % 4 == 0;
        size_t di = c->n_d++;
        enqueue(c, new_op(c, OP_OUTCOME, di, 0));
        if (d->correct)
            enqueue(c, new_op(c, OP_CORRECTION, di, 0));
    } else {
        decision_t *d = &c->d[o->decision];
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")))
            c->duplicates++;
        if (o->kind == OP_OUTCOME)
            d->outcome_ack = 1;
        else
            d->correction_ack = 1;
        c->acked_feedback++;
    }
    cJSON_Delete(r);
}

static void
receive_all(client_t *c, void *s, int timeout_ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        on_reply(c, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
open_dealer(const char *ep)
{
    void *s = zmq_socket(th_zctx(), ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, ep);
    return s;
}

/* Runs the load for run seconds counted from the first reply of this run
 * (so that every kill lands after the daemon has answered something,
 * however long a request takes to handle), then returns with requests in
 * flight; or, when drain is set, until the queue is empty. Fails when the
 * daemon answers nothing for REPLY_WAIT_S. */
#define REPLY_WAIT_S 20.0

static void
load(client_t *c, void *s, double run, int drain)
{
    double start = now_s(), first = -1.0, last = start;
    size_t replies = c->replies;
    for (;;) {
        double t = now_s();
        if (c->replies != replies) {
            replies = c->replies;
            last = t;
            if (first < 0)
                first = t;
        }
        if (drain ? (c->n_q == 0 && c->in_flight == 0)
                  : (first >= 0 && t >= first + run))
            break;
        if (t - last > REPLY_WAIT_S)
            fail_msg("no reply for %.0f s (%zu in flight)", REPLY_WAIT_S,
                     c->in_flight);
        if (drain && t - start > 60.0)
            fail_msg("drain did not finish");
        while (c->in_flight < WINDOW) {
            if (c->n_q && (drain || rand() % 2))
                send_op(c, s, dequeue(c));
            else if (!drain)
                send_op(c, s, new_op(c, OP_CHOOSE, 0, rand() % 2));
            else
                break;
        }
        receive_all(c, s, 2);
    }
}

static int
cmp_token(const void *a, const void *b)
{
    return strcmp(th_str(*(cJSON *const *)a, "decision_id"),
                  th_str(*(cJSON *const *)b, "decision_id"));
}

static cJSON *
find_token(cJSON **by_tok, size_t n, const char *token)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(th_str(by_tok[mid], "decision_id"), token);
        if (c == 0)
            return by_tok[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
test_crash(void **state)
{
    (void)state;
    /* The kill moments are random by design; the seed is printed so that a
     * failing run can be replayed with BURSAR_CRASH_SEED. */
    const char *seed_env = getenv("BURSAR_CRASH_SEED");
    unsigned seed =
        seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "crash: seed %u\n", seed);
    srand(seed);
    th_daemon_t dm;
    th_setup(&dm, crash_config);
    client_t c = {0};
    size_t kills = 0;
    for (int cycle = 0; cycle < CRASH_CYCLES; cycle++) {
        th_start(&dm);
        void *s = open_dealer(dm.endpoint);
        double run = 0.02 + (rand() % 130) / 1000.0;
        load(&c, s, run, 0);
        th_kill9(&dm);
        kills++;
        receive_all(&c, s, 20); /* replies already on their way count */
        zmq_close(s);
        /* unanswered: feedback is re-sent, a choose is forgotten */
        for (size_t i = 0; i < c.n_ops; i++) {
            if (!c.ops[i].in_flight)
                continue;
            c.ops[i].in_flight = 0;
            if (c.ops[i].kind != OP_CHOOSE)
                enqueue(&c, new_op(&c, c.ops[i].kind, c.ops[i].decision, 0));
        }
        c.in_flight = 0;
    }
    /* final run: deliver all feedback, then check */
    th_start(&dm);
    void *s = open_dealer(dm.endpoint);
    load(&c, s, 0, 1);
    zmq_close(s);
    fprintf(stderr,
            "crash: %zu kills, %zu acknowledged decisions, %zu acknowledged "
            "feedback events (%zu answered duplicate after a re-send)\n",
            kills, c.n_d, c.acked_feedback, c.duplicates);
    assert_true(kills >= 20);
    assert_true(c.n_d > 100);

    th_client_t *cl = th_client_new(dm.endpoint);
    /* export everything */
    cJSON *all = cJSON_CreateArray();
    char after[17] = "0000000000000000";
    for (;;) {
        cJSON *r = th_ok(cl, "{\"op\":\"export\",\"after\":\"%s\"}", after);
        cJSON *ds = cJSON_DetachItemFromObject(r, "decisions");
        cJSON *d;
        while ((d = cJSON_DetachItemFromArray(ds, 0)))
            cJSON_AddItemToArray(all, d);
        cJSON_Delete(ds);
        const cJSON *next = cJSON_GetObjectItem(r, "next");
        int more = cJSON_IsString(next);
        if (more)
            snprintf(after, sizeof after, "%s", next->valuestring);
        cJSON_Delete(r);
        if (!more)
            break;
    }
    size_t n_all = (size_t)cJSON_GetArraySize(all);
    assert_true(n_all >= c.n_d);
    /* index the export by token (export gives each record's token) */
    cJSON **by_tok = calloc(n_all + 1, sizeof *by_tok);
    size_t k = 0, rebuilt = 0;
    cJSON *d;
    cJSON_ArrayForEach(d, all)
    {
        by_tok[k++] = d;
        rebuilt += cJSON_IsTrue(cJSON_GetObjectItem(d, "rebuilt"));
    }
    qsort(by_tok, n_all, sizeof *by_tok, cmp_token);
    for (size_t i = 1; i < n_all; i++) /* no token names two decisions */
        assert_string_not_equal(th_str(by_tok[i - 1], "decision_id"),
                                th_str(by_tok[i], "decision_id"));
    /* every answered choose is in the store (its record committed, or
     * rebuilt from its token by the feedback when a kill lost it), and
     * every acknowledged feedback event with it */
    for (size_t i = 0; i < c.n_d; i++) {
        decision_t *x = &c.d[i];
        cJSON *e = find_token(by_tok, n_all, x->id_s);
        assert_non_null(e);
        assert_string_equal(th_str(e, "bucket"), x->bucket ? "y" : "x");
        assert_string_equal(th_str(e, "model"), x->model);
        assert_true(x->outcome_ack);
        assert_string_equal(th_str(e, "status"), "done");
        assert_true(th_num(e, "outcome") == x->reward);
        assert_true(th_num(e, "cost_usd") == x->cost);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "corrected")) ==
                    x->correct);
        assert_true(th_num(e, "reward") == (x->correct ? 0.0 : x->reward));
    }
    /* posteriors and ledger count each recorded event exactly once */
    cJSON *st = th_ok(cl, "{\"op\":\"stats\"}");
    double spent = 0, reserved = 0;
    const char *buckets[] = {"x", "y"}, *models[] = {"a", "b", "c"};
    for (int b = 0; b < 2; b++) {
        for (int m = 0; m < 3; m++) {
            const cJSON *arm = th_arm(st, buckets[b], models[m]);
            if (!arm)
                continue;
            double sa = 0, sb = 0, pulls = 0;
            cJSON_ArrayForEach(d, all)
            {
                if (strcmp(th_str(d, "bucket"), buckets[b]) != 0 ||
                    strcmp(th_str(d, "model"), models[m]) != 0)
                    continue;
                pulls++;
                const cJSON *rw = cJSON_GetObjectItem(d, "reward");
                if (cJSON_IsNumber(rw)) {
                    sa += rw->valuedouble;
                    sb += 1 - rw->valuedouble;
                }
            }
            double da = th_num(arm, "alpha") - th_num(arm, "alpha0");
            double db = th_num(arm, "beta") - th_num(arm, "beta0");
            if (fabs(da - sa) > 1e-9 || fabs(db - sb) > 1e-9 ||
                th_num(arm, "pulls") != pulls)
                fail_msg("%s/%s: alpha-alpha0 %.17g vs %.17g, beta-beta0 "
                         "%.17g vs %.17g, pulls %g vs %g",
                         buckets[b], models[m], da, sa, db, sb,
                         th_num(arm, "pulls"), pulls);
        }
    }
    cJSON_ArrayForEach(d, all)
    {
        if (strcmp(th_str(d, "status"), "pending") == 0)
            reserved += th_num(d, "expected_cost_usd");
        else
            spent += th_num(d, "cost_usd");
    }
    const cJSON *bud = cJSON_GetObjectItem(st, "budget");
    assert_true(fabs(th_num(bud, "spent_usd") - spent) < 1e-9);
    assert_true(fabs(th_num(bud, "reserved_usd") - reserved) < 1e-9);
    fprintf(stderr,
            "crash: store holds %zu decisions (%zu chosen but unacknowledged "
            "before a kill; %zu answered before their commit, lost to a kill "
            "and rebuilt from their tokens); spent %.4f, reserved %.6f\n",
            n_all, n_all - c.n_d, rebuilt, spent, reserved);
    /* the path this test exists for was taken */
    assert_true(rebuilt > 0);
    cJSON_Delete(st);
    cJSON_Delete(all);
    free(by_tok);
    th_client_destroy(&cl);
    assert_int_equal(th_stop(&dm), 0);
    th_cleanup(&dm);
    free(c.d);
    free(c.ops);
    free(c.queue);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
