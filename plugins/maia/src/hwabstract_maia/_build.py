"""cffi build script (out-of-line, API mode) for ``hwabstract_maia._maia``.

Run by setuptools through ``cffi_modules`` in setup.py. It compiles libmaia's runtime and
kernels (``native/maia/src/*.c`` and ``src/kernels/*.c``) together with the generated
binding into one extension module, so the installed package needs no separate shared
library.

Where the C sources are found, first match wins:

1. ``HWABSTRACT_MAIA_NATIVE`` -- a directory holding libmaia (``include/``, ``src/``);
2. ``native/maia`` inside this plugin's project directory (an sdist that vendored it);
3. ``../../native/maia`` from the plugin's project directory (building from the repository).

setuptools wants source paths relative to the project directory, so sources found outside
it are mirrored into ``build/libmaia`` (ignored by git) before compiling.

``HWABSTRACT_MAIA_SANITIZE=address`` builds the extension under AddressSanitizer and
UndefinedBehaviorSanitizer (``-fsanitize=address,undefined -fno-sanitize-recover=all``, with
frame pointers and ``-g``), for the sanitized conformance run (tox env
``conformance-maia-asan``, see docs/reliability.md). Such a module loads only into a
process whose first library is the compiler's ASan runtime: run Python with
``LD_PRELOAD=$(gcc -print-file-name=libasan.so)`` and ``ASAN_OPTIONS=detect_leaks=0`` (the
interpreter's own allocations would otherwise be reported as leaks). Unset, empty or
``none``: an ordinary build. The setting is written into the generated C source, so
switching it recompiles even in a reused ``build/`` directory; still build a sanitized
module from its own copy of the project (as the tox env does) when ordinary builds of the
same checkout may run at the same time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cffi import FFI

_PROJECT = Path(__file__).resolve().parents[2]  # plugins/maia


def _native_dir() -> Path:
    candidates = []
    env = os.environ.get("HWABSTRACT_MAIA_NATIVE")
    if env:
        candidates.append(Path(env))
    candidates += [_PROJECT / "native" / "maia", _PROJECT.parents[1] / "native" / "maia"]
    for path in candidates:
        if (path / "include" / "maia.h").is_file() and (path / "src" / "kernels").is_dir():
            return path.resolve()
    raise RuntimeError(
        "cannot find the libmaia sources (include/maia.h, src/, src/kernels/); looked in "
        + ", ".join(str(p) for p in candidates)
        + ". Build from the hwabstract repository, or set HWABSTRACT_MAIA_NATIVE to the "
        "native/maia directory."
    )


def _in_project(native: Path) -> Path:
    """libmaia's sources as a path relative to the project directory.

    setuptools accepts only relative source paths without ``..`` (object files are placed by
    them), so sources outside the project are mirrored into ``build/libmaia`` first.
    """
    try:
        return native.relative_to(_PROJECT)
    except ValueError:
        pass
    mirror = _PROJECT / "build" / "libmaia"
    if mirror.exists():
        shutil.rmtree(mirror)
    for sub in ("include", "src"):
        shutil.copytree(native / sub, mirror / sub, ignore=shutil.ignore_patterns("*.o", "*.d"))
    return mirror.relative_to(_PROJECT)


def _sanitize_flags() -> tuple[list[str], list[str]]:
    """(extra compile args, extra link args) that ``HWABSTRACT_MAIA_SANITIZE`` asks for."""
    mode = os.environ.get("HWABSTRACT_MAIA_SANITIZE", "").strip().lower()
    if mode in ("", "none", "0"):
        return [], []
    if mode == "address":
        san = "-fsanitize=address,undefined"
        return [san, "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"], [san]
    raise RuntimeError(
        f"HWABSTRACT_MAIA_SANITIZE={mode!r} is not supported: use 'address' "
        "(AddressSanitizer + UndefinedBehaviorSanitizer) or leave it unset"
    )


SANITIZE_COMPILE, SANITIZE_LINK = _sanitize_flags()
NATIVE = _in_project(_native_dir())
_ROOT = _PROJECT / NATIVE
SOURCES = sorted(
    p.relative_to(_PROJECT).as_posix()
    for p in [*(_ROOT / "src").glob("*.c"), *(_ROOT / "src" / "kernels").glob("*.c")]
)

CDEF = """
typedef enum maia_status {
    MAIA_OK = 0,
    MAIA_NOT_READY = 1,
    MAIA_ERROR_INVALID_ARGUMENT = 2,
    MAIA_ERROR_NOT_INITIALIZED = 3,
    MAIA_ERROR_ALREADY_INITIALIZED = 4,
    MAIA_ERROR_INVALID_DEVICE = 5,
    MAIA_ERROR_OUT_OF_MEMORY = 6,
    MAIA_ERROR_INVALID_HANDLE = 7,
    MAIA_ERROR_USE_AFTER_FREE = 8,
    MAIA_ERROR_DOUBLE_FREE = 9,
    MAIA_ERROR_FOREIGN_HANDLE = 10,
    MAIA_ERROR_OUT_OF_BOUNDS = 11,
    MAIA_ERROR_KERNEL_FAILED = 12,
    MAIA_ERROR_HOST_OUT_OF_MEMORY = 13,
    MAIA_ERROR_SYSTEM = 14,
    MAIA_ERROR_LIMIT = 15,
    MAIA_ERROR_LEAKED_RESOURCES = 16
} maia_status;

#define MAIA_MAX_DIMS 32
#define MAIA_MAX_OPERANDS 4
#define MAIA_MAX_KERNEL_NAME 63
#define MAIA_DTYPE_COUNT 14

typedef struct maia_attrs {
    uint64_t axes_mask;
    int32_t keepdims;
    int32_t axis;
    double eps;
    double correction;
    int32_t approximate;
    int32_t has_min;
    int32_t has_max;
    int32_t has_weight;
    int32_t has_bias;
    int32_t dtype;
    int32_t mx_format;
    int32_t mx_b_format;
    int64_t mx_n;
    int32_t descending;
    int32_t stable;
    int32_t side;
    int32_t include_initial;
    int64_t count;
    int32_t upper;
    int32_t full_matrices;
    int32_t qr_complete;
} maia_attrs;

typedef struct maia_config {
    int32_t device_count;
    uint64_t memory_bytes;
    int32_t kernel_threads;
    int32_t max_queues_per_device;
    int32_t ignore_env;
} maia_config;

typedef struct maia_leak_report {
    uint64_t buffers;
    uint64_t buffer_bytes;
    uint64_t queues;
    uint64_t events;
} maia_leak_report;

typedef struct maia_device_info {
    char name[64];
    char vendor[32];
    char model[32];
    uint64_t memory_capacity;
    uint64_t modeled_memory_capacity;
    uint64_t max_allocation;
    uint64_t modeled_sram_bytes;
    int32_t index;
    int32_t kernel_threads;
    int32_t max_queues;
    int32_t emulated;
} maia_device_info;

typedef struct maia_memory_stats {
    uint64_t capacity;
    uint64_t in_use;
    uint64_t requested;
    uint64_t peak;
    uint64_t free;
    uint64_t pending_free;
    uint64_t largest_free_block;
    uint64_t live_allocations;
    uint64_t total_allocations;
    uint64_t free_blocks;
} maia_memory_stats;

typedef struct maia_device_counters {
    uint64_t commands;
    uint64_t kernels;
    uint64_t copies;
    uint64_t bytes_copied;
    uint64_t failed_commands;
    double modeled_busy_ns;
    double wall_busy_ns;
} maia_device_counters;

typedef struct maia_buffer_view {
    uint64_t buffer;
    int64_t offset;
    int32_t dtype;
    int32_t ndim;
    int64_t shape[32];
    int64_t strides[32];
} maia_buffer_view;

typedef struct maia_queue_info {
    int32_t device;
    int32_t index;
    uint64_t submitted;
    uint64_t completed;
    double modeled_clock_ns;
    uint32_t delay_us;
} maia_queue_info;

maia_status maia_init(const maia_config *cfg);
maia_status maia_shutdown(maia_leak_report *report);
int maia_is_initialized(void);
const char *maia_status_name(int status);
const char *maia_last_error(void);
void maia_clear_error(void);
const char *maia_version_string(void);

maia_status maia_device_count(int32_t *count);
maia_status maia_device_get_info(int32_t device, maia_device_info *info);
maia_status maia_device_memory_stats(int32_t device, maia_memory_stats *stats);
maia_status maia_device_get_counters(int32_t device, maia_device_counters *counters);
maia_status maia_device_synchronize(int32_t device);

maia_status maia_malloc(int32_t device, uint64_t nbytes, uint64_t *buffer);
maia_status maia_free(int32_t device, uint64_t buffer);
maia_status maia_buffer_size(int32_t device, uint64_t buffer, uint64_t *nbytes);
size_t maia_dtype_size(int32_t dtype);

typedef struct maia_trace_entry {
    uint64_t queue;
    uint64_t sequence;
    uint64_t modeled_start_ps;
    uint64_t modeled_duration_ps;
    int64_t wall_start_ns;
    uint64_t wall_duration_ns;
    uint64_t bytes;
    double flops;
    int32_t device;
    int32_t queue_index;
    int32_t kind;
    int32_t status;
    int32_t src_device;
    int32_t reserved;
    char name[64];
} maia_trace_entry;

typedef struct maia_trace_info {
    uint64_t capacity;
    uint64_t held;
    uint64_t recorded;
    uint64_t dropped;
} maia_trace_info;

maia_status maia_trace_set_capacity(int32_t device, uint64_t entries);
maia_status maia_trace_get_info(int32_t device, maia_trace_info *info);
maia_status maia_trace_clear(int32_t device);
maia_status maia_trace_read(int32_t device, maia_trace_entry *out, uint64_t capacity,
                            uint64_t *count, uint64_t *dropped);

maia_status maia_queue_create(int32_t device, uint64_t *queue);
maia_status maia_queue_destroy(uint64_t queue);
maia_status maia_queue_synchronize(uint64_t queue);
maia_status maia_queue_query(uint64_t queue);
maia_status maia_queue_get_info(uint64_t queue, maia_queue_info *info);

maia_status maia_copy_h2d(uint64_t queue, const maia_buffer_view *dst, const void *src,
                          uint64_t nbytes);
maia_status maia_copy_d2h(uint64_t queue, void *dst, uint64_t nbytes,
                          const maia_buffer_view *src);
maia_status maia_copy_d2d(uint64_t queue, const maia_buffer_view *dst,
                          const maia_buffer_view *src);
maia_status maia_launch(uint64_t queue, const char *kernel, const maia_buffer_view *inputs,
                        int32_t n_inputs, const maia_buffer_view *outputs, int32_t n_outputs,
                        const maia_attrs *attrs);

maia_status maia_event_record(uint64_t queue, uint64_t *event);
maia_status maia_queue_wait_event(uint64_t queue, uint64_t event);
maia_status maia_event_query(uint64_t event);
maia_status maia_event_synchronize(uint64_t event);
maia_status maia_event_elapsed(uint64_t start, uint64_t end, double *wall_ms,
                               double *modeled_ms);
maia_status maia_event_destroy(uint64_t event);
maia_status maia_user_event_create(uint64_t *event);
maia_status maia_user_event_signal(uint64_t event);

maia_status maia_fault_fail_allocation(int32_t device, uint64_t nth);
maia_status maia_fault_fail_kernel(int32_t device, const char *kernel);
maia_status maia_fault_queue_delay(uint64_t queue, uint32_t us);
maia_status maia_fault_lose_device(int32_t device);

int maia_kernel_supports(const char *kernel, int32_t dtype);
const char *const *maia_kernel_names(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "hwabstract_maia._maia",
    '#include "maia.h"\n'
    # the sanitizer flags in the generated source: a changed setting rebuilds the module
    + (f"/* built with {' '.join(SANITIZE_COMPILE)} */\n" if SANITIZE_COMPILE else ""),
    sources=SOURCES,
    include_dirs=[(NATIVE / "include").as_posix(), (NATIVE / "src").as_posix()],
    extra_compile_args=["-std=c11", "-O2", "-pthread", "-fvisibility=hidden", *SANITIZE_COMPILE],
    extra_link_args=["-pthread", *SANITIZE_LINK],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
