/* limit_parse.c: the text of the limits settings ("1000/s burst 2000",
 * "1MiB/s", "10/min") and the config keys that carry them.  A pure
 * parser: no allocation, errors as one sentence. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <axon/error.h>

#include "hub/limit.h"

typedef struct suffix {
    const char *name;
    uint64_t mult;
} suffix;

static const suffix sizes[] = {
    {"", 1},          {"b", 1},         {"k", 1000},       {"kb", 1000},
    {"m", 1000000},   {"mb", 1000000},  {"g", 1000000000}, {"gb", 1000000000},
    {"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
};

static const suffix units[] = {
    {"ms", 1}, {"s", 1000}, {"sec", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000},
};

#define MAX_PERIOD_MS (UINT64_C(1) << 40) /* about 35 years */

typedef struct cursor {
    const char *s, *p; /* the whole text (for errors), where we are */
    char *why;
    size_t why_len;
} cursor;

static int fail(cursor *c, const char *fmt, const char *detail)
{
    if (c->why && c->why_len) {
        char msg[160];
        snprintf(msg, sizeof msg, fmt, detail ? detail : "");
        snprintf(c->why, c->why_len, "'%.64s': %s", c->s, msg);
    }
    return AX_EINVAL;
}

static void skip_space(cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

/* Digits into *v; false (nothing read or overflow) leaves the cursor. */
static bool number(cursor *c, uint64_t *v, bool *overflow)
{
    const char *p = c->p;
    uint64_t n = 0;
    *overflow = false;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p++ - '0');
        if (n > (UINT64_MAX - d) / 10) *overflow = true;
        n = n * 10 + d;
    }
    if (p == c->p || *overflow) return false;
    c->p = p, *v = n;
    return true;
}

/* Letters matched against a table (case-insensitive); -1 when unknown,
 * with the word in `word`. */
static int word(cursor *c, const suffix *t, size_t nt, char *w, size_t wl)
{
    size_t n = 0;
    while (isalpha((unsigned char)c->p[n]))
        n++;
    snprintf(w, wl, "%.*s", (int)(n < 32 ? n : 32), c->p);
    for (size_t i = 0; i < nt; i++) {
        if (strlen(t[i].name) == n && strncasecmp(t[i].name, c->p, n) == 0) {
            c->p += n;
            return (int)i;
        }
    }
    return -1;
}

/* COUNT with an optional size suffix. */
static int count(cursor *c, uint64_t *out, const char *what)
{
    uint64_t n;
    bool over;
    char w[40];
    if (!number(c, &n, &over)) {
        if (over) return fail(c, "the %s is too large", what);
        return fail(c,
                    "not a rate: write COUNT/PERIOD, like 100/s, 1000/10s, 1MiB/s or "
                    "10/min",
                    NULL);
    }
    int i = word(c, sizes, sizeof sizes / sizeof sizes[0], w, sizeof w);
    if (i < 0) return fail(c, "unknown size '%s' (k, M, G, KiB, MiB, GiB or B)", w);
    if (n > HUB_RATE_MAX_N / sizes[i].mult) return fail(c, "the %s is too large", what);
    *out = n * sizes[i].mult;
    return 0;
}

/* [K]UNIT after the slash. */
static int period(cursor *c, uint64_t *out)
{
    uint64_t k = 1;
    bool over;
    char w[40];
    if (!number(c, &k, &over) && over) return fail(c, "the period is too long", NULL);
    int i = word(c, units, sizeof units / sizeof units[0], w, sizeof w);
    if (i < 0 && w[0] == '\0') return fail(c, "the period needs a unit (ms, s, min or h)", NULL);
    if (i < 0) return fail(c, "unknown unit '%s' (ms, s, min or h)", w);
    if (k == 0) return fail(c, "the period must be longer than 0", NULL);
    if (k > MAX_PERIOD_MS / units[i].mult) return fail(c, "the period is too long", NULL);
    *out = k * units[i].mult;
    return 0;
}

static bool is_off(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return (n == 3 && strncasecmp(s, "off", 3) == 0) || (n == 1 && s[0] == '0');
}

int hub_rate_parse(const char *s, hub_rate *out, char *why, size_t why_len)
{
    cursor c = {s, s, why, why_len};
    hub_rate r = {0, 1000, 0};
    if (is_off(s)) {
        *out = r;
        return 0;
    }
    skip_space(&c);
    int rc = count(&c, &r.n, "count");
    if (rc < 0) return rc;
    if (r.n == 0)
        return fail(&c, "a rate of 0 lets nothing through; write 'off' for no limit", NULL);
    if (*c.p != '/')
        return fail(&c, "expected '/' and a period after the count, as in 100/s", NULL);
    c.p++;
    if ((rc = period(&c, &r.per_ms)) < 0) return rc;
    r.burst = r.n;
    skip_space(&c);
    if (strncasecmp(c.p, "burst", 5) == 0) {
        c.p += 5;
        skip_space(&c);
        if ((rc = count(&c, &r.burst, "burst")) < 0) return rc;
        if (r.burst == 0) return fail(&c, "the burst must be at least 1", NULL);
        skip_space(&c);
    }
    if (*c.p) return fail(&c, "unexpected '%s' after the rate", c.p);
    if (r.burst > HUB_RATE_MAX_CAP / r.per_ms)
        return fail(&c, "the burst is too large for so long a period", NULL);
    *out = r;
    return 0;
}

char *hub_rate_format(const hub_rate *r, char *buf, size_t len)
{
    if (r->n == 0)
        snprintf(buf, len, "off");
    else
        snprintf(buf, len, "%llu/%llums burst %llu", (unsigned long long)r->n,
                 (unsigned long long)r->per_ms, (unsigned long long)r->burst);
    return buf;
}

/* A whole number from lo to hi ("off" is 0 where 0 is allowed). */
static int whole(const char *key, const char *v, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
                 size_t why_len)
{
    cursor c = {v, v, NULL, 0};
    uint64_t n = 0;
    bool over;
    if (lo == 0 && is_off(v)) {
        *out = 0;
        return 0;
    }
    skip_space(&c);
    bool ok = number(&c, &n, &over);
    skip_space(&c);
    if (!ok || *c.p || n < lo || n > hi) {
        if (why && why_len)
            snprintf(why, why_len, "%s must be a whole number from %llu to %llu, not '%.64s'", key,
                     (unsigned long long)lo, (unsigned long long)hi, v);
        return AX_EINVAL;
    }
    *out = n;
    return 0;
}

static int set_rate(const char *key, const char *v, hub_rate *r, char *why, size_t why_len)
{
    char sub[200];
    int rc = hub_rate_parse(v, r, sub, sizeof sub);
    if (rc < 0 && why && why_len) snprintf(why, why_len, "%s: %s", key, sub);
    return rc;
}

int hub_limits_conf_set(hub_limits_conf *c, const char *key, const char *value, char *why,
                        size_t why_len)
{
    static const struct {
        const char *key;
        size_t rate; /* offsetof its hub_rate */
    } rates[] = {
        {"msg_rate", offsetof(hub_limits_conf, msg_rate)},
        {"byte_rate", offsetof(hub_limits_conf, byte_rate)},
        {"ip_msg_rate", offsetof(hub_limits_conf, ip_msg_rate)},
        {"ip_byte_rate", offsetof(hub_limits_conf, ip_byte_rate)},
        {"login_fail_rate", offsetof(hub_limits_conf, login_fail_rate)},
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (strcmp(key, rates[i].key) == 0)
            return set_rate(key, value, (hub_rate *)((char *)c + rates[i].rate), why, why_len);
    uint64_t n;
    int rc;
    if (strcmp(key, "max_connections") == 0) {
        if ((rc = whole(key, value, 0, 100000000, &n, why, why_len)) == 0)
            c->max_connections = (uint32_t)n;
    } else if (strcmp(key, "max_connections_per_ip") == 0) {
        if ((rc = whole(key, value, 0, 100000000, &n, why, why_len)) == 0)
            c->max_connections_per_ip = (uint32_t)n;
    } else if (strcmp(key, "ip_table_size") == 0) {
        if ((rc = whole(key, value, 256, 1u << 24, &n, why, why_len)) == 0)
            c->ip_table_size = (uint32_t)n;
    } else if (strcmp(key, "ipv4_prefix") == 0) {
        if ((rc = whole(key, value, 8, 32, &n, why, why_len)) == 0) c->ipv4_prefix = (uint8_t)n;
    } else if (strcmp(key, "ipv6_prefix") == 0) {
        if ((rc = whole(key, value, 16, 128, &n, why, why_len)) == 0) c->ipv6_prefix = (uint8_t)n;
    } else {
        return AX_ENOENT;
    }
    return rc;
}
