/* auth.c: identities and the permission engine (see auth.h for the rules),
 * and the settings object that turns credentials into identities. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"

#define MAX_LV (HUB_MAX_LEVELS + 2)

/* ---- levels and the filter algebra ------------------------------------------ */

typedef struct lv {
    const char *p;
    size_t n;
} lv;

static int split(const char *s, lv *out)
{
    int n = 0;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (n == MAX_LV) return -1;
        out[n].p = s;
        out[n++].n = l;
        if (!e) return n;
        s = e + 1;
    }
}

static bool is(const lv *l, char c)
{
    return l->n == 1 && l->p[0] == c;
}

static bool same(const lv *a, const lv *b)
{
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* A literal level 0 starting with '$' is not matched by a leading wildcard. */
static bool dollar(const lv *l, int i)
{
    return i == 0 && l->n > 0 && l->p[0] == '$' && !is(l, '+') && !is(l, '#');
}

bool auth_filter_overlap(const char *a, const char *b)
{
    lv A[MAX_LV], B[MAX_LV];
    int an = split(a, A), bn = split(b, B);
    if (an < 0 || bn < 0) return false;
    for (int i = 0;; i++) {
        if (i == an && i == bn) return true;
        if (i == an) return is(&B[i], '#'); /* "x/#" matches "x" */
        if (i == bn) return is(&A[i], '#');
        bool aw = is(&A[i], '+') || is(&A[i], '#'), bw = is(&B[i], '+') || is(&B[i], '#');
        if ((aw && dollar(&B[i], i)) || (bw && dollar(&A[i], i))) return false;
        if (is(&A[i], '#') || is(&B[i], '#')) return true;
        if (!aw && !bw && !same(&A[i], &B[i])) return false;
    }
}

/* Union coverage, one level at a time.  At each level the filter takes one
 * branch: a literal (grants with that literal or '+' stay alive) or a
 * wildcard (a name no grant spells: only '+' grants stay alive, since a
 * literal grant cannot cover it).  A '#' grant alive at level i covers
 * everything below.  `alive` has one flag per grant. */
typedef struct cover {
    lv (*g)[MAX_LV]; /* each grant's levels */
    int *gn;
    bool *alive;
    int n;
} cover;

/* Is the topic of exactly i levels (the path so far) matched? */
static bool ends_here(const cover *c, int i)
{
    for (int k = 0; k < c->n; k++)
        if (c->alive[k] && (c->gn[k] == i || (c->gn[k] > i && is(&c->g[k][i], '#')))) return true;
    return false;
}

/* Level i is `f` (literal, '+', or '#' meaning any name): true when a '#'
 * grant covers the rest; otherwise narrow `alive`. */
static bool step(cover *c, const lv *f, int i, bool *any)
{
    bool wild = is(f, '+') || is(f, '#'), dol = dollar(f, i);
    *any = false;
    for (int k = 0; k < c->n; k++) {
        if (!c->alive[k]) continue;
        if (c->gn[k] <= i) {
            c->alive[k] = false;
            continue;
        }
        const lv *g = &c->g[k][i];
        if (is(g, '#') && !dol) return true;
        bool keep = (is(g, '+') && !dol) || (!wild && same(g, f));
        c->alive[k] = keep;
        *any |= keep;
    }
    return false;
}

static bool covered(cover *c, const lv *F, int fn)
{
    static const lv anyname = {"#", 1};
    for (int k = 0; k < c->n; k++)
        c->alive[k] = true;
    bool any;
    int i = 0;
    for (; i < fn && !is(&F[i], '#'); i++) {
        if (step(c, &F[i], i, &any)) return true;
        if (!any) return false;
    }
    if (i == fn) return ends_here(c, fn);
    /* F[i] is '#': the path itself (unless i == 0), then any depth. */
    for (; i < MAX_LV; i++) {
        if (i > 0 && !ends_here(c, i)) return false;
        if (step(c, &anyname, i, &any)) return true;
        if (!any) return false;
    }
    return false;
}

bool auth_filter_covered(const char *f, const char *const *grant, int n)
{
    lv F[MAX_LV];
    int fn = split(f, F);
    if (fn < 1 || n < 1) return false;
    cover c = {ax_malloc((size_t)n * sizeof(*c.g)), ax_malloc((size_t)n * sizeof(int)),
               ax_malloc((size_t)n * sizeof(bool)), 0};
    bool ok = false;
    if (!c.g || !c.gn || !c.alive) goto out; /* out of memory: refuse */
    for (int k = 0; k < n; k++) {
        int gn = split(grant[k], c.g[c.n]);
        if (gn > 0) c.gn[c.n++] = gn;
    }
    ok = covered(&c, F, fn);
out:
    ax_free(c.g);
    ax_free(c.gn);
    ax_free(c.alive);
    return ok;
}

bool auth_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > AUTH_MAX_NAME) return false;
    /* a topic level: no '/', and as a topic no wildcards, no control bytes,
     * UTF-8; no '%', so a name put in for %u is never read as %u or %c */
    return !memchr(name, '/', n) && !memchr(name, '%', n) && hub_topic_valid(name, n);
}

/* ---- identities --------------------------------------------------------------- */

auth_identity *auth_identity_new(const char *name, bool anonymous)
{
    if (!anonymous && !auth_name_valid(name)) return NULL;
    auth_identity *id = ax_calloc(1, sizeof(*id));
    if (!id) return NULL;
    id->anonymous = anonymous;
    if (!anonymous) memcpy(id->name, name, strlen(name) + 1);
    return id;
}

void auth_identity_free(auth_identity *id)
{
    if (!id) return;
    for (int i = 0; i < id->nrules; i++)
        ax_free(id->rules[i].filter);
    ax_free(id->rules);
    ax_free(id);
}

static bool has_placeholder(const char *p, size_t l)
{
    for (size_t i = 0; i + 1 < l; i++)
        if (p[i] == '%' && (p[i + 1] == 'u' || p[i + 1] == 'c')) return true;
    return false;
}

/* `filter` with whole-level %u / %c replaced into out.  A placeholder
 * without a usable value becomes `missing` (NULL: return -1, the rule is
 * dropped).  -2: a placeholder that is not a whole level, or too long. */
static int substitute(const char *filter, const char *user, const char *client, const char *missing,
                      char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = filter;;) {
        const char *e = strchr(p, '/'), *src = p;
        size_t l = e ? (size_t)(e - p) : strlen(p), sl = l;
        if (l == 2 && p[0] == '%' && (p[1] == 'u' || p[1] == 'c')) {
            src = p[1] == 'u' ? user : client;
            if (!src || !auth_name_valid(src)) src = missing;
            if (!src) return -1;
            sl = strlen(src);
        } else if (has_placeholder(p, l)) {
            return -2;
        }
        if (o + sl + 2 > cap) return -2;
        memcpy(out + o, src, sl);
        o += sl;
        if (!e) break;
        out[o++] = '/';
        p = e + 1;
    }
    out[o] = '\0';
    return 0;
}

static void refresh_flags(auth_identity *id)
{
    bool all = false, deny = false;
    for (int i = 0; i < id->nrules; i++) {
        const auth_rule *r = &id->rules[i];
        if (r->deny)
            deny = true;
        else if (r->hash_all && (r->access & AUTH_READ))
            all = true;
    }
    id->read_all = all && !deny;
    id->has_deny = deny;
}

int auth_identity_add(auth_identity *id, const char *filter, int access, bool deny,
                      const char *client_id)
{
    char buf[HUB_MAX_TOPIC + 1];
    /* A deny rule whose placeholder has no value denies for every value. */
    int rc = substitute(filter, id->anonymous ? NULL : id->name, client_id, deny ? "+" : NULL, buf,
                        sizeof buf);
    if (rc == -2) return AX_EINVAL;
    if (rc == -1) return 0; /* an allowing rule for a value we do not have: dropped */
    if (!hub_filter_valid(buf, strlen(buf)) || (access & (AUTH_READWRITE | AUTH_OP)) == 0)
        return AX_EINVAL;
    if (id->nrules >= AUTH_MAX_ENTRIES) return AX_EINVAL;
    auth_rule *nr = ax_realloc(id->rules, (size_t)(id->nrules + 1) * sizeof(*nr));
    if (!nr) return AX_ENOMEM;
    id->rules = nr;
    size_t bl = strlen(buf);
    char *f = ax_malloc(bl + 1);
    if (!f) return AX_ENOMEM;
    memcpy(f, buf, bl + 1);
    lv tmp[MAX_LV];
    nr[id->nrules++] = (auth_rule){.filter = f,
                                   .access = (uint8_t)(access & (AUTH_READWRITE | AUTH_OP)),
                                   .deny = deny,
                                   .nlevels = (uint8_t)split(f, tmp),
                                   .hash_all = strcmp(f, "#") == 0};
    refresh_flags(id);
    return 0;
}

bool auth_expired(const auth_identity *id, int64_t now)
{
    return id->exp != 0 && now >= id->exp;
}

/* ---- the checks ------------------------------------------------------------- */

/* `user/X` and below with X not the identity's own name. */
static bool private_topic_of_other(const auth_identity *id, const char *topic)
{
    if (strncmp(topic, "user/", 5) != 0 || id->admin) return false;
    const char *x = topic + 5, *e = strchr(x, '/');
    size_t xl = e ? (size_t)(e - x) : strlen(x);
    return id->anonymous || xl != strlen(id->name) || memcmp(x, id->name, xl) != 0;
}

static bool own_private(const auth_identity *id, const char *topic)
{
    if (id->anonymous || strncmp(topic, "user/", 5) != 0) return false;
    size_t nl = strlen(id->name);
    return strncmp(topic + 5, id->name, nl) == 0 && (topic[5 + nl] == '/' || !topic[5 + nl]);
}

static bool denied(const auth_identity *id, const char *topic, int bit)
{
    for (int i = 0; i < id->nrules; i++) {
        const auth_rule *r = &id->rules[i];
        if (r->deny && (r->access & bit) && hub_filter_match(r->filter, topic)) return true;
    }
    return false;
}

/* Some allowing rule with `bit` matches and no deny rule does. */
static bool topic_allowed(const auth_identity *id, const char *topic, int bit)
{
    bool ok = false;
    for (int i = 0; i < id->nrules; i++) {
        const auth_rule *r = &id->rules[i];
        if (!(r->access & bit)) continue;
        if (r->deny) {
            if (hub_filter_match(r->filter, topic)) return false;
        } else if (!ok && hub_filter_match(r->filter, topic)) {
            ok = true;
            if (!id->has_deny) return true;
        }
    }
    return ok;
}

bool auth_inbox_of(const char *topic, char *name, size_t cap)
{
    if (strncmp(topic, "user/", 5) != 0) return false;
    const char *x = topic + 5, *e = strchr(x, '/');
    if (!e || strcmp(e, "/inbox") != 0 || (size_t)(e - x) >= cap) return false;
    memcpy(name, x, (size_t)(e - x));
    name[e - x] = '\0';
    return auth_name_valid(name);
}

bool auth_may_publish(const auth_identity *id, const char *topic)
{
    if (!id || !hub_topic_valid(topic, strlen(topic))) return false;
    return topic_allowed(id, topic, AUTH_WRITE);
}

bool auth_private_may_read(const char *name, const char *topic)
{
    if (topic[0] != 'u' || strncmp(topic, "user/", 5) != 0) return true;
    size_t nl = name ? strlen(name) : 0;
    return nl && strncmp(topic + 5, name, nl) == 0 && (topic[5 + nl] == '/' || !topic[5 + nl]);
}

bool auth_private_may_subscribe(const char *name, const char *filter)
{
    if (strncmp(filter, "user", 4) != 0 || (filter[4] != '/' && filter[4])) return true;
    if (!filter[4]) return true; /* the topic "user" itself is nobody's */
    const char *x = filter + 5;
    size_t xl = strcspn(x, "/"), nl = name ? strlen(name) : 0;
    return nl && xl == nl && strncmp(x, name, nl) == 0;
}

bool auth_may_op(const auth_identity *id, const char *topic)
{
    if (!id || !hub_topic_valid(topic, strlen(topic))) return false;
    return id->admin ? !denied(id, topic, AUTH_READWRITE) : topic_allowed(id, topic, AUTH_OP);
}

bool auth_may_read(const auth_identity *id, const char *topic)
{
    if (!id) return false;
    if (topic[0] == 'u' && private_topic_of_other(id, topic)) return false;
    if (id->read_all && topic[0] != '$') return true;
    if (topic[0] == 'u' && own_private(id, topic)) /* unless a deny rule says otherwise */
        return !id->has_deny || !denied(id, topic, AUTH_READ);
    return topic_allowed(id, topic, AUTH_READ);
}

/* Could `f` match a private topic of someone else? */
static bool filter_reaches_others(const auth_identity *id, const lv *F, int fn)
{
    if (id->admin) return false;
    if (is(&F[0], '#')) return true;
    if (!is(&F[0], '+') && !(F[0].n == 4 && memcmp(F[0].p, "user", 4) == 0)) return false;
    if (fn < 2) return false;
    if (is(&F[1], '+') || is(&F[1], '#') || id->anonymous) return true;
    return F[1].n != strlen(id->name) || memcmp(F[1].p, id->name, F[1].n) != 0;
}

bool auth_may_subscribe(const auth_identity *id, const char *filter)
{
    if (!id || !hub_filter_valid(filter, strlen(filter))) return false;
    lv F[MAX_LV];
    int fn = split(filter, F);
    if (fn < 1 || filter_reaches_others(id, F, fn)) return false;
    for (int i = 0; i < id->nrules; i++) {
        const auth_rule *r = &id->rules[i];
        if (r->deny && (r->access & AUTH_READ) && auth_filter_overlap(r->filter, filter))
            return false;
    }
    if (id->read_all && filter[0] != '$') return true;
    /* Only grants that overlap the filter can help cover it. */
    const char **grant = ax_malloc((size_t)(id->nrules + 1) * sizeof(*grant));
    if (!grant) return false;
    int n = 0;
    char own[AUTH_MAX_NAME + 8];
    if (!id->anonymous) {
        snprintf(own, sizeof own, "user/%s/#", id->name);
        grant[n++] = own;
    }
    for (int i = 0; i < id->nrules; i++) {
        const auth_rule *r = &id->rules[i];
        if (!r->deny && (r->access & AUTH_READ) && auth_filter_overlap(r->filter, filter))
            grant[n++] = r->filter;
    }
    bool ok = auth_filter_covered(filter, grant, n);
    ax_free(grant);
    return ok;
}

/* ---- files ------------------------------------------------------------------ */

char *auth_read_file(const char *path, size_t max, size_t *len, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > max) {
        snprintf(why, why_len, "%s is too large (%lld bytes; at most %zu)", path,
                 (long long)st.st_size, max);
        close(fd);
        return NULL;
    }
    char *buf = ax_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r == -1 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        snprintf(why, why_len, "cannot read %s", path);
        ax_free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* ---- the settings object ------------------------------------------------------ */

struct auth {
    auth_secret secret; /* len 0: no tokens */
    auth_passwd *passwd;
    auth_acl *acl;
    int anonymous;
    char **anon_filters;
    int nanon;
    int leeway;
};

void auth_free(auth *a)
{
    if (!a) return;
    auth_secret_free(&a->secret);
    auth_passwd_free(a->passwd);
    auth_acl_free(a->acl);
    for (int i = 0; i < a->nanon; i++)
        ax_free(a->anon_filters[i]);
    ax_free(a->anon_filters);
    ax_free(a);
}

static int copy_anon(auth *a, const auth_opts *o, char *why, size_t why_len)
{
    if (o->nanon_filters <= 0) return 0;
    if (o->nanon_filters > AUTH_MAX_FILTERS) {
        snprintf(why, why_len, "too many anonymous filters (at most %d)", AUTH_MAX_FILTERS);
        return -1;
    }
    a->anon_filters = ax_calloc((size_t)o->nanon_filters, sizeof(char *));
    if (!a->anon_filters) return -1;
    for (int i = 0; i < o->nanon_filters; i++) {
        const char *f = o->anon_filters[i];
        if (!hub_filter_valid(f, strlen(f))) {
            snprintf(why, why_len, "anonymous filter '%s' is not a valid topic filter", f);
            return -1;
        }
        size_t l = strlen(f);
        if (!(a->anon_filters[a->nanon] = ax_malloc(l + 1))) return -1;
        memcpy(a->anon_filters[a->nanon++], f, l + 1);
    }
    return 0;
}

auth *auth_new(const auth_opts *o, char *why, size_t why_len)
{
    auth *a = ax_calloc(1, sizeof(*a));
    if (!a) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    a->anonymous = o->anonymous;
    a->leeway = o->leeway_s < 0 ? 0 : o->leeway_s ? o->leeway_s : AUTH_DEFAULT_LEEWAY;
    if (o->secret_file && auth_secret_load(o->secret_file, &a->secret, why, why_len) != 0)
        goto fail;
    if (o->password_file && !(a->passwd = auth_passwd_load(o->password_file, why, why_len)))
        goto fail;
    if (o->acl_file && !(a->acl = auth_acl_load(o->acl_file, why, why_len))) goto fail;
    if (copy_anon(a, o, why, why_len) != 0) goto fail;
    return a;
fail:
    auth_free(a);
    return NULL;
}

bool auth_configured(const auth *a)
{
    return a && (a->secret.len > 0 || a->passwd);
}

auth_identity *auth_token(const auth *a, const char *token, size_t len, int64_t now, char *why,
                          size_t why_len)
{
    if (!a || a->secret.len == 0) {
        snprintf(why, why_len, "tokens are not enabled (no auth secret)");
        return NULL;
    }
    auth_claims c;
    if (auth_jwt_verify(&a->secret, token, len, now, a->leeway, &c, why, why_len) != 0) return NULL;
    auth_identity *id = auth_identity_new(c.sub, false);
    if (!id) goto fail;
    id->exp = c.exp;
    id->admin = c.admin;
    for (int i = 0; i < c.npub; i++)
        if (auth_identity_add(id, c.pub[i], AUTH_WRITE, false, NULL) != 0) goto fail;
    for (int i = 0; i < c.nsub; i++)
        if (auth_identity_add(id, c.subf[i], AUTH_READ, false, NULL) != 0) goto fail;
    for (int i = 0; i < c.nop; i++)
        if (auth_identity_add(id, c.op[i], AUTH_OP, false, NULL) != 0) goto fail;
    auth_claims_free(&c);
    return id;
fail:
    snprintf(why, why_len, "out of memory");
    auth_identity_free(id);
    auth_claims_free(&c);
    return NULL;
}

auth_identity *auth_login(const auth *a, const char *user, const char *password,
                          const char *client_id, char *why, size_t why_len)
{
    if (!a || !a->passwd) {
        snprintf(why, why_len, "password logins are not enabled (no password file)");
        return NULL;
    }
    if (!auth_passwd_check(a->passwd, user, password)) {
        snprintf(why, why_len, "bad user name or password");
        return NULL;
    }
    return auth_user(a, user, client_id, why, why_len);
}

const auth_passwd *auth_passwds(const auth *a)
{
    return a ? a->passwd : NULL;
}

auth_identity *auth_user(const auth *a, const char *user, const char *client_id, char *why,
                         size_t why_len)
{
    auth_identity *id = auth_identity_new(user, false);
    if (!id) {
        snprintf(why, why_len, "user name not usable");
        return NULL;
    }
    int rc = a->acl ? auth_acl_apply(a->acl, user, client_id, id)
                    : auth_identity_add(id, "#", AUTH_READWRITE, false, NULL);
    if (rc != 0) {
        snprintf(why, why_len, "out of memory");
        auth_identity_free(id);
        return NULL;
    }
    return id;
}

auth_identity *auth_anonymous(const auth *a, char *why, size_t why_len)
{
    if (!a || a->anonymous == AUTH_ANON_NONE) {
        snprintf(why, why_len, "anonymous access is off");
        return NULL;
    }
    auth_identity *id = auth_identity_new(NULL, true);
    if (!id) goto nomem;
    int access = a->anonymous == AUTH_ANON_READWRITE ? AUTH_READWRITE : AUTH_READ, rc = 0;
    if (a->nanon > 0) {
        for (int i = 0; i < a->nanon && rc == 0; i++)
            rc = auth_identity_add(id, a->anon_filters[i], access, false, NULL);
    } else if (a->acl && auth_acl_has_anonymous(a->acl)) {
        rc = auth_acl_apply(a->acl, NULL, NULL, id);
        for (int i = 0; i < id->nrules; i++) /* --anonymous read: never more than reading */
            if (!id->rules[i].deny) id->rules[i].access &= (uint8_t)access;
    } else {
        rc = auth_identity_add(id, "#", access, false, NULL);
    }
    if (rc != 0) goto nomem;
    refresh_flags(id);
    return id;
nomem:
    snprintf(why, why_len, "out of memory");
    auth_identity_free(id);
    return NULL;
}
