"""tcpdiag's per-packet TCP analysis against tshark's on any capture, at any size.

    python benchmarks/differential.py CAPTURE [--show 10]

Runs `tshark -r CAPTURE -T fields -e frame.number -e tcp.analysis.<flag>...` (tshark's full TCP
analysis, default preferences) and tcpdiag's flow table over the same packets, then prints, per
analysis flag, the frames both flag, only tcpdiag flags and only tshark flags, with precision
and recall taking tshark as the reference, and the first differing frames of each flag
(`--show`). Exit status 1 when a flag differs beyond the one deliberate difference (`compare`;
`docs/wireshark-differences.md`). `tests/differential/test_wireshark_flags.py` holds the public
corpus to the same comparison through `facts.json`, `test_live_tshark_flags.py` the bundled
recordings through this script; the script is for the large synthetic captures of `gen.py` and
for real captures a user brings.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Last: an installed tcpdiag (the compiled build) comes before the checkout's sources; `tests`
# (the flow-table runner) comes from the checkout.
sys.path.append(str(ROOT))

# tcpdiag's name -> tshark's field. tshark also sets `retransmission` on the fast and spurious
# retransmissions it flags; tcpdiag's `retransmission` frames do the same.
FIELDS = {
    "retransmission": "tcp.analysis.retransmission",
    "fast-retransmission": "tcp.analysis.fast_retransmission",
    "spurious-retransmission": "tcp.analysis.spurious_retransmission",
    "out-of-order": "tcp.analysis.out_of_order",
    "previous-segment-lost": "tcp.analysis.lost_segment",
    "acked-unseen-segment": "tcp.analysis.ack_lost_segment",
    "duplicate-ack": "tcp.analysis.duplicate_ack",
    "zero-window": "tcp.analysis.zero_window",
    "window-full": "tcp.analysis.window_full",
    "port-reused": "tcp.analysis.reused_ports",
    "keep-alive": "tcp.analysis.keep_alive",
    "zero-window-probe": "tcp.analysis.zero_window_probe",
}


def tshark_flags(capture: Path) -> tuple[dict[str, set[int]], int]:
    """Frames per flag, and the number of TCP streams, by tshark."""
    cmd = ["tshark", "-n", "-r", str(capture), "-Y", "tcp", "-T", "fields", "-E", "separator=\t"]
    cmd += ["-e", "frame.number", "-e", "tcp.stream"]
    for field in FIELDS.values():
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    flags: dict[str, set[int]] = {name: set() for name in FIELDS}
    streams = -1
    for line in out.splitlines():
        cols = line.split("\t")
        frame = int(cols[0])
        if cols[1]:
            streams = max(streams, int(cols[1]))
        for name, value in zip(FIELDS, cols[2:], strict=False):
            if value:
                flags[name].add(frame)
    return flags, streams + 1


def tcpdiag_flags(capture: Path) -> tuple[dict[str, set[int]], int]:
    """Frames per flag, and the number of flows, by tcpdiag's flow table (default limits)."""
    from tcpdiag.flow import Flow
    from tests.flows import run_flow_table

    flags: dict[str, set[int]] = {name: set() for name in FIELDS}
    flows = 0

    def closed(flow: Flow) -> None:
        nonlocal flows
        flows += 1
        for name, frames in flow.analysis.items():
            if name in flags:
                flags[name].update(frames)

    run_flow_table(capture, closed)
    return flags, flows


# TLS facts compared with `--tls`: plaintext handshake messages (frame, type), plaintext alerts
# (frame, description), and per ClientHello frame its server name and JA3.
TLS_FACTS = ("handshake", "alert", "sni", "ja3")
TlsFacts = dict[str, set[tuple[int, object]]]
Connections = dict[int, object]  # frame of a handshake message -> its connection


def tshark_tls(capture: Path) -> tuple[TlsFacts, Connections]:
    """TLS facts by tshark: heuristics first, as tcpdiag detects TLS by content on any port, and
    out-of-order segments reassembled, as tcpdiag does (with tshark's default a handshake whose
    first segment comes late is never dissected)."""
    cmd = ["tshark", "-n", "-o", "tcp.try_heuristic_first:TRUE", "-r", str(capture)]
    cmd += ["-o", "tcp.reassemble_out_of_order:TRUE"]
    cmd += ["-Y", "tls.handshake.type or tls.alert_message", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in ("frame.number", "tcp.stream", "tls.handshake.type", "tls.alert_message.desc",
                  "tls.handshake.extensions_server_name", "tls.handshake.ja3"):  # fmt: skip
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    facts: TlsFacts = {name: set() for name in TLS_FACTS}
    connections: Connections = {}
    hello_seen: set[str] = set()  # streams whose first ClientHello was taken
    for line in out.splitlines():
        frame_text, stream, types, alerts, sni, ja3 = (line.split("\t") + [""] * 6)[:6]
        frame = int(frame_text)
        for value in filter(None, types.split(",")):
            facts["handshake"].add((frame, int(value)))
            connections[frame] = stream
        for value in filter(None, alerts.split(",")):
            facts["alert"].add((frame, int(value)))
        # tcpdiag reports the server name and JA3 of a flow's first ClientHello (a second one
        # follows a HelloRetryRequest)
        if "1" in types.split(",") and stream not in hello_seen:
            hello_seen.add(stream)
            if sni:
                facts["sni"].add((frame, sni.split(",")[0]))
            if ja3:
                facts["ja3"].add((frame, ja3.split(",")[0]))
    return facts, connections


def tcpdiag_tls(capture: Path) -> tuple[TlsFacts, Connections]:
    """TLS facts by tcpdiag's engine (every flow kept for the comparison). Messages tcpdiag infers
    from encrypted records (Finished after ChangeCipherSpec, encrypted handshake) are left out:
    tshark shows those as "Encrypted Handshake Message" without a type."""
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import analyze_capture
    from tcpdiag.tls.constants import HANDSHAKE_LABELS, AlertDescription

    types = {label: value for value, label in HANDSHAKE_LABELS.items()}
    types["HelloRetryRequest"] = 2  # a ServerHello on the wire
    options = AnalysisOptions()
    options.limits.max_report_flows = 1 << 40
    facts: TlsFacts = {name: set() for name in TLS_FACTS}
    connections: Connections = {}
    for flow in analyze_capture(str(capture), options).flows:
        tls = flow.tls
        if tls is None:
            continue
        hello = None
        for message in tls.messages:
            if message.type in ("Finished", "EncryptedHandshake") or message.type not in types:
                continue
            facts["handshake"].add((message.frame, int(types[message.type])))
            connections[message.frame] = flow.id
            if message.type == "ClientHello" and hello is None:
                hello = message.frame
        for alert in tls.alerts:
            if not alert.encrypted and alert.description in AlertDescription.__members__:
                facts["alert"].add((alert.frame, AlertDescription[alert.description].value))
        if hello is not None and tls.sni:
            facts["sni"].add((hello, tls.sni))
        if hello is not None and tls.ja3:
            facts["ja3"].add((hello, tls.ja3))
    return facts, connections


def spanning_messages(
    ours: TlsFacts, theirs: TlsFacts, our_conns: Connections, their_conns: Connections
) -> set[tuple[int, object]]:
    """Our handshake messages that tshark places at a later frame of the same connection: a
    message spanning several segments is at the frame of its first byte in tcpdiag (where the
    record starts, as its timeline shows it) and at the frame that completes it in tshark (where
    the reassembled PDU is dissected). Paired in order per connection and message type."""
    flow_of_stream = {their_conns[f]: our_conns[f] for f in their_conns.keys() & our_conns.keys()}
    only_ours: dict[tuple[object, object], list[int]] = {}
    only_theirs: dict[tuple[object, object], list[int]] = {}
    for frame, kind in ours["handshake"] - theirs["handshake"]:
        only_ours.setdefault((our_conns[frame], kind), []).append(frame)
    for frame, kind in theirs["handshake"] - ours["handshake"]:
        flow = flow_of_stream.get(their_conns[frame])
        only_theirs.setdefault((flow, kind), []).append(frame)
    out: set[tuple[int, object]] = set()
    for key, frames in only_ours.items():
        later = sorted(only_theirs.get(key, []))
        if len(later) == len(frames) and all(
            a < b for a, b in zip(sorted(frames), later, strict=True)
        ):
            out.update((frame, key[1]) for frame in frames)
            out.update((frame, key[1]) for frame in later)
    return out


Comparison = dict[str, tuple[int, list[int], list[int]]]


def compare(ours: dict[str, set[int]], theirs: dict[str, set[int]]) -> tuple[Comparison, set[int]]:
    """Per flag: frames both flag, frames only tcpdiag flags, frames only tshark flags; and the
    frames of the one deliberate difference (docs/wireshark-differences.md), left out of the
    flags: Linux probes a closed window with `seq = snd_una - 1` and no data, a keep-alive to
    tshark and a zero-window probe to tcpdiag."""
    linux_probes = (ours["zero-window-probe"] - theirs["zero-window-probe"]) & (
        theirs["keep-alive"] - ours["keep-alive"]
    )
    out: Comparison = {}
    for name in FIELDS:
        o, t = ours[name], theirs[name]
        if name == "zero-window-probe":
            o = o - linux_probes
        elif name == "keep-alive":
            t = t - linux_probes
        out[name] = (len(o & t), sorted(o - t), sorted(t - o))
    return out, linux_probes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--show", type=int, default=10, help="differing frames shown per flag")
    parser.add_argument("--tls", action="store_true", help="compare TLS facts instead")
    args = parser.parse_args()
    if shutil.which("tshark") is None:
        print("tshark is not installed (Debian: apt-get install tshark)", file=sys.stderr)
        return 2
    if args.tls:
        return _main_tls(args.capture, args.show)
    started = time.perf_counter()
    theirs, streams = tshark_flags(args.capture)
    middle = time.perf_counter()
    ours, flows = tcpdiag_flags(args.capture)
    done = time.perf_counter()
    print(f"{args.capture}: tshark {middle - started:.1f} s, tcpdiag {done - middle:.1f} s")
    print(f"flows: tcpdiag {flows:,}, tshark streams {streams:,}\n")
    print(f"{'flag':26} {'both':>8} {'ours':>7} {'theirs':>7} {'precision':>9} {'recall':>7}")
    differs = False
    comparison, linux_probes = compare(ours, theirs)
    for name, (both, only_ours, only_theirs) in comparison.items():
        precision = both / (both + len(only_ours)) if both or only_ours else 1.0
        recall = both / (both + len(only_theirs)) if both or only_theirs else 1.0
        print(
            f"{name:26} {both:8,} {len(only_ours):7,} {len(only_theirs):7,} "
            f"{precision:9.4f} {recall:7.4f}"
        )
        if only_ours or only_theirs:
            differs = True
            if only_ours:
                print(f"    only tcpdiag: {only_ours[: args.show]}")
            if only_theirs:
                print(f"    only tshark:  {only_theirs[: args.show]}")
    if linux_probes:
        print(
            f"\ndeliberate: {len(linux_probes):,} Linux zero-window probes (seq = snd_una - 1), "
            f"keep-alives to tshark: {sorted(linux_probes)[: args.show]}"
        )
    return 1 if differs else 0


def _main_tls(capture: Path, show: int) -> int:
    started = time.perf_counter()
    theirs, their_conns = tshark_tls(capture)
    middle = time.perf_counter()
    ours, our_conns = tcpdiag_tls(capture)
    print(
        f"{capture}: tshark {middle - started:.1f} s, tcpdiag {time.perf_counter() - middle:.1f} s"
    )
    spanning = spanning_messages(ours, theirs, our_conns, their_conns)
    print(f"\n{'fact':12} {'both':>8} {'ours':>7} {'theirs':>7}")
    differs = False
    for name in TLS_FACTS:
        o, t = ours[name] - spanning, theirs[name] - spanning
        print(f"{name:12} {len(o & t):8,} {len(o - t):7,} {len(t - o):7,}")
        if o != t:
            differs = True
            print(f"    only tcpdiag: {sorted(o - t, key=str)[:show]}")
            print(f"    only tshark:  {sorted(t - o, key=str)[:show]}")
    if spanning:
        print(
            f"\n{len(spanning) // 2:,} handshake messages span segments: tcpdiag names the frame "
            "of their first byte, tshark the frame that completes them"
        )
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
