/*
 * token.h - decision tokens: the opaque, unforgeable decision ids of the
 * wire (docs/protocol.md, docs/security.md).
 *
 * A token carries what feedback needs to settle its decision even when
 * the decision's record was lost to a crash (a choose is answered before
 * its record is committed): the sequence id, the time, the propensity,
 * the reserved cost, the flags, the set of models the reply offered (the
 * set the decision was drawn from), its step in a cascade and the decision
 * it escalates, the bucket, the chosen model and the client it was issued
 * to, under a MAC
 * (keyed BLAKE2b, 128 bits, libsodium) whose 32-byte key lives in the
 * state directory (token.key, mode 0600). The bytes are written in
 * base64url without padding: at most TOKEN_CHARS characters.
 *
 * Changing the token key invalidates every outstanding token: feedback
 * on them is unknown_decision.
 */
#ifndef BURSAR_CONTROLLER_TOKEN_H
#define BURSAR_CONTROLLER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "policies/base.h"

#define TOKEN_KEY_BYTES  32
#define TOKEN_CLIENT_MAX 32  /* a client's name, incl. NUL (auth.h) */
#define TOKEN_STEP_MAX   255 /* a cascade's steps past the first */
/* version, flags, id, t, propensity, reserved, offered, parent, step,
 * three length-prefixed names, the MAC */
#define TOKEN_BYTES_MAX                                                        \
    (3 + 8 * 6 + 1 + 3 + 2 * (BURSAR_NAME_MAX - 1) + (TOKEN_CLIENT_MAX - 1) +  \
     16)
#define TOKEN_CHARS ((TOKEN_BYTES_MAX * 4 + 2) / 3) /* base64url */

typedef struct token {
    uint64_t id;       /* the decision's sequence number */
    double t;          /* choose time */
    double propensity; /* (0, 1] */
    double reserved;   /* reserved cost, USD */
    uint64_t offered;  /* bit i: arm i of the bucket was offered: the set
                          the decision was drawn from */
    uint64_t parent;   /* the sequence number of the decision this one
                          escalates (a cascade's previous step), or 0 */
    uint32_t step;     /* 0: a request's first decision; else the parent's
                          step + 1, at most TOKEN_STEP_MAX */
    uint32_t flags;    /* STORE_D_EXPLORED, OVER_BUDGET, BUCKET_RES, PROBE */
    char bucket[BURSAR_NAME_MAX];
    char model[BURSAR_NAME_MAX];
    char client[TOKEN_CLIENT_MAX]; /* "" for an unauthenticated client */
} token_t;

/* Writes the token of tk into out (TOKEN_CHARS + 1 bytes). Returns its
 * length. */
size_t token_encode(const uint8_t key[TOKEN_KEY_BYTES], const token_t *tk,
                    char *out);

/* Decodes and verifies s. Returns 0 and fills tk, or -1 when s is not a
 * token this key made (malformed, altered, forged or truncated). */
int token_decode(const uint8_t key[TOKEN_KEY_BYTES], const char *s,
                 token_t *tk);

/* Reads dir/token.key, creating it (32 random bytes, mode 0600) when it
 * does not exist. Returns 0, or -1 with err. */
int token_key_load(const char *dir, uint8_t key[TOKEN_KEY_BYTES], char *err,
                   size_t err_len);

#endif
