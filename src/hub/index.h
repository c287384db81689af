/* index.h: an ordered index of names (an AVL tree whose nodes live inside
 * the caller's structs), so the hub can list and sweep topics in name
 * order from a cursor: O(log n) per step, with no walk over everything
 * and a cursor that stays valid whatever is added or removed meanwhile. */
#ifndef AXON_HUB_INDEX_H
#define AXON_HUB_INDEX_H

#include <stdbool.h>

typedef struct hub_inode {
    struct hub_inode *left, *right;
    const char *key; /* NUL-terminated, unique in the index; the caller's */
    int height;
} hub_inode;

/* Add `n` (its key set and not in the index yet). */
void hub_index_insert(hub_inode **root, hub_inode *n);
/* Take out the node whose key is n->key (if any). */
void hub_index_remove(hub_inode **root, const hub_inode *n);
/* The node with the smallest key above `key` (or equal, when `inclusive`),
 * or NULL. */
hub_inode *hub_index_after(hub_inode *root, const char *key, bool inclusive);

#endif
