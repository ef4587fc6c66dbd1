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
#include <stdarg.h>
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
    V_ALL,
    V_JSON_SCHEMA
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
    struct vschema *schema; /* V_JSON_SCHEMA */
};

static const char *const kind_names[] = {"none",  "json",       "json_keys",
                                         "regex", "max_length", "command",
                                         "all",   "json_schema"};

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

/* 0 and the pattern's *weight, or BURSAR_EFORMAT with the reason in err,
 * after where (the pattern's path). */
static int
rx_check(const char *pat, const char *where, double *weight, char *err,
         size_t cap)
{
    char m[320];
    if (strlen(pat) > VALIDATE_REGEX_LEN) {
        snprintf(m, sizeof(m), "%s: longer than %d bytes", where,
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
                 "%s: %s (at most %d nested groups, %d nested repetitions)",
                 where, why, VALIDATE_REGEX_DEPTH, VALIDATE_REGEX_NEST);
        return fail(err, cap, m);
    }
    if (worst > VALIDATE_REGEX_WEIGHT) {
        snprintf(m, sizeof(m),
                 "%s: too large once its repetitions are expanded (more "
                 "than %d parts)",
                 where, VALIDATE_REGEX_WEIGHT);
        return fail(err, cap, m);
    }
    *weight = worst;
    return 0;
}

/* Compiles pat (checked by rx_check first) into *re. 0, or
 * BURSAR_EFORMAT with the reason after where; *re is then not set. */
static int
rx_compile(regex_t *re, const char *pat, int icase, const char *where,
           double *weight, char *err, size_t cap)
{
    if (rx_check(pat, where, weight, err, cap) != 0)
        return BURSAR_EFORMAT;
    int flags = REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0);
    int rc = regcomp(re, pat, flags);
    if (rc != 0) {
        char m[320], e[120];
        regerror(rc, re, e, sizeof(e));
        snprintf(m, sizeof(m), "%s: %s", where, e);
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
    int icase = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "icase"));
    double weight;
    if (rx_compile(&v->re, p->valuestring, icase, "validate.pattern", &weight,
                   err, cap) != 0)
        return BURSAR_EFORMAT;
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

/* ============================================= JSON Schema: compiling
 *
 * A json_schema spec is compiled once into a tree of snode_t (one per
 * schema object or boolean), all owned by the vschema_t, so that a $ref
 * is a plain pointer to its target and recursion costs nothing to build.
 * Every keyword is either checked (sch_keywords, sch_bounds), ignored as
 * an annotation (sch_annotations), or refused naming its path: a keyword
 * the checker does not know would otherwise be a check that silently
 * never happens. */

enum {
    ST_STRING = 1 << 0,
    ST_NUMBER = 1 << 1,
    ST_INTEGER = 1 << 2,
    ST_BOOLEAN = 1 << 3,
    ST_ARRAY = 1 << 4,
    ST_OBJECT = 1 << 5,
    ST_NULL = 1 << 6
};
#define ST_N 7
static const char *const sch_type_names[ST_N] = {
    "string", "number", "integer", "boolean", "array", "object", "null"};

/* Numeric keywords: bounds of numbers, and counts (lengths, items). */
typedef enum {
    SB_MINIMUM,
    SB_MAXIMUM,
    SB_XMINIMUM,
    SB_XMAXIMUM,
    SB_MULTIPLE,
    SB_MINLENGTH,
    SB_MAXLENGTH,
    SB_MINITEMS,
    SB_MAXITEMS,
    SB_N
} sbound_t;
static const char *const sch_bound_names[SB_N] = {
    "minimum",          "maximum",    "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength",        "minItems",   "maxItems"};

/* anyOf, oneOf, allOf */
enum { SS_ANY, SS_ONE, SS_ALL, SS_N };
static const char *const sch_sub_names[SS_N] = {"anyOf", "oneOf", "allOf"};

typedef struct snode snode_t;
typedef struct sprop {
    char *name;
    snode_t *node;
} sprop_t;

struct snode {
    int never;          /* the schema false */
    unsigned types;     /* ST_* accepted; 0: any */
    unsigned bounds;    /* 1 << SB_* present */
    double bound[SB_N]; /* their values */
    int unique;         /* uniqueItems */
    int has_re;         /* pattern, compiled in re */
    regex_t re;
    char *pattern;
    cJSON *enumv; /* an array, or NULL */
    cJSON *constv;
    size_t n_props; /* properties, sorted by name */
    sprop_t *props;
    size_t n_req; /* required */
    char **req;
    snode_t *addl; /* additionalProperties; NULL: any */
    snode_t *items;
    size_t n_prefix; /* prefixItems */
    snode_t **prefix;
    size_t n_sub[SS_N];
    snode_t **sub[SS_N];
    snode_t *neg;    /* not */
    char *ref;       /* $ref as written, and its path for errors */
    char *ref_where; /* resolved into target after compiling */
    const snode_t *target;
};

typedef struct vschema {
    size_t n_nodes, cap_nodes;
    snode_t **nodes; /* all of them, owned */
    snode_t *root;
    size_t n_defs;
    sprop_t *defs;    /* "$defs/NAME" and "definitions/NAME" */
    double re_weight; /* the patterns' weights summed */
} vschema_t;

static void
vschema_destroy(vschema_t **self_p)
{
    vschema_t *sc = *self_p;
    if (!sc)
        return;
    for (size_t i = 0; i < sc->n_nodes; i++) {
        snode_t *n = sc->nodes[i];
        if (n->has_re)
            regfree(&n->re);
        free(n->pattern);
        cJSON_Delete(n->enumv);
        cJSON_Delete(n->constv);
        for (size_t k = 0; k < n->n_props; k++)
            free(n->props[k].name);
        free(n->props);
        for (size_t k = 0; k < n->n_req; k++)
            free(n->req[k]);
        free(n->req);
        free(n->prefix);
        for (int k = 0; k < SS_N; k++)
            free(n->sub[k]);
        free(n->ref);
        free(n->ref_where);
        free(n);
    }
    free(sc->nodes);
    for (size_t i = 0; i < sc->n_defs; i++)
        free(sc->defs[i].name);
    free(sc->defs);
    free(sc);
    *self_p = NULL;
}

/* ---------------------------------------------------------- paths */

#define SCH_PATH 10240 /* bytes of a path: 128 levels of 70 (longer: cut) */

/* Appends a member name to the path of len bytes in p (cap SCH_PATH):
 * ".name" when it is an identifier, else ["name"]. Cut at the end. */
static void
path_key(char *p, size_t *len, const char *name)
{
    int ident = (*name >= 'A' && *name <= 'Z') ||
                (*name >= 'a' && *name <= 'z') || *name == '_' || *name == '$';
    for (const char *q = name; ident && *q; q++)
        ident = (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                (*q >= '0' && *q <= '9') || *q == '_' || *q == '$';
    char buf[80];
    size_t n = 0;
    if (ident) {
        n = (size_t)snprintf(buf, sizeof buf, ".%.64s", name);
    } else {
        buf[n++] = '[';
        buf[n++] = '"';
        for (const char *q = name; *q && n < 70; q++) {
            if (*q == '"' || *q == '\\')
                buf[n++] = '\\';
            buf[n++] = (unsigned char)*q < 0x20 ? '?' : *q;
        }
        buf[n++] = '"';
        buf[n++] = ']';
        buf[n] = '\0';
    }
    n = n < sizeof buf - 1 ? n : sizeof buf - 1;
    size_t room = SCH_PATH - 1 - *len;
    n = n < room ? n : room;
    memcpy(p + *len, buf, n);
    *len += n;
    p[*len] = '\0';
}

static void
path_index(char *p, size_t *len, size_t i)
{
    int n = snprintf(p + *len, SCH_PATH - *len, "[%zu]", i);
    if (n > 0)
        *len += (size_t)n < SCH_PATH - *len ? (size_t)n : SCH_PATH - 1 - *len;
}

static void
path_cut(char *p, size_t *len, size_t to)
{
    *len = to;
    p[to] = '\0';
}

#define SCH_WHERE 120 /* bytes of a path in a message: longer, cut */

/* Starts out with "PATH: ", a long path cut in its middle (where it
 * starts and where it ends matter most). Returns its length. */
static int
path_where(char *out, size_t cap, const char *p, size_t len)
{
    if (len <= SCH_WHERE)
        return snprintf(out, cap, "%s: ", p);
    return snprintf(out, cap, "%.*s...%s: ", SCH_WHERE / 4, p,
                    p + len - (SCH_WHERE - SCH_WHERE / 4));
}

/* ------------------------------------------------------ compiling */

typedef struct scomp {
    vschema_t *sc;
    char path[SCH_PATH];
    size_t plen;
    char *err;
    size_t cap;
} scomp_t;

/* BURSAR_EFORMAT with "path: msg" in the error. */
static int scomp_fail(scomp_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
scomp_fail(scomp_t *c, const char *fmt, ...)
{
    if (c->err && c->cap) {
        int n = path_where(c->err, c->cap, c->path, strlen(c->path));
        if (n >= 0 && (size_t)n < c->cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->cap - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return BURSAR_EFORMAT;
}

static snode_t *sch_compile(scomp_t *c, const cJSON *j, int depth);

/* Compiles j, the schema at path + ".name" or "[i]" (name NULL). */
static snode_t *
sch_child(scomp_t *c, const cJSON *j, const char *name, size_t i, int depth)
{
    size_t at = c->plen;
    if (name)
        path_key(c->path, &c->plen, name);
    else
        path_index(c->path, &c->plen, i);
    snode_t *n = sch_compile(c, j, depth);
    if (n)
        path_cut(c->path, &c->plen, at);
    return n; /* on error the path stays, naming the place */
}

/* A non-empty array of schemas into *out, *n. */
static int
sch_list(scomp_t *c, const cJSON *j, snode_t ***out, size_t *n, int depth)
{
    int len = cJSON_GetArraySize(j);
    if (!cJSON_IsArray(j) || len == 0)
        return scomp_fail(c, "must be a non-empty array of schemas");
    *out = bursar_calloc((size_t)len, sizeof(**out));
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        (*out)[*n] = sch_child(c, it, NULL, *n, depth + 1);
        if (!(*out)[*n])
            return BURSAR_EFORMAT;
        (*n)++;
    }
    return 0;
}

static int
sprop_cmp(const void *a, const void *b)
{
    return strcmp(((const sprop_t *)a)->name, ((const sprop_t *)b)->name);
}

/* The ST_* bit of a type name, or 0. */
static unsigned
sch_type_bit(const cJSON *j)
{
    for (int k = 0; cJSON_IsString(j) && k < ST_N; k++)
        if (strcmp(j->valuestring, sch_type_names[k]) == 0)
            return 1u << k;
    return 0;
}

static int
kw_type(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    n->types = sch_type_bit(j);
    const cJSON *it;
    cJSON_ArrayForEach(it, (cJSON_IsArray(j) ? j : NULL))
    {
        unsigned t = sch_type_bit(it);
        n->types |= t;
        if (!t)
            break;
    }
    if (!n->types || (cJSON_IsArray(j) && it))
        return scomp_fail(c, "must be a type name or a non-empty array of "
                             "them (string number integer boolean array "
                             "object null)");
    return 0;
}

static int
kw_properties(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    if (!cJSON_IsObject(j))
        return scomp_fail(c, "must be an object of schemas");
    size_t len = (size_t)cJSON_GetArraySize(j);
    n->props = bursar_calloc(len ? len : 1, sizeof(*n->props));
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        snode_t *p = sch_child(c, it, it->string, 0, depth + 1);
        if (!p)
            return BURSAR_EFORMAT;
        n->props[n->n_props].name = bursar_strdup(it->string);
        n->props[n->n_props++].node = p;
    }
    qsort(n->props, n->n_props, sizeof(*n->props), sprop_cmp);
    for (size_t i = 1; i < n->n_props; i++)
        if (strcmp(n->props[i - 1].name, n->props[i].name) == 0)
            return scomp_fail(c, "property \"%.64s\" is given twice",
                              n->props[i].name);
    return 0;
}

static int
kw_required(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    if (!cJSON_IsArray(j))
        return scomp_fail(c, "must be an array of property names");
    size_t len = (size_t)cJSON_GetArraySize(j);
    n->req = bursar_calloc(len ? len : 1, sizeof(*n->req));
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (!cJSON_IsString(it))
            return scomp_fail(c, "must be an array of property names");
        n->req[n->n_req++] = bursar_strdup(it->valuestring);
    }
    return 0;
}

static int
kw_additional(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    if (cJSON_IsTrue(j))
        return 0; /* the default */
    n->addl = sch_compile(c, j, depth + 1);
    return n->addl ? 0 : BURSAR_EFORMAT;
}

static int
kw_items(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    if (cJSON_IsArray(j))
        return scomp_fail(c, "must be a schema (the array form of draft 7 "
                             "is not supported: use prefixItems)");
    n->items = sch_compile(c, j, depth + 1);
    return n->items ? 0 : BURSAR_EFORMAT;
}

static int
kw_prefix(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    return sch_list(c, j, &n->prefix, &n->n_prefix, depth);
}

static int
kw_sub(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    int k = 0;
    while (strcmp(j->string, sch_sub_names[k]) != 0)
        k++;
    return sch_list(c, j, &n->sub[k], &n->n_sub[k], depth);
}

static int
kw_not(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    n->neg = sch_compile(c, j, depth + 1);
    return n->neg ? 0 : BURSAR_EFORMAT;
}

static int
kw_unique(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    if (!cJSON_IsBool(j))
        return scomp_fail(c, "must be true or false");
    n->unique = cJSON_IsTrue(j);
    return 0;
}

static int
kw_enum(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) == 0)
        return scomp_fail(c, "must be a non-empty array");
    n->enumv = cJSON_Duplicate(j, 1);
    return n->enumv ? 0 : scomp_fail(c, "cannot be copied");
}

static int
kw_const(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    n->constv = cJSON_Duplicate(j, 1);
    return n->constv ? 0 : scomp_fail(c, "cannot be copied");
}

/* A schema's pattern is ECMA-262 to its author and POSIX extended to
 * regcomp. Where the two read an escape differently, glibc silently
 * matches something else (\d is the letter d): escapes of letters and
 * digits are refused, but for \w \W \s \S \b \B, which glibc reads as
 * ECMA-262 does. */
static int
kw_pattern(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    if (!cJSON_IsString(j))
        return scomp_fail(c, "must be a string");
    for (const char *p = j->valuestring; *p; p++) {
        if (*p != '\\' || !p[1])
            continue;
        char e = *++p;
        if (((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
             (e >= '0' && e <= '9')) &&
            !strchr("wWsSbB", e))
            return scomp_fail(c, "\"\\%c\" is not POSIX extended syntax%s", e,
                              e == 'd'   ? " (write [0-9])"
                              : e == 'D' ? " (write [^0-9])"
                                         : "");
    }
    double w = 0;
    char where[SCH_WHERE + 8];
    int wn = path_where(where, sizeof where, c->path, strlen(c->path));
    where[wn > 2 ? wn - 2 : 0] = '\0'; /* without its ": " */
    if (rx_compile(&n->re, j->valuestring, 0, where, &w, c->err, c->cap) != 0)
        return BURSAR_EFORMAT;
    n->has_re = 1;
    n->pattern = bursar_strdup(j->valuestring);
    c->sc->re_weight += w;
    if (c->sc->re_weight > VALIDATE_SCHEMA_PATTERN_WEIGHT)
        return scomp_fail(c,
                          "the schema's patterns are too large together "
                          "(more than %d parts once expanded)",
                          VALIDATE_SCHEMA_PATTERN_WEIGHT);
    return 0;
}

static int
kw_ref(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)depth;
    if (!cJSON_IsString(j))
        return scomp_fail(c, "must be a string");
    n->ref = bursar_strdup(j->valuestring);
    n->ref_where = bursar_strdup(c->path);
    return 0;
}

/* $defs and definitions, at the root only: a $ref names them from the
 * root ("#/$defs/NAME"), and nothing else could reach nested ones. */
static int
kw_defs(scomp_t *c, snode_t *n, const cJSON *j, int depth)
{
    (void)n;
    if (depth != 0)
        return scomp_fail(c, "only supported at the root of the schema");
    if (!cJSON_IsObject(j))
        return scomp_fail(c, "must be an object of schemas");
    vschema_t *sc = c->sc;
    size_t len = (size_t)cJSON_GetArraySize(j);
    sc->defs =
        bursar_realloc(sc->defs, (sc->n_defs + len + 1) * sizeof(*sc->defs));
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        snode_t *d = sch_child(c, it, it->string, 0, depth + 1);
        if (!d)
            return BURSAR_EFORMAT;
        /* "$defs/NAME" or "definitions/NAME", as a $ref names it */
        sc->defs[sc->n_defs].name =
            bursar_sprintf("%s/%s", j->string, it->string);
        sc->defs[sc->n_defs++].node = d;
    }
    return 0;
}

typedef int (*skw_fn)(scomp_t *, snode_t *, const cJSON *, int);
static const struct {
    const char *name;
    skw_fn fn;
} sch_keywords[] = {
    {"type", kw_type},          {"properties", kw_properties},
    {"required", kw_required},  {"additionalProperties", kw_additional},
    {"items", kw_items},        {"prefixItems", kw_prefix},
    {"uniqueItems", kw_unique}, {"enum", kw_enum},
    {"const", kw_const},        {"pattern", kw_pattern},
    {"anyOf", kw_sub},          {"oneOf", kw_sub},
    {"allOf", kw_sub},          {"not", kw_not},
    {"$ref", kw_ref},           {"$defs", kw_defs},
    {"definitions", kw_defs},
};

/* Ignored: they describe, they do not constrain (format included, as
 * JSON Schema 2020-12 has it by default). */
static const char *const sch_annotations[] = {
    "title",           "description",     "default",
    "examples",        "$schema",         "$id",
    "$comment",        "format",          "deprecated",
    "readOnly",        "writeOnly",       "strict",
    "contentEncoding", "contentMediaType"};

/* A numeric keyword (sch_bounds): a finite number; multipleOf above 0;
 * lengths and counts whole and in [0, VALIDATE_LENGTH_MAX]. */
static int
kw_bound(scomp_t *c, snode_t *n, int b, const cJSON *j)
{
    double x = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (b >= SB_MINLENGTH) {
        if (!(x >= 0 && x <= VALIDATE_LENGTH_MAX && x == floor(x)))
            return scomp_fail(c, "must be a whole number in [0, 1e15]");
    } else if (b == SB_MULTIPLE) {
        if (!(x > 0 && isfinite(x)))
            return scomp_fail(c, "must be a number above 0");
    } else if (!isfinite(x)) {
        return scomp_fail(c, "must be a number%s",
                          cJSON_IsBool(j) && b >= SB_XMINIMUM
                              ? " (the boolean form of draft 4 is not "
                                "supported)"
                              : "");
    }
    n->bounds |= 1u << b;
    n->bound[b] = x;
    return 0;
}

#define SCH_NKW (sizeof sch_keywords / sizeof *sch_keywords)

/* One keyword of a schema object; the path names the schema. *seen: the
 * keywords met before in the object (cJSON keeps a repeated key: the
 * second would go unchecked, or replace the first). */
static int
sch_keyword(scomp_t *c, snode_t *n, const cJSON *k, int depth,
            unsigned long *seen)
{
    for (size_t i = 0; i < sizeof sch_annotations / sizeof *sch_annotations;
         i++)
        if (strcmp(k->string, sch_annotations[i]) == 0)
            return 0;
    size_t at = c->plen, kw = 0;
    while (kw < SCH_NKW && strcmp(k->string, sch_keywords[kw].name) != 0)
        kw++;
    for (int b = 0; kw == SCH_NKW && b < SB_N; b++)
        if (strcmp(k->string, sch_bound_names[b]) == 0)
            kw = SCH_NKW + 1 + (size_t)b;
    if (kw == SCH_NKW)
        return scomp_fail(c, "keyword \"%.64s\" is not supported", k->string);
    if (*seen & (1ul << kw))
        return scomp_fail(c, "keyword \"%.64s\" is given twice", k->string);
    *seen |= 1ul << kw;
    path_key(c->path, &c->plen, k->string);
    int rc = kw < SCH_NKW ? sch_keywords[kw].fn(c, n, k, depth)
                          : kw_bound(c, n, (int)(kw - SCH_NKW - 1), k);
    if (rc == 0)
        path_cut(c->path, &c->plen, at);
    return rc;
}

/* j (an object, true or false) into a new node of c->sc, or NULL with the
 * error set. depth: the schemas j is nested in. */
static snode_t *
sch_compile(scomp_t *c, const cJSON *j, int depth)
{
    if (depth > VALIDATE_SCHEMA_DEPTH) {
        scomp_fail(c, "schemas nested deeper than %d", VALIDATE_SCHEMA_DEPTH);
        return NULL;
    }
    vschema_t *sc = c->sc;
    if (sc->n_nodes == VALIDATE_SCHEMA_NODES) {
        scomp_fail(c, "more than %d schemas", VALIDATE_SCHEMA_NODES);
        return NULL;
    }
    if (!cJSON_IsObject(j) && !cJSON_IsBool(j)) {
        scomp_fail(c, "must be a schema (an object, true or false)");
        return NULL;
    }
    if (sc->n_nodes == sc->cap_nodes) {
        sc->cap_nodes = sc->cap_nodes ? 2 * sc->cap_nodes : 16;
        sc->nodes =
            bursar_realloc(sc->nodes, sc->cap_nodes * sizeof(*sc->nodes));
    }
    snode_t *n = bursar_calloc(1, sizeof(*n));
    sc->nodes[sc->n_nodes++] = n; /* owned from now on, error or not */
    n->never = cJSON_IsFalse(j);
    unsigned long seen = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, (cJSON_IsObject(j) ? j : NULL))
    {
        if (sch_keyword(c, n, k, depth, &seen) != 0)
            return NULL;
    }
    return n;
}

/* The node a $ref names: "#", "#/$defs/NAME", "#/definitions/NAME" (NAME
 * with JSON Pointer's ~0 and ~1). */
static int
sch_resolve(scomp_t *c, snode_t *n)
{
    const char *r = n->ref;
    snprintf(c->path, sizeof c->path, "%s", n->ref_where);
    if (strcmp(r, "#") == 0) {
        n->target = c->sc->root;
        return 0;
    }
    const char *name = NULL;
    if (strncmp(r, "#/$defs/", 8) == 0)
        name = r + 8;
    else if (strncmp(r, "#/definitions/", 14) == 0)
        name = r + 14;
    if (!name || !*name || strchr(name, '/'))
        return scomp_fail(c,
                          "\"%.80s\" is not supported (only \"#\", "
                          "\"#/$defs/NAME\" and \"#/definitions/NAME\")",
                          r);
    char *want = bursar_strndup(r + 2, strlen(r + 2)); /* "$defs/NAME" */
    char *w = want;
    for (const char *p = want; *p; p++) {
        if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
            *w++ = *++p == '0' ? '~' : '/';
        else
            *w++ = *p;
    }
    *w = '\0';
    for (size_t i = 0; i < c->sc->n_defs && !n->target; i++)
        if (strcmp(c->sc->defs[i].name, want) == 0)
            n->target = c->sc->defs[i].node;
    free(want);
    if (!n->target)
        return scomp_fail(c, "\"%.80s\" names no schema of the root's %s", r,
                          name == r + 8 ? "$defs" : "definitions");
    return 0;
}

/* Compiles the schema j, whose path is where, into *out. */
static int
vschema_compile(const cJSON *j, const char *where, vschema_t **out, char *err,
                size_t cap)
{
    scomp_t c = {
        .sc = bursar_calloc(1, sizeof(vschema_t)), .err = err, .cap = cap};
    *out = NULL;
    snprintf(c.path, sizeof c.path, "%s", where);
    c.plen = strlen(c.path);
    if (!cJSON_IsObject(j)) {
        vschema_destroy(&c.sc);
        return scomp_fail(&c, "must be an object");
    }
    c.sc->root = sch_compile(&c, j, 0);
    for (size_t i = 0; c.sc->root && i < c.sc->n_nodes; i++)
        if (c.sc->nodes[i]->ref && sch_resolve(&c, c.sc->nodes[i]) != 0)
            c.sc->root = NULL;
    if (!c.sc->root) {
        vschema_destroy(&c.sc);
        return BURSAR_EFORMAT;
    }
    *out = c.sc;
    return 0;
}

/* {"type":"json_schema","schema":{...}} */
static int
parse_json_schema(validator_t *v, const cJSON *spec, char *err, size_t cap)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, (cJSON_IsObject(spec) ? spec : NULL))
    {
        if (strcmp(k->string, "type") != 0 &&
            strcmp(k->string, "schema") != 0) {
            char m[160];
            snprintf(m, sizeof(m),
                     "validate.%.60s: unknown key (json_schema takes "
                     "\"schema\")",
                     k->string);
            return fail(err, cap, m);
        }
    }
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(spec, "schema");
    if (vschema_compile(j, "validate.schema", &v->schema, err, cap) != 0)
        return BURSAR_EFORMAT;
    v->kind = V_JSON_SCHEMA;
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
    if (strcmp(type, "json_schema") == 0)
        return parse_json_schema(v, spec, err, cap);
    char m[160];
    snprintf(m, sizeof(m),
             "validate: unknown validator \"%.60s\" (none json json_keys "
             "json_schema regex max_length command)",
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

/* ------------------------------------------------- response_format */

/* An unknown key of obj at path, other than those of keys (NULL-ended):
 * BURSAR_EFORMAT naming it, or 0. */
static int
rf_keys(const cJSON *obj, const char *path, const char *const *keys, char *err,
        size_t cap)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, obj)
    {
        size_t i = 0;
        while (keys[i] && strcmp(k->string, keys[i]) != 0)
            i++;
        if (!keys[i]) {
            char m[200];
            snprintf(m, sizeof(m), "%s.%.60s: unknown key", path, k->string);
            return fail(err, cap, m);
        }
    }
    return 0;
}

/* response_format.json_schema: {"name":..,"schema":{..},"strict":bool,
 * "description":..}. */
static int
rf_json_schema(validator_t *v, const cJSON *js, char *err, size_t cap)
{
    static const char *const keys[] = {"name", "description", "schema",
                                       "strict", NULL};
    const char *at = "response_format.json_schema";
    if (!cJSON_IsObject(js))
        return fail(err, cap, "response_format.json_schema: must be an object");
    if (rf_keys(js, at, keys, err, cap) != 0)
        return BURSAR_EFORMAT;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    if (!cJSON_IsString(name) || !*name->valuestring ||
        strlen(name->valuestring) > 64)
        return fail(err, cap,
                    "response_format.json_schema.name: must be a string of "
                    "1 to 64 bytes");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(js, "description");
    if (d && !cJSON_IsString(d))
        return fail(err, cap,
                    "response_format.json_schema.description: must be a "
                    "string");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(js, "strict");
    if (st && !cJSON_IsBool(st) && !cJSON_IsNull(st))
        return fail(err, cap,
                    "response_format.json_schema.strict: must be true or "
                    "false");
    if (vschema_compile(cJSON_GetObjectItemCaseSensitive(js, "schema"),
                        "response_format.json_schema.schema", &v->schema, err,
                        cap) != 0)
        return BURSAR_EFORMAT;
    v->kind = V_JSON_SCHEMA;
    return 0;
}

int
validator_from_response_format(const cJSON *rf, validator_t **out, char *err,
                               size_t cap)
{
    *out = NULL;
    if (!rf || cJSON_IsNull(rf))
        return 0;
    if (!cJSON_IsObject(rf))
        return fail(err, cap, "response_format: must be an object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
    static const char *const types[] = {"text", "json_object", "json_schema"};
    int k = 0;
    while (k < 3 &&
           !(cJSON_IsString(t) && strcmp(t->valuestring, types[k]) == 0))
        k++;
    if (k == 3)
        return fail(err, cap,
                    "response_format.type: must be one of text, "
                    "json_object, json_schema");
    static const char *const plain[] = {"type", NULL};
    static const char *const with_schema[] = {"type", "json_schema", NULL};
    if (rf_keys(rf, "response_format", k == 2 ? with_schema : plain, err,
                cap) != 0)
        return BURSAR_EFORMAT;
    if (k == 0)
        return 0; /* text: nothing to check */
    validator_t *v = bursar_calloc(1, sizeof(*v));
    v->kind = V_JSON;
    if (k == 2 &&
        rf_json_schema(v, cJSON_GetObjectItemCaseSensitive(rf, "json_schema"),
                       err, cap) != 0) {
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
    vschema_destroy(&v->schema);
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

/* ============================================== JSON Schema: checking
 *
 * sch_check returns 1 (passes), 0 (fails) or -1 (a limit was hit: the
 * check stops, and a "not" does not turn that into a pass). Failures are
 * written as "PATH: reason" unless quiet: anyOf, oneOf and not try their
 * branches quietly, and when none passes anyOf and oneOf run again the one
 * that went deepest into the answer, to say why. */

/* What a failure was, to pick the closest branch of anyOf and oneOf: a
 * value of another type says least, a const or enum missed (the
 * discriminator of a tagged union) little, anything else most. */
enum { SF_TYPE, SF_ENUM, SF_OTHER };

typedef struct sctx {
    char path[SCH_PATH]; /* of the value being checked: $.a[2].b */
    size_t plen;
    int quiet;      /* > 0: no messages */
    int depth;      /* of the value in the answer */
    int nest;       /* sch_check calls on the stack */
    int refs;       /* $refs followed on the stack */
    int fail_depth; /* the depth of the last failure */
    int fail_kind;  /* and its kind: SF_* */
    unsigned long steps;
    char why[512];
} sctx_t;

static int
sctx_where(sctx_t *c)
{
    return path_where(c->why, sizeof c->why, c->path, c->plen);
}

/* Failures are cold, and their buffers stay off the recursion's frames
 * (measured: a check at VALIDATE_SCHEMA_NEST fits in 192 KiB of stack
 * with gcc or clang at -O0 to -O2, 512 KiB under AddressSanitizer). */
#define SCH_COLD __attribute__((noinline, cold))

static int sctx_fail(sctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
sctx_fail(sctx_t *c, const char *fmt, ...)
{
    c->fail_depth = c->depth;
    c->fail_kind = SF_OTHER;
    if (c->quiet)
        return 0;
    int n = sctx_where(c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why + n, sizeof c->why - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

/* A limit: the message is kept whatever the mode, the check ends. */
SCH_COLD static int
sctx_abort(sctx_t *c, const char *fmt, long limit)
{
    int n = sctx_where(c);
    snprintf(c->why + n, sizeof c->why - (size_t)n, fmt, limit);
    return -1;
}
#define SCH_STEPS_MSG                                                          \
    "the check takes more than %ld steps (the schema is too costly for "       \
    "this answer)"

/* "a string", "an integer", "null" */
static const char *
sch_article(int t)
{
    return t == 2 || t == 4 || t == 5 ? "an " : t == 6 ? "" : "a ";
}

/* The type name of a value, as a failure says it. */
static const char *
sch_kind(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    return "null";
}

static int
sch_type_ok(unsigned types, const cJSON *v)
{
    if ((types & ST_STRING) && cJSON_IsString(v))
        return 1;
    if ((types & ST_NUMBER) && cJSON_IsNumber(v))
        return 1;
    if ((types & ST_INTEGER) && type_ok(v, "integer"))
        return 1;
    if ((types & ST_BOOLEAN) && cJSON_IsBool(v))
        return 1;
    if ((types & ST_ARRAY) && cJSON_IsArray(v))
        return 1;
    if ((types & ST_OBJECT) && cJSON_IsObject(v))
        return 1;
    return (types & ST_NULL) && cJSON_IsNull(v);
}

SCH_COLD static int
sch_type_fail(sctx_t *c, unsigned types, const cJSON *v)
{
    char want[160] = "";
    size_t n = 0;
    for (int t = 0; t < ST_N; t++)
        if (types & (1u << t))
            n += (size_t)snprintf(want + n, sizeof want - n, "%s%s%s",
                                  n ? " or " : "", sch_article(t),
                                  sch_type_names[t]);
    sctx_fail(c, "must be %s, got %s", want, sch_kind(v));
    c->fail_kind = SF_TYPE;
    return 0;
}

/* The values of an enum (first and those after it), or a const, for a
 * message: cut at ~120 bytes. */
SCH_COLD static int
sch_enum_fail(sctx_t *c, const cJSON *first, int is_const)
{
    c->fail_kind = SF_ENUM;
    if (c->quiet) {
        c->fail_depth = c->depth;
        return 0;
    }
    char list[160] = "";
    size_t n = 0;
    for (const cJSON *it = first; it; it = it->next) {
        char *s = cJSON_PrintUnformatted(it);
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                              s ? s : "?");
        free(s);
        if (n > 120) {
            snprintf(list + 117, sizeof list - 117, "...");
            break;
        }
    }
    sctx_fail(c, "must %s %s", is_const ? "be" : "be one of", list);
    c->fail_kind = SF_ENUM;
    return 0;
}

static int
sch_number(sctx_t *c, const snode_t *s, const cJSON *v)
{
    double x = v->valuedouble;
    const double *b = s->bound;
    static const char *const op[] = {">=", "<=", ">", "<"};
    for (int k = SB_MINIMUM; k <= SB_XMAXIMUM; k++) {
        if (!(s->bounds & (1u << k)))
            continue;
        int ok = k == SB_MINIMUM    ? x >= b[k]
                 : k == SB_MAXIMUM  ? x <= b[k]
                 : k == SB_XMINIMUM ? x > b[k]
                                    : x < b[k];
        if (!ok)
            return sctx_fail(c, "must be %s %.15g, got %.15g", op[k], b[k], x);
    }
    if (s->bounds & (1u << SB_MULTIPLE)) {
        /* within a relative 1e-9: 0.07 is a multiple of 0.01 */
        double q = x / b[SB_MULTIPLE];
        if (!isfinite(q) || fabs(q - nearbyint(q)) > 1e-9 * fmax(1, fabs(q)))
            return sctx_fail(c, "must be a multiple of %.15g, got %.15g",
                             b[SB_MULTIPLE], x);
    }
    return 1;
}

static int
sch_string(sctx_t *c, const snode_t *s, const cJSON *v)
{
    const char *str = v->valuestring;
    size_t bytes = strlen(str), cps = 0;
    for (size_t i = 0; i < bytes; i++)
        cps += ((unsigned char)str[i] & 0xC0) != 0x80; /* UTF-8 leads */
    c->steps += bytes / 64;
    const double *b = s->bound;
    if ((s->bounds & (1u << SB_MINLENGTH)) && cps < b[SB_MINLENGTH])
        return sctx_fail(c, "must be at least %.15g characters, got %zu",
                         b[SB_MINLENGTH], cps);
    if ((s->bounds & (1u << SB_MAXLENGTH)) && cps > b[SB_MAXLENGTH])
        return sctx_fail(c, "must be at most %.15g characters, got %zu",
                         b[SB_MAXLENGTH], cps);
    if (s->has_re) {
        c->steps += bytes / 16; /* regexec's time grows with the text */
        if (regexec(&s->re, str, 0, NULL, 0) != 0)
            return sctx_fail(c, "does not match the pattern %.100s",
                             s->pattern);
    }
    return 1;
}

static int sch_check(sctx_t *c, const snode_t *s, const cJSON *v);

/* Checks the member or item v against s, one level down at name or [i]. */
static int
sch_descend(sctx_t *c, const snode_t *s, const cJSON *v, const char *name,
            size_t i)
{
    size_t at = c->plen;
    if (name)
        path_key(c->path, &c->plen, name);
    else
        path_index(c->path, &c->plen, i);
    int r;
    if (c->depth == VALIDATE_JSON_DEPTH) {
        r = sctx_abort(c, "nested deeper than %ld levels", VALIDATE_JSON_DEPTH);
    } else {
        c->depth++;
        r = sch_check(c, s, v);
        c->depth--;
    }
    path_cut(c->path, &c->plen, at); /* a message has the path already */
    return r;
}

static const snode_t *
sch_prop(const snode_t *s, const char *name)
{
    size_t lo = 0, hi = s->n_props;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(name, s->props[mid].name);
        if (d == 0)
            return s->props[mid].node;
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int
sch_object(sctx_t *c, const snode_t *s, const cJSON *v)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        const snode_t *p = sch_prop(s, m->string);
        if (!p && s->addl && s->addl->never) {
            size_t at = c->plen;
            path_key(c->path, &c->plen, m->string);
            sctx_fail(c, "property not allowed (additionalProperties is "
                         "false)");
            path_cut(c->path, &c->plen, at);
            return 0;
        }
        int r =
            p || s->addl ? sch_descend(c, p ? p : s->addl, m, m->string, 0) : 1;
        if (r != 1)
            return r;
    }
    /* after the members: a tagged union's branches fail on the tag */
    for (size_t i = 0; i < s->n_req; i++)
        if (!cJSON_GetObjectItemCaseSensitive(v, s->req[i]))
            return sctx_fail(c, "missing required property \"%.64s\"",
                             s->req[i]);
    return 1;
}

static int
sch_array(sctx_t *c, const snode_t *s, const cJSON *v)
{
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    const double *b = s->bound;
    if ((s->bounds & (1u << SB_MINITEMS)) && n < b[SB_MINITEMS])
        return sctx_fail(c, "must have at least %.15g items, got %zu",
                         b[SB_MINITEMS], n);
    if ((s->bounds & (1u << SB_MAXITEMS)) && n > b[SB_MAXITEMS])
        return sctx_fail(c, "must have at most %.15g items, got %zu",
                         b[SB_MAXITEMS], n);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        const snode_t *p = i < s->n_prefix ? s->prefix[i] : s->items;
        if (p && p->never && i >= s->n_prefix)
            return sctx_fail(c,
                             "must have at most %zu items (items is false), "
                             "got %zu",
                             s->n_prefix, n);
        int r = p ? sch_descend(c, p, it, NULL, i) : 1;
        if (r != 1)
            return r;
        i++;
    }
    if (!s->unique)
        return 1;
    i = 0;
    for (const cJSON *a = v->child; a; a = a->next, i++) {
        size_t j = i + 1;
        for (const cJSON *d = a->next; d; d = d->next, j++) {
            if (++c->steps > VALIDATE_SCHEMA_STEPS)
                return sctx_abort(c, SCH_STEPS_MSG, VALIDATE_SCHEMA_STEPS);
            if (cJSON_Compare(a, d, 1))
                return sctx_fail(c, "items %zu and %zu are equal (uniqueItems)",
                                 i, j);
        }
    }
    return 1;
}

/* Runs s on v quietly: 1, 0 (and c->fail_depth), or -1. */
static int
sch_quiet(sctx_t *c, const snode_t *s, const cJSON *v)
{
    c->quiet++;
    int r = sch_check(c, s, v);
    c->quiet--;
    return r;
}

/* After every branch of anyOf or oneOf failed: runs the branch that went
 * deepest again, aloud, and says why within the combinator's message. */
SCH_COLD static int
sch_none_matched(sctx_t *c, const snode_t *s, int k, size_t best,
                 const cJSON *v)
{
    int r = sch_check(c, s->sub[k][best], v);
    if (r != 0)
        return r < 0 ? r : 0; /* cannot pass now: the same check */
    char *inner = bursar_strdup(c->why);
    size_t pl = strlen(c->path);
    const char *tail = inner;
    if (strncmp(inner, c->path, pl) == 0 && strncmp(inner + pl, ": ", 2) == 0)
        tail = inner + pl + 2; /* the same place: say it once */
    sctx_fail(c, "matches no schema of %s (closest, [%zu]: %s)",
              sch_sub_names[k], best, tail);
    free(inner);
    return 0;
}

/* anyOf (k SS_ANY) or oneOf (SS_ONE). */
static int
sch_some(sctx_t *c, const snode_t *s, int k, const cJSON *v)
{
    size_t best = 0, hit[2] = {0, 0}, hits = 0;
    int best_score = -1, best_depth = 0, best_kind = 0;
    for (size_t i = 0; i < s->n_sub[k]; i++) {
        int r = sch_quiet(c, s->sub[k][i], v);
        if (r < 0)
            return r;
        if (r == 1)
            hit[hits++] = i;
        if (r == 1 && (k == SS_ANY || hits == 2))
            break;
        /* the closest: by kind (a type missed here least), then depth */
        int kind = c->fail_kind == SF_TYPE && c->fail_depth > c->depth
                       ? SF_OTHER
                       : c->fail_kind;
        int score = kind * (VALIDATE_JSON_DEPTH + 1) + c->fail_depth;
        if (r == 0 && score > best_score) {
            best_score = score;
            best_depth = c->fail_depth;
            best_kind = c->fail_kind;
            best = i;
        }
    }
    if (hits == 1 || (hits && k == SS_ANY))
        return 1;
    if (hits == 0 && c->quiet) {
        c->fail_depth = best_depth;
        c->fail_kind = best_kind;
        return 0;
    }
    if (hits == 0)
        return sch_none_matched(c, s, k, best, v);
    return sctx_fail(c,
                     "matches schemas [%zu] and [%zu] of oneOf (must match "
                     "exactly one)",
                     hit[0], hit[1]);
}

static int
sch_combine(sctx_t *c, const snode_t *s, const cJSON *v)
{
    for (size_t i = 0; i < s->n_sub[SS_ALL]; i++) {
        int r = sch_check(c, s->sub[SS_ALL][i], v);
        if (r != 1)
            return r;
    }
    for (int k = SS_ANY; k <= SS_ONE; k++) {
        int r = s->n_sub[k] ? sch_some(c, s, k, v) : 1;
        if (r != 1)
            return r;
    }
    if (s->neg) {
        int r = sch_quiet(c, s->neg, v);
        if (r < 0)
            return r;
        if (r == 1)
            return sctx_fail(c, "must not match the schema of \"not\"");
    }
    return 1;
}

/* The keywords of s that apply to v's type. */
static int
sch_by_type(sctx_t *c, const snode_t *s, const cJSON *v)
{
    if (s->types && !sch_type_ok(s->types, v))
        return sch_type_fail(c, s->types, v);
    if (s->constv && !cJSON_Compare(s->constv, v, 1))
        return sch_enum_fail(c, s->constv, 1);
    if (s->enumv) {
        const cJSON *it;
        int found = 0;
        cJSON_ArrayForEach(it, s->enumv)
        {
            c->steps++;
            if ((found = cJSON_Compare(it, v, 1)) != 0)
                break;
        }
        if (!found)
            return sch_enum_fail(c, s->enumv->child, 0);
    }
    if (cJSON_IsNumber(v))
        return sch_number(c, s, v);
    if (cJSON_IsString(v))
        return sch_string(c, s, v);
    if (cJSON_IsObject(v))
        return sch_object(c, s, v);
    if (cJSON_IsArray(v))
        return sch_array(c, s, v);
    return 1;
}

static int
sch_check(sctx_t *c, const snode_t *s, const cJSON *v)
{
    if (++c->steps > VALIDATE_SCHEMA_STEPS)
        return sctx_abort(c, SCH_STEPS_MSG, VALIDATE_SCHEMA_STEPS);
    if (c->nest == VALIDATE_SCHEMA_NEST)
        return sctx_abort(c,
                          "the check enters schemas nested deeper than %ld "
                          "(through $refs and combinators)",
                          VALIDATE_SCHEMA_NEST);
    if (s->never)
        return sctx_fail(c, "not allowed (the schema is false)");
    c->nest++;
    int r = 1;
    if (s->target) {
        if (c->refs == VALIDATE_SCHEMA_REFS) {
            r = sctx_abort(c,
                           "more than %ld $refs followed in a row "
                           "(recursion limit)",
                           VALIDATE_SCHEMA_REFS);
        } else {
            c->refs++;
            r = sch_check(c, s->target, v);
            c->refs--;
        }
    }
    if (r == 1)
        r = sch_by_type(c, s, v);
    if (r == 1)
        r = sch_combine(c, s, v);
    c->nest--;
    return r;
}

static int
check_schema(const validator_t *v, const char *text, char *why, size_t cap)
{
    char *t = unfence(text);
    cJSON *j = cJSON_Parse(t);
    free(t);
    if (!j) {
        why_set(why, cap, "output is not valid JSON");
        return 0;
    }
    sctx_t *c = bursar_calloc(1, sizeof(*c));
    snprintf(c->path, sizeof c->path, "$");
    c->plen = 1;
    int r = sch_check(c, v->schema->root, j);
    if (r != 1)
        why_set(why, cap, c->why);
    free(c);
    cJSON_Delete(j);
    return r == 1;
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
    case V_JSON_SCHEMA:
        return check_schema(self, text, why, cap);
    case V_ALL:
        for (size_t i = 0; i < self->n_parts; i++)
            if (!validator_check(self->parts[i], text, why, cap))
                return 0;
        return 1;
    }
    return 0;
}
