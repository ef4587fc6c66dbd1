/*
 * route.c - intent buckets from rules (route.h). O(rules x prompt) per
 * task: rules are few and prompts short next to a provider round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/route.h"

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/base.h"

typedef struct rule {
    char *bucket;
    size_t n_keywords;
    char **keywords;
    int has_re;
    regex_t re;
    long min_len; /* -1: none */
    long max_len; /* -1: none */
} rule_t;

struct route {
    char *dflt;
    size_t n_rules;
    rule_t *rules;
};

void
route_destroy(route_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    route_t *r = *self_p;
    for (size_t i = 0; i < r->n_rules; i++) {
        rule_t *ru = &r->rules[i];
        free(ru->bucket);
        for (size_t k = 0; k < ru->n_keywords; k++)
            free(ru->keywords[k]);
        free(ru->keywords);
        if (ru->has_re)
            regfree(&ru->re);
    }
    free(r->rules);
    free(r->dflt);
    free(r);
    *self_p = NULL;
}

/* Fills err (cap bytes) and returns -1. */
static int
route_fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return BURSAR_EFORMAT;
}

/* The keys of a part of the routing spec; another is an error naming its
 * path (a misspelt "keyword" would make a rule match every prompt). */
static int
route_keys(const cJSON *o, const char *path, const char *const *keys, char *err,
           size_t cap)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, o)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k->string) != 0)
            i++;
        if (!keys[i])
            return route_fail(err, cap, "%s.%.64s: unknown key", path,
                              k->string);
    }
    return 0;
}

/* The length bounds and icase of a rule, if given, of the right type. */
static int
route_rule_types(const cJSON *it, const char *path, char *err, size_t cap)
{
    static const char *const nums[] = {"min_length", "max_length"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, nums[i]);
        if (v && !cJSON_IsNumber(v))
            return route_fail(err, cap, "%s.%s: must be a number", path,
                              nums[i]);
    }
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(it, "icase");
    if (ic && !cJSON_IsBool(ic))
        return route_fail(err, cap, "%s.icase: must be true or false", path);
    return 0;
}

/* Rule i of the spec into ru. Returns 0, or -1 with the message. */
static int
route_rule(const cJSON *it, size_t i, rule_t *ru, char *err, size_t cap)
{
    static const char *const keys[] = {"bucket", "keywords",   "regex",
                                       "icase",  "min_length", "max_length",
                                       NULL};
    char path[48];
    snprintf(path, sizeof path, "routing.rules[%zu]", i);
    ru->min_len = ru->max_len = -1;
    if (!cJSON_IsObject(it))
        return route_fail(err, cap, "%s: must be an object", path);
    if (route_keys(it, path, keys, err, cap) ||
        route_rule_types(it, path, err, cap))
        return BURSAR_EFORMAT;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "bucket");
    if (!cJSON_IsString(b))
        return route_fail(err, cap, "%s.bucket: a string is required", path);
    ru->bucket = bursar_strdup(b->valuestring);
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(it, "keywords");
    if (kw && !cJSON_IsArray(kw))
        return route_fail(err, cap, "%s.keywords: must be an array", path);
    if (kw) {
        size_t nk = (size_t)cJSON_GetArraySize(kw);
        ru->keywords = bursar_calloc(nk ? nk : 1, sizeof(char *));
        const cJSON *k;
        cJSON_ArrayForEach(k, kw)
        {
            if (!cJSON_IsString(k))
                return route_fail(err, cap, "%s.keywords: strings only", path);
            ru->keywords[ru->n_keywords++] = bursar_strdup(k->valuestring);
        }
    }
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(it, "regex");
    if (re) {
        int fl = REG_EXTENDED | REG_NOSUB;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "icase")))
            fl |= REG_ICASE;
        if (!cJSON_IsString(re) || regcomp(&ru->re, re->valuestring, fl))
            return route_fail(
                err, cap, "%s.regex: not a valid POSIX extended regex", path);
        ru->has_re = 1;
    }
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(it, "min_length");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(it, "max_length");
    if (mn)
        ru->min_len = (long)mn->valuedouble;
    if (mx)
        ru->max_len = (long)mx->valuedouble;
    return 0;
}

int
route_parse(const cJSON *spec, route_t **out, char *err, size_t cap)
{
    static const char *const keys[] = {"default", "rules", NULL};
    *out = NULL;
    route_t *r = bursar_calloc(1, sizeof(*r));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "default");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, "rules");
    r->dflt = bursar_strdup(cJSON_IsString(d) ? d->valuestring : "default");
    size_t n = (size_t)cJSON_GetArraySize(rules);
    r->rules = bursar_calloc(n ? n : 1, sizeof(*r->rules));
    int rc = route_keys(spec, "routing", keys, err, cap);
    if (!rc && d && !cJSON_IsString(d))
        rc = route_fail(err, cap, "routing.default: must be a string");
    if (!rc && rules && !cJSON_IsArray(rules))
        rc = route_fail(err, cap, "routing.rules: must be an array");
    const cJSON *it = rules ? rules->child : NULL;
    for (; !rc && it; it = it->next) {
        rule_t *ru = &r->rules[r->n_rules++]; /* freed with r from here */
        rc = route_rule(it, r->n_rules - 1, ru, err, cap);
    }
    if (rc) {
        route_destroy(&r);
        return BURSAR_EFORMAT;
    }
    *out = r;
    return 0;
}

static int
contains_icase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return 1;
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] &&
               tolower((unsigned char)hay[k]) ==
                   tolower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

const char *
route_bucket(const route_t *self, const char *task_bucket, const char *prompt)
{
    if (task_bucket && *task_bucket)
        return task_bucket;
    if (!prompt)
        prompt = "";
    long len = (long)strlen(prompt);
    for (size_t i = 0; i < self->n_rules; i++) {
        const rule_t *ru = &self->rules[i];
        if (ru->min_len >= 0 && len < ru->min_len)
            continue;
        if (ru->max_len >= 0 && len > ru->max_len)
            continue;
        if (ru->has_re && regexec(&ru->re, prompt, 0, NULL, 0) != 0)
            continue;
        if (ru->n_keywords) {
            int any = 0;
            for (size_t k = 0; k < ru->n_keywords && !any; k++)
                any = contains_icase(prompt, ru->keywords[k]);
            if (!any)
                continue;
        }
        return ru->bucket;
    }
    return self->dflt;
}
