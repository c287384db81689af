/* rtmp.h: a pure RTMP codec (Adobe's RTMP 1.0 specification, 2012): the
 * handshake, the chunk stream and AMF0 values.  No I/O, no allocation, no
 * global state.  Internal, like proto/irc/irc.h; the hub's RTMP gateway
 * (src/hub/gw_rtmp.c) includes it as "proto/rtmp/rtmp.h".
 *
 * Handshake (server side, the "simple" one every client accepts when the
 * server's S1 carries version 0): wait for C0+C1 (AX_RTMP_C0C1 bytes),
 * answer with ax_rtmp_handshake_reply() (S0 S1 S2), then skip C2
 * (AX_RTMP_HS bytes).  A C0 other than 3 is refused.
 *
 * Chunks: ax_rtmp_chunk_parse() takes one whole chunk (header and up to
 * chunk_size payload bytes) from the front of the input, or says it needs
 * more; it never keeps a pointer.  The parser remembers per chunk stream
 * the last message header (for header formats 1 to 3) and how much of the
 * current message has arrived; the caller reassembles a message from its
 * chunks (ax_rtmp_chunk.offset, .last) in its own buffer.  At most
 * AX_RTMP_MAX_STREAMS chunk streams are tracked at once (clients use 3 to
 * 6); a message longer than AX_RTMP_MAX_MSG is refused before any of it
 * is delivered.  Set Chunk Size is the caller's to apply
 * (ax_rtmp_set_chunk_size), since it is a message like any other.
 *
 * Sending: ax_rtmp_chunk_encode() writes a whole message as chunks, each
 * with a full (format 0) header first and format 3 after it, so the bytes
 * depend only on (chunk stream, header, payload, chunk size): the relay
 * encodes a frame once and every viewer gets the same bytes.
 *
 * AMF0: ax_amf0_read() reads one value; for an object, ECMA array or
 * strict array it reads only the marker (and the count), and the caller
 * walks the members with ax_amf0_read_key() / ax_amf0_read() or skips the
 * whole value with ax_amf0_skip() (nesting at most AX_AMF0_MAX_DEPTH).
 * Strings point into the input.  The writer (ax_amf0_w) fills a caller's
 * buffer and remembers an overflow instead of failing each call. */
#ifndef AXON_PROTO_RTMP_H
#define AXON_PROTO_RTMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AX_RTMP_HS 1536                     /* C1, C2, S1, S2 */
#define AX_RTMP_C0C1 (1 + AX_RTMP_HS)       /* what the server waits for first */
#define AX_RTMP_S0S1S2 (1 + 2 * AX_RTMP_HS) /* its reply */
#define AX_RTMP_MAX_STREAMS 16              /* chunk streams tracked at once */
#define AX_RTMP_MAX_MSG (8u << 20)          /* bytes in one message */
#define AX_RTMP_MAX_CHUNK 65536u            /* the largest Set Chunk Size taken */
#define AX_RTMP_DEFAULT_CHUNK 128u
#define AX_RTMP_MAX_HEADER (3 + 11 + 4) /* basic + format 0 + extended timestamp */
#define AX_AMF0_MAX_DEPTH 16

/* Message types. */
enum {
    AX_RTMP_SET_CHUNK_SIZE = 1,
    AX_RTMP_ABORT = 2,
    AX_RTMP_ACK = 3,
    AX_RTMP_USER_CONTROL = 4,
    AX_RTMP_WINDOW_ACK = 5,
    AX_RTMP_PEER_BW = 6,
    AX_RTMP_AUDIO = 8,
    AX_RTMP_VIDEO = 9,
    AX_RTMP_DATA_AMF3 = 15,
    AX_RTMP_COMMAND_AMF3 = 17,
    AX_RTMP_DATA = 18,
    AX_RTMP_COMMAND = 20,
    AX_RTMP_AGGREGATE = 22,
};

enum {
    AX_RTMP_EVERSION = -1, /* C0 is not 3 */
    AX_RTMP_ESTREAMS = -2, /* more than AX_RTMP_MAX_STREAMS chunk streams */
    AX_RTMP_EHEADER = -3,  /* format 1-3 on a chunk stream never started */
    AX_RTMP_ESIZE = -4,    /* a message over AX_RTMP_MAX_MSG, or a bad chunk size */
    AX_RTMP_EAMF = -5,     /* AMF0: truncated, unknown marker, too deep */
    AX_RTMP_ESPACE = -6,   /* encoding: the output buffer is too small */
};

/* One message's header, as the chunk stream carries it. */
typedef struct ax_rtmp_hdr {
    uint32_t csid; /* chunk stream id, 2 to 65599 */
    uint32_t ts;   /* absolute timestamp, ms */
    uint32_t len;  /* message length */
    uint8_t type;  /* AX_RTMP_AUDIO ... */
    uint32_t sid;  /* message stream id */
} ax_rtmp_hdr;

/* A chunk stream's state, kept between chunks. */
typedef struct ax_rtmp_cstate {
    ax_rtmp_hdr h;
    uint32_t delta; /* the last timestamp delta (formats 1 and 2) */
    uint32_t got;   /* bytes of the current message so far */
    bool ext;       /* the last header had an extended timestamp */
    bool used;
} ax_rtmp_cstate;

typedef struct ax_rtmp_parser {
    uint32_t chunk_size; /* the peer's; AX_RTMP_DEFAULT_CHUNK at first */
    ax_rtmp_cstate cs[AX_RTMP_MAX_STREAMS];
} ax_rtmp_parser;

/* One chunk: `len` payload bytes at `data` (into the input), at `offset`
 * of the message `h`; `last` when the message is complete with it. */
typedef struct ax_rtmp_chunk {
    ax_rtmp_hdr h;
    const uint8_t *data;
    uint32_t len, offset;
    bool last;
} ax_rtmp_chunk;

/* S0 S1 S2 for a C0 C1 (AX_RTMP_C0C1 bytes at c0c1) into out
 * (AX_RTMP_S0S1S2 bytes).  `time_ms` goes in S1; `random` (AX_RTMP_HS - 8
 * bytes, or NULL for zeros) fills the rest of S1.  0 or AX_RTMP_EVERSION. */
int ax_rtmp_handshake_reply(const uint8_t *c0c1, uint32_t time_ms, const uint8_t *random,
                            uint8_t *out);

void ax_rtmp_parser_init(ax_rtmp_parser *p);
/* Apply a Set Chunk Size (1 to AX_RTMP_MAX_CHUNK): 0 or AX_RTMP_ESIZE. */
int ax_rtmp_set_chunk_size(ax_rtmp_parser *p, uint32_t size);
/* One chunk from buf: the bytes it took (> 0) with *out filled, 0 when
 * the chunk is not all there yet, or a negative AX_RTMP_E code. */
long ax_rtmp_chunk_parse(ax_rtmp_parser *p, const uint8_t *buf, size_t len, ax_rtmp_chunk *out);

/* Bytes ax_rtmp_chunk_encode() writes for a message of this header. */
size_t ax_rtmp_chunk_size_of(const ax_rtmp_hdr *h, uint32_t chunk_size);
/* The message `h` (h->len bytes at payload) as chunks into out: the bytes
 * written, or AX_RTMP_ESPACE / AX_RTMP_ESIZE (bad csid or chunk size). */
long ax_rtmp_chunk_encode(const ax_rtmp_hdr *h, const uint8_t *payload, uint32_t chunk_size,
                          uint8_t *out, size_t cap);

/* ---- AMF0 ------------------------------------------------------------------ */

enum {
    AX_AMF0_NUMBER = 0,
    AX_AMF0_BOOLEAN = 1,
    AX_AMF0_STRING = 2,
    AX_AMF0_OBJECT = 3,
    AX_AMF0_NULL = 5,
    AX_AMF0_UNDEFINED = 6,
    AX_AMF0_ECMA_ARRAY = 8,
    AX_AMF0_OBJECT_END = 9,
    AX_AMF0_STRICT_ARRAY = 10,
    AX_AMF0_DATE = 11,
    AX_AMF0_LONG_STRING = 12,
};

typedef struct ax_amf0_val {
    uint8_t type;
    double num;      /* NUMBER, DATE; BOOLEAN 0 or 1 */
    const char *str; /* STRING, LONG_STRING: into the input, not NUL-terminated */
    uint32_t len;    /* the string's length; the ECMA or strict array's count */
} ax_amf0_val;

/* One value at buf[*off]; *off moves past it (for containers: past the
 * marker and count only).  0 or AX_RTMP_EAMF. */
int ax_amf0_read(const uint8_t *buf, size_t len, size_t *off, ax_amf0_val *v);
/* The next member name of an object or ECMA array: 1 with the key, or 0
 * at the end marker (consumed), or AX_RTMP_EAMF. */
int ax_amf0_read_key(const uint8_t *buf, size_t len, size_t *off, const char **key, uint32_t *klen);
/* Skip one whole value (containers with their members). */
int ax_amf0_skip(const uint8_t *buf, size_t len, size_t *off);
/* In the object or ECMA array that starts at buf[*off] (its marker), the
 * member `key` when it is a string or number: 1 found (*v), 0 not, or
 * AX_RTMP_EAMF; *off moves past the whole value either way. */
int ax_amf0_find(const uint8_t *buf, size_t len, size_t *off, const char *key, ax_amf0_val *v);

typedef struct ax_amf0_w {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
} ax_amf0_w;

void ax_amf0_number(ax_amf0_w *w, double n);
void ax_amf0_bool(ax_amf0_w *w, bool b);
void ax_amf0_string(ax_amf0_w *w, const char *s, size_t n); /* LONG_STRING above 65535 */
void ax_amf0_cstr(ax_amf0_w *w, const char *s);
void ax_amf0_null(ax_amf0_w *w);
void ax_amf0_object(ax_amf0_w *w);
void ax_amf0_ecma(ax_amf0_w *w, uint32_t count);
void ax_amf0_key(ax_amf0_w *w, const char *key); /* under 65536 bytes */
void ax_amf0_end(ax_amf0_w *w);                  /* of an object or ECMA array */

#endif
