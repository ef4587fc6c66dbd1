/*
 * store.h - the controller's durable state in LMDB.
 *
 * One LMDB environment in the state directory with these databases:
 *
 *   meta       "format" -> u32 STORE_FORMAT, "seq" -> last decision id
 *              (u64), "policy" -> store_policy_t, "pacer" ->
 *              store_pacer_t, "clock" -> test-clock offset (double),
 *              "batch/" + 16 hex digits -> store_batch_t: a batch (op
 *              batch) still open, deleted when it completes
 *   decisions  id (u64, big-endian, so that keys sort by id = by time)
 *              -> store_decision_t
 *   pending    id -> choose time (double): decisions without an outcome,
 *              oldest first, for expiry
 *   arms       "bucket\0model" -> store_arm_t (posterior, cost, latency)
 *   bpacers    bucket -> store_pacer_t (per-bucket budget caps)
 *   health     model -> store_health_t
 *   dynbuckets bucket -> (empty): buckets created from the template
 *   dext       id -> store_dext_t: the client, offered set and cascade
 *              link of a decision (added in place: format 1 stores
 *              without it read as having none; format 1's 48-byte
 *              records, without the link, are read as first steps)
 *   locals     client "\0" local id -> decision id (u64): the local
 *              decisions booked by clients (op book), so that a resent
 *              booking finds its decision (added in place, as dext)
 *   lext       id -> store_local_t: the client and local id of a local
 *              decision (added in place, as dext)
 *   tenants    id -> store_tenant_t: the tenant a decision was made for,
 *              only for decisions that name one (choose's "tenant",
 *              book's "local.tenant"); written with the decision, pruned
 *              with it (added in place, as dext)
 *   admin      id (u64, big-endian) -> store_admin_t: the admin log, one
 *              entry per adjust, reset and mark (op, time, client, the
 *              arguments, reason, result), written in the transaction of
 *              its effect, never pruned (added in place, as dext)
 *   marks      model -> store_mark_t: a model marked down (or up again)
 *              by an operator (added in place, as dext)
 *   tpacers    tenant -> store_tpacer_t: the pacer and shadow price of a
 *              tenant with a budget of its own (configured tenants, and
 *              those given one by tenants."*") (added in place, as dext)
 *
 * Format. Records are plain structs written as they are (arm_t and
 * pacer_t are POD, policies/arm.h and pacer.h), each beginning with a
 * version byte (STORE_VERSION). The layout of every one of them is the
 * format, and STORE_FORMAT numbers it: the sizes below are asserted at
 * compile time, so a change to any stored struct (arm_t or pacer_t
 * included) breaks the build until STORE_FORMAT is bumped, the asserts
 * updated and a migration written in store.c. The format is that of an
 * LP64 machine (x86-64, arm64); an LMDB file does not move between
 * architectures anyway.
 *
 * At open the format key decides (store_check says which case holds):
 *   - no environment, or one with no record: new, stamped STORE_FORMAT;
 *   - STORE_FORMAT: read, after checking the size of every record but the
 *     decisions (the first and the last of those);
 *   - no format key but records (format 0): every record is checked as
 *     format 1 (same layout), then the key is stamped;
 *   - format 1: the same records, dext records of STORE_DEXT_V1_SIZE
 *     (before the cascade link) among them; they are read as they are
 *     (step 0, no parent), never rewritten, and the key is stamped
 *     STORE_FORMAT;
 *   - format 2: the same records but the pacers (80 bytes, before
 *     pacer_t had its rate ring): migrated as below, key stamped;
 *   - pacer records of 72 bytes (format 1 as written before pacer_t had
 *     rate_start) or 80 bytes (formats 1 and 2): widened in place, the
 *     window's spend, reservations and request count kept, no batch
 *     share held, rate_start NaN: the controller starts the rate ring at
 *     load (pacer_resume), the prior filling in until it has data;
 *   - any other format, or a record of a size no format had: refused
 *     (BURSAR_EVERSION), and the environment is not written.
 * Reads check the size of every value: a record of the wrong size is an
 * error (MDB_BAD_VALSIZE), never a partial copy.
 *
 * The store is single-writer (the daemon's loop); other processes may
 * open it read-only.
 *
 * Durability: every commit is synchronous (no MDB_NOSYNC). With
 * nometasync = 1 the meta page is not flushed at commit (MDB_NOMETASYNC):
 * one fsync per commit instead of two; an operating-system crash (not a
 * process crash) may then lose the last transactions, never integrity.
 * docs/controller.md discusses the trade-off.
 *
 * Errors: functions return 0, STORE_NOTFOUND, one of the project's codes
 * (STORE_LOCKED = BURSAR_ELOCKED, STORE_EVERSION = BURSAR_EVERSION) or an
 * LMDB error code; store_strerror names each.
 */
#ifndef BURSAR_STORE_H
#define BURSAR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "policies/arm.h"
#include "policies/base.h"
#include "policies/pacer.h"

#define STORE_NOTFOUND  MDB_NOTFOUND
#define STORE_LOCKED    BURSAR_ELOCKED  /* another process writes this store */
#define STORE_EVERSION  BURSAR_EVERSION /* another format: refused */
#define STORE_FORMAT    3u              /* the "format" key of this layout */
#define STORE_FORMAT_V1 1u /* dext without the cascade link: migrated */
#define STORE_FORMAT_V2 2u /* pacers without the rate ring: migrated */
#define STORE_VERSION   1  /* the version byte of every record */
/* Names in records: part of the format, so a literal rather than
 * BURSAR_NAME_MAX (which may not exceed it). */
#define STORE_NAME_MAX 64

_Static_assert(BURSAR_NAME_MAX <= STORE_NAME_MAX,
               "a configured name must fit a stored record");

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
/* rebuilt from its token: the record was lost to a crash, and its
 * reservation with it (none to release) */
#define STORE_D_REBUILT 0x1000u
/* a decision the client made alone while the controller was away, booked
 * by op book: no propensity, never pending (records of format 1 without
 * the bit are the controller's own) */
#define STORE_D_LOCAL 0x2000u
/* reserved against its tenant's budget (db tenants names the tenant;
 * controller/ctl_tenant.c) */
#define STORE_D_TENANT_RES 0x4000u
/* made for a tenant "*" would give a budget when limits.max_tenants
 * tenants held one, none idle: served under the global budget only */
#define STORE_D_TENANT_NOBUDGET 0x8000u

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

/* What a decision's token adds to its record (db dext, same key; written
 * with the decision, pruned with it). An additive database: a store
 * without it is read as having no such records. Format 1 wrote the first
 * STORE_DEXT_V1_SIZE bytes only (step was padding, zero); such records
 * are read with step 0 and parent 0. */
typedef struct store_dext {
    uint8_t version;
    uint8_t step; /* cascade step: 0 first decision, else parent's + 1 */
    uint8_t pad[6];
    uint64_t offered; /* bit i: arm i of the bucket was offered: the set
                         the decision was drawn from */
    char client[32];  /* the client it was issued to; "" unauthenticated */
    uint64_t parent;  /* id of the decision this one escalates, or 0 */
} store_dext_t;
#define STORE_DEXT_V1_SIZE 48 /* format 1's store_dext_t (no parent) */

/* What a local decision adds to its record (db lext, same key; written
 * with the decision, pruned with it), and the key of db locals. */
#define STORE_LOCAL_ID_MAX 64
typedef struct store_local {
    uint8_t version;
    uint8_t pad[7];
    char client[32];                   /* who booked it; "" unauthenticated */
    char local_id[STORE_LOCAL_ID_MAX]; /* the client's id of it */
} store_local_t;

/* The tenant of a decision (db tenants, same key). */
#define STORE_TENANT_MAX 32 /* incl. NUL */
typedef struct store_tenant {
    uint8_t version;
    uint8_t pad[7];
    char name[STORE_TENANT_MAX]; /* NUL-terminated */
} store_tenant_t;

/* A tenant's pacer and its own shadow price (db tpacers, key: the
 * tenant's name). */
typedef struct store_tpacer {
    uint8_t version;
    uint8_t pad[7];
    pacer_t pacer;
    double mu; /* the tenant's shadow price, >= 0 */
} store_tpacer_t;

/* An entry of the admin log (db admin). */
#define STORE_ADMIN_ADJUST 1
#define STORE_ADMIN_RESET  2
#define STORE_ADMIN_MARK   3
#define STORE_REASON_MAX   808 /* a reason, incl. NUL (PROTO_REASON_MAX fits) */
typedef struct store_admin {
    uint8_t version;
    uint8_t op;         /* STORE_ADMIN_* */
    uint8_t down;       /* mark: 1 marked down, 0 up */
    uint8_t was_down;   /* mark: the state before */
    uint8_t bucket_cap; /* adjust: the bucket's cap was adjusted too */
    uint8_t pad[3];
    uint64_t id;         /* its number in the log, from 1 */
    double t;            /* when, Unix seconds (the controller's clock) */
    double amount_usd;   /* adjust: the amount asked for */
    double window_start; /* adjust: the global window it went to */
    double spent_before, spent_after;   /* adjust: the global window's spend */
    double bucket_before, bucket_after; /* adjust: the bucket cap's spend */
    double tenant_before, tenant_after; /* adjust: the tenant's spend (NAN:
                                           none adjusted) */
    double alpha, beta, cost_mean;      /* reset: the arm before */
    uint64_t pulls, rewards;            /* reset: the arm before */
    char client[32];                    /* who ("" unauthenticated) */
    char bucket[STORE_NAME_MAX];        /* adjust (optional), reset */
    char model[STORE_NAME_MAX];         /* reset, mark */
    char tenant[32];                    /* adjust (optional) */
    char reason[STORE_REASON_MAX];      /* NUL-terminated */
} store_admin_t;

/* A model's manual mark (db marks): down until marked up. */
typedef struct store_mark {
    uint8_t version;
    uint8_t down; /* 1 down, 0 up (marked up again) */
    uint8_t pad[6];
    uint64_t admin_id; /* the admin log entry that set it */
    double t;          /* when */
    char client[32];   /* who */
    char reason[STORE_REASON_MAX];
} store_mark_t;

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

/* A declared batch (meta "batch/ID"): its bucket, tenant and books. */
typedef struct store_batch {
    uint8_t version;
    uint8_t pad[7];
    uint64_t id;
    char bucket[STORE_NAME_MAX];
    char tenant[STORE_TENANT_MAX]; /* "" none */
    pacer_batch_t batch;
} store_batch_t;

/* Format 3, the sizes of an LP64 machine. A failure here means a stored
 * struct changed: bump STORE_FORMAT, migrate (store.c), then update. */
_Static_assert(sizeof(arm_t) == 80, "arm_t is stored: format change");
_Static_assert(sizeof(pacer_t) == 560, "pacer_t is stored: format change");
_Static_assert(sizeof(store_decision_t) == 416, "format change");
_Static_assert(sizeof(store_arm_t) == 616, "format change");
_Static_assert(sizeof(store_dext_t) == 56, "format change");
_Static_assert(offsetof(store_dext_t, parent) == STORE_DEXT_V1_SIZE,
               "format 1's dext record is a prefix of format 2's");
_Static_assert(sizeof(store_local_t) == 104, "format change");
_Static_assert(sizeof(store_tenant_t) == 40, "format change");
_Static_assert(sizeof(store_admin_t) == 1128, "format change");
_Static_assert(sizeof(store_mark_t) == 864, "format change");
_Static_assert(sizeof(store_health_t) == 48, "format change");
_Static_assert(sizeof(store_policy_t) == 24, "format change");
_Static_assert(sizeof(store_pacer_t) == 568, "format change");
_Static_assert(sizeof(store_batch_t) == 152, "format change");
_Static_assert(sizeof(store_tpacer_t) == 576, "format change");
/* store_pacer_t before pacer_t had rate_start, and before it had its
 * rate ring (formats 1 and 2): both widened at open. */
#define STORE_PACER_V1A_SIZE 72
#define STORE_PACER_V2_SIZE  80
/* The fields every earlier layout had, in place: limit_usd .. prior_rate
 * after the version byte and padding. */
#define STORE_PACER_KEPT 64

typedef struct store store_t;

/* What a state directory holds, as store_check finds it. */
typedef enum store_state {
    STORE_NEW = 0, /* no environment or no record: stamped at open */
    STORE_CURRENT, /* format STORE_FORMAT, every record readable */
    STORE_MIGRATE, /* format 0, 1 or 2, or early pacer records: fixed at
                      open */
    STORE_REFUSE   /* another format or an unreadable record */
} store_state_t;

typedef struct store_check {
    store_state_t state;
    uint32_t format; /* the format key; 0 when there is none */
    size_t widen;    /* pacer records of STORE_PACER_V1A/V2_SIZE */
    char why[320];   /* MIGRATE, REFUSE: what was found, one phrase */
} store_check_t;

/* Reads the format of the state directory dir without writing to it (a
 * read-only LMDB transaction; no writer lock): fills *chk. A directory
 * without data.mdb is STORE_NEW. Returns 0, or an LMDB or errno code when
 * the environment cannot be read (chk->state is then STORE_REFUSE). */
int store_check(const char *dir, store_check_t *chk);

/* Opens (creating if needed) the store in dir. A writer (readonly = 0)
 * takes an exclusive lock on dir/bursard.lock first: STORE_LOCKED when
 * another process holds it. Then, in one transaction, as store_check
 * would decide: a new environment is stamped, format 0 and early pacer
 * records are migrated, anything store_check refuses is STORE_EVERSION
 * (nothing written). A reader accepts STORE_CURRENT and STORE_NEW only.
 * Returns 0 or an error code; *out is NULL on failure. */
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

int store_put_dext(store_t *s, MDB_txn *txn, uint64_t id,
                   const store_dext_t *x);
int store_get_dext(store_t *s, MDB_txn *txn, uint64_t id, store_dext_t *x);
int store_del_dext(store_t *s, MDB_txn *txn, uint64_t id);

/* A local decision id's records: lext (x) and the locals key of
 * x->client and x->local_id. */
int store_put_local(store_t *s, MDB_txn *txn, uint64_t id,
                    const store_local_t *x);
/* The decision id booked by client under local_id, or STORE_NOTFOUND. */
int store_find_local(store_t *s, MDB_txn *txn, const char *client,
                     const char *local_id, uint64_t *id);
int store_get_local(store_t *s, MDB_txn *txn, uint64_t id, store_local_t *x);
/* Removes both records of local decision id (none: 0). */
int store_del_local(store_t *s, MDB_txn *txn, uint64_t id);

/* The tenant of decision id: put (name: 1 to STORE_TENANT_MAX - 1
 * bytes), get (STORE_NOTFOUND when it has none), del (none: 0). */
int store_put_tenant(store_t *s, MDB_txn *txn, uint64_t id, const char *name);
int store_get_tenant(store_t *s, MDB_txn *txn, uint64_t id, store_tenant_t *x);
int store_del_tenant(store_t *s, MDB_txn *txn, uint64_t id);

/* The admin log: put numbers a->id (the last entry's + 1) and writes it;
 * scan calls fn for every entry with id > after (0: all), in order, until
 * fn returns non-zero. A store without the log has no entries. */
int store_put_admin(store_t *s, MDB_txn *txn, store_admin_t *a);
int store_scan_admin(store_t *s, MDB_txn *txn, uint64_t after,
                     int (*fn)(const store_admin_t *a, void *ctx), void *ctx);

/* A model's mark: put, get (STORE_NOTFOUND when it never had one). */
int store_put_mark(store_t *s, MDB_txn *txn, const char *model,
                   const store_mark_t *m);
int store_get_mark(store_t *s, MDB_txn *txn, const char *model,
                   store_mark_t *m);

int store_put_pending(store_t *s, MDB_txn *txn, uint64_t id, double t);
/* Calls fn for every pending decision, oldest first, until it returns
 * non-zero. */
int store_scan_pending(store_t *s, MDB_txn *txn,
                       int (*fn)(uint64_t id, double t, void *ctx), void *ctx);
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

/* A tenant's pacer record: put, get (STORE_NOTFOUND when it has none),
 * del (none: 0), and a scan calling fn(name, record, ctx) for each, in
 * name order, until fn returns non-zero. */
int store_put_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant,
                           const store_tpacer_t *p);
int store_get_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant,
                           store_tpacer_t *p);
int store_del_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant);
int store_scan_tenant_pacers(store_t *s, MDB_txn *txn,
                             int (*fn)(const char *tenant,
                                       const store_tpacer_t *p, void *ctx),
                             void *ctx);

int store_put_dynbucket(store_t *s, MDB_txn *txn, const char *bucket);
/* Calls fn(name, ctx) for each created bucket. */
int store_scan_dynbuckets(store_t *s, MDB_txn *txn,
                          void (*fn)(const char *name, void *ctx), void *ctx);

/* meta: small values by key. get returns STORE_NOTFOUND or copies exactly
 * len bytes (a stored value of another size is MDB_BAD_VALSIZE). */
int store_put_meta(store_t *s, MDB_txn *txn, const char *key, const void *val,
                   size_t len);

/* Batches: put (replaces), del (none: 0), and every stored one, in id
 * order (a record of another size or version is skipped with a line on
 * stderr). */
int store_put_batch(store_t *s, MDB_txn *txn, const store_batch_t *b);
int store_del_batch(store_t *s, MDB_txn *txn, uint64_t id);
int store_scan_batches(store_t *s, MDB_txn *txn,
                       void (*fn)(const store_batch_t *b, void *ctx),
                       void *ctx);
int store_get_meta(store_t *s, MDB_txn *txn, const char *key, void *val,
                   size_t len);

#endif
