/* auth.h: who a client is, and what it may do: the hub's one permission
 * engine, for every gateway.
 *
 * Credentials become an identity:
 *   - a signed token (JWT HS256, secret from a file), see auth_token();
 *   - a name and password from a mosquitto_passwd file, see auth_login();
 *   - nobody, when anonymous access is allowed, see auth_anonymous().
 * An identity carries its name and its compiled rules; the three checks
 * auth_may_publish(), auth_may_subscribe() and auth_may_read() are pure
 * functions of (identity, topic or filter), safe from any thread.
 *
 * The rules (docs/security.md says the same for operators):
 *   - publish to a topic: some write rule matches it and no deny rule does;
 *   - subscribe to a filter: every topic the filter can match is readable
 *     (a filter wider than what is granted is refused, never narrowed), and
 *     no deny rule overlaps it;
 *   - read one topic (live delivery, history and resume replay, retained
 *     messages, presence lists): some read rule matches it and no deny
 *     rule does;
 *   - private topics: `user/NAME` and everything under it are readable by
 *     NAME only (and by an admin), whatever the other rules say; a named
 *     identity may always read its own `user/NAME/#`;
 *   - direct messages go to `user/NAME/inbox`: only NAME reads it; writing
 *     there needs a write grant like any topic (`user/+/inbox` lets a user
 *     send direct messages to everyone).
 * Topics starting with '$' are matched by a leading wildcard neither in a
 * rule nor in a subscription (MQTT's rule).
 *
 * Token claims: `sub` (the name), `exp` (required), `nbf` (optional), and
 *   "axon": {"pub": [FILTERS], "sub": [FILTERS], "admin": false}
 * where each FILTER may use `+`, `#` and `%u` (a whole level: the name).
 * A token without "axon" may read its own private topics only.
 *
 * Password logins take their rules from the ACL file (mosquitto's
 * acl_file format); with no ACL file a password user may read and write
 * every topic (mosquitto's behaviour).  Nothing here stores or logs a
 * clear password. */
#ifndef AXON_HUB_AUTH_H
#define AXON_HUB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_MAX_TOKEN 8192     /* bytes in a token, refused above */
#define AUTH_MIN_SECRET 32      /* bytes in an HS256 secret */
#define AUTH_MAX_SECRET 4096    /* bytes in a secret file */
#define AUTH_MAX_NAME 64        /* bytes in a user name (HUB_MAX_NAME) */
#define AUTH_MAX_FILTERS 64     /* filters per claim list */
#define AUTH_MAX_LINE 1024      /* bytes in a password or ACL file line */
#define AUTH_MAX_ENTRIES 100000 /* users in a password file, rules in an ACL file */
#define AUTH_DEFAULT_LEEWAY 30  /* seconds of clock skew allowed on exp/nbf */

/* Access bits of a rule. */
enum { AUTH_READ = 1, AUTH_WRITE = 2, AUTH_READWRITE = 3, AUTH_OP = 4 };
/* AUTH_OP: an operator of the rooms a rule matches (IRC channel operator:
 * MODE, KICK, INVITE; docs/security.md "Room operators"). */

/* Anonymous access (settings: `--anonymous none|read|readwrite`). */
enum { AUTH_ANON_NONE = 0, AUTH_ANON_READ = 1, AUTH_ANON_READWRITE = 2 };

/* One compiled rule: `filter` granted `access`, or denied when `deny`. */
typedef struct auth_rule {
    char *filter;
    uint8_t access; /* AUTH_READ | AUTH_WRITE */
    bool deny;
    uint8_t nlevels;
    bool hash_all; /* the filter is "#" */
} auth_rule;

/* Who a client is.  Made by auth_token(), auth_login(), auth_anonymous()
 * or auth_identity_new(); freed with auth_identity_free(). */
typedef struct auth_identity {
    char name[AUTH_MAX_NAME + 1]; /* "" when anonymous */
    bool anonymous;
    bool admin;  /* the private-topic rule does not apply; /metrics, /dashboard */
    int64_t exp; /* seconds since the epoch when the credential ends; 0: never */
    int nrules;
    auth_rule *rules; /* owned */
    bool read_all;    /* a read rule "#" and no deny rule: the fast path */
    bool has_deny;
} auth_identity;

/* ---- the settings object (what `axon serve` builds from its flags) ------ */

typedef struct auth_opts {
    const char *secret_file;   /* --auth-secret: HS256 key; NULL: no tokens */
    const char *password_file; /* --password-file; NULL: no password logins */
    const char *acl_file;      /* --acl-file; NULL: password users may do anything */
    int anonymous;             /* AUTH_ANON_*: what clients without credentials may do */
    /* Limit anonymous clients to these filters (NULL: the ACL file's
     * anonymous section if there is one, else "#"). */
    const char *const *anon_filters;
    int nanon_filters;
    int leeway_s; /* clock skew on exp/nbf; < 0: none; 0: AUTH_DEFAULT_LEEWAY */
} auth_opts;

typedef struct auth auth;

/* Load the secret, password and ACL files.  NULL with a sentence in `why`
 * (naming the file, and its line for a parse error). */
auth *auth_new(const auth_opts *o, char *why, size_t why_len);
void auth_free(auth *a);
/* Is any credential source configured (secret or password file)? */
bool auth_configured(const auth *a);

/* A token's identity, checked at `now` (seconds since the epoch), or NULL
 * with the reason in `why` (for the log; clients should get a plain
 * "unauthorized").  NULL also when no secret is configured. */
auth_identity *auth_token(const auth *a, const char *token, size_t len, int64_t now, char *why,
                          size_t why_len);
/* A password login.  `client_id` (may be NULL) fills `%c` in ACL patterns.
 * NULL with the reason in `why` (unknown users and wrong passwords read
 * the same and take the same time). */
/* The identity of a user whose password was checked some other way
 * (SCRAM): the ACL applied as for auth_login(); NULL with why. */
auth_identity *auth_user(const auth *a, const char *user, const char *client_id, char *why,
                         size_t why_len);
/* The password file, or NULL when password logins are off. */
struct auth_passwd;
const struct auth_passwd *auth_passwds(const auth *a);
auth_identity *auth_login(const auth *a, const char *user, const char *password,
                          const char *client_id, char *why, size_t why_len);
/* The identity of a client without credentials, or NULL (with `why`) when
 * anonymous access is off. */
auth_identity *auth_anonymous(const auth *a, char *why, size_t why_len);

/* ---- the permission engine --------------------------------------------- */

bool auth_may_publish(const auth_identity *id, const char *topic);
bool auth_may_subscribe(const auth_identity *id, const char *filter);
/* Per delivery: cheap (no allocation; "#" grants take a fast path). */
bool auth_may_read(const auth_identity *id, const char *topic);
/* Is the identity an operator of the room `topic`: an op rule matches it
 * and no deny rule does, or it is an admin? */
bool auth_may_op(const auth_identity *id, const char *topic);
/* Is `topic` a direct-message inbox `user/NAME/inbox` (NAME a valid name)?
 * Then NAME is copied to `name` (cap bytes). */
bool auth_inbox_of(const char *topic, char *name, size_t cap);
/* The private-topic rule alone, by presence name, for servers without
 * authentication (no identities; names are chosen, not proven): may the
 * client called `name` (NULL or "": no name) read `topic` / subscribe to
 * `filter`?  `user/X/...` is X's only; a filter naming `user/+`,
 * `user/#` or another's `user/X` is refused, while a wider one ("#",
 * "+/inbox") is allowed and the hub leaves out what it may not read. */
bool auth_private_may_read(const char *name, const char *topic);
bool auth_private_may_subscribe(const char *name, const char *filter);
/* Has the credential ended at `now` (no leeway here: a session ends on time)? */
bool auth_expired(const auth_identity *id, int64_t now);

/* An identity from parts (tests, tools): no rules yet. NULL on a bad name. */
auth_identity *auth_identity_new(const char *name, bool anonymous);
/* Add a rule; `%u` (a whole level) becomes the identity's name and `%c`
 * the client id (NULL: a rule using %c is dropped, as is one using %u for
 * an anonymous identity).  0, or AX_EINVAL for a bad filter, AX_ENOMEM. */
int auth_identity_add(auth_identity *id, const char *filter, int access, bool deny,
                      const char *client_id);
void auth_identity_free(auth_identity *id);

/* Filter algebra, exported for tests and the fuzz targets (both valid). */
/* Is every topic `f` matches also matched by some filter in `grant`? */
bool auth_filter_covered(const char *f, const char *const *grant, int n);
/* Is there a topic both filters match? */
bool auth_filter_overlap(const char *a, const char *b);
/* A user name: 1..AUTH_MAX_NAME bytes of UTF-8, no control characters,
 * no '/', '+' or '#' (so it can stand in a topic level; CVE-2017-7650),
 * no '%' (so a name put in for %u is never taken for a placeholder). */
bool auth_name_valid(const char *name);

/* ---- tokens (jwt.c) ----------------------------------------------------- */

typedef struct auth_secret {
    uint8_t *key;
    size_t len;
} auth_secret;

/* The file's bytes, less one trailing newline, are the key.  0, or -1
 * with `why` (unreadable, empty, shorter than AUTH_MIN_SECRET). */
int auth_secret_load(const char *path, auth_secret *s, char *why, size_t why_len);
void auth_secret_free(auth_secret *s);

/* Verified claims of a token. */
typedef struct auth_claims {
    char sub[AUTH_MAX_NAME + 1];
    int64_t exp, nbf; /* nbf 0: none */
    bool admin;
    int npub, nsub, nop;
    char *pub[AUTH_MAX_FILTERS], *subf[AUTH_MAX_FILTERS]; /* %u replaced; owned */
    char *op[AUTH_MAX_FILTERS];                           /* rooms it operates */
} auth_claims;

/* Check an HS256 token: size, shape, header (alg exactly HS256; none, RS*,
 * ES*, PS* refused), signature (constant time, before the claims are
 * read), claims (sub, exp, nbf with `leeway_s`, filters).  0, or -1 with
 * the reason in `why`. */
int auth_jwt_verify(const auth_secret *s, const char *tok, size_t len, int64_t now, int leeway_s,
                    auth_claims *c, char *why, size_t why_len);
void auth_claims_free(auth_claims *c);
/* A signed token for `c` (exp, nbf 0: left out); the caller frees it
 * with ax_free().  NULL with `why`. */
char *auth_jwt_sign(const auth_secret *s, const auth_claims *c, int64_t iat, char *why,
                    size_t why_len);

/* base64 (RFC 4648): `url` picks the URL alphabet without padding, else
 * the standard one with padding.  Decoding is strict (no stray characters,
 * no non-zero trailing bits); returns the length, or -1. */
long auth_b64_decode(const char *in, size_t len, bool url, uint8_t *out, size_t cap);
size_t auth_b64_encode(const uint8_t *in, size_t len, bool url, char *out, size_t cap);

/* ---- password files (passwd.c) ----------------------------------------- */

typedef struct auth_passwd auth_passwd;

/* Parse a mosquitto_passwd file: `user:$7$ITER$SALT$HASH` (PBKDF2-SHA512)
 * or `user:$6$SALT$HASH` (salted SHA-512); blank lines and '#' comments.
 * `name` labels errors ("FILE:LINE: ..."). */
auth_passwd *auth_passwd_parse(const char *buf, size_t len, const char *name, char *why,
                               size_t why_len);
auth_passwd *auth_passwd_load(const char *path, char *why, size_t why_len);
void auth_passwd_free(auth_passwd *p);
int auth_passwd_count(const auth_passwd *p);
/* Does `password` match `user`'s hash?  An unknown user costs the same. */
bool auth_passwd_check(const auth_passwd *p, const char *user, const char *password);
/* Has the file an entry for `user`? */
bool auth_passwd_has(const auth_passwd *p, const char *user);
/* What SCRAM-SHA-512 needs of `user`'s entry: its salt (at most 64
 * bytes), iterations, and SaltedPassword (a $7$ hash is exactly that:
 * PBKDF2-HMAC-SHA512 of the password).  False for an unknown user or a $6$
 * entry, with a made-up salt (stable per name) and a key nobody has. */
#define AUTH_SCRAM_KEY 64
bool auth_passwd_scram(const auth_passwd *p, const char *user, uint8_t *salt, size_t *salt_len,
                       uint32_t *iter, uint8_t key[AUTH_SCRAM_KEY]);

/* ---- SCRAM-SHA-512 (scram.c) -------------------------------------------- */

/* The server side of SCRAM (RFC 5802) with SHA-512, as Kafka and EMQX
 * name it "SCRAM-SHA-512", against the password file: the client proves
 * it knows the password without sending it, and the server proves it
 * holds the hash.  Used by MQTT 5 enhanced authentication (gw_mqtt.c).
 * Channel binding is not offered ("p=" is refused; "y" and "n" are
 * taken). */
#define AUTH_SCRAM_MECH "SCRAM-SHA-512"
#define AUTH_SCRAM_MAX 512 /* bytes of a client or server message */
typedef struct auth_scram auth_scram;
/* The client-first message in; the server-first message out (*out_len
 * bytes, at most AUTH_SCRAM_MAX).  NULL with *why when the message is not
 * SCRAM or password logins are off.  An unknown user gets an exchange
 * like any other and fails at its end, as a wrong password does. */
auth_scram *auth_scram_start(const auth *a, const void *client_first, size_t n,
                             char out[AUTH_SCRAM_MAX], size_t *out_len, const char **why);
/* The client-final message in: the identity (the ACL applied, as
 * auth_login()) and the server-final message out, or NULL with *why. */
auth_identity *auth_scram_finish(auth_scram *s, const auth *a, const void *client_final, size_t n,
                                 const char *client_id, char out[AUTH_SCRAM_MAX], size_t *out_len,
                                 const char **why);
/* The user name the exchange is for ("" before a valid client-first). */
const char *auth_scram_user(const auth_scram *s);
void auth_scram_free(auth_scram *s);

/* ---- ACL files (acl.c) -------------------------------------------------- */

typedef struct auth_acl auth_acl;

/* Parse mosquitto's acl_file: `user NAME`, `topic [read|write|readwrite|
 * deny] FILTER`, `pattern [...] FILTER` (%u, %c), '#' comments.  Topic
 * lines before the first `user` line are the anonymous section. */
auth_acl *auth_acl_parse(const char *buf, size_t len, const char *name, char *why, size_t why_len);
auth_acl *auth_acl_load(const char *path, char *why, size_t why_len);
void auth_acl_free(auth_acl *a);
/* Add `user`'s rules (NULL: the anonymous section) and every pattern to
 * `id`.  0 or AX_ENOMEM. */
int auth_acl_apply(const auth_acl *a, const char *user, const char *client_id, auth_identity *id);
/* Does the file have an anonymous section? */
bool auth_acl_has_anonymous(const auth_acl *a);

/* Read a whole small file (at most `max` bytes) into an ax_malloc'd,
 * NUL-terminated buffer.  NULL with `why`. */
char *auth_read_file(const char *path, size_t max, size_t *len, char *why, size_t why_len);

#endif
