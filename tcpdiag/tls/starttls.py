"""Plaintext protocols that upgrade to TLS in the middle of a connection (STARTTLS).

Theory of operation: the watcher sees both directions' plaintext, in capture order. It knows a
protocol by its opening bytes (server banner or client's first message), waits for the client's
upgrade request (SMTP/IRC `STARTTLS`, IMAP `tag STARTTLS`, POP3 `STLS`, FTP `AUTH TLS`, LDAP's
StartTLS extended operation, PostgreSQL's SSLRequest, MySQL's SSL request) and then for the
server's positive answer. The client's TLS bytes start right after its request, the server's
right after its answer; `Upgrade` carries both stream offsets. A refusal (SMTP 454, IMAP NO...)
re-arms the watcher. Everything is bounded: lines are capped and the watcher gives up after
`MAX_PLAINTEXT` bytes per direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpdiag.model import Direction

MAX_PLAINTEXT = 64 * 1024
MAX_LINE = 4096
LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
PG_SSL_REQUEST = bytes.fromhex("0000000804d2162f")
MYSQL_CLIENT_SSL = 0x0800


@dataclass(slots=True)
class Upgrade:
    protocol: str
    client_offset: int  # first TLS byte of the client's stream
    server_offset: int  # first TLS byte of the server's stream


def opener(first: bytes) -> str | bool | None:
    """Which STARTTLS-capable protocol these first bytes (of either direction) open.
    Returns a protocol name, None when more bytes are needed, False when none matches."""
    if not first:
        return None
    head = first[:8].upper()
    for prefix, proto in (
        (b"220", "smtp/ftp"),
        (b"* OK", "imap"),
        (b"+OK", "pop3"),
        (b"EHLO", "smtp"),
        (b"HELO", "smtp"),
        (b"STARTTLS", "irc"),
        (b"CAP LS", "irc"),
        (b"NICK ", "irc"),
        (b"AUTH TLS", "ftp"),
        (b"AUTH SSL", "ftp"),
        (b"STLS", "pop3"),
    ):
        n = min(len(prefix), len(head))
        if head[:n] == prefix[:n]:
            return proto if len(head) >= len(prefix) else None
    if first[0] == ord(":"):  # IRC server prefix ":irc.example.net NOTICE ..."
        return "irc"
    if len(first) < 8:
        if PG_SSL_REQUEST.startswith(first):
            return None
    elif first[:8] == PG_SSL_REQUEST:
        return "postgresql"
    if first[0] == 0x30:  # BER SEQUENCE: an LDAPMessage
        return "ldap"
    if len(first) >= 5 and first[3] == 0 and first[4] == 0x0A:  # MySQL greeting, seq 0, v10
        return "mysql"
    return False


def _ber_element(buf: bytes | bytearray) -> int | None:
    """Length of the complete BER element at the start of buf, None if incomplete/invalid."""
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        return 2 + first if len(buf) >= 2 + first else None
    n = first & 0x7F
    if n == 0 or n > 4 or len(buf) < 2 + n:
        return None
    length = int.from_bytes(buf[2 : 2 + n], "big")
    return 2 + n + length if len(buf) >= 2 + n + length else None


class StartTlsWatcher:
    __slots__ = (
        "_buf",
        "_seen",
        "_server_tls",
        "failed",
        "pending_client",
        "protocol",
        "request",
        "upgrade",
    )

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol  # may be refined ("smtp/ftp" -> "smtp" or "ftp")
        self._buf = [bytearray(), bytearray()]
        self._seen = [0, 0]  # plaintext bytes consumed per direction
        self.request: tuple[str, bytes] | None = None  # (protocol, expected reply marker)
        self.pending_client: int | None = None  # client offset right after its request
        self.upgrade: Upgrade | None = None
        self.failed = False
        self._server_tls = 0

    def feed(self, direction: Direction, data: bytes) -> int | None:
        """Consume plaintext; return how many bytes of `data` were plaintext when the upgrade
        completes inside it (the rest is TLS), else None."""
        if self.upgrade is not None or self.failed:
            return None
        buf = self._buf[direction]
        start = self._seen[direction] - len(buf)
        buf += data
        self._seen[direction] += len(data)
        if self._seen[direction] > MAX_PLAINTEXT:
            self.failed = True
            return None
        if self.protocol in ("ldap", "postgresql", "mysql"):
            used = self._binary(direction, buf, start)
        else:
            used = self._lines(direction, buf, start)
        if used is None:
            return None
        consumed_before = self._seen[direction] - len(data)
        return used - consumed_before

    def _lines(self, direction: Direction, buf: bytearray, start: int) -> int | None:
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:
                    self.failed = True
                return None
            line = bytes(buf[: end + 1]).strip().upper()
            del buf[: end + 1]
            start += end + 1
            if direction == Direction.CLIENT:
                self._client_line(line, start)
            elif self.request is not None and self._server_line(line):
                assert self.pending_client is not None
                self.upgrade = Upgrade(self.request[0], self.pending_client, start)
                return start

    def _client_line(self, line: bytes, end: int) -> None:
        words = line.split()
        if not words:
            return
        if words[0] == b"STARTTLS":
            proto = "irc" if self.protocol == "irc" else "smtp"
            self.request = (proto, b"670" if proto == "irc" else b"220")
        elif words[0] == b"STLS":
            self.request = ("pop3", b"+OK")
        elif words[0] == b"AUTH" and len(words) > 1 and words[1] in (b"TLS", b"SSL", b"TLS-C"):
            self.request = ("ftp", b"234")
        elif len(words) > 1 and words[1] == b"STARTTLS":
            self.request = ("imap", words[0] + b" OK")
        else:
            return
        self.pending_client = end

    def _refused(self) -> None:
        """The server said no: the session goes on in plaintext, the watcher re-arms."""
        self.request = None
        self.pending_client = None

    def _server_line(self, line: bytes) -> bool:
        assert self.request is not None
        proto, marker = self.request
        if proto == "irc":
            parts = line.split()
            ok = len(parts) > 1 and parts[1] == marker
            if len(parts) > 1 and parts[1] == b"691":
                self._refused()
            return ok
        if proto == "imap":
            tag = marker.split()[0]
            if line.startswith(marker):
                return True
            if line.startswith(tag + b" "):
                self._refused()  # NO / BAD: no upgrade
            return False
        if proto == "pop3":
            if line.startswith(b"-ERR"):
                self._refused()
            return line.startswith(marker)
        # SMTP / FTP numeric replies: a final line is "NNN text" (not "NNN-text").
        if len(line) >= 3 and line[:3].isdigit() and line[3:4] != b"-":
            if line.startswith(marker):
                return True
            self._refused()
        return False

    def _binary(self, direction: Direction, buf: bytearray, start: int) -> int | None:
        if self.protocol == "postgresql":
            if direction == Direction.CLIENT and self.pending_client is None:
                if len(buf) >= 8 and buf[:8] == PG_SSL_REQUEST:
                    self.pending_client = start + 8
                    self.request = ("postgresql", b"S")
                    del buf[:8]
                return None
            if direction == Direction.SERVER and self.pending_client is not None and buf:
                if buf[0] == ord("S"):
                    self.upgrade = Upgrade("postgresql", self.pending_client, start + 1)
                    return start + 1
                self.failed = True  # 'N': the server refused; the session stays plaintext
            return None
        if self.protocol == "mysql":
            return self._mysql(direction, buf, start)
        return self._ldap(direction, buf, start)

    def _mysql(self, direction: Direction, buf: bytearray, start: int) -> int | None:
        # Packets: 3-byte little-endian length, 1-byte sequence id, payload.
        while len(buf) >= 4:
            length = int.from_bytes(buf[:3], "little")
            if len(buf) < 4 + length:
                return None
            payload = bytes(buf[4 : 4 + length])
            del buf[: 4 + length]
            start += 4 + length
            if direction == Direction.SERVER and self.request is None:
                self.request = ("mysql", b"")
                self.pending_client = None
                self._server_tls = start  # TLS from the server starts after its greeting
            elif direction == Direction.CLIENT and self.request is not None and length >= 4:
                caps = int.from_bytes(payload[:4], "little")
                if caps & MYSQL_CLIENT_SSL and length == 32:
                    self.upgrade = Upgrade("mysql", start, self._server_tls)
                    return start
                self.failed = True
                return None
        return None

    def _ldap(self, direction: Direction, buf: bytearray, start: int) -> int | None:
        while True:
            size = _ber_element(buf)
            if size is None:
                if len(buf) > MAX_LINE:
                    self.failed = True
                return None
            message = bytes(buf[:size])
            del buf[:size]
            start += size
            if direction == Direction.CLIENT:
                # ExtendedRequest is [APPLICATION 23] (0x77) carrying the StartTLS OID.
                if b"\x77" in message and LDAP_STARTTLS_OID in message:
                    self.request = ("ldap", b"")
                    self.pending_client = start
            elif self.request is not None and b"\x78" in message:
                # ExtendedResponse [APPLICATION 24]: resultCode ENUMERATED right after its
                # header; 0 is success.
                at = message.find(b"\x78")
                inner = message[at:]
                skip = 2 + (inner[1] & 0x7F if inner[1] & 0x80 else 0) if len(inner) > 1 else 0
                if inner[skip : skip + 3] == b"\x0a\x01\x00":
                    assert self.pending_client is not None
                    self.upgrade = Upgrade("ldap", self.pending_client, start)
                    return start
                self._refused()
