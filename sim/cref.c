/*
 * cref.c - the hindsight cascade reference (see cref.h).
 *
 * Orders share prefixes: the orders of a bucket are the nodes of a tree
 * whose root is the empty order and whose children append one unused
 * model. A depth-first walk keeps, per depth and per row, the state of the
 * cascade after that prefix,
 *
 *     R  probability that every available step so far rejected,
 *     Q  sum_s R_s p_s q_s over those steps,
 *     C  sum_s R_s c_s,
 *     V  the prefix's quality as a finished order, Q + R q_last (0: no
 *        step available yet),
 *     A  whether any step was available,
 *
 * so appending an available model (p, q, c) is O(1) per row: V' = Q + R q
 * (reached with probability R, its answer is returned whether it passes
 * or, being the last, fails), Q' = Q + R p q, C' = C + R c, R' = R (1 - p).
 * Written so, one step gives V = q and C = c exactly, and S = 1 reproduces
 * replay_best_static's means bit for bit. Every order costs O(rows of its
 * bucket) once.
 */
#include "sim/cref.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policies/base.h"
#include "policies/lp.h"

/* ------------------------------------------------------------ the orders */

typedef struct cref_bucket {
    size_t rows;     /* rows of the bucket */
    size_t n_orders; /* orders enumerated */
    size_t cap;      /* orders counted (cref_count) */
    int *models;     /* n_orders x steps: dataset model ids, -1 padded */
    double *v, *c;   /* expected quality and cost per request, n_orders */
    size_t n_front;  /* orders on the Pareto front */
    size_t *front;   /* their indices, cheapest first */
    double *fv, *fc; /* their quality and cost (the LP's arms) */
} cref_bucket_t;

struct cref {
    size_t n_buckets; /* the dataset's */
    size_t n_rows;    /* the dataset's (traffic shares: rows / n_rows) */
    unsigned steps;   /* S */
    double max_cost;  /* dearest order anywhere (the no-budget target) */
    cref_bucket_t *b; /* n_buckets */
};

/* The state of a cascade prefix over the rows of a bucket (see above). */
typedef struct cref_state {
    double *r, *q, *c, *v;
    unsigned char *a;
} cref_state_t;

/* One bucket's walk. Cells are laid out per present model (k x n), so the
 * inner loop runs along one model's rows. */
typedef struct cref_walk {
    size_t n;          /* rows of the bucket */
    size_t k;          /* models present in the bucket */
    unsigned steps;    /* S */
    const int *mid;    /* dataset model id per present model, k */
    unsigned char *ok; /* k x n: cell is DATASET_OK */
    double *p, *q, *c; /* k x n: P(pass), outcome, cost */
    cref_state_t st[CREF_MAX_STEPS + 1]; /* per depth */
    size_t path[CREF_MAX_STEPS];         /* present-model index per step */
    unsigned char *used;                 /* k */
    cref_bucket_t *out;
} cref_walk_t;

/* Orders of 1 .. steps distinct models out of k, or CREF_MAX_ORDERS + 1
 * when there are more than CREF_MAX_ORDERS. */
static size_t
cref_count(size_t k, unsigned steps)
{
    size_t total = 0, perm = 1;
    for (size_t len = 1; len <= steps && len <= k; len++) {
        perm *= k - (len - 1); /* k (k-1) ... (k-len+1) */
        total += perm;
        if (perm > CREF_MAX_ORDERS || total > CREF_MAX_ORDERS)
            return CREF_MAX_ORDERS + 1;
    }
    return total;
}

/* Appends present model m at depth d (state st[d] -> st[d + 1]) and
 * records the order path[0 .. d] with its expected quality and cost. */
static void
cref_walk_step(cref_walk_t *w, unsigned d, size_t m)
{
    const cref_state_t *s0 = &w->st[d];
    cref_state_t *s1 = &w->st[d + 1];
    const unsigned char *ok = w->ok + m * w->n;
    const double *p = w->p + m * w->n, *q = w->q + m * w->n;
    const double *c = w->c + m * w->n;
    double sv = 0.0, sc = 0.0;
    size_t rows = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (ok[i]) {
            s1->v[i] = s0->q[i] + s0->r[i] * q[i];
            s1->q[i] = s0->q[i] + s0->r[i] * p[i] * q[i];
            s1->c[i] = s0->c[i] + s0->r[i] * c[i];
            s1->r[i] = s0->r[i] * (1.0 - p[i]);
            s1->a[i] = 1;
        } else { /* skipped: the replay's exclusion, at cost 0 */
            s1->v[i] = s0->v[i];
            s1->q[i] = s0->q[i];
            s1->c[i] = s0->c[i];
            s1->r[i] = s0->r[i];
            s1->a[i] = s0->a[i];
        }
        if (s1->a[i]) {
            sv += s1->v[i];
            sc += s1->c[i];
            rows++;
        }
    }
    cref_bucket_t *o = w->out;
    assert(o->n_orders < o->cap); /* the walk meets what cref_count counts */
    size_t at = o->n_orders++;
    int *models = o->models + at * w->steps;
    for (unsigned s = 0; s < w->steps; s++)
        models[s] = s <= d ? w->mid[w->path[s]] : -1;
    /* rows >= 1: path[0] is present, so it has an OK cell in the bucket */
    o->v[at] = rows ? sv / (double)rows : 0.0;
    o->c[at] = rows ? sc / (double)rows : 0.0;
}

/* Every order that extends the prefix path[0 .. d-1] (state st[d]). */
static void
cref_walk_node(cref_walk_t *w, unsigned d)
{
    if (d == w->steps)
        return;
    for (size_t m = 0; m < w->k; m++) {
        if (w->used[m])
            continue;
        w->used[m] = 1;
        w->path[d] = m;
        cref_walk_step(w, d, m);
        cref_walk_node(w, d + 1);
        w->used[m] = 0;
    }
}

/* ------------------------------------------------------ the Pareto front */

typedef struct cref_pt {
    double c, v;
    size_t i;
} cref_pt_t;

/* Cheaper first, then better, then the earlier order: lp.c's arm order. */
static int
cref_pt_cmp(const void *x, const void *y)
{
    const cref_pt_t *a = x, *b = y;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

/* The orders no other order beats on both cost and quality, cheapest
 * first. lp.c's hull skips, in the same order, every arm no better than
 * the last one kept, so it builds the same hull from these as from all. */
static void
cref_front(cref_bucket_t *o)
{
    cref_pt_t *pt = bursar_malloc((o->n_orders + 1) * sizeof *pt);
    for (size_t i = 0; i < o->n_orders; i++) {
        pt[i].c = o->c[i];
        pt[i].v = o->v[i];
        pt[i].i = i;
    }
    qsort(pt, o->n_orders, sizeof *pt, cref_pt_cmp);
    o->front = bursar_malloc((o->n_orders + 1) * sizeof *o->front);
    o->fv = bursar_malloc((o->n_orders + 1) * sizeof *o->fv);
    o->fc = bursar_malloc((o->n_orders + 1) * sizeof *o->fc);
    for (size_t t = 0; t < o->n_orders; t++) {
        if (o->n_front && pt[t].v <= o->fv[o->n_front - 1])
            continue;
        o->front[o->n_front] = pt[t].i;
        o->fv[o->n_front] = pt[t].v;
        o->fc[o->n_front] = pt[t].c;
        o->n_front++;
    }
    free(pt);
}

/* ----------------------------------------------------------- the build */

/* Fills the walk's cells for the n rows of a bucket (row ids in rows) and
 * its k present models. */
static void
cref_walk_cells(cref_walk_t *w, const dataset_t *ds, const vmodel_t *vm,
                const size_t *rows)
{
    for (size_t m = 0; m < w->k; m++)
        for (size_t i = 0; i < w->n; i++) {
            size_t cell = dataset_idx(ds, rows[i], w->mid[m]),
                   at = m * w->n + i;
            w->ok[at] = ds->status[cell] == DATASET_OK;
            w->p[at] = vmodel_pass_prob(vm, ds, rows[i], w->mid[m]);
            w->q[at] = ds->outcome[cell];
            w->c[at] = ds->cost[cell];
        }
}

/* Walks one bucket: its n rows (ids in rows) and k present models. */
static void
cref_walk_bucket(cref_bucket_t *o, const dataset_t *ds, const vmodel_t *vm,
                 unsigned steps, const size_t *rows, size_t n, const int *mid,
                 size_t k)
{
    cref_walk_t w;
    memset(&w, 0, sizeof w);
    w.n = n;
    w.k = k;
    w.steps = steps;
    w.mid = mid;
    w.out = o;
    w.ok = bursar_malloc(k * n + 1);
    w.p = bursar_malloc((k * n + 1) * sizeof(double));
    w.q = bursar_malloc((k * n + 1) * sizeof(double));
    w.c = bursar_malloc((k * n + 1) * sizeof(double));
    w.used = bursar_calloc(k + 1, 1);
    cref_walk_cells(&w, ds, vm, rows);
    /* one block for every depth's state: r, q, c, v doubles then a */
    double *blk = bursar_malloc((steps + 1) * (4 * n + 1) * sizeof(double));
    unsigned char *ab = bursar_calloc((steps + 1) * (n + 1), 1);
    for (unsigned d = 0; d <= steps; d++) {
        cref_state_t *s = &w.st[d];
        s->r = blk + d * (4 * n + 1);
        s->q = s->r + n;
        s->c = s->q + n;
        s->v = s->c + n;
        s->a = ab + d * (n + 1);
    }
    for (size_t i = 0; i < n; i++) { /* the empty order */
        w.st[0].r[i] = 1.0;
        w.st[0].q[i] = w.st[0].c[i] = w.st[0].v[i] = 0.0;
    }
    cref_walk_node(&w, 0);
    free(blk);
    free(ab);
    free(w.ok);
    free(w.p);
    free(w.q);
    free(w.c);
    free(w.used);
}

/* Row ids grouped by bucket: rows of bucket b are ids[off[b] .. off[b+1]). */
static void
cref_group_rows(const dataset_t *ds, size_t *ids, size_t *off)
{
    size_t nb = ds->n_buckets;
    memset(off, 0, (nb + 1) * sizeof *off);
    for (size_t r = 0; r < ds->n_rows; r++)
        off[(size_t)ds->row_bucket[r] + 1]++;
    for (size_t b = 0; b < nb; b++)
        off[b + 1] += off[b];
    size_t *fill = bursar_malloc((nb + 1) * sizeof *fill);
    memcpy(fill, off, (nb + 1) * sizeof *fill);
    for (size_t r = 0; r < ds->n_rows; r++)
        ids[fill[ds->row_bucket[r]]++] = r;
    free(fill);
}

/* Checks the arguments and counts every bucket's orders. */
static int
cref_check(const dataset_t *ds, const vmodel_t *vm, unsigned steps, serr_t *e)
{
    if (steps < 1 || steps > CREF_MAX_STEPS)
        return serr_set(e, SERR_ARG,
                        "cascade reference: %u steps (expected 1 .. %d: "
                        "escalations + 1)",
                        steps, CREF_MAX_STEPS);
    if (!ds->finished)
        return serr_set(e, SERR_ARG,
                        "cascade reference: the dataset is not finished "
                        "(dataset_finish)");
    if (ds->n_rows == 0)
        return serr_set(e, SERR_EMPTY, "cascade reference: no rows");
    int rc = vmodel_check(vm, ds, e);
    if (rc)
        return rc;
    size_t nm = ds->n_models;
    for (size_t b = 0; b < ds->n_buckets; b++) {
        size_t k = 0;
        for (size_t m = 0; m < nm; m++)
            k += ds->bm_n[b * nm + m] > 0;
        if (cref_count(k, steps) > CREF_MAX_ORDERS)
            return serr_set(e, SERR_ARG,
                            "cascade reference: bucket '%s': %zu models and "
                            "%u steps give more than %d orders (fewer "
                            "escalations)",
                            ds->bucket[b], k, steps, CREF_MAX_ORDERS);
    }
    return 0;
}

cref_t *
cref_build(const dataset_t *ds, const vmodel_t *vm, unsigned steps, serr_t *e)
{
    if (cref_check(ds, vm, steps, e))
        return NULL;
    size_t nb = ds->n_buckets, nm = ds->n_models;
    cref_t *r = bursar_calloc(1, sizeof *r);
    r->n_buckets = nb;
    r->n_rows = ds->n_rows;
    r->steps = steps;
    r->b = bursar_calloc(nb + 1, sizeof *r->b);
    size_t *ids = bursar_malloc((ds->n_rows + 1) * sizeof *ids);
    size_t *off = bursar_malloc((nb + 1) * sizeof *off);
    int *mid = bursar_malloc((nm + 1) * sizeof *mid);
    cref_group_rows(ds, ids, off);
    for (size_t b = 0; b < nb; b++) {
        cref_bucket_t *o = &r->b[b];
        size_t k = 0;
        for (size_t m = 0; m < nm; m++)
            if (ds->bm_n[b * nm + m])
                mid[k++] = (int)m;
        o->rows = off[b + 1] - off[b];
        o->cap = o->rows ? cref_count(k, steps) : 0;
        o->models = bursar_malloc((o->cap * steps + 1) * sizeof(int));
        o->v = bursar_malloc((o->cap + 1) * sizeof(double));
        o->c = bursar_malloc((o->cap + 1) * sizeof(double));
        if (o->cap)
            cref_walk_bucket(o, ds, vm, steps, ids + off[b], o->rows, mid, k);
        assert(o->n_orders == o->cap);
        cref_front(o);
        for (size_t i = 0; i < o->n_orders; i++)
            if (o->c[i] > r->max_cost)
                r->max_cost = o->c[i];
    }
    free(ids);
    free(off);
    free(mid);
    return r;
}

void
cref_destroy(cref_t **pr)
{
    if (!pr || !*pr)
        return;
    cref_t *r = *pr;
    for (size_t b = 0; b < r->n_buckets; b++) {
        free(r->b[b].models);
        free(r->b[b].v);
        free(r->b[b].c);
        free(r->b[b].front);
        free(r->b[b].fv);
        free(r->b[b].fc);
    }
    free(r->b);
    free(r);
    *pr = NULL;
}

/* ------------------------------------------------------------ the mix */

/* Fills a pick from order i of bucket b. */
static void
cref_fill(const cref_t *r, size_t b, size_t i, double weight, cref_pick_t *out)
{
    const cref_bucket_t *o = &r->b[b];
    memset(out, 0, sizeof *out);
    out->bucket = (int)b;
    for (unsigned s = 0; s < CREF_MAX_STEPS; s++) {
        out->model[s] = s < r->steps ? o->models[i * r->steps + s] : -1;
        if (out->model[s] >= 0)
            out->n_steps = s + 1;
    }
    out->weight = weight;
    out->quality = o->v[i];
    out->cost = o->c[i];
}

/* lp_solve_static over the buckets' fronts, as replay_best_static over
 * single models. Writes quality and cost (may be NULL) and up to cap
 * picks; returns the LP's code (0, LP_INFEASIBLE) or SERR_POLICY, and the
 * number of picks in *n_picks. */
static int
cref_lp(const cref_t *r, double budget, double *quality, double *cost,
        cref_pick_t *picks, size_t cap, size_t *n_picks)
{
    size_t nb = r->n_buckets, nlb = 0, total = 0, np = 0;
    for (size_t b = 0; b < nb; b++)
        total += r->b[b].n_front;
    lp_bucket_t *lb = bursar_calloc(nb + 1, sizeof *lb);
    size_t *of = bursar_malloc((nb + 1) * sizeof *of); /* lp -> bucket */
    double *p = bursar_calloc(total + 1, sizeof *p);
    for (size_t b = 0, at = 0; b < nb; b++) {
        const cref_bucket_t *o = &r->b[b];
        if (!o->n_front)
            continue;
        lb[nlb] = (lp_bucket_t){o->n_front, o->fv, o->fc,
                                (double)o->rows / (double)r->n_rows, p + at};
        of[nlb++] = b;
        at += o->n_front;
    }
    /* no budget: any target above the dearest order leaves the LP free */
    double target = budget > 0.0 ? budget : 2.0 * r->max_cost + 1.0;
    double q = 0.0, k = 0.0;
    int rc = nlb ? lp_solve_static(nlb, lb, target, &q, &k) : 0;
    if (rc < 0)
        rc = SERR_POLICY;
    for (size_t j = 0; j < nlb && rc >= 0; j++)
        for (size_t t = 0; t < lb[j].n; t++) {
            if (!(lb[j].p[t] > 0.0))
                continue;
            if (np < cap)
                cref_fill(r, of[j], r->b[of[j]].front[t], lb[j].p[t],
                          &picks[np]);
            np++;
        }
    if (quality)
        *quality = q;
    if (cost)
        *cost = k;
    *n_picks = np;
    free(lb);
    free(of);
    free(p);
    return rc;
}

int
cref_solve(const cref_t *r, double budget, double *quality, double *cost)
{
    size_t n;
    return cref_lp(r, budget, quality, cost, NULL, 0, &n);
}

int
cref_picks(const cref_t *r, double budget, cref_pick_t *picks, size_t cap)
{
    size_t n;
    int rc = cref_lp(r, budget, NULL, NULL, picks, cap, &n);
    return rc < 0 ? rc : (int)n;
}

unsigned
cref_steps(const cref_t *r)
{
    return r->steps;
}

size_t
cref_n_orders(const cref_t *r, int bucket)
{
    if (bucket < 0 || (size_t)bucket >= r->n_buckets)
        return 0;
    return r->b[bucket].n_orders;
}

int
cref_order(const cref_t *r, int bucket, size_t i, cref_pick_t *out)
{
    if (bucket < 0 || (size_t)bucket >= r->n_buckets ||
        i >= r->b[bucket].n_orders)
        return SERR_ARG;
    cref_fill(r, (size_t)bucket, i, 0.0, out);
    return 0;
}
