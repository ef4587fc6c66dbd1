/*
 * base.h - the conventions every part of bursar shares.
 *
 * The one header below everything else (library bursar_base, no
 * dependency but libc): the longest name, the project's error codes with
 * their one strerror, the allocation wrappers and the whole-file reader.
 * docs/hacking.md says how they are meant to be used.
 *
 * Errors. A function that can fail returns int: 0 for success, a
 * BURSAR_E* code (negative, in the range of bursar_rc below) for a
 * failure, and, where an outcome is expected rather than a failure (like
 * LMDB's MDB_NOTFOUND), a small positive code documented with it.
 * bursar_strerror() names every code; for a positive errno value it
 * returns strerror()'s text, so a caller can pass either.
 *
 * Memory. Out of memory is fatal: the wrappers print one line naming the
 * size and abort() rather than giving every caller an error path (a
 * daemon restart restores its state from LMDB). Memory they return is
 * released with free().
 */
#ifndef BURSAR_BASE_H
#define BURSAR_BASE_H

#include <stdarg.h>
#include <stddef.h>

/* Bucket and model names, including the NUL: the one limit used by the
 * configuration, the wire codec, the store and the simulator. */
#define BURSAR_NAME_MAX 64

/* Return codes of the whole project. 0 and the positive values are
 * expected outcomes, the negative ones failures. The first six are the
 * client library's (bursar.h) and keep their values. */
enum bursar_rc {
    BURSAR_OK = 0,
    BURSAR_LOCAL = 1,         /* choose answered locally: controller away */
    BURSAR_SPOOLED = 2,       /* feedback spooled: controller away */
    BURSAR_EINVAL = -1,       /* bad argument */
    BURSAR_EUNREACHABLE = -2, /* controller unreachable, no fallback/spool */
    BURSAR_EREMOTE = -3,      /* controller answered an error */
    BURSAR_EPROTO = -4,       /* a reply or frame not understood */
    BURSAR_EIO = -5,          /* a file could not be opened, read, written */
    BURSAR_EZMQ = -6,         /* ZeroMQ setup failed */
    BURSAR_EPARSE = -7,       /* malformed input (CSV quoting, JSON syntax) */
    BURSAR_EFORMAT = -8,      /* well-formed input, wrong or missing field */
    BURSAR_EARG = -9,         /* a bad command-line option or parameter */
    BURSAR_EEMPTY = -10,      /* no usable data */
    BURSAR_EPOLICY = -11,     /* the policy library refused a call */
    BURSAR_ESTORE = -12,      /* the LMDB store failed */
    BURSAR_EVERSION = -13,    /* state written by another format version */
    BURSAR_ELOCKED = -14,     /* another process owns the resource */
    BURSAR_ECONFIG = -15,     /* the configuration is invalid */
    BURSAR_ETOOBIG = -16,     /* input larger than its limit */
    BURSAR_E_LAST = -16
};

/* A short constant description of a code (BURSAR_*; a positive errno value
 * gives strerror()'s text; anything else "unknown error"). Never NULL. */
const char *bursar_strerror(int rc);

void *bursar_malloc(size_t n);                 /* never NULL */
void *bursar_calloc(size_t n, size_t size);    /* zeroed, never NULL */
void *bursar_realloc(void *p, size_t n);       /* never NULL */
char *bursar_strdup(const char *s);            /* copy of s */
char *bursar_strndup(const char *s, size_t n); /* n bytes + NUL */

/* A growing byte buffer, kept NUL-terminated ({0} is empty; free p with
 * free()). bursar_buf_add appends n bytes of s; it never fails. */
typedef struct bursar_buf {
    char *p;
    size_t len, cap;
} bursar_buf_t;
void bursar_buf_add(bursar_buf_t *b, const void *s, size_t n);
/* Length of the well-formed UTF-8 sequence at p (first byte >= 0x80), or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t bursar_utf8_len(const unsigned char *p);
/* printf into a new string (caller frees). */
char *bursar_sprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The edit distance between a and b (Levenshtein: each insertion,
 * deletion or substitution of a byte counts 1), or max + 1 when it is
 * above max or a string has more than 63 bytes. For the "did you mean"
 * of a message naming an unknown key (agents/wcfg.c). */
int bursar_edit_distance(const char *a, const char *b, int max);

/* getopt_long (same arguments and answers), except that a long option
 * taking a value does not take the next word as its value when that word
 * is itself an option ("--" then a letter: "--controller --simulate S"):
 * it answers as for a value missing at the end of argv instead, ':' when
 * optstring asks for it (a ':' first, after any '+' or '-') else '?', with
 * optopt the option's val and optind just past the option, so that
 * argv[optind - 1] names it and the caller's "--X needs a value" applies.
 * A value given as "--X=--y", or one starting with a single '-' (a
 * negative number), is still taken. Every program's option parsing. */
struct option;
int bursar_getopt_long(int argc, char *const *argv, const char *optstring,
                       const struct option *longopts, int *longindex);

/* Where at (cJSON_GetErrorPtr after a failed parse of text) lies in text:
 * *line and *col from 1; both 1 when at is NULL or before text. For "not
 * valid JSON near line L column C". */
void bursar_json_where(const char *text, const char *at, long *line, long *col);

/* Copies src into dst of cap bytes (cap >= 1), truncating; always ends dst
 * with a NUL. Returns 1 when src was truncated, else 0. */
int bursar_copy_str(char *dst, size_t cap, const char *src);

/* Reads the whole of path ("-" is standard input) into a new
 * NUL-terminated buffer (*out, caller frees; *len bytes without the NUL;
 * len may be NULL). Returns 0, or BURSAR_EIO with errno kept from the
 * failing call (so strerror(errno) says why). Nothing is allocated on
 * failure. */
int bursar_read_file(const char *path, char **out, size_t *len);

/* A daemon's log line on standard error (bursard, bursar-gateway): the
 * wall-clock time in ISO 8601 UTC with milliseconds, a space, then fmt's
 * text, and a newline when fmt has none at its end:
 * "2026-12-02T07:40:00.123Z bursard: listening on ...". The line goes out
 * in one write, so that threads' lines do not interleave. bursar_vlog
 * takes a va_list. */
void bursar_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void bursar_vlog(const char *fmt, va_list ap);
/* The time prefix of bursar_log for Unix time t (seconds), in buf of at
 * least BURSAR_LOG_TIME bytes: "2026-12-02T07:40:00.123Z". */
#define BURSAR_LOG_TIME 32
void bursar_log_time(double t, char *buf);

#endif
