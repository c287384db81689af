/* fs_win.c: the file-system calls of the shared code on Windows, so that
 * the static file handler (src/proto/http/static.c) runs unchanged:
 *
 *   - open() of a folder (the C runtime's refuses one): a handle opened
 *     with FILE_FLAG_BACKUP_SEMANTICS, made a descriptor by _open_osfhandle;
 *   - realpath() through the handle: GetFinalPathNameByHandleW follows
 *     symbolic links and junctions;
 *   - openat2(RESOLVE_BENEATH): the path is joined below the folder's
 *     final path ("\\?\C:\site\a\b", so no name is taken for a device and
 *     no "." or ".." is folded away by Windows), opened, and the *opened*
 *     file's final path must still lie below the folder, or EXDEV: a link
 *     or junction that leads out is caught on the object itself, not on a
 *     name that could change in between.  '\\' and ':' are refused
 *     (another separator; drive letters and alternate data streams);
 *   - opendir, fdopendir, readdir, closedir, dirfd and fstatat on
 *     FindFirstFileW.
 *
 * Names are UTF-8 outside and UTF-16 to Windows. */
#include "internal.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <wchar.h>

struct ax__win_dir {
    HANDLE find;
    WIN32_FIND_DATAW data;
    bool have; /* data holds the next entry */
    int fd;    /* fdopendir's descriptor, closed by closedir; -1 */
    struct dirent ent;
};

static int errno_of(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_DRIVE:
        return ENOENT;
    case ERROR_DIRECTORY:
        return ENOTDIR;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
        return EACCES;
    case ERROR_FILENAME_EXCED_RANGE:
        return ENAMETOOLONG;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return ENOMEM;
    default:
        return EIO;
    }
}

/* UTF-8 to a malloc'ed UTF-16 string, and back; NULL with errno. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc((size_t)n * sizeof(*w)) : NULL;
    if (!w || !MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n)) {
        free(w);
        errno = n > 0 ? ENOMEM : ENOENT; /* not UTF-8: no such name */
        return NULL;
    }
    return w;
}

static char *narrow(const wchar_t *w)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = n > 0 ? malloc((size_t)n) : NULL;
    if (!s || !WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL)) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

static HANDLE open_handle(const wchar_t *path)
{
    return CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                       NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
}

/* What an open handle is, all links followed ("\\?\C:\site\f.txt"),
 * malloc'ed, without a trailing '\\'. */
static wchar_t *final_path(HANDLE h)
{
    DWORD n = GetFinalPathNameByHandleW(h, NULL, 0, FILE_NAME_NORMALIZED);
    if (!n) {
        errno = errno_of(GetLastError());
        return NULL;
    }
    wchar_t *w = malloc(((size_t)n + 1) * sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    DWORD m = GetFinalPathNameByHandleW(h, w, n + 1, FILE_NAME_NORMALIZED);
    if (!m || m > n) {
        free(w);
        errno = EIO;
        return NULL;
    }
    if (m > 0 && w[m - 1] == L'\\') w[m - 1] = L'\0'; /* a drive's root */
    return w;
}

static wchar_t *fd_path(int fd)
{
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    if (h == INVALID_HANDLE_VALUE) {
        errno = EBADF;
        return NULL;
    }
    return final_path(h);
}

static int handle_fd(HANDLE h)
{
    int fd = _open_osfhandle((intptr_t)h, _O_RDONLY);
    if (fd < 0) CloseHandle(h);
    return fd;
}

int ax__win_open(const char *path, int flags, ...)
{
    int mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    flags &= ~O_NONBLOCK; /* the C runtime would read it as _O_TEXT */
    wchar_t *w = widen(path);
    if (!w) return -1;
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) == 0) {
        DWORD a = GetFileAttributesW(w);
        if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY)) {
            HANDLE h = open_handle(w);
            free(w);
            if (h == INVALID_HANDLE_VALUE) {
                errno = errno_of(GetLastError());
                return -1;
            }
            return handle_fd(h);
        }
    }
    int fd = _wopen(w, flags | _O_BINARY | _O_NOINHERIT, mode);
    free(w);
    return fd;
}

int ax__win_fstat(int fd, struct stat *st)
{
    struct _stat64 s;
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    BY_HANDLE_FILE_INFORMATION info;
    bool dir = h != INVALID_HANDLE_VALUE && GetFileType(h) == FILE_TYPE_DISK &&
               GetFileInformationByHandle(h, &info) &&
               (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
    if (_fstat64(fd, &s) != 0) {
        if (!dir) return -1;
        memset(&s, 0, sizeof s);
        ULARGE_INTEGER t = {.LowPart = info.ftLastWriteTime.dwLowDateTime,
                            .HighPart = info.ftLastWriteTime.dwHighDateTime};
        s.st_mtime = s.st_atime = s.st_ctime =
            (__time64_t)(t.QuadPart / 10000000ull - 11644473600ull);
    }
    memset(st, 0, sizeof(*st));
    st->st_dev = s.st_dev;
    st->st_ino = s.st_ino;
    st->st_mode = dir ? (_S_IFDIR | 0555) : s.st_mode;
    st->st_nlink = s.st_nlink;
    st->st_size = s.st_size;
    st->st_atime = s.st_atime;
    st->st_mtime = s.st_mtime;
    st->st_ctime = s.st_ctime;
    return 0;
}

char *ax__win_realpath(const char *path, char *resolved)
{
    wchar_t *w = widen(path);
    if (!w) return NULL;
    HANDLE h = open_handle(w);
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        errno = errno_of(GetLastError());
        return NULL;
    }
    wchar_t *f = final_path(h);
    CloseHandle(h);
    if (!f) return NULL;
    const wchar_t *p = f;
    if (wcsncmp(p, L"\\\\?\\", 4) == 0 && wcsncmp(p + 4, L"UNC\\", 4) != 0) p += 4;
    char *s = narrow(p);
    free(f);
    if (s && p != f) /* C:\dir\name as C:/dir/name (not \\?\UNC\ names) */
        for (char *c = s; *c; c++)
            if (*c == '\\') *c = '/';
    if (!s || !resolved) return s;
    if (strlen(s) >= PATH_MAX) {
        free(s);
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(resolved, s);
    free(s);
    return resolved;
}

long ax__win_openat2(int dirfd, const char *rel, const struct open_how *how, size_t size)
{
    (void)how, (void)size; /* always beneath: the one use there is */
    if (rel[0] == '/' || strpbrk(rel, "\\:")) {
        errno = EXDEV;
        return -1;
    }
    wchar_t *root = fd_path(dirfd);
    if (!root) return -1;
    wchar_t *wrel = widen(rel);
    size_t rl = wcslen(root);
    wchar_t *full = wrel ? malloc((rl + wcslen(wrel) + 2) * sizeof(*full)) : NULL;
    long fd = -1;
    if (!full) {
        if (wrel) errno = ENOMEM;
        goto out;
    }
    wmemcpy(full, root, rl);
    size_t fl = rl;
    for (const wchar_t *seg = wrel;;) { /* a/./b//c: a\b\c */
        const wchar_t *end = wcschr(seg, L'/');
        size_t n = end ? (size_t)(end - seg) : wcslen(seg);
        if (n == 2 && seg[0] == L'.' && seg[1] == L'.') {
            errno = EXDEV;
            goto out;
        }
        if (n && !(n == 1 && seg[0] == L'.')) {
            full[fl++] = L'\\';
            wmemcpy(full + fl, seg, n);
            fl += n;
        }
        if (!end) break;
        seg = end + 1;
    }
    full[fl] = L'\0';
    HANDLE h = open_handle(full);
    if (h == INVALID_HANDLE_VALUE) {
        errno = errno_of(GetLastError());
        goto out;
    }
    if (GetFileType(h) != FILE_TYPE_DISK) {
        CloseHandle(h);
        errno = EACCES;
        goto out;
    }
    wchar_t *fin = final_path(h);
    bool inside = fin && _wcsnicmp(fin, root, rl) == 0 && (fin[rl] == L'\0' || fin[rl] == L'\\');
    if (!inside) {
        if (fin) errno = EXDEV;
        free(fin);
        CloseHandle(h);
        goto out;
    }
    free(fin);
    fd = handle_fd(h);
out:
    free(full);
    free(wrel);
    free(root);
    return fd;
}

/* ---- dirent ------------------------------------------------------------- */

static DIR *dir_at(const wchar_t *path, int fd)
{
    size_t n = wcslen(path);
    wchar_t *pat = malloc((n + 3) * sizeof(*pat));
    DIR *d = calloc(1, sizeof(*d));
    if (!pat || !d) {
        free(pat);
        free(d);
        errno = ENOMEM;
        return NULL;
    }
    wmemcpy(pat, path, n);
    if (n && path[n - 1] != L'\\' && path[n - 1] != L'/') pat[n++] = L'\\';
    pat[n++] = L'*';
    pat[n] = L'\0';
    d->find = FindFirstFileW(pat, &d->data);
    free(pat);
    d->have = d->find != INVALID_HANDLE_VALUE;
    if (!d->have && GetLastError() != ERROR_FILE_NOT_FOUND) {
        errno = errno_of(GetLastError());
        free(d);
        return NULL;
    }
    d->fd = fd;
    return d;
}

DIR *ax__win_opendir(const char *path)
{
    wchar_t *w = widen(path);
    if (!w) return NULL;
    DIR *d = dir_at(w, -1);
    free(w);
    return d;
}

DIR *ax__win_fdopendir(int fd)
{
    wchar_t *w = fd_path(fd);
    if (!w) return NULL;
    DIR *d = dir_at(w, fd);
    free(w);
    return d;
}

struct dirent *ax__win_readdir(DIR *d)
{
    while (d->have) {
        int n = WideCharToMultiByte(CP_UTF8, 0, d->data.cFileName, -1, d->ent.d_name,
                                    sizeof d->ent.d_name, NULL, NULL);
        d->have = FindNextFileW(d->find, &d->data) != 0;
        if (n > 0) return &d->ent;
    }
    return NULL;
}

int ax__win_closedir(DIR *d)
{
    if (d->find != INVALID_HANDLE_VALUE) FindClose(d->find);
    if (d->fd >= 0) _close(d->fd);
    free(d);
    return 0;
}

int ax__win_dirfd(DIR *d)
{
    return d->fd;
}

int ax__win_fstatat(int dirfd, const char *name, struct stat *st, int flags)
{
    (void)flags;
    wchar_t *dir = fd_path(dirfd), *wname = dir ? widen(name) : NULL;
    wchar_t *full = wname ? malloc((wcslen(dir) + wcslen(wname) + 2) * sizeof(*full)) : NULL;
    int rc = -1;
    WIN32_FILE_ATTRIBUTE_DATA a;
    if (!full) {
        if (wname) errno = ENOMEM;
    } else {
        size_t dl = wcslen(dir), nl = wcslen(wname);
        wmemcpy(full, dir, dl);
        full[dl] = L'\\';
        wmemcpy(full + dl + 1, wname, nl + 1);
        if (!GetFileAttributesExW(full, GetFileExInfoStandard, &a)) {
            errno = errno_of(GetLastError());
        } else {
            memset(st, 0, sizeof(*st));
            bool isdir = (a.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
            st->st_mode = isdir ? (_S_IFDIR | 0555) : (_S_IFREG | 0444);
            st->st_size = (int64_t)a.nFileSizeHigh << 32 | a.nFileSizeLow;
            rc = 0;
        }
    }
    free(full);
    free(wname);
    free(dir);
    return rc;
}
