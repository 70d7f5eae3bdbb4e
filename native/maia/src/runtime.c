/* Runtime lifecycle, configuration, errors, device queries, the performance model. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "maia_internal.h"

runtime *g_rt = NULL;
static pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- errors --------------------------------------------------------------------------- */

static _Thread_local char tls_msg[1024];

maia_status maia_set_error(maia_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return status;
}

const char *maia_last_error(void) { return tls_msg; }
void maia_clear_error(void) { tls_msg[0] = '\0'; }

const char *maia_status_name(int status) {
    switch (status) {
    case MAIA_OK: return "MAIA_OK";
    case MAIA_NOT_READY: return "MAIA_NOT_READY";
    case MAIA_ERROR_INVALID_ARGUMENT: return "MAIA_ERROR_INVALID_ARGUMENT";
    case MAIA_ERROR_NOT_INITIALIZED: return "MAIA_ERROR_NOT_INITIALIZED";
    case MAIA_ERROR_ALREADY_INITIALIZED: return "MAIA_ERROR_ALREADY_INITIALIZED";
    case MAIA_ERROR_INVALID_DEVICE: return "MAIA_ERROR_INVALID_DEVICE";
    case MAIA_ERROR_OUT_OF_MEMORY: return "MAIA_ERROR_OUT_OF_MEMORY";
    case MAIA_ERROR_INVALID_HANDLE: return "MAIA_ERROR_INVALID_HANDLE";
    case MAIA_ERROR_USE_AFTER_FREE: return "MAIA_ERROR_USE_AFTER_FREE";
    case MAIA_ERROR_DOUBLE_FREE: return "MAIA_ERROR_DOUBLE_FREE";
    case MAIA_ERROR_FOREIGN_HANDLE: return "MAIA_ERROR_FOREIGN_HANDLE";
    case MAIA_ERROR_OUT_OF_BOUNDS: return "MAIA_ERROR_OUT_OF_BOUNDS";
    case MAIA_ERROR_KERNEL_FAILED: return "MAIA_ERROR_KERNEL_FAILED";
    case MAIA_ERROR_HOST_OUT_OF_MEMORY: return "MAIA_ERROR_HOST_OUT_OF_MEMORY";
    case MAIA_ERROR_SYSTEM: return "MAIA_ERROR_SYSTEM";
    case MAIA_ERROR_LIMIT: return "MAIA_ERROR_LIMIT";
    case MAIA_ERROR_LEAKED_RESOURCES: return "MAIA_ERROR_LEAKED_RESOURCES";
    case MAIA_ERROR_DEVICE_LOST: return "MAIA_ERROR_DEVICE_LOST";
    default: return "MAIA_STATUS_UNKNOWN";
    }
}

void maia_version(int *major, int *minor, int *patch) {
    if (major) *major = MAIA_VERSION_MAJOR;
    if (minor) *minor = MAIA_VERSION_MINOR;
    if (patch) *patch = MAIA_VERSION_PATCH;
}

#define MAIA_STR2(x) #x
#define MAIA_STR(x) MAIA_STR2(x)
const char *maia_version_string(void) {
    return MAIA_STR(MAIA_VERSION_MAJOR) "." MAIA_STR(MAIA_VERSION_MINOR) "." MAIA_STR(
        MAIA_VERSION_PATCH);
}

size_t maia_dtype_size(int32_t dtype) {
    switch (dtype) {
    case MAIA_BOOL: case MAIA_INT8: case MAIA_UINT8: case MAIA_FLOAT8_E4M3FN:
    case MAIA_FLOAT8_E5M2: return 1;
    case MAIA_INT16: case MAIA_UINT16: case MAIA_BFLOAT16: case MAIA_FLOAT16: return 2;
    case MAIA_INT32: case MAIA_UINT32: case MAIA_FLOAT32: return 4;
    case MAIA_INT64: case MAIA_UINT64: return 8;
    default: return 0;
    }
}

/* ---- the performance model ------------------------------------------------------------ */

static void default_model(maia_perf_model *m) {
    memset(m, 0, sizeof *m);
    m->hbm_bandwidth = 7e12;     /* Maia 200: 216 GB HBM3e at 7 TB/s (public) */
    m->host_bandwidth = 64e9;    /* assumed PCIe Gen5 x16; Maia 100 had Gen5 x8, 32 GB/s */
    m->peer_bandwidth = 1.4e12;  /* Maia 200 scale-up NIC: 1.4 TB/s per direction (public) */
    m->kernel_launch_ns = 2000.0; /* assumed */
    m->copy_launch_ns = 1000.0;   /* assumed DMA descriptor setup */
    const double fp8 = 5e15;      /* > 5 PFLOPS FP8 (public) */
    const double bf16 = 2.5e15;   /* assumed: half the 8-bit rate (Maia 100: 0.8 BF16 vs 1.5 9-bit) */
    const double vec = bf16 / 8;  /* assumed vector-processor rate for FP32 and integers */
    for (int i = 0; i < MAIA_DTYPE_COUNT; i++) m->peak_flops[i] = vec;
    m->peak_flops[MAIA_FLOAT8_E4M3FN] = fp8;
    m->peak_flops[MAIA_FLOAT8_E5M2] = fp8;
    m->peak_flops[MAIA_INT8] = fp8;
    m->peak_flops[MAIA_UINT8] = fp8;
    m->peak_flops[MAIA_BFLOAT16] = bf16;
    m->peak_flops[MAIA_FLOAT16] = bf16;
    m->peak_flops[MAIA_INT64] = vec / 2;
    m->peak_flops[MAIA_UINT64] = vec / 2;
    /* MX on the tensor unit: 8-bit elements (FP8, INT8) at the FP8 rate, FP6 at the FP8 rate
     * too (assumed: no public FP6 figure), two FP4 operands at > 10 PFLOPS FP4 (public) */
    m->peak_mx8_flops = fp8;
    m->peak_mx4_flops = 10e15;
}

uint64_t model_ps(double ns) {
    if (!(ns > 0)) return 0;
    double ps = ns * 1000.0 + 0.5;
    if (ps >= 1.8e19) return UINT64_MAX / 2;
    return (uint64_t)ps;
}

/* ---- configuration -------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out, bool allow_suffix) {
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    uint64_t mul = 1;
    if (allow_suffix && *end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = 1ull << 10; break;
        case 'M': mul = 1ull << 20; break;
        case 'G': mul = 1ull << 30; break;
        case 'T': mul = 1ull << 40; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'B' || *end == 'b') end++;
    }
    while (isspace((unsigned char)*end)) end++;
    if (*end) return -1;
    if (v > UINT64_MAX / mul) return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static maia_status env_u64(const char *name, bool suffix, uint64_t lo, uint64_t hi, bool *set,
                           uint64_t *out) {
    const char *s = getenv(name);
    *set = false;
    if (!s || !*s) return MAIA_OK;
    uint64_t v;
    if (parse_u64(s, &v, suffix) != 0 || v < lo || v > hi)
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                              "%s=%s is not valid (expected an integer in [%llu, %llu]%s)", name,
                              s, (unsigned long long)lo, (unsigned long long)hi,
                              suffix ? ", optionally with K/M/G/T" : "");
    *set = true;
    *out = v;
    return MAIA_OK;
}

#define MAX_DEVICES 64
#define MIN_MEMORY (1ull << 20)
#define MAX_MEMORY (1ull << 46)
/* Waits (a queue's worker for work, synchronize for completion) poll this long before they
 * sleep on a condition variable; 0 = never poll. */
#define MAIA_DEFAULT_SPIN_US 50
#define MAX_SPIN_US 1000000

runtime *rt_get(void) {
    runtime *rt = g_rt;
    if (!rt) maia_set_error(MAIA_ERROR_NOT_INITIALIZED, "the Maia runtime is not initialized");
    return rt;
}

maia_status rt_device(int32_t index, device **out) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    if (index < 0 || index >= rt->ndev)
        return maia_set_error(MAIA_ERROR_INVALID_DEVICE, "no device maia:%d (there are %d)",
                              index, rt->ndev);
    *out = &rt->devs[index];
    return MAIA_OK;
}

int maia_is_initialized(void) { return g_rt != NULL; }

static void device_destroy(device *d, uint64_t *live, uint64_t *bytes) {
    dev_memory_destroy(d, live, bytes);
    trace_destroy(d);
    free(d->queues);
    pthread_mutex_destroy(&d->mu);
}

maia_status maia_init(const maia_config *cfg_in) {
    pthread_mutex_lock(&g_init_mu);
    if (g_rt) {
        pthread_mutex_unlock(&g_init_mu);
        return maia_set_error(MAIA_ERROR_ALREADY_INITIALIZED, "the Maia runtime is already running");
    }
    maia_config cfg = {0};
    if (cfg_in) cfg = *cfg_in;
    maia_status st = MAIA_OK;
    bool set;
    uint64_t v, fail_alloc = 0, delay_us = 0, trace_events = MAIA_TRACE_DEFAULT_EVENTS;
    uint64_t spin_us = MAIA_DEFAULT_SPIN_US;
    const char *fail_kernel = NULL;
    if (cfg.device_count < 0 || cfg.device_count > MAX_DEVICES || cfg.kernel_threads < 0 ||
        cfg.max_queues_per_device < 0 ||
        (cfg.memory_bytes && (cfg.memory_bytes < MIN_MEMORY || cfg.memory_bytes > MAX_MEMORY))) {
        st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                            "maia_init: config out of range (devices 0..%d, memory 1 MiB..64 TiB)",
                            MAX_DEVICES);
        goto fail_unlock;
    }
    if (!cfg.ignore_env) {
        if ((st = env_u64("HWABSTRACT_MAIA_DEVICES", false, 1, MAX_DEVICES, &set, &v))) goto fail_unlock;
        if (set && !cfg.device_count) cfg.device_count = (int32_t)v;
        if ((st = env_u64("HWABSTRACT_MAIA_MEMORY", true, MIN_MEMORY, MAX_MEMORY, &set, &v))) goto fail_unlock;
        if (set && !cfg.memory_bytes) cfg.memory_bytes = v;
        if ((st = env_u64("HWABSTRACT_MAIA_THREADS", false, 1, 1024, &set, &v))) goto fail_unlock;
        if (set && !cfg.kernel_threads) cfg.kernel_threads = (int32_t)v;
        if ((st = env_u64("HWABSTRACT_MAIA_FAIL_ALLOC", false, 0, UINT64_MAX, &set, &fail_alloc))) goto fail_unlock;
        if ((st = env_u64("HWABSTRACT_MAIA_QUEUE_DELAY_US", false, 0, 60000000, &set, &delay_us))) goto fail_unlock;
        if ((st = env_u64("HWABSTRACT_MAIA_TRACE_EVENTS", false, 0, MAIA_TRACE_MAX_EVENTS, &set, &v))) goto fail_unlock;
        if (set) trace_events = v;
        if ((st = env_u64("HWABSTRACT_MAIA_SPIN_US", false, 0, MAX_SPIN_US, &set, &v))) goto fail_unlock;
        if (set) spin_us = v;
        fail_kernel = getenv("HWABSTRACT_MAIA_FAIL_KERNEL");
        if (fail_kernel && (!*fail_kernel || strlen(fail_kernel) > MAIA_MAX_KERNEL_NAME)) {
            st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                                "HWABSTRACT_MAIA_FAIL_KERNEL must name a kernel (1..%d chars)",
                                MAIA_MAX_KERNEL_NAME);
            goto fail_unlock;
        }
    }
    if (!cfg.device_count) cfg.device_count = 2;
    if (!cfg.memory_bytes) cfg.memory_bytes = 1ull << 30;
    if (!cfg.kernel_threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.kernel_threads = n > 0 ? (int32_t)(n > 1024 ? 1024 : n) : 1;
    }
    if (!cfg.max_queues_per_device) cfg.max_queues_per_device = 64;

    runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        st = maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_init: host out of memory");
        goto fail_unlock;
    }
    rt->cfg = cfg;
    rt->default_delay_us = (uint32_t)delay_us;
    rt->spin_ns = spin_us * 1000u;
    default_model(&rt->model);
    pthread_mutex_init(&rt->qmu, NULL);
    pthread_mutex_init(&rt->emu, NULL);
    ht_init(&rt->queues, HK_QUEUE);
    ht_init(&rt->events, HK_EVENT);
    /* a fresh handle key per runtime: handles of an earlier runtime do not validate */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g_handle_secret ^= ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
                       (uint64_t)(uintptr_t)rt ^ ((uint64_t)getpid() << 16);
    g_handle_secret = g_handle_secret * 0x2545f4914f6cdd1dull + 0x632be59bd9b4e019ull;

    rt->devs = calloc((size_t)cfg.device_count, sizeof *rt->devs);
    if (!rt->devs) {
        st = maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_init: host out of memory");
        goto fail_rt;
    }
    for (int i = 0; i < cfg.device_count; i++) {
        device *d = &rt->devs[i];
        d->index = i;
        pthread_mutex_init(&d->mu, NULL);
        st = dev_memory_init(d, cfg.memory_bytes);
        if (!st) {
            st = trace_init(d, trace_events);
            if (st) dev_memory_destroy(d, &v, &v);
        }
        if (st) {
            pthread_mutex_destroy(&d->mu);
            for (int j = 0; j < i; j++) device_destroy(&rt->devs[j], &v, &v);
            free(rt->devs);
            goto fail_rt;
        }
        d->fail_alloc_at = fail_alloc;
        if (fail_kernel) {
            snprintf(d->fail_kernel, sizeof d->fail_kernel, "%s", fail_kernel);
        }
        atomic_store(&d->fault_armed, fail_kernel != NULL);
        atomic_init(&d->lost, 0);
        rt->ndev++;
    }
    g_rt = rt;
    pthread_mutex_unlock(&g_init_mu);
    return MAIA_OK;

fail_rt:
    ht_destroy(&rt->queues);
    ht_destroy(&rt->events);
    pthread_mutex_destroy(&rt->qmu);
    pthread_mutex_destroy(&rt->emu);
    free(rt);
fail_unlock:
    pthread_mutex_unlock(&g_init_mu);
    return st;
}

maia_status maia_shutdown(maia_leak_report *report) {
    pthread_mutex_lock(&g_init_mu);
    runtime *rt = g_rt;
    if (!rt) {
        pthread_mutex_unlock(&g_init_mu);
        return maia_set_error(MAIA_ERROR_NOT_INITIALIZED, "the Maia runtime is not initialized");
    }
    maia_leak_report rep = {0};
    queues_shutdown_all(rt, &rep.queues, &rep.events);
    maia_kernel_shutdown(); /* no kernel runs now: join the kernels' host worker pool */
    for (int i = 0; i < rt->ndev; i++) {
        uint64_t live = 0, bytes = 0;
        device_destroy(&rt->devs[i], &live, &bytes);
        rep.buffers += live;
        rep.buffer_bytes += bytes;
    }
    g_rt = NULL;
    ht_destroy(&rt->queues);
    ht_destroy(&rt->events);
    pthread_mutex_destroy(&rt->qmu);
    pthread_mutex_destroy(&rt->emu);
    free(rt->devs);
    free(rt);
    pthread_mutex_unlock(&g_init_mu);
    if (report) *report = rep;
    if (rep.buffers || rep.queues || rep.events)
        return maia_set_error(MAIA_ERROR_LEAKED_RESOURCES,
                              "maia_shutdown released what the caller still held: %llu buffers "
                              "(%llu bytes), %llu queues, %llu events",
                              (unsigned long long)rep.buffers,
                              (unsigned long long)rep.buffer_bytes,
                              (unsigned long long)rep.queues, (unsigned long long)rep.events);
    return MAIA_OK;
}

/* ---- device queries ------------------------------------------------------------------- */

maia_status maia_device_count(int32_t *count) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    if (!count) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_device_count: count is NULL");
    *count = rt->ndev;
    return MAIA_OK;
}

maia_status maia_device_get_info(int32_t index, maia_device_info *info) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!info) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_device_get_info: info is NULL");
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "Maia 200 (emulated)");
    snprintf(info->vendor, sizeof info->vendor, "Microsoft");
    snprintf(info->model, sizeof info->model, "Maia 200");
    info->memory_capacity = d->capacity;
    info->max_allocation = d->capacity;
    info->modeled_memory_capacity = 216000000000ull;
    info->modeled_sram_bytes = 272000000ull;
    info->index = index;
    info->kernel_threads = g_rt->cfg.kernel_threads;
    info->max_queues = g_rt->cfg.max_queues_per_device;
    info->emulated = 1;
    return MAIA_OK;
}

maia_status maia_device_get_model(int32_t index, maia_perf_model *model) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!model) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_device_get_model: model is NULL");
    *model = g_rt->model;
    return MAIA_OK;
}

maia_status maia_device_get_counters(int32_t index, maia_device_counters *c) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!c) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_device_get_counters: counters is NULL");
    c->commands = atomic_load(&d->commands);
    c->kernels = atomic_load(&d->kernels);
    c->copies = atomic_load(&d->copies);
    c->bytes_copied = atomic_load(&d->bytes_copied);
    c->failed_commands = atomic_load(&d->failed);
    c->modeled_busy_ns = (double)atomic_load(&d->modeled_busy_ps) / 1000.0;
    c->wall_busy_ns = (double)atomic_load(&d->wall_busy_ns);
    return MAIA_OK;
}

maia_status maia_fault_fail_allocation(int32_t index, uint64_t nth) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    pthread_mutex_lock(&d->mu);
    d->fail_alloc_at = nth ? d->alloc_attempts + nth : 0;
    pthread_mutex_unlock(&d->mu);
    return MAIA_OK;
}

maia_status maia_fault_lose_device(int32_t index) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    atomic_store(&d->lost, 1);
    return MAIA_OK;
}

maia_status dev_check_lost(const device *d, const char *what) {
    if (!atomic_load(&d->lost)) return MAIA_OK;
    return maia_set_error(MAIA_ERROR_DEVICE_LOST,
                          "%s: device %d is lost (an injected fault, as after a hardware reset "
                          "or a removed card): the data it held and the work queued on it are "
                          "gone. Release its objects and use another device",
                          what, d->index);
}

maia_status maia_fault_fail_kernel(int32_t index, const char *kernel) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (kernel && (!*kernel || strlen(kernel) > MAIA_MAX_KERNEL_NAME))
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                              "maia_fault_fail_kernel: kernel name must have 1..%d chars",
                              MAIA_MAX_KERNEL_NAME);
    pthread_mutex_lock(&d->mu);
    if (kernel)
        snprintf(d->fail_kernel, sizeof d->fail_kernel, "%s", kernel);
    else
        d->fail_kernel[0] = '\0';
    atomic_store(&d->fault_armed, kernel != NULL);
    pthread_mutex_unlock(&d->mu);
    return MAIA_OK;
}
