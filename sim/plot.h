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
 * fed a script on a pipe; without gnuplot on the PATH that is an error
 * (SERR_ARG) that says so. Returns 0, SERR_IO or SERR_ARG.
 */
#ifndef BURSAR_PLOT_H
#define BURSAR_PLOT_H

#include "sim/report.h"
#include "sim/serr.h"

int plot_write(const report_t *rep, const char *path, serr_t *e);

/* The same figure as SVG on an open stream. */
void plot_svg(const report_t *rep, FILE *f);

/* The gnuplot script that draws the figure to png_path. */
void plot_gnuplot_script(const report_t *rep, const char *png_path, FILE *f);

#endif
