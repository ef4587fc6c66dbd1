/*
 * store.c - LMDB persistence of decisions, posteriors, ledger and health.
 */
#include "controller/store.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/util.h"

/* The named databases, in the order of store_db_names. */
enum {
    S_META,
    S_DECISIONS,
    S_PENDING,
    S_ARMS,
    S_BPACERS,
    S_HEALTH,
    S_DYN,
    S_DEXT,
    S_LOCALS,
    S_LEXT,
    S_TENANT,
    S_ADMIN,
    S_MARKS,
    S_TPACERS,
    S_NDB
};

static const char *const store_db_names[S_NDB] = {
    "meta",    "decisions",  "pending", "arms",   "bpacers",
    "health",  "dynbuckets", "dext",    "locals", "lext",
    "tenants", "admin",      "marks",   "tpacers"};

struct store {
    MDB_env *env;
    MDB_dbi db[S_NDB];
    int have[S_NDB]; /* 0: absent (store_check of an old environment) */
    int readonly;
    int lock_fd; /* holds the writer lock on dir/bursard.lock */
};

/* One writer per state directory: a second bursard on the same directory
 * would keep its own in-memory state and overwrite the first one's. The
 * lock (fcntl, released by the kernel when the process dies, kill -9
 * included) is on a file of its own. Returns the fd, or -1 (EAGAIN: held
 * by another process). */
static int
store_lock(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bursard.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        close(fd);
        errno = (e == EACCES) ? EAGAIN : e;
        return -1;
    }
    return fd;
}

const char *
store_strerror(int rc)
{
    if (rc == STORE_LOCKED)
        return "another bursard holds this state directory";
    if (rc == STORE_EVERSION)
        return "the state directory has another store format, or a record "
               "of a size no format has";
    if (rc < 0 && rc >= BURSAR_E_LAST)
        return bursar_strerror(rc);
    return mdb_strerror(rc);
}

/* ------------------------------------------------------------------ */
/* Format: check, stamp, migrate                                       */

/* Opens the named databases; with create = 0 an absent one is left out
 * (have[i] = 0) rather than an error. */
static int
store_open_dbs(store_t *s, MDB_txn *txn, int create)
{
    for (int i = 0; i < S_NDB; i++) {
        int rc = mdb_dbi_open(txn, store_db_names[i], create ? MDB_CREATE : 0,
                              &s->db[i]);
        if (rc == MDB_NOTFOUND && !create)
            continue;
        if (rc)
            return rc;
        s->have[i] = 1;
    }
    return 0;
}

/* Formats the key of a record for a message: bucket\0model as
 * bucket/model, an id (decisions, pending) as a number. */
static void
store_key_text(int db, const MDB_val *k, char *buf, size_t cap)
{
    if ((db == S_DECISIONS || db == S_PENDING || db == S_DEXT || db == S_LEXT ||
         db == S_TENANT || db == S_ADMIN) &&
        k->mv_size == 8) {
        unsigned long long id = 0;
        for (int i = 0; i < 8; i++)
            id = (id << 8) | ((const unsigned char *)k->mv_data)[i];
        snprintf(buf, cap, "id %llu", id);
        return;
    }
    size_t n = k->mv_size < cap - 1 ? k->mv_size : cap - 1;
    memcpy(buf, k->mv_data, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '/';
}

/* Checks one record against its size (and, when old_size is not 0, the
 * early sizes that store_open widens: a pacer's 72 or 80 bytes; when alt
 * is not 0, an older size read as it is). Returns 1 when it refuses. */
static int
store_check_rec(store_check_t *chk, int db, const MDB_val *k, const MDB_val *v,
                size_t size, size_t old_size, size_t alt, int versioned)
{
    char key[2 * STORE_NAME_MAX + 2];
    store_key_text(db, k, key, sizeof key);
    if (old_size &&
        (v->mv_size == old_size || (old_size == STORE_PACER_V1A_SIZE &&
                                    v->mv_size == STORE_PACER_V2_SIZE))) {
        chk->widen++;
    } else if (v->mv_size != size && !(alt && v->mv_size == alt)) {
        snprintf(chk->why, sizeof chk->why,
                 "%s record \"%s\" is %zu bytes where format %u has %zu",
                 store_db_names[db], key, v->mv_size, STORE_FORMAT, size);
        return 1;
    }
    if (versioned && ((const uint8_t *)v->mv_data)[0] != STORE_VERSION) {
        snprintf(chk->why, sizeof chk->why,
                 "%s record \"%s\" has record version %u where format %u "
                 "has %d",
                 store_db_names[db], key, ((const uint8_t *)v->mv_data)[0],
                 STORE_FORMAT, STORE_VERSION);
        return 1;
    }
    return 0;
}

/* The size of a meta value by key (0: any); old: the early size. */
static size_t
store_meta_size(const MDB_val *k, size_t *old, int *versioned)
{
    static const struct {
        const char *key;
        size_t size, old;
        int versioned;
    } t[] = {{"format", sizeof(uint32_t), 0, 0},
             {"seq", sizeof(uint64_t), 0, 0},
             {"pruned", sizeof(uint64_t), 0, 0},
             {"pruned_local", sizeof(double), 0, 0},
             {"clock", sizeof(double), 0, 0},
             {"policy", sizeof(store_policy_t), 0, 1},
             {"pacer", sizeof(store_pacer_t), STORE_PACER_V1A_SIZE, 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (k->mv_size == strlen(t[i].key) &&
            memcmp(k->mv_data, t[i].key, k->mv_size) == 0) {
            *old = t[i].old;
            *versioned = t[i].versioned;
            return t[i].size;
        }
    }
    *old = 0;
    *versioned = 0;
    return 0;
}

/* Walks one database (every record, or with ends only the first and the
 * last) and checks each record's size. Returns 0 or an LMDB code; a
 * refusal is in chk->state. */
static int
store_check_db(store_t *s, MDB_txn *txn, int db, store_check_t *chk,
               size_t size, size_t old_size, size_t alt, int versioned,
               int ends)
{
    if (!s->have[db])
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[db], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (int n = 0; rc == 0; n++) {
        size_t sz = size, old = old_size;
        int ver = versioned;
        if (db == S_META && !(sz = store_meta_size(&k, &old, &ver))) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT); /* not ours */
            continue;
        }
        if (store_check_rec(chk, db, &k, &v, sz, old, alt, ver)) {
            chk->state = STORE_REFUSE;
            break;
        }
        rc = mdb_cursor_get(c, &k, &v, ends && n == 0 ? MDB_LAST : MDB_NEXT);
        if (ends && n == 1)
            rc = MDB_NOTFOUND;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Every record but the decisions, whose layout never changed and which
 * may be millions: the first and the last of those, and of the dext
 * records (format 1's and format 2's sizes both read). */
static int
store_check_records(store_t *s, MDB_txn *txn, store_check_t *chk)
{
    static const struct {
        int db;
        size_t size, old, alt;
        int versioned, ends;
    } t[] = {{S_META, 0, 0, 0, 0, 0},
             {S_ARMS, sizeof(store_arm_t), 0, 0, 1, 0},
             {S_BPACERS, sizeof(store_pacer_t), STORE_PACER_V1A_SIZE, 0, 1, 0},
             {S_HEALTH, sizeof(store_health_t), 0, 0, 1, 0},
             {S_DECISIONS, sizeof(store_decision_t), 0, 0, 1, 1},
             {S_DEXT, sizeof(store_dext_t), 0, STORE_DEXT_V1_SIZE, 1, 1},
             {S_LEXT, sizeof(store_local_t), 0, 0, 1, 1},
             {S_TENANT, sizeof(store_tenant_t), 0, 0, 1, 1},
             {S_ADMIN, sizeof(store_admin_t), 0, 0, 1, 1},
             {S_MARKS, sizeof(store_mark_t), 0, 0, 1, 0},
             {S_TPACERS, sizeof(store_tpacer_t), 0, 0, 1, 0},
             {S_LOCALS, sizeof(uint64_t), 0, 0, 0, 1},
             {S_PENDING, sizeof(double), 0, 0, 0, 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = store_check_db(s, txn, t[i].db, chk, t[i].size, t[i].old,
                                t[i].alt, t[i].versioned, t[i].ends);
        if (rc || chk->state == STORE_REFUSE)
            return rc;
    }
    return 0;
}

/* 1 when no named database holds a record. */
static int
store_is_empty(store_t *s, MDB_txn *txn)
{
    for (int i = 0; i < S_NDB; i++) {
        MDB_stat st;
        if (s->have[i] && mdb_stat(txn, s->db[i], &st) == 0 && st.ms_entries)
            return 0;
    }
    return 1;
}

/* Decides what the environment holds (store_check_t). Reads only. */
static int
store_classify(store_t *s, MDB_txn *txn, store_check_t *chk)
{
    memset(chk, 0, sizeof *chk);
    MDB_val k = {6, (void *)"format"}, v;
    int rc =
        s->have[S_META] ? mdb_get(txn, s->db[S_META], &k, &v) : MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        if (store_is_empty(s, txn)) {
            chk->state = STORE_NEW;
            return 0;
        }
        snprintf(chk->why, sizeof chk->why,
                 "no format key: written before format versions");
    } else if (rc) {
        return rc;
    } else if (v.mv_size != sizeof chk->format) {
        chk->state = STORE_REFUSE;
        chk->format = UINT32_MAX;
        snprintf(chk->why, sizeof chk->why,
                 "its format key is %zu bytes, not 4: not a bursar state",
                 v.mv_size);
        return 0;
    } else {
        memcpy(&chk->format, v.mv_data, sizeof chk->format);
        if (chk->format == STORE_FORMAT_V1) {
            snprintf(chk->why, sizeof chk->why,
                     "format 1: decisions without a cascade step, read as "
                     "first steps");
        } else if (chk->format == STORE_FORMAT_V2) {
            snprintf(chk->why, sizeof chk->why,
                     "format 2: pacers without the rate ring");
        } else if (chk->format != STORE_FORMAT) {
            chk->state = STORE_REFUSE;
            snprintf(chk->why, sizeof chk->why, "%s",
                     chk->format > STORE_FORMAT
                         ? "written by a newer bursard"
                         : "written by an older bursard");
            return 0;
        }
    }
    if ((rc = store_check_records(s, txn, chk)) || chk->state == STORE_REFUSE)
        return rc;
    if (chk->format == 0 || chk->format == STORE_FORMAT_V1 ||
        chk->format == STORE_FORMAT_V2 || chk->widen) {
        chk->state = STORE_MIGRATE;
        if (chk->widen)
            snprintf(chk->why + strlen(chk->why),
                     sizeof chk->why - strlen(chk->why),
                     "%s%zu pacer records widened to the rate ring",
                     chk->why[0] ? "; " : "", chk->widen);
    } else {
        chk->state = STORE_CURRENT;
    }
    return 0;
}

/* Widens a pacer record of STORE_PACER_V1A_SIZE or STORE_PACER_V2_SIZE
 * in the cursor's place: the fields both had (the window, its spend,
 * reservations and requests, the prior), no batch share held (in the
 * place of the old min_elapsed_s), an empty ring and rate_start NaN: the
 * controller starts the ring at load (pacer_resume). */
static int
store_widen_one(MDB_cursor *c, const MDB_val *k, const MDB_val *v)
{
    store_pacer_t p;
    memset(&p, 0, sizeof p);
    memcpy(&p, v->mv_data, STORE_PACER_KEPT);
    p.pacer.held_usd = 0.0;
    p.pacer.rate_start = NAN;
    p.pacer.slot_last = -1.0;
    /* the key is copied out of the page that the put rewrites */
    char kb[512];
    if (k->mv_size > sizeof kb)
        return MDB_BAD_VALSIZE;
    memcpy(kb, k->mv_data, k->mv_size);
    MDB_val nk = {k->mv_size, kb}, nv = {sizeof p, &p};
    return mdb_cursor_put(c, &nk, &nv, MDB_CURRENT);
}

static int
store_widen_pacers(store_t *s, MDB_txn *txn)
{
    int dbs[2] = {S_META, S_BPACERS};
    for (int i = 0; i < 2; i++) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(txn, s->db[dbs[i]], &c);
        if (rc)
            return rc;
        MDB_val k, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            int pacer = dbs[i] == S_BPACERS ||
                        (k.mv_size == 5 && memcmp(k.mv_data, "pacer", 5) == 0);
            if (pacer &&
                (v.mv_size == STORE_PACER_V1A_SIZE ||
                 v.mv_size == STORE_PACER_V2_SIZE) &&
                (rc = store_widen_one(c, &k, &v)))
                break;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
        if (rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

/* Acts on what store_classify found, in the open's transaction. */
static int
store_settle_format(store_t *s, MDB_txn *txn)
{
    store_check_t chk;
    int rc = store_classify(s, txn, &chk);
    if (rc)
        return rc;
    if (chk.state == STORE_REFUSE ||
        (s->readonly && chk.state == STORE_MIGRATE))
        return STORE_EVERSION;
    if (s->readonly || chk.state == STORE_CURRENT)
        return 0;
    if (chk.widen && (rc = store_widen_pacers(s, txn)))
        return rc;
    uint32_t fmt = STORE_FORMAT;
    MDB_val k = {6, (void *)"format"}, v = {sizeof fmt, &fmt};
    return mdb_put(txn, s->db[S_META], &k, &v, 0);
}

static int
store_env_new(store_t *s, const char *dir, size_t map_size_mb, unsigned flags)
{
    int rc = mdb_env_create(&s->env);
    if (rc)
        return rc;
    if ((rc = mdb_env_set_maxdbs(s->env, S_NDB + 1)))
        return rc;
    if (map_size_mb &&
        (rc = mdb_env_set_mapsize(s->env, map_size_mb * 1024 * 1024)))
        return rc;
    return mdb_env_open(s->env, dir, flags | MDB_NOTLS, 0600);
}

int
store_check(const char *dir, store_check_t *chk)
{
    memset(chk, 0, sizeof *chk);
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0 && errno == ENOENT)
        return 0; /* STORE_NEW */
    store_t s;
    memset(&s, 0, sizeof s);
    chk->state = STORE_REFUSE;
    MDB_txn *txn = NULL;
    int rc = store_env_new(&s, dir, 0, MDB_RDONLY);
    if (!rc)
        rc = mdb_txn_begin(s.env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = store_open_dbs(&s, txn, 0);
    if (!rc)
        rc = store_classify(&s, txn, chk);
    if (txn)
        mdb_txn_abort(txn);
    if (s.env)
        mdb_env_close(s.env);
    if (rc)
        chk->state = STORE_REFUSE;
    return rc;
}

int
store_open(store_t **out, const char *dir, size_t map_size_mb, int nometasync,
           int readonly)
{
    *out = NULL;
    store_t *s = bursar_calloc(1, sizeof *s);
    s->readonly = readonly;
    s->lock_fd = -1;
    int rc;
    if (!readonly && (s->lock_fd = store_lock(dir)) < 0) {
        rc = errno == EAGAIN ? STORE_LOCKED : errno;
        free(s);
        return rc;
    }
    unsigned flags =
        (nometasync ? MDB_NOMETASYNC : 0) | (readonly ? MDB_RDONLY : 0);
    if ((rc = store_env_new(s, dir, map_size_mb, flags)))
        goto err;
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots of killed readers */

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn)))
        goto err;
    if (!(rc = store_open_dbs(s, txn, !readonly)))
        for (int i = 0; i < S_NDB; i++)
            if (!s->have[i] && i != S_DEXT && i != S_TENANT && i != S_ADMIN &&
                i != S_MARKS && i != S_TPACERS)
                rc = MDB_NOTFOUND; /* a reader needs a written store */
    if (rc || (rc = store_settle_format(s, txn))) {
        mdb_txn_abort(txn);
        goto err;
    }
    if ((rc = mdb_txn_commit(txn)))
        goto err;
    *out = s;
    return 0;
err:
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    return rc;
}

void
store_destroy(store_t **sp)
{
    if (!sp || !*sp)
        return;
    mdb_env_close((*sp)->env);
    if ((*sp)->lock_fd >= 0)
        close((*sp)->lock_fd);
    free(*sp);
    *sp = NULL;
}

int
store_begin(store_t *s, int readonly, MDB_txn **txn)
{
    return mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, txn);
}

int
store_commit(MDB_txn *txn)
{
    return mdb_txn_commit(txn);
}

void
store_abort(MDB_txn *txn)
{
    mdb_txn_abort(txn);
}

/* ------------------------------------------------------------------ */
/* Generic helpers                                                     */

static void
store_id_key(uint64_t id, unsigned char k[8])
{
    for (int i = 7; i >= 0; i--) {
        k[i] = (unsigned char)(id & 0xff);
        id >>= 8;
    }
}

static uint64_t
store_key_id(const unsigned char *k)
{
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | k[i];
    return id;
}

static int
store_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
          const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Reads a versioned record of exactly len bytes. */
static int
store_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, void *val,
          size_t len)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != len)
        return MDB_BAD_VALSIZE;
    memcpy(val, v.mv_data, len);
    return 0;
}

static int
store_check_version(int rc, uint8_t version)
{
    if (rc == 0 && version != STORE_VERSION)
        return MDB_INCOMPATIBLE;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

int
store_put_decision(store_t *s, MDB_txn *txn, const store_decision_t *d)
{
    unsigned char k[8];
    store_id_key(d->id, k);
    return store_put(txn, s->db[S_DECISIONS], k, 8, d, sizeof *d);
}

int
store_get_decision(store_t *s, MDB_txn *txn, uint64_t id, store_decision_t *d)
{
    unsigned char k[8];
    store_id_key(id, k);
    int rc = store_get(txn, s->db[S_DECISIONS], k, 8, d, sizeof *d);
    return store_check_version(rc, d->version);
}

int
store_del_decision(store_t *s, MDB_txn *txn, uint64_t id)
{
    unsigned char k[8];
    store_id_key(id, k);
    MDB_val key = {8, k};
    return mdb_del(txn, s->db[S_DECISIONS], &key, NULL);
}

int
store_put_dext(store_t *s, MDB_txn *txn, uint64_t id, const store_dext_t *x)
{
    unsigned char k[8];
    store_id_key(id, k);
    return store_put(txn, s->db[S_DEXT], k, 8, x, sizeof *x);
}

int
store_get_dext(store_t *s, MDB_txn *txn, uint64_t id, store_dext_t *x)
{
    if (!s->have[S_DEXT])
        return STORE_NOTFOUND;
    unsigned char k[8];
    store_id_key(id, k);
    MDB_val key = {8, k}, v;
    int rc = mdb_get(txn, s->db[S_DEXT], &key, &v);
    if (rc)
        return rc;
    /* format 1's records are the first STORE_DEXT_V1_SIZE bytes (step
     * was padding, written as zero): step 0, no parent */
    if (v.mv_size != sizeof *x && v.mv_size != STORE_DEXT_V1_SIZE)
        return MDB_BAD_VALSIZE;
    memset(x, 0, sizeof *x);
    memcpy(x, v.mv_data, v.mv_size);
    return store_check_version(0, x->version);
}

/* Deletes the record of id in db (none there: done). */
static int
store_del_id(MDB_txn *txn, MDB_dbi db, uint64_t id)
{
    unsigned char k[8];
    store_id_key(id, k);
    MDB_val key = {8, k};
    int rc = mdb_del(txn, db, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_del_dext(store_t *s, MDB_txn *txn, uint64_t id)
{
    return store_del_id(txn, s->db[S_DEXT], id);
}

static size_t store_arm_key(char *k, size_t cap, const char *bucket,
                            const char *model);

/* The key of a local decision: client "\0" local id. */
static size_t
store_local_key(char *k, size_t cap, const char *client, const char *local_id)
{
    return store_arm_key(k, cap, client, local_id);
}

int
store_put_local(store_t *s, MDB_txn *txn, uint64_t id, const store_local_t *x)
{
    char lk[2 * STORE_LOCAL_ID_MAX];
    size_t n = store_local_key(lk, sizeof lk, x->client, x->local_id);
    if (!n)
        return MDB_BAD_VALSIZE;
    unsigned char k[8];
    store_id_key(id, k);
    int rc = store_put(txn, s->db[S_LEXT], k, 8, x, sizeof *x);
    return rc ? rc : store_put(txn, s->db[S_LOCALS], lk, n, &id, sizeof id);
}

int
store_find_local(store_t *s, MDB_txn *txn, const char *client,
                 const char *local_id, uint64_t *id)
{
    if (!s->have[S_LOCALS])
        return STORE_NOTFOUND;
    char lk[2 * STORE_LOCAL_ID_MAX];
    size_t n = store_local_key(lk, sizeof lk, client, local_id);
    if (!n)
        return STORE_NOTFOUND;
    return store_get(txn, s->db[S_LOCALS], lk, n, id, sizeof *id);
}

int
store_get_local(store_t *s, MDB_txn *txn, uint64_t id, store_local_t *x)
{
    if (!s->have[S_LEXT])
        return STORE_NOTFOUND;
    unsigned char k[8];
    store_id_key(id, k);
    int rc = store_get(txn, s->db[S_LEXT], k, 8, x, sizeof *x);
    if (rc == 0) {
        x->client[sizeof x->client - 1] = '\0';
        x->local_id[sizeof x->local_id - 1] = '\0';
    }
    return store_check_version(rc, x->version);
}

int
store_del_local(store_t *s, MDB_txn *txn, uint64_t id)
{
    store_local_t x;
    int rc = store_get_local(s, txn, id, &x);
    if (rc)
        return rc == STORE_NOTFOUND ? 0 : rc;
    char lk[2 * STORE_LOCAL_ID_MAX];
    size_t n = store_local_key(lk, sizeof lk, x.client, x.local_id);
    MDB_val key = {n, lk};
    rc = n ? mdb_del(txn, s->db[S_LOCALS], &key, NULL) : 0;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    return store_del_id(txn, s->db[S_LEXT], id);
}

int
store_put_tenant(store_t *s, MDB_txn *txn, uint64_t id, const char *name)
{
    store_tenant_t x = {.version = STORE_VERSION};
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof x.name)
        return MDB_BAD_VALSIZE;
    memcpy(x.name, name, n + 1);
    unsigned char k[8];
    store_id_key(id, k);
    return store_put(txn, s->db[S_TENANT], k, 8, &x, sizeof x);
}

int
store_get_tenant(store_t *s, MDB_txn *txn, uint64_t id, store_tenant_t *x)
{
    if (!s->have[S_TENANT])
        return STORE_NOTFOUND;
    unsigned char k[8];
    store_id_key(id, k);
    int rc = store_get(txn, s->db[S_TENANT], k, 8, x, sizeof *x);
    if (rc == 0)
        x->name[sizeof x->name - 1] = '\0';
    return store_check_version(rc, x->version);
}

int
store_del_tenant(store_t *s, MDB_txn *txn, uint64_t id)
{
    return s->have[S_TENANT] ? store_del_id(txn, s->db[S_TENANT], id) : 0;
}

/* ------------------------------------------------------------------ */
/* The admin log and the models' marks                                 */

int
store_put_admin(store_t *s, MDB_txn *txn, store_admin_t *a)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_ADMIN], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    uint64_t last = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == 0 && k.mv_size != 8)
        return MDB_BAD_VALSIZE;
    if (rc == 0)
        last = store_key_id(k.mv_data);
    else if (rc != MDB_NOTFOUND)
        return rc;
    a->version = STORE_VERSION;
    a->id = last + 1;
    unsigned char kb[8];
    store_id_key(a->id, kb);
    return store_put(txn, s->db[S_ADMIN], kb, 8, a, sizeof *a);
}

int
store_scan_admin(store_t *s, MDB_txn *txn, uint64_t after,
                 int (*fn)(const store_admin_t *a, void *ctx), void *ctx)
{
    if (!s->have[S_ADMIN] || after == UINT64_MAX)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_ADMIN], &c);
    if (rc)
        return rc;
    unsigned char kb[8];
    store_id_key(after + 1, kb);
    MDB_val k = {8, kb}, v;
    store_admin_t a;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (v.mv_size != sizeof a) {
            rc = MDB_BAD_VALSIZE;
            break;
        }
        memcpy(&a, v.mv_data, sizeof a);
        if (a.version != STORE_VERSION) {
            rc = MDB_INCOMPATIBLE;
            break;
        }
        a.client[sizeof a.client - 1] = '\0';
        a.bucket[sizeof a.bucket - 1] = '\0';
        a.model[sizeof a.model - 1] = '\0';
        a.tenant[sizeof a.tenant - 1] = '\0';
        a.reason[sizeof a.reason - 1] = '\0';
        if (fn(&a, ctx))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_put_mark(store_t *s, MDB_txn *txn, const char *model,
               const store_mark_t *m)
{
    return store_put(txn, s->db[S_MARKS], model, strlen(model), m, sizeof *m);
}

int
store_get_mark(store_t *s, MDB_txn *txn, const char *model, store_mark_t *m)
{
    if (!s->have[S_MARKS])
        return STORE_NOTFOUND;
    int rc = store_get(txn, s->db[S_MARKS], model, strlen(model), m, sizeof *m);
    if (rc == 0) {
        m->client[sizeof m->client - 1] = '\0';
        m->reason[sizeof m->reason - 1] = '\0';
    }
    return store_check_version(rc, m->version);
}

int
store_scan_pending(store_t *s, MDB_txn *txn,
                   int (*fn)(uint64_t id, double t, void *ctx), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_PENDING], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        double t;
        if (k.mv_size != 8 || v.mv_size != sizeof t) {
            rc = MDB_BAD_VALSIZE;
            break;
        }
        memcpy(&t, v.mv_data, sizeof t);
        if (fn(store_key_id(k.mv_data), t, ctx))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_put_pending(store_t *s, MDB_txn *txn, uint64_t id, double t)
{
    unsigned char k[8];
    store_id_key(id, k);
    return store_put(txn, s->db[S_PENDING], k, 8, &t, sizeof t);
}

int
store_del_pending(store_t *s, MDB_txn *txn, uint64_t id)
{
    return store_del_id(txn, s->db[S_PENDING], id);
}

static int
store_first(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    rc = mdb_cursor_get(c, k, v, MDB_FIRST);
    mdb_cursor_close(c);
    return rc;
}

int
store_oldest_pending(store_t *s, MDB_txn *txn, uint64_t *id, double *t)
{
    MDB_val k, v;
    int rc = store_first(txn, s->db[S_PENDING], &k, &v);
    if (rc)
        return rc;
    if (k.mv_size != 8 || v.mv_size != sizeof(double))
        return MDB_BAD_VALSIZE;
    *id = store_key_id(k.mv_data);
    memcpy(t, v.mv_data, sizeof *t);
    return 0;
}

int
store_oldest_decision(store_t *s, MDB_txn *txn, store_decision_t *d)
{
    MDB_val k, v;
    int rc = store_first(txn, s->db[S_DECISIONS], &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != sizeof *d)
        return MDB_BAD_VALSIZE;
    memcpy(d, v.mv_data, sizeof *d);
    return store_check_version(0, d->version);
}

int
store_scan_decisions(store_t *s, MDB_txn *txn, uint64_t after,
                     store_decision_fn fn, void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_DECISIONS], &c);
    if (rc)
        return rc;
    unsigned char kb[8];
    store_id_key(after + 1, kb);
    MDB_val k = {8, kb}, v;
    store_decision_t d;
    rc = after == UINT64_MAX ? MDB_NOTFOUND
                             : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (v.mv_size != sizeof d) {
            rc = MDB_BAD_VALSIZE;
            break;
        }
        memcpy(&d, v.mv_data, sizeof d);
        if (d.version != STORE_VERSION) {
            rc = MDB_INCOMPATIBLE;
            break;
        }
        if (fn(&d, ctx))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ------------------------------------------------------------------ */
/* Arms, health, pacers, buckets, meta                                 */

static size_t
store_arm_key(char *k, size_t cap, const char *bucket, const char *model)
{
    size_t bl = strlen(bucket), ml = strlen(model);
    if (bl + ml + 1 > cap)
        return 0;
    memcpy(k, bucket, bl);
    k[bl] = '\0';
    memcpy(k + bl + 1, model, ml);
    return bl + 1 + ml;
}

int
store_put_arm(store_t *s, MDB_txn *txn, const char *bucket, const char *model,
              const store_arm_t *a)
{
    char k[2 * STORE_NAME_MAX + 2];
    size_t kl = store_arm_key(k, sizeof k, bucket, model);
    if (!kl)
        return MDB_BAD_VALSIZE;
    return store_put(txn, s->db[S_ARMS], k, kl, a, sizeof *a);
}

int
store_get_arm(store_t *s, MDB_txn *txn, const char *bucket, const char *model,
              store_arm_t *a)
{
    char k[2 * STORE_NAME_MAX + 2];
    size_t kl = store_arm_key(k, sizeof k, bucket, model);
    if (!kl)
        return MDB_BAD_VALSIZE;
    int rc = store_get(txn, s->db[S_ARMS], k, kl, a, sizeof *a);
    return store_check_version(rc, a->version);
}

int
store_put_health(store_t *s, MDB_txn *txn, const char *model,
                 const store_health_t *h)
{
    return store_put(txn, s->db[S_HEALTH], model, strlen(model), h, sizeof *h);
}

int
store_get_health(store_t *s, MDB_txn *txn, const char *model, store_health_t *h)
{
    int rc =
        store_get(txn, s->db[S_HEALTH], model, strlen(model), h, sizeof *h);
    return store_check_version(rc, h->version);
}

int
store_put_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                       const store_pacer_t *p)
{
    return store_put(txn, s->db[S_BPACERS], bucket, strlen(bucket), p,
                     sizeof *p);
}

int
store_get_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                       store_pacer_t *p)
{
    int rc =
        store_get(txn, s->db[S_BPACERS], bucket, strlen(bucket), p, sizeof *p);
    return store_check_version(rc, p->version);
}

int
store_put_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant,
                       const store_tpacer_t *p)
{
    return store_put(txn, s->db[S_TPACERS], tenant, strlen(tenant), p,
                     sizeof *p);
}

int
store_get_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant,
                       store_tpacer_t *p)
{
    if (!s->have[S_TPACERS])
        return STORE_NOTFOUND;
    int rc =
        store_get(txn, s->db[S_TPACERS], tenant, strlen(tenant), p, sizeof *p);
    return store_check_version(rc, p->version);
}

int
store_del_tenant_pacer(store_t *s, MDB_txn *txn, const char *tenant)
{
    if (!s->have[S_TPACERS])
        return 0;
    MDB_val k = {strlen(tenant), (void *)tenant};
    int rc = mdb_del(txn, s->db[S_TPACERS], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_scan_tenant_pacers(store_t *s, MDB_txn *txn,
                         int (*fn)(const char *tenant, const store_tpacer_t *p,
                                   void *ctx),
                         void *ctx)
{
    if (!s->have[S_TPACERS])
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_TPACERS], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        char name[STORE_TENANT_MAX];
        store_tpacer_t p;
        if (k.mv_size == 0 || k.mv_size >= sizeof name ||
            v.mv_size != sizeof p) {
            rc = MDB_BAD_VALSIZE;
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        memcpy(&p, v.mv_data, sizeof p);
        if (p.version == STORE_VERSION && fn(name, &p, ctx))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_put_dynbucket(store_t *s, MDB_txn *txn, const char *bucket)
{
    return store_put(txn, s->db[S_DYN], bucket, strlen(bucket), "", 0);
}

int
store_scan_dynbuckets(store_t *s, MDB_txn *txn,
                      void (*fn)(const char *name, void *ctx), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_DYN], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        char name[STORE_NAME_MAX];
        if (k.mv_size < sizeof name) {
            memcpy(name, k.mv_data, k.mv_size);
            name[k.mv_size] = '\0';
            fn(name, ctx);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_put_meta(store_t *s, MDB_txn *txn, const char *key, const void *val,
               size_t len)
{
    return store_put(txn, s->db[S_META], key, strlen(key), val, len);
}

int
store_get_meta(store_t *s, MDB_txn *txn, const char *key, void *val, size_t len)
{
    return store_get(txn, s->db[S_META], key, strlen(key), val, len);
}

/* ------------------------------------------------------------------ */
/* Batches (meta "batch/ID")                                          */

static void
store_batch_key(uint64_t id, char k[24])
{
    snprintf(k, 24, "batch/%016llx", (unsigned long long)id);
}

int
store_put_batch(store_t *s, MDB_txn *txn, const store_batch_t *b)
{
    char k[24];
    store_batch_key(b->id, k);
    return store_put(txn, s->db[S_META], k, strlen(k), b, sizeof *b);
}

int
store_del_batch(store_t *s, MDB_txn *txn, uint64_t id)
{
    char k[24];
    store_batch_key(id, k);
    MDB_val key = {strlen(k), k};
    int rc = mdb_del(txn, s->db[S_META], &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_scan_batches(store_t *s, MDB_txn *txn,
                   void (*fn)(const store_batch_t *b, void *ctx), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db[S_META], &c);
    if (rc)
        return rc;
    MDB_val k = {6, (void *)"batch/"}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size > 6 && memcmp(k.mv_data, "batch/", 6) == 0) {
        store_batch_t b;
        if (v.mv_size == sizeof b &&
            ((const uint8_t *)v.mv_data)[0] == STORE_VERSION) {
            memcpy(&b, v.mv_data, sizeof b);
            fn(&b, ctx);
        } else {
            fprintf(stderr,
                    "bursard: store: batch record of %zu bytes skipped\n",
                    v.mv_size);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}
