# Types of the C extension `_ring.c` (built by setup.py with the mypyc modules).
from mmap import mmap

AVAILABLE: int
PCAP_RECORD_HEADER: int

def take_block(
    ring: mmap,
    offset: int,
    block_size: int,
    snaplen: int,
    drop_outgoing: bool,
    cooked: bool = False,
    /,
) -> tuple[bytes, int, int] | None: ...
