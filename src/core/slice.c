/* slice.c: refcounted byte buffers shared between write queues. */
#include "internal.h"

#include <string.h>
#include <unistd.h>

struct ax_slice {
    unsigned refs; /* atomic */
    size_t len;
    char *data;
    void (*release)(void *data, void *ud);
    void *ud;
    /* inline data follows when release is NULL */
};

ax_slice *ax_slice_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(ax_slice)) return NULL;
    ax_slice *s = ax_malloc(sizeof(*s) + len);
    if (!s) return NULL;
    s->refs = 1;
    s->len = len;
    s->data = (char *)(s + 1);
    s->release = NULL;
    s->ud = NULL;
    return s;
}

ax_slice *ax_slice_copy(const void *data, size_t len)
{
    ax_slice *s = ax_slice_new(len);
    if (s && len) memcpy(s->data, data, len);
    return s;
}

ax_slice *ax_slice_wrap(void *data, size_t len, void (*release)(void *, void *), void *ud)
{
    ax_slice *s = ax_malloc(sizeof(*s));
    if (!s) return NULL;
    s->refs = 1;
    s->len = len;
    s->data = data;
    s->release = release;
    s->ud = ud;
    return s;
}

void *ax_slice_data(const ax_slice *s)
{
    return s->data;
}
size_t ax_slice_len(const ax_slice *s)
{
    return s->len;
}

void ax_slice_truncate(ax_slice *s, size_t len)
{
    if (len < s->len) s->len = len;
}

ax_slice *ax_slice_ref(ax_slice *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void ax_slice_unref(ax_slice *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (s->release) s->release(s->data, s->ud);
    ax_free(s);
}

/* ---- files -------------------------------------------------------------- */

struct ax_file {
    unsigned refs; /* atomic */
    int fd;
};

ax_file *ax_file_new(int fd)
{
    ax_file *f = ax_malloc(sizeof(*f));
    if (!f) return NULL;
    f->refs = 1;
    f->fd = fd;
    return f;
}

int ax_file_fd(const ax_file *f)
{
    return f->fd;
}

ax_file *ax_file_ref(ax_file *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

void ax_file_unref(ax_file *f)
{
    if (!f || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    close(f->fd);
    ax_free(f);
}
