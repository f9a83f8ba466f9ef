"""Live packets from a Linux interface, as RawPackets: the packet source of `tcpdiag live`.

Theory of operation
-------------------
One `AF_PACKET` socket, set up in an order that never lets an unfiltered packet in:

1. `socket(AF_PACKET, SOCK_RAW, 0)`: protocol 0 receives nothing until the socket is bound.
2. Socket options: a big receive buffer (`SO_RCVBUFFORCE`, falling back to `SO_RCVBUF`) so bulk
   loopback traffic (frames up to 65,549 bytes) is not dropped; `SO_TIMESTAMPNS` so every packet
   carries the kernel's receive time in nanoseconds (ancillary data of `recvmsg`; no ioctl per
   packet, and no user-space delay folded into the time); `PACKET_AUXDATA` for the original
   length and VLAN tags the NIC stripped (re-inserted, as libpcap does); on loopback
   `PACKET_IGNORE_OUTGOING`, because the kernel hands a packet socket every loopback packet twice
   (once going out, once coming in).
3. The BPF filter, compiled by libpcap through ctypes (no scapy: importing it takes ~1.8 s) and
   attached with `SO_ATTACH_FILTER`. On `any`, behind a test that refuses loopback's outgoing
   copies (`without_loopback_outgoing`), with or without a filter: `any` cannot use
   `PACKET_IGNORE_OUTGOING`, which would drop every interface's outgoing packets.
4. The TPACKET_V3 receive ring (`ring.py`), when it can be had.
5. `bind((iface, ETH_P_ALL))`: from here on packets queue up; `ready` is set.

Each `recvmsg_into` goes into one preallocated 256 KiB buffer (a loopback frame is at most
65,549 bytes: 65,535 of IP plus the Ethernet header), and the packet's bytes are copied out once.
`PACKET_OUTGOING` copies on loopback are also dropped in user space, for kernels older than 4.20
without `PACKET_IGNORE_OUTGOING`. The kernel's own counters (`PACKET_STATISTICS`, reset on
every read) are accumulated in `stats`.

Link types: Ethernet and loopback devices give `LINKTYPE_ETHERNET` (Linux's loopback has a zeroed
Ethernet header); devices without a link header (TUN, WireGuard: `ARPHRD_NONE`) give
`LINKTYPE_RAW`; anything else, and the pseudo-interface `any` (an unbound socket), is captured
"cooked" (`SOCK_DGRAM`) and written as `LINKTYPE_LINUX_SLL` with a header built from the
socket address, exactly like libpcap's `any` device. A filter for a cooked socket is compiled for
raw IP, because the kernel runs it on the packet from its network header.

`LiveSource` is not thread-safe, except `stop()`, which may be called from another thread or a
signal handler and wakes a blocked `poll()` at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from tcpdiag.capture import ring as packet_ring
from tcpdiag.errors import CaptureError
from tcpdiag.model import LinkType, RawPacket

# Linux constants Python's socket module does not export (values from linux/if_packet.h,
# asm-generic/socket.h, linux/if_arp.h).
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE

# The largest frame we accept in one read: well above a loopback frame (65,549 bytes).
RECV_BUFFER = 256 * 1024
# tcpdump's default snap length: nothing is cut.
DEFAULT_SNAPLEN = 262_144
# Kernel receive buffer asked for (SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by
# net.core.rmem_max). 32 MiB absorbs ~500 maximum-size loopback frames while we are busy.
DEFAULT_BUFFER = 32 << 20
# Packets taken from the socket per poll() call, so a flood cannot starve the caller's ticks.
MAX_BATCH = 256

PERMISSION_HINT = (
    "capturing on {iface} needs root or CAP_NET_RAW "
    "(e.g. sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3)))"
)

_TIMESPEC = struct.Struct("@qq")
_AUXDATA = struct.Struct("@IIIHHHH")
_STATS = struct.Struct("@II")
_SLL = struct.Struct("!HHH8sH")
_VLAN = struct.Struct("!HH")
_PROTOCOL = struct.Struct("!H")


class LiveCaptureError(CaptureError):
    """The interface cannot be captured on (permission, unknown interface, bad filter)."""


class LivePermissionError(LiveCaptureError):
    pass


class UnknownInterfaceError(LiveCaptureError):
    pass


class FilterError(LiveCaptureError):
    pass


@dataclass(slots=True)
class LiveStats:
    """Counters of a live capture. `kernel_*` come from PACKET_STATISTICS (accumulated)."""

    packets: int = 0  # RawPackets delivered (frames 1..packets)
    bytes: int = 0  # captured bytes delivered
    outgoing_dropped: int = 0  # loopback outgoing duplicates dropped in user space
    kernel_packets: int = 0  # packets that passed the filter (including those dropped)
    kernel_drops: int = 0  # packets the kernel dropped because our buffer was full


def interface_names() -> list[str]:
    """Names of the interfaces that exist, in index order."""
    return [name for _index, name in socket.if_nameindex()]


def unknown_interface_message(iface: str) -> str:
    names = interface_names()
    return f"no such interface {iface!r}; interfaces: {', '.join([*names, 'any'])}"


# -- BPF through libpcap ------------------------------------------------------------------------


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_LIBPCAP_NAMES = ("libpcap.so", "libpcap.so.1", "libpcap.so.0.8")
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


def load_libpcap() -> ctypes.CDLL | None:
    """libpcap through ctypes, or None when it is not installed."""
    names = list(_LIBPCAP_NAMES)
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def compile_filter(expression: str, linktype: int, snaplen: int = DEFAULT_SNAPLEN) -> bytes:
    """Compile a tcpdump filter expression to classic BPF: `struct sock_filter[]` bytes.

    Raises FilterError when libpcap is missing or the expression does not compile.
    """
    lib = load_libpcap()
    if lib is None:
        raise FilterError(
            "a capture filter (-f) needs libpcap, which is not installed "
            "(apt-get install libpcap0.8, or install tcpdump)"
        )
    # pcap_open_dead() takes a DLT_ value: they equal the LINKTYPE_ ones except LINKTYPE_RAW
    # (101), which is DLT_RAW (12 on Linux).
    dlt = 12 if linktype == int(LinkType.RAW) else linktype
    handle = lib.pcap_open_dead(dlt, snaplen)
    if not handle:
        raise FilterError(f"libpcap cannot compile filters for link type {linktype}")
    program = _BpfProgram()
    try:
        rc = lib.pcap_compile(
            handle, ctypes.byref(program), expression.encode(), 1, PCAP_NETMASK_UNKNOWN
        )
        if rc != 0:
            err = lib.pcap_geterr(handle) or b"cannot compile"
            raise FilterError(f"bad capture filter {expression!r}: {err.decode(errors='replace')}")
        try:
            size = program.bf_len * ctypes.sizeof(_BpfInsn)
            return ctypes.string_at(program.bf_insns, size)
        finally:
            lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER with a compiled program (the kernel copies it during the call)."""
    count = len(program) // ctypes.sizeof(_BpfInsn)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(count, ctypes.cast(buf, ctypes.c_void_p).value)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


# Classic BPF, to leave loopback's outgoing copies out in the kernel on `any` (linux/filter.h).
_BPF_INSN = struct.Struct("=HBBI")
_BPF_LD_ABS_W, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_SKF_AD_PKTTYPE, _SKF_AD_HATYPE = 0xFFFFF000 + 4, 0xFFFFF000 + 28  # SKF_AD_OFF + ...
_BPF_MAXINSNS = 4096
_WHOLE_PACKET = 0xFFFFFFFF  # a filter's return value is how much of the packet to keep


def without_loopback_outgoing(program: bytes | None) -> bytes | None:
    """`program` (None: every packet, whole) behind a test that refuses loopback's outgoing
    copies: the device type and packet type are the kernel's ancillary loads, so `any` gets
    each loopback packet once, as the incoming copy, and the ring does not fill with the others
    (half of the packets on a busy loopback). Classic BPF jumps are relative, so the program
    runs unchanged after the test. None when the result would exceed the kernel's limit."""
    body = program if program is not None else _BPF_INSN.pack(_BPF_RET_K, 0, 0, _WHOLE_PACKET)
    prefix = b"".join(
        _BPF_INSN.pack(*insn)
        for insn in (
            (_BPF_LD_ABS_W, 0, 0, _SKF_AD_HATYPE),
            (_BPF_JEQ_K, 0, 3, ARPHRD_LOOPBACK),  # not loopback: to the program
            (_BPF_LD_ABS_W, 0, 0, _SKF_AD_PKTTYPE),
            (_BPF_JEQ_K, 0, 1, PACKET_OUTGOING),  # not going out: to the program
            (_BPF_RET_K, 0, 0, 0),  # loopback, going out: refused
        )
    )
    if (len(prefix) + len(body)) // _BPF_INSN.size > _BPF_MAXINSNS:
        return None
    return prefix + body


# -- the source ---------------------------------------------------------------------------------


SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16sH14s")  # ifr_name, then ifr_hwaddr: sa_family (the ARPHRD_ type)


def _interface_hatype(iface: str) -> int | None:
    """The interface's ARPHRD_* type, from the kernel (needs no privilege), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            ifreq = _IFREQ.pack(iface.encode()[:15], 0, b"")
            _name, family, _addr = _IFREQ.unpack(fcntl.ioctl(probe, SIOCGIFHWADDR, ifreq))
            return int(family)
    except OSError:
        pass
    try:
        with open(f"/sys/class/net/{iface}/type", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


class LiveSource:
    """Packets captured on one interface, in arrival order, numbered from frame 1.

    ```python
    with LiveSource("lo", "tcp port 443") as src:   # opens; raises LiveCaptureError
        src.ready.is_set()                          # True: packets from now on are captured
        for raw in src: ...                         # blocks; ends after stop()
        # or: batch = src.poll(timeout=1.0)         # [] when nothing came in time
    src.stats                                       # LiveStats
    ```
    """

    def __init__(
        self,
        interface: str,
        bpf: str | None = None,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        buffer_size: int = DEFAULT_BUFFER,
        ring: bool = True,
    ) -> None:
        if snaplen <= 0:
            raise ValueError("snaplen must be positive")
        self.interface = interface
        self.bpf = bpf or None
        self.snaplen = snaplen
        self.buffer_size = buffer_size
        # Read through a TPACKET_V3 ring when the interface and the build allow it (`ring.py`):
        # `ring` is then the PacketRing, and `poll_records` gives the packets as pcap records.
        self._want_ring = ring
        self.ring: packet_ring.PacketRing | None = None
        self._pending = b""  # records of a ring block not delivered yet, from _pending_pos
        self._pending_pos = 0
        self._pending_left = 0
        self.linktype = int(LinkType.ETHERNET)
        self.cooked = False
        self.effective_buffer = 0
        self.ready = threading.Event()
        self.stats = LiveStats()
        self._sock: socket.socket | None = None
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._ancsize = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)
        self._drop_outgoing = False  # loopback: drop PACKET_OUTGOING copies
        self._stopped = False
        self._wake_r = self._wake_w = -1
        self._poller = select.poll()
        # Why the capture ended early (the interface went away...), or None.
        self.error: str | None = None

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> LiveSource:
        iface = self.interface
        hatype: int | None = None
        if iface != "any":
            if iface not in interface_names():
                raise UnknownInterfaceError(unknown_interface_message(iface))
            hatype = _interface_hatype(iface)
        if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            self.linktype = int(LinkType.ETHERNET)
        elif hatype == ARPHRD_NONE:
            self.linktype = int(LinkType.RAW)
        else:
            self.linktype = int(LinkType.LINUX_SLL)
            self.cooked = True
        self._drop_outgoing = hatype == ARPHRD_LOOPBACK or iface == "any"
        # Compile first: a bad filter is a usage error and needs no privilege.
        program = None
        if self.bpf is not None:
            filter_linktype = int(LinkType.RAW) if self.cooked else self.linktype
            program = compile_filter(self.bpf, filter_linktype, self.snaplen)
        kind = socket.SOCK_DGRAM if self.cooked else socket.SOCK_RAW
        # Protocol 0 receives nothing until bind(): no packet gets in before the filter. `any`
        # cannot be bound (it is every interface), so it starts with ETH_P_ALL and drains what
        # raced in before the filter was attached, as libpcap does.
        protocol = socket.htons(ETH_P_ALL) if iface == "any" else 0
        try:
            sock = socket.socket(socket.AF_PACKET, kind, protocol)
        except PermissionError:
            raise LivePermissionError(PERMISSION_HINT.format(iface=iface)) from None
        except OSError as exc:
            raise LiveCaptureError(f"cannot capture on {iface}: {exc.strerror or exc}") from None
        try:
            self._configure(sock, program, hatype)
            self._set_up_ring(sock)
            if iface == "any":
                # (After the ring: what raced in is in the socket's queue, the rest in the ring.)
                self._drain(sock)
            else:
                sock.bind((iface, ETH_P_ALL))
        except OSError as exc:
            if self.ring is not None:
                self.ring.close()
                self.ring = None
            sock.close()
            if isinstance(exc, PermissionError):
                raise LivePermissionError(PERMISSION_HINT.format(iface=iface)) from None
            raise LiveCaptureError(f"cannot capture on {iface}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(sock.fileno(), select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)
        self.ready.set()
        return self

    def _configure(self, sock: socket.socket, program: bytes | None, hatype: int | None) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.buffer_size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.buffer_size)
        self.effective_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        if hatype == ARPHRD_LOOPBACK:
            # Linux 4.20+; older kernels: the user-space check in _read_one() does it.
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        if self.interface == "any":
            # (A kernel refusing the ancillary loads: the user-space check does it.)
            prefixed = without_loopback_outgoing(program)
            if prefixed is not None:
                try:
                    attach_filter(sock, prefixed)
                    return
                except OSError:
                    pass
        if program is not None:
            attach_filter(sock, program)

    def _set_up_ring(self, sock: socket.socket) -> None:
        """A ring before bind(), so that every packet goes through it; without one (no C
        extension, an old kernel, no memory for it), packets are read with recvmsg."""
        if not self._want_ring or not packet_ring.available():
            return
        try:
            self.ring = packet_ring.PacketRing(
                sock, self.buffer_size, self.snaplen, self._drop_outgoing, self.cooked
            )
        except OSError as exc:
            logging.getLogger(__name__).debug("no packet ring (%s): reading with recvmsg", exc)
            return
        self.effective_buffer = self.ring.size

    def _drain(self, sock: socket.socket) -> None:
        # Packets that raced in between socket() and the filter being attached.
        sock.setblocking(False)
        while True:
            try:
                sock.recv(RECV_BUFFER)
            except BlockingIOError:
                break
        with contextlib.suppress(OSError):
            sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)

    def __enter__(self) -> LiveSource:
        if self._sock is None:
            self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def fileno(self) -> int:
        if self._sock is None:
            raise ValueError("the live source is not open")
        return self._sock.fileno()

    def stop(self) -> None:
        """Make poll() return [] and iteration end, now (any thread, signal handlers too)."""
        self._stopped = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    @property
    def stopped(self) -> bool:
        return self._stopped

    def poll(self, timeout: float | None = None, max_packets: int = MAX_BATCH) -> list[RawPacket]:
        """Wait up to `timeout` seconds (None: forever) for packets; return up to `max_packets`.

        Returns [] on timeout or once stopped.
        """
        if self._sock is None or self._stopped:
            return []
        out = self._read_batch(max_packets)
        if out:
            return out
        self._wait(timeout)
        if self._stopped:
            return []
        return self._read_batch(max_packets)

    def poll_records(self, timeout: float | None = None, max_packets: int = 1 << 30) -> bytes:
        """With a ring: like `poll`, up to `max_packets` packets as little-endian nanosecond
        pcap records (`ring.py`), numbered on from `stats.packets` as it was before the call;
        b"" on timeout or once stopped."""
        if self._sock is None or self._stopped:
            return b""
        records = self._take_records(max_packets)
        if records:
            return records
        self._wait(timeout)
        if self._stopped:
            return b""
        return self._take_records(max_packets)

    def backlog(self) -> bool:
        """With a ring: whether packets handed over by the kernel wait to be taken."""
        return self._pending_left > 0 or (self.ring is not None and self.ring.ready())

    def _wait(self, timeout: float | None) -> None:
        ms = None if timeout is None else max(0, int(timeout * 1000))
        self._poller.poll(ms)

    def __iter__(self) -> Iterator[RawPacket]:
        while not self._stopped:
            yield from self.poll(0.5)

    def drain(self, max_packets: int = 1 << 20, max_seconds: float = 2.0) -> list[RawPacket]:
        """What the kernel had already queued, read without waiting, even after stop(): a
        Ctrl-C right after the traffic must not lose its last packets (tcpdump does)."""
        out: list[RawPacket] = []
        sock = self._sock
        if sock is None or self.error is not None:
            return out
        if self.ring is not None:
            first = self.stats.packets
            for records in self.drain_records(max_packets, max_seconds):
                packets = packet_ring.raw_packets(records, first, self.linktype)
                out.extend(packets)
                first += len(packets)
            return out
        deadline = time.monotonic() + max_seconds
        while len(out) < max_packets and time.monotonic() < deadline:
            batch = self._read_batch(min(MAX_BATCH, max_packets - len(out)))
            if not batch:
                break
            out.extend(batch)
        return out

    def drain_records(self, max_packets: int = 1 << 20, max_seconds: float = 2.0) -> list[bytes]:
        """`drain` with a ring, as pcap records. The block the kernel is filling is handed
        over `ring.RETIRE_MS` after its first packet: waited for once, so that a Ctrl-C right
        after the traffic does not lose it."""
        out: list[bytes] = []
        if self.ring is None or self._sock is None or self.error is not None:
            return out
        deadline = time.monotonic() + max_seconds
        left = max_packets
        waited = False
        while left > 0 and time.monotonic() < deadline:
            before = self.stats.packets
            records = self._take_records(left)
            if not records:
                if waited:
                    break
                time.sleep(2 * packet_ring.RETIRE_MS / 1000)
                waited = True
                continue
            out.append(records)
            left -= self.stats.packets - before
        return out

    def _take_records(self, max_packets: int) -> bytes:
        """Up to `max_packets` packets of the ring (what is left of the last block first), or
        b"" when the kernel has handed over nothing more. Counted in `stats` here."""
        ring = self.ring
        if ring is None or max_packets <= 0:
            return b""
        while not self._pending_left:
            try:
                got = ring.take()
            except ValueError as exc:  # the kernel's block layout is not what we know
                self.error = f"capture on {self.interface} stopped: {exc}"
                self._stopped = True
                return b""
            if got is None:
                return b""
            records, packets, dropped = got
            self.stats.outgoing_dropped += dropped
            self._pending, self._pending_pos, self._pending_left = records, 0, packets
        pos = self._pending_pos
        if self._pending_left <= max_packets:
            count = self._pending_left
            records = self._pending[pos:] if pos else self._pending
            self._pending, self._pending_pos, self._pending_left = b"", 0, 0
        else:
            count = max_packets
            end = packet_ring.split_records(self._pending, pos, count)
            records = self._pending[pos:end]
            self._pending_pos = end
            self._pending_left -= count
        self.stats.packets += count
        self.stats.bytes += len(records) - packet_ring.RECORD_HEADER.size * count
        return records

    def _read_batch(self, limit: int) -> list[RawPacket]:
        if self.ring is not None:
            first = self.stats.packets
            records = self._take_records(limit)
            return packet_ring.raw_packets(records, first, self.linktype) if records else []
        out: list[RawPacket] = []
        sock = self._sock
        assert sock is not None
        while len(out) < limit:
            raw = self._read_one(sock)
            if raw is None:
                break
            if raw.frame:
                out.append(raw)
        return out

    def _read_one(self, sock: socket.socket) -> RawPacket | None:
        """One packet; None when the socket is empty; frame 0 for a packet to skip."""
        try:
            nbytes, ancdata, _flags, addr = sock.recvmsg_into(
                [self._view], self._ancsize, socket.MSG_TRUNC
            )
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            # The interface went down or away: end the capture, keep what was captured.
            self.error = f"capture on {self.interface} stopped: {exc.strerror or exc}"
            self._stopped = True
            return None
        # addr: (ifname, protocol, pkttype, hatype, hwaddr)
        if self._drop_outgoing and addr[2] == PACKET_OUTGOING and addr[3] == ARPHRD_LOOPBACK:
            self.stats.outgoing_dropped += 1
            return _SKIP
        ts_ns = 0
        orig_len = nbytes
        vlan: bytes | None = None
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(data)
                ts_ns = sec * 1_000_000_000 + nsec
            elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, tp_len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(data)
                orig_len = max(orig_len, tp_len)
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    vlan = _VLAN.pack(tpid, tci)
        if not ts_ns:
            ts_ns = time.time_ns()
        got = min(nbytes, RECV_BUFFER)
        if self.cooked:
            proto, pkttype, hatype, hwaddr = addr[1], addr[2], addr[3], addr[4]
            if vlan is None:
                header = _SLL.pack(pkttype, hatype, len(hwaddr), hwaddr[:8], proto)
            else:  # as libpcap: the tag's TPID in the protocol field, then TCI and protocol
                tpid = _VLAN.unpack(vlan)[0]
                header = _SLL.pack(pkttype, hatype, len(hwaddr), hwaddr[:8], tpid)
                header += vlan[2:] + _PROTOCOL.pack(proto)
            data = header + self._view[: min(got, max(0, self.snaplen - len(header)))].tobytes()
            orig_len += len(header)
        elif vlan is not None and got >= 12:
            data = (self._view[:12].tobytes() + vlan + self._view[12:got].tobytes())[: self.snaplen]
            orig_len += len(vlan)
        else:
            data = self._view[: min(got, self.snaplen)].tobytes()
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(data)
        return RawPacket(stats.packets, ts_ns, self.linktype, data, orig_len)

    def update_stats(self) -> LiveStats:
        """Read (and reset) the kernel's counters into `stats`; returns `stats`."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
                packets, drops = _STATS.unpack(raw)
                self.stats.kernel_packets += packets
                self.stats.kernel_drops += drops
        return self.stats

    def close(self) -> None:
        if self._sock is not None:
            self.update_stats()
            if self.ring is not None:
                self.ring.close()
            self._sock.close()
            self._sock = None
        self._stopped = True
        # Forget the descriptors before closing them: a late stop() must not write to a reused fd.
        fds = (self._wake_r, self._wake_w)
        self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


_SKIP = RawPacket(0, 0, 0, b"", 0)


# -- the tshark engine (pyshark) ----------------------------------------------------------------

# Wiretap encapsulation (tshark's frame.encap_type) -> LINKTYPE_* for the ones tcpdiag decodes.
_WTAP_TO_LINKTYPE = {
    1: int(LinkType.ETHERNET),
    7: int(LinkType.RAW),  # WTAP_ENCAP_RAW_IP
    15: int(LinkType.NULL),
    25: int(LinkType.LINUX_SLL),
    210: int(LinkType.LINUX_SLL2),
}

PYSHARK_MISSING = (
    "--engine tshark needs pyshark and tshark "
    "(pip install 'tcpdiag[pyshark]'; apt-get install tshark)"
)


def _dumpcap_linktype(hatype: int | None) -> int:
    """The link type dumpcap captures an interface of this ARPHRD_ type in."""
    if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return int(LinkType.ETHERNET)
    if hatype == ARPHRD_NONE:
        return int(LinkType.RAW)
    return int(LinkType.LINUX_SLL)


def _pyshark_fields(packet: object) -> tuple[bytes, int, int, int]:
    """(frame bytes, ts_ns, original length, wiretap encapsulation) of a pyshark packet with
    raw data, EK or JSON mode."""
    info = packet.frame_info  # type: ignore[attr-defined]
    fields = getattr(info, "_fields_dict", None)
    if isinstance(fields, dict) and "frame_frame_len" in fields:  # EK
        raw = getattr(packet.frame_raw, "_fields_dict", "")  # type: ignore[attr-defined]
        if isinstance(raw, list):
            raw = raw[0]
        return (
            bytes.fromhex(str(raw)),
            _epoch_ns(str(fields["frame_frame_time_epoch"])),
            int(fields["frame_frame_len"]),
            int(fields.get("frame_frame_encap_type", 1)),
        )
    data: bytes = packet.get_raw_packet()  # type: ignore[attr-defined]
    return (
        data,
        _epoch_ns(str(info.time_epoch)),
        int(info.len),
        int(getattr(info, "encap_type", 1)),
    )


class _ReadyHandler(logging.Handler):
    def __init__(self, ready: threading.Event) -> None:
        super().__init__(logging.DEBUG)
        self._ready = ready

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Capturing on"):
            self._ready.set()


def _epoch_ns(text: str) -> int:
    """'1795320935.775775154' -> integer nanoseconds, without a float's rounding."""
    sec, _, frac = text.strip().partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


class TsharkSource:
    """The same interface as LiveSource, fed by tshark through pyshark's raw JSON mode.

    For interfaces or privileges AF_PACKET cannot handle (dumpcap is often installed with
    capabilities for the `wireshark` group, so an unprivileged user can capture through it).
    pyshark runs tshark in a thread of its own; packets cross over through a bounded queue.
    Much slower than AF_PACKET (tshark dissects and prints JSON): for light traffic.
    """

    def __init__(
        self,
        interface: str,
        bpf: str | None = None,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        tshark_path: str | None = None,
    ) -> None:
        import queue

        self.interface = interface
        self.bpf = bpf or None
        self.snaplen = snaplen
        self.tshark_path = tshark_path
        self.linktype = int(LinkType.ETHERNET)
        self.cooked = False
        self.effective_buffer = 0
        self.ready = threading.Event()
        self.stats = LiveStats()
        self._queue: queue.Queue[RawPacket | BaseException | None] = queue.Queue(maxsize=65536)
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._capture: object = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._killed: list[object] = []

    def open(self) -> TsharkSource:
        import shutil

        try:
            import pyshark  # noqa: F401
        except ImportError:
            raise LiveCaptureError(PYSHARK_MISSING) from None
        if self.tshark_path is None and shutil.which("tshark") is None:
            raise LiveCaptureError(PYSHARK_MISSING)
        if self.interface != "any" and self.interface not in interface_names():
            raise UnknownInterfaceError(unknown_interface_message(self.interface))
        if self.bpf is not None and load_libpcap() is not None:
            # dumpcap announces "Capturing on" before it rejects a bad filter, and pyshark then
            # waits forever: check the filter with the same libpcap first.
            hatype = None if self.interface == "any" else _interface_hatype(self.interface)
            compile_filter(self.bpf, _dumpcap_linktype(hatype), self.snaplen)
        self._thread = threading.Thread(target=self._run, name="tcpdiag-tshark", daemon=True)
        self._thread.start()
        # dumpcap says "Capturing on 'lo'" on stderr once it listens; pyshark logs its stderr
        # lines, and a handler on that logger sets `ready`. Bounded: dumpcap may hang, or fail
        # (no permission, bad filter), which ends the thread.
        deadline = time.monotonic() + 30.0
        while not self.ready.wait(0.1):
            if self._done.is_set() or time.monotonic() > deadline:
                break
        if not self.ready.is_set() or self._error is not None:
            self.close()
            why = self._error or getattr(self._capture, "_last_error_line", None)
            if not why and not self._done.is_set():
                why = "dumpcap did not start in 30 s"
            raise LiveCaptureError(
                f"tshark could not capture on {self.interface}: {why or 'tshark exited'}"
            )
        return self

    def _run(self) -> None:
        import asyncio

        import pyshark

        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            capture = pyshark.LiveCapture(
                interface=self.interface,
                bpf_filter=self.bpf,
                # EK (one JSON object per line), not use_json: pyshark finds the end of a
                # -T json packet only when the next one starts, so every packet would be held
                # back until the next arrives (the last one forever).
                use_ek=True,
                include_raw=True,
                tshark_path=self.tshark_path,
                custom_parameters=["-s", str(self.snaplen)],
            )
            self._capture = capture
            capture._log.setLevel(logging.DEBUG)
            capture._log.addHandler(_ReadyHandler(self.ready))
            for packet in capture.sniff_continuously():
                if self._stopped:
                    break
                self._queue.put(self._raw(packet))
        except BaseException as exc:  # handed to the reading thread, which reports it
            self._error = exc
            self._queue.put(exc)
        finally:
            # Our close() kills what is left; pyshark's __del__ would otherwise try to close
            # through this thread's event loop at interpreter exit and print a traceback.
            with contextlib.suppress(Exception):
                self._killed = list(getattr(self._capture, "_running_processes", ()))
                self._capture._running_processes.clear()  # type: ignore[attr-defined]
            self._queue.put(None)
            self._done.set()

    def _raw(self, packet: object) -> RawPacket:
        data, ts_ns, orig_len, encap = _pyshark_fields(packet)
        if encap not in _WTAP_TO_LINKTYPE:
            raise LiveCaptureError(f"tshark encapsulation {encap} is not supported")
        self.linktype = _WTAP_TO_LINKTYPE[encap]
        self.stats.packets += 1
        self.stats.bytes += len(data)
        return RawPacket(self.stats.packets, ts_ns, self.linktype, data, orig_len)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            self._queue.put_nowait(None)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def poll(self, timeout: float | None = None, max_packets: int = MAX_BATCH) -> list[RawPacket]:
        import queue

        out: list[RawPacket] = []
        if self._stopped:
            return out
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                if item is None:
                    self._stopped = True
                    break
                if isinstance(item, BaseException):
                    raise LiveCaptureError(f"tshark failed on {self.interface}: {item}")
                out.append(item)
                if len(out) >= max_packets:
                    break
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        return out

    def __iter__(self) -> Iterator[RawPacket]:
        while not self._stopped:
            yield from self.poll(0.5)

    def drain(self, max_packets: int = 1 << 20, max_seconds: float = 2.0) -> list[RawPacket]:
        """Packets tshark has already handed over (it has its own latency: not waited for)."""
        import queue

        out: list[RawPacket] = []
        while len(out) < max_packets:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RawPacket):
                out.append(item)
        return out

    def update_stats(self) -> LiveStats:
        return self.stats

    def close(self) -> None:
        self._stopped = True
        # pyshark's own close() needs its event loop, which runs in our thread: kill tshark and
        # dumpcap instead; the thread then sees the end of tshark's output and returns.
        processes = [*getattr(self._capture, "_running_processes", ()), *self._killed]
        for process in processes:
            with contextlib.suppress(Exception):
                os.kill(int(process.pid), signal.SIGTERM)
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> TsharkSource:
        if self._thread is None:
            self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
