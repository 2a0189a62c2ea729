/* SPDX-License-Identifier: MIT
 * regex.h - Go regular expressions (RE2 syntax) compiled to an automaton and matched in time
 * linear in the subject, for ASCII subjects.
 *
 * The URL Pattern standard turns every component of a pattern into a regular expression; the
 * reference hub compiles them with Go's regexp package. This module accepts the same syntax
 * as Go's regexp.Compile (the Perl flags: non-greedy operators, \d \s \w, \A \z \b \B,
 * (?flags), (?:…), named groups, \Q…\E, POSIX and Unicode classes) and refuses what Go
 * refuses (backreferences, look-around, \C, \Z, repetition counts over 1000, stacked
 * repetition operators, nesting deeper than 1000), with the same notion of a match as
 * Regexp.MatchString: some substring of the subject matches.
 *
 * Subjects are ASCII: URL Pattern components are canonicalized URL parts, percent-encoded
 * and punycoded, so they never hold another byte. Character classes therefore keep only their
 * ASCII members (Unicode classes by the table in regex_classes.h; case folding also knows the
 * two non-ASCII letters that fold onto ASCII ones, U+017F and U+212A). A subject byte >= 0x80
 * matches nothing.
 *
 * Cost: the expression compiles to a Thompson automaton of qs_regex_states() states (one per
 * character class, assertion, alternative and repetition, with {n,m} bodies copied), bounded
 * by the caller; matching visits each state at most once per subject byte, without
 * backtracking, so it costs O(subject length x states) in the worst case and a few states per
 * byte in the usual one.
 */
#ifndef QS_REGEX_H
#define QS_REGEX_H

#include "util.h"

typedef struct qs_regex qs_regex;

/**
 * Compiles re (len bytes). max_states bounds the automaton (0: no bound). Returns NULL with
 * *err set to a static reason when Go would refuse the expression, when it uses something
 * this module does not support (see above), or when it needs more than max_states states
 * (then *err says so and *states, when not NULL, receives how many it had counted when it
 * stopped, which is more than max_states).
 */
qs_regex *qs_regex_compile(const char *re, size_t len, size_t max_states, size_t *states,
                           const char **err);
/** True when some substring of s matches (Go's MatchString). */
bool qs_regex_match(const qs_regex *r, const char *s, size_t len);
/** States of the automaton. */
size_t qs_regex_states(const qs_regex *r);
void qs_regex_free(qs_regex *r);

#endif
