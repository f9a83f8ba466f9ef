"""Handshake message bodies: ClientHello, ServerHello (and HelloRetryRequest), Certificate,
ServerKeyExchange; plus the reassembler that cuts a direction's plaintext Handshake records
into messages.

Parsers take the message body (after the 4-byte type/length header) and raise only
`DecodeError`. Packet strings (SNI, ALPN) are decoded with errors="replace" and capped: the
report layer escapes them, we only keep them bounded.
"""

from __future__ import annotations

import ipaddress
from typing import Final, cast

from tcpdiag.errors import DecodeError
from tcpdiag.fields import FieldRecord
from tcpdiag.model import Direction
from tcpdiag.tls.constants import (
    CLIENT_HANDSHAKE_TYPES,
    HRR_RANDOM,
    SERVER_HANDSHAKE_TYPES,
    ExtensionType,
    is_grease,
)
from tcpdiag.tls.cursor import Cursor

MAX_NAME_CHARS: Final = 255  # a DNS name is at most 253 characters; anything longer is cut here
MAX_ALPN_ITEMS: Final = 16
# Extension types compared for every extension of every hello, as Final ints: compiled, that
# is a C integer comparison instead of a dict and an attribute lookup of the IntEnum member.
_EXT_SERVER_NAME: Final = int(ExtensionType.server_name)
_EXT_ALPN: Final = int(ExtensionType.application_layer_protocol_negotiation)
_EXT_SUPPORTED_VERSIONS: Final = int(ExtensionType.supported_versions)
_EXT_SUPPORTED_GROUPS: Final = int(ExtensionType.supported_groups)
_EXT_SIGNATURE_ALGORITHMS: Final = int(ExtensionType.signature_algorithms)
_EXT_EC_POINT_FORMATS: Final = int(ExtensionType.ec_point_formats)
_EXT_KEY_SHARE: Final = int(ExtensionType.key_share)


def packet_text(raw: bytes, limit: int = MAX_NAME_CHARS) -> str:
    text = raw[: limit * 4].decode("utf-8", errors="replace")
    return text[:limit]


_CLIENT_HELLO_FIELDS: Final = (
    "legacy_version",
    "random",
    "session_id",
    "cipher_suites",
    "compression_methods",
    "extensions",
    "sni",
    "sni_problems",
    "alpn",
    "supported_versions",
    "supported_groups",
    "key_share_groups",
    "ec_point_formats",
    "signature_algorithms",
    "sslv2",
)
_SERVER_HELLO_FIELDS: Final = (
    "legacy_version",
    "random",
    "session_id",
    "cipher_suite",
    "compression_method",
    "extensions",
    "selected_version",
    "alpn",
    "key_share_group",
)


class ClientHello(FieldRecord):
    """A parsed ClientHello. Plain classes rather than dataclasses, this one and `ServerHello`:
    compiled, a dataclass is built through its generated Python `__init__` (~8,000 instructions,
    for every hello); they compare and print as the dataclasses did."""

    __slots__ = _CLIENT_HELLO_FIELDS
    FIELDS = _CLIENT_HELLO_FIELDS

    def __init__(
        self,
        legacy_version: int,
        random: bytes,
        session_id: bytes,
        cipher_suites: list[int],
        compression_methods: bytes,
        sslv2: bool = False,  # came as an SSLv2-compatible CLIENT-HELLO
    ) -> None:
        self.legacy_version = legacy_version
        self.random = random
        self.session_id = session_id
        self.cipher_suites = cipher_suites
        self.compression_methods = compression_methods
        self.extensions: list[int] = []  # types in wire order
        self.sni: str | None = None
        self.sni_problems: list[str] = []  # RFC 6066 violations, in words
        self.alpn: list[str] = []
        self.supported_versions: list[int] = []
        self.supported_groups: list[int] = []
        self.key_share_groups: list[int] = []
        self.ec_point_formats: list[int] = []
        self.signature_algorithms: list[int] = []
        self.sslv2 = sslv2


class ServerHello(FieldRecord):
    """A parsed ServerHello or HelloRetryRequest (a plain class: see `ClientHello`)."""

    __slots__ = _SERVER_HELLO_FIELDS
    FIELDS = _SERVER_HELLO_FIELDS

    def __init__(
        self,
        legacy_version: int,
        random: bytes,
        session_id: bytes,
        cipher_suite: int,
        compression_method: int,
    ) -> None:
        self.legacy_version = legacy_version
        self.random = random
        self.session_id = session_id
        self.cipher_suite = cipher_suite
        self.compression_method = compression_method
        self.extensions: list[int] = []
        self.selected_version: int | None = None  # supported_versions extension (TLS 1.3)
        self.alpn: str | None = None
        self.key_share_group: int | None = None

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    @property
    def version(self) -> int:
        return self.selected_version if self.selected_version is not None else self.legacy_version


def _server_name(ext: Cursor, problems: list[str]) -> str | None:
    """The first host_name; what RFC 6066 section 3 forbids in the extension goes to `problems`
    (evasion and log-injection attempts use exactly these)."""
    names = ext.pull_vector(2, "server_name_list")
    first: str | None = None
    host_names = 0
    while not names.eof():
        name_type = names.pull_uint8("name_type")
        value = names.pull_vector(2, "host_name")
        raw = value.pull_bytes(value.remaining)
        if name_type != 0:
            continue
        host_names += 1
        if first is None:
            if not raw:
                raise DecodeError("server_name: empty host_name")
            first = packet_text(raw)
            problems.extend(_host_name_problems(raw))
    if host_names > 1:
        problems.append(f"{host_names} host names in one server_name extension")
    return first


def _host_name_problems(raw: bytes) -> list[str]:
    out: list[str] = []
    if len(raw) > 253:
        out.append(f"a {len(raw)}-byte name, longer than any DNS name (253)")
    if any(b < 0x21 or b > 0x7E for b in raw):
        out.append("bytes that are not printable ASCII (control characters or non-ASCII)")
    elif raw.endswith(b"."):
        out.append("a trailing dot")
    elif _is_ip_literal(raw):
        out.append("an IP address literal")
    return out


def _is_ip_literal(raw: bytes) -> bool:
    try:
        text = raw.decode("ascii").strip("[]")
        # Without a colon only a dotted-decimal IPv4 address can parse: a host name is turned
        # down here instead of by two failing (and costly) parses.
        if ":" not in text and not text.replace(".", "").isdigit():
            return False
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _alpn(ext: Cursor) -> list[str]:
    items = ext.pull_vector(2, "protocol_name_list")
    out: list[str] = []
    while not items.eof():
        proto = items.pull_vector(1, "protocol_name")
        raw = proto.pull_bytes(proto.remaining)
        if len(out) < MAX_ALPN_ITEMS:
            out.append(packet_text(raw, 64))
    return out


def _server_name_at(d: bytes, start: int, end: int, problems: list[str]) -> str | None:
    """`_server_name` of the extension body d[start:end]: by offsets, else (where that reader
    would raise, or is not sure) through the checked one."""
    found = _fast_server_name(d, start, end)
    if found is None:
        return _server_name(Cursor(d, start, end), problems)
    first, found_problems = found
    problems.extend(found_problems)
    return first


def _fast_server_name(d: bytes, start: int, end: int) -> tuple[str | None, list[str]] | None:
    list_end = _vector16_end(d, start, end)
    if list_end < 0:
        return None
    pos = start + 2
    first: str | None = None
    problems: list[str] = []
    host_names = 0
    while pos < list_end:
        if pos + 3 > list_end:
            return None
        name_type = d[pos]
        value_start = pos + 3
        pos = value_start + ((d[pos + 1] << 8) | d[pos + 2])
        if pos > list_end:
            return None
        if name_type != 0:
            continue
        host_names += 1
        if first is None:
            if pos == value_start:
                return None  # an empty host_name: the checked reader raises
            raw = d[value_start:pos]
            first = packet_text(raw)
            problems.extend(_host_name_problems(raw))
    if host_names > 1:
        problems.append(f"{host_names} host names in one server_name extension")
    return first, problems


def _alpn_at(d: bytes, start: int, end: int) -> list[str]:
    """`_alpn` of the extension body d[start:end], by offsets when it fits (as above)."""
    found = _fast_alpn(d, start, end)
    return found if found is not None else _alpn(Cursor(d, start, end))


def _fast_alpn(d: bytes, start: int, end: int) -> list[str] | None:
    list_end = _vector16_end(d, start, end)
    if list_end < 0:
        return None
    pos = start + 2
    out: list[str] = []
    while pos < list_end:
        item_end = pos + 1 + d[pos]
        if item_end > list_end:
            return None
        if len(out) < MAX_ALPN_ITEMS:
            out.append(packet_text(d[pos + 1 : item_end], 64))
        pos = item_end
    return out


def parse_client_hello(body: bytes) -> ClientHello:
    """A ClientHello body. Read by offsets in one pass (`_fast_client_hello`, ~4x fewer steps
    than sub-cursors for every vector, and a TLS flow's largest parsing cost); anything that
    does not fit is read again by `parse_client_hello_checked`, which raises its exact error.
    Both give equal results on every input (tests/property/test_tls_props.py)."""
    hello = _fast_client_hello(body if isinstance(body, bytes) else bytes(body))
    return hello if hello is not None else parse_client_hello_checked(body)


# One int object per 16-bit value for the lists of every ClientHello (cipher suites,
# extensions, groups, signature algorithms: TLS values are mostly above CPython's cache of small
# ints, and a hello's ~60 of them took ~2 KB as objects of their own, per connection). Built
# as `list[object]`: compiled, a `list[int]` stores a fresh object for each native int. Made
# at the first hello, not at import: the garbage collector would walk its 65,536 slots at each
# of its many collections while the program starts (a batch analysis runs with it off).
_U16_OBJECTS: Final[list[object]] = []


def _u16(value: int) -> object:
    """The shared int object for a 16-bit `value`."""
    table = _U16_OBJECTS
    if not table:
        # (a slice assignment: two threads making it at once leave 65,536 slots, not twice)
        table[:] = [None] * 65536
    shared = table[value]
    if shared is None:
        shared = table[value] = value
    return shared


def _u16_list(d: bytes, start: int, end: int) -> list[int]:
    """Big-endian 16-bit values of d[start:end] (an even number of bytes, within d)."""
    values: list[object] = [_u16((d[i] << 8) | d[i + 1]) for i in range(start, end, 2)]
    return cast("list[int]", values)


def _u16_vector(d: bytes, start: int, end: int) -> list[int] | None:
    """A vector of 16-bit values with a 2-byte length at d[start], within d[:end]; None when
    it does not fit or has an odd length (as `Cursor.pull_uint16_list` would raise)."""
    list_end = _vector16_end(d, start, end)
    if list_end < 0 or (list_end - start) % 2:
        return None
    return _u16_list(d, start + 2, list_end)


def _vector16_end(d: bytes, at: int, limit: int) -> int:
    """End of the vector whose 2-byte length is at d[at], or -1 when it overruns `limit`."""
    if at + 2 > limit:
        return -1
    end = at + 2 + ((d[at] << 8) | d[at + 1])
    return end if end <= limit else -1


def _fast_client_hello(d: bytes) -> ClientHello | None:
    """What `parse_client_hello_checked` returns, or None where it would raise (and in no other
    case): every read is bounds-checked by hand, against the end of its enclosing vector."""
    n = len(d)
    if n < 35:
        return None
    pos = 35 + d[34]  # after the session_id
    suites_end = _vector16_end(d, pos, n)
    if suites_end < 0 or (suites_end - pos) % 2:
        return None
    suites = _u16_list(d, pos + 2, suites_end)
    if suites_end + 1 > n:
        return None
    comp_end = suites_end + 1 + d[suites_end]
    if comp_end > n:
        return None
    hello = ClientHello(
        (d[0] << 8) | d[1], d[2:34], d[35 : 35 + d[34]], suites, d[suites_end + 1 : comp_end]
    )
    if comp_end >= n:  # extensions are optional before TLS 1.2
        return hello
    exts_end = _vector16_end(d, comp_end, n)
    if exts_end < 0:
        return None
    extensions = cast("list[object]", hello.extensions)  # (see `_U16_OBJECTS`)
    pos = comp_end + 2
    while pos < exts_end:
        end = _vector16_end(d, pos + 2, exts_end)  # after the type: the length, the body
        if end < 0:
            return None
        ext_type, start, pos = (d[pos] << 8) | d[pos + 1], pos + 4, end
        extensions.append(_u16(ext_type))
        if ext_type == _EXT_SERVER_NAME and end > start:
            if hello.extensions.count(_EXT_SERVER_NAME) > 1:
                hello.sni_problems.append("two server_name extensions")
                continue
            name = _server_name_at(d, start, end, hello.sni_problems)
            if hello.sni is None:
                hello.sni = name
        elif ext_type == _EXT_ALPN:
            hello.alpn = _alpn_at(d, start, end)
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            if start + 1 > end or start + 1 + d[start] > end:
                return None
            count = d[start] // 2
            hello.supported_versions = _u16_list(d, start + 1, start + 1 + 2 * count)
        elif ext_type == _EXT_SUPPORTED_GROUPS:
            groups = _u16_vector(d, start, end)
            if groups is None:
                return None
            hello.supported_groups = groups
        elif ext_type == _EXT_SIGNATURE_ALGORITHMS:
            algorithms = _u16_vector(d, start, end)
            if algorithms is None:
                return None
            hello.signature_algorithms = algorithms
        elif ext_type == _EXT_EC_POINT_FORMATS:
            if start + 1 > end or start + 1 + d[start] > end:
                return None
            hello.ec_point_formats = list(d[start + 1 : start + 1 + d[start]])
        elif ext_type == _EXT_KEY_SHARE:
            if start + 2 > end:
                return None
            at = start + 2
            shares_end = at + ((d[start] << 8) | d[start + 1])
            if shares_end > end:
                return None
            shares = cast("list[object]", hello.key_share_groups)
            while at < shares_end:
                if at + 4 > shares_end:
                    return None
                shares.append(_u16((d[at] << 8) | d[at + 1]))
                at += 4 + ((d[at + 2] << 8) | d[at + 3])
                if at > shares_end:
                    return None
    return hello


def parse_client_hello_checked(body: bytes) -> ClientHello:
    """`parse_client_hello` through the bounds-checked `Cursor`: the reference, and the
    reader of every hello the fast path turns down (its errors are the ones reported)."""
    cur = Cursor(body)
    hello = ClientHello(
        legacy_version=cur.pull_uint16("legacy_version"),
        random=cur.pull_bytes(32, "random"),
        session_id=b"",
        cipher_suites=[],
        compression_methods=b"",
    )
    sid = cur.pull_vector(1, "session_id")
    hello.session_id = sid.pull_bytes(sid.remaining)
    hello.cipher_suites = cur.pull_uint16_list(2, "cipher_suites")
    comp = cur.pull_vector(1, "compression_methods")
    hello.compression_methods = comp.pull_bytes(comp.remaining)
    if cur.eof():  # extensions are optional before TLS 1.2
        return hello
    exts = cur.pull_vector(2, "extensions")
    while not exts.eof():
        ext_type = exts.pull_uint16("extension_type")
        ext = exts.pull_vector(2, "extension_data")
        hello.extensions.append(ext_type)
        if ext_type == _EXT_SERVER_NAME and ext.remaining:
            if hello.extensions.count(_EXT_SERVER_NAME) > 1:
                hello.sni_problems.append("two server_name extensions")
                continue
            name = _server_name(ext, hello.sni_problems)
            if hello.sni is None:
                hello.sni = name
        elif ext_type == _EXT_ALPN:
            hello.alpn = _alpn(ext)
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            vec = ext.pull_vector(1, "supported_versions")
            hello.supported_versions = [vec.pull_uint16() for _ in range(vec.remaining // 2)]
        elif ext_type == _EXT_SUPPORTED_GROUPS:
            hello.supported_groups = ext.pull_uint16_list(2, "supported_groups")
        elif ext_type == _EXT_SIGNATURE_ALGORITHMS:
            hello.signature_algorithms = ext.pull_uint16_list(2, "signature_algorithms")
        elif ext_type == _EXT_EC_POINT_FORMATS:
            vec = ext.pull_vector(1, "ec_point_formats")
            hello.ec_point_formats = list(vec.pull_bytes(vec.remaining))
        elif ext_type == _EXT_KEY_SHARE:
            shares = ext.pull_vector(2, "client_shares")
            while not shares.eof():
                hello.key_share_groups.append(shares.pull_uint16("group"))
                shares.pull_vector(2, "key_exchange")
    return hello


def parse_sslv2_client_hello(body: bytes) -> ClientHello:
    """SSLv2-compatible CLIENT-HELLO (RFC 5246 appendix E.2), body after the 2-byte header and
    the msg_type byte: version, cipher_spec_length, session_id_length, challenge_length, ..."""
    cur = Cursor(body)
    version = cur.pull_uint16("version")
    spec_len = cur.pull_uint16("cipher_spec_length")
    sid_len = cur.pull_uint16("session_id_length")
    chal_len = cur.pull_uint16("challenge_length")
    if spec_len % 3 or not 16 <= chal_len <= 32:
        raise DecodeError("SSLv2 CLIENT-HELLO: bad cipher spec or challenge length")
    specs = cur.pull_bytes(spec_len, "cipher_specs")
    session_id = cur.pull_bytes(sid_len, "session_id")
    challenge = cur.pull_bytes(chal_len, "challenge")
    # Only 3-byte specs whose first byte is 0 map onto TLS cipher suites.
    suites = [int.from_bytes(specs[i + 1 : i + 3], "big") for i in range(0, spec_len, 3)]
    suites = [s for i, s in zip(range(0, spec_len, 3), suites, strict=True) if specs[i] == 0]
    return ClientHello(
        legacy_version=version,
        random=challenge.rjust(32, b"\0"),
        session_id=session_id,
        cipher_suites=suites,
        compression_methods=b"\0",
        sslv2=True,
    )


def parse_server_hello(body: bytes) -> ServerHello:
    """A ServerHello (or HelloRetryRequest) body: by offsets, else through the checked reader,
    as `parse_client_hello`."""
    hello = _fast_server_hello(body if isinstance(body, bytes) else bytes(body))
    return hello if hello is not None else parse_server_hello_checked(body)


def _fast_server_hello(d: bytes) -> ServerHello | None:
    n = len(d)
    if n < 35:
        return None
    pos = 35 + d[34]  # after the session_id
    if pos + 3 > n:
        return None
    hello = ServerHello(
        (d[0] << 8) | d[1], d[2:34], d[35:pos], (d[pos] << 8) | d[pos + 1], d[pos + 2]
    )
    pos += 3
    if pos >= n:
        return hello
    exts_end = _vector16_end(d, pos, n)
    if exts_end < 0:
        return None
    pos += 2
    while pos < exts_end:
        end = _vector16_end(d, pos + 2, exts_end)  # after the type: the length, the body
        if end < 0:
            return None
        ext_type, start, pos = (d[pos] << 8) | d[pos + 1], pos + 4, end
        hello.extensions.append(ext_type)
        if ext_type == _EXT_SUPPORTED_VERSIONS:
            if start + 2 > end:
                return None
            hello.selected_version = (d[start] << 8) | d[start + 1]
        elif ext_type == _EXT_ALPN:
            names = _alpn_at(d, start, end)
            hello.alpn = names[0] if names else None
        elif ext_type == _EXT_KEY_SHARE and end - start >= 2:
            hello.key_share_group = (d[start] << 8) | d[start + 1]
    return hello


def parse_server_hello_checked(body: bytes) -> ServerHello:
    """`parse_server_hello` through the bounds-checked `Cursor` (as for ClientHello)."""
    cur = Cursor(body)
    hello = ServerHello(
        legacy_version=cur.pull_uint16("legacy_version"),
        random=cur.pull_bytes(32, "random"),
        session_id=b"",
        cipher_suite=0,
        compression_method=0,
    )
    sid = cur.pull_vector(1, "session_id")
    hello.session_id = sid.pull_bytes(sid.remaining)
    hello.cipher_suite = cur.pull_uint16("cipher_suite")
    hello.compression_method = cur.pull_uint8("compression_method")
    if cur.eof():
        return hello
    exts = cur.pull_vector(2, "extensions")
    while not exts.eof():
        ext_type = exts.pull_uint16("extension_type")
        ext = exts.pull_vector(2, "extension_data")
        hello.extensions.append(ext_type)
        if ext_type == _EXT_SUPPORTED_VERSIONS:
            hello.selected_version = ext.pull_uint16("selected_version")
        elif ext_type == _EXT_ALPN:
            names = _alpn(ext)
            hello.alpn = names[0] if names else None
        elif ext_type == _EXT_KEY_SHARE and ext.remaining >= 2:
            hello.key_share_group = ext.pull_uint16("group")
    return hello


def parse_certificate(body: bytes, tls13: bool) -> list[int]:
    """Sizes of the certificates in a Certificate message (leaf first)."""
    cur = Cursor(body)
    if tls13:
        cur.pull_vector(1, "certificate_request_context")
    certs = cur.pull_vector(3, "certificate_list")
    sizes: list[int] = []
    while not certs.eof():
        cert = certs.pull_vector(3, "cert_data")
        sizes.append(cert.remaining)
        if tls13:
            certs.pull_vector(2, "extensions")
    return sizes


def ecdhe_point_length(body: bytes) -> int | None:
    """Public key length in an ECDHE ServerKeyExchange (named_curve), else None. The client's
    ClientKeyExchange carries a point of the same size, which lets a finding say how big the
    missing ClientKeyExchange record would have been."""
    cur = Cursor(body)
    if cur.remaining < 4 or cur.pull_uint8() != 3:  # curve_type named_curve
        return None
    cur.pull_uint16("named_curve")
    return cur.pull_vector(1, "public").remaining


def grease_free(values: list[int]) -> list[int]:
    return [v for v in values if not is_grease(v)]


class RawMessage:
    """A handshake message as cut from the records. `body` is None when the message was longer
    than the buffer cap: it is still typed and counted, but not parsed.

    A plain class rather than a dataclass: compiled, a dataclass is built through its
    generated Python `__init__`."""

    __slots__ = ("body", "frame", "length", "msg_type", "offset")

    def __init__(self, msg_type: int, length: int, frame: int, offset: int, body: bytes | None):
        self.msg_type = msg_type
        self.length = length  # body length from the header
        self.frame = frame
        self.offset = offset  # stream offset of the record holding the message's first byte
        self.body = body


class HandshakeReassembler:
    """Cuts one direction's plaintext handshake bytes (the payloads of its Handshake records, in
    order) into messages. Messages may span records and records may hold several messages.
    Bodies above `cap` bytes are skipped while counting, so memory stays bounded."""

    __slots__ = (
        "_body",
        "_cap",
        "_frame",
        "_header",
        "_keep",
        "_left",
        "_offset",
        "_total",
        "_type",
    )

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._header = bytearray()
        self._body = bytearray()
        self._left = 0  # body bytes still due for the current message; 0 when between messages
        self._type = -1
        self._total = 0
        self._keep = True
        self._frame = 0
        self._offset = 0

    @property
    def mid_message(self) -> bool:
        return bool(self._header) or self._left > 0

    @property
    def pending(self) -> tuple[int, int, int] | None:
        """(type, body length, bytes of it seen) of a message not yet complete."""
        if self._left > 0:
            return (self._type, self._total, self._total - self._left)
        return None

    def feed(self, data: bytes, frame: int, offset: int) -> list[RawMessage]:
        out: list[RawMessage] = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._left == 0:
                if not self._header:
                    self._frame, self._offset = frame, offset
                if not self._header and n - pos >= 4:
                    # the usual case: a whole header in this record, read in place
                    self._type = data[pos]
                    length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
                    pos += 4
                else:
                    take = min(4 - len(self._header), n - pos)
                    self._header += data[pos : pos + take]
                    pos += take
                    if len(self._header) < 4:
                        break
                    header = self._header
                    self._type = header[0]
                    length = (header[1] << 16) | (header[2] << 8) | header[3]
                    header.clear()
                self._keep = length <= self._cap
                if length == 0:
                    out.append(RawMessage(self._type, 0, self._frame, self._offset, b""))
                    continue
                self._left = length
                self._total = length
            take = min(self._left, n - pos)
            body: bytes | None = None
            if self._keep:
                if not self._body and take == self._left:
                    body = data[pos : pos + take]  # a whole body in this record: one copy
                else:
                    self._body += data[pos : pos + take]
            pos += take
            self._left -= take
            if self._left == 0:
                if self._keep and body is None:
                    body = bytes(self._body)
                    self._body.clear()
                out.append(RawMessage(self._type, self._total, self._frame, self._offset, body))
        return out


def looks_plaintext(payload: bytes, sender: Direction, exact: bool) -> bool:
    """Does this Handshake record read as plaintext messages `sender` may send? With `exact`,
    the messages must end exactly at the record's end (used after CCS, where anything else is
    ciphertext)."""
    allowed = CLIENT_HANDSHAKE_TYPES if sender == Direction.CLIENT else SERVER_HANDSHAKE_TYPES
    n = len(payload)
    if n >= 5 and payload[:5] == b"\0\0\0\0\0":  # GCM/CCM explicit nonce of sequence number 0
        return False
    pos = 0
    while pos < n:
        if n - pos < 4:
            return not exact
        if payload[pos] not in allowed:
            return False
        length = (payload[pos + 1] << 16) | (payload[pos + 2] << 8) | payload[pos + 3]
        if pos + 4 + length > n:
            return not exact and length <= (1 << 20)
        pos += 4 + length
    return True


def starting_types(payload: bytes, skip: int) -> list[int]:
    """Types of the handshake messages that start in this record's payload, the first `skip`
    bytes being the rest of a message begun in an earlier record."""
    out: list[int] = []
    pos = skip
    while pos + 4 <= len(payload):
        out.append(payload[pos])
        pos += 4 + ((payload[pos + 1] << 16) | (payload[pos + 2] << 8) | payload[pos + 3])
    return out
