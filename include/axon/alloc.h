/* axon/alloc.h: the single allocation hook.
 *
 * Every allocation axon makes goes through these three functions, so an
 * application can account memory and tests can inject out-of-memory.  Set
 * them once, before any other axon call; they must be thread-safe when loops
 * run on several threads. */
#ifndef AXON_ALLOC_H
#define AXON_ALLOC_H

#include <stddef.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_allocator {
    void *(*malloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
} ax_allocator;

/* Replace the allocator (NULL restores malloc/realloc/free).  Returns 0. */
AX_API int ax_set_allocator(const ax_allocator *a);

/* The allocator axon uses; applications may share it. */
AX_API void *ax_malloc(size_t size);
AX_API void *ax_calloc(size_t n, size_t size);
AX_API void *ax_realloc(void *ptr, size_t size);
AX_API void ax_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
