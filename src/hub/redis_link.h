/* redis_link.h: one connection to a Redis server, on an axon loop.
 *
 * The bytes go over an ax_conn (tcp://, tls:// or unix://: TLS is the
 * core's, with its certificate checks), hiredis only encodes commands
 * (redisFormatCommandArgv) and decodes replies (its redisReader).  So no
 * hiredis context, no blocking call, and rediss:// works with a hiredis
 * that has no TLS of its own (Debian 12's 0.14).
 *
 * Replies come back in the order the commands went out, each to the
 * callback given with its command.  On a link made with `sub` set, an
 * array whose first element is a pub/sub kind ("message", "smessage",
 * "subscribe", ...) is a push: it goes to on_push, and (S|P)SUBSCRIBE
 * commands take no callback (their confirmations are pushes). */
#ifndef AXON_HUB_REDIS_LINK_H
#define AXON_HUB_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include <axon/axon.h>

typedef struct rlink rlink;

/* A reply, or NULL when the link closed before it came (then `l` is
 * being closed: rlink_data() still works, nothing else). */
typedef void (*rlink_reply_fn)(rlink *l, redisReply *r, void *priv);

typedef struct rlink_cbs {
    void (*on_open)(rlink *l);                /* connected (before any reply) */
    void (*on_push)(rlink *l, redisReply *r); /* sub links: a push, or an error nobody waited for */
    /* the link failed (never after rlink_close()): `why` says how; the
     * owner closes it (rlink_close) outside the link's callbacks or in */
    void (*on_down)(rlink *l, const char *why);
} rlink_cbs;

/* Connect to `url` (tcp://host:port, tls://host:port, unix:///path;
 * `tls`: the TLS context for tls://, NULL: the core's default);
 * commands may be sent at once (queued until connected).  NULL with a
 * sentence in why. */
rlink *rlink_open(ax_loop *loop, const char *url, ax_tls_ctx *tls, bool sub, const rlink_cbs *cbs,
                  void *ud, char *why, size_t why_len);
/* Close: every command still waiting gets its callback with NULL (during
 * this call); legal inside the link's own callbacks (freed after them). */
void rlink_close(rlink *l);
void *rlink_data(const rlink *l);

/* Send a command already encoded (RESP); `cb` may be NULL.  0 or a
 * negative AX_E code (the link is closing or failed). */
int rlink_send(rlink *l, rlink_reply_fn cb, void *priv, const char *cmd, size_t len);
/* Encode and send. */
int rlink_cmd(rlink *l, rlink_reply_fn cb, void *priv, int argc, const char **argv,
              const size_t *lens);
/* A command without binary arguments: its words, NULL-terminated. */
int rlink_cmdv(rlink *l, rlink_reply_fn cb, void *priv, ...);

#endif
