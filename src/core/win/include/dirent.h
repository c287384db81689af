/* dirent.h on Windows: opendir, fdopendir, readdir, closedir, dirfd and
 * fstatat on FindFirstFileW (src/core/win/fs_win.c), names in UTF-8.
 * MinGW's own dirent.h has no fdopendir or dirfd, so it is not used. */
#ifndef AXON_WIN_DIRENT_H
#define AXON_WIN_DIRENT_H
#include <axwin.h>

struct dirent {
    char d_name[MAX_PATH * 3 + 1];
};
typedef struct ax__win_dir DIR;

DIR *ax__win_opendir(const char *path);
DIR *ax__win_fdopendir(int fd);
struct dirent *ax__win_readdir(DIR *d);
int ax__win_closedir(DIR *d);
int ax__win_dirfd(DIR *d);
int ax__win_fstatat(int dirfd, const char *name, struct stat *st, int flags);
#define opendir ax__win_opendir
#define fdopendir ax__win_fdopendir
#define readdir ax__win_readdir
#define closedir ax__win_closedir
#define dirfd ax__win_dirfd
#define fstatat ax__win_fstatat
#define AT_SYMLINK_NOFOLLOW 0x100
#endif
