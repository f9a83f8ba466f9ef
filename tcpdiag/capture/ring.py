"""A TPACKET_V3 receive ring: the packets of a live capture in blocks, as pcap records.

Theory of operation
-------------------
`recvmsg` costs a system call and a Python object per packet; on loopback, `tcpdiag live` kept
up with ~100k packets/s and dropped a third of a 200k packets/s replay. With a ring
(`PACKET_RX_RING`, version 3, as libpcap uses) the kernel writes packets into blocks of a
buffer mapped into our memory and hands a block over when it is full or `RETIRE_MS` after its
first packet. `_ring.take_block` (C) copies a handed-over block's packets out as nanosecond pcap
records, little-endian (`PcapWriter(nanosecond=True)`'s layout), and gives the block back: the
kernel can fill it again while we analyse. The records then go to the C block reader as a
capture file's would (`Engine.feed_records`), and to `-w` as they are.

A record is what `LiveSource` made of the same packet with `recvmsg` (`_ring.c` says how;
`tests/live/test_ring.py` captures the same packets both ways and compares them). On a socket
that captures "cooked" (`any`), the kernel gives each packet from its network header on, and
`_ring.c` puts the Linux cooked header made from the packet's address in front, as `recvmsg`
reading does.

Sizes: blocks of `BLOCK_SIZE` (1 MiB), or larger to hold a packet of the snap length whole;
as many as fit the buffer size asked for (`-B`), at least `MIN_BLOCKS`.

Not used (`LiveSource` reads with `recvmsg`) when the C extensions are not built, or when the
kernel refuses the ring.
"""

from __future__ import annotations

import mmap
import socket
import struct
from types import ModuleType

from tcpdiag._native import pure_requested
from tcpdiag.model import RawPacket

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2

BLOCK_SIZE = 1 << 20
MIN_BLOCKS = 2
# A block the kernel has begun to fill is handed over this long after its first packet even
# when not full: the latency of a quiet link, and how long `drain` waits for the last one.
RETIRE_MS = 50
# The kernel's header before each packet in a block (tpacket3_hdr + sockaddr_ll, aligned).
_PACKET_OVERHEAD = 48 + 20 + 16
_FRAME_SIZE = 2048  # only counts frames for the kernel's bookkeeping in version 3

RECORD_HEADER = struct.Struct("<IIII")  # ts_sec, ts_nsec, caplen, orig_len
_BLOCK_STATUS = struct.Struct("=I")  # tpacket_block_desc.hdr.bh1.block_status, at offset 8
TP_STATUS_USER = 1


def _native() -> ModuleType | None:
    if pure_requested():
        return None
    try:
        from tcpdiag.capture import _ring
    except ImportError:  # a pure-Python install
        return None
    return _ring if _ring.AVAILABLE else None


_RING = _native()


def available() -> bool:
    """True when rings can be used here: Linux, and the C extension built and allowed."""
    return _RING is not None


def block_size_for(snaplen: int) -> int:
    """Blocks hold a packet of `snaplen` bytes whole, with the kernel's header."""
    size = BLOCK_SIZE
    while size < snaplen + _PACKET_OVERHEAD:
        size <<= 1
    return size


class PacketRing:
    """The receive ring of one packet socket, set up before the socket is bound."""

    # Seconds after which a packet is surely handed over: its block's retire timeout, twice.
    lag = 2 * RETIRE_MS / 1000

    def __init__(
        self,
        sock: socket.socket,
        buffer_size: int,
        snaplen: int,
        drop_outgoing: bool,
        cooked: bool = False,
    ) -> None:
        native = _RING
        if native is None:
            raise OSError("packet rings are not available here")
        self._take = native.take_block
        self.block_size = block_size_for(snaplen)
        self.blocks = max(MIN_BLOCKS, buffer_size // self.block_size)
        self.snaplen = snaplen
        self.drop_outgoing = drop_outgoing
        self.cooked = cooked  # records start with a Linux cooked header
        frames = self.block_size // _FRAME_SIZE * self.blocks
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        request = struct.pack(
            "=7I", self.block_size, self.blocks, _FRAME_SIZE, frames, RETIRE_MS, 0, 0
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self.size = self.block_size * self.blocks
        try:
            self._map: mmap.mmap | None = mmap.mmap(
                sock.fileno(), self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError:
            # Packets would go to a ring nobody reads: take it down, so that recvmsg gets them.
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, bytes(len(request)))
            raise
        self._next = 0  # the block the kernel hands over next

    def take(self) -> tuple[bytes, int, int] | None:
        """The next handed-over block as (records, packets, loopback outgoing copies left out),
        given back to the kernel; None when the kernel still has it."""
        ring = self._map
        if ring is None:
            return None
        got: tuple[bytes, int, int] | None = self._take(
            ring,
            self._next * self.block_size,
            self.block_size,
            self.snaplen,
            self.drop_outgoing,
            self.cooked,
        )
        if got is not None:
            self._next = (self._next + 1) % self.blocks
        return got

    def ready(self) -> bool:
        """Whether the kernel has handed over the next block (`take` would return it)."""
        ring = self._map
        if ring is None:
            return False
        offset = self._next * self.block_size + 8
        return bool(_BLOCK_STATUS.unpack_from(ring, offset)[0] & TP_STATUS_USER)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


def split_records(records: bytes, pos: int, count: int) -> int:
    """The position after `count` whole records of `records` from `pos` (or its end)."""
    end = len(records)
    for _ in range(count):
        if pos >= end:
            break
        pos += RECORD_HEADER.size + RECORD_HEADER.unpack_from(records, pos)[2]
    return min(pos, end)


def raw_packets(records: bytes, frame: int, linktype: int) -> list[RawPacket]:
    """The records as RawPackets numbered from `frame` + 1 (what `recvmsg` reading gives)."""
    out: list[RawPacket] = []
    pos, end = 0, len(records)
    unpack = RECORD_HEADER.unpack_from
    while pos < end:
        sec, nsec, caplen, orig_len = unpack(records, pos)
        pos += RECORD_HEADER.size
        frame += 1
        out.append(
            RawPacket(
                frame, sec * 1_000_000_000 + nsec, linktype, records[pos : pos + caplen], orig_len
            )
        )
        pos += caplen
    return out
