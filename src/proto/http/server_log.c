/* server_log.c: the HTTP server's access log (Common, Combined or JSON
 * lines), written when a response ends; moved out of server.c as is. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <axon/alloc.h>

#include "server_types.h"

/* What the log line needs from the head, which is gone when the response
 * ends: "request line\0referer\0user-agent". */
void ax__http_log_snapshot(ax_http_req *r)
{
    const ax_http_head *h = r->head;
    size_t rl = 0, ul = 0;
    const char *ref = NULL, *ua = NULL;
    if (r->srv->o.access_log_format != AX_HTTP_LOG_COMMON) {
        ref = ax_http_req_header(r, "Referer", &rl);
        ua = ax_http_req_header(r, "User-Agent", &ul);
    }
    size_t n = h->method.len + h->target.len + 12 + rl + 1 + ul + 1;
    r->logreq = ax_malloc(n);
    if (!r->logreq) return;
    int k = snprintf(r->logreq, n, "%.*s %.*s HTTP/1.%d", (int)h->method.len, h->method.ptr,
                     (int)h->target.len, h->target.ptr, h->minor_version);
    char *p = r->logreq + k + 1;
    memcpy(p, ref ? ref : "", rl);
    p[rl] = '\0';
    memcpy(p + rl + 1, ua ? ua : "", ul);
    p[rl + 1 + ul] = '\0';
}

/* A string in a log line: JSON escapes, or (Combined) quotes and
 * backslashes escaped as nginx does; control bytes as \xHH / \u00HH. */
static void log_str(FILE *f, const char *v, bool json)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, json ? "\\u%04x" : "\\x%02X", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void ax__http_log_line(ax_http_req *r)
{
    ax_http_server *s = r->srv;
    if (!s || !s->o.access_log) return;
    int fmt = s->o.access_log_format;
    char host[INET6_ADDRSTRLEN] = "-";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(ax_conn_fd(r->conn), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    }
    time_t now = time(NULL);
    struct tm tm;
    char when[40];
    gmtime_r(&now, &tm);
    const char *req = r->logreq ? r->logreq : "-";
    const char *ref = r->logreq ? req + strlen(req) + 1 : "";
    const char *ua = r->logreq ? ref + strlen(ref) + 1 : "";
    FILE *f = s->o.access_log;
    flockfile(f); /* one whole line, when several loops share the file */
    if (fmt == AX_HTTP_LOG_JSON) {
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(f, "{\"time\":\"%s\",\"remote\":\"%s\",\"request\":", when, host);
        log_str(f, req, true);
        fprintf(f, ",\"status\":%d,\"bytes\":%llu,\"referer\":", r->status,
                (unsigned long long)r->sent);
        log_str(f, ref, true);
        fputs(",\"user_agent\":", f);
        log_str(f, ua, true);
        fputs("}\n", f);
    } else {
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        fprintf(f, "%s - - [%s] ", host, when);
        log_str(f, req, false);
        fprintf(f, " %d %llu", r->status, (unsigned long long)r->sent);
        if (fmt == AX_HTTP_LOG_COMBINED) {
            fputc(' ', f);
            log_str(f, *ref ? ref : "-", false);
            fputc(' ', f);
            log_str(f, *ua ? ua : "-", false);
        }
        fputc('\n', f);
    }
    fflush(f);
    funlockfile(f);
}
