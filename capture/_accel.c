/* The recorder's per-call bookkeeping in C: the same algorithm as capture/recorder.py's pure-Python
 * path (Recorder.__torch_dispatch__, _named_args and _encode_results; TensorTable.tagged, _new_entry,
 * storage_id and metas; ModuleStack.enter and leave around module_call) and capture.capture's
 * _intern_calls and _hashable, on the same Python containers, so either path can fill one table and both give
 * byte-identical traces (tests/capture/test_accel.py). Built by `python -m capture.accel`
 * (scripts/setup.sh); capture/accel.py loads it, or falls back to Python when it is absent or stale.
 *
 * Why C: per aten call the recorder does ~100k instructions of Python bytecode (dict lookups, small
 * lists, attribute reads), run with caches cold after every kernel; here the same work is a few
 * hundred C-API calls. Anything uncommon (floats, strings, symbolic sizes, lists of tensors) is handed
 * back to the Python methods, which stay the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef OPTRACE_ACCEL_SOURCE_SHA
#define OPTRACE_ACCEL_SOURCE_SHA "unknown"
#endif

static PyObject *s_shape, *s_dtype, *s_stride, *s_storage_offset, *s_untyped_storage, *s_symbolic,
    *s_next_sid, *s_new_entry_py, *s_names, *s_defaults, *s_writes, *s_n_returns,
    *s_T, *s_int, *s_list, *s_float, *s_bool, *s_activation, *s_constant, *s_empty, *s_calls, *s_enter, *s_current_scope, *s_spec, *s_with_shadows, *s_run, *s_op, *empty_tuple;
static PyObject *opcall_fields[6], *meta_fields[7], *raw_fields[4];  /* raw_fields: a RawCall's op, args, outputs, scope */  /* capture.schema.OpCall's and TensorMeta's fields, in order */

/* A Recording: the recorder's view of one TensorTable's containers, plus the recorder's int tags and
 * its Python encode for what C leaves to Python. */
typedef struct {
    PyObject_HEAD
    PyObject *table;        /* the TensorTable: _next_sid, and _new_entry_py for symbolic sizes */
    PyObject *seen;         /* dict id -> (weakref, key, tagged) */
    PyObject *touched;      /* set of ids */
    PyObject *kinds;        /* dict id -> (kind, name, tensor) */
    PyObject *rows;         /* list of (key, storage id, kind, name) */
    PyObject *classes;      /* list of class tokens */
    PyObject *class_tokens; /* dict (shape, dtype, stride) -> ("T", n) */
    PyObject *storages;     /* dict id(storage) -> (weakref, storage id) */
    PyObject *tensor_type;  /* torch.Tensor */
    PyObject *ints;         /* IntTags: int -> ["int", v] */
    PyObject *encode;       /* Recorder.encode(v, produced) */
    PyObject *constants;    /* Recorder._constants: dtype, memory format, layout, device -> its tagged value */
    PyObject *constant_types; /* the types whose values are kept there (a tuple) */
    PyObject *none_tag;     /* the tagged None, shared */
    /* dispatch's, set by bind() */
    PyObject *recorder, *specs, *calls, *modules, *raw_call, *guarded;
    int fake;               /* the recorder has a fake mode: outputs come from its _with_shadows */
} Recording;

/* What the recording makes is acyclic: the tagged values, argument and output lists, raw calls, table
 * rows and entries, records and weak references made here hold ints, strings, tags, torch sizes and
 * other such values, never anything that leads back to them. So they leave the cyclic collector's lists
 * as they are made: its first pass after a recording no longer walks every one of them (~20k young
 * objects on swin_t, 1.5 ms), nor does any later pass. Memory is unaffected: they are freed by their
 * reference counts as before. */
static PyObject *acyclic(PyObject *o) {
    if (o != NULL && PyObject_IS_GC(o)) PyObject_GC_UnTrack(o);
    return o;
}

/* A new tagged value [tag, payload], acyclic; steals payload (released on failure too) */
static PyObject *tag_pair(PyObject *tag, PyObject *payload) {
    PyObject *out = acyclic(PyList_New(2));
    if (out == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyList_SET_ITEM(out, 0, Py_NewRef(tag));
    PyList_SET_ITEM(out, 1, payload);
    return out;
}

static int Recording_traverse(Recording *self, visitproc visit, void *arg) {
    Py_VISIT(self->table); Py_VISIT(self->seen); Py_VISIT(self->touched); Py_VISIT(self->kinds);
    Py_VISIT(self->rows); Py_VISIT(self->classes); Py_VISIT(self->class_tokens); Py_VISIT(self->storages);
    Py_VISIT(self->tensor_type); Py_VISIT(self->ints); Py_VISIT(self->encode);
    Py_VISIT(self->constants); Py_VISIT(self->constant_types); Py_VISIT(self->none_tag);
    Py_VISIT(self->recorder); Py_VISIT(self->specs); Py_VISIT(self->calls); Py_VISIT(self->modules);
    Py_VISIT(self->raw_call); Py_VISIT(self->guarded);
    return 0;
}

static int Recording_clear(Recording *self) {
    Py_CLEAR(self->table); Py_CLEAR(self->seen); Py_CLEAR(self->touched); Py_CLEAR(self->kinds);
    Py_CLEAR(self->rows); Py_CLEAR(self->classes); Py_CLEAR(self->class_tokens); Py_CLEAR(self->storages);
    Py_CLEAR(self->tensor_type); Py_CLEAR(self->ints); Py_CLEAR(self->encode);
    Py_CLEAR(self->constants); Py_CLEAR(self->constant_types); Py_CLEAR(self->none_tag);
    Py_CLEAR(self->recorder); Py_CLEAR(self->specs); Py_CLEAR(self->calls); Py_CLEAR(self->modules);
    Py_CLEAR(self->raw_call); Py_CLEAR(self->guarded);
    return 0;
}

static void Recording_dealloc(Recording *self) {
    PyObject_GC_UnTrack(self);
    Recording_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *get_attr_of_type(PyObject *obj, const char *name, PyTypeObject *type) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v != NULL && !PyObject_TypeCheck(v, type)) {
        PyErr_Format(PyExc_TypeError, "Recording: table.%s is a %s, not a %s", name, Py_TYPE(v)->tp_name,
                     type->tp_name);
        Py_CLEAR(v);
    }
    return v;
}

static int Recording_init(Recording *self, PyObject *args, PyObject *kwds) {
    PyObject *table, *tensor_type, *ints, *encode, *constants, *constant_types, *none_tag;
    static char *kwlist[] = {"table", "tensor_type", "ints", "encode", "constants", "constant_types", "none_tag", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO", kwlist, &table, &tensor_type, &ints, &encode, &constants,
                                     &constant_types, &none_tag))
        return -1;
    if (!PyType_Check(tensor_type) || !PyDict_Check(ints) || !PyDict_Check(constants) || !PyTuple_Check(constant_types)) {
        PyErr_SetString(PyExc_TypeError, "Recording(table, tensor_type, ints, encode, constants, constant_types, none_tag): "
                                         "a type, a dict, a callable, a dict and a tuple of types expected");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(constant_types); i++)
        if (!PyType_Check(PyTuple_GET_ITEM(constant_types, i))) {
            PyErr_SetString(PyExc_TypeError, "Recording: constant_types must be a tuple of types");
            return -1;
        }
    Recording_clear(self);
    self->table = Py_NewRef(table);
    self->tensor_type = Py_NewRef(tensor_type);
    self->ints = Py_NewRef(ints);
    self->encode = Py_NewRef(encode);
    self->constants = Py_NewRef(constants);
    self->constant_types = Py_NewRef(constant_types);
    self->none_tag = Py_NewRef(none_tag);
    if (!(self->seen = get_attr_of_type(table, "seen", &PyDict_Type)) ||
        !(self->touched = get_attr_of_type(table, "touched", &PySet_Type)) ||
        !(self->kinds = get_attr_of_type(table, "kinds", &PyDict_Type)) ||
        !(self->rows = get_attr_of_type(table, "_rows", &PyList_Type)) ||
        !(self->classes = get_attr_of_type(table, "classes", &PyList_Type)) ||
        !(self->class_tokens = get_attr_of_type(table, "_class_tokens", &PyDict_Type)) ||
        !(self->storages = get_attr_of_type(table, "_storages", &PyDict_Type)))
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Tensor table */

static PyObject *new_storage_id(Recording *self) {  /* table._next_sid, post-incremented */
    PyObject *sid = PyObject_GetAttr(self->table, s_next_sid);
    if (sid == NULL) return NULL;
    Py_ssize_t n = PyLong_AsSsize_t(sid);
    PyObject *next = (n == -1 && PyErr_Occurred()) ? NULL : PyLong_FromSsize_t(n + 1);
    if (next == NULL || PyObject_SetAttr(self->table, s_next_sid, next) < 0) {
        Py_XDECREF(next); Py_DECREF(sid);
        return NULL;
    }
    Py_DECREF(next);
    return sid;
}

static PyObject *storage_id(Recording *self, PyObject *t) {  /* TensorTable.storage_id */
    PyObject *storage = PyObject_CallMethodNoArgs(t, s_untyped_storage);
    if (storage == NULL) {
        if (PyErr_ExceptionMatches(PyExc_RuntimeError) || PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
            PyErr_Clear();
            return new_storage_id(self);
        }
        return NULL;
    }
    PyObject *key = PyLong_FromVoidPtr(storage), *result = NULL;
    if (key == NULL) goto done;
    PyObject *hit = PyDict_GetItemWithError(self->storages, key);  /* borrowed */
    if (hit == NULL && PyErr_Occurred()) goto done;
    if (hit != NULL && PyTuple_Check(hit) && PyTuple_GET_SIZE(hit) == 2 &&
        PyWeakref_GetObject(PyTuple_GET_ITEM(hit, 0)) == storage) {
        result = Py_NewRef(PyTuple_GET_ITEM(hit, 1));
        goto done;
    }
    PyObject *sid = new_storage_id(self);
    if (sid == NULL) goto done;
    PyObject *ref = acyclic(PyWeakref_NewRef(storage, NULL));
    PyObject *entry = ref ? acyclic(PyTuple_Pack(2, ref, sid)) : NULL;
    Py_XDECREF(ref);
    if (entry == NULL || PyDict_SetItem(self->storages, key, entry) < 0) {
        Py_XDECREF(entry); Py_DECREF(sid);
        goto done;
    }
    Py_DECREF(entry);
    result = sid;
done:
    Py_XDECREF(key);
    Py_DECREF(storage);
    return result;
}

static PyObject *metadata_key(PyObject *t) {  /* (t.shape, t.dtype, t.stride(), t.storage_offset()) */
    PyObject *shape = PyObject_GetAttr(t, s_shape);
    PyObject *dtype = shape ? PyObject_GetAttr(t, s_dtype) : NULL;
    PyObject *stride = dtype ? PyObject_CallMethodNoArgs(t, s_stride) : NULL;
    PyObject *offset = stride ? PyObject_CallMethodNoArgs(t, s_storage_offset) : NULL;
    acyclic(shape); acyclic(stride);
    PyObject *key = offset ? acyclic(PyTuple_Pack(4, shape, dtype, stride, offset)) : NULL;
    Py_XDECREF(shape); Py_XDECREF(dtype); Py_XDECREF(stride); Py_XDECREF(offset);
    return key;
}

static PyObject *new_entry(Recording *self, PyObject *t, PyObject *tid, PyObject *key, int produced) {
    PyObject *symbolic = PyObject_GetAttr(t, s_symbolic);
    if (symbolic == NULL) return NULL;
    int is_symbolic = PyObject_IsTrue(symbolic);
    Py_DECREF(symbolic);
    if (is_symbolic < 0) return NULL;
    if (is_symbolic)  /* SymInts: classed by their values, in Python */
        return PyObject_CallMethodObjArgs(self->table, s_new_entry_py, t, tid, key,
                                          produced ? Py_True : Py_False, NULL);

    PyObject *kind = produced ? s_activation : s_constant, *name = s_empty;
    PyObject *known = PyDict_GetItemWithError(self->kinds, tid);  /* borrowed */
    if (known == NULL && PyErr_Occurred()) return NULL;
    if (known != NULL && PyTuple_Check(known) && PyTuple_GET_SIZE(known) == 3 && PyTuple_GET_ITEM(known, 2) == t) {
        kind = PyTuple_GET_ITEM(known, 0);
        name = PyTuple_GET_ITEM(known, 1);
    }
    Py_INCREF(kind); Py_INCREF(name);  /* known may go when the dict changes below */
    PyObject *tagged = NULL, *index = NULL, *sid = NULL, *row = NULL, *class_key = NULL, *ref = NULL, *entry = NULL;
    if (!(index = PyLong_FromSsize_t(PyList_GET_SIZE(self->rows)))) goto done;
    if (!(tagged = tag_pair(s_T, Py_NewRef(index)))) goto done;
    if (!(sid = storage_id(self, t))) goto fail;
    if (!(row = acyclic(PyTuple_Pack(4, key, sid, kind, name))) || PyList_Append(self->rows, row) < 0) goto fail;
    if (!(class_key = PyTuple_GetSlice(key, 0, 3))) goto fail;
    PyObject *token = PyDict_GetItemWithError(self->class_tokens, class_key);  /* borrowed */
    if (token == NULL) {
        if (PyErr_Occurred()) goto fail;
        PyObject *n = PyLong_FromSsize_t(PyDict_GET_SIZE(self->class_tokens));
        PyObject *fresh = n ? acyclic(PyTuple_Pack(2, s_T, n)) : NULL;
        Py_XDECREF(n);
        if (fresh == NULL || PyDict_SetItem(self->class_tokens, class_key, fresh) < 0) {
            Py_XDECREF(fresh);
            goto fail;
        }
        Py_DECREF(fresh);  /* the dict holds it */
        token = fresh;
    }
    if (PyList_Append(self->classes, token) < 0) goto fail;
    if (!(ref = acyclic(PyWeakref_NewRef(t, NULL)))) goto fail;
    if (!(entry = acyclic(PyTuple_Pack(3, ref, key, tagged))) || PyDict_SetItem(self->seen, tid, entry) < 0) goto fail;
    goto done;
fail:
    Py_CLEAR(tagged);
done:
    Py_DECREF(kind); Py_DECREF(name);
    Py_XDECREF(index); Py_XDECREF(sid); Py_XDECREF(row); Py_XDECREF(class_key); Py_XDECREF(ref); Py_XDECREF(entry);
    return tagged;
}

static PyObject *tagged(Recording *self, PyObject *t, int produced) {  /* TensorTable.tagged */
    PyObject *tid = PyLong_FromVoidPtr(t), *key = NULL, *result = NULL;
    if (tid == NULL) return NULL;
    PyObject *hit = PyDict_GetItemWithError(self->seen, tid);  /* borrowed */
    if (hit == NULL && PyErr_Occurred()) goto done;
    if (hit != NULL && PyTuple_Check(hit) && PyTuple_GET_SIZE(hit) == 3 &&
        PyWeakref_GetObject(PyTuple_GET_ITEM(hit, 0)) == t) {
        int was_touched = PySet_Contains(self->touched, tid);
        if (was_touched < 0) goto done;
        if (!was_touched) {
            result = Py_NewRef(PyTuple_GET_ITEM(hit, 2));
            goto done;
        }
        Py_INCREF(hit);  /* the discard below cannot free it, but the key read may run Python */
        if (PySet_Discard(self->touched, tid) < 0 || !(key = metadata_key(t))) {
            Py_DECREF(hit);
            goto done;
        }
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(hit, 1), key, Py_EQ);
        if (same != 0) {
            if (same > 0) result = Py_NewRef(PyTuple_GET_ITEM(hit, 2));
            Py_DECREF(hit);
            goto done;
        }
        Py_DECREF(hit);
    } else {
        if (PySet_GET_SIZE(self->touched) > 0 && PySet_Discard(self->touched, tid) < 0) goto done;
        if (!(key = metadata_key(t))) goto done;
    }
    result = new_entry(self, t, tid, key, produced);
done:
    Py_DECREF(tid);
    Py_XDECREF(key);
    return result;
}

static int released(Recording *self) {  /* set the error a released (or never initialized) Recording gives */
    if (self->seen != NULL) return 0;
    PyErr_SetString(PyExc_RuntimeError, "Recording: released (the recording is over)");
    return 1;
}

static PyObject *Recording_tagged(Recording *self, PyObject *const *args, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "tagged(t, produced)");
        return NULL;
    }
    int produced = PyObject_IsTrue(args[1]);
    if (produced < 0) return NULL;
    return tagged(self, args[0], produced);
}

/* ---------------------------------------------------------------------------------------------
 * Values */

static PyObject *int_tag(Recording *self, PyObject *v) {  /* self.ints[v] for an exact int */
    PyObject *hit = PyDict_GetItemWithError(self->ints, v);
    if (hit != NULL) return Py_NewRef(hit);
    if (PyErr_Occurred()) return NULL;
    return PyObject_GetItem(self->ints, v);  /* IntTags.__missing__ makes and keeps it */
}

static int is_constant(Recording *self, PyObject *v) {  /* isinstance(v, _CACHED_CONSTANTS) */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->constant_types); i++)
        if (PyObject_TypeCheck(v, (PyTypeObject *)PyTuple_GET_ITEM(self->constant_types, i))) return 1;
    return 0;
}

static PyObject *encode(Recording *self, PyObject *v, int produced);

static PyObject *encode_items(Recording *self, PyObject *seq, int produced) {  /* ["list", [encode(x) ...]] */
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *items = acyclic(PyList_New(n));
    for (Py_ssize_t i = 0; items != NULL && i < n; i++) {
        PyObject *tag = encode(self, PySequence_Fast_GET_ITEM(seq, i), produced);
        if (tag == NULL) Py_CLEAR(items);
        else PyList_SET_ITEM(items, i, tag);
    }
    return items ? tag_pair(s_list, items) : NULL;
}

/* Recorder.encode, case by case in its order; what it leaves (strings, ...) and a constant met for
 * the first time (which it caches) go to the Python method */
static PyObject *encode(Recording *self, PyObject *v, int produced) {
    if (PyLong_CheckExact(v)) return int_tag(self, v);
    if (PyObject_TypeCheck(v, (PyTypeObject *)self->tensor_type)) return tagged(self, v, produced);
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) return encode_items(self, v, produced);
    if (PyFloat_CheckExact(v)) return tag_pair(s_float, Py_NewRef(v));
    if (PyBool_Check(v)) return tag_pair(s_bool, Py_NewRef(v));
    if (v == Py_None) return Py_NewRef(self->none_tag);
    if (is_constant(self, v)) {
        PyObject *hit = PyDict_GetItemWithError(self->constants, v);  /* borrowed */
        if (hit != NULL) return Py_NewRef(hit);
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_CallFunctionObjArgs(self->encode, v, produced ? Py_True : Py_False, NULL);
}

/* named_args(spec, args, kwargs): Recorder._named_args */
static PyObject *named_args(Recording *self, PyObject *spec, PyObject *args, PyObject *kwargs) {
    PyObject *names = NULL, *defaults = NULL, *out = NULL;
    if (!(names = PyObject_GetAttr(spec, s_names)) || !(defaults = PyObject_GetAttr(spec, s_defaults))) goto fail;
    if (!PyTuple_Check(names) || !PyTuple_Check(defaults) || PyTuple_GET_SIZE(defaults) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_TypeError, "named_args: spec.names and defaults must be tuples of one length");
        goto fail;
    }
    Py_ssize_t n_pos = PyTuple_GET_SIZE(args), n_names = PyTuple_GET_SIZE(names);
    if (n_pos > n_names) n_pos = n_names;  /* zip() stops at the shorter */
    if (!(out = acyclic(PyList_New(n_names > n_pos ? n_names : n_pos)))) goto fail;
    for (Py_ssize_t i = 0; i < n_pos; i++) {
        PyObject *v = encode(self, PyTuple_GET_ITEM(args, i), 0);  /* an int list too: encode_items */
        if (v == NULL) goto fail;
        PyList_SET_ITEM(out, i, v);
    }
    int has_kwargs = PyDict_GET_SIZE(kwargs) > 0;
    for (Py_ssize_t i = n_pos; i < n_names; i++) {
        PyObject *v = NULL;
        if (has_kwargs) {
            PyObject *kw = PyDict_GetItemWithError(kwargs, PyTuple_GET_ITEM(names, i));  /* borrowed */
            if (kw == NULL && PyErr_Occurred()) goto fail;
            if (kw != NULL && !(v = encode(self, kw, 0))) goto fail;
        }
        PyList_SET_ITEM(out, i, v != NULL ? v : Py_NewRef(PyTuple_GET_ITEM(defaults, i)));
    }
    Py_DECREF(names); Py_DECREF(defaults);
    return out;
fail:
    Py_XDECREF(names); Py_XDECREF(defaults); Py_XDECREF(out);
    return NULL;
}

static int touch(Recording *self, PyObject *t) {  /* TensorTable.touch */
    if (PyObject_TypeCheck(t, (PyTypeObject *)self->tensor_type)) {
        PyObject *tid = PyLong_FromVoidPtr(t);
        int rc = tid ? PySet_Add(self->touched, tid) : -1;
        Py_XDECREF(tid);
        return rc;
    }
    if (PyList_Check(t) || PyTuple_Check(t)) {
        PyObject *seq = PySequence_Fast(t, "touch");
        if (seq == NULL) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
            if (touch(self, PySequence_Fast_GET_ITEM(seq, i)) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        Py_DECREF(seq);
    }
    return 0;
}

/* results(spec, out, args, kwargs): Recorder._results (tensors the op wrote touched, then its outputs) */
static PyObject *results(Recording *self, PyObject *spec, PyObject *out, PyObject *args, PyObject *kwargs) {
    PyObject *writes = PyObject_GetAttr(spec, s_writes);
    if (writes == NULL) return NULL;
    if (!PyTuple_Check(writes)) {
        Py_DECREF(writes);
        PyErr_SetString(PyExc_TypeError, "results: spec.writes must be a tuple");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(writes); i++) {
        PyObject *w = PyTuple_GET_ITEM(writes, i), *target = NULL;
        if (PyLong_CheckExact(w)) {
            Py_ssize_t pos = PyLong_AsSsize_t(w);
            if (pos >= 0 && pos < PyTuple_GET_SIZE(args)) target = PyTuple_GET_ITEM(args, pos);
        } else {
            target = PyDict_GetItemWithError(kwargs, w);
            if (target == NULL && PyErr_Occurred()) {
                Py_DECREF(writes);
                return NULL;
            }
        }
        if (target != NULL && touch(self, target) < 0) {
            Py_DECREF(writes);
            return NULL;
        }
    }
    Py_DECREF(writes);
    PyObject *n_obj = PyObject_GetAttr(spec, s_n_returns);
    if (n_obj == NULL) return NULL;
    Py_ssize_t n_returns = PyLong_AsSsize_t(n_obj);
    Py_DECREF(n_obj);
    if (n_returns == -1 && PyErr_Occurred()) return NULL;
    if (n_returns == 1 || !(PyList_Check(out) || PyTuple_Check(out))) {
        PyObject *v = encode(self, out, 1);
        if (v == NULL) return NULL;
        PyObject *list = acyclic(PyList_New(1));
        if (list == NULL) {
            Py_DECREF(v);
            return NULL;
        }
        PyList_SET_ITEM(list, 0, v);
        return list;
    }
    PyObject *seq = PySequence_Fast(out, "results");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *list = acyclic(PyList_New(n));
    for (Py_ssize_t i = 0; list != NULL && i < n; i++) {
        PyObject *v = encode(self, PySequence_Fast_GET_ITEM(seq, i), 1);
        if (v == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, v);
    }
    Py_DECREF(seq);
    return list;
}

static PyObject *Recording_named_args(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 3 || !PyTuple_Check(argv[1]) || !PyDict_Check(argv[2])) {
        PyErr_SetString(PyExc_TypeError, "named_args(spec, args: tuple, kwargs: dict)");
        return NULL;
    }
    return named_args(self, argv[0], argv[1], argv[2]);
}

static PyObject *Recording_results(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 4 || !PyTuple_Check(argv[2]) || !PyDict_Check(argv[3])) {
        PyErr_SetString(PyExc_TypeError, "results(spec, out, args: tuple, kwargs: dict)");
        return NULL;
    }
    return results(self, argv[0], argv[1], argv[2], argv[3]);
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch: Recorder.__torch_dispatch__ with no Python frame of its own */

/* bind(recorder, raw_call, guarded): what dispatch needs of the recorder. guarded is the recorder's
 * class-level __torch_dispatch__, bound: torch wraps it to keep Dynamo out of its frames, so it is
 * the one to run whenever a frame evaluator (Dynamo's) is installed. */
static PyObject *Recording_bind(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 3 || !PyType_Check(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "bind(recorder, raw_call: type, guarded)");
        return NULL;
    }
    PyObject *recorder = argv[0], *rec = NULL, *fake_mode = NULL;
    Py_CLEAR(self->recorder); Py_CLEAR(self->specs); Py_CLEAR(self->calls); Py_CLEAR(self->modules);
    Py_CLEAR(self->raw_call); Py_CLEAR(self->guarded);
    self->recorder = Py_NewRef(recorder);
    self->raw_call = Py_NewRef(argv[1]);
    self->guarded = Py_NewRef(argv[2]);
    if (!(self->specs = get_attr_of_type(recorder, "_specs", &PyDict_Type)) ||
        !(self->modules = PyObject_GetAttrString(recorder, "modules")) ||
        !(rec = PyObject_GetAttrString(recorder, "rec")) ||
        !(self->calls = get_attr_of_type(rec, "calls", &PyList_Type)) ||
        !(fake_mode = PyObject_GetAttrString(recorder, "fake_mode"))) {
        Py_XDECREF(rec);
        return NULL;
    }
    self->fake = fake_mode != Py_None;
    Py_DECREF(rec); Py_DECREF(fake_mode);
    Py_RETURN_NONE;
}

/* The overload's spec (a new reference), made by the recorder on its first call; NULL with no error
 * set when the overload passes through unrecorded. */
static PyObject *spec_of(Recording *self, PyObject *func) {
    PyObject *key = PyLong_FromVoidPtr(func);
    if (key == NULL) return NULL;
    PyObject *spec = PyDict_GetItemWithError(self->specs, key);  /* borrowed */
    Py_DECREF(key);
    if (spec == NULL) return PyErr_Occurred() ? NULL : PyObject_CallMethodOneArg(self->recorder, s_spec, func);
    if (spec == Py_None) return NULL;
    return Py_NewRef(spec);
}

/* The call recorded: its outputs encoded (after the tensors it wrote are touched) and a RawCall of
 * (op, named, outputs, scope) appended; 0, or -1 with an error set. */
static int record_call(Recording *self, PyObject *spec, PyObject *named, PyObject *out, PyObject *args, PyObject *kw) {
    PyObject *outputs = NULL, *op = NULL, *scope = NULL, *raw = NULL;
    int rc = -1;
    if (!(outputs = results(self, spec, out, args, kw))) goto done;
    if (!(op = PyObject_GetAttr(spec, s_op)) || !(scope = PyObject_GetAttr(self->modules, s_current_scope))) goto done;
    if (!(raw = acyclic(((PyTypeObject *)self->raw_call)->tp_alloc((PyTypeObject *)self->raw_call, 4)))) goto done;
    PyTuple_SET_ITEM(raw, 0, op); op = NULL;
    PyTuple_SET_ITEM(raw, 1, Py_NewRef(named));
    PyTuple_SET_ITEM(raw, 2, outputs); outputs = NULL;
    PyTuple_SET_ITEM(raw, 3, scope); scope = NULL;
    rc = PyList_Append(self->calls, raw);
done:
    Py_XDECREF(outputs); Py_XDECREF(op); Py_XDECREF(scope); Py_XDECREF(raw);
    return rc;
}

/* dispatch(recorder, func, types, args=(), kwargs=None): Recorder.__torch_dispatch__ */
static PyObject *Recording_dispatch(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs < 3 || nargs > 5 || self->specs == NULL) {
        PyErr_SetString(PyExc_TypeError, "dispatch(recorder, func, types, args=(), kwargs=None), after bind()");
        return NULL;
    }
    if (_PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get()) != _PyEval_EvalFrameDefault)
        return PyObject_Vectorcall(self->guarded, argv + 1, nargs - 1, NULL);
    PyObject *func = argv[1], *args = nargs > 3 ? argv[3] : empty_tuple, *kwargs = nargs > 4 ? argv[4] : Py_None;
    if (!PyTuple_Check(args)) {
        PyErr_SetString(PyExc_TypeError, "dispatch: args must be a tuple");
        return NULL;
    }
    PyObject *kw = (kwargs != Py_None && PyDict_Check(kwargs) && PyDict_GET_SIZE(kwargs) > 0) ? Py_NewRef(kwargs) : PyDict_New();
    PyObject *spec = NULL, *named = NULL, *out = NULL, *result = NULL;
    if (kw == NULL) return NULL;
    if (!(spec = spec_of(self, func))) {
        if (!PyErr_Occurred()) result = PyObject_Call(func, args, kw);  /* passed through unrecorded */
        goto done;
    }
    if (!(named = named_args(self, spec, args, kw))) goto done;
    if (self->fake) {
        out = PyObject_CallMethodObjArgs(self->recorder, s_with_shadows, func, args, kw, NULL);
    } else {
        PyObject *run = PyObject_GetAttr(spec, s_run);
        out = run ? PyObject_Call(run, args, kw) : NULL;
        Py_XDECREF(run);
    }
    if (out == NULL || record_call(self, spec, named, out, args, kw) < 0) goto done;
    result = out; out = NULL;
done:
    Py_DECREF(kw); Py_XDECREF(spec); Py_XDECREF(named); Py_XDECREF(out);
    return result;
}

/* before(func, args, kwargs): dispatch's first half, for capture/_dispatch.cpp, which runs the op
 * itself: None when the overload passes through unrecorded, else (spec, named arguments, run), run
 * None when the op's own kernel is what spec.run calls (the overload's C++ op), else spec.run. */
static PyObject *Recording_before(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 3 || !PyTuple_Check(argv[1]) || !PyDict_Check(argv[2]) || self->specs == NULL) {
        PyErr_SetString(PyExc_TypeError, "before(func, args: tuple, kwargs: dict), after bind()");
        return NULL;
    }
    PyObject *func = argv[0], *spec = spec_of(self, func), *named = NULL, *run = NULL, *result = NULL;
    if (spec == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (!(named = named_args(self, spec, argv[1], argv[2])) || !(run = PyObject_GetAttr(spec, s_run))) goto done;
    if (run != func) {  /* _runner: func._op, the C++ op, unless a Python dispatcher is installed */
        Py_DECREF(run);
        run = Py_NewRef(Py_None);
    }
    result = PyTuple_Pack(3, spec, named, run);
done:
    Py_DECREF(spec); Py_XDECREF(named); Py_XDECREF(run);
    return result;
}

/* after(spec, named, out, args, kwargs): dispatch's second half (the call recorded) */
static PyObject *Recording_after(Recording *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (released(self)) return NULL;
    if (nargs != 5 || !PyTuple_Check(argv[3]) || !PyDict_Check(argv[4]) || self->specs == NULL) {
        PyErr_SetString(PyExc_TypeError, "after(spec, named, out, args: tuple, kwargs: dict), after bind()");
        return NULL;
    }
    if (record_call(self, argv[0], argv[1], argv[2], argv[3], argv[4]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Recording_release(Recording *self, PyObject *unused) {
    Recording_clear(self);  /* the references back to the recorder, which holds this object, go */
    Py_RETURN_NONE;
}

static PyMethodDef Recording_methods[] = {
    {"release", (PyCFunction)Recording_release, METH_NOARGS,
     "release(): drop every reference (the recording is over); a released object refuses work."},
    {"bind", (PyCFunction)(void (*)(void))Recording_bind, METH_FASTCALL,
     "bind(recorder, raw_call, guarded): what dispatch needs of the recorder."},
    {"dispatch", (PyCFunction)(void (*)(void))Recording_dispatch, METH_FASTCALL,
     "dispatch(recorder, func, types, args=(), kwargs=None): Recorder.__torch_dispatch__."},
    {"before", (PyCFunction)(void (*)(void))Recording_before, METH_FASTCALL,
     "before(func, args, kwargs): dispatch's first half: None (unrecorded), or (spec, named, run)."},
    {"after", (PyCFunction)(void (*)(void))Recording_after, METH_FASTCALL,
     "after(spec, named, out, args, kwargs): dispatch's second half: the call recorded."},
    {"tagged", (PyCFunction)(void (*)(void))Recording_tagged, METH_FASTCALL,
     "tagged(t, produced): TensorTable.tagged on the table's containers."},
    {"named_args", (PyCFunction)(void (*)(void))Recording_named_args, METH_FASTCALL,
     "named_args(spec, args, kwargs): Recorder._named_args."},
    {"results", (PyCFunction)(void (*)(void))Recording_results, METH_FASTCALL,
     "results(spec, out, args, kwargs): Recorder._results."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RecordingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "capture._accel.Recording",
    .tp_basicsize = sizeof(Recording),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Recording(table, tensor_type, ints, encode): the recorder's bookkeeping on one TensorTable.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Recording_init,
    .tp_dealloc = (destructor)Recording_dealloc,
    .tp_traverse = (traverseproc)Recording_traverse,
    .tp_clear = (inquiry)Recording_clear,
    .tp_methods = Recording_methods,
};

/* ---------------------------------------------------------------------------------------------
 * Module stack: ModuleCall(original, stack) stands in for nn.Module._call_impl while a ModuleStack is
 * entered: stack.enter(module), the original call, then stack.leave(module), also when it raises;
 * enter and leave done here on the stack's containers (capture.recorder.module_call is the same in
 * Python, calling the stack's methods). */

typedef struct {
    PyObject_HEAD
    PyObject *original, *stack;                            /* nn.Module._call_impl; the ModuleStack */
    PyObject *index, *entered, *frames, *child, *scopes;    /* the stack's index, stack, _frames, _child, scopes */
} ModuleCall;

static int ModuleCall_traverse(ModuleCall *self, visitproc visit, void *arg) {
    Py_VISIT(self->original); Py_VISIT(self->stack); Py_VISIT(self->index); Py_VISIT(self->entered);
    Py_VISIT(self->frames); Py_VISIT(self->child); Py_VISIT(self->scopes);
    return 0;
}

static int ModuleCall_clear(ModuleCall *self) {
    Py_CLEAR(self->original); Py_CLEAR(self->stack); Py_CLEAR(self->index); Py_CLEAR(self->entered);
    Py_CLEAR(self->frames); Py_CLEAR(self->child); Py_CLEAR(self->scopes);
    return 0;
}

static void ModuleCall_dealloc(ModuleCall *self) {
    PyObject_GC_UnTrack(self);
    ModuleCall_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ModuleCall_init(ModuleCall *self, PyObject *args, PyObject *kwds) {
    PyObject *original, *stack;
    static char *kwlist[] = {"original", "stack", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", kwlist, &original, &stack)) return -1;
    ModuleCall_clear(self);
    self->original = Py_NewRef(original);
    self->stack = Py_NewRef(stack);
    if (!(self->index = get_attr_of_type(stack, "index", &PyDict_Type)) ||
        !(self->entered = get_attr_of_type(stack, "stack", &PyList_Type)) ||
        !(self->frames = get_attr_of_type(stack, "_frames", &PyList_Type)) ||
        !(self->child = get_attr_of_type(stack, "_child", &PyDict_Type)) ||
        !(self->scopes = get_attr_of_type(stack, "scopes", &PyList_Type)))
        return -1;
    return 0;
}

static int enter(ModuleCall *self, PyObject *module) {  /* ModuleStack.enter */
    PyObject *mid = PyLong_FromVoidPtr(module);
    if (mid == NULL) return -1;
    PyObject *i = PyDict_GetItemWithError(self->index, mid);  /* borrowed */
    Py_DECREF(mid);
    if (i == NULL) {
        if (PyErr_Occurred()) return -1;
        PyObject *r = PyObject_CallMethodOneArg(self->stack, s_enter, module);  /* a module built during forward */
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    PyObject *outer = PyObject_GetAttr(self->stack, s_current_scope), *key = NULL, *sid = NULL;
    int rc = -1;
    if (outer == NULL || !(key = PyTuple_Pack(2, outer, i))) goto done;
    sid = PyDict_GetItemWithError(self->child, key);
    if (sid != NULL) {
        Py_INCREF(sid);
    } else {
        if (PyErr_Occurred() || !(sid = PyLong_FromSsize_t(PyList_GET_SIZE(self->scopes)))) goto done;
        PyObject *enclosing = PyObject_GetItem(self->scopes, outer);
        PyObject *scope = enclosing ? PySequence_List(enclosing) : NULL;
        Py_XDECREF(enclosing);
        int failed = scope == NULL || PyList_Append(scope, i) < 0 || PyList_Append(self->scopes, scope) < 0 ||
                     PyDict_SetItem(self->child, key, sid) < 0;
        Py_XDECREF(scope);
        if (failed) goto done;
    }
    if (PyList_Append(self->entered, i) < 0 || PyList_Append(self->frames, outer) < 0 ||
        PyObject_SetAttr(self->stack, s_current_scope, sid) < 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(outer); Py_XDECREF(key); Py_XDECREF(sid);
    return rc;
}

static PyObject *list_pop(PyObject *list) {  /* list.pop() of a non-empty list, a new reference */
    Py_ssize_t n = PyList_GET_SIZE(list);
    PyObject *last = Py_NewRef(PyList_GET_ITEM(list, n - 1));
    if (PyList_SetSlice(list, n - 1, n, NULL) < 0) Py_CLEAR(last);
    return last;
}

static int leave(ModuleCall *self, PyObject *module) {  /* ModuleStack.leave */
    PyObject *mid = PyLong_FromVoidPtr(module);
    if (mid == NULL) return -1;
    PyObject *i = PyDict_GetItemWithError(self->index, mid);  /* borrowed */
    Py_DECREF(mid);
    if (i == NULL) return PyErr_Occurred() ? -1 : 0;
    int inside = PySequence_Contains(self->entered, i);
    if (inside <= 0) return inside;
    while (PyList_GET_SIZE(self->entered) > 0 && PyList_GET_SIZE(self->frames) > 0) {
        PyObject *scope = list_pop(self->frames);
        if (scope == NULL) return -1;
        int rc = PyObject_SetAttr(self->stack, s_current_scope, scope);
        Py_DECREF(scope);
        PyObject *top = rc < 0 ? NULL : list_pop(self->entered);
        if (top == NULL) return -1;
        int same = PyObject_RichCompareBool(top, i, Py_EQ);
        Py_DECREF(top);
        if (same != 0) return same < 0 ? -1 : 0;
    }
    return 0;
}

static PyObject *ModuleCall_call(ModuleCall *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "ModuleCall: called without its module");
        return NULL;
    }
    PyObject *module = PyTuple_GET_ITEM(args, 0);
    if (enter(self, module) < 0) return NULL;
    PyObject *result = PyObject_Call(self->original, args, kwargs);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);  /* the call's error, if any, waits while leave runs */
    if (leave(self, module) < 0) {
        if (type == NULL) {
            Py_XDECREF(result);
            return NULL;
        }
        PyErr_Clear();  /* the call's own error is the one to report */
    }
    if (type != NULL) PyErr_Restore(type, value, tb);
    return result;
}

static PyObject *ModuleCall_get(PyObject *self, PyObject *obj, PyObject *type) {  /* binds like a function */
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyTypeObject ModuleCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "capture._accel.ModuleCall",
    .tp_basicsize = sizeof(ModuleCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ModuleCall(original, stack): nn.Module._call_impl between stack.enter(module) and stack.leave(module).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ModuleCall_init,
    .tp_dealloc = (destructor)ModuleCall_dealloc,
    .tp_traverse = (traverseproc)ModuleCall_traverse,
    .tp_clear = (inquiry)ModuleCall_clear,
    .tp_call = (ternaryfunc)ModuleCall_call,
    .tp_descr_get = ModuleCall_get,
};

/* ---------------------------------------------------------------------------------------------
 * Signatures */

static int is_tag(PyObject *tag, PyObject *name) {  /* tag == name, for a tag that may not be interned */
    return tag == name || (PyUnicode_Check(tag) && PyUnicode_Compare(tag, name) == 0);
}

static PyObject *hashable(PyObject *values, PyObject *tensor_class) {  /* capture.capture._hashable */
    PyObject *seq = PySequence_Fast(values, "hashable: a list of tagged values expected");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyTuple_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *value = PySequence_Fast_GET_ITEM(seq, i), *item = NULL;
        if (!PyList_Check(value) || PyList_GET_SIZE(value) != 2) {
            PyErr_SetString(PyExc_TypeError, "hashable: a tagged value is a [tag, payload] list");
        } else {
            PyObject *tag = PyList_GET_ITEM(value, 0), *payload = PyList_GET_ITEM(value, 1);
            if (is_tag(tag, s_int)) {
                item = Py_NewRef(payload);
            } else if (is_tag(tag, s_T)) {
                item = PyObject_GetItem(tensor_class, payload);
            } else if (is_tag(tag, s_list)) {
                PyObject *inner = hashable(payload, tensor_class);
                item = inner ? PyTuple_Pack(2, s_list, inner) : NULL;
                Py_XDECREF(inner);
            } else {
                item = PyTuple_Pack(2, tag, payload);
            }
        }
        if (item == NULL) Py_CLEAR(out);
        else PyTuple_SET_ITEM(out, i, item);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *signature_values(PyObject *values, PyObject *tensors);

/* capture.schema.signature_value: a tagged value with tensor references replaced by their signature
 * metadata ([shape, dtype, stride]); any other value is the same object */
static PyObject *signature_value(PyObject *value, PyObject *tensors) {
    if (!PyList_Check(value) || PyList_GET_SIZE(value) != 2) {
        PyErr_SetString(PyExc_TypeError, "signature_value: a tagged value is a [tag, payload] list");
        return NULL;
    }
    PyObject *tag = PyList_GET_ITEM(value, 0), *payload = PyList_GET_ITEM(value, 1), *inner = NULL;
    if (is_tag(tag, s_T)) {
        PyObject *meta = PyObject_GetItem(tensors, payload);
        if (meta == NULL || !(inner = acyclic(PyList_New(3)))) {
            Py_XDECREF(meta);
            return NULL;
        }
        for (int i = 0; i < 3; i++) {
            PyObject *field = PyObject_GetAttr(meta, meta_fields[i]);  /* shape, dtype, stride */
            if (field == NULL) {
                Py_DECREF(meta); Py_DECREF(inner);
                return NULL;
            }
            PyList_SET_ITEM(inner, i, field);
        }
        Py_DECREF(meta);
    } else if (is_tag(tag, s_list)) {
        if (!(inner = signature_values(payload, tensors))) return NULL;
    } else {
        return Py_NewRef(value);
    }
    return tag_pair(tag, inner);
}

static PyObject *signature_values(PyObject *values, PyObject *tensors) {  /* [signature_value(v) for v in values] */
    PyObject *seq = PySequence_Fast(values, "signature_values: a list of tagged values expected");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = acyclic(PyList_New(n));
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *v = signature_value(PySequence_Fast_GET_ITEM(seq, i), tensors);
        if (v == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, v);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *accel_signature_values(PyObject *module, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "signature_values(values, tensors)");
        return NULL;
    }
    return signature_values(argv[0], argv[1]);
}

/* An instance of a dataclass made without its __init__: object.__new__, then each field set in order
 * (what the generated __init__ does, minus its Python frame). */
static PyObject *record(PyObject *cls, int n, PyObject *const *names, PyObject *const *values) {
    PyObject *obj = PyBaseObject_Type.tp_new((PyTypeObject *)cls, empty_tuple, NULL);
    for (int i = 0; obj != NULL && i < n; i++)
        if (PyObject_SetAttr(obj, names[i], values[i]) < 0) Py_CLEAR(obj);
    return obj;
}

/* intern_calls(raw_calls, tensor_class, new_signature, sigs, opcall): capture.capture._intern_calls */
static PyObject *accel_intern_calls(PyObject *module, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs != 5 || !PyList_Check(argv[0]) || !PyList_Check(argv[3]) || !PyType_Check(argv[4])) {
        PyErr_SetString(PyExc_TypeError, "intern_calls(raw_calls: list, tensor_class, new_signature, sigs: list, opcall: type)");
        return NULL;
    }
    PyObject *raw_calls = argv[0], *tensor_class = argv[1], *new_signature = argv[2], *sigs = argv[3], *opcall = argv[4];
    Py_ssize_t n = PyList_GET_SIZE(raw_calls);
    PyObject *seen = PyDict_New(), *calls = PyList_New(n);
    if (seen == NULL || calls == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(raw_calls, i);  /* a RawCall, or anything with its four fields */
        PyObject *fields[4] = {NULL, NULL, NULL, NULL};
        for (int f = 0; f < 4; f++)
            if (!(fields[f] = PyObject_GetAttr(raw, raw_fields[f]))) break;
        PyObject *h = fields[3] ? hashable(fields[1], tensor_class) : NULL;
        PyObject *key = h ? PyTuple_Pack(2, fields[0], h) : NULL;
        Py_XDECREF(h);
        PyObject *k = key ? PyDict_GetItemWithError(seen, key) : NULL;  /* borrowed */
        if (k != NULL) {
            Py_INCREF(k);
        } else if (key == NULL || PyErr_Occurred() || !(k = PyObject_CallOneArg(new_signature, raw)) ||
                   PyDict_SetItem(seen, key, k) < 0) {
            Py_CLEAR(k);
        }
        Py_XDECREF(key);
        PyObject *call = NULL;
        if (k != NULL) {
            Py_ssize_t ki = PyLong_AsSsize_t(k);
            PyObject *sig = (ki == -1 && PyErr_Occurred()) ? NULL : PyList_GetItem(sigs, ki);  /* borrowed */
            PyObject *sig_calls = sig ? PyObject_GetAttr(sig, s_calls) : NULL;
            PyObject *index = sig_calls ? PyLong_FromSsize_t(i) : NULL;
            if (index != NULL && PyList_Append(sig_calls, index) == 0) {
                PyObject *values[6] = {index, fields[0], fields[1], fields[2], fields[3], k};
                call = acyclic(record(opcall, 6, opcall_fields, values));
            }
            Py_XDECREF(sig_calls); Py_XDECREF(index); Py_DECREF(k);
        }
        for (int f = 0; f < 4; f++) Py_XDECREF(fields[f]);
        if (call == NULL) goto fail;
        PyList_SET_ITEM(calls, i, call);
    }
    Py_DECREF(seen);
    return calls;
fail:
    Py_XDECREF(seen); Py_XDECREF(calls);
    return NULL;
}

/* tensor_metas(rows, start, dtype_names, dtype_name, meta_type): TensorTable.metas for rows[start:] of
 * a table without symbolic sizes */
static PyObject *accel_tensor_metas(PyObject *module, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs != 5 || !PyList_Check(argv[0]) || !PyLong_Check(argv[1]) || !PyDict_Check(argv[2]) ||
        !PyType_Check(argv[4])) {
        PyErr_SetString(PyExc_TypeError, "tensor_metas(rows: list, start: int, dtype_names: dict, dtype_name, meta_type: type)");
        return NULL;
    }
    PyObject *rows = argv[0], *dtype_names = argv[2], *dtype_name = argv[3], *meta_type = argv[4];
    Py_ssize_t start = PyLong_AsSsize_t(argv[1]), n = PyList_GET_SIZE(rows);
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "tensor_metas: start out of range");
        return NULL;
    }
    PyObject *out = PyList_New(n - start);
    for (Py_ssize_t i = start; out != NULL && i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i), *meta = NULL;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(row, 0)) ||
            PyTuple_GET_SIZE(PyTuple_GET_ITEM(row, 0)) != 4) {
            PyErr_SetString(PyExc_TypeError, "tensor_metas: a row is ((shape, dtype, stride, offset), sid, kind, name)");
        } else {
            PyObject *key = PyTuple_GET_ITEM(row, 0), *dtype = PyTuple_GET_ITEM(key, 1);
            PyObject *shape = acyclic(PySequence_List(PyTuple_GET_ITEM(key, 0)));
            PyObject *stride = shape ? acyclic(PySequence_List(PyTuple_GET_ITEM(key, 2))) : NULL;
            PyObject *offset = stride ? PyNumber_Index(PyTuple_GET_ITEM(key, 3)) : NULL;
            PyObject *name = offset ? PyDict_GetItemWithError(dtype_names, dtype) : NULL;  /* borrowed */
            if (name != NULL) Py_INCREF(name);
            else if (offset != NULL && !PyErr_Occurred()) name = PyObject_CallOneArg(dtype_name, dtype);
            if (name != NULL) {
                PyObject *values[7] = {shape, name, stride, offset, PyTuple_GET_ITEM(row, 1), PyTuple_GET_ITEM(row, 2),
                                       PyTuple_GET_ITEM(row, 3)};
                meta = acyclic(record(meta_type, 7, meta_fields, values));
            }
            Py_XDECREF(shape); Py_XDECREF(stride); Py_XDECREF(offset); Py_XDECREF(name);
        }
        if (meta == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i - start, meta);
    }
    return out;
}

static PyMethodDef accel_functions[] = {
    {"intern_calls", (PyCFunction)(void (*)(void))accel_intern_calls, METH_FASTCALL,
     "intern_calls(raw_calls, tensor_class, new_signature, sigs, opcall): capture.capture._intern_calls."},
    {"signature_values", (PyCFunction)(void (*)(void))accel_signature_values, METH_FASTCALL,
     "signature_values(values, tensors): [capture.schema.signature_value(v, tensors) for v in values]."},
    {"tensor_metas", (PyCFunction)(void (*)(void))accel_tensor_metas, METH_FASTCALL,
     "tensor_metas(rows, start, dtype_names, dtype_name, meta_type): TensorTable.metas, from row start on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT, "capture._accel", "The recorder's bookkeeping in C (see capture/accel.py).", -1,
    accel_functions,
};

static PyObject *field_names(PyObject *const *names, int n) {  /* the fields record() sets, for capture/accel.py to check */
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t != NULL && i < n; i++) PyTuple_SET_ITEM(t, i, Py_NewRef(names[i]));
    return t;
}

static int add_new(PyObject *m, const char *name, PyObject *value) {  /* PyModule_Add, before Python 3.13 */
    int rc = value ? PyModule_AddObjectRef(m, name, value) : -1;
    Py_XDECREF(value);
    return rc;
}

#define INTERN(var, text) if (!((var) = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC PyInit__accel(void) {
    INTERN(s_shape, "shape"); INTERN(s_dtype, "dtype"); INTERN(s_stride, "stride");
    INTERN(s_storage_offset, "storage_offset"); INTERN(s_untyped_storage, "untyped_storage");
    INTERN(s_symbolic, "_has_symbolic_sizes_strides"); INTERN(s_next_sid, "_next_sid");
    INTERN(s_new_entry_py, "_new_entry"); INTERN(s_names, "names");
    INTERN(s_defaults, "defaults"); INTERN(s_writes, "writes"); INTERN(s_n_returns, "n_returns");
    INTERN(s_T, "T"); INTERN(s_int, "int"); INTERN(s_list, "list"); INTERN(s_float, "float"); INTERN(s_bool, "bool"); INTERN(s_activation, "activation");
    INTERN(s_constant, "constant"); INTERN(s_empty, ""); INTERN(s_calls, "calls"); INTERN(s_enter, "enter");
    INTERN(s_current_scope, "current_scope"); INTERN(s_spec, "_spec"); INTERN(s_with_shadows, "_with_shadows");
    INTERN(s_run, "run"); INTERN(s_op, "op");
    const char *opcall_names[6] = {"index", "op", "args", "outputs", "scope", "signature"};
    const char *meta_names[7] = {"shape", "dtype", "stride", "storage_offset", "storage_id", "kind", "name"};
    for (int i = 0; i < 6; i++) INTERN(opcall_fields[i], opcall_names[i]);
    for (int i = 0; i < 7; i++) INTERN(meta_fields[i], meta_names[i]);
    for (int i = 0; i < 4; i++) INTERN(raw_fields[i], opcall_names[i + 1]);
    if (!(empty_tuple = PyTuple_New(0))) return NULL;
    if (PyType_Ready(&RecordingType) < 0 || PyType_Ready(&ModuleCallType) < 0) return NULL;
    PyObject *m = PyModule_Create(&accel_module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Recording", (PyObject *)&RecordingType) < 0 ||
        PyModule_AddObjectRef(m, "ModuleCall", (PyObject *)&ModuleCallType) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_SHA", OPTRACE_ACCEL_SOURCE_SHA) < 0 ||
        add_new(m, "OPCALL_FIELDS", field_names(opcall_fields, 6)) < 0 ||
        add_new(m, "META_FIELDS", field_names(meta_fields, 7)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
