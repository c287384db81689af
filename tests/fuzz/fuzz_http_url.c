/* fuzz_http_url.c: libFuzzer target for the HTTP client's URL helpers.
 *
 * The input is "BASE\nREF".  BASE is parsed as an http(s) URL; when that
 * works, REF is resolved against it.  Resolution must answer 0, AX_EURL or
 * AX_ENOMEM; a result must hold no fragment, resolve to itself against
 * itself and against the empty reference (the output is already
 * normalised), and, when it parses, have no dot segments left. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <axon/alloc.h>
#include <axon/error.h>

#include "proto/http/client_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

static void check_same(const char *base, const char *ref)
{
    char *again = NULL;
    int rc = ax__http_url_resolve(base, ref, strlen(ref), &again);
    CHECK(rc == 0 || rc == AX_ENOMEM);
    if (rc == 0) CHECK(strcmp(again, base) == 0);
    ax_free(again);
}

static bool dot_segment(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i] != '/') continue;
        size_t j = i + 1;
        while (j < n && t[j] != '/' && t[j] != '?')
            j++;
        size_t sl = j - i - 1;
        if ((sl == 1 && t[i + 1] == '.') || (sl == 2 && t[i + 1] == '.' && t[i + 2] == '.'))
            return true;
        if (j < n && t[j] == '?') return false;
    }
    return false;
}

static void check_result(const char *out)
{
    ax__http_url u;
    CHECK(strchr(out, '#') == NULL);
    check_same(out, out);
    check_same(out, "");
    if (ax__http_url_parse(out, &u) == 0) CHECK(!dot_segment(u.target, u.target_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *nl = memchr(buf, '\n', size);
    const char *ref = "";
    size_t ref_len = 0;
    if (nl) {
        *nl = '\0';
        ref = nl + 1;
        ref_len = size - (size_t)(nl + 1 - buf);
    }
    ax__http_url u;
    int rc = ax__http_url_parse(buf, &u);
    CHECK(rc == 0 || rc == AX_EURL || rc == AX_ESCHEME || rc == AX_EHOST || rc == AX_EPORT);
    if (rc == 0 && memchr(ref, '\0', ref_len) == NULL) {
        CHECK(u.port > 0 && u.port <= 65535 && u.host[0] != '\0');
        char *out = NULL;
        rc = ax__http_url_resolve(buf, ref, ref_len, &out);
        CHECK(rc == 0 || rc == AX_EURL || rc == AX_ENOMEM);
        if (rc == 0) check_result(out);
        ax_free(out);
    }
    free(buf);
    return 0;
}
