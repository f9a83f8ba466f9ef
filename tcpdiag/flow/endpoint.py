"""One direction of a TCP connection: everything known about what one side sent.

Theory of operation: a `Flow` owns two `Endpoint`s, one per direction (index = `Direction`).
An endpoint is mutated in place for every segment its side sends (and, for the ACK-derived
facts, for every segment the peer sends). It holds three groups of state:

* facts for the diagnoses (counts, first/last frames and times, FIN/RST, windows), public and
  documented below;
* Wireshark's per-direction analysis state (`ws_*` attributes, mirrors `tcp_analyze_seq_info`),
  used only by `analysis.py`; sequence numbers there are raw 32-bit values compared with
  `seq.py`;
* the unacked-segment list used for RTT samples (Karn's rule), capped at `MAX_UNACKED`.

Relative sequence numbers: `base` is the ISN when this side's SYN was seen, else the first
sequence number seen (the report contract). `stream_base` is the sequence number of stream
offset 0 (ISN + 1 with a SYN, else the first sequence number seen).
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64, mypyc_attr

from tcpdiag.flow.seq import MASK, seq_diff
from tcpdiag.model import TcpOptions

# Wireshark's TCP_MAX_UNACKED_SEGMENTS.
MAX_UNACKED: Final = 10_000

WSCALE_UNKNOWN: Final = -1  # no SYN captured from this side (Wireshark: -1)
WSCALE_NONE: Final = -2  # no scaling negotiated (Wireshark: -2)


@mypyc_attr(acyclic=True)
class Unacked:
    """A segment not yet fully acknowledged, kept for RTT samples: its raw sequence number
    (moved up as it is partially acknowledged), the raw sequence number after it, when it was
    sent, and whether an ACK of it is `ambiguous` (it was retransmitted: Karn's rule).

    A class with typed slots rather than a list: compiled, its fields are plain C values, so
    an entry is one allocation instead of six."""

    __slots__ = ("ambiguous", "frame", "nxt", "seq", "time")

    def __init__(self, seq: i64, nxt: i64, frame: i64, time: float, ambiguous: bool) -> None:
        self.seq = seq
        self.nxt = nxt
        self.frame = frame
        self.time = time
        self.ambiguous = ambiguous


class Endpoint:
    """What one side of a connection sent. Public attributes (all capture-derived):

    addr, port            packed address bytes and port of this side
    packets               segments sent by this side
    wire_bytes            payload bytes sent, retransmissions included (IP-header length)
    unique_bytes          payload bytes of sequence space covered (retransmissions excluded,
                          bytes never captured but skipped over included, as Zeek counts)
    isn                   raw ISN from this side's SYN / SYN-ACK, or None
    base                  raw sequence number that is relative 0 (ISN, else first seq seen)
    syn_frame, syn_time   first SYN (or SYN-ACK) sent by this side, or None
    syn_count             SYNs (or SYN-ACKs) sent, retransmissions included
    mss, sack_permitted   from this side's SYN options (None / False when absent)
    wscale                window shift this side's windows are scaled by: >= 0, or
                          WSCALE_UNKNOWN (-1, SYN not captured) or WSCALE_NONE (-2)
    fin_frame, fin_time   first FIN sent by this side, or None; fin_count counts them all
    rst_frame, rst_time   first RST sent by this side, or None; rst_count counts them all
    first_data_frame/_time, last_data_frame/_time   first / last segment with payload
    last_frame, last_time last segment of any kind sent by this side
    highest_ack           highest raw ACK value this side sent (acknowledging the peer), or -1
                          before the first (not None: compiled, an optional int would be a new
                          int object for every new ACK)
    acked                 peer stream bytes this side has acknowledged (relative, >= 0)
    window                last raw window field sent; `scaled_window()` applies the scale
    zero_window_count     segments advertising a zero window (RST/SYN/FIN excluded)
    zero_windows          periods this side advertised a zero window (each ends at the first
                          non-zero window after it); `zero_window_first` when the first began,
                          `zero_window_stalled` the seconds the ended ones lasted, and
                          `zero_window_since` when the one still open began (else None).
                          Running totals, not a list: a receiver that reads slowly for hours
                          opens and closes its window millions of times
    in_zero_window        True while the last window this side advertised was zero
    last_sack             SACK blocks (raw edges) of the last segment that carried some
    small_frame, small_time, small_end, small_len   the last new data segment shorter than the
                          MSS sent with nothing else outstanding, until the peer ACKs it (a
                          delayed-ACK sample) or a retransmission voids it; small_frame -1: none
    ts_val, ts_ecr        last TCP timestamp option values seen, or None
    retransmissions       segments of this side flagged retransmission (fast/spurious incl.)
    """

    __slots__ = (
        "acked",
        "addr",
        "base",
        "fin_count",
        "fin_frame",
        "fin_seq",
        "fin_time",
        "first_data_frame",
        "first_data_time",
        "high_abs",
        "highest_ack",
        "isn",
        "last_data_frame_seen",
        "last_data_time_seen",
        "last_frame_seen",
        "last_sack",
        "last_time_seen",
        "mss",
        "packets",
        "port",
        "ref_abs",
        "ref_raw",
        "retransmissions",
        "rst_count",
        "rst_frame",
        "rst_time",
        "sack_permitted",
        "small_end",
        "small_frame",
        "small_len",
        "small_time",
        "stream_base",
        "syn_count",
        "syn_frame",
        "syn_time",
        "timestamps",
        "unacked",
        "unacked_head",
        "unacked_tail",
        "unique_bytes",
        "window_seen",
        "wire_bytes",
        "ws_base_set",
        "ws_dupacknum",
        "ws_first_ack",
        "ws_lastack",
        "ws_lastack_set",
        "ws_lastacktime",
        "ws_lastflags",
        "ws_lastnondupack",
        "ws_maxseqtobeacked",
        "ws_nextseq",
        "ws_nextseqframe",
        "ws_nextseqtime",
        "ws_window",
        "wscale",
        "zero_window_count",
        "zero_window_first",
        "zero_window_since",
        "zero_window_stalled",
        "zero_windows",
        "zh_high",
    )

    def __init__(self, addr: bytes, port: int) -> None:
        self.addr = addr
        self.port = port
        self.packets: i64 = 0
        self.wire_bytes: i64 = 0
        self.unique_bytes: i64 = 0
        self.isn: int | None = None
        self.base: int | None = None
        self.stream_base: int | None = None
        # Unwrapping reference: raw `ref_raw` is stream offset `ref_abs`.
        self.ref_raw: i64 = 0
        self.ref_abs: i64 = 0
        # Highest stream offset + 1 of payload seen: meaningful once `wire_bytes` > 0.
        self.high_abs: i64 = 0
        self.syn_frame: int | None = None
        self.syn_time: float | None = None
        self.syn_count = 0
        self.mss: int | None = None
        self.sack_permitted = False
        self.wscale = WSCALE_UNKNOWN
        self.fin_frame: int | None = None
        self.fin_time: float | None = None
        self.fin_seq: int | None = None  # raw sequence number of the FIN flag
        self.fin_count = 0
        self.rst_frame: int | None = None
        self.rst_time: float | None = None
        self.rst_count = 0
        self.first_data_frame: int | None = None
        self.first_data_time: float | None = None
        # The facts updated for every packet are plain ints and floats (compiled, C values: no
        # new object per packet), meaningful once the side has sent a packet (`packets`) or a
        # payload (`wire_bytes`); the public attributes are properties that say None before.
        self.last_data_frame_seen: i64 = 0
        self.last_data_time_seen = 0.0
        self.last_frame_seen: i64 = 0
        self.last_time_seen = 0.0
        self.window_seen: i64 = 0
        self.highest_ack: i64 = -1
        self.acked: i64 = 0
        self.zero_window_count: i64 = 0
        self.zero_windows: i64 = 0
        self.zero_window_first: float | None = None
        self.zero_window_since: float | None = None
        self.zero_window_stalled = 0.0
        self.last_sack: tuple[tuple[int, int], ...] = ()
        # The options of the last segment with a timestamp option (`ts_val`, `ts_ecr` read
        # them): keeping the record costs nothing per packet, copying its values out would.
        self.timestamps: TcpOptions | None = None
        self.retransmissions: i64 = 0
        # Plain fields, not a tuple: set for most data segments, read for most ACKs (compiled,
        # a tuple of four would be five new objects per data segment).
        self.small_frame: i64 = -1
        self.small_time = 0.0
        self.small_end: i64 = 0
        self.small_len: i64 = 0
        # Zeek history state: highest sequence end (raw) seen, for the 't' letter (meaningful
        # once `wire_bytes` > 0).
        self.zh_high: i64 = 0
        # Wireshark analysis state (see analysis.py). -1 = unknown where Wireshark uses 0.
        self.ws_base_set = False
        self.ws_nextseq: i64 = 0  # 0 = unknown, as in Wireshark (a real 0 is treated alike)
        self.ws_nextseqtime = 0.0
        self.ws_nextseqframe: i64 = 0
        self.ws_lastack: i64 = 0
        self.ws_lastack_set = False
        self.ws_lastacktime = 0.0
        self.ws_window: i64 = -1  # raw window last sent (-1: none yet, Wireshark's G_MAXUINT32)
        self.ws_maxseqtobeacked: i64 = 0  # 0 = unknown, as in Wireshark
        self.ws_dupacknum: i64 = 0
        self.ws_lastnondupack: i64 = 0
        self.ws_lastflags: i64 = 0
        self.ws_first_ack = True  # no non-SYN ACK sent yet: windows not scaled (Wireshark)
        # Unacked segments for RTT, in send order: unacked[unacked_head:unacked_tail] (None
        # until the first one). Fully ACKed entries are passed over, not removed, and their
        # objects are filled again for later segments: a list popped to empty and appended to
        # again, as nearly every ACK of a request-response flow did, reallocates its storage
        # twice per segment, and an entry made and freed per segment costs as much again.
        self.unacked: list[Unacked] | None = None
        self.unacked_head: i64 = 0
        self.unacked_tail: i64 = 0

    # -- per-packet facts, None before the first packet (or payload) ---------------------------

    @property
    def last_frame(self) -> int | None:
        return self.last_frame_seen if self.packets else None

    @property
    def last_time(self) -> float | None:
        return self.last_time_seen if self.packets else None

    @property
    def window(self) -> int | None:
        return self.window_seen if self.packets else None

    @property
    def ts_val(self) -> int | None:
        return None if self.timestamps is None else self.timestamps.ts_val

    @property
    def ts_ecr(self) -> int | None:
        return None if self.timestamps is None else self.timestamps.ts_ecr

    @property
    def last_data_frame(self) -> int | None:
        return self.last_data_frame_seen if self.wire_bytes else None

    @property
    def last_data_time(self) -> float | None:
        return self.last_data_time_seen if self.wire_bytes else None

    # -- sequence helpers -------------------------------------------------------------------

    def offset(self, raw: i64) -> i64:
        """Stream offset (unwrapped, 0 = first payload byte) of raw sequence number `raw`."""
        return self.ref_abs + (((raw - self.ref_raw + 0x80000000) & MASK) - 0x80000000)

    def relative(self, raw: int) -> int:
        """Relative sequence number (0 = ISN, or the first sequence number seen)."""
        if self.base is None:
            return raw
        return (raw - self.base) & MASK

    def scaled_window(self, raw: int | None = None) -> int | None:
        """`raw` (default: the last window sent) multiplied by this side's scale, when known."""
        w = self.window if raw is None else raw
        if w is None:
            return None
        return w << self.wscale if self.wscale > 0 else w

    @property
    def in_zero_window(self) -> bool:
        """True while the last window this side advertised was zero."""
        return self.zero_window_since is not None

    def open_window(self, time: float) -> None:
        """A non-zero window ends the zero-window period open since `zero_window_since`."""
        since = self.zero_window_since
        if since is not None:
            self.zero_window_stalled += time - since
            self.zero_window_since = None

    def bytes_unacked_by(self, peer: Endpoint) -> int:
        """Bytes this side sent that `peer` has not acknowledged (by sequence numbers)."""
        if not self.ws_nextseq or not peer.ws_lastack_set:
            return 0
        d = seq_diff(self.ws_nextseq, peer.ws_lastack)
        return d if d > 0 else 0
