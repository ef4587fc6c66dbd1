/*
 * test_ctl_config.c - configuration validation: the default is valid,
 * defaults fill absent keys, and every kind of problem is reported with
 * its JSON path, all of them in one pass; the reference in
 * docs/controller.md is the table's own output.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/cfg.h"

static void
test_default_valid(void **state)
{
    (void)state;
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    const char *d = cfg_default_json();
    assert_int_equal(cfg_parse(d, strlen(d), &c, &pr), 0);
    assert_int_equal(pr.n, 0);
    assert_true(c->n_models >= 5);
    assert_true(c->n_buckets >= 4);
    assert_true(cfg_bucket_find(c, "code") >= 0);
    assert_true(cfg_model_find(c, "gpt-4o-mini") >= 0);
    assert_string_equal(c->listen[0], "tcp://127.0.0.1:7878");
    assert_true(c->budget.limit_usd == 50);
    int m = cfg_model_find(c, "gpt-4o");
    assert_true(cfg_model_cost(&c->models[m], 1e6, 0) == 2.5);
    cfg_destroy(&c);
    assert_null(c);
}

static void
test_minimal_defaults(void **state)
{
    (void)state;
    const char *j = "{\"models\":{\"m\":{\"provider\":\"openai\","
                    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2}},"
                    "\"buckets\":{\"b\":{\"models\":[\"m\"]}}}";
    cfg_t *c = NULL;
    assert_int_equal(cfg_parse(j, strlen(j), &c, NULL), 0);
    assert_int_equal(c->n_listen, 1);
    assert_true(c->decision_ttl_s == 3600);
    assert_true(c->buckets[0].prior_alpha == 1);
    assert_string_equal(c->models[0].model, "m");
    assert_string_equal(c->models[0].base_url, "https://api.openai.com/v1");
    assert_int_equal(c->unknown_action, CFG_UNKNOWN_ERROR);
    cfg_destroy(&c);
}

/* Parses j, expects failure, and that each of want[] occurs in some
 * problem line. Returns the number of problems. */
static size_t
expect_problems(const char *j, const char *const *want)
{
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    assert_int_equal(cfg_parse(j, strlen(j), &c, &pr), BURSAR_ECONFIG);
    assert_null(c);
    for (const char *const *w = want; *w; w++) {
        int found = 0;
        for (size_t i = 0; i < pr.n; i++)
            if (strstr(pr.msg[i], *w))
                found = 1;
        if (!found) {
            for (size_t i = 0; i < pr.n; i++)
                fprintf(stderr, "  problem: %s\n", pr.msg[i]);
            fail_msg("no problem mentions \"%s\"", *w);
        }
    }
    size_t n = pr.n;
    cfg_problems_clear(&pr);
    return n;
}

static void
test_all_problems(void **state)
{
    (void)state;
    const char *j =
        "{\"listen\":[\"http://x\", 5],"
        " \"colour\":\"blue\","
        " \"models\":{\"m\":{\"provider\":\"azure\",\"price_in_per_mtok\":-1,"
        "   \"price_out_per_mtok\":\"1\", \"extra\":1},"
        "   \"n\":{\"provider\":\"openai\",\"price_in_per_mtok\":1}},"
        " \"buckets\":{\"b\":{\"models\":[\"m\",\"zz\",\"m\",7],"
        "   \"prior\":{\"alpha\":0,\"beta\":1},"
        "   \"budget\":{\"limit_usd\":-5}},"
        "   \"c\":{\"models\":\"m\"},"
        "   \"d\":{\"models\":[\"m\",\"n\"],\"latency_slo_ms\":\"x\"}},"
        " \"budget\":{\"limit_usd\":-1,\"window_s\":0},"
        " \"explore_floor\":0.6,"
        " \"decision_ttl_s\":-3,"
        " \"unknown_bucket\":{\"action\":\"maybe\"},"
        " \"expiry\":{\"outcome\":\"yes\"},"
        " \"health\":{\"failures\":1.5},"
        " \"store\":{\"sync\":\"never\"}}";
    const char *const want[] = {
        "$.listen[0]: endpoint \"http://x\" must start with tcp://",
        "$.listen[1]: must be a string",
        "$.colour: unknown key",
        "$.models.m.provider: must be \"openai\" or \"anthropic\"",
        "$.models.m.price_in_per_mtok: must not be negative",
        "$.models.m.price_out_per_mtok: must be a number",
        "$.models.m.extra: unknown key",
        "$.models.n.price_out_per_mtok: is required",
        "$.buckets.b.models[1]: unknown model \"zz\"",
        "$.buckets.b.models[2]: model \"m\" is listed twice",
        "$.buckets.b.models[3]: must be a model name",
        "$.buckets.b.prior.alpha: must be positive",
        "$.buckets.b.budget.limit_usd: must not be negative",
        "$.buckets.c.models: must be an array",
        "$.buckets.d.latency_slo_ms: must be a number",
        "$.buckets.d: explore_floor 0.6 times 2 models exceeds 1",
        "$.budget.limit_usd: must not be negative",
        "$.budget.window_s: must be positive",
        "$.decision_ttl_s: must be positive",
        "$.unknown_bucket.action: must be \"error\" or \"create\"",
        "$.expiry.outcome: must be \"none\" or \"failure\"",
        "$.health.failures: must be a whole number",
        "$.store.sync: must be \"full\" or \"nometasync\"",
        NULL};
    assert_true(expect_problems(j, want) >= 23);
}

static void
test_structural(void **state)
{
    (void)state;
    const char *const w1[] = {"$: invalid JSON near line 2", NULL};
    expect_problems("{\n  \"models\": ,\n}", w1);
    const char *const w2[] = {"$: must be an object", NULL};
    expect_problems("[1]", w2);
    const char *const w3[] = {"$.models: is required", "$.buckets: is required",
                              NULL};
    expect_problems("{}", w3);
    const char *const w4[] = {"$.unknown_bucket.template: is required", NULL};
    expect_problems("{\"models\":{\"m\":{\"provider\":\"openai\","
                    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2}},"
                    "\"buckets\":{},\"unknown_bucket\":{\"action\":"
                    "\"create\"}}",
                    w4);
    /* not a JSON path's problem: the file and the reason, no "$: " */
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    assert_int_equal(cfg_load_file("/nonexistent/bursar.json", &c, &pr),
                     BURSAR_EIO);
    assert_int_equal(pr.n, 1);
    assert_string_equal(pr.msg[0], "cannot read /nonexistent/bursar.json: "
                                   "No such file or directory");
    cfg_problems_clear(&pr);
}

static void
test_template(void **state)
{
    (void)state;
    const char *j = "{\"models\":{\"m\":{\"provider\":\"anthropic\","
                    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2}},"
                    "\"buckets\":{},\"unknown_bucket\":{\"action\":"
                    "\"create\",\"max_buckets\":3,\"template\":{\"models\":"
                    "[\"m\"],\"half_life_s\":60}}}";
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    assert_int_equal(cfg_parse(j, strlen(j), &c, &pr), 0);
    assert_int_equal(c->unknown_action, CFG_UNKNOWN_CREATE);
    assert_int_equal(c->max_buckets, 3);
    assert_int_equal(c->bucket_template.n_models, 1);
    assert_true(c->bucket_template.half_life_s == 60);
    assert_string_equal(c->models[0].base_url, "https://api.anthropic.com/v1");
    cfg_destroy(&c);
}

#define M2                                                                     \
    "\"models\":{\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"      \
    "\"price_out_per_mtok\":2},\"b\":{\"provider\":\"openai\","                \
    "\"price_in_per_mtok\":3,\"price_out_per_mtok\":4}}"

/* Review findings: duplicate keys, dual_step 0 with ts-budget, a bucket cap
 * above the global one, max_buckets below the configured buckets. */
static void
test_gaps(void **state)
{
    (void)state;
    const char *const w1[] = {"$.models.a: defined twice",
                              "$.buckets.x: defined twice", NULL};
    expect_problems("{\"models\":{\"a\":{\"provider\":\"openai\","
                    "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"
                    "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":5,"
                    "\"price_out_per_mtok\":6}},"
                    "\"buckets\":{\"x\":{\"models\":[\"a\"]},"
                    "\"x\":{\"models\":[\"a\"],\"prior\":{\"alpha\":9,"
                    "\"beta\":1}}}}",
                    w1);
    const char *const w2[] = {"$.policy.dual_step: must be > 0", NULL};
    expect_problems("{" M2 ",\"buckets\":{\"x\":{\"models\":[\"a\"]}},"
                    "\"policy\":{\"name\":\"ts-budget\",\"dual_step\":0}}",
                    w2);
    const char *const w3[] = {"$.buckets.y: budget.limit_usd 80 exceeds the "
                              "global limit_usd 50",
                              NULL};
    expect_problems("{" M2 ",\"budget\":{\"limit_usd\":50},\"buckets\":{"
                    "\"x\":{\"models\":[\"a\"],\"budget\":{\"limit_usd\":"
                    "50}},\"y\":{\"models\":[\"b\"],\"budget\":{"
                    "\"limit_usd\":80}}}}",
                    w3);
    const char *const w4[] = {"$.unknown_bucket.max_buckets: is 1, below the "
                              "2 configured buckets",
                              NULL};
    expect_problems("{" M2 ",\"buckets\":{\"x\":{\"models\":[\"a\"]},"
                    "\"y\":{\"models\":[\"b\"]}},\"unknown_bucket\":{"
                    "\"action\":\"error\",\"max_buckets\":1}}",
                    w4);
    /* the same without the faults is accepted */
    const char *ok = "{" M2 ",\"budget\":{\"limit_usd\":50},\"buckets\":{"
                     "\"x\":{\"models\":[\"a\"],\"budget\":{\"limit_usd\":"
                     "50}},\"y\":{\"models\":[\"b\"]}},\"unknown_bucket\":{"
                     "\"action\":\"error\",\"max_buckets\":2},\"policy\":{"
                     "\"name\":\"ts-budget\","
                     "\"dual_step\":0.5}}";
    cfg_t *c = NULL;
    cfg_problems_t pr = {0};
    int rc = cfg_parse(ok, strlen(ok), &c, &pr);
    for (size_t i = 0; i < pr.n; i++)
        fprintf(stderr, "  problem: %s\n", pr.msg[i]);
    cfg_problems_clear(&pr);
    assert_int_equal(rc, 0);
    cfg_destroy(&c);
}

/* Every default of the table, on a configuration that sets none. */
static void
test_table_defaults(void **state)
{
    (void)state;
    const char *j = "{" M2 ",\"buckets\":{\"x\":{\"models\":[\"a\",\"b\"],"
                    "\"budget\":{\"limit_usd\":1}}}}";
    cfg_t *c = NULL;
    assert_int_equal(cfg_parse(j, strlen(j), &c, NULL), 0);
    assert_null(c->state_dir);
    assert_string_equal(c->models[0].api_key_env, "");
    assert_int_equal(c->models[1].provider, CFG_PROVIDER_OPENAI);
    const cfg_bucket_t *b = &c->buckets[0];
    assert_true(b->prior_alpha == 1 && b->prior_beta == 1);
    assert_true(b->half_life_s == 0 && b->latency_slo_ms == 0);
    assert_true(b->expected_tokens_in == 1000);
    assert_true(b->expected_tokens_out == 500);
    assert_int_equal(b->has_budget, 1);
    assert_true(b->budget.window_s == 86400); /* the global window */
    assert_int_equal(c->max_buckets, 1024);
    assert_true(c->budget.limit_usd == 0 && c->budget.window_s == 86400);
    assert_true(c->budget_prior_rate == 1 && c->explore_floor == 0);
    assert_int_equal(c->expiry_outcome, CFG_EXPIRY_NONE);
    assert_int_equal(c->expiry_cost, CFG_EXPIRY_COST_EXPECTED);
    assert_string_equal(c->policy_name, "ts-budget");
    assert_true(c->dual_step == 0.01);
    assert_int_equal(c->seed, 0);
    assert_int_equal(c->health_failures, 3);
    assert_true(c->health_cooldown_s == 30 && c->health_max_cooldown_s == 600);
    assert_true(c->latency_window_s == 300 && c->latency_quantile == 0.95);
    assert_int_equal(c->latency_min_samples, 5);
    assert_int_equal(c->map_size_mb, 8192);
    assert_int_equal(c->nometasync, 0);
    assert_int_equal(c->batch_max, 512);
    assert_true(c->retention_s == 30 * 86400.0);
    assert_int_equal(c->max_message_bytes, 65536);
    cfg_destroy(&c);
}

/* A value of the wrong JSON type names the path and the expected type,
 * at any depth (the unknown-bucket template included). */
static void
test_table_types(void **state)
{
    (void)state;
    const char *const want[] = {
        "$.budget.limit_usd: must be a number, got a string",
        "$.store.batch_max: must be an integer, got a string",
        "$.expiry.cost: must be \"expected\" or \"zero\", got a number",
        "$.state_dir: must be a string, got a boolean",
        "$.health: must be an object, got a number",
        "$.buckets.x.prior: must be an object, got an array",
        "$.unknown_bucket.template.half_life_s: must be a number, got null",
        "$.unknown_bucket.template.prior.gamma: unknown key \"gamma\"",
        "$.buckets.x.budget.limit_usd: is required",
        "$.listen: must be an array of endpoints, got a string",
        NULL};
    expect_problems("{" M2 ",\"budget\":{\"limit_usd\":\"50\"},"
                    "\"store\":{\"batch_max\":\"many\"},"
                    "\"expiry\":{\"cost\":0},\"state_dir\":true,"
                    "\"health\":3,\"listen\":\"tcp://a:1\","
                    "\"buckets\":{\"x\":{\"models\":[\"a\"],\"prior\":[],"
                    "\"budget\":{\"window_s\":60}}},"
                    "\"unknown_bucket\":{\"action\":\"create\",\"template\":"
                    "{\"models\":[\"b\"],\"half_life_s\":null,"
                    "\"prior\":{\"gamma\":1}}}}",
                    want);
}

/* A value out of its range names the range. */
static void
test_table_ranges(void **state)
{
    (void)state;
    const char *const want[] = {
        "$.limits.max_message_bytes: must be in [256, 67108864], got 100",
        "$.latency.quantile: must be in (0, 1], got 0",
        "$.explore_floor: must be in [0, 1], got 1.5",
        "$.policy.dual_step: must not be negative, got -0.5",
        "$.latency.min_samples: must be positive, got 0",
        "$.health.failures: is too large: 4.29497e+09",
        "$.buckets.x.models: must hold 1 to 64 model names, got 0",
        "$.policy.name: is too long (at most 63 bytes)",
        NULL};
    expect_problems(
        "{" M2 ",\"limits\":{\"max_message_bytes\":100},"
        "\"latency\":{\"quantile\":0,\"min_samples\":0},"
        "\"explore_floor\":1.5,\"health\":{\"failures\":4294967296},"
        "\"policy\":{\"dual_step\":-0.5,\"name\":\"" /* 64 bytes */
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"},"
        "\"buckets\":{\"x\":{\"models\":[]}}}",
        want);
    /* the bounds themselves, where they are included */
    const char *ok = "{" M2 ",\"limits\":{\"max_message_bytes\":256},"
                     "\"latency\":{\"quantile\":1},\"explore_floor\":0.5,"
                     "\"buckets\":{\"x\":{\"models\":[\"a\",\"b\"]}}}";
    cfg_t *c = NULL;
    assert_int_equal(cfg_parse(ok, strlen(ok), &c, NULL), 0);
    assert_int_equal(c->max_message_bytes, 256);
    cfg_destroy(&c);
}

/* A model's strings travel in the models reply (proto_model_t): longer
 * than the codec carries is refused here, never cut on the wire. */
static void
test_model_string_lengths(void **state)
{
    (void)state;
    char url[600], key[80], j[1024];
    memset(url, 'u', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    memset(key, 'K', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(j, sizeof j,
             "{\"models\":{\"a\":{\"provider\":\"openai\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2,"
             "\"base_url\":\"%s\",\"api_key_env\":\"%s\"}},"
             "\"buckets\":{\"x\":{\"models\":[\"a\"]}}}",
             url, key);
    static const char *const want[] = {
        "$.models.a.base_url: is too long (at most 511 bytes)",
        "$.models.a.api_key_env: is too long (at most 63 bytes)", NULL};
    expect_problems(j, want);
    static const char *const want_empty[] = {"$.models.a.model: is empty",
                                             NULL};
    expect_problems("{\"models\":{\"a\":{\"provider\":\"openai\","
                    "\"model\":\"\",\"price_in_per_mtok\":1,"
                    "\"price_out_per_mtok\":2}},"
                    "\"buckets\":{\"x\":{\"models\":[\"a\"]}}}",
                    want_empty);
}

#define REF_BEGIN "<!-- config-reference:begin -->\n"
#define REF_END   "<!-- config-reference:end -->"

/* docs/controller.md's reference is exactly cfg_print_reference's output
 * (blank lines next to the markers aside): the docs cannot drift. */
static void
test_reference_in_docs(void **state)
{
    (void)state;
    const char *src = getenv("BURSAR_SOURCE_DIR");
    if (!src)
        fail_msg("BURSAR_SOURCE_DIR is not set (ctest sets it)");
    char *path = bursar_sprintf("%s/docs/controller.md", src);
    char *doc = NULL;
    if (bursar_read_file(path, &doc, NULL) != 0)
        fail_msg("cannot read %s", path);
    char *b = strstr(doc, REF_BEGIN), *e = b ? strstr(b, REF_END) : NULL;
    if (!b || !e)
        fail_msg("%s: no " REF_BEGIN "... " REF_END " section", path);
    b += strlen(REF_BEGIN);
    while (*b == '\n')
        b++;
    while (e > b + 1 && e[-1] == '\n' && e[-2] == '\n')
        e--;
    char *gen = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&gen, &len);
    assert_non_null(f);
    cfg_print_reference(f);
    fclose(f);
    if (len != (size_t)(e - b) || memcmp(gen, b, len) != 0) {
        FILE *o = fopen("config-reference.md", "w");
        if (o) {
            fputs(gen, o);
            fclose(o);
        }
        fail_msg("%s: the configuration reference differs from "
                 "cfg_print_reference(); paste config-reference.md (written "
                 "in the test's directory) between the markers",
                 path);
    }
    free(gen);
    free(doc);
    free(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_valid),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_all_problems),
        cmocka_unit_test(test_structural),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_table_defaults),
        cmocka_unit_test(test_table_types),
        cmocka_unit_test(test_table_ranges),
        cmocka_unit_test(test_reference_in_docs),
        cmocka_unit_test(test_model_string_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
