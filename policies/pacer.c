/*
 * pacer.c - spreading a budget over its window (see pacer.h).
 */
#include "policies/pacer.h"

#include <math.h>
#include <string.h>

void
pacer_init(pacer_t *p, double limit_usd, double window_s, double prior_rate,
           double now)
{
    memset(p, 0, sizeof *p);
    p->limit_usd = limit_usd;
    p->window_s = window_s > 0.0 ? window_s : 86400.0;
    p->prior_rate = prior_rate > 0.0 ? prior_rate : 1.0;
    p->window_start = pacer_window_of(p, now);
    p->rate_start = now;
    p->slot_last = -1.0;
}

void
pacer_resume(pacer_t *p, double now)
{
    if (isnan(p->rate_start)) {
        p->rate_start = now;
        p->slot_last = -1.0;
        memset(p->slot, 0, sizeof p->slot);
    }
}

void
pacer_set_window(pacer_t *p, double window_s, double now)
{
    if (p->window_s == window_s)
        return;
    p->window_s = window_s;
    p->window_start = pacer_window_of(p, now);
    p->rate_start = now;
    p->slot_last = -1.0;
    memset(p->slot, 0, sizeof p->slot);
}

double
pacer_window_of(const pacer_t *p, double t)
{
    return floor(t / p->window_s) * p->window_s;
}

double
pacer_slot_s(const pacer_t *p)
{
    return p->window_s / PACER_SLOTS_PER_WINDOW;
}

int
pacer_roll(pacer_t *p, double now)
{
    if (now < p->window_start + p->window_s)
        return 0;
    p->window_start = pacer_window_of(p, now);
    p->spent_usd = 0.0;
    p->requests = 0.0;
    p->held_usd = 0.0;
    return 1;
}

double
pacer_remaining(const pacer_t *p)
{
    if (!(p->limit_usd > 0.0))
        return INFINITY;
    return p->limit_usd - p->spent_usd - p->reserved_usd - p->held_usd;
}

/* The k-th smallest of v[0..n) (Hoare's selection, O(n)): v is
 * reordered so that v[0..k) <= v[k] <= v(k..n). */
static double
pacer_select(double *v, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double piv = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv)
                i++;
            while (v[j] > piv)
                j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

/* The median of v[0..n), n >= 1 (v is reordered). */
static double
pacer_median(double *v, int n)
{
    double hi = pacer_select(v, n, n / 2);
    if (n % 2)
        return hi;
    double lo = v[0];
    for (int i = 1; i < n / 2; i++)
        lo = fmax(lo, v[i]);
    return 0.5 * (lo + hi);
}

/* The counts of the n complete slots before slot cur, newest first, into
 * c (slot j lives at j % PACER_SLOTS while the ring holds it). */
static void
pacer_counts(const pacer_t *p, double cur, int n, double *c)
{
    for (int i = 0; i < n; i++) {
        double j = cur - 1.0 - i;
        c[i] = p->slot_last >= 0.0 && j >= 0.0 && j <= p->slot_last &&
                       j > p->slot_last - PACER_SLOTS
                   ? p->slot[(uint64_t)j % PACER_SLOTS]
                   : 0.0;
    }
}

/* The requests counted so far in now's own slot (still filling). */
static double
pacer_current(const pacer_t *p, double now)
{
    double j = floor(now / pacer_slot_s(p));
    return p->slot_last >= 0.0 && j == p->slot_last
               ? p->slot[(uint64_t)j % PACER_SLOTS]
               : 0.0;
}

double
pacer_rate(const pacer_t *p, double now)
{
    double s = pacer_slot_s(p);
    double cur = floor(now / s);
    double start = isnan(p->rate_start) ? now : p->rate_start;
    double first = ceil(start / s - 1e-9); /* first complete slot seen */
    double lo = fmax(first, cur - PACER_SLOTS);
    int m = cur - 1.0 >= lo ? (int)(cur - lo) : 0;
    int nm = m < PACER_MED_SLOTS ? m : PACER_MED_SLOTS;
    double c[PACER_SLOTS], v[PACER_SLOTS + PACER_PRIOR_SLOTS];
    double c0 = p->prior_rate * s; /* the prior's count per slot */
    pacer_counts(p, cur, m, c);
    /* the recent median (a rise), or the horizon's (a fall: the history
     * stays believed until half the horizon says otherwise); while fewer
     * than PACER_PRIOR_SLOTS slots were seen, the prior's pseudo-slots
     * are in both samples (a burst in a pacer's first minute is clipped
     * against the prior) */
    int fill_n = m < PACER_PRIOR_SLOTS ? PACER_PRIOR_SLOTS - m : 0;
    for (int i = 0; i < fill_n; i++)
        v[i] = c0;
    memcpy(v + fill_n, c, (size_t)nm * sizeof *v);
    double med = pacer_median(v, fill_n + nm);
    memcpy(v + fill_n, c, (size_t)m * sizeof *v);
    med = fmax(med, pacer_median(v, fill_n + m));
    double u = med + 3.0 * sqrt(med) + 3.0;
    double all = 0.0, last = 0.0;
    for (int i = 0; i < m; i++) {
        double x = fmin(c[i], u);
        all += x;
        if (i < PACER_MED_SLOTS)
            last += x;
    }
    double fill = fill_n * c0;
    double per_all = (all + fill) / fmax(m, PACER_PRIOR_SLOTS);
    double per_last = (last + fill) / fmax(nm, PACER_PRIOR_SLOTS);
    return fmax(per_all, per_last) / s;
}

double
pacer_expected_remaining(const pacer_t *p, double now)
{
    double left = p->window_start + p->window_s - now;
    if (left < 0.0)
        left = 0.0;
    /* the slow rate over the time left, and as many again as the current
     * slot has seen: a burst under way is demand already here, which may
     * not be over (a burst in one instant spends at most about half of
     * what is left, not all of it) */
    double e = pacer_rate(p, now) * left + pacer_current(p, now);
    return fmax(1.0, e + PACER_MARGIN_Z * sqrt(e));
}

double
pacer_target(const pacer_t *p, double now)
{
    double rem = pacer_remaining(p);
    if (isinf(rem))
        return INFINITY;
    if (rem <= 0.0)
        return 0.0;
    return rem / pacer_expected_remaining(p, now);
}

/* Counts one request in now's slot (the ring moves on to it). */
static void
pacer_count_at(pacer_t *p, double now)
{
    double j = floor(now / pacer_slot_s(p));
    if (p->slot_last < 0.0 || j >= p->slot_last + PACER_SLOTS ||
        j <= p->slot_last - PACER_SLOTS) { /* far ahead, or far behind: a
                                              new slot length, a clock set
                                              back: the ring starts again */
        memset(p->slot, 0, sizeof p->slot);
        p->slot_last = j;
    }
    while (p->slot_last < j) {
        p->slot_last += 1.0;
        p->slot[(uint64_t)p->slot_last % PACER_SLOTS] = 0.0;
    }
    if (j > p->slot_last - PACER_SLOTS) /* else older than the ring */
        p->slot[(uint64_t)j % PACER_SLOTS] += 1.0;
}

void
pacer_reserve(pacer_t *p, double expected_usd, double now)
{
    if (expected_usd > 0.0)
        p->reserved_usd += expected_usd;
    p->requests += 1.0;
    pacer_count_at(p, now);
}

void
pacer_settle(pacer_t *p, double reserved_usd, double cost_usd)
{
    if (reserved_usd > 0.0)
        p->reserved_usd -= reserved_usd;
    if (p->reserved_usd < 1e-12)
        p->reserved_usd = 0.0;
    if (cost_usd > 0.0)
        p->spent_usd += cost_usd;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */

/* What batch b holds aside in p's current window. */
static double
pacer_batch_held(const pacer_t *p, const pacer_batch_t *b)
{
    if (b->window_start != p->window_start || !isfinite(b->share_usd))
        return 0.0;
    return fmax(0.0, b->share_usd - b->used_usd);
}

static void
pacer_held_add(pacer_t *p, double delta)
{
    p->held_usd += delta;
    if (p->held_usd < 1e-12)
        p->held_usd = 0.0;
}

/* The share of n more requests at now, held. */
static double
pacer_batch_share(pacer_t *p, double n, double now)
{
    double rem = pacer_remaining(p);
    if (isinf(rem))
        return INFINITY;
    if (!(rem > 0.0) || !(n > 0.0))
        return 0.0;
    double share = rem * n / (pacer_expected_remaining(p, now) + n);
    share = fmin(share, PACER_BATCH_MAX_SHARE * rem); /* one batch cannot
                                                         hold the window */
    pacer_held_add(p, share);
    return share;
}

void
pacer_batch_open(pacer_t *p, pacer_batch_t *b, double size, double now)
{
    memset(b, 0, sizeof *b);
    b->size = size;
    b->window_start = p->window_start;
    b->share_usd = pacer_batch_share(p, size, now);
}

int
pacer_batch_replan(pacer_t *p, pacer_batch_t *b, double now)
{
    if (b->window_start == p->window_start)
        return 0;
    b->window_start = p->window_start;
    double share = pacer_batch_share(p, b->size - b->made, now);
    b->used_usd = 0.0;
    b->share_usd = share;
    return 1;
}

double
pacer_batch_left(const pacer_batch_t *b)
{
    if (!isfinite(b->share_usd))
        return INFINITY;
    return fmax(0.0, b->share_usd - b->used_usd);
}

double
pacer_batch_target(const pacer_batch_t *b)
{
    double n = b->size - b->made;
    return pacer_batch_left(b) / (n >= 1.0 ? n : 1.0);
}

void
pacer_batch_reserve(pacer_t *p, pacer_batch_t *b, double expected_usd)
{
    double before = pacer_batch_held(p, b);
    if (expected_usd > 0.0) {
        p->reserved_usd += expected_usd;
        b->used_usd += expected_usd;
    }
    b->made += 1.0;
    p->requests += 1.0;
    pacer_held_add(p, pacer_batch_held(p, b) - before);
}

void
pacer_batch_close(pacer_t *p, pacer_batch_t *b)
{
    pacer_held_add(p, -pacer_batch_held(p, b));
    if (isfinite(b->share_usd))
        b->share_usd = fmin(b->share_usd, b->used_usd);
}
