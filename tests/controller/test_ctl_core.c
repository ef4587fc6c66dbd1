/*
 * test_ctl_core.c - the controller's core (ctl.h) driven directly, for
 * what the daemon cannot show deterministically: when a choose may be
 * answered before its commit, and that no id is issued twice across a
 * lost batch (a crash, a failed commit).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "controller/ctl.h"
#include "controller/token.h"

static const char *const core_config =
    "{\"models\":{\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2},\"b\":{\"provider\":\"openai\","
    "\"price_in_per_mtok\":3,\"price_out_per_mtok\":4}},"
    "\"buckets\":{\"x\":{\"models\":[\"a\",\"b\"]}},\"policy\":{\"seed\":3}}";

static char dir[64];

static ctl_t *
open_ctl(void)
{
    cfg_t *cfg = NULL;
    assert_int_equal(cfg_parse(core_config, strlen(core_config), &cfg, NULL),
                     0);
    ctl_options_t o = {dir, 0, 0};
    ctl_t *c = NULL;
    char err[256];
    if (ctl_open(&c, cfg, &o, err, sizeof err) != 0)
        fail_msg("ctl_open: %s", err);
    return c;
}

/* One choose: its early flag, and its id (from the token). */
static uint64_t
choose(ctl_t *c, int *early)
{
    static const char rq[] = "{\"op\":\"choose\",\"bucket\":\"x\"}";
    char *r = ctl_handle(c, rq, sizeof rq - 1, NULL, early);
    cJSON *j = cJSON_Parse(r);
    free(r);
    const cJSON *id = cJSON_GetObjectItem(j, "decision_id");
    assert_true(cJSON_IsString(id));
    uint8_t key[TOKEN_KEY_BYTES];
    char err[256];
    assert_int_equal(token_key_load(dir, key, err, sizeof err), 0);
    token_t tk;
    assert_int_equal(token_decode(key, id->valuestring, &tk), 0);
    cJSON_Delete(j);
    return tk.id;
}

static void
test_early_only_below_durable_mark(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bursar-core-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ctl_t *c = open_ctl();
    int early;
    uint64_t max_early = 0;
    /* a fresh store: nothing durable, no early reply in the first batch */
    assert_int_equal(ctl_begin(c), 0);
    for (int i = 0; i < 5; i++) {
        choose(c, &early);
        assert_int_equal(early, 0);
    }
    assert_int_equal(ctl_commit(c), 0);
    /* then early, and the batch is lost (the process dies: no commit) */
    assert_int_equal(ctl_begin(c), 0);
    for (int i = 0; i < 5; i++) {
        uint64_t id = choose(c, &early);
        assert_int_equal(early, 1);
        if (id > max_early)
            max_early = id;
    }
    ctl_destroy(&c); /* aborts the batch's transaction, as kill -9 would */
    c = open_ctl();
    assert_int_equal(ctl_begin(c), 0);
    for (int i = 0; i < 5; i++) {
        uint64_t id = choose(c, &early);
        if (id <= max_early)
            fail_msg("id %llu issued again after a lost batch (answered up "
                     "to %llu)",
                     (unsigned long long)id, (unsigned long long)max_early);
        assert_int_equal(early, 0); /* above the durable mark again */
    }
    assert_int_equal(ctl_commit(c), 0);
    ctl_destroy(&c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_only_below_durable_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
