/* fuzz_ftp.c: libFuzzer target for the FTP command parser and path
 * resolver of examples/ftp_server.c (examples/ftp_parse.h).
 *
 * The input is what a client sends, cut into lines with ftp_line() as the
 * server does.  For each line:
 *  - the line and what consuming it takes stay inside the input;
 *  - a command that parses has its argument inside the line, and a failure
 *    is 500 or 501;
 *  - the argument, taken as a path from the working directory, resolves
 *    to an absolute path with no "." or ".." component, no "//", no
 *    trailing '/', that fits its buffer; resolving it again from any
 *    folder gives itself; and a successful CWD-like step becomes the next
 *    line's working directory, so sequences of ".." are explored too;
 *  - REST's offset parser accepts only digits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../examples/ftp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ftp: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_path(const char *p, long n)
{
    CHECK(n >= 1 && (size_t)n < FTP_MAX_PATH && strlen(p) == (size_t)n && p[0] == '/');
    CHECK(n == 1 || p[n - 1] != '/');
    CHECK(!strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../"));
    CHECK(strcmp(p + n - (n >= 2 ? 2 : n), "/.") != 0);
    CHECK(n < 3 || strcmp(p + n - 3, "/..") != 0);
}

static void one(char *cwd, const char *line, size_t len)
{
    ftp_cmd c;
    char out[FTP_MAX_PATH], again[FTP_MAX_PATH];
    int rc = ftp_parse(line, len, &c);
    if (rc) {
        CHECK(rc == 500 || rc == 501);
        return;
    }
    CHECK(c.arg >= line && c.arg + c.arg_len <= line + len);
    long n = ftp_path(cwd, c.arg, c.arg_len, out, sizeof out);
    CHECK(n >= -2);
    if (n > 0) {
        check_path(out, n);
        CHECK(ftp_path("/x/y", out, (size_t)n, again, sizeof again) == n);
        CHECK(strcmp(out, again) == 0);
        if (c.verb == FTP_CWD || c.verb == FTP_MKD) memcpy(cwd, out, (size_t)n + 1);
    }
    uint64_t off;
    if (ftp_offset(c.arg, c.arg_len, &off))
        for (size_t i = 0; i < c.arg_len; i++)
            CHECK(c.arg[i] >= '0' && c.arg[i] <= '9');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char cwd[FTP_MAX_PATH] = "/";
    size_t used = 0, n = 0;
    while (used < size) {
        long r = ftp_line(buf + used, size - used, FTP_MAX_LINE, &n);
        if (r == 0) break;
        if (r < 0) {
            CHECK(size - used >= FTP_MAX_LINE);
            break; /* the server hangs up */
        }
        CHECK((size_t)r <= size - used && (size_t)r <= FTP_MAX_LINE && n < (size_t)r);
        one(cwd, buf + used, n);
        used += (size_t)r;
    }
    return 0;
}
