/*
 * svg.h - a small SVG writer: lines, polylines, circles, text.
 *
 * Coordinates are in pixels, origin top-left. Colours are SVG colour
 * strings ("#1f77b4", "black"). Text is escaped. The writer keeps no state
 * beyond the stream: each call writes one element. The caller owns the
 * FILE.
 */
#ifndef BURSAR_SVG_H
#define BURSAR_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct svg {
    FILE *f;
    double w, h;
} svg_t;

/* Writes the document header (white background). */
void svg_begin(svg_t *s, FILE *f, double w, double h);
/* Writes the closing tag. */
void svg_end(svg_t *s);

/* dash: NULL for solid, else an SVG dasharray such as "4,3". */
void svg_line(svg_t *s, double x1, double y1, double x2, double y2,
              const char *color, double width, const char *dash);
void svg_polyline(svg_t *s, const double *x, const double *y, size_t n,
                  const char *color, double width, const char *dash);
/* The same with a stroke opacity in [0, 1]. */
void svg_polyline_a(svg_t *s, const double *x, const double *y, size_t n,
                    const char *color, double width, const char *dash,
                    double opacity);
void svg_circle(svg_t *s, double x, double y, double r, const char *fill,
                const char *stroke);
void svg_rect(svg_t *s, double x, double y, double w, double h,
              const char *fill, const char *stroke);
/* anchor: "start", "middle" or "end"; rotate in degrees about (x, y). */
void svg_text(svg_t *s, double x, double y, double size, const char *anchor,
              const char *color, double rotate, const char *text);

#endif
