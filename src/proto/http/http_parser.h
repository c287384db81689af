/* http_parser.h: a pure, incremental HTTP/1.1 parser (internal).
 *
 * No I/O, no allocation, no global state.  The caller owns every byte; the
 * parser hands back slices (pointer + length) into the caller's buffer.
 *
 * Heads (request line or status line plus header fields):
 *
 *     ax_http_parser p;
 *     ax_http_header hdrs[64];
 *     ax_http_head h = {.headers = hdrs, .headers_cap = 64};
 *     ax_http_parser_init(&p, AX_HTTP_REQUEST, &limits);
 *     int n = ax_http_parse_head(&p, buf, len, &h);
 *
 * n > 0 is the size of the complete head (the body, if any, starts at
 * buf + n); AX_HTTP_INCOMPLETE asks for more bytes: call again with the same
 * parser and head and the grown buffer, which must begin with the same bytes
 * (it may have moved).  Every byte is examined once: the parser keeps the
 * offset where it stopped.  A negative value below AX_HTTP_INCOMPLETE is an
 * error, -status: -400, -414, -431, -413, -417, -501 or -505 is the status
 * to answer a request with before closing the connection (for a response it
 * only says the response is unusable); ax_http_parser_error() names the
 * reason.  Errors are sticky until ax_http_parser_init().
 *
 * Bodies go through ax_http_body, fed the bytes after the head; it yields
 * the payload as slices too, so nothing is copied or rewritten in place.
 *
 * Decisions (see docs/http-parser.md for the reasoning):
 * - Lines end with CRLF.  A bare LF is rejected (400) unless
 *   limits->allow_bare_lf; a CR not followed by LF is always rejected.
 * - Obsolete line folding, whitespace before the colon, control characters
 *   (NUL, DEL, anything below 0x20 but HTAB) anywhere in a head: 400.
 * - Content-Length together with Transfer-Encoding, Content-Length twice
 *   (even with the same value) or not 1*DIGIT or overflowing 64 bits: 400.
 *   Transfer-Encoding must end in exactly one `chunked`; other codings are
 *   not implemented (501); any Transfer-Encoding in HTTP/1.0 is 400.
 * - HTTP/1.1 requests need exactly one valid Host (400).
 * - Empty lines before a request line are skipped (RFC 9112 2.2) and count
 *   towards the request-line limit. */
#ifndef AXON_PROTO_HTTP_PARSER_H
#define AXON_PROTO_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Need more bytes.  Errors are the negated HTTP status, all below this. */
#define AX_HTTP_INCOMPLETE (-1)

enum ax_http_kind {
    AX_HTTP_REQUEST,
    AX_HTTP_RESPONSE,
};

/* How the body that follows a head is delimited. */
enum ax_http_framing {
    AX_HTTP_BODY_NONE,        /* no body: the next message follows at once */
    AX_HTTP_BODY_LENGTH,      /* content_length bytes */
    AX_HTTP_BODY_CHUNKED,     /* chunked transfer coding */
    AX_HTTP_BODY_UNTIL_CLOSE, /* responses only: everything until the peer closes */
};

/* ax_http_head.flags */
enum {
    AX_HTTP_KEEP_ALIVE = 1u << 0,      /* the connection may carry another message */
    AX_HTTP_EXPECT_CONTINUE = 1u << 1, /* HTTP/1.1 request with Expect: 100-continue */
    AX_HTTP_UPGRADE = 1u << 2,         /* HTTP/1.1, Connection: upgrade and an Upgrade field */
};

enum ax_http_method {
    AX_HTTP_OTHER, /* any other token: a valid method the caller may not implement */
    AX_HTTP_GET,
    AX_HTTP_HEAD,
    AX_HTTP_POST,
    AX_HTTP_PUT,
    AX_HTTP_DELETE,
    AX_HTTP_CONNECT,
    AX_HTTP_OPTIONS,
    AX_HTTP_TRACE,
    AX_HTTP_PATCH,
};

/* Why a parse failed (ax_http_parser_error(), ax_http_body_error()). */
enum ax_http_err {
    AX_HTTP_ERR_NONE,
    AX_HTTP_ERR_STATE,               /* 400: misuse, e.g. the buffer shrank between calls */
    AX_HTTP_ERR_CONTROL_CHAR,        /* 400: NUL, DEL or another control character */
    AX_HTTP_ERR_BARE_CR,             /* 400: CR not followed by LF */
    AX_HTTP_ERR_BARE_LF,             /* 400: LF without CR (allow_bare_lf is off) */
    AX_HTTP_ERR_METHOD,              /* 400: method is not a token followed by one SP */
    AX_HTTP_ERR_TARGET,              /* 400: request-target is empty, has a bad byte or form */
    AX_HTTP_ERR_VERSION,             /* 400: not HTTP/d.d */
    AX_HTTP_ERR_VERSION_NOT_SUP,     /* 505: a major version other than 1 */
    AX_HTTP_ERR_STATUS,              /* 400: malformed status line or code */
    AX_HTTP_ERR_LINE_TOO_LONG,       /* 414: request line (or status line) over max_start_line */
    AX_HTTP_ERR_HEAD_TOO_LARGE,      /* 431: header section over max_header_bytes */
    AX_HTTP_ERR_TOO_MANY_HEADERS,    /* 431: more fields than max_headers or headers_cap */
    AX_HTTP_ERR_OBS_FOLD,            /* 400: a field line starts with whitespace */
    AX_HTTP_ERR_HEADER_NAME,         /* 400: empty field name or one with a non-token byte */
    AX_HTTP_ERR_SPACE_BEFORE_COLON,  /* 400: whitespace between field name and colon */
    AX_HTTP_ERR_NO_COLON,            /* 400: a field line without a colon */
    AX_HTTP_ERR_CL_INVALID,          /* 400: Content-Length not 1*DIGIT or over 2^64-1 */
    AX_HTTP_ERR_CL_DUPLICATE,        /* 400: Content-Length more than once */
    AX_HTTP_ERR_CL_AND_TE,           /* 400: both Content-Length and Transfer-Encoding */
    AX_HTTP_ERR_TE_INVALID,          /* 400: chunked missing, not last, repeated, or malformed */
    AX_HTTP_ERR_TE_NOT_IMPL,         /* 501: a transfer coding other than chunked */
    AX_HTTP_ERR_TE_HTTP10,           /* 400: Transfer-Encoding in an HTTP/1.0 message */
    AX_HTTP_ERR_HOST_MISSING,        /* 400: HTTP/1.1 request without Host */
    AX_HTTP_ERR_HOST_DUPLICATE,      /* 400: Host more than once */
    AX_HTTP_ERR_HOST_INVALID,        /* 400: Host value with bytes no authority has */
    AX_HTTP_ERR_EXPECT,              /* 417: an expectation other than 100-continue */
    AX_HTTP_ERR_BODY_TOO_LARGE,      /* 413: body over max_body */
    AX_HTTP_ERR_CHUNK_SIZE,          /* 400: chunk size not hex, empty or over 64 bits */
    AX_HTTP_ERR_CHUNK_EXT,           /* 400: malformed chunk extension */
    AX_HTTP_ERR_CHUNK_LINE_TOO_LONG, /* 400: chunk-size line over max_chunk_line */
    AX_HTTP_ERR_CHUNK_CRLF,          /* 400: chunk data not followed by CRLF */
    AX_HTTP_ERR_COUNT_
};

/* Limits; one instance is usually shared by every connection and must
 * outlive the parsers that point to it.  NULL means ax_http_default_limits. */
typedef struct ax_http_limits {
    size_t max_start_line;   /* request/status line bytes incl. CRLF: 8192 (414) */
    size_t max_header_bytes; /* header section incl. final CRLF: 32768 (431); trailers too */
    size_t max_headers;      /* field lines: 100 (431); trailers too */
    size_t max_chunk_line;   /* chunk-size line incl. extensions and CRLF: 1024 (400) */
    uint64_t max_body;       /* body bytes: UINT64_MAX, i.e. none (413) */
    bool allow_bare_lf;      /* accept LF alone as a line end: false */
} ax_http_limits;

extern const ax_http_limits ax_http_default_limits;

/* A slice of the caller's buffer; not NUL-terminated. */
typedef struct ax_http_str {
    const char *ptr;
    size_t len;
} ax_http_str;

/* One field line.  Names keep their case; values lose surrounding
 * whitespace.  Repeated fields stay separate entries, in order. */
typedef struct ax_http_header {
    ax_http_str name;
    ax_http_str value;
} ax_http_header;

/* A parsed head.  The caller sets headers/headers_cap; everything else is
 * written by the parser and valid only after a positive return, as long as
 * the buffer it was parsed from is unchanged. */
typedef struct ax_http_head {
    ax_http_header *headers; /* in: room for headers_cap fields */
    size_t headers_cap;      /* in */
    size_t num_headers;
    int minor_version; /* HTTP/1.0 -> 0, HTTP/1.1 (and 1.2-1.9, RFC 9110 2.5) -> 1 */
    /* requests */
    ax_http_str method;
    ax_http_str target;
    enum ax_http_method method_id;
    ax_http_str host; /* the Host field value; empty when absent (HTTP/1.0) */
    /* responses */
    int status; /* 100-599 */
    ax_http_str reason;
    /* semantics */
    enum ax_http_framing framing;
    uint64_t content_length; /* with AX_HTTP_BODY_LENGTH */
    unsigned flags;          /* AX_HTTP_KEEP_ALIVE, ... */
    ax_http_str upgrade;     /* the first Upgrade field value, when present */
} ax_http_head;

/* Head parser state; small enough to live in every connection. */
typedef struct ax_http_parser {
    const ax_http_limits *lim;
    size_t scan;       /* offset of the first byte of the line being read */
    size_t search;     /* offset where the search for its end resumes */
    size_t head_start; /* offset of the header section (after the start line) */
    size_t nheaders;
    int rc; /* sticky error */
    uint8_t kind;
    uint8_t stage;
    uint8_t err;
    /* Response parser only, set before parsing each response: the request
     * was HEAD, so the response has no body whatever its fields say. */
    bool no_body;
} ax_http_parser;

/* Prepare `p` to read one head of `kind` (AX_HTTP_REQUEST or
 * AX_HTTP_RESPONSE) under `lim` (NULL: defaults).  After a head completes
 * the parser is ready for the next one; after an error it stays failed. */
void ax_http_parser_init(ax_http_parser *p, enum ax_http_kind kind, const ax_http_limits *lim);

/* Parse buf[0..len).  Returns the head's size (> 0) when complete,
 * AX_HTTP_INCOMPLETE, or -status on error (see the top of this file).
 * Pass the same `h` on every call for one head. */
int ax_http_parse_head(ax_http_parser *p, const char *buf, size_t len, ax_http_head *h);

/* The reason for the last error, AX_HTTP_ERR_NONE when there is none. */
enum ax_http_err ax_http_parser_error(const ax_http_parser *p);

/* Incremental body decoder for the bytes after a head. */
typedef struct ax_http_body {
    const ax_http_limits *lim;
    uint64_t remaining; /* bytes left in the body (LENGTH) or current chunk */
    uint64_t total;     /* body bytes announced so far (CHUNKED) */
    size_t search;      /* resume offset inside a pending line */
    size_t section;     /* trailer section bytes so far */
    size_t ntrailers;
    int rc; /* sticky error */
    uint8_t state;
    uint8_t err;
} ax_http_body;

/* Prepare `d` for a body framed as `framing` (from ax_http_head; `length`
 * is its content_length for AX_HTTP_BODY_LENGTH). */
void ax_http_body_init(ax_http_body *d, enum ax_http_framing framing, uint64_t length,
                       const ax_http_limits *lim);

/* Decode from buf[0..len), the bytes after what earlier calls consumed.
 * Returns the number of bytes consumed (> 0) and sets *data to the payload
 * among them (possibly empty: chunk framing; at most one slice per call);
 * 0 when the body is complete (nothing consumed); AX_HTTP_INCOMPLETE when
 * nothing can be consumed yet; or -status (-400, -413, -431).  Unconsumed
 * bytes must be passed again, with more behind them.  Chunk extensions are
 * validated and ignored; trailer fields are validated against the head
 * limits and discarded (RFC 9110 6.5.1).  Consumes at most INT_MAX bytes
 * per call.  Typical loop:
 *
 *     while ((n = ax_http_body_parse(&d, p, left, &data)) > 0) {
 *         deliver(data); p += n; left -= n;
 *     }
 *     // n == 0: done, the next message starts at p
 */
int ax_http_body_parse(ax_http_body *d, const char *buf, size_t len, ax_http_str *data);

/* True once the whole body (and trailers) has been consumed. */
bool ax_http_body_done(const ax_http_body *d);

enum ax_http_err ax_http_body_error(const ax_http_body *d);

/* A short static text for an error reason ("bare CR"). */
const char *ax_http_err_str(enum ax_http_err err);

/* The first field named `name` (ASCII case-insensitive), or NULL. */
const ax_http_header *ax_http_find_header(const ax_http_head *h, const char *name);

/* Whether the comma-separated list `value` has the element `token`
 * (case-insensitive), as in Connection: keep-alive, Upgrade. */
bool ax_http_list_has(ax_http_str value, const char *token);

#ifdef __cplusplus
}
#endif
#endif
