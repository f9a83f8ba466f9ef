"""A long, mostly quiet capture: the cost of time passing, not of packets.

    python benchmarks/quiet.py --connections 20000 --seconds 3600 -o /tmp/quiet.pcap
    python benchmarks/run.py --file /tmp/quiet.pcap --tools tcpdiag,tshark-analysis
    tcpdiag analyze /tmp/quiet.pcap --idle-timeout 3600 --format json -o /dev/null

Keep-alive pools, database connections and idle SSH sessions open, exchange a request and a
response, and then say nothing for minutes. `--connections` such connections open in the first
seconds (handshake, 100 bytes up, 300 down, never closed); then one more connection trickles
10 bytes a second, with its ACK, for `--seconds` of capture time. The table sweeps for idle
flows once per capture second, so this capture measures what a sweep costs while thousands of
quiet flows wait for their idle timeout (`--idle-timeout`, 300 s by default). The packet count
is small (5 per quiet connection, 2 per trickle second): packets/s means little here, the wall
time against the same capture's length does.

IPv4 over Ethernet, checksums zero; the client addresses are 10.1.0.0/16 and up, the server is
10.0.0.2:80, the trickle is 10.9.9.9:4444 -> 10.0.0.2:80.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator

from tcpdiag.capture.writer import PcapWriter

LINKTYPE_ETHERNET = 1
START_NS = 1_700_000_000 * 10**9
SERVER = bytes([10, 0, 0, 2])
TRICKLE = bytes([10, 9, 9, 9])
SYN, ACK, PSH_ACK, SYN_ACK = 0x02, 0x10, 0x18, 0x12

_ETHERNET = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
          payload: bytes = b"") -> bytes:  # fmt: skip
    tcp = _TCP.pack(sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = _IPV4.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    return _ETHERNET + ip + tcp


def client_address(i: int) -> bytes:
    return bytes([10, 1 + i // 62500, (i // 250) % 250, 1 + i % 250])


def packets(connections: int, seconds: int) -> Iterator[tuple[int, bytes]]:
    """(timestamp ns, frame) in capture order."""
    t = START_NS
    for i in range(connections):
        client, port = client_address(i), 10000 + i % 50000
        for src, dst, sport, dport, seq, ack, flags, payload in (
            (client, SERVER, port, 80, 1000, 0, SYN, b""),
            (SERVER, client, 80, port, 5000, 1001, SYN_ACK, b""),
            (client, SERVER, port, 80, 1001, 5001, ACK, b""),
            (client, SERVER, port, 80, 1001, 5001, PSH_ACK, b"q" * 100),
            (SERVER, client, 80, port, 5001, 1101, PSH_ACK, b"r" * 300),
        ):
            yield t, frame(src, dst, sport, dport, seq, ack, flags, payload)
            t += 10_000  # 10 us
    seq = 1
    for _ in range(seconds):
        t += 10**9
        yield t, frame(TRICKLE, SERVER, 4444, 80, seq, 1, PSH_ACK, b"k" * 10)
        seq += 10
        yield t + 1_000_000, frame(SERVER, TRICKLE, 80, 4444, 1, seq, ACK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20_000, help="quiet connections")
    parser.add_argument("--seconds", type=int, default=3600, help="capture time after them")
    parser.add_argument("-o", "--output", required=True, help="pcap to write")
    args = parser.parse_args(argv)
    if not 0 <= args.connections <= 1_000_000 or args.seconds < 0:
        parser.error("--connections must be 0..1000000 and --seconds at least 0")
    count = 0
    with open(args.output, "wb") as out:
        writer = PcapWriter(out, LINKTYPE_ETHERNET)
        for ts, data in packets(args.connections, args.seconds):
            writer.write(ts, data)
            count += 1
    print(f"{args.output}: {count} packets, {args.connections} quiet connections, "
          f"{args.seconds} s of trickle", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
