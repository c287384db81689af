/* map.c: see map.h.  FNV-1a hashing; buckets double when the map holds as
 * many entries as buckets, so lookups stay O(1) however many topics exist. */
#include <string.h>

#include <axon/alloc.h>
#include <axon/error.h>

#include "map.h"

static size_t hash(const char *k, size_t n)
{
    size_t h = (size_t)1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

void hub_map_init(hub_map *m)
{
    m->b = NULL;
    m->nb = m->n = 0;
}

void hub_map_clear(hub_map *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        hub_map_ent *e = m->b[i];
        while (e) {
            hub_map_ent *next = e->next;
            ax_free(e);
            e = next;
        }
    }
    ax_free(m->b);
    hub_map_init(m);
}

static hub_map_ent **slot(const hub_map *m, const char *key, size_t klen, size_t h)
{
    hub_map_ent **p = &m->b[h & (m->nb - 1)];
    while (*p && !((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0))
        p = &(*p)->next;
    return p;
}

void *hub_map_get(const hub_map *m, const char *key, size_t klen)
{
    if (!m->nb) return NULL;
    hub_map_ent *e = *slot(m, key, klen, hash(key, klen));
    return e ? e->value : NULL;
}

static int grow(hub_map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 2; /* small at first: a subscriber often has one filter */
    hub_map_ent **b = ax_calloc(nb, sizeof(*b));
    if (!b) return AX_ENOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        hub_map_ent *e = m->b[i];
        while (e) {
            hub_map_ent *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    ax_free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int hub_map_put(hub_map *m, const char *key, size_t klen, void *value, hub_map_ent **out)
{
    if (m->n >= m->nb && grow(m) != 0) return AX_ENOMEM;
    size_t h = hash(key, klen);
    hub_map_ent **p = slot(m, key, klen, h);
    if (!*p) {
        hub_map_ent *e = ax_malloc(sizeof(*e) + klen + 1);
        if (!e) return AX_ENOMEM;
        e->next = NULL;
        e->hash = h;
        e->klen = klen;
        memcpy(e->key, key, klen);
        e->key[klen] = '\0';
        *p = e;
        m->n++;
    }
    (*p)->value = value;
    if (out) *out = *p;
    return 0;
}

void *hub_map_del(hub_map *m, const char *key, size_t klen)
{
    if (!m->nb) return NULL;
    hub_map_ent **p = slot(m, key, klen, hash(key, klen));
    hub_map_ent *e = *p;
    if (!e) return NULL;
    void *v = e->value;
    *p = e->next;
    ax_free(e);
    m->n--;
    return v;
}

void hub_map_each(const hub_map *m, void (*fn)(hub_map_ent *e, void *ud), void *ud)
{
    for (size_t i = 0; i < m->nb; i++)
        for (hub_map_ent *e = m->b[i]; e; e = e->next)
            fn(e, ud);
}
