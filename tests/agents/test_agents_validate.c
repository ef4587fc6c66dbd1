/*
 * test_agents_validate.c - validators (agents/validate.h: json_schema and
 * response_format too), intent bucket
 * rules (agents/route.h) and the scenario reader (agents/simprov.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/route.h"
#include "agents/simprov.h"
#include "agents/validate.h"

static validator_t *
mk(const char *spec_json)
{
    cJSON *s = spec_json ? cJSON_Parse(spec_json) : NULL;
    if (spec_json)
        assert_non_null(s);
    validator_t *v = NULL;
    char err[256];
    int rc = validator_parse(s, &v, err, sizeof(err));
    cJSON_Delete(s);
    if (rc != 0)
        fail_msg("validator_parse(%s): %s", spec_json, err);
    return v;
}

static int
parse_fails(const char *spec_json, const char *needle)
{
    cJSON *s = cJSON_Parse(spec_json);
    validator_t *v = NULL;
    char err[256] = "";
    int rc = validator_parse(s, &v, err, sizeof(err));
    cJSON_Delete(s);
    assert_null(v);
    assert_non_null(strstr(err, needle));
    return rc != 0;
}

static int
ok(validator_t *v, const char *text)
{
    char why[256];
    return validator_check(v, text, why, sizeof(why));
}

static void
test_none_and_json(void **state)
{
    (void)state;
    validator_t *v = mk(NULL);
    assert_string_equal(validator_kind(v), "none");
    assert_true(ok(v, "anything"));
    validator_destroy(&v);
    assert_null(v);
    v = mk("\"none\"");
    assert_true(ok(v, ""));
    validator_destroy(&v);

    v = mk("\"json\"");
    assert_true(ok(v, "{\"a\":1}"));
    assert_true(ok(v, "[1,2]"));
    assert_true(ok(v, "```json\n{\"a\":1}\n```\n"));
    assert_false(ok(v, "{\"a\":"));
    assert_false(ok(v, "Sure! Here is the JSON"));
    char why[128];
    assert_false(validator_check(v, "nope", why, sizeof(why)));
    assert_string_equal(why, "output is not valid JSON");
    validator_destroy(&v);
}

static void
test_json_keys(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"json\",\"required\":{\"name\":\"string\","
                        "\"age\":\"integer\",\"tags\":\"array\"}}");
    assert_string_equal(validator_kind(v), "json_keys");
    assert_true(ok(v, "{\"name\":\"x\",\"age\":3,\"tags\":[]}"));
    char why[128];
    assert_false(
        validator_check(v, "{\"name\":\"x\",\"tags\":[]}", why, sizeof(why)));
    assert_non_null(strstr(why, "\"age\" missing"));
    assert_false(validator_check(v, "{\"name\":1,\"age\":3,\"tags\":[]}", why,
                                 sizeof(why)));
    assert_non_null(strstr(why, "wrong type"));
    assert_false(ok(v, "{\"name\":\"x\",\"age\":3.5,\"tags\":[]}"));
    assert_false(ok(v, "[1]"));
    validator_destroy(&v);
    v = mk("{\"type\":\"json_keys\",\"keys\":[\"a\",\"b\"]}");
    assert_true(ok(v, "{\"a\":null,\"b\":{}}"));
    assert_false(ok(v, "{\"a\":1}"));
    validator_destroy(&v);
    assert_true(parse_fails("{\"type\":\"json\",\"keys\":{\"a\":\"str\"}}",
                            "validate.keys.a"));
    assert_true(parse_fails("{\"type\":\"json_keys\"}", "needs"));
}

static void
test_regex_and_length(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"regex\",\"pattern\":\"^[0-9]+$\"}");
    assert_true(ok(v, "12345"));
    assert_false(ok(v, "12a45"));
    validator_destroy(&v);
    v = mk("{\"type\":\"regex\",\"pattern\":\"yes\",\"icase\":true}");
    assert_true(ok(v, "well, YES."));
    validator_destroy(&v);
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"(\"}",
                            "validate.pattern"));
    v = mk("{\"type\":\"max_length\",\"max\":5}");
    assert_true(ok(v, "12345"));
    assert_false(ok(v, "123456"));
    validator_destroy(&v);
    /* all of a list, in order */
    v = mk("[\"json\",{\"type\":\"max_length\",\"max\":8}]");
    assert_string_equal(validator_kind(v), "all");
    assert_true(ok(v, "{\"a\":1}"));
    assert_false(ok(v, "{\"a\":12345}"));
    assert_false(ok(v, "x"));
    validator_destroy(&v);
    assert_true(parse_fails("\"yaml\"", "unknown validator"));
    assert_true(parse_fails("{\"type\":\"max_length\"}", "validate.max"));
}

static void
test_command(void **state)
{
    (void)state;
    validator_t *v = mk("{\"type\":\"command\",\"cmd\":\"grep -q OK\"}");
    assert_true(ok(v, "all OK here"));
    char why[128];
    assert_false(validator_check(v, "nope", why, sizeof(why)));
    assert_non_null(strstr(why, "status 1"));
    validator_destroy(&v);
    /* a command that never reads its input still decides */
    v = mk("{\"type\":\"command\",\"cmd\":\"exit 0\"}");
    char *big = malloc(1 << 20);
    memset(big, 'x', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    assert_true(ok(v, big));
    free(big);
    validator_destroy(&v);
    /* the command does not see the agent's API keys, but has a PATH */
    setenv("OPENAI_API_KEY", "sk-test-secret", 1);
    v = mk("{\"type\":\"command\",\"cmd\":"
           "\"test -z \\\"$OPENAI_API_KEY\\\" && test -n \\\"$PATH\\\"\"}");
    assert_true(ok(v, "x"));
    validator_destroy(&v);
    unsetenv("OPENAI_API_KEY");
    v = mk("{\"type\":\"command\",\"cmd\":\"sleep 5\",\"timeout_ms\":200}");
    assert_false(validator_check(v, "x", why, sizeof(why)));
    assert_string_equal(why, "command timed out");
    validator_destroy(&v);
}

/* ------------------------------------------------------- json_schema */

/* A json_schema validator of the schema text. */
static validator_t *
mk_schema(const char *schema_json)
{
    char *spec = malloc(strlen(schema_json) + 64);
    sprintf(spec, "{\"type\":\"json_schema\",\"schema\":%s}", schema_json);
    validator_t *v = mk(spec);
    free(spec);
    assert_string_equal(validator_kind(v), "json_schema");
    return v;
}

/* text fails v with exactly the why want ("" : passes). */
static void
check_why(validator_t *v, const char *text, const char *want)
{
    char why[512] = "x";
    int r = validator_check(v, text, why, sizeof why);
    if (r != (*want == '\0') || strcmp(why, want) != 0)
        fail_msg("%s: got %d \"%s\", want \"%s\"", text, r, why, want);
}

/* The schema text is refused with exactly err. */
static void
schema_refused(const char *schema_json, const char *want)
{
    char *spec = malloc(strlen(schema_json) + 64);
    sprintf(spec, "{\"type\":\"json_schema\",\"schema\":%s}", schema_json);
    cJSON *s = cJSON_Parse(spec);
    if (!s)
        fail_msg("not JSON: %s", spec);
    validator_t *v = NULL;
    char err[512] = "";
    int rc = validator_parse(s, &v, err, sizeof err);
    cJSON_Delete(s);
    free(spec);
    assert_null(v);
    if (rc != BURSAR_EFORMAT || strcmp(err, want) != 0)
        fail_msg("%s: got %d \"%s\", want \"%s\"", schema_json, rc, err, want);
}

/* OpenAI's structured-output examples: nested objects with required and
 * additionalProperties false, arrays of objects, enums, anyOf with null. */
static void
test_schema_openai(void **state)
{
    (void)state;
    validator_t *v = mk_schema(
        "{\"type\":\"object\",\"properties\":{"
        "\"steps\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"properties\":{\"explanation\":{\"type\":\"string\"},"
        "\"output\":{\"type\":\"string\"}},"
        "\"required\":[\"explanation\",\"output\"],"
        "\"additionalProperties\":false}},"
        "\"final_answer\":{\"type\":\"string\"}},"
        "\"required\":[\"steps\",\"final_answer\"],"
        "\"additionalProperties\":false}");
    const char *good = "{\"steps\":[{\"explanation\":\"8x = -30\",\"output\":"
                       "\"x = -3.75\"}],\"final_answer\":\"x = -3.75\"}";
    check_why(v, good, "");
    check_why(v, "```json\n{\"steps\":[],\"final_answer\":\"\"}\n```", "");
    check_why(v,
              "{\"steps\":[{\"explanation\":\"a\",\"output\":\"b\"},"
              "{\"explanation\":\"c\",\"output\":4}],\"final_answer\":\"x\"}",
              "$.steps[1].output: must be a string, got number");
    check_why(v, "{\"steps\":[]}",
              "$: missing required property \"final_answer\"");
    check_why(v, "{\"steps\":[{\"output\":\"b\"}],\"final_answer\":\"x\"}",
              "$.steps[0]: missing required property \"explanation\"");
    check_why(v, "{\"steps\":[],\"final_answer\":\"x\",\"note\":1}",
              "$.note: property not allowed (additionalProperties is false)");
    check_why(v, "{\"steps\":{},\"final_answer\":\"x\"}",
              "$.steps: must be an array, got object");
    check_why(v, "[]", "$: must be an object, got array");
    check_why(v, "Sure! {\"steps\":[]}", "output is not valid JSON");
    validator_destroy(&v);

    /* the gateway's case: an array of objects, the price a string */
    v = mk_schema("{\"type\":\"object\",\"properties\":{\"items\":{\"type\":"
                  "\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                  "\"name\":{\"type\":\"string\"},\"price\":{\"type\":"
                  "\"number\",\"minimum\":0}},\"required\":[\"name\","
                  "\"price\"]}}},\"required\":[\"items\"]}");
    check_why(v,
              "{\"items\":[{\"name\":\"a\",\"price\":1},{\"name\":\"b\","
              "\"price\":0},{\"name\":\"c\",\"price\":\"3.50\"}]}",
              "$.items[2].price: must be a number, got string");
    check_why(v, "{\"items\":[{\"name\":\"a\",\"price\":-1}]}",
              "$.items[0].price: must be >= 0, got -1");
    check_why(v, "{\"items\":[{\"name\":\"a\",\"price\":1,\"extra\":[]}]}",
              ""); /* additional properties allowed by default */
    validator_destroy(&v);

    /* enums, a nullable field two ways, and a property name to quote */
    v = mk_schema(
        "{\"type\":\"object\",\"properties\":{"
        "\"location\":{\"type\":\"string\",\"description\":\"a city\"},"
        "\"unit\":{\"type\":[\"string\",\"null\"],\"enum\":[\"F\",\"C\","
        "null]},"
        "\"owner\":{\"anyOf\":[{\"type\":\"object\",\"properties\":{"
        "\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],"
        "\"additionalProperties\":false},{\"type\":\"null\"}]},"
        "\"first name\":{\"type\":\"string\"}},"
        "\"required\":[\"location\",\"unit\",\"owner\"],"
        "\"additionalProperties\":false}");
    check_why(v, "{\"location\":\"Paris\",\"unit\":\"C\",\"owner\":null}", "");
    check_why(v,
              "{\"location\":\"Paris\",\"unit\":null,\"owner\":{\"name\":"
              "\"Ann\"},\"first name\":\"Ann\"}",
              "");
    check_why(v, "{\"location\":\"Paris\",\"unit\":\"K\",\"owner\":null}",
              "$.unit: must be one of \"F\", \"C\", null");
    check_why(v, "{\"location\":\"Paris\",\"unit\":1,\"owner\":null}",
              "$.unit: must be a string or null, got number");
    check_why(v,
              "{\"location\":\"Paris\",\"unit\":\"F\",\"owner\":{\"name\":"
              "7}}",
              "$.owner: matches no schema of anyOf (closest, [0]: "
              "$.owner.name: must be a string, got number)");
    check_why(v, "{\"location\":\"Paris\",\"unit\":\"F\",\"owner\":\"Ann\"}",
              "$.owner: matches no schema of anyOf (closest, [0]: must be "
              "an object, got string)");
    check_why(v,
              "{\"location\":\"Paris\",\"unit\":\"F\",\"owner\":null,"
              "\"first name\":false}",
              "$[\"first name\"]: must be a string, got boolean");
    validator_destroy(&v);
}

/* Recursion through $defs (a linked list) and "#" (OpenAI's UI tree). */
static void
test_schema_recursive(void **state)
{
    (void)state;
    validator_t *v = mk_schema(
        "{\"type\":\"object\",\"properties\":{\"linked_list\":{\"$ref\":"
        "\"#/$defs/linked_list_node\"}},\"$defs\":{\"linked_list_node\":{"
        "\"type\":\"object\",\"properties\":{\"value\":{\"type\":\"number\"},"
        "\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/linked_list_node\"},"
        "{\"type\":\"null\"}]}},\"additionalProperties\":false,"
        "\"required\":[\"next\",\"value\"]}},\"additionalProperties\":false,"
        "\"required\":[\"linked_list\"]}");
    check_why(v,
              "{\"linked_list\":{\"value\":1,\"next\":{\"value\":2,\"next\":"
              "{\"value\":3,\"next\":null}}}}",
              "");
    check_why(v,
              "{\"linked_list\":{\"value\":1,\"next\":{\"value\":2,\"next\":"
              "{\"value\":\"x\",\"next\":null}}}}",
              "$.linked_list.next: matches no schema of anyOf (closest, [0]: "
              "$.linked_list.next.next: matches no schema of anyOf (closest, "
              "[0]: $.linked_list.next.next.value: must be a number, got "
              "string))");
    check_why(v, "{\"linked_list\":{\"value\":1}}",
              "$.linked_list: missing required property \"next\"");
    /* a list of 100: within every limit */
    char *list = malloc(100 * 24 + 64), *p = list;
    p += sprintf(p, "{\"linked_list\":");
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "{\"value\":%d,\"next\":", i);
    p += sprintf(p, "null");
    for (int i = 0; i < 100; i++)
        *p++ = '}';
    sprintf(p, "}");
    check_why(v, list, "");
    free(list);
    validator_destroy(&v);

    v = mk_schema(
        "{\"type\":\"object\",\"properties\":{\"type\":{\"type\":\"string\","
        "\"enum\":[\"div\",\"button\",\"header\",\"section\",\"field\","
        "\"form\"]},\"label\":{\"type\":\"string\"},\"children\":{\"type\":"
        "\"array\",\"items\":{\"$ref\":\"#\"}},\"attributes\":{\"type\":"
        "\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"name\":{"
        "\"type\":\"string\"},\"value\":{\"type\":\"string\"}},\"required\":"
        "[\"name\",\"value\"],\"additionalProperties\":false}}},"
        "\"required\":[\"type\",\"label\",\"children\",\"attributes\"],"
        "\"additionalProperties\":false}");
    check_why(v,
              "{\"type\":\"form\",\"label\":\"Sign up\",\"attributes\":[],"
              "\"children\":[{\"type\":\"field\",\"label\":\"Name\","
              "\"children\":[],\"attributes\":[{\"name\":\"type\",\"value\":"
              "\"text\"}]},{\"type\":\"button\",\"label\":\"Go\",\"children\":"
              "[],\"attributes\":[]}]}",
              "");
    check_why(v,
              "{\"type\":\"form\",\"label\":\"x\",\"attributes\":[],"
              "\"children\":[{\"type\":\"field\",\"label\":\"x\","
              "\"children\":[{\"type\":\"span\",\"label\":\"x\",\"children\":"
              "[],\"attributes\":[]}],\"attributes\":[]}]}",
              "$.children[0].children[0].type: must be one of \"div\", "
              "\"button\", \"header\", \"section\", \"field\", \"form\"");
    validator_destroy(&v);

    /* a tree through "definitions" (draft 7's name), NAME escaped ~1 */
    v = mk_schema("{\"definitions\":{\"a/b\":{\"type\":\"object\","
                  "\"properties\":{\"kids\":{\"type\":\"array\",\"items\":{"
                  "\"$ref\":\"#/definitions/a~1b\"}}}}},"
                  "\"$ref\":\"#/definitions/a~1b\"}");
    check_why(v, "{\"kids\":[{\"kids\":[]},{\"kids\":[{}]}]}", "");
    check_why(v, "{\"kids\":[{\"kids\":[7]}]}",
              "$.kids[0].kids[0]: must be an object, got number");
    validator_destroy(&v);
}

/* Every supported keyword, passing and failing. */
static void
test_schema_keywords(void **state)
{
    (void)state;
    validator_t *v = mk_schema(
        "{\"type\":\"integer\",\"minimum\":1,\"exclusiveMaximum\":10,"
        "\"multipleOf\":3,\"title\":\"t\",\"default\":3,\"examples\":[3],"
        "\"$comment\":\"c\",\"deprecated\":false}");
    check_why(v, "3", "");
    check_why(v, "9.0", ""); /* integer: no fraction */
    check_why(v, "0", "$: must be >= 1, got 0");
    check_why(v, "12", "$: must be < 10, got 12");
    check_why(v, "4", "$: must be a multiple of 3, got 4");
    check_why(v, "4.5", "$: must be an integer, got number");
    check_why(v, "\"3\"", "$: must be an integer, got string");
    validator_destroy(&v);
    v = mk_schema("{\"maximum\":1.5,\"exclusiveMinimum\":0,\"multipleOf\":"
                  "0.01}");
    check_why(v, "0.07", ""); /* 7.000000000000001 times 0.01 */
    check_why(v, "0", "$: must be > 0, got 0");
    check_why(v, "1.6", "$: must be <= 1.5, got 1.6");
    check_why(v, "0.075", "$: must be a multiple of 0.01, got 0.075");
    check_why(v, "\"any string\"", ""); /* number keywords: numbers only */
    validator_destroy(&v);

    /* lengths in code points: "héllo" is 5 of them, 6 bytes */
    v = mk_schema("{\"type\":\"string\",\"minLength\":5,\"maxLength\":5,"
                  "\"pattern\":\"^[a-z\xc3\xa9]+$\",\"format\":\"email\"}");
    check_why(v, "\"h\xc3\xa9llo\"", "");
    check_why(v, "\"h\xc3\xa9llo!\"", "$: must be at most 5 characters, got 6");
    check_why(v, "\"h\xc3\xa9l\"", "$: must be at least 5 characters, got 3");
    check_why(v, "\"HELLO\"", "$: does not match the pattern ^[a-z\xc3\xa9]+$");
    validator_destroy(&v);
    v = mk_schema("{\"pattern\":\"[0-9]{3}\\\\s\\\\w\"}"); /* unanchored */
    check_why(v, "\"call 555 x now\"", "");
    check_why(v, "\"call 55 x\"",
              "$: does not match the pattern [0-9]{3}\\s\\w");
    validator_destroy(&v);

    /* arrays: tuples, items false, counts, unique */
    v = mk_schema("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},"
                  "{\"type\":\"integer\"}],\"items\":false,\"minItems\":1}");
    check_why(v, "[\"a\",2]", "");
    check_why(v, "[\"a\"]", "");
    check_why(v, "[]", "$: must have at least 1 items, got 0");
    check_why(v, "[\"a\",2,3]",
              "$: must have at most 2 items (items is false), got 3");
    check_why(v, "[\"a\",\"b\"]", "$[1]: must be an integer, got string");
    validator_destroy(&v);
    v = mk_schema("{\"type\":\"array\",\"items\":{\"type\":[\"object\","
                  "\"number\"]},\"maxItems\":3,\"uniqueItems\":true}");
    check_why(v, "[1,{\"a\":1},{\"a\":2}]", "");
    check_why(v, "[1,{\"a\":1},{\"a\":1.0}]",
              "$: items 1 and 2 are equal (uniqueItems)");
    check_why(v, "[1,2,3,4]", "$: must have at most 3 items, got 4");
    validator_destroy(&v);

    /* const, oneOf, allOf, not, boolean schemas, $ref with siblings */
    v = mk_schema(
        "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{"
        "\"const\":\"circle\"},\"r\":{\"type\":\"number\"}},\"required\":["
        "\"kind\",\"r\"]},{\"type\":\"object\",\"properties\":{\"kind\":{"
        "\"const\":\"square\"},\"side\":{\"type\":\"number\"}},"
        "\"required\":[\"kind\",\"side\"]}]}");
    check_why(v, "{\"kind\":\"circle\",\"r\":1}", "");
    check_why(v, "{\"kind\":\"square\",\"side\":1}", "");
    check_why(v, "{\"kind\":\"circle\",\"side\":1}",
              "$: matches no schema of oneOf (closest, [0]: missing required "
              "property \"r\")");
    check_why(v, "{\"kind\":\"oval\",\"r\":1}",
              "$: matches no schema of oneOf (closest, [0]: $.kind: must be "
              "\"circle\")");
    validator_destroy(&v);
    v = mk_schema("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}");
    check_why(v, "2.5", "");
    check_why(v, "2",
              "$: matches schemas [0] and [1] of oneOf (must match exactly "
              "one)");
    validator_destroy(&v);
    v = mk_schema("{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":2}],"
                  "\"not\":{\"const\":\"no\"}}");
    check_why(v, "\"ok\"", "");
    check_why(v, "\"yes\"", "$: must be at most 2 characters, got 3");
    check_why(v, "1", "$: must be a string, got number");
    check_why(v, "\"no\"", "$: must not match the schema of \"not\"");
    validator_destroy(&v);
    v = mk_schema("{\"properties\":{\"a\":true,\"b\":false,\"c\":{\"$ref\":"
                  "\"#/$defs/n\",\"maximum\":5}},\"additionalProperties\":{"
                  "\"type\":\"boolean\"},\"$defs\":{\"n\":{\"type\":"
                  "\"integer\"}}}");
    check_why(v, "{\"a\":[1],\"c\":5,\"d\":true}", "");
    check_why(v, "{\"b\":1}", "$.b: not allowed (the schema is false)");
    check_why(v, "{\"c\":6}", "$.c: must be <= 5, got 6");
    check_why(v, "{\"c\":1.5}", "$.c: must be an integer, got number");
    check_why(v, "{\"d\":\"x\"}", "$.d: must be a boolean, got string");
    validator_destroy(&v);
}

/* What is not checked is refused, naming the keyword and its path. */
static void
test_schema_refused(void **state)
{
    (void)state;
    schema_refused("{\"type\":\"object\",\"properties\":{\"age\":{\"type\":"
                   "\"integer\",\"if\":{\"minimum\":18}}}}",
                   "validate.schema.properties.age: keyword \"if\" is not "
                   "supported");
    schema_refused("{\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":"
                   "true}}}",
                   "validate.schema.properties.a: keyword \"nullable\" is not "
                   "supported");
    schema_refused("{\"patternProperties\":{}}",
                   "validate.schema: keyword \"patternProperties\" is not "
                   "supported");
    schema_refused("{\"anyOf\":[{\"type\":\"null\"},{\"minProperties\":1}]}",
                   "validate.schema.anyOf[1]: keyword \"minProperties\" is not "
                   "supported");
    schema_refused("{\"required\":[\"a\"],\"requried\":[\"b\"]}",
                   "validate.schema: keyword \"requried\" is not supported");
    schema_refused("{\"type\":\"strnig\"}",
                   "validate.schema.type: must be a type name or a non-empty "
                   "array of them (string number integer boolean array object "
                   "null)");
    schema_refused("{\"type\":[]}",
                   "validate.schema.type: must be a type name or a non-empty "
                   "array of them (string number integer boolean array object "
                   "null)");
    schema_refused("{\"items\":[{\"type\":\"string\"}]}",
                   "validate.schema.items: must be a schema (the array form of "
                   "draft 7 is not supported: use prefixItems)");
    schema_refused("{\"properties\":{\"a\":{\"minLength\":-1}}}",
                   "validate.schema.properties.a.minLength: must be a whole "
                   "number in [0, 1e15]");
    schema_refused("{\"maxItems\":1.5}",
                   "validate.schema.maxItems: must be a whole number in [0, "
                   "1e15]");
    schema_refused("{\"multipleOf\":0}",
                   "validate.schema.multipleOf: must be a number above 0");
    schema_refused("{\"exclusiveMinimum\":true}",
                   "validate.schema.exclusiveMinimum: must be a number (the "
                   "boolean form of draft 4 is not supported)");
    schema_refused("{\"enum\":[]}", "validate.schema.enum: must be a non-empty "
                                    "array");
    schema_refused("{\"anyOf\":{}}", "validate.schema.anyOf: must be a "
                                     "non-empty array of schemas");
    schema_refused("{\"properties\":{\"a\":1}}",
                   "validate.schema.properties.a: must be a schema (an object, "
                   "true or false)");
    schema_refused("{\"required\":[1]}",
                   "validate.schema.required: must be an array of property "
                   "names");
    /* cJSON keeps a repeated key: the second would replace the first */
    schema_refused("{\"properties\":{},\"title\":\"a\",\"properties\":{\"a\":"
                   "false}}",
                   "validate.schema: keyword \"properties\" is given twice");
    schema_refused("{\"minimum\":1,\"minimum\":2}",
                   "validate.schema: keyword \"minimum\" is given twice");
    schema_refused("{\"uniqueItems\":1}",
                   "validate.schema.uniqueItems: must be true or false");
    /* patterns: ECMA-262 escapes glibc reads otherwise, the regex limits */
    schema_refused("{\"properties\":{\"zip\":{\"pattern\":\"^\\\\d{5}$\"}}}",
                   "validate.schema.properties.zip.pattern: \"\\d\" is not "
                   "POSIX extended syntax (write [0-9])");
    schema_refused("{\"pattern\":\"^\\\\p{L}+$\"}",
                   "validate.schema.pattern: \"\\p\" is not POSIX extended "
                   "syntax");
    schema_refused("{\"pattern\":\"(a*)*\\\\1b\"}",
                   "validate.schema.pattern: \"\\1\" is not POSIX extended "
                   "syntax");
    schema_refused("{\"pattern\":\"x**\"}",
                   "validate.schema.pattern: two repetition operators in a "
                   "row (at most 32 nested groups, 2 nested repetitions)");
    schema_refused("{\"pattern\":\"(\"}",
                   "validate.schema.pattern: Unmatched ( or \\(");
    /* $ref: local only, defined, $defs at the root only */
    schema_refused("{\"$ref\":\"https://example.com/s.json\"}",
                   "validate.schema.$ref: \"https://example.com/s.json\" is "
                   "not supported (only \"#\", \"#/$defs/NAME\" and "
                   "\"#/definitions/NAME\")");
    schema_refused("{\"properties\":{\"n\":{\"$ref\":\"#/$defs/nod\"}},"
                   "\"$defs\":{\"node\":{}}}",
                   "validate.schema.properties.n.$ref: \"#/$defs/nod\" names "
                   "no schema of the root's $defs");
    schema_refused("{\"$ref\":\"#/properties/a\"}",
                   "validate.schema.$ref: \"#/properties/a\" is not supported "
                   "(only \"#\", \"#/$defs/NAME\" and \"#/definitions/NAME\")");
    schema_refused("{\"properties\":{\"a\":{\"$defs\":{}}}}",
                   "validate.schema.properties.a.$defs: only supported at the "
                   "root of the schema");
    /* the spec itself */
    schema_refused("[]", "validate.schema: must be an object");
    assert_true(parse_fails("{\"type\":\"json_schema\"}",
                            "validate.schema: must be an object"));
    assert_true(parse_fails("{\"type\":\"json_schema\",\"schema\":{},"
                            "\"strict\":true}",
                            "validate.strict: unknown key"));
}

/* Limits: a deep or hostile answer, or a hostile schema, fails cleanly. */
static void
test_schema_limits(void **state)
{
    (void)state;
    /* 300 nested arrays against a recursive schema: over VALIDATE_JSON_DEPTH */
    validator_t *v = mk_schema("{\"type\":\"array\",\"items\":{\"$ref\":"
                               "\"#\"}}");
    char *deep = malloc(200002);
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    deep[600] = '\0';
    char why[512];
    assert_false(validator_check(v, deep, why, sizeof why));
    assert_non_null(strstr(why, "]: nested deeper than 128 levels"));
    assert_int_equal(strncmp(why, "$[0][0]", 7), 0);
    assert_true(strlen(why) < 200); /* the path cut in its middle */
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    check_why(v, deep, "");
    /* beyond cJSON's nesting limit: not JSON, no crash */
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    deep[200000] = '\0';
    check_why(v, deep, "output is not valid JSON");
    validator_destroy(&v);
    free(deep);

    /* $refs in a cycle, and a "not" around one: fail, never pass */
    v = mk_schema("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":"
                  "\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}");
    check_why(v, "1",
              "$: more than 256 $refs followed in a row (recursion limit)");
    validator_destroy(&v);
    v = mk_schema("{\"not\":{\"$ref\":\"#\"}}");
    check_why(v, "1",
              "$: more than 256 $refs followed in a row (recursion limit)");
    validator_destroy(&v);
    v = mk_schema("{\"$defs\":{\"a\":{\"allOf\":[{},{\"allOf\":[{\"allOf\":"
                  "[{\"anyOf\":[{\"$ref\":\"#/$defs/a\"}]}]}]}]}},\"$ref\":"
                  "\"#/$defs/a\"}");
    check_why(v, "1",
              "$: the check enters schemas nested deeper than 1024 (through "
              "$refs and combinators)");
    validator_destroy(&v);

    /* two branches each recursing: 2^40 paths, cut by the step budget */
    v = mk_schema("{\"$defs\":{\"a\":{\"anyOf\":[{\"type\":\"array\","
                  "\"items\":{\"$ref\":\"#/$defs/a\"}},{\"type\":\"array\","
                  "\"items\":{\"$ref\":\"#/$defs/a\"}}]}},\"$ref\":"
                  "\"#/$defs/a\"}");
    char nest[128];
    memset(nest, '[', 40);
    nest[40] = '1';
    memset(nest + 41, ']', 40);
    nest[81] = '\0';
    assert_false(validator_check(v, nest, why, sizeof why));
    assert_non_null(strstr(why, "the check takes more than 1000000 steps"));
    validator_destroy(&v);

    /* parse-time limits: depth, number of schemas, patterns' size */
    size_t cap = 80 * 16 + 64;
    char *s = malloc(cap), *p = s;
    for (int i = 0; i < 65; i++)
        p += sprintf(p, "{\"not\":");
    p += sprintf(p, "{}");
    for (int i = 0; i < 65; i++)
        *p++ = '}';
    *p = '\0';
    char *spec = malloc(cap + 64);
    sprintf(spec, "{\"type\":\"json_schema\",\"schema\":%s}", s);
    assert_true(parse_fails(spec, "schemas nested deeper than 64"));
    free(spec);
    free(s);
    cJSON *big = cJSON_CreateObject(), *props = cJSON_CreateObject();
    for (int i = 0; i < VALIDATE_SCHEMA_NODES; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%d", i);
        cJSON_AddItemToObject(props, k, cJSON_CreateObject());
    }
    cJSON_AddItemToObject(big, "properties", props);
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "type", "json_schema");
    cJSON_AddItemToObject(w, "schema", big);
    char err[256];
    assert_int_equal(validator_parse(w, &v, err, sizeof err), BURSAR_EFORMAT);
    assert_string_equal(err, "validate.schema.properties.p9999: more than "
                             "10000 schemas");
    cJSON_DeleteItemFromObject(props, "p9999");
    assert_int_equal(validator_parse(w, &v, err, sizeof err), 0);
    validator_destroy(&v);
    cJSON_Delete(w);
    /* five patterns of weight ~1800 (each within VALIDATE_REGEX_WEIGHT) */
    schema_refused("{\"anyOf\":[{\"pattern\":\"a{1800}\"},{\"pattern\":"
                   "\"b{1800}\"},{\"pattern\":\"c{1800}\"},{\"pattern\":"
                   "\"d{1800}\"},{\"pattern\":\"e{1800}\"}]}",
                   "validate.schema.anyOf[4].pattern: the schema's patterns "
                   "are too large together (more than 8000 parts once "
                   "expanded)");
}

/* A request's response_format into a validator. */
static void
test_response_format(void **state)
{
    (void)state;
    validator_t *v = (validator_t *)1;
    char err[256];
    assert_int_equal(validator_from_response_format(NULL, &v, err, sizeof err),
                     0);
    assert_null(v);
    static const char *const none[] = {"{\"type\":\"text\"}", "null"};
    for (size_t i = 0; i < 2; i++) {
        cJSON *rf = cJSON_Parse(none[i]);
        v = (validator_t *)1;
        assert_int_equal(
            validator_from_response_format(rf, &v, err, sizeof err), 0);
        assert_null(v);
        cJSON_Delete(rf);
    }
    cJSON *rf = cJSON_Parse("{\"type\":\"json_object\"}");
    assert_int_equal(validator_from_response_format(rf, &v, err, sizeof err),
                     0);
    cJSON_Delete(rf);
    assert_string_equal(validator_kind(v), "json");
    check_why(v, "{\"a\":1}", "");
    check_why(v, "{\"a\":", "output is not valid JSON");
    validator_destroy(&v);

    rf = cJSON_Parse(
        "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"weather\","
        "\"description\":\"d\",\"strict\":true,\"schema\":{\"type\":"
        "\"object\",\"properties\":{\"temp\":{\"type\":\"number\"}},"
        "\"required\":[\"temp\"],\"additionalProperties\":false}}}");
    assert_int_equal(validator_from_response_format(rf, &v, err, sizeof err),
                     0);
    cJSON_Delete(rf);
    assert_string_equal(validator_kind(v), "json_schema");
    check_why(v, "{\"temp\":21.5}", "");
    check_why(v, "```\n{\"temp\":\"21\"}\n```",
              "$.temp: must be a number, got string");
    validator_destroy(&v);

    static const char *const bad[][2] = {
        {"{\"type\":\"xml\"}",
         "response_format.type: must be one of text, json_object, "
         "json_schema"},
        {"{}", "response_format.type: must be one of text, json_object, "
               "json_schema"},
        {"\"json_object\"", "response_format: must be an object"},
        {"{\"type\":\"json_schema\"}",
         "response_format.json_schema: must be an object"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
         "\"schema\":\"{}\"}}",
         "response_format.json_schema.schema: must be an object"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}",
         "response_format.json_schema.schema: must be an object"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}",
         "response_format.json_schema.name: must be a string of 1 to 64 "
         "bytes"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
         "\"strict\":\"yes\",\"schema\":{}}}",
         "response_format.json_schema.strict: must be true or false"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
         "\"schema\":{},\"schemas\":{}}}",
         "response_format.json_schema.schemas: unknown key"},
        {"{\"type\":\"text\",\"json_schema\":{}}",
         "response_format.json_schema: unknown key"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
         "\"schema\":{\"properties\":{\"age\":{\"if\":{}}}}}}",
         "response_format.json_schema.schema.properties.age: keyword \"if\" "
         "is not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rf = cJSON_Parse(bad[i][0]);
        assert_non_null(rf);
        v = (validator_t *)1;
        err[0] = '\0';
        int rc = validator_from_response_format(rf, &v, err, sizeof err);
        cJSON_Delete(rf);
        assert_null(v);
        if (rc != BURSAR_EFORMAT || strcmp(err, bad[i][1]) != 0)
            fail_msg("%s: got %d \"%s\"", bad[i][0], rc, err);
    }
}

static void
test_route(void **state)
{
    (void)state;
    cJSON *spec = cJSON_Parse(
        "{\"default\":\"chat\",\"rules\":["
        "{\"bucket\":\"code\",\"keywords\":[\"#include\",\"def \"]},"
        "{\"bucket\":\"extraction\",\"regex\":\"extract|json\","
        "\"icase\":true},"
        "{\"bucket\":\"summarize\",\"min_length\":50},"
        "{\"bucket\":\"never\",\"keywords\":[\"x\"],\"max_length\":0}]}");
    route_t *r = NULL;
    char err[256];
    assert_int_equal(route_parse(spec, &r, err, sizeof(err)), 0);
    cJSON_Delete(spec);
    assert_string_equal(route_bucket(r, "mine", "def f():"), "mine");
    assert_string_equal(route_bucket(r, NULL, "write DEF f(): ..."), "code");
    assert_string_equal(route_bucket(r, "", "Extract the names"), "extraction");
    /* first match wins: code before extraction */
    assert_string_equal(route_bucket(r, NULL, "def to_json(x):"), "code");
    assert_string_equal(
        route_bucket(r, NULL,
                     "a long text a long text a long text a long text a long"),
        "summarize");
    assert_string_equal(route_bucket(r, NULL, "hello"), "chat");
    route_destroy(&r);
    assert_null(r);
    assert_int_equal(route_parse(NULL, &r, err, sizeof(err)), 0);
    assert_string_equal(route_bucket(r, NULL, "x"), "default");
    route_destroy(&r);
    spec = cJSON_Parse("{\"rules\":[{\"keywords\":[\"a\"]}]}");
    assert_int_equal(route_parse(spec, &r, err, sizeof(err)), BURSAR_EFORMAT);
    assert_non_null(strstr(err, "routing.rules[0].bucket"));
    cJSON_Delete(spec);
}

/* A misspelt key or a value of the wrong type is an error naming its path:
 * a rule whose "keyword" went unread would match every prompt. */
static void
test_route_strict(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"rules\":[{\"bucket\":\"c\",\"keyword\":[\"a\"]}]}",
         "routing.rules[0].keyword: unknown key"},
        {"{\"defualt\":\"chat\"}", "routing.defualt: unknown key"},
        {"{\"default\":1}", "routing.default: must be a string"},
        {"{\"rules\":{}}", "routing.rules: must be an array"},
        {"{\"rules\":[{\"bucket\":\"a\"},{\"bucket\":\"b\","
         "\"min_length\":\"9\"}]}",
         "routing.rules[1].min_length: must be a number"},
        {"{\"rules\":[{\"bucket\":\"a\",\"regex\":\"x\",\"icase\":1}]}",
         "routing.rules[0].icase: must be true or false"},
        {"{\"rules\":[{\"bucket\":\"a\",\"keywords\":\"x\"}]}",
         "routing.rules[0].keywords: must be an array"},
        {"{\"rules\":[7]}", "routing.rules[0]: must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *spec = cJSON_Parse(bad[i][0]);
        route_t *r = NULL;
        char err[256] = "";
        assert_int_equal(route_parse(spec, &r, err, sizeof(err)),
                         BURSAR_EFORMAT);
        assert_null(r);
        if (strcmp(err, bad[i][1]) != 0)
            fail_msg("%s: got \"%s\"", bad[i][0], err);
        cJSON_Delete(spec);
    }
}

static void
test_scenario(void **state)
{
    (void)state;
    simprov_t *s = NULL;
    char err[256];
    const char *json =
        "{\"seed\":3,\"tasks\":{\"count\":1000,\"buckets\":{\"a\":3,\"b\":1}},"
        "\"models\":{\"good\":{\"success\":0.9,\"success_by_bucket\":"
        "{\"b\":0.1},\"latency_ms\":100,\"tokens_in\":1000,\"tokens_out\":"
        "100,\"outages\":[{\"from\":10,\"to\":20}],"
        "\"changes\":[{\"at\":500,\"success\":0.2}]},"
        "\"fixed\":{\"success\":1,\"cost_usd\":0.5}}}";
    assert_int_equal(simprov_parse(json, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    int na = 0;
    for (size_t i = 0; i < 1000; i++)
        na += strcmp(simprov_task_bucket(s, i), "a") == 0;
    assert_true(na > 680 && na < 820); /* 750 expected */
    int succ_a = 0, succ_b = 0, succ_late = 0;
    simprov_draw_t d;
    for (int i = 0; i < 1000; i++) {
        simprov_call(s, "good", "a", 100, &d);
        assert_true(d.known && !d.outage);
        assert_true(d.latency_ms >= 75 && d.latency_ms <= 125);
        succ_a += d.success;
        simprov_call(s, "good", "b", 100, &d);
        succ_b += d.success;
        simprov_call(s, "good", "a", 600, &d);
        succ_late += d.success;
    }
    assert_true(succ_a > 850 && succ_a < 950);
    assert_true(succ_b > 50 && succ_b < 150);
    assert_true(succ_late > 150 && succ_late < 250);
    simprov_call(s, "good", "a", 15, &d);
    assert_true(d.outage && !d.success);
    simprov_call(s, "good", "a", 20, &d);
    assert_false(d.outage);
    simprov_call(s, "fixed", "a", 0, &d);
    assert_true(d.success && d.cost_usd == 0.5);
    simprov_call(s, "nobody", "a", 0, &d);
    assert_false(d.known);
    simprov_destroy(&s);
    assert_null(s);
    assert_int_equal(simprov_parse("{\"models\":{\"m\":{\"success\":2}}}", &s,
                                   err, sizeof(err)),
                     BURSAR_EFORMAT);
    assert_non_null(strstr(err, "$.models.m"));
    assert_int_equal(simprov_parse("[]", &s, err, sizeof(err)), BURSAR_EFORMAT);
}

static void
test_scenario_sim_format(void **state)
{
    (void)state;
    simprov_t *s = NULL;
    char err[256];
    const char *json =
        "{\"requests\":1000,\"seed\":3,\"traffic\":{\"code\":0.5,"
        "\"chat\":0.5},\"models\":{"
        "\"big\":{\"cost_usd\":0.01,\"success\":{\"code\":0.9,\"chat\":"
        "0.8}},"
        "\"coder\":{\"cost_usd\":{\"code\":0.002},\"success\":{\"code\":"
        "0.8}},"
        "\"mid\":{\"cost_usd\":0.004,\"success\":0.7}},"
        "\"events\":[{\"at\":0.4,\"type\":\"price\",\"model\":\"mid\","
        "\"factor\":0.5},"
        "{\"at\":0.6,\"type\":\"down\",\"model\":\"big\",\"for\":100},"
        "{\"at\":800,\"type\":\"down\",\"model\":\"mid\"},"
        "{\"at\":850,\"type\":\"up\",\"model\":\"mid\"},"
        "{\"at\":100,\"type\":\"quality\",\"model\":\"big\","
        "\"bucket\":\"code\",\"success\":0.5,\"ramp\":200}]}";
    assert_int_equal(simprov_parse(json, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    double p, ti, to, c;
    /* not offered in chat: success 0 */
    assert_int_equal(simprov_expected(s, "coder", "chat", 0, &p, &ti, &to, &c),
                     0);
    assert_true(p == 0);
    simprov_expected(s, "coder", "code", 0, &p, &ti, &to, &c);
    assert_true(p == 0.8 && c == 0.002);
    /* price cut at 40% */
    simprov_expected(s, "mid", "chat", 399, &p, &ti, &to, &c);
    assert_true(c == 0.004);
    simprov_expected(s, "mid", "chat", 400, &p, &ti, &to, &c);
    assert_true(c == 0.002);
    /* down at 60% for 100 */
    simprov_expected(s, "big", "chat", 650, &p, &ti, &to, &c);
    assert_true(p == 0);
    simprov_expected(s, "big", "chat", 700, &p, &ti, &to, &c);
    assert_true(p == 0.8);
    /* down at 800, up at 850 */
    simprov_expected(s, "mid", "chat", 820, &p, &ti, &to, &c);
    assert_true(p == 0);
    simprov_expected(s, "mid", "chat", 850, &p, &ti, &to, &c);
    assert_true(p == 0.7);
    /* ramp in code only: 0.9 -> 0.5 over tasks 100..300 */
    simprov_expected(s, "big", "code", 200, &p, &ti, &to, &c);
    assert_true(fabs(p - 0.7) < 1e-9);
    simprov_expected(s, "big", "code", 300, &p, &ti, &to, &c);
    assert_true(fabs(p - 0.5) < 1e-9);
    simprov_expected(s, "big", "chat", 300, &p, &ti, &to, &c);
    assert_true(p == 0.8);
    simprov_draw_t d;
    simprov_call(s, "big", "chat", 650, &d);
    assert_true(d.outage);
    simprov_destroy(&s);

    /* the simulator's own scenario files read as they are */
    const char *src = getenv("BURSAR_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/sim/scenarios/demo.json", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        assert_int_equal(simprov_load(path, &s, err, sizeof(err)), 0);
        assert_true(simprov_task_count(s) > 0);
        simprov_destroy(&s);
    }
    snprintf(path, sizeof(path), "%s/agents/scenarios/demo.json",
             src ? src : ".");
    assert_int_equal(simprov_load(path, &s, err, sizeof(err)), 0);
    assert_int_equal(simprov_task_count(s), 1000);
    simprov_destroy(&s);
}

/* Fuzzing findings (tests/fuzz/corpus/validate/regress-*): numbers beyond
 * the integer types were converted to them (undefined behaviour), and a
 * 40-byte pattern made regcomp allocate gigabytes. */
static void
test_fuzz_regressions(void **state)
{
    (void)state;
    assert_true(
        parse_fails("{\"type\":\"max_length\",\"max\":1e999}", "validate.max"));
    assert_true(
        parse_fails("{\"type\":\"max_length\",\"max\":1e16}", "[0, 1e15]"));
    assert_true(parse_fails("{\"type\":\"command\",\"cmd\":\"true\","
                            "\"timeout_ms\":1e300}",
                            "validate.timeout_ms"));
    assert_true(parse_fails("{\"type\":\"command\",\"cmd\":\"true\","
                            "\"timeout_ms\":\"10\"}",
                            "validate.timeout_ms"));
    validator_t *v = mk("{\"type\":\"max_length\",\"max\":1e15}");
    assert_int_equal(ok(v, "short"), 1);
    validator_destroy(&v);

    /* "integer" is a number without a fraction, however large */
    v = mk("{\"type\":\"json\",\"keys\":{\"a\":\"integer\"}}");
    assert_int_equal(ok(v, "{\"a\":1e300}"), 1);
    assert_int_equal(ok(v, "{\"a\":-9223372036854775809}"), 1);
    assert_int_equal(ok(v, "{\"a\":1e999}"), 0); /* cJSON: infinity */
    assert_int_equal(ok(v, "{\"a\":2.5}"), 0);
    validator_destroy(&v);

    /* stacked repetitions double regcomp's tree each: refused before it */
    char pat[128] =
        "{\"type\":\"regex\",\"pattern\":\"[0-\xfc\xff\xff\xff\xff]";
    size_t n = strlen(pat);
    for (int i = 0; i < 42; i++)
        pat[n++] = '+';
    snprintf(pat + n, sizeof pat - n, "\"}");
    assert_true(parse_fails(pat, "two repetition operators in a row"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)\"}",
                            "repetitions nested too deep"));
    /* nested optional repetitions: regcomp ran for minutes on the
     * fuzzer's x**???... (243 bytes) and on ((x?)*)? 300 times over */
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"x**??@?\"}",
                            "two repetition operators in a row"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((x?)*)?\"}",
                            "repetitions nested too deep"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"((a{100}){100})\"}",
                            "too large"));
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":"
                            "\"a{1000}b{1000}\"}",
                            "too large"));
    char deep[256] = "{\"type\":\"regex\",\"pattern\":\"";
    n = strlen(deep);
    for (int i = 0; i < 40; i++)
        deep[n++] = '(';
    deep[n++] = 'a';
    for (int i = 0; i < 40; i++)
        deep[n++] = ')';
    snprintf(deep + n, sizeof deep - n, "\"}");
    assert_true(parse_fails(deep, "groups nested too deep"));
    char *lng = malloc(VALIDATE_REGEX_LEN + 64);
    n = (size_t)snprintf(lng, 64, "{\"type\":\"regex\",\"pattern\":\"");
    memset(lng + n, 'a', VALIDATE_REGEX_LEN + 1);
    snprintf(lng + n + VALIDATE_REGEX_LEN + 1, 8, "\"}");
    assert_true(parse_fails(lng, "longer than 1024 bytes"));
    free(lng);
    assert_true(parse_fails("{\"type\":\"regex\",\"pattern\":\"(a*)*\\\\1b\"}",
                            "a back-reference"));
    /* what validators ask for in practice still compiles */
    const char *fine[] = {
        "^[0-9]{1,10}$", "^[A-Z]{3}-[0-9]{4}$",  "(ab|cd)+x?[[:alpha:]]*",
        "^.{0,1000}$",   "[]a]+\\\\.[^]x]*",     "(a{2}){3}",
        "(x*)*y",        "^(\\\\([0-9]+\\\\))?$"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        char spec[128];
        snprintf(spec, sizeof spec, "{\"type\":\"regex\",\"pattern\":\"%s\"}",
                 fine[i]);
        v = mk(spec);
        validator_destroy(&v);
    }
    v = mk("{\"type\":\"regex\",\"pattern\":\"^(ab)+$\"}");
    assert_int_equal(ok(v, "ababab"), 1);
    assert_int_equal(ok(v, "aba"), 0);
    validator_destroy(&v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_and_json),
        cmocka_unit_test(test_json_keys),
        cmocka_unit_test(test_regex_and_length),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_schema_openai),
        cmocka_unit_test(test_schema_recursive),
        cmocka_unit_test(test_schema_keywords),
        cmocka_unit_test(test_schema_refused),
        cmocka_unit_test(test_schema_limits),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_route_strict),
        cmocka_unit_test(test_scenario),
        cmocka_unit_test(test_scenario_sim_format),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
