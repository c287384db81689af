/* tls_cert.c: making a self-signed certificate for local use (axon cert). */
#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int whyf(char *why, size_t len, int rc, const char *fmt, ...)
{
    if (why && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static bool same_ip(const char *name, const char *ip)
{
    unsigned char a[16] = {0}, b[16] = {0};
    int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
    return inet_pton(af, name, a) == 1 && inet_pton(af, ip, b) == 1 && memcmp(a, b, 16) == 0;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!e) return false;
    bool ok = X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/* Random 63-bit serial, subject = issuer = CN=name, the extensions a
 * server certificate needs, signed with its own key. */
static X509 *build_cert(EVP_PKEY *key, const char *name, int days)
{
    char san[600];
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    if (!x || !serial || !BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
        goto fail;
    X509_NAME *n = X509_get_subject_name(x);
    if (!X509_set_version(x, 2) || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) || !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, n))
        goto fail;
    /* the loopback addresses too, so https://127.0.0.1 and https://[::1] verify */
    snprintf(san, sizeof san, "%s:%s%s%s", is_ip(name) ? "IP" : "DNS", name,
             same_ip(name, "127.0.0.1") ? "" : ",IP:127.0.0.1",
             same_ip(name, "::1") ? "" : ",IP:::1");
    if (!add_ext(x, NID_subject_alt_name, san) ||
        !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, NID_subject_key_identifier, "hash") || !X509_sign(x, key, EVP_sha256()))
        goto fail;
    BN_free(serial);
    return x;
fail:
    BN_free(serial);
    X509_free(x);
    return NULL;
}

static FILE *create(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1) return NULL;
    fchmod(fd, mode);
    FILE *f = fdopen(fd, "w");
    if (!f) close(fd);
    return f;
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *x, char *why, size_t wl)
{
    FILE *f = create(path, key ? 0600 : 0644);
    if (!f) return whyf(why, wl, -errno, "cannot create '%s': %s", path, strerror(errno));
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return whyf(why, wl, AX_ETLS, "cannot write '%s'", path);
    return 0;
}

int ax_tls_make_self_signed(const char *name, int days, const char *cert_path, const char *key_path,
                            char *why, size_t why_len)
{
    if (!name || !*name || strlen(name) > 253 || !cert_path || !key_path || days < 0)
        return whyf(why, why_len, AX_EINVAL, "bad name, path or validity");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? build_cert(key, name, days ? days : 365) : NULL;
    int rc;
    if (!x) {
        const char *r = ERR_reason_error_string(ERR_peek_last_error());
        rc = whyf(why, why_len, AX_ETLS, "cannot make the certificate: %s", r ? r : "error");
        ERR_clear_error();
        goto out;
    }
    if ((rc = write_pem(key_path, key, NULL, why, why_len)) == 0)
        rc = write_pem(cert_path, NULL, x, why, why_len);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}
