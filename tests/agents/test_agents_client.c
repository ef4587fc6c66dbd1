/*
 * test_agents_client.c - the client library (agents/bursar.h) against a
 * ZeroMQ ROUTER answering per protocol inside the test: choose, feedback,
 * errors, retry on a fresh socket after a lost reply, local fallback and
 * the spool (written durably, replayed once, duplicates harmless),
 * malformed replies (an error naming the field, never a default), and
 * the tenant sent with chooses and with bookings of local decisions.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agents/bursar.h"
#include "agents/proto.h"
#include "tests/agents/util.h"

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
    assert_string_equal(d.id, "0000000000000001");
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
    assert_non_null(strstr(bursar_last_error(b), "no_model_available"));

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
    snprintf(bad.id, sizeof(bad.id), "ffffffffffffffff");
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
    /* a reply naming where keys go (an older or hostile controller): the
     * codec does not read it */
    tu_router_endpoint(r, "http://127.0.0.1:9/v1", "SOME_SECRET");
    assert_int_equal(bursar_models(b, &ms, &n), BURSAR_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ms[i].base_url, "");
        assert_string_equal(ms[i].api_key_env, "");
    }
    bursar_models_free(&ms);

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
    char dir[512], spool[600];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/agent.spool", dir);

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
    assert_int_equal(strlen(ld.local_id), 32);
    assert_true(ld.local_time > 1.6e9);
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
    /* Local decision: its booking spooled like any feedback. */
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.cost_usd = 0.003;
    assert_int_equal(bursar_feedback(b, &ld, &fb), BURSAR_SPOOLED);
    assert_true(file_size(spool) > 0);
    char *text = tu_read_file(spool);
    assert_non_null(strstr(text, "\"decision_id\":\"0000000000000001\""));
    assert_non_null(strstr(text, "\"kind\":\"correction\""));
    char want[160];
    snprintf(want, sizeof(want),
             "{\"op\":\"book\",\"local\":{\"id\":\"%s\",\"bucket\":"
             "\"code\",\"model\":\"beta\",",
             ld.local_id);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "\"cost_usd\":0.003"));
    free(text);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.spooled, 4);
    assert_int_equal(st.local_feedback, 1);
    assert_int_equal(st.local_choices, 2);

    /* A second client (another process, or a restart) sharing the spool
     * replays it once the controller is back on the same port. Its own
     * decision id 1 is known again since the stand-in numbers from 1. */
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
    assert_int_equal(tu_router_feedback(r, "book"), 1);
    assert_int_equal(tu_router_duplicates(r), 1);
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 4);
    /* a booking sent again (a reply lost) is a duplicate */
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(b, &ld, &fb), BURSAR_OK);
    assert_int_equal(tu_router_feedback(r, "book"), 1);
    assert_int_equal(tu_router_duplicates(r), 2);
    size_t n = 99;
    assert_int_equal(bursar_replay(b, &n), BURSAR_OK);
    assert_int_equal(n, 0);
    bursar_destroy(&b);

    /* A spool left by a dead process is replayed by the next client. */
    proto_feedback_t pf = {.decision = "0000000000000002",
                           .kind = PROTO_KIND_OUTCOME,
                           .has_success = 1,
                           .success = 1};
    char *line = proto_format_feedback(&pf);
    /* a good line, a malformed id (refused: dropped), a torn last line
     * (never acknowledged) */
    char *lines = bursar_sprintf("%s\n"
                                 "{\"op\":\"feedback\",\"decision_id\":\"zz\","
                                 "\"kind\":\"outcome\",\"success\":true}\n"
                                 "%.40s",
                                 line, line);
    tu_write_file(spool, lines);
    free(line);
    free(lines);
    b = client(ep, spool);
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 1);
    assert_int_equal(st.replay_dropped, 1); /* malformed decision id */
    assert_int_equal(file_size(spool), 0);
    assert_int_equal(tu_router_feedback(r, "outcome"), 2);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

/* bursar_set_tenant: every later choose and escalation carries the
 * tenant, and so do its decisions; a local decision made meanwhile is
 * booked (spooled, then replayed) with the tenant it was made for, even
 * after the client's tenant changed; NULL and "" clear it; a bad name is
 * refused and leaves the tenant in force. */
static void
test_tenant(void **state)
{
    (void)state;
    char dir[512], spool[600], ep[128], tn[64], link[400];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/agent.spool", dir);
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    int port = tu_router_port(r);
    bursar_t *b = client(ep, spool);
    bursar_decision_t d, e;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "");
    assert_string_equal(d.tenant, "");

    assert_int_equal(bursar_set_tenant(b, "acme"), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, link, sizeof link);
    assert_string_equal(tn, "acme");
    assert_string_equal(link, "");
    assert_string_equal(d.tenant, "acme");
    const char *tried[] = {d.model};
    assert_int_equal(bursar_escalate(b, &d, tried, 1, &e), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, link, sizeof link);
    assert_string_equal(tn, "acme");
    assert_string_equal(link, d.id);
    assert_string_equal(e.tenant, "acme");

    /* refused: too long, bad characters; the tenant in force stays */
    assert_int_equal(bursar_set_tenant(b, "abcdefghijklmnopqrstuvwxyz.-_09x"),
                     BURSAR_EINVAL);
    assert_int_equal(bursar_set_tenant(b, "ac me"), BURSAR_EINVAL);
    assert_int_equal(bursar_set_tenant(b, "acme/eu"), BURSAR_EINVAL);
    assert_int_equal(bursar_set_tenant(NULL, "acme"), BURSAR_EINVAL);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "acme");
    assert_int_equal(bursar_set_tenant(b, "abcdefghijklmnopqrstuvwxyz.-_09"),
                     BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "abcdefghijklmnopqrstuvwxyz.-_09");
    assert_int_equal(bursar_set_tenant(b, NULL), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "");
    assert_int_equal(bursar_set_tenant(b, "acme"), BURSAR_OK);
    assert_int_equal(bursar_set_tenant(b, ""), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_last(r, "choose", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "");
    assert_string_equal(d.tenant, "");

    /* the controller away: local decisions of two tenants in turn */
    tu_router_stop(&r);
    bursar_decision_t la, lb;
    assert_int_equal(bursar_set_tenant(b, "acme"), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &la), BURSAR_LOCAL);
    assert_string_equal(la.tenant, "acme");
    assert_int_equal(bursar_set_tenant(b, NULL), BURSAR_OK);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &lb), BURSAR_LOCAL);
    assert_string_equal(lb.tenant, "");
    assert_int_equal(bursar_set_tenant(b, "other"), BURSAR_OK);
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.cost_usd = 0.001;
    assert_int_equal(bursar_feedback(b, &la, &fb), BURSAR_SPOOLED);
    char *text = tu_read_file(spool);
    char want[200];
    snprintf(want, sizeof want,
             "{\"op\":\"book\",\"local\":{\"id\":\"%s\",\"bucket\":\"code\","
             "\"model\":\"beta\",\"time\":",
             la.local_id);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, ",\"tenant\":\"acme\"},\"kind\":"));
    free(text);
    /* back: the spooled booking replayed with its tenant */
    r = tu_router_start(port, MODELS, 3, ep, sizeof(ep));
    assert_non_null(r);
    tu_sleep_ms(250); /* past the offline period */
    assert_int_equal(bursar_replay(b, NULL), BURSAR_OK);
    assert_int_equal(tu_router_feedback(r, "book"), 1);
    tu_router_last(r, "book", tn, sizeof tn, link, sizeof link);
    assert_string_equal(tn, "acme");
    assert_string_equal(link, la.local_id);
    assert_int_equal(bursar_feedback(b, &lb, &fb), BURSAR_OK);
    tu_router_last(r, "book", tn, sizeof tn, link, sizeof link);
    assert_string_equal(tn, "");
    assert_string_equal(link, lb.local_id);
    /* a local decision of the caller's own with a bad tenant is refused */
    bursar_decision_t own;
    bursar_local_init(&own, "code");
    snprintf(own.model, sizeof own.model, "beta");
    snprintf(own.tenant, sizeof own.tenant, "a b");
    assert_int_equal(bursar_feedback(b, &own, &fb), BURSAR_EINVAL);
    assert_non_null(strstr(bursar_last_error(b), "tenant"));
    snprintf(own.tenant, sizeof own.tenant, "own");
    assert_int_equal(bursar_feedback(b, &own, &fb), BURSAR_OK);
    tu_router_last(r, "book", tn, sizeof tn, NULL, 0);
    assert_string_equal(tn, "own");
    assert_int_equal(tu_router_feedback(r, "book"), 3);
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
    tu_write_file(spool,
                  "{\"op\":\"feedback\",\"decision_id\":\"0000000000000009\","
                  "\"kin");
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

/* A torn append that the file system left zero-filled (XFS, ext4 with
 * delayed allocation): the whole events after it are still sent, the torn
 * line is counted as dropped, nothing is lost silently. */
static void
test_zero_filled_spool(void **state)
{
    (void)state;
    char dir[512], spool[600], ep[128];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/agent.spool", dir);
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    proto_feedback_t pf = {.decision = "0000000000000002",
                           .kind = PROTO_KIND_OUTCOME,
                           .has_success = 1,
                           .success = 1};
    char *line = proto_format_feedback(&pf);
    FILE *f = fopen(spool, "wb");
    assert_non_null(f);
    fputs("{\"op\":\"feed", f);
    for (int i = 0; i < 8; i++)
        fputc('\0', f);
    fprintf(f, "\n%s\n", line);
    fclose(f);
    free(line);
    bursar_t *b = client(ep, spool);
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.replayed, 1);
    assert_int_equal(st.replay_dropped, 1); /* the zero-filled line */
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
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

/* rate_limited is "retry later", not a verdict: the event is spooled and
 * sent again, so that its spend reaches the ledger. */
static void
test_rate_limited_spooled(void **state)
{
    (void)state;
    char dir[512], spool[600], ep[128];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/rl.spool", dir);
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    bursar_t *b = client(ep, spool);
    bursar_decision_t d;
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    tu_router_reply_raw(r, "{\"ok\":false,\"error\":{\"code\":"
                           "\"rate_limited\",\"message\":\"later\"}}");
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.cost_usd = 0.01;
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_SPOOLED);
    assert_int_equal(tu_router_feedback(r, "outcome"), 0);
    size_t n = 0;
    assert_int_equal(bursar_replay(b, &n), BURSAR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tu_router_feedback(r, "outcome"), 1);
    assert_int_equal(file_size(spool), 0);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

/* A spooled booking that the controller refuses (one that predates the op
 * book answers unknown_op) is counted apart: that spend never reached its
 * ledger, and bursar-agent exits 3 for it. */
static void
test_book_refused_counted(void **state)
{
    (void)state;
    char dir[512], spool[600], ep[128];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/bk.spool", dir);
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    bursar_t *b = client(ep, spool);
    assert_int_equal(bursar_ping(b), BURSAR_OK);
    proto_feedback_t pf = {.kind = PROTO_KIND_OUTCOME,
                           .has_success = 1,
                           .success = 1,
                           .has_cost = 1,
                           .cost_usd = 0.004};
    proto_local_t l = {
        .id = "abc123", .bucket = "code", .model = "beta", .time = tu_now()};
    char *line = proto_format_book(&l, &pf);
    char *text = bursar_sprintf("%s\n", line);
    tu_write_file(spool, text);
    free(line);
    free(text);
    tu_router_reply_raw(r, "{\"ok\":false,\"error\":{\"code\":"
                           "\"unknown_op\",\"message\":\"op book\"}}");
    size_t n = 9;
    assert_int_equal(bursar_replay(b, &n), BURSAR_OK);
    assert_int_equal(n, 0);
    bursar_stats_t st;
    bursar_stats(b, &st);
    assert_int_equal(st.replay_dropped, 1);
    assert_int_equal(st.book_refused, 1);
    assert_int_equal(tu_router_feedback(r, "book"), 0);
    bursar_destroy(&b);
    tu_router_stop(&r);
    tu_rmrf(dir);
}

/* A reply that is malformed or lacks a field is BURSAR_EPROTO naming the
 * field: never a default (a missing propensity is not 1, a numeric id is
 * not an id). The fallback limit is the codec's, the daemon's. */
static void
test_malformed_replies(void **state)
{
    (void)state;
    char ep[128];
    tu_router_t *r = tu_router_start(0, MODELS, 3, ep, sizeof(ep));
    assert_non_null(r);
    bursar_t *b = client(ep, NULL);
    bursar_decision_t d;
    static const struct {
        const char *reply, *error;
    } cases[] = {
        {"{\"ok\":true,\"decision_id\":\"00000000000004d2\",\"model\":\"a\","
         "\"fallbacks\":[],\"expected_cost_usd\":0}",
         "reply field \"propensity\" missing"},
        {"{\"ok\":true,\"decision_id\":1234,\"model\":\"a\","
         "\"propensity\":0.5,\"fallbacks\":[],\"expected_cost_usd\":0}",
         "reply field \"decision_id\" must be a string"},
        {"{\"ok\":true,\"decision_id\":\"00000000000004d2\","
         "\"propensity\":0.5,\"fallbacks\":[],\"expected_cost_usd\":0}",
         "reply field \"model\" missing"},
        {"{\"ok\":true,\"decision_id\":\"00000000000004d2\",\"model\":\"a\","
         "\"propensity\":0.5,\"expected_cost_usd\":0}",
         "reply field \"fallbacks\" missing"},
        {"not json", "reply is not valid JSON"},
        {"{\"ok\":false}", "reply field \"error\" missing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tu_router_reply_raw(r, cases[i].reply);
        assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_EPROTO);
        if (!strstr(bursar_last_error(b), cases[i].error))
            fail_msg("%s: last error \"%s\"", cases[i].reply,
                     bursar_last_error(b));
    }
    tu_router_reply_raw(r, "{\"ok\":true,\"models\":[{\"name\":\"a\"}]}");
    bursar_model_t *ms = NULL;
    size_t n = 9;
    assert_int_equal(bursar_models(b, &ms, &n), BURSAR_EPROTO);
    assert_null(ms);
    assert_int_equal(n, 0);
    assert_non_null(strstr(bursar_last_error(b),
                           "reply field \"models[0].provider\" missing"));

    /* BURSAR_MAX_FALLBACKS is the codec's PROTO_MAX_FALLBACK: all kept */
    assert_int_equal(BURSAR_MAX_FALLBACKS, PROTO_MAX_FALLBACK);
    const char *names[PROTO_MAX_FALLBACK];
    char store[PROTO_MAX_FALLBACK][8];
    for (int i = 0; i < PROTO_MAX_FALLBACK; i++) {
        snprintf(store[i], sizeof(store[i]), "m%d", i);
        names[i] = store[i];
    }
    proto_choice_t ch = {.decision = "0000000000000007",
                         .model = "a",
                         .propensity = 0.25,
                         .n_fallbacks = PROTO_MAX_FALLBACK,
                         .fallbacks = names,
                         .expected_cost_usd = 0.5};
    char *s = proto_write_choice(NULL, &ch);
    tu_router_reply_raw(r, s);
    free(s);
    assert_int_equal(bursar_choose(b, "code", NULL, 0, &d), BURSAR_OK);
    assert_string_equal(d.id, "0000000000000007");
    assert_int_equal(d.n_fallbacks, PROTO_MAX_FALLBACK);
    assert_string_equal(d.fallbacks[PROTO_MAX_FALLBACK - 1], "m63");
    assert_true(d.propensity == 0.25);
    assert_string_equal(bursar_last_error(b), "");

    /* a decision id that is not a decision token is refused locally */
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    snprintf(d.id, sizeof(d.id), "d 1");
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_EINVAL);
    bursar_destroy(&b);
    tu_router_stop(&r);
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
    snprintf(d.id, sizeof(d.id), "0000000000000001");
    d.local = 0;
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    assert_int_equal(bursar_feedback(b, &d, &fb), BURSAR_EUNREACHABLE);
    assert_string_equal(bursar_strerror(BURSAR_EUNREACHABLE),
                        "controller unreachable");
    bursar_destroy(&b);
}

/* A models table from a file (bursar-agent --models; proto_parse_models
 * without a reply): an array or an object keyed by name, bursard's
 * defaults for model, base_url and api_key_env, strict otherwise. */
static void
test_models_table(void **state)
{
    (void)state;
    const char *obj =
        "{\"models\":{\"m\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":"
        "1,\"price_out_per_mtok\":2},\"n\":{\"name\":\"n\",\"provider\":"
        "\"openai\",\"model\":\"gpt-x\",\"base_url\":\"http://h/v1\","
        "\"api_key_env\":\"K\",\"price_in_per_mtok\":0,"
        "\"price_out_per_mtok\":0.5}},\"buckets\":{}}";
    proto_model_t *ms = NULL;
    size_t n = 0;
    proto_error_t err;
    assert_int_equal(proto_parse_models(obj, strlen(obj), NULL, &ms, &n, &err),
                     PROTO_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ms[0].name, "m");
    assert_int_equal(ms[0].provider, PROTO_PROVIDER_ANTHROPIC);
    assert_string_equal(ms[0].model, "m");
    assert_string_equal(ms[0].base_url, PROTO_ANTHROPIC_URL);
    assert_string_equal(ms[0].api_key_env, "");
    assert_true(ms[0].price_in_per_mtok == 1 && ms[0].price_out_per_mtok == 2);
    assert_string_equal(ms[1].model, "gpt-x");
    assert_string_equal(ms[1].base_url, "http://h/v1");
    assert_string_equal(ms[1].api_key_env, "K");
    free(ms);

    /* the array form; a saved models reply reads as a table too */
    const char *arr = "{\"ok\":true,\"models\":[{\"name\":\"a\",\"provider\":"
                      "\"openai\",\"price_in_per_mtok\":1,"
                      "\"price_out_per_mtok\":1,\"health\":\"ok\"}]}";
    assert_int_equal(proto_parse_models(arr, strlen(arr), NULL, &ms, &n, &err),
                     PROTO_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ms[0].name, "a");
    assert_string_equal(ms[0].base_url, PROTO_OPENAI_URL);
    free(ms);

    static const char *const bad[][2] = {
        {"{\"models\":", "not valid JSON"},
        {"[]", "a models table must be a JSON object, got an array"},
        {"{}", "field \"models\" missing"},
        {"{\"models\":\"x\"}",
         "field \"models\" must be an array or an object, got a string"},
        {"{\"models\":{\"m\":1}}",
         "field \"models.m\" must be an object, got a number"},
        {"{\"models\":{\"m\":{\"provider\":\"openai\",\"bse_url\":\"u\"}}}",
         "field \"models.m.bse_url\" is not a model field"},
        {"{\"models\":{\"m\":{\"provider\":\"openai\","
         "\"price_in_per_mtok\":1}}}",
         "field \"models.m.price_out_per_mtok\" missing"},
        {"{\"models\":{\"m\":{\"provider\":\"openia\"}}}",
         "field \"models.m.provider\" must be \"openai\" or \"anthropic\""},
        {"{\"models\":{\"m\":{\"price_in_per_mtok\":1}}}",
         "field \"models.m.provider\" missing"},
        {"{\"models\":{\"m\":{\"name\":\"x\",\"provider\":\"openai\"}}}",
         "field \"models.m.name\" must be the model's key \"m\""},
        {"{\"models\":{\"m\":{\"provider\":\"openai\",\"model\":\"\"}}}",
         "field \"models.m.model\" must have 1 to 127 bytes, got 0"},
        {"{\"models\":{\"m\":{\"provider\":\"openai\",\"price_in_per_mtok\":"
         "-1}}}",
         "field \"models.m.price_in_per_mtok\" must be >= 0, got -1"},
        {"{\"models\":[{\"provider\":\"openai\"}]}",
         "field \"models[0].name\" missing"},
        {"{\"models\":[{\"name\":\"a\",\"provider\":\"openai\","
         "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1},{\"name\":\"a\","
         "\"provider\":\"openai\",\"price_in_per_mtok\":1,"
         "\"price_out_per_mtok\":1}]}",
         "field \"models[1].name\": \"a\" is named twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = (proto_model_t *)&err; /* must be reset */
        n = 9;
        proto_code_t rc = proto_parse_models(bad[i][0], strlen(bad[i][0]), NULL,
                                             &ms, &n, &err);
        if (rc == PROTO_OK ||
            strncmp(err.message, bad[i][1], strlen(bad[i][1])) != 0)
            fail_msg("%s: got \"%s\"", bad[i][0], err.message);
        assert_null(ms);
        assert_int_equal(n, 0);
    }
}

/* The one price computation: USD per million tokens. */
static void
test_price_cost(void **state)
{
    (void)state;
    /* 1000 x 3 + 500 x 15 = 10500 micro-dollars */
    assert_true(fabs(proto_price_cost(3, 15, 1000, 500) - 0.0105) < 1e-15);
    assert_true(proto_price_cost(3, 15, 0, 0) == 0);
    assert_true(proto_price_cost(2, 4, 1e6, 1e6) == 6);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_feedback),
        cmocka_unit_test(test_lost_reply_retried),
        cmocka_unit_test(test_unreachable_spool_replay),
        cmocka_unit_test(test_tenant),
        cmocka_unit_test(test_torn_spool_then_append),
        cmocka_unit_test(test_zero_filled_spool),
        cmocka_unit_test(test_shared_spool),
        cmocka_unit_test(test_rate_limited_spooled),
        cmocka_unit_test(test_book_refused_counted),
        cmocka_unit_test(test_malformed_replies),
        cmocka_unit_test(test_no_fallback_no_spool),
        cmocka_unit_test(test_models_table),
        cmocka_unit_test(test_price_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
