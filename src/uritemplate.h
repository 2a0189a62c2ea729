/* SPDX-License-Identifier: MIT
 * uritemplate.h - RFC 6570 URI Templates compiled into matchers.
 *
 * Matching follows what the reference hub does (yosida95/uritemplate v3,
 * Template.Regexp()): the whole string must match; every expression is optional and
 * matches zero or more characters of its operator's class; simple and label/path/…
 * expressions allow unreserved characters and %XX triplets (so no "/"), "+" and "#"
 * also allow reserved characters. The matcher is a compiled automaton simulated in
 * time linear in the topic length: no backtracking, no regex engine.
 *
 * Cost: a template compiles to a literal prefix and suffix (compared with memcmp) and an
 * automaton of qs_uritemplate_states() states: one to start, one per literal byte (or %XX)
 * between the first and the last expression, and for each expression at most one per
 * variable plus one (runs of adjacent simple and "+" expressions with one variable need
 * none). Matching a topic
 * costs a few nanoseconds per topic byte and per 64 states, whatever the template's shape;
 * the compiled template is one allocation of 408 bytes per 64 states plus the literals.
 */
#ifndef QS_URITEMPLATE_H
#define QS_URITEMPLATE_H

#include "util.h"

typedef struct qs_uritemplate qs_uritemplate;

/** Compiles tpl (len bytes). Returns NULL with *err set to a static reason when tpl is not a
 *  valid template (then the reference treats the selector as a plain string). */
qs_uritemplate *qs_uritemplate_compile(const char *tpl, size_t len, const char **err);
/** What qs_uritemplate_compile would build, without building it: the number of {…}
 *  expressions in tpl and the automaton's states. O(len), no allocation proportional to the
 *  automaton. Returns false, with *err set as qs_uritemplate_compile sets it, when tpl is not
 *  a valid template. */
bool qs_uritemplate_measure(const char *tpl, size_t len, size_t *expressions, size_t *states,
                            const char **err);
/** True when the whole of s matches the template. */
bool qs_uritemplate_match(const qs_uritemplate *t, const char *s, size_t len);
/** qs_uritemplate_match when it is cheap: 1 (match) or 0 (no match) when the literal prefix
 *  or suffix rules s out, or when the automaton needs at most max_steps steps (topic bytes
 *  between the literals x states); -1, without running it, otherwise. */
int qs_uritemplate_quick_match(const qs_uritemplate *t, const char *s, size_t len,
                               size_t max_steps);
/** States of the automaton (see above). */
size_t qs_uritemplate_states(const qs_uritemplate *t);
/** Bytes the compiled template occupies. */
size_t qs_uritemplate_size(const qs_uritemplate *t);
void qs_uritemplate_free(qs_uritemplate *t);

#endif
