/* ws_internal.h: what the WebSocket files share (internal).
 *
 * ws_conn.c runs an open connection (frames in, messages out, close
 * handshake, keepalive, backpressure); ws_server.c and ws_client.c run the
 * opening handshakes and hand over with ax__ws_new(); ws_deflate.c is
 * permessage-deflate. */
#ifndef AXON_PROTO_WS_INTERNAL_H
#define AXON_PROTO_WS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/ws.h>

#include "proto/ws/ws_frame.h"

/* Negotiated permessage-deflate parameters (RFC 7692 section 7.1). */
typedef struct ax__ws_pmd {
    bool on;
    bool tx_no_context; /* we reset our compressor after every message */
    bool rx_no_context; /* the peer resets its compressor */
    uint8_t tx_bits;    /* our LZ77 window, 8..15 */
    uint8_t rx_bits;    /* the peer's window, 8..15 */
} ax__ws_pmd;

typedef struct ax__ws_deflate ax__ws_deflate;

/* A new connection object in the handshake state; `info` is an ax_malloc'd
 * block "path\0origin\0protocol\0" it takes (NULL: all empty). */
ax_ws *ax__ws_new(enum ax_ws_role role, const ax_ws_cbs *cbs, const ax_ws_opts *opts, void *ud,
                  char *info);
/* Free an ax_ws whose connection never took it (handshake failed early). */
void ax__ws_free(ax_ws *ws);
/* Enter the open state on `c` with the negotiated extension; from now on
 * the connection's callbacks are ax__ws_conn_cbs. */
int ax__ws_open(ax_ws *ws, ax_conn *c, const ax__ws_pmd *pmd);
/* The connection callbacks of an open WebSocket (ud: the ax_ws). */
extern const ax_conn_cbs ax__ws_conn_cbs;
/* The client's connection before its handshake completes, and the close
 * report for a connection that never opened. */
void ax__ws_set_conn(ax_ws *ws, ax_conn *c);
void ax__ws_report_close(ax_ws *ws, int code);
/* Replace the info block (client: the path and the chosen protocol). */
void ax__ws_set_info(ax_ws *ws, char *info);
const ax_ws_opts *ax__ws_opts(const ax_ws *ws);
/* Fill the zero fields of *o with the defaults. */
void ax__ws_opts_defaults(ax_ws_opts *o);

/* Whether a comma-separated field value holds `token` (case-insensitive,
 * optional whitespace around the elements). */
bool ax__ws_has_token(const char *v, size_t n, const char *token);
/* Next element of a comma-separated list starting at *pos: sets *elem,
 * *elen (trimmed); false at the end. */
bool ax__ws_next_elem(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen);

/* Client: check the server's response head (RFC 6455 4.2.2, 4.1 steps
 * 1-6) against our settings and the accept value our key calls for.
 * Returns 0 with the extension and the chosen protocol (one of
 * o->protocols, or NULL), or AX_EPROTO. */
struct ax_http_head;
int ax__ws_check_response(const ax_ws_opts *o, const char *accept, const struct ax_http_head *h,
                          ax__ws_pmd *pmd, const char **proto);

/* ---- permessage-deflate (ws_deflate.c) ---- */

/* Server: parse the client's Sec-WebSocket-Extensions offers (all values
 * joined by ", ") and choose parameters; writes the response value into
 * out (room `cap`) and returns its length, 0 when nothing is accepted. */
size_t ax__ws_pmd_accept(const ax_ws_opts *o, const char *offer, size_t len, ax__ws_pmd *pmd,
                         char *out, size_t cap);
/* Client: the offer to send (into out) and the check of the server's
 * answer.  Returns the offer length; the check returns 0 or AX_EPROTO. */
size_t ax__ws_pmd_offer(const ax_ws_opts *o, char *out, size_t cap);
int ax__ws_pmd_check(const ax_ws_opts *o, const char *resp, size_t len, ax__ws_pmd *pmd);

ax__ws_deflate *ax__ws_deflate_new(const ax__ws_pmd *pmd, int level);
void ax__ws_deflate_free(ax__ws_deflate *d);
/* Inflate one whole message (the payload without the 00 00 ff ff tail).
 * On success *out (owned by d, valid until the next call) and *out_len;
 * returns 0, or the close code: 1009 past `max`, 1007 for bad data. */
int ax__ws_inflate(ax__ws_deflate *d, const uint8_t *in, size_t len, size_t max,
                   const uint8_t **out, size_t *out_len);
/* Compress one message.  Returns 0 with *out owned by d, or AX_ENOMEM. */
int ax__ws_compress(ax__ws_deflate *d, const uint8_t *in, size_t len, const uint8_t **out,
                    size_t *out_len);

#endif
