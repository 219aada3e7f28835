/*
 * sqlite_lock.c -- one backend writes a history file, whatever the process.
 *
 * Two brokers given one database (`make run` twice, a broker and
 * aimdb-bridge on the same aimdb.conf) would both write it.  SQLite keeps
 * each transaction whole, but the rest of this backend assumes it is the
 * file's only writer: retention deletes, damage moves the file aside,
 * a replaced file is reopened, each under the other's feet.  So a backend
 * holds an exclusive flock(2) on FILE.lock beside the database from before
 * SQLite opens it until after the last connection is closed, and a second
 * backend on the same path is refused at open, naming the pid that holds it
 * (written into the lock file by its holder).
 *
 * Why a file of its own: the database itself is moved aside or replaced
 * while running (sqlite_recovery.c); the lock file never is, so the lock
 * stays with the path.  Why flock: its locks and SQLite's POSIX record
 * locks do not see each other, and closing this descriptor cannot drop a
 * lock SQLite holds (closing any descriptor of a file drops the process's
 * POSIX locks on that file).  The kernel releases the lock however the
 * process ends, so a crash leaves no stale lock; the file that stays behind
 * holds nothing.  Read-only tools (sqlite3, backups) take no such lock and
 * are not refused.  In-memory databases and "file:" URIs take none either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sqlite_internal.h"

/* The pid the holder wrote, or 0 if it cannot be read. */
static long holder_pid(int fd) {
    char text[24] = "";
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    return n > 0 ? strtol(text, NULL, 10) : 0;
}

static void write_pid(int fd) {
    char text[24];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) != n) {
        /* The pid only makes a refusal's message better; the lock holds. */
    }
}

int sq_lock_take(sq_backend *b, char *err, size_t errlen) {
    const char *path = b->opts.path;
    if (b->memory || strncmp(path, "file:", 5) == 0) return AIMDB_OK;
    size_t cap = strlen(path) + sizeof(".lock");
    char *lock_path = malloc(cap);
    if (!lock_path) {
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    snprintf(lock_path, cap, "%s.lock", path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    int rc = AIMDB_OK;
    if (fd < 0) {
        aimdb_errorf(err, errlen, "cannot open %s: %s", lock_path, strerror(errno));
        rc = AIMDB_EIO;
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? holder_pid(fd) : 0;
        if (e != EWOULDBLOCK)
            aimdb_errorf(err, errlen, "cannot lock %s: %s", lock_path, strerror(e));
        else if (pid > 0)
            aimdb_errorf(err, errlen,
                         "in use by process %ld, which holds %s: two brokers (or a broker and "
                         "aimdb-bridge) cannot share one history; give each its own database",
                         pid, lock_path);
        else
            aimdb_errorf(err, errlen,
                         "in use by another process, which holds %s: two brokers (or a broker "
                         "and aimdb-bridge) cannot share one history; give each its own database",
                         lock_path);
        close(fd);
        rc = AIMDB_EIO;
    } else {
        write_pid(fd);
        b->lock_fd = fd;
    }
    free(lock_path);
    return rc;
}

void sq_lock_release(sq_backend *b) {
    if (b->lock_fd < 0) return;
    close(b->lock_fd); /* releases the flock */
    b->lock_fd = -1;
}
