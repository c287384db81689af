/* backend_afd.c: the Windows backend, readiness through the AFD driver.
 *
 * Winsock's select() and WSAPoll() scan every socket on every call; the
 * scalable Windows API is the I/O completion port.  A completion port
 * reports finished operations, not readiness, but the AFD driver under
 * Winsock has one operation that completes when a socket becomes ready:
 * IOCTL_AFD_POLL (what WSAPoll itself is made of, and the technique of
 * wepoll and libuv's poll handles).  This backend submits one such poll
 * per socket, on a helper handle of the AFD device that is tied to the
 * loop's completion port, and waits with GetQueuedCompletionStatusEx.
 *
 * Readiness keeps the rest of the core as it is: connections use the same
 * driver as epoll and poll (conn_sock.c), listeners accept, UDP sockets
 * receive in batches.  A completion model like the io_uring driver would
 * need buffers lent to the kernel per operation and a second driver.
 *
 * Level-triggered, as the poll backend: after a socket's poll completes
 * and its callback has run, the poll is submitted again before the next
 * wait, and completes at once while the condition holds.  A poll may be
 * out when interest changes or the socket is removed: it is cancelled,
 * and its state is freed or resubmitted when the cancellation completes. */
#include "internal.h"

#include <mswsock.h>
#include <winternl.h>

#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE _WSAIOR(IOC_WS2, 34)
#endif

#define IOCTL_AFD_POLL 0x00012024
#define AFD_POLL_RECEIVE 0x0001
#define AFD_POLL_RECEIVE_EXPEDITED 0x0002
#define AFD_POLL_SEND 0x0004
#define AFD_POLL_DISCONNECT 0x0008
#define AFD_POLL_ABORT 0x0010
#define AFD_POLL_LOCAL_CLOSE 0x0020
#define AFD_POLL_ACCEPT 0x0080
#define AFD_POLL_CONNECT_FAIL 0x0100
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120L)
#endif
#ifndef STATUS_PENDING
#define STATUS_PENDING ((NTSTATUS)0x00000103L)
#endif

NTSTATUS NTAPI NtCancelIoFileEx(HANDLE file, PIO_STATUS_BLOCK req, PIO_STATUS_BLOCK out);

typedef struct {
    HANDLE handle;
    ULONG events;
    NTSTATUS status;
} afd_poll_handle;

typedef struct {
    LARGE_INTEGER timeout;
    ULONG count;
    ULONG exclusive;
    afd_poll_handle handles[1];
} afd_poll_info;

#define MAX_EVENTS 256

/* One socket's poll.  Lives while its poll is out, even after the io is
 * gone (io NULL): the driver writes into it until the completion. */
typedef struct afd_state {
    IO_STATUS_BLOCK iosb;
    afd_poll_info info;
    ax__io *io;
    HANDLE base;    /* the socket's base handle, what AFD polls */
    bool pending;   /* a poll is out */
    bool cancelled; /* ... and asked to stop */
    bool queued;    /* in the submit list */
    struct afd_state *next_submit;
} afd_state;

typedef struct {
    HANDLE iocp, afd;
    afd_state **states; /* by io->slot */
    unsigned len, cap;
    afd_state *submit;    /* polls to (re)submit before the next wait */
    unsigned outstanding; /* polls out, cancelled or not */
} afd_data;

static int win_code(DWORD e)
{
    return -ax__win_errno((int)e);
}

static int open_afd(afd_data *d)
{
    static const WCHAR name[] = L"\\Device\\Afd\\Axon";
    UNICODE_STRING us = {sizeof name - sizeof(WCHAR), sizeof name, (PWSTR)name};
    OBJECT_ATTRIBUTES oa = {.Length = sizeof oa, .ObjectName = &us};
    IO_STATUS_BLOCK iosb;
    NTSTATUS st = NtCreateFile(&d->afd, SYNCHRONIZE, &oa, &iosb, NULL, 0,
                               FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, NULL, 0);
    if (st != 0) return win_code(RtlNtStatusToDosError(st));
    if (!CreateIoCompletionPort(d->afd, d->iocp, 0, 0) ||
        !SetFileCompletionNotificationModes(d->afd, FILE_SKIP_SET_EVENT_ON_HANDLE)) {
        int rc = win_code(GetLastError());
        CloseHandle(d->afd);
        return rc;
    }
    return 0;
}

static int afd_init(ax_loop *loop)
{
    afd_data *d = ax_calloc(1, sizeof(*d));
    if (!d) return AX_ENOMEM;
    d->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!d->iocp) {
        ax_free(d);
        return win_code(GetLastError());
    }
    int rc = open_afd(d);
    if (rc) {
        CloseHandle(d->iocp);
        ax_free(d);
        return rc;
    }
    loop->backend_data = d;
    return 0;
}

static ULONG to_afd(unsigned ev)
{
    ULONG m = AFD_POLL_LOCAL_CLOSE | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL;
    if (ev & AX__IN) m |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT;
    if (ev & AX__OUT) m |= AFD_POLL_SEND;
    return m;
}

static void queue_submit(afd_data *d, afd_state *s)
{
    if (s->queued) return;
    s->queued = true;
    s->next_submit = d->submit;
    d->submit = s;
}

static void cancel(afd_data *d, afd_state *s)
{
    if (!s->pending || s->cancelled) return;
    IO_STATUS_BLOCK iosb;
    NtCancelIoFileEx(d->afd, &s->iosb, &iosb);
    s->cancelled = true;
}

static int get_base(int fd, HANDLE *out)
{
    DWORD n;
    SOCKET base = INVALID_SOCKET;
    if (WSAIoctl((SOCKET)fd, SIO_BASE_HANDLE, NULL, 0, &base, sizeof base, &n, NULL, NULL) ==
            SOCKET_ERROR ||
        base == INVALID_SOCKET)
        base = (SOCKET)fd; /* no layered providers in the way (Wine) */
    *out = (HANDLE)base;
    return 0;
}

static int grow(afd_data *d)
{
    unsigned cap = d->cap ? d->cap * 2 : 64;
    afd_state **p = ax_realloc(d->states, cap * sizeof(*p));
    if (!p) return AX_ENOMEM;
    d->states = p;
    d->cap = cap;
    return 0;
}

static int afd_add(ax_loop *loop, ax__io *io, unsigned events)
{
    afd_data *d = loop->backend_data;
    if (d->len >= AX__IO_SLOTS) return AX_EMFILE;
    if (d->len == d->cap && grow(d) != 0) return AX_ENOMEM;
    afd_state *s = ax_calloc(1, sizeof(*s));
    if (!s) return AX_ENOMEM;
    get_base(io->fd, &s->base);
    s->io = io;
    io->slot = (int)d->len;
    d->states[d->len++] = s;
    io->events = events;
    if (events) queue_submit(d, s);
    return 0;
}

static int afd_mod(ax_loop *loop, ax__io *io, unsigned events)
{
    afd_data *d = loop->backend_data;
    if (io->slot < 0) return AX_EINVAL;
    afd_state *s = d->states[io->slot];
    io->events = events;
    /* a poll out for other events: stop it; its completion resubmits */
    if (s->pending && s->info.handles[0].events != to_afd(events)) cancel(d, s);
    if (!s->pending && events) queue_submit(d, s);
    return 0;
}

static void afd_del(ax_loop *loop, ax__io *io)
{
    afd_data *d = loop->backend_data;
    unsigned slot = (unsigned)io->slot, last = d->len - 1;
    if (io->slot < 0 || slot >= d->len) return;
    afd_state *s = d->states[slot];
    if (slot != last) {
        d->states[slot] = d->states[last];
        d->states[slot]->io->slot = (int)slot;
    }
    d->len--;
    io->slot = -1;
    s->io = NULL;
    if (s->pending)
        cancel(d, s); /* freed when the cancellation completes */
    else if (!s->queued)
        ax_free(s);
    /* (a queued state is freed by the submit pass) */
}

static int submit(afd_data *d, afd_state *s)
{
    s->info.timeout.QuadPart = INT64_MAX;
    s->info.count = 1;
    s->info.exclusive = FALSE;
    s->info.handles[0].handle = s->base;
    s->info.handles[0].events = to_afd(s->io->events);
    s->info.handles[0].status = 0;
    s->iosb.Status = STATUS_PENDING;
    NTSTATUS st = NtDeviceIoControlFile(d->afd, NULL, NULL, s, &s->iosb, IOCTL_AFD_POLL, &s->info,
                                        sizeof s->info, &s->info, sizeof s->info);
    if (st != 0 && st != STATUS_PENDING) return win_code(RtlNtStatusToDosError(st));
    /* done or pending, the completion comes through the port */
    s->pending = true;
    s->cancelled = false;
    d->outstanding++;
    return 0;
}

static void submit_all(afd_data *d)
{
    afd_state *s = d->submit;
    d->submit = NULL;
    while (s) {
        afd_state *next = s->next_submit;
        s->queued = false;
        if (!s->io)
            ax_free(s);
        else if (!s->pending && s->io->events && s->io->fd >= 0 && submit(d, s) != 0)
            queue_submit(d, s); /* retried on the next wait */
        s = next;
    }
}

static unsigned from_afd(ULONG e)
{
    unsigned r = 0;
    if (e & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT | AFD_POLL_RECEIVE_EXPEDITED))
        r |= AX__IN;
    if (e & AFD_POLL_SEND) r |= AX__OUT;
    if (e & AFD_POLL_ABORT) r |= AX__HUP | AX__IN;
    if (e & AFD_POLL_CONNECT_FAIL) r |= AX__ERR | AX__OUT;
    return r;
}

/* One completion: the readiness to report, 0 for none. */
static unsigned completed(afd_data *d, afd_state *s)
{
    s->pending = false;
    d->outstanding--;
    if (!s->io) {
        if (!s->queued) ax_free(s);
        return 0;
    }
    queue_submit(d, s); /* level-triggered: ask again next time round */
    if (s->cancelled || s->iosb.Status == STATUS_CANCELLED) return 0;
    if (s->iosb.Status != 0) return AX__ERR;
    if (s->info.count < 1) return 0;
    ULONG e = s->info.handles[0].events;
    if (e & AFD_POLL_LOCAL_CLOSE) return 0;
    return from_afd(e) & (s->io->events | AX__ERR | AX__HUP);
}

/* Every poll still out is cancelled and its completion awaited: the
 * driver writes into a state until then. */
static void afd_destroy(ax_loop *loop)
{
    afd_data *d = loop->backend_data;
    for (unsigned i = 0; i < d->len; i++) {
        afd_state *s = d->states[i];
        s->io = NULL;
        if (s->pending)
            cancel(d, s);
        else if (!s->queued)
            ax_free(s);
    }
    for (int tries = 0; d->outstanding > 0 && tries < 50; tries++) {
        OVERLAPPED_ENTRY ent[MAX_EVENTS];
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(d->iocp, ent, MAX_EVENTS, &n, 100, FALSE)) continue;
        for (ULONG i = 0; i < n; i++)
            if (ent[i].lpOverlapped) completed(d, (afd_state *)ent[i].lpOverlapped);
    }
    for (afd_state *s = d->submit, *next; s; s = next) {
        next = s->next_submit;
        if (!s->pending) ax_free(s);
    }
    CloseHandle(d->afd);
    CloseHandle(d->iocp);
    ax_free(d->states);
    ax_free(d);
}

static int afd_wait(ax_loop *loop, int timeout_ms)
{
    afd_data *d = loop->backend_data;
    OVERLAPPED_ENTRY ent[MAX_EVENTS];
    ax__io *ready[MAX_EVENTS];
    unsigned rev[MAX_EVENTS];
    ULONG n = 0;
    submit_all(d);
    BOOL ok = GetQueuedCompletionStatusEx(d->iocp, ent, MAX_EVENTS, &n,
                                          timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms, FALSE);
    loop->now = ax__monotonic_ms(); /* callbacks below see the time of waking */
    if (!ok) return GetLastError() == WAIT_TIMEOUT ? 0 : win_code(GetLastError());
    unsigned k = 0;
    for (ULONG i = 0; i < n; i++) {
        afd_state *s = (afd_state *)ent[i].lpOverlapped;
        if (!s) continue;
        unsigned r = completed(d, s);
        if (!r) continue;
        ready[k] = s->io;
        rev[k++] = r;
    }
    /* an io closed by an earlier callback has fd -1 and is skipped */
    for (unsigned i = 0; i < k; i++)
        ax__io_dispatch(loop, ready[i], rev[i]);
    return (int)k;
}

const ax__backend ax__backend_afd = {
    "afd", false, afd_init, afd_destroy, afd_add, afd_mod, afd_del, afd_wait, false,
};
