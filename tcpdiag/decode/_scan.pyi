# Types of the C extension `_scan.c` (built by setup.py with the mypyc modules).
from tcpdiag.model import RawPacket, Segment, TcpOptions

STOP_NEED_DATA: int
STOP_ODD: int
STOP_TIME: int
STOP_FULL: int
SEGMENT_FIELDS: int
WALK_FIELDS: int

def configure(
    raw_packet: type[RawPacket],
    segment: type[Segment],
    tcp_options: type[TcpOptions],
    no_options: TcpOptions,
    /,
) -> None: ...
def scan(
    buf: bytes,
    pos: int,
    frame: int,
    stop_ns: int,
    header_len: int,
    big_endian: bool,
    frac_mult: int,
    frac_limit: int,
    snaplen: int,
    linktype: int,
    max_items: int,
    shard_index: int = 0,
    shard_count: int = 1,
    /,
) -> tuple[list[Segment | RawPacket], int, int, int, int, int, int, int, int, int, int]: ...
def scan_pcapng(
    buf: bytes,
    pos: int,
    frame: int,
    stop_ns: int,
    big_endian: bool,
    interfaces: tuple[tuple[int, ...], ...],
    max_items: int,
    shard_index: int = 0,
    shard_count: int = 1,
    /,
) -> tuple[list[Segment | RawPacket], int, int, int, int, int, int, int, int, int, int]: ...
