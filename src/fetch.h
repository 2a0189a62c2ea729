/* SPDX-License-Identifier: MIT
 * fetch.h - reading a small document from an https://, http:// or file:// URL, bounded in
 * size and time. Blocking: only for start-up and for threads of their own (never a worker).
 *
 * HTTP(S) goes through libcurl (see docs/design.md, "Decisions"): the server's certificate
 * and host name are verified against the system's CA certificates or a given CA file;
 * redirects are followed (at most 5, never from https to http); the proxy variables
 * (https_proxy, no_proxy…) are honoured as Go's HTTP client honours them; gzip is accepted.
 * Only a 200 answer is a document. file:// reads a local file.
 */
#ifndef QS_FETCH_H
#define QS_FETCH_H

#include <stdatomic.h>

#include "buf.h"

typedef struct qs_fetch_options {
    size_t max_bytes;    /* a larger document is an error */
    uint64_t timeout_ms; /* the whole transfer, connection included */
    const char *ca_file; /* PEM CA certificates; NULL: the system's */
    atomic_bool *abort;  /* optional: set from another thread to end a transfer early */
} qs_fetch_options;

/** Initializes libcurl once; call before any thread fetches (idempotent, thread-safe). */
void qs_fetch_global_init(void);

/**
 * Reads url into out (replacing its content). Returns 0, or -1 with *err set to a malloc'd
 * one-line reason ("HTTP status 404", "SSL peer certificate or SSH remote key was not OK:
 * …", "the document is larger than 1048576 bytes").
 */
int qs_fetch(const char *url, const qs_fetch_options *o, qs_buf *out, char **err);

#endif
