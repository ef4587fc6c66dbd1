/*
 * test_ctl_cli.c - the rough edges of the command lines (issue 13), on the
 * real bursard and bursar:
 *
 *   - an option without its value says "--bucket needs a value" (bursar's
 *     commands and global options, bursard), also when the next word is
 *     an option ("--bucket --json"; bursar-gateway, bursar-mock-provider
 *     too), "--json takes no value";
 *   - an endpoint without its transport ("localhost:7979") is refused
 *     before connecting, suggesting tcp://localhost:7979 (bursar,
 *     $BURSAR_CONTROLLER, bursard --listen, bursar-agent --controller);
 *   - ping, models and choose print readable text, --json the reply;
 *   - a second outcome of another value is a conflict: the reply says so
 *     with the first outcome's reward, which stands; the CLI says so and
 *     exits 1; a resend of the same value stays a plain duplicate;
 *   - bursard's log lines start with an ISO 8601 UTC time, and count in
 *     words ("1 bucket", "stopping after 1 decision since start").
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/harness.h"

static const char *const config =
    "{\"models\":{"
    "\"a\":{\"provider\":\"openai\",\"model\":\"a-upstream\","
    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"
    "\"b\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":10,"
    "\"price_out_per_mtok\":20}},"
    "\"buckets\":{\"code\":{\"models\":[\"a\",\"b\"],"
    "\"expected_tokens_in\":1000,\"expected_tokens_out\":500}},"
    "\"policy\":{\"name\":\"ts\",\"seed\":3}}";

typedef th_fx_t fx_t;

static int
fx_setup(void **state)
{
    *state = th_fx_new(config);
    return 0;
}

static int
fx_teardown(void **state)
{
    th_fx_free(*state);
    return 0;
}

/* Runs bursar against the fixture's daemon with args (stderr too). */
static int
cli(const fx_t *f, const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --controller %s %s 2>&1 </dev/null",
             th_need("bursar"), f->d.endpoint, args);
    return th_run(cmd, out, cap);
}

/* Runs cmd; fails unless it exits status with want in its output. */
static void
expect(const char *cmd, int status, const char *want)
{
    char out[16384], full[2048];
    snprintf(full, sizeof full, "%s 2>&1 </dev/null", cmd);
    int st = th_run(full, out, sizeof out);
    if (st != status || !strstr(out, want))
        fail_msg("%s: status %d (expected %d), output lacks \"%s\":\n%s", cmd,
                 st, status, want, out);
}

/* Every option that takes a value, given none, and options given one
 * they do not take: named, exit 2, before any connection. */
static void
test_option_values(void **state)
{
    (void)state;
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"stats --bucket", "bursar stats: --bucket needs a value\n"},
        {"stats --json=yes", "bursar stats: --json takes no value\n"},
        {"stats --bogus", "bursar stats: unknown option --bogus\n"},
        {"export --since", "bursar export: --since needs a value\n"},
        {"choose code --exclude", "bursar choose: --exclude needs a value\n"},
        {"choose code --escalates", "bursar choose: --escalates needs a"},
        {"choose code --tenant", "bursar choose: --tenant needs a value\n"},
        {"feedback X --reward", "bursar feedback: --reward needs a value\n"},
        {"feedback X --success --cost", "bursar feedback: --cost needs a"},
        {"feedback X --provider-error", "--provider-error needs a value\n"},
        {"feedback X --success --model", "--model needs a value\n"},
        {"feedback X --success --latency-ms", "--latency-ms needs a value"},
        {"feedback X --success --tokens-in", "--tokens-in needs a value"},
        {"feedback X --success --tokens-out", "--tokens-out needs a value"},
        {"ping --json=1", "bursar ping: unexpected argument --json=1"},
        /* the next option is not a value: it used to be taken as one */
        {"stats --bucket --json", "bursar stats: --bucket needs a value\n"},
        {"adjust --amount --reason x", "bursar adjust: --amount needs a"},
        /* a single '-' is a value: a negative amount */
        {"adjust --amount -1.25 --reason", "bursar adjust: --reason needs a"},
        {"choose code --tenant --json", "bursar choose: --tenant needs a"},
    };
    char cmd[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* nothing listens there: a usage error must come first */
        snprintf(cmd, sizeof cmd, "%s --controller ipc:///nonexistent %s",
                 th_need("bursar"), cases[i].args);
        expect(cmd, 2, cases[i].want);
    }
    static const char *const global[][2] = {
        {"--controller", "bursar: --controller needs a value\n"},
        {"--timeout", "bursar: --timeout needs a value\n"},
        {"--key", "bursar: --key needs a value\n"},
        {"--server-key", "bursar: --server-key needs a value\n"},
        {"--help=me", "bursar: --help takes no value\n"},
        {"--controller --timeout 5 ping", "bursar: --controller needs a"},
        {"--controller stats", "bursar: --controller needs a value (it took "
                               "stats, the command, as its value)\n"},
    };
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", th_need("bursar"), global[i][0]);
        expect(cmd, 2, global[i][1]);
    }
    static const char *const daemon[][2] = {
        {"--config", "bursard: --config needs a value\n"},
        {"--state-dir", "bursard: --state-dir needs a value\n"},
        {"--listen", "bursard: --listen needs a value\n"},
        {"--metrics", "bursard: --metrics needs a value\n"},
        {"--check-config", "bursard: --check-config needs a value\n"},
        {"--quiet=1", "bursard: --quiet takes no value\n"},
        {"--frobnicate", "bursard: unknown option --frobnicate\n"},
        {"--config --state-dir X", "bursard: --config needs a value\n"},
    };
    for (size_t i = 0; i < sizeof daemon / sizeof daemon[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", th_need("bursard"), daemon[i][0]);
        expect(cmd, 2, daemon[i][1]);
    }
    /* the other programs, the same shared parsing (bursar_getopt_long) */
    static const char *const other[][3] = {
        {"bursar-gateway", "--config --check",
         "a value is missing for --config"},
        {"bursar-mock-provider", "--script --port 1",
         "a value is missing for --script"},
        /* and a script that cannot be read: why, status 2 */
        {"bursar-mock-provider", "--script /nonexistent/s.json",
         "cannot read script /nonexistent/s.json: No such file or directory"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", th_need(other[i][0]), other[i][1]);
        expect(cmd, 2, other[i][2]);
    }
}

/* An endpoint without its transport: the programs name it and suggest the
 * endpoint meant, before connecting (bursar used to say "Invalid
 * argument"; bursar-agent "controller unreachable"). */
static void
test_endpoints(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --controller localhost:7979 ping",
             th_need("bursar"));
    expect(cmd, 2,
           "bursar: --controller: \"localhost:7979\" has no transport: write "
           "tcp://localhost:7979");
    snprintf(cmd, sizeof cmd, "BURSAR_CONTROLLER=127.0.0.1:7878 %s stats",
             th_need("bursar"));
    expect(cmd, 2,
           "bursar: $BURSAR_CONTROLLER: \"127.0.0.1:7878\" has no "
           "transport: write tcp://127.0.0.1:7878");
    snprintf(cmd, sizeof cmd, "%s --controller /tmp/bursar.sock ping",
             th_need("bursar"));
    expect(cmd, 2, "write ipc:///tmp/bursar.sock");
    snprintf(cmd, sizeof cmd, "%s --controller tcp://localhost ping",
             th_need("bursar"));
    expect(cmd, 2, "needs a host and a port: tcp://HOST:PORT");
    snprintf(cmd, sizeof cmd, "%s --controller http://localhost:7878 ping",
             th_need("bursar"));
    expect(cmd, 2, "transport http is not one bursar speaks");
    snprintf(cmd, sizeof cmd, "%s --listen localhost:7979", th_need("bursard"));
    expect(cmd, 2,
           "bursard: --listen: \"localhost:7979\" has no transport: "
           "write tcp://localhost:7979");
    snprintf(cmd, sizeof cmd,
             "echo '{\"id\":\"t\",\"bucket\":\"code\",\"messages\":[]}' | "
             "%s --controller localhost:7979 --quiet",
             th_need("bursar-agent"));
    expect(cmd, 2, /* a configuration error of the agent's */
           "\"localhost:7979\" has no transport: write "
           "tcp://localhost:7979");
}

/* ping, models and choose in words; --json gives the reply as before. */
static void
test_readable(void **state)
{
    fx_t *f = *state;
    char out[16384], want[800];
    assert_int_equal(cli(f, "ping", out, sizeof out), 0);
    snprintf(want, sizeof want, "bursard at %s answered in ", f->d.endpoint);
    if (strncmp(out, want, strlen(want)) != 0 || !strstr(out, " ms\n"))
        fail_msg("ping: %s", out);
    assert_int_equal(cli(f, "ping --json", out, sizeof out), 0);
    cJSON *r = cJSON_Parse(out);
    assert_non_null(r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    cJSON_Delete(r);

    assert_int_equal(cli(f, "models", out, sizeof out), 0);
    static const char *const rows[] = {
        "model  provider    upstream model  ",
        "\na      openai      a-upstream      ",
        "1.00        2.00  ok\n",
        "\nb      anthropic   b               ",
        "10.00       20.00  ok\n",
        "\nbucket  tokens in/out  models\n",
        "\ncode      1000/500     a, b\n",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!strstr(out, rows[i]))
            fail_msg("models lacks \"%s\":\n%s", rows[i], out);
    assert_null(strstr(out, "{"));
    assert_int_equal(cli(f, "models --json", out, sizeof out), 0);
    r = cJSON_Parse(out);
    assert_non_null(r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "models")), 2);
    cJSON_Delete(r);

    assert_int_equal(cli(f, "choose code --exclude b", out, sizeof out), 0);
    static const char *const lines[] = {
        "model:       a\n",      "\ndecision:    ",
        "\npropensity:  1\n",    "\nexpected:    $0.002000\n",
        "\nfallbacks:   none\n", "\nflags:       none\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(out, lines[i]))
            fail_msg("choose lacks \"%s\":\n%s", lines[i], out);
    /* the decision id is the token feedback takes */
    char id[512] = "";
    assert_int_equal(sscanf(strstr(out, "decision:"), "decision: %511s", id),
                     1);
    char args[800];
    snprintf(args, sizeof args, "feedback %s --success", id);
    assert_int_equal(cli(f, args, out, sizeof out), 0);
    assert_string_equal(out, "ok\n");
    assert_int_equal(cli(f, "choose code --json", out, sizeof out), 0);
    r = cJSON_Parse(out);
    assert_non_null(r);
    assert_non_null(cJSON_GetObjectItem(r, "decision_id"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "fallbacks")),
                     1);
    cJSON_Delete(r);
}

/* A second outcome of another value: a conflict, the first kept. */
static void
test_conflict(void **state)
{
    fx_t *f = *state;
    cJSON *r = th_ok(f->c, "{\"op\":\"choose\",\"bucket\":\"code\"}");
    char *id = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    r = th_ok(f->c,
              "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
              "\"outcome\",\"reward\":0.75,\"cost_usd\":0.01}",
              id);
    assert_null(cJSON_GetObjectItem(r, "duplicate"));
    assert_null(cJSON_GetObjectItem(r, "conflict"));
    cJSON_Delete(r);
    cJSON *s0 = th_ok(f->c, "{\"op\":\"stats\"}");
    /* the same again (a resend): a plain duplicate */
    r = th_ok(f->c,
              "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
              "\"outcome\",\"reward\":0.75,\"cost_usd\":0.01}",
              id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    assert_null(cJSON_GetObjectItem(r, "conflict"));
    cJSON_Delete(r);
    /* another value: duplicate (old clients read it so), conflict, and
     * the value that stands */
    r = th_ok(f->c,
              "{\"op\":\"feedback\",\"decision_id\":\"%s\",\"kind\":"
              "\"outcome\",\"success\":false,\"cost_usd\":0.5}",
              id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "conflict")));
    assert_true(th_num(r, "recorded_reward") == 0.75);
    cJSON_Delete(r);
    /* nothing changed */
    cJSON *s1 = th_ok(f->c, "{\"op\":\"stats\"}");
    char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(s0, "buckets"));
    char *b = cJSON_PrintUnformatted(cJSON_GetObjectItem(s1, "buckets"));
    assert_string_equal(a, b);
    assert_true(th_num(cJSON_GetObjectItem(s1, "budget"), "spent_usd") ==
                th_num(cJSON_GetObjectItem(s0, "budget"), "spent_usd"));
    free(a);
    free(b);
    cJSON_Delete(s0);
    cJSON_Delete(s1);

    /* the CLI: a conflict on stderr, exit 1; the same value: duplicate */
    char out[4096], args[800];
    snprintf(args, sizeof args, "feedback %s --success", id);
    assert_int_equal(cli(f, args, out, sizeof out), 1);
    if (!strstr(out, "bursar feedback: conflict: decision ") ||
        !strstr(out, "already has an outcome, reward 0.75; this one (reward "
                     "1) was not recorded\n"))
        fail_msg("conflict: %s", out);
    snprintf(args, sizeof args, "feedback %s --reward 0.75", id);
    assert_int_equal(cli(f, args, out, sizeof out), 0);
    assert_string_equal(out, "ok (duplicate: already recorded)\n");
    free(id);
}

/* bursard's log lines begin with the time: 2026-12-02T07:40:00.123Z. */
static void
test_log_timestamps(void **state)
{
    fx_t *f = *state;
    FILE *lf = fopen(f->d.log, "r");
    assert_non_null(lf);
    char line[2048];
    int found = 0;
    time_t now = time(NULL);
    while (fgets(line, sizeof line, lf)) {
        const char *m = strstr(line, "bursard: listening on ");
        if (!m)
            continue;
        found = 1;
        /* YYYY-MM-DDTHH:MM:SS.mmmZ, a space, then the message */
        static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
        size_t n = sizeof pat - 1;
        if (m != line + n)
            fail_msg("no time before the message: %s", line);
        for (size_t i = 0; i < n; i++)
            if (pat[i] == 'd' ? !isdigit((unsigned char)line[i])
                              : line[i] != pat[i])
                fail_msg("not an ISO 8601 UTC time at %zu: %s", i, line);
        /* and the time of this run (UTC), within a day */
        struct tm tm = {0};
        assert_int_equal(
            sscanf(line, "%4d-%2d-%2dT", &tm.tm_year, &tm.tm_mon, &tm.tm_mday),
            3);
        struct tm utc;
        gmtime_r(&now, &utc);
        assert_true(abs(tm.tm_year - (utc.tm_year + 1900)) <= 1);
    }
    fclose(lf);
    assert_true(found);
}

/* bursard's counts in words: "1 bucket, 1 model", "stopping after 1
 * decision since start" (the run's, not the store's); --check-config's
 * "ok (1 model, 1 bucket)". */
static void
test_log_counts(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{\"models\":{\"m\":{\"provider\":\"openai\","
                 "\"price_in_per_mtok\":1,\"price_out_per_mtok\":1}},"
                 "\"buckets\":{\"b\":{\"models\":[\"m\"]}}}");
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "%s --check-config %s 2>&1", th_need("bursard"),
             d.config);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    if (!strstr(out, ": ok (1 model, 1 bucket)\n"))
        fail_msg("--check-config: %s", out);
    th_start(&d);
    snprintf(cmd, sizeof cmd, "%s --controller %s choose b 2>&1",
             th_need("bursar"), d.endpoint);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    assert_int_equal(th_stop(&d), 0);
    snprintf(cmd, sizeof cmd, "cat %s", d.log);
    th_run(cmd, out, sizeof out);
    if (!strstr(out, "; 1 bucket, 1 model;") ||
        !strstr(out, "bursard: stopping after 1 decision since start\n"))
        fail_msg("the log's counts:\n%s", out);
    th_cleanup(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_values),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_log_counts),
        cmocka_unit_test_setup_teardown(test_readable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_conflict, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_log_timestamps, fx_setup,
                                        fx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_kill_all();
    return rc;
}
