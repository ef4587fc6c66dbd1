/*
 * chat.h - OpenAI chat completions at the gateway, and their translation
 * to and from Anthropic Messages, streaming included.
 *
 * Pure functions: no I/O, no global state, no clock but the "created"
 * field of the answers and chunks written for Anthropic (time()).
 *
 * Formats (OpenAI's openapi.yaml, CreateChatCompletionRequest /
 * CreateChatCompletionResponse / CreateChatCompletionStreamResponse;
 * Anthropic's Messages and "Streaming Messages" pages):
 *
 * Request, OpenAI to Anthropic (chat_upstream_body):
 *   system and developer messages  "system" (their texts joined by "\n",
 *                                  in order, wherever they stand)
 *   user                           a user message; parts "text" -> text
 *                                  blocks, "image_url" -> image blocks
 *                                  (a data: URL -> source base64, an
 *                                  http(s) URL -> source url); other parts
 *                                  (input_audio, file) are refused
 *   assistant                      text blocks, then one tool_use block
 *                                  per tool_calls[] (input = the parsed
 *                                  arguments, which must be an object)
 *   tool                           a tool_result block (tool_use_id =
 *                                  tool_call_id) in a user message
 *   consecutive messages of one role (after the above) are merged into
 *   one message: Anthropic wants user and assistant to alternate, and
 *   the results of one turn's tool calls in one user message. A message
 *   of one text block is sent with a string "content". Empty texts are
 *   left out (Anthropic refuses empty text blocks).
 *   tools[].function               {"name","description","input_schema"
 *                                  (parameters, default an empty object
 *                                  schema)}
 *   tool_choice                    "auto" {"type":"auto"}, "none"
 *                                  {"type":"none"}, "required"
 *                                  {"type":"any"}, {"type":"function",
 *                                  "function":{"name":N}} {"type":"tool",
 *                                  "name":N}; parallel_tool_calls false
 *                                  -> "disable_parallel_tool_use":true;
 *                                  dropped when there are no tools
 *   max_tokens                     max_tokens, else max_completion_tokens,
 *                                  else the caller's default (Anthropic
 *                                  requires it)
 *   temperature                    clamped to [0, 1] (OpenAI's range is
 *                                  [0, 2], Anthropic's [0, 1])
 *   top_p                          top_p
 *   stop (string or array)         stop_sequences, without the strings
 *                                  that are only whitespace (Anthropic
 *                                  refuses them: "each stop sequence must
 *                                  contain non-whitespace")
 *   user                           metadata.user_id
 *   stream                         stream (when the call streams)
 * Dropped (Anthropic has no equivalent): frequency_penalty,
 * presence_penalty, logit_bias, logprobs, top_logprobs, n (only 1 passes
 * chat_request_check), seed, response_format (the gateway checks the
 * answer itself), stream_options, service_tier, store, metadata,
 * modalities, audio, prediction, reasoning_effort, web_search_options,
 * messages' "name", image parts' "detail", and any other field.
 *
 * Answer, Anthropic to OpenAI (chat_answer_parse): text blocks joined ->
 * message.content (null when there are tool calls and no text), tool_use
 * blocks -> message.tool_calls (arguments = the input printed as JSON),
 * other blocks (thinking, ...) dropped; stop_reason end_turn -> "stop",
 * stop_sequence -> "stop", max_tokens -> "length", tool_use ->
 * "tool_calls", refusal -> "content_filter", anything else -> "stop";
 * usage: prompt_tokens = input_tokens + cache_creation_input_tokens +
 * cache_read_input_tokens (OpenAI's prompt_tokens counts cached tokens
 * too), completion_tokens = output_tokens; id "chatcmpl-" + the message's
 * id.
 *
 * Streams (chat_stream_*): Server-Sent Events, read incrementally in any
 * split (an event may be cut anywhere; lines end in \n, \r\n or \r;
 * "data:" lines of one event are joined by \n; "event:" names it;
 * comments and other fields are ignored). OpenAI: every chunk is passed
 * on with "model" rewritten; without client_wants_usage, the usage-only
 * chunk (choices [] or null, usage an object) is not passed on and every
 * "usage" member is removed (the usage is recorded either way); with it,
 * a usage chunk with "choices":null gets "choices":[]. A chunk carrying
 * "error" is BURSAR_EREMOTE. Anthropic: message_start -> a chunk with
 * delta {"role":"assistant","content":""}; content_block_start of a text
 * block with text, and text_delta -> delta {"content"}; content_block_start
 * of a tool_use block -> delta {"tool_calls":[{"index":K,"id","type":
 * "function","function":{"name","arguments":""}}]} (K counts the tool
 * calls from 0); input_json_delta -> delta {"tool_calls":[{"index":K,
 * "function":{"arguments":partial_json}}]}; the first message_delta with
 * a stop_reason -> delta {} with finish_reason (mapped as above);
 * message_stop -> a usage chunk if client_wants_usage and the usage is
 * known (message_delta's usage is cumulative, and there may be several,
 * so the total is sent at the end), and the end. ping, content_block_stop,
 * thinking and signature deltas and unknown event types are ignored
 * (Anthropic's versioning policy adds event types). When
 * client_wants_usage, every Anthropic-made chunk carries "usage":null, as
 * OpenAI's do.
 */
#ifndef BURSAR_AGENTS_CHAT_H
#define BURSAR_AGENTS_CHAT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "agents/bursar.h"

/* The largest event of an upstream stream (the data of one event; a line
 * may have 16 bytes more, for the field's name), bytes. */
#define CHAT_EVENT_MAX (1024 * 1024)

/* Checks a client's chat request: an object; "model" a string; "messages"
 * a non-empty array of objects, each with "role" one of system developer
 * user assistant tool, "content" a string, an array of content parts
 * (objects with "type"; "text" parts with a string "text", "image_url"
 * parts with an "image_url" object with a string "url"), or null / absent
 * (only for assistant with "tool_calls", or tool); an assistant's
 * "tool_calls" an array of {"id": string, "function": {"name": string,
 * "arguments": string}}; a tool message's "tool_call_id" a string; "stream"
 * boolean; "stream_options" object ("include_usage" boolean); "n" integer
 * 1 (others refused: not supported); "max_tokens"/"max_completion_tokens"
 * integers in [1, INT_MAX]; "temperature","top_p" numbers; "stop" string
 * or array of strings; "tools" an array of {"type": string} objects,
 * those of type "function" with {"function": {"name": string}};
 * "tool_choice" a string or an object; "user" a string; "response_format"
 * object with "type" text|json_object|json_schema (json_schema: a
 * "json_schema" object, its "schema", if any, an object). An optional
 * field that is null counts as absent, as OpenAI reads it. Other fields
 * pass through unchecked. Returns 0, or BURSAR_EFORMAT with err
 * "messages[2].role: must be a string" style messages and *param (param
 * may be NULL) set to the top-level field name ("messages"; NULL when req
 * is not an object). */
int chat_request_check(const cJSON *req, char *err, size_t cap,
                       const char **param);

/* The prompt for routing rules: the text content of every message (a
 * string content, or each "text" part), joined by "\n" (malloc'ed; ""
 * when there is none). */
char *chat_prompt_text(const cJSON *req);

/* The upstream request body for model m from the client's request req
 * (checked): OpenAI: req with "model" = m->model and, when stream,
 * "stream":true and "stream_options":{"include_usage":true} forced (the
 * gateway needs the usage to know the cost; other stream_options members
 * kept), when not stream, "stream" and "stream_options" removed;
 * Anthropic: translated as the header comment says (max_tokens_default
 * when the request has no limit; it must then be positive). Returns a
 * malloc'ed string, or NULL with err (naming the field, as
 * "messages[1].content[0].type: \"input_audio\" is not supported by
 * Anthropic") when something cannot be translated. */
char *chat_upstream_body(const cJSON *req, const bursar_model_t *m, int stream,
                         int max_tokens_default, char *err, size_t cap);

typedef struct chat_answer {
    cJSON *response; /* an OpenAI "chat.completion" object; "model" =
                        model_name */
    char *text;      /* choices[0].message.content ("" for a tool call only) */
    long tokens_in, tokens_out; /* -1: the upstream gave no usage */
    char finish_reason[32];     /* "" when the upstream gave none */
} chat_answer_t;

/* A complete answer (an HTTP 2xx body) of provider (PROTO_PROVIDER_*)
 * translated to OpenAI's shape (above; an OpenAI answer is kept as it is
 * but for "model"). OpenAI: choices[0].message must be an object whose
 * content is a string, null, or absent with tool_calls. Anthropic:
 * "content" must be an array. Returns 0 or BURSAR_EFORMAT (malformed, or
 * an error body; err says what); *a is all clear (response NULL, tokens
 * -1) on failure. */
int chat_answer_parse(int provider, const char *body, size_t len,
                      const char *model_name, chat_answer_t *a, char *err,
                      size_t cap);
void chat_answer_clear(chat_answer_t *a);

/* An incremental reader of an upstream Server-Sent-Events stream (bytes in
 * any split: an event may be cut anywhere, lines end in \n or \r\n)
 * writing OpenAI "chat.completion.chunk" events for the client. */
typedef struct chat_stream chat_stream_t;
/* One event's JSON (len bytes, NUL-terminated); nonzero: stop. */
typedef int (*chat_emit_fn)(void *ud, const char *json, size_t len);

chat_stream_t *chat_stream_new(int provider, const char *model_name,
                               int client_wants_usage);
void chat_stream_destroy(chat_stream_t **self_p);

/* The "created" of the chunks made for Anthropic (default: time() when
 * the stream was made); for tests that compare outputs. */
void chat_stream_set_created(chat_stream_t *s, long created);

/* Returns 0 (more to come), 1 (the stream ended: [DONE] or message_stop;
 * bytes after the end are ignored, and later calls return 1), a nonzero
 * value the emit returned (as is; the caller stops), or BURSAR_EFORMAT /
 * BURSAR_EREMOTE (an "error" event from the upstream) with err; after an
 * error every later call returns it again with the same err. Every chunk's
 * "model" is model_name. OpenAI: chunks passed through with model
 * rewritten; the usage-only chunk (choices []) is emitted only if
 * client_wants_usage (its usage is recorded either way), and "usage"
 * members are removed when the client did not ask for usage. Anthropic:
 * message_start -> a role chunk, text_delta -> content, tool_use
 * start/input_json_delta -> tool_calls deltas, message_delta -> a
 * finish_reason chunk, message_stop -> then a usage chunk if
 * client_wants_usage; ping ignored. The caller writes "data: " + json +
 * "\n\n" itself and "data: [DONE]\n\n" at the end. Limits: an event (or a
 * line) over CHAT_EVENT_MAX bytes is BURSAR_EFORMAT. */
int chat_stream_feed(chat_stream_t *s, const char *p, size_t n,
                     chat_emit_fn emit, void *ud, char *err, size_t cap);
const char *chat_stream_text(const chat_stream_t *s); /* content so far */
/* 1: known (*tokens_in, *tokens_out set), 0: not (both -1). */
int chat_stream_usage(const chat_stream_t *s, long *tokens_in,
                      long *tokens_out);
int chat_stream_ended(const chat_stream_t *s);     /* 1: ended properly */
size_t chat_stream_chunks(const chat_stream_t *s); /* chunks emitted */
/* The last finish_reason seen (OpenAI's words); "" if none yet. */
const char *chat_stream_finish_reason(const chat_stream_t *s);

/* OpenAI's error body {"error":{"message":..,"type":..,"param":..|null,
 * "code":..|null}}, malloc'ed (param, code NULL: null). */
char *chat_error_body(const char *type, const char *message, const char *param,
                      const char *code);

#endif
