/*
 * wcfg.c - configuration shared by bursar-agent and bursar-gateway
 * (wcfg.h).
 */
#include "agents/wcfg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
wcfg_type_name(int type)
{
    switch (type) {
    case cJSON_String:
        return "a string";
    case cJSON_Number:
        return "a number";
    case cJSON_Array:
        return "an array";
    case WCFG_BOOL:
        return "a boolean";
    default:
        return "an object";
    }
}

static int
wcfg_type_ok(const cJSON *m, int type)
{
    if (!type)
        return 1;
    if (type == WCFG_BOOL)
        return cJSON_IsBool(m);
    return (m->type & 0xFF) == type;
}

const wcfg_key_t *
wcfg_key(const wcfg_key_t *keys, size_t nk, const char *path)
{
    for (size_t i = 0; i < nk; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

int
wcfg_num_ok(const wcfg_key_t *k, double x, char *err, size_t cap)
{
    if (x >= k->min && x <= k->max && x == floor(x))
        return 1;
    snprintf(err, cap, "must be a whole number in [%.0f, %.0f], got %g", k->min,
             k->max, x);
    return 0;
}

/* The leaf of row k when it is a member of the object at prefix, else
 * NULL. */
static const char *
wcfg_leaf(const wcfg_key_t *k, const char *prefix)
{
    size_t pl = strlen(prefix);
    const char *leaf = k->path;
    if (pl) {
        if (strncmp(k->path, prefix, pl) != 0 || k->path[pl] != '.')
            return NULL;
        leaf += pl + 1;
    }
    return strchr(leaf, '.') ? NULL : leaf;
}

/* The key of the object at prefix an unknown key was probably meant to
 * be: at most 2 edits away (the nearest), else one it begins or that
 * begins it (4 bytes at least: "timeout" for "timeout_ms"); or NULL. */
static const char *
wcfg_near(const char *name, const char *prefix, const wcfg_key_t *keys,
          size_t nk)
{
    const char *best = NULL, *begun = NULL;
    int best_d = 3;
    size_t nl = strlen(name);
    for (size_t i = 0; i < nk; i++) {
        const char *leaf = wcfg_leaf(&keys[i], prefix);
        if (!leaf)
            continue;
        int d = bursar_edit_distance(name, leaf, 2);
        size_t ll = strlen(leaf), m = nl < ll ? nl : ll;
        if (d < best_d && (size_t)d < nl) {
            best_d = d;
            best = keys[i].path;
        }
        if (!begun && m >= 4 && strncmp(name, leaf, m) == 0)
            begun = keys[i].path;
    }
    return best ? best : begun;
}

/* Checks member m (at path) against row k: its type, a number's range. */
static int
wcfg_check_value(const cJSON *m, const wcfg_key_t *k, const char *path,
                 char *err, size_t cap)
{
    if (!wcfg_type_ok(m, k->type)) {
        snprintf(err, cap, "%s: must be %s, got %s", path,
                 wcfg_type_name(k->type), proto_type_name(m));
        return -1;
    }
    char why[128];
    if (k->type == cJSON_Number &&
        !wcfg_num_ok(k, m->valuedouble, why, sizeof why)) {
        snprintf(err, cap, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

int
wcfg_check_keys(const cJSON *o, const char *prefix, const wcfg_key_t *keys,
                size_t nk, char *err, size_t cap)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, o)
    {
        char path[160];
        snprintf(path, sizeof path, "%s%s%.100s", prefix, *prefix ? "." : "",
                 m->string);
        const char *dot = strchr(m->string, '.');
        const wcfg_key_t *k = wcfg_key(keys, nk, path);
        if (k && dot) { /* "provider.timeout_ms" at the top */
            snprintf(err, cap,
                     "%s: unknown key (a member of an object: write "
                     "\"%.*s\": {\"%.60s\": ...})",
                     path, (int)(dot - m->string), m->string, dot + 1);
            return -1;
        }
        if (!k) {
            const char *near = wcfg_near(m->string, prefix, keys, nk);
            snprintf(err, cap, "%s: unknown key%s%s%s", path,
                     near ? " (did you mean " : "", near ? near : "",
                     near ? "?)" : "");
            return -1;
        }
        if (wcfg_check_value(m, k, path, err, cap) != 0)
            return -1;
        if (k->members && wcfg_check_keys(m, path, keys, nk, err, cap) != 0)
            return -1;
    }
    return 0;
}

int
wcfg_check_fallbacks(const cJSON *fb, char *err, size_t cap)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, fb)
    {
        size_t kl = strlen(m->string);
        if (kl == 0 || kl >= BURSAR_NAME_MAX) {
            snprintf(err, cap,
                     "fallbacks.%.100s: a bucket name has 1 to %d bytes",
                     m->string, BURSAR_NAME_MAX - 1);
            return -1;
        }
        if (!cJSON_IsString(m)) {
            snprintf(err, cap, "fallbacks.%s: must be a string, got %s",
                     m->string, proto_type_name(m));
            return -1;
        }
        size_t vl = strlen(m->valuestring);
        if (vl == 0 || vl >= BURSAR_NAME_MAX) {
            snprintf(err, cap, "fallbacks.%s: a model name has 1 to %d bytes",
                     m->string, BURSAR_NAME_MAX - 1);
            return -1;
        }
    }
    return 0;
}

const char *
wcfg_str(const cJSON *c, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long
wcfg_num(const cJSON *c, const char *k, long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

int
wcfg_models_parse(const char *text, size_t len, int obj, bursar_model_t **out,
                  size_t *n, char *err, size_t cap)
{
    proto_error_t perr;
    *out = NULL;
    *n = 0;
    if (proto_parse_models(text, len, NULL, out, n, &perr) != PROTO_OK) {
        snprintf(err, cap, "%s", perr.message);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        char why[160];
        if (prov_url_check((*out)[i].base_url, NULL, why, sizeof why) == 0)
            continue;
        if (obj)
            snprintf(err, cap, "models.%s.base_url: %s", (*out)[i].name, why);
        else
            snprintf(err, cap, "models[%zu].base_url: %s", i, why);
        free(*out);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int
wcfg_models_member(const cJSON *models, bursar_model_t **out, size_t *n,
                   char *err, size_t cap)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(w, "models", (cJSON *)models);
    char *s = cJSON_PrintUnformatted(w);
    cJSON_Delete(w);
    int rc = wcfg_models_parse(s, strlen(s), cJSON_IsObject(models), out, n,
                               err, cap);
    free(s);
    return rc;
}

const bursar_model_t *
wcfg_find(const bursar_model_t *models, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

bursar_model_t *
wcfg_merge(const bursar_model_t *own, size_t n_own, const bursar_model_t *ctl,
           size_t n_ctl, size_t *n_out, wcfg_note_fn note, void *ud)
{
    bursar_model_t *ms = bursar_calloc(n_ctl + n_own + 1, sizeof *ms);
    size_t n = 0;
    for (size_t i = 0; i < n_ctl; i++) {
        bursar_model_t *m = &ms[n++];
        const bursar_model_t *o = wcfg_find(own, n_own, ctl[i].name);
        *m = o ? *o : ctl[i];
        if (o) {
            m->price_in_per_mtok = ctl[i].price_in_per_mtok;
            m->price_out_per_mtok = ctl[i].price_out_per_mtok;
            bursar_copy_str(m->health, sizeof m->health, ctl[i].health);
            continue;
        }
        prov_default_endpoint(m);
        if (note)
            note(ud, m);
    }
    for (size_t i = 0; i < n_own; i++)
        if (!wcfg_find(ctl, n_ctl, own[i].name))
            ms[n++] = own[i];
    *n_out = n;
    return ms;
}

void
wcfg_provider_opts(const cJSON *pc, prov_opts_t *p)
{
    p->timeout_ms = wcfg_num(pc, "timeout_ms", p->timeout_ms);
    p->connect_timeout_ms =
        wcfg_num(pc, "connect_timeout_ms", p->connect_timeout_ms);
    p->max_attempts = (int)wcfg_num(pc, "max_attempts", p->max_attempts);
    p->backoff_ms = (int)wcfg_num(pc, "backoff_ms", p->backoff_ms);
    p->backoff_max_ms = (int)wcfg_num(pc, "backoff_max_ms", p->backoff_max_ms);
    p->retry_after_max_ms =
        (int)wcfg_num(pc, "retry_after_max_ms", p->retry_after_max_ms);
    p->max_tokens = (int)wcfg_num(pc, "max_tokens", p->max_tokens);
}
