/* gw_irc.h: what the files of the IRC gateway share (gw_irc.c: the
 * connections, registration, messages and queries; irc_chan.c: channel
 * state, modes, KICK and INVITE, and the delivery of channel events to
 * the IRC users of every thread; irc_server.c: WHOWAS, OPER, KILL,
 * WALLOPS, TIME, INFO).  Internal to src/hub. */
#ifndef AXON_HUB_GW_IRC_H
#define AXON_HUB_GW_IRC_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/irc/irc.h"
#include "serve.h"

#define SERVER_NAME "irc.axon" /* the default of irc_server_name */
#define NETWORK "axon"
#define NICK_MAX 32
#define ROOM_MAX 64
#define CHAN_MAX (ROOM_MAX + 1)
#define MAX_CHANS 32
#define TOPIC_MAX 300
#define AWAY_MAX 200
#define KEY_MAX 32         /* a channel key (+k) */
#define BANS_MAX 60        /* +b masks per channel */
#define IRC_EXCEPTS_MAX 20 /* +e and +I masks per channel (each) */
#define MASK_MAX 120       /* bytes in a ban mask */
#define MODES_MAX 6        /* mode changes with a parameter per MODE command */
#define HISTORY_MAX 100    /* CHATHISTORY messages per request */
#define WHOWAS_MAX 100     /* nicks WHOWAS remembers (the newest replace the oldest) */
#define REGISTER_S 60      /* to register after connecting */
/* irc_ping_timeout: a PING after this much silence, and the connection
 * ends when nothing answers it within as much again */
#define PING_S(ic)                                                                                 \
    ((ic)->g->sv->cfg->irc_ping_timeout_s ? (ic)->g->sv->cfg->irc_ping_timeout_s : 90)

/* The capabilities (CAP LS order). */
enum {
    CAP_SASL = 1 << 0,
    CAP_SERVER_TIME = 1 << 1,
    CAP_MESSAGE_TAGS = 1 << 2,
    CAP_ECHO = 1 << 3,
    CAP_BATCH = 1 << 4,
    CAP_CHATHISTORY = 1 << 5,
    CAP_MULTI_PREFIX = 1 << 6,
    CAP_USERHOST_NAMES = 1 << 7,
    CAP_CAP_NOTIFY = 1 << 8,
    CAP_AWAY_NOTIFY = 1 << 9,
    CAP_ACCOUNT_TAG = 1 << 10,
    CAP_ACCOUNT_NOTIFY = 1 << 11,
    CAP_EXTENDED_JOIN = 1 << 12,
    CAP_EXTENDED_MONITOR = 1 << 13,
};

typedef struct gw_irc gw_irc;
typedef struct irc_conn irc_conn;

/* One gateway per thread (its loop); g->conns are that thread's. */
struct gw_irc {
    serve *sv;
    ax_listener *ls, *tls_ls;
    irc_conn *conns;
    auth_passwd *opers; /* irc_oper_file: OPER's names and hashes (NULL: none) */
    gw_irc *net_next;   /* the list of every thread's gateway (irc_chan.c) */
};

struct irc_conn {
    irc_conn *prev, *next;
    gw_irc *g;
    ax_conn *c;
    hub_sub *sub;     /* from registration on */
    ax_timer *timer;  /* registration, then ping */
    uint64_t last_in; /* loop ms of the last line */
    bool ping_out;    /* a PING of ours waits for its PONG */
    bool registered, cap_wait, quit, discarding, renaming, invisible;
    bool have_user, announced; /* announced: its QUIT went out */
    bool oper;                 /* OPER succeeded: user mode +o */
    bool unknown;              /* counted by irc_unregistered() */
    bool wallops;              /* user mode +w: WALLOPS reach it */
    int wrc;                   /* the last write's answer that was not 0 (1: above the watermark) */
    int caps;
    char nick[HUB_MAX_NAME + 1];
    char user[HUB_MAX_NAME + 1];
    char real[64];
    char host[48]; /* shown as the user's host */
    char away[AWAY_MAX + 1];
    char pass[512];  /* PASS, until registration */
    bool sasl_plain; /* AUTHENTICATE PLAIN under way */
    char sasl[800];  /* its base64 so far */
    size_t sasl_len;
    auth_identity *id;   /* who it is; NULL: no auth configured */
    hub_limits_conn lim; /* its share of the limits */
    uint64_t flood_ms;   /* flood control: the penalty clock (loop ms) */
    ax_timer *flood;     /* reading again when the penalty has run down */
    int nchans;
    char chans[MAX_CHANS][CHAN_MAX + 2];
    char (*monitor)[HUB_MAX_NAME + 1]; /* MONITOR's nicks (MONITOR_MAX; NULL: none yet) */
    int nmonitor;
};

/* ---- gw_irc.c ---------------------------------------------------------------------- */

/* The server's name (irc_server_name, else SERVER_NAME). */
const char *irc_server(const irc_conn *ic);
/* A line with the server as its source: ":irc.axon " then the text. */
void irc_srv_sendf(irc_conn *ic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line to the client (the text without CR LF, cut to the limit). */
void irc_sendf(irc_conn *ic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A numeric: ":irc.axon NNN nick ..." (the server's name) */
void irc_num(irc_conn *ic, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "#Lobby" -> "lobby"; false when it is no channel. */
bool irc_chan_room(const char *chan, char *room, size_t cap);
bool irc_on_chan(const irc_conn *ic, const char *chan);
bool irc_nick_ok(const char *s);
bool irc_same_name(const char *a, const char *b);
/* Is the name someone's, on IRC or present in a room of any gateway? */
bool irc_name_in_use(serve *sv, const char *name, const irc_conn *self);
/* What the IRC user called `nick` shows (false: no such IRC user):
 * user, host (as "nick!user@host" sources show them), account ("" when
 * not signed in), away text ("" when here). */
typedef struct irc_who {
    char nick[HUB_MAX_NAME + 1]; /* as its owner spells it */
    char user[HUB_MAX_NAME + 1], host[48], account[AUTH_MAX_NAME + 1], real[64];
    char away[AWAY_MAX + 1];
    bool oper, invisible;
} irc_who;
bool irc_lookup(const char *nick, irc_who *out);
/* Leave a channel on this connection without a PART line (KICK). */
void irc_drop_chan(irc_conn *ic, const char *chan);

/* ---- irc_tags.c: client-only tags, TAGMSG, STATUSMSG, MONITOR ------------------- */

/* The client-only tags (`+key[=value]`) of a line as MQTT 5.0 User
 * Properties (key with its '+', the unescaped value) for hub_msg.ext, so
 * they cross gateways, the store and the Redis backplane: their size
 * (0: none; nothing written when it is over `cap`). */
size_t irc_tags_to_ext(const ax_irc_msg *m, uint8_t *out, size_t cap);
/* The User Properties of a message whose key starts with '+' as IRC tags
 * (escaped, each after a ';' when `o` is not 0), appended to out at `o`;
 * returns the new length (what did not fit is left out). */
size_t irc_tags_from_ext(const void *ext, size_t ext_len, char *out, size_t o, size_t cap);
/* TAGMSG target: the client-only tags to the IRC users of a channel (or
 * to a nick) who have message-tags; not to other gateways (nothing they
 * could show) nor stored. */
void irc_cmd_tagmsg(irc_conn *ic, const ax_irc_msg *m, char **args);
/* PRIVMSG/NOTICE @#chan (+#chan): to the channel's operators (and voiced
 * users); `text` as sent; `ext` its client tags. */
void irc_statusmsg(irc_conn *ic, const char *cmd, const char *target, const char *text,
                   const char *ctags);
/* A fresh msgid for events that are not hub messages. */
void irc_msgid_new(char *out, size_t cap);
/* MONITOR + - C L S; and the notices when a nick comes and goes. */
void irc_cmd_monitor(irc_conn *ic, int nparams, char **args);
void irc_monitor_online(gw_irc *g, const irc_conn *ic);
void irc_monitor_offline(gw_irc *g, const char *nick);
void irc_monitor_free(irc_conn *ic);
bool irc_monitors(const irc_conn *ic, const char *nick);
/* A line with tags: `tags` ("msgid=...;+a=b") to a client with
 * message-tags, `time` (server-time's value, may be NULL) to one with
 * message-tags or server-time; the text after them is cut to 512 bytes. */
void irc_send_tagged(irc_conn *ic, const char *tags, const char *time, const char *line);
#define MONITOR_MAX 100

/* ---- irc_chan.c: channels ------------------------------------------------------- */

/* Channel member flags (prefixes @ and +). */
enum { CM_OP = 1, CM_VOICE = 2 };

/* JOIN: may `ic` join #room (0, or the numeric that refuses it: 471,
 * 473, 474, 475)?  `key` may be NULL.  Then irc_chan_joined() adds the
 * member (operator when the hub's permissions say so, or, without
 * authentication, when it is the first IRC user on the channel). */
int irc_chan_may_join(irc_conn *ic, const char *room, const char *key);
void irc_chan_joined(irc_conn *ic, const char *room);
void irc_chan_left(const char *room, const char *nick);
/* Every channel of `nick` (on close), and a nick change (irc_chan_renaming
 * first, before the hub's leave and join events: they are not shown as
 * PART and JOIN, the NICK line says it). */
void irc_chan_left_all(const char *nick);
void irc_chan_renaming(const char *old, const char *nick);
void irc_chan_renamed(const char *old, const char *nick);
/* `nick` parts the room: its PART line went to the channel, the hub's
 * leave event is not shown again. */
void irc_chan_parting(const char *room, const char *nick);
/* The member's flags (0: none or not an IRC member); `prefix` (may be
 * NULL, 3 bytes) gets "@+", "@", "+" or "" (multi: all of them). */
int irc_chan_flags(const char *room, const char *nick, char *prefix, bool multi);
/* May `ic` speak on the channel (+n, +m, +b)?  0 or the numeric (404). */
int irc_chan_may_speak(irc_conn *ic, const char *room);
/* May `ic` set the topic (+t)?  false: 482 was sent. */
bool irc_chan_may_topic(irc_conn *ic, const char *chan, const char *room);
/* Was `nick` kicked from the room a moment ago, or did it quit (its
 * leave is not a PART)?  irc_chan_quiet_all() marks every channel of a
 * user that quits. */
bool irc_chan_kicked(const char *room, const char *nick);
/* Is a JOIN of `nick` to the room the hub's side of a NICK change? */
bool irc_chan_renamed_join(const char *room, const char *nick);
void irc_chan_quiet_all(const char *nick);
int64_t irc_chan_created(const char *room, int64_t fallback);
/* +s: NAMES says '@', LIST and NAMES hide it from those not on it. */
bool irc_chan_secret(const char *room);
/* Does the channel exist: IRC state, or someone of any gateway in the room? */
bool irc_chan_exists(irc_conn *ic, const char *room);
/* MODE, KICK, INVITE. */
void irc_cmd_mode(irc_conn *ic, int nparams, char **args);
void irc_cmd_kick(irc_conn *ic, int nparams, char **args);
void irc_cmd_invite(irc_conn *ic, int nparams, char **args);
/* ISUPPORT's CHANMODES and PREFIX. */
#define IRC_CHANMODES "beI,k,l,imnst"
#define IRC_PREFIX "(ov)@+"

/* Channel events to the IRC users of every thread (this thread's now,
 * the others' through their loops): `line` to every connection on
 * #room (those with `need_cap`, when not 0); with `victim`, that user
 * leaves the channel (KICK). */
void irc_net_chan(gw_irc *g, const char *room, const char *line, int need_cap, const char *victim);
/* The same with tags (irc_send_tagged()), and only to members with one of
 * `need_flags` (CM_*; 0: all); `skip` (the sender) has it only when it has
 * echo-message. */
typedef struct irc_net_opts {
    int need_cap, need_flags;
    const char *skip, *tags, *time;
} irc_net_opts;
void irc_net_chan_ex(gw_irc *g, const char *room, const char *line, const irc_net_opts *o);
void irc_net_nick_ex(gw_irc *g, const char *nick, const char *line, const irc_net_opts *o);
/* MONITOR: 730 (`online`, `who` nick!user@host) or 731 (`who` the nick) to
 * every IRC user who monitors `nick`. */
void irc_net_monitor(gw_irc *g, const char *nick, const char *who, bool online);
/* extended-monitor: `line` (AWAY) to the users with every bit of
 * `need_cap` who monitor `nick` and share no channel with it (those have
 * it from irc_net_shared()). */
void irc_net_monitor_event(gw_irc *g, const char *nick, const char *line, int need_cap);
/* `line` to the IRC user called `nick`. */
void irc_net_nick(gw_irc *g, const char *nick, const char *line);
/* `line` to the users with `need_cap` who share a channel with `nick`
 * (away-notify), and not to `nick` itself. */
void irc_net_shared(gw_irc *g, const char *nick, const char *line, int need_cap);
/* Does `ic` share a channel with the IRC user `nick`? */
bool irc_chan_shares(const irc_conn *ic, const char *nick);
/* `line` to the users with user mode +w (WALLOPS). */
void irc_net_wallops(gw_irc *g, const char *line);
/* The IRC user called `nick` is disconnected (KILL), `why` its reason. */
void irc_net_kill(gw_irc *g, const char *nick, const char *why);
void irc_net_add(gw_irc *g);
void irc_net_remove(gw_irc *g);

/* ---- shared by gw_irc.c and its parts (irc_net.c, irc_reg.c,
 * irc_query.c) ------------------------------------------------------------ */

typedef struct chan_topic {
    struct chan_topic *next;
    char room[ROOM_MAX + 1];
    char text[TOPIC_MAX + 1];
    char who[HUB_MAX_NAME + 1];
    int64_t set_at, created;
} chan_topic;

bool irc_room_ok(const char *s);
/* The nick table (irc_net.c), shared by every thread. */
void irc_nick_claim(const irc_conn *ic, const char *nick);
void irc_nick_release(const irc_conn *ic);
/* WHOWAS: `ic` leaves the nick `nick` (QUIT or NICK); the command. */
void irc_whowas_add(const irc_conn *ic, const char *nick);
void irc_cmd_whowas(irc_conn *ic, int nparams, char **args);
/* LUSERS: registered IRC users of every thread, of them +i and +o. */
void irc_net_counts(int *users, int *invisible, int *opers);
/* Connections that have not registered yet (every thread): `ic` counts
 * (on) or no more (registered or closing). */
void irc_unregistered_set(irc_conn *ic, bool on);
int irc_unregistered(void);
/* A channel's topic: false when it has none. */
bool irc_topic_get(const char *room, chan_topic *out);
/* Set (or clear, text ""): its time. */
int64_t irc_topic_set(const char *room, const char *text, const char *who);

/* gw_irc.c */
const char *irc_me(const irc_conn *ic);
int64_t irc_parse_iso(const char *s);
void irc_deliver(irc_conn *ic, const hub_msg *m, const char *target, const char *batch);
extern const hub_sub_ops irc_sub_ops;
void irc_close_with(irc_conn *ic, const char *why);
bool irc_may(irc_conn *ic, bool (*fn)(const auth_identity *, const char *), const char *topic);
void irc_who_of(const char *nick, irc_who *w);
/* One 352 line of WHO for `name` (an IRC user or a name in a room). */
void irc_who_reply(irc_conn *ic, const char *name);
/* WHO with a mask ('*', '?'): IRC users (+i ones when they share a
 * channel with `ic`) and members of the rooms of other gateways. */
void irc_who_mask(irc_conn *ic, const char *mask);
/* The IRC users whose nick matches `mask`: up to `max` into `out`. */
size_t irc_nicks_match(const char *mask, char (*out)[HUB_MAX_NAME + 1], size_t max);
void irc_timer_arm(irc_conn *ic, uint64_t ms);

/* irc_reg.c */
void irc_isupport(irc_conn *ic);
void irc_lusers(irc_conn *ic);
void irc_inbox(irc_conn *ic, const char *name, bool on);
void irc_try_register(irc_conn *ic);
void irc_authenticate(irc_conn *ic, const ax_irc_msg *m, const char *arg);
void irc_cap(irc_conn *ic, const ax_irc_msg *m, char **args);

/* irc_query.c */
void irc_chathistory(irc_conn *ic, const ax_irc_msg *m, char **args);
void irc_list(irc_conn *ic);
void irc_whois(irc_conn *ic, const char *nick);
/* OPER, TIME, KILL, WALLOPS. */
void irc_cmd_oper(irc_conn *ic, int nparams, char **args);
void irc_cmd_time(irc_conn *ic);
void irc_cmd_info(irc_conn *ic);
void irc_cmd_wallops(irc_conn *ic, int nparams, char **args);
void irc_cmd_kill(irc_conn *ic, int nparams, char **args);

#endif
