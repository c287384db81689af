/* index.c: see index.h.  A plain AVL tree: recursive insert and remove
 * rebalance on the way back up; the height stays under 1.44 log2(n). */
#include <string.h>

#include "index.h"

static int height(const hub_inode *n)
{
    return n ? n->height : 0;
}

static void fix(hub_inode *n)
{
    int l = height(n->left), r = height(n->right);
    n->height = (l > r ? l : r) + 1;
}

static hub_inode *rotate_right(hub_inode *n)
{
    hub_inode *l = n->left;
    n->left = l->right;
    l->right = n;
    fix(n);
    fix(l);
    return l;
}

static hub_inode *rotate_left(hub_inode *n)
{
    hub_inode *r = n->right;
    n->right = r->left;
    r->left = n;
    fix(n);
    fix(r);
    return r;
}

static hub_inode *balance(hub_inode *n)
{
    fix(n);
    int b = height(n->left) - height(n->right);
    if (b > 1) {
        if (height(n->left->left) < height(n->left->right)) n->left = rotate_left(n->left);
        return rotate_right(n);
    }
    if (b < -1) {
        if (height(n->right->right) < height(n->right->left)) n->right = rotate_right(n->right);
        return rotate_left(n);
    }
    return n;
}

static hub_inode *insert(hub_inode *t, hub_inode *n)
{
    if (!t) return n;
    if (strcmp(n->key, t->key) < 0)
        t->left = insert(t->left, n);
    else
        t->right = insert(t->right, n);
    return balance(t);
}

void hub_index_insert(hub_inode **root, hub_inode *n)
{
    n->left = n->right = NULL;
    n->height = 1;
    *root = insert(*root, n);
}

/* Detach the smallest node of `t` into *min; returns the rest. */
static hub_inode *remove_min(hub_inode *t, hub_inode **min)
{
    if (!t->left) {
        *min = t;
        return t->right;
    }
    t->left = remove_min(t->left, min);
    return balance(t);
}

static hub_inode *remove_key(hub_inode *t, const char *key)
{
    if (!t) return NULL;
    int c = strcmp(key, t->key);
    if (c < 0) {
        t->left = remove_key(t->left, key);
    } else if (c > 0) {
        t->right = remove_key(t->right, key);
    } else {
        if (!t->right) return t->left;
        hub_inode *m;
        hub_inode *rest = remove_min(t->right, &m);
        m->left = t->left;
        m->right = rest;
        t = m;
    }
    return balance(t);
}

void hub_index_remove(hub_inode **root, const hub_inode *n)
{
    *root = remove_key(*root, n->key);
}

hub_inode *hub_index_after(hub_inode *root, const char *key, bool inclusive)
{
    hub_inode *best = NULL;
    while (root) {
        int c = strcmp(root->key, key);
        if (c > 0 || (c == 0 && inclusive)) {
            best = root;
            root = root->left;
        } else {
            root = root->right;
        }
    }
    return best;
}
