/* ftp_server: serves a folder over FTP (RFC 959), passive mode only.
 *
 *     ftp_server [options] ROOT [URL]       default URL tcp://127.0.0.1:2121
 *       --user NAME:PASS   the account that may log in and write; without
 *                          it, "anonymous" logs in with any password and
 *                          may only read
 *       --tls CERT KEY     offer AUTH TLS (RFC 4217) for the control
 *                          connection and PROT P for data connections
 *
 *     curl ftp://127.0.0.1:2121/              (a listing)
 *     curl -u NAME:PASS -T file ftp://127.0.0.1:2121/dir/
 *
 * FTP uses two kinds of connection.  Commands and replies go over the
 * control connection, one line each, as in SMTP.  Every listing and every
 * file goes over a data connection of its own: the client asks with PASV
 * (IPv4) or EPSV (RFC 2428, any family) where to connect, we open a
 * listener on a free port and tell it, the client connects, and the
 * transfer's end is the data connection's end.
 *
 * No path can leave ROOT: ftp_path() (ftp_parse.h) normalizes every path
 * the client names and refuses a ".." above the root, and before a file
 * is opened, realpath() says where the kernel would really go, so a
 * symbolic link that points out of ROOT is refused too. */
#include <axon/axon.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ftp_parse.h"

#define CHUNK 65536 /* bytes read from a file per write to a data connection */
#define MAX_ERRORS 20

/* What a data listener knows of its session.  A TLS data connection may
 * finish its handshake after the session that asked for it has gone, so
 * its listener points here and not at the session: a ticket outlives its
 * session (back in the server's pool, `s` NULL) and is reused, never
 * freed while the server runs. */
typedef struct ticket {
    struct session *s;
    struct ticket *next; /* in the pool */
} ticket;

typedef struct server {
    char root[PATH_MAX]; /* realpath() of ROOT */
    const char *user, *pass;
    ax_tls_ctx *tls;
    ticket *pool;
} server;

enum xfer { X_NONE, X_SEND_BUF, X_SEND_FILE, X_RECV_FILE };

typedef struct session {
    server *srv;
    ticket *ticket;
    ax_conn *ctl;
    bool user_given, logged_in, may_write, prot_private;
    int errors;
    char cwd[FTP_MAX_PATH];
    char rename_from[PATH_MAX]; /* RNFR, real path; "" when none */
    uint64_t rest;              /* REST offset for the next RETR or STOR */
    /* the data connection: a listener after PASV/EPSV, then one connection */
    ax_listener *pasv;
    ax_conn *data;
    bool data_open;
    enum xfer xfer; /* what the data connection is for, once asked */
    int fd;         /* the file sent or received */
    char *buf;      /* a listing to send */
    size_t buf_len;
    bool failed; /* the transfer's error reply was sent already */
} session;

static void reply(session *s, const char *fmt, ...)
{
    char line[PATH_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 3) n = (int)sizeof line - 3;
    memcpy(line + n, "\r\n", 2);
    if (ax_conn_write(s->ctl, line, (size_t)n + 2) < 0) ax_conn_close(s->ctl);
}

/* ---- paths: the client's view and the kernel's ---------------------------- */

/* The client's path `arg` as a real path under the root in `real`, and as
 * the client sees it in `virt` (may be NULL).  `must_exist`: the whole
 * path must exist; otherwise its folder must (STOR, MKD, RNTO).  Either
 * way the result, symbolic links resolved, is inside the root.  Replies
 * 550 and returns false when not. */
static bool resolve(session *s, const char *arg, size_t arg_len, bool must_exist, char *real,
                    char *virt)
{
    char v[FTP_MAX_PATH], joined[PATH_MAX + FTP_MAX_PATH], got[PATH_MAX];
    const char *root = s->srv->root;
    long n = ftp_path(s->cwd, arg, arg_len, v, sizeof v);
    if (n == -2) {
        reply(s, "550 Permission denied: outside the root");
        return false;
    }
    if (n < 0) {
        reply(s, "553 File name not allowed");
        return false;
    }
    snprintf(joined, sizeof joined, "%s%s", strcmp(root, "/") ? root : "", n > 1 ? v : "/");
    char *base = strrchr(joined, '/');
    if (must_exist || n == 1) {
        if (!realpath(joined, got)) {
            reply(s, "550 %s: %s", v, strerror(errno));
            return false;
        }
    } else { /* resolve the folder, keep the new name */
        *base = '\0';
        if (!realpath(joined[0] ? joined : "/", got)) {
            reply(s, "550 %s: %s", v, strerror(errno));
            return false;
        }
        size_t gl = strlen(got);
        if (gl + strlen(base + 1) + 2 > sizeof got) {
            reply(s, "553 File name not allowed");
            return false;
        }
        snprintf(got + gl, sizeof got - gl, "/%s", base + 1);
    }
    size_t rl = strlen(root);
    if (rl > 1 && (strncmp(got, root, rl) != 0 || (got[rl] != '\0' && got[rl] != '/'))) {
        reply(s, "550 Permission denied: outside the root");
        return false;
    }
    memcpy(real, got, strlen(got) + 1);
    if (virt) memcpy(virt, v, (size_t)n + 1);
    return true;
}

/* ---- listings --------------------------------------------------------------- */

/* Append to the session's listing buffer (grown as needed). */
static bool put(session *s, const char *fmt, ...)
{
    char line[PATH_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) return true; /* skip a name too long to list */
    char *b = realloc(s->buf, s->buf_len + (size_t)n);
    if (!b) return false;
    memcpy(b + s->buf_len, line, (size_t)n);
    s->buf = b;
    s->buf_len += (size_t)n;
    return true;
}

/* One entry in the format of `ls -l`, which every client parses. */
static bool list_long(session *s, const char *name, const struct stat *st)
{
    char mode[11] = "----------", when[16];
    static const char rwx[] = "rwxrwxrwx";
    struct tm tm;
    if (S_ISDIR(st->st_mode)) mode[0] = 'd';
    if (S_ISLNK(st->st_mode)) mode[0] = 'l';
    for (int i = 0; i < 9; i++)
        if (st->st_mode & (0400 >> i)) mode[i + 1] = rwx[i];
    time_t now = time(NULL);
    gmtime_r(&st->st_mtime, &tm);
    bool recent = st->st_mtime > now - 180 * 86400 && st->st_mtime <= now + 86400;
    strftime(when, sizeof when, recent ? "%b %e %H:%M" : "%b %e  %Y", &tm);
    return put(s, "%s %3lu ftp      ftp      %12llu %s %s\r\n", mode, (unsigned long)st->st_nlink,
               (unsigned long long)st->st_size, when, name);
}

/* RFC 3659 7: facts a program can read. */
static bool list_machine(session *s, const char *name, const struct stat *st)
{
    char when[16];
    struct tm tm;
    gmtime_r(&st->st_mtime, &tm);
    strftime(when, sizeof when, "%Y%m%d%H%M%S", &tm);
    const char *type = S_ISDIR(st->st_mode)   ? "dir"
                       : S_ISREG(st->st_mode) ? "file"
                                              : "OS.unix=other";
    return put(s, "type=%s;size=%llu;modify=%s; %s\r\n", type, (unsigned long long)st->st_size,
               when, name);
}

/* LIST, NLST or MLSD of a folder (or of one file, for LIST and NLST). */
static bool make_listing(session *s, enum ftp_verb verb, const char *real)
{
    struct stat st;
    if (lstat(real, &st) == -1) return false;
    if (!S_ISDIR(st.st_mode)) {
        const char *name = strrchr(real, '/') + 1;
        return verb == FTP_NLST ? put(s, "%s\r\n", name) : list_long(s, name, &st);
    }
    DIR *d = opendir(real);
    if (!d) return false;
    bool ok = true;
    struct dirent *e;
    char path[PATH_MAX * 2];
    while (ok && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", real, e->d_name);
        if (lstat(path, &st) == -1) continue; /* gone meanwhile */
        if (verb == FTP_NLST)
            ok = put(s, "%s\r\n", e->d_name);
        else if (verb == FTP_MLSD)
            ok = list_machine(s, e->d_name, &st);
        else
            ok = list_long(s, e->d_name, &st);
    }
    closedir(d);
    return ok;
}

/* ---- the data connection ---------------------------------------------------- */

static void data_forget(session *s)
{
    if (s->pasv) ax_listener_close(s->pasv);
    s->pasv = NULL;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->buf);
    s->buf = NULL;
    s->buf_len = 0;
    s->xfer = X_NONE;
}

/* Write the file on until the connection's queue passes its high
 * watermark (then on_drain calls again) or the file ends. */
static void send_file(session *s)
{
    char chunk[CHUNK];
    while (s->fd >= 0) {
        ssize_t n = read(s->fd, chunk, sizeof chunk);
        if (n == -1 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == -1) {
                reply(s, "451 Read error: %s", strerror(errno));
                s->failed = true;
            }
            close(s->fd);
            s->fd = -1;
            ax_conn_close(s->data); /* the end of the file is the end of the connection */
            return;
        }
        int rc = ax_conn_write(s->data, chunk, (size_t)n);
        if (rc != 0) return; /* 1: wait for on_drain; < 0: closing, on_close tells */
    }
}

/* Both the transfer command and the connection are here: go. */
static void data_start(session *s)
{
    if (!s->data_open || s->xfer == X_NONE) return;
    if (s->xfer == X_SEND_BUF) {
        if (s->buf_len && ax_conn_write(s->data, s->buf, s->buf_len) < 0) return;
        ax_conn_close(s->data);
    } else if (s->xfer == X_SEND_FILE) {
        send_file(s);
    } else {
        ax_conn_resume(s->data); /* the client's bytes may come now */
    }
}

static void data_open(ax_conn *c)
{
    session *s = ((ticket *)ax_conn_data(c))->s;
    ax_addr peer, ctl_peer;
    ax_conn_set_data(c, NULL);
    if (!s || ax_conn_listener(c) != s->pasv) { /* its session, or its PASV, is over */
        ax_conn_abort(c, 0);
        return;
    }
    bool same = ax_conn_peer(c, &peer) == 0 && ax_conn_peer(s->ctl, &ctl_peer) == 0;
    if (same) { /* the same host as the control connection, whatever its port */
        if (peer.sa.ss_family == AF_INET)
            same = !memcmp(&((struct sockaddr_in *)&peer.sa)->sin_addr,
                           &((struct sockaddr_in *)&ctl_peer.sa)->sin_addr, 4);
        else
            same = !memcmp(&((struct sockaddr_in6 *)&peer.sa)->sin6_addr,
                           &((struct sockaddr_in6 *)&ctl_peer.sa)->sin6_addr, 16);
    }
    if (s->data || !same) { /* a second connection, or someone else's */
        ax_conn_abort(c, 0);
        return;
    }
    ax_conn_set_data(c, s);
    s->data = c;
    s->data_open = true;
    ax_conn_pause(c); /* nothing is read before STOR or APPE says where to */
    data_start(s);
}

static size_t data_bytes(ax_conn *c, const char *p, size_t len)
{
    session *s = ax_conn_data(c);
    size_t done = 0;
    while (s->xfer == X_RECV_FILE && s->fd >= 0 && done < len) {
        ssize_t n = write(s->fd, p + done, len - done);
        if (n == -1 && errno == EINTR) continue;
        if (n == -1) {
            reply(s, "452 Write error: %s", strerror(errno));
            s->failed = true;
            ax_conn_abort(c, 0);
            return len;
        }
        done += (size_t)n;
    }
    return len;
}

static void data_drain(ax_conn *c)
{
    session *s = ax_conn_data(c);
    if (s->xfer == X_SEND_FILE) send_file(s);
}

/* The transfer's end: the connection's end.  A received file is complete
 * when the client closed (AX_EOF); a sent one when we did (0). */
static void data_close(ax_conn *c, int reason)
{
    session *s = ax_conn_data(c);
    if (!s) return;
    bool ok = reason == 0 || (reason == AX_EOF && s->xfer == X_RECV_FILE);
    if (s->xfer != X_NONE && !s->failed) {
        if (s->fd >= 0 && s->xfer == X_RECV_FILE && close(s->fd) == -1) ok = false;
        if (s->xfer == X_RECV_FILE) s->fd = -1;
        if (ok)
            reply(s, "226 Transfer complete");
        else
            reply(s, "426 Connection closed; transfer aborted");
    }
    s->data = NULL;
    s->data_open = s->failed = false;
    data_forget(s);
}

static const ax_conn_cbs data_cbs = {
    .on_open = data_open, .on_data = data_bytes, .on_drain = data_drain, .on_close = data_close};

/* PASV and EPSV: a listener on a free port of the address the client
 * reached us at, with TLS when PROT P asked for it. */
static void cmd_passive(session *s, bool extended)
{
    ax_addr local;
    ax_url u;
    char url[AX_ADDR_STRLEN + 8], text[AX_ADDR_STRLEN];
    int err;
    if (ax_conn_local(s->ctl, &local) != 0 ||
        ax_url_split(ax_addr_format(&local, text, sizeof text), &u, NULL, 0) != 0) {
        reply(s, "425 Cannot open a data connection");
        return;
    }
    bool v6 = local.sa.ss_family == AF_INET6;
    if (!extended && v6) {
        reply(s, "522 Use EPSV for IPv6");
        return;
    }
    if (s->data) ax_conn_abort(s->data, 0); /* one data connection at a time */
    data_forget(s);
    snprintf(url, sizeof url, v6 ? "tcp://[%s]:0" : "tcp://%s:0", u.host);
    ax_conn_opts o = {.tls = s->prot_private ? s->srv->tls : NULL};
    static const ax_listen_opts lo = {.backlog = 1};
    s->pasv = ax_listen_ex(ax_conn_loop(s->ctl), url, &data_cbs, &o, &lo, s->ticket, &err);
    if (!s->pasv) {
        reply(s, "425 Cannot open a data connection: %s", ax_strerror(err));
        return;
    }
    int port = ax_addr_port(ax_listener_addr(s->pasv));
    if (extended) {
        reply(s, "229 Entering Extended Passive Mode (|||%d|)", port);
    } else {
        const unsigned char *ip =
            (const unsigned char *)&((struct sockaddr_in *)&local.sa)->sin_addr;
        reply(s, "227 Entering Passive Mode (%d,%d,%d,%d,%d,%d)", ip[0], ip[1], ip[2], ip[3],
              port >> 8, port & 255);
    }
}

/* A transfer command: say 150 and start once the connection is there. */
static void begin(session *s, enum xfer x)
{
    if (!s->pasv && !s->data) {
        reply(s, "425 Use PASV or EPSV first");
        data_forget(s);
        return;
    }
    s->xfer = x;
    reply(s, "150 Opening %s data connection", s->prot_private ? "TLS" : "BINARY mode");
    data_start(s);
}

static void cmd_list(session *s, const ftp_cmd *c)
{
    char real[PATH_MAX];
    const char *arg = c->arg;
    size_t n = c->arg_len;
    if (n && arg[0] == '-') { /* "LIST -la": ls options some clients send */
        const char *sp = memchr(arg, ' ', n);
        n = sp ? n - (size_t)(sp + 1 - arg) : 0;
        arg = sp ? sp + 1 : arg + n;
    }
    if (!resolve(s, arg, n, true, real, NULL)) return;
    free(s->buf);
    s->buf = NULL;
    s->buf_len = 0;
    if (!make_listing(s, c->verb, real)) {
        reply(s, "550 Cannot list: %s", strerror(errno));
        return;
    }
    begin(s, X_SEND_BUF);
}

static void cmd_retr(session *s, const ftp_cmd *c)
{
    char real[PATH_MAX];
    struct stat st;
    uint64_t at = s->rest;
    s->rest = 0;
    if (!resolve(s, c->arg, c->arg_len, true, real, NULL)) return;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        reply(s, "550 Not a plain file");
        if (fd != -1) close(fd);
        return;
    }
    if (at && lseek(fd, (off_t)at, SEEK_SET) == -1) {
        close(fd);
        reply(s, "554 Invalid REST offset");
        return;
    }
    if (s->fd >= 0) close(s->fd);
    s->fd = fd;
    begin(s, X_SEND_FILE);
}

/* STOR (replace, or write from the REST offset) and APPE (append). */
static void cmd_stor(session *s, const ftp_cmd *c)
{
    char real[PATH_MAX];
    uint64_t at = s->rest;
    s->rest = 0;
    if (!s->may_write) {
        reply(s, "550 Permission denied");
        return;
    }
    if (!resolve(s, c->arg, c->arg_len, false, real, NULL)) return;
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW; /* never write through a link */
    if (c->verb == FTP_APPE)
        flags |= O_APPEND;
    else if (!at)
        flags |= O_TRUNC;
    int fd = open(real, flags, 0644);
    if (fd == -1) {
        reply(s, "550 Cannot store: %s", strerror(errno));
        return;
    }
    if (at && (ftruncate(fd, (off_t)at) == -1 || lseek(fd, (off_t)at, SEEK_SET) == -1)) {
        close(fd);
        reply(s, "554 Invalid REST offset");
        return;
    }
    if (s->fd >= 0) close(s->fd);
    s->fd = fd;
    begin(s, X_RECV_FILE);
}

/* ---- the other commands -------------------------------------------------- */

/* A path in a 257 reply: quotes doubled (RFC 959 appendix II). */
static void reply_path(session *s, const char *path, const char *what)
{
    char q[FTP_MAX_PATH * 2];
    size_t n = 0;
    for (const char *p = path; *p && n < sizeof q - 2; p++) {
        if (*p == '"') q[n++] = '"';
        q[n++] = *p;
    }
    q[n] = '\0';
    reply(s, "257 \"%s\" %s", q, what);
}

static void cmd_login(session *s, const ftp_cmd *c)
{
    const server *srv = s->srv;
    if (c->verb == FTP_USER) {
        const char *want = srv->user ? srv->user : "anonymous";
        s->logged_in = false;
        s->user_given = strlen(want) == c->arg_len && !memcmp(want, c->arg, c->arg_len);
        s->user_given =
            s->user_given || (!srv->user && c->arg_len == 3 && !memcmp(c->arg, "ftp", 3));
        reply(s, "331 Password required");
        return;
    }
    bool ok = s->user_given;
    if (srv->user) { /* compare all of it, whatever differs first */
        size_t pl = strlen(srv->pass);
        unsigned diff = pl != c->arg_len;
        for (size_t i = 0; i < c->arg_len; i++)
            diff |= (unsigned char)c->arg[i] ^ (unsigned char)srv->pass[i < pl ? i : 0];
        ok = ok && !diff;
    }
    if (!ok) {
        reply(s, "530 Login incorrect");
        return;
    }
    s->logged_in = true;
    s->may_write = srv->user != NULL;
    reply(s, "230 Logged in%s", s->may_write ? "" : ", read only");
}

static void cmd_feat(session *s)
{
    reply(s, "211-Features:");
    reply(s, " EPSV\r\n PASV\r\n SIZE\r\n MDTM\r\n REST STREAM\r\n MLSD\r\n"
             " MLST type*;size*;modify*;\r\n UTF8\r\n TVFS");
    if (s->srv->tls) reply(s, " AUTH TLS\r\n PBSZ\r\n PROT");
    reply(s, "211 End");
}

/* The commands on one path: folders, sizes and times, deleting, renaming. */
static void cmd_path_op(session *s, const ftp_cmd *c)
{
    char real[PATH_MAX], virt[FTP_MAX_PATH], when[16];
    struct stat st;
    struct tm tm;
    bool exists = c->verb != FTP_MKD && c->verb != FTP_RNTO;
    bool writes = c->verb == FTP_DELE || c->verb == FTP_MKD || c->verb == FTP_RMD ||
                  c->verb == FTP_RNFR || c->verb == FTP_RNTO;
    if (writes && !s->may_write) {
        reply(s, "550 Permission denied");
        return;
    }
    const char *arg = c->verb == FTP_CDUP ? ".." : c->arg;
    size_t n = c->verb == FTP_CDUP ? 2 : c->arg_len;
    if (!resolve(s, arg, n, exists, real, virt)) return;
    bool dir = stat(real, &st) == 0 && S_ISDIR(st.st_mode);
    bool file = !dir && stat(real, &st) == 0 && S_ISREG(st.st_mode);
    switch (c->verb) {
    case FTP_CWD:
    case FTP_CDUP:
        if (!dir) {
            reply(s, "550 Not a folder");
            break;
        }
        memcpy(s->cwd, virt, strlen(virt) + 1);
        reply(s, "250 Folder changed to %s", virt);
        break;
    case FTP_SIZE:
        if (file)
            reply(s, "213 %llu", (unsigned long long)st.st_size);
        else
            reply(s, "550 Not a plain file");
        break;
    case FTP_MDTM:
        if (file && strftime(when, sizeof when, "%Y%m%d%H%M%S", gmtime_r(&st.st_mtime, &tm)))
            reply(s, "213 %s", when);
        else
            reply(s, "550 Not a plain file");
        break;
    case FTP_DELE:
        if (dir)
            reply(s, "550 Is a folder: use RMD");
        else if (unlink(real) == -1)
            reply(s, "550 %s", strerror(errno));
        else
            reply(s, "250 Deleted");
        break;
    case FTP_MKD:
        if (mkdir(real, 0755) == -1)
            reply(s, "550 %s", strerror(errno));
        else
            reply_path(s, virt, "created");
        break;
    case FTP_RMD:
        if (!strcmp(virt, "/"))
            reply(s, "550 Permission denied");
        else if (rmdir(real) == -1)
            reply(s, "550 %s", strerror(errno));
        else
            reply(s, "250 Removed");
        break;
    case FTP_RNFR:
        memcpy(s->rename_from, real, strlen(real) + 1);
        reply(s, "350 Ready for RNTO");
        break;
    case FTP_RNTO:
        if (!s->rename_from[0])
            reply(s, "503 RNFR first");
        else if (rename(s->rename_from, real) == -1)
            reply(s, "550 %s", strerror(errno));
        else
            reply(s, "250 Renamed");
        s->rename_from[0] = '\0';
        break;
    default:
        break;
    }
}

/* TYPE, MODE, STRU, OPTS, REST: settings for what follows. */
static void cmd_settings(session *s, const ftp_cmd *c)
{
    char a = ftp_upper(c->arg[0]); /* each takes an argument: not empty */
    bool one = c->arg_len == 1;
    switch (c->verb) {
    case FTP_TYPE: /* files go as they are; ASCII is taken and treated as image */
        if ((a == 'A' || a == 'I') && (one || c->arg[1] == ' '))
            reply(s, "200 Type set to %c", a);
        else
            reply(s, "504 Type not implemented");
        break;
    case FTP_MODE:
        reply(s, a == 'S' && one ? "200 Mode S" : "504 Only mode S");
        break;
    case FTP_STRU:
        reply(s, a == 'F' && one ? "200 Structure F" : "504 Only structure F");
        break;
    case FTP_OPTS:
        if (c->arg_len >= 4 && !strncasecmp(c->arg, "UTF8", 4))
            reply(s, "200 Always in UTF8");
        else
            reply(s, "501 Option not understood");
        break;
    case FTP_REST:
        if (ftp_offset(c->arg, c->arg_len, &s->rest))
            reply(s, "350 Restarting at %llu", (unsigned long long)s->rest);
        else
            reply(s, "501 Bad offset");
        break;
    default:
        break;
    }
}

/* AUTH TLS, PBSZ, PROT (RFC 4217). */
static bool cmd_security(session *s, const ftp_cmd *c)
{
    if (c->verb == FTP_AUTH) {
        if (!s->srv->tls || ax_conn_is_tls(s->ctl)) {
            reply(s, "504 AUTH not available");
            return true;
        }
        if (!(c->arg_len == 3 && !strncasecmp(c->arg, "TLS", 3)) &&
            !(c->arg_len == 3 && !strncasecmp(c->arg, "SSL", 3))) {
            reply(s, "504 Only AUTH TLS");
            return true;
        }
        reply(s, "234 Proceed with the TLS handshake");
        if (ax_conn_start_tls(s->ctl, s->srv->tls) < 0) ax_conn_close(s->ctl);
        s->logged_in = s->user_given = false; /* log in again, protected */
        return false;
    }
    if (!ax_conn_is_tls(s->ctl)) {
        reply(s, "503 AUTH TLS first");
    } else if (c->verb == FTP_PBSZ) {
        reply(s, "200 PBSZ=0");
    } else {
        char a = ftp_upper(c->arg[0]);
        if (c->arg_len == 1 && (a == 'P' || a == 'C')) {
            s->prot_private = a == 'P';
            reply(s, "200 Data connections %s", s->prot_private ? "protected" : "in the clear");
        } else {
            reply(s, "504 PROT P or C");
        }
    }
    return true;
}

/* Returns false when nothing after this line may be read as plaintext. */
static bool command(session *s, const char *line, size_t len)
{
    ftp_cmd c;
    int rc = ftp_parse(line, len, &c);
    if (rc) {
        if (++s->errors > MAX_ERRORS) {
            reply(s, "421 Too many errors, closing");
            ax_conn_close(s->ctl);
            return false;
        }
        reply(s, rc == 500 ? "500 Command not understood" : "501 Syntax error in arguments");
        return true;
    }
    bool open = c.verb == FTP_USER || c.verb == FTP_PASS || c.verb == FTP_QUIT ||
                c.verb == FTP_FEAT || c.verb == FTP_SYST || c.verb == FTP_NOOP ||
                c.verb == FTP_AUTH || c.verb == FTP_PBSZ || c.verb == FTP_PROT ||
                c.verb == FTP_OPTS || c.verb == FTP_HELP;
    if (!open && !s->logged_in) {
        reply(s, "530 Please log in with USER and PASS");
        return true;
    }
    if (c.verb != FTP_RNTO && c.verb != FTP_RNFR) s->rename_from[0] = '\0';
    switch (c.verb) {
    case FTP_USER:
    case FTP_PASS:
        cmd_login(s, &c);
        break;
    case FTP_QUIT:
        reply(s, "221 Goodbye");
        ax_conn_close(s->ctl);
        return false;
    case FTP_SYST:
        reply(s, "215 UNIX Type: L8");
        break;
    case FTP_FEAT:
        cmd_feat(s);
        break;
    case FTP_NOOP:
        reply(s, "200 OK");
        break;
    case FTP_HELP:
        reply(s, "214 See RFC 959");
        break;
    case FTP_STAT:
        reply(s, "211 axon ftp_server, logged in");
        break;
    case FTP_ALLO:
        reply(s, "202 No storage allocation necessary");
        break;
    case FTP_PWD:
        reply_path(s, s->cwd, "is the current folder");
        break;
    case FTP_PASV:
    case FTP_EPSV:
        if (c.verb == FTP_EPSV && c.arg_len && ftp_upper(c.arg[0]) == 'A') {
            reply(s, "200 EPSV ALL accepted");
            break;
        }
        cmd_passive(s, c.verb == FTP_EPSV);
        break;
    case FTP_PORT:
    case FTP_EPRT:
        reply(s, "502 Active mode is not supported: use PASV or EPSV");
        break;
    case FTP_LIST:
    case FTP_NLST:
    case FTP_MLSD:
        cmd_list(s, &c);
        break;
    case FTP_RETR:
        cmd_retr(s, &c);
        break;
    case FTP_STOR:
    case FTP_APPE:
        cmd_stor(s, &c);
        break;
    case FTP_ABOR:
        if (s->data && s->xfer != X_NONE) {
            reply(s, "426 Transfer aborted");
            s->failed = true;
            ax_conn_abort(s->data, 0);
        }
        data_forget(s);
        reply(s, "226 ABOR done");
        break;
    case FTP_TYPE:
    case FTP_MODE:
    case FTP_STRU:
    case FTP_OPTS:
    case FTP_REST:
        cmd_settings(s, &c);
        break;
    case FTP_AUTH:
    case FTP_PBSZ:
    case FTP_PROT:
        return cmd_security(s, &c);
    default:
        cmd_path_op(s, &c);
        break;
    }
    return true;
}

/* ---- the control connection ---------------------------------------------- */

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    session *s = ax_conn_data(c);
    size_t used = 0, n;
    while (used < len) {
        long r = ftp_line(data + used, len - used, FTP_MAX_LINE, &n);
        if (r == 0) break;
        if (r < 0) {
            reply(s, "500 Line too long");
            ax_conn_close(c);
            return len;
        }
        const char *line = data + used;
        used += (size_t)r;
        if (!command(s, line, n)) return len;
    }
    return used;
}

static void on_open(ax_conn *c)
{
    server *srv = ax_conn_data(c);
    session *s = calloc(1, sizeof(*s));
    ticket *t = srv->pool ? srv->pool : calloc(1, sizeof(*t));
    ax_conn_set_data(c, s && t ? s : NULL);
    if (!s || !t) {
        if (t && t != srv->pool) free(t);
        free(s);
        ax_conn_close(c);
        return;
    }
    if (t == srv->pool) srv->pool = t->next;
    t->s = s;
    s->ticket = t;
    s->srv = srv;
    s->ctl = c;
    s->fd = -1;
    strcpy(s->cwd, "/");
    reply(s, "220 axon ftp_server ready");
}

static void on_close(ax_conn *c, int reason)
{
    session *s = ax_conn_data(c);
    (void)reason;
    if (!s) return;
    if (s->data) { /* its on_close will not find us */
        ax_conn_set_data(s->data, NULL);
        ax_conn_abort(s->data, 0);
    }
    data_forget(s);
    s->ticket->s = NULL; /* a data connection still in its handshake finds no session */
    s->ticket->next = s->srv->pool;
    s->srv->pool = s->ticket;
    free(s);
}

int main(int argc, char **argv)
{
    static server srv;
    static const ax_conn_cbs cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};
    static const ax_conn_opts opts = {.max_input = 4 * FTP_MAX_LINE, .idle_timeout_ms = 600000};
    const char *cert = NULL, *key = NULL, *url = "tcp://127.0.0.1:2121";
    char why[256], where[AX_ADDR_STRLEN], *userpass = NULL;
    int i, err;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--tls") && i + 2 < argc)
            cert = argv[++i], key = argv[++i];
        else if (!strcmp(argv[i], "--user") && i + 1 < argc && strchr(argv[i + 1], ':'))
            userpass = argv[++i];
        else
            break;
    }
    if (i >= argc || argv[i][0] == '-') {
        fprintf(stderr, "usage: ftp_server [--user NAME:PASS] [--tls CERT KEY] ROOT [URL]\n");
        return 2;
    }
    if (!realpath(argv[i], srv.root)) {
        fprintf(stderr, "ftp_server: %s: %s\n", argv[i], strerror(errno));
        return 1;
    }
    if (++i < argc) url = argv[i];
    if (userpass) {
        char *colon = strchr(userpass, ':');
        *colon = '\0';
        srv.user = userpass;
        srv.pass = colon + 1;
    }
    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "ftp_server: %s\n", ax_strerror(err));
        return 1;
    }
    if (cert) {
        ax_tls_opts to = {.cert_file = cert, .key_file = key};
        if (!(srv.tls = ax_tls_server_new(&to, why, sizeof why, &err))) {
            fprintf(stderr, "ftp_server: %s\n", why);
            return 1;
        }
    }
    ax_listener *l = ax_listen(loop, url, &cbs, &opts, &srv, &err);
    if (!l) {
        fprintf(stderr, "ftp_server: %s: %s\n", url, ax_strerror(err));
        return 1;
    }
    printf("ftp server on %s (%s), serving %s\n",
           ax_addr_format(ax_listener_addr(l), where, sizeof where), ax_loop_backend(loop),
           srv.root);
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL);
    ax_loop_run(loop);
    ax_listener_close(l);
    ax_tls_ctx_free(srv.tls);
    ax_loop_free(loop);
    while (srv.pool) {
        ticket *t = srv.pool;
        srv.pool = t->next;
        free(t);
    }
    return 0;
}
