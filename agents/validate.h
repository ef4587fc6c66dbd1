/*
 * validate.h - output validators: does a model's answer pass?
 *
 * A validator is built from a JSON spec, the task's "validate" field or a
 * bucket's default in the agent configuration:
 *   "none"                                 always valid
 *   "json"                                 the output parses as JSON
 *   {"type":"json","required":{"name":"string","n":"number"}}
 *   {"type":"json_keys","keys":{...}}      same: an object with those keys,
 *                                          types string number integer
 *                                          boolean array object null any;
 *                                          "required":["a","b"] means any
 *   {"type":"json_schema","schema":{...}}  the output parses as JSON and
 *                                          passes the JSON Schema (the
 *                                          subset below)
 *   {"type":"regex","pattern":"^[0-9]+$","icase":false}
 *                                          POSIX extended regex (regcomp)
 *                                          must match somewhere; at most
 *                                          VALIDATE_REGEX_LEN bytes, and
 *                                          not too large once repetitions
 *                                          are expanded (below); no
 *                                          back-references (\1)
 *   {"type":"max_length","max":200}        at most max bytes (max in
 *                                          [0, VALIDATE_LENGTH_MAX])
 *   {"type":"command","cmd":"sh text","timeout_ms":10000}
 *                                          /bin/sh -c cmd gets the output
 *                                          on stdin; exit status 0 = valid;
 *                                          timeout_ms in [0, one day]
 *   [spec, spec, ...]                      all must pass, in order
 * JSON validators accept an answer wrapped in a Markdown code fence
 * (```json ... ```), as models often write it.
 *
 * JSON Schema subset (2020-12 semantics): type (a name or an array of
 * them; "integer" is a number without a fraction), properties, required,
 * additionalProperties (true, false or a schema), items (a schema: the
 * array form is refused, use prefixItems), prefixItems, minItems,
 * maxItems, uniqueItems, enum, const, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum (numbers), multipleOf (within a relative 1e-9),
 * minLength, maxLength (Unicode code points), pattern (POSIX extended,
 * through the regex validator's limits; unanchored; escapes of letters
 * and digits other than \w \W \s \S \b \B are refused, since glibc
 * reads \d as the letter d), anyOf, oneOf, allOf, not, true/false as
 * schemas, and $ref to "#", "#/$defs/NAME" or "#/definitions/NAME" ($defs
 * and definitions at the root only; recursion allowed; a $ref's sibling
 * keywords apply too). Annotations are ignored: title description default
 * examples $schema $id $comment format deprecated readOnly writeOnly strict
 * contentEncoding contentMediaType. Any other keyword is refused, naming
 * its path ("validate.schema.properties.age: keyword \"if\" is not
 * supported"): a check that silently does not happen is worse than an
 * error. A failure says where, by the answer's JSON path:
 * "$.items[2].price: must be a number, got string"; anyOf and oneOf name
 * their closest branch.
 *
 * Ownership: validator_parse returns a new validator (validator_destroy).
 * validator_check does not keep the text, and does not change the
 * validator: one validator may be checked from several threads at once
 * (regexec is thread-safe in glibc). The command validator forks;
 * it ignores SIGPIPE during the call (not thread-safe against other
 * threads changing SIGPIPE's disposition).
 */
#ifndef BURSAR_AGENTS_VALIDATE_H
#define BURSAR_AGENTS_VALIDATE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "policies/base.h"

/* Limits of a spec, refused with a message when exceeded. A regex's size
 * is estimated as regcomp expands it: an atom, operator or group counts
 * 1, and a repetition multiplies its operand (x+ twice, x{m,n} n times),
 * so that stacked repetitions ((x+)+)+... cannot make regcomp allocate
 * gigabytes. Two repetition operators in a row (x*?) and repetitions
 * nested deeper than VALIDATE_REGEX_NEST (((x?)*)?) are refused too:
 * regcomp's time grows steeply with them. */
#define VALIDATE_REGEX_LEN      1024   /* bytes of a pattern */
#define VALIDATE_REGEX_WEIGHT   2000   /* parts once expanded */
#define VALIDATE_REGEX_DEPTH    32     /* nested groups */
#define VALIDATE_REGEX_NEST     2      /* nested repetitions: (x*)+ */
#define VALIDATE_LENGTH_MAX     1e15   /* bytes, max_length's "max" */
#define VALIDATE_TIMEOUT_MAX_MS 8.64e7 /* ms, a command's timeout (a day) */

/* Limits of a json_schema validator. At parse time (refused with a
 * message naming the path): */
#define VALIDATE_SCHEMA_DEPTH 64    /* schemas nested in a schema */
#define VALIDATE_SCHEMA_NODES 10000 /* schemas (objects, booleans) in one */
#define VALIDATE_SCHEMA_PATTERN_WEIGHT                                         \
    8000 /* parts (VALIDATE_REGEX_WEIGHT's unit) of all its patterns */
/* At check time (the answer fails, its why naming the limit and where):
 * the stack a check uses is bounded by VALIDATE_SCHEMA_NEST, its time by
 * VALIDATE_SCHEMA_STEPS, whatever the schema and the answer. */
#define VALIDATE_SCHEMA_REFS 256  /* $refs followed along one path */
#define VALIDATE_SCHEMA_NEST 1024 /* schemas entered along one path */
#define VALIDATE_JSON_DEPTH  128  /* levels of the answer checked */
#define VALIDATE_SCHEMA_STEPS                                                  \
    1000000L /* schemas entered, item pairs                                    \
                compared, 16 bytes matched */

typedef struct validator validator_t;

/* spec NULL means "none". Returns 0 and *out, or BURSAR_EFORMAT with a message
 * in err (cap bytes) naming what is wrong. */
int validator_parse(const cJSON *spec, validator_t **out, char *err,
                    size_t cap);

/* The validator a request's "response_format" (OpenAI's structured
 * outputs) asks for, into *out: rf NULL, JSON null or {"type":"text"}:
 * 0 with *out NULL (nothing to check); {"type":"json_object"}: the "json"
 * validator; {"type":"json_schema","json_schema":{"name":NAME,
 * "schema":{...},"strict":BOOL,"description":TEXT}}: a json_schema
 * validator ("name" required, 1 to 64 bytes; "strict" is not needed to
 * check). Otherwise BURSAR_EFORMAT with err naming the path
 * ("response_format.json_schema.schema: must be an object"); unknown keys
 * are errors. */
int validator_from_response_format(const cJSON *rf, validator_t **out,
                                   char *err, size_t cap);

void validator_destroy(validator_t **self_p);

/* Returns 1 if text passes, 0 if not (why gets the reason, may be NULL).
 * A command that cannot be run or times out counts as a failure (0). */
int validator_check(const validator_t *self, const char *text, char *why,
                    size_t cap);

/* "none", "json", "json_keys", "regex", "max_length", "command", "all",
 * "json_schema". */
const char *validator_kind(const validator_t *self);

#endif
