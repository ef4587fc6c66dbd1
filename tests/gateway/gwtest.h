/*
 * gwtest.h - what the gateway's C tests share: running bursar-gateway as a
 * command, a key from --new-key, and its clean exit on SIGTERM.
 */
#ifndef BURSAR_TESTS_GATEWAY_GWTEST_H
#define BURSAR_TESTS_GATEWAY_GWTEST_H

#include <stddef.h>
#include <sys/types.h>

/* Runs bursar-gateway with args (shell words, printf-style), stderr with
 * stdout into out; returns the exit status. */
int gwt_run(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A key of tenant from bursar-gateway --new-key (checked: "bsk-" and 43
 * characters) into key, and its configuration entry (the second line,
 * naming the tenant) into entry. */
void gwt_new_key(const char *tenant, char *key, size_t kcap, char *entry,
                 size_t ecap);

/* SIGTERM to the gateway *pid, and fails the test (with the end of its
 * log) unless it exits 0 within 20 s; *pid is 0 afterwards. */
void gwt_expect_clean_exit(pid_t *pid, const char *log);

#endif
