/* SPDX-License-Identifier: MIT
 * ui_assets.h - the files of the debugging UI, embedded in the binary.
 *
 * The table is generated at build time from the ui/ folder by cmake/embed_ui.cmake: one
 * entry per file, with its bytes, its content type and an entity tag (a prefix of its
 * SHA-256), so the UI needs nothing on disk and changes with the binary.
 */
#ifndef QS_UI_ASSETS_H
#define QS_UI_ASSETS_H

#include <stddef.h>

typedef struct qs_ui_asset {
    const char *name; /* file name in ui/, e.g. "app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, as the ETag header carries it */
} qs_ui_asset;

extern const qs_ui_asset qs_ui_assets[];
extern const size_t qs_ui_n_assets;

#endif
