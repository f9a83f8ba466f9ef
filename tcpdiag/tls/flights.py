"""Handshake flights: what each side must send next, compared with what it sent.

A flight is the run of records one side sends before it waits for the peer. RFC 5246 7.3 and
RFC 8446 2 fix their content:

    TLS 1.2 full        server: ServerHello Certificate [ServerKeyExchange]
                                [CertificateRequest] ServerHelloDone
                        client: [Certificate] ClientKeyExchange [CertificateVerify]
                                ChangeCipherSpec Finished(encrypted)
                        server: [NewSessionTicket] ChangeCipherSpec Finished(encrypted)
    TLS 1.2 resumed     server: ServerHello [NewSessionTicket] ChangeCipherSpec Finished
                        client: ChangeCipherSpec Finished
    TLS 1.3             server: ServerHello [ChangeCipherSpec] {encrypted flight}
                        (or HelloRetryRequest, then the client sends a second ClientHello)
                        client: [ChangeCipherSpec] {encrypted Finished}

The check works on `RecordNote`s (one per record, in arrival order across both directions;
defined in `records.py`) kept by the stream during the handshake. Encrypted handshake records
are tokens ending in "*".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tcpdiag.model import Direction

# Defined there to be compiled (the stream makes one per record); re-exported for the rules.
from tcpdiag.tls.records import RecordNote as RecordNote

CCS: Final = "ChangeCipherSpec"
FINISHED_ENC: Final = "Finished*"  # an encrypted Handshake record right after the sender's CCS
# an encrypted-looking Handshake record with no CCS before it
ENC_HANDSHAKE: Final = "EncryptedHandshake*"


@dataclass(slots=True)
class FlightProblem:
    sender: Direction
    expected: list[str]
    arrived: list[RecordNote]
    missing: list[str]
    reordered: bool
    expected_sizes: list[int | None]

    @property
    def frames(self) -> list[int]:
        return [n.frame for n in self.arrived]


def _normalise(token: str) -> str:
    return "Finished" if token in (FINISHED_ENC, ENC_HANDSHAKE) else token


def flight_of(notes: list[RecordNote], sender: Direction, after: int) -> list[RecordNote]:
    """The records `sender` sent after position `after` in `notes`, up to the peer's next
    record (the end of that flight)."""
    out: list[RecordNote] = []
    for note in notes[after + 1 :]:
        if note.sender != sender:
            if out:
                break
            continue
        out.append(note)
    return out


def compare(
    sender: Direction,
    expected: list[str],
    optional: set[str],
    arrived: list[RecordNote],
    expected_sizes: list[int | None],
) -> FlightProblem | None:
    """None when the flight has every required message in order (optional ones may be
    absent); otherwise what is missing or out of order. A flight that starts with an Alert is
    the sender giving up on purpose: that is a `tls-alert`, not a broken flight."""
    if not arrived or "Alert" in arrived[0].tokens:
        return None
    got: list[str] = []
    for note in arrived:
        if note.got is not None:
            break  # a cut record proves nothing about what it held
        got.extend(_normalise(t) for t in note.tokens)
    required = [e for e in expected if e not in optional]
    seen = [t for t in got if t in expected]
    missing = [e for e in required if e not in seen]
    # In order means: the messages that did arrive appear in the expected order.
    positions = [expected.index(t) for t in seen]
    reordered = positions != sorted(positions)
    # An encrypted Handshake record with no CCS before it is not a Finished: flag it.
    bare = any(ENC_HANDSHAKE in n.tokens for n in arrived)
    partial = any(n.got is not None for n in arrived)
    if not missing and not reordered and not bare and not partial:
        return None
    return FlightProblem(sender, expected, arrived, missing, reordered, expected_sizes)


def tls12_client_flight(cert_requested: bool) -> tuple[list[str], set[str]]:
    expected = ["ClientKeyExchange", CCS, "Finished"]
    optional: set[str] = set()
    if cert_requested:
        expected = ["Certificate", "ClientKeyExchange", "CertificateVerify", CCS, "Finished"]
        # An empty Certificate (no client cert) means no CertificateVerify.
        optional = {"CertificateVerify"}
    return expected, optional


def resumed_client_flight() -> tuple[list[str], set[str]]:
    return [CCS, "Finished"], set()


def hello_retry_client_flight() -> tuple[list[str], set[str]]:
    """After a HelloRetryRequest: a second ClientHello (a middlebox-compatible client sends a
    dummy ChangeCipherSpec first)."""
    return [CCS, "ClientHello"], {CCS}


def encrypted_record_size(cipher: str | None, plaintext: int) -> int | None:
    """Size on the wire of a TLS 1.2 record carrying `plaintext` bytes under the negotiated
    suite (explicit nonce or IV, tag or MAC and padding included), to tell what an encrypted
    record probably holds: 16 bytes for a Finished (4-byte header + 12 verify_data), 2 for an
    alert."""
    if cipher is None:
        return None
    if "CHACHA20" in cipher:
        return 5 + plaintext + 16
    if "CCM_8" in cipher:
        return 5 + 8 + plaintext + 8
    if "GCM" in cipher or "CCM" in cipher:
        return 5 + 8 + plaintext + 16  # explicit nonce + ciphertext + tag
    if "CBC" in cipher:
        mac = 48 if cipher.endswith("SHA384") else 32 if cipher.endswith("SHA256") else 20
        padded = (plaintext + mac + 1 + 15) // 16 * 16
        return 5 + 16 + padded  # explicit IV + padded ciphertext
    return None


def finished_record_size(cipher: str | None) -> int | None:
    return encrypted_record_size(cipher, 16)
