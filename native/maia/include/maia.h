/* maia.h -- the public C API of the Maia 200 emulator runtime (libmaia).
 *
 * A process-wide runtime drives several emulated devices. Each device has an HBM arena with
 * a validating allocator, hardware queues serviced by worker threads, timeline events and a
 * performance model that reports the time each command would take on Maia 200.
 *
 * Conventions
 * - Every function returns a maia_status (MAIA_OK == 0). On any other status a message is
 *   left in a thread-local buffer, read with maia_last_error().
 * - Buffers, queues and events are 64-bit handles (never pointers). They are generation- and
 *   device-tagged and validated on every call: a stale, foreign or forged handle returns an
 *   error code, it never crashes the process. 0 is never a valid handle.
 * - Submission (copies, launches, event record/wait) never waits for execution.
 * - A command that fails while executing (a kernel error, an injected fault) is reported once
 *   by the next maia_queue_synchronize / maia_queue_query of its queue, or by
 *   maia_event_synchronize of an event recorded after it on that queue. The queue keeps
 *   working; other queues are unaffected.
 * - All functions may be called from any number of host threads at once, except maia_init
 *   and maia_shutdown, which must not race other calls.
 *
 * Include path: -Iinclude -Isrc (maia_kernels.h defines the dtypes, views and attributes
 * shared with the kernels).
 */
#ifndef MAIA_H
#define MAIA_H

#include <stddef.h>
#include <stdint.h>

#include "maia_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The public API is the only thing libmaia.so exports: the library is built with
 * -fvisibility=hidden and every function below is marked MAIA_API. */
#if defined(__GNUC__) || defined(__clang__)
#define MAIA_API __attribute__((visibility("default")))
#else
#define MAIA_API
#endif

#define MAIA_VERSION_MAJOR 0
#define MAIA_VERSION_MINOR 1
#define MAIA_VERSION_PATCH 0

/* Allocation granularity and alignment of every buffer, in bytes. */
#define MAIA_ALLOC_ALIGNMENT 256
/* Longest kernel name accepted by maia_launch (excluding the terminating NUL). */
#define MAIA_MAX_KERNEL_NAME 63

typedef enum maia_status {
    MAIA_OK = 0,
    MAIA_NOT_READY = 1,                 /* query: the work is not finished yet (not an error) */
    MAIA_ERROR_INVALID_ARGUMENT = 2,    /* NULL pointer, bad dtype/shape/ndim, size mismatch */
    MAIA_ERROR_NOT_INITIALIZED = 3,     /* maia_init has not been called */
    MAIA_ERROR_ALREADY_INITIALIZED = 4, /* maia_init called twice */
    MAIA_ERROR_INVALID_DEVICE = 5,      /* device index out of range */
    MAIA_ERROR_OUT_OF_MEMORY = 6,       /* the device arena cannot fit the allocation */
    MAIA_ERROR_INVALID_HANDLE = 7,      /* not a handle this runtime issued (forged, 0, wrong kind) */
    MAIA_ERROR_USE_AFTER_FREE = 8,      /* the handle was valid but its object was released */
    MAIA_ERROR_DOUBLE_FREE = 9,         /* releasing an already released handle */
    MAIA_ERROR_FOREIGN_HANDLE = 10,     /* a handle of another device where this one is needed */
    MAIA_ERROR_OUT_OF_BOUNDS = 11,      /* a view or range reaches outside its buffer */
    MAIA_ERROR_KERNEL_FAILED = 12,      /* a queued command failed (reported asynchronously) */
    MAIA_ERROR_HOST_OUT_OF_MEMORY = 13, /* the host could not allocate runtime bookkeeping */
    MAIA_ERROR_SYSTEM = 14,             /* a system call failed (thread creation, mmap) */
    MAIA_ERROR_LIMIT = 15,              /* too many queues / handles */
    MAIA_ERROR_LEAKED_RESOURCES = 16,   /* maia_shutdown released objects the caller still held */
    MAIA_ERROR_DEVICE_LOST = 17         /* the device is gone (maia_fault_lose_device) */
} maia_status;

/* ---- runtime -------------------------------------------------------------------------- */

typedef struct maia_config {
    int32_t device_count;         /* emulated devices; 0 = env HWABSTRACT_MAIA_DEVICES or 2 */
    uint64_t memory_bytes;        /* emulated HBM per device; 0 = env HWABSTRACT_MAIA_MEMORY or 1 GiB */
    int32_t kernel_threads;       /* host threads a kernel may use; 0 = env HWABSTRACT_MAIA_THREADS or online CPUs */
    int32_t max_queues_per_device;/* 0 = 64 */
    int32_t ignore_env;           /* 1: do not read any HWABSTRACT_MAIA_* variable (tests) */
} maia_config;

/* Start the runtime. cfg may be NULL (everything from the environment or defaults). Fields
 * left 0 take their environment variable, then the default. Fault-injection variables are
 * read here too (see maia_fault_*). */
MAIA_API maia_status maia_init(const maia_config *cfg);

/* Stop the runtime: signals every unsignaled user event, drains and destroys every queue,
 * releases every buffer and event and unmaps the arenas. Returns MAIA_OK if the caller had
 * released everything, else MAIA_ERROR_LEAKED_RESOURCES (after releasing it all) with the
 * counts in `report` (may be NULL) and the message. MAIA_ERROR_NOT_INITIALIZED if not running. */
typedef struct maia_leak_report {
    uint64_t buffers;      /* live allocations released by shutdown */
    uint64_t buffer_bytes; /* their total size (aligned) */
    uint64_t queues;
    uint64_t events;
} maia_leak_report;
MAIA_API maia_status maia_shutdown(maia_leak_report *report);

/* 1 when the runtime is running. */
MAIA_API int maia_is_initialized(void);

MAIA_API const char *maia_status_name(int status); /* "MAIA_ERROR_DOUBLE_FREE"; "MAIA_STATUS_UNKNOWN" */
MAIA_API const char *maia_last_error(void);        /* this thread's last message; "" if none */
MAIA_API void maia_clear_error(void);
MAIA_API void maia_version(int *major, int *minor, int *patch); /* any pointer may be NULL */
MAIA_API const char *maia_version_string(void);

/* ---- devices -------------------------------------------------------------------------- */

typedef struct maia_device_info {
    char name[64];                   /* "Maia 200 (emulated)" */
    char vendor[32];                 /* "Microsoft" */
    char model[32];                  /* "Maia 200" */
    uint64_t memory_capacity;        /* emulated arena bytes (what can be allocated) */
    uint64_t modeled_memory_capacity;/* the modeled chip's HBM: 216 GB */
    uint64_t max_allocation;         /* largest single allocation (== memory_capacity) */
    uint64_t modeled_sram_bytes;     /* on-chip SRAM of the modeled chip: 272 MB */
    int32_t index;
    int32_t kernel_threads;
    int32_t max_queues;
    int32_t emulated;                /* always 1 */
} maia_device_info;

/* The performance model's figures (see README.md for their sources). */
typedef struct maia_perf_model {
    double hbm_bandwidth;        /* bytes/s: 7e12 */
    double host_bandwidth;       /* bytes/s, host<->device copies: 64e9 */
    double peer_bandwidth;       /* bytes/s, device<->device copies: 1.4e12 */
    double kernel_launch_ns;     /* fixed cost of every kernel */
    double copy_launch_ns;       /* fixed cost of every copy (DMA setup) */
    double peak_flops[MAIA_DTYPE_COUNT]; /* dense peak per compute dtype, FLOP/s */
    double peak_mx8_flops;       /* MX matmul, an 8- or 6-bit element operand: 5e15 (FP8) */
    double peak_mx4_flops;       /* MX matmul, both operands FP4: 10e15 (FP4) */
} maia_perf_model;

typedef struct maia_memory_stats {
    uint64_t capacity;           /* arena bytes */
    uint64_t in_use;             /* bytes of live allocations (aligned sizes) */
    uint64_t requested;          /* bytes the live allocations asked for */
    uint64_t peak;               /* high-water mark of in_use since init */
    uint64_t free;               /* capacity - in_use - pending_free */
    uint64_t pending_free;       /* freed, but still used by queued commands: not yet reusable */
    uint64_t largest_free_block; /* largest allocation that would succeed now */
    uint64_t live_allocations;
    uint64_t total_allocations;  /* successful allocations since init */
    uint64_t free_blocks;        /* fragments in the free list */
} maia_memory_stats;

typedef struct maia_device_counters {
    uint64_t commands;          /* commands executed (all kinds) */
    uint64_t kernels;           /* kernel launches executed (including failed ones) */
    uint64_t copies;            /* copies executed */
    uint64_t bytes_copied;
    uint64_t failed_commands;
    double modeled_busy_ns;     /* sum of modeled durations of executed commands */
    double wall_busy_ns;        /* sum of host wall time spent executing commands */
} maia_device_counters;

MAIA_API maia_status maia_device_count(int32_t *count);
MAIA_API maia_status maia_device_get_info(int32_t device, maia_device_info *info);
MAIA_API maia_status maia_device_get_model(int32_t device, maia_perf_model *model);
MAIA_API maia_status maia_device_memory_stats(int32_t device, maia_memory_stats *stats);
MAIA_API maia_status maia_device_get_counters(int32_t device, maia_device_counters *counters);
/* Block until every queue of the device has drained; reports nothing (errors stay with their
 * queues). */
MAIA_API maia_status maia_device_synchronize(int32_t device);

/* ---- memory --------------------------------------------------------------------------- */

/* Allocate nbytes (0 allowed: takes one alignment unit) on `device`. The memory is aligned
 * to MAIA_ALLOC_ALIGNMENT. OOM returns MAIA_ERROR_OUT_OF_MEMORY with requested, free,
 * largest-free-block and capacity figures in the message (maia_device_memory_stats gives
 * them as numbers). New memory is zero only the first time the arena hands it out. */
MAIA_API maia_status maia_malloc(int32_t device, uint64_t nbytes, uint64_t *buffer);
/* Release a buffer of `device`. Returns at once; if queued commands still use the buffer its
 * memory becomes reusable when the last of them has finished (stream-ordered free). */
MAIA_API maia_status maia_free(int32_t device, uint64_t buffer);
/* Size the buffer was allocated with (as requested). */
MAIA_API maia_status maia_buffer_size(int32_t device, uint64_t buffer, uint64_t *nbytes);

/* A strided view over a buffer: element (i0, i1, ...) lives at byte
 * offset + sum(ik * strides[k]) * itemsize(dtype). Strides are in elements and may be zero
 * or negative. Every reachable byte must lie inside the buffer (MAIA_ERROR_OUT_OF_BOUNDS). */
typedef struct maia_buffer_view {
    uint64_t buffer;
    int64_t offset;  /* bytes */
    int32_t dtype;   /* maia_dtype */
    int32_t ndim;    /* 0..MAIA_MAX_DIMS; 0 = a scalar */
    int64_t shape[MAIA_MAX_DIMS];
    int64_t strides[MAIA_MAX_DIMS];
} maia_buffer_view;

/* Size in bytes of one element of `dtype`, 0 if unknown. */
MAIA_API size_t maia_dtype_size(int32_t dtype);

/* ---- queues --------------------------------------------------------------------------- */

MAIA_API maia_status maia_queue_create(int32_t device, uint64_t *queue);
/* Drains the queue (waits for its commands), stops its worker and releases it. Returns an
 * unreported command failure of the queue, if there was one (the queue is released anyway). */
MAIA_API maia_status maia_queue_destroy(uint64_t queue);
/* Block until every command submitted before this call has finished. Returns
 * MAIA_ERROR_KERNEL_FAILED once for the first unreported failure of the queue. */
MAIA_API maia_status maia_queue_synchronize(uint64_t queue);
/* MAIA_OK if everything submitted has finished, MAIA_NOT_READY if not; an unreported failure
 * is returned (once) before either. */
MAIA_API maia_status maia_queue_query(uint64_t queue);

typedef struct maia_queue_info {
    int32_t device;
    int32_t index;        /* per-device queue number */
    uint64_t submitted;   /* commands submitted (the last sequence number) */
    uint64_t completed;   /* commands finished */
    double modeled_clock_ns; /* the queue's modeled timeline */
    uint32_t delay_us;    /* injected delay per command */
} maia_queue_info;
MAIA_API maia_status maia_queue_get_info(uint64_t queue, maia_queue_info *info);

/* ---- commands (all asynchronous) ------------------------------------------------------ */

/* Host -> device. `src` holds the elements of `dst`'s shape in C order (nbytes must equal
 * elements * itemsize). The source is read before this returns (directly into device memory
 * if the queue is idle, otherwise into a staging copy): the caller may reuse it at once. */
MAIA_API maia_status maia_copy_h2d(uint64_t queue, const maia_buffer_view *dst, const void *src,
                          uint64_t nbytes);
/* Device -> host into `dst` (C order, nbytes == elements * itemsize). dst must stay valid and
 * untouched until the queue (or a later event) is synchronized. */
MAIA_API maia_status maia_copy_d2h(uint64_t queue, void *dst, uint64_t nbytes,
                          const maia_buffer_view *src);
/* Device -> device, any strides; same shape and element size. dst must be on the queue's
 * device; src may be on any device (a peer copy, modeled at the peer bandwidth). Overlapping
 * src and dst give unspecified contents, never a crash. */
MAIA_API maia_status maia_copy_d2d(uint64_t queue, const maia_buffer_view *dst,
                          const maia_buffer_view *src);
/* Launch kernel `kernel` (a hwabstract kernel name) with resolved operands. Every operand's
 * buffer must belong to the queue's device. attrs may be NULL (all zero). The kernel runs on
 * the queue's worker; its failure is reported at the next synchronization. */
MAIA_API maia_status maia_launch(uint64_t queue, const char *kernel, const maia_buffer_view *inputs,
                        int32_t n_inputs, const maia_buffer_view *outputs, int32_t n_outputs,
                        const maia_attrs *attrs);

/* ---- events (timeline points: a (queue, sequence number) pair) ------------------------ */

/* Record an event at the current end of `queue`; it is reached when the queue gets there,
 * capturing the host monotonic time and the queue's modeled clock. */
MAIA_API maia_status maia_event_record(uint64_t queue, uint64_t *event);
/* Later commands of `queue` wait until `event` is reached (an event of any queue of any
 * device, or a user event). Blocks only the queue's worker, never the caller. */
MAIA_API maia_status maia_queue_wait_event(uint64_t queue, uint64_t event);
/* MAIA_OK if reached, MAIA_NOT_READY if not. */
MAIA_API maia_status maia_event_query(uint64_t event);
/* Block until reached. Returns MAIA_ERROR_KERNEL_FAILED once if a command of the event's
 * queue before it failed and that failure was not reported yet. */
MAIA_API maia_status maia_event_synchronize(uint64_t event);
/* Milliseconds from `start` to `end` (both reached; MAIA_NOT_READY otherwise): host wall
 * time at execution and modeled Maia 200 time. Either output pointer may be NULL. Events on
 * different queues compare their own timelines (meaningful when the queues are ordered by
 * waits). User events have no time (MAIA_ERROR_INVALID_ARGUMENT). */
MAIA_API maia_status maia_event_elapsed(uint64_t start, uint64_t end, double *wall_ms,
                               double *modeled_ms);
/* Where the event sits: its queue handle (0 for a user event) and sequence number. */
MAIA_API maia_status maia_event_get_info(uint64_t event, uint64_t *queue, uint64_t *sequence);
/* Release the handle. Queued waits on the event still work. Destroying an unsignaled user
 * event signals it. */
MAIA_API maia_status maia_event_destroy(uint64_t event);
/* A user event (like OpenCL's clCreateUserEvent): reached when the host signals it. Queues
 * can wait on it; it lets a host gate work deterministically (tests). */
MAIA_API maia_status maia_user_event_create(uint64_t *event);
MAIA_API maia_status maia_user_event_signal(uint64_t event);

/* ---- fault injection ------------------------------------------------------------------ */

/* The nth allocation from now on `device` (1 = the next) fails with OUT_OF_MEMORY, once.
 * n == 0 disarms. Env: HWABSTRACT_MAIA_FAIL_ALLOC=n (every device). */
MAIA_API maia_status maia_fault_fail_allocation(int32_t device, uint64_t nth);
/* The next launch of `kernel` submitted on `device` fails with KERNEL_FAILED ("injected
 * fault") when it executes, without running. NULL disarms. Env: HWABSTRACT_MAIA_FAIL_KERNEL. */
MAIA_API maia_status maia_fault_fail_kernel(int32_t device, const char *kernel);
/* Every command of `queue` is delayed by `us` microseconds of host time before executing
 * (0 = none). Env: HWABSTRACT_MAIA_QUEUE_DELAY_US (every new queue). */
MAIA_API maia_status maia_fault_queue_delay(uint64_t queue, uint32_t us);
/* The device is lost, as after a hardware reset or a removed card, for the rest of the
 * runtime: commands still queued on it are dropped without running (events are still
 * reached, so nothing waits for ever), and every later call that would use it -- allocate,
 * queue a command, synchronize or query its queues or events, create a queue -- returns
 * MAIA_ERROR_DEVICE_LOST. Releasing its buffers, queues and events still works, so nothing
 * leaks; the other devices are unaffected. */
MAIA_API maia_status maia_fault_lose_device(int32_t device);

/* ---- timeline trace ------------------------------------------------------------------- *
 * Each device keeps a ring buffer of the commands its queues executed, one entry per command,
 * written by the queue's worker when the command finishes (under a lock of the trace alone,
 * never the queue's or the allocator's). Capacity: env HWABSTRACT_MAIA_TRACE_EVENTS (default
 * 4096 entries per device; 0 = off), changed at run time with maia_trace_set_capacity. When the
 * ring is full the oldest entry is overwritten and counted as dropped. */

#define MAIA_TRACE_DEFAULT_EVENTS 4096
#define MAIA_TRACE_MAX_EVENTS (1u << 24)

typedef enum maia_trace_kind {
    MAIA_TRACE_KERNEL = 0,   /* name: the kernel's */
    MAIA_TRACE_COPY_H2D = 1, /* "copy h2d" */
    MAIA_TRACE_COPY_D2H = 2, /* "copy d2h" */
    MAIA_TRACE_COPY_D2D = 3, /* "copy d2d" (peer: src_device != device) */
    MAIA_TRACE_WAIT = 4,     /* "wait" */
    MAIA_TRACE_EVENT = 5     /* "event" (an event record) */
} maia_trace_kind;

typedef struct maia_trace_entry {
    uint64_t queue;               /* the queue's handle (may be released since) */
    uint64_t sequence;            /* the command's sequence number on its queue (1, 2, ...) */
    uint64_t modeled_start_ps;    /* the queue's modeled clock when the command started */
    uint64_t modeled_duration_ps; /* modeled duration; for a wait, how far it moved the clock */
    int64_t wall_start_ns;        /* CLOCK_MONOTONIC when the worker started executing it */
    uint64_t wall_duration_ns;    /* host wall time spent executing it */
    uint64_t bytes;               /* copies: bytes copied; kernels: bytes moved (model); else 0 */
    double flops;                 /* kernels: arithmetic operations (model); else 0 */
    int32_t device;
    int32_t queue_index;          /* per-device queue number (maia_queue_info.index) */
    int32_t kind;                 /* maia_trace_kind */
    int32_t status;               /* MAIA_OK, or MAIA_ERROR_KERNEL_FAILED if it failed */
    int32_t src_device;           /* copy d2d: the source's device; else == device */
    int32_t reserved;
    char name[MAIA_MAX_KERNEL_NAME + 1]; /* kernel name, "copy h2d", ..., "wait", "event" */
} maia_trace_entry;

typedef struct maia_trace_info {
    uint64_t capacity; /* ring size in entries; 0 = not recording */
    uint64_t held;     /* entries in the ring now */
    uint64_t recorded; /* entries written since the last clear */
    uint64_t dropped;  /* entries overwritten (lost) since the last clear */
} maia_trace_info;

/* Resize the ring of `device` (0 stops recording). Clears what it held. */
MAIA_API maia_status maia_trace_set_capacity(int32_t device, uint64_t entries);
MAIA_API maia_status maia_trace_get_info(int32_t device, maia_trace_info *info);
/* Forget the entries held and reset the recorded/dropped counts. */
MAIA_API maia_status maia_trace_clear(int32_t device);
/* Copy up to `capacity` held entries into `out`, oldest first (per queue: in sequence order);
 * *count = entries copied, *dropped = entries lost to wraparound since the last clear (either
 * pointer may be NULL). Does not remove them. out may be NULL when capacity is 0. */
MAIA_API maia_status maia_trace_read(int32_t device, maia_trace_entry *out, uint64_t capacity,
                            uint64_t *count, uint64_t *dropped);

#ifdef __cplusplus
}
#endif
#endif /* MAIA_H */
