/* fuzz_serve_config.c: libFuzzer target for the config file parser of
 * `axon serve` (serve__config_parse, src/cli/serve.c).
 *
 * The input is a config file.  It may include files next to it: a temporary
 * folder holds good.conf (valid settings), bad.conf (an unknown setting)
 * and self.conf (includes itself, until the depth limit).  Inputs that
 * could name other files (an include and a '/') are skipped, so the target
 * never reads the rest of the file system (a FIFO would block it).
 * Whatever parses must give settings the server can use: URLs that split,
 * limits inside their ranges, every rule's pattern a valid filter, a "#"
 * rule, strings NUL-terminated inside their fields. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>

#include "cli/cli.h"
#include "hub/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_serve_config: check failed at line %d: %s\n", __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char dir[] = "/tmp/axon-fuzz-config-XXXXXX", conf_path[256];
static const char *const files[] = {"good.conf", "bad.conf", "self.conf"};

static void put(const char *d, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", d, name);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void setup(void)
{
    if (conf_path[0]) return;
    CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    put(dir, files[0],
        "listen_http 127.0.0.1:0\nhistory chat/# 10 60\nslow_consumer keep_latest\n"
        "max_line 100\n");
    put(dir, files[1], "history_count 5\nfrobnicate yes\n");
    put(dir, files[2], "threads 2\ninclude self.conf\n");
    snprintf(conf_path, sizeof conf_path, "%s/fuzz.conf", dir);
}

static void check_str(const char *s, size_t cap)
{
    CHECK(memchr(s, '\0', cap) != NULL);
}

static void check_url(const char *u, size_t cap)
{
    check_str(u, cap);
    if (!u[0]) return;
    ax_url url;
    char why[256];
    CHECK(ax_url_split(u, &url, why, sizeof why) == 0);
}

static void check_cfg(const serve_cfg *c)
{
    check_url(c->http_url, sizeof c->http_url);
    check_url(c->line_url, sizeof c->line_url);
    check_url(c->udp_url, sizeof c->udp_url);
    check_url(c->https_url, sizeof c->https_url);
    check_url(c->line_tls_url, sizeof c->line_tls_url);
    check_str(c->tls_cert, sizeof c->tls_cert);
    check_str(c->tls_key, sizeof c->tls_key);
    check_str(c->data_dir, sizeof c->data_dir);
    check_str(c->log_file, sizeof c->log_file);
    CHECK(c->fsync_mode == HUB_FSYNC_ALWAYS || c->fsync_mode == HUB_FSYNC_BATCH ||
          c->fsync_mode == HUB_FSYNC_OFF);
    CHECK(c->nrules >= 1 && c->nrules <= SERVE_MAX_RULES);
    bool all = false;
    for (int i = 0; i < c->nrules; i++) {
        const hub_rule *r = &c->rules[i];
        check_str(r->pattern, sizeof r->pattern);
        CHECK(hub_filter_valid(r->pattern, strlen(r->pattern)));
        CHECK(r->history_count <= 1000000);
        CHECK(r->history_age_s <= 100u * 365 * 86400);
        CHECK(r->policy >= HUB_DISCONNECT && r->policy <= HUB_KEEP_LATEST);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(c->rules[j].pattern, r->pattern) != 0);
        all |= strcmp(r->pattern, "#") == 0;
    }
    CHECK(all || c->nrules == SERVE_MAX_RULES);
    CHECK(c->sub_budget <= (1u << 30));
    CHECK(c->max_payload >= 1 && c->max_payload <= (64u << 20));
    CHECK(c->max_line >= 16 && c->max_line <= 65536);
    CHECK(c->udp_lease_s >= 1 && c->udp_lease_s <= 86400);
    CHECK(c->threads >= 1 && c->threads <= 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static serve_cfg cfg;
    if (size > 16384) return 0;
    if (memmem(data, size, "include", 7) && memchr(data, '/', size)) return 0;
    setup();
    if (serve__config_parse(&cfg, (const char *)data, size, conf_path) == 0) check_cfg(&cfg);
    return 0;
}
