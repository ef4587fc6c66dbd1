/*
 * chat.c - OpenAI chat completions and their translation to and from
 * Anthropic Messages (chat.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/chat.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The longest line: an event's data and the field name before it. */
#define CHAT_LINE_MAX (CHAT_EVENT_MAX + 16)

/* ------------------------------------------------------------ helpers */

/* Appends s, after sep unless b is empty. */
static void
sb_join(bursar_buf_t *b, const char *sep, const char *s)
{
    if (b->len)
        bursar_buf_add(b, sep, strlen(sep));
    bursar_buf_add(b, s, strlen(s));
}

/* The text (malloc'ed; "" when empty); b is left empty. */
static char *
sb_take(bursar_buf_t *b)
{
    char *p = b->p ? b->p : bursar_strdup("");
    memset(b, 0, sizeof(*b));
    return p;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return BURSAR_EFORMAT;
}

static const cJSON *
get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* An optional member: NULL when absent or null (OpenAI's reading). */
static const cJSON *
opt(const cJSON *o, const char *key)
{
    const cJSON *x = get(o, key);
    return cJSON_IsNull(x) ? NULL : x;
}

static const char *
str(const cJSON *o, const char *key)
{
    const cJSON *x = get(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int
is_int_in(const cJSON *x, double lo, double hi)
{
    return cJSON_IsNumber(x) && x->valuedouble >= lo && x->valuedouble <= hi &&
           x->valuedouble == floor(x->valuedouble);
}

/* A token count: a number in [0, 1e15], else -1 (no conversion of
 * anything larger: a float-to-integer overflow is undefined). */
static long
tok(const cJSON *x)
{
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 1e15 ||
        x->valuedouble >= (double)LONG_MAX)
        return -1;
    return (long)x->valuedouble;
}

static char *
json_print(const cJSON *c)
{
    char *s = cJSON_PrintUnformatted(c);
    if (!s) /* cJSON's allocation failed: out of memory is fatal */
        abort();
    return s;
}

/* Removes every member key of o but the first. */
static void
keep_first(cJSON *o, const char *key)
{
    int seen = 0;
    for (cJSON *c = o->child, *nx; c; c = nx) {
        nx = c->next;
        if (c->string && strcmp(c->string, key) == 0 && seen++)
            cJSON_Delete(cJSON_DetachItemViaPointer(o, c));
    }
}

/* Sets o[key] = v (taken), in the place of the first such member; a JSON
 * text may name a key twice, and a reader that keeps the last one must
 * see v too. */
static void
obj_set(cJSON *o, const char *key, cJSON *v)
{
    keep_first(o, key);
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

static void
obj_del(cJSON *o, const char *key)
{
    while (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
}

/* Whitespace only (or empty). */
static int
blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\v' &&
            *s != '\f')
            return 0;
    return 1;
}

enum { ROLE_SYSTEM, ROLE_DEVELOPER, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL };

static int
role_of(const char *r)
{
    static const char *const names[] = {"system", "developer", "user",
                                        "assistant", "tool"};
    for (int i = 0; r && i < 5; i++)
        if (strcmp(r, names[i]) == 0)
            return i;
    return -1;
}

/* An error's text: {"message":..} or a string. */
static const char *
error_text(const cJSON *e)
{
    if (cJSON_IsString(e))
        return e->valuestring;
    const char *m = str(e, "message");
    return m ? m : "(no message)";
}

static cJSON *
usage_new(long tin, long tout)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)tin);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)tout);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(tin + tout));
    return u;
}

/* Anthropic's stop_reason in OpenAI's words. */
static const char *
finish_of(const char *stop_reason)
{
    static const char *const map[][2] = {{"end_turn", "stop"},
                                         {"stop_sequence", "stop"},
                                         {"max_tokens", "length"},
                                         {"tool_use", "tool_calls"},
                                         {"refusal", "content_filter"}};
    for (size_t i = 0; stop_reason && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(stop_reason, map[i][0]) == 0)
            return map[i][1];
    return "stop";
}

/* Anthropic's usage: input (cached tokens included) and output. */
static void
anthropic_usage(const cJSON *u, long *tin, long *tout)
{
    long in = tok(get(u, "input_tokens"));
    if (in >= 0) {
        long c1 = tok(get(u, "cache_creation_input_tokens"));
        long c2 = tok(get(u, "cache_read_input_tokens"));
        *tin = in + (c1 > 0 ? c1 : 0) + (c2 > 0 ? c2 : 0);
    }
    long out = tok(get(u, "output_tokens"));
    if (out >= 0)
        *tout = out;
}

/* ------------------------------------------------------ request check */

typedef int (*check_fn)(const cJSON *x, char *err, size_t cap);

static int
check_parts(const cJSON *c, int i, char *err, size_t cap)
{
    int j = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c)
    {
        if (!cJSON_IsObject(p))
            return fail(err, cap, "messages[%d].content[%d]: must be an object",
                        i, j);
        const char *type = str(p, "type");
        if (!type)
            return fail(err, cap,
                        "messages[%d].content[%d].type: must be a string", i,
                        j);
        if (strcmp(type, "text") == 0 && !str(p, "text"))
            return fail(err, cap,
                        "messages[%d].content[%d].text: must be a string", i,
                        j);
        if (strcmp(type, "image_url") == 0 && !str(get(p, "image_url"), "url"))
            return fail(err, cap,
                        "messages[%d].content[%d].image_url.url: must be a "
                        "string",
                        i, j);
        j++;
    }
    return 0;
}

static int
check_tool_calls(const cJSON *calls, int i, char *err, size_t cap)
{
    if (!cJSON_IsArray(calls))
        return fail(err, cap, "messages[%d].tool_calls: must be an array", i);
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, calls)
    {
        const char *pre = "messages[%d].tool_calls[%d]";
        char at[64];
        snprintf(at, sizeof at, pre, i, k++);
        if (!cJSON_IsObject(c))
            return fail(err, cap, "%s: must be an object", at);
        if (!str(c, "id"))
            return fail(err, cap, "%s.id: must be a string", at);
        const cJSON *type = get(c, "type");
        if (type && !cJSON_IsString(type))
            return fail(err, cap, "%s.type: must be a string", at);
        if (type && strcmp(type->valuestring, "function") != 0)
            continue;
        const cJSON *f = get(c, "function");
        if (!cJSON_IsObject(f))
            return fail(err, cap, "%s.function: must be an object", at);
        if (!str(f, "name"))
            return fail(err, cap, "%s.function.name: must be a string", at);
        if (!str(f, "arguments"))
            return fail(err, cap, "%s.function.arguments: must be a string",
                        at);
    }
    return 0;
}

static int
check_message(const cJSON *m, int i, char *err, size_t cap)
{
    if (!cJSON_IsObject(m))
        return fail(err, cap, "messages[%d]: must be an object", i);
    const cJSON *role = get(m, "role");
    if (!role)
        return fail(err, cap, "messages[%d].role: required", i);
    if (!cJSON_IsString(role))
        return fail(err, cap, "messages[%d].role: must be a string", i);
    int r = role_of(role->valuestring);
    if (r < 0)
        return fail(err, cap,
                    "messages[%d].role: must be one of system, developer, "
                    "user, assistant, tool",
                    i);
    const cJSON *calls = opt(m, "tool_calls");
    int rc = 0;
    if (r == ROLE_ASSISTANT && calls &&
        (rc = check_tool_calls(calls, i, err, cap)) != 0)
        return rc;
    const cJSON *c = get(m, "content");
    if (!c || cJSON_IsNull(c)) {
        int may = r == ROLE_TOOL ||
                  (r == ROLE_ASSISTANT && cJSON_GetArraySize(calls) > 0);
        if (!may && !c)
            return fail(err, cap, "messages[%d].content: required", i);
        if (!may)
            return fail(err, cap,
                        "messages[%d].content: null only for an assistant "
                        "message with tool_calls, or a tool message",
                        i);
    } else if (cJSON_IsArray(c)) {
        if ((rc = check_parts(c, i, err, cap)) != 0)
            return rc;
    } else if (!cJSON_IsString(c)) {
        return fail(err, cap,
                    "messages[%d].content: must be a string or an array of "
                    "content parts",
                    i);
    }
    if (r == ROLE_TOOL && !str(m, "tool_call_id"))
        return fail(err, cap, "messages[%d].tool_call_id: must be a string", i);
    return 0;
}

static int
check_model(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return fail(err, cap, "model: required");
    if (!cJSON_IsString(x))
        return fail(err, cap, "model: must be a string");
    if (!*x->valuestring)
        return fail(err, cap, "model: must not be empty");
    return 0;
}

static int
check_messages(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return fail(err, cap, "messages: required");
    if (!cJSON_IsArray(x))
        return fail(err, cap, "messages: must be an array");
    if (!x->child)
        return fail(err, cap, "messages: must not be empty");
    int i = 0, rc;
    const cJSON *m;
    cJSON_ArrayForEach(m, x)
    {
        if ((rc = check_message(m, i++, err, cap)) != 0)
            return rc;
    }
    return 0;
}

static int
check_stream(const cJSON *x, char *err, size_t cap)
{
    return !x || cJSON_IsBool(x) ? 0
                                 : fail(err, cap, "stream: must be a boolean");
}

static int
check_stream_options(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return 0;
    if (!cJSON_IsObject(x))
        return fail(err, cap, "stream_options: must be an object");
    const cJSON *u = opt(x, "include_usage");
    if (u && !cJSON_IsBool(u))
        return fail(err, cap,
                    "stream_options.include_usage: must be a boolean");
    return 0;
}

static int
check_n(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return 0;
    if (!is_int_in(x, -1e15, 1e15))
        return fail(err, cap, "n: must be an integer");
    if (x->valuedouble != 1)
        return fail(err, cap, "n: only 1 is supported");
    return 0;
}

static int
check_max_tokens(const cJSON *x, char *err, size_t cap)
{
    return !x || is_int_in(x, 1, INT_MAX)
               ? 0
               : fail(err, cap, "max_tokens: must be an integer in [1, %d]",
                      INT_MAX);
}

static int
check_max_completion_tokens(const cJSON *x, char *err, size_t cap)
{
    return !x || is_int_in(x, 1, INT_MAX)
               ? 0
               : fail(err, cap,
                      "max_completion_tokens: must be an integer in [1, %d]",
                      INT_MAX);
}

static int
check_temperature(const cJSON *x, char *err, size_t cap)
{
    return !x || cJSON_IsNumber(x)
               ? 0
               : fail(err, cap, "temperature: must be a number");
}

static int
check_top_p(const cJSON *x, char *err, size_t cap)
{
    return !x || cJSON_IsNumber(x) ? 0
                                   : fail(err, cap, "top_p: must be a number");
}

static int
check_stop(const cJSON *x, char *err, size_t cap)
{
    if (!x || cJSON_IsString(x))
        return 0;
    if (!cJSON_IsArray(x))
        return fail(err, cap, "stop: must be a string or an array of strings");
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, x)
    {
        if (!cJSON_IsString(s))
            return fail(err, cap, "stop[%d]: must be a string", i);
        i++;
    }
    return 0;
}

static int
check_tools(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return 0;
    if (!cJSON_IsArray(x))
        return fail(err, cap, "tools: must be an array");
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, x)
    {
        if (!cJSON_IsObject(t))
            return fail(err, cap, "tools[%d]: must be an object", k);
        const char *type = str(t, "type");
        if (!type)
            return fail(err, cap, "tools[%d].type: must be a string", k);
        const cJSON *f = get(t, "function");
        if (strcmp(type, "function") == 0 && !cJSON_IsObject(f))
            return fail(err, cap, "tools[%d].function: must be an object", k);
        if (strcmp(type, "function") == 0 && !str(f, "name"))
            return fail(err, cap, "tools[%d].function.name: must be a string",
                        k);
        k++;
    }
    return 0;
}

static int
check_tool_choice(const cJSON *x, char *err, size_t cap)
{
    return !x || cJSON_IsString(x) || cJSON_IsObject(x)
               ? 0
               : fail(err, cap, "tool_choice: must be a string or an object");
}

static int
check_user(const cJSON *x, char *err, size_t cap)
{
    return !x || cJSON_IsString(x) ? 0
                                   : fail(err, cap, "user: must be a string");
}

static int
check_response_format(const cJSON *x, char *err, size_t cap)
{
    if (!x)
        return 0;
    if (!cJSON_IsObject(x))
        return fail(err, cap, "response_format: must be an object");
    const char *t = str(x, "type");
    if (!t || (strcmp(t, "text") != 0 && strcmp(t, "json_object") != 0 &&
               strcmp(t, "json_schema") != 0))
        return fail(err, cap,
                    "response_format.type: must be one of text, json_object, "
                    "json_schema");
    if (strcmp(t, "json_schema") != 0)
        return 0;
    const cJSON *js = get(x, "json_schema");
    if (!cJSON_IsObject(js))
        return fail(err, cap, "response_format.json_schema: must be an object");
    const cJSON *schema = opt(js, "schema");
    if (schema && !cJSON_IsObject(schema))
        return fail(err, cap,
                    "response_format.json_schema.schema: must be an object");
    return 0;
}

/* The checked fields; model and messages are required, the others may be
 * absent or null. */
static const struct {
    const char *name;
    check_fn fn;
    int required;
} chat_checks[] = {
    {"model", check_model, 1},
    {"messages", check_messages, 1},
    {"stream", check_stream, 0},
    {"stream_options", check_stream_options, 0},
    {"n", check_n, 0},
    {"max_tokens", check_max_tokens, 0},
    {"max_completion_tokens", check_max_completion_tokens, 0},
    {"temperature", check_temperature, 0},
    {"top_p", check_top_p, 0},
    {"stop", check_stop, 0},
    {"tools", check_tools, 0},
    {"tool_choice", check_tool_choice, 0},
    {"user", check_user, 0},
    {"response_format", check_response_format, 0},
};

int
chat_request_check(const cJSON *req, char *err, size_t cap, const char **param)
{
    if (param)
        *param = NULL;
    if (!cJSON_IsObject(req))
        return fail(err, cap, "the request must be a JSON object");
    for (size_t i = 0; i < sizeof chat_checks / sizeof chat_checks[0]; i++) {
        const cJSON *x = chat_checks[i].required
                             ? get(req, chat_checks[i].name)
                             : opt(req, chat_checks[i].name);
        int rc = chat_checks[i].fn(x, err, cap);
        if (rc != 0) {
            if (param)
                *param = chat_checks[i].name;
            return rc;
        }
    }
    return 0;
}

char *
chat_prompt_text(const cJSON *req)
{
    bursar_buf_t b = {0};
    const cJSON *m;
    cJSON_ArrayForEach(m, get(req, "messages"))
    {
        const cJSON *c = get(m, "content");
        if (cJSON_IsString(c)) {
            sb_join(&b, "\n", c->valuestring);
            continue;
        }
        const cJSON *p;
        cJSON_ArrayForEach(p, (cJSON_IsArray(c) ? c : NULL))
        {
            const char *type = str(p, "type"), *text = str(p, "text");
            if (type && strcmp(type, "text") == 0 && text)
                sb_join(&b, "\n", text);
        }
    }
    return sb_take(&b);
}

/* ------------------------------------------------ upstream: OpenAI */

static char *
openai_body(const cJSON *req, const bursar_model_t *m, int stream)
{
    cJSON *b = cJSON_Duplicate(req, 1);
    if (!b)
        abort();
    /* What was checked is what goes: a key named twice keeps its first
     * value only (another reader may keep the last). */
    for (size_t i = 0; i < sizeof chat_checks / sizeof chat_checks[0]; i++)
        keep_first(b, chat_checks[i].name);
    obj_set(b, "model", cJSON_CreateString(m->model));
    if (stream) {
        obj_set(b, "stream", cJSON_CreateTrue());
        const cJSON *so = get(b, "stream_options");
        cJSON *o =
            cJSON_IsObject(so) ? cJSON_Duplicate(so, 1) : cJSON_CreateObject();
        obj_set(o, "include_usage", cJSON_CreateTrue());
        obj_set(b, "stream_options", o);
    } else {
        obj_del(b, "stream");
        obj_del(b, "stream_options");
    }
    char *s = json_print(b);
    cJSON_Delete(b);
    return s;
}

/* --------------------------------------------- upstream: Anthropic */

static cJSON *
text_block(const char *text)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", text);
    return b;
}

/* An image part: a data: URL to a base64 source, an http(s) URL to a url
 * source. NULL with err when it is neither. */
static cJSON *
image_block(const cJSON *part, int i, int j, char *err, size_t cap)
{
    const char *u = str(get(part, "image_url"), "url");
    if (!u) {
        fail(err, cap,
             "messages[%d].content[%d].image_url.url: must be a "
             "string",
             i, j);
        return NULL;
    }
    cJSON *src = cJSON_CreateObject();
    const char *b64 =
        strncmp(u, "data:", 5) == 0 ? strstr(u, ";base64,") : NULL;
    if (b64 && b64 > u + 5 && !memchr(u + 5, ',', (size_t)(b64 - u - 5))) {
        char *media = bursar_strndup(u + 5, (size_t)(b64 - u - 5));
        cJSON_AddStringToObject(src, "type", "base64");
        cJSON_AddStringToObject(src, "media_type", media);
        cJSON_AddStringToObject(src, "data", b64 + 8);
        free(media);
    } else if (strncasecmp(u, "https://", 8) == 0 ||
               strncasecmp(u, "http://", 7) == 0) {
        cJSON_AddStringToObject(src, "type", "url");
        cJSON_AddStringToObject(src, "url", u);
    } else {
        cJSON_Delete(src);
        fail(err, cap,
             "messages[%d].content[%d].image_url.url: Anthropic takes a "
             "base64 data URL (data:TYPE;base64,DATA) or an http(s) URL",
             i, j);
        return NULL;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "image");
    cJSON_AddItemToObject(b, "source", src);
    return b;
}

/* The blocks of message i's content into blocks: text (empty texts left
 * out), images when images, refusals as text. */
static int
content_blocks(const cJSON *c, int i, int images, cJSON *blocks, char *err,
               size_t cap)
{
    if (cJSON_IsString(c)) {
        if (*c->valuestring)
            cJSON_AddItemToArray(blocks, text_block(c->valuestring));
        return 0;
    }
    int j = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(c) ? c : NULL))
    {
        const char *type = str(p, "type");
        const char *text = !type                          ? NULL
                           : strcmp(type, "text") == 0    ? str(p, "text")
                           : strcmp(type, "refusal") == 0 ? str(p, "refusal")
                                                          : NULL;
        if (text) {
            if (*text)
                cJSON_AddItemToArray(blocks, text_block(text));
        } else if (images && type && strcmp(type, "image_url") == 0) {
            cJSON *img = image_block(p, i, j, err, cap);
            if (!img)
                return BURSAR_EFORMAT;
            cJSON_AddItemToArray(blocks, img);
        } else {
            return fail(err, cap,
                        "messages[%d].content[%d].type: \"%.32s\" is not "
                        "supported by Anthropic%s",
                        i, j, type ? type : "",
                        images ? "" : " in this message");
        }
        j++;
    }
    return 0;
}

/* A system or developer message's text, appended to sys. */
static int
system_text(const cJSON *m, int i, bursar_buf_t *sys, char *err, size_t cap)
{
    cJSON *blocks = cJSON_CreateArray();
    int rc = content_blocks(get(m, "content"), i, 0, blocks, err, cap);
    const cJSON *b;
    cJSON_ArrayForEach(b, (rc == 0 ? blocks : NULL))
    {
        sb_join(sys, "\n", str(b, "text"));
    }
    cJSON_Delete(blocks);
    return rc;
}

/* An assistant's tool call k into a tool_use block. */
static cJSON *
tool_use_block(const cJSON *c, int i, int k, char *err, size_t cap)
{
    const char *type = str(c, "type");
    const cJSON *f = get(c, "function");
    const char *id = str(c, "id"), *name = str(f, "name");
    const char *args = str(f, "arguments");
    if ((type && strcmp(type, "function") != 0) || !id || !name || !args) {
        fail(err, cap,
             "messages[%d].tool_calls[%d]: Anthropic takes function calls "
             "with an id, a name and arguments",
             i, k);
        return NULL;
    }
    cJSON *input = blank(args) ? cJSON_CreateObject() : cJSON_Parse(args);
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        fail(err, cap,
             "messages[%d].tool_calls[%d].function.arguments: must be a JSON "
             "object (Anthropic's tool input)",
             i, k);
        return NULL;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddItemToObject(b, "input", input);
    return b;
}

static int
assistant_blocks(const cJSON *m, int i, cJSON *blocks, char *err, size_t cap)
{
    int rc = content_blocks(get(m, "content"), i, 0, blocks, err, cap);
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, (rc == 0 ? opt(m, "tool_calls") : NULL))
    {
        cJSON *b = tool_use_block(c, i, k++, err, cap);
        if (!b)
            return BURSAR_EFORMAT;
        cJSON_AddItemToArray(blocks, b);
    }
    return rc;
}

static int
tool_result_block(const cJSON *m, int i, cJSON *blocks, char *err, size_t cap)
{
    const char *id = str(m, "tool_call_id");
    if (!id)
        return fail(err, cap, "messages[%d].tool_call_id: must be a string", i);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_result");
    cJSON_AddStringToObject(b, "tool_use_id", id);
    const cJSON *c = get(m, "content");
    if (cJSON_IsArray(c)) {
        cJSON *inner = cJSON_CreateArray();
        int rc = content_blocks(c, i, 1, inner, err, cap);
        if (rc != 0) {
            cJSON_Delete(inner);
            cJSON_Delete(b);
            return rc;
        }
        if (inner->child)
            cJSON_AddItemToObject(b, "content", inner);
        else
            cJSON_Delete(inner);
    } else if (cJSON_IsString(c) && *c->valuestring) {
        cJSON_AddStringToObject(b, "content", c->valuestring);
    }
    cJSON_AddItemToArray(blocks, b);
    return 0;
}

/* Appends blocks (taken) as a message of role, merged into the last
 * message when it has that role already. */
static void
append_turn(cJSON *msgs, const char *role, cJSON *blocks)
{
    cJSON *last = msgs->child ? msgs->child->prev : NULL;
    if (!blocks->child) {
        cJSON_Delete(blocks);
        return;
    }
    if (last && strcmp(str(last, "role"), role) == 0) {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
        while (blocks->child)
            cJSON_AddItemToArray(content, cJSON_DetachItemFromArray(blocks, 0));
        cJSON_Delete(blocks);
        return;
    }
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", role);
    cJSON_AddItemToObject(msg, "content", blocks);
    cJSON_AddItemToArray(msgs, msg);
}

/* A message of one text block says it as a string. */
static void
simplify_turns(cJSON *msgs)
{
    cJSON *msg;
    cJSON_ArrayForEach(msg, msgs)
    {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
        const char *type = str(c->child, "type");
        if (c->child && !c->child->next && type && strcmp(type, "text") == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(
                msg, "content", cJSON_CreateString(str(c->child, "text")));
    }
}

/* The messages and the system text of an Anthropic request. */
static int
anthropic_messages(const cJSON *req, bursar_buf_t *sys, cJSON *msgs, char *err,
                   size_t cap)
{
    const cJSON *all = get(req, "messages");
    if (!cJSON_IsArray(all))
        return fail(err, cap, "messages: must be an array");
    int i = 0, rc = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, all)
    {
        int role = role_of(str(m, "role"));
        if (role < 0)
            return fail(err, cap,
                        "messages[%d].role: must be one of system, "
                        "developer, user, assistant, tool",
                        i);
        if (role == ROLE_SYSTEM || role == ROLE_DEVELOPER) {
            rc = system_text(m, i, sys, err, cap);
        } else {
            cJSON *blocks = cJSON_CreateArray();
            if (role == ROLE_USER)
                rc = content_blocks(get(m, "content"), i, 1, blocks, err, cap);
            else if (role == ROLE_ASSISTANT)
                rc = assistant_blocks(m, i, blocks, err, cap);
            else
                rc = tool_result_block(m, i, blocks, err, cap);
            if (rc != 0)
                cJSON_Delete(blocks);
            else
                append_turn(msgs, role == ROLE_ASSISTANT ? "assistant" : "user",
                            blocks);
        }
        if (rc != 0)
            return rc;
        i++;
    }
    if (!msgs->child)
        return fail(err, cap,
                    "messages: Anthropic needs at least one user or "
                    "assistant message with content");
    simplify_turns(msgs);
    return 0;
}

static int
anthropic_tool_choice(cJSON *b, const cJSON *req, char *err, size_t cap)
{
    const cJSON *tc = opt(req, "tool_choice");
    const char *s = cJSON_IsString(tc) ? tc->valuestring : NULL;
    const char *type = NULL, *name = NULL;
    if (!tc)
        type = "auto";
    else if (s && strcmp(s, "auto") == 0)
        type = "auto";
    else if (s && strcmp(s, "none") == 0)
        type = "none";
    else if (s && strcmp(s, "required") == 0)
        type = "any";
    else if (!s && (name = str(get(tc, "function"), "name")) != NULL &&
             (!str(tc, "type") || strcmp(str(tc, "type"), "function") == 0))
        type = "tool";
    else
        return fail(err, cap,
                    "tool_choice: Anthropic takes auto, none, required or "
                    "{\"type\":\"function\",\"function\":{\"name\":..}}");
    int serial = cJSON_IsFalse(get(req, "parallel_tool_calls"));
    if (!tc && !serial)
        return 0;
    cJSON *o = cJSON_AddObjectToObject(b, "tool_choice");
    cJSON_AddStringToObject(o, "type", type);
    if (name)
        cJSON_AddStringToObject(o, "name", name);
    if (serial && strcmp(type, "none") != 0)
        cJSON_AddTrueToObject(o, "disable_parallel_tool_use");
    return 0;
}

static int
anthropic_tools(cJSON *b, const cJSON *req, char *err, size_t cap)
{
    const cJSON *tools = opt(req, "tools");
    if (!tools || !cJSON_GetArraySize(tools))
        return 0;
    cJSON *out = cJSON_AddArrayToObject(b, "tools");
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const char *type = str(t, "type");
        const cJSON *f = get(t, "function");
        const char *name = str(f, "name"), *desc = str(f, "description");
        if (!type || strcmp(type, "function") != 0 || !name)
            return fail(err, cap,
                        "tools[%d]: Anthropic takes function tools with a "
                        "name only",
                        k);
        const cJSON *params = opt(f, "parameters");
        cJSON *tool = cJSON_CreateObject();
        cJSON_AddStringToObject(tool, "name", name);
        if (desc)
            cJSON_AddStringToObject(tool, "description", desc);
        cJSON *schema = NULL;
        if (cJSON_IsObject(params))
            schema = cJSON_Duplicate(params, 1);
        else {
            schema = cJSON_CreateObject();
            cJSON_AddStringToObject(schema, "type", "object");
            cJSON_AddObjectToObject(schema, "properties");
        }
        cJSON_AddItemToObject(tool, "input_schema", schema);
        cJSON_AddItemToArray(out, tool);
        k++;
    }
    return anthropic_tool_choice(b, req, err, cap);
}

static int
anthropic_max_tokens(cJSON *b, const cJSON *req, int def, char *err, size_t cap)
{
    static const char *const names[] = {"max_tokens", "max_completion_tokens"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = opt(req, names[i]);
        if (x && !is_int_in(x, 1, INT_MAX))
            return fail(err, cap, "%s: must be an integer in [1, %d]", names[i],
                        INT_MAX);
        if (x) {
            cJSON_AddNumberToObject(b, "max_tokens", x->valuedouble);
            return 0;
        }
    }
    if (def <= 0)
        return fail(err, cap,
                    "max_tokens: Anthropic requires it, and no default is "
                    "set");
    cJSON_AddNumberToObject(b, "max_tokens", def);
    return 0;
}

/* temperature, top_p, stop, user, stream. */
static void
anthropic_params(cJSON *b, const cJSON *req, int stream)
{
    const cJSON *t = opt(req, "temperature");
    if (cJSON_IsNumber(t))
        cJSON_AddNumberToObject(b, "temperature",
                                t->valuedouble > 1   ? 1
                                : t->valuedouble < 0 ? 0
                                                     : t->valuedouble);
    const cJSON *p = opt(req, "top_p");
    if (cJSON_IsNumber(p))
        cJSON_AddNumberToObject(b, "top_p", p->valuedouble);
    const cJSON *stop = opt(req, "stop");
    cJSON *seqs = cJSON_CreateArray();
    const cJSON *s;
    if (cJSON_IsString(stop) && !blank(stop->valuestring))
        cJSON_AddItemToArray(seqs, cJSON_CreateString(stop->valuestring));
    cJSON_ArrayForEach(s, (cJSON_IsArray(stop) ? stop : NULL))
    {
        if (cJSON_IsString(s) && !blank(s->valuestring))
            cJSON_AddItemToArray(seqs, cJSON_CreateString(s->valuestring));
    }
    if (seqs->child)
        cJSON_AddItemToObject(b, "stop_sequences", seqs);
    else
        cJSON_Delete(seqs);
    const char *user = str(req, "user");
    if (user && *user)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "metadata"),
                                "user_id", user);
    if (stream)
        cJSON_AddTrueToObject(b, "stream");
}

static char *
anthropic_body(const cJSON *req, const bursar_model_t *m, int stream,
               int max_tokens_default, char *err, size_t cap)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", m->model);
    int rc = anthropic_max_tokens(b, req, max_tokens_default, err, cap);
    bursar_buf_t sys = {0};
    cJSON *msgs = cJSON_CreateArray();
    if (rc == 0)
        rc = anthropic_messages(req, &sys, msgs, err, cap);
    if (rc == 0 && sys.len)
        cJSON_AddStringToObject(b, "system", sys.p);
    cJSON_AddItemToObject(b, "messages", msgs);
    if (rc == 0)
        rc = anthropic_tools(b, req, err, cap);
    if (rc == 0)
        anthropic_params(b, req, stream);
    char *s = rc == 0 ? json_print(b) : NULL;
    cJSON_Delete(b);
    free(sys.p);
    return s;
}

char *
chat_upstream_body(const cJSON *req, const bursar_model_t *m, int stream,
                   int max_tokens_default, char *err, size_t cap)
{
    if (!cJSON_IsObject(req) || !m) {
        fail(err, cap, "the request must be a JSON object");
        return NULL;
    }
    if (m->provider == PROTO_PROVIDER_ANTHROPIC)
        return anthropic_body(req, m, stream, max_tokens_default, err, cap);
    return openai_body(req, m, stream);
}

/* -------------------------------------------------------------- answers */

void
chat_answer_clear(chat_answer_t *a)
{
    if (!a)
        return;
    cJSON_Delete(a->response);
    free(a->text);
    memset(a, 0, sizeof(*a));
    a->tokens_in = a->tokens_out = -1;
}

static int
openai_answer(cJSON *root, const char *model_name, chat_answer_t *a, char *err,
              size_t cap)
{
    const cJSON *ch = get(root, "choices");
    if (!cJSON_IsArray(ch) || !ch->child)
        return fail(err, cap, "choices: must be a non-empty array");
    const cJSON *msg = get(ch->child, "message");
    if (!cJSON_IsObject(msg))
        return fail(err, cap, "choices[0].message: must be an object");
    const cJSON *ct = get(msg, "content");
    if (cJSON_IsString(ct))
        a->text = bursar_strdup(ct->valuestring);
    else if (cJSON_IsNull(ct) || (!ct && cJSON_IsArray(get(msg, "tool_calls"))))
        a->text = bursar_strdup(""); /* a tool call: no text */
    else
        return fail(err, cap,
                    "choices[0].message.content: must be a string or null");
    const char *fr = str(ch->child, "finish_reason");
    bursar_copy_str(a->finish_reason, sizeof a->finish_reason, fr ? fr : "");
    const cJSON *u = get(root, "usage");
    long tin = tok(get(u, "prompt_tokens"));
    long tout = tok(get(u, "completion_tokens"));
    if (tin >= 0 && tout >= 0) {
        a->tokens_in = tin;
        a->tokens_out = tout;
    }
    obj_set(root, "model", cJSON_CreateString(model_name));
    a->response = root;
    return 0;
}

/* Anthropic's content blocks: the text into *text, tool_use blocks into
 * OpenAI tool_calls. */
static int
anthropic_content(const cJSON *content, bursar_buf_t *text, cJSON *calls,
                  char *err, size_t cap)
{
    int k = 0;
    const cJSON *blk;
    cJSON_ArrayForEach(blk, content)
    {
        const char *type = str(blk, "type");
        if (!type || strcmp(type, "text") == 0) {
            const char *t = str(blk, "text");
            if (!t && type)
                return fail(err, cap, "content[%d].text: must be a string", k);
            if (t)
                bursar_buf_add(text, t, strlen(t));
        } else if (strcmp(type, "tool_use") == 0) {
            const char *id = str(blk, "id"), *name = str(blk, "name");
            if (!id || !name)
                return fail(err, cap,
                            "content[%d]: a tool_use block needs a string id "
                            "and name",
                            k);
            const cJSON *in = get(blk, "input");
            char *args = in ? json_print(in) : bursar_strdup("{}");
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "id", id);
            cJSON_AddStringToObject(c, "type", "function");
            cJSON *f = cJSON_AddObjectToObject(c, "function");
            cJSON_AddStringToObject(f, "name", name);
            cJSON_AddStringToObject(f, "arguments", args);
            free(args);
            cJSON_AddItemToArray(calls, c);
        }
        k++;
    }
    return 0;
}

static int
anthropic_answer(const cJSON *root, const char *model_name, chat_answer_t *a,
                 char *err, size_t cap)
{
    const cJSON *content = get(root, "content");
    if (!cJSON_IsArray(content))
        return fail(err, cap, "content: must be an array");
    bursar_buf_t text = {0};
    cJSON *calls = cJSON_CreateArray();
    int rc = anthropic_content(content, &text, calls, err, cap);
    if (rc != 0) {
        free(text.p);
        cJSON_Delete(calls);
        return rc;
    }
    a->text = sb_take(&text);
    bursar_copy_str(a->finish_reason, sizeof a->finish_reason,
                    finish_of(str(root, "stop_reason")));
    long tin = -1, tout = -1;
    anthropic_usage(get(root, "usage"), &tin, &tout);
    if (tin >= 0 && tout >= 0) {
        a->tokens_in = tin;
        a->tokens_out = tout;
    }
    const char *id = str(root, "id");
    char cid[160];
    snprintf(cid, sizeof cid, "chatcmpl-%.120s", id ? id : "bursar");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", cid);
    cJSON_AddStringToObject(r, "object", "chat.completion");
    cJSON_AddNumberToObject(r, "created", (double)time(NULL));
    cJSON_AddStringToObject(r, "model", model_name);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "choices"), ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (*a->text || !calls->child)
        cJSON_AddStringToObject(msg, "content", a->text);
    else
        cJSON_AddNullToObject(msg, "content");
    if (calls->child)
        cJSON_AddItemToObject(msg, "tool_calls", calls);
    else
        cJSON_Delete(calls);
    cJSON_AddNullToObject(msg, "refusal");
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", a->finish_reason);
    if (a->tokens_in >= 0)
        cJSON_AddItemToObject(r, "usage",
                              usage_new(a->tokens_in, a->tokens_out));
    a->response = r;
    return 0;
}

int
chat_answer_parse(int provider, const char *body, size_t len,
                  const char *model_name, chat_answer_t *a, char *err,
                  size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->tokens_in = a->tokens_out = -1;
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, cap, "the answer is not a JSON object");
    }
    const cJSON *e = opt(root, "error");
    int rc;
    if (e)
        rc = fail(err, cap, "the upstream answered an error: %.200s",
                  error_text(e));
    else if (provider == PROTO_PROVIDER_ANTHROPIC)
        rc = anthropic_answer(root, model_name ? model_name : "", a, err, cap);
    else
        rc = openai_answer(root, model_name ? model_name : "", a, err, cap);
    if (a->response != root)
        cJSON_Delete(root);
    if (rc != 0)
        chat_answer_clear(a);
    return rc;
}

/* -------------------------------------------------------------- streams */

struct chat_stream {
    int provider;
    int wants_usage;
    char *model;
    long created;
    char id[160];
    /* the Server-Sent-Events reader */
    bursar_buf_t line; /* the line being read */
    bursar_buf_t data; /* the data lines of the event being read */
    int has_data;
    int after_cr; /* the last line ended in \r: a \n next is its end */
    char event[32];
    size_t events; /* events read, for messages */
    /* what was read */
    bursar_buf_t text;
    long tin, tout;
    char finish[32];
    size_t chunks;
    int ended;
    int rc; /* an error, returned again by later calls */
    char err[256];
    /* Anthropic: the content block being read */
    long block;
    int tool; /* its tool call index; -1: not a tool_use block */
    int n_tools;
    int finish_sent;
};

chat_stream_t *
chat_stream_new(int provider, const char *model_name, int client_wants_usage)
{
    chat_stream_t *s = bursar_calloc(1, sizeof(*s));
    s->provider = provider;
    s->wants_usage = client_wants_usage != 0;
    s->model = bursar_strdup(model_name ? model_name : "");
    s->created = (long)time(NULL);
    bursar_copy_str(s->id, sizeof s->id, "chatcmpl-bursar");
    s->tin = s->tout = -1;
    s->block = -1;
    s->tool = -1;
    return s;
}

void
chat_stream_destroy(chat_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    chat_stream_t *s = *self_p;
    free(s->model);
    free(s->line.p);
    free(s->data.p);
    free(s->text.p);
    free(s);
    *self_p = NULL;
}

void
chat_stream_set_created(chat_stream_t *s, long created)
{
    s->created = created;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
st_fail(chat_stream_t *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->rc = rc;
    return rc;
}

static int
emit_json(chat_stream_t *s, const cJSON *c, chat_emit_fn emit, void *ud)
{
    char *js = json_print(c);
    s->chunks++;
    int rc = emit(ud, js, strlen(js));
    free(js);
    return rc;
}

/* A chunk of one choice with delta (taken) and finish (NULL: null). */
static cJSON *
chunk_new(const chat_stream_t *s, cJSON *delta, const char *finish)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", s->id);
    cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(c, "created", (double)s->created);
    cJSON_AddStringToObject(c, "model", s->model);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    if (s->wants_usage)
        cJSON_AddNullToObject(c, "usage");
    return c;
}

static int
emit_delta(chat_stream_t *s, cJSON *delta, const char *finish,
           chat_emit_fn emit, void *ud)
{
    cJSON *c = chunk_new(s, delta, finish);
    int rc = emit_json(s, c, emit, ud);
    cJSON_Delete(c);
    return rc;
}

static int
emit_content(chat_stream_t *s, const char *text, chat_emit_fn emit, void *ud)
{
    bursar_buf_add(&s->text, text, strlen(text));
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "content", text);
    return emit_delta(s, d, NULL, emit, ud);
}

/* A delta of tool call s->tool: its start (id, name) or arguments. */
static int
emit_tool(chat_stream_t *s, const char *id, const char *name, const char *args,
          chat_emit_fn emit, void *ud)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
    cJSON_AddNumberToObject(tc, "index", s->tool);
    if (id) {
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
    }
    cJSON *f = cJSON_AddObjectToObject(tc, "function");
    if (name)
        cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", args);
    return emit_delta(s, d, NULL, emit, ud);
}

/* ------------------------------------------------- streams: OpenAI */

static int
openai_event(chat_stream_t *s, cJSON *ev, chat_emit_fn emit, void *ud)
{
    const cJSON *e = opt(ev, "error");
    if (e)
        return st_fail(s, BURSAR_EREMOTE, "the upstream sent an error: %.200s",
                       error_text(e));
    const cJSON *ch = opt(ev, "choices");
    if (ch && !cJSON_IsArray(ch))
        return st_fail(s, BURSAR_EFORMAT,
                       "upstream event %zu: choices: must be an array",
                       s->events);
    const cJSON *u = get(ev, "usage");
    long tin = tok(get(u, "prompt_tokens"));
    long tout = tok(get(u, "completion_tokens"));
    if (tin >= 0 && tout >= 0) {
        s->tin = tin;
        s->tout = tout;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, ch)
    {
        const cJSON *idx = get(c, "index");
        if (idx && !(cJSON_IsNumber(idx) && idx->valuedouble == 0))
            continue; /* n is 1: choice 0 only */
        const char *text = str(get(c, "delta"), "content");
        if (text)
            bursar_buf_add(&s->text, text, strlen(text));
        const char *fr = str(c, "finish_reason");
        if (fr)
            bursar_copy_str(s->finish, sizeof s->finish, fr);
    }
    int usage_only = cJSON_IsObject(u) && (!ch || !ch->child);
    if (usage_only && !s->wants_usage)
        return 0;
    obj_set(ev, "model", cJSON_CreateString(s->model));
    if (!s->wants_usage)
        obj_del(ev, "usage");
    else if (usage_only && !ch)
        obj_set(ev, "choices", cJSON_CreateArray());
    return emit_json(s, ev, emit, ud);
}

/* ---------------------------------------------- streams: Anthropic */

static int
anthropic_start(chat_stream_t *s, const cJSON *ev, chat_emit_fn emit, void *ud)
{
    const cJSON *msg = get(ev, "message");
    const char *id = str(msg, "id");
    if (id)
        snprintf(s->id, sizeof s->id, "chatcmpl-%.120s", id);
    anthropic_usage(get(msg, "usage"), &s->tin, &s->tout);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", "assistant");
    cJSON_AddStringToObject(d, "content", "");
    return emit_delta(s, d, NULL, emit, ud);
}

static int
anthropic_block_start(chat_stream_t *s, const cJSON *ev, chat_emit_fn emit,
                      void *ud)
{
    const cJSON *cb = get(ev, "content_block");
    const char *type = str(cb, "type");
    s->block = tok(get(ev, "index"));
    s->tool = -1;
    if (type && strcmp(type, "text") == 0) {
        const char *text = str(cb, "text");
        return text && *text ? emit_content(s, text, emit, ud) : 0;
    }
    if (!type || strcmp(type, "tool_use") != 0)
        return 0; /* thinking, ...: not passed on */
    const char *id = str(cb, "id"), *name = str(cb, "name");
    if (!id || !name)
        return st_fail(s, BURSAR_EFORMAT,
                       "upstream event %zu: a tool_use block needs a string "
                       "id and name",
                       s->events);
    s->tool = s->n_tools++;
    return emit_tool(s, id, name, "", emit, ud);
}

static int
anthropic_delta(chat_stream_t *s, const cJSON *ev, chat_emit_fn emit, void *ud)
{
    const cJSON *d = get(ev, "delta");
    const char *type = str(d, "type");
    if (type && strcmp(type, "text_delta") == 0) {
        const char *text = str(d, "text");
        if (!text)
            return st_fail(s, BURSAR_EFORMAT,
                           "upstream event %zu: a text_delta needs a string "
                           "text",
                           s->events);
        return emit_content(s, text, emit, ud);
    }
    if (!type || strcmp(type, "input_json_delta") != 0)
        return 0; /* thinking, signature, citations: not passed on */
    const char *pj = str(d, "partial_json");
    if (!pj)
        return st_fail(s, BURSAR_EFORMAT,
                       "upstream event %zu: an input_json_delta needs a "
                       "string partial_json",
                       s->events);
    long idx = tok(get(ev, "index"));
    if (s->tool < 0 || idx != s->block)
        return st_fail(s, BURSAR_EFORMAT,
                       "upstream event %zu: an input_json_delta for block "
                       "%ld, which is not the tool_use block being read",
                       s->events, idx);
    return emit_tool(s, NULL, NULL, pj, emit, ud);
}

static int
anthropic_message_delta(chat_stream_t *s, const cJSON *ev, chat_emit_fn emit,
                        void *ud)
{
    anthropic_usage(get(ev, "usage"), &s->tin, &s->tout);
    const char *sr = str(get(ev, "delta"), "stop_reason");
    if (!sr)
        return 0;
    bursar_copy_str(s->finish, sizeof s->finish, finish_of(sr));
    if (s->finish_sent)
        return 0;
    s->finish_sent = 1;
    return emit_delta(s, cJSON_CreateObject(), s->finish, emit, ud);
}

static int
anthropic_stop(chat_stream_t *s, chat_emit_fn emit, void *ud)
{
    int rc = 0;
    s->ended = 1;
    if (!s->finish_sent) {
        s->finish_sent = 1;
        if (!s->finish[0])
            bursar_copy_str(s->finish, sizeof s->finish, "stop");
        rc = emit_delta(s, cJSON_CreateObject(), s->finish, emit, ud);
    }
    if (rc == 0 && s->wants_usage && s->tin >= 0 && s->tout >= 0) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", s->id);
        cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
        cJSON_AddNumberToObject(c, "created", (double)s->created);
        cJSON_AddStringToObject(c, "model", s->model);
        cJSON_AddArrayToObject(c, "choices");
        cJSON_AddItemToObject(c, "usage", usage_new(s->tin, s->tout));
        rc = emit_json(s, c, emit, ud);
        cJSON_Delete(c);
    }
    return rc ? rc : 1;
}

static int
anthropic_event(chat_stream_t *s, const cJSON *ev, chat_emit_fn emit, void *ud)
{
    const char *type = str(ev, "type");
    if (!type)
        type = s->event;
    if (strcmp(type, "message_start") == 0)
        return anthropic_start(s, ev, emit, ud);
    if (strcmp(type, "content_block_start") == 0)
        return anthropic_block_start(s, ev, emit, ud);
    if (strcmp(type, "content_block_delta") == 0)
        return anthropic_delta(s, ev, emit, ud);
    if (strcmp(type, "message_delta") == 0)
        return anthropic_message_delta(s, ev, emit, ud);
    if (strcmp(type, "message_stop") == 0)
        return anthropic_stop(s, emit, ud);
    if (strcmp(type, "error") == 0) {
        const cJSON *e = get(ev, "error");
        const char *et = str(e, "type");
        return st_fail(s, BURSAR_EREMOTE,
                       "the upstream sent an error: %.40s%s%.200s",
                       et ? et : "", et ? ": " : "", error_text(e));
    }
    return 0; /* ping, content_block_stop, types added later */
}

/* --------------------------------------------- streams: the reader */

/* The event read (a blank line ends it): [DONE], or a JSON object. */
static int
sse_dispatch(chat_stream_t *s, chat_emit_fn emit, void *ud)
{
    if (!s->has_data) {
        s->event[0] = '\0';
        return 0;
    }
    const char *data = s->data.p;
    size_t len = s->data.len;
    int rc;
    s->events++;
    if (len == 0) {
        rc = 0; /* an empty event: nothing to say */
    } else if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->ended = 1;
        rc = 1;
    } else {
        const char *end = NULL;
        cJSON *ev = cJSON_ParseWithLengthOpts(data, len, &end, 0);
        while (ev && end < data + len && strchr(" \t\n\r", *end) && *end)
            end++;
        if (!cJSON_IsObject(ev) || end != data + len)
            rc = st_fail(s, BURSAR_EFORMAT,
                         "upstream event %zu: not a JSON object", s->events);
        else if (s->provider == PROTO_PROVIDER_ANTHROPIC)
            rc = anthropic_event(s, ev, emit, ud);
        else
            rc = openai_event(s, ev, emit, ud);
        cJSON_Delete(ev);
    }
    s->has_data = 0;
    s->data.len = 0;
    s->event[0] = '\0';
    return rc;
}

/* One line of the stream (in s->line, without its end). */
static int
sse_line(chat_stream_t *s, chat_emit_fn emit, void *ud)
{
    const char *l = s->line.p;
    size_t n = s->line.len;
    if (n == 0)
        return sse_dispatch(s, emit, ud);
    if (l[0] == ':')
        return 0; /* a comment */
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = (size_t)(l + n - v);
    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (s->data.len + (s->has_data ? 1 : 0) + vlen > CHAT_EVENT_MAX)
            return st_fail(s, BURSAR_EFORMAT,
                           "upstream event %zu: over %d bytes", s->events + 1,
                           CHAT_EVENT_MAX);
        if (s->has_data)
            bursar_buf_add(&s->data, "\n", 1);
        bursar_buf_add(&s->data, v, vlen);
        s->has_data = 1;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        size_t k = vlen < sizeof s->event - 1 ? vlen : sizeof s->event - 1;
        memcpy(s->event, v, k);
        s->event[k] = '\0';
    }
    return 0; /* id, retry, other fields: ignored */
}

int
chat_stream_feed(chat_stream_t *s, const char *p, size_t n, chat_emit_fn emit,
                 void *ud, char *err, size_t cap)
{
    int rc = 0;
    size_t i = 0;
    while (!s->rc && !s->ended && rc == 0 && i < n) {
        if (s->after_cr) {
            s->after_cr = 0;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        if (s->line.len + (j - i) > CHAT_LINE_MAX) {
            rc = st_fail(s, BURSAR_EFORMAT, "upstream event %zu: over %d bytes",
                         s->events + 1, CHAT_EVENT_MAX);
            break;
        }
        bursar_buf_add(&s->line, p + i, j - i);
        if (j == n)
            break;
        s->after_cr = p[j] == '\r';
        i = j + 1;
        rc = sse_line(s, emit, ud);
        s->line.len = 0;
    }
    if (s->rc) {
        if (err && cap)
            bursar_copy_str(err, cap, s->err);
        return s->rc;
    }
    if (s->ended)
        return rc && rc != 1 ? rc : 1;
    return rc;
}

const char *
chat_stream_text(const chat_stream_t *s)
{
    return s->text.p ? s->text.p : "";
}

int
chat_stream_usage(const chat_stream_t *s, long *tokens_in, long *tokens_out)
{
    int known = s->tin >= 0 && s->tout >= 0;
    if (tokens_in)
        *tokens_in = known ? s->tin : -1;
    if (tokens_out)
        *tokens_out = known ? s->tout : -1;
    return known;
}

int
chat_stream_ended(const chat_stream_t *s)
{
    return s->ended;
}

size_t
chat_stream_chunks(const chat_stream_t *s)
{
    return s->chunks;
}

const char *
chat_stream_finish_reason(const chat_stream_t *s)
{
    return s->finish;
}

/* ---------------------------------------------------------------- errors */

char *
chat_error_body(const char *type, const char *message, const char *param,
                const char *code)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(b, "error");
    cJSON_AddStringToObject(e, "message", message ? message : "");
    cJSON_AddStringToObject(e, "type", type ? type : "api_error");
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    char *s = json_print(b);
    cJSON_Delete(b);
    return s;
}
