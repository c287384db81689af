/* test_serve_config.c: the config file parser of `axon serve` on buffers
 * (serve__config_parse): settings, includes, and bytes a text file does
 * not hold. */
#include <string.h>

#include "cli/cli.h"
#include "hub/capacity.h"
#include "hub/serve.h"
#include "runner.h"

static serve_cfg cfg;

static int parse(const char *text, size_t len)
{
    return serve__config_parse(&cfg, text, len, "/nonexistent/axon.conf");
}

TEST(serve_config_settings)
{
    static const char text[] = "listen_http 0.0.0.0:80\nlisten_line off\nfsync always\n"
                               "history chat/# 10 60\nthreads 3\n";
    ASSERT_EQ(parse(text, sizeof text - 1), 0);
    ASSERT(strcmp(cfg.http_url, "tcp://0.0.0.0:80") == 0);
    ASSERT(cfg.line_url[0] == '\0');
    ASSERT_EQ(cfg.fsync_mode, HUB_FSYNC_ALWAYS);
    ASSERT_EQ(cfg.threads, 3);
    ASSERT_EQ(cfg.nrules, 2); /* chat/# and the "#" the defaults add */
    ASSERT_EQ(cfg.rules[0].history_count, 10);
    ASSERT_EQ(parse("", 0), 0);
    ASSERT_EQ(cfg.threads, 1);
    ASSERT_EQ(parse("threads 65\n", 11), -1);
}

/* A NUL byte ended the line silently, so a line was read as less than it
 * held, and a file of zeros (include /dev/zero) read forever: it is an
 * error now, reported with the line. */
TEST_TIMEOUT(serve_config_nul_byte, 10)
{
    static const char text[] = "fsync off\nthreads 2\0 x\n";
    ASSERT_EQ(parse(text, sizeof text - 1), -1);
    static const char inc[] = "include /dev/zero\n";
    ASSERT_EQ(parse(inc, sizeof inc - 1), -1);
}

/* The limits keys (docs/config.md, "Limits"): a rate is the rest of the
 * line, unset keys keep their defaults, a bad value is an error. */
TEST(serve_config_limits)
{
    static const char text[] = "max_connections_per_ip 20\nmsg_rate 500/s burst 1000\n"
                               "ip_byte_rate off\nlogin_fail_rate 5/min\n";
    hub_limits_conf def;
    hub_limits_conf_default(&def);
    ASSERT_EQ(parse(text, sizeof text - 1), 0);
    ASSERT_EQ(cfg.limits.max_connections_per_ip, 20);
    ASSERT_EQ(cfg.limits.msg_rate.n, 500);
    ASSERT_EQ(cfg.limits.msg_rate.per_ms, 1000);
    ASSERT_EQ(cfg.limits.msg_rate.burst, 1000);
    ASSERT_EQ(cfg.limits.ip_byte_rate.n, 0);
    ASSERT_EQ(cfg.limits.login_fail_rate.burst, 5);
    ASSERT_EQ(cfg.limits.max_connections, def.max_connections);
    ASSERT_EQ(cfg.limits.byte_rate.n, def.byte_rate.n);
    ASSERT_EQ(parse("", 0), 0);
    ASSERT_EQ(cfg.limits.max_connections_per_ip, def.max_connections_per_ip);
    ASSERT_EQ(cfg.limits.ip_table_size, def.ip_table_size);
    ASSERT_EQ(parse("msg_rate 10/fortnight\n", 22), -1);
    ASSERT_EQ(parse("max_connections lots\n", 21), -1);
}

/* The start-up capacity check (src/hub/capacity.c): each shortfall for a
 * million connections is named with its setting; a roomy system says
 * nothing. */
TEST(serve_capacity_warnings)
{
    char out[8][SERVE_CAPACITY_LINE];
    serve_capacity roomy = {.fd_soft = 2000000,
                            .fd_hard = 2000000,
                            .nr_open = 2000000,
                            .file_max = 4000000,
                            .somaxconn = 65535,
                            .conntrack_max = -1,
                            .mem_avail_kib = 64L << 20};
    ASSERT_EQ(serve_capacity_check(&roomy, 1000000, out, 8), 0);
    serve_capacity small = {.fd_soft = 20000,
                            .fd_hard = 20000,
                            .nr_open = 65536,
                            .file_max = 500000,
                            .somaxconn = 128,
                            .conntrack_max = 262144,
                            .mem_avail_kib = 2L << 20};
    ASSERT_EQ(serve_capacity_check(&small, 1000000, out, 8), 6);
    ASSERT(strstr(out[0], "file-descriptor limit is 20000") && strstr(out[0], "ulimit -n"));
    ASSERT(strstr(out[1], "fs.nr_open is 65536"));
    ASSERT(strstr(out[2], "fs.file-max is 500000"));
    ASSERT(strstr(out[3], "net.core.somaxconn is 128"));
    ASSERT(strstr(out[4], "nf_conntrack_max is 262144"));
    ASSERT(strstr(out[5], "KiB of memory is available"));
    /* 10,000 fit that system but for the backlog */
    ASSERT_EQ(serve_capacity_check(&small, 10000, out, 8), 1);
    ASSERT(strstr(out[0], "somaxconn"));
    ASSERT_EQ(serve_capacity_check(&small, 1000, out, 8), 0);
}
