/*
 * fuzz_token.c - the decision-token decoder (token_decode): a client
 * sends the token back in every feedback, so its bytes are untrusted.
 *
 * The first byte chooses what the rest is:
 *   even  the text of a token, as it arrives (base64url, then the MAC: a
 *         fuzzer cannot forge one, so this exercises the outer layers);
 *   odd   the bytes inside a token: the harness appends their MAC under
 *         the fixed key and encodes them, so that the field reader behind
 *         the MAC is reached. A token that decodes must encode and decode
 *         again to the same fields (any difference aborts).
 */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

#include <sodium.h>

#include "controller/token.h"

#define MAC_BYTES 16 /* token.c's TOKEN_MAC */

static const uint8_t key[TOKEN_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

static void
round_trip(const token_t *tk)
{
    char s[TOKEN_CHARS + 1];
    token_t again;
    token_encode(key, tk, s);
    if (token_decode(key, s, &again) != 0 ||
        memcmp(tk, &again, sizeof again) != 0) {
        fprintf(stderr, "fuzz_token: a decoded token does not round-trip\n");
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    token_t tk;
    if (!(data[0] & 1)) {
        char *s = fuzz_cstr(data + 1, size - 1);
        if (token_decode(key, s, &tk) == 0)
            round_trip(&tk);
        free(s);
        return 0;
    }
    size_t n = size - 1;
    if (n + MAC_BYTES > TOKEN_BYTES_MAX)
        return 0;
    uint8_t raw[TOKEN_BYTES_MAX];
    memcpy(raw, data + 1, n);
    crypto_generichash(raw + n, MAC_BYTES, raw, n, key, TOKEN_KEY_BYTES);
    char s[2 * TOKEN_BYTES_MAX];
    sodium_bin2base64(s, sizeof s, raw, n + MAC_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (token_decode(key, s, &tk) == 0)
        round_trip(&tk);
    return 0;
}
