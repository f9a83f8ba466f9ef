"""Terse builders of `tcpdiag.model.Segment`s for tests, and a `Conversation` that reads like a
ladder diagram.

Single segments (every field has a default; addresses as "ADDR:PORT", IPv6 as "[ADDR]:PORT"):

    syn(seq=1000)                                   # 10.0.0.1:40000 -> 10.0.0.2:80
    synack(seq=5000, ack=1001)                      # server -> client
    ack(seq=1001, ack=5001)                         # client -> server
    data(b"GET /", seq=1001, ack=5001)              # payload bytes, or an int = that many 'x'
    fin(seq=1006, ack=5001) / rst(seq=1006, ack=None)   # ack=None: no ACK flag
    any builder: frame=, time=, src=, dst=, window=, options=TcpOptions(...), length= (wire
    length larger than the captured payload, for snap-length cuts), flags= (extra bits)

A conversation tracks sequence numbers, acknowledgements, frame numbers and time for you:

    c = Conversation()                 # client 10.0.0.1:40000, server 10.0.0.2:80, ISNs 1000/5000
    c.syn()                            # C -> S  SYN            (frame 1, t = 0.000)
    c.synack(dt=0.010)                 # S -> C  SYN-ACK        (frame 2, t = 0.010)
    c.ack()                            # C -> S  ACK
    c.send("c", b"GET / HTTP/1.0\\r\\n\\r\\n")  # C -> S  data, seq advances
    c.send("s", 1400)                  # S -> C  1400 bytes
    c.ack("c")                         # C acknowledges everything the server sent
    c.retransmit(4, dt=0.2)            # frame 4 again, 200 ms later (same seq, payload)
    c.fin("c"); c.fin("s"); c.ack("c")
    flows = c.run()                    # feed a FlowTable, return the finished flows by id
    flow = c.flow()                    # ... or the single flow

Sides are "c"/"client" and "s"/"server". Every method takes `dt=` (seconds after the previous
packet, default `step` = 1 ms) or `at=` (absolute capture time), and keyword overrides for
`seq`, `ack` (an int, or None for no ACK flag), `window`, `options`. By default a segment ACKs
everything the other side has sent so far; `ack=` pins a value (e.g. a duplicate ACK).
Sequence numbers wrap modulo 2**32 like on the wire. `c.segments` is the list built so far;
`c.next_seq("c")` the client's next sequence number.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from tcpdiag.config import AnalysisOptions
from tcpdiag.flow import Flow, FlowTable
from tcpdiag.model import (
    ACK,
    FIN,
    NO_OPTIONS,
    PSH,
    RST,
    SYN,
    RawPacket,
    Segment,
    TcpOptions,
    bucket_of,
    flow_key,
    packed_key,
    tuple_key,
)

CLIENT = "10.0.0.1:40000"
SERVER = "10.0.0.2:80"
MASK = 0xFFFFFFFF


def parse_endpoint(text: str) -> tuple[bytes, int]:
    """'10.0.0.1:80' or '[::1]:80' -> (packed address, port)."""
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    return ipaddress.ip_address(addr).packed, int(port)


def segment(
    *,
    src: str = CLIENT,
    dst: str = SERVER,
    seq: int = 0,
    ack: int | None = None,
    flags: int = 0,
    payload: bytes | int = b"",
    length: int | None = None,
    window: int = 65535,
    options: TcpOptions = NO_OPTIONS,
    frame: int = 1,
    time: float = 0.0,
    ttl: int = 64,
    ip_id: int = 0,
) -> Segment:
    """The general builder: every other one is this with some flags set."""
    if isinstance(payload, int):
        payload = b"x" * payload
    s_addr, s_port = parse_endpoint(src)
    d_addr, d_port = parse_endpoint(dst)
    if ack is not None:
        flags |= ACK
    return Segment(
        frame=frame,
        time=time,
        ip_version=4 if len(s_addr) == 4 else 6,
        src=s_addr,
        dst=d_addr,
        sport=s_port,
        dport=d_port,
        seq=seq & MASK,
        ack=(ack or 0) & MASK,
        flags=flags,
        window=window,
        length=len(payload) if length is None else length,
        payload=payload,
        options=options,
        ttl=ttl,
        tuple_key=tuple_key(s_addr, s_port, d_addr, d_port),
        ip_id=ip_id,
    )


def syn(seq: int = 1000, **kw: object) -> Segment:
    """Client SYN (no ACK)."""
    kw.setdefault("options", TcpOptions(mss=1460, wscale=7, sack_permitted=True))
    return segment(seq=seq, flags=SYN, **kw)  # type: ignore[arg-type]


def synack(seq: int = 5000, ack: int = 1001, **kw: object) -> Segment:
    """Server SYN-ACK (src/dst default to server -> client)."""
    kw.setdefault("src", SERVER)
    kw.setdefault("dst", CLIENT)
    kw.setdefault("options", TcpOptions(mss=1460, wscale=7, sack_permitted=True))
    return segment(seq=seq, ack=ack, flags=SYN, **kw)  # type: ignore[arg-type]


def ack(seq: int = 1001, ack: int | None = 5001, **kw: object) -> Segment:
    """A pure ACK (client -> server by default)."""
    return segment(seq=seq, ack=ack, **kw)  # type: ignore[arg-type]


def data(
    payload: bytes | int = 100, seq: int = 1001, ack: int | None = 5001, **kw: object
) -> Segment:
    """A data segment with PSH (client -> server by default)."""
    flags = int(kw.pop("flags", PSH))  # type: ignore[call-overload]
    return segment(seq=seq, ack=ack, payload=payload, flags=flags, **kw)  # type: ignore[arg-type]


def fin(seq: int = 1001, ack: int | None = 5001, **kw: object) -> Segment:
    return segment(seq=seq, ack=ack, flags=FIN, **kw)  # type: ignore[arg-type]


def rst(seq: int = 1001, ack: int | None = None, **kw: object) -> Segment:
    """A RST; bare by default (ack=None), RST+ACK with ack=..."""
    return segment(seq=seq, ack=ack, flags=RST, **kw)  # type: ignore[arg-type]


class _Side:
    __slots__ = ("addr", "isn", "nxt", "window", "wscale")

    def __init__(self, addr: str, isn: int, window: int, wscale: int | None) -> None:
        self.addr = addr
        self.isn = isn & MASK
        self.nxt = isn & MASK  # next sequence number to send
        self.window = window
        self.wscale = wscale


_SIDES = {"c": 0, "client": 0, "s": 1, "server": 1}


class Conversation:
    """Builds a capture-ordered list of segments between a client and a server. See the module
    docstring for a tour."""

    def __init__(
        self,
        client: str = CLIENT,
        server: str = SERVER,
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        start: float = 0.0,
        step: float = 0.001,
        window: int = 65535,
        wscale: int | None = None,
        mss: int | None = 1460,
        first_frame: int = 1,
    ) -> None:
        self.sides = (
            _Side(client, client_isn, window, wscale),
            _Side(server, server_isn, window, wscale),
        )
        self.time = start
        self.step = step
        self.mss = mss
        self.frame = first_frame - 1
        self.segments: list[Segment] = []
        # Does this side ACK the peer yet? (not the client between its SYN and the SYN-ACK)
        self._acked_peer = [True, True]

    # -- helpers --------------------------------------------------------------------------

    def _side(self, who: str) -> int:
        try:
            return _SIDES[who.lower()]
        except KeyError:
            raise ValueError(f"side must be 'c'/'client' or 's'/'server', not {who!r}") from None

    def next_seq(self, who: str) -> int:
        return self.sides[self._side(who)].nxt

    def _clock(self, dt: float | None, at: float | None) -> float:
        if at is not None:
            self.time = at
        elif self.segments:
            self.time += self.step if dt is None else dt
        elif dt is not None:
            self.time += dt
        return self.time

    def _emit(
        self,
        i: int,
        flags: int,
        *,
        payload: bytes | int = b"",
        seq: int | None = None,
        ack: int | bool | None = True,
        dt: float | None = None,
        at: float | None = None,
        window: int | None = None,
        options: TcpOptions = NO_OPTIONS,
        length: int | None = None,
        advance: bool = True,
        ip_id: int = 0,
        ttl: int = 64,
    ) -> Segment:
        me, peer = self.sides[i], self.sides[1 - i]
        if isinstance(payload, int):
            payload = b"x" * payload
        wire = len(payload) if length is None else length
        s = me.nxt if seq is None else seq & MASK
        if ack is True:
            ack_val: int | None = peer.nxt if self._acked_peer[i] else None
        elif ack is False:
            ack_val = None
        else:
            ack_val = ack
        self.frame += 1
        seg = segment(
            src=me.addr,
            dst=peer.addr,
            seq=s,
            ack=ack_val,
            flags=flags,
            payload=payload,
            length=length,
            window=me.window if window is None else window,
            options=options,
            frame=self.frame,
            time=self._clock(dt, at),
            ip_id=ip_id,
            ttl=ttl,
        )
        if advance:
            end = (s + wire + (1 if flags & (SYN | FIN) else 0)) & MASK
            if ((end - me.nxt) & MASK) < 0x80000000:
                me.nxt = end
        self.segments.append(seg)
        return seg

    def _syn_options(self, i: int) -> TcpOptions:
        return TcpOptions(mss=self.mss, wscale=self.sides[i].wscale, sack_permitted=True)

    # -- the ladder -----------------------------------------------------------------------

    def syn(self, **kw: object) -> Segment:
        """Client SYN (again: a retransmission with the same ISN)."""
        c = self.sides[0]
        kw.setdefault("seq", c.isn)
        kw.setdefault("options", self._syn_options(0))
        kw.setdefault("ack", False)
        self._acked_peer[0] = False
        return self._emit(0, SYN, **kw)  # type: ignore[arg-type]

    def synack(self, **kw: object) -> Segment:
        """Server SYN-ACK (again: a retransmission)."""
        s = self.sides[1]
        kw.setdefault("seq", s.isn)
        kw.setdefault("options", self._syn_options(1))
        self._acked_peer[0] = True
        return self._emit(1, SYN, **kw)  # type: ignore[arg-type]

    def ack(self, who: str = "c", **kw: object) -> Segment:
        """A pure ACK from `who` (acknowledging everything the peer sent, unless ack=...)."""
        i = self._side(who)
        self._acked_peer[i] = True
        return self._emit(i, 0, **kw)  # type: ignore[arg-type]

    def send(self, who: str, payload: bytes | int, **kw: object) -> Segment:
        """Data from `who` (bytes, or an int: that many b'x'), with PSH."""
        i = self._side(who)
        flags = int(kw.pop("flags", PSH))  # type: ignore[call-overload]
        return self._emit(i, flags, payload=payload, **kw)  # type: ignore[arg-type]

    def fin(self, who: str, **kw: object) -> Segment:
        i = self._side(who)
        return self._emit(i, FIN, **kw)  # type: ignore[arg-type]

    def rst(self, who: str, **kw: object) -> Segment:
        """RST from `who`; with ACK by default when the peer was heard (ack=False: bare RST)."""
        i = self._side(who)
        kw.setdefault("advance", False)
        return self._emit(i, RST, **kw)  # type: ignore[arg-type]

    def retransmit(self, frame: int, **kw: object) -> Segment:
        """Resend the segment of `frame` (same seq, flags, payload and IP ID, unless ip_id=: a
        copy made by the capture when sent within a millisecond; fresh ACK unless ack=)."""
        old = next(s for s in self.segments if s.frame == frame)
        i = 0 if (old.src, old.sport) == parse_endpoint(self.sides[0].addr) else 1
        kw.setdefault("seq", old.seq)
        kw.setdefault("ip_id", old.ip_id)
        kw.setdefault("payload", old.payload)
        kw.setdefault("options", old.options)
        if old.flags & SYN and not old.flags & ACK:
            kw.setdefault("ack", False)
        return self._emit(i, old.flags & ~ACK, **kw)  # type: ignore[arg-type]

    def handshake(self, rtt: float = 0.010) -> Conversation:
        """SYN, SYN-ACK `rtt` later, ACK right after. Returns self for chaining."""
        self.syn()
        self.synack(dt=rtt)
        self.ack("c")
        return self

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        options: AnalysisOptions | None = None,
        on_open: Callable[[Flow], None] | None = None,
        segments: Iterable[Segment] | None = None,
    ) -> list[Flow]:
        """Feed the segments to a fresh FlowTable; return every finished flow, by id."""
        done: list[Flow] = []
        table = FlowTable(options, on_open=on_open, on_close=done.append)
        for seg in self.segments if segments is None else segments:
            table.add(seg)
        table.finish()
        return sorted(done, key=lambda f: f.id)

    def flow(self, options: AnalysisOptions | None = None) -> Flow:
        """The single flow these segments make (asserts there is exactly one)."""
        flows = self.run(options)
        assert len(flows) == 1, flows
        return flows[0]


def run(segments: Iterable[Segment], options: AnalysisOptions | None = None) -> list[Flow]:
    """Feed hand-built segments to a FlowTable; return the finished flows by id."""
    done: list[Flow] = []
    table = FlowTable(options, on_close=done.append)
    for seg in segments:
        table.add(seg)
    table.finish()
    return sorted(done, key=lambda f: f.id)


# ------------------------------------------------------------------------- whole packets
# Engine-level tests feed RawPackets: these encode a Segment as a raw IP packet (LINKTYPE_RAW).

LINKTYPE_RAW = 101


def _tcp_options(opts: TcpOptions) -> bytes:
    out = b""
    if opts.mss is not None:
        out += bytes([2, 4]) + opts.mss.to_bytes(2, "big")
    if opts.wscale is not None:
        out += bytes([1, 3, 3, opts.wscale])
    if opts.sack_permitted:
        out += bytes([1, 1, 4, 2])
    if opts.ts_val is not None:
        out += bytes([1, 1, 8, 10]) + opts.ts_val.to_bytes(4, "big")
        out += (opts.ts_ecr or 0).to_bytes(4, "big")
    if opts.sack:
        out += bytes([1, 1, 5, 2 + 8 * len(opts.sack)])
        for left, right in opts.sack:
            out += left.to_bytes(4, "big") + right.to_bytes(4, "big")
    return out + b"\0" * (-len(out) % 4)


def encode(seg: Segment) -> bytes:
    """The segment as an IPv4 or IPv6 packet with a TCP header (checksums zero)."""
    options = _tcp_options(seg.options)
    header_len = 20 + len(options)
    tcp = (
        seg.sport.to_bytes(2, "big")
        + seg.dport.to_bytes(2, "big")
        + (seg.seq & MASK).to_bytes(4, "big")
        + (seg.ack & MASK).to_bytes(4, "big")
        + bytes([header_len // 4 << 4, seg.flags & 0xFF])
        + seg.window.to_bytes(2, "big")
        + b"\0\0\0\0"
        + options
        + seg.payload
    )
    wire_payload = header_len + seg.length
    if seg.ip_version == 4:
        ip = bytes([0x45, 0]) + (20 + wire_payload).to_bytes(2, "big") + b"\0\0\x40\0"
        ip += bytes([seg.ttl or 64, 6]) + b"\0\0" + seg.src + seg.dst
    else:
        ip = b"\x60\0\0\0" + wire_payload.to_bytes(2, "big") + bytes([6, seg.ttl or 64])
        ip += seg.src + seg.dst
    return ip + tcp


def raw_packets(segments: Iterable[Segment]) -> list[RawPacket]:
    """RawPackets (frame numbers and times from the segments) for `Engine.feed`."""
    out = []
    for seg in segments:
        data = encode(seg)
        wire = len(data) + (seg.length - len(seg.payload))
        out.append(RawPacket(seg.frame, round(seg.time * 1e9), LINKTYPE_RAW, data, wire))
    return out


def same_bucket_ports(count: int, client: str = "10.0.0.1", server: str = SERVER) -> list[int]:
    """`count` client ports, ascending from 1001, whose connections from `client` to `server`
    fall in the same bucket of flows (`model.bucket_of`; the flow table's limits on closed
    flows and tombs apply per bucket)."""
    src = ipaddress.ip_address(client).packed
    dst, dport = parse_endpoint(server)
    want = None
    ports: list[int] = []
    for port in range(1001, 65536):
        bucket = bucket_of(packed_key(flow_key(src, port, dst, dport)))
        if want is None:
            want = bucket
        if bucket == want:
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ValueError("not enough ports")
