/* tcpdiag.decode._scan: pcap and pcapng records read and decoded to TCP segments in one C loop.
 *
 * Why: in Python, every packet costs a RawPacket tuple, a copy of its bytes, a Decoder call and
 * a Segment tuple (about 2 us of a packet's ~10 us, compiled with mypyc). Here one call walks
 * many records of the read buffer and builds, for each, the very objects the Python path would
 * build:
 *
 *   - a `Segment` for a TCP segment in the common case (Ethernet, Linux cooked v1/v2 or raw IP;
 *     an unfragmented IPv4 or extension-less IPv6 header; a well-formed TCP header and options),
 *     identical field for field to what `Decoder.decode` returns for it;
 *   - a `RawPacket` for every other record, which the caller decodes in Python, so every case
 *     that counts something in `DecodeStats` (other than `packets`, `tcp` and
 *     `snaplen_truncated`, which the caller adds from the counts returned here), every
 *     encapsulation and every malformed header keeps its one implementation, in Python.
 *
 * The walk stops, leaving the record unread, at a record header the Python reader must judge
 * (pcap: captured length above the snap length or the length on the wire, timestamp fraction
 * out of range; pcapng: any block but a well-framed enhanced packet block of a known interface
 * whose lengths agree), at a record not wholly in the buffer, at a record whose timestamp
 * reaches `stop_ns` (the caller's next flow-table expiry), or after `max_items` records. Every
 * read is bounds checked against the buffer and against the record's captured length: the
 * input is hostile.
 *
 * `decode/scan.py` drives it; `tests/unit/test_scan.py` compares it with the Python path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Why the walk stopped. */
#define STOP_NEED_DATA 0 /* the next record header or body is not wholly in the buffer */
#define STOP_ODD 1       /* the next record header needs the Python reader's judgement */
#define STOP_TIME 2      /* the next record's timestamp reaches stop_ns */
#define STOP_FULL 3      /* max_items records were read */

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define MAX_WSCALE 14

/* The fields of `model.Segment`, in its order (`decode/scan.py` uses this module only when the
   class has as many: a build older or newer than model.py is left unused). */
#define SEGMENT_FIELDS 17
/* The fields of a walk's result (`scan.Walked`): the same check for the walk. */
#define WALK_FIELDS 11

/* The model's record types and the shared empty options, set once by `configure`. */
static PyObject *raw_packet_type = NULL;
static PyObject *segment_type = NULL;
static PyObject *tcp_options_type = NULL;
static PyObject *no_options = NULL;

static inline uint32_t be16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t le32(const unsigned char *p) {
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* A NamedTuple instance holding `items` (new references; NULL for a failed allocation, whose
 * error is set): a tuple of the subclass, as `tuple.__new__(cls, items)` makes, except that it
 * is never in the cyclic collector's lists. A record holds only numbers, bytes and tuples of
 * numbers, and a tuple cannot change: it can never be part of a cycle (the collector untracks
 * such exact tuples itself, lazily, but not tuple subclasses). Making it untracked skips
 * linking it in, and its dealloc skips unlinking it from a list whose neighbours have long
 * gone cold in the cache. */
static PyObject *new_record(PyObject *type, PyObject **items, Py_ssize_t n) {
    /* (Four at a time, without a branch: one at a time was ~120 instructions a Segment.) */
    int failed = 0;
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4)
        failed |= (items[i] == NULL) | (items[i + 1] == NULL) | (items[i + 2] == NULL) |
                  (items[i + 3] == NULL);
    for (; i < n; i++) failed |= items[i] == NULL;
    PyTupleObject *record =
        failed ? NULL : PyObject_GC_NewVar(PyTupleObject, (PyTypeObject *)type, n);
    if (record == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    memcpy(record->ob_item, items, (size_t)n * sizeof(PyObject *));
    return (PyObject *)record;
}

/* Addresses repeat from packet to packet: the same few hosts, thousands of times. A small
   direct-mapped cache hands out the same bytes object for the same address, which saves an
   allocation per address and lets the flow table's lookups reuse the hash that bytes objects
   keep once computed. A slot holds a new reference; a miss replaces it. */
#define ADDRESS_SLOTS 1024
static PyObject *address_cache[ADDRESS_SLOTS];

static PyObject *address(const unsigned char *a, Py_ssize_t size) {
    uint32_t h = be32(a);
    if (size == 16) h ^= be32(a + 4) ^ be32(a + 8) ^ be32(a + 12);
    h ^= h >> 16;
    h *= 0x45d9f3bU;
    h ^= h >> 16;
    PyObject **slot = &address_cache[h & (ADDRESS_SLOTS - 1)];
    PyObject *cached = *slot;
    if (cached != NULL && PyBytes_GET_SIZE(cached) == size &&
        memcmp(PyBytes_AS_STRING(cached), a, (size_t)size) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *fresh = PyBytes_FromStringAndSize((const char *)a, size);
    if (fresh == NULL) return NULL;
    Py_INCREF(fresh);
    Py_XSETREF(*slot, fresh);
    return fresh;
}

/* The flow table's key of a segment's direction (`model.tuple_key`: source and destination
   address, then the two ports as in the TCP header), from a direct-mapped cache like the
   addresses': the packets of one direction of a flow get the same bytes object, whose hash
   CPython computes once and keeps, and which the table's dict then finds by identity. */
#define KEY_SLOTS 1024
static PyObject *key_cache[KEY_SLOTS];

/* The cache slot of one direction of a flow: the last word of each address (an IPv6 host's own
   bits) and the ports, mixed. This runs for every segment: a hash over all 36 bytes of an IPv6
   key cost more than the rest of making the key. */
static inline uint32_t direction_hash(const unsigned char *src, const unsigned char *dst,
                                      const unsigned char *ports, Py_ssize_t size) {
    uint32_t h = be32(src + size - 4) * 0x9E3779B1u ^ be32(dst + size - 4) ^
                 be32(ports) * 0x85EBCA77u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 16;
    return h;
}

static PyObject *tuple_key(const unsigned char *src, const unsigned char *dst,
                           const unsigned char *ports, Py_ssize_t size) {
    Py_ssize_t n = 2 * size + 4;
    PyObject **slot = &key_cache[direction_hash(src, dst, ports, size) & (KEY_SLOTS - 1)];
    PyObject *cached = *slot;
    if (cached != NULL && PyBytes_GET_SIZE(cached) == n) {
        const char *c = PyBytes_AS_STRING(cached);
        if (memcmp(c, src, (size_t)size) == 0 && memcmp(c + size, dst, (size_t)size) == 0 &&
            memcmp(c + 2 * size, ports, 4) == 0) {
            Py_INCREF(cached);
            return cached;
        }
    }
    PyObject *fresh = PyBytes_FromStringAndSize(NULL, n);
    if (fresh == NULL) return NULL;
    char *key = PyBytes_AS_STRING(fresh);
    memcpy(key, src, (size_t)size);
    memcpy(key + size, dst, (size_t)size);
    memcpy(key + 2 * size, ports, 4);
    Py_INCREF(fresh);
    Py_XSETREF(*slot, fresh);
    return fresh;
}

/* Ports, windows and payload lengths are 16-bit values, most of them above CPython's own cache
   of small ints (up to 256): a table of int objects for all 65,536, each made on first use,
   saves an allocation and a free per such field per packet. Ints are immutable, so sharing one
   object is invisible to the Python code. The table holds a reference to each object it made;
   it lives as long as the process (at most 64 Ki small objects). */
static PyObject *u16_cache[65536];

static PyObject *u16(long value) {
    if (value < 0 || value > 65535) return PyLong_FromLong(value);
    PyObject *cached = u16_cache[value];
    if (cached == NULL) {
        cached = PyLong_FromLong(value);
        if (cached == NULL) return NULL;
        u16_cache[value] = cached;
    }
    Py_INCREF(cached);
    return cached;
}

static PyObject *int_or_none(int present, long value) {
    if (!present) Py_RETURN_NONE;
    return u16(value);
}

/* Flow shards (`engine.shard_of`): a process that follows only the flows of shard `index` of
   `count` skips every other TCP segment here, before any object is made for it. A flow's bucket
   (`model.bucket_of`) is the CRC-32 (zlib's) of the canonical 4-tuple, lower (address, port)
   first, each port two bytes big endian, modulo FLOW_BUCKETS; its shard, the bucket modulo
   `count`. The same numbers as in Python, so a segment decoded in C and one decoded in Python
   land in the same shard. */
#define FLOW_BUCKETS 64u
/* Four tables: the CRC of a word of four bytes in one step ("slicing by 4"); the canonical
   4-tuple is 12 or 36 bytes, a multiple of four, and this runs for every record of the file. */
static uint32_t crc_tables[4][256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tables[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_tables[0][n];
        for (int t = 1; t < 4; t++) {
            c = crc_tables[0][c & 0xFF] ^ (c >> 8);
            crc_tables[t][n] = c;
        }
    }
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, Py_ssize_t n) {
    for (; n >= 4; n -= 4, p += 4) {
        crc ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        crc = crc_tables[3][crc & 0xFF] ^ crc_tables[2][(crc >> 8) & 0xFF] ^
              crc_tables[1][(crc >> 16) & 0xFF] ^ crc_tables[0][crc >> 24];
    }
    for (; n > 0; n--, p++) crc = crc_tables[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return crc;
}

/* The bucket of a segment between (src, sport) and (dst, dport), addresses of `size` bytes. */
static long long canonical_bucket(const unsigned char *src, uint32_t sport,
                                  const unsigned char *dst, uint32_t dport, Py_ssize_t size) {
    int order = memcmp(src, dst, (size_t)size);
    int src_first = order < 0 || (order == 0 && sport <= dport);
    const unsigned char *a = src_first ? src : dst, *b = src_first ? dst : src;
    uint32_t porta = src_first ? sport : dport, portb = src_first ? dport : sport;
    unsigned char key[36]; /* a, its port (big endian), b, its port */
    memcpy(key, a, (size_t)size);
    key[size] = (unsigned char)(porta >> 8);
    key[size + 1] = (unsigned char)porta;
    memcpy(key + size + 2, b, (size_t)size);
    key[2 * size + 2] = (unsigned char)(portb >> 8);
    key[2 * size + 3] = (unsigned char)portb;
    uint32_t crc = crc_update(0xFFFFFFFFu, key, 2 * size + 4);
    return (long long)((crc ^ 0xFFFFFFFFu) % FLOW_BUCKETS);
}

/* A flow's bucket from a direct-mapped cache of the last tuples seen, each in the order of its
   headers (source, destination, the TCP header's two ports), slotted as the flow keys are: the
   packets of a direction follow one another, and a hit compares the tuple's 12 or 36 bytes
   where the CRC-32 of the canonical tuple took ~125 instructions, for every record of the file
   in every worker of a sharded run. A slot holds the bytes it answers for, so a hit is the
   bucket `canonical_bucket` gives for those very bytes. */
#define BUCKET_SLOTS 4096
typedef struct {
    unsigned char tuple[36];
    unsigned char size; /* of an address: 4 or 16; 0 in an empty slot */
    unsigned char bucket;
} BucketSlot;
static BucketSlot bucket_cache[BUCKET_SLOTS];

static inline int same_tuple(const unsigned char *tuple, const unsigned char *src,
                             const unsigned char *dst, const unsigned char *ports,
                             Py_ssize_t size) {
    if (size == 4) { /* three words, compared as such */
        uint32_t a, b, c, x, y, z;
        memcpy(&a, tuple, 4);
        memcpy(&b, tuple + 4, 4);
        memcpy(&c, tuple + 8, 4);
        memcpy(&x, src, 4);
        memcpy(&y, dst, 4);
        memcpy(&z, ports, 4);
        return ((a ^ x) | (b ^ y) | (c ^ z)) == 0;
    }
    return memcmp(tuple, src, 16) == 0 && memcmp(tuple + 16, dst, 16) == 0 &&
           memcmp(tuple + 32, ports, 4) == 0;
}

static long long bucket_of_tuple(const unsigned char *src, const unsigned char *dst,
                                 const unsigned char *ports, Py_ssize_t size) {
    BucketSlot *slot = &bucket_cache[direction_hash(src, dst, ports, size) & (BUCKET_SLOTS - 1)];
    if (slot->size == size && same_tuple(slot->tuple, src, dst, ports, size)) return slot->bucket;
    long long bucket = canonical_bucket(src, be16(ports), dst, be16(ports + 2), size);
    memcpy(slot->tuple, src, (size_t)size);
    memcpy(slot->tuple + size, dst, (size_t)size);
    memcpy(slot->tuple + 2 * size, ports, 4);
    slot->size = (unsigned char)size;
    slot->bucket = (unsigned char)bucket;
    return bucket;
}

/* Which flows a walk keeps: all (count 1), or those of shard `index`. */
typedef struct {
    long long index, count;
} Shard;

/* The SACK blocks of an option of `size` bytes at p: a tuple of (left, right) tuples. */
static PyObject *sack_blocks(const unsigned char *p, Py_ssize_t size) {
    Py_ssize_t count = (size - 2) / 8;
    PyObject *blocks = PyTuple_New(count);
    if (blocks == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *q = p + 2 + 8 * i;
        PyObject *pair = Py_BuildValue("(kk)", (unsigned long)be32(q), (unsigned long)be32(q + 4));
        if (pair == NULL) {
            Py_DECREF(blocks);
            return NULL;
        }
        PyTuple_SET_ITEM(blocks, i, pair);
    }
    return blocks;
}

/* The options of a TCP header, read in place: what `options_object` turns into a TcpOptions. */
typedef struct {
    int have_mss, have_wscale, have_ts, sack_permitted;
    long mss, wscale;
    uint32_t ts_val, ts_ecr;
    const unsigned char *sack_at; /* the last SACK option wins, as in Python */
    Py_ssize_t sack_size;
} Options;

/* `decode.tcp.options` for data[p:end], read into `o`: 0, or 1 when the walk would count
   something (a malformed option, a clamped window scale): the caller then leaves the whole
   packet to Python. Makes no object, so a segment of another shard costs no allocation. */
static int read_options(const unsigned char *d, Py_ssize_t p, Py_ssize_t end, Options *o) {
    memset(o, 0, sizeof *o);
    while (p < end) {
        unsigned char kind = d[p];
        if (kind == 0) break;
        if (kind == 1) {
            p += 1;
            continue;
        }
        if (p + 1 >= end) return 1;
        Py_ssize_t size = d[p + 1];
        if (size < 2 || p + size > end) return 1;
        if (kind == 2 && size == 4) {
            o->have_mss = 1;
            o->mss = (long)be16(d + p + 2);
        } else if (kind == 3 && size == 3) {
            o->have_wscale = 1;
            o->wscale = d[p + 2];
            if (o->wscale > MAX_WSCALE) return 1;
        } else if (kind == 4 && size == 2) {
            o->sack_permitted = 1;
        } else if (kind == 5 && size >= 10 && (size - 2) % 8 == 0) {
            o->sack_at = d + p;
            o->sack_size = size;
        } else if (kind == 8 && size == 10) {
            o->have_ts = 1;
            o->ts_val = be32(d + p + 2);
            o->ts_ecr = be32(d + p + 6);
        }
        p += size;
    }
    return 0;
}

/* The TcpOptions of options read by `read_options`, or NULL with an error set. */
static PyObject *options_object(const Options *o) {
    PyObject *sack = o->sack_at != NULL ? sack_blocks(o->sack_at, o->sack_size) : PyTuple_New(0);
    PyObject *items[6] = {
        int_or_none(o->have_mss, o->mss),
        int_or_none(o->have_wscale, o->wscale),
        PyBool_FromLong(o->sack_permitted),
        sack,
        o->have_ts ? PyLong_FromUnsignedLong(o->ts_val) : (Py_INCREF(Py_None), Py_None),
        o->have_ts ? PyLong_FromUnsignedLong(o->ts_ecr) : (Py_INCREF(Py_None), Py_None),
    };
    return new_record(tcp_options_type, items, 6);
}

/* The option block of a data segment repeats from packet to packet: NOP, NOP and a timestamp
   whose values change once a millisecond or so, so a train of segments in one direction carries
   the same bytes (two thirds of the option blocks of the benchmarks' `mixed` capture equal one
   seen shortly before). A small direct-mapped cache keyed by the raw option bytes hands out the
   same `TcpOptions` for the same bytes, which saves the tuple, its two timestamp ints and
   freeing all three. A `TcpOptions` is immutable (a tuple of ints, bools, None and tuples), so
   sharing one object is invisible to the Python code. A slot holds a new reference; a miss
   replaces it. */
#define OPTIONS_SLOTS 1024
#define MAX_OPTIONS_LEN 40 /* a TCP header of 60 bytes */
typedef struct {
    Py_ssize_t size;
    unsigned char bytes[MAX_OPTIONS_LEN];
    PyObject *options;
} OptionsSlot;
static OptionsSlot options_cache[OPTIONS_SLOTS];

/* The TcpOptions of the option bytes `raw` (`size` of them), read into `o` by `read_options`;
   NULL with an error set when an allocation failed. */
static PyObject *cached_options(const unsigned char *raw, Py_ssize_t size, const Options *o) {
    if (size > MAX_OPTIONS_LEN) return options_object(o); /* (not in a valid TCP header) */
    uint32_t h = (uint32_t)size;
    if (size >= 8) {
        /* The first word and the last two (where a timestamp option's values are, in the
           usual NOP, NOP, timestamps block), mixed: a hash over every byte cost as much as the
           rest of the lookup, for every segment. */
        h ^= be32(raw) * 0xC2B2AE3Du ^ be32(raw + size - 8) * 0x9E3779B1u ^
             be32(raw + size - 4) * 0x85EBCA77u;
    } else {
        for (Py_ssize_t i = 0; i < size; i++) h = (h ^ raw[i]) * 16777619u; /* FNV-1a */
    }
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 16;
    OptionsSlot *slot = &options_cache[h & (OPTIONS_SLOTS - 1)];
    if (slot->options != NULL && slot->size == size && memcmp(slot->bytes, raw, (size_t)size) == 0) {
        Py_INCREF(slot->options);
        return slot->options;
    }
    PyObject *fresh = options_object(o);
    if (fresh == NULL) return NULL;
    Py_INCREF(fresh);
    Py_XSETREF(slot->options, fresh);
    slot->size = size;
    memcpy(slot->bytes, raw, (size_t)size);
    return fresh;
}

/* VLAN tag protocol identifiers (`decode/link.py` VLAN_TPIDS): 802.1Q, 802.1ad and the
 * pre-standard QinQ ones some switches still emit. */
static inline int vlan_tpid(uint32_t ethertype) {
    return ethertype == 0x8100 || ethertype == 0x88A8 || ethertype == 0x9100 || ethertype == 0x9200;
}

/* VLAN tags peeled here; a deeper stack goes to Python, which counts and limits layers. */
#define MAX_VLAN_TAGS 8

/* Where the IP header starts and which version it is, for the link types taken here; 0 for
 * anything else (left to Python: MPLS, PPPoE, ARP, short frames, a cut VLAN tag...).
 * `*tagged` is set to 1 when VLAN tags were peeled, as `link.ethernet_inner` counts them.
 * Trunk ports and mirror sessions tag most frames: left to Python, a tagged capture took 35%
 * longer in one process and 65% longer with two (each worker decoded every frame in Python,
 * those of the other's flows too). */
static int network_layer(long long linktype, const unsigned char *d, Py_ssize_t n, Py_ssize_t *off,
                         int *tagged) {
    uint32_t ethertype;
    if (linktype == 1) { /* Ethernet, untagged */
        if (n < 14) return 0;
        ethertype = be16(d + 12);
        *off = 14;
    } else if (linktype == 113) { /* Linux cooked v1 */
        if (n < 16) return 0;
        ethertype = be16(d + 14);
        *off = 16;
    } else if (linktype == 276) { /* Linux cooked v2 */
        if (n < 20) return 0;
        ethertype = be16(d);
        *off = 20;
    } else if (linktype == 228) { /* raw IPv4 */
        if (n < 1) return 0;
        *off = 0;
        return 4;
    } else if (linktype == 229) { /* raw IPv6 */
        if (n < 1) return 0;
        *off = 0;
        return 6;
    } else if (linktype == 101 || linktype == 12 || linktype == 14) { /* raw IP */
        if (n < 1) return 0;
        *off = 0;
        int version = d[0] >> 4;
        return version == 4 || version == 6 ? version : 0;
    } else if (linktype == 0 || linktype == 108) {
        /* BSD loopback (macOS lo0): a 4-byte address family, in either byte order (writers
           disagree; families are small, so the order that gives one is right). */
        if (n < 4) return 0;
        uint32_t family = le32(d);
        if (family > 0xFFFF) family = be32(d);
        *off = 4;
        if (family == 2) return 4;
        /* IPv6: OpenBSD/NetBSD 24, FreeBSD 28, Darwin 30, Linux 10 */
        if (family == 24 || family == 28 || family == 30 || family == 10) return 6;
        return 0;
    } else {
        return 0;
    }
    int tags = 0;
    while (vlan_tpid(ethertype)) {
        if (++tags > MAX_VLAN_TAGS || *off + 4 > n) return 0;
        ethertype = be16(d + *off + 2);
        *off += 4;
    }
    *tagged = tags > 0;
    if (ethertype == ETH_IPV4) return 4;
    if (ethertype == ETH_IPV6) return 6;
    return 0;
}

/* The Segment of one record, or NULL: with an error set when an allocation failed, without one
 * when the record is not of the common case (the caller then emits a RawPacket), or with
 * `*other` set for a well-formed IP packet of a protocol the analysis has no use for (UDP:
 * QUIC, DNS...), which Python would only count (`DecodeStats.non_tcp`). */
static PyObject *decode_segment(const unsigned char *d, Py_ssize_t n, Py_ssize_t orig_len,
                                Py_ssize_t frame, long long ts_ns, long long linktype, int *snap_cut,
                                int *tagged, int *other, const Shard *shard, int *skipped) {
    Py_ssize_t off = 0;
    int version = network_layer(linktype, d, n, &off, tagged);
    if (version == 0) return NULL;
    /* The frame's length on the wire bounds any IP length. */
    Py_ssize_t wire_len = orig_len > n ? orig_len : n;
    Py_ssize_t tcp_at, end, addr_len, src_at, dst_at;
    int ttl;
    long ip_id = 0; /* IPv6 has no Identification field */
    if (version == 4) {
        if (n - off < 20) return NULL;
        const unsigned char *ip = d + off;
        int vihl = ip[0];
        Py_ssize_t ihl = (Py_ssize_t)(vihl & 15) << 2;
        Py_ssize_t total = be16(ip + 2);
        if (vihl >> 4 != 4 || ihl < 20 || (total && total < ihl)) return NULL;
        end = total ? off + total : wire_len;
        if (end > wire_len) return NULL;
        if (be16(ip + 6) & 0x3FFF) return NULL; /* a fragment */
        if (ip[9] != 6) {
            /* ICMP may quote a TCP header (an error): Python reads it. */
            *other = ip[9] != 1;
            return NULL;
        }
        ttl = ip[8];
        ip_id = (long)be16(ip + 4);
        addr_len = 4;
        src_at = off + 12;
        dst_at = off + 16;
        tcp_at = off + ihl;
    } else {
        if (n - off < 40) return NULL;
        const unsigned char *ip = d + off;
        if (ip[0] >> 4 != 6) return NULL;
        Py_ssize_t plen = be16(ip + 4);
        Py_ssize_t p = off + 40;
        end = plen ? p + plen : wire_len;
        if (end > wire_len) return NULL;
        if (ip[6] != 6) {
            /* UDP counted here; extension headers, ICMPv6 and the rest read by Python. */
            *other = ip[6] == 17;
            return NULL;
        }
        ttl = ip[7];
        addr_len = 16;
        src_at = off + 8;
        dst_at = off + 24;
        tcp_at = p;
    }
    /* decode.tcp.segment */
    if (end - tcp_at < 20 || n - tcp_at < 20) return NULL;
    const unsigned char *t = d + tcp_at;
    Py_ssize_t hlen = (Py_ssize_t)(t[12] >> 4) << 2;
    if (hlen < 20 || tcp_at + hlen > end) return NULL;
    Py_ssize_t p = tcp_at + hlen;
    if (p > n) return NULL;
    Options options;
    if (hlen > 20 && read_options(d, tcp_at + 20, p, &options)) return NULL; /* to Python */
    Py_ssize_t payload_end = end < n ? end : n;
    Py_ssize_t length = end - p;
    if (payload_end - p < length) *snap_cut = 1;
    /* (after the options: a segment they send to Python is decoded there, where its counters
       are, whatever its shard) */
    if (shard->count > 1 &&
        bucket_of_tuple(d + src_at, d + dst_at, t, addr_len) % shard->count != shard->index) {
        *skipped = 1;
        return NULL;
    }
    PyObject *opts;
    if (hlen == 20) {
        Py_INCREF(no_options);
        opts = no_options;
    } else {
        opts = cached_options(d + tcp_at + 20, hlen - 20, &options);
        if (opts == NULL) return NULL;
    }
    PyObject *items[SEGMENT_FIELDS] = {
        PyLong_FromSsize_t(frame),
        PyFloat_FromDouble((double)ts_ns / 1e9),
        PyLong_FromLong(version),
        address(d + src_at, addr_len),
        address(d + dst_at, addr_len),
        u16((long)be16(t)),
        u16((long)be16(t + 2)),
        PyLong_FromUnsignedLong(be32(t + 4)),
        PyLong_FromUnsignedLong(be32(t + 8)),
        PyLong_FromLong(t[13]),
        u16((long)be16(t + 14)),
        length <= 65535 ? u16((long)length) : PyLong_FromSsize_t(length),
        PyBytes_FromStringAndSize((const char *)d + p, payload_end - p),
        opts,
        PyLong_FromLong(ttl),
        tuple_key(d + src_at, d + dst_at, t, addr_len),
        u16(ip_id),
    };
    return new_record(segment_type, items, SEGMENT_FIELDS);
}

static PyObject *raw_packet(const unsigned char *d, Py_ssize_t caplen, Py_ssize_t orig_len,
                            Py_ssize_t frame, long long ts_ns, long long linktype, long interface) {
    PyObject *items[6] = {
        PyLong_FromSsize_t(frame),
        PyLong_FromLongLong(ts_ns),
        PyLong_FromLongLong(linktype),
        PyBytes_FromStringAndSize((const char *)d, caplen),
        PyLong_FromSsize_t(orig_len),
        PyLong_FromLong(interface),
    };
    return new_record(raw_packet_type, items, 6);
}

/* One walk over a buffer: what it reads, what it has read so far, and why it stopped. */
typedef struct {
    const unsigned char *buf;
    Py_ssize_t len;
    uint32_t (*u32)(const unsigned char *); /* the file's byte order */
    PyObject *items;
    Shard shard;          /* the flows kept (a segment of another shard is counted, not made) */
    Py_ssize_t records;   /* records read, items or skipped segments */
    Py_ssize_t segments;  /* Segments, made or skipped */
    Py_ssize_t snap_cuts; /* Segments whose payload the snap length cut */
    Py_ssize_t tagged;    /* Segments and others of VLAN-tagged frames (DecodeStats.vlan_tagged) */
    Py_ssize_t others;    /* IP packets of other protocols, counted, not made (DecodeStats.non_tcp) */
    long long first_ts, last_ts;
    int stop;          /* STOP_* */
    long long next_ts; /* with STOP_TIME: the timestamp that reached the stop time */
} Walk;

/* An empty walk over `view`; on failure (no memory) the view is released. */
static int walk_begin(Walk *walk, Py_buffer *view, int big_endian, long long shard_index,
                      long long shard_count) {
    walk->buf = (const unsigned char *)view->buf;
    walk->len = view->len;
    walk->u32 = big_endian ? be32 : le32;
    walk->items = PyList_New(0);
    walk->shard.index = shard_index;
    walk->shard.count = shard_count;
    walk->records = walk->segments = walk->snap_cuts = walk->tagged = walk->others = 0;
    walk->first_ts = walk->last_ts = 0;
    walk->stop = STOP_FULL;
    walk->next_ts = 0;
    if (walk->items != NULL) return 0;
    PyBuffer_Release(view);
    return -1;
}

/* Append the record's Segment, or its RawPacket when it is not of the common case; count a
   segment of another shard, and an IP packet of another protocol, without making anything.
   Left to Python, each UDP packet was a copy of the frame and a decode in every worker:
   ~1 us a packet, half the packets of a capture of today's traffic (QUIC). */
static int emit(Walk *walk, const unsigned char *data, Py_ssize_t caplen, Py_ssize_t orig_len,
                Py_ssize_t frame, long long ts_ns, long long linktype, long interface) {
    int snap_cut = 0, tagged = 0, other = 0, skipped = 0;
    PyObject *item = decode_segment(data, caplen, orig_len, frame, ts_ns, linktype, &snap_cut,
                                    &tagged, &other, &walk->shard, &skipped);
    if (item != NULL || skipped) {
        walk->segments++;
        walk->snap_cuts += snap_cut;
        walk->tagged += tagged;
    } else if (other && !PyErr_Occurred()) {
        walk->others++;
        walk->tagged += tagged;
    } else if (!PyErr_Occurred()) {
        item = raw_packet(data, caplen, orig_len, frame, ts_ns, linktype, interface);
    }
    if (item != NULL) {
        int failed = PyList_Append(walk->items, item);
        Py_DECREF(item);
        if (failed) return -1;
    } else if (!skipped && !other) {
        return -1;
    }
    if (++walk->records == 1) walk->first_ts = ts_ns;
    walk->last_ts = ts_ns;
    return 0;
}

static PyObject *walk_result(Walk *walk, Py_ssize_t pos, Py_ssize_t frame) {
    return Py_BuildValue("(NnniLnnLLnn)", walk->items, pos, frame, walk->stop, walk->next_ts,
                         walk->segments, walk->snap_cuts, walk->first_ts, walk->last_ts,
                         walk->tagged, walk->others);
}

/* A shard outside 0 <= index < count (count < 2^32, the hash's range): ValueError, the view
   released. */
static int bad_shard(Py_buffer *view, long long index, long long count) {
    if (count >= 1 && count <= (long long)FLOW_BUCKETS && index >= 0 && index < count) return 0;
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_ValueError, "scan: shard index or count out of range");
    return 1;
}

PyDoc_STRVAR(configure_doc,
             "configure(raw_packet, segment, tcp_options, no_options)\n\n"
             "The record types to build (tcpdiag.model's) and the shared empty TcpOptions.");

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *raw, *seg, *opts, *none_opts;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:configure", &PyType_Type, &raw, &PyType_Type, &seg,
                          &PyType_Type, &opts, &PyTuple_Type, &none_opts))
        return NULL;
    PyTypeObject *types[3] = {(PyTypeObject *)raw, (PyTypeObject *)seg, (PyTypeObject *)opts};
    for (int i = 0; i < 3; i++) {
        if (!PyType_IsSubtype(types[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, "configure: record types must be tuple subclasses");
            return NULL;
        }
    }
    Py_INCREF(raw);
    Py_XSETREF(raw_packet_type, raw);
    Py_INCREF(seg);
    Py_XSETREF(segment_type, seg);
    Py_INCREF(opts);
    Py_XSETREF(tcp_options_type, opts);
    Py_INCREF(none_opts);
    Py_XSETREF(no_options, none_opts);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(
    scan_doc,
    "scan(buf, pos, frame, stop_ns, header_len, big_endian, frac_mult, frac_limit, snaplen,\n"
    "     linktype, max_items, shard_index=0, shard_count=1)\n"
    "-> (items, pos, frame, stop, next_ts_ns, segments, snaplen_cut, first_ts_ns, last_ts_ns)\n\n"
    "Read the pcap records of buf from pos: `items` holds a Segment or a RawPacket per record,\n"
    "`pos` and `frame` where the walk stopped and the last frame number read, `stop` why it\n"
    "stopped (0 need data, 1 odd record header, 2 stop_ns reached, 3 max_items records),\n"
    "`next_ts_ns` the timestamp of the record that reached stop_ns, `segments` how many records\n"
    "are Segments, `snaplen_cut` how many of those the snap length cut, first/last_ts_ns those\n"
    "of the records (0 when there are none). A snaplen below 0 sends every record header to the\n"
    "Python reader. With shard_count > 1, a Segment whose flow is not of shard `shard_index`\n"
    "(engine.shard_of) is counted in `segments` (and `snaplen_cut`) but not made.");

static PyObject *scan(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, frame, header_len, max_items;
    long long stop_ns, snaplen, frac_limit, frac_mult;
    int big_endian;
    /* The pcap header's whole 32-bit link type field: with reserved bits set it can exceed a
       C int, and PcapReader keeps it as is (unknown link types go to the Python decoder). */
    long long linktype;
    long long shard_index = 0, shard_count = 1;
    if (!PyArg_ParseTuple(args, "y*nnLnpLLLLn|LL:scan", &view, &pos, &frame, &stop_ns,
                          &header_len, &big_endian, &frac_mult, &frac_limit, &snaplen, &linktype,
                          &max_items, &shard_index, &shard_count))
        return NULL;
    if (bad_shard(&view, shard_index, shard_count)) return NULL;
    if (segment_type == NULL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "scan: configure() was not called");
        return NULL;
    }
    if (pos < 0 || pos > view.len || header_len < 16) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "scan: position or header length out of range");
        return NULL;
    }
    Walk walk;
    if (walk_begin(&walk, &view, big_endian, shard_index, shard_count) < 0) return NULL;
    const unsigned char *buf = walk.buf;
    Py_ssize_t len = walk.len;
    uint32_t (*u32)(const unsigned char *) = walk.u32;
    while (walk.records < max_items) {
        if (len - pos < header_len) {
            walk.stop = STOP_NEED_DATA;
            break;
        }
        const unsigned char *h = buf + pos;
        long long sec = u32(h), frac = u32(h + 4), caplen = u32(h + 8), orig_len = u32(h + 12);
        if (caplen > snaplen || orig_len < caplen || frac >= frac_limit) {
            walk.stop = STOP_ODD;
            break;
        }
        if (len - pos - header_len < caplen) {
            walk.stop = STOP_NEED_DATA;
            break;
        }
        /* Below 2^63: sec < 2^32 and frac * frac_mult < 10^9. */
        long long ts_ns = sec * 1000000000LL + frac * frac_mult;
        if (ts_ns >= stop_ns) {
            walk.stop = STOP_TIME;
            walk.next_ts = ts_ns;
            break;
        }
        if (emit(&walk, h + header_len, (Py_ssize_t)caplen, (Py_ssize_t)orig_len, frame + 1, ts_ns,
                 linktype, 0) < 0) {
            Py_DECREF(walk.items);
            PyBuffer_Release(&view);
            return NULL;
        }
        pos += header_len + (Py_ssize_t)caplen;
        frame++;
    }
    PyBuffer_Release(&view);
    return walk_result(&walk, pos, frame);
}

/* One interface of the current pcapng section (PcapngReader's `Interface`). */
typedef struct {
    int linktype;
    long long mult, div, offset_ns;
    long number;
} Interface;

#define PCAPNG_EPB 6
#define PCAPNG_MAX_BLOCK (16 << 20)

/* The interface table as C structs (PyMem_Free it), or NULL with an error set. */
static Interface *read_interfaces(PyObject *table, Py_ssize_t *count) {
    *count = PyTuple_GET_SIZE(table);
    Interface *out = PyMem_New(Interface, *count ? *count : 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *count; i++) {
        Interface *iface = &out[i];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(table, i), "iLLLl:interface", &iface->linktype,
                              &iface->mult, &iface->div, &iface->offset_ns, &iface->number) ||
            iface->mult < 0 || iface->div < 1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "scan_pcapng: bad timestamp resolution");
            PyMem_Free(out);
            return NULL;
        }
    }
    return out;
}

PyDoc_STRVAR(
    scan_pcapng_doc,
    "scan_pcapng(buf, pos, frame, stop_ns, big_endian, interfaces, max_items, shard_index=0,\n"
    "            shard_count=1) -> as scan()\n\n"
    "Read the enhanced packet blocks of a pcapng section from pos. `interfaces` holds the\n"
    "section's (linktype, mult, div, offset_ns, number) per interface id (mult 0: leave the\n"
    "interface's blocks to Python). Any other block, and\n"
    "any block the Python reader must judge (framing, captured length, unknown interface,\n"
    "captured length above the original length, a timestamp beyond 64 bits), stops the walk\n"
    "(stop 1) with the block unread; so does a block not wholly in the buffer (stop 0).");

static PyObject *scan_pcapng(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, frame, max_items, count = 0;
    long long stop_ns;
    int big_endian;
    PyObject *table;
    long long shard_index = 0, shard_count = 1;
    if (!PyArg_ParseTuple(args, "y*nnLpO!n|LL:scan_pcapng", &view, &pos, &frame, &stop_ns,
                          &big_endian, &PyTuple_Type, &table, &max_items, &shard_index,
                          &shard_count))
        return NULL;
    if (bad_shard(&view, shard_index, shard_count)) return NULL;
    if (segment_type == NULL || pos < 0 || pos > view.len) {
        PyErr_SetString(PyExc_ValueError, "scan_pcapng: not configured, or bad position");
        PyBuffer_Release(&view);
        return NULL;
    }
    Interface *interfaces = read_interfaces(table, &count);
    if (interfaces == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Walk walk;
    if (walk_begin(&walk, &view, big_endian, shard_index, shard_count) < 0) {
        PyMem_Free(interfaces);
        return NULL;
    }
    const unsigned char *buf = walk.buf;
    Py_ssize_t len = walk.len;
    uint32_t (*u32)(const unsigned char *) = walk.u32;
    while (walk.records < max_items) {
        if (len - pos < 12) {
            walk.stop = STOP_NEED_DATA;
            break;
        }
        const unsigned char *b = buf + pos;
        uint32_t type = u32(b), length = u32(b + 4);
        if (type != PCAPNG_EPB || length < 32 || length % 4 || length > PCAPNG_MAX_BLOCK) {
            walk.stop = STOP_ODD;
            break;
        }
        if (len - pos < (Py_ssize_t)length) {
            walk.stop = STOP_NEED_DATA;
            break;
        }
        uint32_t iface_id = u32(b + 8), caplen = u32(b + 20), orig_len = u32(b + 24);
        if (u32(b + length - 4) != length || 28 + (unsigned long long)caplen > length - 4 ||
            iface_id >= (uint32_t)count || orig_len < caplen) {
            walk.stop = STOP_ODD;
            break;
        }
        const Interface *iface = &interfaces[iface_id];
        if (iface->mult == 0) { /* its timestamps need Python's integers */
            walk.stop = STOP_ODD;
            break;
        }
        unsigned long long units = ((unsigned long long)u32(b + 12) << 32) | u32(b + 16);
        __int128 ts = (__int128)units * iface->mult / iface->div + iface->offset_ns;
        if (ts > INT64_MAX || ts < INT64_MIN) {
            walk.stop = STOP_ODD; /* a timestamp only Python's integers hold */
            break;
        }
        long long ts_ns = (long long)ts;
        if (ts_ns >= stop_ns) {
            walk.stop = STOP_TIME;
            walk.next_ts = ts_ns;
            break;
        }
        if (emit(&walk, b + 28, (Py_ssize_t)caplen, (Py_ssize_t)orig_len, frame + 1, ts_ns,
                 iface->linktype, iface->number) < 0) {
            Py_DECREF(walk.items);
            PyMem_Free(interfaces);
            PyBuffer_Release(&view);
            return NULL;
        }
        pos += length;
        frame++;
    }
    PyMem_Free(interfaces);
    PyBuffer_Release(&view);
    return walk_result(&walk, pos, frame);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"scan", scan, METH_VARARGS, scan_doc},
    {"scan_pcapng", scan_pcapng, METH_VARARGS, scan_pcapng_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_scan",
    .m_doc = "pcap and pcapng records read and decoded to TCP segments in C (decode/scan.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__scan(void) {
    crc_init();
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "STOP_NEED_DATA", STOP_NEED_DATA) < 0 ||
        PyModule_AddIntConstant(module, "STOP_ODD", STOP_ODD) < 0 ||
        PyModule_AddIntConstant(module, "STOP_TIME", STOP_TIME) < 0 ||
        PyModule_AddIntConstant(module, "STOP_FULL", STOP_FULL) < 0 ||
        PyModule_AddIntConstant(module, "SEGMENT_FIELDS", SEGMENT_FIELDS) < 0 ||
        PyModule_AddIntConstant(module, "WALK_FIELDS", WALK_FIELDS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
