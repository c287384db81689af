/* ws-bcast-load: load for a WebSocket broadcast server.
 *
 *     ws-bcast-load [-n RECEIVERS] [-s SIZE] [-w WINDOW] [-t SECS] HOST PORT
 *
 * Opens RECEIVERS connections that only read, and one sender that sends
 * binary messages of SIZE bytes (8..125; the first 8 are a sequence
 * number), keeping at most WINDOW messages that have not yet reached every
 * receiver.  The server must relay each message to every other client.
 * Prints `msgs/s=... deliveries/s=...` over the measured seconds.  One
 * thread, epoll, blocking handshakes; plain sockets so the load generator
 * shares no code with the server it measures. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define RING 4096

typedef struct rx {
    int fd;
    size_t have; /* bytes of the current frame read so far */
    unsigned char seq[8];
} rx;

static int n_rx = 1000, size = 64, window = 64, secs = 5;
static uint32_t cnt[RING];
static uint64_t sent, done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_ws(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    char buf[1024];
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("ws-bcast-load: connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int n = snprintf(buf, sizeof buf,
                     "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     host, port);
    if (write(fd, buf, (size_t)n) != n) exit(1);
    size_t got = 0; /* read the 101 byte by byte: nothing of the stream is lost */
    while (got < 4 || memcmp(buf + got - 4, "\r\n\r\n", 4) != 0) {
        if (got == sizeof buf - 1 || read(fd, buf + got, 1) != 1) {
            fprintf(stderr, "ws-bcast-load: handshake failed\n");
            exit(1);
        }
        got++;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0) exit(1);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void send_one(int fd)
{
    unsigned char f[6 + 125] = {0x82, (unsigned char)(0x80 | size), 0x11, 0x22, 0x33, 0x44};
    uint64_t seq = sent;
    memcpy(f + 6, &seq, 8);
    for (int i = 0; i < size; i++)
        f[6 + i] ^= f[2 + (i & 3)];
    if (write(fd, f, 6 + (size_t)size) != 6 + size) {
        perror("ws-bcast-load: send");
        exit(1);
    }
    sent++;
}

/* A frame is 2 header bytes and `size` payload bytes. */
static void on_readable(rx *r)
{
    unsigned char buf[65536];
    size_t flen = 2 + (size_t)size;
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "ws-bcast-load: a receiver was closed\n");
                exit(1);
            }
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (r->have >= 2 && r->have < 10) r->seq[r->have - 2] = buf[i];
            if (++r->have < flen) continue;
            r->have = 0;
            uint64_t seq;
            memcpy(&seq, r->seq, 8);
            if (++cnt[seq % RING] == (uint32_t)n_rx) {
                cnt[seq % RING] = 0;
                done++;
            }
        }
    }
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "n:s:w:t:")) != -1) {
        if (o == 'n')
            n_rx = atoi(optarg);
        else if (o == 's')
            size = atoi(optarg);
        else if (o == 'w')
            window = atoi(optarg);
        else if (o == 't')
            secs = atoi(optarg);
        else
            return 2;
    }
    if (argc - optind != 2 || size < 8 || size > 125 || window < 1 || window >= RING) {
        fprintf(stderr, "usage: ws-bcast-load [-n RECEIVERS] [-s 8..125] [-w WINDOW] [-t SECS] "
                        "HOST PORT\n");
        return 2;
    }
    int port = atoi(argv[optind + 1]), ep = epoll_create1(0);
    rx *rxs = calloc((size_t)n_rx, sizeof(*rxs));
    for (int i = 0; i < n_rx; i++) {
        rxs[i].fd = open_ws(argv[optind], port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &rxs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, rxs[i].fd, &ev);
    }
    int sfd = open_ws(argv[optind], port);
    usleep(200000); /* every receiver registered with the server */
    double t0 = now_s(), start = 0;
    uint64_t done0 = 0;
    for (;;) {
        while (sent - done < (uint64_t)window)
            send_one(sfd);
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr);
        double t = now_s();
        if (!start && t - t0 >= 1.0) { /* one second of warm-up */
            start = t;
            done0 = done;
        }
        if (start && t - start >= secs) {
            double rate = (double)(done - done0) / (t - start);
            printf("msgs/s=%.0f deliveries/s=%.0f receivers=%d size=%d window=%d\n", rate,
                   rate * n_rx, n_rx, size, window);
            return 0;
        }
    }
}
