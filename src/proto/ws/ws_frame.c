/* ws_frame.c: WebSocket frame parsing, validation, encoding and masking.
 *
 * The header is collected in two steps: the first two bytes, which carry
 * everything the fast-fail rules need (opcode, RSV, FIN, mask bit, 7-bit
 * length), then the extended length and the masking key.  Rules are checked
 * at the end of each step, so a bad frame is refused before its payload. */
#include "proto/ws/ws_frame.h"

#include <string.h>

#include "proto/ws/base64.h"

enum { ST_HEADER, ST_DATA, ST_CONTROL, ST_FAILED };

static bool opcode_known(unsigned op)
{
    return op == AX_WS_CONT || op == AX_WS_TEXT || op == AX_WS_BINARY || op == AX_WS_CLOSE ||
           op == AX_WS_PING || op == AX_WS_PONG;
}

static bool is_control(unsigned op)
{
    return (op & 0x8) != 0;
}

void ax_ws_parser_init(ax_ws_parser *p, const ax_ws_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->state = ST_HEADER;
    ax_utf8_init(&p->utf8);
}

/* Rules decided by the first two header bytes (RFC 6455 5.2, 5.1, 5.4,
 * 5.5; RFC 7692 6).  Returns 0 or the close code. */
static uint16_t check_start(const ax_ws_parser *p, uint8_t b0, uint8_t b1)
{
    unsigned op = b0 & 0x0f, rsv = b0 & AX_WS_RSV_ALL, len7 = b1 & 0x7f;
    bool fin = (b0 & AX_WS_FIN) != 0, masked = (b1 & 0x80) != 0;

    if (!opcode_known(op)) return AX_WS_CLOSE_PROTOCOL;
    if (rsv & ~(unsigned)p->cfg.rsv_allowed) return AX_WS_CLOSE_PROTOCOL;
    /* Clients must mask, servers must not. */
    if (masked != (p->cfg.role == AX_WS_SERVER)) return AX_WS_CLOSE_PROTOCOL;
    if (is_control(op)) {
        if (!fin || len7 > AX_WS_MAX_CONTROL || (rsv & AX_WS_RSV1)) return AX_WS_CLOSE_PROTOCOL;
    } else if (op == AX_WS_CONT) {
        /* Continuation without a start; RSV1 only marks a message's first frame. */
        if (!p->msg_opcode || (rsv & AX_WS_RSV1)) return AX_WS_CLOSE_PROTOCOL;
    } else if (p->msg_opcode) {
        return AX_WS_CLOSE_PROTOCOL; /* a new message inside a fragmented one */
    }
    return 0;
}

/* Length rules: the shortest encoding, the MSB of a 64-bit length clear,
 * then the configured limits. */
static uint16_t check_length(const ax_ws_parser *p, const ax_ws_frame *f, unsigned len7)
{
    if (len7 == 126 && f->len < 126) return AX_WS_CLOSE_PROTOCOL;
    if (len7 == 127 && (f->len >> 63 || f->len <= 0xffff)) return AX_WS_CLOSE_PROTOCOL;
    if (is_control(f->opcode)) return 0;
    if (p->cfg.max_frame && f->len > p->cfg.max_frame) return AX_WS_CLOSE_TOO_BIG;
    /* msg_len never exceeds max_message, so the subtraction cannot wrap. */
    if (p->cfg.max_message && f->len > p->cfg.max_message - p->msg_len) return AX_WS_CLOSE_TOO_BIG;
    return 0;
}

static size_t ext_len_bytes(unsigned len7)
{
    return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/* Copies header bytes until hdr[] holds `target` of them; returns bytes used. */
static size_t fill(ax_ws_parser *p, const uint8_t *buf, size_t len, size_t target)
{
    size_t n = target - p->have;
    if (n > len) n = len;
    if (n) memcpy(p->hdr + p->have, buf, n);
    p->have = (uint8_t)(p->have + n);
    return n;
}

static void fail(ax_ws_parser *p, uint16_t code)
{
    p->state = ST_FAILED;
    p->error = code;
}

/* Decodes the complete header in hdr[] into p->frame and enters the payload
 * state, or fails. */
static void start_frame(ax_ws_parser *p)
{
    ax_ws_frame *f = &p->frame;
    unsigned len7 = p->hdr[1] & 0x7f;
    size_t ext = ext_len_bytes(len7), i;
    uint16_t code;

    f->opcode = p->hdr[0] & 0x0f;
    f->rsv = p->hdr[0] & AX_WS_RSV_ALL;
    f->fin = (p->hdr[0] & AX_WS_FIN) != 0;
    f->masked = (p->hdr[1] & 0x80) != 0;
    f->len = ext ? 0 : len7;
    for (i = 0; i < ext; i++)
        f->len = f->len << 8 | p->hdr[2 + i];
    if (f->masked) memcpy(f->mask, p->hdr + 2 + ext, 4);
    f->header_len = p->have;
    p->have = 0;

    if ((code = check_length(p, f, len7))) {
        fail(p, code);
        return;
    }
    p->left = f->len;
    if (is_control(f->opcode)) {
        p->state = ST_CONTROL;
        return;
    }
    if (f->opcode != AX_WS_CONT) {
        p->msg_opcode = f->opcode;
        p->msg_compressed = (f->rsv & AX_WS_RSV1) != 0;
        ax_utf8_init(&p->utf8);
    }
    p->msg_len += f->len;
    p->state = ST_DATA;
}

/* Collects header bytes; returns bytes used.  Leaves the state at
 * ST_HEADER only when it used all of buf and still needs more. */
static size_t take_header(ax_ws_parser *p, const uint8_t *buf, size_t len)
{
    size_t used = 0, need;
    uint16_t code;

    if (p->have < 2) {
        used = fill(p, buf, len, 2);
        if (p->have < 2) return used;
        if ((code = check_start(p, p->hdr[0], p->hdr[1]))) {
            fail(p, code);
            return used;
        }
    }
    need = 2 + ext_len_bytes(p->hdr[1] & 0x7f) + ((p->hdr[1] & 0x80) ? 4 : 0);
    used += fill(p, buf + used, len - used, need);
    if (p->have == need) start_frame(p);
    return used;
}

static bool checks_utf8(const ax_ws_parser *p)
{
    return p->msg_opcode == AX_WS_TEXT && !p->msg_compressed;
}

static size_t take_data(ax_ws_parser *p, uint8_t *buf, size_t len, ax_ws_event *ev)
{
    ax_ws_frame *f = &p->frame;
    size_t n = p->left < len ? (size_t)p->left : len;

    if (n == 0 && p->left) return 0;
    if (f->masked) ax_ws_mask(buf, n, f->mask, f->len - p->left);
    if (checks_utf8(p) && ax_utf8_feed(&p->utf8, buf, n) != n) {
        fail(p, AX_WS_CLOSE_INVALID_DATA);
        return n;
    }
    p->left -= n;
    ev->type = AX_WS_EV_DATA;
    ev->opcode = p->msg_opcode;
    ev->compressed = p->msg_compressed;
    ev->data = buf;
    ev->len = n;
    ev->frame_end = p->left == 0;
    ev->message_end = ev->frame_end && f->fin;
    if (!ev->frame_end) return n;
    p->state = ST_HEADER;
    if (!f->fin) return n;
    if (checks_utf8(p) && !ax_utf8_complete(&p->utf8)) {
        fail(p, AX_WS_CLOSE_INVALID_DATA); /* the text ends inside a character */
        return n;
    }
    p->msg_opcode = 0;
    p->msg_len = 0;
    return n;
}

static size_t take_control(ax_ws_parser *p, const uint8_t *buf, size_t len, ax_ws_event *ev)
{
    ax_ws_frame *f = &p->frame;
    size_t n = p->left < len ? (size_t)p->left : len;
    const uint8_t *reason;
    uint16_t code;

    if (n) memcpy(p->ctrl + (f->len - p->left), buf, n);
    p->left -= n;
    if (p->left) return n;
    if (f->masked) ax_ws_mask(p->ctrl, (size_t)f->len, f->mask, 0);
    p->state = ST_HEADER;
    ev->type = AX_WS_EV_CONTROL;
    ev->opcode = f->opcode;
    ev->data = p->ctrl;
    ev->len = (size_t)f->len;
    if (f->opcode != AX_WS_CLOSE) return n;
    code = ax_ws_close_parse(p->ctrl, (size_t)f->len, &ev->code, &reason, &ev->len);
    if (code) {
        fail(p, code);
        return n;
    }
    ev->data = p->ctrl + (reason - p->ctrl);
    return n;
}

bool ax_ws_parser_idle(const ax_ws_parser *p)
{
    return p->state == ST_HEADER && p->have == 0 && p->msg_opcode == 0;
}

size_t ax_ws_parse(ax_ws_parser *p, uint8_t *buf, size_t len, ax_ws_event *ev)
{
    size_t used = 0;

    memset(ev, 0, sizeof(*ev));
    if (p->state == ST_HEADER) {
        used = take_header(p, buf, len);
        if (p->state == ST_HEADER) return used;
    }
    if (p->state == ST_DATA)
        used += take_data(p, buf + used, len - used, ev);
    else if (p->state == ST_CONTROL)
        used += take_control(p, buf + used, len - used, ev);
    if (p->state == ST_FAILED) {
        memset(ev, 0, sizeof(*ev));
        ev->type = AX_WS_EV_ERROR;
        ev->code = p->error;
        return used;
    }
    return used;
}

size_t ax_ws_header_size(uint64_t len, bool masked)
{
    return 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + (masked ? 4 : 0);
}

size_t ax_ws_encode_header(uint8_t *out, unsigned opcode, bool fin, unsigned rsv, uint64_t len,
                           const uint8_t *key)
{
    uint8_t mbit = key ? 0x80 : 0;
    size_t n = 2;

    if (!opcode_known(opcode) || (rsv & ~AX_WS_RSV_ALL) || len >> 63) return 0;
    if (is_control(opcode) && (!fin || len > AX_WS_MAX_CONTROL)) return 0;
    out[0] = (uint8_t)((fin ? AX_WS_FIN : 0) | rsv | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (key) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    return n;
}

void ax_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset)
{
    size_t k = (size_t)(offset & 3), i = 0;
    /* Bytes up to the first 8-byte boundary, so the word loop is aligned. */
    size_t head = (size_t)(-(uintptr_t)buf & 7);

    if (head > len) head = len;
    for (; i < head; i++)
        buf[i] ^= key[(k + i) & 3];
    if (len - i >= 8) {
        /* i advances by multiples of 4 from here, so one pattern serves. */
        uint8_t pat[8];
        uint64_t m, w[4];
        for (size_t j = 0; j < 8; j++)
            pat[j] = key[(k + i + j) & 3];
        memcpy(&m, pat, sizeof m);
        for (; len - i >= 32; i += 32) {
            memcpy(w, buf + i, 32);
            w[0] ^= m;
            w[1] ^= m;
            w[2] ^= m;
            w[3] ^= m;
            memcpy(buf + i, w, 32);
        }
        for (; len - i >= 8; i += 8) {
            memcpy(w, buf + i, 8);
            w[0] ^= m;
            memcpy(buf + i, w, 8);
        }
    }
    for (; i < len; i++)
        buf[i] ^= key[(k + i) & 3];
}

bool ax_ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999) return true; /* registered (3xxx) and private (4xxx) */
    if (code < 1000 || code > 1014) return false;
    return code != 1004 && code != 1005 && code != 1006;
}

uint16_t ax_ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                           const uint8_t **reason, size_t *reason_len)
{
    unsigned c;

    *code = AX_WS_CLOSE_NO_STATUS;
    *reason = payload;
    *reason_len = 0;
    if (len == 0) return 0;
    if (len == 1 || len > AX_WS_MAX_CONTROL) return AX_WS_CLOSE_PROTOCOL;
    c = (unsigned)payload[0] << 8 | payload[1];
    if (!ax_ws_close_code_valid(c)) return AX_WS_CLOSE_PROTOCOL;
    if (!ax_utf8_valid(payload + 2, len - 2)) return AX_WS_CLOSE_INVALID_DATA;
    *code = (uint16_t)c;
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}

int ax_ws_close_encode(uint8_t *out, unsigned code, const char *reason, size_t reason_len)
{
    const size_t room = AX_WS_MAX_CONTROL - 2;

    if (code == 0) return 0;
    if (!ax_ws_close_code_valid(code)) return AX_EINVAL;
    if (reason_len > room) {
        /* Cut before the character that straddles the limit. */
        reason_len = room;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len) memcpy(out + 2, reason, reason_len);
    return (int)(2 + reason_len);
}

bool ax_ws_key_valid(const char *key, size_t len)
{
    uint8_t raw[18];
    size_t n;

    if (len != AX_WS_KEY_LEN) return false;
    return ax_ws_base64_decode(raw, sizeof raw, key, len, &n) == 0 && n == 16;
}

void ax_ws_accept_from_sha1(char out[AX_WS_ACCEPT_LEN + 1], const uint8_t sha1[20])
{
    ax_ws_base64_encode(out, sha1, 20);
}
