/*
 * plot.c - figures (see plot.h).
 *
 * Hand-written SVG keeps the simulator free of a plotting dependency; the
 * PNG path is a courtesy for people who have gnuplot anyway.
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/svg.h"
#include "policies/base.h"

static const char *plot_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                    "#bcbd22", "#7f7f7f"};
#define PLOT_N_COLORS (sizeof plot_colors / sizeof plot_colors[0])
#define PLOT_CASCADE  "#1b7f3b" /* the hindsight cascade reference */

static const char *
plot_color(size_t i)
{
    return plot_colors[i % PLOT_N_COLORS];
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

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about n ticks. */
static double
plot_step(double lo, double hi, int n)
{
    double raw = (hi - lo) / n;
    if (!(raw > 0.0))
        return 1.0;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static void
plot_fmt(char *buf, size_t len, double v)
{
    if (v != 0.0 && fabs(v) < 0.01)
        snprintf(buf, len, "%.1e", v);
    else
        snprintf(buf, len, "%g", v);
}

static void
plot_frame(plot_panel_t *p, const char *title, const char *xlabel,
           const char *ylabel)
{
    svg_t *s = p->s;
    char buf[64];
    svg_rect(s, p->px, p->py, p->pw, p->ph, "white", "#444");
    /* y ticks and grid */
    double st = plot_step(p->y0, p->y1, 6);
    for (double v = ceil(p->y0 / st) * st; v <= p->y1 + 1e-12; v += st) {
        double y = plot_py(p, v);
        svg_line(s, p->px, y, p->px + p->pw, y, "#e5e5e5", 1, NULL);
        plot_fmt(buf, sizeof buf, fabs(v) < st * 1e-9 ? 0.0 : v);
        svg_text(s, p->px - 6, y + 4, 11, "end", "#333", 0, buf);
    }
    /* x ticks */
    if (p->logx) {
        for (double dec = pow(10.0, floor(log10(p->x0))); dec <= p->x1;
             dec *= 10.0) {
            static const double mult[] = {1, 2, 5};
            for (int i = 0; i < 3; i++) {
                double v = dec * mult[i];
                if (v < p->x0 || v > p->x1)
                    continue;
                double x = plot_px(p, v);
                svg_line(s, x, p->py, x, p->py + p->ph, "#e5e5e5", 1, NULL);
                plot_fmt(buf, sizeof buf, v);
                svg_text(s, x, p->py + p->ph + 16, 11, "middle", "#333", 0,
                         buf);
            }
        }
    } else {
        st = plot_step(p->x0, p->x1, 6);
        for (double v = ceil(p->x0 / st) * st; v <= p->x1 + 1e-12; v += st) {
            double x = plot_px(p, v);
            svg_line(s, x, p->py, x, p->py + p->ph, "#e5e5e5", 1, NULL);
            plot_fmt(buf, sizeof buf, v);
            svg_text(s, x, p->py + p->ph + 16, 11, "middle", "#333", 0, buf);
        }
    }
    svg_rect(s, p->px, p->py, p->pw, p->ph, "none", "#444");
    svg_text(s, p->px + p->pw / 2, p->py - 10, 14, "middle", "black", 0, title);
    svg_text(s, p->px + p->pw / 2, p->py + p->ph + 36, 12, "middle", "#222", 0,
             xlabel);
    svg_text(s, p->px - 58, p->py + p->ph / 2, 12, "middle", "#222", -90,
             ylabel);
}

/* The shared legend is a column right of the panels (colours are the
 * same in every panel), one entry per call. */
static void
plot_legend(plot_panel_t *p, const char *color, const char *dash, int point,
            const char *label)
{
    double x = p->px, y = p->py + 16 + 15.0 * (double)p->n_legend;
    if (point)
        svg_circle(p->s, x + 10, y - 4, 4, color, "#222");
    else
        svg_line(p->s, x, y - 4, x + 20, y - 4, color, 2, dash);
    svg_text(p->s, x + 26, y, 11, "start", "#222", 0, label);
    p->n_legend++;
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
    size_t longest = 20;
    for (size_t i = 0; i < rep->n_pol; i++)
        if (strlen(rep->pol[i].name) > longest)
            longest = strlen(rep->pol[i].name);
    double legend_x = PLOT_LEFT + 3 * (PLOT_PW + PLOT_GAP) - 60;
    double W = legend_x + 40 + 6.5 * (double)longest;
    double H = fmax(480, PLOT_TOP + 30 + 15.0 * (double)(rep->n_pol + 6));
    svg_begin(s, f, W, H);
    plot_panel_t lg = {
        .s = s, .px = legend_x, .py = PLOT_TOP, .x1 = 1, .y1 = 1};
    for (size_t i = 0; i < rep->n_pol; i++)
        plot_legend(&lg, plot_color(i), NULL, 0, rep->pol[i].name);
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
        plot_series_a(p, pol->curve_x, mv, pol->n_curve, plot_color(i), 1, NULL,
                      0.45);
        free(mv);
        plot_series(p, pol->curve_x, y, pol->n_curve, plot_color(i), 2, NULL);
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
        if (p->n_front) {
            plot_series(&c, p->front_c, p->front_q, p->n_front, plot_color(i),
                        2, NULL);
            for (size_t j = 0; j < p->n_front; j++)
                if (p->front_c[j] > 0)
                    svg_circle(s, plot_px(&c, p->front_c[j]),
                               plot_py(&c, p->front_q[j]), 2.5, plot_color(i),
                               NULL);
        }
        if (p->c_mean > 0)
            svg_circle(s, plot_px(&c, p->c_mean), plot_py(&c, p->q_mean), 5,
                       plot_color(i), "#222");
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

void
plot_gnuplot_script(const report_t *rep, const char *png_path, FILE *f)
{
    const dataset_t *ds = rep->ds;
    fprintf(f, "set terminal pngcairo size 1560,480 font ',9'\n");
    fprintf(f, "set output '");
    plot_gp_name(f, png_path);
    fprintf(f, "'\nset grid\nset key left top\n");
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
    fprintf(f, "set multiplot layout 1,3\n");
    fprintf(f, "set title 'Learning curve: quality'\nset xlabel "
               "'requests'\nset ylabel 'running mean quality'\n");
    fprintf(f, "plot ");
    for (size_t i = 0; i < rep->n_pol; i++) {
        fprintf(f, "$curve%zu using 1:2 with lines lw 2 title '", i);
        plot_gp_name(f, rep->pol[i].name);
        fprintf(f, "', ");
    }
    fprintf(f,
            "%.8g with lines dt 2 lc 'black' title 'best static', %.8g "
            "with lines dt 3 lw 1.5 lc 'black' title 'oracle'",
            rep->static_q, rep->oracle_q);
    if (isfinite(rep->cascade_q))
        fprintf(f,
                ", %.8g with lines dt 4 lc '" PLOT_CASCADE
                "' title 'hindsight cascade'",
                rep->cascade_q);
    fprintf(f, "\n");
    fprintf(f, "set title 'Learning curve: spend'\nset ylabel 'running cost "
               "per request (USD)'\n");
    fprintf(f, "plot ");
    for (size_t i = 0; i < rep->n_pol; i++) {
        fprintf(f, "$curve%zu using 1:3 with lines lw 2 title '", i);
        plot_gp_name(f, rep->pol[i].name);
        fprintf(f, "'%s", i + 1 < rep->n_pol || rep->budget > 0 ? ", " : "");
    }
    if (rep->budget > 0)
        fprintf(f, "%.8g with lines dt 2 lc 'black' title 'budget'",
                rep->budget);
    fprintf(f, "\n");
    fprintf(f, "set title 'Frontier: quality vs cost'\nset logscale x\n"
               "set key right bottom\n"
               "set xlabel 'cost per request (USD)'\nset ylabel 'quality'\n");
    fprintf(f, "plot $models using 1:2 with points pt 7 lc 'gray' title "
               "'single models', $models using 1:2:3 with labels offset "
               "1,0.5 left font ',7' notitle");
    if (rep->n_sf)
        fprintf(f, ", $static using 1:2 with lines dt 2 lc 'black' title "
                   "'best static frontier'");
    if (rep->n_cf)
        fprintf(f, ", $cascade using 1:2 with lines dt 4 lc '" PLOT_CASCADE
                   "' title 'hindsight cascade frontier'");
    fprintf(f, ", $oracle using 1:2 with points pt 5 ps 2 lc 'goldenrod' "
               "title 'oracle'");
    for (size_t i = 0; i < rep->n_pol; i++) {
        fprintf(f, ", $front%zu using 1:2 with linespoints lw 2 pt 7 title '",
                i);
        plot_gp_name(f, rep->pol[i].name);
        fprintf(f, "'");
    }
    fprintf(f, "\nunset multiplot\n");
}

int
plot_write(const report_t *rep, const char *path, serr_t *e)
{
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".svg") == 0) {
        FILE *f = fopen(path, "w");
        if (!f)
            return serr_set(e, SERR_IO, "%s: cannot write: %s", path,
                            strerror(errno));
        plot_svg(rep, f);
        if (fclose(f) != 0)
            return serr_set(e, SERR_IO, "%s: write error", path);
        return 0;
    }
    if (n > 4 && strcmp(path + n - 4, ".png") == 0) {
        if (system("command -v gnuplot >/dev/null 2>&1") != 0)
            return serr_set(e, SERR_ARG,
                            "%s: PNG needs gnuplot, which is not on the "
                            "PATH (install it, or write .svg instead)",
                            path);
        FILE *g = popen("gnuplot", "w");
        if (!g)
            return serr_set(e, SERR_IO, "cannot start gnuplot: %s",
                            strerror(errno));
        plot_gnuplot_script(rep, path, g);
        int st = pclose(g);
        if (st != 0)
            return serr_set(e, SERR_IO,
                            "%s: gnuplot failed (status %d; does it have "
                            "the pngcairo terminal?)",
                            path, st);
        return 0;
    }
    return serr_set(e, SERR_ARG,
                    "%s: --plot writes .svg (built in) or .png (gnuplot)",
                    path);
}
