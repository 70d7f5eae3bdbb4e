/* The HBM arena of each device: a lazily-backed mmap, a best-fit allocator with coalescing,
 * generation-tagged buffer handles and stream-ordered frees. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "maia_internal.h"

#define ALIGN ((uint64_t)MAIA_ALLOC_ALIGNMENT)

/* Under AddressSanitizer the arena is one mmap, invisible to ASan's allocator: a kernel
 * writing past its buffer into a neighbour, into alignment padding or into freed memory
 * would go unseen. So the bytes no live buffer may touch are poisoned -- each allocation's
 * padding past the requested size, and every block when it is freed -- and an access to
 * them is reported like a heap overflow or a use after free. (Never-allocated arena is left
 * unpoisoned: poisoning it would commit shadow for the whole reservation.) Views are
 * bounds-checked against the requested size (mem_resolve_view), so a correct kernel never
 * touches a poisoned byte. */
#if defined(__SANITIZE_ADDRESS__)
#define MAIA_ASAN_ARENA 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MAIA_ASAN_ARENA 1
#endif
#endif
#ifdef MAIA_ASAN_ARENA
#include <sanitizer/asan_interface.h>
static void arena_poison(device *d, uint64_t off, uint64_t size) {
    if (!size) return;
    ASAN_POISON_MEMORY_REGION(d->base + off, (size_t)size);
    if (off + size > d->poisoned_end) d->poisoned_end = off + size;
}
static void arena_unpoison(device *d, uint64_t off, uint64_t size) {
    if (size) ASAN_UNPOISON_MEMORY_REGION(d->base + off, (size_t)size);
}
#else
static void arena_poison(device *d, uint64_t off, uint64_t size) {
    (void)d, (void)off, (void)size;
}
static void arena_unpoison(device *d, uint64_t off, uint64_t size) {
    (void)d, (void)off, (void)size;
}
#endif

static block *block_new(device *d, uint64_t off, uint64_t size) {
    block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->off = off;
    b->size = size;
    b->dev = d;
    return b;
}

static void free_list_push(device *d, block *b) {
    b->state = BLK_FREE;
    b->fprev = NULL;
    b->fnext = d->free_list;
    if (d->free_list) d->free_list->fprev = b;
    d->free_list = b;
}

static void free_list_remove(device *d, block *b) {
    if (b->fprev) b->fprev->fnext = b->fnext;
    else d->free_list = b->fnext;
    if (b->fnext) b->fnext->fprev = b->fprev;
    b->fprev = b->fnext = NULL;
}

maia_status dev_memory_init(device *d, uint64_t capacity) {
    capacity = capacity / ALIGN * ALIGN;
    void *p = mmap(NULL, (size_t)capacity, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return maia_set_error(MAIA_ERROR_SYSTEM, "maia:%d: cannot reserve %llu bytes of arena: %s",
                              d->index, (unsigned long long)capacity, strerror(errno));
#ifdef MADV_HUGEPAGE
    /* Back the arena with transparent huge pages where the kernel offers them on request
     * (THP "madvise" mode, common): streaming kernels over tens of MiB otherwise pay a TLB
     * miss every 4 KiB, which NumPy's own large arrays (madvised likewise) do not. Advice
     * only: failure changes nothing, and untouched memory stays unbacked. */
    (void)madvise(p, (size_t)capacity, MADV_HUGEPAGE);
#endif
    block *b = block_new(d, 0, capacity);
    if (!b) {
        munmap(p, (size_t)capacity);
        return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_init: host out of memory");
    }
    d->base = p;
    d->capacity = capacity;
    d->blocks = b;
    d->free_list = NULL;
    free_list_push(d, b);
    ht_init(&d->buffers, HK_BUFFER);
    return MAIA_OK;
}

void dev_memory_destroy(device *d, uint64_t *live, uint64_t *bytes) {
    *live = d->buffers.live;
    *bytes = d->in_use;
    block *b = d->blocks;
    while (b) {
        block *n = b->next;
        free(b);
        b = n;
    }
    d->blocks = d->free_list = NULL;
    ht_destroy(&d->buffers);
    /* the address range goes back to the system: leave no poisoned shadow behind for
     * whatever is mapped there next */
    if (d->base) arena_unpoison(d, 0, d->poisoned_end);
    d->poisoned_end = 0;
    if (d->base) munmap(d->base, (size_t)d->capacity);
    d->base = NULL;
}

/* Return a block to the free list, merging with free neighbours. Caller holds d->mu. */
static void block_release(device *d, block *b) {
    block *p = b->prev, *n = b->next;
    arena_poison(d, b->off, b->size);
    if (n && n->state == BLK_FREE) {
        free_list_remove(d, n);
        b->size += n->size;
        b->next = n->next;
        if (n->next) n->next->prev = b;
        free(n);
    }
    if (p && p->state == BLK_FREE) {
        free_list_remove(d, p);
        p->size += b->size;
        p->next = b->next;
        if (b->next) b->next->prev = p;
        free(b);
        b = p;
    }
    b->requested = 0;
    b->refs = 0;
    free_list_push(d, b);
}

static uint64_t largest_free(const device *d, uint64_t *nfree) {
    uint64_t best = 0, n = 0;
    for (const block *b = d->free_list; b; b = b->fnext) {
        if (b->size > best) best = b->size;
        n++;
    }
    if (nfree) *nfree = n;
    return best;
}

static maia_status oom(device *d, uint64_t nbytes, uint64_t need, const char *why) {
    uint64_t lf = largest_free(d, NULL);
    uint64_t fr = d->capacity - d->in_use - d->pending;
    return maia_set_error(MAIA_ERROR_OUT_OF_MEMORY,
                          "out of memory on maia:%d%s: requested %llu bytes (%llu aligned), "
                          "free %llu bytes, largest free block %llu bytes, awaiting queued "
                          "commands %llu bytes, in use %llu bytes, capacity %llu bytes",
                          d->index, why, (unsigned long long)nbytes, (unsigned long long)need,
                          (unsigned long long)fr, (unsigned long long)lf,
                          (unsigned long long)d->pending, (unsigned long long)d->in_use,
                          (unsigned long long)d->capacity);
}

maia_status maia_malloc(int32_t index, uint64_t nbytes, uint64_t *out) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!out) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_malloc: buffer is NULL");
    *out = 0;
    st = dev_check_lost(d, "maia_malloc");
    if (st) return st;
    uint64_t need = nbytes == 0 ? ALIGN : nbytes;
    if (need > UINT64_MAX - ALIGN) return oom(d, nbytes, need, "");
    need = (need + ALIGN - 1) / ALIGN * ALIGN;
    pthread_mutex_lock(&d->mu);
    d->alloc_attempts++;
    if (d->fail_alloc_at && d->alloc_attempts == d->fail_alloc_at) {
        d->fail_alloc_at = 0;
        st = oom(d, nbytes, need, " (injected fault)");
        pthread_mutex_unlock(&d->mu);
        return st;
    }
    block *best = NULL;
    for (block *b = d->free_list; b; b = b->fnext) {
        if (b->size >= need && (!best || b->size < best->size || (b->size == best->size && b->off < best->off))) {
            best = b;
            if (b->size == need) break;
        }
    }
    if (!best) {
        st = oom(d, nbytes, need, "");
        pthread_mutex_unlock(&d->mu);
        return st;
    }
    if (best->size > need) { /* split: the tail stays free */
        block *rest = block_new(d, best->off + need, best->size - need);
        if (!rest) {
            pthread_mutex_unlock(&d->mu);
            return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_malloc: host out of memory");
        }
        rest->prev = best;
        rest->next = best->next;
        if (best->next) best->next->prev = rest;
        best->next = rest;
        best->size = need;
        free_list_push(d, rest);
    }
    uint64_t h = ht_insert(&d->buffers, index, best);
    if (!h) {
        /* undo: give the block back */
        free_list_remove(d, best);
        block_release(d, best);
        pthread_mutex_unlock(&d->mu);
        return maia_set_error(MAIA_ERROR_LIMIT, "maia_malloc: too many live buffers on maia:%d",
                              index);
    }
    free_list_remove(d, best);
    best->state = BLK_USED;
    best->requested = nbytes;
    arena_unpoison(d, best->off, nbytes);
    arena_poison(d, best->off + nbytes, need - nbytes);
    best->refs = 0;
    d->in_use += need;
    d->requested += nbytes;
    if (d->in_use > d->peak) d->peak = d->in_use;
    d->live++;
    d->total_allocs++;
    pthread_mutex_unlock(&d->mu);
    *out = h;
    return MAIA_OK;
}

maia_status maia_free(int32_t index, uint64_t h) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    pthread_mutex_lock(&d->mu);
    void *obj;
    st = ht_lookup(&d->buffers, h, index, true, &obj, "maia_free");
    if (st) {
        pthread_mutex_unlock(&d->mu);
        return st;
    }
    block *b = obj;
    ht_remove(&d->buffers, h);
    d->in_use -= b->size;
    d->requested -= b->requested;
    d->live--;
    if (b->refs > 0) { /* still used by queued commands: reclaimed by the last of them */
        b->state = BLK_PENDING;
        d->pending += b->size;
    } else {
        block_release(d, b);
    }
    pthread_mutex_unlock(&d->mu);
    return MAIA_OK;
}

void mem_release_ref(block *b) {
    device *d = b->dev;
    pthread_mutex_lock(&d->mu);
    if (--b->refs == 0 && b->state == BLK_PENDING) {
        d->pending -= b->size;
        block_release(d, b);
    }
    pthread_mutex_unlock(&d->mu);
}

maia_status maia_buffer_size(int32_t index, uint64_t h, uint64_t *nbytes) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!nbytes) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_buffer_size: nbytes is NULL");
    pthread_mutex_lock(&d->mu);
    void *obj;
    st = ht_lookup(&d->buffers, h, index, false, &obj, "maia_buffer_size");
    if (!st) *nbytes = ((block *)obj)->requested;
    pthread_mutex_unlock(&d->mu);
    return st;
}

maia_status maia_device_memory_stats(int32_t index, maia_memory_stats *s) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!s) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_device_memory_stats: stats is NULL");
    pthread_mutex_lock(&d->mu);
    s->capacity = d->capacity;
    s->in_use = d->in_use;
    s->requested = d->requested;
    s->peak = d->peak;
    s->pending_free = d->pending;
    s->free = d->capacity - d->in_use - d->pending;
    s->largest_free_block = largest_free(d, &s->free_blocks);
    s->live_allocations = d->live;
    s->total_allocations = d->total_allocs;
    pthread_mutex_unlock(&d->mu);
    return MAIA_OK;
}

int64_t shape_elements(int32_t ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] == 0) return 0;
        if (__builtin_mul_overflow(n, shape[i], &n)) return -1;
    }
    return n;
}

maia_status mem_resolve_view(const maia_buffer_view *v, int want_device, void **data,
                             block **blk, uint64_t *touched, const char *what) {
    if (!v) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: view is NULL", what);
    size_t isz = maia_dtype_size(v->dtype);
    if (!isz) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: unknown dtype %d", what, v->dtype);
    if (v->ndim < 0 || v->ndim > MAIA_MAX_DIMS)
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: ndim %d outside 0..%d", what,
                              v->ndim, MAIA_MAX_DIMS);
    bool empty = false;
    for (int i = 0; i < v->ndim; i++) {
        if (v->shape[i] < 0)
            return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: negative extent %lld in dim %d",
                                  what, (long long)v->shape[i], i);
        if (v->shape[i] == 0) empty = true;
    }
    if (shape_elements(v->ndim, v->shape) < 0)
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: element count overflows", what);
    /* lowest and highest element offsets reachable */
    int64_t lo = 0, hi = 0;
    if (!empty) {
        for (int i = 0; i < v->ndim; i++) {
            int64_t span;
            if (v->shape[i] == 1) continue;
            if (__builtin_mul_overflow(v->strides[i], v->shape[i] - 1, &span))
                return maia_set_error(MAIA_ERROR_OUT_OF_BOUNDS, "%s: strides overflow", what);
            if (span > 0 ? __builtin_add_overflow(hi, span, &hi) : __builtin_add_overflow(lo, span, &lo))
                return maia_set_error(MAIA_ERROR_OUT_OF_BOUNDS, "%s: strides overflow", what);
        }
    }
    if (!handle_plausible(v->buffer, HK_BUFFER) && v->buffer != 0) {
        return maia_set_error(MAIA_ERROR_INVALID_HANDLE,
                              "%s: 0x%016llx is not a buffer handle issued by this runtime", what,
                              (unsigned long long)v->buffer);
    }
    int dev_index = v->buffer ? handle_device(v->buffer) : 0;
    device *d = NULL;
    if (v->buffer == 0 || dev_index >= g_rt->ndev) {
        return maia_set_error(MAIA_ERROR_INVALID_HANDLE,
                              "%s: 0x%016llx is not a buffer handle issued by this runtime", what,
                              (unsigned long long)v->buffer);
    }
    if (want_device >= 0 && dev_index != want_device)
        return maia_set_error(MAIA_ERROR_FOREIGN_HANDLE,
                              "%s: buffer 0x%016llx belongs to maia:%d, not maia:%d", what,
                              (unsigned long long)v->buffer, dev_index, want_device);
    d = &g_rt->devs[dev_index];
    pthread_mutex_lock(&d->mu);
    void *obj;
    maia_status st = ht_lookup(&d->buffers, v->buffer, dev_index, false, &obj, what);
    if (st) {
        pthread_mutex_unlock(&d->mu);
        return st;
    }
    block *b = obj;
    uint64_t size = b->requested;
    int64_t first = 0, last = 0;
    bool ok = true;
    if (empty) {
        ok = v->offset >= 0 && (uint64_t)v->offset <= size;
        first = last = 0;
    } else {
        int64_t lo_b, hi_b, hi1;
        ok = !__builtin_add_overflow(hi, (int64_t)1, &hi1) &&
             !__builtin_mul_overflow(lo, (int64_t)isz, &lo_b) &&
             !__builtin_mul_overflow(hi1, (int64_t)isz, &hi_b) &&
             !__builtin_add_overflow(v->offset, lo_b, &first) &&
             !__builtin_add_overflow(v->offset, hi_b, &last) && first >= 0 &&
             (uint64_t)last <= size;
    }
    if (!ok) {
        pthread_mutex_unlock(&d->mu);
        return maia_set_error(MAIA_ERROR_OUT_OF_BOUNDS,
                              "%s: view (offset %lld bytes, reaching bytes [%lld, %lld)) is "
                              "outside buffer 0x%016llx of %llu bytes on maia:%d",
                              what, (long long)v->offset, (long long)(empty ? 0 : first),
                              (long long)(empty ? 0 : last), (unsigned long long)v->buffer,
                              (unsigned long long)size, dev_index);
    }
    b->refs++;
    pthread_mutex_unlock(&d->mu);
    *data = d->base + b->off + v->offset;
    *blk = b;
    if (touched) *touched = empty ? 0 : (uint64_t)shape_elements(v->ndim, v->shape) * isz;
    return MAIA_OK;
}
