/* jwt.c: signed tokens (JWT, RFC 7519, HS256 only) and the secret file.
 *
 * HMAC-SHA256 is OpenSSL's; JSON is jansson's; this file only decides.
 * What is refused, and why:
 *   - any alg but exactly "HS256": "none" (unsigned tokens) and the
 *     asymmetric ones (RS/ES/PS), which a careless verifier would check
 *     with the HMAC secret as "public key" (the HS/RS confusion attack);
 *   - a header with "crit" (extensions we do not understand);
 *   - a signature that is not 32 bytes or differs (CRYPTO_memcmp, constant
 *     time), checked before a byte of the claims is parsed;
 *   - more than AUTH_MAX_TOKEN bytes, not three non-empty base64url parts,
 *     padding or stray characters, duplicate JSON keys (two readers could
 *     see two different claims);
 *   - exp missing or passed, nbf in the future (each with the leeway),
 *     sub missing or not a usable name, a filter that is not one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"

/* ---- base64 -------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_val(char c, bool url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

long auth_b64_decode(const char *in, size_t len, bool url, uint8_t *out, size_t cap)
{
    if (!url) { /* standard: whole quads, up to two '=' at the end */
        if (len % 4) return -1;
        size_t pad = 0;
        while (pad < 2 && len > 0 && in[len - 1] == '=') {
            len--;
            pad++;
        }
        if (pad && len % 4 == 0) return -1;
    }
    if (len % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(in[i], url);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) return -1;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -1; /* non-zero leftover bits: not canonical */
    return (long)o;
}

size_t auth_b64_encode(const uint8_t *in, size_t len, bool url, char *out, size_t cap)
{
    const char *t = url ? B64URL : B64;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        size_t n = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < 4; k++) {
            if (o + 1 >= cap) return 0;
            if (k < n)
                out[o++] = t[(v >> (18 - 6 * k)) & 63];
            else if (!url)
                out[o++] = '=';
        }
    }
    if (o >= cap) return 0;
    out[o] = '\0';
    return o;
}

/* ---- the secret --------------------------------------------------------------- */

int auth_secret_load(const char *path, auth_secret *s, char *why, size_t why_len)
{
    size_t len;
    char err[256];
    char *buf = auth_read_file(path, AUTH_MAX_SECRET, &len, err, sizeof err);
    s->key = NULL;
    s->len = 0;
    if (!buf) {
        snprintf(why, why_len, "auth secret: %s", err);
        return -1;
    }
    if (len > 0 && buf[len - 1] == '\n') len--;
    if (len > 0 && buf[len - 1] == '\r') len--;
    if (len < AUTH_MIN_SECRET) {
        snprintf(why, why_len,
                 "auth secret %s is %s (%zu bytes); HS256 needs at least %d random bytes "
                 "(make one: head -c 48 /dev/urandom | base64 > %s; chmod 600 %s)",
                 path, len ? "too short" : "empty", len, AUTH_MIN_SECRET, path, path);
        OPENSSL_cleanse(buf, len);
        ax_free(buf);
        return -1;
    }
    s->key = (uint8_t *)buf;
    s->len = len;
    return 0;
}

void auth_secret_free(auth_secret *s)
{
    if (s->key) OPENSSL_cleanse(s->key, s->len);
    ax_free(s->key);
    s->key = NULL;
    s->len = 0;
}

/* ---- verify ------------------------------------------------------------------- */

void auth_claims_free(auth_claims *c)
{
    for (int i = 0; i < c->npub; i++)
        ax_free(c->pub[i]);
    for (int i = 0; i < c->nsub; i++)
        ax_free(c->subf[i]);
    for (int i = 0; i < c->nop; i++)
        ax_free(c->op[i]);
    c->npub = c->nsub = c->nop = 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        goto fail;                                                                                 \
    } while (0)

/* A base64url part decoded and parsed as a JSON object. */
static json_t *part_json(const char *p, size_t n, uint8_t *scratch, size_t cap)
{
    long l = auth_b64_decode(p, n, true, scratch, cap);
    if (l <= 0) return NULL;
    json_t *j = json_loadb((const char *)scratch, (size_t)l, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int check_header(json_t *h, char *why, size_t why_len)
{
    json_t *alg = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
    if (!json_is_string(alg)) FAIL("token header has no alg");
    const char *a = json_string_value(alg);
    if (strcmp(a, "HS256") != 0) {
        if (strcasecmp(a, "none") == 0) FAIL("unsigned token (alg none) refused");
        FAIL("token algorithm '%.16s' refused (only HS256)", a);
    }
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        FAIL("token type is not JWT");
    if (json_object_get(h, "crit")) FAIL("token header has critical extensions");
    return 0;
fail:
    return -1;
}

static bool time_claim(json_t *c, const char *name, int64_t *out)
{
    json_t *v = json_object_get(c, name);
    if (!v) return true;
    if (json_is_integer(v))
        *out = (int64_t)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1e15)
        *out = (int64_t)json_real_value(v);
    else
        return false;
    return *out > 0;
}

/* The filters in claims.axon[key], %u replaced by the subject. */
static int claim_filters(json_t *axon, const char *key, const char *user, char **out, int *n,
                         char *why, size_t why_len)
{
    json_t *arr = json_object_get(axon, key), *v;
    size_t i;
    if (!arr) return 0;
    if (!json_is_array(arr)) FAIL("token claim axon.%s is not a list", key);
    if (json_array_size(arr) > AUTH_MAX_FILTERS)
        FAIL("token claim axon.%s has more than %d filters", key, AUTH_MAX_FILTERS);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v)) FAIL("token claim axon.%s holds a non-string", key);
        /* Checked through a scratch identity: the same substitution rules
         * as ACL patterns. */
        auth_identity *id = auth_identity_new(user, false);
        if (!id) FAIL("out of memory");
        int rc = auth_identity_add(id, json_string_value(v), AUTH_READ, false, NULL);
        if (rc != 0 || id->nrules != 1) {
            auth_identity_free(id);
            FAIL("token claim axon.%s: '%.80s' is not a valid topic filter", key,
                 json_string_value(v));
        }
        out[(*n)++] = id->rules[0].filter;
        id->rules[0].filter = NULL;
        id->nrules = 0;
        auth_identity_free(id);
    }
    return 0;
fail:
    return -1;
}

static int check_claims(json_t *j, int64_t now, int leeway, auth_claims *c, char *why,
                        size_t why_len)
{
    json_t *sub = json_object_get(j, "sub"), *axon = json_object_get(j, "axon");
    if (!json_is_string(sub)) FAIL("token has no subject (sub)");
    if (!auth_name_valid(json_string_value(sub)))
        FAIL("token subject is not a usable name (1-%d bytes, no '/', '+', '#', '%%')",
             AUTH_MAX_NAME);
    snprintf(c->sub, sizeof c->sub, "%s", json_string_value(sub));
    if (!json_object_get(j, "exp")) FAIL("token has no expiry (exp)");
    if (!time_claim(j, "exp", &c->exp) || !time_claim(j, "nbf", &c->nbf))
        FAIL("token exp/nbf is not a time");
    if (now - leeway >= c->exp) FAIL("token expired %lld s ago", (long long)(now - c->exp));
    if (c->nbf && now + leeway < c->nbf)
        FAIL("token not valid for another %lld s (nbf)", (long long)(c->nbf - now));
    if (axon && !json_is_object(axon)) FAIL("token claim axon is not an object");
    if (axon) {
        json_t *adm = json_object_get(axon, "admin");
        if (adm && !json_is_boolean(adm)) FAIL("token claim axon.admin is not true/false");
        c->admin = json_is_true(adm);
        if (claim_filters(axon, "pub", c->sub, c->pub, &c->npub, why, why_len) != 0 ||
            claim_filters(axon, "sub", c->sub, c->subf, &c->nsub, why, why_len) != 0 ||
            claim_filters(axon, "op", c->sub, c->op, &c->nop, why, why_len) != 0)
            return -1;
    }
    return 0;
fail:
    return -1;
}

int auth_jwt_verify(const auth_secret *s, const char *tok, size_t len, int64_t now, int leeway_s,
                    auth_claims *c, char *why, size_t why_len)
{
    memset(c, 0, sizeof(*c));
    json_t *hdr = NULL, *body = NULL;
    uint8_t *scratch = NULL;
    if (len == 0) FAIL("empty token");
    if (len > AUTH_MAX_TOKEN) FAIL("token too long (%zu bytes; at most %d)", len, AUTH_MAX_TOKEN);
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        FAIL("malformed token (not three dot-separated parts)");
    size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - tok);
    if (!hl || !pl) FAIL("malformed token (an empty part)");
    if (!(scratch = ax_malloc(len + 1))) FAIL("out of memory");
    if (!(hdr = part_json(tok, hl, scratch, len))) FAIL("malformed token header");
    if (check_header(hdr, why, why_len) != 0) goto fail;
    if (!sl) FAIL("malformed token (no signature)");
    uint8_t sig[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (auth_b64_decode(d2 + 1, sl, true, sig, sizeof sig) != 32) FAIL("malformed token signature");
    if (!HMAC(EVP_sha256(), s->key, (int)s->len, (const uint8_t *)tok, hl + 1 + pl, mac, &ml) ||
        ml != 32)
        FAIL("cannot compute HMAC");
    if (CRYPTO_memcmp(sig, mac, 32) != 0) FAIL("bad token signature");
    if (!(body = part_json(d1 + 1, pl, scratch, len))) FAIL("malformed token claims");
    if (check_claims(body, now, leeway_s, c, why, why_len) != 0) goto fail;
    json_decref(hdr);
    json_decref(body);
    ax_free(scratch);
    return 0;
fail:
    auth_claims_free(c);
    json_decref(hdr);
    json_decref(body);
    ax_free(scratch);
    return -1;
}

/* ---- sign ---------------------------------------------------------------------- */

static json_t *claims_json(const auth_claims *c, int64_t iat)
{
    json_t *j = json_object(), *axon = json_object(), *pub = json_array(), *sub = json_array();
    if (!j || !axon || !pub || !sub) goto fail;
    for (int i = 0; i < c->npub; i++)
        json_array_append_new(pub, json_string(c->pub[i]));
    for (int i = 0; i < c->nsub; i++)
        json_array_append_new(sub, json_string(c->subf[i]));
    json_object_set_new(axon, "pub", pub);
    json_object_set_new(axon, "sub", sub);
    if (c->admin) json_object_set_new(axon, "admin", json_true());
    if (c->nop) {
        json_t *op = json_array();
        for (int i = 0; op && i < c->nop; i++)
            json_array_append_new(op, json_string(c->op[i]));
        if (op) json_object_set_new(axon, "op", op);
    }
    json_object_set_new(j, "sub", json_string(c->sub));
    if (iat) json_object_set_new(j, "iat", json_integer(iat));
    if (c->nbf) json_object_set_new(j, "nbf", json_integer(c->nbf));
    if (c->exp) json_object_set_new(j, "exp", json_integer(c->exp));
    json_object_set_new(j, "axon", axon);
    return j;
fail:
    json_decref(j);
    json_decref(axon);
    json_decref(pub);
    json_decref(sub);
    return NULL;
}

char *auth_jwt_sign(const auth_secret *s, const auth_claims *c, int64_t iat, char *why,
                    size_t why_len)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *out = NULL, *body = NULL;
    json_t *j = claims_json(c, iat);
    if (!j || !(body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER))) FAIL("out of memory");
    size_t bl = strlen(body), cap = 4 * (sizeof hdr + bl + 32) / 3 + 16;
    if (!(out = ax_malloc(cap))) FAIL("out of memory");
    size_t o = auth_b64_encode((const uint8_t *)hdr, sizeof hdr - 1, true, out, cap);
    out[o++] = '.';
    o += auth_b64_encode((const uint8_t *)body, bl, true, out + o, cap - o);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), s->key, (int)s->len, (const uint8_t *)out, o, mac, &ml))
        FAIL("cannot compute HMAC");
    out[o++] = '.';
    o += auth_b64_encode(mac, ml, true, out + o, cap - o);
    if (o > AUTH_MAX_TOKEN) FAIL("token too long (%zu bytes; at most %d)", o, AUTH_MAX_TOKEN);
    free(body);
    json_decref(j);
    return out;
fail:
    ax_free(out);
    free(body);
    json_decref(j);
    return NULL;
}
