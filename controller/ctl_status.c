/*
 * ctl_status.c - the status page's data (/status.json): the stats reply
 * of every bucket (without propensities: they cost Beta quadratures per
 * bucket when the cache is stale), each arm's 95% posterior interval, the
 * pacer's plan, and a history of samples kept in memory.
 *
 * The history is a ring of metrics.samples samples, one taken every
 * metrics.sample_s seconds of the controller's clock by ctl_status_tick
 * (the loop calls it at every turn, at least every 200 ms): the first at
 * the first tick, then on a fixed cadence from it; a tick that comes late
 * (a long batch, a test clock moved by hours) takes one sample and starts
 * the cadence again from there, it never fills the gap. A sample holds
 * the window's spend and reservations and the cumulative pulls of every
 * (bucket, model) pair, as columns: a pair gets a column the first time a
 * sample sees it and keeps it; a sample stores -1 (null in JSON) for a
 * column whose pair no longer exists. The history lives in memory only:
 * it restarts empty with the daemon.
 *
 * The ring's pulls take at most CTL_STATUS_BUDGET bytes: with more columns
 * than metrics.samples samples of them fit in it, the ring holds fewer
 * samples (the newest), at least 2. Every sample has a sequence number
 * (its rank since start): a reply can hold only the samples from a given
 * one on (the page asks for what it has not seen), and the columns added
 * since. The history is written straight into a buffer, not as a cJSON
 * tree: it is most of the reply (samples x columns numbers), rendered on
 * the daemon's loop.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "policies/beta.h"

/* The memory the ring's pulls may take (samples x columns x 8 bytes). */
#define CTL_STATUS_BUDGET ((size_t)16 << 20)

typedef struct ctl_status_col {
    char bucket[BURSAR_NAME_MAX];
    char model[BURSAR_NAME_MAX];
} ctl_status_col_t;

typedef struct ctl_status_sample {
    double t;            /* controller's clock */
    double window_start; /* of the global budget's window */
    double spent_usd, reserved_usd;
    double decisions; /* since the policy's state began */
    size_t n;         /* entries of pulls: the columns at the time */
    int64_t *pulls;   /* cumulative pulls per column; -1: absent */
} ctl_status_sample_t;

struct ctl_status {
    double sample_s;
    size_t cap;     /* ring slots */
    size_t head;    /* the slot the next sample goes to */
    size_t n;       /* samples held */
    double next;    /* when the next sample is due; NAN: at the first tick */
    uint64_t taken; /* samples taken since start: the next one's number */
    double epoch;   /* wall clock (ms) when the history began */
    ctl_status_sample_t *ring;
    ctl_status_col_t *cols;
    size_t n_cols, cap_cols;
    size_t *hint; /* per arm of every bucket in order: its column */
    size_t cap_hint;
};

/* ------------------------------------------------------------ the ring */

/* Resizes the ring to cap slots, keeping the newest samples. */
static void
ctl_status_resize(ctl_status_t *s, size_t cap)
{
    ctl_status_sample_t *r = bursar_calloc(cap, sizeof *r);
    size_t keep = s->n < cap ? s->n : cap;
    for (size_t i = 0; i < s->n; i++) {
        /* i-th oldest */
        size_t k = (s->head + s->cap - s->n + i) % s->cap;
        if (i >= s->n - keep)
            r[i - (s->n - keep)] = s->ring[k];
        else
            free(s->ring[k].pulls);
    }
    free(s->ring);
    s->ring = r;
    s->cap = cap;
    s->n = keep;
    s->head = keep % cap;
}

/* The ring's slots: metrics.samples, or as many as fit in the budget
 * with n_cols columns, at least 2. */
static size_t
ctl_status_cap(const ctl_t *c, size_t n_cols)
{
    size_t cap = c->cfg->status_samples < 2 ? 2 : c->cfg->status_samples;
    size_t fit = CTL_STATUS_BUDGET / (sizeof(int64_t) * (n_cols ? n_cols : 1));
    if (fit < 2)
        fit = 2;
    return cap < fit ? cap : fit;
}

/* The history, made at the first call, adapted to the configuration in
 * force (metrics.sample_s and metrics.samples may change on a reload). */
static ctl_status_t *
ctl_status_get(ctl_t *c)
{
    ctl_status_t *s = c->status;
    double every = c->cfg->status_sample_s > 0 ? c->cfg->status_sample_s : 10;
    if (!s) {
        s = c->status = bursar_calloc(1, sizeof *s);
        s->cap = ctl_status_cap(c, 0);
        s->ring = bursar_calloc(s->cap, sizeof *s->ring);
        s->sample_s = every;
        s->next = NAN;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->epoch = floor((double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6);
    }
    size_t cap = ctl_status_cap(c, s->n_cols);
    if (s->cap != cap)
        ctl_status_resize(s, cap);
    if (s->sample_s != every) {
        if (!isnan(s->next))
            s->next += every - s->sample_s;
        s->sample_s = every;
    }
    return s;
}

void
ctl_status_free(ctl_t *c)
{
    ctl_status_t *s = c->status;
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->ring[i].pulls);
    free(s->ring);
    free(s->cols);
    free(s->hint);
    free(s);
    c->status = NULL;
}

/* The column of (bucket, model), added when new; hint first. */
static size_t
ctl_status_col(ctl_status_t *s, size_t hint, const char *bucket,
               const char *model)
{
    if (hint < s->n_cols && strcmp(s->cols[hint].bucket, bucket) == 0 &&
        strcmp(s->cols[hint].model, model) == 0)
        return hint;
    for (size_t i = 0; i < s->n_cols; i++)
        if (strcmp(s->cols[i].bucket, bucket) == 0 &&
            strcmp(s->cols[i].model, model) == 0)
            return i;
    if (s->n_cols == s->cap_cols) {
        s->cap_cols = s->cap_cols ? 2 * s->cap_cols : 16;
        s->cols = bursar_realloc(s->cols, s->cap_cols * sizeof *s->cols);
    }
    ctl_status_col_t *e = &s->cols[s->n_cols];
    bursar_copy_str(e->bucket, sizeof e->bucket, bucket);
    bursar_copy_str(e->model, sizeof e->model, model);
    return s->n_cols++;
}

/* Takes one sample at now into the ring's head slot. */
static void
ctl_status_sample(ctl_t *c, ctl_status_t *s, double now)
{
    size_t arms = 0;
    for (size_t i = 0; i < c->n_buckets; i++)
        arms += c->buckets[i]->pb->n_arms;
    if (arms > s->cap_hint) {
        s->hint = bursar_realloc(s->hint, arms * sizeof *s->hint);
        for (size_t k = s->cap_hint; k < arms; k++)
            s->hint[k] = SIZE_MAX;
        s->cap_hint = arms;
    }
    for (size_t i = 0, k = 0; i < c->n_buckets; i++) {
        const ctl_bucket_t *b = c->buckets[i];
        for (size_t j = 0; j < b->pb->n_arms; j++, k++)
            s->hint[k] = ctl_status_col(s, s->hint[k], b->def.name,
                                        ctl_model_name(c, b->pb->model[j]));
    }
    size_t cap = ctl_status_cap(c, s->n_cols); /* new columns: maybe less */
    if (cap != s->cap)
        ctl_status_resize(s, cap);
    ctl_status_sample_t *e = &s->ring[s->head];
    e->pulls = bursar_realloc(e->pulls,
                              (s->n_cols ? s->n_cols : 1) * sizeof *e->pulls);
    e->n = s->n_cols;
    for (size_t i = 0; i < e->n; i++)
        e->pulls[i] = -1;
    for (size_t i = 0, k = 0; i < c->n_buckets; i++) {
        const policy_bucket_t *pb = c->buckets[i]->pb;
        for (size_t j = 0; j < pb->n_arms; j++, k++)
            e->pulls[s->hint[k]] = (int64_t)pb->arms[j].pulls;
    }
    pacer_t p = c->pacer; /* rolled on a copy: the tick changes no state */
    pacer_roll(&p, now);
    e->t = now;
    e->window_start = p.window_start;
    e->spent_usd = p.spent_usd;
    e->reserved_usd = p.reserved_usd;
    e->decisions = (double)c->policy.decisions;
    s->head = (s->head + 1) % s->cap;
    if (s->n < s->cap)
        s->n++;
    s->taken++;
}

void
ctl_status_tick(ctl_t *c)
{
    ctl_status_t *s = ctl_status_get(c);
    double now = ctl_now(c);
    /* not due, unless the clock went back by more than a period */
    if (!isnan(s->next) && now < s->next && now + s->sample_s >= s->next)
        return;
    ctl_status_sample(c, s, now);
    if (isnan(s->next) || now >= s->next + s->sample_s || now < s->next)
        s->next = now + s->sample_s; /* first, late, or the clock went back */
    else
        s->next += s->sample_s;
}

/* ------------------------------------------------------------ the JSON */

static void
ctl_status_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

/* "interval": the 95% central interval of each arm's Beta posterior
 * (policies/beta.h, as `bursar stats` prints it), or null. */
static void
ctl_status_intervals(cJSON *o)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(o, "buckets"))
    {
        cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
        {
            double lo, hi;
            double al = cJSON_GetNumberValue(cJSON_GetObjectItem(a, "alpha"));
            double be = cJSON_GetNumberValue(cJSON_GetObjectItem(a, "beta"));
            if (beta_interval(al, be, 0.95, &lo, &hi) == 0) {
                cJSON *iv = cJSON_AddArrayToObject(a, "interval");
                cJSON_AddItemToArray(iv, cJSON_CreateNumber(lo));
                cJSON_AddItemToArray(iv, cJSON_CreateNumber(hi));
            } else {
                cJSON_AddNullToObject(a, "interval");
            }
        }
    }
}

/* "plan": the global pacer's plan for its window. The even line spends
 * limit_usd evenly from window_start to window_end (paced_usd: where it
 * is now); the pacer's own plan from now spends what is left, limit -
 * spent - reserved, at target_usd per request over the requests it
 * expects (expected_requests, at rate_per_s), so that committed spend
 * meets the limit at window_end. */
static cJSON *
ctl_status_plan(ctl_t *c, double now)
{
    pacer_t p = c->pacer;
    pacer_roll(&p, now);
    cJSON *o = cJSON_CreateObject();
    double end = p.window_start + p.window_s;
    int has = p.limit_usd > 0;
    cJSON_AddNumberToObject(o, "now", now);
    cJSON_AddNumberToObject(o, "window_start", p.window_start);
    cJSON_AddNumberToObject(o, "window_end", end);
    ctl_status_num(o, "limit_usd", has ? p.limit_usd : NAN);
    cJSON_AddNumberToObject(o, "spent_usd", p.spent_usd);
    cJSON_AddNumberToObject(o, "reserved_usd", p.reserved_usd);
    cJSON_AddNumberToObject(o, "committed_usd", p.spent_usd + p.reserved_usd);
    double frac = (now - p.window_start) / p.window_s;
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    ctl_status_num(o, "paced_usd", has ? p.limit_usd * frac : NAN);
    double left = end - now;
    double exp_n = pacer_expected_remaining(&p, now);
    cJSON_AddNumberToObject(o, "expected_requests", exp_n);
    ctl_status_num(o, "rate_per_s", left > 0 ? exp_n / left : NAN);
    ctl_status_num(o, "target_usd", has ? pacer_target(&p, now) : NAN);
    ctl_status_num(o, "remaining_usd", has ? pacer_remaining(&p) : NAN);
    return o;
}

/* ------------------------------------------- the history, written out */

static void
ctl_status_w(bursar_buf_t *b, const char *s)
{
    bursar_buf_add(b, s, strlen(s));
}

/* A number that reads back exactly (null if not finite). */
static void
ctl_status_wnum(bursar_buf_t *b, double v)
{
    char t[40];
    if (!isfinite(v)) {
        bursar_buf_add(b, "null", 4);
        return;
    }
    int n = snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v)
        n = snprintf(t, sizeof t, "%.17g", v);
    bursar_buf_add(b, t, (size_t)n);
}

/* A count, or null when negative (the pulls: most of the history). */
static void
ctl_status_wcount(bursar_buf_t *b, int64_t v)
{
    char t[24];
    size_t i = sizeof t;
    if (v < 0) {
        bursar_buf_add(b, "null", 4);
        return;
    }
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bursar_buf_add(b, t + i, sizeof t - i);
}

/* A JSON string. */
static void
ctl_status_wstr(bursar_buf_t *b, const char *s)
{
    bursar_buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char e[8];
        if (ch == '"' || ch == '\\') {
            e[0] = '\\';
            e[1] = (char)ch;
            bursar_buf_add(b, e, 2);
        } else if (ch < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", ch);
            bursar_buf_add(b, e, 6);
        } else {
            bursar_buf_add(b, s, 1);
        }
    }
    bursar_buf_add(b, "\"", 1);
}

/* "name":v, */
static void
ctl_status_wkey(bursar_buf_t *b, const char *name, double v)
{
    bursar_buf_add(b, "\"", 1);
    ctl_status_w(b, name);
    bursar_buf_add(b, "\":", 2);
    ctl_status_wnum(b, v);
    bursar_buf_add(b, ",", 1);
}

/* The sample of sequence number k (taken - n <= k < taken). */
static const ctl_status_sample_t *
ctl_status_at(const ctl_status_t *s, uint64_t k)
{
    return &s->ring[(s->head + s->cap - (size_t)(s->taken - k)) % s->cap];
}

static void
ctl_status_wsample(bursar_buf_t *b, const ctl_status_sample_t *e)
{
    bursar_buf_add(b, "{", 1);
    ctl_status_wkey(b, "t", e->t);
    ctl_status_wkey(b, "window_start", e->window_start);
    ctl_status_wkey(b, "spent_usd", e->spent_usd);
    ctl_status_wkey(b, "reserved_usd", e->reserved_usd);
    ctl_status_wkey(b, "decisions", e->decisions);
    ctl_status_w(b, "\"pulls\":[");
    for (size_t k = 0; k < e->n; k++) {
        if (k)
            bursar_buf_add(b, ",", 1);
        ctl_status_wcount(b, e->pulls[k]);
    }
    bursar_buf_add(b, "]}", 2);
}

/* The history object. since >= 0: only the samples from number since on
 * and the columns added after the sample before it, when that sample is
 * still held (or since is the next number); otherwise all of it. */
static void
ctl_status_history(const ctl_status_t *s, long long since, bursar_buf_t *b)
{
    uint64_t first = s->taken - s->n, from = first;
    size_t col0 = 0;
    if (since > 0 && (uint64_t)since > first && (uint64_t)since <= s->taken) {
        from = (uint64_t)since;
        col0 = ctl_status_at(s, from - 1)->n;
    }
    bursar_buf_add(b, "{", 1);
    ctl_status_wkey(b, "sample_s", s->sample_s);
    ctl_status_wkey(b, "capacity", (double)s->cap);
    ctl_status_wkey(b, "taken", (double)s->taken);
    ctl_status_wkey(b, "first", (double)first);
    ctl_status_wkey(b, "from", (double)from);
    ctl_status_wkey(b, "columns_from", (double)col0);
    ctl_status_wkey(b, "epoch", s->epoch);
    ctl_status_w(b, "\"columns\":[");
    for (size_t i = col0; i < s->n_cols; i++) {
        ctl_status_w(b, i > col0 ? ",{\"bucket\":" : "{\"bucket\":");
        ctl_status_wstr(b, s->cols[i].bucket);
        ctl_status_w(b, ",\"model\":");
        ctl_status_wstr(b, s->cols[i].model);
        bursar_buf_add(b, "}", 1);
    }
    ctl_status_w(b, "],\"samples\":[");
    for (uint64_t k = from; k < s->taken; k++) {
        if (k > from)
            bursar_buf_add(b, ",", 1);
        ctl_status_wsample(b, ctl_status_at(s, k));
    }
    bursar_buf_add(b, "]}", 2);
}

char *
ctl_status_json(ctl_t *c, long long since)
{
    ctl_status_t *s = ctl_status_get(c);
    cJSON *o = ctl_stats_all(c, 0);
    double now = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "time"));
    ctl_status_intervals(o);
    cJSON_AddNumberToObject(o, "latency_quantile", c->allow.latency.quantile);
    cJSON_AddItemToObject(o, "plan", ctl_status_plan(c, now));
    char *r = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!r)
        abort();
    size_t n = strlen(r);
    if (n < 2 || r[n - 1] != '}')
        abort();
    bursar_buf_t b = {0};
    bursar_buf_add(&b, r, n - 1); /* the object, still open */
    free(r);
    ctl_status_w(&b, n > 2 ? ",\"history\":" : "\"history\":");
    ctl_status_history(s, since, &b);
    bursar_buf_add(&b, "}", 1);
    return b.p;
}
