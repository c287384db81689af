/* game_proto.h: the wire format of the arena game (examples/game/).
 *
 * The same binary messages go over UDP (native clients, game_bot.c) and
 * as WebSocket binary messages (the browser, index.html).  All integers are
 * big-endian.  Pure and bounded: encoders write at most the size they are
 * given, decoders read at most the bytes they are given, nothing
 * allocates.
 *
 *   JOIN      c->s  u8 1, u8 len, name[len]                  (UDP only)
 *   WELCOME   s->c  u8 2, u16 id, u16 arena_w, u16 arena_h
 *   INPUT     c->s  u8 3, u16 id, u32 ack, u32 echo, u32 seq, u8 n, keys[n]
 *   SNAPSHOT  s->c  u8 4, u32 tick, u32 base, u32 input, u32 echo,
 *                   u16 changed, u16 removed,
 *                   changed x (u16 id, i16 x, i16 y), removed x u16 id
 *
 * An INPUT carries the keys of ticks seq, seq+1, ... seq+n-1: the newest
 * and up to GAME_REDUNDANCY-1 before it, so a lost datagram's inputs come
 * again with the next one.  `ack` is the newest snapshot tick the client
 * has decoded; `echo` is a client clock the server sends back (RTT).
 *
 * A SNAPSHOT is a delta: what changed since the snapshot `base`, the one
 * the client acknowledged last (0: since nothing, a full snapshot).
 * `input` is the newest input seq the server has applied, so the client
 * can replay the inputs after it over the server's position (prediction). */
#ifndef GAME_PROTO_H
#define GAME_PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { MSG_JOIN = 1, MSG_WELCOME = 2, MSG_INPUT = 3, MSG_SNAPSHOT = 4 };
enum { KEY_UP = 1, KEY_DOWN = 2, KEY_LEFT = 4, KEY_RIGHT = 8 };

#define GAME_HZ 30
#define GAME_SPEED 6         /* units a tick */
#define GAME_REDUNDANCY 4    /* inputs per INPUT datagram */
#define GAME_MAX_VISIBLE 160 /* entities in one snapshot: 1,146 bytes at most */
#define GAME_SNAP_MAX (23 + GAME_MAX_VISIBLE * 8)

typedef struct game_ent {
    uint16_t id;
    int16_t x, y;
} game_ent;

/* ---- bytes --------------------------------------------------------------- */

static inline void game_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}
static inline void game_put32(uint8_t *p, uint32_t v)
{
    game_put16(p, (uint16_t)(v >> 16)), game_put16(p + 2, (uint16_t)v);
}
static inline uint16_t game_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t game_get32(const uint8_t *p)
{
    return (uint32_t)game_get16(p) << 16 | game_get16(p + 2);
}

/* ---- movement: the same rule on the server and in prediction ------------ */

static inline void game_move(game_ent *e, uint8_t keys, int w, int h)
{
    int x = e->x, y = e->y;
    if (keys & KEY_UP) y -= GAME_SPEED;
    if (keys & KEY_DOWN) y += GAME_SPEED;
    if (keys & KEY_LEFT) x -= GAME_SPEED;
    if (keys & KEY_RIGHT) x += GAME_SPEED;
    e->x = (int16_t)(x < 0 ? 0 : x > w ? w : x);
    e->y = (int16_t)(y < 0 ? 0 : y > h ? h : y);
}

/* ---- INPUT ---------------------------------------------------------------- */

typedef struct game_input {
    uint16_t id;
    uint32_t ack, echo, seq;
    uint8_t n;
    uint8_t keys[GAME_REDUNDANCY];
} game_input;

/* Returns the length written (at most 16 + GAME_REDUNDANCY). */
static inline size_t game_input_encode(const game_input *in, uint8_t *out)
{
    uint8_t n = in->n > GAME_REDUNDANCY ? GAME_REDUNDANCY : in->n;
    out[0] = MSG_INPUT;
    game_put16(out + 1, in->id);
    game_put32(out + 3, in->ack);
    game_put32(out + 7, in->echo);
    game_put32(out + 11, in->seq);
    out[15] = n;
    memcpy(out + 16, in->keys, n);
    return 16u + n;
}

static inline bool game_input_decode(const uint8_t *p, size_t len, game_input *in)
{
    if (len < 16 || p[0] != MSG_INPUT || p[15] == 0 || p[15] > GAME_REDUNDANCY ||
        len != 16u + p[15])
        return false;
    in->id = game_get16(p + 1);
    in->ack = game_get32(p + 3);
    in->echo = game_get32(p + 7);
    in->seq = game_get32(p + 11);
    in->n = p[15];
    memcpy(in->keys, p + 16, in->n);
    return true;
}

/* ---- SNAPSHOT --------------------------------------------------------------- */

typedef struct game_snap_head {
    uint32_t tick, base, input, echo;
} game_snap_head;

/* Encode `cur` (n entities, sorted by id) as a delta against `base` (nb,
 * sorted by id; nb 0 and h->base 0 for a full snapshot) into out (at least
 * GAME_SNAP_MAX bytes).  Returns the length. */
static inline size_t game_snap_encode(const game_snap_head *h, const game_ent *base, size_t nb,
                                      const game_ent *cur, size_t n, uint8_t *out)
{
    size_t changed = 0, removed = 0, i = 0, j = 0, o = 23;
    uint16_t gone[GAME_MAX_VISIBLE];
    if (n > GAME_MAX_VISIBLE) n = GAME_MAX_VISIBLE;
    if (nb > GAME_MAX_VISIBLE) nb = GAME_MAX_VISIBLE;
    while (i < n || j < nb) {                               /* merge the two sorted lists */
        if (j == nb || (i < n && cur[i].id < base[j].id)) { /* new */
            game_put16(out + o, cur[i].id), game_put16(out + o + 2, (uint16_t)cur[i].x);
            game_put16(out + o + 4, (uint16_t)cur[i].y), o += 6, changed++, i++;
        } else if (i == n || base[j].id < cur[i].id) { /* gone */
            gone[removed++] = base[j++].id;
        } else { /* in both: sent only when it moved */
            if (cur[i].x != base[j].x || cur[i].y != base[j].y) {
                game_put16(out + o, cur[i].id), game_put16(out + o + 2, (uint16_t)cur[i].x);
                game_put16(out + o + 4, (uint16_t)cur[i].y), o += 6, changed++;
            }
            i++, j++;
        }
    }
    for (size_t k = 0; k < removed; k++, o += 2)
        game_put16(out + o, gone[k]);
    out[0] = MSG_SNAPSHOT;
    game_put32(out + 1, h->tick);
    game_put32(out + 5, h->base);
    game_put32(out + 9, h->input);
    game_put32(out + 13, h->echo);
    game_put16(out + 17, (uint16_t)changed);
    game_put16(out + 19, (uint16_t)removed);
    out[21] = out[22] = 0; /* reserved */
    return o;
}

/* The header of a snapshot; false when it is not a well-formed one. */
static inline bool game_snap_head_decode(const uint8_t *p, size_t len, game_snap_head *h)
{
    if (len < 23 || p[0] != MSG_SNAPSHOT) return false;
    size_t changed = game_get16(p + 17), removed = game_get16(p + 19);
    if (changed > GAME_MAX_VISIBLE || removed > GAME_MAX_VISIBLE ||
        len != 23 + changed * 6 + removed * 2)
        return false;
    h->tick = game_get32(p + 1);
    h->base = game_get32(p + 5);
    h->input = game_get32(p + 9);
    h->echo = game_get32(p + 13);
    return true;
}

/* Apply a well-formed snapshot to `base` (nb entities, sorted by id; the
 * state of tick h->base, or nothing for a full one) into out (room for
 * GAME_MAX_VISIBLE).  Returns the number of entities, sorted by id, or -1
 * when the snapshot does not fit (more entities than that, a change or
 * removal listed twice, ids out of order). */
static inline long game_snap_apply(const uint8_t *p, const game_ent *base, size_t nb, game_ent *out)
{
    size_t changed = game_get16(p + 17), removed = game_get16(p + 19);
    const uint8_t *ch = p + 23, *rm = ch + changed * 6;
    size_t i = 0, j = 0, k = 0, n = 0;
    int32_t last = -1;
    while (i < nb || j < changed) {
        uint16_t cid = j < changed ? game_get16(ch + j * 6) : 0;
        if (j < changed && (int32_t)cid <= last) return -1;
        if (n == GAME_MAX_VISIBLE) return -1;
        if (j == changed || (i < nb && base[i].id < cid)) { /* unchanged, unless removed */
            while (k < removed && game_get16(rm + k * 2) < base[i].id)
                k++;
            if (!(k < removed && game_get16(rm + k * 2) == base[i].id)) out[n++] = base[i];
            i++;
            continue;
        }
        if (i < nb && base[i].id == cid) i++; /* replaced */
        out[n].id = cid;
        out[n].x = (int16_t)game_get16(ch + j * 6 + 2);
        out[n].y = (int16_t)game_get16(ch + j * 6 + 4);
        last = cid;
        n++, j++;
    }
    return (long)n;
}

#endif
