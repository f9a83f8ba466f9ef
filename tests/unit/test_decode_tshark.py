"""Differential: every TCP header the decoder reads from the public captures equals tshark's
(ports, raw sequence and acknowledgement numbers, flags, window, payload length), frame by frame."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tcpdiag.capture import open_capture
from tcpdiag.decode import Decoder
from tcpdiag.model import Segment
from tests.capture_files import BAD_TCP_HEADERS, PUBLIC

NAMES = (
    sorted(
        p.name
        for p in PUBLIC.iterdir()
        if ".pcap" in p.name and "malformed-file" not in p.name and "malformed-pcapng" not in p.name
    )
    if PUBLIC.is_dir()
    else []
)
FIELDS = [
    "frame.number",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
]


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_tcp_headers_equal_tshark(name: str) -> None:
    args = ["tshark", "-r", str(PUBLIC / name), "-Y", "tcp", "-T", "fields"]
    for field in FIELDS:
        args += ["-e", field]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    expected = []
    for line in out.splitlines():
        # Malformed TCP (see BAD_TCP_HEADERS) leaves some fields empty: -1 for those.
        frame, sport, dport, seq, ack, flags, window, length = (
            int(v, 0) if v else -1 for v in line.split("\t")
        )
        expected.append((frame, sport, dport, seq, ack, flags & 0xFF, window, length))
    dec = Decoder()
    got = []
    bad_headers = []  # tshark shows these as malformed TCP; we make no Segment of them
    with open_capture(PUBLIC / name) as cap:
        for raw in cap:
            before = dec.stats.bad_tcp_header
            seg = dec.decode(raw)
            if type(seg) is Segment:
                fields = (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window)
                got.append((seg.frame, *fields, seg.length))
            elif dec.stats.bad_tcp_header > before:
                bad_headers.append(raw.frame)
    assert got == [e for e in expected if e[0] not in bad_headers]
    assert len(bad_headers) == BAD_TCP_HEADERS.get(name, 0)
