/*
 * cfg.c - configuration parsing and validation.
 *
 * One pass over the JSON tree: every known key is checked for type and
 * range, every unknown key is reported, and cross-references (a bucket
 * naming a model) are checked after the models are known. Problems are
 * collected rather than returned at the first one.
 */
#include "cfg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "policy.h"
#include "proto.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* The built-in default                                                */

static const char cfg_default_text[] =
    "{\n"
    "  \"listen\": [\"tcp://127.0.0.1:7878\"],\n"
    "  \"models\": {\n"
    "    \"gpt-4o\": {\"provider\": \"openai\", \"model\": \"gpt-4o\",\n"
    "      \"base_url\": \"https://api.openai.com/v1\",\n"
    "      \"api_key_env\": \"OPENAI_API_KEY\",\n"
    "      \"price_in_per_mtok\": 2.5, \"price_out_per_mtok\": 10.0},\n"
    "    \"gpt-4o-mini\": {\"provider\": \"openai\", \"model\": "
    "\"gpt-4o-mini\",\n"
    "      \"base_url\": \"https://api.openai.com/v1\",\n"
    "      \"api_key_env\": \"OPENAI_API_KEY\",\n"
    "      \"price_in_per_mtok\": 0.15, \"price_out_per_mtok\": 0.6},\n"
    "    \"claude-sonnet\": {\"provider\": \"anthropic\",\n"
    "      \"model\": \"claude-3-5-sonnet-latest\",\n"
    "      \"base_url\": \"https://api.anthropic.com/v1\",\n"
    "      \"api_key_env\": \"ANTHROPIC_API_KEY\",\n"
    "      \"price_in_per_mtok\": 3.0, \"price_out_per_mtok\": 15.0},\n"
    "    \"claude-haiku\": {\"provider\": \"anthropic\",\n"
    "      \"model\": \"claude-3-5-haiku-latest\",\n"
    "      \"base_url\": \"https://api.anthropic.com/v1\",\n"
    "      \"api_key_env\": \"ANTHROPIC_API_KEY\",\n"
    "      \"price_in_per_mtok\": 0.8, \"price_out_per_mtok\": 4.0},\n"
    "    \"llama-70b\": {\"provider\": \"openai\",\n"
    "      \"model\": \"meta-llama/Llama-3.3-70B-Instruct-Turbo\",\n"
    "      \"base_url\": \"https://api.together.xyz/v1\",\n"
    "      \"api_key_env\": \"TOGETHER_API_KEY\",\n"
    "      \"price_in_per_mtok\": 0.88, \"price_out_per_mtok\": 0.88}\n"
    "  },\n"
    "  \"buckets\": {\n"
    "    \"code\": {\"models\": [\"gpt-4o\", \"claude-sonnet\", "
    "\"gpt-4o-mini\", \"llama-70b\"],\n"
    "      \"prior\": {\"alpha\": 1, \"beta\": 1}, \"half_life_s\": 604800,\n"
    "      \"expected_tokens_in\": 2000, \"expected_tokens_out\": 800},\n"
    "    \"extraction\": {\"models\": [\"gpt-4o-mini\", \"claude-haiku\", "
    "\"llama-70b\", \"gpt-4o\"],\n"
    "      \"prior\": {\"alpha\": 1, \"beta\": 1}, \"half_life_s\": 604800,\n"
    "      \"expected_tokens_in\": 1500, \"expected_tokens_out\": 300},\n"
    "    \"summarize\": {\"models\": [\"gpt-4o-mini\", \"claude-haiku\", "
    "\"llama-70b\"],\n"
    "      \"prior\": {\"alpha\": 1, \"beta\": 1}, \"half_life_s\": 604800,\n"
    "      \"expected_tokens_in\": 3000, \"expected_tokens_out\": 400},\n"
    "    \"chat\": {\"models\": [\"gpt-4o\", \"gpt-4o-mini\", "
    "\"claude-haiku\", \"llama-70b\"],\n"
    "      \"prior\": {\"alpha\": 1, \"beta\": 1}, \"half_life_s\": 604800,\n"
    "      \"latency_slo_ms\": 8000,\n"
    "      \"expected_tokens_in\": 800, \"expected_tokens_out\": 400}\n"
    "  },\n"
    "  \"unknown_bucket\": {\"action\": \"error\"},\n"
    "  \"budget\": {\"limit_usd\": 50, \"window_s\": 86400},\n"
    "  \"explore_floor\": 0.02,\n"
    "  \"decision_ttl_s\": 3600,\n"
    "  \"expiry\": {\"outcome\": \"none\", \"cost\": \"expected\"},\n"
    "  \"policy\": {\"name\": \"ts-budget\"}\n"
    "}\n";

const char *
cfg_default_json(void)
{
    return cfg_default_text;
}

/* ------------------------------------------------------------------ */
/* Problems                                                            */

static void
cfg_problem(cfg_problems_t *pr, const char *path, const char *fmt, ...)
{
    if (!pr)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *line = bursar_sprintf("%s: %s", path, msg);
    pr->msg = bursar_realloc(pr->msg, (pr->n + 1) * sizeof *pr->msg);
    pr->msg[pr->n++] = line;
}

void
cfg_problems_clear(cfg_problems_t *pr)
{
    if (!pr)
        return;
    for (size_t i = 0; i < pr->n; i++)
        free(pr->msg[i]);
    free(pr->msg);
    pr->msg = NULL;
    pr->n = 0;
}

/* A parse context: the problem sink and a count of problems found. */
typedef struct cfg_ctx {
    cfg_problems_t *pr;
    size_t errors;
} cfg_ctx_t;

#define CFG_ERR(cx, path, ...)                                                 \
    do {                                                                       \
        (cx)->errors++;                                                        \
        cfg_problem((cx)->pr, (path), __VA_ARGS__);                            \
    } while (0)

/* parent.key into buf (truncated to n - 1 bytes). */
static void
cfg_path(char *buf, size_t n, const char *parent, const char *key)
{
    size_t pl = strlen(parent), kl = strlen(key), o = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < pl && o + 1 < n; i++)
        buf[o++] = parent[i];
    if (o + 1 < n)
        buf[o++] = '.';
    for (size_t i = 0; i < kl && o + 1 < n; i++)
        buf[o++] = key[i];
    buf[o] = '\0';
}

/* Reports every member of obj whose name is not in allowed (NULL ended). */
static void
cfg_check_keys(cfg_ctx_t *cx, const cJSON *obj, const char *path,
               const char *const *allowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, it->string) == 0)
                ok = 1;
        if (!ok) {
            char p[512];
            cfg_path(p, sizeof p, path, it->string);
            CFG_ERR(cx, p, "unknown key \"%s\"", it->string);
        }
    }
}

/* Range flags for cfg_number. */
#define CFG_GE0  1 /* >= 0 */
#define CFG_GT0  2 /* > 0 */
#define CFG_UNIT 4 /* in [0, 1] */
#define CFG_INT  8 /* integral */

/* Reads obj.key as a number into *out (left untouched when absent).
 * Returns 1 if present and valid, 0 if absent, -1 if invalid. */
static int
cfg_number(cfg_ctx_t *cx, const cJSON *obj, const char *path, const char *key,
           unsigned flags, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        return 0;
    char p[512];
    cfg_path(p, sizeof p, path, key);
    if (!cJSON_IsNumber(j)) {
        CFG_ERR(cx, p, "must be a number, got %s", proto_type_name(j));
        return -1;
    }
    double v = j->valuedouble;
    if (!isfinite(v)) {
        CFG_ERR(cx, p, "must be finite");
        return -1;
    }
    if ((flags & CFG_GE0) && v < 0) {
        CFG_ERR(cx, p, "must not be negative, got %g", v);
        return -1;
    }
    if ((flags & CFG_GT0) && v <= 0) {
        CFG_ERR(cx, p, "must be positive, got %g", v);
        return -1;
    }
    if ((flags & CFG_UNIT) && (v < 0 || v > 1)) {
        CFG_ERR(cx, p, "must be in [0, 1], got %g", v);
        return -1;
    }
    if ((flags & CFG_INT) && (v != floor(v) || v > 1e15)) {
        CFG_ERR(cx, p, "must be a whole number, got %g", v);
        return -1;
    }
    if (v > CFG_MAX_EXPIRY_S * 1e3) {
        CFG_ERR(cx, p, "is too large: %g", v);
        return -1;
    }
    *out = v;
    return 1;
}

/* Reads obj.key as a string; returns a borrowed pointer, or NULL (absent or
 * invalid; invalid is reported). */
static const char *
cfg_string(cfg_ctx_t *cx, const cJSON *obj, const char *path, const char *key,
           int required)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[512];
    cfg_path(p, sizeof p, path, key);
    if (!j) {
        if (required)
            CFG_ERR(cx, p, "is required");
        return NULL;
    }
    if (!cJSON_IsString(j)) {
        CFG_ERR(cx, p, "must be a string, got %s", proto_type_name(j));
        return NULL;
    }
    return j->valuestring;
}

/* Returns obj.key if it is an object, NULL if absent or not an object (the
 * latter reported). */
static const cJSON *
cfg_object(cfg_ctx_t *cx, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        return NULL;
    if (!cJSON_IsObject(j)) {
        char p[512];
        cfg_path(p, sizeof p, path, key);
        CFG_ERR(cx, p, "must be an object, got %s", proto_type_name(j));
        return NULL;
    }
    return j;
}

static int
cfg_name_ok(cfg_ctx_t *cx, const char *path, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= CFG_NAME_MAX) {
        CFG_ERR(cx, path, "name must have 1 to %d bytes", CFG_NAME_MAX - 1);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f) {
            CFG_ERR(cx, path, "name must not hold control characters");
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

static void
cfg_parse_budget(cfg_ctx_t *cx, const cJSON *j, const char *path,
                 cfg_budget_t *b, double *prior_rate)
{
    static const char *const keys_rate[] = {"limit_usd", "window_s",
                                            "prior_rate_per_s", NULL};
    static const char *const keys[] = {"limit_usd", "window_s", NULL};
    cfg_check_keys(cx, j, path, prior_rate ? keys_rate : keys);
    cfg_number(cx, j, path, "limit_usd", CFG_GE0, &b->limit_usd);
    cfg_number(cx, j, path, "window_s", CFG_GT0, &b->window_s);
    if (prior_rate)
        cfg_number(cx, j, path, "prior_rate_per_s", CFG_GT0, prior_rate);
}

/* Parses a bucket body (also the unknown-bucket template). */
static void
cfg_parse_bucket(cfg_ctx_t *cx, cfg_t *c, const cJSON *j, const char *path,
                 cfg_bucket_t *b)
{
    static const char *const keys[] = {"models",
                                       "prior",
                                       "half_life_s",
                                       "latency_slo_ms",
                                       "budget",
                                       "expected_tokens_in",
                                       "expected_tokens_out",
                                       NULL};
    char p[512];
    cfg_check_keys(cx, j, path, keys);
    b->prior_alpha = 1;
    b->prior_beta = 1;
    b->expected_tokens_in = 1000;
    b->expected_tokens_out = 500;

    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "models");
    cfg_path(p, sizeof p, path, "models");
    if (!ms) {
        CFG_ERR(cx, p, "is required");
    } else if (!cJSON_IsArray(ms)) {
        CFG_ERR(cx, p, "must be an array of model names, got %s",
                proto_type_name(ms));
    } else if (cJSON_GetArraySize(ms) == 0) {
        CFG_ERR(cx, p, "must name at least one model");
    } else {
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, ms)
        {
            char pi[560];
            snprintf(pi, sizeof pi, "%s[%d]", p, i++);
            if (!cJSON_IsString(m)) {
                CFG_ERR(cx, pi, "must be a model name, got %s",
                        proto_type_name(m));
                continue;
            }
            int id = cfg_model_find(c, m->valuestring);
            if (id < 0) {
                CFG_ERR(cx, pi, "unknown model \"%s\" (not in $.models)",
                        m->valuestring);
                continue;
            }
            int dup = 0;
            for (size_t k = 0; k < b->n_models; k++)
                if (b->models[k] == id)
                    dup = 1;
            if (dup) {
                CFG_ERR(cx, pi, "model \"%s\" is listed twice", m->valuestring);
                continue;
            }
            if (b->n_models >= CFG_MAX_ARMS) {
                CFG_ERR(cx, pi, "more than %d models", CFG_MAX_ARMS);
                break;
            }
            b->models[b->n_models++] = id;
        }
    }

    const cJSON *prior = cfg_object(cx, j, path, "prior");
    if (prior) {
        static const char *const pk[] = {"alpha", "beta", NULL};
        cfg_path(p, sizeof p, path, "prior");
        cfg_check_keys(cx, prior, p, pk);
        cfg_number(cx, prior, p, "alpha", CFG_GT0, &b->prior_alpha);
        cfg_number(cx, prior, p, "beta", CFG_GT0, &b->prior_beta);
    }
    cfg_number(cx, j, path, "half_life_s", CFG_GE0, &b->half_life_s);
    cfg_number(cx, j, path, "latency_slo_ms", CFG_GE0, &b->latency_slo_ms);
    cfg_number(cx, j, path, "expected_tokens_in", CFG_GE0,
               &b->expected_tokens_in);
    cfg_number(cx, j, path, "expected_tokens_out", CFG_GE0,
               &b->expected_tokens_out);
    const cJSON *bud = cfg_object(cx, j, path, "budget");
    if (bud) {
        cfg_path(p, sizeof p, path, "budget");
        b->has_budget = 1;
        b->budget.limit_usd = 0;
        b->budget.window_s = c->budget.window_s;
        if (!cJSON_GetObjectItemCaseSensitive(bud, "limit_usd"))
            CFG_ERR(cx, p, "limit_usd is required");
        cfg_parse_budget(cx, bud, p, &b->budget, NULL);
    }
    if (b->n_models > 0 && c->explore_floor * (double)b->n_models > 1.0 + 1e-12)
        CFG_ERR(cx, path,
                "explore_floor %g times %zu models exceeds 1 (the floor "
                "cannot hold for every arm)",
                c->explore_floor, b->n_models);
}

static void
cfg_parse_model(cfg_ctx_t *cx, const cJSON *j, const char *path, cfg_model_t *m)
{
    static const char *const keys[] = {"provider",
                                       "model",
                                       "base_url",
                                       "api_key_env",
                                       "price_in_per_mtok",
                                       "price_out_per_mtok",
                                       NULL};
    char p[512];
    cfg_check_keys(cx, j, path, keys);
    const char *prov = cfg_string(cx, j, path, "provider", 1);
    if (prov) {
        if (strcmp(prov, "openai") == 0)
            m->provider = CFG_PROVIDER_OPENAI;
        else if (strcmp(prov, "anthropic") == 0)
            m->provider = CFG_PROVIDER_ANTHROPIC;
        else {
            cfg_path(p, sizeof p, path, "provider");
            CFG_ERR(cx, p, "must be \"openai\" or \"anthropic\", got \"%s\"",
                    prov);
        }
    }
    const char *s = cfg_string(cx, j, path, "model", 0);
    m->model = bursar_strdup(s ? s : m->name);
    s = cfg_string(cx, j, path, "base_url", 0);
    if (!s)
        s = m->provider == CFG_PROVIDER_ANTHROPIC
                ? "https://api.anthropic.com/v1"
                : "https://api.openai.com/v1";
    m->base_url = bursar_strdup(s);
    s = cfg_string(cx, j, path, "api_key_env", 0);
    m->api_key_env = bursar_strdup(s ? s : "");
    if (cfg_number(cx, j, path, "price_in_per_mtok", CFG_GE0,
                   &m->price_in_per_mtok) == 0) {
        cfg_path(p, sizeof p, path, "price_in_per_mtok");
        CFG_ERR(cx, p, "is required");
    }
    if (cfg_number(cx, j, path, "price_out_per_mtok", CFG_GE0,
                   &m->price_out_per_mtok) == 0) {
        cfg_path(p, sizeof p, path, "price_out_per_mtok");
        CFG_ERR(cx, p, "is required");
    }
}

static void
cfg_set_defaults(cfg_t *c)
{
    c->unknown_action = CFG_UNKNOWN_ERROR;
    c->max_buckets = 1024;
    c->budget.limit_usd = 0;
    c->budget.window_s = 86400;
    c->budget_prior_rate = 1.0;
    c->explore_floor = 0.0;
    c->decision_ttl_s = 3600;
    c->expiry_outcome = CFG_EXPIRY_NONE;
    c->expiry_cost = CFG_EXPIRY_COST_EXPECTED;
    snprintf(c->policy_name, sizeof c->policy_name, "ts-budget");
    c->dual_step = 0.01;
    c->seed = 0;
    c->health_failures = 3;
    c->health_cooldown_s = 30;
    c->health_max_cooldown_s = 600;
    c->latency_window_s = 300;
    c->latency_quantile = 0.95;
    c->latency_min_samples = 5;
    c->map_size_mb = 8192;
    c->nometasync = 0;
    c->batch_max = 512;
    c->retention_s = 30 * 86400.0;
    c->max_message_bytes = 65536;
}

static void
cfg_parse_root(cfg_ctx_t *cx, cfg_t *c, const cJSON *root)
{
    static const char *const keys[] = {
        "listen",        "state_dir",      "models",
        "buckets",       "unknown_bucket", "budget",
        "explore_floor", "decision_ttl_s", "expiry",
        "policy",        "health",         "latency",
        "store",         "limits",         NULL};
    char p[512];
    double v;
    cfg_check_keys(cx, root, "$", keys);

    /* listen */
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(root, "listen");
    if (!ls) {
        c->listen[c->n_listen++] = bursar_strdup("tcp://127.0.0.1:7878");
    } else if (!cJSON_IsArray(ls) || cJSON_GetArraySize(ls) == 0) {
        CFG_ERR(cx, "$.listen", "must be a non-empty array of endpoints");
    } else {
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ls)
        {
            snprintf(p, sizeof p, "$.listen[%d]", i++);
            if (!cJSON_IsString(e)) {
                CFG_ERR(cx, p, "must be a string, got %s", proto_type_name(e));
                continue;
            }
            if (strncmp(e->valuestring, "tcp://", 6) != 0 &&
                strncmp(e->valuestring, "ipc://", 6) != 0) {
                CFG_ERR(cx, p,
                        "endpoint \"%s\" must start with tcp:// or "
                        "ipc://",
                        e->valuestring);
                continue;
            }
            if (c->n_listen >= CFG_MAX_LISTEN) {
                CFG_ERR(cx, p, "more than %d endpoints", CFG_MAX_LISTEN);
                break;
            }
            c->listen[c->n_listen++] = bursar_strdup(e->valuestring);
        }
    }

    const char *sd = cfg_string(cx, root, "$", "state_dir", 0);
    if (sd)
        c->state_dir = bursar_strdup(sd);

    /* Scalars first: the buckets' floor check needs explore_floor. */
    cfg_number(cx, root, "$", "explore_floor", CFG_UNIT, &c->explore_floor);
    cfg_number(cx, root, "$", "decision_ttl_s", CFG_GT0, &c->decision_ttl_s);

    const cJSON *bud = cfg_object(cx, root, "$", "budget");
    if (bud)
        cfg_parse_budget(cx, bud, "$.budget", &c->budget,
                         &c->budget_prior_rate);

    /* models */
    const cJSON *ms = cfg_object(cx, root, "$", "models");
    if (!cJSON_GetObjectItemCaseSensitive(root, "models"))
        CFG_ERR(cx, "$.models", "is required");
    if (ms) {
        size_t n = (size_t)cJSON_GetArraySize(ms);
        c->models = bursar_calloc(n ? n : 1, sizeof *c->models);
        const cJSON *m;
        cJSON_ArrayForEach(m, ms)
        {
            cfg_path(p, sizeof p, "$.models", m->string);
            if (!cfg_name_ok(cx, p, m->string))
                continue;
            if (!cJSON_IsObject(m)) {
                CFG_ERR(cx, p, "must be an object, got %s", proto_type_name(m));
                continue;
            }
            if (cfg_model_find(c, m->string) >= 0) {
                CFG_ERR(cx, p, "defined twice");
                continue;
            }
            cfg_model_t *cm = &c->models[c->n_models++];
            snprintf(cm->name, sizeof cm->name, "%s", m->string);
            cfg_parse_model(cx, m, p, cm);
        }
        if (n == 0)
            CFG_ERR(cx, "$.models", "must define at least one model");
    }

    /* buckets */
    const cJSON *bs = cfg_object(cx, root, "$", "buckets");
    if (!cJSON_GetObjectItemCaseSensitive(root, "buckets"))
        CFG_ERR(cx, "$.buckets", "is required");
    if (bs) {
        size_t n = (size_t)cJSON_GetArraySize(bs);
        c->buckets = bursar_calloc(n ? n : 1, sizeof *c->buckets);
        const cJSON *b;
        cJSON_ArrayForEach(b, bs)
        {
            cfg_path(p, sizeof p, "$.buckets", b->string);
            if (!cfg_name_ok(cx, p, b->string))
                continue;
            if (!cJSON_IsObject(b)) {
                CFG_ERR(cx, p, "must be an object, got %s", proto_type_name(b));
                continue;
            }
            int twice = 0;
            for (size_t k = 0; k < c->n_buckets; k++)
                twice |= strcmp(c->buckets[k].name, b->string) == 0;
            if (twice) {
                CFG_ERR(cx, p, "defined twice");
                continue;
            }
            cfg_bucket_t *cb = &c->buckets[c->n_buckets++];
            snprintf(cb->name, sizeof cb->name, "%s", b->string);
            cfg_parse_bucket(cx, c, b, p, cb);
        }
    }

    /* unknown_bucket */
    const cJSON *ub = cfg_object(cx, root, "$", "unknown_bucket");
    if (ub) {
        static const char *const uk[] = {"action", "template", "max_buckets",
                                         NULL};
        cfg_check_keys(cx, ub, "$.unknown_bucket", uk);
        const char *a = cfg_string(cx, ub, "$.unknown_bucket", "action", 1);
        if (a) {
            if (strcmp(a, "error") == 0)
                c->unknown_action = CFG_UNKNOWN_ERROR;
            else if (strcmp(a, "create") == 0)
                c->unknown_action = CFG_UNKNOWN_CREATE;
            else
                CFG_ERR(cx, "$.unknown_bucket.action",
                        "must be \"error\" or \"create\", got \"%s\"", a);
        }
        const cJSON *t = cfg_object(cx, ub, "$.unknown_bucket", "template");
        if (t)
            cfg_parse_bucket(cx, c, t, "$.unknown_bucket.template",
                             &c->bucket_template);
        else if (c->unknown_action == CFG_UNKNOWN_CREATE)
            CFG_ERR(cx, "$.unknown_bucket.template",
                    "is required when action is \"create\"");
        v = (double)c->max_buckets;
        if (cfg_number(cx, ub, "$.unknown_bucket", "max_buckets",
                       CFG_GT0 | CFG_INT, &v) > 0) {
            c->max_buckets = (size_t)v;
            if (c->max_buckets < c->n_buckets)
                CFG_ERR(cx, "$.unknown_bucket.max_buckets",
                        "is %zu, below the %zu configured buckets",
                        c->max_buckets, c->n_buckets);
        }
    }
    if (c->n_buckets > c->max_buckets)
        c->max_buckets = c->n_buckets;

    /* expiry */
    const cJSON *ex = cfg_object(cx, root, "$", "expiry");
    if (ex) {
        static const char *const ek[] = {"outcome", "cost", NULL};
        cfg_check_keys(cx, ex, "$.expiry", ek);
        const char *o = cfg_string(cx, ex, "$.expiry", "outcome", 0);
        if (o) {
            if (strcmp(o, "none") == 0)
                c->expiry_outcome = CFG_EXPIRY_NONE;
            else if (strcmp(o, "failure") == 0)
                c->expiry_outcome = CFG_EXPIRY_FAILURE;
            else
                CFG_ERR(cx, "$.expiry.outcome",
                        "must be \"none\" or \"failure\", got \"%s\"", o);
        }
        const char *co = cfg_string(cx, ex, "$.expiry", "cost", 0);
        if (co) {
            if (strcmp(co, "expected") == 0)
                c->expiry_cost = CFG_EXPIRY_COST_EXPECTED;
            else if (strcmp(co, "zero") == 0)
                c->expiry_cost = CFG_EXPIRY_COST_ZERO;
            else
                CFG_ERR(cx, "$.expiry.cost",
                        "must be \"expected\" or \"zero\", got \"%s\"", co);
        }
    }

    /* policy */
    const cJSON *po = cfg_object(cx, root, "$", "policy");
    if (po) {
        static const char *const pk[] = {"name", "dual_step", "seed", NULL};
        cfg_check_keys(cx, po, "$.policy", pk);
        const char *nm = cfg_string(cx, po, "$.policy", "name", 0);
        if (nm) {
            if (strlen(nm) >= CFG_NAME_MAX)
                CFG_ERR(cx, "$.policy.name", "is too long");
            else
                snprintf(c->policy_name, sizeof c->policy_name, "%s", nm);
        }
        policy_kind_t kind;
        const char *fixed = NULL;
        if (policy_kind_parse(c->policy_name, &kind, &fixed) != 0)
            CFG_ERR(cx, "$.policy.name",
                    "unknown policy \"%s\" (ts, ts-budget, uniform, "
                    "eps-greedy, ucb1, cheapest, strongest, fixed:MODEL)",
                    c->policy_name);
        else if (fixed && cfg_model_find(c, fixed) < 0)
            CFG_ERR(cx, "$.policy.name", "fixed: unknown model \"%s\"", fixed);
        cfg_number(cx, po, "$.policy", "dual_step", CFG_GE0, &c->dual_step);
        v = 0;
        if (cfg_number(cx, po, "$.policy", "seed", CFG_GE0 | CFG_INT, &v) > 0)
            c->seed = (unsigned long)v;
    }
    {
        policy_kind_t kind;
        const char *fixed = NULL;
        if (policy_kind_parse(c->policy_name, &kind, &fixed) == 0 &&
            kind == POLICY_TS_BUDGET && !(c->dual_step > 0))
            CFG_ERR(cx, "$.policy.dual_step",
                    "must be > 0 with ts-budget (the budget multiplier "
                    "would never move)");
    }
    /* A bucket's cap above the global one is never the binding cap. */
    for (size_t k = 0; k < c->n_buckets; k++) {
        const cfg_bucket_t *cb = &c->buckets[k];
        if (cb->has_budget && c->budget.limit_usd > 0 &&
            cb->budget.limit_usd > c->budget.limit_usd) {
            char bp[512];
            cfg_path(bp, sizeof bp, "$.buckets", cb->name);
            CFG_ERR(cx, bp,
                    "budget.limit_usd %g exceeds the global limit_usd %g",
                    cb->budget.limit_usd, c->budget.limit_usd);
        }
    }

    /* health */
    const cJSON *he = cfg_object(cx, root, "$", "health");
    if (he) {
        static const char *const hk[] = {"failures", "cooldown_s",
                                         "max_cooldown_s", NULL};
        cfg_check_keys(cx, he, "$.health", hk);
        v = c->health_failures;
        if (cfg_number(cx, he, "$.health", "failures", CFG_GT0 | CFG_INT, &v) >
            0)
            c->health_failures = (unsigned)v;
        cfg_number(cx, he, "$.health", "cooldown_s", CFG_GT0,
                   &c->health_cooldown_s);
        cfg_number(cx, he, "$.health", "max_cooldown_s", CFG_GT0,
                   &c->health_max_cooldown_s);
        if (c->health_max_cooldown_s < c->health_cooldown_s)
            CFG_ERR(cx, "$.health.max_cooldown_s",
                    "must be at least cooldown_s (%g)", c->health_cooldown_s);
    }

    /* latency */
    const cJSON *la = cfg_object(cx, root, "$", "latency");
    if (la) {
        static const char *const lk[] = {"window_s", "quantile", "min_samples",
                                         NULL};
        cfg_check_keys(cx, la, "$.latency", lk);
        cfg_number(cx, la, "$.latency", "window_s", CFG_GT0,
                   &c->latency_window_s);
        if (cfg_number(cx, la, "$.latency", "quantile", CFG_UNIT,
                       &c->latency_quantile) > 0 &&
            c->latency_quantile <= 0)
            CFG_ERR(cx, "$.latency.quantile", "must be above 0");
        v = c->latency_min_samples;
        if (cfg_number(cx, la, "$.latency", "min_samples", CFG_GT0 | CFG_INT,
                       &v) > 0)
            c->latency_min_samples = (unsigned)v;
    }

    /* store */
    const cJSON *st = cfg_object(cx, root, "$", "store");
    if (st) {
        static const char *const sk[] = {"map_size_mb", "sync", "batch_max",
                                         "retention_s", NULL};
        cfg_check_keys(cx, st, "$.store", sk);
        v = (double)c->map_size_mb;
        if (cfg_number(cx, st, "$.store", "map_size_mb", CFG_GT0 | CFG_INT,
                       &v) > 0)
            c->map_size_mb = (size_t)v;
        const char *sy = cfg_string(cx, st, "$.store", "sync", 0);
        if (sy) {
            if (strcmp(sy, "full") == 0)
                c->nometasync = 0;
            else if (strcmp(sy, "nometasync") == 0)
                c->nometasync = 1;
            else
                CFG_ERR(cx, "$.store.sync",
                        "must be \"full\" or \"nometasync\", got \"%s\"", sy);
        }
        v = (double)c->batch_max;
        if (cfg_number(cx, st, "$.store", "batch_max", CFG_GT0 | CFG_INT, &v) >
            0)
            c->batch_max = (size_t)v;
        cfg_number(cx, st, "$.store", "retention_s", CFG_GT0, &c->retention_s);
    }
    if (c->retention_s < c->decision_ttl_s)
        CFG_ERR(cx, "$.store.retention_s",
                "must be at least decision_ttl_s (%g)", c->decision_ttl_s);

    /* limits */
    const cJSON *li = cfg_object(cx, root, "$", "limits");
    if (li) {
        static const char *const lk[] = {"max_message_bytes", NULL};
        cfg_check_keys(cx, li, "$.limits", lk);
        v = (double)c->max_message_bytes;
        if (cfg_number(cx, li, "$.limits", "max_message_bytes",
                       CFG_GT0 | CFG_INT, &v) > 0) {
            if (v < 256 || v > 64.0 * 1024 * 1024)
                CFG_ERR(cx, "$.limits.max_message_bytes",
                        "must be in [256, 67108864], got %g", v);
            else
                c->max_message_bytes = (size_t)v;
        }
    }
}

int
cfg_parse(const char *json, size_t len, cfg_t **out, cfg_problems_t *pr)
{
    *out = NULL;
    cfg_ctx_t cx = {pr, 0};
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at ? (long)(at - json) : -1;
        if (off >= 0 && (size_t)off <= len) {
            /* line and column of the error */
            long line = 1, col = 1;
            for (long i = 0; i < off; i++) {
                if (json[i] == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            CFG_ERR(&cx, "$", "invalid JSON near line %ld column %ld", line,
                    col);
        } else {
            CFG_ERR(&cx, "$", "invalid JSON");
        }
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        CFG_ERR(&cx, "$", "must be an object, got %s", proto_type_name(root));
        cJSON_Delete(root);
        return -1;
    }
    cfg_t *c = bursar_calloc(1, sizeof *c);
    cfg_set_defaults(c);
    cfg_parse_root(&cx, c, root);
    cJSON_Delete(root);
    if (cx.errors) {
        cfg_destroy(&c);
        return -1;
    }
    *out = c;
    return 0;
}

int
cfg_load_file(const char *path, cfg_t **out, cfg_problems_t *pr)
{
    *out = NULL;
    size_t len = 0;
    char *text = NULL;
    if (bursar_read_file(path, &text, &len) != 0) {
        cfg_ctx_t cx = {pr, 0};
        CFG_ERR(&cx, "$", "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = cfg_parse(text, len, out, pr);
    free(text);
    return rc;
}

void
cfg_destroy(cfg_t **cp)
{
    if (!cp || !*cp)
        return;
    cfg_t *c = *cp;
    for (size_t i = 0; i < c->n_listen; i++)
        free(c->listen[i]);
    free(c->state_dir);
    for (size_t i = 0; i < c->n_models; i++) {
        free(c->models[i].model);
        free(c->models[i].base_url);
        free(c->models[i].api_key_env);
    }
    free(c->models);
    free(c->buckets);
    free(c);
    *cp = NULL;
}

int
cfg_model_find(const cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return (int)i;
    return -1;
}

int
cfg_bucket_find(const cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_buckets; i++)
        if (strcmp(c->buckets[i].name, name) == 0)
            return (int)i;
    return -1;
}

double
cfg_model_cost(const cfg_model_t *m, double tokens_in, double tokens_out)
{
    return (tokens_in * m->price_in_per_mtok +
            tokens_out * m->price_out_per_mtok) /
           1e6;
}
