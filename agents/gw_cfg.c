/*
 * gw_cfg.c - bursar-gateway's configuration (gateway.h, docs/gateway.md).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/wcfg.h"

/* The keys of the configuration, the JSON type of each and the range of
 * each number (wcfg.h); "routing" is route_parse's, "validators" holds
 * validator_parse's specs, "models" is the codec's, "keys" and
 * "fallbacks" are checked below. */
static const wcfg_key_t gw_keys[] = {
    {"listen", cJSON_String, 0, 0, 0},
    {"controller", cJSON_String, 0, 0, 0},
    {"spool", cJSON_String, 0, 0, 0},
    {"fallback_model", cJSON_String, 0, 0, 0},
    {"fallbacks", cJSON_Object, 0, 0, 0},
    {"models", 0, 0, 0, 0},
    {"routing", cJSON_Object, 0, 0, 0},
    {"validators", cJSON_Object, 0, 0, 0},
    WCFG_INT("max_escalations", 0, GW_ESC_MAX),
    {"keys", cJSON_Array, 0, 0, 0},
    {"allow_anonymous", WCFG_BOOL, 0, 0, 0},
    {"limits", cJSON_Object, 1, 0, 0},
    WCFG_INT("limits.max_body_bytes", 1024, 256.0 * 1024 * 1024),
    WCFG_INT("limits.max_connections", 1, 65536),
    WCFG_INT("limits.idle_timeout_s", 1, 86400),
    WCFG_INT("controller_timeout_ms", 1, 600000),
    WCFG_INT("controller_attempts", 1, 10),
    WCFG_INT("controller_backoff_max_ms", 1, 3600000),
    {"metrics", cJSON_Object, 1, 0, 0},
    {"metrics.listen", cJSON_String, 0, 0, 0},
    {"metrics.allow", cJSON_Array, 0, 0, 0},
    {"metrics.token_env", cJSON_String, 0, 0, 0},
    WCFG_SHARED_KEYS,
};

/* keys[i]: {"tenant": NAME, "sha256": 64 hex digits}. */
static int
gw_key_parse(const cJSON *it, size_t i, gw_key_t *k, char *err, size_t cap)
{
    if (!cJSON_IsObject(it)) {
        snprintf(err, cap, "keys[%zu]: must be an object, got %s", i,
                 proto_type_name(it));
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, it)
    {
        if (strcmp(m->string, "tenant") != 0 &&
            strcmp(m->string, "sha256") != 0) {
            snprintf(err, cap, "keys[%zu].%.60s: unknown key", i, m->string);
            return -1;
        }
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "tenant");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "sha256");
    if (!cJSON_IsString(t) || !proto_tenant_valid(t->valuestring)) {
        snprintf(err, cap,
                 "keys[%zu].tenant: must be a string of 1 to %d characters "
                 "of [A-Za-z0-9._-]",
                 i, GW_TENANT_MAX - 1);
        return -1;
    }
    size_t bl = 0;
    if (!cJSON_IsString(h) || strlen(h->valuestring) != 64 ||
        sodium_hex2bin(k->sha256, sizeof k->sha256, h->valuestring, 64, NULL,
                       &bl, NULL) != 0 ||
        bl != 32) {
        snprintf(err, cap,
                 "keys[%zu].sha256: must be the 64 hex digits of the key's "
                 "SHA-256 (bursar-gateway --new-key TENANT writes one)",
                 i);
        return -1;
    }
    bursar_copy_str(k->tenant, sizeof k->tenant, t->valuestring);
    return 0;
}

static int
gw_cfg_keys(gw_cfg_t *c, char *err, size_t cap)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(c->root, "keys");
    size_t n = (size_t)cJSON_GetArraySize(keys);
    c->keys = bursar_calloc(n + 1, sizeof *c->keys);
    const cJSON *it;
    cJSON_ArrayForEach(it, keys)
    {
        gw_key_t *k = &c->keys[c->n_keys];
        if (gw_key_parse(it, c->n_keys, k, err, cap) != 0)
            return -1;
        for (size_t j = 0; j < c->n_keys; j++)
            if (memcmp(c->keys[j].sha256, k->sha256, 32) == 0) {
                snprintf(err, cap,
                         "keys[%zu].sha256: the same key as keys[%zu]",
                         c->n_keys, j);
                return -1;
            }
        c->n_keys++;
    }
    if (c->n_keys == 0 && !c->allow_anonymous) {
        snprintf(err, cap,
                 "keys: no application key is configured: add one "
                 "(bursar-gateway --new-key TENANT) or set "
                 "\"allow_anonymous\": true");
        return -1;
    }
    return 0;
}

static int
gw_cfg_validators(gw_cfg_t *c, char *err, size_t cap)
{
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(c->root, "validators");
    size_t n = (size_t)cJSON_GetArraySize(vs);
    c->validators = bursar_calloc(n + 1, sizeof *c->validators);
    const cJSON *it;
    cJSON_ArrayForEach(it, vs)
    {
        gw_validator_t *v = &c->validators[c->n_validators];
        char why[200];
        if (!*it->string || strlen(it->string) >= BURSAR_NAME_MAX) {
            snprintf(err, cap,
                     "validators.%.80s: a bucket name has 1 to %d "
                     "bytes",
                     it->string, BURSAR_NAME_MAX - 1);
            return -1;
        }
        if (validator_parse(it, &v->v, why, sizeof why) != 0) {
            snprintf(err, cap, "validators.%s: %s", it->string, why);
            return -1;
        }
        bursar_copy_str(v->bucket, sizeof v->bucket, it->string);
        c->n_validators++;
    }
    return 0;
}

/* The scalars, their defaults and the parts other modules read. */
static int
gw_cfg_fill(gw_cfg_t *c, char *err, size_t cap)
{
    const cJSON *r = c->root;
    c->listen = wcfg_str(r, "listen");
    if (!c->listen)
        c->listen = "127.0.0.1:8080";
    if (!webd_listen_ok(c->listen)) {
        snprintf(err, cap,
                 "listen: must be HOST:PORT (a port number up to 65535), "
                 "got \"%.80s\"",
                 c->listen);
        return -1;
    }
    c->controller = wcfg_str(r, "controller");
    char why[400];
    if (c->controller &&
        proto_endpoint_check(c->controller, why, sizeof why) != 0) {
        snprintf(err, cap, "controller: %s", why); /* "write tcp://..." */
        return -1;
    }
    if (c->controller && strncmp(c->controller, "tcp://", 6) != 0 &&
        strncmp(c->controller, "ipc://", 6) != 0) {
        snprintf(err, cap,
                 "controller: must be a ZeroMQ endpoint, tcp://HOST:PORT or "
                 "ipc://PATH, got \"%.80s\"",
                 c->controller);
        return -1;
    }
    if (!c->controller) {
        snprintf(err, cap,
                 "controller: required (e.g. \"tcp://127.0.0.1:7878\")");
        return -1;
    }
    c->spool = wcfg_str(r, "spool");
    if (!c->spool)
        c->spool = "bursar-gateway.spool";
    c->fallback_model = wcfg_str(r, "fallback_model");
    c->fallbacks = cJSON_GetObjectItemCaseSensitive(r, "fallbacks");
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(r, "curve");
    c->secret_key = wcfg_str(cv, "secret_key");
    c->server_key = wcfg_str(cv, "server_key");
    if (!c->secret_key != !c->server_key) {
        snprintf(err, cap, "curve.%s: required with curve.%s (both or neither)",
                 c->secret_key ? "server_key" : "secret_key",
                 c->secret_key ? "secret_key" : "server_key");
        return -1;
    }
    if (c->fallback_model && !*c->fallback_model) {
        snprintf(err, cap, "fallback_model: must not be empty");
        return -1;
    }
    c->max_escalations = (int)wcfg_num(r, "max_escalations", 2);
    c->allow_anonymous =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "allow_anonymous"));
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(r, "limits");
    c->max_body = (size_t)wcfg_num(lim, "max_body_bytes", GW_BODY_DEFAULT);
    c->max_connections =
        (unsigned)wcfg_num(lim, "max_connections", GW_CONN_DEFAULT);
    c->idle_timeout_s = (unsigned)wcfg_num(lim, "idle_timeout_s", 300);
    c->ctl_timeout_ms = (int)wcfg_num(r, "controller_timeout_ms", 500);
    c->ctl_attempts = (int)wcfg_num(r, "controller_attempts", 2);
    c->ctl_backoff_max_ms = (int)wcfg_num(r, "controller_backoff_max_ms", 5000);
    prov_opts_init(&c->prov);
    c->prov.max_attempts = 2;
    c->prov.max_inflight = 4;
    wcfg_provider_opts(cJSON_GetObjectItemCaseSensitive(r, "provider"),
                       &c->prov);
    return 0;
}

/* "metrics": the operator's address, its allow-list and token. */
static int
gw_cfg_metrics(gw_cfg_t *c, char *err, size_t cap)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->root, "metrics");
    c->metrics_listen = wcfg_str(m, "listen");
    if (c->metrics_listen && !webd_listen_ok(c->metrics_listen)) {
        snprintf(err, cap,
                 "metrics.listen: must be HOST:PORT (a port number up to "
                 "65535), got \"%.80s\"",
                 c->metrics_listen);
        return -1;
    }
    if (c->metrics_listen && strcmp(c->metrics_listen, c->listen) == 0) {
        snprintf(err, cap,
                 "metrics.listen: must differ from listen (\"%.80s\"): the "
                 "metrics are the operator's, the API the applications'",
                 c->listen);
        return -1;
    }
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(m, "allow"), *it;
    int n = cJSON_GetArraySize(allow);
    if (allow && (n < 1 || n > WEBD_ALLOW_MAX)) {
        snprintf(err, cap, "metrics.allow: must hold 1 to %d networks, got %d",
                 WEBD_ALLOW_MAX, n);
        return -1;
    }
    cJSON_ArrayForEach(it, allow)
    {
        size_t i = c->n_metrics_allow;
        if (!cJSON_IsString(it) || !webd_cidr_ok(it->valuestring)) {
            snprintf(err, cap,
                     "metrics.allow[%zu]: must be a network ADDRESS/BITS "
                     "(e.g. \"10.0.0.0/8\", \"::1/128\"), got %s%.60s%s",
                     i, cJSON_IsString(it) ? "\"" : "",
                     cJSON_IsString(it) ? it->valuestring : proto_type_name(it),
                     cJSON_IsString(it) ? "\"" : "");
            return -1;
        }
        c->metrics_allow[c->n_metrics_allow++] = it->valuestring;
    }
    c->metrics_token_env = wcfg_str(m, "token_env");
    if (c->metrics_token_env && !*c->metrics_token_env) {
        snprintf(err, cap,
                 "metrics.token_env: must name an environment variable");
        return -1;
    }
    return 0;
}

/* The parts read by other modules: routing, validators, keys, models. */
static int
gw_cfg_parts(gw_cfg_t *c, char *err, size_t cap)
{
    char why[256];
    if (route_parse(cJSON_GetObjectItemCaseSensitive(c->root, "routing"),
                    &c->route, why, sizeof why) != 0) {
        snprintf(err, cap, "%s%s",
                 strncmp(why, "routing", 7) ? "routing: " : "", why);
        return -1;
    }
    if (gw_cfg_validators(c, err, cap) != 0 || gw_cfg_keys(c, err, cap) != 0)
        return -1;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(c->root, "models");
    if (ms && wcfg_models_member(ms, &c->own, &c->n_own, err, cap) != 0)
        return -1;
    return 0;
}

int
gw_cfg_load(gw_cfg_t *c, const char *path, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    char *s = NULL;
    size_t len = 0;
    if (bursar_read_file(path, &s, &len) != 0) {
        snprintf(err, cap, "cannot read: %s", strerror(errno));
        return -1;
    }
    const char *end = NULL;
    c->root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!cJSON_IsObject(c->root)) {
        long line = 1, col = 1;
        for (const char *q = s; end && q < end && *q; q++, col++)
            if (*q == '\n') {
                line++;
                col = 0;
            }
        if (c->root)
            snprintf(err, cap, "must be a JSON object");
        else
            snprintf(err, cap, "malformed JSON at line %ld, column %ld", line,
                     col);
        free(s);
        return -1;
    }
    free(s);
    if (sodium_init() < 0) {
        snprintf(err, cap, "libsodium cannot start");
        return -1;
    }
    if (wcfg_check_keys(c->root, "", gw_keys,
                        sizeof gw_keys / sizeof gw_keys[0], err, cap) != 0 ||
        wcfg_check_fallbacks(
            cJSON_GetObjectItemCaseSensitive(c->root, "fallbacks"), err, cap) !=
            0 ||
        gw_cfg_fill(c, err, cap) != 0 || gw_cfg_metrics(c, err, cap) != 0)
        return -1;
    return gw_cfg_parts(c, err, cap);
}

void
gw_cfg_free(gw_cfg_t *c)
{
    for (size_t i = 0; i < c->n_validators; i++)
        validator_destroy(&c->validators[i].v);
    free(c->validators);
    free(c->keys);
    free(c->own);
    route_destroy(&c->route);
    cJSON_Delete(c->root);
    memset(c, 0, sizeof *c);
}

const char *
gw_cfg_tenant(const gw_cfg_t *c, const char *key)
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
    const char *found = NULL;
    for (size_t i = 0; i < c->n_keys; i++)
        if (sodium_memcmp(h, c->keys[i].sha256, 32) == 0)
            found = c->keys[i].tenant;
    return found;
}

const validator_t *
gw_cfg_validator(const gw_cfg_t *c, const char *bucket)
{
    const validator_t *any = NULL;
    for (size_t i = 0; i < c->n_validators; i++) {
        if (strcmp(c->validators[i].bucket, bucket) == 0)
            return c->validators[i].v;
        if (strcmp(c->validators[i].bucket, "*") == 0)
            any = c->validators[i].v;
    }
    return any;
}

int
gw_new_key(const char *tenant, char *key, size_t kcap, char *entry, size_t ecap)
{
    if (!proto_tenant_valid(tenant) || sodium_init() < 0)
        return -1;
    unsigned char raw[GW_KEY_BYTES], h[32];
    char b64[64], hex[65];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(key, kcap, "%s%s", GW_KEY_PREFIX, b64);
    crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(entry, ecap, "{\"tenant\":\"%s\",\"sha256\":\"%s\"}", tenant, hex);
    sodium_memzero(raw, sizeof raw);
    return 0;
}
