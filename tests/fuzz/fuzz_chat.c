/*
 * fuzz_chat.c - the gateway's chat format (agents/chat.h): the upstream
 * stream reader (chat_stream_feed), the answer parser (chat_answer_parse)
 * and the client request's check and translation (chat_request_check,
 * chat_upstream_body, chat_prompt_text).
 *
 * Input: a selector byte, then the bytes. Selector bit 0: the provider
 * (0 OpenAI, 1 Anthropic); bit 1: the client wants usage; bits 2-3: what
 * (0 and 3: a stream, 1: an answer body, 2: a client request). A stream
 * takes one more byte, the seed of its split: it is read whole and in
 * pieces of 1 to 16 bytes drawn from the seed, and both readings must give
 * the same code, error, chunks and text (the reader must not depend on
 * where the bytes are cut); every chunk must be one JSON object of the
 * length given. An answer parsed must leave a response and a text, a
 * failed one nothing. A request that passes the check must translate to
 * JSON for OpenAI, or to JSON or an error for Anthropic.
 */
#define _POSIX_C_SOURCE 200809L
#include "tests/fuzz/fuzz.h"

#include <cjson/cJSON.h>

#include "agents/chat.h"

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink_t;

static int
sink_emit(void *ud, const char *json, size_t len)
{
    sink_t *s = ud;
    if (strlen(json) != len)
        abort();
    cJSON *c = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(c))
        abort();
    cJSON_Delete(c);
    if (s->len + len + 2 > s->cap) {
        s->cap = (s->len + len + 2) * 2;
        s->buf = realloc(s->buf, s->cap);
        if (!s->buf)
            abort();
    }
    memcpy(s->buf + s->len, json, len);
    s->len += len;
    s->buf[s->len++] = '\n';
    s->buf[s->len] = '\0';
    return 0;
}

typedef struct reading {
    int rc;
    char err[256];
    sink_t out;
    char *text;
    long tin, tout;
    int ended;
    size_t chunks;
} reading_t;

/* Reads p[0..n) whole (seed 0) or in pieces drawn from seed. */
static void
read_stream(int provider, int usage, const char *p, size_t n, unsigned seed,
            reading_t *r)
{
    memset(r, 0, sizeof *r);
    chat_stream_t *s = chat_stream_new(provider, "m", usage);
    chat_stream_set_created(s, 1);
    size_t i = 0;
    while (i < n && r->rc == 0) {
        size_t k = n - i;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % 16;
            if (k > n - i)
                k = n - i;
        }
        /* an exact-size copy of each piece: a read past it is seen */
        char *piece = fuzz_copy((const uint8_t *)p + i, k);
        r->rc = chat_stream_feed(s, piece, k, sink_emit, &r->out, r->err,
                                 sizeof r->err);
        free(piece);
        i += k;
    }
    r->text = strdup(chat_stream_text(s));
    chat_stream_usage(s, &r->tin, &r->tout);
    r->ended = chat_stream_ended(s);
    r->chunks = chat_stream_chunks(s);
    (void)chat_stream_finish_reason(s);
    chat_stream_destroy(&s);
}

static void
fuzz_stream(int provider, int usage, const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    unsigned seed = 1u + data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    reading_t a, b;
    read_stream(provider, usage, p, n, 0, &a);
    read_stream(provider, usage, p, n, seed, &b);
    if (a.rc != b.rc || strcmp(a.err, b.err) != 0 || a.out.len != b.out.len ||
        (a.out.len && memcmp(a.out.buf, b.out.buf, a.out.len) != 0) ||
        strcmp(a.text, b.text) != 0 || a.tin != b.tin || a.tout != b.tout ||
        a.ended != b.ended || a.chunks != b.chunks)
        abort(); /* the reading depends on the split */
    free(a.out.buf);
    free(b.out.buf);
    free(a.text);
    free(b.text);
}

static void
fuzz_answer(int provider, const uint8_t *data, size_t size)
{
    char *body = fuzz_copy(data, size);
    chat_answer_t a;
    char err[256];
    int rc = chat_answer_parse(provider, body, size, "m", &a, err, sizeof err);
    if (rc == 0) {
        if (!a.response || !a.text)
            abort();
        char *s = cJSON_PrintUnformatted(a.response);
        free(s);
    } else if (a.response || a.text) {
        abort();
    }
    chat_answer_clear(&a);
    free(body);
}

static void
fuzz_request(int usage, const uint8_t *data, size_t size)
{
    char *text = fuzz_copy(data, size);
    cJSON *req = cJSON_ParseWithLength(text, size);
    free(text);
    char err[256];
    const char *param = NULL;
    if (req && chat_request_check(req, err, sizeof err, &param) == 0) {
        char *prompt = chat_prompt_text(req);
        free(prompt);
        for (int provider = 0; provider < 2; provider++) {
            bursar_model_t m;
            memset(&m, 0, sizeof m);
            m.provider = provider;
            strcpy(m.model, "upstream");
            char *b = chat_upstream_body(req, &m, usage, 64, err, sizeof err);
            if (!b && provider == PROTO_PROVIDER_OPENAI)
                abort();
            cJSON *back = b ? cJSON_Parse(b) : NULL;
            if (b && !cJSON_IsObject(back))
                abort();
            cJSON_Delete(back);
            free(b);
        }
    }
    cJSON_Delete(req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int provider =
        data[0] & 1 ? PROTO_PROVIDER_ANTHROPIC : PROTO_PROVIDER_OPENAI;
    int usage = (data[0] >> 1) & 1;
    int what = (data[0] >> 2) & 3;
    if (what == 1)
        fuzz_answer(provider, data + 1, size - 1);
    else if (what == 2)
        fuzz_request(usage, data + 1, size - 1);
    else
        fuzz_stream(provider, usage, data + 1, size - 1);
    return 0;
}
