/*
 * log_limit.c -- keep a repeating failure visible without flooding the log.
 *
 * A full disk, a record whose values have no JSON form or a broker that is
 * down fails on every value; logging each one would bury everything else.  The first failure is
 * logged at once, later ones at most once per interval with the count held
 * back in between, so the log still says how often it happened.
 */
#include "aimdb/runtime.h"

bool aimdb_log_limit_pass(aimdb_log_limit *l, int64_t now_ms, int64_t interval_ms,
                          uint64_t *held) {
    if (l->started && now_ms < l->next_ms) {
        l->held++;
        return false;
    }
    l->started = true;
    l->next_ms = now_ms + interval_ms;
    if (held) *held = l->held;
    l->held = 0;
    return true;
}
