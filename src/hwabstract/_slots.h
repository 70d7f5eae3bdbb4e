/* What the compiled modules (_fastpath.c, backends/_pjrtfast.c) share: reading and writing
 * a Python class's __slots__ at their offsets, and interning their attribute names.
 *
 * A class with __slots__ keeps each slot at a fixed offset in its instances, which its
 * member descriptor records. Reading it there touches the object and nothing else, where
 * PyObject_GetAttr also walks the type's attribute cache and the descriptor: the fewer
 * objects a launch touches, the less it pays right after a wait, when the caches are cold
 * (docs/performance.md, "Where the added time goes"). Offsets are taken only from a
 * writable object slot of the class itself (checked when a module is configured), and used
 * only on objects of exactly that class; anything else goes through the attribute
 * protocol, as Python code would. */
#ifndef HWABSTRACT_SLOTS_H
#define HWABSTRACT_SLOTS_H

#include <Python.h>
#include <structmember.h>

/* The offset of `type`'s __slots__ member `name` (a writable object slot); -1 with an
 * exception if it is not one. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *descr = PyDict_GetItemWithError(type->tp_dict, name); /* borrowed */
    if (descr == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s has no slot %R", type->tp_name, name);
        return -1;
    }
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a __slots__ member", type->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a writable object slot", type->tp_name,
                     name);
        return -1;
    }
    return member->offset;
}

/* The slots a module reads and writes: where each offset goes, the class, the slot's name. */
typedef struct {
    Py_ssize_t *offset;
    PyObject *type, *name;
} SlotSpec;

/* Find the offset of every slot in `specs` and store them all, or none: 0, or -1 with the
 * exception slot_offset raised. */
static int
resolve_slots(const SlotSpec *specs, size_t n)
{
    Py_ssize_t *found = PyMem_New(Py_ssize_t, n);
    if (found == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        found[i] = slot_offset((PyTypeObject *)specs[i].type, specs[i].name);
        if (found[i] < 0) {
            PyMem_Free(found);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++)
        *specs[i].offset = found[i];
    PyMem_Free(found);
    return 0;
}

/* The slot at `offset` of `obj`, an object of exactly the class it was found in: borrowed;
 * NULL with the AttributeError Python raises if the slot is unset. */
static inline PyObject *
slot_peek(PyObject *obj, Py_ssize_t offset, PyObject *name)
{
    PyObject *value = *(PyObject **)((char *)obj + offset);
    if (value == NULL) {
        PyObject *found = PyObject_GetAttr(obj, name); /* raises that AttributeError */
        if (found != NULL) {
            Py_DECREF(found);
            PyErr_Format(PyExc_AttributeError, "%U", name);
        }
    }
    return value;
}

/* The slot at `offset` of `obj` (likewise) = value; the old value is released last (it may
 * run Python code). */
static inline void
slot_poke(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject **field = (PyObject **)((char *)obj + offset);
    PyObject *old = *field;
    *field = Py_NewRef(value);
    Py_XDECREF(old);
}

/* obj.<name>: at `offset` when obj is exactly `type`, else by attribute lookup. New
 * reference, or NULL with the exception Python would raise (AttributeError if unset). */
static inline PyObject *
slot_get(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *name)
{
    if (Py_TYPE(obj) == type && offset >= 0) {
        PyObject *value = *(PyObject **)((char *)obj + offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name);
}

/* obj.<name> = value, likewise. 0, or -1 with an exception. */
static inline int
slot_set(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *name,
         PyObject *value)
{
    if (Py_TYPE(obj) == type && offset >= 0) {
        slot_poke(obj, offset, value);
        return 0;
    }
    return PyObject_SetAttr(obj, name, value);
}

/* var = the interned string `text`; else return NULL from the module's init function */
#define INTERN(var, text)                                                                  \
    do {                                                                                   \
        if ((var = PyUnicode_InternFromString(text)) == NULL)                              \
            return NULL;                                                                   \
    } while (0)

#endif
