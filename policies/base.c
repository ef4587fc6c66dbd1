/*
 * base.c - the project's conventions (see base.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "policies/base.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *
bursar_strerror(int rc)
{
    switch (rc) {
    case BURSAR_OK:
        return "success";
    case BURSAR_LOCAL:
        return "answered locally (controller unreachable)";
    case BURSAR_SPOOLED:
        return "spooled (controller unreachable)";
    case BURSAR_EINVAL:
        return "invalid argument";
    case BURSAR_EUNREACHABLE:
        return "controller unreachable";
    case BURSAR_EREMOTE:
        return "controller answered an error";
    case BURSAR_EPROTO:
        return "reply not understood";
    case BURSAR_EIO:
        return "input/output error";
    case BURSAR_EZMQ:
        return "ZeroMQ error";
    case BURSAR_EPARSE:
        return "malformed input";
    case BURSAR_EFORMAT:
        return "bad or missing field";
    case BURSAR_EARG:
        return "bad option or parameter";
    case BURSAR_EEMPTY:
        return "no usable data";
    case BURSAR_EPOLICY:
        return "policy error";
    case BURSAR_ESTORE:
        return "store error";
    case BURSAR_EVERSION:
        return "state of another format version";
    case BURSAR_ELOCKED:
        return "locked by another process";
    case BURSAR_ECONFIG:
        return "invalid configuration";
    case BURSAR_ETOOBIG:
        return "too large";
    default:
        break;
    }
    if (rc > 0)
        return strerror(rc);
    return "unknown error";
}

static void
bursar_oom(size_t n)
{
    fprintf(stderr, "bursar: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
bursar_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bursar_oom(n);
    return p;
}

void *
bursar_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        bursar_oom(n * size);
    return p;
}

void
bursar_buf_add(bursar_buf_t *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = bursar_realloc(b->p, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void *
bursar_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        bursar_oom(n);
    return q;
}

char *
bursar_strdup(const char *s)
{
    return bursar_strndup(s, strlen(s));
}

char *
bursar_strndup(const char *s, size_t n)
{
    char *d = bursar_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
bursar_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *s = bursar_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int
bursar_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    int cut = n >= cap;
    if (cut)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return cut;
}

int
bursar_read_file(const char *path, char **out, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return BURSAR_EIO;
    size_t cap = 1 << 16, n = 0;
    char *buf = bursar_malloc(cap);
    errno = 0;
    for (;;) {
        if (cap - n < 2)
            buf = bursar_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f), e = errno; /* fread's reason (EISDIR...) */
    if (!is_stdin)
        fclose(f);
    if (bad) {
        free(buf);
        errno = e ? e : EIO;
        return BURSAR_EIO;
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p (first byte >= 0x80), or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t
bursar_utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

void
bursar_log_time(double t, char *buf)
{
    time_t sec = (time_t)t; /* t >= 0: truncation is the floor */
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms > 999)
        ms = 999;
    if (ms < 0)
        ms = 0;
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, BURSAR_LOG_TIME, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, BURSAR_LOG_TIME - n, ".%03dZ", ms);
}

void
bursar_vlog(const char *fmt, va_list ap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[2048];
    bursar_log_time((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9, line);
    size_t n = strlen(line);
    line[n++] = ' ';
    int k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (k < 0)
        k = 0;
    n = (size_t)k < sizeof line - n ? n + (size_t)k : sizeof line - 1;
    if (line[n - 1] != '\n') {
        if (n >= sizeof line - 1)
            n = sizeof line - 2;
        line[n++] = '\n';
    }
    for (size_t off = 0; off < n;) { /* one write, unless interrupted */
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void
bursar_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bursar_vlog(fmt, ap);
    va_end(ap);
}

int
bursar_edit_distance(const char *a, const char *b, int max)
{
    enum { LEN = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= LEN || lb >= LEN)
        return max + 1;
    int row[LEN], prev[LEN];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = (int)i;
        int lo = row[0];
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = row[j - 1] + 1;
            row[j] =
                sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (row[j] < lo)
                lo = row[j];
        }
        if (lo > max) /* every later row is at least this */
            return max + 1;
        memcpy(prev, row, (lb + 1) * sizeof *row);
    }
    return prev[lb] > max ? max + 1 : prev[lb];
}

int
bursar_getopt_long(int argc, char *const *argv, const char *optstring,
                   const struct option *longopts, int *longindex)
{
    int li = -1;
    int c = getopt_long(argc, argv, optstring, longopts, &li);
    if (longindex)
        *longindex = li;
    if (c == -1 || li < 0 || longopts[li].has_arg != required_argument ||
        !optarg || optind < 1 || optarg != argv[optind - 1])
        return c; /* no value, or one given "--X=value" */
    if (strncmp(optarg, "--", 2) != 0 || !isalpha((unsigned char)optarg[2]))
        return c;
    optind--; /* the word is the next option, not a value */
    optarg = NULL;
    optopt = longopts[li].flag ? 0 : longopts[li].val;
    const char *s = optstring;
    if (*s == '+' || *s == '-')
        s++;
    return *s == ':' ? ':' : '?';
}

void
bursar_json_where(const char *text, const char *at, long *line, long *col)
{
    *line = 1;
    *col = 1;
    if (!text || !at || at < text)
        return;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}
