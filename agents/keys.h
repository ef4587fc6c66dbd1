/*
 * keys.h - CURVE keys as bursar's programs read and write them
 * (docs/security.md).
 *
 * A key is 32 bytes written in Z85 (40 characters, ZeroMQ's encoding).
 * Where a program takes a key it takes a "key spec": the 40 characters
 * themselves, or the path of a file holding them. A key file holds one
 * key on one line; lines that are empty or begin with '#' are comments:
 *
 *     NAME.key  (mode 0600) the secret key
 *     NAME.pub              the public key
 *
 * `bursar keygen NAME` writes both (bursar_key_write_pair). A secret key
 * spec gives the public key too (bursar_key_public). Part of library
 * bursar_proto, so the client, the controller and the CLI share it.
 */
#ifndef BURSAR_AGENTS_KEYS_H
#define BURSAR_AGENTS_KEYS_H

#include <stddef.h>

#define BURSAR_KEY_Z85 40 /* characters of a key in Z85 */

/* 1 if s is exactly 40 characters that decode as Z85. */
int bursar_key_valid(const char *s);

/* Reads a key spec (Z85 text or a key file's path) into z85 (41 bytes,
 * NUL-terminated). Returns 0, or -1 with err naming the file and line
 * (or saying the text is not a key). A secret key file that other users
 * can read is refused when secret is 1. */
int bursar_key_load(const char *spec, int secret, char z85[BURSAR_KEY_Z85 + 1],
                    char *err, size_t err_len);

/* The public key of a secret key (both Z85). Returns 0 or -1. */
int bursar_key_public(const char *secret_z85, char pub[BURSAR_KEY_Z85 + 1]);

/* Writes a new key pair: PREFIX.key (0600, created exclusively: an
 * existing file is never overwritten) and PREFIX.pub. Returns 0, or -1
 * with err. pub (may be NULL) gets the public key. */
int bursar_key_write_pair(const char *prefix, char pub[BURSAR_KEY_Z85 + 1],
                          char *err, size_t err_len);

#endif
