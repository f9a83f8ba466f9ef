"""STARTTLS: the same TlsStream sits on the plaintext session and switches to TLS parsing at
the upgrade, for each supported protocol; refusals keep it in plaintext."""

from __future__ import annotations

import ssl

import pytest
from test_tls_memorybio import C, Feeder, S, full_session

from tcpdiag.model import Direction

Dialogue = list[tuple[Direction, bytes]]

LDAP_REQUEST = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"
LDAP_OK = bytes.fromhex("300c02010178070a010004000400")
LDAP_REFUSED = bytes.fromhex("300c02010178070a010204000400")
MYSQL_GREETING = (30).to_bytes(3, "little") + b"\x00" + b"\x0a" + b"8.0.0\x00" + b"\x01" * 24
MYSQL_SSL_REQUEST = (
    (32).to_bytes(3, "little") + b"\x01" + (0x0800 | 0x0200).to_bytes(4, "little") + b"\x00" * 28
)

CASES: dict[str, tuple[Dialogue, str]] = {
    "smtp": (
        [
            (S, b"220 mx.example.com ESMTP\r\n"),
            (C, b"EHLO client.example\r\n"),
            (S, b"250-mx.example.com\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"220 2.0.0 Ready to start TLS\r\n"),
        ],
        "smtp",
    ),
    "imap": (
        [
            (S, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            (C, b"a1 STARTTLS\r\n"),
            (S, b"a1 OK Begin TLS negotiation now\r\n"),
        ],
        "imap",
    ),
    "pop3": ([(S, b"+OK POP3 ready\r\n"), (C, b"STLS\r\n"), (S, b"+OK Begin TLS\r\n")], "pop3"),
    "ftp": (
        [(S, b"220 FTP ready\r\n"), (C, b"AUTH TLS\r\n"), (S, b"234 AUTH TLS OK.\r\n")],
        "ftp",
    ),
    "irc": (
        [
            (C, b"STARTTLS\r\n"),
            (S, b":irc.example.net 670 * :STARTTLS successful, go ahead\r\n"),
        ],
        "irc",
    ),
    "postgresql": ([(C, bytes.fromhex("0000000804d2162f")), (S, b"S")], "postgresql"),
    "ldap": ([(C, LDAP_REQUEST), (S, LDAP_OK)], "ldap"),
    "mysql": ([(S, MYSQL_GREETING), (C, MYSQL_SSL_REQUEST)], "mysql"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_upgrade_then_tls_handshake(name: str) -> None:
    dialogue, proto = CASES[name]
    session = full_session(ssl.TLSVersion.TLSv1_3)
    feeder = Feeder()
    for direction, data in dialogue:
        feeder.send(direction, data)
    assert feeder.stream.wants_data
    assert not feeder.stream.is_tls
    for direction, data in session.flights:
        feeder.send(direction, data)
    stream = feeder.stream
    summary = stream.summary()
    assert stream.is_tls
    assert summary.starttls == proto
    assert summary.version == "TLS1.3"
    assert summary.handshake_complete
    assert summary.messages[0].type == "ClientHello"


def test_server_bytes_after_the_reply_in_the_same_segment() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = Feeder()
    feeder.send(S, b"220 mx ESMTP\r\n")
    feeder.send(C, b"STARTTLS\r\n")
    feeder.send(S, b"220 go ahead\r\n")
    client_hello = session.flights[0][1]
    feeder.send(C, client_hello)
    server_flight = session.flights[1][1]
    # A server that pipelines nothing is normal; here the reply and the flight share frames.
    feeder.send(S, server_flight)
    assert feeder.stream.server_hello is not None


@pytest.mark.parametrize(
    "dialogue",
    [
        [(S, b"220 mx ESMTP\r\n"), (C, b"STARTTLS\r\n"), (S, b"454 TLS not available\r\n")],
        [(S, b"* OK ready\r\n"), (C, b"a1 STARTTLS\r\n"), (S, b"a1 NO not now\r\n")],
        [(C, bytes.fromhex("0000000804d2162f")), (S, b"N")],
        [(C, LDAP_REQUEST), (S, LDAP_REFUSED)],
    ],
    ids=["smtp-454", "imap-no", "postgres-n", "ldap-refused"],
)
def test_refused_upgrade_stays_plaintext(dialogue: Dialogue) -> None:
    feeder = Feeder()
    for direction, data in dialogue:
        feeder.send(direction, data)
    feeder.send(C, b"\x16\x03\x01\x00\x05hello")
    assert not feeder.stream.is_tls
    assert feeder.stream.starttls is None


def test_plaintext_phase_is_bounded() -> None:
    feeder = Feeder()
    feeder.send(S, b"220 mx ESMTP\r\n")
    for _ in range(100):
        feeder.send(C, b"NOOP " + b"x" * 1000 + b"\r\n")
    assert feeder.stream.wants_data is False


def test_refused_then_accepted_upgrade() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = Feeder()
    feeder.send(S, b"220 mx ESMTP\r\n")
    feeder.send(C, b"STARTTLS\r\n")
    feeder.send(C, b"NOOP\r\n")  # sent before the refusal arrived: plaintext after all
    feeder.send(S, b"454 4.7.0 TLS not available due to temporary reason\r\n")
    feeder.send(S, b"250 OK\r\n")
    feeder.send(C, b"STARTTLS\r\n")
    feeder.send(S, b"220 Ready\r\n")
    for direction, data in session.flights:
        feeder.send(direction, data)
    summary = feeder.stream.summary()
    assert summary.starttls == "smtp"
    assert summary.handshake_complete
