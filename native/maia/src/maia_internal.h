/* Internal structures of the Maia emulator runtime. Not installed, not part of the API. */
#ifndef MAIA_INTERNAL_H
#define MAIA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "maia.h"

/* ---- errors --------------------------------------------------------------------------- */

maia_status maia_set_error(maia_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- handles -------------------------------------------------------------------------- *
 * 64 bits: [63..60 kind][59..48 check][47..40 device][39..20 generation][19..0 slot].
 * The check is a keyed hash of the other fields with a secret drawn at maia_init, so random
 * bits and handles of an earlier runtime are rejected as INVALID_HANDLE. */

enum { HK_BUFFER = 1, HK_QUEUE = 2, HK_EVENT = 3 };
#define HSLOT_BITS 20
#define HGEN_BITS 20
#define HSLOT_MAX ((1u << HSLOT_BITS) - 1u)
#define HGEN_MAX ((1u << HGEN_BITS) - 1u)

typedef struct hslot {
    uint32_t gen;  /* current generation; a live handle carries exactly this */
    uint32_t next; /* free-list link */
    void *obj;     /* NULL when released */
} hslot;

/* A table of slots; the caller provides the locking. Slots are reused FIFO so a generation
 * wraps only after HGEN_MAX reuses of one slot; a slot at HGEN_MAX is retired. */
typedef struct htable {
    hslot *slots;
    uint32_t n, cap;
    uint32_t free_head, free_tail; /* UINT32_MAX = none */
    uint32_t live;
    int kind;
} htable;

void ht_init(htable *t, int kind);
void ht_destroy(htable *t);
/* Insert obj; returns the handle or 0 when full / out of host memory. */
uint64_t ht_insert(htable *t, int device, void *obj);
/* Decode and validate. release: the lookup is for a release (stale -> DOUBLE_FREE instead of
 * USE_AFTER_FREE). want_device < 0: any device. On MAIA_OK *obj is set. Sets the message. */
maia_status ht_lookup(const htable *t, uint64_t h, int want_device, bool release, void **obj,
                      const char *what);
/* Remove a validated handle (bumps the generation). */
void ht_remove(htable *t, uint64_t h);
int handle_device(uint64_t h);
/* Checks kind and check bits only: a handle this runtime could have issued. */
bool handle_plausible(uint64_t h, int kind);

/* ---- devices and memory -------------------------------------------------------------- */

enum { BLK_FREE = 0, BLK_USED = 1, BLK_PENDING = 2 };

typedef struct block {
    uint64_t off, size, requested;
    struct block *prev, *next;   /* address order */
    struct block *fprev, *fnext; /* free list */
    uint32_t refs;               /* queued commands using the block */
    int state;
    struct device *dev;
} block;

typedef struct queue queue;

typedef struct device {
    int index;
    uint64_t capacity;
    unsigned char *base; /* the arena (mmap) */
    pthread_mutex_t mu;  /* allocator, buffer table, queue list */
    block *blocks;       /* address-ordered list */
    block *free_list;
    htable buffers;
    uint64_t in_use, requested, peak, pending, live, total_allocs;
    uint64_t poisoned_end; /* under AddressSanitizer: the arena's shadow is set below this */
    /* fault injection (under mu) */
    uint64_t alloc_attempts, fail_alloc_at;
    char fail_kernel[MAIA_MAX_KERNEL_NAME + 1];
    atomic_int fault_armed;
    atomic_int lost; /* maia_fault_lose_device: for good */
    /* queues of this device (under mu) */
    queue **queues;
    int nqueues, creating, queue_serial; /* queues has room for max_queues_per_device */
    /* timeline trace: a ring of trace_cap entries (trace.c), under trace_mu only */
    pthread_mutex_t trace_mu;
    maia_trace_entry *trace;
    uint64_t trace_cap, trace_start, trace_held, trace_recorded, trace_dropped;
    atomic_uint_least64_t trace_on; /* mirrors trace_cap != 0: workers skip the lock when off */
    /* counters */
    atomic_uint_least64_t commands, kernels, copies, bytes_copied, failed, modeled_busy_ps,
        wall_busy_ns;
} device;

typedef struct runtime {
    int ndev;
    device *devs;
    maia_config cfg;
    maia_perf_model model;
    uint32_t default_delay_us;
    uint64_t spin_ns; /* HWABSTRACT_MAIA_SPIN_US: how long waits poll before sleeping */
    pthread_mutex_t qmu; /* queue table */
    htable queues;
    pthread_mutex_t emu; /* event table */
    htable events;
} runtime;

extern runtime *g_rt;
extern uint64_t g_handle_secret;

/* NULL + message when not initialized */
runtime *rt_get(void);
maia_status rt_device(int32_t index, device **out);
/* MAIA_OK, or MAIA_ERROR_DEVICE_LOST with the message when device `d` is lost. */
maia_status dev_check_lost(const device *d, const char *what);

/* memory.c */
maia_status dev_memory_init(device *d, uint64_t capacity);
/* Releases every block; returns live allocation count and bytes. */
void dev_memory_destroy(device *d, uint64_t *live, uint64_t *bytes);
/* Validate `v` against the buffer table of its device (must be want_device when >= 0), take a
 * command reference on the block and return the address of element 0 and the block. */
maia_status mem_resolve_view(const maia_buffer_view *v, int want_device, void **data,
                             block **blk, uint64_t *nbytes_touched, const char *what);
/* Drop a command reference; reclaims a pending block at zero. */
void mem_release_ref(block *b);
/* Number of elements of a (validated) shape; -1 on overflow. */
int64_t shape_elements(int32_t ndim, const int64_t *shape);

/* queue.c */
void queues_shutdown_all(runtime *rt, uint64_t *nqueues, uint64_t *nevents);
uint64_t model_ps(double ns);

/* trace.c */
maia_status trace_init(device *d, uint64_t capacity);
void trace_destroy(device *d);
/* Append one entry (called by a worker after the command ran). */
void trace_push(device *d, const maia_trace_entry *e);

#endif /* MAIA_INTERNAL_H */
