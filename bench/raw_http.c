/* raw_http: the least work an epoll HTTP/1.1 keep-alive server can do, as
 * a floor to read http-compare's ratios against (what raw_echo is to
 * echo-compare): one thread, level-triggered epoll, one read per ready
 * socket, one write of a canned 200 per request found (a request ends at
 * the first blank line; no parsing, no bodies, no timeouts, no limits).
 * Not a server to use: it answers anything with "Hello, World!", and
 * drops what a full socket buffer does not take.
 *
 *   raw_http PORT        (127.0.0.1:PORT) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 13\r\n\r\nHello, World!";

enum { MAXFD = 65536 };
static unsigned char tail[MAXFD]; /* bytes of "\r\n\r\n" matched at the end of the last read */

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8080, one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) || listen(lfd, 4096)) return 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static char buf[1 << 16], out[1 << 16];
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXFD) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    tail[c] = 0;
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            size_t len = 0;
            unsigned m = tail[fd];
            for (ssize_t k = 0; k < r; k++) { /* count blank lines: one per request */
                char want = "\r\n\r\n"[m];
                m = buf[k] == want ? m + 1 : (buf[k] == '\r' ? 1 : 0);
                if (m == 4) {
                    m = 0;
                    if (len + sizeof answer - 1 <= sizeof out) {
                        memcpy(out + len, answer, sizeof answer - 1);
                        len += sizeof answer - 1;
                    }
                }
            }
            tail[fd] = (unsigned char)m;
            if (len && write(fd, out, len) < 0 && errno != EAGAIN) close(fd);
        }
    }
}
