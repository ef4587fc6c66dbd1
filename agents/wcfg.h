/*
 * wcfg.h - what the configurations of bursar-agent and bursar-gateway
 * share: keys checked against a table (an unknown or mistyped key is an
 * error naming its JSON path), the buckets' fallbacks, the program's own
 * models table (where each model is called, with which key variable) and
 * its merge with the controller's models (their prices and health).
 */
#ifndef BURSAR_AGENTS_WCFG_H
#define BURSAR_AGENTS_WCFG_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "agents/bursar.h"
#include "agents/provider.h"

#define WCFG_BOOL (cJSON_True | cJSON_False) /* a wcfg_key_t type */

/* One key of a configuration: its path ("provider.timeout_ms"), its JSON
 * type (cJSON_String, cJSON_Number, cJSON_Object, cJSON_Array, WCFG_BOOL;
 * 0: any), whether its members are in the table too and, for a number,
 * its range: every number of both configurations is a whole number in
 * [min, max] (WCFG_INT). */
typedef struct wcfg_key {
    const char *path;
    int type;
    int members;
    double min, max;
} wcfg_key_t;

/* A row of a whole number in [lo, hi]. */
#define WCFG_INT(path, lo, hi)                                                 \
    {                                                                          \
        path, cJSON_Number, 0, lo, hi                                          \
    }

/* The keys both programs take: the provider calls' options (read by
 * wcfg_provider_opts) and the CURVE keys, for their key tables. */
#define WCFG_SHARED_KEYS                                                       \
    {"provider", cJSON_Object, 1, 0, 0},                                       \
        WCFG_INT("provider.timeout_ms", 1, 3600000),                           \
        WCFG_INT("provider.connect_timeout_ms", 1, 600000),                    \
        WCFG_INT("provider.max_attempts", 1, 10),                              \
        WCFG_INT("provider.backoff_ms", 0, 600000),                            \
        WCFG_INT("provider.backoff_max_ms", 0, 3600000),                       \
        WCFG_INT("provider.retry_after_max_ms", 0, 3600000),                   \
        WCFG_INT("provider.max_tokens", 1, 1000000),                           \
        {"curve", cJSON_Object, 1, 0, 0},                                      \
        {"curve.secret_key", cJSON_String, 0, 0, 0},                           \
    {                                                                          \
        "curve.server_key", cJSON_String, 0, 0, 0                              \
    }

/* Checks the members of o (at prefix, "" for the top) against the nk
 * keys: an unknown key ("concurency: unknown key (did you mean
 * concurrency?)": a key of the same object at most 2 edits away, or one
 * it begins), a wrong type ("concurrency: must be a number, got a
 * string"), a number out of its range ("concurrency: must be a whole
 * number in [1, 1024], got 0"). Returns 0, or -1 with "PATH: what is
 * wrong" in err. */
int wcfg_check_keys(const cJSON *o, const char *prefix, const wcfg_key_t *keys,
                    size_t nk, char *err, size_t cap);

/* The row of path, or NULL. */
const wcfg_key_t *wcfg_key(const wcfg_key_t *keys, size_t nk, const char *path);

/* Whether x is in the range of number row k (a whole number in [min,
 * max]); if not, "must be a whole number in [MIN, MAX], got X" in err. */
int wcfg_num_ok(const wcfg_key_t *k, double x, char *err, size_t cap);

/* "fallbacks": bucket -> model, both names of 1 to 63 bytes (fb NULL:
 * none). Returns 0, or -1 with "fallbacks.B: what is wrong" in err. */
int wcfg_check_fallbacks(const cJSON *fb, char *err, size_t cap);

/* The configuration's numbers and strings, already type-checked. */
const char *wcfg_str(const cJSON *c, const char *k);
long wcfg_num(const cJSON *c, const char *k, long dflt);

/* A models table ({"models":...}, text of len bytes, as a --models file
 * or the configuration's "models" holds it), read by the codec, each
 * base_url checked (prov_url_check). obj: "models" is an object keyed by
 * name (else an array), for the path in a message. On 0 *out (n models)
 * is the caller's (free); else -1 with "models.NAME.base_url: why" or the
 * codec's message in err. */
int wcfg_models_parse(const char *text, size_t len, int obj,
                      bursar_model_t **out, size_t *n, char *err, size_t cap);

/* The configuration's "models" member (any JSON), as wcfg_models_parse
 * reads it. */
int wcfg_models_member(const cJSON *models, bursar_model_t **out, size_t *n,
                       char *err, size_t cap);

/* Called for each controller model the own table does not describe, after
 * its endpoint was set to its provider's public API. */
typedef void (*wcfg_note_fn)(void *ud, const bursar_model_t *m);

/* The models to call: the controller's (ctl, in its order), each with the
 * own table's provider, model id, base_url and api_key_env when the table
 * describes it (else the provider's public API and conventional key
 * variable: prov_default_endpoint, then note) and the controller's prices
 * and health; then the table's models the controller does not list. A new
 * array of *n models (free). */
bursar_model_t *wcfg_merge(const bursar_model_t *own, size_t n_own,
                           const bursar_model_t *ctl, size_t n_ctl, size_t *n,
                           wcfg_note_fn note, void *ud);

/* Provider call options from the configuration's "provider" object (pc,
 * type-checked; NULL: none), over what p holds. */
void wcfg_provider_opts(const cJSON *pc, prov_opts_t *p);

/* The model named name in models, or NULL. */
const bursar_model_t *wcfg_find(const bursar_model_t *models, size_t n,
                                const char *name);

#endif
