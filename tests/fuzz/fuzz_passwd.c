/* fuzz_passwd.c: libFuzzer target for the mosquitto_passwd file parser
 * (src/hub/passwd.c).  The input is a whole file; a parsed file is then
 * asked about a user name and password taken from the input, when its
 * hashes are cheap (the dummy entry of an unknown user costs as much as
 * the first user's iterations). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    char why[256];
    auth_passwd *p = auth_passwd_parse((const char *)data, size, "fuzz", why, sizeof why);
    if (!p) {
        if (!memchr(why, '\0', sizeof why)) __builtin_trap();
        return 0;
    }
    /* only files whose iteration counts stay small get a login attempt */
    if (size < 4096 && !memmem(data, size, "$7$", 3)) {
        char user[65] = "", pw[65] = "";
        const char *colon = memchr(data, ':', size);
        size_t ul = colon ? (size_t)(colon - (const char *)data) : 0;
        if (ul < sizeof user) memcpy(user, data, ul);
        memcpy(pw, data, size < 64 ? size : 64);
        pw[size < 64 ? size : 64] = '\0';
        auth_passwd_check(p, user, pw);
        auth_passwd_check(p, "nobody-here", pw);
    }
    auth_passwd_free(p);
    return 0;
}
