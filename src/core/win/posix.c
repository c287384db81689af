/* posix.c: the POSIX socket calls of axwin.h on Winsock.  Each stores a
 * POSIX errno when it fails, so the shared code's `errno == EAGAIN` and
 * AX_E… codes mean what they mean on Linux. */
#include "internal.h"

#include <fcntl.h>
#include <io.h>
#include <stdarg.h>

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA d;
    (void)once, (void)param, (void)ctx;
    return WSAStartup(MAKEWORD(2, 2), &d) == 0;
}

void ax__win_startup(void)
{
    InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
}

/* Winsock is ready before main: inet_pton and friends need it too.  And
 * standard input and output carry bytes, as on POSIX (axon cat, the
 * examples' tcp_client reading stdin with read and printing with fwrite):
 * without this the C runtime's text mode ends stdin at the first 0x1a
 * byte and writes every \n out as \r\n. */
__attribute__((constructor)) static void wsa_ctor(void)
{
    ax__win_startup();
    _setmode(0, _O_BINARY);
    _setmode(1, _O_BINARY);
}

int ax__win_errno(int wsa)
{
    switch (wsa) {
    case WSAEWOULDBLOCK:
        return EAGAIN;
    case WSAEINPROGRESS:
        return EINPROGRESS;
    case WSAEALREADY:
        return EALREADY;
    case WSAEINTR:
        return EINTR;
    case WSAEBADF:
    case WSAENOTSOCK:
    case ERROR_INVALID_HANDLE:
        return EBADF;
    case WSAEACCES:
        return EACCES;
    case WSAEFAULT:
    case WSAEINVAL:
        return EINVAL;
    case WSAEMFILE:
        return EMFILE;
    case WSAEMSGSIZE:
        return EMSGSIZE;
    case WSAEPROTOTYPE:
        return EPROTOTYPE;
    case WSAENOPROTOOPT:
        return ENOPROTOOPT;
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT:
        return EPROTONOSUPPORT;
    case WSAEOPNOTSUPP:
        return EOPNOTSUPP;
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
        return EAFNOSUPPORT;
    case WSAEADDRINUSE:
        return EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return EADDRNOTAVAIL;
    case WSAENETDOWN:
        return ENETDOWN;
    case WSAENETUNREACH:
        return ENETUNREACH;
    case WSAENETRESET:
        return ENETRESET;
    case WSAECONNABORTED:
        return ECONNABORTED;
    case WSAECONNRESET:
    case WSAEDISCON:
        return ECONNRESET;
    case WSAENOBUFS:
        return ENOBUFS;
    case WSAEISCONN:
        return EISCONN;
    case WSAENOTCONN:
        return ENOTCONN;
    case WSAESHUTDOWN:
        return EPIPE; /* writing after shutdown: as Linux says */
    case WSAETIMEDOUT:
        return ETIMEDOUT;
    case WSAECONNREFUSED:
        return ECONNREFUSED;
    case WSAEHOSTDOWN:
    case WSAEHOSTUNREACH:
        return EHOSTUNREACH;
    case WSA_OPERATION_ABORTED:
        return ECANCELED;
    case WSAENAMETOOLONG:
        return ENAMETOOLONG;
    case WSA_NOT_ENOUGH_MEMORY:
        return ENOMEM;
    default:
        return EIO;
    }
}

int ax__win_fail(void)
{
    errno = ax__win_errno(WSAGetLastError());
    return -1;
}

static int ret(int r)
{
    return r == SOCKET_ERROR ? ax__win_fail() : r;
}

/* Winsock cannot say whether a socket is non-blocking: F_GETFL reads it
 * from this bitmap, one bit per handle value (handles are multiples of 4;
 * larger ones than it covers are taken as non-blocking, as the core's are). */
#define NB_HANDLES (1u << 20)
static volatile LONG nb_bits[NB_HANDLES / 32];

static void nb_note(SOCKET s, bool on)
{
    size_t i = (size_t)s / 4;
    if (i >= NB_HANDLES) return;
    LONG bit = (LONG)(1u << (i % 32));
    if (on)
        InterlockedOr(&nb_bits[i / 32], bit);
    else
        InterlockedAnd(&nb_bits[i / 32], ~bit);
}

static bool nb_get(SOCKET s)
{
    size_t i = (size_t)s / 4;
    return i >= NB_HANDLES || (nb_bits[i / 32] & (LONG)(1u << (i % 32))) != 0;
}

static int nonblocking(SOCKET s, bool on)
{
    u_long v = on;
    if (ioctlsocket(s, FIONBIO, &v) == SOCKET_ERROR) return ax__win_fail();
    nb_note(s, on);
    return 0;
}

#undef socket
int ax__win_socket(int family, int type, int proto)
{
    ax__win_startup();
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    /* no inheritance: the close-on-exec of Windows handles */
    SOCKET s =
        WSASocketW(family, type, proto, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return ax__win_fail();
    nb_note(s, false);
    if ((flags & SOCK_NONBLOCK) && nonblocking(s, true) == -1) {
        int e = errno;
        closesocket(s);
        errno = e;
        return -1;
    }
    return (int)s;
}

#undef accept
int ax__win_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    SOCKET s = accept((SOCKET)fd, sa, len);
    if (s == INVALID_SOCKET) return ax__win_fail();
    nb_note(s, nb_get((SOCKET)fd)); /* inherited from the listener */
    return (int)s;
}

int ax__win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    int s = ax__win_accept(fd, sa, len);
    /* an accepted socket inherits the listener's non-blocking mode; say so anyway */
    if (s != -1 && (flags & SOCK_NONBLOCK)) nonblocking((SOCKET)s, true);
    return s;
}

#undef bind
int ax__win_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return ret(bind((SOCKET)fd, sa, len));
}

#undef listen
int ax__win_listen(int fd, int backlog)
{
    return ret(listen((SOCKET)fd, backlog));
}

#undef connect
int ax__win_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect((SOCKET)fd, sa, len) != SOCKET_ERROR) return 0;
    int e = WSAGetLastError();
    /* a non-blocking connect under way says EINPROGRESS on POSIX */
    errno = e == WSAEWOULDBLOCK ? EINPROGRESS : ax__win_errno(e);
    return -1;
}

static int clamp(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* MSG_DONTWAIT on a socket that may be blocking: Winsock has no such
 * flag, so ask first whether the call would wait. */
static bool would_block(int fd, int *flags, short ev)
{
    if (!(*flags & MSG_DONTWAIT)) return false;
    *flags &= ~MSG_DONTWAIT;
    WSAPOLLFD p = {.fd = (SOCKET)fd, .events = ev};
    if (WSAPoll(&p, 1, 0) != 0) return false; /* ready, or an error the call will report */
    errno = EAGAIN;
    return true;
}

#undef recv
ssize_t ax__win_recv(int fd, void *buf, size_t n, int flags)
{
    if (would_block(fd, &flags, POLLRDNORM)) return -1;
    return ret(recv((SOCKET)fd, buf, clamp(n), flags));
}

#undef send
ssize_t ax__win_send(int fd, const void *buf, size_t n, int flags)
{
    if (would_block(fd, &flags, POLLWRNORM)) return -1;
    return ret(send((SOCKET)fd, buf, clamp(n), flags));
}

#undef recvfrom
ssize_t ax__win_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
                         socklen_t *len)
{
    if (would_block(fd, &flags, POLLRDNORM)) return -1;
    int r = recvfrom((SOCKET)fd, buf, clamp(n), flags, sa, len);
    /* a datagram larger than the buffer: POSIX truncates it quietly */
    if (r == SOCKET_ERROR && WSAGetLastError() == WSAEMSGSIZE) return clamp(n);
    /* an ICMP port unreachable for an earlier send: not this datagram's */
    if (r == SOCKET_ERROR && WSAGetLastError() == WSAECONNRESET && !sa) {
        errno = ECONNREFUSED;
        return -1;
    }
    return ret(r);
}

#undef sendto
ssize_t ax__win_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                       socklen_t len)
{
    if (would_block(fd, &flags, POLLWRNORM)) return -1;
    return ret(sendto((SOCKET)fd, buf, clamp(n), flags, sa, len));
}

#define MAX_WSABUF 64

ssize_t ax__win_sendmsg(int fd, const struct msghdr *m, int flags)
{
    if (would_block(fd, &flags, POLLWRNORM)) return -1;
    WSABUF b[MAX_WSABUF];
    DWORD n = m->msg_iovlen > MAX_WSABUF ? MAX_WSABUF : (DWORD)m->msg_iovlen, sent = 0;
    for (DWORD i = 0; i < n; i++) {
        b[i].buf = m->msg_iov[i].iov_base;
        b[i].len = (ULONG)m->msg_iov[i].iov_len;
    }
    int r = WSASendTo((SOCKET)fd, b, n, &sent, (DWORD)flags, m->msg_name,
                      m->msg_name ? (int)m->msg_namelen : 0, NULL, NULL);
    return r == SOCKET_ERROR ? ax__win_fail() : (ssize_t)sent;
}

ssize_t ax__win_recvmsg(int fd, struct msghdr *m, int flags)
{
    if (would_block(fd, &flags, POLLRDNORM)) return -1;
    WSABUF b[MAX_WSABUF];
    DWORD n = m->msg_iovlen > MAX_WSABUF ? MAX_WSABUF : (DWORD)m->msg_iovlen, got = 0,
          fl = (DWORD)flags;
    for (DWORD i = 0; i < n; i++) {
        b[i].buf = m->msg_iov[i].iov_base;
        b[i].len = (ULONG)m->msg_iov[i].iov_len;
    }
    INT alen = (INT)m->msg_namelen;
    int r = WSARecvFrom((SOCKET)fd, b, n, &got, &fl, m->msg_name, m->msg_name ? &alen : NULL, NULL,
                        NULL);
    m->msg_flags = 0;
    if (r == SOCKET_ERROR) {
        int e = WSAGetLastError();
        /* Nothing to read, but an error may wait on the socket: Linux
         * reports it on this receive.  Wine keeps an ICMP port unreachable
         * there (SO_ERROR) and never fails a receive with it, and once its
         * WSAPoll has said POLLERR, not a send either; Windows fails the
         * receive with WSAECONNRESET itself.  Reading SO_ERROR clears it. */
        int pending = 0;
        socklen_t plen = sizeof pending;
        if (e == WSAEWOULDBLOCK &&
            ax__win_getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &plen) == 0 && pending) {
            errno = pending == ECONNRESET ? ECONNREFUSED : pending;
            return -1;
        }
        if (e != WSAEMSGSIZE) {
            errno = e == WSAECONNRESET ? ECONNREFUSED : ax__win_errno(e);
            return -1;
        }
        m->msg_flags = MSG_TRUNC;
    }
    if (m->msg_name) m->msg_namelen = (socklen_t)alen;
    m->msg_controllen = 0;
    return (ssize_t)got;
}

int ax__win_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, void *timeout)
{
    (void)timeout;
    flags &= ~MSG_DONTWAIT; /* the core's sockets are non-blocking */
    unsigned i = 0;
    for (; i < n; i++) {
        ssize_t r = ax__win_recvmsg(fd, &v[i].msg_hdr, flags);
        if (r == -1) return i ? (int)i : -1;
        v[i].msg_len = (unsigned)r;
    }
    return (int)i;
}

int ax__win_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    flags &= ~MSG_DONTWAIT;
    unsigned i = 0;
    for (; i < n; i++) {
        ssize_t r = ax__win_sendmsg(fd, &v[i].msg_hdr, flags);
        if (r == -1) return i ? (int)i : -1;
        v[i].msg_len = (unsigned)r;
    }
    return (int)i;
}

#undef setsockopt
int ax__win_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    /* SO_REUSEADDR on Windows lets another socket take over a bound port:
     * listeners go without it, as libuv's do */
    if (level == SOL_SOCKET && name == SO_REUSEADDR) return 0;
    return ret(setsockopt((SOCKET)fd, level, name, val, len));
}

#undef getsockopt
int ax__win_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    int r = getsockopt((SOCKET)fd, level, name, val, len);
    /* SO_ERROR carries a WSA code: the shared code wants an errno */
    if (r == 0 && level == SOL_SOCKET && name == SO_ERROR && *(int *)val)
        *(int *)val = ax__win_errno(*(int *)val);
    return ret(r);
}

#undef getsockname
int ax__win_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return ret(getsockname((SOCKET)fd, sa, len));
}

#undef getpeername
int ax__win_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return ret(getpeername((SOCKET)fd, sa, len));
}

#undef shutdown
int ax__win_shutdown(int fd, int how)
{
    return ret(shutdown((SOCKET)fd, how));
}

bool ax__win_is_socket(int fd)
{
    int type;
    int len = sizeof type;
    if (fd < 0) return false;
    int e = WSAGetLastError();
    bool yes = getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
    WSASetLastError(e);
    return yes;
}

#undef close
int ax__win_close(int fd)
{
    if (ax__win_is_socket(fd)) return ret(closesocket((SOCKET)fd));
    return _close(fd);
}

#undef read
ssize_t ax__win_read(int fd, void *buf, size_t n)
{
    if (ax__win_is_socket(fd)) return ax__win_recv(fd, buf, n, 0);
    return _read(fd, buf, n > INT_MAX ? INT_MAX : (unsigned)n);
}

#undef write
ssize_t ax__win_write(int fd, const void *buf, size_t n)
{
    if (ax__win_is_socket(fd)) return ax__win_send(fd, buf, n, 0);
    return _write(fd, buf, n > INT_MAX ? INT_MAX : (unsigned)n);
}

int ax__win_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int arg = cmd == F_SETFL || cmd == F_SETFD ? va_arg(ap, int) : 0;
    va_end(ap);
    switch (cmd) {
    case F_GETFL:
        return ax__win_is_socket(fd) && nb_get((SOCKET)fd) ? O_NONBLOCK : 0;
    case F_GETFD:
        return FD_CLOEXEC; /* sockets: WSA_FLAG_NO_HANDLE_INHERIT */
    case F_SETFL:
        return ax__win_is_socket(fd) ? nonblocking((SOCKET)fd, (arg & O_NONBLOCK) != 0) : 0;
    default:
        return 0; /* handles are not inherited (WSA_FLAG_NO_HANDLE_INHERIT) */
    }
}

/* The loop's wake-up: a UDP socket on the loopback connected to itself.
 * A write is a datagram, a read takes one (eventfd's 8 bytes). */
int ax__win_eventfd(unsigned initval, int flags)
{
    (void)initval, (void)flags;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int alen = sizeof a;
    int fd = ax__win_socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd == -1) return -1;
    if (bind((SOCKET)fd, (struct sockaddr *)&a, sizeof a) == SOCKET_ERROR ||
        getsockname((SOCKET)fd, (struct sockaddr *)&a, &alen) == SOCKET_ERROR ||
        connect((SOCKET)fd, (struct sockaddr *)&a, alen) == SOCKET_ERROR) {
        ax__win_fail();
        int e = errno;
        closesocket((SOCKET)fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* a socket pair: a TCP connection on the loopback (AF_UNIX where asked) */
int ax__win_socketpair(int family, int type, int proto, int sv[2])
{
    (void)family, (void)proto;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int alen = sizeof a, nb = type & SOCK_NONBLOCK;
    int l = ax__win_socket(AF_INET, SOCK_STREAM, 0), c = -1, s = -1;
    if (l == -1) return -1;
    if (bind((SOCKET)l, (struct sockaddr *)&a, sizeof a) == SOCKET_ERROR ||
        getsockname((SOCKET)l, (struct sockaddr *)&a, &alen) == SOCKET_ERROR ||
        listen((SOCKET)l, 1) == SOCKET_ERROR)
        goto fail;
    if ((c = ax__win_socket(AF_INET, SOCK_STREAM, 0)) == -1) goto fail;
    if (connect((SOCKET)c, (struct sockaddr *)&a, alen) == SOCKET_ERROR) goto fail;
    if ((s = ax__win_accept(l, NULL, NULL)) == -1) goto fail;
    closesocket((SOCKET)l);
    if (nb) {
        nonblocking((SOCKET)c, true);
        nonblocking((SOCKET)s, true);
    }
    sv[0] = c;
    sv[1] = s;
    return 0;
fail:
    ax__win_fail();
    int e = errno;
    closesocket((SOCKET)l);
    if (c != -1) closesocket((SOCKET)c);
    errno = e;
    return -1;
}

int ax__win_getrlimit(int res, struct rlimit *rl)
{
    (void)res;
    rl->rlim_cur = rl->rlim_max = 16384; /* no descriptor limit to speak of */
    return 0;
}

int ax__win_sigaction(int sig, const struct ax__win_sigaction *sa, struct ax__win_sigaction *old)
{
    if (old) *old = (struct ax__win_sigaction){0};
    if (!sa) return 0;
    /* SIGINT (Ctrl-C, Ctrl-Break) and SIGTERM exist; SIGHUP and SIGPIPE do not */
    if (sig != SIGINT && sig != SIGTERM) {
        errno = EINVAL;
        return -1;
    }
    return signal(sig, sa->sa_handler) == SIG_ERR ? -1 : 0;
}

#undef poll
int ax__win_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (n == 0) { /* WSAPoll refuses an empty set */
        Sleep(timeout < 0 ? INFINITE : (DWORD)timeout);
        return 0;
    }
    return ret(WSAPoll(fds, (ULONG)n, timeout));
}

ssize_t ax__win_pread(int fd, void *buf, size_t n, off_t off)
{
    if (_lseeki64(fd, off, SEEK_SET) == -1) return -1;
    return _read(fd, buf, n > INT_MAX ? INT_MAX : (unsigned)n);
}

ssize_t ax__win_sendfile(int out, int in, off_t *off, size_t n)
{
    char buf[64 * 1024];
    ssize_t r = ax__win_pread(in, buf, n < sizeof buf ? n : sizeof buf, *off);
    if (r <= 0) return r;
    ssize_t w = ax__win_send(out, buf, (size_t)r, 0);
    if (w > 0) *off += w;
    return w;
}

void *ax__win_memmem(const void *h, size_t hl, const void *n, size_t nl)
{
    const char *p = h;
    if (nl == 0) return (void *)p;
    for (; hl >= nl; p++, hl--)
        if (*p == *(const char *)n && memcmp(p, n, nl) == 0) return (void *)p;
    return NULL;
}

/* The C runtime's strerror knows the classic codes (in ASCII, so UTF-8);
 * the socket codes it numbers from 100 it calls "Unknown error". */
const char *ax__win_strerror(int e)
{
    switch (e) {
    case EADDRINUSE:
        return "Address already in use";
    case EADDRNOTAVAIL:
        return "Cannot assign requested address";
    case EAFNOSUPPORT:
        return "Address family not supported by protocol";
    case EALREADY:
        return "Operation already in progress";
    case ECANCELED:
        return "Operation canceled";
    case ECONNABORTED:
        return "Software caused connection abort";
    case ECONNREFUSED:
        return "Connection refused";
    case ECONNRESET:
        return "Connection reset by peer";
    case EHOSTUNREACH:
        return "No route to host";
    case EINPROGRESS:
        return "Operation now in progress";
    case EISCONN:
        return "Transport endpoint is already connected";
    case EMSGSIZE:
        return "Message too long";
    case ENETDOWN:
        return "Network is down";
    case ENETRESET:
        return "Network dropped connection on reset";
    case ENETUNREACH:
        return "Network is unreachable";
    case ENOBUFS:
        return "No buffer space available";
    case ENOPROTOOPT:
        return "Protocol not available";
    case ENOTCONN:
        return "Transport endpoint is not connected";
    case ENOTSOCK:
        return "Socket operation on non-socket";
    case EOPNOTSUPP:
        return "Operation not supported";
    case EPROTO:
        return "Protocol error";
    case EPROTONOSUPPORT:
        return "Protocol not supported";
    case ETIMEDOUT:
        return "Connection timed out";
    case EWOULDBLOCK:
        return "Resource temporarily unavailable";
    case ESHUTDOWN:
        return "Cannot send after transport endpoint shutdown";
    default:
        return strerror(e);
    }
}
