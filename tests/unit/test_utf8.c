/* test_utf8.c: the UTF-8 validator against RFC 3629 (as RFC 6455 section
 * 8.1 requires): boundary code points, the classic invalid sequences, the
 * fail-fast position, fragment-by-fragment and byte-by-byte feeding, and
 * inputs that end against an unreadable page. */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "proto/ws/utf8.h"

/* --- a guard page: data placed so its last byte is the last readable one --- */

/* --- a reference checker written from the RFC 3629 section 4 grammar --- */

/* Returns the index of the first byte that cannot continue valid UTF-8, or
 * -1; *complete tells whether the input ends on a character boundary. */
static long ref_first_bad(const uint8_t *s, size_t n, int *complete)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i], lo = 0x80, hi = 0xbf;
        size_t tail;
        if (b <= 0x7f) {
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            tail = 1;
        } else if (b == 0xe0) {
            tail = 2, lo = 0xa0;
        } else if (b == 0xed) {
            tail = 2, hi = 0x9f;
        } else if (b >= 0xe1 && b <= 0xef) {
            tail = 2;
        } else if (b == 0xf0) {
            tail = 3, lo = 0x90;
        } else if (b >= 0xf1 && b <= 0xf3) {
            tail = 3;
        } else if (b == 0xf4) {
            tail = 3, hi = 0x8f;
        } else {
            *complete = 0;
            return (long)i;
        }
        for (size_t k = 1; k <= tail; k++) {
            uint8_t c = 0;
            if (i + k >= n) {
                *complete = 0;
                return -1;
            }
            c = s[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf)) {
                *complete = 0;
                return (long)(i + k);
            }
        }
        i += tail + 1;
    }
    *complete = 1;
    return -1;
}

/* Result of the validator fed in pieces of `step` bytes (0: all at once):
 * index of the failing byte in the whole input or -1, and completeness. */
static long feed_steps(const uint8_t *s, size_t n, size_t step, int *complete)
{
    ax_utf8 v;
    size_t off = 0;
    ax_utf8_init(&v);
    if (step == 0) step = n ? n : 1;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        const uint8_t *piece = tu_guarded(s + off, k);
        size_t r = ax_utf8_feed(&v, piece, k);
        if (r != k) {
            ASSERT(ax_utf8_failed(&v));
            *complete = 0;
            return (long)(off + r);
        }
        off += k;
    }
    ASSERT(!ax_utf8_failed(&v));
    *complete = ax_utf8_complete(&v);
    return -1;
}

/* The table row being checked, named when a check fails. */
static const char *case_name = "";

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        if ((long long)(a) != (long long)(b)) fprintf(stderr, "# case: %s\n", case_name);          \
        ASSERT_EQ(a, b);                                                                           \
    } while (0)

/* Checks one input every way: at once, in 1/2/3/7-byte pieces, against the
 * reference and against ax_utf8_valid(). */
static void check_all_ways(const uint8_t *s, size_t n, long want_bad, int want_complete)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int complete = -1;
        long bad = feed_steps(s, n, steps[i], &complete);
        CHECK_EQ(bad, want_bad);
        CHECK_EQ(complete, want_complete);
    }
    int rc = -1;
    CHECK_EQ(ref_first_bad(s, n, &rc), want_bad);
    CHECK_EQ(rc, want_complete);
    CHECK_EQ(ax_utf8_valid(tu_guarded(s, n), n), want_bad < 0 && want_complete);
}

/* --- tables --- */

typedef struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    long bad;   /* index of the first bad byte, or -1 */
    int complete;
} utf8_case;

/* clang-format off */
#define OK(name, s) {name, s, sizeof(s) - 1, -1, 1}
#define BAD(name, s, at) {name, s, sizeof(s) - 1, at, 0}
#define CUT(name, s) {name, s, sizeof(s) - 1, -1, 0}
/* clang-format on */

static const utf8_case valid_cases[] = {
    OK("empty", ""),
    OK("U+0000", "\x00"),
    OK("ascii", "Hello, world"),
    OK("U+007F last 1-byte", "\x7f"),
    OK("U+0080 first 2-byte", "\xc2\x80"),
    OK("U+07FF last 2-byte", "\xdf\xbf"),
    OK("U+0800 first 3-byte", "\xe0\xa0\x80"),
    OK("U+D7FF before surrogates", "\xed\x9f\xbf"),
    OK("U+E000 after surrogates", "\xee\x80\x80"),
    OK("U+FFFD replacement char", "\xef\xbf\xbd"),
    OK("U+FFFE noncharacter", "\xef\xbf\xbe"),
    OK("U+FFFF last 3-byte", "\xef\xbf\xbf"),
    OK("U+10000 first 4-byte", "\xf0\x90\x80\x80"),
    OK("U+FFFFF", "\xf3\xbf\xbf\xbf"),
    OK("U+100000", "\xf4\x80\x80\x80"),
    OK("U+10FFFF last code point", "\xf4\x8f\xbf\xbf"),
    OK("kosme (RFC 6455 test text)", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    OK("mixed with ascii runs", "0123456789abcdef\xc3\xa9"
                                "0123456789abcdef\xe2\x82\xac"
                                "0123456789abcdef\xf0\x9f\x98\x80"
                                "0123456789abcdefXYZ"),
};

static const utf8_case invalid_cases[] = {
    /* overlong forms of '/' (U+002F) and the largest overlongs */
    BAD("overlong / 2-byte", "\xc0\xaf", 0),
    BAD("overlong / 3-byte", "\xe0\x80\xaf", 1),
    BAD("overlong / 4-byte", "\xf0\x80\x80\xaf", 1),
    BAD("overlong / 5-byte", "\xf8\x80\x80\x80\xaf", 0),
    BAD("overlong / 6-byte", "\xfc\x80\x80\x80\x80\xaf", 0),
    BAD("max overlong 2-byte U+007F", "\xc1\xbf", 0),
    BAD("max overlong 3-byte U+07FF", "\xe0\x9f\xbf", 1),
    BAD("max overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf", 1),
    BAD("overlong NUL 2-byte", "\xc0\x80", 0),
    BAD("overlong NUL 3-byte", "\xe0\x80\x80", 1),
    BAD("overlong NUL 4-byte", "\xf0\x80\x80\x80", 1),
    /* UTF-16 surrogates, alone and paired */
    BAD("U+D800", "\xed\xa0\x80", 1),
    BAD("U+DB7F", "\xed\xad\xbf", 1),
    BAD("U+DB80", "\xed\xae\x80", 1),
    BAD("U+DBFF", "\xed\xaf\xbf", 1),
    BAD("U+DC00", "\xed\xb0\x80", 1),
    BAD("U+DF80", "\xed\xbe\x80", 1),
    BAD("U+DFFF", "\xed\xbf\xbf", 1),
    BAD("U+D800 U+DC00 pair", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("surrogate after text", "abc\xed\xa0\x80", 4),
    /* beyond U+10FFFF */
    BAD("U+110000", "\xf4\x90\x80\x80", 1),
    BAD("U+13FFFF", "\xf4\xbf\xbf\xbf", 1),
    BAD("F5 lead", "\xf5\x80\x80\x80", 0),
    BAD("F7 lead", "\xf7\xbf\xbf\xbf", 0),
    BAD("5-byte U+200000", "\xf8\x88\x80\x80\x80", 0),
    BAD("5-byte max", "\xfb\xbf\xbf\xbf\xbf", 0),
    BAD("6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80", 0),
    BAD("6-byte max", "\xfd\xbf\xbf\xbf\xbf\xbf", 0),
    BAD("FE", "\xfe", 0),
    BAD("FF", "\xff", 0),
    BAD("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    /* lone and excess continuation bytes */
    BAD("lone 80", "\x80", 0),
    BAD("lone BF", "\xbf", 0),
    BAD("continuations 80 BF 80", "\x80\xbf\x80", 0),
    BAD("continuation after ascii",
        "a\x80"
        "b",
        1),
    BAD("extra continuation", "\xc2\x80\x80", 2),
    BAD("continuation after 3-byte", "\xe2\x82\xac\xbf", 3),
    /* a lead byte not followed by enough continuations */
    BAD("2-byte lead then ascii", "\xc2\x41", 1),
    BAD("3-byte lead then space", "\xe1\x80 ", 2),
    BAD("4-byte lead then lead", "\xf1\x80\xc2\x80", 2),
    BAD("all 2-byte leads then space", "\xc2 \xc3 ", 1),
    BAD("bad byte after 8-byte ascii run", "abcdefgh\xff", 8),
    BAD("bad byte after 16-byte ascii run", "abcdefghijklmnop\xc0\xaf", 16),
    BAD("bad byte deep in long ascii", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU\x80z", 47),
    /* truncated at the end: every byte is a valid prefix, the text is not complete */
    CUT("2-byte cut", "\xc2"),
    CUT("3-byte cut after 1", "\xe0"),
    CUT("3-byte cut after 2", "\xe0\xa0"),
    CUT("4-byte cut after 1", "\xf0"),
    CUT("4-byte cut after 2", "\xf0\x90"),
    CUT("4-byte cut after 3", "\xf4\x8f\xbf"),
    CUT("euro cut after text", "Hello\xe2\x82"),
};

TEST(utf8_valid_boundaries)
{
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const utf8_case *c = &valid_cases[i];
        case_name = c->name;
        check_all_ways((const uint8_t *)c->bytes, c->len, c->bad, c->complete);
    }
}

TEST(utf8_invalid_classics)
{
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        const utf8_case *c = &invalid_cases[i];
        case_name = c->name;
        check_all_ways((const uint8_t *)c->bytes, c->len, c->bad, c->complete);
    }
}

/* Every 1- and 2-byte input, and every 3-byte input with an E0..EF lead. */
TEST(utf8_exhaustive_short)
{
    uint8_t s[3];
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            s[0] = (uint8_t)a, s[1] = (uint8_t)b;
            int rc, vc;
            ax_utf8 v;
            ax_utf8_init(&v);
            long want = ref_first_bad(s, 2, &rc);
            size_t r = ax_utf8_feed(&v, s, 2);
            ASSERT_EQ(r == 2 ? -1 : (long)r, want);
            vc = ax_utf8_complete(&v);
            ASSERT_EQ(vc, rc);
        }
    }
    for (unsigned a = 0xe0; a <= 0xef; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (unsigned c = 0; c < 256; c++) {
                s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = (uint8_t)c;
                int rc;
                ax_utf8 v;
                ax_utf8_init(&v);
                long want = ref_first_bad(s, 3, &rc);
                size_t r = ax_utf8_feed(&v, s, 3);
                ASSERT_EQ(r == 3 ? -1 : (long)r, want);
                ASSERT_EQ(ax_utf8_complete(&v), rc);
            }
        }
    }
}

/* Every 4-byte input with an F0..F7 lead and bytes 7F..C0 after it. */
TEST(utf8_exhaustive_four_byte)
{
    uint8_t s[4];
    for (unsigned a = 0xf0; a <= 0xf7; a++)
        for (unsigned b = 0x7f; b <= 0xc0; b++)
            for (unsigned c = 0x7f; c <= 0xc0; c++)
                for (unsigned d = 0x7f; d <= 0xc0; d++) {
                    s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = (uint8_t)c, s[3] = (uint8_t)d;
                    int rc;
                    ax_utf8 v;
                    ax_utf8_init(&v);
                    long want = ref_first_bad(s, 4, &rc);
                    size_t r = ax_utf8_feed(&v, s, 4);
                    ASSERT_EQ(r == 4 ? -1 : (long)r, want);
                    ASSERT_EQ(ax_utf8_complete(&v), rc);
                }
}

/* A multibyte character, and a bad byte, at every position of an ASCII run,
 * so each path through the 16- and 8-byte fast path meets it. */
TEST(utf8_fast_path_positions)
{
    uint8_t s[64];
    for (size_t len = 1; len <= sizeof s; len++) {
        for (size_t at = 0; at < len; at++) {
            memset(s, 'x', len);
            s[at] = 0xff;
            check_all_ways(s, len, (long)at, 0);
            if (at + 3 <= len) {
                memset(s, 'x', len);
                memcpy(s + at, "\xe2\x82\xac", 3);
                check_all_ways(s, len, -1, 1);
            } else {
                memset(s, 'x', len);
                memcpy(s + at, "\xe2\x82\xac", len - at);
                check_all_ways(s, len, -1, 0);
            }
        }
    }
}

/* A character split across two fragments at every point stays valid, and
 * the validator is already failed when the bad byte is in the first one. */
TEST(utf8_across_fragments)
{
    static const char text[] = "a\xc2\x80"
                               "b\xe0\xa0\x80"
                               "c\xf4\x8f\xbf\xbf"
                               "d";
    size_t n = sizeof text - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        ax_utf8 v;
        ax_utf8_init(&v);
        ASSERT_EQ(ax_utf8_feed(&v, tu_guarded(text, cut), cut), cut);
        ASSERT_EQ(ax_utf8_feed(&v, tu_guarded(text + cut, n - cut), n - cut), n - cut);
        ASSERT(ax_utf8_complete(&v));
    }

    ax_utf8 v;
    ax_utf8_init(&v);
    ASSERT_EQ(ax_utf8_feed(&v, "ok\xed", 3), 3); /* ED: still a valid prefix */
    ASSERT(!ax_utf8_complete(&v) && !ax_utf8_failed(&v));
    ASSERT_EQ(ax_utf8_feed(&v, "\xa0\x80 more", 7), 0); /* ED A0: a surrogate */
    ASSERT(ax_utf8_failed(&v));
}

TEST(utf8_failure_is_sticky)
{
    ax_utf8 v;
    ax_utf8_init(&v);
    ASSERT_EQ(ax_utf8_feed(&v, "ab\xc0", 3), 2);
    ASSERT(ax_utf8_failed(&v));
    ASSERT(!ax_utf8_complete(&v));
    ASSERT_EQ(ax_utf8_feed(&v, "valid", 5), 0);
    ASSERT_EQ(ax_utf8_feed(&v, "", 0), 0);
    ASSERT(ax_utf8_failed(&v));
    ax_utf8_init(&v);
    ASSERT(ax_utf8_complete(&v));
    ASSERT_EQ(ax_utf8_feed(&v, "valid", 5), 5);
}

/* Pseudo-random mixes of valid characters and occasional bad bytes, fed in
 * random pieces, agree with the reference. */
TEST(utf8_random_against_reference)
{
    static const char *const pieces[] = {
        "a",
        "Hello world, ",
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xed\x9f\xbf",
        "\xef\xbf\xbf",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "\xce\xba\xe1\xbd\xb9",
        "\x80",
        "\xc0",
        "\xed\xa0",
        "\xf4\x90",
        "\xff",
        "\xe2\x82",
    };
    uint32_t seed = 12345;
    uint8_t s[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        while (n < sizeof s - 16) {
            seed = seed * 1103515245u + 12345u;
            unsigned pick = (seed >> 16) % 100;
            const char *p = pieces[pick < 90 ? pick % 10 : 10 + pick % 6];
            size_t k = strlen(p);
            memcpy(s + n, p, k);
            n += k;
            if ((seed >> 8) % 16 == 0) break;
        }
        int rc;
        long want = ref_first_bad(s, n, &rc);
        seed = seed * 1103515245u + 12345u;
        size_t step = 1 + (seed >> 16) % 40;
        int complete;
        ASSERT_EQ(feed_steps(s, n, step, &complete), want);
        ASSERT_EQ(complete, rc);
    }
}
