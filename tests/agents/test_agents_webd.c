/*
 * test_agents_webd.c - the operator's HTTP server (agents/webd.h) over
 * real sockets: who may connect (the allow-list, IPv4-mapped addresses on
 * an IPv6 socket), the bearer token, methods, and the address checks;
 * and the text exposition writer its pages use (agents/expo.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agents/expo.h"
#include "agents/webd.h"
#include "tests/http.h"

static int served;

static double
now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void
serve(void *ctx, const char *path, webd_req_t *rq, webd_reply_t *r)
{
    (void)ctx;
    (void)rq;
    served++;
    r->status = strcmp(path, "/x") == 0 ? 200 : 404;
    r->body = strdup(r->status == 200 ? "hello\n" : "no\n");
    r->len = strlen(r->body);
}

/* Sends req to 127.0.0.1:port (af AF_INET) or [::1]:port (AF_INET6) and
 * returns what came back before the server closed (malloc'ed; "" when the
 * connection was closed without an answer). */
static char *
http(int af, unsigned port, const char *req)
{
    int fd = af == AF_INET ? th_http_connect(port) : th_http_connect6(port);
    th_http_send(fd, req, strlen(req));
    th_http_resp_t r;
    th_http_read(fd, &r, 0);
    close(fd);
    char *out = r.raw;
    r.raw = NULL;
    th_http_free(&r);
    return out;
}

#define GET_X "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

static webd_t *
start(const char *listen, const char *const *allow, size_t n, const char *token)
{
    webd_opts_t o = {.listen = listen,
                     .allow = allow,
                     .n_allow = n,
                     .token = token,
                     .name = "test",
                     .quiet = 1};
    webd_t *w = NULL;
    char err[256] = "";
    if (webd_start(&w, &o, serve, NULL, err, sizeof err) != 0)
        fail_msg("webd_start: %s", err);
    assert_true(webd_port(w) > 0);
    return w;
}

static void
test_loopback_by_default(void **state)
{
    (void)state;
    webd_t *w = start("127.0.0.1:0", NULL, 0, NULL);
    served = 0;
    char *r = http(AF_INET, webd_port(w), GET_X);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "hello"));
    assert_non_null(strstr(r, "Cache-Control: no-store"));
    free(r);
    r = http(
        AF_INET, webd_port(w),
        "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404"));
    free(r);
    assert_int_equal(served, 2);
    /* the Host must name this server (DNS rebinding): an address,
     * localhost, or the listen address's name */
    static const char *const good[] = {"127.0.0.1:9", "localhost",
                                       "LOCALHOST:80", "[::1]:1", "10.0.0.7"};
    static const char *const bad[] = {"attacker.example", "evil:80",
                                      "localhost.attacker.example"};
    char req[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(req, sizeof req,
                 "GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 good[i]);
        r = http(AF_INET, webd_port(w), req);
        if (!strstr(r, "HTTP/1.1 200"))
            fail_msg("Host %s: %s", good[i], r);
        free(r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(req, sizeof req,
                 "GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 bad[i]);
        r = http(AF_INET, webd_port(w), req);
        if (!strstr(r, "HTTP/1.1 421"))
            fail_msg("Host %s: %s", bad[i], r);
        free(r);
    }
    assert_int_equal(served, 2 + 5);
    r = http(AF_INET, webd_port(w), GET_X);
    assert_non_null(strstr(r, "X-Frame-Options: DENY"));
    assert_non_null(strstr(r, "frame-ancestors 'none'"));
    assert_non_null(strstr(r, "Referrer-Policy: no-referrer"));
    free(r);
    webd_stop(&w);
    assert_null(w);
}

static void
test_allow_list_refuses(void **state)
{
    (void)state;
    const char *const other[] = {"10.0.0.0/8", "::1/128"};
    webd_t *w = start("127.0.0.1:0", other, 2, NULL);
    served = 0;
    char *r = http(AF_INET, webd_port(w), GET_X);
    assert_string_equal(r, ""); /* closed at accept, no answer */
    assert_int_equal(served, 0);
    free(r);
    webd_stop(&w);

    const char *const one[] = {"127.0.0.1"}; /* one host */
    w = start("127.0.0.1:0", one, 1, NULL);
    r = http(AF_INET, webd_port(w), GET_X);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    webd_stop(&w);

    const char *const narrow[] = {"127.0.0.2/31"}; /* .2 and .3 only */
    w = start("127.0.0.1:0", narrow, 1, NULL);
    r = http(AF_INET, webd_port(w), GET_X);
    assert_string_equal(r, "");
    free(r);
    webd_stop(&w);
}

/* On an IPv6 socket an IPv4 client shows as ::ffff:127.0.0.1: it is
 * judged as 127.0.0.1, and ::1 only by the IPv6 networks. */
static void
test_ipv6_and_mapped(void **state)
{
    (void)state;
    const char *const v4[] = {"127.0.0.0/8"};
    webd_t *w = start("[::]:0", v4, 1, NULL);
    char *r = http(AF_INET, webd_port(w), GET_X);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = http(AF_INET6, webd_port(w), GET_X);
    assert_string_equal(r, "");
    free(r);
    webd_stop(&w);

    const char *const v6[] = {"::1/128"};
    w = start("[::]:0", v6, 1, NULL);
    r = http(AF_INET6, webd_port(w), GET_X);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = http(AF_INET, webd_port(w), GET_X);
    assert_string_equal(r, "");
    free(r);
    webd_stop(&w);
}

static void
test_token_and_methods(void **state)
{
    (void)state;
    webd_t *w = start("127.0.0.1:0", NULL, 0, "s3cret");
    unsigned p = webd_port(w);
    served = 0;
    char *r = http(AF_INET, p, GET_X);
    assert_non_null(strstr(r, "HTTP/1.1 401"));
    assert_non_null(strstr(r, "WWW-Authenticate: Bearer"));
    free(r);
    r = http(AF_INET, p,
             "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cre"
             "\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 401"));
    free(r);
    r = http(
        AF_INET, p,
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cretX"
        "\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 401"));
    free(r);
    assert_int_equal(served, 0);
    r = http(
        AF_INET, p,
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: bearer s3cret"
        "\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = http(
        AF_INET, p,
        "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret"
        "\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_non_null(strstr(r, "HTTP/1.1 405"));
    assert_non_null(strstr(r, "Allow: GET, HEAD"));
    free(r);
    /* refused from the head: no "100 Continue", no gigabyte read */
    double t0 = now_s();
    r = http(
        AF_INET, p,
        "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret"
        "\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 405", 12) == 0);
    assert_null(strstr(r, "100 Continue"));
    free(r);
    r = http(
        AF_INET, p,
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n"
        "Expect: 100-continue\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 401", 12) == 0);
    free(r);
    assert_true(now_s() - t0 < 4); /* answered, not left to time out */
    assert_int_equal(served, 1);
    webd_stop(&w);
}

static void
test_addresses(void **state)
{
    (void)state;
    assert_true(webd_cidr_ok("127.0.0.0/8"));
    assert_true(webd_cidr_ok("10.1.2.3"));
    assert_true(webd_cidr_ok("::1/128"));
    assert_true(webd_cidr_ok("fd00::/8"));
    assert_true(webd_cidr_ok("0.0.0.0/0"));
    assert_false(webd_cidr_ok("127.0.0.0/33"));
    assert_false(webd_cidr_ok("::1/129"));
    assert_false(webd_cidr_ok("localhost"));
    assert_false(webd_cidr_ok("10.0.0.0/"));
    assert_false(webd_cidr_ok("/8"));
    assert_false(webd_cidr_ok("10.0.0.0/8x"));
    assert_true(webd_listen_ok("127.0.0.1:9464"));
    assert_true(webd_listen_ok("[::1]:0"));
    assert_false(webd_listen_ok(":9464")); /* a host is required */
    assert_false(webd_listen_ok("127.0.0.1"));
    assert_false(webd_listen_ok("127.0.0.1:65536"));
    assert_false(webd_listen_ok("127.0.0.1:http"));

    webd_opts_t o = {.listen = "127.0.0.1:0", .quiet = 1};
    const char *const bad[] = {"10.0.0.0/8", "nonsense"};
    o.allow = bad;
    o.n_allow = 2;
    webd_t *w = NULL;
    char err[256] = "";
    assert_int_equal(webd_start(&w, &o, serve, NULL, err, sizeof err), -1);
    assert_null(w);
    assert_non_null(strstr(err, "allow[1]"));
    o.n_allow = 0;
    o.listen = "no-such-host.invalid:80";
    assert_int_equal(webd_start(&w, &o, serve, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-host.invalid"));
}

static void
test_expo(void **state)
{
    (void)state;
    bursar_buf_t b = {0};
    expo_family(&b, "x_total", "counter", "A \\ and\na line.");
    expo_sample(&b, "x_total", 3, 2, "model", "a\"b\\c\nd", "bucket", "");
    expo_sample(&b, "y", 0.1, 0);
    expo_sample(&b, "v", 0.00005, 0);
    expo_sample(&b, "z", NAN, 0);
    expo_sample(&b, "w", -INFINITY, 1, "k", "v");
    /* not UTF-8: each stray byte becomes U+FFFD; UTF-8 is kept */
    expo_sample(&b, "u", 1, 1, "bucket", "a\xff\xfe\"b\xc3\xa9\xe2\x82");
    assert_string_equal(b.p,
                        "# HELP x_total A \\\\ and\\na line.\n"
                        "# TYPE x_total counter\n"
                        "x_total{model=\"a\\\"b\\\\c\\nd\",bucket=\"\"} 3\n"
                        "y 0.1\n"
                        "v 5e-05\n"
                        "z NaN\n"
                        "w{k=\"v\"} -Inf\n"
                        "u{bucket=\"a\xef\xbf\xbd\xef\xbf\xbd\\\"b\xc3\xa9"
                        "\xef\xbf\xbd\xef\xbf\xbd\"} 1\n");
    free(b.p);

    expo_hist_t h;
    const double le[] = {0.25, 0.5, 2};
    expo_hist_init(&h, le, 3);
    expo_hist_observe(&h, 0.25); /* le is inclusive */
    expo_hist_observe(&h, 0.3125);
    expo_hist_observe(&h, 0.375);
    expo_hist_observe(&h, 9);
    expo_hist_observe(&h, NAN); /* ignored */
    memset(&b, 0, sizeof b);
    expo_hist_write(&b, "t_seconds", &h, 1, "op", "choose");
    assert_string_equal(b.p, "t_seconds_bucket{op=\"choose\",le=\"0.25\"} 1\n"
                             "t_seconds_bucket{op=\"choose\",le=\"0.5\"} 3\n"
                             "t_seconds_bucket{op=\"choose\",le=\"2\"} 3\n"
                             "t_seconds_bucket{op=\"choose\",le=\"+Inf\"} 4\n"
                             "t_seconds_sum{op=\"choose\"} 9.9375\n"
                             "t_seconds_count{op=\"choose\"} 4\n");
    free(b.p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_by_default),
        cmocka_unit_test(test_allow_list_refuses),
        cmocka_unit_test(test_ipv6_and_mapped),
        cmocka_unit_test(test_token_and_methods),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_expo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
