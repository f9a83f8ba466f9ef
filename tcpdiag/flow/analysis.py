"""Per-segment TCP analysis with Wireshark's rules (tshark 4.0's `tcp_analyze_sequence_number`).

Theory of operation: `analyze()` is called once per segment, in capture order, with the
sender's endpoint (`fwd`) and the receiver's (`rev`). It reads and updates the `ws_*` state of
both endpoints exactly where Wireshark reads and updates its per-direction `tcp_analyze_seq_info`
and returns a bit set of `A_*` flags. The checks run in Wireshark's order: zero-window probe
(which skips the other forward checks), zero window, previous segment lost, keep-alive, window
update, window full, keep-alive ACK, zero-window-probe ACK, duplicate ACK; then ACKed-unseen;
then, for segments with data or SYN/FIN, the retransmission family in the order keep-alive >
spurious > fast retransmission > out-of-order > retransmission. Finally the forward state
(nextseq, maxseqtobeacked, window, lastack) is updated.

One deliberate difference (documented in docs/wireshark-differences.md): Linux sends
zero-window probes as `seq = snd_una - 1, len 0`, which Wireshark labels keep-alive. When the
receiver's last advertised window was zero we call such a segment a zero-window probe.

Sequence numbers are raw 32-bit values here; every comparison goes through `seq.py` helpers
(inlined as the same expressions where it matters for speed would be a premature trade).
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64

from tcpdiag.flow.endpoint import Endpoint
from tcpdiag.flow.seq import MASK, seq_gt, seq_le, seq_lt
from tcpdiag.model import ACK, FIN, RST, SYN

A_RETRANSMISSION: Final = 0x0001
A_LOST_PACKET: Final = 0x0002
A_ACK_LOST_PACKET: Final = 0x0004
A_KEEP_ALIVE: Final = 0x0008
A_DUPLICATE_ACK: Final = 0x0010
A_ZERO_WINDOW: Final = 0x0020
A_ZERO_WINDOW_PROBE: Final = 0x0040
A_ZERO_WINDOW_PROBE_ACK: Final = 0x0080
A_KEEP_ALIVE_ACK: Final = 0x0100
A_OUT_OF_ORDER: Final = 0x0200
A_FAST_RETRANSMISSION: Final = 0x0400
A_WINDOW_UPDATE: Final = 0x0800
A_WINDOW_FULL: Final = 0x1000
A_REUSED_PORTS: Final = 0x2000
A_SPURIOUS_RETRANSMISSION: Final = 0x4000

A_ANY_RETRANSMISSION: Final = A_RETRANSMISSION | A_FAST_RETRANSMISSION | A_SPURIOUS_RETRANSMISSION

# Finding name per flag, in the order names are listed for a frame.
FLAG_NAMES: Final[tuple[tuple[int, str], ...]] = (
    (A_REUSED_PORTS, "port-reused"),
    (A_RETRANSMISSION, "retransmission"),
    (A_FAST_RETRANSMISSION, "fast-retransmission"),
    (A_SPURIOUS_RETRANSMISSION, "spurious-retransmission"),
    (A_OUT_OF_ORDER, "out-of-order"),
    (A_LOST_PACKET, "previous-segment-lost"),
    (A_ACK_LOST_PACKET, "acked-unseen-segment"),
    (A_DUPLICATE_ACK, "duplicate-ack"),
    (A_ZERO_WINDOW, "zero-window"),
    (A_ZERO_WINDOW_PROBE, "zero-window-probe"),
    (A_ZERO_WINDOW_PROBE_ACK, "zero-window-probe-ack"),
    (A_WINDOW_FULL, "window-full"),
    (A_WINDOW_UPDATE, "window-update"),
    (A_KEEP_ALIVE, "keep-alive"),
    (A_KEEP_ALIVE_ACK, "keep-alive-ack"),
)

ANALYSIS_NAMES: Final[tuple[str, ...]] = tuple(name for _, name in FLAG_NAMES)

# Wireshark: fast retransmission only within 20 ms of the peer's last packet.
FAST_RETRANSMIT_WINDOW: Final = 0.020
# Wireshark: out-of-order threshold when the initial RTT is unknown.
OOO_DEFAULT_THRESHOLD: Final = 0.003


def flag_names(flags: int) -> list[str]:
    """Finding names for a bit set of A_* flags. Fast and spurious retransmissions also carry
    `retransmission`, like tshark's `tcp.analysis.retransmission` field."""
    out = [name for bit, name in FLAG_NAMES if flags & bit]
    if flags & (A_FAST_RETRANSMISSION | A_SPURIOUS_RETRANSMISSION) and not flags & A_RETRANSMISSION:
        out.insert(1 if flags & A_REUSED_PORTS else 0, "retransmission")
    return out


def analyze(
    fwd: Endpoint,
    rev: Endpoint,
    seq: i64,
    ack: i64,
    seglen: i64,
    flags: i64,
    window: i64,
    time: float,
    frame: i64,
    irtt: float | None,
) -> tuple[i64, i64]:
    """Run Wireshark's sequence analysis for one segment sent by `fwd` to `rev`.

    Returns (analysis flags, duplicate-ACK number or 0).
    """
    ta: i64 = 0
    dupnum: i64 = 0
    nextseq_known = fwd.ws_nextseq != 0
    fnext: i64 = 0
    if nextseq_known:
        fnext = fwd.ws_nextseq
    sfr = flags & (SYN | FIN | RST)
    # The sequence space the segment takes: its payload, and one for a SYN or FIN.
    span: i64 = seglen
    if flags & (SYN | FIN):
        span += 1

    if not fwd.ws_base_set:
        fwd.ws_base_set = True
    if not rev.ws_base_set and flags & ACK:
        rev.ws_base_set = True

    # Zero-window probe: exactly one byte at nextseq into a closed window.
    if seglen == 1 and nextseq_known and seq == fnext and rev.ws_window == 0:
        ta |= A_ZERO_WINDOW_PROBE
    else:
        if window == 0 and not sfr:
            ta |= A_ZERO_WINDOW
        if nextseq_known and seq_gt(seq, fnext) and not flags & RST:
            ta |= A_LOST_PACKET
        if seglen <= 1 and seq == ((fnext - 1) & MASK) and not sfr:
            if rev.ws_window == 0:
                # Linux probes a closed window with seq = snd_una - 1 (see module docstring).
                ta |= A_ZERO_WINDOW_PROBE
            else:
                ta |= A_KEEP_ALIVE
        pure = seglen == 0 and not sfr and seq == fnext and ack == fwd.ws_lastack
        if pure and window and window != fwd.ws_window:
            ta |= A_WINDOW_UPDATE
        if seglen > 0 and rev.wscale != -1 and not sfr and rev.ws_window >= 0:
            shift: i64 = 0
            if not rev.ws_first_ack and rev.wscale > 0:
                shift = rev.wscale
            if ((seq + seglen) & MASK) == ((rev.ws_lastack + (rev.ws_window << shift)) & MASK):
                ta |= A_WINDOW_FULL
        done = False
        if pure and window and window == fwd.ws_window and rev.ws_lastflags & A_KEEP_ALIVE:
            ta |= A_KEEP_ALIVE_ACK
            done = True
        elif pure and window == 0 and fwd.ws_window == 0 and rev.ws_lastflags & A_ZERO_WINDOW_PROBE:
            ta |= A_ZERO_WINDOW_PROBE_ACK
            done = True
        if not done and pure and window and window == fwd.ws_window:
            if fwd.ws_dupacknum == -1:
                fwd.ws_dupacknum = 1
            else:
                fwd.ws_dupacknum += 1
            ta |= A_DUPLICATE_ACK
            dupnum = fwd.ws_dupacknum

    # finished_fwd: a changed ACK value resets the duplicate-ACK counter.
    if ack != fwd.ws_lastack:
        fwd.ws_lastnondupack = frame
        fwd.ws_dupacknum = 0

    # ACKed unseen segment: the ACK covers bytes beyond the highest contiguous byte seen.
    # When data was seen beyond that point, move the mark to the peer's nextseq (so one loss
    # is reported once); when nothing beyond it was seen, report once until the peer sends a
    # new ACK value (its duplicate-ACK counter doubles as the "already reported" mark, -1).
    if rev.ws_maxseqtobeacked and flags & ACK and seq_gt(ack, rev.ws_maxseqtobeacked):
        if seq_lt(rev.ws_maxseqtobeacked, rev.ws_nextseq):
            rev.ws_maxseqtobeacked = rev.ws_nextseq
            ta |= A_ACK_LOST_PACKET
        else:
            if rev.ws_dupacknum == 0:
                ta |= A_ACK_LOST_PACKET
            rev.ws_dupacknum = -1

    # Retransmission family.
    if (seglen > 0 or flags & (SYN | FIN)) and not ta & A_KEEP_ALIVE:
        not_advanced = nextseq_known and seq_lt(seq, fnext)
        if seglen > 1 and ((fnext - 1) & MASK) == seq:
            not_advanced = False  # data right after a dropped zero-window probe byte
        if seglen > 0 and rev.ws_lastack and seq_le((seq + seglen) & MASK, rev.ws_lastack):
            ta |= A_SPURIOUS_RETRANSMISSION
        elif (
            not_advanced
            and rev.ws_dupacknum >= 2
            and rev.ws_lastack == seq
            and 0.0 <= time - rev.ws_lastacktime < FAST_RETRANSMIT_WINDOW
        ):
            ta |= A_FAST_RETRANSMISSION
        elif (
            not_advanced
            and 0.0 <= time - fwd.ws_nextseqtime < (irtt or OOO_DEFAULT_THRESHOLD)
            and fnext != ((seq + span) & MASK)
        ):
            ta |= A_OUT_OF_ORDER
        elif not_advanced:
            ta |= A_RETRANSMISSION

    # finished_checking_retransmission_type: update the forward state.
    nextseq = (seq + span) & MASK
    if (not nextseq_known or seq_gt(nextseq, fnext)) and not ta & A_ZERO_WINDOW_PROBE:
        fwd.ws_nextseq = nextseq
        fwd.ws_nextseqframe = frame
        fwd.ws_nextseqtime = time
    if (not fwd.ws_maxseqtobeacked or seq == fwd.ws_maxseqtobeacked) and not (
        ta & A_ZERO_WINDOW_PROBE
    ):
        fwd.ws_maxseqtobeacked = fwd.ws_nextseq
    fwd.ws_window = window
    fwd.ws_lastack = ack
    if flags & ACK:
        fwd.ws_lastack_set = True
    fwd.ws_lastacktime = time
    fwd.ws_lastflags = ta
    return ta, dupnum
