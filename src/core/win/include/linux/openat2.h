/* linux/openat2.h on Windows: the open_how of openat2(2), which
 * src/core/win/fs_win.c implements for RESOLVE_BENEATH (see axwin.h). */
#ifndef AXON_WIN_OPENAT2_H
#define AXON_WIN_OPENAT2_H
#include <axwin.h>

struct open_how {
    unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10
#endif
