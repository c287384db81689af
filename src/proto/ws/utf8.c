/* utf8.c: strict incremental UTF-8 validation with a shift-based DFA.
 *
 * The nine states are bit offsets 0, 6, ..., 48.  Each byte value has a
 * 64-bit row holding, in the 6-bit field at offset s, the state that
 * follows state s on that byte, so one step is
 *
 *     s = (row[byte] >> s) & 63;
 *
 * The row is loaded from the input alone, so the only work that waits on
 * the previous byte is a shift and a mask; a table indexed by state and
 * byte would put a memory load on that chain.
 *
 * Bytes fall into 12 classes.  The continuation range 80..BF is split three
 * ways because the byte after E0, ED, F0 and F4 is restricted (RFC 3629
 * section 4): that restriction rejects overlongs, surrogates and code
 * points above U+10FFFF at the first offending byte. */
#include "proto/ws/utf8.h"

#include <string.h>

/* States as bit offsets. */
enum {
    ACC = AX_UTF8_ACCEPT, /* at a character boundary */
    REJ = AX_UTF8_REJECT, /* failed */
    N1 = 12,              /* one more continuation byte (80..BF) */
    N2 = 18,              /* two more */
    N3 = 24,              /* three more */
    SE0 = 30,             /* after E0: A0..BF, then one more */
    SED = 36,             /* after ED: 80..9F, then one more */
    SF0 = 42,             /* after F0: 90..BF, then two more */
    SF4 = 48,             /* after F4: 80..8F, then two more */
};

/* The row of a byte class: for each state, in enum order, the state that
 * follows it. */
#define ROW(acc, rej, n1, n2, n3, se0, sed, sf0, sf4)                                              \
    ((uint64_t)(acc) << ACC | (uint64_t)(rej) << REJ | (uint64_t)(n1) << N1 |                      \
     (uint64_t)(n2) << N2 | (uint64_t)(n3) << N3 | (uint64_t)(se0) << SE0 |                        \
     (uint64_t)(sed) << SED | (uint64_t)(sf0) << SF0 | (uint64_t)(sf4) << SF4)

/* clang-format off */
/*                       from: ACC  REJ  N1   N2   N3   SE0  SED  SF0  SF4 */
#define ASCII /* 00..7F */ ROW(ACC, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define CONT1 /* 80..8F */ ROW(REJ, REJ, ACC, N1,  N2,  REJ, N1,  REJ, N2)
#define CONT2 /* 90..9F */ ROW(REJ, REJ, ACC, N1,  N2,  REJ, N1,  N2,  REJ)
#define CONT3 /* A0..BF */ ROW(REJ, REJ, ACC, N1,  N2,  N1,  REJ, N2,  REJ)
#define BAD   /* C0, C1, F5..FF */ \
                           ROW(REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LEAD2 /* C2..DF */ ROW(N1,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LE0   /* E0 */     ROW(SE0, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LEAD3 /* E1..EC, EE, EF */ \
                           ROW(N2,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LED   /* ED */     ROW(SED, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LF0   /* F0 */     ROW(SF0, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LEAD4 /* F1..F3 */ ROW(N3,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define LF4   /* F4 */     ROW(SF4, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)

#define X4(r) r, r, r, r
#define X16(r) X4(r), X4(r), X4(r), X4(r)

static const uint64_t row[] = {
    /* 00..7F */ X16(ASCII), X16(ASCII), X16(ASCII), X16(ASCII),
                 X16(ASCII), X16(ASCII), X16(ASCII), X16(ASCII),
    /* 80..8F */ X16(CONT1),
    /* 90..9F */ X16(CONT2),
    /* A0..BF */ X16(CONT3), X16(CONT3),
    /* C0..CF */ BAD, BAD, LEAD2, LEAD2, X4(LEAD2), X4(LEAD2), X4(LEAD2),
    /* D0..DF */ X16(LEAD2),
    /* E0..EF */ LE0, LEAD3, LEAD3, LEAD3, X4(LEAD3), X4(LEAD3), LEAD3, LED, LEAD3, LEAD3,
    /* F0..FF */ LF0, LEAD4, LEAD4, LEAD4, LF4, BAD, BAD, BAD, X4(BAD), X4(BAD),
};
/* clang-format on */

_Static_assert(sizeof row / sizeof row[0] == 256, "one row per byte value");

#define HIGH_BITS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Number of leading ASCII bytes of p[0..n), 16 and 8 bytes at a time. */
static size_t ascii_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (n - i >= 16) {
        if ((load64(p + i) | load64(p + i + 8)) & HIGH_BITS) break;
        i += 16;
    }
    while (n - i >= 8) {
        if (load64(p + i) & HIGH_BITS) break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

size_t ax_utf8_feed(ax_utf8 *v, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    unsigned s = v->state;
    size_t i = 0;

    if (s == REJ) return 0;
    while (i < len) {
        if (s == ACC && p[i] < 0x80) {
            i += ascii_run(p + i, len - i);
            continue;
        }
        s = (unsigned)(row[p[i]] >> s) & 63;
        if (s == REJ) {
            v->state = REJ;
            return i;
        }
        i++;
    }
    v->state = (uint8_t)s;
    return len;
}

bool ax_utf8_valid(const void *buf, size_t len)
{
    ax_utf8 v;
    ax_utf8_init(&v);
    return ax_utf8_feed(&v, buf, len) == len && ax_utf8_complete(&v);
}
