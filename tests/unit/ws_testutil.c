/* ws_testutil.c: see ws_testutil.h. */
#include "ws_testutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/ws/ws_frame.h"
#include "runner.h"
#include "testutil.h"

static const unsigned char test_key[4] = {0x12, 0x34, 0x56, 0x78};

int wt_open_raw(ax_loop *loop, const ax_addr *a, const char *path, const char *extra, int *status,
                char *head, size_t cap)
{
    char req[2048];
    int fd = tu_connect(a, 0);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n", path, extra);
    tu_write_all(fd, req, (size_t)n);
    size_t got = 0;
    head[0] = '\0';
    while (got < cap - 1 && !strstr(head, "\r\n\r\n")) {
        ssize_t r = tu_loop_read_n(loop, fd, head + got, 1, 3000);
        if (r <= 0) break;
        got += (size_t)r;
        head[got] = '\0';
    }
    *status = 0;
    sscanf(head, "HTTP/1.1 %d", status);
    return fd;
}

#define STD_FIELDS                                                                                 \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"                   \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

int wt_open(ax_loop *loop, const ax_addr *a, const char *path)
{
    char head[2048];
    int status;
    int fd = wt_open_raw(loop, a, path, STD_FIELDS, &status, head, sizeof head);
    ASSERT_EQ(status, 101);
    /* RFC 6455 1.3's own example key and accept value. */
    ASSERT(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    return fd;
}

size_t wt_encode(unsigned char *out, int op, bool fin, int rsv, const void *data, size_t len,
                 bool mask)
{
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | rsv | op);
    unsigned char mb = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (unsigned char)(mb | len);
    } else if (len <= 0xffff) {
        out[n++] = mb | 126;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = mb | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, test_key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const unsigned char *)data)[i] ^ (mask ? test_key[i & 3] : 0);
    return n + len;
}

void wt_send_ex(int fd, int op, bool fin, int rsv, const void *data, size_t len, bool mask)
{
    unsigned char *buf = malloc(len + 14);
    ASSERT(buf != NULL);
    size_t n = wt_encode(buf, op, fin, rsv, data, len, mask);
    tu_write_all(fd, buf, n);
    free(buf);
}

void wt_send(int fd, int op, bool fin, const void *data, size_t len)
{
    wt_send_ex(fd, op, fin, 0, data, len, true);
}

void wt_read(ax_loop *loop, int fd, wt_frame *f, int ms)
{
    unsigned char h[14];
    f->op = -1;
    if (tu_loop_read_n(loop, fd, h, 2, ms) != 2) return;
    size_t len = h[1] & 0x7f, ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    bool masked = (h[1] & 0x80) != 0;
    if (ext && tu_loop_read_n(loop, fd, h + 2, ext, ms) != (ssize_t)ext) return;
    if (ext) len = 0;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | h[2 + i];
    unsigned char key[4] = {0};
    if (masked && tu_loop_read_n(loop, fd, key, 4, ms) != 4) return;
    ASSERT(len <= sizeof f->data);
    if (len && tu_loop_read_n(loop, fd, f->data, len, ms) != (ssize_t)len) return;
    if (masked) ax_ws_mask(f->data, len, key, 0);
    f->op = h[0] & 0x0f;
    f->fin = (h[0] & 0x80) != 0;
    f->rsv = h[0] & 0x70;
    f->masked = masked;
    f->len = len;
}

static int close_code_of(const wt_frame *f)
{
    return f->len >= 2 ? f->data[0] << 8 | f->data[1] : 0;
}

void wt_expect_close(ax_loop *loop, int fd, int code)
{
    static wt_frame f;
    char c;
    wt_read(loop, fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_CLOSE);
    ASSERT_EQ(close_code_of(&f), code);
    ASSERT(f.len != 1);
    ASSERT_EQ(tu_loop_read_n(loop, fd, &c, 1, 3000), 0); /* then the server closes */
}

void wt_close(ax_loop *loop, int fd, int code, wt_frame *reply)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    wt_send(fd, AX_WS_CLOSE, true, p, code ? 2 : 0);
    wt_read(loop, fd, reply, 3000);
}
