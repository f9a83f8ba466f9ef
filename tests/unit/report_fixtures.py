"""Hand-built analysis results for the report tests (no capture, no engine needed).

Each builder returns fresh objects, so a test may mutate what it gets.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tcpdiag.model import ACK, FIN, PSH, RST, SYN
from tcpdiag.result import (
    AnalysisResult,
    CaptureResult,
    Close,
    Finding,
    FlowResult,
    Handshake,
    RttStats,
    Severity,
    TcpCounters,
    TimelineRow,
    TlsAlert,
    TlsMessage,
    TlsSummary,
)
from tcpdiag.store import FlowStore

T0 = 1_700_000_000.0
VERSION = "0.1.0"

HOSTILE = [
    "\x1b[2J\x1b[H",
    "\x1b]0;pwn\x07",
    "\x1b]52;c;aGVsbG8=\x07",
    "\x9b2J",
    "\r",
    "\b",
    "\u202e",
    "[/]",
    "[bold red]OK",
    "[link=https://x]y[/link]",
    ":warning:",
    "]]>",
    "=cmd|' /C calc'!A0",
    "\x00",
    "\udcff",
    "<script>alert(1)</script>",
    "\"'&",
]
HOSTILE_SNI = "\x1b[2J\x1b]0;pwn\x07[bold red]x[/]"
HOSTILE_ALL = "".join(HOSTILE)


def row(
    frame: int,
    dt: float,
    sender: str,
    flags: int,
    seq: int,
    ack: int,
    length: int = 0,
    window: int = 64240,
    tls: list[str] | None = None,
    notes: list[str] | None = None,
) -> TimelineRow:
    return TimelineRow(
        frame, T0 + dt, sender, flags, seq, ack, length, window, tls or [], notes or []
    )


def refused_flow(fid: int = 1, frame: int = 1, t: float = 0.0) -> FlowResult:
    f = FlowResult(
        id=fid,
        client="10.0.0.1:51000",
        server="10.0.0.2:8080",
        ip_version=4,
        client_inferred=False,
        first_frame=frame,
        last_frame=frame + 1,
        start=T0 + t,
        end=T0 + t + 0.000184,
        packets_client=1,
        packets_server=1,
        state="REJ",
        history="Sr",
        handshake=Handshake(syn=True, syn_frames=[frame], syn_times=[T0 + t]),
        close=Close("rst", "server", frame + 1),
    )
    f.findings = [
        Finding(
            "connection-refused",
            Severity.ERROR,
            "10.0.0.2 answered the SYN to port 8080 with RST/ACK after 0.184 ms: "
            "nothing listens on that port (or a firewall rejects)",
            (frame, frame + 1),
            T0 + t + 0.000184,
            fid,
        )
    ]
    f.verdict = "connection refused by 10.0.0.2:8080"
    f.timeline = [
        row(frame, t, "client", SYN, 0, 0, window=64240),
        row(
            frame + 1,
            t + 0.000184,
            "server",
            RST | ACK,
            0,
            1,
            window=0,
            notes=["connection-refused"],
        ),
    ]
    return f


def truncated_tls_flow(fid: int = 2, frame: int = 3) -> FlowResult:
    """The truncated-flight failure: the client's second flight lost ClientKeyExchange and
    ChangeCipherSpec; only the 45-byte encrypted Finished went out. The server answers with a
    fatal unexpected_message alert and resets."""
    t = 1.0
    c, s = "client", "server"
    fr = frame
    rows = [
        row(fr, t, c, SYN, 0, 0),
        row(fr + 1, t + 0.0212, s, SYN | ACK, 0, 1, window=65160),
        row(fr + 2, t + 0.0213, c, ACK, 1, 1, window=502),
        row(fr + 3, t + 0.0215, c, PSH | ACK, 1, 1, 245, 502, ["ClientHello 245"]),
        row(fr + 4, t + 0.0427, s, ACK, 1, 246, window=509),
        row(
            fr + 5,
            t + 0.0441,
            s,
            PSH | ACK,
            1,
            246,
            2800,
            509,
            ["ServerHello 127", "Certificate 2673+"],
        ),
        row(
            fr + 6,
            t + 0.0442,
            s,
            PSH | ACK,
            2801,
            246,
            1400,
            509,
            ["Certificate (cont.)", "ServerKeyExchange 338"],
        ),
        row(fr + 7, t + 0.0442, s, PSH | ACK, 4201, 246, 3, 509, ["ServerHelloDone (part) 3"]),
        row(fr + 8, t + 0.0443, c, ACK, 246, 4204, window=501),
        row(
            fr + 9,
            t + 0.0467,
            c,
            PSH | ACK,
            246,
            4204,
            45,
            501,
            ["Finished* 45"],
            ["tls-flight-incomplete"],
        ),
        row(
            fr + 10,
            t + 0.0681,
            s,
            PSH | ACK,
            4204,
            291,
            7,
            509,
            ["Alert(fatal, unexpected_message) 7"],
            ["tls-alert"],
        ),
        row(fr + 11, t + 0.0682, s, RST | ACK, 4211, 291, 0, 0, notes=["reset-mid-stream"]),
    ]
    f = FlowResult(
        id=fid,
        client="192.168.1.10:40512",
        server="93.184.216.34:443",
        ip_version=4,
        client_inferred=False,
        first_frame=fr,
        last_frame=fr + 11,
        start=T0 + t,
        end=T0 + t + 0.0682,
        packets_client=5,
        packets_server=7,
        bytes_client=290,
        bytes_server=4210,
        state="RSTR",
        history="ShADadr",
        handshake=Handshake(True, True, True, 0.0212, syn_frames=[fr], syn_ack_frames=[fr + 1]),
        close=Close("rst", "server", fr + 11),
        tcp=TcpCounters(rtt=RttStats(0.0212, 0.0214, 0.0214, 3)),
        tls=TlsSummary(
            versions_offered=["TLS 1.2"],
            version="TLS 1.2",
            sni="example.com",
            alpn=["http/1.1"],
            cipher_suite="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            handshake_complete=False,
            records_client=2,
            records_server=5,
            messages=[
                TlsMessage("client", fr + 3, "ClientHello", 240),
                TlsMessage("server", fr + 5, "ServerHello", 122),
                TlsMessage("server", fr + 6, "Certificate", 3011),
                TlsMessage("server", fr + 6, "ServerKeyExchange", 333),
                TlsMessage("server", fr + 7, "ServerHelloDone", 4),
                TlsMessage("client", fr + 9, "Finished*", 40),
            ],
            alerts=[TlsAlert("server", fr + 10, "fatal", "unexpected_message", False)],
            ja3="e7d705a3286e19ea42f587b344ee6865",
        ),
        verdict="TLS handshake failed: the client's second flight had only an encrypted "
        "Finished (ClientKeyExchange and ChangeCipherSpec never sent); the server sent "
        "alert unexpected_message and reset",
    )
    f.findings = [
        Finding(
            "tls-flight-incomplete",
            Severity.ERROR,
            "client sent Finished* 45 B without ClientKeyExchange and ChangeCipherSpec "
            "(expected 75 + 6 + 45 = 126 B, sent 45 B)",
            (fr + 9,),
            T0 + t + 0.0467,
            fid,
        ),
        Finding(
            "tls-alert",
            Severity.ERROR,
            "server sent fatal alert unexpected_message (10) in frame "
            f"{fr + 10}, 21.4 ms after the client's Finished",
            (fr + 10,),
            T0 + t + 0.0681,
            fid,
        ),
        Finding(
            "reset-mid-stream",
            Severity.ERROR,
            "server reset the connection right after its alert (0.1 ms later)",
            (fr + 11,),
            T0 + t + 0.0682,
            fid,
        ),
    ]
    f.timeline = rows
    return f


def healthy_tls_flow(fid: int = 3, frame: int = 15) -> FlowResult:
    t = 2.0
    c, s = "client", "server"
    fr = frame
    f = FlowResult(
        id=fid,
        client="[2001:db8::1]:50100",
        server="[2001:db8::2]:443",
        ip_version=6,
        client_inferred=False,
        first_frame=fr,
        last_frame=fr + 13,
        start=T0 + t,
        end=T0 + t + 0.31,
        packets_client=7,
        packets_server=7,
        bytes_client=920,
        bytes_server=5400,
        state="SF",
        history="ShADadFf",
        handshake=Handshake(True, True, True, 0.012),
        close=Close("fin", "client", fr + 11),
        tcp=TcpCounters(retransmissions=1, rtt=RttStats(0.011, 0.012, 0.015, 6)),
        tls=TlsSummary(
            versions_offered=["TLS 1.3", "TLS 1.2"],
            version="TLS 1.3",
            sni="api.example.org",
            alpn=["h2"],
            cipher_suite="TLS_AES_128_GCM_SHA256",
            handshake_complete=True,
            records_client=4,
            records_server=6,
            messages=[
                TlsMessage("client", fr + 3, "ClientHello", 512),
                TlsMessage("server", fr + 5, "ServerHello", 118),
            ],
        ),
        verdict="TLS 1.3 handshake complete (h2); closed normally by the client",
    )
    f.findings = [
        Finding(
            "retransmission",
            Severity.INFO,
            "1 retransmitted segment out of 8 data segments",
            (fr + 8,),
            T0 + t + 0.2,
            fid,
        )
    ]
    f.timeline = [
        row(fr, t, c, SYN, 0, 0),
        row(fr + 1, t + 0.012, s, SYN | ACK, 0, 1),
        row(fr + 2, t + 0.0121, c, ACK, 1, 1),
        row(fr + 3, t + 0.0122, c, PSH | ACK, 1, 1, 517, tls=["ClientHello 517"]),
        row(fr + 4, t + 0.024, s, ACK, 1, 518),
        row(fr + 5, t + 0.025, s, PSH | ACK, 1, 518, 1400, tls=["ServerHello 123", "CCS 6"]),
        row(fr + 6, t + 0.026, c, ACK, 518, 1401),
        row(fr + 7, t + 0.030, c, PSH | ACK, 518, 1401, 80, tls=["ApplicationData 80"]),
        row(
            fr + 8,
            t + 0.2,
            c,
            PSH | ACK,
            518,
            1401,
            80,
            tls=["ApplicationData 80"],
            notes=["retransmission"],
        ),
        row(fr + 9, t + 0.21, s, PSH | ACK, 1401, 598, 4000, tls=["ApplicationData 3995"]),
        row(fr + 10, t + 0.22, c, ACK, 598, 5401),
        row(fr + 11, t + 0.30, c, FIN | ACK, 598, 5401),
        row(fr + 12, t + 0.309, s, FIN | ACK, 5401, 599),
        row(fr + 13, t + 0.31, c, ACK, 599, 5402),
    ]
    return f


def hostile_flow(fid: int = 4, frame: int = 29) -> FlowResult:
    f = truncated_tls_flow(fid, frame)
    assert f.tls is not None
    f.tls.sni = HOSTILE_SNI + HOSTILE_ALL
    f.tls.alpn = list(HOSTILE)
    f.tls.version = HOSTILE_ALL
    f.tls.cipher_suite = HOSTILE_ALL
    f.tls.alerts[0].description = HOSTILE_ALL
    f.tls.messages[0].type = HOSTILE_ALL
    f.verdict = "verdict " + HOSTILE_ALL
    f.history = HOSTILE_ALL
    f.findings = [
        Finding(fi.name, fi.severity, fi.message + " " + HOSTILE_ALL, fi.frames, fi.time, fid)
        for fi in f.findings
    ]
    assert f.timeline is not None
    for r in f.timeline:
        r.tls = [x + HOSTILE_ALL for x in r.tls] or [HOSTILE_ALL]
    return f


def seed_capture(path: str = "captures/seed-tls.pcap") -> CaptureResult:
    flows = [refused_flow(), truncated_tls_flow(), healthy_tls_flow()]
    return CaptureResult(
        path=path,
        format="pcapng",
        link_types=["ETHERNET"],
        packets=28,
        tcp_packets=28,
        first_time=T0,
        last_time=T0 + 2.31,
        flows=flows,
        findings=[
            Finding(
                "capture-snaplen-truncated",
                Severity.INFO,
                "2 packets were cut by the 1500-byte snap length",
                (19, 24),
                T0 + 2.2,
                None,
                2,
            )
        ],
    )


def seed_result() -> AnalysisResult:
    return AnalysisResult(VERSION, [seed_capture()])


def hostile_result() -> AnalysisResult:
    cap = CaptureResult(
        path="captures/evil" + "\x1b]0;pwn\x07\n[bold]x.pcap",
        format="pcap",
        link_types=["ETHERNET" + HOSTILE_ALL],
        packets=12,
        tcp_packets=12,
        first_time=T0,
        last_time=T0,  # zero duration
        flows=[hostile_flow()],
        findings=[
            Finding("capture-damaged", Severity.WARNING, "bad block " + HOSTILE_ALL, (12,), None)
        ],
    )
    flow = cap.flows[0]
    flow.start = flow.end = T0
    flow.handshake.rtt = float("nan")
    flow.tcp.rtt = RttStats(float("inf"), float("nan"), float("-inf"), 1)
    return AnalysisResult(VERSION, [cap])


def long_flow(fid: int = 1, skipped: int = 5000) -> FlowResult:
    """A bulk transfer whose timeline kept head and tail, with `skipped` rows elided."""
    f = FlowResult(
        id=fid,
        client="10.1.0.1:40000",
        server="10.1.0.2:80",
        ip_version=4,
        client_inferred=False,
        first_frame=1,
        last_frame=100 + skipped,
        start=T0,
        end=T0 + 12.5,
        state="SF",
        history="ShADadFf",
    )
    rows = [
        row(i, i * 0.001, "server", PSH | ACK, 1 + (i - 1) * 1448, 100, 1448) for i in range(1, 61)
    ]
    base = 60 + skipped
    rows += [
        row(base + i, 12.0 + i * 0.001, "server", PSH | ACK, 1 + (base + i) * 1448, 100, 1448)
        for i in range(1, 41)
    ]
    f.timeline = rows
    f.timeline_skipped = skipped
    f.findings = [
        Finding(
            "zero-window",
            Severity.WARNING,
            "client advertised a zero window 3 times",
            (70, 80, 90),
            T0 + 0.07,
            fid,
            3,
        )
    ]
    f.verdict = "transfer completed with receiver stalls (zero window)"
    return f


def counted_store(
    flows: Iterable[FlowResult], monkeypatch: pytest.MonkeyPatch
) -> tuple[FlowStore, list[int]]:
    """A sealed store of `flows`, and the record positions it reads, in order, as it reads
    them (for the tests that a report reads only the flows it shows)."""
    store = FlowStore()
    for flow in flows:
        store.add(flow)
    store.seal()
    reads: list[int] = []
    read = store._read

    def counted(i: int, timeline: bool = True) -> FlowResult:
        reads.append(i)
        return read(i, timeline)

    monkeypatch.setattr(store, "_read", counted)
    return store, reads


def big_capture(n: int = 100_000, problems_every: int = 1000) -> CaptureResult:
    """`n` flows: every `problems_every`-th a refused connection, the rest plain and healthy."""
    flows: list[FlowResult] = []
    for i in range(1, n + 1):
        if i % problems_every == 0:
            f = refused_flow(i, 2 * i - 1, i * 0.001)
        else:
            f = FlowResult(
                id=i,
                client=f"10.2.{i // 60000}.{i % 250}:{1024 + i % 60000}",
                server="10.9.9.9:80",
                ip_version=4,
                client_inferred=False,
                first_frame=2 * i - 1,
                last_frame=2 * i,
                start=T0 + i * 0.001,
                end=T0 + i * 0.001 + 0.05,
                packets_client=5,
                packets_server=4,
                state="SF",
                history="ShADadFf",
                verdict="ok",
            )
        flows.append(f)
    return CaptureResult(
        path="captures/big.pcap",
        format="pcap",
        link_types=["ETHERNET"],
        packets=2 * n,
        tcp_packets=2 * n,
        first_time=T0,
        last_time=T0 + n * 0.001 + 0.05,
        flows=flows,
    )


def every_field_flow() -> FlowResult:
    """A flow whose every field, nested ones included, holds a value of its own (none is a
    default), set by name."""
    return FlowResult(
        id=7,
        client="10.0.0.1:40000",
        server="10.0.0.2:443",
        ip_version=4,
        client_inferred=True,
        first_frame=3,
        last_frame=99,
        start=1.25,
        end=9.5,
        packets_client=11,
        packets_server=12,
        bytes_client=1300,
        bytes_server=1400,
        state="RSTO",
        history="ShADadR",
        handshake=Handshake(
            syn=True,
            syn_ack=True,
            ack=True,
            rtt=0.031,
            syn_retransmissions=2,
            syn_ack_retransmissions=1,
            syn_frames=[3, 4, 5],
            syn_times=[1.25, 2.25, 4.25],
            syn_ack_frames=[6],
            syn_ack_times=[4.3],
        ),
        close=Close(kind="rst", by="server", frame=99),
        tcp=TcpCounters(
            retransmissions=21,
            fast_retransmissions=22,
            spurious_retransmissions=23,
            out_of_order=24,
            lost_segments=25,
            acked_unseen=26,
            duplicate_acks=27,
            zero_windows=28,
            zero_window_probes=29,
            window_full=30,
            keep_alives=31,
            rtt=RttStats(min=0.01, median=0.02, max=0.5, samples=9),
        ),
        tls=TlsSummary(
            versions_offered=["TLS 1.3", "TLS 1.2"],
            version="TLS 1.3",
            sni="example.test",
            alpn=["h2"],
            cipher_suite="TLS_AES_128_GCM_SHA256",
            handshake_complete=True,
            records_client=5,
            records_server=6,
            messages=[TlsMessage(sender="client", frame=8, type="ClientHello", length=512)],
            alerts=[
                TlsAlert(
                    sender="server",
                    frame=97,
                    level="fatal",
                    description="decode_error",
                    encrypted=False,
                )
            ],
            ja3="a" * 32,
            ja4="t13d",
            starttls="smtp",
            certificates=[1200, 900],
        ),
        findings=[
            Finding(
                name="tls-alert",
                severity=Severity.ERROR,
                message="m",
                frames=(97,),
                time=9.4,
                flow=7,
                count=2,
            )
        ],
        verdict="server aborted",
        timeline=[
            TimelineRow(
                frame=8,
                time=2.5,
                sender="client",
                flags=0x18,
                seq=2,
                ack=3,
                length=512,
                window=65535,
                tls=["ClientHello 512"],
                notes=["tls-alert"],
            )
        ],
        timeline_skipped=5,
    )
