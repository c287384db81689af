/* map.h: string-keyed hash maps.
 *
 * hub_map: chained, power-of-two buckets, grows at load 1.  Keys are
 * copied into an entry it allocates; values are the caller's pointers.
 *
 * hub_lmap: the same without an allocation per entry, for objects there
 * are many of (a tree node, an MQTT session): the object embeds a
 * hub_link as its last member, with room for the key and its NUL right
 * after it (allocate sizeof(object) + klen + 1), and is found back from
 * its link with HUB_LINK_OF.  Buckets grow at load 2 (half the bucket
 * bytes of load 1 per entry; chains stay short and compare hashes first). */
#ifndef AXON_HUB_MAP_H
#define AXON_HUB_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_map_ent {
    struct hub_map_ent *next;
    uint32_t hash, klen;
    void *value;
    char key[]; /* NUL-terminated */
} hub_map_ent;

typedef struct hub_map {
    hub_map_ent **b;
    size_t nb, n;
} hub_map;

void hub_map_init(hub_map *m);
/* Free the entries (not the values). */
void hub_map_clear(hub_map *m);
void *hub_map_get(const hub_map *m, const char *key, size_t klen);
/* Insert or replace; 0 or AX_ENOMEM.  *out (may be NULL) gets the entry,
 * whose `key` lives as long as the entry does. */
int hub_map_put(hub_map *m, const char *key, size_t klen, void *value, hub_map_ent **out);
/* Remove; returns the value or NULL. */
void *hub_map_del(hub_map *m, const char *key, size_t klen);
/* Visit every entry; `fn` must not change the map. */
void hub_map_each(const hub_map *m, void (*fn)(hub_map_ent *e, void *ud), void *ud);

typedef struct hub_link {
    struct hub_link *next;
    uint32_t hash, klen;
    /* the key follows: klen bytes and a NUL */
} hub_link;

typedef struct hub_lmap {
    hub_link **b;
    uint32_t nb, n;
} hub_lmap;

/* The key of a linked object; the object of a link. */
#define HUB_LINK_KEY(l) ((char *)((hub_link *)(l) + 1))
#define HUB_LINK_OF(l, type, member) ((type *)(void *)((char *)(l)-offsetof(type, member)))

void hub_lmap_init(hub_lmap *m);
/* Free the buckets (the objects are the caller's). */
void hub_lmap_free(hub_lmap *m);
hub_link *hub_lmap_get(const hub_lmap *m, const char *key, size_t klen);
/* Add `l`, whose key is not in the map: the key is copied into the bytes
 * after it.  0 or AX_ENOMEM (then `l` is not in the map). */
int hub_lmap_add(hub_lmap *m, hub_link *l, const char *key, size_t klen);
/* Remove `l` (in the map). */
void hub_lmap_del(hub_lmap *m, hub_link *l);
/* Visit every link; `fn` may free the link it is given, nothing else. */
void hub_lmap_each(const hub_lmap *m, void (*fn)(hub_link *l, void *ud), void *ud);

#endif
