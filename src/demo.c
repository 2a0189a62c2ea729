/* SPDX-License-Identifier: MIT
 * demo.c - the reference's demo endpoint: a body, a content type, discovery links and the
 * authorization cookie, all from the request.
 */
#include "demo.h"

#include <strings.h>

#include "ctx.h"
#include "endpoint.h"

#define DEFAULT_COOKIE_NAME "mercureAuthorization"
#define HUB_LINK "</.well-known/mercure>; rel=\"mercure\""
#define SNIFF_LEN 512

/* Go's built-in extension table (mime.TypeByExtension without a system table), plus the
 * .jsonld type the reference's demo adds. Sorted, compared without case. */
static const struct {
    const char *ext, *type;
} types[] = {
    {".ai", "application/postscript"},
    {".apk", "application/vnd.android.package-archive"},
    {".apng", "image/apng"},
    {".avif", "image/avif"},
    {".bin", "application/octet-stream"},
    {".bmp", "image/bmp"},
    {".com", "application/octet-stream"},
    {".css", "text/css; charset=utf-8"},
    {".csv", "text/csv; charset=utf-8"},
    {".doc", "application/msword"},
    {".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {".ehtml", "text/html; charset=utf-8"},
    {".eml", "message/rfc822"},
    {".eps", "application/postscript"},
    {".exe", "application/octet-stream"},
    {".flac", "audio/flac"},
    {".gif", "image/gif"},
    {".gz", "application/gzip"},
    {".htm", "text/html; charset=utf-8"},
    {".html", "text/html; charset=utf-8"},
    {".ico", "image/vnd.microsoft.icon"},
    {".ics", "text/calendar; charset=utf-8"},
    {".jfif", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".jpg", "image/jpeg"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".jsonld", "application/ld+json"},
    {".m4a", "audio/mp4"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".mp3", "audio/mpeg"},
    {".mp4", "video/mp4"},
    {".oga", "audio/ogg"},
    {".ogg", "audio/ogg"},
    {".ogv", "video/ogg"},
    {".opus", "audio/ogg"},
    {".pdf", "application/pdf"},
    {".pjp", "image/jpeg"},
    {".pjpeg", "image/jpeg"},
    {".png", "image/png"},
    {".ppt", "application/vnd.ms-powerpoint"},
    {".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {".ps", "application/postscript"},
    {".rdf", "application/rdf+xml"},
    {".rtf", "application/rtf"},
    {".shtml", "text/html; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".text", "text/plain; charset=utf-8"},
    {".tif", "image/tiff"},
    {".tiff", "image/tiff"},
    {".txt", "text/plain; charset=utf-8"},
    {".vtt", "text/vtt; charset=utf-8"},
    {".wasm", "application/wasm"},
    {".wav", "audio/wav"},
    {".webm", "audio/webm"},
    {".webp", "image/webp"},
    {".xbl", "text/xml; charset=utf-8"},
    {".xbm", "image/x-xbitmap"},
    {".xht", "application/xhtml+xml"},
    {".xhtml", "application/xhtml+xml"},
    {".xls", "application/vnd.ms-excel"},
    {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {".xml", "text/xml; charset=utf-8"},
    {".xsl", "text/xml; charset=utf-8"},
    {".zip", "application/zip"},
};

const char *qs_demo_type_by_extension(const char *path, size_t len)
{
    /* filepath.Ext: from the last dot of the last path element. */
    size_t i = len;
    while (i > 0 && path[i - 1] != '/' && path[i - 1] != '.')
        i--;
    if (i == 0 || path[i - 1] != '.')
        return NULL;
    const char *ext = path + i - 1;
    size_t ext_len = len - (i - 1);
    for (size_t k = 0; k < QS_ARRAY_LEN(types); k++)
        if (strlen(types[k].ext) == ext_len && !strncasecmp(types[k].ext, ext, ext_len))
            return types[k].type;
    return NULL;
}

/* ---- sniffing ----------------------------------------------------------------------------- */

static bool is_ws(unsigned char c)
{
    return c == '\t' || c == '\n' || c == '\x0c' || c == '\r' || c == ' ';
}

/* An HTML signature: the tag without case, then a space or '>'. */
static bool html_sig(const unsigned char *p, size_t n, const char *sig)
{
    size_t k = strlen(sig);
    if (n < k + 1)
        return false;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = p[i];
        if (sig[i] >= 'A' && sig[i] <= 'Z')
            c &= 0xDF;
        if (c != (unsigned char)sig[i])
            return false;
    }
    return p[k] == ' ' || p[k] == '>';
}

static bool prefix(const unsigned char *p, size_t n, const char *sig, size_t k)
{
    return n >= k && memcmp(p, sig, k) == 0;
}

const char *qs_demo_sniff(const char *body, size_t len)
{
    static const char *const html[] = {"<!DOCTYPE HTML",
                                       "<HTML",
                                       "<HEAD",
                                       "<SCRIPT",
                                       "<IFRAME",
                                       "<H1",
                                       "<DIV",
                                       "<FONT",
                                       "<TABLE",
                                       "<A",
                                       "<STYLE",
                                       "<TITLE",
                                       "<B",
                                       "<BODY",
                                       "<BR",
                                       "<P",
                                       "<!--"};
    const unsigned char *p = (const unsigned char *)body;
    size_t n = QS_MIN(len, (size_t)SNIFF_LEN), ws = 0;
    while (ws < n && is_ws(p[ws]))
        ws++;
    for (size_t i = 0; i < QS_ARRAY_LEN(html); i++)
        if (html_sig(p + ws, n - ws, html[i]))
            return "text/html; charset=utf-8";
    if (prefix(p + ws, n - ws, "<?xml", 5))
        return "text/xml; charset=utf-8";
    if (prefix(p, n, "%PDF-", 5))
        return "application/pdf";
    if (prefix(p, n, "%!PS-Adobe-", 11))
        return "application/postscript";
    if (prefix(p, n, "\xFE\xFF", 2))
        return "text/plain; charset=utf-16be";
    if (prefix(p, n, "\xFF\xFE", 2))
        return "text/plain; charset=utf-16le";
    if (prefix(p, n, "\xEF\xBB\xBF", 3))
        return "text/plain; charset=utf-8";
    for (size_t i = ws; i < n; i++) {
        unsigned char b = p[i];
        if (b <= 0x08 || b == 0x0B || (b >= 0x0E && b <= 0x1A) || (b >= 0x1C && b <= 0x1F))
            return "application/octet-stream";
    }
    return "text/plain; charset=utf-8";
}

/* ---- the cookie --------------------------------------------------------------------------- */

void qs_demo_cookie(qs_buf *out, const char *name, const char *value, size_t value_len,
                    bool http_only)
{
    /* Go drops the bytes a cookie value cannot hold, and quotes one with a space or comma. */
    qs_buf v = QS_BUF_INIT;
    bool quote = false;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char b = (unsigned char)value[i];
        if (b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\')
            continue;
        quote |= b == ' ' || b == ',';
        qs_buf_append_char(&v, (char)b);
    }
    qs_buf_appendf(out, "%s=%s%s%s; Path=/.well-known/mercure", name, quote ? "\"" : "",
                   qs_buf_cstr(&v), quote ? "\"" : "");
    if (!value_len) /* no token: remove any cookie a previous visit set */
        qs_buf_append_str(out, "; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    if (http_only)
        qs_buf_append_str(out, "; HttpOnly");
    qs_buf_append_str(out, "; SameSite=Strict");
    qs_buf_free(&v);
}

/* ---- the endpoint ------------------------------------------------------------------------- */

static const qs_form_pair *first(const qs_form *q, const char *name)
{
    return qs_form_has(q, name) ? qs_form_get(q, name) : NULL;
}

void qs_demo_handle(qs_http_req *req)
{
    if (!qs_slice_eq(req->method, "GET") && !qs_slice_eq(req->method, "HEAD")) {
        qs_endpoint_method_not_allowed(req, "GET, HEAD");
        return;
    }
    const qs_config *cfg = req->ctx->hub->cfg;
    const qs_form *q = qs_http_query(req);
    const qs_form_pair *body = first(q, "body"), *jwt = first(q, "jwt");

    qs_http_response r;
    qs_http_response_init(&r, 200);
    qs_endpoint_headers(req, &r.headers);
    /* Several Link headers on purpose: clients must handle discovery through any of them. */
    if (strcmp(cfg->cookie_name, DEFAULT_COOKIE_NAME) == 0)
        qs_buf_append_str(&r.headers, "Link: " HUB_LINK "\r\n");
    else
        qs_buf_appendf(&r.headers, "Link: " HUB_LINK "; cookie-name=\"%s\"\r\n", cfg->cookie_name);
    qs_buf_append_str(&r.headers, "Link: <");
    qs_buf_append(&r.headers, req->target.p, req->target.n);
    qs_buf_append_str(&r.headers, ">; rel=\"self\"\r\n");

    qs_buf_append_str(&r.headers, "Set-Cookie: ");
    qs_demo_cookie(&r.headers, cfg->cookie_name, jwt ? jwt->value : "", jwt ? jwt->value_len : 0,
                   req->secure);
    qs_buf_append_str(&r.headers, "\r\n");

    if (body)
        qs_buf_append(&r.body, body->value, body->value_len);
    r.content_type = qs_demo_type_by_extension(req->path.p, req->path.n);
    if (!r.content_type && r.body.len)
        r.content_type = qs_demo_sniff(r.body.p, r.body.len);
    qs_http_respond(req, &r);
}
