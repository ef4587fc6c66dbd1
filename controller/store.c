/*
 * store.c - LMDB persistence of decisions, posteriors, ledger and health.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct store {
    MDB_env *env;
    MDB_dbi meta, decisions, pending, arms, bpacers, health, dynbuckets;
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
    int fd = open(path, O_RDWR | O_CREAT, 0644);
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
    return mdb_strerror(rc);
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
    rc = mdb_env_create(&s->env);
    if (rc)
        goto err;
    if ((rc = mdb_env_set_maxdbs(s->env, 8)))
        goto err;
    if ((rc = mdb_env_set_mapsize(s->env, map_size_mb * 1024 * 1024)))
        goto err;
    unsigned flags = MDB_NOTLS;
    if (nometasync)
        flags |= MDB_NOMETASYNC;
    if (readonly)
        flags |= MDB_RDONLY;
    if ((rc = mdb_env_open(s->env, dir, flags, 0644)))
        goto err;
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots of killed readers */

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn)))
        goto err;
    unsigned cf = readonly ? 0 : MDB_CREATE;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"meta", &s->meta},
               {"decisions", &s->decisions},
               {"pending", &s->pending},
               {"arms", &s->arms},
               {"bpacers", &s->bpacers},
               {"health", &s->health},
               {"dynbuckets", &s->dynbuckets}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        if ((rc = mdb_dbi_open(txn, dbs[i].name, cf, dbs[i].dbi))) {
            mdb_txn_abort(txn);
            goto err;
        }
    }
    uint32_t fmt = STORE_VERSION, got;
    MDB_val k = {6, (void *)"format"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND && !readonly) {
        v.mv_size = sizeof fmt;
        v.mv_data = &fmt;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
    } else if (rc == 0) {
        memcpy(&got, v.mv_data, v.mv_size < sizeof got ? v.mv_size : 4);
        if (v.mv_size != sizeof got || got != STORE_VERSION)
            rc = MDB_INCOMPATIBLE;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    if (rc) {
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
    return store_put(txn, s->decisions, k, 8, d, sizeof *d);
}

int
store_get_decision(store_t *s, MDB_txn *txn, uint64_t id, store_decision_t *d)
{
    unsigned char k[8];
    store_id_key(id, k);
    int rc = store_get(txn, s->decisions, k, 8, d, sizeof *d);
    return store_check_version(rc, d->version);
}

int
store_del_decision(store_t *s, MDB_txn *txn, uint64_t id)
{
    unsigned char k[8];
    store_id_key(id, k);
    MDB_val key = {8, k};
    return mdb_del(txn, s->decisions, &key, NULL);
}

int
store_put_pending(store_t *s, MDB_txn *txn, uint64_t id, double t)
{
    unsigned char k[8];
    store_id_key(id, k);
    return store_put(txn, s->pending, k, 8, &t, sizeof t);
}

int
store_del_pending(store_t *s, MDB_txn *txn, uint64_t id)
{
    unsigned char k[8];
    store_id_key(id, k);
    MDB_val key = {8, k};
    int rc = mdb_del(txn, s->pending, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
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
    int rc = store_first(txn, s->pending, &k, &v);
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
    int rc = store_first(txn, s->decisions, &k, &v);
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
    int rc = mdb_cursor_open(txn, s->decisions, &c);
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
    return store_put(txn, s->arms, k, kl, a, sizeof *a);
}

int
store_get_arm(store_t *s, MDB_txn *txn, const char *bucket, const char *model,
              store_arm_t *a)
{
    char k[2 * STORE_NAME_MAX + 2];
    size_t kl = store_arm_key(k, sizeof k, bucket, model);
    if (!kl)
        return MDB_BAD_VALSIZE;
    int rc = store_get(txn, s->arms, k, kl, a, sizeof *a);
    return store_check_version(rc, a->version);
}

int
store_put_health(store_t *s, MDB_txn *txn, const char *model,
                 const store_health_t *h)
{
    return store_put(txn, s->health, model, strlen(model), h, sizeof *h);
}

int
store_get_health(store_t *s, MDB_txn *txn, const char *model, store_health_t *h)
{
    int rc = store_get(txn, s->health, model, strlen(model), h, sizeof *h);
    return store_check_version(rc, h->version);
}

int
store_put_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                       const store_pacer_t *p)
{
    return store_put(txn, s->bpacers, bucket, strlen(bucket), p, sizeof *p);
}

int
store_get_bucket_pacer(store_t *s, MDB_txn *txn, const char *bucket,
                       store_pacer_t *p)
{
    int rc = store_get(txn, s->bpacers, bucket, strlen(bucket), p, sizeof *p);
    return store_check_version(rc, p->version);
}

int
store_put_dynbucket(store_t *s, MDB_txn *txn, const char *bucket)
{
    return store_put(txn, s->dynbuckets, bucket, strlen(bucket), "", 0);
}

int
store_scan_dynbuckets(store_t *s, MDB_txn *txn,
                      void (*fn)(const char *name, void *ctx), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dynbuckets, &c);
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
    return store_put(txn, s->meta, key, strlen(key), val, len);
}

int
store_get_meta(store_t *s, MDB_txn *txn, const char *key, void *val, size_t len)
{
    return store_get(txn, s->meta, key, strlen(key), val, len);
}
