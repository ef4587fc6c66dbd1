/*
 * plot.h - the figures of a report.
 *
 * Three panels side by side:
 *   1. learning curves: running mean quality against requests, per policy,
 *      with the best static quality and the oracle as horizontal lines;
 *   2. running mean cost per request against requests, with the budget;
 *   3. the frontier view: quality against cost per request (log scale) for
 *      every single model (points), the best static frontier (a line of
 *      lp_solve_static over budgets), the oracle (a point), and each policy
 *      (its point at the run's budget, and its curve over the budget sweep
 *      when there is one).
 *
 * FILE.svg is written by svg.h. FILE.png is drawn by gnuplot (pngcairo),
 * fed a script on a pipe; plot_check says before any work whether it can
 * be (the program calls it right after its options).
 *
 * Series: the policies that learn or pace (ts-budget, ts, ...) each get a
 * saturated colour, solid while the palette lasts, then dashed; the
 * single-model baselines (fixed:MODEL) muted colours, always dashed and
 * thinner. The legend, right of the panels, lists the policies, then the
 * baselines under their own heading.
 */
#ifndef BURSAR_PLOT_H
#define BURSAR_PLOT_H

#include "sim/report.h"
#include "sim/serr.h"

/* Whether path can be written before the replay: .svg or .png, its
 * directory writable, and for .png gnuplot on the PATH with the pngcairo
 * terminal. Returns 0 or SERR_ARG naming what is missing (and the Debian
 * package). */
int plot_check(const char *path, serr_t *e);

/* Writes the figure; returns 0, SERR_IO or SERR_ARG (gnuplot missing or
 * failing: said so). */
int plot_write(const report_t *rep, const char *path, serr_t *e);

/* The look of a series. */
typedef struct plot_style {
    const char *color; /* "#rrggbb" */
    const char *dash;  /* SVG stroke-dasharray ("6,3"), NULL: solid */
    double width;      /* stroke width, pixels */
} plot_style_t;

/* Series k of its group (fixed: the fixed:MODEL baselines, else the
 * policies). (color, dash) differs for every k < PLOT_DISTINCT within a
 * group, and never matches between the groups; past it the styles repeat. */
#define PLOT_DISTINCT 35
plot_style_t plot_style(int fixed, size_t k);

/* The style of the report's policy i (its group and rank in it). */
plot_style_t plot_series_style(const report_t *rep, size_t i);

/* Axis ticks: first, first + step, ... up to last (n of them), the step 1,
 * 2 or 5 times a power of ten giving about want ticks in [lo, hi];
 * decimals: the digits after the point that tell the ticks apart. */
typedef struct plot_ticks {
    double first, step;
    size_t n;
    int decimals;
} plot_ticks_t;

/* The ticks of [lo, hi] (lo < hi, finite; else one tick at lo). */
void plot_ticks(double lo, double hi, int want, plot_ticks_t *t);
/* Tick j's value (first + j * step, without accumulated error). */
double plot_tick(const plot_ticks_t *t, size_t j);
/* A tick's label with t->decimals digits ("0.0005", "2500", "-0.2"). */
void plot_tick_label(const plot_ticks_t *t, double v, char *buf, size_t cap);
/* [*lo, *hi] widened to whole steps of its ticks (a "nice" axis). */
void plot_nice_range(double *lo, double *hi, int want);

/* The same figure as SVG on an open stream. */
void plot_svg(const report_t *rep, FILE *f);

/* The gnuplot script that draws the figure to png_path. */
void plot_gnuplot_script(const report_t *rep, const char *png_path, FILE *f);

#endif
