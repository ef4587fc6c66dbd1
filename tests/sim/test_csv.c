/* test_csv.c - the RFC 4180 reader and the RouterBench CSV loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim/csv.h"
#include "sim/dataset.h"
#include "sim/load.h"
#include "tests/sim/simtest.h"

static csv_t *
open_str(const char *s)
{
    return csv_new(s, strlen(s), "t.csv");
}

static void
test_quoting(void **state)
{
    (void)state;
    const char *s = "a,\"b,c\",\"say \"\"hi\"\"\"\r\n"
                    "\"multi\nline\r\nfield\",,x\n"
                    "last,\"\",\"no newline at end\"";
    csv_t *c = open_str(s);
    serr_t e = {0, ""};
    assert_int_equal(csv_next(c, &e), 1);
    assert_int_equal(csv_n_fields(c), 3);
    assert_string_equal(csv_field(c, 0), "a");
    assert_string_equal(csv_field(c, 1), "b,c");
    assert_string_equal(csv_field(c, 2), "say \"hi\"");
    assert_int_equal(csv_line(c), 1);
    assert_int_equal(csv_next(c, &e), 1);
    assert_int_equal(csv_n_fields(c), 3);
    assert_string_equal(csv_field(c, 0), "multi\nline\r\nfield");
    assert_string_equal(csv_field(c, 1), "");
    assert_string_equal(csv_field(c, 2), "x");
    assert_int_equal(csv_line(c), 2);
    assert_int_equal(csv_next(c, &e), 1);
    assert_int_equal(csv_line(c), 5); /* the quoted field spanned 3 lines */
    assert_string_equal(csv_field(c, 0), "last");
    assert_string_equal(csv_field(c, 1), "");
    assert_string_equal(csv_field(c, 2), "no newline at end");
    assert_string_equal(csv_field(c, 7), ""); /* past the end */
    assert_int_equal(csv_next(c, &e), 0);
    csv_destroy(&c);
    assert_null(c);
}

static void
test_bom_and_trailing_comma(void **state)
{
    (void)state;
    const char *s = "\xEF\xBB\xBFh1,h2,\n1,2,\n";
    csv_t *c = open_str(s);
    assert_int_equal(csv_next(c, NULL), 1);
    assert_int_equal(csv_n_fields(c), 3);
    assert_string_equal(csv_field(c, 0), "h1");
    assert_string_equal(csv_field(c, 2), "");
    assert_int_equal(csv_next(c, NULL), 1);
    assert_string_equal(csv_field(c, 1), "2");
    assert_int_equal(csv_next(c, NULL), 0);
    csv_destroy(&c);
}

static void
test_errors(void **state)
{
    (void)state;
    serr_t e = {0, ""};
    csv_t *c = open_str("a,b\nc,\"open\nstill open");
    assert_int_equal(csv_next(c, &e), 1);
    assert_int_equal(csv_next(c, &e), SERR_PARSE);
    assert_non_null(strstr(e.msg, "t.csv:2"));
    assert_non_null(strstr(e.msg, "field 2"));
    csv_destroy(&c);

    c = open_str("x\n\"ab\"c,d\n");
    assert_int_equal(csv_next(c, &e), 1);
    assert_int_equal(csv_next(c, &e), SERR_PARSE);
    assert_non_null(strstr(e.msg, "t.csv:2"));
    assert_non_null(strstr(e.msg, "after a closing quote"));
    csv_destroy(&c);
    csv_destroy(&c); /* safe on NULL */
}

#define RB_HEADER                                                              \
    ",sample_id,prompt,eval_name,m1,m2,m2|model_response,m1|model_response,"   \
    "m1|total_cost,m2|total_cost,oracle_model_to_route_to\n"

static void
test_routerbench(void **state)
{
    (void)state;
    const char *s = RB_HEADER
        "0,a,\"What, is\n\"\"this\"\"?\",arc,1.0,0.0,\"x,\ny\",z,0.5,0.1,m1\n"
        "1,b,p,mbpp,,1.0,r,\"\",0.4,0.2,m2\n"
        "2,c,p,arc,0.0,1.0,r,r,0.6,0.3,m2\n";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_csv_buffer(ds, s, strlen(s), "rb.csv", &e), 0);
    dataset_finish(ds);
    assert_int_equal(ds->n_rows, 3);
    assert_int_equal(ds->n_models, 2);
    assert_int_equal(ds->n_buckets, 2);
    int m1 = dataset_find_model(ds, "m1"), m2 = dataset_find_model(ds, "m2");
    int arc = dataset_find_bucket(ds, "arc");
    assert_true(m1 >= 0 && m2 >= 0 && arc >= 0);
    /* row 1: m1 has an empty score: no outcome, the row still counts */
    assert_int_equal(ds->status[dataset_idx(ds, 1, m1)], DATASET_MISSING);
    assert_int_equal(ds->status[dataset_idx(ds, 1, m2)], DATASET_OK);
    assert_int_equal(ds->model_n[m1], 2);
    assert_int_equal(ds->model_n[m2], 3);
    assert_near(ds->model_quality[m1], 0.5, 1e-12);
    assert_near(ds->model_cost[m1], 0.55, 1e-12);
    assert_near(ds->bm_quality[arc * 2 + m2], 0.5, 1e-12);
    assert_int_equal(ds->bucket_rows[arc], 2);
    double q, c;
    dataset_oracle(ds, &q, &c);
    /* row0: m1 (0.5); row1: m2 (0.2); row2: m2 (0.3) */
    assert_near(q, 1.0, 1e-12);
    assert_near(c, (0.5 + 0.2 + 0.3) / 3, 1e-12);
    dataset_destroy(&ds);
    assert_null(ds);
}

static void
expect_error(const char *s, int code, const char *frag1, const char *frag2)
{
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_csv_buffer(ds, s, strlen(s), "bad.csv", &e), code);
    if (!strstr(e.msg, frag1) || (frag2 && !strstr(e.msg, frag2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, frag1,
                 frag2 ? frag2 : "");
    dataset_destroy(&ds);
}

static void
test_routerbench_errors(void **state)
{
    (void)state;
    expect_error(RB_HEADER "0,a,p,arc,1.0,0.0,r,r,,0.1,m1\n", SERR_FORMAT,
                 "bad.csv:2", "'m1|total_cost': empty");
    expect_error(RB_HEADER "0,a,p,arc,1.0,0.0,r,r,0.1,0.1,m1\n"
                           "1,a,\"multi\nline\",arc,yes,0.0,r,r,0.1,0.1,m1\n",
                 SERR_FORMAT, "bad.csv:3", "field 'm1'");
    expect_error(RB_HEADER "0,a,p,arc,1.0,0.0,r,r,0.1,-2,m1\n", SERR_FORMAT,
                 "bad.csv:2", "'m2|total_cost'");
    expect_error(RB_HEADER "0,a,p,arc,1.0\n", SERR_FORMAT, "bad.csv:2",
                 "5 fields");
    expect_error(RB_HEADER "0,a,p,,1.0,0.0,r,r,0.1,0.1,m1\n", SERR_FORMAT,
                 "bad.csv:2", "'eval_name'");
    expect_error("a,b,c\n1,2,3\n", SERR_FORMAT, "bad.csv:1", "bucket");
    expect_error("eval_name,m\nx,1\n", SERR_FORMAT, "bad.csv:1", "model");
    expect_error("", SERR_EMPTY, "bad.csv", NULL);
    expect_error(RB_HEADER "0,\"a,p,arc\n", SERR_PARSE, "bad.csv:2", NULL);
}

/* M|verdict beside M and M|total_cost: 0/1 (also 1.0), empty = none; a
 * verdict beside an empty score is dropped; a model without the column
 * has none; bad values name the field. */
static void
test_verdicts(void **state)
{
    (void)state;
    const char *s = "eval_name,m1,m1|total_cost,m1|verdict,m2,m2|total_cost,"
                    "x|verdict\n"
                    "arc,1.0,0.5,0,0.0,0.1,1\n"
                    "arc,0.0,0.5,1.0,1.0,0.1,\n"
                    "arc,1.0,0.5,,1.0,0.1,\n"
                    "arc,,0.5,1,1.0,0.1,\n";
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    assert_int_equal(load_csv_buffer(ds, s, strlen(s), "v.csv", &e), 0);
    dataset_finish(ds);
    assert_int_equal(ds->n_models, 2); /* x|verdict alone is no model */
    assert_non_null(ds->verdict);
    int m1 = dataset_find_model(ds, "m1"), m2 = dataset_find_model(ds, "m2");
    assert_near(ds->verdict[dataset_idx(ds, 0, m1)], 0.0, 0.0);
    assert_near(ds->verdict[dataset_idx(ds, 1, m1)], 1.0, 0.0);
    assert_true(isnan(ds->verdict[dataset_idx(ds, 2, m1)]));
    assert_int_equal(ds->status[dataset_idx(ds, 3, m1)], DATASET_MISSING);
    assert_true(isnan(ds->verdict[dataset_idx(ds, 3, m1)]));
    for (size_t r = 0; r < 4; r++)
        assert_true(isnan(ds->verdict[dataset_idx(ds, r, m2)]));
    dataset_destroy(&ds);

    /* no verdict column, or only empty verdicts: no array */
    ds = dataset_new();
    s = "eval_name,m1,m1|total_cost,m1|verdict\narc,1.0,0.5,\n";
    assert_int_equal(load_csv_buffer(ds, s, strlen(s), "v.csv", &e), 0);
    dataset_finish(ds);
    assert_null(ds->verdict);
    dataset_destroy(&ds);

    expect_error("eval_name,m1,m1|total_cost,m1|verdict\n"
                 "arc,1.0,0.5,1\narc,1.0,0.5,0.5\n",
                 SERR_FORMAT, "bad.csv:3", "field 'm1|verdict': '0.5'");
    expect_error("eval_name,m1,m1|total_cost,m1|verdict\narc,,0.5,yes\n",
                 SERR_FORMAT, "bad.csv:2", "not a verdict (0, 1 or empty)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_bom_and_trailing_comma),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_routerbench),
        cmocka_unit_test(test_routerbench_errors),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
