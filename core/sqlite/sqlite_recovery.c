/*
 * sqlite_recovery.c -- history that is damaged, deleted or replaced never
 * takes the process (a broker: MQTT for every device) down with it.
 *
 * Damaged: SQLite says SQLITE_NOTADB (not a database) or SQLITE_CORRUPT (a
 * page that makes no sense), at open or later on any commit, retention
 * delete or query.  The file is moved aside, never deleted, as
 * FILE.corrupt-YYYYMMDDTHHMMSSZ (UTC; no ':' so FAT-formatted SD cards take
 * it) together with its -wal, -shm and -journal under the same new name, so
 * `sqlite3 FILE.corrupt-... .recover` sees the set as it was, and a new,
 * empty history is started at the path.  This is what Home Assistant's
 * recorder does with a malformed database, and for the same reason: a
 * damaged b-tree is not safe to keep writing (SQLite's advice is to stop
 * writing it), and a gateway cannot wait for an operator.  Damage found
 * while running is handled the same way wherever it is found, a query
 * included: a query that hit a bad page means the file is bad, and every
 * later write risks spreading the damage.  Each finding is counted
 * (corrupt_errors); each move aside is logged as an ERROR naming where the
 * file went and counted (recovered).  The rows of a commit that failed on
 * the damaged file stay queued and go to the new one, so none is lost.
 *
 * A file that keeps coming back damaged (a failing card) would otherwise be
 * moved aside on every commit: a move aside happens at most once every
 * RECOVERY_INTERVAL_MS; in between, commits fail and are retried as any
 * write error is, and the held-back damage is logged (rate-limited).  The
 * files moved aside hold disjoint stretches of history, so together they
 * take no more room than one file would have; retention no longer touches
 * them: they are the operator's.
 *
 * Deleted or replaced: SQLite keeps writing to a file it has open even
 * after the path stops naming it; queries would serve the deleted file and
 * every row after is lost.  Before each commit and every HEALTH_CHECK_MS
 * when idle, the writer compares the path's device and inode with those of
 * the file it opened (a stat: about a microsecond, against milliseconds per
 * commit).  When they differ it checkpoints (everything committed goes into
 * the old file, wherever it now is: `mv` keeps it complete), removes the
 * -wal and -shm at the path if they are still the old file's, and opens
 * the path again: a new, empty database if nothing is there, or the file
 * now there (a restored backup), moved aside in turn if damaged.  Counted
 * (reopened) and logged.  Removing the old -wal and -shm is not optional:
 * SQLite would apply the old WAL to a new file of the same name, and a new
 * connection would share the old -shm with readers still on the old file.
 * Rows committed between the deletion and the next check -- at most the
 * batch in flight -- went into the deleted file.
 *
 * A new, empty file continues the ids of the one it replaces, which an
 * uplink resumes by (continue_ids, sqlite_writer.c).
 *
 * Readers still open on the old file see the health generation change and
 * reopen (sqlite_reader.c).  They were opened read-only, so closing them
 * never checkpoints and never deletes the -wal at the path, which by then
 * belongs to the new file; the writer's own old connection is closed with
 * SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE for the same reason.
 *
 * db_bytes is what the files take: the database, its -wal and its -shm.
 * The WAL is the part that grows between checkpoints (up to
 * journal_size_limit and more during a long read), so counting pages alone
 * reported 118 KB while the WAL filled a 2 MB disk.
 *
 * Only the writer thread moves, reopens or stats files.  A reader only
 * reports (sq_health_report) and pokes the writer.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sqlite_internal.h"

#define HEALTH_CHECK_MS 1000
#define RECOVERY_INTERVAL_MS 60000
#define HEALTH_LOG_INTERVAL_MS 10000

/* Files SQLite keeps beside a database under its name plus a suffix. */
static const char *const companions[] = {"-wal", "-shm", "-journal"};
#define N_COMPANIONS (sizeof(companions) / sizeof(companions[0]))

bool sq_health_damage_rc(int rc) {
    rc &= 0xff; /* extended codes are on: SQLITE_CORRUPT_INDEX and the like */
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

void sq_health_init(sq_backend *b) {
    pthread_mutex_init(&b->health.lock, NULL);
}

void sq_health_destroy(sq_backend *b) {
    pthread_mutex_destroy(&b->health.lock);
    free(b->health.file);
    b->health.file = NULL;
}

int64_t sq_health_due(const sq_backend *b) {
    return b->health.file ? b->health.next_check_ms : 0;
}

void sq_health_report(sq_backend *b, unsigned gen, const char *what, const char *msg) {
    sq_health *h = &b->health;
    atomic_fetch_add_explicit(&h->corrupt, 1, memory_order_relaxed);
    pthread_mutex_lock(&h->lock);
    if (!h->damaged) {
        h->damaged = true;
        h->damaged_generation = gen;
        snprintf(h->why, sizeof(h->why), "%s: %s", what, msg);
    }
    pthread_mutex_unlock(&h->lock);
    sq_queue_poke(&b->queue);
}

/* --------------------------------------------------------------- files */

static sq_file_id file_id(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return (sq_file_id){0};
    return (sq_file_id){st.st_dev, st.st_ino};
}

static bool same_file(sq_file_id a, sq_file_id b) {
    return a.ino != 0 && a.ino == b.ino && a.dev == b.dev;
}

/* base + suffix into buf; false if it does not fit. */
static bool join(char *buf, size_t cap, const char *base, const char *suffix) {
    return (size_t)snprintf(buf, cap, "%s%s", base, suffix) < cap;
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void update_bytes(sq_backend *b) {
    char name[PATH_MAX];
    struct stat st;
    int64_t total = stat(b->health.file, &st) == 0 ? (int64_t)st.st_size : 0;
    for (size_t i = 0; i < 2; i++) /* -wal, -shm; a -journal never outlives a transaction */
        if (join(name, sizeof(name), b->health.file, companions[i]) && stat(name, &st) == 0)
            total += (int64_t)st.st_size;
    atomic_store_explicit(&b->db_bytes, total, memory_order_relaxed);
}

/* The writer has the path open anew: remember what it names, and let the
 * readers go from the previous file. */
static void note_opened(sq_backend *b) {
    sq_health *h = &b->health;
    char name[PATH_MAX];
    h->db = file_id(h->file);
    h->wal = join(name, sizeof(name), h->file, "-wal") ? file_id(name) : (sq_file_id){0};
    h->shm = join(name, sizeof(name), h->file, "-shm") ? file_id(name) : (sq_file_id){0};
    /* The idle checks start now, not with the first commit: a file deleted
     * before anything was written must be noticed too. */
    h->next_check_ms = aimdb_monotonic_ms() + HEALTH_CHECK_MS;
    atomic_fetch_add(&h->generation, 1);
    sq_readers_drop_stale(b);
    update_bytes(b);
}

/* Rename the file and its companions to FILE.corrupt-STAMP[-N]; aside gets
 * the new name.  0, or the errno of renaming the file itself (a companion
 * that cannot be renamed is logged: SQLite ignores a stale -wal or -shm
 * next to a new, empty file, and a -journal of ours cannot be hot). */
static int move_aside(sq_backend *b, char *aside, size_t cap) {
    const char *file = b->health.file;
    time_t t = (time_t)(b->rt->now_ms(b->rt->self) / 1000);
    struct tm tm;
    char stamp[32], name[PATH_MAX], dest[PATH_MAX];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    /* Two moves in one second (or a clock set back) must not overwrite an
     * earlier copy: a -N is added until no file of the set has the name. */
    for (unsigned n = 1;; n++) {
        int len = n == 1 ? snprintf(aside, cap, "%s.corrupt-%s", file, stamp)
                         : snprintf(aside, cap, "%s.corrupt-%s-%u", file, stamp, n);
        if (len < 0 || (size_t)len >= cap) return ENAMETOOLONG;
        bool taken = exists(aside);
        for (size_t i = 0; !taken && i < N_COMPANIONS; i++)
            taken = !join(dest, sizeof(dest), aside, companions[i]) || exists(dest);
        if (!taken) break;
    }
    if (rename(file, aside) != 0) return errno;
    for (size_t i = 0; i < N_COMPANIONS; i++) {
        if (!join(name, sizeof(name), file, companions[i]) || !exists(name)) continue;
        join(dest, sizeof(dest), aside, companions[i]); /* fits: checked above */
        if (rename(name, dest) != 0)
            aimdb_log(b->rt, AIMDB_LOG_WARNING, "history: moving %s to %s: %s", name, dest,
                      strerror(errno));
    }
    return 0;
}

/* Close the writer's connection on a file it must not touch again: no
 * checkpoint on close, which would also delete the -wal by its name. */
static void close_old(sq_backend *b) {
    if (b->wdb) sqlite3_db_config(b->wdb, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sq_writer_close_connection(b);
}

/* The writer's connection is closed and the file at the path is damaged
 * (why): move it aside and open a new one there. */
static int recover(sq_backend *b, const char *why, char *err, size_t errlen) {
    sq_health *h = &b->health;
    char aside[PATH_MAX];
    h->next_recovery_ms = aimdb_monotonic_ms() + RECOVERY_INTERVAL_MS;
    int e = move_aside(b, aside, sizeof(aside));
    if (e != 0) {
        aimdb_errorf(err, errlen, "%s is damaged (%s) and cannot be moved aside: %s", h->file, why,
                     strerror(e));
        return AIMDB_EIO;
    }
    aimdb_log(b->rt, AIMDB_LOG_ERROR,
              "history: %s is damaged (%s): moved it aside to %s (with its -wal and -shm, if "
              "any) and started a new, empty history in its place; MQTT is not affected. The "
              "old file is kept: `sqlite3 %s .recover` salvages what it still holds",
              h->file, why, aside, aside);
    int rc = sq_writer_open(b, err, errlen);
    if (rc == AIMDB_OK) note_opened(b);
    else close_old(b);
    /* Counted once the new file is in place (or failed to open), so whoever
     * sees the count finds the readers on it. */
    atomic_fetch_add(&h->recovered, 1);
    return rc;
}

/* Which file SQLite opened: an absolute path, also for a file: URI.  An
 * in-memory database has none and nothing to watch (nor has a backend
 * that ran out of memory here: it is then unwatched, not refused). */
static void learn_file(sq_backend *b) {
    if (b->health.file || b->memory || !b->wdb) return;
    const char *file = sqlite3_db_filename(b->wdb, "main");
    if (file && *file) b->health.file = strdup(file);
}

int sq_health_open(sq_backend *b, char *err, size_t errlen) {
    sq_health *h = &b->health;
    int rc = sq_writer_open(b, err, errlen);
    learn_file(b);
    if (rc == AIMDB_OK) {
        if (h->file) note_opened(b);
        return rc;
    }
    int why = b->wdb ? sqlite3_extended_errcode(b->wdb) : SQLITE_CANTOPEN;
    close_old(b);
    if (!h->file || !sq_health_damage_rc(why)) return rc;
    atomic_fetch_add(&h->corrupt, 1);
    int64_t wait = h->next_recovery_ms - aimdb_monotonic_ms();
    if (wait > 0) {
        aimdb_errorf(err, errlen, "%s is damaged (%s); moved aside again in %lld s at the earliest",
                     h->file, sqlite3_errstr(why), (long long)(wait + 999) / 1000);
        return rc;
    }
    return recover(b, sqlite3_errstr(why), err, errlen);
}

/* ------------------------------------------------------------- running */

/* Damage reported against the file open now, and due to be acted on?
 * Reports against a file already replaced are dropped. */
static bool take_damage(sq_backend *b, char *why, size_t cap) {
    sq_health *h = &b->health;
    int64_t now = aimdb_monotonic_ms();
    bool act = false, held = false;
    pthread_mutex_lock(&h->lock);
    if (h->damaged && h->damaged_generation != atomic_load(&h->generation)) {
        h->damaged = false;
    } else if (h->damaged && now >= h->next_recovery_ms) {
        snprintf(why, cap, "%s", h->why);
        h->damaged = false;
        act = true;
    } else {
        held = h->damaged;
    }
    pthread_mutex_unlock(&h->lock);
    uint64_t suppressed;
    if (held && aimdb_log_limit_pass(&h->held_log, now, HEALTH_LOG_INTERVAL_MS, &suppressed))
        aimdb_log(b->rt, AIMDB_LOG_ERROR,
                  "history: %s is damaged again (%llu damage errors in all); it was moved "
                  "aside less than %d s ago, so writes fail and are retried until it is moved "
                  "again in %lld s (%llu such lines not logged)",
                  h->file, (unsigned long long)atomic_load(&h->corrupt),
                  RECOVERY_INTERVAL_MS / 1000,
                  (long long)(h->next_recovery_ms - now + 999) / 1000,
                  (unsigned long long)suppressed);
    return act;
}

/* The path no longer names the file the writer has open. */
static void reopen_moved(sq_backend *b) {
    sq_health *h = &b->health;
    char name[PATH_MAX], err[512];
    bool missing = !exists(h->file);
    /* A file moved away (mv) lives on and gets everything committed; one
     * deleted cannot be told from it here, so it gets the same few writes.
     * PASSIVE never waits for a reader; one mid-query may keep the last
     * frames in the WAL, which goes below, so a moved file may miss them. */
    sqlite3_wal_checkpoint_v2(b->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    close_old(b);
    if (join(name, sizeof(name), h->file, "-wal") && same_file(file_id(name), h->wal))
        unlink(name);
    if (join(name, sizeof(name), h->file, "-shm") && same_file(file_id(name), h->shm))
        unlink(name);
    aimdb_log(b->rt, AIMDB_LOG_ERROR,
              "history: %s was %s while in use; rows committed until now went with it. %s",
              h->file, missing ? "deleted" : "replaced by another file",
              missing ? "Started a new, empty history there" : "Now writing to the file there");
    if (sq_health_open(b, err, sizeof(err)) != AIMDB_OK)
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: reopening: %s", err);
    atomic_fetch_add(&h->reopened, 1); /* after: see recover */
}

bool sq_health_check(sq_backend *b) {
    sq_health *h = &b->health;
    if (!h->file) return false;
    h->next_check_ms = aimdb_monotonic_ms() + HEALTH_CHECK_MS;
    char why[sizeof(h->why)], err[512];
    bool changed = true;
    /* A file that is gone first: damage reported against it went with it
     * (reopening bumps the generation, which drops those reports). */
    if (b->wdb && !same_file(file_id(h->file), h->db)) {
        reopen_moved(b);
    } else if (take_damage(b, why, sizeof(why))) {
        close_old(b);
        if (recover(b, why, err, sizeof(err)) != AIMDB_OK)
            aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: %s", err);
    } else if (!b->wdb) {
        /* Opening failed before (logged then); retried on every check. */
        uint64_t suppressed;
        changed = sq_health_open(b, err, sizeof(err)) == AIMDB_OK;
        if (!changed && aimdb_log_limit_pass(&h->reopen_log, aimdb_monotonic_ms(),
                                             HEALTH_LOG_INTERVAL_MS, &suppressed))
            aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: reopening: %s (%llu such lines not "
                      "logged)", err, (unsigned long long)suppressed);
    } else {
        changed = false;
    }
    update_bytes(b);
    return changed;
}
