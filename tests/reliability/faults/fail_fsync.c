/* An LD_PRELOAD shim that makes fsync and fdatasync fail with EIO, as a failing disk does,
 * for the files of one path while a flag file exists. Built and loaded by
 * tests/reliability/test_faults.py against the unmodified ferrymq binary.
 *
 *   FAIL_FSYNC_MATCH  a substring of the file's path (/proc/self/fd/N) that makes it fail
 *   FAIL_FSYNC_ARMED  a path: syncs fail only while this file exists
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int should_fail(int fd) {
    const char *match = getenv("FAIL_FSYNC_MATCH");
    const char *armed = getenv("FAIL_FSYNC_ARMED");
    if (match == NULL || *match == '\0' || armed == NULL || access(armed, F_OK) != 0) {
        return 0;
    }
    char link[64];
    char path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) {
        return 0;
    }
    path[n] = '\0';
    return strstr(path, match) != NULL;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    return real(fd);
}
