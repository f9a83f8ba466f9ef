/* The blocks of a Linux TPACKET_V3 receive ring, turned into classic pcap records.
 *
 * Why: `tcpdiag live` read one packet per `recvmsg` system call and made a RawPacket of it,
 * which Python then decoded: on loopback it dropped 37% of a 200k packets/s replay that tcpdump
 * kept whole. A ring gives the packets in blocks the kernel fills while we work; this module
 * copies a finished block's packets out as nanosecond pcap records (little-endian, the layout of
 * `PcapWriter(nanosecond=True)`), hands the block back to the kernel, and returns the records.
 * The C block reader (`decode/_scan.c`) then decodes them as it does a capture file, and `-w`
 * writes them as they are.
 *
 * What a record holds is what `LiveSource._read_one` makes of the same packet: the frame from
 * its link-layer header, a VLAN tag the NIC stripped put back after the MAC addresses (as
 * libpcap does), the snap length applied after that, and the original length counting the tag.
 * Loopback's outgoing copies are left out when the kernel could not do it (`drop_outgoing`).
 * An interface captured "cooked" (`any`, or one without a link-layer header tcpdiag reads) gives
 * its packets from the network header on: each record then starts with the Linux cooked header
 * (LINKTYPE_LINUX_SLL) made from the packet's sockaddr_ll, as libpcap's `any` device writes it,
 * and the snap length counts that header. A VLAN tag the NIC stripped is put back as libpcap
 * does for cooked captures: its TPID in the header's protocol field, then the TCI and the
 * protocol.
 *
 * Not Linux: the module builds, and `AVAILABLE` is 0. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifdef __linux__
#include <linux/if_packet.h>
#define RING_AVAILABLE 1
#else
#define RING_AVAILABLE 0
#endif

#define PCAP_RECORD_HEADER 16
#define VLAN_TAG 4
#define SLL_HEADER 16
#define PACKET_OUTGOING_TYPE 4
#define ARPHRD_LOOPBACK_TYPE 772

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_be16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

PyDoc_STRVAR(take_block_doc,
             "take_block(ring, offset, block_size, snaplen, drop_outgoing, cooked=False)\n"
             "-> None | (records, packets, outgoing_dropped)\n\n"
             "The block at `offset` of the mapped ring, if the kernel has handed it over: its\n"
             "packets as little-endian nanosecond pcap records (bytes), how many there are, and\n"
             "how many loopback outgoing copies were left out. The block is given back to the kernel before this returns. None when the\n"
             "block is still the kernel's. ValueError for a block whose layout is not a\n"
             "TPACKET_V3 block of `block_size` bytes (the block is given back all the same). With\n"
             "`cooked`, each record starts with a Linux cooked header (LINKTYPE_LINUX_SLL).");

#if RING_AVAILABLE

/* Where the packet's sockaddr_ll is: right after its (aligned) header. */
#define SLL_AT TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

static void give_back(struct tpacket_block_desc *desc) {
    /* Every read of the block happens before the kernel may reuse it. */
    __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

/* A pointer to the packet header at `off` of a block of `size` bytes, with its sockaddr_ll
 * and its captured bytes inside the block; NULL when the kernel's offsets say otherwise. */
static const struct tpacket3_hdr *packet_at(const unsigned char *block, size_t size, size_t off) {
    if (off > size || size - off < SLL_AT + sizeof(struct sockaddr_ll)) return NULL;
    const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)(block + off);
    if ((size_t)h->tp_mac > size - off || h->tp_snaplen > size - off - h->tp_mac) return NULL;
    return h;
}

/* The Linux cooked header of a packet (LiveSource._read_one's `_SLL`): packet type, ARPHRD
 * type, address length, the first 8 bytes of the address (zero-padded), protocol. */
static void cooked_header(unsigned char *out, const struct sockaddr_ll *sll) {
    unsigned halen = sll->sll_halen;
    put_be16(out, sll->sll_pkttype);
    put_be16(out + 2, sll->sll_hatype);
    put_be16(out + 4, halen);
    memset(out + 6, 0, 8);
    memcpy(out + 6, sll->sll_addr, halen < 8 ? halen : 8);
    memcpy(out + 14, &sll->sll_protocol, 2); /* network byte order already */
}

static PyObject *layout_error(struct tpacket_block_desc *desc) {
    give_back(desc);
    PyErr_SetString(PyExc_ValueError, "take_block: not a TPACKET_V3 block of that size");
    return NULL;
}

static PyObject *take_block(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t offset, block_size, snaplen;
    int drop_outgoing, cooked = 0;
    if (!PyArg_ParseTuple(args, "w*nnnp|p:take_block", &view, &offset, &block_size, &snaplen,
                          &drop_outgoing, &cooked))
        return NULL;
    if (offset < 0 || block_size < (Py_ssize_t)sizeof(struct tpacket_block_desc) ||
        offset > view.len || view.len - offset < block_size || snaplen <= 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "take_block: offset, size or snap length out of range");
        return NULL;
    }
    unsigned char *block = (unsigned char *)view.buf + offset;
    struct tpacket_block_desc *desc = (struct tpacket_block_desc *)block;
    uint32_t status = __atomic_load_n(&desc->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    size_t size = (size_t)block_size;
    uint32_t count = desc->hdr.bh1.num_pkts;
    size_t off = desc->hdr.bh1.offset_to_first_pkt;
    /* First pass: check the chain and size the output (a record never outgrows its packet by
       more than its header, a cooked header and a VLAN tag). */
    size_t need = 0;
    size_t at = off;
    for (uint32_t i = 0; i < count; i++) {
        const struct tpacket3_hdr *h = packet_at(block, size, at);
        if (h == NULL || (i + 1 < count && h->tp_next_offset == 0)) {
            PyBuffer_Release(&view);
            return layout_error(desc);
        }
        need += PCAP_RECORD_HEADER + SLL_HEADER + VLAN_TAG + h->tp_snaplen;
        at += h->tp_next_offset;
    }
    PyObject *records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)need);
    if (records == NULL) {
        give_back(desc);
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(records);
    size_t used = 0;
    Py_ssize_t packets = 0, dropped = 0;
    size_t cap_limit = (size_t)snaplen;
    at = off;
    for (uint32_t i = 0; i < count; i++) {
        const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)(block + at);
        const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((const unsigned char *)h + SLL_AT);
        at += h->tp_next_offset;
        if (drop_outgoing && sll->sll_pkttype == PACKET_OUTGOING_TYPE &&
            sll->sll_hatype == ARPHRD_LOOPBACK_TYPE) {
            dropped++;
            continue;
        }
        const unsigned char *data = (const unsigned char *)h + h->tp_mac;
        size_t got = h->tp_snaplen;
        uint64_t orig = h->tp_len > got ? h->tp_len : got;
        unsigned char *rec = out + used;
        unsigned char *body = rec + PCAP_RECORD_HEADER;
        size_t caplen;
        if (cooked) {
            /* The header (and a tag) whole, the snap length cutting the packet after them. */
            size_t head = SLL_HEADER;
            cooked_header(body, sll);
            if (h->tp_status & TP_STATUS_VLAN_VALID) {
                /* As libpcap: the tag goes where the header's protocol was (TPID, TCI), and
                   the protocol after it. */
                unsigned tpid =
                    (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
                memcpy(body + SLL_HEADER + 2, body + SLL_HEADER - 2, 2);
                put_be16(body + SLL_HEADER - 2, tpid);
                put_be16(body + SLL_HEADER, h->hv1.tp_vlan_tci);
                head += VLAN_TAG;
            }
            caplen = cap_limit > head ? cap_limit - head : 0;
            if (got < caplen) caplen = got;
            memcpy(body + head, data, caplen);
            caplen += head;
            orig += head;
        } else if ((h->tp_status & TP_STATUS_VLAN_VALID) && got >= 12) {
            unsigned tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
            unsigned char tagged[12 + VLAN_TAG];
            memcpy(tagged, data, 12);
            put_be16(tagged + 12, tpid);
            put_be16(tagged + 14, h->hv1.tp_vlan_tci);
            caplen = got + VLAN_TAG < cap_limit ? got + VLAN_TAG : cap_limit;
            size_t head = caplen < sizeof tagged ? caplen : sizeof tagged;
            memcpy(body, tagged, head);
            if (caplen > head) memcpy(body + head, data + 12, caplen - head);
            orig += VLAN_TAG;
        } else {
            caplen = got < cap_limit ? got : cap_limit;
            memcpy(body, data, caplen);
        }
        put_le32(rec, h->tp_sec);
        put_le32(rec + 4, h->tp_nsec);
        put_le32(rec + 8, (uint32_t)caplen);
        put_le32(rec + 12, orig > UINT32_MAX ? UINT32_MAX : (uint32_t)orig);
        used += PCAP_RECORD_HEADER + caplen;
        packets++;
    }
    give_back(desc);
    PyBuffer_Release(&view);
    if (used != need && _PyBytes_Resize(&records, (Py_ssize_t)used) < 0) return NULL;
    return Py_BuildValue("(Nnn)", records, packets, dropped);
}

#else

static PyObject *take_block(PyObject *module, PyObject *args) {
    PyErr_SetString(PyExc_OSError, "take_block: packet rings are Linux's");
    return NULL;
}

#endif

static PyMethodDef ring_methods[] = {
    {"take_block", take_block, METH_VARARGS, take_block_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ring_module = {
    PyModuleDef_HEAD_INIT, "_ring", "TPACKET_V3 ring blocks as pcap records (capture/ring.py).",
    -1, ring_methods,
};

PyMODINIT_FUNC PyInit__ring(void) {
    PyObject *module = PyModule_Create(&ring_module);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "AVAILABLE", RING_AVAILABLE) < 0 ||
        PyModule_AddIntConstant(module, "PCAP_RECORD_HEADER", PCAP_RECORD_HEADER) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
