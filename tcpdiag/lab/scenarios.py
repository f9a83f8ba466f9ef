"""Every lab scenario: staged with real sockets and the real kernel, recorded, with ground truth.

Each scenario function receives a :class:`Stage` (where to write the capture, how to start the
recorder), generates its traffic while the recorder runs, and returns what the *application* saw
(errno, exception text, latencies, bytes). :func:`record` adds what the wire shows (counted by
:mod:`tcpdiag.lab.wire`, independently of tcpdiag's engine) and the findings tcpdiag must, and
must not, report. Traffic goes only over loopback or inside namespaces the lab creates.
"""

from __future__ import annotations

import contextlib
import functools
import json
import platform
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tcpdiag.lab import wire
from tcpdiag.lab.firewall import Action, block_syns, reset_forwarded
from tcpdiag.lab.netns import (
    LabError,
    Namespace,
    bridged_pair,
    namespace,
    routed_pair,
    veth_pair,
)
from tcpdiag.lab.recorder import Recorder, Tool
from tcpdiag.lab.shaper import tun_link
from tcpdiag.lab.tls_peers import (
    CONTENT_TYPES,
    MemoryClient,
    MemoryTls,
    TlsServer,
    client_context,
    describe_alerts,
    errno_name,
    exc_text,
    make_certs,
    record_labels,
    server_context,
    split_records,
)

LOOP4 = "127.0.0.1"
LOOP6 = "::1"
REQUEST = b"GET /status HTTP/1.1\r\nHost: tcpdiag.test\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n"
TCP_SYNCNT = getattr(socket, "TCP_SYNCNT", 7)


# --------------------------------------------------------------------------------------------
# Framework


@dataclass
class Stage:
    """Where a scenario writes its capture, and the capture commands it used."""

    name: str
    path: Path
    server_port: int | None = None
    commands: list[str] = field(default_factory=list)

    def recorder(self, iface: str, bpf: str, **options: Any) -> Recorder:
        """A :class:`Recorder` writing this scenario's capture (options as Recorder's)."""
        rec = Recorder(self.path, iface, bpf, **options)
        self.commands.append(rec.command())
        return rec


ScenarioFn = Callable[[Stage], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    func: ScenarioFn
    findings: tuple[str, ...]
    absent: tuple[str, ...]
    ext: str = "pcap"
    # Loopback scenarios run in a fresh namespace of their own (its lo, 127.0.0.1 and ::1), so
    # that nothing else on the machine shares their ports, firewall or captures.
    isolated: bool = True


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str,
    description: str,
    *,
    findings: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    ext: str = "pcap",
    isolated: bool = True,
) -> Callable[[ScenarioFn], ScenarioFn]:
    def deco(fn: ScenarioFn) -> ScenarioFn:
        SCENARIOS[name] = Scenario(name, description, fn, findings, absent, ext, isolated)
        return fn

    return deco


def record(name: str, out_dir: Path) -> dict[str, Any]:
    """Stage and record one scenario into ``out_dir``; return its ground truth (JSON-able)."""
    sc = SCENARIOS[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    st = Stage(name, out_dir / f"{name}.{sc.ext}")
    started = datetime.now(UTC)
    if sc.isolated:
        # Sockets, threads and the capture process started inside inherit the namespace.
        with namespace(ipv6=True) as ns, ns.entered():
            app = sc.func(st)
        where = "run inside a fresh network namespace (its own lo): "
    else:
        app = sc.func(st)
        where = ""
    cap = wire.read(st.path)
    return {
        "scenario": name,
        "description": sc.description,
        "capture": st.path.name,
        "how": f"tcpdiag lab {name} -o {out_dir.name}",
        "function": f"tcpdiag.lab.scenarios.{sc.func.__name__}",
        "capture_command": where
        + " ; ".join(st.commands).replace(str(st.path), f"{out_dir.name}/{st.path.name}"),
        "recorded": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": platform.release(),
        "linktype": cap.linktype,
        "format": cap.format,
        "timestamp_precision": "ns" if cap.nanosecond else "us",
        "size": st.path.stat().st_size,
        "app": app,
        "wire": wire.summarize(st.path, st.server_port),
        "expect": {"findings": list(sc.findings), "absent": list(sc.absent)},
    }


def record_and_save(name: str, out_dir: Path) -> dict[str, Any]:
    """:func:`record`, then write ``<name>.truth.json`` beside the capture."""
    truth = record(name, out_dir)
    text = json.dumps(truth, indent=2, ensure_ascii=False) + "\n"
    (out_dir / f"{name}.truth.json").write_text(text, encoding="utf-8")
    return truth


# --------------------------------------------------------------------------------------------
# Helpers


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _errno(exc: BaseException) -> str | None:
    return errno_name(exc)


def _listener(
    addr: str = LOOP4, port: int = 0, backlog: int = 16, rcvbuf: int | None = None
) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((addr, port))
    s.listen(backlog)
    return s


def _server_and_client(
    server_ns: Namespace, client_ns: Namespace, addr: str, port: int
) -> tuple[socket.socket, socket.socket]:
    """A listener on (addr, port) made in `server_ns`, and a client socket (not connected yet)
    made in `client_ns`: a socket lives in the namespace it was made in, whichever thread
    uses it later."""
    with server_ns.entered():
        lst = _listener(addr, port)
    with client_ns.entered():
        client = socket.socket()
    return lst, client


class Background:
    """A peer running in a thread; its result dict (or exception text) is kept for the truth."""

    def __init__(self, fn: Callable[[], dict[str, Any]]) -> None:
        self.result: dict[str, Any] = {}
        self._fn = fn
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except (OSError, ssl.SSLError) as exc:
            self.result = {"exception": exc_text(exc), "errno": _errno(exc)}

    def join(self, timeout: float = 15) -> dict[str, Any]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise LabError("a lab peer did not finish in time")
        return self.result


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def _recv_all(sock: socket.socket) -> bytes:
    buf = b""
    while chunk := sock.recv(65536):
        buf += chunk
    return buf


def _abort(sock: socket.socket) -> None:
    """close() with SO_LINGER {1, 0}: RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _attempt(
    addr: tuple[str, int],
    *,
    family: int = socket.AF_INET,
    syncnt: int | None = None,
    make: Callable[[], socket.socket] | None = None,
) -> dict[str, Any]:
    """connect() that is expected to fail; what the application saw."""
    s = make() if make else socket.socket(family, socket.SOCK_STREAM)
    if syncnt is not None:
        s.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, syncnt)
    t0 = time.perf_counter()
    try:
        s.connect(addr)
    except OSError as exc:
        return {"connected": False, "errno": _errno(exc), "exception": exc_text(exc),
                "latency_ms": _ms(t0), "bytes_sent": 0, "bytes_received": 0}  # fmt: skip
    finally:
        s.close()
    return {"connected": True, "errno": None, "exception": None, "latency_ms": _ms(t0)}


def _serve_once(
    lst: socket.socket, handler: Callable[[socket.socket], dict[str, Any]]
) -> Background:
    def run() -> dict[str, Any]:
        conn, _ = lst.accept()
        conn.settimeout(10)
        try:
            return handler(conn)
        finally:
            conn.close()

    return Background(run)


def _lo_listener(st: Stage, **listen: Any) -> tuple[socket.socket, int]:
    """A loopback listener; its port is the scenario's server port."""
    lst = _listener(**listen)
    st.server_port = lst.getsockname()[1]
    return lst, st.server_port


@contextlib.contextmanager
def _loopback(
    st: Stage,
    handler: Callable[[socket.socket], dict[str, Any]],
    *,
    iface: str = "lo",
    listen: dict[str, Any] | None = None,
    **recorder: Any,
) -> Iterator[tuple[int, Background]]:
    """Record on lo while one connection is served by ``handler``: yields (port, server)."""
    lst, port = _lo_listener(st, **(listen or {}))
    try:
        with st.recorder(iface, f"tcp port {port}", **recorder):
            yield port, _serve_once(lst, handler)
    finally:
        lst.close()


def _request_response(conn: socket.socket) -> dict[str, Any]:
    req = conn.recv(65536)
    conn.sendall(RESPONSE)
    return {"bytes_received": len(req), "bytes_sent": len(RESPONSE)}


def _answer_then_eof(conn: socket.socket) -> dict[str, Any]:
    """Serve one request, then wait for the client's close (an orderly server)."""
    out = _request_response(conn)
    out["eof_seen"] = conn.recv(100) == b""
    return out


# --------------------------------------------------------------------------------------------
# Connection set-up


@scenario(
    "tcp-refused-ipv4",
    "connect() to 127.0.0.1 on a port nobody listens on: SYN answered by RST/ACK.",
    findings=("connection-refused",),
    absent=("syn-unanswered",),
)
def refused_ipv4(st: Stage) -> dict[str, Any]:
    holder = socket.socket()  # reserves the port without listening
    holder.bind((LOOP4, 0))
    port = holder.getsockname()[1]
    st.server_port = port
    try:
        with st.recorder("lo", f"tcp port {port}"):
            return _attempt((LOOP4, port))
    finally:
        holder.close()


@scenario(
    "tcp-refused-ipv6",
    "connect() to [::1] on a port nobody listens on, captured with -i any (Linux cooked v2).",
    findings=("connection-refused",),
    absent=("syn-unanswered",),
)
def refused_ipv6(st: Stage) -> dict[str, Any]:
    holder = socket.socket(socket.AF_INET6)
    holder.bind((LOOP6, 0))
    port = holder.getsockname()[1]
    st.server_port = port
    try:
        with st.recorder("any", f"tcp port {port}"):
            return _attempt((LOOP6, port), family=socket.AF_INET6)
    finally:
        holder.close()


def _firewalled(st: Stage, action: Action, bpf: str, nano: bool = False) -> dict[str, Any]:
    port = 8080
    st.server_port = port
    with veth_pair() as pair:
        with pair.b.entered():
            lst = _listener(pair.addr_b, port)
        try:
            block_syns(pair.b, port, action)
            with pair.a.entered():
                client = socket.socket()
            with st.recorder(pair.if_a, bpf, netns=pair.a, nano=nano):
                app = _attempt((pair.addr_b, port), syncnt=1, make=lambda: client)
        finally:
            lst.close()
    app["server_listening"] = True
    app["firewall"] = f"nft in the server namespace: SYN to port {port} -> {action}"
    return app


@scenario(
    "tcp-syn-dropped",
    "A firewall silently drops SYNs (nft drop in the server namespace); the client has "
    "TCP_SYNCNT=1 and gives up with ETIMEDOUT after its SYN retransmissions.",
    findings=("syn-unanswered",),
    absent=("connection-refused", "icmp-unreachable"),
    isolated=False,
)
def syn_dropped(st: Stage) -> dict[str, Any]:
    return _firewalled(st, "drop", "tcp port 8080")


@scenario(
    "tcp-icmp-admin-prohibited",
    "A firewall rejects SYNs with ICMP admin-prohibited (nft reject in the server namespace); "
    "the client fails with EHOSTUNREACH.",
    findings=("icmp-unreachable",),
    absent=("connection-refused",),
    isolated=False,
)
def icmp_prohibited(st: Stage) -> dict[str, Any]:
    return _firewalled(st, "admin-prohibited", "tcp port 8080 or icmp")


@scenario(
    "tcp-firewall-reset",
    "A firewall rejects SYNs with a TCP reset (nft reject with tcp reset); the client sees "
    "ECONNREFUSED although a server is listening. Nanosecond pcap.",
    findings=("connection-refused",),
    absent=("syn-unanswered",),
    isolated=False,
)
def firewall_reset(st: Stage) -> dict[str, Any]:
    return _firewalled(st, "tcp-reset", "tcp port 8080", nano=True)


@scenario(
    "arp-host-down",
    "connect() to an address on the local link where no host answers: only ARP requests leave, "
    "no TCP segment at all; the client fails with EHOSTUNREACH.",
    findings=("arp-unanswered",),
    absent=("connection-refused", "syn-unanswered"),
    isolated=False,
)
def host_down(st: Stage) -> dict[str, Any]:
    port = 8080
    st.server_port = port
    target = "10.77.1.9"
    with veth_pair(addr_b=None) as pair:
        with pair.a.entered():
            client = socket.socket()
        with st.recorder(pair.if_a, f"arp or tcp port {port}", netns=pair.a):
            app = _attempt((target, port), make=lambda: client)
    app["target"] = target
    return app


@scenario(
    "tcp-backlog-full",
    "A listener with listen(1) that never calls accept(): the first two clients complete the "
    "handshake and their requests are ACKed but never answered; the next clients' SYNs are "
    "dropped (TCP_SYNCNT=1) and they fail with ETIMEDOUT.",
    findings=("syn-unanswered", "no-response"),
    absent=("connection-refused",),
)
def backlog_full(st: Stage) -> dict[str, Any]:
    lst, port = _lo_listener(st, backlog=1)
    clients: list[dict[str, Any]] = []

    def client(i: int) -> dict[str, Any]:
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, 1)
        t0 = time.perf_counter()
        try:
            s.connect((LOOP4, port))
        except OSError as exc:
            s.close()
            return {"client": i, "connected": False, "errno": _errno(exc),
                    "exception": exc_text(exc), "latency_ms": _ms(t0)}  # fmt: skip
        connect_ms = _ms(t0)
        s.sendall(REQUEST)
        s.settimeout(1.0)
        try:
            got = s.recv(100)
            out: dict[str, Any] = {"response_bytes": len(got)}
        except TimeoutError as exc:
            out = {"response_bytes": 0, "exception": exc_text(exc), "errno": None}
        s.close()
        return {"client": i, "connected": True, "latency_ms": connect_ms,
                "bytes_sent": len(REQUEST), **out}  # fmt: skip

    try:
        with st.recorder("lo", f"tcp port {port}"):
            peers = []
            for i in range(4):
                peers.append(Background(functools.partial(client, i)))
                time.sleep(0.05)
            clients = [p.join() for p in peers]
    finally:
        lst.close()
    return {"listen_backlog": 1, "accept_called": False, "clients": clients}


@scenario(
    "tcp-synack-lost",
    "The first SYN/ACK is lost on a shaped link (TUN shaper, 5 ms each way); the client "
    "retransmits its SYN, the server its SYN/ACK, and the connection completes ~1 s late. "
    "Captured on the server's side (raw IP).",
    findings=("synack-retransmitted",),
    absent=("syn-unanswered", "connection-refused"),
    isolated=False,
)
def synack_lost(st: Stage) -> dict[str, Any]:
    synacks = 0

    def decide(direction: str, index: int, pkt: bytes) -> float | None:
        nonlocal synacks
        if wire.parse_ip(pkt).is_synack:
            synacks += 1
            if synacks == 1:
                return None
        return 0.005

    port = 8080
    st.server_port = port
    with tun_link(decide) as link:
        lst, client = _server_and_client(link.server, link.client, link.addr_server, port)
        try:
            server = _serve_once(lst, _request_response)
            with st.recorder(link.if_server, f"tcp port {port}", netns=link.server):
                t0 = time.perf_counter()
                client.connect((link.addr_server, port))
                connect_ms = _ms(t0)
                client.sendall(REQUEST)
                got = _recv_exact(client, len(RESPONSE))
                client.close()
                srv = server.join()
        finally:
            lst.close()
        dropped = list(link.shaper.dropped)
    return {"connected": True, "errno": None, "latency_ms": connect_ms,
            "bytes_sent": len(REQUEST), "bytes_received": len(got), "server": srv,
            "shaper_dropped": [f"{d}#{i}" for d, i in dropped],
            "dropped": "the first SYN/ACK"}  # fmt: skip


@scenario(
    "tcp-handshake-aborted",
    "The SYN/ACK is delayed 500 ms on a shaped link (TUN shaper); the client's connect() "
    "timeout is 200 ms, so it has closed its socket when the SYN/ACK arrives and its kernel "
    "answers with RST. Captured on the client's side (raw IP).",
    findings=("handshake-aborted-by-client",),
    absent=("connection-refused", "syn-unanswered"),
    isolated=False,
)
def handshake_aborted(st: Stage) -> dict[str, Any]:
    def decide(direction: str, index: int, pkt: bytes) -> float | None:
        return 0.5 if wire.parse_ip(pkt).is_synack else 0.002

    port = 8080
    st.server_port = port
    with tun_link(decide) as link:
        lst, client = _server_and_client(link.server, link.client, link.addr_server, port)
        try:
            client.settimeout(0.2)
            with st.recorder(link.if_client, f"tcp port {port}", netns=link.client):
                app = _attempt((link.addr_server, port), make=lambda: client)
                time.sleep(0.6)  # the late SYN/ACK, and the client's RST
        finally:
            lst.close()
    return {**app, "connect_timeout_ms": 200, "synack_delay_ms": 500}


@scenario(
    "tcp-capture-mid-flow",
    "The capture starts after the connection is established: no handshake in the file, then "
    "a request, its response and an orderly close. Nanosecond pcap.",
    findings=("capture-started-mid-flow",),
    absent=("abortive-close", "reset-mid-stream", "close-wait", "connection-refused"),
)
def capture_mid_flow(st: Stage) -> dict[str, Any]:
    lst, port = _lo_listener(st)

    server = _serve_once(lst, _answer_then_eof)
    c = socket.create_connection((LOOP4, port))
    time.sleep(0.05)
    with st.recorder("lo", f"tcp port {port}", nano=True):
        c.sendall(REQUEST)
        got = _recv_exact(c, len(RESPONSE))
        c.close()
        srv = server.join()
    lst.close()
    return {"connected_before_capture": True, "bytes_sent": len(REQUEST),
            "bytes_received": len(got), "server": srv}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Teardown


@scenario(
    "tcp-orderly-close",
    "Request, response, then FIN from each side, each ACKed (dumpcap, pcapng). The healthy "
    "near miss of every teardown problem.",
    absent=(
        "abortive-close",
        "reset-mid-stream",
        "close-wait",
        "half-close",
        "reset-with-unread-data",
        "no-response",
    ),
    ext="pcapng",
)
def orderly_close(st: Stage) -> dict[str, Any]:
    with _loopback(st, _answer_then_eof, tool="dumpcap") as (port, server):
        t0 = time.perf_counter()
        c = socket.create_connection((LOOP4, port))
        c.sendall(REQUEST)
        got = _recv_exact(c, len(RESPONSE))
        latency = _ms(t0)
        c.close()
        srv = server.join()
        time.sleep(0.05)
    return {"errno": None, "exception": None, "latency_ms": latency,
            "bytes_sent": len(REQUEST), "bytes_received": len(got), "server": srv}  # fmt: skip


@scenario(
    "tcp-linger0-abort",
    "The client reads its response and closes with SO_LINGER {1, 0}: RST instead of FIN; the "
    "server's next recv() fails with ECONNRESET.",
    findings=("abortive-close",),
    absent=("close-wait", "half-close"),
)
def linger0_abort(st: Stage) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        out = _request_response(conn)
        try:
            conn.recv(100)
            out["next_recv"] = "eof"
        except OSError as exc:
            out["next_recv_errno"], out["next_recv_exception"] = _errno(exc), exc_text(exc)
        return out

    with _loopback(st, handler) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.sendall(REQUEST)
        got = _recv_exact(c, len(RESPONSE))
        _abort(c)
        srv = server.join()
    return {"close": "SO_LINGER {1,0} then close()", "bytes_sent": len(REQUEST),
            "bytes_received": len(got), "server": srv}  # fmt: skip


@scenario(
    "tcp-close-unread",
    "The client pipelines two requests; the server reads only the first, answers and closes "
    "with the second still unread: the kernel sends RST instead of FIN and the client's next "
    "recv() fails with ECONNRESET.",
    findings=("reset-with-unread-data",),
    absent=("close-wait",),
)
def close_unread(st: Stage) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        first = _recv_exact(conn, len(REQUEST))
        time.sleep(0.1)  # the second request arrives meanwhile
        conn.sendall(RESPONSE)
        return {"bytes_received": len(first), "bytes_sent": len(RESPONSE), "unread": True}

    with _loopback(st, handler) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.sendall(REQUEST)
        time.sleep(0.02)
        c.sendall(REQUEST)
        srv = server.join()
        got = b""
        app: dict[str, Any] = {"errno": None, "exception": None}
        c.settimeout(3)
        try:
            while chunk := c.recv(65536):
                got += chunk
            app["end"] = "eof"
        except OSError as exc:
            app.update(errno=_errno(exc), exception=exc_text(exc), end="error")
        c.close()
    return {**app, "bytes_sent": 2 * len(REQUEST), "bytes_received": len(got), "server": srv}


@scenario(
    "tcp-half-close",
    "The client sends its request and calls shutdown(SHUT_WR); the server keeps sending its "
    "answer in three parts after the client's FIN, then closes. Linux cooked v1 (-i any -y "
    "LINUX_SLL).",
    findings=("half-close",),
    absent=("close-wait", "abortive-close", "reset-mid-stream"),
)
def half_close(st: Stage) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        req = _recv_all(conn)
        for _ in range(3):
            conn.sendall(RESPONSE)
            time.sleep(0.05)
        return {"bytes_received": len(req), "bytes_sent": 3 * len(RESPONSE)}

    with _loopback(st, handler, iface="any", linktype="LINUX_SLL") as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.sendall(REQUEST)
        c.shutdown(socket.SHUT_WR)
        got = _recv_all(c)
        c.close()
        srv = server.join()
    return {"shutdown": "SHUT_WR after the request", "bytes_sent": len(REQUEST),
            "bytes_received": len(got), "server": srv}  # fmt: skip


def _close_wait(st: Stage, delay: float | None) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        return _request_response(conn)  # then close(): the server's FIN

    c: socket.socket | None = None
    try:
        with _loopback(st, handler) as (port, server):
            c = socket.create_connection((LOOP4, port))
            c.sendall(REQUEST)
            got = _recv_all(c)  # returns at the server's FIN
            t_eof = time.perf_counter()
            srv = server.join()
            if delay is not None:
                time.sleep(delay)
                c.close()
                c = None
            else:
                time.sleep(1.5)
        held = _ms(t_eof)
    finally:
        if c is not None:
            c.close()
    return {"bytes_sent": len(REQUEST), "bytes_received": len(got), "eof_seen": True,
            "close_after_eof_ms": held if delay is not None else None,
            "closed_before_capture_end": delay is not None, "server": srv}  # fmt: skip


@scenario(
    "tcp-close-wait",
    "The server answers and closes; the client reads EOF but calls close() only 3 s later: "
    "its socket sits in CLOSE_WAIT and its FIN comes late.",
    findings=("close-wait",),
    absent=("abortive-close", "half-close"),
)
def close_wait_late(st: Stage) -> dict[str, Any]:
    return _close_wait(st, 3.0)


@scenario(
    "tcp-close-wait-never",
    "The server answers and closes; the client reads EOF and never closes before the capture "
    "ends (no FIN from the client at all).",
    findings=("close-wait",),
    absent=("abortive-close",),
)
def close_wait_never(st: Stage) -> dict[str, Any]:
    return _close_wait(st, None)


# --------------------------------------------------------------------------------------------
# Data transfer


@scenario(
    "tcp-zero-window",
    "The server has a small SO_RCVBUF and stops reading for 2 s while the client sends 48 KiB: "
    "its window falls to zero, the client probes, then the server reads and the window opens.",
    findings=("zero-window",),
    absent=("reset-mid-stream", "retransmission"),
)
def zero_window(st: Stage) -> dict[str, Any]:
    total = 48 * 1024
    stall = 2.0

    def handler(conn: socket.socket) -> dict[str, Any]:
        time.sleep(stall)
        got = _recv_all(conn)
        return {"bytes_received": len(got), "read_paused_ms": stall * 1000}

    with _loopback(st, handler, listen={"rcvbuf": 4096}) as (port, server):
        c = socket.create_connection((LOOP4, port))
        t0 = time.perf_counter()
        c.sendall(b"z" * total)
        c.shutdown(socket.SHUT_WR)
        srv = server.join()
        done = _ms(t0)
        c.close()
    return {"bytes_sent": total, "server_rcvbuf_set": 4096, "transfer_ms": done, "server": srv}


def _nagle(st: Stage, nodelay: bool) -> dict[str, Any]:
    n, part = 6, 100

    def handler(conn: socket.socket) -> dict[str, Any]:
        served = 0
        while len(_recv_exact(conn, 2 * part)) == 2 * part:
            conn.sendall(b"r" * part)
            served += 1
        return {"requests_served": served}

    with _loopback(st, handler) as (port, server):
        c = socket.create_connection((LOOP4, port))
        if nodelay:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.sendall(b"a" * part)
            c.sendall(b"b" * part)
            _recv_exact(c, part)
            lat.append(_ms(t0))
        c.close()
        srv = server.join()
    return {"pattern": "write(100) write(100) read(100)", "requests": n,
            "tcp_nodelay": nodelay, "latencies_ms": lat,
            "bytes_sent": 2 * part * n, "bytes_received": part * n, "server": srv}  # fmt: skip


@scenario(
    "tcp-nagle-delayed-ack",
    "write-write-read with 100-byte writes: Nagle holds the second write until the first is "
    "ACKed, the receiver delays that ACK ~40 ms: each request stalls.",
    findings=("delayed-ack-stall",),
    absent=("retransmission",),
)
def nagle_delayed_ack(st: Stage) -> dict[str, Any]:
    return _nagle(st, nodelay=False)


@scenario(
    "tcp-nagle-nodelay",
    "The same write-write-read exchange with TCP_NODELAY on the client: no stall (near miss).",
    absent=("delayed-ack-stall",),
)
def nagle_nodelay(st: Stage) -> dict[str, Any]:
    return _nagle(st, nodelay=True)


@scenario(
    "tcp-retransmissions",
    "A 40 KiB upload over a shaped link (TUN shaper: 20 ms each way, the client's data "
    "segments 6, 7 and 20 dropped once), captured on the client's side (raw IP): retransmissions.",
    findings=("retransmission",),
    absent=("reset-mid-stream", "syn-unanswered"),
    isolated=False,
)
def retransmissions(st: Stage) -> dict[str, Any]:
    total = 40 * 1024
    drops = {6, 7, 20}

    data_segments = 0

    def decide(direction: str, index: int, pkt: bytes) -> float | None:
        nonlocal data_segments
        if direction == "c2s" and wire.parse_ip(pkt).payload:
            data_segments += 1
            if data_segments in drops:
                return None
        return 0.02

    port = 8080
    st.server_port = port
    with tun_link(decide) as link:
        rec = st.recorder(link.if_client, f"tcp port {port}", netns=link.client)
        app = _upload(rec, link.server, link.client, link.addr_server, port, total)
        dropped = list(link.shaper.dropped)
    server = app.pop("server")
    return {**app, "delay_ms_each_way": 20, "dropped_data_segments": sorted(drops),
            "shaper_dropped": [f"{d}#{i}" for d, i in dropped],
            "server": server}  # fmt: skip


def _upload(
    rec: Recorder,
    server_ns: Namespace,
    client_ns: Namespace,
    server_addr: str,
    port: int,
    total: int,
) -> dict[str, Any]:
    """`total` bytes from a client in `client_ns` to a server in `server_ns`, which answers
    "ok" once the client has half-closed; recorded by `rec` while it runs. What both
    applications saw."""

    def handler(conn: socket.socket) -> dict[str, Any]:
        got = _recv_all(conn)
        conn.sendall(b"ok\n")
        return {"bytes_received": len(got), "bytes_sent": 3}

    lst, client = _server_and_client(server_ns, client_ns, server_addr, port)
    try:
        server = _serve_once(lst, handler)
        with rec:
            client.connect((server_addr, port))
            t0 = time.perf_counter()
            client.sendall(b"d" * total)
            client.shutdown(socket.SHUT_WR)
            got = _recv_all(client)
            done = _ms(t0)
            client.close()
            srv = server.join()
    finally:
        lst.close()
    return {"bytes_sent": total, "bytes_received": len(got), "transfer_ms": done, "server": srv}


@scenario(
    "tcp-any-bridge-duplicates",
    "A healthy 64 KiB upload between two namespaces plugged into a bridge, as containers sit "
    "behind a host's bridge, captured with -i any in the host's namespace: every packet is "
    "seen twice, coming in on the sender's bridge port and going out on the receiver's, so "
    "Wireshark-style analysis flags the second copies as retransmissions and duplicate ACKs.",
    findings=("capture-duplicate-packets", "retransmission"),
    absent=("reset-mid-stream", "abortive-close", "capture-packet-loss"),
    isolated=False,
)
def any_bridge_duplicates(st: Stage) -> dict[str, Any]:
    port = 8080
    st.server_port = port
    with bridged_pair() as net:
        # (A snap length above the 1,500-byte frames: tcpdump's immediate mode hands each
        # packet over in a block of the snap length's size, and 256 KiB blocks dropped.)
        rec = st.recorder("any", f"tcp port {port}", netns=net.host, snaplen=2048)
        return _upload(rec, net.b, net.a, net.addr_b, port, 64 * 1024)


@scenario(
    "tcp-router-reset",
    "A keep-alive connection through a router: the first request is answered; then the "
    "router's firewall starts rejecting the server's port with TCP resets (nft reject with tcp "
    "reset in its forward chain), and the client's second request is answered by a reset the "
    "router sends in the server's name. The server never saw that request. Captured on the "
    "client's link, where the server's packets arrive with TTL 63 (one hop) and the router's "
    "reset with 64.",
    findings=("reset-injected",),
    absent=(
        "reset-with-unread-data",
        "reset-mid-stream",
        "abortive-close",
        "reset-ignored",
        "connection-refused",
    ),
    isolated=False,
)
def router_reset(st: Stage) -> dict[str, Any]:
    port = 8080
    st.server_port = port

    def handler(conn: socket.socket) -> dict[str, Any]:
        first = conn.recv(100)
        conn.sendall(b"response-1\n")
        conn.settimeout(1.0)
        try:
            second = conn.recv(100)  # never comes: the router rejects it
        except TimeoutError:
            second = b""
        return {"requests": [r.decode() for r in (first, second) if r]}

    with routed_pair() as net:
        lst, client = _server_and_client(net.b, net.a, net.addr_b, port)
        try:
            server = _serve_once(lst, handler)
            with st.recorder(net.if_a, f"tcp port {port}", netns=net.a):
                client.connect((net.addr_b, port))
                client.sendall(b"request-1\n")
                answer = client.recv(100)
                reset_forwarded(net.router, port)
                client.sendall(b"request-2\n")
                error = None
                try:
                    client.recv(100)
                except OSError as exc:
                    error = exc_text(exc)
                client.close()
            srv = server.join()
        finally:
            lst.close()
    return {
        "answer_1": answer.decode(),
        "request_2_error": error,
        "server": srv,
        "firewall": f"nft in the router namespace, from after response 1: forwarded segments "
        f"to port {port} -> reject with tcp reset",
    }


@scenario(
    "tcp-late-response",
    "A keep-alive connection: the server answers request 1 after 1.5 s, the client gave up "
    "after 1 s and already sent request 2 on the same connection, so it takes the late answer "
    "to request 1 for the answer to request 2.",
    findings=("late-response",),
    absent=("reset-mid-stream",),
)
def late_response(st: Stage) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        r1 = conn.recv(100)
        time.sleep(1.5)
        conn.sendall(b"response-1\n")
        r2 = conn.recv(100)
        conn.sendall(b"response-2\n")
        conn.recv(100)
        return {"requests": [r1.decode(), r2.decode()]}

    with _loopback(st, handler) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.settimeout(1.0)
        c.sendall(b"request-1\n")
        try:
            first: bytes | str = c.recv(100)
        except TimeoutError as exc:
            first = exc_text(exc)
        c.sendall(b"request-2\n")
        c.settimeout(3.0)
        answer2 = _recv_exact(c, len(b"response-1\n"))
        _recv_exact(c, len(b"response-2\n"))
        c.close()
        srv = server.join()
    return {"request_1": first if isinstance(first, str) else first.decode(),
            "client_timeout_ms": 1000, "server_delay_ms": 1500,
            "answer_taken_for_request_2": answer2.decode(), "server": srv}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Port reuse


def _bound_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LOOP4, port))
    return s


def _reuse(st: Stage, stale: bool) -> dict[str, Any]:
    lst, port = _lo_listener(st)
    cport_holder = socket.socket()
    cport_holder.bind((LOOP4, 0))
    cport = cport_holder.getsockname()[1]
    cport_holder.close()
    app: dict[str, Any] = {"client_port": cport}

    def handler(conn: socket.socket) -> dict[str, Any]:
        out = _request_response(conn)
        with contextlib.suppress(OSError):
            conn.recv(100)
        return out

    with st.recorder("lo", f"tcp port {port}"):
        server = _serve_once(lst, handler)
        c = _bound_client(cport)
        c.connect((LOOP4, port))
        c.sendall(REQUEST)
        _recv_exact(c, len(RESPONSE))
        _abort(c)
        app["first"] = {"close": "SO_LINGER {1,0}", "server": server.join()}
        time.sleep(0.1)
        server = _serve_once(lst, handler)
        c = _bound_client(cport)
        t0 = time.perf_counter()
        c.connect((LOOP4, port))
        app["second_connect_ms"] = _ms(t0)
        c.sendall(b"second " + REQUEST)
        _recv_exact(c, len(RESPONSE))
        if stale:
            time.sleep(0.2)  # the first incarnation's segments are in the file by now
            app["replayed"] = _replay_old_segment(st.path, cport, port)
            time.sleep(0.2)
        c.close()
        app["second"] = {"close": "close()", "server": server.join()}
    lst.close()
    return app


def _tcp_checksum(ip: bytes) -> bytes:
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    seg = bytearray(ip[ihl:total])
    seg[16:18] = b"\0\0"
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    data = pseudo + bytes(seg) + (b"\0" if len(seg) % 2 else b"")
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    seg[16:18] = struct.pack("!H", ~s & 0xFFFF)
    return ip[:ihl] + bytes(seg)


def _replay_old_segment(path: Path, cport: int, sport: int) -> dict[str, Any]:
    """Send again, through a raw socket, the first incarnation's first data segment."""
    cap = wire.read(path)
    old = next((p for p in cap.packets if p.kind == "tcp" and p.sport == cport and p.payload), None)
    if old is None:
        raise LabError("the first incarnation's data segment is not in the capture yet")
    pkt = _tcp_checksum(old.ip)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        raw.sendto(pkt, (LOOP4, 0))
    finally:
        raw.close()
    return {"seq": old.seq, "payload_bytes": len(old.payload), "via": "raw socket (IPPROTO_RAW)"}


@scenario(
    "tcp-port-reuse",
    "The client aborts its connection with SO_LINGER {1, 0} and reconnects at once from the "
    "same port (SO_REUSEADDR): a second incarnation of the same 4-tuple.",
    findings=("port-reused", "abortive-close"),
    absent=("stale-segment",),
)
def port_reuse(st: Stage) -> dict[str, Any]:
    return _reuse(st, stale=False)


@scenario(
    "tcp-stale-segment",
    "As tcp-port-reuse, then a copy of the first incarnation's first data segment is replayed "
    "through a raw socket while the second incarnation is open: an old duplicate.",
    findings=("port-reused", "stale-segment"),
)
def stale_segment(st: Stage) -> dict[str, Any]:
    return _reuse(st, stale=True)


# --------------------------------------------------------------------------------------------
# TLS


@contextlib.contextmanager
def _certs() -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="tcpdiag-lab-") as tmp:
        yield make_certs(Path(tmp))


def _tls_ok(st: Stage, version: ssl.TLSVersion, clean: bool, tool: Tool) -> dict[str, Any]:
    with _certs() as certs:
        lst, port = _lo_listener(st)
        sctx = server_context(certs, minimum=version, maximum=version)
        server = TlsServer(sctx, lst, response=RESPONSE, clean_close=clean, read_after=not clean)
        with st.recorder("lo", f"tcp port {port}", tool=tool):
            server.start()
            t0 = time.perf_counter()
            raw = socket.create_connection((LOOP4, port))
            tls = client_context(certs).wrap_socket(raw, server_hostname="tcpdiag.test")
            hs = _ms(t0)
            ver, cipher = tls.version(), (tls.cipher() or ("",))[0]
            tls.sendall(REQUEST)
            got = _recv_exact(tls, len(RESPONSE))
            app: dict[str, Any] = {"errno": None, "exception": None}
            try:
                if clean:
                    tls.unwrap().close()
                else:
                    tls.close()
            except (OSError, ssl.SSLError) as exc:
                app.update(errno=_errno(exc), exception=exc_text(exc))
            srv = server.join()
            time.sleep(0.1)
        lst.close()
    return {**app, "handshake_ms": hs, "version": ver, "cipher": cipher,
            "close_notify_sent": clean, "bytes_sent": len(REQUEST), "bytes_received": len(got),
            "server": {**srv.as_dict(), "notes": srv.notes}}  # fmt: skip


@scenario(
    "tls12-ok",
    "A TLS 1.2 handshake, one request and response, close_notify from both sides (unwrap()) "
    "and FINs. pcapng (dumpcap).",
    absent=(
        "tls-alert",
        "tls-handshake-incomplete",
        "tls-flight-incomplete",
        "tls-record-truncated",
        "abortive-close",
        "reset-mid-stream",
    ),
    ext="pcapng",
)
def tls12_ok(st: Stage) -> dict[str, Any]:
    return _tls_ok(st, ssl.TLSVersion.TLSv1_2, clean=True, tool="dumpcap")


@scenario(
    "tls13-ok",
    "A TLS 1.3 handshake, one request and response, close_notify from both sides (unwrap()).",
    absent=(
        "tls-handshake-incomplete",
        "tls-flight-incomplete",
        "tls-record-truncated",
        "abortive-close",
        "reset-mid-stream",
    ),
)
def tls13_ok(st: Stage) -> dict[str, Any]:
    return _tls_ok(st, ssl.TLSVersion.TLSv1_3, clean=True, tool="tcpdump")


@scenario(
    "tls12-no-close-notify",
    "A successful TLS 1.2 exchange closed as SSLSocket.close() does, without close_notify: the "
    "handshake is fine (near miss for every handshake finding).",
    absent=("tls-handshake-incomplete", "tls-flight-incomplete", "tls-record-truncated"),
)
def tls12_no_close_notify(st: Stage) -> dict[str, Any]:
    return _tls_ok(st, ssl.TLSVersion.TLSv1_2, clean=False, tool="tcpdump")


def _tls_fail(
    st: Stage,
    sctx_kw: dict[str, Any],
    cctx_kw: dict[str, Any],
    trust: bool = True,
    nano: bool = False,
) -> dict[str, Any]:
    with _certs() as certs:
        lst, port = _lo_listener(st)
        server = TlsServer(server_context(certs, **sctx_kw), lst, response=RESPONSE)
        app: dict[str, Any] = {"handshake_ok": True, "errno": None, "exception": None}
        with st.recorder("lo", f"tcp port {port}", nano=nano):
            server.start()
            raw = socket.create_connection((LOOP4, port))
            t0 = time.perf_counter()
            try:
                cctx = client_context(certs if trust else None, **cctx_kw)
                tls = cctx.wrap_socket(raw, server_hostname="tcpdiag.test")
                tls.close()
            except (OSError, ssl.SSLError) as exc:
                app.update(handshake_ok=False, errno=_errno(exc), exception=exc_text(exc))
                raw.close()
            app["latency_ms"] = _ms(t0)
            srv = server.join()
            time.sleep(0.05)
        lst.close()
    return {**app, "server": srv.as_dict()}


@scenario(
    "tls-unknown-ca",
    "The client does not trust the server's CA: it sends a plaintext fatal alert unknown_ca "
    "(48) during a TLS 1.3 handshake.",
    findings=("tls-alert",),
    absent=("tls-version-mismatch", "tls-no-server-hello"),
)
def tls_unknown_ca(st: Stage) -> dict[str, Any]:
    return _tls_fail(st, {}, {}, trust=False)


@scenario(
    "tls-version-mismatch",
    "The server requires TLS 1.3, the client offers at most TLS 1.2: the server answers the "
    "ClientHello with fatal alert protocol_version (70).",
    findings=("tls-version-mismatch", "tls-alert"),
)
def tls_version_mismatch(st: Stage) -> dict[str, Any]:
    return _tls_fail(st, {"minimum": ssl.TLSVersion.TLSv1_3}, {"maximum": ssl.TLSVersion.TLSv1_2})


@scenario(
    "tls-no-shared-cipher",
    "TLS 1.2 with disjoint cipher suites: the server answers with fatal alert "
    "handshake_failure (40). Nanosecond pcap.",
    findings=("tls-alert",),
    absent=("tls-version-mismatch", "tls-no-server-hello"),
)
def tls_no_shared_cipher(st: Stage) -> dict[str, Any]:
    tls12 = ssl.TLSVersion.TLSv1_2
    return _tls_fail(
        st,
        {"maximum": tls12, "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"},
        {"maximum": tls12, "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"},
        nano=True,
    )


@scenario(
    "tls-no-server-hello",
    "The server side reads the ClientHello and resets the connection without a word (as a "
    "middlebox that blocks on SNI does): no ServerHello; the client's handshake fails with "
    "ECONNRESET.",
    findings=("tls-no-server-hello",),
    absent=("tls-alert", "tls-version-mismatch", "tls-flight-incomplete"),
)
def tls_no_server_hello(st: Stage) -> dict[str, Any]:
    def handler(conn: socket.socket) -> dict[str, Any]:
        hello = conn.recv(65536)
        time.sleep(0.05)
        _abort(conn)
        return {"bytes_received": len(hello), "records": record_labels(split_records(hello))}

    with _certs() as certs:
        lst, port = _lo_listener(st)
        app: dict[str, Any] = {"handshake_ok": True, "errno": None, "exception": None}
        with st.recorder("lo", f"tcp port {port}"):
            server = _serve_once(lst, handler)
            raw = socket.create_connection((LOOP4, port))
            t0 = time.perf_counter()
            try:
                client_context(certs).wrap_socket(raw, server_hostname="tcpdiag.test").close()
            except (OSError, ssl.SSLError) as exc:
                app.update(handshake_ok=False, errno=_errno(exc), exception=exc_text(exc))
                raw.close()
            app["latency_ms"] = _ms(t0)
            srv = server.join()
        lst.close()
    return {**app, "server": srv}


@scenario(
    "tls-client-gives-up",
    "A TLS 1.2 client receives the server's first flight and closes (FIN) without sending its "
    "own second flight; OpenSSL answers that EOF with the fatal alert decode_error (50).",
    findings=("tls-alert",),
    absent=("tls-flight-incomplete", "tls-version-mismatch", "tls-no-server-hello"),
)
def tls_client_gives_up(st: Stage) -> dict[str, Any]:
    def act(cli: MemoryClient, flight: list[bytes]) -> dict[str, Any]:
        time.sleep(0.2)
        cli.sock.shutdown(socket.SHUT_WR)
        reply, end = cli.drain()
        cli.sock.close()
        return {"second_flight_sent": False, "close": "FIN", "reply_bytes": len(reply),
                "reply_alerts": describe_alerts(reply), "connection_end": end}  # fmt: skip

    return _memory_client_run(st, act, complete=False)


@scenario(
    "tls-server-stalls",
    "The server sends its first flight, receives the client's second flight and then never "
    "answers (a hung server); the client's handshake times out after 1 s and it closes without "
    "an alert: the handshake stops with nothing on the wire to explain it.",
    findings=("tls-handshake-incomplete",),
    absent=("tls-alert", "tls-flight-incomplete", "tls-no-server-hello"),
)
def tls_server_stalls(st: Stage) -> dict[str, Any]:
    tls12 = ssl.TLSVersion.TLSv1_2
    with _certs() as certs:
        sctx = server_context(certs, maximum=tls12)

        def handler(conn: socket.socket) -> dict[str, Any]:
            peer = MemoryTls(conn, sctx, server_side=True)
            flight = peer.next_flight()
            peer.send(flight)
            got = _recv_all(conn)  # the client's second flight, never processed; then EOF
            return {"first_flight_bytes": len(flight), "unprocessed_bytes": len(got),
                    "stalled": True}  # fmt: skip

        lst, port = _lo_listener(st)
        app: dict[str, Any] = {"handshake_ok": True, "errno": None, "exception": None}
        with st.recorder("lo", f"tcp port {port}"):
            server = _serve_once(lst, handler)
            raw = socket.create_connection((LOOP4, port))
            raw.settimeout(1.0)
            t0 = time.perf_counter()
            tls = client_context(certs, maximum=tls12).wrap_socket(
                raw, server_hostname="tcpdiag.test", do_handshake_on_connect=False
            )
            try:
                tls.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                app.update(handshake_ok=False, errno=_errno(exc), exception=exc_text(exc))
            app["latency_ms"] = _ms(t0)
            tls.close()
            srv = server.join()
        lst.close()
    return {**app, "client_timeout_ms": 1000, "server": srv}


def _memory_client_run(
    st: Stage, act: Callable[[MemoryClient, list[bytes]], dict[str, Any]], complete: bool
) -> dict[str, Any]:
    """A TLS 1.2 (ECDHE-ECDSA-AES128-GCM, P-256) non-buffered client against an OpenSSL server.

    ``act`` receives the client and the records of its second flight; with ``complete`` the
    whole flight is sent first and the handshake finished before ``act`` runs.
    """
    tls12 = ssl.TLSVersion.TLSv1_2
    with _certs() as certs:
        lst, port = _lo_listener(st)
        server = TlsServer(server_context(certs, maximum=tls12), lst, response=RESPONSE)
        cctx = client_context(certs, maximum=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        with st.recorder("lo", f"tcp port {port}"):
            server.start()
            sock = socket.create_connection((LOOP4, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cli = MemoryClient(sock, cctx)
            hello = cli.next_flight()
            cli.send(hello)
            flight = split_records(cli.next_flight())
            app: dict[str, Any] = {
                "client_hello_bytes": len(hello),
                "server_flight_bytes": cli.received,
                "second_flight": record_labels(flight),
            }
            if complete:
                cli.send(b"".join(flight))
                cli.next_flight()
                app["handshake_ok"] = cli.done
            app.update(act(cli, flight))
            app["bytes_sent"], app["bytes_received"] = cli.sent, cli.received
            srv = server.join()
            time.sleep(0.05)
        lst.close()
    return {**app, "server": srv.as_dict()}


def _send_and_drain(cli: MemoryClient, records: list[bytes], half: bool = False) -> dict[str, Any]:
    cli.send(b"".join(records))
    if half:
        cli.sock.shutdown(socket.SHUT_WR)
    reply, how = cli.drain()
    cli.sock.close()
    return {
        "records_on_wire": [
            {"type": CONTENT_TYPES.get(r[0], str(r[0])), "bytes": len(r)} for r in records
        ],
        "reply_bytes": len(reply),
        "reply_hex": reply.hex(" ") if len(reply) <= 64 else None,
        "reply_alerts": describe_alerts(reply),
        "connection_end": how,
        "errno": "ECONNRESET" if how == "rst" else None,
    }


@scenario(
    "tls-truncated-flight",
    "A non-buffered TLS 1.2 client loses most of its second flight from its send queue and "
    "sends only its last record, the 45-byte encrypted Finished, without ClientKeyExchange "
    "(75 B) and ChangeCipherSpec (6 B); the OpenSSL server answers with the 7-byte fatal alert "
    "unexpected_message and closes.",
    findings=("tls-flight-incomplete", "tls-alert"),
    absent=("tls-version-mismatch",),
)
def tls_truncated_flight(st: Stage) -> dict[str, Any]:
    return _memory_client_run(st, lambda cli, fl: _send_and_drain(cli, fl[-1:]), complete=False)


@scenario(
    "tls-flight-reversed",
    "Variant: the client sends its whole second flight in reverse order (Finished, "
    "ChangeCipherSpec, ClientKeyExchange); the server rejects the Finished with alert "
    "unexpected_message and, with bytes still unread, resets.",
    findings=("tls-flight-incomplete", "tls-alert"),
)
def tls_flight_reversed(st: Stage) -> dict[str, Any]:
    return _memory_client_run(st, lambda cli, fl: _send_and_drain(cli, fl[::-1]), complete=False)


@scenario(
    "tls-ccs-first",
    "Variant: ChangeCipherSpec sent before ClientKeyExchange (CCS, CKE, Finished); the server "
    "answers with the fatal alert unexpected_message and, with bytes still unread, resets.",
    findings=("tls-flight-incomplete", "tls-alert"),
)
def tls_ccs_first(st: Stage) -> dict[str, Any]:
    return _memory_client_run(
        st, lambda cli, fl: _send_and_drain(cli, [fl[1], fl[0], *fl[2:]]), complete=False
    )


@scenario(
    "tls-half-record",
    "Variant: only the first half of the ClientKeyExchange record, then FIN: the record is cut "
    "short, and OpenSSL answers the EOF with the fatal alert decode_error (50).",
    findings=("tls-record-truncated", "tls-alert"),
)
def tls_half_record(st: Stage) -> dict[str, Any]:
    def act(cli: MemoryClient, fl: list[bytes]) -> dict[str, Any]:
        return _send_and_drain(cli, [fl[0][: len(fl[0]) // 2]], half=True)

    return _memory_client_run(st, act, complete=False)


def _mid_record(cli: MemoryClient, how: str) -> dict[str, Any]:
    record = cli.encrypt(b"q" * 2000)
    part = record[: len(record) // 2]
    cli.send(part)
    time.sleep(0.05)
    if how == "rst":
        _abort(cli.sock)
        return {"record_bytes": len(record), "sent_of_record": len(part), "close": "RST"}
    cli.sock.shutdown(socket.SHUT_WR)
    reply, end = cli.drain()
    cli.sock.close()
    return {"record_bytes": len(record), "sent_of_record": len(part), "close": "FIN",
            "reply_bytes": len(reply), "connection_end": end}  # fmt: skip


@scenario(
    "tls-rst-mid-record",
    "After a complete TLS 1.2 handshake the client sends half of a 2029-byte application data "
    "record and resets the connection (SO_LINGER 0).",
    findings=("tls-record-truncated", "reset-mid-stream"),
    absent=("tls-handshake-incomplete", "tls-flight-incomplete"),
)
def tls_rst_mid_record(st: Stage) -> dict[str, Any]:
    return _memory_client_run(st, lambda cli, fl: _mid_record(cli, "rst"), complete=True)


@scenario(
    "tls-fin-mid-record",
    "After a complete TLS 1.2 handshake the client sends half of a 2029-byte application data "
    "record and then FIN (shutdown(SHUT_WR)).",
    findings=("tls-record-truncated",),
    absent=("tls-handshake-incomplete", "tls-flight-incomplete"),
)
def tls_fin_mid_record(st: Stage) -> dict[str, Any]:
    return _memory_client_run(st, lambda cli, fl: _mid_record(cli, "fin"), complete=True)


# --------------------------------------------------------------------------------------------
# Keep-alives, and what a capture itself can get wrong


@scenario(
    "tcp-keepalive",
    "An idle connection with SO_KEEPALIVE (TCP_KEEPIDLE 1 s, TCP_KEEPINTVL 1 s): the client's "
    "kernel probes with seq = snd_una - 1 and no payload, the server's kernel answers each.",
    findings=("keep-alive",),
    absent=("retransmission", "abortive-close", "zero-window"),
)
def keepalive(st: Stage) -> dict[str, Any]:
    with _loopback(st, _answer_then_eof) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        c.sendall(REQUEST)
        got = _recv_exact(c, len(RESPONSE))
        time.sleep(2.6)  # two probes, each answered
        c.close()
        srv = server.join()
        time.sleep(0.05)
    return {"keepalive_idle_s": 1, "idle_s": 2.6, "bytes_sent": len(REQUEST),
            "bytes_received": len(got), "server": srv}  # fmt: skip


def _bulk_exchange(st: Stage, size: int, **recorder: Any) -> dict[str, Any]:
    payload = bytes(range(256)) * (size // 256)

    def handler(conn: socket.socket) -> dict[str, Any]:
        req = conn.recv(65536)
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        return {"bytes_received": len(req), "bytes_sent": len(payload),
                "eof_seen": conn.recv(100) == b""}  # fmt: skip

    with _loopback(st, handler, **recorder) as (port, server):
        c = socket.create_connection((LOOP4, port))
        # Small segments, so the transfer is many packets even on loopback (MTU 64 KiB).
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(REQUEST)
        got = _recv_all(c)
        c.close()
        srv = server.join()
        time.sleep(0.05)
    return {"bytes_sent": len(REQUEST), "bytes_received": len(got), "server": srv}


@scenario(
    "tcp-snaplen-truncated",
    "A 64 KiB response recorded with a 96-byte snap length (tcpdump -s 96): every data "
    "segment is cut after its headers, so the payload is not in the capture.",
    findings=("capture-snaplen-truncated",),
    absent=("previous-segment-lost", "retransmission", "abortive-close"),
)
def snaplen_truncated(st: Stage) -> dict[str, Any]:
    out = _bulk_exchange(st, 65536, snaplen=96)
    out["snaplen"] = 96
    return out


def _frames_of(path: Path) -> list[tuple[int, Any]]:
    """(frame number, decoded record) for every packet of a capture, with tcpdiag's reader."""
    from tcpdiag.capture import open_capture
    from tcpdiag.decode import Decoder

    decoder = Decoder()
    with open_capture(path) as cap:
        return [(raw.frame, decoder.decode(raw)) for raw in cap]


def _pcap_records(data: bytes) -> tuple[bytes, list[bytes]]:
    """A little-endian classic pcap (what tcpdump writes here): header and whole records."""
    header, pos, records = data[:24], 24, []
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], "little")
        records.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return header, records


@scenario(
    "capture-loss",
    "A real 64 KiB transfer, then one server data segment removed from the file (as a "
    "capture point that dropped it would): the receiver's ACKs cover bytes the capture never "
    "saw. Derived from the recording by tcpdiag.lab.scenarios.capture_loss.",
    findings=("previous-segment-lost", "acked-unseen-segment", "capture-packet-loss"),
    absent=("retransmission", "abortive-close"),
)
def capture_loss(st: Stage) -> dict[str, Any]:
    from tcpdiag.model import Segment

    out = _bulk_exchange(st, 65536)
    data = [
        frame
        for frame, rec in _frames_of(st.path)
        if isinstance(rec, Segment) and rec.sport == st.server_port and rec.length > 0
    ]
    dropped = data[len(data) // 2]
    header, records = _pcap_records(st.path.read_bytes())
    st.path.write_bytes(header + b"".join(r for i, r in enumerate(records, 1) if i != dropped))
    st.commands.append(f"then frame {dropped} (a server data segment) removed from the file")
    out["frame_removed"] = dropped
    return out


@scenario(
    "capture-damaged",
    "A real request/response recording whose last record is cut in the middle, as when the "
    "disk filled up or the capture was copied while being written. Derived from the recording "
    "by tcpdiag.lab.scenarios.capture_damaged.",
    findings=("capture-damaged",),
    absent=("connection-refused",),
)
def capture_damaged(st: Stage) -> dict[str, Any]:
    with _loopback(st, _answer_then_eof) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.sendall(REQUEST)
        got = _recv_exact(c, len(RESPONSE))
        c.close()
        srv = server.join()
        time.sleep(0.05)
    data = st.path.read_bytes()
    _, records = _pcap_records(data)
    cut = len(records[-1]) // 2
    st.path.write_bytes(data[: len(data) - cut])
    st.commands.append(f"then the last record cut short by {cut} bytes")
    return {"bytes_sent": len(REQUEST), "bytes_received": len(got), "server": srv,
            "records_recorded": len(records), "bytes_cut": cut}  # fmt: skip


@scenario(
    "tls-garbage-after-hello",
    "A real ClientHello (OpenSSL through ssl.MemoryBIO), then bytes that cannot start a TLS "
    "record, to a server that reads and closes.",
    findings=("tls-record-malformed",),
    absent=("tls-flight-incomplete",),
)
def tls_garbage_after_hello(st: Stage) -> dict[str, Any]:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="tcpdiag.test")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    garbage = b"\xff\xfe GARBAGE, not a TLS record \x00\x01"

    def handler(conn: socket.socket) -> dict[str, Any]:
        got = _recv_all(conn)
        return {"bytes_received": len(got)}

    with _loopback(st, handler) as (port, server):
        c = socket.create_connection((LOOP4, port))
        c.sendall(hello)
        time.sleep(0.02)
        c.sendall(garbage)
        c.shutdown(socket.SHUT_WR)
        srv = server.join()
        c.close()
        time.sleep(0.05)
    return {"client_hello_bytes": len(hello), "garbage_bytes": len(garbage), "server": srv}
