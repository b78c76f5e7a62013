/*
 * An LD_PRELOAD library that turns every sync call into a no-op that
 * reports success, as a disk that lies about flushes would. The power-cut
 * tests run the server under it to show that they can fail: without its
 * syncs, acknowledged mail must be lost when the power goes
 * (tests/integration/test_powercut.py). Built by the test with cc -shared.
 */
#include <unistd.h>

int fsync(int fd)
{
    (void)fd;
    return 0;
}

int fdatasync(int fd)
{
    (void)fd;
    return 0;
}

int syncfs(int fd)
{
    (void)fd;
    return 0;
}

void sync(void) {}
