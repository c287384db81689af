/* irc.h: a pure IRC message codec: RFC 1459/2812 lines as the Modern IRC
 * documents describe them (modern.ircdocs.horse), with IRCv3 message tags
 * (ircv3.net/specs/extensions/message-tags).  No I/O, no allocation, no
 * global state.  Internal, like proto/mqtt/mqtt.h; the hub's IRC gateway
 * includes it as "proto/irc/irc.h".
 *
 * Receiving is two steps, so a connection keeps only unconsumed bytes:
 *
 *     size_t n, skip;
 *     for (;;) {
 *         int rc = ax_irc_line(buf, len, &n, &skip);
 *         if (rc == AX_IRC_INCOMPLETE) break;          // keep buf[0..len)
 *         if (rc < 0) { reply 417 or drop the line; }  // n: the line's size
 *         else if (ax_irc_parse(buf, n, &msg) == 0)   // the line, no CR LF
 *             handle(&msg);                            // points into buf
 *         buf += skip, len -= skip;
 *     }
 *
 * ax_irc_line() finds the end of one line (LF, or CR LF; a lone CR is
 * taken as a line end too, as most servers do) and checks the two size
 * limits: the tags (with their '@' and the space after them) at most
 * AX_IRC_MAX_TAGS bytes, the rest of the line with its CR LF at most
 * AX_IRC_MAX_LINE bytes.  A line over a limit is reported as soon as the
 * limit is passed (before its end has arrived), with *skip the bytes to
 * drop so far; the caller keeps discarding up to the next line end.
 *
 * ax_irc_parse() splits one line into tags, source, command and at most
 * AX_IRC_MAX_PARAMS parameters; every field points into the line (not
 * NUL-terminated).  Spaces between fields may repeat; a NUL byte anywhere,
 * a command that is neither letters nor three digits, an empty line (or
 * only spaces) and a line with no command after its tags or source are
 * errors.  Tags are walked with ax_irc_tag_next() and their values
 * unescaped with ax_irc_tag_unescape().
 *
 * Sending: ax_irc_encode() writes a message with its CR LF, putting a ':'
 * before the last parameter when it needs one (empty, a space in it, or a
 * leading ':') or the caller asks for it, and refuses what a peer could
 * not parse back (a CR, LF or NUL anywhere; a middle parameter that is
 * empty, has a space or starts with ':'; more than AX_IRC_MAX_PARAMS
 * parameters; a line over the limits).  ax_irc_tag_escape() escapes a tag
 * value; ax_irc_utf8_cut() finds where to split long text. */
#ifndef AXON_PROTO_IRC_H
#define AXON_PROTO_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AX_IRC_MAX_LINE 512  /* source, command, params and CR LF */
#define AX_IRC_MAX_TAGS 8191 /* '@', the tags and the space after them */
#define AX_IRC_MAX_PARAMS 15

enum {
    AX_IRC_INCOMPLETE = 0,  /* ax_irc_line(): no line end yet */
    AX_IRC_ELINE = -1,      /* the message part is over AX_IRC_MAX_LINE */
    AX_IRC_ETAGS = -2,      /* the tags are over AX_IRC_MAX_TAGS */
    AX_IRC_EEMPTY = -3,     /* nothing but spaces */
    AX_IRC_ECOMMAND = -4,   /* no command, or not letters / three digits */
    AX_IRC_EPARAMS = -5,    /* more than AX_IRC_MAX_PARAMS parameters */
    AX_IRC_EBYTE = -6,      /* a NUL (or, encoding, a CR or LF) */
    AX_IRC_EMIDDLE = -7,    /* encoding: a middle parameter empty, with a space or ':' */
    AX_IRC_ENOSPACE = -8,   /* encoding: the output buffer is too small */
    AX_IRC_ETAGSYNTAX = -9, /* a tag key that is empty or has bad bytes */
};

/* A span of the caller's buffer. */
typedef struct ax_irc_str {
    const char *ptr;
    size_t len;
} ax_irc_str;

typedef struct ax_irc_msg {
    ax_irc_str tags;    /* the tags without '@' (len 0: none) */
    ax_irc_str source;  /* the source without ':' (len 0: none) */
    ax_irc_str command; /* letters, or three digits */
    int nparams;
    ax_irc_str params[AX_IRC_MAX_PARAMS];
    bool trailing; /* the last parameter came after ':' */
} ax_irc_msg;

/* One line of a stream: AX_IRC_INCOMPLETE (keep the bytes, read more), 1
 * with *len the line without its terminator and *skip the bytes it took
 * with the terminator, or AX_IRC_ELINE / AX_IRC_ETAGS with *len the line
 * (or the part seen so far) and *skip what to drop: up to and with the
 * line end when it is in buf, else all of buf. */
int ax_irc_line(const char *buf, size_t n, size_t *len, size_t *skip);

/* Parse one line (no CR LF) into *m.  0 or an AX_IRC_E… code.  Nothing
 * is read past line[len - 1]. */
int ax_irc_parse(const char *line, size_t len, ax_irc_msg *m);

/* Walk tags (ax_irc_msg.tags): each call takes one `key[=value]` off
 * *rest and gives key and raw (escaped) value; false when none is left.
 * A key may carry a '+' (client tag) and a vendor "host/" prefix. */
bool ax_irc_tag_next(ax_irc_str *rest, ax_irc_str *key, ax_irc_str *value);
/* Check the tag keys of a tags string: 0 or AX_IRC_ETAGSYNTAX. */
int ax_irc_tags_check(ax_irc_str tags);
/* The value of tag `key` (escaped), or false. */
bool ax_irc_tag_get(ax_irc_str tags, const char *key, ax_irc_str *value);

/* Unescape a tag value into out (n bytes at most are needed; out may be
 * v itself): "\:" ';', "\s" ' ', "\\" '\', "\r" CR, "\n" LF, '\' and
 * another byte: that byte, a '\' at the end: dropped.  Returns the length. */
size_t ax_irc_tag_unescape(const char *v, size_t n, char *out);
/* Escape a value into out (cap bytes; 2 * n are enough).  Returns the
 * length, or the length it would need when that is more than cap (then
 * out holds nothing useful). */
size_t ax_irc_tag_escape(const char *v, size_t n, char *out, size_t cap);

/* Encode *m (its fields as ax_irc_parse() fills them; tags already
 * escaped, without '@') into out with CR LF.  Returns the length, or an
 * AX_IRC_E… code. */
int ax_irc_encode(char *out, size_t cap, const ax_irc_msg *m);

/* The longest prefix of s[0..n) of at most max bytes that ends on a UTF-8
 * character boundary (bytes that are not UTF-8 are single characters). */
size_t ax_irc_utf8_cut(const char *s, size_t n, size_t max);

/* Compare two names as CASEMAPPING=ascii does (A-Z are a-z). */
bool ax_irc_casecmp(const char *a, size_t alen, const char *b, size_t blen);

/* Does `s` match the mask (a ban mask such as "*!*@10.0.*"): '*' any run
 * of bytes, '?' one byte, the rest compared as ax_irc_casecmp() does?
 * Linear in practice: one '*' is backtracked at a time (no exponential
 * case however many stars). */
bool ax_irc_mask_match(const char *mask, size_t mlen, const char *s, size_t slen);

#endif
