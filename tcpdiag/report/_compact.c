/* tcpdiag.report._compact: a JSON document of plain dicts, lists, strs and numbers written as
 * compact ASCII JSON in C, into one growing buffer.
 *
 * Why: a JSON report writes one line of compact JSON per flow (~1.6 KB). Through
 * `json.JSONEncoder.encode`, CPython's C encoder appends every piece (a key, a separator, a
 * number's repr) to a list as a tiny str, one object each, and joins the list at the end:
 * ~13.5 us a flow, a tenth of `tcpdiag analyze --format json`. Here the pieces are written as
 * bytes into one buffer (on the stack while it fits) and the str is made once, at the end.
 *
 * The text is exactly `report/json.py`'s `_COMPACT.encode(obj)`'s (`ensure_ascii=True`,
 * `allow_nan=False`, separators "," and ":"): strs escaped as `_json.c`'s `ascii_escape_unichar`
 * does, ints as `int.__repr__`, floats as `float.__repr__`, dicts in insertion order, tuples as
 * arrays. It writes only what is made of exact dicts with exact str keys, lists, tuples, exact
 * strs, ints and finite floats, True, False and None, nested at most MAX_DEPTH deep; for
 * anything else (a subclass such as an IntEnum, a non-str key, NaN or an infinity, any other
 * type, deeper nesting) it returns NotImplemented, without an error, and `dumps` in
 * `report/json.py` hands the object to `_COMPACT.encode`, which writes it or raises as it always
 * did: what this module refuses behaves as before by construction. `tests/unit/test_compact_json.py`
 * compares the two (`test_c_sanitized.py` runs that comparison under AddressSanitizer and UBSan).
 *
 * No Python code runs during a call (no __repr__, __iter__ or __eq__ of a subclass: those are
 * refused), so the borrowed items of the dicts and lists cannot change under it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* Deeper documents go to the json module (which counts the depth against the recursion limit,
 * and raises RecursionError where Python would): reports nest six levels. */
#define MAX_DEPTH 200

/* What a writer returns: done, failed with an exception set (memory), or not ours to write. */
#define DONE 0
#define FAILED -1
#define REFUSED 1

/* A flow's line is ~1.6 KB and few pass 4 KB: most calls never touch the heap. */
#define STACK_SIZE 4096

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    int on_heap; /* buf was allocated here (else it is the caller's stack buffer) */
} Out;

static int grow(Out *out, Py_ssize_t need) {
    if (need > PY_SSIZE_T_MAX - out->len) {
        PyErr_NoMemory();
        return FAILED;
    }
    Py_ssize_t want = out->len + need;
    /* Doubling: a long document costs a few reallocations, not one per piece. */
    Py_ssize_t cap = out->cap <= PY_SSIZE_T_MAX / 2 ? out->cap * 2 : PY_SSIZE_T_MAX;
    if (cap < want) cap = want;
    char *bigger;
    if (out->on_heap) {
        bigger = PyMem_Realloc(out->buf, (size_t)cap);
    } else {
        bigger = PyMem_Malloc((size_t)cap);
        if (bigger != NULL) memcpy(bigger, out->buf, (size_t)out->len);
    }
    if (bigger == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    out->buf = bigger;
    out->cap = cap;
    out->on_heap = 1;
    return DONE;
}

/* Room for `need` more bytes. */
static inline int reserve(Out *out, Py_ssize_t need) {
    return need <= out->cap - out->len ? DONE : grow(out, need);
}

static inline int put_char(Out *out, char c) {
    if (reserve(out, 1) < 0) return FAILED;
    out->buf[out->len++] = c;
    return DONE;
}

static inline int put_bytes(Out *out, const char *p, Py_ssize_t n) {
    if (reserve(out, n) < 0) return FAILED;
    memcpy(out->buf + out->len, p, (size_t)n);
    out->len += n;
    return DONE;
}

/* -- strings ---------------------------------------------------------------------------------
 *
 * As `ascii_escape_unichar` of CPython's Modules/_json.c: printable ASCII (' ' to '~') but '"'
 * and '\\' as is; '"', '\\', \b, \f, \n, \r and \t as two characters; every other char below
 * U+10000 (control characters, DEL 0x7f, lone surrogates included) as \uXXXX, lowercase hex;
 * chars above U+FFFF as a UTF-16 surrogate pair \uXXXX\uXXXX. */

static const char HEX[] = "0123456789abcdef";

/* For each ASCII char: 0 written as is, else the letter after the backslash ('u': \u00XX). */
static unsigned char ESCAPE[128];

static void init_escapes(void) {
    for (int c = 0; c < 128; c++) ESCAPE[c] = (c < 0x20 || c == 0x7f) ? 'u' : 0;
    ESCAPE['"'] = '"';
    ESCAPE['\\'] = '\\';
    ESCAPE['\b'] = 'b';
    ESCAPE['\f'] = 'f';
    ESCAPE['\n'] = 'n';
    ESCAPE['\r'] = 'r';
    ESCAPE['\t'] = 't';
}

static inline char *put_u4(char *p, Py_UCS4 c) {
    p[0] = '\\';
    p[1] = 'u';
    p[2] = HEX[(c >> 12) & 0xf];
    p[3] = HEX[(c >> 8) & 0xf];
    p[4] = HEX[(c >> 4) & 0xf];
    p[5] = HEX[c & 0xf];
    return p + 6;
}

/* The escape of a char that needs one, at p (room for 12 bytes); returns the end. */
static char *put_escape(char *p, Py_UCS4 c) {
    if (c < 128 && ESCAPE[c] != 'u') {
        p[0] = '\\';
        p[1] = (char)ESCAPE[c];
        return p + 2;
    }
    if (c >= 0x10000) {
        p = put_u4(p, 0xD800 + ((c - 0x10000) >> 10));
        c = 0xDC00 + ((c - 0x10000) & 0x3FF);
    }
    return put_u4(p, c);
}

/* Room is reserved for every char still to be written as one byte, plus the closing quote; an
 * escape tops that up (at most 6 bytes for an ASCII or BMP char, 12 for a pair) so the plain
 * chars never check the room. */
static int put_str(Out *out, PyObject *s) {
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) return FAILED; /* a legacy str of the deprecated APIs */
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n > PY_SSIZE_T_MAX - 2) {
        PyErr_NoMemory();
        return FAILED;
    }
    if (reserve(out, n + 2) < 0) return FAILED;
    out->buf[out->len++] = '"';
    if (PyUnicode_IS_ASCII(s)) {
        /* Most strs of a report: runs of plain chars copied whole. */
        const unsigned char *src = PyUnicode_1BYTE_DATA(s);
        Py_ssize_t i = 0;
        for (;;) {
            Py_ssize_t start = i;
            while (i < n && !ESCAPE[src[i]]) i++;
            memcpy(out->buf + out->len, src + start, (size_t)(i - start));
            out->len += i - start;
            if (i == n) break;
            if (reserve(out, 6 + (n - i - 1) + 1) < 0) return FAILED;
            out->len = put_escape(out->buf + out->len, src[i]) - out->buf;
            i++;
        }
    } else {
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 128 && !ESCAPE[c]) {
                out->buf[out->len++] = (char)c;
                continue;
            }
            if (reserve(out, 12 + (n - i - 1) + 1) < 0) return FAILED;
            out->len = put_escape(out->buf + out->len, c) - out->buf;
        }
    }
    out->buf[out->len++] = '"';
    return DONE;
}

/* -- numbers ---------------------------------------------------------------------------------*/

/* An exact int, as int.__repr__: digits written here when it fits in a long long (every int of
 * a report), through int's own repr otherwise. */
static int put_int(Out *out, PyObject *obj) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred()) return FAILED;
        char digits[24];
        char *end = digits + sizeof digits, *p = end;
        /* The magnitude in unsigned arithmetic: -LLONG_MIN does not fit in a long long. */
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v < 0) *--p = '-';
        return put_bytes(out, p, end - p);
    }
    PyObject *text = PyLong_Type.tp_repr(obj);
    if (text == NULL) {
        /* Beyond sys.get_int_max_str_digits() repr raises ValueError: json raises it too. */
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) return FAILED;
        PyErr_Clear();
        return REFUSED;
    }
    int rc = put_bytes(out, (const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
    Py_DECREF(text);
    return rc;
}

/* A finite float, as float.__repr__ (which is this very call). */
static int put_float(Out *out, PyObject *obj) {
    double x = PyFloat_AS_DOUBLE(obj);
    if (!isfinite(x)) return REFUSED; /* json raises ValueError (allow_nan=False) */
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return FAILED;
    }
    int rc = put_bytes(out, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

/* -- values ----------------------------------------------------------------------------------*/

static int put_value(Out *out, PyObject *obj, int depth);

static int put_dict(Out *out, PyObject *dict, int depth) {
    if (PyDict_GET_SIZE(dict) == 0) return put_bytes(out, "{}", 2);
    if (put_char(out, '{') < 0) return FAILED;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int first = 1;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) return REFUSED; /* json writes 1, 1.5, true as keys */
        if (!first && put_char(out, ',') < 0) return FAILED;
        first = 0;
        int rc = put_str(out, key);
        if (rc != DONE) return rc;
        if (put_char(out, ':') < 0) return FAILED;
        rc = put_value(out, value, depth);
        if (rc != DONE) return rc;
    }
    return put_char(out, '}');
}

static int put_array(Out *out, PyObject *const *items, Py_ssize_t n, int depth) {
    if (n == 0) return put_bytes(out, "[]", 2);
    if (put_char(out, '[') < 0) return FAILED;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && put_char(out, ',') < 0) return FAILED;
        int rc = put_value(out, items[i], depth);
        if (rc != DONE) return rc;
    }
    return put_char(out, ']');
}

/* `depth` counts the containers around obj. Exact types only: a subclass may change its
 * repr or iteration, which json honours for some and not others (an IntEnum is written as
 * its int's repr, a str subclass's __str__ ignored); json decides those. */
static int put_value(Out *out, PyObject *obj, int depth) {
    PyTypeObject *type = Py_TYPE(obj);
    if (type == &PyUnicode_Type) return put_str(out, obj);
    if (type == &PyLong_Type) return put_int(out, obj);
    if (obj == Py_None) return put_bytes(out, "null", 4);
    if (type == &PyFloat_Type) return put_float(out, obj);
    if (obj == Py_True) return put_bytes(out, "true", 4);
    if (obj == Py_False) return put_bytes(out, "false", 5);
    if (type != &PyDict_Type && type != &PyList_Type && type != &PyTuple_Type) return REFUSED;
    if (depth >= MAX_DEPTH) return REFUSED;
    if (type == &PyDict_Type) return put_dict(out, obj, depth + 1);
    if (type == &PyList_Type)
        return put_array(out, ((PyListObject *)obj)->ob_item, PyList_GET_SIZE(obj), depth + 1);
    return put_array(out, ((PyTupleObject *)obj)->ob_item, PyTuple_GET_SIZE(obj), depth + 1);
}

static PyObject *dumps(PyObject *module, PyObject *obj) {
    char stack[STACK_SIZE];
    Out out = {.buf = stack, .len = 0, .cap = STACK_SIZE, .on_heap = 0};
    PyObject *result = NULL;
    int rc = put_value(&out, obj, 0);
    if (rc == DONE) {
        /* ASCII only: a compact str of one byte a char, filled in place. */
        result = PyUnicode_New(out.len, 127);
        if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), out.buf, (size_t)out.len);
    } else if (rc == REFUSED) {
        result = Py_NotImplemented;
        Py_INCREF(result);
    }
    if (out.on_heap) PyMem_Free(out.buf);
    return result;
}

PyDoc_STRVAR(dumps_doc,
             "dumps(obj) -> str or NotImplemented\n\n"
             "json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(',', ':'))\n"
             ".encode(obj), for a document of exact dicts (str keys), lists, tuples, strs, ints,\n"
             "finite floats, True, False and None; NotImplemented for anything else.");

static PyMethodDef methods[] = {
    {"dumps", dumps, METH_O, dumps_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_compact",
    .m_doc = "Compact ASCII JSON of plain documents written in C (report/json.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__compact(void) {
    init_escapes();
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
