/* server_internal.h: what the HTTP server's files share (internal). */
#ifndef AXON_PROTO_HTTP_SERVER_INTERNAL_H
#define AXON_PROTO_HTTP_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <axon/http.h>

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"): 29 bytes and a NUL. */
#define AX__HTTP_DATE_LEN 29
void ax__http_date(time_t t, char out[AX__HTTP_DATE_LEN + 1]);
/* Parse an IMF-fixdate (the only form senders may generate, RFC 9110
 * 5.6.7).  Returns 0 and sets *out, or -1. */
int ax__http_parse_date(const char *s, size_t len, time_t *out);

/* Content-Type for a file name, from its extension. */
const char *ax__http_mime(const char *name, size_t len);

/* One piece of a file response: `pre` (may be empty) then `len` bytes of
 * the file from `off`. */
typedef struct ax__http_seg {
    uint64_t off, len;
    const char *pre;
    size_t pre_len;
} ax__http_seg;

/* After ax_http_start(): queue the segments from `fd` on the connection
 * (which sends the file ranges itself: sendfile, or read and encrypted
 * under TLS), then end the response (on drain, when that put the queue
 * above its high watermark).  Takes `fd` (closed when the last range has
 * gone).  With n == 1 and mem == NULL `segs` is the caller's; otherwise
 * `segs` and `mem` are ax_malloc'd blocks freed here.  Returns 0 or a
 * negative code (the connection is then aborted). */
int ax__http_send_file(ax_http_req *r, int fd, ax__http_seg *segs, int n, void *mem);

/* The static file handler; `ud` comes from ax__http_dir_new(). */
void ax__http_dir_handler(ax_http_req *r, void *ud);
int ax__http_dir_new(const char *prefix, const char *root, unsigned flags, void **out);
void ax__http_dir_free(void *dir);

/* Percent-decode a path into out (room for len + 1); NUL-terminates.
 * Returns the decoded length, or -1 on a bad escape or a NUL byte. */
long ax__http_path_decode(const char *in, size_t len, char *out);
/* Whether a decoded path has a ".." segment. */
int ax__http_path_has_dotdot(const char *p, size_t len);

/* Whether an If-None-Match value ("*" or a list of entity tags, compared
 * weakly) matches `etag` (with its quotes). */
int ax__http_etag_match(const char *v, size_t len, const char *etag);

/* A byte range of a file, both ends included. */
#define AX__HTTP_MAX_RANGES 16
typedef struct ax__http_range {
    uint64_t first, last;
} ax__http_range;
/* Parse a Range value "bytes=..." against a file of `size` bytes into
 * out[AX__HTTP_MAX_RANGES].  Returns the number of satisfiable ranges (0:
 * none, answer 416), or -1 when the field is to be ignored (malformed,
 * another unit, too many ranges). */
int ax__http_parse_ranges(const char *v, size_t len, uint64_t size, ax__http_range *out);

#endif
