/* tcpdiag.flow._rows: a flow's packed timeline rows in C: writing a row (per packet), and the
 * capture-duplicate check over a flow's rows (per flow; see its own comment below).
 *
 * Why: every packet of every flow adds a row to its flow's timeline (`Flow._keep_row`), packed
 * as `struct.Struct("<qdBHIIII")`: frame, time, direction, flags, seq, ack, length, window.
 * Through `struct` that is a method call that parses a format, converts eight objects, builds a
 * bytes object and appends it to the flow's bytearray: ~1,600 instructions a packet compiled
 * with mypyc, a tenth of the whole per-packet path. Here the writer takes the Segment and the
 * direction, and its seven values go straight from the tuple into the bytearray.
 *
 * The bytes written are exactly `struct.pack("<qdBHIIII", ...)`'s, and a value out of a
 * field's range raises as `struct.pack` would (struct.error); `flow/rows.py` holds the
 * `struct` version used when this module is not built (or with TCPDIAG_PURE=1), and
 * `tests/unit/test_rows.py` compares the two (both functions; `test_c_sanitized.py` runs that
 * comparison under AddressSanitizer and UBSan).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ROW_SIZE 40

static PyObject *struct_error = NULL; /* struct.error, so both versions raise the same */

/* Little-endian fields of 2, 4 and 8 bytes. On a little-endian host each is one store (a
 * byte-at-a-time loop costs ~250 instructions a row: every packet writes one). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PUT_LE(type, p, value)              \
    do {                                    \
        type v_ = (type)(value);            \
        memcpy((p), &v_, sizeof v_);        \
    } while (0)
#else
#define PUT_LE(type, p, value)                                                     \
    do {                                                                           \
        uint64_t v_ = (uint64_t)(value);                                           \
        for (size_t i_ = 0; i_ < sizeof(type); i_++) (p)[i_] = (unsigned char)(v_ >> (8 * i_)); \
    } while (0)
#endif

/* An integer field: a Python int within [low, high]; -1 with struct.error set otherwise.
 * PyLong_AsLongLongAndOverflow: CPython's other converters take a slow generic path for the
 * two-digit ints that sequence numbers are. */
static inline int int_field(PyObject *obj, long long low, long long high, long long *out) {
    if (!PyLong_Check(obj)) {
        PyErr_SetString(struct_error, "required argument is not an integer");
        return -1;
    }
    long long value;
    int overflow = 0;
#if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    /* CPython 3.11's int layout: sign in ob_size, 30-bit digits. Every row value is a
     * non-negative int of at most two digits but the frame's; read those in place. */
    Py_ssize_t digits = Py_SIZE(obj);
    if (PyLong_CheckExact(obj) && digits >= 0 && digits <= 2) {
        const digit *d = ((PyLongObject *)obj)->ob_digit;
        value = digits == 0 ? 0 : (long long)d[0];
        if (digits == 2) value |= (long long)d[1] << PyLong_SHIFT;
    } else
#endif
        value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (overflow || value < low || value > high) {
        PyErr_SetString(struct_error, "timeline row value out of range");
        return -1;
    }
    *out = value;
    return 0;
}

/* values: frame, time, direction, flags, seq, ack, length, window, IP ID, TTL; and the SACK
 * edge (0-0xFFFF) -> row[ROW_SIZE] */
static int pack(PyObject *const *values, long long sack_edge, unsigned char *row) {
    long long frame, direction, flags, seq, ack, length, window, ip_id, ttl;
    if (int_field(values[0], LLONG_MIN, LLONG_MAX, &frame) < 0) return -1;
    double time = PyFloat_AsDouble(values[1]);
    if (time == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(struct_error, "required argument is not a float");
        return -1;
    }
    if (int_field(values[2], 0, 0xFF, &direction) < 0 || int_field(values[3], 0, 0xFFFF, &flags) < 0 ||
        int_field(values[4], 0, 0xFFFFFFFFLL, &seq) < 0 ||
        int_field(values[5], 0, 0xFFFFFFFFLL, &ack) < 0 ||
        int_field(values[6], 0, 0xFFFFFFFFLL, &length) < 0 ||
        int_field(values[7], 0, 0xFFFFFFFFLL, &window) < 0 ||
        int_field(values[8], 0, 0xFFFF, &ip_id) < 0 || int_field(values[9], 0, 0xFF, &ttl) < 0)
        return -1;
    uint64_t time_bits;
    memcpy(&time_bits, &time, 8);
    PUT_LE(uint64_t, row, frame);
    PUT_LE(uint64_t, row + 8, time_bits);
    row[16] = (unsigned char)direction;
    PUT_LE(uint16_t, row + 17, flags);
    PUT_LE(uint32_t, row + 19, seq);
    PUT_LE(uint32_t, row + 23, ack);
    PUT_LE(uint32_t, row + 27, length);
    PUT_LE(uint32_t, row + 31, window);
    PUT_LE(uint16_t, row + 35, ip_id);
    PUT_LE(uint16_t, row + 37, sack_edge);
    row[39] = (unsigned char)ttl;
    return 0;
}

/* `rows.sack_edge(options)` into *edge: the low 16 bits of the right edge of the first SACK
 * block of a TcpOptions, else 0; -1 with an error set. The decoders' options (a tuple whose
 * SACK field is a tuple of int pairs) are read in place, no object made; anything else the
 * generic way, so that the errors are Python's. */
static int sack_edge_value(PyObject *options, long long *edge) {
    *edge = 0;
    if (PyTuple_Check(options) && PyTuple_GET_SIZE(options) >= 4) {
        PyObject *sack = PyTuple_GET_ITEM(options, 3);
        if (PyTuple_Check(sack) && PyTuple_GET_SIZE(sack) == 0) return 0;
        if (PyTuple_Check(sack)) {
            PyObject *first = PyTuple_GET_ITEM(sack, 0);
            if (PyTuple_Check(first) && PyTuple_GET_SIZE(first) == 2) {
                PyObject *right = PyTuple_GET_ITEM(first, 1);
                if (PyLong_CheckExact(right)) {
                    /* (the two's complement low bits, as Python's `& 0xFFFF` of any int) */
                    unsigned long bits = PyLong_AsUnsignedLongMask(right);
                    if (bits == (unsigned long)-1 && PyErr_Occurred()) return -1;
                    *edge = (long long)(bits & 0xFFFF);
                    return 0;
                }
            }
        }
    }
    PyObject *sack = PySequence_GetItem(options, 3);
    if (sack == NULL) return -1;
    int truth = PyObject_IsTrue(sack);
    if (truth <= 0) {
        Py_DECREF(sack);
        return truth;
    }
    PyObject *first = PySequence_GetItem(sack, 0);
    Py_DECREF(sack);
    if (first == NULL) return -1;
    PyObject *right = PySequence_GetItem(first, 1);
    Py_DECREF(first);
    if (right == NULL) return -1;
    PyObject *mask = PyLong_FromLong(0xFFFF);
    PyObject *masked = mask == NULL ? NULL : PyNumber_And(right, mask);
    Py_XDECREF(mask);
    Py_DECREF(right);
    if (masked == NULL) return -1;
    int rc = int_field(masked, 0, 0xFFFF, edge);
    Py_DECREF(masked);
    return rc;
}

/* The row values of `segment` (a Segment: frame, time, seq, ack, flags, window, length, options,
 * TTL, IP ID at its fields 0, 1, 7, 8, 9, 10, 11, 13, 14, 16) sent in `direction`, in the row's
 * order, into values[10] (borrowed references; the caller reads the SACK edge of the options);
 * -1 with TypeError set when `segment` is not such a tuple. */
static int segment_values(PyObject *segment, PyObject *direction, PyObject **values) {
    if (!PyTuple_Check(segment) || PyTuple_GET_SIZE(segment) < 17) {
        PyErr_SetString(PyExc_TypeError, "a row needs a Segment");
        return -1;
    }
    values[0] = PyTuple_GET_ITEM(segment, 0);  /* frame */
    values[1] = PyTuple_GET_ITEM(segment, 1);  /* time */
    values[2] = direction;
    values[3] = PyTuple_GET_ITEM(segment, 9);  /* flags */
    values[4] = PyTuple_GET_ITEM(segment, 7);  /* seq */
    values[5] = PyTuple_GET_ITEM(segment, 8);  /* ack */
    values[6] = PyTuple_GET_ITEM(segment, 11); /* length */
    values[7] = PyTuple_GET_ITEM(segment, 10); /* window */
    values[8] = PyTuple_GET_ITEM(segment, 16); /* IP ID */
    values[9] = PyTuple_GET_ITEM(segment, 14); /* TTL */
    return 0;
}

/* The row of `segment` sent in `direction` into row[ROW_SIZE]; -1 with an error set. */
static int segment_row(PyObject *segment, PyObject *direction, unsigned char *row) {
    PyObject *values[10];
    long long edge;
    if (segment_values(segment, direction, values) < 0) return -1;
    if (sack_edge_value(PyTuple_GET_ITEM(segment, 13), &edge) < 0) return -1;
    return pack(values, edge, row);
}

static PyObject *append_row(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyByteArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "append_row(bytearray, segment, direction)");
        return NULL;
    }
    unsigned char row[ROW_SIZE];
    if (segment_row(args[1], args[2], row) < 0) return NULL;
    PyObject *buf = args[0];
    Py_ssize_t size = PyByteArray_GET_SIZE(buf);
    /* bytearray's own growth (1/8 over) keeps a flow's rows near their size, which matters
     * more than the reallocations: thousands of flows hold a timeline at once. */
    if (PyByteArray_Resize(buf, size + ROW_SIZE) < 0) return NULL;
    memcpy(PyByteArray_AS_STRING(buf) + size, row, ROW_SIZE);
    Py_RETURN_NONE;
}

/* The row into slot `slot` of a ring of rows: the slot, not its byte offset, so that a compiled
 * caller passes a small int (CPython's cached objects) instead of a new int object per packet. */
static PyObject *put_slot(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyByteArray_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "put_slot(bytearray, slot, segment, direction)");
        return NULL;
    }
    Py_ssize_t slot = PyLong_AsSsize_t(args[1]);
    if (slot == -1 && PyErr_Occurred()) return NULL;
    PyObject *buf = args[0];
    if (slot < 0 || slot >= PyByteArray_GET_SIZE(buf) / ROW_SIZE) {
        PyErr_SetString(struct_error, "slot out of range for a row");
        return NULL;
    }
    unsigned char row[ROW_SIZE];
    if (segment_row(args[2], args[3], row) < 0) return NULL;
    memcpy(PyByteArray_AS_STRING(buf) + slot * ROW_SIZE, row, ROW_SIZE);
    Py_RETURN_NONE;
}

/* Append the `n` bytes at `p` to the bytearray `buf`; None, or NULL with an error set. */
static PyObject *append_bytes(PyObject *buf, const void *p, Py_ssize_t n) {
    Py_ssize_t size = PyByteArray_GET_SIZE(buf);
    if (PyByteArray_Resize(buf, size + n) < 0) return NULL;
    memcpy(PyByteArray_AS_STRING(buf) + size, p, (size_t)n);
    Py_RETURN_NONE;
}

/* A flow's RTT samples, doubles in native byte order in a bytearray: appending one to an
 * `array('d')` parsed the float with PyArg_Parse behind a method call, ~700 instructions for
 * what is a store of eight bytes (a flow takes a sample for most of its ACKs). */
static PyObject *append_double(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyByteArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "append_double(bytearray, float)");
        return NULL;
    }
    double value = PyFloat_AsDouble(args[1]);
    if (value == -1.0 && PyErr_Occurred()) return NULL;
    return append_bytes(args[0], &value, (Py_ssize_t)sizeof value);
}

/* The frames of a TLS stream's first record labels, 64-bit ints in native byte order in a
 * bytearray, for the same reason (`array('q').append` parses the int with PyArg_Parse). */
static PyObject *append_int64(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyByteArray_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "append_int64(bytearray, int)");
        return NULL;
    }
    long long value = PyLong_AsLongLong(args[1]);
    if (value == -1 && PyErr_Occurred()) return NULL;
    return append_bytes(args[0], &value, (Py_ssize_t)sizeof value);
}

/* -- the median of a flow's RTT samples (Flow.rtt) ------------------------------------------
 *
 * The doubles `append_double` wrote, ordered, then the middle one, or (a + b) / 2 of the middle
 * two: `rows.median`'s arithmetic over the same values. In Python that is a float object per
 * sample and a sort of them, ~6,800 instructions for a flow of ~25 samples, and every flow with
 * an RTT sample asks once. Samples are ordered by value, then by position, as Python's stable
 * sort leaves them: -0.0 and 0.0 compare equal, and which one is chosen shows in the sign. A
 * NaN sample makes Python's order depend on its sort's steps: None, and the caller sorts in
 * Python. */

typedef struct {
    double value;
    Py_ssize_t at;
} Sample;

static int by_value_then_position(const void *a, const void *b) {
    const Sample *x = a, *y = b;
    if (x->value < y->value) return -1;
    if (x->value > y->value) return 1;
    return (x->at > y->at) - (x->at < y->at);
}

/* Up to this many samples (most flows have fewer) live on the stack, not in an allocation. */
#define FEW_SAMPLES 64

/* `by_value_then_position`, inline: equal values (0.0 and -0.0 among them) in position order. */
static inline int before(const Sample *x, const Sample *y) {
    return x->value < y->value || (x->value == y->value && x->at < y->at);
}

static inline void swap_samples(Sample *a, Sample *b) {
    Sample t = *a;
    *a = *b;
    *b = t;
}

/* Put the sample of rank k (in the order of `by_value_then_position`, a total order) at
   samples[k], smaller ones before it, larger after: quickselect, ~3n comparisons where sorting
   took n log n calls of a comparison function (a flow keeps up to 4,096 RTT samples). A run of
   bad pivots hands the range to qsort, so a crafted capture cannot make it quadratic. */
static void select_rank(Sample *samples, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = n - 1;
    int budget = 64;
    while (hi > lo) {
        if (--budget == 0) {
            qsort(samples + lo, (size_t)(hi - lo + 1), sizeof(Sample), by_value_then_position);
            return;
        }
        /* median of three as the pivot, left at samples[hi] */
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (before(&samples[mid], &samples[lo])) swap_samples(&samples[mid], &samples[lo]);
        if (before(&samples[hi], &samples[lo])) swap_samples(&samples[hi], &samples[lo]);
        if (before(&samples[mid], &samples[hi])) swap_samples(&samples[mid], &samples[hi]);
        Sample pivot = samples[hi];
        Py_ssize_t store = lo;
        for (Py_ssize_t i = lo; i < hi; i++) {
            if (before(&samples[i], &pivot)) swap_samples(&samples[i], &samples[store++]);
        }
        swap_samples(&samples[store], &samples[hi]);
        if (store == k) return;
        if (store < k)
            lo = store + 1;
        else
            hi = store - 1;
    }
}

static PyObject *median_double(PyObject *module, PyObject *buf) {
    if (!PyByteArray_Check(buf)) {
        PyErr_SetString(PyExc_TypeError, "median_double(bytearray)");
        return NULL;
    }
    Py_ssize_t size = PyByteArray_GET_SIZE(buf);
    if (size == 0 || size % (Py_ssize_t)sizeof(double) != 0) {
        PyErr_SetString(PyExc_ValueError, "median_double: no whole doubles");
        return NULL;
    }
    Py_ssize_t n = size / (Py_ssize_t)sizeof(double);
    Sample few[FEW_SAMPLES];  /* most flows: no allocation */
    Sample *samples = n <= FEW_SAMPLES ? few : PyMem_Malloc((size_t)n * sizeof(Sample));
    if (samples == NULL) return PyErr_NoMemory();
    const char *bytes = PyByteArray_AS_STRING(buf);
    for (Py_ssize_t i = 0; i < n; i++) {
        double value;
        memcpy(&value, bytes + i * (Py_ssize_t)sizeof(double), sizeof value);
        if (isnan(value)) {
            if (samples != few) PyMem_Free(samples);
            Py_RETURN_NONE;
        }
        samples[i].value = value;
        samples[i].at = i;
    }
    Py_ssize_t mid = n / 2;
    select_rank(samples, n, mid);
    double median = samples[mid].value;
    if (n % 2 == 0) {
        /* the one before it: the largest of the smaller ones */
        Py_ssize_t below = 0;
        for (Py_ssize_t i = 1; i < mid; i++)
            if (before(&samples[below], &samples[i])) below = i;
        median = (samples[below].value + median) / 2;
    }
    if (samples != few) PyMem_Free(samples);
    return PyFloat_FromDouble(median);
}

/* -- the capture-duplicate check over packed rows (tcp_rules._capture_duplicates) ---------
 *
 * A row's key is its bytes from the direction on but the TTL (direction, flags, seq, ack,
 * length, window, IP ID, SACK edge)
 * with the ACK number zeroed where the row shows none (no ACK flag, or the peer's first
 * sequence number unknown): `flow.timeline_repeats`. See `rows.capture_duplicates` for the
 * rule; this is the same computation over the same bytes, in the same double arithmetic. */

#define KEY_AT 16
#define KEY_SIZE (ROW_SIZE - 1 - KEY_AT) /* not the TTL, last */
#define ACK_FLAG 0x10

typedef struct {
    unsigned char key[KEY_SIZE];
    double time; /* the latest time this key was seen */
    int used;
} SeenSlot;

typedef struct {
    long long bucket;
    Py_ssize_t count;
    int senders; /* bit 0: client, bit 1: server */
    int used;
} BucketSlot;

static size_t table_size(Py_ssize_t n) {
    size_t size = 16;
    while (size < (size_t)n * 2) size <<= 1;
    return size;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static BucketSlot *find_bucket(BucketSlot *slots, size_t size, long long bucket) {
    uint64_t h = (uint64_t)bucket * 0x9E3779B97F4A7C15ULL;
    size_t i = (size_t)(h >> 17) & (size - 1);
    while (slots[i].used && slots[i].bucket != bucket) i = (i + 1) & (size - 1);
    return &slots[i];
}

/* One row as the check reads it: frame, time, sender (0 client, 1 server) and its key. */
static void read_row(const unsigned char *row, const int base_known[2], int64_t *frame,
                     double *time, int *sender, unsigned char key[KEY_SIZE]) {
    uint64_t f = 0, bits = 0;
    for (int i = 7; i >= 0; i--) f = (f << 8) | row[i];
    for (int i = 15; i >= 8; i--) bits = (bits << 8) | row[i];
    *frame = (int64_t)f;
    memcpy(time, &bits, 8);
    *sender = row[KEY_AT] ? 1 : 0;
    memcpy(key, row + KEY_AT, KEY_SIZE);
    if (!((key[1] & ACK_FLAG) && base_known[1 - *sender])) memset(key + 7, 0, 4);
}

/* What the walk made of a row: nothing, a copy of its side's previous packet, or a repeat of
 * an earlier packet at a time offset (in buckets of `resolution`). */
#define ROW_PLAIN 0
#define ROW_COPY 1
#define ROW_REPEAT 2

typedef struct {
    int64_t frame;
    long long bucket; /* ROW_REPEAT only */
    int kind;
} RowFate;

static int append_frame(PyObject *list, int64_t frame) {
    PyObject *item = PyLong_FromLongLong(frame);
    if (item == NULL) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *capture_duplicates(PyObject *module, PyObject *args) {
    Py_buffer packed;
    int client_base, server_base;
    double window, resolution;
    Py_ssize_t min_replayed;
    if (!PyArg_ParseTuple(args, "y*ppddn:capture_duplicates", &packed, &client_base,
                          &server_base, &window, &resolution, &min_replayed))
        return NULL;
    const unsigned char *buf = packed.buf;
    Py_ssize_t n = packed.len / ROW_SIZE;
    PyObject *dups = NULL, *delay = NULL, *result = NULL;
    size_t seen_size = table_size(n), bucket_size = table_size(n);
    SeenSlot *seen = PyMem_Calloc(seen_size, sizeof(SeenSlot));
    BucketSlot *buckets = PyMem_Calloc(bucket_size, sizeof(BucketSlot));
    RowFate *fates = PyMem_Calloc((size_t)n + 1, sizeof(RowFate));
    /* distinct buckets in order of first appearance, for max()'s first-wins tie rule */
    long long *order = PyMem_Calloc((size_t)n + 1, sizeof(long long));
    dups = PyList_New(0);
    if (seen == NULL || buckets == NULL || fates == NULL || order == NULL || dups == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t distinct = 0;
    unsigned char last_key[2][KEY_SIZE];
    int have_last[2] = {0, 0};
    double last_time[2] = {0.0, 0.0};
    const int base_known[2] = {client_base, server_base};
    for (Py_ssize_t r = 0; r < n; r++) {
        RowFate *fate = &fates[r];
        double time;
        int sender;
        unsigned char key[KEY_SIZE];
        read_row(buf + r * ROW_SIZE, base_known, &fate->frame, &time, &sender, key);
        size_t i = (size_t)hash_bytes(key, KEY_SIZE) & (seen_size - 1);
        while (seen[i].used && memcmp(seen[i].key, key, KEY_SIZE) != 0) i = (i + 1) & (seen_size - 1);
        if (have_last[sender] && memcmp(last_key[sender], key, KEY_SIZE) == 0 &&
            time - last_time[sender] >= 0 && time - last_time[sender] < window) {
            fate->kind = ROW_COPY;
        } else if (seen[i].used) {
            double offset = nearbyint((time - seen[i].time) / resolution);
            if (!(offset > -9.0e18 && offset < 9.0e18)) { /* Python's int has no such limit */
                PyErr_SetString(PyExc_OverflowError, "replay offset out of range");
                goto done;
            }
            fate->kind = ROW_REPEAT;
            fate->bucket = (long long)offset;
            BucketSlot *slot = find_bucket(buckets, bucket_size, fate->bucket);
            if (!slot->used) {
                slot->used = 1;
                slot->bucket = fate->bucket;
                order[distinct++] = fate->bucket;
            }
            slot->count++;
            slot->senders |= 1 << sender;
        }
        seen[i].used = 1;
        memcpy(seen[i].key, key, KEY_SIZE);
        seen[i].time = time;
        memcpy(last_key[sender], key, KEY_SIZE);
        have_last[sender] = 1;
        last_time[sender] = time;
    }
    /* The most common offset (the first of equals) and its two neighbours: a replay when they
     * hold at least min_replayed repeats, from both sides. */
    int replayed = 0;
    long long best = 0;
    if (distinct > 0) {
        best = order[0];
        Py_ssize_t best_count = find_bucket(buckets, bucket_size, best)->count;
        for (Py_ssize_t k = 1; k < distinct; k++) {
            Py_ssize_t count = find_bucket(buckets, bucket_size, order[k])->count;
            if (count > best_count) {
                best = order[k];
                best_count = count;
            }
        }
        Py_ssize_t near = 0;
        int senders = 0;
        for (long long b = best - 1; b <= best + 1; b++) {
            BucketSlot *slot = find_bucket(buckets, bucket_size, b);
            if (slot->used) {
                near += slot->count;
                senders |= slot->senders;
            }
        }
        replayed = near >= min_replayed && senders == 3;
    }
    for (Py_ssize_t r = 0; r < n; r++) {
        const RowFate *fate = &fates[r];
        int copy = fate->kind == ROW_COPY ||
                   (replayed && fate->kind == ROW_REPEAT && fate->bucket >= best - 1 &&
                    fate->bucket <= best + 1);
        if (copy && append_frame(dups, fate->frame) < 0) goto done;
    }
    if (replayed) {
        delay = PyFloat_FromDouble((double)best * resolution);
    } else {
        delay = Py_None;
        Py_INCREF(delay);
    }
    if (delay == NULL) goto done;
    result = Py_BuildValue("(NN)", dups, delay); /* takes both, even when it fails */
    dups = NULL;
done:
    Py_XDECREF(dups);
    PyMem_Free(seen);
    PyMem_Free(buckets);
    PyMem_Free(fates);
    PyMem_Free(order);
    PyBuffer_Release(&packed);
    return result;
}

PyDoc_STRVAR(append_row_doc,
             "append_row(buf, segment, direction)\n\n"
             "Append the segment's row packed as struct '<qdBHIIII' to the bytearray buf.");
PyDoc_STRVAR(put_slot_doc,
             "put_slot(buf, slot, segment, direction)\n\n"
             "Write the segment's row packed as struct '<qdBHIIII' into row `slot` of buf.");

PyDoc_STRVAR(append_double_doc,
             "append_double(buf, value)\n\n"
             "Append the float value packed as struct '=d' to the bytearray buf.");

PyDoc_STRVAR(append_int64_doc,
             "append_int64(buf, value)\n\n"
             "Append the int value packed as struct '=q' to the bytearray buf.");

PyDoc_STRVAR(median_double_doc,
             "median_double(buf) -> float or None\n\n"
             "The median of the doubles packed as struct '=d' in the bytearray buf, as\n"
             "rows.median computes it; None when one of them is NaN.");

PyDoc_STRVAR(capture_duplicates_doc,
             "capture_duplicates(packed, client_base_known, server_base_known, window,\n"
             "                   resolution, min_replayed) -> (frames, delay or None)\n\n"
             "rows.capture_duplicates, in C.");

static PyMethodDef methods[] = {
    {"append_row", (PyCFunction)(void (*)(void))append_row, METH_FASTCALL, append_row_doc},
    {"put_slot", (PyCFunction)(void (*)(void))put_slot, METH_FASTCALL, put_slot_doc},
    {"append_double", (PyCFunction)(void (*)(void))append_double, METH_FASTCALL,
     append_double_doc},
    {"append_int64", (PyCFunction)(void (*)(void))append_int64, METH_FASTCALL, append_int64_doc},
    {"median_double", median_double, METH_O, median_double_doc},
    {"capture_duplicates", capture_duplicates, METH_VARARGS, capture_duplicates_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_rows",
    .m_doc = "Packed timeline rows written in C (flow/rows.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__rows(void) {
    PyObject *struct_module = PyImport_ImportModule("struct");
    if (struct_module == NULL) return NULL;
    struct_error = PyObject_GetAttrString(struct_module, "error");
    Py_DECREF(struct_module);
    if (struct_error == NULL) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "ROW_SIZE", ROW_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
