/*
 * olog.c - readers of logged bandit feedback (olog.h).
 *
 * Names are looked up by a linear scan, cached on the last hit: logs have
 * a handful of buckets and at most a few dozen actions, and consecutive
 * rows mostly repeat them, so a hash table would not pay for itself.
 */
#define _POSIX_C_SOURCE 200809L

#include "sim/olog.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sim/csv.h"
#include "policies/base.h"

olog_t *
olog_new(void)
{
    olog_t *lg = bursar_calloc(1, sizeof(olog_t));
    lg->fast_bucket = -1;
    return lg;
}

void
olog_destroy(olog_t **lg)
{
    if (!lg || !*lg)
        return;
    olog_t *l = *lg;
    for (size_t i = 0; i < l->n_buckets; i++)
        free(l->bucket[i]);
    for (size_t i = 0; i < l->n_actions; i++)
        free(l->action[i]);
    free(l->bucket);
    free(l->action);
    free(l->row_bucket);
    free(l->row_action);
    free(l->reward);
    free(l->cost);
    free(l->prop);
    free(l->time);
    free(l->line);
    free(l->row_step);
    free(l->row_seq);
    free(l->row_parent);
    free(l->row_off);
    free(l->row_n_off);
    free(l->off_ids);
    free(l);
    *lg = NULL;
}

static int
olog_find(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The id of the name s[0..len) (not NUL-terminated), or -1. */
static int
olog_find_n(char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], s, len) == 0 && names[i][len] == '\0')
            return (int)i;
    return -1;
}

static int
olog_intern(char ***names, size_t *n, const char *name)
{
    int i = olog_find(*names, *n, name);
    if (i >= 0)
        return i;
    *names = bursar_realloc(*names, (*n + 1) * sizeof(char *));
    (*names)[*n] = bursar_strdup(name);
    return (int)(*n)++;
}

int
olog_bucket_id(olog_t *lg, const char *name)
{
    return olog_intern(&lg->bucket, &lg->n_buckets, name);
}

int
olog_action_id(olog_t *lg, const char *name)
{
    return olog_intern(&lg->action, &lg->n_actions, name);
}

int
olog_find_bucket(const olog_t *lg, const char *name)
{
    return olog_find(lg->bucket, lg->n_buckets, name);
}

int
olog_find_action(const olog_t *lg, const char *name)
{
    return olog_find(lg->action, lg->n_actions, name);
}

size_t
olog_add(olog_t *lg, int bucket, int action, double reward, double cost,
         double prop, double time, long line)
{
    if (lg->n_rows == lg->cap) {
        size_t c = lg->cap ? 2 * lg->cap : 1024;
        lg->row_bucket = bursar_realloc(lg->row_bucket, c * sizeof(int));
        lg->row_action = bursar_realloc(lg->row_action, c * sizeof(int));
        lg->reward = bursar_realloc(lg->reward, c * sizeof(double));
        lg->cost = bursar_realloc(lg->cost, c * sizeof(double));
        lg->prop = bursar_realloc(lg->prop, c * sizeof(double));
        lg->time = bursar_realloc(lg->time, c * sizeof(double));
        lg->line = bursar_realloc(lg->line, c * sizeof(long));
        lg->row_step = bursar_realloc(lg->row_step, c * sizeof(int));
        lg->row_seq = bursar_realloc(lg->row_seq, c * sizeof(uint64_t));
        lg->row_parent = bursar_realloc(lg->row_parent, c * sizeof(uint64_t));
        lg->row_off = bursar_realloc(lg->row_off, c * sizeof(size_t));
        lg->row_n_off = bursar_realloc(lg->row_n_off, c * sizeof(int));
        lg->cap = c;
    }
    size_t i = lg->n_rows++;
    lg->row_step[i] = -1;
    lg->row_seq[i] = 0;
    lg->row_parent[i] = 0;
    lg->row_off[i] = 0;
    lg->row_n_off[i] = -1;
    lg->row_bucket[i] = bucket;
    lg->row_action[i] = action;
    lg->reward[i] = reward;
    lg->cost[i] = cost;
    lg->prop[i] = prop;
    lg->time[i] = time;
    lg->line[i] = line;
    return i;
}

void
olog_set_offered(olog_t *lg, size_t row, const int *ids, size_t n)
{
    if (lg->n_off_ids + n + 1 > lg->cap_off_ids) {
        size_t c = lg->cap_off_ids ? 2 * lg->cap_off_ids : 4096;
        while (c < lg->n_off_ids + n + 1)
            c *= 2;
        lg->off_ids = bursar_realloc(lg->off_ids, c * sizeof(int));
        lg->cap_off_ids = c;
    }
    int *set = lg->off_ids + lg->n_off_ids, k = 0, own = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < k && !dup; j++)
            dup = set[j] == ids[i];
        if (!dup)
            set[k++] = ids[i];
        own |= ids[i] == lg->row_action[row];
    }
    if (!own) /* the model chosen was offered, whatever the list says */
        set[k++] = lg->row_action[row];
    lg->row_off[row] = lg->n_off_ids;
    lg->row_n_off[row] = k;
    lg->n_off_ids += (size_t)k;
}

void
olog_set_link(olog_t *lg, size_t row, uint64_t seq, int step, uint64_t parent)
{
    lg->row_seq[row] = seq;
    lg->row_step[row] = step;
    lg->row_parent[row] = parent;
}

int
olog_offered(const olog_t *lg, size_t row, const int **ids, size_t *n)
{
    if (lg->row_n_off[row] < 0)
        return 0;
    *ids = lg->off_ids + lg->row_off[row];
    *n = (size_t)lg->row_n_off[row];
    return 1;
}

/* 16 hex digits s[0..n) as a number; -1 when they are not. */
static int
olog_hex16(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n != 16)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------- JSONL */

/* A number field in [lo, hi]: absent or null gives NaN (when allowed). */
static int
olog_json_num(const cJSON *o, const char *key, double lo, double hi,
              int required, double *out, const char *name, long line, serr_t *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': missing", name,
                            line, key);
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': not a number",
                        name, line, key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': %g is outside [%g, %g]", name,
                        line, key, d, lo, hi);
    *out = d;
    return 0;
}

static int
olog_json_str(const cJSON *o, const char *key, const char **out,
              const char *name, long line, serr_t *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': missing", name,
                        line, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': not a non-empty string", name,
                        line, key);
    *out = v->valuestring;
    return 0;
}

/* A sequence id field (seq, escalates_seq): 16 hex digits; absent or
 * null gives 0. */
static int
olog_json_seq(const cJSON *o, const char *key, uint64_t *out, const char *name,
              long line, serr_t *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) ||
        olog_hex16(v->valuestring, strlen(v->valuestring), out) != 0)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': not a sequence id (16 hex "
                        "digits)",
                        name, line, key);
    return 0;
}

/* The cascade's fields of a row: step (-1 absent), seq, escalates_seq. */
static int
olog_json_link(const cJSON *o, int *step, uint64_t *seq, uint64_t *parent,
               const char *name, long line, serr_t *e)
{
    double st = NAN;
    int rc = olog_json_num(o, "step", 0, OLOG_STEP_MAX, 0, &st, name, line, e);
    if (!rc && !isnan(st) && st != floor(st))
        rc = serr_set(e, SERR_FORMAT,
                      "%s:%ld: field 'step': %g is not an "
                      "integer",
                      name, line, st);
    *step = rc || isnan(st) ? -1 : (int)st;
    if (!rc)
        rc = olog_json_seq(o, "seq", seq, name, line, e);
    if (!rc)
        rc = olog_json_seq(o, "escalates_seq", parent, name, line, e);
    return rc;
}

/* The offered set: *n = -1 when absent or null; else its names (pointing
 * into o), checked. */
static int
olog_json_offered(const cJSON *o, const char **names, int *n, const char *name,
                  long line, serr_t *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "offered");
    *n = -1;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field 'offered': not an array of model names",
                        name, line);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (k >= OLOG_OFFERED_MAX)
            return serr_set(e, SERR_FORMAT,
                            "%s:%ld: field 'offered': more than %d models",
                            name, line, OLOG_OFFERED_MAX);
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return serr_set(e, SERR_FORMAT,
                            "%s:%ld: field 'offered[%d]': not a non-empty "
                            "string",
                            name, line, k);
        names[k++] = it->valuestring;
    }
    *n = k;
    return 0;
}

static int
olog_json_row(olog_t *lg, const cJSON *o, const char *name, long line,
              serr_t *e)
{
    const char *bucket, *model;
    double reward, cost, prop, t;
    int rc = olog_json_str(o, "bucket", &bucket, name, line, e);
    if (!rc)
        rc = olog_json_str(o, "model", &model, name, line, e);
    if (!rc)
        rc = olog_json_num(o, "propensity", 0, 1, 0, &prop, name, line, e);
    if (!rc) {
        /* case-sensitive, as every other key (cJSON_HasObjectItem is not:
         * "REWARD" would hide "outcome") */
        const char *rk = cJSON_GetObjectItemCaseSensitive(o, "reward")
                             ? "reward"
                             : "outcome";
        rc = olog_json_num(o, rk, 0, 1, 0, &reward, name, line, e);
    }
    if (!rc)
        rc = olog_json_num(o, "cost_usd", 0, INFINITY, 0, &cost, name, line, e);
    if (!rc)
        rc =
            olog_json_num(o, "time", -INFINITY, INFINITY, 0, &t, name, line, e);
    const char *off[OLOG_OFFERED_MAX];
    int n_off, step;
    uint64_t seq, parent;
    if (!rc)
        rc = olog_json_offered(o, off, &n_off, name, line, e);
    if (!rc)
        rc = olog_json_link(o, &step, &seq, &parent, name, line, e);
    if (rc)
        return rc;
    /* names interned in this order on both paths: bucket, model, offered */
    int b = olog_bucket_id(lg, bucket), a = olog_action_id(lg, model);
    size_t row = olog_add(lg, b, a, reward, cost, prop, t, line);
    if (n_off >= 0) {
        int ids[OLOG_OFFERED_MAX];
        for (int i = 0; i < n_off; i++)
            ids[i] = olog_action_id(lg, off[i]);
        olog_set_offered(lg, row, ids, (size_t)n_off);
    }
    olog_set_link(lg, row, seq, step, parent);
    return 0;
}

/* ---------------------------------------------------------- fast path
 *
 * cJSON builds a tree of every field (17 in an export line, with a
 * malloc per node and per string) to hand us four numbers and two names:
 * 2.4 us per line, about 420,000 lines/s (bench/bench_ope.c). This
 * scanner reads one flat object in place and takes only the fields it
 * needs, about 3x faster. It accepts only what it can read with certainty
 * (a flat object; strings without escapes or control characters; the
 * literals; plain numbers); anything else, including every value that the
 * reader would refuse (a wrong type, a value out of range), returns 0 and
 * the line goes through cJSON, so the results and the error messages are
 * those of the cJSON path. Like cJSON_GetObjectItem, the first of
 * repeated keys wins. Every number, read or skipped, is checked as cJSON
 * checks it (olog_fast_num), so that the fast path never accepts a line
 * that cJSON refuses. tests/fuzz/fuzz_olog.c reads every input both ways
 * (olog_t.fast_off) and requires the same rows, numbers and messages. */

typedef struct olog_span {
    const char *s;
    size_t n;
} olog_span_t;

static const char *
olog_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* A string at p (at its opening quote): its content in *out; returns the
 * position after the closing quote, or NULL (escape, control, no end). */
static const char *
olog_fast_str(const char *p, const char *end, olog_span_t *out)
{
    const char *q = ++p;
    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20)
            return NULL;
        q++;
    }
    if (q >= end)
        return NULL;
    out->s = p;
    out->n = (size_t)(q - p);
    return q + 1;
}

/* The numeric field wanted, if the key names one: its slot, range. */
typedef struct olog_fast_num {
    const char *key;
    size_t klen;
    double lo, hi;
} olog_fast_num_t;

enum {
    OLOG_F_PROP,
    OLOG_F_REWARD,
    OLOG_F_OUTCOME,
    OLOG_F_COST,
    OLOG_F_TIME,
    OLOG_F_STEP,
    OLOG_F_N
};

static const olog_fast_num_t olog_fast_nums[OLOG_F_N] = {
    {"propensity", 10, 0, 1},
    {"reward", 6, 0, 1},
    {"outcome", 7, 0, 1},
    {"cost_usd", 8, 0, INFINITY},
    {"time", 4, -INFINITY, INFINITY},
    {"step", 4, 0, OLOG_STEP_MAX}};

/* 1 if s < q holds a digit (a function: s is never evaluated twice). */
static int
olog_digit(const char *s, const char *q)
{
    return s < q && *s >= '0' && *s <= '9';
}

/* 1 if p[0..q) is a number by JSON's grammar (RFC 8259, section 6). */
static int
olog_json_grammar(const char *p, const char *q)
{
    const char *s = p;
    if (s < q && *s == '-')
        s++;
    if (!olog_digit(s, q))
        return 0;
    if (*s == '0')
        s++;
    else
        while (olog_digit(s, q))
            s++;
    if (s < q && *s == '.') {
        s++;
        if (!olog_digit(s, q))
            return 0;
        while (olog_digit(s, q))
            s++;
    }
    if (s < q && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < q && (*s == '+' || *s == '-'))
            s++;
        if (!olog_digit(s, q))
            return 0;
        while (olog_digit(s, q))
            s++;
    }
    return s == q;
}

/* The longest number the fast path reads; a longer one (no writer of the
 * log prints one) goes to cJSON, whose limit depends on its release
 * (1.7.15 as released read 63 characters, later ones any length). */
#define OLOG_NUM_MAX 63

/* The number in p[0..q), the longest run of [-+.eE0-9] at p, as cJSON
 * reads it (strtod over the run; what strtod leaves of the run is then
 * the next character, which no object accepts): 0 and its value in *out
 * (out may be NULL: checked only), or -1 when cJSON refuses it or the run
 * is longer than OLOG_NUM_MAX (the line goes to cJSON). Short decimals (what
 * cJSON prints with %1.15g: up to 15 significant digits) take Clinger's exact
 * fast path (1990, "How to read floating point numbers accurately"): a mantissa
 * below 2^53 and a power of ten up to 10^22 are both exact doubles, so one
 * division rounds correctly and gives strtod's result. Anything else goes to
 * strtod, which was the largest cost of the fast path (perf on bench_ope), on a
 * NUL-terminated copy: the line is not NUL-terminated, and a number may
 * end the buffer. */
static int
olog_fast_num(const char *p, const char *q, double *out)
{
    static const double pow10[] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t n = (size_t)(q - p);
    if (n > OLOG_NUM_MAX)
        return -1;
    int json = olog_json_grammar(p, q);
    if (json && !out)
        return 0; /* a JSON number: strtod takes all of it */
    const char *s = p;
    int neg = 0, digits = 0, e10 = 0;
    uint64_t m = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    while (s < q && *s >= '0' && *s <= '9') {
        m = m * 10 + (uint64_t)(*s - '0');
        digits += m != 0;
        s++;
    }
    if (s < q && *s == '.') {
        s++;
        while (s < q && *s >= '0' && *s <= '9') {
            m = m * 10 + (uint64_t)(*s - '0');
            digits += m != 0;
            e10--;
            s++;
        }
    }
    if (json && s == q && digits <= 15 && e10 >= -22) {
        double d = (double)m;
        d = e10 < 0 ? d / pow10[-e10] : d;
        *out = neg ? -d : d;
        return 0;
    }
    char tmp[OLOG_NUM_MAX + 1], *e;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    double d = strtod(tmp, &e);
    if (e != tmp + n)
        return -1;
    if (out)
        *out = d;
    return 0;
}

/* The string fields of the scanner: bucket, model (names), offered (an
 * array of names), seq and escalates_seq (sequence ids). */
enum {
    OLOG_S_BUCKET = 1,
    OLOG_S_MODEL,
    OLOG_S_OFFERED,
    OLOG_S_SEQ,
    OLOG_S_PARENT,
    OLOG_S_N
};

static const char *const olog_fast_strs[OLOG_S_N] = {
    NULL, "bucket", "model", "offered", "seq", "escalates_seq"};

/* What the scanner has read of one line. */
typedef struct olog_fast {
    olog_span_t bucket, model;
    double num[OLOG_F_N]; /* NaN: absent or null; outcome not yet checked */
    unsigned char seen[OLOG_F_N]; /* the first of repeated keys wins */
    unsigned char seen_s[OLOG_S_N];
    int have_reward_key;
    olog_span_t off[OLOG_OFFERED_MAX];
    int n_off; /* -1: no offered set */
    uint64_t seq, parent;
} olog_fast_t;

/* The field a key names: *slot in olog_fast_nums (-2 for a repeat, -1 for
 * none), or *is_name, an OLOG_S_* (0: none, or a repeat). */
static void
olog_fast_key(olog_fast_t *st, olog_span_t key, int *slot, int *is_name)
{
    *slot = -1;
    for (int k = 0; k < OLOG_F_N; k++)
        if (key.n == olog_fast_nums[k].klen &&
            memcmp(key.s, olog_fast_nums[k].key, key.n) == 0)
            *slot = k;
    *is_name = 0;
    for (int k = 1; k < OLOG_S_N; k++)
        if (key.n == strlen(olog_fast_strs[k]) &&
            memcmp(key.s, olog_fast_strs[k], key.n) == 0)
            *is_name = k;
    if (*slot == OLOG_F_REWARD)
        st->have_reward_key = 1;
    if (*slot >= 0 && st->seen[*slot])
        *slot = -2; /* a repeat: skip it */
    if (*is_name && st->seen_s[*is_name])
        *is_name = 0;
}

/* A string value at p: bucket, model or a sequence id; a string where a
 * number or the offered array is wanted goes to cJSON. Returns the
 * position after it, or NULL. */
static const char *
olog_fast_string(olog_fast_t *st, const char *p, const char *end, int slot,
                 int is_name)
{
    olog_span_t v;
    if (!(p = olog_fast_str(p, end, &v)) || slot >= 0 ||
        is_name == OLOG_S_OFFERED)
        return NULL;
    if (is_name == OLOG_S_SEQ || is_name == OLOG_S_PARENT) {
        if (olog_hex16(v.s, v.n,
                       is_name == OLOG_S_SEQ ? &st->seq : &st->parent) != 0)
            return NULL;
    } else if (is_name) {
        if (!v.n)
            return NULL;
        *(is_name == OLOG_S_BUCKET ? &st->bucket : &st->model) = v;
    }
    if (is_name)
        st->seen_s[is_name] = 1;
    return p;
}

/* The offered array at p (its '['): plain non-empty strings, at most
 * OLOG_OFFERED_MAX; anything else goes to cJSON. */
static const char *
olog_fast_array(olog_fast_t *st, const char *p, const char *end)
{
    int n = 0;
    p = olog_ws(p + 1, end);
    if (p < end && *p == ']') {
        st->n_off = 0;
        st->seen_s[OLOG_S_OFFERED] = 1;
        return p + 1;
    }
    for (;;) {
        if (p >= end || *p != '"' || n >= OLOG_OFFERED_MAX ||
            !(p = olog_fast_str(p, end, &st->off[n])) || !st->off[n].n)
            return NULL;
        n++;
        p = olog_ws(p, end);
        if (p < end && *p == ',') {
            p = olog_ws(p + 1, end);
            continue;
        }
        if (p >= end || *p != ']')
            return NULL;
        st->n_off = n;
        st->seen_s[OLOG_S_OFFERED] = 1;
        return p + 1;
    }
}

/* null, true or false at p: null is a missing number (NaN) or a missing
 * offered set or sequence id; the cJSON path names a literal where a name
 * or a number is wanted. */
static const char *
olog_fast_literal(olog_fast_t *st, const char *p, const char *end, int slot,
                  int is_name)
{
    char c = *p;
    const char *lit = c == 'n' ? "null" : c == 't' ? "true" : "false";
    size_t ln = strlen(lit);
    int optional = is_name >= OLOG_S_OFFERED;
    if ((size_t)(end - p) < ln || memcmp(p, lit, ln) != 0 ||
        (is_name && !optional) || ((slot >= 0 || optional) && c != 'n'))
        return NULL;
    if (slot >= 0)
        st->seen[slot] = 1; /* null: NaN */
    if (optional)
        st->seen_s[is_name] = 1; /* null: absent */
    return p + ln;
}

/* A number at p, checked against its field's range. */
static const char *
olog_fast_number(olog_fast_t *st, const char *p, const char *end, int slot,
                 int is_name)
{
    const char *q = p;
    while (q < end && (*q == '-' || *q == '+' || *q == '.' || *q == 'e' ||
                       *q == 'E' || (*q >= '0' && *q <= '9')))
        q++;
    if (is_name)
        return NULL;
    if (slot < 0)
        return olog_fast_num(p, q, NULL) == 0 ? q : NULL;
    double d;
    if (olog_fast_num(p, q, &d) != 0)
        return NULL;
    /* outcome: checked only when there is no reward key (at the end) */
    if (slot != OLOG_F_OUTCOME &&
        (!isfinite(d) || d < olog_fast_nums[slot].lo ||
         d > olog_fast_nums[slot].hi))
        return NULL;
    if (slot == OLOG_F_STEP && d != floor(d))
        return NULL;
    st->num[slot] = d;
    st->seen[slot] = 1;
    return q;
}

/* The members of the object after its '{': returns the position of its
 * closing '}', or NULL when the line must go through cJSON. */
static const char *
olog_fast_members(olog_fast_t *st, const char *p, const char *end)
{
    for (;;) {
        olog_span_t key;
        int slot, is_name;
        if (p >= end || *p != '"' || !(p = olog_fast_str(p, end, &key)))
            return NULL;
        p = olog_ws(p, end);
        if (p >= end || *p != ':')
            return NULL;
        p = olog_ws(p + 1, end);
        if (p >= end)
            return NULL;
        olog_fast_key(st, key, &slot, &is_name);
        if (*p == '"')
            p = olog_fast_string(st, p, end, slot, is_name);
        else if (*p == 'n' || *p == 't' || *p == 'f')
            p = olog_fast_literal(st, p, end, slot, is_name);
        else if (*p == '-' || (*p >= '0' && *p <= '9'))
            p = olog_fast_number(st, p, end, slot, is_name);
        else if (*p == '[' && is_name == OLOG_S_OFFERED)
            p = olog_fast_array(st, p, end);
        else
            return NULL; /* another nested value: cJSON */
        if (!p)
            return NULL;
        p = olog_ws(p, end);
        if (p < end && *p == ',') {
            p = olog_ws(p + 1, end);
            continue;
        }
        return p < end && *p == '}' ? p : NULL;
    }
}

/* The id of the name s (span), interned if new; hint is tried first. */
static int
olog_fast_id(olog_t *lg, int bucket, olog_span_t s, int hint)
{
    char **names = bucket ? lg->bucket : lg->action;
    size_t n = bucket ? lg->n_buckets : lg->n_actions;
    int id = hint;
    if (id < 0 || (size_t)id >= n || strncmp(names[id], s.s, s.n) != 0 ||
        names[id][s.n])
        id = olog_find_n(names, n, s.s, s.n);
    if (id < 0) {
        char *nm = bursar_strndup(s.s, s.n);
        id = bucket ? olog_bucket_id(lg, nm) : olog_action_id(lg, nm);
        free(nm);
    }
    return id;
}

static int
olog_fast_row(olog_t *lg, const char *p, const char *end, long line)
{
    olog_fast_t st;
    memset(&st, 0, sizeof st);
    st.n_off = -1;
    for (int k = 0; k < OLOG_F_N; k++)
        st.num[k] = NAN;
    p = olog_ws(p, end);
    if (p >= end || *p != '{')
        return 0;
    p = olog_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0; /* empty object: let cJSON's path name what is missing */
    p = olog_fast_members(&st, p, end);
    if (!p || olog_ws(p + 1, end) != end || !st.seen_s[OLOG_S_BUCKET] ||
        !st.seen_s[OLOG_S_MODEL])
        return 0;
    double oc = st.num[OLOG_F_OUTCOME];
    if (!st.have_reward_key && !isnan(oc) && !(oc >= 0 && oc <= 1))
        return 0;
    double reward =
        st.have_reward_key ? st.num[OLOG_F_REWARD] : st.num[OLOG_F_OUTCOME];
    /* names interned in this order on both paths: bucket, model, offered */
    int b = olog_fast_id(lg, 1, st.bucket, lg->fast_bucket);
    int a = olog_fast_id(lg, 0, st.model, -1);
    lg->fast_bucket = b;
    size_t row = olog_add(lg, b, a, reward, st.num[OLOG_F_COST],
                          st.num[OLOG_F_PROP], st.num[OLOG_F_TIME], line);
    if (st.n_off >= 0) {
        int ids[OLOG_OFFERED_MAX];
        for (int i = 0; i < st.n_off; i++)
            ids[i] = olog_fast_id(lg, 0, st.off[i], a);
        olog_set_offered(lg, row, ids, (size_t)st.n_off);
    }
    double sn = st.num[OLOG_F_STEP];
    olog_set_link(lg, row, st.seq, isnan(sn) ? -1 : (int)sn, st.parent);
    return 1;
}

int
olog_load_jsonl_buffer(olog_t *lg, const char *buf, size_t len,
                       const char *name, serr_t *e)
{
    long line = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *q = nl ? nl : end;
        line++;
        const char *s = p;
        while (s < q && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        if (s < q && (lg->fast_off || !olog_fast_row(lg, s, q, line))) {
            const char *tail = NULL;
            cJSON *o = cJSON_ParseWithLengthOpts(s, (size_t)(q - s), &tail, 0);
            while (o && tail && tail < q && (unsigned char)*tail <= ' ')
                tail++; /* cJSON's white space */
            int rc = 0;
            if (!o)
                rc = serr_set(e, SERR_PARSE, "%s:%ld: not valid JSON", name,
                              line);
            else if (tail && tail < q)
                rc = serr_set(e, SERR_PARSE,
                              "%s:%ld: not valid JSON (text after the object)",
                              name, line);
            else if (!cJSON_IsObject(o))
                rc = serr_set(e, SERR_FORMAT, "%s:%ld: not a JSON object", name,
                              line);
            else
                rc = olog_json_row(lg, o, name, line, e);
            cJSON_Delete(o);
            if (rc)
                return rc;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* --------------------------------------------------------------- OBD */

static int
olog_csv_num(const char *s, double lo, double hi, double *out, const char *name,
             long line, const char *field, serr_t *e)
{
    char *endp;
    if (!*s)
        return serr_set(e, SERR_FORMAT, "%s:%ld: field '%s': empty", name, line,
                        field);
    double d = strtod(s, &endp);
    if (*endp || !isfinite(d))
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': '%s' is not a "
                        "number",
                        name, line, field, s);
    if (d < lo || d > hi)
        return serr_set(e, SERR_FORMAT,
                        "%s:%ld: field '%s': %g is outside [%g, %g]", name,
                        line, field, d, lo, hi);
    *out = d;
    return 0;
}

int
olog_load_obd_buffer(olog_t *lg, const char *buf, size_t len, const char *name,
                     serr_t *e)
{
    csv_t *c = csv_new(buf, len, name);
    int rc = csv_next(c, e);
    if (rc <= 0) {
        csv_destroy(&c);
        return rc ? rc
                  : serr_set(e, SERR_FORMAT, "%s: empty file (no header)",
                             name);
    }
    long col_item = -1, col_pos = -1, col_click = -1, col_prop = -1;
    for (size_t i = 0; i < csv_n_fields(c); i++) {
        const char *h = csv_field(c, i);
        if (strcmp(h, "item_id") == 0)
            col_item = (long)i;
        else if (strcmp(h, "position") == 0)
            col_pos = (long)i;
        else if (strcmp(h, "click") == 0)
            col_click = (long)i;
        else if (strcmp(h, "propensity_score") == 0)
            col_prop = (long)i;
    }
    const char *need = col_item < 0    ? "item_id"
                       : col_click < 0 ? "click"
                       : col_prop < 0  ? "propensity_score"
                                       : NULL;
    if (need) {
        csv_destroy(&c);
        return serr_set(e, SERR_FORMAT, "%s:1: field '%s': no such column",
                        name, need);
    }
    size_t n_cols = csv_n_fields(c);
    while ((rc = csv_next(c, e)) == 1) {
        long line = csv_line(c);
        if (csv_n_fields(c) == 1 && !csv_field(c, 0)[0])
            continue; /* blank line */
        if (csv_n_fields(c) != n_cols) {
            rc = serr_set(e, SERR_FORMAT,
                          "%s:%ld: %zu fields where the "
                          "header has %zu",
                          name, line, csv_n_fields(c), n_cols);
            break;
        }
        const char *item = csv_field(c, (size_t)col_item);
        double click, prop = NAN;
        if (!*item) {
            rc = serr_set(e, SERR_FORMAT, "%s:%ld: field 'item_id': empty",
                          name, line);
            break;
        }
        rc = olog_csv_num(csv_field(c, (size_t)col_click), 0, 1, &click, name,
                          line, "click", e);
        const char *ps = csv_field(c, (size_t)col_prop);
        if (!rc && *ps) /* an empty propensity is missing, not an error */
            rc = olog_csv_num(ps, 0, 1, &prop, name, line, "propensity_score",
                              e);
        char bucket[80] = "all";
        if (!rc && col_pos >= 0) {
            const char *pos = csv_field(c, (size_t)col_pos);
            if (!*pos)
                rc = serr_set(e, SERR_FORMAT, "%s:%ld: field 'position': empty",
                              name, line);
            else
                snprintf(bucket, sizeof bucket, "pos%.60s", pos);
        }
        if (rc)
            break;
        olog_add(lg, olog_bucket_id(lg, bucket), olog_action_id(lg, item),
                 click, NAN, prop, NAN, line);
    }
    csv_destroy(&c);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- files */

static int
olog_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int
olog_load_path(olog_t *lg, const char *path, serr_t *e)
{
    int csv = olog_ends_with(path, ".csv");
    if (!csv && !olog_ends_with(path, ".jsonl") &&
        !olog_ends_with(path, ".ndjson"))
        return serr_set(e, SERR_ARG,
                        "%s: unknown log format (want .jsonl, .ndjson or "
                        ".csv)",
                        path);
    char *buf;
    size_t len;
    int rc = csv_slurp(path, &buf, &len, e);
    if (rc)
        return rc;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    rc = csv ? olog_load_obd_buffer(lg, buf, len, base, e)
             : olog_load_jsonl_buffer(lg, buf, len, base, e);
    free(buf);
    return rc;
}
