/* SPDX-License-Identifier: MIT
 * resp_input.h - fuzz input as Redis replies: the bytes are fed as RESP to a hiredis reader
 * (the one the Redis transport reads its replies with), so targets get the reply objects
 * hiredis really builds, of any shape the protocol allows.
 *
 * The reader uses hiredis's own reply constructors, except that arrays of more than
 * RESP_MAX_ELEMENTS elements are refused (hiredis then reports an out-of-memory error):
 * "*2000000000\r\n" would otherwise allocate 16 GB for a reply the input can never fill.
 */
#ifndef QS_FUZZ_RESP_INPUT_H
#define QS_FUZZ_RESP_INPUT_H

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define RESP_MAX_ELEMENTS 4096

static redisReplyObjectFunctions resp_fns;
static void *(*resp_real_create_array)(const redisReadTask *, int);

static inline void *resp_create_array(const redisReadTask *task, int elements)
{
    if (elements > RESP_MAX_ELEMENTS)
        return NULL;
    return resp_real_create_array(task, elements);
}

static inline redisReader *resp_reader_new(void)
{
    if (!resp_real_create_array) {
        redisReader *plain = redisReaderCreate();
        CHECK(plain && plain->fn && plain->fn->createArray);
        resp_fns = *plain->fn;
        resp_real_create_array = resp_fns.createArray;
        resp_fns.createArray = resp_create_array;
        redisReaderFree(plain);
    }
    redisReader *rd = redisReaderCreateWithFunctions(&resp_fns);
    CHECK(rd != NULL);
    return rd;
}

/* Parses up to max complete replies from the bytes into out (each freed with
 * freeReplyObject); stops at the first protocol error or incomplete reply. */
static inline size_t resp_parse(const uint8_t *data, size_t size, redisReply **out, size_t max)
{
    redisReader *rd = resp_reader_new();
    size_t n = 0;
    if (size && redisReaderFeed(rd, (const char *)data, size) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }
    while (n < max) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
            break;
        out[n++] = reply;
    }
    redisReaderFree(rd);
    return n;
}

/* Appends a RESP bulk string to a growing buffer. */
static inline void resp_bulk(char **buf, size_t *len, const char *s, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "$%zu\r\n", n);
    char *p = realloc(*buf, *len + (size_t)h + n + 2);
    CHECK(p != NULL);
    memcpy(p + *len, head, (size_t)h);
    if (n)
        memcpy(p + *len + h, s, n);
    memcpy(p + *len + h + n, "\r\n", 2);
    *buf = p;
    *len += (size_t)h + n + 2;
}

static inline void resp_raw(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    char *p = realloc(*buf, *len + n);
    CHECK(p != NULL);
    memcpy(p + *len, s, n);
    *buf = p;
    *len += n;
}

/* Parses exactly one complete reply (the buffer must hold exactly one). */
static inline redisReply *resp_parse_one(const char *buf, size_t len)
{
    redisReply *r[2] = {NULL, NULL};
    CHECK(resp_parse((const uint8_t *)buf, len, r, 2) == 1);
    return r[0];
}

#endif
