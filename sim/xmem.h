/*
 * xmem.h - allocation that aborts on failure.
 *
 * The simulator treats out-of-memory as fatal: one wrapper prints a message
 * and aborts rather than every caller carrying an error path (STYLE.md).
 * Memory from these functions is released with free().
 */
#ifndef BURSAR_XMEM_H
#define BURSAR_XMEM_H

#include <stddef.h>

void *xmem_alloc(size_t n);                  /* malloc, never NULL */
void *xmem_calloc(size_t n, size_t sz);      /* zeroed, never NULL */
void *xmem_realloc(void *p, size_t n);       /* realloc, never NULL */
char *xmem_strdup(const char *s);            /* copy of s */
char *xmem_strndup(const char *s, size_t n); /* copy of n bytes + NUL */

#endif
