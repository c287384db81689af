/* fuzz_static.c: libFuzzer target for the static-file helpers of the HTTP
 * server (src/proto/http/static.c, date.c, mime.c).
 *
 * The input's first byte picks what the rest is:
 *   0: a request path: percent-decoding and the ".." guard must agree with
 *      a reference written again here, and a path that passes the guard
 *      (what the handler opens) never holds a NUL or a ".." segment, never
 *      starts with '/', so it cannot name anything above the root;
 *   1: a Range value against a file size taken from the next bytes: every
 *      range lies inside the file, first <= last, at most 16 of them;
 *   2: an If-None-Match value and an entity tag (split at the first NUL):
 *      a value that lists the tag matches, and a match without "*" names
 *      the tag somewhere;
 *   3: an HTTP date: whatever parses formats to a date that parses to the
 *      same time; a time taken from the bytes formats and parses back. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http/server_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_static: check failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int hexv(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The reference decoder: -1 on a bad escape or a NUL byte. */
static long ref_decode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = in[i];
        if (c == '%') {
            if (n - i < 3 || hexv(in[i + 1]) < 0 || hexv(in[i + 2]) < 0) return -1;
            c = hexv(in[i + 1]) * 16 + hexv(in[i + 2]);
            i += 2;
        }
        if (c == 0) return -1;
        out[o++] = (char)c;
    }
    return (long)o;
}

/* Does any '/'-separated segment equal ".."? */
static int ref_dotdot(const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/') continue;
        if (i - start == 2 && p[start] == '.' && p[start + 1] == '.') return 1;
        start = i + 1;
    }
    return 0;
}

static void fuzz_path(const uint8_t *d, size_t n)
{
    char *in = calloc(1, n ? n : 1), *out = malloc(n + 1), *ref = malloc(n + 1);
    CHECK(in && out && ref);
    if (n) memcpy(in, d, n);
    long k = ax__http_path_decode(in, n, out);
    long rk = ref_decode(d, n, ref);
    CHECK(k == rk);
    if (k >= 0) {
        CHECK((size_t)k <= n && out[k] == '\0' && memchr(out, '\0', (size_t)k) == NULL);
        CHECK(memcmp(out, ref, (size_t)k) == 0);
        int dd = ax__http_path_has_dotdot(out, (size_t)k);
        CHECK(dd == ref_dotdot(out, (size_t)k));
        if (!dd) {
            /* what the handler opens below the root */
            const char *p = out;
            while (*p == '/')
                p++;
            size_t pl = strlen(p);
            CHECK(pl == (size_t)k - (size_t)(p - out));
            CHECK(!ref_dotdot(p, pl));
            /* resolving "." and empty segments never climbs above the root */
            int depth = 0;
            for (size_t i = 0, s = 0; i <= pl; i++) {
                if (i < pl && p[i] != '/') continue;
                if (i - s == 2 && p[s] == '.' && p[s + 1] == '.') depth--;
                CHECK(depth >= 0);
                s = i + 1;
            }
        }
        CHECK(ax__http_mime(out, (size_t)k) != NULL);
    }
    free(in);
    free(out);
    free(ref);
}

static void fuzz_range(const uint8_t *d, size_t n)
{
    if (n < 9) return;
    uint64_t size = 0;
    for (int i = 0; i < 8; i++)
        size = size << 8 | d[i];
    /* mostly small files, sometimes huge ones */
    if (!(d[0] & 0x80)) size %= 70000;
    d += 8, n -= 8;
    char *v = malloc(n);
    CHECK(v != NULL);
    memcpy(v, d, n);
    ax__http_range rg[AX__HTTP_MAX_RANGES + 1];
    memset(rg, 0xa5, sizeof rg);
    int k = ax__http_parse_ranges(v, n, size, rg);
    CHECK(k >= -1 && k <= AX__HTTP_MAX_RANGES);
    for (int i = 0; i < k; i++)
        CHECK(rg[i].first <= rg[i].last && rg[i].last < size);
    if (size == 0) CHECK(k <= 0);
    free(v);
}

static void fuzz_etag(const uint8_t *d, size_t n)
{
    const uint8_t *z = memchr(d, '\0', n);
    if (!z) return;
    size_t vl = (size_t)(z - d);
    char *v = malloc(vl ? vl : 1);
    CHECK(v != NULL);
    memcpy(v, d, vl);
    const char *etag = (const char *)z + 1;
    size_t el = strnlen(etag, n - vl - 1);
    if (el == n - vl - 1) { /* the tag needs its own NUL */
        free(v);
        return;
    }
    int m = ax__http_etag_match(v, vl, etag);
    /* every element, trimmed and without W/, compared with the tag */
    int ref = 0;
    for (size_t i = 0; i <= vl && el;) {
        size_t j = i;
        while (j < vl && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b - a >= 2 && v[a] == 'W' && v[a + 1] == '/') a += 2;
        if (b - a == el && memcmp(v + a, etag, el) == 0 && !memchr(etag, ',', el)) ref = 1;
        i = j + 1;
    }
    if (ref) CHECK(m == 1);
    if (m && !memchr(v, '*', vl)) CHECK(el == 0 || memmem(v, vl, etag, el) != NULL);
    free(v);
}

static void fuzz_date(const uint8_t *d, size_t n)
{
    char *s = calloc(1, n ? n : 1);
    CHECK(s != NULL);
    if (n) memcpy(s, d, n);
    time_t t, t2;
    char out[AX__HTTP_DATE_LEN + 1];
    if (ax__http_parse_date(s, n, &t) == 0) {
        CHECK(n == AX__HTTP_DATE_LEN);
        if (t >= 0 && t < (time_t)253402300800) { /* years 1970 to 9999 */
            ax__http_date(t, out);
            CHECK(strlen(out) == AX__HTTP_DATE_LEN);
            CHECK(ax__http_parse_date(out, AX__HTTP_DATE_LEN, &t2) == 0 && t2 == t);
        }
    }
    if (n >= 8) {
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | d[i];
        t = (time_t)(x % 253402300800u);
        ax__http_date(t, out);
        CHECK(strlen(out) == AX__HTTP_DATE_LEN);
        CHECK(ax__http_parse_date(out, AX__HTTP_DATE_LEN, &t2) == 0 && t2 == t);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_path(data + 1, size - 1);
        break;
    case 1:
        fuzz_range(data + 1, size - 1);
        break;
    case 2:
        fuzz_etag(data + 1, size - 1);
        break;
    default:
        fuzz_date(data + 1, size - 1);
        break;
    }
    return 0;
}
