"""Peak memory of `tcpdiag analyze` on long connections, at two lengths of the same traffic.

    python benchmarks/long_flows.py                  # every case, 200k and 2M packets
    python benchmarks/long_flows.py --cases tls --small 100000 --large 1000000

Memory must be bounded by the connections open at once, not by how long they last (issue 9).
`run.py` measures that on many short connections; here each case is a few long ones, where a
list that grows with every packet, record or period shows at once:

  bulk      one transfer, a data segment and its ACK, again and again
  dupack    one transfer whose first segment the capture missed: every later segment is
            answered by a duplicate ACK (the report lists every flagged frame: ~50 B each)
  zerowin   one transfer whose receiver closes and reopens its window after every segment
  tls       300 TLS 1.2 connections open at once, each a long run of small request/response
            records (an API client, a cache protocol over TLS)

For each case it writes the two captures under benchmarks/out/long/ (once), runs
`tcpdiag analyze --jobs 1 --format json` on each in a fresh process, and prints the peak RSS,
the growth and the growth per packet. Run it from an empty directory with an installed
(compiled) tcpdiag, as run.py does: `python /path/to/benchmarks/long_flows.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "long"

ETH = b"\x00\x01\x02\x03\x04\x05\x00\x01\x02\x03\x04\x06\x08\x00"
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SYN, ACK, PSH = 0x02, 0x10, 0x08
TLS12 = 0x0303

Frames = Iterator[bytes]


def frame(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    window: int = 65535,
) -> bytes:
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0
    )
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst
    )  # checksums 0: tcpdiag, like tshark by default, does not check them
    return ETH + ip + tcp + payload


def handshake(client: bytes, sport: int, dport: int) -> tuple[list[bytes], int, int]:
    """SYN, SYN-ACK, ACK; the client's and server's next sequence numbers."""
    c, s = 1000, 5000
    frames = [
        frame(client, SERVER, sport, dport, c, 0, SYN),
        frame(SERVER, client, dport, sport, s, c + 1, SYN | ACK),
        frame(client, SERVER, sport, dport, c + 1, s + 1, ACK),
    ]
    return frames, c + 1, s + 1


def one_transfer(lost_first: bool = False, zero_windows: bool = False) -> Frames:
    """One transfer from server to client, each data segment answered by an ACK. With
    `lost_first`, its first segment is not in the capture (every ACK is then a duplicate); with
    `zero_windows`, the client closes its window in that ACK and reopens it in another."""
    frames, c, s = handshake(CLIENT, 40000, 80)
    yield from frames
    data = bytes(100)
    seq = s + len(data) if lost_first else s
    while True:
        yield frame(SERVER, CLIENT, 80, 40000, seq, c, ACK | PSH, data)
        seq += len(data)
        acked = s if lost_first else seq
        for window in (0, 65535) if zero_windows else (65535,):
            yield frame(CLIENT, SERVER, 40000, 80, c, acked, ACK, window=window)


def record(content_type: int, body: bytes, version: int = TLS12) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body)) + body


def handshake_message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def client_hello() -> bytes:
    sni = b"api.example"
    name = b"\x00" + struct.pack("!H", len(sni)) + sni
    names = struct.pack("!H", len(name)) + name
    extension = struct.pack("!HH", 0, len(names)) + names
    body = (
        struct.pack("!H", TLS12)
        + bytes(32)
        + b"\x00"
        + struct.pack("!HHH", 4, 0xC02F, 0xC030)
        + b"\x01\x00"
        + struct.pack("!H", len(extension))
        + extension
    )
    return record(22, handshake_message(1, body), 0x0301)


def server_hello() -> bytes:
    body = struct.pack("!H", TLS12) + bytes(32) + b"\x00" + struct.pack("!HB", 0xC02F, 0)
    return record(22, handshake_message(2, body))


def tls(connections: int = 300) -> Frames:
    """`connections` TLS 1.2 connections, handshakes first, then their turns interleaved."""
    flights = (
        (client_hello(), b"".join((server_hello(), record(22, handshake_message(11, bytes(3))),
                                    record(22, handshake_message(14, b""))))),
        (record(22, handshake_message(16, bytes(33))) + record(20, b"\x01") + record(22, bytes(40)),
         record(20, b"\x01") + record(22, bytes(40))),
    )  # fmt: skip
    request, response = record(23, bytes(60)), record(23, bytes(200))
    state = []
    for i in range(connections):
        client = bytes([10, 1, i >> 8, i & 255])
        sport = 20000 + i
        frames, c, s = handshake(client, sport, 443)
        yield from frames
        for to_server, to_client in flights:
            yield frame(client, SERVER, sport, 443, c, s, ACK | PSH, to_server)
            c += len(to_server)
            yield frame(SERVER, client, 443, sport, s, c, ACK | PSH, to_client)
            s += len(to_client)
        state.append([client, sport, c, s])
    while True:
        for conn in state:
            client, sport, c, s = conn
            yield frame(client, SERVER, sport, 443, c, s, ACK | PSH, request)
            c += len(request)
            yield frame(SERVER, client, 443, sport, s, c, ACK | PSH, response)
            s += len(response)
            conn[2], conn[3] = c, s


CASES: dict[str, Callable[[], Frames]] = {
    "bulk": one_transfer,
    "dupack": lambda: one_transfer(lost_first=True),
    "zerowin": lambda: one_transfer(zero_windows=True),
    "tls": tls,
}


def write(path: Path, frames: Frames, packets: int) -> None:
    t = 1_700_000_000 * 1_000_000
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for _, data in zip(range(packets), frames, strict=False):
            t += 100
            out.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), len(data)))
            out.write(data)
    tmp.replace(path)


def capture(case: str, packets: int) -> Path:
    path = OUT / f"{case}-{packets}.pcap"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        write(path, CASES[case](), packets)
    return path


def peak_rss_mb(tcpdiag: list[str], path: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `analyze` run in a fresh process."""
    start = time.monotonic()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [*tcpdiag, "analyze", "--jobs", "1", "--format", "json", str(path)], stdout=sink
        )
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"tcpdiag failed on {path}")
    return usage.ru_maxrss / 1024, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--small", type=int, default=200_000, help="packets")
    parser.add_argument("--large", type=int, default=2_000_000, help="packets")
    args = parser.parse_args()
    exe = shutil.which("tcpdiag")
    tcpdiag = [exe] if exe else [sys.executable, "-m", "tcpdiag"]
    print(f"{'case':8s} {'packets':>10s} {'peak RSS':>9s} {'wall':>6s}")
    for case in args.cases.split(","):
        sizes = []
        for packets in (args.small, args.large):
            rss, wall = peak_rss_mb(tcpdiag, capture(case, packets))
            sizes.append(rss)
            print(f"{case:8s} {packets:>10,} {rss:>6.0f} MB {wall:>5.1f}s")
        grown = sizes[1] - sizes[0]
        per_packet = grown * 1024 * 1024 / (args.large - args.small)
        print(f"{case:8s} growth {grown:+.0f} MB, x{sizes[1] / sizes[0]:.2f}, "
              f"{per_packet:.1f} B per added packet")  # fmt: skip


if __name__ == "__main__":
    main()
