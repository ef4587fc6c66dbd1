/*
 * test_ctl_store.c - the store's format version against the real bursard
 * and real LMDB directories.
 *
 * The directories are written here with raw LMDB calls, record by record
 * as the previous release wrote them (its struct layouts are copied below,
 * independent of controller/store.h: a layout change there without a
 * migration makes these tests fail rather than follow it):
 *
 *  - format 1 as the previous release wrote it: read, every value intact,
 *    stamped format 3;
 *  - format 1 with its 48-byte dext records (the release before cascade
 *    links): read as first steps (step 0, no parent), never rewritten;
 *  - format 0 (no format key): migrated by stamping the key;
 *  - format 1 with pacer records from before pacer_t had rate_start (72
 *    bytes): widened, spent budget intact;
 *  - format 2 (80-byte pacers, before the rate ring): widened to format
 *    3's, spent budget intact, stamped format 3;
 *  - format 999: refused, bursard exits non-zero with a message naming the
 *    directory and both versions, data.mdb unchanged, no lock file made;
 *  - a record of a size no format had: refused, naming the record.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <lmdb.h>

#include "tests/harness.h"

/* ---- the previous release's records (controller/store.h at fc9fd88) -- */

typedef struct old_arm {
    double alpha, beta, alpha0, beta0;
    double cost_sum, cost_w, cost_prior, cost_prior_w;
    uint64_t pulls, rewards;
} old_arm_t;

typedef struct old_store_arm {
    uint8_t version;
    uint8_t pad[7];
    old_arm_t arm;
    double t_last;
    uint32_t lat_n, lat_head;
    double lat_t[32], lat_ms[32];
} old_store_arm_t;

typedef struct old_pacer {
    double limit_usd, window_s, window_start, spent_usd, reserved_usd;
    double requests, prior_rate, min_elapsed_s, rate_start;
} old_pacer_t;

typedef struct old_store_pacer {
    uint8_t version;
    uint8_t pad[7];
    old_pacer_t pacer;
} old_store_pacer_t;

typedef struct old_store_policy {
    uint8_t version;
    uint8_t pad[7];
    double mu;
    uint64_t decisions;
} old_store_policy_t;

typedef struct old_store_health {
    uint8_t version;
    uint8_t pad[3];
    uint32_t failures, level, cooling;
    double until;
    uint64_t probe;
    double probe_t;
    uint64_t errors_total;
} old_store_health_t;

typedef struct old_store_decision {
    uint8_t version;
    uint8_t pad[3];
    uint32_t flags;
    uint64_t id;
    double t, propensity, reserved_usd, t_outcome, reward_reported;
    double reward_applied, cost_usd, latency_ms, tokens_in, tokens_out;
    char bucket[64], model[64], served[64], error[128];
} old_store_decision_t;

/* format 1's dext record (controller/store.h before cascade links) */
typedef struct old_store_dext {
    uint8_t version;
    uint8_t pad[7];
    uint64_t offered;
    char client[32];
} old_store_dext_t;

/* The previous release's sizes (LP64): the copies above are faithful. */
_Static_assert(sizeof(old_store_arm_t) == 616, "copy of store_arm_t");
_Static_assert(sizeof(old_store_pacer_t) == 80, "copy of store_pacer_t");
_Static_assert(sizeof(old_store_policy_t) == 24, "copy of store_policy_t");
_Static_assert(sizeof(old_store_health_t) == 48, "copy of store_health_t");
_Static_assert(sizeof(old_store_decision_t) == 416, "copy");
_Static_assert(sizeof(old_store_dext_t) == 48, "copy of format 1's dext");

/* ---- writing a state directory ----------------------------------- */

enum { FMT_NONE = -1 };

typedef struct old_dir {
    long format;      /* the "format" key, or FMT_NONE */
    int short_pacers; /* pacers as 72 bytes (no rate_start) */
    size_t arm_size;  /* 0: sizeof(old_store_arm_t) */
    int dext;         /* 1: a format-1 dext record for the decision */
} old_dir_t;

#define SPENT     1.5
#define WINDOW_S  1e9
#define N_DECIDED 55

static void
put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v,
    size_t vl)
{
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
}

static void
put_pacer(MDB_txn *txn, MDB_dbi dbi, const char *key, double limit, int short_)
{
    old_store_pacer_t p;
    memset(&p, 0, sizeof p);
    p.version = 1;
    p.pacer.limit_usd = limit;
    p.pacer.window_s = WINDOW_S;
    p.pacer.window_start = WINDOW_S; /* 2001 .. 2033 holds now */
    p.pacer.spent_usd = SPENT;
    p.pacer.requests = N_DECIDED;
    p.pacer.prior_rate = 1;
    p.pacer.min_elapsed_s = 60;
    p.pacer.rate_start = 1.7e9;
    /* before rate_start: the same fields, 8 bytes fewer */
    put(txn, dbi, key, strlen(key), &p, short_ ? 72 : sizeof p);
}

static void
put_decision(MDB_txn *txn, MDB_dbi dec, MDB_dbi pending)
{
    old_store_decision_t d;
    memset(&d, 0, sizeof d);
    d.version = 1;
    d.id = N_DECIDED;
    d.t = (double)time(NULL);
    d.propensity = 0.75;
    d.reserved_usd = 0.001;
    strcpy(d.bucket, "code");
    strcpy(d.model, "a");
    unsigned char k[8];
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)(d.id >> (56 - 8 * i));
    put(txn, dec, k, 8, &d, sizeof d);
    put(txn, pending, k, 8, &d.t, sizeof d.t);
}

static void
put_records(MDB_txn *txn, MDB_dbi *db, const old_dir_t *o)
{
    if (o->format != FMT_NONE) {
        uint32_t f = (uint32_t)o->format;
        put(txn, db[0], "format", 6, &f, sizeof f);
    }
    uint64_t seq = N_DECIDED;
    put(txn, db[0], "seq", 3, &seq, sizeof seq);
    old_store_policy_t po = {.version = 1, .mu = 0.25, .decisions = seq};
    put(txn, db[0], "policy", 6, &po, sizeof po);
    put_pacer(txn, db[0], "pacer", 100, o->short_pacers);
    put_pacer(txn, db[4], "code", 10, o->short_pacers);
    old_store_arm_t a;
    memset(&a, 0, sizeof a);
    a.version = 1;
    a.arm = (old_arm_t){41, 11, 1, 1, 0.02, 20, 0.001, 1, N_DECIDED, 50};
    a.t_last = (double)time(NULL);
    put(txn, db[3], "code\0a", 6, &a, o->arm_size ? o->arm_size : sizeof a);
    old_store_health_t h = {.version = 1, .errors_total = 3};
    put(txn, db[5], "a", 1, &h, sizeof h);
    put_decision(txn, db[1], db[2]);
}

/* Writes dir as the previous release did: its seven databases, its
 * records, nothing else. */
static void
write_old_dir(const char *dir, const old_dir_t *o)
{
    static const char *const names[7] = {"meta",      "decisions", "pending",
                                         "arms",      "bpacers",   "health",
                                         "dynbuckets"};
    assert_int_equal(mkdir(dir, 0755), 0);
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0644), 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi db[7];
    for (int i = 0; i < 7; i++)
        assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, &db[i]), 0);
    put_records(txn, db, o);
    if (o->dext) {
        MDB_dbi dx;
        assert_int_equal(mdb_dbi_open(txn, "dext", MDB_CREATE, &dx), 0);
        old_store_dext_t x = {.version = 1, .offered = 3}; /* a and b */
        unsigned char k[8];
        for (int i = 0; i < 8; i++)
            k[i] = (unsigned char)((uint64_t)N_DECIDED >> (56 - 8 * i));
        put(txn, dx, k, 8, &x, sizeof x);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Size of a record after bursard ran, and a copy of it (NULL: absent). */
static size_t
read_record(const char *dir, const char *dbname, const void *key, size_t kl,
            void *out, size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
    MDB_val k = {kl, (void *)key}, v;
    size_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0) {
        n = v.mv_size;
        memcpy(out, v.mv_data, n < cap ? n : cap);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

/* ---- the daemon ---------------------------------------------------- */

static const char *const config =
    "{\"models\":{"
    "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2},"
    "\"b\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2}},"
    "\"buckets\":{\"code\":{\"models\":[\"a\",\"b\"],"
    "\"prior\":{\"alpha\":1,\"beta\":1},\"half_life_s\":0,"
    "\"budget\":{\"limit_usd\":10,\"window_s\":1000000000}}},"
    "\"budget\":{\"limit_usd\":100,\"window_s\":1000000000},"
    "\"decision_ttl_s\":3600}";

/* Starts bursard on the directory written above and checks that it holds
 * what the previous release wrote. */
static void
expect_state_read(th_daemon_t *d)
{
    th_start(d);
    th_client_t *c = th_client_new(d->endpoint);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *a = th_arm(s, "code", "a");
    assert_non_null(a);
    assert_true(th_num(a, "alpha") == 41 && th_num(a, "beta") == 11);
    assert_true(th_num(a, "pulls") == N_DECIDED);
    assert_true(th_num(s, "decisions") == N_DECIDED);
    assert_true(th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd") == SPENT);
    const cJSON *bb = cJSON_GetObjectItem(th_bucket(s, "code"), "budget");
    assert_true(th_num(bb, "spent_usd") == SPENT);
    cJSON_Delete(s);
    /* the open decision is there, and export gives its token (a
     * release before tokens gave out sequence ids): its outcome lands on
     * its arm */
    cJSON *e = th_ok(c, "{\"op\":\"export\"}");
    char seq[17], token[400] = "";
    snprintf(seq, sizeof seq, "%016x", N_DECIDED);
    const cJSON *rec;
    cJSON_ArrayForEach(
        rec, cJSON_GetObjectItem(e, "decisions")) if (strcmp(th_str(rec, "seq"),
                                                             seq) == 0)
        snprintf(token, sizeof token, "%s", th_str(rec, "decision_id"));
    cJSON_Delete(e);
    assert_true(token[0]);
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":"
                       "\"%s\",\"kind\":\"outcome\",\"success\":true}",
                       token));
    s = th_ok(c, "{\"op\":\"stats\"}");
    assert_true(th_num(th_arm(s, "code", "a"), "alpha") == 42);
    cJSON_Delete(s);
    th_client_destroy(&c);
    assert_int_equal(th_stop(d), 0);
}

static uint32_t
stamped_format(const char *dir)
{
    uint32_t f = 0;
    assert_int_equal(read_record(dir, "meta", "format", 6, &f, sizeof f), 4);
    return f;
}

static void
test_previous_release_read(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 1});
    expect_state_read(&d);
    assert_int_equal(stamped_format(d.state), 3);
    th_cleanup(&d);
}

/* Format 1 with dext records of 48 bytes: served, the decision exported
 * with its offered set as a first step, the record left as it was. */
static void
test_format1_dext_read(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 1, .dext = 1});
    th_start(&d);
    th_client_t *c = th_client_new(d.endpoint);
    cJSON *e = th_ok(c, "{\"op\":\"export\"}");
    const cJSON *rec =
        cJSON_GetArrayItem(cJSON_GetObjectItem(e, "decisions"), 0);
    assert_non_null(rec);
    const cJSON *off = cJSON_GetObjectItem(rec, "offered");
    assert_int_equal(cJSON_GetArraySize(off), 2);
    assert_true(th_num(rec, "step") == 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(rec, "escalates")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(rec, "escalates_seq")));
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":true,\"model\":\"b\"}",
                       th_str(rec, "decision_id")));
    cJSON_Delete(e);
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    assert_int_equal(stamped_format(d.state), 3);
    old_store_dext_t x;
    unsigned char k[8];
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)((uint64_t)N_DECIDED >> (56 - 8 * i));
    assert_int_equal(read_record(d.state, "dext", k, 8, &x, sizeof x), 48);
    th_cleanup(&d);
}

static void
test_format0_migrated(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = FMT_NONE});
    expect_state_read(&d);
    assert_int_equal(stamped_format(d.state), 3);
    char log[8192];
    snprintf(log, sizeof log, "cat '%s'", d.log);
    assert_int_equal(th_run(log, log, sizeof log), 0);
    assert_non_null(strstr(log, "migrating to format 3"));
    th_cleanup(&d);
}

static void
test_short_pacers_widened(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 1, .short_pacers = 1});
    expect_state_read(&d);
    /* widened to format 3's 568 bytes (the rate ring); the spend is
     * checked by expect_state_read */
    unsigned char p[568];
    assert_int_equal(read_record(d.state, "bpacers", "code", 4, p, sizeof p),
                     sizeof p);
    th_cleanup(&d);
}

/* Format 2 (80-byte pacers, before the rate ring): read, the window's
 * spend kept, the pacers widened, stamped format 3. */
static void
test_format2_migrated(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 2});
    expect_state_read(&d);
    assert_int_equal(stamped_format(d.state), 3);
    unsigned char p[568];
    assert_int_equal(read_record(d.state, "meta", "pacer", 5, p, sizeof p),
                     sizeof p);
    char log[8192];
    snprintf(log, sizeof log, "cat '%s'", d.log);
    assert_int_equal(th_run(log, log, sizeof log), 0);
    assert_non_null(strstr(log, "format 2: pacers without the rate ring"));
    th_cleanup(&d);
}

/* Reads a whole file (the test's own copy of data.mdb). */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Runs bursard on a directory it must refuse: it must exit non-zero with a
 * message holding must1, must2 and the directory, and leave data.mdb as
 * it was. */
static void
expect_refused(th_daemon_t *d, const char *must1, const char *must2)
{
    char path[700], cmd[3000], out[4096];
    snprintf(path, sizeof path, "%s/data.mdb", d->state);
    size_t n0, n1;
    char *before = slurp(path, &n0);
    /* a bursard that does not refuse serves until timeout stops it */
    snprintf(cmd, sizeof cmd,
             "timeout -k 5 20 %s --config %s --state-dir %s --listen %s "
             "--test-clock 2>&1",
             th_need("bursard"), d->config, d->state, d->endpoint);
    int st = th_run(cmd, out, sizeof out);
    if (st == 0 || st == -1 || st == 124 || st == 137)
        fail_msg("bursard did not refuse the directory (status %d): %s", st,
                 out);
    if (!strstr(out, d->state) || !strstr(out, must1) || !strstr(out, must2))
        fail_msg("the refusal does not say \"%s\", \"%s\" and the "
                 "directory: %s",
                 must1, must2, out);
    char *after = slurp(path, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    snprintf(path, sizeof path, "%s/bursard.lock", d->state);
    assert_true(access(path, F_OK) != 0); /* no lock file made either */
    free(before);
    free(after);
}

static void
test_future_format_refused(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 999});
    expect_refused(&d, "has format 999", "reads format 3");
    assert_int_equal(stamped_format(d.state), 999);
    th_cleanup(&d);
}

static void
test_unknown_record_refused(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    write_old_dir(d.state, &(old_dir_t){.format = 1, .arm_size = 600});
    expect_refused(&d, "arms record \"code/a\" is 600 bytes",
                   "format 3 has 616");
    th_cleanup(&d);
}

/* A fresh directory is stamped with the current format. */
static void
test_new_dir_stamped(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    th_start(&d);
    assert_int_equal(th_stop(&d), 0);
    assert_int_equal(stamped_format(d.state), 3);
    th_cleanup(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_dir_stamped),
        cmocka_unit_test(test_previous_release_read),
        cmocka_unit_test(test_format1_dext_read),
        cmocka_unit_test(test_format0_migrated),
        cmocka_unit_test(test_short_pacers_widened),
        cmocka_unit_test(test_format2_migrated),
        cmocka_unit_test(test_future_format_refused),
        cmocka_unit_test(test_unknown_record_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
