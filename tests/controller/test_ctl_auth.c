/*
 * test_ctl_auth.c - trust, against the real bursard with CURVE on
 * loopback (docs/security.md): who gets service, what each role may do,
 * unforgeable tokens, ceilings that leave state untouched, per-client
 * rate and in-flight caps, and cooldowns one client cannot impose on
 * others. Every test starts its own daemon (same configuration, fresh
 * state) so that one test's pending decisions and rate use do not reach
 * the next.
 */
#define _DEFAULT_SOURCE
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
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <zmq.h>

#include "agents/keys.h"
#include "agents/proto.h"
#include "tests/harness.h"

/* key pairs: the daemon's, and one per client */
enum {
    K_SERVER,
    K_AGENT1,
    K_AGENT2,
    K_FEEDBACK,
    K_OPS,
    K_FLOOD,
    K_STRANGER,
    K_N
};
static const char *const key_names[K_N] = {"server", "agent1", "agent2",  "fbk",
                                           "ops",    "flood",  "stranger"};
static char sec[K_N][41], pub[K_N][41];
static char keydir[512];

typedef struct fx {
    th_daemon_t d;
    th_client_t *c[K_N]; /* clients by key, made on demand */
} fx_t;

static void
load_key(const char *path, char out[41])
{
    char err[600];
    if (bursar_key_load(path, 1, out, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void write_clients(const char *extra);

static int
group_setup(void **state)
{
    (void)state;
    snprintf(keydir, sizeof keydir, "/tmp/bursar-auth-XXXXXX");
    if (!mkdtemp(keydir))
        return -1;
    for (int k = 0; k < K_N; k++) {
        char prefix[600], path[700], err[600];
        snprintf(prefix, sizeof prefix, "%s/%s", keydir, key_names[k]);
        if (bursar_key_write_pair(prefix, pub[k], err, sizeof err) != 0)
            fail_msg("%s", err);
        snprintf(path, sizeof path, "%s.key", prefix);
        load_key(path, sec[k]);
    }
    write_clients("");
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", keydir);
    return system(cmd) == 0 ? 0 : -1;
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"models\":{"
             "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
             "\"price_out_per_mtok\":2},"
             "\"b\":{\"provider\":\"openai\",\"price_in_per_mtok\":3,"
             "\"price_out_per_mtok\":4},"
             "\"c\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.5,"
             "\"price_out_per_mtok\":1}},"
             "\"buckets\":{\"code\":{\"models\":[\"a\",\"b\",\"c\"]}},"
             "\"explore_floor\":0.2,\"policy\":{\"seed\":5},"
             "\"health\":{\"failures\":2,\"cooldown_s\":300,"
             "\"min_clients\":2},"
             "\"limits\":{\"client_rate_per_s\":20,\"client_burst\":60,"
             "\"client_inflight\":30},"
             "\"curve\":{\"secret_key_file\":\"%s/server.key\","
             "\"clients_file\":\"%s/clients\"}}",
             keydir, keydir);
    th_setup(&f->d, cfg);
    th_curve(sec[K_OPS], pub[K_SERVER]); /* th_start pings as ops */
    th_start(&f->d);
    th_curve(NULL, NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    for (int k = 0; k < K_N; k++)
        th_client_destroy(&f->c[k]);
    th_cleanup(&f->d);
    free(f);
    return 0;
}

/* The client of key k (CURVE with it). */
static th_client_t *
cl(fx_t *f, int k)
{
    if (!f->c[k]) {
        th_curve(sec[k], pub[K_SERVER]);
        f->c[k] = th_client_new(f->d.endpoint);
        th_curve(NULL, NULL);
    }
    return f->c[k];
}

/* A REQ socket that gets no answer to ping within 700 ms. */
static void
expect_no_service(void *s, const char *endpoint, const char *who)
{
    int t = 700, linger = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(s, endpoint);
    zmq_send(s, "{\"op\":\"ping\"}", 13, ZMQ_DONTWAIT);
    char buf[256];
    int n = zmq_recv(s, buf, sizeof buf, 0);
    zmq_close(s);
    if (n >= 0)
        fail_msg("%s got an answer: %.*s", who, n, buf);
}

static void
test_no_service_without_key(void **state)
{
    fx_t *f = *state;
    /* no CURVE at all */
    expect_no_service(zmq_socket(th_zctx(), ZMQ_REQ), f->d.endpoint,
                      "a client without CURVE");
    /* a valid key pair that is not in the allow-list */
    void *s = zmq_socket(th_zctx(), ZMQ_REQ);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, pub[K_SERVER], 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub[K_STRANGER], 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec[K_STRANGER], 40);
    expect_no_service(s, f->d.endpoint, "a key not in the allow-list");
    /* a listed key that believes in another server key */
    s = zmq_socket(th_zctx(), ZMQ_REQ);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, pub[K_STRANGER], 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub[K_AGENT1], 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec[K_AGENT1], 40);
    expect_no_service(s, f->d.endpoint, "a client with a wrong server key");
    /* and a listed client is served */
    cJSON_Delete(th_ok(cl(f, K_AGENT1), "{\"op\":\"ping\"}"));
}

static void
test_roles(void **state)
{
    fx_t *f = *state;
    th_expect_error(cl(f, K_AGENT1), "forbidden", "{\"op\":\"stats\"}");
    th_expect_error(cl(f, K_AGENT1), "forbidden", "{\"op\":\"export\"}");
    th_expect_error(cl(f, K_OPS), "forbidden",
                    "{\"op\":\"choose\",\"bucket\":\"code\"}");
    th_expect_error(cl(f, K_FEEDBACK), "forbidden",
                    "{\"op\":\"choose\",\"bucket\":\"code\"}");
    cJSON_Delete(th_ok(cl(f, K_OPS), "{\"op\":\"stats\"}"));
    cJSON_Delete(th_ok(cl(f, K_AGENT1), "{\"op\":\"models\"}"));
    cJSON *r =
        th_ok(cl(f, K_AGENT1), "{\"op\":\"choose\",\"bucket\":\"code\"}");
    char *tok = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    /* another agent may not report on it, nor escalate it; the feedback
     * role may */
    th_expect_error(cl(f, K_AGENT2), "forbidden",
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true}",
                    tok);
    th_expect_error(cl(f, K_AGENT2), "forbidden",
                    "{\"op\":\"choose\",\"bucket\":\"code\","
                    "\"escalates\":\"%s\"}",
                    tok);
    cJSON_Delete(th_ok(cl(f, K_FEEDBACK),
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"correction\"}",
                       tok));
    cJSON_Delete(th_ok(cl(f, K_AGENT1),
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true}",
                       tok));
    /* the export says whose it was */
    r = th_ok(cl(f, K_OPS), "{\"op\":\"export\"}");
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "decisions"), 0);
    assert_string_equal(th_str(d, "client"), "agent1");
    assert_string_equal(th_str(d, "decision_id"), tok);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "corrected")));
    cJSON_Delete(r);
    free(tok);

    /* book (a local decision's events): the agent role only, keyed on the
     * local id and the client's name */
    char book[256];
    snprintf(book, sizeof book,
             "{\"op\":\"book\",\"local\":{\"id\":\"L1\",\"bucket\":"
             "\"code\",\"model\":\"a\",\"time\":%.3f},\"kind\":"
             "\"outcome\",\"success\":true}",
             (double)time(NULL));
    th_expect_error(cl(f, K_OPS), "forbidden", "%s", book);
    th_expect_error(cl(f, K_FEEDBACK), "forbidden", "%s", book);
    r = th_ok(cl(f, K_AGENT1), "%s", book);
    assert_null(cJSON_GetObjectItem(r, "duplicate"));
    cJSON_Delete(r);
    r = th_ok(cl(f, K_AGENT1), "%s", book);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
    r = th_ok(cl(f, K_AGENT2), "%s", book); /* another client's L1 */
    assert_null(cJSON_GetObjectItem(r, "duplicate"));
    cJSON_Delete(r);
    r = th_ok(cl(f, K_OPS), "{\"op\":\"export\"}");
    const cJSON *decs = cJSON_GetObjectItem(r, "decisions");
    int n = cJSON_GetArraySize(decs);
    assert_int_equal(n, 3);
    assert_string_equal(th_str(cJSON_GetArrayItem(decs, 1), "client"),
                        "agent1");
    assert_string_equal(th_str(cJSON_GetArrayItem(decs, 2), "client"),
                        "agent2");
    assert_string_equal(th_str(cJSON_GetArrayItem(decs, 2), "local_id"), "L1");
    cJSON_Delete(r);
}

static void
test_forged_tokens(void **state)
{
    fx_t *f = *state;
    cJSON *r =
        th_ok(cl(f, K_AGENT1), "{\"op\":\"choose\",\"bucket\":\"code\"}");
    char tok[400], bad[400];
    snprintf(tok, sizeof tok, "%s", th_str(r, "decision_id"));
    cJSON_Delete(r);
    size_t n = strlen(tok);
    /* one character changed anywhere: the MAC does not verify */
    for (size_t i = 0; i < n; i += 7) {
        snprintf(bad, sizeof bad, "%s", tok);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        th_expect_error(cl(f, K_AGENT1), "unknown_decision",
                        "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                        "\"kind\":\"outcome\",\"success\":true}",
                        bad);
        th_expect_error(cl(f, K_AGENT1), "unknown_decision",
                        "{\"op\":\"choose\",\"bucket\":\"code\","
                        "\"escalates\":\"%s\"}",
                        bad);
    }
    snprintf(bad, sizeof bad, "%.*s", (int)n - 3, tok); /* truncated */
    th_expect_error(cl(f, K_AGENT1), "unknown_decision",
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true}",
                    bad);
    /* the plain sequence ids of old */
    th_expect_error(cl(f, K_AGENT1), "unknown_decision",
                    "{\"op\":\"feedback\",\"decision_id\":\"0000000000000001\","
                    "\"kind\":\"outcome\",\"success\":true,"
                    "\"cost_usd\":1000000000}");
    /* the genuine one still works, once */
    cJSON_Delete(th_ok(cl(f, K_AGENT1),
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true}",
                       tok));
}

/* The state an absurd report must not move: arms and ledger. */
static char *
state_text(fx_t *f)
{
    cJSON *s = th_ok(cl(f, K_OPS), "{\"op\":\"stats\"}");
    cJSON *keep = cJSON_CreateObject();
    cJSON_AddItemToObject(keep, "budget",
                          cJSON_Duplicate(cJSON_GetObjectItem(s, "budget"), 1));
    cJSON_AddItemToObject(
        keep, "buckets", cJSON_Duplicate(cJSON_GetObjectItem(s, "buckets"), 1));
    char *t = cJSON_PrintUnformatted(keep);
    cJSON_Delete(keep);
    cJSON_Delete(s);
    return t;
}

static void
test_ceilings(void **state)
{
    fx_t *f = *state;
    cJSON *r = th_ok(cl(f, K_AGENT1), "{\"op\":\"choose\",\"bucket\":\"code\","
                                      "\"exclude\":[\"b\"]}");
    char tok[400], model[8];
    snprintf(tok, sizeof tok, "%s", th_str(r, "decision_id"));
    snprintf(model, sizeof model, "%s", th_str(r, "model"));
    cJSON_Delete(r);
    char *before = state_text(f);
    static const char *const absurd[] = {
        "\"success\":true,\"cost_usd\":1000000000",
        "\"success\":true,\"tokens_in\":100000000,\"tokens_out\":10",
        "\"success\":true,\"tokens_in\":10,\"tokens_out\":100000000",
        "\"success\":true,\"latency_ms\":1e12",
        "\"success\":true,\"model\":\"b\"", /* excluded: never offered */
    };
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++)
        th_expect_error(cl(f, K_AGENT1), "invalid_value",
                        "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                        "\"kind\":\"outcome\",%s}",
                        tok, absurd[i]);
    th_expect_error(cl(f, K_AGENT1), "unknown_model",
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true,\"model\":\"zz\"}",
                    tok);
    char *after = state_text(f);
    assert_string_equal(before, after); /* nothing of them applied */
    free(before);
    free(after);
    /* a sane report is taken */
    cJSON_Delete(th_ok(cl(f, K_AGENT1),
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true,"
                       "\"tokens_in\":1000,\"tokens_out\":500}",
                       tok));
}

static void
test_flood(void **state)
{
    fx_t *f = *state;
    int ok = 0, inflight = 0, rate = 0;
    for (int i = 0; i < 150; i++) {
        cJSON *r = th_call(cl(f, K_FLOOD), "{\"op\":\"choose\",\"bucket\":"
                                           "\"code\"}");
        assert_non_null(r);
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
            ok++;
        } else {
            const cJSON *e = cJSON_GetObjectItem(r, "error");
            assert_string_equal(th_str(e, "code"), "rate_limited");
            if (strstr(th_str(e, "message"), "client_inflight"))
                inflight++;
            else if (strstr(th_str(e, "message"), "client_rate_per_s"))
                rate++;
        }
        cJSON_Delete(r);
        if (i % 10 == 0) /* another client is served all along */
            cJSON_Delete(th_ok(cl(f, K_AGENT2),
                               "{\"op\":\"choose\",\"bucket\":\"code\"}"));
    }
    fprintf(stderr,
            "flood: %d served, %d over the in-flight cap, %d over "
            "the rate\n",
            ok, inflight, rate);
    assert_int_equal(ok, 30); /* limits.client_inflight */
    assert_true(inflight > 0 && rate > 0);
    assert_int_equal(ok + inflight + rate, 150);
}

/* Chooses in code as client k; 1 if model m was the choice or a
 * fallback. */
static int
offers(fx_t *f, int k, const char *m)
{
    cJSON *r = th_ok(cl(f, k), "{\"op\":\"choose\",\"bucket\":\"code\"}");
    int seen = strcmp(th_str(r, "model"), m) == 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "fallbacks")) seen |=
        strcmp(x->valuestring, m) == 0;
    cJSON_Delete(r);
    return seen;
}

/* n provider errors from client k on model a (n decisions made first,
 * then the errors reported: more than health.failures). */
static void
fail_a(fx_t *f, int k, int n)
{
    cJSON *r[8];
    for (int i = 0; i < n; i++) {
        r[i] = th_ok(cl(f, k), "{\"op\":\"choose\",\"bucket\":\"code\","
                               "\"exclude\":[\"b\",\"c\"]}");
        assert_string_equal(th_str(r[i], "model"), "a");
    }
    for (int i = 0; i < n; i++) {
        cJSON_Delete(th_ok(cl(f, k),
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"provider_error\",\"error\":\"503\"}",
                           th_str(r[i], "decision_id")));
        cJSON_Delete(r[i]);
    }
}

static const char *
health_of_a(fx_t *f, char *buf)
{
    cJSON *s = th_ok(cl(f, K_OPS), "{\"op\":\"stats\"}");
    snprintf(buf, 32, "%s", th_str(th_arm(s, "code", "a"), "health"));
    cJSON_Delete(s);
    return buf;
}

static void
test_cooldown_needs_two_clients(void **state)
{
    fx_t *f = *state;
    char h[32];
    fail_a(f, K_AGENT1, 6); /* three times health.failures */
    /* agent1 no longer gets a; agent2 still does; a is ok for everyone */
    for (int i = 0; i < 5; i++)
        assert_false(offers(f, K_AGENT1, "a"));
    assert_true(offers(f, K_AGENT2, "a"));
    assert_string_equal(health_of_a(f, h), "ok");
    /* a second client's errors corroborate: a cools down for all */
    fail_a(f, K_AGENT2, 2);
    assert_string_equal(health_of_a(f, h), "cooldown");
    assert_false(offers(f, K_FLOOD, "a"));
}

#define ONE_MODEL                                                              \
    "\"models\":{\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"      \
    "\"price_out_per_mtok\":1}},\"buckets\":{\"x\":{\"models\":[\"a\"]}}"

static void
test_insecure_endpoint_refused(void **state)
{
    fx_t *f = *state;
    char cmd[2048], out[4096];
    th_daemon_t d;
    th_setup(&d, "{" ONE_MODEL "}");
    snprintf(cmd, sizeof cmd,
             "%s --config %s --state-dir %s --listen tcp://0.0.0.0:0 2>&1",
             th_need("bursard"), d.config, d.state);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "not a loopback or ipc endpoint"));
    th_write_config(&d, "{" ONE_MODEL ",\"insecure\":true}");
    snprintf(cmd, sizeof cmd,
             "timeout -s TERM 1 %s --config %s --state-dir %s "
             "--listen tcp://0.0.0.0:0 2>&1",
             th_need("bursard"), d.config, d.state);
    th_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "WARNING: INSECURE"));
    /* it says what the unauthenticated get: the operator's ops too */
    assert_non_null(strstr(out, "admin ops (adjust, reset, mark)"));
    th_cleanup(&d);
    /* the state directory of the CURVE daemon: 0700, its files 0600 */
    snprintf(cmd, sizeof cmd, "stat -c '%%a %%n' %s %s/*", f->d.state,
             f->d.state);
    th_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "700 "));
    assert_null(strstr(out, "644 "));
    assert_non_null(strstr(out, "600 "));
}

/* Writes the allow-list: the group's clients, then extra lines. */
static void
write_clients(const char *extra)
{
    char path[600];
    snprintf(path, sizeof path, "%s/clients", keydir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "# test allow-list\n%s agent1 agent\n%s agent2 agent\n"
            "%s fbk feedback\n%s ops operator\n%s flood agent\n%s",
            pub[K_AGENT1], pub[K_AGENT2], pub[K_FEEDBACK], pub[K_OPS],
            pub[K_FLOOD], extra);
    fclose(f);
}

/* Sends SIGHUP and waits (up to 20 s) until the log shows the reload
 * done: n lines containing what. */
static void
hup(fx_t *f, const char *what, int n)
{
    th_signal(&f->d, SIGHUP);
    for (int i = 0; i < 400; i++) {
        char cmd[1200], out[64];
        snprintf(cmd, sizeof cmd, "grep -c '%s' %s", what, f->d.log);
        th_run(cmd, out, sizeof out);
        if (atoi(out) >= n)
            return;
        usleep(50 * 1000);
    }
    fail_msg("no \"%s\" in %s after SIGHUP", what, f->d.log);
}

/* SIGHUP reloads the allow-list: an added key is served, a removed one
 * loses service (on its open connection too), and an invalid list keeps
 * the old one. */
static void
test_allow_list_reload(void **state)
{
    fx_t *f = *state;
    cJSON_Delete(th_ok(cl(f, K_FLOOD), "{\"op\":\"ping\"}"));
    char extra[200];
    snprintf(extra, sizeof extra, "%s stranger operator\n", pub[K_STRANGER]);
    write_clients(extra);
    hup(f, "clients in the allow-list", 2);
    cJSON_Delete(th_ok(cl(f, K_STRANGER), "{\"op\":\"stats\"}"));
    /* the name flood given to another key: flood's open connection is
     * known by its key, not its name, and loses service */
    snprintf(extra, sizeof extra, "%s flood agent\n", pub[K_STRANGER]);
    char path0[600];
    snprintf(path0, sizeof path0, "%s/clients", keydir);
    FILE *fr = fopen(path0, "w");
    fprintf(fr, "%s agent1 agent\n%s ops operator\n%s", pub[K_AGENT1],
            pub[K_OPS], extra);
    fclose(fr);
    hup(f, "clients in the allow-list", 3);
    th_expect_error(cl(f, K_FLOOD), "forbidden", "{\"op\":\"ping\"}");
    /* flood removed (its line rewritten to a key nobody holds) */
    char path[600];
    snprintf(path, sizeof path, "%s/clients", keydir);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "%s agent1 agent\n%s ops operator\n", pub[K_AGENT1],
            pub[K_OPS]);
    fclose(fp);
    hup(f, "clients in the allow-list", 4);
    th_expect_error(cl(f, K_FLOOD), "forbidden", "{\"op\":\"ping\"}");
    /* a malformed list: the old one stays */
    write_clients("not-a-key someone agent\n");
    hup(f, "keeping the old one", 1);
    cJSON_Delete(th_ok(cl(f, K_OPS), "{\"op\":\"ping\"}"));
    th_expect_error(cl(f, K_FLOOD), "forbidden", "{\"op\":\"ping\"}");
    char cmd[1200], out[8192];
    snprintf(cmd, sizeof cmd, "cat %s", f->d.log);
    th_run(cmd, out, sizeof out);
    assert_non_null(
        strstr(out, "clients:7: \"not-a-key\" is not a public key"));
    write_clients("");
}

/* A bad allow-list or key file stops bursard at start, naming the file
 * and line. */
static void
test_startup_errors(void **state)
{
    fx_t *f = *state;
    char cmd[2400], out[4096], extra[200];
    th_stop(&f->d);
    snprintf(extra, sizeof extra, "%s again agent\n", pub[K_AGENT1]);
    write_clients(extra);
    snprintf(cmd, sizeof cmd, "%s --config %s --state-dir %s --listen %s 2>&1",
             th_need("bursard"), f->d.config, f->d.state, f->d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "clients:7: the key of \"again\" is listed "
                                "twice (also agent1)"));
    write_clients("x y z w\n");
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "clients:7: expected 3 fields"));
    snprintf(extra, sizeof extra, "%s ag3 admin\n", pub[K_STRANGER]);
    write_clients(extra);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "unknown role \"admin\""));
    write_clients("");
    /* a secret key readable by others */
    char key[600];
    snprintf(key, sizeof key, "%s/server.key", keydir);
    chmod(key, 0644);
    assert_int_equal(th_run(cmd, out, sizeof out), 1);
    chmod(key, 0600);
    assert_non_null(strstr(out, "must not be readable by others"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_service_without_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ceilings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cooldown_needs_two_clients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_insecure_endpoint_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_startup_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
