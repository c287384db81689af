/* fuzz_acl.c: libFuzzer target for the ACL file parser (src/hub/acl.c)
 * and the permission engine (src/hub/auth.c).
 *
 * The input is an ACL file, then a NUL, then lines of topics and filters
 * to ask about.  For the identities alice (client c1), bob and anonymous:
 *   - a topic (no wildcards) may be subscribed to exactly when it may be
 *     read: the filter check and the per-delivery check agree;
 *   - when a filter may be subscribed to, every topic made from it (each
 *     '+' a name, '#' cut off or a level or two) may be read: a granted
 *     subscription never delivers what reading forbids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/auth.h"
#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

/* A topic that `f` matches: '+' becomes `name`, '#' is cut (with its '/')
 * when `deep` is 0, else becomes `deep` levels of `name`. */
static bool instance(const char *f, const char *name, int deep, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = f; *p; p++) {
        const char *piece = NULL;
        char c[2] = {*p, 0};
        if ((*p == '+' || *p == '#') && o == 0 && name[0] == '$') return false;
        if (*p == '+')
            piece = name;
        else if (*p == '#') {
            if (!deep) {
                if (o > 0) o--; /* "a/#" matches "a" */
                break;
            }
            for (int k = 0; k < deep; k++) {
                size_t nl = strlen(name);
                if (o + nl + 2 >= cap) return false;
                if (k) out[o++] = '/';
                memcpy(out + o, name, nl);
                o += nl;
            }
            break;
        } else
            piece = c;
        size_t pl = strlen(piece);
        if (o + pl + 1 >= cap) return false;
        memcpy(out + o, piece, pl);
        o += pl;
    }
    out[o] = '\0';
    return o > 0 && hub_topic_valid(out, o);
}

static void ask(const auth_identity *id, const char *q)
{
    size_t ql = strlen(q);
    if (hub_topic_valid(q, ql)) CHECK(auth_may_subscribe(id, q) == auth_may_read(id, q));
    auth_may_publish(id, q);
    if (!hub_filter_valid(q, ql) || !auth_may_subscribe(id, q)) return;
    static const char *names[] = {"x", "alice", "user", "c1", "$x"};
    char t[600];
    for (int n = 0; n < 5; n++)
        for (int deep = 0; deep < 3; deep++)
            if (instance(q, names[n], deep, t, sizeof t)) CHECK(auth_may_read(id, t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t fl = nul ? (size_t)(nul - data) : size;
    char why[256];
    auth_acl *a = auth_acl_parse((const char *)data, fl, "fuzz", why, sizeof why);
    if (!a) return 0;
    auth_identity *ids[3] = {auth_identity_new("alice", false), auth_identity_new("bob", false),
                             auth_identity_new(NULL, true)};
    const char *clients[3] = {"c1", NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (ids[i]) auth_acl_apply(a, i == 2 ? NULL : ids[i]->name, clients[i], ids[i]);
    char q[300];
    for (size_t i = fl + 1; nul && i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t l = nl ? (size_t)(nl - (data + i)) : size - i;
        if (l < sizeof q) {
            memcpy(q, data + i, l);
            q[l] = '\0';
            if (strlen(q) == l)
                for (int k = 0; k < 3; k++)
                    if (ids[k]) ask(ids[k], q);
        }
        i += l + 1;
    }
    for (int i = 0; i < 3; i++)
        auth_identity_free(ids[i]);
    auth_acl_free(a);
    return 0;
}
