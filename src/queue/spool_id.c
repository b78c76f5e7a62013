/*
 * Queue ids (spool.h: spool_new_id, spool_id_time, spool_valid_id): 15
 * characters of RFC 4648 base32hex that sort in arrival order, as
 * Postfix's long queue ids (docs/queue.md, Layout).
 */
#include "queue/spool.h"

#include <pthread.h>
#include <string.h>
#include <sys/time.h>

#include "lib/util.h"
#include "queue/spool_int.h"

/* RFC 4648 base32hex upper case: the digits sort in the same order as the values. */
static const char spool_b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
/* spool_new_id's length: 7 digits of seconds, 4 of microseconds, 4 random. */
#define SPOOL_ID_LEN 15

/* The last moment an id was made for, by this process. */
static pthread_mutex_t spool_id_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long spool_id_last_sec;
static unsigned long spool_id_last_usec;

void spool_new_id(char id[QUEUE_ID_MAX])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long sec = (unsigned long long)tv.tv_sec;
    unsigned long usec = (unsigned long)tv.tv_usec;
    /*
     * One moment per id in this process (the next microsecond when two come
     * in one, or when the clock stepped back): a message received into the
     * journal has no file whose O_EXCL creation would prove its id unused,
     * and the other writer's ids differ in their last bit.
     */
    pthread_mutex_lock(&spool_id_lock);
    if (sec < spool_id_last_sec || (sec == spool_id_last_sec && usec <= spool_id_last_usec)) {
        sec = spool_id_last_sec;
        usec = spool_id_last_usec + 1;
        if (usec >= 1000000) {
            sec++;
            usec = 0;
        }
    }
    spool_id_last_sec = sec;
    spool_id_last_usec = usec;
    pthread_mutex_unlock(&spool_id_lock);
    unsigned char rnd[3];
    random_bytes(rnd, sizeof rnd);
    unsigned long r = ((unsigned long)rnd[0] << 16 | (unsigned long)rnd[1] << 8 | rnd[2]) & 0xfffff;
    int n = 0;
    for (int i = 6; i >= 0; i--)
        id[n++] = spool_b32[(sec >> (5 * i)) & 31];
    for (int i = 3; i >= 0; i--)
        id[n++] = spool_b32[(usec >> (5 * i)) & 31];
    for (int i = 3; i >= 0; i--)
        id[n++] = spool_b32[(r >> (5 * i)) & 31];
    id[n] = '\0';
}

int spool_id_time(const char *id, struct timeval *tv)
{
    unsigned long long sec = 0, usec = 0;
    if (strlen(id) != SPOOL_ID_LEN)
        return -1;
    for (int i = 0; i < 11; i++) {
        const char *d = id[i] ? strchr(spool_b32, id[i]) : NULL;
        if (d == NULL)
            return -1;
        if (i < 7)
            sec = sec << 5 | (unsigned long long)(d - spool_b32);
        else
            usec = usec << 5 | (unsigned long long)(d - spool_b32);
    }
    if (usec >= 1000000)
        return -1;
    tv->tv_sec = (time_t)sec;
    tv->tv_usec = (suseconds_t)usec;
    return 0;
}

int spool_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 10 || n > 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z')))
            return 0;
    return 1;
}

void spool_new_writer_id(char id[QUEUE_ID_MAX], unsigned writer)
{
    spool_new_id(id);
    /* The writer in the last character's low bit: two writers never publish one id. */
    const char *last = strchr(spool_b32, id[SPOOL_ID_LEN - 1]);
    id[SPOOL_ID_LEN - 1] = spool_b32[((last - spool_b32) & ~1) | (long)(writer & 1)];
}
