/* log.c: leveled logging to stderr, Redis-style text or JSON lines. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static ax_log_level min_level = AX_LOG_INFO;
static int json;
static FILE *out_file; /* NULL: stderr */
static char out_path[1024];

int ax_log_set_file(const char *path)
{
    FILE *f = NULL;
    if (path && *path) {
        f = fopen(path, "ae");
        if (!f) return ax__err();
        setvbuf(f, NULL, _IOLBF, 0);
    }
    if (out_file) fclose(out_file);
    out_file = f;
    snprintf(out_path, sizeof out_path, "%s", path ? path : "");
    return 0;
}

int ax_log_reopen(void)
{
    if (!out_path[0]) return 0;
    char path[sizeof out_path];
    memcpy(path, out_path, sizeof path);
    return ax_log_set_file(path);
}

void ax_log_set_level(ax_log_level level)
{
    min_level = level;
}
void ax_log_set_json(int on)
{
    json = on;
}
int ax_log_enabled(ax_log_level level)
{
    return level >= min_level;
}

static void json_escape(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 7 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

void ax_log(ax_log_level level, const char *fmt, ...)
{
    static const char marks[] = ".*#!";
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < min_level) return;
    char msg[1024], ts[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    if (json) {
        char esc[2048];
        gmtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        json_escape(esc, sizeof esc, msg);
        fprintf(out_file ? out_file : stderr,
                "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"pid\":%d,\"msg\":\"%s\"}\n", ts,
                (int)(tv.tv_usec / 1000), names[level], (int)getpid(), esc);
    } else {
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%d %b %Y %H:%M:%S", &tm);
        fprintf(out_file ? out_file : stderr, "%d:M %s.%03d %c %s\n", (int)getpid(), ts,
                (int)(tv.tv_usec / 1000), marks[level], msg);
    }
}
