"""Zeek-compatible connection state (`conn_state`) and `history` letters.

Theory of operation: each direction has a Zeek endpoint state (INACTIVE, SYN_SENT,
SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET) updated per segment by `ZeekTracker.update`,
which also appends history letters (upper case = originator = our client). At the end,
`conn_state()` derives Zeek's state from the two endpoint states in the order of Zeek's
`conn/main.zeek`. History rules (Zeek's `update_history`, `ScaledHistoryEntry`): `a d i q` at
most once per direction;
`s h f r` again only when the sequence number differs from the last packet of the same kind;
`g t w` (and `c`, never produced: checksums are not validated) are logarithmic — the letter is
added at the 1st, 10th, 100th... occurrence.
"""

from __future__ import annotations

import re
from typing import Final

from mypy_extensions import i64

from tcpdiag.model import ACK, FIN, RST, SYN

INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6

STATE_NAMES: Final = (
    "INACTIVE",
    "SYN_SENT",
    "SYN_ACK_SENT",
    "PARTIAL",
    "ESTABLISHED",
    "CLOSED",
    "RESET",
)

_RSTOS0: Final = re.compile(r"^\^?S[^HAFGIQ]*R")

# once-per-direction letters
_H_ACK: Final = 0x01
_H_DATA: Final = 0x02
_H_FINRST: Final = 0x04
_H_MULTI: Final = 0x08
_H_SYN: Final = 0x10
_H_FIN: Final = 0x20
_H_RST: Final = 0x40


class ZeekTracker:
    """Zeek endpoint states and history string for one connection."""

    __slots__ = (
        "counts",
        "flags",
        "history",
        "last",
        "state",
        "thresholds",
    )

    def __init__(self, flipped: bool = False) -> None:
        self.state = [INACTIVE, INACTIVE]
        self.flags = [0, 0]
        # last sequence number of a SYN / FIN / RST per direction: [syn0, syn1, fin0, ...]
        self.last: list[int | None] = [None] * 6
        # logarithmic letters: per (direction, letter) count and next threshold (lazily)
        self.counts: dict[tuple[int, str], int] | None = None
        self.thresholds: dict[tuple[int, str], int] | None = None
        self.history = "^" if flipped else ""

    def _add(self, direction: int, letter: str) -> None:
        self.history += letter.upper() if direction == 0 else letter

    def _once(self, direction: int, bit: int, letter: str) -> bool:
        """Add `letter` if not yet recorded for this direction; True if it already was."""
        if self.flags[direction] & bit:
            return True
        self.flags[direction] |= bit
        self._add(direction, letter)
        return False

    def scaled(self, direction: int, letter: str) -> None:
        """Logarithmic letters (g, t, w): added at counts 1, 10, 100, ..."""
        if self.counts is None or self.thresholds is None:
            self.counts = {}
            self.thresholds = {}
        key = (direction, letter)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n >= self.thresholds.get(key, 1):
            self._add(direction, letter)
            self.thresholds[key] = self.thresholds.get(key, 1) * 10

    def update(self, direction: int, flags: i64, rel_seq: int, length: i64) -> None:
        """One segment from `direction` (0 = originator); `rel_seq` relative to its base."""
        if not flags & (SYN | FIN | RST):
            # Most segments: data or a pure ACK. Once both sides are established such a segment
            # changes no state (see _transition), and its letter is usually recorded already.
            bit = _H_DATA if length else _H_ACK if flags & ACK else 0
            if bit and not self.flags[direction] & bit:
                self._once(direction, bit, "d" if length else "a")
            st = self.state
            if st[0] != ESTABLISHED or st[1] != ESTABLISHED:
                self._transition(direction, flags, length)
            return
        syn, fin, rst = flags & SYN, flags & FIN, flags & RST
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._once(direction, _H_FINRST, "i")
            else:
                self._once(direction, _H_MULTI, "q")
        elif bits == 1:
            if syn:
                code = "h" if flags & ACK else "s"
                if self._once(direction, _H_SYN, code) and rel_seq != self.last[direction]:
                    self._add(direction, code)
                self.last[direction] = rel_seq
            elif fin:
                end = rel_seq + length
                if self._once(direction, _H_FIN, "f") and end != self.last[2 + direction]:
                    self._add(direction, "f")
                self.last[2 + direction] = end
            else:
                if self._once(direction, _H_RST, "r") and rel_seq != self.last[4 + direction]:
                    self._add(direction, "r")
                self.last[4 + direction] = rel_seq
        elif length:
            self._once(direction, _H_DATA, "d")
        elif flags & ACK:
            self._once(direction, _H_ACK, "a")
        self._transition(direction, flags, length)

    def _transition(self, d: int, flags: int, length: int) -> None:
        st = self.state
        p = 1 - d
        me, peer = st[d], st[p]
        if flags & RST:
            # A RST answering the peer's FIN is folded back into a normal close (as Zeek does).
            st[d] = CLOSED if peer == CLOSED else RESET
            return
        if me == RESET:
            return
        if flags & SYN:
            if me == INACTIVE:
                st[d] = SYN_ACK_SENT if flags & ACK else SYN_SENT
            return
        acks = bool(flags & ACK)
        if (acks and peer == SYN_ACK_SENT and me in (SYN_SENT, INACTIVE, PARTIAL)) or (
            acks and me == SYN_ACK_SENT and peer in (SYN_SENT, ESTABLISHED)
        ):
            st[p] = ESTABLISHED
            me = st[d] = ESTABLISHED
        if flags & FIN:
            st[d] = CLOSED
            return
        if (me == INACTIVE and (length or flags & ACK)) or (
            me in (SYN_SENT, SYN_ACK_SENT) and length
        ):
            st[d] = PARTIAL

    def gap(self, direction: int) -> None:
        """A content gap in `direction` (only while both sides are established or closing)."""
        if self.state[0] in (ESTABLISHED, CLOSED) and self.state[1] in (ESTABLISHED, CLOSED):
            self.scaled(direction, "g")

    @property
    def history_string(self) -> str:
        return self.history

    def conn_state(self, orig_bytes: int = 0, resp_bytes: int = 0) -> str:
        os_, rs = self.state
        inactive_o = os_ in (INACTIVE, PARTIAL)
        inactive_r = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                os_ == RESET and orig_bytes == 0 and resp_bytes == 0
            ):
                return "REJ"
            if inactive_o:
                return "RSTRH"
            return "RSTR"
        if os_ == RESET:
            if inactive_r:
                return "RSTOS0" if _RSTOS0.match(self.history_string) else "OTH"
            return "RSTO"
        if os_ == CLOSED and rs == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if inactive_r else "S2"
        if rs == CLOSED:
            return "SHR" if inactive_o else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"
