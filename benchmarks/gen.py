"""Synthetic packet captures for tcpdiag benchmarks: realistic TCP/TLS traffic at any size.

    python benchmarks/gen.py --packets 2000000 --seed 1 -o /tmp/x.pcap [--pattern mixed]

Theory of operation
-------------------
A *pattern* fixes the traffic: how many connections start per second of capture time, the mix
of connection kinds, loss and reordering rates, address pools. The packet count only decides
how long the capture runs, so 200k and 2M packets of one pattern have the same concurrency and
differ only in how many connections come and go (the memory-growth check relies on this). For
one seed and pattern, a smaller capture is an exact prefix of a larger one.

Connections arrive as a Poisson process. Each one is a Python generator that yields
`(time_ns, frame_bytes)` in non-decreasing time; a heap merges the live generators into capture
order, so memory is bounded by the number of concurrent connections, not by the capture length.
Connections start from `warmup_s` before the first packet and packets before time 0 are dropped,
so the capture opens in steady state with connections already in progress (no SYN seen), as a
real capture does.

The capture point is next to the clients (a gateway or a span port on their LAN): client
packets are seen when sent, server packets when they arrive. Data moves in rounds of up to
`cwnd` segments; the receiver acknowledges every second segment, sends duplicate ACKs with SACK
blocks after a hole, and the sender repairs a loss by fast retransmit (or by RTO when too few
duplicate ACKs came back). A server-to-client segment lost upstream is never seen; a
client-to-server segment lost downstream is seen twice. At most one anomaly (loss, adjacent
reorder, spurious retransmission) per round keeps the receiver model simple.

Frames are packed with one precompiled `struct.Struct` per header layout, with everything that
is constant for a direction of a connection folded into a few precomputed byte strings, so a
data packet costs one `pack` call and a slice of a shared pseudo-random payload buffer.
Checksums are zero.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import itertools
import json
import math
import random
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from tcpdiag.capture.writer import PcapWriter

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK32 = 0xFFFFFFFF
US = 1_000
MS = 1_000_000
SEC = 1_000_000_000
EPOCH_NS = 1_790_000_000 * SEC  # capture start: 2026-09-21, fixed for determinism
LINKTYPE_ETHERNET = 1
# Bump when the bytes generated for a (pattern, seed, size) change: run.py caches by it.
VERSION = 2
MAX_CWND = 64
TLS_MAX_FRAGMENT = 16384

Event = tuple[int, bytes]
PacketFn = Callable[..., bytes]


# --------------------------------------------------------------------------------------------
# Patterns


@dataclass(frozen=True)
class Pattern:
    description: str
    flows_per_second: float
    kinds: dict[str, float]  # connection kind -> weight
    warmup_s: float = 3.0
    ipv6_share: float = 0.2
    loss: float = 0.02  # per round: one segment lost
    reorder: float = 0.01  # per round: two adjacent segments swapped
    spurious: float = 0.004  # per round (server to client): one segment arrives twice
    syn_loss: float = 0.02  # first SYN lost, retried after 1 s
    zero_window: float = 0.02  # per bulk download: the client stops reading for a while
    n_clients: int = 4000
    n_servers: int = 400
    web_exchanges_mean: float = 2.0  # 1 + floor(exponential of mean - 1): ~1.6 on average
    response_median: int = 3000  # bytes, lognormal
    response_sigma: float = 1.4
    bulk_min: int = 64_000  # bytes, Pareto
    bulk_alpha: float = 1.15
    bulk_max: int = 64_000_000
    think_mean_ms: float = 250.0  # client pause between requests on one connection


PATTERNS: dict[str, Pattern] = {
    "mixed": Pattern(
        description="busy office gateway: mostly HTTPS, some HTTP, bulk transfers, failures",
        flows_per_second=400,
        kinds={
            "tls13": 42,
            "tls12": 14,
            "http": 14,
            "bulk": 5,
            "upload": 2,
            "refused": 8,
            "unanswered": 8,
            "tls-alert": 2,
            "reset": 5,
        },
    ),
    "web": Pattern(
        description="short HTTPS and HTTP exchanges only, no bulk transfers, few failures",
        flows_per_second=800,
        kinds={"tls13": 60, "tls12": 20, "http": 17, "refused": 2, "unanswered": 1},
    ),
    "bulk": Pattern(
        description="few long transfers (downloads and uploads), heavy-tailed sizes",
        flows_per_second=20,
        kinds={"bulk": 80, "upload": 20},
        bulk_min=500_000,
    ),
    "failures": Pattern(
        description="a broken network: refusals, unanswered SYNs, resets, TLS alerts, high loss",
        flows_per_second=600,
        kinds={
            "tls13": 30,
            "http": 10,
            "refused": 20,
            "unanswered": 20,
            "tls-alert": 10,
            "reset": 10,
        },
        loss=0.15,
        reorder=0.05,
        syn_loss=0.1,
    ),
}


# --------------------------------------------------------------------------------------------
# Frame builders

# Fast paths. Layout (network order), with the constant parts folded into byte strings:
#   IPv4: [eth + 45 00] tot_len id [frag ttl proto csum src dst sport dport] seq ack off|flags win
#   IPv6: [eth + ver/flow label] plen [nxt hop src dst sport dport] seq ack off|flags win
# followed by [csum urg (+ NOP NOP TS kind/len)] (tsval tsecr).
_V4_TS = struct.Struct("!16sHH18sIIHH8sII")
_V4_NOTS = struct.Struct("!16sHH18sIIHH4s")
_V6_TS = struct.Struct("!18sH38sIIHH8sII")
_V6_NOTS = struct.Struct("!18sH38sIIHH4s")
# Generic (any TCP options, raw sequence numbers): SYNs, RSTs to SYNs, SACK duplicate ACKs.
_V4_GEN = struct.Struct("!16sHH18sIIHHI")
_V6_GEN = struct.Struct("!18sH38sIIHHI")
_TS_KIND = b"\x01\x01\x08\x0a"
_TS_PAIR = struct.Struct("!II")
_SACK_BLOCK = struct.Struct("!II")


@dataclass(slots=True)
class Side:
    """What a direction of a connection needs to build its frames."""

    eth: bytes  # 14 bytes
    src: bytes
    dst: bytes
    sport: int
    dport: int
    isn: int
    peer_isn: int
    window: int
    ttl: int
    ts_base: int | None  # None: no TCP timestamps on this connection
    peer_ts_base: int
    ts_lag: int  # ns: the peer's clock this long ago bounds the echoed timestamp
    # Last TSval sent by [client, server], shared by both sides of a connection: TSecr echoes
    # the peer's latest, never one it has not sent yet (rounds are built before being sorted).
    ts_sent: list[int]
    me: int  # index of this side in ts_sent
    ip_id: int
    flow_label: int


def fast_builder(sd: Side) -> PacketFn:
    """pkt(t, rel_seq, rel_ack, flags, payload=b"", win=...) for ordinary segments."""
    isn, pisn, tsb, ptsb, lag = sd.isn, sd.peer_isn, sd.ts_base, sd.peer_ts_base, sd.ts_lag
    sent, me, peer = sd.ts_sent, sd.me, 1 - sd.me
    ports = struct.pack("!HH", sd.sport, sd.dport)
    v6 = len(sd.src) == 16
    if v6:
        pre = sd.eth + struct.pack("!I", 0x60000000 | sd.flow_label)
        mid = struct.pack("!BB", 6, sd.ttl) + sd.src + sd.dst + ports
    else:
        pre = sd.eth + b"\x45\x00"
        mid = struct.pack("!HBBH", 0x4000, sd.ttl, 6, 0) + sd.src + sd.dst + ports
    ip_id = sd.ip_id
    if tsb is not None:
        tail = b"\x00\x00\x00\x00" + _TS_KIND
        off = 8 << 12
        if v6:
            pack = _V6_TS.pack

            def pkt6ts(
                t: int, seq: int, ack: int, flags: int, payload: bytes = b"", win: int = sd.window
            ) -> bytes:
                tsval = sent[me] = (tsb + (t >> 20)) & MASK32
                return (
                    pack(
                        pre,
                        32 + len(payload),
                        mid,
                        (isn + seq) & MASK32,
                        (pisn + ack) & MASK32,
                        off | flags,
                        win,
                        tail,
                        tsval,
                        min(sent[peer], (ptsb + ((t - lag) >> 20)) & MASK32),
                    )
                    + payload
                )

            return pkt6ts
        pack = _V4_TS.pack

        def pkt4ts(
            t: int, seq: int, ack: int, flags: int, payload: bytes = b"", win: int = sd.window
        ) -> bytes:
            nonlocal ip_id
            ip_id = (ip_id + 1) & 0xFFFF
            tsval = sent[me] = (tsb + (t >> 20)) & MASK32
            return (
                pack(
                    pre,
                    52 + len(payload),
                    ip_id,
                    mid,
                    (isn + seq) & MASK32,
                    (pisn + ack) & MASK32,
                    off | flags,
                    win,
                    tail,
                    tsval,
                    min(sent[peer], (ptsb + ((t - lag) >> 20)) & MASK32),
                )
                + payload
            )

        return pkt4ts
    tail = b"\x00\x00\x00\x00"
    off = 5 << 12
    if v6:
        pack = _V6_NOTS.pack

        def pkt6(
            t: int, seq: int, ack: int, flags: int, payload: bytes = b"", win: int = sd.window
        ) -> bytes:
            return (
                pack(
                    pre,
                    20 + len(payload),
                    mid,
                    (isn + seq) & MASK32,
                    (pisn + ack) & MASK32,
                    off | flags,
                    win,
                    tail,
                )
                + payload
            )

        return pkt6
    pack = _V4_NOTS.pack

    def pkt4(
        t: int, seq: int, ack: int, flags: int, payload: bytes = b"", win: int = sd.window
    ) -> bytes:
        nonlocal ip_id
        ip_id = (ip_id + 1) & 0xFFFF
        return (
            pack(
                pre,
                40 + len(payload),
                ip_id,
                mid,
                (isn + seq) & MASK32,
                (pisn + ack) & MASK32,
                off | flags,
                win,
                tail,
            )
            + payload
        )

    return pkt4


def generic_builder(sd: Side) -> PacketFn:
    """pkt(seq_raw, ack_raw, flags, options, win) for the rare segments with other options."""
    ports = struct.pack("!HH", sd.sport, sd.dport)
    v6 = len(sd.src) == 16
    if v6:
        pre = sd.eth + struct.pack("!I", 0x60000000 | sd.flow_label)
        mid = struct.pack("!BB", 6, sd.ttl) + sd.src + sd.dst + ports
        pack6 = _V6_GEN.pack

        def gen6(seq: int, ack: int, flags: int, opts: bytes, win: int) -> bytes:
            return (
                pack6(
                    pre, 20 + len(opts), mid, seq, ack, ((5 + len(opts) // 4) << 12) | flags, win, 0
                )
                + opts
            )

        return gen6
    pre = sd.eth + b"\x45\x00"
    mid = struct.pack("!HBBH", 0x4000, sd.ttl, 6, 0) + sd.src + sd.dst + ports
    pack4 = _V4_GEN.pack

    def gen4(seq: int, ack: int, flags: int, opts: bytes, win: int) -> bytes:
        # The fast builder owns the IP ID counter of this direction; a rare out-of-sequence ID
        # on an option-carrying segment is harmless.
        return (
            pack4(
                pre,
                40 + len(opts),
                (sd.ip_id + seq) & 0xFFFF,
                mid,
                seq,
                ack,
                ((5 + len(opts) // 4) << 12) | flags,
                win,
                0,
            )
            + opts
        )

    return gen4


# --------------------------------------------------------------------------------------------
# Payloads

_PAYLOAD_POOL = random.Random(0x7CD1A6).randbytes(1 << 20)
_POOL_SPAN = len(_PAYLOAD_POOL) - 65536  # start offsets leave room for any record or slice


def stream(head: bytes, period_buf: bytes = b"", period: int = 0) -> Callable[[int, int], bytes]:
    """Byte source for one transfer: `head`, then `period_buf[:period]` repeated.

    `period_buf` holds at least period + one MSS bytes so a slice never wraps.
    """
    hl = len(head)

    def get(o: int, n: int) -> bytes:
        if o >= hl:
            o = (o - hl) % period
            return period_buf[o : o + n]
        p = head[o : o + n]
        if len(p) < n:
            return p + period_buf[: n - len(p)]
        return p

    return get


def tls_app_stream(rng: random.Random, size: int, head: bytes = b"") -> tuple[int, Any]:
    """TLS application-data records carrying `size` plaintext bytes (full 16 KiB records for
    big transfers, one record for small ones). Returns (stream length, source)."""
    body = min(size, TLS_MAX_FRAGMENT) + 17  # content type byte + AEAD tag
    nrec = max(1, math.ceil(size / TLS_MAX_FRAGMENT))
    start = rng.randrange(_POOL_SPAN)
    record = b"\x17\x03\x03" + struct.pack("!H", body) + _PAYLOAD_POOL[start : start + body]
    period = len(record)
    reps = 1 + math.ceil(1500 / period)
    return len(head) + nrec * period, stream(head, record * (reps + 1), period)


def raw_stream(rng: random.Random, size: int, head: bytes = b"") -> tuple[int, Any]:
    """`head` then `size` opaque bytes (an HTTP body)."""
    start = rng.randrange(_POOL_SPAN)
    period = 32768
    return len(head) + size, stream(head, _PAYLOAD_POOL[start : start + period + 1600], period)


def tls_record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def handshake_msg(htype: int, body: bytes) -> bytes:
    return bytes((htype,)) + len(body).to_bytes(3, "big") + body


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def _vec(lenbytes: int, body: bytes) -> bytes:
    return len(body).to_bytes(lenbytes, "big") + body


_SUITES_13 = bytes.fromhex("130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f0035")
_SUITES_12 = bytes.fromhex("c02bc02fc02cc030cca9cca8c013c014009c009d002f0035")
_SIG_ALGS = bytes.fromhex("040308040401050308050501080606010201")


def client_hello(rng: random.Random, sni: str, tls13: bool, alpn: bool) -> bytes:
    name = sni.encode()
    exts = [
        _ext(0, _vec(2, b"\x00" + _vec(2, name))),
        _ext(23, b""),
        _ext(65281, b"\x00"),
        _ext(10, _vec(2, bytes.fromhex("001d00170018"))),
        _ext(11, b"\x01\x00"),
        _ext(35, b""),
    ]
    if alpn:
        exts.append(_ext(16, _vec(2, b"\x02h2\x08http/1.1")))
    exts += [_ext(5, b"\x01\x00\x00\x00\x00"), _ext(13, _vec(2, _SIG_ALGS)), _ext(18, b"")]
    if tls13:
        exts += [
            _ext(51, _vec(2, b"\x00\x1d" + _vec(2, rng.randbytes(32)))),
            _ext(45, b"\x01\x01"),
            _ext(43, b"\x04\x03\x04\x03\x03"),
        ]
    suites = _SUITES_13 if tls13 else _SUITES_12
    body = (
        b"\x03\x03" + rng.randbytes(32) + _vec(1, rng.randbytes(32)) + _vec(2, suites) + b"\x01\x00"
    )
    ext_bytes = b"".join(exts)
    # Browsers pad the ClientHello to 512 bytes (RFC 7685); so do we, which also makes it
    # realistically sized.
    pad = 512 - 4 - len(body) - 2 - len(ext_bytes) - 4
    if pad > 0:
        ext_bytes += _ext(21, bytes(pad))
    return tls_record(22, handshake_msg(1, body + _vec(2, ext_bytes)))


def server_hello(rng: random.Random, session_id: bytes, tls13: bool) -> bytes:
    if tls13:
        exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d" + _vec(2, rng.randbytes(32)))
        suite = b"\x13\x01"
    else:
        exts = _ext(65281, b"\x00") + _ext(11, b"\x01\x00") + _ext(23, b"")
        suite = b"\xc0\x2f"
    body = b"\x03\x03" + rng.randbytes(32) + _vec(1, session_id) + suite + b"\x00" + _vec(2, exts)
    return handshake_msg(2, body)


# A real two-certificate chain (leaf for www.example.com, issuing CA), made with openssl, so
# that dissectors parse the Certificate message as X.509 rather than calling it malformed.
LEAF_CERT = base64.b64decode(
    "MIIDnzCCAoegAwIBAgIUAhc2B+T+AaVEWmoYoPGSmyRw60MwDQYJKoZIhvcNAQELBQAwTjELMAkGA1UEBhMCVVMxHzAd"
    "BgNVBAoMFkV4YW1wbGUgVHJ1c3QgU2VydmljZXMxHjAcBgNVBAMMFUV4YW1wbGUgSXNzdWluZyBDQSBSMTAeFw0yNjEx"
    "MjIwNDEzMjFaFw0yOTAyMjQwNDEzMjFaMBoxGDAWBgNVBAMMD3d3dy5leGFtcGxlLmNvbTCCASIwDQYJKoZIhvcNAQEB"
    "BQADggEPADCCAQoCggEBAK90z+cjYTGLEk4B9gjRomeWI9DYbSmhdXbokdMUwtvaaXvrzCn7OdPaC1yi7yZ1BUJhBR3h"
    "YGTBImgOdazYGcfMf0GpYEQbWZjYCWnBARiP0eTwEKYqBbOOg/6LCYcHjzVwr0/PrEg21SlVk5mg1CamvGgYga5zxDjV"
    "mZDAdd/oLnW3xFix1a48KSg1rAZmOesLrFI9MQb8xrdY7Ek8i4ldmQoVIof0dUIswRBnlMDdbAHJKQexSe0ahCO0ldQl"
    "JYu/26LtBOzNisiHO0Jo1doX+vCxOsqGIg0hQXwBV52PkcI+hplPiUugHtSGffBgGzKO6HqHer2mDZKdyggf9G8CAwEA"
    "AaOBqDCBpTA2BgNVHREELzAtgg93d3cuZXhhbXBsZS5jb22CC2V4YW1wbGUuY29tgg0qLmV4YW1wbGUubmV0MAkGA1Ud"
    "EwQCMAAwCwYDVR0PBAQDAgWgMBMGA1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBTL/Yryv9DHXR/F7Lz1+JsJxGEr"
    "mjAfBgNVHSMEGDAWgBRQG4adDgl9duXlY0YHlBqucJZrOTANBgkqhkiG9w0BAQsFAAOCAQEAkqh3xMFFcIcNW3M9ki6l"
    "xXj878sh1mfXqMQYGYlYmozKUx8TFYJEsNnt0h0SgFSF4NpteFmrGIUQvoXLGNE/eiEJicgJQGxg4RaKnHZXqiRqPv7S"
    "GjxLnpDW7pWPc+kL6sgUj3Bfl3c3cSw7r23rjDXQvvMF5vOABTFq+cUFUFRreUYLHU9B7aTwyaGLFlt6vlBic8CHfITm"
    "8OORrg+BsC3imURBBamsufFG1Stot6Qlukb/8kTqW3DoQ1g0eRzJr+OawfgHSsEKALj2Okgi7ZIdktGhNUC1+wmFiq1q"
    "bdOpegh3wdxS7K2rdsuwL6tkSBgb0Ud6Wfcy1snPG5vI8Q=="
)
CA_CERT = base64.b64decode(
    "MIIDfTCCAmWgAwIBAgIUYYYo+7pTJNiuMMtkb8Wd1Q++tpEwDQYJKoZIhvcNAQELBQAwTjELMAkGA1UEBhMCVVMxHzAd"
    "BgNVBAoMFkV4YW1wbGUgVHJ1c3QgU2VydmljZXMxHjAcBgNVBAMMFUV4YW1wbGUgSXNzdWluZyBDQSBSMTAeFw0yNjEx"
    "MjIwNDEzMjFaFw0zNjExMTkwNDEzMjFaME4xCzAJBgNVBAYTAlVTMR8wHQYDVQQKDBZFeGFtcGxlIFRydXN0IFNlcnZp"
    "Y2VzMR4wHAYDVQQDDBVFeGFtcGxlIElzc3VpbmcgQ0EgUjEwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC9"
    "uDvWCmYhEGp/WJQASae1Y5qfSZ678nJl9Prziw2gfXmbHbcjGvqtAaszKBmeMKohAhyizEaLEcXW+i8RK4KQ0yR5g6ra"
    "0jDlW/kJYmR90AdGnEbqQzQXZhWjyTMBsIeH7i4wZQkmQVPaiDFCCQYIyGWxDqNIeApVdAuqdILrYTuXgqiFwsYtbjul"
    "P664oLVdC73wnMVtJBuLZcSBYK6F3Y51g767uJMNWWdJ3MMor39w/44KDekd0LYAgx3OIXS8JzXoxU6PNUg6KQxSCKjR"
    "E1YAMvg4BhGYzEl6qHi8wRRkwJOS+3403DSHK/WaCNdVs4FCulQfI6CkIDqL8c2zAgMBAAGjUzBRMB0GA1UdDgQWBBRQ"
    "G4adDgl9duXlY0YHlBqucJZrOTAfBgNVHSMEGDAWgBRQG4adDgl9duXlY0YHlBqucJZrOTAPBgNVHRMBAf8EBTADAQH/"
    "MA0GCSqGSIb3DQEBCwUAA4IBAQBva19ha9G08BxN9l0MMk63Nfd+CbdjEZkf0NT8f5hMxjMm3DRDRR4V+eHw7umvlW4/"
    "yTK4/cUPAY0ZrHg5dyRLVCuBXR83dEsrWeT3XnwqSMscScoD1ySSZqAjJ4BHiWY9uN/3MqQ1/OscOX0wZ8Gvqi6vcR2b"
    "WiKAZL3hJ158ytHXwN1fYbhE/HQUM6o9dmrYF57QMtYZMNUAYGT0+iAkjETtr3uGwlp42pVIsAD2FU/IDYxIiPHpxLhX"
    "sF58MXhfZGt43rfnA0SJVwhmyggczH/WABLTq1MEWWMV7BZ72NNMQ3esCv0nWGX4uTn/UmvSqK3zOTMQj8DY5rItRIY/"
    "Ld2tVsc7LmyAGvKD"
)
_CERT_MSG = handshake_msg(
    11, _vec(3, _vec(3, LEAF_CERT) + _vec(3, CA_CERT))
)  # Certificate (TLS 1.2)
_SHD = handshake_msg(14, b"")
_CCS = tls_record(20, b"\x01")


def tls12_server_flight(rng: random.Random, session_id: bytes) -> bytes:
    ske = b"\x03\x00\x1d" + _vec(1, rng.randbytes(32)) + b"\x08\x04" + _vec(2, rng.randbytes(256))
    return (
        tls_record(22, server_hello(rng, session_id, tls13=False))
        + tls_record(22, _CERT_MSG)
        + tls_record(22, handshake_msg(12, ske))
        + tls_record(22, _SHD)
    )


def tls13_server_flight(rng: random.Random, session_id: bytes) -> bytes:
    # EncryptedExtensions, Certificate, CertificateVerify and Finished, encrypted: one opaque
    # application-data record about the size of the chain.
    encrypted = rng.randrange(2400, 4600)
    return (
        tls_record(22, server_hello(rng, session_id, tls13=True))
        + _CCS
        + tls_record(23, rng.randbytes(encrypted))
    )


# --------------------------------------------------------------------------------------------
# Connections

_SERVER_LABELS = ("www", "api", "cdn", "static", "login", "img", "video", "update", "mail", "ws")
_SERVER_DOMAINS = ("example.com", "example.net", "example.org", "shop.example", "cloud.test")
_GATEWAY_MAC = bytes.fromhex("001b213a4f01")
_USER_AGENT = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"


class Connection:
    """One TCP connection, from the capture's point of view, as a generator of frames."""

    __slots__ = (
        "ack_every",
        "c",
        "c_off",
        "cg",
        "cside",
        "cwnd",
        "gap",
        "kind",
        "mss",
        "p",
        "rng",
        "rtt",
        "s",
        "s_off",
        "sg",
        "sni",
        "sside",
        "ssthresh",
        "t0",
    )

    def __init__(self, g: Generator, t0: int, kind: str) -> None:
        rng = g.rng
        p = g.pattern
        self.rng, self.p, self.t0, self.kind = rng, p, t0, kind
        v6 = rng.random() < p.ipv6_share
        ci = rng.randrange(p.n_clients)
        si = rng.randrange(p.n_servers)
        if kind in ("tls13", "tls12", "tls-alert"):
            port = 443
        elif kind == "http":
            port = 80
        elif kind in ("bulk", "upload", "reset"):
            port = 443 if rng.random() < 0.7 else 80
        else:
            port = rng.choice((443, 443, 443, 80, 8443, 22, 25, 5432))
        self.sni = f"{_SERVER_LABELS[si % 10]}.{_SERVER_DOMAINS[si // 10 % 5]}"
        rtt = int(rng.lognormvariate(math.log(18 * MS), 1.0))
        self.rtt = rtt = min(max(rtt, 150 * US), 800 * MS)
        self.gap = rng.choice((12, 25, 60, 120, 250)) * US
        use_ts = rng.random() < 0.85
        mss = (1460 if not v6 else 1440) - (12 if use_ts else 0)
        self.cwnd, self.ssthresh = 10, 1 << 30
        # Linux acknowledges every segment in quick-ack mode (short connections), else every
        # second one.
        self.ack_every = 1 if rng.random() < 0.5 else 2
        caddr, saddr = g.client_addr(ci, v6), g.server_addr(si, v6)
        cport = g.next_port(ci)
        cmac = b"\x02\x00" + ci.to_bytes(4, "big")
        ethertype = b"\x86\xdd" if v6 else b"\x08\x00"
        flow_label = rng.getrandbits(20) if v6 else 0
        cisn, sisn = rng.getrandbits(32), rng.getrandbits(32)
        cts = rng.randrange(1, 1 << 31) if use_ts else None
        sts = rng.randrange(1, 1 << 31) if use_ts else None
        windows_client = not use_ts and rng.random() < 0.7
        ts_sent = [0, 0]
        self.cside = Side(
            eth=_GATEWAY_MAC + cmac + ethertype,
            src=caddr,
            dst=saddr,
            sport=cport,
            dport=port,
            isn=cisn,
            peer_isn=sisn,
            window=1026 if windows_client else 502,
            ttl=128 if windows_client else 64,
            ts_base=cts,
            peer_ts_base=sts or 0,
            ts_lag=0,
            ts_sent=ts_sent,
            me=0,
            ip_id=rng.getrandbits(16),
            flow_label=flow_label,
        )
        self.sside = Side(
            eth=cmac + _GATEWAY_MAC + ethertype,
            src=saddr,
            dst=caddr,
            sport=port,
            dport=cport,
            isn=sisn,
            peer_isn=cisn,
            window=rng.choice((235, 501, 509, 83)),
            ttl=64 - rng.randrange(4, 20),
            ts_base=sts,
            peer_ts_base=cts or 0,
            ts_lag=rtt,  # a server segment seen now left it rtt/2 ago, when it had seen
            # client segments up to rtt/2 before that
            ts_sent=ts_sent,
            me=1,
            ip_id=rng.getrandbits(16),
            flow_label=flow_label,
        )
        self.mss = mss
        self.c, self.s = fast_builder(self.cside), fast_builder(self.sside)
        self.cg, self.sg = generic_builder(self.cside), generic_builder(self.sside)
        self.c_off = self.s_off = 1  # next relative sequence number of each side

    # ---- options and special segments

    def _ts(self, side: Side, t: int, echo: bool = True) -> bytes:
        if side.ts_base is None:
            return b""
        tsval = side.ts_sent[side.me] = (side.ts_base + (t >> 20)) & MASK32
        tsecr = 0
        if echo:
            bound = (side.peer_ts_base + ((t - side.ts_lag) >> 20)) & MASK32
            tsecr = min(side.ts_sent[1 - side.me], bound)
        return _TS_KIND + _TS_PAIR.pack(tsval, tsecr)

    def _syn_opts(self, side: Side, t: int, echo: bool, wscale: int) -> bytes:
        mss = struct.pack("!BBH", 2, 4, self.mss + (12 if side.ts_base is not None else 0))
        if side.ts_base is None:  # Windows order: MSS, NOP, WS, NOP, NOP, SACK_PERM
            return mss + b"\x01\x03\x03" + bytes((wscale,)) + b"\x01\x01\x04\x02"
        ts = self._ts(side, t, echo)[2:]  # drop the NOPs: Linux puts TS after SACK_PERM
        return mss + b"\x04\x02" + ts + b"\x01\x03\x03" + bytes((wscale,))

    def syn(self, t: int) -> bytes:
        cs = self.cside
        return self.cg(cs.isn, 0, SYN, self._syn_opts(cs, t, False, 7), 64240)

    def synack(self, t: int) -> bytes:
        ss = self.sside
        opts = self._syn_opts(ss, t, True, 9)
        return self.sg(ss.isn, (ss.peer_isn + 1) & MASK32, SYN | ACK, opts, 65160)

    def sack_ack(
        self,
        down: bool,
        t: int,
        ack_rel: int,
        blocks: tuple[tuple[int, int], ...],
        win: int | None = None,
    ) -> bytes:
        """A (duplicate) ACK from the receiver with SACK blocks, in the sender's relative space."""
        rside = self.cside if down else self.sside
        build = self.cg if down else self.sg
        base = rside.peer_isn
        sack = b"".join(
            _SACK_BLOCK.pack((base + a) & MASK32, (base + b) & MASK32) for a, b in blocks
        )
        opts = self._ts(rside, t) + b"\x01\x01\x05" + bytes((2 + len(sack),)) + sack
        seq = (rside.isn + (self.c_off if down else self.s_off)) & MASK32
        return build(
            seq, (base + ack_rel) & MASK32, ACK, opts, rside.window if win is None else win
        )

    # ---- building blocks (generators returning the time of their last packet)

    def handshake(self, t: int) -> Iterator[Event]:
        yield t, self.syn(t)
        if self.rng.random() < self.p.syn_loss:  # lost beyond the capture point: retried at 1 s
            t += SEC
            yield t, self.syn(t)
        t += self.rtt
        yield t, self.synack(t)
        t += 40 * US
        yield t, self.c(t, 1, 1, ACK)
        return t

    def transfer(
        self, t: int, down: bool, n: int, src: Any, final_ack: bool = True, stall: bool = False
    ) -> Iterator[Event]:
        """Move `n` bytes from one side to the other; return the time of the last packet.

        `t` is when the first data segment is seen. `final_ack=False` leaves the last segment
        for the next data in the other direction to acknowledge (a request's response does).
        `stall`: the receiver advertises a zero window once, part-way (a client not reading).
        """
        rng, p, mss, rtt, gap = self.rng, self.p, self.mss, self.rtt, self.gap
        if down:
            snd, rcv, base, rack = self.s, self.c, self.s_off, self.c_off
            ackd, ack_lag = 30 * US, 0  # the receiver is next to the capture point
        else:
            snd, rcv, base, rack = self.c, self.s, self.c_off, self.s_off
            ackd, ack_lag = 30 * US, rtt  # its ACKs come back one round trip later
        stall_at = rng.randrange(n) if stall else -1
        off = 0
        cwnd = self.cwnd
        ack_every = self.ack_every
        last = t
        while off < n:
            segs: list[tuple[int, int]] = []
            o = off
            while o < n and len(segs) < cwnd:
                sz = n - o if n - o < mss else mss
                segs.append((o, sz))
                o += sz
            off = o
            k = len(segs)
            lost = swap = dup = -1
            r = rng.random()
            if r < p.loss:
                lost = rng.randrange(k)
            elif r < p.loss + p.reorder:
                if k > 1:
                    swap = rng.randrange(k - 1)
            elif r < p.loss + p.reorder + p.spurious and down:
                dup = rng.randrange(k)
            order = list(range(k))
            if swap >= 0:
                order[swap], order[swap + 1] = order[swap + 1], order[swap]
            ev: list[Event] = []
            if not down:  # the sender is at the capture point: every segment seen, in order
                for i, (so, sz) in enumerate(segs):
                    ts = t + i * gap
                    fl = ACK | PSH if so + sz == n else ACK
                    ev.append((ts, snd(ts, base + so, rack, fl, src(so, sz))))
            # The receiver: acknowledge every second in-order segment, at once after a hole.
            rcv_nxt = segs[0][0]
            ooo_left = ooo_end = -1
            pending = 0
            ndup = 0
            third_dup = first_ack = -1
            for j, i in enumerate(order):
                so, sz = segs[i]
                ta = t + j * gap
                if i == lost:
                    continue
                if down:
                    fl = ACK | PSH if so + sz == n else ACK
                    ev.append((ta, snd(ta, base + so, rack, fl, src(so, sz))))
                tack = ta + ack_lag + ackd
                if so == rcv_nxt:
                    rcv_nxt = so + sz
                    if ooo_end > rcv_nxt:  # a reordered segment filled the hole
                        rcv_nxt = ooo_end
                        ooo_left = ooo_end = -1
                        pending = 2
                    else:
                        pending += 1
                    if pending >= ack_every or (rcv_nxt == n and final_ack):
                        ev.append((tack, rcv(tack, rack, base + rcv_nxt, ACK)))
                        pending = 0
                        if first_ack < 0:
                            first_ack = tack
                else:  # beyond a hole: duplicate ACK with a SACK block
                    if ooo_left < 0:
                        ooo_left = so
                    ooo_end = max(ooo_end, so + sz)
                    blocks = ((base + ooo_left, base + ooo_end),)
                    ev.append((tack, self.sack_ack(down, tack, base + rcv_nxt, blocks)))
                    ndup += 1
                    if ndup == 3:
                        third_dup = tack
                    if first_ack < 0:
                        first_ack = tack
            end_data = t + (k - 1) * gap
            if lost >= 0:
                lo, lsz = segs[lost]
                if third_dup >= 0:  # fast retransmit
                    tr = third_dup + (rtt if down else 10 * US)
                else:  # retransmission timeout
                    tr = end_data + max(200 * MS, 2 * rtt)
                fl = ACK | PSH if lo + lsz == n else ACK
                ev.append((tr, snd(tr, base + lo, rack, fl, src(lo, lsz))))
                rcv_nxt = max(rcv_nxt, ooo_end, lo + lsz)
                tack = tr + ack_lag + ackd
                if rcv_nxt < n or final_ack:
                    ev.append((tack, rcv(tack, rack, base + rcv_nxt, ACK)))
                pending = 0
                cwnd = self.ssthresh = max(2, cwnd // 2)
            elif cwnd < self.ssthresh:
                cwnd = min(cwnd * 2, MAX_CWND)
            else:
                cwnd = min(cwnd + 1, MAX_CWND)
            if dup >= 0:  # spurious retransmission: the sender missed our ACK
                so, sz = segs[dup]
                td = end_data + rtt
                ev.append((td, snd(td, base + so, rack, ACK, src(so, sz))))
                blocks = ((base + so, base + so + sz),)  # D-SACK
                ev.append((td + ackd, self.sack_ack(down, td + ackd, base + rcv_nxt, blocks)))
            if pending and (rcv_nxt < n or final_ack):  # delayed ACK for an odd last segment
                tack = end_data + ack_lag + ackd
                ev.append((tack, rcv(tack, rack, base + rcv_nxt, ACK)))
            ev.sort(key=_first)
            last = ev[-1][0]
            yield from ev
            if stall_at >= 0 and off > stall_at and off < n:
                last = yield from self._zero_window(last, down, base + off, rack)
                stall_at = -1
            if first_ack < 0:
                first_ack = last
            t = max(first_ack + (rtt if down else 0), last + gap)
        self.cwnd = cwnd
        if down:
            self.s_off += n
        else:
            self.c_off += n
        return last

    def _zero_window(self, t: int, down: bool, snd_nxt: int, rack: int) -> Iterator[Event]:
        """The receiver's window drops to zero; the sender probes until it reopens."""
        snd, rcv = (self.s, self.c) if down else (self.c, self.s)
        t += 5 * US
        yield t, rcv(t, rack, snd_nxt, ACK, win=0)
        backoff = max(200 * MS, self.rtt)
        for _ in range(self.rng.randrange(1, 5)):
            t += backoff
            yield t, snd(t, snd_nxt - 1, rack, ACK)  # keep-alive style probe
            t += self.rtt if down else 30 * US
            yield t, rcv(t, rack, snd_nxt, ACK, win=0)
            backoff *= 2
        t += self.rng.randrange(50, 500) * MS
        yield t, rcv(t, rack, snd_nxt, ACK)  # window update
        return t + (self.rtt if down else 0)

    def exchange(
        self, t: int, req: tuple[int, Any], resp: tuple[int, Any], stall: bool = False
    ) -> Iterator[Event]:
        """A request (client to server), then its response; returns the end time."""
        t = yield from self.transfer(t, False, req[0], req[1], final_ack=False)
        t += self.rtt + int(self.rng.expovariate(1 / (3 * MS)))  # server think time
        return (yield from self.transfer(t, True, resp[0], resp[1], stall=stall))

    def close(self, t: int) -> Iterator[Event]:
        r = self.rng.random()
        c, s = self.c, self.s
        if r < 0.55:  # client closes
            yield t, c(t, self.c_off, self.s_off, FIN | ACK)
            self.c_off += 1
            t += self.rtt
            yield t, s(t, self.s_off, self.c_off, FIN | ACK)
            self.s_off += 1
            t += 30 * US
            yield t, c(t, self.c_off, self.s_off, ACK)
        elif r < 0.8:  # server closes an idle connection
            t += self.rtt + int(self.rng.expovariate(1 / (2 * SEC)))
            yield t, s(t, self.s_off, self.c_off, FIN | ACK)
            self.s_off += 1
            t += 30 * US
            yield t, c(t, self.c_off, self.s_off, ACK)
            t += 200 * US
            yield t, c(t, self.c_off, self.s_off, FIN | ACK)
            self.c_off += 1
            t += self.rtt
            yield t, s(t, self.s_off, self.c_off, ACK)
        elif r < 0.95:  # client aborts (browsers do)
            yield t, c(t, self.c_off, self.s_off, RST | ACK)
        # else: still open when the capture ends

    # ---- connection kinds

    def run(self) -> Iterator[Event]:
        kind, t = self.kind, self.t0
        if kind == "unanswered":
            yield from self._unanswered(t)
            return
        if kind == "refused":
            yield t, self.syn(t)
            t += self.rtt
            cs = self.cside
            yield t, self.sg(0, (cs.isn + 1) & MASK32, RST | ACK, b"", 0)
            return
        t = yield from self.handshake(t)
        t += 100 * US
        if kind in ("tls13", "tls12"):
            t = yield from self._tls(t, kind == "tls13", self._exchanges())
        elif kind == "http":
            t = yield from self._http(t, self._exchanges())
        elif kind == "bulk":
            size = self._bulk_size()
            stall = self.rng.random() < self.p.zero_window
            if self.sside.sport == 443:
                t = yield from self._tls(t, True, 1, size, stall)
            else:
                t = yield from self._http(t, 1, size, stall)
        elif kind == "upload":
            t = yield from self._upload(t)
        elif kind == "tls-alert":
            t = yield from self._tls_alert(t)
            return
        elif kind == "reset":
            yield from self._reset(t)
            return
        yield from self.close(t + self._think())

    def _exchanges(self) -> int:
        return 1 + int(self.rng.expovariate(1 / (self.p.web_exchanges_mean - 1 + 1e-9)))

    def _think(self) -> int:
        return int(self.rng.expovariate(1 / (self.p.think_mean_ms * MS)))

    def _response_size(self) -> int:
        p = self.p
        return max(20, int(self.rng.lognormvariate(math.log(p.response_median), p.response_sigma)))

    def _bulk_size(self) -> int:
        p = self.p
        size = p.bulk_min / (1.0 - self.rng.random()) ** (1 / p.bulk_alpha)
        return int(min(size, p.bulk_max))

    def _unanswered(self, t: int) -> Iterator[Event]:
        # Linux retries at 1, 3, 7, 15, 31 s; the application gives up after a few.
        tries = self.rng.choice((1, 2, 3, 3, 4, 5, 6, 6))
        delay = SEC
        for i in range(tries):
            if i:
                t += delay
                delay *= 2
            yield t, self.syn(t)

    def _tls_handshake(self, t: int, tls13: bool) -> Iterator[Event]:
        """ClientHello to the server's last handshake flight. Returns (time, client head,
        server head): what the first application records of each side must be preceded by."""
        rng = self.rng
        ch = client_hello(rng, self.sni, tls13, alpn=True)
        t = yield from self.transfer(t, False, len(ch), stream(ch), final_ack=False)
        t += self.rtt + int(rng.expovariate(1 / (1 * MS)))
        sid = ch[44 : 44 + 32]
        if tls13:
            flight = tls13_server_flight(rng, sid)
            t = yield from self.transfer(t, True, len(flight), stream(flight))
            head_c = _CCS + tls_record(23, rng.randbytes(53))  # client Finished
            tickets = tls_record(23, rng.randbytes(rng.randrange(180, 260)))
            return t, head_c, tickets + tickets
        flight = tls12_server_flight(rng, sid)
        t = yield from self.transfer(t, True, len(flight), stream(flight))
        cke = tls_record(22, handshake_msg(16, _vec(1, rng.randbytes(32))))
        fin = cke + _CCS + tls_record(22, rng.randbytes(40))
        t = yield from self.transfer(t + 200 * US, False, len(fin), stream(fin), False)
        nst = handshake_msg(4, b"\x00\x00\x1c\x20" + _vec(2, rng.randbytes(192)))
        fin_s = tls_record(22, nst) + _CCS + tls_record(22, rng.randbytes(40))
        t = yield from self.transfer(t + self.rtt, True, len(fin_s), stream(fin_s))
        return t, b"", b""

    def _tls(
        self, t: int, tls13: bool, exchanges: int, size: int | None = None, stall: bool = False
    ) -> Iterator[Event]:
        rng = self.rng
        t, head_c, head_s = yield from self._tls_handshake(t, tls13)
        for i in range(exchanges):
            req = tls_app_stream(rng, rng.randrange(250, 900), head_c)
            resp = tls_app_stream(rng, size if size is not None else self._response_size(), head_s)
            head_c = head_s = b""
            t = yield from self.exchange(t + 100 * US, req, resp, stall and i == 0)
            if i + 1 < exchanges:
                t += self._think()
        if not tls13 and rng.random() < 0.5:  # close_notify before the FIN
            alert = tls_record(21, rng.randbytes(26))
            t = yield from self.transfer(t + 1 * MS, False, len(alert), stream(alert))
        return t

    def _http(
        self, t: int, exchanges: int, size: int | None = None, stall: bool = False
    ) -> Iterator[Event]:
        rng = self.rng
        for i in range(exchanges):
            path = f"/assets/{rng.getrandbits(40):010x}.bin"
            req = (
                f"GET {path} HTTP/1.1\r\nHost: {self.sni}\r\n".encode()
                + b"User-Agent: "
                + _USER_AGENT
                + b"\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
                + b"Connection: keep-alive\r\n\r\n"
            )
            body = size if size is not None else self._response_size()
            head = (
                b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n"
                b"Content-Type: application/octet-stream\r\n"
                + f"Content-Length: {body}\r\n".encode()
                + b"Connection: keep-alive\r\n\r\n"
            )
            t = yield from self.exchange(
                t, (len(req), stream(req)), raw_stream(rng, body, head), stall and i == 0
            )
            if i + 1 < exchanges:
                t += self._think()
        return t

    def _upload(self, t: int) -> Iterator[Event]:
        rng = self.rng
        size = self._bulk_size()
        if self.sside.sport == 443:
            t, head_c, head_s = yield from self._tls_handshake(t, True)
            req = tls_app_stream(rng, size, head_c)
            resp = tls_app_stream(rng, rng.randrange(100, 400), head_s)
        else:
            head = (
                f"POST /upload HTTP/1.1\r\nHost: {self.sni}\r\n".encode()
                + b"Content-Type: application/octet-stream\r\n"
                + f"Content-Length: {size}\r\n\r\n".encode()
            )
            req = raw_stream(rng, size, head)
            reply = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
            resp = (len(reply), stream(reply))
        return (yield from self.exchange(t, req, resp))

    def _tls_alert(self, t: int) -> Iterator[Event]:
        """The server rejects the ClientHello (handshake_failure) and closes."""
        rng = self.rng
        ch = client_hello(rng, self.sni, rng.random() < 0.5, alpn=True)
        t = yield from self.transfer(t, False, len(ch), stream(ch), final_ack=False)
        alert = tls_record(21, b"\x02" + bytes((rng.choice((40, 70, 112)),)))
        t = yield from self.transfer(t + self.rtt, True, len(alert), stream(alert))
        yield from self.close(t + 50 * US)
        return t

    def _reset(self, t: int) -> Iterator[Event]:
        """The server aborts part-way through a response."""
        rng = self.rng
        size = self._response_size() * 4
        if self.sside.sport == 443:
            t, head_c, head_s = yield from self._tls_handshake(t, rng.random() < 0.7)
            req = tls_app_stream(rng, rng.randrange(250, 900), head_c)
            n, src = tls_app_stream(rng, size, head_s)
        else:
            text = b"GET /report HTTP/1.1\r\nHost: " + self.sni.encode() + b"\r\n\r\n"
            req = (len(text), stream(text))
            head = b"HTTP/1.1 200 OK\r\n" + f"Content-Length: {size}\r\n\r\n".encode()
            n, src = raw_stream(rng, size, head)
        t = yield from self.transfer(t + 100 * US, False, req[0], req[1], final_ack=False)
        t = yield from self.transfer(t + self.rtt, True, rng.randrange(1, n + 1), src)
        t += int(rng.expovariate(1 / (20 * MS)))
        yield t, self.s(t, self.s_off, self.c_off, RST | ACK)


def _first(e: Event) -> int:
    return e[0]


# --------------------------------------------------------------------------------------------
# The capture


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    connections: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    max_concurrent: int = 0
    capture_seconds: float = 0.0


class Generator:
    """Endless, time-ordered frames of one pattern and seed."""

    def __init__(self, pattern: Pattern, seed: int) -> None:
        self.pattern = pattern
        self.rng = random.Random(seed)
        self.ports: dict[int, int] = {}
        self.stats = Stats()
        kinds = sorted(pattern.kinds)
        self._kinds = kinds
        self._cum = list(itertools.accumulate(pattern.kinds[k] for k in kinds))

    def client_addr(self, ci: int, v6: bool) -> bytes:
        if v6:
            return bytes.fromhex("20010db8000100000000000000000000")[:12] + (ci + 16).to_bytes(
                4, "big"
            )
        return bytes((10, 20 + ci // 62500, ci // 250 % 250 + 1, ci % 250 + 2))

    def server_addr(self, si: int, v6: bool) -> bytes:
        if v6:
            return bytes.fromhex("20010db800ff00000000000000000000")[:12] + (si + 1).to_bytes(
                4, "big"
            )
        if si < 250:
            return bytes((198, 51, 100, si + 2))
        return bytes((203, 0, 113, si % 250 + 2))

    def next_port(self, ci: int) -> int:
        port = self.ports.get(ci)
        if port is None:
            port = self.rng.randrange(32768, 60999)
        port += self.rng.randrange(1, 4)
        if port > 60999:
            port = 32768 + port % 61000
        self.ports[ci] = port
        return port

    def frames(self) -> Iterator[Event]:
        """(time_ns from the capture start, frame) forever, in time order, from time 0."""
        rng, p, stats = self.rng, self.pattern, self.stats
        kinds, cum = self._kinds, self._cum
        mean_gap = SEC / p.flows_per_second
        heap: list[tuple[int, int, bytes, Iterator[Event]]] = []
        tiebreak = itertools.count()
        push, replace, pop = heapq.heappush, heapq.heapreplace, heapq.heappop
        next_arrival = -int(p.warmup_s * SEC)
        by_kind = stats.by_kind
        while True:
            while not heap or next_arrival <= heap[0][0]:
                kind = rng.choices(kinds, cum_weights=cum)[0]
                gen = Connection(self, next_arrival, kind).run()
                first = next(gen, None)
                if first is not None:
                    push(heap, (first[0], next(tiebreak), first[1], gen))
                by_kind[kind] = by_kind.get(kind, 0) + 1
                stats.connections += 1
                if len(heap) > stats.max_concurrent:
                    stats.max_concurrent = len(heap)
                next_arrival += int(rng.expovariate(1 / mean_gap))
            t, _, data, gen = heap[0]
            if t >= 0:
                yield t, data
            nxt = next(gen, None)
            if nxt is None:
                pop(heap)
            else:
                replace(heap, (nxt[0], next(tiebreak), nxt[1], gen))


def generate(path: str, packets: int, seed: int = 1, pattern: str | Pattern = "mixed") -> Stats:
    """Write `packets` frames of `pattern` (a name from PATTERNS, or a Pattern) to a pcap at
    `path` ("-": standard output)."""
    g = Generator(PATTERNS[pattern] if isinstance(pattern, str) else pattern, seed)
    stats = g.stats
    with contextlib.ExitStack() as stack:
        if path == "-":
            out: BinaryIO = sys.stdout.buffer
        else:
            out = stack.enter_context(open(path, "wb", buffering=1 << 20))
        write = PcapWriter(out, LINKTYPE_ETHERNET).write
        nbytes = t = 0
        for t, data in itertools.islice(g.frames(), packets):
            write(EPOCH_NS + t, data)
            nbytes += len(data)
        out.flush()
    stats.packets = packets
    stats.bytes = nbytes
    stats.capture_seconds = t / SEC
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", "-n", type=int, required=True, help="number of packets to write")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pattern", choices=sorted(PATTERNS), default="mixed")
    ap.add_argument("-o", "--output", required=True, help="pcap to write ('-' for stdout)")
    ap.add_argument("--stats-json", help="also write the statistics here as JSON")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    stats = generate(args.output, args.packets, args.seed, args.pattern)
    elapsed = time.perf_counter() - start
    summary = {
        "generator_version": VERSION,
        "pattern": args.pattern,
        "seed": args.seed,
        "packets": stats.packets,
        "bytes": stats.bytes,
        "file_bytes": stats.bytes + 16 * stats.packets + 24,
        "mean_frame_bytes": round(stats.bytes / max(1, stats.packets), 1),
        "connections_started": stats.connections,
        "connections_by_kind": dict(sorted(stats.by_kind.items())),
        "max_concurrent_connections": stats.max_concurrent,
        "capture_seconds": round(stats.capture_seconds, 3),
        "elapsed_seconds": round(elapsed, 3),
        "packets_per_second": round(stats.packets / elapsed) if elapsed else None,
    }
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    if not args.quiet:
        print(json.dumps(summary, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
