"""TLS wire registries (IANA values) and the names tcpdiag prints for them.

Names follow the IANA registries (alerts, cipher suites, groups use their snake/IANA spelling,
as Wireshark's fields do); handshake and content types use the CamelCase names the timeline
shows ("ClientKeyExchange 75"). Unknown values print as `unknown(N)` rather than raising: a
registry miss is never a parse error.
"""

from __future__ import annotations

import enum
from typing import Final


class ContentType(enum.IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


# Keyed by the enum members, which hash and compare as their ints: looked up by plain int.
CONTENT_TYPE_LABELS: dict[int, str] = {
    ContentType.CHANGE_CIPHER_SPEC: "ChangeCipherSpec",
    ContentType.ALERT: "Alert",
    ContentType.HANDSHAKE: "Handshake",
    ContentType.APPLICATION_DATA: "ApplicationData",
    ContentType.HEARTBEAT: "Heartbeat",
}


class HandshakeType(enum.IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    HELLO_RETRY_REQUEST = 6  # pre-RFC drafts only; RFC 8446 signals HRR by a special random
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_URL = 21
    CERTIFICATE_STATUS = 22
    SUPPLEMENTAL_DATA = 23
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25
    MESSAGE_HASH = 254


# Keyed by the enum members, which hash and compare as their ints: looked up by plain int.
HANDSHAKE_LABELS: Final[dict[int, str]] = {
    HandshakeType.HELLO_REQUEST: "HelloRequest",
    HandshakeType.CLIENT_HELLO: "ClientHello",
    HandshakeType.SERVER_HELLO: "ServerHello",
    HandshakeType.HELLO_VERIFY_REQUEST: "HelloVerifyRequest",
    HandshakeType.NEW_SESSION_TICKET: "NewSessionTicket",
    HandshakeType.END_OF_EARLY_DATA: "EndOfEarlyData",
    HandshakeType.HELLO_RETRY_REQUEST: "HelloRetryRequest",
    HandshakeType.ENCRYPTED_EXTENSIONS: "EncryptedExtensions",
    HandshakeType.CERTIFICATE: "Certificate",
    HandshakeType.SERVER_KEY_EXCHANGE: "ServerKeyExchange",
    HandshakeType.CERTIFICATE_REQUEST: "CertificateRequest",
    HandshakeType.SERVER_HELLO_DONE: "ServerHelloDone",
    HandshakeType.CERTIFICATE_VERIFY: "CertificateVerify",
    HandshakeType.CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
    HandshakeType.FINISHED: "Finished",
    HandshakeType.CERTIFICATE_URL: "CertificateURL",
    HandshakeType.CERTIFICATE_STATUS: "CertificateStatus",
    HandshakeType.SUPPLEMENTAL_DATA: "SupplementalData",
    HandshakeType.KEY_UPDATE: "KeyUpdate",
    HandshakeType.COMPRESSED_CERTIFICATE: "CompressedCertificate",
    HandshakeType.MESSAGE_HASH: "MessageHash",
}

# Which side may send which handshake message in a plaintext record. Used by the
# "is this Handshake record encrypted?" heuristic: a first byte that names a message the sender
# can never send is ciphertext.
CLIENT_HANDSHAKE_TYPES: Final = frozenset(
    {
        HandshakeType.CLIENT_HELLO,
        HandshakeType.END_OF_EARLY_DATA,
        HandshakeType.CERTIFICATE,
        HandshakeType.CERTIFICATE_VERIFY,
        HandshakeType.CLIENT_KEY_EXCHANGE,
        HandshakeType.FINISHED,
        HandshakeType.CERTIFICATE_URL,
        HandshakeType.SUPPLEMENTAL_DATA,
        HandshakeType.KEY_UPDATE,
        HandshakeType.COMPRESSED_CERTIFICATE,
    }
)
SERVER_HANDSHAKE_TYPES: Final = frozenset(
    {
        HandshakeType.HELLO_REQUEST,
        HandshakeType.SERVER_HELLO,
        HandshakeType.HELLO_VERIFY_REQUEST,
        HandshakeType.NEW_SESSION_TICKET,
        HandshakeType.HELLO_RETRY_REQUEST,
        HandshakeType.ENCRYPTED_EXTENSIONS,
        HandshakeType.CERTIFICATE,
        HandshakeType.SERVER_KEY_EXCHANGE,
        HandshakeType.CERTIFICATE_REQUEST,
        HandshakeType.SERVER_HELLO_DONE,
        HandshakeType.CERTIFICATE_VERIFY,
        HandshakeType.FINISHED,
        HandshakeType.CERTIFICATE_STATUS,
        HandshakeType.SUPPLEMENTAL_DATA,
        HandshakeType.KEY_UPDATE,
        HandshakeType.COMPRESSED_CERTIFICATE,
    }
)


class AlertLevel(enum.IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120
    ech_required = 121


class ProtocolVersion(enum.IntEnum):
    SSL2 = 0x0002
    SSL3 = 0x0300
    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303
    TLS1_3 = 0x0304


# The spelling tshark's labelling script and the report use ("TLS1.2").
VERSION_NAMES: Final = {
    0x0002: "SSL2",
    0x0300: "SSL3",
    0x0301: "TLS1.0",
    0x0302: "TLS1.1",
    0x0303: "TLS1.2",
    0x0304: "TLS1.3",
}


class ExtensionType(enum.IntEnum):
    server_name = 0
    max_fragment_length = 1
    status_request = 5
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    signed_certificate_timestamp = 18
    padding = 21
    encrypt_then_mac = 22
    extended_master_secret = 23
    compress_certificate = 27
    record_size_limit = 28
    session_ticket = 35
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    encrypted_client_hello = 0xFE0D
    renegotiation_info = 0xFF01


class NamedGroup(enum.IntEnum):
    sect163k1 = 1
    secp192r1 = 19
    secp224r1 = 21
    secp256r1 = 23
    secp384r1 = 24
    secp521r1 = 25
    brainpoolP256r1 = 26
    brainpoolP384r1 = 27
    brainpoolP512r1 = 28
    x25519 = 29
    x448 = 30
    ffdhe2048 = 256
    ffdhe3072 = 257
    ffdhe4096 = 258
    ffdhe6144 = 259
    ffdhe8192 = 260
    X25519MLKEM768 = 0x11EC
    X25519Kyber768Draft00 = 0x6399


# A reasonable table of cipher suites seen in practice, by IANA name. Anything else prints as
# "0xXXXX", which is enough to look it up.
CIPHER_SUITES: Final[dict[int, str]] = {
    0x0000: "TLS_NULL_WITH_NULL_NULL",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0045: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0088: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0x5600: "TLS_FALLBACK_SCSV",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0xC008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

# RFC 8446 4.1.3: a ServerHello whose random is this value is a HelloRetryRequest.
HRR_RANDOM: Final = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)

# Largest legal record payload: 2^14 plaintext + 2048 expansion (RFC 5246 6.2.3; RFC 8446 5.2
# allows 2^14 + 256 for 1.3). Anything longer cannot be a record.
MAX_RECORD_LENGTH: Final = (1 << 14) + 2048


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0A0A, 0x1A1A ... 0xFAFA (both bytes equal, low nibble 0xA)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


# The hex text of an unnamed value is made only when needed: as the default of `dict.get` it
# was formatted on every call (most of the cost of naming every TLS flow's version and suite).
def version_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    name = VERSION_NAMES.get(value)
    return name if name is not None else f"0x{value:04x}"


def cipher_suite_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    name = CIPHER_SUITES.get(value)
    return name if name is not None else f"0x{value:04x}"


# Every member has a label, so a plain lookup names exactly the values the enum knows, without
# building an enum member per call (labels are made for every record and message).
def handshake_name(value: int) -> str:
    name = HANDSHAKE_LABELS.get(value)
    return name if name is not None else f"Handshake({value})"


def content_type_name(value: int) -> str:
    name = CONTENT_TYPE_LABELS.get(value)
    return name if name is not None else f"ContentType({value})"


def alert_level_name(value: int) -> str:
    try:
        return AlertLevel(value).name.lower()
    except ValueError:
        return f"level({value})"


def alert_description_name(value: int) -> str:
    try:
        return AlertDescription(value).name
    except ValueError:
        return f"unknown({value})"


def group_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    try:
        return NamedGroup(value).name
    except ValueError:
        return f"0x{value:04x}"
