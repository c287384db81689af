/* http_parser.c: the incremental HTTP/1.1 head parser and body decoder.
 *
 * A head is read line by line.  find_eol() scans for the end of the current
 * line, rejecting control characters on the way and stopping at the limit,
 * so a line's bytes are examined once however the input is split; the
 * parser remembers where it stopped.  A complete line is then checked
 * against the grammar of its place (request line, status line, field line).
 * Header slices point into the buffer of the call that saw the line; since
 * the buffer may move between calls, lines seen in earlier calls are split
 * again once, when the head completes (refill()).  The field semantics
 * (framing, connection) are decided from the finished header list. */
#include "http_parser.h"

#include <limits.h>
#include <string.h>

enum {
    C_TCHAR = 1 << 0,  /* token: ALPHA DIGIT !#$%&'*+-.^_`|~ */
    C_LINE = 1 << 1,   /* allowed inside a line: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 1 << 2, /* request-target: VCHAR */
    C_HOST = 1 << 3,   /* authority: unreserved, sub-delims, ':', '[', ']', '%' */
    C_HEX = 1 << 4,
    C_QDTEXT = 1 << 5, /* quoted-string text: HTAB SP ! #-[ ]-~ obs-text */
};

/* clang-format off */
/* One row per 16 bytes, 0x00 to 0xff. */
static const uint8_t cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x22, 0x2f, 0x06, 0x27, 0x2f, 0x2f, 0x2f, 0x2f, 0x2e, 0x2e, 0x2f, 0x2f, 0x2e, 0x2f, 0x2f, 0x26,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2e, 0x2e, 0x26, 0x2e, 0x26, 0x26,
    0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2e, 0x06, 0x2e, 0x27, 0x2f,
    0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x27, 0x26, 0x2f, 0x00,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
};
/* clang-format on */

const ax_http_limits ax_http_default_limits = {
    .max_start_line = 8192,
    .max_header_bytes = 32768,
    .max_headers = 100,
    .max_chunk_line = 1024,
    .max_body = UINT64_MAX,
    .allow_bare_lf = false,
};

static const struct {
    uint16_t status;
    const char *text;
} errs[AX_HTTP_ERR_COUNT_] = {
    [AX_HTTP_ERR_NONE] = {0, "no error"},
    [AX_HTTP_ERR_STATE] = {400, "parser misuse (buffer shrank)"},
    [AX_HTTP_ERR_CONTROL_CHAR] = {400, "control character"},
    [AX_HTTP_ERR_BARE_CR] = {400, "bare CR"},
    [AX_HTTP_ERR_BARE_LF] = {400, "bare LF"},
    [AX_HTTP_ERR_METHOD] = {400, "invalid method"},
    [AX_HTTP_ERR_TARGET] = {400, "invalid request-target"},
    [AX_HTTP_ERR_VERSION] = {400, "invalid HTTP version"},
    [AX_HTTP_ERR_VERSION_NOT_SUP] = {505, "HTTP version not supported"},
    [AX_HTTP_ERR_STATUS] = {400, "invalid status line"},
    [AX_HTTP_ERR_LINE_TOO_LONG] = {414, "start line too long"},
    [AX_HTTP_ERR_HEAD_TOO_LARGE] = {431, "header section too large"},
    [AX_HTTP_ERR_TOO_MANY_HEADERS] = {431, "too many header fields"},
    [AX_HTTP_ERR_OBS_FOLD] = {400, "obsolete line folding"},
    [AX_HTTP_ERR_HEADER_NAME] = {400, "invalid field name"},
    [AX_HTTP_ERR_SPACE_BEFORE_COLON] = {400, "whitespace before colon"},
    [AX_HTTP_ERR_NO_COLON] = {400, "field line without colon"},
    [AX_HTTP_ERR_CL_INVALID] = {400, "invalid Content-Length"},
    [AX_HTTP_ERR_CL_DUPLICATE] = {400, "duplicate Content-Length"},
    [AX_HTTP_ERR_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [AX_HTTP_ERR_TE_INVALID] = {400, "invalid Transfer-Encoding"},
    [AX_HTTP_ERR_TE_NOT_IMPL] = {501, "transfer coding not implemented"},
    [AX_HTTP_ERR_TE_HTTP10] = {400, "Transfer-Encoding in HTTP/1.0"},
    [AX_HTTP_ERR_HOST_MISSING] = {400, "missing Host"},
    [AX_HTTP_ERR_HOST_DUPLICATE] = {400, "duplicate Host"},
    [AX_HTTP_ERR_HOST_INVALID] = {400, "invalid Host"},
    [AX_HTTP_ERR_EXPECT] = {417, "unsupported expectation"},
    [AX_HTTP_ERR_BODY_TOO_LARGE] = {413, "body too large"},
    [AX_HTTP_ERR_CHUNK_SIZE] = {400, "invalid chunk size"},
    [AX_HTTP_ERR_CHUNK_EXT] = {400, "invalid chunk extension"},
    [AX_HTTP_ERR_CHUNK_LINE_TOO_LONG] = {400, "chunk-size line too long"},
    [AX_HTTP_ERR_CHUNK_CRLF] = {400, "chunk data not followed by CRLF"},
};

const char *ax_http_err_str(enum ax_http_err err)
{
    if ((unsigned)err >= AX_HTTP_ERR_COUNT_) return "unknown error";
    return errs[err].text;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Keep every offset sum far from overflow and a head's size within int. */
static size_t clamp(size_t v)
{
    return v > INT_MAX / 4 ? INT_MAX / 4 : v;
}

/* Two byte strings are equal ignoring ASCII case. */
static bool ieq(const char *s, size_t len, const char *t, size_t n)
{
    if (len != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)t[i])) return false;
    return true;
}

#define IEQ(str, lit) ieq((str).ptr, (str).len, lit, sizeof(lit) - 1)

/* ---- lines ------------------------------------------------------------- */

enum { EOL_FOUND, EOL_MORE, EOL_LIMIT, EOL_BAD };

typedef struct eol_scan {
    size_t search; /* in/out: where the scan (re)starts */
    size_t limit;  /* the line's LF must lie below this offset */
    size_t eol;    /* out: first byte of the line terminator */
    size_t next;   /* out: first byte after it */
    uint8_t err;   /* out, with EOL_BAD */
} eol_scan;

/* Finds the end of the current line.  Everything the limit forbids is
 * decided from bytes below the limit, so an over-long line gives the same
 * answer whether it arrives whole or byte by byte. */
static int find_eol(const unsigned char *b, size_t len, bool lf_ok, eol_scan *s)
{
    size_t end = len < s->limit ? len : s->limit;
    size_t i = s->search;

    while (i < end && (cls[b[i]] & C_LINE))
        i++;
    s->search = i;
    if (i == end) return end == s->limit ? EOL_LIMIT : EOL_MORE;
    if (b[i] == '\n') {
        if (!lf_ok) {
            s->err = AX_HTTP_ERR_BARE_LF;
            return EOL_BAD;
        }
        s->eol = i;
        s->next = i + 1;
        return EOL_FOUND;
    }
    if (b[i] == '\r') {
        if (i + 1 >= s->limit) return EOL_LIMIT;
        if (i + 1 == len) return EOL_MORE;
        if (b[i + 1] != '\n') {
            s->err = AX_HTTP_ERR_BARE_CR;
            return EOL_BAD;
        }
        s->eol = i;
        s->next = i + 2;
        return EOL_FOUND;
    }
    s->err = AX_HTTP_ERR_CONTROL_CHAR;
    return EOL_BAD;
}

/* field-line = field-name ":" OWS field-value OWS, on b[s..e), s < e.
 * The characters of the value were vetted by find_eol(). */
static int field_line(const unsigned char *b, size_t s, size_t e, ax_http_header *out)
{
    size_t i = s, v, ve;

    if (is_ws(b[s])) return AX_HTTP_ERR_OBS_FOLD;
    while (i < e && (cls[b[i]] & C_TCHAR))
        i++;
    if (i == e) return AX_HTTP_ERR_NO_COLON;
    if (b[i] != ':') {
        size_t j = i;
        if (!is_ws(b[i])) return AX_HTTP_ERR_HEADER_NAME;
        while (j < e && is_ws(b[j]))
            j++;
        if (j == e) return AX_HTTP_ERR_NO_COLON;
        return b[j] == ':' ? AX_HTTP_ERR_SPACE_BEFORE_COLON : AX_HTTP_ERR_HEADER_NAME;
    }
    if (i == s) return AX_HTTP_ERR_HEADER_NAME;
    v = i + 1;
    while (v < e && is_ws(b[v]))
        v++;
    ve = e;
    while (ve > v && is_ws(b[ve - 1]))
        ve--;
    if (out) {
        out->name.ptr = (const char *)b + s;
        out->name.len = i - s;
        out->value.ptr = (const char *)b + v;
        out->value.len = ve - v;
    }
    return 0;
}

/* ---- start lines ------------------------------------------------------- */

static enum ax_http_method method_id(const unsigned char *m, size_t n)
{
    static const struct {
        const char *name;
        uint8_t len, id;
    } known[] = {
        {"GET", 3, AX_HTTP_GET},         {"HEAD", 4, AX_HTTP_HEAD},
        {"POST", 4, AX_HTTP_POST},       {"PUT", 3, AX_HTTP_PUT},
        {"DELETE", 6, AX_HTTP_DELETE},   {"CONNECT", 7, AX_HTTP_CONNECT},
        {"OPTIONS", 7, AX_HTTP_OPTIONS}, {"TRACE", 5, AX_HTTP_TRACE},
        {"PATCH", 5, AX_HTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].len == n && memcmp(known[i].name, m, n) == 0)
            return (enum ax_http_method)known[i].id;
    return AX_HTTP_OTHER;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
static int parse_version(const unsigned char *v, size_t n, int *minor)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' || !is_digit(v[7]))
        return AX_HTTP_ERR_VERSION;
    if (v[5] != '1') return AX_HTTP_ERR_VERSION_NOT_SUP;
    /* A higher minor version is processed as the highest we implement. */
    *minor = v[7] == '0' ? 0 : 1;
    return 0;
}

static bool all_host_chars(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(cls[s[i]] & C_HOST)) return false;
    return true;
}

/* absolute-form starts with a scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
static bool has_scheme(const unsigned char *t, size_t n)
{
    size_t i = 1;
    if (lower(t[0]) < 'a' || lower(t[0]) > 'z') return false;
    while (i < n && (is_digit(t[i]) || (lower(t[i]) >= 'a' && lower(t[i]) <= 'z') || t[i] == '+' ||
                     t[i] == '-' || t[i] == '.'))
        i++;
    return i < n && t[i] == ':';
}

/* The four forms of RFC 9112 3.2, each only with the methods it belongs to. */
static bool target_ok(enum ax_http_method m, const unsigned char *t, size_t n)
{
    if (m == AX_HTTP_CONNECT) /* authority-form: host:port */
        return all_host_chars(t, n) && memchr(t, ':', n) != NULL;
    if (t[0] == '/') return true;
    if (t[0] == '*') return n == 1 && m == AX_HTTP_OPTIONS;
    return has_scheme(t, n);
}

/* request-line = method SP request-target SP HTTP-version, single spaces. */
static int request_line(const unsigned char *b, size_t s, size_t e, ax_http_head *h)
{
    size_t i = s, t;

    while (i < e && (cls[b[i]] & C_TCHAR))
        i++;
    if (i == s || i == e || b[i] != ' ') return AX_HTTP_ERR_METHOD;
    h->method.ptr = (const char *)b + s;
    h->method.len = i - s;
    h->method_id = method_id(b + s, i - s);
    t = ++i;
    while (i < e && (cls[b[i]] & C_TARGET))
        i++;
    if (i == e) return AX_HTTP_ERR_VERSION; /* HTTP/0.9 or a missing version */
    if (i == t || b[i] != ' ' || !target_ok(h->method_id, b + t, i - t)) return AX_HTTP_ERR_TARGET;
    h->target.ptr = (const char *)b + t;
    h->target.len = i - t;
    return parse_version(b + i + 1, e - i - 1, &h->minor_version);
}

/* status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ]; the reason
 * may be missing altogether, as some servers send it. */
static int status_line(const unsigned char *b, size_t s, size_t e, ax_http_head *h)
{
    const unsigned char *c = b + s;
    size_t n = e - s;
    int err = parse_version(c, n < 8 ? n : 8, &h->minor_version);

    if (err) return err;
    if (n < 12 || c[8] != ' ' || c[9] < '1' || c[9] > '5' || !is_digit(c[10]) || !is_digit(c[11]) ||
        (n > 12 && c[12] != ' '))
        return AX_HTTP_ERR_STATUS;
    h->status = (c[9] - '0') * 100 + (c[10] - '0') * 10 + (c[11] - '0');
    h->reason.ptr = (const char *)c + (n > 12 ? 13 : 12);
    h->reason.len = n > 12 ? n - 13 : 0;
    return 0;
}

/* ---- the head parser --------------------------------------------------- */

enum { ST_START, ST_HEADERS, ST_ERROR };
enum { LINE_NEXT = 1, LINE_LAST = 2 };

void ax_http_parser_init(ax_http_parser *p, enum ax_http_kind kind, const ax_http_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = lim ? lim : &ax_http_default_limits;
    p->kind = (uint8_t)kind;
    p->stage = ST_START;
}

enum ax_http_err ax_http_parser_error(const ax_http_parser *p)
{
    return (enum ax_http_err)p->err;
}

static int fail(ax_http_parser *p, int err)
{
    p->err = (uint8_t)err;
    p->rc = -(int)errs[err].status;
    p->stage = ST_ERROR;
    return p->rc;
}

static size_t header_cap(const ax_http_parser *p, const ax_http_head *h)
{
    size_t cap = clamp(p->lim->max_headers);
    return h->headers_cap < cap ? h->headers_cap : cap;
}

/* Checks the complete line b[p->scan..s->eol). */
static int head_line(ax_http_parser *p, const unsigned char *b, const eol_scan *s, ax_http_head *h)
{
    size_t st = p->scan, e = s->eol;
    int err;

    if (p->stage == ST_START) {
        if (st == e) {
            /* RFC 9112 2.2: ignore empty lines before a request line. */
            if (p->kind == AX_HTTP_REQUEST) return LINE_NEXT;
            return fail(p, AX_HTTP_ERR_STATUS);
        }
        if (p->kind == AX_HTTP_REQUEST)
            err = request_line(b, st, e, h);
        else
            err = status_line(b, st, e, h);
        if (err) return fail(p, err);
        p->stage = ST_HEADERS;
        p->head_start = s->next;
        return LINE_NEXT;
    }
    if (st == e) return LINE_LAST;
    if (p->nheaders >= header_cap(p, h)) return fail(p, AX_HTTP_ERR_TOO_MANY_HEADERS);
    err = field_line(b, st, e, &h->headers[p->nheaders]);
    if (err) return fail(p, err);
    p->nheaders++;
    return LINE_NEXT;
}

/* Reads lines until the empty one that ends the head (0), the end of the
 * input (AX_HTTP_INCOMPLETE) or an error. */
static int run(ax_http_parser *p, const unsigned char *b, size_t len, ax_http_head *h)
{
    for (;;) {
        eol_scan s = {.search = p->search};
        int r;

        if (p->stage == ST_START)
            s.limit = clamp(p->lim->max_start_line);
        else
            s.limit = p->head_start + clamp(p->lim->max_header_bytes);
        r = find_eol(b, len, p->lim->allow_bare_lf, &s);
        if (r == EOL_MORE) {
            p->search = s.search;
            return AX_HTTP_INCOMPLETE;
        }
        if (r == EOL_LIMIT)
            return fail(p, p->stage == ST_START ? AX_HTTP_ERR_LINE_TOO_LONG
                                                : AX_HTTP_ERR_HEAD_TOO_LARGE);
        if (r == EOL_BAD) return fail(p, s.err);
        r = head_line(p, b, &s, h);
        if (r < 0) return r;
        p->scan = p->search = s.next;
        if (r == LINE_LAST) return 0;
    }
}

/* Point the slices of lines read by earlier calls into this buffer: the
 * same lines, read again by a fresh parser, land in the same places. */
static void refill(const ax_http_parser *p, const unsigned char *b, size_t upto, ax_http_head *h)
{
    ax_http_parser q;

    ax_http_parser_init(&q, (enum ax_http_kind)p->kind, p->lim);
    (void)run(&q, b, upto, h);
}

/* ---- field semantics --------------------------------------------------- */

/* The next non-empty element of a comma-separated list, without OWS. */
static bool list_next(ax_http_str v, size_t *pos, ax_http_str *el)
{
    const unsigned char *c = (const unsigned char *)v.ptr;
    size_t i = *pos, s, e;

    while (i < v.len && (is_ws(c[i]) || c[i] == ','))
        i++;
    if (i == v.len) {
        *pos = i;
        return false;
    }
    s = i;
    while (i < v.len && c[i] != ',')
        i++;
    e = i;
    while (e > s && is_ws(c[e - 1]))
        e--;
    el->ptr = v.ptr + s;
    el->len = e - s;
    *pos = i;
    return true;
}

bool ax_http_list_has(ax_http_str value, const char *token)
{
    size_t pos = 0, n = strlen(token);
    ax_http_str el;

    while (list_next(value, &pos, &el))
        if (ieq(el.ptr, el.len, token, n)) return true;
    return false;
}

const ax_http_header *ax_http_find_header(const ax_http_head *h, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < h->num_headers; i++)
        if (ieq(h->headers[i].name.ptr, h->headers[i].name.len, name, n)) return &h->headers[i];
    return NULL;
}

/* What the framing and connection fields said, gathered over all fields. */
typedef struct sem {
    uint64_t cl;
    unsigned cl_count, te_count, host_count, chunked_count;
    bool te_listed, te_other, chunked_last;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool upgrade_seen, expect_continue, expect_other;
    uint8_t err; /* the first problem, in field order */
} sem;

static void sem_err(sem *m, int err)
{
    if (!m->err) m->err = (uint8_t)err;
}

/* Content-Length = 1*DIGIT; a list, even of equal values, is refused. */
static void on_content_length(sem *m, ax_http_str v)
{
    uint64_t n = 0;

    if (m->cl_count++) {
        sem_err(m, AX_HTTP_ERR_CL_DUPLICATE);
        return;
    }
    if (v.len == 0) sem_err(m, AX_HTTP_ERR_CL_INVALID);
    for (size_t i = 0; i < v.len; i++) {
        unsigned d = (unsigned char)v.ptr[i] - '0';
        if (d > 9 || n > (UINT64_MAX - d) / 10) {
            sem_err(m, AX_HTTP_ERR_CL_INVALID);
            return;
        }
        n = n * 10 + d;
    }
    m->cl = n;
}

/* Repeated Transfer-Encoding fields form one list, in order. */
static void on_transfer_encoding(sem *m, ax_http_str v)
{
    size_t pos = 0;
    ax_http_str el;

    m->te_count++;
    while (list_next(v, &pos, &el)) {
        m->te_listed = true;
        m->chunked_last = IEQ(el, "chunked");
        if (m->chunked_last)
            m->chunked_count++;
        else
            m->te_other = true;
    }
}

static void on_connection(sem *m, ax_http_str v)
{
    size_t pos = 0;
    ax_http_str el;

    while (list_next(v, &pos, &el)) {
        if (IEQ(el, "close"))
            m->conn_close = true;
        else if (IEQ(el, "keep-alive"))
            m->conn_keep_alive = true;
        else if (IEQ(el, "upgrade"))
            m->conn_upgrade = true;
    }
}

static void on_expect(sem *m, ax_http_str v)
{
    size_t pos = 0;
    ax_http_str el;

    while (list_next(v, &pos, &el)) {
        if (IEQ(el, "100-continue"))
            m->expect_continue = true;
        else
            m->expect_other = true;
    }
}

static void on_field(sem *m, const ax_http_header *f, ax_http_head *h)
{
    switch (f->name.len) {
    case 4:
        if (!IEQ(f->name, "host")) break;
        if (m->host_count++) sem_err(m, AX_HTTP_ERR_HOST_DUPLICATE);
        if (!all_host_chars((const unsigned char *)f->value.ptr, f->value.len))
            sem_err(m, AX_HTTP_ERR_HOST_INVALID);
        if (m->host_count == 1) h->host = f->value;
        break;
    case 6:
        if (IEQ(f->name, "expect")) on_expect(m, f->value);
        break;
    case 7:
        if (IEQ(f->name, "upgrade") && !m->upgrade_seen) {
            m->upgrade_seen = true;
            h->upgrade = f->value;
        }
        break;
    case 10:
        if (IEQ(f->name, "connection")) on_connection(m, f->value);
        break;
    case 14:
        if (IEQ(f->name, "content-length")) on_content_length(m, f->value);
        break;
    case 17:
        if (IEQ(f->name, "transfer-encoding")) on_transfer_encoding(m, f->value);
        break;
    }
}

/* RFC 9112 6.1 and 6.3: only a final, single chunked is accepted. */
static int te_framing(const ax_http_parser *p, const ax_http_head *h, const sem *m)
{
    if (h->minor_version == 0) return AX_HTTP_ERR_TE_HTTP10;
    if (!m->te_listed || m->chunked_count > 1 || (m->chunked_count && !m->chunked_last))
        return AX_HTTP_ERR_TE_INVALID;
    if (m->te_other) {
        /* A request whose last coding is not chunked has no knowable length. */
        if (p->kind == AX_HTTP_REQUEST && !m->chunked_last) return AX_HTTP_ERR_TE_INVALID;
        return AX_HTTP_ERR_TE_NOT_IMPL;
    }
    return 0;
}

static bool response_has_no_body(const ax_http_parser *p, const ax_http_head *h)
{
    return p->no_body || h->status < 200 || h->status == 204 || h->status == 304;
}

static int analyse(ax_http_parser *p, ax_http_head *h)
{
    sem m = {0};
    bool request = p->kind == AX_HTTP_REQUEST;
    int err;

    h->host.ptr = h->upgrade.ptr = NULL;
    h->host.len = h->upgrade.len = 0;
    h->content_length = 0;
    h->flags = 0;
    for (size_t i = 0; i < h->num_headers; i++)
        on_field(&m, &h->headers[i], h);
    if (m.err) return fail(p, m.err);
    if (m.cl_count && m.te_count) return fail(p, AX_HTTP_ERR_CL_AND_TE);
    if (m.te_count) {
        if ((err = te_framing(p, h, &m)) != 0) return fail(p, err);
        h->framing = AX_HTTP_BODY_CHUNKED;
    } else if (m.cl_count) {
        h->framing = AX_HTTP_BODY_LENGTH;
        h->content_length = m.cl;
    } else {
        h->framing = request ? AX_HTTP_BODY_NONE : AX_HTTP_BODY_UNTIL_CLOSE;
    }
    if (request) {
        if (h->minor_version == 1 && m.host_count == 0) return fail(p, AX_HTTP_ERR_HOST_MISSING);
        /* RFC 9110 10.1.1: HTTP/1.0 expectations are ignored. */
        if (h->minor_version == 1 && m.expect_other) return fail(p, AX_HTTP_ERR_EXPECT);
        if (h->framing == AX_HTTP_BODY_LENGTH && m.cl > p->lim->max_body)
            return fail(p, AX_HTTP_ERR_BODY_TOO_LARGE);
        if (h->minor_version == 1 && m.expect_continue) h->flags |= AX_HTTP_EXPECT_CONTINUE;
    } else if (response_has_no_body(p, h)) {
        h->framing = AX_HTTP_BODY_NONE;
        h->content_length = 0;
    }
    if (h->minor_version == 1 ? !m.conn_close : (m.conn_keep_alive && !m.conn_close))
        if (h->framing != AX_HTTP_BODY_UNTIL_CLOSE) h->flags |= AX_HTTP_KEEP_ALIVE;
    /* RFC 9110 7.8: Upgrade is ignored in HTTP/1.0. */
    if (h->minor_version == 1 && m.conn_upgrade && m.upgrade_seen) h->flags |= AX_HTTP_UPGRADE;
    return 0;
}

int ax_http_parse_head(ax_http_parser *p, const char *buf, size_t len, ax_http_head *h)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t resume = p->scan, n;
    int r;

    if (p->stage == ST_ERROR) return p->rc;
    if (len < p->search) return fail(p, AX_HTTP_ERR_STATE);
    r = run(p, b, len, h);
    if (r != 0) return r;
    if (resume > 0) refill(p, b, resume, h);
    h->num_headers = p->nheaders;
    if (p->kind == AX_HTTP_REQUEST) {
        h->status = 0;
        h->reason.ptr = NULL;
        h->reason.len = 0;
    } else {
        h->method.ptr = h->target.ptr = NULL;
        h->method.len = h->target.len = 0;
        h->method_id = AX_HTTP_OTHER;
    }
    r = analyse(p, h);
    if (r < 0) return r;
    n = p->scan;
    ax_http_parser_init(p, (enum ax_http_kind)p->kind, p->lim);
    return (int)n;
}

/* ---- the body decoder -------------------------------------------------- */

enum { B_LENGTH, B_UNTIL_CLOSE, B_SIZE, B_DATA, B_DATA_CR, B_DATA_LF, B_TRAILER, B_DONE, B_ERROR };

static int body_fail(ax_http_body *d, int err)
{
    d->err = (uint8_t)err;
    d->rc = -(int)errs[err].status;
    d->state = B_ERROR;
    return d->rc;
}

void ax_http_body_init(ax_http_body *d, enum ax_http_framing framing, uint64_t length,
                       const ax_http_limits *lim)
{
    memset(d, 0, sizeof(*d));
    d->lim = lim ? lim : &ax_http_default_limits;
    switch (framing) {
    case AX_HTTP_BODY_LENGTH:
        d->remaining = length;
        d->state = length ? B_LENGTH : B_DONE;
        if (length > d->lim->max_body) body_fail(d, AX_HTTP_ERR_BODY_TOO_LARGE);
        break;
    case AX_HTTP_BODY_CHUNKED:
        d->state = B_SIZE;
        break;
    case AX_HTTP_BODY_UNTIL_CLOSE:
        d->state = B_UNTIL_CLOSE;
        break;
    default:
        d->state = B_DONE;
        break;
    }
}

bool ax_http_body_done(const ax_http_body *d)
{
    return d->state == B_DONE;
}

enum ax_http_err ax_http_body_error(const ax_http_body *d)
{
    return (enum ax_http_err)d->err;
}

static size_t skip_ws(const unsigned char *x, size_t i, size_t n)
{
    while (i < n && is_ws(x[i]))
        i++;
    return i;
}

/* quoted-string starting at x[*i] == '"'; control bytes are already gone. */
static bool quoted_string(const unsigned char *x, size_t n, size_t *i)
{
    size_t j = *i + 1;

    while (j < n) {
        if (x[j] == '"') {
            *i = j + 1;
            return true;
        }
        if (x[j] == '\\') {
            j += 2;
            continue;
        }
        if (!(cls[x[j]] & C_QDTEXT)) return false;
        j++;
    }
    return false;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int chunk_ext(const unsigned char *x, size_t n)
{
    size_t i = 0, j, k;

    for (;;) {
        j = skip_ws(x, i, n);
        if (j == n) return j == i ? 0 : AX_HTTP_ERR_CHUNK_EXT;
        if (x[j] != ';') return i == 0 ? AX_HTTP_ERR_CHUNK_SIZE : AX_HTTP_ERR_CHUNK_EXT;
        j = k = skip_ws(x, j + 1, n);
        while (k < n && (cls[x[k]] & C_TCHAR))
            k++;
        if (k == j) return AX_HTTP_ERR_CHUNK_EXT;
        i = k;
        j = skip_ws(x, k, n);
        if (j == n || x[j] != '=') continue;
        j = k = skip_ws(x, j + 1, n);
        if (k < n && x[k] == '"') {
            if (!quoted_string(x, n, &k)) return AX_HTTP_ERR_CHUNK_EXT;
        } else {
            while (k < n && (cls[x[k]] & C_TCHAR))
                k++;
            if (k == j) return AX_HTTP_ERR_CHUNK_EXT;
        }
        i = k;
    }
}

/* chunk-size [ chunk-ext ], already split off its CRLF. */
static int size_line(ax_http_body *d, const unsigned char *x, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    int err;

    while (i < n && (cls[x[i]] & C_HEX)) {
        unsigned c = lower(x[i]);
        if (v >> 60) return AX_HTTP_ERR_CHUNK_SIZE;
        v = v * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
        i++;
    }
    if (i == 0) return AX_HTTP_ERR_CHUNK_SIZE;
    if ((err = chunk_ext(x + i, n - i)) != 0) return err;
    if (v == 0) {
        d->state = B_TRAILER;
        return 0;
    }
    if (v > d->lim->max_body - d->total) return AX_HTTP_ERR_BODY_TOO_LARGE;
    d->total += v;
    d->remaining = v;
    d->state = B_DATA;
    return 0;
}

static int trailer_line(ax_http_body *d, const unsigned char *b, size_t s, const eol_scan *l)
{
    int err;

    if (s == l->eol) {
        d->state = B_DONE;
        return 0;
    }
    if (d->ntrailers >= clamp(d->lim->max_headers)) return AX_HTTP_ERR_TOO_MANY_HEADERS;
    if ((err = field_line(b, s, l->eol, NULL)) != 0) return err;
    d->ntrailers++;
    d->section += l->next - s;
    return 0;
}

/* Consumed so far, or "need more" when that is nothing. */
static int body_more(ax_http_body *d, size_t pos, size_t search)
{
    d->search = search - pos;
    return pos ? (int)pos : AX_HTTP_INCOMPLETE;
}

/* One line of chunk framing or trailer at b[pos..). */
static int chunk_line(ax_http_body *d, const unsigned char *b, size_t len, size_t *pos,
                      size_t *search)
{
    bool size = d->state == B_SIZE;
    eol_scan s = {.search = *search};
    int r, err;

    if (size)
        s.limit = *pos + clamp(d->lim->max_chunk_line);
    else
        s.limit = *pos + clamp(d->lim->max_header_bytes) - d->section;
    r = find_eol(b, len, d->lim->allow_bare_lf, &s);
    if (r == EOL_MORE) return body_more(d, *pos, s.search);
    if (r == EOL_LIMIT)
        return body_fail(d, size ? AX_HTTP_ERR_CHUNK_LINE_TOO_LONG : AX_HTTP_ERR_HEAD_TOO_LARGE);
    if (r == EOL_BAD) return body_fail(d, s.err);
    if (size)
        err = size_line(d, b + *pos, s.eol - *pos);
    else
        err = trailer_line(d, b, *pos, &s);
    if (err) return body_fail(d, err);
    *pos = *search = s.next;
    return 0;
}

static int chunked(ax_http_body *d, const unsigned char *b, size_t len, ax_http_str *data)
{
    size_t pos = 0, search = d->search;
    int r;

    if (search > len) return body_fail(d, AX_HTTP_ERR_STATE);
    for (;;) {
        switch (d->state) {
        case B_SIZE:
        case B_TRAILER:
            if ((r = chunk_line(d, b, len, &pos, &search)) != 0) return r;
            if (d->state == B_DONE) {
                d->search = 0;
                return (int)pos;
            }
            break;
        case B_DATA: {
            size_t n = len - pos < d->remaining ? len - pos : (size_t)d->remaining;
            if (n == 0) return body_more(d, pos, pos);
            data->ptr = (const char *)b + pos;
            data->len = n;
            d->remaining -= n;
            if (d->remaining == 0) d->state = B_DATA_CR;
            d->search = 0;
            return (int)(pos + n);
        }
        case B_DATA_CR:
        case B_DATA_LF:
            if (pos == len) return body_more(d, pos, pos);
            if (b[pos] == '\n' && (d->state == B_DATA_LF || d->lim->allow_bare_lf))
                d->state = B_SIZE;
            else if (b[pos] == '\r' && d->state == B_DATA_CR)
                d->state = B_DATA_LF;
            else
                return body_fail(d, AX_HTTP_ERR_CHUNK_CRLF);
            search = ++pos;
            break;
        default:
            return body_fail(d, AX_HTTP_ERR_STATE);
        }
    }
}

int ax_http_body_parse(ax_http_body *d, const char *buf, size_t len, ax_http_str *data)
{
    size_t n;

    data->ptr = buf;
    data->len = 0;
    if (len > INT_MAX) len = INT_MAX;
    switch (d->state) {
    case B_ERROR:
        return d->rc;
    case B_DONE:
        return 0;
    case B_LENGTH:
        n = len < d->remaining ? len : (size_t)d->remaining;
        if (n == 0) return AX_HTTP_INCOMPLETE;
        data->len = n;
        d->remaining -= n;
        if (d->remaining == 0) d->state = B_DONE;
        return (int)n;
    case B_UNTIL_CLOSE:
        n = len < d->lim->max_body - d->total ? len : (size_t)(d->lim->max_body - d->total);
        if (n == 0) return len ? body_fail(d, AX_HTTP_ERR_BODY_TOO_LARGE) : AX_HTTP_INCOMPLETE;
        data->len = n;
        d->total += n;
        return (int)n;
    default:
        return chunked(d, (const unsigned char *)buf, len, data);
    }
}
