/*
 * gwtest.c - what the gateway's C tests share (gwtest.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tests/gateway/gwtest.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/agents/util.h"
#include "tests/harness.h"

int
gwt_run(char *out, size_t cap, const char *fmt, ...)
{
    char args[2048], cmd[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", th_need("bursar-gateway"), args);
    int st = th_run(cmd, out, cap);
    print_message("bursar-gateway %s -> %d: %s", args, st, out);
    return st;
}

void
gwt_new_key(const char *tenant, char *key, size_t kcap, char *entry,
            size_t ecap)
{
    char cmd[1200], out[1024], quoted[80];
    snprintf(cmd, sizeof cmd, "'%s' --new-key %s", th_need("bursar-gateway"),
             tenant);
    assert_int_equal(th_run(cmd, out, sizeof out), 0);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_true(strlen(out) < kcap);
    memcpy(key, out, strlen(out) + 1);
    assert_int_equal(strncmp(key, "bsk-", 4), 0);
    assert_int_equal(strlen(key), 4 + 43);
    char *l2 = nl + 1, *e2 = strchr(l2, '\n');
    if (e2)
        *e2 = '\0';
    snprintf(entry, ecap, "%s", l2);
    snprintf(quoted, sizeof quoted, "\"%s\"", tenant);
    assert_non_null(strstr(entry, quoted));
}

void
gwt_expect_clean_exit(pid_t *pid, const char *log)
{
    kill(*pid, SIGTERM);
    int st = tu_wait(*pid, 20000);
    *pid = 0;
    if (st != 0) {
        char *text = tu_read_file(log);
        size_t len = text ? strlen(text) : 0;
        fail_msg("bursar-gateway exited with %d on SIGTERM; its log ends:\n%s",
                 st, text ? text + (len > 3000 ? len - 3000 : 0) : "(none)");
    }
}
