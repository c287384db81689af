/* test_irc.c: the IRC message codec (src/proto/irc/irc.h).
 *
 * - lines real clients send (irssi, WeeChat, irc-framework) parsed field
 *   by field, each placed against an unreadable page so a read past the
 *   end crashes;
 * - ax_irc_line() on streams: CR LF, LF, a lone CR, split input, the 512
 *   and 8191 byte limits exactly at and past the edge;
 * - tags: walking, escaping and unescaping both ways, key syntax;
 * - the encoder: trailing ':' rules, what it refuses, parse(encode(m)) = m;
 * - UTF-8 cuts and the ascii case mapping. */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "proto/irc/irc.h"

static bool eq(ax_irc_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static int parse(const char *line, ax_irc_msg *m)
{
    size_t n = strlen(line);
    return ax_irc_parse((char *)tu_guarded(line, n), n, m);
}

TEST(irc_parse_client_lines)
{
    ax_irc_msg m;
    ASSERT_EQ(parse("NICK alice", &m), 0);
    ASSERT(eq(m.command, "NICK") && m.nparams == 1 && eq(m.params[0], "alice") && !m.trailing);
    ASSERT_EQ(parse("USER alice 0 * :Alice Liddell", &m), 0);
    ASSERT(m.nparams == 4 && eq(m.params[2], "*") && eq(m.params[3], "Alice Liddell"));
    ASSERT(m.trailing);
    ASSERT_EQ(parse("CAP LS 302", &m), 0);
    ASSERT(eq(m.params[0], "LS") && eq(m.params[1], "302"));
    ASSERT_EQ(parse("PRIVMSG #lobby :\x01"
                    "ACTION waves\x01",
                    &m),
              0);
    ASSERT(eq(m.params[1], "\x01"
                           "ACTION waves\x01"));
    ASSERT_EQ(parse("PRIVMSG #lobby ::-) hi", &m), 0);
    ASSERT(eq(m.params[1], ":-) hi"));
    ASSERT_EQ(parse("PRIVMSG #lobby :", &m), 0);
    ASSERT(m.nparams == 2 && m.params[1].len == 0 && m.trailing);
    ASSERT_EQ(parse("MODE #lobby", &m), 0);
    ASSERT(m.nparams == 1);
    ASSERT_EQ(parse("ping", &m), 0); /* case is the caller's business */
    ASSERT(eq(m.command, "ping") && m.nparams == 0);
    ASSERT_EQ(parse(":irc.example 001 alice :Welcome", &m), 0);
    ASSERT(eq(m.source, "irc.example") && eq(m.command, "001") && eq(m.params[1], "Welcome"));
    ASSERT_EQ(parse("@time=2024-01-01T00:00:00.000Z;msgid=abc :bob!bob@line PRIVMSG #a :x", &m), 0);
    ASSERT(eq(m.tags, "time=2024-01-01T00:00:00.000Z;msgid=abc") && eq(m.source, "bob!bob@line"));
    ASSERT_EQ(parse("JOIN   #a,#b    key1,key2  ", &m), 0); /* spaces repeat */
    ASSERT(m.nparams == 2 && eq(m.params[0], "#a,#b") && eq(m.params[1], "key1,key2"));
    ASSERT_EQ(parse("@+draft/reply=1 TAGMSG #a", &m), 0);
    ASSERT(eq(m.tags, "+draft/reply=1") && eq(m.command, "TAGMSG"));
}

TEST(irc_parse_errors)
{
    ax_irc_msg m;
    ASSERT_EQ(parse("", &m), AX_IRC_EEMPTY);
    ASSERT_EQ(parse("    ", &m), AX_IRC_EEMPTY);
    ASSERT_EQ(parse(":src", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse(":src   ", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse("@a=b", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse("@a=b ", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse(": PRIVMSG", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse("12 x", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse("1234 x", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(parse("PRIV-MSG x", &m), AX_IRC_ECOMMAND);
    ASSERT_EQ(ax_irc_parse((char *)tu_guarded("NICK a\0b", 8), 8, &m), AX_IRC_EBYTE);
    ASSERT_EQ(parse("NICK a\rb", &m), AX_IRC_EBYTE);
    ASSERT_EQ(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", &m), 0);
    ASSERT_EQ(m.nparams, 15);
    ASSERT_EQ(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", &m), AX_IRC_EPARAMS);
    ASSERT_EQ(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :15 and more", &m), 0);
}

/* Every prefix of every line, each against the guard page. */
TEST(irc_parse_prefixes_in_bounds)
{
    const char *lines[] = {"@a=b;c :s!u@h PRIVMSG #x :hello there",
                           ":s 005 n A=1 B :are supported",
                           "CAP REQ :sasl message-tags",
                           "@;;; X",
                           "@ X",
                           ": X"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        for (size_t n = 0; n <= strlen(lines[i]); n++) {
            ax_irc_msg m;
            ax_irc_parse((char *)tu_guarded(lines[i], n), n, &m);
        }
}

static int line(const char *buf, size_t n, size_t *len, size_t *skip)
{
    return ax_irc_line((char *)tu_guarded(buf, n), n, len, skip);
}

TEST(irc_line_terminators)
{
    size_t len = 99, skip = 99;
    ASSERT_EQ(line("NICK a\r\nUSER", 12, &len, &skip), 1);
    ASSERT(len == 6 && skip == 8);
    ASSERT_EQ(line("NICK a\nUSER", 11, &len, &skip), 1);
    ASSERT(len == 6 && skip == 7);
    ASSERT_EQ(line("NICK a\rUSER", 11, &len, &skip), 1); /* a lone CR */
    ASSERT(len == 6 && skip == 7);
    ASSERT_EQ(line("NICK a\r", 7, &len, &skip), AX_IRC_INCOMPLETE); /* LF may follow */
    ASSERT_EQ(line("NICK a", 6, &len, &skip), AX_IRC_INCOMPLETE);
    ASSERT_EQ(line("", 0, &len, &skip), AX_IRC_INCOMPLETE);
    ASSERT_EQ(line("\r\n", 2, &len, &skip), 1);
    ASSERT(len == 0 && skip == 2);
}

TEST(irc_line_limits)
{
    static char buf[20000];
    size_t len, skip;
    /* 510 bytes and CR LF: the largest message */
    memset(buf, 'a', 510);
    memcpy(buf, "PRIVMSG #a :", 12);
    memcpy(buf + 510, "\r\n", 2);
    ASSERT_EQ(line(buf, 512, &len, &skip), 1);
    ASSERT(len == 510 && skip == 512);
    /* 511: too long, with or without its end seen */
    memset(buf + 12, 'a', 499);
    memcpy(buf + 511, "\r\nNEXT\r\n", 8);
    ASSERT_EQ(line(buf, 519, &len, &skip), AX_IRC_ELINE);
    ASSERT_EQ(skip, 513);
    ASSERT_EQ(line(buf, 511, &len, &skip), AX_IRC_ELINE);
    ASSERT_EQ(skip, 511);
    ASSERT_EQ(line(buf, 510, &len, &skip), AX_IRC_INCOMPLETE);
    /* tags: '@' + 8189 + ' ' = 8191 bytes, then a full 510-byte message */
    buf[0] = '@';
    memset(buf + 1, 'k', 8189);
    buf[8190] = ' ';
    memset(buf + 8191, 'a', 510);
    memcpy(buf + 8191, "PRIVMSG #a :", 12);
    memcpy(buf + 8191 + 510, "\r\n", 2);
    ASSERT_EQ(line(buf, 8191 + 512, &len, &skip), 1);
    ASSERT_EQ(skip, 8191 + 512);
    ax_irc_msg m;
    ASSERT_EQ(ax_irc_parse(buf, len, &m), 0);
    ASSERT_EQ(m.tags.len, 8189);
    ASSERT_EQ(m.params[1].len, 510 - 12);
    /* one more tag byte: refused as soon as it is seen */
    buf[8190] = 'k';
    buf[8191] = ' ';
    ASSERT_EQ(line(buf, 8192, &len, &skip), AX_IRC_ETAGS);
    ASSERT_EQ(line(buf, 8191, &len, &skip), AX_IRC_ETAGS);
    ASSERT_EQ(line(buf, 8190, &len, &skip), AX_IRC_INCOMPLETE);
}

TEST(irc_tags_walk)
{
    ax_irc_msg m;
    ASSERT_EQ(parse("@a=1;b;;+example.com/c=x\\sy;d= PING", &m), 0);
    ax_irc_str rest = m.tags, k, v;
    ASSERT(ax_irc_tag_next(&rest, &k, &v) && eq(k, "a") && eq(v, "1"));
    ASSERT(ax_irc_tag_next(&rest, &k, &v) && eq(k, "b") && v.len == 0);
    ASSERT(ax_irc_tag_next(&rest, &k, &v) && eq(k, "+example.com/c") && eq(v, "x\\sy"));
    ASSERT(ax_irc_tag_next(&rest, &k, &v) && eq(k, "d") && v.len == 0);
    ASSERT(!ax_irc_tag_next(&rest, &k, &v));
    ASSERT_EQ(ax_irc_tags_check(m.tags), 0);
    ASSERT(ax_irc_tag_get(m.tags, "+example.com/c", &v) && eq(v, "x\\sy"));
    ASSERT(!ax_irc_tag_get(m.tags, "c", &v));
    ASSERT_EQ(parse("@=x PING", &m), 0);
    ASSERT_EQ(ax_irc_tags_check(m.tags), AX_IRC_ETAGSYNTAX);
    ASSERT_EQ(parse("@a!b=x PING", &m), 0);
    ASSERT_EQ(ax_irc_tags_check(m.tags), AX_IRC_ETAGSYNTAX);
    ASSERT_EQ(parse("@+=x PING", &m), 0);
    ASSERT_EQ(ax_irc_tags_check(m.tags), AX_IRC_ETAGSYNTAX);
}

TEST(irc_tag_escaping)
{
    char out[64];
    const char *raw = "a;b c\\d\re\nf";
    size_t n = ax_irc_tag_escape(raw, strlen(raw), out, sizeof out);
    ASSERT(n == 16 && memcmp(out, "a\\:b\\sc\\\\d\\re\\nf", 16) == 0);
    char back[64];
    size_t m = ax_irc_tag_unescape(out, n, back);
    ASSERT(m == strlen(raw) && memcmp(back, raw, m) == 0);
    /* the spec's odd cases: an unknown escape is the byte, a final '\' goes */
    m = ax_irc_tag_unescape("\\b\\", 3, back);
    ASSERT(m == 1 && back[0] == 'b');
    m = ax_irc_tag_unescape("x\\\\", 3, back);
    ASSERT(m == 2 && memcmp(back, "x\\", 2) == 0);
    /* in place */
    char inplace[] = "a\\sb";
    ASSERT_EQ(ax_irc_tag_unescape(inplace, 4, inplace), 3);
    ASSERT(memcmp(inplace, "a b", 3) == 0);
    /* too small: the size it needs */
    ASSERT_EQ(ax_irc_tag_escape("; ;", 3, out, 2), 6);
}

static ax_irc_str S(const char *s)
{
    return (ax_irc_str){s, strlen(s)};
}

TEST(irc_encode)
{
    char out[1024];
    ax_irc_msg m = {.source = S("srv"), .command = S("001"), .nparams = 2};
    m.params[0] = S("alice");
    m.params[1] = S("Welcome to axon");
    int n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(n > 0 && (size_t)n == strlen(":srv 001 alice :Welcome to axon\r\n"));
    ASSERT(memcmp(out, ":srv 001 alice :Welcome to axon\r\n", (size_t)n) == 0);
    /* no ':' unless needed or asked */
    m.params[1] = S("word");
    n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(memcmp(out, ":srv 001 alice word\r\n", (size_t)n) == 0);
    m.trailing = true;
    n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(memcmp(out, ":srv 001 alice :word\r\n", (size_t)n) == 0);
    m.trailing = false;
    m.params[1] = S(":x");
    n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(memcmp(out, ":srv 001 alice ::x\r\n", (size_t)n) == 0);
    m.params[1] = S("");
    n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(memcmp(out, ":srv 001 alice :\r\n", (size_t)n) == 0);
    /* tags */
    m.tags = S("time=2024-01-01T00:00:00.000Z");
    m.params[1] = S("hi");
    n = ax_irc_encode(out, sizeof out, &m);
    ASSERT(memcmp(out, "@time=2024-01-01T00:00:00.000Z :srv 001 alice hi\r\n", (size_t)n) == 0);
    /* refusals */
    m.tags = S("");
    m.params[0] = S("a b");
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_EMIDDLE);
    m.params[0] = S("");
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_EMIDDLE);
    m.params[0] = S(":a");
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_EMIDDLE);
    m.params[0] = S("a");
    m.params[1] = S("x\r\nQUIT");
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_EBYTE);
    m.params[1] = S("x");
    m.command = S("BAD CMD");
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_ECOMMAND);
    m.command = S("PRIVMSG");
    ASSERT_EQ(ax_irc_encode(out, 10, &m), AX_IRC_ENOSPACE);
    static char big[600];
    memset(big, 'x', sizeof big - 1);
    m.params[1] = S(big);
    ASSERT_EQ(ax_irc_encode(out, sizeof out, &m), AX_IRC_ELINE);
}

TEST(irc_encode_parse_round_trip)
{
    const char *lines[] = {"@a=b\\s;c :n!u@h PRIVMSG #x :hello there",
                           ":s 005 n A=1 B :are supported", "CAP REQ :sasl", "PING x",
                           ":s 353 n = #x :@a +b c"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        ax_irc_msg m, m2;
        ASSERT_EQ(parse(lines[i], &m), 0);
        char out[600];
        int n = ax_irc_encode(out, sizeof out, &m);
        ASSERT(n > 2);
        ASSERT((size_t)n == strlen(lines[i]) + 2 && memcmp(out, lines[i], (size_t)n - 2) == 0);
        ASSERT_EQ(ax_irc_parse(out, (size_t)n - 2, &m2), 0);
        ASSERT(m2.nparams == m.nparams);
    }
}

TEST(irc_utf8_cut)
{
    const char *s = "ab\xc3\xa9"
                    "c\xe2\x82\xac"
                    "d\xf0\x9f\x98\x80";
    size_t n = strlen(s);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 100), n);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 2), 2);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 3), 2); /* not inside é */
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 4), 4);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 6), 5); /* not inside € */
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 7), 5);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 8), 8);
    ASSERT_EQ(ax_irc_utf8_cut(s, n, 11), 9);                     /* not inside the emoji */
    ASSERT_EQ(ax_irc_utf8_cut("\x80\x80\x80\x80\x80", 5, 3), 3); /* not UTF-8 */
}

TEST(irc_casemapping)
{
    ASSERT(ax_irc_casecmp("Alice", 5, "aLICE", 5));
    ASSERT(!ax_irc_casecmp("Alice", 5, "Alic", 4));
    ASSERT(!ax_irc_casecmp("a[", 2, "a{", 2)); /* ascii, not rfc1459 */
    static const struct {
        const char *mask, *s;
        bool match;
    } masks[] = {{"*!*@*", "bob!~bob@127.0.0.1", true},
                 {"Bob!*@*", "bob!~b@h", true},
                 {"*!*@10.0.*", "x!y@10.0.0.1", true},
                 {"*!*@10.0.*", "x!y@10.1.0.1", false},
                 {"b?b!*", "bob!u@h", true},
                 {"b?b!*", "bb!u@h", false},
                 {"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa", false},
                 {"", "", true},
                 {"*", "", true},
                 {"a", "", false}};
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++)
        ASSERT(ax_irc_mask_match(masks[i].mask, strlen(masks[i].mask), masks[i].s,
                                 strlen(masks[i].s)) == masks[i].match);
}
