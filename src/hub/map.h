/* map.h: a string-keyed hash map (chained, power-of-two buckets, grows at
 * load 1).  Keys are copied; values are the caller's pointers. */
#ifndef AXON_HUB_MAP_H
#define AXON_HUB_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hub_map_ent {
    struct hub_map_ent *next;
    size_t hash, klen;
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

#endif
