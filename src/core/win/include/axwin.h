/* axwin.h: the POSIX socket calls the core uses, on Winsock (MinGW-w64).
 *
 * The Windows build force-includes this header into every source file
 * (cmake/windows.cmake), and this directory's <sys/socket.h>, <poll.h>,
 * <sys/uio.h> and the rest stand in for the POSIX headers, so the shared
 * code compiles unchanged: its platform differences live here and in the
 * Windows backend files, not in its function bodies.
 *
 * What the shims do:
 *   - SOCKET handles travel as int fds.  Windows documents that kernel
 *     handles have 32 significant bits, so the cast loses nothing.
 *   - Every failing call stores a POSIX errno (WSAEWOULDBLOCK becomes
 *     EAGAIN, or EINPROGRESS from connect), so `errno == EAGAIN` and the
 *     AX_E… codes mean on Windows what they mean on Linux.
 *   - close/read/write take a socket or a C runtime descriptor: a socket
 *     is closed with closesocket and read with recv.
 *   - eventfd is a UDP socket connected to itself (the loop's wake-up).
 *   - recvmmsg/sendmmsg loop over WSARecvFrom/WSASendTo.
 *   - SO_REUSEADDR is not set on Windows (there it lets another process
 *     steal a bound port); SO_REUSEPORT does not exist and fails. */
#ifndef AXON_WIN_AXWIN_H
#define AXON_WIN_AXWIN_H
#ifdef _WIN32

#ifndef _POSIX_THREAD_SAFE_FUNCTIONS
#define _POSIX_THREAD_SAFE_FUNCTIONS 200112L /* gmtime_r, localtime_r */
#endif
#ifndef __USE_MINGW_ANSI_STDIO
#define __USE_MINGW_ANSI_STDIO 1 /* %zu, %lld as C99 says */
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64 /* off_t, lseek: 64 bits (files of 2 GiB and more) */
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10: AF_UNIX, GetAddrInfoExW */
#endif

/* the CRT and Winsock first: their declarations must precede the renames */
#include <errno.h>
#include <fcntl.h>
#include <direct.h>
#include <io.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#include <windows.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ESHUTDOWN
#define ESHUTDOWN 150 /* not in the Windows CRT; a number apart from its others */
#endif

typedef unsigned long nfds_t;
typedef unsigned int rlim_t;

struct iovec {
    void *iov_base;
    size_t iov_len;
};

struct msghdr {
    void *msg_name;
    socklen_t msg_namelen;
    struct iovec *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};

struct mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

struct rusage {
    struct timeval ru_utime, ru_stime;
    long ru_maxrss;
};
#define RUSAGE_SELF 0
static inline int ax__win_getrusage(int who, struct rusage *ru)
{
    FILETIME c, e, k, u;
    (void)who;
    memset(ru, 0, sizeof(*ru));
    if (!GetProcessTimes(GetCurrentProcess(), &c, &e, &k, &u)) return -1;
    unsigned long long ku = ((unsigned long long)k.dwHighDateTime << 32 | k.dwLowDateTime) / 10,
                       uu = ((unsigned long long)u.dwHighDateTime << 32 | u.dwLowDateTime) / 10;
    ru->ru_utime.tv_sec = (long)(uu / 1000000), ru->ru_utime.tv_usec = (long)(uu % 1000000);
    ru->ru_stime.tv_sec = (long)(ku / 1000000), ru->ru_stime.tv_usec = (long)(ku % 1000000);
    return 0;
}
#define getrusage ax__win_getrusage
#define pipe(fds) _pipe((fds), 65536, _O_BINARY)
static inline int ax__win_setenv(const char *name, const char *value, int overwrite)
{
    if (!overwrite && getenv(name)) return 0;
    return _putenv_s(name, value) == 0 ? 0 : -1;
}
#define setenv ax__win_setenv
#define unsetenv(name) _putenv_s((name), "")
/* a signal to oneself is raise(); nobody else can be signalled */
static inline int ax__win_kill(int pid, int sig)
{
    if (pid != (int)GetCurrentProcessId()) {
        errno = EPERM;
        return -1;
    }
    return raise(sig);
}
#define kill ax__win_kill

struct rlimit {
    rlim_t rlim_cur, rlim_max;
};

#define RLIMIT_NOFILE 7
#define RLIM_INFINITY ((rlim_t)-1)
#define IOV_MAX 1024
#define MSG_NOSIGNAL 0
#define MSG_MORE 0
#define flockfile _lock_file
#define funlockfile _unlock_file
#define MSG_TRUNC 0x0100        /* msg_flags: set by recvmsg */
#define MSG_DONTWAIT 0x40000000 /* emulated: a poll of no time first (posix.c) */
#define SOCK_NONBLOCK 0x4000
#define SOCK_CLOEXEC 0x8000 /* handles are not inherited unless asked */
#define O_CLOEXEC 0
#define O_NOFOLLOW 0 /* _open does not follow symbolic links by name */
#define O_DIRECTORY 0
#define fsync _commit
#define F_GETFL 3
#define F_SETFL 4
#define F_GETFD 1
#define F_SETFD 2
#define FD_CLOEXEC 1
#ifndef O_NONBLOCK
#define O_NONBLOCK 0x4000
#endif
#define SHUT_RD SD_RECEIVE
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
#define SO_REUSEPORT 0x7ffe /* no such option: setsockopt fails */
#define SO_ATTACH_REUSEPORT_CBPF 0x7ffd
#define EFD_NONBLOCK 1
#define EFD_CLOEXEC 2
#ifndef S_ISSOCK
#define S_ISSOCK(m) 1 /* an AF_UNIX socket file is a reparse point: take it as one */
#endif
#ifndef SIGHUP
#define SIGHUP 1
#endif
#ifndef SIGPIPE
#define SIGPIPE 13
#endif
#define SA_RESTART 0

/* a POSIX errno for the calling thread's last Winsock error */
int ax__win_errno(int wsa);
/* store it, return -1 */
int ax__win_fail(void);
void ax__win_startup(void);

int ax__win_socket(int family, int type, int proto);
int ax__win_accept(int fd, struct sockaddr *sa, socklen_t *len);
int ax__win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int ax__win_bind(int fd, const struct sockaddr *sa, socklen_t len);
int ax__win_listen(int fd, int backlog);
int ax__win_connect(int fd, const struct sockaddr *sa, socklen_t len);
ssize_t ax__win_recv(int fd, void *buf, size_t n, int flags);
ssize_t ax__win_send(int fd, const void *buf, size_t n, int flags);
ssize_t ax__win_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
                         socklen_t *len);
ssize_t ax__win_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                       socklen_t len);
ssize_t ax__win_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t ax__win_recvmsg(int fd, struct msghdr *m, int flags);
int ax__win_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, void *timeout);
int ax__win_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags);
int ax__win_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int ax__win_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int ax__win_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int ax__win_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int ax__win_shutdown(int fd, int how);
int ax__win_close(int fd);
ssize_t ax__win_read(int fd, void *buf, size_t n);
ssize_t ax__win_write(int fd, const void *buf, size_t n);
int ax__win_fcntl(int fd, int cmd, ...);
int ax__win_eventfd(unsigned initval, int flags);
int ax__win_getrlimit(int res, struct rlimit *rl);
#define setrlimit(res, rl) (errno = EPERM, -1) /* no descriptor limit to set */
int ax__win_socketpair(int family, int type, int proto, int sv[2]);
bool ax__win_is_socket(int fd);

/* `struct sigaction` is renamed with the function below */
struct ax__win_sigaction {
    void (*sa_handler)(int);
    int sa_flags;
    int sa_mask;
};
#define sigemptyset(m) ((void)(*(m) = 0))
#define sigset_t _sigset_t
#define sigfillset(m) ((void)(*(m) = ~(_sigset_t)0))
int ax__win_sigaction(int sig, const struct ax__win_sigaction *sa, struct ax__win_sigaction *old);

/* gmtime_r/localtime_r on a timeval's tv_sec, a 32-bit long on Windows */
static inline struct tm *ax__win_time_r(bool local, size_t size, const void *t, struct tm *tm)
{
    time_t v = size == sizeof(long) ? (time_t) * (const long *)t : *(const time_t *)t;
    return (local ? localtime_s(tm, &v) : gmtime_s(tm, &v)) == 0 ? tm : NULL;
}
#undef gmtime_r
#undef localtime_r
#define gmtime_r(t, tm) ax__win_time_r(false, sizeof(*(t)), (t), (tm))
#define localtime_r(t, tm) ax__win_time_r(true, sizeof(*(t)), (t), (tm))

#define timegm _mkgmtime
void *ax__win_memmem(const void *h, size_t hl, const void *n, size_t nl);
#define memmem ax__win_memmem
/* mkdir(path, mode): Windows folders have no mode bits */
#define mkdir(path, mode) _mkdir(path)
/* open: a folder opens too (its handle, FILE_FLAG_BACKUP_SEMANTICS, as a C
 * runtime descriptor), files in binary mode; realpath follows links with
 * GetFinalPathNameByHandleW, as C:/dir/name (forward slashes, as POSIX
 * code expects when it checks a prefix); openat2(RESOLVE_BENEATH) is in <sys/syscall.h>
 * (all in fs_win.c) */
#define O_NOCTTY 0
int ax__win_open(const char *path, int flags, ...);
char *ax__win_realpath(const char *path, char *resolved);
#define open ax__win_open
#define realpath ax__win_realpath
/* struct stat is struct _stat64 (64-bit st_size and times): MinGW-w64's
 * <sys/stat.h> renames it so under _FILE_OFFSET_BITS 64, above; its own
 * struct stat has a 32-bit size, which would cut files at 2 GiB. */
/* lstat: Windows' links are followed (realpath resolves them first in the
 * code that confines paths), so none is a link here */
#define lstat stat
#ifndef S_ISLNK
#define S_ISLNK(m) 0
#endif
/* fstat: a folder's descriptor says S_IFDIR (the C runtime's does not) */
int ax__win_fstat(int fd, struct stat *st);
#undef fstat
#define fstat ax__win_fstat
/* pread; sendfile as a read into a buffer and a send */
ssize_t ax__win_pread(int fd, void *buf, size_t n, off_t off);
ssize_t ax__win_sendfile(int out, int in, off_t *off, size_t n);
#define pread ax__win_pread
#define sendfile ax__win_sendfile

struct pollfd;
int ax__win_poll(struct pollfd *fds, nfds_t n, int timeout);

#define socket ax__win_socket
#define accept ax__win_accept
#define accept4 ax__win_accept4
#define bind ax__win_bind
#define listen ax__win_listen
#define connect ax__win_connect
#define recv ax__win_recv
#define send ax__win_send
#define recvfrom ax__win_recvfrom
#define sendto ax__win_sendto
#define sendmsg ax__win_sendmsg
#define recvmsg ax__win_recvmsg
#define recvmmsg ax__win_recvmmsg
#define sendmmsg ax__win_sendmmsg
#define setsockopt ax__win_setsockopt
#define getsockopt ax__win_getsockopt
#define getsockname ax__win_getsockname
#define getpeername ax__win_getpeername
#define shutdown ax__win_shutdown
#define close ax__win_close
#define read ax__win_read
#define write ax__win_write
#define fcntl ax__win_fcntl
#define eventfd ax__win_eventfd
#define getrlimit ax__win_getrlimit
#define socketpair ax__win_socketpair
#define sigaction ax__win_sigaction
#define poll ax__win_poll

#ifdef __cplusplus
}
#endif
#endif /* _WIN32 */
#endif
