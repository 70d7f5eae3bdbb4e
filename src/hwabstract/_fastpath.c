/*
 * hwabstract._fastpath: the steady state of dispatch.launch, compiled.
 *
 * dispatch.py's launch() is the definition of a launch. This module repeats only its fast
 * path: a call whose signature already has a validated plan with a bound launch
 * (Backend.bind_launch), on tensors of one device, in the thread's current stream, with no
 * out= and no cross-stream write to order. Anything else -- a first call, a string kernel
 * name, out= or stream=, a scalar of an unusual type, a tensor last written on another
 * stream, a released buffer, an unhashable attribute -- is handed, untouched, to the Python
 * launch(), which validates, explains errors and takes every other path. Where this module
 * is not built (no C compiler at install time) or HWABSTRACT_PURE_PYTHON is set, the Python
 * launch() is used for every call; the two produce the same tensors (tests/test_fastpath.py).
 *
 * docs/architecture.md, "The steady-state launch is compiled, optionally", says why.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_slots.h"

/* What configure() was given. */
static PyObject *fallback;          /* dispatch._launch_py */
static PyTypeObject *tensor_type;   /* hwabstract.Tensor */
static PyTypeObject *storage_type;  /* hwabstract.tensor.Storage */
static PyObject *scalar_tensor;     /* dispatch.scalar_tensor */
static PyObject *scalar_types;      /* dispatch._SCALARS */
static PyObject *stream_tls;        /* stream._tls: its "stacks" are the `with stream:` stacks */
static PyObject *stream_entered;    /* stream._entered: not empty while a `with stream:` is open */
static PyObject *specs;             /* kernels.spec._SPECS: the specs by name */
static Py_ssize_t plan_len = -1;    /* len(_Plan._fields) */
static Py_ssize_t i_scalar_dtypes, i_out_dtype, i_result_shape, i_result_strides,
    i_result_nbytes, i_bound;

/* attribute names, interned once */
static PyObject *s_storage, *s_dtype, *s_shape, *s_strides, *s_offset, *s_op, *s_device,
    *s_buffer, *s_last_stream, *s_written, *s_synced, *s_nbytes, *s_writes, *s_handle,
    *s_default_stream, *s_plans, *s_impl, *s_index, *s_allocate, *s_free, *s_stacks, *s_out,
    *s_stream, *s_scalars, *s_last_scalar, *s_move_to_end, *s_name, *s_finished,
    *s_stream_synchronize, *s_memos;
static PyObject *empty_tuple, *zero, *one;
static PyTypeObject *device_type, *stream_type; /* hwabstract.Device, hwabstract.Stream */
static PyObject *is_finalizing;                 /* sys.is_finalizing */

/* The __slots__ read and written at their offsets (_slots.h), found by configure(); an
 * object of another type than the one configured goes through attribute lookup. */
static Py_ssize_t o_t_storage = -1, o_t_dtype = -1, o_t_shape = -1, o_t_strides = -1,
                  o_t_offset = -1, o_t_op = -1;
static Py_ssize_t o_s_buffer = -1, o_s_device = -1, o_s_nbytes = -1, o_s_last_stream = -1,
                  o_s_written = -1, o_s_synced = -1;
static Py_ssize_t o_d_impl = -1, o_d_index = -1, o_d_plans = -1, o_d_default_stream = -1,
                  o_d_memos = -1;
static Py_ssize_t o_st_handle = -1, o_st_writes = -1, o_st_scalars = -1,
                  o_st_last_scalar = -1, o_st_device = -1, o_st_finished = -1;

#define TENSOR_GET(obj, field) slot_get(obj, tensor_type, o_t_##field, s_##field)
#define STORAGE_GET(obj, field) slot_get(obj, storage_type, o_s_##field, s_##field)
#define DEVICE_GET(obj, field) slot_get(obj, device_type, o_d_##field, s_##field)
#define STREAM_GET(obj, field) slot_get(obj, stream_type, o_st_##field, s_##field)

/* Hand the call to the Python launch() as it came. */
static PyObject *
take_python_path(PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(fallback, args, nargsf, kwnames);
}

/* The stream launch() would use on `device`: the innermost `with stream:` of this thread
 * for it, else the device's default stream. New reference; NULL without an exception when
 * only the Python path can tell (no default stream created yet, an unexpected stack). */
static PyObject *
current_stream(PyObject *device)
{
    if (PyList_GET_SIZE(stream_entered) == 0) /* no `with stream:` open in any thread */
        goto default_stream;
    PyObject *stacks = PyObject_GetAttr(stream_tls, s_stacks);
    if (stacks == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear(); /* no `with stream:` in this thread yet */
    } else {
        if (!PyDict_CheckExact(stacks)) {
            Py_DECREF(stacks);
            return NULL;
        }
        PyObject *stack = PyDict_GetItemWithError(stacks, device); /* borrowed */
        if (stack == NULL && PyErr_Occurred()) {
            Py_DECREF(stacks);
            return NULL;
        }
        if (stack != NULL) {
            if (!PyList_CheckExact(stack)) {
                Py_DECREF(stacks);
                return NULL;
            }
            Py_ssize_t n = PyList_GET_SIZE(stack);
            if (n > 0) {
                PyObject *top = PyList_GET_ITEM(stack, n - 1);
                Py_INCREF(top);
                Py_DECREF(stacks);
                return top;
            }
        }
        Py_DECREF(stacks);
    }
default_stream:;
    PyObject *stream = DEVICE_GET(device, default_stream);
    if (stream == Py_None) {
        Py_DECREF(stream);
        return NULL; /* created on first use, by the Python path */
    }
    return stream;
}

/* Whether `stream` is among the streams `storage.synced` (a tuple of weak references) says
 * were ordered after its last write: 1, 0, or -1 with an exception. */
static int
already_ordered(PyObject *storage, PyObject *stream)
{
    PyObject *synced = STORAGE_GET(storage, synced);
    if (synced == NULL)
        return -1;
    int found = 0;
    if (PyTuple_CheckExact(synced)) {
        Py_ssize_t n = PyTuple_GET_SIZE(synced);
        for (Py_ssize_t i = 0; i < n && !found; i++) {
            PyObject *ref = PyTuple_GET_ITEM(synced, i);
            if (!PyWeakref_CheckRef(ref))
                continue;
            PyObject *target = PyObject_CallNoArgs(ref); /* ref(): its object, or None */
            if (target == NULL) {
                Py_DECREF(synced);
                return -1;
            }
            found = target == stream;
            Py_DECREF(target);
        }
    }
    Py_DECREF(synced);
    return found;
}

/* The stream's cached 0-d tensor of a Python scalar, as dispatch.scalar_tensor finds it
 * (by dispatch.scalar_key's key), marked as just used. New reference;
 * NULL without an exception where only scalar_tensor can tell (not cached yet, no cache yet,
 * a NumPy scalar or another type). A cached key was checked to fit its dtype when its
 * tensor was made. */
static PyObject *
cached_scalar(PyObject *stream, PyObject *value, PyObject *dtype)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type != &PyFloat_Type && type != &PyLong_Type && type != &PyBool_Type
        && type != &PyComplex_Type)
        return NULL;
    /* the stream's last scalar (dispatch.scalar_tensor's memo): the same value object in
     * the same dtype is the same tensor, with no key to build and no LRU order to keep */
    PyObject *memo = STREAM_GET(stream, last_scalar);
    if (memo == NULL)
        return NULL;
    if (PyTuple_CheckExact(memo) && PyTuple_GET_SIZE(memo) == 3
        && PyTuple_GET_ITEM(memo, 0) == dtype && PyTuple_GET_ITEM(memo, 1) == value) {
        PyObject *hit = Py_NewRef(PyTuple_GET_ITEM(memo, 2));
        Py_DECREF(memo);
        return hit;
    }
    Py_DECREF(memo);
    PyObject *cache = STREAM_GET(stream, scalars);
    if (cache == NULL)
        return NULL;
    PyObject *repr = NULL, *key = NULL, *tensor = NULL;
    if (!PyDict_Check(cache)) /* None: no scalar on this stream yet */
        goto done;
    /* dispatch.scalar_key: the value itself, or its repr where == would merge values */
    int by_value = type == &PyLong_Type || type == &PyBool_Type;
    if (type == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(value);
        by_value = d == d && d != 0.0;
    }
    if (!by_value) {
        repr = PyObject_Repr(value);
        if (repr == NULL)
            goto done;
    }
    key = PyTuple_Pack(3, dtype, (PyObject *)type, by_value ? value : repr);
    if (key == NULL)
        goto done;
    tensor = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (tensor == NULL)
        goto done;
    Py_INCREF(tensor);
    PyObject *r = PyObject_CallMethodOneArg(cache, s_move_to_end, key);
    if (r == NULL)
        Py_CLEAR(tensor);
    Py_XDECREF(r);
    if (tensor != NULL) { /* the memo, as scalar_tensor sets it */
        PyObject *last = PyTuple_Pack(3, dtype, value, tensor);
        if (last == NULL || slot_set(stream, stream_type, o_st_last_scalar, s_last_scalar,
                                     last) < 0)
            Py_CLEAR(tensor);
        Py_XDECREF(last);
    }
done:
    Py_DECREF(cache);
    Py_XDECREF(repr);
    Py_XDECREF(key);
    return tensor;
}

/* A field of a new object: its slot's offset, its name and its value. */
typedef struct {
    Py_ssize_t offset;
    PyObject *name, *value;
} Field;

/* Set the fields of a new object of `type`; -1 with an exception. */
static int
set_fields(PyObject *obj, PyTypeObject *type, const Field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (slot_set(obj, type, fields[i].offset, fields[i].name, fields[i].value) < 0)
            return -1;
    }
    return 0;
}

/* Free `buffer` (the launch failed before a Storage owned it), keeping the pending
 * exception; a failure of the free itself is reported as unraisable. */
static void
free_unowned(PyObject *impl, PyObject *buffer)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyObject *call_args[2] = {impl, buffer};
    PyObject *r = PyObject_VectorcallMethod(
        s_free, call_args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(impl);
    else
        Py_DECREF(r);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

/* The launch itself, once the plan, stream and input buffers are known. */
static PyObject *
launch_bound(PyObject *device, PyObject *stream, PyObject *plan, PyObject *buffers)
{
    PyObject *out_dtype = PyTuple_GET_ITEM(plan, i_out_dtype);
    PyObject *nbytes = PyTuple_GET_ITEM(plan, i_result_nbytes);
    PyObject *bound = PyTuple_GET_ITEM(plan, i_bound);
    PyObject *impl = NULL, *index = NULL, *buffer = NULL, *handle = NULL, *outs = NULL;
    PyObject *storage = NULL, *writes = NULL, *written = NULL, *tensor = NULL, *r;

    impl = DEVICE_GET(device, impl);
    if (impl == NULL)
        goto error;
    index = DEVICE_GET(device, index);
    if (index == NULL)
        goto error;
    {
        PyObject *call_args[3] = {impl, index, nbytes};
        buffer = PyObject_VectorcallMethod(
            s_allocate, call_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (buffer == NULL)
        goto error;
    handle = STREAM_GET(stream, handle);
    if (handle == NULL)
        goto unowned;
    outs = PyTuple_Pack(1, buffer);
    if (outs == NULL)
        goto unowned;
    {
        PyObject *call_args[3] = {handle, buffers, outs};
        r = PyObject_Vectorcall(bound, call_args, 3, NULL);
    }
    if (r == NULL)
        goto unowned;
    Py_DECREF(r);

    /* Storage(device, nbytes, buffer), then Storage.mark_written(stream) */
    writes = STREAM_GET(stream, writes);
    if (writes == NULL)
        goto unowned;
    written = PyNumber_Add(writes, one);
    if (written == NULL)
        goto unowned;
    storage = storage_type->tp_alloc(storage_type, 0);
    if (storage == NULL)
        goto unowned;
    {
        /* buffer None first, as Storage.__init__ does: its __del__ reads it */
        const Field fields[] = {
            {o_s_buffer, s_buffer, Py_None},         {o_s_device, s_device, device},
            {o_s_nbytes, s_nbytes, nbytes},          {o_s_last_stream, s_last_stream, stream},
            {o_s_written, s_written, written},       {o_s_synced, s_synced, empty_tuple},
        };
        if (set_fields(storage, storage_type, fields, sizeof fields / sizeof *fields) < 0)
            goto unowned;
    }
    if (slot_set(storage, storage_type, o_s_buffer, s_buffer, buffer) < 0)
        goto unowned;
    Py_CLEAR(buffer); /* the storage owns it now: its __del__ frees it */
    if (slot_set(stream, stream_type, o_st_writes, s_writes, written) < 0)
        goto error;

    /* Tensor._wrap(storage, out_dtype, result_shape, result_strides) */
    tensor = tensor_type->tp_alloc(tensor_type, 0);
    if (tensor == NULL)
        goto error;
    {
        const Field fields[] = {
            {o_t_storage, s_storage, storage},
            {o_t_dtype, s_dtype, out_dtype},
            {o_t_shape, s_shape, PyTuple_GET_ITEM(plan, i_result_shape)},
            {o_t_strides, s_strides, PyTuple_GET_ITEM(plan, i_result_strides)},
            {o_t_offset, s_offset, zero},
            {o_t_op, s_op, Py_None},
        };
        if (set_fields(tensor, tensor_type, fields, sizeof fields / sizeof *fields) < 0)
            goto error;
    }
    Py_DECREF(impl);
    Py_DECREF(index);
    Py_DECREF(handle);
    Py_DECREF(outs);
    Py_DECREF(storage);
    Py_DECREF(writes);
    Py_DECREF(written);
    return tensor;

unowned:
    free_unowned(impl, buffer);
error:
    Py_XDECREF(impl);
    Py_XDECREF(index);
    Py_XDECREF(buffer);
    Py_XDECREF(handle);
    Py_XDECREF(outs);
    Py_XDECREF(storage); /* (frees its buffer, once it holds it) */
    Py_XDECREF(writes);
    Py_XDECREF(written);
    Py_XDECREF(tensor);
    return NULL;
}

/* Whether keyword `name` = `value` is out=None or stream=None, which the compiled launch
 * takes (the keyword names are str: comparing them cannot fail). */
static int
none_out_or_stream(PyObject *name, PyObject *value)
{
    return value == Py_None
           && (name == s_out || name == s_stream || PyUnicode_Compare(name, s_out) == 0
               || PyUnicode_Compare(name, s_stream) == 0);
}

/* The second half of a launch, once the plan of its signature is known: the stream, the
 * operands' buffers (scalars become dispatch's cached 0-d tensors), the launch. NULL with
 * *python set and no exception where only the Python launch() can take the call (a write
 * on another stream to order first, a released buffer, no default stream yet). */
static PyObject *
run_plan(PyObject *device, PyObject *plan, PyObject *operands, int *python)
{
    Py_ssize_t n = PyTuple_GET_SIZE(operands);
    PyObject *stream = NULL, *buffers = NULL, *result = NULL;
    *python = 0;
    stream = current_stream(device);
    if (stream == NULL) {
        *python = !PyErr_Occurred();
        return NULL;
    }
    PyObject *scalar_dtypes = PyTuple_GET_ITEM(plan, i_scalar_dtypes);
    if (!PyTuple_Check(scalar_dtypes) || PyTuple_GET_SIZE(scalar_dtypes) != n)
        goto python_path;
    buffers = PyList_New(0);
    if (buffers == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyTuple_GET_ITEM(operands, i);
        PyObject *scalar_dtype = PyTuple_GET_ITEM(scalar_dtypes, i);
        PyObject *storage;
        if (op == Py_None)
            continue;
        if (scalar_dtype != Py_None) {
            PyObject *scalar = cached_scalar(stream, op, scalar_dtype);
            if (scalar == NULL) {
                if (PyErr_Occurred())
                    goto done;
                PyObject *call_args[4] = {device, op, scalar_dtype, stream};
                scalar = PyObject_Vectorcall(scalar_tensor, call_args, 4, NULL);
                if (scalar == NULL)
                    goto done;
            }
            storage = TENSOR_GET(scalar, storage);
            Py_DECREF(scalar);
            if (storage == NULL)
                goto done;
        } else {
            if (!PyObject_TypeCheck(op, tensor_type))
                goto python_path;
            storage = TENSOR_GET(op, storage);
            if (storage == NULL)
                goto done;
            PyObject *writer = STORAGE_GET(storage, last_stream);
            if (writer == NULL) {
                Py_DECREF(storage);
                goto done;
            }
            int other = writer != Py_None && writer != stream;
            Py_DECREF(writer);
            if (other) {
                /* Storage.order_before: nothing to do if this stream was ordered after
                 * that write already (a weak reference to it in `synced`) */
                int ordered = already_ordered(storage, stream);
                if (ordered <= 0) {
                    Py_DECREF(storage);
                    if (ordered < 0)
                        goto done;
                    goto python_path; /* a write on another stream to order first */
                }
            }
        }
        PyObject *buffer = STORAGE_GET(storage, buffer);
        Py_DECREF(storage);
        if (buffer == NULL)
            goto done;
        if (buffer == Py_None) {
            Py_DECREF(buffer);
            goto python_path; /* released: launch() raises, saying so */
        }
        int failed = PyList_Append(buffers, buffer);
        Py_DECREF(buffer);
        if (failed < 0)
            goto done;
    }
    result = launch_bound(device, stream, plan, buffers);
    goto done;
python_path:
    *python = 1;
done:
    Py_XDECREF(stream);
    Py_XDECREF(buffers);
    return result;
}

/* dispatch.launch's steady state (below); where it finds the signature's plan, a new
 * reference to it and to the device in *found_plan and *found_device (when not NULL). */
static PyObject *
launch_impl(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **found_device,
            PyObject **found_plan)
{
    size_t nargsf = (size_t)nargs;
    if (fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "hwabstract._fastpath.launch() called before configure()");
        return NULL;
    }
    if (nargs < 2 || nargs > 3)
        return take_python_path(args, nargsf, kwnames);
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            /* out= and stream= other than None, or any other keyword: the Python path */
            if (!none_out_or_stream(PyTuple_GET_ITEM(kwnames, k), args[nargs + k]))
                return take_python_path(args, nargsf, kwnames);
        }
    }
    PyObject *spec = args[0], *operands = args[1];
    PyObject *attrs = nargs == 3 ? args[2] : Py_None;
    if (!PyTuple_CheckExact(operands))
        return take_python_path(args, nargsf, kwnames);
    if (PyUnicode_Check(spec)) {
        /* get_spec(name) where the catalogue has it; else get_spec loads it or explains */
        spec = PyUnicode_CheckExact(spec) ? PyDict_GetItemWithError(specs, spec) : NULL;
        if (spec == NULL) {
            if (PyErr_Occurred())
                return NULL;
            return take_python_path(args, nargsf, kwnames);
        }
    }

    PyObject *attr_items = NULL, *signature = NULL, *device = NULL;
    PyObject *key = NULL, *plan = NULL, *result = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(operands);

    if (attrs == Py_None || (PyDict_CheckExact(attrs) && PyDict_GET_SIZE(attrs) == 0)) {
        attr_items = Py_NewRef(empty_tuple);
    } else if (PyDict_CheckExact(attrs)) {
        /* tuple(attrs.items()), in the dict's order */
        attr_items = PyTuple_New(PyDict_GET_SIZE(attrs));
        if (attr_items == NULL)
            return NULL;
        Py_ssize_t pos = 0, i = 0;
        PyObject *k, *v;
        while (PyDict_Next(attrs, &pos, &k, &v)) {
            PyObject *item = PyTuple_Pack(2, k, v);
            if (item == NULL)
                goto error;
            PyTuple_SET_ITEM(attr_items, i++, item);
        }
    } else {
        return take_python_path(args, nargsf, kwnames);
    }

    /* the call's signature, as launch() builds it, and the device */
    signature = PyTuple_New(n);
    if (signature == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyTuple_GET_ITEM(operands, i);
        PyObject *entry;
        if (PyObject_TypeCheck(op, tensor_type)) {
            PyObject *storage = TENSOR_GET(op, storage);
            if (storage == NULL)
                goto error;
            PyObject *op_device = STORAGE_GET(storage, device);
            Py_DECREF(storage);
            if (op_device == NULL)
                goto error;
            if (device == NULL) {
                device = op_device;
            } else {
                int same = op_device == device;
                Py_DECREF(op_device);
                if (!same)
                    goto python_path; /* several devices: launch() explains */
            }
            PyObject *dtype = TENSOR_GET(op, dtype);
            PyObject *shape = dtype ? TENSOR_GET(op, shape) : NULL;
            PyObject *strides = shape ? TENSOR_GET(op, strides) : NULL;
            PyObject *offset = strides ? TENSOR_GET(op, offset) : NULL;
            entry = offset ? PyTuple_Pack(4, dtype, shape, strides, offset) : NULL;
            Py_XDECREF(dtype);
            Py_XDECREF(shape);
            Py_XDECREF(strides);
            Py_XDECREF(offset);
            if (entry == NULL)
                goto error;
        } else {
            if (op != Py_None) {
                int scalar = PyObject_IsInstance(op, scalar_types);
                if (scalar < 0)
                    goto error;
                if (!scalar)
                    goto python_path; /* a foreign object: launch() explains */
            }
            entry = Py_NewRef((PyObject *)Py_TYPE(op));
        }
        PyTuple_SET_ITEM(signature, i, entry);
    }
    if (device == NULL)
        goto python_path; /* no tensor operand */

    /* the validated plan of this signature, with its bound launch */
    PyObject *plans = DEVICE_GET(device, plans);
    if (plans == NULL)
        goto error;
    if (!PyDict_CheckExact(plans)) {
        Py_DECREF(plans);
        goto python_path;
    }
    key = PyTuple_Pack(3, spec, signature, attr_items);
    if (key == NULL) {
        Py_DECREF(plans);
        goto error;
    }
    plan = PyDict_GetItemWithError(plans, key); /* borrowed */
    if (plan == NULL) {
        Py_DECREF(plans);
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear(); /* not validated yet, or an unhashable attribute */
            goto python_path;
        }
        goto error;
    }
    Py_INCREF(plan);
    Py_DECREF(plans);
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != plan_len
        || PyTuple_GET_ITEM(plan, i_bound) == Py_None)
        goto python_path; /* no bound launch (yet): the general path */
    if (found_plan != NULL) {
        *found_plan = Py_NewRef(plan);
        *found_device = Py_NewRef(device);
    }
    int python;
    result = run_plan(device, plan, operands, &python);
    if (python)
        goto python_path;
    goto done;

python_path:
    result = take_python_path(args, nargsf, kwnames);
    goto done;
error:
    result = NULL;
done:
    Py_XDECREF(attr_items);
    Py_XDECREF(signature);
    Py_XDECREF(device);
    Py_XDECREF(key);
    Py_XDECREF(plan);
    return result;
}

/* launch(spec, operands, attrs=None, *, out=None, stream=None): dispatch.launch's
 * signature and result. */
static PyObject *
fast_launch(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return launch_impl(args, nargs, kwnames, NULL, NULL);
}

/* A kernel function of the namespace (hw.add, hw.sum, hw.softmax, ...) compiled. Its
 * Python definition (`python`) takes `nin` positional-only operands and, besides out= and
 * stream=, keyword-only arguments that are the kernel's attributes (`names`, with their
 * `defaults`), in the order of the attributes dict it passes to launch(); its first
 * `tensors` operands must be Tensors. A call with exactly `nin` operands (the first
 * `tensors` of them Tensors), attribute keywords among `names`, and out= and stream= at
 * most as None, is launch(spec, operands, attributes) without a Python frame of its own;
 * any other call goes to `python`, which raises what it raises. `python` is also its
 * __wrapped__, so that inspect.signature and the documentation read its signature. Right
 * after a wait, when the caches are cold, the frame of a one-line Python wrapper costs
 * 1-2 us (docs/architecture.md, "Kernel functions and Stream.synchronize are compiled
 * too"). Its __name__, __qualname__, __doc__ and __module__ live in its __dict__, set by
 * operations.py. */
#define KF_MAX_ATTRIBUTES 8

typedef struct {
    PyObject_HEAD
    PyObject *spec;
    PyObject *python;
    PyObject *names;    /* tuple of interned str */
    PyObject *defaults; /* tuple, as long as names */
    PyObject *dict;
    Py_ssize_t nin, tensors;
    vectorcallfunc vectorcall;
} KernelFunction;

/* The memo's layout: (plan, the attribute values..., then per operand its dtype, shape,
 * strides and offset if a Tensor, else its type and three Nones). Entry `k` (0-3) of a
 * tensor operand: new reference, or NULL with an exception. */
static PyObject *
kf_layout_entry(PyObject *tensor, Py_ssize_t k)
{
    switch (k) {
    case 0:
        return TENSOR_GET(tensor, dtype);
    case 1:
        return TENSOR_GET(tensor, shape);
    case 2:
        return TENSOR_GET(tensor, strides);
    default:
        return TENSOR_GET(tensor, offset);
    }
}

/* 1 with new references in *device and *plan if `self`'s memo on the first tensor operand's
 * device matches this call (every tensor on that device), 0 if not, -1 with an exception. */
static int
kf_memo(KernelFunction *self, PyObject *const *args, Py_ssize_t nargs, PyObject **values,
        PyObject **device, PyObject **plan)
{
    Py_ssize_t nattrs = PyTuple_GET_SIZE(self->names);
    PyObject *dev = NULL, *memos = NULL, *memo = NULL;
    int hit = 0;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyObject_TypeCheck(args[i], tensor_type))
            continue;
        PyObject *storage = TENSOR_GET(args[i], storage);
        PyObject *d = storage ? STORAGE_GET(storage, device) : NULL;
        Py_XDECREF(storage);
        if (d == NULL)
            goto error;
        if (dev == NULL)
            dev = d;
        else {
            int same = d == dev;
            Py_DECREF(d);
            if (!same)
                goto done; /* several devices: launch() explains */
        }
    }
    if (dev == NULL)
        goto done;
    memos = DEVICE_GET(dev, memos);
    if (memos == NULL)
        goto error;
    if (!PyDict_CheckExact(memos))
        goto done;
    memo = PyDict_GetItemWithError(memos, (PyObject *)self);
    if (memo == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto done;
    }
    Py_INCREF(memo); /* (held: reading a subclass's attributes below may run Python code) */
    if (!PyTuple_CheckExact(memo) || PyTuple_GET_SIZE(memo) != 1 + nattrs + 4 * nargs)
        goto done;
    PyObject *found = PyTuple_GET_ITEM(memo, 0);
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != plan_len
        || PyTuple_GET_ITEM(found, i_bound) == Py_None)
        goto done; /* (not a memo this module stored) */
    for (Py_ssize_t i = 0; i < nattrs; i++)
        if (PyTuple_GET_ITEM(memo, 1 + i) != values[i])
            goto done;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *const *remembered = &PyTuple_GET_ITEM(memo, 1 + nattrs + 4 * i);
        if (!PyObject_TypeCheck(args[i], tensor_type)) { /* (its type; the Nones need no check) */
            if ((PyObject *)Py_TYPE(args[i]) != remembered[0])
                goto done;
            continue;
        }
        for (Py_ssize_t k = 0; k < 4; k++) {
            PyObject *entry = kf_layout_entry(args[i], k);
            if (entry == NULL)
                goto error;
            int same = entry == remembered[k];
            Py_DECREF(entry);
            if (!same)
                goto done;
        }
    }
    *plan = Py_NewRef(found);
    *device = Py_NewRef(dev);
    hit = 1;
done:
    Py_XDECREF(dev);
    Py_XDECREF(memos);
    Py_XDECREF(memo);
    return hit;
error:
    hit = -1;
    goto done;
}

/* Remember this call's plan on `device` (where launch() found it): 0, or -1 with an
 * exception. */
static int
kf_remember(KernelFunction *self, PyObject *const *args, Py_ssize_t nargs, PyObject **values,
            PyObject *device, PyObject *plan)
{
    Py_ssize_t nattrs = PyTuple_GET_SIZE(self->names);
    PyObject *memo = PyTuple_New(1 + nattrs + 4 * nargs);
    if (memo == NULL)
        return -1;
    PyTuple_SET_ITEM(memo, 0, Py_NewRef(plan));
    for (Py_ssize_t i = 0; i < nattrs; i++)
        PyTuple_SET_ITEM(memo, 1 + i, Py_NewRef(values[i]));
    for (Py_ssize_t i = 0; i < nargs; i++) {
        int tensor = PyObject_TypeCheck(args[i], tensor_type);
        for (Py_ssize_t k = 0; k < 4; k++) {
            PyObject *entry = tensor ? kf_layout_entry(args[i], k)
                                     : Py_NewRef(k == 0 ? (PyObject *)Py_TYPE(args[i]) : Py_None);
            if (entry == NULL) {
                Py_DECREF(memo);
                return -1;
            }
            PyTuple_SET_ITEM(memo, 1 + nattrs + 4 * i + k, entry);
        }
    }
    PyObject *memos = DEVICE_GET(device, memos);
    int status = memos == NULL ? -1 : 0;
    if (memos != NULL && PyDict_CheckExact(memos))
        status = PyDict_SetItem(memos, (PyObject *)self, memo);
    Py_XDECREF(memos);
    Py_DECREF(memo);
    return status;
}

static PyObject *
kf_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    KernelFunction *self = (KernelFunction *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t nattrs = PyTuple_GET_SIZE(self->names);
    PyObject *values[KF_MAX_ATTRIBUTES]; /* borrowed */
    if (nargs != self->nin || fallback == NULL)
        goto python;
    for (Py_ssize_t i = 0; i < self->tensors; i++)
        if (!PyObject_TypeCheck(args[i], tensor_type))
            goto python;
    for (Py_ssize_t i = 0; i < nattrs; i++)
        values[i] = PyTuple_GET_ITEM(self->defaults, i);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k), *value = args[nargs + k];
        Py_ssize_t i = 0;
        while (i < nattrs && PyTuple_GET_ITEM(self->names, i) != name)
            i++;
        for (Py_ssize_t j = 0; i == nattrs && j < nattrs; j++) /* (a name not interned) */
            if (PyUnicode_Compare(name, PyTuple_GET_ITEM(self->names, j)) == 0)
                i = j;
        if (i < nattrs) {
            values[i] = value;
            continue;
        }
        if (PyErr_Occurred())
            return NULL;
        if (!none_out_or_stream(name, value))
            goto python; /* out=, stream= or a keyword the Python definition explains */
    }
    PyObject *operands = PyTuple_New(nargs);
    if (operands == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(operands, i, Py_NewRef(args[i]));
    PyObject *result = NULL, *attributes = NULL, *device = NULL, *plan = NULL;
    /* this function's memo of its last call on the first tensor's device: the same
     * signature and attribute values (the same objects) mean the same plan, found without
     * building the signature or looking it up */
    int python = 0, hit = kf_memo(self, args, nargs, values, &device, &plan);
    if (hit < 0)
        goto done;
    if (hit) {
        result = run_plan(device, plan, operands, &python);
        if (!python)
            goto done;
    }
    attributes = Py_None;
    if (nattrs) {
        attributes = PyDict_New();
        for (Py_ssize_t i = 0; attributes != NULL && i < nattrs; i++)
            if (PyDict_SetItem(attributes, PyTuple_GET_ITEM(self->names, i), values[i]) < 0)
                Py_CLEAR(attributes);
        if (attributes == NULL)
            goto done;
    }
    {
        PyObject *stack[3] = {self->spec, operands, attributes};
        if (python) { /* the memo's plan, but a call only launch() can take */
            result = PyObject_Vectorcall(fallback, stack, 3, NULL);
            goto done;
        }
        Py_CLEAR(device);
        Py_CLEAR(plan);
        result = launch_impl(stack, 3, NULL, &device, &plan);
        /* (the memo is a cache: where it cannot be stored, say so, and keep the result) */
        if (result != NULL && plan != NULL
            && kf_remember(self, args, nargs, values, device, plan) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
    }
done:
    Py_DECREF(operands);
    if (attributes != Py_None)
        Py_XDECREF(attributes);
    Py_XDECREF(device);
    Py_XDECREF(plan);
    return result;
python:
    return PyObject_Vectorcall(self->python, args, nargsf, kwnames);
}

static PyObject *
kf_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"spec", "python", "nin", "attributes", "tensors", NULL};
    PyObject *spec, *python, *attributes = NULL;
    Py_ssize_t nin, tensors = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOn|O!n:KernelFunction", names, &spec,
                                     &python, &nin, &PyDict_Type, &attributes, &tensors))
        return NULL;
    Py_ssize_t nattrs = attributes == NULL ? 0 : PyDict_GET_SIZE(attributes);
    if (nin < 1 || nin > 16 || tensors < 0 || tensors > nin || nattrs > KF_MAX_ATTRIBUTES
        || !PyCallable_Check(python)) {
        PyErr_Format(PyExc_ValueError,
                     "KernelFunction(spec, python, nin, attributes={}, tensors=0): python is "
                     "callable, 1 <= nin <= 16, 0 <= tensors <= nin, at most %d attributes",
                     KF_MAX_ATTRIBUTES);
        return NULL;
    }
    KernelFunction *self = (KernelFunction *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->spec = Py_NewRef(spec);
    self->python = Py_NewRef(python);
    self->nin = nin;
    self->tensors = tensors;
    self->names = PyTuple_New(nattrs);
    self->defaults = PyTuple_New(nattrs);
    self->dict = PyDict_New();
    if (self->names == NULL || self->defaults == NULL || self->dict == NULL
        || PyDict_SetItemString(self->dict, "__wrapped__", python) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *name, *value;
    while (attributes != NULL && PyDict_Next(attributes, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name)) {
            PyErr_SetString(PyExc_TypeError, "KernelFunction: attribute names are str");
            Py_DECREF(self);
            return NULL;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(self->names, i, name);
        PyTuple_SET_ITEM(self->defaults, i++, Py_NewRef(value));
    }
    self->vectorcall = kf_vectorcall;
    return (PyObject *)self;
}

static int
kf_traverse(PyObject *op, visitproc visit, void *arg)
{
    KernelFunction *self = (KernelFunction *)op;
    Py_VISIT(self->spec);
    Py_VISIT(self->python);
    Py_VISIT(self->names);
    Py_VISIT(self->defaults);
    Py_VISIT(self->dict);
    return 0;
}

static int
kf_clear(PyObject *op)
{
    KernelFunction *self = (KernelFunction *)op;
    Py_CLEAR(self->spec);
    Py_CLEAR(self->python);
    Py_CLEAR(self->names);
    Py_CLEAR(self->defaults);
    Py_CLEAR(self->dict);
    return 0;
}

static void
kf_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    kf_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *
kf_name(PyObject *op)
{
    PyObject *name = PyDict_GetItemWithError(((KernelFunction *)op)->dict, s_name); /* borrowed */
    if (name == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_AttributeError, "the kernel function has no __name__ yet");
    return name;
}

static PyObject *
kf_repr(PyObject *op)
{
    PyObject *name = kf_name(op);
    return name == NULL ? NULL : PyUnicode_FromFormat("<kernel function %U (compiled)>", name);
}

/* pickled (and copied) by name, as functions are: the object of that name in its module */
static PyObject *
kf_reduce(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return Py_XNewRef(kf_name(op));
}

static PyObject *
kf_get(PyObject *op, PyObject *obj, PyObject *Py_UNUSED(type))
{
    /* a method when set on a class, as a Python function would be */
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(op);
    return PyMethod_New(op, obj);
}

static PyMethodDef kf_methods[] = {
    {"__reduce__", kf_reduce, METH_NOARGS, "Pickled by name, like a function."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef kf_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyTypeObject KernelFunctionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwabstract._fastpath.KernelFunction",
    .tp_doc = PyDoc_STR("KernelFunction(spec, python, nin, attributes={}, tensors=0): a "
                        "kernel function, compiled; every call it cannot take goes to "
                        "`python`."),
    .tp_basicsize = sizeof(KernelFunction),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = kf_new,
    .tp_dealloc = kf_dealloc,
    .tp_traverse = kf_traverse,
    .tp_clear = kf_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(KernelFunction, vectorcall),
    .tp_dictoffset = offsetof(KernelFunction, dict),
    .tp_repr = kf_repr,
    .tp_descr_get = kf_get,
    .tp_methods = kf_methods,
    .tp_getset = kf_getset,
};

/* Storage._release (its __del__), compiled: free the buffer once, unless the interpreter
 * is shutting down. Installed as Storage.__del__ by dispatch._configure_compiled. */
static PyObject *
storage_release(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *buffer = slot_get(self, storage_type, o_s_buffer, s_buffer);
    if (buffer == NULL)
        return NULL;
    if (buffer == Py_None) {
        Py_DECREF(buffer);
        Py_RETURN_NONE;
    }
    PyObject *device = NULL, *impl = NULL, *finalizing = NULL, *r = NULL;
    if (slot_set(self, storage_type, o_s_buffer, s_buffer, Py_None) < 0)
        goto done;
    finalizing = PyObject_CallNoArgs(is_finalizing);
    if (finalizing == NULL)
        goto done;
    if (finalizing != Py_False) {
        r = Py_NewRef(Py_None); /* the process's memory goes away anyway */
        goto done;
    }
    device = STORAGE_GET(self, device);
    impl = device ? DEVICE_GET(device, impl) : NULL;
    if (impl != NULL) {
        PyObject *call_args[2] = {impl, buffer};
        r = PyObject_VectorcallMethod(s_free, call_args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
    }
done:
    Py_DECREF(buffer);
    Py_XDECREF(device);
    Py_XDECREF(impl);
    Py_XDECREF(finalizing);
    return r;
}

static PyMethodDef storage_release_def = {
    "__del__", storage_release, METH_NOARGS,
    "Storage._release, compiled: free the buffer once (not at interpreter shutdown)."};

static Py_ssize_t
field_index(PyObject *fields, const char *name)
{
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        if (PyUnicode_Check(f) && PyUnicode_CompareWithASCIIString(f, name) == 0)
            return i;
    }
    PyErr_Format(PyExc_ValueError, "the plan has no field %s", name);
    return -1;
}

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fallback",   "tensor_type", "storage_type", "device_type",
                            "stream_type", "scalar_tensor", "scalar_types", "stream_tls",
                            "stream_entered", "plan_fields", "specs", NULL};
    PyObject *fb, *tt, *st, *dt, *strt, *sc, *stypes, *tls, *entered, *fields, *sp;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OO!O!O!O!OO!OO!O!O!:configure", names,
                                     &fb, &PyType_Type, &tt, &PyType_Type, &st, &PyType_Type,
                                     &dt, &PyType_Type, &strt, &sc, &PyTuple_Type, &stypes, &tls,
                                     &PyList_Type, &entered, &PyTuple_Type, &fields,
                                     &PyDict_Type, &sp))
        return NULL;
    if (!PyCallable_Check(fb) || !PyCallable_Check(sc)) {
        PyErr_SetString(PyExc_TypeError, "fallback and scalar_tensor must be callable");
        return NULL;
    }
    Py_ssize_t idx[6];
    const char *wanted[6] = {"scalar_dtypes", "out_dtype",     "result_shape",
                             "result_strides", "result_nbytes", "bound"};
    for (int i = 0; i < 6; i++) {
        idx[i] = field_index(fields, wanted[i]);
        if (idx[i] < 0)
            return NULL;
    }
    if (is_finalizing == NULL) { /* (Storage's compiled finalizer asks it) */
        PyObject *sys = PyImport_ImportModule("sys");
        if (sys == NULL)
            return NULL;
        is_finalizing = PyObject_GetAttrString(sys, "is_finalizing");
        Py_DECREF(sys);
        if (is_finalizing == NULL)
            return NULL;
    }
    /* the slots read and written at their offsets: every one must be a slot */
    const SlotSpec slots[] = {
        {&o_t_storage, tt, s_storage},   {&o_t_dtype, tt, s_dtype},
        {&o_t_shape, tt, s_shape},       {&o_t_strides, tt, s_strides},
        {&o_t_offset, tt, s_offset},     {&o_t_op, tt, s_op},
        {&o_s_buffer, st, s_buffer},     {&o_s_device, st, s_device},
        {&o_s_nbytes, st, s_nbytes},     {&o_s_last_stream, st, s_last_stream},
        {&o_s_written, st, s_written},   {&o_s_synced, st, s_synced},
        {&o_d_impl, dt, s_impl},         {&o_d_index, dt, s_index},
        {&o_d_plans, dt, s_plans},       {&o_d_default_stream, dt, s_default_stream},
        {&o_d_memos, dt, s_memos},
        {&o_st_handle, strt, s_handle},  {&o_st_writes, strt, s_writes},
        {&o_st_scalars, strt, s_scalars}, {&o_st_last_scalar, strt, s_last_scalar},
        {&o_st_device, strt, s_device},  {&o_st_finished, strt, s_finished},
    };
    if (resolve_slots(slots, sizeof slots / sizeof *slots) < 0) /* (the last that can fail) */
        return NULL;
    Py_XSETREF(device_type, (PyTypeObject *)Py_NewRef(dt));
    Py_XSETREF(stream_type, (PyTypeObject *)Py_NewRef(strt));
    Py_XSETREF(fallback, Py_NewRef(fb));
    Py_XSETREF(tensor_type, (PyTypeObject *)Py_NewRef(tt));
    Py_XSETREF(storage_type, (PyTypeObject *)Py_NewRef(st));
    Py_XSETREF(scalar_tensor, Py_NewRef(sc));
    Py_XSETREF(scalar_types, Py_NewRef(stypes));
    Py_XSETREF(stream_tls, Py_NewRef(tls));
    Py_XSETREF(stream_entered, Py_NewRef(entered));
    Py_XSETREF(specs, Py_NewRef(sp));
    plan_len = PyTuple_GET_SIZE(fields);
    i_scalar_dtypes = idx[0];
    i_out_dtype = idx[1];
    i_result_shape = idx[2];
    i_result_strides = idx[3];
    i_result_nbytes = idx[4];
    i_bound = idx[5];
    Py_RETURN_NONE;
}

PyDoc_STRVAR(launch_doc,
"launch(spec, operands, attrs=None, *, out=None, stream=None)\n--\n\n"
"Validate a call of ``spec`` and queue it. Returns the output tensor (or ``out``).\n\n"
"The compiled steady state of :func:`hwabstract.dispatch.launch` (see its Python\n"
"definition, ``_launch_py``): calls it cannot take go to the Python function unchanged.");

PyDoc_STRVAR(configure_doc,
"configure(*, fallback, tensor_type, storage_type, scalar_tensor, scalar_types,\n"
"          stream_tls, stream_entered, plan_fields, specs)\n--\n\n"
"Called once by hwabstract.dispatch: the objects the compiled launch works with.");

/* storage_finalizer(): Storage._release compiled, as a method of the configured Storage
 * type (to be its __del__) */
static PyObject *
storage_finalizer(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    if (storage_type == NULL || is_finalizing == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "storage_finalizer() before configure()");
        return NULL;
    }
    return PyDescr_NewMethod(storage_type, &storage_release_def);
}

/* Stream.synchronize compiled, as a method of the configured Stream type; a call with a
 * timeout (or any argument) goes to the Python definition it was made from. */
static PyObject *sync_python; /* Stream.synchronize as written in stream.py */

static PyObject *
stream_synchronize(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 0 || kwnames != NULL) {
        Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        PyObject **stack = PyMem_New(PyObject *, 1 + nargs + nkw);
        if (stack == NULL)
            return PyErr_NoMemory();
        stack[0] = self;
        for (Py_ssize_t i = 0; i < nargs + nkw; i++)
            stack[1 + i] = args[i];
        PyObject *r = PyObject_Vectorcall(sync_python, stack, 1 + nargs, kwnames);
        PyMem_Free(stack);
        return r;
    }
    /* impl.stream_synchronize(self._handle); then self._finished = max(_finished, writes),
     * `writes` read before the wait, as the Python definition does */
    PyObject *device = NULL, *impl = NULL, *handle = NULL, *writes = NULL, *finished = NULL,
             *r = NULL;
    device = STREAM_GET(self, device);
    impl = device ? DEVICE_GET(device, impl) : NULL;
    handle = impl ? STREAM_GET(self, handle) : NULL;
    writes = handle ? STREAM_GET(self, writes) : NULL;
    if (writes == NULL)
        goto done;
    {
        PyObject *call_args[2] = {impl, handle};
        r = PyObject_VectorcallMethod(s_stream_synchronize, call_args,
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    r = NULL;
    finished = STREAM_GET(self, finished);
    if (finished == NULL)
        goto done;
    int later = PyObject_RichCompareBool(writes, finished, Py_GT);
    if (later < 0
        || (later && slot_set(self, stream_type, o_st_finished, s_finished, writes) < 0))
        goto done;
    r = Py_NewRef(Py_None);
done:
    Py_XDECREF(device);
    Py_XDECREF(impl);
    Py_XDECREF(handle);
    Py_XDECREF(writes);
    Py_XDECREF(finished);
    return r;
}

static PyMethodDef stream_synchronize_def = {
    "synchronize", (PyCFunction)(void (*)(void))stream_synchronize,
    METH_FASTCALL | METH_KEYWORDS,
    "synchronize($self, /, timeout=None)\n--\n\n"
    "Block until all work queued on this stream has finished; with ``timeout``\n"
    "(seconds), raise :class:`~hwabstract.errors.WaitTimeoutError` if it has not by\n"
    "then (the work stays queued)."};

/* stream_synchronizer(python): Stream.synchronize compiled, as a method of the configured
 * Stream type (to replace it); `python` is its Python definition, which takes every call
 * with arguments */
static PyObject *
stream_synchronizer(PyObject *Py_UNUSED(module), PyObject *python)
{
    if (stream_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "stream_synchronizer() before configure()");
        return NULL;
    }
    if (!PyCallable_Check(python)) {
        PyErr_SetString(PyExc_TypeError, "stream_synchronizer() takes Stream.synchronize");
        return NULL;
    }
    Py_XSETREF(sync_python, Py_NewRef(python));
    return PyDescr_NewMethod(stream_type, &stream_synchronize_def);
}

static PyMethodDef methods[] = {
    {"stream_synchronizer", stream_synchronizer, METH_O,
     "stream_synchronizer(python): Stream.synchronize, compiled; `python` takes calls with "
     "a timeout."},
    {"storage_finalizer", storage_finalizer, METH_NOARGS,
     "storage_finalizer(): Storage._release, compiled, for Storage.__del__."},
    {"launch", (PyCFunction)(void (*)(void))fast_launch, METH_FASTCALL | METH_KEYWORDS,
     launch_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "hwabstract._fastpath",
    "The steady state of hwabstract.dispatch.launch, compiled (optional; see "
    "docs/architecture.md).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    INTERN(s_storage, "_storage");
    INTERN(s_dtype, "_dtype");
    INTERN(s_shape, "_shape");
    INTERN(s_strides, "_strides");
    INTERN(s_offset, "_offset");
    INTERN(s_op, "_op");
    INTERN(s_device, "device");
    INTERN(s_buffer, "buffer");
    INTERN(s_last_stream, "last_stream");
    INTERN(s_written, "written");
    INTERN(s_synced, "synced");
    INTERN(s_nbytes, "nbytes");
    INTERN(s_writes, "_writes");
    INTERN(s_handle, "_handle");
    INTERN(s_default_stream, "_default_stream");
    INTERN(s_plans, "_plans");
    INTERN(s_impl, "_impl");
    INTERN(s_index, "index");
    INTERN(s_allocate, "allocate");
    INTERN(s_free, "free");
    INTERN(s_stacks, "stacks");
    INTERN(s_out, "out");
    INTERN(s_stream, "stream");
    INTERN(s_scalars, "_scalars");
    INTERN(s_last_scalar, "_last_scalar");
    INTERN(s_move_to_end, "move_to_end");
    INTERN(s_name, "__name__");
    INTERN(s_finished, "_finished");
    INTERN(s_memos, "_memos");
    INTERN(s_stream_synchronize, "stream_synchronize");
    if ((empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    if ((zero = PyLong_FromLong(0)) == NULL || (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    if (PyType_Ready(&KernelFunctionType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "KernelFunction", (PyObject *)&KernelFunctionType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
