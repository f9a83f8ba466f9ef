"""Fuzz target: the C block reader (`tcpdiag/decode/_scan.c`, driven by `decode/scan.py`)
against the pure-Python per-packet path, differentially.

The fuzz bytes are a recipe (`Recipe`), read front to back; past its end every choice reads 0,
the plainest one, so even a short input makes a well-formed capture. Byte 0 picks the shape of
the file, bytes 1-4 how it is read, the rest describes it:

    shape 0-2  a classic pcap (any of the 4 magics, version, snap length, link type: Ethernet,
               Linux cooked v1/v2, raw IP and a few the C walk leaves to Python) whose records
               are mostly well-formed IPv4/IPv6 TCP packets, each with optional flaws (link,
               IP and TCP header fields, TCP options, record lengths and timestamps, overwritten
               bytes), records of raw fuzz bytes, and raw bytes between records
    shape 3-4  a pcapng: a Section Header Block, interfaces of those link types with various
               if_tsresol / if_tsoffset, then mostly enhanced packet blocks of the same packets
               (odd lengths, unknown interfaces, options, damaged framing), simple, obsolete,
               statistics and unknown blocks, new interfaces, new sections (either byte order,
               or a version to skip), raw bytes
    shape 5    the rest of the input is the file as is (the real captures are seeds)
    shape 6    a pcap header from the recipe, then the rest raw
    shape 7    a pcapng section header and interfaces from the recipe, then the rest raw

    reading    records per C walk (`scan.BLOCK_RECORDS`, 1-8 or the default), read chunk size
               (`source._READ_SIZE`: down to 1 byte, so records split across reads), and the stop
               time of the walks (`StopClock`): never, fixed, moving on by a step at every walk,
               moving as the engine's next flow expiry does, before every record, beyond 64 bits

The capture is then read both ways, as `_same` in tests/unit/test_scan.py does, and the two
must agree exactly: the same records (every Segment field; the RawPackets decoded in Python),
decoder counters, frame count, notes and damage, or the same `TcpdiagError` from both. On top,
every block's `segments`, `first_ns` and `last_ns` must match its items (its first and last
times may be those of packets it only counted: `others`, other shards), and no record of a C
walk may be at or after that walk's stop time (the engine expires flows in order on that).
A third reading walks for one shard of two or three (picked by the content's length): it must
make exactly the Segments of that shard's flows (`engine.shard_of`, whose buckets the C reader
caches per tuple) and read everything else as the whole walk does.

The C module is the installed `tcpdiag.decode._scan` or, without one (an editable install) or
when TCPDIAG_FUZZ_SCAN_CFLAGS / TCPDIAG_FUZZ_SCAN_SOURCE is set, `_scan.c` (or that copy)
compiled now by `common.build_library` into a per-user cache directory in the temporary
directory. docs/fuzzing.md has the run with `-fsanitize=address,undefined`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import io
import os
import struct
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import common

with common.instrumented():
    import tcpdiag.capture.source as source_module
    from tcpdiag.capture import MAX_CAPLEN, Capture, open_capture
    from tcpdiag.capture.pcapng import resolution
    from tcpdiag.decode import Decoder, scan
    from tcpdiag.engine import Shard, shard_of
    from tcpdiag.errors import TcpdiagError
    from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions

T = TypeVar("T")

# ------------------------------------------------------------------ the C module

SOURCE = common.ROOT / "tcpdiag" / "decode" / "_scan.c"
CFLAGS_ENV = "TCPDIAG_FUZZ_SCAN_CFLAGS"  # e.g. "-g -O1 -fsanitize=address,undefined"
BASE_CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Werror")  # as tests/unit/test_scan.py
# Another `_scan.c` to build instead: a copy with a bug planted on purpose, to prove the
# harness finds it without touching the checkout (docs/fuzzing.md).
SOURCE_ENV = "TCPDIAG_FUZZ_SCAN_SOURCE"


def load_native() -> ModuleType:
    """The C block reader: the installed one, unless flags or another source ask for a build."""
    extra = os.environ.get(CFLAGS_ENV, "").split()
    source = Path(os.environ.get(SOURCE_ENV) or SOURCE)
    module = None if extra or source != SOURCE else _installed()
    if module is None:
        module = _load(_build(source, extra))
    module.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return module


def _installed() -> ModuleType | None:
    try:
        from tcpdiag.decode import _scan
    except ImportError:  # an editable or pure-Python install
        return None
    return _scan


def _build(source: Path, extra: list[str]) -> Path:
    include = f"-I{sysconfig.get_paths()['include']}"
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    target = common.build_library(source, [*BASE_CFLAGS, include, *extra], f"_scan{suffix}")
    if any(flag.startswith("-fsanitize=") and "address" in flag for flag in extra):
        # The point of a sanitized run: make sure the checks really are compiled in.
        assert b"__asan_report_load" in target.read_bytes(), f"{target} has no ASan checks"
    return target


def _load(path: Path) -> ModuleType:
    # Loaded under the real name: PyInit__scan is looked up from its last part.
    spec = importlib.util.spec_from_file_location("tcpdiag.decode._scan", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NATIVE = load_native()
if common.FUZZING:
    print(f"fuzz_scan: C block reader {NATIVE.__file__}", file=sys.stderr)

# Segments decoded in C over all inputs: the seed replay checks the fast path was exercised.
SEGMENTS_IN_C = [0]

# ------------------------------------------------------------------ reading the recipe

# A flaw byte below this leaves the thing plain: three quarters of random bytes.
PLAIN = 192
MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1


class Recipe:
    """The fuzz bytes read as choices, front to back; past the end every read is 0."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def left(self) -> int:
        return max(0, len(self._data) - self._pos)

    def byte(self) -> int:
        pos = self._pos
        self._pos += 1
        return self._data[pos] if pos < len(self._data) else 0

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def u32(self) -> int:
        return self.u16() << 16 | self.u16()

    def take(self, n: int) -> bytes:
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def rest(self) -> bytes:
        return self.take(self.left)

    def pick(self, options: Sequence[T]) -> T:
        return options[self.byte() % len(options)]

    def flaw(self, flaws: Sequence[str]) -> str | None:
        """One of `flaws`, or None (plain) for three bytes in four."""
        b = self.byte()
        return None if b < PLAIN else flaws[(b - PLAIN) % len(flaws)]


def _choose(b: int, table: Sequence[tuple[str, int]]) -> str:
    """The first name of `table` whose bound is above `b`: weights as byte ranges."""
    return next(name for name, bound in table if b < bound)


def _items(recipe: Recipe, kinds: Sequence[tuple[str, int]]) -> Iterator[tuple[int, str]]:
    """A capture's items as (index, kind), one recipe byte each, until `MAX_ITEMS` or the recipe
    runs out."""
    for index in range(MAX_ITEMS):
        if not recipe.left:
            return
        yield index, _choose(recipe.byte(), kinds)


# ------------------------------------------------------------------ packets

BASE_SEC = 1_700_000_000
BASE_NS = BASE_SEC * 10**9
MAX_ITEMS = 256  # records or blocks per capture: bounds the time of one input
MACS = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"

# Link types: the ones the C walk decodes, then ones it always leaves to Python.
LINKTYPES = (1, 113, 276, 101, 228, 229, 12, 14, 0, 147)
LINK_FLAWS = ("vlan", "ethertype", "padding", "cut")
IPV4_FLAWS = (
    "options",
    "ihl",
    "total-zero",
    "total-long",
    "total-short",
    "more-fragments",
    "fragment-offset",
    "protocol",
    "version",
)
IPV6_FLAWS = ("length-zero", "length-long", "length-short", "next-header", "version")
TCP_FLAWS = ("offset", "cut", "ns-bit")
OPTION_BLOCKS = (
    b"",
    b"\x01\x01\x08\x0a" + bytes(range(1, 9)),  # NOP NOP timestamps
    b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(range(8)) + b"\x01\x03\x03\x07",  # SYN options
    b"\x01\x01\x05\x12" + bytes(range(16)),  # two SACK blocks
    b"\x01\x01\x05\x22" + bytes(range(32)),  # four SACK blocks
    b"\x03\x03\x0e",  # window scale 14: the largest taken as is
    b"\x03\x03\x0f",  # window scale 15: clamped (counted: left to Python)
    b"\x02\x01",  # length 1: malformed (left to Python)
    b"\x02\x00\x00\x00",  # length 0: malformed
    b"\x08\x0c" + bytes(10),  # an option running past the header
    b"\x05\x0b" + bytes(9),  # SACK of a length that is no whole number of blocks
    b"\x08\x09" + bytes(7),  # timestamps of the wrong length: ignored
    b"\x1e\x06abcd",  # an unknown option, skipped by its length
    b"\x00\x02\x04",  # end of list, then garbage
    b"\x01" * 40,  # the largest header: 40 bytes of NOPs
)
NEXT_HEADERS = (0, 43, 44, 60, 17, 58, 59, 6)


def packet(recipe: Recipe, linktype: int, index: int) -> bytes:
    """A TCP packet framed for `linktype`: mostly of the common case the C walk decodes, with
    the flaws the recipe asks for, then a few bytes overwritten."""
    version = 6 if recipe.byte() & 1 else 4
    link_flaw = recipe.flaw(LINK_FLAWS)
    network = _ipv6(recipe, index) if version == 6 else _ipv4(recipe, index)
    frame = _link(recipe, link_flaw, linktype, version, network)
    return _overwritten(recipe, frame)


def _tcp(recipe: Recipe, index: int) -> bytes:
    flaw = recipe.flaw(TCP_FLAWS)
    choice = recipe.byte() % (len(OPTION_BLOCKS) + 1)
    # The last choice: options straight from the fuzz bytes.
    options = OPTION_BLOCKS[choice] if choice < len(OPTION_BLOCKS) else recipe.take(40)
    options += b"\0" * (-len(options) % 4)
    flags = recipe.byte() ^ 0x18  # 0: PSH/ACK
    payload = bytes((index + i) & 0xFF for i in range(recipe.byte()))
    offset = (20 + len(options)) // 4
    if flaw == "offset":
        offset = recipe.byte() & 15
    reserved = 1 if flaw == "ns-bit" else 0
    # Fields differ per packet, so that a field read at the wrong offset shows.
    seq = (index * 0x9E3779B1) & MASK32
    header = struct.pack(
        "!HHIIBBHHH",
        40000 + index,
        443 + index,
        seq,
        seq ^ 0x5A5A0000,
        offset << 4 | reserved,
        flags,
        1000 + index,
        0,
        index,
    )
    segment = header + options + payload
    if flaw == "cut":
        segment = segment[: recipe.byte() % 21]
    return segment


def _ipv4(recipe: Recipe, index: int) -> bytes:
    flaw = recipe.flaw(IPV4_FLAWS)
    segment = _tcp(recipe, index)
    ihl, frag, proto, version = 5, 0x4000, 6, 4
    if flaw == "options":
        ihl = 6 + recipe.byte() % 10
    elif flaw == "ihl":
        ihl = recipe.byte() & 15
    elif flaw == "more-fragments":
        frag = 0x2000
    elif flaw == "fragment-offset":
        frag = 0x4000 | (1 + recipe.byte())
    elif flaw == "protocol":
        proto = recipe.byte()
    elif flaw == "version":
        version = recipe.byte() >> 4
    total = ihl * 4 + len(segment)
    if flaw == "total-zero":
        total = 0  # TSO: the length comes from the frame
    elif flaw == "total-long":
        total += 1 + recipe.byte()
    elif flaw == "total-short":
        total -= 1 + recipe.byte() % max(1, total)
    head = struct.pack(
        "!BBHHHBBH4s4s",
        version << 4 | ihl,
        0,
        total & 0xFFFF,
        index,
        frag,
        64 + index % 64,
        proto,
        0,
        bytes([10, index & 0xFF, 0, 1]),
        bytes([192, 168, index & 0xFF, 2]),
    )
    return head + b"\x01" * max(0, ihl * 4 - 20) + segment


def _ipv6(recipe: Recipe, index: int) -> bytes:
    flaw = recipe.flaw(IPV6_FLAWS)
    segment = _tcp(recipe, index)
    length, next_header, version = len(segment), 6, 6
    if flaw == "length-zero":
        length = 0  # jumbogram-like: the length comes from the frame
    elif flaw == "length-long":
        length += 1 + recipe.byte()
    elif flaw == "length-short":
        length -= 1 + recipe.byte() % max(1, length)
    elif flaw == "next-header":
        next_header = recipe.pick(NEXT_HEADERS)
    elif flaw == "version":
        version = recipe.byte() >> 4
    src = bytes([0x20, 0x01, 0x0D, 0xB8]) + bytes(11) + bytes([index & 0xFF])
    dst = bytes([0xFE, 0x80]) + bytes(range(13)) + bytes([index & 0xFF])
    fields = (version << 28 | index, length & 0xFFFF, next_header, 64 + index % 64)
    head = struct.pack("!IHBB", *fields)
    return head + src + dst + segment


def _link(recipe: Recipe, flaw: str | None, linktype: int, version: int, network: bytes) -> bytes:
    ethertype = 0x86DD if version == 6 else 0x0800
    if flaw == "ethertype":
        ethertype = recipe.u16()
    if linktype == 1:
        vlan = b"\x81\x00\x00\x05" if flaw == "vlan" else b""
        head = MACS + vlan + struct.pack("!H", ethertype)
    elif linktype == 113:  # Linux cooked v1: packet type, ARPHRD, address length, address
        head = struct.pack("!HHH8sH", 0, 1, 6, MACS[:8], ethertype)
    elif linktype == 276:  # Linux cooked v2: protocol first
        head = struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 0, 6, MACS[:8])
    elif linktype == 0:  # BSD loopback: the address family in host order
        head = struct.pack("<I", 30 if version == 6 else 2)
    else:
        head = b""
    frame = head + network
    if flaw == "padding":  # Ethernet padding after the IP packet
        frame += bytes(recipe.byte() % 48)
    elif flaw == "cut":
        frame = frame[: recipe.byte() % (len(head) + 41)]
    return frame


def _overwritten(recipe: Recipe, frame: bytes) -> bytes:
    count = recipe.flaw(("1", "2", "3", "8"))
    if count is None or not frame:
        return frame
    out = bytearray(frame)
    for _ in range(int(count)):
        out[recipe.u16() % len(out)] = recipe.byte()
    return bytes(out)


def _elapsed_step(recipe: Recipe) -> int:
    """Nanoseconds to the next record: -1 to +3 s in 15.6 ms steps (time may go back)."""
    b = recipe.byte()
    return ((b >> 6) - 1) * 10**9 + (b & 63) * 15_625_000


# ------------------------------------------------------------------ classic pcap

PCAP_KINDS = (("packet", 200), ("raw-record", 228), ("raw-bytes", 256))
PCAP_VERSIONS = ("2.2", "2.3", "2.0", "1.0", "2.5", "3.4")
SNAPLENS = (65535, 262144, 0, 1500, 96, 64, 0xFFFFFFFF, MAX_CAPLEN + 1)
LINK_FIELD_FLAWS = ("reserved-bits", "fcs-bits", "all-bits")
LINK_FIELD_BITS = {
    None: 0,
    "reserved-bits": 0x00010000,
    "fcs-bits": 0x14000000,
    "all-bits": 0xFFFF0000,
}
RECORD_FLAWS = (
    "snap-cut",
    "orig-longer",
    "caplen-over-orig",
    "caplen-short",
    "caplen-long",
    "caplen-huge",
    "fraction",
)


@dataclasses.dataclass
class PcapFile:
    order: str
    nanosecond: bool
    linktype: int


def pcap_header(recipe: Recipe) -> tuple[bytes, PcapFile]:
    form = recipe.byte()
    order, nanosecond = (">" if form & 1 else "<"), bool(form & 2)
    version = recipe.flaw(PCAP_VERSIONS) or "2.4"
    major, minor = (int(part) for part in version.split("."))
    snaplen = recipe.pick(SNAPLENS)
    linktype = recipe.pick(LINKTYPES)
    field = linktype | LINK_FIELD_BITS[recipe.flaw(LINK_FIELD_FLAWS)]
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    header = struct.pack(order + "IHHiIII", magic, major, minor, 0, 0, snaplen, field)
    return header, PcapFile(order, nanosecond, linktype)


def pcap_file(recipe: Recipe) -> bytes:
    header, file = pcap_header(recipe)
    out = [header]
    elapsed = 0
    for index, kind in _items(recipe, PCAP_KINDS):
        if kind == "raw-bytes":  # anything between records: partial headers, garbage
            out.append(recipe.take(recipe.byte()))
            continue
        if kind == "raw-record":
            body = recipe.take(recipe.byte())
        else:
            body = packet(recipe, file.linktype, index)
        elapsed += _elapsed_step(recipe)
        out.append(_pcap_record(recipe, file, body, BASE_NS + elapsed + index))
    return b"".join(out)


# Flaws of the captured and original lengths that pcap records and EPBs share.
LENGTH_FLAWS = ("snap-cut", "orig-longer", "caplen-over-orig")


def _length_flaw(recipe: Recipe, flaw: str, body: bytes) -> tuple[bytes, int, int]:
    """The record's data, captured length and original length with one of `LENGTH_FLAWS`."""
    caplen = orig_len = len(body)
    if flaw == "snap-cut":  # the common damage: a snap length shorter than the packet
        body = body[: recipe.byte() % (len(body) + 1)]
        caplen = len(body)
    elif flaw == "orig-longer":
        orig_len += 1 + recipe.u16()
    else:  # caplen-over-orig
        orig_len = max(0, orig_len - 1 - recipe.byte() % 32)
    return body, caplen, orig_len


def _pcap_record(recipe: Recipe, file: PcapFile, body: bytes, ts_ns: int) -> bytes:
    sec, ns = divmod(ts_ns, 10**9)
    frac = ns if file.nanosecond else ns // 1000
    caplen = orig_len = len(body)
    flaw = recipe.flaw(RECORD_FLAWS)
    if flaw in LENGTH_FLAWS:
        body, caplen, orig_len = _length_flaw(recipe, flaw, body)
    elif flaw == "caplen-short":  # the record boundaries move
        caplen = max(0, caplen - 1 - recipe.byte() % 16)
    elif flaw == "caplen-long":
        caplen += 1 + recipe.byte() % 16
    elif flaw == "caplen-huge":
        caplen = recipe.pick((MAX_CAPLEN + 1, MASK32, 1 << 24, MAX_CAPLEN))
    elif flaw == "fraction":
        frac = (10**9 if file.nanosecond else 10**6) + recipe.u16()
    fields = (sec & MASK32, frac & MASK32, caplen & MASK32, orig_len & MASK32)
    return struct.pack(file.order + "IIII", *fields) + body


# ------------------------------------------------------------------ pcapng

PCAPNG_KINDS = (
    ("epb", 184),
    ("spb", 194),
    ("opb", 202),
    ("other", 212),
    ("idb", 222),
    ("section", 230),
    ("raw-epb", 244),
    ("raw-bytes", 256),
)
TSRESOLS = (None, 6, 9, 3, 0, 10, 0x94, 0x80 | 30, 0x80 | 63, 19, 20, 0x80 | 64, 0x7F)
TSOFFSETS = (None, 0, 1, -1, 86400, -(2**31), 2**33, 2**62, -(2**62), 2**63 - 1)
IDB_FLAWS = ("duplicate-tsresol", "tsresol-length", "tsoffset-length", "option-overrun")
EPB_FLAWS = (
    "snap-cut",
    "orig-longer",
    "caplen-over-orig",
    "caplen-beyond-block",
    "caplen-into-trailer",
    "options",
    "unknown-interface",
    "units",
    "trailer",
    "length-unaligned",
    "length-short",
)
OTHER_BLOCKS = (5, 4, 0x0A, 0xBAD, 0x40000BAD, 7, 0)


@dataclasses.dataclass
class Interface:
    """What the recipe needs of an interface: its link type and timestamp units."""

    linktype: int
    mult: int = 1000
    div: int = 1
    offset_ns: int = 0


@dataclasses.dataclass
class Section:
    order: str
    interfaces: list[Interface] = dataclasses.field(default_factory=list)


def _block(
    btype: int, body: bytes, order: str, length: int | None = None, trailer: int | None = None
) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    head = struct.pack(order + "II", btype, total if length is None else length & MASK32)
    return head + body + struct.pack(order + "I", total if trailer is None else trailer & MASK32)


def _option(code: int, value: bytes, order: str, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    return struct.pack(order + "HH", code, size) + value + b"\0" * (-len(value) % 4)


def pcapng_head(recipe: Recipe) -> tuple[bytes, Section]:
    """A section header (either byte order, now and then a version to skip) and 1-4
    interfaces."""
    section = Section(">" if recipe.byte() & 1 else "<")
    major = 1 if recipe.flaw(("version",)) is None else 2
    shb_body = struct.pack(section.order + "IHHq", 0x1A2B3C4D, major, 0, -1)
    out = [_block(0x0A0D0D0A, shb_body, section.order)]
    for _ in range(1 + recipe.byte() % 4):
        out.append(_idb(recipe, section))
    return b"".join(out), section


def _idb(recipe: Recipe, section: Section) -> bytes:
    order = section.order
    iface = Interface(recipe.pick(LINKTYPES))
    snaplen = recipe.pick((0, 65535, 64, 262144))
    tsresol, tsoffset = recipe.pick(TSRESOLS), recipe.pick(TSOFFSETS)
    flaw = recipe.flaw(IDB_FLAWS)
    options = []
    if tsresol is not None:
        usable = resolution(tsresol)  # the reader's own rule; unusable: microseconds
        if usable is not None and flaw != "tsresol-length":
            iface.mult, iface.div = usable
        value = bytes([tsresol, 0] if flaw == "tsresol-length" else [tsresol])
        options.append(_option(9, value, order))
        if flaw == "duplicate-tsresol":
            options.append(_option(9, b"\x00", order))
    if tsoffset is not None:
        if flaw != "tsoffset-length":
            iface.offset_ns = tsoffset * 10**9
        value = struct.pack(order + "q", tsoffset)
        options.append(_option(14, value[:4] if flaw == "tsoffset-length" else value, order))
    if flaw == "option-overrun":
        options.append(_option(2, b"eth0", order, length=200))
    options.append(_option(0, b"", order))
    section.interfaces.append(iface)
    body = struct.pack(order + "HHI", iface.linktype, 0, snaplen) + b"".join(options)
    return _block(1, body, order)


def pcapng_file(recipe: Recipe) -> bytes:
    head, section = pcapng_head(recipe)
    out = [head]
    elapsed = 0
    for index, kind in _items(recipe, PCAPNG_KINDS):
        elapsed += _elapsed_step(recipe)
        if kind in ("epb", "raw-epb"):
            out.append(_epb(recipe, section, index, BASE_NS + elapsed + index, kind == "raw-epb"))
        elif kind == "idb":
            out.append(_idb(recipe, section))
        elif kind == "section":
            more, section = pcapng_head(recipe)
            out.append(more)
        elif kind == "raw-bytes":
            out.append(recipe.take(recipe.byte()))
        else:
            out.append(_other_block(recipe, kind, section, index))
    return b"".join(out)


def _epb(recipe: Recipe, section: Section, index: int, ts_ns: int, raw: bool) -> bytes:
    order, interfaces = section.order, section.interfaces
    iface_id = recipe.byte() % max(1, len(interfaces))
    iface = interfaces[iface_id] if interfaces else Interface(1)
    body = recipe.take(recipe.byte()) if raw else packet(recipe, iface.linktype, index)
    # The units that make the wanted time in this interface's resolution and offset.
    units = ((ts_ns - iface.offset_ns) * iface.div // iface.mult) & MASK64
    caplen = orig_len = len(body)
    length = trailer = None
    options = b""
    flaw = recipe.flaw(EPB_FLAWS)
    if flaw in LENGTH_FLAWS:
        body, caplen, orig_len = _length_flaw(recipe, flaw, body)
    elif flaw == "caplen-beyond-block":
        caplen += 5 + recipe.byte()
    elif flaw == "caplen-into-trailer":  # past the padded data, into the trailer by 1-4 bytes
        caplen += (-caplen % 4) + 1 + recipe.byte() % 4
    elif flaw == "options":
        options = _option(1, b"comment", order) + _option(2, b"\0\0\0\1", order)
        options += _option(0, b"", order)
    elif flaw == "unknown-interface":
        iface_id = len(interfaces) + recipe.byte() % 3
    elif flaw == "units":
        units = recipe.u32() << 32 | recipe.u32()
    data = body + b"\0" * (-len(body) % 4) + options
    total = 12 + 20 + len(data)
    if flaw == "trailer":
        trailer = total + 4
    elif flaw == "length-unaligned":
        length = total + 1 + recipe.byte() % 3
    elif flaw == "length-short":
        length = 4 * (recipe.byte() % 8)
    fields = (iface_id, units >> 32, units & MASK32, caplen & MASK32, orig_len & MASK32)
    return _block(6, struct.pack(order + "IIIII", *fields) + data, order, length, trailer)


def _other_block(recipe: Recipe, kind: str, section: Section, index: int) -> bytes:
    order = section.order
    linktype = section.interfaces[0].linktype if section.interfaces else 1
    if kind == "spb":
        body = packet(recipe, linktype, index)
        return _block(3, struct.pack(order + "I", len(body) + recipe.byte() % 4) + body, order)
    if kind == "opb":
        body = packet(recipe, linktype, index)
        fields = (recipe.byte() % 3, 0, 0x60000, index, len(body), len(body))
        return _block(2, struct.pack(order + "HHIIII", *fields) + body, order)
    btype = recipe.pick(OTHER_BLOCKS)
    if btype == 0:
        btype = recipe.u32()
    return _block(btype, recipe.take(recipe.byte() % 64), order)


# ------------------------------------------------------------------ how it is read

DEFAULT_BLOCK_RECORDS = scan.BLOCK_RECORDS
DEFAULT_READ_SIZE = source_module._READ_SIZE
NEVER = 1 << 62  # as test_scan.py: no record is ever at the stop time
STOP_STEPS = (10**6, 10**8, 10**9 // 3, 10**9, 7 * 10**9)
# The engine moves its stop (the next flow expiry) this far past the record that reached it.
STOP_INTERVALS = (1, 10**6, 10**8, 10**9, 10 * 10**9)
# Stops outside every timestamp: before all of them, or beyond 64 bits (`scan._clamped`).
STOP_EXTREMES = (0, -(1 << 63), 1 << 63, 1 << 80)


class StopClock:
    """The `stop_ns` callable of `scan.open_blocks`, read before each C walk: a start time that
    moves on by `step` at each read, or (with `interval`) as the engine's next flow expiry
    does, to `interval` past a record that reached it. `last` is the latest value read."""

    def __init__(self, start: int, step: int = 0, interval: int | None = None) -> None:
        self.last = self._next = start
        self._step = step
        self._interval = interval

    def __call__(self) -> int:
        self.last = self._next
        self._next += self._step
        return self.last

    def saw(self, ts_ns: int) -> None:
        if self._interval is not None and ts_ns >= self._next:
            self._next = ts_ns + self._interval


def _block_records(recipe: Recipe) -> int:
    b = recipe.byte()
    return 1 + b % 8 if b < 224 else DEFAULT_BLOCK_RECORDS


def _read_size(recipe: Recipe) -> int:
    b = recipe.byte()
    if b < 32:
        return 1 + b  # a record is rarely whole in the buffer: the C walk mostly stops at once
    if b < 192:
        return 32 + (b - 32) * 24  # records cut at every point, a few whole ones per read
    return DEFAULT_READ_SIZE


def _stop_clock(recipe: Recipe) -> StopClock:
    kind, param = recipe.byte(), recipe.byte()
    start = BASE_NS + (param - 16) * 50_000_000
    choice = kind % 5
    if choice == 0:
        return StopClock(NEVER)
    if choice == 1:
        return StopClock(start, step=STOP_STEPS[(kind >> 3) % len(STOP_STEPS)])
    if choice == 2:
        return StopClock(start, interval=STOP_INTERVALS[(kind >> 3) % len(STOP_INTERVALS)])
    if choice == 3:
        return StopClock(start)
    return StopClock(STOP_EXTREMES[param % len(STOP_EXTREMES)])


@contextlib.contextmanager
def reading_with(block_records: int, read_size: int) -> Iterator[None]:
    """The C reader switched on with these sizes (as test_scan.py's monkeypatching), and
    everything put back after: under pytest the other targets run in the same process."""
    saved = scan._SCAN, scan.BLOCK_RECORDS, source_module._READ_SIZE
    scan._SCAN, scan.BLOCK_RECORDS, source_module._READ_SIZE = NATIVE, block_records, read_size
    try:
        yield
    finally:
        scan._SCAN, scan.BLOCK_RECORDS, source_module._READ_SIZE = saved


# ------------------------------------------------------------------ reading both ways


@dataclasses.dataclass
class Reading:
    # (frame, decoded record), for the records that decode to one: a packet that decodes to
    # nothing is only counted (`stats`), and the C walk makes no object for some of them
    records: list[tuple[int, object]]
    stats: dict[str, object]
    frames: int
    notes: list[object]
    damage: list[object]
    linktypes: set[int]


def read_by_packet(content: bytes) -> Reading:
    decoder = Decoder()
    with open_capture("-", stdin=io.BytesIO(content)) as capture:
        decoded = ((raw.frame, decoder.decode(raw)) for raw in capture)
        records = [(frame, record) for frame, record in decoded if record is not None]
        return _reading(records, decoder, capture)


def read_by_block(
    content: bytes, clock: StopClock, shard: tuple[int, int] = (0, 1), in_c: set[int] | None = None
) -> Reading:
    """The C walk's reading (of the flows of `shard` only); the frames of the Segments it made
    go into `in_c`."""
    decoder = Decoder()
    records: list[tuple[int, object]] = []
    with open_capture("-", stdin=io.BytesIO(content)) as capture:
        blocks = scan.open_blocks(capture, decoder.stats, clock, shard)
        assert blocks is not None, "the C block reader was not used"
        for block in blocks:
            _check_block(block, clock.last, sharded=shard[1] > 1)
            for item in block.items:
                if type(item) is Segment:
                    records.append((item.frame, item))
                    if in_c is not None:
                        in_c.add(item.frame)
                elif (record := decoder.decode(item)) is not None:  # type: ignore[arg-type]
                    records.append((item.frame, record))
            SEGMENTS_IN_C[0] += block.segments
            clock.saw(block.last_ns)
        return _reading(records, decoder, capture)


def assert_shard(whole: Reading | str, in_c: set[int], part: Reading | str, shard: Shard) -> None:
    """A walk for one shard makes exactly the Segments of that shard's flows (`shard_of`, whose
    buckets the C reader caches per tuple) and reads everything else as the whole walk does."""
    if isinstance(whole, str) or isinstance(part, str):
        assert part == whole, f"whole: {whole!r}\nshard {shard}: {part!r}"
        return
    index, count = shard
    expected = [
        (frame, record)
        for frame, record in whole.records
        if frame not in in_c
        or (
            isinstance(record, Segment)  # (a frame of `in_c` always is)
            and shard_of(record.src, record.sport, record.dst, record.dport, count) == index
        )
    ]
    assert part.records == expected, _difference("records", expected, part.records)
    for field in ("stats", "frames", "notes", "damage", "linktypes"):
        assert getattr(part, field) == getattr(whole, field), field


def _reading(records: list[tuple[int, object]], decoder: Decoder, capture: Capture) -> Reading:
    return Reading(
        records,
        dataclasses.asdict(decoder.stats),
        capture.frames_read,
        list(capture.notes),
        list(capture.damage),
        capture.linktypes,
    )


def _check_block(block: scan.Block, stop_ns: int, sharded: bool = False) -> None:
    items = block.items
    made = sum(type(i) is Segment for i in items)
    assert block.others >= 0, block.others
    if sharded:  # the Segments of other shards are counted, not made, and span the block too
        assert items or block.segments or block.others, "an empty block"
        assert block.segments >= made, (block.segments, made)
    else:
        assert items or block.others, "an empty block"
        assert block.segments == made, block.segments
        if not block.others:  # packets of other protocols are counted, not made, and span it
            assert _at(items[0], block.first_ns), (items[0], block.first_ns)
            assert _at(items[-1], block.last_ns), (items[-1], block.last_ns)
    # A lone RawPacket may be the record the reader read at the stop time; anything else
    # came from a C walk, which must stop before the stop time (as clamped for C).
    if block.segments or block.others or len(items) > 1:
        bound = min(stop_ns, (1 << 63) - 1)
        for item in items:
            assert _before(item, bound), (item, stop_ns)


def _at(item: Segment | RawPacket, ts_ns: int) -> bool:
    if type(item) is Segment:
        return item.time == ts_ns / 1e9
    return item.ts_ns == ts_ns  # type: ignore[union-attr]


def _before(item: Segment | RawPacket, stop_ns: int) -> bool:
    if type(item) is Segment:
        return item.time <= stop_ns / 1e9  # float: equal when within rounding
    return item.ts_ns < stop_ns  # type: ignore[union-attr]


def _outcome(read: Callable[[], Reading]) -> Reading | str:
    """The reading, or the TcpdiagError that ended it (both ways must end the same)."""
    try:
        return read()
    except TcpdiagError as exc:
        return f"{type(exc).__name__}: {exc}"


def assert_same(by_packet: Reading | str, by_block: Reading | str) -> None:
    if isinstance(by_packet, str) or isinstance(by_block, str):
        assert by_block == by_packet, f"per packet: {by_packet!r}\nC blocks: {by_block!r}"
        return
    for field in dataclasses.fields(Reading):
        expected, got = getattr(by_packet, field.name), getattr(by_block, field.name)
        assert got == expected, _difference(field.name, expected, got)


def _difference(name: str, expected: object, got: object) -> str:
    if isinstance(expected, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(expected, got, strict=False)):
            if a != b:
                return f"{name}[{i}] differs:\nper packet: {a!r}\nC blocks:   {b!r}"
        return f"{name}: {len(expected)} per packet, {len(got)} from C blocks"
    return f"{name} differs:\nper packet: {expected!r}\nC blocks:   {got!r}"


# ------------------------------------------------------------------ the target


def capture_bytes(shape: int, recipe: Recipe) -> bytes:
    kind = shape % 8
    if kind <= 2:
        return pcap_file(recipe)
    if kind <= 4:
        return pcapng_file(recipe)
    if kind == 5:
        return recipe.rest()
    if kind == 6:
        return pcap_header(recipe)[0] + recipe.rest()
    return pcapng_head(recipe)[0] + recipe.rest()


def test_one_input(data: bytes) -> None:
    recipe = Recipe(data)
    shape = recipe.byte()
    block_records, read_size, clock = (
        _block_records(recipe),
        _read_size(recipe),
        _stop_clock(recipe),
    )
    content = capture_bytes(shape, recipe)
    # One shard of two or three as well, picked by the content (the recipe's bytes stay as
    # the seeds were written), read with a stop clock in the same state as the whole walk's.
    shard = (len(content) % (2 + shape % 2), 2 + shape % 2)
    shard_clock = copy.deepcopy(clock)
    in_c: set[int] = set()
    with reading_with(block_records, read_size):
        by_packet = _outcome(lambda: read_by_packet(content))
        by_block = _outcome(lambda: read_by_block(content, clock, in_c=in_c))
        by_shard = _outcome(lambda: read_by_block(content, shard_clock, shard))
    assert_same(by_packet, by_block)
    assert_shard(by_block, in_c, by_shard, shard)


# ------------------------------------------------------------------ seeds
# Recipe bytes in the order the builders above read them (keep in step).

PLAIN_READING = bytes([224, 255, 0, 0])  # default block size and read size, never stop


def _packet_recipe(version: int, options: int, payload: int, flags: int = 0) -> bytes:
    """`packet`: IP version, link flaw, IP flaw, TCP flaw, options, flags, payload length,
    overwrites."""
    return bytes([version == 6, 0, 0, 0, options, flags, payload, 0])


def _plain_packets(count: int) -> list[bytes]:
    """IPv4 and IPv6 in turn, every option block, payloads of 0-199 bytes."""
    return [
        _packet_recipe(4 + 2 * (i % 2), i % len(OPTION_BLOCKS), (i * 37) % 200)
        for i in range(count)
    ]


def _record_recipe(packet_recipe: bytes, flaw: int = 0) -> bytes:
    # kind (packet), packet, time step (+15.6 ms), record flaw
    return b"\x00" + packet_recipe + bytes([0x41, flaw])


def _pcap_seed(reading: bytes, form: int, linktype: int, records: list[bytes]) -> bytes:
    # shape, reading, header (form, version flaw, snaplen, link type, link field flaw), records
    head = bytes([0]) + reading + bytes([form, 0, 0, LINKTYPES.index(linktype), 0])
    return head + b"".join(records)


def _pcapng_seed(reading: bytes, order: int, interfaces: list[bytes], blocks: list[bytes]) -> bytes:
    # shape, reading, SHB (byte order, version flaw, interfaces - 1), interfaces, blocks
    head = bytes([3]) + reading + bytes([order, 0, len(interfaces) - 1])
    return head + b"".join(interfaces) + b"".join(blocks)


def _idb_recipe(linktype: int, tsresol: int | None, tsoffset: int | None) -> bytes:
    # link type, snaplen, if_tsresol, if_tsoffset, flaw
    return bytes(
        [LINKTYPES.index(linktype), 0, TSRESOLS.index(tsresol), TSOFFSETS.index(tsoffset), 0]
    )


def _epb_recipe(iface: int, packet_recipe: bytes, flaw: int = 0) -> bytes:
    # kind (epb), time step, interface, packet, EPB flaw
    return bytes([0, 0x41, iface]) + packet_recipe + bytes([flaw])


def _with_flaw(packet_recipe: bytes, slot: int, flaw: int) -> bytes:
    return packet_recipe[:slot] + bytes([flaw]) + packet_recipe[slot + 1 :]


READINGS = (
    PLAIN_READING,
    bytes([2, 40, 27, 16]),  # 3 records per walk, 224-byte reads, the engine's stop (+1 s)
    bytes([4, 150, 11, 20]),  # 5 per walk, 2864-byte reads, a stop moving on 0.1 s a walk
    bytes([0, 0, 3, 30]),  # 1 per walk, 1-byte reads, a fixed stop 0.7 s in
    bytes([6, 100, 4, 1]),  # 7 per walk, 1664-byte reads, a stop before every record
)
# Packet recipe slots of the flaws (`_packet_recipe`): link, IP, TCP.
FLAW_SLOTS = ((1, LINK_FLAWS), (2, IPV4_FLAWS), (3, TCP_FLAWS))


def _pcap_seeds(packets: list[bytes]) -> list[bytes]:
    records = [_record_recipe(p) for p in packets]
    out = [
        _pcap_seed(READINGS[i % len(READINGS)], i % 4, linktype, records)
        for i, linktype in enumerate((1, 113, 276, 101, 228, 229))
    ]
    # Each flaw once, in the 3rd (IPv4) or 4th (IPv6) record: the fuzzer starts next to every
    # odd case. A flaw's parameters come from the bytes after it, shifting the rest: no matter.
    flawed: list[tuple[int, bytes]] = []
    for slot, flaws in (*FLAW_SLOTS, (2, IPV6_FLAWS)):
        index = 3 if flaws is IPV6_FLAWS else 2
        flawed += [(index, _record_recipe(_with_flaw(packets[index], slot, PLAIN + j)))
                   for j in range(len(flaws))]  # fmt: skip
    flawed += [(2, _record_recipe(packets[2], PLAIN + j)) for j in range(len(RECORD_FLAWS))]
    for index, record in flawed:
        out.append(
            _pcap_seed(READINGS[1], 0, 1, [*records[:index], record, *records[index + 1 : 12]])
        )
    return out


def _pcapng_seeds(packets: list[bytes]) -> list[bytes]:
    interfaces = [
        _idb_recipe(1, None, None),
        _idb_recipe(101, 9, None),
        _idb_recipe(113, 0x94, 86400),
        _idb_recipe(276, 3, 2**62),  # an offset beyond 64 bits in ns: left to Python
    ]
    blocks = [_epb_recipe(i % 4, p) for i, p in enumerate(packets)]
    blocks.insert(10, bytes([190, 0x41]) + _packet_recipe(4, 1, 10) + b"\x00")  # simple packet
    blocks.insert(20, bytes([215, 0x41]) + _idb_recipe(229, 6, -1))  # a new interface
    blocks.insert(30, bytes([225, 0x41, 1, 0, 0]) + _idb_recipe(1, None, 1))  # a new section
    out = [_pcapng_seed(r, i % 2, interfaces, blocks) for i, r in enumerate(READINGS)]
    for j in range(len(EPB_FLAWS)):
        flawed = [*blocks[:12]]
        flawed[5] = _epb_recipe(1, packets[5], PLAIN + j)
        out.append(_pcapng_seed(READINGS[1], 0, interfaces, flawed))
    return out


def seeds() -> list[bytes]:
    packets = _plain_packets(40)
    out = _pcap_seeds(packets) + _pcapng_seeds(packets)
    out += [bytes([5]) + PLAIN_READING + c for c in common.capture_seeds(16 << 10)]
    out += [bytes([5]) + READINGS[1] + c for c in common.capture_seeds(4 << 10)]
    return out


if __name__ == "__main__":
    common.main(test_one_input, seeds)
