/*
 * buffer.c -- the value store behind a record: ring, latest and mailbox.
 *
 * The three kinds differ only in how many slots they keep and in what a
 * read means, so they share one structure and one sequence counter (see
 * aimdb_buffer in core_internal.h).  Nothing here locks: the owning record
 * holds its lock around every call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

/* ------------------------------------------------------------ text form */

int aimdb_buffer_parse(const char *text, aimdb_buffer_cfg *out) {
    if (!text || !out) return AIMDB_EINVAL;
    if (strcmp(text, "latest") == 0) {
        *out = (aimdb_buffer_cfg){AIMDB_BUFFER_LATEST, 1};
        return AIMDB_OK;
    }
    if (strcmp(text, "mailbox") == 0) {
        *out = (aimdb_buffer_cfg){AIMDB_BUFFER_MAILBOX, 1};
        return AIMDB_OK;
    }
    if (strncmp(text, "ring:", 5) != 0) return AIMDB_EINVAL;
    const char *digits = text + 5;
    unsigned long n = 0;
    if (*digits == '\0') return AIMDB_EINVAL;
    for (const char *p = digits; *p; p++) {
        if (*p < '0' || *p > '9') return AIMDB_EINVAL;
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > AIMDB_RING_MAX) return AIMDB_EINVAL;
    }
    if (n == 0) return AIMDB_EINVAL;
    *out = (aimdb_buffer_cfg){AIMDB_BUFFER_RING, (uint32_t)n};
    return AIMDB_OK;
}

int aimdb_buffer_format(const aimdb_buffer_cfg *cfg, char *out, size_t cap) {
    switch (cfg->kind) {
    case AIMDB_BUFFER_RING: return snprintf(out, cap, "ring:%u", (unsigned)cfg->capacity);
    case AIMDB_BUFFER_LATEST: return snprintf(out, cap, "latest");
    case AIMDB_BUFFER_MAILBOX: return snprintf(out, cap, "mailbox");
    }
    return snprintf(out, cap, "unknown");
}

/* ------------------------------------------------------------- lifetime */

/* The slots a buffer may grow to: a ring's capacity, one for the others. */
static uint32_t max_slots(const aimdb_buffer *b) {
    return b->cfg.kind == AIMDB_BUFFER_RING ? b->cfg.capacity : 1;
}

/*
 * Grow the slot array to n > nslots slots, the new ones empty.  On failure
 * nslots and every value stay as they were (the array may have grown; that
 * is harmless).  Fixed-size values live in one block that grows with the
 * array rather than being allocated for N up front, which would keep most
 * of what a sparse record saves (8 KiB of an int64 ring:1024); one block
 * also keeps buffer_free simple.  realloc may move the block, so every
 * slot is re-pointed: safe because no slot pointer outlives the record lock
 * (see aimdb_slot).
 */
static int grow_to(aimdb_buffer *b, uint32_t n) {
    aimdb_slot *slots = realloc(b->slots, (size_t)n * sizeof(*slots));
    if (!slots) return AIMDB_ENOMEM;
    b->slots = slots;
    memset(slots + b->nslots, 0, (size_t)(n - b->nslots) * sizeof(*slots));
    if (n > b->slots_alloc) {
        aimdb_memory_add(b->mem, (size_t)(n - b->slots_alloc) * sizeof(*slots));
        b->slots_alloc = n;
    }
    if (b->fixed_size) {
        unsigned char *old = b->nslots ? slots[0].data : NULL;
        unsigned char *block = realloc(old, (size_t)n * b->fixed_size);
        if (!block) return AIMDB_ENOMEM;
        aimdb_memory_add(b->mem, (size_t)(n - b->nslots) * b->fixed_size);
        for (uint32_t i = 0; i < n; i++) {
            slots[i].data = block + (size_t)i * b->fixed_size;
            slots[i].cap = b->fixed_size;
        }
    }
    b->nslots = n;
    return AIMDB_OK;
}

int aimdb_buffer_init(aimdb_buffer *b, const aimdb_buffer_cfg *cfg, size_t fixed_size,
                      aimdb_memory *mem) {
    memset(b, 0, sizeof(*b));
    b->cfg = *cfg;
    b->fixed_size = fixed_size;
    b->mem = mem;
    b->next_seq = 1;
    b->first_seq = 1;
    uint32_t max = max_slots(b);
    int rc = grow_to(b, max < AIMDB_RING_INITIAL_SLOTS ? max : AIMDB_RING_INITIAL_SLOTS);
    if (rc != AIMDB_OK) {
        free(b->slots); /* the fixed-size block, if any, was not allocated */
        b->slots = NULL;
    }
    return rc;
}

void aimdb_buffer_free(aimdb_buffer *b) {
    if (!b->slots) return;
    size_t bytes = (size_t)b->slots_alloc * sizeof(*b->slots);
    if (b->fixed_size) {
        free(b->slots[0].data);
        bytes += (size_t)b->nslots * b->fixed_size;
    } else {
        for (uint32_t i = 0; i < b->nslots; i++) {
            free(b->slots[i].data);
            bytes += b->slots[i].cap;
        }
    }
    aimdb_memory_sub(b->mem, bytes);
    free(b->slots);
    b->slots = NULL;
}

/* ---------------------------------------------------------------- write */

/* A slot this large shrinks to a value under half its size. */
#define SHRINK_ABOVE 4096

static aimdb_slot *slot_for_seq(aimdb_buffer *b, uint64_t seq) {
    return &b->slots[(seq - 1) % b->nslots];
}

/*
 * A ring grows here and nowhere else: when the next value would overwrite a
 * live slot while nslots < capacity.  Because it grows at that moment every
 * time, a ring below capacity has never wrapped -- it holds seqs
 * 1 .. next_seq - 1 in slots 0 .. next_seq - 2 -- and "would overwrite"
 * is exactly next_seq - 1 == nslots.  So every live seq s sits at
 * (s - 1) % nslots == s - 1 == (s - 1) % new_nslots: nothing moves, the new
 * slots are empty, and cursors, lag counts and the newest slot mean what
 * they meant.  Once at capacity the ring wraps as it always did and this
 * never allocates again.
 */
static int make_room(aimdb_buffer *b) {
    uint32_t max = max_slots(b);
    if (b->nslots == max || b->next_seq - 1 != b->nslots) return AIMDB_OK;
    return grow_to(b, b->nslots > max / 2 ? max : b->nslots * 2);
}

int aimdb_buffer_put(aimdb_buffer *b, const void *data, size_t len, int64_t ts_ms,
                     const char *source, bool *overwritten) {
    /* No room means this value is rejected (produce counts it), not that the
     * ring wraps early: that would silently keep fewer than N values. */
    if (make_room(b) != AIMDB_OK) return AIMDB_ENOMEM;
    aimdb_slot *s = slot_for_seq(b, b->next_seq);
    if (len > s->cap || (s->cap > SHRINK_ABOVE && len < s->cap / 2)) {
        /* Grow to the value's size: slots converge on the largest payload
         * a record sees and stop allocating.  A slot that once held a large
         * value and now gets small ones shrinks, or one stray megabyte
         * would stay charged to the slot for good. */
        size_t cap = len ? len : 1;
        unsigned char *resized = realloc(s->data, cap);
        if (!resized) {
            if (len > s->cap) return AIMDB_ENOMEM;
            cap = s->cap; /* could not shrink: keep the larger block */
        } else {
            s->data = resized;
        }
        aimdb_memory_add(b->mem, cap);
        aimdb_memory_sub(b->mem, s->cap);
        s->cap = cap;
    }
    if (len) memcpy(s->data, data, len);
    s->len = len;
    s->ts_ms = ts_ms;
    s->source = source;
    s->seq = b->next_seq++;
    *overwritten = b->cfg.kind == AIMDB_BUFFER_MAILBOX && b->mailbox_full;
    b->mailbox_full = true;
    return AIMDB_OK;
}

/* ----------------------------------------------------------------- read */

uint64_t aimdb_buffer_start_cursor(const aimdb_buffer *b, bool is_tap) {
    /* A late latest-reader gets the current value once; everything else
     * (ring readers, every tap) starts with the next value produced. */
    if (!is_tap && b->cfg.kind == AIMDB_BUFFER_LATEST && b->next_seq > 1)
        return b->next_seq - 1;
    return b->next_seq;
}

bool aimdb_buffer_pending(const aimdb_buffer *b, uint64_t cursor) {
    return cursor < b->next_seq;
}

/* The oldest seq a ring holds (next_seq if it holds none). */
static uint64_t ring_oldest(const aimdb_buffer *b) {
    uint64_t oldest = b->next_seq > b->nslots ? b->next_seq - b->nslots : 1;
    return b->first_seq > oldest ? b->first_seq : oldest;
}

const aimdb_slot *aimdb_buffer_back(const aimdb_buffer *b, uint64_t n) {
    /* A ring holds next_seq - oldest values; latest and mailbox one. */
    uint64_t held = b->cfg.kind == AIMDB_BUFFER_RING ? b->next_seq - ring_oldest(b)
                                                     : b->next_seq > 1;
    if (n >= held) return NULL;
    return &b->slots[(b->next_seq - 2 - n) % b->nslots];
}

bool aimdb_buffer_give_way(aimdb_buffer *b, uint64_t unread) {
    if (b->cfg.kind != AIMDB_BUFFER_RING || b->fixed_size) return false;
    uint64_t oldest = ring_oldest(b);
    if (oldest + 1 >= b->next_seq || oldest >= unread) return false; /* newest, or unread */
    aimdb_slot *s = slot_for_seq(b, oldest);
    aimdb_memory_sub(b->mem, s->cap);
    free(s->data);
    s->data = NULL;
    s->cap = s->len = 0;
    b->first_seq = oldest + 1;
    return true;
}

static int read_ring(aimdb_buffer *b, uint64_t *cursor, const aimdb_slot **slot,
                     uint64_t *missed) {
    if (*cursor >= b->next_seq) return AIMDB_EAGAIN;
    uint64_t oldest = ring_oldest(b);
    if (*cursor < oldest) {
        *missed = oldest - *cursor;
        *cursor = oldest;
        return AIMDB_LAGGED;
    }
    *slot = slot_for_seq(b, *cursor);
    (*cursor)++;
    return AIMDB_OK;
}

/* latest, and taps on a mailbox: the newest value if it is newer than the
 * cursor; the values in between collapsed by design, so this is no lag. */
static int read_newest(aimdb_buffer *b, uint64_t *cursor, const aimdb_slot **slot) {
    if (*cursor >= b->next_seq) return AIMDB_EAGAIN;
    *slot = &b->slots[0];
    *cursor = b->next_seq;
    return AIMDB_OK;
}

static int take_mailbox(aimdb_buffer *b, const aimdb_slot **slot) {
    if (!b->mailbox_full) return AIMDB_EAGAIN;
    b->mailbox_full = false;
    *slot = &b->slots[0];
    return AIMDB_OK;
}

int aimdb_buffer_read(aimdb_buffer *b, aimdb_read_mode mode, uint64_t *cursor,
                      const aimdb_slot **slot, uint64_t *missed) {
    switch (b->cfg.kind) {
    case AIMDB_BUFFER_RING: return read_ring(b, cursor, slot, missed);
    case AIMDB_BUFFER_LATEST: return read_newest(b, cursor, slot);
    case AIMDB_BUFFER_MAILBOX:
        return mode == AIMDB_READ_TAKE ? take_mailbox(b, slot) : read_newest(b, cursor, slot);
    }
    return AIMDB_EINVAL;
}

/* -------------------------------------------------------------- scratch */

int aimdb_scratch_reserve(aimdb_scratch *s, size_t n) {
    if (n <= s->cap) return AIMDB_OK;
    /* Doubling keeps a tap's batches from reallocating value by value. */
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    unsigned char *grown = realloc(s->data, cap);
    if (!grown) return AIMDB_ENOMEM;
    s->data = grown;
    s->cap = cap;
    return AIMDB_OK;
}

int aimdb_scratch_copy(aimdb_scratch *s, const aimdb_slot *slot, aimdb_value *out) {
    if (aimdb_scratch_reserve(s, slot->len) != AIMDB_OK) return AIMDB_ENOMEM;
    if (slot->len) memcpy(s->data, slot->data, slot->len);
    out->data = s->data;
    out->len = slot->len;
    out->ts_ms = slot->ts_ms;
    out->seq = slot->seq;
    out->source = slot->source;
    return AIMDB_OK;
}
