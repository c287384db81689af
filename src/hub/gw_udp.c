/* gw_udp.c: hub topics over UDP datagrams, for devices and game clients.
 *
 *   PUB <topic> <payload>     ->  OK <topic> <seq>   (once stored as the fsync mode says)
 *                                 ERR busy: ...      (the store is behind: slow down)
 *   SUB <filter> [<since>]    ->  OK SUB <filter> <lease seconds>
 *   UNSUB <filter>            ->  OK UNSUB <filter>
 *   AUTH <token>              ->  OK AUTH <name> <lease seconds>
 *   PING                      ->  PONG
 *   deliveries                    MSG <topic> <seq> <sender> <payload>
 *                                 GAP <topic> <first seq kept>
 *                                 MORE <topic> <seq>  (a replay paused)
 *   anything wrong            ->  ERR <reason>
 *
 * UDP has no connection, so a subscription is a lease: it lasts udp_lease
 * seconds and sending SUB again renews it.  Each sender address is one
 * subscriber; their number is bounded.  A delivery datagram is made once
 * per message and sent to every UDP subscriber (ENC_UDP).
 *
 * With authentication configured, AUTH opens a lease for the sender's
 * address (renewed by sending AUTH again, ended by the token's expiry);
 * PUB and SUB from that address then act as the token's user.  A UDP
 * source address can be spoofed: docs/security.md says what this means.
 *
 * No amplification (docs/protocol.md, "Return addresses"): source
 * addresses can be forged, so until an address has proved it receives our
 * datagrams no reply to it is longer than its request.  It proves that
 * with a cookie round trip, as DTLS's HelloVerifyRequest and QUIC's Retry
 * do: a SUB from an unknown address is answered `COOKIE <c>` (c: a
 * truncated HMAC of the address and the time window under a random key of
 * this process, so the server keeps no state), and only the SUB that
 * repeats it subscribes.  An address with a lease is verified while the
 * lease lasts.  What a verified address receives is paced: UDP_PACE_BYTES
 * per UDP_PACE_MS, the hub holding the rest of a replay meanwhile.
 *
 * A replay (SUB with a since) is bounded per datagram too: one SUB buys
 * at most UDP_REPLAY_MSGS messages or UDP_REPLAY_BYTES bytes of it; then
 * `MORE <topic> <seq>` says where it paused (the last message sent), and
 * the hub holds the rest (and the live messages behind it) until the
 * address sends a SUB again.  So a forged or forgotten `SUB # 0` costs one
 * bounded answer, not the whole history. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <axon/alloc.h>

#include "map.h"
#include "serve.h"

typedef struct gw_udp gw_udp;

#define UDP_MAX_IN 8192      /* longest datagram taken */
#define UDP_MAX_PEERS 10000  /* subscribing addresses */
#define UDP_MAX_LEASES 64    /* filters per address */
#define UDP_COOKIE_HEX 16    /* cookie: 64 bits of HMAC-SHA256, in hex */
#define UDP_PACE_BYTES 65536 /* sent to one address per UDP_PACE_MS, at most */
#define UDP_PACE_MS 20
#define UDP_REPLAY_MSGS 256    /* replayed per SUB datagram, at most */
#define UDP_REPLAY_BYTES 65536 /* and bytes */

typedef struct lease {
    struct lease *next;
    uint64_t expires; /* loop ms */
    char filter[];
} lease;

typedef struct udp_peer {
    gw_udp *g;
    ax_addr addr;
    hub_sub *sub;
    lease *leases;
    int nleases;
    auth_identity *id;     /* from AUTH, or anonymous; NULL: no auth configured */
    uint64_t auth_expires; /* loop ms when the AUTH lease ends */
    ax_timer *pace;        /* refills `credit` and resumes the hub's writes */
    int64_t credit;        /* bytes it may still be sent in this pace interval */
    bool verified;         /* showed a cookie (an AUTH alone does not verify) */
    bool kicked;           /* over its budget though paced: the next sweep frees it */
    bool held;             /* a replay paused at its per-datagram bound: waits for a SUB */
    int replay_msgs;       /* what the last SUB still allows of a replay */
    int64_t replay_bytes;
    char key[AX_ADDR_STRLEN];
} udp_peer;

/* A publish answered "OK" once it is as durable as the fsync mode says. */
typedef struct udp_wait {
    hub_ack ack; /* first: the callback gets it */
    gw_udp *g;
    ax_addr to;
    size_t cap; /* the reply's bound (the request's size when unverified) */
    struct udp_wait *prev, *next;
    uint64_t seq;
    char topic[];
} udp_wait;

struct gw_udp {
    serve *sv;
    ax_udp *u;
    hub_map peers;
    ax_timer *sweep;
    udp_wait *waits;
    size_t cap; /* while a request is handled: the longest reply allowed */
};

static void reply(gw_udp *g, const ax_addr *to, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(gw_udp *g, const ax_addr *to, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf - 1) n = sizeof buf - 2;
    if ((size_t)n + 1 > g->cap) { /* an unverified address: never more than it sent */
        if (g->cap < 2) return;
        n = (int)g->cap - 1;
    }
    buf[n++] = '\n'; /* so that `nc -u` shows one reply per line */
    if (ax_udp_send(g->u, to, buf, (size_t)n) == 0) GW_ADD(g->sv->gw[GW_UDP].bytes_out, (size_t)n);
}

/* ---- return addresses: cookies and pacing ------------------------------------------- */

static uint8_t cookie_key[32];
static pthread_once_t cookie_once = PTHREAD_ONCE_INIT;
static bool cookie_key_ok;

static void cookie_key_init(void)
{
    cookie_key_ok = RAND_bytes(cookie_key, (int)sizeof cookie_key) == 1;
}

/* The cookie of address `key` in time window `w`: hex, NUL-ended. */
static bool cookie_make(const char *key, uint64_t w, char out[UDP_COOKIE_HEX + 1])
{
    uint8_t msg[AX_ADDR_STRLEN + 8], mac[EVP_MAX_MD_SIZE];
    unsigned ml = 0;
    size_t kl = strlen(key);
    pthread_once(&cookie_once, cookie_key_init);
    if (!cookie_key_ok) return false;
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)(w >> (56 - 8 * i));
    memcpy(msg + 8, key, kl);
    if (!HMAC(EVP_sha256(), cookie_key, (int)sizeof cookie_key, msg, 8 + kl, mac, &ml))
        return false;
    for (int i = 0; i < UDP_COOKIE_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return true;
}

static uint64_t cookie_window(gw_udp *g)
{
    return ax_loop_now(g->sv->loop) / 1000 /
           (g->sv->cfg->udp_cookie_s ? g->sv->cfg->udp_cookie_s : 1);
}

/* A cookie is good for the window it was made in and the next one. */
static bool cookie_valid(gw_udp *g, const char *key, const char *c)
{
    char want[UDP_COOKIE_HEX + 1];
    uint64_t w = cookie_window(g);
    if (!c || strlen(c) != UDP_COOKIE_HEX) return false;
    for (uint64_t i = 0; i < 2 && i <= w; i++) {
        if (!cookie_make(key, w - i, want)) return false;
        unsigned d = 0; /* constant time */
        for (int k = 0; k < UDP_COOKIE_HEX; k++)
            d |= (unsigned)(want[k] ^ c[k]);
        if (!d) return true;
    }
    return false;
}

/* `SUB filter [since] [COOKIE c]`: what follows the filter, split. */
static void sub_args(char *rest, const char **since, const char **cookie)
{
    *since = *cookie = NULL;
    if (!rest) return;
    if (strncmp(rest, "COOKIE ", 7) != 0) {
        *since = rest;
        char *sp = strchr(rest, ' ');
        if (!sp) return;
        *sp = '\0';
        rest = sp + 1;
        if (strncmp(rest, "COOKIE ", 7) != 0) return;
    }
    *cookie = rest + 7;
}

static void pace_resume(ax_timer *t, void *ud)
{
    udp_peer *p = ud;
    (void)t;
    p->credit = UDP_PACE_BYTES;
    if (!p->held) hub_sub_writable(p->sub);
}

/* Count `n` bytes sent to p; false (the hub holds the rest) when its
 * interval's credit is spent, until pace_resume(). */
static bool pace_spend(udp_peer *p, size_t n)
{
    p->credit -= (int64_t)n;
    if (p->credit > 0) return true;
    if (!ax_timer_active(p->pace)) ax_timer_start(p->pace, UDP_PACE_MS, 0);
    return false;
}

static ax_slice *encode_udp(const hub_msg *m, void *ud)
{
    (void)ud;
    ax_slice *s = ax_slice_new(m->topic_len + m->sender_len + m->payload_len + 48);
    if (!s) return NULL;
    char *o = ax_slice_data(s);
    int n;
    if (m->kind == HUB_GAP) {
        n = sprintf(o, "GAP %s %llu", m->topic, (unsigned long long)m->seq);
    } else {
        n = sprintf(o, "MSG %s %llu %s ", m->topic, (unsigned long long)m->seq,
                    m->sender_len ? m->sender : "-");
        memcpy(o + n, m->payload, m->payload_len);
        n += (int)m->payload_len;
    }
    o[n++] = '\n';
    ax_slice_truncate(s, (size_t)n);
    return s;
}

static bool udp_write(hub_sub *s, hub_msg *m, void *ud)
{
    udp_peer *p = ud;
    (void)s;
    if (m->kind == HUB_JOIN || m->kind == HUB_LEAVE) return true;
    ax_slice *sl = hub_msg_encoding(m, ENC_UDP, encode_udp, NULL);
    if (!sl) return true;
    gw_stats *st = &p->g->sv->gw[GW_UDP];
    bool replay = hub_sub_replaying(s);
    if (ax_udp_send(p->g->u, &p->addr, ax_slice_data(sl), ax_slice_len(sl)) == 0) {
        GW_ADD(st->msgs_out, 1);
        GW_ADD(st->bytes_out, ax_slice_len(sl));
    } else {
        GW_ADD(st->errors, 1);
    }
    bool more = pace_spend(p, ax_slice_len(sl));
    if (!replay) return more;
    p->replay_bytes -= (int64_t)ax_slice_len(sl);
    if (--p->replay_msgs > 0 && p->replay_bytes > 0) return more;
    char note[HUB_MAX_TOPIC + 48]; /* this datagram's share is spent: wait for a SUB */
    int n = snprintf(note, sizeof note, "MORE %s %llu\n", m->topic, (unsigned long long)m->seq);
    if (ax_udp_send(p->g->u, &p->addr, note, (size_t)n) == 0) GW_ADD(st->bytes_out, (size_t)n);
    p->held = true;
    return false;
}

/* Paced deliveries queue in the hub; a subscriber whose queue outgrows its
 * budget gets nothing more and is forgotten at the next sweep (it must
 * subscribe again, with a cookie). */
static void udp_kick(hub_sub *s, const char *why, void *ud)
{
    udp_peer *p = ud;
    (void)s, (void)why;
    p->kicked = true;
}

static const hub_sub_ops udp_ops = {udp_write, udp_kick};

static void peer_free(udp_peer *p)
{
    hub_map_del(&p->g->peers, p->key, strlen(p->key));
    hub_sub_free(p->sub);
    ax_timer_free(p->pace);
    while (p->leases) {
        lease *l = p->leases;
        p->leases = l->next;
        ax_free(l);
    }
    GW_SUB(p->g->sv->gw[GW_UDP].conns, 1);
    auth_identity_free(p->id);
    ax_free(p);
}

static udp_peer *peer_get(gw_udp *g, const ax_addr *from, bool make)
{
    char key[AX_ADDR_STRLEN];
    ax_addr_format(from, key, sizeof key);
    udp_peer *p = hub_map_get(&g->peers, key, strlen(key));
    if (p || !make || g->peers.n >= UDP_MAX_PEERS) return p;
    p = ax_calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->g = g;
    p->addr = *from;
    snprintf(p->key, sizeof p->key, "%s", key);
    p->sub = hub_sub_new(g->sv->hub, &udp_ops, p, NULL);
    p->pace = ax_timer_new(g->sv->loop, pace_resume, p);
    p->credit = UDP_PACE_BYTES;
    if (!p->sub || !p->pace || hub_map_put(&g->peers, p->key, strlen(p->key), p, NULL) != 0) {
        hub_sub_free(p->sub);
        ax_timer_free(p->pace);
        ax_free(p);
        return NULL;
    }
    GW_ADD(g->sv->gw[GW_UDP].conns, 1);
    GW_ADD(g->sv->gw[GW_UDP].accepted, 1);
    return p;
}

/* The peer's identity: its AUTH lease, or an anonymous one made now
 * (NULL: no auth configured).  *ok false: unauthorized (said). */
static const auth_identity *peer_identity(gw_udp *g, udp_peer *p, const ax_addr *from, bool *ok)
{
    *ok = true;
    if (!g->sv->auth) return NULL;
    if (p && !p->id && (p->id = serve_anonymous(g->sv))) hub_sub_set_identity(p->sub, p->id);
    if (p && p->id) return p->id;
    auth_identity *anon = serve_anonymous(g->sv);
    if (!anon) {
        *ok = false;
        serve_refused(g->sv, "udp", from, "no credentials");
        reply(g, from, "ERR unauthorized: send AUTH <token> first");
        return NULL;
    }
    auth_identity_free(anon);
    return NULL; /* anonymous may: no peer yet, nothing more to check */
}

static void cmd_auth(gw_udp *g, const ax_addr *from, const char *token)
{
    auth_identity *id = g->sv->auth ? serve_token(g->sv, from, token, strlen(token)) : NULL;
    udp_peer *p = id ? peer_get(g, from, true) : NULL;
    if (!id || !p) {
        if (!id && g->sv->auth) serve_refused(g->sv, "udp", from, NULL);
        auth_identity_free(id);
        reply(g, from,
              !g->sv->auth ? "ERR authentication is not configured"
              : id         ? "ERR too many subscribers"
                           : "ERR unauthorized");
        return;
    }
    hub_sub_set_identity(p->sub, id); /* before the old one is freed */
    auth_identity_free(p->id);
    p->id = id;
    hub_sub_rename(p->sub, id->name);
    p->auth_expires = ax_loop_now(g->sv->loop) + (uint64_t)g->sv->cfg->udp_lease_s * 1000;
    reply(g, from, "OK AUTH %s %u", id->name, g->sv->cfg->udp_lease_s);
}

/* An address without a lease must show a cookie made for it: true when
 * it did; otherwise it was answered (a cookie, if that fits the bound). */
static bool sub_verified(gw_udp *g, const ax_addr *from, const char *cookie)
{
    char key[AX_ADDR_STRLEN], c[UDP_COOKIE_HEX + 1];
    ax_addr_format(from, key, sizeof key);
    udp_peer *p = hub_map_get(&g->peers, key, strlen(key));
    if ((p && p->verified) || cookie_valid(g, key, cookie)) return true;
    GW_ADD(g->sv->gw[GW_UDP].errors, 1);
    if (!cookie_make(key, cookie_window(g), c))
        reply(g, from, "ERR cannot make a cookie");
    else if (g->cap < sizeof "COOKIE " + UDP_COOKIE_HEX)
        reply(g, from, "ERR pad: repeat the SUB with COOKIE and 16 characters");
    else
        reply(g, from, "COOKIE %s", c);
    return false;
}

static void cmd_sub(gw_udp *g, const ax_addr *from, const char *filter, char *rest)
{
    const char *since, *cookie;
    sub_args(rest, &since, &cookie);
    if (!hub_filter_valid(filter, strlen(filter))) {
        reply(g, from, "ERR bad filter '%s'", filter);
        return;
    }
    if (!sub_verified(g, from, cookie)) return;
    bool ok = true;
    udp_peer *p = peer_get(g, from, false);
    if (!p) peer_identity(g, NULL, from, &ok); /* refused before a peer is made */
    if (!ok) return;
    if (!p) p = peer_get(g, from, true);
    if (p) p->verified = true;
    if (!p) {
        reply(g, from, "ERR too many subscribers");
        return;
    }
    const auth_identity *id = peer_identity(g, p, from, &ok);
    if (id ? !auth_may_subscribe(id, filter)
           : !auth_private_may_subscribe(hub_sub_name(p->sub), filter)) {
        reply(g, from, "ERR forbidden: you may not subscribe to '%s'", filter);
        return;
    }
    /* this datagram buys the next part of a replay (a paused one goes on) */
    bool held = p->held;
    p->held = false;
    p->replay_msgs = UDP_REPLAY_MSGS;
    p->replay_bytes = UDP_REPLAY_BYTES;
    uint64_t exp = ax_loop_now(g->sv->loop) + (uint64_t)g->sv->cfg->udp_lease_s * 1000;
    for (lease *l = p->leases; l; l = l->next) {
        if (strcmp(l->filter, filter) == 0) { /* a renewal */
            l->expires = exp;
            reply(g, from, "OK SUB %s %u", filter, g->sv->cfg->udp_lease_s);
            if (held && !ax_timer_active(p->pace)) hub_sub_writable(p->sub);
            return;
        }
    }
    size_t n = strlen(filter);
    lease *l = p->nleases < UDP_MAX_LEASES ? ax_malloc(sizeof(*l) + n + 1) : NULL;
    if (!l) {
        reply(g, from, "ERR too many subscriptions");
        return;
    }
    memcpy(l->filter, filter, n + 1);
    int64_t from_seq = since ? strtoll(since, NULL, 10) : -1;
    reply(g, from, "OK SUB %s %u", filter, g->sv->cfg->udp_lease_s); /* before the replay */
    if (hub_subscribe(p->sub, filter, from_seq, false) != 0) {
        ax_free(l);
        reply(g, from, "ERR bad filter '%s'", filter);
        return;
    }
    l->expires = exp;
    l->next = p->leases;
    p->leases = l;
    p->nleases++;
    if (held && !ax_timer_active(p->pace)) hub_sub_writable(p->sub);
}

static void cmd_unsub(gw_udp *g, const ax_addr *from, const char *filter)
{
    udp_peer *p = peer_get(g, from, false);
    for (lease **pl = p ? &p->leases : NULL; pl && *pl; pl = &(*pl)->next) {
        if (strcmp((*pl)->filter, filter) != 0) continue;
        lease *l = *pl;
        *pl = l->next;
        p->nleases--;
        hub_unsubscribe(p->sub, filter);
        ax_free(l);
        reply(g, from, "OK UNSUB %s", filter);
        if (!p->leases) peer_free(p);
        return;
    }
    reply(g, from, "ERR not subscribed to '%s'", filter);
}

static void publish_acked(hub_ack *a, int status)
{
    udp_wait *w = (udp_wait *)a;
    gw_udp *g = w->g;
    if (w->prev)
        w->prev->next = w->next;
    else
        g->waits = w->next;
    if (w->next) w->next->prev = w->prev;
    g->cap = w->cap;
    if (status)
        reply(g, &w->to, "ERR not stored: the store failed to commit '%s' %llu", w->topic,
              (unsigned long long)w->seq);
    else
        reply(g, &w->to, "OK %s %llu", w->topic,
              (unsigned long long)(a->seq ? a->seq : w->seq)); /* a->seq: the cluster's */
    g->cap = SIZE_MAX;
    ax_free(w);
}

/* Say "OK" when the message's commit is done (the fsync mode's promise). */
static void publish_defer(gw_udp *g, const ax_addr *to, const char *topic, uint64_t seq,
                          uint64_t ticket)
{
    size_t tl = strlen(topic);
    udp_wait *w = ax_calloc(1, sizeof(*w) + tl + 1);
    if (!w || hub_ack_wait(g->sv->hub, &w->ack, ticket, publish_acked) != 0) {
        ax_free(w);
        reply(g, to, "ERR out of memory waiting for the store");
        return;
    }
    w->g = g;
    w->to = *to;
    w->cap = g->cap;
    w->seq = seq;
    memcpy(w->topic, topic, tl + 1);
    w->next = g->waits;
    if (g->waits) g->waits->prev = w;
    g->waits = w;
}

static void cmd_pub(gw_udp *g, const ax_addr *from, const char *topic, const char *payload,
                    size_t plen)
{
    int err = 0;
    char addr[AX_ADDR_STRLEN];
    udp_peer *p = peer_get(g, from, false);
    ax_addr_format(from, addr, sizeof addr);
    const char *sender = strncmp(addr, "udp://", 6) == 0 ? addr + 6 : addr;
    bool ok;
    const auth_identity *id = peer_identity(g, p, from, &ok);
    if (!ok) return;
    if (id && !auth_may_publish(id, topic)) {
        reply(g, from, "ERR forbidden: you may not publish to '%s'", topic);
        return;
    }
    if (!id && g->sv->auth) { /* anonymous, with no lease yet */
        auth_identity *anon = serve_anonymous(g->sv);
        bool may = anon && auth_may_publish(anon, topic);
        auth_identity_free(anon);
        if (!may) {
            reply(g, from, "ERR forbidden: you may not publish to '%s'", topic);
            return;
        }
    }
    if (id && id->name[0]) sender = id->name;
    uint64_t ticket = 0;
    uint64_t seq = hub_publish_via(g->sv->hub, HUB_VIA_UDP, p ? p->sub : NULL, topic, sender,
                                   payload, plen, &ticket, &err);
    if (!seq && err == AX_EAGAIN)
        reply(g, from, "ERR busy: the store is behind, slow down and retry");
    else if (!seq)
        reply(g, from, "ERR cannot publish to '%s': %s", topic,
              err == AX_EINVAL ? "not a valid topic" : hub_strerror(err));
    else if (ticket)
        publish_defer(g, from, topic, seq, ticket);
    else
        reply(g, from, "OK %s %llu", topic, (unsigned long long)seq);
}

/* The text form, parsed in place: `buf` holds n bytes and a NUL after
 * them; trailing CR/LF are dropped and the words split with NULs. */
int gw_udp_parse(char *buf, size_t n, udp_req *r)
{
    memset(r, 0, sizeof(*r));
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *sp = memchr(buf, ' ', n);
    char *arg = sp ? sp + 1 : NULL;
    size_t alen = sp ? n - (size_t)(arg - buf) : 0;
    if (sp) *sp = '\0';
    if (strcmp(buf, "PING") == 0 && !sp) {
        r->cmd = UDP_PING;
        return 0;
    }
    if (!arg) return -1;
    char *sp2 = memchr(arg, ' ', alen);
    size_t tlen = sp2 ? (size_t)(sp2 - arg) : alen;
    if (!tlen || memchr(arg, '\0', tlen)) return -1; /* the payload may hold NULs */
    if (strcmp(buf, "PUB") == 0) {
        r->cmd = UDP_PUB;
        r->payload = sp2 ? sp2 + 1 : arg + alen;
        r->payload_len = sp2 ? alen - (size_t)(sp2 + 1 - arg) : 0;
    } else if (strcmp(buf, "SUB") == 0) {
        r->cmd = UDP_SUB;
        r->since = sp2 ? sp2 + 1 : NULL;
    } else if (strcmp(buf, "UNSUB") == 0 && !sp2) {
        r->cmd = UDP_UNSUB;
    } else if (strcmp(buf, "AUTH") == 0 && !sp2) {
        r->cmd = UDP_AUTH;
    } else {
        return -1;
    }
    if (sp2) *sp2 = '\0';
    r->topic = arg;
    return 0;
}

/* Every datagram counts against its address (ip_msg_rate, ip_byte_rate).
 * Over a limit it is dropped; the address's first refusal in the log
 * window is answered `ERR ...` (no longer than the request, like every
 * reply to an unverified address), and so is each refusal of a verified
 * one, which cannot be a forged victim. */
static bool within_limits(gw_udp *g, const ax_addr *from, size_t n, bool verified)
{
    hub_refusal ref = {0};
    char text[128];
    hub_limit_kind k = serve_limit_datagram(g->sv, "udp", from, n, &ref);
    if (k == HUB_LIMIT_OK) return true;
    GW_ADD(g->sv->gw[GW_UDP].errors, 1);
    if (ref.log || verified) reply(g, from, "ERR %s", serve_limit_text(k, &ref, text, sizeof text));
    return false;
}

static void on_datagram(ax_udp *u, const char *d, size_t n, const ax_addr *from)
{
    gw_udp *g = ax_udp_data(u);
    gw_stats *st = &g->sv->gw[GW_UDP];
    GW_ADD(st->bytes_in, n);
    if (n > UDP_MAX_IN) {
        GW_ADD(st->errors, 1);
        reply(g, from, "ERR datagram too large: %zu bytes (at most %d)", n, UDP_MAX_IN);
        return;
    }
    char buf[UDP_MAX_IN + 1], key[AX_ADDR_STRLEN];
    memcpy(buf, d, n);
    buf[n] = '\0';
    udp_req r;
    GW_ADD(st->msgs_in, 1);
    ax_addr_format(from, key, sizeof key);
    udp_peer *vp = hub_map_get(&g->peers, key, strlen(key));
    g->cap = vp && vp->verified ? SIZE_MAX : n;
    if (!within_limits(g, from, n, vp && vp->verified)) {
        /* dropped */
    } else if (gw_udp_parse(buf, n, &r) != 0) {
        GW_ADD(st->errors, 1);
        reply(g, from,
              "ERR unknown request; expected PUB topic payload, SUB topic, UNSUB "
              "topic or PING");
    } else if (r.cmd == UDP_PING) {
        reply(g, from, "PONG");
    } else if (r.cmd == UDP_PUB) {
        cmd_pub(g, from, r.topic, r.payload, r.payload_len);
    } else if (r.cmd == UDP_SUB) {
        cmd_sub(g, from, r.topic, (char *)r.since);
    } else if (r.cmd == UDP_AUTH) {
        cmd_auth(g, from, r.topic);
    } else {
        cmd_unsub(g, from, r.topic);
    }
    g->cap = SIZE_MAX;
}

/* ---- leases ---------------------------------------------------------------------- */

typedef struct sweep_ctx {
    uint64_t now;
    int64_t wall; /* seconds since the epoch: token expiry */
    udp_peer *dead[256];
    int ndead;
} sweep_ctx;

static void sweep_peer(hub_map_ent *e, void *ud)
{
    sweep_ctx *c = ud;
    udp_peer *p = e->value;
    for (lease **pl = &p->leases; *pl;) {
        lease *l = *pl;
        if (l->expires > c->now) {
            pl = &l->next;
            continue;
        }
        *pl = l->next;
        p->nleases--;
        hub_unsubscribe(p->sub, l->filter);
        ax_free(l);
    }
    /* an AUTH lease keeps the address known; its end (or the token's) ends it all */
    bool authed = p->auth_expires > c->now && !auth_expired(p->id, c->wall);
    bool was_authed = p->auth_expires != 0;
    if ((!p->leases && !authed) || (was_authed && !authed) || p->kicked) {
        if (c->ndead < 256) c->dead[c->ndead++] = p;
    }
}

static void sweep(ax_timer *t, void *ud)
{
    gw_udp *g = ud;
    (void)t;
    sweep_ctx c = {.now = ax_loop_now(g->sv->loop), .wall = (int64_t)time(NULL)};
    hub_map_each(&g->peers, sweep_peer, &c);
    for (int i = 0; i < c.ndead; i++)
        peer_free(c.dead[i]);
}

static gw_udp *gw_udp_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_udp *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    g->cap = SIZE_MAX;
    hub_map_init(&g->peers);
    int err = 0;
    ax_udp_opts uo = {.max_datagram = 65507, .reuse_port = sv->cfg->threads > 1};
    g->u = ax_udp_bind(sv->loop, url, on_datagram, &uo, g, &err);
    g->sweep = g->u ? ax_timer_new(sv->loop, sweep, g) : NULL;
    if (!g->sweep) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        if (g->u) ax_udp_close(g->u);
        ax_free(g);
        return NULL;
    }
    uint64_t every = sv->cfg->udp_lease_s * 1000u / 4;
    ax_timer_start(g->sweep, every ? every : 250, every ? every : 250);
    return g;
}

static const char *gw_udp_addr(gw_udp *g, char *buf, size_t len)
{
    return ax_addr_format(ax_udp_addr(g->u), buf, len);
}

static void free_peer_ent(hub_map_ent *e, void *ud)
{
    udp_peer *p = e->value;
    (void)ud;
    hub_sub_free(p->sub);
    ax_timer_free(p->pace);
    while (p->leases) {
        lease *l = p->leases;
        p->leases = l->next;
        ax_free(l);
    }
    ax_free(p);
}

static void gw_udp_stop(gw_udp *g)
{
    if (!g) return;
    while (g->waits) {
        udp_wait *w = g->waits;
        g->waits = w->next;
        hub_ack_cancel(g->sv->hub, &w->ack);
        ax_free(w);
    }
    hub_map_each(&g->peers, free_peer_ent, NULL);
    hub_map_clear(&g->peers);
    ax_timer_free(g->sweep);
    ax_udp_close(g->u);
    ax_free(g);
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static const char *udp_url(const serve_cfg *c)
{
    return c->udp_url;
}

static void *udp_start(serve *sv, const char *url, char *why, size_t why_len)
{
    return gw_udp_start(sv, url, why, why_len);
}

/* Datagrams have no connection to wait for: free at once. */
static void udp_free(void *g)
{
    gw_udp_stop(g);
}

static const char *udp_addr(void *g, char *buf, size_t len)
{
    return gw_udp_addr(g, buf, len);
}

static void udp_log_addrs(void *g)
{
    char a[AX_ADDR_STRLEN];
    ax_log(AX_LOG_INFO, "UDP datagrams on %s", gw_udp_addr(g, a, sizeof a));
}

static void udp_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    fprintf(out, "axon serve: UDP           echo 'PUB chat/lobby hi' | nc -u -w1 %s\n",
            serve_nc_args(gw_udp_addr(g, a, sizeof a), hp, sizeof hp));
}

const gw_ops gw_udp_gateway = {.name = "udp",
                               .url = udp_url,
                               .start = udp_start,
                               .free = udp_free,
                               .addr = udp_addr,
                               .log_addrs = udp_log_addrs,
                               .hints = udp_hints};
