/* SPDX-License-Identifier: MIT
 * weburl.h - URLs parsed as the WHATWG URL standard parses them (the "basic URL parser"),
 * into the eight parts URL Pattern matches: protocol, username, password, hostname, port,
 * pathname, search and hash.
 *
 * The reference hub parses topics with github.com/nlnwa/whatwg-url before matching them
 * against URL patterns; this parser follows the standard where that library does, including
 * its choices (the path percent-encode set without "^", fragments encoded alike for every
 * scheme, the opaque-path state that starts the query at "?"). Everything the parser writes
 * is ASCII: what is not is percent-encoded (as UTF-8; an invalid UTF-8 byte as the encoding
 * of U+FFFD, which is what a Go string's invalid byte decodes to) or refused.
 *
 * Differences from the reference, all refusals (the URL is then unparsable):
 *  - a domain that is not ASCII once percent-decoded: mapping it to ASCII needs the UTS 46
 *    tables, which are not carried;
 *  - ASCII domains are lower-cased, and "xn--" labels are kept as they are without checking
 *    that they decode: the reference refuses invalid punycode.
 *
 * The component canonicalizers at the end are the URL Pattern standard's "encoding
 * callbacks": they turn a piece of pattern text into what the same text becomes inside a
 * parsed URL, so that literal parts of a pattern compare with parsed topics.
 *
 * Pure: bytes in, struct or failure out.
 */
#ifndef QS_WEBURL_H
#define QS_WEBURL_H

#include "buf.h"

enum qs_weburl_part {
    QS_WEBURL_PROTOCOL, /* the scheme, lower-cased, without ":" */
    QS_WEBURL_USERNAME,
    QS_WEBURL_PASSWORD,
    QS_WEBURL_HOSTNAME, /* IPv6 addresses in brackets; "" when there is no host */
    QS_WEBURL_PORT,     /* "" when absent or the scheme's default */
    QS_WEBURL_PATHNAME, /* "/seg/seg", or the opaque path */
    QS_WEBURL_SEARCH,   /* without "?" */
    QS_WEBURL_HASH,     /* without "#" */
    QS_WEBURL_PARTS
};

typedef struct qs_weburl {
    char *text; /* the parts one after the other, each NUL-terminated */
    size_t off[QS_WEBURL_PARTS], len[QS_WEBURL_PARTS];
    bool special;     /* ftp, file, http, https, ws or wss */
    bool has_host;    /* the host is not null (it may be empty, as in file:///x) */
    bool opaque_path; /* "mailto:x", "urn:isbn:1": no host, the path is one string */
    bool has_query, has_fragment;
} qs_weburl;

/** Inputs longer than this are refused (a topic is far shorter). */
#define QS_WEBURL_MAX_INPUT (1u << 20)

/** Parses s (n bytes) against base (NULL: none; a relative input then fails). Returns 0 and
 *  fills *out, or -1 when the input is not a URL (then *out needs no freeing). */
int qs_weburl_parse(const char *s, size_t n, const qs_weburl *base, qs_weburl *out);
void qs_weburl_free(qs_weburl *u);

static inline qs_slice qs_weburl_get(const qs_weburl *u, enum qs_weburl_part part)
{
    return (qs_slice){u->text + u->off[part], u->len[part]};
}

/** True for the special schemes (ftp, file, http, https, ws, wss). */
bool qs_weburl_scheme_is_special(const char *scheme, size_t n);
/** The default port of a special scheme as a string ("80"), or NULL. */
const char *qs_weburl_default_port(const char *scheme, size_t n);

/*
 * Canonicalizers: each appends to out what the text s[0, n) becomes as that part of a URL,
 * and returns 0, or -1 when the text cannot be that part. The empty text gives the empty
 * text. ASCII tabs and newlines are dropped first, as the URL parser drops them.
 */
/** A scheme: what parsing "<s>://dummy.test" gives as the protocol. */
int qs_weburl_canon_protocol(const char *s, size_t n, qs_buf *out);
/** A username or a password: the userinfo percent-encode set. */
int qs_weburl_canon_userinfo(const char *s, size_t n, qs_buf *out);
/** A hostname, with special-scheme (domain) rules or opaque-host rules; text after a "/",
 *  "?" or "#" (or "\" for special) is ignored, as the hostname setter ignores it, and a ":"
 *  outside brackets is refused. */
int qs_weburl_canon_hostname(const char *s, size_t n, bool special, qs_buf *out);
/** A port: leading digits (at least one), at most 65535, written without leading zeros. */
int qs_weburl_canon_port(const char *s, size_t n, qs_buf *out);
/** A path of a non-opaque URL: dot segments resolved, the path percent-encode set. Text not
 *  starting with "/" is canonicalized as a path continuation (the standard's "/-" trick). */
int qs_weburl_canon_pathname(const char *s, size_t n, qs_buf *out);
/** An opaque path: up to the first "?" or "#", the C0 control percent-encode set. */
int qs_weburl_canon_opaque_pathname(const char *s, size_t n, qs_buf *out);
/** A query (the non-special query percent-encode set, "#" included). */
int qs_weburl_canon_search(const char *s, size_t n, qs_buf *out);
/** A fragment (the fragment percent-encode set). */
int qs_weburl_canon_hash(const char *s, size_t n, qs_buf *out);

#endif
