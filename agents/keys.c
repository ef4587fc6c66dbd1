/*
 * keys.c - CURVE key specs and key files (keys.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int
bursar_key_valid(const char *s)
{
    uint8_t raw[32];
    return s && strlen(s) == BURSAR_KEY_Z85 && zmq_z85_decode(raw, s) != NULL;
}

/* The key line of a key file's text: the first line that is neither empty
 * nor a comment, trimmed. Returns its line number (1-based), 0 if none. */
static int
key_line(char *text, char **line)
{
    int no = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        no++;
        while (*l == ' ' || *l == '\t')
            l++;
        size_t n = strlen(l);
        while (n > 0 &&
               (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
            l[--n] = '\0';
        if (n == 0 || l[0] == '#')
            continue;
        *line = l;
        return no;
    }
    return 0;
}

int
bursar_key_load(const char *spec, int secret, char z85[BURSAR_KEY_Z85 + 1],
                char *err, size_t err_len)
{
    if (!spec || !*spec) {
        snprintf(err, err_len, "no key given");
        return -1;
    }
    if (bursar_key_valid(spec)) {
        memcpy(z85, spec, BURSAR_KEY_Z85 + 1);
        return 0;
    }
    int fd = open(spec, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len,
                 "%s: %s (a key is 40 Z85 characters or the path of a key "
                 "file)",
                 spec, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && secret && (sb.st_mode & 077)) {
        close(fd);
        snprintf(err, err_len,
                 "%s: a secret key file must not be readable by others "
                 "(mode %03o; chmod 600 %s)",
                 spec, (unsigned)(sb.st_mode & 0777), spec);
        return -1;
    }
    char text[1024];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, err_len, "%s: %s", spec, strerror(errno));
        return -1;
    }
    text[n] = '\0';
    char *line = NULL;
    int no = key_line(text, &line);
    if (!no) {
        snprintf(err, err_len, "%s: no key in the file", spec);
        return -1;
    }
    if (!bursar_key_valid(line)) {
        snprintf(err, err_len,
                 "%s:%d: not a key (40 Z85 characters expected, got %zu "
                 "characters)",
                 spec, no, strlen(line));
        return -1;
    }
    memcpy(z85, line, BURSAR_KEY_Z85 + 1);
    return 0;
}

int
bursar_key_public(const char *secret_z85, char pub[BURSAR_KEY_Z85 + 1])
{
    if (!bursar_key_valid(secret_z85))
        return -1;
    return zmq_curve_public(pub, secret_z85) == 0 ? 0 : -1;
}

/* Writes text to path, created with mode (exclusively). */
static int
key_write(const char *path, const char *text, mode_t mode, char *err,
          size_t err_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (not overwritten)" : "");
        return -1;
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int
bursar_key_write_pair(const char *prefix, char pub_out[BURSAR_KEY_Z85 + 1],
                      char *err, size_t err_len)
{
    char pub[BURSAR_KEY_Z85 + 1], sec[BURSAR_KEY_Z85 + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, err_len, "cannot make a CURVE key pair: %s",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    char kp[4096], pp[4096], text[512];
    snprintf(kp, sizeof kp, "%s.key", prefix);
    snprintf(pp, sizeof pp, "%s.pub", prefix);
    snprintf(text, sizeof text,
             "# bursar CURVE secret key: keep it private (mode 0600).\n"
             "# Its public key: %s\n%s\n",
             pub, sec);
    if (key_write(kp, text, 0600, err, err_len) != 0)
        return -1;
    snprintf(text, sizeof text, "# bursar CURVE public key\n%s\n", pub);
    if (key_write(pp, text, 0644, err, err_len) != 0) {
        unlink(kp);
        return -1;
    }
    if (pub_out)
        memcpy(pub_out, pub, sizeof pub);
    return 0;
}
