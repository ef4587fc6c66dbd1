/*
 * hello.c - a program of a user of the installed client library
 * (tests/install/test_install.sh builds it with pkg-config alone):
 *
 *     hello ENDPOINT COST_USD
 *
 * asks bursard for a model of bucket "code", reports a success that cost
 * COST_USD, prints "model NAME" and exits 0; on any failure prints what
 * failed and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include <bursar/bursar.h>

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hello ENDPOINT COST_USD\n");
        return 2;
    }
    bursar_opts_t o;
    bursar_opts_init(&o);
    o.endpoint = argv[1];
    o.timeout_ms = 3000;
    bursar_t *b = NULL;
    char err[256] = "";
    int rc = bursar_new_err(&b, &o, err, sizeof err);
    if (rc != BURSAR_OK) {
        fprintf(stderr, "hello: bursar_new: %s: %s\n", bursar_strerror(rc),
                err);
        return 1;
    }
    bursar_decision_t d;
    rc = bursar_choose(b, "code", NULL, 0, &d);
    if (rc != BURSAR_OK) {
        fprintf(stderr, "hello: bursar_choose: %s: %s\n", bursar_strerror(rc),
                bursar_last_error(b));
        bursar_destroy(&b);
        return 1;
    }
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = 1;
    fb.cost_usd = strtod(argv[2], NULL);
    fb.latency_ms = 120;
    rc = bursar_feedback(b, &d, &fb);
    if (rc != BURSAR_OK) {
        fprintf(stderr, "hello: bursar_feedback: %s: %s\n", bursar_strerror(rc),
                bursar_last_error(b));
        bursar_destroy(&b);
        return 1;
    }
    printf("model %s\n", d.model);
    bursar_destroy(&b);
    return 0;
}
