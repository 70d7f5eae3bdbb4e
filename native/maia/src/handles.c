/* Generation-tagged, device-tagged, keyed-check 64-bit handles. */
#include <stdlib.h>

#include "maia_internal.h"

uint64_t g_handle_secret = 0x9e3779b97f4a7c15ull;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t check_bits(uint64_t kind, uint64_t dev, uint64_t gen, uint64_t slot) {
    uint64_t body = (kind << 60) | (dev << 40) | (gen << 20) | slot;
    return mix64(body ^ g_handle_secret) >> 52; /* 12 bits */
}

static uint64_t encode(int kind, int dev, uint32_t gen, uint32_t slot) {
    uint64_t k = (uint64_t)kind & 0xf, d = (uint64_t)dev & 0xff;
    return (k << 60) | (check_bits(k, d, gen, slot) << 48) | (d << 40) | ((uint64_t)gen << 20) |
           (uint64_t)slot;
}

int handle_device(uint64_t h) { return (int)((h >> 40) & 0xff); }

bool handle_plausible(uint64_t h, int kind) {
    uint64_t k = h >> 60, d = (h >> 40) & 0xff, gen = (h >> 20) & HGEN_MAX, slot = h & HSLOT_MAX;
    if (k != (uint64_t)kind || gen == 0) return false;
    return ((h >> 48) & 0xfff) == check_bits(k, d, gen, slot);
}

void ht_init(htable *t, int kind) {
    t->slots = NULL;
    t->n = t->cap = 0;
    t->free_head = t->free_tail = UINT32_MAX;
    t->live = 0;
    t->kind = kind;
}

void ht_destroy(htable *t) {
    free(t->slots);
    ht_init(t, t->kind);
}

uint64_t ht_insert(htable *t, int device, void *obj) {
    uint32_t slot;
    if (t->free_head != UINT32_MAX) {
        slot = t->free_head;
        t->free_head = t->slots[slot].next;
        if (t->free_head == UINT32_MAX) t->free_tail = UINT32_MAX;
    } else {
        if (t->n > HSLOT_MAX) return 0;
        if (t->n == t->cap) {
            uint32_t ncap = t->cap ? t->cap * 2 : 64;
            if (ncap > HSLOT_MAX + 1) ncap = HSLOT_MAX + 1;
            hslot *ns = realloc(t->slots, (size_t)ncap * sizeof *ns);
            if (!ns) return 0;
            t->slots = ns;
            t->cap = ncap;
        }
        slot = t->n++;
        t->slots[slot].gen = 1;
    }
    t->slots[slot].obj = obj;
    t->slots[slot].next = UINT32_MAX;
    t->live++;
    return encode(t->kind, device, t->slots[slot].gen, slot);
}

static const char *kind_name(int kind) {
    switch (kind) {
    case HK_BUFFER: return "buffer";
    case HK_QUEUE: return "queue";
    case HK_EVENT: return "event";
    default: return "object";
    }
}

maia_status ht_lookup(const htable *t, uint64_t h, int want_device, bool release, void **obj,
                      const char *what) {
    const char *kn = kind_name(t->kind);
    if (!what) what = kn;
    if (h == 0)
        return maia_set_error(MAIA_ERROR_INVALID_HANDLE, "%s: null %s handle", what, kn);
    if (!handle_plausible(h, t->kind))
        return maia_set_error(MAIA_ERROR_INVALID_HANDLE,
                              "%s: 0x%016llx is not a %s handle issued by this runtime", what,
                              (unsigned long long)h, kn);
    int dev = handle_device(h);
    if (want_device >= 0 && dev != want_device)
        return maia_set_error(MAIA_ERROR_FOREIGN_HANDLE,
                              "%s: %s 0x%016llx belongs to maia:%d, not maia:%d", what, kn,
                              (unsigned long long)h, dev, want_device);
    uint32_t gen = (uint32_t)((h >> 20) & HGEN_MAX), slot = (uint32_t)(h & HSLOT_MAX);
    if (slot >= t->n || gen > t->slots[slot].gen)
        return maia_set_error(MAIA_ERROR_INVALID_HANDLE,
                              "%s: 0x%016llx is not a %s handle issued by this runtime", what,
                              (unsigned long long)h, kn);
    if (gen < t->slots[slot].gen || t->slots[slot].obj == NULL) {
        if (release)
            return maia_set_error(MAIA_ERROR_DOUBLE_FREE, "%s: %s 0x%016llx was already released",
                                  what, kn, (unsigned long long)h);
        return maia_set_error(MAIA_ERROR_USE_AFTER_FREE, "%s: %s 0x%016llx was released", what,
                              kn, (unsigned long long)h);
    }
    *obj = t->slots[slot].obj;
    return MAIA_OK;
}

void ht_remove(htable *t, uint64_t h) {
    uint32_t slot = (uint32_t)(h & HSLOT_MAX);
    hslot *s = &t->slots[slot];
    s->obj = NULL;
    s->gen++;
    t->live--;
    if (s->gen > HGEN_MAX) return; /* retired: never reused, old handles stay stale */
    s->next = UINT32_MAX;
    if (t->free_tail == UINT32_MAX) {
        t->free_head = t->free_tail = slot;
    } else {
        t->slots[t->free_tail].next = slot;
        t->free_tail = slot;
    }
}
