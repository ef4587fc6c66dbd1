/*
 * test_gateway_cli.c - bursar-gateway's command line and configuration
 * checks (docs/gateway.md, "Running it", "Configuration"), the real
 * program run as a child: --check-config on bad configurations exits 1
 * with a message naming the JSON path (a listen address whose port is
 * not a number up to 65535, curve with one key of two, an empty
 * controller or one without tcp:// or ipc://, a validator of the bucket
 * "", a limit out of range, an unknown key, no keys without
 * allow_anonymous) and a file that is not JSON by its line and column, a
 * bad --listen or --new-key exits 2, --help and --version exit 0, and at
 * start a fallback naming a model the gateway does not know fails,
 * naming fallbacks.BUCKET (or fallback_model). The controller is never
 * reached: the configurations point at a socket nobody listens on.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/agents/util.h"
#include "tests/gateway/gwtest.h"
#include "tests/harness.h"

static char dir[512];

/* 40 characters of Z85, the length of a CURVE key */
#define GW_CLI_Z85 "0123456789abcdefghij0123456789ABCDEFGHIJ"

/* A model table of one model (never called). */
#define GW_CLI_MODELS                                                          \
    "\"models\":{\"m1\":{\"provider\":\"openai\",\"model\":\"m1-up\","         \
    "\"base_url\":\"http://127.0.0.1:9/v1\",\"api_key_env\":"                  \
    "\"BURSAR_GW_CLI_KEY\",\"price_in_per_mtok\":1,"                           \
    "\"price_out_per_mtok\":2}}"

/* A configuration: the controller (a JSON string, quotes included), then
 * more members (",\"k\":v..." or ""), anonymous clients allowed unless
 * anon is 0 (then no "keys" either). Written to dir/NAME.json; the path
 * into path. */
static void
write_config(char *path, size_t cap, const char *name, const char *controller,
             int anon, const char *more)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"controller\":%s,\"spool\":\"%s/%s.spool\",%s,"
             "\"controller_timeout_ms\":100,\"controller_attempts\":1,"
             "\"allow_anonymous\":%s%s}",
             controller, dir, name, GW_CLI_MODELS, anon ? "true" : "false",
             more);
    snprintf(path, cap, "%s/%s.json", dir, name);
    tu_write_file(path, text);
}

/* The controller's endpoint: a socket nobody listens on. */
static const char *
nobody(void)
{
    static char ep[700];
    snprintf(ep, sizeof ep, "\"ipc://%s/nobody.sock\"", dir);
    return ep;
}

static int
setup(void **state)
{
    (void)state;
    th_need("bursar-gateway");
    tu_tmpdir(dir, sizeof dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    return 0;
}

/* The good configuration passes: what the cases below change is what
 * fails them. */
static void
test_check_config_ok(void **state)
{
    (void)state;
    char path[700], out[4096];
    write_config(path, sizeof path, "good", nobody(), 1,
                 ",\"listen\":\"127.0.0.1:8080\",\"validators\":{\"b\":"
                 "\"json\"},\"limits\":{\"max_body_bytes\":1024}");
    assert_int_equal(
        gwt_run(out, sizeof out, "--config '%s' --check-config", path), 0);
    assert_non_null(strstr(out, "ok"));
    /* --listen with a port number is taken */
    assert_int_equal(gwt_run(out, sizeof out,
                             "--config '%s' --listen 127.0.0.1:65535 "
                             "--check-config",
                             path),
                     0);
}

static void
test_check_config_bad(void **state)
{
    (void)state;
    /* the controller (NULL: nobody's), anonymous, more members, what the
     * message must name */
    static const struct {
        const char *controller;
        int anon;
        const char *more, *needle;
    } cases[] = {
        {NULL, 1, ",\"listen\":\"127.0.0.1:99999\"", "listen: "},
        {NULL, 1, ",\"listen\":\"127.0.0.1:http\"", "listen: "},
        {NULL, 1, ",\"listen\":\"127.0.0.1:+80\"", "listen: "},
        {NULL, 1, ",\"listen\":\"127.0.0.1:\"", "listen: "},
        {NULL, 1, ",\"curve\":{\"secret_key\":\"" GW_CLI_Z85 "\"}",
         "curve.server_key: "},
        {NULL, 1, ",\"curve\":{\"server_key\":\"" GW_CLI_Z85 "\"}",
         "curve.secret_key: "},
        {"\"\"", 1, "", "controller: "},
        /* an address without its transport: ZeroMQ needs tcp:// */
        {"\"127.0.0.1:7878\"", 1, "", "controller: "},
        {"\"localhost:7878\"", 1, "", "write tcp://localhost:7878"},
        {NULL, 1, ",\"validators\":{\"\":\"json\"}", "validators.: "},
        {NULL, 1, ",\"limits\":{\"max_body_bytes\":10}",
         "limits.max_body_bytes: "},
        {NULL, 1, ",\"no_such_key\":1", "no_such_key: unknown key"},
        {NULL, 0, "", "keys: "},
        {NULL, 1, ",\"fallback_model\":\"\"", "fallback_model: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[700], out[4096];
        const char *more = cases[i].more;
        write_config(path, sizeof path, "bad",
                     cases[i].controller ? cases[i].controller : nobody(),
                     cases[i].anon, more);
        int st = gwt_run(out, sizeof out, "--config '%s' --check-config", path);
        if (st != 1 || !strstr(out, cases[i].needle))
            fail_msg("case %zu (%s): exit %d, expected 1 with a message "
                     "naming \"%s\": %s",
                     i, more, st, cases[i].needle, out);
        /* the message names the file too */
        assert_non_null(strstr(out, path));
    }
}

/* A configuration that is not JSON: the message says where, by line and
 * column, and names the file. */
static void
test_check_config_malformed(void **state)
{
    (void)state;
    /* the file's text, and where its error is said to be */
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        /* a comma missing at the end of line 2: line 3 is unexpected */
        {"{\n  \"controller\": \"tcp://127.0.0.1:7878\"\n"
         "  \"allow_anonymous\": true\n}\n",
         "line 3, column 3"},
        /* a value missing on line 3 */
        {"{\n  \"controller\": \"tcp://127.0.0.1:7878\",\n"
         "  \"allow_anonymous\": ,\n}\n",
         "line 3, column 22"},
        /* an unterminated object on line 1 */
        {"{\"controller\": \"tcp://127.0.0.1:7878\"", "line 1, column "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[700], out[4096];
        snprintf(path, sizeof path, "%s/malformed.json", dir);
        tu_write_file(path, cases[i].text);
        int st = gwt_run(out, sizeof out, "--config '%s' --check-config", path);
        if (st != 1 || !strstr(out, "malformed JSON") ||
            !strstr(out, cases[i].where) || !strstr(out, path))
            fail_msg("case %zu: exit %d, expected 1 with \"malformed JSON at "
                     "%s\" and the file's path: %s",
                     i, st, cases[i].where, out);
    }
    /* JSON, but not an object */
    char path[700], out[4096];
    snprintf(path, sizeof path, "%s/array.json", dir);
    tu_write_file(path, "[1, 2]\n");
    assert_int_equal(
        gwt_run(out, sizeof out, "--config '%s' --check-config", path), 1);
    assert_non_null(strstr(out, "must be a JSON object"));
}

static void
test_options(void **state)
{
    (void)state;
    char path[700], out[4096];
    write_config(path, sizeof path, "opts", nobody(), 1, "");
    static const char *const listens[] = {"127.0.0.1:99999", "127.0.0.1:http",
                                          "127.0.0.1", "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++) {
        int st = gwt_run(out, sizeof out,
                         "--config '%s' --listen '%s' "
                         "--check-config",
                         path, listens[i]);
        if (st != 2 || !strstr(out, "--listen"))
            fail_msg("--listen %s: exit %d, expected 2 naming --listen: %s",
                     listens[i], st, out);
    }
    assert_int_equal(gwt_run(out, sizeof out, "--new-key 'bad tenant!'"), 2);
    assert_non_null(strstr(out, "tenant"));
    assert_int_equal(gwt_run(out, sizeof out, "--new-key ''"), 2);
    assert_int_equal(gwt_run(out, sizeof out, "--help"), 0);
    assert_int_equal(strncmp(out, "usage: bursar-gateway", 21), 0);
    assert_int_equal(gwt_run(out, sizeof out, "--version"), 0);
    assert_int_equal(strncmp(out, "bursar-gateway ", 15), 0);
    assert_int_equal(gwt_run(out, sizeof out, "--no-such-option"), 2);
    assert_int_equal(gwt_run(out, sizeof out, "--check-config"), 2);
    assert_non_null(strstr(out, "--config"));
}

/* Starts the gateway on a configuration and expects it to exit 1 within
 * 10 s (killed otherwise: a gateway that serves fails the test), its
 * stderr naming needle. */
static void
expect_start_fails(const char *path, const char *needle)
{
    char log[800], port[800];
    snprintf(log, sizeof log, "%s.log", path);
    snprintf(port, sizeof port, "%s.port", path);
    const char *bin = th_need("bursar-gateway");
    char *argv[] = {(char *)bin, "--config",    (char *)path,
                    "--listen",  "127.0.0.1:0", NULL};
    pid_t pid = tu_spawn(argv, NULL, port, log);
    int st = tu_wait(pid, 10000);
    char *err = tu_read_file(log);
    char *out = tu_read_file(port);
    print_message("exit %d; stdout: %s; stderr: %s", st, out ? out : "",
                  err ? err : "");
    if (st != 1 || !err || !strstr(err, needle))
        fail_msg("bursar-gateway on %s: exit %d (-1: still serving after "
                 "10 s), expected 1 with a message naming \"%s\"; stderr: "
                 "%s; stdout: %s",
                 path, st, needle, err ? err : "(none)", out ? out : "");
    free(err);
    free(out);
}

static void
test_unknown_fallback_at_start(void **state)
{
    (void)state;
    char path[700], out[4096];
    /* --check-config reads the file only; the models are known at start */
    write_config(path, sizeof path, "fb", nobody(), 1,
                 ",\"fallbacks\":{\"B\":\"no-such-model\"}");
    assert_int_equal(
        gwt_run(out, sizeof out, "--config '%s' --check-config", path), 0);
    expect_start_fails(path, "fallbacks.B: ");
    write_config(path, sizeof path, "fbm", nobody(), 1,
                 ",\"fallback_model\":\"no-such-model\"");
    expect_start_fails(path, "fallback_model: ");
    /* a known model is fine: the gateway serves (the controller away) */
    write_config(path, sizeof path, "fbok", nobody(), 1,
                 ",\"fallbacks\":{\"B\":\"m1\"}");
    char log[700], port[700];
    snprintf(log, sizeof log, "%s/ok.log", dir);
    snprintf(port, sizeof port, "%s/ok.port", dir);
    char *argv[] = {(char *)th_need("bursar-gateway"),
                    "--config",
                    path,
                    "--listen",
                    "127.0.0.1:0",
                    NULL};
    pid_t pid = tu_spawn(argv, NULL, port, log);
    int served = tu_wait_port(pid, port, 10000) > 0;
    kill(pid, SIGTERM);
    int st = tu_wait(pid, 10000);
    if (!served) {
        char *err = tu_read_file(log);
        fail_msg("bursar-gateway with fallbacks.B = m1 did not serve within "
                 "10 s; stderr: %s",
                 err ? err : "(none)");
    }
    assert_int_equal(st, 0);
    /* its log lines begin with the time (ISO 8601 UTC, milliseconds) */
    char *err = tu_read_file(log);
    assert_non_null(err);
    const char *m = strstr(err, "bursar-gateway: serving http on ");
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    size_t n = sizeof pat - 1;
    if (!m || m - err < (ptrdiff_t)n)
        fail_msg("no start line preceded by a time: %s", err);
    const char *t = m - n; /* where the time must begin: a line's start */
    if (t != err && t[-1] != '\n')
        fail_msg("the start line does not begin with the time: %s", err);
    for (size_t i = 0; i < n; i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)t[i]) : t[i] != pat[i])
            fail_msg("not an ISO 8601 UTC time before the start line: %s", err);
    free(err);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config_ok),
        cmocka_unit_test(test_check_config_bad),
        cmocka_unit_test(test_check_config_malformed),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_unknown_fallback_at_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
