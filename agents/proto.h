/*
 * proto.h - the bursar wire codec (docs/protocol.md is the contract).
 *
 * Every request and every reply is one ZeroMQ frame holding one JSON
 * object. This module is the one codec of the project: the server side
 * turns request frames into proto_request_t and writes replies; the client
 * side formats requests and parses replies. The controller (bursard, the
 * bursar CLI), the client library (bursar.h), the test stand-ins and the
 * benchmarks all link it (library bursar_proto, agents/proto.cmake). It
 * depends on cJSON and base.h only.
 *
 * Ownership: parse functions fill caller-owned structs with fixed-size
 * fields (no allocation to free), except proto_parse_models (a new array,
 * free()). Writers and formatters return a new NUL-terminated string the
 * caller frees with free(); never NULL (out of memory aborts, base.h).
 *
 * Unknown fields in a request or a reply are ignored (a newer peer may
 * send more; a models table read from a file is the exception, see
 * proto_parse_models); an optional "id" (string or number, at most
 * PROTO_ECHO_MAX bytes once serialised) is echoed in the reply so that
 * pipelining DEALER clients can match replies.
 */
#ifndef BURSAR_AGENTS_PROTO_H
#define BURSAR_AGENTS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "policies/base.h"

/* decision_id: a token of at most PROTO_TOKEN_MAX characters of
 * [A-Za-z0-9_-] */
#define PROTO_TOKEN_MAX    320
#define PROTO_NAME_MAX     BURSAR_NAME_MAX /* bucket, model names, incl. NUL */
#define PROTO_ID_LEN       16  /* sequence ids (export): 16 hex digits */
#define PROTO_MAX_EXCLUDE  64  /* names in "exclude" */
#define PROTO_MAX_FALLBACK 64  /* names in "fallbacks": the one limit */
#define PROTO_ECHO_MAX     128 /* serialised "id" echo */
#define PROTO_ERROR_MAX    256 /* provider_error text kept, incl. NUL */
#define PROTO_MESSAGE_MAX  256 /* error message, incl. NUL */
#define PROTO_MODEL_ID_MAX 128 /* a provider's model id, incl. NUL */
#define PROTO_URL_MAX      512 /* a model's base_url, incl. NUL */
#define PROTO_HEALTH_MAX   16  /* a model's health state, incl. NUL */
/* local.id of a book request: 1 to 63 characters of [A-Za-z0-9_-] */
#define PROTO_LOCAL_ID_MAX 64
/* tenant of a choose (local.tenant of a book): the application a request
 * is made for, 1 to 31 bytes of [A-Za-z0-9._-], incl. NUL */
#define PROTO_TENANT_MAX 32
/* reason of an admin op: 1 to PROTO_REASON_CHARS characters of UTF-8
 * (no control characters), at most 4 bytes each, incl. NUL */
#define PROTO_REASON_CHARS 200
#define PROTO_REASON_MAX   (4 * PROTO_REASON_CHARS + 1)
/* amount_usd of an adjust: |amount| at most this */
#define PROTO_ADJUST_MAX 1e9
/* a batch id (op batch's reply, choose's "batch"): 16 lowercase hex
 * digits */
#define PROTO_BATCH_LEN 16
/* op batch's "size": requests in a batch, 1 to this */
#define PROTO_BATCH_SIZE_MAX 1e9

/* A provider's public API, the base_url a models table from a file
 * defaults to (proto_parse_models), and the one endpoint bursar-agent
 * calls for a model its own configuration does not describe
 * (docs/agents.md). */
#define PROTO_OPENAI_URL    "https://api.openai.com/v1"
#define PROTO_ANTHROPIC_URL "https://api.anthropic.com/v1"

typedef enum proto_op {
    PROTO_OP_CHOOSE = 0,
    PROTO_OP_FEEDBACK,
    PROTO_OP_STATS,
    PROTO_OP_MODELS,
    PROTO_OP_PING,
    PROTO_OP_EXPORT,
    PROTO_OP_CLOCK, /* test clock; only with bursard --test-clock */
    PROTO_OP_BOOK,  /* an event of a decision the client made alone */
    PROTO_OP_BATCH, /* declares a batch of chooses (the pacer plans it) */
    /* The operator's admin ops (docs/protocol.md, "Admin operations") */
    PROTO_OP_ADJUST, /* add to the window's spend, with a reason */
    PROTO_OP_RESET,  /* an arm back to its prior, with a reason */
    PROTO_OP_MARK,   /* a model marked down or up by hand, with a reason */
    PROTO_OP_SHOW,   /* one decision whole */
    PROTO_OP_COUNT   /* the number of ops */
} proto_op_t;

typedef enum proto_kind {
    PROTO_KIND_OUTCOME = 0,
    PROTO_KIND_CORRECTION,
    PROTO_KIND_PROVIDER_ERROR
} proto_kind_t;

/* Error codes. proto_code_name gives the wire name (snake_case). */
typedef enum proto_code {
    PROTO_OK = 0,
    PROTO_E_BAD_JSON,         /* bad_json: not parseable JSON */
    PROTO_E_BAD_REQUEST,      /* bad_request: not an object, or several
                                 frames */
    PROTO_E_MISSING_FIELD,    /* missing_field */
    PROTO_E_WRONG_TYPE,       /* wrong_type */
    PROTO_E_INVALID_VALUE,    /* invalid_value: out of range, bad id */
    PROTO_E_UNKNOWN_OP,       /* unknown_op */
    PROTO_E_TOO_LARGE,        /* message_too_large */
    PROTO_E_UNKNOWN_BUCKET,   /* unknown_bucket */
    PROTO_E_BUCKET_LIMIT,     /* bucket_limit: cannot create another */
    PROTO_E_UNKNOWN_DECISION, /* unknown_decision */
    PROTO_E_DECISION_EXPIRED, /* decision_expired */
    PROTO_E_UNKNOWN_MODEL,    /* unknown_model: "model" not in bucket */
    PROTO_E_NO_MODEL,         /* no_model_available: all excluded */
    PROTO_E_STORE,            /* store_error: the commit failed */
    PROTO_E_INTERNAL,         /* internal_error */
    PROTO_E_FORBIDDEN,        /* forbidden: beyond the client's role */
    PROTO_E_RATE_LIMITED,     /* rate_limited: the client's request rate or
                                 decisions in flight are above its cap */
    PROTO_E_BUDGET_EXHAUSTED, /* budget_exhausted: nothing affordable and
                                 the budget's when_exhausted is refuse */
    PROTO_E_COUNT
} proto_code_t;

const char *proto_code_name(proto_code_t code);
/* The code for a wire name, or -1. */
int proto_code_parse(const char *name);

typedef struct proto_error {
    proto_code_t code;
    char message[PROTO_MESSAGE_MAX];
} proto_error_t;

typedef struct proto_request {
    proto_op_t op;
    char echo[PROTO_ECHO_MAX]; /* serialised "id", or "" */

    /* choose; stats (optional filter) */
    char bucket[PROTO_NAME_MAX];
    size_t n_exclude;
    char exclude[PROTO_MAX_EXCLUDE][PROTO_NAME_MAX];
    /* choose: the decision this one escalates (a token), or "" */
    char escalates[PROTO_TOKEN_MAX + 1];
    /* choose: "tenant"; book: "local.tenant"; "" when absent */
    char tenant[PROTO_TENANT_MAX];
    /* choose: the batch it belongs to ("batch"), or "" */
    char batch[PROTO_BATCH_LEN + 1];
    /* batch: its "size", a whole number in [1, PROTO_BATCH_SIZE_MAX] */
    double batch_size;

    /* feedback */
    char decision[PROTO_TOKEN_MAX + 1]; /* decision_id: an opaque token */
    proto_kind_t kind;
    int has_reward;  /* outcome: reward (success maps to 1 or 0) */
    double reward;   /* [0, 1] */
    int has_success; /* the outcome was given as "success" */
    int has_cost;
    double cost_usd;   /* >= 0 */
    int has_tokens;    /* tokens_in or tokens_out given */
    double tokens_in;  /* >= 0 */
    double tokens_out; /* >= 0 */
    int has_latency;
    double latency_ms;           /* >= 0 */
    char model[PROTO_NAME_MAX];  /* outcome: model that served, or "" */
    char error[PROTO_ERROR_MAX]; /* provider_error text (truncated) */

    /* export */
    double since; /* -INFINITY when absent */
    int has_after;
    uint64_t after; /* decisions with a larger id */
    unsigned limit; /* 1..PROTO_EXPORT_MAX, default PROTO_EXPORT_DEFAULT */

    /* clock */
    double advance_s;

    /* admin ops: adjust ("amount_usd", "bucket", "tenant"), reset
     * ("bucket", "model"), mark ("model", "state"), each with "reason";
     * show ("decision_id"); export's "admin": the admin log instead of
     * decisions */
    double amount_usd;                 /* adjust: finite, |x| <= 1e9 */
    int mark_down;                     /* mark: 1 "down", 0 "up" */
    char reason[PROTO_REASON_MAX];     /* proto_reason_valid */
    char show_id[PROTO_TOKEN_MAX + 1]; /* show: a token or a sequence id */
    int export_admin;                  /* export: "admin": true */

    /* book: the local decision ("local"); the event is in the feedback
     * fields above (kind, outcome fields, model, error) */
    char local_id[PROTO_LOCAL_ID_MAX];
    char local_model[PROTO_NAME_MAX]; /* local.model; local.bucket: bucket */
    double local_time;                /* local.time, Unix seconds */
} proto_request_t;

#define PROTO_EXPORT_DEFAULT 1000
#define PROTO_EXPORT_MAX     10000

/* Parses one request frame. Returns PROTO_OK, or an error code with err
 * filled (the message names the field). req->echo is set as early as
 * possible so that even an error reply can carry the client's id. */
proto_code_t proto_parse_request(const char *buf, size_t len,
                                 proto_request_t *req, proto_error_t *err);

/* 1 if s is a well-formed decision token: 1 to PROTO_TOKEN_MAX characters
 * of [A-Za-z0-9_-] (whether the controller made it is another question). */
int proto_token_valid(const char *s);

/* 1 if s is a well-formed tenant name: 1 to PROTO_TENANT_MAX - 1 bytes of
 * [A-Za-z0-9._-] (the characters of a client's name, auth.h). */
int proto_tenant_valid(const char *s);

/* 1 if s is a well-formed reason of an admin op: 1 to PROTO_REASON_CHARS
 * characters of well-formed UTF-8, none a control character. */
int proto_reason_valid(const char *s);

/* Whether ep is a ZeroMQ endpoint bursar can use: tcp://HOST:PORT,
 * ipc://PATH or inproc://NAME. Returns 0, or -1 with msg saying what is
 * wrong and what to write instead ("localhost:7979 has no transport:
 * write tcp://localhost:7979"). */
int proto_endpoint_check(const char *ep, char *msg, size_t cap);

/* Sequence ids (a decision's number in export and its cursor): 16
 * lowercase hex digits of a 64-bit number. */
void proto_id_format(uint64_t id, char out[PROTO_ID_LEN + 1]);
/* Returns 0 and sets *id, or BURSAR_EINVAL when s is not 16 hex digits. */
int proto_id_parse(const char *s, uint64_t *id);

/* Appends s to a JSON string literal (with quotes) into buf (cap bytes,
 * always NUL-terminated). Returns the length the literal needs (like
 * snprintf). */
size_t proto_json_quote(char *buf, size_t cap, const char *s);

/* ---- server side: replies ------------------------------------------ */

/* "an object", "a string", ... for error messages. */
struct cJSON;
const char *proto_type_name(const struct cJSON *j);
char *proto_write_error(const char *echo, proto_code_t code,
                        const char *message);
/* {"ok":true} or {"ok":true,"duplicate":true} */
char *proto_write_ok(const char *echo, int duplicate);
/* A second outcome that differs from the one recorded (which is kept):
 * {"ok":true,"duplicate":true,"conflict":true,"recorded_reward":R}. */
char *proto_write_conflict(const char *echo, double recorded_reward);

typedef struct proto_choice {
    const char *decision; /* the token */
    const char *model;
    double propensity;
    size_t n_fallbacks;
    const char *const *fallbacks;
    double expected_cost_usd;
    int over_budget;       /* no arm was affordable: the cheapest was chosen */
    int explored;          /* chosen by the exploration floor */
    int tenant_unbudgeted; /* its tenant got no budget of its own (no room
                              within limits.max_tenants) */
} proto_choice_t;

char *proto_write_choice(const char *echo, const proto_choice_t *c);

/* {"ok":true,"batch":ID,"share_usd":S,"target_usd":T}: the reply to op
 * batch; S and T null when not finite (no budget). */
char *proto_write_batch(const char *echo, const char *id, double share_usd,
                        double target_usd);

/* ---- client side: requests -------------------------------------- */

/* {"op":"choose","bucket":B[,"exclude":[...]]} */
char *proto_format_choose(const char *bucket, const char *const *exclude,
                          size_t n_exclude);
/* The same choose as the escalation of decision escalates (its token):
 * {"op":"choose","bucket":B[,"exclude":[...]],"escalates":T}; escalates
 * NULL or "" writes a plain choose. */
char *proto_format_escalate(const char *bucket, const char *const *exclude,
                            size_t n_exclude, const char *escalates);
/* proto_format_escalate made for tenant (proto_tenant_valid):
 * ...[,"escalates":T][,"tenant":N]}; tenant NULL or "" writes none (then
 * it is proto_format_escalate). */
char *proto_format_choose_tenant(const char *bucket, const char *const *exclude,
                                 size_t n_exclude, const char *escalates,
                                 const char *tenant);

typedef struct proto_feedback {
    const char *decision; /* the token */
    proto_kind_t kind;
    int has_reward; /* outcome: reward in [0, 1] ... */
    double reward;
    int has_success; /* ... or success (used if has_reward is 0) */
    int success;
    int has_cost;
    double cost_usd;
    int has_tokens;
    double tokens_in, tokens_out;
    int has_latency;
    double latency_ms;
    const char *model; /* NULL: the decision's model */
    const char *error; /* provider_error text, or NULL */
} proto_feedback_t;

/* {"op":"feedback","decision_id":...}: outcome fields for an outcome,
 * latency for an outcome or a provider error, "error" for a provider
 * error; what the kind does not take is not written. */
char *proto_format_feedback(const proto_feedback_t *f);

/* A decision the client made alone (the controller away): its id (1 to
 * PROTO_LOCAL_ID_MAX - 1 characters of [A-Za-z0-9_-], unique per client),
 * bucket, model, time (Unix seconds) and the tenant it was made for
 * (proto_tenant_valid; NULL or "": none). */
typedef struct proto_local {
    const char *id;
    const char *bucket;
    const char *model;
    double time;
    const char *tenant;
} proto_local_t;

/* {"op":"book","local":{"id":..,"bucket":..,"model":..,"time":..
 * [,"tenant":..]},
 * "kind":..,...}: a feedback event (f->decision is not read) of the
 * local decision l, to be booked into the controller's ledger and log
 * (docs/protocol.md, book). */
char *proto_format_book(const proto_local_t *l, const proto_feedback_t *f);

/* {"op":OP} for ping, stats (every bucket), models. */
char *proto_format_simple(proto_op_t op);

/* {"op":"stats"[,"bucket":B]}: every bucket when bucket is NULL. */
char *proto_format_stats(const char *bucket);

/* {"op":"export"[,"since":S][,"after":ID],"limit":L}; since is skipped
 * when not finite, after when has_after is 0. */
char *proto_format_export(double since, int has_after, uint64_t after,
                          unsigned limit);

/* {"op":"batch","bucket":B,"size":N[,"tenant":T]}; tenant NULL or "":
 * none. */
char *proto_format_batch(const char *bucket, double size, const char *tenant);

/* {"op":"clock","advance_s":S} (bursard --test-clock only). */
char *proto_format_clock(double advance_s);

/* The admin ops (operator role; docs/protocol.md). bucket, tenant: NULL
 * or "" for none. */
/* {"op":"adjust","amount_usd":A[,"bucket":B][,"tenant":T],"reason":R} */
char *proto_format_adjust(double amount_usd, const char *bucket,
                          const char *tenant, const char *reason);
/* {"op":"reset","bucket":B,"model":M,"reason":R} */
char *proto_format_reset(const char *bucket, const char *model,
                         const char *reason);
/* {"op":"mark","model":M,"state":"down"|"up","reason":R} */
char *proto_format_mark(const char *model, int down, const char *reason);
/* {"op":"show","decision_id":ID}: ID a decision token or a sequence id */
char *proto_format_show(const char *id);
/* {"op":"export","admin":true[,"since":S][,"after":ID],"limit":L}: the
 * admin log (after: an entry's sequence id). */
char *proto_format_export_admin(double since, int has_after, uint64_t after,
                                unsigned limit);

/* ---- client side: replies ----------------------------------------- */

typedef struct proto_reply {
    int ok;
    int duplicate; /* feedback: the event had been applied already */
    int conflict;  /* ... with another value: recorded_reward (the
                      first outcome's, kept), else NAN */
    double recorded_reward;
    proto_error_t error; /* when !ok; a code this codec does not know reads
                            as PROTO_E_INTERNAL (the message keeps it) */
    /* choose replies */
    char decision[PROTO_TOKEN_MAX + 1]; /* the token */
    char model[PROTO_NAME_MAX];
    double propensity; /* (0, 1] */
    size_t n_fallbacks;
    char fallbacks[PROTO_MAX_FALLBACK][PROTO_NAME_MAX];
    double expected_cost_usd; /* >= 0; NAN when the daemon wrote null */
    int over_budget;          /* no arm was affordable */
    int explored;             /* chosen by the exploration floor */
} proto_reply_t;

/* Parses the reply to a request of op. An error reply ({"ok":false,...})
 * is a reply like any other: PROTO_OK with r->ok = 0 and r->error. For a
 * successful reply, what op's reply must hold is checked: choose needs
 * decision_id (a token: proto_token_valid), model, propensity in (0, 1],
 * fallbacks (at most PROTO_MAX_FALLBACK names) and expected_cost_usd (a number
 * >= 0 or null); over_budget and explored are optional booleans. Other ops need
 * "ok" only (use proto_parse_models for models).
 * Returns PROTO_OK, or with err->message naming the field (for example
 * `reply field "propensity" missing`): PROTO_E_BAD_JSON (not JSON),
 * PROTO_E_BAD_REQUEST (not an object), PROTO_E_MISSING_FIELD,
 * PROTO_E_WRONG_TYPE, PROTO_E_INVALID_VALUE. Never a default for a field
 * that is missing. */
proto_code_t proto_parse_reply(const char *buf, size_t len, proto_op_t op,
                               proto_reply_t *r, proto_error_t *err);

typedef enum proto_provider {
    PROTO_PROVIDER_OPENAI = 0, /* any OpenAI-compatible API */
    PROTO_PROVIDER_ANTHROPIC
} proto_provider_t;

/* One model: of the models reply (the public client header calls it
 * bursar_model_t), or of a worker's own models table.
 *
 * base_url and api_key_env say where the model's calls go and which
 * environment variable holds the key sent there. They are the worker's
 * own configuration (a models table from a file, below): the models
 * reply never carries them (proto_write_models does not write them,
 * proto_parse_models leaves them "" in a reply even if a peer sends
 * them), so that whoever answers as the controller cannot direct a
 * worker's keys (docs/agents.md). */
typedef struct proto_model {
    char name[PROTO_NAME_MAX];        /* routing name (the controller's key) */
    proto_provider_t provider;        /* the wire format */
    char model[PROTO_MODEL_ID_MAX];   /* the provider's model id */
    char base_url[PROTO_URL_MAX];     /* a table only; "" in a reply */
    char api_key_env[PROTO_NAME_MAX]; /* a table only; "" in a reply */
    double price_in_per_mtok;         /* USD per million input tokens */
    double price_out_per_mtok;        /* USD per million output tokens */
    char health[PROTO_HEALTH_MAX];    /* "ok", "cooldown", ...; "" absent */
} proto_model_t;

/* Parses the reply to {"op":"models"}: {"ok":true,"models":[{"name",
 * "provider" ("openai" or "anthropic"), "model", "price_in_per_mtok",
 * "price_out_per_mtok"[, "health"]}, ...]}, every field but health
 * required, no name twice; "base_url" and "api_key_env" (which older
 * daemons sent) are ignored like any unknown field: base_url and
 * api_key_env are "". On PROTO_OK with r->ok, *out is a new array of *n
 * models (free(); NULL when *n is 0); with !r->ok (an error reply) *out
 * is NULL and r->error says why. Errors as proto_parse_reply, the message
 * naming the field ("reply field \"models[2].provider\" missing").
 *
 * With r NULL, buf is a models table written by hand (bursar-agent
 * --models FILE, docs/agents.md): a JSON object without the reply's "ok"
 * whose "models" is that array or an object keyed by name
 * ({"models":{"m":{"provider":...}}}, the shape of bursard's
 * configuration; a "name" inside must repeat the key). There provider and
 * the two prices are required, model defaults to the name, base_url to
 * the provider's (PROTO_OPENAI_URL, PROTO_ANTHROPIC_URL), api_key_env to
 * ""; a key a model does not have is an error; other top-level keys are
 * ignored. Messages name the field without "reply"
 * ("field \"models.m.price_in_per_mtok\" missing"). The codec does not
 * judge a base_url: bursar-agent does (prov_url_check, provider.h). */
proto_code_t proto_parse_models(const char *buf, size_t len, proto_reply_t *r,
                                proto_model_t **out, size_t *n,
                                proto_error_t *err);

/* {"ok":true,"models":[...]} as proto_parse_models reads it: name,
 * provider, model, the prices, health (only when not empty); never
 * base_url nor api_key_env. */
char *proto_write_models(const char *echo, const proto_model_t *models,
                         size_t n);

/* A bucket of the models reply: the models it allows (indexes into the
 * reply's models) and the tokens a request of it is expected to take
 * (the controller's cost prior: a model's price for them is its expected
 * cost in the bucket). */
#define PROTO_MAX_BUCKET_MODELS 64 /* models of one bucket (CFG_MAX_ARMS) */
typedef struct proto_bucket {
    char name[PROTO_NAME_MAX];
    size_t n_models;
    unsigned models[PROTO_MAX_BUCKET_MODELS];
    double expected_tokens_in, expected_tokens_out;
} proto_bucket_t;

/* The whole models reply: the models and, from daemons that send it, the
 * buckets ("buckets":[{"name","models":[names],"expected_tokens_in",
 * "expected_tokens_out"}, ...]). */
typedef struct proto_catalog {
    proto_model_t *models; /* free() (proto_catalog_free) */
    size_t n_models;
    proto_bucket_t *buckets; /* free() (proto_catalog_free) */
    size_t n_buckets;
    int has_buckets; /* the reply had "buckets": older daemons do not send
                        it, and then no bucket's models are known */
} proto_catalog_t;

/* proto_parse_models (r must not be NULL: a reply), and its "buckets"
 * when present: every field of an entry required, a model name that the
 * reply's "models" does not hold, a bucket named twice, a model named
 * twice in a bucket or more than PROTO_MAX_BUCKET_MODELS of them are
 * errors naming the field ("reply field \"buckets[1].models[0]\": ...").
 * On PROTO_OK with r->ok, cat holds the catalog (proto_catalog_free);
 * otherwise cat is empty. */
proto_code_t proto_parse_catalog(const char *buf, size_t len, proto_reply_t *r,
                                 proto_catalog_t *cat, proto_error_t *err);
void proto_catalog_free(proto_catalog_t *cat);

/* proto_write_models with "buckets" (nb entries; none written when
 * buckets is NULL). */
char *proto_write_catalog(const char *echo, const proto_model_t *models,
                          size_t n, const proto_bucket_t *buckets, size_t nb);

/* The cost in USD of tokens_in and tokens_out at prices in USD per
 * million tokens: (tokens_in x price_in + tokens_out x price_out) / 1e6.
 * The one place the project prices tokens (the controller's cost prior,
 * the worker's cost of a call, the run report). */
double proto_price_cost(double price_in_per_mtok, double price_out_per_mtok,
                        double tokens_in, double tokens_out);

const char *proto_op_name(proto_op_t op);
const char *proto_kind_name(proto_kind_t kind);
const char *proto_provider_name(proto_provider_t p);

#endif
