/*
 * cfg.h - the controller's configuration: parsing, validation, defaults.
 *
 * The configuration is one JSON object. One table of keys in cfg.c (path,
 * type, range, default, field, meaning) drives the parser and prints the
 * reference (cfg_print_reference; docs/controller.md holds its output).
 * cfg_parse reads and validates the object in one pass and reports *every*
 * problem, each prefixed by its JSON path ("$.buckets.code.models[2]:
 * ..."), so that an operator fixes a file in one round. Keys that are
 * absent take their documented defaults; unknown keys are problems (a typo
 * must not silently fall back to a default).
 *
 * Ownership: a cfg_t owns all of its memory; cfg_destroy frees it. A
 * cfg_problems_t collects messages; cfg_problems_clear frees them.
 * No I/O except cfg_load_file (reads one file) and cfg_print_reference.
 */
#ifndef BURSAR_CFG_H
#define BURSAR_CFG_H

#include <stddef.h>
#include <stdio.h>

#include "policies/allow.h"
#include "policies/base.h"
#include "policies/policy.h"

#define CFG_MAX_ARMS     64  /* models per bucket */
#define CFG_MAX_LISTEN   16  /* endpoints */
#define CFG_MAX_ALLOW    32  /* metrics.allow networks (WEBD_ALLOW_MAX) */
#define CFG_MAX_EXPIRY_S 1e9 /* numbers above 1e3 times this are refused */

typedef enum cfg_provider {
    CFG_PROVIDER_OPENAI = 0, /* any OpenAI-compatible API */
    CFG_PROVIDER_ANTHROPIC
} cfg_provider_t;

typedef struct cfg_model {
    char name[BURSAR_NAME_MAX]; /* key in "models" */
    cfg_provider_t provider;
    char *model;               /* the provider's model id */
    char *base_url;            /* API base URL */
    char *api_key_env;         /* environment variable holding the key */
    double price_in_per_mtok;  /* USD per million input tokens */
    double price_out_per_mtok; /* USD per million output tokens */
} cfg_model_t;

/* What a choose gets when no allowed model is affordable. */
typedef enum cfg_exhausted {
    CFG_EXHAUSTED_CHEAPEST = 0, /* the cheapest allowed model, over_budget */
    CFG_EXHAUSTED_REFUSE        /* error budget_exhausted, nothing recorded */
} cfg_exhausted_t;

typedef struct cfg_budget {
    double limit_usd;               /* per window; 0: no budget */
    double window_s;                /* window length, seconds (> 0) */
    cfg_exhausted_t when_exhausted; /* when nothing is affordable */
} cfg_budget_t;

typedef struct cfg_bucket {
    char name[BURSAR_NAME_MAX];
    size_t n_models;
    int models[CFG_MAX_ARMS]; /* indexes into cfg_t.models */
    double prior_alpha;       /* Beta prior (> 0) */
    double prior_beta;
    double half_life_s;        /* forgetting; 0: none */
    double latency_slo_ms;     /* 0: no objective */
    double expected_tokens_in; /* for the price-table cost prior */
    double expected_tokens_out;
    int has_budget; /* bucket cap present */
    cfg_budget_t budget;
} cfg_bucket_t;

/* A tenant's own budget (key in "tenants"; "*": every tenant not named). */
#define CFG_TENANT_MAX     32  /* a tenant's name, incl. NUL (proto.h) */
#define CFG_TENANT_DEFAULT "*" /* the entry of every tenant not named */
typedef struct cfg_tenant {
    char name[CFG_TENANT_MAX];
    int has_budget; /* "budget" present (required) */
    cfg_budget_t budget;
    double expected_requests; /* per window: the pacer's prior */
} cfg_tenant_t;

typedef enum cfg_unknown_bucket {
    CFG_UNKNOWN_ERROR = 0, /* answer unknown_bucket */
    CFG_UNKNOWN_CREATE     /* create from the template, up to max_buckets */
} cfg_unknown_bucket_t;

typedef enum cfg_expiry_outcome {
    CFG_EXPIRY_NONE = 0, /* no posterior update */
    CFG_EXPIRY_FAILURE   /* counts as reward 0 */
} cfg_expiry_outcome_t;

typedef enum cfg_expiry_cost {
    CFG_EXPIRY_COST_EXPECTED = 0, /* book the reserved expected cost */
    CFG_EXPIRY_COST_ZERO          /* release the reservation, book 0 */
} cfg_expiry_cost_t;

typedef struct cfg {
    size_t n_listen;
    char *listen[CFG_MAX_LISTEN];
    char *state_dir; /* NULL: not set in the file */

    size_t n_models;
    cfg_model_t *models;
    size_t n_buckets;
    cfg_bucket_t *buckets;

    cfg_unknown_bucket_t unknown_action;
    cfg_bucket_t bucket_template; /* name unused */
    size_t max_buckets;           /* cap on all buckets, incl. created */

    cfg_budget_t budget;
    double budget_prior_rate; /* requests/s assumed before data (from
                                 budget.expected_requests when given) */
    double budget_expected;   /* budget.expected_requests; 0: not given */
    size_t max_batches;       /* batches open at once (op batch) */

    size_t n_tenants;      /* tenants with a budget of their own, "*" too */
    cfg_tenant_t *tenants; /* n_tenants */
    size_t max_tenants;    /* tenant pacers at once (named + from "*") */

    double explore_floor;  /* [0, 1] */
    double decision_ttl_s; /* > 0 */
    cfg_expiry_outcome_t expiry_outcome;
    cfg_expiry_cost_t expiry_cost;

    char policy_name[BURSAR_NAME_MAX]; /* policy_kind_parse name */
    double dual_step;
    unsigned long seed; /* 0: seeded from the clock */

    unsigned health_failures; /* consecutive errors before cooldown */
    double health_cooldown_s; /* first cooldown */
    double health_max_cooldown_s;

    double latency_window_s; /* samples younger than this count */
    double latency_quantile; /* e.g. 0.95 */
    unsigned latency_min_samples;

    size_t map_size_mb;
    int nometasync;           /* store.sync == "nometasync" */
    size_t batch_max;         /* messages per group commit */
    double retention_s;       /* settled decisions older are pruned */
    size_t max_message_bytes; /* larger requests: message_too_large */

    /* security (docs/security.md) */
    int insecure;         /* 1: serve a non-loopback endpoint without CURVE */
    char *curve_secret;   /* curve.secret_key_file, or NULL: no CURVE */
    char *curve_clients;  /* curve.clients_file (the allow-list) */
    double max_tokens_in; /* ceilings of one outcome's report */
    double max_tokens_out;
    double max_latency_ms;
    double max_cost_usd;         /* ceiling of a model without prices */
    double client_rate_per_s;    /* requests per second per client; 0: none */
    double client_burst;         /* requests above the rate, at once */
    size_t client_inflight;      /* unsettled decisions per client; 0: none */
    unsigned health_min_clients; /* distinct clients whose provider errors
                                    cool a model down for everyone */

    /* the operator's HTTP address: /metrics and the status page
     * (controller/web.h); read at start only */
    char *metrics_listen; /* HOST:PORT, or NULL: not served */
    size_t n_metrics_allow;
    char *metrics_allow[CFG_MAX_ALLOW]; /* CIDR; none: loopback */
    char *metrics_token_env; /* variable holding a bearer token, or NULL */
    double status_sample_s;  /* the status page's history: a sample every */
    size_t status_samples;   /* ... this many kept */
} cfg_t;

typedef struct cfg_problems {
    size_t n;
    char **msg; /* "$.path: what is wrong" */
} cfg_problems_t;

void cfg_problems_clear(cfg_problems_t *pr);

/* The built-in default configuration (JSON text, static storage). */
const char *cfg_default_json(void);

/* Parses and validates JSON text. On success returns 0 and *out owns a new
 * cfg_t. On failure returns BURSAR_ECONFIG, *out is NULL and pr (if
 * non-NULL) holds
 * every problem found. pr is appended to, not cleared. */
int cfg_parse(const char *json, size_t len, cfg_t **out, cfg_problems_t *pr);

/* Reads a file and calls cfg_parse. A file that cannot be read is one
 * problem ("cannot read FILE: reason", no JSON path) and BURSAR_EIO. */
int cfg_load_file(const char *path, cfg_t **out, cfg_problems_t *pr);

void cfg_destroy(cfg_t **c);

/* Prints the configuration reference, a markdown table (key, type, range,
 * default, meaning) of every key, to f. docs/controller.md holds exactly
 * this text between the lines <!-- config-reference:begin --> and
 * <!-- config-reference:end --> (a test compares them). */
void cfg_print_reference(FILE *f);

/* The policy's parameters (kind, fixed model, floor, dual step) from the
 * configuration. Returns 0, or BURSAR_ECONFIG for an unknown policy or
 * fixed model. The controller and the simulator's tests both use it. */
int cfg_policy_params(const cfg_t *c, policy_params_t *pp);
/* The allowed set's parameters (health, latency) from the configuration. */
void cfg_allow_params(const cfg_t *c, allow_params_t *ap);

/* Index of a model or bucket by name, or -1. O(n). */
int cfg_model_find(const cfg_t *c, const char *name);
int cfg_bucket_find(const cfg_t *c, const char *name);
/* Index of the tenants entry named name (exactly; "*" finds the default
 * entry), or -1. O(n). */
int cfg_tenant_find(const cfg_t *c, const char *name);

/* Price-table cost of a request, USD. */
double cfg_model_cost(const cfg_model_t *m, double tokens_in,
                      double tokens_out);

#endif
