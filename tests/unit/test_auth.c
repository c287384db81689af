/* test_auth.c: the authentication and permission engine (src/hub/auth.h):
 * tokens (every refusal, leeway, %u), the secret file, mosquitto password
 * files (fixed vectors made by mosquitto_passwd 2.0.11), ACL files, and
 * filter-against-permission matching with wildcards, $-topics, private
 * user/ topics and %u. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"
#include "runner.h"
#include "testutil.h"

#define NOW 1800000000LL
#define KEY "0123456789abcdef0123456789abcdef-test-key"

static const auth_secret SECRET = {(uint8_t *)KEY, sizeof KEY - 1};

/* A token from raw JSON parts, signed with HMAC-SHA256 under `key` (NULL:
 * an empty signature).  The caller frees it. */
static char *raw_token(const char *hdr, const char *body, const char *key)
{
    size_t cap = 4 * (strlen(hdr) + strlen(body)) + 128;
    char *t = malloc(cap);
    size_t o = auth_b64_encode((const uint8_t *)hdr, strlen(hdr), true, t, cap);
    t[o++] = '.';
    o += auth_b64_encode((const uint8_t *)body, strlen(body), true, t + o, cap - o);
    uint8_t mac[32];
    unsigned int ml = 0;
    if (key) HMAC(EVP_sha256(), key, (int)strlen(key), (const uint8_t *)t, o, mac, &ml);
    t[o++] = '.';
    t[o] = '\0';
    if (key) auth_b64_encode(mac, ml, true, t + o, cap - o);
    return t;
}

static const char *HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verify and return 0/-1, leaving the reason in `why`. */
static int verify(const char *tok, char *why, size_t wl, auth_claims *c)
{
    int rc = auth_jwt_verify(&SECRET, tok, strlen(tok), NOW, 30, c, why, wl);
    if (rc == 0) auth_claims_free(c);
    return rc;
}

/* The body signed under the test key with `hdr` must be refused with a
 * reason containing `want`. */
#define REFUSED(hdr, body, key, want)                                                              \
    do {                                                                                           \
        char *t_ = raw_token((hdr), (body), (key));                                                \
        char w_[256] = "";                                                                         \
        auth_claims c_;                                                                            \
        ASSERT_EQ(verify(t_, w_, sizeof w_, &c_), -1);                                             \
        if (!strstr(w_, (want))) fprintf(stderr, "# why: %s\n", w_);                               \
        ASSERT(strstr(w_, (want)) != NULL);                                                        \
        free(t_);                                                                                  \
    } while (0)

static const char *GOOD = "{\"sub\":\"alice\",\"exp\":1800000600,"
                          "\"axon\":{\"pub\":[\"chat/lobby\"],\"sub\":[\"chat/#\",\"dm/%u/#\"]}}";

TEST(auth_token_valid)
{
    char *t = raw_token(HS, GOOD, KEY), why[256] = "";
    auth_claims c;
    ASSERT_EQ(auth_jwt_verify(&SECRET, t, strlen(t), NOW, 30, &c, why, sizeof why), 0);
    ASSERT_STREQ(c.sub, "alice");
    ASSERT_EQ(c.exp, 1800000600);
    ASSERT_EQ(c.npub, 1);
    ASSERT_EQ(c.nsub, 2);
    ASSERT_STREQ(c.subf[1], "dm/alice/#"); /* %u */
    auth_claims_free(&c);
    free(t);
    /* without "typ", and the same claims signed by auth_jwt_sign */
    t = raw_token("{\"alg\":\"HS256\"}", GOOD, KEY);
    ASSERT_EQ(verify(t, why, sizeof why, &c), 0);
    free(t);
    auth_claims in = {.sub = "bob", .exp = NOW + 60, .npub = 1, .pub = {(char *)"a/%u"}};
    char *s = auth_jwt_sign(&SECRET, &in, NOW, why, sizeof why);
    ASSERT(s != NULL);
    ASSERT_EQ(auth_jwt_verify(&SECRET, s, strlen(s), NOW, 0, &c, why, sizeof why), 0);
    ASSERT_STREQ(c.sub, "bob");
    ASSERT_STREQ(c.pub[0], "a/bob");
    auth_claims_free(&c);
    ax_free(s);
}

TEST(auth_token_refusals)
{
    /* bad signature: another key, a flipped byte */
    REFUSED(HS, GOOD, "another-key-another-key-another-key!", "bad token signature");
    char *t = raw_token(HS, GOOD, KEY), why[256];
    auth_claims c;
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    ASSERT_EQ(verify(t, why, sizeof why, &c), -1);
    ASSERT(strstr(why, "signature") != NULL);
    /* a changed claim with the old signature */
    char *u = raw_token(HS, "{\"sub\":\"mallory\",\"exp\":1800000600}", KEY);
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.'), *e1 = strchr(u, '.'), *e2 = strrchr(u, '.');
    char mix[2048];
    snprintf(mix, sizeof mix, "%.*s%.*s%s", (int)(d1 - t), t, (int)(e2 - e1), e1, d2);
    ASSERT_EQ(verify(mix, why, sizeof why, &c), -1);
    ASSERT(strstr(why, "signature") != NULL);
    free(u);
    free(t);
    /* algorithms: none (signed or not), the HS/RS confusion (an RS256 or
     * ES256 header MACed with the secret as if it were the public key),
     * case games, missing alg */
    REFUSED("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD, NULL, "alg none");
    REFUSED("{\"alg\":\"none\"}", GOOD, KEY, "alg none");
    REFUSED("{\"alg\":\"None\"}", GOOD, KEY, "alg none");
    REFUSED("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD, KEY, "'RS256' refused");
    REFUSED("{\"alg\":\"ES256\"}", GOOD, KEY, "'ES256' refused");
    REFUSED("{\"alg\":\"HS512\"}", GOOD, KEY, "'HS512' refused");
    REFUSED("{\"alg\":\"hs256\"}", GOOD, KEY, "refused");
    REFUSED("{\"typ\":\"JWT\"}", GOOD, KEY, "no alg");
    REFUSED("{\"alg\":[\"HS256\"]}", GOOD, KEY, "no alg");
    REFUSED("{\"alg\":\"HS256\",\"crit\":[\"x\"]}", GOOD, KEY, "critical");
    REFUSED("{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", GOOD, KEY, "type");
    REFUSED("{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD, KEY, "header"); /* duplicate key */
    REFUSED("[\"HS256\"]", GOOD, KEY, "header");
    /* time: expired, expired within the leeway, not yet valid */
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1799999000}", KEY, "expired");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1799999970}", KEY, "expired"); /* exactly at leeway */
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":1800000100}", KEY, "not valid");
    REFUSED(HS, "{\"sub\":\"a\"}", KEY, "no expiry");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":\"tomorrow\"}", KEY, "not a time");
    /* claims */
    REFUSED(HS, "{\"exp\":1800000600}", KEY, "no subject");
    REFUSED(HS, "{\"sub\":\"\",\"exp\":1800000600}", KEY, "not a usable name");
    REFUSED(HS, "{\"sub\":\"a/b\",\"exp\":1800000600}", KEY, "not a usable name");
    REFUSED(HS, "{\"sub\":\"#\",\"exp\":1800000600}", KEY, "not a usable name");
    REFUSED(HS, "{\"sub\":7,\"exp\":1800000600}", KEY, "no subject");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"sub\":\"b\"}", KEY, "claims");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"pub\":[\"a/#/b\"]}}", KEY,
            "not a valid topic filter");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"sub\":[\"a+\"]}}", KEY,
            "not a valid topic filter");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"sub\":[\"x%u\"]}}", KEY,
            "not a valid topic filter");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"sub\":\"#\"}}", KEY, "not a list");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"sub\":[1]}}", KEY, "non-string");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":[]}", KEY, "not an object");
    REFUSED(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"axon\":{\"admin\":1}}", KEY, "admin");
    REFUSED(HS, "not json", KEY, "malformed token claims");
}

TEST(auth_token_leeway)
{
    char why[256];
    auth_claims c;
    /* expired 10 s ago, nbf 10 s ahead: inside the 30 s leeway */
    char *t = raw_token(HS, "{\"sub\":\"a\",\"exp\":1799999990,\"nbf\":1800000010}", KEY);
    ASSERT_EQ(verify(t, why, sizeof why, &c), 0);
    ASSERT_EQ(auth_jwt_verify(&SECRET, t, strlen(t), NOW, 0, &c, why, sizeof why), -1);
    ASSERT(strstr(why, "expired") != NULL);
    free(t);
    t = raw_token(HS, "{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":1800000010}", KEY);
    ASSERT_EQ(auth_jwt_verify(&SECRET, t, strlen(t), NOW, 0, &c, why, sizeof why), -1);
    ASSERT(strstr(why, "not valid") != NULL);
    free(t);
}

TEST(auth_token_malformed)
{
    char why[256];
    auth_claims c;
    const char *bad[] = {"",
                         "abc",
                         "a.b",
                         "a.b.c.d",
                         "..",
                         "eyJhbGciOiJIUzI1NiJ9..sig",
                         "eyJhbGciOiJIUzI1NiJ9.e30.",
                         "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA",
                         "eyJhbGciOiJIUzI1NiJ9.e3 0.AAAA",
                         "e.e30.AAAA",
                         "!!!!.e30.AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        ASSERT_EQ(auth_jwt_verify(&SECRET, bad[i], strlen(bad[i]), NOW, 30, &c, why, sizeof why),
                  -1);
        ASSERT(why[0] != '\0');
    }
    /* a valid token with its signature cut short */
    char *t = raw_token(HS, GOOD, KEY);
    t[strlen(t) - 4] = '\0';
    ASSERT_EQ(verify(t, why, sizeof why, &c), -1);
    ASSERT(strstr(why, "signature") != NULL);
    free(t);
    /* oversized: a correctly signed token over AUTH_MAX_TOKEN is still refused */
    char body[9000];
    int o = snprintf(body, sizeof body, "{\"sub\":\"a\",\"exp\":1800000600,\"pad\":\"");
    memset(body + o, 'x', 6500);
    strcpy(body + o + 6500, "\"}");
    t = raw_token(HS, body, KEY);
    ASSERT(strlen(t) > AUTH_MAX_TOKEN);
    ASSERT_EQ(verify(t, why, sizeof why, &c), -1);
    ASSERT(strstr(why, "too long") != NULL);
    free(t);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(auth_secret_file)
{
    char p[512], why[512];
    auth_secret s;
    snprintf(p, sizeof p, "%s/secret", ax_test_tmpdir());
    write_file(p, "");
    ASSERT_EQ(auth_secret_load(p, &s, why, sizeof why), -1);
    ASSERT(strstr(why, "empty") && strstr(why, p));
    write_file(p, "0123456789012345678901234567890\n"); /* 31 bytes + newline */
    ASSERT_EQ(auth_secret_load(p, &s, why, sizeof why), -1);
    ASSERT(strstr(why, "too short") && strstr(why, "31 bytes") && strstr(why, "at least 32"));
    write_file(p, "01234567890123456789012345678901\r\n");
    ASSERT_EQ(auth_secret_load(p, &s, why, sizeof why), 0);
    ASSERT_EQ(s.len, 32);
    auth_secret_free(&s);
    ASSERT_EQ(auth_secret_load("/nonexistent/secret", &s, why, sizeof why), -1);
    ASSERT(strstr(why, "cannot open") != NULL);
}

TEST(auth_base64)
{
    uint8_t out[64];
    char enc[64];
    ASSERT_EQ(auth_b64_decode("aGk", 3, true, out, sizeof out), 2);
    ASSERT_EQ(auth_b64_decode("aGk=", 4, false, out, sizeof out), 2);
    ASSERT_EQ(auth_b64_decode("aGk=", 4, true, out, sizeof out), -1); /* no padding in url */
    ASSERT_EQ(auth_b64_decode("aGk", 3, false, out, sizeof out), -1); /* padding needed */
    ASSERT_EQ(auth_b64_decode("aGl", 3, true, out, sizeof out), -1);  /* stray low bits */
    ASSERT_EQ(auth_b64_decode("a-_A", 4, false, out, sizeof out), -1);
    ASSERT_EQ(auth_b64_decode("a+/A", 4, true, out, sizeof out), -1);
    ASSERT_EQ(auth_b64_decode("a", 1, true, out, sizeof out), -1);
    const uint8_t raw[] = {0xfb, 0xff, 0x00, 0x10};
    ASSERT(auth_b64_encode(raw, 4, true, enc, sizeof enc) == 6);
    ASSERT_STREQ(enc, "-_8AEA");
    ASSERT(auth_b64_encode(raw, 4, false, enc, sizeof enc) == 8);
    ASSERT_STREQ(enc, "+/8AEA==");
    ASSERT_EQ(auth_b64_decode(enc, 8, false, out, sizeof out), 4);
    ASSERT(memcmp(out, raw, 4) == 0);
}

/* ---- password files -------------------------------------------------------- */

/* Made with mosquitto_passwd 2.0.11: alice/secret (-H sha512-pbkdf2, the
 * default), bob/hunter2 (-H sha512), carol/pw3. */
static const char PW[] =
    "# made by mosquitto_passwd\n"
    "alice:$7$101$1b/vEW/qS0pVKQ1B$P7mUG3AAFBWWtOc7RSQKuoaGjn+38HYK7YfschmnSxabCcnIXDXbjD/"
    "KG+FA8I6leeKCkbOyFHrGpvhKhYlFvQ==\n"
    "\n"
    "bob:$6$+zW7K3e/sHO1o442$9sHElyi23MXWv04IFQHtWSNV6I2oDBj266mKqdt5blZewsPuUI7BNnl/"
    "55908J/gjIXxxcDWv3ZSeodag6jcug==\r\n"
    "carol:$7$101$1agbcDS7KzbMkoxW$IzLBLqZAf4K3TB81ThFiLlA/bObij8E2XY81njlu5D8kwIgKaRy27N0J"
    "IwExm7N7v4e4qRycVWS0NZ0KtFUhdQ==";

TEST(auth_passwd_vectors)
{
    char why[256];
    auth_passwd *p = auth_passwd_parse(PW, strlen(PW), "pw", why, sizeof why);
    ASSERT(p != NULL);
    ASSERT_EQ(auth_passwd_count(p), 3);
    ASSERT(auth_passwd_check(p, "alice", "secret"));
    ASSERT(auth_passwd_check(p, "bob", "hunter2"));
    ASSERT(auth_passwd_check(p, "carol", "pw3"));
    ASSERT(!auth_passwd_check(p, "alice", "Secret"));
    ASSERT(!auth_passwd_check(p, "alice", "secret "));
    ASSERT(!auth_passwd_check(p, "alice", ""));
    ASSERT(!auth_passwd_check(p, "bob", "secret"));
    ASSERT(!auth_passwd_check(p, "dave", "secret"));
    ASSERT(!auth_passwd_check(p, "alice", NULL));
    auth_passwd_free(p);
}

/* The file must be refused with "pw:LINE: ..." containing `want`. */
static void pw_refused(const char *text, const char *want)
{
    char why[256] = "";
    auth_passwd *p = auth_passwd_parse(text, strlen(text), "pw", why, sizeof why);
    if (p || !strstr(why, want)) fprintf(stderr, "# why: %s (wanted %s)\n", why, want);
    ASSERT(p == NULL);
    ASSERT(strstr(why, want) != NULL);
}

TEST(auth_passwd_errors)
{
    pw_refused("alice\n", "pw:1: expected USER:HASH");
    pw_refused("# c\n:$6$AAAA$x\n", "pw:2: expected USER:HASH");
    pw_refused("alice:secret\n", "pw:1: user 'alice': not a mosquitto_passwd hash");
    pw_refused("alice:$7$abc$AAAA$AAAA\n", "pw:1: user 'alice': bad iteration count");
    pw_refused("alice:$7$0$AAAA$AAAA\n", "bad iteration count");
    pw_refused("alice:$7$-5$AAAA$AAAA\n", "bad iteration count");
    pw_refused("alice:$7$ 5$AAAA$AAAA\n", "bad iteration count");
    pw_refused("alice:$7$+5$AAAA$AAAA\n", "bad iteration count");
    pw_refused("alice:$7$99999999999$AAAA$AAAA\n", "bad iteration count");
    pw_refused("alice:$6$!!!!$AAAA\n", "bad salt");
    pw_refused("alice:$6$AAAA\n", "missing hash");
    pw_refused("alice:$6$AAAA$AAAA\n", "bad hash");
    pw_refused("a/b:$6$AAAA$AAAA\n", "pw:1: user name not usable");
    char dup[1024];
    const char *line = strchr(PW, '\n') + 1; /* alice's line */
    snprintf(dup, sizeof dup, "%.*s%.*s", (int)(strchr(line, '\n') - line + 1), line,
             (int)(strchr(line, '\n') - line + 1), line);
    pw_refused(dup, "user 'alice' appears twice");
    char longl[AUTH_MAX_LINE + 100];
    memset(longl, 'a', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    pw_refused(longl, "pw:1: line longer than");
    ASSERT(auth_passwd_parse("", 0, "pw", dup, sizeof dup) != NULL || 1);
}

TEST(auth_passwd_empty_file)
{
    char why[256];
    auth_passwd *p = auth_passwd_parse("# nobody\n\n", 10, "pw", why, sizeof why);
    ASSERT(p != NULL);
    ASSERT_EQ(auth_passwd_count(p), 0);
    ASSERT(!auth_passwd_check(p, "alice", "secret"));
    auth_passwd_free(p);
}

/* Files written by the real mosquitto_passwd (Debian's mosquitto package,
 * scripts/deps.sh test): both hash kinds, a password with ':' and spaces,
 * UTF-8, and an update of an existing user. */
TEST(auth_passwd_mosquitto_files)
{
    const char *tool = "/usr/bin/mosquitto_passwd";
    if (access(tool, X_OK) != 0) SKIP("mosquitto_passwd not installed (apt-get install mosquitto)");
    char f[256], cmd[2048], why[256];
    snprintf(f, sizeof f, "%s/passwd", ax_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "%s -c -b %s alice 'correct horse' && %s -H sha512 -b %s bob 'b0b:pa ss' && "
             "%s -H sha512-pbkdf2 -b %s carol '\xc3\xbcn\xc3\xaf"
             "code' && "
             "%s -b %s dave old && %s -b %s dave new",
             tool, f, tool, f, tool, f, tool, f, tool, f);
    ASSERT_EQ(system(cmd), 0);
    auth_passwd *p = auth_passwd_load(f, why, sizeof why);
    if (!p) fprintf(stderr, "# %s\n", why);
    ASSERT(p != NULL);
    ASSERT_EQ(auth_passwd_count(p), 4);
    ASSERT(auth_passwd_check(p, "alice", "correct horse"));
    ASSERT(auth_passwd_check(p, "bob", "b0b:pa ss"));
    ASSERT(auth_passwd_check(p, "carol",
                             "\xc3\xbcn\xc3\xaf"
                             "code"));
    ASSERT(auth_passwd_check(p, "dave", "new"));
    ASSERT(!auth_passwd_check(p, "dave", "old"));
    ASSERT(!auth_passwd_check(p, "alice", "correct horse "));
    ASSERT(!auth_passwd_check(p, "bob", "b0b"));
    auth_passwd_free(p);
    /* the file says $7$ for PBKDF2 and $6$ for the older kind */
    size_t len;
    char *text = auth_read_file(f, 65536, &len, why, sizeof why);
    ASSERT(text && strstr(text, "alice:$7$") && strstr(text, "bob:$6$"));
    ax_free(text);
}

/* ---- ACL files ------------------------------------------------------------- */

static const char ACL[] = "# anonymous clients\n"
                          "topic read public/#\n"
                          "\n"
                          "user alice\n"
                          "topic readwrite chat/#\n"
                          "topic deny chat/ops\n"
                          "  topic write  logs/alice  \n"
                          "user bob\n"
                          "topic read chat/lobby\n"
                          "topic chat/bob space\n"
                          "pattern write sensor/%u/data\n"
                          "pattern read devices/%c/#\n"
                          "pattern deny secret/%c\n";

static auth_identity *acl_id(const auth_acl *a, const char *user, const char *client)
{
    auth_identity *id = auth_identity_new(user, user == NULL);
    ASSERT(id != NULL);
    ASSERT_EQ(auth_acl_apply(a, user, client, id), 0);
    return id;
}

TEST(auth_acl_rules)
{
    char why[256];
    auth_acl *a = auth_acl_parse(ACL, strlen(ACL), "acl", why, sizeof why);
    if (!a) fprintf(stderr, "# %s\n", why);
    ASSERT(a != NULL);
    ASSERT(auth_acl_has_anonymous(a));
    auth_identity *al = acl_id(a, "alice", "dev1");
    ASSERT(auth_may_publish(al, "chat/lobby"));
    ASSERT(!auth_may_publish(al, "chat/ops")); /* deny beats the grant */
    ASSERT(!auth_may_read(al, "chat/ops"));
    ASSERT(auth_may_read(al, "chat/x/y"));
    ASSERT(!auth_may_subscribe(al, "chat/#")); /* would reach chat/ops */
    ASSERT(auth_may_subscribe(al, "chat/lobby"));
    ASSERT(auth_may_subscribe(al, "chat/+/x"));
    ASSERT(auth_may_publish(al, "logs/alice"));
    ASSERT(!auth_may_read(al, "logs/alice"));
    ASSERT(auth_may_publish(al, "sensor/alice/data")); /* pattern %u */
    ASSERT(!auth_may_publish(al, "sensor/bob/data"));
    ASSERT(auth_may_read(al, "devices/dev1/temp")); /* pattern %c */
    ASSERT(!auth_may_read(al, "devices/dev2/temp"));
    ASSERT(!auth_may_read(al, "public/news")); /* the anonymous section is not alice's */
    auth_identity_free(al);

    auth_identity *bo = acl_id(a, "bob", NULL);
    ASSERT(auth_may_read(bo, "chat/lobby"));
    ASSERT(!auth_may_publish(bo, "chat/lobby"));
    ASSERT(auth_may_publish(bo, "chat/bob space")); /* no access word: readwrite, spaces kept */
    ASSERT(!auth_may_read(bo, "devices/x/temp"));   /* %c with no client id: dropped */
    ASSERT(!auth_may_read(bo, "secret/x"));         /* a deny %c with no client id: any */
    auth_identity_free(bo);

    auth_identity *an = acl_id(a, NULL, NULL);
    ASSERT(auth_may_read(an, "public/news"));
    ASSERT(auth_may_subscribe(an, "public/#"));
    ASSERT(!auth_may_publish(an, "public/news"));
    ASSERT(!auth_may_publish(an, "sensor/%u/data"));
    ASSERT(!auth_may_read(an, "chat/lobby"));
    auth_identity_free(an);

    auth_identity *nobody = acl_id(a, "carol", NULL); /* no section: patterns only */
    ASSERT(auth_may_publish(nobody, "sensor/carol/data"));
    ASSERT(!auth_may_read(nobody, "chat/lobby"));
    auth_identity_free(nobody);
    auth_acl_free(a);
}

TEST(auth_acl_room_operators)
{
    static const char text[] = "topic op chat/open\n" /* anonymous: never operators */
                               "user alice\n"
                               "topic op chat/+\n"
                               "topic deny chat/ops\n"
                               "user bob\n"
                               "topic readwrite chat/#\n"
                               "pattern op chat/%u\n";
    char why[256];
    auth_acl *a = auth_acl_parse(text, strlen(text), "acl", why, sizeof why);
    ASSERT(a != NULL);
    auth_identity *al = acl_id(a, "alice", NULL);
    ASSERT(auth_may_op(al, "chat/lobby"));
    ASSERT(auth_may_publish(al, "chat/lobby")); /* op is readwrite too */
    ASSERT(auth_may_read(al, "chat/lobby"));
    ASSERT(!auth_may_op(al, "chat/ops")); /* deny takes it away */
    ASSERT(!auth_may_op(al, "chat/a/b"));
    ASSERT(auth_may_op(al, "chat/alice"));
    auth_identity_free(al);
    auth_identity *bo = acl_id(a, "bob", NULL);
    ASSERT(auth_may_publish(bo, "chat/lobby"));
    ASSERT(!auth_may_op(bo, "chat/lobby")); /* readwrite is not op */
    ASSERT(auth_may_op(bo, "chat/bob"));    /* pattern op chat/%u */
    auth_identity_free(bo);
    auth_identity *an = acl_id(a, NULL, NULL);
    ASSERT(auth_may_op(an, "chat/open")); /* the rule itself; auth_anonymous() strips it */
    auth_identity_free(an);
    ASSERT(!auth_may_op(NULL, "chat/lobby"));
    auth_acl_free(a);
}

static void acl_refused(const char *text, const char *want)
{
    char why[256] = "";
    auth_acl *a = auth_acl_parse(text, strlen(text), "acl", why, sizeof why);
    if (a || !strstr(why, want)) fprintf(stderr, "# why: %s (wanted %s)\n", why, want);
    ASSERT(a == NULL);
    ASSERT(strstr(why, want) != NULL);
}

TEST(auth_acl_errors)
{
    acl_refused("topic read a\nfrobnicate x\n", "acl:2: unknown keyword 'frobnicate'");
    acl_refused("topic read\n", "acl:1: missing topic filter");
    acl_refused("user alice\ntopic read a/#/b\n", "acl:2: 'a/#/b' is not a valid topic filter");
    acl_refused("topic read a/%u\n", "acl:1: '%u'/'%c' in a topic line");
    acl_refused("pattern read a/x%u\n", "acl:1: %u and %c must be a whole topic level");
    acl_refused("pattern read a+/%u\n", "not a valid topic filter");
    acl_refused("user a/b\n", "acl:1: user name not usable");
    acl_refused("user\n", "acl:1: user name not usable");
    char longl[AUTH_MAX_LINE + 100];
    memset(longl, 'a', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    acl_refused(longl, "acl:1: line longer than");
    /* comments, blank lines, repeated sections; interleaved patterns */
    const char *ok =
        "# x\n\nuser a\ntopic x\npattern read p/%u\nuser b\ntopic y\nuser a\ntopic z\n";
    char why[128];
    auth_acl *a = auth_acl_parse(ok, strlen(ok), "acl", why, sizeof why);
    ASSERT(a != NULL);
    ASSERT(!auth_acl_has_anonymous(a));
    auth_identity *id = acl_id(a, "a", NULL);
    ASSERT(auth_may_publish(id, "x") && auth_may_publish(id, "z") && !auth_may_publish(id, "y"));
    ASSERT(auth_may_read(id, "p/a"));
    auth_identity_free(id);
    auth_acl_free(a);
}

/* ---- the permission engine -------------------------------------------------- */

TEST(auth_filter_covered_table)
{
    static const struct {
        const char *grants[4];
        const char *filter;
        bool want;
    } T[] = {
        {{"chat/lobby"}, "chat/#", false},
        {{"chat/lobby"}, "chat/lobby", true},
        {{"chat/lobby"}, "chat/+", false},
        {{"chat/#"}, "chat/#", true},
        {{"chat/#"}, "chat", true},
        {{"chat/#"}, "chat/+/x", true},
        {{"chat/#"}, "#", false},
        {{"chat/#"}, "+/lobby", false},
        {{"chat/+"}, "chat/#", false},
        {{"chat/+"}, "chat/+", true},
        {{"chat", "chat/+", "chat/+/#"}, "chat/#", true},
        {{"chat/+", "chat/+/#"}, "chat/#", false}, /* "chat" itself */
        {{"#"}, "#", true},
        {{"#"}, "+/x", true},
        {{"#"}, "$SYS/x", false},
        {{"+/#"}, "$SYS/x", false},
        {{"$SYS/#"}, "$SYS/x", true},
        {{"$SYS/#"}, "+/x", false},
        {{"a/+/c"}, "a/b/c", true},
        {{"a/+/c"}, "a/+/c", true},
        {{"a/+/c"}, "a/+/+", false},
        {{"a/x", "a/+"}, "a/+", true},
        {{"a/x", "a/y"}, "a/+", false},
        {{"+"}, "#", false},
        {{"+", "+/#"}, "#", true},
        {{"a/#"}, "a", true},
        {{"a"}, "a/#", false},
        {{"+/+"}, "a/+", true},
        {{"+/+"}, "+/b", true},
        {{"a/+/b"}, "a//b", true},
        {{"a/b/c/d"}, "a/b/c", false},
        {{NULL}, "a", false},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        int n = 0;
        while (n < 4 && T[i].grants[n])
            n++;
        bool got = auth_filter_covered(T[i].filter, T[i].grants, n);
        if (got != T[i].want) fprintf(stderr, "# row %zu: %s\n", i, T[i].filter);
        ASSERT(got == T[i].want);
    }
}

TEST(auth_filter_overlap_table)
{
    static const struct {
        const char *a, *b;
        bool want;
    } T[] = {{"a/#", "a", true},       {"a/+", "a", false},      {"#", "$SYS/x", false},
             {"$SYS/#", "+/x", false}, {"a/b", "a/c", false},    {"a/+/c", "+/b/#", true},
             {"#", "x", true},         {"+", "a/b", false},      {"+/#", "a", true},
             {"a/b", "a/b", true},     {"$SYS/#", "$SYS", true}, {"chat/ops", "chat/#", true}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        ASSERT(auth_filter_overlap(T[i].a, T[i].b) == T[i].want);
        ASSERT(auth_filter_overlap(T[i].b, T[i].a) == T[i].want);
    }
}

/* A random valid filter of 1-3 levels over a, b, $s, +, #. */
static void rand_filter(unsigned *seed, char *out)
{
    static const char *lv[] = {"a", "b", "$s", "+", "#"};
    int n = 1 + (int)(rand_r(seed) % 3);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *l = lv[rand_r(seed) % (i == n - 1 ? 5 : 4)];
        strcat(out, l);
        if (i < n - 1) strcat(out, "/");
    }
}

/* Every topic of 1-5 levels over a, b, $s and c (a name no filter spells,
 * standing for all such names): enough to decide coverage and overlap of
 * filters of at most 3 levels exactly. */
static int all_topics(char (*out)[32])
{
    static const char *lv[] = {"a", "b", "$s", "c"};
    int n = 0;
    for (int d = 1; d <= 5; d++) {
        int count = 1;
        for (int i = 0; i < d; i++)
            count *= 4;
        for (int k = 0; k < count; k++) {
            out[n][0] = '\0';
            for (int i = 0, x = k; i < d; i++, x /= 4) {
                strcat(out[n], lv[x % 4]);
                if (i < d - 1) strcat(out[n], "/");
            }
            n++;
        }
    }
    return n;
}

TEST(auth_filter_algebra_brute_force)
{
    static char topics[1400][32];
    int nt = all_topics(topics);
    unsigned seed = 13;
    for (int round = 0; round < 1500; round++) {
        char f[16], g0[16], g1[16];
        rand_filter(&seed, f);
        rand_filter(&seed, g0);
        rand_filter(&seed, g1);
        const char *grant[] = {g0, g1};
        int ng = 1 + (int)(rand_r(&seed) % 2);
        bool cov = true, ov = false;
        for (int i = 0; i < nt; i++) {
            bool m0 = hub_filter_match(g0, topics[i]);
            if (hub_filter_match(f, topics[i])) {
                ov |= m0;
                if (!m0 && !(ng == 2 && hub_filter_match(g1, topics[i]))) cov = false;
            }
        }
        if (auth_filter_covered(f, grant, ng) != cov || auth_filter_overlap(f, g0) != ov)
            fprintf(stderr, "# %s by %s%s%s: covered %d overlap %d\n", f, g0, ng == 2 ? " + " : "",
                    ng == 2 ? g1 : "", cov, ov);
        ASSERT(auth_filter_covered(f, grant, ng) == cov);
        ASSERT(auth_filter_overlap(f, g0) == ov);
    }
}

static auth_identity *token_id(const char *body)
{
    char *t = raw_token(HS, body, KEY), why[256];
    auth_claims c;
    ASSERT_EQ(auth_jwt_verify(&SECRET, t, strlen(t), NOW, 30, &c, why, sizeof why), 0);
    free(t);
    auth_identity *id = auth_identity_new(c.sub, false);
    id->admin = c.admin;
    for (int i = 0; i < c.npub; i++)
        ASSERT_EQ(auth_identity_add(id, c.pub[i], AUTH_WRITE, false, NULL), 0);
    for (int i = 0; i < c.nsub; i++)
        ASSERT_EQ(auth_identity_add(id, c.subf[i], AUTH_READ, false, NULL), 0);
    auth_claims_free(&c);
    return id;
}

TEST(auth_private_rule_by_name)
{
    char to[AUTH_MAX_NAME + 1];
    ASSERT(auth_inbox_of("user/bob/inbox", to, sizeof to));
    ASSERT_STREQ(to, "bob");
    ASSERT(!auth_inbox_of("user/bob/inbox/x", to, sizeof to));
    ASSERT(!auth_inbox_of("user/bob", to, sizeof to));
    ASSERT(!auth_inbox_of("user//inbox", to, sizeof to));
    ASSERT(!auth_inbox_of("chat/bob/inbox", to, sizeof to));
    ASSERT(!auth_inbox_of("user/bob/inbox", to, 3)); /* too long for the buffer */
    ASSERT(auth_private_may_read("bob", "user/bob/inbox"));
    ASSERT(auth_private_may_read("bob", "user/bob"));
    ASSERT(!auth_private_may_read("bob", "user/bobby/inbox"));
    ASSERT(!auth_private_may_read("bobby", "user/bob/inbox"));
    ASSERT(!auth_private_may_read(NULL, "user/bob/inbox"));
    ASSERT(!auth_private_may_read("", "user/bob/inbox"));
    ASSERT(auth_private_may_read(NULL, "users/bob"));
    ASSERT(auth_private_may_read(NULL, "user"));
    ASSERT(auth_private_may_read(NULL, "chat/lobby"));
    ASSERT(auth_private_may_subscribe("bob", "user/bob/#"));
    ASSERT(auth_private_may_subscribe("bob", "user/bob"));
    ASSERT(!auth_private_may_subscribe("bob", "user/bobby/#"));
    ASSERT(!auth_private_may_subscribe("bob", "user/+/inbox"));
    ASSERT(!auth_private_may_subscribe("bob", "user/#"));
    ASSERT(!auth_private_may_subscribe(NULL, "user/bob/inbox"));
    ASSERT(auth_private_may_subscribe(NULL, "user")); /* the topic "user" is nobody's */
    ASSERT(auth_private_may_subscribe(NULL, "#"));    /* left out per message instead */
    ASSERT(auth_private_may_subscribe(NULL, "+/inbox"));
    ASSERT(auth_private_may_subscribe(NULL, "users/#"));
}

TEST(auth_permissions_token)
{
    /* a token limited to chat/lobby */
    auth_identity *id = token_id("{\"sub\":\"alice\",\"exp\":1800000600,"
                                 "\"axon\":{\"pub\":[\"chat/lobby\"],\"sub\":[\"chat/lobby\"]}}");
    ASSERT(auth_may_publish(id, "chat/lobby"));
    ASSERT(!auth_may_publish(id, "chat/ops"));
    ASSERT(!auth_may_publish(id, "chat/lobby/x"));
    ASSERT(!auth_may_publish(id, "chat/+")); /* not a topic */
    ASSERT(auth_may_subscribe(id, "chat/lobby"));
    ASSERT(!auth_may_subscribe(id, "chat/#")); /* refused, not narrowed */
    ASSERT(!auth_may_subscribe(id, "#"));
    ASSERT(!auth_may_subscribe(id, "chat/+"));
    ASSERT(auth_may_read(id, "chat/lobby"));
    ASSERT(!auth_may_read(id, "chat/ops"));
    /* private topics: its own, by default; nobody else's */
    ASSERT(auth_may_read(id, "user/alice/inbox"));
    ASSERT(auth_may_subscribe(id, "user/alice/#"));
    ASSERT(auth_may_subscribe(id, "user/alice"));
    ASSERT(!auth_may_read(id, "user/bob/inbox"));
    ASSERT(!auth_may_subscribe(id, "user/bob/#"));
    ASSERT(!auth_may_subscribe(id, "user/+/inbox"));
    ASSERT(!auth_may_publish(id, "user/bob/inbox")); /* writing needs a grant too */
    auth_identity_free(id);

    /* %u, and wide grants still stop at other people's private topics */
    id = token_id("{\"sub\":\"bob\",\"exp\":1800000600,"
                  "\"axon\":{\"pub\":[\"user/+/inbox\",\"#\"],\"sub\":[\"#\",\"dm/%u/#\"]}}");
    ASSERT(auth_may_publish(id, "user/alice/inbox")); /* a DM */
    ASSERT(auth_may_read(id, "anything/at/all"));
    ASSERT(!auth_may_read(id, "user/alice/inbox"));
    ASSERT(auth_may_read(id, "user/bob/inbox"));
    ASSERT(auth_may_read(id, "user"));
    ASSERT(auth_may_read(id, "users/alice"));
    ASSERT(!auth_may_subscribe(id, "#")); /* would reach user/alice/... */
    ASSERT(!auth_may_subscribe(id, "+/alice/#"));
    ASSERT(auth_may_subscribe(id, "chat/#"));
    ASSERT(!auth_may_subscribe(id, "+/lobby")); /* would reach user/lobby */
    ASSERT(auth_may_subscribe(id, "+/bob/#"));  /* user/bob/... is its own */
    ASSERT(!auth_may_read(id, "$SYS/load"));    /* '#' does not reach $ topics */
    ASSERT(!auth_may_subscribe(id, "$SYS/#"));
    ASSERT(auth_may_subscribe(id, "dm/bob/x"));
    auth_identity_free(id);

    /* a deny rule wins over the default read of one's own private topics */
    id = auth_identity_new("alice", false);
    ASSERT_EQ(auth_identity_add(id, "#", AUTH_READWRITE, false, NULL), 0);
    ASSERT_EQ(auth_identity_add(id, "user/%u/#", AUTH_READWRITE, true, NULL), 0);
    ASSERT(!auth_may_read(id, "user/alice/inbox"));
    ASSERT(!auth_may_subscribe(id, "user/alice/inbox"));
    ASSERT(auth_may_read(id, "chat/x"));
    auth_identity_free(id);

    /* an admin reads everything */
    id =
        token_id("{\"sub\":\"root\",\"exp\":1800000600,\"axon\":{\"sub\":[\"#\"],\"admin\":true}}");
    ASSERT(auth_may_read(id, "user/alice/inbox"));
    ASSERT(auth_may_subscribe(id, "#"));
    auth_identity_free(id);

    /* no "axon" claim: only its own private topics */
    id = token_id("{\"sub\":\"eve\",\"exp\":1800000600}");
    ASSERT(!auth_may_read(id, "chat/lobby"));
    ASSERT(!auth_may_publish(id, "chat/lobby"));
    ASSERT(auth_may_subscribe(id, "user/eve/#"));
    auth_identity_free(id);
    ASSERT(!auth_may_read(NULL, "a"));
}

TEST(auth_identity_names)
{
    ASSERT(auth_name_valid("alice"));
    ASSERT(auth_name_valid("Zoë"));
    ASSERT(!auth_name_valid(""));
    ASSERT(!auth_name_valid("a/b"));
    ASSERT(!auth_name_valid("a+"));
    ASSERT(!auth_name_valid("#"));
    ASSERT(!auth_name_valid("%u"));
    ASSERT(!auth_name_valid("a%cb"));
    ASSERT(!auth_name_valid("a\nb"));
    ASSERT(!auth_name_valid("\xff"));
    char longn[AUTH_MAX_NAME + 2];
    memset(longn, 'a', sizeof longn - 1);
    longn[sizeof longn - 1] = '\0';
    ASSERT(!auth_name_valid(longn));
    ASSERT(auth_identity_new("a/b", false) == NULL);
    auth_identity *id = auth_identity_new("x", false);
    ASSERT_EQ(auth_identity_add(id, "a/#/b", AUTH_READ, false, NULL), AX_EINVAL);
    ASSERT_EQ(auth_identity_add(id, "a/x%u", AUTH_READ, false, NULL), AX_EINVAL);
    ASSERT_EQ(auth_identity_add(id, "a", 0, false, NULL), AX_EINVAL);
    ASSERT_EQ(id->nrules, 0);
    ASSERT(!auth_expired(id, NOW));
    id->exp = NOW;
    ASSERT(auth_expired(id, NOW));
    ASSERT(!auth_expired(id, NOW - 1));
    auth_identity_free(id);
}

/* Many grants (an ACL user with hundreds of rules): none is ignored. */
TEST(auth_many_grants)
{
    auth_identity *id = auth_identity_new("a", false);
    char f[64];
    for (int i = 0; i < 300; i++) {
        snprintf(f, sizeof f, "room/%d", i);
        ASSERT_EQ(auth_identity_add(id, f, AUTH_READ, false, NULL), 0);
    }
    ASSERT_EQ(auth_identity_add(id, "room/+/#", AUTH_READ, false, NULL), 0);
    ASSERT(auth_may_subscribe(id, "room/299"));
    ASSERT(auth_may_read(id, "room/299"));
    ASSERT(auth_may_subscribe(id, "room/+"));  /* "room/+/#" matches room/x too */
    ASSERT(!auth_may_subscribe(id, "room/#")); /* not "room" itself */
    ASSERT_EQ(auth_identity_add(id, "room", AUTH_READ, false, NULL), 0);
    ASSERT(auth_may_subscribe(id, "room/#"));
    auth_identity_free(id);
}

/* The settings object end to end: files on disk, each kind of identity. */
TEST(auth_settings)
{
    char sec[256], pw[256], acl[256], why[256];
    const char *d = ax_test_tmpdir();
    snprintf(sec, sizeof sec, "%s/secret", d);
    snprintf(pw, sizeof pw, "%s/passwd", d);
    snprintf(acl, sizeof acl, "%s/acl", d);
    write_file(sec, KEY "\n");
    write_file(pw, PW);
    write_file(acl, ACL);

    auth_opts o = {.secret_file = sec, .password_file = pw};
    auth *a = auth_new(&o, why, sizeof why);
    ASSERT(a != NULL);
    ASSERT(auth_configured(a));
    /* no ACL file: a password user may do anything (mosquitto) */
    auth_identity *id = auth_login(a, "bob", "hunter2", NULL, why, sizeof why);
    ASSERT(id != NULL);
    ASSERT_STREQ(id->name, "bob");
    ASSERT(auth_may_publish(id, "any/topic") && auth_may_read(id, "any/topic"));
    ASSERT(!auth_may_read(id, "user/alice/inbox"));
    auth_identity_free(id);
    ASSERT(auth_login(a, "bob", "wrong", NULL, why, sizeof why) == NULL);
    ASSERT_STREQ(why, "bad user name or password");
    ASSERT(auth_login(a, "nobody", "wrong", NULL, why, sizeof why) == NULL);
    ASSERT_STREQ(why, "bad user name or password");
    ASSERT(auth_anonymous(a, why, sizeof why) == NULL);
    ASSERT(strstr(why, "anonymous access is off") != NULL);
    /* tokens: time comes from the caller */
    char *t = raw_token(HS, GOOD, KEY);
    id = auth_token(a, t, strlen(t), NOW, why, sizeof why);
    ASSERT(id != NULL);
    ASSERT_EQ(id->exp, 1800000600);
    ASSERT(auth_may_publish(id, "chat/lobby") && !auth_may_publish(id, "chat/x"));
    ASSERT(auth_may_subscribe(id, "dm/alice/#"));
    auth_identity_free(id);
    ASSERT(auth_token(a, t, strlen(t), 1800000700, why, sizeof why) == NULL);
    ASSERT(strstr(why, "expired") != NULL);
    free(t);
    auth_free(a);

    /* with the ACL file; anonymous read limited to the ACL's section */
    o = (auth_opts){.password_file = pw, .acl_file = acl, .anonymous = AUTH_ANON_READWRITE};
    a = auth_new(&o, why, sizeof why);
    ASSERT(a != NULL);
    id = auth_login(a, "alice", "secret", "dev1", why, sizeof why);
    ASSERT(id && auth_may_publish(id, "chat/lobby") && !auth_may_publish(id, "chat/ops"));
    auth_identity_free(id);
    ASSERT(auth_token(a, "x.y.z", 5, NOW, why, sizeof why) == NULL);
    ASSERT(strstr(why, "not enabled") != NULL);
    id = auth_anonymous(a, why, sizeof why);
    ASSERT(id && id->anonymous && auth_may_read(id, "public/x") && !auth_may_read(id, "chat/a"));
    auth_identity_free(id);
    auth_free(a);

    /* --anonymous read with chosen filters; no credentials configured */
    const char *filters[] = {"news/#", "weather/+"};
    o = (auth_opts){.anonymous = AUTH_ANON_READ, .anon_filters = filters, .nanon_filters = 2};
    a = auth_new(&o, why, sizeof why);
    ASSERT(a && !auth_configured(a));
    id = auth_anonymous(a, why, sizeof why);
    ASSERT(auth_may_subscribe(id, "news/#") && auth_may_read(id, "weather/paris"));
    ASSERT(!auth_may_publish(id, "news/x") && !auth_may_subscribe(id, "weather/#"));
    ASSERT(!auth_may_read(id, "user/x/inbox"));
    auth_identity_free(id);
    auth_free(a);
    /* --anonymous readwrite without filters: today's loopback behaviour */
    o = (auth_opts){.anonymous = AUTH_ANON_READWRITE};
    a = auth_new(&o, why, sizeof why);
    id = auth_anonymous(a, why, sizeof why);
    ASSERT(auth_may_publish(id, "chat/lobby") && auth_may_subscribe(id, "chat/#"));
    ASSERT(!auth_may_subscribe(id, "#")); /* private topics */
    auth_identity_free(id);
    auth_free(a);

    /* errors name the file */
    o = (auth_opts){.acl_file = pw};
    ASSERT(auth_new(&o, why, sizeof why) == NULL);
    ASSERT(strstr(why, pw) && strstr(why, ":2: unknown keyword"));
    const char *badf[] = {"a/#/b"};
    o = (auth_opts){.anon_filters = badf, .nanon_filters = 1};
    ASSERT(auth_new(&o, why, sizeof why) == NULL);
    ASSERT(strstr(why, "'a/#/b'") != NULL);
}

/* Out of memory anywhere: a clean refusal, and nothing leaks. */
TEST(auth_out_of_memory)
{
    tu_alloc_install();
    char sec[256], pw[256], acl[256], why[256];
    const char *d = ax_test_tmpdir();
    snprintf(sec, sizeof sec, "%s/secret", d);
    snprintf(pw, sizeof pw, "%s/passwd", d);
    snprintf(acl, sizeof acl, "%s/acl", d);
    write_file(sec, KEY);
    write_file(pw, PW);
    write_file(acl, ACL);
    char *t = raw_token(HS, GOOD, KEY);
    auth_opts o = {
        .secret_file = sec, .password_file = pw, .acl_file = acl, .anonymous = AUTH_ANON_READ};
    for (long n = 0;; n++) {
        long failed = tu_alloc_failures();
        tu_alloc_fail_once_after(n);
        auth *a = auth_new(&o, why, sizeof why);
        if (a) {
            auth_identity *ids[3] = {auth_login(a, "alice", "secret", "c", why, sizeof why),
                                     auth_token(a, t, strlen(t), NOW, why, sizeof why),
                                     auth_anonymous(a, why, sizeof why)};
            for (int i = 0; i < 3; i++) {
                if (ids[i]) auth_may_subscribe(ids[i], "chat/#");
                auth_identity_free(ids[i]);
            }
            auth_free(a);
        }
        tu_alloc_fail_after(-1);
        ASSERT_EQ(tu_alloc_live_count(), 0);
        if (tu_alloc_failures() == failed) break; /* a whole run without a failure */
        ASSERT(n < 10000);
    }
    free(t);
}

/* auth_may_read runs once per delivery: it must cost next to nothing. */
TEST(auth_read_is_fast)
{
    auth_identity *wide = token_id("{\"sub\":\"u\",\"exp\":1800000600,\"axon\":{\"sub\":[\"#\"]}}");
    auth_identity *narrow = token_id("{\"sub\":\"u\",\"exp\":1800000600,\"axon\":{\"sub\":["
                                     "\"a/#\",\"b/+/c\",\"chat/+\",\"d/#\",\"e\"]}}");
    const int N = 1000000;
    int ok = 0;
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < N; i++)
        ok += auth_may_read(wide, (i & 1) ? "chat/lobby" : "user/u/inbox");
    uint64_t t1 = tu_now_ms();
    for (int i = 0; i < N; i++)
        ok += auth_may_read(narrow, "chat/lobby");
    uint64_t t2 = tu_now_ms();
    ASSERT_EQ(ok, 2 * N);
    fprintf(stderr, "# auth_may_read: %.1f ns (\"#\"), %.1f ns (5 filters)\n",
            (double)(t1 - t0) * 1e6 / N, (double)(t2 - t1) * 1e6 / N);
    /* generous bounds (sanitizers, a busy 2-core machine): 2 us per call */
    ASSERT(t1 - t0 < 2000 && t2 - t1 < 2000);
    auth_identity_free(wide);
    auth_identity_free(narrow);
}

/* ---- SCRAM-SHA-512 (scram.c): the client side written from RFC 5802 ---- */

static void scram_hmac(const uint8_t *k, size_t kl, const char *m, uint8_t out[64])
{
    unsigned n = 0;
    HMAC(EVP_sha512(), k, (int)kl, (const unsigned char *)m, strlen(m), out, &n);
}

/* Runs one exchange for user/password; returns the identity (or NULL with
 * *why) and checks the server's signature when it signs in. */
static auth_identity *scram_login(const auth *a, const char *user_attr, const char *password,
                                  const char *tamper, const char **why)
{
    char first[256], out[AUTH_SCRAM_MAX + 1], fin[1024], am[2048];
    size_t ol = 0;
    snprintf(first, sizeof first, "n,,n=%s,r=clientNONCE123", user_attr);
    auth_scram *s = auth_scram_start(a, first, strlen(first), out, &ol, why);
    if (!s) return NULL;
    out[ol] = '\0';
    /* r=...,s=SALT,i=ITER */
    ASSERT(strncmp(out, "r=clientNONCE123", 16) == 0);
    char *sp = strstr(out, ",s="), *ip = strstr(out, ",i=");
    ASSERT(sp && ip && ip > sp);
    uint8_t salt[80];
    long sl = auth_b64_decode(sp + 3, (size_t)(ip - sp - 3), false, salt, sizeof salt);
    ASSERT(sl > 0);
    int iter = atoi(ip + 3);
    uint8_t salted[64], ckey[64], stored[64], sig[64], proof[64], skey[64], ssig[64];
    ASSERT(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)sl, iter, EVP_sha512(), 64,
                             salted) == 1);
    scram_hmac(salted, 64, "Client Key", ckey);
    unsigned hl = 0;
    EVP_Digest(ckey, 64, stored, &hl, EVP_sha512(), NULL);
    char nonce[256];
    snprintf(nonce, sizeof nonce, "%.*s", (int)(sp - out - 2), out + 2);
    char noproof[512];
    snprintf(noproof, sizeof noproof, "c=biws,r=%s", nonce);
    if (tamper && strcmp(tamper, "nonce") == 0)
        snprintf(noproof, sizeof noproof, "c=biws,r=%sX", nonce);
    if (tamper && strcmp(tamper, "cbind") == 0)
        snprintf(noproof, sizeof noproof, "c=eSws,r=%s", nonce);
    snprintf(am, sizeof am, "%s,%s,%s", first + 3, out, noproof);
    scram_hmac(stored, 64, am, sig);
    for (int i = 0; i < 64; i++)
        proof[i] = ckey[i] ^ sig[i];
    if (tamper && strcmp(tamper, "proof") == 0) proof[7] ^= 1;
    char p64[100];
    auth_b64_encode(proof, 64, false, p64, sizeof p64);
    snprintf(fin, sizeof fin, "%s,p=%s", noproof, p64);
    auth_identity *id = auth_scram_finish(s, a, fin, strlen(fin), "cid", out, &ol, why);
    if (id) {
        out[ol] = '\0';
        scram_hmac(salted, 64, "Server Key", skey);
        scram_hmac(skey, 64, am, ssig);
        char v[100] = "v=";
        auth_b64_encode(ssig, 64, false, v + 2, sizeof v - 2);
        ASSERT(strcmp(out, v) == 0); /* the server holds the hash */
    }
    auth_scram_free(s);
    return id;
}

TEST(auth_scram_sha512)
{
    char path[] = "/tmp/axon-scram-XXXXXX", why[256];
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT(write(fd, PW, strlen(PW)) == (ssize_t)strlen(PW));
    close(fd);
    auth_opts o = {.password_file = path};
    auth *a = auth_new(&o, why, sizeof why);
    ASSERT(a != NULL);
    const char *w = NULL;
    auth_identity *id = scram_login(a, "alice", "secret", NULL, &w);
    ASSERT(id != NULL);
    ASSERT_STREQ(id->name, "alice");
    auth_identity_free(id);
    ASSERT(!scram_login(a, "alice", "Secret", NULL, &w)); /* a wrong password */
    ASSERT_STREQ(w, "bad user name or password");
    ASSERT(!scram_login(a, "alice", "secret", "proof", &w));
    ASSERT(!scram_login(a, "alice", "secret", "nonce", &w));
    ASSERT_STREQ(w, "SCRAM nonce does not match");
    ASSERT(!scram_login(a, "alice", "secret", "cbind", &w));
    ASSERT_STREQ(w, "SCRAM channel binding does not match the first message");
    ASSERT(!scram_login(a, "bob", "hunter2", NULL, &w)); /* $6$: SCRAM cannot use it */
    ASSERT(!scram_login(a, "dave", "secret", NULL, &w)); /* unknown: the same answer */
    ASSERT_STREQ(w, "bad user name or password");
    /* an unknown user's made-up salt is the same each time */
    char o1[AUTH_SCRAM_MAX], o2[AUTH_SCRAM_MAX];
    size_t l1 = 0, l2 = 0;
    const char *f = "n,,n=dave,r=abc";
    auth_scram *s1 = auth_scram_start(a, f, strlen(f), o1, &l1, &w);
    auth_scram *s2 = auth_scram_start(a, f, strlen(f), o2, &l2, &w);
    ASSERT(s1 && s2);
    ASSERT(strstr(o1, ",s=") && strncmp(strstr(o1, ",s="), strstr(o2, ",s="), 20) == 0);
    auth_scram_free(s1);
    auth_scram_free(s2);
    /* malformed first messages */
    static const char *const bad[] = {"",
                                      "n,,",
                                      "x,,n=alice,r=abc",
                                      "p=tls-unique,,n=alice,r=abc",
                                      "n,a=alice,n=alice,r=abc",
                                      "n,,n=alice",
                                      "n,,n=alice,r=",
                                      "n,,n=al=ZZice,r=abc",
                                      "n,,r=abc,n=alice",
                                      "n,,n=,r=abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT(auth_scram_start(a, bad[i], strlen(bad[i]), o1, &l1, &w) == NULL);
        ASSERT(w != NULL);
    }
    /* "=2C" and "=3D" in a name: not usable as a user name, but read */
    ASSERT(!scram_login(a, "a=2Cb", "x", NULL, &w));
    auth_free(a);
    unlink(path);
}
