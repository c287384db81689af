/* axon/ws.h: WebSocket (RFC 6455, permessage-deflate RFC 7692), server and
 * client, on axon connections.
 *
 * A server is an HTTP server with a WebSocket route:
 *
 *     static void on_message(ax_ws *ws, const void *data, size_t len, bool binary) {
 *         ax_ws_send(ws, data, len, binary);          // echo
 *     }
 *     static const ax_ws_cbs echo_cbs = {.on_message = on_message};
 *     static const ax_ws_endpoint echo = {.cbs = &echo_cbs};
 *     ax_http_server *s = ax_http_server_new(loop, NULL, &err);
 *     ax_ws_route(s, "/", &echo);
 *     ax_http_listen(s, "tcp://127.0.0.1:8080", NULL, &err);
 *
 * or, to look at the request first (Origin, cookies, the path), an HTTP
 * handler that calls ax_ws_upgrade().  A client is ax_ws_connect() with a
 * ws:// or wss:// URL and the same callbacks.
 *
 * Messages arrive whole: fragments are reassembled (up to max_message, else
 * the connection is closed with 1009), text is checked to be UTF-8 as it
 * streams in (1007 at the first bad byte), compressed messages are inflated
 * (up to max_message inflated bytes).  Pings are answered, control-frame
 * and framing rules are enforced (1002), and the close handshake runs with
 * a timeout.  Every protocol failure closes the connection with the code
 * RFC 6455 asks for and reports that code to on_close.
 *
 * Lifetime: on_open, then any number of on_message / on_drain, then exactly
 * one on_close.  ax_ws_close() is legal inside every callback; the ax_ws is
 * freed after on_close returns and no callback fires after it. */
#ifndef AXON_WS_H
#define AXON_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conn.h"
#include "http.h"
#include "loop.h"
#include "slice.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_ws ax_ws;

/* Close status codes (RFC 6455 section 7.4.1, IANA registry). */
enum ax_ws_close_code {
    AX_WS_CLOSE_NORMAL = 1000,
    AX_WS_CLOSE_GOING_AWAY = 1001,
    AX_WS_CLOSE_PROTOCOL = 1002,
    AX_WS_CLOSE_UNSUPPORTED = 1003,
    AX_WS_CLOSE_NO_STATUS = 1005, /* never on the wire: the close had no code */
    AX_WS_CLOSE_ABNORMAL = 1006,  /* never on the wire: no close frame at all */
    AX_WS_CLOSE_INVALID_DATA = 1007,
    AX_WS_CLOSE_POLICY = 1008,
    AX_WS_CLOSE_TOO_BIG = 1009,
    AX_WS_CLOSE_EXTENSION = 1010,
    AX_WS_CLOSE_INTERNAL = 1011,
};

typedef struct ax_ws_cbs {
    /* The handshake is done; sending is possible. */
    void (*on_open)(ax_ws *ws);
    /* One whole message.  `data` is valid during the call only; text
     * (binary false) is valid UTF-8, not NUL-terminated. */
    void (*on_message)(ax_ws *ws, const void *data, size_t len, bool binary);
    /* The send queue fell back to the low watermark after a send returned 1. */
    void (*on_drain)(ax_ws *ws);
    /* Always the last callback.  `code` is the status of the close: the
     * peer's code when it sent a close frame (1005 when that frame had no
     * code), the code we failed the connection with (1002, 1007, 1008,
     * 1009, 1011), or 1006 when the connection ended without a close frame
     * (reset, timeout, failed connect or handshake).  `reason` (not
     * NUL-terminated, valid UTF-8) is valid during the call. */
    void (*on_close)(ax_ws *ws, int code, const char *reason, size_t len);
} ax_ws_cbs;

/* What happens when a send would queue more than output_cap bytes. */
enum ax_ws_cap_policy {
    AX_WS_CAP_POLICY = 0,   /* close with 1008 (policy violation) */
    AX_WS_CAP_INTERNAL = 1, /* close with 1011 (internal error) */
};

/* Settings; zero fields take the defaults shown.  The struct is copied. */
typedef struct ax_ws_opts {
    size_t max_message;        /* 16 MiB (or output_cap less a frame header, when only
                                  that is set): larger messages (also inflated) close
                                  with 1009 */
    uint32_t ping_interval_ms; /* 0: no keepalive; else ping this often, and drop a peer
                                  that sent nothing for a whole interval after a ping */
    uint32_t close_timeout_ms; /* 5 s: wait this long for the peer's close frame */
    size_t high_watermark;     /* 64 KiB: sends return 1 above it */
    size_t low_watermark;      /* 16 KiB: on_drain once back down to it */
    size_t output_cap;         /* 16 MiB + 14: a send that would pass it closes
                                  (cap_policy); never less than max_message plus a frame
                                  header, so a message this endpoint accepted can be
                                  sent back whole */
    enum ax_ws_cap_policy cap_policy;
    /* Subprotocols, NULL-terminated, in our order of preference.  Server:
     * the first of ours the client offers is chosen; none offered or none
     * in common: no subprotocol.  Client: offered in this order. */
    const char *const *protocols;
    /* permessage-deflate: offered (client) or accepted when offered
     * (server).  Off unless both sides ask. */
    bool deflate;
    bool deflate_no_context_takeover; /* ask for / grant no context takeover both ways */
    uint8_t deflate_window_bits;      /* 0: 15; 9..15 for our compressor */
    int deflate_level;                /* 0: 1 (fast); 1..9 zlib level */
    size_t deflate_min_size;          /* 0: 64; smaller messages go uncompressed */
    /* Client: extra request fields, "Name: value\r\n" each; NULL: none. */
    const char *headers;
    /* Client: the Origin field to send; NULL: none. */
    const char *origin;
    /* Client: TLS for wss:// (NULL: the default verifying context). */
    struct ax_tls_ctx *tls;
} ax_ws_opts;

/* ---- server ------------------------------------------------------------ */

/* Inside an HTTP handler: check the request as a WebSocket opening
 * handshake (GET, HTTP/1.1, Upgrade: websocket, Connection: Upgrade,
 * Sec-WebSocket-Version: 13, a valid Sec-WebSocket-Key), negotiate the
 * subprotocol and permessage-deflate, and answer 101.  When the handler
 * returns, the connection is a WebSocket: on_open runs, then the rest.
 * The connection then leaves the HTTP server: ax_http_server_free() does
 * not close it (ax_loop_free() does).
 * A request that is not a valid handshake is answered here (400, or 426
 * with the version or upgrade we speak) and a negative code returned
 * (AX_EINVAL); no callback runs then.  `cbs` must stay valid for the life
 * of the connection; `opts` (may be NULL) is copied. */
AX_API int ax_ws_upgrade(ax_http_req *r, const ax_ws_cbs *cbs, const ax_ws_opts *opts, void *ud);

/* What a WebSocket route needs; the caller's, and it must outlive the
 * server (nothing is copied). */
typedef struct ax_ws_endpoint {
    const ax_ws_cbs *cbs;
    const ax_ws_opts *opts; /* NULL: defaults */
    void *ud;               /* user data every connection starts with */
} ax_ws_endpoint;

/* Route GET requests under `prefix` (see ax_http_route) to WebSocket
 * connections of endpoint `ep`.  Returns 0 or AX_ENOMEM. */
AX_API int ax_ws_route(ax_http_server *s, const char *prefix, const ax_ws_endpoint *ep);
/* The handler behind ax_ws_route(), for ax_http_route() (ud: an endpoint). */
AX_API void ax_ws_handler(ax_http_req *r, void *ud);

/* ---- client ------------------------------------------------------------ */

/* Connect to `url` (ws://host[:port]/path or wss://...) and run the
 * opening handshake.  Returns the handle at once; on_open runs when the
 * server accepted, or on_close(1006) when the connect or the handshake
 * failed (never from inside this call).  NULL for a bad URL or when out of
 * memory, with the code in *err.  Sends made before on_open fail with
 * AX_EAGAIN. */
AX_API ax_ws *ax_ws_connect(ax_loop *loop, const char *url, const ax_ws_cbs *cbs,
                            const ax_ws_opts *opts, void *ud, int *err) AX_MUST_CHECK;

/* ---- sending ----------------------------------------------------------- */

/* Send one message (copied; a client masks it with a fresh random key).
 * Returns 0, 1 when the send queue is above the high watermark (wait for
 * on_drain), or a negative code: AX_ECLOSED once a close was sent or
 * received, AX_EAGAIN before on_open, AX_EOUTPUTCAP when output_cap
 * would be passed (the connection is then being closed per cap_policy).
 * Text is not checked for UTF-8: the caller vouches for it. */
AX_API int ax_ws_send(ax_ws *ws, const void *data, size_t len, bool binary) AX_MUST_CHECK;
AX_API int ax_ws_send_text(ax_ws *ws, const char *text, size_t len) AX_MUST_CHECK;
AX_API int ax_ws_send_binary(ax_ws *ws, const void *data, size_t len) AX_MUST_CHECK;

/* Broadcast: encode a message once as an unmasked, uncompressed frame
 * (what servers send), then queue the same bytes on any number of server
 * connections with ax_ws_send_shared(), which takes its own reference.
 * Client connections, which must mask, get a masked copy.  The caller
 * unrefs the slice when done.  NULL when out of memory. */
AX_API ax_slice *ax_ws_shared_new(const void *data, size_t len, bool binary);
AX_API int ax_ws_send_shared(ax_ws *ws, ax_slice *frame) AX_MUST_CHECK;

/* Cork this thread: until ax_ws_uncork(), shared frames sent with
 * ax_ws_send_shared() are collected per connection (up to 8 each) and
 * ax_ws_uncork() writes each connection's with one writev, as already
 * happens for sends made inside a connection's on_message.  Inside an
 * on_message both calls do nothing.  For a broadcast made from a timer or
 * a posted callback. */
AX_API void ax_ws_cork(void);
AX_API void ax_ws_uncork(void);

/* A ping with up to 125 bytes of payload.  The peer's pong is absorbed. */
AX_API int ax_ws_ping(ax_ws *ws, const void *data, size_t len);

/* Start the close handshake: send a close frame with `code` (0: none) and
 * `reason` (NULL: none; cut to 123 bytes), then wait for the peer's close
 * (at most close_timeout_ms) and close the connection.  Messages that
 * arrive meanwhile are still delivered; sending is over.  Returns 0, AX_EINVAL for a code that may
 * not be sent (valid: 1000-1003, 1007-1014, 3000-4999), AX_ECLOSED when
 * already closing.  Idempotent in effect; legal inside every callback. */
AX_API int ax_ws_close(ax_ws *ws, int code, const char *reason);

/* Bytes queued for the kernel and not yet sent. */
AX_API size_t ax_ws_buffered(const ax_ws *ws);

/* Call fn(ws, ud) for each WebSocket of `loop`, open or closing, with callbacks `cbs`
 * and a ping interval (ax_ws_opts.ping_interval_ms: those are in the
 * loop's keepalive ring, which this walks; no list of its own is needed).
 * On the loop's thread.  fn may close or abort the one it is given (its
 * on_close comes later, as always); it must not free connections. */
AX_API void ax_ws_each(ax_loop *loop, const ax_ws_cbs *cbs, void (*fn)(ax_ws *ws, void *ud),
                       void *ud);

/* ---- accessors --------------------------------------------------------- */

AX_API void ax_ws_set_data(ax_ws *ws, void *ud);
AX_API void *ax_ws_data(const ax_ws *ws);
/* The connection underneath (for addresses, pause/resume, counters). */
AX_API ax_conn *ax_ws_conn(const ax_ws *ws);
/* The negotiated subprotocol, "" when none. */
AX_API const char *ax_ws_protocol(const ax_ws *ws);
/* Server: the request's Origin field ("" when absent) and path. */
AX_API const char *ax_ws_origin(const ax_ws *ws);
AX_API const char *ax_ws_path(const ax_ws *ws);
/* True when permessage-deflate was negotiated. */
AX_API bool ax_ws_deflate(const ax_ws *ws);

#ifdef __cplusplus
}
#endif
#endif
