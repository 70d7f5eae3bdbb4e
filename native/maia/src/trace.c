/* The timeline trace: a bounded ring of executed commands per device. Workers append under
 * the device's trace_mu (a lock nothing else takes: not the queue's, not the allocator's),
 * after the command ran; readers copy out under the same lock. When recording is off the
 * worker checks one atomic and takes no lock. */
#include <stdlib.h>
#include <string.h>

#include "maia_internal.h"

maia_status trace_init(device *d, uint64_t capacity) {
    pthread_mutex_init(&d->trace_mu, NULL);
    d->trace = NULL;
    d->trace_cap = d->trace_start = d->trace_held = d->trace_recorded = d->trace_dropped = 0;
    atomic_init(&d->trace_on, 0);
    if (capacity) {
        d->trace = calloc((size_t)capacity, sizeof *d->trace);
        if (!d->trace) {
            pthread_mutex_destroy(&d->trace_mu);
            return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY,
                                  "maia_init: no host memory for a trace of %llu entries",
                                  (unsigned long long)capacity);
        }
        d->trace_cap = capacity;
        atomic_store(&d->trace_on, 1);
    }
    return MAIA_OK;
}

void trace_destroy(device *d) {
    free(d->trace);
    d->trace = NULL;
    pthread_mutex_destroy(&d->trace_mu);
}

void trace_push(device *d, const maia_trace_entry *e) {
    if (!atomic_load_explicit(&d->trace_on, memory_order_relaxed)) return;
    pthread_mutex_lock(&d->trace_mu);
    if (d->trace_cap) {
        uint64_t slot;
        if (d->trace_held == d->trace_cap) { /* full: overwrite the oldest */
            slot = d->trace_start;
            d->trace_start = (d->trace_start + 1) % d->trace_cap;
            d->trace_dropped++;
        } else {
            slot = (d->trace_start + d->trace_held) % d->trace_cap;
            d->trace_held++;
        }
        d->trace[slot] = *e;
        d->trace_recorded++;
    }
    pthread_mutex_unlock(&d->trace_mu);
}

maia_status maia_trace_set_capacity(int32_t index, uint64_t entries) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (entries > MAIA_TRACE_MAX_EVENTS)
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                              "maia_trace_set_capacity: %llu entries is more than the maximum %u",
                              (unsigned long long)entries, (unsigned)MAIA_TRACE_MAX_EVENTS);
    maia_trace_entry *ring = NULL;
    if (entries) {
        ring = calloc((size_t)entries, sizeof *ring);
        if (!ring)
            return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY,
                                  "maia_trace_set_capacity: no host memory for %llu entries",
                                  (unsigned long long)entries);
    }
    pthread_mutex_lock(&d->trace_mu);
    maia_trace_entry *old = d->trace;
    d->trace = ring;
    d->trace_cap = entries;
    d->trace_start = d->trace_held = d->trace_recorded = d->trace_dropped = 0;
    atomic_store(&d->trace_on, entries != 0);
    pthread_mutex_unlock(&d->trace_mu);
    free(old);
    return MAIA_OK;
}

maia_status maia_trace_get_info(int32_t index, maia_trace_info *info) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!info) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_trace_get_info: info is NULL");
    pthread_mutex_lock(&d->trace_mu);
    info->capacity = d->trace_cap;
    info->held = d->trace_held;
    info->recorded = d->trace_recorded;
    info->dropped = d->trace_dropped;
    pthread_mutex_unlock(&d->trace_mu);
    return MAIA_OK;
}

maia_status maia_trace_clear(int32_t index) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    pthread_mutex_lock(&d->trace_mu);
    d->trace_start = d->trace_held = d->trace_recorded = d->trace_dropped = 0;
    pthread_mutex_unlock(&d->trace_mu);
    return MAIA_OK;
}

maia_status maia_trace_read(int32_t index, maia_trace_entry *out, uint64_t capacity,
                            uint64_t *count, uint64_t *dropped) {
    if (count) *count = 0;
    if (dropped) *dropped = 0;
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (capacity && !out)
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_trace_read: out is NULL");
    pthread_mutex_lock(&d->trace_mu);
    uint64_t n = d->trace_held < capacity ? d->trace_held : capacity;
    uint64_t first = d->trace_cap ? d->trace_cap - d->trace_start : 0; /* entries before the wrap */
    if (n) {
        uint64_t a = n < first ? n : first;
        memcpy(out, d->trace + d->trace_start, (size_t)a * sizeof *out);
        if (n > a) memcpy(out + a, d->trace, (size_t)(n - a) * sizeof *out);
    }
    if (count) *count = n;
    if (dropped) *dropped = d->trace_dropped;
    pthread_mutex_unlock(&d->trace_mu);
    return MAIA_OK;
}
