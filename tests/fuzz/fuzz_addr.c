/* fuzz_addr.c: libFuzzer target for URL parsing and formatting.
 *
 * The input, NUL-terminated, is parsed.  A failure must come with one of
 * the parse error codes and a reason.  A success must format into a URL
 * that parses back to an equal address with the same scheme, and that URL
 * must format to itself (the text is canonical).  Formatting into short
 * buffers must stay inside them. */
#include <axon/addr.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

static bool is_parse_error(int rc)
{
    return rc == AX_EURL || rc == AX_ESCHEME || rc == AX_EHOST || rc == AX_EPORT;
}

/* Format into a buffer of exactly `len` bytes (heap, so an overrun trips
 * ASan) and check it is a NUL-terminated prefix of the full text. */
static void format_short(const ax_addr *a, const char *full, size_t len)
{
    char *buf = malloc(len);
    CHECK(buf != NULL);
    CHECK(ax_addr_format(a, buf, len) == buf);
    size_t n = strnlen(buf, len);
    CHECK(n < len);
    CHECK(strncmp(buf, full, n) == 0);
    free(buf);
}

static void round_trip(const ax_addr *a)
{
    char text[AX_ADDR_STRLEN];
    memset(text, 0x7f, sizeof text);
    CHECK(ax_addr_format(a, text, sizeof text) == text);
    CHECK(memchr(text, '\0', sizeof text) != NULL);

    ax_addr b;
    char why[128];
    int rc = ax_addr_parse(text, &b, why, sizeof why);
    CHECK(rc == 0);
    CHECK(b.scheme == a->scheme);
    CHECK(ax_addr_equal(a, &b));
    CHECK(ax_addr_equal(&b, a));
    CHECK(ax_addr_port(a) == ax_addr_port(&b));

    char again[AX_ADDR_STRLEN];
    ax_addr_format(&b, again, sizeof again);
    CHECK(strcmp(text, again) == 0);

    static const size_t shorts[] = {1, 2, 7, 8, 16};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
        format_short(a, text, shorts[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *url = malloc(size + 1);
    if (!url) return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    ax_addr a;
    char why[160];
    memset(why, 0, sizeof why);
    int rc = ax_addr_parse(url, &a, why, sizeof why);
    if (rc == 0) {
        CHECK(a.scheme == AX_SCHEME_TCP || a.scheme == AX_SCHEME_UDP || a.scheme == AX_SCHEME_UNIX);
        CHECK(a.len > 0 && a.len <= sizeof a.sa);
        round_trip(&a);
    } else {
        CHECK(is_parse_error(rc));
        CHECK(why[0] != '\0');
        CHECK(memchr(why, '\0', sizeof why) != NULL);
        /* A tiny reason buffer is respected. */
        char tiny[4];
        memset(tiny, 'x', sizeof tiny);
        CHECK(ax_addr_parse(url, &a, tiny, 3) == rc);
        CHECK(memchr(tiny, '\0', 3) != NULL && tiny[3] == 'x');
    }
    free(url);
    return 0;
}
