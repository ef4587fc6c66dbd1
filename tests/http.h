/*
 * http.h - the tests' raw-socket HTTP client: a connection to
 * 127.0.0.1:PORT (or [::1]:PORT), a request sent whole, the answer read
 * until the server closes (or a timeout), split into status, head and
 * body, chunked bodies decoded, headers found case-insensitively.
 *
 * Raw, so that a test can send anything (two Content-Length headers, a
 * head without its body) and see exactly what came back, a connection
 * closed without an answer included. Every function asserts (cmocka) on
 * setup failures (socket, connect, out of memory); none returns errors.
 */
#ifndef BURSAR_TESTS_HTTP_H
#define BURSAR_TESTS_HTTP_H

#include <stddef.h>

/* Seconds a connection waits to receive or send, unless set by
 * th_http_timeout. */
#define TH_HTTP_TIMEOUT_S 5

/* th_http_read's flags. */
enum {
    /* stop reading once a body with a Content-Length has come whole
     * (else: until the server closes) */
    TH_HTTP_UNTIL_LENGTH = 1,
    /* decode the body when the head says Transfer-Encoding: chunked */
    TH_HTTP_DECHUNK = 2,
};

/* An answer as it came off the socket. */
typedef struct th_http_resp {
    int status;      /* the status line's code; 0 when what came is not a
                        status line and a whole head (nothing at all, a
                        connection closed unanswered, included) */
    size_t bytes;    /* received in all */
    int timed_out;   /* 1: reading stopped at the timeout, not at the
                        server's close (or the whole Content-Length) */
    char *raw;       /* everything received, NUL-terminated */
    char *head;      /* the status line and the headers, without the empty
                        line; "" when status is 0 */
    char *body;      /* after the empty line (decoded with
                        TH_HTTP_DECHUNK); all of raw when status is 0 */
    size_t body_len; /* the length of body */
} th_http_resp_t;

/* The timeout (seconds) of the connections made from now on. */
void th_http_timeout(int seconds);

/* A TCP connection to 127.0.0.1:port (th_http_connect) or [::1]:port
 * (th_http_connect6) with the timeout; fails the test (naming the address
 * and the reason) when it cannot connect. */
int th_http_connect(unsigned port);
int th_http_connect6(unsigned port);

/* Sends p[0..n) whole, or until the server has closed or reset the
 * connection: not an error here (a server that refuses a request may
 * close before reading it; its answer is read afterwards). */
void th_http_send(int fd, const void *p, size_t n);

/* Reads the answer (flags: TH_HTTP_*) into *r (th_http_free frees it). */
void th_http_read(int fd, th_http_resp_t *r, int flags);

/* One exchange on a fresh connection to 127.0.0.1:port: sends req[0..len)
 * whole, reads the answer (flags), closes. */
void th_http_exchange(th_http_resp_t *r, unsigned port, const char *req,
                      size_t len, int flags);

/* One request on a fresh connection to 127.0.0.1:port: the request line,
 * "Host: 127.0.0.1:PORT", "Connection: close", the header lines headers
 * ("Name: value\r\n" each, or NULL), and when body is not NULL
 * "Content-Type: application/json" and "Content-Length: body_len"; then
 * the body sent after the head. Reads the answer (flags) and closes. */
void th_http_do(th_http_resp_t *r, unsigned port, const char *method,
                const char *path, const char *headers, const char *body,
                size_t body_len, int flags);

/* Frees what th_http_read filled in and zeroes *r. */
void th_http_free(th_http_resp_t *r);

/* Decodes a chunked body in place (up to the last chunk, or as far as it
 * came); returns its length. */
size_t th_http_dechunk(char *s);

/* The value of header name in head (a status line, then header lines),
 * the name matched case-insensitively, leading blanks skipped; it runs to
 * the end of its line. NULL when there is none. */
const char *th_http_header(const char *head, const char *name);

/* strcasestr without _GNU_SOURCE: the first place of needle in hay,
 * case-insensitively, or NULL. */
const char *th_http_find(const char *hay, const char *needle);

#endif
