/*
 * csv.c - RFC 4180 reader (see csv.h).
 *
 * One pass over the buffer; each record's fields are unescaped into one
 * growing arena and indexed by offsets, so a record costs no allocation
 * once the arena has grown to the longest record.
 */
#include "sim/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/base.h"

struct csv {
    const char *buf;
    size_t len;
    size_t pos;
    long line;     /* physical line at pos (1-based) */
    long rec_line; /* line where the last record began */
    char *name;    /* for messages */
    char *arena;   /* unescaped fields, each NUL-terminated */
    size_t arena_len, arena_cap;
    size_t *off; /* field offsets into arena */
    size_t n_fields, off_cap;
};

csv_t *
csv_new(const char *buf, size_t len, const char *name)
{
    csv_t *c = bursar_calloc(1, sizeof *c);
    c->buf = buf;
    c->len = len;
    c->line = 1;
    c->name = bursar_strdup(name ? name : "<csv>");
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    return c;
}

void
csv_destroy(csv_t **c)
{
    if (!c || !*c)
        return;
    free((*c)->name);
    free((*c)->arena);
    free((*c)->off);
    free(*c);
    *c = NULL;
}

static void
csv_put(csv_t *c, char ch)
{
    if (c->arena_len == c->arena_cap) {
        c->arena_cap = c->arena_cap ? 2 * c->arena_cap : 4096;
        c->arena = bursar_realloc(c->arena, c->arena_cap);
    }
    c->arena[c->arena_len++] = ch;
}

static void
csv_begin_field(csv_t *c)
{
    if (c->n_fields == c->off_cap) {
        c->off_cap = c->off_cap ? 2 * c->off_cap : 64;
        c->off = bursar_realloc(c->off, c->off_cap * sizeof *c->off);
    }
    c->off[c->n_fields++] = c->arena_len;
}

/* Consumes a record terminator at pos (LF or CRLF); returns 1 if one was
 * there. A lone CR is taken as a terminator too. */
static int
csv_eol(csv_t *c)
{
    if (c->pos >= c->len)
        return 0;
    if (c->buf[c->pos] == '\n') {
        c->pos++;
        c->line++;
        return 1;
    }
    if (c->buf[c->pos] == '\r') {
        c->pos++;
        if (c->pos < c->len && c->buf[c->pos] == '\n')
            c->pos++;
        c->line++;
        return 1;
    }
    return 0;
}

int
csv_next(csv_t *c, serr_t *e)
{
    c->n_fields = 0;
    c->arena_len = 0;
    if (c->pos >= c->len)
        return 0;
    c->rec_line = c->line;
    for (;;) {
        csv_begin_field(c);
        if (c->pos < c->len && c->buf[c->pos] == '"') {
            long start_line = c->line;
            c->pos++;
            for (;;) {
                if (c->pos >= c->len) {
                    return serr_set(e, SERR_PARSE,
                                    "%s:%ld: field %zu: quoted field not "
                                    "closed before the end of the file",
                                    c->name, start_line, c->n_fields);
                }
                char ch = c->buf[c->pos++];
                if (ch == '"') {
                    if (c->pos < c->len && c->buf[c->pos] == '"') {
                        csv_put(c, '"');
                        c->pos++;
                        continue;
                    }
                    break;
                }
                if (ch == '\n')
                    c->line++;
                else if (ch == '\r' &&
                         !(c->pos < c->len && c->buf[c->pos] == '\n'))
                    c->line++;
                csv_put(c, ch);
            }
            if (c->pos < c->len && c->buf[c->pos] != ',' &&
                c->buf[c->pos] != '\n' && c->buf[c->pos] != '\r') {
                return serr_set(e, SERR_PARSE,
                                "%s:%ld: field %zu: unexpected character "
                                "'%c' after a closing quote",
                                c->name, c->line, c->n_fields, c->buf[c->pos]);
            }
        } else {
            while (c->pos < c->len && c->buf[c->pos] != ',' &&
                   c->buf[c->pos] != '\n' && c->buf[c->pos] != '\r')
                csv_put(c, c->buf[c->pos++]);
        }
        csv_put(c, '\0');
        if (c->pos < c->len && c->buf[c->pos] == ',') {
            c->pos++;
            continue;
        }
        csv_eol(c);
        return 1;
    }
}

size_t
csv_n_fields(const csv_t *c)
{
    return c->n_fields;
}

const char *
csv_field(const csv_t *c, size_t i)
{
    return i < c->n_fields ? c->arena + c->off[i] : "";
}

long
csv_line(const csv_t *c)
{
    return c->rec_line;
}

int
csv_slurp(const char *path, char **out, size_t *len, serr_t *e)
{
    *out = NULL;
    *len = 0;
    if (bursar_read_file(path, out, len) != 0)
        return serr_set(e, SERR_IO, "%s: cannot read: %s", path,
                        strerror(errno));
    return 0;
}
