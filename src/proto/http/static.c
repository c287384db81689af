/* static.c: files from a folder: paths that stay inside it, conditional
 * requests, ranges, index.html and listings.
 *
 * Confinement: the path is percent-decoded, a ".." segment or a NUL is
 * refused outright, and the file is opened relative to the root with
 * openat2(RESOLVE_BENEATH), so no "..", absolute or symlinked step can
 * leave the root (the kernel answers EXDEV: 403).  Kernels without
 * openat2 get the same rule from realpath() and a prefix check. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <axon/alloc.h>
#include <axon/http.h>

#include "core/buf.h"
#include "server_internal.h"

#define MAX_RANGES AX__HTTP_MAX_RANGES

typedef struct dir {
    char *prefix;
    size_t plen;
    char *root; /* realpath of the root */
    size_t root_len;
    int root_fd;
    int no_openat2;
    unsigned flags;
} dir;

int ax__http_dir_new(const char *prefix, const char *root, unsigned flags, void **out)
{
    dir *d = ax_calloc(1, sizeof(*d));
    if (!d) return AX_ENOMEM;
    d->root_fd = -1;
    char *real = realpath(root, NULL);
    if (!real) {
        int err = -errno;
        ax_free(d);
        return err;
    }
    d->root_len = strlen(real);
    d->root = ax_malloc(d->root_len + 1);
    d->plen = strlen(prefix);
    d->prefix = ax_malloc(d->plen + 1);
    if (!d->root || !d->prefix) {
        free(real);
        ax__http_dir_free(d);
        return AX_ENOMEM;
    }
    memcpy(d->root, real, d->root_len + 1);
    free(real);
    memcpy(d->prefix, prefix, d->plen + 1);
    /* "/static/" and "/static" strip the same way */
    while (d->plen > 0 && d->prefix[d->plen - 1] == '/')
        d->plen--;
    d->flags = flags;
    d->root_fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->root_fd == -1) {
        int err = -errno;
        ax__http_dir_free(d);
        return err;
    }
    *out = d;
    return 0;
}

void ax__http_dir_free(void *p)
{
    dir *d = p;
    if (!d) return;
    if (d->root_fd >= 0) close(d->root_fd);
    ax_free(d->root);
    ax_free(d->prefix);
    ax_free(d);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long ax__http_path_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

int ax__http_path_has_dotdot(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && p[j] != '/')
            j++;
        if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') return 1;
        i = j + 1;
    }
    return 0;
}

/* Open `rel` (no leading '/') below the root; -1 with errno, EXDEV when
 * the path would leave the root. */
static int open_beneath(dir *d, const char *rel)
{
    if (!d->no_openat2) {
        struct open_how how = {
            .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, d->root_fd, rel, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS) return (int)fd;
        d->no_openat2 = 1;
    }
    char full[PATH_MAX], real[PATH_MAX];
    if (snprintf(full, sizeof full, "%s/%s", d->root, rel) >= (int)sizeof full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (!realpath(full, real)) return -1;
    if (strncmp(real, d->root, d->root_len) != 0 ||
        (real[d->root_len] != '/' && real[d->root_len] != '\0' && d->root_len > 1)) {
        errno = EXDEV;
        return -1;
    }
    return open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static void answer(ax_http_req *r, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, ax_http_status_text(status));
    ax_http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static int errno_status(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return 404;
    case EXDEV:
    case ELOOP:
    case EACCES:
    case EPERM:
        return 403;
    default:
        return 500;
    }
}

/* ---- conditional requests ---------------------------------------------- */

/* If-None-Match: "*" or a list of entity tags, compared weakly. */
int ax__http_etag_match(const char *v, size_t len, const char *etag)
{
    size_t el = strlen(etag);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < len && v[i] == '*') return 1;
        if (i + 2 <= len && v[i] == 'W' && v[i + 1] == '/') i += 2;
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        size_t k = j;
        while (k > i && (v[k - 1] == ' ' || v[k - 1] == '\t'))
            k--;
        if (k - i == el && memcmp(v + i, etag, el) == 0) return 1;
        i = j;
    }
    return 0;
}

static int not_modified(ax_http_req *r, const char *etag, time_t mtime)
{
    size_t len;
    const char *v = ax_http_req_header(r, "If-None-Match", &len);
    if (v) return ax__http_etag_match(v, len, etag);
    v = ax_http_req_header(r, "If-Modified-Since", &len);
    time_t since;
    return v && ax__http_parse_date(v, len, &since) == 0 && mtime <= since;
}

/* ---- ranges ------------------------------------------------------------ */

typedef ax__http_range range;

static int parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9') return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

int ax__http_parse_ranges(const char *v, size_t len, uint64_t size, range *out)
{
    const char *p = v, *end = v + len;
    if (len < 6 || strncasecmp(v, "bytes=", 6) != 0) return -1;
    p += 6;
    int n = 0, specs = 0;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p >= end) break;
        uint64_t a = 0, b = UINT64_MAX;
        if (*p == '-') {
            p++;
            uint64_t suffix;
            if (parse_u64(&p, end, &suffix)) return -1;
            if (suffix == 0 || size == 0) goto next;
            a = suffix >= size ? 0 : size - suffix;
            b = size - 1;
        } else {
            if (parse_u64(&p, end, &a) || p >= end || *p++ != '-') return -1;
            if (p < end && *p >= '0' && *p <= '9') {
                if (parse_u64(&p, end, &b) || b < a) return -1;
            }
            if (a >= size) goto next;
            if (b >= size) b = size - 1;
        }
        if (n == MAX_RANGES) return -1;
        out[n].first = a;
        out[n].last = b;
        n++;
    next:
        if (++specs > MAX_RANGES * 2) return -1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ',') return -1;
    }
    return specs ? n : -1;
}

static void content_range(char *buf, size_t len, const range *rg, uint64_t size)
{
    snprintf(buf, len, "bytes %llu-%llu/%llu", (unsigned long long)rg->first,
             (unsigned long long)rg->last, (unsigned long long)size);
}

static void send_multipart(ax_http_req *r, int fd, const range *rg, int n, uint64_t size,
                           const char *type, const char *etag)
{
    char boundary[40];
    snprintf(boundary, sizeof boundary, "axon-%.24s", etag + 1);
    boundary[strcspn(boundary, "\"")] = '\0';
    size_t per = strlen(boundary) + strlen(type) + 120;
    size_t memsz = per * (size_t)n + strlen(boundary) + 16;
    char *mem = ax_malloc(memsz);
    ax__http_seg *segs = ax_calloc((size_t)n + 1, sizeof(*segs));
    if (!mem || !segs) {
        ax_free(mem);
        ax_free(segs);
        close(fd);
        answer(r, 500);
        return;
    }
    char *p = mem;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char cr[80];
        content_range(cr, sizeof cr, &rg[i], size);
        int k = snprintf(p, per, "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: %s\r\n\r\n",
                         boundary, type, cr);
        segs[i] = (ax__http_seg){rg[i].first, rg[i].last - rg[i].first + 1, p, (size_t)k};
        total += segs[i].len + (size_t)k;
        p += k;
    }
    int k = snprintf(p, memsz - (size_t)(p - mem), "\r\n--%s--\r\n", boundary);
    segs[n] = (ax__http_seg){0, 0, p, (size_t)k};
    total += (size_t)k;
    char ct[80];
    snprintf(ct, sizeof ct, "multipart/byteranges; boundary=%s", boundary);
    ax_http_add_header(r, "Content-Type", ct);
    ax_http_start(r, 206, (int64_t)total);
    ax__http_send_file(r, fd, segs, n + 1, mem);
}

/* ---- files and folders ------------------------------------------------- */

/* Does Accept-Encoding allow gzip (RFC 9110 12.5.3)?  "gzip" or "x-gzip"
 * with a q-value above 0, or "*" above 0 when gzip is not named. */
static bool accepts_gzip(ax_http_req *r)
{
    size_t len;
    const char *v = ax_http_req_header(r, "Accept-Encoding", &len);
    if (!v) return false;
    int gzip = -1, star = -1; /* -1: not named; else q > 0 */
    const char *end = v + len;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *tok = v;
        while (v < end && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
            v++;
        size_t tl = (size_t)(v - tok);
        bool zero = false;
        while (v < end && *v != ',') { /* parameters: only q matters */
            if ((*v == 'q' || *v == 'Q') && v + 1 < end && v[1] == '=') {
                const char *q = v + 2;
                zero = q < end && *q == '0';
                for (q++; zero && q < end && *q != ',' && *q != ';' && *q != ' '; q++)
                    zero = *q == '0' || *q == '.';
            }
            v++;
        }
        if ((tl == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (tl == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
            gzip = !zero;
        else if (tl == 1 && *tok == '*')
            star = !zero;
    }
    return gzip == 1 || (gzip == -1 && star == 1);
}

static void serve_file(ax_http_req *r, int fd, const struct stat *st, const char *name, size_t nlen)
{
    char etag[48], lm[AX__HTTP_DATE_LEN + 1];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st->st_mtime,
             (unsigned long long)st->st_size);
    ax__http_date(st->st_mtime, lm);
    ax_http_add_header(r, "ETag", etag);
    ax_http_add_header(r, "Last-Modified", lm);
    if (not_modified(r, etag, st->st_mtime)) {
        close(fd);
        ax_http_start(r, 304, -1);
        ax_http_end(r);
        return;
    }
    ax_http_add_header(r, "Accept-Ranges", "bytes");
    const char *type = ax__http_mime(name, nlen);
    uint64_t size = (uint64_t)st->st_size;
    size_t len;
    const char *rv = ax_http_req_header(r, "Range", &len);
    size_t il;
    const char *ir = ax_http_req_header(r, "If-Range", &il);
    if (rv && ir &&
        !((il == strlen(etag) && memcmp(ir, etag, il) == 0) ||
          (il == AX__HTTP_DATE_LEN && memcmp(ir, lm, il) == 0)))
        rv = NULL; /* the client's copy is stale: send it all */
    range rg[MAX_RANGES];
    int n = rv && ax_http_req_is(r, "GET") ? ax__http_parse_ranges(rv, len, size, rg) : -1;
    if (n == 0) {
        char cr[48];
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        ax_http_add_header(r, "Content-Range", cr);
        close(fd);
        answer(r, 416);
        return;
    }
    if (n > 1) {
        send_multipart(r, fd, rg, n, size, type, etag);
        return;
    }
    ax__http_seg seg = {0, size, NULL, 0};
    ax_http_add_header(r, "Content-Type", type);
    if (n == 1) {
        char cr[80];
        content_range(cr, sizeof cr, &rg[0], size);
        ax_http_add_header(r, "Content-Range", cr);
        seg.off = rg[0].first;
        seg.len = rg[0].last - rg[0].first + 1;
    }
    ax_http_start(r, n == 1 ? 206 : 200, (int64_t)seg.len);
    ax__http_send_file(r, fd, &seg, 1, NULL);
}

/* The listing: appends after a failure are skipped, the page is a 500. */
typedef struct buf {
    ax__buf b;
    bool failed;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (!b->failed && ax__buf_append(&b->b, s, n) != 0) b->failed = true;
}

static void buf_html(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            buf_add(b, "&amp;", 5);
            break;
        case '<':
            buf_add(b, "&lt;", 4);
            break;
        case '>':
            buf_add(b, "&gt;", 4);
            break;
        case '"':
            buf_add(b, "&quot;", 6);
            break;
        case '\'':
            buf_add(b, "&#39;", 5);
            break;
        default:
            buf_add(b, s + i, 1);
        }
    }
}

static void buf_url(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_add(b, s + i, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(b, e, 3);
        }
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(ax_http_req *r, int fd, const char *shown)
{
    DIR *dp = fdopendir(fd);
    if (!dp) {
        close(fd);
        answer(r, 500);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        int isdir = fstatat(dirfd(dp), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        size_t l = strlen(e->d_name);
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = ax_realloc(names, cap * sizeof(*nn));
            if (!nn) break;
            names = nn;
        }
        char *s = ax_malloc(l + 2);
        if (!s) break;
        memcpy(s, e->d_name, l);
        s[l] = isdir ? '/' : '\0';
        s[l + 1] = '\0';
        names[n++] = s;
    }
    closedir(dp);
    qsort(names, n, sizeof(*names), name_cmp);
    buf b = {0};
    static const char head[] =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ";
    buf_add(&b, head, sizeof head - 1);
    buf_html(&b, shown, strlen(shown));
    buf_add(&b, "</title></head>\n<body><h1>Index of ", 35);
    buf_html(&b, shown, strlen(shown));
    buf_add(&b, "</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n", 42);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        int slash = l && names[i][l - 1] == '/';
        buf_add(&b, "<li><a href=\"", 13);
        buf_url(&b, names[i], l - (size_t)slash);
        if (slash) buf_add(&b, "/", 1);
        buf_add(&b, "\">", 2);
        buf_html(&b, names[i], l);
        buf_add(&b, "</a></li>\n", 10);
        ax_free(names[i]);
    }
    ax_free(names);
    buf_add(&b, "</ul></body></html>\n", 20);
    if (b.failed)
        answer(r, 500);
    else
        ax_http_respond(r, 200, "text/html; charset=utf-8", b.b.p, b.b.len);
    ax__buf_free(&b.b);
}

/* A precompressed sibling `rel.gz` (a regular file below the root) for a
 * client that takes gzip: serve it instead, with Content-Encoding. */
static void serve_maybe_gz(ax_http_req *r, dir *d, int fd, const struct stat *st, const char *rel)
{
    char gz[PATH_MAX];
    size_t n = strlen(rel);
    struct stat gst;
    int gfd = -1;
    if (n + 4 <= sizeof gz && !(n > 3 && strcmp(rel + n - 3, ".gz") == 0)) {
        memcpy(gz, rel, n);
        memcpy(gz + n, ".gz", 4);
        gfd = open_beneath(d, gz);
        if (gfd >= 0 && (fstat(gfd, &gst) != 0 || !S_ISREG(gst.st_mode))) {
            close(gfd);
            gfd = -1;
        }
    }
    if (gfd < 0) {
        serve_file(r, fd, st, rel, n);
        return;
    }
    ax_http_add_header(r, "Vary", "Accept-Encoding");
    if (!accepts_gzip(r)) {
        close(gfd);
        serve_file(r, fd, st, rel, n);
        return;
    }
    close(fd);
    ax_http_add_header(r, "Content-Encoding", "gzip");
    serve_file(r, gfd, &gst, rel, n); /* the type is the original file's */
}

static void serve_dir(ax_http_req *r, dir *d, int fd, const char *rel, const char *shown)
{
    size_t plen;
    const char *path = ax_http_req_path(r, &plen);
    if (plen == 0 || path[plen - 1] != '/') {
        /* relative links in the page need the trailing slash */
        close(fd);
        size_t ql;
        const char *q = ax_http_req_query(r, &ql);
        char *loc = ax_malloc(plen + ql + 3);
        if (!loc) {
            answer(r, 500);
            return;
        }
        memcpy(loc, path, plen);
        loc[plen] = '/';
        loc[plen + 1] = '\0';
        if (ql) {
            loc[plen + 1] = '?';
            memcpy(loc + plen + 2, q, ql);
            loc[plen + 2 + ql] = '\0';
        }
        ax_http_add_header(r, "Location", loc);
        ax_free(loc);
        answer(r, 301);
        return;
    }
    char idx[PATH_MAX];
    snprintf(idx, sizeof idx, "%s%sindex.html", strcmp(rel, ".") ? rel : "",
             strcmp(rel, ".") && rel[strlen(rel) - 1] != '/' ? "/" : "");
    int ifd = open_beneath(d, idx);
    struct stat st;
    if (ifd >= 0 && fstat(ifd, &st) == 0 && S_ISREG(st.st_mode)) {
        close(fd);
        serve_maybe_gz(r, d, ifd, &st, idx);
        return;
    }
    if (ifd >= 0) close(ifd);
    if (!(d->flags & AX_HTTP_DIR_LIST)) {
        close(fd);
        answer(r, 403);
        return;
    }
    list_dir(r, fd, shown);
}

void ax__http_dir_handler(ax_http_req *r, void *ud)
{
    dir *d = ud;
    if (!ax_http_req_is(r, "GET") && !ax_http_req_is(r, "HEAD")) {
        ax_http_add_header(r, "Allow", "GET, HEAD");
        answer(r, 405);
        return;
    }
    size_t plen;
    const char *path = ax_http_req_path(r, &plen);
    if (plen < d->plen) plen = d->plen; /* the route matched: path starts with prefix */
    const char *rel = path + d->plen;
    size_t rlen = plen - d->plen;
    char dec[PATH_MAX];
    if (rlen >= sizeof dec) {
        answer(r, 404);
        return;
    }
    long n = ax__http_path_decode(rel, rlen, dec);
    if (n < 0) {
        answer(r, 400);
        return;
    }
    if (ax__http_path_has_dotdot(dec, (size_t)n)) {
        answer(r, 403);
        return;
    }
    const char *p = dec;
    while (*p == '/')
        p++;
    const char *relp = *p ? p : ".";
    int fd = open_beneath(d, relp);
    if (fd == -1) {
        answer(r, errno_status(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        answer(r, 500);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        serve_dir(r, d, fd, relp, dec[0] ? dec : "/");
    } else if (S_ISREG(st.st_mode)) {
        serve_maybe_gz(r, d, fd, &st, relp);
    } else {
        close(fd);
        answer(r, 403);
    }
}
