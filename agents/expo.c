/*
 * expo.c - Prometheus' text exposition format (expo.h).
 */
#include "agents/expo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double expo_latency_bounds[EXPO_LATENCY_N] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,     0.25,   0.5,     1,      2.5,   5,      10,    20,   30,    60};

void
expo_family(bursar_buf_t *b, const char *name, const char *type,
            const char *help)
{
    char line[512];
    int n = snprintf(line, sizeof line, "# HELP %s ", name);
    bursar_buf_add(b, line, (size_t)n);
    for (const char *p = help; *p; p++) { /* HELP escapes \ and newline */
        if (*p == '\\')
            bursar_buf_add(b, "\\\\", 2);
        else if (*p == '\n')
            bursar_buf_add(b, "\\n", 2);
        else
            bursar_buf_add(b, p, 1);
    }
    n = snprintf(line, sizeof line, "\n# TYPE %s %s\n", name, type);
    bursar_buf_add(b, line, (size_t)n);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v: 0.005, not
 * 0.0050000000000000001 (a label le="0.005" is matched as text).
 * Integers (counts, most of an exposition) take one conversion. */
static int
expo_number(char *s, size_t cap, double v)
{
    if (fabs(v) < 1e15 && v == (double)(long long)v)
        return snprintf(s, cap, "%lld", (long long)v);
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(s, cap, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    return n;
}

static void
expo_value(bursar_buf_t *b, double v)
{
    char s[40];
    int n;
    if (isnan(v))
        n = snprintf(s, sizeof s, "NaN");
    else if (isinf(v))
        n = snprintf(s, sizeof s, v > 0 ? "+Inf" : "-Inf");
    else
        n = expo_number(s, sizeof s, v);
    bursar_buf_add(b, s, (size_t)n);
}

/* Runs without a character to escape are added whole. */
/* The length of v's first run of bytes that need no escape (ASCII other
 * than \\, " and newline; well-formed UTF-8). */
static size_t
expo_plain_run(const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t n = 0;
    while (p[n] && p[n] != '\\' && p[n] != '"' && p[n] != '\n') {
        size_t u = p[n] < 0x80 ? 1 : bursar_utf8_len(p + n);
        if (!u)
            break;
        n += u;
    }
    return n;
}

/* A label value, escaped; bytes that are not well-formed UTF-8 (a bucket
 * name sent raw by a client may hold any) become U+FFFD, so that one name
 * cannot make Prometheus refuse the whole scrape. */
static void
expo_label_value(bursar_buf_t *b, const char *v)
{
    for (const char *p = v; *p;) {
        size_t run = expo_plain_run(p);
        bursar_buf_add(b, p, run);
        p += run;
        if ((unsigned char)*p >= 0x80)
            bursar_buf_add(b, "\xef\xbf\xbd", 3);
        else if (*p == '\\')
            bursar_buf_add(b, "\\\\", 2);
        else if (*p == '"')
            bursar_buf_add(b, "\\\"", 2);
        else if (*p == '\n')
            bursar_buf_add(b, "\\n", 2);
        else
            break;
        p++;
    }
}

/* name{k="v",...[,le="x"]} value\n */
static void
expo_line(bursar_buf_t *b, const char *name, const char *suffix, double value,
          int n_labels, va_list ap, const char *le)
{
    bursar_buf_add(b, name, strlen(name));
    if (suffix)
        bursar_buf_add(b, suffix, strlen(suffix));
    if (n_labels > 0 || le) {
        bursar_buf_add(b, "{", 1);
        for (int i = 0; i < n_labels; i++) {
            const char *k = va_arg(ap, const char *);
            const char *v = va_arg(ap, const char *);
            if (i)
                bursar_buf_add(b, ",", 1);
            bursar_buf_add(b, k, strlen(k));
            bursar_buf_add(b, "=\"", 2);
            expo_label_value(b, v ? v : "");
            bursar_buf_add(b, "\"", 1);
        }
        if (le) {
            if (n_labels > 0)
                bursar_buf_add(b, ",", 1);
            bursar_buf_add(b, "le=\"", 4);
            bursar_buf_add(b, le, strlen(le));
            bursar_buf_add(b, "\"", 1);
        }
        bursar_buf_add(b, "}", 1);
    }
    bursar_buf_add(b, " ", 1);
    expo_value(b, value);
    bursar_buf_add(b, "\n", 1);
}

void
expo_sample(bursar_buf_t *b, const char *name, double value, int n_labels, ...)
{
    va_list ap;
    va_start(ap, n_labels);
    expo_line(b, name, NULL, value, n_labels, ap, NULL);
    va_end(ap);
}

void
expo_hist_init(expo_hist_t *h, const double *le, size_t n)
{
    memset(h, 0, sizeof *h);
    h->n = n < EXPO_HIST_MAX ? n : EXPO_HIST_MAX;
    memcpy(h->le, le, h->n * sizeof *le);
}

void
expo_hist_observe(expo_hist_t *h, double v)
{
    if (isnan(v))
        return;
    size_t i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    if (i < h->n)
        h->count[i]++;
    h->total++;
    h->sum += v;
}

void
expo_hist_write(bursar_buf_t *b, const char *name, const expo_hist_t *h,
                int n_labels, ...)
{
    va_list ap;
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->n; i++) {
        if (i < h->n) {
            cum += h->count[i];
            expo_number(le, sizeof le, h->le[i]);
        } else {
            cum = h->total;
            snprintf(le, sizeof le, "+Inf");
        }
        va_start(ap, n_labels);
        expo_line(b, name, "_bucket", (double)cum, n_labels, ap, le);
        va_end(ap);
    }
    va_start(ap, n_labels);
    expo_line(b, name, "_sum", h->sum, n_labels, ap, NULL);
    va_end(ap);
    va_start(ap, n_labels);
    expo_line(b, name, "_count", (double)h->total, n_labels, ap, NULL);
    va_end(ap);
}
