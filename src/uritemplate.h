/* SPDX-License-Identifier: MIT
 * uritemplate.h - RFC 6570 URI Templates compiled into matchers.
 *
 * Matching follows what the reference hub does (yosida95/uritemplate v3,
 * Template.Regexp()): the whole string must match; every expression is optional and
 * matches zero or more characters of its operator's class; simple and label/path/…
 * expressions allow unreserved characters and %XX triplets (so no "/"), "+" and "#"
 * also allow reserved characters. The matcher is a compiled automaton simulated in
 * time linear in the topic length: no backtracking, no regex engine.
 */
#ifndef QS_URITEMPLATE_H
#define QS_URITEMPLATE_H

#include "util.h"

typedef struct qs_uritemplate qs_uritemplate;

/** Compiles tpl (len bytes). Returns NULL with *err set to a static reason when tpl is not a
 *  valid template (then the reference treats the selector as a plain string). */
qs_uritemplate *qs_uritemplate_compile(const char *tpl, size_t len, const char **err);
/** True when the whole of s matches the template. */
bool qs_uritemplate_match(const qs_uritemplate *t, const char *s, size_t len);
void qs_uritemplate_free(qs_uritemplate *t);

#endif
