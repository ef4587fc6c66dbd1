/* svg.c - a small SVG writer (see svg.h). */
#include "sim/svg.h"

void
svg_begin(svg_t *s, FILE *f, double w, double h)
{
    s->f = f;
    s->w = w;
    s->h = h;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" "
            "fill=\"white\"/>\n",
            w, h, w, h, w, h);
}

void
svg_end(svg_t *s)
{
    fprintf(s->f, "</svg>\n");
}

static void
svg_dash(svg_t *s, const char *dash)
{
    if (dash)
        fprintf(s->f, " stroke-dasharray=\"%s\"", dash);
}

void
svg_line(svg_t *s, double x1, double y1, double x2, double y2,
         const char *color, double width, const char *dash)
{
    fprintf(s->f,
            "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
            "stroke=\"%s\" stroke-width=\"%.2f\"",
            x1, y1, x2, y2, color, width);
    svg_dash(s, dash);
    fprintf(s->f, "/>\n");
}

void
svg_polyline(svg_t *s, const double *x, const double *y, size_t n,
             const char *color, double width, const char *dash)
{
    svg_polyline_a(s, x, y, n, color, width, dash, 1.0);
}

void
svg_polyline_a(svg_t *s, const double *x, const double *y, size_t n,
               const char *color, double width, const char *dash,
               double opacity)
{
    if (n == 0)
        return;
    fprintf(s->f,
            "<polyline fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"%.2f\" stroke-linejoin=\"round\"",
            color, width);
    if (opacity < 1.0)
        fprintf(s->f, " stroke-opacity=\"%.2f\"", opacity);
    svg_dash(s, dash);
    fprintf(s->f, " points=\"");
    for (size_t i = 0; i < n; i++)
        fprintf(s->f, "%s%.2f,%.2f", i ? " " : "", x[i], y[i]);
    fprintf(s->f, "\"/>\n");
}

void
svg_circle(svg_t *s, double x, double y, double r, const char *fill,
           const char *stroke)
{
    fprintf(s->f,
            "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\" "
            "stroke=\"%s\"/>\n",
            x, y, r, fill ? fill : "none", stroke ? stroke : "none");
}

void
svg_rect(svg_t *s, double x, double y, double w, double h, const char *fill,
         const char *stroke)
{
    fprintf(s->f,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
            "fill=\"%s\" stroke=\"%s\"/>\n",
            x, y, w, h, fill ? fill : "none", stroke ? stroke : "none");
}

void
svg_text(svg_t *s, double x, double y, double size, const char *anchor,
         const char *color, double rotate, const char *text)
{
    fprintf(s->f,
            "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" "
            "text-anchor=\"%s\" fill=\"%s\"",
            x, y, size, anchor, color);
    if (rotate != 0.0)
        fprintf(s->f, " transform=\"rotate(%.1f %.2f %.2f)\"", rotate, x, y);
    fputc('>', s->f);
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '<':
            fputs("&lt;", s->f);
            break;
        case '>':
            fputs("&gt;", s->f);
            break;
        case '&':
            fputs("&amp;", s->f);
            break;
        case '"':
            fputs("&quot;", s->f);
            break;
        default:
            fputc(*p, s->f);
        }
    }
    fputs("</text>\n", s->f);
}
