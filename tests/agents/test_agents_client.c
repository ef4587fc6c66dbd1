/*
 * test_agents_client.c - the client library (agents/bursar.h) against a
 * ZeroMQ ROUTER answering per protocol inside the test: choose, feedback,
 * errors, retry on a fresh socket after a lost reply, local fallback and
 * the spool (written durably, replayed once, duplicates harmless).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bursar.h"
#include "util.h"

static const char *const MODELS[] = {"alpha", "beta", "gamma"};

static bursar_t *
client(const char *endpoint, const char *spool)
{
    bursar_opts_t o;
    bursar_opts_init(&o);
    o.endpoint = endpoint;
    o.timeout_ms = 200;
    o.attempts = 2;
    o.backoff_ms = 100;
    o.backoff_max_ms = 200;
    o.fallback_model = "beta";
    o.spool_path = spool;
    bursar_t *b = NULL;
    assert_int_equal(bursar_new(&b, &o), BURSAR_OK);
    return b;
}

static long
file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static void
test_choose_feedback(void **state)
{
    (void)state;
    char ep[128];
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    assert_non_null(r);
    bursar_t *b = client(ep, NULL);
    assert_int_equal(bursar_ping(b), BURSAR_OK);

    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    assert_string_equal(d.model, "alpha");
    assert_string_equal(d.id, "d1");
    assert_false(d.local);
    assert_int_equal(d.n_fallbacks, 2);
    assert_string_equal(d.fallbacks[0], "beta");
    assert_true(d.propensity > 0.89 && d.propensity < 0.91);

    const char *ex[] = {"alpha", "beta"};
    bursar_decision_t d2;
    assert_int_equal(bursar_choose(b, "code", ex, 2, &d2), BURSAR_OK);
    assert_string_equal(d2.model, "gamma");
    assert_int_equal(d2.n_fallbacks, 0);

    const char *all[] = {"alpha", "beta", "gamma"};
    assert_int_equal(bursar_choose(b, "code", all, 3, &d2), BURSAR_EREMOTE);
    assert_non_null(strstr(bursar_last_error(b), "no_arm"));

    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = 1;
    fb.cost_usd = 0.01;
    fb.tokens_in = 10;
    fb.tokens_out = 20;
    fb.latency_ms = 33;
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_OK);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_OK); /* resend */
    bursar_feedback_init(&fb, BURSAR_FB_PROVIDER_ERROR);
    fb.error = "http 500";
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_OK);
    bursar_feedback_init(&fb, BURSAR_FB_CORRECTION);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_OK);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    assert_int_equal(tu_router_feedback(r, "provider_error"), 1);
    assert_int_equal(tu_router_feedback(r, "correction"), 1);
    assert_int_equal(tu_router_duplicates(r), 1);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.duplicates, 1);

    /* reward instead of success; out of range refused locally */
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = -1;
    fb.reward = 1.5;
    assert_int_equal(bursar_feedback(b, &d2, &fb), BURSAR_EINVAL);

    /* unknown decision: refused, not spooled */
    bursar_decision_t bad = d;
    snprintf(bad.id, sizeof(bad.id), "x9");
    fb.reward = 0.5;
    assert_int_equal(bursar_feedback(b, &bad, &fb), BURSAR_EREMOTE);
    assert_non_null(strstr(bursar_last_error(b), "unknown_decision"));

    bursar_model_t *ms = NULL;
    size_t n = 0;
    assert_int_equal(bursar_models(b, &ms, &n), BURSAR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ms[1].name, "beta");
    assert_int_equal(ms[1].provider, BURSAR_PROVIDER_OPENAI);
    assert_true(ms[1].price_out_per_mtok == 2.0);
    bursar_models_free(&ms);
    assert_null(ms);

    bursar_destroy(&b);
    assert_null(b);
    bursar_destroy(&b); /* safe on NULL */
    tu_router_stop(&r);
}

static void
test_lost_reply_retried(void **state)
{
    (void)state;
    char ep[128];
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    bursar_t *b = client(ep, NULL);
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    tu_router_drop(r, 1); /* the first choose gets no reply */
    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    assert_false(d.local);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.timeouts, 1);
    /* feedback whose first reply is lost: resent, counted once */
    tu_router_drop(r, 1);
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_OK);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    bursar_destroy(&b);
    tu_router_stop(&r);
}

static void
test_unreachable_spool_replay(void **state)
{
    (void)state;
    char dir[512], spool[600], local[620];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/agent.spool", dir);
    snprintf(local, sizeof(local), "%s.local", spool);

    /* A live controller hands out a decision, then goes away. */
    char ep[128];
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    int port = tu_router_port(r);
    bursar_t *b = client(ep, spool);
    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_stop(&r);

    /* Away: local choice with the fallback model, feedback spooled. */
    bursar_decision_t ld;
    double t0 = tu_now();
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &ld), BURSAR_LOCAL);
    assert_true(ld.local);
    assert_string_equal(ld.model, "beta");
    assert_string_equal(ld.id, "");
    /* Next call inside the offline period answers at once. */
    double t1 = tu_now();
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &ld), BURSAR_LOCAL);
    assert_true(tu_now() - t1 < 0.15);
    assert_true(t1 - t0 < 1.0);
    const char *ex[] = {"beta"};
    bursar_decision_t ld2;
    assert_int_equal(bursar_choose(b, "code", ex, 1, &ld2),
                     BURSAR_EUNREACHABLE);

    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = 0;
    fb.cost_usd = 0.002;
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_SPOOLED);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_SPOOLED);
    bursar_feedback_init(&fb, BURSAR_FB_CORRECTION);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_SPOOLED);
    /* Local decision: kept in the .local file, never sent. */
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(b, &ld, &fb), BURSAR_SPOOLED);
    assert_true(file_size(spool) > 0);
    char *text = tu_read_file(spool);
    assert_non_null(strstr(text, "\"decision_id\":\"d1\""));
    assert_non_null(strstr(text, "\"kind\":\"correction\""));
    free(text);
    text = tu_read_file(local);
    assert_non_null(strstr(text, "\"local\":true"));
    assert_non_null(strstr(text, "\"model\":\"beta\""));
    free(text);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.spooled, 4);
    assert_int_equal(st.local_feedback, 1);
    assert_int_equal(st.local_choices, 2);

    /* A second client (another process, or a restart) sharing the spool
     * replays it once the controller is back on the same port. Its own
     * decision id d1 is known again since the stand-in numbers from 1. */
    r = tu_router_start(port, MODELS, 3, ep, sizeof(ep));
    assert_non_null(r);
    bursar_decision_t nd;
    assert_int_equal(bursar_choose(r ? b : b, "code", NULL, 0, &nd),
                     BURSAR_LOCAL); /* still inside the offline period */
    tu_sleep_ms(250);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &nd), BURSAR_OK);
    /* The success of that request triggered the replay. */
    assert_int_equal(file_size(spool), 0);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    assert_int_equal(tu_router_feedback(r, "correction"), 1);
    assert_int_equal(tu_router_duplicates(r), 1);
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 3);
    /* The .local file is an audit log: never truncated. */
    assert_true(file_size(local) > 0);
    size_t n = 99;
    assert_int_equal(bursar_replay(b, &n), BURSAR_OK);
    assert_int_equal(n, 0);
    bursar_destroy(&b);

    /* A spool left by a dead process is replayed by the next client. */
    tu_write_file(spool, "{\"op\":\"feedback\",\"decision_id\":\"d2\","
                         "\"kind\":\"outcome\",\"success\":true}\n"
                         "{\"op\":\"feedback\",\"decision_id\":\"zz\","
                         "\"kind\":\"outcome\",\"success\":true}\n"
                         "{\"op\":\"feedback\",\"decision_id\":\"d2\","
                         "\"kin"); /* torn last line: never acknowledged */
    b = client(ep, spool);
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 1);
    assert_int_equal(st.replay_dropped, 1); /* unknown decision */
    assert_int_equal(file_size(spool), 0);
    assert_int_equal(tu_router_feedback(r, "outcome"), 2);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

/* A crash mid-append left a line without its newline: the next spooled
 * event must not be glued to it (it would be refused as bad JSON and lost
 * although the caller was told it was safe). */
static void
test_torn_spool_then_append(void **state)
{
    (void)state;
    char dir[512], spool[600];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/agent.spool", dir);
    char ep[128];
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    int port = tu_router_port(r);
    bursar_t *b = client(ep, spool);
    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_stop(&r);
    tu_write_file(spool, "{\"op\":\"feedback\",\"decision_id\":\"d9\",\"kin");
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = 1;
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_SPOOLED);
    r = tu_router_start(port, MODELS, 3, ep, sizeof(ep));
    assert_non_null(r);
    tu_sleep_ms(300); /* past the client's offline period */
    bursar_decision_t nd;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &nd), BURSAR_OK);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    assert_int_equal(st.replayed, 1);
    assert_int_equal(st.replay_dropped, 1); /* the fragment, alone */
    assert_int_equal(file_size(spool), 0);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

/* Two clients (two processes in production) share one spool: each
 * appends under flock; whichever reaches the controller first replays all
 * of it, once. */
static void
test_shared_spool(void **state)
{
    (void)state;
    char dir[512], spool[600], ep[128];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/shared.spool", dir);
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    int port = tu_router_port(r);
    bursar_t *a = client(ep, spool), *b = client(ep, spool);
    bursar_decision_t da, db;
    assert_int_equal(bursar_choose(a, "x", NULL, 0, &da), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "x", NULL, 0, &db), BURSAR_OK);
    tu_router_stop(&r);
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(a, &da, &fb), BURSAR_SPOOLED);
    assert_int_equal(bursar_feedback(b, &db, &fb), BURSAR_SPOOLED);
    bursar_feedback_init(&fb, BURSAR_FB_CORRECTION);
    assert_int_equal(bursar_feedback(a, &da, &fb), BURSAR_SPOOLED);
    r = tu_router_start(port, MODELS, 3, ep, sizeof(ep));
    tu_sleep_ms(250); /* past the offline period */
    /* the same ids exist again in the restarted stand-in */
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 3);
    assert_int_equal(tu_router_feedback(r, NULL), 3);
    size_t n = 9;
    tu_sleep_ms(250);
    assert_int_equal(bursar_replay(a, &n), BURSAR_OK);
    assert_int_equal(n, 0); /* b already sent a's lines */
    assert_int_equal(tu_router_feedback(r, NULL), 3);
    bursar_destroy(&a);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

static void
test_no_fallback_no_spool(void **state)
{
    (void)state;
    bursar_opts_t o;
    bursar_opts_init(&o);
    bursar_t *b = NULL;
    assert_int_equal(bursar_new(&b, &o), BURSAR_EINVAL);
    assert_null(b);
    o.endpoint = "tcp://127.0.0.1:9"; /* nobody */
    o.timeout_ms = 50;
    o.attempts = 1;
    assert_int_equal(bursar_new(&b, &o), BURSAR_OK);
    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d),
                     BURSAR_EUNREACHABLE);
    snprintf(d.id, sizeof(d.id), "d1");
    d.local = 0;
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_EUNREACHABLE);
    assert_string_equal(bursar_strerror(BURSAR_EUNREACHABLE),
                        "controller unreachable");
    bursar_destroy(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_feedback),
        cmocka_unit_test(test_lost_reply_retried),
        cmocka_unit_test(test_unreachable_spool_replay),
        cmocka_unit_test(test_torn_spool_then_append),
        cmocka_unit_test(test_shared_spool),
        cmocka_unit_test(test_no_fallback_no_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
