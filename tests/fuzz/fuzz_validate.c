/*
 * fuzz_validate.c - the validator spec parser (validator_parse) and the
 * validators it builds, run on a model's output.
 *
 * Input: the spec (JSON text), then optionally a NUL byte and the output
 * to check; without one, two fixed outputs are checked. Specs holding a
 * "command" validator are parsed but never checked: that validator runs
 * /bin/sh on its text, and a fuzzer must not run the commands it invents.
 * The output is capped at 4 KiB (a regex on a long text is slow, not
 * wrong).
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
    char err[256], why[256];
    if (validator_parse(spec, &v, err, sizeof err) == 0 &&
        !names_command(spec)) {
        (void)validator_kind(v);
        if (sep) {
            size_t n = size - spec_len - 1;
            char *text = fuzz_cstr(sep + 1, n > 4096 ? 4096 : n);
            validator_check(v, text, why, sizeof why);
            free(text);
        } else {
            validator_check(v, "{\"a\":1,\"b\":\"x\"}", why, sizeof why);
            validator_check(v, "hello 123", why, sizeof why);
        }
    }
    validator_destroy(&v);
    cJSON_Delete(spec);
    return 0;
}
