/*
 * test_agents_chat.c - the OpenAI chat-completions wire format and its
 * translation to and from Anthropic Messages (agents/chat.h): request
 * checks naming the path, request bodies (a tool-calling round trip,
 * images, system messages, stop strings), answers, and streams fed whole,
 * byte by byte and in random splits (fixed seeds), with and without
 * usage, malformed, failing and oversize.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/chat.h"

/* ------------------------------------------------------------ helpers */

static bursar_model_t
model(int provider, const char *upstream)
{
    bursar_model_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", "configured");
    m.provider = provider;
    snprintf(m.model, sizeof m.model, "%s", upstream);
    return m;
}

static cJSON *
parse(const char *json)
{
    cJSON *x = cJSON_Parse(json);
    if (!x)
        fail_msg("test JSON does not parse: %s", json);
    return x;
}

/* actual (a JSON text) equals expected (a JSON text), key order aside. */
static void
json_eq(const char *actual, const char *expected)
{
    cJSON *a = cJSON_Parse(actual);
    cJSON *e = parse(expected);
    int same = a && cJSON_Compare(a, e, 1);
    cJSON_Delete(a);
    cJSON_Delete(e);
    if (!same)
        fail_msg("JSON differs:\n  got  %s\n  want %s", actual, expected);
}

/* The upstream body of req (a JSON text) for m; fails the test if NULL. */
static char *
body_of(const char *req_json, const bursar_model_t *m, int stream, int def)
{
    cJSON *req = parse(req_json);
    char err[256] = "";
    const char *param = NULL;
    if (chat_request_check(req, err, sizeof err, &param) != 0)
        fail_msg("request refused: %s", err);
    char *b = chat_upstream_body(req, m, stream, def, err, sizeof err);
    cJSON_Delete(req);
    if (!b)
        fail_msg("chat_upstream_body: %s", err);
    return b;
}

/* chat_upstream_body fails for req with an error containing needle. */
static void
body_fails(const char *req_json, const bursar_model_t *m, int def,
           const char *needle)
{
    cJSON *req = parse(req_json);
    char err[256] = "";
    char *b = chat_upstream_body(req, m, 0, def, err, sizeof err);
    cJSON_Delete(req);
    if (b)
        fail_msg("translated, expected \"%s\": %s", needle, b);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

/* Emitted chunks, one per line. */
typedef struct out {
    char *buf;
    size_t len, cap;
    size_t n;
    size_t stop_after; /* nonzero: the emit returns 7 at that chunk */
} out_t;

static int
collect(void *ud, const char *json, size_t len)
{
    out_t *o = ud;
    assert_int_equal(strlen(json), len);
    if (o->len + len + 2 > o->cap) {
        o->cap = (o->len + len + 2) * 2;
        o->buf = realloc(o->buf, o->cap);
        assert_non_null(o->buf);
    }
    memcpy(o->buf + o->len, json, len);
    o->len += len;
    o->buf[o->len++] = '\n';
    o->buf[o->len] = '\0';
    o->n++;
    return o->stop_after && o->n == o->stop_after ? 7 : 0;
}

/* Chunk k (from 0) of o, a new string. */
static char *
chunk_at(const out_t *o, size_t k)
{
    const char *p = o->buf;
    for (size_t i = 0; i < k; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    const char *e = strchr(p, '\n');
    assert_non_null(e);
    char *c = malloc((size_t)(e - p) + 1);
    memcpy(c, p, (size_t)(e - p));
    c[e - p] = '\0';
    return c;
}

static void
chunk_eq(const out_t *o, size_t k, const char *expected)
{
    char *c = chunk_at(o, k);
    json_eq(c, expected);
    free(c);
}

/* Feeds text to a new stream in pieces: split 0 whole, 1 byte by byte,
 * else random lengths in [1, split] from seed. Returns the last feed's
 * code; *out gets the chunks, *sp the stream (destroy it). */
static int
feed(int provider, int wants_usage, const char *text, size_t len, size_t split,
     unsigned seed, out_t *out, chat_stream_t **sp, char *err, size_t cap)
{
    chat_stream_t *s = chat_stream_new(provider, "fast", wants_usage);
    chat_stream_set_created(s, 1700000000);
    memset(out, 0, sizeof *out);
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t n = split == 0   ? len - i
                   : split == 1 ? 1
                                : 1 + (size_t)rand_r(&seed) % split;
        if (n > len - i)
            n = len - i;
        rc = chat_stream_feed(s, text + i, n, collect, out, err, cap);
        i += n;
    }
    *sp = s;
    return rc;
}

static void
out_free(out_t *o)
{
    free(o->buf);
    memset(o, 0, sizeof *o);
}

/* text with every "\n" replaced by nl. */
static char *
with_newlines(const char *text, const char *nl)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n' ? strlen(nl) : 1;
    char *r = malloc(n + 1), *q = r;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            memcpy(q, nl, strlen(nl));
            q += strlen(nl);
        } else {
            *q++ = *p;
        }
    }
    *q = '\0';
    return r;
}

/* ---------------------------------------------------- request check */

static void
test_request_check_ok(void **state)
{
    (void)state;
    const char *good[] = {
        "{\"model\":\"bursar/auto\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}]}",
        /* nulls read as absent; unknown fields pass */
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}"
        "],\"stream\":null,\"n\":null,\"temperature\":null,\"stop\":null,"
        "\"frequency_penalty\":0.5,\"logit_bias\":{\"50256\":-100},"
        "\"seed\":7}",
        /* every checked field, well formed */
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
        "\"text\":\"be brief\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what "
        "is this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://example.com/a.png\",\"detail\":\"low\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
        "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":null},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"call_2\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,"
        "\"max_tokens\":100,\"max_completion_tokens\":200,\"temperature\":0.2,"
        "\"top_p\":1,\"stop\":[\"END\",\"\\n\"],\"user\":\"u1\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"tool_choice\":\"auto\",\"response_format\":{\"type\":"
        "\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{}}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cJSON *req = parse(good[i]);
        char err[256] = "";
        const char *param = "unset";
        int rc = chat_request_check(req, err, sizeof err, &param);
        cJSON_Delete(req);
        if (rc != 0)
            fail_msg("request %zu refused: %s", i, err);
        assert_null(param);
    }
}

static void
test_request_check_errors(void **state)
{
    (void)state;
#define U        "{\"role\":\"user\",\"content\":\"hi\"}"
#define M(msgs)  "{\"model\":\"m\",\"messages\":[" msgs "]}"
#define F(field) "{\"model\":\"m\",\"messages\":[" U "]," field "}"
    const struct {
        const char *req, *err, *param;
    } cases[] = {
        {"[]", "the request must be a JSON object", NULL},
        {"{}", "model: required", "model"},
        {"{\"model\":1}", "model: must be a string", "model"},
        {"{\"model\":\"\"}", "model: must not be empty", "model"},
        {"{\"model\":\"m\"}", "messages: required", "messages"},
        {"{\"model\":\"m\",\"messages\":{}}", "messages: must be an array",
         "messages"},
        {M(""), "messages: must not be empty", "messages"},
        {M("1"), "messages[0]: must be an object", "messages"},
        {M("{\"content\":\"x\"}"), "messages[0].role: required", "messages"},
        {M(U "," U ",{\"role\":5,\"content\":\"x\"}"),
         "messages[2].role: must be a string", "messages"},
        {M("{\"role\":\"robot\",\"content\":\"x\"}"),
         "messages[0].role: must be one of system, developer, user, "
         "assistant, tool",
         "messages"},
        {M("{\"role\":\"user\"}"), "messages[0].content: required", "messages"},
        {M("{\"role\":\"user\",\"content\":null}"),
         "messages[0].content: null only for an assistant message with "
         "tool_calls",
         "messages"},
        {M(U ",{\"role\":\"assistant\",\"content\":null}"),
         "messages[1].content: null only", "messages"},
        {M("{\"role\":\"user\",\"content\":5}"),
         "messages[0].content: must be a string or an array of content parts",
         "messages"},
        {M("{\"role\":\"user\",\"content\":[\"x\"]}"),
         "messages[0].content[0]: must be an object", "messages"},
        {M("{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}"),
         "messages[0].content[0].type: must be a string", "messages"},
        {M(U ",{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
             "\"a\"},{\"type\":\"text\"}]}"),
         "messages[1].content[1].text: must be a string", "messages"},
        {M("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
           "\"image_url\":\"https://x/a.png\"}]}"),
         "messages[0].content[0].image_url.url: must be a string", "messages"},
        {M(U ",{\"role\":\"assistant\",\"tool_calls\":{}}"),
         "messages[1].tool_calls: must be an array", "messages"},
        {M(U
           ",{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
           "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}"),
         "messages[1].tool_calls[0].id: must be a string", "messages"},
        {M(U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
             "\"function\":{\"name\":\"f\"}}]}"),
         "messages[1].tool_calls[0].function.arguments: must be a string",
         "messages"},
        {M(U ",{\"role\":\"tool\",\"content\":\"42\"}"),
         "messages[1].tool_call_id: must be a string", "messages"},
        {F("\"stream\":\"yes\""), "stream: must be a boolean", "stream"},
        {F("\"stream_options\":true"), "stream_options: must be an object",
         "stream_options"},
        {F("\"stream_options\":{\"include_usage\":1}"),
         "stream_options.include_usage: must be a boolean", "stream_options"},
        {F("\"n\":2"), "n: only 1 is supported", "n"},
        {F("\"n\":1.5"), "n: must be an integer", "n"},
        {F("\"max_tokens\":0"), "max_tokens: must be an integer in [1, ",
         "max_tokens"},
        {F("\"max_tokens\":1e300"), "max_tokens: must be an integer",
         "max_tokens"},
        {F("\"max_completion_tokens\":-3"),
         "max_completion_tokens: must be an integer", "max_completion_tokens"},
        {F("\"temperature\":\"hot\""), "temperature: must be a number",
         "temperature"},
        {F("\"top_p\":[]"), "top_p: must be a number", "top_p"},
        {F("\"stop\":5"), "stop: must be a string or an array of strings",
         "stop"},
        {F("\"stop\":[\"a\",1]"), "stop[1]: must be a string", "stop"},
        {F("\"tools\":{}"), "tools: must be an array", "tools"},
        {F("\"tools\":[{\"type\":\"function\"}]"),
         "tools[0].function: must be an object", "tools"},
        {F("\"tools\":[{\"type\":\"function\",\"function\":{}}]"),
         "tools[0].function.name: must be a string", "tools"},
        {F("\"tool_choice\":3"), "tool_choice: must be a string or an object",
         "tool_choice"},
        {F("\"user\":5"), "user: must be a string", "user"},
        {F("\"response_format\":\"json\""),
         "response_format: must be an object", "response_format"},
        {F("\"response_format\":{\"type\":\"xml\"}"),
         "response_format.type: must be one of text, json_object, json_schema",
         "response_format"},
        {F("\"response_format\":{\"type\":\"json_schema\"}"),
         "response_format.json_schema: must be an object", "response_format"},
        {F("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
           "{\"name\":\"x\",\"schema\":[]}}"),
         "response_format.json_schema.schema: must be an object",
         "response_format"},
    };
#undef U
#undef M
#undef F
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *req = parse(cases[i].req);
        char err[256] = "";
        const char *param = "unset";
        int rc = chat_request_check(req, err, sizeof err, &param);
        cJSON_Delete(req);
        if (rc != BURSAR_EFORMAT)
            fail_msg("case %zu (%s): rc %d, want BURSAR_EFORMAT", i,
                     cases[i].req, rc);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu (%s): err \"%s\", want \"%s...\"", i,
                     cases[i].req, err, cases[i].err);
        if (!cases[i].param)
            assert_null(param);
        else if (!param || strcmp(param, cases[i].param) != 0)
            fail_msg("case %zu: param %s, want %s", i, param ? param : "NULL",
                     cases[i].param);
    }
    /* param may be NULL */
    cJSON *req = parse("{\"model\":2}");
    char err[64];
    assert_int_equal(chat_request_check(req, err, sizeof err, NULL),
                     BURSAR_EFORMAT);
    cJSON_Delete(req);
}

static void
test_prompt_text(void **state)
{
    (void)state;
    cJSON *req = parse(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
        "\"You extract JSON.\"},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"Name and age:\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://x/y.png\"}},{\"type\":\"text\","
        "\"text\":\"Ada, 36\"}]},{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[]},{\"role\":\"user\",\"content\":\"thanks\"}]}");
    char *t = chat_prompt_text(req);
    assert_string_equal(t, "You extract JSON.\nName and age:\nAda, 36\nthanks");
    free(t);
    cJSON_Delete(req);
    t = chat_prompt_text(NULL);
    assert_string_equal(t, "");
    free(t);
}

/* ------------------------------------------------ upstream: OpenAI */

static void
test_openai_body(void **state)
{
    (void)state;
    bursar_model_t m = model(PROTO_PROVIDER_OPENAI, "gpt-4o-mini");
    const char *req =
        "{\"model\":\"bursar/auto\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}],\"temperature\":0.3,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":false,\"x\":1},\"seed\":9}";
    char *b = body_of(req, &m, 1, 1024);
    json_eq(b, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}],\"temperature\":0.3,\"stream\":true,"
               "\"stream_options\":{\"include_usage\":true,\"x\":1},"
               "\"seed\":9}");
    free(b);
    /* not streamed upstream: stream and stream_options removed */
    b = body_of(req, &m, 0, 1024);
    json_eq(b, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}],\"temperature\":0.3,\"seed\":9}");
    free(b);
    /* streamed though the client did not ask: usage forced on */
    b = body_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}]}",
                &m, 1, 0);
    json_eq(b, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}],\"stream\":true,\"stream_options\":"
               "{\"include_usage\":true}}");
    free(b);
    /* a key named twice: what was checked (the first) is what goes */
    b = body_of("{\"model\":\"bursar/cheap\",\"messages\":[{\"role\":"
                "\"user\",\"content\":\"hi\"}],\"n\":1,\"model\":\"o1\","
                "\"n\":5}",
                &m, 0, 0);
    json_eq(b, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}],\"n\":1}");
    assert_null(strstr(b, "o1"));
    free(b);
}

/* --------------------------------------------- upstream: Anthropic */

/* An OpenAI tool-calling conversation, its Anthropic body, the answer
 * back in OpenAI's shape, and the next turn: the ids meet. */
static void
test_anthropic_tool_round_trip(void **state)
{
    (void)state;
    bursar_model_t m = model(PROTO_PROVIDER_ANTHROPIC, "claude-haiku-4-5");
    const char *tools =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Current weather\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":"
        "\"string\"}},\"required\":[\"location\"]}}},{\"type\":\"function\","
        "\"function\":{\"name\":\"get_time\"}}]";
    char req1[2048];
    snprintf(req1, sizeof req1,
             "{\"model\":\"bursar/auto\",\"messages\":[{\"role\":\"system\","
             "\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":"
             "\"Weather in Paris and Rome?\"}],%s,\"tool_choice\":\"auto\","
             "\"parallel_tool_calls\":false}",
             tools);
    char *b = body_of(req1, &m, 0, 512);
    json_eq(b,
            "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":512,\"system\":"
            "\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"Weather in Paris and Rome?\"}],\"tools\":[{\"name\":"
            "\"get_weather\",\"description\":\"Current weather\","
            "\"input_schema\":{\"type\":\"object\",\"properties\":{"
            "\"location\":{\"type\":\"string\"}},\"required\":[\"location\"]}"
            "},{\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\","
            "\"properties\":{}}}],\"tool_choice\":{\"type\":\"auto\","
            "\"disable_parallel_tool_use\":true}}");
    free(b);

    /* Anthropic answers with two tool calls */
    const char *ans =
        "{\"id\":\"msg_01A\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"claude-haiku-4-5\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Checking.\"},{\"type\":\"tool_use\",\"id\":\"toolu_01\","
        "\"name\":\"get_weather\",\"input\":{\"location\":\"Paris\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_weather\","
        "\"input\":{\"location\":\"Rome\"}}],\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":310,"
        "\"output_tokens\":95}}";
    chat_answer_t a;
    char err[256];
    assert_int_equal(chat_answer_parse(PROTO_PROVIDER_ANTHROPIC, ans,
                                       strlen(ans), "haiku", &a, err,
                                       sizeof err),
                     0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(a.response, "choices"), 0),
        "message");
    char *tc = cJSON_PrintUnformatted(
        cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"));
    json_eq(tc, "[{\"id\":\"toolu_01\",\"type\":\"function\",\"function\":{"
                "\"name\":\"get_weather\",\"arguments\":"
                "\"{\\\"location\\\":\\\"Paris\\\"}\"}},{\"id\":\"toolu_02\","
                "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                "\"arguments\":\"{\\\"location\\\":\\\"Rome\\\"}\"}}]");
    assert_string_equal(a.finish_reason, "tool_calls");
    assert_string_equal(a.text, "Checking.");

    /* the client's next turn: the assistant message as received, the
     * tool results, a follow-up */
    char req2[4096];
    snprintf(req2, sizeof req2,
             "{\"model\":\"bursar/auto\",\"messages\":[{\"role\":\"system\","
             "\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":"
             "\"Weather in Paris and Rome?\"},{\"role\":\"assistant\","
             "\"content\":\"Checking.\",\"tool_calls\":%s},{\"role\":\"tool\","
             "\"tool_call_id\":\"toolu_01\",\"content\":\"18C sunny\"},"
             "{\"role\":\"tool\",\"tool_call_id\":\"toolu_02\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"24C\"}]},{\"role\":\"user\","
             "\"content\":\"Which is warmer?\"}],%s,\"tool_choice\":{\"type\":"
             "\"function\",\"function\":{\"name\":\"get_time\"}}}",
             tc, tools);
    free(tc);
    chat_answer_clear(&a);
    b = body_of(req2, &m, 1, 512);
    cJSON *got = parse(b);
    char *msgs = cJSON_PrintUnformatted(
        cJSON_GetObjectItemCaseSensitive(got, "messages"));
    json_eq(msgs,
            "[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
            "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
            "\"Checking.\"},{\"type\":\"tool_use\",\"id\":\"toolu_01\","
            "\"name\":\"get_weather\",\"input\":{\"location\":\"Paris\"}},"
            "{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":"
            "\"get_weather\",\"input\":{\"location\":\"Rome\"}}]},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
            "\"tool_use_id\":\"toolu_01\",\"content\":\"18C sunny\"},"
            "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_02\","
            "\"content\":[{\"type\":\"text\",\"text\":\"24C\"}]},"
            "{\"type\":\"text\",\"text\":\"Which is warmer?\"}]}]");
    free(msgs);
    char *choice = cJSON_PrintUnformatted(
        cJSON_GetObjectItemCaseSensitive(got, "tool_choice"));
    json_eq(choice, "{\"type\":\"tool\",\"name\":\"get_time\"}");
    free(choice);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(got, "stream")));
    cJSON_Delete(got);
    free(b);

    /* tool_choice words */
    const char *words[][2] = {{"\"none\"", "{\"type\":\"none\"}"},
                              {"\"required\"", "{\"type\":\"any\"}"}};
    for (int i = 0; i < 2; i++) {
        snprintf(req1, sizeof req1,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"x\"}],%s,\"tool_choice\":%s}",
                 tools, words[i][0]);
        b = body_of(req1, &m, 0, 16);
        got = parse(b);
        choice = cJSON_PrintUnformatted(
            cJSON_GetObjectItemCaseSensitive(got, "tool_choice"));
        json_eq(choice, words[i][1]);
        free(choice);
        cJSON_Delete(got);
        free(b);
    }
}

static void
test_anthropic_images(void **state)
{
    (void)state;
    bursar_model_t m = model(PROTO_PROVIDER_ANTHROPIC, "claude-sonnet-4-5");
    char *b = body_of(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Compare these.\"},{\"type\":"
        "\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"high\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://upload.example.org/cat.jpg\"}}]}],\"max_tokens\":300}",
        &m, 0, 1024);
    json_eq(b, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":300,"
               "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"text\",\"text\":\"Compare these.\"},{\"type\":\"image\","
               "\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
               "\"data\":\"iVBORw0KGgo=\"}},{\"type\":\"image\",\"source\":{"
               "\"type\":\"url\",\"url\":"
               "\"https://upload.example.org/cat.jpg\"}}]}]}");
    free(b);
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
               "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"ftp://x/y.png\"}}]}]}",
               &m, 16,
               "messages[0].content[0].image_url.url: Anthropic takes a "
               "base64 data URL");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
               "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"data:;base64,AAAA\"}}]}]}",
               &m, 16, "messages[0].content[0].image_url.url");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
               "\"a\"},{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_audio\",\"input_audio\":{}}]}]}",
               &m, 16,
               "messages[1].content[0].type: \"input_audio\" is not "
               "supported by Anthropic");
    /* an image in a system message cannot go to "system" */
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
               "\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"https://x/y.png\"}}]},{\"role\":\"user\",\"content\":"
               "\"a\"}]}",
               &m, 16, "messages[0].content[0].type: \"image_url\"");
}

/* System and developer messages to "system", same-role turns merged,
 * stop strings, the parameters Anthropic has and those it lacks. */
static void
test_anthropic_system_merge_stop(void **state)
{
    (void)state;
    bursar_model_t m = model(PROTO_PROVIDER_ANTHROPIC, "claude-haiku-4-5");
    char *b = body_of(
        "{\"model\":\"bursar/auto\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"Rule one.\"},{\"role\":\"developer\",\"content\":[{"
        "\"type\":\"text\",\"text\":\"Rule two.\"}]},{\"role\":\"user\","
        "\"content\":\"First part.\"},{\"role\":\"user\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":\"Second part.\",\"name\":\"ann\"},"
        "{\"role\":\"system\",\"content\":\"Rule three.\"},{\"role\":"
        "\"assistant\",\"content\":\"Noted.\"},{\"role\":\"assistant\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Go on.\"}]},{\"role\":"
        "\"user\",\"content\":\"Done?\"}],\"stop\":[\"\\n\",\"END\",\"  \","
        "\"\\n\\nHuman:\"],\"temperature\":1.7,\"top_p\":0.9,"
        "\"max_completion_tokens\":77,\"user\":\"user-42\","
        "\"frequency_penalty\":1,\"presence_penalty\":1,\"seed\":3,\"n\":1,"
        "\"logit_bias\":{\"1\":2},\"response_format\":{\"type\":"
        "\"json_object\"},\"stream_options\":{\"include_usage\":true},"
        "\"metadata\":{\"a\":\"b\"},\"tool_choice\":\"required\"}",
        &m, 0, 1024);
    json_eq(b, "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":77,\"system\":"
               "\"Rule one.\\nRule two.\\nRule three.\",\"messages\":["
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
               "\"First part.\"},{\"type\":\"text\",\"text\":"
               "\"Second part.\"}]},{\"role\":\"assistant\",\"content\":["
               "{\"type\":\"text\",\"text\":\"Noted.\"},{\"type\":\"text\","
               "\"text\":\"Go on.\"}]},{\"role\":\"user\",\"content\":"
               "\"Done?\"}],\"temperature\":1,\"top_p\":0.9,"
               "\"stop_sequences\":[\"END\",\"\\n\\nHuman:\"],\"metadata\":{"
               "\"user_id\":\"user-42\"}}");
    free(b);
    /* a single stop string; max_tokens before max_completion_tokens; the
     * default when neither */
    b = body_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"x\"}],\"stop\":\"###\",\"max_tokens\":5,"
                "\"max_completion_tokens\":9,\"temperature\":0.25}",
                &m, 0, 1024);
    json_eq(b, "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":"
               "[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.25,"
               "\"stop_sequences\":[\"###\"]}");
    free(b);
    b = body_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"x\"}],\"stop\":\"\\n\"}",
                &m, 1, 333);
    json_eq(b, "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":333,"
               "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"stream\":true}");
    free(b);
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}",
               &m, 0, "max_tokens: Anthropic requires it");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
               "\"content\":\"only a system prompt\"}]}",
               &m, 16, "messages: Anthropic needs at least one user or");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null,"
               "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
               "\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
               &m, 16,
               "messages[1].tool_calls[0].function.arguments: must be a JSON "
               "object");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}],\"tools\":[{\"type\":\"custom\","
               "\"custom\":{\"name\":\"c\"}}]}",
               &m, 16, "tools[0]: Anthropic takes function tools");
    body_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
               "\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"maybe\"}",
               &m, 16, "tool_choice: Anthropic takes auto, none, required");
    body_fails("[]", &m, 16, "the request must be a JSON object");
}

/* ------------------------------------------------------------ answers */

static void
test_answer_openai(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":"
        "1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":"
        "0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can "
        "I help?\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,"
        "\"completion_tokens\":10,\"total_tokens\":29},"
        "\"service_tier\":\"default\"}";
    chat_answer_t a;
    char err[256];
    assert_int_equal(chat_answer_parse(PROTO_PROVIDER_OPENAI, body,
                                       strlen(body), "smart", &a, err,
                                       sizeof err),
                     0);
    assert_string_equal(a.text, "Hello! How can I help?");
    assert_int_equal(a.tokens_in, 19);
    assert_int_equal(a.tokens_out, 10);
    assert_string_equal(a.finish_reason, "stop");
    char *r = cJSON_PrintUnformatted(a.response);
    cJSON *want = parse(body);
    cJSON_ReplaceItemInObjectCaseSensitive(want, "model",
                                           cJSON_CreateString("smart"));
    char *w = cJSON_PrintUnformatted(want);
    json_eq(r, w);
    free(r);
    free(w);
    cJSON_Delete(want);
    chat_answer_clear(&a);
    assert_null(a.response);
    assert_null(a.text);

    /* a tool call only, no usage */
    body = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
           "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
           "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]"
           "},\"finish_reason\":\"tool_calls\"}]}";
    assert_int_equal(chat_answer_parse(PROTO_PROVIDER_OPENAI, body,
                                       strlen(body), "smart", &a, err,
                                       sizeof err),
                     0);
    assert_string_equal(a.text, "");
    assert_int_equal(a.tokens_in, -1);
    assert_int_equal(a.tokens_out, -1);
    assert_string_equal(a.finish_reason, "tool_calls");
    chat_answer_clear(&a);

    const struct {
        const char *body, *err;
    } bad[] = {
        {"", "the answer is not a JSON object"},
        {"[1]", "the answer is not a JSON object"},
        {"{\"choices\":[]}", "choices: must be a non-empty array"},
        {"{\"choices\":[{\"message\":\"hi\"}]}",
         "choices[0].message: must be an object"},
        {"{\"choices\":[{\"message\":{\"content\":5}}]}",
         "choices[0].message.content: must be a string or null"},
        {"{\"choices\":[{\"message\":{\"role\":\"assistant\"}}]}",
         "choices[0].message.content: must be a string or null"},
        {"{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
         "the upstream answered an error: overloaded"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc =
            chat_answer_parse(PROTO_PROVIDER_OPENAI, bad[i].body,
                              strlen(bad[i].body), "x", &a, err, sizeof err);
        if (rc != BURSAR_EFORMAT || strcmp(err, bad[i].err) != 0)
            fail_msg("bad %zu: rc %d err \"%s\", want \"%s\"", i, rc, err,
                     bad[i].err);
        assert_null(a.response);
        assert_null(a.text);
        assert_int_equal(a.tokens_in, -1);
    }
}

static void
test_answer_anthropic(void **state)
{
    (void)state;
    const struct {
        const char *stop, *finish;
    } stops[] = {{"end_turn", "stop"},          {"stop_sequence", "stop"},
                 {"max_tokens", "length"},      {"tool_use", "tool_calls"},
                 {"refusal", "content_filter"}, {"pause_turn", "stop"}};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":"
                 "\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
                 "\"thinking\",\"thinking\":\"hmm\",\"signature\":\"x\"},"
                 "{\"type\":\"text\",\"text\":\"Hello\"},{\"type\":\"text\","
                 "\"text\":\", world\"}],\"model\":\"claude-sonnet-4-5\","
                 "\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{"
                 "\"input_tokens\":12,\"cache_creation_input_tokens\":100,"
                 "\"cache_read_input_tokens\":1000,\"output_tokens\":6}}",
                 stops[i].stop);
        chat_answer_t a;
        char err[256];
        assert_int_equal(chat_answer_parse(PROTO_PROVIDER_ANTHROPIC, body,
                                           strlen(body), "sonnet", &a, err,
                                           sizeof err),
                         0);
        assert_string_equal(a.text, "Hello, world");
        assert_string_equal(a.finish_reason, stops[i].finish);
        assert_int_equal(a.tokens_in, 1112);
        assert_int_equal(a.tokens_out, 6);
        char *r = cJSON_PrintUnformatted(a.response);
        cJSON *created =
            cJSON_GetObjectItemCaseSensitive(a.response, "created");
        assert_true(cJSON_IsNumber(created) && created->valuedouble > 1.7e9);
        char want[1024];
        snprintf(want, sizeof want,
                 "{\"id\":\"chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL\","
                 "\"object\":\"chat.completion\",\"created\":%.0f,\"model\":"
                 "\"sonnet\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                 "\"assistant\",\"content\":\"Hello, world\",\"refusal\":null},"
                 "\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":{"
                 "\"prompt_tokens\":1112,\"completion_tokens\":6,"
                 "\"total_tokens\":1118}}",
                 created->valuedouble, stops[i].finish);
        json_eq(r, want);
        free(r);
        chat_answer_clear(&a);
    }
    /* a tool call only: content null, text ""; no usage */
    const char *body =
        "{\"id\":\"msg_2\",\"type\":\"message\",\"content\":[{\"type\":"
        "\"tool_use\",\"id\":\"toolu_9\",\"name\":\"lookup\",\"input\":{\"q\":"
        "[1,2]}}],\"stop_reason\":\"tool_use\"}";
    chat_answer_t a;
    char err[256];
    assert_int_equal(chat_answer_parse(PROTO_PROVIDER_ANTHROPIC, body,
                                       strlen(body), "sonnet", &a, err,
                                       sizeof err),
                     0);
    assert_string_equal(a.text, "");
    assert_int_equal(a.tokens_in, -1);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(a.response, "choices"), 0),
        "message");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(msg, "content")));
    char *tc = cJSON_PrintUnformatted(
        cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"));
    json_eq(tc, "[{\"id\":\"toolu_9\",\"type\":\"function\",\"function\":{"
                "\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":[1,2]}\"}}]");
    free(tc);
    assert_null(cJSON_GetObjectItemCaseSensitive(a.response, "usage"));
    chat_answer_clear(&a);

    const struct {
        const char *body, *err;
    } bad[] = {
        {"{\"type\":\"message\"}", "content: must be an array"},
        {"{\"content\":[{\"type\":\"text\",\"text\":3}]}",
         "content[0].text: must be a string"},
        {"{\"content\":[{\"type\":\"tool_use\",\"name\":\"f\"}]}",
         "content[0]: a tool_use block needs a string id and name"},
        {"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
         "\"message\":\"Overloaded\"}}",
         "the upstream answered an error: Overloaded"},
        {"{\"content\":[", "the answer is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc =
            chat_answer_parse(PROTO_PROVIDER_ANTHROPIC, bad[i].body,
                              strlen(bad[i].body), "x", &a, err, sizeof err);
        if (rc != BURSAR_EFORMAT || strcmp(err, bad[i].err) != 0)
            fail_msg("bad %zu: rc %d err \"%s\", want \"%s\"", i, rc, err,
                     bad[i].err);
        assert_null(a.response);
    }
}

/* ------------------------------------------------------------ streams */

/* Anthropic's stream for a text then a tool call (the shape of the
 * "Streaming Messages" page's example). */
static const char ANTHROPIC_STREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":"
    "\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":"
    "\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,"
    "\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],"
    "\"stop_reason\":null}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Okay\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\", let me check the weather in Paris.\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
    "\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\","
    "\"name\":\"get_weather\",\"input\":{}}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

#define CH(delta, finish)                                                      \
    "{\"id\":\"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U\",\"object\":"            \
    "\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fast\","     \
    "\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":null,"         \
    "\"finish_reason\":" finish "}]"
#define TOOL(x) "{\"tool_calls\":[{\"index\":0," x "}]}"

static void
test_stream_anthropic(void **state)
{
    (void)state;
    out_t o;
    chat_stream_t *s;
    char err[256] = "";
    int rc = feed(PROTO_PROVIDER_ANTHROPIC, 1, ANTHROPIC_STREAM,
                  strlen(ANTHROPIC_STREAM), 0, 0, &o, &s, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_int_equal(o.n, 9);
    assert_int_equal(chat_stream_chunks(s), 9);
    const char *want[] = {
        CH("{\"role\":\"assistant\",\"content\":\"\"}",
           "null") ",\"usage\":null}",
        CH("{\"content\":\"Okay\"}", "null") ",\"usage\":null}",
        CH("{\"content\":\", let me check the weather in Paris.\"}",
           "null") ",\"usage\":null}",
        CH(TOOL("\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"type\":"
                "\"function\",\"function\":{\"name\":\"get_weather\","
                "\"arguments\":\"\"}"),
           "null") ",\"usage\":null}",
        CH(TOOL("\"function\":{\"arguments\":\"\"}"),
           "null") ",\"usage\":null}",
        CH(TOOL("\"function\":{\"arguments\":\"{\\\"location\\\":\"}"),
           "null") ",\"usage\":null}",
        CH(TOOL("\"function\":{\"arguments\":\" \\\"Paris\\\"}\"}"),
           "null") ",\"usage\":null}",
        CH("{}", "\"tool_calls\"") ",\"usage\":null}",
        "{\"id\":\"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U\",\"object\":"
        "\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fast\","
        "\"choices\":[],\"usage\":{\"prompt_tokens\":472,"
        "\"completion_tokens\":89,\"total_tokens\":561}}",
    };
    for (size_t k = 0; k < 9; k++)
        chunk_eq(&o, k, want[k]);
    assert_string_equal(chat_stream_text(s),
                        "Okay, let me check the weather in Paris.");
    assert_string_equal(chat_stream_finish_reason(s), "tool_calls");
    long tin, tout;
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 1);
    assert_int_equal(tin, 472);
    assert_int_equal(tout, 89);
    assert_int_equal(chat_stream_ended(s), 1);
    /* after the end: bytes ignored, 1 again */
    assert_int_equal(
        chat_stream_feed(s, "data: x\n\n", 9, collect, &o, err, sizeof err), 1);
    assert_int_equal(o.n, 9);
    chat_stream_destroy(&s);
    assert_null(s);
    chat_stream_destroy(&s); /* safe on NULL */
    out_free(&o);

    /* without include_usage: no usage members, no usage chunk; the usage
     * is known all the same */
    rc = feed(PROTO_PROVIDER_ANTHROPIC, 0, ANTHROPIC_STREAM,
              strlen(ANTHROPIC_STREAM), 0, 0, &o, &s, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_int_equal(o.n, 8);
    chunk_eq(&o, 1, CH("{\"content\":\"Okay\"}", "null") "}");
    chunk_eq(&o, 7, CH("{}", "\"tool_calls\"") "}");
    assert_null(strstr(o.buf, "usage"));
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 1);
    assert_int_equal(tin + tout, 561);
    chat_stream_destroy(&s);
    out_free(&o);
}

/* An OpenAI stream as the upstream sends it with include_usage forced: a
 * comment, "usage":null on every chunk, the usage chunk, [DONE]; one event
 * in two data lines (joined by a newline, which JSON takes as space). */
static const char OPENAI_STREAM[] =
    ": keep-alive\n"
    "\n"
    "data: {\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
    "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\","
    "\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
    "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "id: 2\n"
    "data: {\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
    "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\n"
    "data:\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
    "\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
    "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\","
    "\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\" there!\"},\"logprobs\":null,"
    "\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
    "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\","
    "\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
    "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\","
    "\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[],\"usage\":{"
    "\"prompt_tokens\":19,\"completion_tokens\":3,\"total_tokens\":22,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

#define OCH(delta, finish)                                                     \
    "{\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","           \
    "\"created\":1741570283,\"model\":\"fast\",\"system_fingerprint\":"        \
    "\"fp_eb9dce56a8\",\"choices\":[{\"index\":0,\"delta\":" delta             \
    ",\"logprobs\":null,\"finish_reason\":" finish "}]"

static void
test_stream_openai_usage(void **state)
{
    (void)state;
    out_t o;
    chat_stream_t *s;
    char err[256] = "";
    long tin, tout;
    /* the client asked for usage: everything passed on, model rewritten */
    int rc = feed(PROTO_PROVIDER_OPENAI, 1, OPENAI_STREAM,
                  strlen(OPENAI_STREAM), 0, 0, &o, &s, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_int_equal(o.n, 5);
    chunk_eq(&o, 0,
             OCH("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
                 "null") ",\"usage\":null}");
    chunk_eq(&o, 2,
             OCH("{\"content\":\" there!\"}", "null") ",\"usage\":null}");
    chunk_eq(&o, 4,
             "{\"id\":\"chatcmpl-B9M\",\"object\":\"chat.completion.chunk\","
             "\"created\":1741570283,\"model\":\"fast\",\"system_fingerprint\":"
             "\"fp_eb9dce56a8\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,"
             "\"completion_tokens\":3,\"total_tokens\":22,"
             "\"prompt_tokens_details\":{\"cached_tokens\":0}}}");
    assert_null(strstr(o.buf, "gpt-4o"));
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 1);
    assert_int_equal(tin, 19);
    assert_int_equal(tout, 3);
    assert_string_equal(chat_stream_text(s), "Hello there!");
    assert_string_equal(chat_stream_finish_reason(s), "stop");
    assert_int_equal(chat_stream_ended(s), 1);
    chat_stream_destroy(&s);
    out_free(&o);

    /* it did not: no usage chunk, no usage members; usage recorded */
    rc = feed(PROTO_PROVIDER_OPENAI, 0, OPENAI_STREAM, strlen(OPENAI_STREAM), 0,
              0, &o, &s, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_int_equal(o.n, 4);
    assert_int_equal(chat_stream_chunks(s), 4);
    chunk_eq(&o, 1, OCH("{\"content\":\"Hello\"}", "null") "}");
    chunk_eq(&o, 3, OCH("{}", "\"stop\"") "}");
    assert_null(strstr(o.buf, "usage"));
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 1);
    assert_int_equal(tin, 19);
    assert_int_equal(tout, 3);
    chat_stream_destroy(&s);
    out_free(&o);

    /* an upstream that gives no usage, and a usage chunk with choices
     * null (as vLLM writes it) */
    const char *nousage = "data: {\"choices\":[{\"index\":0,\"delta\":{"
                          "\"content\":\"x\"},\"finish_reason\":\"length\"}]}"
                          "\n\ndata: [DONE]\n\n";
    rc = feed(PROTO_PROVIDER_OPENAI, 1, nousage, strlen(nousage), 0, 0, &o, &s,
              err, sizeof err);
    assert_int_equal(rc, 1);
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 0);
    assert_int_equal(tin, -1);
    assert_string_equal(chat_stream_finish_reason(s), "length");
    chat_stream_destroy(&s);
    out_free(&o);
    const char *vllm = "data: {\"id\":\"c\",\"choices\":null,\"usage\":{"
                       "\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n";
    rc = feed(PROTO_PROVIDER_OPENAI, 1, vllm, strlen(vllm), 0, 0, &o, &s, err,
              sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(chat_stream_ended(s), 0);
    chunk_eq(&o, 0,
             "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
             "\"completion_tokens\":7},\"model\":\"fast\"}");
    chat_stream_destroy(&s);
    out_free(&o);
}

/* The same output whatever the split, and whatever the line ends. */
static void
test_stream_splits(void **state)
{
    (void)state;
    const struct {
        int provider;
        const char *text;
    } streams[] = {{PROTO_PROVIDER_ANTHROPIC, ANTHROPIC_STREAM},
                   {PROTO_PROVIDER_OPENAI, OPENAI_STREAM}};
    const char *nls[] = {"\n", "\r\n", "\r"};
    for (size_t i = 0; i < 2; i++) {
        for (int usage = 0; usage < 2; usage++) {
            out_t ref;
            chat_stream_t *s;
            char err[256] = "";
            int rc =
                feed(streams[i].provider, usage, streams[i].text,
                     strlen(streams[i].text), 0, 0, &ref, &s, err, sizeof err);
            assert_int_equal(rc, 1);
            char *ref_text = bursar_strdup(chat_stream_text(s));
            chat_stream_destroy(&s);
            for (size_t k = 0; k < 3; k++) {
                char *t = with_newlines(streams[i].text, nls[k]);
                /* byte by byte, then 40 random splits of up to 1..64 */
                for (unsigned trial = 0; trial < 41; trial++) {
                    out_t o;
                    size_t split = trial == 0 ? 1 : 1 + trial % 64;
                    rc = feed(streams[i].provider, usage, t, strlen(t), split,
                              1234u + trial, &o, &s, err, sizeof err);
                    if (rc != 1 || o.n != ref.n ||
                        strcmp(o.buf, ref.buf) != 0 ||
                        strcmp(chat_stream_text(s), ref_text) != 0)
                        fail_msg("stream %zu usage %d nl %zu trial %u: rc %d "
                                 "(%s), %zu chunks, want %zu",
                                 i, usage, k, trial, rc, err, o.n, ref.n);
                    chat_stream_destroy(&s);
                    out_free(&o);
                }
                free(t);
            }
            free(ref_text);
            out_free(&ref);
        }
    }
}

static void
test_stream_errors(void **state)
{
    (void)state;
    const struct {
        int provider;
        const char *text;
        int rc;
        const char *err;
        size_t chunks;
    } cases[] = {
        {PROTO_PROVIDER_ANTHROPIC,
         "event: message_start\ndata: {\"type\":\"message_start\","
         "\"message\":{\"id\":\"m\"}}\n\nevent: error\ndata: {\"type\":"
         "\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
         "\"Overloaded\"}}\n\n",
         BURSAR_EREMOTE,
         "the upstream sent an error: overloaded_error: "
         "Overloaded",
         1},
        {PROTO_PROVIDER_OPENAI,
         "data: {\"error\":{\"message\":\"The server had an error\","
         "\"type\":\"server_error\"}}\n\n",
         BURSAR_EREMOTE, "the upstream sent an error: The server had an error",
         0},
        {PROTO_PROVIDER_OPENAI, "data: {\"choices\":[{\"delta\":{}}\n\n",
         BURSAR_EFORMAT, "upstream event 1: not a JSON object", 0},
        {PROTO_PROVIDER_OPENAI, "data: [1,2]\n\n", BURSAR_EFORMAT,
         "upstream event 1: not a JSON object", 0},
        {PROTO_PROVIDER_OPENAI, "data: {\"choices\":[]} trailing\n\n",
         BURSAR_EFORMAT, "upstream event 1: not a JSON object", 0},
        {PROTO_PROVIDER_OPENAI,
         "data: {\"choices\":[]}\n\ndata: {\"choices\":{}}\n\n", BURSAR_EFORMAT,
         "upstream event 2: choices: must be an array", 1},
        {PROTO_PROVIDER_ANTHROPIC,
         "data: {\"type\":\"content_block_start\",\"index\":0,"
         "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
         "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
         "\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n",
         BURSAR_EFORMAT,
         "upstream event 2: an input_json_delta for block 0, which is not "
         "the tool_use block being read",
         0},
        {PROTO_PROVIDER_ANTHROPIC,
         "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
         "\"type\":\"text_delta\"}}\n\n",
         BURSAR_EFORMAT, "upstream event 1: a text_delta needs a string text",
         0},
        {PROTO_PROVIDER_ANTHROPIC,
         "data: {\"type\":\"content_block_start\",\"index\":1,"
         "\"content_block\":{\"type\":\"tool_use\",\"name\":\"f\"}}\n\n",
         BURSAR_EFORMAT,
         "upstream event 1: a tool_use block needs a string id and name", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        out_t o;
        chat_stream_t *s;
        char err[256] = "";
        int rc = feed(cases[i].provider, 1, cases[i].text,
                      strlen(cases[i].text), 1, 0, &o, &s, err, sizeof err);
        if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0 ||
            o.n != cases[i].chunks)
            fail_msg("case %zu: rc %d err \"%s\" chunks %zu, want %d \"%s\" "
                     "%zu",
                     i, rc, err, o.n, cases[i].rc, cases[i].err,
                     cases[i].chunks);
        /* sticky: the same error again, nothing more emitted */
        char err2[256] = "";
        assert_int_equal(chat_stream_feed(s, "data: [DONE]\n\n", 14, collect,
                                          &o, err2, sizeof err2),
                         cases[i].rc);
        assert_string_equal(err2, cases[i].err);
        assert_int_equal(o.n, cases[i].chunks);
        assert_int_equal(chat_stream_ended(s), 0);
        chat_stream_destroy(&s);
        out_free(&o);
    }
}

/* An event of CHAT_EVENT_MAX bytes passes; one byte more does not, nor a
 * line that never ends. */
static void
test_stream_oversize(void **state)
{
    (void)state;
    const char *head = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
    const char *tail = "\"}}]}";
    for (int over = 0; over < 2; over++) {
        size_t n = CHAT_EVENT_MAX + (size_t)over;
        size_t pad = n - strlen(head) - strlen(tail);
        char *ev = malloc(6 + n + 3);
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, head, strlen(head));
        memset(ev + 6 + strlen(head), 'a', pad);
        memcpy(ev + 6 + strlen(head) + pad, tail, strlen(tail));
        memcpy(ev + 6 + n, "\n\n", 3);
        out_t o;
        chat_stream_t *s;
        char err[256] = "";
        int rc = feed(PROTO_PROVIDER_OPENAI, 0, ev, 6 + n + 2, 4096, 7, &o, &s,
                      err, sizeof err);
        if (!over) {
            assert_int_equal(rc, 0);
            assert_int_equal(o.n, 1);
            assert_int_equal(strlen(chat_stream_text(s)), pad);
        } else {
            assert_int_equal(rc, BURSAR_EFORMAT);
            assert_int_equal(o.n, 0);
            assert_non_null(strstr(err, "upstream event 1: over 1048576 "
                                        "bytes"));
        }
        chat_stream_destroy(&s);
        out_free(&o);
        free(ev);
    }
    /* two data lines joined by \n count the \n */
    chat_stream_t *s = chat_stream_new(PROTO_PROVIDER_OPENAI, "m", 0);
    out_t o = {0};
    char err[256] = "";
    char *half = malloc(CHAT_EVENT_MAX / 2 + 8);
    memcpy(half, "data: ", 6);
    memset(half + 6, ' ', CHAT_EVENT_MAX / 2);
    half[6 + CHAT_EVENT_MAX / 2] = '\n';
    assert_int_equal(chat_stream_feed(s, half, 7 + CHAT_EVENT_MAX / 2, collect,
                                      &o, err, sizeof err),
                     0);
    assert_int_equal(chat_stream_feed(s, half, 7 + CHAT_EVENT_MAX / 2, collect,
                                      &o, err, sizeof err),
                     BURSAR_EFORMAT);
    free(half);
    chat_stream_destroy(&s);
    /* a line that never ends */
    s = chat_stream_new(PROTO_PROVIDER_ANTHROPIC, "m", 0);
    char *big = malloc(65536);
    memset(big, 'x', 65536);
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed < 2 * (size_t)CHAT_EVENT_MAX) {
        rc = chat_stream_feed(s, big, 65536, collect, &o, err, sizeof err);
        fed += 65536;
    }
    assert_int_equal(rc, BURSAR_EFORMAT);
    assert_true(fed > CHAT_EVENT_MAX && fed <= CHAT_EVENT_MAX + 65536 + 16);
    free(big);
    chat_stream_destroy(&s);
    out_free(&o);
}

/* The emit's nonzero answer comes back as it is. */
static void
test_stream_emit_stops(void **state)
{
    (void)state;
    chat_stream_t *s = chat_stream_new(PROTO_PROVIDER_ANTHROPIC, "fast", 1);
    out_t o = {0};
    o.stop_after = 2;
    char err[64] = "";
    int rc = chat_stream_feed(s, ANTHROPIC_STREAM, strlen(ANTHROPIC_STREAM),
                              collect, &o, err, sizeof err);
    assert_int_equal(rc, 7);
    assert_int_equal(o.n, 2);
    assert_int_equal(chat_stream_ended(s), 0);
    chat_stream_destroy(&s);
    out_free(&o);
    /* at the very end too (the usage chunk) */
    s = chat_stream_new(PROTO_PROVIDER_ANTHROPIC, "fast", 1);
    o.stop_after = 9;
    rc = chat_stream_feed(s, ANTHROPIC_STREAM, strlen(ANTHROPIC_STREAM),
                          collect, &o, err, sizeof err);
    assert_int_equal(rc, 7);
    assert_int_equal(o.n, 9);
    chat_stream_destroy(&s);
    out_free(&o);
}

/* A stream cut before its end: not ended; the usage so far. */
static void
test_stream_cut(void **state)
{
    (void)state;
    size_t cut = (size_t)(strstr(ANTHROPIC_STREAM, "event: message_delta") -
                          ANTHROPIC_STREAM);
    out_t o;
    chat_stream_t *s;
    char err[64] = "";
    assert_int_equal(feed(PROTO_PROVIDER_ANTHROPIC, 1, ANTHROPIC_STREAM, cut, 3,
                          5, &o, &s, err, sizeof err),
                     0);
    assert_int_equal(chat_stream_ended(s), 0);
    assert_int_equal(o.n, 7);
    assert_string_equal(chat_stream_finish_reason(s), "");
    long tin, tout;
    assert_int_equal(chat_stream_usage(s, &tin, &tout), 1);
    assert_int_equal(tin, 472);
    assert_int_equal(tout, 2); /* message_start's count, before the end */
    chat_stream_destroy(&s);
    out_free(&o);
}

static void
test_error_body(void **state)
{
    (void)state;
    char *b =
        chat_error_body("invalid_request_error",
                        "messages[2].role: must be a string", "messages", NULL);
    json_eq(b, "{\"error\":{\"message\":\"messages[2].role: must be a "
               "string\",\"type\":\"invalid_request_error\",\"param\":"
               "\"messages\",\"code\":null}}");
    free(b);
    b = chat_error_body("not_found_error", "no \"x\"", NULL, "unknown_model");
    json_eq(b, "{\"error\":{\"message\":\"no \\\"x\\\"\",\"type\":"
               "\"not_found_error\",\"param\":null,\"code\":"
               "\"unknown_model\"}}");
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_check_ok),
        cmocka_unit_test(test_request_check_errors),
        cmocka_unit_test(test_prompt_text),
        cmocka_unit_test(test_openai_body),
        cmocka_unit_test(test_anthropic_tool_round_trip),
        cmocka_unit_test(test_anthropic_images),
        cmocka_unit_test(test_anthropic_system_merge_stop),
        cmocka_unit_test(test_answer_openai),
        cmocka_unit_test(test_answer_anthropic),
        cmocka_unit_test(test_stream_anthropic),
        cmocka_unit_test(test_stream_openai_usage),
        cmocka_unit_test(test_stream_splits),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_stream_oversize),
        cmocka_unit_test(test_stream_emit_stops),
        cmocka_unit_test(test_stream_cut),
        cmocka_unit_test(test_error_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
