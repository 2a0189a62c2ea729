/* SPDX-License-Identifier: MIT
 * urlpattern.h - WHATWG URL Patterns (the constructor-string syntax), resolved against the
 * hub's base URL and matched against topics, as the reference hub matches its
 * `match_urlpattern` selectors (github.com/dunglas/go-urlpattern over Go's regexp).
 *
 * A pattern such as "https://example.com/books/:id" or "/books/:id(\\d+)" is split into its
 * eight components (protocol, username, password, hostname, port, pathname, search, hash);
 * a relative pattern takes the components it lacks from the base URL; components it leaves
 * unspecified match anything. Each component becomes a regular expression exactly as the
 * standard generates it, with the standard's canonicalization of its literal parts. A topic
 * is parsed as a URL against the same base (weburl.h), and matches when every component
 * does. A topic that does not parse never matches. Matching is case-sensitive (the hub never
 * sets ignoreCase); hosts and schemes are lower-cased by URL parsing itself.
 *
 * The base: the reference resolves against its `resource_identifier` when that ends with
 * "/.well-known/mercure", else against the synthetic "http://mercure.invalid" (so relative
 * patterns match relative topics and absolute ones absolute topics, but not across).
 *
 * Supported: the whole constructor-string syntax (named groups ":id", wildcards "*",
 * groups "{…}" with the modifiers "?", "*", "+", escapes "\", regexp groups "(…)" with
 * everything Go's regexp accepts in them, see regex.h). Differences from the reference, all
 * refusals of a pattern it accepts or of a topic it parses:
 *  - group names are ASCII ("[A-Za-z][A-Za-z0-9_]*"); a name next to a non-ASCII character
 *    is refused, since deciding whether that character continues the name needs the
 *    Unicode identifier tables;
 *  - hostnames (in patterns and topics) are ASCII once percent-decoded (weburl.h);
 *  - a pattern whose automata together need more than the caller's bound of states.
 *
 * Cost: the components that are "*" cost nothing, those without a group cost a comparison,
 * the others run a regex automaton (linear in the component's length, see regex.h). Parsing
 * the topic is linear in its length; callers matching one topic against many patterns parse
 * it once (qs_urlpattern_match_url).
 */
#ifndef QS_URLPATTERN_H
#define QS_URLPATTERN_H

#include "weburl.h"

/** The reference's limits on one subscribe request's matchers and on one pattern. */
#define QS_URLPATTERN_MAX_MATCHERS 100
#define QS_URLPATTERN_MAX_LENGTH 4096

/** The base used when no resource identifier ending in "/.well-known/mercure" is set. */
#define QS_URLPATTERN_FALLBACK_BASE "http://mercure.invalid"

/** The base URL the reference resolves patterns and topics against, given the configured
 *  resource identifier (NULL or "" when none): the identifier when it ends with
 *  "/.well-known/mercure", else QS_URLPATTERN_FALLBACK_BASE. */
const char *qs_urlpattern_base_for(const char *resource_identifier);

typedef struct qs_urlpattern qs_urlpattern;

/**
 * Compiles pattern (len bytes) against base (a parsed absolute URL that must outlive the
 * pattern). max_states bounds the regex automata of all components together (0: no bound).
 * Returns NULL with *err set to a static one-line reason when the pattern is invalid (the
 * reference answers "invalid topic matcher pattern") or too complex; then *states, when not
 * NULL, tells how many states had been counted (more than max_states when that was the
 * reason). Does not check the length limit: the caller does (QS_URLPATTERN_MAX_LENGTH).
 */
qs_urlpattern *qs_urlpattern_compile(const char *pattern, size_t len, const qs_weburl *base,
                                     size_t max_states, size_t *states, const char **err);
/** Parses topic against the pattern's base and matches it. */
bool qs_urlpattern_match(const qs_urlpattern *p, const char *topic, size_t len);
/** Matches a topic already parsed against the same base (qs_weburl_parse). */
bool qs_urlpattern_match_url(const qs_urlpattern *p, const qs_weburl *topic);
/** Regex automaton states of all components (0 when no component needs one). */
size_t qs_urlpattern_states(const qs_urlpattern *p);
/** Bytes the compiled pattern occupies. */
size_t qs_urlpattern_size(const qs_urlpattern *p);
void qs_urlpattern_free(qs_urlpattern *p);

#endif
