/* SPDX-License-Identifier: MIT
 * ui.c - the debugging UI's files, and the way to the demo endpoint.
 */
#include "ui.h"

#include "ctx.h"
#include "demo.h"
#include "endpoint.h"
#include "ui_assets.h"

static void redirect(qs_http_req *req, const char *location)
{
    qs_http_response r;
    qs_http_response_init(&r, 301);
    qs_endpoint_headers(req, &r.headers);
    qs_http_response_header(&r, "Location", location);
    qs_http_respond(req, &r);
}

static const qs_ui_asset *find_asset(qs_slice name)
{
    for (size_t i = 0; i < qs_ui_n_assets; i++)
        if (qs_slice_eq(name, qs_ui_assets[i].name))
            return &qs_ui_assets[i];
    return NULL;
}

/* True when If-None-Match names the entity tag (a list, or "*"). */
static bool not_modified(const qs_http_req *req, const char *etag)
{
    const qs_header *h = qs_http_find(req, "If-None-Match");
    if (!h)
        return false;
    size_t n = strlen(etag);
    for (size_t i = 0; i < h->value.n; i++) {
        if (h->value.p[i] == '*')
            return true;
        if (h->value.n - i >= n && memcmp(h->value.p + i, etag, n) == 0)
            return true;
    }
    return false;
}

void qs_ui_handle(qs_http_req *req)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    if (!cfg->ui && !cfg->demo) {
        qs_endpoint_error(req, 404, "404 page not found");
        return;
    }
    static const char demo_path[] = QS_DEMO_PATH;
    if (cfg->demo && req->path.n >= sizeof(demo_path) - 1 &&
        memcmp(req->path.p, demo_path, sizeof(demo_path) - 1) == 0) {
        qs_demo_handle(req);
        return;
    }
    if (!qs_slice_eq(req->method, "GET") && !qs_slice_eq(req->method, "HEAD")) {
        qs_endpoint_method_not_allowed(req, "GET, HEAD");
        return;
    }
    if (qs_slice_eq(req->path, QS_UI_PATH)) {
        redirect(req, QS_UI_PATH "/");
        return;
    }
    qs_slice name = {req->path.p + sizeof(QS_UI_PATH), req->path.n - sizeof(QS_UI_PATH)};
    if (qs_slice_eq(name, "index.html")) { /* the page's one address is the folder's */
        redirect(req, "./");
        return;
    }
    const qs_ui_asset *a = find_asset(name.n ? name : (qs_slice)QS_SLICE_LIT("index.html"));
    if (!a) {
        qs_endpoint_error(req, 404, "404 page not found");
        return;
    }
    qs_http_response r;
    qs_http_response_init(&r, not_modified(req, a->etag) ? 304 : 200);
    qs_endpoint_headers(req, &r.headers);
    qs_http_response_header(&r, "ETag", a->etag);
    /* Revalidated on every load: a new binary brings a new UI at once. */
    qs_http_response_header(&r, "Cache-Control", "no-cache");
    if (r.status == 200) {
        r.content_type = a->content_type;
        qs_buf_append(&r.body, a->data, a->len);
    }
    qs_http_respond(req, &r);
}
