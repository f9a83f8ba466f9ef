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
#include <stdint.h>
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

/* Whether any of the 8 ASCII bytes in w needs an escape: below 0x20, '"', '\\' or DEL (0x7f).
 * (Bitwise, eight at a time: a report's strs are mostly long runs of plain chars. A borrow may
 * mark a byte above one that is below 0x20: the caller then looks byte by byte anyway.) */
static inline int any_escape(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t below = (w - ones * 0x20) & ~w;
    uint64_t zeros = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
    uint64_t del = w + ones; /* 0x7f + 1 alone reaches 0x80, without a carry out of its byte */
    return ((below | zeros | del) & highs) != 0;
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
            for (uint64_t w; i + 8 <= n; i += 8) {
                memcpy(&w, src + i, 8);
                if (any_escape(w)) break;
            }
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

/* -- floats: float.__repr__'s text without its big numbers ----------------------------------
 *
 * float.__repr__ is the shortest decimal that reads back as the same double (and of those, the
 * nearest to it), found by David Gay's dtoa with big-number arithmetic: ~6,400 instructions
 * for the 16-17 digits of a capture time (1790000000.0009742) or a round-trip time
 * (2.9802322387695312e-05), a fifth of the report's work. For the doubles of a report the
 * same search fits in 128-bit integers: `shortest` does it there, and hands every double it is
 * not sure of to PyOS_double_to_string (float.__repr__'s own call).
 *
 * A double x = m * 2^e (2^52 <= m < 2^53) reads back from any decimal strictly between its
 * midpoints to its neighbours, (2m - 1) * 2^(e-1) and (2m + 1) * 2^(e-1), and from a midpoint
 * itself when m is even (reading rounds half to even). In units of 2^(e-1) = 2^-s the
 * interval is [2m - 1, 2m + 1] around x = 2m; for a power of two, whose lower neighbour is
 * half as far, [4m - 1, 4m + 2] around 4m in units of 2^(e-2). A decimal c * 10^k is in it when
 * c * 10^k * 2^s is. The shortest decimal is the one at the largest k with such a c; of those
 * c the nearest to x, and of two equally near the even one (as dtoa rounds its last digit).
 * The slow path takes x of 2^53 or more (no fraction), subnormal x, and x below ~1e-6, whose
 * digits need more than 128 bits here. */
#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

static const unsigned long long POW10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL,
    10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
    1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
    10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

/* 10^n for 0 <= n <= 38. */
static u128 pow10_128(int n) {
    return n <= 19 ? (u128)POW10[n] : (u128)POW10[19] * POW10[n - 19];
}

/* floor(n * log10(2)) for |n| < 1650 (Ryu's constant), without shifting a negative number. */
static int floor_log10_pow2(int n) {
    return n >= 0 ? (int)(((long long)n * 78913) >> 18)
                  : -(int)((((long long)-n * 78913) + (1 << 18) - 1) >> 18);
}

/* Limits of the 128-bit arithmetic (see `level`): 10^-k times the interval's upper end
 * (below 2^55) and 10^k * 2^s below 2^128. */
#define MAX_NEG_K 22
#define MAX_S 120

typedef struct {
    unsigned long long low, mid, high; /* the interval and x, in units of 2^-s */
    int s;
    int inclusive; /* the ends read back as x (m even) */
} Halves;

/* The decimals c * 10^k that read back as x: c in [*lo, *hi] (none when *lo > *hi). */
static void level(const Halves *h, int k, u128 *lo, u128 *hi) {
    u128 low = h->low, high = h->high;
    if (k < 0) { /* c * 2^s against (2m -+ 1) * 10^-k */
        u128 p = pow10_128(-k), mask = ((u128)1 << h->s) - 1;
        low *= p;
        high *= p;
        *lo = (low >> h->s) + ((low & mask) != 0 || !h->inclusive);
        *hi = (high >> h->s) - ((high & mask) == 0 && !h->inclusive);
    } else { /* c * 10^k * 2^s against 2m -+ 1 */
        u128 d = pow10_128(k) << h->s;
        *lo = low / d + (low % d != 0 || !h->inclusive);
        *hi = high / d - (high % d == 0 && !h->inclusive);
    }
}

/* x's shortest decimal as digits * 10^*k, or 0 when the slow path must decide (see above). */
static unsigned long long shortest(double x, int *k) {
    unsigned long long bits;
    memcpy(&bits, &x, sizeof bits);
    unsigned long long fraction = bits & ((1ULL << 52) - 1);
    int biased = (int)((bits >> 52) & 0x7FF);
    if (biased == 0 || biased == 0x7FF) return 0;
    int e = biased - 1075; /* x = m * 2^e */
    unsigned long long m = fraction | (1ULL << 52);
    int power_of_two = fraction == 0 && biased > 1;
    Halves h = {.inclusive = !(m & 1)};
    if (power_of_two) {
        h.low = 4 * m - 1, h.mid = 4 * m, h.high = 4 * m + 2, h.s = 2 - e;
    } else {
        h.low = 2 * m - 1, h.mid = 2 * m, h.high = 2 * m + 1, h.s = 1 - e;
    }
    /* Below `low` there is a decimal (10^low is under the interval's width, at least 2^(e-1));
       at `high` none (10^high is above 5x). */
    int low = floor_log10_pow2(e - 1) - 1, high = floor_log10_pow2(e + 52) + 2;
    if (e >= 0 || h.s > MAX_S || -low > MAX_NEG_K - power_of_two) return 0;
    u128 lo, hi;
    /* Most doubles of a report need 16 or 17 digits, a level or two above `low`: look there
       first, in growing steps, then halve what is left. */
    for (int step = 1; low + step < high; step *= 2) {
        level(&h, low + step, &lo, &hi);
        if (lo > hi) {
            high = low + step;
            break;
        }
        low += step;
    }
    while (high - low > 1) {
        int mid = low + (high - low) / 2;
        level(&h, mid, &lo, &hi);
        if (lo <= hi)
            low = mid;
        else
            high = mid;
    }
    level(&h, low, &lo, &hi);
    /* The nearest: x / 10^low rounded, in the same units. */
    u128 c, rest, half;
    if (low < 0) {
        u128 scaled = (u128)h.mid * pow10_128(-low);
        c = scaled >> h.s;
        rest = scaled & (((u128)1 << h.s) - 1);
        half = (u128)1 << (h.s - 1);
    } else {
        u128 d = pow10_128(low) << h.s;
        c = h.mid / d;
        rest = h.mid % d;
        half = d / 2;
    }
    c += rest > half || (rest == half && (c & 1)); /* of two equally near, the even one */
    if (c < lo || c > hi || c >= POW10[17]) return 0;
    *k = low;
    return (unsigned long long)c;
}

/* float.__repr__'s text of `digits` * 10^k (PyOS_double_to_string's 'r' format): positional
 * for a decimal point at -4 < point <= 16, else d.ddde+XX; into buf (>= 32 bytes). */
static Py_ssize_t format_shortest(char *buf, int negative, unsigned long long digits, int k) {
    char d[20];
    int n = 0;
    char *p = d + sizeof d;
    do {
        *--p = (char)('0' + digits % 10);
        digits /= 10;
        n++;
    } while (digits);
    int point = n + k; /* where the decimal point goes, counted from the first digit */
    char *w = buf;
    if (negative) *w++ = '-';
    if (point <= -4 || point > 16) {
        *w++ = p[0];
        if (n > 1) {
            *w++ = '.';
            memcpy(w, p + 1, (size_t)(n - 1));
            w += n - 1;
        }
        int exp = point - 1;
        *w++ = 'e';
        *w++ = exp < 0 ? '-' : '+';
        if (exp < 0) exp = -exp;
        if (exp >= 100) *w++ = (char)('0' + exp / 100);
        *w++ = (char)('0' + exp / 10 % 10);
        *w++ = (char)('0' + exp % 10);
    } else if (point <= 0) {
        *w++ = '0';
        *w++ = '.';
        for (int i = 0; i < -point; i++) *w++ = '0';
        memcpy(w, p, (size_t)n);
        w += n;
    } else if (point >= n) {
        memcpy(w, p, (size_t)n);
        w += n;
        for (int i = 0; i < point - n; i++) *w++ = '0';
        *w++ = '.';
        *w++ = '0';
    } else {
        memcpy(w, p, (size_t)point);
        w += point;
        *w++ = '.';
        memcpy(w, p + point, (size_t)(n - point));
        w += n - point;
    }
    return w - buf;
}
#endif

/* A finite float, as float.__repr__. */
static int put_float(Out *out, PyObject *obj) {
    double x = PyFloat_AS_DOUBLE(obj);
    if (!isfinite(x)) return REFUSED; /* json raises ValueError (allow_nan=False) */
    if (x == 0) return signbit(x) ? put_bytes(out, "-0.0", 4) : put_bytes(out, "0.0", 3);
#ifdef __SIZEOF_INT128__
    int k;
    unsigned long long digits = shortest(fabs(x), &k);
    if (digits) {
        char text[32];
        return put_bytes(out, text, format_shortest(text, x < 0, digits, k));
    }
#endif
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
