/*
 * http.c - the tests' raw-socket HTTP client (http.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tests/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

static int th_http_timeout_s = TH_HTTP_TIMEOUT_S;

void
th_http_timeout(int seconds)
{
    th_http_timeout_s = seconds;
}

static int
th_http_connect_af(int af, unsigned port)
{
    int fd = socket(af, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {th_http_timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc;
    if (af == AF_INET) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((unsigned short)port);
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc != 0)
        fail_msg("cannot connect to %s:%u: %s",
                 af == AF_INET ? "127.0.0.1" : "[::1]", port, strerror(errno));
    return fd;
}

int
th_http_connect(unsigned port)
{
    return th_http_connect_af(AF_INET, port);
}

int
th_http_connect6(unsigned port)
{
    return th_http_connect_af(AF_INET6, port);
}

void
th_http_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

/* th_http_header within head[0..end): the header lines after the status
 * line that start before end. */
static const char *
th_http_header_in(const char *head, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *h = strstr(head, "\r\n"); h && h < end;
         h = strstr(h + 2, "\r\n")) {
        const char *l = h + 2;
        if (l + n < end && strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

const char *
th_http_header(const char *head, const char *name)
{
    return th_http_header_in(head, head + strlen(head), name);
}

const char *
th_http_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

size_t
th_http_dechunk(char *s)
{
    char *in = s, *out = s;
    for (;;) {
        char *end;
        unsigned long n = strtoul(in, &end, 16);
        char *line = strstr(in, "\r\n");
        if (end == in || !line || n == 0)
            break;
        in = line + 2;
        if (strlen(in) < n)
            n = strlen(in);
        memmove(out, in, n);
        out += n;
        in += n;
        if (strncmp(in, "\r\n", 2) == 0)
            in += 2;
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* 1 when buf[0..n) holds a whole answer with a Content-Length. */
static int
th_http_complete(const char *buf, size_t n)
{
    const char *sep = strstr(buf, "\r\n\r\n");
    if (!sep)
        return 0;
    const char *v = th_http_header_in(buf, sep, "Content-Length");
    size_t hl = (size_t)(sep - buf) + 4;
    return v && n >= hl + strtoul(v, NULL, 10);
}

/* A copy of p[0..n), NUL-terminated. */
static char *
th_http_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* 1 when the value v (to the end of its line) names the chunked coding. */
static int
th_http_chunked(const char *v)
{
    size_t len = strcspn(v, "\r\n");
    for (size_t i = 0; i + 7 <= len; i++)
        if (strncasecmp(v + i, "chunked", 7) == 0)
            return 1;
    return 0;
}

/* Splits r->raw into status, head and body. */
static void
th_http_split(th_http_resp_t *r, int flags)
{
    const char *sep = strstr(r->raw, "\r\n\r\n");
    if (sep && sscanf(r->raw, "HTTP/1.%*d %d", &r->status) == 1) {
        size_t hl = (size_t)(sep - r->raw);
        r->head = th_http_dup(r->raw, hl);
        r->body_len = r->bytes - hl - 4;
        r->body = th_http_dup(sep + 4, r->body_len);
        const char *te = th_http_header(r->head, "Transfer-Encoding");
        if ((flags & TH_HTTP_DECHUNK) && te && th_http_chunked(te))
            r->body_len = th_http_dechunk(r->body);
    } else {
        r->status = 0;
        r->head = th_http_dup("", 0);
        r->body = th_http_dup(r->raw, r->bytes);
        r->body_len = r->bytes;
    }
}

void
th_http_read(int fd, th_http_resp_t *r, int flags)
{
    memset(r, 0, sizeof *r);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n + 1 >= cap) {
            buf = realloc(buf, cap *= 2);
            assert_non_null(buf);
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            r->timed_out = 1;
            break;
        }
        if (got <= 0)
            break; /* closed, or reset by a refusing server */
        n += (size_t)got;
        buf[n] = '\0';
        if ((flags & TH_HTTP_UNTIL_LENGTH) && th_http_complete(buf, n))
            break;
    }
    buf[n] = '\0';
    r->raw = buf;
    r->bytes = n;
    th_http_split(r, flags);
}

void
th_http_exchange(th_http_resp_t *r, unsigned port, const char *req, size_t len,
                 int flags)
{
    int fd = th_http_connect(port);
    th_http_send(fd, req, len);
    th_http_read(fd, r, flags);
    close(fd);
}

void
th_http_do(th_http_resp_t *r, unsigned port, const char *method,
           const char *path, const char *headers, const char *body,
           size_t body_len, int flags)
{
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Connection: close\r\n%s",
                     method, path, port, headers ? headers : "");
    assert_true(n > 0 && (size_t)n < sizeof head - 128); /* room for more */
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n",
                      body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    int fd = th_http_connect(port);
    th_http_send(fd, head, (size_t)n);
    if (body)
        th_http_send(fd, body, body_len);
    th_http_read(fd, r, flags);
    close(fd);
}

void
th_http_free(th_http_resp_t *r)
{
    free(r->raw);
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}
