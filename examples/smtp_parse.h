/* smtp_parse.h: the SMTP command parser of examples/smtp_server.c.
 *
 * Pure and bounded: it reads only the bytes it is given, writes only the
 * struct it is given, allocates nothing and keeps no state, so the server
 * and the fuzz target (tests/fuzz/fuzz_smtp.c) share it as it is.  What it
 * follows in RFC 5321:
 *  - a command line ends with CRLF; a bare LF is taken too (4.1.1 asks
 *    for CRLF, real clients send it), but never inside mail data, where
 *    only CRLF "." CRLF ends a message (no SMTP smuggling through a bare
 *    LF before the dot);
 *  - a command line is at most 512 bytes with its CRLF (4.5.3.1.4), a
 *    text line of data at most 1000 (4.5.3.1.6): the caller enforces them
 *    with smtp_line();
 *  - verbs are case-insensitive (2.4); MAIL FROM:<path> and RCPT TO:<path>
 *    take a reverse-/forward-path in angle brackets, a space before the
 *    bracket tolerated, and ESMTP parameters after it (SIZE=n of RFC 1870
 *    and BODY= of RFC 6152 understood, anything else refused with 555);
 *  - a path is at most 256 bytes (4.5.3.1.3) and holds no control
 *    characters; "<>" is the null reverse-path of bounces. */
#ifndef SMTP_PARSE_H
#define SMTP_PARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SMTP_MAX_CMD 512   /* a command line, CRLF included */
#define SMTP_MAX_TEXT 1000 /* a line of mail data, CRLF included */
#define SMTP_MAX_PATH 256  /* a path, brackets excluded */

enum smtp_verb {
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_VRFY,
    SMTP_HELP,
    SMTP_STARTTLS,
};

typedef struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg; /* HELO/EHLO domain, VRFY/HELP/NOOP text; inside the line */
    size_t arg_len;
    const char *path; /* MAIL/RCPT: between the brackets, may be empty */
    size_t path_len;
    uint64_t size; /* MAIL SIZE=, 0 when not given */
} smtp_cmd;

/* Where the next line ends in buf[0..len): its length without the line
 * break in *line_len, and the bytes to consume (line and break) returned.
 * 0: no line end yet.  -1: more than `max` bytes without one (the caller
 * replies 500 and skips to the next line end).  `crlf_only`: only CRLF
 * ends a line (mail data). */
static inline long smtp_line(const char *buf, size_t len, size_t max, bool crlf_only,
                             size_t *line_len)
{
    size_t lim = len < max ? len : max;
    for (size_t i = 0; i < lim; i++) {
        if (buf[i] != '\n') continue;
        if (i > 0 && buf[i - 1] == '\r') {
            *line_len = i - 1;
            return (long)i + 1;
        }
        if (!crlf_only) {
            *line_len = i;
            return (long)i + 1;
        }
    }
    return len >= max ? -1 : 0;
}

static inline bool smtp_ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n) return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (c != lit[i]) return false;
    }
    return true;
}

/* A decimal number of at most 18 digits into *out; false otherwise. */
static inline bool smtp_number(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* MAIL/RCPT after the verb: "FROM:" or "TO:", then <path> and parameters.
 * Returns 0 or the reply code (501 syntax, 555 unknown parameter). */
static inline int smtp_path_args(const char *p, size_t n, const char *key, smtp_cmd *c)
{
    size_t k = strlen(key);
    if (n < k || !smtp_ieq(p, k, key)) return 501;
    p += k, n -= k;
    if (n && p[0] == ' ') p++, n--; /* "MAIL FROM: <a@b>" is common */
    if (!n || p[0] != '<') return 501;
    const char *end = memchr(p, '>', n);
    if (!end) return 501;
    c->path = p + 1;
    c->path_len = (size_t)(end - p) - 1;
    if (c->path_len > SMTP_MAX_PATH) return 501;
    for (size_t i = 0; i < c->path_len; i++)
        if ((unsigned char)c->path[i] < 0x21 || c->path[i] == 0x7f || c->path[i] == '<') return 501;
    size_t used = (size_t)(end - p) + 1;
    p += used, n -= used;
    while (n) { /* " KEY=VALUE" parameters */
        if (p[0] != ' ') return 501;
        p++, n--;
        const char *sp = memchr(p, ' ', n);
        size_t plen = sp ? (size_t)(sp - p) : n;
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        const char *v = eq ? eq + 1 : p + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        if (smtp_ieq(key, strlen(key), "FROM:") && smtp_ieq(p, klen, "SIZE")) {
            if (!smtp_number(v, vlen, &c->size)) return 501;
        } else if (smtp_ieq(key, strlen(key), "FROM:") && smtp_ieq(p, klen, "BODY")) {
            if (!smtp_ieq(v, vlen, "7BIT") && !smtp_ieq(v, vlen, "8BITMIME")) return 501;
        } else {
            return 555;
        }
        p += plen, n -= plen;
    }
    return 0;
}

/* Parse one command line (without its line break).  Returns 0 with *c
 * filled, or the reply code: 500 unknown or malformed command, 501 bad
 * arguments, 555 unknown MAIL/RCPT parameter. */
static inline int smtp_parse(const char *line, size_t len, smtp_cmd *c)
{
    static const struct {
        const char *name;
        enum smtp_verb verb;
        bool arg; /* takes an argument (required for HELO/EHLO/MAIL/RCPT/VRFY) */
    } verbs[] = {
        {"HELO", SMTP_HELO, true}, {"EHLO", SMTP_EHLO, true},          {"MAIL", SMTP_MAIL, true},
        {"RCPT", SMTP_RCPT, true}, {"DATA", SMTP_DATA, false},         {"RSET", SMTP_RSET, false},
        {"NOOP", SMTP_NOOP, true}, {"QUIT", SMTP_QUIT, false},         {"VRFY", SMTP_VRFY, true},
        {"HELP", SMTP_HELP, true}, {"STARTTLS", SMTP_STARTTLS, false},
    };
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') return 500;
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    const char *arg = sp ? sp + 1 : line + len;
    size_t alen = sp ? len - vlen - 1 : 0;
    while (alen && arg[alen - 1] == ' ') /* trailing blanks some clients send */
        alen--;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (!smtp_ieq(line, vlen, verbs[i].name)) continue;
        c->verb = verbs[i].verb;
        if (!verbs[i].arg && alen) return 501;
        c->arg = arg;
        c->arg_len = alen;
        switch (c->verb) {
        case SMTP_HELO:
        case SMTP_EHLO:
        case SMTP_VRFY:
            return alen ? 0 : 501;
        case SMTP_MAIL:
            return smtp_path_args(arg, alen, "FROM:", c);
        case SMTP_RCPT: {
            int rc = smtp_path_args(arg, alen, "TO:", c);
            return rc ? rc : c->path_len ? 0 : 501; /* no null forward-path */
        }
        default:
            return 0;
        }
    }
    return 500;
}

/* One line of mail data (its CRLF removed): true when it is the lone "."
 * that ends the message; otherwise the text to store, without the dot a
 * sender doubled at the start of the line (dot-stuffing, 4.5.2). */
static inline bool smtp_data_line(const char **line, size_t *len)
{
    if (*len == 1 && (*line)[0] == '.') return true;
    if (*len > 0 && (*line)[0] == '.') {
        (*line)++;
        (*len)--;
    }
    return false;
}

#endif
