/* fuzz_gw_ws.c: libFuzzer target for the WebSocket gateway of `axon serve`
 * (src/hub/gw_ws.c: the JSON requests of docs/protocol.md and binary
 * publishes), and, for inputs that ask, the HTTP gateway under it (the
 * API, SSE, metrics, pages: src/hub/gw_http.c).
 *
 * data[0]: bit 7 clear sends all at once, else 1 to 64 bytes a turn; bit 6
 * set sends the rest as raw HTTP to the HTTP gateway.  Otherwise the
 * harness opens /ws itself and the rest is messages separated by 0xff
 * bytes, each sent as one masked frame: text, or binary when it starts
 * with 0xfe (the byte dropped; "topic\npayload").  A second client,
 * subscribed to "#" with presence, receives whatever is published.  A
 * fresh memory-only hub each run; ASan and UBSan watch; at the end every
 * connection must have closed. */
#include "fuzz_serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/* One client frame (FIN, masked with a zero key) into out; its size. */
static size_t frame(uint8_t *out, bool binary, const uint8_t *p, size_t n)
{
    size_t h = 0;
    out[h++] = binary ? 0x82 : 0x81;
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memset(out + h, 0, 4);
    h += 4;
    memcpy(out + h, p, n);
    return h + n;
}

/* The upgrade, then each 0xff-separated piece of `in` as a frame. */
static size_t script(uint8_t *out, const uint8_t *in, size_t n)
{
    size_t o = sizeof upgrade - 1;
    memcpy(out, upgrade, o);
    size_t i = 0;
    while (i <= n) {
        const uint8_t *end = memchr(in + i, 0xff, n - i);
        size_t len = end ? (size_t)(end - (in + i)) : n - i;
        bool binary = len && in[i] == 0xfe;
        o += frame(out + o, binary, in + i + binary, len - binary);
        i += len + 1;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_serve f;
    static char path[256];
    static char obuf[1 << 18];
    static uint8_t msgs[1 << 18];
    if (size < 1 || size > 16384) return 0;
    if (!path[0]) fz_path("ws.sock", path, sizeof path);
    size_t step = data[0] & 0x80 ? (size_t)(1 + (data[0] & 63)) : SIZE_MAX;
    fz_serve_init(&f, 4096, 4096, 8, 8192);
    snprintf(f.cfg.http_url, sizeof f.cfg.http_url, "unix://%s", path);
    unlink(path);
    fz_serve_start(&f);

    /* the listener */
    fz_out lo = {.buf = obuf, .cap = sizeof obuf};
    int other = fz_connect(path);
    static const uint8_t sub[] = "{\"type\":\"subscribe\",\"topic\":\"#\",\"presence\":true}";
    size_t sl = script(msgs, sub, sizeof sub - 1);
    FZ_CHECK(send(other, msgs, sl, MSG_NOSIGNAL) == (ssize_t)sl);
    fz_settle(fz_loop(), other, &lo, 16);

    fz_out o = {.buf = obuf, .cap = sizeof obuf};
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    if (!(data[0] & 0x40)) {
        n = script(msgs, in, n);
        in = msgs;
    }
    int fd = fz_talk(path, in, n, step, &o);
    fz_dump(&o);
    close(fd);
    lo.len = 0;
    fz_settle(fz_loop(), other, &lo, 16);
    close(other);
    fz_settle(fz_loop(), -1, &o, 8);
    fz_serve_free(&f);
    return 0;
}
