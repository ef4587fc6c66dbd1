/*
 * proto.h - the bursar wire codec (docs/protocol.md is the contract).
 *
 * Every request and every reply is one ZeroMQ frame holding one JSON
 * object. This module turns request frames into proto_request_t (server
 * side), writes replies, and the reverse for clients: it formats requests
 * and parses replies. It depends on cJSON only, so that the controller and
 * the agent library link the same code.
 *
 * Ownership: parse functions fill caller-owned structs with fixed-size
 * fields (no allocation to free). Writers return a new NUL-terminated
 * string the caller frees with free(); they return NULL only when a
 * malloc fails.
 *
 * Unknown fields in a request are ignored (a newer client may send more);
 * an optional "id" (string or number, at most PROTO_ECHO_MAX bytes once
 * serialised) is echoed in the reply so that pipelining DEALER clients can
 * match replies.
 */
#ifndef BURSAR_PROTO_H
#define BURSAR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_NAME_MAX     64 /* bucket and model names, incl. NUL */
#define PROTO_ID_LEN       16 /* decision ids: 16 lowercase hex digits */
#define PROTO_MAX_EXCLUDE  64 /* names in "exclude" */
#define PROTO_MAX_FALLBACK 64
#define PROTO_ECHO_MAX     128 /* serialised "id" echo */
#define PROTO_ERROR_MAX    256 /* provider_error text kept, incl. NUL */
#define PROTO_MESSAGE_MAX  256 /* error message, incl. NUL */

typedef enum proto_op {
    PROTO_OP_CHOOSE = 0,
    PROTO_OP_FEEDBACK,
    PROTO_OP_STATS,
    PROTO_OP_MODELS,
    PROTO_OP_PING,
    PROTO_OP_EXPORT,
    PROTO_OP_CLOCK /* test clock; only with bursard --test-clock */
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

    /* feedback */
    uint64_t decision; /* parsed decision_id */
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
} proto_request_t;

#define PROTO_EXPORT_DEFAULT 1000
#define PROTO_EXPORT_MAX     10000

/* Parses one request frame. Returns PROTO_OK, or an error code with err
 * filled (the message names the field). req->echo is set as early as
 * possible so that even an error reply can carry the client's id. */
proto_code_t proto_parse_request(const char *buf, size_t len,
                                 proto_request_t *req, proto_error_t *err);

/* Decision ids: 16 lowercase hex digits of a 64-bit sequence number. */
void proto_id_format(uint64_t id, char out[PROTO_ID_LEN + 1]);
/* Returns 0 and sets *id, or -1 when s is not 16 hex digits. */
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

typedef struct proto_choice {
    uint64_t decision;
    const char *model;
    double propensity;
    size_t n_fallbacks;
    const char *const *fallbacks;
    double expected_cost_usd;
    int over_budget; /* no arm was affordable: the cheapest was chosen */
    int explored;    /* chosen by the exploration floor */
} proto_choice_t;

char *proto_write_choice(const char *echo, const proto_choice_t *c);

/* ---- client side: requests and replies ----------------------------- */

/* {"op":"choose","bucket":B[,"exclude":[...]]} */
char *proto_format_choose(const char *bucket, const char *const *exclude,
                          size_t n_exclude);

typedef struct proto_feedback {
    uint64_t decision;
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

char *proto_format_feedback(const proto_feedback_t *f);

/* {"op":OP} for ping, stats, models. */
char *proto_format_simple(proto_op_t op);

typedef struct proto_reply {
    int ok;
    int duplicate;
    proto_error_t error; /* when !ok; code PROTO_E_INTERNAL for unknown */
    /* choose replies */
    uint64_t decision;
    char model[PROTO_NAME_MAX];
    double propensity;
    size_t n_fallbacks;
    char fallbacks[PROTO_MAX_FALLBACK][PROTO_NAME_MAX];
} proto_reply_t;

/* Parses a reply. Returns 0, or -1 if it is not a reply object. */
int proto_parse_reply(const char *buf, size_t len, proto_reply_t *r);

const char *proto_op_name(proto_op_t op);
const char *proto_kind_name(proto_kind_t kind);

#endif
