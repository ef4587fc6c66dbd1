/* xmem.c - allocation that aborts on failure (see xmem.h). */
#include "xmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
xmem_fail(size_t n)
{
    fprintf(stderr, "bursar-sim: out of memory (%zu bytes)\n", n);
    abort();
}

void *
xmem_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        xmem_fail(n);
    return p;
}

void *
xmem_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        xmem_fail(n * sz);
    return p;
}

void *
xmem_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        xmem_fail(n);
    return q;
}

char *
xmem_strndup(const char *s, size_t n)
{
    char *d = xmem_alloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
xmem_strdup(const char *s)
{
    return xmem_strndup(s, strlen(s));
}
