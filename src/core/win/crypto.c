/* crypto.c: the little cryptography libaxon needs outside TLS, from the
 * system (BCrypt) where Linux takes it from OpenSSL: random bytes for
 * WebSocket masks and keys, SHA-1 for the WebSocket handshake. */
#include "internal.h"

#include <bcrypt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

struct ax__win_md {
    int unused;
};

int ax__win_rand_bytes(unsigned char *buf, int n)
{
    return BCryptGenRandom(NULL, buf, (ULONG)n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0 ? 1 : 0;
}

const EVP_MD *ax__win_sha1(void)
{
    static const struct ax__win_md sha1;
    return &sha1;
}

int ax__win_digest(const void *data, size_t len, unsigned char *md, unsigned int *mdlen,
                   const EVP_MD *type, ENGINE *impl)
{
    (void)type, (void)impl;
    BCRYPT_ALG_HANDLE alg;
    if (BCryptOpenAlgorithmProvider(&alg, BCRYPT_SHA1_ALGORITHM, NULL, 0) != 0) return 0;
    NTSTATUS st = BCryptHash(alg, NULL, 0, (PUCHAR)data, (ULONG)len, md, 20);
    BCryptCloseAlgorithmProvider(alg, 0);
    if (st != 0) return 0;
    if (mdlen) *mdlen = 20;
    return 1;
}
