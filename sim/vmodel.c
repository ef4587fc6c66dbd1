/*
 * vmodel.c - the validator model of a cascade replay (see vmodel.h).
 */
#include "sim/vmodel.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
vmodel_default(vmodel_t *vm)
{
    memset(vm, 0, sizeof *vm);
    vm->kind = VMODEL_PERFECT;
}

/* One probability of a noisy spec: the whole of s (len bytes) as a finite
 * number in [0, 1]. what names it in the message. */
static int
vmodel_prob(const char *spec, const char *what, const char *s, size_t len,
            double *out, serr_t *e)
{
    char buf[64];
    char *end;
    if (len == 0)
        return serr_set(e, SERR_ARG,
                        "--validator %.80s: %s probability missing (expected "
                        "noisy:FP,FF, both in [0, 1])",
                        spec, what);
    if (len >= sizeof buf)
        return serr_set(e, SERR_ARG,
                        "--validator %.80s: %s probability '%.40s...' is not "
                        "a number in [0, 1]",
                        spec, what, s);
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    double v = strtod(buf, &end);
    if (isspace((unsigned char)buf[0]) || *end || errno || !isfinite(v) ||
        v < 0.0 || v > 1.0)
        return serr_set(e, SERR_ARG,
                        "--validator %.80s: %s probability '%s' is not a "
                        "number in [0, 1]",
                        spec, what, buf);
    *out = v;
    return 0;
}

/* "noisy:FP,FF" after the "noisy" prefix (rest starts at ':' or is ""). */
static int
vmodel_parse_noisy(const char *spec, const char *rest, vmodel_t *vm, serr_t *e)
{
    if (rest[0] != ':')
        return serr_set(e, SERR_ARG,
                        "--validator %.80s: expected noisy:FP,FF (false-pass "
                        "and false-fail probabilities in [0, 1])",
                        spec);
    rest++;
    const char *comma = strchr(rest, ',');
    if (!comma)
        return serr_set(e, SERR_ARG,
                        "--validator %.80s: expected noisy:FP,FF (two "
                        "probabilities separated by a comma)",
                        spec);
    double fp, ff;
    int rc =
        vmodel_prob(spec, "false-pass", rest, (size_t)(comma - rest), &fp, e);
    if (!rc)
        rc = vmodel_prob(spec, "false-fail", comma + 1, strlen(comma + 1), &ff,
                         e);
    if (rc)
        return rc;
    vm->kind = VMODEL_NOISY;
    vm->false_pass = fp;
    vm->false_fail = ff;
    return 0;
}

int
vmodel_parse(const char *spec, vmodel_t *vm, serr_t *e)
{
    vmodel_t v;
    vmodel_default(&v);
    if (!spec || !spec[0])
        return serr_set(e, SERR_ARG,
                        "--validator: empty (expected perfect, noisy:FP,FF "
                        "or column)");
    if (strcmp(spec, "perfect") == 0) {
        *vm = v;
        return 0;
    }
    if (strcmp(spec, "column") == 0) {
        v.kind = VMODEL_COLUMN;
        *vm = v;
        return 0;
    }
    if (strncmp(spec, "noisy", 5) == 0 && (spec[5] == ':' || !spec[5])) {
        int rc = vmodel_parse_noisy(spec, spec + 5, &v, e);
        if (!rc)
            *vm = v;
        return rc;
    }
    return serr_set(e, SERR_ARG,
                    "--validator '%.80s': unknown validator (expected "
                    "perfect, noisy:FP,FF or column)",
                    spec);
}

int
vmodel_check(const vmodel_t *vm, const dataset_t *ds, serr_t *e)
{
    if (vm->kind == VMODEL_COLUMN && !ds->verdict)
        return serr_set(e, SERR_ARG,
                        "--validator column: the data has no verdict columns "
                        "(M|verdict; \"verdicts\" in JSONL)");
    return 0;
}

const char *
vmodel_describe(const vmodel_t *vm, char *buf, size_t cap)
{
    if (vm->kind == VMODEL_NOISY)
        snprintf(buf, cap, "noisy:%.17g,%.17g", vm->false_pass, vm->false_fail);
    else
        snprintf(buf, cap, "%s",
                 vm->kind == VMODEL_COLUMN ? "column" : "perfect");
    return buf;
}

double
vmodel_pass_prob(const vmodel_t *vm, const dataset_t *ds, size_t row, int model)
{
    size_t k = dataset_idx(ds, row, model);
    if (ds->status[k] != DATASET_OK)
        return 0.0;
    int good = ds->outcome[k] >= VMODEL_THRESHOLD;
    switch (vm->kind) {
    case VMODEL_NOISY:
        return good ? 1.0 - vm->false_fail : vm->false_pass;
    case VMODEL_COLUMN:
        if (ds->verdict && !isnan(ds->verdict[k]))
            return ds->verdict[k];
        return good ? 1.0 : 0.0; /* no verdict: the perfect rule */
    case VMODEL_PERFECT:
    default:
        return good ? 1.0 : 0.0;
    }
}

/* splitmix64's output function (Steele, Lea and Flood, 2014, "Fast
 * splittable pseudorandom number generators", OOPSLA; the constants of
 * Vigna's reference code): one step from state x. */
static uint64_t
vmodel_mix(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double
vmodel_uniform(unsigned long seed, unsigned pass, size_t row, int model)
{
    /* Chained: each field enters a full avalanche of the previous state,
     * so cells that differ in any field get unrelated uniforms. */
    uint64_t x = vmodel_mix((uint64_t)seed);
    x = vmodel_mix(x ^ (uint64_t)pass);
    x = vmodel_mix(x ^ (uint64_t)row);
    x = vmodel_mix(x ^ (uint64_t)(uint32_t)model);
    return (double)(x >> 11) * 0x1.0p-53; /* 53 bits: [0, 1) */
}

int
vmodel_draw(const vmodel_t *vm, const dataset_t *ds, size_t row, int model,
            unsigned long seed, unsigned pass)
{
    double p = vmodel_pass_prob(vm, ds, row, model);
    return vmodel_uniform(seed, pass, row, model) < p;
}
