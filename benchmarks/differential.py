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
sys.path.insert(0, str(ROOT))

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
    from tcpdiag.capture import open_capture
    from tcpdiag.decode import Decoder
    from tcpdiag.flow import Flow, FlowTable
    from tcpdiag.model import Segment

    flags: dict[str, set[int]] = {name: set() for name in FIELDS}
    flows = 0

    def closed(flow: Flow) -> None:
        nonlocal flows
        flows += 1
        for name, frames in flow.analysis.items():
            if name in flags:
                flags[name].update(frames)

    table = FlowTable(on_close=closed)
    decoder = Decoder()
    with open_capture(str(capture)) as reader:
        for raw in reader:
            rec = decoder.decode(raw)
            if isinstance(rec, Segment):
                table.add(rec)
    table.finish()
    return flags, flows


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
    args = parser.parse_args()
    if shutil.which("tshark") is None:
        print("tshark is not installed (Debian: apt-get install tshark)", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
