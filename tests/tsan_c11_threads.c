/* SPDX-License-Identifier: MIT
 * tsan_c11_threads.c - linked into the ThreadSanitizer build only (QS_TSAN): the C11 thread
 * functions librdkafka uses, done through POSIX threads.
 *
 * Why: librdkafka creates its threads with C11 thrd_create and locks with mtx_lock and
 * cnd_wait. glibc implements them by calling its POSIX functions internally, which
 * ThreadSanitizer's interceptors never see: a thread it did not see created has no TSan
 * state and crashes at its first allocation, and locks it does not see order nothing. The
 * executable's definitions below take precedence over glibc's for librdkafka (the dynamic
 * linker looks in the executable first), so TSan sees librdkafka's threads and locks
 * through its pthread interceptors. glibc's C11 types wrap the POSIX ones (thrd_t is a
 * pthread_t; mtx_t and cnd_t begin with a pthread_mutex_t and a pthread_cond_t).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

static int result(int rc)
{
    return rc == 0           ? thrd_success
           : rc == ENOMEM    ? thrd_nomem
           : rc == ETIMEDOUT ? thrd_timedout
           : rc == EBUSY     ? thrd_busy
                             : thrd_error;
}

typedef struct start {
    thrd_start_t fn;
    void *arg;
} start;

static void *trampoline(void *p)
{
    start s = *(start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int rc = pthread_create((pthread_t *)thr, NULL, trampoline, s);
    if (rc)
        free(s);
    return result(rc);
}

int thrd_join(thrd_t thr, int *res)
{
    void *v = NULL;
    int rc = pthread_join((pthread_t)thr, &v);
    if (!rc && res)
        *res = (int)(intptr_t)v;
    return result(rc);
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return result(rc);
}

int mtx_lock(mtx_t *m)
{
    return result(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_unlock(mtx_t *m)
{
    return result(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
    return result(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
    return result(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
    return result(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return result(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return result(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c)
{
    pthread_cond_destroy((pthread_cond_t *)c);
}
