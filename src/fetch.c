/* SPDX-License-Identifier: MIT
 * fetch.c - bounded reads of https://, http:// and file:// URLs (libcurl for HTTP).
 */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define MAX_REDIRECTS 5L

static uv_once_t curl_once = UV_ONCE_INIT;

static void curl_init_once(void)
{
    /* Process-wide state, kept until exit; OpenSSL is already initialized by then. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        qs_panic("libcurl cannot be initialized");
}

void qs_fetch_global_init(void)
{
    uv_once(&curl_once, curl_init_once);
}

/* ---- file:// ------------------------------------------------------------------------------ */

/* Decodes %XX escapes of a file URL's path; false on a bad escape or an encoded NUL. */
static bool unescape_path(const char *in, char *out)
{
    for (; *in; in++) {
        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        int hi = qs_hex_value((unsigned char)in[1]);
        int lo = hi < 0 ? -1 : qs_hex_value((unsigned char)in[2]);
        if (lo < 0 || (hi == 0 && lo == 0))
            return false;
        *out++ = (char)(hi << 4 | lo);
        in += 2;
    }
    *out = '\0';
    return true;
}

static int fetch_file(const char *url, const qs_fetch_options *o, qs_buf *out, char **err)
{
    const char *path = url + 7;
    if (!strncasecmp(path, "localhost/", 10))
        path += 9;
    char *file = qs_xmalloc(strlen(path) + 1);
    if (!unescape_path(path, file)) {
        free(file);
        *err = qs_xstrdup("the file URL has an invalid escape");
        return -1;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = qs_xasprintf("cannot open %s: %s", file, strerror(errno));
        free(file);
        return -1;
    }
    free(file);
    qs_buf_reset(out);
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = qs_xasprintf("cannot read the file: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > o->max_bytes) {
            *err = qs_xasprintf("the document is larger than %zu bytes", o->max_bytes);
            close(fd);
            return -1;
        }
        qs_buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    return 0;
}

/* ---- http(s):// --------------------------------------------------------------------------- */

typedef struct transfer {
    qs_buf *out;
    size_t max;
    bool too_large;
    atomic_bool *abort;
} transfer;

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    transfer *t = data;
    size_t bytes = size * n;
    if (t->out->len + bytes > t->max) {
        t->too_large = true;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    qs_buf_append(t->out, p, bytes);
    return bytes;
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    QS_UNUSED(dltotal);
    QS_UNUSED(dlnow);
    QS_UNUSED(ultotal);
    QS_UNUSED(ulnow);
    transfer *t = data;
    return t->abort && atomic_load(t->abort) ? 1 : 0;
}

static int fetch_http(const char *url, const qs_fetch_options *o, qs_buf *out, char **err)
{
    qs_fetch_global_init();
    CURL *c = curl_easy_init();
    if (!c) {
        *err = qs_xstrdup("libcurl cannot make a transfer");
        return -1;
    }
    qs_buf_reset(out);
    transfer t = {.out = out, .max = o->max_bytes, .abort = o->abort};
    char curl_err[CURL_ERROR_SIZE] = "";
    bool https = !strncasecmp(url, "https://", 8);
    long timeout = (long)(o->timeout_ms ? o->timeout_ms : 10000);

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A redirect never leaves TLS once the URL asked for it. */
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, QS_MIN(timeout, 5000L));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Quicksilver/" QS_VERSION " (Mercure hub)");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);

    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);

    if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        *err = qs_xasprintf("the document is larger than %zu bytes", o->max_bytes);
        return -1;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        *err = qs_xstrdup("the transfer was cancelled");
        return -1;
    }
    if (rc != CURLE_OK) {
        *err = curl_err[0] ? qs_xasprintf("%s: %s", curl_easy_strerror(rc), curl_err)
                           : qs_xstrdup(curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        *err = qs_xasprintf("HTTP status %ld", status);
        return -1;
    }
    return 0;
}

int qs_fetch(const char *url, const qs_fetch_options *o, qs_buf *out, char **err)
{
    *err = NULL;
    if (!strncasecmp(url, "file://", 7))
        return fetch_file(url, o, out, err);
    if (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7))
        return fetch_http(url, o, out, err);
    *err = qs_xstrdup("unsupported URL scheme (https://, http:// or file://)");
    return -1;
}
