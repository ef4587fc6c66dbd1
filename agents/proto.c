/*
 * proto.c - the bursar wire codec.
 *
 * Requests are parsed with cJSON (a request is small; the parse is not the
 * bottleneck next to the commit). Replies on the hot path (choose,
 * feedback, errors) are written with snprintf into one buffer: no tree is
 * built for them.
 */
#include "agents/proto.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const proto_code_names[PROTO_E_COUNT] = {
    "ok",
    "bad_json",
    "bad_request",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "unknown_op",
    "message_too_large",
    "unknown_bucket",
    "bucket_limit",
    "unknown_decision",
    "decision_expired",
    "unknown_model",
    "no_model_available",
    "store_error",
    "internal_error",
    "forbidden",
    "rate_limited",
    "budget_exhausted",
};

const char *
proto_code_name(proto_code_t code)
{
    if ((int)code < 0 || code >= PROTO_E_COUNT)
        return "internal_error";
    return proto_code_names[code];
}

int
proto_code_parse(const char *name)
{
    for (int i = 0; i < PROTO_E_COUNT; i++)
        if (strcmp(proto_code_names[i], name) == 0)
            return i;
    return -1;
}

static const char *const proto_op_names[] = {"choose", "feedback", "stats",
                                             "models", "ping", "export",
                                             "clock", "book", "batch",
                                             /* the admin ops */
                                             "adjust", "reset", "mark", "show"};
_Static_assert(sizeof proto_op_names / sizeof proto_op_names[0] ==
                   PROTO_OP_COUNT,
               "a name for every op");

const char *
proto_op_name(proto_op_t op)
{
    return (unsigned)op < PROTO_OP_COUNT ? proto_op_names[op] : "?";
}

static const char *const proto_kind_names[] = {"outcome", "correction",
                                               "provider_error"};

const char *
proto_kind_name(proto_kind_t kind)
{
    return proto_kind_names[kind];
}

const char *
proto_provider_name(proto_provider_t p)
{
    return p == PROTO_PROVIDER_ANTHROPIC ? "anthropic" : "openai";
}

double
proto_price_cost(double price_in_per_mtok, double price_out_per_mtok,
                 double tokens_in, double tokens_out)
{
    return (tokens_in * price_in_per_mtok + tokens_out * price_out_per_mtok) /
           1e6;
}

/* ------------------------------------------------------------------ */
/* Ids and quoting                                                     */

void
proto_id_format(uint64_t id, char out[PROTO_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = PROTO_ID_LEN - 1; i >= 0; i--) {
        out[i] = hex[id & 0xf];
        id >>= 4;
    }
    out[PROTO_ID_LEN] = '\0';
}

int
proto_token_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (i >= PROTO_TOKEN_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return i > 0;
}

int
proto_tenant_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (i >= PROTO_TENANT_MAX - 1 ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return i > 0;
}

int
proto_reason_valid(const char *s)
{
    size_t chars = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = 1;
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (*p >= 0x80 && (n = bursar_utf8_len(p)) == 0)
            return 0;
        if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
            return 0; /* C1 controls */
        p += n;
        if (++chars > PROTO_REASON_CHARS)
            return 0;
    }
    return chars > 0;
}

int
proto_endpoint_check(const char *ep, char *msg, size_t cap)
{
    const char *sep = strstr(ep, "://");
    if (!*ep) {
        snprintf(msg, cap,
                 "an empty endpoint: write tcp://HOST:PORT or "
                 "ipc://PATH");
        return -1;
    }
    if (!sep) { /* HOST:PORT, or a path */
        int path = strchr(ep, '/') && !strchr(ep, ':');
        snprintf(msg, cap,
                 "\"%.200s\" has no transport: write %s://%.200s "
                 "(an endpoint is tcp://HOST:PORT or ipc://PATH)",
                 ep, path ? "ipc" : "tcp", ep);
        return -1;
    }
    size_t n = (size_t)(sep - ep);
    if ((n == 3 && strncmp(ep, "ipc", 3) == 0) ||
        (n == 6 && strncmp(ep, "inproc", 6) == 0)) {
        if (sep[3])
            return 0;
        snprintf(msg, cap, "\"%.200s\" names no path: ipc://PATH", ep);
        return -1;
    }
    if (n != 3 || strncmp(ep, "tcp", 3) != 0) {
        snprintf(msg, cap,
                 "\"%.200s\": transport %.*s is not one bursar speaks: "
                 "write tcp://HOST:PORT or ipc://PATH",
                 ep, (int)(n < 20 ? n : 20), ep);
        return -1;
    }
    const char *colon = strrchr(sep + 3, ':');
    const char *bracket = strrchr(sep + 3, ']');
    if (!colon || (bracket && colon < bracket) || !colon[1] ||
        colon == sep + 3) {
        snprintf(msg, cap,
                 "\"%.200s\" needs a host and a port: tcp://HOST:PORT (e.g. "
                 "tcp://127.0.0.1:7878)",
                 ep);
        return -1;
    }
    return 0;
}

int
proto_id_parse(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; s[i]; i++) {
        if (i >= PROTO_ID_LEN)
            return BURSAR_EINVAL;
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            return BURSAR_EINVAL;
        v = (v << 4) | d;
    }
    if (i != PROTO_ID_LEN)
        return BURSAR_EINVAL;
    *id = v;
    return 0;
}

size_t
proto_json_quote(char *buf, size_t cap, const char *s)
{
    size_t n = 0;
#define PUT(ch)                                                                \
    do {                                                                       \
        if (n + 1 < cap)                                                       \
            buf[n] = (ch);                                                     \
        n++;                                                                   \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') {
            PUT('\\');
            PUT((char)ch);
        } else if (ch < 0x20) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('u');
            PUT('0');
            PUT('0');
            PUT(hex[ch >> 4]);
            PUT(hex[ch & 0xf]);
        } else if (ch < 0x80) {
            PUT((char)ch);
        } else {
            /* Bytes that are not well-formed UTF-8 (a name sent raw in a
             * request may hold any) become U+FFFD, so that the reply is
             * valid UTF-8 JSON. */
            size_t len = bursar_utf8_len(p);
            if (len == 0) {
                PUT('\\');
                PUT('u');
                PUT('f');
                PUT('f');
                PUT('f');
                PUT('d');
            } else {
                for (size_t i = 0; i < len; i++)
                    PUT((char)p[i]);
                p += len - 1;
            }
        }
    }
    PUT('"');
#undef PUT
    if (cap)
        buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* ------------------------------------------------------------------ */
/* A growing string                                                    */

typedef struct proto_sb {
    char *s;
    size_t len, cap;
} proto_sb_t;

/* Room for more bytes and the NUL (out of memory aborts, base.h). */
static void
proto_sb_reserve(proto_sb_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->s = bursar_realloc(b->s, cap);
    b->cap = cap;
}

/* Formats into the free space directly; grows and formats again only when
 * it did not fit (one vsnprintf in the common case). */
static void
proto_sb_printf(proto_sb_t *b, const char *fmt, ...)
{
    proto_sb_reserve(b, 64);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        proto_sb_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Appends a literal. */
static void
proto_sb_puts(proto_sb_t *b, const char *str)
{
    size_t n = strlen(str);
    proto_sb_reserve(b, n);
    memcpy(b->s + b->len, str, n + 1);
    b->len += n;
}

static void
proto_sb_quote(proto_sb_t *b, const char *s)
{
    size_t need = proto_json_quote(NULL, 0, s);
    proto_sb_reserve(b, need);
    proto_json_quote(b->s + b->len, b->cap - b->len, s);
    b->len += need;
}

static char *
proto_sb_finish(proto_sb_t *b)
{
    proto_sb_reserve(b, 0);
    b->s[b->len] = '\0';
    return b->s;
}

/* A double as JSON: finite numbers with enough digits to round-trip
 * a propensity or a cost; non-finite values as null. */
static void
proto_sb_number(proto_sb_t *b, double v)
{
    if (!isfinite(v))
        proto_sb_puts(b, "null");
    else
        proto_sb_printf(b, "%.10g", v);
}

/* ------------------------------------------------------------------ */
/* Request parsing                                                     */

static proto_code_t
proto_fail(proto_error_t *err, proto_code_t code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

const char *
proto_type_name(const struct cJSON *j)
{
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    return "invalid";
}

/* Reads a name field (string, 1..PROTO_NAME_MAX-1 bytes). */
static proto_code_t
proto_get_name(const cJSON *root, const char *key, int required, char *out,
               proto_error_t *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) {
        if (required)
            return proto_fail(err, PROTO_E_MISSING_FIELD,
                              "field \"%s\" is required", key);
        return PROTO_OK;
    }
    if (!cJSON_IsString(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"%s\" must be a string, got %s", key,
                          proto_type_name(j));
    size_t n = strlen(j->valuestring);
    if (n == 0 || n >= PROTO_NAME_MAX)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"%s\" must have 1 to %d bytes", key,
                          PROTO_NAME_MAX - 1);
    memcpy(out, j->valuestring, n + 1);
    return PROTO_OK;
}

/* Reads an optional non-negative finite number; *has is set when present.
 * max bounds it (inclusive). */
static proto_code_t
proto_get_number(const cJSON *root, const char *key, double max, int *has,
                 double *out, proto_error_t *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j)
        return PROTO_OK;
    if (!cJSON_IsNumber(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"%s\" must be a number, got %s", key,
                          proto_type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v > max)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"%s\" must be in [0, %g], got %g", key, max,
                          v);
    if (has)
        *has = 1;
    *out = v;
    return PROTO_OK;
}

/* A decision token in an optional field of a request (absent or null:
 * out stays ""). */
static proto_code_t
proto_get_token(const cJSON *root, const char *key, char *out,
                proto_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return PROTO_OK;
    if (!cJSON_IsString(v))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"%s\" must be a string, got %s", key,
                          proto_type_name(v));
    if (!proto_token_valid(v->valuestring))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"%s\" must be a decision token "
                          "(1 to %d characters of A-Z a-z 0-9 _ -)",
                          key, PROTO_TOKEN_MAX);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return PROTO_OK;
}

/* The optional "tenant" of object o (absent or null: out stays ""); field
 * is its name in messages ("tenant", "local.tenant"). */
static proto_code_t
proto_get_tenant(const cJSON *o, const char *field, char *out,
                 proto_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "tenant");
    if (!v || cJSON_IsNull(v))
        return PROTO_OK;
    if (!cJSON_IsString(v))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"%s\" must be a string, got %s", field,
                          proto_type_name(v));
    if (!proto_tenant_valid(v->valuestring))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"%s\" must be a tenant name (1 to %d "
                          "characters of A-Z a-z 0-9 . _ -)",
                          field, PROTO_TENANT_MAX - 1);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return PROTO_OK;
}

/* choose's "batch": PROTO_BATCH_LEN lowercase hex digits, or absent. */
static proto_code_t
proto_get_batch(const cJSON *root, char *out, proto_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "batch");
    if (!v || cJSON_IsNull(v))
        return PROTO_OK;
    if (!cJSON_IsString(v))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"batch\" must be a string (a batch id), "
                          "got %s",
                          proto_type_name(v));
    uint64_t id;
    if (strlen(v->valuestring) != PROTO_BATCH_LEN ||
        proto_id_parse(v->valuestring, &id) != 0)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"batch\" must be a batch id (%d hex "
                          "digits, as op batch returned)",
                          PROTO_BATCH_LEN);
    memcpy(out, v->valuestring, PROTO_BATCH_LEN + 1);
    return PROTO_OK;
}

/* {"op":"batch","bucket":B,"size":N[,"tenant":T]} */
static proto_code_t
proto_parse_batch(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    int has = 0;
    proto_code_t rc = proto_get_name(root, "bucket", 1, req->bucket, err);
    if (!rc)
        rc = proto_get_tenant(root, "tenant", req->tenant, err);
    if (!rc)
        rc = proto_get_number(root, "size", PROTO_BATCH_SIZE_MAX, &has,
                              &req->batch_size, err);
    if (rc)
        return rc;
    if (!has)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"size\" is required");
    if (req->batch_size < 1 || req->batch_size != floor(req->batch_size))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"size\" must be a whole number of "
                          "requests, at least 1");
    return PROTO_OK;
}

static proto_code_t
proto_parse_choose(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    proto_code_t rc = proto_get_name(root, "bucket", 1, req->bucket, err);
    if (!rc)
        rc = proto_get_token(root, "escalates", req->escalates, err);
    if (!rc)
        rc = proto_get_tenant(root, "tenant", req->tenant, err);
    if (!rc)
        rc = proto_get_batch(root, req->batch, err);
    if (rc)
        return rc;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "exclude");
    if (!ex || cJSON_IsNull(ex))
        return PROTO_OK;
    if (!cJSON_IsArray(ex))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"exclude\" must be an array of model names, "
                          "got %s",
                          proto_type_name(ex));
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ex)
    {
        if (!cJSON_IsString(m))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"exclude[%d]\" must be a string, got %s",
                              i, proto_type_name(m));
        if (req->n_exclude >= PROTO_MAX_EXCLUDE)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "field \"exclude\" holds more than %d names",
                              PROTO_MAX_EXCLUDE);
        size_t n = strlen(m->valuestring);
        if (n >= PROTO_NAME_MAX)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "field \"exclude[%d]\" is too long", i);
        memcpy(req->exclude[req->n_exclude++], m->valuestring, n + 1);
        i++;
    }
    return PROTO_OK;
}

/* The fields of an outcome: success or reward, cost, tokens, latency,
 * the model that served. */
static proto_code_t
proto_parse_outcome(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    proto_code_t rc;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "success");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "reward");
    if (s && r)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "give either \"success\" or \"reward\", not "
                          "both");
    if (!s && !r)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "an outcome needs field \"success\" or "
                          "\"reward\"");
    if (s) {
        if (!cJSON_IsBool(s))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"success\" must be a boolean, got "
                              "%s",
                              proto_type_name(s));
        req->has_success = 1;
        req->has_reward = 1;
        req->reward = cJSON_IsTrue(s) ? 1.0 : 0.0;
    } else if ((rc = proto_get_number(root, "reward", 1.0, &req->has_reward,
                                      &req->reward, err))) {
        return rc;
    }
    if ((rc = proto_get_number(root, "cost_usd", 1e9, &req->has_cost,
                               &req->cost_usd, err)))
        return rc;
    if ((rc = proto_get_number(root, "tokens_in", 1e12, &req->has_tokens,
                               &req->tokens_in, err)))
        return rc;
    if ((rc = proto_get_number(root, "tokens_out", 1e12, &req->has_tokens,
                               &req->tokens_out, err)))
        return rc;
    if ((rc = proto_get_number(root, "latency_ms", 1e10, &req->has_latency,
                               &req->latency_ms, err)))
        return rc;
    if ((rc = proto_get_name(root, "model", 0, req->model, err)))
        return rc;
    return PROTO_OK;
}

/* The event of a feedback or a booking: "kind" and what the kind takes. */
static proto_code_t
proto_parse_event(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!k)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"kind\" is required");
    if (!cJSON_IsString(k))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"kind\" must be a string, got %s",
                          proto_type_name(k));
    if (strcmp(k->valuestring, "outcome") == 0)
        req->kind = PROTO_KIND_OUTCOME;
    else if (strcmp(k->valuestring, "correction") == 0)
        req->kind = PROTO_KIND_CORRECTION;
    else if (strcmp(k->valuestring, "provider_error") == 0)
        req->kind = PROTO_KIND_PROVIDER_ERROR;
    else
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"kind\" must be \"outcome\", \"correction\" "
                          "or \"provider_error\"");

    proto_code_t rc;
    if (req->kind == PROTO_KIND_OUTCOME) {
        return proto_parse_outcome(root, req, err);
    } else if (req->kind == PROTO_KIND_PROVIDER_ERROR) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
        if (e && !cJSON_IsString(e) && !cJSON_IsNull(e))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"error\" must be a string, got %s",
                              proto_type_name(e));
        if (e && cJSON_IsString(e))
            snprintf(req->error, sizeof req->error, "%s", e->valuestring);
        if ((rc = proto_get_number(root, "latency_ms", 1e10, &req->has_latency,
                                   &req->latency_ms, err)))
            return rc;
    }
    return PROTO_OK;
}

static proto_code_t
proto_parse_feedback(const cJSON *root, proto_request_t *req,
                     proto_error_t *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "decision_id");
    if (!id)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"decision_id\" is required");
    if (!cJSON_IsString(id))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"decision_id\" must be a string, got %s",
                          proto_type_name(id));
    if (!proto_token_valid(id->valuestring))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"decision_id\" must be a decision token "
                          "(1 to %d characters of A-Z a-z 0-9 _ -)",
                          PROTO_TOKEN_MAX);
    memcpy(req->decision, id->valuestring, strlen(id->valuestring) + 1);
    return proto_parse_event(root, req, err);
}

/* A name member of "local" (1 to PROTO_NAME_MAX - 1 bytes). */
static proto_code_t
proto_local_name(const cJSON *l, const char *key, char *out, proto_error_t *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(l, key);
    if (!j)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"local.%s\" is required", key);
    if (!cJSON_IsString(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"local.%s\" must be a string, got %s", key,
                          proto_type_name(j));
    size_t n = strlen(j->valuestring);
    if (n == 0 || n >= PROTO_NAME_MAX)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"local.%s\" must have 1 to %d bytes", key,
                          PROTO_NAME_MAX - 1);
    memcpy(out, j->valuestring, n + 1);
    return PROTO_OK;
}

/* {"op":"book","local":{"id","bucket","model","time"[,"tenant"]},
 * event}. */
static proto_code_t
proto_parse_book(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "local");
    if (!l)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"local\" is required");
    if (!cJSON_IsObject(l))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"local\" must be an object, got %s",
                          proto_type_name(l));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(l, "id");
    if (!id)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"local.id\" is required");
    if (!cJSON_IsString(id))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"local.id\" must be a string, got %s",
                          proto_type_name(id));
    if (!proto_token_valid(id->valuestring) ||
        strlen(id->valuestring) >= PROTO_LOCAL_ID_MAX)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"local.id\" must have 1 to %d characters "
                          "of A-Z a-z 0-9 _ -",
                          PROTO_LOCAL_ID_MAX - 1);
    memcpy(req->local_id, id->valuestring, strlen(id->valuestring) + 1);
    proto_code_t rc;
    if ((rc = proto_local_name(l, "bucket", req->bucket, err)) ||
        (rc = proto_local_name(l, "model", req->local_model, err)) ||
        (rc = proto_get_tenant(l, "local.tenant", req->tenant, err)))
        return rc;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(l, "time");
    if (!t)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"local.time\" is required");
    if (!cJSON_IsNumber(t))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"local.time\" must be a number (Unix "
                          "seconds), got %s",
                          proto_type_name(t));
    if (!isfinite(t->valuedouble) || t->valuedouble < 0 ||
        t->valuedouble > 1e11)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"local.time\" must be in [0, 1e11] (Unix "
                          "seconds), got %g",
                          t->valuedouble);
    req->local_time = t->valuedouble;
    return proto_parse_event(root, req, err);
}

static proto_code_t
proto_parse_export(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "since");
    if (s) {
        if (!cJSON_IsNumber(s))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"since\" must be a number (Unix "
                              "seconds), got %s",
                              proto_type_name(s));
        if (!isfinite(s->valuedouble))
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "field \"since\" must be finite");
        req->since = s->valuedouble;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "after");
    if (a && !cJSON_IsNull(a)) {
        if (!cJSON_IsString(a))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"after\" must be a decision id string, "
                              "got %s",
                              proto_type_name(a));
        if (proto_id_parse(a->valuestring, &req->after) != 0)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "field \"after\" must be %d hex digits",
                              PROTO_ID_LEN);
        req->has_after = 1;
    }
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(root, "admin");
    if (adm && !cJSON_IsNull(adm)) {
        if (!cJSON_IsBool(adm))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"admin\" must be a boolean, got %s",
                              proto_type_name(adm));
        req->export_admin = cJSON_IsTrue(adm);
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "limit");
    if (l) {
        if (!cJSON_IsNumber(l))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "field \"limit\" must be a number, got %s",
                              proto_type_name(l));
        double v = l->valuedouble;
        if (!(v >= 1 && v <= PROTO_EXPORT_MAX) || v != floor(v))
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "field \"limit\" must be a whole number in "
                              "[1, %d]",
                              PROTO_EXPORT_MAX);
        req->limit = (unsigned)v;
    }
    return PROTO_OK;
}

/* ------------------------------------------------------------------ */
/* Request parsing: the admin ops                                      */

/* The required "reason" of an admin op. */
static proto_code_t
proto_get_reason(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "reason");
    if (!r || cJSON_IsNull(r))
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"reason\" is required: say why (it is kept "
                          "in the admin log)");
    if (!cJSON_IsString(r))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"reason\" must be a string, got %s",
                          proto_type_name(r));
    if (!proto_reason_valid(r->valuestring))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"reason\" must have 1 to %d characters of "
                          "UTF-8 text, no control characters",
                          PROTO_REASON_CHARS);
    memcpy(req->reason, r->valuestring, strlen(r->valuestring) + 1);
    return PROTO_OK;
}

/* {"op":"adjust","amount_usd":A[,"bucket":B][,"tenant":T],"reason":R} */
static proto_code_t
proto_parse_adjust(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "amount_usd");
    if (!a)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"amount_usd\" is required");
    if (!cJSON_IsNumber(a))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"amount_usd\" must be a number, got %s",
                          proto_type_name(a));
    if (!isfinite(a->valuedouble) || fabs(a->valuedouble) > PROTO_ADJUST_MAX)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"amount_usd\" must be in [-%g, %g], got %g",
                          PROTO_ADJUST_MAX, PROTO_ADJUST_MAX, a->valuedouble);
    req->amount_usd = a->valuedouble;
    proto_code_t rc = proto_get_name(root, "bucket", 0, req->bucket, err);
    if (!rc)
        rc = proto_get_tenant(root, "tenant", req->tenant, err);
    if (!rc)
        rc = proto_get_reason(root, req, err);
    return rc;
}

/* {"op":"mark","model":M,"state":"down"|"up","reason":R} */
static proto_code_t
proto_parse_mark(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    proto_code_t rc = proto_get_name(root, "model", 1, req->model, err);
    if (rc)
        return rc;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "state");
    if (!st)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"state\" is required (\"down\" or \"up\")");
    if (!cJSON_IsString(st))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"state\" must be a string, got %s",
                          proto_type_name(st));
    if (strcmp(st->valuestring, "down") == 0)
        req->mark_down = 1;
    else if (strcmp(st->valuestring, "up") != 0)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"state\" must be \"down\" or \"up\"");
    return proto_get_reason(root, req, err);
}

/* {"op":"show","decision_id":ID}: a decision token, or a sequence id (16
 * hex digits, as export's "seq"), which is also a well-formed token.
 * ("id" is every request's echo.) */
static proto_code_t
proto_parse_show(const cJSON *root, proto_request_t *req, proto_error_t *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "decision_id");
    if (!id)
        return proto_fail(err, PROTO_E_MISSING_FIELD,
                          "field \"decision_id\" is required (a decision "
                          "token or a sequence id)");
    if (!cJSON_IsString(id))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "field \"decision_id\" must be a string, got %s",
                          proto_type_name(id));
    if (!proto_token_valid(id->valuestring))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "field \"decision_id\" must be a decision token or "
                          "a sequence id (1 to %d characters of A-Z a-z 0-9 _ "
                          "-)",
                          PROTO_TOKEN_MAX);
    memcpy(req->show_id, id->valuestring, strlen(id->valuestring) + 1);
    return PROTO_OK;
}

/* The fields of an admin op o; PROTO_E_UNKNOWN_OP when o is none. */
static proto_code_t
proto_parse_admin(const cJSON *root, const char *o, proto_request_t *req,
                  proto_error_t *err)
{
    proto_code_t rc;
    if (strcmp(o, "adjust") == 0) {
        req->op = PROTO_OP_ADJUST;
        return proto_parse_adjust(root, req, err);
    }
    if (strcmp(o, "reset") == 0) {
        req->op = PROTO_OP_RESET;
        rc = proto_get_name(root, "bucket", 1, req->bucket, err);
        if (!rc)
            rc = proto_get_name(root, "model", 1, req->model, err);
        return rc ? rc : proto_get_reason(root, req, err);
    }
    if (strcmp(o, "mark") == 0) {
        req->op = PROTO_OP_MARK;
        return proto_parse_mark(root, req, err);
    }
    if (strcmp(o, "show") == 0) {
        req->op = PROTO_OP_SHOW;
        return proto_parse_show(root, req, err);
    }
    char q[96];
    proto_json_quote(q, sizeof q, o);
    return proto_fail(err, PROTO_E_UNKNOWN_OP,
                      "unknown op %s in field \"op\" (choose, feedback, "
                      "book, batch, stats, models, ping, export; operators: "
                      "adjust, reset, mark, show)",
                      q);
}

/* The fields of op o (the value of "op"). */
static proto_code_t
proto_parse_op(const cJSON *root, const char *o, proto_request_t *req,
               proto_error_t *err)
{
    proto_code_t rc = PROTO_OK;
    if (strcmp(o, "choose") == 0) {
        req->op = PROTO_OP_CHOOSE;
        rc = proto_parse_choose(root, req, err);
    } else if (strcmp(o, "feedback") == 0) {
        req->op = PROTO_OP_FEEDBACK;
        rc = proto_parse_feedback(root, req, err);
    } else if (strcmp(o, "stats") == 0) {
        req->op = PROTO_OP_STATS;
        rc = proto_get_name(root, "bucket", 0, req->bucket, err);
    } else if (strcmp(o, "models") == 0) {
        req->op = PROTO_OP_MODELS;
    } else if (strcmp(o, "ping") == 0) {
        req->op = PROTO_OP_PING;
    } else if (strcmp(o, "export") == 0) {
        req->op = PROTO_OP_EXPORT;
        rc = proto_parse_export(root, req, err);
    } else if (strcmp(o, "book") == 0) {
        req->op = PROTO_OP_BOOK;
        rc = proto_parse_book(root, req, err);
    } else if (strcmp(o, "batch") == 0) {
        req->op = PROTO_OP_BATCH;
        rc = proto_parse_batch(root, req, err);
    } else if (strcmp(o, "clock") == 0) {
        req->op = PROTO_OP_CLOCK;
        int has = 0;
        rc = proto_get_number(root, "advance_s", 1e9, &has, &req->advance_s,
                              err);
        if (!rc && !has)
            rc = proto_fail(err, PROTO_E_MISSING_FIELD,
                            "field \"advance_s\" is required");
    } else {
        rc = proto_parse_admin(root, o, req, err);
    }
    return rc;
}

proto_code_t
proto_parse_request(const char *buf, size_t len, proto_request_t *req,
                    proto_error_t *err)
{
    memset(req, 0, sizeof *req);
    req->since = -INFINITY;
    req->limit = PROTO_EXPORT_DEFAULT;
    err->code = PROTO_OK;
    err->message[0] = '\0';

    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root)
        return proto_fail(
            err, PROTO_E_BAD_JSON,
            "the request is not valid JSON (near byte %ld)",
            cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - buf) : 0L);
    proto_code_t rc = PROTO_OK;
    if (!cJSON_IsObject(root)) {
        rc = proto_fail(err, PROTO_E_BAD_REQUEST,
                        "the request must be a JSON object, got %s",
                        proto_type_name(root));
        goto out;
    }
    const cJSON *echo = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (echo) {
        if (!cJSON_IsString(echo) && !cJSON_IsNumber(echo)) {
            rc = proto_fail(err, PROTO_E_WRONG_TYPE,
                            "field \"id\" must be a string or a number, got "
                            "%s",
                            proto_type_name(echo));
            goto out;
        }
        char *e = cJSON_PrintUnformatted(echo);
        if (!e || strlen(e) >= PROTO_ECHO_MAX) {
            free(e);
            rc = proto_fail(err, PROTO_E_INVALID_VALUE,
                            "field \"id\" is longer than %d bytes",
                            PROTO_ECHO_MAX - 1);
            goto out;
        }
        snprintf(req->echo, sizeof req->echo, "%s", e);
        free(e);
    }
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (!op) {
        rc = proto_fail(err, PROTO_E_MISSING_FIELD, "field \"op\" is required");
        goto out;
    }
    if (!cJSON_IsString(op)) {
        rc = proto_fail(err, PROTO_E_WRONG_TYPE,
                        "field \"op\" must be a string, got %s",
                        proto_type_name(op));
        goto out;
    }
    rc = proto_parse_op(root, op->valuestring, req, err);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

static void
proto_sb_begin(proto_sb_t *b, const char *echo, int ok)
{
    proto_sb_printf(b, "{\"ok\":%s", ok ? "true" : "false");
    if (echo && echo[0])
        proto_sb_printf(b, ",\"id\":%s", echo);
}

char *
proto_write_error(const char *echo, proto_code_t code, const char *message)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 0);
    proto_sb_printf(
        &b, ",\"error\":{\"code\":\"%s\",\"message\":", proto_code_name(code));
    proto_sb_quote(&b, message ? message : "");
    proto_sb_puts(&b, "}}");
    return proto_sb_finish(&b);
}

char *
proto_write_ok(const char *echo, int duplicate)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 1);
    if (duplicate)
        proto_sb_puts(&b, ",\"duplicate\":true");
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_write_conflict(const char *echo, double recorded_reward)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 1);
    proto_sb_puts(&b, ",\"duplicate\":true,\"conflict\":true,"
                      "\"recorded_reward\":");
    proto_sb_number(&b, recorded_reward);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_write_batch(const char *echo, const char *id, double share_usd,
                  double target_usd)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 1);
    proto_sb_printf(&b, ",\"batch\":\"%s\",\"share_usd\":", id);
    proto_sb_number(&b, share_usd);
    proto_sb_puts(&b, ",\"target_usd\":");
    proto_sb_number(&b, target_usd);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_write_choice(const char *echo, const proto_choice_t *c)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 1);
    proto_sb_printf(&b, ",\"decision_id\":\"%s\",\"model\":", c->decision);
    proto_sb_quote(&b, c->model);
    proto_sb_puts(&b, ",\"propensity\":");
    proto_sb_number(&b, c->propensity);
    proto_sb_puts(&b, ",\"fallbacks\":[");
    for (size_t i = 0; i < c->n_fallbacks; i++) {
        if (i)
            proto_sb_puts(&b, ",");
        proto_sb_quote(&b, c->fallbacks[i]);
    }
    proto_sb_puts(&b, "],\"expected_cost_usd\":");
    proto_sb_number(&b, c->expected_cost_usd);
    if (c->over_budget)
        proto_sb_puts(&b, ",\"over_budget\":true");
    if (c->explored)
        proto_sb_puts(&b, ",\"explored\":true");
    if (c->tenant_unbudgeted)
        proto_sb_puts(&b, ",\"tenant_unbudgeted\":true");
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

/* ------------------------------------------------------------------ */
/* Client side                                                         */

char *
proto_format_choose(const char *bucket, const char *const *exclude,
                    size_t n_exclude)
{
    return proto_format_escalate(bucket, exclude, n_exclude, NULL);
}

char *
proto_format_escalate(const char *bucket, const char *const *exclude,
                      size_t n_exclude, const char *escalates)
{
    return proto_format_choose_tenant(bucket, exclude, n_exclude, escalates,
                                      NULL);
}

char *
proto_format_choose_tenant(const char *bucket, const char *const *exclude,
                           size_t n_exclude, const char *escalates,
                           const char *tenant)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"choose\",\"bucket\":");
    proto_sb_quote(&b, bucket);
    if (n_exclude) {
        proto_sb_puts(&b, ",\"exclude\":[");
        for (size_t i = 0; i < n_exclude; i++) {
            if (i)
                proto_sb_puts(&b, ",");
            proto_sb_quote(&b, exclude[i]);
        }
        proto_sb_puts(&b, "]");
    }
    if (escalates && *escalates) {
        proto_sb_puts(&b, ",\"escalates\":");
        proto_sb_quote(&b, escalates);
    }
    if (tenant && *tenant) {
        proto_sb_puts(&b, ",\"tenant\":");
        proto_sb_quote(&b, tenant);
    }
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

/* The fields of a feedback event after "kind" (no closing brace). */
static void
proto_sb_feedback_fields(proto_sb_t *b, const proto_feedback_t *f)
{
    if (f->kind == PROTO_KIND_OUTCOME) {
        if (f->has_reward) {
            proto_sb_puts(b, ",\"reward\":");
            proto_sb_number(b, f->reward);
        } else {
            proto_sb_printf(b, ",\"success\":%s",
                            f->success ? "true" : "false");
        }
        if (f->has_cost) {
            proto_sb_puts(b, ",\"cost_usd\":");
            proto_sb_number(b, f->cost_usd);
        }
        if (f->has_tokens) {
            proto_sb_puts(b, ",\"tokens_in\":");
            proto_sb_number(b, f->tokens_in);
            proto_sb_puts(b, ",\"tokens_out\":");
            proto_sb_number(b, f->tokens_out);
        }
        if (f->model) {
            proto_sb_puts(b, ",\"model\":");
            proto_sb_quote(b, f->model);
        }
    }
    if (f->has_latency && f->kind != PROTO_KIND_CORRECTION) {
        proto_sb_puts(b, ",\"latency_ms\":");
        proto_sb_number(b, f->latency_ms);
    }
    if (f->kind == PROTO_KIND_PROVIDER_ERROR && f->error) {
        proto_sb_puts(b, ",\"error\":");
        proto_sb_quote(b, f->error);
    }
}

char *
proto_format_feedback(const proto_feedback_t *f)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"feedback\",\"decision_id\":");
    proto_sb_quote(&b, f->decision);
    proto_sb_printf(&b, ",\"kind\":\"%s\"", proto_kind_name(f->kind));
    proto_sb_feedback_fields(&b, f);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_book(const proto_local_t *l, const proto_feedback_t *f)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"book\",\"local\":{\"id\":");
    proto_sb_quote(&b, l->id);
    proto_sb_puts(&b, ",\"bucket\":");
    proto_sb_quote(&b, l->bucket);
    proto_sb_puts(&b, ",\"model\":");
    proto_sb_quote(&b, l->model);
    proto_sb_puts(&b, ",\"time\":");
    proto_sb_printf(&b, "%.17g", l->time);
    if (l->tenant && *l->tenant) {
        proto_sb_puts(&b, ",\"tenant\":");
        proto_sb_quote(&b, l->tenant);
    }
    proto_sb_printf(&b, "},\"kind\":\"%s\"", proto_kind_name(f->kind));
    proto_sb_feedback_fields(&b, f);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_simple(proto_op_t op)
{
    proto_sb_t b = {0};
    proto_sb_printf(&b, "{\"op\":\"%s\"}", proto_op_name(op));
    return proto_sb_finish(&b);
}

char *
proto_format_stats(const char *bucket)
{
    if (!bucket)
        return proto_format_simple(PROTO_OP_STATS);
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"stats\",\"bucket\":");
    proto_sb_quote(&b, bucket);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_export(double since, int has_after, uint64_t after, unsigned limit)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"export\"");
    if (isfinite(since)) {
        proto_sb_puts(&b, ",\"since\":");
        proto_sb_printf(&b, "%.17g", since);
    }
    if (has_after) {
        char id[PROTO_ID_LEN + 1];
        proto_id_format(after, id);
        proto_sb_printf(&b, ",\"after\":\"%s\"", id);
    }
    proto_sb_printf(&b, ",\"limit\":%u}", limit);
    return proto_sb_finish(&b);
}

char *
proto_format_batch(const char *bucket, double size, const char *tenant)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"batch\",\"bucket\":");
    proto_sb_quote(&b, bucket);
    proto_sb_printf(&b, ",\"size\":%.17g", size);
    if (tenant && tenant[0]) {
        proto_sb_puts(&b, ",\"tenant\":");
        proto_sb_quote(&b, tenant);
    }
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_clock(double advance_s)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"clock\",\"advance_s\":");
    proto_sb_printf(&b, "%.17g", advance_s);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

/* The admin ops (client side) */

char *
proto_format_adjust(double amount_usd, const char *bucket, const char *tenant,
                    const char *reason)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"adjust\",\"amount_usd\":");
    proto_sb_printf(&b, "%.17g", amount_usd);
    if (bucket && *bucket) {
        proto_sb_puts(&b, ",\"bucket\":");
        proto_sb_quote(&b, bucket);
    }
    if (tenant && *tenant) {
        proto_sb_puts(&b, ",\"tenant\":");
        proto_sb_quote(&b, tenant);
    }
    proto_sb_puts(&b, ",\"reason\":");
    proto_sb_quote(&b, reason);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_reset(const char *bucket, const char *model, const char *reason)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"reset\",\"bucket\":");
    proto_sb_quote(&b, bucket);
    proto_sb_puts(&b, ",\"model\":");
    proto_sb_quote(&b, model);
    proto_sb_puts(&b, ",\"reason\":");
    proto_sb_quote(&b, reason);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_mark(const char *model, int down, const char *reason)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"mark\",\"model\":");
    proto_sb_quote(&b, model);
    proto_sb_printf(&b, ",\"state\":\"%s\",\"reason\":", down ? "down" : "up");
    proto_sb_quote(&b, reason);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_show(const char *id)
{
    proto_sb_t b = {0};
    proto_sb_puts(&b, "{\"op\":\"show\",\"decision_id\":");
    proto_sb_quote(&b, id);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}

char *
proto_format_export_admin(double since, int has_after, uint64_t after,
                          unsigned limit)
{
    char *q = proto_format_export(since, has_after, after, limit);
    /* {"op":"export"... -> {"op":"export","admin":true... */
    char *r = bursar_sprintf("{\"op\":\"export\",\"admin\":true%s",
                             q + strlen("{\"op\":\"export\""));
    free(q);
    return r;
}

/* ------------------------------------------------------------------ */
/* Client side: replies                                                */

/* Where a field is, for messages: NOUN "PRE KEY", noun "reply field" in a
 * reply, "field" in a models table read from a file (proto_parse_models
 * without a reply); pre "" or a path like "models[2]." or "models.m.".
 * Every reader below fails with `NOUN "PRE KEY" ...`. */
typedef struct proto_at {
    const char *noun;
    const char *pre;
} proto_at_t;

static const proto_at_t proto_at_reply = {"reply field", ""};

static const cJSON *
proto_rd_need(const cJSON *o, const proto_at_t *at, const char *key,
              proto_error_t *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j)
        proto_fail(err, PROTO_E_MISSING_FIELD, "%s \"%s%s\" missing", at->noun,
                   at->pre, key);
    return j;
}

/* A string of min_len .. cap-1 bytes into out. */
static proto_code_t
proto_rd_str(const cJSON *o, const proto_at_t *at, const char *key,
             size_t min_len, char *out, size_t cap, proto_error_t *err)
{
    const cJSON *j = proto_rd_need(o, at, key, err);
    if (!j)
        return err->code;
    if (!cJSON_IsString(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "%s \"%s%s\" must be a string, got %s", at->noun,
                          at->pre, key, proto_type_name(j));
    size_t n = strlen(j->valuestring);
    if (n < min_len || n >= cap)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "%s \"%s%s\" must have %zu to %zu bytes, got %zu",
                          at->noun, at->pre, key, min_len, cap - 1, n);
    memcpy(out, j->valuestring, n + 1);
    return PROTO_OK;
}

/* As proto_rd_str; when optional, an absent key leaves out as it is. */
static proto_code_t
proto_rd_str_opt(const cJSON *o, const proto_at_t *at, const char *key,
                 int optional, size_t min_len, char *out, size_t cap,
                 proto_error_t *err)
{
    if (optional && !cJSON_GetObjectItemCaseSensitive(o, key))
        return PROTO_OK;
    return proto_rd_str(o, at, key, min_len, out, cap, err);
}

/* A finite number >= 0 (null reads as NAN when nullable). */
static proto_code_t
proto_rd_num(const cJSON *o, const proto_at_t *at, const char *key,
             int nullable, double *out, proto_error_t *err)
{
    const cJSON *j = proto_rd_need(o, at, key, err);
    if (!j)
        return err->code;
    if (nullable && cJSON_IsNull(j)) {
        *out = NAN;
        return PROTO_OK;
    }
    if (!cJSON_IsNumber(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "%s \"%s%s\" must be a number, got %s", at->noun,
                          at->pre, key, proto_type_name(j));
    if (!isfinite(j->valuedouble) || j->valuedouble < 0)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "%s \"%s%s\" must be >= 0, got %g", at->noun, at->pre,
                          key, j->valuedouble);
    *out = j->valuedouble;
    return PROTO_OK;
}

/* An optional boolean: absent is 0. */
static proto_code_t
proto_rd_flag(const cJSON *o, const char *key, int *out, proto_error_t *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!j)
        return PROTO_OK;
    if (!cJSON_IsBool(j))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"%s\" must be a boolean, got %s", key,
                          proto_type_name(j));
    *out = cJSON_IsTrue(j);
    return PROTO_OK;
}

/* {"ok":false,"error":{"code":C,"message":M}} into r->error. */
static proto_code_t
proto_rd_error(const cJSON *root, proto_reply_t *r, proto_error_t *err)
{
    static const proto_at_t at = {"reply field", "error."};
    const cJSON *e = proto_rd_need(root, &proto_at_reply, "error", err);
    if (!e)
        return err->code;
    if (!cJSON_IsObject(e))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"error\" must be an object, got %s",
                          proto_type_name(e));
    char code[64];
    proto_code_t rc;
    if ((rc = proto_rd_str(e, &at, "code", 1, code, sizeof code, err)) ||
        (rc = proto_rd_str(e, &at, "message", 0, r->error.message,
                           sizeof r->error.message, err)))
        return rc;
    int c = proto_code_parse(code);
    if (c > 0) {
        r->error.code = (proto_code_t)c;
    } else {
        /* A code of a newer daemon: never read as a verdict on the
         * request (a spooled event is kept), the message keeps it. */
        char m[PROTO_MESSAGE_MAX];
        snprintf(m, sizeof m, "%s", r->error.message);
        r->error.code = PROTO_E_INTERNAL;
        snprintf(r->error.message, sizeof r->error.message, "%.63s: %.180s",
                 code, m);
    }
    return PROTO_OK;
}

/* Parses the frame and the envelope common to every reply ("ok", and
 * "error" when not ok). *root is the tree (cJSON_Delete) on PROTO_OK. */
static proto_code_t
proto_rd_root(const char *buf, size_t len, proto_reply_t *r, cJSON **root,
              proto_error_t *err)
{
    memset(r, 0, sizeof *r);
    r->expected_cost_usd = NAN;
    r->recorded_reward = NAN;
    err->code = PROTO_OK;
    err->message[0] = '\0';
    *root = cJSON_ParseWithLength(buf, len);
    if (!*root)
        return proto_fail(err, PROTO_E_BAD_JSON, "reply is not valid JSON");
    proto_code_t rc = PROTO_OK;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(*root, "ok");
    if (!cJSON_IsObject(*root))
        rc = proto_fail(err, PROTO_E_BAD_REQUEST,
                        "reply must be a JSON object, got %s",
                        proto_type_name(*root));
    else if (!ok)
        rc = proto_fail(err, PROTO_E_MISSING_FIELD,
                        "reply field \"ok\" missing");
    else if (!cJSON_IsBool(ok))
        rc = proto_fail(err, PROTO_E_WRONG_TYPE,
                        "reply field \"ok\" must be a boolean, got %s",
                        proto_type_name(ok));
    else if (!(r->ok = cJSON_IsTrue(ok)))
        rc = proto_rd_error(*root, r, err);
    else if (!(rc = proto_rd_flag(*root, "duplicate", &r->duplicate, err)) &&
             !(rc = proto_rd_flag(*root, "conflict", &r->conflict, err)) &&
             r->conflict)
        rc = proto_rd_num(*root, &proto_at_reply, "recorded_reward", 0,
                          &r->recorded_reward, err);
    if (rc) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    return rc;
}

static proto_code_t
proto_rd_fallbacks(const cJSON *root, proto_reply_t *r, proto_error_t *err)
{
    const cJSON *fb = proto_rd_need(root, &proto_at_reply, "fallbacks", err);
    if (!fb)
        return err->code;
    if (!cJSON_IsArray(fb))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"fallbacks\" must be an array, got %s",
                          proto_type_name(fb));
    if (cJSON_GetArraySize(fb) > PROTO_MAX_FALLBACK)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "reply field \"fallbacks\" holds more than %d names",
                          PROTO_MAX_FALLBACK);
    const cJSON *f;
    cJSON_ArrayForEach(f, fb)
    {
        char key[32];
        snprintf(key, sizeof key, "fallbacks[%zu]", r->n_fallbacks);
        size_t n = cJSON_IsString(f) ? strlen(f->valuestring) : 0;
        if (!cJSON_IsString(f))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "reply field \"%s\" must be a string, got %s",
                              key, proto_type_name(f));
        if (n == 0 || n >= PROTO_NAME_MAX)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "reply field \"%s\" must have 1 to %d bytes", key,
                              PROTO_NAME_MAX - 1);
        memcpy(r->fallbacks[r->n_fallbacks++], f->valuestring, n + 1);
    }
    return PROTO_OK;
}

static proto_code_t
proto_rd_choice(const cJSON *root, proto_reply_t *r, proto_error_t *err)
{
    const proto_at_t *at = &proto_at_reply;
    proto_code_t rc = proto_rd_str(root, at, "decision_id", 0, r->decision,
                                   sizeof r->decision, err);
    if (rc == PROTO_E_INVALID_VALUE || (!rc && !proto_token_valid(r->decision)))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "reply field \"decision_id\" must be a decision "
                          "token (1 to %d characters of A-Z a-z 0-9 _ -)",
                          PROTO_TOKEN_MAX);
    if (rc ||
        (rc = proto_rd_str(root, at, "model", 1, r->model, sizeof r->model,
                           err)) ||
        (rc = proto_rd_num(root, at, "propensity", 0, &r->propensity, err)))
        return rc;
    if (!(r->propensity > 0 && r->propensity <= 1))
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "reply field \"propensity\" must be in (0, 1], got "
                          "%g",
                          r->propensity);
    if ((rc = proto_rd_fallbacks(root, r, err)) ||
        (rc = proto_rd_num(root, at, "expected_cost_usd", 1,
                           &r->expected_cost_usd, err)) ||
        (rc = proto_rd_flag(root, "over_budget", &r->over_budget, err)) ||
        (rc = proto_rd_flag(root, "explored", &r->explored, err)))
        return rc;
    return PROTO_OK;
}

proto_code_t
proto_parse_reply(const char *buf, size_t len, proto_op_t op, proto_reply_t *r,
                  proto_error_t *err)
{
    cJSON *root;
    proto_code_t rc = proto_rd_root(buf, len, r, &root, err);
    if (rc)
        return rc;
    if (r->ok && op == PROTO_OP_CHOOSE)
        rc = proto_rd_choice(root, r, err);
    cJSON_Delete(root);
    return rc;
}

/* ---- the models table: a reply, or a file --------------------------- */

/* A model's keys. A models table from a file may hold nothing else (it is
 * written by hand: a misspelt key must not go unnoticed); a reply may
 * (a newer daemon may send more). */
static const char *const proto_model_keys[] = {"name",
                                               "provider",
                                               "model",
                                               "base_url",
                                               "api_key_env",
                                               "price_in_per_mtok",
                                               "price_out_per_mtok",
                                               "health"};

static proto_code_t
proto_rd_model_keys(const cJSON *o, const proto_at_t *at, proto_error_t *err)
{
    const size_t nk = sizeof proto_model_keys / sizeof proto_model_keys[0];
    const cJSON *k;
    cJSON_ArrayForEach(k, o)
    {
        size_t i = 0;
        while (i < nk && strcmp(k->string, proto_model_keys[i]) != 0)
            i++;
        if (i == nk)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "%s \"%s%.64s\" is not a model field (name, "
                              "provider, model, base_url, api_key_env, "
                              "price_in_per_mtok, price_out_per_mtok)",
                              at->noun, at->pre, k->string);
    }
    return PROTO_OK;
}

/* The model's name: its key in the object form (a "name" field, if any,
 * must say the same), else its "name" field. */
static proto_code_t
proto_rd_model_name(const cJSON *o, const proto_at_t *at, proto_model_t *m,
                    proto_error_t *err)
{
    if (!o->string) /* an element of an array */
        return proto_rd_str(o, at, "name", 1, m->name, sizeof m->name, err);
    size_t n = strlen(o->string);
    if (n == 0 || n >= sizeof m->name)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "%s \"models\": the model name \"%.64s\" must have "
                          "1 to %zu bytes",
                          at->noun, o->string, sizeof m->name - 1);
    memcpy(m->name, o->string, n + 1);
    char named[PROTO_NAME_MAX];
    proto_code_t rc =
        proto_rd_str_opt(o, at, "name", 1, 1, named, sizeof named, err);
    if (!rc && cJSON_GetObjectItemCaseSensitive(o, "name") &&
        strcmp(named, m->name) != 0)
        rc = proto_fail(err, PROTO_E_INVALID_VALUE,
                        "%s \"%sname\" must be the model's key \"%s\"",
                        at->noun, at->pre, m->name);
    return rc;
}

/* One model; at names it ("models[2]." in a reply). In a models table
 * from a file (file), model, base_url and api_key_env are optional with
 * bursard's defaults (docs/controller.md): the name, the provider's
 * public URL, "". A reply's base_url and api_key_env are never read: where
 * a worker's keys go is the worker's own configuration (proto.h). */
static proto_code_t
proto_rd_model(const cJSON *o, const proto_at_t *at, int file, proto_model_t *m,
               proto_error_t *err)
{
    char prov[16];
    proto_code_t rc;
    if ((file && (rc = proto_rd_model_keys(o, at, err))) ||
        (rc = proto_rd_model_name(o, at, m, err)) ||
        (rc = proto_rd_str(o, at, "provider", 1, prov, sizeof prov, err)))
        return rc;
    if (strcmp(prov, "openai") == 0)
        m->provider = PROTO_PROVIDER_OPENAI;
    else if (strcmp(prov, "anthropic") == 0)
        m->provider = PROTO_PROVIDER_ANTHROPIC;
    else
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "%s \"%sprovider\" must be \"openai\" or "
                          "\"anthropic\"",
                          at->noun, at->pre);
    if (file) {
        bursar_copy_str(m->model, sizeof m->model, m->name);
        bursar_copy_str(m->base_url, sizeof m->base_url,
                        m->provider == PROTO_PROVIDER_ANTHROPIC
                            ? PROTO_ANTHROPIC_URL
                            : PROTO_OPENAI_URL);
    }
    if ((rc = proto_rd_str_opt(o, at, "model", file, 1, m->model,
                               sizeof m->model, err)) ||
        (file && (rc = proto_rd_str_opt(o, at, "base_url", 1, 0, m->base_url,
                                        sizeof m->base_url, err))) ||
        (file &&
         (rc = proto_rd_str_opt(o, at, "api_key_env", 1, 0, m->api_key_env,
                                sizeof m->api_key_env, err))) ||
        (rc = proto_rd_num(o, at, "price_in_per_mtok", 0, &m->price_in_per_mtok,
                           err)) ||
        (rc = proto_rd_num(o, at, "price_out_per_mtok", 0,
                           &m->price_out_per_mtok, err)))
        return rc;
    return proto_rd_str_opt(o, at, "health", 1, 0, m->health, sizeof m->health,
                            err);
}

/* A models table from a file: a JSON object, no reply envelope. */
static proto_code_t
proto_rd_table(const char *buf, size_t len, cJSON **root, proto_error_t *err)
{
    err->code = PROTO_OK;
    err->message[0] = '\0';
    *root = cJSON_ParseWithLength(buf, len);
    if (!*root)
        return proto_fail(err, PROTO_E_BAD_JSON, "not valid JSON");
    if (cJSON_IsObject(*root))
        return PROTO_OK;
    proto_fail(err, PROTO_E_BAD_REQUEST,
               "a models table must be a JSON object, got %s",
               proto_type_name(*root));
    cJSON_Delete(*root);
    *root = NULL;
    return err->code;
}

/* "models": an array in a reply; an array or an object keyed by name in a
 * table from a file (file). On PROTO_OK *out holds *n models. */
static proto_code_t
proto_rd_models(const cJSON *root, int file, proto_model_t **out, size_t *n,
                proto_error_t *err)
{
    const proto_at_t top = {file ? "field" : "reply field", ""};
    const cJSON *ms = proto_rd_need(root, &top, "models", err);
    if (!ms)
        return err->code;
    if (!cJSON_IsArray(ms) && !(file && cJSON_IsObject(ms)))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "%s \"models\" must be an array%s, got %s", top.noun,
                          file ? " or an object" : "", proto_type_name(ms));
    size_t cnt = (size_t)cJSON_GetArraySize(ms), i = 0;
    proto_model_t *arr = cnt ? bursar_calloc(cnt, sizeof *arr) : NULL;
    proto_code_t rc = PROTO_OK;
    for (const cJSON *m = ms->child; m && !rc; m = m->next, i++) {
        char pre[96];
        if (m->string)
            snprintf(pre, sizeof pre, "models.%.64s.", m->string);
        else
            snprintf(pre, sizeof pre, "models[%zu].", i);
        const proto_at_t at = {top.noun, pre};
        if (!cJSON_IsObject(m))
            rc = proto_fail(err, PROTO_E_WRONG_TYPE,
                            "%s \"%.*s\" must be an object, got %s", top.noun,
                            (int)strlen(pre) - 1, pre, proto_type_name(m));
        else
            rc = proto_rd_model(m, &at, file, &arr[i], err);
        for (size_t k = 0; !rc && k < i; k++)
            if (strcmp(arr[k].name, arr[i].name) == 0)
                rc = proto_fail(err, PROTO_E_INVALID_VALUE,
                                "%s \"%sname\": \"%s\" is named twice",
                                top.noun, pre, arr[i].name);
    }
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return PROTO_OK;
}

proto_code_t
proto_parse_models(const char *buf, size_t len, proto_reply_t *r,
                   proto_model_t **out, size_t *n, proto_error_t *err)
{
    *out = NULL;
    *n = 0;
    cJSON *root;
    proto_code_t rc = r ? proto_rd_root(buf, len, r, &root, err)
                        : proto_rd_table(buf, len, &root, err);
    if (!rc && (!r || r->ok))
        rc = proto_rd_models(root, !r, out, n, err);
    cJSON_Delete(root);
    return rc;
}

/* The models of one bucket entry ("buckets[i].models") as indexes into
 * cat's models. */
static proto_code_t
proto_rd_bucket_models(const cJSON *ms, const char *pre,
                       const proto_catalog_t *cat, proto_bucket_t *b,
                       proto_error_t *err)
{
    if (!cJSON_IsArray(ms))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"%smodels\" must be an array, got %s",
                          pre, proto_type_name(ms));
    if (cJSON_GetArraySize(ms) > PROTO_MAX_BUCKET_MODELS)
        return proto_fail(err, PROTO_E_INVALID_VALUE,
                          "reply field \"%smodels\" holds more than %d names",
                          pre, PROTO_MAX_BUCKET_MODELS);
    const cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        size_t k = b->n_models, i = 0;
        if (!cJSON_IsString(m))
            return proto_fail(err, PROTO_E_WRONG_TYPE,
                              "reply field \"%smodels[%zu]\" must be a "
                              "string, got %s",
                              pre, k, proto_type_name(m));
        while (i < cat->n_models &&
               strcmp(cat->models[i].name, m->valuestring) != 0)
            i++;
        if (i == cat->n_models)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "reply field \"%smodels[%zu]\": \"%.64s\" is "
                              "not one of the reply's models",
                              pre, k, m->valuestring);
        for (size_t j = 0; j < k; j++)
            if (b->models[j] == i)
                return proto_fail(err, PROTO_E_INVALID_VALUE,
                                  "reply field \"%smodels[%zu]\": \"%s\" is "
                                  "named twice",
                                  pre, k, m->valuestring);
        b->models[b->n_models++] = (unsigned)i;
    }
    return PROTO_OK;
}

/* One entry of "buckets" (i: its index). */
static proto_code_t
proto_rd_bucket(const cJSON *o, size_t i, const proto_catalog_t *cat,
                proto_bucket_t *b, proto_error_t *err)
{
    char pre[48];
    snprintf(pre, sizeof pre, "buckets[%zu].", i);
    const proto_at_t at = {"reply field", pre};
    if (!cJSON_IsObject(o))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"buckets[%zu]\" must be an object, "
                          "got %s",
                          i, proto_type_name(o));
    proto_code_t rc =
        proto_rd_str(o, &at, "name", 1, b->name, sizeof b->name, err);
    if (rc)
        return rc;
    const cJSON *ms = proto_rd_need(o, &at, "models", err);
    if (!ms)
        return err->code;
    if ((rc = proto_rd_bucket_models(ms, pre, cat, b, err)) ||
        (rc = proto_rd_num(o, &at, "expected_tokens_in", 0,
                           &b->expected_tokens_in, err)) ||
        (rc = proto_rd_num(o, &at, "expected_tokens_out", 0,
                           &b->expected_tokens_out, err)))
        return rc;
    for (size_t k = 0; k < i; k++)
        if (strcmp(cat->buckets[k].name, b->name) == 0)
            return proto_fail(err, PROTO_E_INVALID_VALUE,
                              "reply field \"%sname\": \"%s\" is named twice",
                              pre, b->name);
    return PROTO_OK;
}

/* "buckets" of a models reply, if any, into cat (its models read). */
static proto_code_t
proto_rd_buckets(const cJSON *root, proto_catalog_t *cat, proto_error_t *err)
{
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(root, "buckets");
    if (!bs)
        return PROTO_OK;
    if (!cJSON_IsArray(bs))
        return proto_fail(err, PROTO_E_WRONG_TYPE,
                          "reply field \"buckets\" must be an array, got %s",
                          proto_type_name(bs));
    size_t cnt = (size_t)cJSON_GetArraySize(bs), i = 0;
    cat->buckets = cnt ? bursar_calloc(cnt, sizeof *cat->buckets) : NULL;
    cat->has_buckets = 1;
    proto_code_t rc = PROTO_OK;
    for (const cJSON *o = bs->child; o && !rc; o = o->next, i++) {
        rc = proto_rd_bucket(o, i, cat, &cat->buckets[i], err);
        cat->n_buckets = i + 1;
    }
    return rc;
}

void
proto_catalog_free(proto_catalog_t *cat)
{
    free(cat->models);
    free(cat->buckets);
    memset(cat, 0, sizeof *cat);
}

proto_code_t
proto_parse_catalog(const char *buf, size_t len, proto_reply_t *r,
                    proto_catalog_t *cat, proto_error_t *err)
{
    memset(cat, 0, sizeof *cat);
    cJSON *root;
    proto_code_t rc = proto_rd_root(buf, len, r, &root, err);
    if (!rc && r->ok)
        rc = proto_rd_models(root, 0, &cat->models, &cat->n_models, err);
    if (!rc && r->ok)
        rc = proto_rd_buckets(root, cat, err);
    cJSON_Delete(root);
    if (rc)
        proto_catalog_free(cat);
    return rc;
}

char *
proto_write_models(const char *echo, const proto_model_t *models, size_t n)
{
    return proto_write_catalog(echo, models, n, NULL, 0);
}

/* ,"buckets":[...] */
static void
proto_sb_buckets(proto_sb_t *b, const proto_model_t *models,
                 const proto_bucket_t *buckets, size_t nb)
{
    proto_sb_puts(b, ",\"buckets\":[");
    for (size_t i = 0; i < nb; i++) {
        const proto_bucket_t *k = &buckets[i];
        proto_sb_puts(b, i ? ",{\"name\":" : "{\"name\":");
        proto_sb_quote(b, k->name);
        proto_sb_puts(b, ",\"models\":[");
        for (size_t j = 0; j < k->n_models; j++) {
            if (j)
                proto_sb_puts(b, ",");
            proto_sb_quote(b, models[k->models[j]].name);
        }
        proto_sb_puts(b, "],\"expected_tokens_in\":");
        proto_sb_number(b, k->expected_tokens_in);
        proto_sb_puts(b, ",\"expected_tokens_out\":");
        proto_sb_number(b, k->expected_tokens_out);
        proto_sb_puts(b, "}");
    }
    proto_sb_puts(b, "]");
}

char *
proto_write_catalog(const char *echo, const proto_model_t *models, size_t n,
                    const proto_bucket_t *buckets, size_t nb)
{
    proto_sb_t b = {0};
    proto_sb_begin(&b, echo, 1);
    proto_sb_puts(&b, ",\"models\":[");
    for (size_t i = 0; i < n; i++) {
        const proto_model_t *m = &models[i];
        proto_sb_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        proto_sb_quote(&b, m->name);
        proto_sb_printf(&b, ",\"provider\":\"%s\",\"model\":",
                        proto_provider_name(m->provider));
        proto_sb_quote(&b, m->model);
        /* never base_url nor api_key_env: the worker's own (proto.h) */
        proto_sb_puts(&b, ",\"price_in_per_mtok\":");
        proto_sb_number(&b, m->price_in_per_mtok);
        proto_sb_puts(&b, ",\"price_out_per_mtok\":");
        proto_sb_number(&b, m->price_out_per_mtok);
        if (m->health[0]) {
            proto_sb_puts(&b, ",\"health\":");
            proto_sb_quote(&b, m->health);
        }
        proto_sb_puts(&b, "}");
    }
    proto_sb_puts(&b, "]");
    if (buckets)
        proto_sb_buckets(&b, models, buckets, nb);
    proto_sb_puts(&b, "}");
    return proto_sb_finish(&b);
}
