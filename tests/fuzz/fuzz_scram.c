/* fuzz_scram.c: libFuzzer target for the server side of SCRAM-SHA-512
 * (src/hub/scram.c), the parser of what an MQTT 5 client sends in its
 * CONNECT and AUTH packets.  The input is a client-first message, a 0xff
 * byte, and a client-final message in which "@@" stands for the nonce
 * the server answered (so the exchange can get past the nonce check).
 * The password file holds one $7$ user ("alice", password "secret"). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PW[] = "alice:$7$101$1b/vEW/qS0pVKQ1B$P7mUG3AAFBWWtOc7RSQKuoaGjn+38HYK7Yfschmn"
                         "SxabCcnIXDXbjD/KG+FA8I6leeKCkbOyFHrGpvhKhYlFvQ==\n";

static auth *the_auth(void)
{
    static auth *a;
    if (a) return a;
    char path[] = "/tmp/fuzz-scram-XXXXXX", why[256];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, PW, sizeof PW - 1) != (ssize_t)(sizeof PW - 1)) abort();
    close(fd);
    auth_opts o = {.password_file = path};
    a = auth_new(&o, why, sizeof why);
    unlink(path);
    if (!a) abort();
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    auth *a = the_auth();
    const uint8_t *cut = memchr(data, 0xff, size);
    size_t fl = cut ? (size_t)(cut - data) : size;
    char out[AUTH_SCRAM_MAX + 1];
    size_t ol = 0;
    const char *why = NULL;
    auth_scram *s = auth_scram_start(a, data, fl, out, &ol, &why);
    if (!s) {
        if (!why) __builtin_trap();
        return 0;
    }
    if (ol == 0 || ol > AUTH_SCRAM_MAX) __builtin_trap();
    out[ol] = '\0';
    const char *comma = strchr(out, ',');
    size_t nl = comma ? (size_t)(comma - out) - 2 : 0;
    /* the final message with "@@" replaced by the server's nonce */
    char fin[2 * 4096];
    size_t n = 0;
    for (const uint8_t *p = cut ? cut + 1 : data + size; p < data + size && n + nl < sizeof fin;) {
        if (p + 1 < data + size && p[0] == '@' && p[1] == '@') {
            memcpy(fin + n, out + 2, nl);
            n += nl;
            p += 2;
        } else {
            fin[n++] = (char)*p++;
        }
    }
    char sfinal[AUTH_SCRAM_MAX];
    auth_identity *id = auth_scram_finish(s, a, fin, n, NULL, sfinal, &ol, &why);
    if (!id && !why) __builtin_trap();
    auth_identity_free(id);
    auth_scram_free(s);
    return 0;
}
