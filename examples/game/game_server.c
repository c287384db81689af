/* game_server: an authoritative arena game server at a fixed tick.
 *
 *     game_server [--http URL] [--udp URL] [--web DIR] [--arena WxH] [--stats]
 *         --http   browsers: the page at /, the game at /ws (WebSocket);
 *                  default tcp://127.0.0.1:8088
 *         --udp    native clients (game_bot); default udp://127.0.0.1:7777
 *         --web    where index.html is; default this source folder
 *         --arena  the arena's size in units; default 2000x1200
 *         --stats  print the CPU the ticks take, once a second
 *
 * Players send their keys (game_proto.h); thirty times a second the
 * server applies one input per player, moves everybody, and sends each
 * player what it can see: a snapshot, as the difference against the last
 * snapshot that player acknowledged.  A lost datagram costs nothing but
 * a slightly larger next snapshot; nothing is ever resent.  The server is
 * the only one that decides where anybody is ("authoritative"); clients
 * predict their own movement and correct it from the snapshots. */
#include <axon/axon.h>
#include <axon/http.h>
#include <axon/ws.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "game_proto.h"

#ifndef GAME_WEB_DIR
#define GAME_WEB_DIR "."
#endif
#define MAX_PLAYERS 4096
#define HISTORY 32 /* snapshots remembered per player, for deltas */
#define QUEUE 16   /* inputs buffered per player */
#define VIEW_W 800 /* what a player sees around itself */
#define VIEW_H 500
#define UDP_IDLE 5000 /* ms without a datagram: the player left */

/* What one snapshot held: the base of a later delta. */
typedef struct snapshot {
    uint32_t tick;
    uint16_t n;
    game_ent ents[GAME_MAX_VISIBLE];
} snapshot;

typedef struct player {
    uint16_t id;
    game_ent e;
    ax_ws *ws;    /* a browser, or NULL: */
    ax_addr addr; /* a UDP client's address */
    uint64_t heard;
    uint32_t applied; /* the newest input seq applied */
    uint8_t queue[QUEUE];
    int queued;
    uint32_t ack, echo;
    snapshot hist[HISTORY]; /* by tick % HISTORY */
} player;

static struct game {
    player *slot[MAX_PLAYERS]; /* by id; id 0 is never used */
    int count;
    uint32_t tick;
    int w, h;
    ax_udp *udp;
    ax_loop *loop;
    bool stats;
    uint64_t lost; /* snapshots we could not send */
} g = {.w = 2000, .h = 1200};

/* ---- players ----------------------------------------------------------------- */

static player *player_new(void)
{
    for (int id = 1; id < MAX_PLAYERS; id++) {
        if (g.slot[id]) continue;
        player *p = calloc(1, sizeof(*p));
        if (!p) return NULL;
        p->id = (uint16_t)id;
        p->e.id = (uint16_t)id;
        p->e.x = (int16_t)(rand() % (g.w + 1)); /* anywhere in the arena */
        p->e.y = (int16_t)(rand() % (g.h + 1));
        p->heard = ax_loop_now(g.loop);
        g.slot[id] = p;
        g.count++;
        return p;
    }
    return NULL;
}

static void player_free(player *p)
{
    g.slot[p->id] = NULL;
    g.count--;
    free(p);
}

static void welcome(player *p, uint8_t *out)
{
    out[0] = MSG_WELCOME;
    game_put16(out + 1, p->id);
    game_put16(out + 3, (uint16_t)g.w);
    game_put16(out + 5, (uint16_t)g.h);
}

/* Queue the inputs of an INPUT message we have not seen yet, in order. */
static void take_input(player *p, const game_input *in)
{
    p->heard = ax_loop_now(g.loop);
    if (in->ack > p->ack && in->ack <= g.tick) p->ack = in->ack;
    p->echo = in->echo;
    for (uint32_t k = 0; k < in->n; k++) {
        uint32_t seq = in->seq + k, next = p->applied + (uint32_t)p->queued + 1;
        if (seq < next) continue; /* had it: an earlier datagram carried it too */
        if (seq > next) {         /* lost beyond redundancy: skip the gap */
            p->applied = seq - 1;
            p->queued = 0;
        }
        if (p->queued == QUEUE) { /* a client running ahead: drop its oldest */
            memmove(p->queue, p->queue + 1, QUEUE - 1);
            p->queued--;
            p->applied++;
        }
        p->queue[p->queued++] = in->keys[k];
    }
}

/* ---- the tick --------------------------------------------------------------- */

/* Who is where: the arena cut into cells half a view wide and high, so
 * what a player sees is in its own cell and the eight around it.  Built
 * once a tick (a counting sort by cell, ids ascending within a cell), so a
 * snapshot looks at the few players nearby, not at everybody. */
#define CELL_W (VIEW_W / 2)
#define CELL_H (VIEW_H / 2)
static struct {
    int cols, rows;
    int *start; /* cols * rows + 1: where each cell's ids begin in `ids` */
    int *fill;  /* cols * rows: the next free place while building */
    uint16_t ids[MAX_PLAYERS];
} grid;

static int cell_of(const game_ent *e)
{
    return e->y / CELL_H * grid.cols + e->x / CELL_W;
}

static bool grid_init(void)
{
    grid.cols = g.w / CELL_W + 1, grid.rows = g.h / CELL_H + 1;
    grid.start = calloc((size_t)(grid.cols * grid.rows + 1), sizeof(int));
    grid.fill = calloc((size_t)(grid.cols * grid.rows), sizeof(int));
    return grid.start && grid.fill;
}

static void grid_build(void)
{
    int cells = grid.cols * grid.rows;
    memset(grid.start, 0, (size_t)(cells + 1) * sizeof(int));
    for (int id = 1; id < MAX_PLAYERS; id++) /* count each cell's players */
        if (g.slot[id]) grid.start[cell_of(&g.slot[id]->e) + 1]++;
    for (int c = 0; c < cells; c++) { /* then where each cell begins */
        grid.start[c + 1] += grid.start[c];
        grid.fill[c] = grid.start[c];
    }
    for (int id = 1; id < MAX_PLAYERS; id++)
        if (g.slot[id]) grid.ids[grid.fill[cell_of(&g.slot[id]->e)]++] = (uint16_t)id;
}

/* What p sees (itself too), sorted by id: the nine cells' lists merged,
 * lowest id first, up to GAME_MAX_VISIBLE. */
static size_t visible(const player *p, game_ent *out)
{
    const uint16_t *at[9], *end[9];
    int k = 0, cx = p->e.x / CELL_W, cy = p->e.y / CELL_H;
    for (int y = cy - 1; y <= cy + 1; y++)
        for (int x = cx - 1; x <= cx + 1; x++)
            if (x >= 0 && y >= 0 && x < grid.cols && y < grid.rows) {
                at[k] = grid.ids + grid.start[y * grid.cols + x];
                end[k++] = grid.ids + grid.start[y * grid.cols + x + 1];
            }
    size_t n = 0;
    while (n < GAME_MAX_VISIBLE) {
        int lowest = -1;
        for (int i = 0; i < k; i++)
            if (at[i] < end[i] && (lowest < 0 || *at[i] < *at[lowest])) lowest = i;
        if (lowest < 0) break;
        const player *q = g.slot[*at[lowest]++];
        int dx = q->e.x - p->e.x, dy = q->e.y - p->e.y;
        if (abs(dx) <= VIEW_W / 2 && abs(dy) <= VIEW_H / 2) out[n++] = q->e;
    }
    return n;
}

static void send_snapshot(player *p)
{
    uint8_t buf[GAME_SNAP_MAX];
    game_ent cur[GAME_MAX_VISIBLE];
    size_t n = visible(p, cur);
    const snapshot *base = &p->hist[p->ack % HISTORY];
    bool delta = p->ack && base->tick == p->ack; /* still remembered */
    game_snap_head h = {
        .tick = g.tick, .base = delta ? p->ack : 0, .input = p->applied, .echo = p->echo};
    size_t len = game_snap_encode(&h, base->ents, delta ? base->n : 0, cur, n, buf);
    snapshot *slot = &p->hist[g.tick % HISTORY];
    slot->tick = g.tick;
    slot->n = (uint16_t)n;
    memcpy(slot->ents, cur, n * sizeof cur[0]);
    if (p->ws) {
        /* a slow browser skips a tick; the next delta heals it */
        if (ax_ws_buffered(p->ws) < 65536 && ax_ws_send_binary(p->ws, buf, len) < 0)
            g.lost++; /* closing */
    } else if (ax_udp_send(g.udp, &p->addr, buf, len) != 0) {
        g.lost++; /* lost like any datagram; the next delta heals it */
    }
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Once a second: the whole process's CPU (receiving inputs included) per
 * tick and per player, the ticks simulated, and the longest tick. */
static void report(uint64_t now, double tick_ms, uint32_t ticks)
{
    static double cpu0, max_ms, player_ticks;
    static uint32_t done;
    static uint64_t since;
    max_ms = tick_ms > max_ms ? tick_ms : max_ms;
    player_ticks += (double)g.count * ticks;
    done += ticks;
    if (!since) since = now;
    if (now - since < 1000) return;
    double cpu = cpu_ms(), per_tick = (cpu - cpu0) / done;
    if (cpu0 > 0)
        printf("stats: players %.0f, cpu %.1f%%, %.3f ms a tick, %.2f us a player, longest tick "
               "%.3f ms, ticks %u, unsent %llu\n",
               player_ticks / done, 100.0 * (cpu - cpu0) / (double)(now - since), per_tick,
               player_ticks > 0 ? (cpu - cpu0) * 1000.0 / player_ticks : 0.0, max_ms, done,
               (unsigned long long)g.lost);
    fflush(stdout);
    cpu0 = cpu;
    since = now;
    done = 0;
    max_ms = player_ticks = 0;
}

/* One step of the world: each player takes its next input. */
static void simulate(uint64_t now)
{
    g.tick++;
    for (int id = 1; id < MAX_PLAYERS; id++) {
        player *p = g.slot[id];
        if (!p) continue;
        if (!p->ws && now - p->heard > UDP_IDLE) {
            player_free(p);
            continue;
        }
        int steps = p->queued > 4 ? 2 : p->queued > 0; /* catch up with a fast client */
        for (int k = 0; k < steps; k++) {
            game_move(&p->e, p->queue[0], g.w, g.h);
            memmove(p->queue, p->queue + 1, QUEUE - 1);
            p->queued--;
            p->applied++;
        }
    }
}

/* A fixed step: the ticks the clock says are due (a timer that fired late
 * runs up to 4 at once; further behind, the world slows down instead),
 * then one snapshot to everybody. */
static void tick(ax_timer *t, void *ud)
{
    static uint64_t start, due_done;
    struct timespec a, b;
    uint64_t now = ax_loop_now(g.loop);
    (void)t, (void)ud;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (!start) start = now;
    uint64_t due = (now - start) * GAME_HZ / 1000 + 1;
    uint32_t n = 0;
    if (due - due_done > 4) due_done = due - 4;
    while (due_done < due) {
        simulate(now);
        due_done++;
        n++;
    }
    if (!n) return;
    grid_build();
    for (int id = 1; id < MAX_PLAYERS; id++)
        if (g.slot[id]) send_snapshot(g.slot[id]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (g.stats)
        report(now, (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6, n);
}

/* ---- UDP clients --------------------------------------------------------- */

static player *by_addr(const ax_addr *from)
{
    for (int id = 1; id < MAX_PLAYERS; id++)
        if (g.slot[id] && !g.slot[id]->ws && ax_addr_equal(&g.slot[id]->addr, from))
            return g.slot[id];
    return NULL;
}

static void on_datagram(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    const uint8_t *p = (const uint8_t *)data;
    game_input in;
    if (len >= 2 && p[0] == MSG_JOIN) { /* (again, when our WELCOME was lost) */
        player *pl = by_addr(from);
        if (!pl && !(pl = player_new())) return;
        pl->addr = *from;
        uint8_t w[7];
        welcome(pl, w);
        if (ax_udp_send(u, from, w, sizeof w) != 0) g.lost++; /* it will JOIN again */
    } else if (game_input_decode(p, len, &in) && in.id && in.id < MAX_PLAYERS) {
        player *pl = g.slot[in.id];
        if (pl && !pl->ws && ax_addr_equal(&pl->addr, from)) take_input(pl, &in);
    }
}

/* ---- browsers ------------------------------------------------------------ */

static void ws_open(ax_ws *ws)
{
    player *p = player_new();
    uint8_t w[7];
    if (!p) {
        ax_ws_close(ws, 1013, "the arena is full");
        return;
    }
    p->ws = ws;
    ax_ws_set_data(ws, p);
    welcome(p, w);
    if (ax_ws_send_binary(ws, w, sizeof w) < 0) g.lost++;
}

static void ws_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    player *p = ax_ws_data(ws);
    game_input in;
    if (p && binary && game_input_decode(data, len, &in)) take_input(p, &in);
}

static void ws_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    player *p = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (p) player_free(p);
}

static const ax_ws_cbs ws_cbs = {
    .on_open = ws_open, .on_message = ws_message, .on_close = ws_close};
static const ax_ws_opts ws_opts = {.max_message = 64, .ping_interval_ms = 10000};
static const ax_ws_endpoint ws_ep = {.cbs = &ws_cbs, .opts = &ws_opts};

int main(int argc, char **argv)
{
    const char *http_url = "tcp://127.0.0.1:8088", *udp_url = "udp://127.0.0.1:7777";
    const char *web = GAME_WEB_DIR;
    char a[AX_ADDR_STRLEN], b[AX_ADDR_STRLEN];
    int err;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--http") && i + 1 < argc)
            http_url = argv[++i];
        else if (!strcmp(argv[i], "--udp") && i + 1 < argc)
            udp_url = argv[++i];
        else if (!strcmp(argv[i], "--web") && i + 1 < argc)
            web = argv[++i];
        else if (!strcmp(argv[i], "--arena") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%dx%d", &g.w, &g.h) == 2 && g.w > 0 && g.w < 30000 &&
                 g.h > 0 && g.h < 30000)
            i++;
        else if (!strcmp(argv[i], "--stats"))
            g.stats = true;
        else {
            fprintf(stderr, "usage: game_server [--http URL] [--udp URL] [--web DIR] "
                            "[--arena WxH] [--stats]\n");
            return 2;
        }
    }
    srand((unsigned)time(NULL));
    if (!grid_init() || !(g.loop = ax_loop_new(NULL, &err))) return 1;
    ax_http_server *hs = ax_http_server_new(g.loop, NULL, &err);
    ax_listener *l = NULL;
    if (!hs || ax_http_serve_dir(hs, "/", web, 0) != 0 || ax_ws_route(hs, "/ws", &ws_ep) != 0 ||
        !(l = ax_http_listen(hs, http_url, NULL, &err))) {
        fprintf(stderr, "game_server: %s (web folder %s): %s\n", http_url, web, ax_strerror(err));
        return 1;
    }
    static const ax_udp_opts uo = {.max_datagram = 512};
    if (!(g.udp = ax_udp_bind(g.loop, udp_url, on_datagram, &uo, NULL, &err))) {
        fprintf(stderr, "game_server: %s: %s\n", udp_url, ax_strerror(err));
        return 1;
    }
    ax_timer *t = ax_timer_new(g.loop, tick, NULL);
    if (!t || ax_timer_start(t, 1000 / GAME_HZ, 1000 / GAME_HZ / 2) != 0) return 1;
    printf("game server on %s (%s), udp %s, arena %dx%d\n",
           ax_addr_format(ax_listener_addr(l), a, sizeof a), ax_loop_backend(g.loop),
           ax_addr_format(ax_udp_addr(g.udp), b, sizeof b), g.w, g.h);
    fflush(stdout);
    ax_loop_handle_signals(g.loop, NULL);
    ax_loop_run(g.loop);
    for (int id = 1; id < MAX_PLAYERS; id++)
        if (g.slot[id] && !g.slot[id]->ws) player_free(g.slot[id]);
    ax_timer_free(t);
    ax_udp_close(g.udp);
    ax_http_server_free(hs);
    ax_loop_free(g.loop); /* closes the browsers; their on_close frees them */
    free(grid.start);
    free(grid.fill);
    return 0;
}
