/*
 * serr.h - error codes and messages of the simulator.
 *
 * Functions that can fail return 0 or one of the negative SERR_* codes and,
 * when given a non-NULL serr_t, leave a message in it that names the file,
 * the line and the field where the input went wrong ("data.jsonl:12: field
 * 'outcomes.gpt-4': not a number"). The message is owned by the caller's
 * serr_t; nothing is allocated.
 */
#ifndef BURSAR_SERR_H
#define BURSAR_SERR_H

#include <stddef.h>

#include "policies/base.h"

/* The project's codes (base.h), under the simulator's names. */
#define SERR_IO     BURSAR_EIO     /* a file could not be opened or read */
#define SERR_PARSE  BURSAR_EPARSE  /* malformed input (CSV, JSON syntax) */
#define SERR_FORMAT BURSAR_EFORMAT /* wrong or missing field */
#define SERR_ARG    BURSAR_EARG    /* a bad command-line option or parameter */
#define SERR_EMPTY  BURSAR_EEMPTY  /* no usable data */
#define SERR_POLICY BURSAR_EPOLICY /* the policy library refused a call */

typedef struct serr {
    int code;      /* last code set, 0 if none */
    char msg[512]; /* human-readable message, NUL-terminated */
} serr_t;

/* Stores code and a printf-style message in e (if e is non-NULL) and
 * returns code, so that a caller can write `return serr_set(e, ...)`. */
int serr_set(serr_t *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Parses the value s of command-line option opt as a finite number in
 * [lo, hi] into *out. Returns 0, or SERR_ARG with a message naming the
 * option and the value. */
int serr_parse_num(const char *opt, const char *s, double lo, double hi,
                   double *out, serr_t *e);

/* Command lines are read with getopt_long (opterr = 0, an optstring that
 * starts with ":" or "-:", so that it reports instead of printing). */
struct option;

/* "--NAME" of the option of opts whose getopt_long value is c, in buf (cap
 * bytes); "" when no option has that value. Returns buf. */
const char *serr_opt_name(const struct option *opts, int c, char *buf,
                          size_t cap);

/* The message of getopt_long's answer c, '?' or ':', for argv: "unknown
 * option '--bogus' (see --help)", "--seed needs a value" or "--json takes
 * no value". Returns SERR_ARG. */
int serr_opt_error(int c, char *const *argv, const struct option *opts,
                   serr_t *e);

/* Messages of the codes: bursar_strerror (base.h). */

#endif
