/* fuzz_irc.c: libFuzzer target for the IRC codec (src/proto/irc/).
 *
 * The input is a byte stream as a client would send it.  It is cut into
 * lines with ax_irc_line() (whole, and again fed in two parts split at the
 * first input byte's value, which must give the same first line); each
 * line is parsed, and a message that parses is:
 *  - checked: every field inside the line, the command letters or three
 *    digits, at most 15 parameters, no middle parameter with a space;
 *  - encoded again (when it fits the limits), parsed back to the same
 *    fields, and encoded to the same bytes;
 *  - walked tag by tag; each value unescaped, escaped and unescaped again
 *    to the same bytes.
 * ax_irc_utf8_cut() never cuts past its maximum nor inside a character. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/irc/irc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_irc: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool inside(ax_irc_str s, const char *line, size_t len)
{
    return s.len == 0 || (s.ptr >= line && s.ptr + s.len <= line + len);
}

static bool same(ax_irc_str a, ax_irc_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void tags(ax_irc_str t)
{
    ax_irc_str rest = t, k, v;
    static char un[AX_IRC_MAX_TAGS], esc[2 * AX_IRC_MAX_TAGS], un2[2 * AX_IRC_MAX_TAGS];
    while (ax_irc_tag_next(&rest, &k, &v)) {
        CHECK(!memchr(k.ptr, ';', k.len) && !memchr(k.ptr, '=', k.len));
        size_t n = ax_irc_tag_unescape(v.ptr, v.len, un);
        CHECK(n <= v.len);
        size_t e = ax_irc_tag_escape(un, n, esc, sizeof esc);
        CHECK(e <= 2 * n && e <= sizeof esc);
        CHECK(!memchr(esc, ';', e) && !memchr(esc, ' ', e) && !memchr(esc, '\r', e) &&
              !memchr(esc, '\n', e));
        size_t n2 = ax_irc_tag_unescape(esc, e, un2);
        CHECK(n2 == n && memcmp(un, un2, n) == 0);
    }
    (void)ax_irc_tags_check(t);
}

static void one(const char *line, size_t len)
{
    ax_irc_msg m, m2;
    int rc = ax_irc_parse(line, len, &m);
    if (rc != 0) {
        CHECK(rc < 0);
        return;
    }
    CHECK(m.command.len > 0 && m.nparams >= 0 && m.nparams <= AX_IRC_MAX_PARAMS);
    CHECK(inside(m.tags, line, len) && inside(m.source, line, len) && inside(m.command, line, len));
    for (int i = 0; i < m.nparams; i++) {
        CHECK(inside(m.params[i], line, len));
        if (i < m.nparams - 1 || !m.trailing)
            CHECK(m.params[i].len && !memchr(m.params[i].ptr, ' ', m.params[i].len) &&
                  m.params[i].ptr[0] != ':');
    }
    tags(m.tags);
    static char out[AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE + 16], out2[sizeof out];
    int n = ax_irc_encode(out, sizeof out, &m);
    if (n < 0) return; /* a space in a tag value cannot be: but a too-long one can */
    CHECK(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n');
    size_t l, skip;
    CHECK(ax_irc_line(out, (size_t)n, &l, &skip) == 1 && l == (size_t)n - 2 && skip == (size_t)n);
    CHECK(ax_irc_parse(out, l, &m2) == 0);
    CHECK(same(m.tags, m2.tags) && same(m.source, m2.source) && same(m.command, m2.command));
    CHECK(m.nparams == m2.nparams);
    for (int i = 0; i < m.nparams; i++)
        CHECK(same(m.params[i], m2.params[i]));
    int n2 = ax_irc_encode(out2, sizeof out2, &m2);
    CHECK(n2 == n && memcmp(out, out2, (size_t)n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t off = 0, len = 0, skip = 0;
    int first = AX_IRC_INCOMPLETE;
    size_t first_len = 0, first_skip = 0;
    bool discarding = false;
    while (off < size) {
        int rc = ax_irc_line(buf + off, size - off, &len, &skip);
        if (off == 0) first = rc, first_len = len, first_skip = skip;
        if (rc == AX_IRC_INCOMPLETE) break;
        CHECK(skip > 0 && skip <= size - off);
        if (rc == 1) {
            CHECK(len < skip);
            if (!discarding) one(buf + off, len);
            discarding = false;
        } else {
            CHECK(rc == AX_IRC_ELINE || rc == AX_IRC_ETAGS);
            discarding = true;
        }
        off += skip;
    }
    /* the first line again from a prefix: the same answer, or "more" */
    if (size) {
        size_t cut = data[0] % (size + 1);
        int rc = ax_irc_line(buf, cut, &len, &skip);
        if (rc == 1) CHECK(first == 1 && len == first_len && skip <= first_skip);
        if (rc < 0) CHECK(first == rc);
    }
    for (size_t max = 0; max <= size && max < 16; max++) {
        size_t c = ax_irc_utf8_cut(buf, size, max);
        CHECK(c <= size && (size <= max ? c == size : c <= max));
    }
    /* a mask matches itself ('*' and '?' match their own bytes too), and
     * the halves of the input as mask and name never over-read */
    CHECK(ax_irc_mask_match(buf, size, buf, size));
    (void)ax_irc_mask_match(buf, size / 2, buf + size / 2, size - size / 2);
    return 0;
}
