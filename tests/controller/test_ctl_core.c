/*
 * test_ctl_core.c - the controller's core (ctl.h) driven directly, for
 * what the daemon cannot show deterministically: when a choose may be
 * answered before its commit, that no id is issued twice across a lost
 * batch (a crash, a failed commit), and that a record rebuilt from its
 * token keeps what off-policy evaluation reads (offered set, cascade step
 * and the decision it escalates); and the tokens themselves: the link
 * they carry, and tokens of the version before it still accepted; the
 * tenant of a decision (choose, book) in export and in its store record,
 * pruned with the decision.
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

#include <sodium.h>

#include "controller/ctl.h"
#include "controller/store.h"
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

/* The reply to one request (parsed; the caller deletes it). */
static cJSON *
call(ctl_t *c, const char *rq)
{
    char *r = ctl_handle(c, rq, strlen(rq), NULL, NULL);
    cJSON *j = cJSON_Parse(r);
    free(r);
    assert_non_null(j);
    return j;
}

static void
test_rebuilt_record_keeps_link(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bursar-core-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ctl_t *c = open_ctl();
    char rq[1024], parent[400], child[400], model[64];
    /* the first step, committed */
    assert_int_equal(ctl_begin(c), 0);
    cJSON *j = call(c, "{\"op\":\"choose\",\"bucket\":\"x\"}");
    snprintf(parent, sizeof parent, "%s",
             cJSON_GetObjectItem(j, "decision_id")->valuestring);
    snprintf(model, sizeof model, "%s",
             cJSON_GetObjectItem(j, "model")->valuestring);
    cJSON_Delete(j);
    assert_int_equal(ctl_commit(c), 0);
    /* its escalation, answered, then lost with its batch */
    assert_int_equal(ctl_begin(c), 0);
    snprintf(rq, sizeof rq,
             "{\"op\":\"choose\",\"bucket\":\"x\",\"exclude\":[\"%s\"],"
             "\"escalates\":\"%s\"}",
             model, parent);
    j = call(c, rq);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    snprintf(child, sizeof child, "%s",
             cJSON_GetObjectItem(j, "decision_id")->valuestring);
    cJSON_Delete(j);
    ctl_destroy(&c);
    /* its feedback rebuilds it from the token */
    c = open_ctl();
    assert_int_equal(ctl_begin(c), 0);
    snprintf(rq, sizeof rq,
             "{\"op\":\"feedback\",\"decision_id\":\"%s\","
             "\"kind\":\"outcome\",\"success\":true}",
             child);
    cJSON_Delete(call(c, rq));
    assert_int_equal(ctl_commit(c), 0);
    assert_int_equal(ctl_begin(c), 0);
    j = call(c, "{\"op\":\"export\"}");
    assert_int_equal(ctl_commit(c), 0);
    const cJSON *d = cJSON_GetObjectItem(j, "decisions");
    assert_int_equal(cJSON_GetArraySize(d), 2);
    const cJSON *p = cJSON_GetArrayItem(d, 0), *k = cJSON_GetArrayItem(d, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(k, "rebuilt")));
    assert_string_equal(cJSON_GetObjectItem(k, "decision_id")->valuestring,
                        child);
    assert_int_equal(cJSON_GetObjectItem(k, "step")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(k, "escalates")->valuestring,
                        parent);
    assert_string_equal(cJSON_GetObjectItem(k, "escalates_seq")->valuestring,
                        cJSON_GetObjectItem(p, "seq")->valuestring);
    /* offered: the one model left (the other was excluded) */
    const cJSON *off = cJSON_GetObjectItem(k, "offered");
    assert_int_equal(cJSON_GetArraySize(off), 1);
    assert_string_not_equal(cJSON_GetArrayItem(off, 0)->valuestring, model);
    assert_int_equal(cJSON_GetObjectItem(p, "step")->valueint, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "escalates")));
    cJSON_Delete(j);
    ctl_destroy(&c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Decisions made for a tenant: a choose's "tenant" and a book's
 * "local.tenant" are in export and in db tenants, written only for them;
 * retention prunes each record with its decision. */
static void
test_tenant_pruned(void **state)
{
    (void)state;
    static const char cfgtext[] =
        "{\"models\":{\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
        "\"price_out_per_mtok\":2}},\"buckets\":{\"x\":{\"models\":[\"a\"]}},"
        "\"decision_ttl_s\":60,\"store\":{\"retention_s\":100}}";
    snprintf(dir, sizeof dir, "/tmp/bursar-core-XXXXXX");
    assert_non_null(mkdtemp(dir));
    cfg_t *cfg = NULL;
    assert_int_equal(cfg_parse(cfgtext, sizeof cfgtext - 1, &cfg, NULL), 0);
    ctl_options_t o = {dir, 1, 1767225600.0};
    ctl_t *c = NULL;
    char err[256];
    if (ctl_open(&c, cfg, &o, err, sizeof err) != 0)
        fail_msg("ctl_open: %s", err);
    static const char *const rq[] = {
        "{\"op\":\"choose\",\"bucket\":\"x\",\"tenant\":\"acme\"}",
        "{\"op\":\"choose\",\"bucket\":\"x\"}",
        "{\"op\":\"book\",\"local\":{\"id\":\"L1\",\"bucket\":\"x\","
        "\"model\":\"a\",\"time\":1767225600,\"tenant\":\"beta.eu\"},"
        "\"kind\":\"outcome\",\"success\":true}",
        "{\"op\":\"book\",\"local\":{\"id\":\"L2\",\"bucket\":\"x\","
        "\"model\":\"a\",\"time\":1767225600},\"kind\":\"correction\"}",
        /* L1 again, another tenant: its first booking's stays */
        "{\"op\":\"book\",\"local\":{\"id\":\"L1\",\"bucket\":\"x\","
        "\"model\":\"a\",\"time\":1767225600,\"tenant\":\"other\"},"
        "\"kind\":\"correction\"}",
    };
    static const char *const want[] = {"acme", NULL, "beta.eu", NULL};
    assert_int_equal(ctl_begin(c), 0);
    for (size_t i = 0; i < sizeof rq / sizeof rq[0]; i++) {
        cJSON *j = call(c, rq[i]);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")))
            fail_msg("%s: %s", rq[i], cJSON_PrintUnformatted(j));
        cJSON_Delete(j);
    }
    assert_int_equal(ctl_commit(c), 0);
    assert_int_equal(ctl_begin(c), 0);
    cJSON *j = call(c, "{\"op\":\"export\"}");
    const cJSON *ds = cJSON_GetObjectItem(j, "decisions");
    assert_int_equal(cJSON_GetArraySize(ds), 4);
    for (int i = 0; i < 4; i++) {
        const cJSON *t =
            cJSON_GetObjectItem(cJSON_GetArrayItem(ds, i), "tenant");
        if (want[i])
            assert_string_equal(cJSON_GetStringValue(t), want[i]);
        else
            assert_null(t);
    }
    cJSON_Delete(j);
    /* past retention (and the 300 s a local decision is kept longer):
     * every decision pruned, and every tenant record with it */
    cJSON_Delete(call(c, "{\"op\":\"clock\",\"advance_s\":1000}"));
    ctl_sweep(c);
    assert_int_equal(ctl_commit(c), 0);
    assert_int_equal(ctl_begin(c), 0);
    j = call(c, "{\"op\":\"export\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "decisions")),
                     0);
    cJSON_Delete(j);
    assert_int_equal(ctl_commit(c), 0);
    ctl_destroy(&c);
    store_t *s = NULL;
    assert_int_equal(store_open(&s, dir, 0, 0, 1), 0);
    MDB_txn *txn = NULL;
    assert_int_equal(store_begin(s, 1, &txn), 0);
    for (uint64_t id = 1; id <= 4; id++) {
        store_tenant_t tn;
        assert_int_equal(store_get_tenant(s, txn, id, &tn), STORE_NOTFOUND);
        store_decision_t d;
        assert_int_equal(store_get_decision(s, txn, id, &d), STORE_NOTFOUND);
    }
    store_abort(txn);
    store_destroy(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The bytes of a version-1 token (token.c before cascade links: no
 * parent, no step), MAC'ed with key and written as the wire has it. */
static void
token_v1(const uint8_t *key, int version, char *out, size_t cap)
{
    uint8_t raw[256], *p = raw;
    uint64_t u[5];
    double t = 1764030000.25, prop = 0.5, res = 0.001;
    u[0] = 77;
    memcpy(&u[1], &t, 8);
    memcpy(&u[2], &prop, 8);
    memcpy(&u[3], &res, 8);
    u[4] = 5; /* offered: arms 0 and 2 */
    *p++ = (uint8_t)version;
    *p++ = 0x40; /* explored */
    *p++ = 0;
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)(u[k] >> (8 * i));
    const char *names[3] = {"x", "a", "w1"};
    for (int k = 0; k < 3; k++) {
        *p++ = (uint8_t)strlen(names[k]);
        memcpy(p, names[k], strlen(names[k]));
        p += strlen(names[k]);
    }
    crypto_generichash(p, 16, raw, (size_t)(p - raw), key, TOKEN_KEY_BYTES);
    p += 16;
    sodium_bin2base64(out, cap, raw, (size_t)(p - raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Tokens carry the cascade link (step capped at TOKEN_STEP_MAX); tokens
 * of version 1, issued before it, still decode (no parent, step 0). */
static void
test_token_versions(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    uint8_t key[TOKEN_KEY_BYTES] = {7, 7, 7};
    token_t tk = {.id = 9,
                  .t = 1.5,
                  .propensity = 0.25,
                  .offered = 3,
                  .parent = 8,
                  .step = 300,
                  .flags = 0x40};
    snprintf(tk.bucket, sizeof tk.bucket, "code");
    snprintf(tk.model, sizeof tk.model, "m");
    char s[TOKEN_CHARS + 1];
    token_encode(key, &tk, s);
    token_t back;
    assert_int_equal(token_decode(key, s, &back), 0);
    assert_true(back.parent == 8 && back.step == TOKEN_STEP_MAX);
    assert_true(back.id == 9 && back.offered == 3 && back.flags == 0x40);
    char v1[400];
    token_v1(key, 1, v1, sizeof v1);
    assert_int_equal(token_decode(key, v1, &back), 0);
    assert_true(back.id == 77 && back.offered == 5 && back.propensity == 0.5);
    assert_true(back.parent == 0 && back.step == 0);
    assert_string_equal(back.bucket, "x");
    assert_string_equal(back.client, "w1");
    /* version 1's bytes under version 2's number: a short token */
    token_v1(key, 2, v1, sizeof v1);
    assert_int_equal(token_decode(key, v1, &back), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_only_below_durable_mark),
        cmocka_unit_test(test_rebuilt_record_keeps_link),
        cmocka_unit_test(test_tenant_pruned),
        cmocka_unit_test(test_token_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
