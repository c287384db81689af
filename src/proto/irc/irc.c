/* irc.c: the IRC message codec (irc.h). */
#include "irc.h"

#include <string.h>

int ax_irc_line(const char *buf, size_t n, size_t *len, size_t *skip)
{
    size_t e = 0;
    while (e < n && buf[e] != '\n' && buf[e] != '\r')
        e++;
    /* Where the message part begins: after the tags and one space. */
    size_t start = 0;
    if (n && buf[0] == '@') {
        const char *sp = memchr(buf, ' ', e);
        size_t tags_end = sp ? (size_t)(sp - buf) : e; /* the space, or as far as seen */
        if (tags_end + 1 > AX_IRC_MAX_TAGS) {
            *len = e;
            *skip = e < n ? e + 1 : n;
            if (e + 1 < n && buf[e] == '\r' && buf[e + 1] == '\n') *skip = e + 2;
            return AX_IRC_ETAGS;
        }
        start = sp ? tags_end + 1 : e;
    }
    if (e - start + 2 > AX_IRC_MAX_LINE) {
        *len = e;
        *skip = e < n ? e + 1 : n;
        if (e + 1 < n && buf[e] == '\r' && buf[e + 1] == '\n') *skip = e + 2;
        return AX_IRC_ELINE;
    }
    if (e == n) return AX_IRC_INCOMPLETE;
    if (buf[e] == '\r') {
        if (e + 1 == n) return AX_IRC_INCOMPLETE; /* its LF may follow */
        *skip = buf[e + 1] == '\n' ? e + 2 : e + 1;
    } else {
        *skip = e + 1;
    }
    *len = e;
    return 1;
}

static bool is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool command_ok(const char *p, size_t n)
{
    if (n == 3 && is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2])) return true;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_letter(p[i])) return false;
    return true;
}

static bool key_ok(const char *p, size_t n)
{
    if (n && p[0] == '+') p++, n--;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!(is_letter(c) || is_digit(c) || c == '-' || c == '.' || c == '/')) return false;
    }
    return p[n - 1] != '/';
}

int ax_irc_parse(const char *line, size_t len, ax_irc_msg *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') return AX_IRC_EBYTE;
    size_t p = 0;
    bool any = false;
    if (p < len && line[p] == '@') {
        const char *sp = memchr(line, ' ', len);
        if (!sp) return AX_IRC_ECOMMAND;
        m->tags = (ax_irc_str){line + 1, (size_t)(sp - line) - 1};
        p = (size_t)(sp - line);
        any = true;
    }
    while (p < len && line[p] == ' ')
        p++;
    if (p < len && line[p] == ':') {
        size_t s = ++p;
        while (p < len && line[p] != ' ')
            p++;
        if (p == s) return AX_IRC_ECOMMAND;
        m->source = (ax_irc_str){line + s, p - s};
        any = true;
    }
    while (p < len && line[p] == ' ')
        p++;
    if (p == len) return any ? AX_IRC_ECOMMAND : AX_IRC_EEMPTY;
    size_t c = p;
    while (p < len && line[p] != ' ')
        p++;
    if (!command_ok(line + c, p - c)) return AX_IRC_ECOMMAND;
    m->command = (ax_irc_str){line + c, p - c};
    for (;;) {
        while (p < len && line[p] == ' ')
            p++;
        if (p == len) break;
        if (m->nparams == AX_IRC_MAX_PARAMS) return AX_IRC_EPARAMS;
        if (line[p] == ':') {
            m->params[m->nparams++] = (ax_irc_str){line + p + 1, len - p - 1};
            m->trailing = true;
            break;
        }
        size_t s = p;
        while (p < len && line[p] != ' ')
            p++;
        m->params[m->nparams++] = (ax_irc_str){line + s, p - s};
    }
    return 0;
}

bool ax_irc_tag_next(ax_irc_str *rest, ax_irc_str *key, ax_irc_str *value)
{
    while (rest->len) {
        const char *semi = memchr(rest->ptr, ';', rest->len);
        size_t n = semi ? (size_t)(semi - rest->ptr) : rest->len;
        const char *t = rest->ptr;
        rest->ptr += semi ? n + 1 : n;
        rest->len -= semi ? n + 1 : n;
        if (n == 0) continue; /* ";;" */
        const char *eq = memchr(t, '=', n);
        size_t k = eq ? (size_t)(eq - t) : n;
        *key = (ax_irc_str){t, k};
        *value = eq ? (ax_irc_str){eq + 1, n - k - 1} : (ax_irc_str){t + n, 0};
        return true;
    }
    return false;
}

int ax_irc_tags_check(ax_irc_str tags)
{
    ax_irc_str key, value;
    while (ax_irc_tag_next(&tags, &key, &value))
        if (!key_ok(key.ptr, key.len)) return AX_IRC_ETAGSYNTAX;
    return 0;
}

bool ax_irc_tag_get(ax_irc_str tags, const char *key, ax_irc_str *value)
{
    ax_irc_str k, v;
    size_t kl = strlen(key);
    bool found = false;
    while (ax_irc_tag_next(&tags, &k, &v))
        if (k.len == kl && memcmp(k.ptr, key, kl) == 0) {
            *value = v; /* the last one wins */
            found = true;
        }
    return found;
}

size_t ax_irc_tag_unescape(const char *v, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (++i == n) break; /* a lone '\' at the end */
        switch (v[i]) {
        case ':':
            out[o++] = ';';
            break;
        case 's':
            out[o++] = ' ';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        default:
            out[o++] = v[i];
            break; /* "\\" and the rest */
        }
    }
    return o;
}

size_t ax_irc_tag_escape(const char *v, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i], e = 0;
        switch (c) {
        case ';':
            e = ':';
            break;
        case ' ':
            e = 's';
            break;
        case '\\':
            e = '\\';
            break;
        case '\r':
            e = 'r';
            break;
        case '\n':
            e = 'n';
            break;
        default:
            break;
        }
        if (e) {
            if (o + 2 <= cap) out[o] = '\\', out[o + 1] = e;
            o += 2;
        } else {
            if (o + 1 <= cap) out[o] = c;
            o++;
        }
    }
    return o;
}

static bool bytes_ok(ax_irc_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '\0' || s.ptr[i] == '\r' || s.ptr[i] == '\n') return false;
    return true;
}

/* Append to out[*o..cap); false when it does not fit. */
static bool put(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    if (n > cap - *o) return false;
    if (n) memcpy(out + *o, p, n);
    *o += n;
    return true;
}

int ax_irc_encode(char *out, size_t cap, const ax_irc_msg *m)
{
    if (m->nparams < 0 || m->nparams > AX_IRC_MAX_PARAMS) return AX_IRC_EPARAMS;
    if (!command_ok(m->command.ptr, m->command.len)) return AX_IRC_ECOMMAND;
    if (!bytes_ok(m->tags) || !bytes_ok(m->source)) return AX_IRC_EBYTE;
    if (memchr(m->tags.ptr ? m->tags.ptr : "", ' ', m->tags.len)) return AX_IRC_ETAGSYNTAX;
    if (m->source.len && (memchr(m->source.ptr, ' ', m->source.len) || m->source.ptr[0] == ':'))
        return AX_IRC_EMIDDLE;
    size_t o = 0;
    if (m->tags.len) {
        if (m->tags.len + 2 > AX_IRC_MAX_TAGS) return AX_IRC_ETAGS;
        if (!put(out, cap, &o, "@", 1) || !put(out, cap, &o, m->tags.ptr, m->tags.len) ||
            !put(out, cap, &o, " ", 1))
            return AX_IRC_ENOSPACE;
    }
    size_t start = o;
    if (m->source.len &&
        (!put(out, cap, &o, ":", 1) || !put(out, cap, &o, m->source.ptr, m->source.len) ||
         !put(out, cap, &o, " ", 1)))
        return AX_IRC_ENOSPACE;
    if (!put(out, cap, &o, m->command.ptr, m->command.len)) return AX_IRC_ENOSPACE;
    for (int i = 0; i < m->nparams; i++) {
        ax_irc_str p = m->params[i];
        if (!bytes_ok(p)) return AX_IRC_EBYTE;
        bool last = i == m->nparams - 1;
        bool needs = p.len == 0 || memchr(p.ptr, ' ', p.len) || p.ptr[0] == ':';
        if (needs && !last) return AX_IRC_EMIDDLE;
        if (!put(out, cap, &o, " ", 1)) return AX_IRC_ENOSPACE;
        if (last && (needs || m->trailing) && !put(out, cap, &o, ":", 1)) return AX_IRC_ENOSPACE;
        if (!put(out, cap, &o, p.ptr, p.len)) return AX_IRC_ENOSPACE;
    }
    if (o - start + 2 > AX_IRC_MAX_LINE) return AX_IRC_ELINE;
    if (!put(out, cap, &o, "\r\n", 2)) return AX_IRC_ENOSPACE;
    return (int)o;
}

size_t ax_irc_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t i = max;
    for (int k = 0; k < 3 && i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80; k++)
        i--;
    if (((unsigned char)s[i] & 0xC0) == 0x80) return max; /* not UTF-8 here */
    return i ? i : max;
}

bool ax_irc_casecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

static char fold(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool ax_irc_mask_match(const char *mask, size_t mlen, const char *s, size_t slen)
{
    size_t m = 0, i = 0, star = (size_t)-1, mark = 0;
    while (i < slen) {
        if (m < mlen && mask[m] == '*') {
            star = m++; /* try the star as empty first, widen it on a mismatch */
            mark = i;
        } else if (m < mlen && (mask[m] == '?' || fold(mask[m]) == fold(s[i]))) {
            m++, i++;
        } else if (star != (size_t)-1) {
            m = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (m < mlen && mask[m] == '*')
        m++;
    return m == mlen;
}
