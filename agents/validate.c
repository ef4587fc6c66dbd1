/*
 * validate.c - output validators (validate.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/autil.h"
#include "agents/validate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    V_NONE,
    V_JSON,
    V_JSON_KEYS,
    V_REGEX,
    V_MAX_LENGTH,
    V_COMMAND,
    V_ALL
} vkind_t;

struct validator {
    vkind_t kind;
    cJSON *keys;     /* V_JSON_KEYS: {"name":"type"} */
    regex_t re;      /* V_REGEX */
    size_t max;      /* V_MAX_LENGTH */
    char *cmd;       /* V_COMMAND */
    long timeout_ms; /* V_COMMAND */
    size_t n_parts;  /* V_ALL */
    validator_t **parts;
};

static const char *const kind_names[] = {
    "none", "json", "json_keys", "regex", "max_length", "command", "all"};

const char *
validator_kind(const validator_t *self)
{
    return kind_names[self->kind];
}

static int
fail(char *err, size_t cap, const char *msg)
{
    if (err && cap)
        snprintf(err, cap, "%s", msg);
    return BURSAR_EFORMAT;
}

static int
type_known(const char *t)
{
    static const char *const types[] = {"string",  "number", "integer",
                                        "boolean", "array",  "object",
                                        "null",    "any"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(t, types[i]) == 0)
            return 1;
    return 0;
}

/* "keys" (or "required") of a json validator: {"name":"type"}, or
 * ["name", ...] meaning any type. */
static int
parse_keys(validator_t *v, const cJSON *k, char *err, size_t cap)
{
    v->kind = V_JSON_KEYS;
    v->keys = cJSON_CreateObject();
    const cJSON *it;
    if (cJSON_IsArray(k)) {
        cJSON_ArrayForEach(it, k)
        {
            if (!cJSON_IsString(it))
                return fail(err, cap,
                            "validate.required: names must be "
                            "strings");
            cJSON_AddStringToObject(v->keys, it->valuestring, "any");
        }
        return 0;
    }
    if (!cJSON_IsObject(k))
        return fail(err, cap, "validate.keys: must be an object or array");
    cJSON_ArrayForEach(it, k)
    {
        if (!cJSON_IsString(it) || !type_known(it->valuestring)) {
            char m[160];
            snprintf(m, sizeof(m),
                     "validate.keys.%.60s: type must be one of "
                     "string number integer boolean array "
                     "object null any",
                     it->string);
            return fail(err, cap, m);
        }
        cJSON_AddStringToObject(v->keys, it->string, it->valuestring);
    }
    return 0;
}

/* "json" and "json_keys" (which needs keys). */
static int
parse_json(validator_t *v, const cJSON *spec, const char *type, char *err,
           size_t cap)
{
    v->kind = V_JSON;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(spec, "keys");
    if (!k)
        k = cJSON_GetObjectItemCaseSensitive(spec, "required");
    if (k)
        return parse_keys(v, k, err, cap);
    if (strcmp(type, "json_keys") == 0)
        return fail(err, cap, "validate: json_keys needs \"keys\"");
    return 0;
}

/* --------------------------------------------------- regex size check
 *
 * glibc's regcomp builds a tree in which a bounded repetition is copied:
 * x+ becomes x x*, x{m,n} n copies of x. Repetitions of repetitions
 * multiply, so a 40-byte pattern such as `[0-\xfc]` followed by 42 '+'
 * asks for 2^42 nodes and regcomp allocates gigabytes before it fails
 * (found by tests/fuzz/fuzz_validate.c). Before compiling, the pattern's
 * size after that expansion is estimated (one unit per atom, operator and
 * group, a repetition multiplying its operand) and a pattern above
 * VALIDATE_REGEX_WEIGHT is refused, as is one longer than
 * VALIDATE_REGEX_LEN bytes or nested deeper than VALIDATE_REGEX_DEPTH.
 * Measured with glibc 2.36: the worst patterns of weight 2000 found
 * ((a?){1990}a{5}) compile and run over 4 KiB in 0.3 s and 33 MB. Back-
 * references (\1..\9, a glibc extension to ERE) are refused: regexec
 * backtracks on them, and (a*)*\1b does not end within minutes on 4 KiB.
 * The weight does not see the cost of nested repetitions that can match
 * the empty string, in regcomp's epsilon closures: a 243-byte pattern of
 * stacked operators (x**???...) ran for minutes (fuzz_validate), and so
 * does ((x?)*)? 300 times over. Two operators in a row (undefined in
 * POSIX) and repetitions nested deeper than VALIDATE_REGEX_NEST are
 * refused; (x*)* 600 times over compiles in 0.6 s. */

typedef struct rx_frame {
    double sum;   /* the group's items before the last one */
    double last;  /* the last item (0: none yet) */
    int rep;      /* repetitions nested in the items before the last */
    int last_rep; /* ... in the last item */
    int last_op;  /* 1: the last item ends with a repetition operator */
} rx_frame_t;

/* The last item of f is done: it joins the items before it. */
static void
rx_push(rx_frame_t *f, double w, int rep)
{
    f->sum += f->last;
    f->rep = f->rep > f->last_rep ? f->rep : f->last_rep;
    f->last = w;
    f->last_rep = rep;
    f->last_op = 0;
}

/* The end of the bracket expression at p (just after '['), or NULL if it
 * does not end (regcomp then says so). */
static const char *
rx_bracket(const char *p)
{
    if (*p == '^')
        p++;
    if (*p == ']')
        p++; /* a leading ']' is a member */
    for (; *p && *p != ']'; p++)
        if (p[0] == '[' && (p[1] == ':' || p[1] == '=' || p[1] == '.')) {
            const char *q = p + 2;
            while (*q && !(q[0] == p[1] && q[1] == ']'))
                q++;
            if (!*q)
                return NULL;
            p = q + 1;
        }
    return *p ? p + 1 : NULL;
}

/* The copies a repetition at p makes of its operand, and its length in
 * *n; 0 when p is not a repetition (a '{' that is no interval: regcomp
 * decides). */
static double
rx_repeat(const char *p, size_t *n)
{
    *n = 1;
    if (*p == '*' || *p == '?')
        return 1;
    if (*p == '+')
        return 2;
    if (*p != '{')
        return 0;
    char *e;
    unsigned long m = strtoul(p + 1, &e, 10), hi = m;
    if (e == p + 1 || (*e != ',' && *e != '}'))
        return 0;
    if (*e == ',') {
        const char *f = e + 1;
        hi = *f == '}' ? m + 1 : strtoul(f, &e, 10);
        if (*f != '}' && e == f)
            return 0;
        if (*f == '}')
            e = (char *)f;
    }
    if (*e != '}')
        return 0;
    *n = (size_t)(e + 1 - p);
    return hi > m ? (double)hi : (double)(m ? m : 1);
}

/* The size so far: every open group's items (regcomp has built them). */
static double
rx_total(const rx_frame_t *st, int d)
{
    double t = 0;
    for (int i = 0; i <= d; i++)
        t += st[i].sum + st[i].last;
    return t;
}

/* 0, or BURSAR_EFORMAT with the reason in err. */
static int
rx_check(const char *pat, char *err, size_t cap)
{
    char m[200];
    if (strlen(pat) > VALIDATE_REGEX_LEN) {
        snprintf(m, sizeof(m), "validate.pattern: longer than %d bytes",
                 VALIDATE_REGEX_LEN);
        return fail(err, cap, m);
    }
    rx_frame_t st[VALIDATE_REGEX_DEPTH + 1];
    memset(st, 0, sizeof st);
    int d = 0;
    double worst = 0;
    const char *why = NULL;
    for (const char *p = pat; *p && !why && worst <= VALIDATE_REGEX_WEIGHT;) {
        rx_frame_t *f = &st[d];
        double atom = 1, k;
        int atom_rep = 0;
        size_t n = 1;
        if (*p == '(' && d == VALIDATE_REGEX_DEPTH) {
            why = "groups nested too deep";
        } else if (*p == '(') {
            memset(&st[++d], 0, sizeof st[0]);
        } else if (*p == ')' && d > 0) {
            atom = f->sum + f->last + 1;
            atom_rep = f->rep > f->last_rep ? f->rep : f->last_rep;
            rx_push(&st[--d], atom, atom_rep);
        } else if (*p == '|') {
            rx_push(f, 0, 0);
            f->sum += 1;
        } else if ((k = rx_repeat(p, &n)) > 0 && f->last > 0) {
            if (f->last_op)
                why = "two repetition operators in a row";
            else if (f->last_rep >= VALIDATE_REGEX_NEST)
                why = "repetitions nested too deep";
            f->last = f->last * k + 1;
            f->last_rep++;
            f->last_op = 1;
        } else if (*p == '\\' && p[1] >= '1' && p[1] <= '9') {
            why = "a back-reference (not POSIX extended syntax; matching "
                  "with one can take exponential time)";
        } else {
            if (*p == '[') {
                const char *q = rx_bracket(p + 1);
                n = q ? (size_t)(q - p) : strlen(p);
            } else if (*p == '\\' && p[1]) {
                n = 2;
            }
            rx_push(f, atom, 0);
        }
        p += n;
        worst = fmax(worst, rx_total(st, d));
    }
    if (why) {
        snprintf(m, sizeof(m),
                 "validate.pattern: %s (at most %d nested groups, %d "
                 "nested repetitions)",
                 why, VALIDATE_REGEX_DEPTH, VALIDATE_REGEX_NEST);
        return fail(err, cap, m);
    }
    if (worst > VALIDATE_REGEX_WEIGHT) {
        snprintf(m, sizeof(m),
                 "validate.pattern: too large once its repetitions are "
                 "expanded (more than %d parts)",
                 VALIDATE_REGEX_WEIGHT);
        return fail(err, cap, m);
    }
    return 0;
}

static int
parse_regex(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(spec, "pattern");
    if (!cJSON_IsString(p))
        return fail(err, cap, "validate.pattern: a string is required");
    if (rx_check(p->valuestring, err, cap) != 0)
        return BURSAR_EFORMAT;
    int flags = REG_EXTENDED | REG_NOSUB;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "icase")))
        flags |= REG_ICASE;
    int rc = regcomp(&v->re, p->valuestring, flags);
    if (rc != 0) {
        char m[200], e[120];
        regerror(rc, &v->re, e, sizeof(e));
        snprintf(m, sizeof(m), "validate.pattern: %s", e);
        return fail(err, cap, m);
    }
    v->kind = V_REGEX; /* only now: validator_destroy frees the regex */
    return 0;
}

static int
parse_max_length(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(spec, "max");
    if (!cJSON_IsNumber(m) || !(m->valuedouble >= 0) ||
        m->valuedouble > VALIDATE_LENGTH_MAX)
        return fail(err, cap,
                    "validate.max: a number of bytes in [0, 1e15] is "
                    "required");
    v->kind = V_MAX_LENGTH;
    v->max = (size_t)m->valuedouble;
    return 0;
}

static int
parse_command(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(spec, "cmd");
    if (!cJSON_IsString(c) || !*c->valuestring)
        return fail(err, cap, "validate.cmd: a command is required");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "timeout_ms");
    if (t && (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) ||
              t->valuedouble > VALIDATE_TIMEOUT_MAX_MS))
        return fail(err, cap,
                    "validate.timeout_ms: a number of ms in [0, 86400000] "
                    "(one day) is required");
    v->kind = V_COMMAND;
    v->cmd = bursar_strdup(c->valuestring);
    v->timeout_ms = t ? (long)t->valuedouble : 10000;
    return 0;
}

/* [spec, ...]: every part must pass. */
static int
parse_all(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    v->kind = V_ALL;
    size_t n = (size_t)cJSON_GetArraySize(spec);
    v->parts = bursar_calloc(n ? n : 1, sizeof(*v->parts));
    const cJSON *it;
    cJSON_ArrayForEach(it, spec)
    {
        if (validator_parse(it, &v->parts[v->n_parts], err, cap) != 0)
            return BURSAR_EFORMAT;
        v->n_parts++;
    }
    return 0;
}

/* A name or an object with "type" into v. */
static int
parse_typed(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    const char *type = NULL;
    if (cJSON_IsString(spec)) {
        type = spec->valuestring;
    } else if (cJSON_IsObject(spec)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "type");
        if (!cJSON_IsString(t))
            return fail(err, cap, "validate: \"type\" must be a string");
        type = t->valuestring;
    } else {
        return fail(err, cap, "validate: must be a name, object or array");
    }
    if (strcmp(type, "none") == 0)
        return 0;
    if (strcmp(type, "json") == 0 || strcmp(type, "json_keys") == 0)
        return parse_json(v, spec, type, err, cap);
    if (strcmp(type, "regex") == 0)
        return parse_regex(v, spec, err, cap);
    if (strcmp(type, "max_length") == 0)
        return parse_max_length(v, spec, err, cap);
    if (strcmp(type, "command") == 0)
        return parse_command(v, spec, err, cap);
    char m[160];
    snprintf(m, sizeof(m),
             "validate: unknown validator \"%.60s\" (none json json_keys "
             "regex max_length command)",
             type);
    return fail(err, cap, m);
}

int
validator_parse(const cJSON *spec, validator_t **out, char *err, size_t cap)
{
    *out = NULL;
    validator_t *v = bursar_calloc(1, sizeof(*v)); /* V_NONE */
    int rc = 0;
    if (cJSON_IsArray(spec))
        rc = parse_all(v, spec, err, cap);
    else if (spec && !cJSON_IsNull(spec))
        rc = parse_typed(v, spec, err, cap);
    if (rc != 0) {
        validator_destroy(&v);
        return BURSAR_EFORMAT;
    }
    *out = v;
    return 0;
}

void
validator_destroy(validator_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    validator_t *v = *self_p;
    if (v->kind == V_REGEX)
        regfree(&v->re);
    cJSON_Delete(v->keys);
    free(v->cmd);
    for (size_t i = 0; i < v->n_parts; i++)
        validator_destroy(&v->parts[i]);
    free(v->parts);
    free(v);
    *self_p = NULL;
}

static void
why_set(char *why, size_t cap, const char *msg)
{
    if (why && cap)
        snprintf(why, cap, "%s", msg);
}

/* Strips surrounding space and a Markdown code fence. Returns a new
 * string. */
static char *
unfence(const char *text)
{
    const char *s = text;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' ||
                     s[n - 1] == '\t'))
        n--;
    if (n >= 6 && strncmp(s, "```", 3) == 0 &&
        strncmp(s + n - 3, "```", 3) == 0) {
        const char *nl = memchr(s, '\n', n);
        if (nl) {
            size_t off = (size_t)(nl + 1 - s);
            s += off;
            n -= off + 3;
        }
    }
    return bursar_strndup(s, n);
}

static int
type_ok(const cJSON *v, const char *t)
{
    if (strcmp(t, "any") == 0)
        return 1;
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0) /* no fraction; no conversion to an
                                      integer type, which 1e300 overflows */
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    return 0;
}

static int
check_json(const validator_t *v, const char *text, char *why, size_t cap)
{
    char *t = unfence(text);
    cJSON *j = cJSON_Parse(t);
    free(t);
    if (!j) {
        why_set(why, cap, "output is not valid JSON");
        return 0;
    }
    int ok = 1;
    if (v->kind == V_JSON_KEYS) {
        if (!cJSON_IsObject(j)) {
            why_set(why, cap, "output is JSON but not an object");
            ok = 0;
        } else {
            const cJSON *k;
            cJSON_ArrayForEach(k, v->keys)
            {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, k->string);
                if (!f || !type_ok(f, k->valuestring)) {
                    if (why && cap)
                        snprintf(why, cap, "key \"%.60s\" %s (want %s)",
                                 k->string,
                                 f ? "has the wrong type" : "missing",
                                 k->valuestring);
                    ok = 0;
                    break;
                }
            }
        }
    }
    cJSON_Delete(j);
    return ok;
}

/* The command reads model output, which a prompt can steer: it gets a
 * small environment (no API keys), built before fork, since the child of
 * a threaded process may only make async-signal-safe calls. envp holds
 * CMD_ENV + 1 entries; returns how many were set (free each). */
#define CMD_ENV 5
static size_t
cmd_env(char *envp[CMD_ENV + 1])
{
    static const char *const keep[CMD_ENV] = {"PATH", "HOME", "LANG", "LC_ALL",
                                              "TMPDIR"};
    size_t ne = 0;
    for (size_t i = 0; i < CMD_ENV; i++) {
        const char *val = getenv(keep[i]);
        if (val)
            envp[ne++] = bursar_sprintf("%s=%s", keep[i], val);
    }
    envp[ne] = NULL;
    return ne;
}

/* Starts /bin/sh -c cmd with stdin from p[0], stdout and stderr to
 * /dev/null. Returns the pid, or -1. */
static pid_t
cmd_spawn(const validator_t *v, int p[2])
{
    char *envp[CMD_ENV + 1];
    size_t ne = cmd_env(envp);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[0], 0);
        close(p[0]);
        close(p[1]);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
            close(dn);
        }
        signal(SIGPIPE, SIG_DFL);
        execle("/bin/sh", "sh", "-c", v->cmd, (char *)NULL, envp);
        _exit(127);
    }
    for (size_t i = 0; i < ne; i++)
        free(envp[i]);
    return pid;
}

/* Writes text to the non-blocking fd until the deadline. */
static void
cmd_feed(int fd, const char *text, double deadline)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        double left = deadline - autil_now_mono();
        if (left <= 0)
            break;
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0)
            break; /* EPIPE: the command stopped reading; its status rules */
        off += (size_t)w;
    }
}

/* Waits for pid until the deadline (then kills it). Returns 1 when it
 * exited in time, with its *status. */
static int
cmd_wait(pid_t pid, double deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return 0;
        if (autil_now_mono() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return 0;
        }
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
    }
}

static int
check_command(const validator_t *v, const char *text, char *why, size_t cap)
{
    int p[2];
    if (pipe(p) != 0) {
        why_set(why, cap, "command: pipe failed");
        return 0;
    }
    struct sigaction ign, old;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    pid_t pid = cmd_spawn(v, p);
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        sigaction(SIGPIPE, &old, NULL);
        why_set(why, cap, "command: fork failed");
        return 0;
    }
    close(p[0]);
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
    double deadline = autil_now_mono() + v->timeout_ms / 1000.0;
    cmd_feed(p[1], text, deadline);
    close(p[1]);
    int status = 0, done = cmd_wait(pid, deadline, &status);
    sigaction(SIGPIPE, &old, NULL);
    if (!done) {
        why_set(why, cap, "command timed out");
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (why && cap) {
        if (WIFEXITED(status))
            snprintf(why, cap, "command exited with status %d",
                     WEXITSTATUS(status));
        else
            snprintf(why, cap, "command killed by a signal");
    }
    return 0;
}

int
validator_check(const validator_t *self, const char *text, char *why,
                size_t cap)
{
    if (why && cap)
        why[0] = '\0';
    if (!text)
        text = "";
    switch (self->kind) {
    case V_NONE:
        return 1;
    case V_JSON:
    case V_JSON_KEYS:
        return check_json(self, text, why, cap);
    case V_REGEX:
        if (regexec(&self->re, text, 0, NULL, 0) == 0)
            return 1;
        why_set(why, cap, "output does not match the pattern");
        return 0;
    case V_MAX_LENGTH:
        if (strlen(text) <= self->max)
            return 1;
        if (why && cap)
            snprintf(why, cap, "output is %zu bytes, over %zu", strlen(text),
                     self->max);
        return 0;
    case V_COMMAND:
        return check_command(self, text, why, cap);
    case V_ALL:
        for (size_t i = 0; i < self->n_parts; i++)
            if (!validator_check(self->parts[i], text, why, cap))
                return 0;
        return 1;
    }
    return 0;
}
