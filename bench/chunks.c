/* chunks.c: an LD_PRELOAD tracker of a process's live malloc chunks, by
 * chunk size (glibc: malloc_usable_size + 8), for finding where an idle
 * connection's bytes go (bench/chunks-idle-mqtt).  A measuring tool, not
 * part of axon.
 *
 *   cc -O2 -shared -fPIC -o chunks.so bench/chunks.c
 *   LD_PRELOAD=./chunks.so CHUNKS_OUT=/tmp/c.txt PROG ...
 *   kill -USR2 PID     appends "dump" and one "CHUNK COUNT" line per size
 *
 * Counting needs no table of pointers: a chunk's size is read back when it
 * is freed.  Chunks of 64 KiB and more share the last line (their count). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

#define NB 4096 /* by chunk / 16 */
static long live[NB + 1];

static void count(void *p, long sign)
{
    if (!p) return;
    size_t i = (malloc_usable_size(p) + 8) / 16;
    __atomic_add_fetch(&live[i < NB ? i : NB], sign, __ATOMIC_RELAXED);
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    count(p, 1);
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    count(p, 1);
    return p;
}

void free(void *p)
{
    count(p, -1);
    __libc_free(p);
}

void *realloc(void *p, size_t n)
{
    count(p, -1);
    void *q = __libc_realloc(p, n);
    count(q ? q : (n ? p : NULL), 1); /* failed: p stays */
    return q;
}

void *memalign(size_t align, size_t n)
{
    void *p = __libc_memalign(align, n);
    count(p, 1);
    return p;
}

void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

static void dump(int sig)
{
    (void)sig;
    const char *path = getenv("CHUNKS_OUT");
    int fd = open(path ? path : "/tmp/chunks.txt", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    char line[64];
    int n = snprintf(line, sizeof line, "dump\n");
    if (write(fd, line, (size_t)n) < 0) goto out;
    for (int i = 0; i <= NB; i++) {
        long v = __atomic_load_n(&live[i], __ATOMIC_RELAXED);
        if (!v) continue;
        n = snprintf(line, sizeof line, "%d %ld\n", i * 16, v);
        if (write(fd, line, (size_t)n) < 0) goto out;
    }
out:
    close(fd);
}

__attribute__((constructor)) static void init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
