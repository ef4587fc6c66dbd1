/*
 * fuzz_validate.c - the validator spec parser (validator_parse), the
 * response_format reader (validator_from_response_format), and the
 * validators they build, run on a model's output.
 *
 * Input: the spec (JSON text), then optionally a NUL byte and the output
 * to check; without one, three fixed outputs are checked. The spec is
 * read both ways: as a validator spec ({"type":"json_schema","schema":
 * {...}} and the others) and as a request's response_format
 * ({"type":"json_schema","json_schema":{"name":..,"schema":{...}}}).
 * Specs holding a "command" validator are parsed but never checked: that
 * validator runs /bin/sh on its text, and a fuzzer must not run the
 * commands it invents (a response_format never builds one). The output is
 * capped at 4 KiB (a regex on a long text is slow, not wrong).
 */
#include "tests/fuzz/fuzz.h"

#include <cjson/cJSON.h>

#include "agents/validate.h"

/* 1 if any string in the tree is "command" (the only way to ask for one). */
static int
names_command(const cJSON *j)
{
    for (; j; j = j->next) {
        if (cJSON_IsString(j) && strcmp(j->valuestring, "command") == 0)
            return 1;
        if (j->child && names_command(j->child))
            return 1;
    }
    return 0;
}

/* Checks the output after the NUL, or the fixed ones. */
static void
check(const validator_t *v, const uint8_t *data, size_t size,
      const uint8_t *sep)
{
    char why[256];
    (void)validator_kind(v);
    if (sep) {
        size_t n = size - (size_t)(sep + 1 - data);
        char *text = fuzz_cstr(sep + 1, n > 4096 ? 4096 : n);
        validator_check(v, text, why, sizeof why);
        free(text);
    } else {
        validator_check(v, "{\"a\":1,\"b\":\"x\"}", why, sizeof why);
        validator_check(v, "hello 123", why, sizeof why);
        validator_check(v, "[{\"a\":[1,2.5,\"x\"],\"b\":null},true,{}]", why,
                        sizeof why);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0, size);
    size_t spec_len = sep ? (size_t)(sep - data) : size;
    char *spec_text = fuzz_copy(data, spec_len);
    cJSON *spec = cJSON_ParseWithLength(spec_text, spec_len);
    free(spec_text);
    if (!spec)
        return 0;
    validator_t *v = NULL;
    char err[256];
    if (validator_parse(spec, &v, err, sizeof err) == 0 && !names_command(spec))
        check(v, data, size, sep);
    validator_destroy(&v);
    if (validator_from_response_format(spec, &v, err, sizeof err) == 0 && v)
        check(v, data, size, sep);
    validator_destroy(&v);
    cJSON_Delete(spec);
    return 0;
}
