/* acl.c: ACL files in mosquitto's acl_file format (mosquitto.conf(5)):
 *
 *   # comment
 *   topic read public/#          rules before any `user` line: anonymous
 *   user alice
 *   topic readwrite chat/#       alice's rules
 *   topic deny chat/ops          deny wins over any grant
 *   pattern write sensor/%u/data every user, %u the user, %c the client id
 *
 * The access word is optional (readwrite); what follows it, to the end of
 * the line, is the filter.  `deny` takes both reading and writing away.
 * A `user` section may appear more than once (its rules add up).
 * Differences from mosquitto, on purpose: a `topic` line that uses %u or
 * %c is an error (mosquitto would take it literally; write `pattern`), and
 * user names must be usable as a topic level (auth_name_valid()). */
#include <stdio.h>
#include <string.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"

typedef struct acl_entry {
    char *user; /* NULL: anonymous section (topic) or every user (pattern) */
    bool pattern;
    bool deny;
    uint8_t access;
    char *filter;
} acl_entry;

struct auth_acl {
    acl_entry *e;
    int n, cap;
    char **users; /* every `user` line's name; entries point into it */
    int nusers, users_cap;
    bool anon;
};

void auth_acl_free(auth_acl *a)
{
    if (!a) return;
    for (int i = 0; i < a->n; i++)
        ax_free(a->e[i].filter);
    for (int i = 0; i < a->nusers; i++)
        ax_free(a->users[i]);
    ax_free(a->users);
    ax_free(a->e);
    ax_free(a);
}

bool auth_acl_has_anonymous(const auth_acl *a)
{
    return a && a->anon;
}

static char *dup_str(const char *s)
{
    size_t l = strlen(s);
    char *d = ax_malloc(l + 1);
    if (d) memcpy(d, s, l + 1);
    return d;
}

/* Does the filter use %u / %c as a whole level, and are other uses absent?
 * Returns 1 (uses), 0 (no placeholder), -1 (a placeholder inside a level). */
static int placeholders(const char *f)
{
    int uses = 0;
    for (const char *p = f; *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        bool whole = l == 2 && p[0] == '%' && (p[1] == 'u' || p[1] == 'c');
        for (size_t i = 0; i + 1 < l && !whole; i++)
            if (p[i] == '%' && (p[i + 1] == 'u' || p[i + 1] == 'c')) return -1;
        uses |= whole;
        if (!e) break;
        p = e + 1;
    }
    return uses;
}

/* Is the filter valid once each placeholder is a name? */
static bool pattern_valid(const char *f)
{
    char buf[HUB_MAX_TOPIC * 2];
    size_t o = 0;
    for (const char *p = f; *p && o + 2 < sizeof buf; p++) {
        if (p[0] == '%' && (p[1] == 'u' || p[1] == 'c')) {
            buf[o++] = 'x';
            p++;
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return strlen(f) <= HUB_MAX_TOPIC && hub_filter_valid(buf, o);
}

static const struct {
    const char *word;
    uint8_t access;
    bool deny;
} ACCESS[] = {{"read", AUTH_READ, false},
              {"write", AUTH_WRITE, false},
              {"readwrite", AUTH_READWRITE, false},
              {"op", AUTH_READWRITE | AUTH_OP, false},
              {"deny", AUTH_READWRITE | AUTH_OP, true}};

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        return -1;                                                                                 \
    } while (0)

/* `rest` is what follows `topic` or `pattern`. */
static int parse_rule(auth_acl *a, char *rest, bool pattern, char *user, const char *name, int ln,
                      char *why, size_t why_len)
{
    acl_entry e = {.user = pattern ? NULL : user, .pattern = pattern, .access = AUTH_READWRITE};
    size_t wl = strcspn(rest, " \t");
    for (size_t k = 0; k < sizeof ACCESS / sizeof ACCESS[0]; k++) {
        if (strlen(ACCESS[k].word) == wl && strncmp(rest, ACCESS[k].word, wl) == 0) {
            e.access = ACCESS[k].access;
            e.deny = ACCESS[k].deny;
            rest += wl;
            rest += strspn(rest, " \t");
            break;
        }
    }
    if (!*rest) FAIL("%s:%d: missing topic filter", name, ln);
    int ph = placeholders(rest);
    if (ph < 0) FAIL("%s:%d: %%u and %%c must be a whole topic level", name, ln);
    if (ph > 0 && !pattern)
        FAIL("%s:%d: '%%u'/'%%c' in a topic line (use a pattern line)", name, ln);
    if (pattern ? !pattern_valid(rest) : !hub_filter_valid(rest, strlen(rest)))
        FAIL("%s:%d: '%.80s' is not a valid topic filter", name, ln, rest);
    if (a->n == AUTH_MAX_ENTRIES) FAIL("%s:%d: more than %d rules", name, ln, AUTH_MAX_ENTRIES);
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        acl_entry *ne = ax_realloc(a->e, (size_t)cap * sizeof(*ne));
        if (!ne) FAIL("out of memory");
        a->e = ne;
        a->cap = cap;
    }
    if (!(e.filter = dup_str(rest))) FAIL("out of memory");
    a->e[a->n++] = e;
    if (!pattern && !user) a->anon = true;
    return 0;
}

/* A `user` line's name, kept until the ACL is freed. */
static char *add_user(auth_acl *a, const char *nm)
{
    if (a->nusers == a->users_cap) {
        int cap = a->users_cap ? a->users_cap * 2 : 8;
        char **nu = ax_realloc(a->users, (size_t)cap * sizeof(*nu));
        if (!nu) return NULL;
        a->users = nu;
        a->users_cap = cap;
    }
    char *d = dup_str(nm);
    if (d) a->users[a->nusers++] = d;
    return d;
}

static int parse_line(auth_acl *a, char *line, char **user, const char *name, int ln, char *why,
                      size_t why_len)
{
    size_t kl = strcspn(line, " \t");
    char *rest = line + kl + strspn(line + kl, " \t");
    if (kl == 4 && strncmp(line, "user", 4) == 0) {
        if (!auth_name_valid(rest))
            FAIL("%s:%d: user name not usable (1-%d bytes, no '/', '+', '#', '%%')", name, ln,
                 AUTH_MAX_NAME);
        if (a->nusers == AUTH_MAX_ENTRIES) FAIL("%s:%d: too many users", name, ln);
        if (!(*user = add_user(a, rest))) FAIL("out of memory");
        return 0;
    }
    if (kl == 5 && strncmp(line, "topic", 5) == 0)
        return parse_rule(a, rest, false, *user, name, ln, why, why_len);
    if (kl == 7 && strncmp(line, "pattern", 7) == 0)
        return parse_rule(a, rest, true, NULL, name, ln, why, why_len);
    FAIL("%s:%d: unknown keyword '%.*s' (user, topic, pattern)", name, ln, (int)(kl > 32 ? 32 : kl),
         line);
}

auth_acl *auth_acl_parse(const char *buf, size_t len, const char *name, char *why, size_t why_len)
{
    auth_acl *a = ax_calloc(1, sizeof(*a));
    char *user = NULL;
    if (!a) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    char line[AUTH_MAX_LINE + 1];
    int ln = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - (buf + i)) : len - i;
        ln++;
        if (ll > AUTH_MAX_LINE) {
            snprintf(why, why_len, "%s:%d: line longer than %d bytes", name, ln, AUTH_MAX_LINE);
            goto fail;
        }
        memcpy(line, buf + i, ll);
        line[ll] = '\0';
        i += ll + 1;
        if (memchr(line, '\0', ll)) {
            snprintf(why, why_len, "%s:%d: NUL byte in line", name, ln);
            goto fail;
        }
        while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
            line[--ll] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#') continue;
        if (parse_line(a, p, &user, name, ln, why, why_len) != 0) goto fail;
    }
    return a;
fail:
    auth_acl_free(a);
    return NULL;
}

auth_acl *auth_acl_load(const char *path, char *why, size_t why_len)
{
    size_t len;
    char *buf = auth_read_file(path, (size_t)AUTH_MAX_ENTRIES * 128, &len, why, why_len);
    if (!buf) return NULL;
    auth_acl *a = auth_acl_parse(buf, len, path, why, why_len);
    ax_free(buf);
    return a;
}

int auth_acl_apply(const auth_acl *a, const char *user, const char *client_id, auth_identity *id)
{
    for (int i = 0; i < a->n; i++) {
        const acl_entry *e = &a->e[i];
        bool mine = e->pattern || (user ? e->user && strcmp(e->user, user) == 0 : !e->user);
        if (!mine) continue;
        /* An allowing pattern with a placeholder the identity has no value
         * for is dropped; a denying one denies for every value. */
        int rc = auth_identity_add(id, e->filter, e->access, e->deny, client_id);
        if (rc == AX_ENOMEM) return rc;
    }
    return 0;
}
