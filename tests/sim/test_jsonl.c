/* test_jsonl.c - the generic JSONL reader and load_path. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim/dataset.h"
#include "sim/load.h"
#include "tests/sim/simtest.h"

static void
test_valid(void **state)
{
    (void)state;
    const char *s =
        "{\"id\": \"r1\", \"bucket\": \"code\", \"outcomes\": {\"a\": 1, "
        "\"b\": 0.25}, \"cost_usd\": {\"a\": 0.01, \"b\": 0.001}, "
        "\"latency_ms\": {\"a\": 800}}\n"
        "\n"
        "   \r\n"
        "{\"bucket\": \"chat\", \"outcomes\": {\"a\": null, \"b\": 1, \"c\": "
        "\"error\"}, \"cost_usd\": {\"b\": 0.002}}\r\n"
        "{\"id\": 7, \"bucket\": \"code\", \"outcomes\": {\"c\": 0}, "
        "\"cost_usd\": {\"c\": 0.0005, \"a\": 9}}";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_jsonl_buffer(ds, s, strlen(s), "t.jsonl", &e), 0);
    dataset_finish(ds);
    assert_int_equal(ds->n_rows, 3);
    assert_int_equal(ds->n_models, 3);
    assert_int_equal(ds->n_buckets, 2);
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    int c = dataset_find_model(ds, "c");
    assert_int_equal(ds->status[dataset_idx(ds, 0, a)], DATASET_OK);
    assert_near(ds->outcome[dataset_idx(ds, 0, b)], 0.25, 1e-12);
    assert_near(ds->cost[dataset_idx(ds, 0, a)], 0.01, 1e-12);
    assert_int_equal(ds->status[dataset_idx(ds, 0, c)], DATASET_MISSING);
    assert_int_equal(ds->status[dataset_idx(ds, 1, a)], DATASET_MISSING);
    assert_int_equal(ds->status[dataset_idx(ds, 1, c)], DATASET_ERROR);
    assert_int_equal(ds->status[dataset_idx(ds, 2, a)], DATASET_MISSING);
    assert_int_equal(ds->status[dataset_idx(ds, 2, c)], DATASET_OK);
    assert_int_equal(ds->model_n[c], 1);
    assert_near(ds->model_quality[b], 0.625, 1e-12);
    dataset_destroy(&ds);
}

static void
expect_error(const char *s, int code, const char *frag1, const char *frag2)
{
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_jsonl_buffer(ds, s, strlen(s), "bad.jsonl", &e),
                     code);
    if (!strstr(e.msg, frag1) || (frag2 && !strstr(e.msg, frag2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, frag1,
                 frag2 ? frag2 : "");
    dataset_destroy(&ds);
}

#define OK_LINE                                                                \
    "{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, \"cost_usd\": {\"a\": "     \
    "0.1}}\n"

static void
test_errors(void **state)
{
    (void)state;
    expect_error(OK_LINE OK_LINE "{\"bucket\": \"x\", \"outcomes\": {\n",
                 SERR_PARSE, "bad.jsonl:3", "not valid JSON");
    expect_error(OK_LINE "[1, 2]\n", SERR_FORMAT, "bad.jsonl:2",
                 "not a JSON object");
    expect_error(OK_LINE "{\"outcomes\": {\"a\": 1}, \"cost_usd\": {\"a\": "
                         "1}}\n",
                 SERR_FORMAT, "bad.jsonl:2", "field 'bucket': missing");
    expect_error("{\"bucket\": 3, \"outcomes\": {}}\n", SERR_FORMAT,
                 "bad.jsonl:1", "field 'bucket'");
    expect_error("{\"bucket\": \"x\"}\n", SERR_FORMAT, "bad.jsonl:1",
                 "field 'outcomes': missing");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"gpt\": 1.5}, "
                 "\"cost_usd\": {\"gpt\": 0.1}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'outcomes.gpt'");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"gpt\": \"yes\"}, "
                 "\"cost_usd\": {\"gpt\": 0.1}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'outcomes.gpt'");
    expect_error(OK_LINE OK_LINE OK_LINE
                 "{\"bucket\": \"x\", \"outcomes\": {\"a\": 1, \"b\": 0}, "
                 "\"cost_usd\": {\"a\": 0.1}}\n",
                 SERR_FORMAT, "bad.jsonl:4", "field 'cost_usd.b': missing");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                 "\"cost_usd\": {\"a\": -1}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'cost_usd.a'");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                 "\"cost_usd\": [1]}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'cost_usd'");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                 "\"cost_usd\": {\"a\": 1}, \"latency_ms\": {\"a\": \"x\"}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'latency_ms.a'");
    expect_error("{\"bucket\": \"x\", \"id\": [], \"outcomes\": {}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'id'");
}

/* "verdicts": 0, 1, true, false, null (none); kept beside a numeric
 * outcome only; anything else names the field. */
static void
test_verdicts(void **state)
{
    (void)state;
    const char *s =
        "{\"bucket\": \"x\", \"outcomes\": {\"a\": 1, \"b\": 0, \"c\": "
        "\"error\"}, \"cost_usd\": {\"a\": 0.1, \"b\": 0.2}, "
        "\"verdicts\": {\"a\": false, \"b\": 1, \"c\": 1}}\n"
        "{\"bucket\": \"x\", \"outcomes\": {\"a\": 0, \"b\": 0.5}, "
        "\"cost_usd\": {\"a\": 0.1, \"b\": 0.2}, "
        "\"verdicts\": {\"a\": true, \"b\": null}}\n"
        "{\"bucket\": \"x\", \"outcomes\": {\"a\": 0}, "
        "\"cost_usd\": {\"a\": 0.1}, \"verdicts\": null}\n";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_jsonl_buffer(ds, s, strlen(s), "v.jsonl", &e), 0);
    dataset_finish(ds);
    int a = dataset_find_model(ds, "a"), b = dataset_find_model(ds, "b");
    int c = dataset_find_model(ds, "c");
    assert_non_null(ds->verdict);
    assert_near(ds->verdict[dataset_idx(ds, 0, a)], 0.0, 0.0);
    assert_near(ds->verdict[dataset_idx(ds, 0, b)], 1.0, 0.0);
    assert_true(isnan(ds->verdict[dataset_idx(ds, 0, c)])); /* error cell */
    assert_near(ds->verdict[dataset_idx(ds, 1, a)], 1.0, 0.0);
    assert_true(isnan(ds->verdict[dataset_idx(ds, 1, b)]));
    assert_true(isnan(ds->verdict[dataset_idx(ds, 2, a)]));
    dataset_destroy(&ds);

    ds = dataset_new();
    assert_int_equal(
        load_jsonl_buffer(ds, OK_LINE, strlen(OK_LINE), "v.jsonl", &e), 0);
    dataset_finish(ds);
    assert_null(ds->verdict);
    dataset_destroy(&ds);

    expect_error(OK_LINE "{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                         "\"cost_usd\": {\"a\": 1}, \"verdicts\": [1]}\n",
                 SERR_FORMAT, "bad.jsonl:2", "field 'verdicts': not an object");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                 "\"cost_usd\": {\"a\": 1}, \"verdicts\": {\"a\": 0.5}}\n",
                 SERR_FORMAT, "bad.jsonl:1", "field 'verdicts.a'");
    expect_error("{\"bucket\": \"x\", \"outcomes\": {\"a\": 1}, "
                 "\"cost_usd\": {\"a\": 1}, \"verdicts\": {\"z\": \"yes\"}}\n",
                 SERR_FORMAT, "bad.jsonl:1",
                 "'verdicts.z': not 0, 1, true, false or null");
}

static void
write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void
test_load_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/bursar-sim-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s/b.jsonl", dir);
    snprintf(p2, sizeof p2, "%s/a.csv", dir);
    snprintf(p3, sizeof p3, "%s/notes.txt", dir);
    write_file(p1, OK_LINE OK_LINE);
    write_file(p2, "eval_name,a,z,a|total_cost,z|total_cost\n"
                   "y,0,1,0.2,0.3\n");
    write_file(p3, "ignored");
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_path(ds, dir, &e), 0);
    dataset_finish(ds);
    assert_int_equal(ds->n_rows, 3);
    assert_int_equal(ds->n_models, 2);
    /* a.csv first (name order): bucket y, then x */
    assert_string_equal(ds->bucket[ds->row_bucket[0]], "y");
    int z = dataset_find_model(ds, "z");
    assert_int_equal(ds->status[dataset_idx(ds, 1, z)], DATASET_MISSING);
    dataset_destroy(&ds);

    ds = dataset_new();
    assert_int_equal(load_path(ds, p3, &e), SERR_ARG);
    assert_non_null(strstr(e.msg, "notes.txt"));
    char nope[600];
    snprintf(nope, sizeof nope, "%s/nope.csv", dir);
    assert_int_equal(load_path(ds, nope, &e), SERR_IO);
    assert_non_null(strstr(e.msg, "nope.csv"));
    dataset_destroy(&ds);

    unlink(p1);
    unlink(p2);
    ds = dataset_new();
    assert_int_equal(load_path(ds, dir, &e), SERR_EMPTY);
    dataset_destroy(&ds);
    unlink(p3);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_path),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
