/*
 * plot.c - figures (see plot.h).
 *
 * Hand-written SVG keeps the simulator free of a plotting dependency; the
 * PNG path is a courtesy for people who have gnuplot anyway.
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/svg.h"
#include "policies/base.h"

/* The policies: saturated colours (no grey: the references are black and
 * grey), solid first, then each dash pattern in turn. */
static const char *const plot_pol_colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                              "#ff7f0e", "#9467bd", "#17becf",
                                              "#e377c2", "#8c564b", "#bcbd22"};
static const char *const plot_pol_dashes[] = {NULL, "8,4", "2,3", "8,3,2,3",
                                              "12,3,3,3"};
/* The single-model baselines: muted colours, always dashed. */
static const char *const plot_fix_colors[] = {"#5a5a5a", "#6b6ecf", "#8c6d31",
                                              "#637939", "#7b4173", "#ad494a",
                                              "#969696"};
static const char *const plot_fix_dashes[] = {"6,3", "2,2", "10,3,2,3",
                                              "4,2,1,2", "12,4"};
#define PLOT_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define PLOT_CASCADE "#1b7f3b" /* the hindsight cascade reference */

_Static_assert(PLOT_LEN(plot_fix_colors) * PLOT_LEN(plot_fix_dashes) >=
                   PLOT_DISTINCT,
               "PLOT_DISTINCT baselines");
_Static_assert(PLOT_LEN(plot_pol_colors) * PLOT_LEN(plot_pol_dashes) >=
                   PLOT_DISTINCT,
               "PLOT_DISTINCT policies");

plot_style_t
plot_style(int fixed, size_t k)
{
    plot_style_t st;
    if (fixed) {
        size_t nc = PLOT_LEN(plot_fix_colors);
        st.color = plot_fix_colors[k % nc];
        st.dash = plot_fix_dashes[(k / nc) % PLOT_LEN(plot_fix_dashes)];
        st.width = 1.5;
    } else {
        size_t nc = PLOT_LEN(plot_pol_colors);
        st.color = plot_pol_colors[k % nc];
        st.dash = plot_pol_dashes[(k / nc) % PLOT_LEN(plot_pol_dashes)];
        st.width = 2.0;
    }
    return st;
}

static int
plot_is_fixed(const report_t *rep, size_t i)
{
    return rep->pol[i].kind == POLICY_FIXED;
}

plot_style_t
plot_series_style(const report_t *rep, size_t i)
{
    int fixed = plot_is_fixed(rep, i);
    size_t k = 0;
    for (size_t j = 0; j < i; j++)
        k += plot_is_fixed(rep, j) == fixed;
    return plot_style(fixed, k);
}

/* ------------------------------------------------------------- ticks */

void
plot_ticks(double lo, double hi, int want, plot_ticks_t *t)
{
    memset(t, 0, sizeof *t);
    t->first = lo;
    t->step = 1.0;
    t->n = 1;
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi) || want < 1)
        return;
    double raw = (hi - lo) / want;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double m = f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0;
    t->step = m * mag;
    /* a tick within a millionth of a step of an end counts as inside */
    double eps = t->step * 1e-6;
    double k0 = ceil((lo - eps) / t->step), k1 = floor((hi + eps) / t->step);
    t->first = k0 * t->step;
    t->n = k1 >= k0 ? (size_t)(k1 - k0) + 1 : 0;
    /* digits: as many as the step has (0.25 would need 2: never, as the
     * step's mantissa is 1, 2 or 5) */
    double d = -floor(log10(t->step) + 1e-9);
    t->decimals = d > 0 ? (int)d : 0;
}

double
plot_tick(const plot_ticks_t *t, size_t j)
{
    double v = t->first + (double)j * t->step;
    return fabs(v) < t->step * 1e-6 ? 0.0 : v; /* no "-0" */
}

void
plot_tick_label(const plot_ticks_t *t, double v, char *buf, size_t cap)
{
    if (t->decimals > 8 || fabs(v) >= 1e9)
        snprintf(buf, cap, "%.*e", 1, v); /* beyond what %f shows well */
    else
        snprintf(buf, cap, "%.*f", t->decimals, v == 0.0 ? 0.0 : v);
}

void
plot_nice_range(double *lo, double *hi, int want)
{
    plot_ticks_t t;
    plot_ticks(*lo, *hi, want, &t);
    if (!(*hi > *lo))
        return;
    *lo = floor(*lo / t.step + 1e-9) * t.step;
    *hi = ceil(*hi / t.step - 1e-9) * t.step;
}

/* The label of a tick v on a log axis (1, 2 or 5 times a power of ten). */
static void
plot_log_label(double v, char *buf, size_t cap)
{
    plot_ticks_t t = {.step = pow(10.0, floor(log10(v) + 1e-9))};
    double d = -floor(log10(t.step) + 1e-9);
    t.decimals = d > 0 ? (int)d : 0;
    plot_tick_label(&t, v, buf, cap);
}

/* ------------------------------------------------------------ panels */

typedef struct plot_panel {
    svg_t *s;
    double px, py, pw, ph; /* plotting area, pixels */
    double x0, x1, y0, y1; /* data range */
    int logx;
    size_t n_legend;
} plot_panel_t;

static double
plot_px(const plot_panel_t *p, double x)
{
    double u = p->logx
                   ? (log10(x) - log10(p->x0)) / (log10(p->x1) - log10(p->x0))
                   : (x - p->x0) / (p->x1 - p->x0);
    return p->px + u * p->pw;
}

static double
plot_py(const plot_panel_t *p, double y)
{
    return p->py + p->ph - (y - p->y0) / (p->y1 - p->y0) * p->ph;
}

/* The y ticks and grid of a panel. */
static void
plot_frame_y(plot_panel_t *p)
{
    char buf[64];
    plot_ticks_t t;
    plot_ticks(p->y0, p->y1, 6, &t);
    for (size_t j = 0; j < t.n; j++) {
        double v = plot_tick(&t, j), y = plot_py(p, v);
        svg_line(p->s, p->px, y, p->px + p->pw, y, "#e5e5e5", 1, NULL);
        plot_tick_label(&t, v, buf, sizeof buf);
        svg_text(p->s, p->px - 6, y + 4, 11, "end", "#333", 0, buf);
    }
}

/* One x tick at v with its label. */
static void
plot_xtick(plot_panel_t *p, double v, const char *label)
{
    double x = plot_px(p, v);
    svg_line(p->s, x, p->py, x, p->py + p->ph, "#e5e5e5", 1, NULL);
    svg_text(p->s, x, p->py + p->ph + 16, 11, "middle", "#333", 0, label);
}

/* The x ticks: 1, 2 and 5 per decade on a log axis. */
static void
plot_frame_x(plot_panel_t *p)
{
    char buf[64];
    if (!p->logx) {
        plot_ticks_t t;
        plot_ticks(p->x0, p->x1, 6, &t);
        for (size_t j = 0; j < t.n; j++) {
            plot_tick_label(&t, plot_tick(&t, j), buf, sizeof buf);
            plot_xtick(p, plot_tick(&t, j), buf);
        }
        return;
    }
    static const double mult[] = {1, 2, 5};
    for (double dec = pow(10.0, floor(log10(p->x0))); dec <= p->x1; dec *= 10.0)
        for (int i = 0; i < 3; i++) {
            double v = dec * mult[i];
            if (v < p->x0 || v > p->x1)
                continue;
            plot_log_label(v, buf, sizeof buf);
            plot_xtick(p, v, buf);
        }
}

static void
plot_frame(plot_panel_t *p, const char *title, const char *xlabel,
           const char *ylabel)
{
    svg_t *s = p->s;
    svg_rect(s, p->px, p->py, p->pw, p->ph, "white", "#444");
    plot_frame_y(p);
    plot_frame_x(p);
    svg_rect(s, p->px, p->py, p->pw, p->ph, "none", "#444");
    svg_text(s, p->px + p->pw / 2, p->py - 10, 14, "middle", "black", 0, title);
    svg_text(s, p->px + p->pw / 2, p->py + p->ph + 36, 12, "middle", "#222", 0,
             xlabel);
    svg_text(s, p->px - 58, p->py + p->ph / 2, 12, "middle", "#222", -90,
             ylabel);
}

/* The shared legend is a column right of the panels (a series has the
 * same style in every panel), one entry per call: a line in style st, or
 * (point) a dot of st's colour, or (!st.color) a heading. */
static void
plot_legend_entry(plot_panel_t *p, plot_style_t st, int point,
                  const char *label)
{
    double x = p->px, y = p->py + 16 + 15.0 * (double)p->n_legend;
    if (!st.color)
        svg_text(p->s, x, y, 11, "start", "#222", 0, label);
    else if (point)
        svg_circle(p->s, x + 14, y - 4, 4, st.color, "#222");
    else
        svg_line(p->s, x, y - 4, x + 28, y - 4, st.color, st.width, st.dash);
    if (st.color)
        svg_text(p->s, x + 34, y, 11, "start", "#222", 0, label);
    p->n_legend++;
}

static void
plot_legend(plot_panel_t *p, const char *color, const char *dash, int point,
            const char *label)
{
    plot_style_t st = {color, dash, 2.0};
    plot_legend_entry(p, st, point, label);
}

/* Draws a data series clipped to the panel's y range. */
static void
plot_series_a(plot_panel_t *p, const double *x, const double *y, size_t n,
              const char *color, double width, const char *dash, double opacity)
{
    double *X = bursar_malloc((n ? n : 1) * sizeof(double));
    double *Y = bursar_malloc((n ? n : 1) * sizeof(double));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(x[i] > 0.0) && p->logx)
            continue;
        double yy = y[i] < p->y0 ? p->y0 : y[i] > p->y1 ? p->y1 : y[i];
        X[k] = plot_px(p, x[i]);
        Y[k] = plot_py(p, yy);
        k++;
    }
    svg_polyline_a(p->s, X, Y, k, color, width, dash, opacity);
    free(X);
    free(Y);
}

static void
plot_series(plot_panel_t *p, const double *x, const double *y, size_t n,
            const char *color, double width, const char *dash)
{
    plot_series_a(p, x, y, n, color, width, dash, 1.0);
}

static void
plot_hline(plot_panel_t *p, double y, const char *color, const char *dash)
{
    if (y < p->y0 || y > p->y1)
        return;
    svg_line(p->s, p->px, plot_py(p, y), p->px + p->pw, plot_py(p, y), color,
             1.5, dash);
}

/* A moving average over the last w checkpoints, from running means:
 * (sum_j - sum_{j-w}) / (x_j - x_{j-w}). out has n entries. */
static void
plot_moving(const double *x, const double *running, size_t n, size_t w,
            double *out)
{
    for (size_t j = 0; j < n; j++) {
        size_t i = j >= w ? j - w : 0;
        double s1 = running[j] * x[j];
        double s0 = j >= w ? running[i] * x[i] : 0.0;
        double x0 = j >= w ? x[i] : 0.0;
        out[j] = x[j] > x0 ? (s1 - s0) / (x[j] - x0) : running[j];
    }
}

/* --------------------------------------------------------------- SVG */

/* Panel geometry, pixels: three panels of PLOT_PW x PLOT_PH, PLOT_GAP
 * apart, from PLOT_LEFT and PLOT_TOP. */
#define PLOT_PW   400.0
#define PLOT_PH   360.0
#define PLOT_TOP  50.0
#define PLOT_LEFT 80.0
#define PLOT_GAP  110.0

/* Panel k (0, 1 or 2) of the row, data range [0, 1] x [0, 1]. */
static plot_panel_t
plot_panel_at(svg_t *s, int k)
{
    plot_panel_t p = {.s = s,
                      .px = PLOT_LEFT + k * (PLOT_PW + PLOT_GAP),
                      .py = PLOT_TOP,
                      .pw = PLOT_PW,
                      .ph = PLOT_PH,
                      .x1 = 1,
                      .y1 = 1};
    return p;
}

/* The legend column right of the panels; sets the document's size. */
static void
plot_svg_legend(const report_t *rep, svg_t *s, FILE *f)
{
    /* the legend column: wide enough for the longest name */
    size_t longest = 26, n_fixed = 0;
    for (size_t i = 0; i < rep->n_pol; i++) {
        if (strlen(rep->pol[i].name) > longest)
            longest = strlen(rep->pol[i].name);
        n_fixed += plot_is_fixed(rep, i);
    }
    double legend_x = PLOT_LEFT + 3 * (PLOT_PW + PLOT_GAP) - 60;
    double W = legend_x + 48 + 6.5 * (double)longest;
    double H = fmax(480, PLOT_TOP + 30 + 15.0 * (double)(rep->n_pol + 8));
    svg_begin(s, f, W, H);
    plot_panel_t lg = {
        .s = s, .px = legend_x, .py = PLOT_TOP, .x1 = 1, .y1 = 1};
    for (int fixed = 0; fixed < 2; fixed++) {
        if (fixed && n_fixed && n_fixed < rep->n_pol)
            lg.n_legend++; /* a blank line between the groups */
        if (fixed && n_fixed)
            plot_legend_entry(&lg, (plot_style_t){0}, 0,
                              "single-model baselines (dashed):");
        for (size_t i = 0; i < rep->n_pol; i++)
            if (plot_is_fixed(rep, i) == fixed)
                plot_legend_entry(&lg, plot_series_style(rep, i), 0,
                                  rep->pol[i].name);
    }
    lg.n_legend++;
    plot_legend(&lg, "black", "6,4", 0, "best static (LP, frontier)");
    if (isfinite(rep->cascade_q))
        plot_legend(&lg, PLOT_CASCADE, "8,3,2,3", 0,
                    "hindsight cascade (LP, frontier)");
    plot_legend(&lg, "#888", "2,3", 0, "oracle quality");
    if (rep->budget > 0)
        plot_legend(&lg, "#999", "3,3", 0, "budget per request");
    plot_legend(&lg, "#bbb", NULL, 1, "single models");
    plot_legend(&lg, "gold", NULL, 1, "oracle");
}

/* The ranges of the learning curves: the last request, the quality range
 * and the largest cost (running means and moving averages). */
static void
plot_curve_ranges(const report_t *rep, double *xmax, double *qmin, double *qmax,
                  double *cmax)
{
    *xmax = 1, *qmin = 1, *qmax = 0, *cmax = 0;
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        size_t w = p->n_curve / 20 ? p->n_curve / 20 : 1;
        double *mq = bursar_malloc((p->n_curve + 1) * sizeof(double));
        double *mc = bursar_malloc((p->n_curve + 1) * sizeof(double));
        plot_moving(p->curve_x, p->curve_q, p->n_curve, w, mq);
        plot_moving(p->curve_x, p->curve_c, p->n_curve, w, mc);
        for (size_t j = 0; j < p->n_curve; j++) {
            if (p->curve_x[j] > *xmax)
                *xmax = p->curve_x[j];
            /* the first points are noisy: let them leave the frame */
            if (j < p->n_curve / 20)
                continue;
            *qmin = fmin(*qmin, fmin(p->curve_q[j], mq[j]));
            *qmax = fmax(*qmax, fmax(p->curve_q[j], mq[j]));
            *cmax = fmax(*cmax, fmax(p->curve_c[j], mc[j]));
        }
        free(mq);
        free(mc);
    }
}

/* Each policy's learning curve of quality (cost = 0) or cost: the running
 * mean bold, the moving average over the last 5% faint. */
static void
plot_curves(plot_panel_t *p, const report_t *rep, int cost)
{
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *pol = &rep->pol[i];
        const double *y = cost ? pol->curve_c : pol->curve_q;
        double *mv = bursar_malloc((pol->n_curve + 1) * sizeof(double));
        plot_moving(pol->curve_x, y, pol->n_curve,
                    pol->n_curve / 20 ? pol->n_curve / 20 : 1, mv);
        plot_style_t st = plot_series_style(rep, i);
        if (!plot_is_fixed(rep, i)) /* a baseline's noise says nothing */
            plot_series_a(p, pol->curve_x, mv, pol->n_curve, st.color, 1, NULL,
                          0.45);
        free(mv);
        plot_series(p, pol->curve_x, y, pol->n_curve, st.color, st.width,
                    st.dash);
    }
}

/* Panels 1 and 2: running quality and running cost per request. */
static void
plot_svg_learning(const report_t *rep, svg_t *s)
{
    double xmax, qmin, qmax, cmax;
    plot_curve_ranges(rep, &xmax, &qmin, &qmax, &cmax);
    plot_panel_t a = plot_panel_at(s, 0);
    if (rep->oracle_q > qmax)
        qmax = rep->oracle_q;
    if (rep->static_q > qmax)
        qmax = rep->static_q;
    if (rep->static_q > 0 && rep->static_q < qmin)
        qmin = rep->static_q;
    if (isfinite(rep->cascade_q) && rep->cascade_q > qmax)
        qmax = rep->cascade_q;
    if (qmin > qmax)
        qmin = 0, qmax = 1;
    a.x1 = xmax;
    a.y0 = fmax(0.0, qmin - 0.03);
    a.y1 = fmin(1.0, qmax + 0.03);
    if (a.y1 <= a.y0)
        a.y1 = a.y0 + 0.1;
    plot_frame(&a, "Learning curve: quality", "requests",
               "mean quality (bold: running, faint: last 5%)");
    plot_hline(&a, rep->static_q, "black", "6,4");
    if (isfinite(rep->cascade_q))
        plot_hline(&a, rep->cascade_q, PLOT_CASCADE, "8,3,2,3");
    plot_hline(&a, rep->oracle_q, "#888", "2,3");
    plot_curves(&a, rep, 0);

    plot_panel_t b = plot_panel_at(s, 1);
    b.x1 = xmax;
    if (rep->budget > cmax)
        cmax = rep->budget;
    b.y1 = cmax > 0 ? cmax * 1.15 : 1.0;
    plot_frame(&b, "Learning curve: spend", "requests",
               "cost per request, USD (bold: running, faint: last 5%)");
    if (rep->budget > 0)
        plot_hline(&b, rep->budget, "#999", "3,3");
    plot_curves(&b, rep, 1);
}

/* Widens [*lo, *hi] (positive costs) and [*ylo, *yhi] to hold (cx, qy). */
static void
plot_see(double cx, double qy, double *lo, double *hi, double *ylo, double *yhi)
{
    if (cx > 0 && cx < *lo)
        *lo = cx;
    if (cx > *hi)
        *hi = cx;
    if (qy < *ylo)
        *ylo = qy;
    if (qy > *yhi)
        *yhi = qy;
}

/* The frontier panel's ranges: every model, the oracle, every policy. */
static void
plot_frontier_range(const report_t *rep, plot_panel_t *c)
{
    const dataset_t *ds = rep->ds;
    double lo = INFINITY, hi = 0, ylo = 1, yhi = 0;
    for (size_t m = 0; m < ds->n_models; m++)
        if (ds->model_n[m])
            plot_see(ds->model_cost[m], ds->model_quality[m], &lo, &hi, &ylo,
                     &yhi);
    plot_see(rep->oracle_c, rep->oracle_q, &lo, &hi, &ylo, &yhi);
    if (isfinite(rep->cascade_q))
        plot_see(rep->cascade_c, rep->cascade_q, &lo, &hi, &ylo, &yhi);
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        plot_see(p->c_mean, p->q_mean, &lo, &hi, &ylo, &yhi);
        for (size_t j = 0; j < p->n_front; j++)
            plot_see(p->front_c[j], p->front_q[j], &lo, &hi, &ylo, &yhi);
    }
    if (!(lo < hi))
        lo = hi > 0 ? hi / 10 : 1e-4, hi = hi > 0 ? hi : 1e-3;
    c->x0 = lo / 1.6;
    c->x1 = hi * 1.6;
    c->y0 = fmax(0.0, ylo - 0.05);
    c->y1 = fmin(1.0, yhi + 0.05);
    if (c->y1 <= c->y0)
        c->y1 = c->y0 + 0.1;
}

/* The points of the frontier panel: single models and the oracle. */
static void
plot_frontier_points(const report_t *rep, plot_panel_t *c)
{
    const dataset_t *ds = rep->ds;
    svg_t *s = c->s;
    for (size_t m = 0; m < ds->n_models; m++) {
        if (!ds->model_n[m] || !(ds->model_cost[m] > 0))
            continue;
        double x = plot_px(c, ds->model_cost[m]);
        double y = plot_py(c, ds->model_quality[m]);
        svg_circle(s, x, y, 3.5, "#bbb", "#555");
        const char *nm = strrchr(ds->model[m], '/');
        svg_text(s, x + 5, y - 4, 9, "start", "#666", 0,
                 nm ? nm + 1 : ds->model[m]);
    }
    if (rep->oracle_c > 0) {
        svg_circle(s, plot_px(c, rep->oracle_c), plot_py(c, rep->oracle_q), 5,
                   "gold", "#222");
        svg_text(s, plot_px(c, rep->oracle_c) + 7,
                 plot_py(c, rep->oracle_q) + 4, 10, "start", "#222", 0,
                 "oracle");
    }
}

/* Panel 3: quality against cost per request. */
static void
plot_svg_frontier(const report_t *rep, svg_t *s)
{
    plot_panel_t c = plot_panel_at(s, 2);
    c.logx = 1;
    c.x0 = 1;
    plot_frontier_range(rep, &c);
    plot_frame(&c, "Frontier: quality vs cost", "cost per request (USD, log)",
               "quality");
    if (rep->n_sf)
        plot_series(&c, rep->sf_c, rep->sf_q, rep->n_sf, "black", 1.5, "6,4");
    if (rep->n_cf)
        plot_series(&c, rep->cf_c, rep->cf_q, rep->n_cf, PLOT_CASCADE, 1.5,
                    "8,3,2,3");
    if (rep->budget > 0 && rep->budget >= c.x0 && rep->budget <= c.x1)
        svg_line(s, plot_px(&c, rep->budget), c.py, plot_px(&c, rep->budget),
                 c.py + c.ph, "#999", 1, "3,3");
    plot_frontier_points(rep, &c);
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        plot_style_t st = plot_series_style(rep, i);
        if (p->n_front) {
            plot_series(&c, p->front_c, p->front_q, p->n_front, st.color,
                        st.width, st.dash);
            for (size_t j = 0; j < p->n_front; j++)
                if (p->front_c[j] > 0)
                    svg_circle(s, plot_px(&c, p->front_c[j]),
                               plot_py(&c, p->front_q[j]), 2.5, st.color, NULL);
        }
        if (!(p->c_mean > 0))
            continue;
        if (plot_is_fixed(rep, i)) /* a ring around its model's point */
            svg_circle(s, plot_px(&c, p->c_mean), plot_py(&c, p->q_mean), 6,
                       NULL, st.color);
        else
            svg_circle(s, plot_px(&c, p->c_mean), plot_py(&c, p->q_mean), 5,
                       st.color, "#222");
    }
}

void
plot_svg(const report_t *rep, FILE *f)
{
    svg_t s;
    plot_svg_legend(rep, &s, f);
    plot_svg_learning(rep, &s);
    plot_svg_frontier(rep, &s);
    svg_end(&s);
}

/* ----------------------------------------------------------- gnuplot */

/* Writes a name with quotes and backslashes dropped (gnuplot strings). */
static void
plot_gp_name(FILE *f, const char *s)
{
    for (; *s; s++)
        if (*s != '\'' && *s != '"' && *s != '\\')
            fputc(*s, f);
}

/* The data blocks: each policy's curve and frontier, the models, the
 * oracle and the references' frontiers. */
static void
plot_gp_data(const report_t *rep, FILE *f)
{
    const dataset_t *ds = rep->ds;
    for (size_t i = 0; i < rep->n_pol; i++) {
        const report_policy_t *p = &rep->pol[i];
        fprintf(f, "$curve%zu << EOD\n", i);
        for (size_t j = 0; j < p->n_curve; j++)
            fprintf(f, "%g %.8g %.8g\n", p->curve_x[j], p->curve_q[j],
                    p->curve_c[j]);
        fprintf(f, "EOD\n$front%zu << EOD\n", i);
        for (size_t j = 0; j < p->n_front; j++)
            fprintf(f, "%.8g %.8g\n", p->front_c[j], p->front_q[j]);
        if (!p->n_front)
            fprintf(f, "%.8g %.8g\n", p->c_mean, p->q_mean);
        fprintf(f, "EOD\n");
    }
    fprintf(f, "$models << EOD\n");
    for (size_t m = 0; m < ds->n_models; m++) {
        if (!ds->model_n[m] || !(ds->model_cost[m] > 0))
            continue;
        const char *nm = strrchr(ds->model[m], '/');
        fprintf(f, "%.8g %.8g \"", ds->model_cost[m], ds->model_quality[m]);
        plot_gp_name(f, nm ? nm + 1 : ds->model[m]);
        fprintf(f, "\"\n");
    }
    fprintf(f, "EOD\n$oracle << EOD\n%.8g %.8g\nEOD\n$static << EOD\n",
            rep->oracle_c, rep->oracle_q);
    for (size_t j = 0; j < rep->n_sf; j++)
        fprintf(f, "%.8g %.8g\n", rep->sf_c[j], rep->sf_q[j]);
    fprintf(f, "EOD\n$cascade << EOD\n");
    for (size_t j = 0; j < rep->n_cf; j++)
        fprintf(f, "%.8g %.8g\n", rep->cf_c[j], rep->cf_q[j]);
    fprintf(f, "EOD\n");
}

/* Line style i + 1 for policy i (plot_series_style): colour, dashes and
 * width as in the SVG. */
static void
plot_gp_styles(const report_t *rep, FILE *f)
{
    for (size_t i = 0; i < rep->n_pol; i++) {
        plot_style_t st = plot_series_style(rep, i);
        fprintf(f, "set style line %zu lc rgb '%s' lw %g dt ", i + 1, st.color,
                st.width * 0.75);
        if (st.dash)
            fprintf(f, "(%s)\n", st.dash);
        else
            fprintf(f, "solid\n");
    }
}

/* Panel k's place in the figure (the legend takes the right). */
static void
plot_gp_panel(FILE *f, int k, const char *title, const char *xlabel,
              const char *ylabel)
{
    double l = 0.045 + 0.25 * k;
    fprintf(f,
            "set lmargin at screen %.3f\nset rmargin at screen %.3f\n"
            "set tmargin at screen 0.92\nset bmargin at screen 0.13\n"
            "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\n",
            l, l + 0.2, title, xlabel, ylabel);
}

/* Panels 1 and 2: each policy's running quality (column 2) and cost
 * (column 3) against requests, with the references. */
static void
plot_gp_learning(const report_t *rep, FILE *f)
{
    double xmax, qmin, qmax, cmax;
    plot_curve_ranges(rep, &xmax, &qmin, &qmax, &cmax);
    plot_ticks_t t; /* about 4 ticks: the panels are narrow */
    plot_ticks(0, xmax, 4, &t);
    fprintf(f, "set xrange [0:%.8g]\nset xtics 0,%.8g\n", xmax, t.step);
    plot_gp_panel(f, 0, "Learning curve: quality", "requests",
                  "running mean quality");
    fprintf(f, "plot ");
    for (size_t i = 0; i < rep->n_pol; i++)
        fprintf(f, "$curve%zu using 1:2 with lines ls %zu, ", i, i + 1);
    fprintf(f,
            "%.8g with lines dt (6,4) lc 'black', %.8g with lines "
            "dt (2,3) lc '#888888'",
            rep->static_q, rep->oracle_q);
    if (isfinite(rep->cascade_q))
        fprintf(f, ", %.8g with lines dt (8,3,2,3) lc '" PLOT_CASCADE "'",
                rep->cascade_q);
    fprintf(f, "\n");
    plot_gp_panel(f, 1, "Learning curve: spend", "requests",
                  "running cost per request (USD)");
    fprintf(f, "set yrange [0:*]\nplot ");
    for (size_t i = 0; i < rep->n_pol; i++)
        fprintf(f, "$curve%zu using 1:3 with lines ls %zu%s", i, i + 1,
                i + 1 < rep->n_pol || rep->budget > 0 ? ", " : "");
    if (rep->budget > 0)
        fprintf(f, "%.8g with lines dt (3,3) lc '#999999'", rep->budget);
    fprintf(f, "\nset yrange [*:*]\nset xrange [*:*]\nset xtics autofreq\n");
}

/* The x tics of a log axis over [x0, x1]: 1, 2 and 5 per decade, as in
 * the SVG (1 only beyond four decades), labelled alike. */
static void
plot_gp_logtics(FILE *f, double x0, double x1)
{
    static const double mult[] = {1, 2, 5};
    int every = log10(x1 / x0) > 4 ? 3 : 1;
    fprintf(f, "set xtics (");
    int n = 0;
    for (double dec = pow(10.0, floor(log10(x0))); dec <= x1; dec *= 10.0)
        for (int i = 0; i < 3; i += every) {
            double v = dec * mult[i];
            char lab[64];
            if (v < x0 || v > x1)
                continue;
            plot_log_label(v, lab, sizeof lab);
            fprintf(f, "%s'%s' %.10g", n++ ? ", " : "", lab, v);
        }
    fprintf(f, ")\n");
}

/* Panel 3: quality against cost per request (log). */
static void
plot_gp_frontier(const report_t *rep, FILE *f)
{
    plot_gp_panel(f, 2, "Frontier: quality vs cost", "cost per request (USD)",
                  "quality");
    plot_panel_t c = {.logx = 1, .x0 = 1, .x1 = 1, .y1 = 1};
    plot_frontier_range(rep, &c); /* the SVG's ranges */
    fprintf(f, "set logscale x\nset format x '%%g'\n");
    fprintf(f, "set xrange [%.8g:%.8g]\nset yrange [%.8g:%.8g]\n", c.x0, c.x1,
            c.y0, c.y1);
    plot_gp_logtics(f, c.x0, c.x1);
    fprintf(f, "plot $models using 1:2 with points pt 7 lc 'gray', $models "
               "using 1:2:3 with labels offset 1,0.5 left font ',7'");
    if (rep->n_sf)
        fprintf(f, ", $static using 1:2 with lines dt (6,4) lc 'black'");
    if (rep->n_cf)
        fprintf(f,
                ", $cascade using 1:2 with lines dt (8,3,2,3) lc '" PLOT_CASCADE
                "'");
    fprintf(f, ", $oracle using 1:2 with points pt 5 ps 2 lc 'goldenrod'");
    for (size_t i = 0; i < rep->n_pol; i++)
        fprintf(
            f,
            plot_is_fixed(rep, i)
                ? ", $front%zu using 1:2 with points ls %zu pt 6 ps 2"
                : ", $front%zu using 1:2 with linespoints ls %zu pt 7 ps 0.6",
            i, i + 1);
    fprintf(f, "\nunset logscale x\nset format x\nset autoscale\n");
}

/* The legend: a plot of nothing whose key stands right of the panels,
 * the policies, then the baselines, then the references. */
static void
plot_gp_legend(const report_t *rep, FILE *f)
{
    fprintf(f, "unset title\nunset xlabel\nunset ylabel\nunset border\n"
               "unset tics\nunset grid\nset xrange [0:1]\nset yrange [0:1]\n"
               "set lmargin at screen 0.8\nset rmargin at screen 0.99\n"
               "set key at screen 0.8,0.93 left top Left reverse "
               "samplen 4 spacing 1.1\nplot ");
    for (int fixed = 0; fixed < 2; fixed++)
        for (size_t i = 0; i < rep->n_pol; i++) {
            if (plot_is_fixed(rep, i) != fixed)
                continue;
            fprintf(f, "NaN with lines ls %zu title '", i + 1);
            plot_gp_name(f, rep->pol[i].name);
            fprintf(f, "', ");
        }
    fprintf(f, "NaN with lines dt (6,4) lc 'black' title 'best static (LP)'");
    if (isfinite(rep->cascade_q))
        fprintf(f, ", NaN with lines dt (8,3,2,3) lc '" PLOT_CASCADE
                   "' title 'hindsight cascade (LP)'");
    fprintf(f, ", NaN with lines dt (2,3) lc '#888888' title 'oracle quality'");
    if (rep->budget > 0)
        fprintf(f, ", NaN with lines dt (3,3) lc '#999999' title 'budget per "
                   "request'");
    fprintf(f, ", NaN with points pt 7 lc 'gray' title 'single models', NaN "
               "with points pt 5 lc 'goldenrod' title 'oracle'\n");
}

void
plot_gnuplot_script(const report_t *rep, const char *png_path, FILE *f)
{
    fprintf(f, "set terminal pngcairo size 1800,520 font ',9' "
               "dashlength 2\n");
    fprintf(f, "set output '");
    plot_gp_name(f, png_path);
    fprintf(f, "'\nset grid\nunset key\n");
    plot_gp_data(rep, f);
    plot_gp_styles(rep, f);
    fprintf(f, "set multiplot\n");
    plot_gp_learning(rep, f);
    plot_gp_frontier(rep, f);
    plot_gp_legend(rep, f);
    fprintf(f, "unset multiplot\n");
}

/* ------------------------------------------------------------ checks */

/* 1 when path ends in ext (".svg"), with a name before it. */
static int
plot_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);
    return n > k && strcmp(path + n - k, ext) == 0;
}

/* The full path of program name on $PATH, into buf; 0 or -1. */
static int
plot_which(const char *name, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return -1;
    while (*path) {
        size_t n = strcspn(path, ":");
        int len = snprintf(buf, cap, "%.*s/%s", (int)(n ? n : 1),
                           n ? path : ".", name);
        if (len > 0 && (size_t)len < cap && access(buf, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    return -1;
}

/* Runs gp -e CMD with no input or output; 1 when it exits 0. */
static int
plot_gnuplot_can(const char *gp, const char *cmd)
{
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(gp, gp, "-e", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The directory path would be written in exists and is writable. */
static int
plot_dir_ok(const char *path, serr_t *e)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s",
                 (int)(slash == path ? 1 : slash - path), path);
    if (access(dir, W_OK | X_OK) != 0)
        return serr_set(e, SERR_ARG, "--plot %s: cannot write in %s: %s", path,
                        dir, strerror(errno));
    return 0;
}

int
plot_check(const char *path, serr_t *e)
{
    if (!plot_ext(path, ".svg") && !plot_ext(path, ".png"))
        return serr_set(e, SERR_ARG,
                        "--plot %s: the file must end in .svg (built in) or "
                        ".png (gnuplot)",
                        path);
    int rc = plot_dir_ok(path, e);
    if (rc || plot_ext(path, ".svg"))
        return rc;
    char gp[4096];
    if (plot_which("gnuplot", gp, sizeof gp) != 0)
        return serr_set(e, SERR_ARG,
                        "--plot %s: a PNG needs gnuplot, which is not on the "
                        "PATH (Debian: apt-get install gnuplot-nox), or write "
                        ".svg instead",
                        path);
    if (!plot_gnuplot_can(gp, "set terminal pngcairo"))
        return serr_set(e, SERR_ARG,
                        "--plot %s: %s has no pngcairo terminal (Debian: "
                        "apt-get install gnuplot-nox), or write .svg instead",
                        path, gp);
    return 0;
}

/* Draws the PNG with gnuplot (plot_check passed). */
static int
plot_png(const report_t *rep, const char *path, serr_t *e)
{
    char gp[4096];
    if (plot_which("gnuplot", gp, sizeof gp) != 0)
        return serr_set(e, SERR_ARG,
                        "%s: a PNG needs gnuplot, which is not on the PATH "
                        "(Debian: apt-get install gnuplot-nox)",
                        path);
    if (remove(path) != 0 && errno != ENOENT)
        return serr_set(e, SERR_IO, "%s: cannot replace: %s", path,
                        strerror(errno));
    FILE *g = popen("gnuplot", "w");
    if (!g)
        return serr_set(e, SERR_IO, "cannot start gnuplot: %s",
                        strerror(errno));
    plot_gnuplot_script(rep, path, g);
    int st = pclose(g);
    if (st != 0)
        return serr_set(e, SERR_IO, "%s: gnuplot failed (status %d)", path, st);
    if (access(path, F_OK) != 0)
        return serr_set(e, SERR_IO, "%s: gnuplot exited 0 but wrote no file",
                        path);
    return 0;
}

int
plot_write(const report_t *rep, const char *path, serr_t *e)
{
    if (plot_ext(path, ".png"))
        return plot_png(rep, path, e);
    if (!plot_ext(path, ".svg"))
        return serr_set(e, SERR_ARG,
                        "%s: --plot writes .svg (built in) or .png (gnuplot)",
                        path);
    FILE *f = fopen(path, "w");
    if (!f)
        return serr_set(e, SERR_IO, "%s: cannot write: %s", path,
                        strerror(errno));
    plot_svg(rep, f);
    if (fclose(f) != 0)
        return serr_set(e, SERR_IO, "%s: write error", path);
    return 0;
}
