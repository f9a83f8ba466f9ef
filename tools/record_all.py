#!/usr/bin/env python3
"""Re-record every lab scenario into captures/ and regenerate captures/README.md (root).

    sudo python tools/record_all.py                 # every scenario
    sudo python tools/record_all.py tcp-refused-ipv4 tls-truncated-flight
    python tools/record_all.py --readme-only        # rebuild the README from the truth files

Each scenario writes captures/<name>.pcap (or .pcapng) and captures/<name>.truth.json; the
README's table is built from the truth files, so it always says how each capture was made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"

HEADER = """\
# captures/: the project's own recordings

Every file here was recorded by tcpdiag's lab (`tcpdiag/lab/`) on a real Linux kernel with real
sockets: the loopback interface of a fresh network namespace (127.0.0.1 and ::1; nothing else on
the machine shares its ports or firewall), or two namespaces joined by a veth pair, by TUN
devices or by a bridge in a third (as containers behind a host's bridge), all created and
deleted by the lab itself (addresses 10.77.x.y exist only inside them).
Nothing here is synthetic: where a scenario needs a misbehaving peer, the misbehaviour is real
OpenSSL output that a client chose not to send in full, an nft rule, a Python TUN shaper that
delays or drops packets, or a raw-socket replay of a segment recorded earlier in the capture.
Captures on a TUN device are raw IP; on loopback and veth, Ethernet; with `-i any`, Linux cooked
v2 (or v1 with `-y LINUX_SLL`); `.pcapng` files come from dumpcap.

Each capture `<case>.pcap`/`.pcapng` has a `<case>.truth.json`:

- `scenario`, `description`, `how` (the `tcpdiag lab` invocation), `function` (the Python
  function in `tcpdiag.lab.scenarios`), `capture_command` (the exact tcpdump/dumpcap command),
  `recorded` (UTC), `kernel`, `linktype`, `format`, `timestamp_precision`, `size`;
- `app`: what the application saw (errno name, exception text, latencies in ms, bytes sent and
  received, TLS records sent and the alert received...);
- `wire`: counts read back from the file by the lab's own small reader (`tcpdiag.lab.wire`),
  independent of tcpdiag's engine (SYNs, SYN/ACKs, FIN/RST per side, payload bytes on the wire
  per side including retransmissions, ICMP, ARP, SYN times);
- `expect`: `findings` tcpdiag must report, `absent` findings it must not report (near misses).

Re-record everything with `sudo python tools/record_all.py` (or one case with
`sudo tcpdiag lab <case> -o captures`). Ports, sequence numbers, timestamps and retry timing
change on every run: tests on fresh recordings (`pytest -m recording tests/scenarios`) assert
structure, never bytes.

"""
TABLE_HEAD = (
    "| capture | link type | format | ts | bytes | the application saw | expected findings "
    "| absent (near misses) |\n|---|---|---|---|---|---|---|---|\n"
)

FOOTER = """
## How each was made

{details}
"""


def app_summary(app: dict[str, Any]) -> str:
    if app.get("errno"):
        text = str(app["errno"])
        if "latency_ms" in app:
            text += f" after {app['latency_ms']:.0f} ms"
        return text
    if "clients" in app:
        parts = [c.get("errno") or ("connected, no response" if c.get("connected") else "?")
                 for c in app["clients"]]  # fmt: skip
        return "; ".join(parts)
    if app.get("reply_alerts"):
        a = app["reply_alerts"][0]
        return f"alert {a['level']} {a['name']} ({a['code']}), then {app.get('connection_end')}"
    if "latencies_ms" in app:
        return "latencies " + ", ".join(f"{x:.1f}" for x in app["latencies_ms"]) + " ms"
    if app.get("exception"):
        text = str(app["exception"])
        return text.split("] ")[0].split("[")[-1] if "[SSL: " in text else text.split(":")[0]
    if "answer_taken_for_request_2" in app:
        return f"request 1 timed out; request 2 got {app['answer_taken_for_request_2'].strip()!r}"
    if "close_after_eof_ms" in app:
        held = app["close_after_eof_ms"]
        return f"EOF, close() {held:.0f} ms later" if held else "EOF, no close() before the end"
    if "shutdown" in app:
        return f"shutdown(SHUT_WR), then {app['bytes_received']} B received"
    if "read_paused_ms" in (app.get("server") or {}):
        return f"sendall() took {app['transfer_ms']:.0f} ms (reader paused 2 s)"
    if "dropped_data_segments" in app:
        return f"upload took {app['transfer_ms']:.0f} ms ({len(app['shaper_dropped'])} drops)"
    if "replayed" in app:
        return f"reconnected from port {app['client_port']}; old segment replayed"
    if "second_connect_ms" in app:
        return f"aborted, reconnected from port {app['client_port']}"
    if "shaper_dropped" in app:
        return f"connected after {app['latency_ms']:.0f} ms"
    if app.get("version"):
        return f"{app['version']} ok"
    server = app.get("server") or {}
    if isinstance(server, dict) and server.get("next_recv_errno"):
        return f"server: {server['next_recv_errno']}"
    if isinstance(server, dict) and server.get("exception"):
        return "server: " + str(server["exception"]).split(":")[0]
    return "ok"


def write_readme() -> None:
    truths = sorted(CAPTURES.glob("*.truth.json"))
    rows, details = [], []
    for path in truths:
        t = json.loads(path.read_text(encoding="utf-8"))
        exp = t["expect"]
        rows.append(
            f"| `{t['capture']}` | {t['linktype']} | {t['format']} | {t['timestamp_precision']} "
            f"| {t['size']} | {app_summary(t['app'])} | {', '.join(exp['findings']) or '-'} "
            f"| {', '.join(exp['absent']) or '-'} |"
        )
        details.append(
            f"### {t['capture']}\n\n{t['description']}\n\n"
            f"- made by: `{t['how']}` (`{t['function']}`)\n"
            f"- capture: `{t['capture_command']}`\n"
            f"- recorded {t['recorded']} on Linux {t['kernel']}; {t['linktype']}, {t['format']}, "
            f"{t['timestamp_precision']} timestamps, {t['size']} bytes\n"
        )
    text = HEADER + TABLE_HEAD + "\n".join(rows) + "\n" + FOOTER.format(details="\n".join(details))
    (CAPTURES / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help="scenarios (default: all)")
    parser.add_argument("--readme-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.readme_only:
        if os.geteuid() != 0:
            print("record_all: must run as root (namespaces, nft, tcpdump)", file=sys.stderr)
            return 2
        sys.path.insert(0, str(ROOT))
        from tcpdiag.lab.scenarios import SCENARIOS, record_and_save

        for name in args.names or list(SCENARIOS):
            t0 = time.monotonic()
            truth = record_and_save(name, CAPTURES)
            print(f"{truth['capture']:32} {truth['linktype']:11} {truth['format']:7} "
                  f"{truth['size']:7} B  {time.monotonic() - t0:4.1f} s")  # fmt: skip
    write_readme()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
