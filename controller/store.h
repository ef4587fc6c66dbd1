/*
 * store.h - the controller's durable state in LMDB.
 *
 * One LMDB environment in the state directory with these databases:
 *
 *   meta       "format" -> u32, "seq" -> last decision id (u64),
 *              "policy" -> store_policy_t, "pacer" -> store_pacer_t,
 *              "clock" -> test-clock offset (double)
 *   decisions  id (u64, big-endian, so that keys sort by id = by time)
 *              -> store_decision_t
 *   pending    id -> choose time (double): decisions without an outcome,
 *              oldest first, for expiry
 *   arms       "bucket\0model" -> store_arm_t (posterior, cost, latency)
 *   bpacers    bucket -> store_pacer_t (per-bucket budget caps)
 *   health     model -> store_health_t
 *   dynbuckets bucket -> (empty): buckets created from the template
 *
 * Records are plain structs written as they are (arm_t and pacer_t are
 * POD, policies/arm.h and pacer.h) with a version byte first: a record of
 * another version is refused at open rather than misread. The store is
 * single-writer (the daemon's loop); other processes may open it read-only.
 *
 * Durability: every commit is synchronous (no MDB_NOSYNC). With
 * nometasync = 1 the meta page is not flushed at commit (MDB_NOMETASYNC):
 * one fsync per commit instead of two; an operating-system crash (not a
 * process crash) may then lose the last transactions, never integrity.
 * docs/controller.md discusses the trade-off.
 *
 * Errors: functions return 0, STORE_NOTFOUND, or an LMDB error code (use
 * store_strerror).
 */
#ifndef BURSAR_STORE_H
#define BURSAR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "arm.h"
#include "pacer.h"

#define STORE_NOTFOUND MDB_NOTFOUND
#define STORE_LOCKED   (-29000) /* another process writes this store */
#define STORE_VERSION  1
#define STORE_NAME_MAX 64

/* Decision flags. */
#define STORE_D_OUTCOME     0x001u /* outcome applied */
#define STORE_D_CORRECTION  0x002u /* correction received */
#define STORE_D_PROVERR     0x004u /* provider_error received */
#define STORE_D_EXPIRED     0x008u /* no outcome within decision_ttl_s */
#define STORE_D_COST        0x010u /* cost reported (not the expected one) */
#define STORE_D_BUCKET_RES  0x020u /* reserved against the bucket's cap */
#define STORE_D_EXPLORED    0x040u /* chosen by the exploration floor */
#define STORE_D_OVER_BUDGET 0x080u /* no affordable arm */
#define STORE_D_PROBE       0x100u /* half-open probe of its model */
#define STORE_D_LATENCY     0x200u /* latency reported */
#define STORE_D_APPLIED     0x400u /* a reward is in the posterior */
#define STORE_D_SETTLED     0x800u /* reservation released */

typedef struct store_decision {
    uint8_t version;
    uint8_t pad[3];
    uint32_t flags; /* STORE_D_* */
    uint64_t id;
    double t; /* choose time, Unix seconds */
    double propensity;
    double reserved_usd;    /* expected cost reserved at choose */
    double t_outcome;       /* time of the outcome, or 0 */
    double reward_reported; /* reward as reported, [0, 1] */
    double reward_applied;  /* reward in the posterior (after correction) */
    double cost_usd;        /* booked cost */
    double latency_ms;
    double tokens_in;
    double tokens_out;
    char bucket[STORE_NAME_MAX];
    char model[STORE_NAME_MAX];  /* chosen */
    char served[STORE_NAME_MAX]; /* model that served the outcome */
    char error[128];             /* provider error text */
} store_decision_t;

#define STORE_LAT_RING 32

typedef struct store_arm {
    uint8_t version;
    uint8_t pad[7];
    arm_t arm;
    double t_last;                 /* time the bucket was decayed to */
    uint32_t lat_n;                /* samples held, <= STORE_LAT_RING */
    uint32_t lat_head;             /* next slot */
    double lat_t[STORE_LAT_RING];  /* sample time, seconds */
    double lat_ms[STORE_LAT_RING]; /* latency, ms */
} store_arm_t;

typedef struct store_health {
    uint8_t version;
    uint8_t pad[3];
    uint32_t failures;     /* consecutive provider errors */
    uint32_t level;        /* backoff level: cooldown = base * 2^level */
    uint32_t cooling;      /* 1 while a cooldown has been entered */
    double until;          /* cooldown end; half-open after it */
    uint64_t probe;        /* decision id of the probe in flight, or 0 */
    double probe_t;        /* when the probe was sent */
    uint64_t errors_total; /* provider errors ever */
} store_health_t;

typedef struct store_policy {
    uint8_t version;
    uint8_t pad[7];
    double mu;
    uint64_t decisions;
} store_policy_t;

typedef struct store_pacer {
    uint8_t version;
    uint8_t pad[7];
    pacer_t pacer;
} store_pacer_t;

typedef struct store store_t;

/* Opens (creating if needed) the store in dir. A writer (readonly = 0)
 * takes an exclusive lock on dir/bursard.lock first: STORE_LOCKED when
 * another process holds it. Returns 0 or an error code; *out is NULL on
 * failure. */
int store_open(store_t **out, const char *dir, size_t map_size_mb,
               int nometasync, int readonly);
void store_destroy(store_t **s);
const char *store_strerror(int rc);

int store_begin(store_t *s, int readonly, MDB_txn **txn);
int store_commit(MDB_txn *txn);
void store_abort(MDB_txn *txn);

int store_put_decision(store_t *s, MDB_txn *txn, const store_decision_t *d);
int store_get_decision(store_t *s, MDB_txn *txn, uint64_t id,
                       store_decision_t *d);
int store_del_decision(store_t *s, MDB_txn *txn, uint64_t id);

int store_put_pending(store_t *s, MDB_txn *txn, uint64_t id, double t);
int store_del_pending(store_t *s, MDB_txn *txn, uint64_t id);
/* The oldest pending decision. */
int store_oldest_pending(store_t *s, MDB_txn *txn, uint64_t *id, double *t);
/* The oldest decision (for retention). */
int store_oldest_decision(store_t *s, MDB_txn *txn, store_decision_t *d);

/* Calls fn for every decision with id > after (all if after is 0), in id
 * order, until fn returns non-zero. Returns 0 or an error code. */
typedef int (*store_decision_fn)(const store_decision_t *d, void *ctx);
int store_scan_decisions(store_t *s, MDB_txn *txn, uint64_t after,
                         store_decision_fn fn, void *ctx);

int store_put_arm(store_t *s, MDB_txn *txn, const char *bucket,
                  const char *model, const store_arm_t *a);
int store_get_arm(store_t *s, MDB_txn *txn, const char *bucket,
                  const char *model, store_arm_t *a);

int store_put_health(store_t *s, MDB_txn *txn, const char *model,
                     const store_health_t *h);
int store_get_health(store_t *s, MDB_txn *txn, const char *model,
                     store_health_t *h);

int store_put_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                           const store_pacer_t *p);
int store_get_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                           store_pacer_t *p);

int store_put_dynbucket(store_t *s, MDB_txn *txn, const char *bucket);
/* Calls fn(name, ctx) for each created bucket. */
int store_scan_dynbuckets(store_t *s, MDB_txn *txn,
                          void (*fn)(const char *name, void *ctx), void *ctx);

/* meta: small values by key. get returns STORE_NOTFOUND or copies exactly
 * len bytes (a stored value of another size is MDB_BAD_VALSIZE). */
int store_put_meta(store_t *s, MDB_txn *txn, const char *key, const void *val,
                   size_t len);
int store_get_meta(store_t *s, MDB_txn *txn, const char *key, void *val,
                   size_t len);

#endif
