"""Fuzz target: the capture file reader on raw bytes (`open_capture("-", stdin=...)`).

The first byte picks how the rest is presented: as the whole input (any format, compression
detected by content), behind a valid pcap global header (so mutations reach the records), or
that pcap gzip- or zstd-compressed (so the decompressors and the input cap see damaged streams).

gzip is read twice: from a pipe (zlib) and from a regular file, where ISA-L inflates first and
zlib reads a member ISA-L cannot again from its start (`capture/source.py`). An undamaged
stream gives the same packets both ways; a damaged one may differ (ISA-L can give a few bytes
of a block zlib rejects at once), but neither way may crash, hang or grow without bound.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tempfile

import common

with common.instrumented():
    import zstandard

    from tcpdiag.capture import MAX_CAPLEN, open_capture
    from tcpdiag.errors import TcpdiagError

MAGICS = (0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1)
# Decompressed bytes read per input: large enough for any mutated seed, small enough that a
# compressed bomb costs well under the 1 s timeout.
MAX_INPUT = 8 << 20


def present(data: bytes) -> bytes:
    if not data:
        return data
    mode, rest = data[0] & 3, data[1:]
    if mode == 0 or len(rest) < 7:
        return rest
    magic = MAGICS[rest[0] & 3]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    snaplen, linktype = struct.unpack_from("<IB", rest, 1)
    body = (
        struct.pack("<I", magic)
        + struct.pack(order + "HHiIII", 2, 4, 0, 0, snaplen, linktype)
        + rest[7:]
    )
    if mode == 1:
        return body
    packed = gzip.compress(body, 1, mtime=0) if mode == 2 else zstandard.compress(body, 1)
    # The byte at the end decides where a damaged stream is cut (255: not cut).
    cut = rest[6]
    return packed if cut == 255 else packed[: len(packed) * cut // 255]


# Where gzip inputs are written to be read as a regular file (memory-backed when there is one).
_FILE_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def read_all(content: bytes, path: str | None = None) -> tuple[int, bytes, bool]:
    """The packets read (-1 when the input is refused), a digest of them (and of the damage
    reported), and whether the gzip stream was damaged or the input limit reached; from a
    pipe, or from the file at `path`."""
    try:
        if path is None:
            cap = open_capture("-", max_input_bytes=MAX_INPUT, stdin=io.BytesIO(content))
        else:
            cap = open_capture(path, max_input_bytes=MAX_INPUT)
    except TcpdiagError:
        return -1, b"", True
    count = 0
    last = 0
    digest = hashlib.blake2b(digest_size=16)
    with cap:
        for raw in cap:
            count += 1
            digest.update(f"{raw.frame},{raw.ts_ns},{raw.orig_len},{len(raw.data)}:".encode())
            digest.update(raw.data)
            assert type(raw.data) is bytes, type(raw.data)
            assert len(raw.data) <= MAX_CAPLEN or cap.info.format == "pcapng", len(raw.data)
            assert raw.orig_len >= len(raw.data), (raw.orig_len, len(raw.data))
            assert raw.frame > last, (raw.frame, last)
            assert isinstance(raw.ts_ns, int)
            last = raw.frame
        assert cap.frames_read >= count
        for damage in cap.damage:
            assert damage.offset >= 0 and damage.reason
            digest.update(f"damage {damage.offset} {damage.reason}".encode())
        for note in cap.notes:
            assert note.count >= 1 and note.message
        cap.linktypes  # noqa: B018 - must not raise
        # (Damage of the records is the same both ways; only the gzip stream's may differ.)
        damaged = any(d.reason.startswith("gzip") for d in cap.damage) or any(
            n.name == "input-limit" for n in cap.notes
        )
    return count, digest.digest(), damaged


def test_one_input(data: bytes) -> None:
    content = present(data)
    piped = read_all(content)
    if content[:2] != b"\x1f\x8b":
        return
    with tempfile.NamedTemporaryFile(dir=_FILE_DIR, suffix=".pcap.gz") as f:
        f.write(content)
        f.flush()
        from_file = read_all(content, f.name)
    if not piped[2]:
        assert from_file == piped, (from_file, piped)


def seeds() -> list[bytes]:
    from tests.hostile import packets as p

    s = p.tls_session(p.record(p.client_hello()), p.record(p.server_hello()))
    body = p.pcap(s.packets)[24:]
    out = [b"\x00" + p.pcap(s.packets), b"\x00" + p.pcapng(s.packets)]
    for mode in (1, 2, 3):
        out.append(bytes([mode, 0]) + struct.pack("<IB", 65535, 1) + b"\xff" + body)
    out += [b"\x00" + c for c in common.capture_seeds(16 << 10)]
    return out


if __name__ == "__main__":
    common.main(test_one_input, seeds)
