"""A TUN-based link shaper: delay, targeted drops and held-back packets, all in Python.

The kernel here has no netem. Instead, each of two lab namespaces gets a TUN device (``tun-c`` in
the client namespace, ``tun-s`` in the server one, point-to-point addresses) and one Python thread
copies IP packets between the two file descriptors. Every packet is offered to ``decide(direction,
index, packet)`` which returns ``None`` to drop it or the delay in seconds before it is delivered.
Captures taken on a TUN device are LINKTYPE_RAW (IP with no link header); TUN has no offloads,
so segments are wire-sized and checksums complete.

Theory of operation: one thread, ``select()`` on both descriptors and a wake-up pipe; a heap of
(due time, sequence, destination fd, packet) holds delayed packets. ``inject()`` queues an extra
packet (for instance an old segment replayed later). ``close()`` stops the thread; the devices
disappear with their namespaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tcpdiag.lab.netns import Namespace, namespace

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

# direction: "c2s" (client to server) or "s2c"; index: 0-based count of packets in that direction
Decide = Callable[[str, int, bytes], float | None]


def open_tun(ns: Namespace, name: str) -> int:
    with ns.entered():
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Shaper:
    def __init__(self, fd_client: int, fd_server: int, decide: Decide) -> None:
        self.fds = {"c2s": (fd_client, fd_server), "s2c": (fd_server, fd_client)}
        self.decide = decide
        self.counts = {"c2s": 0, "s2c": 0}
        self.dropped: list[tuple[str, int]] = []
        self._heap: list[tuple[float, int, int, bytes]] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Shaper:
        self._thread.start()
        return self

    def _push(self, due: float, fd: int, pkt: bytes) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, fd, pkt))
        os.write(self._wake_w, b"x")

    def inject(self, direction: str, pkt: bytes, delay: float = 0.0) -> None:
        """Deliver ``pkt`` (an IP packet) in ``direction`` after ``delay`` s, bypassing decide."""
        self._push(time.monotonic() + delay, self.fds[direction][1], pkt)

    def _loop(self) -> None:
        by_fd = {src: (name, dst) for name, (src, dst) in self.fds.items()}
        while not self._stop:
            with self._lock:
                timeout = max(0.0, self._heap[0][0] - time.monotonic()) if self._heap else 0.5
            ready, _, _ = select.select([*by_fd, self._wake_r], [], [], timeout)
            for fd in ready:
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                pkt = os.read(fd, 65536)
                name, dst = by_fd[fd]
                index = self.counts[name]
                self.counts[name] += 1
                delay = self.decide(name, index, pkt)
                if delay is None:
                    self.dropped.append((name, index))
                else:
                    self._push(time.monotonic() + delay, dst, pkt)
            now = time.monotonic()
            while True:
                with self._lock:
                    if not self._heap or self._heap[0][0] > now:
                        break
                    _, _, dst, pkt = heapq.heappop(self._heap)
                with contextlib.suppress(OSError):
                    os.write(dst, pkt)

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread.ident is not None:
            self._thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)


@dataclass
class TunLink:
    client: Namespace
    server: Namespace
    shaper: Shaper
    if_client: str = "tun-c"
    if_server: str = "tun-s"
    addr_client: str = "10.77.2.1"
    addr_server: str = "10.77.2.2"


@contextlib.contextmanager
def tun_link(decide: Decide) -> Iterator[TunLink]:
    """Client and server namespaces joined through the shaper; everything removed on exit."""
    with namespace() as c, namespace() as s:
        fd_c = open_tun(c, "tun-c")
        fd_s = open_tun(s, "tun-s")
        shaper = Shaper(fd_c, fd_s, decide)
        try:
            for ns, iface, here, there in ((c, "tun-c", "10.77.2.1", "10.77.2.2"),
                                           (s, "tun-s", "10.77.2.2", "10.77.2.1")):  # fmt: skip
                ns.ip("addr", "add", here, "peer", there, "dev", iface)
                ns.ip("link", "set", iface, "up")
            shaper.start()
            yield TunLink(c, s, shaper)
        finally:
            shaper.close()
            os.close(fd_c)
            os.close(fd_s)
