/*
 * route.c - intent buckets from rules (route.h). O(rules x prompt) per
 * task: rules are few and prompts short next to a provider round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include "route.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static char *
xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

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

int
route_parse(const cJSON *spec, route_t **out, char *err, size_t cap)
{
    *out = NULL;
    route_t *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "default");
    r->dflt = xstrdup(cJSON_IsString(d) ? d->valuestring : "default");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, "rules");
    if (rules && !cJSON_IsArray(rules)) {
        snprintf(err, cap, "routing.rules: must be an array");
        route_destroy(&r);
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(rules);
    r->rules = calloc(n ? n : 1, sizeof(*r->rules));
    if (!r->rules)
        abort();
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, rules)
    {
        rule_t *ru = &r->rules[i];
        ru->min_len = ru->max_len = -1;
        r->n_rules = ++i;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "bucket");
        if (!cJSON_IsString(b)) {
            snprintf(err, cap,
                     "routing.rules[%zu].bucket: a string is "
                     "required",
                     i - 1);
            route_destroy(&r);
            return -1;
        }
        ru->bucket = xstrdup(b->valuestring);
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(it, "keywords");
        if (kw) {
            size_t nk = (size_t)cJSON_GetArraySize(kw);
            ru->keywords = calloc(nk ? nk : 1, sizeof(char *));
            if (!ru->keywords)
                abort();
            const cJSON *k;
            cJSON_ArrayForEach(k, kw)
            {
                if (!cJSON_IsString(k)) {
                    snprintf(err, cap,
                             "routing.rules[%zu].keywords: "
                             "strings only",
                             i - 1);
                    route_destroy(&r);
                    return -1;
                }
                ru->keywords[ru->n_keywords++] = xstrdup(k->valuestring);
            }
        }
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(it, "regex");
        if (re) {
            int fl = REG_EXTENDED | REG_NOSUB;
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "icase")))
                fl |= REG_ICASE;
            if (!cJSON_IsString(re) || regcomp(&ru->re, re->valuestring, fl)) {
                snprintf(err, cap,
                         "routing.rules[%zu].regex: not a valid "
                         "POSIX extended regex",
                         i - 1);
                route_destroy(&r);
                return -1;
            }
            ru->has_re = 1;
        }
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(it, "min_length");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(it, "max_length");
        if (cJSON_IsNumber(mn))
            ru->min_len = (long)mn->valuedouble;
        if (cJSON_IsNumber(mx))
            ru->max_len = (long)mx->valuedouble;
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
