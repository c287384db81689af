/* fuzz_gw_line.c: libFuzzer target for the line chat gateway of `axon serve`
 * (src/hub/gw_line.c): its framing (lines, CR, the length limit, a line
 * split across reads, lines too long to keep) and its commands (/join
 * /nick /who /rooms /me /history /quit /help, //text, the name first).
 *
 * data[0] picks the piece size (bit 7 clear: all at once; else 1 to 64
 * bytes a turn) and max_line (bit 6: 16 bytes, so the limit is easy to
 * reach; else 4096).  A fresh memory-only hub each run has one other user
 * in the lobby (so messages, joins and leaves are delivered and rendered
 * for someone); the rest of the input is what the fuzzed user types.
 * ASan and UBSan watch; at the end every connection must have closed. */
#include "fuzz_serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_serve f;
    static char path[256];
    static char obuf[1 << 16];
    if (size < 1 || size > 65536) return 0;
    if (!path[0]) fz_path("line.sock", path, sizeof path);
    size_t step = data[0] & 0x80 ? (size_t)(1 + (data[0] & 63)) : size;
    fz_serve_init(&f, data[0] & 0x40 ? 16 : 4096, 1u << 16, 8, 4096);
    snprintf(f.cfg.line_url, sizeof f.cfg.line_url, "unix://%s", path);
    unlink(path);
    fz_serve_start(&f);

    /* the other user */
    fz_out bo = {.buf = obuf, .cap = sizeof obuf};
    int bob = fz_connect(path);
    FZ_CHECK(send(bob, "bob\nhello all\n", 14, MSG_NOSIGNAL) == 14);
    fz_settle(fz_loop(), bob, &bo, 16);

    fz_out o = {.buf = obuf, .cap = sizeof obuf};
    int fd = fz_talk(path, data + 1, size - 1, step, &o);
    fz_dump(&o);
    close(fd);
    bo.len = 0;
    fz_settle(fz_loop(), bob, &bo, 16);
    close(bob);
    fz_settle(fz_loop(), -1, &o, 8);
    fz_serve_free(&f);
    return 0;
}
