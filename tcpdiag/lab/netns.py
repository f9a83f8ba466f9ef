"""Network namespaces and veth pairs for the recording lab.

Theory of operation: every namespace the lab creates has a name unique to this process
(``tdlab<pid>x<n>``), is created with ``ip netns add`` and is always deleted in ``finally`` by
the context managers below, together with every interface inside it. Sockets are created inside a
namespace by switching the *calling thread* into it with ``setns()`` (through ctypes: Python 3.11
has no ``os.setns``) and switching back; a socket stays in the namespace it was created in, so it
can then be used from any thread. Commands (tcpdump, nft, ethtool) run with ``ip netns exec``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_COUNTER = itertools.count(1)
_LOCK = threading.Lock()


class LabError(RuntimeError):
    """The lab could not stage a scenario (missing tool, command failed, kernel refused)."""


def run(cmd: Sequence[str], *, stdin: str | None = None) -> str:
    """Run a command, raising LabError with its stderr when it fails."""
    try:
        proc = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} is not installed") from exc
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(f"setns failed: {os.strerror(err)}")


def unique_name(prefix: str = "tdlab") -> str:
    with _LOCK:
        n = next(_COUNTER)
    return f"{prefix}{os.getpid()}x{n}"


@dataclass
class Namespace:
    """A network namespace created (and deleted) by the lab."""

    name: str

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        return run(self.exec_argv(argv), stdin=stdin)

    def ip(self, *args: str) -> str:
        return run(["ip", "-n", self.name, *args])

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Switch the calling thread into this namespace for the duration of the block."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)

    def disable_ipv6(self) -> None:
        """No IPv6 autoconfiguration chatter on the lab's links (the lab's links are IPv4)."""
        with self.entered():
            for scope in ("all", "default"):
                with open(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6", "w") as f:
                    f.write("1")

    def offloads_off(self, iface: str) -> None:
        """Wire-sized segments and valid checksums in the capture."""
        self.run(["ethtool", "-K", iface, "tso", "off", "gso", "off", "gro", "off", "tx", "off"])


_LAB_NS = re.compile(r"^tdlab(\d+)x\d+$")


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces left behind by lab processes that no longer exist (killed -9)."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir("/run/netns")):
            m = _LAB_NS.match(name)
            if not m or int(m.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
                removed.append(name)
            except PermissionError:
                pass  # the process exists
    return removed


@contextlib.contextmanager
def namespace(*, ipv6: bool = False) -> Iterator[Namespace]:
    """A fresh namespace with its loopback up; deleted (with its interfaces) on exit.

    IPv6 is off unless asked for: the lab's links are IPv4, and IPv6 autoconfiguration would
    only add noise. Loopback-only scenarios keep it for ::1.
    """
    remove_stale_namespaces()
    ns = Namespace(unique_name())
    run(["ip", "netns", "add", ns.name])
    try:
        ns.ip("link", "set", "lo", "up")
        if not ipv6:
            ns.disable_ipv6()
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


@dataclass
class VethPair:
    """Namespace ``a`` (client side) and ``b`` (server side) joined by a veth pair."""

    a: Namespace
    b: Namespace
    if_a: str
    if_b: str
    addr_a: str
    addr_b: str


@contextlib.contextmanager
def veth_pair(
    *, addr_a: str = "10.77.1.1", addr_b: str | None = "10.77.1.2", prefix: int = 24
) -> Iterator[VethPair]:
    """Two namespaces joined by a veth pair, offloads off on both ends.

    ``addr_b=None`` leaves the server end without an address: a host that is down on the link.
    The 10.77.x.y addresses exist only inside these namespaces.
    """
    with namespace() as a, namespace() as b:
        if_a, if_b = "veth-c", "veth-s"
        run(
            [
                "ip",
                "link",
                "add",
                if_a,
                "netns",
                a.name,
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                "netns",
                b.name,
            ]
        )
        a.ip("addr", "add", f"{addr_a}/{prefix}", "dev", if_a)
        if addr_b is not None:
            b.ip("addr", "add", f"{addr_b}/{prefix}", "dev", if_b)
        for ns, iface in ((a, if_a), (b, if_b)):
            ns.offloads_off(iface)
            ns.ip("link", "set", iface, "up")
        yield VethPair(a, b, if_a, if_b, addr_a, addr_b or "")


@dataclass
class BridgedPair:
    """Namespaces ``a`` (client) and ``b`` (server), each joined by a veth pair to the bridge
    ``bridge`` in namespace ``host``: the way containers sit behind a host's bridge."""

    host: Namespace
    a: Namespace
    b: Namespace
    bridge: str
    addr_a: str
    addr_b: str


@contextlib.contextmanager
def bridged_pair(
    *, addr_a: str = "10.77.2.1", addr_b: str = "10.77.2.2", prefix: int = 24
) -> Iterator[BridgedPair]:
    """A host namespace with a bridge, and two namespaces plugged into it by veth pairs
    (offloads off on every end). A packet from ``a`` to ``b`` crosses two of the host's
    interfaces: it comes in on ``a``'s port and goes out on ``b``'s."""
    with namespace() as host, namespace() as a, namespace() as b:
        bridge = "br0"
        host.ip("link", "add", bridge, "type", "bridge")
        host.ip("link", "set", bridge, "up")
        for i, (ns, addr) in enumerate(((a, addr_a), (b, addr_b)), start=1):
            port = f"port{i}"
            run(["ip", "link", "add", port, "netns", host.name, "type", "veth",
                 "peer", "name", "eth0", "netns", ns.name])  # fmt: skip
            host.ip("link", "set", port, "master", bridge)
            ns.ip("addr", "add", f"{addr}/{prefix}", "dev", "eth0")
            for side, iface in ((host, port), (ns, "eth0")):
                side.offloads_off(iface)
                side.ip("link", "set", iface, "up")
        yield BridgedPair(host, a, b, bridge, addr_a, addr_b)


@dataclass
class RoutedPair:
    """Namespaces ``a`` (client) and ``b`` (server) on two links of a router namespace
    ``router`` (forwarding on): every packet between them crosses one hop, so each side's
    packets arrive with their TTL one lower than they left with."""

    router: Namespace
    a: Namespace
    b: Namespace
    if_a: str
    addr_a: str
    addr_b: str


@contextlib.contextmanager
def routed_pair(
    *, addr_a: str = "10.77.3.1", addr_b: str = "10.77.4.1", prefix: int = 24
) -> Iterator[RoutedPair]:
    """A router namespace with a link to each of two namespaces (offloads off on every end):
    ``a`` on 10.77.3.0/24, ``b`` on 10.77.4.0/24, the router at .254 on both, each side's
    default route through it."""
    with namespace() as router, namespace() as a, namespace() as b:
        router.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        for i, (ns, addr) in enumerate(((a, addr_a), (b, addr_b)), start=1):
            link = f"link{i}"
            gateway = addr.rsplit(".", 1)[0] + ".254"
            run(["ip", "link", "add", link, "netns", router.name, "type", "veth",
                 "peer", "name", "eth0", "netns", ns.name])  # fmt: skip
            router.ip("addr", "add", f"{gateway}/{prefix}", "dev", link)
            ns.ip("addr", "add", f"{addr}/{prefix}", "dev", "eth0")
            for side, iface in ((router, link), (ns, "eth0")):
                side.offloads_off(iface)
                side.ip("link", "set", iface, "up")
            ns.ip("route", "add", "default", "via", gateway)
        yield RoutedPair(router, a, b, "eth0", addr_a, addr_b)
