/* ws_frame.h: the pure WebSocket framing layer (RFC 6455 section 5, the
 * close rules of section 7, RSV1 as RFC 7692 uses it).  No I/O and no
 * allocation; everything works on caller memory.
 *
 * Receiving: an ax_ws_parser is fed whatever bytes arrived, in pieces of any
 * size.  It consumes header bytes into itself (so the caller never keeps
 * them), checks every protocol rule as soon as the bytes that break it are
 * in, unmasks payload in place, validates text as it streams, and reports
 * one event per call:
 *
 *     while (len > 0) {
 *         size_t n = ax_ws_parse(&p, buf, len, &ev);
 *         buf += n, len -= n;
 *         if (ev.type == AX_WS_EV_NEED_MORE) break;       // n == len here
 *         if (ev.type == AX_WS_EV_ERROR) { close with ev.code; break; }
 *         ...DATA or CONTROL...
 *     }
 *
 * Sending: ax_ws_encode_header() writes a header, ax_ws_mask() masks the
 * payload of a client frame (the same function unmasks). */
#ifndef AXON_PROTO_WS_FRAME_H
#define AXON_PROTO_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/error.h>
#include <axon/ws.h>

#include "proto/ws/utf8.h"

/* Which end of the connection we are: a server receives masked frames and
 * sends unmasked ones, a client the reverse (RFC 6455 section 5.1). */
enum ax_ws_role { AX_WS_SERVER = 0, AX_WS_CLIENT = 1 };

enum ax_ws_opcode {
    AX_WS_CONT = 0x0,
    AX_WS_TEXT = 0x1,
    AX_WS_BINARY = 0x2,
    AX_WS_CLOSE = 0x8,
    AX_WS_PING = 0x9,
    AX_WS_PONG = 0xA,
};

/* Bits of the first header byte; `rsv` arguments and fields use these. */
#define AX_WS_FIN 0x80
#define AX_WS_RSV1 0x40 /* "per-message compressed" under permessage-deflate */
#define AX_WS_RSV2 0x20
#define AX_WS_RSV3 0x10
#define AX_WS_RSV_ALL (AX_WS_RSV1 | AX_WS_RSV2 | AX_WS_RSV3)

#define AX_WS_MAX_HEADER 14   /* 2 + 8 (64-bit length) + 4 (masking key) */
#define AX_WS_MAX_CONTROL 125 /* largest control-frame payload */

/* Close status codes: enum ax_ws_close_code in <axon/ws.h>. */

/* One frame header, as parsed or to be encoded. */
typedef struct ax_ws_frame {
    uint64_t len;       /* payload length */
    uint8_t opcode;     /* enum ax_ws_opcode */
    uint8_t rsv;        /* AX_WS_RSV1..3 bits that were set */
    bool fin;           /* last frame of its message */
    bool masked;        /* a masking key follows the length */
    uint8_t mask[4];    /* the masking key when `masked` */
    uint8_t header_len; /* bytes the header took on the wire, 2..14 */
} ax_ws_frame;

typedef struct ax_ws_config {
    enum ax_ws_role role;
    /* RSV bits an extension negotiated: AX_WS_RSV1 with permessage-deflate,
     * else 0.  RSV1 is then accepted only on the first frame of a data
     * message (RFC 7692 section 6). */
    uint8_t rsv_allowed;
    /* Largest payload of one data frame, and of one data message (the sum
     * of its fragments, on the wire); 0 means no limit.  Beyond either the
     * parser fails with 1009 as soon as the frame header is in. */
    uint64_t max_frame;
    uint64_t max_message;
} ax_ws_config;

enum ax_ws_event_type {
    AX_WS_EV_NEED_MORE = 0, /* every byte was consumed; feed more */
    AX_WS_EV_DATA,          /* a piece of a data frame's payload */
    AX_WS_EV_CONTROL,       /* a whole control frame */
    AX_WS_EV_ERROR,         /* a protocol violation: close with `code` */
};

typedef struct ax_ws_event {
    enum ax_ws_event_type type;
    /* DATA: the message's opcode (TEXT or BINARY, also for continuation
     * frames); CONTROL: CLOSE, PING or PONG. */
    uint8_t opcode;
    /* DATA: this piece ends its frame / ends its message.  Every data frame
     * yields at least one DATA event (an empty frame one with len 0), and
     * the last one has frame_end set. */
    bool frame_end;
    bool message_end;
    /* DATA: the message had RSV1 set (permessage-deflate): its payload is
     * compressed and was not checked as UTF-8; inflate and check it. */
    bool compressed;
    /* CONTROL/CLOSE: the peer's status code (1005 when the frame had none).
     * ERROR: the status to close the connection with (1002, 1007, 1009). */
    uint16_t code;
    /* DATA: the unmasked payload piece, in the caller's buffer.  PING/PONG:
     * the whole payload, inside the parser.  CLOSE: the reason (valid UTF-8,
     * not NUL-terminated), inside the parser.  Valid until the next call. */
    uint8_t *data;
    size_t len;
} ax_ws_event;

/* Parser state; a plain struct so it can live inside a connection.  Read
 * `frame` for the current frame's header; the other fields are private. */
typedef struct ax_ws_parser {
    ax_ws_config cfg;
    ax_ws_frame frame; /* the frame being received, once its header is in */
    uint64_t left;     /* payload bytes of `frame` still to come */
    uint64_t msg_len;  /* payload bytes of the open data message so far */
    ax_utf8 utf8;      /* validator of the open text message */
    uint8_t state;
    uint8_t msg_opcode; /* TEXT/BINARY while a data message is open, else 0 */
    bool msg_compressed;
    uint8_t have;   /* header bytes collected in hdr[] */
    uint16_t error; /* the close code, once failed */
    uint8_t hdr[AX_WS_MAX_HEADER];
    uint8_t ctrl[AX_WS_MAX_CONTROL];
} ax_ws_parser;

void ax_ws_parser_init(ax_ws_parser *p, const ax_ws_config *cfg);

/* Consumes bytes from buf[0..len) and reports at most one event in *ev.
 * Returns the number of bytes consumed; when ev->type is NEED_MORE that is
 * all of them.  The payload is unmasked in place, so buf must be writable;
 * DATA events point into it.  A text message that is not compressed is
 * validated as UTF-8 as it streams: a bad byte fails at once with 1007, as
 * does a message that ends inside a character.  Errors are final: later
 * calls return 0 and the same ERROR event. */
size_t ax_ws_parse(ax_ws_parser *p, uint8_t *buf, size_t len, ax_ws_event *ev);

/* True while a fragmented data message is open (its final frame not yet
 * received): a new TEXT/BINARY frame would be a protocol error. */
static inline bool ax_ws_parser_in_message(const ax_ws_parser *p)
{
    return p->msg_opcode != 0;
}

/* True at a frame boundary with no data message open and no error: the
 * parser holds nothing a fresh ax_ws_parser_init() would not. */
bool ax_ws_parser_idle(const ax_ws_parser *p);

/* Header bytes ax_ws_encode_header() writes for this payload length. */
size_t ax_ws_header_size(uint64_t len, bool masked);

/* Writes a frame header into out (room for AX_WS_MAX_HEADER bytes) and
 * returns its length, using the shortest length encoding.  `key` NULL
 * writes an unmasked frame (what a server sends); a client passes a fresh
 * random 4-byte key and then masks the payload with ax_ws_mask(..., key, 0).
 * Returns 0, writing nothing, for an unknown opcode, rsv bits outside
 * AX_WS_RSV_ALL, a length of 2^63 or more, or a control frame that is
 * fragmented or longer than 125 bytes. */
size_t ax_ws_encode_header(uint8_t *out, unsigned opcode, bool fin, unsigned rsv, uint64_t len,
                           const uint8_t *key);

/* XORs buf[0..len) with the masking key, where buf[0] is payload byte
 * number `offset` of its frame, so a payload that arrives in pieces is
 * unmasked piece by piece.  Masking and unmasking are the same operation.
 * Works 8 bytes at a time on aligned words. */
void ax_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset);

/* True for a status code that may appear in a close frame: 1000-1003,
 * 1007-1014 and 3000-4999 (1012-1014 are registered with IANA). */
bool ax_ws_close_code_valid(unsigned code);

/* Checks a close frame's payload (RFC 6455 sections 5.5.1, 7.4).  Returns 0
 * and sets *code (1005 for an empty payload) and the reason, or returns the
 * status to fail the connection with: 1002 for a 1-byte or >125-byte
 * payload or a code not allowed on the wire, 1007 for a reason that is not
 * valid UTF-8. */
uint16_t ax_ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                           const uint8_t **reason, size_t *reason_len);

/* Writes a close payload (code, then reason) into out, which holds
 * AX_WS_MAX_CONTROL bytes, and returns its length.  Code 0 writes an empty
 * payload.  A reason longer than 123 bytes is cut at a character boundary.
 * Returns AX_EINVAL for a code that may not be sent. */
int ax_ws_close_encode(uint8_t *out, unsigned code, const char *reason, size_t reason_len);

/* --- opening handshake helpers (RFC 6455 sections 1.3, 4.2.2) --- */

#define AX_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define AX_WS_KEY_LEN 24    /* base64 of the client's 16 random bytes */
#define AX_WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 digest */

/* True when a Sec-WebSocket-Key value (surrounding whitespace already
 * trimmed) is base64 of exactly 16 bytes. */
bool ax_ws_key_valid(const char *key, size_t len);

/* Writes the Sec-WebSocket-Accept text for SHA-1(key + AX_WS_GUID):
 * AX_WS_ACCEPT_LEN characters and a NUL. */
void ax_ws_accept_from_sha1(char out[AX_WS_ACCEPT_LEN + 1], const uint8_t sha1[20]);

/* Sec-WebSocket-Accept = base64(SHA-1(key + AX_WS_GUID)) for a client's key.
 * Returns 0, or AX_EINVAL when the key is not valid.  Defined next to the
 * handshake code, which links OpenSSL for SHA-1 and calls
 * ax_ws_accept_from_sha1(); this layer stays free of it. */
AX_MUST_CHECK int ax_ws_accept(char out[AX_WS_ACCEPT_LEN + 1], const char *key, size_t len);

#endif
