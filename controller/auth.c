/*
 * auth.c - the allow-list (auth.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "policies/base.h"

static const struct {
    const char *name;
    unsigned bit;
} auth_role_names[] = {{"agent", AUTH_AGENT},
                       {"feedback", AUTH_FEEDBACK},
                       {"operator", AUTH_OPERATOR}};

#define AUTH_N_ROLES (sizeof auth_role_names / sizeof auth_role_names[0])

/* The role mask of "agent,operator", or 0 with the bad role in bad. */
static unsigned
auth_parse_roles(char *s, char *bad, size_t bad_len)
{
    unsigned roles = 0;
    char *save = NULL;
    for (char *r = strtok_r(s, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < AUTH_N_ROLES && strcmp(r, auth_role_names[i].name) != 0)
            i++;
        if (i == AUTH_N_ROLES) {
            snprintf(bad, bad_len, "%.40s", r);
            return 0;
        }
        roles |= auth_role_names[i].bit;
    }
    if (!roles)
        snprintf(bad, bad_len, "%s", "");
    return roles;
}

static int
auth_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Splits line into at most 4 whitespace-separated fields. */
static int
auth_fields(char *line, char *f[4])
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < 4;
         t = strtok_r(NULL, " \t\r", &save))
        f[n++] = t;
    return n;
}

/* The client with this key among the first l->n, in any order. */
static const auth_client_t *
auth_scan_key(const auth_list_t *l, const uint8_t key[32])
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->c[i].key, key, 32) == 0)
            return &l->c[i];
    return NULL;
}

static int
auth_cmp_key(const void *a, const void *b)
{
    return memcmp(((const auth_client_t *)a)->key,
                  ((const auth_client_t *)b)->key, 32);
}

/* Parses one non-comment line into c; -1 with what in msg. */
static int
auth_line(char *line, const auth_list_t *l, auth_client_t *c, char *msg,
          size_t msg_len)
{
    char *f[4];
    int n = auth_fields(line, f);
    if (n != 3) {
        snprintf(msg, msg_len,
                 "expected 3 fields (PUBLIC-KEY NAME ROLES), got %d", n);
        return -1;
    }
    memset(c, 0, sizeof *c);
    if (strlen(f[0]) != 40 || !zmq_z85_decode(c->key, f[0])) {
        snprintf(msg, msg_len,
                 "\"%.48s\" is not a public key (40 Z85 characters)", f[0]);
        return -1;
    }
    if (!auth_name_ok(f[1])) {
        snprintf(msg, msg_len,
                 "name \"%.40s\": 1 to %d characters of A-Z a-z 0-9 _ . -",
                 f[1], AUTH_NAME_MAX - 1);
        return -1;
    }
    snprintf(c->name, sizeof c->name, "%s", f[1]);
    char bad[48];
    if (!(c->roles = auth_parse_roles(f[2], bad, sizeof bad))) {
        if (bad[0])
            snprintf(msg, msg_len,
                     "unknown role \"%s\" (agent, feedback, operator)", bad);
        else
            snprintf(msg, msg_len, "no role given (agent, feedback, operator)");
        return -1;
    }
    if (auth_scan_key(l, c->key)) {
        snprintf(msg, msg_len, "the key of \"%s\" is listed twice (also %s)",
                 c->name, auth_scan_key(l, c->key)->name);
        return -1;
    }
    if (auth_find_name(l, c->name)) {
        snprintf(msg, msg_len, "the name \"%s\" is listed twice", c->name);
        return -1;
    }
    return 0;
}

int
auth_parse(const char *text, size_t len, const char *file, auth_list_t *out,
           char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    int line_no = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        line_no++;
        char line[512], msg[200];
        if (n >= sizeof line || memchr(text + at, '\0', n)) {
            snprintf(err, err_len, "%s:%d: %s", file, line_no,
                     n >= sizeof line ? "line too long" : "a NUL byte");
            auth_free(out);
            return -1;
        }
        memcpy(line, text + at, n);
        line[n] = '\0';
        at += n + 1;
        char *s = line + strspn(line, " \t\r");
        if (*s == '\0' || *s == '#')
            continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16;
            out->c = bursar_realloc(out->c, cap * sizeof *out->c);
        }
        if (auth_line(s, out, &out->c[out->n], msg, sizeof msg) != 0) {
            snprintf(err, err_len, "%s:%d: %s", file, line_no, msg);
            auth_free(out);
            return -1;
        }
        out->n++;
    }
    if (out->n)
        qsort(out->c, out->n, sizeof *out->c, auth_cmp_key);
    return 0;
}

int
auth_load(const char *path, auth_list_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = bursar_read_file(path, &text, &len);
    if (rc) {
        snprintf(err, err_len, "%s: cannot read the allow-list: %s", path,
                 bursar_strerror(rc));
        return -1;
    }
    rc = auth_parse(text, len, path, out, err, err_len);
    free(text);
    return rc;
}

void
auth_free(auth_list_t *l)
{
    free(l->c);
    memset(l, 0, sizeof *l);
}

const auth_client_t *
auth_find_key(const auth_list_t *l, const uint8_t key[32])
{
    auth_client_t k;
    memcpy(k.key, key, 32);
    return l->n ? bsearch(&k, l->c, l->n, sizeof *l->c, auth_cmp_key) : NULL;
}

const auth_client_t *
auth_find_name(const auth_list_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->c[i].name, name) == 0)
            return &l->c[i];
    return NULL;
}

const char *
auth_roles_text(unsigned roles, char buf[32])
{
    buf[0] = '\0';
    for (size_t i = 0; i < AUTH_N_ROLES; i++)
        if (roles & auth_role_names[i].bit)
            snprintf(buf + strlen(buf), 32 - strlen(buf), "%s%s",
                     buf[0] ? "," : "", auth_role_names[i].name);
    return buf;
}
