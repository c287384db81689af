/* fuzz_limits.c: libFuzzer target for the limits settings parser
 * (src/hub/limit_parse.c).
 *
 * The input is a rate as a config file would hold it ("1000/s burst
 * 2000").  A parse must answer 0 or AX_EINVAL with a sentence; a rate it
 * accepts must be in range (so bucket arithmetic cannot overflow), read
 * back from its canonical text to itself, and drive a bucket whose credit
 * never exceeds its burst.  The same text is also tried as every limits
 * setting through hub_limits_conf_set(), and an engine is made from any
 * settings that parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <axon/error.h>

#include "hub/limit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

static void check_rate(const hub_rate *r)
{
    char buf[96], why[200];
    if (r->n == 0) return;
    CHECK(r->n <= HUB_RATE_MAX_N && r->per_ms >= 1 && r->burst >= 1);
    CHECK(r->burst <= HUB_RATE_MAX_CAP / r->per_ms);
    hub_rate back;
    CHECK(hub_rate_parse(hub_rate_format(r, buf, sizeof buf), &back, why, sizeof why) == 0);
    CHECK(memcmp(&back, r, sizeof back) == 0);
    hub_bucket b;
    hub_bucket_init(&b, r, 0);
    uint64_t now = 0;
    for (uint64_t cost = 1; cost < (UINT64_C(1) << 50); cost = cost * 7 + 3) {
        uint64_t wait = hub_bucket_take(&b, r, cost, now);
        CHECK(b.credit <= r->burst * r->per_ms);
        now += wait / 2 + 1;
    }
    CHECK(hub_bucket_take(&b, r, 1, UINT64_MAX) == 0);
}

static const char *const keys[] = {
    "msg_rate",
    "byte_rate",
    "ip_msg_rate",
    "ip_byte_rate",
    "login_fail_rate",
    "max_connections",
    "max_connections_per_ip",
    "ip_table_size",
    "ipv4_prefix",
    "ipv6_prefix",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    hub_rate r;
    char why[200];
    why[0] = '\0';
    int rc = hub_rate_parse(s, &r, why, sizeof why);
    CHECK(rc == 0 || (rc == AX_EINVAL && why[0] == '\''));
    if (rc == 0) check_rate(&r);
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    bool any = false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        why[0] = '\0';
        rc = hub_limits_conf_set(&c, keys[i], s, why, sizeof why);
        CHECK(rc == 0 || (rc == AX_EINVAL && why[0] != '\0'));
        any |= rc == 0;
    }
    if (any) {
        hub_limits *L = NULL;
        c.ip_table_size = 256;
        CHECK(hub_limits_new(&c, &L) == 0);
        hub_limits_free(L);
    }
    free(s);
    return 0;
}
