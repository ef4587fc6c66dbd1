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
 * Ownership: validator_parse returns a new validator (validator_destroy).
 * validator_check does not keep the text. The command validator forks;
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

typedef struct validator validator_t;

/* spec NULL means "none". Returns 0 and *out, or BURSAR_EFORMAT with a message
 * in err (cap bytes) naming what is wrong. */
int validator_parse(const cJSON *spec, validator_t **out, char *err,
                    size_t cap);

void validator_destroy(validator_t **self_p);

/* Returns 1 if text passes, 0 if not (why gets the reason, may be NULL).
 * A command that cannot be run or times out counts as a failure (0). */
int validator_check(const validator_t *self, const char *text, char *why,
                    size_t cap);

/* "none", "json", "json_keys", "regex", "max_length", "command", "all". */
const char *validator_kind(const validator_t *self);

#endif
