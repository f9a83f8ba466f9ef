"""`TlsStream`: TLS analysis of one TCP connection, fed by the flow stage's reassembly.

Theory of operation
-------------------
The stream sits on a flow from its first byte and goes through three modes:

    SNIFF     the first bytes decide: a TLS record / SSLv2 ClientHello -> TLS from offset 0;
              a STARTTLS-capable plaintext opener -> PLAIN; anything else -> OFF.
    PLAIN     a `StartTlsWatcher` follows the plaintext until the upgrade; each direction
              switches to TLS at the stream offset the watcher names.
    TLS       per direction, a `RecordFramer` cuts records; plaintext Handshake payloads go to
              a `HandshakeReassembler`; messages update the connection state (hellos, chosen
              version, who has switched to encryption).

Encryption: in TLS <= 1.2 a side's records after its ChangeCipherSpec are encrypted; in
TLS 1.3 everything after the ServerHello but CCS is (and typed application_data). A Handshake
record that does not parse as plaintext messages the sender may send is taken as encrypted
(Wireshark's heuristic), which is how a truncated flight's lone encrypted Finished is recognised.

What it noticed for the findings (malformed bytes, records cut short, gaps) is in `events.py`;
the per-record notes for the flight checks in `flights.py`.

Memory: application data is counted, never stored; handshake messages above the cap are typed
and counted but not buffered; the record notes used by the flight checks and the timeline labels
are capped. Nothing here raises on wire data: `DecodeError` becomes a `MalformedEvent`.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import Final

from tcpdiag.config import Limits
from tcpdiag.errors import DecodeError
from tcpdiag.flow import rows
from tcpdiag.flow.reassembly import NativeConsumer
from tcpdiag.model import Direction
from tcpdiag.result import TlsAlert, TlsMessage, TlsSummary
from tcpdiag.statepack import Packed, StatePacker
from tcpdiag.tls.constants import (
    ContentType,
    HandshakeType,
    alert_description_name,
    alert_level_name,
    cipher_suite_name,
    content_type_name,
    handshake_name,
    is_grease,
    version_name,
)
from tcpdiag.tls.detect import DETECT_LIMIT, looks_like_tls
from tcpdiag.tls.events import GapEvent, MalformedEvent, TruncatedEvent
from tcpdiag.tls.fingerprint import fingerprints
from tcpdiag.tls.flights import CCS, ENC_HANDSHAKE, FINISHED_ENC
from tcpdiag.tls.handshake import (
    ClientHello,
    HandshakeReassembler,
    RawMessage,
    ServerHello,
    ecdhe_point_length,
    looks_plaintext,
    parse_certificate,
    parse_client_hello,
    parse_server_hello,
    parse_sslv2_client_hello,
    starting_types,
)
from tcpdiag.tls.records import (
    SSLV2_CLIENT_HELLO,
    Malformed,
    Partial,
    Record,
    RecordFramer,
    RecordNote,
)
from tcpdiag.tls.starttls import StartTlsWatcher, Upgrade, opener

HANDSHAKE_CAP: Final = 256 * 1024  # per message; the corpus has a 340 KB certificate chain
MAX_NOTES: Final = 256  # record notes kept for the flight checks (handshakes are a few records)
# ... and once the handshake is complete, the last few only: the rules read the record before an
# alert, at the end; every record of a long connection cost ~150 bytes up to MAX_NOTES.
NOTES_AFTER_HANDSHAKE: Final = 8
MAX_MESSAGES: Final = 256
MAX_ALERTS: Final = 64
# Timeline labels: the timeline shows a flow's first and last packets (`Limits.timeline_head`,
# `timeline_tail`), so a side keeps the labels of its first and of its last that many labelled
# frames (each a packet of that side), and of no more than these many records (many tiny
# records in one packet). Labelling every record up to the caps alone cost a long TLS
# connection ~100 KB per direction.
LABELS_HEAD: Final = 512
LABELS_TAIL: Final = 256
_TIMELINE: Final = (Limits().timeline_head, Limits().timeline_tail)
_APPEND_INT64: Final = rows.append_int64
MAX_STASH: Final = 16 * 1024
TLS13_ALERT_RECORD: Final = 24  # 5 header + 2 alert + 1 inner content type + 16-byte AEAD tag
# The content types tested for every record, as Final ints: compiled, a comparison with them is
# a C integer comparison, with an IntEnum member a dict and an attribute lookup first.
_HANDSHAKE: Final = int(ContentType.HANDSHAKE)
_CHANGE_CIPHER_SPEC: Final = int(ContentType.CHANGE_CIPHER_SPEC)
_ALERT: Final = int(ContentType.ALERT)
_APPLICATION_DATA: Final = int(ContentType.APPLICATION_DATA)
_HEARTBEAT: Final = int(ContentType.HEARTBEAT)
# Likewise the handshake types and directions tested for every message and record; and the
# sender's name by direction (an IntEnum's `.name` is a Python-level property, ~1 us a call).
_CLIENT_HELLO: Final = int(HandshakeType.CLIENT_HELLO)
_SERVER_HELLO: Final = int(HandshakeType.SERVER_HELLO)
_CERTIFICATE: Final = int(HandshakeType.CERTIFICATE)
_SERVER_KEY_EXCHANGE: Final = int(HandshakeType.SERVER_KEY_EXCHANGE)
_CERTIFICATE_REQUEST: Final = int(HandshakeType.CERTIFICATE_REQUEST)
_SERVER_HELLO_DONE: Final = int(HandshakeType.SERVER_HELLO_DONE)
_CLIENT: Final = int(Direction.CLIENT)
_SERVER: Final = int(Direction.SERVER)
_SENDER: Final = ("client", "server")


def _keeps_payload(content_type: int) -> bool:
    """Whether the framer keeps a record's payload: application data and heartbeats are only
    counted."""
    return content_type != _APPLICATION_DATA and content_type != _HEARTBEAT


# A timeline label as kept: its text, or, for a record labelled only by its content type and
# size (application data, ChangeCipherSpec...: most records), `size << 8 | content type`, made
# into "ApplicationData 1029" only if a timeline shows it (`label_text`): an f-string per
# record, most of them dropped again from the tail or never shown, was ~1% of a worker.
Label = str | int


def label_text(label: Label) -> str:
    """The text of a label as kept (see `Label`)."""
    if isinstance(label, str):
        return label
    return f"{content_type_name(label & 0xFF)} {label >> 8}"


# A side's labels as `SideState` keeps them, in values marshal writes as they are: the head's
# frames (int64s packed, or None), the head's texts, the tail's (frame, text) pairs (or None),
# and how many labels in all. A stored flow keeps these until its timeline is shown
# (`TlsStream.label_state`, `engine._park`): most never are, and for them the labels are
# never put in frame order.
SideLabels = tuple[bytes | bytearray | None, list[Label], list[tuple[int, Label]] | None, int]


class SideState:
    """What one direction did. Public for the findings (read-only by convention).

    A plain class rather than a dataclass: compiled, a dataclass is built through its
    generated Python `__init__` (two per flow)."""

    __slots__ = (
        "app_records",
        "base",
        "ccs_frame",
        "direction",
        "encrypted_handshake",
        "end",
        "first_app_frame",
        "first_app_size",
        "framer",
        "head_frames",
        "head_label_frames",
        "head_label_texts",
        "hs",
        "label_frame",
        "label_frames",
        "labels_dropped",
        "labels_tail",
        "last_record",
        "record_bytes",
        "records",
        "sniff",
        "sniff_chunks",
        "started",
        "stash",
        "stash_size",
        "stopped",
        "tail_frames",
        "tail_runs",
    )

    def __init__(self, direction: Direction, timeline: tuple[int, int] = _TIMELINE) -> None:
        self.direction = direction
        self.framer: RecordFramer | None = None
        self.hs = HandshakeReassembler(HANDSHAKE_CAP)
        # stream offset of this side's first TLS byte (STARTTLS: after the upgrade)
        self.base = 0
        self.started = False
        self.stopped: str | None = None  # why parsing stopped (gap, malformed, gave up)
        self.sniff = bytearray()
        self.sniff_chunks: list[tuple[bytes, int, float]] = []  # for replay
        self.stash: list[tuple[bytes, int, float]] = []  # held client bytes
        self.stash_size = 0
        self.records = 0
        self.record_bytes = 0
        self.ccs_frame: int | None = None
        self.encrypted_handshake = 0  # encrypted Handshake records after this side's CCS
        self.app_records = 0
        self.first_app_frame: int | None = None
        self.first_app_size = 0
        self.last_record: Record | None = None
        self.end: tuple[str, int | None, float | None] | None = None  # (how, frame, time)
        # The first labels as two parallel lists, not (frame, text) tuples: a frame in an
        # array is 8 bytes, where a tuple and a boxed frame number took ~60 per label. The
        # array is made at the first label (an empty one is 64 bytes; a stream that is not
        # TLS labels nothing).
        # (int64s packed by `rows.append_int64`: an array's append parses each int)
        self.head_label_frames: bytearray | None = None
        self.head_label_texts: list[Label] = []
        # created when the head is full (an empty deque is ~600 bytes; most sides never need
        # one)
        self.labels_tail: deque[tuple[int, Label]] | None = None
        self.labels_dropped = 0
        # frames whose labels the head and the tail keep (see LABELS_HEAD)
        self.head_frames, self.tail_frames = timeline
        self.label_frame = -1  # the frame of the last label
        self.label_frames = 0  # labelled frames so far (runs of labels of one frame)
        self.tail_runs = 0  # ... of them in the tail

    def labels(self) -> list[tuple[int, str]]:
        """(frame, label) of the records labelled, in the order labelled (the first and the
        last ones: see `label`)."""
        return side_labels(self.label_state())

    def label_state(self) -> SideLabels:
        """The labels as kept (see `SideLabels`)."""
        tail = self.labels_tail
        return (
            self.head_label_frames,
            self.head_label_texts,
            None if tail is None else list(tail),
            len(self.head_label_texts) + (0 if tail is None else len(tail)),
        )

    def label(self, frame: int, text: Label) -> None:
        new_frame = frame != self.label_frame
        if new_frame:
            self.label_frame = frame
            self.label_frames += 1
        texts = self.head_label_texts
        if self.label_frames <= self.head_frames and len(texts) < LABELS_HEAD:
            frames = self.head_label_frames
            if frames is None:
                frames = self.head_label_frames = bytearray()
            _APPEND_INT64(frames, frame)
            texts.append(text)
            return
        tail = self.labels_tail
        if tail is None:
            tail = self.labels_tail = deque()
            new_frame = True  # the tail's first frame
        if new_frame:
            self.tail_runs += 1
        tail.append((frame, text))
        while self.tail_runs > self.tail_frames or len(tail) > LABELS_TAIL:
            oldest = tail.popleft()[0]
            self.labels_dropped += 1
            if not tail or tail[0][0] != oldest:
                self.tail_runs -= 1


def side_labels(state: SideLabels) -> list[tuple[int, str]]:
    """A side's (frame, label) pairs, in the order labelled."""
    packed, texts, tail, _ = state
    head: list[tuple[int, str]] = []
    if packed is not None:
        frames = array("q")
        frames.frombytes(packed)
        head = [(f, label_text(t)) for f, t in zip(frames, texts, strict=True)]
    if tail is None:
        return head
    return [*head, *[(f, label_text(t)) for f, t in tail]]


def labels_from_state(state: tuple[SideLabels, SideLabels]) -> dict[int, list[str]]:
    """`TlsStream.records_by_frame` of the streams whose `label_state` this is."""
    return labels_by_frame(side_labels(state[0]), side_labels(state[1]))


def labels_by_frame(
    client: list[tuple[int, str]], server: list[tuple[int, str]]
) -> dict[int, list[str]]:
    """Both sides' (frame, label) lists by frame: the frames in order, each frame's labels
    client's first, each side's in its order. A side's labels nearly always come in frame order
    (records are labelled in stream order; only a retransmission delivered after later data
    breaks it): then one merge of the two lists, with no sort and no lookups."""
    if not (_ascending(client) and _ascending(server)):
        merged: dict[int, list[str]] = {}
        for labels in (client, server):
            for frame, text in labels:
                merged.setdefault(frame, []).append(text)
        return dict(sorted(merged.items()))
    out: dict[int, list[str]] = {}
    i = j = 0
    n_client, n_server = len(client), len(server)
    last = -1
    texts: list[str] = []
    while i < n_client or j < n_server:
        if j >= n_server or (i < n_client and client[i][0] <= server[j][0]):
            frame, text = client[i]
            i += 1
        else:
            frame, text = server[j]
            j += 1
        if frame == last and out:
            texts.append(text)
        else:
            texts = [text]
            out[frame] = texts
            last = frame
    return out


def _ascending(labels: list[tuple[int, str]]) -> bool:
    previous = -1
    for frame, _ in labels:
        if frame < previous:
            return False
        previous = frame
    return True


class TlsStream(NativeConsumer):
    """StreamConsumer for one TCP flow. See the module docstring."""

    def __init__(self, *, assume_tls: bool = False, timeline: tuple[int, int] = _TIMELINE) -> None:
        """`timeline`: the packets the flow's timeline keeps, first and last (`Limits`); the
        labels of no other frame are kept."""
        self.wants_data = True
        self.mode = "tls" if assume_tls else "sniff"
        self.sides = (SideState(Direction.CLIENT, timeline), SideState(Direction.SERVER, timeline))
        self.watcher: StartTlsWatcher | None = None
        self.starttls: str | None = None
        self.client_hello: ClientHello | None = None
        self.client_hello_frame: int | None = None
        self.client_hellos = 0
        self.server_hello: ServerHello | None = None
        self.server_hello_frame: int | None = None
        self.hello_retry: ServerHello | None = None
        self.hello_retry_note: int | None = None  # index in `notes`
        self.cert_requested = False
        self.cert_sizes: list[int] = []
        self.ecdhe_point: int | None = None
        self.server_hello_done_note: int | None = None  # index in `notes`
        self.server_finished_note: int | None = None  # resumed 1.2: server's Finished
        self.complete_frame: int | None = None
        self._notes: list[RecordNote] = []  # up to the end of the handshake
        # the last ones after it: a list, not a deque(maxlen=...), which takes ~600 bytes for
        # its first block however few notes it holds (and most TLS connections get here)
        self._notes_after: list[RecordNote] | None = None
        self.messages: list[TlsMessage] = []
        self.alerts: list[TlsAlert] = []
        self.alert_records: list[tuple[TlsAlert, Record]] = []
        self.malformed: list[MalformedEvent] = []
        self.truncated: list[TruncatedEvent] = []
        self.gaps: list[GapEvent] = []
        self.non_tls_reply: MalformedEvent | None = None
        self._finished = False
        if assume_tls:
            for side in self.sides:
                self._start_tls(side, 0)

    # ---------------------------------------------------------------- StreamConsumer
    # The flow stage passes directions as plain ints (0 client, 1 server): Direction is an
    # IntEnum, so both work; `Direction(direction)` gives the methods back.
    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        if not self.wants_data or not data:
            return
        side = self._side(direction)
        if self.mode == "sniff":
            self._sniff(side, data, frame, time)
        elif self.mode == "plain":
            self._plain(side, data, frame, time)
        elif side.started:
            self._feed(side, data, frame, time)

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        side = self._side(direction)
        # A side's first hole is the one that matters (the rules read it); the other side may
        # go on for hours, and a lossy direction would add an event per hole.
        if not any(g.sender == side.direction for g in self.gaps):
            self.gaps.append(GapEvent(Direction(direction), offset, length, frame))
        if side.stopped is None:
            side.stopped = f"{length} bytes at stream offset {offset} were never captured"
            if side.framer is not None:
                partial = side.framer.partial()
                if partial is not None:
                    partial.offset += side.base
                    self.truncated.append(TruncatedEvent(side.direction, partial, "gap", frame))
            side.framer = None
        if self.mode != "tls":
            self.mode = "off"
        self._update_wants()

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        side = self._side(direction)
        if side.end is None:
            side.end = (how, frame, time)
        self._cut(side, how, frame)
        if how == "rst":  # a reset ends both directions
            other = self._side(side.direction.other)
            self._cut(other, "rst", frame, by=side.direction)
        self._update_wants()

    def _side(self, direction: int) -> SideState:
        # (by a constant index: compiled, `sides` is a pair of C fields, and indexing it with
        # a variable builds a tuple object first, for every segment)
        return self.sides[1] if direction else self.sides[0]

    def freeze(self) -> FrozenStream | None:
        """This stream's state packed into one bytes object (a quarter of its memory), for a
        connection gone quiet: `FrozenStream.thaw` gives an equal stream back. None when the
        state holds something the packer does not know (the stream is then kept as it is)."""
        packed = _PACKER.pack(self)
        return None if packed is None else FrozenStream(packed)

    # ---------------------------------------------------------------- results
    @property
    def spent(self) -> bool:
        """Nothing more can come of this stream: it stopped looking (not TLS, no STARTTLS, or a
        hole before it could tell) without a TLS record, so it has nothing to report."""
        return self.mode == "off" and not self.is_tls

    @property
    def is_tls(self) -> bool:
        """True once at least one TLS record was seen: only then is there a summary to show."""
        return any(s.records for s in self.sides)

    @property
    def version(self) -> int | None:
        if self.server_hello is not None:
            return self.server_hello.version
        return None

    @property
    def tls13(self) -> bool:
        version = self.version  # (an `int | None` compared by value: a generic comparison)
        return version is not None and version == 0x0304

    @property
    def handshake_complete(self) -> bool:
        return self.complete_frame is not None

    def finish(self) -> None:
        """Close the books: records still open become truncated (capture ended). Idempotent;
        summary() and the rules call it."""
        if self._finished:
            return
        self._finished = True
        for side in self.sides:
            self._cut(side, "eof", None)
            pending = side.hs.pending
            if pending is not None and side.stopped is None and not self._cut_short(side):
                # Every record arrived whole, yet the last handshake message is short: its
                # length field claims more than the records carried.
                msg_type, total, seen = pending
                self.malformed.append(
                    MalformedEvent(
                        side.direction,
                        side.last_record.frame if side.last_record else 0,
                        side.last_record.offset if side.last_record else 0,
                        handshake_name(msg_type),
                        f"its header claims {total} bytes but the Handshake records carried "
                        f"only {seen}",
                    )
                )

    def _cut_short(self, side: SideState) -> bool:
        return any(t.sender == side.direction for t in self.truncated)

    def summary(self) -> TlsSummary:
        self.finish()
        ch, sh = self.client_hello, self.server_hello
        versions_offered: list[str] = []
        sni: str | None = None
        alpn: list[str] = []
        ja3: str | None = None
        ja4: str | None = None
        if ch is not None:
            offered = [v for v in ch.supported_versions if not is_grease(v)] or [ch.legacy_version]
            versions_offered = [version_name(v) for v in offered]
            sni = ch.sni
            alpn = list(ch.alpn)
            ja3, ja4 = fingerprints(ch)
        version: str | None = None
        cipher_suite: str | None = None
        if sh is not None:
            version = version_name(sh.version)
            cipher_suite = cipher_suite_name(sh.cipher_suite)
        # Positional, in field order: TlsSummary's __init__ is interpreted (result.py is not
        # compiled), and keywords cost it twice as much.
        return TlsSummary(
            versions_offered,
            version,
            sni,
            alpn,
            cipher_suite,
            self.handshake_complete,
            self.sides[0].records,
            self.sides[1].records,
            list(self.messages),
            list(self.alerts),
            ja3,
            ja4,
            self.starttls,
            list(self.cert_sizes),
        )

    def records_by_frame(self) -> dict[int, list[str]]:
        """Timeline labels by frame, in frame order; a frame's labels in the order they were
        made, the client's before the server's."""
        return labels_from_state(self.label_state())

    def label_state(self) -> tuple[SideLabels, SideLabels]:
        """Both sides' labels as kept, for `labels_from_state` (`records_by_frame`) later."""
        self.finish()
        return (self.sides[0].label_state(), self.sides[1].label_state())

    # ---------------------------------------------------------------- modes
    def _sniff(self, side: SideState, data: bytes, frame: int, time: float) -> None:
        if len(side.sniff) < DETECT_LIMIT:
            side.sniff += data
            side.sniff_chunks.append((data, frame, time))
        head = bytes(side.sniff)
        verdict = looks_like_tls(head)
        if verdict:
            self.mode = "tls"
            for s in self.sides:
                self._start_tls(s, 0)
            # Replay what was held while deciding, this side first (it spoke first).
            for s in (side, self._side(side.direction.other)):
                chunks = s.sniff_chunks
                s.sniff_chunks = []
                s.sniff.clear()
                for chunk, f, t in chunks:
                    self._feed(s, chunk, f, t)
            return
        proto = opener(head)
        if proto:
            self.mode = "plain"
            self.watcher = StartTlsWatcher(str(proto))
            chunks = side.sniff_chunks
            side.sniff_chunks = []
            side.sniff.clear()
            for chunk, f, t in chunks:
                self._plain(side, chunk, f, t)
            return
        if (verdict is None or proto is None) and len(head) < DETECT_LIMIT:
            return  # too few bytes to tell yet
        self.mode = "off"
        side.sniff.clear()
        side.sniff_chunks = []
        self._update_wants()

    def _plain(self, side: SideState, data: bytes, frame: int, time: float) -> None:
        watcher = self.watcher
        assert watcher is not None
        if side.started:
            self._feed(side, data, frame, time)
            return
        if side.direction == Direction.CLIENT and watcher.pending_client is not None:
            # The client asked to upgrade; its next bytes are TLS if the server agrees.
            if side.stash_size < MAX_STASH:
                side.stash.append((data, frame, time))
                side.stash_size += len(data)
            return
        used = watcher.feed(side.direction, data)
        if watcher.failed:
            self.mode = "off"
            self._update_wants()
            return
        up = watcher.upgrade
        if up is None or used is None:
            client = self.sides[0]
            if client.stash and watcher.pending_client is None:
                # Refused: what the client sent meanwhile was plaintext after all.
                stash, client.stash, client.stash_size = client.stash, [], 0
                for chunk, f, t in stash:
                    self._plain(client, chunk, f, t)
            return
        self.starttls = up.protocol
        self.mode = "tls"
        client, server = self.sides
        self._start_tls(client, up.client_offset)
        self._start_tls(server, up.server_offset)
        rest = data[used:]
        if rest:
            self._feed(side, rest, frame, time)
        stash, client.stash = client.stash, []
        for chunk, f, t in stash:
            self._feed(client, chunk, f, t)

    def _start_tls(self, side: SideState, base: int) -> None:
        side.started = True
        side.base = base
        side.framer = RecordFramer(
            keep=_keeps_payload, allow_sslv2=side.direction == Direction.CLIENT
        )

    def _update_wants(self) -> None:
        if self.mode == "off":
            self.wants_data = False
        elif self.mode == "tls":
            self.wants_data = any(s.framer is not None and s.end is None for s in self.sides)

    # ---------------------------------------------------------------- record layer
    def _feed(self, side: SideState, data: bytes, frame: int, time: float) -> None:
        framer = side.framer
        if framer is None or framer.skip_body(len(data)):
            return
        for record in framer.feed(data, frame, time):
            record.offset += side.base
            self._on_record(side, record)
        if framer.broken is not None:
            self._broken(side, framer.broken)

    def _broken(self, side: SideState, bad: Malformed) -> None:
        event = MalformedEvent(
            side.direction, bad.frame, bad.offset + side.base, "record header", bad.reason, bad.data
        )
        if (
            side.direction == Direction.SERVER
            and side.records == 0
            and self.client_hello is not None
            and self.server_hello is None
        ):
            self.non_tls_reply = event  # a non-TLS server answering a ClientHello
        else:
            self.malformed.append(event)
        side.stopped = f"{bad.reason} at stream offset {event.offset}"
        side.framer = None
        self._update_wants()

    def _cut(
        self, side: SideState, how: str, frame: int | None, by: Direction | None = None
    ) -> None:
        if side.framer is None:
            return
        partial = side.framer.partial()
        if partial is not None:
            partial.offset += side.base
            by = by if by is not None else side.direction
            self.truncated.append(TruncatedEvent(side.direction, partial, how, frame, by))
            name = content_type_name(partial.content_type) if partial.content_type else "Record"
            if partial.content_type == SSLV2_CLIENT_HELLO:
                name = "ClientHello(SSLv2)"
            total = partial.total if partial.total is not None else "?"
            side.label(partial.frame, f"{name} {total} (partial: {partial.got} of {total} B)")
            self._note(
                side,
                RecordNote(
                    side.direction,
                    partial.frame,
                    partial.time,
                    partial.offset,
                    partial.total or partial.got,
                    (name,),
                    got=partial.got,
                ),
            )
        side.framer = None

    @property
    def notes(self) -> list[RecordNote]:
        """Notes of the records in stream order: those of the handshake (up to MAX_NOTES),
        then the last NOTES_AFTER_HANDSHAKE after it."""
        after = self._notes_after
        return self._notes if after is None else [*self._notes, *after]

    def _note(self, side: SideState, note: RecordNote) -> None:
        if self.complete_frame is not None:
            after = self._notes_after
            if after is None:
                after = self._notes_after = []
            after.append(note)
            if len(after) > NOTES_AFTER_HANDSHAKE:
                del after[0]
        elif len(self._notes) < MAX_NOTES:
            self._notes.append(note)

    @property
    def _noting(self) -> bool:
        return self.complete_frame is not None or len(self._notes) < MAX_NOTES

    def _on_record(self, side: SideState, rec: Record) -> None:
        side.records += 1
        side.record_bytes += rec.size
        side.last_record = rec
        ct = rec.content_type
        if ct == _HANDSHAKE:
            tokens = self._handshake_record(side, rec)
        elif ct == _CHANGE_CIPHER_SPEC:
            if side.ccs_frame is None:
                side.ccs_frame = rec.frame
            tokens = (CCS,)
        elif ct == _ALERT:
            tokens = ("Alert",)
            self._alert(side, rec)
        elif ct == _APPLICATION_DATA:
            side.app_records += 1
            if side.first_app_frame is None:
                side.first_app_frame = rec.frame
                side.first_app_size = rec.size
            tokens = ("ApplicationData",)
        elif ct == SSLV2_CLIENT_HELLO:
            tokens = ("ClientHello",)
            self._sslv2(side, rec)
        else:
            tokens = (content_type_name(ct),)
        if ct != _HANDSHAKE and ct != _ALERT and ct != SSLV2_CLIENT_HELLO:
            # f"{tokens[0]} {rec.size}" when shown: tokens[0] is content_type_name(ct) here
            side.label(rec.frame, rec.size << 8 | ct)
        if self._noting:
            note = RecordNote(side.direction, rec.frame, rec.time, rec.offset, rec.size, tokens)
            self._note(side, note)
        self._check_complete(rec)

    def _check_complete(self, rec: Record) -> None:
        if self.complete_frame is not None or self.server_hello is None:
            return
        client, server = self.sides
        if self.tls13:
            # Zeek's rule (application_data both ways), except that a client whose only
            # encrypted record has the size of an encrypted alert has not finished.
            client_done = client.app_records > 1 or (
                client.app_records == 1 and client.first_app_size != TLS13_ALERT_RECORD
            )
            done = client_done and server.app_records > 0
        else:
            done = client.encrypted_handshake > 0 and server.encrypted_handshake > 0
        if done:
            self.complete_frame = rec.frame

    # ---------------------------------------------------------------- alerts
    def _alert(self, side: SideState, rec: Record) -> None:
        payload = rec.payload or b""
        sender = _SENDER[side.direction]
        if len(payload) == 2:
            level, desc = alert_level_name(payload[0]), alert_description_name(payload[1])
            alert = TlsAlert(sender, rec.frame, level, desc, encrypted=False)
            label = f"Alert({level} {desc}) {rec.size}"
        else:
            alert = TlsAlert(sender, rec.frame, None, None, encrypted=True)
            label = f"Alert* {rec.size}"
        side.label(rec.frame, label)
        if len(self.alerts) < MAX_ALERTS:
            self.alerts.append(alert)
            self.alert_records.append((alert, rec))

    # ---------------------------------------------------------------- handshake
    def _handshake_record(self, side: SideState, rec: Record) -> tuple[str, ...]:
        payload = rec.payload or b""
        encrypted = False
        if side.hs.mid_message and side.ccs_frame is None:
            encrypted = False
        elif side.ccs_frame is not None or self._tls13_encrypting(side):
            encrypted = not looks_plaintext(payload, side.direction, exact=True)
        else:
            encrypted = not looks_plaintext(payload, side.direction, exact=False)
        if encrypted:
            side.hs = HandshakeReassembler(HANDSHAKE_CAP)  # nothing to reassemble in ciphertext
            if side.ccs_frame is not None:
                side.encrypted_handshake += 1
                token = FINISHED_ENC if side.encrypted_handshake == 1 else "EncryptedHandshake*"
                msg_type = "Finished" if side.encrypted_handshake == 1 else "EncryptedHandshake"
            else:
                token, msg_type = ENC_HANDSHAKE, "EncryptedHandshake"
            side.label(rec.frame, f"{token} {rec.size}")
            sender = _SENDER[side.direction]
            self._message(side, TlsMessage(sender, rec.frame, msg_type, rec.length))
            if side.direction == _SERVER and side.encrypted_handshake == 1:
                self.server_finished_note = len(self._notes)
            return (token,)
        pending = side.hs.pending
        skip = pending[1] - pending[2] if pending is not None else 0
        starting = starting_types(payload, skip)
        names = [handshake_name(t) for t in starting]
        try:
            messages = side.hs.feed(payload, rec.frame, rec.offset)
        except DecodeError as exc:  # pragma: no cover - the reassembler does not parse
            messages = []
            self.malformed.append(
                MalformedEvent(side.direction, rec.frame, rec.offset, "handshake", str(exc))
            )
        for msg in messages:
            name = self._on_message(side, msg)
            if msg.msg_type == _SERVER_HELLO and name == "HelloRetryRequest":
                names = [("HelloRetryRequest" if n == "ServerHello" else n) for n in names]
        if names:
            side.label(rec.frame, f"{'+'.join(names)} {rec.size}")
            return tuple(names)
        cont = handshake_name(pending[0]) if pending is not None else "Handshake"
        side.label(rec.frame, f"Handshake {rec.size} (cont. {cont})")
        return ()

    def _tls13_encrypting(self, side: SideState) -> bool:
        return self.tls13 and self.server_hello is not None

    def _message(self, side: SideState, msg: TlsMessage) -> None:
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(msg)

    def _on_message(self, side: SideState, msg: RawMessage) -> str:
        msg_type = msg.msg_type
        name = handshake_name(msg_type)
        body = msg.body
        direction = int(side.direction)
        try:
            if msg_type == _CLIENT_HELLO and direction == _CLIENT:
                self.client_hellos += 1
                if body is not None and self.client_hello is None:
                    self.client_hello = parse_client_hello(body)
                    self.client_hello_frame = msg.frame
            elif msg_type == _SERVER_HELLO and direction == _SERVER:
                if body is not None:
                    hello = parse_server_hello(body)
                    if hello.is_hello_retry_request:
                        self.hello_retry = hello
                        self.hello_retry_note = len(self._notes)
                        name = "HelloRetryRequest"
                    else:
                        self.server_hello = hello
                        self.server_hello_frame = msg.frame
            elif msg_type == _CERTIFICATE_REQUEST:
                self.cert_requested = True
            elif msg_type == _SERVER_KEY_EXCHANGE and body is not None:
                self.ecdhe_point = ecdhe_point_length(body)
            elif msg_type == _CERTIFICATE and direction == _SERVER and body is not None:
                self.cert_sizes = parse_certificate(body, self.tls13)
            elif msg_type == _SERVER_HELLO_DONE:
                self.server_hello_done_note = len(self._notes)  # the note about to be added
        except DecodeError as exc:
            self.malformed.append(
                MalformedEvent(
                    side.direction, msg.frame, msg.offset, name, str(exc), (body or b"")[:16]
                )
            )
        self._message(side, TlsMessage(_SENDER[direction], msg.frame, name, msg.length))
        return name

    def _sslv2(self, side: SideState, rec: Record) -> None:
        payload = rec.payload or b""
        side.label(rec.frame, f"ClientHello(SSLv2) {rec.size}")
        if not payload or payload[0] != 1:
            return
        try:
            hello = parse_sslv2_client_hello(payload[1:])
        except DecodeError as exc:
            self.malformed.append(
                MalformedEvent(side.direction, rec.frame, rec.offset, "SSLv2 ClientHello", str(exc))
            )
            return
        self.client_hellos += 1
        if self.client_hello is None:
            self.client_hello = hello
            self.client_hello_frame = rec.frame
        self._message(side, TlsMessage("client", rec.frame, "ClientHello", rec.length))


__all__ = [
    "GapEvent",
    "MalformedEvent",
    "SideState",
    "TlsStream",
    "TruncatedEvent",
]


class FrozenStream:
    """A `TlsStream` packed by `TlsStream.freeze`."""

    __slots__ = ("packed",)

    def __init__(self, packed: Packed) -> None:
        self.packed = packed

    def thaw(self) -> TlsStream:
        stream = _PACKER.unpack(self.packed)
        assert isinstance(stream, TlsStream)
        return stream


# Every class a stream's state holds, with a factory making a blank one (its fields are then
# all set from the packed state). A class missing here makes `freeze` keep the stream as it is;
# tests/unit/test_statepack.py checks that no stream of the corpus meets one.
_D: Final = Direction.CLIENT
_PACKER: Final = StatePacker(
    {
        TlsStream: TlsStream,
        SideState: lambda: SideState(_D),
        RecordFramer: lambda: RecordFramer(_keeps_payload),
        HandshakeReassembler: lambda: HandshakeReassembler(0),
        Record: lambda: Record(0, 0, 0, 0, 0, 0.0, None),
        RecordNote: lambda: RecordNote(_D, 0, 0.0, 0, 0, ()),
        Partial: lambda: Partial(None, 0, None, 0, 0, 0.0),
        Malformed: lambda: Malformed(0, b"", "", 0),
        ClientHello: lambda: ClientHello(0, b"", b"", [], b""),
        ServerHello: lambda: ServerHello(0, b"", b"", 0, 0),
        RawMessage: lambda: RawMessage(0, 0, 0, 0, None),
        StartTlsWatcher: lambda: StartTlsWatcher(""),
        Upgrade: lambda: Upgrade("", 0, 0),
        MalformedEvent: lambda: MalformedEvent(_D, 0, 0, "", ""),
        TruncatedEvent: lambda: TruncatedEvent(_D, Partial(None, 0, None, 0, 0, 0.0), "", None),
        GapEvent: lambda: GapEvent(_D, 0, 0, 0),
        TlsMessage: lambda: TlsMessage("", 0, "", 0),
        TlsAlert: lambda: TlsAlert("", 0, None, None, False),
    }
)
