/* passwd.c: password files in mosquitto_passwd's format, so an operator's
 * existing mosquitto files work unchanged:
 *
 *   user:$7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 (mosquitto 2.x default)
 *   user:$6$SALT$HASH              SHA-512(password || salt) (mosquitto 1.x)
 *
 * SALT and HASH are standard base64 of the raw bytes (HASH: 64 bytes).
 * Clear-text entries (never run through mosquitto_passwd -U) are refused.
 * Only hashes are kept; a password is hashed, compared in constant time,
 * and the digest wiped.  Users are kept sorted for a binary search; an
 * unknown user is hashed against a dummy entry so that the answer takes
 * as long as for a known one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <axon/axon.h>

#include "hub/auth.h"

#define HASH_LEN 64
#define MAX_SALT 64
#define MAX_ITER 10000000

typedef struct pw_entry {
    char *user;
    uint8_t kind; /* 6 or 7 */
    uint32_t iter;
    uint8_t salt[MAX_SALT];
    uint8_t salt_len;
    uint8_t hash[HASH_LEN];
} pw_entry;

struct auth_passwd {
    pw_entry *e;
    int n, cap;
    pw_entry dummy;
    uint8_t fake[32]; /* the key of made-up SCRAM salts (auth_passwd_scram) */
};

void auth_passwd_free(auth_passwd *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++)
        ax_free(p->e[i].user);
    OPENSSL_cleanse(p->e, (size_t)p->cap * sizeof(*p->e));
    ax_free(p->e);
    ax_free(p);
}

int auth_passwd_count(const auth_passwd *p)
{
    return p ? p->n : 0;
}

/* `$6$SALT$HASH` or `$7$ITER$SALT$HASH` (NUL-terminated) into *e, or a
 * reason. */
static const char *parse_hash(char *h, pw_entry *e)
{
    if (h[0] != '$' || (h[1] != '6' && h[1] != '7') || h[2] != '$')
        return "not a mosquitto_passwd hash ($6$ or $7$); clear-text passwords are refused "
               "(hash them: mosquitto_passwd -U FILE)";
    e->kind = (uint8_t)(h[1] - '0');
    char *p = h + 3;
    e->iter = 1;
    if (e->kind == 7) {
        char *end;
        unsigned long it = strtoul(p, &end, 10);
        if (p[0] < '0' || p[0] > '9' || *end != '$' || it < 1 || it > MAX_ITER)
            return "bad iteration count";
        e->iter = (uint32_t)it;
        p = end + 1;
    }
    char *d = strchr(p, '$');
    if (!d) return "missing hash after the salt";
    long sl = auth_b64_decode(p, (size_t)(d - p), false, e->salt, sizeof e->salt);
    if (sl < 1) return "bad salt (base64)";
    e->salt_len = (uint8_t)sl;
    if (auth_b64_decode(d + 1, strlen(d + 1), false, e->hash, HASH_LEN + 1) != HASH_LEN)
        return "bad hash (64 bytes of base64)";
    return NULL;
}

static int by_user(const void *a, const void *b)
{
    return strcmp(((const pw_entry *)a)->user, ((const pw_entry *)b)->user);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        goto fail;                                                                                 \
    } while (0)

/* One non-comment line (NUL-terminated, in place). */
static int parse_line(auth_passwd *p, char *line, const char *name, int ln, char *why,
                      size_t why_len)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line) FAIL("%s:%d: expected USER:HASH", name, ln);
    *colon = '\0';
    if (!auth_name_valid(line))
        FAIL("%s:%d: user name not usable (1-%d bytes, no '/', '+', '#', '%%')", name, ln,
             AUTH_MAX_NAME);
    if (p->n == AUTH_MAX_ENTRIES) FAIL("%s:%d: more than %d users", name, ln, AUTH_MAX_ENTRIES);
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        pw_entry *ne = ax_realloc(p->e, (size_t)cap * sizeof(*ne));
        if (!ne) FAIL("out of memory");
        p->e = ne;
        p->cap = cap;
    }
    pw_entry *e = &p->e[p->n];
    memset(e, 0, sizeof(*e));
    const char *err = parse_hash(colon + 1, e);
    if (err) FAIL("%s:%d: user '%s': %s", name, ln, line, err);
    size_t ul = strlen(line);
    if (!(e->user = ax_malloc(ul + 1))) FAIL("out of memory");
    memcpy(e->user, line, ul + 1);
    p->n++;
    return 0;
fail:
    return -1;
}

auth_passwd *auth_passwd_parse(const char *buf, size_t len, const char *name, char *why,
                               size_t why_len)
{
    auth_passwd *p = ax_calloc(1, sizeof(*p));
    if (!p) FAIL("out of memory");
    char line[AUTH_MAX_LINE + 1];
    int ln = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - (buf + i)) : len - i;
        ln++;
        if (ll > AUTH_MAX_LINE) FAIL("%s:%d: line longer than %d bytes", name, ln, AUTH_MAX_LINE);
        memcpy(line, buf + i, ll);
        line[ll] = '\0';
        i += ll + 1;
        if (memchr(line, '\0', ll)) FAIL("%s:%d: NUL byte in line", name, ln);
        while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
            line[--ll] = '\0';
        if (ll == 0 || line[0] == '#') continue;
        if (parse_line(p, line, name, ln, why, why_len) != 0) goto fail;
    }
    OPENSSL_cleanse(line, sizeof line);
    if (p->n > 1) qsort(p->e, (size_t)p->n, sizeof(*p->e), by_user);
    for (int k = 1; k < p->n; k++)
        if (strcmp(p->e[k - 1].user, p->e[k].user) == 0)
            FAIL("%s: user '%s' appears twice", name, p->e[k].user);
    p->dummy.kind = p->n ? p->e[0].kind : 7;
    p->dummy.iter = p->n ? p->e[0].iter : 101;
    p->dummy.salt_len = 12;
    if (RAND_bytes(p->fake, sizeof p->fake) != 1) FAIL("no random bytes for the password file");
    return p;
fail:
    auth_passwd_free(p);
    return NULL;
}

auth_passwd *auth_passwd_load(const char *path, char *why, size_t why_len)
{
    size_t len;
    char *buf = auth_read_file(path, (size_t)AUTH_MAX_ENTRIES * 256, &len, why, why_len);
    if (!buf) return NULL;
    auth_passwd *p = auth_passwd_parse(buf, len, path, why, why_len);
    OPENSSL_cleanse(buf, len);
    ax_free(buf);
    return p;
}

static bool digest(const pw_entry *e, const char *pw, uint8_t out[HASH_LEN])
{
    size_t pl = strlen(pw);
    if (e->kind == 7)
        return PKCS5_PBKDF2_HMAC(pw, (int)pl, e->salt, e->salt_len, (int)e->iter, EVP_sha512(),
                                 HASH_LEN, out) == 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int ol = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, pw, pl) == 1 &&
              EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
              EVP_DigestFinal_ex(ctx, out, &ol) == 1 && ol == HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok;
}

bool auth_passwd_check(const auth_passwd *p, const char *user, const char *password)
{
    if (!p || !user || !password) return false;
    pw_entry key = {.user = (char *)user};
    const pw_entry *e = p->n ? bsearch(&key, p->e, (size_t)p->n, sizeof(*p->e), by_user) : NULL;
    uint8_t d[HASH_LEN];
    bool ok = digest(e ? e : &p->dummy, password, d) &&
              CRYPTO_memcmp(d, (e ? e : &p->dummy)->hash, HASH_LEN) == 0;
    OPENSSL_cleanse(d, sizeof d);
    return ok && e != NULL;
}

bool auth_passwd_has(const auth_passwd *p, const char *user)
{
    pw_entry k = {.user = (char *)user};
    return p && p->n && user && bsearch(&k, p->e, (size_t)p->n, sizeof(*p->e), by_user);
}

bool auth_passwd_scram(const auth_passwd *p, const char *user, uint8_t *salt, size_t *salt_len,
                       uint32_t *iter, uint8_t key[AUTH_SCRAM_KEY])
{
    pw_entry k = {.user = (char *)user};
    const pw_entry *e = p && p->n ? bsearch(&k, p->e, (size_t)p->n, sizeof(*p->e), by_user) : NULL;
    if (e && e->kind == 7) {
        memcpy(salt, e->salt, e->salt_len);
        *salt_len = e->salt_len;
        *iter = e->iter;
        memcpy(key, e->hash, AUTH_SCRAM_KEY);
        return true;
    }
    /* Unknown, or a $6$ hash SCRAM cannot use: a salt made up from the
     * name (the same each time, so it does not give the user away) and a
     * key nobody has. */
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned ml = 0;
    HMAC(EVP_sha512(), p ? p->fake : (const uint8_t *)"", p ? (int)sizeof p->fake : 0,
         (const uint8_t *)user, strlen(user), mac, &ml);
    memcpy(salt, mac, 12);
    *salt_len = 12;
    *iter = p && p->n ? p->e[0].iter : 101;
    RAND_bytes(key, AUTH_SCRAM_KEY);
    return false;
}
