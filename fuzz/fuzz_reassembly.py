"""Fuzz target: the flow table and TCP reassembly, Zeek-style: the input is a script of
segments in both directions of a few connections.

Each 6-byte op is one segment: byte 0 = direction (bit 0), SYN/FIN/RST/ACK flags (bits 1-4),
"payload differs from the stream" (bit 5), which of four connections (bits 6-7); bytes 1-2 =
signed offset of its sequence number from the sender's next one (retransmissions, overlaps,
holes); byte 3 = payload length; byte 4 = signed offset of the ACK; byte 5 = time step (ms, or
minutes when above 250: idle expiry). Payload bytes are a fixed function of the sequence number,
so wherever the input never sent differing bytes the reassembled stream must equal that
function: what `on_data` delivers is checked byte for byte, and deliveries must be contiguous,
in order and never overlap (bad-inputs H2 under a fuzzer). Tiny limits (4 flows, 4 KiB
buffers) keep eviction and the reassembly cap in play.
"""

from __future__ import annotations

import os
import struct

import common

with common.instrumented():
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.errors import TcpdiagError
    from tcpdiag.findings import tcp_rules
    from tcpdiag.flow import Flow, FlowTable
    from tcpdiag.model import ACK, FIN, NO_OPTIONS, RST, SYN, Segment

MASK = 0xFFFFFFFF
# The content of the byte at sequence number s is CONTENT[d][s % PERIOD]: PERIOD divides 2**32,
# so the function is continuous across sequence wraparound.
PERIOD = 1 << 16
CONTENT = [bytes(((i * 2654435761) >> 11 ^ d * 0x5A) & 0xFF for i in range(PERIOD)) for d in (0, 1)]
OP = struct.Struct("!BhBbB")
ADDRS = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
CHECKED = [0]  # deliveries compared byte for byte (for the smoke test to see the check ran)
# FUZZ_SKIP_KNOWN=1 stops checking the bytes of a direction whose stream base changed: it was
# how long runs went on while that bug (now fixed: a SYN re-basing an endpoint with bytes already
# buffered) was open. Keep it for the next known bug of that kind; CI never sets it.
SKIP_KNOWN = os.environ.get("FUZZ_SKIP_KNOWN") == "1"


def content(d: int, seq: int, n: int) -> bytes:
    start = seq % PERIOD
    out = CONTENT[d][start : start + n]
    while len(out) < n:
        out += CONTENT[d][: n - len(out)]
    return out


class Recorder:
    """A StreamConsumer that checks what it is given."""

    def __init__(self, flow: Flow, dirty: list[set[int]]) -> None:
        self.wants_data = True
        self.flow = flow
        self.dirty = dirty  # per direction: connection numbers that got differing bytes
        self.next: list[int | None] = [None, None]
        self.bases: list[int | None] = [None, None]
        self.rebased = [False, False]
        self.ended = [False, False]

    def watch(self) -> None:
        """Called after every segment: notice an endpoint whose stream base changed."""
        for d in (0, 1):
            base = self.flow.endpoints[d].stream_base
            if self.bases[d] is None:
                self.bases[d] = base
            elif base != self.bases[d]:
                self.rebased[d] = True

    def _advance(self, d: int, offset: int, length: int) -> None:
        assert not self.ended[d], "data after on_end"
        assert length > 0, length
        expected = self.next[d]
        assert expected is None or offset == expected, (d, offset, expected)
        self.next[d] = offset + length

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        d = int(direction)
        self._advance(d, offset, len(data))
        # The flow's client may be either end (a SYN-ACK seen first flips it).
        end = self.flow.endpoints[d]
        client_is_first = self.flow.client[0] == ADDRS[0]
        sender = d if client_is_first else 1 - d
        if SKIP_KNOWN and self.rebased[d]:
            return
        if self.flow.key not in self.dirty[sender] and end.stream_base is not None:
            want = content(sender, (end.stream_base + offset) & MASK, len(data))
            assert data == want, ("reassembled bytes differ", d, offset, len(data))
            CHECKED[0] += 1

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        self._advance(int(direction), offset, length)

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        assert how in ("fin", "rst", "eof"), how
        self.ended[int(direction)] = True


def run(data: bytes) -> list[Flow]:
    options = AnalysisOptions()
    options.limits.max_flows = 4
    options.limits.max_flow_buffer = 4096
    options.limits.idle_timeout = 60.0
    dirty: list[set[int]] = [set(), set()]
    closed: list[Flow] = []

    def opened(flow: Flow) -> None:
        flow.consumer = Recorder(flow, dirty)

    table = FlowTable(options, on_open=opened, on_close=closed.append)
    wrap = bool(data[:1]) and data[0] & 1
    isn = [0xFFFFFF00 if wrap else 1000, 0xFFFFF000 if wrap else 5000]
    nxt = {}
    t = 1_700_000_000.0
    body = data[1:]
    for frame, i in enumerate(range(0, len(body) - OP.size + 1, OP.size), 1):
        b0, dseq, n, dack, dt = OP.unpack_from(body, i)
        d = b0 & 1
        conn = b0 >> 6
        sport = 40000 + conn
        flags = (SYN if b0 & 2 else 0) | (FIN if b0 & 4 else 0) | (RST if b0 & 8 else 0)
        flags |= ACK if b0 & 16 else 0
        seqs = nxt.setdefault(conn, list(isn))
        seq = (seqs[d] + dseq) & MASK
        ack = (seqs[1 - d] + dack) & MASK
        if flags & SYN:
            n = 0
        payload = content(d, seq, n)
        if b0 & 32 and n:
            payload = bytes(x ^ 0xA5 for x in payload)
            dirty[d].add(_key(conn))
        t += dt / 1000 if dt <= 250 else (dt - 250) * 60.0
        src, dst = (ADDRS[0], ADDRS[1]) if d == 0 else (ADDRS[1], ADDRS[0])
        ports = (sport, 443) if d == 0 else (443, sport)
        seg = Segment(frame, t, 4, src, dst, *ports, seq, ack, flags, 65535, n, payload, NO_OPTIONS)
        flow = table.add(seg)
        if flow is not None and isinstance(flow.consumer, Recorder):
            flow.consumer.watch()
        end = (seq + n + (1 if flags & (SYN | FIN) else 0)) & MASK
        if ((end - seqs[d]) & MASK) < 0x80000000:
            seqs[d] = end
    table.finish()
    return closed


def _key(conn: int) -> object:
    from tcpdiag.model import flow_key

    return flow_key(ADDRS[0], 40000 + conn, ADDRS[1], 443)


def test_one_input(data: bytes) -> None:
    try:
        flows = run(data)
        options = AnalysisOptions()
        for flow in flows:
            result = flow.to_result(flow.id)
            assert result.duration >= 0
            assert result.bytes_client >= 0 and result.bytes_server >= 0
            tcp_rules.diagnose(flow, options.thresholds, now=None)
    except TcpdiagError:
        return


def _ops(*ops: tuple[int, int, int, int, int]) -> bytes:
    return b"".join(OP.pack(*op) for op in ops)


def seeds() -> list[bytes]:
    hs = _ops((2, 0, 0, 0, 1), (2 | 16 | 1, 0, 0, 0, 1), (16, 0, 0, 0, 1))
    data = _ops((16, 0, 200, 0, 1), (16 | 1, 0, 0, 0, 1), (16, 0, 100, 0, 1))
    ooo = _ops((16, 100, 50, 0, 1), (16, 0, 100, 0, 1), (16, -150, 150, 0, 1))
    close = _ops((16 | 4, 0, 0, 0, 1), (16 | 4 | 1, 0, 0, 0, 1), (16, 0, 0, 0, 1))
    rst = _ops((8 | 16 | 1, 0, 0, 0, 1))
    conns = b"".join(_ops((2 | 64 * c, 0, 0, 0, 1)) for c in range(4))
    return [
        b"\x00" + hs + data + close,
        b"\x01" + hs + data + ooo + close,
        b"\x00" + data + ooo + rst,
        b"\x00" + hs + _ops((16 | 32, 0, 100, 0, 1), (16 | 32, -100, 100, 0, 1)) + close,
        b"\x00" + conns + hs + data + _ops((16, 0, 10, 0, 255)),
    ]


if __name__ == "__main__":
    common.main(test_one_input, seeds)
