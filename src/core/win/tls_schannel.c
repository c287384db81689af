/* tls_schannel.c: the TLS engine of src/core/tls.h on Windows, on SChannel
 * (the system's TLS, through SSPI), where Linux has OpenSSL (tls.c).
 *
 * The same contract: no I/O here.  Ciphertext from the socket collects
 * in `in`; InitializeSecurityContext (clients) or AcceptSecurityContext
 * (servers) consume it during the handshake and hand back the messages
 * to send, which collect in `out`; afterwards DecryptMessage turns whole
 * records of `in` into plaintext (in place) and EncryptMessage makes
 * records of what the user writes.  What a call did not use (SECBUFFER_
 * EXTRA) stays at the front of `in` for the next one.
 *
 * Verification is ours (SCH_CRED_MANUAL_CRED_VALIDATION), so that a CA
 * file given by the caller works as it does on Linux: the chain is built
 * by CertGetCertificateChain with the CA file's certificates as an extra
 * store and must end at one of them (or, without a CA file, at a root the
 * system trusts); the host name is matched against the certificate's
 * subject alternative names (DNS names, IP addresses), its common name
 * when it has no DNS name.
 *
 * Certificates and keys are PEM files, as on Linux: the certificate is
 * decoded with CryptStringToBinary, an RSA key (PKCS#8 "PRIVATE KEY" or
 * PKCS#1 "RSA PRIVATE KEY") is imported into an ephemeral CryptoAPI key
 * set tied to the certificate (CERT_KEY_CONTEXT_PROP_ID).  EC keys are
 * refused with a sentence (see docs/guide.md, "On Windows"). */
#include "internal.h"
#include "tls.h"
#include "tls_common.h"

#define SECURITY_WIN32
#include <schannel.h>
#include <security.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <wincrypt.h>

#define MAX_FILE (1u << 20) /* a PEM file bigger than this is not a certificate */

struct ax_tls_ctx {
    ax__tls_ctx_common com; /* first: refs, server, insecure, alpn, server_name */
    bool have_cred;
    CredHandle cred;
    HCERTSTORE ca;       /* clients: the CA file's certificates; NULL: the system's */
    PCCERT_CONTEXT cert; /* servers: the certificate, its key attached */
    HCRYPTPROV key_prov; /* servers: the key set holding its private key */
};

struct ax__tls {
    ax__tls_common com; /* first: out (ciphertext to send), hold, detail */
    ax_tls_ctx *ctx;
    CtxtHandle h;
    bool have_h;
    bool server;
    bool done; /* handshake finished */
    bool sent_close;
    SecPkgContext_StreamSizes sizes;
    ax__buf in;      /* ciphertext not yet used */
    ax__buf plain;   /* decrypted, not yet read */
    wchar_t *target; /* clients: the name sent as SNI */
    char *host;      /* clients: the name checked against the certificate */
    char alpn[64];
};

/* A SECURITY_STATUS in words: the common ones by name, the rest in hex. */
static const char *sec_text(SECURITY_STATUS s, char *buf, size_t len)
{
    static const struct {
        SECURITY_STATUS s;
        const char *text;
    } known[] = {
        {SEC_E_ILLEGAL_MESSAGE, "the peer sent an alert or a message that is not TLS"},
        {SEC_E_ALGORITHM_MISMATCH, "no protocol version or cipher in common"},
        {SEC_E_UNSUPPORTED_FUNCTION, "not supported by this SChannel"},
        {SEC_E_INVALID_TOKEN, "invalid TLS message"},
        {SEC_E_DECRYPT_FAILURE, "bad record (decryption failed)"},
        {SEC_E_MESSAGE_ALTERED, "bad record MAC"},
        {SEC_E_CERT_UNKNOWN, "certificate unknown"},
        {SEC_E_NO_CREDENTIALS, "no credentials"},
        {SEC_E_INTERNAL_ERROR, "internal error"},
        {SEC_E_INSUFFICIENT_MEMORY, "out of memory"},
        {SEC_E_WRONG_PRINCIPAL, "the certificate does not name the host"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (known[i].s != s) continue;
        snprintf(buf, len, "%s (SChannel 0x%08lx)", known[i].text, (unsigned long)s);
        return buf;
    }
    snprintf(buf, len, "SChannel error 0x%08lx", (unsigned long)s);
    return buf;
}

/* ---- PEM files ----------------------------------------------------------- */

/* The whole file, NUL-terminated; NULL with a sentence. */
static char *read_file(const char *what, const char *file, size_t *len, char *why, size_t wl,
                       int *err)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        *err = -errno;
        ax__tls_whyf(why, wl, "cannot read %s '%s': %s", what, file, strerror(errno));
        return NULL;
    }
    char *p = ax_malloc(MAX_FILE + 1);
    size_t n = p ? fread(p, 1, MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!p) {
        *err = AX_ENOMEM;
        return NULL;
    }
    if (n > MAX_FILE) {
        ax_free(p);
        *err = AX_EINVAL;
        ax__tls_whyf(why, wl, "%s '%s' is too big for a PEM file", what, file);
        return NULL;
    }
    p[n] = '\0';
    *len = n;
    return p;
}

/* The next PEM block whose label ends in `label` ("CERTIFICATE", "PRIVATE
 * KEY") from *pos on, decoded; NULL when there is none.  *kind is the
 * whole BEGIN line's label ("RSA PRIVATE KEY"). */
static BYTE *pem_next(const char *text, const char **pos, const char *label, DWORD *der_len,
                      char *kind, size_t kind_len)
{
    for (const char *b = strstr(*pos, "-----BEGIN "); b; b = strstr(b + 1, "-----BEGIN ")) {
        const char *lab = b + 11, *lend = strstr(lab, "-----");
        if (!lend) return NULL;
        size_t ll = (size_t)(lend - lab), want = strlen(label);
        if (ll < want || memcmp(lab + ll - want, label, want) != 0) continue;
        char endline[80];
        snprintf(endline, sizeof endline, "-----END %.*s-----", (int)ll, lab);
        const char *e = strstr(lend, endline);
        if (!e) return NULL;
        e += strlen(endline);
        *pos = e;
        if (kind) snprintf(kind, kind_len, "%.*s", (int)ll, lab);
        DWORD n = 0;
        if (!CryptStringToBinaryA(b, (DWORD)(e - b), CRYPT_STRING_BASE64HEADER, NULL, &n, NULL,
                                  NULL))
            return NULL;
        BYTE *der = ax_malloc(n ? n : 1);
        if (!der) return NULL;
        if (!CryptStringToBinaryA(b, (DWORD)(e - b), CRYPT_STRING_BASE64HEADER, der, &n, NULL,
                                  NULL)) {
            ax_free(der);
            return NULL;
        }
        *der_len = n;
        return der;
    }
    (void)text;
    return NULL;
}

/* Every certificate of a PEM file into a memory store; the first one's
 * context in *first (servers) when asked.  0 or a code with a sentence. */
static int load_certs(const char *what, const char *file, HCERTSTORE *store, PCCERT_CONTEXT *first,
                      char *why, size_t wl)
{
    int err = 0;
    size_t len;
    char *text = read_file(what, file, &len, why, wl, &err);
    if (!text) return err;
    HCERTSTORE s = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, NULL);
    if (!s) {
        ax_free(text);
        return AX_ENOMEM;
    }
    int n = 0;
    const char *pos = text;
    DWORD dl;
    BYTE *der;
    while ((der = pem_next(text, &pos, "CERTIFICATE", &dl, NULL, 0)) != NULL) {
        PCCERT_CONTEXT c = NULL;
        BOOL ok =
            CertAddEncodedCertificateToStore(s, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, der, dl,
                                             CERT_STORE_ADD_ALWAYS, first && n == 0 ? &c : NULL);
        ax_free(der);
        if (!ok) {
            ax__tls_whyf(why, wl, "cannot load %s '%s': certificate %d does not decode", what, file,
                         n + 1);
            err = AX_ETLS;
            break;
        }
        if (c) *first = c;
        n++;
    }
    ax_free(text);
    if (!err && n == 0) {
        ax__tls_whyf(why, wl, "cannot load %s '%s': no PEM certificate in it", what, file);
        err = AX_ETLS;
    }
    if (err) {
        if (first && *first) CertFreeCertificateContext(*first), *first = NULL;
        CertCloseStore(s, 0);
        return err;
    }
    *store = s;
    return 0;
}

/* One DER element of tag `tag` at *p: its contents in *c, *clen; *p moves
 * past it.  false when it is not there or runs past `end`. */
static bool der_take(const BYTE **p, const BYTE *end, BYTE tag, const BYTE **c, DWORD *clen)
{
    const BYTE *q = *p;
    if (end - q < 2 || q[0] != tag) return false;
    size_t len = q[1];
    q += 2;
    if (len & 0x80) { /* long form: that many length bytes */
        size_t k = len & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k) return false;
        len = 0;
        while (k--)
            len = len << 8 | *q++;
    }
    if ((size_t)(end - q) < len) return false;
    *c = q;
    *clen = (DWORD)len;
    *p = q + len;
    return true;
}

/* PKCS#8 PrivateKeyInfo { version, AlgorithmIdentifier, OCTET STRING }:
 * the inner key.  1 RSA, 2 EC, 0 anything else or malformed.  (Wine's
 * CryptDecodeObjectEx does not know PKCS_PRIVATE_KEY_INFO, so by hand.) */
static int pkcs8_unwrap(const BYTE *der, DWORD len, const BYTE **key, DWORD *key_len)
{
    static const BYTE rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
    static const BYTE ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    const BYTE *p = der, *end = der + len, *seq, *v, *alg, *oid;
    DWORD sl, vl, al, ol;
    if (!der_take(&p, end, 0x30, &seq, &sl)) return 0;
    p = seq, end = seq + sl;
    if (!der_take(&p, end, 0x02, &v, &vl) || !der_take(&p, end, 0x30, &alg, &al)) return 0;
    const BYTE *a = alg;
    if (!der_take(&a, alg + al, 0x06, &oid, &ol)) return 0;
    if (ol == sizeof ec && memcmp(oid, ec, ol) == 0) return 2;
    if (ol != sizeof rsa || memcmp(oid, rsa, ol) != 0) return 0;
    return der_take(&p, end, 0x04, key, key_len) ? 1 : 0;
}

/* The RSA private key of a PEM file into an ephemeral key set, attached
 * to the certificate. */
static int load_key(ax_tls_ctx *ctx, const char *file, bool key_in_cert, char *why, size_t wl)
{
    int err = 0;
    size_t len;
    char *text = read_file("key", file, &len, why, wl, &err);
    if (!text) return err;
    char kind[64];
    DWORD dl = 0;
    const char *pos = text;
    BYTE *der = pem_next(text, &pos, "PRIVATE KEY", &dl, kind, sizeof kind);
    ax_free(text);
    if (!der) {
        if (key_in_cert)
            ax__tls_whyf(why, wl, "no private key: '%s' holds none, so give the key file too",
                         file);
        else
            ax__tls_whyf(why, wl, "'%s' holds no private key (a PEM \"PRIVATE KEY\" block)", file);
        return AX_EINVAL;
    }
    const BYTE *rsa_der = der;
    DWORD rsa_len = dl, n = 0;
    err = AX_ETLS;
    if (strcmp(kind, "PRIVATE KEY") == 0) { /* PKCS#8: the RSA key inside */
        int alg = pkcs8_unwrap(der, dl, &rsa_der, &rsa_len);
        if (alg != 1) {
            ax__tls_whyf(why, wl,
                         alg == 2
                             ? "cannot use key '%s': only RSA keys work in the Windows build (this "
                               "one is EC)"
                             : "cannot use key '%s': only RSA keys in PKCS#8 or PKCS#1 work in the "
                               "Windows build",
                         file);
            goto out;
        }
    } else if (strcmp(kind, "RSA PRIVATE KEY") != 0) {
        ax__tls_whyf(why, wl, "cannot use key '%s': only RSA keys work in the Windows build (%s)",
                     file, kind);
        goto out;
    }
    BYTE *blob = NULL;
    if (!CryptDecodeObjectEx(X509_ASN_ENCODING, PKCS_RSA_PRIVATE_KEY, rsa_der, rsa_len,
                             CRYPT_DECODE_ALLOC_FLAG, NULL, &blob, &n)) {
        ax__tls_whyf(why, wl, "cannot use key '%s': the RSA key does not decode", file);
        goto out;
    }
    HCRYPTKEY key = 0;
    if (!CryptAcquireContextW(&ctx->key_prov, NULL, MS_ENH_RSA_AES_PROV_W, PROV_RSA_AES,
                              CRYPT_VERIFYCONTEXT) ||
        !CryptImportKey(ctx->key_prov, blob, n, 0, CRYPT_EXPORTABLE, &key)) {
        ax__tls_whyf(why, wl, "cannot use key '%s': CryptoAPI refused it (error %lu)", file,
                     (unsigned long)GetLastError());
        LocalFree(blob);
        goto out;
    }
    LocalFree(blob);
    CryptDestroyKey(key);
    CERT_KEY_CONTEXT kc = {sizeof kc, {ctx->key_prov}, AT_KEYEXCHANGE};
    if (!CertSetCertificateContextProperty(ctx->cert, CERT_KEY_CONTEXT_PROP_ID, 0, &kc)) {
        ax__tls_whyf(why, wl, "cannot use key '%s': cannot attach it to the certificate", file);
        goto out;
    }
    err = 0;
out:
    ax_free(der);
    return err;
}

/* ---- contexts ------------------------------------------------------------ */

const size_t ax__tls_ctx_size = sizeof(struct ax_tls_ctx);

/* ALPN for SChannel: the wire list behind the head of a
 * SEC_APPLICATION_PROTOCOLS, which is filled in here. */
const size_t ax__tls_alpn_head = sizeof(unsigned long) +
                                 sizeof(SEC_APPLICATION_PROTOCOL_NEGOTIATION_EXT) +
                                 sizeof(unsigned short);

void ax__tls_alpn_frame(unsigned char *w, unsigned wire_len)
{
    SEC_APPLICATION_PROTOCOLS *ap = (SEC_APPLICATION_PROTOCOLS *)w;
    ap->ProtocolListsSize = (unsigned long)(ax__tls_alpn_head - sizeof(unsigned long) + wire_len);
    ap->ProtocolLists[0].ProtoNegoExt = SecApplicationProtocolNegotiationExt_ALPN;
    ap->ProtocolLists[0].ProtocolListSize = (unsigned short)wire_len;
}

static int acquire(ax_tls_ctx *ctx, char *why, size_t wl)
{
    SCHANNEL_CRED sc = {.dwVersion = SCHANNEL_CRED_VERSION};
    if (ctx->com.server) {
        sc.cCreds = 1;
        sc.paCred = &ctx->cert;
        sc.grbitEnabledProtocols = SP_PROT_TLS1_2_SERVER | SP_PROT_TLS1_3_SERVER;
    } else {
        sc.grbitEnabledProtocols = SP_PROT_TLS1_2_CLIENT | SP_PROT_TLS1_3_CLIENT;
        sc.dwFlags = SCH_CRED_MANUAL_CRED_VALIDATION | SCH_CRED_NO_DEFAULT_CREDS;
    }
    TimeStamp exp;
    SECURITY_STATUS s =
        AcquireCredentialsHandleW(NULL, (SEC_WCHAR *)UNISP_NAME_W,
                                  ctx->com.server ? SECPKG_CRED_INBOUND : SECPKG_CRED_OUTBOUND,
                                  NULL, &sc, NULL, NULL, &ctx->cred, &exp);
    if (s != SEC_E_OK) {
        char t[96];
        ax__tls_whyf(why, wl, "SChannel refused the %s credentials: %s",
                     ctx->com.server ? "server" : "client", sec_text(s, t, sizeof t));
        return AX_ETLS;
    }
    ctx->have_cred = true;
    return 0;
}

int ax_tls_server_add_cert(ax_tls_ctx *ctx, const char *cert_file, const char *key_file, char *why,
                           size_t why_len)
{
    if (!ctx || !ctx->com.server || !cert_file) return AX_EINVAL;
    if (ctx->cert) {
        ax__tls_whyf(why, why_len,
                     "one certificate per server in the Windows build (no SNI choice)");
        return AX_EINVAL;
    }
    bool key_in_cert = !key_file;
    if (!key_file) key_file = cert_file;
    HCERTSTORE store = NULL;
    int rc = load_certs("certificate", cert_file, &store, &ctx->cert, why, why_len);
    if (rc) return rc;
    rc = load_key(ctx, key_file, key_in_cert, why, why_len);
    if (!rc) rc = acquire(ctx, why, why_len);
    if (rc) {
        CertFreeCertificateContext(ctx->cert);
        ctx->cert = NULL;
        if (ctx->key_prov) CryptReleaseContext(ctx->key_prov, 0);
        ctx->key_prov = 0;
    }
    CertCloseStore(store, 0); /* the context keeps what it needs */
    return rc;
}

/* ax_tls_client_new (tls_common.c) after the options: the CA, a client
 * certificate, the engine's context.  0 or an AX_E* code with why. */
int ax__tls_client_load(ax_tls_ctx *ctx, const ax_tls_opts *o, char *why, size_t why_len)
{
    int rc = 0;
    const char *ca = o ? o->ca_file : NULL;
    if (ca && (rc = load_certs("CA file", ca, &ctx->ca, NULL, why, why_len)) != 0) goto fail;
    if ((rc = acquire(ctx, why, why_len)) != 0) goto fail;
    return 0;
fail:
    return rc;
}

ax_tls_ctx *ax__tls_ctx_ref(ax_tls_ctx *ctx)
{
    InterlockedIncrement(&ctx->com.refs);
    return ctx;
}

void ax_tls_ctx_free(ax_tls_ctx *ctx)
{
    if (!ctx || InterlockedDecrement(&ctx->com.refs) != 0) return;
    if (ctx->have_cred) FreeCredentialsHandle(&ctx->cred);
    if (ctx->cert) CertFreeCertificateContext(ctx->cert);
    if (ctx->key_prov) CryptReleaseContext(ctx->key_prov, 0);
    if (ctx->ca) CertCloseStore(ctx->ca, 0);
    ax__tls_ctx_common_free(&ctx->com);
    ax_free(ctx);
}

static ax_tls_ctx *default_client;
static int default_client_err;
static INIT_ONCE default_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK default_client_init(PINIT_ONCE once, PVOID param, PVOID *out)
{
    (void)once, (void)param, (void)out;
    default_client = ax_tls_client_new(NULL, NULL, 0, &default_client_err);
    return TRUE;
}

ax_tls_ctx *ax__tls_default_client(int *err)
{
    InitOnceExecuteOnce(&default_once, default_client_init, NULL, NULL);
    if (!default_client) *err = default_client_err;
    return default_client;
}

int ax_tls_make_self_signed(const char *name, int days, const char *cert_path, const char *key_path,
                            char *why, size_t why_len)
{
    (void)name, (void)days, (void)cert_path, (void)key_path;
    ax__tls_whyf(why, why_len, "axon cert is Linux-only (OpenSSL): make the certificate there");
    return AX_ETLS;
}

/* ---- verification -------------------------------------------------------- */

/* "*.example.org" matches one label in front of "example.org". */
static bool dns_match(const wchar_t *pat, const char *host)
{
    char p[256];
    if (WideCharToMultiByte(CP_UTF8, 0, pat, -1, p, sizeof p, NULL, NULL) <= 0) return false;
    if (p[0] == '*' && p[1] == '.') {
        const char *dot = strchr(host, '.');
        return dot && dot != host && _stricmp(dot + 1, p + 2) == 0;
    }
    return _stricmp(p, host) == 0;
}

static bool host_matches(PCCERT_CONTEXT cert, const char *host)
{
    unsigned char ip[16];
    size_t iplen = 0;
    if (inet_pton(AF_INET, host, ip) == 1)
        iplen = 4;
    else if (inet_pton(AF_INET6, host, ip) == 1)
        iplen = 16;
    bool has_dns = false, ok = false;
    PCERT_EXTENSION ext = CertFindExtension(szOID_SUBJECT_ALT_NAME2, cert->pCertInfo->cExtension,
                                            cert->pCertInfo->rgExtension);
    CERT_ALT_NAME_INFO *alt = NULL;
    DWORD n = 0;
    if (ext && CryptDecodeObjectEx(X509_ASN_ENCODING, X509_ALTERNATE_NAME, ext->Value.pbData,
                                   ext->Value.cbData, CRYPT_DECODE_ALLOC_FLAG, NULL, &alt, &n)) {
        for (DWORD i = 0; i < alt->cAltEntry && !ok; i++) {
            CERT_ALT_NAME_ENTRY *e = &alt->rgAltEntry[i];
            if (e->dwAltNameChoice == CERT_ALT_NAME_DNS_NAME) {
                has_dns = true;
                ok = !iplen && dns_match(e->pwszDNSName, host);
            } else if (e->dwAltNameChoice == CERT_ALT_NAME_IP_ADDRESS) {
                ok = iplen && e->IPAddress.cbData == iplen &&
                     memcmp(e->IPAddress.pbData, ip, iplen) == 0;
            }
        }
        LocalFree(alt);
    }
    if (ok || has_dns || iplen) return ok;
    wchar_t cn[256]; /* no DNS name: the common name */
    if (CertGetNameStringW(cert, CERT_NAME_ATTR_TYPE, 0, (void *)szOID_COMMON_NAME, cn, 256) <= 1)
        return false;
    return dns_match(cn, host);
}

/* The chain's first error in OpenSSL's words, or NULL when it is fine. */
static const char *chain_error(ax_tls_ctx *ctx, PCCERT_CHAIN_CONTEXT chain)
{
    DWORD st = chain->TrustStatus.dwErrorStatus;
    const CERT_SIMPLE_CHAIN *sc = chain->rgpChain[0];
    PCCERT_CONTEXT top = sc->rgpElement[sc->cElement - 1]->pCertContext;
    if (ctx->ca) { /* the caller's CAs, and only them */
        PCCERT_CONTEXT found = CertFindCertificateInStore(
            ctx->ca, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0, CERT_FIND_EXISTING, top, NULL);
        if (!found)
            return sc->cElement == 1 ? "self-signed certificate"
                                     : "unable to get local issuer certificate";
        CertFreeCertificateContext(found);
        st &= ~(DWORD)(CERT_TRUST_IS_UNTRUSTED_ROOT | CERT_TRUST_IS_PARTIAL_CHAIN);
    }
    if (st & CERT_TRUST_IS_NOT_TIME_VALID) return "certificate has expired";
    if (st & CERT_TRUST_IS_NOT_SIGNATURE_VALID) return "certificate signature failure";
    if (st & CERT_TRUST_IS_REVOKED) return "certificate revoked";
    if (st & CERT_TRUST_IS_UNTRUSTED_ROOT)
        return sc->cElement == 1 ? "self-signed certificate" : "self-signed certificate in chain";
    if (st & CERT_TRUST_IS_PARTIAL_CHAIN) return "unable to get local issuer certificate";
    if (st & CERT_TRUST_IS_NOT_VALID_FOR_USAGE) return "unsupported certificate purpose";
    if (st & CERT_TRUST_IS_CYCLIC) return "certificate chain is cyclic";
    return NULL;
}

static int verify_peer(ax__tls *t)
{
    PCCERT_CONTEXT peer = NULL;
    if (QueryContextAttributesW(&t->h, SECPKG_ATTR_REMOTE_CERT_CONTEXT, &peer) != SEC_E_OK ||
        !peer) {
        ax__tls_detailf(t, "certificate verification failed: the server sent no certificate");
        return AX_ECERT;
    }
    HCERTSTORE extra = peer->hCertStore;
    HCERTSTORE coll = NULL;
    if (t->ctx->ca && (coll = CertOpenStore(CERT_STORE_PROV_COLLECTION, 0, 0, 0, NULL)) != NULL) {
        CertAddStoreToCollection(coll, peer->hCertStore, 0, 0);
        CertAddStoreToCollection(coll, t->ctx->ca, 0, 0);
        extra = coll;
    }
    LPSTR usage[] = {(LPSTR)szOID_PKIX_KP_SERVER_AUTH};
    CERT_CHAIN_PARA cp = {.cbSize = sizeof cp};
    cp.RequestedUsage.dwType = USAGE_MATCH_TYPE_OR;
    cp.RequestedUsage.Usage.cUsageIdentifier = 1;
    cp.RequestedUsage.Usage.rgpszUsageIdentifier = usage;
    PCCERT_CHAIN_CONTEXT chain = NULL;
    int rc = 0;
    if (!CertGetCertificateChain(NULL, peer, NULL, extra, &cp, 0, NULL, &chain)) {
        ax__tls_detailf(t, "certificate verification failed: no chain (error %lu)",
                        (unsigned long)GetLastError());
        rc = AX_ECERT;
    } else {
        const char *e = chain_error(t->ctx, chain);
        if (e) {
            ax__tls_detailf(t, "certificate verification failed: %s", e);
            rc = AX_ECERT;
        } else if (t->host && !host_matches(peer, t->host)) {
            ax__tls_detailf(t, "certificate verification failed: Hostname mismatch");
            rc = AX_ECERT;
        }
        CertFreeCertificateChain(chain);
    }
    if (coll) CertCloseStore(coll, 0);
    CertFreeCertificateContext(peer);
    return rc;
}

/* ---- sessions ------------------------------------------------------------ */

ax__tls *ax__tls_new(ax_tls_ctx *ctx, bool server, const char *host, int *err)
{
    ax__tls *t = ax_calloc(1, sizeof(*t));
    if (!t) {
        *err = AX_ENOMEM;
        return NULL;
    }
    t->ctx = ax__tls_ctx_ref(ctx);
    t->server = server;
    if (ctx->com.server_name) host = ctx->com.server_name;
    if (!server && host && *host) {
        size_t n = strlen(host) + 1;
        int wn = MultiByteToWideChar(CP_UTF8, 0, host, -1, NULL, 0);
        t->host = ax_malloc(n);
        t->target = wn > 0 ? ax_malloc((size_t)wn * sizeof(wchar_t)) : NULL;
        if (!t->host || !t->target) {
            ax__tls_free(t);
            *err = AX_ENOMEM;
            return NULL;
        }
        memcpy(t->host, host, n);
        MultiByteToWideChar(CP_UTF8, 0, host, -1, t->target, wn);
        if (ctx->com.insecure) { /* nothing to check it against */
            ax_free(t->host);
            t->host = NULL;
        }
    }
    return t;
}

void ax__tls_free(ax__tls *t)
{
    if (!t) return;
    if (t->have_h) DeleteSecurityContext(&t->h);
    ax_tls_ctx_free(t->ctx);
    ax__buf_free(&t->in);
    ax__buf_free(&t->plain);
    ax__tls_common_free(&t->com);
    ax_free(t->target);
    ax_free(t->host);
    ax_free(t);
}

int ax__tls_feed(ax__tls *t, const char *data, size_t len)
{
    return ax__buf_append(&t->in, data, len);
}

/* What a handshake call produced goes out; what it did not use stays. */
static int take_token(ax__tls *t, SecBuffer *tok)
{
    int rc = 0;
    if (tok->pvBuffer && tok->cbBuffer)
        rc = ax__buf_append(&t->com.out, tok->pvBuffer, tok->cbBuffer);
    if (tok->pvBuffer) FreeContextBuffer(tok->pvBuffer);
    tok->pvBuffer = NULL;
    return rc;
}

/* One InitializeSecurityContext or AcceptSecurityContext on `in`. */
static SECURITY_STATUS hs_call(ax__tls *t, SecBuffer *tok)
{
    SecBuffer inb[3] = {
        {(unsigned long)t->in.len, SECBUFFER_TOKEN, t->in.p},
        {0, SECBUFFER_EMPTY, NULL},
        {0, SECBUFFER_EMPTY, NULL},
    };
    SecBufferDesc ind = {SECBUFFER_VERSION, 2, inb};
    bool first = !t->have_h;
    if (first && t->ctx->com.alpn) { /* ALPN goes with the first call */
        SecBuffer a = {t->ctx->com.alpn_len, SECBUFFER_APPLICATION_PROTOCOLS, t->ctx->com.alpn};
        if (t->in.len) {
            inb[2] = a;
            ind.cBuffers = 3;
        } else {
            inb[0] = a;
            ind.cBuffers = 1;
        }
    }
    tok[0] = (SecBuffer){0, SECBUFFER_TOKEN, NULL};
    tok[1] = (SecBuffer){0, SECBUFFER_ALERT, NULL};
    SecBufferDesc outd = {SECBUFFER_VERSION, 2, tok};
    ULONG attrs = 0;
    TimeStamp exp;
    SECURITY_STATUS s;
    if (t->server) {
        ULONG req = ASC_REQ_SEQUENCE_DETECT | ASC_REQ_REPLAY_DETECT | ASC_REQ_CONFIDENTIALITY |
                    ASC_REQ_ALLOCATE_MEMORY | ASC_REQ_STREAM | ASC_REQ_EXTENDED_ERROR;
        s = AcceptSecurityContext(&t->ctx->cred, first ? NULL : &t->h, &ind, req, 0,
                                  first ? &t->h : NULL, &outd, &attrs, &exp);
    } else {
        ULONG req = ISC_REQ_SEQUENCE_DETECT | ISC_REQ_REPLAY_DETECT | ISC_REQ_CONFIDENTIALITY |
                    ISC_REQ_ALLOCATE_MEMORY | ISC_REQ_STREAM | ISC_REQ_EXTENDED_ERROR |
                    ISC_REQ_MANUAL_CRED_VALIDATION;
        bool none = first && !t->in.len && !t->ctx->com.alpn;
        s = InitializeSecurityContextW(&t->ctx->cred, first ? NULL : &t->h, t->target, req, 0, 0,
                                       none ? NULL : &ind, 0, first ? &t->h : NULL, &outd, &attrs,
                                       &exp);
    }
    if (first && (s == SEC_E_OK || s == SEC_I_CONTINUE_NEEDED || s == SEC_I_INCOMPLETE_CREDENTIALS))
        t->have_h = true;
    if (s != SEC_E_INCOMPLETE_MESSAGE) {
        size_t extra = 0;
        for (int i = 0; i < 2; i++)
            if (inb[i].BufferType == SECBUFFER_EXTRA) extra = inb[i].cbBuffer;
        if (s == SEC_E_OK || s == SEC_I_CONTINUE_NEEDED || s == SEC_I_INCOMPLETE_CREDENTIALS)
            ax__buf_consume(&t->in, t->in.len - (extra < t->in.len ? extra : t->in.len));
    }
    return s;
}

static int handshake_done(ax__tls *t)
{
    t->done = true;
    if (QueryContextAttributesW(&t->h, SECPKG_ATTR_STREAM_SIZES, &t->sizes) != SEC_E_OK) {
        ax__tls_detailf(t, "TLS handshake failed: no stream sizes");
        return AX_ETLS;
    }
    if (!t->server && !t->ctx->com.insecure) {
        int rc = verify_peer(t);
        if (rc) {
            ax__tls_close_notify(t); /* the peer learns it is over */
            return rc;
        }
    }
    return 1;
}

int ax__tls_handshake(ax__tls *t)
{
    if (t->done) return 1;
    for (;;) {
        if ((t->have_h || t->server) && t->in.len < 5) return 0; /* their turn: a record */
        SecBuffer tok[2];
        SECURITY_STATUS s = hs_call(t, tok);
        if (take_token(t, &tok[0]) != 0) return AX_ENOMEM;
        if (tok[1].pvBuffer) FreeContextBuffer(tok[1].pvBuffer);
        switch (s) {
        case SEC_E_OK:
            return handshake_done(t);
        case SEC_I_CONTINUE_NEEDED:
        case SEC_I_INCOMPLETE_CREDENTIALS: /* a client certificate asked for: we have none */
            continue;
        case SEC_E_INCOMPLETE_MESSAGE:
            return 0;
        default: {
            char text[96];
            ax__tls_detailf(t, "TLS handshake failed: %s", sec_text(s, text, sizeof text));
            return AX_ETLS;
        }
        }
    }
}

/* One record of `in` into `plain`: 1, 0 when incomplete, AX_EOF, AX_ETLS. */
static int decrypt_one(ax__tls *t)
{
    if (t->in.len < 5) return 0; /* not even a record header (Wine reads one blindly) */
    SecBuffer b[4] = {
        {(unsigned long)t->in.len, SECBUFFER_DATA, t->in.p},
        {0, SECBUFFER_EMPTY, NULL},
        {0, SECBUFFER_EMPTY, NULL},
        {0, SECBUFFER_EMPTY, NULL},
    };
    SecBufferDesc d = {SECBUFFER_VERSION, 4, b};
    bool alert = t->in.p[0] == 21; /* the record's content type, in the clear before TLS 1.3 */
    SECURITY_STATUS s = DecryptMessage(&t->h, &d, 0, NULL);
    if (s == SEC_E_INCOMPLETE_MESSAGE) return 0;
    if (s != SEC_E_OK && s != SEC_I_RENEGOTIATE && s != SEC_I_CONTEXT_EXPIRED) {
        char text[96];
        ax__tls_detailf(t, "TLS error: %s", sec_text(s, text, sizeof text));
        return AX_ETLS;
    }
    size_t extra = 0, got = 0;
    for (int i = 0; i < 4; i++) {
        if (b[i].BufferType == SECBUFFER_DATA && b[i].cbBuffer) {
            if (ax__buf_append(&t->plain, b[i].pvBuffer, b[i].cbBuffer) != 0) return AX_ENOMEM;
            got += b[i].cbBuffer;
        }
        if (b[i].BufferType == SECBUFFER_EXTRA) extra = b[i].cbBuffer;
    }
    ax__buf_consume(&t->in, t->in.len - (extra < t->in.len ? extra : t->in.len));
    /* Windows says SEC_I_CONTEXT_EXPIRED for close_notify; Wine (8.0, on
     * GnuTLS) says SEC_E_OK with no plaintext: an alert record that
     * decrypts to nothing and is not an error is the close_notify. */
    if (s == SEC_I_CONTEXT_EXPIRED || (s == SEC_E_OK && alert && !got)) return AX_EOF;
    if (s == SEC_I_RENEGOTIATE && t->in.len) { /* post-handshake messages (TLS 1.3 tickets) */
        SecBuffer tok[2];
        s = hs_call(t, tok);
        if (take_token(t, &tok[0]) != 0) return AX_ENOMEM;
        if (tok[1].pvBuffer) FreeContextBuffer(tok[1].pvBuffer);
        if (s != SEC_E_OK && s != SEC_I_CONTINUE_NEEDED && s != SEC_E_INCOMPLETE_MESSAGE) {
            char text[96];
            ax__tls_detailf(t, "TLS error: %s", sec_text(s, text, sizeof text));
            return AX_ETLS;
        }
    }
    return 1;
}

int ax__tls_read(ax__tls *t, char *buf, size_t len)
{
    if (!t->done) return 0;
    while (!t->plain.len) {
        int rc = decrypt_one(t);
        if (rc <= 0) return rc;
    }
    size_t n = t->plain.len < len ? t->plain.len : len;
    if (n > INT32_MAX) n = INT32_MAX;
    memcpy(buf, t->plain.p, n);
    ax__buf_consume(&t->plain, n);
    return (int)n;
}

int ax__tls_write(ax__tls *t, const void *data, size_t len)
{
    const char *p = data;
    const size_t max = t->sizes.cbMaximumMessage ? t->sizes.cbMaximumMessage : 16384;
    while (len) {
        size_t n = len < max ? len : max;
        size_t room = t->sizes.cbHeader + n + t->sizes.cbTrailer;
        if (ax__buf_reserve(&t->com.out, room) != 0) return AX_ENOMEM;
        char *rec = t->com.out.p + t->com.out.len;
        memcpy(rec + t->sizes.cbHeader, p, n);
        SecBuffer b[4] = {
            {t->sizes.cbHeader, SECBUFFER_STREAM_HEADER, rec},
            {(unsigned long)n, SECBUFFER_DATA, rec + t->sizes.cbHeader},
            {t->sizes.cbTrailer, SECBUFFER_STREAM_TRAILER, rec + t->sizes.cbHeader + n},
            {0, SECBUFFER_EMPTY, NULL},
        };
        SecBufferDesc d = {SECBUFFER_VERSION, 4, b};
        SECURITY_STATUS s = EncryptMessage(&t->h, 0, &d, 0);
        if (s != SEC_E_OK) {
            char text[96];
            ax__tls_detailf(t, "TLS error: %s", sec_text(s, text, sizeof text));
            return AX_ETLS;
        }
        t->com.out.len += b[0].cbBuffer + b[1].cbBuffer + b[2].cbBuffer;
        p += n;
        len -= n;
    }
    return 0;
}

void ax__tls_close_notify(ax__tls *t)
{
    if (t->sent_close || !t->have_h) return;
    t->sent_close = true;
    DWORD type = SCHANNEL_SHUTDOWN;
    SecBuffer b = {sizeof type, SECBUFFER_TOKEN, &type};
    SecBufferDesc d = {SECBUFFER_VERSION, 1, &b};
    if (ApplyControlToken(&t->h, &d) != SEC_E_OK) return;
    SecBuffer tok[2] = {{0, SECBUFFER_TOKEN, NULL}, {0, SECBUFFER_EMPTY, NULL}};
    SecBufferDesc outd = {SECBUFFER_VERSION, 1, tok};
    ULONG attrs = 0;
    TimeStamp exp;
    if (t->server)
        AcceptSecurityContext(&t->ctx->cred, &t->h, NULL,
                              ASC_REQ_SEQUENCE_DETECT | ASC_REQ_REPLAY_DETECT |
                                  ASC_REQ_CONFIDENTIALITY | ASC_REQ_ALLOCATE_MEMORY |
                                  ASC_REQ_STREAM,
                              0, NULL, &outd, &attrs, &exp);
    else
        InitializeSecurityContextW(&t->ctx->cred, &t->h, t->target,
                                   ISC_REQ_SEQUENCE_DETECT | ISC_REQ_REPLAY_DETECT |
                                       ISC_REQ_CONFIDENTIALITY | ISC_REQ_ALLOCATE_MEMORY |
                                       ISC_REQ_STREAM,
                                   0, 0, NULL, 0, NULL, &outd, &attrs, &exp);
    take_token(t, &tok[0]);
}

const char *ax__tls_alpn(ax__tls *t)
{
    SecPkgContext_ApplicationProtocol ap;
    if (!t->done || !t->ctx->com.alpn ||
        QueryContextAttributesW(&t->h, SECPKG_ATTR_APPLICATION_PROTOCOL, &ap) != SEC_E_OK ||
        ap.ProtoNegoStatus != SecApplicationProtocolNegotiationStatus_Success ||
        !ap.ProtocolIdSize || ap.ProtocolIdSize >= sizeof t->alpn)
        return NULL;
    memcpy(t->alpn, ap.ProtocolId, ap.ProtocolIdSize);
    t->alpn[ap.ProtocolIdSize] = '\0';
    return t->alpn;
}

const char *ax__tls_version(const ax__tls *t)
{
    SecPkgContext_ConnectionInfo ci;
    if (!t->done ||
        QueryContextAttributesW((PCtxtHandle)&t->h, SECPKG_ATTR_CONNECTION_INFO, &ci) != SEC_E_OK)
        return "unknown";
    if (ci.dwProtocol & SP_PROT_TLS1_3) return "TLSv1.3";
    if (ci.dwProtocol & SP_PROT_TLS1_2) return "TLSv1.2";
    if (ci.dwProtocol & SP_PROT_TLS1_1) return "TLSv1.1";
    if (ci.dwProtocol & SP_PROT_TLS1_0) return "TLSv1";
    return "unknown";
}

int ax__tls_peer_subject(const ax__tls *t, char *buf, size_t len)
{
    PCCERT_CONTEXT peer = NULL;
    if (!t->have_h ||
        QueryContextAttributesW((PCtxtHandle)&t->h, SECPKG_ATTR_REMOTE_CERT_CONTEXT, &peer) !=
            SEC_E_OK ||
        !peer)
        return AX_ENOENT;
    if (len)
        CertNameToStrA(X509_ASN_ENCODING, &peer->pCertInfo->Subject,
                       CERT_X500_NAME_STR | CERT_NAME_STR_REVERSE_FLAG, buf, (DWORD)len);
    CertFreeCertificateContext(peer);
    return 0;
}
