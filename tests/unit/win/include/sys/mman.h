/* sys/mman.h for the unit tests on Windows: the guard pages of the parser
 * tests, on VirtualAlloc and VirtualProtect. */
#ifndef AXON_WIN_TEST_MMAN_H
#define AXON_WIN_TEST_MMAN_H
#include <windows.h>
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)
#define _SC_PAGESIZE 30
static inline long ax__win_sysconf(int name)
{
    SYSTEM_INFO si;
    (void)name;
    GetSystemInfo(&si);
    return (long)si.dwPageSize;
}
#define sysconf ax__win_sysconf
static inline void *mmap(void *a, size_t len, int prot, int flags, int fd, long off)
{
    (void)a, (void)prot, (void)flags, (void)fd, (void)off;
    void *p = VirtualAlloc(NULL, len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    return p ? p : MAP_FAILED;
}
static inline int mprotect(void *p, size_t len, int prot)
{
    DWORD old;
    return VirtualProtect(p, len, prot ? PAGE_READWRITE : PAGE_NOACCESS, &old) ? 0 : -1;
}
static inline int munmap(void *p, size_t len)
{
    (void)len;
    return VirtualFree(p, 0, MEM_RELEASE) ? 0 : -1;
}
#endif
