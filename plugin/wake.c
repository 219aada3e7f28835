/*
 * wake.c -- waking Mosquitto's event loop from another thread.
 *
 * Mosquitto 2.0.11 sleeps in epoll_wait(..., 100 ms) and raises
 * MOSQ_EVT_TICK once per loop, so without help a reply computed on a query
 * thread would wait up to 100 ms for the next tick.  The broker unblocks
 * every signal but its own (INT, TERM, HUP, USR1, USR2) around that
 * epoll_wait, and epoll_wait is never restarted after a signal handler
 * (signal(7)), so a real-time signal sent to the broker's thread ends the
 * sleep at once: the loop runs, ticks, and the outbox drains.
 *
 * The handler does nothing; it exists so the signal is caught rather than
 * fatal.  It is installed with SA_RESTART: epoll_wait returns EINTR anyway,
 * and any other blocking call the broker thread might be in (a log write
 * to a pipe) is resumed rather than failed.  The signal is one nobody in
 * the process handles (checked at install), and every aimdb thread blocks
 * all signals (host.c), so only the broker thread ever sees it.
 *
 * A signal can come too early: after the tick drained the outbox but
 * before the loop is back in epoll_wait (Mosquitto unblocks signals only
 * around that call, so the handler runs at once and interrupts nothing).
 * The reply would then wait for the next tick, up to 100 ms; seen once in
 * 300 round trips under load.  So every wake-up also arms a one-shot
 * timer that sends the same signal to the broker thread BACKUP_MS later:
 * a lost wake-up costs 2 ms, and a spurious one nothing.  The same timer,
 * armed alone (wake_broker_later), brings the broker thread back for
 * outbox items that a push caught half-way held up (outbox.c).
 */
#define _GNU_SOURCE /* SIGEV_THREAD_ID, gettid */
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plugin.h"

#define BACKUP_MS 2

static void wake_handler(int signo) {
    (void)signo;
}

/* Free: default disposition and not blocked by us.  Search from the top of
 * the real-time range, away from the low ones libraries tend to take. */
static bool signal_is_free(int signo) {
    struct sigaction old;
    if (sigaction(signo, NULL, &old) != 0) return false;
    return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
}

/* A timer that signals the broker thread itself (not the process). */
static bool create_backup_timer(wake *w) {
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = w->signo;
    sev._sigev_un._tid = gettid();
    return timer_create(CLOCK_MONOTONIC, &sev, &w->backup) == 0;
}

bool wake_install(wake *w) {
    w->broker = pthread_self();
    w->signo = 0;
    w->has_backup = false;
    for (int signo = SIGRTMAX - 2; signo >= SIGRTMIN + 4; signo--) {
        if (!signal_is_free(signo)) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = wake_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, NULL) != 0) continue;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, signo);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        w->signo = signo;
        w->has_backup = create_backup_timer(w);
        return true;
    }
    return false;
}

void wake_broker(const wake *w) {
    if (!w->signo) return;
    pthread_kill(w->broker, w->signo);
    wake_broker_later(w);
}

void wake_broker_later(const wake *w) {
    if (!w->has_backup) return;
    struct itimerspec once = {.it_value = {0, BACKUP_MS * 1000000L}};
    timer_settime(w->backup, 0, &once, NULL);
}

void wake_uninstall(wake *w) {
    if (!w->signo) return;
    if (w->has_backup) timer_delete(w->backup);
    w->has_backup = false;
    /* Ignored, not default: a late signal must never terminate the broker,
     * and the handler's code goes away when the plugin is unloaded. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(w->signo, &sa, NULL);
    w->signo = 0;
}
