/* web_assets.h: the files of web/, compiled in (cmake/embed.cmake). */
#ifndef AXON_HUB_WEB_ASSETS_H
#define AXON_HUB_WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *name; /* "index.html" */
    const unsigned char *data;
    size_t len;
} web_asset;

extern const web_asset web_assets[];
extern const size_t web_assets_count;

#endif
