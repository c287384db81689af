/* fuzz_game.c: libFuzzer target for the arena game's wire format
 * (examples/game/game_proto.h), what the server and the bots decode from
 * any datagram.
 *
 * The input is taken as an INPUT message and as a SNAPSHOT:
 *  - an INPUT that decodes has 1..GAME_REDUNDANCY keys and encodes back to
 *    the same bytes;
 *  - a SNAPSHOT whose head decodes is applied to a base made from the
 *    input's tail (sorted, unique ids); a result is at most
 *    GAME_MAX_VISIBLE entities in strictly increasing id order, and
 *    encoding it against the same base and applying that again gives the
 *    same entities (deltas are exact);
 *  - game_move() keeps an entity inside the arena. */
#include <stdio.h>
#include <stdlib.h>

#include "../../examples/game/game_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_game: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A base of up to 40 entities from the bytes: ids ascending. */
static size_t make_base(const uint8_t *p, size_t len, game_ent *out)
{
    size_t n = 0;
    uint16_t id = 0;
    for (size_t i = 0; i + 5 <= len && n < 40; i += 5) {
        id = (uint16_t)(id + 1 + p[i] % 7);
        out[n].id = id;
        out[n].x = (int16_t)game_get16(p + i + 1);
        out[n].y = (int16_t)game_get16(p + i + 3);
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    game_input in;
    if (game_input_decode(data, size, &in)) {
        uint8_t out[16 + GAME_REDUNDANCY];
        CHECK(in.n >= 1 && in.n <= GAME_REDUNDANCY);
        CHECK(game_input_encode(&in, out) == size && memcmp(out, data, size) == 0);
    }
    game_snap_head h;
    if (size && game_snap_head_decode(data, size, &h)) {
        static game_ent base[GAME_MAX_VISIBLE], got[GAME_MAX_VISIBLE], again[GAME_MAX_VISIBLE];
        static uint8_t enc[GAME_SNAP_MAX];
        size_t nb = make_base(data, size > 23 ? 23 : 0, base); /* the head's bytes as a base */
        long n = game_snap_apply(data, base, nb, got);
        if (n >= 0) {
            CHECK(n <= GAME_MAX_VISIBLE);
            for (long i = 1; i < n; i++)
                CHECK(got[i - 1].id < got[i].id);
            game_snap_head h2 = h;
            size_t len = game_snap_encode(&h2, base, nb, got, (size_t)n, enc);
            CHECK(len <= GAME_SNAP_MAX);
            CHECK(game_snap_head_decode(enc, len, &h2));
            long m = game_snap_apply(enc, base, nb, again);
            CHECK(m == n && memcmp(got, again, (size_t)n * sizeof got[0]) == 0);
        }
    }
    if (size >= 5) {
        game_ent e = {1, (int16_t)game_get16(data), (int16_t)game_get16(data + 2)};
        if (e.x < 0) e.x = 0;
        if (e.y < 0) e.y = 0;
        if (e.x > 2000) e.x = 2000;
        if (e.y > 1200) e.y = 1200;
        game_move(&e, data[4], 2000, 1200);
        CHECK(e.x >= 0 && e.x <= 2000 && e.y >= 0 && e.y <= 1200);
    }
    return 0;
}
