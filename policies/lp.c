/*
 * lp.c - the budget linear programs (see lp.h).
 */
#include "policies/lp.h"

#include <stdlib.h>

int
lp_solve_bucket(size_t n, const double *v, const double *c,
                const unsigned char *allowed, double target, double *p)
{
    int best = -1, cheap = -1;
    int bi = -1, bj = -1;
    double bw = 0.0, bval = 0.0;

    for (size_t k = 0; k < n; k++)
        p[k] = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (allowed && !allowed[k])
            continue;
        if (best < 0 || v[k] > v[best] || (v[k] == v[best] && c[k] < c[best]))
            best = (int)k;
        if (cheap < 0 || c[k] < c[cheap] ||
            (c[k] == c[cheap] && v[k] > v[cheap]))
            cheap = (int)k;
    }
    if (best < 0)
        return LP_EMPTY;
    if (c[best] <= target) {
        p[best] = 1.0;
        return 0;
    }
    if (c[cheap] > target) {
        p[cheap] = 1.0;
        return LP_INFEASIBLE;
    }
    /* The best arm is too dear and the cheapest affordable: the optimum
     * spends the whole target on the upper hull, mixing one arm below the
     * target with one above. With n at most a few dozen, trying every such
     * pair (O(n^2)) is exact and cheaper than building the hull. */
    for (size_t i = 0; i < n; i++) {
        if ((allowed && !allowed[i]) || c[i] > target)
            continue;
        if (bi < 0 || v[i] > bval) {
            bi = (int)i;
            bj = -1;
            bval = v[i];
        }
        for (size_t j = 0; j < n; j++) {
            if ((allowed && !allowed[j]) || c[j] <= target || v[j] <= v[i])
                continue;
            double w = (target - c[i]) / (c[j] - c[i]); /* share of j */
            double val = v[i] + w * (v[j] - v[i]);
            if (val > bval) {
                bi = (int)i;
                bj = (int)j;
                bw = w;
                bval = val;
            }
        }
    }
    if (bj < 0) {
        p[bi] = 1.0;
    } else {
        p[bi] = 1.0 - bw;
        p[bj] = bw;
    }
    return 0;
}

/* One hull segment of one bucket, for the greedy of lp_solve_static. */
typedef struct seg {
    size_t b;     /* bucket */
    double slope; /* value per cost */
} seg_t;

/* Orders arm i before j: cheaper first, then better. */
static int
arm_before(const lp_bucket_t *bk, size_t i, size_t j)
{
    if (bk->c[i] != bk->c[j])
        return bk->c[i] < bk->c[j];
    if (bk->v[i] != bk->v[j])
        return bk->v[i] > bk->v[j];
    return i < j;
}

static int
cmp_seg_desc(const void *x, const void *y)
{
    const seg_t *a = x, *b = y;
    if (a->slope != b->slope)
        return a->slope > b->slope ? -1 : 1;
    return a->b < b->b ? -1 : (a->b > b->b);
}

/* Upper concave hull of bucket's points from the cheapest to the best:
 * writes arm indices to h, returns their count. idx is scratch (n). */
static size_t
hull_build(const lp_bucket_t *bk, size_t *idx, size_t *h)
{
    size_t m = 0, n = bk->n;
    for (size_t k = 0; k < n; k++)
        idx[k] = k;
    /* Insertion sort: a bucket has a few dozen arms at most, and qsort
     * has no context argument in C11. */
    for (size_t t = 1; t < n; t++) {
        size_t k = idx[t], u = t;
        for (; u > 0 && arm_before(bk, k, idx[u - 1]); u--)
            idx[u] = idx[u - 1];
        idx[u] = k;
    }
    for (size_t t = 0; t < n; t++) {
        size_t k = idx[t];
        if (m > 0 && bk->v[k] <= bk->v[h[m - 1]])
            continue; /* dominated: dearer and no better */
        /* Pop points that fall on or below the chord to the new one. */
        while (m >= 2) {
            size_t a = h[m - 2], b = h[m - 1];
            double cross = (bk->c[b] - bk->c[a]) * (bk->v[k] - bk->v[a]) -
                           (bk->v[b] - bk->v[a]) * (bk->c[k] - bk->c[a]);
            if (cross >= 0.0)
                m--;
            else
                break;
        }
        h[m++] = k;
    }
    return m;
}

int
lp_solve_static(size_t nb, lp_bucket_t *b, double target, double *value_out,
                double *cost_out)
{
    size_t total = 0, maxn = 0, ns = 0;
    for (size_t i = 0; i < nb; i++) {
        total += b[i].n;
        if (b[i].n > maxn)
            maxn = b[i].n;
    }
    size_t *hulls = malloc((total + 1) * sizeof *hulls);
    size_t *hoff = malloc((nb + 1) * sizeof *hoff);
    size_t *hn = malloc((nb + 1) * sizeof *hn);
    size_t *pos = malloc((nb + 1) * sizeof *pos);
    size_t *idx = malloc((maxn + 1) * sizeof *idx);
    seg_t *segs = malloc((total + 1) * sizeof *segs);
    int rc = 0;
    double spend = 0.0, value = 0.0;

    if (!hulls || !hoff || !hn || !pos || !idx || !segs) {
        rc = -1;
        goto out;
    }
    size_t off = 0;
    for (size_t i = 0; i < nb; i++) {
        for (size_t k = 0; k < b[i].n; k++)
            b[i].p[k] = 0.0;
        hoff[i] = off;
        hn[i] = b[i].n ? hull_build(&b[i], idx, hulls + off) : 0;
        pos[i] = 0;
        if (hn[i] == 0)
            continue;
        size_t *h = hulls + off;
        spend += b[i].w * b[i].c[h[0]];
        value += b[i].w * b[i].v[h[0]];
        if (b[i].w > 0.0)
            for (size_t t = 0; t + 1 < hn[i]; t++) {
                segs[ns].b = i;
                segs[ns].slope = (b[i].v[h[t + 1]] - b[i].v[h[t]]) /
                                 (b[i].c[h[t + 1]] - b[i].c[h[t]]);
                ns++;
            }
        off += hn[i];
    }
    if (spend > target)
        rc = LP_INFEASIBLE;
    /* Segments of one bucket have decreasing slopes (concave hull), and a
     * stable order on equal slopes keeps them in order within a bucket. */
    qsort(segs, ns, sizeof *segs, cmp_seg_desc);
    double frac = 0.0;
    size_t fb = nb; /* bucket bought in part, nb = none */
    for (size_t s = 0; s < ns && rc == 0; s++) {
        size_t i = segs[s].b, *h = hulls + hoff[i], t = pos[i];
        double dc = b[i].w * (b[i].c[h[t + 1]] - b[i].c[h[t]]);
        double dv = b[i].w * (b[i].v[h[t + 1]] - b[i].v[h[t]]);
        if (spend + dc <= target) {
            spend += dc;
            value += dv;
            pos[i]++;
            continue;
        }
        frac = (target - spend) / dc;
        spend = target;
        value += frac * dv;
        fb = i;
        break;
    }
    for (size_t i = 0; i < nb; i++) {
        if (hn[i] == 0)
            continue;
        size_t *h = hulls + hoff[i];
        if (i == fb) {
            b[i].p[h[pos[i]]] = 1.0 - frac;
            b[i].p[h[pos[i] + 1]] = frac;
        } else {
            b[i].p[h[pos[i]]] = 1.0;
        }
    }
out:
    if (value_out)
        *value_out = value;
    if (cost_out)
        *cost_out = spend;
    free(hulls);
    free(hoff);
    free(hn);
    free(pos);
    free(idx);
    free(segs);
    return rc;
}
