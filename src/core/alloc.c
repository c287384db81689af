/* alloc.c: the one allocation hook every axon allocation goes through. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static ax_allocator current = {malloc, realloc, free};

int ax_set_allocator(const ax_allocator *a)
{
    if (a && a->malloc && a->realloc && a->free)
        current = *a;
    else
        current = (ax_allocator){malloc, realloc, free};
    return 0;
}

void *ax_malloc(size_t size)
{
    return current.malloc(size ? size : 1);
}

void *ax_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    size_t total = n * size;
    void *p = current.malloc(total ? total : 1);
    if (p) memset(p, 0, total);
    return p;
}

void *ax_realloc(void *ptr, size_t size)
{
    return current.realloc(ptr, size ? size : 1);
}

void ax_free(void *ptr)
{
    if (ptr) current.free(ptr);
}
