/* Column reads over a batch of events, for services.processor.columns.
 *
 * Each function walks a list of events once and reads one attribute of each,
 * straight from the attribute's slot: the member descriptor the caller passes
 * (ClickEvent.user_id, say) gives its offset in the object. Python's map() with
 * attrgetter looks the attribute up again for every event, and Counter adds a
 * method call per value; together they were the largest share of fold.
 *
 * The results are exactly those of the Python versions in columns.py (same
 * values, same first-occurrence order, same comparisons), which the tests check.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* The slot offset of `descriptor`, a member descriptor of object type. */
static int slot_offset(PyObject *descriptor, PyTypeObject **owner, Py_ssize_t *offset) {
    if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected a member descriptor (Type.attribute)");
        return -1;
    }
    PyMemberDescrObject *member = (PyMemberDescrObject *)descriptor;
    if (member->d_member->type != T_OBJECT_EX && member->d_member->type != T_OBJECT) {
        PyErr_SetString(PyExc_TypeError, "expected a member holding an object");
        return -1;
    }
    *owner = member->d_common.d_type;
    *offset = member->d_member->offset;
    return 0;
}

/* A column: which slot to read and, optionally, a second slot that must equal a value. */
typedef struct {
    PyTypeObject *owner;
    Py_ssize_t offset;
    Py_ssize_t only_offset; /* -1: every event */
    PyObject *only_value;
} Column;

/* The column `descriptor` names over `events`, which must be a list. */
static int column_parse(PyObject *events, PyObject *descriptor, PyObject *only_descriptor,
                        PyObject *only_value, Column *column) {
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "events must be a list");
        return -1;
    }
    if (slot_offset(descriptor, &column->owner, &column->offset) < 0)
        return -1;
    column->only_offset = -1;
    column->only_value = NULL;
    if (only_descriptor != Py_None) {
        PyTypeObject *only_owner;
        if (slot_offset(only_descriptor, &only_owner, &column->only_offset) < 0)
            return -1;
        if (only_owner != column->owner) {
            PyErr_SetString(PyExc_TypeError, "both members must belong to one type");
            return -1;
        }
        column->only_value = only_value;
    }
    return 0;
}

static PyObject *read_slot(PyObject *event, Py_ssize_t offset) {
    PyObject *value = *(PyObject **)((char *)event + offset);
    if (value == NULL)
        PyErr_SetString(PyExc_AttributeError, "event attribute is not set");
    return value;
}

/* The value in the column of the list's item `at` (a new reference), NULL with no
 * exception set if the event is filtered out, NULL with an exception on error.
 * References are held across every comparison: an __eq__ or __hash__ written in
 * Python could change the list or the event meanwhile. */
static PyObject *column_value(const Column *column, PyObject *events, Py_ssize_t at) {
    PyObject *event = PyList_GET_ITEM(events, at), *value = NULL;
    Py_INCREF(event);
    if (!PyObject_TypeCheck(event, column->owner)) {
        PyErr_Format(PyExc_TypeError, "expected %s, got %s", column->owner->tp_name,
                     Py_TYPE(event)->tp_name);
        goto done;
    }
    if (column->only_offset >= 0) {
        PyObject *only = read_slot(event, column->only_offset);
        if (only == NULL)
            goto done;
        Py_INCREF(only);
        int equal = PyObject_RichCompareBool(only, column->only_value, Py_EQ);
        Py_DECREF(only);
        if (equal <= 0)
            goto done; /* not equal (no exception), or an error */
    }
    value = read_slot(event, column->offset);
    Py_XINCREF(value);
done:
    Py_DECREF(event);
    return value;
}

/* One more of `value`: its tally goes up, or it gets the next index with a tally of 1. */
static int tally_value(PyObject *index_of, PyObject *value, Py_ssize_t **tally,
                       Py_ssize_t *distinct, Py_ssize_t *capacity) {
    PyObject *index = PyDict_GetItemWithError(index_of, value);
    if (index != NULL) {
        (*tally)[PyLong_AsSsize_t(index)]++;
        return 0;
    }
    if (PyErr_Occurred())
        return -1;
    if (*distinct == *capacity) {
        Py_ssize_t grown_capacity = *capacity ? *capacity * 2 : 16;
        Py_ssize_t *grown = PyMem_Realloc(*tally, grown_capacity * sizeof **tally);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *tally = grown;
        *capacity = grown_capacity;
    }
    index = PyLong_FromSsize_t(*distinct);
    if (index == NULL || PyDict_SetItem(index_of, value, index) < 0) {
        Py_XDECREF(index);
        return -1;
    }
    Py_DECREF(index);
    (*tally)[(*distinct)++] = 1;
    return 0;
}

PyDoc_STRVAR(count_into_doc,
"count_into(counts, events, member, only_member, only_value)\n--\n\n"
"Fill the empty dict `counts` (a Counter, say) with the number of events per `member`\n"
"value, in order of first occurrence; only events whose `only_member` equals\n"
"`only_value`, unless `only_member` is None.");

static PyObject *count_into(PyObject *self, PyObject *args) {
    PyObject *counts, *events, *descriptor, *only_descriptor, *only_value;
    Column column;

    if (!PyArg_ParseTuple(args, "O!OOOO", &PyDict_Type, &counts, &events, &descriptor,
                          &only_descriptor, &only_value))
        return NULL;
    if (column_parse(events, descriptor, only_descriptor, only_value, &column) < 0)
        return NULL;
    if (PyDict_GET_SIZE(counts) != 0) {
        PyErr_SetString(PyExc_ValueError, "counts must be empty");
        return NULL;
    }
    /* value -> its index in `tally`; the dict `counts` is written once, at the end. */
    PyObject *index_of = PyDict_New();
    Py_ssize_t *tally = NULL, distinct = 0, capacity = 0;
    if (index_of == NULL)
        return NULL;
    for (Py_ssize_t at = 0; at < PyList_GET_SIZE(events); at++) {
        PyObject *value = column_value(&column, events, at);
        if (value == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        int counted = tally_value(index_of, value, &tally, &distinct, &capacity);
        Py_DECREF(value);
        if (counted < 0)
            goto fail;
    }
    /* Into `counts` in first-occurrence order (the dict keeps insertion order). */
    Py_ssize_t position = 0, number = 0;
    PyObject *value, *index;
    while (PyDict_Next(index_of, &position, &value, &index)) {
        PyObject *count = PyLong_FromSsize_t(tally[number++]);
        if (count == NULL || PyDict_SetItem(counts, value, count) < 0) {
            Py_XDECREF(count);
            goto fail;
        }
        Py_DECREF(count);
    }
    PyMem_Free(tally);
    Py_DECREF(index_of);
    Py_RETURN_NONE;

fail:
    PyMem_Free(tally);
    Py_DECREF(index_of);
    return NULL;
}

PyDoc_STRVAR(distinct_doc,
"distinct(events, member, only_member, only_value)\n--\n\n"
"The set of the events' `member` values; only events whose `only_member` equals\n"
"`only_value`, unless `only_member` is None.");

static PyObject *distinct(PyObject *self, PyObject *args) {
    PyObject *events, *descriptor, *only_descriptor, *only_value;
    Column column;

    if (!PyArg_ParseTuple(args, "OOOO", &events, &descriptor, &only_descriptor, &only_value))
        return NULL;
    if (column_parse(events, descriptor, only_descriptor, only_value, &column) < 0)
        return NULL;
    PyObject *values = PySet_New(NULL);
    if (values == NULL)
        return NULL;
    for (Py_ssize_t at = 0; at < PyList_GET_SIZE(events); at++) {
        PyObject *value = column_value(&column, events, at);
        int failed = value == NULL ? PyErr_Occurred() != NULL : PySet_Add(values, value) < 0;
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(values);
            return NULL;
        }
    }
    return values;
}

PyDoc_STRVAR(total_doc,
"total(events, member)\n--\n\n"
"The sum of the events' `member` values, as sum() gives it.");

static PyObject *total(PyObject *self, PyObject *args) {
    PyObject *events, *descriptor;
    Column column;

    if (!PyArg_ParseTuple(args, "OO", &events, &descriptor))
        return NULL;
    if (column_parse(events, descriptor, Py_None, NULL, &column) < 0)
        return NULL;
    /* Machine integers while they fit; Python's addition from the first value that does
     * not (not an int, or a sum past 64 bits), exactly as sum() switches over. */
    long long small = 0;
    PyObject *sum = NULL;
    for (Py_ssize_t at = 0; at < PyList_GET_SIZE(events); at++) {
        PyObject *value = column_value(&column, events, at);
        if (value == NULL)
            goto fail;
        if (sum == NULL && PyLong_CheckExact(value)) {
            int overflow;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (!overflow && !(number > 0 && small > LLONG_MAX - number) &&
                !(number < 0 && small < LLONG_MIN - number)) {
                small += number;
                Py_DECREF(value);
                continue;
            }
        }
        if (sum == NULL && (sum = PyLong_FromLongLong(small)) == NULL) {
            Py_DECREF(value);
            goto fail;
        }
        PyObject *added = PyNumber_Add(sum, value);
        Py_DECREF(value);
        Py_DECREF(sum);
        sum = added;
        if (sum == NULL)
            goto fail;
    }
    return sum != NULL ? sum : PyLong_FromLongLong(small);

fail:
    Py_XDECREF(sum);
    return NULL;
}

PyDoc_STRVAR(bounds_doc,
"bounds(events, member)\n--\n\n"
"(min, max) of the events' `member` values, as min() and max() give them; ValueError\n"
"for no events.");

static PyObject *bounds(PyObject *self, PyObject *args) {
    PyObject *events, *descriptor, *least = NULL, *most = NULL, *result = NULL;
    Column column;

    if (!PyArg_ParseTuple(args, "OO", &events, &descriptor))
        return NULL;
    if (column_parse(events, descriptor, Py_None, NULL, &column) < 0)
        return NULL;
    if (PyList_GET_SIZE(events) == 0) {
        PyErr_SetString(PyExc_ValueError, "bounds() of no events");
        return NULL;
    }
    for (Py_ssize_t at = 0; at < PyList_GET_SIZE(events); at++) {
        PyObject *value = column_value(&column, events, at);
        if (value == NULL)
            goto done;
        if (least == NULL) {
            least = value;
            Py_INCREF(value);
            most = value;
            continue;
        }
        /* min() and max() keep the first of equal values: replace only when strictly
         * beyond, comparing in the order they do. */
        int below = PyObject_RichCompareBool(value, least, Py_LT);
        int above = below < 0 ? -1 : PyObject_RichCompareBool(value, most, Py_GT);
        if (above < 0) {
            Py_DECREF(value);
            goto done;
        }
        if (below) {
            Py_INCREF(value);
            Py_SETREF(least, value);
        }
        if (above) {
            Py_INCREF(value);
            Py_SETREF(most, value);
        }
        Py_DECREF(value);
    }
    result = PyTuple_Pack(2, least, most);
done:
    Py_XDECREF(least);
    Py_XDECREF(most);
    return result;
}

static PyMethodDef methods[] = {
    {"count_into", count_into, METH_VARARGS, count_into_doc},
    {"distinct", distinct, METH_VARARGS, distinct_doc},
    {"total", total, METH_VARARGS, total_doc},
    {"bounds", bounds, METH_VARARGS, bounds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "services.processor._columns",
    "Column reads over a batch of events (see services.processor.columns).", -1, methods,
};

PyMODINIT_FUNC PyInit__columns(void) { return PyModule_Create(&module); }
