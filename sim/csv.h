/*
 * csv.h - an RFC 4180 CSV reader over a buffer in memory.
 *
 * Fields are separated by commas and records by LF or CRLF. A field that
 * starts with a double quote runs to the matching closing quote and may
 * hold commas, newlines and doubled quotes (""), which stand for one quote.
 * A UTF-8 byte-order mark at the start is skipped. Lenient where RFC 4180
 * is silent: a quote in the middle of an unquoted field is taken as a
 * character; a final record without a newline is read.
 *
 * Errors (SERR_PARSE): a quoted field not closed before the end of the
 * input, and a character other than a comma or a newline right after a
 * closing quote. The message names the physical line (1-based) and the
 * field number (1-based).
 *
 * Ownership: the reader keeps a pointer to the caller's buffer, which must
 * outlive it. The fields of a record belong to the reader and stay valid
 * until the next csv_next or csv_destroy.
 */
#ifndef BURSAR_CSV_H
#define BURSAR_CSV_H

#include <stddef.h>

#include "sim/serr.h"

typedef struct csv csv_t;

/* A reader over buf[0..len). name is used in error messages (copied).
 * Never NULL (aborts on out of memory). */
csv_t *csv_new(const char *buf, size_t len, const char *name);
void csv_destroy(csv_t **c);

/* Reads the next record. Returns 1 when a record was read, 0 at the end of
 * the input, or SERR_PARSE (message in e). A blank line is a record of one
 * empty field. */
int csv_next(csv_t *c, serr_t *e);

size_t csv_n_fields(const csv_t *c);             /* fields of the last record */
const char *csv_field(const csv_t *c, size_t i); /* NUL-terminated; "" past
                                                    the end */
long csv_line(const csv_t *c); /* physical line where the record began */

/* Reads a whole file into memory (NUL-terminated; *len excludes the NUL).
 * Returns 0 or SERR_IO with a message naming the file. *out is freed by the
 * caller with free(). */
int csv_slurp(const char *path, char **out, size_t *len, serr_t *e);

#endif
