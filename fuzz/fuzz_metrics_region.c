/*
 * Fuzz target for the readers of the shared metrics region: smtpd's HTTP
 * server renders memory the delivery process writes, and a compromised
 * process could write anything there. The input (repeated to the region's
 * size) becomes the whole region; then the status page, the exposition,
 * the tables' copy, the queue view's copy, a delivery written over it (the
 * writer reads its tables back) and a queue view written over it must stay
 * in bounds and come back whole.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/buf.h"
#include "metrics/metrics.h"
#include "metrics/metrics_status.h"

static unsigned char *fuzz_region;
static size_t fuzz_region_size;

/* The region attached once, as a child attaches the supervisor's; a second mapping writes it. */
static void fuzz_region_init(void)
{
    fuzz_region_size = metrics_shared_size();
    int fd = memfd_create("fuzz-metrics", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)fuzz_region_size) < 0 || metrics_shared_attach(fd) < 0)
        abort();
    fuzz_region = mmap(NULL, fuzz_region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fuzz_region == MAP_FAILED)
        abort();
    close(fd);
}

static void fuzz_check_view(const struct metrics_deliveries *d)
{
    if (d->nrecent > METRICS_RECENT || d->ndomains > METRICS_DOMAINS)
        __builtin_trap();
    for (size_t k = 0; k < d->nrecent; k++)
        if ((unsigned)d->recent[k].outcome >= METRICS_OUTCOME_COUNT ||
            !memchr(d->recent[k].rcpt, 0, sizeof d->recent[k].rcpt) ||
            !memchr(d->recent[k].relay, 0, sizeof d->recent[k].relay) ||
            !memchr(d->recent[k].reply, 0, sizeof d->recent[k].reply))
            __builtin_trap();
    for (size_t i = 0; i < d->ndomains; i++)
        if (!memchr(d->domains[i].domain, 0, sizeof d->domains[i].domain))
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_region == NULL)
        fuzz_region_init();
    if (size == 0)
        return 0;
    for (size_t i = 0; i < fuzz_region_size; i += size)
        memcpy(fuzz_region + i, data, size < fuzz_region_size - i ? size : fuzz_region_size - i);

    static struct metrics_deliveries view;
    if (metrics_deliveries_read(&view) == 0)
        fuzz_check_view(&view);
    struct buf out = BUF_INIT;
    struct metrics_gauges gauges = {0};
    struct metrics_oldest oldest = {0};
    (void)metrics_queue_read(&gauges, &oldest);
    if (gauges.deliveries_in_flight < 0 || !memchr(oldest.id, 0, sizeof oldest.id) ||
        !memchr(oldest.recipient, 0, sizeof oldest.recipient) ||
        !memchr(oldest.reason, 0, sizeof oldest.reason))
        __builtin_trap();
    metrics_status_render(&out, "mx.example.com", &gauges, &oldest);
    metrics_render(&out, &gauges);
    /* A restarted queue manager publishing over what it finds, then read again. */
    struct metrics_queue_counts counts = {.messages = {3, 4}, .bytes = {300, 400}, .in_flight = 2};
    struct metrics_oldest mine = {.arrival = 1700000000};
    memcpy(mine.id, "4Xy7Qz", 7);
    memcpy(mine.recipient, "rcpt@example.net", 17);
    memcpy(mine.reason, "451 4.4.1 later", 16);
    metrics_queue_publish_oldest(&mine);
    metrics_queue_publish_counts(&counts);
    struct metrics_gauges again = {0};
    if (metrics_queue_read(&again, &oldest) != 0 || again.queue_messages[1] != 4 ||
        again.queue_bytes[0] != 300 || again.deliveries_in_flight != 2 ||
        strcmp(oldest.id, mine.id) != 0 || strcmp(oldest.reason, mine.reason) != 0)
        __builtin_trap();
    /* A restarted delivery process writing over what it finds, then read again. */
    metrics_delivery(METRICS_DEFERRED, "mx.example.net[192.0.2.1]:25", "rcpt@example.net",
                     "451 4.7.1 later", 2.5);
    if (metrics_deliveries_read(&view) != 0 || view.nrecent == 0 ||
        strcmp(view.recent[0].rcpt, "rcpt@example.net") != 0)
        __builtin_trap();
    fuzz_check_view(&view);
    buf_free(&out);
    return 0;
}
