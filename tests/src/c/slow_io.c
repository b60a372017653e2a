/*
 * slow_io.so: a slow disk for one process tree, by LD_PRELOAD.
 *
 * Every write to a regular file waits SLOW_IO_WRITE_US microseconds first,
 * and every fsync, fdatasync and sync_file_range SLOW_IO_SYNC_US: a disk
 * with that latency, as the program sees it. Writes to pipes and sockets
 * are not slowed. Built and used by tests/src/slow_disk.rs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long micros(const char *name) {
    const char *value = getenv(name);
    return value ? atol(value) : 0;
}

static void wait_micros(long us) {
    if (us <= 0) return;
    struct timespec left = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&left, &left) != 0) {}
}

static void before_write(int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) wait_micros(micros("SLOW_IO_WRITE_US"));
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t len) {
    REAL(write);
    before_write(fd);
    return real(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t at) {
    REAL(pwrite);
    before_write(fd);
    return real(fd, buf, len, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t at) {
    REAL(pwrite64);
    before_write(fd);
    return real(fd, buf, len, at);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t at) {
    REAL(pwritev);
    before_write(fd);
    return real(fd, iov, count, at);
}

int fsync(int fd) {
    REAL(fsync);
    wait_micros(micros("SLOW_IO_SYNC_US"));
    return real(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    wait_micros(micros("SLOW_IO_SYNC_US"));
    return real(fd);
}

int sync_file_range(int fd, off64_t at, off64_t len, unsigned int flags) {
    REAL(sync_file_range);
    wait_micros(micros("SLOW_IO_SYNC_US"));
    return real(fd, at, len, flags);
}
