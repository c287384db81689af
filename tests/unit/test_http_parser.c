/* test_http_parser.c: the HTTP/1.1 head parser and body decoder.
 *
 * Every table row runs three ways: whole, one byte at a time, and split in
 * two at every point.  Each input is copied so that it ends exactly at an
 * unreadable page, so reading one byte too far crashes the test. */
#define _GNU_SOURCE
#include "runner.h"

#include "proto/http/http_parser.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define S(lit) lit, sizeof(lit) - 1
#define ALL (-1000) /* expect the whole input consumed */
#define NH 128

/* ---- inputs against a guard page --------------------------------------- */

typedef struct guard {
    unsigned char *map;
    size_t room; /* readable bytes before the guard page */
    size_t page;
} guard;

static void guard_open(guard *g, size_t room)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->room = (room + g->page - 1) / g->page * g->page;
    if (g->room == 0) g->room = g->page;
    g->map =
        mmap(NULL, g->room + g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(g->map != MAP_FAILED);
    ASSERT(mprotect(g->map + g->room, g->page, PROT_NONE) == 0);
}

/* Copies data so that its last byte is the last readable one. */
static const char *guard_put(guard *g, const void *data, size_t len)
{
    unsigned char *dst = g->map + g->room - len;
    ASSERT(len <= g->room);
    memcpy(dst, data, len);
    return (const char *)dst;
}

static void guard_close(guard *g)
{
    munmap(g->map, g->room + g->page);
}

TEST(http_guard_page_traps)
{
    guard g;
    guard_open(&g, 10);
    const char *b = guard_put(&g, "0123456789", 10);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2); /* keep the sanitizer's report of the expected crash quiet */
        volatile char c = b[10];
        (void)c;
        _exit(0);
    }
    int st;
    ASSERT(waitpid(pid, &st, 0) == pid);
    /* killed by SIGSEGV, or reported and ended by AddressSanitizer */
    ASSERT(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
    guard_close(&g);
}

/* ---- heads -------------------------------------------------------------- */

static const ax_http_limits small = {
    .max_start_line = 32,
    .max_header_bytes = 64,
    .max_headers = 3,
    .max_chunk_line = 16,
    .max_body = 100,
    .allow_bare_lf = false,
};

static const ax_http_limits lenient = {
    .max_start_line = 8192,
    .max_header_bytes = 32768,
    .max_headers = 100,
    .max_chunk_line = 1024,
    .max_body = UINT64_MAX,
    .allow_bare_lf = true,
};

typedef struct head_case {
    const char *name;
    int kind;
    const char *in;
    size_t len;
    int rc;  /* ALL, a byte count, AX_HTTP_INCOMPLETE or -status */
    int err; /* with an error */
    int framing;
    uint64_t cl;
    unsigned flags;
    const ax_http_limits *lim;
} head_case;

#define KA AX_HTTP_KEEP_ALIVE
#define NONE AX_HTTP_BODY_NONE
#define LEN AX_HTTP_BODY_LENGTH
#define CHUNKED AX_HTTP_BODY_CHUNKED
#define UNTIL_CLOSE AX_HTTP_BODY_UNTIL_CLOSE

#define OK(nm, kind, lit, fr, cl, fl, lim)                                                         \
    {                                                                                              \
        nm, kind, S(lit), ALL, 0, fr, cl, fl, lim                                                  \
    }
#define BAD(nm, kind, lit, st, e, lim)                                                             \
    {                                                                                              \
        nm, kind, S(lit), -(st), AX_HTTP_ERR_##e, 0, 0, 0, lim                                     \
    }
#define REQ_OK(nm, lit, fr, cl, fl) OK(nm, AX_HTTP_REQUEST, lit, fr, cl, fl, NULL)
#define REQ_BAD(nm, lit, st, e) BAD(nm, AX_HTTP_REQUEST, lit, st, e, NULL)
#define RES_OK(nm, lit, fr, cl, fl) OK(nm, AX_HTTP_RESPONSE, lit, fr, cl, fl, NULL)
#define RES_BAD(nm, lit, st, e) BAD(nm, AX_HTTP_RESPONSE, lit, st, e, NULL)

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define P11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const head_case accept_cases[] = {
    /* framing and connection */
    REQ_OK("minimal 1.1", H11 "\r\n", NONE, 0, KA),
    REQ_OK("1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", NONE, 0, 0),
    REQ_OK("1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", NONE, 0, KA),
    REQ_OK("1.0 keep-alive then close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
           NONE, 0, 0),
    REQ_OK("1.1 close", H11 "Connection: close\r\n\r\n", NONE, 0, 0),
    REQ_OK("1.1 close in a list", H11 "Connection: foo, CLOSE\r\n\r\n", NONE, 0, 0),
    REQ_OK("1.1 close in a second field", H11 "Connection: a\r\nConnection: close\r\n\r\n", NONE, 0,
           0),
    REQ_OK("content-length", P11 "Content-Length: 5\r\n\r\n", LEN, 5, KA),
    REQ_OK("content-length zero", P11 "Content-Length: 0\r\n\r\n", LEN, 0, KA),
    REQ_OK("content-length leading zeros", P11 "Content-Length: 007\r\n\r\n", LEN, 7, KA),
    REQ_OK("content-length max", P11 "Content-Length: 18446744073709551615\r\n\r\n", LEN,
           UINT64_MAX, KA),
    REQ_OK("content-length with OWS", P11 "Content-Length: \t 12 \t\r\n\r\n", LEN, 12, KA),
    REQ_OK("content-length any case", P11 "cOnTeNt-LeNgTh: 3\r\n\r\n", LEN, 3, KA),
    REQ_OK("chunked", P11 "Transfer-Encoding: chunked\r\n\r\n", CHUNKED, 0, KA),
    REQ_OK("chunked any case", P11 "transfer-encoding: ChUnKeD\r\n\r\n", CHUNKED, 0, KA),
    REQ_OK("chunked with empty list elements", P11 "Transfer-Encoding: , chunked ,\r\n\r\n",
           CHUNKED, 0, KA),
    REQ_OK("chunked 1.1 close", P11 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
           CHUNKED, 0, 0),
    /* expectations and upgrades */
    REQ_OK("expect 100-continue", P11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n", LEN, 1,
           KA | AX_HTTP_EXPECT_CONTINUE),
    REQ_OK("expect ignored in 1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", NONE, 0, 0),
    REQ_OK("unknown expect ignored in 1.0", "POST / HTTP/1.0\r\nExpect: xyz\r\n\r\n", NONE, 0, 0),
    REQ_OK("upgrade", H11 "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", NONE, 0,
           KA | AX_HTTP_UPGRADE),
    REQ_OK("upgrade in a list", H11 "Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n\r\n", NONE,
           0, KA | AX_HTTP_UPGRADE),
    REQ_OK("upgrade field without connection token", H11 "Upgrade: websocket\r\n\r\n", NONE, 0, KA),
    REQ_OK("connection upgrade without field", H11 "Connection: upgrade\r\n\r\n", NONE, 0, KA),
    REQ_OK("upgrade ignored in 1.0",
           "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", NONE, 0, 0),
    /* request lines */
    REQ_OK("empty lines before request line", "\r\n\r\n" H11 "\r\n", NONE, 0, KA),
    REQ_OK("unknown method", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, KA),
    REQ_OK("lower-case method is a token", "get / HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, KA),
    REQ_OK("method with token punctuation", "M-!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n", NONE,
           0, KA),
    REQ_OK("options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, KA),
    REQ_OK("connect authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
           NONE, 0, KA),
    REQ_OK("absolute-form", "GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n", NONE, 0,
           KA),
    REQ_OK("absolute-form, scheme punctuation", "GET svn+ssh.x-y://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
           NONE, 0, KA),
    REQ_OK("target with query and punctuation",
           "GET /a/b;c?d=e&f=%20g|{}^`\"<> HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0, KA),
    REQ_OK("HTTP/1.2 is treated as 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", NONE, 0, KA),
    /* field lines */
    REQ_OK("obs-text in a value", H11 "X-Name: caf\xc3\xa9 \xff\r\n\r\n", NONE, 0, KA),
    REQ_OK("tab inside a value", H11 "X: a\tb\r\n\r\n", NONE, 0, KA),
    REQ_OK("empty value", H11 "X:\r\n\r\n", NONE, 0, KA),
    REQ_OK("value of only whitespace", H11 "X: \t \r\n\r\n", NONE, 0, KA),
    REQ_OK("colon in a value", H11 "X: a:b: c\r\n\r\n", NONE, 0, KA),
    REQ_OK("empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", NONE, 0, KA),
    REQ_OK("host with port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", NONE, 0, KA),
    REQ_OK("host ipv6", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", NONE, 0, KA),
    REQ_OK("bare LF when allowed", "GET / HTTP/1.1\nHost: a\nX: b\r\n\n", NONE, 0, KA),
    /* responses */
    RES_OK("200 content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", LEN, 5, KA),
    RES_OK("200 until close", "HTTP/1.1 200 OK\r\n\r\n", UNTIL_CLOSE, 0, 0),
    RES_OK("200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", CHUNKED, 0, KA),
    RES_OK("1.0 response", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", LEN, 2, 0),
    RES_OK("1.0 response keep-alive",
           "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", LEN, 2, KA),
    RES_OK("204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", NONE, 0, KA),
    RES_OK("304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", NONE, 0,
           KA),
    RES_OK("100 continue", "HTTP/1.1 100 Continue\r\n\r\n", NONE, 0, KA),
    RES_OK("101 switching",
           "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
           NONE, 0, KA | AX_HTTP_UPGRADE),
    RES_OK("no reason phrase", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", LEN, 0, KA),
    RES_OK("empty reason phrase", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", LEN, 0, KA),
    RES_OK("reason with obs-text and tab",
           "HTTP/1.1 599 Sp\xe9"
           "cial\treason\r\n\r\n",
           UNTIL_CLOSE, 0, 0),
    RES_OK("response without host", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", LEN, 1, KA),
    RES_OK("unknown expect ignored in responses", "HTTP/1.1 200 OK\r\nExpect: xyz\r\n\r\n",
           UNTIL_CLOSE, 0, 0),
};

static const head_case reject_cases[] = {
    /* control characters and line ends */
    REQ_BAD("NUL in a value", H11 "X: a\0b\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("NUL in a name", H11 "X\0: a\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("DEL in a value", H11 "X: a\x7f\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("escape in a value", H11 "X: \x1b[0m\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("control char in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("control char in method", "G\x02T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("TLS hello on a plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400,
            CONTROL_CHAR),
    REQ_BAD("vertical tab in a value", H11 "X: a\vb\r\n\r\n", 400, CONTROL_CHAR),
    REQ_BAD("bare CR in a value", H11 "X: a\rb\r\n\r\n", 400, BARE_CR),
    REQ_BAD("CR CR LF", H11 "X: a\r\r\n\r\n", 400, BARE_CR),
    REQ_BAD("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, BARE_CR),
    REQ_BAD("bare CR ends head", H11 "\r\r\n", 400, BARE_CR),
    REQ_BAD("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, BARE_LF),
    REQ_BAD("bare LF in a field", H11 "X: a\nY: b\r\n\r\n", 400, BARE_LF),
    REQ_BAD("bare LF ends head", H11 "\n", 400, BARE_LF),
    REQ_BAD("bare LF before request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, BARE_LF),
    BAD("bare CR even when LF is allowed", AX_HTTP_REQUEST, H11 "X: a\rb\n\n", 400, BARE_CR,
        &lenient),
    /* request line */
    REQ_BAD("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, METHOD),
    REQ_BAD("separator in method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, METHOD),
    REQ_BAD("non-ascii method", "G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, METHOD),
    REQ_BAD("tab after method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, METHOD),
    REQ_BAD("method only", "GET\r\n\r\n", 400, METHOD),
    REQ_BAD("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("two spaces after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("tab after target", "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("asterisk with more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("scheme without colon", "GET http//a HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("scheme starting with a digit", "GET 1http://a HTTP/1.1\r\nHost: a\r\n\r\n", 400,
            TARGET),
    REQ_BAD("scheme without anything after", "GET http HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("connect with a path", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("connect without port", "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", 400, TARGET),
    REQ_BAD("HTTP/0.9", "GET /\r\n\r\n", 400, VERSION),
    REQ_BAD("version lower case", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("version trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("version two digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("version letters", "GET / HTTP/x.y\r\nHost: a\r\n\r\n", 400, VERSION),
    REQ_BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, VERSION_NOT_SUP),
    REQ_BAD("HTTP/0.9 with version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, VERSION_NOT_SUP),
    /* field lines */
    REQ_BAD("obs-fold", H11 "X: a\r\n b\r\n\r\n", 400, OBS_FOLD),
    REQ_BAD("obs-fold with tab", H11 "X: a\r\n\tb\r\n\r\n", 400, OBS_FOLD),
    REQ_BAD("whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, OBS_FOLD),
    REQ_BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, SPACE_BEFORE_COLON),
    REQ_BAD("tab before colon", H11 "Content-Length\t: 1\r\n\r\n", 400, SPACE_BEFORE_COLON),
    REQ_BAD("separator in name", H11 "X(y): a\r\n\r\n", 400, HEADER_NAME),
    REQ_BAD("slash in name", H11 "X/y: a\r\n\r\n", 400, HEADER_NAME),
    REQ_BAD("non-ascii name", H11 "X\xc3\xa9: a\r\n\r\n", 400, HEADER_NAME),
    REQ_BAD("empty name", H11 ": a\r\n\r\n", 400, HEADER_NAME),
    REQ_BAD("space inside name", H11 "X y: a\r\n\r\n", 400, HEADER_NAME),
    REQ_BAD("no colon", H11 "Xy\r\n\r\n", 400, NO_COLON),
    REQ_BAD("no colon after space", H11 "Xy \r\n\r\n", 400, NO_COLON),
    /* Content-Length */
    REQ_BAD("cl empty", P11 "Content-Length:\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl letters", P11 "Content-Length: abc\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl minus", P11 "Content-Length: -1\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl plus", P11 "Content-Length: +1\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl hex", P11 "Content-Length: 0x10\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl inner space", P11 "Content-Length: 1 2\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl decimal point", P11 "Content-Length: 1.0\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl list of equal values", P11 "Content-Length: 5, 5\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl list of values", P11 "Content-Length: 5,6\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl overflow by one", P11 "Content-Length: 18446744073709551616\r\n\r\n", 400,
            CL_INVALID),
    REQ_BAD("cl overflow", P11 "Content-Length: 99999999999999999999999\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl non-ascii digit", P11 "Content-Length: \xd9\xa1\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("cl twice, different", P11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
            CL_DUPLICATE),
    REQ_BAD("cl twice, same", P11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n", 400,
            CL_DUPLICATE),
    REQ_BAD("cl then te", P11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            CL_AND_TE),
    REQ_BAD("te then cl", P11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
            CL_AND_TE),
    REQ_BAD("te then cl zero", P11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400,
            CL_AND_TE),
    /* Transfer-Encoding */
    REQ_BAD("te empty", P11 "Transfer-Encoding:\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te only commas", P11 "Transfer-Encoding: , ,\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te chunked twice", P11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te chunked in two fields",
            P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            TE_INVALID),
    REQ_BAD("te chunked not last", P11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te chunked not last over fields",
            P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te gzip only", P11 "Transfer-Encoding: gzip\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te identity", P11 "Transfer-Encoding: identity\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te xchunked", P11 "Transfer-Encoding: xchunked\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te chunked with parameter", P11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 400,
            TE_INVALID),
    REQ_BAD("te quoted chunked", P11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 400, TE_INVALID),
    REQ_BAD("te gzip then chunked", P11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 501,
            TE_NOT_IMPL),
    REQ_BAD("te gzip then chunked over fields",
            P11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501, TE_NOT_IMPL),
    REQ_BAD("te in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, TE_HTTP10),
    /* Host, Expect, body size */
    REQ_BAD("1.1 without host", "GET / HTTP/1.1\r\n\r\n", 400, HOST_MISSING),
    REQ_BAD("host twice", H11 "Host: a\r\n\r\n", 400, HOST_DUPLICATE),
    REQ_BAD("host twice in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400,
            HOST_DUPLICATE),
    REQ_BAD("host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, HOST_INVALID),
    REQ_BAD("host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, HOST_INVALID),
    REQ_BAD("host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, HOST_INVALID),
    REQ_BAD("first problem wins", P11 "Content-Length: x\r\nHost: b\r\n\r\n", 400, CL_INVALID),
    REQ_BAD("first problem wins, other order", P11 "Host: b\r\nContent-Length: x\r\n\r\n", 400,
            HOST_DUPLICATE),
    REQ_BAD("unknown expectation", P11 "Expect: 200-ok\r\n\r\n", 417, EXPECT),
    REQ_BAD("continue and more", P11 "Expect: 100-continue, x\r\n\r\n", 417, EXPECT),
    BAD("body over max_body", AX_HTTP_REQUEST,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413, BODY_TOO_LARGE, &small),
    /* limits (small: line 32, header section 64, 3 fields) */
    BAD("request line one over", AX_HTTP_REQUEST, "GET /0123456789abcdefg HTTP/1.1\r\n\r\n", 414,
        LINE_TOO_LONG, &small),
    BAD("request line without end", AX_HTTP_REQUEST, "GET /0123456789abcdefghijklmnopqrstuvwxyz",
        414, LINE_TOO_LONG, &small),
    BAD("bad byte beyond the line limit", AX_HTTP_REQUEST,
        "GET /0123456789abcdefghijklmnopqrstuvwxyz\x01 HTTP/1.1\r\n\r\n", 414, LINE_TOO_LONG,
        &small),
    BAD("CR at the line limit", AX_HTTP_REQUEST, "GET /0123456789abcdefg HTTP/1.1\rX\r\n\r\n", 414,
        LINE_TOO_LONG, &small),
    BAD("empty lines count to the line limit", AX_HTTP_REQUEST,
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 414,
        LINE_TOO_LONG, &small),
    BAD("too many fields", AX_HTTP_REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, TOO_MANY_HEADERS, &small),
    BAD("header section one over", AX_HTTP_REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789012345678\r\n\r\n",
        431, HEAD_TOO_LARGE, &small),
    BAD("header section without end", AX_HTTP_REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789012345678901234",
        431, HEAD_TOO_LARGE, &small),
    /* responses */
    RES_BAD("status two digits", "HTTP/1.1 20 OK\r\n\r\n", 400, STATUS),
    RES_BAD("status four digits", "HTTP/1.1 2000 OK\r\n\r\n", 400, STATUS),
    RES_BAD("status 600", "HTTP/1.1 600 X\r\n\r\n", 400, STATUS),
    RES_BAD("status 099", "HTTP/1.1 099 X\r\n\r\n", 400, STATUS),
    RES_BAD("status letters", "HTTP/1.1 2x0 OK\r\n\r\n", 400, STATUS),
    RES_BAD("status missing", "HTTP/1.1\r\n\r\n", 400, STATUS),
    RES_BAD("status with tab", "HTTP/1.1\t200 OK\r\n\r\n", 400, STATUS),
    RES_BAD("status then tab", "HTTP/1.1 200\tOK\r\n\r\n", 400, STATUS),
    RES_BAD("empty line before status line", "\r\nHTTP/1.1 200 OK\r\n\r\n", 400, STATUS),
    RES_BAD("status version lower case", "http/1.1 200 OK\r\n\r\n", 400, VERSION),
    RES_BAD("status version short", "HTTP/1 200 OK\r\n\r\n", 400, VERSION),
    RES_BAD("status line shorter than a version", "HTTP/1\r\n\r\n", 400, VERSION),
    RES_BAD("status version letters", "HTTP/1.x 200 OK\r\n\r\n", 400, VERSION),
    RES_BAD("status version 3.0", "HTTP/3.0 200 OK\r\n\r\n", 505, VERSION_NOT_SUP),
    RES_BAD("status line bare LF", "HTTP/1.1 200 OK\n\r\n", 400, BARE_LF),
    RES_BAD("response cl and te",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            CL_AND_TE),
    RES_BAD("response cl twice",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400, CL_DUPLICATE),
    RES_BAD("response cl invalid", "HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n", 400,
            CL_INVALID),
    RES_BAD("response te gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
            TE_NOT_IMPL),
    RES_BAD("response te chunked not last",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, TE_INVALID),
    RES_BAD("response te in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            TE_HTTP10),
    RES_BAD("response obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 400, OBS_FOLD),
    RES_BAD("response NUL", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", 400, CONTROL_CHAR),
};

static const head_case incomplete_cases[] = {
    {"nothing", AX_HTTP_REQUEST, S(""), AX_HTTP_INCOMPLETE, 0, 0, 0, 0, NULL},
    {"request line only", AX_HTTP_REQUEST, S("GET / HTTP/1.1\r\n"), AX_HTTP_INCOMPLETE, 0, 0, 0, 0,
     NULL},
    {"ends in CR", AX_HTTP_REQUEST, S(H11 "\r"), AX_HTTP_INCOMPLETE, 0, 0, 0, 0, NULL},
    {"field without end", AX_HTTP_REQUEST, S(H11 "X: abc"), AX_HTTP_INCOMPLETE, 0, 0, 0, 0, NULL},
    {"empty lines only", AX_HTTP_REQUEST, S("\r\n\r\n\r\n"), AX_HTTP_INCOMPLETE, 0, 0, 0, 0, NULL},
    {"response partial", AX_HTTP_RESPONSE, S("HTTP/1.1 200 OK\r\nContent-Le"), AX_HTTP_INCOMPLETE,
     0, 0, 0, 0, NULL},
    {"line exactly at limit, no end yet", AX_HTTP_REQUEST, S("GET /0123456789abcdef HTTP/1.1"),
     AX_HTTP_INCOMPLETE, 0, 0, 0, 0, &small},
};

/* A text rendering of everything a parse produced, to compare runs. */
static void describe(const ax_http_head *h, int rc, char *out, size_t cap)
{
    int n = snprintf(out, cap, "rc=%d", rc);
    if (rc <= 0) return;
    n += snprintf(out + n, cap - (size_t)n,
                  " m=%.*s t=%.*s id=%d st=%d r=%.*s v=%d fr=%d cl=%llu fl=%u host=%.*s up=%.*s"
                  " nh=%zu",
                  (int)h->method.len, h->method.ptr ? h->method.ptr : "", (int)h->target.len,
                  h->target.ptr ? h->target.ptr : "", h->method_id, h->status, (int)h->reason.len,
                  h->reason.ptr ? h->reason.ptr : "", h->minor_version, h->framing,
                  (unsigned long long)h->content_length, h->flags, (int)h->host.len,
                  h->host.ptr ? h->host.ptr : "", (int)h->upgrade.len,
                  h->upgrade.ptr ? h->upgrade.ptr : "", h->num_headers);
    for (size_t i = 0; i < h->num_headers && (size_t)n < cap; i++)
        n +=
            snprintf(out + n, cap - (size_t)n, " [%.*s|%.*s]", (int)h->headers[i].name.len,
                     h->headers[i].name.ptr, (int)h->headers[i].value.len, h->headers[i].value.ptr);
}

static char want_desc[1 << 17], got_desc[1 << 17];

static void fail_case(const char *how, const head_case *c, const char *detail)
{
    fprintf(stderr, "#   case \"%s\" (%s): %s\n", c->name, how, detail);
}

/* Whole input; returns rc and leaves its description in want_desc. */
static int head_whole(const head_case *c, guard *g)
{
    ax_http_header hd[NH];
    ax_http_head h = {.headers = hd, .headers_cap = NH};
    ax_http_parser p;
    int want = c->rc == ALL ? (int)c->len : c->rc;
    const char *b = guard_put(g, c->in, c->len);

    ax_http_parser_init(&p, c->kind, c->lim);
    int rc = ax_http_parse_head(&p, b, c->len, &h);
    if (rc != want || (rc < AX_HTTP_INCOMPLETE && (int)ax_http_parser_error(&p) != c->err)) {
        char d[256];
        snprintf(d, sizeof d, "rc %d want %d, error \"%s\" want \"%s\"", rc, want,
                 ax_http_err_str(ax_http_parser_error(&p)), ax_http_err_str(c->err));
        fail_case("whole", c, d);
        ASSERT_EQ(rc, want);
        ASSERT_EQ(ax_http_parser_error(&p), c->err);
    }
    if (rc > 0) {
        if ((int)h.framing != c->framing || h.content_length != c->cl || h.flags != c->flags) {
            describe(&h, rc, want_desc, sizeof want_desc);
            fail_case("whole", c, want_desc);
        }
        ASSERT_EQ(h.framing, c->framing);
        ASSERT_EQ(h.content_length, c->cl);
        ASSERT_EQ(h.flags, c->flags);
    }
    if (rc < AX_HTTP_INCOMPLETE) /* errors are sticky */
        ASSERT_EQ(ax_http_parse_head(&p, b, c->len, &h), rc);
    describe(&h, rc, want_desc, sizeof want_desc);
    return rc;
}

static void head_compare(const head_case *c, const char *how, int rc, int want_rc,
                         const ax_http_head *h)
{
    describe(h, rc, got_desc, sizeof got_desc);
    if (rc != want_rc || strcmp(got_desc, want_desc) != 0) {
        fail_case(how, c, got_desc);
        fprintf(stderr, "#   whole gave: %s\n", want_desc);
        ASSERT(!"the same input gave a different result");
    }
}

/* One byte more per call; every prefix sits against the guard, at a new
 * address each time, so stale pointers into an old buffer would show. */
static void head_bytewise(const head_case *c, guard *g, int want_rc)
{
    ax_http_header hd[NH];
    ax_http_head h = {.headers = hd, .headers_cap = NH};
    ax_http_parser p;
    int rc = AX_HTTP_INCOMPLETE;
    size_t k;

    ax_http_parser_init(&p, c->kind, c->lim);
    for (k = 0; k <= c->len; k++) {
        rc = ax_http_parse_head(&p, guard_put(g, c->in, k), k, &h);
        if (rc != AX_HTTP_INCOMPLETE) break;
    }
    if (rc > 0 && (size_t)rc != k) fail_case("bytewise", c, "completed at the wrong length");
    if (rc > 0) ASSERT_EQ(rc, k);
    head_compare(c, "bytewise", rc, want_rc, &h);
}

/* Two calls, split at every point (sampled for long inputs). */
static void head_split(const head_case *c, guard *g, int want_rc)
{
    size_t step = c->len > 2048 ? c->len / 512 : 1;

    for (size_t s = 0; s <= c->len; s += step) {
        ax_http_header hd[NH];
        ax_http_head h = {.headers = hd, .headers_cap = NH};
        ax_http_parser p;
        ax_http_parser_init(&p, c->kind, c->lim);
        int rc = ax_http_parse_head(&p, guard_put(g, c->in, s), s, &h);
        if (rc == AX_HTTP_INCOMPLETE)
            rc = ax_http_parse_head(&p, guard_put(g, c->in, c->len), c->len, &h);
        head_compare(c, "split", rc, want_rc, &h);
    }
}

static void head_check(const head_case *c)
{
    guard g;

    guard_open(&g, c->len);
    int rc = head_whole(c, &g);
    head_bytewise(c, &g, rc);
    head_split(c, &g, rc);
    guard_close(&g);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

TEST(http_head_accepts)
{
    for (size_t i = 0; i < COUNT(accept_cases); i++) {
        head_case c = accept_cases[i];
        if (strcmp(c.name, "bare LF when allowed") == 0) c.lim = &lenient;
        head_check(&c);
    }
}

TEST(http_head_rejects)
{
    for (size_t i = 0; i < COUNT(reject_cases); i++)
        head_check(&reject_cases[i]);
}

TEST(http_head_incomplete)
{
    for (size_t i = 0; i < COUNT(incomplete_cases); i++)
        head_check(&incomplete_cases[i]);
}

/* Every rejection above is still a rejection when bare LF is allowed,
 * except the bare-LF ones themselves. */
TEST(http_head_rejects_when_lenient)
{
    for (size_t i = 0; i < COUNT(reject_cases); i++) {
        head_case c = reject_cases[i];
        if (c.err == AX_HTTP_ERR_BARE_LF || c.lim) continue;
        c.lim = &lenient;
        head_check(&c);
    }
}

/* ---- exact limits ----------------------------------------------------- */

static void check_built(const char *name, int kind, const char *in, int rc, int err,
                        const ax_http_limits *lim)
{
    head_case c = {name, kind, in, strlen(in), rc, err, 0, 0, 0, lim};
    if (rc == ALL) {
        c.framing = NONE;
        c.flags = KA;
    }
    head_check(&c);
}

TEST(http_head_limits_exact)
{
    const char *line32 = "GET /0123456789abcdef HTTP/1.1\r\n";
    ASSERT_EQ(strlen(line32), 32);
    char in[256];
    snprintf(in, sizeof in, "%sHost: a\r\n\r\n", line32);
    check_built("line at the limit", AX_HTTP_REQUEST, in, ALL, 0, &small);

    /* header section: 9 + 5 + 48 + 2 == 64 */
    snprintf(in, sizeof in,
             "GET / HTTP/1.1\r\nHost: a\r\nX: 012345678901234567890123456789012345678901234567"
             "\r\n\r\n");
    check_built("header section at the limit", AX_HTTP_REQUEST, in, ALL, 0, &small);

    check_built("fields at the limit", AX_HTTP_REQUEST,
                "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", ALL, 0, &small);

    head_case c = {"body at max_body",
                   AX_HTTP_REQUEST,
                   S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"),
                   ALL,
                   0,
                   LEN,
                   100,
                   KA,
                   &small};
    head_check(&c);
}

/* The defaults: 8 KiB request line, 32 KiB of fields, 100 fields. */
TEST(http_head_default_limits)
{
    static char in[40000];
    size_t n;

    n = (size_t)snprintf(in, sizeof in, "GET /");
    memset(in + n, 'a', 8192 - 16 - n);
    n = 8192 - 16;
    n += (size_t)snprintf(in + n, sizeof in - n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(strstr(in, "\r\n") + 2 - in, 8192 - 5);
    check_built("long line within the default", AX_HTTP_REQUEST, in, ALL, 0, NULL);

    memset(in, 0, sizeof in);
    n = (size_t)snprintf(in, sizeof in, "GET /");
    memset(in + n, 'a', 8200 - n);
    snprintf(in + 8200, sizeof in - 8200, " HTTP/1.1\r\nHost: a\r\n\r\n");
    check_built("line over the default", AX_HTTP_REQUEST, in, -414, AX_HTTP_ERR_LINE_TOO_LONG,
                NULL);

    memset(in, 0, sizeof in);
    n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 99; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "X-%d: v\r\n", i);
    snprintf(in + n, sizeof in - n, "\r\n");
    check_built("100 fields", AX_HTTP_REQUEST, in, ALL, 0, NULL);
    snprintf(in + n, sizeof in - n, "Y: z\r\n\r\n");
    check_built("101 fields", AX_HTTP_REQUEST, in, -431, AX_HTTP_ERR_TOO_MANY_HEADERS, NULL);

    memset(in, 0, sizeof in);
    n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(in + n, 'v', 33000);
    snprintf(in + n + 33000, sizeof in - n - 33000, "\r\n\r\n");
    check_built("header section over the default", AX_HTTP_REQUEST, in, -431,
                AX_HTTP_ERR_HEAD_TOO_LARGE, NULL);
}

TEST(http_head_cap_limits_count)
{
    ax_http_header hd[2];
    ax_http_head h = {.headers = hd, .headers_cap = 2};
    ax_http_parser p;
    const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n";
    const char *over = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";

    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    ASSERT_EQ(ax_http_parse_head(&p, ok, strlen(ok), &h), strlen(ok));
    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    ASSERT_EQ(ax_http_parse_head(&p, over, strlen(over), &h), -431);
    ASSERT_EQ(ax_http_parser_error(&p), AX_HTTP_ERR_TOO_MANY_HEADERS);
}

/* ---- what the slices hold ---------------------------------------------- */

static bool str_is(ax_http_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

TEST(http_head_request_fields)
{
    const char *in = "\r\nPUT /up/load?x=1 HTTP/1.0\r\nHost:  a.example:81 \r\n"
                     "X-Empty:\r\nX-Pad: \t two  words \t\r\nx-pad: again\r\n\r\nBODY";
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;

    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    int rc = ax_http_parse_head(&p, in, strlen(in), &h);
    ASSERT_EQ(rc, strlen(in) - 4);
    ASSERT(str_is(h.method, "PUT"));
    ASSERT_EQ(h.method_id, AX_HTTP_PUT);
    ASSERT(str_is(h.target, "/up/load?x=1"));
    ASSERT_EQ(h.minor_version, 0);
    ASSERT(str_is(h.host, "a.example:81"));
    ASSERT_EQ(h.num_headers, 4);
    ASSERT(str_is(hd[0].name, "Host"));
    ASSERT(str_is(hd[1].name, "X-Empty"));
    ASSERT(str_is(hd[1].value, ""));
    ASSERT(str_is(hd[2].value, "two  words"));
    ASSERT(str_is(hd[3].name, "x-pad"));
    ASSERT(str_is(hd[3].value, "again"));
    ASSERT(ax_http_find_header(&h, "X-PAD") == &hd[2]);
    ASSERT(ax_http_find_header(&h, "x-none") == NULL);
    ASSERT(ax_http_find_header(&h, "X-Pat") == NULL);
    ASSERT_EQ(h.framing, NONE);
    ASSERT_EQ(h.status, 0);
}

TEST(http_head_method_ids)
{
    static const struct {
        const char *m;
        enum ax_http_method id;
    } ms[] = {{"GET", AX_HTTP_GET},     {"HEAD", AX_HTTP_HEAD},     {"POST", AX_HTTP_POST},
              {"PUT", AX_HTTP_PUT},     {"DELETE", AX_HTTP_DELETE}, {"OPTIONS", AX_HTTP_OPTIONS},
              {"TRACE", AX_HTTP_TRACE}, {"PATCH", AX_HTTP_PATCH},   {"get", AX_HTTP_OTHER},
              {"GETS", AX_HTTP_OTHER}};
    for (size_t i = 0; i < COUNT(ms); i++) {
        char in[128];
        ax_http_header hd[4];
        ax_http_head h = {.headers = hd, .headers_cap = 4};
        ax_http_parser p;
        snprintf(in, sizeof in, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ms[i].m);
        ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
        ASSERT_EQ(ax_http_parse_head(&p, in, strlen(in), &h), strlen(in));
        ASSERT_EQ(h.method_id, ms[i].id);
    }
}

TEST(http_head_response_fields)
{
    const char *in = "HTTP/1.1 404 Not Found Here\r\nUpgrade: a, b\r\nContent-Length: 3\r\n"
                     "Upgrade: c\r\n\r\nabc";
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;

    ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
    ASSERT_EQ(ax_http_parse_head(&p, in, strlen(in), &h), strlen(in) - 3);
    ASSERT_EQ(h.status, 404);
    ASSERT(str_is(h.reason, "Not Found Here"));
    ASSERT(str_is(h.upgrade, "a, b"));
    ASSERT_EQ(h.method.len, 0);
    ASSERT_EQ(h.flags, KA); /* Upgrade without Connection: upgrade */
}

TEST(http_head_response_to_head)
{
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;

    ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
    p.no_body = true;
    ASSERT_EQ(ax_http_parse_head(&p, in, strlen(in), &h), strlen(in));
    ASSERT_EQ(h.framing, NONE);
    ASSERT_EQ(h.flags, KA);
    /* The flag is per response: the parser is ready for the next one. */
    ASSERT(!p.no_body);
    ASSERT_EQ(ax_http_parse_head(&p, in, strlen(in), &h), strlen(in));
    ASSERT_EQ(h.framing, LEN);
    ASSERT_EQ(h.content_length, 1234);
}

TEST(http_head_pipelined)
{
    const char *in = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                     "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                     "\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n";
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;
    size_t off = 0;
    int rc;

    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    rc = ax_http_parse_head(&p, in, strlen(in), &h);
    ASSERT(rc > 0 && str_is(h.target, "/a"));
    off += (size_t)rc;
    rc = ax_http_parse_head(&p, in + off, strlen(in) - off, &h);
    ASSERT(rc > 0 && str_is(h.target, "/b") && h.content_length == 2);
    off += (size_t)rc + 2;
    /* a stray CRLF after a body is skipped (RFC 9112 2.2) */
    rc = ax_http_parse_head(&p, in + off, strlen(in) - off, &h);
    ASSERT(rc > 0 && str_is(h.target, "/c"));
    ASSERT_EQ(off + (size_t)rc, strlen(in));
}

/* The buffer moves and the old one is scribbled over between calls. */
TEST(http_head_buffer_moves)
{
    const char *in = "GET /moved HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    size_t len = strlen(in), half = 33;
    char *one = malloc(half), *two = malloc(len);
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;

    memcpy(one, in, half);
    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    ASSERT_EQ(ax_http_parse_head(&p, one, half, &h), AX_HTTP_INCOMPLETE);
    memset(one, 'X', half);
    free(one);
    memcpy(two, in, len);
    ASSERT_EQ(ax_http_parse_head(&p, two, len, &h), len);
    ASSERT(str_is(h.target, "/moved"));
    ASSERT(h.target.ptr >= two && h.target.ptr < two + len);
    ASSERT(str_is(hd[0].value, "h") && str_is(hd[1].value, "1") && str_is(hd[2].value, "2"));
    ASSERT(str_is(h.host, "h"));
    free(two);
}

/* A long line arriving in pieces is scanned once: the parser keeps its
 * place instead of starting over at the line. */
TEST(http_head_resumes_where_it_stopped)
{
    static char in[20000];
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;
    size_t n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX: ");

    memset(in + n, 'v', 19000);
    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    for (size_t k = n; k <= n + 19000; k += 100) {
        ASSERT_EQ(ax_http_parse_head(&p, in, k, &h), AX_HTTP_INCOMPLETE);
        ASSERT_EQ(p.search, k);
        ASSERT_EQ(p.scan, n - 3);
    }
}

TEST(http_head_shrinking_buffer_is_misuse)
{
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;

    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    ASSERT_EQ(ax_http_parse_head(&p, "GET / HT", 8, &h), AX_HTTP_INCOMPLETE);
    ASSERT_EQ(ax_http_parse_head(&p, "GET", 3, &h), -400);
    ASSERT_EQ(ax_http_parser_error(&p), AX_HTTP_ERR_STATE);
}

TEST(http_list_has)
{
    ax_http_str v = {"keep-alive , Upgrade,,close", 27};
    ASSERT(ax_http_list_has(v, "upgrade"));
    ASSERT(ax_http_list_has(v, "KEEP-ALIVE"));
    ASSERT(ax_http_list_has(v, "close"));
    ASSERT(!ax_http_list_has(v, "clos"));
    ASSERT(!ax_http_list_has(v, "clone"));
    ASSERT(!ax_http_list_has(v, ""));
}

TEST(http_err_str_covers_all)
{
    for (int e = 0; e < AX_HTTP_ERR_COUNT_; e++)
        ASSERT(ax_http_err_str((enum ax_http_err)e) != NULL);
    ASSERT_STREQ(ax_http_err_str(AX_HTTP_ERR_BARE_CR), "bare CR");
    ASSERT_STREQ(ax_http_err_str((enum ax_http_err)999), "unknown error");
}

/* ---- bodies ------------------------------------------------------------- */

typedef struct body_case {
    const char *name;
    int framing;
    uint64_t length;
    const char *in;
    size_t len;
    int rc; /* 0 done, AX_HTTP_INCOMPLETE, or -status */
    int err;
    const char *data; /* the payload expected */
    long used;        /* bytes consumed; -1: all */
    const ax_http_limits *lim;
} body_case;

#define B_OK(nm, fr, n, lit, payload, used)                                                        \
    {                                                                                              \
        nm, fr, n, S(lit), 0, 0, payload, used, NULL                                               \
    }
#define B_MORE(nm, fr, n, lit, payload)                                                            \
    {                                                                                              \
        nm, fr, n, S(lit), AX_HTTP_INCOMPLETE, 0, payload, -1, NULL                                \
    }
#define B_BAD(nm, lit, st, e)                                                                      \
    {                                                                                              \
        nm, CHUNKED, 0, S(lit), -(st), AX_HTTP_ERR_##e, NULL, -1, NULL                             \
    }
#define B_BAD_L(nm, lit, st, e, lim)                                                               \
    {                                                                                              \
        nm, CHUNKED, 0, S(lit), -(st), AX_HTTP_ERR_##e, NULL, -1, lim                              \
    }

static const body_case body_cases[] = {
    B_OK("length", LEN, 5, "hello", "hello", -1),
    B_OK("length, next message behind", LEN, 5, "helloGET / HTTP/1.1", "hello", 5),
    B_OK("length zero", LEN, 0, "GET", "", 0),
    B_OK("none", NONE, 0, "GET", "", 0),
    B_MORE("length short", LEN, 10, "hello", "hello"),
    B_MORE("until close", UNTIL_CLOSE, 0, "all of it", "all of it"),
    B_OK("chunked", CHUNKED, 0, "5\r\nhello\r\n0\r\n\r\n", "hello", -1),
    B_OK("chunked, next message behind", CHUNKED, 0, "5\r\nhello\r\n0\r\n\r\nGET", "hello", 15),
    B_OK("chunked empty", CHUNKED, 0, "0\r\n\r\n", "", -1),
    B_OK("chunks", CHUNKED, 0, "3\r\nabc\r\n1\r\nd\r\nA\r\n0123456789\r\n0\r\n\r\n",
         "abcd0123456789", -1),
    B_OK("hex digits", CHUNKED, 0, "a\r\n0123456789\r\nF\r\n0123456789abcde\r\n0\r\n\r\n",
         "01234567890123456789abcde", -1),
    B_OK("leading zeros", CHUNKED, 0, "0003\r\nabc\r\n000\r\n\r\n", "abc", -1),
    B_OK("data with CRLF inside", CHUNKED, 0, "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", -1),
    B_OK("extension", CHUNKED, 0, "3;name=value\r\nabc\r\n0;last\r\n\r\n", "abc", -1),
    B_OK("extensions with BWS", CHUNKED, 0, "3 ; a = b ;c\t;\td=e\r\nabc\r\n0\r\n\r\n", "abc", -1),
    B_OK("quoted extension", CHUNKED, 0, "3;q=\"a \\\"b\\\" ;c\"\r\nabc\r\n0\r\n\r\n", "abc", -1),
    B_OK("quoted extension with obs-text", CHUNKED, 0, "3;q=\"\xe9\"\r\nabc\r\n0\r\n\r\n", "abc",
         -1),
    B_OK("trailers", CHUNKED, 0, "3\r\nabc\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n", "abc", -1),
    B_MORE("chunk size only", CHUNKED, 0, "5\r\n", ""),
    B_MORE("chunk partly there", CHUNKED, 0, "5\r\nhel", "hel"),
    B_MORE("chunk without CRLF yet", CHUNKED, 0, "5\r\nhello", "hello"),
    B_MORE("chunk with CR only", CHUNKED, 0, "5\r\nhello\r", "hello"),
    B_MORE("last chunk, no end", CHUNKED, 0, "5\r\nhello\r\n0\r\n", "hello"),
    B_MORE("trailer partly there", CHUNKED, 0, "0\r\nX: y", ""),
    B_MORE("largest chunk size", CHUNKED, 0, "ffffffffffffffff\r\nab", "ab"),
    /* rejections */
    B_BAD("size not hex", "x\r\n", 400, CHUNK_SIZE),
    B_BAD("size empty", "\r\n", 400, CHUNK_SIZE),
    B_BAD("size negative", "-5\r\nhello\r\n0\r\n\r\n", 400, CHUNK_SIZE),
    B_BAD("size with 0x", "0x5\r\nhello\r\n0\r\n\r\n", 400, CHUNK_SIZE),
    B_BAD("size with plus", "+5\r\nhello\r\n0\r\n\r\n", 400, CHUNK_SIZE),
    B_BAD("size overflow", "10000000000000000\r\n", 400, CHUNK_SIZE),
    B_BAD("size with leading space", " 5\r\nhello\r\n0\r\n\r\n", 400, CHUNK_SIZE),
    B_BAD("size with trailing space", "5 \r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension without name", "5;\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension with empty name", "5;=x\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension without value", "5;a=\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension with two words", "5;a b\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension with separator", "5;a=b/c\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension quote open", "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("extension backslash at end", "5;a=\"b\\\r\nhello\r\n0\r\n\r\n", 400, CHUNK_EXT),
    B_BAD("NUL in extension", "5;a\0\r\nhello\r\n0\r\n\r\n", 400, CONTROL_CHAR),
    B_BAD("bare CR in size line", "5\rhello\r\n0\r\n\r\n", 400, BARE_CR),
    B_BAD("bare LF in size line", "5\nhello\r\n0\r\n\r\n", 400, BARE_LF),
    B_BAD("data longer than size", "5\r\nhello!\r\n0\r\n\r\n", 400, CHUNK_CRLF),
    B_BAD("data then CR and junk", "5\r\nhello\rX0\r\n\r\n", 400, CHUNK_CRLF),
    B_BAD("data then bare LF", "5\r\nhello\n0\r\n\r\n", 400, CHUNK_CRLF),
    B_BAD("data shorter than size", "5\r\nhell\r\n0\r\n\r\n", 400, CHUNK_CRLF),
    B_BAD("trailer without colon", "0\r\nX\r\n\r\n", 400, NO_COLON),
    B_BAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 400, OBS_FOLD),
    B_BAD("trailer bad name", "0\r\nX y: a\r\n\r\n", 400, HEADER_NAME),
    B_BAD("trailer space before colon", "0\r\nX : a\r\n\r\n", 400, SPACE_BEFORE_COLON),
    B_BAD("trailer NUL", "0\r\nX: \0\r\n\r\n", 400, CONTROL_CHAR),
    B_BAD("trailer bare LF", "0\r\nX: a\n\r\n", 400, BARE_LF),
    B_BAD_L("chunk line too long", "1;aaaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", 400, CHUNK_LINE_TOO_LONG,
            &small),
    B_BAD_L("too many trailers", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, TOO_MANY_HEADERS,
            &small),
    B_BAD_L("trailer section too large",
            "0\r\nA: 0123456789012345678901234567890123456789\r\nB: 0123456789012345\r\n\r\n", 431,
            HEAD_TOO_LARGE, &small),
    B_BAD_L("chunks over max_body",
            "40\r\n0123456789012345678901234567890123456789012345678901234"
            "567890123\r\n25\r\n0123456789012345678901234567890123456\r\n0\r\n\r\n",
            413, BODY_TOO_LARGE, &small),
    {"length over max_body", LEN, 101, S("x"), -413, AX_HTTP_ERR_BODY_TOO_LARGE, NULL, -1, &small},
    {"until close over max_body", UNTIL_CLOSE, 0,
     S("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
       "890123456789X"),
     -413, AX_HTTP_ERR_BODY_TOO_LARGE, NULL, -1, &small},
    /* allowed with allow_bare_lf */
    {"bare LF everywhere", CHUNKED, 0, S("5\nhello\n0\nX: y\n\n"), 0, 0, "hello", -1, &lenient},
    {"bare CR still refused", CHUNKED, 0, S("5\r\nhello\r0\n\n"), -400, AX_HTTP_ERR_CHUNK_CRLF,
     NULL, -1, &lenient},
    {"chunks at max_body", CHUNKED, 0,
     S("40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n24\r\n"
       "012345678901234567890123456789012345\r\n0\r\n\r\n"),
     0, 0,
     "0123456789012345678901234567890123456789012345678901234567890123"
     "012345678901234567890123456789012345",
     -1, &small},
};

typedef struct body_result {
    int rc;
    int err;
    size_t used;
    size_t dlen;
    char data[4096];
} body_result;

static void collect(body_result *r, ax_http_str d)
{
    ASSERT(r->dlen + d.len <= sizeof r->data);
    if (d.len) memcpy(r->data + r->dlen, d.ptr, d.len);
    r->dlen += d.len;
}

/* Feeds `in` as a caller would, `step` more bytes per round (0: all at
 * once), keeping the unconsumed bytes and placing them against the guard. */
static void body_feed(const body_case *c, guard *g, size_t step, body_result *r)
{
    ax_http_body d;
    size_t have = step ? 0 : c->len;

    memset(r, 0, sizeof(*r));
    ax_http_body_init(&d, c->framing, c->length, c->lim);
    for (;;) {
        ax_http_str data;
        const char *b = guard_put(g, c->in + r->used, have - r->used);
        r->rc = ax_http_body_parse(&d, b, have - r->used, &data);
        if (r->rc > 0) {
            ASSERT(data.len <= (size_t)r->rc);
            ASSERT(data.len == 0 || (data.ptr >= b && data.ptr + data.len <= b + r->rc));
            collect(r, data);
            r->used += (size_t)r->rc;
            continue;
        }
        if (r->rc == AX_HTTP_INCOMPLETE && have < c->len) {
            have = have + step < c->len ? have + step : c->len;
            continue;
        }
        break;
    }
    ASSERT_EQ(r->rc == 0, ax_http_body_done(&d));
    r->err = ax_http_body_error(&d);
    if (r->rc < AX_HTTP_INCOMPLETE) { /* sticky */
        ax_http_str data;
        ASSERT_EQ(ax_http_body_parse(&d, c->in, c->len, &data), r->rc);
    }
}

static void body_check(const body_case *c)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    guard g;

    guard_open(&g, c->len);
    for (size_t i = 0; i < COUNT(steps); i++) {
        body_result r;
        body_feed(c, &g, steps[i], &r);
        size_t used = c->used < 0 ? c->len : (size_t)c->used;
        bool ok = r.rc == c->rc && r.err == c->err;
        if (ok && c->data) ok = r.dlen == strlen(c->data) && memcmp(r.data, c->data, r.dlen) == 0;
        if (ok && c->rc == 0) ok = r.used == used;
        if (!ok) {
            fprintf(stderr,
                    "#   body case \"%s\" step %zu: rc %d err \"%s\" used %zu data \"%.*s\"\n",
                    c->name, steps[i], r.rc, ax_http_err_str(r.err), r.used, (int)r.dlen, r.data);
            ASSERT(ok);
        }
    }
    guard_close(&g);
}

TEST(http_body_table)
{
    for (size_t i = 0; i < COUNT(body_cases); i++)
        body_check(&body_cases[i]);
}

TEST(http_body_one_slice_per_call)
{
    const char *in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    ax_http_body d;
    ax_http_str data;
    int n;

    ax_http_body_init(&d, CHUNKED, 0, NULL);
    n = ax_http_body_parse(&d, in, strlen(in), &data);
    ASSERT_EQ(n, 6);
    ASSERT(str_is(data, "abc"));
    n = ax_http_body_parse(&d, in + 6, strlen(in) - 6, &data);
    ASSERT_EQ(n, 7);
    ASSERT(str_is(data, "de"));
    n = ax_http_body_parse(&d, in + 13, strlen(in) - 13, &data);
    ASSERT_EQ(n, 7);
    ASSERT_EQ(data.len, 0);
    ASSERT(ax_http_body_done(&d));
    ASSERT_EQ(ax_http_body_parse(&d, "", 0, &data), 0);
}

/* A head and its body through both parsers, as a server would. */
TEST(http_head_then_body)
{
    const char *in = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;
    ax_http_body d;
    ax_http_str data;
    char body[32];
    size_t off, blen = 0;
    int n;

    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    n = ax_http_parse_head(&p, in, strlen(in), &h);
    ASSERT(n > 0);
    off = (size_t)n;
    ax_http_body_init(&d, h.framing, h.content_length, NULL);
    while ((n = ax_http_body_parse(&d, in + off, strlen(in) - off, &data)) > 0) {
        memcpy(body + blen, data.ptr, data.len);
        blen += data.len;
        off += (size_t)n;
    }
    ASSERT_EQ(n, 0);
    ASSERT_EQ(blen, 9);
    ASSERT(memcmp(body, "Wikipedia", 9) == 0);
    n = ax_http_parse_head(&p, in + off, strlen(in) - off, &h);
    ASSERT_EQ(off + (size_t)n, strlen(in));
    ASSERT_EQ(h.method_id, AX_HTTP_GET);
}

/* ---- every byte in every place ------------------------------------------ */

static bool rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int head_rc(const char *in, size_t len)
{
    ax_http_header hd[8];
    ax_http_head h = {.headers = hd, .headers_cap = 8};
    ax_http_parser p;
    guard g;

    guard_open(&g, len);
    ax_http_parser_init(&p, AX_HTTP_REQUEST, NULL);
    int rc = ax_http_parse_head(&p, guard_put(&g, in, len), len, &h);
    guard_close(&g);
    return rc;
}

TEST(http_byte_classes)
{
    for (int c = 0; c < 256; c++) {
        char in[128];
        size_t n;
        bool vchar = c >= 0x21 && c <= 0x7e;

        n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX%cY: v\r\n\r\n", 'Z');
        in[26] = (char)c; /* the byte between X and Y */
        if (c != ':') ASSERT_EQ(head_rc(in, n) > 0, rfc_tchar(c));

        n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX: aZb\r\n\r\n");
        in[29] = (char)c;
        ASSERT_EQ(head_rc(in, n) > 0, c == '\t' || (c >= 0x20 && c != 0x7f));

        n = (size_t)snprintf(in, sizeof in, "GET /Z HTTP/1.1\r\nHost: a\r\n\r\n");
        in[5] = (char)c;
        ASSERT_EQ(head_rc(in, n) > 0, vchar);

        n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: aZb\r\n\r\n");
        in[23] = (char)c;
        bool host =
            (c < 0x80 && rfc_tchar(c) && !strchr("#^`|", c)) || (c && strchr("()*,;=:[]", c));
        ASSERT_EQ(head_rc(in, n) > 0, host);

        ax_http_body d;
        ax_http_str data;
        char line[4] = {(char)c, '\r', '\n', 'x'};
        ax_http_body_init(&d, AX_HTTP_BODY_CHUNKED, 0, NULL);
        int rc = ax_http_body_parse(&d, line, 4, &data);
        ASSERT_EQ(rc > 0,
                  (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    }
}
