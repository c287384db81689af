/* fuzz_gw_irc.c: libFuzzer target for the IRC gateway of `axon serve`
 * (src/hub/gw_irc.c): its framing (CR LF, LF, lone CR, the 512/8191-byte
 * limits, a line split across reads) and every command a client may send,
 * before and after registration (CAP, AUTHENTICATE, NICK, USER, JOIN,
 * PRIVMSG, CHATHISTORY, MODE, TOPIC, ...).
 *
 * data[0] picks the piece size (bit 7 clear: all at once; else 1 to 64
 * bytes a turn).  A fresh memory-only hub each run has another IRC user,
 * bob, in #lobby (so messages, joins and leaves are delivered and rendered
 * for someone); the rest of the input is what the fuzzed client sends.
 * ASan and UBSan watch; at the end every connection must have closed. */
#include "fuzz_serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_serve f;
    static char path[256];
    static char obuf[1 << 16];
    if (size < 1 || size > 65536) return 0;
    if (!path[0]) fz_path("irc.sock", path, sizeof path);
    size_t step = data[0] & 0x80 ? (size_t)(1 + (data[0] & 63)) : size;
    fz_serve_init(&f, 4096, 1u << 16, 8, 4096);
    snprintf(f.cfg.irc_url, sizeof f.cfg.irc_url, "unix://%s", path);
    unlink(path);
    fz_serve_start(&f);

    /* the other user */
    static const char hello[] = "NICK bob\r\nUSER bob 0 * :Bob\r\nJOIN #lobby\r\n"
                                "PRIVMSG #lobby :hello all\r\n";
    fz_out bo = {.buf = obuf, .cap = sizeof obuf};
    int bob = fz_connect(path);
    FZ_CHECK(send(bob, hello, sizeof hello - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof hello - 1));
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
