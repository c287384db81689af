/* smtp_server: receives mail (RFC 5321) into a Maildir.
 *
 *     smtp_server [options] MAILDIR [URL]     default URL tcp://127.0.0.1:2525
 *       --tls CERT KEY     offer STARTTLS (RFC 3207) with this certificate
 *       --max-size BYTES   largest message taken (SIZE, RFC 1870); 10 MiB
 *       --domain NAME      the name the server greets with; "localhost"
 *       --hub URL          also publish one line per message with an HTTP
 *                          POST, e.g. http://127.0.0.1:8080/api/publish/mail
 *
 *     curl smtp://127.0.0.1:2525 --mail-from a@example.org \
 *          --mail-rcpt b@example.org -T message.txt
 *
 * Every message for every recipient lands in MAILDIR/new as one file,
 * written to MAILDIR/tmp first and renamed when complete, so a mail reader
 * never sees half a message.  The conversation is a line protocol: each
 * command line gets a reply line starting with a three-digit code.  The
 * parser (smtp_parse.h) is pure; this file is the session's state machine
 * and the Maildir.  Replies carry RFC 3463 enhanced status codes. */
#include <axon/axon.h>
#include <axon/http_client.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smtp_parse.h"

#define MAX_RCPTS 100 /* RFC 5321 4.5.3.1.8: at least 100 must be taken */
#define MAX_ERRORS 10 /* bad commands before we hang up */

typedef struct server {
    const char *maildir;
    const char *domain;
    uint64_t max_size;
    ax_tls_ctx *tls; /* NULL: no STARTTLS */
    ax_http_client *hub;
    const char *hub_url;
    unsigned delivered; /* for unique file names */
} server;

enum state { GREETED, DATA, SKIP_LINE };

typedef struct session {
    server *srv;
    ax_conn *conn;
    enum state state;
    bool ehlo, helo_seen, from_seen;
    int errors;
    char helo[128];
    char from[SMTP_MAX_PATH + 1];
    char *rcpt[MAX_RCPTS];
    int nrcpt;
    /* the message being received */
    FILE *file;
    char tmp[512];
    uint64_t size;
    bool at_line_start, in_headers, too_big;
    char subject[128];
} session;

static void reply(session *s, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 3) n = (int)sizeof line - 3;
    memcpy(line + n, "\r\n", 2);
    if (ax_conn_write(s->conn, line, (size_t)n + 2) < 0) ax_conn_close(s->conn);
}

/* Forget the envelope (RSET, after a message, after STARTTLS). */
static void reset(session *s)
{
    if (s->file) { /* a message cut short */
        fclose(s->file);
        unlink(s->tmp);
        s->file = NULL;
    }
    for (int i = 0; i < s->nrcpt; i++)
        free(s->rcpt[i]);
    s->nrcpt = 0;
    s->from_seen = false;
}

/* ---- the Maildir ---------------------------------------------------------- */

/* A name no other delivery uses: time, process and a counter (the Maildir
 * convention), then the host's name. */
static void unique_name(server *srv, char *out, size_t len)
{
    struct timespec ts;
    char host[64] = "localhost";
    clock_gettime(CLOCK_REALTIME, &ts);
    gethostname(host, sizeof host - 1);
    host[strcspn(host, "/:")] = '\0';
    snprintf(out, len, "%lld.M%06ldP%ldQ%u.%s", (long long)ts.tv_sec, ts.tv_nsec / 1000,
             (long)getpid(), ++srv->delivered, host);
}

/* DATA: open MAILDIR/tmp/NAME and write the trace fields first. */
static bool message_begin(session *s)
{
    char name[256], when[64], peer[AX_ADDR_STRLEN] = "unknown";
    ax_addr a;
    time_t now = time(NULL);
    struct tm tm;
    unique_name(s->srv, name, sizeof name);
    snprintf(s->tmp, sizeof s->tmp, "%s/tmp/%s", s->srv->maildir, name);
    int fd = open(s->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1 || !(s->file = fdopen(fd, "w"))) {
        if (fd != -1) close(fd);
        return false;
    }
    if (ax_conn_peer(s->conn, &a) == 0) ax_addr_format(&a, peer, sizeof peer);
    strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
    fprintf(s->file, "Return-Path: <%s>\n", s->from);
    for (int i = 0; i < s->nrcpt; i++)
        fprintf(s->file, "Delivered-To: %s\n", s->rcpt[i]);
    fprintf(s->file, "Received: from %s (%s)\n\tby %s with %s; %s\n", s->helo, peer, s->srv->domain,
            ax_conn_is_tls(s->conn) ? "ESMTPS" : (s->ehlo ? "ESMTP" : "SMTP"), when);
    s->size = 0;
    s->too_big = false;
    s->at_line_start = s->in_headers = true;
    s->subject[0] = '\0';
    return true;
}

/* One piece of mail data, dot-stuffing already undone; `eol`: a whole
 * line ends here.  Maildir files use '\n' line ends. */
static void message_write(session *s, const char *p, size_t n, bool eol)
{
    s->size += n + (eol ? 2 : 0);
    if (s->size > s->srv->max_size) s->too_big = true;
    if (s->too_big) return; /* read on to the end, then refuse */
    if (s->at_line_start && s->in_headers) {
        if (eol && n == 0) s->in_headers = false;
        if (n > 8 && strncasecmp(p, "Subject:", 8) == 0)
            snprintf(s->subject, sizeof s->subject, "%.*s", (int)(n - 8), p + 8);
    }
    fwrite(p, 1, n, s->file);
    if (eol) fputc('\n', s->file);
    s->at_line_start = eol;
}

static void hub_done(ax_http_fetch *f, int err, void *ud)
{
    (void)f, (void)ud;
    if (err) fprintf(stderr, "smtp_server: hub: %s\n", ax_strerror(err));
}

/* Tell the hub: one line, the envelope and the subject. */
static void publish(session *s, size_t size)
{
    static const ax_http_fetch_cbs cbs = {.on_done = hub_done};
    char text[700];
    int n = snprintf(text, sizeof text, "mail from <%s> to <%s>%s (%zu bytes):%s", s->from,
                     s->rcpt[0], s->nrcpt > 1 ? " and others" : "", size,
                     s->subject[0] ? s->subject : " (no subject)");
    ax_http_request rq = {
        .url = s->srv->hub_url, .method = "POST", .body = text, .body_len = n < 0 ? 0 : (size_t)n};
    int err;
    if (!ax_http_fetch_start(s->srv->hub, &rq, &cbs, NULL, &err))
        fprintf(stderr, "smtp_server: hub: %s\n", ax_strerror(err));
}

/* The lone dot came: flush to the disk, then move tmp/NAME to new/NAME. */
static void message_end(session *s)
{
    char final[600];
    const char *name = strrchr(s->tmp, '/') + 1;
    bool ok = !s->too_big && fflush(s->file) == 0 && fsync(fileno(s->file)) == 0;
    ok = fclose(s->file) == 0 && ok;
    s->file = NULL;
    snprintf(final, sizeof final, "%s/new/%s", s->srv->maildir, name);
    if (s->too_big)
        reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
    else if (!ok || rename(s->tmp, final) == -1)
        reply(s, "451 4.3.0 Cannot store the message: %s", strerror(errno));
    else
        reply(s, "250 2.0.0 Ok: queued as %s", name);
    if (ok && !s->too_big && s->srv->hub) publish(s, (size_t)s->size);
    unlink(s->tmp); /* gone already when renamed */
    s->state = GREETED;
    reset(s);
}

/* ---- commands ------------------------------------------------------------- */

static void cmd_ehlo(session *s, const smtp_cmd *c)
{
    server *srv = s->srv;
    reset(s);
    s->helo_seen = true;
    s->ehlo = c->verb == SMTP_EHLO;
    snprintf(s->helo, sizeof s->helo, "%.*s", (int)c->arg_len, c->arg);
    if (!s->ehlo) {
        reply(s, "250 %s", srv->domain);
        return;
    }
    reply(s, "250-%s greets %s", srv->domain, s->helo);
    reply(s, "250-SIZE %llu", (unsigned long long)srv->max_size);
    reply(s, "250-PIPELINING");
    reply(s, "250-8BITMIME");
    if (srv->tls && !ax_conn_is_tls(s->conn)) reply(s, "250-STARTTLS");
    reply(s, "250 ENHANCEDSTATUSCODES");
}

static void cmd_mail(session *s, const smtp_cmd *c)
{
    if (!s->helo_seen) {
        reply(s, "503 5.5.1 Send HELO or EHLO first");
        return;
    }
    if (s->from_seen) {
        reply(s, "503 5.5.1 Sender already given");
        return;
    }
    if (c->size > s->srv->max_size) {
        reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
        return;
    }
    snprintf(s->from, sizeof s->from, "%.*s", (int)c->path_len, c->path);
    s->from_seen = true;
    reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(session *s, const smtp_cmd *c)
{
    if (!s->from_seen) {
        reply(s, "503 5.5.1 Need MAIL before RCPT");
        return;
    }
    if (s->nrcpt == MAX_RCPTS) {
        reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    char *r = malloc(c->path_len + 1);
    if (!r) {
        reply(s, "451 4.3.0 Out of memory");
        return;
    }
    memcpy(r, c->path, c->path_len);
    r[c->path_len] = '\0';
    s->rcpt[s->nrcpt++] = r;
    reply(s, "250 2.1.5 Ok");
}

static void cmd_data(session *s)
{
    if (!s->from_seen) {
        reply(s, "503 5.5.1 Need MAIL command");
        return;
    }
    if (!s->nrcpt) {
        reply(s, "554 5.5.1 No valid recipients");
        return;
    }
    if (!message_begin(s)) {
        reply(s, "451 4.3.0 Cannot store: %s", strerror(errno));
        return;
    }
    s->state = DATA;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* Returns false when nothing after this line may be read as plaintext. */
static bool command(session *s, const char *line, size_t len)
{
    smtp_cmd c;
    int rc = smtp_parse(line, len, &c);
    if (rc) {
        if (++s->errors > MAX_ERRORS) {
            reply(s, "421 4.7.0 %s Too many errors, closing", s->srv->domain);
            ax_conn_close(s->conn);
            return false;
        }
        if (rc == 500) reply(s, "500 5.5.2 Syntax error, command unrecognized");
        if (rc == 501) reply(s, "501 5.5.4 Syntax error in parameters or arguments");
        if (rc == 555) reply(s, "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized");
        return true;
    }
    switch (c.verb) {
    case SMTP_HELO:
    case SMTP_EHLO:
        cmd_ehlo(s, &c);
        break;
    case SMTP_MAIL:
        cmd_mail(s, &c);
        break;
    case SMTP_RCPT:
        cmd_rcpt(s, &c);
        break;
    case SMTP_DATA:
        cmd_data(s);
        break;
    case SMTP_RSET:
        reset(s), reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_NOOP:
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_VRFY:
        reply(s, "252 2.5.2 Cannot VRFY user, but will accept the message");
        break;
    case SMTP_HELP:
        reply(s, "214 2.0.0 See RFC 5321");
        break;
    case SMTP_QUIT:
        reply(s, "221 2.0.0 %s Bye", s->srv->domain);
        ax_conn_close(s->conn); /* flushes the reply first */
        return false;
    case SMTP_STARTTLS:
        if (!s->srv->tls || ax_conn_is_tls(s->conn)) {
            reply(s, "454 4.7.0 TLS not available");
            break;
        }
        reply(s, "220 2.0.0 Ready to start TLS"); /* goes out in the clear */
        if (ax_conn_start_tls(s->conn, s->srv->tls) < 0) {
            ax_conn_close(s->conn);
            return false;
        }
        reset(s); /* RFC 3207 4.2: the client starts over with EHLO */
        s->helo_seen = false;
        return false; /* what the client sent after STARTTLS is dropped */
    }
    return true;
}

/* ---- the connection ------------------------------------------------------- */

/* Mail data: lines end only at CRLF; a line longer than SMTP_MAX_TEXT is
 * passed on in pieces (all but its last byte, which may be the CR). */
static size_t data_bytes(session *s, const char *data, size_t len)
{
    size_t n;
    long r = smtp_line(data, len, SMTP_MAX_TEXT, true, &n);
    if (r == 0) return 0;
    if (r < 0) {
        n = SMTP_MAX_TEXT - 1;
        if (s->at_line_start) smtp_data_line(&data, &n); /* a leading dot, not the end */
        message_write(s, data, n, false);
        return SMTP_MAX_TEXT - 1;
    }
    if (s->at_line_start && smtp_data_line(&data, &n))
        message_end(s);
    else
        message_write(s, data, n, true);
    return (size_t)r;
}

static size_t on_data(ax_conn *conn, const char *data, size_t len)
{
    session *s = ax_conn_data(conn);
    size_t used = 0, n;
    while (used < len) {
        long r;
        if (s->state == DATA) {
            size_t k = data_bytes(s, data + used, len - used);
            if (!k) break;
            used += k;
            continue;
        }
        r = smtp_line(data + used, len - used, SMTP_MAX_CMD, false, &n);
        if (r == 0) break;
        if (r < 0) { /* too long: say so once, then skip to the line's end */
            const char *nl = memchr(data + used, '\n', len - used);
            if (s->state != SKIP_LINE) reply(s, "500 5.5.6 Line too long");
            s->state = nl ? GREETED : SKIP_LINE;
            used = nl ? (size_t)(nl - data) + 1 : len;
            continue;
        }
        const char *line = data + used;
        used += (size_t)r;
        if (s->state == SKIP_LINE) {
            s->state = GREETED;
            continue;
        }
        if (!command(s, line, n)) return len;
    }
    return used;
}

static void on_open(ax_conn *conn)
{
    server *srv = ax_conn_data(conn);
    session *s = calloc(1, sizeof(*s));
    ax_conn_set_data(conn, s);
    if (!s) {
        ax_conn_close(conn);
        return;
    }
    s->srv = srv;
    s->conn = conn;
    reply(s, "220 %s ESMTP axon smtp_server", srv->domain);
}

static void on_close(ax_conn *conn, int reason)
{
    session *s = ax_conn_data(conn);
    (void)reason;
    if (!s) return;
    reset(s);
    free(s);
}

/* ---- setting up ----------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: smtp_server [--tls CERT KEY] [--max-size BYTES] [--domain NAME]\n"
                    "                   [--hub URL] MAILDIR [URL]\n");
    return 2;
}

static bool make_maildir(const char *dir)
{
    static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
    char path[512];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", dir, sub[i]);
        if (mkdir(path, 0700) == -1 && errno != EEXIST) {
            fprintf(stderr, "smtp_server: %s: %s\n", path, strerror(errno));
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    static server srv = {.domain = "localhost", .max_size = 10u << 20};
    static const ax_conn_cbs cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};
    /* Longer than a text line, so an endless line is seen as such; five
     * minutes of silence ends a session (RFC 5321 4.5.3.2.7). */
    static const ax_conn_opts opts = {.max_input = 4 * SMTP_MAX_TEXT, .idle_timeout_ms = 300000};
    const char *cert = NULL, *key = NULL, *url = "tcp://127.0.0.1:2525";
    char why[256], where[AX_ADDR_STRLEN];
    int i, err;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--tls") && i + 2 < argc)
            cert = argv[++i], key = argv[++i];
        else if (!strcmp(argv[i], "--max-size") && i + 1 < argc)
            srv.max_size = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--domain") && i + 1 < argc)
            srv.domain = argv[++i];
        else if (!strcmp(argv[i], "--hub") && i + 1 < argc)
            srv.hub_url = argv[++i];
        else
            return usage();
    }
    if (i >= argc) return usage();
    srv.maildir = argv[i++];
    if (i < argc) url = argv[i];
    if (!make_maildir(srv.maildir)) return 1;

    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "smtp_server: %s\n", ax_strerror(err));
        return 1;
    }
    if (cert) {
        ax_tls_opts to = {.cert_file = cert, .key_file = key};
        if (!(srv.tls = ax_tls_server_new(&to, why, sizeof why, &err))) {
            fprintf(stderr, "smtp_server: %s\n", why);
            return 1;
        }
    }
    if (srv.hub_url && !(srv.hub = ax_http_client_new(loop, NULL, &err))) {
        fprintf(stderr, "smtp_server: hub: %s\n", ax_strerror(err));
        return 1;
    }
    ax_listener *l = ax_listen(loop, url, &cbs, &opts, &srv, &err);
    if (!l) {
        fprintf(stderr, "smtp_server: %s: %s\n", url, ax_strerror(err));
        return 1;
    }
    printf("smtp server on %s (%s), mail into %s\n",
           ax_addr_format(ax_listener_addr(l), where, sizeof where), ax_loop_backend(loop),
           srv.maildir);
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL);
    ax_loop_run(loop);
    ax_listener_close(l);
    ax_http_client_free(srv.hub);
    ax_tls_ctx_free(srv.tls);
    ax_loop_free(loop);
    return 0;
}
