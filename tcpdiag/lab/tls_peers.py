"""TLS peers for the lab: real OpenSSL through Python's ``ssl`` module.

Well-behaved peers are ordinary ``SSLSocket``s. The misbehaving client is a non-buffered one built
on ``ssl.MemoryBIO`` + ``SSLObject``: OpenSSL produces the records, and the client decides which of
them reach the socket (only the last record of a flight, the flight reversed, half a record...),
like an application that loses part of its own send queue. Certificates (a CA and a leaf for
``tcpdiag.test``, EC P-256 to keep captures small) are generated at run time with the ``openssl``
command line tool.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.lab.netns import LabError, run

SERVER_NAME = "tcpdiag.test"

ALERT_NAMES = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    112: "unrecognized_name",
    116: "certificate_required",
}
CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path) -> Certs:
    """A CA and a leaf certificate signed by it, made with the openssl CLI."""
    d = directory
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
         "-days", "2", "-subj", "/CN=tcpdiag lab CA"])  # fmt: skip
    run(["openssl", "req", *ec, "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"),
         "-subj", f"/CN={SERVER_NAME}"])  # fmt: skip
    (d / "leaf.ext").write_text(f"subjectAltName=DNS:{SERVER_NAME}\n", encoding="ascii")
    run(["openssl", "x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"),
         "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "leaf.pem"),
         "-days", "2", "-extfile", str(d / "leaf.ext")])  # fmt: skip
    return Certs(d / "ca.pem", d / "leaf.pem", d / "leaf.key")


def server_context(
    certs: Certs,
    *,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    # P-256 key exchange: a 75-byte ClientKeyExchange record, as in a typical TLS 1.2 flight.
    ctx.set_ecdh_curve("prime256v1")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def client_context(
    certs: Certs | None,
    *,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """``certs=None``: trust no CA at all, so the server's certificate is rejected."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if certs is not None:
        ctx.load_verify_locations(certs.ca)
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def split_records(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    off = 0
    while off + 5 <= len(data):
        length = struct.unpack_from("!H", data, off + 3)[0]
        out.append(data[off : off + 5 + length])
        off += 5 + length
    if off < len(data):
        out.append(data[off:])
    return out


def describe_alerts(data: bytes) -> list[dict[str, Any]]:
    """Plaintext alert records at record boundaries of ``data`` (level, code, name)."""
    out: list[dict[str, Any]] = []
    for rec in split_records(data):
        if rec[0] == 21 and len(rec) == 7 and rec[3:5] == b"\x00\x02":
            level = {1: "warning", 2: "fatal"}.get(rec[5], str(rec[5]))
            out.append({"level": level, "code": rec[6], "name": ALERT_NAMES.get(rec[6], "?")})
    return out


def record_labels(records: list[bytes]) -> list[dict[str, Any]]:
    return [{"type": CONTENT_TYPES.get(r[0], str(r[0])), "bytes": len(r)} for r in records]


@dataclass
class ServerOutcome:
    """What the server application saw."""

    handshake_ok: bool = False
    version: str | None = None
    cipher: str | None = None
    received: bytes = b""
    sent: int = 0
    exception: str | None = None
    errno: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "handshake_ok": self.handshake_ok,
            "version": self.version,
            "cipher": self.cipher,
            "bytes_received": len(self.received),
            "bytes_sent": self.sent,
            "exception": self.exception,
            "errno": self.errno,
        }


def exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def errno_name(exc: BaseException) -> str | None:
    import errno as _errno

    if isinstance(exc, ssl.SSLError):
        return None  # its .errno is an SSL_ERROR_* code, not an errno
    num = getattr(exc, "errno", None)
    if isinstance(num, int) and num in _errno.errorcode:
        return _errno.errorcode[num]
    return None


class TlsServer:
    """One TLS connection served in a thread: handshake, read a request, answer, close.

    ``clean_close`` sends close_notify (``unwrap()``) before closing; without it the socket is
    closed as Python's ``SSLSocket.close()`` does, with no close_notify.
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        listener: socket.socket,
        *,
        response: bytes = b"",
        clean_close: bool = True,
        read_after: bool = False,
    ) -> None:
        self.ctx = ctx
        self.listener = listener
        self.response = response
        self.clean_close = clean_close
        self.read_after = read_after
        self.outcome = ServerOutcome()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> TlsServer:
        self.thread.start()
        return self

    def join(self, timeout: float = 10) -> ServerOutcome:
        self.thread.join(timeout)
        return self.outcome

    def _serve(self) -> None:
        out = self.outcome
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            out.exception, out.errno = exc_text(exc), errno_name(exc)
            conn.close()
            return
        out.handshake_ok = True
        out.version, out.cipher = tls.version(), (tls.cipher() or ("",))[0]
        try:
            out.received = tls.recv(65536)
            if self.response:
                tls.sendall(self.response)
                out.sent = len(self.response)
            if self.read_after:
                more = tls.recv(65536)
                out.notes.append(f"read after response: {len(more)} bytes")
            if self.clean_close:
                tls.unwrap().close()
            else:
                tls.close()
        except (OSError, ssl.SSLError) as exc:
            out.exception, out.errno = exc_text(exc), errno_name(exc)
            tls.close()


class MemoryTls:
    """A non-buffered TLS peer: OpenSSL makes the records, the caller sends what it chooses."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_side: bool = False) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=server_side,
            server_hostname=None if server_side else SERVER_NAME,
        )
        self.sent = 0
        self.received = 0
        self.done = False

    def step(self) -> bytes:
        """Advance the handshake with what has arrived; return the records OpenSSL produced."""
        try:
            self.obj.do_handshake()
            self.done = True
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def next_flight(self) -> bytes:
        """Feed the socket's bytes to OpenSSL until it has something to send (or finishes)."""
        while True:
            data = self.step()
            if data or self.done:
                return data
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LabError("server closed during the handshake")
            self.received += len(chunk)
            self.incoming.write(chunk)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.outgoing.read()

    def drain(self, timeout: float = 3.0) -> tuple[bytes, str]:
        """Read until the peer closes: (bytes, "fin" | "rst" | "timeout")."""
        self.sock.settimeout(timeout)
        got = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return got, "rst"
            except TimeoutError:
                return got, "timeout"
            if not chunk:
                return got, "fin"
            got += chunk
            self.received += len(chunk)


MemoryClient = MemoryTls
