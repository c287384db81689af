/* game_bot: players that play by themselves, over UDP.
 *
 *     game_bot [options] [udp://127.0.0.1:7777]
 *       --count N      this many bots, each with its own socket; default 1
 *       --seconds S    play for S seconds, print each bot's final view, exit
 *       --still S      stop moving after S seconds (the views must then agree)
 *       --drop PCT     lose PCT% of the datagrams each way, on purpose
 *       --report       print what each bot sees, once a second
 *
 * A bot joins (JOIN until a WELCOME comes: either may be lost), then
 * thirty times a second sends its keys with the last few before them
 * (a lost datagram's keys come again with the next), and acknowledges the
 * newest snapshot it could decode.  A snapshot is a delta against a
 * snapshot the bot acknowledged, so the bot keeps the last HISTORY of them;
 * one whose base it does not have is dropped, and the server, seeing no
 * newer acknowledgement, keeps sending deltas against an older base it
 * knows the bot has, or a full snapshot.  Nothing is resent, yet the view
 * converges to the server's. */
#include <axon/axon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "game_proto.h"

#define HISTORY 32
#define MAX_ID 4096
#define SLICES 11 /* 11 x 3 ms: a tick */

typedef struct view {
    uint32_t tick;
    uint16_t n;
    game_ent ents[GAME_MAX_VISIBLE];
} view;

typedef struct bot {
    ax_udp *u;
    int index;
    uint16_t id;
    int w, h;
    uint32_t seq, latest; /* inputs sent; the newest snapshot decoded */
    uint8_t recent[GAME_REDUNDANCY];
    game_ent self;
    int tx, ty; /* where it is heading */
    view views[HISTORY];
    uint32_t rtt_ms;
    uint64_t unsent, snapshots;
    int silent;      /* ticks since the last snapshot we could decode */
    uint16_t *moves; /* per id: how often we saw it move (--report, the final view) */
    game_ent *last;  /* per id: where we saw it last */
} bot;

static struct {
    bot *bots;
    int count, ticks, still, seconds, drop;
    bool report;
    ax_loop *loop;
} cfg = {.count = 1};

static bool lose(void)
{
    return cfg.drop > 0 && rand() % 100 < cfg.drop;
}

static void send_msg(bot *b, const uint8_t *p, size_t len)
{
    if (!lose() && ax_udp_send(b->u, NULL, p, len) != 0)
        b->unsent++; /* the kernel's buffer was full: lost, as UDP allows */
}

/* A snapshot: decode it against its base, keep it, learn where we are. */
static void snapshot(bot *b, const uint8_t *p, size_t len)
{
    game_snap_head h;
    if (!game_snap_head_decode(p, len, &h) || h.tick == 0 || h.tick <= b->latest) return;
    const view *base = &b->views[h.base % HISTORY];
    if (h.base && base->tick != h.base) return; /* its base is gone: wait for another */
    view *v = &b->views[h.tick % HISTORY];
    view next;
    long n = game_snap_apply(p, base->ents, h.base ? base->n : 0, next.ents);
    if (n < 0) return;
    next.tick = h.tick;
    next.n = (uint16_t)n;
    *v = next;
    b->latest = h.tick;
    b->silent = 0;
    b->snapshots++;
    b->rtt_ms = (uint32_t)ax_loop_now(cfg.loop) - h.echo;
    for (long i = 0; i < n; i++) {
        const game_ent *e = &v->ents[i];
        if (e->id == b->id) b->self = *e;
        game_ent *was = &b->last[e->id];
        if (was->id == e->id && (was->x != e->x || was->y != e->y) && b->moves[e->id] < 65535)
            b->moves[e->id]++;
        *was = *e;
    }
}

static void on_datagram(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    bot *b = ax_udp_data(u);
    const uint8_t *p = (const uint8_t *)data;
    (void)from;
    if (lose() || len == 0) return;
    if (p[0] == MSG_WELCOME && len == 7 && !b->id) {
        b->id = game_get16(p + 1);
        b->w = game_get16(p + 3);
        b->h = game_get16(p + 5);
    } else if (p[0] == MSG_SNAPSHOT && b->id) {
        snapshot(b, p, len);
    }
}

/* Head for a random point; a new one once there. */
static uint8_t steer(bot *b, bool still)
{
    uint8_t keys = 0;
    if (still) return 0;
    if (abs(b->self.x - b->tx) <= GAME_SPEED && abs(b->self.y - b->ty) <= GAME_SPEED) {
        b->tx = rand() % (b->w + 1);
        b->ty = rand() % (b->h + 1);
    }
    if (b->tx < b->self.x - GAME_SPEED) keys |= KEY_LEFT;
    if (b->tx > b->self.x + GAME_SPEED) keys |= KEY_RIGHT;
    if (b->ty < b->self.y - GAME_SPEED) keys |= KEY_UP;
    if (b->ty > b->self.y + GAME_SPEED) keys |= KEY_DOWN;
    return keys;
}

static void print_view(const bot *b, const char *what)
{
    const view *v = &b->views[b->latest % HISTORY];
    printf("%s %d id %u tick %u rtt %u at %d,%d sees", what, b->index, b->id, b->latest, b->rtt_ms,
           b->self.x, b->self.y);
    for (int i = 0; b->latest && i < v->n; i++)
        if (v->ents[i].id != b->id)
            printf(" %u@%d,%d/%u", v->ents[i].id, v->ents[i].x, v->ents[i].y,
                   b->moves[v->ents[i].id]);
    printf("\n");
}

static void play(bot *b)
{
    uint8_t out[32];
    if (!b->id) { /* join, again every half second until welcomed */
        if ((cfg.ticks + b->index) % (GAME_HZ / 2) == 0) {
            int n = snprintf((char *)out + 2, sizeof out - 2, "bot%d", b->index);
            out[0] = MSG_JOIN;
            out[1] = (uint8_t)n;
            send_msg(b, out, 2 + (size_t)n);
        }
        return;
    }
    if (++b->silent > 6 * GAME_HZ) { /* no snapshot for 6 s: the server forgot us */
        b->id = 0;
        b->latest = 0;
        b->silent = 0;
        return;
    }
    bool still = cfg.still && cfg.ticks >= cfg.still * GAME_HZ;
    memmove(b->recent, b->recent + 1, GAME_REDUNDANCY - 1);
    b->recent[GAME_REDUNDANCY - 1] = steer(b, still);
    b->seq++;
    game_input in = {.id = b->id, .ack = b->latest, .echo = (uint32_t)ax_loop_now(cfg.loop)};
    in.n = (uint8_t)(b->seq < GAME_REDUNDANCY ? b->seq : GAME_REDUNDANCY);
    in.seq = b->seq - in.n + 1;
    memcpy(in.keys, b->recent + GAME_REDUNDANCY - in.n, in.n);
    send_msg(b, out, game_input_encode(&in, out));
}

/* A tick is SLICES timer calls, each for every SLICES-th bot: real
 * players do not all send at the same instant, and a burst of a thousand
 * datagrams at once would overflow the server's receive buffer. */
static void one_slice(int slice)
{
    for (int i = slice; i < cfg.count; i += SLICES)
        play(&cfg.bots[i]);
    if (slice < SLICES - 1) return;
    cfg.ticks++;
    if (cfg.report && cfg.ticks % GAME_HZ == 0)
        for (int i = 0; i < cfg.count; i++)
            print_view(&cfg.bots[i], "bot");
    fflush(stdout);
    if (cfg.seconds && cfg.ticks >= cfg.seconds * GAME_HZ) {
        uint64_t snaps = 0;
        int joined = 0;
        for (int i = 0; i < cfg.count; i++) {
            if (cfg.count <= 10) print_view(&cfg.bots[i], "final");
            snaps += cfg.bots[i].snapshots;
            joined += cfg.bots[i].id != 0;
        }
        printf("bots %d, playing at the end %d, snapshots decoded a second per bot %.1f\n",
               cfg.count, joined, (double)snaps / cfg.count / cfg.seconds);
        fflush(stdout);
        ax_loop_stop(cfg.loop);
    }
}

/* Catch up with the clock: a timer that fires late runs the slices due. */
static void tick(ax_timer *t, void *ud)
{
    static uint64_t start, done;
    uint64_t now = ax_loop_now(cfg.loop);
    (void)t, (void)ud;
    if (!start) start = now;
    uint64_t due = (now - start) * GAME_HZ * SLICES / 1000 + 1;
    while (done < due && !(cfg.seconds && cfg.ticks >= cfg.seconds * GAME_HZ))
        one_slice((int)(done++ % SLICES));
}

int main(int argc, char **argv)
{
    const char *url = "udp://127.0.0.1:7777";
    int err;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc)
            cfg.count = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            cfg.seconds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--still") && i + 1 < argc)
            cfg.still = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--drop") && i + 1 < argc)
            cfg.drop = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--report"))
            cfg.report = true;
        else if (argv[i][0] != '-')
            url = argv[i];
        else {
            fprintf(stderr, "usage: game_bot [--count N] [--seconds S] [--still S] [--drop PCT] "
                            "[--report] [udp://HOST:PORT]\n");
            return 2;
        }
    }
    if (cfg.count < 1 || cfg.count > MAX_ID) return 2;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    if (!(cfg.loop = ax_loop_new(NULL, &err))) return 1;
    cfg.bots = calloc((size_t)cfg.count, sizeof(*cfg.bots));
    if (!cfg.bots) return 1;
    static const ax_udp_opts uo = {.max_datagram = GAME_SNAP_MAX};
    for (int i = 0; i < cfg.count; i++) {
        bot *b = &cfg.bots[i];
        b->index = i;
        b->moves = calloc(MAX_ID, sizeof(*b->moves));
        b->last = calloc(MAX_ID, sizeof(*b->last));
        b->u = ax_udp_connect(cfg.loop, url, on_datagram, &uo, b, &err);
        if (!b->moves || !b->last || !b->u) {
            fprintf(stderr, "game_bot: %s: %s\n", url, ax_strerror(err));
            return 1;
        }
    }
    ax_timer *t = ax_timer_new(cfg.loop, tick, NULL);
    if (!t || ax_timer_start(t, 1, 1000 / GAME_HZ / SLICES) != 0) return 1;
    ax_loop_handle_signals(cfg.loop, NULL);
    ax_loop_run(cfg.loop);
    ax_timer_free(t);
    for (int i = 0; i < cfg.count; i++) {
        ax_udp_close(cfg.bots[i].u);
        free(cfg.bots[i].moves);
        free(cfg.bots[i].last);
    }
    free(cfg.bots);
    ax_loop_free(cfg.loop);
    return 0;
}
