/*
 * cfg.c - configuration parsing and validation, driven by one table.
 *
 * cfg_keys lists every key of the configuration: its JSON path, type,
 * range, default, the field it fills and one line of meaning. The parser
 * walks the JSON tree against it (types, ranges, required and unknown
 * keys, defaults), cfg_print_reference prints it as the reference in
 * docs/controller.md, and what a table cannot say (a bucket naming an
 * unknown model, a bucket cap above the global one, dual_step 0 with
 * ts-budget, ...) is checked by the small functions after the walk.
 * Problems are collected rather than returned at the first one.
 */
#include "controller/cfg.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "policies/policy.h"
#include "agents/proto.h"
#include "agents/webd.h"
#include "controller/util.h"

_Static_assert(CFG_TENANT_MAX == PROTO_TENANT_MAX,
               "a configured tenant is a tenant of the protocol");

#define CFG_LISTEN_DEFAULT "tcp://127.0.0.1:7878"
/* The providers' public URLs: the codec's (proto.h), one definition. */
#define CFG_OPENAI_URL    PROTO_OPENAI_URL
#define CFG_ANTHROPIC_URL PROTO_ANTHROPIC_URL

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

static void cfg_problem(cfg_problems_t *pr, const char *path, const char *fmt,
                        ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

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

/* ------------------------------------------------------------------ */
/* The table of keys                                                   */

typedef struct cfg_ctx cfg_ctx_t;

typedef enum cfg_type {
    CFG_NUMBER,  /* double */
    CFG_INTEGER, /* unsigned, unsigned long or size_t: a whole number */
    CFG_BOOL,    /* int, 0 or 1 */
    CFG_STRING,  /* char * (owned), or char[size] when .inline_str */
    CFG_ENUM,    /* an int-sized enum: the index of the value in .names */
    CFG_OBJECT,  /* holds the keys below its path (below .like if set) */
    CFG_MAP,     /* name -> object holding the keys below PATH.* (.add) */
    CFG_ARRAY    /* each element checked and stored by .item */
} cfg_type_t;

/* .flags */
#define CFG_REQUIRED   1u /* absent (with its parent present): a problem */
#define CFG_NO_DEFAULT 2u /* .def not applied: computed after the walk */

/* .range: the bounds of a number, or of the count of an array or map. */
#define CFG_HAS_MIN  1u
#define CFG_MIN_OPEN 2u /* min itself excluded */
#define CFG_HAS_MAX  4u
#define CFG_MAX_OPEN 8u

/* CFG_ARRAY: checks element e (at JSON path `path`) and stores it into the
 * struct at base. */
typedef void cfg_item_fn(cfg_ctx_t *cx, const cJSON *e, const char *path,
                         void *base);
/* CFG_MAP: a new zeroed element called name (the map has n members), or
 * NULL if name is defined twice. */
typedef void *cfg_add_fn(cfg_ctx_t *cx, const char *name, size_t n);

typedef struct cfg_key {
    const char *path; /* "budget.limit_usd"; "*" stands for a name */
    cfg_type_t type;
    unsigned flags; /* CFG_REQUIRED, CFG_NO_DEFAULT */
    /* The field (CFG_FIELD) in its struct: cfg_model_t below "models.*",
     * cfg_bucket_t below "buckets.*", cfg_tenant_t below "tenants.*",
     * cfg_t elsewhere. An object with
     * .like: the struct that holds its keys; without: an int set to 1
     * when the object is present (size 0: none). */
    size_t off, size;
    int inline_str;           /* CFG_STRING in a char array */
    unsigned range;           /* CFG_HAS_MIN ... */
    double min, max;          /* the bounds */
    double def;               /* default: number, integer, bool, enum index */
    const char *def_str;      /* default string; NULL: none */
    const char *def_doc;      /* the default as documented, when computed */
    const char *const *names; /* CFG_ENUM, NULL ended */
    const char *like;         /* CFG_OBJECT: holds the keys below this path */
    const char *noun;         /* an element of an array or map; a like */
    cfg_item_fn *item;        /* CFG_ARRAY */
    cfg_add_fn *add;          /* CFG_MAP */
    const char *doc; /* meaning, one line; NULL: not in the reference */
} cfg_key_t;

/* .off and .size of field F of struct S, checked at compile time to be of
 * type T: a row naming the wrong field does not build. */
#define CFG_FIELD(S, F, T)                                                     \
    .off = offsetof(S, F) + 0 * sizeof(_Generic(&((S *)0)->F, T * : 1)),       \
    .size = sizeof(((S *)0)->F)
#define CFG_C(F, T) CFG_FIELD(cfg_t, F, T)
#define CFG_M(F, T) CFG_FIELD(cfg_model_t, F, T)
#define CFG_B(F, T) CFG_FIELD(cfg_bucket_t, F, T)
#define CFG_T(F, T) CFG_FIELD(cfg_tenant_t, F, T)
/* A char array field of cfg_t. */
#define CFG_C_BUF(F)                                                           \
    .off = offsetof(cfg_t, F) +                                                \
           0 * sizeof(_Generic(&((cfg_t *)0)->F,                               \
                               char(*)[sizeof(((cfg_t *)0)->F)] : 1)),         \
    .size = sizeof(((cfg_t *)0)->F), .inline_str = 1

#define CFG_GE(a) .range = CFG_HAS_MIN, .min = (a)
/* A string of at most n bytes (what the wire codec carries: proto.h). */
#define CFG_LEN(n) .range = CFG_HAS_MAX, .max = (n)
/* ... and at least one byte */
#define CFG_LEN1(n)  .range = CFG_HAS_MIN | CFG_HAS_MAX, .min = 1, .max = (n)
#define CFG_GT(a)    .range = CFG_HAS_MIN | CFG_MIN_OPEN, .min = (a)
#define CFG_IN(a, b) .range = CFG_HAS_MIN | CFG_HAS_MAX, .min = (a), .max = (b)
#define CFG_IN_OPEN_CLOSED(a, b)                                               \
    .range = CFG_HAS_MIN | CFG_MIN_OPEN | CFG_HAS_MAX, .min = (a), .max = (b)

static const char *const cfg_provider_names[] = {"openai", "anthropic", NULL};
static const char *const cfg_unknown_names[] = {"error", "create", NULL};
static const char *const cfg_outcome_names[] = {"none", "failure", NULL};
static const char *const cfg_cost_names[] = {"expected", "zero", NULL};
static const char *const cfg_sync_names[] = {"full", "nometasync", NULL};
static const char *const cfg_exhausted_names[] = {"serve_cheapest", "refuse",
                                                  NULL};

static cfg_item_fn cfg_listen_item, cfg_bucket_model_item,
    cfg_metrics_allow_item;
static cfg_add_fn cfg_add_model, cfg_add_bucket, cfg_add_tenant;

/* The order of the rows is the order of the reference and of the walk:
 * models are read before the buckets that name them. */
static const cfg_key_t cfg_keys[] = {
    {.path = "listen",
     .type = CFG_ARRAY,
     CFG_IN(1, CFG_MAX_LISTEN),
     .noun = "endpoints",
     .item = cfg_listen_item,
     .def_doc = "`[\"" CFG_LISTEN_DEFAULT "\"]`",
     .doc = "endpoints to bind (`tcp://`, `ipc://`)"},
    {.path = "state_dir",
     .type = CFG_STRING,
     CFG_C(state_dir, char *),
     .doc = "LMDB directory (see the precedence under Running)"},

    {.path = "models",
     .type = CFG_MAP,
     .flags = CFG_REQUIRED,
     CFG_GE(1),
     .noun = "model",
     .add = cfg_add_model,
     .doc = "the models, by name"},
    {.path = "models.*.provider",
     .type = CFG_ENUM,
     .flags = CFG_REQUIRED,
     CFG_M(provider, cfg_provider_t),
     .names = cfg_provider_names,
     .doc = "`openai`: any OpenAI-compatible API; `anthropic`"},
    {.path = "models.*.model",
     .type = CFG_STRING,
     .flags = CFG_NO_DEFAULT,
     CFG_M(model, char *),
     CFG_LEN1(PROTO_MODEL_ID_MAX - 1), /* the codec carries no empty id */
     .def_doc = "the model's name",
     .doc = "the provider's model id"},
    {.path = "models.*.base_url",
     .type = CFG_STRING,
     .flags = CFG_NO_DEFAULT,
     CFG_M(base_url, char *),
     CFG_LEN(PROTO_URL_MAX - 1),
     .def_doc = "`" CFG_OPENAI_URL "` or `" CFG_ANTHROPIC_URL "`, by provider",
     .doc = "API base URL, for `bursar-agent --models` reading this file; "
            "bursard never sends it (docs/security.md)"},
    {.path = "models.*.api_key_env",
     .type = CFG_STRING,
     CFG_M(api_key_env, char *),
     CFG_LEN(PROTO_NAME_MAX - 1),
     .def_str = "",
     .doc = "name of the environment variable holding the key, for "
            "`bursar-agent --models`; bursard never sends it, and the key "
            "itself never enters a configuration or the protocol"},
    {.path = "models.*.price_in_per_mtok",
     .type = CFG_NUMBER,
     .flags = CFG_REQUIRED,
     CFG_M(price_in_per_mtok, double),
     CFG_GE(0),
     .doc = "USD per million input tokens"},
    {.path = "models.*.price_out_per_mtok",
     .type = CFG_NUMBER,
     .flags = CFG_REQUIRED,
     CFG_M(price_out_per_mtok, double),
     CFG_GE(0),
     .doc = "USD per million output tokens"},

    {.path = "buckets",
     .type = CFG_MAP,
     .flags = CFG_REQUIRED,
     .noun = "bucket",
     .add = cfg_add_bucket,
     .doc = "the intent buckets, by name"},
    {.path = "buckets.*.models",
     .type = CFG_ARRAY,
     .flags = CFG_REQUIRED,
     CFG_IN(1, CFG_MAX_ARMS),
     .noun = "model names",
     .item = cfg_bucket_model_item,
     .doc = "the arms: names from `models`, each once"},
    {.path = "buckets.*.prior", .type = CFG_OBJECT},
    {.path = "buckets.*.prior.alpha",
     .type = CFG_NUMBER,
     CFG_B(prior_alpha, double),
     CFG_GT(0),
     .def = 1,
     .doc = "Beta prior of every arm: alpha"},
    {.path = "buckets.*.prior.beta",
     .type = CFG_NUMBER,
     CFG_B(prior_beta, double),
     CFG_GT(0),
     .def = 1,
     .doc = "Beta prior of every arm: beta"},
    {.path = "buckets.*.half_life_s",
     .type = CFG_NUMBER,
     CFG_B(half_life_s, double),
     CFG_GE(0),
     .def = 0,
     .doc = "forgetting: evidence of this age counts half; 0 = none"},
    {.path = "buckets.*.latency_slo_ms",
     .type = CFG_NUMBER,
     CFG_B(latency_slo_ms, double),
     CFG_GE(0),
     .def = 0,
     .doc = "latency objective, milliseconds; 0 = none"},
    {.path = "buckets.*.expected_tokens_in",
     .type = CFG_NUMBER,
     CFG_B(expected_tokens_in, double),
     CFG_GE(0),
     .def = 1000,
     .doc = "input tokens of a request: an arm's cost prior is its price "
            "for these tokens"},
    {.path = "buckets.*.expected_tokens_out",
     .type = CFG_NUMBER,
     CFG_B(expected_tokens_out, double),
     CFG_GE(0),
     .def = 500,
     .doc = "output tokens of a request, likewise"},
    {.path = "buckets.*.budget",
     .type = CFG_OBJECT,
     CFG_B(has_budget, int),
     .def_doc = "none",
     .doc = "a cap of this bucket's own, served with the per-request LP of "
            "policies/"},
    {.path = "buckets.*.budget.limit_usd",
     .type = CFG_NUMBER,
     .flags = CFG_REQUIRED | CFG_NO_DEFAULT,
     CFG_B(budget.limit_usd, double),
     CFG_GE(0),
     .doc = "the bucket's spend limit per window; at most the global "
            "`budget.limit_usd`"},
    {.path = "buckets.*.budget.window_s",
     .type = CFG_NUMBER,
     .flags = CFG_NO_DEFAULT,
     CFG_B(budget.window_s, double),
     CFG_GT(0),
     .def_doc = "`budget.window_s`",
     .doc = "the bucket's window length"},
    {.path = "buckets.*.budget.when_exhausted",
     .type = CFG_ENUM,
     CFG_B(budget.when_exhausted, cfg_exhausted_t),
     .names = cfg_exhausted_names,
     .def = CFG_EXHAUSTED_CHEAPEST,
     .doc = "when the bucket's cap leaves no model affordable: "
            "`serve_cheapest` (flagged `over_budget`) or `refuse` (error "
            "`budget_exhausted`)"},

    {.path = "unknown_bucket", .type = CFG_OBJECT},
    {.path = "unknown_bucket.action",
     .type = CFG_ENUM,
     .flags = CFG_REQUIRED,
     CFG_C(unknown_action, cfg_unknown_bucket_t),
     .names = cfg_unknown_names,
     .def = CFG_UNKNOWN_ERROR,
     .doc = "a `choose` for an unknown bucket: error `unknown_bucket`, or "
            "create the bucket from `template`"},
    {.path = "unknown_bucket.template",
     .type = CFG_OBJECT,
     CFG_C(bucket_template, cfg_bucket_t),
     .like = "buckets.*",
     .noun = "a bucket",
     .def_doc = "required with `\"create\"`",
     .doc = "the definition of created buckets"},
    {.path = "unknown_bucket.max_buckets",
     .type = CFG_INTEGER,
     CFG_C(max_buckets, size_t),
     CFG_GT(0),
     .def = 1024,
     .doc = "cap on all buckets (configured + created), not below the "
            "configured ones; beyond it `bucket_limit`"},

    {.path = "budget", .type = CFG_OBJECT},
    {.path = "budget.limit_usd",
     .type = CFG_NUMBER,
     CFG_C(budget.limit_usd, double),
     CFG_GE(0),
     .def = 0,
     .doc = "spend limit per window; 0 = no budget"},
    {.path = "budget.window_s",
     .type = CFG_NUMBER,
     CFG_C(budget.window_s, double),
     CFG_GT(0),
     .def = 86400,
     .doc = "window length; windows are aligned to multiples of it (Unix "
            "time: a day starts 00:00 UTC)"},
    {.path = "budget.prior_rate_per_s",
     .type = CFG_NUMBER,
     CFG_C(budget_prior_rate, double),
     CFG_GT(0),
     .def = 1,
     .doc = "request rate the pacer assumes before it has data (give this "
            "or `expected_requests`)"},
    {.path = "budget.expected_requests",
     .type = CFG_NUMBER,
     .flags = CFG_NO_DEFAULT,
     CFG_C(budget_expected, double),
     CFG_GT(0),
     .def_doc = "`prior_rate_per_s` x `window_s`",
     .doc = "requests expected per window: the pacer's prior until it has "
            "observed a few minutes of traffic (docs/policies.md, pacing)"},
    {.path = "budget.when_exhausted",
     .type = CFG_ENUM,
     CFG_C(budget.when_exhausted, cfg_exhausted_t),
     .names = cfg_exhausted_names,
     .def = CFG_EXHAUSTED_CHEAPEST,
     .doc = "when the window's budget leaves no model affordable: "
            "`serve_cheapest` (the cheapest allowed model, flagged "
            "`over_budget`) or `refuse` (error `budget_exhausted`, nothing "
            "recorded)"},
    {.path = "budget.max_batches",
     .type = CFG_INTEGER,
     CFG_C(max_batches, size_t),
     CFG_GT(0),
     .def = 64,
     .doc = "batches (op `batch`) open at once; beyond it `invalid_value`"},
    {.path = "tenants",
     .type = CFG_MAP,
     .noun = "tenant",
     .add = cfg_add_tenant,
     CFG_LEN(CFG_TENANT_MAX - 1), /* the names' length (not the count) */
     .def_doc = "none",
     .doc = "budgets of the tenants a `choose` names (`tenant`), by name "
            "(1 to 31 characters of `[A-Za-z0-9._-]`); `\"*\"`: each tenant "
            "not named gets a budget of its own like it"},
    {.path = "tenants.*.budget",
     .type = CFG_OBJECT,
     .flags = CFG_REQUIRED,
     CFG_T(has_budget, int),
     .doc = "the tenant's budget, on top of the global one"},
    {.path = "tenants.*.budget.limit_usd",
     .type = CFG_NUMBER,
     .flags = CFG_REQUIRED | CFG_NO_DEFAULT,
     CFG_T(budget.limit_usd, double),
     CFG_GT(0),
     .doc = "the tenant's spend limit per window; with the global window, "
            "at most the global `budget.limit_usd`"},
    {.path = "tenants.*.budget.window_s",
     .type = CFG_NUMBER,
     .flags = CFG_NO_DEFAULT,
     CFG_T(budget.window_s, double),
     CFG_GT(0),
     .def_doc = "`budget.window_s`",
     .doc = "the tenant's window length (aligned as the global one)"},
    {.path = "tenants.*.budget.expected_requests",
     .type = CFG_NUMBER,
     .flags = CFG_NO_DEFAULT,
     CFG_T(expected_requests, double),
     CFG_GT(0),
     .def_doc = "the global expectation's rate × the window",
     .doc = "requests the tenant is expected to make per window: its "
            "pacer's prior until it has observed a few minutes of traffic"},
    {.path = "tenants.*.budget.when_exhausted",
     .type = CFG_ENUM,
     CFG_T(budget.when_exhausted, cfg_exhausted_t),
     .names = cfg_exhausted_names,
     .def = CFG_EXHAUSTED_CHEAPEST,
     .doc = "once the tenant's budget cannot pay for any allowed model: "
            "serve the cheapest, flagged `over_budget`, or refuse with "
            "`budget_exhausted` (nothing recorded)"},
    {.path = "explore_floor",
     .type = CFG_NUMBER,
     CFG_C(explore_floor, double),
     CFG_IN(0, 1),
     .def = 0,
     .doc = "minimum probability of every allowed arm; `explore_floor` "
            "times the arms must not exceed 1 in any bucket"},
    {.path = "decision_ttl_s",
     .type = CFG_NUMBER,
     CFG_C(decision_ttl_s, double),
     CFG_GT(0),
     .def = 3600,
     .doc = "a decision without outcome after this is settled (expired)"},

    {.path = "expiry", .type = CFG_OBJECT},
    {.path = "expiry.outcome",
     .type = CFG_ENUM,
     CFG_C(expiry_outcome, cfg_expiry_outcome_t),
     .names = cfg_outcome_names,
     .def = CFG_EXPIRY_NONE,
     .doc = "what an expired decision means for the posterior: nothing, or "
            "reward 0"},
    {.path = "expiry.cost",
     .type = CFG_ENUM,
     CFG_C(expiry_cost, cfg_expiry_cost_t),
     .names = cfg_cost_names,
     .def = CFG_EXPIRY_COST_EXPECTED,
     .doc = "what an expired decision costs: the reserved estimate, or "
            "nothing"},

    {.path = "policy", .type = CFG_OBJECT},
    {.path = "policy.name",
     .type = CFG_STRING,
     CFG_C_BUF(policy_name),
     .def_str = "ts-budget",
     .doc = "`ts`, `ts-budget`, `uniform`, `eps-greedy`, `ucb1`, "
            "`cheapest`, `strongest`, `fixed:MODEL` (policies/policy.h)"},
    {.path = "policy.dual_step",
     .type = CFG_NUMBER,
     CFG_C(dual_step, double),
     CFG_GE(0),
     .def = 0.01,
     .doc = "step of the shadow-price update; > 0 with ts-budget"},
    {.path = "policy.seed",
     .type = CFG_INTEGER,
     CFG_C(seed, unsigned long),
     CFG_GE(0),
     .def = 0,
     .doc = "random seed; 0 = from the clock"},

    {.path = "health", .type = CFG_OBJECT},
    {.path = "health.failures",
     .type = CFG_INTEGER,
     CFG_C(health_failures, unsigned),
     CFG_GT(0),
     .def = ALLOW_DEF_FAILURES,
     .doc = "consecutive provider errors that open the breaker"},
    {.path = "health.cooldown_s",
     .type = CFG_NUMBER,
     CFG_C(health_cooldown_s, double),
     CFG_GT(0),
     .def = ALLOW_DEF_COOLDOWN_S,
     .doc = "first cooldown; also how long a half-open probe may stay "
            "unanswered"},
    {.path = "health.max_cooldown_s",
     .type = CFG_NUMBER,
     CFG_C(health_max_cooldown_s, double),
     CFG_GT(0),
     .def = ALLOW_DEF_MAX_COOLDOWN_S,
     .doc = "cap of the doubling cooldown; at least `health.cooldown_s`"},
    {.path = "health.min_clients",
     .type = CFG_INTEGER,
     CFG_C(health_min_clients, unsigned),
     CFG_IN(1, 1000),
     .def = 2,
     .doc = "provider errors from this many distinct clients cool a model "
            "down for every client; fewer cool it down only for the "
            "clients that reported them"},

    {.path = "latency", .type = CFG_OBJECT},
    {.path = "latency.window_s",
     .type = CFG_NUMBER,
     CFG_C(latency_window_s, double),
     CFG_GT(0),
     .def = ALLOW_DEF_WINDOW_S,
     .doc = "latency samples younger than this count"},
    {.path = "latency.quantile",
     .type = CFG_NUMBER,
     CFG_C(latency_quantile, double),
     CFG_IN_OPEN_CLOSED(0, 1),
     .def = ALLOW_DEF_QUANTILE,
     .doc = "the quantile compared with a bucket's objective"},
    {.path = "latency.min_samples",
     .type = CFG_INTEGER,
     CFG_C(latency_min_samples, unsigned),
     CFG_GT(0),
     .def = ALLOW_DEF_MIN_SAMPLES,
     .doc = "fewer recent samples: the arm is not judged"},

    {.path = "store", .type = CFG_OBJECT},
    {.path = "store.map_size_mb",
     .type = CFG_INTEGER,
     CFG_C(map_size_mb, size_t),
     CFG_GT(0),
     .def = 8192,
     .doc = "LMDB map size: the store's maximum size (address space "
            "reserved, not disk: the file grows as it fills)"},
    {.path = "store.sync",
     .type = CFG_ENUM,
     CFG_C(nometasync, int),
     .names = cfg_sync_names,
     .def = 0,
     .doc = "durability, below"},
    {.path = "store.batch_max",
     .type = CFG_INTEGER,
     CFG_C(batch_max, size_t),
     CFG_GT(0),
     .def = 512,
     .doc = "messages per group commit"},
    {.path = "store.retention_s",
     .type = CFG_NUMBER,
     CFG_C(retention_s, double),
     CFG_GT(0),
     .def = 30 * 86400.0,
     .doc = "settled decisions older than this are pruned from the store; "
            "at least `decision_ttl_s`"},

    {.path = "limits", .type = CFG_OBJECT},
    {.path = "limits.max_message_bytes",
     .type = CFG_INTEGER,
     CFG_C(max_message_bytes, size_t),
     CFG_IN(256, 64.0 * 1024 * 1024),
     .def = 65536,
     .doc = "larger requests are answered `message_too_large`"},
    {.path = "limits.max_tokens_in",
     .type = CFG_NUMBER,
     CFG_C(max_tokens_in, double),
     CFG_GT(0),
     .def = 2e6,
     .doc = "an outcome reporting more input tokens is refused "
            "`invalid_value`; with the prices, also the ceiling of a "
            "reported cost"},
    {.path = "limits.max_tokens_out",
     .type = CFG_NUMBER,
     CFG_C(max_tokens_out, double),
     CFG_GT(0),
     .def = 1e6,
     .doc = "the same for output tokens"},
    {.path = "limits.max_latency_ms",
     .type = CFG_NUMBER,
     CFG_C(max_latency_ms, double),
     CFG_GT(0),
     .def = 3.6e6,
     .doc = "an outcome reporting a longer latency is refused"},
    {.path = "limits.max_cost_usd",
     .type = CFG_NUMBER,
     CFG_C(max_cost_usd, double),
     CFG_GT(0),
     .def = 100,
     .doc = "ceiling of a reported cost for a model without prices"},
    {.path = "limits.client_rate_per_s",
     .type = CFG_NUMBER,
     CFG_C(client_rate_per_s, double),
     CFG_GE(0),
     .def = 20000,
     .doc = "requests per second one client may send (a token bucket); "
            "above it `rate_limited`; 0: no limit"},
    {.path = "limits.client_burst",
     .type = CFG_NUMBER,
     CFG_C(client_burst, double),
     CFG_GE(1),
     .def = 20000,
     .doc = "the bucket's depth: requests one client may send at once"},
    {.path = "limits.client_inflight",
     .type = CFG_INTEGER,
     CFG_C(client_inflight, size_t),
     CFG_GE(0),
     .def = 100000,
     .doc = "decisions without an outcome one client may hold; above it "
            "`choose` is `rate_limited`; 0: no limit"},
    {.path = "limits.max_tenants",
     .type = CFG_INTEGER,
     CFG_C(max_tenants, size_t),
     CFG_IN(1, 1e6),
     .def = 10000,
     .doc = "tenants with a budget of their own at once, the named ones "
            "and those given one by `tenants.\"*\"`; at it, an idle one "
            "is forgotten to make room, else a new tenant is served under "
            "the global budget only (`tenant_unbudgeted`), or refused "
            "`budget_exhausted` when `tenants.\"*\"` refuses"},

    {.path = "insecure",
     .type = CFG_BOOL,
     CFG_C(insecure, int),
     .def = 0,
     .doc = "serve endpoints that are not loopback or ipc without CURVE "
            "(logged at every start)"},
    {.path = "curve", .type = CFG_OBJECT},
    {.path = "curve.secret_key_file",
     .type = CFG_STRING,
     CFG_C(curve_secret, char *),
     .flags = CFG_REQUIRED,
     CFG_LEN1(4096),
     .doc = "bursard's secret key (`bursar keygen`; mode 0600): clients "
            "authenticate with CURVE"},
    {.path = "curve.clients_file",
     .type = CFG_STRING,
     CFG_C(curve_clients, char *),
     .flags = CFG_REQUIRED,
     CFG_LEN1(4096),
     .doc = "the allow-list: one client per line, `PUBLIC-KEY NAME "
            "ROLE[,ROLE]`; reloaded on SIGHUP"},

    {.path = "metrics", .type = CFG_OBJECT},
    {.path = "metrics.listen",
     .type = CFG_STRING,
     CFG_C(metrics_listen, char *),
     CFG_LEN1(255),
     .doc = "`HOST:PORT` serving Prometheus metrics (`/metrics`), the "
            "status page (`/`) and its data (`/status.json`); unset: not "
            "served; read at start only"},
    {.path = "metrics.allow",
     .type = CFG_ARRAY,
     CFG_IN(1, CFG_MAX_ALLOW),
     .noun = "networks",
     .item = cfg_metrics_allow_item,
     .def_doc = "`[\"127.0.0.0/8\", \"::1/128\"]`",
     .doc = "client networks (`ADDRESS/BITS`) that may connect; others "
            "are disconnected at once"},
    {.path = "metrics.token_env",
     .type = CFG_STRING,
     CFG_C(metrics_token_env, char *),
     CFG_LEN1(PROTO_NAME_MAX - 1),
     .doc = "environment variable holding a bearer token requests for "
            "/metrics and /status.json must carry (`Authorization: Bearer "
            "...`; the page / and /healthz need none); unset: none"},
    {.path = "metrics.sample_s",
     .type = CFG_NUMBER,
     CFG_C(status_sample_s, double),
     CFG_IN(0.1, 86400),
     .def = 10,
     .doc = "the status page's history: a sample of spend and traffic "
            "every this many seconds (in memory)"},
    {.path = "metrics.samples",
     .type = CFG_INTEGER,
     CFG_C(status_samples, size_t),
     CFG_IN(2, 10000),
     .def = 360,
     .doc = "samples kept (the history's length); fewer, the newest, "
            "when samples x (bucket, model) pairs x 8 bytes would pass "
            "16 MiB"},
};

#define CFG_N_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

/* Index of the row whose path is `path`. */
static size_t
cfg_key_index(const char *path)
{
    for (size_t i = 0; i < CFG_N_KEYS; i++)
        if (strcmp(cfg_keys[i].path, path) == 0)
            return i;
    abort(); /* a path missing from the table is a bug of this file */
}

/* If the row's path is spath.NAME (spath "" is the root), NAME. */
static const char *
cfg_leaf(const cfg_key_t *k, const char *spath, size_t sl)
{
    const char *p = k->path;
    if (sl > 0) {
        if (strncmp(p, spath, sl) != 0 || p[sl] != '.')
            return NULL;
        p += sl + 1;
    }
    return strchr(p, '.') ? NULL : p;
}

/* Whether the row's path lies below prefix ("": any path without "*"). */
static int
cfg_below(const cfg_key_t *k, const char *prefix, size_t pl)
{
    if (pl == 0)
        return strchr(k->path, '*') == NULL;
    return strncmp(k->path, prefix, pl) == 0 && k->path[pl] == '.';
}

/* ------------------------------------------------------------------ */
/* The walk                                                            */

#define CFG_PATH_MAX 512

/* A parse: the problem sink, a count of problems, the configuration being
 * filled and which rows were present with a valid value. */
struct cfg_ctx {
    cfg_problems_t *pr;
    size_t errors;
    cfg_t *c;
    unsigned char given[CFG_N_KEYS];
};

#define CFG_ERR(cx, path, ...)                                                 \
    do {                                                                       \
        (cx)->errors++;                                                        \
        cfg_problem((cx)->pr, (path), __VA_ARGS__);                            \
    } while (0)

/* Whether the key at `path` (a row of cfg_t) was present and valid. */
static int
cfg_given(const cfg_ctx_t *cx, const char *path)
{
    return cx->given[cfg_key_index(path)];
}

/* parent.key into buf (truncated to n - 1 bytes). */
static void
cfg_path(char *buf, size_t n, const char *parent, const char *key)
{
    if (snprintf(buf, n, "%s.%s", parent, key) >= (int)n)
        buf[n - 1] = '\0'; /* cut past CFG_PATH_MAX: messages only */
}

static int
cfg_name_ok(cfg_ctx_t *cx, const char *path, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= BURSAR_NAME_MAX) {
        CFG_ERR(cx, path, "name must have 1 to %d bytes", BURSAR_NAME_MAX - 1);
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

/* The range of row k as text: "must not be negative" style when ref is 0
 * (for messages), "≥ 0" style when 1 (for the reference). */
static void
cfg_range_text(const cfg_key_t *k, int ref, char *buf, size_t n)
{
    unsigned r = k->range;
    int lo_open = (r & CFG_MIN_OPEN) != 0, hi_open = (r & CFG_MAX_OPEN) != 0;
    if ((r & CFG_HAS_MIN) && (r & CFG_HAS_MAX))
        snprintf(buf, n, "%s%c%.15g, %.15g%c", ref ? "" : "must be in ",
                 lo_open ? '(' : '[', k->min, k->max, hi_open ? ')' : ']');
    else if ((r & CFG_HAS_MIN) && ref)
        snprintf(buf, n, "%s %.15g", lo_open ? ">" : "≥", k->min);
    else if ((r & CFG_HAS_MIN) && k->min == 0)
        snprintf(buf, n, "must %s",
                 lo_open ? "be positive" : "not be negative");
    else if (r & CFG_HAS_MIN)
        snprintf(buf, n, "must be %s %.15g", lo_open ? "above" : "at least",
                 k->min);
    else if (r & CFG_HAS_MAX)
        snprintf(buf, n, "%s %.15g",
                 ref ? (hi_open ? "<" : "≤")
                     : (hi_open ? "must be below" : "must be at most"),
                 k->max);
    else
        buf[0] = '\0';
}

static int
cfg_in_range(const cfg_key_t *k, double v)
{
    unsigned r = k->range;
    if (r & CFG_HAS_MIN)
        if ((r & CFG_MIN_OPEN) ? !(v > k->min) : !(v >= k->min))
            return 0;
    if (r & CFG_HAS_MAX)
        if ((r & CFG_MAX_OPEN) ? !(v < k->max) : !(v <= k->max))
            return 0;
    return 1;
}

/* Stores v into an unsigned, unsigned long or size_t field of `size`
 * bytes. */
static void
cfg_store_uint(void *field, size_t size, double v)
{
    if (size == sizeof(unsigned)) {
        unsigned u = (unsigned)v;
        memcpy(field, &u, sizeof u);
    } else {
        unsigned long long u = (unsigned long long)v;
        assert(size == sizeof u);
        memcpy(field, &u, sizeof u);
    }
}

/* Stores v into an int, a bool or an enum field. */
static void
cfg_store_int(void *field, int v)
{
    /* An enum is stored as the index of its name, through an int. */
    _Static_assert(CFG_PROVIDER_ANTHROPIC == 1 && CFG_UNKNOWN_CREATE == 1 &&
                       CFG_EXPIRY_FAILURE == 1 && CFG_EXPIRY_COST_ZERO == 1 &&
                       CFG_EXHAUSTED_REFUSE == 1,
                   "enum values are the indexes of their names");
    _Static_assert(sizeof(cfg_provider_t) == sizeof(int) &&
                       sizeof(cfg_unknown_bucket_t) == sizeof(int) &&
                       sizeof(cfg_expiry_outcome_t) == sizeof(int) &&
                       sizeof(cfg_expiry_cost_t) == sizeof(int) &&
                       sizeof(cfg_exhausted_t) == sizeof(int),
                   "enums are stored through an int");
    memcpy(field, &v, sizeof v);
}

/* CFG_NUMBER, CFG_INTEGER. Returns 0 when stored, -1 (reported) if not. */
static int
cfg_set_number(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
               void *field)
{
    int whole = k->type == CFG_INTEGER;
    if (!cJSON_IsNumber(j)) {
        CFG_ERR(cx, p, "must be %s, got %s", whole ? "an integer" : "a number",
                proto_type_name(j));
        return -1;
    }
    double v = j->valuedouble;
    char range[64];
    if (!isfinite(v)) {
        CFG_ERR(cx, p, "must be finite");
    } else if (!cfg_in_range(k, v)) {
        cfg_range_text(k, 0, range, sizeof range);
        CFG_ERR(cx, p, "%s, got %g", range, v);
    } else if (whole && v != floor(v)) {
        CFG_ERR(cx, p, "must be a whole number, got %g", v);
    } else if (v > CFG_MAX_EXPIRY_S * 1e3 ||
               (whole && k->size == sizeof(unsigned) && v > UINT_MAX)) {
        CFG_ERR(cx, p, "is too large: %g", v);
    } else {
        if (whole)
            cfg_store_uint(field, k->size, v);
        else
            memcpy(field, &v, sizeof v);
        return 0;
    }
    return -1;
}

/* CFG_STRING. */
static int
cfg_set_string(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
               void *field)
{
    if (!cJSON_IsString(j)) {
        CFG_ERR(cx, p, "must be a string, got %s", proto_type_name(j));
        return -1;
    }
    if (k->inline_str) {
        if (strlen(j->valuestring) >= k->size) {
            CFG_ERR(cx, p, "is too long (at most %zu bytes)", k->size - 1);
            return -1;
        }
        bursar_copy_str(field, k->size, j->valuestring);
    } else {
        size_t n = strlen(j->valuestring);
        if ((k->range & CFG_HAS_MAX) && n > k->max) {
            CFG_ERR(cx, p, "is too long (at most %.0f bytes)", k->max);
            return -1;
        }
        if ((k->range & CFG_HAS_MIN) && n < k->min) {
            CFG_ERR(cx, p, "is empty");
            return -1;
        }
        char *s;
        memcpy(&s, field, sizeof s);
        free(s); /* a default, or the value of a duplicate key */
        s = bursar_strdup(j->valuestring);
        memcpy(field, &s, sizeof s);
    }
    return 0;
}

/* `"a" or "b"` (quoted, with the separators of prose) into buf. */
static void
cfg_enum_list(const cfg_key_t *k, char *buf, size_t n)
{
    size_t o = 0, m = 0;
    while (k->names[m])
        m++;
    buf[0] = '\0';
    for (size_t i = 0; i < m && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s\"%s\"",
                              i == 0 ? "" : (i + 1 < m ? ", " : " or "),
                              k->names[i]);
}

/* CFG_ENUM. */
static int
cfg_set_enum(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
             void *field)
{
    if (cJSON_IsString(j))
        for (int i = 0; k->names[i]; i++)
            if (strcmp(k->names[i], j->valuestring) == 0) {
                cfg_store_int(field, i);
                return 0;
            }
    char want[256];
    cfg_enum_list(k, want, sizeof want);
    if (cJSON_IsString(j))
        CFG_ERR(cx, p, "must be %s, got \"%s\"", want, j->valuestring);
    else
        CFG_ERR(cx, p, "must be %s, got %s", want, proto_type_name(j));
    return -1;
}

/* CFG_BOOL. */
static int
cfg_set_bool(cfg_ctx_t *cx, const cJSON *j, const char *p, void *field)
{
    if (!cJSON_IsBool(j)) {
        CFG_ERR(cx, p, "must be true or false, got %s", proto_type_name(j));
        return -1;
    }
    cfg_store_int(field, cJSON_IsTrue(j));
    return 0;
}

/* Sets every field below prefix ("": cfg_t's own) of the struct at base to
 * its default. */
static void
cfg_defaults(void *base, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key_t *k = &cfg_keys[i];
        char *field = (char *)base + k->off;
        if (!cfg_below(k, prefix, pl) || (k->flags & CFG_NO_DEFAULT))
            continue;
        if (k->type == CFG_NUMBER)
            memcpy(field, &k->def, sizeof k->def);
        else if (k->type == CFG_INTEGER)
            cfg_store_uint(field, k->size, k->def);
        else if (k->type == CFG_BOOL || k->type == CFG_ENUM)
            cfg_store_int(field, (int)k->def);
        else if (k->type == CFG_STRING && k->inline_str)
            bursar_copy_str(field, k->size, k->def_str ? k->def_str : "");
        else if (k->type == CFG_STRING && k->def_str) {
            char *s = bursar_strdup(k->def_str);
            memcpy(field, &s, sizeof s);
        }
    }
}

static void cfg_walk(cfg_ctx_t *cx, const cJSON *obj, const char *jpath,
                     const char *spath, void *base);

/* CFG_OBJECT. */
static int
cfg_set_object(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
               void *base)
{
    if (!cJSON_IsObject(j)) {
        CFG_ERR(cx, p, "must be an object, got %s", proto_type_name(j));
        return -1;
    }
    if (k->like) {
        void *sub = (char *)base + k->off;
        cfg_defaults(sub, k->like);
        cfg_walk(cx, j, p, k->like, sub);
        return 0;
    }
    if (k->size)
        cfg_store_int((char *)base + k->off, 1);
    cfg_walk(cx, j, p, k->path, base);
    return 0;
}

/* CFG_MAP: one element per member, named by it. */
static int
cfg_set_map(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p)
{
    if (!cJSON_IsObject(j)) {
        CFG_ERR(cx, p, "must be an object, got %s", proto_type_name(j));
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(j);
    if ((k->range & CFG_HAS_MIN) && (double)n < k->min)
        CFG_ERR(cx, p, "must define at least %.15g %s", k->min, k->noun);
    char spath[128];
    snprintf(spath, sizeof spath, "%s.*", k->path);
    const cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        char mp[CFG_PATH_MAX];
        cfg_path(mp, sizeof mp, p, m->string);
        if (!cfg_name_ok(cx, mp, m->string))
            continue;
        if (!cJSON_IsObject(m)) {
            CFG_ERR(cx, mp, "must be an object, got %s", proto_type_name(m));
            continue;
        }
        void *elem = k->add(cx, m->string, n);
        if (!elem) {
            CFG_ERR(cx, mp, "defined twice");
            continue;
        }
        cfg_defaults(elem, spath);
        cfg_walk(cx, m, mp, spath, elem);
    }
    return 0;
}

/* CFG_ARRAY: the count in range, then each element to .item. */
static int
cfg_set_array(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
              void *base)
{
    if (!cJSON_IsArray(j)) {
        CFG_ERR(cx, p, "must be an array of %s, got %s", k->noun,
                proto_type_name(j));
        return -1;
    }
    int n = cJSON_GetArraySize(j);
    if (!cfg_in_range(k, n)) {
        CFG_ERR(cx, p, "must hold %.15g to %.15g %s, got %d", k->min, k->max,
                k->noun, n);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        char ep[CFG_PATH_MAX];
        if (snprintf(ep, sizeof ep, "%s[%d]", p, i++) >= (int)sizeof ep)
            ep[sizeof ep - 1] = '\0'; /* cut: messages only */
        k->item(cx, e, ep, base);
    }
    return 0;
}

/* Checks and stores value j of row k (at JSON path p) into the struct at
 * base. Returns 0 if it was stored (or, for an object, entered). */
static int
cfg_value(cfg_ctx_t *cx, const cfg_key_t *k, const cJSON *j, const char *p,
          void *base)
{
    char *field = (char *)base + k->off;
    switch (k->type) {
    case CFG_NUMBER:
    case CFG_INTEGER:
        return cfg_set_number(cx, k, j, p, field);
    case CFG_BOOL:
        return cfg_set_bool(cx, j, p, field);
    case CFG_STRING:
        return cfg_set_string(cx, k, j, p, field);
    case CFG_ENUM:
        return cfg_set_enum(cx, k, j, p, field);
    case CFG_OBJECT:
        return cfg_set_object(cx, k, j, p, base);
    case CFG_MAP:
        return cfg_set_map(cx, k, j, p);
    case CFG_ARRAY:
        return cfg_set_array(cx, k, j, p, base);
    }
    return -1;
}

/* The row spath.name, or NULL. */
static const cfg_key_t *
cfg_child(const char *spath, size_t sl, const char *name)
{
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const char *leaf = cfg_leaf(&cfg_keys[i], spath, sl);
        if (leaf && strcmp(leaf, name) == 0)
            return &cfg_keys[i];
    }
    return NULL;
}

/* Walks object obj (at JSON path jpath) against the rows below spath: each
 * unknown member is a problem, each required row absent is one, each
 * present row is checked and stored into the struct at base. Rows are
 * read in table order, whatever the order of the members. */
static void
cfg_walk(cfg_ctx_t *cx, const cJSON *obj, const char *jpath, const char *spath,
         void *base)
{
    size_t sl = strlen(spath);
    char p[CFG_PATH_MAX];
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        if (!cfg_child(spath, sl, m->string)) {
            cfg_path(p, sizeof p, jpath, m->string);
            CFG_ERR(cx, p, "unknown key \"%s\"", m->string);
        }
    }
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const char *leaf = cfg_leaf(&cfg_keys[i], spath, sl);
        if (!leaf)
            continue;
        cfg_path(p, sizeof p, jpath, leaf);
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, leaf);
        if (!j) {
            if (cfg_keys[i].flags & CFG_REQUIRED)
                CFG_ERR(cx, p, "is required");
        } else if (cfg_value(cx, &cfg_keys[i], j, p, base) == 0) {
            cx->given[i] = 1;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Elements, and the checks a table cannot express                     */

static void
cfg_listen_item(cfg_ctx_t *cx, const cJSON *e, const char *p, void *base)
{
    cfg_t *c = base;
    if (!cJSON_IsString(e))
        CFG_ERR(cx, p, "must be a string, got %s", proto_type_name(e));
    else if (strncmp(e->valuestring, "tcp://", 6) != 0 &&
             strncmp(e->valuestring, "ipc://", 6) != 0)
        CFG_ERR(cx, p, "endpoint \"%s\" must start with tcp:// or ipc://",
                e->valuestring);
    else if (c->n_listen < CFG_MAX_LISTEN) /* the count is checked before */
        c->listen[c->n_listen++] = bursar_strdup(e->valuestring);
}

static void
cfg_metrics_allow_item(cfg_ctx_t *cx, const cJSON *e, const char *p, void *base)
{
    cfg_t *c = base;
    if (!cJSON_IsString(e))
        CFG_ERR(cx, p, "must be a string, got %s", proto_type_name(e));
    else if (!webd_cidr_ok(e->valuestring))
        CFG_ERR(cx, p,
                "\"%s\" is not a network ADDRESS/BITS (127.0.0.0/8, "
                "10.1.2.3, ::1/128)",
                e->valuestring);
    else if (c->n_metrics_allow < CFG_MAX_ALLOW)
        c->metrics_allow[c->n_metrics_allow++] = bursar_strdup(e->valuestring);
}

static void
cfg_bucket_model_item(cfg_ctx_t *cx, const cJSON *e, const char *p, void *base)
{
    cfg_bucket_t *b = base;
    if (!cJSON_IsString(e)) {
        CFG_ERR(cx, p, "must be a model name, got %s", proto_type_name(e));
        return;
    }
    int id = cfg_model_find(cx->c, e->valuestring);
    if (id < 0) {
        CFG_ERR(cx, p, "unknown model \"%s\" (not in $.models)",
                e->valuestring);
        return;
    }
    for (size_t k = 0; k < b->n_models; k++)
        if (b->models[k] == id) {
            CFG_ERR(cx, p, "model \"%s\" is listed twice", e->valuestring);
            return;
        }
    if (b->n_models < CFG_MAX_ARMS) /* the count is checked before */
        b->models[b->n_models++] = id;
}

static void *
cfg_add_model(cfg_ctx_t *cx, const char *name, size_t n)
{
    cfg_t *c = cx->c;
    if (!c->models)
        c->models = bursar_calloc(n, sizeof *c->models);
    if (cfg_model_find(c, name) >= 0)
        return NULL;
    cfg_model_t *m = &c->models[c->n_models++];
    bursar_copy_str(m->name, sizeof m->name, name);
    return m;
}

static void *
cfg_add_bucket(cfg_ctx_t *cx, const char *name, size_t n)
{
    cfg_t *c = cx->c;
    if (!c->buckets)
        c->buckets = bursar_calloc(n, sizeof *c->buckets);
    if (cfg_bucket_find(c, name) >= 0)
        return NULL;
    cfg_bucket_t *b = &c->buckets[c->n_buckets++];
    bursar_copy_str(b->name, sizeof b->name, name);
    return b;
}

/* A tenant's name is the protocol's (proto_tenant_valid), or "*". */
static void *
cfg_add_tenant(cfg_ctx_t *cx, const char *name, size_t n)
{
    cfg_t *c = cx->c;
    if (!c->tenants)
        c->tenants = bursar_calloc(n, sizeof *c->tenants);
    if (cfg_tenant_find(c, name) >= 0)
        return NULL;
    if (strcmp(name, CFG_TENANT_DEFAULT) != 0 && !proto_tenant_valid(name)) {
        char p[CFG_PATH_MAX];
        cfg_path(p, sizeof p, "$.tenants", name);
        CFG_ERR(cx, p,
                "a tenant's name must have 1 to %d characters of "
                "[A-Za-z0-9._-], or be \"*\"",
                CFG_TENANT_MAX - 1);
    }
    cfg_tenant_t *t = &c->tenants[c->n_tenants++];
    bursar_copy_str(t->name, sizeof t->name, name);
    return t;
}

static void
cfg_finish_listen(cfg_ctx_t *cx)
{
    cfg_t *c = cx->c;
    if (!cfg_given(cx, "listen") && c->n_listen == 0)
        c->listen[c->n_listen++] = bursar_strdup(CFG_LISTEN_DEFAULT);
}

/* A model's id defaults to its name, its base URL to its provider's. */
static void
cfg_finish_models(cfg_t *c)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        if (!m->model)
            m->model = bursar_strdup(m->name);
        if (!m->base_url)
            m->base_url = bursar_strdup(m->provider == CFG_PROVIDER_ANTHROPIC
                                            ? CFG_ANTHROPIC_URL
                                            : CFG_OPENAI_URL);
    }
}

/* A bucket's own cap takes the global window unless it names one; the
 * exploration floor must hold for every arm. */
static void
cfg_check_bucket(cfg_ctx_t *cx, cfg_bucket_t *b, const char *path)
{
    const cfg_t *c = cx->c;
    if (b->has_budget && b->budget.window_s == 0) /* 0: absent or invalid */
        b->budget.window_s = c->budget.window_s;
    if (b->n_models > 0 && c->explore_floor * (double)b->n_models > 1.0 + 1e-12)
        CFG_ERR(cx, path,
                "explore_floor %g times %zu models exceeds 1 (the floor "
                "cannot hold for every arm)",
                c->explore_floor, b->n_models);
}

static void
cfg_check_buckets(cfg_ctx_t *cx)
{
    cfg_t *c = cx->c;
    for (size_t k = 0; k < c->n_buckets; k++) {
        cfg_bucket_t *b = &c->buckets[k];
        char p[CFG_PATH_MAX];
        cfg_path(p, sizeof p, "$.buckets", b->name);
        cfg_check_bucket(cx, b, p);
        /* A bucket's cap above the global one is never the binding cap. */
        if (b->has_budget && c->budget.limit_usd > 0 &&
            b->budget.limit_usd > c->budget.limit_usd)
            CFG_ERR(cx, p,
                    "budget.limit_usd %g exceeds the global limit_usd %g",
                    b->budget.limit_usd, c->budget.limit_usd);
    }
    if (cfg_given(cx, "unknown_bucket.template"))
        cfg_check_bucket(cx, &c->bucket_template, "$.unknown_bucket.template");
}

/* A tenant's window defaults to the global one, its expected requests to
 * the global prior rate over its window. A limit above the global one
 * with the same window never binds: a contradiction. */
static void
cfg_check_tenants(cfg_ctx_t *cx)
{
    cfg_t *c = cx->c;
    for (size_t k = 0; k < c->n_tenants; k++) {
        cfg_tenant_t *t = &c->tenants[k];
        char p[CFG_PATH_MAX];
        cfg_path(p, sizeof p, "$.tenants", t->name);
        if (t->budget.window_s == 0) /* 0: absent or invalid */
            t->budget.window_s = c->budget.window_s;
        if (t->expected_requests == 0)
            t->expected_requests = c->budget_prior_rate * t->budget.window_s;
        if (c->budget.limit_usd > 0 &&
            t->budget.window_s == c->budget.window_s &&
            t->budget.limit_usd > c->budget.limit_usd)
            CFG_ERR(cx, p,
                    "budget.limit_usd %g exceeds the global limit_usd %g of "
                    "the same window (it would never bind)",
                    t->budget.limit_usd, c->budget.limit_usd);
    }
    size_t named = c->n_tenants - (cfg_tenant_find(c, CFG_TENANT_DEFAULT) >= 0);
    if (c->max_tenants < named)
        CFG_ERR(cx, "$.limits.max_tenants",
                "is %zu, below the %zu named tenants", c->max_tenants, named);
}

static void
cfg_check_unknown_bucket(cfg_ctx_t *cx)
{
    cfg_t *c = cx->c;
    if (c->unknown_action == CFG_UNKNOWN_CREATE &&
        !cfg_given(cx, "unknown_bucket.template"))
        CFG_ERR(cx, "$.unknown_bucket.template",
                "is required when action is \"create\"");
    if (cfg_given(cx, "unknown_bucket.max_buckets") &&
        c->max_buckets < c->n_buckets)
        CFG_ERR(cx, "$.unknown_bucket.max_buckets",
                "is %zu, below the %zu configured buckets", c->max_buckets,
                c->n_buckets);
    if (c->n_buckets > c->max_buckets)
        c->max_buckets = c->n_buckets;
}

static void
cfg_check_policy(cfg_ctx_t *cx)
{
    const cfg_t *c = cx->c;
    policy_kind_t kind;
    const char *fixed = NULL;
    if (policy_kind_parse(c->policy_name, &kind, &fixed) != 0)
        CFG_ERR(cx, "$.policy.name",
                "unknown policy \"%s\" (ts, ts-budget, uniform, eps-greedy, "
                "ucb1, cheapest, strongest, fixed:MODEL)",
                c->policy_name);
    else if (fixed && cfg_model_find(c, fixed) < 0)
        CFG_ERR(cx, "$.policy.name", "fixed: unknown model \"%s\"", fixed);
    else if (kind == POLICY_TS_BUDGET && !(c->dual_step > 0))
        CFG_ERR(cx, "$.policy.dual_step",
                "must be > 0 with ts-budget (the budget multiplier would "
                "never move)");
}

/* The pacer's prior: budget.expected_requests or prior_rate_per_s. */
static void
cfg_check_expected(cfg_ctx_t *cx)
{
    cfg_t *c = cx->c;
    if (!cfg_given(cx, "budget.expected_requests"))
        return;
    if (cfg_given(cx, "budget.prior_rate_per_s"))
        CFG_ERR(cx, "$.budget.expected_requests",
                "give expected_requests or prior_rate_per_s, not both (both "
                "say the traffic the pacer expects)");
    else if (c->budget_expected > 0 && c->budget.window_s > 0)
        c->budget_prior_rate = c->budget_expected / c->budget.window_s;
}

static void
cfg_check_durations(cfg_ctx_t *cx)
{
    const cfg_t *c = cx->c;
    if (c->metrics_listen && !webd_listen_ok(c->metrics_listen))
        CFG_ERR(cx, "$.metrics.listen",
                "must be HOST:PORT (a port number up to 65535), got \"%s\"",
                c->metrics_listen);
    if (c->health_max_cooldown_s < c->health_cooldown_s)
        CFG_ERR(cx, "$.health.max_cooldown_s",
                "must be at least cooldown_s (%g)", c->health_cooldown_s);
    if (c->retention_s < c->decision_ttl_s)
        CFG_ERR(cx, "$.store.retention_s",
                "must be at least decision_ttl_s (%g)", c->decision_ttl_s);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static void
cfg_syntax_error(cfg_ctx_t *cx, const char *json, size_t len)
{
    const char *at = cJSON_GetErrorPtr();
    long off = at ? (long)(at - json) : -1;
    if (off < 0 || (size_t)off > len) {
        CFG_ERR(cx, "$", "invalid JSON");
        return;
    }
    long line = 1, col = 1;
    for (long i = 0; i < off; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    CFG_ERR(cx, "$", "invalid JSON near line %ld column %ld", line, col);
}

int
cfg_parse(const char *json, size_t len, cfg_t **out, cfg_problems_t *pr)
{
    *out = NULL;
    cfg_ctx_t cx = {.pr = pr};
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        cfg_syntax_error(&cx, json, len);
        return BURSAR_ECONFIG;
    }
    if (!cJSON_IsObject(root)) {
        CFG_ERR(&cx, "$", "must be an object, got %s", proto_type_name(root));
        cJSON_Delete(root);
        return BURSAR_ECONFIG;
    }
    cx.c = bursar_calloc(1, sizeof *cx.c);
    cfg_defaults(cx.c, "");
    cfg_walk(&cx, root, "$", "", cx.c);
    cJSON_Delete(root);
    cfg_finish_listen(&cx);
    cfg_finish_models(cx.c);
    cfg_check_buckets(&cx);
    cfg_check_expected(&cx); /* the global rate, a tenant's default */
    cfg_check_tenants(&cx);
    cfg_check_unknown_bucket(&cx);
    cfg_check_policy(&cx);
    cfg_check_durations(&cx);
    if (cx.errors) {
        cfg_destroy(&cx.c);
        return BURSAR_ECONFIG;
    }
    *out = cx.c;
    return 0;
}

int
cfg_load_file(const char *path, cfg_t **out, cfg_problems_t *pr)
{
    *out = NULL;
    size_t len = 0;
    char *text = NULL;
    if (bursar_read_file(path, &text, &len) != 0) {
        /* not a problem at a JSON path: no "$: " */
        const char *why = strerror(errno);
        if (pr) {
            pr->msg = bursar_realloc(pr->msg, (pr->n + 1) * sizeof *pr->msg);
            pr->msg[pr->n++] = bursar_sprintf("cannot read %s: %s", path, why);
        }
        return BURSAR_EIO;
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
    free(c->curve_secret);
    free(c->curve_clients);
    free(c->metrics_listen);
    free(c->metrics_token_env);
    for (size_t i = 0; i < c->n_metrics_allow; i++)
        free(c->metrics_allow[i]);
    for (size_t i = 0; i < c->n_models; i++) {
        free(c->models[i].model);
        free(c->models[i].base_url);
        free(c->models[i].api_key_env);
    }
    free(c->models);
    free(c->buckets);
    free(c->tenants);
    free(c);
    *cp = NULL;
}

int
cfg_policy_params(const cfg_t *c, policy_params_t *pp)
{
    policy_params_default(pp);
    const char *fixed = NULL;
    if (policy_kind_parse(c->policy_name, &pp->kind, &fixed) != 0)
        return BURSAR_ECONFIG;
    if (fixed) {
        pp->fixed_model = cfg_model_find(c, fixed);
        if (pp->fixed_model < 0)
            return BURSAR_ECONFIG;
    }
    pp->explore_floor = c->explore_floor;
    pp->dual_step = c->dual_step;
    return 0;
}

void
cfg_allow_params(const cfg_t *c, allow_params_t *ap)
{
    ap->health.failures = c->health_failures;
    ap->health.cooldown_s = c->health_cooldown_s;
    ap->health.max_cooldown_s = c->health_max_cooldown_s;
    ap->latency.quantile = c->latency_quantile;
    ap->latency.window_s = c->latency_window_s;
    ap->latency.min_samples = c->latency_min_samples;
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

int
cfg_tenant_find(const cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_tenants; i++)
        if (strcmp(c->tenants[i].name, name) == 0)
            return (int)i;
    return -1;
}

double
cfg_model_cost(const cfg_model_t *m, double tokens_in, double tokens_out)
{
    return proto_price_cost(m->price_in_per_mtok, m->price_out_per_mtok,
                            tokens_in, tokens_out);
}

/* ------------------------------------------------------------------ */
/* The reference                                                       */

static void
cfg_type_text(const cfg_key_t *k, char *buf, size_t n)
{
    static const char *const simple[] = {[CFG_NUMBER] = "number",
                                         [CFG_INTEGER] = "integer",
                                         [CFG_BOOL] = "boolean",
                                         [CFG_STRING] = "string"};
    size_t o = 0;
    switch (k->type) {
    case CFG_ENUM:
        buf[0] = '\0';
        for (size_t i = 0; k->names[i] && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s`\"%s\"`",
                                  i ? " \\| " : "", k->names[i]);
        break;
    case CFG_OBJECT:
        if (k->like)
            snprintf(buf, n, "%s: the keys of `%s`", k->noun, k->like);
        else
            snprintf(buf, n, "object");
        break;
    case CFG_MAP:
        snprintf(buf, n, "object: name → %s", k->noun);
        break;
    case CFG_ARRAY:
        snprintf(buf, n, "array of %s", k->noun);
        break;
    default:
        snprintf(buf, n, "%s", simple[k->type]);
    }
}

static void
cfg_range_doc(const cfg_key_t *k, char *buf, size_t n)
{
    buf[0] = '\0';
    if (k->type == CFG_NUMBER || k->type == CFG_INTEGER)
        cfg_range_text(k, 1, buf, n);
    else if (k->type == CFG_STRING && k->inline_str)
        snprintf(buf, n, "≤ %zu bytes", k->size - 1);
    else if (k->type == CFG_ARRAY)
        snprintf(buf, n, "%.15g to %.15g", k->min, k->max);
    else if (k->type == CFG_MAP && (k->range & CFG_HAS_MIN))
        snprintf(buf, n, "≥ %.15g %s; names of 1 to %d bytes", k->min, k->noun,
                 BURSAR_NAME_MAX - 1);
    else if (k->type == CFG_MAP) /* CFG_HAS_MAX: the names' own limit */
        snprintf(buf, n, "names of 1 to %d bytes",
                 (k->range & CFG_HAS_MAX) ? (int)k->max : BURSAR_NAME_MAX - 1);
}

static void
cfg_default_doc(const cfg_key_t *k, char *buf, size_t n)
{
    const char *dot = strrchr(k->path, '.');
    int literal = !(k->flags & CFG_NO_DEFAULT) && !k->def_doc;
    char lit[128] = "";
    if (k->type == CFG_NUMBER || k->type == CFG_INTEGER)
        snprintf(lit, sizeof lit, "%.15g", k->def);
    else if (k->type == CFG_BOOL)
        snprintf(lit, sizeof lit, "`%s`", k->def ? "true" : "false");
    else if (k->type == CFG_ENUM)
        snprintf(lit, sizeof lit, "`\"%s\"`", k->names[(int)k->def]);
    else if (k->type == CFG_STRING && k->def_str)
        snprintf(lit, sizeof lit, "`\"%s\"`", k->def_str);
    else if (k->type == CFG_STRING)
        snprintf(lit, sizeof lit, "none");
    if ((k->flags & CFG_REQUIRED) && dot && !strchr(k->path, '*') && *lit)
        snprintf(buf, n, "%s; required in `%.*s`", lit, (int)(dot - k->path),
                 k->path);
    else if (k->flags & CFG_REQUIRED)
        snprintf(buf, n, "**required**");
    else
        snprintf(buf, n, "%s", literal ? lit : (k->def_doc ? k->def_doc : ""));
}

void
cfg_print_reference(FILE *f)
{
    fputs("| key | type | range | default | meaning |\n"
          "|---|---|---|---|---|\n",
          f);
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key_t *k = &cfg_keys[i];
        char type[256], range[128], def[256];
        if (!k->doc)
            continue;
        cfg_type_text(k, type, sizeof type);
        cfg_range_doc(k, range, sizeof range);
        cfg_default_doc(k, def, sizeof def);
        fprintf(f, "| `%s` | %s | %s | %s | %s |\n", k->path, type, range, def,
                k->doc);
    }
}
