/* Simulated power loss for redis-server's append-only file, loaded with LD_PRELOAD by the durability tests.
 *
 * SIGKILL alone cannot tell whether Redis fsyncs before it acknowledges: bytes that write() handed to the kernel
 * survive the death of the process in the page cache. This shim holds every write() to an AOF increment file
 * (`*.incr.aof`) in the process's own memory until the process calls fsync()/fdatasync() on that descriptor,
 * and only then passes the bytes to the kernel. A SIGKILL then loses exactly what a power cut would lose: the
 * bytes that were written but never fsynced. With `appendfsync always` Redis fsyncs before it replies, so
 * nothing acknowledged is lost; with `appendfsync no` or `everysec` acknowledged writes are lost, which is what
 * the tests check in both directions.
 *
 * Nothing here is shipped: the tests compile it into a temporary directory with the system C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FDS 4096
#define SUFFIX ".incr.aof"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *buf[MAX_FDS];
static size_t len[MAX_FDS], cap[MAX_FDS];
static int tracked[MAX_FDS];

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);

__attribute__((constructor)) static void init(void) {
    if (real_write) return;
    real_write = dlsym(RTLD_NEXT, "write");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
}

static int is_aof(const char *path) {
    size_t n = strlen(path), s = strlen(SUFFIX);
    return n >= s && strcmp(path + n - s, SUFFIX) == 0;
}

static int track(int fd, const char *path) {
    if (fd >= 0 && fd < MAX_FDS && is_aof(path)) {
        pthread_mutex_lock(&lock);
        tracked[fd] = 1;
        len[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return fd;
}

/* Pass the held bytes to the kernel; caller holds the lock. */
static int flush_fd(int fd) {
    size_t off = 0;
    while (off < len[fd]) {
        ssize_t w = real_write(fd, buf[fd] + off, len[fd] - off);
        if (w < 0) return -1;
        off += (size_t)w;
    }
    len[fd] = 0;
    return 0;
}

/* The optional third argument of open(2): only present, and only read, with O_CREAT. */
#define MODE_ARG(flags, mode)           \
    do {                                \
        if ((flags) & O_CREAT) {        \
            va_list ap;                 \
            va_start(ap, flags);        \
            mode = va_arg(ap, mode_t);  \
            va_end(ap);                 \
        }                               \
    } while (0)

int open(const char *path, int flags, ...) {
    init();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return track(real_open(path, flags, mode), path);
}

int open64(const char *path, int flags, ...) {
    init();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return track((real_open64 ? real_open64 : real_open)(path, flags, mode), path);
}

int openat(int dirfd, const char *path, int flags, ...) {
    init();
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return track(real_openat(dirfd, path, flags, mode), path);
}

ssize_t write(int fd, const void *data, size_t n) {
    init();
    if (fd < 0 || fd >= MAX_FDS || !tracked[fd]) return real_write(fd, data, n);
    pthread_mutex_lock(&lock);
    if (len[fd] + n > cap[fd]) {
        size_t want = (len[fd] + n) * 2;
        char *grown = realloc(buf[fd], want);
        if (grown == NULL) {
            pthread_mutex_unlock(&lock);
            return -1;
        }
        buf[fd] = grown;
        cap[fd] = want;
    }
    memcpy(buf[fd] + len[fd], data, n);
    len[fd] += n;
    pthread_mutex_unlock(&lock);
    return (ssize_t)n;
}

static int sync_with(int fd, int (*real)(int)) {
    init();
    if (fd >= 0 && fd < MAX_FDS && tracked[fd]) {
        pthread_mutex_lock(&lock);
        int rc = flush_fd(fd);
        pthread_mutex_unlock(&lock);
        if (rc < 0) return -1;
    }
    return real(fd);
}

int fsync(int fd) {
    init();
    return sync_with(fd, real_fsync);
}

int fdatasync(int fd) {
    init();
    return sync_with(fd, real_fdatasync);
}

/* close() without fsync does not make data durable either, but the kernel would keep it through a process
 * crash; a power cut would not. Model the power cut: unsynced bytes of a closed descriptor are dropped. */
int close(int fd) {
    init();
    if (fd >= 0 && fd < MAX_FDS && tracked[fd]) {
        pthread_mutex_lock(&lock);
        tracked[fd] = 0;
        len[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}
