/* ftp_parse.h: the FTP command parser and path resolver of
 * examples/ftp_server.c.
 *
 * Pure and bounded, like smtp_parse.h: it reads only the bytes it is
 * given, writes only into the caller's buffers, allocates nothing, so the
 * server and the fuzz target (tests/fuzz/fuzz_ftp.c) share it.  What it
 * follows:
 *  - RFC 959 4.1: a command is a verb of 3 or 4 letters, case-insensitive,
 *    then optionally one space and an argument, ended by CRLF (a bare LF is
 *    taken too); a line is at most FTP_MAX_LINE bytes here;
 *  - RFC 3659: SIZE, MDTM, REST STREAM, MLSD; RFC 2428: EPSV; RFC 4217:
 *    AUTH TLS, PBSZ, PROT;
 *  - paths: ftp_path() joins the working directory and an argument into a
 *    normalized absolute path inside the served root, taking "." and ".."
 *    apart lexically; a ".." above the root is refused, not clamped, so a
 *    traversal attempt gets an error instead of a surprise.  Symbolic links
 *    are the server's concern (it checks where the kernel resolves them). */
#ifndef FTP_PARSE_H
#define FTP_PARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FTP_MAX_LINE 1024 /* a command line, line break included */
#define FTP_MAX_PATH 1024 /* a path in the served tree, NUL included */

enum ftp_verb {
    FTP_USER,
    FTP_PASS,
    FTP_QUIT,
    FTP_SYST,
    FTP_FEAT,
    FTP_OPTS,
    FTP_NOOP,
    FTP_PWD,
    FTP_CWD,
    FTP_CDUP,
    FTP_TYPE,
    FTP_MODE,
    FTP_STRU,
    FTP_PASV,
    FTP_EPSV,
    FTP_PORT,
    FTP_EPRT,
    FTP_LIST,
    FTP_NLST,
    FTP_MLSD,
    FTP_RETR,
    FTP_STOR,
    FTP_APPE,
    FTP_REST,
    FTP_DELE,
    FTP_MKD,
    FTP_RMD,
    FTP_RNFR,
    FTP_RNTO,
    FTP_SIZE,
    FTP_MDTM,
    FTP_ABOR,
    FTP_AUTH,
    FTP_PBSZ,
    FTP_PROT,
    FTP_HELP,
    FTP_STAT,
    FTP_ALLO,
};

/* How a verb takes its argument. */
enum ftp_arg { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

typedef struct ftp_cmd {
    enum ftp_verb verb;
    const char *arg; /* inside the line; "" when none */
    size_t arg_len;
} ftp_cmd;

/* The next line in buf[0..len): its length without the line break in
 * *line_len, the bytes to consume returned; 0 when no line end came yet;
 * -1 when `max` bytes came without one. */
static inline long ftp_line(const char *buf, size_t len, size_t max, size_t *line_len)
{
    size_t lim = len < max ? len : max;
    const char *nl = memchr(buf, '\n', lim);
    if (!nl) return len >= max ? -1 : 0;
    size_t n = (size_t)(nl - buf);
    *line_len = n > 0 && buf[n - 1] == '\r' ? n - 1 : n;
    return (long)n + 1;
}

static inline char ftp_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Parse one command line (without its line break).  Returns 0 with *c
 * filled, 500 for an unknown verb or a control character in the line,
 * 501 for a missing or unexpected argument. */
static inline int ftp_parse(const char *line, size_t len, ftp_cmd *c)
{
    static const struct {
        char name[5];
        enum ftp_verb verb;
        enum ftp_arg arg;
    } verbs[] = {
        {"USER", FTP_USER, ARG_REQUIRED}, {"PASS", FTP_PASS, ARG_OPTIONAL},
        {"QUIT", FTP_QUIT, ARG_NONE},     {"SYST", FTP_SYST, ARG_NONE},
        {"FEAT", FTP_FEAT, ARG_NONE},     {"OPTS", FTP_OPTS, ARG_REQUIRED},
        {"NOOP", FTP_NOOP, ARG_NONE},     {"PWD", FTP_PWD, ARG_NONE},
        {"XPWD", FTP_PWD, ARG_NONE},      {"CWD", FTP_CWD, ARG_REQUIRED},
        {"XCWD", FTP_CWD, ARG_REQUIRED},  {"CDUP", FTP_CDUP, ARG_NONE},
        {"XCUP", FTP_CDUP, ARG_NONE},     {"TYPE", FTP_TYPE, ARG_REQUIRED},
        {"MODE", FTP_MODE, ARG_REQUIRED}, {"STRU", FTP_STRU, ARG_REQUIRED},
        {"PASV", FTP_PASV, ARG_NONE},     {"EPSV", FTP_EPSV, ARG_OPTIONAL},
        {"PORT", FTP_PORT, ARG_REQUIRED}, {"EPRT", FTP_EPRT, ARG_REQUIRED},
        {"LIST", FTP_LIST, ARG_OPTIONAL}, {"NLST", FTP_NLST, ARG_OPTIONAL},
        {"MLSD", FTP_MLSD, ARG_OPTIONAL}, {"RETR", FTP_RETR, ARG_REQUIRED},
        {"STOR", FTP_STOR, ARG_REQUIRED}, {"APPE", FTP_APPE, ARG_REQUIRED},
        {"REST", FTP_REST, ARG_REQUIRED}, {"DELE", FTP_DELE, ARG_REQUIRED},
        {"MKD", FTP_MKD, ARG_REQUIRED},   {"XMKD", FTP_MKD, ARG_REQUIRED},
        {"RMD", FTP_RMD, ARG_REQUIRED},   {"XRMD", FTP_RMD, ARG_REQUIRED},
        {"RNFR", FTP_RNFR, ARG_REQUIRED}, {"RNTO", FTP_RNTO, ARG_REQUIRED},
        {"SIZE", FTP_SIZE, ARG_REQUIRED}, {"MDTM", FTP_MDTM, ARG_REQUIRED},
        {"ABOR", FTP_ABOR, ARG_NONE},     {"AUTH", FTP_AUTH, ARG_REQUIRED},
        {"PBSZ", FTP_PBSZ, ARG_REQUIRED}, {"PROT", FTP_PROT, ARG_REQUIRED},
        {"HELP", FTP_HELP, ARG_OPTIONAL}, {"STAT", FTP_STAT, ARG_NONE},
        {"ALLO", FTP_ALLO, ARG_REQUIRED},
    };
    char word[5];
    size_t v = 0;
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) return 500;
    while (v < len && line[v] != ' ' && v < 4) {
        word[v] = ftp_upper(line[v]);
        v++;
    }
    if (v < 3 || (v < len && line[v] != ' ')) return 500;
    word[v] = '\0';
    c->arg = v < len ? line + v + 1 : line + len;
    c->arg_len = v < len ? len - v - 1 : 0;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(word, verbs[i].name) != 0) continue;
        c->verb = verbs[i].verb;
        if (verbs[i].arg == ARG_NONE && c->arg_len) return 501;
        if (verbs[i].arg == ARG_REQUIRED && !c->arg_len) return 501;
        return 0;
    }
    return 500;
}

/* Join the working directory `cwd` (absolute, normalized, as this
 * function makes it) and `arg` into out[0..cap): absolute, no "." or ".."
 * components, no doubled or trailing '/', "/" for the root.  Returns the
 * length, -1 when the result would not fit, -2 when a ".." climbs above
 * the root. */
static inline long ftp_path(const char *cwd, const char *arg, size_t arg_len, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 2) return -1;
    if (arg_len == 0 || arg[0] != '/') { /* relative: start from cwd */
        size_t cl = strlen(cwd);
        if (cl >= cap) return -1;
        memcpy(out, cwd, cl);
        n = cl;
        if (n == 1) n = 0; /* the root is "" while we build */
    }
    size_t i = 0;
    while (i < arg_len) {
        while (i < arg_len && arg[i] == '/')
            i++;
        size_t start = i;
        while (i < arg_len && arg[i] != '/')
            i++;
        size_t k = i - start;
        const char *comp = arg + start;
        if (k == 0 || (k == 1 && comp[0] == '.')) continue;
        if (k == 2 && comp[0] == '.' && comp[1] == '.') {
            if (n == 0) return -2;
            while (n > 0 && out[n - 1] != '/')
                n--;
            n--; /* the '/' before the last component */
            continue;
        }
        if (memchr(comp, '\0', k)) return -1;
        if (n + 1 + k + 1 > cap) return -1;
        out[n++] = '/';
        memcpy(out + n, comp, k);
        n += k;
    }
    if (n == 0) out[n++] = '/';
    out[n] = '\0';
    return (long)n;
}

/* REST's argument: a decimal byte offset.  False when it is not one. */
static inline bool ftp_offset(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 18) return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

#endif
