/* SPDX-License-Identifier: MIT
 * http1_parse.c - HTTP/1.x request-head parser and chunked-body decoder.
 *
 * The head parser works in two steps: a cheap, resumable search for the empty line that ends
 * the head, then one strict pass over the complete head. Validating only complete heads keeps
 * the result independent of how the bytes were split across reads, and the second pass runs
 * once per request, so its cost is linear in the head size.
 */
#include "http1_parse.h"

/* Bounds for the chunked decoder: a single chunk-size or trailer line, and the whole trailer
 * section (trailers are discarded, so they must not be an unbounded sink for a peer's bytes). */
#define QS_CHUNK_LINE_MAX 4096
#define QS_CHUNK_TRAILERS_MAX (64 * 1024)

static enum qs_http1_status fail(const char **err, enum qs_http1_status st, const char *why)
{
    if (err)
        *err = why;
    return st;
}

/* RFC 9110 tchar: the bytes allowed in a method or a header name. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Request-target bytes: no controls, space or DEL. Bytes >= 0x80 pass, as Go's URL parser
 * lets them through in paths and queries. */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

/* Field value bytes: VCHAR, obs-text, SP and HTAB (no controls, no DEL). */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Bytes Go's httpguts.ValidHostHeader accepts: those of uri-host and port, leniently. */
static bool is_host_char(unsigned char c)
{
    if (is_alpha((char)c) || is_digit((char)c))
        return true;
    return c != '\0' && strchr("!$%&'()*+,-.:;=[]_~", c) != NULL;
}

/*
 * Looks for the empty line that ends a head in buf[0..end), starting at *from. An empty line
 * is an LF followed by LF or CRLF. Returns the head length, 0 when more bytes are needed (with
 * *from set to where the search can resume: a trailing CR or LF may still start a line end,
 * so the search resumes at it rather than past it), or SIZE_MAX on a CR that is not followed
 * by LF. Catching that here, rather than only once the head is complete, answers a broken
 * client at once instead of waiting for a head that may never end.
 */
static size_t find_head_end(const char *buf, size_t end, size_t *from)
{
    for (size_t i = *from; i < end; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == end) {
                *from = i;
                return 0;
            }
            if (buf[i + 1] != '\n')
                return SIZE_MAX;
        } else if (buf[i] == '\n') {
            if (i + 1 == end) {
                *from = i;
                return 0;
            }
            if (buf[i + 1] == '\n')
                return i + 2;
            if (buf[i + 1] == '\r') {
                if (i + 2 == end) {
                    *from = i;
                    return 0;
                }
                if (buf[i + 2] == '\n')
                    return i + 3;
            }
        }
    }
    *from = end;
    return 0;
}

/* Takes the line at *pos of a complete head, without its line ending, and moves *pos past it.
 * find_head_end already refused any CR not followed by LF, so a CR can only end the line.
 * Returns false only if no LF is left, which a complete head rules out. */
static bool next_line(const char *head, size_t head_len, size_t *pos, qs_slice *line)
{
    const char *start = head + *pos;
    const char *nl = memchr(start, '\n', head_len - *pos);
    if (!nl)
        return false;
    size_t n = (size_t)(nl - start);
    *pos += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = (qs_slice){start, n};
    return true;
}

static enum qs_http1_status parse_request_line(qs_slice line, qs_http1_head *req, const char **err)
{
    const char *s = line.p;
    size_t n = line.n, i = 0;

    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ' ')
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed request line");
    req->method = (qs_slice){s, i};

    size_t t0 = ++i;
    while (i < n && is_target_char((unsigned char)s[i]))
        i++;
    if (i == t0 || i == n || s[i] != ' ')
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed request line");
    req->target = (qs_slice){s + t0, i - t0};

    const char *v = s + i + 1;
    size_t vn = n - i - 1;
    if (vn == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        req->minor_version = v[7] - '0';
    } else if (vn == 8 && memcmp(v, "HTTP/", 5) == 0 && is_digit(v[5]) && v[6] == '.' &&
               is_digit(v[7])) {
        return fail(err, QS_HTTP1_E_VERSION, "unsupported HTTP version");
    } else {
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed HTTP version");
    }
    return QS_HTTP1_OK;
}

/* Splits the target into path and query. Only the forms a hub can be asked for are accepted:
 * origin-form ("/p?q"), asterisk-form ("*") and absolute-form ("scheme://authority/p?q",
 * whose path and query are taken after the authority). */
static enum qs_http1_status split_target(qs_http1_head *req, const char **err)
{
    const char *t = req->target.p;
    size_t n = req->target.n, start;

    if (t[0] == '/') {
        start = 0;
    } else if (n == 1 && t[0] == '*') {
        req->path = req->target;
        req->query = (qs_slice){t + n, 0};
        return QS_HTTP1_OK;
    } else {
        size_t i = 0;
        if (!is_alpha(t[0]))
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid request target");
        while (i < n &&
               (is_alpha(t[i]) || is_digit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.'))
            i++;
        if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid request target");
        i += 3;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        start = i;
    }

    const char *q = memchr(t + start, '?', n - start);
    if (q) {
        req->path = (qs_slice){t + start, (size_t)(q - (t + start))};
        req->query = (qs_slice){q + 1, (size_t)(t + n - q - 1)};
    } else {
        req->path = (qs_slice){t + start, n - start};
        req->query = (qs_slice){t + n, 0};
    }
    return QS_HTTP1_OK;
}

static enum qs_http1_status parse_header_line(qs_slice line, qs_http1_head *req, const char **err)
{
    const char *s = line.p;
    size_t n = line.n, i = 0;

    /* A continuation line would be joined to the previous value by some peers and read as a
     * separate (invalid) field by others; RFC 9112 lets a server refuse it. */
    if (is_ows(s[0]))
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "obsolete line folding");
    if (req->n_headers == QS_HTTP1_MAX_HEADERS)
        return fail(err, QS_HTTP1_E_TOO_LARGE, "too many headers");

    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    /* Also refuses whitespace before the colon (RFC 9112 section 5.1). */
    if (i == 0 || i == n || s[i] != ':')
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid header name");

    size_t v = i + 1, e = n;
    while (v < e && is_ows(s[v]))
        v++;
    while (e > v && is_ows(s[e - 1]))
        e--;
    for (size_t k = v; k < e; k++) {
        if (!is_value_char((unsigned char)s[k]))
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid header value");
    }

    qs_header *h = &req->headers[req->n_headers++];
    h->name = (qs_slice){s, i};
    h->value = (qs_slice){s + v, e - v};
    return QS_HTTP1_OK;
}

/* True when the comma-separated list in value holds tok (case-insensitively). */
static bool list_has_token(qs_slice value, const char *tok)
{
    const char *p = value.p, *end = value.p + value.n;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        const char *b = p;
        while (b < e && is_ows(*b))
            b++;
        while (e > b && is_ows(e[-1]))
            e--;
        if (qs_slice_ieq((qs_slice){b, (size_t)(e - b)}, tok))
            return true;
        if (!c)
            break;
        p = c + 1;
    }
    return false;
}

static bool parse_content_length(qs_slice v, uint64_t *out)
{
    uint64_t n = 0;
    if (v.n == 0)
        return false;
    for (size_t i = 0; i < v.n; i++) {
        if (!is_digit(v.p[i]))
            return false;
        unsigned d = (unsigned)(v.p[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* Applies the message-framing and connection rules once all header lines are known. */
static enum qs_http1_status check_headers(qs_http1_head *req, const char **err)
{
    const qs_header *host = NULL, *te = NULL, *cl = NULL;
    size_t n_host = 0, n_te = 0;
    bool conn_close = false, conn_keep_alive = false, expect = false;

    for (size_t i = 0; i < req->n_headers; i++) {
        const qs_header *h = &req->headers[i];
        if (qs_slice_ieq(h->name, "content-length")) {
            uint64_t v;
            if (!parse_content_length(h->value, &v))
                return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid Content-Length");
            /* Repeats must be byte-identical, as Go requires: two different lengths are the
             * classic way to make two peers disagree on where the body ends. */
            if (cl &&
                (cl->value.n != h->value.n || memcmp(cl->value.p, h->value.p, h->value.n) != 0))
                return fail(err, QS_HTTP1_E_BAD_REQUEST, "conflicting Content-Length");
            cl = h;
            req->content_length = v;
        } else if (qs_slice_ieq(h->name, "transfer-encoding")) {
            te = h;
            n_te++;
        } else if (qs_slice_ieq(h->name, "host")) {
            host = h;
            n_host++;
        } else if (qs_slice_ieq(h->name, "connection")) {
            conn_close = conn_close || list_has_token(h->value, "close");
            conn_keep_alive = conn_keep_alive || list_has_token(h->value, "keep-alive");
        } else if (qs_slice_ieq(h->name, "expect")) {
            expect = expect || qs_slice_ieq(h->value, "100-continue");
        }
    }

    if (n_host > 1)
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "duplicate Host header");
    if (n_host == 0 && req->minor_version == 1)
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "missing Host header");
    if (host) {
        for (size_t i = 0; i < host->value.n; i++) {
            if (!is_host_char((unsigned char)host->value.p[i]))
                return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed Host header");
        }
    }

    if (n_te) {
        /* RFC 9112 lets a server accept both and drop Content-Length, but a request carrying
         * both is most likely a smuggling attempt, so it is refused outright. */
        if (cl)
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "Content-Length with Transfer-Encoding");
        /* HTTP/1.0 has no chunked coding; an intermediary may frame such a body otherwise. */
        if (req->minor_version == 0)
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "Transfer-Encoding in HTTP/1.0");
        if (n_te != 1 || !qs_slice_ieq(te->value, "chunked"))
            return fail(err, QS_HTTP1_E_NOT_IMPLEMENTED, "unsupported Transfer-Encoding");
        req->chunked = true;
    }

    req->has_content_length = cl != NULL;
    if (req->minor_version == 1)
        req->keep_alive = !conn_close;
    else
        req->keep_alive = conn_keep_alive && !conn_close;
    /* RFC 9110 section 10.1.1: a server must ignore 100-continue from an HTTP/1.0 client. */
    req->expect_continue = expect && req->minor_version == 1;
    return QS_HTTP1_OK;
}

static enum qs_http1_status parse_head(const char *buf, size_t head_len, qs_http1_head *req,
                                       const char **err)
{
    enum qs_http1_status st;
    size_t pos = 0;
    qs_slice line;

    memset(req, 0, sizeof(*req));
    req->head_len = head_len;

    /* RFC 9112 section 2.2: ignore at least one empty line before the request line (some
     * clients send a CRLF after a POST body). One is enough; more is a malformed request. */
    if (buf[0] == '\n')
        pos = 1;
    else if (buf[0] == '\r' && buf[1] == '\n')
        pos = 2;

    if (!next_line(buf, head_len, &pos, &line))
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed request head");
    st = parse_request_line(line, req, err);
    if (st != QS_HTTP1_OK)
        return st;
    st = split_target(req, err);
    if (st != QS_HTTP1_OK)
        return st;

    for (;;) {
        if (!next_line(buf, head_len, &pos, &line))
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed request head");
        if (line.n == 0)
            break;
        st = parse_header_line(line, req, err);
        if (st != QS_HTTP1_OK)
            return st;
    }
    return check_headers(req, err);
}

enum qs_http1_status qs_http1_parse_head(qs_http1_parser *p, const char *buf, size_t len,
                                         size_t max_head, qs_http1_head *req, const char **err)
{
    /* Bytes past max_head cannot belong to an acceptable head, so they are never searched. */
    size_t limit = QS_MIN(len, max_head);
    size_t from = QS_MIN(p->scanned, limit);
    size_t head_len = find_head_end(buf, limit, &from);

    if (head_len == SIZE_MAX) {
        p->scanned = 0;
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "bare CR in request head");
    }
    if (head_len == 0) {
        /* An incomplete head already max_head bytes long can only end beyond the limit. */
        if (len >= max_head) {
            p->scanned = 0;
            return fail(err, QS_HTTP1_E_TOO_LARGE, "request head too large");
        }
        p->scanned = from;
        return QS_HTTP1_AGAIN;
    }
    p->scanned = 0;
    return parse_head(buf, head_len, req, err);
}

/* Decoder states. The zero state starts a chunk-size line, so a zeroed decoder is ready. */
enum {
    CH_SIZE = 0,   /* hex digits of the chunk size; line_len counts them */
    CH_SIZE_WS,    /* whitespace after the size, before a ';' */
    CH_EXT,        /* chunk extension, ignored up to the line end */
    CH_SIZE_LF,    /* CR seen at the end of the size line */
    CH_DATA,       /* `remaining` bytes of chunk data */
    CH_DATA_CR,    /* the CRLF closing the chunk data */
    CH_DATA_LF,    /* */
    CH_TRAILER,    /* a trailer line (or the final empty line); `remaining` counts all of them */
    CH_TRAILER_LF, /* CR seen at the end of a trailer line */
    CH_DONE,
    CH_FAILED,
};

static bool is_ext_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Handles the end of a chunk-size line: the last chunk leads to the trailers. */
static enum qs_http1_status end_size_line(qs_http1_chunked *d, const qs_buf *out, size_t max_body,
                                          const char **err)
{
    d->line_len = 0;
    if (d->remaining == 0) {
        d->state = CH_TRAILER;
        return QS_HTTP1_AGAIN;
    }
    /* Refuse as soon as the size is known rather than after buffering up to the limit. */
    if (out->len > max_body || d->remaining > max_body - out->len) {
        d->state = CH_FAILED;
        return fail(err, QS_HTTP1_E_TOO_LARGE, "request body too large");
    }
    d->state = CH_DATA;
    return QS_HTTP1_AGAIN;
}

/* Decodes one byte of a size, extension or trailer line; AGAIN means "go on". */
static enum qs_http1_status chunk_line_byte(qs_http1_chunked *d, char c, const qs_buf *out,
                                            size_t max_body, const char **err)
{
    int h;

    switch (d->state) {
    case CH_SIZE:
        h = qs_hex_value((unsigned char)c);
        if (h >= 0) {
            if (d->remaining > (UINT64_MAX >> 4))
                return fail(err, QS_HTTP1_E_BAD_REQUEST, "chunk size too large");
            d->remaining = (d->remaining << 4) | (uint64_t)h;
            break;
        }
        if (d->line_len == 0)
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed chunk size");
        if (c == '\r') {
            d->state = CH_SIZE_LF;
            return QS_HTTP1_AGAIN;
        }
        if (c == '\n') /* bare LF: refused, as Go does since CVE-2025-22871 (smuggling) */
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "chunk size line ends with bare LF");
        if (c == ';')
            d->state = CH_EXT;
        else if (is_ows(c))
            d->state = CH_SIZE_WS;
        else
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed chunk size");
        break;
    case CH_SIZE_WS:
        /* Whitespace is only allowed as BWS before an extension, never as trailing junk. */
        if (c == ';')
            d->state = CH_EXT;
        else if (!is_ows(c))
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed chunk size");
        break;
    case CH_EXT:
        if (c == '\r') {
            d->state = CH_SIZE_LF;
            return QS_HTTP1_AGAIN;
        }
        if (c == '\n')
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "chunk size line ends with bare LF");
        if (!is_ext_char((unsigned char)c))
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "invalid chunk extension");
        break;
    case CH_SIZE_LF:
        if (c != '\n')
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "bare CR in chunk size line");
        return end_size_line(d, out, max_body, err);
    case CH_TRAILER:
        if (c == '\r') {
            d->state = CH_TRAILER_LF;
            return QS_HTTP1_AGAIN;
        }
        if (c == '\n') {
            if (d->line_len == 0)
                return QS_HTTP1_OK;
            d->line_len = 0;
            return QS_HTTP1_AGAIN;
        }
        if (++d->remaining > QS_CHUNK_TRAILERS_MAX)
            return fail(err, QS_HTTP1_E_TOO_LARGE, "chunked trailers too large");
        break;
    case CH_TRAILER_LF:
        if (c != '\n')
            return fail(err, QS_HTTP1_E_BAD_REQUEST, "bare CR in chunked trailer");
        if (d->line_len == 0)
            return QS_HTTP1_OK;
        d->line_len = 0;
        d->state = CH_TRAILER;
        return QS_HTTP1_AGAIN;
    default:
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "malformed chunked encoding");
    }

    if (++d->line_len > QS_CHUNK_LINE_MAX)
        return fail(err, QS_HTTP1_E_BAD_REQUEST, "chunked line too long");
    return QS_HTTP1_AGAIN;
}

enum qs_http1_status qs_http1_parse_chunked(qs_http1_chunked *d, const char *in, size_t len,
                                            size_t *consumed, qs_buf *out, size_t max_body,
                                            const char **err)
{
    enum qs_http1_status st = QS_HTTP1_AGAIN;
    size_t i = 0;

    if (d->state == CH_DONE) {
        *consumed = 0;
        return QS_HTTP1_OK;
    }
    while (i < len && st == QS_HTTP1_AGAIN) {
        switch (d->state) {
        case CH_DATA: {
            size_t n = (size_t)QS_MIN(d->remaining, (uint64_t)(len - i));
            qs_buf_append(out, in + i, n);
            i += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            /* Go requires exactly CRLF here; anything else means the size lied. */
            if (in[i] != (d->state == CH_DATA_CR ? '\r' : '\n')) {
                st = fail(err, QS_HTTP1_E_BAD_REQUEST, "missing CRLF after chunk data");
                break;
            }
            i++;
            d->state = d->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        default:
            st = chunk_line_byte(d, in[i], out, max_body, err);
            /* The byte that completed a line is consumed; the one that failed is not. */
            if (st == QS_HTTP1_AGAIN || st == QS_HTTP1_OK)
                i++;
            break;
        }
    }

    *consumed = i;
    if (st == QS_HTTP1_OK)
        d->state = CH_DONE;
    else if (st != QS_HTTP1_AGAIN)
        d->state = CH_FAILED;
    return st;
}
