/* fuzz_token.c: libFuzzer target for token checks (src/hub/jwt.c).
 *
 * The first byte picks what the rest is:
 *   0: a whole token, verified as a client would send it;
 *   1: a claims JSON document, signed correctly under an HS256 header
 *      (random tokens never pass the signature, so this is how the claims
 *      parser gets fuzzed);
 *   2: a header JSON document, signed correctly over fixed valid claims:
 *      whatever it says, only alg HS256 may pass.
 * A token that passes must name a usable user with valid filters, and must
 * verify again after auth_jwt_sign() makes it anew. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

#define KEY "fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-key"
#define NOW 1800000000LL

static const auth_secret SECRET = {(uint8_t *)KEY, sizeof KEY - 1};

static char *sign_raw(const uint8_t *hdr, size_t hl, const uint8_t *body, size_t bl)
{
    size_t cap = 2 * (hl + bl) + 128;
    char *t = malloc(cap);
    size_t o = auth_b64_encode(hdr, hl, true, t, cap);
    t[o++] = '.';
    o += auth_b64_encode(body, bl, true, t + o, cap - o);
    uint8_t mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const uint8_t *)t, o, mac, &ml);
    t[o++] = '.';
    auth_b64_encode(mac, ml, true, t + o, cap - o);
    return t;
}

static void check(const char *tok, size_t len, bool hs256_header)
{
    char why[256];
    auth_claims c;
    if (auth_jwt_verify(&SECRET, tok, len, NOW, 30, &c, why, sizeof why) != 0) return;
    CHECK(hs256_header);
    CHECK(auth_name_valid(c.sub) && c.exp > NOW - 30);
    for (int i = 0; i < c.npub; i++)
        CHECK(hub_filter_valid(c.pub[i], strlen(c.pub[i])));
    for (int i = 0; i < c.nsub; i++)
        CHECK(hub_filter_valid(c.subf[i], strlen(c.subf[i])));
    char *again = auth_jwt_sign(&SECRET, &c, 0, why, sizeof why);
    if (again) {
        auth_claims d;
        CHECK(auth_jwt_verify(&SECRET, again, strlen(again), NOW, 30, &d, why, sizeof why) == 0);
        CHECK(strcmp(c.sub, d.sub) == 0 && d.npub == c.npub && d.nsub == c.nsub);
        auth_claims_free(&d);
        ax_free(again);
    }
    auth_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 12000) return 0;
    static const char hs[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char body[] = "{\"sub\":\"a\",\"exp\":1800000600}";
    char *t = NULL;
    switch (data[0] % 3) {
    case 0:
        check((const char *)data + 1, size - 1, true);
        return 0;
    case 1:
        t = sign_raw((const uint8_t *)hs, sizeof hs - 1, data + 1, size - 1);
        check(t, strlen(t), true);
        break;
    default: {
        t = sign_raw(data + 1, size - 1, (const uint8_t *)body, sizeof body - 1);
        /* passing is allowed only if the header says exactly HS256 */
        json_t *h = json_loadb((const char *)data + 1, size - 1, 0, NULL);
        const char *alg = json_string_value(json_object_get(h, "alg"));
        bool hs256 = alg && strcmp(alg, "HS256") == 0;
        json_decref(h);
        check(t, strlen(t), hs256);
        break;
    }
    }
    free(t);
    return 0;
}
