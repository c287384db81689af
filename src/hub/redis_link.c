/* redis_link.c: one connection to Redis over an ax_conn (redis_link.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "redis_link.h"

#define RL_OUTPUT_CAP (256u << 20) /* the backplane bounds what it sends */
#define RL_CONNECT_MS 3000

typedef struct pend {
    rlink_reply_fn cb;
    void *priv;
} pend;

struct rlink {
    ax_conn *c;
    redisReader *rd;
    const rlink_cbs *cbs;
    void *ud;
    bool sub, closing;
    int depth; /* inside on_data: free after */
    pend *q;   /* commands waiting for their replies, oldest at head */
    size_t head, len, cap;
};

void *rlink_data(const rlink *l)
{
    return l->ud;
}

static void rl_free(rlink *l)
{
    redisReaderFree(l->rd);
    ax_free(l->q);
    ax_free(l);
}

static bool pop(rlink *l, pend *out)
{
    if (!l->len) return false;
    *out = l->q[l->head];
    l->head = (l->head + 1) % l->cap;
    l->len--;
    return true;
}

static int push(rlink *l, rlink_reply_fn cb, void *priv)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        pend *q = ax_malloc(cap * sizeof(*q));
        if (!q) return AX_ENOMEM;
        for (size_t i = 0; i < l->len; i++)
            q[i] = l->q[(l->head + i) % l->cap];
        ax_free(l->q);
        l->q = q;
        l->head = 0;
        l->cap = cap;
    }
    l->q[(l->head + l->len++) % l->cap] = (pend){cb, priv};
    return 0;
}

void rlink_close(rlink *l)
{
    if (!l || l->closing) return;
    l->closing = true;
    if (l->c) {
        ax_conn_set_data(l->c, NULL);
        ax_conn_close(l->c);
        l->c = NULL;
    }
    pend p;
    while (pop(l, &p))
        if (p.cb) p.cb(l, NULL, p.priv);
    if (!l->depth) rl_free(l);
}

static bool is_push(const redisReply *r)
{
    static const char *const kinds[] = {"message",     "pmessage",     "smessage",
                                        "subscribe",   "psubscribe",   "ssubscribe",
                                        "unsubscribe", "punsubscribe", "sunsubscribe"};
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return false;
    const redisReply *k = r->element[0];
    if (k->type != REDIS_REPLY_STRING) return false;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcasecmp(k->str, kinds[i]) == 0) return true;
    return false;
}

static void dispatch(rlink *l, redisReply *r)
{
    pend p;
    if (l->sub && is_push(r)) {
        if (l->cbs->on_push) l->cbs->on_push(l, r);
    } else if (pop(l, &p)) {
        if (p.cb) p.cb(l, r, p.priv);
    } else if (l->cbs->on_push) {
        l->cbs->on_push(l, r); /* (an error for a SUBSCRIBE, for instance) */
    }
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    rlink *l = ax_conn_data(c);
    if (!l || l->closing) return len;
    l->depth++;
    if (redisReaderFeed(l->rd, data, len) != REDIS_OK) goto bad;
    while (!l->closing) {
        void *reply = NULL;
        if (redisReaderGetReply(l->rd, &reply) != REDIS_OK) goto bad;
        if (!reply) break;
        dispatch(l, reply);
        freeReplyObject(reply);
    }
    goto out;
bad:
    if (!l->closing) l->cbs->on_down(l, "not the Redis protocol");
out:
    if (--l->depth == 0 && l->closing) rl_free(l);
    return len;
}

static void on_open(ax_conn *c)
{
    rlink *l = ax_conn_data(c);
    if (l && !l->closing && l->cbs->on_open) l->cbs->on_open(l);
}

static void on_close(ax_conn *c, int reason)
{
    rlink *l = ax_conn_data(c);
    if (!l) return;
    l->c = NULL;
    char why[160];
    snprintf(why, sizeof why, "%s", reason ? ax_strerror(reason) : "connection closed");
    if (reason == AX_EOF) snprintf(why, sizeof why, "Redis closed the connection");
    l->cbs->on_down(l, why); /* last: it may close (free) the link */
}

static const ax_conn_cbs CBS = {.on_open = on_open, .on_data = on_data, .on_close = on_close};

rlink *rlink_open(ax_loop *loop, const char *url, ax_tls_ctx *tls, bool sub, const rlink_cbs *cbs,
                  void *ud, char *why, size_t why_len)
{
    rlink *l = ax_calloc(1, sizeof(*l));
    if (!l || !(l->rd = redisReaderCreate())) {
        ax_free(l);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    l->cbs = cbs;
    l->ud = ud;
    l->sub = sub;
    ax_conn_opts o = {.output_cap = RL_OUTPUT_CAP, .connect_timeout_ms = RL_CONNECT_MS, .tls = tls};
    int err = 0;
    if (!(l->c = ax_connect(loop, url, &CBS, &o, l, &err))) {
        snprintf(why, why_len, "cannot connect to %s: %s", url, ax_strerror(err));
        rl_free(l);
        return NULL;
    }
    return l;
}

static bool subscribes(const char *cmd, size_t len)
{
    /* "*N\r\n$M\r\n<name>": does the name end in "subscribe"? */
    const char *p = memchr(cmd, '$', len), *e;
    if (!p || !(p = memchr(p, '\n', len - (size_t)(p - cmd)))) return false;
    p++;
    if (!(e = memchr(p, '\r', len - (size_t)(p - cmd))) || e - p < 9) return false;
    return strncasecmp(e - 9, "subscribe", 9) == 0;
}

int rlink_send(rlink *l, rlink_reply_fn cb, void *priv, const char *cmd, size_t len)
{
    if (l->closing || !l->c) return AX_ECLOSED;
    bool waits = !(l->sub && subscribes(cmd, len));
    if (waits && push(l, cb, priv) != 0) return AX_ENOMEM;
    if (ax_conn_write(l->c, cmd, len) < 0) {
        if (waits) l->len--; /* (the newest: not handed back) */
        return AX_ECLOSED;
    }
    return 0;
}

int rlink_cmd(rlink *l, rlink_reply_fn cb, void *priv, int argc, const char **argv,
              const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd) return AX_ENOMEM;
    int rc = rlink_send(l, cb, priv, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

int rlink_cmdv(rlink *l, rlink_reply_fn cb, void *priv, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, priv);
    for (const char *a; argc < 16 && (a = va_arg(ap, const char *));)
        argv[argc++] = a;
    va_end(ap);
    return rlink_cmd(l, cb, priv, argc, argv, NULL);
}
