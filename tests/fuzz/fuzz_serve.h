/* fuzz_serve.h: a memory-only hub and the serve struct its gateways hang
 * off, made fresh for each run of a gateway fuzz target (fuzz_gw_line,
 * fuzz_gw_ws), as `axon serve` makes them (src/hub/server.c). */
#ifndef AXON_FUZZ_SERVE_H
#define AXON_FUZZ_SERVE_H

#include "fuzz_net.h"
#include "hub/hub.h"
#include "hub/serve.h"

typedef struct fz_serve {
    serve sv;
    serve_cfg cfg;
    gw_stats gw[GW_COUNT];
    ax_http_stats http_stats;
    hub_rule rules[2];
} fz_serve;

/* A hub with small limits so the fuzzer reaches them: `history` messages
 * kept per topic, `budget` bytes queued per subscriber. */
static inline void fz_serve_init(fz_serve *f, uint32_t max_line, size_t max_payload,
                                 uint32_t history, size_t budget)
{
    static bool bound;
    ax_loop *loop = fz_loop();
    if (!bound) hub_bind_loop(loop);
    bound = true;
    memset(f, 0, sizeof(*f));
    f->cfg.max_line = max_line;
    f->cfg.max_payload = max_payload;
    f->cfg.sub_budget = budget;
    f->cfg.threads = 1;
    f->rules[0] = (hub_rule){"chat/#", history, 0, HUB_DROP_OLDEST};
    f->rules[1] = (hub_rule){"#", history, 0, HUB_DISCONNECT};
    hub_opts ho = {.rules = f->rules,
                   .nrules = 2,
                   .sub_budget = budget,
                   .max_payload = max_payload,
                   .fsync_mode = HUB_FSYNC_OFF};
    char why[256] = "";
    f->sv = (serve){.loop = loop, .cfg = &f->cfg, .gw = f->gw, .http_stats = &f->http_stats};
    f->sv.hub = hub_new(loop, &ho, why, sizeof why);
    FZ_CHECK(f->sv.hub != NULL);
}

/* Start the gateways the settings turn on (f->cfg's URLs). */
static inline void fz_serve_start(fz_serve *f)
{
    char why[256] = "";
    FZ_CHECK(serve_gateways_start(&f->sv, why, sizeof why) == 0);
}

static inline bool fz_serve_busy(fz_serve *f)
{
    return serve_gateways_count(&f->sv) > 0;
}

/* What `axon serve` does at shutdown: goodbyes, a few turns, resets, then
 * the gateways and the hub are freed.  Nothing may be left. */
static inline void fz_serve_free(fz_serve *f)
{
    ax_loop *loop = f->sv.loop;
    serve_gateways_stop(&f->sv);
    for (int i = 0; i < 16 && fz_serve_busy(f); i++)
        ax_loop_run_once(loop, 0);
    serve_gateways_abort(&f->sv);
    for (int i = 0; i < 100 && fz_serve_busy(f); i++)
        ax_loop_run_once(loop, 0);
    FZ_CHECK(!fz_serve_busy(f));
    serve_gateways_free(&f->sv);
    for (int i = 0; i < 5; i++) /* let closes finish */
        ax_loop_run_once(loop, 0);
    hub_free(f->sv.hub);
}

#endif
