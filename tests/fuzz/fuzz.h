/*
 * fuzz.h - what every libFuzzer target of tests/fuzz shares.
 *
 * Each target is one file fuzz_<name>.c that defines
 * LLVMFuzzerTestOneInput over one parser of untrusted bytes. The parsers
 * take (buf, len) and must not read buf[len]; fuzz_copy gives them an
 * exact-size heap copy so that AddressSanitizer catches a read one byte
 * past the end (libFuzzer's own buffer is exact-size too, but a target
 * that splits its input needs the same guarantee for each part).
 */
#ifndef BURSAR_TESTS_FUZZ_H
#define BURSAR_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A heap copy of data[0..size) of exactly size bytes (one byte for an
 * empty input, never read); free() it. */
static inline char *
fuzz_copy(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    return p;
}

/* A NUL-terminated copy; free() it. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    p[size] = '\0';
    return p;
}

#endif
