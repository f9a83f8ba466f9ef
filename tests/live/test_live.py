"""Live capture on the loopback interface, for real: the packet source and `tcpdiag live`.

Root-only tests carry the `live` marker and are skipped without root. The error paths (bad
interface, no privilege, no libpcap, bad filter) need no privilege and always run.

No sleeps for synchronisation: the source is ready once `open()` returns, and the command says
`tcpdiag: capturing on ...` on stderr once its socket is bound. Every wait has a bounded
timeout, so a broken capture fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tcpdiag.capture import live as live_capture
from tcpdiag.capture.live import (
    FilterError,
    LivePermissionError,
    LiveSource,
    UnknownInterfaceError,
    compile_filter,
    without_loopback_outgoing,
)
from tcpdiag.cli.live import live as live_command
from tcpdiag.model import RawPacket

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="live capture needs root (CAP_NET_RAW)")
needs_libpcap = pytest.mark.skipif(
    live_capture.load_libpcap() is None, reason="libpcap is not installed"
)
ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # upper bound of any single wait in these tests


# -- helpers ------------------------------------------------------------------------------------


def free_port(family: socket.AddressFamily = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def reserved_closed_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a port but not listening: connecting to it is refused (RST), and
    nothing else can take the port while the test runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    return s


def refuse(host: str, port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()


def collect(src: LiveSource, want: int, timeout: float = WAIT) -> list[RawPacket]:
    """Packets until `want` have arrived, then whatever else comes within a short grace."""
    out: list[RawPacket] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out.extend(src.poll(0.2, 10_000))
    out.extend(src.poll(0.2, 10_000))  # nothing more may come: duplicates would show here
    return out


class EchoServer:
    """TCP echo on loopback, in a thread; each connection is echoed until EOF, then closed."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(WAIT)
        self.port: int = self.sock.getsockname()[1]
        self.received = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(WAIT)
                while data := conn.recv(1 << 20):
                    self.received += len(data)
                    conn.sendall(data[:16])

    def close(self) -> None:
        self.thread.join(WAIT)
        self.sock.close()

    def transfer(self, payload: bytes) -> None:
        """One connection: send `payload`, half-close, read until the server's FIN; then stop
        the server (its one connection is over, and every packet of it sent)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            while c.recv(1 << 16):
                pass
        self.close()


def echo_once(port: int, payload: bytes = b"hello") -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        assert c.recv(64) == payload[:16]
        c.shutdown(socket.SHUT_WR)
        assert c.recv(64) == b""


def make_cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class TlsServer:
    """A TLS server with a self-signed certificate; the test's client does not trust it."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(WAIT)
        self.port: int = self.sock.getsockname()[1]
        self.error: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            conn.settimeout(WAIT)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except ssl.SSLError as exc:
                self.error = exc.reason
            finally:
                conn.close()

    def close(self) -> None:
        self.thread.join(WAIT)
        self.sock.close()


def tls_client_rejects(port: int) -> None:
    """Handshake with default verification: the self-signed certificate is rejected, the
    client sends a fatal unknown_ca alert (in the clear, even in TLS 1.3)."""
    ctx = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="localhost")


class LiveProcess:
    """`tcpdiag live` as a subprocess, its stderr read by a thread (readiness, final line)."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "tcpdiag", "live", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        self.stderr_lines: list[str] = []
        self.stdout_text: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._out_lines: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(text)
            self._lines.put(text)
        self._lines.put(None)

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            text = line.decode(errors="replace")
            self.stdout_text.append(text)
            self._out_lines.put(text)

    def next_stdout_line(self, timeout: float = WAIT) -> str:
        try:
            return self._out_lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no output line in {timeout} s; stderr: {self.stderr_lines}")

    def wait_ready(self) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("tcpdiag: capturing on "):
                return line
        self.kill()
        pytest.fail(f"no readiness line; stderr: {self.stderr_lines}")

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        return self.wait()

    def wait(self, timeout: float = 60.0) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"tcpdiag live did not stop; stderr: {self.stderr_lines}")
        for reader in self._readers:
            reader.join(WAIT)
        return self.proc.returncode, "".join(self.stdout_text)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=WAIT)


class Tcpdump:
    """tcpdump beside tcpdiag, as the reference for packet counts."""

    def __init__(self, path: Path, bpf: str) -> None:
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-Z", "root", "--immediate-mode", "-B", "32768",
             "-s", "0", "-U", "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.path = path
        assert self.proc.stderr is not None
        self.stderr = ""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode()
            self.stderr += line
            if "listening on" in line or not line:
                break

    def stop(self, expect: int = 0) -> int:
        """Packets tcpdump captured (it must not have dropped any). tcpdump forgets what is
        still in its ring when SIGINT comes, so first wait (bounded) for `expect` records."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and sum(1 for _ in pcap_records(self.path)) < expect:
            self.proc.poll()  # a condition poll, not a sleep-and-hope
            time.sleep(0.05)
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=WAIT)
        self.stderr += err.decode()
        assert "\n0 packets dropped by kernel" in self.stderr, self.stderr
        return sum(1 for _ in pcap_records(self.path))


def pcap_records(path: Path) -> Iterator[tuple[int, int]]:
    """(caplen, orig_len) of each record of a little-endian classic pcap."""
    data = path.read_bytes()
    off = 24
    while off + 16 <= len(data):
        _s, _f, caplen, orig = struct.unpack_from("<IIII", data, off)
        yield caplen, orig
        off += 16 + caplen


def flow_by_server_port(report: dict[str, Any], port: int) -> list[dict[str, Any]]:
    flows = report["captures"][0]["flows"]
    return [f for f in flows if f["server"].rsplit(":", 1)[1] == str(port)]


def finding_names(flow: dict[str, Any]) -> list[str]:
    return [f["name"] for f in flow["findings"]]


def engine_ready() -> bool:
    try:
        import tcpdiag.engine  # noqa: F401
    except ImportError:
        return False
    return True


needs_engine = pytest.mark.skipif(not engine_ready(), reason="tcpdiag.engine not importable yet")


# -- error paths (no privilege needed) ----------------------------------------------------------


def test_unknown_interface_lists_the_ones_that_exist() -> None:
    result = CliRunner().invoke(live_command, ["-i", "nosuch0"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tcpdiag: error: no such interface 'nosuch0'; interfaces: ")
    assert "lo" in lines[0].split("interfaces: ")[1].split(", ")
    assert "Traceback" not in result.output


def test_no_privilege_is_one_line_with_the_setcap_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(socket, "socket", denied)  # the module's socket.socket is this one
    with pytest.raises(LivePermissionError):
        LiveSource("lo").open()
    result = CliRunner().invoke(live_command, ["-i", "lo"])
    assert result.exit_code == 2
    assert result.stderr == (
        "tcpdiag: error: capturing on lo needs root or CAP_NET_RAW (e.g. sudo setcap "
        "cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3)))\n"
    )


def test_filter_without_libpcap_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_capture, "load_libpcap", lambda: None)
    result = CliRunner().invoke(live_command, ["-i", "lo", "-f", "tcp port 443"])
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpdiag: error: a capture filter (-f) needs libpcap")
    assert result.stderr.count("\n") == 1


@pytest.mark.live
@needs_root
def test_without_cap_net_raw_for_real() -> None:
    """Root with CAP_NET_RAW dropped from the bounding set: the kernel refuses the socket."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    done = subprocess.run(
        ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw",
         sys.executable, "-m", "tcpdiag", "live", "-i", "lo"],
        capture_output=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "tcpdiag: error: capturing on lo needs root or CAP_NET_RAW (e.g. sudo setcap "
        "cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3)))\n"
    )
    assert done.stdout == b""


@needs_libpcap
def test_bad_filter_is_a_usage_error() -> None:
    with pytest.raises(FilterError, match="bad capture filter"):
        compile_filter("tcp port", 1)
    result = CliRunner().invoke(live_command, ["-i", "lo", "-f", "tcp prot 80"])
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpdiag: error: bad capture filter 'tcp prot 80'")


@needs_libpcap
def test_compiled_filter_is_classic_bpf() -> None:
    program = compile_filter("tcp port 443", 1)
    assert len(program) % 8 == 0 and len(program) >= 8
    raw_ip = compile_filter("tcp port 443", 101)  # cooked sockets: from the network header
    assert raw_ip != program


def test_loopback_outgoing_test_goes_before_the_program() -> None:
    """On `any`: loopback (device type 772) going out (packet type 4) is refused, anything
    else jumps to the first instruction of the program, which runs as compiled."""
    insn = struct.Struct("=HBBI")
    prefix = [
        (0x20, 0, 0, 0xFFFFF01C),  # A = the device's ARPHRD type
        (0x15, 0, 3, 772),  # loopback? else to the program
        (0x20, 0, 0, 0xFFFFF004),  # A = the packet type
        (0x15, 0, 1, 4),  # going out? else to the program
        (0x06, 0, 0, 0),  # refused
    ]
    assert all(i + 1 + jf == 5 for i, (_, _, jf, _) in enumerate(prefix) if jf)
    whole = without_loopback_outgoing(None)
    assert whole is not None
    assert list(insn.iter_unpack(whole)) == [*prefix, (0x06, 0, 0, 0xFFFFFFFF)]
    program = b"".join(insn.pack(0x06, 0, 0, k) for k in (7, 8))
    prefixed = without_loopback_outgoing(program)
    assert prefixed is not None and prefixed[5 * 8 :] == program
    assert without_loopback_outgoing(program * 2045) is not None  # 4,095 instructions
    assert without_loopback_outgoing(program * 2046) is None  # over the kernel's 4,096


def test_unknown_interface_in_the_source() -> None:
    with pytest.raises(UnknownInterfaceError, match="interfaces: "):
        LiveSource("nosuch0").open()


def test_tshark_engine_without_pyshark_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyshark", None)  # import pyshark -> ImportError
    result = CliRunner().invoke(live_command, ["-i", "lo", "--engine", "tshark"])
    assert result.exit_code == 2
    assert "pip install 'tcpdiag[pyshark]'" in result.stderr
    assert result.stderr.count("\n") == 1


# -- the packet source on lo --------------------------------------------------------------------


@pytest.mark.live
@needs_root
@needs_libpcap
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_refused_connection_is_exactly_two_packets(host: str) -> None:
    closed = reserved_closed_port(host)
    port = closed.getsockname()[1]
    with closed, LiveSource("lo", f"tcp port {port}") as src:
        assert src.ready.is_set()
        refuse(host, port)
        packets = collect(src, 2)
        stats = src.update_stats()
    assert [p.frame for p in packets] == [1, 2]  # SYN, RST/ACK: once each, no loopback twin
    assert all(p.linktype == 1 and len(p.data) == p.orig_len for p in packets)
    assert stats.kernel_packets == 2 and stats.kernel_drops == 0
    now = time.time_ns()
    assert all(now - 10**10 < p.ts_ns <= now for p in packets)
    assert packets[0].ts_ns <= packets[1].ts_ns


@pytest.mark.live
@needs_root
@needs_libpcap
def test_one_datagram_each_way_and_frames_numbered_from_one() -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    with a, b, LiveSource("lo", f"udp and (port {pa} or port {pb})") as src:
        a.sendto(b"ping", ("127.0.0.1", pb))
        b.settimeout(5)
        assert b.recv(16) == b"ping"
        b.sendto(b"pong!", ("127.0.0.1", pa))
        packets = collect(src, 2)
    assert [p.frame for p in packets] == [1, 2]
    assert [p.data[-4:] for p in packets] == [b"ping", b"ong!"]
    assert [p.orig_len for p in packets] == [14 + 20 + 8 + 4, 14 + 20 + 8 + 5]


@pytest.mark.live
@needs_root
@needs_libpcap
def test_largest_loopback_frame_is_not_truncated() -> None:
    """A 65,535-byte IPv4 packet is a 65,549-byte frame on lo: libpcap-based sockets cut it."""
    port = free_port()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    payload = b"\xab" * (65535 - 28)
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    lo = socket.inet_aton("127.0.0.1")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 65535, 1, 0, 64, 17, 0, lo, lo)
    with raw, LiveSource("lo", f"udp dst port {port}") as src:
        raw.sendto(ip + udp, ("127.0.0.1", 0))
        packets = collect(src, 1)
    assert [(p.frame, len(p.data), p.orig_len) for p in packets] == [(1, 65549, 65549)]
    assert packets[0].data[-16:] == b"\xab" * 16


@pytest.mark.live
@needs_root
@needs_libpcap
def test_bulk_transfer_matches_tcpdump_frame_for_frame(tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    server = EchoServer()
    bpf = f"tcp port {server.port}"
    dump = Tcpdump(tmp_path / "ref.pcap", bpf)
    with LiveSource("lo", bpf) as src:
        server.transfer(os.urandom(200_000))
        # The transfer is over (the server's FIN was read): everything is queued by now.
        packets = collect(src, 0)
        stats = src.update_stats()
    dump.stop(expect=len(packets))
    assert server.received == 200_000
    assert stats.kernel_drops == 0
    assert all(len(p.data) == p.orig_len for p in packets), "a frame was truncated"
    assert [p.orig_len for p in packets] == [orig for _, orig in pcap_records(dump.path)]
    assert [p.frame for p in packets] == list(range(1, len(packets) + 1))
    assert len({p.data for p in packets}) == len(packets), "a packet was captured twice"
    assert max(p.orig_len for p in packets) > 32_000  # big GSO frames were really exercised
    assert sum(p.orig_len for p in packets) > 200_000


@pytest.mark.live
@needs_root
def test_kernel_drops_are_counted_when_the_buffer_overflows() -> None:
    server = EchoServer()
    # The smallest buffer the kernel allows, and nobody reading it while 8 MB go by.
    with LiveSource("lo", None, buffer_size=1024) as src:
        server.transfer(b"\0" * 8_000_000)
        got = 0
        while batch := src.poll(0.2, 10_000):
            got += len(batch)
        stats = src.update_stats()
    assert stats.kernel_drops > 0
    assert stats.kernel_packets == got + stats.kernel_drops


@pytest.mark.live
@needs_root
def test_stop_wakes_a_blocked_poll() -> None:
    with LiveSource("lo", None) as src:
        threading.Timer(0.2, src.stop).start()
        started = time.monotonic()
        while not src.stopped and time.monotonic() - started < WAIT:
            src.poll(None)  # returns early only when other loopback traffic comes in
        assert time.monotonic() - started < 5
        assert src.stopped
        assert list(src) == []


@pytest.mark.live
@needs_root
@needs_libpcap
def test_any_interface_is_cooked_and_sees_loopback_once() -> None:
    closed = reserved_closed_port()
    port = closed.getsockname()[1]
    with closed, LiveSource("any", f"tcp port {port}") as src:
        refuse("127.0.0.1", port)
        packets = collect(src, 2)
    assert [p.frame for p in packets] == [1, 2]
    assert all(p.linktype == 113 for p in packets)  # LINKTYPE_LINUX_SLL
    # SLL header: packet type (0: to us), ARPHRD_LOOPBACK, address length, address, protocol.
    assert [struct.unpack_from("!HHH8sH", p.data) for p in packets] == [
        (0, 772, 6, bytes(8), 0x0800)
    ] * 2
    assert [p.orig_len for p in packets] == [16 + 60, 16 + 40]  # SYN with options, RST/ACK


# -- the command, end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_cert(tmp_path_factory.mktemp("cert"))


def run_scenarios(
    cert: tuple[Path, Path], extra: list[str], tmp_path: Path
) -> tuple[int, str, LiveProcess, dict[str, int], int | None]:
    """Refused + TLS unknown_ca + healthy echo under `tcpdiag live`, with tcpdump beside it."""
    closed = reserved_closed_port()
    refused_port = closed.getsockname()[1]
    tls = TlsServer(*cert)
    echo = EchoServer()
    ports = {"refused": refused_port, "tls": tls.port, "echo": echo.port}
    bpf = " or ".join(f"tcp port {p}" for p in ports.values())
    dump = Tcpdump(tmp_path / "ref.pcap", bpf) if shutil.which("tcpdump") else None
    proc = LiveProcess(["-i", "lo", "-f", bpf, *extra])
    try:
        ready = proc.wait_ready()
        assert ready == f"tcpdiag: capturing on lo (filter: {bpf})"
        refuse("127.0.0.1", refused_port)
        tls_client_rejects(tls.port)
        echo_once(echo.port)
        tls.close()
        echo.close()
        closed.close()
        code, out = proc.stop()
        captured = _captured(proc.stderr_lines)
        reference = dump.stop(expect=captured) if dump else None
    finally:
        with contextlib.suppress(Exception):
            proc.kill()
    assert tls.error is not None and "UNKNOWN_CA" in tls.error.upper()
    return code, out, proc, ports, reference


def _captured(stderr_lines: list[str]) -> int:
    for line in stderr_lines:
        if line.endswith("dropped by the kernel") and " packets captured, " in line:
            return int(line.split()[1])
    return 0


def check_report(report: dict[str, Any], ports: dict[str, int], reference: int | None) -> None:
    cap = report["captures"][0]
    assert cap["path"] == "live:lo"
    if reference is not None:
        assert cap["packets"] == reference, "tcpdiag and tcpdump saw different packet counts"
    (refused,) = flow_by_server_port(report, ports["refused"])
    assert finding_names(refused).count("connection-refused") == 1
    assert refused["packets"] == {"client": 1, "server": 1}  # SYN, RST/ACK: no duplicates
    assert refused["state"] == "REJ"
    (tls,) = flow_by_server_port(report, ports["tls"])
    alerts = [f for f in tls["findings"] if f["name"] == "tls-alert"]
    assert alerts, tls["findings"]
    assert any("unknown_ca" in f["message"] for f in alerts), alerts
    assert tls["tls"] is not None
    assert any(
        a["description"] == "unknown_ca" and a["from"] == "client" for a in tls["tls"]["alerts"]
    )
    (echo,) = flow_by_server_port(report, ports["echo"])
    assert not [f for f in echo["findings"] if f["severity"] == "error"], echo["findings"]
    assert echo["bytes"] == {"client": 5, "server": 5}
    for flow in (refused, tls, echo):
        assert 1 <= flow["first_frame"] <= flow["last_frame"] <= cap["packets"]
    total = sum(f["packets"]["client"] + f["packets"]["server"] for f in cap["flows"])
    assert total == cap["packets"]


@pytest.mark.live
@needs_root
@needs_libpcap
@needs_engine
def test_live_json_diagnoses_real_failures_and_round_trips(
    cert: tuple[Path, Path], tmp_path: Path
) -> None:
    out_pcap = tmp_path / "live.pcap"
    code, out, proc, ports, reference = run_scenarios(
        cert, ["--format", "json", "-w", str(out_pcap)], tmp_path
    )
    assert code == 0, proc.stderr_lines
    report = json.loads(out)
    check_report(report, ports, reference)
    assert any(
        line.startswith(f"tcpdiag: {report['captures'][0]['packets']} packets captured, 0 dropped")
        for line in proc.stderr_lines
    ), proc.stderr_lines
    # The pcap written as it went reads back to the same diagnosis.
    records = list(pcap_records(out_pcap))
    assert len(records) == report["captures"][0]["packets"]
    assert all(caplen == orig for caplen, orig in records)
    analyzed = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "analyze", str(out_pcap), "--format", "json"],
        capture_output=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert analyzed.returncode == 0, analyzed.stderr.decode()
    again = json.loads(analyzed.stdout)

    def essence(rep: dict[str, Any]) -> list[Any]:
        return [
            (f["id"], f["client"], f["server"], f["state"], f["packets"],
             sorted((x["name"], x["severity"], tuple(x["frames"])) for x in f["findings"]))
            for f in rep["captures"][0]["flows"]
        ]  # fmt: skip

    assert essence(again) == essence(report)
    assert again["summary"] == report["summary"]


@pytest.mark.live
@needs_root
@needs_libpcap
@needs_engine
def test_live_jsonl_streams_each_flow_as_it_finishes() -> None:
    closed = reserved_closed_port()
    port = closed.getsockname()[1]
    # A closed flow lingers min(--idle-timeout, 60 s) of capture time before it is final.
    proc = LiveProcess(
        ["-i", "lo", "-f", f"tcp port {port}", "--format", "jsonl", "--idle-timeout", "1"]
    )
    try:
        proc.wait_ready()
        refuse("127.0.0.1", port)
        # The refused flow is printed while the capture still runs (flows finish in capture
        # time; the command ticks the engine once a second when traffic is quiet).
        first = json.loads(proc.next_stdout_line())
        assert proc.proc.poll() is None, "the flow should stream before the capture ends"
        assert first["state"] == "REJ" and first["capture"] == "live:lo"
        assert finding_names(first) == ["connection-refused"]
        code, rest = proc.stop()
    finally:
        closed.close()
        proc.kill()
    assert code == 0
    lines = rest.strip().splitlines()
    assert len(lines) == 2  # the streamed flow (once), then the summary
    summary = json.loads(lines[-1])
    assert summary["summary"]["flows"] == 1
    assert summary["summary"]["findings"] == {"connection-refused": 1}


@pytest.mark.live
@needs_root
@needs_libpcap
@needs_engine
def test_count_stops_the_capture_and_fail_on_sets_the_exit_code() -> None:
    closed = reserved_closed_port()
    port = closed.getsockname()[1]
    proc = LiveProcess(
        ["-i", "lo", "-f", f"tcp port {port}", "-c", "2", "--format", "json", "--fail-on", "error"]
    )
    try:
        proc.wait_ready()
        refuse("127.0.0.1", port)
        code, out = proc.wait(timeout=WAIT)
    finally:
        closed.close()
        proc.kill()
    assert code == 1  # connection-refused is an error
    report = json.loads(out)
    assert report["captures"][0]["packets"] == 2
    assert report["summary"]["findings"] == {"connection-refused": 1}


@pytest.mark.live
@needs_root
@needs_libpcap
@needs_engine
def test_snaplen_reaches_the_capture(tmp_path: Path) -> None:
    """`--snaplen 100`: every packet kept to 100 bytes (the written pcap says so, the report
    finds the cut), with the original lengths intact; a small `-B` does not get in the way (its
    effect, kernel drops, is `test_kernel_drops_are_counted_when_the_buffer_overflows`)."""
    out_pcap = tmp_path / "cut.pcap"
    server = EchoServer()
    proc = LiveProcess(
        ["-i", "lo", "-f", f"tcp port {server.port}", "--snaplen", "100", "-B", "1024",
         "--format", "json", "-w", str(out_pcap), "--idle-timeout", "1"]
    )  # fmt: skip
    try:
        proc.wait_ready()
        server.transfer(b"x" * 1000)
        time.sleep(0.5)
        code, out = proc.stop()
    finally:
        proc.kill()
    assert code == 0, proc.stderr_lines
    assert struct.unpack_from("<I", out_pcap.read_bytes(), 16) == (100,)  # pcap snaplen
    records = list(pcap_records(out_pcap))
    assert len(records) >= 8 and all(caplen <= 100 for caplen, _ in records)
    assert max(orig for _, orig in records) >= 14 + 20 + 20 + 1000  # the echo, 1000 bytes
    report = json.loads(out)
    assert report["summary"]["findings"].get("capture-snaplen-truncated") == 1
    assert server.received == 1000


@pytest.mark.live
@needs_root
@needs_engine
def test_duration_stops_an_idle_capture_with_an_empty_report(tmp_path: Path) -> None:
    out_pcap = tmp_path / "empty.pcap"
    port = free_port()
    started = time.monotonic()
    proc = LiveProcess(
        ["-i", "lo", "-f", f"tcp port {port}", "--duration", "1", "--format", "json",
         "-w", str(out_pcap)]
    )  # fmt: skip
    proc.wait_ready()
    code, out = proc.wait(timeout=WAIT)
    assert code == 0
    assert time.monotonic() - started < WAIT
    report = json.loads(out)
    assert report["captures"][0]["packets"] == 0
    assert report["captures"][0]["flows"] == []
    assert out_pcap.stat().st_size == 24  # a valid, empty pcap


@pytest.mark.live
@needs_root
@needs_libpcap
@needs_engine
def test_text_streams_findings_and_sigterm_is_a_normal_stop() -> None:
    closed = reserved_closed_port()
    port = closed.getsockname()[1]
    proc = LiveProcess(["-i", "lo", "-f", f"tcp port {port}", "--no-color", "--idle-timeout", "1"])
    try:
        proc.wait_ready()
        refuse("127.0.0.1", port)
        head = proc.next_stdout_line()
        assert head.startswith("flow 1  127.0.0.1:") and f"-> 127.0.0.1:{port}  REJ" in head
        assert proc.next_stdout_line().lstrip().startswith("error   connection-refused: ")
        code, out = proc.stop(signal.SIGTERM)
    finally:
        closed.close()
        proc.kill()
    assert code == 0
    assert "connection-refused" in out  # the final report too
    assert "Traceback" not in "\n".join(proc.stderr_lines)
    assert proc.stderr_lines[-1] == "tcpdiag: 2 packets captured, 0 dropped by the kernel"


@pytest.mark.live
@pytest.mark.tshark
@needs_root
@needs_engine
def test_tshark_engine_sees_the_same_refused_flow() -> None:
    pytest.importorskip("pyshark")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    closed = reserved_closed_port()
    port = closed.getsockname()[1]
    proc = LiveProcess(
        ["-i", "lo", "-f", f"tcp port {port}", "--engine", "tshark", "-c", "2", "--format",
         "json"]
    )  # fmt: skip
    try:
        proc.wait_ready()
        refuse("127.0.0.1", port)
        code, out = proc.wait(timeout=60)
    finally:
        closed.close()
        proc.kill()
    assert code == 0, proc.stderr_lines
    report = json.loads(out)
    assert report["captures"][0]["packets"] == 2
    assert report["summary"]["findings"] == {"connection-refused": 1}


# -- pieces without a capture -------------------------------------------------------------------


def test_epoch_text_to_nanoseconds_exactly() -> None:
    assert live_capture._epoch_ns("1795320935.775775154") == 1_795_320_935_775_775_154
    assert live_capture._epoch_ns("1795320935.5") == 1_795_320_935_500_000_000
    assert live_capture._epoch_ns("1795320935") == 1_795_320_935_000_000_000


class _Layer:
    def __init__(self, fields: object) -> None:
        self._fields_dict = fields


def test_pyshark_ek_packet_fields() -> None:
    """The shape pyshark 0.6 gives in EK mode with include_raw (checked against tshark 4.0)."""
    packet = type("P", (), {})()
    packet.frame_info = _Layer(
        {
            "frame_frame_time_epoch": "1795321323.384678187",
            "frame_frame_len": "74",
            "frame_frame_encap_type": "1",
        }
    )
    packet.frame_raw = _Layer("0011ff")
    assert live_capture._pyshark_fields(packet) == (
        b"\x00\x11\xff",
        1_795_321_323_384_678_187,
        74,
        1,
    )


def test_streamed_text_escapes_packet_derived_strings() -> None:
    from tcpdiag.cli.live import _flow_text
    from tcpdiag.result import Finding, FlowResult, Severity

    flow = FlowResult(
        id=7,
        client="10.0.0.1:5000",
        server="10.0.0.2:443",
        ip_version=4,
        client_inferred=False,
        first_frame=1,
        last_frame=9,
        start=0.0,
        end=1.0,
        state="SF",
        verdict="TLS failed for sni evil\x1b]52;c;AAAA\x07",
        findings=[
            Finding("tls-alert", Severity.ERROR, "alert \x1b[2J", frames=tuple(range(1, 12)))
        ],
    )
    text = _flow_text(flow)
    assert "\x1b" not in text and "\x07" not in text
    assert text.splitlines()[0].startswith("flow 7  10.0.0.1:5000 -> 10.0.0.2:443  SF  TLS")
    assert text.splitlines()[1].startswith("  error   tls-alert: alert ")
    assert text.endswith("(frames 1, 2, 3, 4, 5, 6, 7, 8, ...)")


@needs_libpcap
def test_tshark_engine_checks_the_filter_first() -> None:
    """dumpcap says "Capturing on" before it rejects a bad filter: check it before."""
    pytest.importorskip("pyshark")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    result = CliRunner().invoke(live_command, ["-i", "lo", "--engine", "tshark", "-f", "tcp prot"])
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpdiag: error: bad capture filter 'tcp prot'")
