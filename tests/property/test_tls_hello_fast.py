"""The ClientHello and ServerHello readers by offsets (`_fast_client_hello`,
`_fast_server_hello`) against the bounds-checked readers they stand in for: on hellos built
field by field, then cut, overwritten or padded anywhere, the fast reader returns exactly the
checked reader's result, or None where the checked reader raises (it is then read again, and
the checked reader's error is the one reported)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tcpdiag.errors import DecodeError
from tcpdiag.flow import Flow
from tcpdiag.tls.handshake import (
    _CLIENT_HELLO_FIELDS,
    _SERVER_HELLO_FIELDS,
    ClientHello,
    ServerHello,
    _fast_client_hello,
    _fast_server_hello,
    parse_client_hello,
    parse_client_hello_checked,
    parse_server_hello,
    parse_server_hello_checked,
)
from tcpdiag.tls.records import RecordFramer
from tests.capture_files import PUBLIC
from tests.flows import run_flow_table

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def vec(size: int, data: bytes) -> bytes:
    return (len(data) % (1 << (8 * size))).to_bytes(size, "big") + data


# Lists of 16-bit values, and now and then an odd number of bytes where they are expected.
u16s = st.one_of(
    st.lists(st.integers(0, 0xFFFF), max_size=12).map(
        lambda vs: b"".join(v.to_bytes(2, "big") for v in vs)
    ),
    st.binary(max_size=9),
)
names = st.lists(st.binary(max_size=12), max_size=3)


@st.composite
def extension(draw: st.DrawFn) -> bytes:
    """One extension of a type the readers look into (or any other), with a body that is
    usually well formed and sometimes not."""
    kind = draw(st.sampled_from([0, 16, 43, 10, 13, 11, 51, 0x0A0A, 21]))
    if draw(st.integers(0, 19)) == 0:
        body = draw(st.binary(max_size=12))  # anything
    elif kind == 0:
        host = st.binary(min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=12)
        entries = draw(st.lists(st.tuples(st.sampled_from([0, 0, 1]), host), max_size=3))
        body = vec(2, b"".join(bytes([t]) + vec(2, n) for t, n in entries))
    elif kind == 16:
        body = vec(2, b"".join(vec(1, n) for n in draw(names)))
    elif kind == 43:
        body = draw(st.one_of(u16s.map(lambda b: vec(1, b)), u16s))  # client list / server pick
    elif kind in (10, 13):
        body = vec(2, draw(u16s))
    elif kind == 11:
        body = vec(1, draw(st.binary(max_size=4)))
    elif kind == 51:
        shares = draw(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=8))))
        inner = b"".join(g.to_bytes(2, "big") + vec(2, k) for g, k in shares)
        body = draw(st.sampled_from([vec(2, inner)] * 3 + [inner[:2]]))
    else:
        body = draw(st.binary(max_size=8))
    return kind.to_bytes(2, "big") + vec(2, body)


@st.composite
def hello(draw: st.DrawFn, server: bool) -> bytes:
    head = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big") + draw(
        st.binary(min_size=32, max_size=32)
    )
    head += vec(1, draw(st.binary(max_size=32)))
    if server:
        head += draw(st.binary(min_size=3, max_size=3))  # cipher suite, compression
    else:
        head += vec(2, draw(u16s)) + vec(1, draw(st.binary(max_size=3)))
    exts = b"".join(draw(st.lists(extension(), max_size=8)))
    if draw(st.booleans()) or exts:
        head += vec(2, exts)
    return head


@st.composite
def mutated(draw: st.DrawFn, server: bool) -> bytes:
    data = bytearray(draw(hello(server)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["cut", "set", "pad"]))
        at = draw(st.integers(0, len(data)))
        if op == "cut":
            del data[at:]
        elif op == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "pad":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def _checked(parse: object, data: bytes) -> object:
    try:
        return parse(data)  # type: ignore[operator]
    except DecodeError as exc:
        return ("DecodeError", str(exc))


def _agree(fast: object, checked: object, public: object, data: bytes) -> bool:
    """True when the fast reader took the hello: its result (or the error of a server_name or
    ALPN list, read by the checked helpers) must then equal the checked reader's."""
    expected = _checked(checked, data)
    got = _checked(fast, data)
    if got is not None:
        assert got == expected
    assert _checked(public, data) == expected
    return got is not None


@SETTINGS
@given(mutated(server=False))
@example(b"")
@example(bytes(34))
def test_fast_client_hello_matches_the_checked_reader(data: bytes) -> None:
    _agree(_fast_client_hello, parse_client_hello_checked, parse_client_hello, data)


@SETTINGS
@given(mutated(server=True))
@example(bytes(37))
def test_fast_server_hello_matches_the_checked_reader(data: bytes) -> None:
    _agree(_fast_server_hello, parse_server_hello_checked, parse_server_hello, data)


@SETTINGS
@given(st.binary(max_size=600))
def test_fast_readers_match_on_any_bytes(data: bytes) -> None:
    _agree(_fast_client_hello, parse_client_hello_checked, parse_client_hello, data)
    _agree(_fast_server_hello, parse_server_hello_checked, parse_server_hello, data)


@SETTINGS
@given(hello(server=False), hello(server=True))
def test_well_formed_hellos_take_the_fast_path(client: bytes, server: bytes) -> None:
    """Where the checked reader succeeds on an unmutated hello, so does the fast one (else the
    differential tests above would only ever compare the checked reader with itself)."""
    for fast, checked, data in (
        (_fast_client_hello, parse_client_hello_checked, client),
        (_fast_server_hello, parse_server_hello_checked, server),
    ):
        if not isinstance(_checked(checked, data), tuple):
            assert fast(data) is not None


def _browser_hellos() -> tuple[bytes, bytes]:
    exts = (
        b"\x00\x00"
        + vec(2, vec(2, b"\x00" + vec(2, b"www.example.com")))
        + b"\x00\x10"
        + vec(2, vec(2, vec(1, b"h2") + vec(1, b"http/1.1")))
        + b"\x00\x2b"
        + vec(2, vec(1, b"\x03\x04\x03\x03"))
        + b"\x00\x0a"
        + vec(2, vec(2, b"\x00\x1d\x00\x17"))
        + b"\x00\x0d"
        + vec(2, vec(2, b"\x04\x03\x08\x04"))
        + b"\x00\x0b"
        + vec(2, vec(1, b"\x00"))
        + b"\x00\x33"
        + vec(2, vec(2, b"\x00\x1d" + vec(2, bytes(32)) + b"\x00\x17" + vec(2, bytes(65))))
    )
    body = b"\x03\x03" + bytes(32) + vec(1, b"\x01" * 32) + vec(2, b"\x13\x01\xc0\x2f")
    body += vec(1, b"\x00") + vec(2, exts)
    server = b"\x03\x03" + bytes(32) + vec(1, b"") + b"\x13\x01\x00"
    server += vec(
        2,
        b"\x00\x2b\x00\x02\x03\x04"
        + b"\x00\x10"
        + vec(2, vec(2, vec(1, b"h2")))
        + b"\x00\x33"
        + vec(2, b"\x00\x1d" + vec(2, bytes(32))),
    )
    return body, server


def test_every_cut_and_every_byte_off_by_one() -> None:
    """Each length field one more or one less than it should be, and every truncation, of a
    browser-like hello (two key shares, every extension looked into): the bounds checks, one
    by one. Hypothesis rarely hits a given length byte; this does, exhaustively."""
    body, server = _browser_hellos()
    taken = 0
    for data, fast, checked, public in (
        (body, _fast_client_hello, parse_client_hello_checked, parse_client_hello),
        (server, _fast_server_hello, parse_server_hello_checked, parse_server_hello),
    ):
        for at in range(len(data) + 1):
            taken += _agree(fast, checked, public, data[:at])
            for delta in (1, 255):
                if at < len(data):
                    nudged = bytearray(data)
                    nudged[at] = (nudged[at] + delta) % 256
                    taken += _agree(fast, checked, public, bytes(nudged))
    assert taken > 300  # most variants still parse, and the fast reader takes them


def test_short_extensions_and_cut_extension_headers() -> None:
    """Every extension the readers look into with a body of 0 to 4 bytes, and 1 to 3 bytes of
    an extension header left at the end of the list."""
    client_head = b"\x03\x03" + bytes(32) + vec(1, b"") + vec(2, b"\x13\x01") + vec(1, b"\x00")
    server_head = b"\x03\x03" + bytes(32) + vec(1, b"") + b"\x13\x01\x00"
    bodies = [bytes(range(1, 1 + n)) for n in range(5)] + [b"\x00\x01", b"\x00\x02\x00"]
    exts = [
        kind.to_bytes(2, "big") + vec(2, body)
        for kind in (0, 10, 11, 13, 16, 43, 51)
        for body in bodies
    ]
    exts += [b"\x00\x33\x00", b"\x00\x33", b"\x00"]
    name = b"\x00" + vec(2, b"a.example")
    for sni in (
        b"\x00" + vec(2, b""),  # an empty host_name
        name + b"\x00" + vec(2, b"b.example"),  # two host names
        b"\x01" + vec(2, b"x") + name,  # another name type first
        b"\x00" + vec(2, b"10.0.0.1") + b"\x01" + vec(2, b""),
        name + b"\x00",  # 1, 2 and 3 bytes of a next entry
        name + b"\x00\x00",
        name + b"\x00\x00\x05",
        b"\x00" + vec(2, b"bad\x00name."),
    ):
        exts.append(b"\x00\x00" + vec(2, vec(2, sni)))
    for alpn in (
        b"",
        vec(1, b"h2") + b"\x05",
        vec(1, b"") + vec(1, b"h2"),
        b"".join(vec(1, b"p%d" % i) for i in range(20)),  # more than are kept
    ):
        exts.append(b"\x00\x10" + vec(2, vec(2, alpn)))
    for ext in exts:
        for head, fast, checked, public in (
            (client_head, _fast_client_hello, parse_client_hello_checked, parse_client_hello),
            (server_head, _fast_server_hello, parse_server_hello_checked, parse_server_hello),
        ):
            _agree(fast, checked, public, head + vec(2, ext))
            _agree(fast, checked, public, head + vec(2, b"\x00\x17\x00\x00" + ext))


def test_a_browser_hello_is_read_whole_by_offsets() -> None:
    body, server = _browser_hellos()
    hello = _fast_client_hello(body)
    assert isinstance(hello, ClientHello)
    assert hello == parse_client_hello_checked(body)
    assert (hello.sni, hello.alpn, hello.cipher_suites) == (
        "www.example.com",
        ["h2", "http/1.1"],
        [0x1301, 0xC02F],
    )
    assert hello.supported_versions == [0x0304, 0x0303]
    assert hello.supported_groups == [29, 23] and hello.signature_algorithms == [0x0403, 0x0804]
    assert hello.ec_point_formats == [0] and hello.key_share_groups == [29, 23]
    assert hello.extensions == [0, 16, 43, 10, 13, 11, 51]
    sh = _fast_server_hello(server)
    assert isinstance(sh, ServerHello) and sh == parse_server_hello_checked(server)
    assert (sh.version, sh.cipher_suite, sh.key_share_group) == (0x0304, 0x1301, 29)


def _changed(value: object) -> object:
    """Another value of the same type (a compiled class checks the types of its fields)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, bytes):
        return value + b"!"
    if isinstance(value, str):
        return value + "!"
    if isinstance(value, list):
        return [*value, value[0] if value else 0]
    return None


def test_hellos_compare_by_every_field() -> None:
    """ClientHello and ServerHello are plain classes that compare and print like the
    dataclasses they were: equal when every field is, unequal when any one differs."""
    body, server = _browser_hellos()
    for parse, data, fields in (
        (parse_client_hello, body, _CLIENT_HELLO_FIELDS),
        (parse_server_hello, server, _SERVER_HELLO_FIELDS),
    ):
        base = parse(data)
        assert base == parse(data) and base != object()
        for name in fields:
            other = parse(data)
            value = getattr(other, name)
            assert value is not None, name  # the browser-like hellos set every field
            setattr(other, name, _changed(value))
            assert other != base, name
            assert f"{name}={value!r}" in repr(base)


class _Bytes:
    """A stream consumer that keeps the first bytes of each direction."""

    wants_data = True

    def __init__(self) -> None:
        self.data = [bytearray(), bytearray()]

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        if offset == len(self.data[direction]) and offset < 64 * 1024:
            self.data[direction] += data

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        pass

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        pass


def _hello_bodies(path: Path) -> list[tuple[int, bytes]]:
    """(handshake type, body) of every plaintext hello at the start of a TCP stream."""
    streams: list[_Bytes] = []

    def opened(flow: Flow) -> None:
        consumer = _Bytes()
        streams.append(consumer)
        flow.attach(consumer)

    run_flow_table(path, lambda flow: None, on_open=opened)
    bodies: list[tuple[int, bytes]] = []
    for consumer in streams:
        for data in consumer.data:
            framer = RecordFramer(keep=lambda ct: ct == 22)
            payload = b"".join(r.payload or b"" for r in framer.feed(bytes(data), 1, 0.0))
            pos = 0
            while pos + 4 <= len(payload) and payload[pos] in (1, 2):
                end = pos + 4 + int.from_bytes(payload[pos + 1 : pos + 4], "big")
                if end <= len(payload):
                    bodies.append((payload[pos], payload[pos + 4 : end]))
                pos = end
    return bodies


def test_real_hellos_of_every_capture_and_their_one_byte_variants() -> None:
    """Every ClientHello and ServerHello of the bundled and public captures (browsers, curl,
    OpenSSL, Go, Java... with GREASE, padding, ECH and post-quantum key shares), and each of them
    with every byte one more, cut at every tenth byte: the fast and the checked readers agree."""
    paths = sorted(Path(__file__).parents[2].joinpath("captures").glob("*.pcap*"))
    if PUBLIC.is_dir():
        paths += sorted(PUBLIC.glob("*.pcap*"))
    seen: set[bytes] = set()
    taken = 0
    for path in paths:
        try:
            bodies = _hello_bodies(path)
        except Exception:  # unreadable test captures are read elsewhere
            continue
        for msg_type, body in bodies:
            if body in seen:
                continue
            seen.add(body)
            fast, checked, public = (
                (_fast_client_hello, parse_client_hello_checked, parse_client_hello)
                if msg_type == 1
                else (_fast_server_hello, parse_server_hello_checked, parse_server_hello)
            )
            assert _agree(fast, checked, public, body), path.name  # a real hello is taken
            for at in range(len(body)):
                nudged = bytearray(body)
                nudged[at] = (nudged[at] + 1) % 256
                taken += _agree(fast, checked, public, bytes(nudged))
                if at % 10 == 0:
                    _agree(fast, checked, public, body[:at])
    assert len(seen) >= 20 and taken > 1000
