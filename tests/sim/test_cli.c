/*
 * test_cli.c - the bursar-sim program end to end: bad input gives a clear
 * error and an exit status (never a crash), --json gives the documented
 * fields, --plot writes an SVG. Runs $BURSAR_BIN_DIR/bursar-sim.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/sim/simtest.h"

static char dir[] = "/tmp/bursar-sim-cli-XXXXXX";
static char bin[1024];

static void
write_file(const char *name, const char *s)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* Runs bursar-sim with args (a shell fragment, run in dir); returns the
 * exit status and the captured stdout (+ stderr when err is set). */
static int
run_sim_env(const char *env, const char *args, int err, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && env %s %s %s %s", dir, env, bin, args,
             err ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
run_sim(const char *args, int err, char **out)
{
    return run_sim_env("", args, err, out);
}

static int
setup(void **state)
{
    (void)state;
    const char *bd = getenv("BURSAR_BIN_DIR");
    snprintf(bin, sizeof bin, "%s/bursar-sim", bd ? bd : "bin");
    /* a missing program fails the test (a skip would count as passed) */
    if (access(bin, X_OK) != 0)
        fail_msg("bursar-sim is missing: expected an executable at %s "
                 "(build it, or set BURSAR_BIN_DIR to the bin/ directory of "
                 "a build)",
                 bin);
    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s failed", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
expect_fail(const char *args, int status, const char *frag)
{
    char *out;
    int st = run_sim(args, 1, &out);
    if (st != status || !strstr(out, frag))
        fail_msg("'%s': status %d, output '%s' (wanted %d and '%s')", args, st,
                 out, status, frag);
    free(out);
}

static void
test_bad_input(void **state)
{
    (void)state;
    write_file("bad.csv", "eval_name,m,m|total_cost\nx,1,0.1\ny,2,0.1\n");
    write_file("bad.jsonl", "{\"bucket\": \"x\", \"outcomes\": {\"m\": 1}, "
                            "\"cost_usd\": {\"m\": 1}}\n{oops}\n");
    write_file("bad.json", "{\"requests\": 10, \"traffic\": {\"x\": 1}, "
                           "\"models\": {\"m\": {\"success\": 3, "
                           "\"cost_usd\": 1}}}");
    write_file("ok.jsonl", "{\"bucket\": \"x\", \"outcomes\": {\"m\": 1}, "
                           "\"cost_usd\": {\"m\": 1}}\n");
    expect_fail("--data bad.csv", 1, "bad.csv:3: field 'm'");
    expect_fail("--data bad.jsonl", 1, "bad.jsonl:2: not valid JSON");
    expect_fail("--scenario bad.json", 1, "field 'models.m.success'");
    expect_fail("--data missing.csv", 1, "missing.csv: cannot open");
    expect_fail("--data notes.txt", 1, "notes.txt");
    expect_fail("", 2, "no input");
    /* the next option is not a value */
    expect_fail("--data ok.jsonl --policy --json", 2, "--policy needs a value");
    expect_fail("evaluate --log --policy ts", 2, "--log needs a value");
    expect_fail("--data ok.jsonl --policy nope", 2, "unknown policy 'nope'");
    expect_fail("--data ok.jsonl --policy fixed:zz", 2, "'zz' is not in");
    expect_fail("--data ok.jsonl --seeds 0", 2, "--seeds");
    expect_fail("--data ok.jsonl --budget-per-request x", 2,
                "--budget-per-request");
    expect_fail("--data ok.jsonl --bogus", 2, "unknown option '--bogus'");
    expect_fail("--data ok.jsonl --plot out.pdf", 2, "out.pdf");
    expect_fail("--data ok.jsonl --validator noisy:0.1", 2, "--validator");
    expect_fail("--data ok.jsonl --validator maybe", 2, "maybe");
    expect_fail("--data ok.jsonl --escalations 8", 2, "--escalations");
    expect_fail("--data ok.jsonl --validator column", 1, "no verdict columns");
}

static const char *scen =
    "{\"requests\": 3000, \"traffic\": {\"a\": 1, \"b\": 2},"
    " \"models\": {"
    "  \"big\": {\"cost_usd\": 0.01, \"success\": 0.9},"
    "  \"small\": {\"cost_usd\": 0.001, \"success\": {\"a\": 0.8, \"b\": "
    "0.3}}}}";

static void
test_json(void **state)
{
    (void)state;
    write_file("s.json", scen);
    char *out;
    int st = run_sim("--scenario s.json --policy ts-budget,cheapest "
                     "--budget-per-request 0.004 --seeds 2 --json "
                     "--plot fig.svg --frontier=3",
                     0, &out);
    assert_int_equal(st, 0);
    cJSON *o = cJSON_Parse(out);
    if (!o)
        fail_msg("not JSON: %.300s", out);
    const char *keys[] = {"requests",
                          "quality",
                          "cost_usd",
                          "cost_per_request_usd",
                          "model_share",
                          "best_static_quality",
                          "oracle_quality",
                          "oracle_cost_per_request_usd",
                          "models",
                          "policies",
                          "best_static_frontier"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(o, keys[i]))
            fail_msg("no '%s' in the JSON", keys[i]);
    assert_near(cJSON_GetObjectItem(o, "requests")->valuedouble, 3000, 0);
    const cJSON *ms = cJSON_GetObjectItem(o, "model_share");
    assert_non_null(cJSON_GetObjectItem(ms, "overall"));
    assert_non_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(ms, "per_bucket"), "b"));
    const cJSON *pols = cJSON_GetObjectItem(o, "policies");
    assert_int_equal(cJSON_GetArraySize(pols), 2);
    const cJSON *p0 = cJSON_GetArrayItem(pols, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p0, "frontier")),
                     3);
    assert_near(cJSON_GetObjectItem(p0, "runs")->valuedouble, 2, 0);
    /* budget 0.004: best static mixes big and small; oracle ~0.99+ */
    double sq = cJSON_GetObjectItem(o, "best_static_quality")->valuedouble;
    assert_true(sq > 0.5 && sq < 0.9);
    assert_true(cJSON_GetObjectItem(o, "oracle_quality")->valuedouble > 0.9);
    const cJSON *big =
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "models"), "big");
    assert_near(cJSON_GetObjectItem(big, "cost_per_request_usd")->valuedouble,
                0.01, 1e-12);
    cJSON_Delete(o);
    free(out);

    char p[1200];
    snprintf(p, sizeof p, "%s/fig.svg", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char head[64] = "";
    assert_non_null(fgets(head, sizeof head, f));
    fclose(f);
    assert_non_null(strstr(head, "<?xml"));

    /* the table names the references */
    st = run_sim("--scenario s.json --policy all --budget-per-request 0.004", 0,
                 &out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "best static (LP)"));
    assert_non_null(strstr(out, "oracle"));
    assert_non_null(strstr(out, "ucb1"));
    free(out);
}

/* A cascade: the JSON carries the reference and each policy's cascade
 * figures; the table prints them. */
static void
test_cascade(void **state)
{
    (void)state;
    write_file("s.json", scen);
    char *out;
    int st = run_sim("--scenario s.json --policy ts-budget "
                     "--budget-per-request 0.004 --escalations 1 "
                     "--validator noisy:0.1,0.1 --json --frontier=2",
                     0, &out);
    assert_int_equal(st, 0);
    cJSON *o = cJSON_Parse(out);
    if (!o)
        fail_msg("not JSON: %.300s", out);
    assert_near(cJSON_GetObjectItem(o, "escalations")->valuedouble, 1, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "validator")->valuestring,
                        "noisy:0.1,0.1");
    double cq =
        cJSON_GetObjectItem(o, "hindsight_cascade_quality")->valuedouble;
    double sq = cJSON_GetObjectItem(o, "best_static_quality")->valuedouble;
    /* two independent models: a second try can only add quality */
    assert_true(cq > sq);
    assert_true(cJSON_GetArraySize(
                    cJSON_GetObjectItem(o, "hindsight_cascade_frontier")) > 2);
    const cJSON *c = cJSON_GetObjectItem(o, "cascade");
    assert_non_null(c);
    double steps = cJSON_GetObjectItem(c, "steps")->valuedouble;
    double esc = cJSON_GetObjectItem(c, "escalated")->valuedouble;
    assert_near(steps, 1.0 + esc, 1e-9); /* at most one escalation */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "step_share")),
                     2);
    assert_non_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(c, "per_bucket"), "b"));
    cJSON_Delete(o);
    free(out);
    st = run_sim("--scenario s.json --policy ts-budget "
                 "--budget-per-request 0.004 --escalations 1",
                 0, &out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "hindsight cascade (LP)"));
    assert_non_null(strstr(out, "1st ok"));
    assert_non_null(strstr(out, "step 2:"));
    free(out);

    /* long names in the reference's orders (a buffer sized by guess would
     * overflow: the sanitizer build runs this too) */
    char name[3][201], line[2048], *text = calloc(1, 16384);
    for (int k = 0; k < 3; k++) {
        memset(name[k], 'a' + k, 200);
        name[k][200] = '\0';
    }
    for (int i = 0; i < 8; i++) {
        snprintf(line, sizeof line,
                 "{\"bucket\": \"%s\", \"outcomes\": {\"%s\": %d, \"%s\": "
                 "%d, \"%s\": 1}, \"cost_usd\": {\"%s\": 0.001, \"%s\": "
                 "0.002, \"%s\": 0.01}}\n",
                 i % 2 ? "p" : "q", name[0], i % 3 == 0, name[1], i % 2,
                 name[2], name[0], name[1], name[2]);
        strcat(text, line);
    }
    write_file("long.jsonl", text);
    free(text);
    st = run_sim("--data long.jsonl --escalations 2 --budget-per-request "
                 "0.004",
                 1, &out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, name[2]));
    assert_non_null(strstr(out, " > "));
    free(out);
}

/* --plot checks what it needs before any data is read: missing.csv does
 * not exist, so reading it first would exit 1 "cannot open". */
static void
test_plot_checks(void **state)
{
    (void)state;
    char *out, env[1400];
    /* no gnuplot on the PATH: exit 2 naming it and the package */
    int st = run_sim_env("PATH=/nonexistent",
                         "--data missing.csv --plot out.png", 1, &out);
    if (st != 2 || !strstr(out, "gnuplot, which is not on the PATH") ||
        !strstr(out, "gnuplot-nox") || strstr(out, "cannot open"))
        fail_msg("no gnuplot: status %d: %s", st, out);
    free(out);
    /* a gnuplot without the pngcairo terminal */
    write_file("gnuplot", "#!/bin/sh\nexit 1\n");
    char p[1200];
    snprintf(p, sizeof p, "%s/gnuplot", dir);
    assert_int_equal(chmod(p, 0755), 0);
    snprintf(env, sizeof env, "PATH=%s", dir);
    st = run_sim_env(env, "--data missing.csv --plot out.png", 1, &out);
    if (st != 2 || !strstr(out, "has no pngcairo terminal") ||
        strstr(out, "cannot open"))
        fail_msg("gnuplot without pngcairo: status %d: %s", st, out);
    free(out);
    /* a directory that is not there, for either kind */
    expect_fail("--data missing.csv --plot nodir/fig.svg", 2,
                "cannot write in nodir");
    expect_fail("--data missing.csv --plot nodir/fig.png", 2,
                "cannot write in nodir");
    /* the replay's own errors come after, as before */
    expect_fail("--data missing.csv --plot fig.svg", 1, "missing.csv");
}

/* --policy all,models over 12 models: 20 series, each its own colour and
 * dashes in the SVG (the curves of the first panel). */
static void
test_plot_series(void **state)
{
    (void)state;
    char *sc = calloc(1, 8192), m[256];
    strcat(sc, "{\"requests\": 400, \"traffic\": {\"a\": 1}, \"models\": {");
    for (int i = 0; i < 12; i++) {
        snprintf(m, sizeof m, "%s\"m%d\": {\"cost_usd\": %g, \"success\": %g}",
                 i ? ", " : "", i, 0.001 * (i + 1), 0.3 + 0.05 * i);
        strcat(sc, m);
    }
    strcat(sc, "}}");
    write_file("many.json", sc);
    free(sc);
    char *out;
    int st = run_sim("--scenario many.json --policy all,models "
                     "--budget-per-request 0.004 --plot many.svg",
                     0, &out);
    assert_int_equal(st, 0);
    free(out);
    char p[1200];
    snprintf(p, sizeof p, "%s/many.svg", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    /* the bold curves: polylines without an opacity, 20 per panel */
    char line[1 << 16], look[20][96];
    int n = 0;
    while (n < 20 && fgets(line, sizeof line, f)) {
        if (strncmp(line, "<polyline", 9) != 0 || strstr(line, "opacity"))
            continue;
        char color[16] = "", dash[32] = "solid";
        const char *c = strstr(line, "stroke=\"");
        const char *d = strstr(line, "stroke-dasharray=\"");
        assert_non_null(c);
        sscanf(c + 8, "%15[^\"]", color);
        if (d)
            sscanf(d + 18, "%31[^\"]", dash);
        snprintf(look[n], sizeof look[n], "%s %s", color, dash);
        for (int j = 0; j < n; j++)
            if (strcmp(look[j], look[n]) == 0)
                fail_msg("series %d and %d both %s", j, n, look[n]);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 20);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),   cmocka_unit_test(test_json),
        cmocka_unit_test(test_cascade),     cmocka_unit_test(test_plot_checks),
        cmocka_unit_test(test_plot_series),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
