/*
 * bursar.h - the client library of bursar: ask the controller (bursard)
 * which model should serve a request, and report what happened.
 *
 *     bursar_opts_t o;
 *     bursar_opts_init(&o);
 *     o.endpoint = "tcp://127.0.0.1:7878";
 *     o.fallback_model = "gpt-4o-mini";        // when bursard is away
 *     o.spool_path = "/var/lib/app/bursar.spool";
 *     bursar_t *b;
 *     if (bursar_new(&b, &o) != 0) ...
 *     bursar_decision_t d;
 *     bursar_choose(b, "code", NULL, 0, &d);   // d.model serves
 *     ... call the provider, validate ...
 *     bursar_feedback_t fb;
 *     bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
 *     fb.success = 1; fb.cost_usd = 0.0021; fb.latency_ms = 812;
 *     bursar_feedback(b, &d, &fb);
 *     // invalid answer: ask again, the tried model excluded (a cascade)
 *     const char *tried[] = {d.model};
 *     bursar_escalate(b, &d, tried, 1, &d);
 *     bursar_destroy(&b);
 *
 * Wire: one ZeroMQ REQ socket, one JSON object per frame (docs/protocol.md),
 * every request and reply through the wire codec proto.h, the very code
 * the controller links. A reply that is malformed or lacks a field the
 * operation needs is BURSAR_EPROTO, bursar_last_error naming the field
 * (`reply field "propensity" missing`): never a default. A request that gets no
 * reply within timeout_ms is retried on a fresh socket ("lazy pirate"): the old
 * socket is closed with linger 0, so a late reply can never be taken for the
 * answer to another request. Retrying feedback is safe: the controller applies
 * each kind of feedback at most once per decision. Retrying choose may leave an
 * orphan decision on the controller, which expires after its decision_ttl_s.
 *
 * When the controller cannot be reached (every attempt timed out):
 *  - bursar_choose answers with a local decision (d.local = 1, d.id = "",
 *    a fresh d.local_id): the bucket's own fallback (bursar_set_fallback),
 *    else opts.fallback_model, each only if the bucket allows it, else
 *    the bucket's cheapest model; the bucket's other models follow as
 *    fallbacks, cheapest first. What a bucket allows, and what its models
 *    cost (their prices for the bucket's expected tokens), come from the
 *    last models reply (bursar_models; read once by the client itself at
 *    the controller's first answer). A bucket that reply did not describe
 *    (the controller never reached, an older controller, a bucket it does
 *    not serve) gets its own fallback or opts.fallback_model, unchecked.
 *    Returns BURSAR_LOCAL.
 *  - bursar_feedback appends the event to the spool file (one JSON line,
 *    written with one write(2) under flock and fsync'ed before the call
 *    returns); returns BURSAR_SPOOLED.
 *  - For backoff_ms (doubling up to backoff_max_ms) later calls do not try
 *    the network and answer locally at once; then one probe is made.
 * The spool is replayed (oldest first) as soon as a request succeeds again,
 * or explicitly with bursar_replay. A replayed event that the controller
 * answers "duplicate" or with an error (unknown or expired decision) is
 * dropped and counted; when the whole spool has been acknowledged it is
 * truncated. A store_error or internal_error reply (the controller could
 * not commit), or rate_limited (retry later), stops the replay and keeps
 * the spool; live feedback refused that way is spooled too. Several
 * processes may share one spool file.
 *
 * Feedback for a *local* decision (no controller id) is booked: sent as
 * op book (docs/protocol.md) with the decision itself (local_id, bucket,
 * model, time, tenant), or spooled like any feedback while the controller is
 * away and sent when it answers. The controller books its cost into the ledger
 * and logs it as a local decision; a resent booking is answered
 * duplicate (keyed on the local id and this client's name).
 * bursar_stats counts these events in local_feedback.
 *
 * Ownership: strings passed in are copied or used only during the call.
 * A bursar_decision_t is a plain value (fixed-size arrays, nothing to free).
 * bursar_models returns an array owned by the caller (bursar_models_free).
 * A bursar_t is not thread-safe: use one per thread.
 *
 * Link with library bursar (this client, the codec bursar_proto and
 * bursar_base; ZeroMQ, cJSON, libm; no libcurl, no threads). Every global
 * symbol it defines starts with bursar_ or proto_.
 */
#ifndef BURSAR_AGENTS_BURSAR_H
#define BURSAR_AGENTS_BURSAR_H

#include <stddef.h>

#include "policies/base.h" /* BURSAR_NAME_MAX, enum bursar_rc, bursar_strerror */
#include "agents/proto.h"  /* the wire codec: limits, bursar_model_t */
#include "agents/keys.h"   /* CURVE key specs */

#define BURSAR_ID_MAX        (PROTO_TOKEN_MAX + 1) /* decision ids, incl. NUL */
#define BURSAR_MAX_FALLBACKS PROTO_MAX_FALLBACK    /* the codec's limit */
#define BURSAR_LOCAL_ID_MAX  PROTO_LOCAL_ID_MAX    /* local ids, incl. NUL */
#define BURSAR_TENANT_MAX    PROTO_TENANT_MAX      /* tenants, incl. NUL */

/* Return codes (enum bursar_rc: BURSAR_OK, BURSAR_LOCAL, BURSAR_SPOOLED,
 * BURSAR_E*) and bursar_strerror() are the project's, in base.h. */

typedef struct bursar bursar_t;

typedef struct bursar_opts {
    const char *endpoint;       /* e.g. "tcp://127.0.0.1:7878" (required) */
    int timeout_ms;             /* per attempt; default 1000 */
    int attempts;               /* attempts per request; default 2 */
    int backoff_ms;             /* first offline period; default 500 */
    int backoff_max_ms;         /* cap; default 5000 */
    const char *fallback_model; /* the default local answer of a bucket
                                   that allows it (bursar_choose); NULL:
                                   none, the bucket's cheapest model */
    const char *spool_path;     /* NULL: no spool, feedback EUNREACHABLE */
    /* CURVE (docs/security.md): both or neither. Each is a key spec
     * (keys.h): the 40 Z85 characters or the path of a key file. */
    const char *secret_key; /* this client's secret key (bursar keygen) */
    const char *server_key; /* bursard's public key */
    void *zmq_context;      /* NULL: the client's own ZeroMQ context (and
                               I/O thread); else one the caller made and
                               terminates after destroying its clients, so
                               that many clients (one per thread) share
                               one I/O thread */
} bursar_opts_t;

/* Fills defaults (endpoint NULL). */
void bursar_opts_init(bursar_opts_t *o);

/* Creates a client. Connects lazily, at the first request; the only I/O
 * here is a check of the spool (a non-empty one is replayed after the
 * first successful request) and the reading of key files. Copies every
 * string of o. Returns 0, BURSAR_EINVAL (no endpoint, or one that is not
 * tcp://HOST:PORT, ipc://PATH or inproc://NAME: proto_endpoint_check; one CURVE
 * key without the other), BURSAR_EIO (a spool that cannot be used: an existing
 * spool that is not a regular file or does not open for writing, or a new one
 * whose directory does not exist or may not be written) or BURSAR_EZMQ.
 * bursar_new_err also says why in err (a key file that cannot be read, the
 * spool's path and what is wrong). */
int bursar_new(bursar_t **out, const bursar_opts_t *o);
int bursar_new_err(bursar_t **out, const bursar_opts_t *o, char *err,
                   size_t err_len);

/* Frees everything; safe on NULL; sets *self_p to NULL. Pending spool
 * lines stay on disk for the next client. */
void bursar_destroy(bursar_t **self_p);

typedef struct bursar_decision {
    char id[BURSAR_ID_MAX];       /* the controller's decision token (an
                                     opaque string); "" if local */
    char model[BURSAR_NAME_MAX];  /* the model to call */
    char bucket[BURSAR_NAME_MAX]; /* the bucket asked for */
    double propensity;            /* P(model chosen); 1 when local */
    size_t n_fallbacks;
    char fallbacks[BURSAR_MAX_FALLBACKS][BURSAR_NAME_MAX]; /* next choices */
    int local;                          /* 1: made by the client, not bursard */
    char local_id[BURSAR_LOCAL_ID_MAX]; /* local: the id it is booked under
                                           (32 random hex digits); else "" */
    double local_time; /* local: when it was made, Unix seconds; else 0 */
    char tenant[BURSAR_TENANT_MAX]; /* the tenant it was made for (the
                                       client's at the choose: see
                                       bursar_set_tenant), "" for none; a
                                       local decision is booked with it */
} bursar_decision_t;

/* A local decision of bucket: every field cleared, local = 1, propensity
 * 1, a fresh local_id and local_time now; the caller sets model and
 * fallbacks (and tenant, if any). For a caller that decides alone
 * (bursar_choose makes its own); its feedback is booked like any local
 * decision's. */
void bursar_local_init(bursar_decision_t *d, const char *bucket);

/* The local fallback of bucket (1 to 63 bytes), or with bucket NULL the
 * default of every bucket (opts.fallback_model); model NULL removes it.
 * bursar_choose uses a fallback only where the bucket allows it (when the
 * models reply said what the bucket allows). Returns BURSAR_OK or
 * BURSAR_EINVAL (a name empty or too long). */
int bursar_set_fallback(bursar_t *self, const char *bucket, const char *model);

/* The tenant (the application a request is made for: docs/protocol.md,
 * choose) sent with every later bursar_choose and bursar_escalate, and
 * kept in their decisions (d.tenant), so that a local decision's booking
 * carries it too, even when it is sent after the tenant changed. One
 * client serves many tenants in turn: set it before each choose. NULL or
 * "" clears it. Returns BURSAR_OK, or BURSAR_EINVAL (not 1 to
 * BURSAR_TENANT_MAX - 1 characters of A-Z a-z 0-9 . _ -: proto_tenant_valid;
 * the tenant in force is then unchanged). */
int bursar_set_tenant(bursar_t *self, const char *tenant);

/* Whether bucket allows model, as the last models reply said: 1 it does,
 * 0 it does not, -1 that reply did not list the bucket, -2 no bucket is
 * known (no models reply yet, or one from a controller that does not
 * send buckets). */
int bursar_bucket_allows(const bursar_t *self, const char *bucket,
                         const char *model);

/* The name of the i-th bucket of the last models reply (0 first), or NULL
 * past the last one or when no bucket is known; it belongs to self and
 * lasts until the next models reply. For a "did you mean" naming a
 * misspelt bucket. */
const char *bursar_bucket_name(const bursar_t *self, size_t i);

/* Asks for a model for one request in bucket, excluding n_exclude models.
 * Returns BURSAR_OK (d from the controller), BURSAR_LOCAL (controller
 * unreachable, a local decision: see the top of this file), BURSAR_EREMOTE
 * (the controller refused: e.g. unknown bucket, no arm left; see
 * bursar_last_error), BURSAR_EUNREACHABLE (controller unreachable and no
 * local candidate: none configured nor known, or every one excluded),
 * BURSAR_EPROTO (a malformed reply: see bursar_last_error), BURSAR_EINVAL. */
int bursar_choose(bursar_t *self, const char *bucket,
                  const char *const *exclude, size_t n_exclude,
                  bursar_decision_t *d);

/* Asks again for the request that decision prev served (a cascade: its
 * answer failed validation), excluding n_exclude models (normally every
 * model tried so far): bursar_choose in prev's bucket, the new decision
 * linked to prev ("escalates", docs/protocol.md), so that the controller
 * records its step in the cascade and off-policy evaluation can judge the
 * request as a whole (docs/ope.md). A local prev (no id) gives a plain
 * choose. prev and d may point to the same decision. Returns what
 * bursar_choose returns; BURSAR_EREMOTE also when the controller does not
 * know prev's token (unknown_decision) or prev is another client's
 * (forbidden). */
int bursar_escalate(bursar_t *self, const bursar_decision_t *prev,
                    const char *const *exclude, size_t n_exclude,
                    bursar_decision_t *d);

typedef enum bursar_fb_kind {
    BURSAR_FB_OUTCOME = 0,   /* quality outcome: success or reward */
    BURSAR_FB_CORRECTION,    /* the user corrected the answer later */
    BURSAR_FB_PROVIDER_ERROR /* the provider failed: arm health only */
} bursar_fb_kind_t;

typedef struct bursar_feedback {
    bursar_fb_kind_t kind;
    int success;       /* OUTCOME: 1/0; -1: send reward instead */
    double reward;     /* OUTCOME with success == -1: in [0, 1] */
    double cost_usd;   /* < 0: not sent */
    long tokens_in;    /* < 0: not sent */
    long tokens_out;   /* < 0: not sent */
    double latency_ms; /* < 0: not sent */
    const char *error; /* PROVIDER_ERROR: a short description */
    const char *model; /* OUTCOME: the fallback model that served, when
                          not the decision's own; NULL: the decision's */
} bursar_feedback_t;

/* Sets kind, success = 1 and every optional field to "not sent". */
void bursar_feedback_init(bursar_feedback_t *fb, bursar_fb_kind_t kind);

/* Reports feedback on decision d (a local one is booked: op book).
 * Returns BURSAR_OK (acknowledged; also when the controller says it was a
 * duplicate), BURSAR_SPOOLED (written durably to the spool: the controller
 * unreachable or in trouble), BURSAR_EREMOTE (refused, e.g. unknown
 * decision: not retried), BURSAR_EUNREACHABLE (controller away and no
 * spool), BURSAR_EPROTO (a malformed reply: the event is spooled when
 * there is a spool), BURSAR_EIO (the spool could not be written:
 * bursar_last_error names it; the event is lost), BURSAR_EINVAL (also a
 * decision id that is not a token: proto_token_valid; a local decision
 * without its local_id). EUNREACHABLE and EIO mean the event was neither
 * delivered nor kept. */
int bursar_feedback(bursar_t *self, const bursar_decision_t *d,
                    const bursar_feedback_t *fb);

/* Sends spooled feedback now. *n_sent (may be NULL) gets the number of
 * events acknowledged. Returns BURSAR_OK when the spool is empty
 * afterwards, BURSAR_EUNREACHABLE when the controller went away again
 * (the rest stays spooled), BURSAR_EIO. */
int bursar_replay(bursar_t *self, size_t *n_sent);

/* {"op":"ping"}: BURSAR_OK or a failure code. Does not fall back. */
int bursar_ping(bursar_t *self);

/* A configured model, as the models reply gives it (the codec's
 * proto_model_t: name, provider, model, price_in_per_mtok,
 * price_out_per_mtok, health). Its base_url and api_key_env are always
 * empty here: where a model is called, and with which key, comes from the
 * agent's own configuration, never from the controller (docs/security.md). */
typedef proto_provider_t bursar_provider_t;
#define BURSAR_PROVIDER_OPENAI    PROTO_PROVIDER_OPENAI
#define BURSAR_PROVIDER_ANTHROPIC PROTO_PROVIDER_ANTHROPIC
typedef proto_model_t bursar_model_t;

/* {"op":"models"}: the configured models. On BURSAR_OK *out is a new array
 * of *n models owned by the caller (free with bursar_models_free); the
 * client keeps the reply's buckets (what each allows) for its local
 * decisions. */
int bursar_models(bursar_t *self, bursar_model_t **out, size_t *n);
void bursar_models_free(bursar_model_t **models);

/* Sends one raw request object (JSON text) and returns the reply text in
 * *reply (caller frees with free()). No fallback. For tools and tests. */
int bursar_request(bursar_t *self, const char *json, char **reply);

typedef struct bursar_stats {
    size_t requests;       /* requests answered by the controller */
    size_t timeouts;       /* attempts that timed out */
    size_t local_choices;  /* BURSAR_LOCAL answers */
    size_t spooled;        /* feedback events written to the spool */
    size_t local_feedback; /* events of local decisions booked or
                              spooled for booking */
    size_t replayed;       /* spooled events acknowledged on replay */
    size_t replay_dropped; /* replayed events refused (unknown/expired),
                              or torn (zero-filled) spool lines */
    size_t duplicates;     /* acknowledgements marked duplicate */
    size_t book_refused;   /* of replay_dropped: bookings of local
                              decisions refused (an old controller without
                              book, a time older than retention): their
                              spend never reached the ledger */
} bursar_stats_t;

void bursar_stats(const bursar_t *self, bursar_stats_t *st);

/* Why the last call failed: the controller's error ("code: message") or
 * a malformed reply ("reply field \"propensity\" missing"); "" after a
 * success. Owned by self, valid until the next call. */
const char *bursar_last_error(const bursar_t *self);

#endif
