/* Redis' HyperLogLog register arithmetic, for statestore.hll.
 *
 * PFADD hashes a member with MurmurHash64A (seed 0xadc83b19), takes the low 14
 * bits as the register index and, from the remaining 50 bits, one plus the number
 * of trailing zeros as the rank (the register keeps the largest rank it saw).
 * A member whose rank is not above its register's value changes nothing, so a
 * replica that knows a lower bound of the registers can leave it out.
 * statestore.hll checks at start-up that the server agrees; tests cross-check this
 * file against an independent Python implementation and against real Redis.
 *
 * Done in C because it runs once per HyperLogLog member on the hot path: in
 * Python the 64-bit multiplications alone cost about a microsecond per member.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HLL_P 14
#define HLL_REGISTERS (1 << HLL_P)
#define HLL_P_MASK (HLL_REGISTERS - 1)
#define HLL_Q (64 - HLL_P)
#define HLL_SEED 0xadc83b19ULL

static uint64_t murmur64a(const unsigned char *data, size_t len, uint64_t seed) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ ((uint64_t)len * m);
    const unsigned char *end = data + (len - (len & 7));

    for (; data != end; data += 8) {
        uint64_t k;
        memcpy(&k, data, sizeof k); /* little-endian hosts only: see module init */
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    switch (len & 7) {
    case 7: h ^= (uint64_t)data[6] << 48; /* fall through */
    case 6: h ^= (uint64_t)data[5] << 40; /* fall through */
    case 5: h ^= (uint64_t)data[4] << 32; /* fall through */
    case 4: h ^= (uint64_t)data[3] << 24; /* fall through */
    case 3: h ^= (uint64_t)data[2] << 16; /* fall through */
    case 2: h ^= (uint64_t)data[1] << 8; /* fall through */
    case 1:
        h ^= (uint64_t)data[0];
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

/* The register index and rank PFADD gives `data`. */
static unsigned char position(const unsigned char *data, size_t len, uint32_t *index) {
    uint64_t hash = murmur64a(data, len, HLL_SEED);
    unsigned char rank = 1;

    *index = (uint32_t)(hash & HLL_P_MASK);
    hash >>= HLL_P;
    hash |= (uint64_t)1 << HLL_Q; /* the rank is at most Q + 1 */
    while ((hash & 1) == 0) {
        rank++;
        hash >>= 1;
    }
    return rank;
}

/* A member's UTF-8 bytes, as redis-py sends a str; NULL (no exception set) for what
 * has none (a lone surrogate, a non-string): such a member is always sent. */
static const unsigned char *member_bytes(PyObject *member, Py_ssize_t *len) {
    if (PyUnicode_Check(member)) {
        const char *data = PyUnicode_AsUTF8AndSize(member, len);
        if (data == NULL)
            PyErr_Clear();
        return (const unsigned char *)data;
    }
    if (PyBytes_Check(member)) {
        *len = PyBytes_GET_SIZE(member);
        return (const unsigned char *)PyBytes_AS_STRING(member);
    }
    return NULL;
}

static int registers_buffer(PyObject *object, Py_buffer *view, int writable) {
    if (PyObject_GetBuffer(object, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len != HLL_REGISTERS) {
        PyErr_Format(PyExc_ValueError, "registers must be %d bytes, not %zd", HLL_REGISTERS,
                     view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(novel_doc,
"novel(members, known)\n--\n\n"
"The members of the iterable `members` that would raise a register, in order: above\n"
"`known` (16384 bytes, one rank per register, or None) and above the members kept\n"
"before them. PFADD of the others changes nothing once these are added.");

static PyObject *novel(PyObject *self, PyObject *args) {
    PyObject *members, *known_object, *iterator, *member, *kept;
    Py_buffer known = {0};
    unsigned char *batch;

    if (!PyArg_ParseTuple(args, "OO", &members, &known_object))
        return NULL;
    batch = PyMem_Calloc(HLL_REGISTERS, 1);
    if (batch == NULL)
        return PyErr_NoMemory();
    if (known_object != Py_None) {
        if (registers_buffer(known_object, &known, 0) < 0)
            goto fail_buffer;
        memcpy(batch, known.buf, HLL_REGISTERS);
        PyBuffer_Release(&known);
    }
    kept = PyList_New(0);
    iterator = kept ? PyObject_GetIter(members) : NULL;
    if (iterator == NULL)
        goto fail_list;
    while ((member = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t len;
        uint32_t index;
        const unsigned char *data = member_bytes(member, &len);
        int keep = 1;
        if (data != NULL) {
            unsigned char rank = position(data, (size_t)len, &index);
            keep = rank > batch[index];
            if (keep)
                batch[index] = rank;
        }
        if (keep && PyList_Append(kept, member) < 0) {
            Py_DECREF(member);
            Py_DECREF(iterator);
            goto fail_list;
        }
        Py_DECREF(member);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        goto fail_list;
    PyMem_Free(batch);
    return kept;

fail_list:
    Py_XDECREF(kept);
fail_buffer:
    PyMem_Free(batch);
    return NULL;
}

PyDoc_STRVAR(raise_doc,
"raise_registers(registers, members)\n--\n\n"
"Raise `registers` (a writable 16384-byte buffer) as PFADD of `members` would.");

static PyObject *raise_registers(PyObject *self, PyObject *args) {
    PyObject *registers_object, *members, *iterator, *member;
    Py_buffer registers;
    unsigned char *values;

    if (!PyArg_ParseTuple(args, "OO", &registers_object, &members))
        return NULL;
    if (registers_buffer(registers_object, &registers, 1) < 0)
        return NULL;
    values = registers.buf;
    iterator = PyObject_GetIter(members);
    if (iterator == NULL) {
        PyBuffer_Release(&registers);
        return NULL;
    }
    while ((member = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t len;
        uint32_t index;
        const unsigned char *data = member_bytes(member, &len);
        if (data != NULL) {
            unsigned char rank = position(data, (size_t)len, &index);
            if (rank > values[index])
                values[index] = rank;
        }
        Py_DECREF(member);
    }
    Py_DECREF(iterator);
    PyBuffer_Release(&registers);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(position_doc,
"position(member)\n--\n\n"
"(register index, rank) PFADD gives `member` (str as UTF-8, or bytes).");

static PyObject *member_position(PyObject *self, PyObject *member) {
    Py_ssize_t len;
    uint32_t index;
    const unsigned char *data;

    if (PyUnicode_Check(member)) {
        data = (const unsigned char *)PyUnicode_AsUTF8AndSize(member, &len);
        if (data == NULL)
            return NULL;
    } else if (PyBytes_Check(member)) {
        data = (const unsigned char *)PyBytes_AS_STRING(member);
        len = PyBytes_GET_SIZE(member);
    } else {
        PyErr_SetString(PyExc_TypeError, "member must be str or bytes");
        return NULL;
    }
    unsigned char rank = position(data, (size_t)len, &index);
    return Py_BuildValue("(II)", index, (unsigned int)rank);
}

static PyMethodDef methods[] = {
    {"novel", novel, METH_VARARGS, novel_doc},
    {"raise_registers", raise_registers, METH_VARARGS, raise_doc},
    {"position", member_position, METH_O, position_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "statestore._hll",
    "Redis' HyperLogLog register arithmetic (see statestore.hll).", -1, methods,
};

PyMODINIT_FUNC PyInit__hll(void) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) {
        /* Redis reads 8-byte blocks little-endian; this build reads them natively. */
        PyErr_SetString(PyExc_ImportError, "statestore._hll needs a little-endian host");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "REGISTERS", HLL_REGISTERS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
