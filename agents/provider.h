/*
 * provider.h - calls to LLM providers over libcurl.
 *
 * Two wire formats:
 *  - OpenAI-compatible chat completions: POST {base_url}/chat/completions,
 *    "Authorization: Bearer KEY"; output from choices[0].message.content,
 *    tokens from usage.prompt_tokens / usage.completion_tokens. Serves
 *    OpenAI, OpenRouter, Groq, Together, vLLM, llama.cpp, Ollama, ...
 *  - Anthropic Messages: POST {base_url}/v1/messages (a base_url ending in /v1
 *    is not doubled), "x-api-key: KEY",
 *    "anthropic-version: 2023-06-01"; system messages go to the top-level
 *    "system" field; output from the text blocks of content[], tokens from
 *    usage.input_tokens / usage.output_tokens.
 * The key is read from the environment variable the model names
 * (api_key_env; empty: no key is sent, for local servers). It is put in a
 * request header and nowhere else: never in a URL, never logged, never in
 * an error text.
 *
 * Where keys may go (prov_url_check): https to any host, http only to a
 * loopback address (127.0.0.0/8, ::1, localhost; the mock provider, a
 * local server). The program checks each base_url when it reads its
 * configuration; prov_pool_submit checks the request's URL again and
 * fails the call without sending anything when it is refused. Each
 * transfer is restricted to that one protocol (CURLOPT_PROTOCOLS_STR),
 * redirects are never followed (CURLOPT_FOLLOWLOCATION 0: a key must not
 * travel to wherever a Location header points), and plain http to
 * loopback bypasses any proxy.
 *
 * Retries: 429, 5xx, timeouts and connection failures are retried up to
 * max_attempts with exponential backoff and full jitter (AWS architecture
 * blog, "Exponential Backoff And Jitter", 2015: sleep = random in
 * [base*2^k / 2, base*2^k], capped). A Retry-After header (seconds or an
 * HTTP date, read by curl) is honoured: the next attempt waits at least
 * that long; if it asks for more than retry_after_max_ms the call fails at
 * once so the caller can move to a fallback model. Other 4xx answers and
 * malformed bodies are not retried.
 *
 * Concurrency: a prov_pool_t runs many calls at once over one curl multi
 * handle, at most max_inflight transfers at a time (the rest queue). It is
 * driven by prov_pool_run from one thread; completion callbacks run inside
 * prov_pool_run and may submit new calls.
 *
 * Ownership: prov_pool_submit copies the model and the messages. The
 * prov_result_t passed to a callback is owned by the pool and valid only
 * during the callback; take r->output (set it to NULL) to keep it.
 */
#ifndef BURSAR_AGENTS_PROVIDER_H
#define BURSAR_AGENTS_PROVIDER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "agents/bursar.h"

typedef struct prov_opts {
    long timeout_ms;          /* per attempt, whole transfer; default 60000 */
    long connect_timeout_ms;  /* default 5000 */
    int max_attempts;         /* default 3 */
    int backoff_ms;           /* first backoff; default 250 */
    int backoff_max_ms;       /* cap; default 8000 */
    int retry_after_max_ms;   /* longer Retry-After: give up; default 30000 */
    int max_tokens;           /* output cap sent; default 1024 */
    size_t max_inflight;      /* transfers at once; default 8 */
    unsigned seed;            /* jitter; 0: from the clock */
    struct prov_share *share; /* NULL, or DNS and TLS sessions shared
                                 between pools (prov_share_new) */
} prov_opts_t;

void prov_opts_init(prov_opts_t *o);

typedef struct prov_result {
    int ok;         /* 1: the provider answered with a usable body */
    char *output;   /* ok: the text (malloc'ed) */
    long tokens_in; /* from usage; estimated (chars/4) if absent */
    long tokens_out;
    int usage_estimated; /* 1: no usage block in the response */
    double cost_usd;     /* price table x tokens */
    double latency_ms;   /* first attempt start to end, backoff included */
    int attempts;        /* HTTP attempts made */
    long http_status;    /* last status; 0: no HTTP answer */
    char error_kind[32]; /* !ok: rate_limited, server_error, timeout,
                            transport, http_error, malformed (the answer,
                            or messages that cannot be put in the
                            provider's format: nothing sent), no_key,
                            refused_url (nothing sent) */
    char error[256];     /* !ok: a readable description */
    int streamed;        /* prov_pool_submit_call with on_stream: bytes of
                            the answer were passed on (no retry after) */
} prov_result_t;

typedef struct prov_pool prov_pool_t;

/* Called once per submitted call with its final result. */
typedef void (*prov_done_fn)(void *ud, const bursar_model_t *m,
                             prov_result_t *r);

/* Returns 0, or -1 if curl could not be initialised. */
int prov_pool_new(prov_pool_t **out, const prov_opts_t *o);
void prov_pool_destroy(prov_pool_t **self_p);

/* Queues a call of model m with messages (a JSON array of {"role",
 * "content"}). Returns 0 or -1 (bad arguments). */
int prov_pool_submit(prov_pool_t *self, const bursar_model_t *m,
                     const cJSON *messages, prov_done_fn done, void *ud);

/* A call whose request body is ready (the gateway's, agents/chat.h
 * writes it in m's wire format): sent as is to m's endpoint with m's key,
 * under the same URL checks, retries and limits as any call. Its result
 * differs: on a 2xx answer r->ok is 1, r->output the body as it came (not
 * parsed: tokens_in/out -1, cost 0; the caller reads it), or NULL for a
 * streamed call. A streamed call (on_stream set) passes the bytes of a
 * 2xx body to on_stream as they arrive (r->streamed = 1 from the first);
 * once bytes were passed on the call is never retried, and a failure
 * after them is its error. on_stream returns n to go on; any other value
 * aborts the transfer (error_kind "cancelled"). A streamed call has no
 * whole-transfer timeout: it fails when no byte came for timeout_ms. */
typedef struct prov_call {
    const char *body; /* copied */
    size_t (*on_stream)(void *ud, const char *p, size_t n);
    void *stream_ud;
} prov_call_t;

/* Queues call c of model m. Returns 0 or -1 (bad arguments). */
int prov_pool_submit_call(prov_pool_t *self, const bursar_model_t *m,
                          const prov_call_t *c, prov_done_fn done, void *ud);

/* Watches fd (a client's socket; -1: none) while the pool waits: when
 * its peer has closed it, every call of the pool fails with error_kind
 * "cancelled" and its transfers are aborted (a client that went away
 * cancels its upstream calls). Data arriving on fd (a pipelined request)
 * ends the watch. */
void prov_pool_watch(prov_pool_t *self, int fd);

/* Fails every call of the pool with error_kind "cancelled" (completed at
 * the next prov_pool_run); running transfers are aborted. */
void prov_pool_cancel(prov_pool_t *self, const char *why);

/* DNS answers and TLS sessions shared by the pools of several threads (a
 * new connection resumes a session another pool made). Connections stay
 * each pool's own: curl does not support sharing them between threads. */
typedef struct prov_share prov_share_t;
int prov_share_new(prov_share_t **out);
void prov_share_destroy(prov_share_t **self_p);

/* Drives transfers for at most timeout_ms (returns earlier when a call
 * completes). Returns the number of calls not yet completed. */
size_t prov_pool_run(prov_pool_t *self, int timeout_ms);

size_t prov_pool_pending(const prov_pool_t *self);

/* One call, synchronously. r must be cleared with prov_result_clear. */
int prov_call(const prov_opts_t *o, const bursar_model_t *m,
              const cJSON *messages, prov_result_t *r);

void prov_result_clear(prov_result_t *r);

/* Whether calls may go to url: https to any host, http only when the
 * host is a loopback address (127.0.0.0/8, ::1, localhost), as curl's
 * URL parser reads it. Returns 0 (*plain_http, if not NULL: 1 for http),
 * or BURSAR_EINVAL with why (no path; e.g. "http is allowed only to a
 * loopback address"). */
int prov_url_check(const char *url, int *plain_http, char *why, size_t cap);

/* The endpoint of a model the worker's own configuration does not
 * describe: its provider's public API (PROTO_OPENAI_URL,
 * PROTO_ANTHROPIC_URL) and the conventional key variable (OPENAI_API_KEY,
 * ANTHROPIC_API_KEY), into m->base_url and m->api_key_env. */
void prov_default_endpoint(bursar_model_t *m);

/* Price-table cost, USD, of m for the tokens (negative counts read as 0):
 * proto_price_cost with m's prices. */
double prov_cost(const bursar_model_t *m, long tokens_in, long tokens_out);

#endif
