/* fuzz_smtp.c: libFuzzer target for the SMTP command parser of
 * examples/smtp_server.c (examples/smtp_parse.h).
 *
 * The input is what a client sends.  It is cut into command lines with
 * smtp_line() the way the server does (a line over SMTP_MAX_CMD skipped
 * to its end), and into mail-data lines with CRLF only.  For each:
 *  - a line and what consuming it takes stay inside the input;
 *  - a command that parses has its argument and path inside the line, a
 *    path of at most SMTP_MAX_PATH bytes without spaces or controls, and
 *    a path only for MAIL and RCPT (never empty for RCPT);
 *  - a failure is one of the reply codes 500, 501, 555;
 *  - a data line with dot-stuffing undone is the line or the line less its
 *    first byte, and only "." ends the data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../examples/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_smtp: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void command(const char *line, size_t len)
{
    smtp_cmd c;
    int rc = smtp_parse(line, len, &c);
    if (rc) {
        CHECK(rc == 500 || rc == 501 || rc == 555);
        return;
    }
    CHECK(c.arg >= line && c.arg + c.arg_len <= line + len);
    CHECK(c.verb <= SMTP_STARTTLS);
    if (c.verb == SMTP_MAIL || c.verb == SMTP_RCPT) {
        CHECK(c.path >= line && c.path + c.path_len <= line + len);
        CHECK(c.path_len <= SMTP_MAX_PATH);
        CHECK(c.verb == SMTP_MAIL || c.path_len > 0);
        for (size_t i = 0; i < c.path_len; i++)
            CHECK((unsigned char)c.path[i] > 0x20 && c.path[i] != 0x7f);
    } else {
        CHECK(c.path == NULL && c.path_len == 0 && c.size == 0);
    }
}

static void data_line(const char *line, size_t len)
{
    const char *p = line;
    size_t n = len;
    bool end = smtp_data_line(&p, &n);
    CHECK(end == (len == 1 && line[0] == '.'));
    if (!end) CHECK((p == line && n == len) || (p == line + 1 && n == len - 1 && line[0] == '.'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    for (int pass = 0; pass < 2; pass++) { /* commands, then the same bytes as mail data */
        size_t used = 0, n = 0;
        while (used < size) {
            size_t max = pass ? SMTP_MAX_TEXT : SMTP_MAX_CMD;
            long r = smtp_line(buf + used, size - used, max, pass == 1, &n);
            if (r == 0) break;
            if (r < 0) {
                CHECK(size - used >= max);
                const char *nl = memchr(buf + used, '\n', size - used);
                if (!nl) break;
                used = (size_t)(nl - buf) + 1;
                continue;
            }
            CHECK((size_t)r <= size - used && (size_t)r <= max && n < (size_t)r);
            CHECK(buf[used + (size_t)r - 1] == '\n');
            if (pass == 0)
                command(buf + used, n);
            else
                data_line(buf + used, n);
            used += (size_t)r;
        }
    }
    return 0;
}
