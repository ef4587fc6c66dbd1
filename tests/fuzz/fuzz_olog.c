/*
 * fuzz_olog.c - the decision-log reader (olog_load_jsonl_buffer), and a
 * differential check of its fast path: the same bytes read with the fast
 * path off (every line through cJSON) must give the same answer: the same
 * code and message, the same rows with the same names and the same
 * numbers, bit for bit (NaN for NaN), the same offered sets and cascade
 * links. Any difference aborts.
 */
#include "tests/fuzz/fuzz.h"

#include <math.h>
#include <stdio.h>

#include "sim/olog.h"

static int
same_num(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static void
differ(const char *what, size_t row)
{
    fprintf(stderr, "fuzz_olog: fast path and cJSON differ: %s (row %zu)\n",
            what, row);
    abort();
}

static void
compare(const olog_t *f, int rf, const serr_t *ef, const olog_t *s, int rs,
        const serr_t *es)
{
    if (rf != rs)
        differ("return code", 0);
    if (rf && strcmp(ef->msg, es->msg) != 0) {
        fprintf(stderr, "fast: %s\ncJSON: %s\n", ef->msg, es->msg);
        differ("error message", 0);
    }
    if (f->n_rows != s->n_rows)
        differ("number of rows", 0);
    for (size_t i = 0; i < f->n_rows; i++) {
        if (strcmp(f->bucket[f->row_bucket[i]], s->bucket[s->row_bucket[i]]))
            differ("bucket", i);
        if (strcmp(f->action[f->row_action[i]], s->action[s->row_action[i]]))
            differ("model", i);
        if (!same_num(f->reward[i], s->reward[i]))
            differ("reward", i);
        if (!same_num(f->cost[i], s->cost[i]))
            differ("cost_usd", i);
        if (!same_num(f->prop[i], s->prop[i]))
            differ("propensity", i);
        if (!same_num(f->time[i], s->time[i]))
            differ("time", i);
        if (f->line[i] != s->line[i])
            differ("line", i);
        if (f->row_step[i] != s->row_step[i])
            differ("step", i);
        if (f->row_seq[i] != s->row_seq[i])
            differ("seq", i);
        if (f->row_parent[i] != s->row_parent[i])
            differ("escalates_seq", i);
        const int *fo, *so;
        size_t fn = 0, sn = 0;
        int fh = olog_offered(f, i, &fo, &fn),
            sh = olog_offered(s, i, &so, &sn);
        if (fh != sh || fn != sn)
            differ("offered", i);
        for (size_t k = 0; fh && k < fn; k++)
            if (strcmp(f->action[fo[k]], s->action[so[k]]))
                differ("offered", i);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    serr_t ef, es;
    memset(&ef, 0, sizeof ef);
    memset(&es, 0, sizeof es);
    olog_t *f = olog_new();
    olog_t *s = olog_new();
    s->fast_off = 1;
    int rf = olog_load_jsonl_buffer(f, buf, size, "fuzz.jsonl", &ef);
    int rs = olog_load_jsonl_buffer(s, buf, size, "fuzz.jsonl", &es);
    compare(f, rf, &ef, s, rs, &es);
    olog_destroy(&f);
    olog_destroy(&s);
    free(buf);
    return 0;
}
