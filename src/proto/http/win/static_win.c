/* http_static_win.c: ax_http_static on Windows: not yet.
 *
 * The Linux handler (src/proto/http/static.c) confines every path to the
 * served folder with openat2(RESOLVE_BENEATH) and walks directories with
 * fdopendir/fstatat; Windows has none of these, and a port that is as
 * safe against "..", drive letters, alternate data streams and reparse
 * points is its own piece of work.  Until then ax_http_static fails with
 * AX_ENOENT, and `axon http` says so. */
#include <stdio.h>

#include <axon/axon.h>

#include "proto/http/server_internal.h"

int ax__http_dir_new(const char *prefix, const char *root, unsigned flags, void **out)
{
    (void)prefix, (void)root, (void)flags;
    *out = NULL;
    fprintf(stderr, "axon: serving files over HTTP is not in the Windows build yet\n");
    return AX_ENOENT;
}

void ax__http_dir_free(void *dir)
{
    (void)dir;
}

void ax__http_dir_handler(ax_http_req *r, void *ud)
{
    (void)r, (void)ud;
}
