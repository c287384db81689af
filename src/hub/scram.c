/* scram.c: the server side of SCRAM-SHA-512 (RFC 5802's exchange with
 * SHA-512) against the password file (auth.h).
 *
 *   client-first  n,,n=USER,r=CNONCE
 *   server-first  r=CNONCE+SNONCE,s=SALT,i=ITERATIONS
 *   client-final  c=biws,r=CNONCE+SNONCE,p=PROOF
 *   server-final  v=SERVER-SIGNATURE
 *
 * With SaltedPassword the password file's $7$ hash:
 *   ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey)
 *   AuthMessage = client-first-bare "," server-first "," client-final
 *                 without ",p=..."
 *   the proof is ClientKey XOR HMAC(StoredKey, AuthMessage): the server
 *   takes the signature off and checks H(what is left) == StoredKey;
 *   ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage).
 * Every comparison of secrets is in constant time, and every secret is
 * wiped when the exchange ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <axon/axon.h>

#include "hub/auth.h"

#define H_LEN 64 /* SHA-512 */
#define NONCE_B64 24

struct auth_scram {
    char user[AUTH_MAX_NAME + 1];
    bool known;  /* the user has a $7$ entry */
    char gs2[8]; /* the client's gs2 header ("n,," or "y,,") */
    char nonce[2 * AUTH_SCRAM_MAX];
    char first_bare[AUTH_SCRAM_MAX + 1];
    char server_first[AUTH_SCRAM_MAX + 1];
    uint8_t salted[AUTH_SCRAM_KEY];
};

static void hmac(const uint8_t *key, size_t kl, const void *msg, size_t ml, uint8_t out[H_LEN])
{
    unsigned n = 0;
    HMAC(EVP_sha512(), key, (int)kl, msg, ml, out, &n);
}

/* A SCRAM attribute "K=value" at p (up to end or ','): the value and its
 * length, or NULL. */
static const char *attr(const char *p, const char *end, char k, size_t *len)
{
    if (end - p < 2 || p[0] != k || p[1] != '=') return NULL;
    const char *v = p + 2, *c = memchr(v, ',', (size_t)(end - v));
    *len = (size_t)((c ? c : end) - v);
    return v;
}

/* saslname (RFC 5802 5.1: "=2C" is ',', "=3D" is '='; no other '=') to a
 * user name; false when malformed or too long. */
static bool sasl_name(const char *v, size_t n, char out[AUTH_MAX_NAME + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '=') {
            if (n - i < 3) return false;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                ch = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                ch = '=';
            else
                return false;
            i += 2;
        }
        if (ch == '\0' || o == AUTH_MAX_NAME) return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return o > 0;
}

static bool printable_nonce(const char *v, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',') return false;
    return true;
}

auth_scram *auth_scram_start(const auth *a, const void *client_first, size_t n,
                             char out[AUTH_SCRAM_MAX], size_t *out_len, const char **why)
{
    const auth_passwd *pw = auth_passwds(a);
    const char *m = client_first, *end = m + n;
    *why = "malformed SCRAM client-first message";
    if (!pw) {
        *why = "password logins are not enabled (no password file)";
        return NULL;
    }
    if (n < 8 || n > AUTH_SCRAM_MAX || memchr(m, '\0', n)) return NULL;
    /* gs2-header: "n,," or "y,," (no channel binding; no authzid) */
    if ((m[0] != 'n' && m[0] != 'y') || m[1] != ',') {
        if (m[0] == 'p') *why = "SCRAM channel binding is not offered";
        return NULL;
    }
    if (m[2] != ',') {
        *why = "SCRAM authorization identities are not taken";
        return NULL;
    }
    const char *bare = m + 3;
    size_t ul, nl;
    const char *u = attr(bare, end, 'n', &ul);
    if (!u) return NULL;
    const char *r = u + ul < end ? attr(u + ul + 1, end, 'r', &nl) : NULL;
    if (!r || !printable_nonce(r, nl) || nl > 128) return NULL;
    auth_scram *s = ax_calloc(1, sizeof(*s));
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    if (!sasl_name(u, ul, s->user) || !auth_name_valid(s->user)) {
        auth_scram_free(s);
        return NULL;
    }
    memcpy(s->gs2, m, 3);
    memcpy(s->first_bare, bare, (size_t)(end - bare));
    uint8_t rnd[18], salt[64];
    char salt64[90], snonce[NONCE_B64 + 1];
    size_t sl = 0;
    uint32_t iter = 0;
    s->known = auth_passwd_scram(pw, s->user, salt, &sl, &iter, s->salted);
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        *why = "no random bytes";
        auth_scram_free(s);
        return NULL;
    }
    auth_b64_encode(rnd, sizeof rnd, false, snonce, sizeof snonce);
    auth_b64_encode(salt, sl, false, salt64, sizeof salt64);
    snprintf(s->nonce, sizeof s->nonce, "%.*s%s", (int)nl, r, snonce);
    int k =
        snprintf(s->server_first, sizeof s->server_first, "r=%s,s=%s,i=%u", s->nonce, salt64, iter);
    if (k < 0 || (size_t)k >= AUTH_SCRAM_MAX) {
        auth_scram_free(s);
        return NULL;
    }
    memcpy(out, s->server_first, (size_t)k);
    *out_len = (size_t)k;
    *why = NULL;
    return s;
}

auth_identity *auth_scram_finish(auth_scram *s, const auth *a, const void *client_final, size_t n,
                                 const char *client_id, char out[AUTH_SCRAM_MAX], size_t *out_len,
                                 const char **why)
{
    const char *m = client_final, *end = m + n;
    *why = "malformed SCRAM client-final message";
    if (n > AUTH_SCRAM_MAX || memchr(m, '\0', n)) return NULL;
    /* c=base64(gs2 header), r=nonce, [extensions,] p=proof (last) */
    size_t cl, rl, pl;
    const char *c = attr(m, end, 'c', &cl);
    char want_c[16];
    auth_b64_encode((const uint8_t *)s->gs2, 3, false, want_c, sizeof want_c);
    if (!c || cl != strlen(want_c) || memcmp(c, want_c, cl) != 0) {
        if (c) *why = "SCRAM channel binding does not match the first message";
        return NULL;
    }
    const char *r = c + cl < end ? attr(c + cl + 1, end, 'r', &rl) : NULL;
    if (!r || rl != strlen(s->nonce) || memcmp(r, s->nonce, rl) != 0) {
        if (r) *why = "SCRAM nonce does not match";
        return NULL;
    }
    const char *pp = NULL;
    for (const char *q = m; q + 3 <= end; q++) /* the last ",p=" */
        if (q[0] == ',' && q[1] == 'p' && q[2] == '=') pp = q;
    if (!pp || pp < r + rl) return NULL;
    const char *p = attr(pp + 1, end, 'p', &pl);
    uint8_t proof[H_LEN + 3];
    if (!p || p + pl != end || auth_b64_decode(p, pl, false, proof, sizeof proof) != H_LEN)
        return NULL;
    /* AuthMessage */
    char am[3 * AUTH_SCRAM_MAX + 4];
    int al =
        snprintf(am, sizeof am, "%s,%s,%.*s", s->first_bare, s->server_first, (int)(pp - m), m);
    if (al < 0 || (size_t)al >= sizeof am) return NULL;
    uint8_t ckey[H_LEN], skey[H_LEN], stored[H_LEN], sig[H_LEN], got[H_LEN], ssig[H_LEN];
    unsigned hl = 0;
    hmac(s->salted, sizeof s->salted, "Client Key", 10, ckey);
    EVP_Digest(ckey, H_LEN, stored, &hl, EVP_sha512(), NULL);
    hmac(stored, H_LEN, am, (size_t)al, sig);
    for (int i = 0; i < H_LEN; i++)
        got[i] = proof[i] ^ sig[i];
    EVP_Digest(got, H_LEN, got, &hl, EVP_sha512(), NULL);
    bool ok = CRYPTO_memcmp(got, stored, H_LEN) == 0 && s->known;
    auth_identity *id = NULL;
    if (ok) {
        hmac(s->salted, sizeof s->salted, "Server Key", 10, skey);
        hmac(skey, H_LEN, am, (size_t)al, ssig);
        char v[96];
        auth_b64_encode(ssig, H_LEN, false, v, sizeof v);
        *out_len = (size_t)snprintf(out, AUTH_SCRAM_MAX, "v=%s", v);
        static __thread char reason[128]; /* (MQTT over WebSocket: every thread) */
        id = auth_user(a, s->user, client_id, reason, sizeof reason);
        *why = id ? NULL : reason;
    } else {
        *why = "bad user name or password";
    }
    OPENSSL_cleanse(ckey, sizeof ckey);
    OPENSSL_cleanse(skey, sizeof skey);
    OPENSSL_cleanse(stored, sizeof stored);
    OPENSSL_cleanse(got, sizeof got);
    return id;
}

const char *auth_scram_user(const auth_scram *s)
{
    return s ? s->user : "";
}

void auth_scram_free(auth_scram *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, sizeof(*s));
    ax_free(s);
}
