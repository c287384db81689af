/* map.c: see map.h.  FNV-1a hashing; buckets double when the map holds as
 * many entries as buckets, so lookups stay O(1) however many topics exist. */
#include <string.h>

#include <axon/alloc.h>
#include <axon/error.h>

#include "map.h"

/* 64-bit FNV-1a, its low 32 bits kept (the bucket index uses those). */
static uint32_t hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return (uint32_t)h;
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

static hub_map_ent **slot(const hub_map *m, const char *key, size_t klen, uint32_t h)
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
    uint32_t h = hash(key, klen);
    hub_map_ent **p = slot(m, key, klen, h);
    if (!*p) {
        hub_map_ent *e = ax_malloc(sizeof(*e) + klen + 1);
        if (!e) return AX_ENOMEM;
        e->next = NULL;
        e->hash = h;
        e->klen = (uint32_t)klen;
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

/* ---- hub_lmap ------------------------------------------------------------------------ */

void hub_lmap_init(hub_lmap *m)
{
    m->b = NULL;
    m->nb = m->n = 0;
}

void hub_lmap_free(hub_lmap *m)
{
    ax_free(m->b);
    hub_lmap_init(m);
}

static hub_link **lslot(const hub_lmap *m, const char *key, size_t klen, uint32_t h)
{
    hub_link **p = &m->b[h & (m->nb - 1)];
    while (*p &&
           !((*p)->hash == h && (*p)->klen == klen && memcmp(HUB_LINK_KEY(*p), key, klen) == 0))
        p = &(*p)->next;
    return p;
}

hub_link *hub_lmap_get(const hub_lmap *m, const char *key, size_t klen)
{
    if (!m->nb) return NULL;
    return *lslot(m, key, klen, hash(key, klen));
}

static int lgrow(hub_lmap *m)
{
    uint32_t nb = m->nb ? m->nb * 2 : 1; /* a tree node often has one child */
    hub_link **b = ax_calloc(nb, sizeof(*b));
    if (!b) return AX_ENOMEM;
    for (uint32_t i = 0; i < m->nb; i++) {
        hub_link *l = m->b[i];
        while (l) {
            hub_link *next = l->next;
            l->next = b[l->hash & (nb - 1)];
            b[l->hash & (nb - 1)] = l;
            l = next;
        }
    }
    ax_free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int hub_lmap_add(hub_lmap *m, hub_link *l, const char *key, size_t klen)
{
    if (m->n >= 2 * (size_t)m->nb && lgrow(m) != 0) return AX_ENOMEM;
    l->hash = hash(key, klen);
    l->klen = (uint32_t)klen;
    memcpy(HUB_LINK_KEY(l), key, klen);
    HUB_LINK_KEY(l)[klen] = '\0';
    hub_link **p = &m->b[l->hash & (m->nb - 1)];
    l->next = *p;
    *p = l;
    m->n++;
    return 0;
}

void hub_lmap_del(hub_lmap *m, hub_link *l)
{
    hub_link **p = &m->b[l->hash & (m->nb - 1)];
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    m->n--;
}

void hub_lmap_each(const hub_lmap *m, void (*fn)(hub_link *l, void *ud), void *ud)
{
    for (uint32_t i = 0; i < m->nb; i++) {
        hub_link *l = m->b[i];
        while (l) {
            hub_link *next = l->next;
            fn(l, ud);
            l = next;
        }
    }
}
