/* ws_broadcast: a WebSocket room: every message a client sends goes to all
 * the other clients.
 *
 *     ws_broadcast [PORT]               default 8080, on 127.0.0.1
 *     axon cat ws://127.0.0.1:8080/     in two or more terminals
 *
 * Each message is encoded once as a WebSocket frame in a refcounted slice
 * (ax_ws_shared_new) and the same bytes are queued on every recipient
 * (ax_ws_send_shared): a thousand recipients cost a thousand references,
 * not a thousand copies.  A recipient too slow to keep up passes its
 * output cap and is closed (1008); the others are not held back. */
#include <stdio.h>
#include <stdlib.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/ws.h>

typedef struct client client;
struct client {
    client *prev, *next;
    ax_ws *ws;
};

static client *clients; /* everybody connected */

static void on_open(ax_ws *ws)
{
    client *c = calloc(1, sizeof(*c));
    if (!c) {
        ax_ws_close(ws, AX_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    c->ws = ws;
    c->next = clients;
    if (clients) clients->prev = c;
    clients = c;
    ax_ws_set_data(ws, c);
}

static void on_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    ax_slice *frame = ax_ws_shared_new(data, len, binary);
    if (!frame) return;
    for (client *c = clients; c; c = c->next)
        if (c->ws != ws && ax_ws_send_shared(c->ws, frame) < 0)
            continue;      /* that client is closing (over its output cap) */
    ax_slice_unref(frame); /* each queue holds its own reference */
}

static void on_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    client *c = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (!c) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
}

static const ax_ws_cbs room_cbs = {
    .on_open = on_open, .on_message = on_message, .on_close = on_close};
static const ax_ws_endpoint room = {.cbs = &room_cbs};

static void on_signal(ax_loop *loop, int signo)
{
    (void)signo;
    ax_loop_stop(loop);
}

int main(int argc, char **argv)
{
    char url[64];
    int err;
    snprintf(url, sizeof url, "tcp://127.0.0.1:%s", argc > 1 ? argv[1] : "8080");
    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) return 1;
    ax_loop_handle_signals(loop, on_signal);
    ax_http_server *s = ax_http_server_new(loop, NULL, &err);
    if (!s || ax_ws_route(s, "/", &room) != 0 || !ax_http_listen(s, url, NULL, &err)) {
        fprintf(stderr, "ws_broadcast: cannot listen on %s: %s\n", url, ax_strerror(err));
        return 1;
    }
    fprintf(stderr, "ws_broadcast: listening on ws://%s/\n", url + 6);
    ax_loop_run(loop);
    ax_http_server_free(s);
    ax_loop_free(loop);
    return 0;
}
