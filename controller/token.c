/*
 * token.c - decision tokens (token.h).
 *
 * Layout before the MAC (little-endian numbers):
 *   u8 version (2), u16 flags, u64 id, f64 t, f64 propensity,
 *   f64 reserved, u64 offered, u64 parent, u8 step, then bucket, model
 *   and client, each a u8 length and its bytes; the MAC (16 bytes) covers
 *   all of it. Version 1 (before cascades were linked) had no parent and
 *   no step: such tokens, still held by clients across an upgrade, decode
 *   with parent 0 and step 0.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agents/proto.h"

_Static_assert(TOKEN_CHARS <= PROTO_TOKEN_MAX,
               "a token must fit the wire's decision_id");

#define TOKEN_VERSION    2
#define TOKEN_VERSION_V1 1 /* no parent, no step */
#define TOKEN_MAC        16

static uint8_t *
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *
put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return put_u64(p, v);
}

static uint8_t *
put_name(uint8_t *p, const char *s, size_t max)
{
    size_t n = strnlen(s, max - 1);
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

size_t
token_encode(const uint8_t key[TOKEN_KEY_BYTES], const token_t *tk, char *out)
{
    uint8_t raw[TOKEN_BYTES_MAX], *p = raw;
    *p++ = TOKEN_VERSION;
    *p++ = (uint8_t)(tk->flags & 0xffu);
    *p++ = (uint8_t)((tk->flags >> 8) & 0xffu);
    p = put_u64(p, tk->id);
    p = put_f64(p, tk->t);
    p = put_f64(p, tk->propensity);
    p = put_f64(p, tk->reserved);
    p = put_u64(p, tk->offered);
    p = put_u64(p, tk->parent);
    *p++ = (uint8_t)(tk->step > TOKEN_STEP_MAX ? TOKEN_STEP_MAX : tk->step);
    p = put_name(p, tk->bucket, sizeof tk->bucket);
    p = put_name(p, tk->model, sizeof tk->model);
    p = put_name(p, tk->client, sizeof tk->client);
    crypto_generichash(p, TOKEN_MAC, raw, (size_t)(p - raw), key,
                       TOKEN_KEY_BYTES);
    p += TOKEN_MAC;
    sodium_bin2base64(out, TOKEN_CHARS + 1, raw, (size_t)(p - raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return strlen(out);
}

/* A reader over the decoded bytes. */
typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd_t;

static uint64_t
get_u64(rd_t *r)
{
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 8;
    return v;
}

static double
get_f64(rd_t *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static void
get_name(rd_t *r, char *out, size_t max)
{
    if (r->end - r->p < 1) {
        r->bad = 1;
        return;
    }
    size_t n = *r->p++;
    if (n >= max || (size_t)(r->end - r->p) < n || memchr(r->p, 0, n)) {
        r->bad = 1;
        return;
    }
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
}

int
token_decode(const uint8_t key[TOKEN_KEY_BYTES], const char *s, token_t *tk)
{
    uint8_t raw[TOKEN_BYTES_MAX];
    size_t n = 0, len = strnlen(s, TOKEN_CHARS + 1);
    if (len == 0 || len > TOKEN_CHARS ||
        sodium_base642bin(raw, sizeof raw, s, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n < 3 + TOKEN_MAC ||
        (raw[0] != TOKEN_VERSION && raw[0] != TOKEN_VERSION_V1))
        return -1;
    uint8_t mac[TOKEN_MAC];
    crypto_generichash(mac, TOKEN_MAC, raw, n - TOKEN_MAC, key,
                       TOKEN_KEY_BYTES);
    if (sodium_memcmp(mac, raw + n - TOKEN_MAC, TOKEN_MAC) != 0)
        return -1;
    memset(tk, 0, sizeof *tk);
    rd_t r = {raw + 3, raw + n - TOKEN_MAC, 0};
    tk->flags = (uint32_t)raw[1] | (uint32_t)raw[2] << 8;
    tk->id = get_u64(&r);
    tk->t = get_f64(&r);
    tk->propensity = get_f64(&r);
    tk->reserved = get_f64(&r);
    tk->offered = get_u64(&r);
    if (raw[0] != TOKEN_VERSION_V1) {
        tk->parent = get_u64(&r);
        if (r.end - r.p < 1)
            r.bad = 1;
        else
            tk->step = *r.p++;
    }
    get_name(&r, tk->bucket, sizeof tk->bucket);
    get_name(&r, tk->model, sizeof tk->model);
    get_name(&r, tk->client, sizeof tk->client);
    return r.bad || r.p != r.end ? -1 : 0;
}

int
token_key_load(const char *dir, uint8_t key[TOKEN_KEY_BYTES], char *err,
               size_t err_len)
{
    if (sodium_init() < 0) {
        snprintf(err, err_len, "libsodium cannot start");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/token.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(key, TOKEN_KEY_BYTES);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int ok = fd >= 0 &&
                 write(fd, key, TOKEN_KEY_BYTES) == TOKEN_KEY_BYTES &&
                 fsync(fd) == 0;
        if (fd >= 0 && close(fd) != 0)
            ok = 0;
        /* the directory entry too: a crash must not lose the key (and
         * every token answered with it) */
        int dfd = ok ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (ok && (dfd < 0 || fsync(dfd) != 0))
            ok = 0;
        if (dfd >= 0)
            close(dfd);
        if (!ok) {
            snprintf(err, err_len, "cannot write %s: %s", path,
                     strerror(errno));
            unlink(path);
            return -1;
        }
        return 0;
    }
    if (fd >= 0)
        fchmod(fd, 0600); /* a key from before modes were set */
    if (fd < 0) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, key, TOKEN_KEY_BYTES);
    close(fd);
    if (n != TOKEN_KEY_BYTES) {
        snprintf(err, err_len,
                 "%s holds %zd bytes, not %d: not a token key (restore it, "
                 "or remove it to invalidate every outstanding decision)",
                 path, n, TOKEN_KEY_BYTES);
        return -1;
    }
    return 0;
}
