/*
 * route.h - intent buckets: which bucket a task belongs to.
 *
 * A task's own "bucket" field wins. Otherwise the rules of the agent
 * configuration are tried in order and the first that matches names the
 * bucket; if none matches, the default bucket:
 *   {"default":"general",
 *    "rules":[{"bucket":"code","keywords":["def ","#include"]},
 *             {"bucket":"extraction","regex":"extract|json","icase":true},
 *             {"bucket":"long","min_length":4000}]}
 * A rule matches when every condition it has holds: keywords (any of them
 * occurs, case-insensitively), regex (POSIX extended, matches somewhere),
 * min_length / max_length (prompt bytes, inclusive). The prompt is the
 * concatenated content of the task's messages.
 *
 * Ownership: route_parse returns a new route_t (route_destroy); the string
 * route_bucket returns belongs to the route or to the caller's argument.
 */
#ifndef BURSAR_AGENTS_ROUTE_H
#define BURSAR_AGENTS_ROUTE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "policies/base.h"

typedef struct route route_t;

/* spec NULL: no rules, default bucket "default". Returns 0, or BURSAR_EFORMAT
 * with a message naming the rule in err. */
int route_parse(const cJSON *spec, route_t **out, char *err, size_t cap);
void route_destroy(route_t **self_p);

/* task_bucket if non-empty, else the first matching rule's bucket, else
 * the default. Never NULL. */
const char *route_bucket(const route_t *self, const char *task_bucket,
                         const char *prompt);

#endif
