/* raw_udp: the least work an epoll UDP echo server can do, as the floor to
 * read `echo-compare -u` ratios against (what raw_echo is to TCP echo):
 * one thread, level-triggered epoll, and per wake-up one recvmmsg of up to
 * 32 datagrams and one sendmmsg of them back to their senders, in place.
 * No limits and no statistics: a measuring stick, not a server.
 *
 *   raw_udp PORT        (127.0.0.1:PORT) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 32, SLOT = 65536 };

static char bufs[BATCH][SLOT];
static struct mmsghdr msgs[BATCH];
static struct iovec iov[BATCH];
static struct sockaddr_in from[BATCH];

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 7000;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin)) return 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (;;) {
        if (epoll_wait(ep, &ev, 1, -1) <= 0) continue;
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){bufs[i], SLOT};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                              .msg_namelen = sizeof from[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        for (int i = 0; i < n; i++) /* each goes back to its sender, as long as it came */
            iov[i].iov_len = msgs[i].msg_len;
        if (n > 0) sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT);
    }
}
