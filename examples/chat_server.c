/* chat_server: a chat room for nc and telnet users.
 *
 *     chat_server [URL]              default tcp://0.0.0.0:7001
 *     nc 127.0.0.1 7001              in two or more terminals
 *
 * The first line a client sends is its name; every later line goes to all
 * the others as "name: text".  Everybody hears "* name joined" and
 * "* name left".
 *
 * A server with many clients keeps a list of its connections and loops
 * over it.  Each broadcast is formatted once into a refcounted slice that
 * every recipient's write queue shares, instead of one copy per client. */
#include <axon/axon.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member member;

typedef struct room {
    member *first; /* everybody connected, named or not */
    int named;     /* how many have a name */
} room;

struct member {
    member *prev, *next;
    ax_conn *conn;
    room *room;
    char name[32]; /* empty until the first line */
};

/* Send one formatted line to every named member except `skip`. */
static void broadcast(room *r, const member *skip, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);                      /* measure, */
    ax_slice *s = n < 0 ? NULL : ax_slice_new((size_t)n + 1); /* allocate once, */
    if (s) {
        vsnprintf(ax_slice_data(s), (size_t)n + 1, fmt, again); /* write once, */
        for (member *m = r->first; m; m = m->next)              /* share it */
            if (m != skip && m->name[0] && ax_conn_write_slice(m->conn, s, 0, (size_t)n) < 0)
                ax_conn_close(m->conn); /* already closing, or over its output cap */
        ax_slice_unref(s);              /* drop ours */
    }
    va_end(again);
    va_end(ap);
}

static void on_line(member *m, const char *line, size_t len)
{
    if (m->name[0]) {
        broadcast(m->room, m, "%s: %.*s\n", m->name, (int)len, line);
        return;
    }
    if (len == 0) {
        if (ax_conn_write(m->conn, "* name, please?\n", 16) < 0) ax_conn_close(m->conn);
        return;
    }
    snprintf(m->name, sizeof m->name, "%.*s", (int)len, line);
    m->room->named++;
    char hello[80];
    int n = snprintf(hello, sizeof hello, "* hello %s, %d online\n", m->name, m->room->named);
    if (ax_conn_write(m->conn, hello, (size_t)n) < 0) ax_conn_close(m->conn);
    broadcast(m->room, m, "* %s joined\n", m->name);
}

/* Split what arrived into lines.  A line without its '\n' yet is left
 * unconsumed: axon keeps it and offers it again with the next bytes. */
static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    size_t used = 0;
    const char *nl;
    while ((nl = memchr(data + used, '\n', len - used)) != NULL) {
        size_t n = (size_t)(nl - (data + used));
        if (n > 0 && data[used + n - 1] == '\r') /* telnet and nc -C send CRLF */
            n--;
        on_line(ax_conn_data(c), data + used, n);
        used = (size_t)(nl - data) + 1;
    }
    return used;
}

static void on_open(ax_conn *c)
{
    room *r = ax_conn_data(c); /* every accepted connection starts with the room */
    member *m = calloc(1, sizeof(*m));
    ax_conn_set_data(c, m); /* from now on, the member */
    if (!m) {
        ax_conn_close(c);
        return;
    }
    m->conn = c;
    m->room = r;
    m->next = r->first; /* link in at the front */
    if (r->first) r->first->prev = m;
    r->first = m;
    if (ax_conn_write(c, "* welcome! what is your name?\n", 30) < 0) ax_conn_close(c);
}

/* The last callback for every connection, however it ended: the client
 * left, its connection broke, or it sent a line longer than max_input. */
static void on_close(ax_conn *c, int reason)
{
    member *m = ax_conn_data(c);
    if (!m) return;
    if (m->prev)
        m->prev->next = m->next;
    else
        m->room->first = m->next;
    if (m->next) m->next->prev = m->prev;
    if (m->name[0]) {
        m->room->named--;
        broadcast(m->room, m, "* %s left\n", m->name);
    }
    free(m);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "tcp://0.0.0.0:7001";
    static const ax_conn_cbs cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};
    /* A chat line is short: a client that sends 4 KiB without a newline is
     * closed instead of making us buffer up to the 1 MiB default. */
    static const ax_conn_opts opts = {.max_input = 4096};
    static room lobby;
    char where[AX_ADDR_STRLEN];
    int err;

    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "chat_server: %s\n", ax_strerror(err));
        return 1;
    }
    ax_listener *l = ax_listen(loop, url, &cbs, &opts, &lobby, &err);
    if (!l) {
        fprintf(stderr, "chat_server: %s: %s\n", url, ax_strerror(err));
        ax_loop_free(loop);
        return 1;
    }
    printf("chat server on %s (%s)\n", ax_addr_format(ax_listener_addr(l), where, sizeof where),
           ax_loop_backend(loop));
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL);
    ax_loop_run(loop);
    ax_loop_free(loop);
    return 0;
}
