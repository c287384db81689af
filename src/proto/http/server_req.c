/* server_req.c: what a handler reads of its request (method, target,
 * path, query, header fields, body) and the streamed body's controls;
 * moved out of server.c as is. */
#include <string.h>
#include <strings.h>

#include <axon/http.h>

#include "server_types.h"

const char *ax_http_req_method(const ax_http_req *r, size_t *len)
{
    *len = r->head ? r->head->method.len : 0;
    return r->head ? r->head->method.ptr : NULL;
}

const char *ax_http_req_target(const ax_http_req *r, size_t *len)
{
    *len = r->head ? r->head->target.len : 0;
    return r->head ? r->head->target.ptr : NULL;
}

const char *ax_http_req_path(const ax_http_req *r, size_t *len)
{
    *len = r->head ? r->path_len : 0;
    return r->head ? r->path : NULL;
}

const char *ax_http_req_query(const ax_http_req *r, size_t *len)
{
    *len = 0;
    if (!r->head) return NULL;
    const char *end = r->head->target.ptr + r->head->target.len;
    const char *q = r->path + r->path_len;
    if (q >= end) return q;
    *len = (size_t)(end - q - 1);
    return q + 1;
}

bool ax_http_req_is(const ax_http_req *r, const char *m)
{
    size_t n = strlen(m);
    return r->head && r->head->method.len == n && memcmp(r->head->method.ptr, m, n) == 0;
}

int ax_http_req_minor(const ax_http_req *r)
{
    return r->minor;
}

const char *ax_http_req_header(const ax_http_req *r, const char *name, size_t *len)
{
    const ax_http_header *f = r->head ? ax_http_find_header(r->head, name) : NULL;
    if (len) *len = f ? f->value.len : 0;
    return f ? f->value.ptr : NULL;
}

size_t ax_http_req_header_count(const ax_http_req *r)
{
    return r->head ? r->head->num_headers : 0;
}

const char *ax_http_req_header_at(const ax_http_req *r, size_t i, const char **name,
                                  size_t *name_len, size_t *len)
{
    if (!r->head || i >= r->head->num_headers) return NULL;
    const ax_http_header *f = &r->head->headers[i];
    *name = f->name.ptr;
    *name_len = f->name.len;
    *len = f->value.len;
    return f->value.ptr;
}

const char *ax_http_req_body(const ax_http_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.p ? r->body.p : "";
}

ax_conn *ax_http_req_conn(const ax_http_req *r)
{
    return r->conn;
}

void *ax_http_req_conn_data(const ax_http_req *r)
{
    return r->conn_data;
}

void ax_http_req_on_body(ax_http_req *r, ax_http_body_cb cb, void *ud)
{
    r->body_cb = cb;
    r->body_ud = ud;
}

void ax_http_req_pause_body(ax_http_req *r)
{
    if (!(r->flags & F_BODY_OPEN) || (r->flags & F_BODY_PAUSED)) return;
    r->flags |= F_BODY_PAUSED;
    ax_conn_pause(r->conn);
}

void ax_http_req_resume_body(ax_http_req *r)
{
    if (!(r->flags & F_BODY_PAUSED)) return;
    r->flags &= ~(unsigned)F_BODY_PAUSED;
    r->deadline = ax_loop_now(r->srv->loop) + r->srv->o.body_timeout_ms;
    ax_conn_resume(r->conn);
}
