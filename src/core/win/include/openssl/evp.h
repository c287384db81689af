/* openssl/evp.h on Windows: SHA-1 for the WebSocket handshake
 * (Sec-WebSocket-Accept), on BCrypt (src/core/win/crypto.c). */
#ifndef AXON_WIN_OPENSSL_EVP_H
#define AXON_WIN_OPENSSL_EVP_H
#include <stddef.h>
#define EVP_MAX_MD_SIZE 64
typedef struct ax__win_md EVP_MD;
typedef struct ax__win_engine ENGINE;
const EVP_MD *ax__win_sha1(void);
int ax__win_digest(const void *data, size_t len, unsigned char *md, unsigned int *mdlen,
                   const EVP_MD *type, ENGINE *impl);
#define EVP_sha1 ax__win_sha1
#define EVP_Digest ax__win_digest
#endif
