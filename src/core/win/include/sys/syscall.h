/* sys/syscall.h on Windows: the one system call the shared code makes by
 * number, openat2 (src/proto/http/static.c), done by fs_win.c; any other
 * number fails with ENOSYS. */
#ifndef AXON_WIN_SYSCALL_H
#define AXON_WIN_SYSCALL_H
#include <axwin.h>

#define SYS_openat2 437
struct open_how;
long ax__win_openat2(int dirfd, const char *path, const struct open_how *how, size_t size);
static inline long ax__win_syscall4(long nr, int dirfd, const char *path,
                                    const struct open_how *how, size_t size)
{
    if (nr == SYS_openat2) return ax__win_openat2(dirfd, path, how, size);
    errno = ENOSYS;
    return -1;
}
#define syscall(nr, ...) ax__win_syscall4((nr), __VA_ARGS__)
#endif
