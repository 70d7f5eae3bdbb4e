/* hwabstract.backends._pjrtfast: the PJRT backend's side of a steady-state launch, compiled.
 *
 * pjrt.py stays the definition of every behaviour; this module holds compiled twins of
 * three of its pieces, used where it is built (after configure(buffer_type, stream_type,
 * synchronize) gives it the classes whose __slots__ it reads: see _slots.h):
 *
 *   Memory(count, buffer_type, capacity_of, out_of_memory, already_freed)
 *       pjrt.PjrtMemory: allocate(index, nbytes), free(buffer), counts(index). The counters
 *       are C integers, updated with no Python code in between (the GIL is held
 *       throughout), so it needs no lock. Its errors are made by the same Python callables
 *       PjrtMemory raises (out of memory, a double free).
 *   BoundCall(exe, kinds, sizes, out_dtype, device, fallback, refused, on_refused, prune)
 *       the bound launch PjrtBackend.bind_launch makes: checks the input buffers against what
 *       the executable was specialized for, calls it, stores the result in the output buffer
 *       and appends it to the stream's pending list (an append needs no lock: see
 *       PjrtStream). Anything else -- another kind or size, an array on another device, a
 *       written output, a destroyed stream, arguments of another form -- goes, untouched,
 *       to the Python bound launch (`fallback`).
 *   synchronize(stream)
 *       pjrt._synchronize (PjrtBackend.stream_synchronize): takes the pending arrays under
 *       the stream's lock and waits for each; what was not waited for stays pending.
 *
 * All rely on the GIL (CPython without free threading; a free-threaded build re-enables it
 * for this module, which declares no support for running without it).
 * docs/architecture.md, "The PJRT backend's side of a launch is compiled too", says why this
 * exists and what it measured.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include "../_slots.h"

static PyObject *s_array, *s_kind, *s_nbytes, *s_device, *s_freed, *s_destroyed, *s_pending,
    *s_devices, *s_lock, *s_acquire, *s_release, *s_is_deleted, *s_block_until_ready;

/* configure(buffer_type, stream_type): PjrtBuffer and PjrtStream, whose __slots__ are read
 * and written at their offsets (_slots.h says why). Objects of any other type (a subclass
 * included) are left to Python. */
static PyTypeObject *buffer_type, *stream_type;
static Py_ssize_t off_array = -1, off_kind, off_nbytes, off_device, off_freed, off_pending,
    off_destroyed, off_lock;
static PyObject *py_synchronize; /* pjrt._synchronize: for a stream of another type */

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *buffer, *stream, *synchronize;
    static char *names[] = {"buffer_type", "stream_type", "synchronize", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O:configure", names, &PyType_Type,
                                     &buffer, &PyType_Type, &stream, &synchronize))
        return NULL;
    const SlotSpec slots[] = {
        {&off_array, buffer, s_array},     {&off_kind, buffer, s_kind},
        {&off_nbytes, buffer, s_nbytes},   {&off_device, buffer, s_device},
        {&off_freed, buffer, s_freed},     {&off_pending, stream, s_pending},
        {&off_destroyed, stream, s_destroyed}, {&off_lock, stream, s_lock},
    };
    if (resolve_slots(slots, sizeof slots / sizeof *slots) < 0)
        return NULL;
    Py_XSETREF(buffer_type, (PyTypeObject *)Py_NewRef(buffer));
    Py_XSETREF(stream_type, (PyTypeObject *)Py_NewRef(stream));
    Py_XSETREF(py_synchronize, Py_NewRef(synchronize));
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* Memory: pjrt.PjrtMemory                                                                    */

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;          /* devices */
    long long *capacity;       /* per device; -1 until asked */
    long long *in_use, *peak, *live;
    PyObject *capacity_of;     /* capacity_of(index) -> int */
    PyObject *out_of_memory;   /* out_of_memory(index, nbytes, free, capacity) -> exception */
    PyObject *already_freed;   /* already_freed(buffer) -> exception */
} Memory;

/* raise make(*args) (the exception the callable returns) */
static void
raise_made(PyObject *make, PyObject *const *args, size_t nargs)
{
    PyObject *error = PyObject_Vectorcall(make, args, nargs, NULL);
    if (error == NULL)
        return;
    PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    Py_DECREF(error);
}

/* a device index in range; -1 (with an IndexError, as a list's) otherwise */
static Py_ssize_t
device_index(Memory *self, PyObject *value)
{
    Py_ssize_t index = PyNumber_AsSsize_t(value, PyExc_IndexError);
    if (index == -1 && PyErr_Occurred())
        return -1;
    if (index < 0 || index >= self->count) {
        PyErr_Format(PyExc_IndexError, "device index %zd out of range (%zd devices)", index,
                     self->count);
        return -1;
    }
    return index;
}

/* a byte count: a non-negative int that fits in 63 bits; -1 with an exception otherwise */
static long long
byte_count(PyObject *value)
{
    long long n = PyLong_AsLongLong(value);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "a negative byte count: %lld", n);
        return -1;
    }
    return n;
}

static PyObject *
memory_allocate(Memory *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "allocate() takes 2 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    Py_ssize_t index = device_index(self, args[0]);
    if (index < 0)
        return NULL;
    long long nbytes = byte_count(args[1]);
    if (nbytes < 0)
        return NULL;
    if (self->capacity[index] < 0) {
        PyObject *capacity = PyObject_CallOneArg(self->capacity_of, args[0]);
        if (capacity == NULL)
            return NULL;
        long long value = byte_count(capacity);
        Py_DECREF(capacity);
        if (value < 0)
            return NULL;
        self->capacity[index] = value;
    }
    long long capacity = self->capacity[index], free = capacity - self->in_use[index];
    if (nbytes > free) {
        PyObject *call_args[4] = {args[0], args[1], NULL, NULL};
        call_args[2] = PyLong_FromLongLong(free);
        call_args[3] = call_args[2] ? PyLong_FromLongLong(capacity) : NULL;
        if (call_args[3] != NULL)
            raise_made(self->out_of_memory, call_args, 4);
        Py_XDECREF(call_args[2]);
        Py_XDECREF(call_args[3]);
        return NULL;
    }
    PyObject *nbytes_obj = PyLong_FromLongLong(nbytes);
    if (nbytes_obj == NULL)
        return NULL;
    PyObject *buffer = buffer_type->tp_alloc(buffer_type, 0);
    if (buffer == NULL) {
        Py_DECREF(nbytes_obj);
        return NULL;
    }
    /* PjrtBuffer.__init__, at the slots' offsets (all unset in a new object) */
    slot_poke(buffer, off_device, args[0]);
    slot_poke(buffer, off_nbytes, nbytes_obj);
    slot_poke(buffer, off_array, Py_None);
    slot_poke(buffer, off_kind, Py_None);
    slot_poke(buffer, off_freed, Py_False);
    Py_DECREF(nbytes_obj);
    /* (no Python code runs from here on: nothing can interleave with the update) */
    long long used = self->in_use[index] += nbytes;
    self->live[index] += 1;
    if (used > self->peak[index])
        self->peak[index] = used;
    return buffer;
}

static PyObject *
memory_free(Memory *self, PyObject *buffer)
{
    if (Py_TYPE(buffer) != buffer_type) {
        PyErr_Format(PyExc_TypeError, "free() takes a %s, not %s", buffer_type->tp_name,
                     Py_TYPE(buffer)->tp_name);
        return NULL;
    }
    PyObject *freed = slot_peek(buffer, off_freed, s_freed);
    if (freed == NULL)
        return NULL;
    int truth = PyObject_IsTrue(freed);
    if (truth < 0)
        return NULL;
    if (truth) {
        raise_made(self->already_freed, &buffer, 1);
        return NULL;
    }
    PyObject *device = slot_peek(buffer, off_device, s_device);
    if (device == NULL)
        return NULL;
    Py_ssize_t index = device_index(self, device);
    if (index < 0)
        return NULL;
    PyObject *nbytes_obj = slot_peek(buffer, off_nbytes, s_nbytes);
    if (nbytes_obj == NULL)
        return NULL;
    long long nbytes = byte_count(nbytes_obj);
    if (nbytes < 0)
        return NULL;
    slot_poke(buffer, off_freed, Py_True);
    self->in_use[index] -= nbytes;
    self->live[index] -= 1;
    /* last: dropping the array may run Python code (its finalizers) */
    slot_poke(buffer, off_array, Py_None);
    Py_RETURN_NONE;
}

static PyObject *
memory_counts(Memory *self, PyObject *value)
{
    Py_ssize_t index = device_index(self, value);
    if (index < 0)
        return NULL;
    return Py_BuildValue("(LLL)", self->in_use[index], self->peak[index], self->live[index]);
}

static PyObject *
memory_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t count;
    PyObject *buffer, *capacity_of, *out_of_memory, *already_freed;
    static char *names[] = {"count", "buffer_type", "capacity_of", "out_of_memory",
                            "already_freed", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nOOOO:Memory", names, &count, &buffer,
                                     &capacity_of, &out_of_memory, &already_freed))
        return NULL;
    if (buffer_type == NULL || buffer != (PyObject *)buffer_type) {
        PyErr_SetString(PyExc_TypeError,
                        "Memory makes buffers of the type given to configure() only");
        return NULL;
    }
    if (count < 0 || count > 1 << 20) {
        PyErr_Format(PyExc_ValueError, "Memory for %zd devices", count);
        return NULL;
    }
    Memory *self = (Memory *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->count = count;
    self->capacity = PyMem_Calloc((size_t)count + 1, 4 * sizeof(long long));
    if (self->capacity == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->in_use = self->capacity + count + 1;
    self->peak = self->in_use + count + 1;
    self->live = self->peak + count + 1;
    for (Py_ssize_t i = 0; i < count; i++)
        self->capacity[i] = -1;
    self->capacity_of = Py_NewRef(capacity_of);
    self->out_of_memory = Py_NewRef(out_of_memory);
    self->already_freed = Py_NewRef(already_freed);
    return (PyObject *)self;
}

static int
memory_traverse(Memory *self, visitproc visit, void *arg)
{
    Py_VISIT(self->capacity_of);
    Py_VISIT(self->out_of_memory);
    Py_VISIT(self->already_freed);
    return 0;
}

static int
memory_clear(Memory *self)
{
    Py_CLEAR(self->capacity_of);
    Py_CLEAR(self->out_of_memory);
    Py_CLEAR(self->already_freed);
    return 0;
}

static void
memory_dealloc(Memory *self)
{
    PyObject_GC_UnTrack(self);
    memory_clear(self);
    PyMem_Free(self->capacity);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef memory_methods[] = {
    {"allocate", (PyCFunction)(void (*)(void))memory_allocate, METH_FASTCALL,
     "allocate(index, nbytes): a new PjrtBuffer, accounted (PjrtMemory.allocate)."},
    {"free", (PyCFunction)memory_free, METH_O, "free(buffer): PjrtMemory.free."},
    {"counts", (PyCFunction)memory_counts, METH_O,
     "counts(index): (bytes in use, peak bytes in use, live buffers)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MemoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwabstract.backends._pjrtfast.Memory",
    .tp_doc = "pjrt.PjrtMemory, compiled (see the module docstring).",
    .tp_basicsize = sizeof(Memory),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = memory_new,
    .tp_traverse = (traverseproc)memory_traverse,
    .tp_clear = (inquiry)memory_clear,
    .tp_dealloc = (destructor)memory_dealloc,
    .tp_methods = memory_methods,
};

/* ---------------------------------------------------------------------------------------- */
/* BoundCall                                                                                  */

#define MAX_INPUTS 16

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *exe;        /* the jitted executable */
    PyObject *kinds;      /* tuple: each input buffer's `kind` it was traced for */
    long long sizes[MAX_INPUTS]; /* each input buffer's `nbytes` */
    PyObject *out_dtype;  /* what the output buffer's `kind` becomes */
    PyObject *device;     /* the jax Device every input must be on, or None (one device) */
    PyObject *fallback;   /* the Python bound launch */
    PyObject *refused;    /* the exception classes JAX refuses a launch with (_REFUSED) */
    PyObject *on_refused; /* exc -> the KernelError to raise from it */
    PyObject *prune;      /* prune(stream): drop its finished pending arrays */
} BoundCall;

/* The pending list gets `result`, as PjrtStream.produced does (an append, without the lock:
 * see PjrtStream); -1 with an exception */
static int
produced(BoundCall *self, PyObject *stream, PyObject *result)
{
    PyObject *pending = slot_peek(stream, off_pending, s_pending);
    if (pending == NULL)
        return -1;
    if (!PyList_CheckExact(pending)) {
        PyErr_SetString(PyExc_TypeError, "a PJRT stream's pending list is not a list");
        return -1;
    }
    Py_INCREF(pending);
    int status = PyList_Append(pending, result);
    Py_ssize_t n = PyList_GET_SIZE(pending);
    Py_DECREF(pending);
    if (status == 0 && n > 8) {
        PyObject *r = PyObject_CallOneArg(self->prune, stream);
        if (r == NULL)
            status = -1;
        Py_XDECREF(r);
    }
    return status;
}

/* the executable's exception, as the SDK's error if it is one JAX refuses launches with */
static void
raise_refused(BoundCall *self)
{
    if (!PyErr_ExceptionMatches(self->refused))
        return;
    PyObject *exc_type, *exc, *exc_tb;
    PyErr_Fetch(&exc_type, &exc, &exc_tb);
    PyErr_NormalizeException(&exc_type, &exc, &exc_tb);
    if (exc_tb != NULL)
        PyException_SetTraceback(exc, exc_tb);
    PyObject *error = PyObject_CallOneArg(self->on_refused, exc);
    if (error == NULL) {
        Py_XDECREF(exc_type);
        Py_XDECREF(exc);
        Py_XDECREF(exc_tb);
        return;
    }
    /* raise error from exc */
    Py_INCREF(exc);
    PyException_SetCause(error, exc);   /* steals a reference (and suppresses the context) */
    PyException_SetContext(error, exc); /* steals the other */
    PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    Py_DECREF(error);
    Py_XDECREF(exc_type);
    Py_XDECREF(exc_tb);
}

static PyObject *
bound_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    BoundCall *self = (BoundCall *)self_;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || kwnames != NULL)
        goto python;
    PyObject *stream = args[0], *buffers = args[1], *outs = args[2];
    Py_ssize_t n = PyTuple_GET_SIZE(self->kinds);
    if (!(PyList_CheckExact(buffers) && PyList_GET_SIZE(buffers) == n)
        && !(PyTuple_CheckExact(buffers) && PyTuple_GET_SIZE(buffers) == n))
        goto python;
    if (!PyTuple_CheckExact(outs) || PyTuple_GET_SIZE(outs) != 1
        || Py_TYPE(stream) != stream_type)
        goto python;
    PyObject *out = PyTuple_GET_ITEM(outs, 0);
    if (Py_TYPE(out) != buffer_type)
        goto python;
    {
        PyObject *kind = slot_peek(out, off_kind, s_kind);
        if (kind == NULL)
            return NULL;
        if (kind != Py_None) /* a written output: Python's launch() */
            goto python;
        PyObject *destroyed = slot_peek(stream, off_destroyed, s_destroyed);
        if (destroyed == NULL)
            return NULL;
        if (destroyed != Py_False) /* launch() refuses it, saying so */
            goto python;
    }
    /* the input buffers: the kinds and sizes the executable was traced for; their arrays */
    PyObject *arrays[MAX_INPUTS];
    Py_ssize_t got = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* (read afresh each time: Python code run below could change a list) */
        if (i >= Py_SIZE(buffers))
            goto slow;
        PyObject *buffer = PyList_CheckExact(buffers) ? PyList_GET_ITEM(buffers, i)
                                                      : PyTuple_GET_ITEM(buffers, i);
        if (Py_TYPE(buffer) != buffer_type)
            goto slow;
        PyObject *kind = slot_peek(buffer, off_kind, s_kind);
        if (kind == NULL)
            goto error;
        if (kind != PyTuple_GET_ITEM(self->kinds, i))
            goto slow;
        PyObject *nbytes = slot_peek(buffer, off_nbytes, s_nbytes);
        if (nbytes == NULL)
            goto error;
        if (!PyLong_CheckExact(nbytes))
            goto slow;
        long long size = PyLong_AsLongLong(nbytes);
        if (size == -1 && PyErr_Occurred())
            goto error;
        if (size != self->sizes[i])
            goto slow;
        PyObject *array = slot_peek(buffer, off_array, s_array);
        if (array == NULL)
            goto error;
        arrays[got++] = Py_NewRef(array); /* held: the call may let other threads run */
        if (self->device != Py_None) {
            /* on another device: PjrtBackend._on puts it there, in Python */
            PyObject *devices = PyObject_CallMethodNoArgs(array, s_devices);
            if (devices == NULL)
                goto error;
            int on = PySequence_Contains(devices, self->device);
            Py_DECREF(devices);
            if (on < 0)
                goto error;
            if (!on)
                goto slow;
        }
    }
    PyObject *result = PyObject_Vectorcall(self->exe, arrays, (size_t)n, NULL);
    for (Py_ssize_t i = 0; i < got; i++)
        Py_DECREF(arrays[i]);
    if (result == NULL) {
        raise_refused(self);
        return NULL;
    }
    slot_poke(out, off_array, result);
    slot_poke(out, off_kind, self->out_dtype);
    int status = produced(self, stream, result);
    Py_DECREF(result);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;

slow:
    for (Py_ssize_t i = 0; i < got; i++)
        Py_DECREF(arrays[i]);
python:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
error:
    for (Py_ssize_t i = 0; i < got; i++)
        Py_DECREF(arrays[i]);
    return NULL;
}

static PyObject *
bound_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *exe, *kinds, *sizes, *out_dtype, *device, *fallback, *refused, *on_refused, *prune;
    static char *names[] = {"exe", "kinds", "sizes", "out_dtype", "device", "fallback",
                            "refused", "on_refused", "prune", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!OOOO!OO:BoundCall", names, &exe,
                                     &PyTuple_Type, &kinds, &PyTuple_Type, &sizes, &out_dtype,
                                     &device, &fallback, &PyTuple_Type, &refused, &on_refused,
                                     &prune))
        return NULL;
    if (PyTuple_GET_SIZE(kinds) != PyTuple_GET_SIZE(sizes)
        || PyTuple_GET_SIZE(kinds) > MAX_INPUTS) {
        PyErr_Format(PyExc_ValueError,
                     "BoundCall takes as many kinds as sizes, at most %d", MAX_INPUTS);
        return NULL;
    }
    if (buffer_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "BoundCall() before configure()");
        return NULL;
    }
    long long sizes_c[MAX_INPUTS];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(sizes); i++) {
        sizes_c[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(sizes, i));
        if (sizes_c[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    BoundCall *self = (BoundCall *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    memcpy(self->sizes, sizes_c, sizeof sizes_c);
    self->exe = Py_NewRef(exe);
    self->kinds = Py_NewRef(kinds);
    self->out_dtype = Py_NewRef(out_dtype);
    self->device = Py_NewRef(device);
    self->fallback = Py_NewRef(fallback);
    self->refused = Py_NewRef(refused);
    self->on_refused = Py_NewRef(on_refused);
    self->prune = Py_NewRef(prune);
    self->vectorcall = bound_call;
    return (PyObject *)self;
}

static int
bound_traverse(BoundCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->exe);
    Py_VISIT(self->kinds);
    Py_VISIT(self->out_dtype);
    Py_VISIT(self->device);
    Py_VISIT(self->fallback);
    Py_VISIT(self->refused);
    Py_VISIT(self->on_refused);
    Py_VISIT(self->prune);
    return 0;
}

static int
bound_clear(BoundCall *self)
{
    Py_CLEAR(self->exe);
    Py_CLEAR(self->kinds);
    Py_CLEAR(self->out_dtype);
    Py_CLEAR(self->device);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->refused);
    Py_CLEAR(self->on_refused);
    Py_CLEAR(self->prune);
    return 0;
}

static void
bound_dealloc(BoundCall *self)
{
    PyObject_GC_UnTrack(self);
    bound_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject BoundCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwabstract.backends._pjrtfast.BoundCall",
    .tp_doc = "A PJRT bound launch, compiled (see the module docstring).",
    .tp_basicsize = sizeof(BoundCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(BoundCall, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = bound_new,
    .tp_traverse = (traverseproc)bound_traverse,
    .tp_clear = (inquiry)bound_clear,
    .tp_dealloc = (destructor)bound_dealloc,
};

/* ---------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------- */
/* synchronize: pjrt._synchronize                                                             */

/* pending[:0] = rest, under the stream's lock, keeping the pending exception */
static void
put_back(PyObject *stream, PyObject *rest)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyObject *lock = slot_peek(stream, off_lock, s_lock), *pending = slot_peek(stream, off_pending,
                                                                       s_pending);
    PyObject *r = lock ? PyObject_CallMethodNoArgs(lock, s_acquire) : NULL;
    if (r != NULL) {
        Py_DECREF(r);
        if (PyList_CheckExact(pending))
            PyList_SetSlice(pending, 0, 0, rest);
        r = PyObject_CallMethodNoArgs(lock, s_release);
        Py_XDECREF(r);
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(stream); /* (only a broken lock or list could fail here) */
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static PyObject *
synchronize(PyObject *Py_UNUSED(module), PyObject *stream)
{
    if (py_synchronize == NULL) {
        PyErr_SetString(PyExc_TypeError, "synchronize() before configure()");
        return NULL;
    }
    if (Py_TYPE(stream) != stream_type) /* (a subclass, say): the Python definition */
        return PyObject_CallOneArg(py_synchronize, stream);
    /* PjrtStream.take(): the pending arrays, removed under the lock */
    PyObject *lock = slot_peek(stream, off_lock, s_lock);
    if (lock == NULL)
        return NULL;
    Py_INCREF(lock);
    PyObject *r = PyObject_CallMethodNoArgs(lock, s_acquire); /* (waits without the GIL) */
    if (r == NULL) {
        Py_DECREF(lock);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *pending = slot_peek(stream, off_pending, s_pending), *taken = NULL;
    if (pending != NULL && !PyList_CheckExact(pending))
        PyErr_SetString(PyExc_TypeError, "a PJRT stream's pending list is not a list");
    else if (pending != NULL) {
        Py_ssize_t n = PyList_GET_SIZE(pending);
        taken = PyList_GetSlice(pending, 0, n);
        if (taken != NULL && PyList_SetSlice(pending, 0, n, NULL) < 0)
            Py_CLEAR(taken);
    }
    r = PyObject_CallMethodNoArgs(lock, s_release);
    Py_DECREF(lock);
    if (r == NULL) {
        Py_XDECREF(taken);
        return NULL;
    }
    Py_DECREF(r);
    if (taken == NULL)
        return NULL;
    /* _wait(array) for each: block_until_ready, which refuses a deleted array (donated to
     * a later launch, which carries the ordering): that refusal is not an error */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(taken); i++) {
        PyObject *array = PyList_GET_ITEM(taken, i);
        PyObject *done = PyObject_CallMethodNoArgs(array, s_block_until_ready);
        int waited = done == NULL ? -1 : 1;
        Py_XDECREF(done);
        if (waited < 0 && PyErr_ExceptionMatches(PyExc_Exception)) { /* (not an interrupt) */
            PyObject *exc_type, *exc_value, *exc_tb;
            PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
            PyObject *deleted = PyObject_CallMethodNoArgs(array, s_is_deleted);
            int is_deleted = deleted == NULL ? -1 : PyObject_IsTrue(deleted);
            Py_XDECREF(deleted);
            if (is_deleted == 1) {
                waited = 1;
                Py_XDECREF(exc_type);
                Py_XDECREF(exc_value);
                Py_XDECREF(exc_tb);
            } else if (is_deleted == 0) {
                PyErr_Restore(exc_type, exc_value, exc_tb);
            } else { /* is_deleted() failed too: its error, the wait's as its context */
                PyErr_NormalizeException(&exc_type, &exc_value, &exc_tb);
                PyObject *new_type, *new_value, *new_tb;
                PyErr_Fetch(&new_type, &new_value, &new_tb);
                PyErr_NormalizeException(&new_type, &new_value, &new_tb);
                if (exc_value != NULL && new_value != NULL)
                    PyException_SetContext(new_value, Py_NewRef(exc_value));
                Py_XDECREF(exc_type);
                Py_XDECREF(exc_value);
                Py_XDECREF(exc_tb);
                PyErr_Restore(new_type, new_value, new_tb);
            }
        }
        if (waited < 0) { /* what was not waited for stays pending */
            PyObject *rest = PyList_GetSlice(taken, i, PyList_GET_SIZE(taken));
            if (rest != NULL) {
                put_back(stream, rest);
                Py_DECREF(rest);
            }
            Py_DECREF(taken);
            return NULL;
        }
    }
    Py_DECREF(taken);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(buffer_type, stream_type, synchronize): PjrtBuffer and PjrtStream (their "
     "slots' offsets), and pjrt._synchronize."},
    {"synchronize", synchronize, METH_O,
     "synchronize(stream): pjrt._synchronize, compiled (PjrtBackend.stream_synchronize)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hwabstract.backends._pjrtfast",
    .m_doc = "The PJRT backend's steady-state launch, compiled (see _pjrtfast.c).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__pjrtfast(void)
{
    INTERN(s_array, "array");
    INTERN(s_kind, "kind");
    INTERN(s_nbytes, "nbytes");
    INTERN(s_device, "device");
    INTERN(s_freed, "freed");
    INTERN(s_destroyed, "destroyed");
    INTERN(s_pending, "pending");
    INTERN(s_devices, "devices");
    INTERN(s_lock, "lock");
    INTERN(s_acquire, "acquire");
    INTERN(s_release, "release");
    INTERN(s_is_deleted, "is_deleted");
    INTERN(s_block_until_ready, "block_until_ready");
    if (PyType_Ready(&MemoryType) < 0 || PyType_Ready(&BoundCallType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Memory", (PyObject *)&MemoryType) < 0
        || PyModule_AddObjectRef(module, "BoundCall", (PyObject *)&BoundCallType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
