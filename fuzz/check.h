/* SPDX-License-Identifier: MIT
 * check.h - CHECK(cond) for fuzz targets: an invariant that does not hold aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 */
#ifndef QS_FUZZ_CHECK_H
#define QS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: invariant failed at line %d: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
