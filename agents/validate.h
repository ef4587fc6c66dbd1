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
 *                                          must match somewhere
 *   {"type":"max_length","max":200}        at most max bytes
 *   {"type":"command","cmd":"sh text","timeout_ms":10000}
 *                                          /bin/sh -c cmd gets the output
 *                                          on stdin; exit status 0 = valid
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
