/* openssl/rand.h on Windows: the one call the WebSocket code makes, on the
 * system's generator (BCryptGenRandom, src/core/win/crypto.c). */
#ifndef AXON_WIN_OPENSSL_RAND_H
#define AXON_WIN_OPENSSL_RAND_H
int ax__win_rand_bytes(unsigned char *buf, int n);
#define RAND_bytes ax__win_rand_bytes
#endif
