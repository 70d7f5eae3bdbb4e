/* Runtime tests: lifecycle, configuration, status names, the allocator and handle misuse. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>

#include "runtime_check.h"
#include "maia_internal.h" /* mem_resolve_view: the arena address of a buffer */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static void test_not_initialized(void) {
    int32_t n = -1;
    uint64_t b = 0;
    CHECK(!maia_is_initialized());
    CHECK_ST(maia_device_count(&n), MAIA_ERROR_NOT_INITIALIZED);
    CHECK_ST(maia_malloc(0, 16, &b), MAIA_ERROR_NOT_INITIALIZED);
    CHECK_ST(maia_queue_synchronize(12345), MAIA_ERROR_NOT_INITIALIZED);
    CHECK_ST(maia_event_query(1), MAIA_ERROR_NOT_INITIALIZED);
    CHECK_ST(maia_shutdown(NULL), MAIA_ERROR_NOT_INITIALIZED);
    CHECK_MSG_HAS("not initialized");
}

static void test_status_names_and_version(void) {
    CHECK(strcmp(maia_status_name(MAIA_OK), "MAIA_OK") == 0);
    CHECK(strcmp(maia_status_name(MAIA_ERROR_DOUBLE_FREE), "MAIA_ERROR_DOUBLE_FREE") == 0);
    CHECK(strcmp(maia_status_name(MAIA_ERROR_LEAKED_RESOURCES), "MAIA_ERROR_LEAKED_RESOURCES") == 0);
    CHECK(strcmp(maia_status_name(9999), "MAIA_STATUS_UNKNOWN") == 0);
    /* every code in range has its own name */
    for (int a = 0; a <= MAIA_ERROR_LEAKED_RESOURCES; a++) {
        CHECK(strcmp(maia_status_name(a), "MAIA_STATUS_UNKNOWN") != 0);
        for (int b = a + 1; b <= MAIA_ERROR_LEAKED_RESOURCES; b++)
            CHECK(strcmp(maia_status_name(a), maia_status_name(b)) != 0);
    }
    int ma = -1, mi = -1, pa = -1;
    maia_version(&ma, &mi, &pa);
    CHECK(ma == MAIA_VERSION_MAJOR && mi == MAIA_VERSION_MINOR && pa == MAIA_VERSION_PATCH);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", ma, mi, pa);
    CHECK(strcmp(buf, maia_version_string()) == 0);
    CHECK(maia_dtype_size(MAIA_FLOAT32) == 4 && maia_dtype_size(MAIA_BFLOAT16) == 2 &&
          maia_dtype_size(MAIA_UINT64) == 8 && maia_dtype_size(MAIA_FLOAT8_E5M2) == 1 &&
          maia_dtype_size(MAIA_DTYPE_COUNT) == 0 && maia_dtype_size(-1) == 0);
}

static void test_init_config_and_info(void) {
    rt_up(3, 8);
    CHECK(maia_is_initialized());
    maia_config cfg = {0};
    CHECK_ST(maia_init(&cfg), MAIA_ERROR_ALREADY_INITIALIZED);
    int32_t n = 0;
    CHECK_OK(maia_device_count(&n));
    CHECK(n == 3);
    maia_device_info info;
    CHECK_OK(maia_device_get_info(2, &info));
    CHECK(strstr(info.name, "emulated") != NULL);
    CHECK(info.memory_capacity == 8u << 20);
    CHECK(info.modeled_memory_capacity == 216000000000ull);
    CHECK(info.emulated == 1 && info.index == 2);
    CHECK_ST(maia_device_get_info(3, &info), MAIA_ERROR_INVALID_DEVICE);
    CHECK_ST(maia_device_get_info(-1, &info), MAIA_ERROR_INVALID_DEVICE);
    CHECK_ST(maia_device_get_info(0, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    maia_perf_model m;
    CHECK_OK(maia_device_get_model(0, &m));
    CHECK(m.hbm_bandwidth == 7e12);
    CHECK(m.peak_flops[MAIA_FLOAT8_E4M3FN] == 5e15);
    CHECK(m.peak_flops[MAIA_BFLOAT16] < m.peak_flops[MAIA_FLOAT8_E4M3FN]);
    CHECK(m.peak_flops[MAIA_FLOAT32] < m.peak_flops[MAIA_BFLOAT16]);
    RT_DOWN();
    CHECK(!maia_is_initialized());
}

static void test_env_config(void) {
    setenv("HWABSTRACT_MAIA_DEVICES", "4", 1);
    setenv("HWABSTRACT_MAIA_MEMORY", "16M", 1);
    CHECK_OK(maia_init(NULL));
    int32_t n = 0;
    CHECK_OK(maia_device_count(&n));
    CHECK(n == 4);
    maia_device_info info;
    CHECK_OK(maia_device_get_info(0, &info));
    CHECK(info.memory_capacity == 16u << 20);
    RT_DOWN();
    /* an explicit config wins over the environment */
    maia_config cfg = {0};
    cfg.device_count = 1;
    CHECK_OK(maia_init(&cfg));
    CHECK_OK(maia_device_count(&n));
    CHECK(n == 1);
    RT_DOWN();
    /* bad values are refused with the variable's name */
    setenv("HWABSTRACT_MAIA_MEMORY", "lots", 1);
    CHECK_ST(maia_init(NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_MSG_HAS("HWABSTRACT_MAIA_MEMORY");
    CHECK(!maia_is_initialized());
    setenv("HWABSTRACT_MAIA_MEMORY", "1GiB", 1);
    setenv("HWABSTRACT_MAIA_DEVICES", "0", 1);
    CHECK_ST(maia_init(NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_MSG_HAS("HWABSTRACT_MAIA_DEVICES");
    unsetenv("HWABSTRACT_MAIA_DEVICES");
    CHECK_OK(maia_init(NULL));
    CHECK_OK(maia_device_count(&n));
    CHECK(n == 2); /* the default */
    CHECK_OK(maia_device_get_info(1, &info));
    CHECK(info.memory_capacity == 1ull << 30);
    RT_DOWN();
    unsetenv("HWABSTRACT_MAIA_MEMORY");
}

static maia_memory_stats stats(int dev) {
    maia_memory_stats s;
    memset(&s, 0xff, sizeof s);
    CHECK_OK(maia_device_memory_stats(dev, &s));
    return s;
}

static void test_alignment_and_stats(void) {
    rt_up(1, 4);
    maia_memory_stats base = stats(0);
    CHECK(base.in_use == 0 && base.free == 4u << 20 && base.largest_free_block == 4u << 20);
    CHECK(base.live_allocations == 0 && base.free_blocks == 1);
    uint64_t h[5];
    uint64_t sizes[5] = {1, 255, 256, 257, 0};
    for (int i = 0; i < 5; i++) CHECK_OK(maia_malloc(0, sizes[i], &h[i]));
    maia_memory_stats s = stats(0);
    CHECK(s.in_use == 256 + 256 + 256 + 512 + 256); /* sizes rounded to 256 bytes */
    CHECK(s.requested == 1 + 255 + 256 + 257 + 0);
    CHECK(s.live_allocations == 5 && s.total_allocations == 5);
    CHECK(s.peak == s.in_use);
    CHECK(s.free == s.capacity - s.in_use);
    uint64_t sz = 99;
    CHECK_OK(maia_buffer_size(0, h[3], &sz));
    CHECK(sz == 257);
    /* alignment: a 1-element view at offset 0 of each buffer is valid, and all handles differ */
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) CHECK(h[i] != h[j]);
    for (int i = 0; i < 5; i++) CHECK_OK(maia_free(0, h[i]));
    s = stats(0);
    CHECK(s.in_use == 0 && s.requested == 0 && s.live_allocations == 0);
    CHECK(s.free == base.free && s.largest_free_block == base.largest_free_block);
    CHECK(s.free_blocks == 1); /* everything coalesced back into one block */
    CHECK(s.peak == 1536 && s.total_allocations == 5);
    RT_DOWN();
}

static void test_coalescing(void) {
    rt_up(1, 1);
    /* fill the whole arena with 4 blocks, free them in an order that needs both-side merges */
    uint64_t q = (1u << 20) / 4, h[4];
    for (int i = 0; i < 4; i++) CHECK_OK(maia_malloc(0, q, &h[i]));
    uint64_t extra;
    CHECK_ST(maia_malloc(0, 1, &extra), MAIA_ERROR_OUT_OF_MEMORY);
    CHECK_OK(maia_free(0, h[0]));
    CHECK_OK(maia_free(0, h[2]));
    maia_memory_stats s = stats(0);
    CHECK(s.free_blocks == 2 && s.largest_free_block == q);
    uint64_t big;
    CHECK_ST(maia_malloc(0, 2 * q, &big), MAIA_ERROR_OUT_OF_MEMORY); /* fragmented */
    CHECK_OK(maia_free(0, h[1])); /* merges with both neighbours */
    s = stats(0);
    CHECK(s.free_blocks == 1 && s.largest_free_block == 3 * q);
    CHECK_OK(maia_malloc(0, 3 * q, &big));
    CHECK_OK(maia_free(0, big));
    CHECK_OK(maia_free(0, h[3]));
    s = stats(0);
    CHECK(s.free_blocks == 1 && s.largest_free_block == 4 * q && s.in_use == 0);
    RT_DOWN();
}

static void test_fragmentation_best_fit(void) {
    rt_up(1, 1);
    /* 64 blocks of 16 KiB; free every other one: 32 holes of 16 KiB */
    uint64_t h[64];
    for (int i = 0; i < 64; i++) CHECK_OK(maia_malloc(0, 16384, &h[i]));
    for (int i = 0; i < 64; i += 2) CHECK_OK(maia_free(0, h[i]));
    maia_memory_stats s = stats(0);
    CHECK(s.free == 32 * 16384 && s.largest_free_block == 16384 && s.free_blocks == 32);
    uint64_t big;
    CHECK_ST(maia_malloc(0, 16385, &big), MAIA_ERROR_OUT_OF_MEMORY);
    /* small allocations fit into holes without growing the fragment count */
    uint64_t small[32];
    for (int i = 0; i < 32; i++) CHECK_OK(maia_malloc(0, 16384, &small[i]));
    s = stats(0);
    CHECK(s.free == 0 && s.free_blocks == 0 && s.largest_free_block == 0);
    for (int i = 0; i < 32; i++) CHECK_OK(maia_free(0, small[i]));
    for (int i = 1; i < 64; i += 2) CHECK_OK(maia_free(0, h[i]));
    s = stats(0);
    CHECK(s.free_blocks == 1 && s.in_use == 0);
    RT_DOWN();
}

static void test_oom_figures(void) {
    rt_up(2, 2);
    uint64_t a, b;
    CHECK_OK(maia_malloc(1, 1u << 20, &a));
    CHECK_ST(maia_malloc(1, (1u << 20) + 1, &b), MAIA_ERROR_OUT_OF_MEMORY);
    CHECK(b == 0);
    CHECK_MSG_HAS("out of memory on maia:1");
    CHECK_MSG_HAS("requested 1048577 bytes");
    CHECK_MSG_HAS("free 1048576 bytes");
    CHECK_MSG_HAS("capacity 2097152 bytes");
    CHECK_ST(maia_malloc(1, UINT64_MAX, &b), MAIA_ERROR_OUT_OF_MEMORY);
    CHECK_ST(maia_malloc(1, UINT64_MAX - 100, &b), MAIA_ERROR_OUT_OF_MEMORY);
    /* the device stays usable; the other device was never affected */
    CHECK_OK(maia_malloc(1, 1u << 20, &b));
    CHECK_OK(maia_free(1, b));
    CHECK_OK(maia_free(1, a));
    CHECK(stats(0).in_use == 0 && stats(1).in_use == 0);
    CHECK_ST(maia_malloc(5, 1, &b), MAIA_ERROR_INVALID_DEVICE);
    CHECK_ST(maia_malloc(0, 1, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    RT_DOWN();
}

static void test_handle_misuse(void) {
    rt_up(2, 4);
    uint64_t h, other, sz;
    CHECK_OK(maia_malloc(0, 1000, &h));
    CHECK_OK(maia_malloc(1, 1000, &other));
    /* foreign: a buffer of device 1 given to device 0 */
    CHECK_ST(maia_free(0, other), MAIA_ERROR_FOREIGN_HANDLE);
    CHECK_MSG_HAS("maia:1");
    CHECK_ST(maia_buffer_size(0, other, &sz), MAIA_ERROR_FOREIGN_HANDLE);
    /* forged: 0, flipped bits, random bits */
    CHECK_ST(maia_free(0, 0), MAIA_ERROR_INVALID_HANDLE);
    CHECK_ST(maia_free(0, h ^ 0x1), MAIA_ERROR_INVALID_HANDLE);
    CHECK_ST(maia_free(0, h ^ (1ull << 50)), MAIA_ERROR_INVALID_HANDLE);
    CHECK_ST(maia_free(0, h + (1ull << 20)), MAIA_ERROR_INVALID_HANDLE); /* a future generation */
    srand(12345);
    int rejected = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t r = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        int st = maia_buffer_size(0, r, &sz);
        rejected += st != MAIA_OK;
    }
    CHECK(rejected == 20000);
    /* still fine */
    CHECK_OK(maia_buffer_size(0, h, &sz));
    CHECK(sz == 1000);
    /* use after free and double free */
    CHECK_OK(maia_free(0, h));
    CHECK_ST(maia_buffer_size(0, h, &sz), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_ST(maia_free(0, h), MAIA_ERROR_DOUBLE_FREE);
    CHECK_MSG_HAS("already released");
    /* the slot is reused with a new generation: the old handle stays dead */
    uint64_t h2;
    CHECK_OK(maia_malloc(0, 1000, &h2));
    CHECK(h2 != h);
    CHECK_ST(maia_free(0, h), MAIA_ERROR_DOUBLE_FREE);
    CHECK_OK(maia_buffer_size(0, h2, &sz));
    /* a queue handle is not a buffer handle */
    uint64_t q;
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_ST(maia_free(0, q), MAIA_ERROR_INVALID_HANDLE);
    CHECK_ST(maia_queue_synchronize(h2), MAIA_ERROR_INVALID_HANDLE);
    CHECK_OK(maia_queue_destroy(q));
    CHECK_ST(maia_queue_synchronize(q), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_ST(maia_queue_destroy(q), MAIA_ERROR_DOUBLE_FREE);
    CHECK_OK(maia_free(0, h2));
    CHECK_OK(maia_free(1, other));
    RT_DOWN();
    /* handles of an earlier runtime are not valid in a new one */
    rt_up(1, 4);
    CHECK_ST(maia_free(0, h2), MAIA_ERROR_INVALID_HANDLE);
    RT_DOWN();
}

static void test_fault_fail_nth_allocation(void) {
    rt_up(2, 4);
    uint64_t h[4];
    CHECK_OK(maia_fault_fail_allocation(0, 3));
    CHECK_OK(maia_malloc(0, 64, &h[0]));
    CHECK_OK(maia_malloc(1, 64, &h[3])); /* other devices do not count */
    CHECK_OK(maia_malloc(0, 64, &h[1]));
    CHECK_ST(maia_malloc(0, 64, &h[2]), MAIA_ERROR_OUT_OF_MEMORY);
    CHECK_MSG_HAS("injected");
    CHECK_OK(maia_malloc(0, 64, &h[2])); /* once only */
    for (int i = 0; i < 3; i++) CHECK_OK(maia_free(0, h[i]));
    CHECK_OK(maia_free(1, h[3]));
    CHECK_OK(maia_fault_fail_allocation(0, 1));
    CHECK_OK(maia_fault_fail_allocation(0, 0)); /* disarmed */
    CHECK_OK(maia_malloc(0, 64, &h[0]));
    CHECK_OK(maia_free(0, h[0]));
    CHECK_ST(maia_fault_fail_allocation(9, 1), MAIA_ERROR_INVALID_DEVICE);
    RT_DOWN();
    /* from the environment */
    setenv("HWABSTRACT_MAIA_FAIL_ALLOC", "2", 1);
    CHECK_OK(maia_init(NULL));
    CHECK_OK(maia_malloc(0, 64, &h[0]));
    CHECK_ST(maia_malloc(0, 64, &h[1]), MAIA_ERROR_OUT_OF_MEMORY);
    CHECK_OK(maia_free(0, h[0]));
    RT_DOWN();
    unsetenv("HWABSTRACT_MAIA_FAIL_ALLOC");
}

static void test_shutdown_reports_leaks(void) {
    rt_up(2, 4);
    uint64_t a, b, q, e;
    CHECK_OK(maia_malloc(0, 300, &a));
    CHECK_OK(maia_malloc(1, 10, &b));
    CHECK_OK(maia_queue_create(1, &q));
    CHECK_OK(maia_event_record(q, &e));
    maia_leak_report rep;
    CHECK_ST(maia_shutdown(&rep), MAIA_ERROR_LEAKED_RESOURCES);
    CHECK(rep.buffers == 2 && rep.buffer_bytes == 512 + 256 && rep.queues == 1 && rep.events == 1);
    CHECK_MSG_HAS("2 buffers");
    CHECK(!maia_is_initialized());
}

#ifdef TEST_ASAN
/* The arena address of buffer h (a 1-byte view at offset 0, released at once). */
static unsigned char *arena_address(uint64_t h) {
    maia_buffer_view v = {0};
    v.buffer = h;
    v.dtype = MAIA_UINT8;
    v.ndim = 1;
    v.shape[0] = 1;
    v.strides[0] = 1;
    void *data = NULL;
    block *b = NULL;
    if (mem_resolve_view(&v, 0, &data, &b, NULL, "test") != MAIA_OK) return NULL;
    mem_release_ref(b);
    return data;
}

/* Only built under AddressSanitizer (make test-sanitize): elsewhere there is no shadow to check. */
static void test_asan_poisons_padding_and_freed_blocks(void) {
    rt_up(1, 1);
    uint64_t a, b;
    CHECK_OK(maia_malloc(0, 100, &a)); /* 100 bytes in a 256-byte block */
    CHECK_OK(maia_malloc(0, 256, &b));
    unsigned char *pa = arena_address(a), *pb = arena_address(b);
    CHECK(pa && pb && pb == pa + 256);
    CHECK(__asan_region_is_poisoned(pa, 100) == NULL);      /* a's bytes: usable */
    CHECK(__asan_address_is_poisoned(pa + 100));            /* its padding: not */
    CHECK(__asan_region_is_poisoned(pa + 100, 156) == pa + 100);
    CHECK(__asan_region_is_poisoned(pb, 256) == NULL);      /* b: no padding */
    CHECK_OK(maia_free(0, a));
    CHECK(__asan_address_is_poisoned(pa));                  /* freed: use after free */
    CHECK(__asan_region_is_poisoned(pb, 256) == NULL);      /* the neighbour is untouched */
    uint64_t c;
    CHECK_OK(maia_malloc(0, 64, &c)); /* best fit reuses a's block */
    CHECK(arena_address(c) == pa);
    CHECK(__asan_region_is_poisoned(pa, 64) == NULL && __asan_address_is_poisoned(pa + 64));
    CHECK_OK(maia_free(0, c));
    CHECK_OK(maia_free(0, b));
    CHECK(__asan_address_is_poisoned(pb) && __asan_address_is_poisoned(pb + 255));
    RT_DOWN();
    CHECK(__asan_region_is_poisoned(pa, 512) == NULL); /* unmapped: no stale poison left */
}
#endif

int main(void) {
    unsetenv("HWABSTRACT_MAIA_DEVICES");
    unsetenv("HWABSTRACT_MAIA_MEMORY");
    unsetenv("HWABSTRACT_MAIA_FAIL_ALLOC");
    unsetenv("HWABSTRACT_MAIA_FAIL_KERNEL");
    unsetenv("HWABSTRACT_MAIA_QUEUE_DELAY_US");
    RUN(test_not_initialized);
    RUN(test_status_names_and_version);
    RUN(test_init_config_and_info);
    RUN(test_env_config);
    RUN(test_alignment_and_stats);
    RUN(test_coalescing);
    RUN(test_fragmentation_best_fit);
    RUN(test_oom_figures);
    RUN(test_handle_misuse);
    RUN(test_fault_fail_nth_allocation);
    RUN(test_shutdown_reports_leaks);
#ifdef TEST_ASAN
    RUN(test_asan_poisons_padding_and_freed_blocks);
#endif
    return CHECK_REPORT();
}
