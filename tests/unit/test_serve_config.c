/* test_serve_config.c: the config file parser of `axon serve` on buffers
 * (serve__config_parse): settings, includes, and bytes a text file does
 * not hold. */
#include <string.h>

#include "cli/cli.h"
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
