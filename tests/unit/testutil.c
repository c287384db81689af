/* Helpers shared by the unit tests; see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

ax_loop *tu_loop(void)
{
    int err = 0;
    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        char d[96];
        snprintf(d, sizeof d, "ax_loop_new failed: %d (%s)", err, ax_strerror(err));
        ax_test_fail(__FILE__, __LINE__, "loop != NULL", d);
    }
    const char *want = getenv("AXON_BACKEND");
    if (want && *want) ASSERT_STREQ(ax_loop_backend(loop), want);
    return loop;
}

void tu_run_for(ax_loop *loop, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    for (;;) {
        uint64_t now = tu_now_ms();
        if (now >= end) break;
        uint64_t left = end - now;
        ASSERT(ax_loop_run_once(loop, left < 10 ? (int)left : 10) >= 0);
    }
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    ASSERT(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* opendir itself holds one descriptor while counting. */
int tu_count_fds(void)
{
    return count_dir("/proc/self/fd") - 1;
}

int tu_fds_settle(int want)
{
    uint64_t end = tu_now_ms() + 2000;
    int have;
    for (;;) {
        have = tu_count_fds();
#ifdef _WIN32
        if (have <= want) return want; /* (Wine's own descriptors come and go) */
#else
        if (have == want) return have;
#endif
        if (tu_now_ms() >= end) return have;
        tu_sleep_ms(5);
    }
}

int tu_count_threads(void)
{
    return count_dir("/proc/self/task");
}

int tu_wait_threads(int n, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    int have;
    while ((have = tu_count_threads()) != n && tu_now_ms() < end)
        tu_sleep_ms(1);
    return have;
}

const char *tu_url(const ax_addr *a, char *buf, size_t len)
{
    return ax_addr_format(a, buf, len);
}

int tu_connect(const ax_addr *a, int rcvbuf)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd != -1);
    if (rcvbuf > 0) ASSERT(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
    int rc;
    do {
        rc = connect(fd, (const struct sockaddr *)&a->sa, a->len);
    } while (rc == -1 && errno == EINTR);
    if (rc == -1) {
        char d[64];
        snprintf(d, sizeof d, "errno %d (%s)", errno, strerror(errno));
        ax_test_fail(__FILE__, __LINE__, "connect() to the test listener", d);
    }
    return fd;
}

void tu_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR) continue;
        ASSERT(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

bool tu_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc;
    do {
        rc = poll(&p, 1, ms);
    } while (rc == -1 && errno == EINTR);
    return rc == 1;
}

ssize_t tu_read_n(int fd, void *buf, size_t len, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    size_t got = 0;
    while (got < len) {
        uint64_t now = tu_now_ms();
        if (now >= end || !tu_readable(fd, (int)(end - now))) break;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n == -1 && errno == EINTR) continue;
        if (n == -1) return -errno;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t tu_read_to_eof(int fd, void *buf, size_t cap, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    size_t got = 0;
    char sink[65536];
    for (;;) {
        uint64_t now = tu_now_ms();
        if (now >= end || !tu_readable(fd, (int)(end - now))) return -ETIMEDOUT;
        char *dst = got < cap ? (char *)buf + got : sink;
        size_t room = got < cap ? cap - got : sizeof sink;
        ssize_t n = recv(fd, dst, room, 0);
        if (n == -1 && errno == EINTR) continue;
        if (n == -1) return -errno;
        if (n == 0) return (ssize_t)got;
        got += (size_t)n;
    }
}

static ssize_t loop_read(ax_loop *loop, int fd, char *buf, size_t cap, int ms, bool want_eof)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    size_t got = 0;
    char sink[65536];
    while (want_eof || got < cap) {
        char *dst = got < cap ? buf + got : sink;
        size_t room = got < cap ? cap - got : sizeof sink;
        ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) return (ssize_t)got;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -errno;
        if (tu_now_ms() > end) return want_eof ? -ETIMEDOUT : (ssize_t)got;
        ASSERT(ax_loop_run_once(loop, 5) >= 0);
    }
    return (ssize_t)got;
}

ssize_t tu_loop_read_to_eof(ax_loop *loop, int fd, void *buf, size_t cap, int ms)
{
    return loop_read(loop, fd, buf, cap, ms, true);
}

ssize_t tu_loop_read_n(ax_loop *loop, int fd, void *buf, size_t len, int ms)
{
    return loop_read(loop, fd, buf, len, ms, false);
}

void tu_close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    ASSERT(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

int tu_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd != -1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    ASSERT(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ASSERT(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    close(fd);
    return ntohs(sin.sin_port);
}

bool tu_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) return false;
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&s6, sizeof s6) == 0;
    close(fd);
    return ok;
}

void tu_fill_pattern(unsigned char *buf, size_t len, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = tu_pattern(offset + i);
}

size_t tu_check_pattern(const unsigned char *buf, size_t len, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != tu_pattern(offset + i)) return i;
    return len;
}

static void *writer_main(void *arg)
{
    tu_writer *w = arg;
    w->fd = tu_connect(&w->addr, 0);
    unsigned char chunk[65536];
    size_t off = 0;
    while (off < w->len) {
        size_t n = w->len - off < sizeof chunk ? w->len - off : sizeof chunk;
        tu_fill_pattern(chunk, n, off);
        tu_write_all(w->fd, chunk, n);
        off += n;
    }
    if (w->shut_wr) {
        shutdown(w->fd, SHUT_WR);
    } else {
        close(w->fd);
        w->fd = -1;
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

void tu_writer_start(tu_writer *w)
{
    pthread_t th;
    w->done = 0;
    w->fd = -1;
    ASSERT_EQ(pthread_create(&th, NULL, writer_main, w), 0);
    w->thread = (unsigned long)th;
}

void tu_writer_join(tu_writer *w)
{
    pthread_join((pthread_t)w->thread, NULL);
    if (w->fd != -1) close(w->fd);
    w->fd = -1;
}

pid_t tu_fork(void (*fn)(void *arg), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT(pid != -1);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    return pid;
}

int tu_wait(pid_t pid, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r == -1 && errno != EINTR) return -1;
        if (tu_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tu_sleep_ms(2);
    }
}

/* ---- echo server ------------------------------------------------------- */

static void echo_open(ax_conn *c)
{
    tu_server *s = ax_conn_data(c);
    s->opened++;
    s->last = c;
}

static size_t echo_data(ax_conn *c, const char *data, size_t len)
{
    tu_server *s = ax_conn_data(c);
    if (ax_conn_write(c, data, len) < 0) s->write_errors++;
    return len;
}

static void echo_close(ax_conn *c, int reason)
{
    tu_server *s = ax_conn_data(c);
    s->closed++;
    s->last_reason = reason;
    s->bytes_in += ax_conn_bytes_in(c);
    s->bytes_out += ax_conn_bytes_out(c);
    if (s->last == c) s->last = NULL;
}

void tu_echo_listen(tu_server *s, ax_loop *loop, const char *url, const ax_conn_opts *o)
{
    static const ax_conn_cbs cbs = {
        .on_open = echo_open, .on_data = echo_data, .on_close = echo_close};
    int err = 0;
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->ls = ax_listen(loop, url, &cbs, o, s, &err);
    if (!s->ls) {
        char d[160];
        snprintf(d, sizeof d, "ax_listen(%s): %d (%s)", url, err, ax_strerror(err));
        ax_test_fail(__FILE__, __LINE__, "listener != NULL", d);
    }
    s->addr = *ax_listener_addr(s->ls);
    ax_addr_format(&s->addr, s->url, sizeof s->url);
}

ax_conn *tu_echo_accept(tu_server *s, ax_loop *loop, int *fd)
{
    tu_echo_listen(s, loop, "tcp://127.0.0.1:0", NULL);
    *fd = tu_connect(&s->addr, 0);
    RUN_UNTIL(loop, s->last != NULL, 10000);
    return s->last;
}

/* ---- counting allocator ------------------------------------------------ */

/* Each block carries its size in a header as large as max_align_t, so the
 * pointer handed out keeps malloc's alignment. */
typedef union tu_hdr {
    size_t size;
    max_align_t align;
} tu_hdr;

static atomic_long live_count, live_bytes, total_allocs, failures;
static atomic_long fail_budget = -1;
static atomic_bool fail_once;

static bool may_allocate(void)
{
    long b = atomic_load(&fail_budget);
    while (b >= 0) {
        if (b == 0) {
            if (atomic_load(&fail_once) && !atomic_compare_exchange_strong(&fail_budget, &b, -1))
                continue; /* another thread took the single failure */
            atomic_fetch_add(&failures, 1);
            return false;
        }
        if (atomic_compare_exchange_weak(&fail_budget, &b, b - 1)) break;
    }
    atomic_fetch_add(&total_allocs, 1);
    return true;
}

static void *tu_malloc(size_t size)
{
    if (!may_allocate()) return NULL;
    tu_hdr *h = malloc(sizeof(*h) + size);
    if (!h) return NULL;
    h->size = size;
    atomic_fetch_add(&live_count, 1);
    atomic_fetch_add(&live_bytes, (long)size);
    return h + 1;
}

static void tu_free(void *p)
{
    if (!p) return;
    tu_hdr *h = (tu_hdr *)p - 1;
    atomic_fetch_sub(&live_count, 1);
    atomic_fetch_sub(&live_bytes, (long)h->size);
    /* Poison so a use after free shows up even without ASan. */
    memset(p, 0xdd, h->size);
    free(h);
}

static void *tu_realloc(void *p, size_t size)
{
    if (!p) return tu_malloc(size);
    tu_hdr *h = (tu_hdr *)p - 1;
    size_t old = h->size;
    if (size > old && !may_allocate()) return NULL;
    tu_hdr *nh = realloc(h, sizeof(*nh) + size);
    if (!nh) return NULL;
    nh->size = size;
    atomic_fetch_add(&live_bytes, (long)size - (long)old);
    return nh + 1;
}

void tu_alloc_install(void)
{
    static const ax_allocator a = {tu_malloc, tu_realloc, tu_free};
    ASSERT_EQ(ax_set_allocator(&a), 0);
}

long tu_alloc_live_count(void)
{
    return atomic_load(&live_count);
}
long tu_alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}
long tu_alloc_total(void)
{
    return atomic_load(&total_allocs);
}
long tu_alloc_failures(void)
{
    return atomic_load(&failures);
}
void tu_alloc_fail_after(long n)
{
    atomic_store(&fail_once, false);
    atomic_store(&fail_budget, n);
}

void tu_alloc_fail_once_after(long n)
{
    atomic_store(&fail_once, true);
    atomic_store(&fail_budget, n);
}

uint8_t *tu_guarded(const void *src, size_t len)
{
    static uint8_t *base;
    static size_t room;
    if (!base) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        room = (4u << 20) / page * page;
        base = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT(base != MAP_FAILED);
        ASSERT(mprotect(base + room, page, PROT_NONE) == 0);
    }
    ASSERT(len <= room);
    uint8_t *at = base + room - len;
    if (len) memmove(at, src, len);
    return at;
}

size_t tu_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v = -1;
        if (*p == ' ') continue;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        ASSERT(v >= 0);
        if (hi < 0) {
            hi = v;
            continue;
        }
        ASSERT(n < cap);
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    ASSERT(hi < 0);
    return n;
}
